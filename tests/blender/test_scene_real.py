"""The add-on in a real scene with the REAL backend (classic engine): heads under any object transform
(issue 8 item 7), nothing written inside the installed extension, the managed environment that
never breaks itself, and engines described in Blender's words (issue 9).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from blender_support import BACKEND_PYTHON, add_demo_head, bpy

SIZE = 512


def _pixels(image) -> np.ndarray:
    w, h = image.size
    buf = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(buf)
    return buf.reshape(h, w, 4)[..., :3]


def _demo_arrays(resolution: int = 48):
    import sys

    from blender_support import ROOT

    sys.path.insert(0, str(ROOT / "backend"))
    try:
        from avatartex.demo_head import make_demo_head
    finally:
        sys.path.remove(str(ROOT / "backend"))
    return make_demo_head(resolution)


def _write_obj(path: Path, positions, triangles, uvs) -> None:
    """The demo head (Y up, face towards +Z: the OBJ convention) as an OBJ file with its UVs."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in positions]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uvs.reshape(-1, 2)]
    lines += [
        f"f {a + 1}/{3 * t + 1} {b + 1}/{3 * t + 2} {c + 1}/{3 * t + 3}"
        for t, (a, b, c) in enumerate(triangles)
    ]
    path.write_text("\n".join(lines) + "\n")


def _select_only(obj) -> None:
    for other in bpy.context.scene.objects:
        other.select_set(other == obj)
    bpy.context.view_layer.objects.active = obj


# -- issue 8 item 7: any object transform ---------------------------------------------------------------


def _scan_arrays():
    """The scanned head's vertices, triangles and per-corner UVs (skips loudly without ../shared)."""
    import trimesh
    from blender_support import SHARED_HEAD

    if not SHARED_HEAD.is_file():
        pytest.skip(f"../shared absent: {SHARED_HEAD} not found")
    mesh = trimesh.load(SHARED_HEAD, force="mesh", process=False)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces), np.asarray(mesh.visual.uv)[mesh.faces]


def test_heads_under_importer_rotation_scale_and_parent(addon, real_backend, portrait, tmp_path):
    # A head the astronaut registers onto (the demo head's landmarks disagree with hers by ~40 % of
    # the eye distance: its texture is then chaos that float rounding alone moves by 1-3/255).
    positions, triangles, uvs = _scan_arrays()
    obj_file = tmp_path / "head.obj"
    _write_obj(obj_file, positions, triangles, uvs)
    settings = bpy.context.scene.avatartex
    settings.resolution = SIZE

    # 1. Blender's own OBJ importer: the vertices stay Y-up, the object gets a 90-degree X rotation.
    bpy.ops.wm.obj_import(filepath=str(obj_file))
    imported = bpy.context.selected_objects[0]
    assert imported.rotation_euler.x == pytest.approx(np.pi / 2)
    capture = np.load(
        addon.capture.capture_object(
            imported, bpy.context.evaluated_depsgraph_get(), "", tmp_path / "obj.npz"
        )
    )
    # Captured as seen in the scene: (x, y, z) -> (x, -z, y), the face towards -Y (front view).
    from scipy.spatial import cKDTree

    expected = positions[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0])
    assert cKDTree(expected).query(capture["positions"])[0].max() < 1e-5
    np.testing.assert_allclose(capture["forward"], [0, -1, 0])

    # 2. The same mesh rotated 90 degrees on X with scale 0.01 (an FBX import), placed elsewhere.
    scaled = bpy.data.objects.new("Scaled", imported.data)
    bpy.context.scene.collection.objects.link(scaled)
    scaled.rotation_euler = (np.pi / 2, 0.0, 0.0)
    scaled.scale = (0.01, 0.01, 0.01)
    scaled.location = (4.0, 2.0, 1.0)
    # 3. The same mesh under a parent that carries the rotation and the scale.
    rig = bpy.data.objects.new("Rig", None)
    bpy.context.scene.collection.objects.link(rig)
    rig.rotation_euler, rig.scale = (np.pi / 2, 0.0, 0.0), (0.01, 0.01, 0.01)
    child = bpy.data.objects.new("Child", imported.data)
    bpy.context.scene.collection.objects.link(child)
    child.parent = rig
    # 4. A copy turned to face another way (characters about a table): the head the backend found
    # for the first, not searched again (10-17 s a copy in a QA's batch).
    turned = bpy.data.objects.new("Turned", imported.data)
    bpy.context.scene.collection.objects.link(turned)
    turned.rotation_euler = (np.pi / 2, 0.0, np.pi / 2)
    for obj in (imported, scaled, child, turned):
        obj.avatartex.portrait_path = str(portrait)

    textures = {}
    for obj in (imported, scaled, child, turned):
        _select_only(obj)
        assert bpy.ops.avatartex.generate() == {"FINISHED"}, obj.avatartex.status
        textures[obj.name] = _pixels(obj.active_material.node_tree.nodes["AvatarTex Texture"].image)
    first, second, third, fourth = textures.values()
    np.testing.assert_array_equal(fourth, first)
    assert first[..., 0].mean() > first[..., 2].mean() + 0.03  # skin from the photo, not a fill
    # One head gives one texture whatever its transform (issue 8's target: under 1/255 on average).
    print("invariance /255:", np.abs(first - second).mean() * 255, np.abs(second - third).mean() * 255)
    assert np.abs(first - second).mean() < 1 / 255
    assert np.abs(second - third).mean() < 1 / 255


# -- issue 9 item 7: nothing written inside the add-on's folder ----------------------------------------


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_generate_writes_nothing_inside_the_extension(addon, real_backend, portrait, monkeypatch):
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # this machine sets it; artists' do not
    addon.backend.shutdown()  # a cold start: the moment Python and numba write their caches
    folder = Path(addon.__file__).parent
    before = _listing(folder)
    head = add_demo_head("Head", portrait)
    head.rotation_euler = (np.pi / 2, 0.0, 0.0)
    bpy.context.scene.avatartex.resolution = SIZE
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert _listing(folder) == before
    assert not [
        p for p in folder.rglob("*") if p.name == "__pycache__" or p.suffix in (".pyc", ".nbi", ".nbc")
    ]
    # The caches exist, in the extension's user folder, so the next cold start stays fast.
    cache = addon.paths.user_dir("cache")
    assert list((cache / "pycache").rglob("*.pyc")) and list((cache / "numba").rglob("*.nbi"))


# -- issue 9 item 6: an environment that never breaks itself -------------------------------------------


def _devlink_wheel(folder: Path) -> Path:
    """A wheel holding one ``.pth`` that adds this test run's packages (numpy, mediapipe...) to the new
    environment: pip installs it offline like any package, and the backend then starts from there."""
    purelib = subprocess.run(
        [BACKEND_PYTHON, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    info = "avatartex_devlink-1.0.dist-info"
    files = {
        "avatartex_devlink.pth": purelib + "\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: avatartex-devlink\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    wheel = folder / "avatartex_devlink-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


def _wait(install) -> tuple[list[float], list[str]]:
    progress, messages = [], []
    while not install.done:
        progress.append(install.progress)
        messages.append(install.message)
        install.thread.join(0.02)
    install.finish()
    return progress, messages


def test_environment_switches_only_after_it_works(addon, tmp_path, monkeypatch):
    monkeypatch.delenv("AVATARTEX_BACKEND_PYTHON", raising=False)
    env = addon.environment
    good = tmp_path / "requirements.txt"
    good.write_text(f"{_devlink_wheel(tmp_path)}\n")
    try:
        install = env.start_install(good, pip_args=("--no-index",))
        progress, messages = _wait(install)
        assert install.error == "" and install.progress == 1.0 and install.total == 1
        assert progress == sorted(progress)  # the bar only moves forward
        assert any(step.startswith("Package 1 of 1: avatartex") for step in install.steps), install.steps
        python = addon.backend.managed_python()
        assert python.is_file() and install.env_dir in python.parents
        assert addon.paths.user_dir() in python.parents and Path(addon.__file__).parent not in python.parents
        assert bpy.ops.avatartex.test_backend() == {"FINISHED"}
        assert addon.state.client.config.python == str(python)

        # Installs that cannot work: a package not there (offline), and one whose backend does not start
        # (nothing installed, so no numpy). Each fails; the working environment stays in use.
        missing = tmp_path / "missing.txt"
        missing.write_text("avatartex-no-such-package==9.9\n")
        empty = tmp_path / "empty.txt"
        empty.write_text("# nothing\n")
        for requirements, reason in (
            (missing, "Could not find a version"),
            (empty, "does not start from it"),
        ):
            broken = env.start_install(requirements, pip_args=("--no-index",))
            _wait(broken)
            assert reason in broken.error and "environment in use was kept" in broken.error
            assert not broken.env_dir.exists()
            assert addon.backend.managed_python() == python and python.is_file()
        assert bpy.ops.avatartex.test_backend() == {"FINISHED"}
        assert addon.state.client.config.python == str(python)
    finally:
        addon.backend.shutdown()
        shutil.rmtree(addon.paths.user_dir("envs"), ignore_errors=True)
        (addon.paths.user_dir() / "active_env.txt").unlink(missing_ok=True)
        addon.state.env_install = None


def test_zip_ships_neural_requirements(addon_zip):
    names = zipfile.ZipFile(addon_zip).namelist()
    assert "backend/requirements-neural.txt" in names


def test_test_backend_lists_engines_with_reasons(addon, real_backend):
    assert bpy.ops.avatartex.test_backend() == {"FINISHED"}
    lines = addon.engines.hello_summary(addon.state.hello).split("; ")
    assert "Classic engine: available" in lines
    neural = next(line for line in lines if line.startswith("Neural engine: "))
    info = addon.state.hello["engines"]["neural"]
    assert info["available"] == (info["code"] == "ok")
    if not info["available"]:  # no NVIDIA GPU here
        # What the code says to do, in Blender's words, never the backend's command-line reason.
        assert neural == f"Neural engine: not available, {addon.engines.engine_advice(info['code'])}"
        assert "avatartex " not in neural and "--" not in neural and info["reason"] not in neural
        # An engine error from generate gets a hint in Blender's words, not a command line's.
        error = addon.errors.for_artist(
            addon.paths.protocol().AvatarTexError(
                addon.paths.protocol().ErrorCode.ENGINE_UNAVAILABLE,
                f"The neural engine cannot run: {info['reason']}.",
                "Use the classic engine (--engine classic).",
            )
        )
        assert (
            error.hint.startswith("Set Engine to Classic in the AvatarTex panel")
            and "--engine" not in error.hint
        )


def test_backend_env_keeps_caches_out_of_the_extension(addon, real_backend):
    config = addon.backend.backend_config()
    folder = Path(addon.__file__).parent
    for key in ("PYTHONPYCACHEPREFIX", "NUMBA_CACHE_DIR", "AVATARTEX_CACHE_DIR"):
        assert (
            folder not in Path(config.env[key]).parents
            and addon.paths.user_dir() in Path(config.env[key]).parents
        )
    assert Path(config.work_dir) != folder and folder not in Path(config.work_dir).parents
    assert os.path.isdir(config.work_dir)


# -- several materials: only the face's is textured, whichever slot is active ------------------------------


def test_a_head_of_two_materials_gets_the_texture_in_the_faces(addon, real_backend, portrait):
    """The demo head with the faces around its eyes in an "Eyes" material whose UVs overlap the skin's
    (each material its own texture, as character exports have them), the Eyes slot active: the real
    backend textures the face's material and the add-on puts the texture there; the summary says so."""
    import sys

    from blender_support import ROOT

    sys.path.insert(0, str(ROOT / "backend"))
    try:
        from avatartex import demo_head
    finally:
        sys.path.remove(str(ROOT / "backend"))
    head = add_demo_head("Head", portrait)
    head.rotation_euler = (np.pi / 2, 0.0, 0.0)  # glTF's Y-up head stood up in Blender's Z-up world
    skin, eyes = (bpy.data.materials.new(name) for name in ("Skin", "Eyes"))
    for mat in (skin, eyes):
        mat.use_nodes = True
        head.data.materials.append(mat)
    uv = head.data.uv_layers.active.uv
    values = np.empty(len(uv) * 2, np.float32)
    uv.foreach_get("vector", values)
    values = values.reshape(-1, 2)
    eye_centres = np.array(
        [[side * demo_head.EYE_X, demo_head.EYE_Y, demo_head.EYEBALL_Z] for side in (-1, 1)]
    )
    moved = 0
    for poly in head.data.polygons:
        if np.linalg.norm(eye_centres - np.array(poly.center), axis=1).min() < 1.5 * demo_head.EYEBALL_R:
            poly.material_index = 1
            loops = list(poly.loop_indices)
            values[loops] = 0.3 + 0.4 * values[loops]  # over the skin's islands
            moved += 1
    uv.foreach_set("vector", values.ravel())
    assert 20 < moved < len(head.data.polygons) // 4
    head.active_material_index = 1
    bpy.context.scene.avatartex.resolution = SIZE
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert head.active_material == skin and skin.node_tree.nodes.get("AvatarTex Texture") is not None
    assert eyes.node_tree.nodes.get("AvatarTex Texture") is None
    assert any("only the material 'Skin'" in line for line in addon.state.last_summary)


def _test_character():
    """The backend tests' full-body character (``tests/body_fixtures.py``)."""
    import sys

    from blender_support import ROOT

    sys.path[:0] = [str(ROOT / "backend"), str(ROOT / "tests")]
    try:
        from body_fixtures import make_character
    finally:
        del sys.path[:2]
    return make_character(SIZE)


def _saved_image(name: str, texture: np.ndarray, path: Path):
    """An image of ``texture`` (uint8, top row first) saved to ``path``, and its RGBA pixels as
    Blender holds them (bottom row first)."""
    image = bpy.data.images.new(name, texture.shape[1], texture.shape[0])
    pixels = np.concatenate([texture[::-1] / 255.0, np.ones((*texture.shape[:2], 1))], axis=-1)
    image.pixels.foreach_set(pixels.astype(np.float32).ravel())
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    return image, pixels


def _generate_saying(addon, obj, portrait: Path, words: str) -> str:
    """Generate on ``obj`` alone from ``portrait``; the summary's line with ``words`` in it."""
    obj.avatartex.portrait_path = str(portrait)
    bpy.context.view_layer.update()
    _select_only(obj)
    bpy.context.scene.avatartex.resolution = SIZE
    assert bpy.ops.avatartex.generate() == {"FINISHED"}, obj.avatartex.status
    return next(line for line in addon.state.last_summary if words in line)


def test_a_head_on_a_body_object_of_its_own_gets_the_bodys_skin_matched(
    addon, real_backend, portrait, tmp_path
):
    """The test character cut into a Head and a Body object (as VRoid and game characters come), stood
    up in Blender's Z-up world: Generate on the head finds the body under it, and the body's material
    shows a toned copy of its image whose neck matches the face (the artist's image kept)."""
    import re

    from blender_support import add_mesh, material_showing

    character = _test_character()
    mesh, n = character.mesh, character.head_triangles
    objects = {}
    for name, tris in (("Head", np.arange(n)), ("Body", np.arange(n, len(mesh.triangles)))):
        used, inverse = np.unique(mesh.triangles[tris], return_inverse=True)
        obj = add_mesh(name, mesh.positions[used], inverse.reshape(-1, 3), mesh.uvs[tris])
        obj.rotation_euler = (np.pi / 2, 0.0, 0.0)
        objects[name] = obj
    head, body = objects["Head"], objects["Body"]
    skin_file = tmp_path / "body_paint.png"
    image, pixels = _saved_image("body_paint", character.texture, skin_file)
    before = skin_file.read_bytes()
    mat = material_showing("Body Skin", image)
    node = next(n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage")
    body.data.materials.append(mat)
    said = _generate_saying(addon, head, portrait, "a separate body")
    assert "its skin matched to the face's" in said and "'Body', found under the head" in said
    before_e, after_e = map(float, re.search(r"neck ΔE (\d+) → ([\d.]+)", said).groups())
    assert before_e > 10 and after_e < 3, said
    shown = mat.node_tree.nodes.get("AvatarTex Texture")
    assert shown is not None and shown.image.name.startswith("Body_toned")
    assert skin_file.read_bytes() == before and node.image == image  # the artist's image kept
    toned = _pixels(shown.image)
    assert not np.allclose(toned, pixels[..., :3], atol=2 / 255)


def test_a_body_in_a_material_of_the_heads_own_object_gets_its_skin_matched(
    addon, real_backend, portrait, tmp_path
):
    """The test character as one object of two materials, Face and Body, each showing an image file
    of its own (Daz's and Character Creator's characters come so): Generate textures the face's and
    shows a toned copy of the body's image on the body's material, the neck matched."""
    import re

    from blender_support import add_mesh, material_showing

    character = _test_character()
    mesh, n = character.mesh, character.head_triangles
    obj = add_mesh("Character", mesh.positions, mesh.triangles, mesh.uvs)
    obj.rotation_euler = (np.pi / 2, 0.0, 0.0)
    face_image, _ = _saved_image("face_map", np.full((64, 64, 3), 160, np.uint8), tmp_path / "face_map.png")
    body_file = tmp_path / "body_paint.png"
    body_image, pixels = _saved_image("body_paint", character.texture, body_file)
    before = body_file.read_bytes()
    face_mat, body_mat = material_showing("Face", face_image), material_showing("Body", body_image)
    obj.data.materials.append(face_mat)
    obj.data.materials.append(body_mat)
    obj.data.polygons.foreach_set("material_index", (np.arange(len(mesh.triangles)) >= n).astype(np.int32))
    said = _generate_saying(addon, obj, portrait, "the body's material 'Body'")
    before_e, after_e = map(float, re.search(r"neck ΔE (\d+) → ([\d.]+)", said).groups())
    assert before_e > 10 and after_e < 3, said
    face_node, body_node = (m.node_tree.nodes.get("AvatarTex Texture") for m in (face_mat, body_mat))
    assert face_node is not None and body_node is not None
    assert body_node.image.name.startswith("Character_toned") and body_file.read_bytes() == before
    assert not np.allclose(_pixels(body_node.image), pixels[..., :3], atol=2 / 255)
