"""Add-on behaviour that needs a misbehaving backend: crashes, hangs, cancel, bad input.

These run against ``fake_backend.py`` (same protocol, controllable failures); the texture tests on
the real backend are in ``test_generate_real.py``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from blender_support import add_sphere, bpy, scene_fingerprint, shift_d_copy


def _texture_node(obj):
    return obj.active_material.node_tree.nodes.get("AvatarTex Texture")


def _assert_done(obj):
    """The object's status names the file it got, said once ("Done: Head.png", not "done: Done: ...")."""
    import re

    assert re.fullmatch(rf"Done: {obj.name}(_\d{{3}})?\.png", obj.avatartex.status), obj.avatartex.status


# -- packaging -------------------------------------------------------------------------------------------


def test_zip_holds_addon_and_backend_source_only(addon_zip):
    import zipfile

    names = zipfile.ZipFile(addon_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "backend/avatartex/protocol.py" in names and "backend/requirements.txt" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".whl", ".safetensors", ".pt"))]
    assert not [n for n in names if n.startswith("backend/tests") or "/tests/" in n]


def test_installed_as_extension_with_user_folder_outside_addon(addon):
    assert addon.__name__ == "bl_ext.user_default.avatartex"
    addon_dir = Path(addon.__file__).parent
    user = addon.paths.user_dir()
    assert addon_dir not in user.parents and user != addon_dir
    assert addon.paths.protocol().PROTOCOL_VERSION == 1
    assert (
        bpy.context.preferences.addons[addon.__name__].preferences.bl_rna.identifier
        == "AVATARTEX_AP_preferences"
    )


# -- capture ------------------------------------------------------------------------------------------------


def test_capture_uses_evaluated_mesh_and_chosen_uv_map(addon, tmp_path):
    obj = add_sphere()
    obj.data.uv_layers.new(name="Second")
    # Shift the second map so that the two maps are distinguishable in the capture.
    second = obj.data.uv_layers["Second"].uv
    uv = np.empty(len(second) * 2, np.float32)
    second.foreach_get("vector", uv)
    second.foreach_set("vector", uv * 0.5 + 0.25)
    obj.modifiers.new("Sub", "SUBSURF").levels = 1
    depsgraph = bpy.context.evaluated_depsgraph_get()
    path = addon.capture.capture_object(obj, depsgraph, "Second", tmp_path / "c.npz")
    data = np.load(path)
    assert set(data.files) <= set(addon.paths.protocol().CAPTURE_KEYS)
    evaluated = obj.evaluated_get(depsgraph).data
    assert len(data["positions"]) == len(evaluated.vertices) > len(obj.data.vertices)
    assert data["triangles"].shape[1] == 3 and data["uvs"].shape == (len(data["triangles"]), 3, 2)
    assert data["uvs"].min() >= 0.25 - 1e-5 and data["uvs"].max() <= 0.75 + 1e-5
    assert data["triangles"].max() < len(data["positions"])
    np.testing.assert_allclose(data["up"], [0, 0, 1])
    np.testing.assert_allclose(data["forward"], [0, -1, 0])
    assert str(data["name"]) == "Head"
    # Counter-clockwise from outside: the triangle normals of a sphere point away from its centre.
    p = data["positions"][data["triangles"]]
    normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    assert (np.einsum("ij,ij->i", normal, p.mean(1)) > 0).mean() > 0.99


def test_pins_follow_modifiers_to_nearest_evaluated_vertex(addon, tmp_path):
    obj = add_sphere()
    top = int(np.argmax([v.co.z for v in obj.data.vertices]))
    obj.avatartex.pins[4] = top  # nose_tip
    obj.modifiers.new("Sub", "SUBSURF").levels = 1
    data = np.load(
        addon.capture.capture_object(obj, bpy.context.evaluated_depsgraph_get(), "", tmp_path / "c.npz")
    )
    assert list(data["pin_names"]) == list(addon.paths.protocol().PIN_NAMES)
    assert data["pins"][0] == -1 and data["pins"][4] >= 0
    assert data["positions"][data["pins"][4]][2] == pytest.approx(data["positions"][:, 2].max(), abs=1e-4)


def test_set_pin_from_single_selected_vertex(addon):
    obj = add_sphere()
    selected = np.zeros(len(obj.data.vertices), bool)
    selected[7] = True
    obj.data.vertices.foreach_set("select", selected)
    bpy.ops.avatartex.set_pin(pin="chin")
    assert obj.avatartex.pins[7] == 7
    selected[8] = True
    obj.data.vertices.foreach_set("select", selected)
    with pytest.raises(RuntimeError, match="exactly one"):
        bpy.ops.avatartex.set_pin(pin="nose_tip")
    bpy.ops.avatartex.clear_pins()
    assert list(obj.avatartex.pins) == [-1] * 8


# -- generate, material, undo (fake backend) ------------------------------------------------------------


def test_generate_wires_base_color_and_keeps_existing_nodes(addon, fake_backend, portrait):
    obj = add_sphere(portrait=portrait)
    mat = bpy.data.materials.new("Skin")
    mat.use_nodes = True
    tree = mat.node_tree
    old = tree.nodes.new("ShaderNodeTexImage")
    old.name = "Artist Image"
    old.image = bpy.data.images.new("artist_paint", 8, 8)
    bsdf = tree.nodes["Principled BSDF"]
    tree.links.new(old.outputs["Color"], bsdf.inputs["Base Color"])
    obj.data.materials.append(mat)
    nodes_before = {n.name for n in tree.nodes}
    bpy.context.scene.avatartex.resolution = 512

    assert bpy.ops.avatartex.generate() == {"FINISHED"}

    node = tree.nodes["AvatarTex Texture"]
    assert nodes_before < {n.name for n in tree.nodes}
    assert bsdf.inputs["Base Color"].links[0].from_node == node
    assert tree.nodes["Artist Image"].image.name == "artist_paint"
    image = node.image
    assert tuple(image.size) == (512, 512)
    # The fake backend returns the portrait resized: the image's pixels came from the photo.
    pixels = np.empty(512 * 512 * 4, np.float32)
    image.pixels.foreach_get(pixels)
    from PIL import Image

    expected = np.asarray(Image.open(portrait).convert("RGB").resize((512, 512)), np.float32) / 255
    got = pixels.reshape(512, 512, 4)[::-1, :, :3]  # Blender's rows go bottom-up
    assert np.abs(got - expected).mean() < 0.02
    # Unsaved file: the texture is in the extension's user folder, not the add-on folder.
    path = Path(bpy.path.abspath(image.filepath))
    assert path.is_file() and addon.paths.user_dir() in path.parents
    _assert_done(obj)
    # The request carried the scene's settings and a capture of the mesh.
    request = fake_backend.requests()[-1]
    assert request["size"] == 512 and request["facing"] == "-y" and request["mesh"].endswith(".npz")


def test_generate_creates_material_when_none(addon, fake_backend, portrait):
    obj = add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    bpy.ops.avatartex.generate()
    mat = obj.active_material
    assert mat is not None and _texture_node(obj) is not None
    bsdf = next(n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    assert bsdf.inputs["Base Color"].links[0].from_node.name == "AvatarTex Texture"


def test_undo_restores_material(addon, fake_backend, portrait):
    obj = add_sphere(portrait=portrait)
    mat = bpy.data.materials.new("Skin")
    mat.use_nodes = True
    obj.data.materials.append(mat)
    bpy.context.scene.avatartex.resolution = 512
    before = scene_fingerprint()
    bpy.ops.ed.undo_push(message="before")
    # As from the UI: the operator's own undo step covers the material change.
    assert bpy.ops.avatartex.generate("EXEC_DEFAULT", True) == {"FINISHED"}
    assert scene_fingerprint() != before
    bpy.ops.ed.undo()
    after = scene_fingerprint()
    assert after["materials"] == before["materials"] and after["objects"] == before["objects"]


def test_restore_operator_reconnects_previous_link(addon, fake_backend, portrait):
    obj = add_sphere(portrait=portrait)
    mat = bpy.data.materials.new("Skin")
    mat.use_nodes = True
    tree = mat.node_tree
    rgb = tree.nodes.new("ShaderNodeRGB")
    tree.links.new(rgb.outputs[0], tree.nodes["Principled BSDF"].inputs["Base Color"])
    obj.data.materials.append(mat)
    before = scene_fingerprint()["materials"]
    bpy.context.scene.avatartex.resolution = 512
    bpy.ops.avatartex.generate()
    bpy.ops.avatartex.generate()  # a second result swaps the image; the remembered link stays the first one
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    assert scene_fingerprint()["materials"] == before


def test_a_material_of_another_shader_shows_the_texture_through_its_colour(addon, fake_backend, portrait):
    """A surface that is a Diffuse BSDF (a stylised or game material, no Principled BSDF): the texture
    was put into a new Principled BSDF the output did not show, and the render showed no texture with
    no word of it. Now it goes into the shader's own Color, and Restore Material gives that back. A
    surface with no colour input at all (a Holdout here) keeps its look, and the artist is told
    where the texture is."""
    obj = add_sphere(portrait=portrait)
    mat = bpy.data.materials.new("Toon")
    mat.use_nodes = True
    tree = mat.node_tree
    tree.nodes.remove(tree.nodes["Principled BSDF"])
    diffuse = tree.nodes.new("ShaderNodeBsdfDiffuse")
    diffuse.inputs["Color"].default_value = (0.2, 0.5, 0.3, 1.0)
    tree.links.new(diffuse.outputs["BSDF"], tree.nodes["Material Output"].inputs["Surface"])
    obj.data.materials.append(mat)
    before = scene_fingerprint()["materials"]
    bpy.context.scene.avatartex.resolution = 512
    bpy.ops.avatartex.generate()
    assert diffuse.inputs["Color"].links[0].from_node.name == "AvatarTex Texture"
    assert not [n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"]
    bpy.ops.avatartex.generate()  # again: the same input, the image swapped
    assert diffuse.inputs["Color"].links[0].from_node.name == "AvatarTex Texture"
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    assert scene_fingerprint()["materials"] == before

    held = add_sphere("Held", portrait)
    mat = bpy.data.materials.new("Matte")
    mat.use_nodes = True
    tree = mat.node_tree
    tree.nodes.remove(tree.nodes["Principled BSDF"])
    holdout = tree.nodes.new("ShaderNodeHoldout")
    tree.links.new(holdout.outputs["Holdout"], tree.nodes["Material Output"].inputs["Surface"])
    held.data.materials.append(mat)
    before = scene_fingerprint()["materials"]
    bpy.ops.avatartex.generate()
    assert tree.nodes["Material Output"].inputs["Surface"].links[0].from_node == holdout
    notes = " ".join(addon.state.last_summary)
    assert "which the render does not show" in notes and "AvatarTex Texture" in notes, notes
    # Restore takes away the Principled BSDF it added to plug the texture into, as well.
    assert bpy.ops.avatartex.restore_material() == {"FINISHED"}
    assert scene_fingerprint()["materials"] == before


def test_a_packed_texture_stays_packed_and_names_keep_their_script(addon, fake_backend, portrait, tmp_path):
    """An artist packs the textures into the .blend to send one file (File > External Data > Pack
    Resources): the next texture was shown but not packed, and the file sent went without it. Now a
    texture replacing a packed one is packed too. And an object named in another script than Latin
    gets its own name for its file (頭.png), not "texture.png"."""
    head = add_sphere("頭", portrait)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    image = _texture_node(head).image
    assert Path(image.filepath).name == "頭.png" and image.packed_file is None  # not packed unasked
    image.pack()
    bpy.context.scene.avatartex.resolution = 1024  # another texture: another file
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    again = _texture_node(head).image
    assert again.packed_file is not None
    # The same image, holding the new file: a new one beside it was named "頭.png" and the old one
    # kept the last texture under the name things refer to.
    assert again.name == image.name == "頭"
    final = Path(bpy.path.abspath(again.filepath))
    assert again.packed_file.data == final.read_bytes() and again.size[0] == 1024
    assert [i.name for i in bpy.data.images if Path(bpy.path.abspath(i.filepath)).name == "頭.png"] == ["頭"]


def test_file_names_from_object_names_are_ones_every_system_writes(addon):
    """An object named ``CON`` (or aux, com1, lpt3...) wrote ``CON.png``, a name Windows refuses
    whatever the extension: the write failed there. Other names as before."""
    safe = addon.paths.safe_name
    for name in ("CON", "con", "Aux", "NUL", "COM1", "lpt9", "con.001"):
        cleaned = safe(name)
        assert cleaned.split(".")[0].upper() not in addon.paths.WINDOWS_RESERVED, (name, cleaned)
        assert cleaned.upper().startswith(name.split(".")[0].upper()), (name, cleaned)
    assert safe("con.001") == "con_.001"
    for name, expected in (
        ("Head/Left:1", "Head_Left_1"),
        ("..", "texture"),
        ("Console", "Console"),
        ("COM10", "COM10"),
    ):
        assert safe(name) == expected


def test_a_portrait_packed_into_the_blend_or_under_home_is_said_or_found(
    addon, fake_backend, portrait, tmp_path
):
    """A photo packed into the .blend whose file is gone got "does not exist"; one given as
    ~/photo.png was looked for in the current folder."""
    import shutil

    head = add_sphere(portrait=portrait)
    # Named for this run alone: two test runs at once (two clones' CI) deleted each other's photo.
    home_photo = Path.home() / f".avatartex_test_photo_{os.getpid()}_{tmp_path.name}.png"
    shutil.copy(portrait, home_photo)
    try:
        head.avatartex.portrait_path = "~/" + home_photo.name
        bpy.context.scene.avatartex.resolution = 512
        assert bpy.ops.avatartex.generate() == {"FINISHED"}
        assert fake_backend.requests()[-1]["portrait"] == str(home_photo.resolve())
        photo = bpy.data.images.load(str(home_photo))
        photo.pack()
    finally:
        home_photo.unlink()
    head.avatartex.portrait_path = str(home_photo)
    with pytest.raises(RuntimeError, match="packed into this .blend") as caught:
        bpy.ops.avatartex.generate()
    assert "Unpack Resources" in str(caught.value)


def test_the_uv_map_used_is_said_when_there_are_several(addon, fake_backend, portrait):
    """Two UV maps, the second active and the first the render one: the texture goes into the render
    map (right for the render), but nothing said which; now the summary does."""
    head = add_sphere(portrait=portrait)
    head.data.uv_layers.new(name="Lightmap")
    head.data.uv_layers.active = head.data.uv_layers["Lightmap"]
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    notes = " ".join(addon.state.last_summary)
    assert "laid out in the UV map 'UVMap'" in notes and "of 2" in notes, notes
    head.data.uv_layers.remove(head.data.uv_layers["Lightmap"])
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert "laid out in the UV map" not in " ".join(addon.state.last_summary)


def test_the_uv_map_the_skin_image_reads_is_the_one_baked_into(addon, fake_backend, portrait, tmp_path):
    """The artist's skin image reads "UVMap" through a UV Map node, while a second map, "Lightmap"
    (Smart UV Project's many small islands), is active and the render's: the texture was laid out in
    Lightmap, wasting its resolution on islands no one could paint. Now it goes where the image it
    replaces read, and the new node reads that map too."""
    head = add_sphere(portrait=portrait)
    lightmap = head.data.uv_layers.new(name="Lightmap")
    uv = np.empty(len(lightmap.uv) * 2, np.float32)
    lightmap.uv.foreach_get("vector", uv)
    lightmap.uv.foreach_set("vector", uv * 0.5 + 0.25)  # told apart in the capture
    head.data.uv_layers.active = lightmap
    lightmap.active_render = True
    skin = bpy.data.materials.new("Skin")
    skin.use_nodes = True
    tree = skin.node_tree
    image = tree.nodes.new("ShaderNodeTexImage")
    image.image = bpy.data.images.new("skin", 8, 8)
    reads = tree.nodes.new("ShaderNodeUVMap")
    reads.uv_map = "UVMap"
    tree.links.new(reads.outputs["UV"], image.inputs["Vector"])
    tree.links.new(image.outputs["Color"], tree.nodes["Principled BSDF"].inputs["Base Color"])
    head.data.materials.append(skin)
    bpy.context.scene.avatartex.resolution = 512
    depsgraph = bpy.context.evaluated_depsgraph_get()
    uv_name = addon.capture.resolve_uv_map(head, "")
    data = np.load(addon.capture.capture_object(head, depsgraph, uv_name, tmp_path / "c.npz"))
    assert uv_name == "UVMap" and data["uvs"].min() < 0.2  # the full map, not the shifted Lightmap
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert addon.material.read_uv_map(head) == "UVMap"
    notes = " ".join(addon.state.last_summary)
    assert "laid out in the UV map 'UVMap' (the one the material's image read)" in notes, notes


def test_saved_blend_writes_next_to_it_without_overwriting(addon, fake_backend, portrait, tmp_path):
    obj = add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    blend = tmp_path / "project" / "scene.blend"
    blend.parent.mkdir()
    (blend.parent / "textures").mkdir()
    artist = blend.parent / "textures" / "Head.png"
    artist.write_bytes(b"the artist's own file")
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.avatartex.generate()
    image = _texture_node(obj).image
    assert image.filepath.startswith("//textures/")
    assert artist.read_bytes() == b"the artist's own file"
    assert Path(bpy.path.abspath(image.filepath)).name == "Head_001.png"
    assert not [p for p in artist.parent.iterdir() if p.name.startswith(".avatartex")]


def test_a_texture_edited_outside_blender_is_kept_and_that_is_said(addon, fake_backend, portrait, tmp_path):
    """The README promises a file changed since is never overwritten and that this is said: the file
    was kept, but the new one appeared as Head_001.png with no word."""
    head = add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    first = Path(bpy.path.abspath(_texture_node(head).image.filepath))
    assert bpy.ops.avatartex.generate() == {"FINISHED"}  # its own file, unchanged: replaced, not said
    assert Path(bpy.path.abspath(_texture_node(head).image.filepath)) == first
    assert "was changed since AvatarTex wrote it" not in " ".join(addon.state.last_summary)
    first.write_bytes(first.read_bytes() + b"painted in another program")
    edited = first.read_bytes()
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert first.read_bytes() == edited
    new = Path(bpy.path.abspath(_texture_node(head).image.filepath))
    assert new.name == "Head_001.png"
    notes = " ".join(addon.state.last_summary)
    assert f"{first.name} was changed since AvatarTex wrote it" in notes and "Head_001.png" in notes


def test_a_renamed_head_replaces_its_own_file_and_a_copy_does_not(addon, fake_backend, portrait, tmp_path):
    """Renamed after texturing (Head -> Hero), the next texture left Head.png and its image beside a
    new Hero.png; now it replaces the add-on's own file. A copy of the head (Shift+D), which carries
    the record of the original's file, still gets a file of its own."""
    head = add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    first = Path(bpy.path.abspath(_texture_node(head).image.filepath))
    head.name = "Hero"
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert Path(bpy.path.abspath(_texture_node(head).image.filepath)) == first
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]
    copy = shift_d_copy(head)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert Path(bpy.path.abspath(_texture_node(copy).image.filepath)) != first
    assert Path(bpy.path.abspath(_texture_node(head).image.filepath)) == first and first.is_file()


# -- bad input: a clear message, the scene unchanged ----------------------------------------------------


def _assert_fails_unchanged(match: str, op=None) -> None:
    before = scene_fingerprint()
    with pytest.raises(RuntimeError, match=match):
        (op or bpy.ops.avatartex.generate)()
    assert scene_fingerprint() == before


def test_nothing_selected(addon, fake_backend):
    _assert_fails_unchanged("Nothing is selected")
    _assert_fails_unchanged("no mesh object in the selection", bpy.ops.avatartex.batch_retexture)


def test_non_mesh(addon, fake_backend):
    bpy.ops.object.camera_add()
    _assert_fails_unchanged("is a camera, not a mesh")
    # A collection instance (an empty): "an empty", and where its head is.
    heads = bpy.data.collections.new("Heads")
    bpy.ops.object.collection_instance_add(collection=heads.name)
    with pytest.raises(RuntimeError, match="is an empty, not a mesh.*shows the collection 'Heads'"):
        bpy.ops.avatartex.generate()


def test_mesh_without_uv_map_offers_unwrap(addon, fake_backend, portrait):
    obj = add_sphere(portrait=portrait)
    obj.data.uv_layers.remove(obj.data.uv_layers[0])
    _assert_fails_unchanged("has no UV map.*Unwrap")
    bpy.ops.avatartex.unwrap()
    assert len(obj.data.uv_layers) == 1


@pytest.mark.parametrize(
    "kind,match",
    [
        ("missing", "does not exist"),
        ("not_image", "not an image"),
        ("no_face", "No face"),
        ("folder", "is a folder, not an image file"),  # was "does not exist"
    ],
)
def test_bad_portraits(addon, fake_backend, bad_portraits, kind, match):
    obj = add_sphere(portrait=bad_portraits[kind])
    obj.avatartex.status = "Done: Head.png"  # the last run's
    bpy.context.scene.avatartex.resolution = 512
    _assert_fails_unchanged(match)
    # The object says so, with a code a script can test (it kept the last run's "Done" when the
    # request was refused before reaching the backend).
    assert obj.avatartex.status.startswith("Failed: ")
    code = {"missing": "portrait_missing", "folder": "portrait_missing", "not_image": "portrait_unreadable"}
    assert obj.avatartex.error_code == code.get(kind, "no_face_in_portrait"), obj.avatartex.error_code


def test_no_portrait_set(addon, fake_backend):
    add_sphere()
    _assert_fails_unchanged("No portrait is set")


def test_backend_python_missing(addon, portrait, monkeypatch):
    monkeypatch.setenv("AVATARTEX_BACKEND_PYTHON", "/nonexistent/python3")
    add_sphere(portrait=portrait)
    _assert_fails_unchanged("does not exist.*Preferences")
    monkeypatch.delenv("AVATARTEX_BACKEND_PYTHON")
    if not addon.backend.managed_python().exists():
        _assert_fails_unchanged("No backend Python is set")


def test_backend_python_broken(addon, fake_backend, portrait):
    fake_backend("bad_hello")
    add_sphere(portrait=portrait)
    _assert_fails_unchanged("did not start.*No module named 'torch'")


def test_read_only_output_folder(addon, fake_backend, portrait, tmp_path):
    # The tests run as root, for whom chmod does not stop writes: block the folder with a file instead.
    add_sphere(portrait=portrait)
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    (tmp_path / "textures").write_text("a file where the folder should be")
    _assert_fails_unchanged("Cannot write textures")


def test_unsaved_blend_reports_where_textures_went(addon, fake_backend, portrait):
    add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    job = addon.jobs.Job("generate", [addon.jobs.task_for(bpy.context.active_object, bpy.context.scene)])
    addon.jobs.start(job, "sync").run_sync()
    assert any("unsaved" in note for note in job.notes)


def test_second_generate_while_running(addon, fake_backend, portrait):
    fake_backend("hang")
    add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate(asynchronous=True) == {"FINISHED"}
    job = addon.state.job
    _assert_fails_unchanged("already generating")
    _assert_fails_unchanged("already generating", bpy.ops.avatartex.batch_retexture)
    bpy.ops.avatartex.cancel()
    job.run_sync()


# -- cancel, crash, restart ----------------------------------------------------------------------------------


def test_cancel_mid_run_leaves_scene_untouched(addon, fake_backend, portrait):
    fake_backend("slow", delay=0.1)
    obj = add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    before = scene_fingerprint()
    bpy.ops.avatartex.generate(asynchronous=True)
    job = addon.state.job
    # Pump as Blender's timer would until the backend reports progress, then press Cancel.
    while bpy.context.scene.avatartex.progress == 0:
        job.pump(wait=0.2)
    assert job.tasks[0].message.startswith("project: step")
    bpy.ops.avatartex.cancel()
    job.run_sync()
    assert job.tasks[0].status == "cancelled" and addon.state.job is None
    assert scene_fingerprint() == before
    assert obj.avatartex.status == "Cancelled"
    # The backend is still warm and usable.
    fake_backend("ok")
    assert bpy.ops.avatartex.generate() == {"FINISHED"}


def test_sync_generate_cancelled_from_another_thread(addon, fake_backend, portrait):
    fake_backend("hang")
    add_sphere(portrait=portrait)
    before = scene_fingerprint()

    def cancel_once_running():
        # The job exists only once the backend has started (a second or more on a loaded machine): a
        # plain 1 s timer found none, failed in its thread, and the hanging backend then hung the test.
        deadline = time.monotonic() + 60.0
        while addon.state.job is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        job = addon.state.job
        if job is not None:
            job.cancel()

    canceller = threading.Thread(target=cancel_once_running, daemon=True)
    canceller.start()
    assert bpy.ops.avatartex.generate() == {"CANCELLED"}
    canceller.join()
    assert scene_fingerprint() == before


def test_cancel_pressed_while_the_request_is_made_is_not_lost(addon, fake_backend, portrait, monkeypatch):
    """Cancel pressed (from another thread, a sync run) while the mesh is captured, before the request
    is pending: the request is cancelled once sent, not left to a backend that never answers. Before,
    the cancel found nothing pending and the run waited for the hanging backend for ever (this test
    then hangs: CI's run of test_sync_generate_cancelled_from_another_thread did, 2026-11-26)."""
    fake_backend("hang")
    add_sphere(portrait=portrait)
    before = scene_fingerprint()
    capture_object = addon.capture.capture_object

    def capture_then_cancel(*args, **kwargs):
        out = capture_object(*args, **kwargs)
        addon.state.job.cancel()
        return out

    monkeypatch.setattr(addon.capture, "capture_object", capture_then_cancel)
    assert bpy.ops.avatartex.generate() == {"CANCELLED"}
    assert scene_fingerprint() == before


def test_killed_backend_is_restarted(addon, fake_backend, portrait):
    obj = add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    bpy.ops.avatartex.generate()
    client = addon.state.client
    first_pid = client.process.pid
    client.kill()
    bpy.ops.avatartex.generate()
    assert addon.state.client.process.pid != first_pid
    _assert_done(obj)


def test_crash_mid_run_restarts_once_and_retries(addon, fake_backend, portrait):
    fake_backend("crash_once")
    obj = add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    assert addon.state.client is None  # a fresh client: its first start is the one counted below
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert addon.state.client.starts == 2
    assert any("crashed" in line and "restarted" in line for line in addon.state.last_summary)
    assert _texture_node(obj) is not None


def test_backend_dying_every_time_is_reported_scene_unchanged(addon, fake_backend, portrait):
    fake_backend("crash")
    add_sphere(portrait=portrait)
    _assert_fails_unchanged(r"stopped unexpectedly \(exit code 3\).*simulated crash")


# -- batch and variants (wiring; the real-backend versions are in test_generate_real.py) ------------------


def drawn_labels(panel) -> list[tuple[str, str]]:
    """The labels (text, icon) ``panel.draw`` lays out in the current context, through a layout that
    records them (panels cannot be drawn headless)."""
    labels = []

    class Recorder:
        enabled, scale_y = True, 1.0

        def __getattr__(self, name):
            def record(*args, **kwargs):
                if name == "label":
                    labels.append((kwargs.get("text", ""), kwargs.get("icon", "")))
                return Recorder()

            return record

    panel.draw(type("P", (), {"layout": Recorder()})(), bpy.context)
    return labels


def test_batch_keeps_going_past_failure(addon, fake_backend, portrait, bad_portraits):
    objs = [add_sphere(f"Char{i}", portrait) for i in range(3)]
    objs[1].avatartex.portrait_path = str(bad_portraits["not_image"])
    bpy.ops.object.camera_add()  # selected non-meshes are skipped
    for o in objs:
        o.select_set(True)
    bpy.context.scene.avatartex.resolution = 512
    # Background mode (a farm): a failed object makes the batch an error, after every object ran.
    with pytest.raises(RuntimeError, match=r"2 done, 1 failed \| Char1: .*not an image"):
        bpy.ops.avatartex.batch_retexture()
    batch = {item.name: item for item in bpy.context.scene.avatartex.batch}
    assert [batch[o.name].status for o in objs] == ["done", "failed", "done"]
    assert "not an image" in batch["Char1"].message
    # A script tells a bad input (do not retry) from a crash by its code, not by parsing English.
    assert [batch[o.name].code for o in objs] == ["", "portrait_unreadable", ""]
    assert [o.avatartex.error_code for o in objs] == ["", "portrait_unreadable", ""]
    assert _texture_node(objs[0]) and _texture_node(objs[2]) and objs[1].active_material is None
    assert bpy.context.scene.avatartex.status.startswith("2 done, 1 failed")

    # The batch panel shows each object's outcome, a failure's reason whole, on lines it holds.
    labels = [text for text, _ in drawn_labels(addon.panels.AVATARTEX_PT_batch)]
    assert max(len(text) for text in labels) <= addon.panels.line_width(bpy.context)
    assert "not an image" in " ".join(labels) and any(text.startswith("Char1:") for text in labels)


def test_a_batch_says_a_verdict_shared_by_several_heads_once(addon, fake_backend, portrait):
    """Three heads, one doubtful verdict: the summary repeated its paragraph (reasons and what to try)
    for each; now once, naming them all."""
    objs = [add_sphere(f"Char{i}", portrait) for i in range(3)]
    for o in objs:
        o.select_set(True)
    bpy.context.scene.avatartex.resolution = 512
    fake_backend("ok", verdict="doubtful")
    assert bpy.ops.avatartex.batch_retexture() == {"FINISHED"}
    verdicts = [line for line in addon.state.last_summary if "registration doubtful" in line]
    assert len(verdicts) == 1 and verdicts[0].startswith("Char0, Char1, Char2: registration doubtful: ")
    merged = addon.jobs.merged_notes(["A: x", "note", "B: x", "A: y"], ["A", "B"])
    assert merged == ["A, B: x", "note", "A: y"]


def test_panels_draw_with_recording_layout(addon, fake_backend, portrait):
    calls = []

    class Recorder:
        def __init__(self):
            self.enabled = True
            self.scale_y = 1.0

        def __getattr__(self, name):
            def record(*args, **kwargs):
                calls.append((name, args, kwargs))
                return Recorder() if name in ("row", "column", "box", "split") else _Props()

            return record

    class _Props:
        def __setattr__(self, name, value):
            calls.append(("set", name, value))

    panels = addon.panels
    self_ = type("P", (), {"layout": Recorder()})()
    # No object: the reason is shown and nothing crashes.
    for panel in (
        panels.AVATARTEX_PT_main,
        panels.AVATARTEX_PT_pins,
        panels.AVATARTEX_PT_batch,
        panels.AVATARTEX_PT_variants,
    ):
        panel.draw(self_, bpy.context)
    assert ("label", (), {"text": "Select a head mesh", "icon": "INFO"}) in calls
    calls.clear()
    obj = add_sphere(portrait=portrait)
    obj.avatartex.variants.add().name = "A"
    for panel in (
        panels.AVATARTEX_PT_main,
        panels.AVATARTEX_PT_pins,
        panels.AVATARTEX_PT_batch,
        panels.AVATARTEX_PT_variants,
    ):
        panel.draw(self_, bpy.context)
    ops = [c[1][0] for c in calls if c[0] == "operator"]
    assert "avatartex.generate" in ops and "avatartex.generate_variants" in ops
    assert ops.count("avatartex.set_pin") == 8
    props = [c[1][1] for c in calls if c[0] == "prop"]
    for name in ("portrait_path", "style", "resolution", "engine", "seed", "tone_match", "body_object"):
        assert name in props
    assert any(c[0] == "prop_search" and c[1][1] == "uv_map" for c in calls)
    assert any(c[0] == "template_list" and c[1][0] == "AVATARTEX_UL_variants" for c in calls)
    calls.clear()
    bpy.ops.object.camera_add()
    panels.AVATARTEX_PT_main.draw(self_, bpy.context)
    assert any(c[0] == "label" and "is not a mesh" in c[2].get("text", "") for c in calls)
    # The preferences draw too.
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    prefs_self = type("Q", (), {"layout": Recorder()})()
    for name in ("backend_mode", "python_path", "model_cache", "device", "low_vram"):
        setattr(prefs_self, name, getattr(prefs, name))
    addon.preferences.AVATARTEX_AP_preferences.draw(prefs_self, bpy.context)
    assert any(c[0] == "operator" and c[1][0] == "avatartex.test_backend" for c in calls)


def test_test_backend_shows_hello(addon, fake_backend):
    assert bpy.ops.avatartex.test_backend() == {"FINISHED"}
    assert addon.state.hello["backend_version"] == "fake"
    assert [s[0] for s in addon.properties.style_names()] == ["photoreal", "toon"]


def test_a_variant_stepping_only_the_seed_of_a_seed_free_style_is_said_to_repeat(
    addon, fake_backend, portrait, monkeypatch
):
    """Add Variant steps the seed; toon, comic and anime on the classic engine do not depend on it
    (``Style.seed_free``, in ``hello``): two such variants were two generations of one texture under
    two names. The panel says so, and what to change; not for another strength, another style, or
    where the neural engine runs."""
    assert bpy.ops.avatartex.test_backend() == {"FINISHED"}  # the fake's toon is seed-free
    head = add_sphere("Head", portrait)
    settings = bpy.context.scene.avatartex
    settings.engine, settings.style = "classic", "toon"

    def said() -> str:
        return " ".join(text for text, _ in drawn_labels(addon.panels.AVATARTEX_PT_variants))

    assert bpy.ops.avatartex.variant_add() == {"FINISHED"}
    assert "same texture" not in said()
    assert bpy.ops.avatartex.variant_add() == {"FINISHED"}
    assert "'toon 1' will be the same texture as 'toon 0'" in said() and "strength under 1" in said()
    head.avatartex.variants[1].strength = 0.8
    assert "same texture" not in said()
    head.avatartex.variants[1].strength = 1.0
    settings.engine = "auto"  # the neural engine ready: its diffusion draws from the seed
    monkeypatch.setattr(addon.engines, "neural_code", lambda hello=None: "ok")
    assert "same texture" not in said()
    monkeypatch.setattr(addon.engines, "neural_code", lambda hello=None: "no_gpu")
    assert "same texture" in said()
    settings.style = "photoreal"  # its grain is drawn from the seed
    assert bpy.ops.avatartex.variant_add() == {"FINISHED"}
    assert bpy.ops.avatartex.variant_add() == {"FINISHED"}
    assert "same texture" not in said()


def test_a_variant_edited_to_match_another_is_said_to_repeat_it(addon, fake_backend, portrait):
    """A variant's style and seed edited to another's ("photoreal 6" made "painterly 5" beside a
    "painterly 5"): both were generated, byte for byte the same, unsaid."""
    head = add_sphere("Head", portrait)
    settings = bpy.context.scene.avatartex
    settings.style, settings.seed = "painterly", 5
    assert bpy.ops.avatartex.variant_add() == {"FINISHED"}
    settings.style = "photoreal"
    assert bpy.ops.avatartex.variant_add() == {"FINISHED"}
    assert not addon.jobs.same_texture_note(head, 1, bpy.context.scene)
    edited = head.avatartex.variants[1]
    edited.style, edited.seed = "painterly", 5
    note = addon.jobs.same_texture_note(head, 1, bpy.context.scene)
    assert "will be the same texture as 'painterly 5'" in note and "same style, seed and strength" in note
    edited.strength = 0.7
    assert not addon.jobs.same_texture_note(head, 1, bpy.context.scene)


def test_unregister_stops_backend(addon, fake_backend):
    bpy.ops.avatartex.test_backend()
    proc = addon.state.client.process
    name = addon.__name__
    bpy.ops.preferences.addon_disable(module=name)
    try:
        assert proc.poll() is not None
        assert not hasattr(bpy.types.Scene, "avatartex")
    finally:
        bpy.ops.preferences.addon_enable(module=name)
    assert hasattr(bpy.types.Scene, "avatartex")
    assert os.environ["AVATARTEX_BACKEND_PYTHON"]
    assert sys.modules[name] is addon and addon.state.client is None


# -- UI-style runs (timers), preferences, managed environment -----------------------------------------


def _run_timers(addon, limit_s: float = 30.0) -> None:
    """Call the add-on's bpy.app.timers function as Blender's event loop would (bpy has no loop)."""
    import time

    deadline = time.monotonic() + limit_s
    while addon.jobs._timer() is not None:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(addon.jobs.TIMER_INTERVAL_S)


def test_timer_driven_generate_is_one_undo_step(addon, fake_backend, portrait):
    obj = add_sphere(portrait=portrait)
    mat = bpy.data.materials.new("Skin")
    mat.use_nodes = True
    obj.data.materials.append(mat)
    bpy.context.scene.avatartex.resolution = 512
    before = scene_fingerprint()
    bpy.ops.ed.undo_push(message="before")
    assert bpy.ops.avatartex.generate(asynchronous=True) == {"FINISHED"}
    assert scene_fingerprint() == before  # returned at once, nothing applied yet
    _run_timers(addon)
    assert bpy.data.objects["Head"].active_material.node_tree.nodes.get("AvatarTex Texture") is not None
    bpy.ops.ed.undo()
    after = scene_fingerprint()
    assert after["materials"] == before["materials"] and after["objects"] == before["objects"]


def test_new_job_waits_for_backend_busy_with_dropped_job(addon, fake_backend, portrait):
    fake_backend("slow", delay=0.2, linger=True)  # the dropped job runs on until the new one is refused
    add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    bpy.ops.avatartex.generate(asynchronous=True)
    job = addon.state.job
    while job.phase != "generate" or job.pending is None:
        job.pump(wait=0.1)
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)  # load_pre drops the job
    assert addon.state.job is None and job.cancelled
    fake_backend("ok")
    obj = add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    _assert_done(obj)
    assert Path(str(fake_backend.control) + ".busy").is_file(), "the backend was never busy: test is moot"


def test_preferences_python_device_and_restart(addon, fake_backend, tmp_path):
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    try:
        prefs.backend_mode = "CUSTOM"
        prefs.python_path = str(tmp_path / "missing-python")
        with pytest.raises(RuntimeError, match="missing-python does not exist"):
            bpy.ops.avatartex.test_backend()  # the preference wins over AVATARTEX_BACKEND_PYTHON
        prefs.python_path = str(tmp_path)  # the environment's folder picked, not its python
        with pytest.raises(RuntimeError, match="is a folder, not a Python program"):
            bpy.ops.avatartex.test_backend()
        prefs.python_path = os.environ["AVATARTEX_BACKEND_PYTHON"]
        prefs.device = "cpu"
        prefs.low_vram = True
        prefs.model_cache = str(tmp_path / "models")
        bpy.ops.avatartex.test_backend()
        env = addon.state.hello["env"]
        assert env["AVATARTEX_DEVICE"] == "cpu" and env["AVATARTEX_LOW_VRAM"] == "1"
        assert env["AVATARTEX_MODEL_CACHE"] == str(tmp_path / "models")
        proc = addon.state.client.process
        prefs.low_vram = False  # the backend reads it at start: the process is replaced
        assert proc.poll() is not None and addon.state.client is None
        bpy.ops.avatartex.test_backend()
        assert addon.state.hello["env"]["AVATARTEX_LOW_VRAM"] == "0"
    finally:
        prefs.backend_mode = "MANAGED"
        prefs.python_path = ""
        prefs.low_vram = False
        prefs.model_cache = ""
        prefs.device = "auto"


def test_managed_environment_needs_online_access(addon, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy\n")
    assert not bpy.app.online_access  # the bpy module starts offline
    with pytest.raises(Exception, match="online access is off"):
        addon.environment.start_install(requirements)
    assert addon.state.env_install is None


@pytest.mark.parametrize("verdict, icon", [("doubtful", "INFO"), ("failed", "ERROR")])
def test_a_doubtful_or_failed_registration_shows_in_the_panel_and_the_summary(
    addon, fake_backend, portrait, verdict, icon
):
    """A texture the backend cannot vouch for (doubtful: look at it) or knows to be misplaced
    (failed: redo it) says so where the artist looks, with what to try; the texture is still
    applied, for the artist to judge."""
    obj = add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    fake_backend("ok", verdict=verdict)
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert obj.avatartex.verdict == verdict
    assert "disagree" in obj.avatartex.verdict_note and "pins" in obj.avatartex.verdict_note
    assert any(f"registration {verdict}" in line for line in addon.state.last_summary)
    assert verdict in obj.avatartex.status

    labels = drawn_labels(addon.panels.AVATARTEX_PT_main)
    assert (f"Registration: {verdict}", icon) in labels
    # A label does not wrap (Blender cuts it with an ellipsis): the reasons and what to try are laid
    # out on lines the sidebar holds, every word of them shown.
    width = addon.panels.line_width(bpy.context)
    texts = [text for text, _ in labels]
    assert max(len(text) for text in texts) <= width
    shown = " ".join(texts)
    for word in obj.avatartex.verdict_note.replace(";", " ").split():
        assert word.rstrip(".") in shown
    assert any(text.startswith("Try:") for text in texts)  # what to try starts a line of its own
    # Drawn once: neither the reasons (in the summary's notes too) nor the status (the scene's and
    # the object's) twice; a QA count found 61 lines with both.
    assert not any(f"registration {verdict}:" in text for text in texts)  # the summary's copy
    assert sum(verdict in text and "Done" in text for text in texts) <= 1
    fake_backend("ok")
    bpy.ops.avatartex.generate()
    assert obj.avatartex.verdict == ""  # a result without a verdict clears the old one


def test_a_variant_named_by_add_variant_follows_its_style_and_seed_and_an_artists_name_stays(
    addon, fake_backend, portrait
):
    """Its name is its files' name: a variant switched to toon in the list was still 'photoreal 0',
    written as Head_photoreal_0.png."""
    assert bpy.ops.avatartex.test_backend() == {"FINISHED"}  # the fake's styles: photoreal, toon
    head = add_sphere("Head", portrait)
    bpy.context.scene.avatartex.style = "photoreal"
    assert bpy.ops.avatartex.variant_add() == {"FINISHED"}
    variant = head.avatartex.variants[0]
    assert variant.name == "photoreal 0"
    variant.style = "toon"
    assert variant.name == "toon 0"
    variant.seed = 7
    assert variant.name == "toon 7"
    assert addon.jobs.variant_stem(head, variant) == "Head_toon_7"
    variant.name = "hero look"  # the artist's own name is kept
    variant.style = "photoreal"
    assert variant.name == "hero look"


def test_a_farms_device_in_the_environment_reaches_the_backend(addon, monkeypatch):
    """`AVATARTEX_DEVICE=cuda:1 blender -b ...` on a render farm node: the preferences' defaults
    (device auto, low VRAM off) replaced it, so a farm could choose no GPU. Preferences at their
    defaults leave the environment's; one set away from its default still wins."""
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    monkeypatch.setenv("AVATARTEX_DEVICE", "cuda:1")
    monkeypatch.setenv("AVATARTEX_LOW_VRAM", "1")
    prefs.device, prefs.low_vram = "auto", False
    env = addon.backend.backend_config(python="/usr/bin/python3").env
    assert "AVATARTEX_DEVICE" not in env and "AVATARTEX_LOW_VRAM" not in env  # the environment's pass
    prefs.device = "cpu"
    try:
        assert addon.backend.backend_config(python="/usr/bin/python3").env["AVATARTEX_DEVICE"] == "cpu"
    finally:
        prefs.device = "auto"
    monkeypatch.delenv("AVATARTEX_DEVICE")
    assert addon.backend.backend_config(python="/usr/bin/python3").env["AVATARTEX_DEVICE"] == "auto"


def test_a_killed_runs_capture_is_removed_by_a_later_run(addon, fake_backend, portrait):
    """A farm task killed mid-run (SIGTERM) left its mesh capture in the user folder (1.8 MB a head),
    and no later run removed it. Captures and work folders a day old are removed when a run starts;
    younger ones (another Blender's run in progress) are kept."""
    import os
    import time

    captures = addon.paths.user_dir("captures")
    old, young = captures / "Ada_1.npz", captures / "Bob_2.npz"
    for path in (old, young):
        path.write_bytes(b"capture")
    day_ago = time.time() - addon.jobs.SCRATCH_KEEP_S - 60
    os.utime(old, (day_ago, day_ago))
    add_sphere(portrait=portrait)
    bpy.context.scene.avatartex.resolution = 512
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert not old.exists() and young.exists()
    young.unlink()
