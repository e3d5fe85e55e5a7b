"""Landmark pins in a request (issue 8, item 6's "what to try"): the ``pins`` parameter and the
CLI's ``--pin``, for heads whose face the detector cannot read or places beside its place: that a
request's pins reach the landmark step, as a vertex or as a point on the mesh; that a wrong pin is a
typed error naming the fix; and that a pin carries the landmarks around it (``apply_pins``). The
fallback to pins alone is tested in test_landmarks.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from avatartex import cli
from avatartex.mesh import Mesh, save_mesh, unwrap, validate, with_pins
from avatartex.protocol import AvatarTexError, ErrorCode, GenerateParams, PrepareParams
from pin_fixtures import SPHERE_FACE


@pytest.fixture(scope="module")
def sphere() -> Mesh:
    ball = trimesh.creation.icosphere(subdivisions=3, radius=2.0)
    return unwrap(validate(Mesh(ball.vertices, ball.faces, None, pins={"chin": 7}), require_uvs=False))


def _nearest(mesh: Mesh, point) -> int:
    return int(np.linalg.norm(np.asarray(mesh.positions) - np.asarray(point), axis=1).argmin())


def test_a_pin_is_a_vertex_or_the_vertex_nearest_a_point(sphere):
    point = np.array(SPHERE_FACE["nose_tip"]) * 1.003  # picked a hair off the surface
    pinned = with_pins(sphere, {"nose_tip": point.tolist(), "mouth_left": 12, "chin": 30})
    assert pinned.pins == {"nose_tip": _nearest(sphere, point), "mouth_left": 12, "chin": 30}
    assert sphere.pins == {"chin": 7}  # the mesh read is not changed
    assert with_pins(sphere, {}) is sphere
    # The vertex nearest a point is the one pinned even where the point is nearer another triangle's
    # middle: a point inside a large triangle is on the mesh.
    corners = np.asarray(sphere.positions)[np.asarray(sphere.triangles)[0]]
    middle = corners.mean(axis=0)
    assert with_pins(sphere, {"chin": middle.tolist()}).pins["chin"] in set(np.asarray(sphere.triangles)[0])


@pytest.mark.parametrize(
    "pins, words",
    [
        ({"nose": 3}, "Unknown landmark pin 'nose'"),
        ({"nose_tip": 10**6}, "names vertex 1000000"),
        ({"nose_tip": -1}, "names vertex -1"),
        ({"nose_tip": [0.0, 1.0]}, "neither a vertex index nor a point"),
        ({"nose_tip": "tip"}, "neither a vertex index nor a point"),
        ({"nose_tip": True}, "neither a vertex index nor a point"),
        ({"nose_tip": [0.0, float("nan"), 2.0]}, "neither a vertex index nor a point"),
        # Blender's view of a y-up file's point (x, -z, y): off the mesh, and the hint says how to read it.
        ({"nose_tip": [0.0, -2.0, 0.0 + 3.0]}, "is not on mesh"),
        # So far out that the distance overflows: said so, not "inf away (inf% of the mesh's size)".
        ({"nose_tip": [1e308, 1e308, 1e308]}, "is too far away to measure"),
    ],
)
def test_a_wrong_pin_is_a_typed_error(sphere, pins, words):
    with pytest.raises(AvatarTexError) as err:
        with_pins(sphere, pins)
    assert err.value.code == ErrorCode.BAD_REQUEST and words in err.value.message
    assert err.value.hint


def test_a_vertex_pin_on_an_obj_is_the_files_own_vertex(sphere, tmp_path):
    """An OBJ's vertices are split where its UVs are (the mesh as read has more, in another order),
    but the vertex numbers an artist reads (Blender's, the file's ``v`` lines) are the file's: a pin
    names the file's vertex. Before, ``chin=N`` pinned the N-th split vertex, on the back of a head."""
    from avatartex.mesh import load_mesh

    file_vertices = np.asarray(sphere.positions, np.float64)
    corners = np.asarray(sphere.uvs).reshape(-1, 2)  # a UV per corner, as Blender writes them
    faces = np.asarray(sphere.triangles) + 1
    path = tmp_path / "head.obj"
    path.write_text(
        "".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in file_vertices)
        + "".join(f"vt {u:.6f} {v:.6f}\n" for u, v in corners)
        + "".join(f"f {a}/{3 * t + 1} {b}/{3 * t + 2} {c}/{3 * t + 3}\n" for t, (a, b, c) in enumerate(faces))
    )
    mesh = load_mesh(path)
    assert len(mesh.positions) != len(file_vertices)  # split where the UVs are
    for index in (0, 5, len(file_vertices) - 1):
        pinned = np.asarray(mesh.positions)[with_pins(mesh, {"nose_tip": index}).pins["nose_tip"]]
        np.testing.assert_allclose(pinned, file_vertices[index], atol=1e-6)
    with pytest.raises(AvatarTexError, match=f"has {len(file_vertices)} vertices"):
        with_pins(mesh, {"nose_tip": len(file_vertices)})


def test_a_point_read_in_blenders_axes_is_refused_with_the_conversion():
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.1)
    head = validate(Mesh(np.asarray(ball.vertices) + [0, 1.6, 0], ball.faces, None), require_uvs=False)
    on_mesh = [0.0, 1.6, 0.1]  # the file's y-up point
    assert with_pins(head, {"nose_tip": on_mesh}).pins["nose_tip"] == _nearest(head, on_mesh)
    with pytest.raises(AvatarTexError) as err:
        with_pins(head, {"nose_tip": [0.0, -0.1, 1.6]})  # the same point as Blender shows it
    assert "(x, z, -y) in the file" in err.value.hint


def test_pins_are_request_parameters():
    params = GenerateParams.from_dict(
        {"mesh": "m", "portrait": "p", "out_dir": "o", "pins": {"nose_tip": [0, 1.6, 0.1], "chin": 4}}
    )
    assert params.pins == {"nose_tip": [0, 1.6, 0.1], "chin": 4}
    assert GenerateParams("m", "p", "o").to_dict()["pins"] == {}
    assert PrepareParams.from_dict({"mesh": "m", "pins": {"chin": 4}}).pins == {"chin": 4}
    with pytest.raises(AvatarTexError) as err:
        GenerateParams.from_dict({"mesh": "m", "portrait": "p", "out_dir": "o", "pins": [4]})
    assert err.value.code == ErrorCode.BAD_REQUEST and "'pins' must be dict" in err.value.message


def test_cli_pin_values_parse():
    assert cli.parse_pins(["nose_tip=0,1.62,0.11", "chin=42", " mouth_left = -0.5, 2 ,1e-2"]) == {
        "nose_tip": [0.0, 1.62, 0.11],
        "chin": 42,
        "mouth_left": [-0.5, 2.0, 0.01],
    }
    for bad, words in (
        ("nose_tip", "neither NAME=X,Y,Z nor NAME=VERTEX"),
        ("nose_tip=1,2", "neither"),
        ("=1,2,3", "neither"),
        ("nose_tip=a,b,c", "neither"),
    ):
        with pytest.raises(AvatarTexError) as err:
            cli.parse_pins([bad])
        assert words in err.value.message
    with pytest.raises(AvatarTexError) as err:
        cli.parse_pins(["chin=1", "chin=2"])
    assert "given twice" in err.value.message


def test_a_mesh_without_a_face_is_textured_from_cli_pins(sphere, tmp_path, astronaut_path, capsys):
    """A ball is no head the detector reads: without pins `generate` stops with a typed error whose
    lines say how to pin from the command line; with seven points on it, the texture is made from
    the pins and the report says so."""
    mesh_path = save_mesh(sphere, tmp_path / "ball.glb")
    base = ["generate", "--mesh", str(mesh_path), "--portrait", str(astronaut_path), "--size", "512"]
    base += ["--engine", "classic"]
    assert cli.main(base + ["--out", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "error [no_face_on_mesh]" in err and "--pin NAME=X,Y,Z" in err
    pins = [f"--pin={name}={x},{y},{z}" for name, (x, y, z) in SPHERE_FACE.items()]
    assert cli.main(base + ["--out", str(tmp_path / "out"), *pins]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["landmarks_source"] == "pins"
    assert (tmp_path / "out" / "texture.png").stat().st_size > 0


@pytest.fixture(scope="module")
def demo_read():
    """The demo head and its landmarks as detected (no pins), +z facing, +y up."""
    from avatartex.demo_head import make_demo_head
    from avatartex.face import MediapipeLandmarker
    from avatartex.landmarks import detect_mesh_landmarks

    positions, triangles, _, _ = make_demo_head()
    positions, triangles = np.asarray(positions, np.float64), np.asarray(triangles, np.int64)
    found = detect_mesh_landmarks(
        positions, triangles, MediapipeLandmarker(), up=[0, 1, 0], forward=[0, 0, 1]
    )
    return positions, triangles, found


def test_a_pin_carries_the_landmarks_around_it(demo_read):
    """An eye corner pinned further out takes its eye's contour with it (the photo's eye spans the
    pinned corners, not only its corner point), and leaves the other eye and the mouth where the
    detector read them; every moved landmark stays on the surface."""
    import copy

    from avatartex.face import LEFT_EYE_CONTOUR, LIPS_OUTER, PIN_LANDMARKS, RIGHT_EYE_CONTOUR
    from avatartex.landmarks import apply_pins

    positions, triangles, found = demo_read
    corner = PIN_LANDMARKS["right_eye_outer"]
    p = found.points3d
    right, left = p[list(RIGHT_EYE_CONTOUR)].mean(0), p[list(LEFT_EYE_CONTOUR)].mean(0)
    iod = float(np.linalg.norm(left - right))
    outward = (right - left) / iod
    wanted = p[corner] + 0.12 * iod * outward
    vertex = _nearest(Mesh(positions, triangles, None), wanted)
    pinned = copy.deepcopy(found)
    apply_pins(pinned, {"right_eye_outer": vertex}, positions, triangles)
    shift = positions[vertex] - p[corner]
    assert np.allclose(pinned.points3d[corner], positions[vertex])
    moved = (pinned.points3d - p) @ (shift / np.linalg.norm(shift)) / np.linalg.norm(shift)
    near = [i for i in RIGHT_EYE_CONTOUR if np.linalg.norm(p[i] - p[corner]) < 0.15 * iod and i != corner]
    assert len(near) >= 3 and np.median(moved[near]) > 0.5, moved[near]
    far = list(LEFT_EYE_CONTOUR) + list(LIPS_OUTER)
    assert np.abs(np.linalg.norm(pinned.points3d[far] - p[far], axis=1)).max() < 0.05 * np.linalg.norm(shift)
    ok = pinned.valid
    rebuilt = np.einsum("kj,kjc->kc", pinned.bary[ok], positions[triangles[pinned.tri_id[ok]]])
    assert np.abs(rebuilt - pinned.points3d[ok]).max() < 1e-6 * np.ptp(positions)


def test_a_pin_far_from_its_feature_is_named(demo_read):
    """A pin set on the wrong eye is followed (the artist may know better than the detector) but
    named in a warning; a pin on its feature is not."""
    import copy

    from avatartex.face import PIN_LANDMARKS
    from avatartex.landmarks import apply_pins

    positions, triangles, found = demo_read
    mesh = Mesh(positions, triangles, None)
    swapped = copy.deepcopy(found)
    on_left = _nearest(mesh, found.points3d[PIN_LANDMARKS["left_eye_outer"]])
    apply_pins(swapped, {"right_eye_outer": on_left}, positions, triangles)
    named = [w for w in swapped.warnings if "right eye outer pin" in w]
    assert len(named) == 1 and "left and right are the character's own" in named[0]
    assert np.allclose(swapped.points3d[PIN_LANDMARKS["right_eye_outer"]], positions[on_left])
    kept = copy.deepcopy(found)
    apply_pins(
        kept,
        {"right_eye_outer": _nearest(mesh, found.points3d[PIN_LANDMARKS["right_eye_outer"]])},
        positions,
        triangles,
    )
    assert not [w for w in kept.warnings if "pin lies" in w]
