"""Preview renders (view directions, UV lookup, axes, PNG output) and the project's own demo head."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
import trimesh
from avatartex import demo_head
from avatartex.demo_head import make_demo_head, save_demo_head
from avatartex.mesh import parse_axis
from avatartex.preview import head_frame, render_preview, render_views
from avatartex.protocol import PIN_NAMES, AvatarTexError, ErrorCode

# --- preview ------------------------------------------------------------------------------------------

FACE_COLOURS = np.array(
    [
        [0.9, 0.1, 0.1],  # +x: the character's left
        [0.1, 0.9, 0.1],  # -x
        [0.1, 0.1, 0.9],  # +y: top
        [0.9, 0.9, 0.1],  # -y
        [0.1, 0.9, 0.9],  # +z: the face
        [0.9, 0.1, 0.9],  # -z: the back
    ],
    np.float32,
)


def _colour_cube(rotation: np.ndarray | None = None) -> tuple[SimpleNamespace, np.ndarray]:
    """A unit cube whose six faces map to six solid colour blocks of one texture, flat normals."""
    positions, triangles, uvs, normals = [], [], [], []
    for k, (axis, sign) in enumerate([(0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1)]):
        n = np.zeros(3)
        n[axis] = sign
        a, b = np.eye(3)[(axis + 1) % 3], np.eye(3)[(axis + 2) % 3]
        corners = [0.5 * n + 0.5 * (sa * a + sb * b) for sa, sb in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        base = len(positions)
        positions += corners
        normals += [n] * 4
        tri = [[base, base + 1, base + 2], [base, base + 2, base + 3]]
        if np.cross(corners[1] - corners[0], corners[2] - corners[0]) @ n < 0:
            tri = [t[::-1] for t in tri]
        triangles += tri
        # Each face samples the middle of its own 8-texel-wide block, so bilinear stays inside it.
        u0, u1 = (8 * k + 2) / 48, (8 * k + 6) / 48
        uv_of = {base: (u0, 0.25), base + 1: (u1, 0.25), base + 2: (u1, 0.75), base + 3: (u0, 0.75)}
        uvs += [[uv_of[i] for i in t] for t in tri]
    texture = np.repeat(FACE_COLOURS, 8, axis=0)[None].repeat(8, axis=0)  # (8, 48, 3)
    positions, normals = np.array(positions), np.array(normals)
    if rotation is not None:
        positions, normals = positions @ rotation.T, normals @ rotation.T
    mesh = SimpleNamespace(
        positions=positions.astype(np.float32),
        triangles=np.array(triangles, np.int32),
        uvs=np.array(uvs, np.float32),
        normals=normals.astype(np.float32),
    )
    return mesh, texture


def test_views_see_the_expected_faces_with_headlight_shading() -> None:
    mesh, texture = _colour_cube()
    front, left, back, right = render_views(mesh, texture, ("front", "left", "back", "right"), 64)
    # The face seen head-on is lit fully by the headlight, so its colour is the texture's exactly.
    np.testing.assert_allclose(front[32, 32], FACE_COLOURS[4], atol=1e-5)
    np.testing.assert_allclose(left[32, 32], FACE_COLOURS[0], atol=1e-5)
    np.testing.assert_allclose(back[32, 32], FACE_COLOURS[5], atol=1e-5)
    np.testing.assert_allclose(right[32, 32], FACE_COLOURS[1], atol=1e-5)
    np.testing.assert_allclose(front[0, 0], [0.5, 0.5, 0.5], atol=1e-6)  # neutral background
    # An oblique view sees two faces, each darker than head-on (Lambert), never brighter.
    oblique = render_views(mesh, texture, (45.0,), 64)[0]
    row = oblique[32]
    assert np.all(row <= FACE_COLOURS.max(axis=0) + 1e-6)
    is_front = np.all(np.abs(row - FACE_COLOURS[4] * row[:, 1:2] / 0.9) < 0.02, axis=1)
    is_left = np.all(np.abs(row - FACE_COLOURS[0] * row[:, :1] / 0.9) < 0.02, axis=1)
    assert is_front.sum() > 5 and is_left.sum() > 5
    # The character's left is on the image's right in a front view: the front face is on the left
    # side of the image when the camera moved towards +x.
    assert np.nonzero(is_front)[0].mean() < np.nonzero(is_left)[0].mean()


def test_up_and_forward_axes_give_the_same_pictures() -> None:
    # Blender convention: up +Z, face towards -Y. Rotate the glTF-style cube into it.
    to_blender = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # y -> z, z -> -y
    gltf_mesh, texture = _colour_cube()
    blender_mesh, _ = _colour_cube(to_blender)
    a = render_views(gltf_mesh, texture, ("front", "left", "back"), 48)
    b = render_views(blender_mesh, texture, ("front", "left", "back"), 48, up="+z", forward="-y")
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-4)
    up, fwd, left = head_frame("+z", [0, -1, 0.2])  # forward is made perpendicular to up
    np.testing.assert_allclose([up, fwd, left], [[0, 0, 1], [0, -1, 0], [1, 0, 0]], atol=1e-12)


def test_a_head_in_any_unit_renders_the_same() -> None:
    """A mesh modelled in kilometres (a cube 0.0001 across) came out empty: the near plane was an
    absolute 1 mm, behind its camera's 0.0004. Framed whole, every unit gives the same picture."""
    mesh, texture = _colour_cube()
    unit = render_views(mesh, texture, ("front", "left"), 48)
    for scale in (1e-4, 1e-7, 1e5):
        scaled = SimpleNamespace(**{**vars(mesh), "positions": mesh.positions * np.float32(scale)})
        for x, y in zip(unit, render_views(scaled, texture, ("front", "left"), 48), strict=True):
            np.testing.assert_allclose(x, y, atol=1e-3)


def test_untextured_render_and_axis_errors() -> None:
    mesh, _ = _colour_cube()
    grey = render_views(mesh, None, ("front",), 32)[0]
    np.testing.assert_allclose(grey[16, 16], [0.8, 0.8, 0.8], atol=1e-5)
    with pytest.raises(AvatarTexError) as err:
        render_views(
            SimpleNamespace(positions=mesh.positions, triangles=mesh.triangles, uvs=None),
            np.zeros((4, 4, 3)),
            ("front",),
            16,
        )
    assert err.value.code == ErrorCode.NO_UV_MAP
    for bad in ("+w", [0, 0, 0]):
        with pytest.raises(AvatarTexError) as err:
            parse_axis(bad)
        assert err.value.code == ErrorCode.BAD_REQUEST
    with pytest.raises(AvatarTexError):
        head_frame("+y", "-y")
    with pytest.raises(AvatarTexError):
        render_views(mesh, None, ("top",), 16)


def test_render_preview_writes_png_atomically(tmp_path) -> None:
    from PIL import Image

    mesh, texture = _colour_cube()
    out = tmp_path / "sub" / "preview.png"
    strip = render_preview(mesh, (texture * 255).astype(np.uint8), out, size=40)
    assert strip.shape == (40, 120, 3) and strip.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(Image.open(out).convert("RGB")), strip)
    assert sorted(os.listdir(out.parent)) == ["preview.png"]  # no temporary file left behind
    np.testing.assert_allclose(strip[20, 20], FACE_COLOURS[4] * 255, atol=1)  # front
    np.testing.assert_allclose(strip[20, 60], FACE_COLOURS[0] * 255, atol=1)  # left side
    np.testing.assert_allclose(strip[20, 100], FACE_COLOURS[5] * 255, atol=1)  # back
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(AvatarTexError) as err:
        render_preview(mesh, texture, blocker / "preview.png", size=16)
    assert err.value.code == ErrorCode.OUTPUT_NOT_WRITABLE


# --- demo head ----------------------------------------------------------------------------------------

SMALL = 48
"""A coarse head (about 9k triangles) keeps these tests quick; the default is 96."""


@pytest.fixture(scope="module")
def small_head():
    return make_demo_head(SMALL)


def test_demo_head_is_closed_outward_and_head_sized(small_head) -> None:
    positions, triangles, uvs, _ = small_head
    assert positions.dtype == np.float32 and triangles.dtype == np.int32 and uvs.dtype == np.float32
    assert uvs.shape == (len(triangles), 3, 2)
    mesh = trimesh.Trimesh(positions, triangles, process=False)
    assert mesh.is_watertight
    assert mesh.is_winding_consistent
    # Counter-clockwise from outside gives a positive volume; a head with neck is ~5 litres.
    assert 0.003 < mesh.volume < 0.008
    height = np.ptp(positions[:, 1])
    assert 0.25 < height < 0.36  # head and neck; the head alone is about 0.23
    assert np.isfinite(uvs).all() and uvs.min() >= 0.0 and uvs.max() <= 1.0
    uv_area = 0.5 * np.abs(np.cross(uvs[:, 1] - uvs[:, 0], uvs[:, 2] - uvs[:, 0])).sum()
    assert 0.4 < uv_area <= 1.0  # charts packed without overlap fill a good part of the square


def test_default_resolution_triangle_count() -> None:
    _, triangles = demo_head._surface(96)
    assert 20_000 <= len(triangles) <= 40_000


def test_demo_head_pins_are_on_the_right_features(small_head) -> None:
    positions, _, _, pins = small_head
    assert set(pins) == set(PIN_NAMES)
    p = {name: positions[i] for name, i in pins.items()}
    for side, sign in (("left", 1), ("right", -1)):
        for part in ("eye_inner", "eye_outer"):
            assert sign * p[f"{side}_{part}"][0] > 0.01
        assert sign * p[f"mouth_{side}"][0] > 0.01
        assert abs(p[f"{side}_eye_outer"][0]) > abs(p[f"{side}_eye_inner"][0])
    # The nose tip is the most forward region of the head.
    assert p["nose_tip"][2] > positions[:, 2].max() - 0.003
    assert abs(p["nose_tip"][0]) < 0.005
    eye_y = np.mean([p[n][1] for n in PIN_NAMES if "eye" in n])
    assert eye_y > p["nose_tip"][1] > p["mouth_left"][1] > p["chin"][1]


def test_demo_head_is_deterministic() -> None:
    demo_head._build.cache_clear()
    demo_head._surface.cache_clear()
    a = make_demo_head(32)
    demo_head._build.cache_clear()
    demo_head._surface.cache_clear()
    b = make_demo_head(32)
    for x, y in zip(a[:3], b[:3], strict=True):
        np.testing.assert_array_equal(x, y)
    assert a[3] == b[3]


def test_save_demo_head_round_trip(tmp_path) -> None:
    from avatartex.mesh import load_mesh

    path = tmp_path / "demo_head.obj"
    save_demo_head(path, resolution=32)
    positions, triangles, uvs, _ = make_demo_head(32)
    loaded = load_mesh(path)
    assert len(loaded.triangles) == len(triangles)
    # The same corners carry the same UVs (order of triangles is kept by the export).
    np.testing.assert_allclose(loaded.uvs, uvs, atol=1e-5)
    np.testing.assert_allclose(loaded.positions[loaded.triangles], positions[triangles], atol=1e-5)


def test_the_demo_glb_carries_its_texture_and_its_name(tmp_path) -> None:
    """The demo's demo_head.glb, "the head to open in Blender", held trimesh's placeholder (a dark
    grey 2x2 image) under the name geometry_0: imported, a grey head named geometry_0. It carries the
    texture as its material's base colour now, under the demo head's name, on the same UVs."""
    import trimesh
    from avatartex.demo_head import DEMO_NAME
    from avatartex.mesh import load_mesh
    from PIL import Image

    texture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(texture).save(tmp_path / "texture.png")
    path = tmp_path / "demo_head.glb"
    save_demo_head(path, resolution=32, texture=tmp_path / "texture.png")
    scene = trimesh.load(path)
    assert list(scene.geometry) == [DEMO_NAME] and DEMO_NAME in scene.graph.nodes
    material = scene.geometry[DEMO_NAME].visual.material
    np.testing.assert_array_equal(np.asarray(material.baseColorTexture.convert("RGB")), texture)
    assert material.name == DEMO_NAME and np.all(np.asarray(material.baseColorFactor) == 255)
    _, triangles, uvs, _ = make_demo_head(32)
    np.testing.assert_allclose(load_mesh(path).uvs, uvs, atol=1e-5)


def test_mediapipe_finds_the_demo_face_near_its_pins() -> None:
    pytest.importorskip("mediapipe")
    from avatartex.face import default_landmarker
    from avatartex.preview import view_camera

    # Full resolution (UVs are not needed to render the geometry): at 48 the eyes are too coarse
    # and the detector puts the eye corners 20-30 % of the eye distance off.
    positions, triangles = demo_head._surface(96)
    pins = demo_head.nearest_pins(positions)
    mesh = SimpleNamespace(positions=positions, triangles=triangles, uvs=None)
    front = render_views(mesh, None, ("front",), 384)[0]
    faces = default_landmarker().detect(front)
    assert len(faces) == 1
    face = faces[0]
    camera = view_camera(positions, 0.0, 384)
    detected = np.array([face.named(n) for n in PIN_NAMES])
    for points in (
        np.array([demo_head.FEATURES[n] for n in PIN_NAMES]),
        positions[[pins[n] for n in PIN_NAMES]],
    ):
        projected, _ = camera.project(points)
        error = np.linalg.norm(projected - detected, axis=1) / face.interocular
        # Measured: mean 5 %, worst 9 % (nose tip) of the eye distance.
        assert error.mean() < 0.08 and error.max() < 0.15, dict(zip(PIN_NAMES, error.round(3), strict=True))
