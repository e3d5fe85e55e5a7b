"""Material writing: plug a generated image into the surface's colour (a Principled BSDF's Base
Color, a Diffuse or Toon shader's Color) without destroying anything.

The add-on owns exactly one node per material, an Image Texture node named ``AvatarTex Texture``.
Every other node stays. What was linked into Base Color before (node + socket, or the plain colour)
is remembered on the material, so ``restore`` puts it back even after the file was saved and
reopened; Blender's undo restores it too, because each change happens inside one undoable operator.
"""

from __future__ import annotations

import os
from pathlib import Path

import bpy
import numpy as np

NODE_NAME = "AvatarTex Texture"
ADDED_SHADER, ADDED_OUTPUT = "AvatarTex Shader", "AvatarTex Output"
"""The nodes ``find_colour_input`` adds to a material that has no shader taking a colour (a node-group
surface) or no output: Restore Material removes them with the texture."""
_PREVIOUS_KEY = "avatartex_previous"


def ensure_material(obj: bpy.types.Object) -> bpy.types.Material:
    """The object's active material, created (with nodes) when it has none."""
    mat = obj.active_material
    if mat is None:
        mat = bpy.data.materials.new(f"{obj.name} AvatarTex")
        if len(obj.material_slots) == 0 and obj.data.users > 1:
            # A mesh other objects share: an empty slot on it, the material in the object's own, so
            # they do not show one named after this object.
            obj.data.materials.append(None)
            obj.material_slots[0].link = "OBJECT"
            obj.material_slots[0].material = mat
        elif len(obj.material_slots) == 0:
            obj.data.materials.append(mat)
        else:
            obj.active_material = mat
    if not mat.use_nodes:
        mat.use_nodes = True
    return mat


_COPY_OF_KEY = "avatartex_copy_of"
"""On a material copy ``make_single_user`` made: the original material, and whether the slot was
switched to the object (``restore_shared`` puts them back)."""


def make_single_user(obj: bpy.types.Object) -> str:
    """Give ``obj`` its own copy of its active material when other objects show that material too,
    or when it is linked from a library .blend.

    Heads duplicated with Shift+D share one material: writing one head's texture into it would
    change them all. A material linked from a library (or a library override's, whose node tree is
    the library's) cannot keep a texture: this file saves no change to it. A slot linked to a mesh
    that other objects share is switched to the object, so the copy is this object's alone; Restore
    Material gives the slot its original back (``restore_shared``). Returns a sentence for the
    artist, or "" when nothing changed.
    """
    if len(obj.material_slots) == 0:
        return ""
    slot = obj.material_slots[obj.active_material_index]
    mat = slot.material
    if mat is None:
        return ""
    library = mat.library
    if library is None and mat.override_library is not None and mat.override_library.reference is not None:
        library = mat.override_library.reference.library
    others = sorted(
        o.name
        for o in bpy.data.objects
        if o != obj and o.library is None and any(s.material == mat for s in o.material_slots)
    )
    # Objects given a copy of this material before: Restore Material gives them this one back, which
    # must then still look as it did (a duplicate textured after its twin showed the twin's face).
    returning = sorted(
        o.name
        for o in bpy.data.objects
        if o != obj and o.library is None and any(copied_from(s.material) == mat for s in o.material_slots)
    )
    if not others and not returning and library is None:
        return ""
    _drop_restored_copies(mat)
    copy = mat.copy()
    # Named for the object it is for: 'Skin.001', 'Skin.003' in the material list said nothing of
    # which head shows which (Blender adds .001 where the name is taken, and cuts a long one).
    copy.name = f"{mat.name} {obj.name}"
    switched = slot.link == "DATA" and obj.data.users > 1
    if switched:
        slot.link = "OBJECT"
    slot.material = copy
    # The original by reference (an ID property: a linked material nothing else shows is then still
    # kept in the file) and how the slot held it.
    copy[_COPY_OF_KEY] = {"material": mat, "switched": switched}
    if library is not None:
        return (
            f"The material '{mat.name}' of '{obj.name}' is linked from {bpy.path.abspath(library.filepath)}, "
            f"which keeps no change made here: '{obj.name}' now has a local copy of it that holds the "
            "texture (Restore Material gives it the library's back)."
        )
    if not others:
        return (
            f"'{obj.name}' showed the material '{mat.name}', which {_names(returning)} "
            f"{'goes' if len(returning) == 1 else 'go'} back to on Restore Material: it now has its own "
            f"copy '{copy.name}', so '{mat.name}' stays as it was."
        )
    return (
        f"'{obj.name}' shared the material '{mat.name}' with {_names(others)}: it now has its own copy "
        f"'{copy.name}'{KEEP_LOOK}"
    )


def _drop_restored_copies(mat: bpy.types.Material) -> None:
    """Remove the copies of ``mat`` that nothing shows any more: Restore Material gave ``mat`` back
    to their heads and left them unshown, and the next Generate named its new copy 'Skin Head.001',
    then '.002' (the name taken by a copy Blender does not even save). Removing one is undone with
    the Generate that did it."""
    for stale in [m for m in bpy.data.materials if m.library is None and copied_from(m) == mat]:
        if stale.users == 0:
            bpy.data.materials.remove(stale)


def _names(names: list[str]) -> str:
    """'A', 'B', 'C' and 2 more."""
    return ", ".join(f"'{name}'" for name in names[:3]) + (
        f" and {len(names) - 3} more" if len(names) > 3 else ""
    )


KEEP_LOOK = ", so the others keep their look."
"""How ``make_single_user``'s note ends; ``toned_through_shared`` says instead what a body sharing the
material then shows."""


def toned_through_shared(notes: list[str], head: bpy.types.Object, body: bpy.types.Object) -> None:
    """Where ``head`` was given its own copy of a material ``body`` shows (one skin material for head
    and body) and the body now shows its image toned to the face through it: the copy's note no
    longer says the others keep their look."""
    for slot in head.material_slots:
        original = copied_from(slot.material)
        # The body toned through a copy of its own (the original stays as it was for Restore).
        if original is None or all(copied_from(s.material) != original for s in body.material_slots):
            continue
        start = f"'{head.name}' shared the material '{original.name}' with "
        own_copy = f"'{body.name}' showed the material '{original.name}', which "
        notes[:] = [note for note in notes if not note.startswith(own_copy)]
        for i, note in enumerate(notes):
            if note.startswith(start) and note.endswith(KEEP_LOOK):
                notes[i] = (
                    f"{note[: -len(KEEP_LOOK)]}, which holds the face's texture; '{body.name}' shows a "
                    f"copy of '{original.name}' with its skin toned to this face (Restore Material on "
                    f"'{body.name}' gives it '{original.name}' back)."
                )


def copied_from(mat: bpy.types.Material | None) -> bpy.types.Material | None:
    """The material ``make_single_user`` copied ``mat`` from, where it still exists; else None."""
    record = mat.get(_COPY_OF_KEY) if mat is not None else None
    original = record.get("material") if record is not None else None
    return original if isinstance(original, bpy.types.Material) and original != mat else None


def restore_shared(obj: bpy.types.Object) -> list[str]:
    """Give back to ``obj``'s slots the materials ``make_single_user`` copied (shared with other
    objects, or linked from a library), where they still exist: after Restore Material the head
    shows the material the others show again, and later edits to it reach it. Returns the names of
    the originals given back."""
    given = []
    for slot in obj.material_slots:
        copy = slot.material
        original = copied_from(copy)
        if original is None or texture_node(original) is not None:
            continue  # textured since (by a file of an older version): the restored copy stays
        origin = copy[_COPY_OF_KEY]
        if origin.get("switched") and slot.link == "OBJECT":
            slot.link = "DATA"  # the mesh's slot kept the original all along
        if slot.material != original:
            slot.material = original
        given.append(original.name)
    return given


COLOUR_INPUTS = ("Base Color", "Color")
"""The inputs that take a surface's colour: a Principled BSDF's; a Diffuse, Toon, Sheen, Subsurface
Scattering or Emission shader's."""


def _output(tree: bpy.types.NodeTree) -> bpy.types.Node | None:
    """The material output the render uses (the active one), if any."""
    return next(
        (n for n in tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial" and n.is_active_output), None
    ) or next((n for n in tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial"), None)


def _surface_nodes(output: bpy.types.Node | None):
    """The shader nodes the render shows through ``output``'s surface, nearest first: the surface's
    own, and through Mix and Add Shaders (any shader input) the shaders they mix."""
    if output is None:
        return
    todo, seen = [link.from_node for link in output.inputs["Surface"].links], set()
    while todo:
        node = todo.pop(0)
        if node.name in seen:
            continue
        seen.add(node.name)
        yield node
        todo += [link.from_node for socket in node.inputs if socket.type == "SHADER" for link in socket.links]


def _shown_colour(output: bpy.types.Node | None) -> bpy.types.NodeSocket | None:
    """The colour input of the shader the render shows through ``output``: the surface's own, or
    through Mix and Add Shaders the first one an image colours (the artist's skin; a sheen or coat
    layer of a plain colour beside it is not the skin), else the first Principled BSDF's, else the
    first shader's that has one."""
    found = []
    for node in _surface_nodes(output):
        colour = _colour_input(node)
        if colour is None or not any(out.type == "SHADER" for out in node.outputs):
            continue
        found.append(colour)
    imaged = [c for c in found if c.is_linked and c.links[0].from_node.bl_idname == "ShaderNodeTexImage"]
    principled = [c for c in found if c.node.bl_idname == "ShaderNodeBsdfPrincipled"]
    return (imaged or principled or found or [None])[0]


def _colour_input(node: bpy.types.Node) -> bpy.types.NodeSocket | None:
    """A shader node's colour input: COLOUR_INPUTS by name; on a node group (a studio's skin shader)
    whose inputs are named otherwise ("Albedo", "Skin Color"), its colour input an image feeds, else
    its only colour input. None where there is none, or several and no image tells which."""
    colour = next((node.inputs[name] for name in COLOUR_INPUTS if name in node.inputs), None)
    if colour is not None or node.bl_idname != "ShaderNodeGroup":
        return colour
    colours = [socket for socket in node.inputs if socket.type == "RGBA" and socket.enabled]
    imaged = [
        socket
        for socket in colours
        if socket.is_linked and socket.links[0].from_node.bl_idname == "ShaderNodeTexImage"
    ]
    if len(imaged) == 1:
        return imaged[0]
    return colours[0] if len(colours) == 1 else None


def find_colour_input(mat: bpy.types.Material) -> bpy.types.NodeSocket:
    """The input the texture is shown through: the colour input of the shader the material output
    shows (``_shown_colour``: a Principled BSDF's Base Color; a Diffuse or Toon shader's Color), else
    any Principled BSDF's Base Color, else a new Principled BSDF's (linked to the output where the
    output has no surface yet; ``shown`` tells whether the render then shows it)."""
    tree = mat.node_tree
    output = _output(tree)
    colour = _shown_colour(output)
    if colour is not None:
        return colour
    node = next((n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"), None)
    if node is not None:
        return node.inputs["Base Color"]
    node = tree.nodes.new("ShaderNodeBsdfPrincipled")
    node.name = node.label = ADDED_SHADER  # taken away again by restore
    if output is None:
        output = tree.nodes.new("ShaderNodeOutputMaterial")
        output.name = output.label = ADDED_OUTPUT
        output.location = (300, 0)
    if not output.inputs["Surface"].is_linked:
        tree.links.new(node.outputs["BSDF"], output.inputs["Surface"])
    return node.inputs["Base Color"]


def shown(mat: bpy.types.Material, socket: bpy.types.NodeSocket) -> bool:
    """Whether the render shows what is linked into ``socket`` (a shader input of ``mat``): its
    node feeds the active material output's surface, directly or through Mix and Add Shaders."""
    return any(node == socket.node for node in _surface_nodes(_output(mat.node_tree)))


def read_uv_map(obj: bpy.types.Object) -> str:
    """The UV map the image ``obj``'s active material shows as its colour reads through a UV Map node:
    an artist's skin laid out in one map of several (a second one for lightmaps). '' where no node
    names one of the mesh's maps (the image reads the map marked for rendering)."""
    mat = obj.active_material
    if mat is None or not mat.use_nodes or mat.node_tree is None:
        return ""
    colour = _plugged_into(mat) or _shown_colour(_output(mat.node_tree))
    if colour is None or not colour.is_linked:
        return ""
    image = colour.links[0].from_node
    if image.bl_idname != "ShaderNodeTexImage" or not image.inputs["Vector"].is_linked:
        return ""
    uv = image.inputs["Vector"].links[0].from_node
    named = uv.uv_map if uv.bl_idname == "ShaderNodeUVMap" else ""
    return named if named in obj.data.uv_layers else ""


def texture_node(mat: bpy.types.Material) -> bpy.types.Node | None:
    """The AvatarTex Image Texture node of ``mat``, if any."""
    if mat is None or mat.node_tree is None:
        return None
    return mat.node_tree.nodes.get(NODE_NAME)


BODY_RATIO = 3.0
"""A mesh whose bounding box is this much longer than it is thin is a character, not a head (the
backend's body.BODY_RATIO)."""


def body_base_image(obj: bpy.types.Object) -> str:
    """For a full-body character, the file of the image its material shows as Base Color (the
    artist's, as it was before AvatarTex touched it): the backend keeps the body from it and replaces
    only the head. '' for a head, or when there is no such image file."""
    dims = sorted(float(d) for d in obj.dimensions)
    if dims[-1] <= BODY_RATIO * max(dims[0], 1e-9) or obj.active_material is None:
        return ""
    if _materials_in_use(obj) > 1:
        # Only the face's material is textured (the backend says which after the run): the active
        # slot's image may be the body's or the eyes', not the one the texture replaces.
        return ""
    image = _base_color_image(obj.active_material)  # read only: no node is added to look
    if image is None or not image.filepath:
        return ""
    path = bpy.path.abspath(image.filepath, library=image.library)
    if image.source == "TILED":  # UDIM tiles: name.<UDIM>.png, each tile its own file
        tiles = [path.replace("<UDIM>", str(tile.number)) for tile in image.tiles]
        return path if any(os.path.isfile(t) for t in tiles) else ""
    return path if os.path.isfile(path) else ""


def base_image(obj: bpy.types.Object) -> bpy.types.Image | None:
    """The image the object's skin shows as Base Color: the first material slot's with one (as it was
    before AvatarTex touched it; read only) that has pixels, a file or packed into the .blend (a glTF
    or VRM import packs them all); None where none has."""
    for slot in obj.material_slots:
        image = _base_color_image(slot.material)
        if image is not None and has_pixels(image):
            return image
    return None


def has_pixels(image: bpy.types.Image) -> bool:
    """Whether the image's pixels can be had: a file of its own, packed into the .blend, or loaded."""
    return image.packed_file is not None or image.has_data or bool(_file_of(image))


def _file_of(image: bpy.types.Image) -> str:
    """The image's own file on disk, '' where it has none (packed, generated, missing)."""
    if image.packed_file is not None or image.source != "FILE" or not image.filepath:
        return ""
    path = bpy.path.abspath(image.filepath, library=image.library)
    return path if os.path.isfile(path) else ""


def image_file(image: bpy.types.Image, spare: Path) -> str:
    """A file holding ``image``'s pixels: its own, else a copy written to ``spare`` (a packed image's:
    the image datablock, its path and packing left as they were)."""
    own = _file_of(image)
    if own:
        return own
    spare.parent.mkdir(parents=True, exist_ok=True)
    if "save_copy" in bpy.types.Image.bl_rna.functions["save"].parameters:
        image.save(filepath=str(spare), save_copy=True)
    else:  # Blender < 4.1: saving a packed image elsewhere keeps its path
        image.save(filepath=str(spare))
    return str(spare)


def slots_showing(obj: bpy.types.Object, image: bpy.types.Image) -> list[int]:
    """The material slots of ``obj`` whose Base Color shows ``image`` (as it was before AvatarTex
    touched them)."""
    return [i for i, slot in enumerate(obj.material_slots) if _base_color_image(slot.material) == image]


def texture_sets(obj: bpy.types.Object) -> tuple[list[int], list[str]]:
    """The object's material slots grouped by the image their Base Color shows: materials that share
    one image (a face, its lips and ears, as character imports split them) are one texture and are
    textured together. Returns each slot's set index and each set's name (its materials' names).
    A slot without such an image is a set of its own."""
    sets, names, _images = _grouped_by_image(obj)
    return sets, names


def set_images(obj: bpy.types.Object) -> list[bpy.types.Image | None]:
    """The image each of the object's texture sets (``texture_sets``) shows as Base Color, by set
    index; None for a set without one."""
    return _grouped_by_image(obj)[2]


def _grouped_by_image(obj: bpy.types.Object) -> tuple[list[int], list[str], list[bpy.types.Image | None]]:
    """Each slot's texture set, each set's name and each set's image (``texture_sets``)."""
    keys: list = []
    names: list[list[str]] = []
    images: list[bpy.types.Image | None] = []
    sets = []
    for index, slot in enumerate(obj.material_slots):
        mat = slot.material
        image = _base_color_image(mat)
        key = ("image", image.name) if image is not None else ("slot", index)
        if key not in keys:
            keys.append(key)
            names.append([])
            images.append(image)
        sets.append(keys.index(key))
        names[keys.index(key)].append(mat.name if mat is not None else f"slot {index}")
    return sets, [", ".join(n) for n in names], images


def _base_color_image(mat: bpy.types.Material | None) -> bpy.types.Image | None:
    """The image a material's Principled BSDF shows as Base Color (as it was before AvatarTex touched
    it), read only; None when there is none."""
    if mat is None or not mat.use_nodes or mat.node_tree is None:
        return None
    previous = mat.get(_PREVIOUS_KEY)
    if previous is not None and previous.get("image"):
        return bpy.data.images.get(previous["image"])
    for node in mat.node_tree.nodes:
        if node.bl_idname == "ShaderNodeBsdfPrincipled" and node.inputs["Base Color"].is_linked:
            return getattr(node.inputs["Base Color"].links[0].from_node, "image", None)
    return None


def _materials_in_use(obj: bpy.types.Object) -> int:
    """How many material slots the object's faces use."""
    polygons = getattr(obj.data, "polygons", None)
    if polygons is None or len(polygons) == 0 or len(obj.material_slots) < 2:
        return min(len(obj.material_slots), 1)
    indices = np.empty(len(polygons), np.int32)
    polygons.foreach_get("material_index", indices)
    return len(np.unique(indices))


def apply_image(obj: bpy.types.Object, image: bpy.types.Image, uv_map: str) -> tuple[bpy.types.Material, str]:
    """Show ``image`` through the object's material: Image Texture -> the surface's colour input
    (``find_colour_input``: a Principled BSDF's Base Color, a Diffuse or Toon shader's Color).

    The first time, that input and what was linked into it are remembered; later calls only swap the
    image. A material other objects show too is first copied for this one (``make_single_user``).
    Returns the material and what is to be said: the copy, and a texture the render does not show
    (a surface of nodes with no colour input the texture could go into); "" when neither.
    """
    ensure_material(obj)
    note = make_single_user(obj)
    mat = obj.active_material
    uv_map = uv_map or read_uv_map(obj)  # the map the image it replaces read (``capture.resolve_uv_map``)
    tree = mat.node_tree
    node = tree.nodes.get(NODE_NAME)
    # Plugged before: the same input (materials from before 2026-11-29 remember none: found again).
    base = (_plugged_into(mat) if node is not None else None) or find_colour_input(mat)
    first = node is None
    if node is None:
        previous: dict = {"color": list(base.default_value), "target": base.node.name, "input": base.name}
        if base.is_linked:
            link = base.links[0]
            previous["node"] = link.from_node.name
            previous["socket"] = link.from_socket.identifier
            previous["image"] = getattr(getattr(link.from_node, "image", None), "name", "")
            previous["also"] = [[s.node.name, s.name] for s in _fed_alike(tree, link.from_socket, base)]
        mat[_PREVIOUS_KEY] = previous
        node = tree.nodes.new("ShaderNodeTexImage")
        node.name = node.label = NODE_NAME
        node.location = (base.node.location.x - 350, base.node.location.y)
    old = node.image
    node.image = image
    if old is not None and old != image and old.users == 0 and _holds_own_pixels(old):
        # Packed or painted and shown nowhere else now: a save would drop it, and its pixels with it
        # (a packed .blend opened without its textures/ folder, whose file the add-on could not replace).
        old.use_fake_user = True
        note = (
            f"{note} The image '{old.name}' it showed holds pixels no file has (packed or painted): kept "
            "in the .blend (fake user)."
        ).strip()
    tree.nodes.active = node
    _set_uv_input(tree, node, uv_map)
    relinked = []
    for socket in [base, *_also(mat)]:
        if socket.is_linked and _upstream_of(socket, node):
            continue  # the texture, or the artist's nodes after it (a colour grade): left as they are
        if socket.is_linked and not first:
            relinked.append(f"'{socket.links[0].from_node.name}' -> {socket.node.name}.{socket.name}")
        tree.links.new(node.outputs["Color"], socket)
    if relinked:
        note = (
            f"{note} The texture was linked again in place of {', '.join(relinked)} in '{mat.name}'; "
            "Ctrl+Z brings that link back."
        ).strip()
    if not shown(mat, base):
        hidden = (
            f"'{mat.name}' shows its surface through nodes AvatarTex does not plug a colour into: the "
            f"texture is in the node '{NODE_NAME}', linked to '{base.node.name}', which the render does "
            "not show; link it where your shader takes its colour."
        )
        note = f"{note} {hidden}".strip()
    return mat, note


def _holds_own_pixels(image: bpy.types.Image) -> bool:
    """Whether ``image``'s pixels live in the .blend alone: packed (a tiled image's tiles too), or
    painted and not saved."""
    return image.is_dirty or image.packed_file is not None or len(image.packed_files) > 0


def _upstream_of(socket: bpy.types.NodeSocket, node: bpy.types.Node, depth: int = 16) -> bool:
    """Whether ``node`` feeds ``socket``, directly or through other nodes (``depth`` links at most):
    a Hue/Saturation or a Mix the artist put between the texture and the shader."""
    seen, frontier = set(), [link.from_node for link in socket.links]
    for _ in range(depth):
        if node in frontier:
            return True
        seen.update(n.name for n in frontier)
        frontier = [
            link.from_node
            for upstream in frontier
            for linked in upstream.inputs
            for link in linked.links
            if link.from_node.name not in seen
        ]
        if not frontier:
            return False
    return False


def _fed_alike(
    tree: bpy.types.NodeTree, source: bpy.types.NodeSocket, base: bpy.types.NodeSocket
) -> list[bpy.types.NodeSocket]:
    """The colour inputs besides ``base`` of the shaders the render shows (mixed by Mix or Add
    Shaders: a skin and a wet or sheen layer over it) that ``source`` feeds too: the texture replaces
    the artist's colour in each of them, or the render mixes the new face with the old image."""
    found = []
    for shader in _surface_nodes(_output(tree)):
        for name in COLOUR_INPUTS:
            socket = shader.inputs.get(name)
            if (
                socket is not None
                and socket != base
                and socket.is_linked
                and socket.links[0].from_socket == source
            ):
                found.append(socket)
    return found


def _also(mat: bpy.types.Material) -> list[bpy.types.NodeSocket]:
    """The other colour inputs the texture was plugged into (``_fed_alike``, remembered)."""
    previous = mat.get(_PREVIOUS_KEY)
    found = []
    for node_name, name in previous.get("also", []) if previous is not None else []:
        node = mat.node_tree.nodes.get(node_name)
        if node is not None and name in node.inputs:
            found.append(node.inputs[name])
    return found


def _plugged_into(mat: bpy.types.Material) -> bpy.types.NodeSocket | None:
    """The colour input AvatarTex plugged its texture into before (remembered on the material)."""
    previous = mat.get(_PREVIOUS_KEY)
    if previous is None:
        return None
    target = mat.node_tree.nodes.get(previous.get("target", ""))
    name = previous.get("input", "Base Color")
    if target is None or name not in target.inputs:
        return None
    return target.inputs[name]


def _set_uv_input(tree: bpy.types.NodeTree, node: bpy.types.Node, uv_map: str) -> None:
    """Feed the texture the UV map it was baked for (a UV Map node), unless it is the default one."""
    uv_node_name = f"{NODE_NAME} UV"
    uv_node = tree.nodes.get(uv_node_name)
    if not uv_map:
        if uv_node is not None:
            tree.nodes.remove(uv_node)
        return
    if uv_node is None:
        uv_node = tree.nodes.new("ShaderNodeUVMap")
        uv_node.name = uv_node.label = uv_node_name
        uv_node.location = (node.location.x - 250, node.location.y)
    uv_node.uv_map = uv_map
    tree.links.new(uv_node.outputs["UV"], node.inputs["Vector"])


def restore(mat: bpy.types.Material) -> bool:
    """Put Base Color back as it was before AvatarTex touched ``mat``; returns whether anything changed."""
    node = texture_node(mat)
    previous = mat.get(_PREVIOUS_KEY) if mat is not None else None
    if node is None and previous is None:
        return False
    tree = mat.node_tree
    base = _plugged_into(mat) or find_colour_input(mat)  # materials from before 2026-11-29: no target
    also = _also(mat)
    for extra in (node, tree.nodes.get(f"{NODE_NAME} UV")):
        if extra is not None:
            tree.nodes.remove(extra)
    if previous is not None:
        previous = previous.to_dict() if hasattr(previous, "to_dict") else dict(previous)
        base.default_value = previous.get("color", base.default_value)
        source = tree.nodes.get(previous.get("node", ""))
        if source is not None:
            socket = next((s for s in source.outputs if s.identifier == previous.get("socket")), None)
            if socket is not None:
                for target in [base, *also]:
                    tree.links.new(socket, target)
        del mat[_PREVIOUS_KEY]
    for added in (ADDED_SHADER, ADDED_OUTPUT):
        if tree.nodes.get(added) is not None:
            tree.nodes.remove(tree.nodes[added])
    return True
