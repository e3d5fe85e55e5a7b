"""Glasses frames all the way round (``glasses.py``): once a photo shows glasses, each rim is taken
whole, its light or translucent stretches too (Grace Hopper's amber lower rims), and not the eye
bags and creases seen through the lenses; the eyes and brows stay, and a bare face wears none."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from avatartex.face import (
    LEFT_EYE_CONTOUR,
    LEFT_EYEBROW_OUTLINE,
    RIGHT_EYE_CONTOUR,
    RIGHT_EYEBROW_OUTLINE,
    analyse_portrait,
)
from avatartex.glasses import RIM_ANGLES, find_glasses, lens_tint
from avatartex.image_io import load_portrait
from avatartex.imaging import to_lab
from avatartex.projection import polygon_mask
from test_regions import draw_frames, draw_sunglasses, pixel_centres

LOWER_HALF = np.sin(np.arange(RIM_ANGLES) * 2.0 * np.pi / RIM_ANGLES) > 0.0
"""The points of a lens outline below its eye (``PortraitGlasses.lenses``)."""
RIM_BOTTOMS = (0.48, 0.47)
"""Eye distances below the character's right and left eye centres to the middle of the lower rim
straight under each, read off Grace Hopper's photo (the darkest CIE L* across the rim, 40-42 in
the face-aligned crop; the rims are 0.05-0.06 eye distances thick there)."""
EYE_BAGS = (0.23, 0.24)
"""The same to the eye-bag crease under each eye, inside the lens (L* 46-49 in the crop)."""
TEMPORAL_RIM = (-0.31, 0.25)
"""Eye distances (towards the character's left, down) from the character's right eye centre to the
pale amber lower rim on its outer side, read off the photo at ten times the crop's scale."""


@pytest.fixture(scope="module")
def hopper(grace_hopper_path):
    portrait, _ = load_portrait(grace_hopper_path)
    face, _ = analyse_portrait(portrait)
    return portrait, face, find_glasses(portrait, face)


def face_point(face, centre: np.ndarray, right: float, down: float) -> np.ndarray:
    """(1, 2) portrait pixel ``right`` and ``down`` eye distances from ``centre``, on the face's axes."""
    _, x_axis, up = face.axes()
    return (centre + face.interocular * (right * x_axis - down * up))[None]


def test_grace_hoppers_rims_are_taken_all_round_and_the_eye_bags_left(hopper):
    portrait, face, glasses = hopper
    assert glasses.found and len(glasses.lenses) == 2
    centres = (face.right_eye_center, face.left_eye_center)
    for lens, centre, bottom, bag in zip(glasses.lenses, centres, RIM_BOTTOMS, EYE_BAGS, strict=True):
        # The lens's outline goes round under the eye bags, down to the lower rim.
        below = (lens - centre) @ -face.axes()[2] / face.interocular
        assert 0.42 <= below.max() <= 0.55, below.max()
        assert (glasses.at(lens[LOWER_HALF]) >= 0.5).mean() >= 0.9
        for down in (bottom - 0.02, bottom, bottom + 0.02):
            assert glasses.at(face_point(face, centre, 0.0, down))[0] >= 0.5, down
        assert glasses.at(face_point(face, centre, 0.0, bag))[0] < 0.5
    assert glasses.at(face_point(face, face.right_eye_center, *TEMPORAL_RIM))[0] >= 0.5


def test_grace_hoppers_eyes_brows_and_lenses_are_kept(hopper):
    portrait, face, glasses = hopper
    shape, lm = portrait.shape[:2], face.landmarks
    eyes = polygon_mask(shape, lm[list(RIGHT_EYE_CONTOUR)]) | polygon_mask(shape, lm[list(LEFT_EYE_CONTOUR)])
    assert eyes.sum() > 100
    assert glasses.at(pixel_centres(eyes)).max() < 0.5
    cores = polygon_mask(shape, lm[list(RIGHT_EYEBROW_OUTLINE)], grow=-0.3)
    cores |= polygon_mask(shape, lm[list(LEFT_EYEBROW_OUTLINE)], grow=-0.3)
    # A pixel in from their edges: the map is sampled bilinearly, from a crop at a coarser scale.
    cores = cv2.erode(cores.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert cores.sum() > 30
    assert glasses.at(pixel_centres(cores)).max() < 0.5
    # Bounded: most of the skin seen through the lenses stays, and the frames are a thin share of
    # the square around the eyes.
    lenses = np.zeros(shape, np.uint8)
    for lens in glasses.lenses:
        cv2.fillPoly(lenses, [np.round((lens - 0.5) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    # Inside each lens, a tenth of an eye distance in from its rim's middle (the band along the rim
    # reaches 0.04-0.06 in; the old loops followed the eye bags and took 26 % of this).
    iod = face.interocular
    k = int(round(0.2 * iod)) | 1
    inside = (cv2.erode(lenses, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0) & ~eyes
    assert inside.sum() > 1000
    assert (glasses.at(pixel_centres(inside)) >= 0.5).mean() <= 0.15
    _, x_axis, up = face.axes()
    around = np.zeros(shape, np.uint8)
    corners = [
        face.axes()[0] + iod * (sx * 1.2 * x_axis + sy * 0.7 * up)
        for sx, sy in ((-1, 1), (1, 1), (1, -1), (-1, -1))
    ]
    cv2.fillPoly(around, [np.round(np.array(corners)).astype(np.int32)], 1)
    assert (glasses.at(pixel_centres(around > 0)) >= 0.5).mean() <= 0.3  # 21 % on Grace Hopper


def test_a_light_lower_rim_is_taken_with_the_dark_frame(astronaut):
    """Frames drawn dark but for the lowest sixth of each rim, drawn in pale amber plastic: that
    stretch is no darker than the skin, and is taken with the rest."""
    face, _ = analyse_portrait(astronaut)
    worn, _ = draw_frames(astronaut, face, thickness_iod=0.05)
    iod = face.interocular
    axis = (face.left_eye_center - face.right_eye_center) / iod
    angle = float(np.degrees(np.arctan2(axis[1], axis[0])))
    light = np.zeros(astronaut.shape[:2], np.uint8)
    axes = (int(round(0.42 * iod)), int(round(0.3 * iod)))
    for centre in (face.right_eye_center, face.left_eye_center):
        c = tuple(int(round(v)) for v in centre - 0.5)
        cv2.ellipse(light, c, axes, angle, 60, 120, 1, max(2, int(round(0.05 * iod))))
    light = light > 0
    around = cv2.dilate(light.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    skin = np.median(astronaut[around & ~light], axis=0)
    worn[light] = np.clip(skin * (1.1, 1.0, 0.8), 0.0, 1.0)
    glasses = find_glasses(worn, face)
    assert glasses.found, glasses.rim_share
    eyes = polygon_mask(light.shape, face.landmarks[list(RIGHT_EYE_CONTOUR)], grow=0.3)
    eyes |= polygon_mask(light.shape, face.landmarks[list(LEFT_EYE_CONTOUR)], grow=0.3)
    assert (glasses.at(pixel_centres(light & ~eyes)) >= 0.5).mean() >= 0.9


def test_the_astronaut_wears_no_glasses(astronaut):
    face, _ = analyse_portrait(astronaut)
    glasses = find_glasses(astronaut, face)
    assert not glasses.found, glasses.rim_share
    assert glasses.lenses == ()
    assert not glasses.frame.any()


def _tinted_lenses(portrait: np.ndarray, face, tint: tuple[float, float, float]):
    """``portrait`` wearing ``draw_frames``' glasses whose lenses (the ellipses inside the rims)
    multiply the skin behind them by ``tint`` (linear-ish RGB gains), the untinted copy, and the
    lenses' pixels."""
    worn, frame = draw_frames(portrait, face, thickness_iod=0.05)
    iod = face.interocular
    axis = (face.left_eye_center - face.right_eye_center) / iod
    angle = float(np.degrees(np.arctan2(axis[1], axis[0])))
    lenses = np.zeros(portrait.shape[:2], np.uint8)
    for centre in (face.right_eye_center, face.left_eye_center):
        c = tuple(int(round(v)) for v in centre - 0.5)
        cv2.ellipse(lenses, c, (int(round(0.42 * iod)), int(round(0.3 * iod))), angle, 0, 360, 1, -1)
    lenses = (lenses > 0) & ~frame
    tinted = worn.copy()
    tinted[lenses] = np.clip(tinted[lenses] * np.asarray(tint, np.float32), 0.0, 1.0)
    return tinted, worn, lenses


def _tint_read(portrait: np.ndarray, gains: tuple[float, float, float]):
    """The face, the portrait with tinted lenses, its untinted copy, the lenses' pixels, the glasses
    found and the tint they read."""
    face, _ = analyse_portrait(portrait)
    tinted, truth, lenses = _tinted_lenses(portrait, face, gains)
    glasses = find_glasses(tinted, face)
    assert glasses.found
    return face, tinted, truth, lenses, glasses, lens_tint(tinted, face, glasses)


def test_an_amber_lens_tint_is_taken_out_of_the_skin_behind_it_and_the_lightness_kept(astronaut):
    face, tinted, truth, lenses, glasses, tint = _tint_read(astronaut, (1.0, 0.93, 0.82))
    a, b = tint.shift_ab  # amber: towards red a little, towards yellow more (truly (3.0, 8.8))
    assert 1.5 < a < 4.5 and 6.5 < b < 11.0, tint.shift_ab
    untinted = tint.remove(tinted, face, glasses)
    lab_truth, lab_tinted, lab_out = (to_lab(x)[lenses] for x in (truth, tinted, untinted))
    before = np.abs(lab_tinted[:, 1:] - lab_truth[:, 1:]).mean()
    after = np.abs(lab_out[:, 1:] - lab_truth[:, 1:]).mean()
    assert before > 4.0 and after < 0.35 * before, (before, after)
    assert np.abs(lab_out[:, 0] - lab_tinted[:, 0]).mean() < 0.5  # chroma only
    # Away from the lenses nothing moves.
    far = ~(cv2.dilate(lenses.astype(np.uint8), np.ones((41, 41), np.uint8)) > 0)
    assert np.array_equal(untinted[far], tinted[far])


def test_a_reflection_on_a_tinted_lens_is_not_pushed_past_grey(astronaut):
    """The room reflected on a lens is light added on it, not seen through it: untinted. Taking the
    lens's tint out of it too turned Grace Hopper's pale crescents grey-green (and the amber drawn
    lenses' grey reflection blue, b* -8.8); only what is as tinted as the skin behind the lenses
    is moved back."""
    face, tinted, truth, lenses, glasses, tint = _tint_read(astronaut, (1.0, 0.93, 0.82))
    rows, cols = np.nonzero(lenses)
    glint = lenses & (np.abs(np.arange(lenses.shape[0])[:, None] - int(np.median(rows))) < 4)
    glint &= (
        np.abs(
            np.arange(lenses.shape[1])[None, :] - int(np.median(cols[cols < face.right_eye_center[0] + 5]))
        )
        < 12
    )
    assert glint.sum() > 50
    tinted = tinted.copy()
    tinted[glint] = 0.85  # a grey glint on the right lens
    untinted = tint.remove(tinted, face, glasses)
    lab = to_lab(untinted)[glint]
    assert np.abs(lab[:, 1:]).max() < 2.0, np.abs(lab[:, 1:]).max()
    skin = lenses & ~cv2.dilate(glint.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    error = np.abs(to_lab(untinted)[skin][:, 1:] - to_lab(truth)[skin][:, 1:]).mean()
    assert error < 2.0, error  # the skin behind the lenses is still untinted


def test_clear_lenses_move_the_skin_behind_them_by_little(astronaut):
    face, *_, tint = _tint_read(astronaut, (1.0, 1.0, 1.0))
    # The skin round the eyes is not quite the skin around the lenses: a unit or two of chroma.
    assert np.hypot(*tint.shift_ab) < 2.5, tint.shift_ab
    assert lens_tint(astronaut, face, find_glasses(astronaut, face)).shift_ab is None


def test_grace_hoppers_amber_lenses_are_measured_and_her_eye_region_matches_her_cheeks(hopper):
    portrait, face, glasses = hopper
    tint = lens_tint(portrait, face, glasses)
    # Her lenses' amber: 4-11 units towards red and about 5 towards yellow (read off the photo, lens
    # by lens: the skin inside against the skin around it, CIELAB medians, her reflections left out).
    a, b = tint.shift_ab
    assert 5.0 < a < 10.0 and 3.0 < b < 7.0, tint.shift_ab
    untinted = tint.remove(portrait, face, glasses)
    assert untinted is not portrait and untinted.shape == portrait.shape
    again = lens_tint(untinted, face, glasses)
    assert np.hypot(*again.shift_ab) < 1.5, again.shift_ab


def _reflection_mask(glasses, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    centres = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    return glasses.reflection_at(centres).reshape(shape) >= 0.5


def test_a_pale_reflection_in_a_lens_is_found_and_the_skin_beside_it_kept(astronaut):
    face, _ = analyse_portrait(astronaut)
    worn, _, lenses = _tinted_lenses(astronaut, face, (1.0, 1.0, 1.0))
    assert not _reflection_mask(find_glasses(worn, face), lenses.shape).any()  # clear lenses
    # The room reflected in the lower half of the character's right lens: a pale crescent.
    iod = face.interocular
    crescent = np.zeros(lenses.shape, np.uint8)
    c = tuple(int(round(v)) for v in face.right_eye_center - 0.5)
    cv2.ellipse(crescent, c, (int(round(0.3 * iod)), int(round(0.22 * iod))), 0, 20, 160, 1, int(0.08 * iod))
    crescent = (crescent > 0) & lenses
    eyes = polygon_mask(lenses.shape, face.landmarks[list(RIGHT_EYE_CONTOUR)], grow=0.3)
    crescent &= ~eyes
    assert crescent.sum() > 100
    reflected = worn.copy()
    reflected[crescent] = 0.55 * reflected[crescent] + 0.45 * np.float32(0.92)  # lighter and greyer
    glasses = find_glasses(reflected, face)
    found = _reflection_mask(glasses, lenses.shape)
    # Taken off (``complete_regions`` takes 1.5x the map, feathered): most of it at 0.5 and over.
    assert glasses.reflection_at(pixel_centres(crescent)).mean() >= 0.5
    assert (found & crescent).sum() >= 0.5 * crescent.sum()
    beside = lenses & ~crescent & ~(cv2.dilate(crescent.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0)
    assert (found & beside).sum() <= 0.05 * crescent.sum()


def test_grace_hoppers_lens_reflections_are_found_under_her_eyes_and_not_on_them(hopper):
    portrait, face, glasses = hopper
    found = _reflection_mask(glasses, portrait.shape[:2])
    _, _, up = face.axes()
    for centre, contour in (
        (face.right_eye_center, RIGHT_EYE_CONTOUR),
        (face.left_eye_center, LEFT_EYE_CONTOUR),
    ):
        near = np.linalg.norm(pixel_centres(found) - centre, axis=1) < 0.5 * face.interocular
        assert near.sum() > 100, near.sum()
        # Below the eye, in the lens's lower half.
        below = (pixel_centres(found)[near] - centre) @ -up / face.interocular
        assert np.median(below) > 0.1, np.median(below)
        eye = polygon_mask(found.shape, face.landmarks[list(contour)])
        assert not (found & eye).any()


def test_sunglasses_lenses_are_taken_whole_and_what_is_around_them_kept(astronaut):
    face, _ = analyse_portrait(astronaut)
    worn, lenses = draw_sunglasses(astronaut, face)
    glasses = find_glasses(worn, face)
    assert glasses.found and glasses.dark
    iod = face.interocular
    core = cv2.erode(lenses.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(1, round(0.04 * iod)))
    taken = glasses.covered_at(pixel_centres(core > 0))
    assert (taken >= 0.5).mean() >= 0.99, (taken >= 0.5).mean()  # the reflections too
    for centre in (face.right_eye_center, face.left_eye_center):
        # Neither the cheek below the lens nor the brow and the fringe above it (the lens reaches
        # 0.3 eye distances above the eye's centre), though the fringe is as dark as a lens.
        for down in (0.45, -0.42, -0.55):
            assert glasses.covered_at(face_point(face, centre, 0.0, down))[0] < 0.5, down


def test_eyes_in_a_sockets_shadow_are_no_sunglasses(astronaut, hopper):
    """Raccoon eyes under a noon sun: each socket in a shadow four times darker than the skin (in
    linear light), the eyes' whites, the brow ridge and the cheeks below lit."""
    face, _ = analyse_portrait(astronaut)
    iod = face.interocular
    shadow = np.zeros(astronaut.shape[:2], np.float32)
    for centre in (face.right_eye_center, face.left_eye_center):
        c = tuple(int(round(v)) for v in centre - 0.5 - (0, 0.05 * iod))
        cv2.ellipse(shadow, c, (int(round(0.33 * iod)), int(round(0.22 * iod))), 0, 0, 360, 1.0, -1)
    shadow = cv2.GaussianBlur(shadow, (0, 0), 0.04 * iod)[..., None]
    linear = np.power(astronaut, 2.2) * (1.0 - 0.75 * shadow)
    shaded = np.power(linear, 1 / 2.2).astype(np.float32)
    assert not find_glasses(shaded, face).dark
    portrait, hopper_face, glasses = hopper
    assert glasses.found and not glasses.dark  # amber lenses: her eyes are seen


def _side_lit(portrait: np.ndarray, face, lit: float, shadow: float) -> np.ndarray:
    """``portrait`` under a light from the character's left (the photo's right): luminance scaled
    from ``lit`` to ``shadow`` exponentially along the eye line, over 1.7 eye distances."""
    linear = np.clip(portrait, 0.0, 1.0) ** 2.2
    xs = np.arange(portrait.shape[1], dtype=np.float32)
    mid = 0.5 * (face.right_eye_center[0] + face.left_eye_center[0])
    towards_shadow = np.clip(0.5 - (xs - mid) / (1.7 * face.interocular), 0.0, 1.0)
    gain = np.exp(np.log(lit) + (np.log(shadow) - np.log(lit)) * towards_shadow)[None, :, None]
    return np.clip(linear * gain, 0.0, 1.0) ** (1 / 2.2)


def test_a_side_lights_shadow_does_not_hide_a_rim(hopper):
    """Frame darkness was an L* difference: in the shadow of a side light 2.6 stops down, the rim's
    8 L* became 4.7 and the character's right lens's outline was fitted round the creases beyond it
    (reaching its search's edge), its rim left on the skin. The light's slope across the face is
    taken out first: both outlines stay on the rims they follow in even light."""
    portrait, face, even = hopper
    lit = _side_lit(portrait, face, 1.5, 0.06)
    glasses = find_glasses(lit, face)
    assert glasses.found and len(glasses.lenses) == 2
    for side, (lens, lens_even) in enumerate(zip(glasses.lenses, even.lenses, strict=True)):
        apart = np.linalg.norm(lens - lens_even, axis=1) / face.interocular
        assert np.median(apart) <= 0.04 and apart.max() <= 0.15, (side, np.median(apart), apart.max())
        assert (glasses.at(lens_even) >= 0.5).mean() >= 0.85, side


def test_a_warm_lights_cast_does_not_leave_the_frames_highlights(hopper):
    """Grace Hopper under a tungsten light left in the photo (her eye whites, behind her glasses, are
    not read to take it out): the metal studs at her lens corners fell under the highlight's
    lightness and stayed on the skin as pale blobs. A skin redder than any skin under white light is
    brought back first (``glasses.skin_plausible``): the frame found is the one found in her photo."""
    portrait, face, even = hopper
    tungsten = (np.clip(portrait, 0.0, 1.0) ** 2.2 * np.array([1.0, 0.72, 0.38], np.float32)) ** (1 / 2.2)
    glasses = find_glasses(tungsten.astype(np.float32), face)
    assert glasses.found
    frame = even.frame > 0.5
    kept = (glasses.frame[frame] > 0.5).mean()
    extra = (glasses.frame[~frame] > 0.5).sum() / frame.sum()
    assert kept >= 0.97 and extra <= 0.05, (kept, extra)
