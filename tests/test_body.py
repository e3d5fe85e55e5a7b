"""Full-body characters (body.py): the head is found and textured; the body is kept bit for bit
(or tone-matched, or skin-filled) and the neck shows no tone step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from avatartex import body
from avatartex.demo_head import FEATURES, make_demo_head
from avatartex.face import NOSE_TIP
from avatartex.image_io import save_png
from avatartex.mesh import Mesh, compute_normals, save_capture
from avatartex.pipeline import Generator
from avatartex.pipeline.cache import normalized
from avatartex.protocol import AvatarTexError, ErrorCode, GenerateParams
from body_fixtures import BODY_SKIN, SHIRT, make_character

SIZE = 512
NO_STEP_DELTA_E = 3.0
"""Lab distance across the neck's band below which no tone step shows (2.3 is just noticeable)."""


@pytest.fixture(scope="module")
def character():
    return make_character(SIZE)


@pytest.fixture(scope="module")
def files(character, astronaut_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("body")
    save_capture(character.mesh, folder / "character.npz")
    save_png(folder / "base.png", character.texture)
    return {"mesh": folder / "character.npz", "base": folder / "base.png", "portrait": astronaut_path}


@pytest.fixture(scope="module")
def generator():
    return Generator()


def request(files, out, **kw) -> GenerateParams:
    return GenerateParams(
        mesh=str(files["mesh"]),
        portrait=str(files["portrait"]),
        out_dir=str(out),
        size=SIZE,
        engine="classic",
        **kw,
    )


@pytest.fixture(scope="module")
def toned(generator, files, tmp_path_factory):
    """The default request with a base texture: body_to_face."""
    out = tmp_path_factory.mktemp("toned")
    result = generator.generate(request(files, out, base_texture=str(files["base"])))
    return result, body.read_base(result["texture"])


@pytest.fixture(scope="module")
def part(generator, files, toned):
    from avatartex.mesh import load_mesh

    return generator.head(load_mesh(str(files["mesh"])))  # cached from the request above


def test_the_head_of_a_full_body_character_is_found(part, files):
    from avatartex.mesh import load_mesh

    head = part.body
    mesh = load_mesh(str(files["mesh"]))
    assert head is not None and head.axis_searched == "+y"
    # The landmarks sit on the demo head's features (metres, the file's own coordinates).
    nose = part.to_file(part.landmarks.points3d[NOSE_TIP])
    assert np.linalg.norm(nose - np.array(FEATURES["nose_tip"])) < 0.015
    # The neck is cut between the chin (y = -0.108) and the shoulders (about -0.25).
    neck = part.to_file((head.neck_point - head.centre) / head.scale)
    assert -0.22 < neck[1] < -0.12 and abs(neck[0]) < 0.01
    # The head region: all of the head above the jaw, nothing of the torso, arms or legs.
    centroids = mesh.positions[mesh.triangles].mean(axis=1)
    assert head.head_triangles[centroids[:, 1] > -0.09].all()
    assert not head.head_triangles[centroids[:, 1] < -0.26].any()
    assert len(head.part_triangles) < 0.7 * len(mesh.triangles)
    # The band is a few % of the head's height (about 0.3 m here).
    assert 0.01 < head.band * part.file_scale / head.scale < 0.03


def test_a_character_turned_in_its_file_is_still_searched_as_a_body(character, part):
    """The character turned 30 degrees about its up axis, 40 about x and 45 about z: its file's
    axis-aligned box is then nearly a cube (longest over shortest 1.1, under BODY_RATIO), and the whole
    character used to be textured as one big head. Its principal axes say it is a body; its head is
    the same triangles as upright."""
    import dataclasses

    from avatartex.face import default_landmarker

    def turn(axis, degrees):
        k = np.asarray(axis, np.float64) / np.linalg.norm(axis)
        a = np.radians(degrees)
        K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K

    R = turn([0, 0, 1], 45) @ turn([1, 0, 0], 40) @ turn([0, 1, 0], 30)
    mesh = character.mesh
    turned = dataclasses.replace(
        mesh,
        positions=(np.asarray(mesh.positions, np.float64) @ R.T).astype(np.float32),
        normals=None
        if mesh.normals is None
        else (np.asarray(mesh.normals, np.float64) @ R.T).astype(np.float32),
    )
    extent = np.ptp(np.asarray(turned.positions, np.float64), axis=0)
    assert extent.max() < body.BODY_RATIO * extent.min()  # the file's box alone says "a head"
    assert body.is_body_shaped(turned.positions)
    found = body.head_part(normalized(turned)[0], default_landmarker())
    assert found is not None
    upright = set(part.body.part_triangles.tolist())
    assert (
        len(upright & set(found.part_triangles.tolist())) / len(upright | set(found.part_triangles.tolist()))
        > 0.9
    )


class NoDetector:
    def detect(self, image):
        raise AssertionError("a plain head must not be searched as a body")


def test_plain_heads_are_not_searched_as_bodies():
    positions, triangles, uvs, _ = make_demo_head(48)
    demo = Mesh(positions, triangles, uvs, compute_normals(positions, triangles))
    assert not body.is_body_shaped(demo.positions)
    assert body.head_part(normalized(demo)[0], NoDetector()) is None


def test_a_head_with_its_back_cut_away_is_not_searched_as_a_body():
    """An open-back bust is thinner than it is tall and wide (the scanned head's: 2.45 times): it was
    searched as a body first, from ten axes (14.7 s to analyse instead of 2.1)."""
    positions, triangles, _, _ = make_demo_head(48)
    front = positions[np.unique(triangles[(positions[triangles][..., 2] > 0.0).all(axis=1)])]
    extent, _ = body.principal_extents(front)
    assert extent.max() > 2.0 * extent.min()  # thin enough for the old ratio's body search
    assert not body.is_body_shaped(front)


def test_the_scanned_head_is_not_searched_as_a_body(scanned_head_path):
    from avatartex.mesh import load_mesh

    scanned = load_mesh(str(scanned_head_path))
    assert body.head_part(normalized(scanned)[0], NoDetector()) is None


def test_body_to_face_keeps_the_body_and_removes_the_tone_step(toned, files, character, part):
    result, out = toned
    base = character.texture
    info = json.loads((Path(result["texture"]).parent / "report.json").read_text())["body"]
    assert info == result["report"]["body"]
    assert info["tone_match"] == "body_to_face" and info["head_search_axis"] == "+y"
    # Said in a sentence (the command line and the panel print it): all of it was in report.json alone.
    assert info["summary"].startswith("a full-body character: its head textured")
    assert "kept from base.png, the body's skin matched to the face's (neck ΔE" in info["summary"]
    assert 0.03 < info["head_fraction"] < 0.25 and info["band_texels"] > 50
    assert out.shape == base.shape and out.dtype == base.dtype
    layout = part.body.layout(SIZE, SIZE)
    m = layout.weight
    changed = (out != base).any(axis=2)
    # Clothes never change; outside the head and band only skin-like body texels do.
    shirt = (np.abs(base.astype(int) - np.array(SHIRT) * 255).max(axis=2) < 25) & layout.covered
    assert shirt.sum() > 1000 and not changed[shirt & (m == 0)].any()
    outside = changed & (m == 0) & layout.covered
    skin = np.abs(base.astype(int) - np.array(BODY_SKIN) * 255).max(axis=2) < 40
    assert outside.sum() > 1000 and skin[outside].mean() > 0.95
    # No tone step across the neck: the same measure on the naive paste and on the result.
    assert info["neck_delta_e_before"] > 10.0
    step = body.neck_tone_step(part.body, out)
    assert step["delta_e"] < NO_STEP_DELTA_E and step["max_step"] < NO_STEP_DELTA_E
    print(f"neck delta E: before {info['neck_delta_e_before']:.1f}, after {step['delta_e']:.2f}")


@pytest.mark.parametrize("mode", ["none", "face_to_body"])
def test_texels_outside_head_and_band_stay_bit_for_bit(mode, part, files, character):
    head = part.body
    face = np.zeros((SIZE, SIZE, 3), np.float32)
    face[:] = (0.85, 0.68, 0.58)
    warnings: list[str] = []
    params = GenerateParams("m", "p", "o", base_texture=str(files["base"]), tone_match=mode)
    out, info = body.compose(head, face, params, warnings)
    base = character.texture
    layout = head.layout(SIZE, SIZE)
    changed = (out != base).any(axis=2)
    padding = np.zeros(SIZE * SIZE, bool)
    padding[body._head_padding(layout, SIZE // 128)[0]] = True
    allowed = (layout.weight > 0) | padding.reshape(SIZE, SIZE)
    assert changed.any() and not changed[~allowed].any()
    assert info["tone_match"] == mode
    step = body.neck_tone_step(head, out)["delta_e"]
    assert (step < NO_STEP_DELTA_E) if mode == "face_to_body" else (step > 10.0)
    # A seam left at the neck is said, with what evens it; none where the tone was matched.
    seam = [w for w in warnings if "across the neck" in w]
    assert not warnings if mode == "face_to_body" else (len(seam) == 1 and "tone_match" in seam[0])


def test_sixteen_bit_base_with_alpha_keeps_depth_alpha_and_body(part, character, tmp_path):
    base = np.concatenate(
        [character.texture.astype(np.uint16) * 257, np.full((SIZE, SIZE, 1), 40000, np.uint16)], axis=2
    )
    path = save_png(tmp_path / "base16.png", base, 16)
    params = body.prepare(GenerateParams("m", "p", "o", base_texture=str(path), tone_match="none"))
    assert params.bit_depth == 16 and params.size == SIZE
    out, _ = body.compose(part.body, np.full((SIZE, SIZE, 3), 0.7, np.float32), params, [])
    assert out.dtype == np.uint16 and out.shape == (SIZE, SIZE, 4)
    assert (out[..., 3] == 40000).all()
    body_texels = part.body.layout(SIZE, SIZE).weight == 0
    body_texels &= part.body.layout(SIZE, SIZE).covered
    np.testing.assert_array_equal(out[body_texels], base[body_texels])


def test_without_base_texture_the_body_gets_skin_fill(generator, files, part, tmp_path):
    result = generator.generate(request(files, tmp_path))
    info = result["report"]["body"]
    assert info["tone_match"] == "skin_fill" and info["base_texture"] is None
    assert info["summary"].endswith("the body (no base texture given) filled with the face's skin tone")
    texture = body.read_base(result["texture"]).astype(np.float32) / 255
    layout = part.body.layout(SIZE, SIZE)
    body_texels = layout.covered & (layout.weight == 0)
    # The body is one skin tone, not the face's colours smeared down it.
    np.testing.assert_allclose(texture[body_texels].mean(axis=0), info["skin_rgb"], atol=0.01)
    assert texture[body_texels].std(axis=0).max() < 0.01
    assert body.neck_tone_step(part.body, texture)["delta_e"] < NO_STEP_DELTA_E


def test_bad_body_requests_fail_before_any_work(generator, files, tmp_path):
    with pytest.raises(AvatarTexError) as err:
        generator.generate(request(files, tmp_path / "a", tone_match="sideways"))
    assert err.value.code == ErrorCode.BAD_REQUEST
    with pytest.raises(AvatarTexError) as err:
        generator.generate(request(files, tmp_path / "b", base_texture=str(tmp_path / "missing.png")))
    assert err.value.code == ErrorCode.BASE_TEXTURE_UNREADABLE
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_protocol_fields_are_optional_and_typed():
    old = GenerateParams.from_dict({"mesh": "m", "portrait": "p", "out_dir": "o"})
    assert old.base_texture == "" and old.tone_match == "body_to_face"
    new = GenerateParams.from_dict(
        {"mesh": "m", "portrait": "p", "out_dir": "o", "base_texture": "b.png", "tone_match": "none"}
    )
    assert GenerateParams.from_dict(new.to_dict()) == new
    with pytest.raises(AvatarTexError):
        GenerateParams.from_dict({"mesh": "m", "portrait": "p", "out_dir": "o", "base_texture": 3})


def test_a_character_over_udim_tiles_keeps_its_body_tiles(generator, character, files, toned, tmp_path):
    """The character with its legs and lower body moved to UDIM tile 1002 and a base texture of two
    tiles (``base.<UDIM>.png``): the head's tile is composed over the base's tile 1001 as the one-tile
    character is, the texture comes as ``texture.1001.png``, and tile 1002 is named as the base's own
    file (left as it is, for a tiled image to show the body)."""
    import dataclasses

    from avatartex.raster import rasterize_uv

    mesh = character.mesh
    lower = mesh.positions[mesh.triangles].mean(axis=1)[:, 1] < -0.6
    assert lower.sum() > 1000
    uvs = np.array(mesh.uvs, np.float32)
    uvs[lower, :, 0] += 1.0
    save_capture(dataclasses.replace(mesh, uvs=uvs), tmp_path / "udim.npz")
    for number in (1001, 1002):
        save_png(tmp_path / f"base.{number}.png", character.texture)
    params = request({**files, "mesh": tmp_path / "udim.npz"}, tmp_path / "out")
    result = generator.generate(dataclasses.replace(params, base_texture=str(tmp_path / "base.<UDIM>.png")))
    assert result["tiles"] == {"1001": str(tmp_path / "out" / "texture.1001.png")}
    assert result["base_tiles"] == {"1002": str(tmp_path / "base.1002.png")} == result["report"]["base_tiles"]
    # The body's skin was matched in the head's tile alone: said, with the mode that matches all tiles.
    assert result["report"]["body"]["toned_body_texels"] > 0
    assert any("tile(s) 1002 keep the base's tone" in w for w in result["report"]["warnings"])
    out = body.read_base(result["texture"])
    reference = toned[1]
    tri_id = rasterize_uv(mesh.uvs, SIZE)[0]
    upper = (tri_id >= 0) & ~lower[np.maximum(tri_id, 0)]
    diff = np.abs(out.astype(int) - reference.astype(int))
    assert diff[upper].mean() < 0.5 and np.percentile(diff[upper], 99) <= 2
    # A tiled base without the head's tile is refused, saying which.
    (tmp_path / "base.1001.png").unlink()
    with pytest.raises(AvatarTexError) as caught:
        generator.generate(dataclasses.replace(params, base_texture=str(tmp_path / "base.<UDIM>.png")))
    assert caught.value.code == ErrorCode.BASE_TEXTURE_UNREADABLE and "1001" in caught.value.message


def _leaning_neck(lean_deg: float):
    """A head (a ball), a neck (a tube of radius 0.6) leaning back by ``lean_deg`` as it goes down
    and a torso (a box) under it, in a head frame of eye distance 1; (positions, triangles)."""
    import trimesh

    lean = np.radians(lean_deg)
    down = np.array([0.0, -np.cos(lean), -np.sin(lean)])
    length = 1.9 / np.cos(lean)
    top = np.array([0.0, -1.2, -0.3])
    neck = trimesh.creation.cylinder(radius=0.6, height=length, sections=48).subdivide_to_size(0.2)
    neck.apply_transform(trimesh.geometry.align_vectors([0, 0, 1], down))
    neck.apply_translation(top + length / 2 * down)
    torso = trimesh.creation.box(extents=(4.0, 3.0, 2.5)).subdivide_to_size(0.2)
    torso.apply_translation(top + length * down + np.array([0.0, -1.4, 0.0]))
    head = trimesh.creation.icosphere(subdivisions=3, radius=1.6)
    head.apply_translation([0.0, 0.2, -0.3])
    mesh = trimesh.util.concatenate([neck, torso, head])
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def test_a_neck_leaning_far_from_the_faces_up_is_cut_at_most_thirty_degrees_from_it():
    """A scanned bust set on a body: the slices' centres lean with the bust's neck and the body's
    shoulders inside it, and the neck's axis read 52° from the face's up; the cut square to it ran
    from the chest at the front to high on the neck at the back (skin over the shirt, the old neck
    left under the new head). A neck leaning 45° is cut 30° from up, leaning the same way; one
    leaning 20° keeps its own lean."""
    from avatartex.atlas import HeadFrame

    frame, chin = HeadFrame(np.zeros(3), np.eye(3), 1.0), np.array([0.0, -1.5, 0.6])
    _, axis, radius = body.find_neck(*_leaning_neck(45.0), frame, chin)
    assert np.degrees(np.arccos(axis @ frame.axes[1])) == pytest.approx(body.NECK_TILT_MAX_DEG, abs=0.5)
    assert axis[2] > 0.3  # up the neck leans forward, as the tube does
    assert 0.5 < radius < 1.2
    _, axis, _ = body.find_neck(*_leaning_neck(20.0), frame, chin)
    assert 12.0 < np.degrees(np.arccos(axis @ frame.axes[1])) < body.NECK_TILT_MAX_DEG - 1.0


def test_a_collar_across_most_of_the_neck_ring_leaves_the_tone_read_on_its_skin(part, character, tmp_path):
    """The body's tone is read on the ring below the neck's band. A shirt up to the neck in front (a
    scanned bust set on a body) took most of it: its median was the shirt's, the tone match was
    skipped ("clothing?") and the old neck showed under the new head. Now it is read on the ring's
    skin where a quarter of it is skin: matched, and the step measured on the skin is gone."""
    head = part.body
    layout = head.layout(SIZE, SIZE)
    _, below = body.rings(layout, head.band / head.frame.scale)
    rows, cols = np.nonzero(below)
    collar = np.zeros((SIZE, SIZE), bool)
    collar[rows[: int(0.6 * len(rows))], cols[: int(0.6 * len(rows))]] = True  # 60 % of the ring
    base = character.texture.copy()
    base[collar] = (40, 60, 170)  # a blue shirt
    path = save_png(tmp_path / "collar.png", base)
    face = np.zeros((SIZE, SIZE, 3), np.float32)
    face[:] = (0.85, 0.68, 0.58)
    warnings: list[str] = []
    out, info = body.compose(head, face, GenerateParams("m", "p", "o", base_texture=str(path)), warnings)
    assert info["tone_match"] == "body_to_face" and not warnings
    assert info["neck_delta_e_before"] > 10.0 and info["neck_delta_e"] < NO_STEP_DELTA_E
    assert (out[collar & (layout.weight == 0)] == (40, 60, 170)).all()  # the shirt is kept
