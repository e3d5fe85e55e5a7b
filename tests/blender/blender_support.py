"""Fixtures for the add-on tests, run inside the real ``bpy`` module (Blender as a Python package).

The session builds the extension zip with ``build.py`` (Blender's own ``blender_ext.py build``),
installs it into a throw-away Blender user folder with ``extensions.package_install_files`` and
enables it, exactly as an artist would. Every test starts from an empty factory scene.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest

# Blender reads its user folders at start-up: isolate them before bpy is imported, so the tests never
# touch the real ~/.config/blender and parallel runs do not collide.
_USER_RESOURCES = Path(tempfile.mkdtemp(prefix="avatartex-blender-user-"))
os.environ["BLENDER_USER_RESOURCES"] = str(_USER_RESOURCES)

bpy = pytest.importorskip("bpy")

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BACKEND_PYTHON = os.environ.get("AVATARTEX_TEST_BACKEND_PYTHON", sys.executable)
SHARED_HEAD = ROOT.parent / "shared" / "assets" / "heads" / "lee_perry_smith.glb"


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    """The extension zip, built by build.py exactly as for a release."""
    sys.path.insert(0, str(ROOT))
    try:
        import build
    finally:
        sys.path.remove(str(ROOT))
    return build.build(tmp_path_factory.mktemp("dist") / "avatartex-test.zip")


@pytest.fixture(scope="session")
def addon(addon_zip):
    """The installed and enabled add-on's Python package (``bl_ext.user_default.avatartex``)."""
    result = bpy.ops.extensions.package_install_files(
        filepath=str(addon_zip), repo="user_default", enable_on_install=True
    )
    assert result == {"FINISHED"}
    module_name = "bl_ext.user_default.avatartex"
    assert module_name in bpy.context.preferences.addons, "the extension did not enable"
    module = sys.modules[module_name]
    yield module
    bpy.ops.preferences.addon_disable(module=module_name)
    assert not hasattr(bpy.types.Scene, "avatartex"), "unregister left the scene property behind"
    assert not module.backend.state.client, "unregister left a backend running"
    shutil.rmtree(_USER_RESOURCES, ignore_errors=True)


@pytest.fixture(autouse=True)
def clean_scene(request):
    """An empty factory scene for each test; no job left running afterwards."""
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    yield
    mod = sys.modules.get("bl_ext.user_default.avatartex")
    if mod is not None and mod.state.job is not None:
        mod.state.job.cancel()
        mod.state.job.run_sync()
        mod.state.job = None


@pytest.fixture
def fake_backend(addon, tmp_path, monkeypatch):
    """Point the add-on at the fake backend; returns a function that sets its behaviour."""
    control = tmp_path / "fake_control.json"
    control.write_text(json.dumps({"mode": "ok"}))
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(f'#!/bin/sh\nexec {BACKEND_PYTHON} {HERE / "fake_backend.py"} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("AVATARTEX_BACKEND_PYTHON", str(wrapper))
    monkeypatch.setenv("AVATARTEX_FAKE_CONTROL", str(control))

    def set_mode(mode: str, **extra) -> None:
        control.write_text(json.dumps({"mode": mode, **extra}))

    set_mode.control = control
    set_mode.requests = lambda: [
        json.loads(line) for line in Path(str(control) + ".requests.jsonl").read_text().splitlines()
    ]
    yield set_mode
    addon.backend.shutdown()


@pytest.fixture
def real_backend(addon, monkeypatch):
    """Point the add-on at the real backend (``python -m avatartex.server``, classic engine)."""
    monkeypatch.setenv("AVATARTEX_BACKEND_PYTHON", BACKEND_PYTHON)
    monkeypatch.delenv("AVATARTEX_FAKE_CONTROL", raising=False)
    bpy.context.scene.avatartex.engine = "classic"
    yield
    # The real backend stays warm across tests of the session only while the config is unchanged.


@pytest.fixture(scope="session")
def portrait(tmp_path_factory) -> Path:
    """A real face photo that ships with scikit-image (the astronaut Eileen Collins)."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("portraits") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture(scope="session")
def bad_portraits(tmp_path_factory) -> dict[str, Path]:
    """Portraits that must fail: missing, not an image, and no face (a flat grey picture)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.png"
    text.write_text("this is not an image")
    grey = folder / "grey.png"
    Image.new("RGB", (256, 256), (128, 128, 128)).save(grey)
    (folder / "a_folder.png").mkdir()
    return {
        "missing": folder / "does_not_exist.jpg",
        "not_image": text,
        "no_face": grey,
        "folder": folder / "a_folder.png",
    }


def add_sphere(name: str = "Head", portrait: Path | None = None) -> bpy.types.Object:
    """A UV sphere with a UV map, selected and active (for wiring tests with the fake backend)."""
    bpy.ops.mesh.primitive_uv_sphere_add(segments=24, ring_count=12)
    obj = bpy.context.active_object
    obj.name = name
    if portrait is not None:
        obj.avatartex.portrait_path = str(portrait)
    return obj


def select_only(obj: bpy.types.Object) -> None:
    """``obj`` selected alone and active, as a click in the viewport leaves it."""
    for other in bpy.context.scene.objects:
        other.select_set(other == obj)
    bpy.context.view_layer.objects.active = obj


def shift_d_copy(obj: bpy.types.Object) -> bpy.types.Object:
    """A Shift+D copy of ``obj`` (its own mesh, its settings and material slots copied), in the
    scene, selected alone and active."""
    copy = obj.copy()
    copy.data = obj.data.copy()
    bpy.context.scene.collection.objects.link(copy)
    select_only(copy)
    return copy


def material_showing(name: str, image) -> bpy.types.Material:
    """A new material (with nodes) whose Principled BSDF's Base Color is ``image``, through an Image
    Texture node."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True  # Blender 4.5 makes new materials without nodes
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    mat.node_tree.links.new(
        node.outputs["Color"], mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"]
    )
    return mat


def add_mesh(name: str, positions, triangles, uvs) -> bpy.types.Object:
    """A mesh object of triangles (T, 3) over positions (V, 3) with per-corner UVs (T, 3, 2),
    linked to the scene, selected and active."""
    import numpy as np

    mesh = bpy.data.meshes.new(name)
    n_tris = len(triangles)
    mesh.vertices.add(len(positions))
    mesh.vertices.foreach_set("co", np.asarray(positions, np.float32).ravel())
    mesh.loops.add(n_tris * 3)
    mesh.loops.foreach_set("vertex_index", np.asarray(triangles, np.int32).ravel())
    mesh.polygons.add(n_tris)
    mesh.polygons.foreach_set("loop_start", np.arange(0, n_tris * 3, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(n_tris, 3, np.int32))
    uv_layer = mesh.uv_layers.new(name="UVMap")
    uv_layer.uv.foreach_set("vector", np.asarray(uvs, np.float32).ravel())
    mesh.update()
    mesh.validate()
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    return obj


def add_demo_head(name: str = "DemoHead", portrait: Path | None = None, resolution: int = 48):
    """The project's own demo head (backend/avatartex/demo_head.py) as a Blender mesh with its UVs."""
    sys.path.insert(0, str(ROOT / "backend"))
    try:
        from avatartex.demo_head import make_demo_head
    finally:
        sys.path.remove(str(ROOT / "backend"))
    positions, triangles, uvs, _pins = make_demo_head(resolution)
    obj = add_mesh(name, positions, triangles, uvs)
    if portrait is not None:
        obj.avatartex.portrait_path = str(portrait)
    return obj


def import_scanned_head(portrait: Path | None = None) -> bpy.types.Object:
    """The scanned head from ../shared (skips loudly when absent)."""
    if not SHARED_HEAD.is_file():
        pytest.skip(f"../shared absent: {SHARED_HEAD} not found")
    bpy.ops.import_scene.gltf(filepath=str(SHARED_HEAD))
    obj = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    for other in bpy.context.scene.objects:
        other.select_set(other == obj)
    bpy.context.view_layer.objects.active = obj
    if portrait is not None:
        obj.avatartex.portrait_path = str(portrait)
    return obj


def scene_fingerprint() -> dict:
    """What 'the scene unchanged' means: materials with their node links, images, objects' materials."""
    materials = {}
    for mat in bpy.data.materials:
        tree = mat.node_tree
        links = (
            sorted(
                (l.from_node.name, l.from_socket.identifier, l.to_node.name, l.to_socket.identifier)
                for l in tree.links
            )
            if tree
            else []
        )
        nodes = sorted(n.name for n in tree.nodes) if tree else []
        materials[mat.name] = (nodes, links)
    return {
        "materials": materials,
        "images": sorted(i.name for i in bpy.data.images),
        "objects": sorted(
            (o.name, tuple(s.material.name if s.material else "" for s in o.material_slots))
            for o in bpy.data.objects
        ),
    }
