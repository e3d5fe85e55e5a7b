"""Marks on the skin: a mole, a birthmark, a tattoo, face paint, a spot of something on the cheek.

The classic inpaint completes what the photo does not show from what it does: a texel's mirror image
on the other side of the face, the skin around it, and far from the face the overall colour of the
seen skin. A mark is the photo's too, but it is on one side only and is not the skin's colour: as a
source it was doubled (a blue disc painted on the astronaut's cheek came back by the other mouth
corner and on the other cheek, where the photo shows that side at part confidence) and it tinted
everything the fill reached (the back of the head and the neck 8/255 less red).

``find_marks`` reads them in the portrait, where the landmarks say what is a feature: inside the
face's outline, off the eyes, brows, nostrils and lips, the compact patches whose colour stands out
from the skin around them. ``in_atlas`` carries them onto the atlas; there the photo's colour is kept
where the photo shows a mark (its confidence is not touched), and the fill draws on it no more
(``StageContext.fill_confidence``).
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
from .imaging import sample_image

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
LOCAL_SIGMA_IOD = 0.2
"""Eye distances (Gaussian sigma) of the skin around a pixel that its colour is compared with."""
LIGHTNESS_WEIGHT = 0.5
"""Weight of the lightness difference beside the chroma's (CIELAB): a crease's or a pore's shadow is
a lightness difference the light made; a mark changes the colour too, or is much darker."""
STANDS_OUT = 14.0
"""CIELAB difference (lightness weighted by LIGHTNESS_WEIGHT) from the skin around from which a
pixel is a mark; freckles and blotches stay under it, a mole (dark brown on pale skin, 20-40 L*) and
paint are well over."""
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
        out = np.zeros(coords.shape[:2], np.float32)
        if not self.mask.any():
            return out
        # Only the texels whose pixel lies in the marks' box (a texel with NaN coordinates is not).
        rows, cols = np.nonzero(self.mask)
        box = np.array([[cols.min() - 1, rows.min() - 1], [cols.max() + 2, rows.max() + 2]], np.float32)
        lo, hi = self.origin.astype(np.float32) + box / np.float32(self.scale)
        x, y = coords[..., 0], coords[..., 1]
        at = np.flatnonzero((x > lo[0]) & (x < hi[0]) & (y > lo[1]) & (y < hi[1]))
        if not len(at):
            return out
        # Pixel centres at +0.5 in both; a border of zeros, which the sampler replicates beyond.
        xy = (coords.reshape(-1, 2)[at] - self.origin) * np.float32(self.scale) + np.float32(1.0)
        out.reshape(-1)[at] = sample_image(np.pad(self.mask, 1), xy)[:, 0]
        return out


def find_marks(portrait: np.ndarray, face: Face) -> PortraitMarks | None:
    """The marks on the skin of ``face`` in ``portrait`` ((H, W, 3) float32 sRGB 0..1); None where
    there are none (or the face is too small to read any)."""
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
    # Read into the features' margins too, so that a mark beside one is whole; a patch mostly in them
    # is the feature's (a brow's end, a lid's crease the landmarks' hull left out).
    hard = face_area & ~core & (apart > STANDS_OUT)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hard.astype(np.uint8), connectivity=8)
    lo, hi = (np.asarray(MARK_AREA_IOD) * px_per_iod) ** 2
    area = stats[:, cv2.CC_STAT_AREA]
    in_margin = np.bincount(labels[margin], minlength=count)
    keep = (area >= max(lo, 2.0)) & (area <= hi) & (in_margin <= 0.5 * area)
    keep[0] = False
    if not keep.any():
        return None
    mask = keep[labels].astype(np.uint8)
    # A mark touching a feature's hull (a cheek's mole by a nostril's wing) is whole: what stands out
    # there within FEATURE_REACH_IOD of it is the mark's too.
    reach = cv2.dilate(mask, _disc(max(int(round(FEATURE_REACH_IOD * px_per_iod)), 1)))
    mask |= (core & (apart > STANDS_OUT) & (reach > 0)).astype(np.uint8)
    grow = max(int(round(GROW_IOD * px_per_iod)), 1)
    soft = cv2.GaussianBlur(cv2.dilate(mask, _disc(grow)).astype(np.float32), (0, 0), max(grow / 2.0, 0.5))
    soft = np.maximum(soft * 2.0, mask.astype(np.float32))  # whole on the mark, fading beyond it
    return PortraitMarks(np.clip(soft, 0.0, 1.0).astype(np.float32), origin, scale)


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
        face = cv2.erode(face, _disc(inset))
    core = np.zeros(shape, np.uint8)
    for part in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR, RIGHT_EYEBROW, LEFT_EYEBROW, NOSE_LOWER + LIPS_OUTER):
        hull = cv2.convexHull(np.round(lm[list(part)] * 16).astype(np.int32))
        cv2.fillConvexPoly(core, hull, 1, cv2.LINE_8, shift=4)
    grown = cv2.dilate(core, _disc(max(int(round(FEATURE_MARGIN_IOD * px_per_iod)), 1)))
    return face > 0, core > 0, (grown > 0) & (core == 0)


def _disc(radius: int) -> np.ndarray:
    """A disc structuring element of ``radius`` pixels."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


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
    portrait: np.ndarray, face: Face, portrait_coords: np.ndarray, color: np.ndarray, confidence: np.ndarray,
    atlas: AtlasGeometry,
) -> np.ndarray | None:  # fmt: skip
    """(S, S) float32 0..1: how far each texel shows a mark on one side of the face (``find_marks``
    carried onto the atlas, ``one_sided``); None where the photo shows none."""
    found = find_marks(portrait, face)
    if found is None:
        return None
    marks = one_sided(found.in_atlas(portrait_coords), color, confidence, atlas)
    return marks if marks.any() else None
