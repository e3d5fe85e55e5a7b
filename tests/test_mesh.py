"""Mesh input: capture files, .obj/.glb/.ply loading, validation errors, unwrapping."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from avatartex.mesh import Mesh, load_capture, load_mesh, save_capture, unwrap, validate
from avatartex.protocol import AvatarTexError, ErrorCode

QUAD_OBJ = """\
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 2 0 0
vt 0 0
vt 1 0
vt 1 1
vt 0 1
vt 0.5 0
f 1/1 2/2 3/3 4/4
f 2/2 5/5 3/3
"""


def test_obj_ngons_are_triangulated_with_per_corner_uvs(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text(QUAD_OBJ)
    mesh = load_mesh(path)
    assert mesh.triangles.shape == (3, 3) and mesh.uvs.shape == (3, 3, 2)
    # Each corner's UV is the one the file gave that corner's vertex.
    corner_pos = mesh.positions[mesh.triangles]
    quad = np.isclose(corner_pos[..., 0], 2).any(axis=1) == False  # noqa: E712
    np.testing.assert_allclose(mesh.uvs[quad][..., 0], corner_pos[quad][..., 0], atol=1e-6)
    np.testing.assert_allclose(mesh.normals, np.tile([0, 0, 1], (len(mesh.positions), 1)), atol=1e-6)


def test_capture_round_trip_keeps_pins(tmp_path):
    box = trimesh.creation.box()
    uvs = np.random.default_rng(0).random((len(box.faces), 3, 2)).astype(np.float32)
    mesh = Mesh(
        box.vertices.astype(np.float32),
        box.faces.astype(np.int32),
        uvs,
        pins={"nose_tip": 3, "chin": 5},
        name="Box",
        up=np.array([0, 0, 1.0]),
    )
    save_capture(mesh, tmp_path / "c.npz")
    back = load_capture(tmp_path / "c.npz")
    assert back.name == "Box" and back.pins == {"nose_tip": 3, "chin": 5}
    np.testing.assert_array_equal(back.uvs, uvs)
    np.testing.assert_array_equal(back.up, [0, 0, 1])
    assert not list(tmp_path.glob("*.part"))


def test_glb_from_shared_head(scanned_head_path):
    mesh = load_mesh(scanned_head_path)
    assert mesh.triangles.shape == (17684, 3) and mesh.uvs.shape == (17684, 3, 2)
    assert 0 <= mesh.uvs.min() and mesh.uvs.max() <= 1
    # Normals agree across UV seams because vertices at the same position share one.
    pos, inverse = np.unique(mesh.positions, axis=0, return_inverse=True)
    assert len(pos) < len(mesh.positions)
    first = {}
    for i, key in enumerate(inverse.reshape(-1)):
        first.setdefault(key, i)
    twins = np.array([first[k] for k in inverse.reshape(-1)])
    np.testing.assert_allclose(mesh.normals, mesh.normals[twins], atol=1e-6)


def test_ply_without_uvs_errors_then_unwraps(tmp_path):
    path = tmp_path / "sphere.ply"
    trimesh.creation.icosphere(subdivisions=2).export(path)
    with pytest.raises(AvatarTexError) as info:
        load_mesh(path)
    assert info.value.code == ErrorCode.NO_UV_MAP and "--unwrap" in info.value.hint
    mesh = load_mesh(path, unwrap_if_missing=True)
    assert mesh.uvs.shape == (len(mesh.triangles), 3, 2)
    assert mesh.uvs.min() >= 0 and mesh.uvs.max() <= 1
    assert any("xatlas" in w for w in mesh.warnings)


def test_unwrap_keeps_triangle_order():
    sphere = trimesh.creation.icosphere(subdivisions=1)
    mesh = validate(Mesh(sphere.vertices, sphere.faces, None), require_uvs=False)
    out = unwrap(mesh)
    np.testing.assert_array_equal(out.triangles, mesh.triangles)
    # Every triangle keeps a non-degenerate UV image (xatlas did not scramble the order).
    e1 = out.uvs[:, 1] - out.uvs[:, 0]
    e2 = out.uvs[:, 2] - out.uvs[:, 0]
    assert (np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) > 0).all()


def _mesh(positions, triangles):
    tri = np.asarray(triangles, np.int32)
    return Mesh(np.asarray(positions, np.float32), tri, np.zeros((len(tri), 3, 2), np.float32))


@pytest.mark.parametrize(
    "positions,triangles,code",
    [
        (np.zeros((0, 3)), np.zeros((0, 3)), ErrorCode.MESH_EMPTY),
        ([[0, 0, 0], [1, 0, np.nan], [0, 1, 0]], [[0, 1, 2]], ErrorCode.MESH_INVALID),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 7]], ErrorCode.MESH_INVALID),
        ([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2]], ErrorCode.MESH_INVALID),
    ],
)
def test_bad_meshes_are_typed_errors(positions, triangles, code):
    with pytest.raises(AvatarTexError) as info:
        validate(_mesh(positions, triangles))
    assert info.value.code == code and info.value.hint


def test_degenerate_triangles_are_dropped_with_a_warning():
    mesh = validate(_mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0]], [[0, 1, 2], [0, 1, 3]]))
    assert len(mesh.triangles) == 1 and len(mesh.uvs) == 1
    assert any("degenerate" in w for w in mesh.warnings)


def test_file_errors(tmp_path):
    for path, code in (
        (tmp_path / "nope.glb", ErrorCode.MESH_MISSING),
        (tmp_path / "x.fbx", ErrorCode.MESH_UNREADABLE),
        (tmp_path / "bad.glb", ErrorCode.MESH_UNREADABLE),
        (tmp_path / "bad.npz", ErrorCode.MESH_UNREADABLE),
    ):
        if code != ErrorCode.MESH_MISSING:
            path.write_bytes(b"garbage that is not a mesh")
        with pytest.raises(AvatarTexError) as info:
            load_mesh(path)
        assert info.value.code == code, (path, info.value)
        assert path.name in info.value.message


def test_unknown_uv_map_names_the_available(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text(QUAD_OBJ)
    with pytest.raises(AvatarTexError) as info:
        load_mesh(path, uv_map="Detail")
    assert info.value.code == ErrorCode.UV_MAP_NOT_FOUND and "TEXCOORD_0" in info.value.hint
