"""Mesh input: capture files, .obj/.glb/.ply loading, validation errors, unwrapping."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

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


# -- triangle strips, unusual glTF files ---------------------------------------------------------
STRIPS_HEADER = """\
ply
format {fmt} 1.0
element vertex 6
property float x
property float y
property float z
property float s
property float t
element tristrips {count}
property list int int vertex_indices
end_header
"""
STRIP_VERTICES = [(i % 2, i // 2, 0.0, i % 2, (i // 2) / 5) for i in range(6)]


def test_ply_triangle_strips_are_read_with_their_uvs(tmp_path):
    path = tmp_path / "strips.ply"
    body = "\n".join(" ".join(map(str, v)) for v in STRIP_VERTICES)
    # One strip with a restart (-1) and one plain: 1 + 2 triangles.
    path.write_text(STRIPS_HEADER.format(fmt="ascii", count=2) + body + "\n6 0 1 2 -1 2 3\n4 2 3 4 5\n")
    mesh = load_mesh(path)
    assert mesh.triangles.shape == (3, 3)
    # Strip winding alternates so every triangle faces the same way (+z here).
    assert (mesh.normals[:, 2] > 0.99).all()
    np.testing.assert_allclose(mesh.uvs[..., 1], mesh.positions[mesh.triangles][..., 1] / 5, atol=1e-6)


def test_binary_ply_strips_trimesh_cannot_read_say_what_was_found(tmp_path):
    import struct

    path = tmp_path / "strips.ply"
    header = STRIPS_HEADER.format(fmt="binary_little_endian", count=2).encode()
    body = b"".join(struct.pack("<5f", *v) for v in STRIP_VERTICES)
    body += struct.pack("<i6i", 6, 0, 1, 2, -1, 2, 3) + struct.pack("<i4i", 4, 2, 3, 4, 5)
    path.write_bytes(header + body)
    try:
        mesh = load_mesh(path)  # a reader that copes with strips of several lengths
    except AvatarTexError as error:
        assert error.code == ErrorCode.MESH_UNREADABLE
        assert "tristrips" in error.message and "binary_little_endian" in error.message
    else:
        assert mesh.triangles.shape == (3, 3)


def _glb(path, extra_json=None, morph=True, image=b"\xabKTX 20\xbb\r\n\x1a\n" + bytes(40)):
    """A hand-made .glb: a quad with UVs, a morph target and an embedded KTX2 (basisu) texture."""
    import json
    import struct

    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float32)
    uv = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)
    idx = np.array([0, 1, 2, 2, 1, 3], np.uint16)
    blobs = [pos.tobytes(), uv.tobytes(), idx.tobytes() + b"\0\0", np.full((4, 3), 0.1, np.float32).tobytes()]
    blobs.append(image)
    views, offset = [], 0
    for blob in blobs:
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(blob)})
        offset += len(blob)
    binary = b"".join(blobs)
    primitive = {"attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "indices": 2, "material": 0}
    if morph:
        primitive["targets"] = [{"POSITION": 3}]
    gltf = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [primitive], "weights": [0.0]}],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": 4,
                "type": "VEC3",
                "min": [0, 0, 0],
                "max": [1, 1, 0],
            },
            {"bufferView": 1, "componentType": 5126, "count": 4, "type": "VEC2"},
            {"bufferView": 2, "componentType": 5123, "count": 6, "type": "SCALAR"},
            {"bufferView": 3, "componentType": 5126, "count": 4, "type": "VEC3"},
        ],
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
        "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}],
        "textures": [{"extensions": {"KHR_texture_basisu": {"source": 0}}}],
        "images": [{"bufferView": 4, "mimeType": "image/ktx2"}],
        "extensionsUsed": ["KHR_texture_basisu"],
        "extensionsRequired": ["KHR_texture_basisu"],
    }
    if extra_json:
        extra_json(gltf)
    text = json.dumps(gltf).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    data = struct.pack("<III", 0x46546C67, 2, 28 + len(text) + len(binary))
    data += (
        struct.pack("<II", len(text), 0x4E4F534A)
        + text
        + struct.pack("<II", len(binary), 0x004E4942)
        + binary
    )
    path.write_bytes(data)
    return path


def test_glb_with_morph_targets_and_a_compressed_texture_reads(tmp_path):
    try:
        import pygltflib  # noqa: F401  (not needed: the file is written by hand)
    except ImportError:
        pass
    mesh = load_mesh(_glb(tmp_path / "morph.glb"))
    assert mesh.triangles.shape == (2, 3) and mesh.uvs.shape == (2, 3, 2)
    assert any("morph targets" in w for w in mesh.warnings)


def _without_material(gltf: dict) -> None:
    """The quad as Blender exports an object with no material: UVs, no ``material`` on the primitive."""
    for key in ("materials", "textures", "images", "extensionsUsed", "extensionsRequired"):
        gltf.pop(key)
    del gltf["meshes"][0]["primitives"][0]["material"]


def test_a_gltf_with_uvs_and_no_material_keeps_its_uvs(tmp_path):
    """trimesh drops a primitive's TEXCOORD_0 when it has no material; Blender writes none for an
    object without one (a fresh sculpt, Suzanne): its UVs must still be read, from a .glb and from a
    .gltf with its buffer beside it, the same as with a material."""
    import json
    import struct

    with_material = load_mesh(_glb(tmp_path / "material.glb", morph=False))
    glb = _glb(tmp_path / "bare.glb", _without_material, morph=False)
    bare = load_mesh(glb)
    assert bare.uvs is not None
    np.testing.assert_array_equal(bare.uvs, with_material.uvs)
    np.testing.assert_array_equal(bare.triangles, with_material.triangles)
    # The same as a .gltf: the JSON, and the binary chunk as a .bin file it points to.
    raw = glb.read_bytes()
    length = struct.unpack("<I", raw[12:16])[0]
    gltf = json.loads(raw[20 : 20 + length])
    binary = raw[20 + length + 8 :]
    (tmp_path / "bare.bin").write_bytes(binary)
    gltf["buffers"] = [{"byteLength": len(binary), "uri": "bare.bin"}]
    (tmp_path / "bare.gltf").write_text(json.dumps(gltf))
    np.testing.assert_array_equal(load_mesh(tmp_path / "bare.gltf").uvs, with_material.uvs)


def test_a_mesh_under_another_formats_name_or_without_its_buffer_says_so(tmp_path):
    """A .glb saved with an .obj name read as "contains no triangles (found: nothing)", and a .gltf
    copied without its .bin as a damaged file to export again: each now says what it is and how to
    fix it."""
    import json

    glb = _glb(tmp_path / "head.glb", morph=False)
    (tmp_path / "head.obj").write_bytes(glb.read_bytes())
    with pytest.raises(AvatarTexError) as info:
        load_mesh(tmp_path / "head.obj")
    assert info.value.code == ErrorCode.MESH_UNREADABLE and "holds a .glb mesh" in info.value.message
    assert "Rename it to head.glb" in info.value.hint
    gltf = {"asset": {"version": "2.0"}, "buffers": [{"byteLength": 12, "uri": "head%20data.bin"}]}
    (tmp_path / "head.gltf").write_text(json.dumps(gltf))
    with pytest.raises(AvatarTexError) as info:
        load_mesh(tmp_path / "head.gltf")
    assert "head%20data.bin, which is not beside it" in info.value.message and ".bin" in info.value.hint
    assert load_mesh(glb).uvs is not None  # the real one reads


def test_parts_without_materials_are_named_by_their_objects(tmp_path):
    """A file's parts are named in the warnings ("only the material 'Head', the face's, was
    textured"): where a part has no material, by its object (glTF node), not trimesh's geometry_3."""
    scene = trimesh.Scene()
    for name, offset in (("Head", 0.0), ("EyeL", 3.0)):
        ball = trimesh.creation.icosphere(subdivisions=1)
        ball.visual = trimesh.visual.TextureVisuals(
            uv=np.random.default_rng(0).random((len(ball.vertices), 2))
        )
        scene.add_geometry(
            ball, node_name=name, transform=trimesh.transformations.translation_matrix([offset, 0, 0])
        )
    path = tmp_path / "parts.glb"
    path.write_bytes(scene.export(file_type="glb"))
    assert sorted(load_mesh(path).part_names) == ["EyeL", "Head"]


def test_glb_trimesh_cannot_read_is_a_typed_error_saying_what_was_found(tmp_path):
    def meshopt(gltf):  # gltfpack's output: views decoded from a compressed buffer by meshopt
        gltf["buffers"].append(
            {"byteLength": 64, "extensions": {"EXT_meshopt_compression": {"fallback": True}}}
        )
        gltf["bufferViews"][0]["buffer"] = 1
        gltf["extensionsUsed"].append("EXT_meshopt_compression")
        gltf["extensionsRequired"].append("EXT_meshopt_compression")

    def broken(gltf):  # an accessor pointing past the views: trimesh's "list index out of range"
        gltf["accessors"][3]["bufferView"] = 9

    for name, edit in (("meshopt", meshopt), ("broken", broken)):
        with pytest.raises(AvatarTexError) as info:
            load_mesh(_glb(tmp_path / f"{name}.glb", edit))
        message = info.value.message
        assert info.value.code == ErrorCode.MESH_UNREADABLE, message
        assert "1 morph target" in message and "image/ktx2" in message and "KHR_texture_basisu" in message
    assert "EXT_meshopt_compression" in message or "list index" in message


# -- unwrapping ------------------------------------------------------------------------------------
def _raw_xatlas_in_child(tmp_path, positions, triangles, timeout=60):
    """xatlas.parametrize on the raw positions, in a child Python: on degenerate input its thread
    pool can wait forever, which must not hang the suite. Per-corner UVs, or None on a hang."""
    np.savez(tmp_path / "raw.npz", positions=positions, triangles=triangles.astype(np.uint32))
    code = (
        "import sys, numpy as np, xatlas; d = np.load(sys.argv[1]); "
        "_, i, uv = xatlas.parametrize(d['positions'], d['triangles']); np.save(sys.argv[2], uv[i])"
    )
    try:
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "raw.npz"), str(tmp_path / "raw.npy")],
            check=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None
    return np.load(tmp_path / "raw.npy")


def test_unwrap_of_a_tiny_mesh_is_scale_free(tmp_path):
    """A sculpt a few mm to cm across in metres (triangle areas ~1e-8): xatlas alone gives it NaN or
    zero-area UVs; normalised first, it gets the same charts as at any scale."""
    from avatartex.mesh import check_unwrap

    sphere = trimesh.creation.icosphere(subdivisions=3)
    tiny = (sphere.vertices * 0.002).astype(np.float32)  # triangle areas ~4e-8
    raw = _raw_xatlas_in_child(tmp_path, tiny, sphere.faces)  # what the unwrap gave before
    if raw is not None:  # None: xatlas's thread pool hung on it (seen once in ~10 runs), as broken
        with pytest.raises(AvatarTexError) as info:
            check_unwrap(raw, "tiny")
        assert info.value.code == ErrorCode.MESH_INVALID
    mesh = unwrap(validate(Mesh(tiny, sphere.faces, None), require_uvs=False))
    check_unwrap(mesh.uvs)
    assert mesh.unwrapped and 0 <= mesh.uvs.min() and mesh.uvs.max() <= 1


def test_unwrap_in_a_child_process_reports_progress_and_cancels(monkeypatch):
    import avatartex.mesh as mesh_module

    monkeypatch.setattr(mesh_module, "UNWRAP_IN_PROCESS", 0)
    monkeypatch.setattr(mesh_module, "_UNWRAP_CACHE", type(mesh_module._UNWRAP_CACHE)())
    sphere = trimesh.creation.icosphere(subdivisions=3)
    mesh = validate(Mesh(sphere.vertices, sphere.faces, None), require_uvs=False)
    seen = []
    out = unwrap(mesh, lambda f, m: seen.append((f, m)))
    assert seen[0][1].startswith("xatlas") and seen[-1][0] == 1.0
    np.testing.assert_array_equal(out.triangles, mesh.triangles)
    assert out.uvs.shape == (len(mesh.triangles), 3, 2)

    class Cancelled(Exception):
        pass

    def cancel(fraction, message):
        raise Cancelled

    moved = Mesh(mesh.positions + 1, mesh.triangles, None)
    with pytest.raises(Cancelled):
        unwrap(moved, cancel)


def test_large_meshes_are_unwrapped_in_pieces():
    from avatartex.mesh import _pieces

    sphere = trimesh.creation.icosphere(subdivisions=4)
    pieces = _pieces(np.asarray(sphere.vertices), np.asarray(sphere.faces), size=1000)
    assert sorted(np.concatenate(pieces).tolist()) == list(range(len(sphere.faces)))
    assert max(map(len, pieces)) <= 1000 and min(map(len, pieces)) >= 500


def test_save_mesh_round_trips_the_uv_map(tmp_path):
    from avatartex.mesh import save_mesh

    sphere = trimesh.creation.icosphere(subdivisions=2)
    mesh = unwrap(validate(Mesh(sphere.vertices, sphere.faces, None), require_uvs=False))
    path = save_mesh(mesh, tmp_path / "mesh.glb")
    back = load_mesh(path)
    assert not list(tmp_path.glob("*.part"))

    # The same corners carry the same UVs (compared per triangle, keyed by its corner positions).
    def table(m):
        corners = np.round(m.positions[m.triangles].reshape(len(m.triangles), -1), 5)
        order = np.lexsort(corners.T[::-1])
        return corners[order], m.uvs[order]

    (pa, ua), (pb, ub) = table(mesh), table(back)
    np.testing.assert_allclose(pa, pb, atol=1e-5)
    np.testing.assert_allclose(ua, ub, atol=1e-5)


def _heads_as_files():
    from avatartex.demo_head import STYLIZED_SHAPES, make_demo_head

    heads = {}
    for name in ("", "big_eyes", "small_chin"):
        p, t, u, _ = make_demo_head(48, STYLIZED_SHAPES.get(name))
        heads[name or "demo"] = Mesh(p, t, u)
    sphere = trimesh.creation.uv_sphere(count=[16, 16])
    heads["sphere"] = Mesh(
        sphere.vertices.astype(np.float32), sphere.faces, np.zeros((len(sphere.faces), 3, 2))
    )
    return heads


def test_a_mesh_turned_inside_out_is_read_outside_out_with_a_warning():
    """Flipped normals (a mirror without recalculating them, a scanner's export): every step reads
    a face's outside from its winding, and the photo landed nowhere. The demo heads and a sphere are
    outside out as they are; each turned inside out comes back."""
    _check_inside_out(_heads_as_files())


def test_the_scanned_bust_turned_inside_out_is_read_outside_out(scanned_head_path):
    """The same for a bust cut open at the chest (../shared's scan), whose little pieces (concave:
    the mouth's inside faces its own middle) are wound one way already."""
    from avatartex.winding import outward

    scan = load_mesh(scanned_head_path)
    _check_inside_out({"scan": scan})
    assert outward(scan.positions, scan.triangles) is None


def _check_inside_out(meshes: dict) -> None:
    for name, mesh in meshes.items():
        plain = validate(mesh)
        assert not any("inwards" in w for w in plain.warnings), name
        flipped = dataclasses.replace(
            mesh,
            triangles=np.asarray(mesh.triangles)[:, ::-1].copy(),
            uvs=np.asarray(mesh.uvs)[:, ::-1].copy(),
            normals=None if mesh.normals is None else -np.asarray(mesh.normals),
        )
        fixed = validate(flipped)
        assert any("point inwards" in w and "Recalculate Outside" in w for w in fixed.warnings), name
        assert np.array_equal(fixed.triangles, plain.triangles), name
        assert np.array_equal(fixed.uvs, plain.uvs) and np.allclose(
            fixed.normals, plain.normals, atol=1e-5
        ), name


def test_a_patch_wound_the_other_way_is_turned_to_agree():
    """A cheek whose faces were turned (flipped normals on part of a mesh) is turned back: exactly
    those faces; a mesh wound one way, and the scan's concave little pieces (a mouth's inside faces
    its own middle), are left alone."""
    from avatartex.demo_head import make_demo_head
    from avatartex.winding import outward

    p, t, u, _ = make_demo_head(48)
    assert outward(p, t) is None
    centroids = p[t].mean(axis=1)
    patch = (
        (centroids[:, 0] > 0.02)
        & (centroids[:, 1] < 0.0)
        & (centroids[:, 1] > -0.08)
        & (centroids[:, 2] > 0.05)
    )
    assert 100 < patch.sum() < len(t) // 5
    turned = np.where(patch[:, None], t[:, ::-1], t)
    flipped = outward(p, turned)
    assert flipped is not None and np.array_equal(flipped, patch)
    # A separate piece that is inside out as a whole is its own majority: left for validate's test.
    sphere = trimesh.creation.icosphere(2)
    both = np.concatenate([p, sphere.vertices * 0.01 + [0.3, 0, 0]])
    assert outward(both, np.concatenate([t, sphere.faces[:, ::-1] + len(p)])) is None


def test_hair_and_brow_cards_in_the_heads_mesh_are_said_to_be_painted_as_skin():
    """Cards for hair, brows or lashes (open, flat parts) in the head's material are painted with the
    skin the atlas holds where they lie: pale bars over the brows, a patchwork of skin over the scalp,
    with no word. They are counted and said; closed parts (an eyeball, a tooth), the head itself and
    a few stray triangles are not."""
    import trimesh
    from avatartex.sheets import SHEETS_AREA, sheets_warning, thin_open_parts

    head = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    eye = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
    eye.apply_translation([0.3, 0.2, 0.95])
    parts = [head, eye]
    for k in range(6):  # six hair cards over the crown: quads 0.6 x 0.3, a little apart
        card = trimesh.Trimesh(
            [[-0.3, 0, 0], [0.3, 0, 0], [0.3, 0.3, 0], [-0.3, 0.3, 0]], [[0, 1, 2], [0, 2, 3]], process=False
        )
        card.apply_translation([0.0, 1.0 + 0.05 * k, 0.1 * k - 0.3])
        parts.append(card)
    mesh = trimesh.util.concatenate(parts)
    found, share = thin_open_parts(mesh.vertices, mesh.faces)
    assert found == 6 and share > SHEETS_AREA
    said = sheets_warning("Head", found, share)
    assert (
        len(said) == 1
        and "6 thin open parts of mesh 'Head'" in said[0]
        and "material of their own" in said[0]
    )
    assert thin_open_parts(
        trimesh.util.concatenate([head, eye]).vertices, trimesh.util.concatenate([head, eye]).faces
    ) == (0, 0.0)
    speck = trimesh.Trimesh([[0, 0, 2], [1e-3, 0, 2], [0, 1e-3, 2]], [[0, 1, 2]], process=False)
    both = trimesh.util.concatenate([head, speck])
    assert thin_open_parts(both.vertices, both.faces) == (0, 0.0)  # a stray triangle is no card
    assert sheets_warning("Head", 0, 0.0) == []
    # Double-sided cards (each face and its reversed copy: with vertices of their own, or shared),
    # as game cards are made: every edge was used twice and none was found.
    for shared in (False, True):
        sided = [head, eye]
        for card in parts[2:]:
            faces = np.concatenate([card.faces, card.faces[:, ::-1] + (0 if shared else len(card.vertices))])
            vertices = card.vertices if shared else np.concatenate([card.vertices, card.vertices])
            sided.append(trimesh.Trimesh(vertices, faces, process=False))
        both = trimesh.util.concatenate(sided)
        again = thin_open_parts(both.vertices, both.faces)
        assert again[0] == found and again[1] == pytest.approx(share), shared


def test_a_gltf_whose_indices_run_past_its_vertices_is_a_typed_error(tmp_path):
    """A glTF whose index buffer names a vertex it does not have: its UVs were indexed by the triangles
    before any check, an IndexError traceback where every other format says mesh_invalid."""

    def three_vertices(gltf):  # the quad's indices name vertex 3
        for accessor in gltf["accessors"][:2]:
            accessor["count"] = 3

    with pytest.raises(AvatarTexError) as err:
        load_mesh(_glb(tmp_path / "bad.glb", three_vertices, morph=False))
    assert err.value.code == ErrorCode.MESH_INVALID and "outside its 3 vertices" in err.value.message


def test_a_gltfs_second_uv_set_asked_for_says_only_the_first_is_read(tmp_path):
    """``--uv-map TEXCOORD_1`` on a file that has it was told the file had no such UV map, available:
    TEXCOORD_0. It says the set is there but only a glTF's first is read, and how to make it first."""

    def second_set(gltf):
        gltf["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_1"] = 1

    path = _glb(tmp_path / "two.glb", second_set, morph=False)
    with pytest.raises(AvatarTexError) as err:
        load_mesh(path, "TEXCOORD_1")
    assert err.value.code == ErrorCode.UV_MAP_NOT_FOUND and "only a glTF's first" in err.value.message
    with pytest.raises(AvatarTexError, match="no UV map named 'TEXCOORD_2'"):
        load_mesh(path, "TEXCOORD_2")


def test_vertices_no_face_uses_are_left_out_and_pins_keep_the_files_numbers(tmp_path):
    """A head with a few loose vertices far away (left by modelling, or a scene's strays): they framed
    every render of the mesh, and one vertex 20 m off made the face too small to be found
    (no_face_on_mesh, whose hint, pins, led to an all-black texture). They are left out; a pin given
    by the file's vertex number still names the same point, and one on a loose vertex is refused."""
    from avatartex.mesh import with_pins

    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [2000, 0, 0]], np.float32)
    triangles = np.array([[0, 1, 2], [1, 3, 2]], np.int32)
    loose_first = np.vstack([[[-900, 5, 5]], positions])  # a stray vertex before the surface's
    uvs = np.tile(np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9]], np.float32), (2, 1, 1))
    path = tmp_path / "loose.npz"
    save_capture(Mesh(loose_first, triangles + 1, uvs, None, {"nose_tip": 4}, "loose"), path)
    mesh = load_mesh(path)
    assert len(mesh.positions) == 4 and np.ptp(mesh.positions, axis=0).max() == 1.0
    assert np.allclose(mesh.positions[mesh.triangles], loose_first[triangles + 1])
    assert np.allclose(mesh.positions[mesh.pins["nose_tip"]], loose_first[4])  # the capture's own pin
    pinned = with_pins(mesh, {"left_eye_outer": 2})  # the file's vertex 2
    assert np.allclose(mesh.positions[pinned.pins["left_eye_outer"]], loose_first[2])
    with pytest.raises(AvatarTexError, match="no face of mesh 'loose' uses"):
        with_pins(mesh, {"left_eye_outer": 5})
    with pytest.raises(AvatarTexError, match="has 6 vertices"):
        with_pins(mesh, {"left_eye_outer": 6})


def _head_and_eye_file(tmp_path, mapped: str = "Head"):
    """A two-part file: a ball 'Head' and a small ball 'EyeL' in front of it, only ``mapped`` with a
    UV map (in UDIM tile 1002, u in 1..2)."""
    scene = trimesh.Scene()
    for name, radius, offset in (("Head", 1.0, 0.0), ("EyeL", 0.2, 0.9)):
        ball = trimesh.creation.icosphere(subdivisions=2, radius=radius)
        if name == mapped:
            uv = np.random.default_rng(1).random((len(ball.vertices), 2)) * 0.9 + [1.05, 0.05]
            ball.visual = trimesh.visual.TextureVisuals(uv=uv)
        scene.add_geometry(
            ball, node_name=name, transform=trimesh.transformations.translation_matrix([0, 0, offset])
        )
    path = tmp_path / f"head_eye_{mapped}.glb"
    path.write_bytes(scene.export(file_type="glb"))
    return path


def test_a_part_without_a_uv_map_stays_in_the_shape_untextured(tmp_path):
    """A head exported with an eyeball that has no UV map of its own was refused whole ("no UV map";
    --unwrap then replaced the head's own layout). The part stays in the shape every render reads,
    untextured, and said so; it adds no UV tile."""
    from avatartex import uvtiles

    mesh = validate(load_mesh(_head_and_eye_file(tmp_path)))
    eye = mesh.parts == mesh.part_names.index("EyeL")
    assert len(mesh.triangles) == 320 + 320 and eye.sum() == 320
    assert np.isnan(mesh.uvs[eye]).all() and np.isfinite(mesh.uvs[~eye]).all()
    assert any("'EyeL' has no UV map" in w and "untextured" in w for w in mesh.warnings)
    assert not any("dropped" in w for w in mesh.warnings)
    assert uvtiles.tiles(mesh.uvs) == [(1, 0)]  # not 1001 too, where NaN floors


def test_the_faces_part_without_a_uv_map_is_a_typed_error(tmp_path):
    from avatartex.pipeline import steps
    from avatartex.pipeline.cache import HeadModel

    for mapped, face in (("EyeL", "Head"), ("Head", "Head"), ("EyeL", "EyeL")):
        mesh = validate(load_mesh(_head_and_eye_file(tmp_path, mapped)))
        head = HeadModel(mesh, landmarks=None, frame=None)
        head.derived["material"] = mesh.part_names.index(face)
        if mapped == face:
            assert len(head.textured) == 320 and np.isfinite(mesh.uvs[head.textured]).all()
            warnings = []
            steps.textured_material(head, warnings)
            assert warnings == []  # the unmapped part was said to be untextured when read
            continue
        with pytest.raises(AvatarTexError) as info:
            _ = head.textured
        assert info.value.code == ErrorCode.NO_UV_MAP and "'Head'" in info.value.message


def test_nan_uvs_are_not_counted_again_as_degenerate():
    mesh = _mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [0, 0, 1]], [[0, 1, 2], [0, 1, 3], [0, 2, 4]])
    uvs = np.full((3, 3, 2), 0.5, np.float32)
    uvs[2, 0] = np.nan
    mesh = validate(dataclasses.replace(mesh, uvs=uvs))
    assert len(mesh.triangles) == 1
    assert "dropped 1 triangles with NaN UVs" in mesh.warnings
    assert "dropped 1 degenerate triangles" in mesh.warnings


def test_an_obj_object_without_vt_leaves_the_others_uvs(tmp_path):
    """trimesh joins an OBJ's objects and drops every UV when one has no ``vt``: the head was "no UV
    map". Read object by object, the head keeps its UVs, the eyeball stays untextured."""
    head, eye = trimesh.creation.icosphere(2), trimesh.creation.icosphere(1, radius=0.2)
    eye.apply_translation([0, 0, 0.9])
    uv = np.random.default_rng(0).random((len(head.vertices), 2))
    lines = ["o Head", *(f"v {x} {y} {z}" for x, y, z in head.vertices), *(f"vt {u} {v}" for u, v in uv)]
    lines += [f"f {i}/{i} {j}/{j} {k}/{k}" for i, j, k in head.faces + 1]
    lines += ["o Eye", *(f"v {x} {y} {z}" for x, y, z in eye.vertices)]
    lines += [f"f {i} {j} {k}" for i, j, k in eye.faces + 1 + len(head.vertices)]
    path = tmp_path / "head_eye.obj"
    path.write_text("\n".join(lines) + "\n")
    mesh = load_mesh(path)
    unmapped = ~np.isfinite(mesh.uvs).all(axis=(1, 2))
    assert len(mesh.triangles) == 400 and unmapped.sum() == 80
    assert np.allclose(
        np.sort(mesh.uvs[~unmapped].reshape(-1, 2), axis=0), np.sort(uv[head.faces].reshape(-1, 2), axis=0)
    )
    assert any("'Eye' has no UV map" in w for w in mesh.warnings)
