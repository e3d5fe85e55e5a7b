"""Marks on the skin: a mole, a birthmark, a tattoo, face paint, a spot of something on the cheek.

The classic inpaint completes what the photo does not show from what it does: a texel's mirror image
on the other side of the face, the skin around it, and far from the face the overall colour of the
seen skin. A mark is the photo's too, but it is on one side only and is not the skin's colour: as a
source it was doubled (a blue disc painted on the astronaut's cheek came back by the other mouth
corner and on the other cheek, where the photo shows that side at part confidence) and it tinted
everything the fill reached (the back of the head and the neck 8/255 less red).

``find_marks`` reads them in the portrait, where the landmarks say what is a feature: inside the
face's outline, off the eyes, brows, nostrils and lips and off the glasses, the patches of a hue of
their own and the small round spots much darker than the skin around them (a mole). What is of the
skin's hue and not a round spot — freckles, a fold's or a wrinkle's shadow — both sides of a face
have: a turned face's hidden cheek needs it mirrored. ``in_atlas`` carries the marks onto the atlas
(``one_sided`` keeps those the other side does not show too); there the photo's colour is kept where
the photo shows a mark (its confidence is not touched), and the fills draw on it no more
(``StageContext.fill_confidence``). A mole amid the skin is also not taken off as hair by the
regions step (``PortraitMarks.spots``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .atlas import AtlasGeometry
from .face import (
    FACE_OVAL,
    LEFT_EYE_CONTOUR,
    LEFT_EYEBROW,
    LIPS_OUTER,
    NOSE_LOWER,
    RIGHT_EYE_CONTOUR,
    RIGHT_EYEBROW,
    Face,
)
from .glasses import PortraitGlasses
from .imaging import disc, sample_image

PX_PER_IOD = 64.0
"""Pixels per eye distance the portrait's face is read at (fewer where the photo has fewer): a
mole of 0.04 eye distances (about 2.5 mm) is a few pixels."""
FEATURE_MARGIN_IOD = 0.1
"""Eye distances round the eyes, brows, nostrils and lips (their landmarks' hulls) where what stands
out is the feature's (a lid's crease, lashes, a brow's end, a lip's edge: the far side of the face
needs their mirror copy): a patch lying there for the most part is no mark."""
FEATURE_REACH_IOD = 0.1
"""Eye distances into a feature's hull a mark beside it is followed (what stands out there)."""
OUTLINE_MARGIN_IOD = 0.06
"""Eye distances inside the face's outline from which marks are read: its edge holds the
background, hair and the jaw's shadow, which the regions step and the confidence deal with."""
EDGE_SPOT_IOD = 0.02
"""Eye distances from the edge of what is read (OUTLINE_MARGIN_IOD in from the face's outline)
within which a dark spot of the skin's hue is the outline's shadow cut off by that edge, not a mole:
Grace Hopper's three "moles" (by her ear, under her chin, at her jaw's corner) were 0.066-0.069 eye
distances in from her outline, the shadows where her face turns away, and stayed on a sculpt's jaw,
which faces the camera there, as dark brown spots."""
LOCAL_SIGMA_IOD = 0.2
"""Eye distances (Gaussian sigma) of the skin around a pixel that its colour is compared with."""
LIGHTNESS_WEIGHT = 0.5
"""Weight of the lightness difference beside the chroma's (CIELAB): a crease's or a pore's shadow is
a lightness difference the light made; a mark changes the colour too, or is much darker."""
STANDS_OUT = 14.0
"""CIELAB difference (lightness weighted by LIGHTNESS_WEIGHT) from the skin around over which a pixel
is not read as that skin (``find_marks``' second reading), nor two texels as alike (``one_sided``)."""
COLOURED = 12.0
"""CIELAB difference across the skin's hue (a*b*) from the skin around over which a pixel is of a
colour of its own (paint, a tattoo's ink, a red birthmark: 20-70); a fold's or a freckle's warmer
shadow, of the skin's hue, stays under."""
SATURATED = 25.0
"""CIELAB chroma along the skin's hue by which a pixel more saturated than the skin around is of a
colour of its own too (a fold's warmer shadow: under 15)."""
DARK_SPOT = 25.0
"""L* by which a pixel of the skin's hue is darker than the skin around for a mole (dark brown on
pale skin: 30-60); a freckle (10-20) stays under, and a fold's shadow is no round spot (SPOT_IOD)."""
SPOT_IOD = 0.15
"""Square root of the largest area (eye distances) of a dark spot of the skin's hue read as a mole."""
SPOT_RING_IOD = 0.06
"""Eye distances round a mole within which the photo must show skin, not hair, for the regions step
to keep it (``PortraitMarks.spots``): a strand's end by a fringe is a round dark spot too."""
SPOT_ELONGATION = 2.5
"""Most times a mole's box is longer than wide (a fold's or a wrinkle's shadow is a line)."""
FRAME_GROW_IOD = 0.04
"""Eye distances by which the glasses' frames are kept off the marks (their soft edge, their shadow)."""
MARK_AREA_IOD = (0.02, 0.45)
"""Square roots of the least and the largest area (eye distances) of a mark: under the first, noise;
over the second, something that is not a mark on the skin (a beard, a shadow across the face, hair
over it), left to the steps that deal with it."""
GROW_IOD = 0.03
"""Eye distances a mark is grown by: its soft edge, which a photo's blur spreads over the skin."""


@dataclass(frozen=True)
class PortraitMarks:
    """The marks of a portrait's face, in a crop of it read at ``scale``."""

    mask: np.ndarray
    """(h, w) float32 0..1: how far each crop pixel is a mark."""
    spots: np.ndarray
    """(h, w) float32 0..1: the marks that are small round spots (a mole, a beauty spot: SPOT_IOD),
    which the regions step does not take off as hair however hair-coloured they are."""
    origin: np.ndarray
    """(2,) the crop's top-left corner in portrait pixels (x, y)."""
    scale: float
    """Crop pixels per portrait pixel."""

    @property
    def area_px(self) -> float:
        """The marks' area in portrait pixels."""
        return float(self.mask.sum()) / self.scale**2

    def in_atlas(self, portrait_coords: np.ndarray) -> np.ndarray:
        """(S, S) float32 0..1: how far each texel shows a mark, from its portrait pixel
        (``portrait_coords``, NaN where the photo does not show it: 0 there)."""
        coords = np.asarray(portrait_coords, np.float32)
        return self._read(self.mask, coords.reshape(-1, 2)).reshape(coords.shape[:-1])

    def spots_at(self, coords: np.ndarray) -> np.ndarray:
        """(N,) float32 0..1: how far portrait pixel coordinates (N, 2) show a small round mark (NaN:
        0)."""
        return self._read(self.spots, np.asarray(coords, np.float32))

    def _read(self, mask: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """(N,) ``mask`` at portrait pixel coordinates ``xy`` (N, 2); 0 outside it and at NaN."""
        out = np.zeros(len(xy), np.float32)
        if not mask.any():
            return out
        # Only the points in the mask's box (NaN coordinates are not): at 1024² the atlas's million.
        rows, cols = np.nonzero(mask)
        box = np.array([[cols.min() - 1, rows.min() - 1], [cols.max() + 2, rows.max() + 2]], np.float32)
        lo, hi = self.origin.astype(np.float32) + box / np.float32(self.scale)
        x, y = xy[:, 0], xy[:, 1]
        at = np.flatnonzero((x > lo[0]) & (x < hi[0]) & (y > lo[1]) & (y < hi[1]))
        if len(at):
            # Pixel centres at +0.5 in both; a border of zeros, which the sampler replicates beyond.
            crop_xy = (xy[at] - self.origin) * np.float32(self.scale) + np.float32(1.0)
            out[at] = sample_image(np.pad(mask, 1), crop_xy)[:, 0]
        return out


def find_marks(
    portrait: np.ndarray, face: Face, glasses: PortraitGlasses | None = None
) -> PortraitMarks | None:
    """The marks on the skin of ``face`` in ``portrait`` ((H, W, 3) float32 sRGB 0..1), off the frames
    of its ``glasses`` where it has them; None where there are none (or the face is too small to
    read any)."""
    lm = np.asarray(face.landmarks, np.float32)
    iod = face.interocular
    if not np.isfinite(lm).all() or iod < 8.0:
        return None
    scale = min(1.0, PX_PER_IOD / iod)
    outline = lm[list(FACE_OVAL)]
    h, w = portrait.shape[:2]
    x0, y0 = np.maximum(np.floor(outline.min(axis=0)) - 2, 0).astype(int)
    x1, y1 = np.minimum(np.ceil(outline.max(axis=0)) + 3, (w, h)).astype(int)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    crop = np.ascontiguousarray(portrait[y0:y1, x0:x1], np.float32)
    size = (max(int(round((x1 - x0) * scale)), 1), max(int(round((y1 - y0) * scale)), 1))
    if scale < 1.0:
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    origin = np.array([x0, y0], np.float32)
    px_per_iod = iod * scale
    face_area, core, margin = _face_areas(crop.shape[:2], (lm - origin) * scale, px_per_iod)
    edge = face_area & ~cv2.erode(
        face_area.astype(np.uint8), disc(max(int(round(EDGE_SPOT_IOD * px_per_iod)), 1))
    ).astype(bool)
    if glasses is not None and glasses.found:
        face_area &= ~_frames(glasses, crop.shape[:2], origin, scale, px_per_iod)
    skin = face_area & ~core & ~margin
    if skin.sum() < 64:
        return None
    lab = cv2.cvtColor(np.clip(crop, 0.0, 1.0), cv2.COLOR_RGB2Lab)
    lab[..., 0] *= np.float32(LIGHTNESS_WEIGHT)
    sigma = LOCAL_SIGMA_IOD * px_per_iod
    # The skin around each pixel, twice: the second time without what the first found standing out,
    # so that a large mark does not pull the skin around it towards its own colour.
    around = skin.astype(np.float32)
    for _ in range(2):
        reference = _local_mean(lab, around, sigma)
        apart = np.linalg.norm(lab - reference, axis=-1)
        around = (skin & (apart <= STANDS_OUT)).astype(np.float32)
    away = lab - reference
    # Of another hue than the skin around (across its hue in a*b*), or far more saturated: the skin's
    # own shadows (a fold's, a freckle's) are of its hue, warmer.
    hue = reference[..., 1:] / np.maximum(np.hypot(reference[..., 1], reference[..., 2]), 1e-3)[..., None]
    along = away[..., 1] * hue[..., 0] + away[..., 2] * hue[..., 1]
    across = np.abs(away[..., 2] * hue[..., 0] - away[..., 1] * hue[..., 1])
    coloured = (across > COLOURED) | (along > SATURATED)
    dark = -away[..., 0] / np.float32(LIGHTNESS_WEIGHT) > DARK_SPOT
    # Read into the features' margins too, so that a mark beside one is whole; a patch mostly in them
    # is the feature's (a brow's end, a lid's crease, a fold along the nose the landmarks' hull left
    # out).
    standing = coloured | dark
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        (face_area & ~core & standing).astype(np.uint8), connectivity=8
    )
    lo, hi = (np.asarray(MARK_AREA_IOD) * px_per_iod) ** 2
    area = stats[:, cv2.CC_STAT_AREA]
    in_margin = np.bincount(labels[margin], minlength=count)
    keep = (area >= max(lo, 2.0)) & (area <= hi) & (in_margin <= 0.5 * area)
    # A patch of the skin's hue, only darker, is a mole where it is a small round spot; a longer one is
    # a fold, a wrinkle or a crease's shadow, which the other side of the face has too.
    of_colour = np.bincount(labels[coloured], minlength=count) >= 0.5 * area
    width, height = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    round_spot = (
        (area <= (SPOT_IOD * px_per_iod) ** 2)
        & (np.maximum(width, height) <= SPOT_ELONGATION * np.minimum(width, height))
        & (area >= 0.4 * width * height)
    )
    # A dark spot the edge of what is read cuts is the face's edge shadow (EDGE_SPOT_IOD).
    cut = np.bincount(labels[edge], minlength=count) > 0
    keep &= of_colour | (round_spot & ~cut)
    keep[0] = False
    if not keep.any():
        return None
    spots = _soft((keep & round_spot)[labels].astype(np.uint8), px_per_iod)
    mask = keep[labels].astype(np.uint8)
    # A mark touching a feature's hull (a cheek's mole by a nostril's wing) is whole: what stands out
    # there within FEATURE_REACH_IOD of it is the mark's too.
    reach = cv2.dilate(mask, disc(max(int(round(FEATURE_REACH_IOD * px_per_iod)), 1)))
    mask |= (face_area & core & standing & (reach > 0)).astype(np.uint8)
    return PortraitMarks(_soft(mask, px_per_iod), spots, origin, scale)


def _soft(mask: np.ndarray, px_per_iod: float) -> np.ndarray:
    """(h, w) float32 0..1: ``mask`` (uint8) whole, grown by GROW_IOD with a soft edge."""
    grow = max(int(round(GROW_IOD * px_per_iod)), 1)
    soft = cv2.GaussianBlur(cv2.dilate(mask, disc(grow)).astype(np.float32), (0, 0), max(grow / 2.0, 0.5))
    return np.clip(np.maximum(soft * 2.0, mask.astype(np.float32)), 0.0, 1.0).astype(np.float32)


def _frames(
    glasses: PortraitGlasses, shape: tuple[int, int], origin: np.ndarray, scale: float, px_per_iod: float
) -> np.ndarray:
    """(h, w) bool: the crop's pixels (``origin``, ``scale``) the glasses cover (a frame, a lens's
    reflection), grown by FRAME_GROW_IOD: dark and unlike the skin, but no mark (the regions step
    takes them off)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    xy = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float32) + np.float32(0.5)
    covered = glasses.covered_at(origin + xy / np.float32(scale)).reshape(shape) > 0.3
    grow = max(int(round(FRAME_GROW_IOD * px_per_iod)), 1)
    return cv2.dilate(covered.astype(np.uint8), disc(grow)) > 0


def _face_areas(
    shape: tuple[int, int], lm: np.ndarray, px_per_iod: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, w) bool each: inside the face's outline (OUTLINE_MARGIN_IOD in from it); the features (the
    hulls of the eyes, the brows, and the nostrils and lips as one: the upper lip between them holds
    a moustache); and their margin (FEATURE_MARGIN_IOD round them)."""
    face = np.zeros(shape, np.uint8)
    cv2.fillPoly(face, [np.round(lm[list(FACE_OVAL)] * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    inset = int(round(OUTLINE_MARGIN_IOD * px_per_iod))
    if inset > 0:
        face = cv2.erode(face, disc(inset))
    core = np.zeros(shape, np.uint8)
    for part in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR, RIGHT_EYEBROW, LEFT_EYEBROW, NOSE_LOWER + LIPS_OUTER):
        hull = cv2.convexHull(np.round(lm[list(part)] * 16).astype(np.int32))
        cv2.fillConvexPoly(core, hull, 1, cv2.LINE_8, shift=4)
    grown = cv2.dilate(core, disc(max(int(round(FEATURE_MARGIN_IOD * px_per_iod)), 1)))
    return face > 0, core > 0, (grown > 0) & (core == 0)


def _local_mean(values: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian mean of ``values`` (h, w, C) over the pixels ``weights`` (h, w) holds."""
    blurred = cv2.GaussianBlur(values * weights[..., None], (0, 0), sigma)
    total = cv2.GaussianBlur(weights, (0, 0), sigma)
    return blurred / np.maximum(total, 1e-6)[..., None]


def one_sided(
    marks: np.ndarray, color: np.ndarray, confidence: np.ndarray, atlas: AtlasGeometry
) -> np.ndarray:
    """``marks`` (S, S) less those the other side of the face shows too: where a texel's mirror image
    is seen (confidence over 0.5) and is marked as well or of like colour, it is the face's (a
    moustache, freckles or make-up on both cheeks), and the far side of a turned face needs its
    mirror copy. ``color`` (S, S, 3) sRGB 0..1 is the atlas's."""
    flat = np.asarray(marks, np.float32).reshape(-1)
    at = np.flatnonzero(flat > 0)
    if not len(at):
        return np.asarray(marks, np.float32)
    twin = atlas.mirror_index().reshape(-1)[at]
    seen = np.asarray(confidence, np.float32).reshape(-1)[twin] >= 0.5
    rgb = np.clip(np.asarray(color, np.float32).reshape(-1, 3), 0.0, 1.0)
    lab = cv2.cvtColor(np.concatenate([rgb[at], rgb[twin]])[:, None], cv2.COLOR_RGB2Lab)[:, 0]
    lab[:, 0] *= np.float32(LIGHTNESS_WEIGHT)
    like = np.linalg.norm(lab[: len(at)] - lab[len(at) :], axis=1) <= STANDS_OUT
    out = flat.copy()
    out[at[seen & ((flat[twin] >= 0.5) | like)]] = 0.0
    return out.reshape(np.shape(marks))


def atlas_marks(
    found: PortraitMarks | None, portrait_coords: np.ndarray, color: np.ndarray, confidence: np.ndarray,
    atlas: AtlasGeometry,
) -> np.ndarray | None:  # fmt: skip
    """(S, S) float32 0..1: how far each texel shows a mark on one side of the face (the portrait's
    ``found`` marks carried onto the atlas, ``one_sided``); None where the photo shows none."""
    if found is None:
        return None
    marks = one_sided(found.in_atlas(portrait_coords), color, confidence, atlas)
    return marks if marks.any() else None
