"""Mesh capture: the evaluated mesh of an object (modifiers applied) as the backend's ``.npz`` file.

All arrays are read with ``foreach_get`` into numpy buffers; there is no Python loop over vertices.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bpy
import numpy as np

from . import errors, material
from .paths import protocol

FACING_VECTORS = {
    "-Y": (0.0, -1.0, 0.0),
    "+Y": (0.0, 1.0, 0.0),
    "-X": (-1.0, 0.0, 0.0),
    "+X": (1.0, 0.0, 0.0),
    "+Z": (0.0, 0.0, 1.0),
    "-Z": (0.0, 0.0, -1.0),
}
"""Directions a face can look towards, in world space. Blender's front view looks along +Y, so a
character facing the front view looks towards -Y: that is the default hint."""


def check_mesh_object(obj: bpy.types.Object | None) -> None:
    """Raise a clear AvatarTexError when ``obj`` cannot be textured."""
    proto = protocol()
    if obj is None:
        raise errors.error(
            errors.NOTHING_SELECTED, "Nothing is selected.", "Select a head mesh object and try again."
        )
    if obj.type != "MESH":
        kind = obj.type.lower().replace("_", " ")
        article = "an" if kind[0] in "aeiou" else "a"
        hint = "Select a mesh object (the head) and try again."
        if obj.instance_type == "COLLECTION" and obj.instance_collection is not None:
            hint = (
                f"It shows the collection '{obj.instance_collection.name}': select the head mesh in that "
                "collection (every instance shows its texture), or Object > Apply > Make Instances Real "
                "to texture this one alone."
            )
        raise errors.error(errors.NOT_A_MESH, f"'{obj.name}' is {article} {kind}, not a mesh.", hint)
    # An override's own data may stay linked: what it changes is saved with this file.
    linked = obj.library if obj.library is not None else None
    if linked is None and obj.override_library is None and obj.data is not None:
        linked = obj.data.library
    if linked is not None:
        raise errors.error(
            errors.LINKED_DATA,
            f"'{obj.name}' is linked from {linked.filepath}: a texture put into it here would be lost "
            "when this file is saved and opened again.",
            "Make it local first (Object > Relations > Make Local > Selected Objects, Data and "
            "Materials) or make a library override (Object > Library Override > Make), then generate.",
        )
    # An override's mesh still linked has no slot to add a material to: one added here is not saved.
    if obj.data is not None and obj.data.library is not None and len(obj.material_slots) == 0:
        raise errors.error(
            errors.LINKED_DATA,
            f"'{obj.name}' has no material, and its mesh is linked from {obj.data.library.filepath}: a "
            "material added to it here would be lost when this file is saved and opened again.",
            "Give the head a material in that file, or make its mesh local (Object > Relations > Make "
            "Local > Selected Objects and Data), then generate.",
        )
    if len(obj.data.polygons) == 0:
        raise errors.error(
            proto.ErrorCode.MESH_EMPTY, f"Mesh '{obj.name}' has no faces.", "Texture a mesh with faces."
        )
    if len(obj.data.uv_layers) == 0:
        raise errors.error(
            proto.ErrorCode.NO_UV_MAP,
            f"Mesh '{obj.name}' has no UV map.",
            f"Unwrap it in {obj.data.library.filepath}, where the mesh is linked from, and try again."
            if obj.data.library is not None
            else "Click 'Unwrap' in the AvatarTex panel (or UV > Smart UV Project) and try again.",
        )


def resolve_uv_map(obj: bpy.types.Object, uv_map: str) -> str:
    """The UV map to bake into: the named one, else the one the material's colour image reads through a
    UV Map node (``material.read_uv_map``), else the one marked for rendering, else the active one."""
    layers = obj.data.uv_layers
    if uv_map:
        if uv_map not in layers:
            raise errors.error(
                protocol().ErrorCode.UV_MAP_NOT_FOUND,
                f"Mesh '{obj.name}' has no UV map named '{uv_map}'.",
                f"Pick one of: {', '.join(layers.keys())} (or leave the field empty).",
            )
        return uv_map
    read = material.read_uv_map(obj)
    if read:
        return read
    for layer in layers:
        if layer.active_render:
            return layer.name
    return layers.active.name if layers.active else layers[0].name


def evaluated_depsgraph() -> bpy.types.Depsgraph:
    """The evaluated depsgraph, also from a timer (where the context may have no view layer)."""
    try:
        return bpy.context.evaluated_depsgraph_get()
    except (AttributeError, RuntimeError, TypeError):
        scene = bpy.context.scene or bpy.data.scenes[0]
        depsgraph = scene.view_layers[0].depsgraph
        depsgraph.update()
        return depsgraph


def _rigs(obj: bpy.types.Object) -> set:
    """The armatures that deform or carry ``obj``: its Armature modifiers' (shown in the viewport)
    and those of its parents."""
    rigs = {
        m.object.data
        for m in obj.modifiers
        if m.type == "ARMATURE" and m.object is not None and m.object.type == "ARMATURE" and m.show_viewport
    }
    parent = obj.parent
    while parent is not None:
        if parent.type == "ARMATURE":
            rigs.add(parent.data)
        parent = parent.parent
    return rigs


@contextmanager
def at_rest(objects: list[bpy.types.Object]) -> Iterator[list[str]]:
    """Inside, the armatures that deform or carry ``objects`` (``_rigs``) are in their rest position,
    as the character was modelled: a posed head (turned, tilted, a jaw bone open) is captured as if
    unposed, so its texture fits the character in every pose. Yields the names of the armatures that
    were posed (a bone moved from its rest); their Pose Position is put back on leaving, whatever
    happens inside."""
    rigs = sorted(
        {rig for obj in objects if obj is not None for rig in _rigs(obj) if rig.pose_position != "REST"},
        key=lambda rig: rig.name,
    )
    posed = [rig.name for rig in rigs if _moved(rig)]
    for rig in rigs:
        rig.pose_position = "REST"
    if rigs:
        bpy.context.view_layer.update()
    try:
        yield posed
    finally:
        for rig in rigs:
            rig.pose_position = "POSE"
        if rigs:
            bpy.context.view_layer.update()


def _moved(rig: bpy.types.Armature) -> bool:
    """Whether a bone of an armature datablock is posed away from its rest (in any object showing it;
    a rig imported in its rest pose, every bone at identity, is not: nothing to say)."""
    for obj in bpy.data.objects:
        if obj.type == "ARMATURE" and obj.data == rig and obj.pose is not None:
            for bone in obj.pose.bones:
                if not np.allclose(np.array(bone.matrix_basis), np.eye(4), atol=1e-5):
                    return True
    return False


def shape_keys_on(obj: bpy.types.Object) -> list[str]:
    """The object's shape keys that change its shape now ('JawOpen 1.00'): not the basis, not muted,
    of a value other than 0 (or the one key shown alone by the pin). Captured as they shape the face:
    a key that makes the character (an age, a weight, a sculpted identity) is its shape; an
    expression left on (a jaw open, a blink) moves the texture's features off the face at rest."""
    keys = getattr(obj.data, "shape_keys", None)
    if keys is None or not keys.use_relative or len(keys.key_blocks) < 2:
        return []

    def moves(block) -> bool:  # a key that moves no vertex from the one it is relative to changes nothing
        ref = block.relative_key
        a, b = (np.empty(len(k.data) * 3, np.float32) for k in (block, ref))
        block.data.foreach_get("co", a)
        ref.data.foreach_get("co", b)
        return not np.allclose(a, b, atol=1e-6)

    blocks = list(keys.key_blocks)[1:]
    if obj.show_only_shape_key:
        index = obj.active_shape_key_index
        blocks = [keys.key_blocks[index]] if 0 < index < len(keys.key_blocks) else []
        return [f"{b.name} (shown alone)" for b in blocks if not b.mute and moves(b)]
    return [f"{b.name} {b.value:.2f}" for b in blocks if not b.mute and abs(b.value) > 1e-3 and moves(b)]


def _triangle_arrays(mesh: bpy.types.Mesh, uv_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A triangulated mesh's (``calc_loop_triangles``) positions (V, 3), triangles (T, 3) and the UV
    map's per-corner UVs (T, 3, 2), read with ``foreach_get``."""
    n_verts, n_loops, n_tris = len(mesh.vertices), len(mesh.loops), len(mesh.loop_triangles)
    positions = np.empty(n_verts * 3, np.float32)
    mesh.vertices.foreach_get("co", positions)
    triangles = np.empty(n_tris * 3, np.int32)
    mesh.loop_triangles.foreach_get("vertices", triangles)
    tri_loops = np.empty(n_tris * 3, np.int32)
    mesh.loop_triangles.foreach_get("loops", tri_loops)
    loop_uvs = np.empty(n_loops * 2, np.float32)
    mesh.uv_layers[uv_name].uv.foreach_get("vector", loop_uvs)
    uvs = loop_uvs.reshape(-1, 2)[tri_loops].reshape(n_tris, 3, 2)
    return positions.reshape(-1, 3), triangles.reshape(-1, 3), uvs


def capture_object(
    obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, uv_map: str, path: Path, facing: str = "-Y"
) -> Path:
    """Write the evaluated mesh of ``obj`` with UV map ``uv_map`` to ``path`` (``protocol.CAPTURE_KEYS``).

    Positions are oriented as the artist sees them: the object's world rotation is applied (an
    importer's 90-degree X rotation, a parent's transform, a mirroring negative scale), so the facing
    and up hints, which are world axes, agree with the geometry. The world translation and the overall
    scale (an FBX's 0.01) are left out: where a head stands and how big it is do not change its
    texture, and such copies stay one mesh for the backend's per-mesh cache.
    """
    check_mesh_object(obj)
    uv_name = resolve_uv_map(obj, uv_map)
    obj_eval = obj.evaluated_get(depsgraph)
    mesh = obj_eval.to_mesh()
    try:
        if uv_name not in mesh.uv_layers:
            raise errors.error(
                protocol().ErrorCode.UV_MAP_NOT_FOUND,
                f"A modifier of '{obj.name}' removes the UV map '{uv_name}'.",
                "Keep the UV map through the modifier stack (or apply it first).",
            )
        mesh.calc_loop_triangles()
        n_verts, n_tris = len(mesh.vertices), len(mesh.loop_triangles)
        if n_tris == 0:
            raise errors.error(
                protocol().ErrorCode.MESH_EMPTY,
                f"Mesh '{obj.name}' has no faces.",
                "Texture a mesh with faces.",
            )
        positions, triangles, uvs = _triangle_arrays(mesh, uv_name)
        normals = np.empty(n_verts * 3, np.float32)
        if hasattr(mesh, "vertex_normals"):
            mesh.vertex_normals.foreach_get("vector", normals)
        else:  # Blender < 4.1
            mesh.vertices.foreach_get("normal", normals)
        materials = np.empty(n_tris, np.int32)
        mesh.loop_triangles.foreach_get("material_index", materials)
        pins, pin_names = _pins(obj, positions)
        linear = np.array(obj_eval.matrix_world, np.float64)[:3, :3]
    finally:
        obj_eval.to_mesh_clear()
    positions, normals, triangles, uvs = _to_world(
        obj, linear, positions, normals.reshape(-1, 3), triangles, uvs
    )
    data = {
        "positions": positions,
        "triangles": triangles,
        "uvs": uvs,
        "normals": normals,
        "name": np.array(obj.name),
        "up": np.array([0.0, 0.0, 1.0], np.float32),
    }
    if facing in FACING_VECTORS:
        data["forward"] = np.array(FACING_VECTORS[facing], np.float32)
    if pins is not None:
        data["pins"], data["pin_names"] = pins, pin_names
    # Eyes, teeth or a body in materials (and UVs) of their own: the triangles' texture sets (slots
    # whose Base Color shows one image are one set: a face, its lips and ears).
    sets, set_names = material.texture_sets(obj)
    if len(sets) > 1:
        materials = np.asarray(sets, np.int32)[np.clip(materials, 0, len(sets) - 1)]
        if len(np.unique(materials)) > 1:
            data["materials"] = materials
            data["material_names"] = np.array(set_names)
    return _write(path, data)


BODY_REACH = 0.08
"""Distance, as a share of the head's height, within which a body object's surface lies from the
bottom of the head's vertices (its neck) for it to be the body the head sits on (``separate_body``):
its neck ring on or just inside the head's."""
BODY_BELOW = 0.5
"""How far below the head's lowest point, as a share of the head's height, a body object reaches
at least: a copy of the head in its place (Shift+D), hair or a hat is no body."""
BODY_TOUCH_SHARE = 0.2
"""Share of the head's bottom vertices (its lowest ``NECK_SLICE``) that must lie within ``BODY_REACH``
of a body object's surface."""
NECK_SLICE = 0.15
"""The bottom of the head, as a share of its height, whose vertices are looked at for a body."""


def _world_points(obj: bpy.types.Object) -> np.ndarray:
    """The object's own mesh's vertices in world space (N, 3): no modifier evaluated (a search)."""
    mesh = obj.data
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    matrix = np.array(obj.matrix_world, np.float64)
    return co.reshape(-1, 3).astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]


def _triangles_in_box(
    mesh: bpy.types.Mesh, corners: np.ndarray, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """(T, 3) vertex indices of ``mesh``'s triangles whose bounding box meets the box ``low``..``high``
    (``corners``: the mesh's vertices in the box's space)."""
    mesh.calc_loop_triangles()
    triangles = np.empty(len(mesh.loop_triangles) * 3, np.int32)
    mesh.loop_triangles.foreach_get("vertices", triangles)
    triangles = triangles.reshape(-1, 3)
    points = corners[triangles]
    meets = np.all((points.max(axis=1) >= low) & (points.min(axis=1) <= high), axis=1)
    return triangles[meets]


def separate_body(head: bpy.types.Object) -> tuple[bpy.types.Object, bpy.types.Image] | None:
    """The body a head sits on when it is an object of its own (VRoid's Face and Body, a head set on
    a stock body), and the image its skin material shows (``material.base_image``: a file or packed):
    the head's ``body_object`` where the artist set one, else the visible mesh object with such an
    image that reaches well below the head (``BODY_BELOW``) and whose surface meets the bottom of the
    head's (``BODY_REACH``, ``BODY_TOUCH_SHARE``), the most of it. None for a head alone, or a body
    that shows no image: nothing to tone. Its surface, not its vertices: a blocked-out torso or a
    32-sided cylinder under a bust touches the head with faces whose corners are far from it."""
    from mathutils.bvhtree import BVHTree

    chosen = head.avatartex.body_object
    if chosen is not None:  # the artist's: sent as it is (the backend says where it does not meet)
        image = material.base_image(chosen) if chosen != head and len(chosen.data.uv_layers) else None
        return (chosen, image) if image is not None else None
    points = _world_points(head)
    if len(points) == 0:
        return None
    low, high = points[:, 2].min(), points[:, 2].max()
    reach = BODY_REACH * max(high - low, 1e-9)
    neck = points[points[:, 2] <= low + NECK_SLICE * (high - low)]
    box_lo, box_hi = neck.min(axis=0) - reach, neck.max(axis=0) + reach
    best, best_share = None, BODY_TOUCH_SHARE
    for obj in bpy.context.scene.objects:
        if obj == head or obj.type != "MESH" or not obj.visible_get() or len(obj.data.uv_layers) == 0:
            continue
        image = material.base_image(obj)
        if image is None:
            continue
        corners = _world_points(obj)
        if len(corners) == 0 or corners[:, 2].min() > low - BODY_BELOW * (high - low):
            continue
        triangles = _triangles_in_box(obj.data, corners, box_lo, box_hi)
        if len(triangles) == 0:
            continue
        tree = BVHTree.FromPolygons(corners.tolist(), triangles.tolist(), all_triangles=True)
        share = float(np.mean([tree.find_nearest(point, reach)[0] is not None for point in neck]))
        if share > best_share:
            best, best_share = (obj, image), share
    return best


def capture_body(
    body: bpy.types.Object, head: bpy.types.Object, depsgraph: bpy.types.Depsgraph, path: Path
) -> Path:
    """Write the evaluated mesh of ``body`` (its render UV map) to ``path`` in the coordinates of
    ``head``'s capture (``capture_object``: world space less the head's translation and overall
    scale), so the backend finds where the two meet."""
    uv_name = resolve_uv_map(body, "")
    obj_eval = body.evaluated_get(depsgraph)
    mesh = obj_eval.to_mesh()
    try:
        mesh.calc_loop_triangles()
        if len(mesh.loop_triangles) == 0 or uv_name not in mesh.uv_layers:
            raise errors.error(
                protocol().ErrorCode.MESH_EMPTY,
                f"The body '{body.name}' has no faces or loses its UV map in its modifiers.",
                "Clear the head's Body field in the AvatarTex panel, or fix the body.",
            )
        positions, triangles, uvs = _triangle_arrays(mesh, uv_name)
        body_matrix = np.array(obj_eval.matrix_world, np.float64)
    finally:
        obj_eval.to_mesh_clear()
    head_matrix = np.array(head.evaluated_get(depsgraph).matrix_world, np.float64)
    scale = abs(float(np.linalg.det(head_matrix[:3, :3]))) ** (1.0 / 3.0)
    world = positions.astype(np.float64) @ body_matrix[:3, :3].T + body_matrix[:3, 3]
    if np.linalg.det(body_matrix[:3, :3]) < 0:  # mirrored: keep the corners counter-clockwise outside
        triangles, uvs = np.ascontiguousarray(triangles[:, ::-1]), np.ascontiguousarray(uvs[:, ::-1])
    data = {
        "positions": ((world - head_matrix[:3, 3]) / max(scale, 1e-12)).astype(np.float32),
        "triangles": triangles,
        "uvs": uvs,
        "name": np.array(body.name),
    }
    return _write(path, data)


def _write(path: Path, data: dict) -> Path:
    """``data`` as the ``.npz`` file ``path``, atomically (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(path)
    return path


def _to_world(
    obj: bpy.types.Object,
    linear: np.ndarray,
    positions: np.ndarray,
    normals: np.ndarray,
    triangles: np.ndarray,
    uvs: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Apply the world matrix's rotation and shape (``linear``, 3x3, less its overall scale) to a capture.

    Normals take the inverse transpose (right under non-uniform scale); a mirroring transform
    (negative determinant) turns every triangle inside out, so their corners are reversed to keep them
    counter-clockwise from outside.
    """
    det = float(np.linalg.det(linear))
    if not np.isfinite(det) or abs(det) < 1e-12:
        raise errors.error(
            protocol().ErrorCode.MESH_INVALID,
            f"'{obj.name}' is scaled to zero.",
            "Give the object (and its parents) a non-zero scale.",
        )
    # The overall size is left out too (an FBX's 0.01): the mesh keeps its own units, so the backend
    # sees the same head at any scale. Rotation, mirroring and non-uniform scale stay in.
    linear = linear / abs(det) ** (1.0 / 3.0)
    det = float(np.sign(det))
    positions = (positions.astype(np.float64) @ linear.T).astype(np.float32)
    normals = normals.astype(np.float64) @ np.linalg.inv(linear)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = (normals / np.maximum(length, 1e-12)).astype(np.float32)
    if det < 0:
        triangles = np.ascontiguousarray(triangles[:, ::-1])
        uvs = np.ascontiguousarray(uvs[:, ::-1])
    return positions, normals, triangles, uvs


def _pins(obj: bpy.types.Object, eval_positions: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Landmark pins as vertex ids of the *evaluated* mesh.

    Pins are stored as vertex ids of the original mesh; a modifier (subdivision, mirror) renumbers or
    moves vertices, so each pin goes to the evaluated vertex nearest to the original vertex.
    """
    names = protocol().PIN_NAMES
    stored = np.array(obj.avatartex.pins[: len(names)], np.int32)
    if (stored < 0).all():
        return None, None
    mesh = obj.data
    original = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", original)
    original = original.reshape(-1, 3)
    pins = np.full(len(names), -1, np.int32)
    valid = (stored >= 0) & (stored < len(original))
    if len(original) == len(eval_positions) and np.allclose(original, eval_positions):
        pins[valid] = stored[valid]
    else:
        targets = original[stored[valid]]
        dist = ((eval_positions[None, :, :] - targets[:, None, :]) ** 2).sum(-1)
        pins[valid] = dist.argmin(axis=1)
    return pins, np.array(names)
