"""Marks on the skin (``marks.py``): found in the portrait, kept where the photo shows them, never a
source of the classic fills (not mirrored onto the other side of the face, not spread round it)."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import pytest
from avatartex import marks
from avatartex.engines.base import AtlasTexture
from avatartex.engines.classic.inpaint import ClassicInpaint
from avatartex.engines.classic.latent import ClassicLatent
from avatartex.face import (
    FACE_OVAL,
    LEFT_EYE_CONTOUR,
    LEFT_EYEBROW,
    LIPS_OUTER,
    RIGHT_EYE_CONTOUR,
    RIGHT_EYEBROW,
    default_landmarker,
)
from classic_fixtures import astronaut, make_ctx, sphere_atlas

BLUE = np.array([40, 60, 200], np.float32) / 255.0
SKIN = np.array([0.85, 0.66, 0.56], np.float32)


def _disc(image: np.ndarray, centre: tuple[int, int], radius: int, colour) -> np.ndarray:
    out = image.copy()
    cv2.circle(out, centre, radius, tuple(float(v) for v in colour), -1, lineType=cv2.LINE_AA)
    return out


@lru_cache(maxsize=4)
def _face(key: str):
    image = _photos()[key]
    return max(default_landmarker().detect(image), key=lambda f: f.size)


@lru_cache(maxsize=1)
def _photos() -> dict[str, np.ndarray]:
    clean = astronaut()
    return {
        "clean": clean,
        # Beside her left nostril's wing (it reaches into the nose's hull) and a mole on the cheek.
        "marked": _disc(_disc(clean, (246, 133), 9, BLUE), (249, 150), 3, (60 / 255, 40 / 255, 35 / 255)),
    }


def _mask_at(found: marks.PortraitMarks, xy: np.ndarray) -> np.ndarray:
    """The portrait marks' mask at portrait pixel centres ``xy`` (N, 2)."""
    crop = ((np.asarray(xy, np.float32) - found.origin) * found.scale).astype(int)
    inside = (crop >= 0).all(axis=1) & (crop[:, 0] < found.mask.shape[1]) & (crop[:, 1] < found.mask.shape[0])
    out = np.zeros(len(crop), np.float32)
    out[inside] = found.mask[crop[inside, 1], crop[inside, 0]]
    return out


def test_a_mark_is_found_whole_beside_a_feature_and_the_features_are_not_marks():
    photo = _photos()["marked"]
    found = marks.find_marks(photo, _face("marked"))
    assert found is not None
    yy, xx = np.mgrid[0 : photo.shape[0], 0 : photo.shape[1]]
    disc = ((xx - 246) ** 2 + (yy - 133) ** 2 <= 8**2) | ((xx - 249) ** 2 + (yy - 150) ** 2 <= 2**2)
    on_disc = _mask_at(found, np.stack([xx[disc], yy[disc]], axis=1) + 0.5)
    # Whole, the part in the nose's hull too (a sliver left there was still mirrored).
    assert (on_disc >= 0.5).mean() == 1.0, (on_disc < 0.5).sum()

    face = _face("clean")
    clean = marks.find_marks(_photos()["clean"], face)
    parts = RIGHT_EYE_CONTOUR + LEFT_EYE_CONTOUR + RIGHT_EYEBROW + LEFT_EYEBROW + LIPS_OUTER
    features = face.landmarks[list(parts)]
    assert clean is None or _mask_at(clean, features).max() < 0.5
    # On her clean face, little is a mark (a fringe's wisps, a smile's fold): not the skin.
    area = 0.0 if clean is None else clean.area_px
    assert area < 0.03 * cv2.contourArea(face.landmarks[list(FACE_OVAL)].astype(np.float32)), area


def test_one_sided_drops_a_mark_the_other_side_shows_too():
    geo = sphere_atlas(256)
    s = geo.size
    color = np.broadcast_to(SKIN, (s, s, 3)).copy()
    conf = geo.mask.astype(np.float32)
    found = np.zeros((s, s), np.float32)
    mirror = geo.mirror_index()
    r0, c0 = geo.band_rows // 2, s // 4  # in the band, away from its middle column
    spots = {name: (r0 + dr, c0) for name, dr in (("unlike", -30), ("both", 0), ("unseen", 30))}
    for name, (r, c) in spots.items():
        found[r - 3 : r + 4, c - 3 : c + 4] = 1.0
        color[r - 3 : r + 4, c - 3 : c + 4] = BLUE
        mr, mc = np.unravel_index(mirror[r, c], (s, s))
        if name == "both":  # a moustache's other half
            found[mr - 3 : mr + 4, mc - 3 : mc + 4] = 1.0
            color[mr - 3 : mr + 4, mc - 3 : mc + 4] = BLUE
        if name == "unseen":
            conf[mr - 5 : mr + 6, mc - 5 : mc + 6] = 0.0
    out = marks.one_sided(found, color, conf, geo)
    kept = {name: out[r, c] for name, (r, c) in spots.items()}
    assert kept["unlike"] == 1.0 and kept["unseen"] == 1.0
    assert kept["both"] == 0.0


def _marked_sphere(size: int = 256):
    """A sphere atlas seen from the front in one skin colour, a blue mark on one cheek, and the
    mirror image of the mark (and round it) seen at low confidence (a 3/4 view's far side)."""
    geo = sphere_atlas(size)
    head = geo.frame.to_head(geo.positions)
    facing = geo.normals[..., 2]
    conf = np.where(geo.mask & (facing > 0.2), 1.0, 0.0).astype(np.float32)
    color = np.where(conf[..., None] > 0, SKIN, 0.0).astype(np.float32)
    spot = geo.mask & (np.linalg.norm(head[..., :2] - (0.35, -0.2), axis=-1) < 0.12) & (conf > 0)
    twin = geo.mask & (np.linalg.norm(head[..., :2] - (-0.35, -0.2), axis=-1) < 0.2)
    conf[twin & (conf > 0)] = 0.3
    color[spot] = BLUE
    return geo, color, conf, spot, twin


def _blueness(color: np.ndarray) -> np.ndarray:
    return color[..., 2] - color[..., 0]


def test_a_mark_is_neither_mirrored_nor_spread_by_the_inpaint():
    geo, color, conf, spot, twin = _marked_sphere()
    ctx = make_ctx(geo)
    unmarked = ClassicInpaint().run(AtlasTexture(np.where(spot[..., None], SKIN, color), conf), ctx).color
    doubled = ClassicInpaint().run(AtlasTexture(color, conf), ctx).color
    ctx = make_ctx(geo)
    ctx.marks = spot.astype(np.float32)
    kept = ClassicInpaint().run(AtlasTexture(color, conf), ctx).color

    skin_blue = float(_blueness(SKIN[None])[0])
    # Without the marks the mark came back on the other cheek (the test bites) ...
    assert _blueness(doubled[twin]).max() > skin_blue + 0.3
    # ... with them it does not, and it stays where the photo shows it.
    assert _blueness(kept[twin]).max() < skin_blue + 0.02
    np.testing.assert_array_equal(kept[spot], color[spot])
    # Nor does it tint what the fill reaches far from it (the back of the head).
    back = geo.mask & (conf == 0) & ~twin
    shift = np.abs(kept[back].mean(axis=0) - unmarked[back].mean(axis=0)).max() * 255
    before = np.abs(doubled[back].mean(axis=0) - unmarked[back].mean(axis=0)).max() * 255
    assert shift < 0.5 < before, (shift, before)


def test_the_de_lighting_and_the_border_gain_do_not_carry_a_mark_either():
    geo, color, conf, spot, twin = _marked_sphere()
    # Part-confidence skin between the seen face and the fill, beside the mark: the border's ring.
    head = geo.frame.to_head(geo.positions)
    ring = geo.mask & (conf == 1.0) & (np.abs(head[..., 0] - 0.6) < 0.08) & (np.abs(head[..., 1] + 0.2) < 0.2)
    conf[ring] = 0.5
    results = {}
    for name, marked in (("without", None), ("with", spot.astype(np.float32))):
        ctx = make_ctx(geo)
        ctx.marks = marked
        inpainted = ClassicInpaint().run(AtlasTexture(color, conf), ctx)
        results[name] = ClassicLatent().run(inpainted, ctx).color
    skin_blue = float(np.median(_blueness(results["with"][(conf == 1.0) & ~spot])))
    assert _blueness(results["without"][ring | twin]).max() > skin_blue + 0.05  # the test bites
    assert _blueness(results["with"][ring | twin]).max() < skin_blue + 0.02
    # The mark keeps its own colour (de-lit as the skin is: still blue).
    assert _blueness(results["with"][spot]).min() > 0.4


@pytest.mark.parametrize("hidden", [False, True])
def test_in_atlas_reads_the_mask_at_each_texels_portrait_pixel(hidden):
    mask = np.zeros((20, 30), np.float32)
    mask[5:8, 10:14] = 1.0
    found = marks.PortraitMarks(mask, mask, np.array([100.0, 50.0], np.float32), 0.5)
    # Crop pixel (x 11, y 6) is portrait pixels (122..124, 62..64): centre (123, 63).
    coords = np.full((4, 4, 2), np.nan, np.float32)
    coords[1, 2] = (123.0, 63.0)
    coords[2, 2] = (90.0, 40.0)  # before the crop's corner
    coords[3, 3] = (100.0 + 2 * 40, 63.0)  # past its right edge
    if hidden:
        coords[1, 2] = np.nan
    out = found.in_atlas(coords)
    assert out[1, 2] == (0.0 if hidden else 1.0)
    assert out[2, 2] == 0.0 and out[3, 3] == 0.0 and out[0, 0] == 0.0


def test_freckles_a_fold_and_glasses_are_not_marks_a_mole_is():
    """What both sides of a face have (freckles, a smile's fold, glasses frames) must still be
    mirrored onto a turned face's hidden cheek: on a 3/4 view the far cheek lost 9 of 14 freckles
    and Grace Hopper's far fold, and her glasses' bridge left a hard-edged strip on her nose."""
    from avatartex.glasses import find_glasses

    face = _face("clean")
    photo = astronaut().copy()
    freckles = [(x, y) for x in range(196, 216, 4) for y in range(118, 133, 5)][:14]  # apart
    for x, y in freckles:  # the skin's hue, 12-15 L* darker
        photo[y - 1 : y + 2, x - 1 : x + 2] *= np.float32(0.82)
    fold = np.zeros(photo.shape[:2], np.float32)
    cv2.line(fold, (236, 122), (250, 150), 1.0, 2)  # a fold's shadow: darker and warmer
    photo *= 1.0 - cv2.GaussianBlur(fold, (0, 0), 0.8)[..., None] * np.array([0.35, 0.45, 0.5], np.float32)
    photo = _disc(photo, (252, 137), 3, (60 / 255, 40 / 255, 35 / 255))  # and a mole
    found = marks.find_marks(photo, face)
    assert found is not None
    assert _mask_at(found, np.array([[252.5, 137.5]])).min() == 1.0
    assert _mask_at(found, np.array(freckles, np.float32) + 0.5).max() < 0.5
    along = np.stack([np.linspace(236, 250, 15), np.linspace(122, 150, 15)], axis=1) + 0.5
    assert _mask_at(found, along).max() < 0.5

    import matplotlib.cbook

    grace = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))[..., ::-1]
    grace = grace.astype(np.float32) / 255.0
    face = max(default_landmarker().detect(grace), key=lambda f: f.size)
    glasses = find_glasses(grace, face)
    assert glasses.found
    found = marks.find_marks(grace, face, glasses)
    rows, cols = np.mgrid[0 : grace.shape[0], 0 : grace.shape[1]]
    xy = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float32) + 0.5
    frames = glasses.at(xy) > 0.5
    assert frames.sum() > 500
    assert found is None or _mask_at(found, xy[frames]).max() < 0.5


def test_the_shadow_at_the_faces_edge_is_no_mole():
    """Grace Hopper's three "moles" were the shadows where her face turns away (by her ear, under her
    chin, at her jaw's corner), cut off by the edge of what is read: kept as marks, they stayed on a
    sculpt's jaw, which faces the camera there, as dark brown spots. A dark spot the edge cuts is the
    outline's shadow; the same spot inside the face is a mole."""
    import matplotlib.cbook
    from avatartex.glasses import find_glasses

    grace = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))[..., ::-1]
    grace = grace.astype(np.float32) / 255.0
    face = max(default_landmarker().detect(grace), key=lambda f: f.size)
    found = marks.find_marks(grace, face, find_glasses(grace, face))
    outline = np.zeros(grace.shape[:2], np.uint8)
    cv2.fillPoly(outline, [np.round(face.landmarks[list(FACE_OVAL)]).astype(np.int32)], 1)
    inner = cv2.erode(outline, np.ones((3, 3), np.uint8), iterations=int(0.15 * face.interocular))
    band = (outline > 0) & (inner == 0)  # the outer 0.15 eye distances of her face
    rows, cols = np.nonzero(band)
    assert found is None or _mask_at(found, np.stack([cols, rows], axis=1) + 0.5).max() < 0.5

    # The astronaut: dark round spots straddling the edge of what is read, by her cheeks' outline, and
    # the same spots well inside her cheeks.
    face = _face("clean")
    oval = face.landmarks[list(FACE_OVAL)].astype(np.float32)
    centre = face.landmarks.mean(axis=0)
    dark = (60 / 255, 40 / 255, 35 / 255)
    photo = astronaut().copy()
    edge_spots, inner_spots = [], []
    for k in (8, 10, 25, 27):  # the cheeks' sides
        inward = centre - oval[k]
        inward /= np.linalg.norm(inward)
        edge_spots.append(oval[k] + inward * marks.OUTLINE_MARGIN_IOD * face.interocular)
        inner_spots.append(oval[k] + inward * 0.22 * face.interocular)
    for x, y in edge_spots + inner_spots:
        photo = _disc(photo, (int(round(x)), int(round(y))), 2, dark)
    found = marks.find_marks(photo, face)
    assert found is not None
    assert _mask_at(found, np.array(inner_spots, np.float32)).min() == 1.0
    assert _mask_at(found, np.array(edge_spots, np.float32)).max() < 0.5
