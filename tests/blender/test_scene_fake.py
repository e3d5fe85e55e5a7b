"""The add-on in a real scene (issue 9), wired to the fake backend: shared materials, re-runs that
replace only the add-on's own files, file modes, unsaved files, batches without a selection, logs,
portrait paths, status lines and the backend warmed up when the panel is first shown.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from blender_support import add_sphere, bpy, material_showing, scene_fingerprint, select_only, shift_d_copy


def _node(obj):
    mat = obj.active_material
    return mat.node_tree.nodes.get("AvatarTex Texture") if mat is not None and mat.node_tree else None


def _file(image) -> Path:
    return Path(bpy.path.abspath(image.filepath))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _save(tmp_path: Path, name: str = "scene.blend") -> Path:
    blend = tmp_path / "project" / name
    blend.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    return blend


def _skin(name: str = "Skin"):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True  # Blender 4.5 makes new materials without nodes
    return mat


# -- item 2: never change another object's look --------------------------------------------------------


def test_batch_over_duplicates_gives_each_its_own_material(addon, fake_backend, portrait, bad_portraits):
    head = add_sphere("Head", portrait)
    skin = _skin()
    head.data.materials.append(skin)
    shift_d = head.copy()  # Shift+D: own mesh, the material shared
    shift_d.data = head.data.copy()
    shift_d.name = "HeadDup"
    alt_d = head.copy()  # Alt+D: the mesh (and its material slot) shared
    alt_d.name = "HeadLinked"
    bystander = head.copy()  # not textured: its look must not change
    bystander.name = "Bystander"
    for obj in (shift_d, alt_d, bystander):
        bpy.context.scene.collection.objects.link(obj)
    shift_d.avatartex.portrait_path = str(bad_portraits["not_image"])
    for obj in bpy.context.scene.objects:
        obj.select_set(obj in (head, shift_d, alt_d))
    bpy.context.scene.avatartex.resolution = 512
    skin_before = scene_fingerprint()["materials"]["Skin"]

    with pytest.raises(RuntimeError, match="2 done, 1 failed"):
        bpy.ops.avatartex.batch_retexture()

    textured = {obj.active_material.name for obj in (head, alt_d)}
    # each copy named for its object ('Skin.001' and 'Skin.003' said nothing of which shows which)
    assert textured == {"Skin Head", "Skin HeadLinked"}
    assert _node(head).image != _node(alt_d).image
    # The failed one and the bystander still show the artist's material, as it was.
    assert shift_d.active_material.name == bystander.active_material.name == "Skin"
    assert scene_fingerprint()["materials"]["Skin"] == skin_before
    # Said where the artist looks (the panel shows the summary's notes).
    notes = " ".join(addon.state.last_summary)
    assert "shared the material 'Skin'" in notes and "own copy" in notes


def test_single_user_copy_is_one_undo_step(addon, fake_backend, portrait):
    head = add_sphere("Head", portrait)
    head.data.materials.append(_skin())
    other = head.copy()  # Alt+D
    other.name = "Other"
    bpy.context.scene.collection.objects.link(other)
    bpy.context.scene.avatartex.resolution = 512
    before = scene_fingerprint()
    bpy.ops.ed.undo_push(message="before")
    assert bpy.ops.avatartex.generate("EXEC_DEFAULT", True) == {"FINISHED"}
    assert bpy.data.objects["Head"].active_material.name != "Skin"
    assert bpy.data.objects["Other"].active_material.name == "Skin"
    bpy.ops.ed.undo()
    after = scene_fingerprint()
    assert after["objects"] == before["objects"] and after["materials"] == before["materials"]


# -- items 3 and 5: repeatable runs, files others can read ------------------------------------------------


def test_a_file_already_there_is_kept_and_the_new_name_said(addon, fake_backend, portrait, tmp_path):
    """A .blend saved beside another one whose Head.png lay in textures/ already: the first Generate
    wrote Head_001.png, rightly leaving the other's file alone, but said only "Done: Head_001.png",
    so the artist looked for Head.png. The summary says why the name changed."""
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    blend = _save(tmp_path)
    textures = blend.parent / "textures"
    textures.mkdir()
    (textures / "Head.png").write_bytes(b"another scene's texture")
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert (textures / "Head.png").read_bytes() == b"another scene's texture"
    assert _file(_node(head).image).name == "Head_001.png"
    said = [note for note in addon.state.last_summary if "Head.png was already in textures/" in note]
    assert said and "Head_001.png" in said[0], addon.state.last_summary
    # Its own file is replaced on the next run, and nothing more is said of the other's.
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert sorted(p.name for p in textures.iterdir()) == ["Head.png", "Head_001.png"]
    assert not any("already in" in note for note in addon.state.last_summary)


def test_a_shot_saved_from_another_beside_it_keeps_that_shots_texture(
    addon, fake_backend, portrait, tmp_path
):
    """shot020.blend saved from shot010.blend in the same folder (a studio's shot made from a template)
    carries shot010's records: its Generate took shot010's Head.png for its own and replaced it, and
    shot010 rendered shot020's face with no word. The file says which .blend it was written for
    (``paths.provenance``): shot020 writes its own and says why; shot010 still replaces its own."""
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    shot010 = _save(tmp_path, "shot010.blend")
    textures = shot010.parent / "textures"
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    bpy.ops.wm.save_mainfile()
    theirs = (textures / "Head.png").read_bytes()
    shot020 = _save(tmp_path, "shot020.blend")
    head = bpy.data.objects["Head"]
    select_only(head)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert (textures / "Head.png").read_bytes() == theirs
    assert _file(_node(head).image).name == "Head_001.png"
    said = [note for note in addon.state.last_summary if "Head.png is shot010.blend's" in note]
    assert said and "Head_001.png" in said[0], addon.state.last_summary
    bpy.ops.wm.save_mainfile()
    assert bpy.ops.avatartex.generate() == {"FINISHED"}  # shot020's own file, replaced in place
    assert sorted(p.name for p in textures.iterdir()) == ["Head.png", "Head_001.png"]
    bpy.ops.wm.open_mainfile(filepath=str(shot010))
    select_only(bpy.data.objects["Head"])
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert sorted(p.name for p in textures.iterdir()) == ["Head.png", "Head_001.png"]
    assert not any("changed since" in note or "shot0" in note for note in addon.state.last_summary)
    assert shot020.is_file()


def test_a_run_whose_blend_was_not_saved_is_replaced_by_the_next(addon, fake_backend, portrait, tmp_path):
    """A render farm's task textured its heads, then stopped on another object's failure before its
    save: the .blend on disk did not know Head.png, and each retry wrote one more copy (Head_001.png,
    Head_002.png...), saying Head.png was "not a file AvatarTex wrote for Head". The file says it was
    (``paths.provenance``): written for this object in this .blend, shown and recorded by nothing,
    it is replaced."""
    add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    blend = _save(tmp_path, "shot030.blend")
    textures = blend.parent / "textures"
    for _ in range(2):
        bpy.ops.wm.open_mainfile(filepath=str(blend))  # the saved file, as the farm's next task opens it
        head = bpy.data.objects["Head"]
        select_only(head)
        assert bpy.ops.avatartex.generate() == {"FINISHED"}
        assert _file(_node(head).image).name == "Head.png"
        assert not any("already in" in note for note in addon.state.last_summary), addon.state.last_summary
    assert sorted(p.name for p in textures.iterdir()) == ["Head.png"]
    # A file of that name written for another object is not taken.
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    other = bpy.data.objects["Head"]
    other.name = "Other"
    (textures / "Head.png").rename(textures / "Other.png")
    kept = (textures / "Other.png").read_bytes()
    select_only(other)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert _file(_node(other).image).name == "Other_001.png"
    assert (textures / "Other.png").read_bytes() == kept


def test_reruns_replace_own_file_never_the_artists(addon, fake_backend, portrait, tmp_path):
    head = add_sphere("Head", portrait)
    settings = bpy.context.scene.avatartex
    settings.resolution = 512
    blend = _save(tmp_path)
    textures = blend.parent / "textures"

    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    image = _node(head).image
    first = _file(image)
    assert first == textures / "Head.png" and image.name == "Head" and image.filepath == "//textures/Head.png"
    assert _mode(first) == 0o644  # readable by other users and farm nodes (umask 022)

    settings.resolution = 1024
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert sorted(p.name for p in textures.iterdir()) == ["Head.png"]  # replaced, no Head_001.png
    assert _node(head).image == image and tuple(image.size) == (1024, 1024)  # reloaded in place

    # The artist paints over Head.png: from then on it is theirs, and the next run leaves it alone.
    first.write_bytes(b"the artist's painting")
    old_mask = os.umask(0o027)
    try:
        assert bpy.ops.avatartex.generate() == {"FINISHED"}
    finally:
        os.umask(old_mask)
    assert first.read_bytes() == b"the artist's painting"
    second = _file(_node(head).image)
    assert second.name == "Head_001.png" and _node(head).image.name == "Head_001"
    assert _mode(second) == 0o640  # the umask is honoured

    # A Shift+D copy carries the record, but the file belongs to the original: the copy writes its own.
    copy = shift_d_copy(head)
    stamp = second.stat().st_mtime_ns
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert second.stat().st_mtime_ns == stamp
    assert _file(_node(copy).image).name == f"{copy.name}.png"


def test_restore_on_a_duplicate_gives_back_the_material_as_it_was_not_its_twins_face(
    addon, fake_backend, portrait, tmp_path
):
    """Head and its Shift+D copy share 'Skin'. Head textured got its own copy; then the copy, alone in
    showing 'Skin', was textured in 'Skin' itself, and Restore Material on Head gave it 'Skin' back:
    Head showed its twin's face. 'Skin' is what Restore gives back, so it stays as it was: the second
    head gets a copy too, and Restore on either shows the artist's material."""
    head = add_sphere("Head", portrait)
    skin = _skin()
    head.data.materials.append(skin)
    bpy.context.scene.avatartex.resolution = 512
    twin = shift_d_copy(head)
    twin.name = "Twin"
    before = scene_fingerprint()["materials"]["Skin"]
    for obj in (head, twin):
        select_only(obj)
        assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert {head.active_material.name, twin.active_material.name}.isdisjoint({"Skin"})
    assert head.active_material != twin.active_material
    assert scene_fingerprint()["materials"]["Skin"] == before
    assert any("'Head' goes back to on Restore Material" in note for note in addon.state.last_summary)
    for obj in (head, twin):
        select_only(obj)
        assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
        assert obj.active_material == skin and _node(obj) is None


def test_a_copied_project_replaces_its_own_texture_and_an_edit_of_the_same_size_is_kept(
    addon, fake_backend, portrait, tmp_path
):
    """A project folder copied (cp -r, unzipped, checked out, synced) gives its files times of their
    own: the add-on's own texture was taken for an edit ("changed since AvatarTex wrote it"), kept,
    and the next texture written beside it as Head_001.png. The file's bytes vouch for it; an edit
    that keeps the file's size and time does not pass for the add-on's."""
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    blend = _save(tmp_path)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    bpy.ops.wm.save_mainfile()
    copied = tmp_path / "copied"
    shutil.copytree(blend.parent, copied)
    texture = copied / "textures" / "Head.png"
    os.utime(texture, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))  # a copy's own time
    bpy.ops.wm.open_mainfile(filepath=str(copied / blend.name))
    head = bpy.data.objects["Head"]
    select_only(head)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert _file(_node(head).image) == texture and _node(head).image.name == "Head"
    assert sorted(p.name for p in texture.parent.iterdir()) == ["Head.png"]
    assert not any("changed since" in note for note in addon.state.last_summary)
    # An edit of the same size, its time put back: the bytes differ, the file is the artist's.
    edited = bytearray(texture.read_bytes())
    edited[-20] ^= 0xFF
    stat_before = texture.stat()
    texture.write_bytes(bytes(edited))
    os.utime(texture, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns + 1))
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert texture.read_bytes() == bytes(edited) and _file(_node(head).image).name == "Head_001.png"


def _skin_group(name: str, colour_input: str, extra_colour: str = "") -> bpy.types.Material:
    """A material whose surface is a node group (a studio's skin shader) taking its colour through an
    input named ``colour_input`` (and ``extra_colour``, another colour input, where given)."""
    group = bpy.data.node_groups.new(f"{name} Group", "ShaderNodeTree")
    for socket in filter(None, (colour_input, extra_colour)):
        group.interface.new_socket(socket, in_out="INPUT", socket_type="NodeSocketColor")
    group.interface.new_socket("Shader", in_out="OUTPUT", socket_type="NodeSocketShader")
    inputs, outputs = group.nodes.new("NodeGroupInput"), group.nodes.new("NodeGroupOutput")
    bsdf = group.nodes.new("ShaderNodeBsdfPrincipled")
    group.links.new(inputs.outputs[colour_input], bsdf.inputs["Base Color"])
    group.links.new(bsdf.outputs["BSDF"], outputs.inputs["Shader"])
    mat = _skin(name)
    tree = mat.node_tree
    tree.nodes.remove(tree.nodes["Principled BSDF"])
    node = tree.nodes.new("ShaderNodeGroup")
    node.node_tree = group
    tree.links.new(node.outputs["Shader"], tree.nodes["Material Output"].inputs["Surface"])
    return mat


def test_a_skin_shader_in_a_node_group_gets_the_texture_in_its_colour_input(
    addon, fake_backend, portrait, tmp_path
):
    """A node group whose colour input is not named Base Color or Color ("Albedo") got a loose
    Principled BSDF the render does not show, and a note to link it by hand. Its only colour input,
    or the one an image feeds among several, takes the texture; Restore gives the group its colour."""
    head = add_sphere("Head", portrait)
    head.data.materials.append(_skin_group("Albedo Skin", "Albedo"))
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    group = next(n for n in head.active_material.node_tree.nodes if n.bl_idname == "ShaderNodeGroup")
    albedo = group.inputs["Albedo"]
    assert albedo.is_linked and albedo.links[0].from_node == _node(head)
    assert "AvatarTex Shader" not in head.active_material.node_tree.nodes
    assert not any("does not show" in note for note in addon.state.last_summary)
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    assert not albedo.is_linked and _node(head) is None
    # Two colour inputs: the one the artist's image feeds.
    other = add_sphere("Other", portrait)
    mat = _skin_group("Two Inputs", "Albedo", "Tint")
    other.data.materials.append(mat)
    tree = mat.node_tree
    group = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeGroup")
    painted = tree.nodes.new("ShaderNodeTexImage")
    painted.image = bpy.data.images.new("albedo_map", 8, 8)
    tree.links.new(painted.outputs["Color"], group.inputs["Albedo"])
    select_only(other)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert group.inputs["Albedo"].links[0].from_node == _node(other) and not group.inputs["Tint"].is_linked


def test_unsaved_paint_or_a_read_only_file_is_never_replaced(addon, fake_backend, portrait, tmp_path):
    """The add-on's own file is replaced on a rerun, but not while its image holds paint not saved yet
    (Texture Paint after Generate) nor once made read-only (a checked-in file): each is said."""
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    blend = _save(tmp_path)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    image = _node(head).image
    first = _file(image)
    painted = np.array(image.pixels[:], np.float32)
    painted[:400] = 1.0  # a stroke
    image.pixels.foreach_set(painted)
    assert image.is_dirty
    before = first.read_bytes()
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert (
        first.read_bytes() == before and image.is_dirty and np.array_equal(image.pixels[:400], painted[:400])
    )
    second = _file(_node(head).image)
    assert second.name == "Head_001.png"
    assert any("'Head' has paint not saved yet" in note for note in addon.state.last_summary)
    assert not any("was already in" in note for note in addon.state.last_summary)
    assert image.use_fake_user  # no longer shown: a save would have dropped it, and the paint
    second.chmod(0o444)
    locked = second.read_bytes()
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert second.read_bytes() == locked and _mode(second) == 0o444
    assert _file(_node(head).image).name == "Head_002.png"
    assert any("Head_001.png is read-only" in note for note in addon.state.last_summary)
    assert not any("was already in" in note for note in addon.state.last_summary)  # one reason, the true one
    assert blend.is_file()


def test_a_rerun_keeps_the_artists_nodes_after_the_texture(addon, fake_backend, portrait):
    """A colour grade the artist put between the texture and Base Color was unhooked by the next run
    (Base Color linked straight from the texture again), unsaid. It stays; a link the artist made
    from elsewhere into Base Color is replaced, as Generate shows its texture, and said."""
    head = add_sphere("Head", portrait)
    head.data.materials.append(_skin())
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    tree = head.active_material.node_tree
    texture, bsdf = _node(head), tree.nodes["Principled BSDF"]
    grade = tree.nodes.new("ShaderNodeHueSaturation")
    grade.name = "ArtistGrade"
    tree.links.new(texture.outputs["Color"], grade.inputs["Color"])
    tree.links.new(grade.outputs["Color"], bsdf.inputs["Base Color"])
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert bsdf.inputs["Base Color"].links[0].from_node == grade
    assert grade.inputs["Color"].links[0].from_node == _node(head)
    assert not any("linked again" in line for line in addon.state.last_summary)
    other = tree.nodes.new("ShaderNodeRGB")
    other.name = "Flat"
    tree.links.new(other.outputs[0], bsdf.inputs["Base Color"])
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert bsdf.inputs["Base Color"].links[0].from_node == _node(head)
    assert any("in place of 'Flat'" in line for line in addon.state.last_summary)


def test_paint_packed_into_the_blend_is_kept_on_a_rerun(addon, fake_backend, portrait, tmp_path):
    """Paint packed after Generate (Image > Pack: the pixels as they are, the image no longer dirty)
    was thrown away by the next run, which replaced the file and packed it again, unsaid. It is
    kept like unsaved paint: the new texture in a file of its own, the old image kept in the .blend."""
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    _save(tmp_path)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    image = _node(head).image
    first = _file(image)
    before = first.read_bytes()
    painted = np.array(image.pixels[:], np.float32)
    painted[:400] = 1.0
    image.pixels.foreach_set(painted)
    image.pack()
    assert not image.is_dirty and image.packed_file.data != before
    packed = image.packed_file.data
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert first.read_bytes() == before and image.packed_file is not None and image.packed_file.data == packed
    assert image.use_fake_user and _node(head).image != image
    new = _node(head).image
    assert _file(new).name == "Head_001.png" and new.packed_file is not None  # packed, as the artist had it
    assert any("'Head' holds paint packed into the .blend" in note for note in addon.state.last_summary)
    # Packed as written (nothing painted since): replaced in place, as every rerun.
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert _node(head).image == new and _file(new).name == "Head_001.png"


def test_generate_undo_generate_replaces_the_own_file_again(addon, fake_backend, portrait, tmp_path):
    """Undo takes the file's record back to before the second run, whose stamp the file no longer
    has: the third run took the add-on's own Head.png for someone else's and wrote Head_001.png."""
    add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    blend = _save(tmp_path)
    bpy.ops.ed.undo_push(message="before")
    assert bpy.ops.avatartex.generate("EXEC_DEFAULT", True) == {"FINISHED"}
    assert bpy.ops.avatartex.generate("EXEC_DEFAULT", True) == {"FINISHED"}
    bpy.ops.ed.undo()
    assert bpy.ops.avatartex.generate("EXEC_DEFAULT", True) == {"FINISHED"}
    assert sorted(p.name for p in (blend.parent / "textures").iterdir()) == ["Head.png"]


def test_two_mixed_shaders_fed_by_the_artists_image_both_get_the_texture(addon, fake_backend, portrait):
    """A skin and a wet layer mixed by a Mix Shader, both coloured by the artist's image: the texture
    went into the first alone, and the render mixed the new face with the old image. A layer of a
    colour of its own keeps it; Restore Material links the image into both again."""
    head = add_sphere("Head", portrait)
    mat = material_showing("Skin", bpy.data.images.new("old_skin", 8, 8))
    tree = mat.node_tree
    old = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeTexImage")
    first = tree.nodes["Principled BSDF"]
    wet, sheen = (tree.nodes.new("ShaderNodeBsdfPrincipled") for _ in range(2))
    tree.links.new(old.outputs["Color"], wet.inputs["Base Color"])
    mix, add = tree.nodes.new("ShaderNodeMixShader"), tree.nodes.new("ShaderNodeAddShader")
    tree.links.new(first.outputs[0], mix.inputs[1])
    tree.links.new(wet.outputs[0], mix.inputs[2])
    tree.links.new(mix.outputs[0], add.inputs[0])
    tree.links.new(sheen.outputs[0], add.inputs[1])
    output = tree.nodes["Material Output"]
    tree.links.new(add.outputs[0], output.inputs["Surface"])
    head.data.materials.append(mat)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    texture = tree.nodes["AvatarTex Texture"]
    assert first.inputs["Base Color"].links[0].from_node == texture
    assert wet.inputs["Base Color"].links[0].from_node == texture
    assert not sheen.inputs["Base Color"].is_linked  # its own colour, kept
    assert bpy.ops.avatartex.generate() == {"FINISHED"}  # a rerun keeps both
    assert wet.inputs["Base Color"].links[0].from_node == tree.nodes["AvatarTex Texture"]
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    assert first.inputs["Base Color"].links[0].from_node == old == wet.inputs["Base Color"].links[0].from_node


def test_restore_material_gives_back_the_shared_material(addon, fake_backend, portrait):
    head = add_sphere("Head", portrait)
    skin = _skin()
    head.data.materials.append(skin)
    alt_d = head.copy()  # Alt+D: the mesh (and its material slot) shared
    alt_d.name = "HeadLinked"
    bpy.context.scene.collection.objects.link(alt_d)
    select_only(head)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert head.active_material != skin and head.material_slots[0].link == "OBJECT"
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    assert head.active_material == skin and head.material_slots[0].link == "DATA"
    assert alt_d.active_material == skin


def test_generate_after_restore_reuses_the_copys_name(addon, fake_backend, portrait):
    """Restore Material gives the shared material back and leaves the head's copy unshown: the next
    Generate made 'Skin Head.001', then '.002', beside copies nothing shows (the material list of a
    head textured three times)."""
    head = add_sphere("Head", portrait)
    skin = _skin()
    head.data.materials.append(skin)
    twin = shift_d_copy(head)
    select_only(head)
    bpy.context.scene.avatartex.resolution = 512
    for _ in range(3):
        assert bpy.ops.avatartex.generate() == {"FINISHED"}
        assert head.active_material.name == "Skin Head"
        assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
        assert head.active_material == skin == twin.active_material
    assert sorted(m.name for m in bpy.data.materials) == ["Skin", "Skin Head"]


def test_a_material_linked_from_a_library_gets_a_local_copy_that_keeps_the_texture(
    addon, fake_backend, portrait, tmp_path
):
    """A head of this file showing a material linked from a material library: the texture goes into a
    local copy (a linked material keeps no change made here), which survives save and reopen."""
    library = tmp_path / "library.blend"
    shared = _skin("LibrarySkin")
    bpy.data.libraries.write(str(library), {shared}, fake_user=True)
    bpy.data.materials.remove(shared)
    with bpy.data.libraries.load(str(library), link=True) as (_source, linked):
        linked.materials = ["LibrarySkin"]
    linked_skin = linked.materials[0]
    assert linked_skin.library is not None
    head = add_sphere("Head", portrait)
    head.data.materials.append(linked_skin)
    select_only(head)
    bpy.context.scene.avatartex.resolution = 512
    blend = _save(tmp_path)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert head.active_material.library is None and _node(head) is not None
    assert any("linked from" in note and "local copy" in note for note in addon.state.last_summary)
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    head = bpy.data.objects["Head"]
    assert _node(head) is not None  # kept through save and reopen
    select_only(head)
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    assert head.active_material.library is not None and head.active_material.name == "LibrarySkin"


def test_image_names_match_file_names(addon, fake_backend, portrait, tmp_path):
    bpy.data.images.new("Face", 4, 4)  # an artist's image already called like the object
    face = add_sphere("Face", portrait)
    bpy.context.scene.avatartex.resolution = 512
    _save(tmp_path)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    image = _node(face).image
    assert image.name == _file(image).stem == "Face_001"


def test_variants_named_by_style_and_seed_and_reexport_overwrites_own(
    addon, fake_backend, portrait, tmp_path
):
    head = add_sphere("Head", portrait)
    settings = bpy.context.scene.avatartex
    settings.resolution, settings.seed = 512, 7
    settings.style = "toon"
    bpy.ops.avatartex.variant_add()
    settings.style = "photoreal"
    bpy.ops.avatartex.variant_add()
    assert [v.name for v in head.avatartex.variants] == ["toon 7", "photoreal 7"]
    blend = _save(tmp_path)
    for _ in range(2):
        assert bpy.ops.avatartex.generate_variants() == {"FINISHED"}
    names = sorted(p.name for p in (blend.parent / "textures").iterdir())
    assert names == ["Head_photoreal_7.png", "Head_toon_7.png"]
    assert [v.image.name for v in head.avatartex.variants] == ["Head_toon_7", "Head_photoreal_7"]

    out = tmp_path / "export"
    out.mkdir()
    (out / "Head_photoreal_7.png").write_bytes(b"artist's file")
    for _ in range(2):
        assert bpy.ops.avatartex.export_variants(directory=str(out)) == {"FINISHED"}
    exported = sorted(p.name for p in out.iterdir())
    assert exported == ["Head_photoreal_7.png", "Head_photoreal_7_001.png", "Head_toon_7.png"]
    assert (out / "Head_photoreal_7.png").read_bytes() == b"artist's file"
    assert all(_mode(p) == 0o644 for p in out.iterdir() if p.name != "Head_photoreal_7.png")


def test_add_variant_takes_the_panels_seed_and_steps_it_only_where_that_style_has_it(addon):
    """The panel's Seed was offset by how many variants there were: Seed 3 with one variant made
    'comic 4'. The new variant has the panel's seed, the next free one where its style has it."""
    head = add_sphere("Head", None)
    settings = bpy.context.scene.avatartex
    for style, seed in [("toon", 7), ("comic", 3), ("toon", 7), ("painterly", 1), ("toon", 7)]:
        settings.style, settings.seed = style, seed
        assert bpy.ops.avatartex.variant_add() == {"FINISHED"}
    made = [(v.style, v.seed, v.name) for v in head.avatartex.variants]
    assert made == [
        ("toon", 7, "toon 7"),
        ("comic", 3, "comic 3"),
        ("toon", 8, "toon 8"),
        ("painterly", 1, "painterly 1"),
        ("toon", 9, "toon 9"),
    ]


def test_the_main_texture_outlives_an_applied_variant_and_a_save_and_comes_back(
    addon, fake_backend, portrait, tmp_path
):
    """Applying a variant left the main texture's image with no user: saved and reopened, it was gone
    from the .blend and nothing showed it again. The object keeps it; Main Texture shows it."""
    head = add_sphere("Head", portrait)
    settings = bpy.context.scene.avatartex
    settings.resolution, settings.style = 512, "photoreal"
    blend = _save(tmp_path)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    main = _node(head).image
    assert head.avatartex.texture == main
    settings.style = "toon"
    bpy.ops.avatartex.variant_add()
    assert bpy.ops.avatartex.generate_variants() == {"FINISHED"}
    # Said: the material shows the variant now, and how to get the main texture back.
    assert any("Head shows the variant 'toon 0' now" in note for note in addon.state.last_summary)
    assert bpy.ops.avatartex.apply_variant(index=0) == {"FINISHED"}
    assert _node(head).image == head.avatartex.variants[0].image != main
    name = main.name
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.wm.open_mainfile(filepath=str(blend))

    head = bpy.data.objects["Head"]
    assert name in bpy.data.images and head.avatartex.texture == bpy.data.images[name]
    select_only(head)
    assert bpy.ops.avatartex.show_main_texture() == {"FINISHED"}
    assert _node(head).image == bpy.data.images[name]
    pixels = np.array(bpy.data.images[name].pixels[:]).reshape(512, 512, 4)
    assert pixels[..., :3].std() > 0.01  # the texture itself, read back from its file


def test_main_texture_without_one_says_what_to_press(addon):
    head = add_sphere("Head", None)
    select_only(head)
    with pytest.raises(RuntimeError, match="has no main texture.*Generate Texture"):
        bpy.ops.avatartex.show_main_texture()


def test_unsaved_textures_move_next_to_the_blend_on_first_save(addon, fake_backend, portrait, tmp_path):
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    in_user_folder = _file(_node(head).image)
    assert addon.paths.user_dir() in in_user_folder.parents

    blend = _save(tmp_path)

    image = _node(head).image
    assert image.filepath.startswith("//textures/") and _file(image).parent == blend.parent / "textures"
    assert _file(image).is_file() and not in_user_folder.exists()
    assert image.name == _file(image).stem
    assert head.avatartex.output.path == image.filepath  # the next run replaces the moved file
    name = image.name
    # Reopened in a fresh session, nothing points into the extension's folders.
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    user = addon.paths.user_dir().resolve()
    paths = [Path(bpy.path.abspath(i.filepath)).resolve() for i in bpy.data.images if i.filepath]
    assert paths and not [p for p in paths if user in p.parents]
    assert tuple(bpy.data.images[name].size) == (512, 512)


def test_a_first_save_names_the_texture_after_its_object_not_its_place_in_the_user_folder(
    addon, fake_backend, portrait, tmp_path
):
    """The user folder holds the textures of every unsaved file: a second one's Head got
    ``Head_001.png`` there, and kept that name beside its .blend when first saved into an empty
    folder. There it is ``Head.png``, as a saved file's first run writes it."""
    add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}  # an unsaved file's Head.png, left there
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert _file(_node(head).image).name.startswith("Head_")  # beside the other unsaved file's
    assert any("AvatarTex wrote it for another file's Head" in note for note in addon.state.last_summary)
    blend = _save(tmp_path)
    image = _node(head).image
    assert _file(image) == blend.parent / "textures" / "Head.png" and image.name == "Head"
    assert bpy.ops.avatartex.generate() == {"FINISHED"}  # its own file, replaced in place
    assert sorted(p.name for p in (blend.parent / "textures").iterdir()) == ["Head.png"]


def test_a_first_save_whose_textures_folder_cannot_be_written_packs_the_texture(
    addon, fake_backend, portrait, tmp_path, monkeypatch
):
    """A save cannot be stopped from its handler: where ``textures/`` beside the new .blend could not
    be written, the save went on with the image pointing into the extension's user folder (whose
    Clean Up or uninstall then deleted what the saved .blend showed), and only the console said so.
    The texture is packed into the .blend instead, and the artist told how to unpack it."""
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    pixels = np.array(_node(head).image.pixels[:], np.float32)
    proto = addon.paths.protocol()

    def refuse(*_args, **_kwargs):
        raise proto.AvatarTexError(proto.ErrorCode.OUTPUT_NOT_WRITABLE, "Cannot write textures.", "")

    monkeypatch.setattr(addon.outputs, "place_unique", refuse)
    blend = _save(tmp_path)
    image = _node(head).image
    assert image.packed_file is not None
    assert any("packed into the .blend" in line and "Unpack" in line for line in addon.state.last_summary)
    # Unpack's "original location" is beside the .blend, where the copy was going, not the user
    # folder (which Clean Up empties): it wrote the texture back there.
    assert image.filepath.startswith("//textures/") and image.packed_files[0].filepath == image.filepath
    monkeypatch.undo()
    name = image.name
    for path in addon.paths.user_dir().rglob("*.png"):  # Clean Up, or the extension uninstalled
        path.unlink()
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    reopened = bpy.data.images[name]
    assert reopened.packed_file is not None and tuple(reopened.size) == (512, 512)
    assert np.allclose(np.array(reopened.pixels[:], np.float32), pixels, atol=1 / 255)
    reopened.unpack(method="USE_ORIGINAL")
    assert (blend.parent / "textures" / Path(reopened.filepath).name).is_file()
    assert not any(addon.paths.user_dir().rglob("*.png"))


def test_clean_up_removes_only_old_unused_textures_of_unsaved_files(addon, fake_backend, portrait):
    """Textures of files never saved stayed in the user folder for good. Clean Up (preferences) removes
    those the open file does not show and not written for a week: not the one this file shows (even
    old), not a recent one (another Blender may show it), nothing outside that folder."""
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    shown = _file(_node(head).image)
    folder = addon.paths.user_dir("textures")
    assert shown.parent.resolve() == folder.resolve()
    old = folder / "Gone_old.png"
    recent = folder / "Gone_recent.png"
    for path in (old, recent):
        path.write_bytes(b"\x89PNG leftover")
    month_ago = time.time() - 30 * 86400
    for path in (old, shown):
        os.utime(path, (month_ago, month_ago))
    outside = addon.paths.user_dir("logs") / "old.log"
    outside.write_text("kept")
    os.utime(outside, (month_ago, month_ago))
    leftovers, total = addon.outputs.unsaved_leftovers()
    assert leftovers == [old] and total >= shown.stat().st_size
    assert bpy.ops.avatartex.clean_unsaved_textures() == {"FINISHED"}
    assert not old.exists() and recent.is_file() and shown.is_file() and outside.is_file()
    assert bpy.ops.avatartex.clean_unsaved_textures() == {"CANCELLED"}  # nothing left to remove
    # The preferences say how much the folder holds and offer Clean Up.
    calls = []

    class Layout:
        def __getattr__(self, name):
            return lambda *args, **kwargs: calls.append((name, args, kwargs)) or self

    addon.preferences._draw_unsaved(Layout())
    assert any(c[0] == "operator" and c[1][0] == "avatartex.clean_unsaved_textures" for c in calls)
    assert any(c[0] == "label" and "Textures of unsaved files" in c[2]["text"] for c in calls)


def test_a_relative_portrait_is_still_found_after_save_as_elsewhere(addon, fake_backend, portrait, tmp_path):
    """A portrait kept beside the .blend (``//refs/photo.png``): Save As into another folder remaps
    images' relative paths but not an add-on's, and Generate then said the photo does not exist.
    The portrait's path now follows the file, as an image's does."""
    import shutil

    project = tmp_path / "project"
    (project / "refs").mkdir(parents=True)
    shutil.copy(portrait, project / "refs" / "photo.png")
    head = add_sphere("Head")
    bpy.ops.wm.save_as_mainfile(filepath=str(project / "head.blend"))
    head.avatartex.portrait_path = "//refs/photo.png"
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "elsewhere" / "deeper" / "head_v2.blend"))
    assert head.avatartex.portrait_path == "//../../project/refs/photo.png"
    assert (
        Path(bpy.path.abspath(head.avatartex.portrait_path)).resolve()
        == (project / "refs" / "photo.png").resolve()
    )
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert fake_backend.requests()[-1]["portrait"].endswith("photo.png")
    bpy.ops.wm.save_mainfile()  # saved where it is: unchanged
    assert head.avatartex.portrait_path == "//../../project/refs/photo.png"


def test_a_head_linked_from_another_blend_is_refused_with_what_to_do(addon, fake_backend, portrait, tmp_path):
    """A character linked from a library .blend: the texture went into its linked material in this
    session and was gone once the file was saved and opened again, the generate having said Done.
    Now it is refused up front, naming the library and how to make the head local; once local it is
    textured."""
    head = add_sphere("Hero", portrait)
    library = tmp_path / "characters.blend"
    bpy.data.libraries.write(str(library), {head})
    bpy.data.objects.remove(head)
    with bpy.data.libraries.load(str(library), link=True) as (source, target):
        target.objects = ["Hero"]
    linked = target.objects[0]
    bpy.context.scene.collection.objects.link(linked)
    select_only(linked)
    bpy.context.scene.avatartex.resolution = 512
    with pytest.raises(RuntimeError, match="is linked from .*characters.blend") as caught:
        bpy.ops.avatartex.generate()
    assert "Make Local" in str(caught.value)
    local = linked.make_local()
    local.data = local.data.make_local()
    local.avatartex.portrait_path = str(portrait)
    bpy.context.view_layer.objects.active = local
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert local.active_material.node_tree.nodes.get("AvatarTex Texture") is not None


def _overridden(library: Path, portrait: Path):
    """A new file overriding the collection "Characters" of ``library`` (Make Library Override): its
    head with ``portrait`` set, selected alone, the resolution 512."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    with bpy.data.libraries.load(str(library), link=True) as (_source, linked):
        linked.collections = ["Characters"]
    scene = bpy.context.scene
    override = linked.collections[0].override_hierarchy_create(scene, bpy.context.view_layer)
    head = next(obj for obj in override.all_objects if obj.type == "MESH")
    head.avatartex.portrait_path = str(portrait)
    scene.avatartex.resolution = 512
    select_only(head)
    return head


def test_a_library_override_keeps_its_settings_and_own_file_when_saved_and_reopened(
    addon, fake_backend, portrait, tmp_path
):
    """A character linked from an asset file and overridden in a shot (Make Library Override): the
    portrait, texture and status set on the override were back to the library's after the shot was
    saved and opened again, and the next Generate no longer knew its own file (it wrote
    ``Hero_001.png`` beside it). Now they are kept, and the next run replaces its file in place. Without a
    material the head's mesh, still linked, can take none that would be saved: refused, saying so."""
    hero = add_sphere("Hero", None)
    characters = bpy.data.collections.new("Characters")
    bpy.context.scene.collection.children.link(characters)
    for collection in hero.users_collection:
        collection.objects.unlink(hero)
    characters.objects.link(hero)
    library = tmp_path / "assets" / "characters.blend"
    library.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(library))
    head = _overridden(library, portrait)
    assert head.override_library is not None
    with pytest.raises(RuntimeError, match="has no material, and its mesh is linked from .*characters.blend"):
        bpy.ops.avatartex.generate()
    assert len(head.material_slots) == 0

    bpy.ops.wm.open_mainfile(filepath=str(library))  # a material given in the asset file
    bpy.data.objects["Hero"].data.materials.append(_skin())
    bpy.ops.wm.save_mainfile()
    head = _overridden(library, portrait)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    blend = _save(tmp_path, "shot.blend")
    written = _file(_node(head).image)
    assert written.is_file() and head.avatartex.status

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    head = next(obj for obj in bpy.data.objects if obj.override_library is not None and obj.type == "MESH")
    assert Path(bpy.path.abspath(head.avatartex.portrait_path)) == portrait
    assert head.avatartex.texture == _node(head).image and head.avatartex.status
    assert head.avatartex.output.path == _node(head).image.filepath
    select_only(head)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert _file(_node(head).image) == written  # replaced in place, no Hero_001.png beside it
    assert sorted(p.name for p in written.parent.iterdir()) == [written.name]


def test_a_file_saved_before_the_records_were_a_collection_still_replaces_its_texture(
    addon, fake_backend, portrait, tmp_path
):
    """The record of the add-on's own file was a group of the object's settings (``output``) until
    the records became a collection: a head textured then, opened with this version, would write
    ``Head_001.png`` beside its texture. The old record is read."""
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    _save(tmp_path)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    written, record = _file(_node(head).image), head.avatartex.output
    saved = {"path": record.path, "stamp": record.stamp, "owner": record.owner}
    head.avatartex.records.clear()
    head.avatartex["output"] = saved  # as the earlier version kept it
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert _file(_node(head).image) == written and head.avatartex.output.path == saved["path"]
    assert sorted(p.name for p in written.parent.iterdir()) == [written.name]


def test_a_linked_mesh_without_uv_map_is_not_unwrapped_here(addon, fake_backend, portrait, tmp_path):
    """A library override whose mesh is still linked and has no UV map: Generate said "Click 'Unwrap'",
    and Unwrap failed with two tracebacks (edit mode refuses linked data, and so did putting the mode
    back). Both now say where to unwrap it, and nothing changes."""
    hero = add_sphere("Hero", None)
    hero.data.uv_layers.remove(hero.data.uv_layers[0])
    hero.data.materials.append(_skin())
    library = tmp_path / "characters.blend"
    bpy.data.libraries.write(str(library), {hero})
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    with bpy.data.libraries.load(str(library), link=True) as (_source, linked):
        linked.objects = ["Hero"]
    bpy.context.scene.collection.objects.link(linked.objects[0])
    head = linked.objects[0].override_create()
    bpy.context.scene.collection.objects.link(head)
    head.avatartex.portrait_path = str(portrait)
    select_only(head)
    with pytest.raises(RuntimeError, match="no UV map.*Unwrap it in .*characters.blend"):
        bpy.ops.avatartex.generate()
    refused = "linked from .*characters.blend: it cannot be unwrapped"
    with pytest.raises(RuntimeError, match=refused) as caught:
        bpy.ops.avatartex.unwrap()
    assert "Traceback" not in str(caught.value) and head.mode == "OBJECT"
    assert len(head.data.uv_layers) == 0


def test_a_shared_mesh_without_material_gets_one_for_this_object_only(addon, fake_backend, portrait):
    """Two objects sharing a mesh that has no material (Alt+D): the material made for one went onto the
    shared mesh, so the other carried one named after the first ("BareC AvatarTex"), and the note said
    the first had shared it. Now the first object's slot holds it alone."""
    first = add_sphere("BareC", portrait)
    second = first.copy()
    second.name = "BareD"
    bpy.context.scene.collection.objects.link(second)
    select_only(first)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert _node(first) is not None and first.material_slots[0].link == "OBJECT"
    assert second.active_material is None and [m for m in first.data.materials] == [None]
    assert not [note for note in addon.state.last_summary if "shared the material" in note]


# -- item 4: farm runs (the fresh-process farm command is in test_scene_real.py) ------------------------


def test_batch_without_selection_takes_objects_with_a_portrait(addon, fake_backend, portrait):
    with_portrait = [add_sphere(f"Char{i}", portrait) for i in range(2)]
    add_sphere("Prop")  # no portrait: not a character
    for obj in bpy.context.scene.objects:
        obj.select_set(False)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.batch_retexture() == {"FINISHED"}
    assert sorted(item.name for item in bpy.context.scene.avatartex.batch) == [o.name for o in with_portrait]
    assert bpy.data.objects["Prop"].active_material is None


def test_batch_named_collection_and_progress_lines(addon, fake_backend, portrait, capfd):
    chars = bpy.data.collections.new("Characters")
    bpy.context.scene.collection.children.link(chars)
    inside = add_sphere("Inside", portrait)
    for coll in inside.users_collection:
        coll.objects.unlink(inside)
    chars.objects.link(inside)
    add_sphere("Outside", portrait).select_set(True)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.batch_retexture(collection="Characters") == {"FINISHED"}
    assert [item.name for item in bpy.context.scene.avatartex.batch] == ["Inside"]
    out = capfd.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("AvatarTex [1/1] Inside")]
    # One line per stage, not one per progress event (the fake sends four "project" events).
    assert (
        sum("project" in line for line in lines) == 1
        and lines[-1] == "AvatarTex [1/1] Inside: Done: Inside.png"
    )
    with pytest.raises(RuntimeError, match="no collection named 'Nope'"):
        bpy.ops.avatartex.batch_retexture(collection="Nope")


# -- item 8: logs, portrait paths, status lines -----------------------------------------------------------


def test_backend_log_without_library_noise_and_rotated(addon, fake_backend, monkeypatch):
    log = addon.paths.user_dir("logs") / "backend.log"
    for path in (log, log.with_name("backend.log.1"), log.with_name("libraries.log")):
        path.unlink(missing_ok=True)
    monkeypatch.setattr(addon.client, "LOG_CAP_BYTES", 4000)
    fake_backend("ok", noise=120)
    assert bpy.ops.avatartex.test_backend() == {"FINISHED"}
    addon.backend.shutdown()  # the log reader has written everything once the process is gone
    text = log.read_text() + log.with_name("backend.log.1").read_text()
    assert "fake backend line 119" in text
    assert "TensorFlow Lite" not in text and "W0000" not in text and "GetPrototype" not in text
    assert "TensorFlow Lite" in log.with_name("libraries.log").read_text() + (
        log.with_name("libraries.log.1").read_text() if log.with_name("libraries.log.1").exists() else ""
    )
    assert log.stat().st_size <= 4000 + 200  # rotated, one line past the cap at most


def test_relative_portrait_path_resolved_against_the_blend(addon, fake_backend, portrait, tmp_path):
    head = add_sphere("Head")
    bpy.context.scene.avatartex.resolution = 512
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Blender 4.5+ warns and refuses "//" on a plain path property
        head.avatartex.portrait_path = "//photos/me.png"
    assert head.avatartex.portrait_path == "//photos/me.png"
    with pytest.raises(RuntimeError, match="relative to the .blend, which is not saved yet"):
        bpy.ops.avatartex.generate()
    blend = _save(tmp_path)
    (blend.parent / "photos").mkdir()
    shutil.copy(portrait, blend.parent / "photos" / "me.png")
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert fake_backend.requests()[-1]["portrait"] == str((blend.parent / "photos" / "me.png").resolve())


def test_status_lines_current_and_not_repeated(addon, fake_backend, portrait, bad_portraits):
    head = add_sphere("Head", bad_portraits["not_image"])
    bpy.context.scene.avatartex.resolution = 512
    with pytest.raises(RuntimeError):
        bpy.ops.avatartex.generate()
    assert head.avatartex.status.startswith("Failed: ") and head.avatartex.status.count("ailed") == 1
    head.avatartex.portrait_path = str(portrait)
    fake_backend("slow", delay=0.2)
    bpy.ops.avatartex.generate(asynchronous=True)
    job = addon.state.job
    assert head.avatartex.status == "Queued"  # the last run's failure is not shown as this one's
    while not head.avatartex.status.startswith("project"):
        job.pump(wait=0.2)
    job.run_sync()
    assert head.avatartex.status == "Done: Head.png" or head.avatartex.status.startswith("Done: Head_")
    assert bpy.context.scene.avatartex.status == head.avatartex.status
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    assert head.avatartex.status == "Material restored"


# -- item 9 (add-on side): the backend warms up when the panel is first shown ----------------------------


def test_panel_warms_backend_and_click_uses_it(addon, fake_backend, portrait):
    addon.backend.shutdown()
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512

    class Layout:
        def __getattr__(self, name):
            return lambda *args, **kwargs: Layout()

    panel = type("P", (), {"layout": Layout()})()
    addon.panels.AVATARTEX_PT_main.draw(panel, bpy.context)
    assert bpy.app.timers.is_registered(addon.backend.warm_up)
    bpy.app.timers.unregister(addon.backend.warm_up)
    addon.backend.warm_up()  # what the timer runs: it must not block on the backend's start
    client = addon.state.client
    assert client is not None and client.alive() and client.hello is None
    pid = client.process.pid
    addon.panels.AVATARTEX_PT_main.draw(panel, bpy.context)  # drawn again: nothing new starts
    assert not bpy.app.timers.is_registered(addon.backend.warm_up)

    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert addon.state.client is client and client.process.pid == pid and client.starts == 1
    assert _node(head) is not None


def test_capture_of_modifier_stack_is_world_space(addon, tmp_path):
    """Issue 8 item 7 without a backend: a subdivided child of a rotated, scaled, mirrored parent."""
    parent = bpy.data.objects.new("Rig", None)
    bpy.context.scene.collection.objects.link(parent)
    parent.rotation_euler = (np.pi / 2, 0.0, 0.0)
    parent.scale = (-0.01, 0.01, 0.01)  # a mirroring transform turns triangles inside out
    obj = add_sphere("Head")
    obj.parent = parent
    obj.location = (300.0, 0.0, 0.0)
    obj.modifiers.new("Sub", "SUBSURF").levels = 1
    bpy.context.view_layer.update()
    data = np.load(
        addon.capture.capture_object(obj, bpy.context.evaluated_depsgraph_get(), "", tmp_path / "c.npz")
    )
    p = data["positions"].astype(np.float64)
    # The unit sphere stays a unit sphere around the origin: neither the overall scale (0.01) nor the
    # translation (3 m away) are in the capture, the rotation is: its poles now lie along -Y / +Y.
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0, rtol=0.03)
    # The sphere's top pole (the corners at the top of its UV map) is turned by the parent to -Y.
    top = p[data["triangles"]][data["uvs"][..., 1] > data["uvs"][..., 1].max() - 1e-4]
    np.testing.assert_allclose(top, np.tile([0.0, -1.0, 0.0], (len(top), 1)), atol=0.01)  # subdivided
    tri = p[data["triangles"]]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (np.einsum("ij,ij->i", normal, tri.mean(1)) > 0).mean() > 0.99  # still counter-clockwise outside
    n = data["normals"]
    assert (
        np.allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-4)
        and (np.einsum("ij,ij->i", n, p) > 0).mean() > 0.99
    )


def test_a_full_body_character_sends_its_body_image_and_a_head_only_its_head(
    addon, fake_backend, portrait, tmp_path
):
    """A character (much taller than wide) sends the image its material shows, so the backend keeps
    the body and replaces only the head; a head sends none. Looking for it adds no node."""
    body_image = tmp_path / "body_paint.png"
    image = bpy.data.images.new("body_paint", 16, 16)
    image.filepath_raw = str(body_image)
    image.file_format = "PNG"
    image.save()
    character = add_sphere("Character", portrait=portrait)
    character.scale = (0.3, 0.3, 1.8)
    bpy.context.view_layer.update()
    mat = bpy.data.materials.new("Skin")
    mat.use_nodes = True
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    mat.node_tree.links.new(
        node.outputs["Color"], mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"]
    )
    character.data.materials.append(mat)
    nodes_before = len(mat.node_tree.nodes)
    assert addon.material.body_base_image(character) == str(body_image)
    assert len(mat.node_tree.nodes) == nodes_before
    bpy.context.scene.avatartex.resolution = 512
    bpy.context.scene.avatartex.tone_match = "face_to_body"
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    request = fake_backend.requests()[-1]
    assert request["base_texture"] == str(body_image) and request["tone_match"] == "face_to_body"
    # Once AvatarTex has replaced Base Color, the artist's original image is still the body's source.
    assert addon.material.body_base_image(character) == str(body_image)

    head = add_sphere("Head", portrait=portrait)
    bpy.context.view_layer.update()
    assert addon.material.body_base_image(head) == ""
    # A character of several materials: the active slot's image may be the body's or the eyes',
    # not the face's material the texture goes into: no base is sent (the body gets a skin fill).
    character.data.materials.append(_skin("Eyes"))
    character.data.polygons[0].material_index = 1
    assert addon.material.body_base_image(character) == ""


# -- UDIM tiles: a head whose UVs lie in several tiles gets a tiled image ---------------------------------


def _move_half_to_tile_1002(obj) -> None:
    """The UV islands right of u = 0.5 moved one tile to the right (tile 1002), as UDIM heads are."""
    uv = obj.data.uv_layers.active.uv
    values = np.empty(len(uv) * 2, np.float32)
    uv.foreach_get("vector", values)
    values = values.reshape(-1, 2)
    for poly in obj.data.polygons:
        loops = list(poly.loop_indices)
        if values[loops, 0].mean() >= 0.5:
            values[loops, 0] += 1.0
    uv.foreach_set("vector", values.ravel())


def test_head_over_two_udim_tiles_gets_one_tiled_image_that_moves_on_save(
    addon, fake_backend, portrait, tmp_path
):
    head = add_sphere("Head", portrait)
    _move_half_to_tile_1002(head)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    image = _node(head).image
    assert image.source == "TILED" and sorted(t.number for t in image.tiles) == [1001, 1002]
    assert image.filepath.endswith("Head.<UDIM>.png") and image.name == "Head"
    pattern = str(_file(image))
    tiles = [Path(pattern.replace("<UDIM>", str(n))) for n in (1001, 1002)]
    assert all(t.is_file() for t in tiles)
    # Each tile holds its own file (the fake writes them at different brightness).
    means = [
        float(np.asarray(bpy.data.images.load(str(t), check_existing=False).pixels[:]).mean()) for t in tiles
    ]
    assert means[0] < 0.8 * means[1]
    assert head.avatartex.output.path == image.filepath

    # A second run replaces its own tiles in place (the image keeps its name, no new files)...
    folder = tiles[0].parent
    files_before = sorted(p.name for p in folder.iterdir())
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    again = _node(head).image
    assert (
        again == image
        and _file(again) == Path(pattern)
        and sorted(p.name for p in folder.iterdir()) == files_before
    )
    # ...but never a tile someone changed meanwhile: then the set gets a new name, the file kept.
    tiles[1].write_bytes(tiles[1].read_bytes() + b"\0")  # rewritten by someone else (its bytes differ)
    changed = tiles[1].stat().st_mtime_ns
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert _file(_node(head).image) != Path(pattern) and tiles[1].stat().st_mtime_ns == changed

    # Saving moves the tiles out of the extension's folder, next to the .blend, every tile.
    blend = _save(tmp_path)
    moved = _node(head).image
    assert moved.filepath.startswith("//textures/") and moved.filepath.endswith(".<UDIM>.png")
    pattern = str(_file(moved))
    assert all(Path(pattern.replace("<UDIM>", str(n))).is_file() for n in (1001, 1002))
    user = addon.paths.user_dir().resolve()
    assert user not in Path(pattern).resolve().parents
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    reopened = [i for i in bpy.data.images if i.source == "TILED"]
    assert reopened and all(sorted(t.number for t in i.tiles) == [1001, 1002] for i in reopened)
    assert all(tuple(i.size) == (512, 512) for i in reopened)


# -- several materials: the texture goes to the face's --------------------------------------------------


def test_an_object_of_several_materials_sends_them_and_textures_the_faces(
    addon, fake_backend, portrait, tmp_path
):
    head = add_sphere("Head", portrait)
    skin, eyes = _skin("Skin"), _skin("Eyes")
    head.data.materials.append(skin)
    head.data.materials.append(eyes)
    for poly in head.data.polygons:  # a few faces are the eyes' (the fake takes the commonest: skin)
        poly.material_index = 1 if poly.index % 10 == 0 else 0
    head.active_material_index = 1  # the artist last looked at the eyes' slot
    path = addon.capture.capture_object(head, bpy.context.evaluated_depsgraph_get(), "", tmp_path / "c.npz")
    with np.load(path) as capture:
        counts = np.bincount(capture["materials"])
        assert len(counts) == 2 and 0 < counts[1] < counts[0]
        assert list(capture["material_names"]) == ["Skin", "Eyes"]
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert _node(head) is not None and head.active_material.name == "Skin"
    assert eyes.node_tree.nodes.get("AvatarTex Texture") is None
    # One material: nothing sent, the active material textured as before.
    single = add_sphere("Plain", portrait)
    path = addon.capture.capture_object(single, bpy.context.evaluated_depsgraph_get(), "", tmp_path / "p.npz")
    with np.load(path) as capture:
        assert "materials" not in capture.files


def test_what_was_done_to_a_full_body_character_reaches_the_summary(addon, fake_backend, portrait):
    """The backend's sentence on a full-body character (head textured, body kept, its skin matched)
    is in the summary under the button: it was in report.json alone."""
    said = "a full-body character: its head textured (9% of its texels), the rest kept from base.png"
    fake_backend("ok", body={"tone_match": "body_to_face", "summary": said})
    add_sphere("Char", portrait)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert f"Char: {said}" in addon.state.last_summary


def test_the_backends_warnings_reach_the_summary_once_per_batch(addon, fake_backend, portrait):
    glasses = "the photo shows glasses: their frames were taken off"
    fake_backend(
        "ok",
        warnings=[
            glasses,
            "registration doubtful: the photo may sit off the mesh",  # the verdict says it already
            "engine auto chose classic: no GPU torch can use (no NVIDIA driver)",  # nothing to do
        ],
    )
    chars = [add_sphere(name, portrait) for name in ("CharA", "CharB")]
    for obj in chars:
        obj.select_set(True)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.batch_retexture() == {"FINISHED"}
    assert addon.state.last_summary[0] == "2 done, 0 failed"
    notes = addon.state.last_summary[1:]
    assert [line for line in notes if glasses in line] == [f"CharA: {glasses}"]
    assert not [
        line for line in notes if "engine auto chose" in line or "registration doubtful: the photo" in line
    ]


def test_auto_choosing_classic_for_want_of_models_is_said(addon, fake_backend, portrait):
    """A GPU whose models are not downloaded: auto made classic textures and the panel said nothing
    (the warning was dropped as the engine row's). It is said where something can be done about it."""
    missing = "engine auto chose classic: model(s) sd15-inpaint not downloaded (avatartex models download)"
    fake_backend("ok", warnings=[missing])
    add_sphere("Char", portrait)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert f"Char: {missing}" in addon.state.last_summary


def test_materials_sharing_one_image_are_one_texture(addon, fake_backend, portrait, tmp_path):
    """A face split into Face and Lips materials that show one image (as character imports split a
    head) is one texture: both are sent as one set, both get the texture; the eyes' material, with an
    image of its own, does not; Restore Material puts both back."""
    head = add_sphere("Head", portrait)
    face_map, eye_map = (bpy.data.images.new(name, 8, 8) for name in ("face_map", "eye_map"))
    mats = []
    for name, image in (("Face", face_map), ("Eyes", eye_map), ("Lips", face_map)):
        mats.append(material_showing(name, image))
        head.data.materials.append(mats[-1])
    for poly in head.data.polygons:
        poly.material_index = 1 if poly.index % 10 == 0 else (2 if poly.index % 10 == 1 else 0)
    head.active_material_index = 1
    path = addon.capture.capture_object(head, bpy.context.evaluated_depsgraph_get(), "", tmp_path / "c.npz")
    with np.load(path) as capture:
        assert list(capture["material_names"]) == ["Face, Lips", "Eyes"]
        assert np.bincount(capture["materials"]).argmax() == 0
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    face, eyes, lips = mats
    assert _node(head) is not None and head.active_material == face
    assert face.node_tree.nodes.get("AvatarTex Texture") and lips.node_tree.nodes.get("AvatarTex Texture")
    assert eyes.node_tree.nodes.get("AvatarTex Texture") is None
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    assert not face.node_tree.nodes.get("AvatarTex Texture") and not lips.node_tree.nodes.get(
        "AvatarTex Texture"
    )
    base = lips.node_tree.nodes["Principled BSDF"].inputs["Base Color"]
    assert base.links[0].from_node.image == face_map


def test_paint_packed_into_a_tiled_image_is_kept_on_a_rerun(addon, fake_backend, portrait, tmp_path):
    """A tiled image's tiles are packed one by one: the packed paint was compared with a path holding
    ``<UDIM>``, found no file, and the rerun replaced the tiles, the paint lost, unsaid."""
    head = add_sphere("Head", portrait)
    _move_half_to_tile_1002(head)
    bpy.context.scene.avatartex.resolution = 512
    _save(tmp_path)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    image = _node(head).image
    pattern = str(_file(image))
    first = Path(pattern.replace("<UDIM>", "1001"))
    before = first.read_bytes()
    painted = np.array(image.pixels[:], np.float32)  # the first tile's pixels
    painted[:400] = 1.0
    image.pixels.foreach_set(painted)
    image.pack()
    assert not image.is_dirty and len(image.packed_files) >= 1  # the painted tile at least
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert first.read_bytes() == before and image.use_fake_user and _node(head).image != image
    assert any("holds paint packed into the .blend" in note for note in addon.state.last_summary)


def test_a_packed_blend_opened_without_its_textures_keeps_the_packed_image(
    addon, fake_backend, portrait, tmp_path
):
    """The .blend packed to be handed on, opened where its textures/ is not: the add-on's file is not
    there to replace, the new texture took the material, and the packed image, painted, shown
    nowhere, was dropped by the next save. It is kept (fake user), and said."""
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.resolution = 512
    blend = _save(tmp_path)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    image = _node(head).image
    painted = np.array(image.pixels[:], np.float32)
    painted[:400] = 1.0
    image.pixels.foreach_set(painted)
    image.pack()
    packed = image.packed_file.data
    bpy.ops.wm.save_mainfile()
    handed = tmp_path / "elsewhere" / "shot.blend"
    handed.parent.mkdir()
    handed.write_bytes(blend.read_bytes())
    bpy.ops.wm.open_mainfile(filepath=str(handed))
    head = bpy.data.objects["Head"]
    select_only(head)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    old = bpy.data.images["Head"]
    assert _node(head).image != old and old.use_fake_user and old.packed_file.data == packed
    assert any("holds pixels no file has" in note for note in addon.state.last_summary)
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.open_mainfile(filepath=str(handed))
    assert bpy.data.images["Head"].packed_file.data == packed  # still in the .blend after a save


def test_a_character_with_a_udim_skin_keeps_its_body_tiles(addon, fake_backend, portrait, tmp_path):
    """A standing character whose material shows a tiled (UDIM) image: its pattern is sent as the base
    texture, and the texture comes back as a tiled image holding the head's tile and, unchanged
    copies, the body's; the artist's tile files are not touched."""
    from PIL import Image

    folder = tmp_path / "skin"
    folder.mkdir()
    colours = {1001: (200, 150, 120), 1002: (30, 60, 200)}
    for number, colour in colours.items():
        Image.new("RGB", (64, 64), colour).save(folder / f"body.{number}.png")
    stamps = {n: (folder / f"body.{n}.png").stat().st_mtime_ns for n in colours}
    image = bpy.data.images.load(str(folder / "body.1001.png"))
    image.source = "TILED"
    character = add_sphere("Character", portrait=portrait)
    character.scale = (0.3, 0.3, 1.8)
    bpy.context.view_layer.update()
    character.data.materials.append(material_showing("BodySkin", image))
    assert addon.material.body_base_image(character).endswith("body.<UDIM>.png")
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert fake_backend.requests()[-1]["base_texture"].endswith("body.<UDIM>.png")
    result = _node(character).image
    assert result.source == "TILED" and sorted(t.number for t in result.tiles) == [1001, 1002]
    pattern = str(_file(result))
    body_tile = np.asarray(Image.open(pattern.replace("<UDIM>", "1002")).convert("RGB"))
    assert (body_tile == colours[1002]).all()  # the body's tile as the artist painted it
    assert {n: (folder / f"body.{n}.png").stat().st_mtime_ns for n in colours} == stamps


def test_variants_of_a_head_over_udim_tiles_export_every_tile(addon, fake_backend, portrait, tmp_path):
    head = add_sphere("Head", portrait)
    _move_half_to_tile_1002(head)
    settings = bpy.context.scene.avatartex
    settings.resolution, settings.seed = 512, 3
    bpy.ops.avatartex.variant_add()
    assert bpy.ops.avatartex.generate_variants() == {"FINISHED"}
    assert head.avatartex.variants[0].image.source == "TILED"
    out = tmp_path / "export"
    out.mkdir()
    for _ in range(2):  # never over an earlier export: a new name for the set
        assert bpy.ops.avatartex.export_variants(directory=str(out)) == {"FINISHED"}
    stem = addon.jobs.variant_stem(head, head.avatartex.variants[0])
    assert sorted(p.name for p in out.iterdir()) == [
        f"{stem}.1001.png",
        f"{stem}.1002.png",
        f"{stem}_001.1001.png",
        f"{stem}_001.1002.png",
    ]


def test_an_object_whose_materials_all_show_one_image_gets_it_in_each(addon, fake_backend, portrait):
    head = add_sphere("Head", portrait)
    face_map = bpy.data.images.new("face_map", 8, 8)
    mats = []
    for name in ("Face", "Ears"):
        mats.append(material_showing(name, face_map))
        head.data.materials.append(mats[-1])
    for poly in head.data.polygons:
        poly.material_index = poly.index % 2
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert all(mat.node_tree.nodes.get("AvatarTex Texture") for mat in mats)


# -- a head and a body that are objects of their own --------------------------------------------------


def _body_under(head, tmp_path, name: str = "Body", colour=(0.45, 0.3, 0.22)):
    """A cylinder whose top ring meets the bottom of the unit-sphere ``head`` (at z = -0.87 of it),
    showing a skin image saved as a file."""
    path = tmp_path / f"{name.lower()}_skin.png"
    image = bpy.data.images.new(f"{name}_skin", 8, 8)
    image.pixels.foreach_set(np.tile([*colour, 1.0], 64).astype(np.float32))
    image.filepath_raw = str(path)
    image.file_format = "PNG"
    image.save()
    centre = np.array(head.location) + np.array([0.0, 0.0, -0.87 - 1.5])
    bpy.ops.mesh.primitive_cylinder_add(radius=0.5, depth=3.0, location=tuple(centre))
    body = bpy.context.active_object
    body.name = name
    body.data.materials.append(material_showing(f"{name} Skin", image))
    bpy.context.view_layer.update()
    return body, path


def test_a_body_object_under_the_head_is_found_and_captured_in_the_heads_frame(addon, tmp_path):
    head = add_sphere("Head")
    head.location, head.scale = (3.0, 0.0, 1.0), (0.5, 0.5, 0.5)
    bpy.context.view_layer.update()
    body, path = _body_under(head, tmp_path)
    body.scale = (0.5, 0.5, 0.5)  # the cylinder's top at the head's -0.87 * 0.5 below its centre
    body.location = (3.0, 0.0, 1.0 - 0.87 * 0.5 - 0.75)
    bpy.context.view_layer.update()
    found = addon.capture.separate_body(head)
    assert found is not None and found[0] == body and found[1].name == "Body_skin"
    depsgraph = bpy.context.evaluated_depsgraph_get()
    head_file = addon.capture.capture_object(head, depsgraph, "", tmp_path / "head.npz")
    body_file = addon.capture.capture_body(body, head, depsgraph, tmp_path / "body.npz")
    with np.load(head_file) as h, np.load(body_file) as b:
        # Both in the head capture's frame: the unit sphere, and the body's top ring at z = -0.87 on it.
        assert np.allclose(np.linalg.norm(h["positions"], axis=1), 1.0, atol=0.03)
        top = b["positions"][:, 2].max()
        assert abs(top + 0.87) < 1e-3 and b["uvs"].shape == (len(b["triangles"]), 3, 2)
        ring = b["positions"][b["positions"][:, 2] > top - 1e-3]
        # Its radius 0.5, scaled 0.5 as the head is: 0.5 of the head's.
        assert np.allclose(np.linalg.norm(ring[:, :2], axis=1), 0.5, atol=0.01)
    body.location.x += 10.0  # far from the head: no body
    bpy.context.view_layer.update()
    assert addon.capture.separate_body(head) is None
    head.avatartex.body_object = body  # set by the artist: sent whatever the distance (the backend says)
    assert addon.capture.separate_body(head)[0] == body


def test_a_low_poly_body_the_head_sits_on_is_found_by_its_surface(addon, tmp_path):
    """A coarse body (a blocked-out torso, a 32-sided cylinder under a bust) touches the head's bottom
    with its faces, its vertices far apart: found by the vertices alone, it was not found at all, and
    nothing was said. A box whose top face the head's bottom rests on is the body."""
    head = add_sphere("Head")
    _, path = _body_under(head, tmp_path)
    bpy.data.objects.remove(bpy.data.objects["Body"])
    bpy.ops.mesh.primitive_cube_add(size=3.0, location=(0.0, 0.0, -0.87 - 1.5))
    torso = bpy.context.active_object
    torso.name = "Torso"
    torso.data.materials.append(material_showing("Torso Skin", bpy.data.images.load(str(path))))
    bpy.context.view_layer.update()
    corners = np.array([torso.matrix_world @ v.co for v in torso.data.vertices])
    bottom = np.array([head.matrix_world @ v.co for v in head.data.vertices if v.co.z < -0.7])
    nearest = np.linalg.norm(bottom[:, None] - corners[None], axis=-1).min(axis=1)
    assert nearest.min() > addon.capture.BODY_REACH * 2.0 * 5  # no vertex of it near the head
    found = addon.capture.separate_body(head)
    assert found is not None and found[0] == torso
    torso.location.z -= 0.5  # a gap under the head: not the body it sits on
    bpy.context.view_layer.update()
    assert addon.capture.separate_body(head) is None


def test_generate_sends_the_body_and_shows_its_toned_copy_keeping_the_artists_image(
    addon, fake_backend, portrait, tmp_path
):
    head = add_sphere("Head", portrait)
    body, path = _body_under(head, tmp_path)
    before = path.read_bytes()
    select_only(head)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    request = fake_backend.requests()[-1]
    assert request["body_texture"] == str(path) and request["body_mesh"].endswith("_body.npz")
    assert request["base_texture"] == "" and request["tone_match"] == "body_to_face"
    assert path.read_bytes() == before  # the artist's image file is not written over
    node = body.active_material.node_tree.nodes.get("AvatarTex Texture")
    assert node is not None and node.image.name.startswith("Body_toned") and _file(node.image).is_file()
    base = body.active_material.node_tree.nodes["Principled BSDF"].inputs["Base Color"]
    assert base.links[0].from_node == node
    assert _node(head) is not None  # the head got its texture as ever
    select_only(head)
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    # Restoring the head leaves the body's copy (and says so: the head knows which body it toned).
    assert head.avatartex.toned_body == "Body" and base.links[0].from_node == node
    select_only(body)
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    assert base.links[0].from_node.image.name == "Body_skin"


def test_a_head_sharing_the_bodys_material_says_what_the_body_shows(addon, fake_backend, portrait, tmp_path):
    """One skin material for head and body: the head gets its own copy, and the body shows its image
    toned to the face through one of its own, 'Body Skin' staying as it was (Restore Material on the
    head gives it back: it showed the toned body). The note said "so the others keep their look"."""
    head = add_sphere("Head", portrait)
    body, _path = _body_under(head, tmp_path)
    head.data.materials.append(body.active_material)
    select_only(head)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    skin = bpy.data.materials["Body Skin"]
    assert head.active_material != skin and body.active_material not in (skin, head.active_material)
    assert body.active_material.node_tree.nodes["AvatarTex Texture"].image.name.startswith("Body_toned")
    assert "AvatarTex Texture" not in skin.node_tree.nodes
    notes = " ".join(addon.state.last_summary)
    assert "shared the material 'Body Skin'" in notes and "keep their look" not in notes
    assert "'Body' shows a copy of 'Body Skin' with its skin toned to this face" in notes
    assert "goes back to on Restore Material" not in notes  # said once, in the head's note
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    assert head.active_material == skin


def test_a_body_whose_image_is_packed_is_toned_too(addon, fake_backend, portrait, tmp_path):
    """A glTF or VRM import packs every image, with no file path: the body's pixels are sent from a
    copy, the packed image left as it was."""
    head = add_sphere("Head", portrait)
    body, path = _body_under(head, tmp_path)
    image = bpy.data.images["Body_skin"]
    image.pack()
    image.filepath = ""
    path.unlink()
    select_only(head)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    request = fake_backend.requests()[-1]
    assert request["body_texture"].endswith("_body.png") and request["body_mesh"]
    node = body.active_material.node_tree.nodes.get("AvatarTex Texture")
    assert node is not None and node.image.name.startswith("Body_toned")
    assert image.packed_file is not None and image.filepath == ""


def _toon_and_comic_variants(head):
    """Two variants of ``head`` (toon, comic) generated, the second active; returns them."""
    for style in ("toon", "comic"):
        variant = head.avatartex.variants.add()
        variant.style, variant.name = style, style
    head.avatartex.active_variant_index = 1
    assert bpy.ops.avatartex.generate_variants() == {"FINISHED"}
    return tuple(head.avatartex.variants)


def test_each_variant_keeps_its_toned_body_and_apply_variant_shows_it(
    addon, fake_backend, portrait, tmp_path
):
    head = add_sphere("Head", portrait)
    body, _path = _body_under(head, tmp_path)
    select_only(head)
    bpy.context.scene.avatartex.resolution = 512
    first, second = _toon_and_comic_variants(head)
    assert first.body_image is not None and second.body_image is not None
    assert first.body_image != second.body_image and first.body_object == "Body"
    node = body.active_material.node_tree.nodes.get("AvatarTex Texture")
    assert node.image == second.body_image  # the active variant's is shown
    assert bpy.ops.avatartex.apply_variant(index=0) == {"FINISHED"}
    assert node.image == first.body_image


def _face_and_torso(portrait, tmp_path):
    """A head whose upper part shows a "Face" material and lower part a "Torso" one, each with an
    image file of its own (Daz's and Character Creator's characters are split so)."""
    head = add_sphere("Head", portrait)
    images = []
    for name, colour in (("face_map", (0.8, 0.6, 0.5)), ("torso_skin", (0.45, 0.3, 0.22))):
        image = bpy.data.images.new(name, 8, 8)
        image.pixels.foreach_set(np.tile([*colour, 1.0], 64).astype(np.float32))
        image.filepath_raw, image.file_format = str(tmp_path / f"{name}.png"), "PNG"
        image.save()
        images.append(image)
        head.data.materials.append(material_showing(name.split("_")[0].title(), image))
    for poly in head.data.polygons:
        poly.material_index = 1 if poly.center.z < -0.3 else 0
    return head, images


def test_a_body_in_a_material_of_its_own_gets_its_toned_copy_and_variants_keep_theirs(
    addon, fake_backend, portrait, tmp_path
):
    head, (face_map, torso) = _face_and_torso(portrait, tmp_path)
    before = _file(torso).read_bytes()
    select_only(head)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    request = fake_backend.requests()[-1]
    assert request["material_textures"] == [str(_file(face_map)), str(_file(torso))]
    assert request["body_mesh"] == "" and request["body_texture"] == ""
    face_mat, torso_mat = (slot.material for slot in head.material_slots)
    face_node, torso_node = (m.node_tree.nodes.get("AvatarTex Texture") for m in (face_mat, torso_mat))
    assert face_node is not None and torso_node is not None
    assert torso_node.image.name.startswith("Head_toned") and face_node.image != torso_node.image
    assert _file(torso).read_bytes() == before  # the artist's image file is not written over
    assert head.avatartex.toned_body == "Head"
    # Variants: each keeps its own toned torso; Apply Variant puts the face on the face's slot only.
    first, second = _toon_and_comic_variants(head)
    assert first.body_object == "Head" and first.body_image not in (None, second.body_image)
    assert face_node.image == second.image and torso_node.image == second.body_image
    assert bpy.ops.avatartex.apply_variant(index=0) == {"FINISHED"}
    assert face_node.image == first.image and torso_node.image == first.body_image
    # Restore Material on the head brings back both of the artist's images.
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    for mat, image in ((face_mat, face_map), (torso_mat, torso)):
        assert mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].links[0].from_node.image == image


def test_one_image_on_several_materials_sends_no_material_textures(addon, fake_backend, portrait):
    head = add_sphere("Head", portrait)
    face_map = bpy.data.images.new("face_map", 8, 8)
    for name in ("Face", "Ears"):
        head.data.materials.append(material_showing(name, face_map))
    for poly in head.data.polygons:
        poly.material_index = poly.index % 2
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert fake_backend.requests()[-1]["material_textures"] == []


# -- rigged characters: captured unposed; shape keys said ---------------------------------------------


def _rigged(head):
    """``head`` deformed by a one-bone armature (every vertex weighted to the bone), the bone posed
    turned 40 degrees about Z."""
    arm = bpy.data.armatures.new("Rig")
    rig = bpy.data.objects.new("Rig", arm)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    bone = arm.edit_bones.new("Head")
    bone.head, bone.tail = (0.0, 0.0, -1.0), (0.0, 0.0, 0.0)
    bpy.ops.object.mode_set(mode="OBJECT")
    group = head.vertex_groups.new(name="Head")
    group.add(list(range(len(head.data.vertices))), 1.0, "REPLACE")
    modifier = head.modifiers.new("Armature", "ARMATURE")
    modifier.object = rig
    pose = rig.pose.bones["Head"]
    pose.rotation_mode = "XYZ"
    pose.rotation_euler = (0.0, 0.4, 0.7)
    bpy.context.view_layer.update()
    return rig


def test_a_posed_head_is_captured_unposed_and_the_pose_is_kept(addon, fake_backend, portrait, tmp_path):
    head = add_sphere("Head", portrait)
    rest = addon.capture.capture_object(head, bpy.context.evaluated_depsgraph_get(), "", tmp_path / "r.npz")
    rig = _rigged(head)
    posed = addon.capture.capture_object(head, bpy.context.evaluated_depsgraph_get(), "", tmp_path / "p.npz")
    with np.load(rest) as a, np.load(posed) as b:
        assert np.abs(a["positions"] - b["positions"]).max() > 0.1  # the pose moves the capture
    pose = rig.pose.bones["Head"].rotation_euler.copy()
    rig.pose.bones["Head"].rotation_euler = (0.0, 0.0, 0.0)  # a rig at its rest: nothing to say
    with addon.capture.at_rest([head]) as names:
        assert names == [] and rig.data.pose_position == "REST"
    rig.pose.bones["Head"].rotation_euler = pose
    bpy.context.view_layer.update()
    with addon.capture.at_rest([head]) as names:
        assert names == ["Rig"] and rig.data.pose_position == "REST"
        again = addon.capture.capture_object(
            head, bpy.context.evaluated_depsgraph_get(), "", tmp_path / "a.npz"
        )
    assert rig.data.pose_position == "POSE"
    with np.load(rest) as a, np.load(again) as b:
        np.testing.assert_allclose(a["positions"], b["positions"], atol=1e-5)
    select_only(head)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert rig.data.pose_position == "POSE" and rig.pose.bones["Head"].rotation_euler.z == pytest.approx(0.7)
    assert any("captured in the rest position of 'Rig'" in line for line in addon.state.last_summary)


def test_shape_keys_that_shape_the_face_are_said(addon, fake_backend, portrait):
    head = add_sphere("Head", portrait)
    head.shape_key_add(name="Basis")
    jaw = head.shape_key_add(name="JawOpen")
    neutral = head.shape_key_add(name="Neutral")  # a key that moves nothing (VRoid's Fcl_ALL_Neutral)
    neutral.value = 1.0
    jaw.value = 0.0
    assert addon.capture.shape_keys_on(head) == []
    jaw.value = 1.0
    assert addon.capture.shape_keys_on(head) == []  # JawOpen moves no vertex yet either
    jaw.data[0].co.z -= 0.2
    assert addon.capture.shape_keys_on(head) == ["JawOpen 1.00"]
    jaw.mute = True
    assert addon.capture.shape_keys_on(head) == []
    jaw.mute = False
    select_only(head)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    said = [line for line in addon.state.last_summary if "shape keys" in line]
    assert said and "JawOpen 1.00" in said[0] and "set it to 0" in said[0]


def test_a_batch_over_whole_characters_passes_over_the_meshes_without_a_portrait(
    addon, fake_backend, portrait, tmp_path
):
    """Characters box-selected whole (head and body objects): the heads are textured, the bodies (no
    portrait) passed over and said, and the batch succeeds (a farm's exit code)."""
    heads = []
    for index in range(2):
        head = add_sphere(f"Head{index}", portrait)
        head.location.x = 5.0 * index
        body, _path = _body_under(head, tmp_path, name=f"Body{index}")
        heads.append(head)
    for obj in bpy.context.scene.objects:
        obj.select_set(True)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.batch_retexture() == {"FINISHED"}
    assert addon.state.last_summary[0] == "2 done, 0 failed"
    assert any(
        "2 mesh(es) without a portrait passed over: 'Body0', 'Body1'" in line
        for line in addon.state.last_summary
    )
    items = {item.name: item.status for item in bpy.context.scene.avatartex.batch}
    assert items == {"Head0": "done", "Head1": "done", "Body0": "skipped", "Body1": "skipped"}


def test_a_head_shown_by_collection_instances_says_they_show_its_texture_too(addon, fake_backend, portrait):
    head = add_sphere("Head", portrait)
    heads = bpy.data.collections.new("Heads")
    bpy.context.scene.collection.children.link(heads)
    heads.objects.link(head)
    bpy.context.scene.collection.objects.unlink(head)
    bpy.ops.object.collection_instance_add(collection=heads.name)
    select_only(head)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert any("1 collection instance(s) show this object too" in line for line in addon.state.last_summary)


def test_a_bodys_toned_copy_moves_next_to_the_blend_and_is_replaced_in_place(
    addon, fake_backend, portrait, tmp_path
):
    """Generated in an unsaved file, saved, generated again: the body's toned copy was moved next to
    the .blend with the head's texture, and the next run replaces it there (no Body_toned_001.png)."""
    head = add_sphere("Head", portrait)
    body, _path = _body_under(head, tmp_path)
    select_only(head)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    blend = _save(tmp_path)
    textures = blend.parent / "textures"
    node = body.active_material.node_tree.nodes.get("AvatarTex Texture")
    moved = _file(node.image)
    assert moved.parent == textures and moved.is_file()
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert _file(node.image) == moved
    assert sorted(p.name for p in textures.iterdir() if p.name.startswith("Body")) == [moved.name]
