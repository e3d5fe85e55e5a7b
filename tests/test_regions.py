"""The scalp (skin or the photo's hair), the eyes and the mouth (``regions.py``), on the scanned head
with real portraits: what an artist looks at on the crown, the back of the head, the eyes and lips."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from avatartex import regions
from avatartex.atlas import CROWN, directions
from avatartex.face import FOREHEAD, LIPS_INNER, LIPS_OUTER, MOUTH_LEFT, MOUTH_RIGHT, analyse_portrait
from avatartex.image_io import load_texture, save_png
from avatartex.imaging import luminance
from avatartex.pipeline import Generator, steps
from avatartex.protocol import GenerateParams
from avatartex.styles import list_styles
from testing_paths import require_scanned_head

SIZE = 512
"""Texture and atlas edge of these tests (the atlas is 512 for a 512 texture)."""


def delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIE76 colour difference of Lab values (..., 3)."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)


@pytest.fixture(scope="module")
def generator():
    return Generator()


@pytest.fixture(scope="module")
def head_path():
    return str(require_scanned_head())


@pytest.fixture(scope="module")
def state(generator, head_path, astronaut_path):
    """The astronaut projected onto the scanned head: what ``complete_regions`` receives."""
    return projected(generator, head_path, astronaut_path)


@pytest.fixture(scope="module")
def demo_head_path(tmp_path_factory) -> str:
    """The demo head saved as a capture (no ``../shared`` needed)."""
    from avatartex.demo_head import make_demo_head
    from avatartex.mesh import Mesh, save_capture

    path = tmp_path_factory.mktemp("demo") / "demo_head.npz"
    positions, triangles, uvs, pins = make_demo_head()
    save_capture(Mesh(positions, triangles, uvs, None, pins, "DemoHead"), path)
    return str(path)


@pytest.fixture(scope="module")
def demo_state(generator, astronaut_path, demo_head_path):
    """The astronaut projected onto the demo head."""
    return projected(generator, demo_head_path, astronaut_path)


def projected(generator, head_path, portrait_path):
    """The portrait analysed, registered and projected onto the head, and the head's region maps."""
    params = GenerateParams(head_path, str(portrait_path), "unused", size=SIZE, engine="classic")
    analysis = steps.analyse(params, generator.landmarker, generator.heads, lambda f, m: None)
    registration = generator.register(analysis.head, analysis.face, analysis.portrait)
    geometry = analysis.head.atlas(SIZE)
    person = generator.segmenter.mask(analysis.portrait)
    projection = steps.project(
        geometry, analysis.head, analysis.portrait, analysis.face, registration, person
    )
    points3d = analysis.head.landmarks.points3d
    return SimpleNamespace(
        geometry=geometry,
        points3d=points3d,
        portrait=analysis.portrait,
        face=analysis.face,
        person=person,
        registration=registration,
        projection=projection,
        maps=regions.head_regions(geometry, points3d),
    )


def run(state, texture=None, scalp="skin", geometry=None, points3d=None):
    """``complete_regions`` on the state, optionally with another texture, geometry or landmarks."""
    return regions.complete_regions(
        texture or state.projection.partial,
        geometry or state.geometry,
        state.points3d if points3d is None else points3d,
        state.portrait,
        state.face,
        state.person,
        state.registration,
        state.projection.portrait_coords,
        scalp,
        0,
    )


def generate(generator, head_path, portrait, out, **kw):
    """A classic 512 generate; returns the report and the final atlas (``--debug``'s)."""
    params = GenerateParams(head_path, str(portrait), str(out), size=SIZE, engine="classic", debug=True, **kw)
    report = generator.generate(params)["report"]
    return report, load_texture(out / "debug_atlas.png")


def atlas_map(state, values: np.ndarray) -> np.ndarray:
    """(S, S) image of per-texel values of ``state.maps`` (0 elsewhere)."""
    s = state.geometry.size
    image = np.zeros(s * s, values.dtype)
    image[state.maps.index] = values
    return image.reshape(s, s)


def face_skin(state) -> np.ndarray:
    """(S, S) texels of the face's seen skin, away from eyes, brows, nose and lips."""
    zone = regions.feature_zone(state.geometry, state.maps.points_head).astype(np.uint8)
    around = cv2.dilate(zone, np.ones((15, 15), np.uint8)).astype(bool)
    return state.geometry.face & (state.projection.partial.confidence > 0.9) & ~around


def longitude_deg(state) -> np.ndarray:
    """(S, S) longitude of every texel's surface point, degrees from the front (0 off the mesh)."""
    geometry = state.geometry
    head = geometry.frame.to_head(geometry.positions)
    theta, _ = directions(head)
    return np.where(geometry.mask, np.degrees(theta), 0.0)


def height(state) -> np.ndarray:
    """(S, S) head-frame height of every texel's surface point (eye distances)."""
    return state.geometry.frame.to_head(state.geometry.positions)[..., 1]


def landmark_height(state, indices) -> float:
    return float(np.nanmean(state.maps.points_head[list(indices), 1]))


# -- the scalp on the mesh -----------------------------------------------------------------------


def test_every_style_defaults_to_a_clean_scalp():
    assert {style.scalp for style in list_styles()} == {"skin"}


def test_the_scalp_is_the_mesh_above_its_hairline(state):
    """Front: above the forehead's landmark; sides: above the ears; back: down to the nape; with a
    soft edge, and never the face, the ears' lower half or the neck."""
    scalp = atlas_map(state, state.maps.scalp)
    y = height(state)
    theta = np.abs(longitude_deg(state))
    mask = state.geometry.mask
    y_forehead = landmark_height(state, [FOREHEAD])
    y_mouth = landmark_height(state, [MOUTH_LEFT, MOUTH_RIGHT])
    assert (scalp[mask & (y > y_forehead + 0.4)] > 0.99).all()  # the whole top, crown disc included
    assert (scalp[(state.geometry.chart == CROWN) & (y > y_forehead + 0.4)] > 0.99).all()
    assert (scalp[mask & (theta > 160) & (y > y_mouth + 0.7) & (y < y_forehead)] > 0.99).all()  # back
    y_eyes = landmark_height(state, regions.RIGHT_EYE_CONTOUR + regions.LEFT_EYE_CONTOUR)
    assert (scalp[state.geometry.face & (y < y_eyes)] == 0).all()  # the face
    assert (scalp[state.geometry.face & (theta < 20) & (y < y_forehead - 0.2)] == 0).all()  # the forehead
    assert (scalp[mask & (theta > 80) & (theta < 110) & (y < 0.0)] < 0.01).all()  # ears, below the top
    assert (scalp[mask & (y < y_mouth - 0.7)] == 0).all()  # neck and chest
    soft = (scalp > 0.05) & (scalp < 0.95)
    assert soft.sum() > 0.02 * mask.sum()  # a feathered hairline, not a cut


def test_the_hairline_passes_over_the_ears_not_through_them(demo_state):
    """The hairline over the ears came from the face's landmarks alone and cut the demo head's ears
    in half: in scalp=hair their tops were hair (QA). The ears' tops are found on the mesh
    (``regions.ear_top``, from its folds) and the hairline passes over them: no scalp on the ears."""
    state = demo_state
    y_mouth = landmark_height(state, [MOUTH_LEFT, MOUTH_RIGHT])
    y_brow = landmark_height(state, regions.RIGHT_EYEBROW + regions.LEFT_EYEBROW)
    top = regions.ear_top(state.geometry, y_mouth, y_brow)
    assert top is not None and y_brow - 0.5 < top < y_brow + 0.8, (top, y_brow)
    scalp = atlas_map(state, state.maps.scalp)
    y, theta = height(state), np.abs(longitude_deg(state))
    ears = state.geometry.mask & (theta > 75) & (theta < 105) & (y < top) & (y > top - 0.5)
    assert ears.sum() > 100 and scalp[ears].max() < 0.05, scalp[ears].max()


# -- scalp = skin ---------------------------------------------------------------------------------


@pytest.mark.parametrize("portrait_name", ["astronaut_path", "grace_hopper_path"])
def test_a_clean_scalp_takes_the_photos_hair_or_hat_off(
    generator, head_path, state, portrait_name, request, tmp_path
):
    """Astronaut: dark blond hair down to the brows; Grace Hopper: a navy cap with a badge. The crown,
    the back of the head and the front of the scalp are skin of the face's colour, nowhere the hair's."""
    report, atlas = generate(generator, head_path, request.getfixturevalue(portrait_name), tmp_path)
    info = report["regions"]
    assert info["scalp"] == "skin" and "regions" in report["timings"]
    lab = regions.to_lab(atlas)
    scalp = atlas_map(state, state.maps.scalp) > 0.95
    skin = np.median(lab[face_skin(state)], axis=0)
    hair = np.array(info["hair_lab"])
    assert delta_e(hair, skin) > 25  # the photo's hair (or cap) really is unlike its skin
    assert delta_e(lab[scalp].mean(axis=0), skin) < 8.0  # the fill's level is the stages' (5-7 here)
    assert delta_e(lab[scalp], hair).min() > 15.0  # not one scalp texel of the hair's colour


def fringe_on_forehead(state, out) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) the forehead's texels, and those where the projection shows the photo's hair (its
    fringe): confident, within ΔE 12 of the hair colour ``complete_regions`` found (``out``)."""
    lab = regions.to_lab(state.projection.partial.color)
    hair = np.array(out.summary["hair_lab"])
    forehead = state.geometry.face & (height(state) > landmark_height(state, [FOREHEAD]) - 0.5)
    return forehead, forehead & (state.projection.partial.confidence > 0.9) & (delta_e(lab, hair) < 12)


def test_the_hair_leaves_no_fringe_on_the_forehead(state):
    """The photo's fringe reaches the brows: on the forehead it loses its confidence (the inpaint makes
    it skin), while the face below keeps the photo's."""
    out = run(state, scalp="skin")
    before = state.projection.partial.confidence
    forehead, fringe = fringe_on_forehead(state, out)
    assert fringe.sum() > 100  # the astronaut's fringe is there in the projection...
    assert out.texture.confidence[fringe].mean() < 0.2  # ... and taken off
    middle = np.abs(longitude_deg(state)) < 25
    cheeks = (
        face_skin(state) & middle & (height(state) < landmark_height(state, [MOUTH_LEFT, MOUTH_RIGHT]) + 0.8)
    )
    # The fringe's feather reaches the upper cheeks' edge by its far tail (148 of 2804 texels, at
    # most 5e-4, and 4e-3 with the landmarks of session 36's snapped views): a trace, not a taking.
    change = np.abs(out.texture.confidence[cheeks] - before[cheeks])
    assert change.max() < 0.01 and change.mean() < 1e-4, (change.max(), change.mean())
    assert np.array_equal(state.projection.partial.confidence, before)  # the input is left alone


def test_the_fringes_shadow_goes_with_the_fringe(state):
    """The skin under a fringe lies in its shadow: kept at part confidence, it showed as a dark line
    along the hairline. From 0.05 to 0.125 eye distances below the fringe (where its shadow fades;
    the feather alone kept 0.3 of the photo there) the photo's skin is taken off with it."""
    out = run(state, scalp="skin")
    before = state.projection.partial.confidence
    forehead, fringe = fringe_on_forehead(state, out)
    distance = cv2.distanceTransform((~fringe).astype(np.uint8), cv2.DIST_L2, 5)
    texels = 0.05 * state.geometry.layout.face_texels_per_iod
    below = forehead & (before > 0.9) & ~fringe & (distance > texels) & (distance <= 2.5 * texels)
    assert below.sum() > 200
    # 0.15 (as the fringe's texels are read; with the shadow's grow off, 0.30)
    assert out.texture.confidence[below].mean() < 0.2


def small_holes(state) -> np.ndarray:
    """The projection's unread patches narrower than about a third of an eye distance (under a tenth
    of an eye distance squared): holes in the skin it read, not the hair or what the photo does not
    show."""
    unread = (state.projection.partial.confidence < 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(unread, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < 0.1 * state.geometry.layout.face_texels_per_iod**2
    small[0] = False  # the read skin itself
    return small[labels] & unread.astype(bool)


def test_the_hairline_left_on_the_forehead_is_a_smooth_curve(state, monkeypatch):
    """What goes with the photo's hair is closed over ``HAIR_CLOSE``: the skin between the fringe's
    strands is taken with them, so the filled forehead meets the photo's along a smooth edge, not a
    frayed one, for a few more texels of skin taken (here 10 %)."""

    reach = int(round(regions.HAIR_CLOSE * state.geometry.layout.face_texels_per_iod))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2)

    def hairline(out) -> tuple[int, int, int]:
        forehead, _ = fringe_on_forehead(state, out)
        taken = (out.texture.confidence < 0.5) & forehead
        kept = (out.texture.confidence >= 0.5) & forehead
        # Small holes the projection left in the skin it read (highlights its camera burnt out to
        # white, ``projection.burnt_out``: two on the astronaut's forehead just under her fringe) are
        # filled as the hair is, but are no hairline: the skin beside them is no notch of its edge.
        beside = cv2.dilate(small_holes(state).astype(np.uint8), disc).astype(bool)
        edge = taken & cv2.dilate(kept.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        notches = cv2.morphologyEx(taken.astype(np.uint8), cv2.MORPH_CLOSE, disc).astype(bool)
        notches &= kept & ~beside
        return int(edge.sum()), int(notches.sum()), int(taken.sum())

    edge, notches, taken = hairline(run(state, scalp="skin"))
    monkeypatch.setattr(regions, "HAIR_CLOSE", 1e-6)  # over one texel: hardly any closing
    frayed_edge, frayed_notches, frayed_taken = hairline(run(state, scalp="skin"))
    # The fringe's edge has notches of skin (17 texels at 512; 4 with the landmarks of session 36's
    # snapped views, which put the forehead's edge 0.01 eye distances elsewhere)...
    assert frayed_notches >= 3
    assert notches <= 0.3 * frayed_notches  # ... closed (0)
    assert edge <= 0.8 * frayed_edge  # a shorter hairline: 116 texels against 162
    assert taken <= 1.15 * frayed_taken  # 8765 against 7981


# -- scalp = hair ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hair_run(generator, head_path, astronaut_path, tmp_path_factory):
    return generate(generator, head_path, astronaut_path, tmp_path_factory.mktemp("hair"), scalp="hair")


def test_hair_covers_the_back_of_the_head_with_the_photos_hair(hair_run, state):
    report, atlas = hair_run
    info = report["regions"]
    assert info["scalp"] == "hair" and not any("scalp" in w for w in report["warnings"])
    lab = regions.to_lab(atlas)
    hair = np.array(info["hair_lab"])
    theta = np.abs(longitude_deg(state))
    scalp = atlas_map(state, state.maps.scalp) > 0.95
    back = scalp & ((theta > 120) | (state.geometry.chart == CROWN))
    assert back.sum() > 5000
    assert delta_e(lab[back].mean(axis=0), hair) < 8.0  # the seen hair's colour...
    assert lab[back][:, 0].std() > 3.0  # ... with a texture, not a flat fill
    # The skin below the hair keeps the face's colour: the hair does not tint the neck.
    skin = np.median(lab[face_skin(state)], axis=0)
    neck = state.geometry.mask & (height(state) < landmark_height(state, [MOUTH_LEFT, MOUTH_RIGHT]) - 0.8)
    assert delta_e(lab[neck].mean(axis=0), skin) < 8.0


def test_a_flat_styles_hair_is_one_colour_of_its_own_over_the_whole_scalp(
    generator, head_path, astronaut_path, tmp_path, state
):
    """toon with ``scalp=hair`` (a whole ``generate``): the hair the regions step lays over the scalp
    reaches the style (``Regions.hair_cover`` -> ``StageContext.hair``), which paints it flat: the
    back of the head was olive and beige camouflage with bars of skin colour where the strands were
    quantised with the skin."""
    report, atlas = generate(
        generator, head_path, astronaut_path, tmp_path / "toon", scalp="hair", style="toon"
    )
    assert report["regions"]["scalp"] == "hair"
    theta = np.abs(longitude_deg(state))
    scalp = atlas_map(state, state.maps.scalp) > 0.99
    back = cv2.erode((scalp & (theta > 120)).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert back.sum() > 3000
    lab = regions.to_lab(atlas)
    skin = np.median(lab[face_skin(state)], axis=0)
    assert (np.linalg.norm(lab[back] - skin, axis=1) < 10).mean() < 0.001  # no skin in the hair
    # Flat, not blotched: one tone of the hair (L* to 2 units) is nearly all of it.
    tones = np.unique(np.round(lab[back][:, 0] / 2), return_counts=True)[1]
    assert tones.max() >= 0.95 * back.sum()


def test_the_photos_hair_beside_the_face_is_a_fringe_above_the_brows_not_wedges_on_the_cheeks(
    state, monkeypatch
):
    """``scalp=hair``: the hair hanging beside a photographed face (the astronaut's, Grace Hopper's)
    landed inside the face outline down to the jaw, dark wedges on a wider head's cheeks, drawn as
    hair by the flat styles. Over the face the photo's hair is a fringe: kept at the brows' height and
    above, none from ``2 * FRINGE_BELOW_BROWS`` below them."""
    monkeypatch.setattr(  # every pixel of the photo hair: what it lays over the face is the question
        regions.PortraitHair, "at", lambda self, coords: np.tile(np.float32([1, 0, 0]), (len(coords), 1))
    )
    monkeypatch.setattr(regions.PortraitHair, "seen", property(lambda self: True))
    out = run(state, scalp="hair")
    cover = out.hair_cover(state.geometry.size)
    brow = landmark_height(state, regions.RIGHT_EYEBROW + regions.LEFT_EYEBROW)
    face, y = state.geometry.face, height(state)
    low = face & (y < brow - 2 * regions.FRINGE_BELOW_BROWS) & (atlas_map(state, state.maps.scalp) < 0.01)
    high = face & (y > brow + 0.1) & (atlas_map(state, state.maps.scalp) < 0.5)
    assert low.sum() > 1000 and high.sum() > 100
    assert cover[low].max() == 0.0  # the cheeks and the jaw: none
    assert (cover[high] > 0.5).mean() > 0.5  # the forehead under the hairline: the fringe


def test_the_photos_hair_is_the_same_on_the_band_and_the_crown_disc(state):
    """A surface point near the crown's front is held twice, by the band's top rows and by the crown
    disc. The photo's hair gave way to strands a few texels from the band's edge (its teeth, eroded
    as if the hair ended there), not in the disc: a seam in the shape of the teeth, a dark "M" on
    the crown's front (the scanned head with the astronaut). Both charts take the photo alike."""
    from avatartex.atlas import _cap_rings

    out = run(state, scalp="hair")
    layer, geometry = out.hair_layer, state.geometry
    share = np.zeros(geometry.size * geometry.size, np.float32)
    share[layer.index] = layer.photo_share * layer.alpha
    share = share.reshape(geometry.size, geometry.size)
    crown = next(cap for cap in _cap_rings(geometry) if geometry.chart[cap.rows[0], cap.cols[0]] == CROWN)
    disc = share[crown.rows[crown.ring], crown.cols[crown.ring]]
    band = geometry.sample(share[: geometry.band_rows], crown.band_xy)
    seen = np.maximum(disc, band) > 0.3
    assert seen.sum() > 200, seen.sum()
    assert np.percentile(np.abs(disc - band)[seen], 99) < 0.3, np.percentile(np.abs(disc - band)[seen], 99)


def test_the_photos_hair_is_whole_across_the_scalps_soft_edge(demo_state, monkeypatch):
    """Where the scalp's membership fades (its hairline, soft) and the photo shows hair over both, the
    scalp's hair and the fringe's add up to the whole: a quarter of the skin showed through at
    mid-edge, a pale line across the hair along the demo head's hairline. And the fringe fades at
    the face region's side, not in a square step at the temple."""
    monkeypatch.setattr(
        regions.PortraitHair, "at", lambda self, coords: np.tile(np.float32([1, 0, 0]), (len(coords), 1))
    )
    monkeypatch.setattr(regions.PortraitHair, "seen", property(lambda self: True))
    state = demo_state
    out = run(state, scalp="hair")
    cover = out.hair_cover(state.geometry.size)
    scalp = atlas_map(state, state.maps.scalp)
    fringe = atlas_map(state, state.maps.fringe)
    seen = state.projection.partial.confidence > 0.5
    edge = state.geometry.mask & (scalp > 0.1) & (scalp < 0.9) & (fringe > 0.3) & seen
    assert edge.sum() > 50, edge.sum()
    whole = scalp + (1.0 - scalp) * fringe  # the scalp's share, and the fringe's over the rest
    short = whole[edge] - cover[edge]
    assert np.median(short) < 0.05 and np.percentile(short, 90) < 0.2, (
        np.median(short),
        np.percentile(short, 90),
    )
    # Across the face region's edge the fringe fades over a few texels, not one.
    face = state.geometry.face
    inside = cv2.erode(face.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    rim = face & ~inside & (fringe > 0.0)
    assert rim.any() and fringe[rim].max() < 0.9


def test_the_hairline_fades_without_a_step(hair_run, state):
    """Across the nape and above the ears, the lightness against the height above the hairline
    (texels binned every 0.04 eye distances) goes from the skin's to the hair's over many bins: no
    bin carries more than a small part of the change (a cut carries all of it)."""
    report, atlas = hair_run
    lightness = regions.to_lab(atlas)[..., 0]
    hair_l = report["regions"]["hair_lab"][0]
    skin_l = np.median(lightness[face_skin(state)])
    signed = longitude_deg(state)
    grid, right, left, _ = regions.hairline_height(state.maps.points_head)
    hairline = np.where(signed < 0, np.interp(-signed, grid, right), np.interp(signed, grid, left))
    above = height(state) - hairline
    edges = np.arange(-0.8, 0.81, 0.04)
    for lo, hi in ((150, 180), (95, 110)):
        side = state.geometry.mask & (np.abs(signed) > lo) & (np.abs(signed) < hi)
        which = np.digitize(above[side], edges)
        profile = np.array([lightness[side][which == k].mean() for k in range(1, len(edges))])
        assert abs(profile[:3].mean() - skin_l) < 10 and abs(profile[-3:].mean() - hair_l) < 10, (lo, hi)
        change = abs(profile[-3:].mean() - profile[:3].mean())
        assert np.abs(np.diff(profile)).max() < 0.3 * change, (lo, hi)


def test_a_photo_without_hair_falls_back_to_skin_with_a_warning(generator, head_path, astronaut, tmp_path):
    """The astronaut with her hair painted over in her skin's colour: nothing to continue."""
    face, _ = analyse_portrait(astronaut, "astronaut", generator.landmarker)
    hair = regions.find_hair(astronaut, face, generator.segmenter.mask(astronaut))
    h, w = astronaut.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    on_hair = hair.at(np.stack([xx, yy], axis=-1).reshape(-1, 2))[:, 0].reshape(h, w) > 0.3
    on_hair = cv2.dilate(on_hair.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    cheek = face.landmarks[[50, 280]].mean(axis=0).astype(int)
    bald = astronaut.copy()
    bald[on_hair & (yy < face.landmarks[:, 1].max())] = astronaut[cheek[1], cheek[0]]
    path = tmp_path / "bald.png"
    save_png(path, bald)
    report, _ = generate(generator, head_path, path, tmp_path / "out", scalp="hair")
    assert report["regions"]["scalp"] == "skin" and report["regions"]["hair_share"] < regions.HAIR_MIN_SHARE
    assert any(w.startswith("scalp=hair: the photo shows no hair") for w in report["warnings"])


def test_a_hair_model_from_too_little_hair_takes_no_skin(state, monkeypatch):
    """Where the band along the upper face outline is too little hair-coloured to say the photo shows
    hair (``HAIR_MIN_SHARE``), the hair model learned from it is a pattern or paint on the skin, a
    shadow or the background beside the head; its doubts must not take seen skin off a bald forehead
    or scalp (the ground-truth sweep's patterned bald heads lost up to a third of their seen texels
    to them). Here the model says "hair" over the whole head while the skin model says "skin": with
    too little hair seen, the seen forehead and scalp keep the photo; with enough, they go."""
    found = regions.find_hair(state.portrait, state.face, state.person)
    maps = np.ones_like(found.maps)  # hair and skin, everywhere
    maps[..., 2] = 0.0  # and none of the photo's features
    maps[[0, -1]] = 0.0
    maps[:, [0, -1]] = 0.0
    samples = np.tile(found.lab[:1], (100, 1))

    def model(share):
        return lambda portrait, face, person: regions.PortraitHair(maps, found.to_crop, share, samples)

    before = state.projection.partial.confidence
    above = (height(state) > landmark_height(state, [FOREHEAD]) - 0.5) & state.geometry.mask & (before > 0.9)
    assert above.sum() > 1000

    def kept(share) -> float:
        monkeypatch.setattr(regions, "find_hair", model(share))
        out = run(state, scalp="skin")
        return float((out.texture.confidence[above] >= 0.9 * before[above]).mean())

    assert kept(0.5 * regions.HAIR_MIN_SHARE) > 0.99
    assert kept(2.0 * regions.HAIR_MIN_SHARE) < 0.05


def test_the_photos_brows_stay_where_they_land_beside_the_meshs(state, monkeypatch):
    """The photo's brows are features wherever they land: on a mesh whose brow ridge the detector
    read lower than the photo's brows sit (here: the mesh's brow landmarks moved down a third of an
    eye distance, so the photo's brows fall outside the mesh's feature zone, above its brows) and
    under a skin model that does not know the skin round them (a side light's lit half: "not skin"
    everywhere), the brows were taken off the forehead as "not skin" and the made-up faces of
    bench/sweep.py lost them whole. The photo's brow texels keep their confidence; with the hair
    model's feature channel emptied (as before it had one) they go."""
    found = regions.find_hair(state.portrait, state.face, state.person)
    # The feature channel holds the photo's brows, eyes and lips, less what is of the hair's colours
    # (the outer end of the astronaut's right brow, under her fringe).
    assert 300 < (found.maps[..., 2] > 0.5).sum() < 0.05 * found.maps[..., 2].size
    lowered = state.points3d.copy()
    frame = state.geometry.frame
    for index in regions.RIGHT_EYEBROW + regions.LEFT_EYEBROW:
        lowered[index] -= 0.3 * frame.scale * frame.axes[1]

    brows = np.zeros(state.portrait.shape[:2], bool)
    for outline in (regions.RIGHT_EYEBROW_OUTLINE, regions.LEFT_EYEBROW_OUTLINE):
        brows |= regions.polygon_mask(brows.shape, state.face.landmarks[list(outline)])
    h, w = found.maps.shape[:2]
    in_crop = cv2.warpAffine(brows.astype(np.float32), found.to_crop, (w, h), flags=cv2.INTER_NEAREST)

    def model(features: bool):
        maps = np.zeros_like(found.maps)  # neither hair nor skin anywhere
        if features:
            maps[..., 2] = cv2.dilate(in_crop, np.ones((3, 3), np.uint8))  # the brows, as features
        return lambda portrait, face, person: regions.PortraitHair(maps, found.to_crop, 0.0, found.lab[:0])

    # The texels reading the photo's brows, seen well before the step.
    s = state.geometry.size
    coords = state.projection.portrait_coords.reshape(-1, 2)
    seen = np.isfinite(coords[:, 0])
    on_brows = np.zeros(s * s, bool)
    xy = np.floor(coords[seen]).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 1] >= 0) & (xy[:, 0] < brows.shape[1]) & (xy[:, 1] < brows.shape[0])
    on_brows[np.flatnonzero(seen)[inside]] = brows[xy[inside, 1], xy[inside, 0]]
    before = state.projection.partial.confidence
    on_brows = on_brows.reshape(s, s) & (before > 0.9)
    lowered_maps = regions.head_regions(state.geometry, lowered)
    outside = on_brows & ~atlas_map(
        SimpleNamespace(geometry=state.geometry, maps=lowered_maps), lowered_maps.skin_expected
    )
    assert outside.sum() > 30  # the photo's brows lie beyond where the lowered mesh expects skin

    def kept(features: bool) -> float:
        monkeypatch.setattr(regions, "find_hair", model(features))
        out = run(state, points3d=lowered)
        return float((out.texture.confidence[outside] >= 0.9 * before[outside]).mean())

    assert kept(True) > 0.9
    assert kept(False) < 0.3


# -- eyes and mouth -------------------------------------------------------------------------------


def without_photo_in(state, contours, grow: int = 4):
    """The projection with no confidence inside the mesh's ``contours`` (grown by ``grow`` texels):
    what a head with deep or separate eyes, or an open mouth, gets from the photo."""
    s = state.geometry.size
    hole = np.zeros((s, s), np.float32)
    for contour in contours:
        xy = regions.atlas_polygon(state.geometry, state.maps.points_head, contour)
        hole = np.maximum(hole, regions.polygon_coverage((s, s), xy))
    hole = cv2.dilate(hole, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0
    partial = state.projection.partial
    return dataclasses.replace(partial, confidence=np.where(hole, 0.0, partial.confidence).astype(np.float32))


def test_uncovered_eyes_get_a_sclera_and_an_iris_in_the_photos_colour(state):
    texture = without_photo_in(state, (regions.RIGHT_EYE_CONTOUR, regions.LEFT_EYE_CONTOUR))
    out = run(state, texture)
    assert out.summary["eye_texels_filled"] > 100
    lab = regions.to_lab(out.texture.color)
    iris_lab = regions.to_lab(np.array(out.summary["iris_rgb"], np.float32))
    s = state.geometry.size
    head = state.geometry.frame.to_head(state.geometry.positions)
    for contour in (regions.RIGHT_EYE_CONTOUR, regions.LEFT_EYE_CONTOUR):
        inside = regions.polygon_coverage(
            (s, s), regions.atlas_polygon(state.geometry, state.maps.points_head, contour)
        )
        inside = (inside > 0.99) & state.geometry.mask
        eye = state.maps.points_head[list(contour)]
        centre = np.array([eye[[0, 8], 0].mean(), eye[:, 1].mean()])
        d = np.linalg.norm(head[..., :2] - centre, axis=-1)
        # Eye distances from the contour, inside it; the opening's rim is the lash line.
        per_iod = state.geometry.layout.face_texels_per_iod
        depth = (
            cv2.distanceTransform(np.pad(inside.astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1] / per_iod
        )
        rim = inside & (depth * per_iod < 1.5)  # the outermost texels
        sclera = inside & (d > 1.3 * regions.IRIS_RADIUS) & (depth > regions.LID_MARGIN)
        iris = inside & (d > 0.55 * regions.IRIS_RADIUS) & (d < 0.85 * regions.IRIS_RADIUS)  # off the pupil
        assert sclera.sum() > 12 and iris.sum() > 10 and rim.sum() > 20  # the scan's: 20-30 sclera texels
        assert (out.texture.confidence[inside] > 0.99).all()
        assert np.isnan(out.portrait_coords[inside]).all()  # no photo detail painted over the fill
        l_sclera = lab[sclera][:, 0].mean()
        assert l_sclera > 65 and np.hypot(*lab[sclera][:, 1:].mean(axis=0)) < 12  # light, nearly white
        assert lab[iris][:, 0].mean() < l_sclera - 25  # a dark disc in the middle
        assert delta_e(lab[iris].mean(axis=0), iris_lab) < 12  # in the photo's iris colour
        assert lab[rim][:, 0].mean() < l_sclera - 10  # a dark lash line round it, not a white ring
        # Just outside the contour, where the hole left no photo either: the lid's skin, as the skin
        # the photo shows beside it, not the eye white.
        away = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 3) / per_iod
        lid = (away > 0.2 * regions.LID_BAND) & (away < 0.5 * regions.LID_BAND) & state.geometry.mask
        seen_skin = (away < 2 * regions.LID_BAND) & (texture.confidence > 0.9)
        assert lid.sum() > 20 and (out.texture.confidence[lid] > 0.9).mean() > 0.9
        skin_lab = np.median(lab[seen_skin], axis=0)

        assert delta_e(np.median(lab[lid], axis=0), skin_lab) < 8
        assert delta_e(np.median(lab[lid], axis=0), lab[sclera].mean(axis=0)) > 10
    # The photo's iris is the astronaut's: brown, not grey.
    assert iris_lab[2] > 10 and iris_lab[0] < 50


def _lips_opened(points_head: np.ndarray) -> np.ndarray:
    """A copy of the head-frame landmarks with the inner lip contour opened into a lens: its lower
    lip (points 1-9) down, its upper lip (11-19) up, by up to 0.05, the corners kept."""
    points_head = points_head.copy()
    inner_ids = list(LIPS_INNER)
    corners = points_head[[inner_ids[0], inner_ids[10]]]
    centre, half_width = corners.mean(axis=0), abs(corners[1, 0] - corners[0, 0]) / 2
    for k, index in enumerate(inner_ids):
        if k % 10:
            across = 1.0 - ((points_head[index, 0] - centre[0]) / half_width) ** 2
            points_head[index, 1] += (-1.0 if k < 10 else 1.0) * 0.05 * max(across, 0.0)
    return points_head


def test_an_open_mouth_is_dark_inside_and_the_lips_stay_whole(state):
    """The scanned man's mouth is closed: open his inner lip contour into a lens and push the surface
    inside it back into the head, as an open mouth's interior is; then take the photo off the lips."""
    geometry, frame = state.geometry, state.geometry.frame
    s = geometry.size
    points_head = _lips_opened(state.maps.points_head)
    points3d = frame.origin + frame.scale * points_head @ frame.axes
    inner = regions.polygon_coverage((s, s), regions.atlas_polygon(geometry, points_head, LIPS_INNER))
    outer = regions.polygon_coverage((s, s), regions.atlas_polygon(geometry, points_head, LIPS_OUTER))
    head = frame.to_head(geometry.positions)
    radius = np.linalg.norm(head, axis=-1, keepdims=True)
    deeper = head * (1.0 - 0.15 * (inner > 0)[..., None] / np.maximum(radius, 1e-6))
    positions = (frame.origin + frame.scale * deeper @ frame.axes).astype(np.float32)
    open_mouth = dataclasses.replace(geometry, positions=np.where(geometry.mask[..., None], positions, 0))
    texture = without_photo_in(state, (LIPS_OUTER,))
    out = run(state, texture, geometry=open_mouth, points3d=points3d)
    assert out.summary["mouth_texels_filled"] > 20
    lab = regions.to_lab(out.texture.color)
    lips = (outer > 0.99) & (inner < 0.01) & geometry.mask
    interior = (inner > 0.99) & geometry.mask
    assert interior.sum() > 20 and lips.sum() > 200
    assert (out.texture.confidence[lips] > 0.99).all()  # continuous: nothing left to the skin fill
    photo_lips = regions.to_lab(regions.feature_colours(state.portrait, state.face).lips)
    assert np.median(delta_e(lab[lips], photo_lips)) < 4  # in the photo's lip colour
    assert np.percentile(delta_e(lab[lips], photo_lips), 95) < 12
    assert lab[interior][:, 0].mean() < lab[lips][:, 0].mean() - 25  # dark inside


def test_an_open_mouth_is_found_when_its_inner_lips_were_read_inside_it(demo_state):
    """A head modelled with its mouth open: the detector reads its inner lips on the opening's edge,
    and lifted onto the surface along the camera's rays they land on the mouth bag behind it (the
    QA's open-mouth head: 1.27-1.73 from the head's centre against the lips' 1.92). Their outline in
    the atlas ran down onto the chin, the opening was never found: the bag came out lip-pink, the
    photo's mouth was taken off and the warning said the mesh's mouth was closed. The opening is the
    surface inside the lips' outer outline that lies well behind it."""
    state = demo_state
    geometry, frame = state.geometry, state.geometry.frame
    s = geometry.size
    points_head = _lips_opened(state.maps.points_head)
    inner_ids = list(LIPS_INNER)
    opened = regions.polygon_coverage((s, s), regions.atlas_polygon(geometry, points_head, LIPS_INNER))
    head = frame.to_head(geometry.positions)
    radius = np.linalg.norm(head, axis=-1, keepdims=True)
    deeper = head * (1.0 - 0.4 * (opened > 0)[..., None] / np.maximum(radius, 1e-6))  # the mouth bag
    positions = (frame.origin + frame.scale * deeper @ frame.axes).astype(np.float32)
    open_mouth = dataclasses.replace(geometry, positions=np.where(geometry.mask[..., None], positions, 0))
    # The inner lips as lifted onto the bag: 0.4 deeper along the ray from a camera 6 eye distances
    # in front (their directions from the head's centre move down and out).
    camera = np.array([0.0, -1.0, 6.0])
    ray = points_head[inner_ids] - camera
    ray /= np.linalg.norm(ray, axis=1, keepdims=True)
    lifted = points_head.copy()
    lifted[inner_ids] += 0.45 * ray
    points3d = frame.origin + frame.scale * lifted @ frame.axes
    texture = without_photo_in(state, (LIPS_OUTER,))
    out = run(state, texture, geometry=open_mouth, points3d=points3d)
    assert out.summary["mouth_texels_filled"] > 20, out.summary
    interior = (opened > 0.99) & geometry.mask
    lightness = regions.to_lab(out.texture.color)[..., 0]
    outer = regions.polygon_coverage((s, s), regions.atlas_polygon(geometry, points_head, LIPS_OUTER))
    lips = (outer > 0.99) & (opened < 0.01) & geometry.mask
    assert interior.sum() > 20 and lips.sum() > 100
    assert np.median(lightness[interior]) < np.median(lightness[lips]) - 25  # dark inside
    assert not any("where the mesh's is closed" in w for w in out.warnings)


def test_a_photo_finer_than_the_atlas_is_read_through_its_blur_not_aliased(
    generator, astronaut_path, demo_head_path, tmp_path_factory
) -> None:
    """A large photo (about 1.5 of its pixels per atlas texel on the face) with a checker two
    pixels wide over it: the atlas holds the photo at its own resolution, so the checker's mean, and
    the bake adds what is finer from the photo itself (``steps.portrait_detail``). Point-sampled raw,
    the checker came into the atlas as texel noise (its fine band 3.4 times the plain photo's) and
    the bake then added it a second time."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("fine")
    large = np.asarray(
        Image.open(astronaut_path).convert("RGB").resize((1536, 1536), Image.LANCZOS), np.float32
    )
    checker = (np.indices((1536, 1536)).sum(axis=0) % 2 * 2 - 1)[..., None] * 20.0
    photos = {}
    for name, image in (("plain", large), ("checker", large + checker)):
        photos[name] = folder / f"{name}.png"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(photos[name])
    fine = {}
    for name, path in photos.items():
        state = projected(generator, demo_head_path, path)
        footprint = state.face.interocular / state.geometry.layout.face_texels_per_iod
        assert footprint > 1.3  # the case under test: more photo pixels than atlas texels
        partial = state.projection.partial
        lum = luminance(np.nan_to_num(partial.color))
        seen = (partial.confidence > 0.9) & state.geometry.face
        band = lum - cv2.blur(lum, (3, 3))
        fine[name] = float(band[cv2.erode(seen.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0].std())
    assert fine["checker"] < 1.2 * fine["plain"], fine


def test_a_closed_mouths_corners_are_lips_not_interior(demo_state):
    """The demo head's mouth is closed, and its face curves back towards the mouth's corners (its
    inner lip contour's corners lie 0.1 head units deeper than its middle): the corners are not an
    opening. Against the contour's mean they read recessed and were painted as two dark spots."""
    state = demo_state
    points_head = state.maps.points_head
    level = np.linalg.norm(points_head[list(LIPS_INNER)], axis=1)
    assert level.max() - level.min() > 0.05  # the case this test is about: corners well behind the middle
    out = run(state)
    assert out.summary["mouth_texels_filled"] == 0
    s = state.geometry.size
    outer = regions.polygon_coverage((s, s), regions.atlas_polygon(state.geometry, points_head, LIPS_OUTER))
    # What the step leaves on the mouth (the photo's mouth taken off is the later fill's) is not dark.
    kept = (outer > 0.5) & state.geometry.mask & (out.texture.confidence > 0.5)
    lightness = regions.to_lab(out.texture.color)[..., 0]
    assert kept.sum() > 100
    assert np.percentile(lightness[kept], 0.5) > np.median(lightness[kept]) - 20


def test_a_closed_mouths_slit_is_lips_meeting_not_skin(demo_state):
    """The astronaut smiles with her teeth showing; the demo head's lips are closed, their inner
    contour a thin slit that is no opening. Her teeth are taken off it, and the skin fill that
    replaced them drew a pale band across the mouth, between two pink lips (an open mouth, or a
    grimace, in the render): the slit is the lips' colour, deepening to a line where they meet."""
    state = demo_state
    out = run(state)
    assert out.summary["mouth_texels_filled"] == 0 and out.summary["photo_mouth_texels_cleared"] > 0
    s = state.geometry.size
    slit = regions.polygon_coverage(
        (s, s), regions.atlas_polygon(state.geometry, state.maps.points_head, LIPS_INNER)
    )
    closed = (slit > 0.99) & (out.photo_confidence < 0.05)
    assert closed.sum() > 100  # the case under test: the slit's photo (her teeth) taken off
    lab = regions.to_lab(out.texture.color)
    lips = regions.to_lab(regions.feature_colours(state.portrait, state.face).lips)
    # Lips, not skin: as red as her lips (the teeth's place left to the fill was a* 4, L* 83).
    assert np.median(lab[closed][:, 1]) > lips[1] - 2, (np.median(lab[closed], axis=0), lips)
    # The line where they meet, each column's middle of the slit, deeper than the slit's edges.
    depth = cv2.distanceTransform(closed.astype(np.uint8), cv2.DIST_L2, 3)
    middle = closed & (depth >= depth.max(axis=0, keepdims=True) - 0.5) & (depth >= 1.5)
    edge = closed & (depth < 1.5)
    assert middle.sum() > 20
    assert np.median(lab[middle][:, 0]) < np.median(lab[edge][:, 0]) - 6
    assert np.median(lab[middle][:, 0]) > lips[0] - 30  # a lip's deeper tone, not the mouth's dark inside


def test_a_small_faces_eyes_are_painted_not_left_as_blur(generator, demo_head_path, demo_state, tmp_path):
    """An LFW face, 25 pixels square: each eye's opening is a pixel of blur, which the demo head's
    eyes took as they were, skin-coloured: eyeless sockets. The eyes are painted (a light sclera, a
    dark iris and pupil) where the photo cannot show them, and only there: the astronaut's eyes of
    six pixels stay hers."""
    from skimage import data

    face = (data.lfw_subset()[3] * 255).astype(np.uint8)
    save_png(tmp_path / "lfw.png", np.repeat(face[..., None], 3, axis=2).astype(np.float32) / 255)
    small = projected(generator, demo_head_path, tmp_path / "lfw.png")
    spreads = {}
    for name, state in (("small", small), ("astronaut", demo_state)):
        out = run(state)
        s = state.geometry.size
        lightness = regions.to_lab(out.texture.color)[..., 0]
        spread = []
        for contour in (regions.RIGHT_EYE_CONTOUR, regions.LEFT_EYE_CONTOUR):
            eye = regions.polygon_coverage(
                (s, s), regions.atlas_polygon(state.geometry, state.maps.points_head, contour)
            )
            inside = (eye > 0.99) & state.geometry.mask
            assert inside.sum() > 20
            spread.append(float(np.percentile(lightness[inside], 95) - np.percentile(lightness[inside], 5)))
        said = any("eyes were painted" in w for w in out.warnings)
        assert said == out.summary["photo_eyes_too_small"]  # one decision, the one the fill took
        spreads[name] = (out.summary["photo_eyes_too_small"], min(spread))
    assert spreads["small"][0] and not spreads["astronaut"][0], spreads
    assert spreads["small"][1] > 40, spreads  # sclera against iris and pupil; the blur held 16


def test_a_smiles_teeth_are_taken_off_a_closed_mouths_lips(state, grace_hopper_path):
    """The astronaut smiles with her teeth showing; the scanned man's mouth is closed. Where her teeth
    land (texels whose photo sample lies inside her inner lip contour) the photo is taken off: the
    lips' colour or the skin fill goes there, not white teeth, and the report says so. Grace Hopper's
    mouth is closed: nothing is taken."""
    from avatartex.image_io import load_portrait
    from avatartex.imaging import sample_image
    from avatartex.projection import polygon_mask

    assert regions.photo_mouth_opening(state.portrait, state.face) is not None
    hopper, _ = load_portrait(grace_hopper_path)
    assert regions.photo_mouth_opening(hopper, analyse_portrait(hopper)[0]) is None
    out = run(state)
    coords = state.projection.portrait_coords
    seen = np.isfinite(coords[..., 0]) & (state.projection.partial.confidence > 0.5)
    teeth = polygon_mask(
        state.portrait.shape[:2],
        state.face.landmarks[list(LIPS_INNER)],
    )
    inside = np.zeros(seen.shape, bool)
    inside[seen] = sample_image(teeth.astype(np.float32), coords[seen])[:, 0] > 0.99
    s = state.geometry.size
    slit = regions.polygon_coverage(
        (s, s), regions.atlas_polygon(state.geometry, state.maps.points_head, LIPS_INNER)
    )
    inside &= slit < 0.01  # the closed mouth's own slit between the lips is an opening: teeth may show there
    assert inside.sum() > 20
    teeth_lab = regions.to_lab(sample_image(state.portrait, coords[inside]))  # the photo there, sharp
    assert teeth_lab[:, 0].mean() > 70  # light: teeth
    assert (out.photo_confidence[inside] < 0.05).all()
    assert np.isnan(out.portrait_coords[inside]).all()  # no teeth detail painted back
    lips = regions.polygon_coverage(
        (s, s), regions.atlas_polygon(state.geometry, state.maps.points_head, LIPS_OUTER)
    )
    on_lips = inside & (lips > 0.99)
    assert on_lips.sum() > 10
    photo_lips = regions.to_lab(regions.feature_colours(state.portrait, state.face).lips)
    assert np.median(delta_e(regions.to_lab(out.texture.color)[on_lips], photo_lips)) < 4
    assert np.percentile(delta_e(regions.to_lab(out.texture.color)[on_lips], photo_lips), 95) < 12
    assert out.summary["photo_mouth_texels_cleared"] > 0
    assert any("mouth is open" in warning for warning in out.warnings)


def _mouth(width: float, gap: float, thickness: float, centre=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Outer and inner lip contours (20 points each, run as LIPS_OUTER and LIPS_INNER: from the right
    corner along the lower lip, back along the upper) of a lens-shaped mouth ``gap`` open."""
    t = np.concatenate([np.linspace(0, 1, 10, endpoint=False), np.linspace(1, 0, 10, endpoint=False)])
    x = centre[0] - width / 2 + width * t
    bulge = np.sqrt(np.clip(1 - (2 * t - 1) ** 2, 0, 1))
    side = np.where(np.arange(20) < 10, 1.0, -1.0)  # image y grows down: the lower lip +, the upper -
    inner = np.stack([x, centre[1] + side * gap / 2 * bulge], 1)
    outer = np.stack([x * 1.05 - 0.05 * centre[0], centre[1] + side * (gap / 2 + thickness) * bulge], 1)
    outer[[0, 10]] = inner[[0, 10]] + np.array([[-2.0, 0.0], [2.0, 0.0]])
    return outer, inner


def test_the_photos_lips_are_mapped_onto_the_meshs_lips():
    """A closed mouth (the mesh's, atlas pixels) read from a wide-open one (the photo's): every texel
    of the mesh's lips reads the photo's lips, its upper lip the upper lip and its lower lip the
    lower, never the teeth between them; its corners the photo's corners."""
    mesh_outer, mesh_inner = _mouth(80, 0.0, 10, centre=(60, 30))
    photo_outer, photo_inner = _mouth(120, 30, 4, centre=(200, 150))
    where = regions.photo_lips_coords(mesh_outer, mesh_inner, photo_outer, photo_inner, (60, 120))
    lips = (regions.polygon_coverage((60, 120), mesh_outer) > 0.99) & ~(
        regions.polygon_coverage((60, 120), mesh_inner) > 0
    )
    assert lips.sum() > 500 and np.isfinite(where[lips]).all()
    band = regions.polygon_mask((300, 400), photo_outer) & ~regions.polygon_mask(
        (300, 400), photo_inner + regions.LIP_BAND[0] * 0.5 * (photo_outer - photo_inner)
    )
    band = cv2.dilate(band.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # its rasterised rim
    read = where[lips]
    inside = band[np.clip(read[:, 1].astype(int), 0, 299), np.clip(read[:, 0].astype(int), 0, 399)]
    assert inside.mean() > 0.97, inside.mean()
    rows = np.nonzero(lips)[0]
    upper, lower = rows < 30, rows >= 30
    assert (read[upper, 1] < 150).mean() > 0.99 and (read[lower, 1] > 150).mean() > 0.99
    # Along the mouth, the order is kept: left on the mesh reads left in the photo.
    cols = np.nonzero(lips)[1]
    assert np.corrcoef(cols, read[:, 0])[0, 1] > 0.98


def test_a_closed_mouths_lips_carry_the_photos_lip_detail_where_its_teeth_were(state):
    """Where the astronaut's teeth are taken off the scanned man's closed lips, what goes under is her
    own lips' detail mapped onto his, around her median lip colour (a flat colour read as a sticker):
    fine stripes painted across her lips must come out on his where the lip map puts them."""
    from avatartex.imaging import sample_image

    lm = state.face.landmarks
    lips = regions.polygon_mask(state.portrait.shape[:2], lm[list(LIPS_OUTER)]) & ~regions.polygon_mask(
        state.portrait.shape[:2], lm[list(LIPS_INNER)]
    )
    period = 0.1 * state.face.interocular
    stripes = np.sign(np.sin(2 * np.pi * np.arange(state.portrait.shape[1]) / period))[None, :]
    pattern = np.where(lips, stripes, 0.0).astype(np.float32)
    painted = np.clip(state.portrait * (1.0 + 0.15 * pattern[..., None]), 0, 1)

    def lips_after(portrait):
        out = regions.complete_regions(
            state.projection.partial, state.geometry, state.points3d, portrait, state.face,
            state.person, state.registration, state.projection.portrait_coords, "skin", 0,
        )  # fmt: skip
        return out, regions.to_lab(out.texture.color)[..., 0]

    out, plain = lips_after(state.portrait)
    _, striped = lips_after(painted)
    s = state.geometry.size
    xy = regions.atlas_polygon(state.geometry, state.maps.points_head, LIPS_OUTER)
    inner_xy = regions.atlas_polygon(state.geometry, state.maps.points_head, LIPS_INNER)
    on_lips = regions.polygon_coverage((s, s), xy) > 0.99
    taken = on_lips & (state.projection.partial.confidence > 0.9) & (out.photo_confidence < 0.05)
    assert taken.sum() > 50
    # Where the lip map says each of those texels reads her lips: the stripes expected there.
    where = regions.photo_lips_coords(xy, inner_xy, lm[list(LIPS_OUTER)], lm[list(LIPS_INNER)], (s, s))
    expected = sample_image(pattern[..., None], where[taken])[:, 0]
    change = striped[taken] - plain[taken]
    assert np.corrcoef(expected, change)[0, 1] > 0.5  # 0.59-0.62 as the landmarks have been read
    assert np.abs(change).mean() > 1.0  # L*: visible, not a trace


def test_the_lips_sheen_does_not_come_onto_a_closed_mouths_lips(state):
    """Narrow light spots on the astronaut's lips (a gloss's highlights: the light's, not the lips'
    colour; the rim of her teeth reads the same) do not come out on the scanned man's closed lips
    where her lip detail goes under them, while the darker half of the same stripes (lines) does."""
    lm = state.face.landmarks
    shape = state.portrait.shape[:2]
    lips = regions.polygon_mask(shape, lm[list(LIPS_OUTER)]) & ~regions.polygon_mask(
        shape, lm[list(LIPS_INNER)]
    )
    period = 0.1 * state.face.interocular
    stripes = np.sin(2 * np.pi * np.arange(shape[1]) / period)[None, :]
    light = np.where(lips, np.clip((stripes - 0.6) / 0.4, 0, None), 0.0).astype(np.float32)  # narrow
    dark = np.where(lips, np.clip(stripes, None, 0), 0.0).astype(np.float32)

    def lips_after(pattern):
        portrait = np.clip(state.portrait * (1.0 + 0.3 * pattern[..., None]), 0, 1)
        out = regions.complete_regions(
            state.projection.partial, state.geometry, state.points3d, portrait, state.face,
            state.person, state.registration, state.projection.portrait_coords, "skin", 0,
        )  # fmt: skip
        return out, regions.to_lab(out.texture.color)[..., 0]

    out, plain = lips_after(np.zeros(shape, np.float32))
    _, shiny = lips_after(light)
    _, lined = lips_after(dark)
    s = state.geometry.size
    on_lips = regions.polygon_coverage(
        (s, s), regions.atlas_polygon(state.geometry, state.maps.points_head, LIPS_OUTER)
    )
    taken = (on_lips > 0.99) & (state.projection.partial.confidence > 0.9) & (out.photo_confidence < 0.05)
    assert taken.sum() > 50
    # The lips' colour is the photo's median, which the spots move: judged against that, in L*.
    change = shiny[taken] - plain[taken]
    # 10.8 L* when the detail was read either way of the mean round it; what is left (5.4) is the lips
    # round a highlight under the mean it lifts.
    assert np.percentile(change, 99) - np.median(change) < 7.0  # the highlights do not stand out
    change = lined[taken] - plain[taken]
    assert np.median(change) - np.percentile(change, 1) > 2.0  # the darker lines do


def test_a_smiles_opening_takes_the_teeths_edges_and_fades_out(state):
    """The photo's mouth opening reaches PHOTO_MOUTH_GROW past the inner lip contour whole (the
    teeth's edges: at 0.03 eye distances the astronaut's lower teeth stayed as white spots under a
    closed mouth's lip), then fades over PHOTO_MOUTH_FEATHER instead of ending in a hard edge."""
    from avatartex.projection import polygon_mask

    iod = state.face.interocular
    opening = regions.photo_mouth_opening(state.portrait, state.face)
    inside = polygon_mask(state.portrait.shape[:2], state.face.landmarks[list(LIPS_INNER)])
    away = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5) / iod
    assert (opening[inside] == 1.0).all()
    assert opening[(away > 0.01) & (away < 0.05)].min() == 1.0  # the teeth's edges go whole
    fading = opening[(away > 0.075) & (away < 0.085)]
    assert 0.05 < np.median(fading) < 0.95  # a soft edge, neither kept nor taken
    assert opening[away > 0.15].max() < 0.01  # and no further


# -- glasses -------------------------------------------------------------------------------------


def draw_frames(portrait: np.ndarray, face, thickness_iod: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``portrait`` wearing dark glasses drawn around the face's eyes (elliptical rims, a
    bridge over the nose, arms towards the ears), and the mask of the frame's pixels."""
    iod = face.interocular
    right, left = face.right_eye_center, face.left_eye_center
    axis = (left - right) / np.linalg.norm(left - right)
    angle = float(np.degrees(np.arctan2(axis[1], axis[0])))
    mask = np.zeros(portrait.shape[:2], np.uint8)
    t = max(2, int(round(thickness_iod * iod)))
    axes = (int(round(0.42 * iod)), int(round(0.3 * iod)))
    for centre, outward in ((right, -1.0), (left, 1.0)):
        c = tuple(int(round(v)) for v in centre - 0.5)
        cv2.ellipse(mask, c, axes, angle, 0, 360, 1, t)
        arm_start = centre + outward * axis * 0.42 * iod
        arm_end = arm_start + outward * axis * 0.5 * iod
        cv2.line(
            mask,
            tuple(np.round(arm_start - 0.5).astype(int)),
            tuple(np.round(arm_end - 0.5).astype(int)),
            1,
            t,
        )
    bridge = (right + axis * 0.42 * iod, left - axis * 0.42 * iod)
    cv2.line(mask, *(tuple(np.round(p - 0.5).astype(int)) for p in bridge), 1, t)
    worn = portrait.copy()
    worn[mask > 0] = (0.08, 0.06, 0.05)
    return worn, mask > 0


def draw_sunglasses(portrait: np.ndarray, face) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``portrait`` wearing sunglasses: ``draw_frames``' frames with dark lenses in them,
    lighter towards the bottom (a gradient lens), each with the room reflected as a light streak;
    and the mask of the lenses."""
    worn, _ = draw_frames(portrait, face)
    iod = face.interocular
    right, left = face.right_eye_center, face.left_eye_center
    axis = (left - right) / np.linalg.norm(left - right)
    angle = float(np.degrees(np.arctan2(axis[1], axis[0])))
    lenses = np.zeros(portrait.shape[:2], np.uint8)
    for centre in (right, left):
        c = tuple(int(round(v)) for v in centre - 0.5)
        cv2.ellipse(lenses, c, (int(round(0.42 * iod)), int(round(0.3 * iod))), angle, 0, 360, 1, -1)
    yy = np.arange(portrait.shape[0], dtype=np.float32)[:, None]
    down = np.clip((yy - (right[1] - 0.3 * iod)) / (0.6 * iod), 0.0, 1.0)
    shade = 0.05 + 0.12 * np.broadcast_to(down, lenses.shape)
    inside = lenses > 0
    worn[inside] = shade[inside][:, None] * np.array([1.0, 0.95, 0.9], np.float32)
    for centre in (right, left):
        a = centre + iod * np.array([-0.25, -0.05])
        b = centre + iod * np.array([-0.05, -0.22])
        streak = np.zeros_like(lenses)
        cv2.line(
            streak,
            tuple(np.round(a).astype(int)),
            tuple(np.round(b).astype(int)),
            1,
            max(2, round(0.04 * iod)),
        )
        worn[(streak > 0) & inside] = 0.75
    return worn, inside


def test_sunglasses_are_taken_off_and_the_eyes_painted_in(demo_state):
    """Dark lenses hide the eyes: what the texture read on them is taken off (the inpaint fills the
    skin around), the mesh's eyes are painted as eyes at rest in a default iris colour (the photo
    does not show theirs), and the artist is told."""
    from avatartex.face import LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR
    from avatartex.projection import polygon_mask

    state = demo_state
    worn, lenses = draw_sunglasses(state.portrait, state.face)
    bare = run(state)
    dark = run(SimpleNamespace(**{**vars(state), "portrait": worn}))
    assert dark.summary["dark_lenses"] and not bare.summary["glasses"]
    assert any("dark glasses" in w for w in dark.warnings)
    np.testing.assert_allclose(dark.summary["iris_rgb"], regions.DEFAULT_IRIS, atol=0.01)
    assert bare.summary["iris_rgb"] != dark.summary["iris_rgb"]
    coords = state.projection.portrait_coords
    seen = np.isfinite(coords[..., 0]) & (state.projection.partial.confidence > 0.9)
    xy = np.clip(np.nan_to_num(coords).astype(int), 0, np.array(lenses.shape[::-1]) - 1)
    lm = state.face.landmarks
    eyes = polygon_mask(lenses.shape, lm[list(RIGHT_EYE_CONTOUR)], grow=0.5)
    eyes |= polygon_mask(lenses.shape, lm[list(LEFT_EYE_CONTOUR)], grow=0.5)
    on_lens = seen & (lenses & ~eyes)[xy[..., 1], xy[..., 0]]
    assert on_lens.sum() > 200
    assert np.median(dark.texture.confidence[on_lens]) <= 0.1
    assert np.median(bare.texture.confidence[on_lens]) >= 0.9
    # The mesh's eyes painted, not the lenses' black: where the photo's eyes land, as light as the
    # photo's own eyes make it.
    assert dark.summary["eye_texels_filled"] > 0
    in_eyes = (
        seen
        & (
            polygon_mask(lenses.shape, lm[list(RIGHT_EYE_CONTOUR)])
            | polygon_mask(lenses.shape, lm[list(LEFT_EYE_CONTOUR)])
        )[xy[..., 1], xy[..., 0]]
    )
    assert in_eyes.sum() > 50
    lightness = [float(np.median(regions.to_lab(out.texture.color[in_eyes])[:, 0])) for out in (dark, bare)]
    assert lightness[0] > 0.8 * lightness[1], lightness


def test_an_eye_the_photos_edge_cuts_is_the_other_eyes_mirror(
    generator, demo_head_path, astronaut, astronaut_face, tmp_path
):
    """The astronaut's photo cut through her right eye: that eye is taken off whole and the inpaint
    mirrors her left one there (not half her eye beside an eye painted at rest), and the cut is said."""
    from avatartex.face import RIGHT_EYE_CONTOUR
    from avatartex.image_io import save_png

    right = astronaut_face.landmarks[list(RIGHT_EYE_CONTOUR)]
    x0 = int(right[:, 0].mean())
    path = tmp_path / "cut.png"
    save_png(path, np.ascontiguousarray(astronaut[:, x0:]))
    report, atlas = generate(generator, demo_head_path, path, tmp_path / "out")
    assert any("cuts off" in w and "right eye" in w for w in report["warnings"])
    assert report["portrait"]["frame_cut"] > 0.1
    state = projected(generator, demo_head_path, path)
    geometry = state.geometry
    mirror = geometry.mirror_index().reshape(-1)
    xy = regions.atlas_polygon(geometry, state.maps.points_head, RIGHT_EYE_CONTOUR)
    inside = regions.polygon_coverage((geometry.size, geometry.size), xy) > 0.5
    texels = np.flatnonzero(inside.reshape(-1) & geometry.mask.reshape(-1))
    assert len(texels) > 30
    flat = atlas.reshape(-1, 3)
    difference = np.abs(flat[texels] - flat[mirror[texels]]).mean()
    assert difference < 0.06, difference  # an eye painted at rest there: 0.18


@pytest.fixture(scope="module")
def astronaut_face(astronaut):
    face, _ = analyse_portrait(astronaut)
    return face


def pixel_centres(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.stack([cols + 0.5, rows + 0.5], axis=1)


def test_glasses_drawn_on_a_portrait_are_found_and_the_eyes_and_brows_kept(astronaut, astronaut_face):
    from avatartex.face import (
        FACE_OVAL,
        LEFT_EYE_CONTOUR,
        LEFT_EYEBROW_OUTLINE,
        RIGHT_EYE_CONTOUR,
        RIGHT_EYEBROW_OUTLINE,
    )
    from avatartex.glasses import find_glasses
    from avatartex.projection import polygon_mask

    bare = find_glasses(astronaut, astronaut_face)
    assert not bare.found, bare.rim_share
    worn, frame = draw_frames(astronaut, astronaut_face)
    glasses = find_glasses(worn, astronaut_face)
    assert glasses.found, glasses.rim_share
    shape = astronaut.shape[:2]
    lm = astronaut_face.landmarks
    # Where the drawn frame crosses a brow the brow is kept; outside the face it does not matter.
    brows = polygon_mask(shape, lm[list(RIGHT_EYEBROW_OUTLINE)]) | polygon_mask(
        shape, lm[list(LEFT_EYEBROW_OUTLINE)]
    )
    on_face = polygon_mask(shape, lm[list(FACE_OVAL)])
    on_frame = glasses.at(pixel_centres(frame & on_face & ~brows))
    assert (on_frame >= 0.5).mean() >= 0.9
    eyes = polygon_mask(shape, lm[list(RIGHT_EYE_CONTOUR)]) | polygon_mask(shape, lm[list(LEFT_EYE_CONTOUR)])
    assert glasses.at(pixel_centres(eyes & ~frame)).max() < 0.5
    # The brows' cores (their outlines pulled in) stay, but for where the drawn frame crosses them.
    cores = polygon_mask(shape, lm[list(RIGHT_EYEBROW_OUTLINE)], grow=-0.3)
    cores |= polygon_mask(shape, lm[list(LEFT_EYEBROW_OUTLINE)], grow=-0.3)
    near_frame = cv2.dilate(frame.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert cores.sum() > 30
    assert glasses.at(pixel_centres(cores & ~near_frame)).max() < 0.5
    # Off the frame, the face (inside the eyes' neighbourhood) is left alone.
    iod = astronaut_face.interocular
    near_eyes = np.zeros(shape, np.uint8)
    for centre in (astronaut_face.right_eye_center, astronaut_face.left_eye_center):
        cv2.circle(near_eyes, tuple(np.round(centre - 0.5).astype(int)), int(0.8 * iod), 1, -1)
    away = (near_eyes > 0) & ~(cv2.dilate(frame.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    assert (glasses.at(pixel_centres(away)) >= 0.5).mean() <= 0.05


def test_grace_hoppers_glasses_are_found_and_the_astronaut_wears_none(
    astronaut, astronaut_face, grace_hopper_path
):
    from avatartex.glasses import find_glasses
    from avatartex.image_io import load_portrait

    hopper, _ = load_portrait(grace_hopper_path)
    face, _ = analyse_portrait(hopper)
    glasses = find_glasses(hopper, face)
    assert glasses.found, glasses.rim_share
    assert not find_glasses(astronaut, astronaut_face).found
    # The frames' upper bars lie between the eyes and the brows, both sides.
    iod = face.interocular
    for centre in (face.right_eye_center, face.left_eye_center):
        column = np.stack([np.full(20, centre[0]), centre[1] - np.linspace(0.05, 0.4, 20) * iod], axis=1)
        assert glasses.at(column).max() >= 0.5


def test_the_frames_of_worn_glasses_are_taken_off_the_texture_and_the_eyes_kept(state):
    from avatartex.face import LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR
    from avatartex.projection import polygon_mask

    worn, frame = draw_frames(state.portrait, state.face)
    bare = run(state)
    glasses = run(SimpleNamespace(**{**vars(state), "portrait": worn}))
    assert glasses.summary["glasses"] and not bare.summary["glasses"]
    # The artist is told, and told what stays (the panel and report.json show the warnings).
    assert any("glasses" in w for w in glasses.warnings) and not any("glasses" in w for w in bare.warnings)
    coords = state.projection.portrait_coords
    seen = np.isfinite(coords[..., 0]) & (state.projection.partial.confidence > 0.9)
    xy = np.clip(np.nan_to_num(coords).astype(int), 0, np.array(frame.shape[::-1]) - 1)
    on_frame = seen & frame[xy[..., 1], xy[..., 0]]
    assert on_frame.sum() > 200
    assert np.median(glasses.texture.confidence[on_frame]) <= 0.1
    assert np.median(bare.texture.confidence[on_frame]) >= 0.9
    lm = state.face.landmarks
    shape = frame.shape
    eyes = polygon_mask(shape, lm[list(RIGHT_EYE_CONTOUR)]) | polygon_mask(shape, lm[list(LEFT_EYE_CONTOUR)])
    in_eyes = seen & eyes[xy[..., 1], xy[..., 0]]
    assert in_eyes.sum() > 50
    np.testing.assert_allclose(
        glasses.texture.confidence[in_eyes], bare.texture.confidence[in_eyes], atol=0.05
    )


def test_the_best_loop_follows_a_closed_ridge_through_noise():
    from avatartex.glasses import best_loop

    rng = np.random.default_rng(0)
    angles = np.arange(120)
    ridge = np.round(20 + 8 * np.sin(2 * np.pi * angles / 120)).astype(int)
    gain = rng.uniform(0.0, 0.6, (120, 40))
    gain[angles, ridge] = 1.0
    path = best_loop(gain)
    assert (np.abs(path - ridge) <= 1).mean() >= 0.95
    assert np.abs(np.diff(np.append(path, path[0]))).max() <= 1  # closed, one step at a time


@pytest.mark.parametrize("grow", [True, False])
def test_a_wide_feather_worked_coarsely_matches_the_full_size_one(grow):
    """``_feathered(coarse=3)`` (the fringe's shadow band, 9 texels at 1024) works on a box three times
    smaller: within 0.02 of the full-size feather, on the texels it is read back at."""
    from avatartex.regions import _feathered

    size = 512
    image = np.zeros((size, size), np.float32)
    image[100:200, 150:380] = 1.0
    image[200:240, 200:260] = 1.0
    cv2.circle(image, (400, 300), 30, 1.0, -1)
    yy, xx = np.mgrid[0:size, 0:size]
    index = np.flatnonzero((xx - 256) ** 2 + (yy - 220) ** 2 < 240**2)  # the head's texels
    values = image.reshape(-1)[index]
    full = _feathered(values, index, size, 9, grow)
    coarse = _feathered(values, index, size, 9, grow, coarse=3)
    assert np.abs(full - coarse).max() < 0.02
    assert np.abs(full - values).max() > 0.5  # the feather does move values


def test_the_lips_colour_is_read_from_the_lips_not_the_skin_inside_their_contour(grace_hopper_path):
    """The lip contours also hold skin: a thin mouth's lips are a pixel or two high inside them, and
    where a nose hides part of the lips (a turned face) the skin it shows is most of the region.
    Grace Hopper's lips, with two thirds of the pixels between her lip contours, from one corner,
    painted over in the skin round her mouth: the colour read stays within a few CIE76 units of the
    one read from the photo as it is (the plain median moved to the skin), and her lips read redder
    than her skin."""
    from avatartex.image_io import load_portrait
    from avatartex.projection import polygon_mask

    hopper, _ = load_portrait(grace_hopper_path)
    face, _ = analyse_portrait(hopper)
    lm = face.landmarks
    lips = regions.feature_colours(hopper, face).lips
    shape = hopper.shape[:2]
    between = polygon_mask(shape, lm[list(LIPS_OUTER)]) & ~polygon_mask(shape, lm[list(LIPS_INNER)], grow=0.1)
    ring = polygon_mask(shape, lm[list(LIPS_OUTER)], grow=0.6) & ~polygon_mask(
        shape, lm[list(LIPS_OUTER)], grow=0.2
    )
    skin = np.median(hopper[ring], axis=0)
    assert regions.to_lab(lips)[1] > regions.to_lab(skin)[1] + regions.LIP_REDDER
    covered = hopper.copy()
    rows, cols = np.nonzero(between)
    hidden = cols < np.quantile(cols, 2 / 3)  # two thirds from one corner: a turned face's nose over them
    covered[rows[hidden], cols[hidden]] = skin
    read = regions.feature_colours(covered, face).lips
    median = np.median(covered[between], axis=0)
    assert delta_e(regions.to_lab(read), regions.to_lab(lips)) < 6.0
    assert delta_e(regions.to_lab(median), regions.to_lab(lips)) > 2 * delta_e(
        regions.to_lab(read), regions.to_lab(lips)
    )


def test_an_iris_is_never_read_red(grace_hopper_path, astronaut, astronaut_face) -> None:
    """Grace Hopper's dark brown eyes read CIELAB hue 33 (the lids' red rims, her warm print): toon and
    anime drew red eyes. No iris has a red hue: it is turned to the nearest brown; the astronaut's
    hazel (hue 75) is read as it is."""
    from avatartex.imaging import to_lab
    from PIL import Image

    hopper = np.asarray(Image.open(grace_hopper_path), np.float32) / 255.0
    face, _ = analyse_portrait(hopper)
    lab = to_lab(regions.feature_colours(hopper, face).iris)
    assert np.degrees(np.arctan2(lab[2], lab[1])) >= regions.IRIS_RED_HUES[1] - 1.5  # sRGB round trip
    assert np.hypot(lab[1], lab[2]) > 10  # still a brown, not grey
    hazel = to_lab(regions.feature_colours(astronaut, astronaut_face).iris)
    assert 70 < np.degrees(np.arctan2(hazel[2], hazel[1])) < 80
    for hue in (0, 30, -40, 350):
        turned = regions.plausible_iris(
            np.float32([30, 20 * np.cos(np.radians(hue)), 20 * np.sin(np.radians(hue))])
        )
        assert abs(np.degrees(np.arctan2(turned[2], turned[1])) - regions.IRIS_RED_HUES[1]) < 0.5
        assert abs(np.hypot(turned[1], turned[2]) - 20) < 0.01
    blue = np.float32([40, -5, -20])
    assert np.array_equal(regions.plausible_iris(blue), blue)


def test_the_iris_colour_is_read_between_the_pupil_and_the_sclera(astronaut, astronaut_face) -> None:
    """``regions.feature_colours``: the iris's colour is the middle band of the eye's middle pixels
    (IRIS_BAND), not their darker half, which held the pupil: the astronaut's eyes painted with a
    sclera, a patterned blue iris, a black pupil and the lashes' shadow read the blue within a few
    CIELAB units."""
    from avatartex.face import (
        LEFT_EYE_CONTOUR,
        LEFT_EYE_INNER,
        LEFT_EYE_OUTER,
        RIGHT_EYE_CONTOUR,
        RIGHT_EYE_INNER,
        RIGHT_EYE_OUTER,
    )
    from avatartex.imaging import to_lab
    from avatartex.projection import polygon_mask

    portrait = np.array(astronaut, np.float32, copy=True)
    blue = np.array([0.25, 0.4, 0.6], np.float32)
    rng = np.random.default_rng(3)
    lm_ = astronaut_face.landmarks
    for contour, outer, inner in (
        (RIGHT_EYE_CONTOUR, RIGHT_EYE_OUTER, RIGHT_EYE_INNER),
        (LEFT_EYE_CONTOUR, LEFT_EYE_OUTER, LEFT_EYE_INNER),
    ):
        opening = polygon_mask(portrait.shape[:2], lm_[list(contour)])
        portrait[opening] = (0.85, 0.83, 0.8)
        middle = (lm_[outer] + lm_[inner]) / 2
        width = float(np.linalg.norm(lm_[inner] - lm_[outer]))
        centre = tuple(int(round(v * 16)) for v in middle)
        disc = np.zeros(portrait.shape[:2], np.uint8)
        cv2.circle(disc, centre, int(round(0.22 * width * 16)), 1, -1, shift=4)
        # An iris's own pattern: its pixels 0.6-1.4 times its colour.
        portrait[disc > 0] = blue * rng.uniform(0.6, 1.4, (int((disc > 0).sum()), 1)).astype(np.float32)
        disc[:] = 0
        cv2.circle(disc, centre, int(round(0.11 * width * 16)), 1, -1, shift=4)  # dilated
        portrait[disc > 0] = (0.03, 0.03, 0.03)
        # The upper lid's lashes and their shadow over the top fifth of the opening.
        rows = np.nonzero(opening.any(axis=1))[0]
        top = np.zeros_like(opening)
        top[rows[0] : rows[0] + max(1, int(round(0.2 * len(rows))))] = True
        portrait[opening & top] = (0.06, 0.05, 0.05)
    read = regions.feature_colours(portrait, astronaut_face)
    assert np.linalg.norm(to_lab(read.iris) - to_lab(blue)) < 8.0  # the darker half: 52 (the pupil's)


def test_a_black_and_white_photos_lips_and_iris_are_the_defaults(astronaut, astronaut_face):
    """A black-and-white photo, tinted (``image_io.tinted_if_monochrome``), holds no lip or iris
    colour: its lips read as the tint's skin and would vanish into it; the defaults go there."""
    from avatartex.image_io import tinted_if_monochrome

    grey = np.repeat(astronaut.mean(axis=2, keepdims=True), 3, axis=2).astype(np.float32)
    tinted, monochrome = tinted_if_monochrome(grey)
    assert monochrome
    face = dataclasses.replace(astronaut_face, extras={**astronaut_face.extras, "monochrome": True})
    read = regions.feature_colours(tinted, dataclasses.replace(astronaut_face))
    colours = regions.feature_colours(tinted, face)
    assert delta_e(regions.to_lab(read.lips), regions.to_lab(colours.lips)) > 10  # read, they are skin
    # The default lips' hue and chroma (at the photo's lips' own lightness: ``tinted_lips``), the iris's.
    lips, default = regions.to_lab(colours.lips), regions.to_lab(regions.DEFAULT_LIPS)
    assert np.abs(lips[1:] - default[1:]).max() < 2.0 and np.allclose(colours.iris, regions.DEFAULT_IRIS)
    assert regions.to_lab(colours.sclera)[0] > 77.5  # the sclera is still the photo's, kept light


def test_a_small_colour_face_on_a_grey_frame_is_not_taken_for_black_and_white(
    generator, grace_hopper_path, demo_head_path, tmp_path
):
    """Grace Hopper small on a large near-white frame: her colour is under 1 % of the pixels, which
    the whole frame's test read as black and white (her skin then given the neutral tone). The face's
    own pixels decide once it is found; a grey copy of the same frame is still black and white."""
    from PIL import Image

    photo = Image.open(grace_hopper_path).convert("RGB")
    small = photo.resize((photo.width * 22 // 100, photo.height * 22 // 100), Image.LANCZOS)
    frame = Image.new("RGB", (2000, 1333), (235, 235, 230))
    frame.paste(small, (900, 450))
    for name, image in (("colour", frame), ("grey", frame.convert("L").convert("RGB"))):
        image.save(tmp_path / f"{name}.png")
    said = {}
    for name in ("colour", "grey"):
        params = GenerateParams(
            demo_head_path, str(tmp_path / f"{name}.png"), "unused", size=SIZE, engine="classic"
        )
        analysis = steps.analyse(params, generator.landmarker, generator.heads, lambda f, m: None)
        said[name] = (
            any("is black and white" in w for w in analysis.warnings),
            bool(analysis.face.extras.get("monochrome")),
        )
    assert said == {"colour": (False, False), "grey": (True, True)}


def test_a_small_face_in_a_large_photo_has_its_hair_found(astronaut, generator):
    """The astronaut 300 pixels wide in a 2400x1800 frame (her eyes 22 pixels apart): the segmenter,
    which reads a photo at 256 pixels, gave a blob of her body without her head, no hair was found,
    and with scalp=skin her fringe stayed on the forehead. The square round her face is segmented
    on its own (``face.person_mask``), and her hair is found as in her own photo."""
    from avatartex.face import PERSON_CROP_IOD, default_landmarker, person_mask

    frame = np.full((1800, 2400, 3), 0.5, np.float32)
    frame[1000:1300, 1500:1800] = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)
    face, _ = analyse_portrait(frame, "small", default_landmarker())
    assert face is not None and face.interocular < 30
    segmenter = generator.segmenter
    whole = segmenter.mask(frame)
    assert not regions.find_hair(frame, face, whole).seen  # what the whole frame gives
    person = person_mask(segmenter, frame, face)
    hair = regions.find_hair(frame, face, person)
    own_face, own_person = _face_and_person(astronaut, segmenter)
    own = regions.find_hair(astronaut, own_face, own_person)
    assert hair.seen and hair.share > 0.8 * own.share, (hair.share, own.share)
    # Only the square round the face is read again; beyond it the whole frame's mask stays.
    eyes, _, _ = face.axes()
    reach = int(PERSON_CROP_IOD * face.interocular)
    far = np.ones(frame.shape[:2], bool)
    far[
        max(int(eyes[1]) - reach, 0) : int(eyes[1]) + reach,
        max(int(eyes[0]) - reach, 0) : int(eyes[0]) + reach,
    ] = False
    assert np.array_equal(person[far], whole[far])
    # A face that fills its photo is segmented once, as it was.
    assert np.array_equal(person_mask(segmenter, astronaut, own_face), own_person)


def _face_and_person(image: np.ndarray, segmenter):
    from avatartex.face import default_landmarker

    face, _ = analyse_portrait(image, "photo", default_landmarker())
    return face, segmenter.mask(image)


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper"])
def test_a_black_and_white_photos_lips_are_one_lip_colour_under_the_photo_and_filled(
    photo, astronaut, grace_hopper_path
):
    """A black-and-white photo is tinted a skin tone. Its lips stayed that skin tone where the photo
    shows them (Grace Hopper's closed mouth: grey-pink lips, nothing filled) while an open mouth's,
    filled, took the default lip red at the default's own, darker lightness (the astronaut's): two
    looks for one photo, and the warning said both were the default. Both are now the default lip
    colour's hue at the photo's own lips' lightness."""
    from avatartex.image_io import load_portrait, tinted_if_monochrome
    from avatartex.imaging import to_lab
    from avatartex.projection import polygon_mask

    colour = astronaut if photo == "astronaut" else load_portrait(grace_hopper_path)[0]
    grey = np.repeat(luminance(colour)[..., None], 3, axis=2).astype(np.float32)
    tinted, monochrome = tinted_if_monochrome(grey)
    assert monochrome
    face, _ = analyse_portrait(tinted)
    face.extras["monochrome"] = True
    lm = face.landmarks
    lips = polygon_mask(tinted.shape[:2], lm[list(LIPS_OUTER)], grow=-0.1)
    lips &= ~polygon_mask(tinted.shape[:2], lm[list(LIPS_INNER)], grow=0.2)
    ring = polygon_mask(tinted.shape[:2], lm[list(LIPS_OUTER)], grow=0.6)
    ring &= ~polygon_mask(tinted.shape[:2], lm[list(LIPS_OUTER)], grow=0.25)
    shown = regions.tinted_lips(tinted, lm, face.interocular)
    default = to_lab(regions.DEFAULT_LIPS)
    on_lips = np.median(to_lab(shown[lips]), axis=0)
    assert np.abs(on_lips[1:] - default[1:]).max() < 3.0, on_lips  # under the photo: the lip hue
    assert abs(on_lips[0] - np.median(to_lab(tinted[lips])[:, 0])) < 1.0  # at their own lightness
    changed = np.abs(shown[ring] - tinted[ring]).max(axis=1)
    assert np.percentile(changed, 95) < 0.01, np.percentile(changed, 95)  # the skin round them as it was
    filled = to_lab(regions.feature_colours(shown, face).lips)
    assert np.abs(filled - on_lips).max() < 3.0, (filled, on_lips)  # filled alike


def test_the_inside_of_an_open_mouth_is_painted_dark(demo_state) -> None:
    """A head with an open mouth whose bag, teeth or tongue are in the face's material: the atlas,
    seen from the head's centre, holds the lips over the narrow opening, and the bake filled the
    surfaces behind them from the surface nearest them, the lips and the skin: a skin-coloured mouth
    bag, lip-pink teeth (a QA of game heads; the scanned head's own mouth inside too). Surfaces the
    atlas does not hold, seen through the lips' outline 0.1 to 1.2 eye distances behind it, are the
    mouth's dark inside (``regions.mouth_cavity``); the lips' own inner side, the skin behind a cheek
    and a bust's hollow seen through the lips are not."""
    geometry, points_head = demo_state.geometry, demo_state.maps.points_head
    lips = points_head[list(LIPS_OUTER)]
    radius = float(np.median(np.linalg.norm(lips, axis=1)))
    centre = lips.mean(axis=0)
    # Directions within the lips' outline: its points drawn halfway to its centre.
    inward = (lips + centre) / 2
    within = inward / np.linalg.norm(inward, axis=1, keepdims=True)
    beside = (within + np.array([0.5, 0.0, 0.0])) / np.linalg.norm(
        within + np.array([0.5, 0.0, 0.0]), axis=1, keepdims=True
    )
    groups = {
        "bag": within * (radius - 0.4),
        "lips' inner side": within * (radius - 0.05),
        "behind a cheek": beside * (radius - 0.4),
        "a bust's hollow": within * (radius - 1.6),
    }
    frame = geometry.frame  # the points in the mesh's coordinates
    points = np.concatenate(list(groups.values())) * frame.scale @ frame.axes + frame.origin
    index, colour = regions.mouth_cavity(geometry, points_head, points, np.ones(len(points), bool))
    chosen = np.zeros(len(points), bool)
    chosen[index] = True
    n = len(lips)
    assert chosen[:n].all() and not chosen[n:].any(), {
        k: int(chosen[i * n : (i + 1) * n].sum()) for i, k in enumerate(groups)
    }
    assert luminance(colour).max() < 0.15
    # Held by the atlas (the outermost surface), nothing is painted over: the photo shows it.
    assert len(regions.mouth_cavity(geometry, points_head, points, np.zeros(len(points), bool))[0]) == 0


def test_the_eyeballs_are_painted_over_the_mouth_where_a_texel_is_both() -> None:
    from avatartex.bake import SurfacePaint

    mouth = SurfacePaint(np.array([1, 2, 3]), np.zeros((3, 3), np.float32))
    eyes = SurfacePaint(np.array([3, 4]), np.ones((2, 3), np.float32))
    both = steps.painted_last(eyes, mouth)
    assert sorted(both.index.tolist()) == [1, 2, 3, 4]
    assert both.color[list(both.index).index(3)].tolist() == [1.0, 1.0, 1.0]
    assert steps.painted_last(None, mouth) is mouth and steps.painted_last(eyes, None) is eyes
