"""A head and a body that are separate meshes (separate_body.py): the skin matched across the neck,
the body's image never written over, a body that does not meet the head said."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from avatartex import body, separate_body
from avatartex.image_io import save_png
from avatartex.imaging import to_lab
from avatartex.mesh import Mesh, compute_normals, save_capture
from avatartex.pipeline import Generator
from avatartex.protocol import AvatarTexError, ErrorCode, GenerateParams
from body_fixtures import BODY_SKIN, SHIRT, make_character

SIZE = 512
NO_STEP_DELTA_E = 3.0
"""Lab distance across the neck below which no tone step shows (2.3 is just noticeable)."""


def _piece(mesh: Mesh, triangles: np.ndarray, name: str) -> Mesh:
    """The triangles' own mesh (their vertices only), UVs kept."""
    used, inverse = np.unique(mesh.triangles[triangles], return_inverse=True)
    positions = mesh.positions[used]
    tris = inverse.reshape(-1, 3).astype(np.int32)
    return Mesh(positions, tris, mesh.uvs[triangles], compute_normals(positions, tris), name=name)


@pytest.fixture(scope="module")
def files(astronaut_path, tmp_path_factory):
    """The test character cut into a head object and a body object, each with the character's UVs,
    and the body's texture (the character's painted one)."""
    character = make_character(SIZE)
    folder = tmp_path_factory.mktemp("separate")
    n = character.head_triangles
    everything = np.arange(len(character.mesh.triangles))
    save_capture(_piece(character.mesh, everything[:n], "Head"), folder / "head.npz")
    body_mesh = _piece(character.mesh, everything[n:], "Body")
    save_capture(body_mesh, folder / "body.npz")
    save_png(folder / "body.png", character.texture)
    far = Mesh(
        body_mesh.positions + np.float32([3.0, 0.0, 0.0]), body_mesh.triangles, body_mesh.uvs, name="Far"
    )
    save_capture(far, folder / "far.npz")
    return {
        "mesh": folder / "head.npz",
        "body": folder / "body.npz",
        "far": folder / "far.npz",
        "texture": folder / "body.png",
        "portrait": astronaut_path,
    }


@pytest.fixture(scope="module")
def generator():
    return Generator()


def request(files, out, **kw) -> GenerateParams:
    fields = {"body_mesh": str(files["body"]), "body_texture": str(files["texture"])} | kw
    return GenerateParams(
        mesh=str(files["mesh"]),
        portrait=str(files["portrait"]),
        out_dir=str(out),
        size=SIZE,
        engine="classic",
        **fields,
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def toned(generator, files, tmp_path_factory):
    """The default request: body_to_face."""
    before = _digest(files["texture"])
    out = tmp_path_factory.mktemp("toned")
    result = generator.generate(request(files, out))
    return result, before


def test_body_to_face_writes_a_toned_copy_of_the_body_and_evens_the_neck(toned, files):
    result, before = toned
    report = result["report"]["body"]
    assert report["kind"] == "separate" and report["tone_match"] == "body_to_face"
    # The painted body skin is darker and redder than the astronaut's face: a seam before.
    assert report["neck_delta_e_before"] > 10.0
    assert report["neck_delta_e"] < NO_STEP_DELTA_E
    written = Path(result["body_texture"])
    assert written.name == "texture_body.png" and written.parent == Path(result["texture"]).parent
    assert report["written"] == str(written)
    assert _digest(files["texture"]) == before  # the artist's body image is not written over
    old, new = body.read_base(str(files["texture"])), body.read_base(str(written))
    assert new.shape == old.shape and new.dtype == old.dtype
    # The skin moved, the shirt kept bit for bit.
    skin = np.all(np.abs(old.astype(int) - np.array(BODY_SKIN) * 255) < 16, axis=-1)
    shirt = np.all(np.abs(old.astype(int) - np.array(SHIRT) * 255) < 16, axis=-1)
    assert skin.sum() > 500 and shirt.sum() > 500
    assert np.array_equal(new[shirt], old[shirt])
    moved = np.linalg.norm(to_lab(new[skin] / 255.0) - to_lab(old[skin] / 255.0), axis=-1)
    assert np.median(moved) > 8.0
    assert "a separate body: its skin matched to the face's" in report["summary"]


def test_face_to_body_tones_the_head_and_writes_no_body(generator, files, toned, tmp_path):
    plain = body.read_base(toned[0]["texture"])
    result = generator.generate(request(files, tmp_path, tone_match="face_to_body"))
    report = result["report"]["body"]
    assert report["tone_match"] == "face_to_body" and report["neck_delta_e"] < NO_STEP_DELTA_E
    assert "body_texture" not in result and not (tmp_path / "texture_body.png").exists()
    head = body.read_base(result["texture"])
    # The head's skin is now darker, towards the painted body's.
    moved = np.any(head != plain, axis=-1)
    assert moved.sum() > 10_000
    lightness = to_lab(head[moved] / 255.0)[:, 0]
    assert np.median(lightness) < np.median(to_lab(plain[moved] / 255.0)[:, 0]) - 5.0


def test_none_measures_the_seam_and_says_it(generator, files, tmp_path):
    result = generator.generate(request(files, tmp_path, tone_match="none"))
    report = result["report"]["body"]
    assert report["tone_match"] == "none" and report["neck_delta_e"] > 10.0
    assert any("across the neck: a seam shows" in w for w in result["report"]["warnings"])
    assert not (tmp_path / "texture_body.png").exists()


def test_a_body_that_does_not_meet_the_head_is_said_and_left(generator, files, tmp_path):
    result = generator.generate(request(files, tmp_path, body_mesh=str(files["far"])))
    report = result["report"]["body"]
    assert report["tone_match"] == "none" and report["gap_iod"] > 10
    assert any("does not meet the head" in w for w in result["report"]["warnings"])
    assert not (tmp_path / "texture_body.png").exists()


def test_a_body_request_missing_half_or_unreadable_fails_before_any_work(generator, files, tmp_path):
    with pytest.raises(AvatarTexError) as half:
        request(files, tmp_path, body_texture="")
    assert half.value.code == ErrorCode.BAD_REQUEST and "body_texture" in half.value.message
    out = tmp_path / "out"
    with pytest.raises(AvatarTexError) as missing:
        generator.generate(request(files, out, body_mesh=str(tmp_path / "nope.npz")))
    assert missing.value.code == ErrorCode.MESH_MISSING
    with pytest.raises(AvatarTexError) as unreadable:
        generator.generate(request(files, out, body_texture=str(files["mesh"])))
    assert unreadable.value.code == ErrorCode.BASE_TEXTURE_UNREADABLE
    assert not out.exists() or not any(out.iterdir())


def test_the_seams_rings_lie_on_either_side_of_the_neck_and_not_on_the_body_hidden_in_the_head(files):
    """Where the tones are read: the head's ring on the head's neck, the body's on the body's neck
    outside the head. The test body's neck rises inside the head's neck; painted blue there (hidden,
    as a body's neck under a head may be painted anything), it is not read."""
    from avatartex.bake import uv_surface
    from avatartex.imaging import sample_uv
    from avatartex.mesh import load_capture

    head, body_mesh = load_capture(files["mesh"]), load_capture(files["body"])
    colours = body.read_base(str(files["texture"])) / 255.0
    surface = uv_surface(body_mesh.positions, body_mesh.triangles, body_mesh.normals, body_mesh.uvs, SIZE)
    inside = np.zeros(colours.shape[:2], bool)
    inside[surface.mask] = surface.positions[:, 1] > head.positions[:, 1].min() + 0.01
    assert inside.sum() > 100
    colours[inside] = (0.1, 0.2, 0.9)
    iod = 0.064  # the demo head's eye distance, metres (demo_head.EYE_X * 2)
    rings, gap = separate_body.find_rings(head, np.arange(len(head.triangles)), body_mesh, iod)
    assert rings is not None and gap < 0.01
    body_lab = to_lab(sample_uv(colours, rings.body_uv))
    skin_lab, blue_lab = to_lab(np.array([BODY_SKIN, (0.1, 0.2, 0.9)]))
    assert np.median(np.linalg.norm(body_lab - skin_lab, axis=-1)) < 6.0
    hidden = np.linalg.norm(body_lab - blue_lab, axis=-1) < 30.0
    assert hidden.mean() < 0.02, hidden.mean()
    far = Mesh(body_mesh.positions + np.float32([3, 0, 0]), body_mesh.triangles, body_mesh.uvs)
    assert separate_body.find_rings(head, np.arange(len(head.triangles)), far, iod)[0] is None


@pytest.fixture(scope="module")
def one_mesh(files, tmp_path_factory):
    """The test character as one mesh of three materials, as Daz's and Character Creator's come: the
    head ("Face"), the body ("Body", its painted image) and a band across the eyes ("Lashes", an image
    of its own) that meets the face everywhere but below the mouth."""
    character = make_character(SIZE)
    mesh = character.mesh
    n = character.head_triangles
    parts = np.zeros(len(mesh.triangles), np.int32)
    parts[n:] = 1
    centres = mesh.positions[mesh.triangles[:n]].mean(axis=1)
    front = centres[:, 2] > np.percentile(centres[:, 2], 70)
    band = front & (np.abs(centres[:, 1]) < 0.015)  # the eyes lie at y = 0
    parts[:n][band] = 2
    folder = tmp_path_factory.mktemp("one_mesh")
    whole = Mesh(mesh.positions, mesh.triangles, mesh.uvs, mesh.normals, name="Character")
    whole.parts, whole.part_names = parts, ["Face", "Body", "Lashes"]
    save_capture(whole, folder / "character.npz")
    save_png(folder / "lashes.png", np.full((64, 64, 3), 20, np.uint8))
    return {
        "mesh": folder / "character.npz",
        "textures": ["", str(files["texture"]), str(folder / "lashes.png")],
        "lashes_vertices": len(np.unique(mesh.triangles[parts == 2])),
    }


def test_a_body_in_a_material_of_its_own_gets_a_toned_copy_and_the_lashes_do_not(
    generator, files, one_mesh, tmp_path
):
    before = _digest(files["texture"])
    params = GenerateParams(
        mesh=str(one_mesh["mesh"]),
        portrait=str(files["portrait"]),
        out_dir=str(tmp_path),
        size=SIZE,
        engine="classic",
        material_textures=one_mesh["textures"],
    )
    result = generator.generate(params)
    report = result["report"]["body"]
    assert report["kind"] == "material" and report["material"] == "Body" and report["material_index"] == 1
    assert report["tone_match"] == "body_to_face"
    assert report["neck_delta_e_before"] > 10.0 and report["neck_delta_e"] < NO_STEP_DELTA_E
    assert result["report"]["material"]["names"] == ["Face", "Body", "Lashes"]
    written = Path(result["body_texture"])
    assert written.name == "texture_body.png" and report["written"] == str(written)
    assert _digest(files["texture"]) == before
    old, new = body.read_base(str(files["texture"])), body.read_base(str(written))
    shirt = np.all(np.abs(old.astype(int) - np.array(SHIRT) * 255) < 16, axis=-1)
    assert np.array_equal(new[shirt], old[shirt]) and np.any(new != old)
    assert "the body's material 'Body': its skin matched to the face's" in report["summary"]


def test_the_body_material_is_the_one_meeting_the_face_below_the_mouth(one_mesh):
    """``in_material`` on the capture alone: the lashes' band touches the face with more vertices
    than the body's neck does, but at the eyes' height."""
    from avatartex.mesh import load_mesh

    whole = load_mesh(str(one_mesh["mesh"]))
    face = np.flatnonzero(whole.parts == 0)
    up = np.array([0.0, 1.0, 0.0])
    iod, mouth = 0.059, -0.061  # the demo head's eye distance and mouth height (demo_head.features)
    found = separate_body.in_material(whole, face, one_mesh["textures"], iod, up, mouth)
    assert found is not None and found[0] == 1 and found[1].mesh.name == "Body"
    # The band meets the face with more vertices than the body does anywhere (all of its own).
    from scipy.spatial import cKDTree

    body_vertices = whole.positions[np.unique(whole.triangles[whole.parts == 1])]
    face_tree = cKDTree(whole.positions[np.unique(whole.triangles[face])])
    body_near = (
        face_tree.query(body_vertices, distance_upper_bound=separate_body.NEAR_IOD * iod)[0] < 1
    ).sum()
    assert one_mesh["lashes_vertices"] > 2 * body_near > 0
    # Without the body's image there is no body: the lashes are not taken for one.
    assert separate_body.in_material(whole, face, ["", "", one_mesh["textures"][2]], iod, up, mouth) is None


def test_material_textures_that_are_not_files_or_not_paths_are_refused(generator, files, one_mesh, tmp_path):
    with pytest.raises(AvatarTexError) as not_paths:
        GenerateParams(mesh="m.npz", portrait="p.png", out_dir=str(tmp_path), material_textures=[1, 2])
    assert not_paths.value.code == ErrorCode.BAD_REQUEST
    params = GenerateParams(
        mesh=str(one_mesh["mesh"]),
        portrait=str(files["portrait"]),
        out_dir=str(tmp_path / "out"),
        size=SIZE,
        engine="classic",
        material_textures=["", str(tmp_path / "gone.png")],
    )
    with pytest.raises(AvatarTexError) as missing:
        generator.generate(params)
    assert missing.value.code == ErrorCode.BASE_TEXTURE_UNREADABLE and "gone.png" in missing.value.message
    assert not (tmp_path / "out").exists()


def _daz_like(folder: Path, files, legs: bool = True, face_tiles: int = 1) -> GenerateParams:
    """The test character as Daz's come: Face, Torso, Hands (forearms and hands) and, with ``legs``,
    Legs (in trousers), each body material its own file of the painted image; ``face_tiles`` 2 puts
    the face's left half in UDIM 1002. The request for it, into ``folder``/out."""
    character = make_character(SIZE)
    mesh, n = character.mesh, character.head_triangles
    centres = mesh.positions[mesh.triangles].mean(axis=1)
    parts = np.ones(len(mesh.triangles), np.int32)
    parts[:n] = 0
    body_part = np.arange(len(mesh.triangles)) >= n
    parts[body_part & (np.abs(centres[:, 0]) > 0.21) & (centres[:, 1] < -0.65)] = 2  # forearms and hands
    names = ["Face", "Torso", "Hands"]
    if legs:
        parts[body_part & (np.abs(centres[:, 0]) < 0.21) & (centres[:, 1] < -0.9)] = 3  # legs, in trousers
        names.append("Legs")
    uvs = np.array(mesh.uvs, copy=True)
    if face_tiles == 2:
        uvs[:n][centres[:n, 0] > 0.0] += np.float32([1.0, 0.0])
    whole = Mesh(mesh.positions, mesh.triangles, uvs, mesh.normals, name="Character")
    whole.parts, whole.part_names = parts, names
    save_capture(whole, folder / "character.npz")
    textures = [""]
    for name in names[1:]:
        save_png(folder / f"{name.lower()}.png", character.texture)
        textures.append(str(folder / f"{name.lower()}.png"))
    return GenerateParams(
        mesh=str(folder / "character.npz"),
        portrait=str(files["portrait"]),
        out_dir=str(folder / "out"),
        size=SIZE,
        engine="classic",
        material_textures=textures,
    )


def test_a_body_whose_skin_runs_on_into_other_materials_gets_the_face_matched_to_it(
    generator, files, tmp_path
):
    """Daz's Torso, Arms and Legs: toning the neck's material alone would move the seam to where it
    meets the arms. The hands' material continues the skin (toned face_to_body, said); the legs',
    trousers at their seam, does not."""
    params = _daz_like(tmp_path, files)
    result = generator.generate(params)
    report = result["report"]["body"]
    assert report["material"] == "Torso" and report["skin_runs_into"] == ["Hands"]
    assert report["tone_match"] == "face_to_body" and report["neck_delta_e"] < NO_STEP_DELTA_E
    assert "body_texture" not in result and not (tmp_path / "out" / "texture_body.png").exists()
    assert any("runs on from 'Torso' into 'Hands'" in w for w in result["report"]["warnings"])


def test_a_face_over_two_uv_tiles_leaves_its_body_material_and_says_only_that(generator, files, tmp_path):
    """The matching reads one tile: a face material over two leaves the body's material as it is, and
    the warnings say so without first saying the face was matched to the body's skin (the skin
    running on into Hands was decided and said before the tiles were looked at)."""
    params = _daz_like(tmp_path, files, legs=False, face_tiles=2)
    result = generator.generate(params)
    warnings = result["report"]["warnings"]
    assert len(result.get("tiles", {})) == 2 and "body_texture" not in result
    assert any("'Torso' was not matched to the face" in w for w in warnings), warnings
    assert not any("runs on from" in w for w in warnings), warnings
    # The materials left are named (a full-body mesh's head part alone held none: "'' (0 triangles)").
    assert any("was textured: 'Torso', 'Hands' (" in w for w in warnings), warnings
