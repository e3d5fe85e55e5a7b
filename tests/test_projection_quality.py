"""No smears, no background, a clean chin and neck (issue 10, items 2 and 5).

The projection weighs each surface point by how stretched the photo is over it (not by the normal's
angle alone), keeps skin outside the face outline to skin regions connected to the face, and the
classic inpaint fills the rest with grain drawn on the surface. Measured on planes seen at known
angles, on a synthetic photo with a wall, a collar and a detached skin-coloured patch, on ground
truth rendered over a photograph, and on the demo head with a real portrait.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from testing_paths import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from avatartex.camera import Camera  # noqa: E402
from avatartex.projection import (  # noqa: E402
    OCCLUSION_FEATHER,
    STRETCH_FULL,
    STRETCH_NONE,
    STRETCH_SOFT,
    feather_occlusions,
    footprint_stretch,
    keep_narrow_stretch,
    prepare_view,
    project_surface,
    read_softly,
    sampling_weight,
    skin_regions,
    stretch_weight,
)

IOD = 60.0
"""The synthetic portraits' eye distance, pixels."""


def identity(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64).copy()


def portrait_camera(size: int = 512) -> Camera:
    return Camera.look_at(
        np.array([0.0, 0.0, 10.0]), np.zeros(3), np.array([0.0, 1.0, 0.0]), 20.0, size, size
    )


def tilted_plane(degrees: float, cells: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 2 x 2 square through the origin, turned ``degrees`` about the vertical axis away from a
    camera on +z: positions, triangles, its normal, and the points of its inner half."""
    a = np.radians(degrees)
    u = np.linspace(-1, 1, cells + 1)
    gx, gy = np.meshgrid(u, u)
    flat = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], axis=1)
    turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    idx = np.arange((cells + 1) ** 2).reshape(cells + 1, cells + 1)
    quads = np.stack([idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]], axis=-1).reshape(-1, 4)
    triangles = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]]).astype(np.int32)
    inner = flat[np.abs(flat).max(axis=1) <= 0.5]
    return flat @ turn.T, triangles, turn @ np.array([0.0, 0.0, 1.0]), inner @ turn.T


def view_of(positions: np.ndarray, triangles: np.ndarray, registration, size: int = 512):
    """A portrait view of a mesh over a plain skin-coloured photo whose face outline is the whole frame."""
    image = np.empty((size, size, 3), np.float32)
    image[:] = (0.78, 0.58, 0.48)
    frame = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float64)
    return prepare_view(image, positions, triangles, registration, frame, None, 1.0, person=None)


# --- stretch ------------------------------------------------------------------------------------------


def test_stretch_is_one_over_the_cosine_for_a_pinhole_and_infinite_facing_away() -> None:
    registration = SimpleNamespace(camera=portrait_camera(), warp=identity)
    points = np.zeros((1, 3))
    for degrees in (0, 30, 60, 75, 85):
        a = np.radians(degrees)
        stretch = footprint_stretch(registration, points, np.array([[np.sin(a), 0.0, np.cos(a)]]))
        assert stretch[0] == pytest.approx(1 / np.cos(a), rel=1e-3)
    away = footprint_stretch(registration, points, np.array([[0.0, 0.0, -1.0]]))
    assert np.isinf(away[0])


def test_an_oblique_plane_gets_confidence_in_proportion_to_its_stretch() -> None:
    """Planes turned away from the camera: the confidence of their inner points is the stretch
    weight of 1 / cos (the photo smeared that much), falling as they turn, none from 72 degrees."""
    registration = SimpleNamespace(camera=portrait_camera(), warp=identity, interocular=IOD)
    previous = 1.0
    for degrees in (0, 40, 55, 62, 68, 75, 82):
        positions, triangles, normal, inner = tilted_plane(degrees)
        view = view_of(positions, triangles, registration)
        projected = project_surface(view, registration, inner, np.repeat(normal[None], len(inner), 0))
        expected = stretch_weight(1 / np.cos(np.radians(degrees)))
        confidence = float(np.median(projected.confidence))
        assert confidence == pytest.approx(float(expected), abs=0.08), degrees
        assert confidence <= previous + 1e-6
        assert float(np.median(projected.usable)) > 0.95  # seen, skin, away from the edge: only stretch
        previous = confidence
        if 1 / np.cos(np.radians(degrees)) >= STRETCH_NONE:
            assert projected.confidence.max() < 0.05


def test_a_warp_that_squeezes_the_photo_counts_as_stretch() -> None:
    """A plane facing the camera, but a registration warp that squeezes it 3:1 in the photo: the
    photo is as smeared as on a plane turned 70 degrees, and gets as little confidence."""
    squeeze = SimpleNamespace(
        camera=portrait_camera(), warp=lambda p: (np.asarray(p) - 256) * [1 / 3, 1] + 256, interocular=IOD
    )
    positions, triangles, normal, inner = tilted_plane(0)
    view = view_of(positions, triangles, squeeze)
    projected = project_surface(view, squeeze, inner, np.repeat(normal[None], len(inner), 0))
    assert np.median(projected.stretch) == pytest.approx(3.0, rel=0.05)
    assert projected.confidence.max() <= float(stretch_weight(2.9)) + 1e-6


def bent(points: np.ndarray) -> np.ndarray:
    """A smooth warp that bends the photo by up to ten pixels, as a registration's warp may."""
    p = np.asarray(points, np.float64)
    return p + 10.0 * np.stack([np.sin(p[:, 1] / 90.0), np.cos(p[:, 0] / 70.0)], axis=1)


def test_the_projection_reads_the_warp_and_the_camera_as_they_are() -> None:
    """``project_surface`` reads the warp from a table (``warp_table``) in its compiled pass: its
    portrait coordinates are the camera's projection through the warp itself, to a fraction of a
    pixel, and its facing is the cosine of the viewing angle."""
    registration = SimpleNamespace(camera=portrait_camera(), warp=bent, interocular=IOD)
    positions, triangles, normal, inner = tilted_plane(30, cells=80)
    view = view_of(positions, triangles, registration)
    projected = project_surface(view, registration, inner, np.repeat(normal[None], len(inner), 0))
    expected = bent(registration.camera.project(inner)[0])
    assert np.isfinite(projected.coords).all()
    assert np.abs(projected.coords - expected).max() < 0.05
    to_camera = registration.camera.center - inner
    cos = to_camera @ normal / np.linalg.norm(to_camera, axis=1)
    np.testing.assert_allclose(projected.facing, cos, atol=1e-5)


def test_the_skin_weight_is_read_between_the_photos_pixels() -> None:
    """The skin map is sampled bilinearly, not by nearest pixel: over a map that rises linearly
    across the photo, the points of a plane read the rise itself, without a pixel's steps (a
    photo pixel stretched over a jaw turning away made each step a staircase in the atlas)."""
    registration = SimpleNamespace(camera=portrait_camera(), warp=identity, interocular=IOD)
    positions, triangles, normal, inner = tilted_plane(0, cells=80)
    view = view_of(positions, triangles, registration)
    size = view.skin.shape[1]
    ramp = np.broadcast_to((np.arange(size, dtype=np.float32) + 0.5) / size, view.skin.shape)
    view.skin = np.ascontiguousarray(ramp)
    projected = project_surface(view, registration, inner, np.repeat(normal[None], len(inner), 0))
    assert np.isfinite(projected.coords).all()
    np.testing.assert_allclose(projected.usable, projected.coords[:, 0] / size, atol=1e-4)


def test_a_skin_regions_border_follows_a_slanted_edge_not_the_pixel_grid() -> None:
    """Skin below a gently slanted line, rasterised: the weight's half level runs straight along the
    line (within a tenth of a pixel), not in the pixel grid's steps."""
    h, w = 120, 240
    rows, cols = np.mgrid[0:h, 0:w] + 0.5
    line = 40.0 + 0.15 * cols
    likelihood = (rows > line).astype(np.float32)
    face = np.zeros((h, w), bool)
    face[100:, 100:140] = True
    weight = skin_regions(likelihood, face, None, IOD)
    crossings = []
    for c in range(20, w - 20):
        column = weight[:, c]
        r = int(np.argmax(column >= 0.5))
        t = (0.5 - column[r - 1]) / (column[r] - column[r - 1])
        crossings.append(r - 1 + t + 0.5)
    x = np.arange(20, w - 20) + 0.5
    fit = np.polyval(np.polyfit(x, crossings, 1), x)
    assert np.std(np.asarray(crossings) - fit) < 0.1
    assert weight[likelihood == 0].max() == 0.0


def test_narrow_steep_walls_keep_the_photo_wide_stretched_regions_do_not() -> None:
    weight = np.ones((96, 128), np.float32)
    weight[20:70, 30:34] = 0.0  # a wall 4 texels wide (the side of a nostril)
    weight[20:70, 60:110] = 0.0  # the side of the head
    kept = keep_narrow_stretch(weight, 96, 4)
    assert kept[30:60, 30:34].min() == 1.0
    assert kept[30:60, 70:100].max() == 0.0
    assert np.array_equal(kept[weight == 1], weight[weight == 1])


def test_the_photo_fades_in_from_what_the_mesh_hides_instead_of_stepping() -> None:
    """Texels beside ones the camera faces but cannot see (behind the chin, a nose's wing) ramp up
    over OCCLUSION_FEATHER eye distances; texels far from any stay as they were."""
    geometry = SimpleNamespace(layout=SimpleNamespace(face_texels_per_iod=200.0))
    confidence = np.ones((64, 160), np.float32)
    occluded = np.zeros((64, 160), bool)
    occluded[:, :20] = True  # hidden: the photo gives them nothing
    confidence[occluded] = 0.0
    out = feather_occlusions(confidence, occluded, geometry)
    ramp = out[32, 20:40]
    reach = OCCLUSION_FEATHER * 200.0  # 6 texels
    assert 0 < ramp[0] < 0.2 and np.all(np.diff(ramp) >= 0)
    assert ramp[int(reach) + 1 :].min() == 1.0 and out[:, 40:].min() == 1.0
    assert (out[occluded] == 0).all()
    assert np.array_equal(feather_occlusions(confidence, np.zeros_like(occluded), geometry), confidence)


def test_a_stretched_texel_reads_the_photos_colour_not_its_detail() -> None:
    """Fine stripes in the photo: a texel seen head-on reads them as they are, one seen at a grazing
    angle (stretched beyond STRETCH_SOFT) their mean, one between a blend."""
    from avatartex.imaging import sample_image

    portrait = np.zeros((200, 200, 3), np.float32)
    portrait[:, ::4] = 1.0  # stripes a pixel wide, every four: mean 0.25
    portrait[:, 1::4] = 0.5
    coords = np.array([[100.5, 100.5]] * 3 + [[np.nan, np.nan]], np.float32)
    stretch = np.array([1.0, 0.5 * (STRETCH_FULL + STRETCH_SOFT), STRETCH_SOFT + 0.1, np.inf], np.float32)
    sharp = sample_image(portrait, np.nan_to_num(coords))
    out = read_softly(portrait, coords, stretch, sharp, interocular=IOD)
    assert np.array_equal(out[0], sharp[0]) and sharp[0, 0] == 1.0
    assert abs(out[2, 0] - 0.375) < 0.03  # the stripes' mean
    assert min(sharp[1, 0], out[2, 0]) < out[1, 0] < max(sharp[1, 0], out[2, 0])
    assert np.array_equal(out[3], sharp[3])  # unseen: left alone


def test_an_atlas_that_cannot_hold_the_photo_gets_no_weight() -> None:
    """Where one atlas step spans 6 photo pixels one way and half a pixel the other (the photo's
    neck on the bottom rows of an atlas cap), the photo would be baked as streaks."""
    rows, cols = np.mgrid[0:64, 0:64].astype(np.float32)
    chart = np.ones((64, 64), np.uint8)
    fine = np.stack([0.5 * cols, 0.5 * rows], -1)
    coarse = np.stack([0.5 * cols, 6.0 * rows], -1)
    assert sampling_weight(fine, chart, 64)[2:-2, 2:-2].min() == 1.0
    assert sampling_weight(coarse, chart, 64)[2:-2, 2:-2].max() == 0.0
    large_photo = np.stack([3.0 * cols, 3.5 * rows], -1)  # coarse both ways: the bake adds the detail
    assert sampling_weight(large_photo, chart, 64)[2:-2, 2:-2].min() == 1.0


# --- skin regions ---------------------------------------------------------------------------------------


def test_skin_outside_the_face_is_a_region_connected_to_it_inside_the_person() -> None:
    """A face, its neck, a white collar across the neck, a mole on the neck; a skin-coloured wall
    patch apart from the face; a skin-coloured strip joined to the neck that the segmentation calls
    background. Only the neck and the mole are skin, and never next to the collar."""
    skin, wall, collar = (0.80, 0.60, 0.50), (0.35, 0.45, 0.70), (0.95, 0.95, 0.95)
    image = np.empty((240, 240, 3), np.float32)
    image[:] = wall
    cv2.circle(image, (120, 80), 45, skin, -1)
    image[110:230, 95:145] = skin  # the neck
    image[190:200, 80:160] = collar
    image[150:154, 118:122] = (0.45, 0.30, 0.25)  # a mole
    image[15:45, 10:40] = skin  # a skin-coloured patch of wall, apart from the face
    image[165:175, 145:235] = skin  # joined to the neck, but background
    person = np.zeros((240, 240), np.float32)
    cv2.circle(person, (120, 80), 52, 1.0, -1)
    person[100:240, 85:155] = 1.0
    person[10:50, 5:45] = 1.0  # the segmentation is fooled by the patch: connectivity is not
    face = np.zeros((240, 240), np.uint8)
    cv2.circle(face, (120, 80), 40, 1, -1)
    face = face.astype(bool)
    from avatartex.projection import skin_likelihood

    likelihood = skin_likelihood(image, face)
    weight = skin_regions(likelihood, face, person, IOD)
    assert weight[130:145, 105:135].min() == 1.0  # the neck
    assert weight[151, 119] > 0.5  # the mole is skin
    assert weight[15:45, 10:40].max() == 0.0  # detached patch
    assert weight[165:175, 160:235].max() == 0.0  # background strip
    assert weight[189:201, 80:160].max() == 0.0  # the collar and the pixel next to it
    assert weight[204:230, 100:140].max() == 0.0  # below the collar: no longer joined to the face
    assert weight[:, :80][image[:, :80, 2] > 0.6].max() == 0.0  # the wall


def test_a_black_collar_is_no_dark_skin() -> None:
    """Under a dark skin's face the lightness band of the skin model reached down to black: the
    astronaut's black collar, her skin darkened (CIELAB L* x 0.38, chroma x 1.35: L* 29), read 0.56
    skin, and the demo head's neck came out near-black. Black is no skin under any face; the dark
    face's own skin still is; a light face's model is as it was."""
    from avatartex.face import FACE_OVAL, default_landmarker
    from avatartex.imaging import from_lab, to_lab
    from avatartex.projection import polygon_mask, skin_likelihood
    from classic_fixtures import astronaut

    photo = astronaut()
    face = max(default_landmarker().detect(photo), key=lambda f: f.size)
    inside = polygon_mask(photo.shape[:2], face.landmarks[list(FACE_OVAL)], grow=-0.1)
    lab = to_lab(photo)
    skin_like = polygon_mask(photo.shape[:2], face.landmarks[list(FACE_OVAL)], grow=0.05) & (lab[..., 0] > 40)
    dark = lab.copy()
    dark[skin_like, 0] *= 0.38
    dark[skin_like, 1:] *= 1.35
    dark = np.clip(from_lab(dark), 0.0, 1.0).astype(np.float32)
    chin = face.landmarks[152]
    rows, cols = np.mgrid[0 : photo.shape[0], 0 : photo.shape[1]]
    below = (rows > chin[1] + 0.4 * face.interocular) & (np.abs(cols - chin[0]) < 0.8 * face.interocular)
    collar = below & (lab[..., 0] < 8.0)
    assert collar.sum() > 500, int(collar.sum())
    light, darkened = skin_likelihood(photo, inside), skin_likelihood(dark, inside)
    assert darkened[collar].mean() < 0.05, float(darkened[collar].mean())
    assert np.median(darkened[inside]) > 0.9 and light[collar].mean() < 0.05


# --- ground truth: the background never reaches a seen texel ---------------------------------------------


@pytest.fixture(scope="module")
def generator():
    from avatartex.pipeline import Generator

    return Generator()


def _tap_projection(monkeypatch) -> dict:
    from avatartex.pipeline import steps

    seen: dict = {}
    project = steps.project

    def tapped(*args, **kwargs):
        seen["projection"] = project(*args, **kwargs)
        return seen["projection"]

    monkeypatch.setattr(steps, "project", tapped)
    return seen


@pytest.mark.parametrize(
    "head_name, yaw, pitch, light, photo",
    [("demo", 0.0, 4.0, "front", "rocket"), ("scan", 20.0, -10.0, "side", "chelsea")],
)
def test_ground_truth_over_a_photograph_puts_no_background_on_seen_texels(
    generator, tmp_path, monkeypatch, head_name, yaw, pitch, light, photo
) -> None:
    """A head with a known skin rendered over a photograph (a rocket launch; a cat, whose orange fur
    is skin-like) from a known camera: no texel the projection trusts reads a background pixel, not
    even with one of its four bilinear taps (before this, 0.001-0.07 % did, and 0.1-0.3 % with a tap)."""
    import groundtruth as gt
    import look
    from avatartex.image_io import save_png
    from avatartex.protocol import GenerateParams

    if head_name == "scan":
        head = gt.load_scan()
        if head is None:
            pytest.skip("../shared absent: the scanned head is not there")
    else:
        head = gt.demo_head()
    tapped = _tap_projection(monkeypatch)
    surface = gt.texel_surface(head, 512)
    truth = gt.truth_texture(head, surface, "blotches", 1)
    camera = gt.portrait_camera(head, yaw, pitch, 0.0, 30.0, 768, 768, 0.65, (0.2, 0.0))
    lights, ambient = gt.lights_for(light, yaw, False)
    background = look.photo_background(photo, 768, 768)
    render = gt.render_portrait(head, truth, camera, lights, ambient, background)
    portrait = save_png(tmp_path / "portrait.png", render.image)
    mesh = head.path or gt.write_capture(head, gt.placement("none", head), tmp_path / "head.npz")
    params = GenerateParams(mesh=str(mesh), portrait=str(portrait), out_dir=str(tmp_path / "out"), size=512)
    generator.generate(params)
    projection = tapped["projection"]
    share, any_tap, weighted, seen = look.background_share(
        render, projection.portrait_coords, projection.partial.confidence, 1.0
    )
    assert seen > 20_000
    assert share == 0.0
    assert any_tap == 0.0
    assert weighted < 1e-5


# --- chin and neck ------------------------------------------------------------------------------------------


def test_demo_head_chin_has_no_hard_seam_and_the_unseen_neck_has_the_face_tone(
    generator, grace_hopper_path, tmp_path, monkeypatch
) -> None:
    """Grace Hopper on the demo head: below the mouth, where the photo's confidence ends, the colour
    steps by a few ΔE at most (it fades out; before this it stepped by 8, the pale wedge); the filled
    neck and every filled texel have about the seen face's tone."""
    import look
    from avatartex.demo_head import make_demo_head
    from avatartex.mesh import Mesh, save_capture
    from avatartex.pipeline import steps
    from avatartex.protocol import GenerateParams

    for name in ("project", "bake_texture"):  # the tap replaces them: restored after the test
        monkeypatch.setattr(steps, name, getattr(steps, name))
    tap = look.Tap()
    positions, triangles, uvs, pins = make_demo_head()
    mesh = tmp_path / "demo.npz"
    save_capture(Mesh(positions, triangles, uvs, None, pins, "DemoHead"), mesh)
    params = GenerateParams(mesh=str(mesh), portrait=str(grace_hopper_path), out_dir=str(tmp_path), size=512)
    generator.generate(params)
    seam, neck, unseen = look.chin_and_neck(
        tap.atlas, tap.geometry, tap.head, tap.projection.partial.confidence
    )
    assert seam < 6.0
    assert neck < 6.0
    assert unseen < 6.0


# --- what the atlas cannot hold ------------------------------------------------------------------------


def test_a_busts_neck_and_chest_that_the_atlas_cannot_hold_take_the_photo(
    generator, tmp_path, monkeypatch
) -> None:
    """The scanned bust seen from the front and a little above, with the true camera: a third of the
    texels the camera sees (the neck under the chin, the chest) are surfaces the head atlas does not
    hold. Filled from their neighbours in UV space they were flat skin where the photo shows a
    pattern; read from the photo on their own surface (``steps.photo_outside_atlas``), as far as the
    photo backs the atlas's texels around them, they take some of the true pattern, lose nothing, and
    none of them reads the background. (Uncapped they reached 0.80 and +6 dB here, but brought a real
    photo's dropped neck back as a patch on the throat: bench/look.py, Grace Hopper.) The skin grain
    the bake gives those texels where the photo is not put (``bake._grain_where_hidden``) is left
    out here: it is noise the truth does not have, which lowers the fine correlation of both
    textures alike (0.25 -> 0.07 with the photo) and says nothing of what the photo brings."""
    import groundtruth as gt
    import look
    from avatartex import bake as bake_module
    from avatartex.bake import surface_in_atlas
    from avatartex.image_io import load_texture, save_png
    from avatartex.pipeline import steps
    from avatartex.protocol import GenerateParams

    head = gt.load_scan()
    if head is None:
        pytest.skip("../shared absent: the scanned head is not there")
    size = 512
    surface = gt.texel_surface(head, size)
    truth = gt.truth_texture(head, surface, "blotches", 3)
    camera = gt.portrait_camera(head, 10.0, 12.0, 0.0, 30.0, 768, 768, 0.5, (0.0, 0.0))
    lights, ambient = gt.lights_for("top", 10.0, False)
    background = look.photo_background("rocket", 768, 768)
    render = gt.render_portrait(head, truth, camera, lights, ambient, background)
    portrait = save_png(tmp_path / "portrait.png", render.image)
    # monkeypatch, not an assignment: the module's other tests share this generator.
    monkeypatch.setattr(
        generator, "register", lambda model, face, *rest, **kwargs: gt.true_registration(camera, model, face)
    )
    found = {}

    def tapped(surface_, geometry, *args):
        photo = photo_outside_atlas(surface_, geometry, *args)
        found["photo"], found["hidden"] = photo, surface_in_atlas(geometry, surface_)[1]
        return photo

    photo_outside_atlas = steps.photo_outside_atlas
    monkeypatch.setattr(steps, "photo_outside_atlas", tapped)
    monkeypatch.setattr(bake_module, "_grain_where_hidden", lambda *args: None)

    def texture(name: str) -> np.ndarray:
        params = GenerateParams(
            mesh=str(head.path), portrait=str(portrait), out_dir=str(tmp_path / name), size=size
        )
        return load_texture(generator.generate(params)["texture"])[..., :3]

    with_photo = texture("with")
    hidden = np.zeros(surface.mask.shape, bool)
    hidden[surface.mask] = found["hidden"]
    seen = gt.seen_texels(head, surface, render) & hidden
    assert seen.sum() > 0.2 * gt.seen_texels(head, surface, render).sum()  # the case is the one meant
    photo = found["photo"]
    share, any_tap, _, _ = look.background_share(
        render, photo.coords[:, None, :], photo.confidence[:, None], 1.0
    )
    assert share == 0.0 and any_tap == 0.0

    monkeypatch.setattr(steps, "photo_outside_atlas", lambda *args: None)
    filled = texture("without")
    fine = [gt.fine_correlation(t, truth, surface.mask, seen) for t in (filled, with_photo)]
    psnr = [gt.psnr_visible(t, truth, seen) for t in (filled, with_photo)]
    assert fine[1] > fine[0] + 0.1, (fine, psnr)  # -0.00 -> 0.25
    assert psnr[1] > psnr[0] - 0.1, psnr  # 23.8 -> 23.9 dB: the tone is the fill's (bake._put_photo)


def test_a_chest_joined_to_the_photo_backed_neck_takes_the_photo_whole(tmp_path, monkeypatch) -> None:
    """bench/sweep.py's r019 (the scanned bust turned 11° under two lights, blotched skin): its chest,
    which the head atlas does not hold, is joined in the UV map to the neck's front, which the atlas
    holds and the photo backs. Read from the photo on its own surface, it took the photo only as far
    as the atlas's confidence was carried into it by the fill (a few hundredths a few texels in);
    joined (``steps._joined``), it takes the photo whole: on the seen texels the
    atlas does not hold, the fine band's correlation with the truth 0.47 -> 0.77, PSNR 25.4 -> 26.5 dB
    (fading in over ``steps.JOINED_FADE`` from the joined patch's edge: without it 27.2 dB, and a dark
    ragged rim across the lower chest in the front view).
    A reading cut off from the backed atlas (Grace Hopper's throat under her collar) joins nothing:
    ``test_a_busts_neck_the_atlas_cannot_hold_has_the_skins_grain_not_a_smooth_patch``."""
    import groundtruth as gt
    import sweep
    from avatartex import bake as bake_module
    from avatartex.memo import Memo
    from avatartex.pipeline import steps

    scan = gt.load_scan()
    if scan is None:
        pytest.skip("../shared absent: the scanned head is not there")
    # r019 (the case this was found on) joins or not as the registration moves by a few thousandths
    # of an eye distance (its neck's photo confidence at the atlas's edge sits near
    # JOINED_CONFIDENCE): r069, the scanned bust under a light from below, joins either way
    # (fine band 0.18 -> 0.32, PSNR 24.64 -> 24.76 dB at session 36's registration).
    case = next(c for c in sweep.plan(False, True, 8, None) if c.id == "r069")
    # The sweep's registration tap wraps steps.register_portrait for good: put it back afterwards.
    monkeypatch.setattr(steps, "register_portrait", steps.register_portrait)
    runner = sweep.Sweep(tmp_path, scan, 96, 72)
    monkeypatch.setattr(bake_module, "_grain_where_hidden", lambda *args: None)  # noise, not the photo
    found = {"joined": []}
    joined_to = steps._joined

    def tapped(surface, backed, cells, through):
        out = joined_to(surface, backed, cells, through)
        found["joined"].append(out.mean())
        found["cells"] = cells if through.all() else found.get("cells")
        return out

    monkeypatch.setattr(steps, "_joined", tapped)
    _, joined = runner.run(case)
    assert found["joined"][-1] > 0.1  # the case is the one meant: much of what is read joins
    monkeypatch.setattr(steps, "_joined", lambda surface, backed, cells, through: np.zeros(len(cells), bool))
    runner.generator.memo = Memo()  # what the first run read is kept by its inputs, not by the code
    _, carried = runner.run(case)
    surface, truth = joined["surface"], joined["truth"]
    hidden = np.zeros(surface.mask.size, bool)
    hidden[found["cells"]] = True  # every texel the atlas does not hold (the first join's cells)
    seen = joined["visible"] & hidden.reshape(surface.mask.shape)
    fine = [gt.fine_correlation(x["produced"], truth, surface.mask, seen) for x in (carried, joined)]
    psnr = [gt.psnr_visible(x["produced"], truth, seen) for x in (carried, joined)]
    assert fine[1] > fine[0] + 0.1, (fine, psnr)
    assert psnr[1] > psnr[0], psnr


def test_a_busts_neck_the_atlas_cannot_hold_has_the_skins_grain_not_a_smooth_patch(
    generator, grace_hopper_path, tmp_path, monkeypatch
) -> None:
    """Grace Hopper on the scanned bust: the texels the head atlas does not hold (the neck under the
    chin, the top of the chest: a quarter of its texels) were filled smoothly from their neighbours in
    UV space, a hard-edged smooth wedge beside the atlas's grainy skin in the side view (their fine
    band 0.00 of the skin's beside them). They now have grain as strong as the skin's beside them,
    with the same tone at any scale coarser than the grain, and nothing else in the texture moves."""
    import groundtruth as gt
    from avatartex import bake as bake_module
    from avatartex.image_io import load_texture
    from avatartex.protocol import GenerateParams
    from scipy.ndimage import distance_transform_edt

    head = gt.load_scan()
    if head is None:
        pytest.skip("../shared absent: the scanned head is not there")
    found = {}
    grain = bake_module._grain_where_hidden

    def tapped(texture, geometry, surface, hidden_mask, photo, *eyes):
        found["hidden"], found["covered"] = hidden_mask.copy(), surface.mask.copy()
        grain(texture, geometry, surface, hidden_mask, photo, *eyes)

    def texture(name: str) -> np.ndarray:
        params = GenerateParams(
            mesh=str(head.path), portrait=str(grace_hopper_path), out_dir=str(tmp_path / name), size=512
        )
        return load_texture(generator.generate(params)["texture"])[..., :3].astype(np.float32)

    monkeypatch.setattr(bake_module, "_grain_where_hidden", tapped)
    grainy = texture("grain")
    monkeypatch.setattr(bake_module, "_grain_where_hidden", lambda *args: None)
    smooth = texture("smooth")
    hidden, covered = found["hidden"], found["covered"]
    held = covered & ~hidden
    assert hidden.sum() > 0.15 * covered.sum()  # the case is the one meant
    assert np.array_equal(grainy[held], smooth[held])

    def spread(image: np.ndarray, where: np.ndarray) -> float:
        band = gt.fine_band(image, covered)[where]
        return float(1.4826 * np.median(np.abs(band - np.median(band))))

    beside = held & (distance_transform_edt(~hidden) <= 16)
    inside = hidden & (distance_transform_edt(~held) > 8)
    skin = spread(grainy, beside)
    assert spread(smooth, inside) < 0.1 * skin  # the smooth patch it was
    assert 0.4 * skin < spread(grainy, inside) < 2.0 * skin
    coarse = [cv2.GaussianBlur(t, (0, 0), 6.0)[inside] for t in (grainy, smooth)]
    assert np.abs(coarse[0] - coarse[1]).mean() < 1.0 / 255  # grain, not a change of tone


def test_a_cel_shadow_on_a_busts_neck_follows_the_neck_not_the_atlas_edge(
    generator, astronaut_path, tmp_path, monkeypatch
) -> None:
    """The anime style on the scanned bust: its cel shadow under the jaw is drawn in the atlas, and the
    texels the atlas cannot hold (the neck under the chin) were filled from their neighbours in UV
    space, which smeared the shadow into a gradient of tones between the skin and the shadow down
    the throat (a flat style has two: 58 % of those texels were in neither). Filled from the
    shadowed and the lit neighbours apart, each as far as the shadow falls on the texel's own
    normal, they keep the style's two tones."""
    import groundtruth as gt
    from avatartex import bake as bake_module
    from avatartex.image_io import load_texture
    from avatartex.imaging import to_lab
    from avatartex.protocol import GenerateParams

    head = gt.load_scan()
    if head is None:
        pytest.skip("../shared absent: the scanned head is not there")
    found = {}
    fill_hidden = bake_module._fill_hidden

    def tapped(texture, weights, hidden_mask, *args):
        found["hidden"], found["held"] = hidden_mask.copy(), weights > 0
        found["shadow"] = args[-1]
        fill_hidden(texture, weights, hidden_mask, *args)

    def texture(name: str) -> np.ndarray:
        params = GenerateParams(
            mesh=str(head.path),
            portrait=str(astronaut_path),
            out_dir=str(tmp_path / name),
            size=512,
            style="anime",
        )
        return load_texture(generator.generate(params)["texture"])[..., :3].astype(np.float32)

    monkeypatch.setattr(bake_module, "_fill_hidden", tapped)
    styled = texture("shadow")
    assert found["shadow"] is not None  # the style handed its shadow to the bake
    monkeypatch.setattr(bake_module, "_fill_hidden", lambda *args: fill_hidden(*args[:-1], None))
    smeared = texture("smeared")
    hidden, held = found["hidden"], found["held"]
    lab = to_lab(styled[held])
    quantised = np.round(lab / 2.0).astype(np.int32)
    tones, counts = np.unique(quantised, axis=0, return_counts=True)
    two = tones[np.argsort(counts)[-2:]] * 2.0  # the style's skin and shadow tones

    def between(image: np.ndarray) -> float:
        """Share of the hidden texels in neither tone (CIELAB distance over 4 from both)."""
        distance = np.linalg.norm(to_lab(image[hidden])[:, None, :] - two[None], axis=2).min(axis=1)
        return float((distance > 4.0).mean())

    # 0.58 of the smear it was, while the atlas's cavity read the band's edge under the ears as a
    # fold (a shadow band down to the edge: ``repaint._cavity``); 0.09 since it is the mesh's own.
    assert between(smeared) > 0.025  # 0.04-0.09 as the landmarks have been read
    assert between(styled) < 0.5 * between(smeared) and between(styled) < 0.05  # 0.007


# --- what the camera burnt out --------------------------------------------------------------------------


def test_skin_the_camera_burnt_out_is_no_skin_but_eye_whites_and_an_overexposed_face_are() -> None:
    """``burnt_out``: a clipped highlight inside the face outline is taken out of the skin, grown by
    its glow's reach; a white inside the eyes' and lips' mask is kept (eye whites, teeth); and where
    more than ``BURNT_MAX_SHARE`` of the face is white (an overexposed photo) nothing is taken."""
    from avatartex.projection import BURNT_MAX_SHARE, burnt_out

    image = np.full((200, 200, 3), (0.8, 0.6, 0.5), np.float32)
    outline = np.zeros((200, 200), bool)
    outline[40:160, 50:150] = True
    features = np.zeros((200, 200), bool)
    features[60:70, 70:90] = True
    cv2.circle(image, (120, 120), 5, (1.0, 0.97, 0.96), -1)  # a highlight on the cheek
    image[62:68, 75:85] = 1.0  # an eye white
    burnt = burnt_out(image, outline, features, IOD)
    assert burnt[120, 120] == 1.0 and burnt[120, 126] > 0.5  # the glow round it too
    assert burnt[120, 135] == 0.0 and burnt[65, 80] == 0.0 and burnt[100, 20] == 0.0
    over = image.copy()
    over[40 : 40 + int(1.2 * BURNT_MAX_SHARE * 120), 50:150] = 1.0
    assert not burnt_out(over, outline, features, IOD).any()


def test_a_clipped_highlight_is_filled_from_the_skin_around(generator, astronaut, tmp_path) -> None:
    """The astronaut on the demo head: where her photo's cheek highlight clipped (0.98/0.94/0.93),
    the texels read there lose the photo's confidence and take the skin's colour from around (it
    was a pale blue-grey spot); the photo there was near white."""
    import look
    from avatartex.demo_head import make_demo_head
    from avatartex.face import FACE_OVAL, LEFT_EYE_CONTOUR, LIPS_OUTER, RIGHT_EYE_CONTOUR
    from avatartex.image_io import save_png
    from avatartex.mesh import Mesh, save_capture
    from avatartex.pipeline import steps
    from avatartex.projection import polygon_mask
    from avatartex.protocol import GenerateParams

    originals = steps.project, steps.bake_texture
    tap = look.Tap()
    try:
        positions, triangles, uvs, pins = make_demo_head()
        mesh = tmp_path / "demo.npz"
        save_capture(Mesh(positions, triangles, uvs, None, pins, "DemoHead"), mesh)
        photo = save_png(tmp_path / "astronaut.png", astronaut)
        generator.generate(
            GenerateParams(mesh=str(mesh), portrait=str(photo), out_dir=str(tmp_path), size=1024)
        )
    finally:
        steps.project, steps.bake_texture = originals
    coords, conf = tap.projection.portrait_coords, tap.projection.partial.confidence
    face = generator.landmarker.detect(astronaut)[0]
    oval = polygon_mask(astronaut.shape[:2], face.landmarks[list(FACE_OVAL)], grow=-0.15)
    for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR, LIPS_OUTER):  # eye whites and teeth are white
        oval &= ~polygon_mask(oval.shape, face.landmarks[list(contour)], grow=0.3)
    seen = np.isfinite(coords[..., 0]) & tap.geometry.face
    xy = np.round(coords[seen]).astype(int)
    rows, cols = xy[:, 1].clip(0, 511), xy[:, 0].clip(0, 511)
    on_highlight = (astronaut[rows, cols].min(axis=1) > 0.92) & oval[rows, cols]  # at 1024: 20 texels
    assert on_highlight.sum() >= 10, on_highlight.sum()
    assert float(np.median(conf[seen][on_highlight])) < 0.1
    linear = np.power(np.clip(tap.atlas[..., :3], 1e-4, 1.0), 2.2)
    paleness = linear.min(axis=-1) / linear.max(axis=-1)
    skin = seen & (conf > 0.9)
    assert np.median(paleness[seen][on_highlight]) < np.median(paleness[skin]) + 0.08
