"""Glasses in the portrait: where their frames lie, so that the frames are filled, not painted on the skin.

Everything inside the face outline counts as skin for the projection (``projection.skin_regions``),
so a pair of glasses lands on the head as part of the face: rims around the eyes, a bar across the
nose and, at the temples, arms that the side views stretch into streaks. This module finds the
frames in the photo; ``regions.complete_regions`` takes them off the partial texture like the
photo's hair, and the inpaint fills them with the skin around.

The frames are found without a face-parsing net, from what makes a frame a frame: a thin structure
darker than what is on either side of it (a grey-level black-hat of the lightness, FRAME_DISC wide),
forming a *closed loop around each eye* (the rim: the best closed path around the eye through the
dark structure, found by dynamic programming in polar coordinates, must be dark along RIM_SHARE of
its length around both eyes) and *joined over the nose* (a bridge: the strip between the loops
crossed by dark structure along BRIDGE_SHARE of its length). Wrinkles, crow's feet and eyelid
creases are dark and thin too, but do not go all the way round an eye, nor across the nose.

Once glasses are found, each rim is taken *all the way round*, its light stretches too: a rim of
translucent plastic (Grace Hopper's amber lower rims) is frame-dark only in places, and the best
loop may leave it for the eye-bag crease inside the lens. So a second loop, which of two about as
dark takes the outer (RIM_OUTWARD), gives the lens's smooth outline: a Fourier series of its
radius over the angle (RIM_HARMONICS), fitted through the middles of the dark runs across it where
it is frame-dark, robustly (Tukey's biweight) and stiffly (RIM_STIFFNESS), so that a stretch that
wanders off is dropped and a stretch without evidence is bridged. The frame is then a band along
that outline as thick as the rim's median dark run (at least RIM_MIN_THICKNESS), above the eyes
the dark runs across the outline too (a cat-eye or browline bar is thicker than the band), the dark
structure on the bridge and along the arms towards the ears, and what dark structure or highlight
joins them a little way above the eyes and outside the lenses; the eyes and the brows' cores
(their landmark contours) are always kept.

Measured: Grace Hopper's frames give loops dark along 97 % and 89 % and a bridge crossed along
100 %; the astronaut (no glasses) 36 %, 41 % and 0 %. On Grace Hopper the lower halves of the lens
outlines are covered along 100 % and 100 % (the best loops' runs: 100 % and 38 %), the eye bags
are left, and the frame is 0.79 square eye distances (0.81 before the outline) of which 5 % lies
more than 0.1 eye distances inside a lens (29 % before). Found on: dark or tinted frames; not
found: rimless glasses, and bars thicker than FRAME_DISC (only their edges respond). Not taken: a
light stretch of rim longer than about a sixth of the way round (the stiff outline bridges it
straight: on Grace Hopper's left lens it passes up to 0.1 eye distances outside the pale amber
below the outer corner), and a light bridge (her amber one).

The lenses' tint is taken out of the skin behind them (``lens_tint``): the median CIELAB chroma
of the skin inside the lenses against the skin around them, outside the frame, the reflections,
the eyes and the brows, is the tint (one for both lenses); the photo is moved back by it inside
each lens's outline as far as each pixel is tinted (light the lens reflects is added on it, not
seen through it: moved back too, Grace Hopper's pale crescents turned grey-green), its lightness
left alone (the skin round the eyes is darker by its own shading, which a lens's darkening cannot
be told from). The room reflected in a lens (a pale crescent under
Grace Hopper's eyes) is found as what is lighter and greyer than the lenses' skin
(``_reflections``) and taken off with the frames. Measured: Grace Hopper's amber lenses shift the
skin by (a*, b*) = (7.9, 4.8) (lens by lens (11.5, 5.1) and (6.0, 5.6)); an amber tint of (3.0, 8.8)
put on the astronaut's skin through drawn lenses is read as (2.4, 7.7) and its error inside the
lenses falls from 5.7 to 1.7 units (tests/test_glasses.py); clear lenses read (-0.6, -1.6) (the skin
round the eyes is not quite the cheeks').
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .atlas_filters import GAMMA, balanced
from .face import (
    FACE_OVAL,
    LEFT_EYE_CONTOUR,
    LEFT_EYEBROW_OUTLINE,
    RIGHT_EYE_CONTOUR,
    RIGHT_EYEBROW_OUTLINE,
    Face,
)
from .imaging import from_lab, sample_image, to_lab
from .projection import polygon_mask

PX_PER_IOD = 64.0
"""Resolution of the face-aligned crop the frames are looked for in: a rim is 0.02-0.1 eye distances
thick, one to six pixels here."""
CROP = (1.9, 1.0, 1.0)
"""Half-width, extent above and below the eyes' midpoint of that crop, in eye distances: the frames
and their arms as far as the ears."""
FRAME_DISC = 0.1
"""Eye distances: the black-hat's disc; darker structures thinner than this are frame candidates
(a metal rim, a plastic bar; the thick upper bar of cat-eye frames is found from its two edges)."""
FRAME_DARKNESS = 8.0
"""CIE L* by which a pixel must be darker than its closing to be a frame candidate. Around the eyes
of the astronaut photo (no glasses) 16-23 % of the best loop passes this, of Grace Hopper's
frames 92-95 %."""
FRAME_SHINE = 15.0
"""CIE L* by which a pixel must be lighter than its opening with FRAME_DISC to be a frame's
highlight (the metal studs on Grace Hopper's frame corners: 45-65)."""
SHINE_LIGHTNESS = 85.0
"""CIE L* a frame's highlight must reach besides: the studs are 88-95, the thin strip of eyelid
between a cat-eye bar and the lashes is as much lighter than its opening but 55-75."""
RIM_RADII = (0.15, 0.85)
"""Eye distances from an eye's centre within which its rim is searched (a lens is 0.6-0.9 eye
distances wide and sits around the eye)."""
RIM_ANGLES = 120
"""Directions of the polar search (3 degrees apart)."""
RIM_SHARE = 0.6
"""Share of a loop's length that must be frame-dark, around both eyes, for the photo to show glasses."""
FRAME_BAND = 0.08
"""Eye distances either side of a rim loop in which dark pixels belong to the frame (the loop runs
along one edge of a thick bar)."""
RIM_OUTWARD = 20.0
"""CIE L* per eye distance from the eye that the search for a lens's outline adds to the capped
frame darkness: of two loops about as dark, it takes the outer one (the lens's edge, not the
eye-bag crease inside it, which the best loop may follow)."""
RIM_HARMONICS = 4
"""Harmonics of the Fourier series of a rim's radius over the angle around its eye that gives the
lens's smooth outline: a cat-eye or round lens seen from its eye's centre is an egg with a raised
corner; on Grace Hopper's the dark runs' middles lie 0.9 and 1.3 pixels (robust spread) about it."""
RIM_STIFFNESS = 0.002
"""Weight of the outline's mean squared bending (pixels per radian squared, squared) against its
mean squared distance to the dark runs' middles (pixels squared): without it four harmonics swing
across a stretch without evidence (a drawn rim whose lowest sixth is pale: the outline missed 43 %
of it; with it none)."""
RIM_FIT_SPREAD = 1.5
"""Pixels: the least robust spread (MAD scaled to a standard deviation) of the dark runs' middles
about the smooth outline; Tukey's biweight drops middles more than RIM_FIT_CUT spreads off (7
pixels: the eye-bag crease a best loop follows inside Grace Hopper's lens lies about 15 in)."""
RIM_FIT_CUT = 4.685
"""Tukey's biweight constant (95 % efficiency on Gaussian residuals)."""
RIM_FIT_ROUNDS = 8
"""Rounds of reweighted least squares; on Grace Hopper's lenses the outline moves by under 0.4
pixel a round after the fourth."""
RIM_MIN_THICKNESS = 0.07
"""Eye distances: the least thickness of the band drawn along a lens's smooth outline. Grace
Hopper's rims' median dark run is 5 pixels (0.078) on the right, 4 on the left; her amber lower rims
are 3-5 pixels across, their pale stretches not frame-dark at all."""
BRIDGE_HEIGHT = 0.3
"""Eye distances: height of the strip between the rims, over the nose, where the bridge is taken."""
BRIDGE_SHARE = 0.6
"""Share of the way between the rims that the bridge's strip must be crossed by frame-dark pixels:
frames join over the nose, a face's creases around its eyes do not."""
ARM_LENGTH = 0.9
"""Eye distances from a rim's outermost point towards the ear along which an arm is taken."""
ARM_HEIGHT = 0.2
"""Eye distances: height of that strip."""
JOINED_REACH = 0.12
"""Eye distances: how far the frame found on the rims, bridge and arms is continued through dark
structure joined to it (the raised outer corners of cat-eye frames lie above the arms' strips), above
the eyes and outside the lenses."""
KEPT_EYE_GROW = 0.3
"""How much the eye contours are grown (as polygons, about their centres) before they are kept: the
lashes and lids are dark and thin too."""
KEPT_BROW_GROW = -0.1
"""The same for the brows, shrunk (their outer tips reach over the corners of cat-eye frames): kept
from the bridge's and the arms' dark structure."""
BROW_CORE_GROW = -0.3
"""The brows' cores, kept even from a rim's dark run (which may follow a brow's lower edge)."""


@dataclass
class PortraitGlasses:
    """The portrait's glasses frames, as a probability map in a face-aligned crop."""

    found: bool
    """Whether the photo shows glasses (a frame-dark loop around both eyes)."""
    rim_share: tuple[float, float]
    """Share of each eye's best loop (the character's right, then left) that is frame-dark."""
    bridge_share: float
    """Share of the columns between the two loops where the strip over the nose is frame-dark."""
    frame: np.ndarray
    """(h, w) float32 0..1 in the crop: a frame (0 everywhere when none was found)."""
    to_crop: np.ndarray
    """(2, 3) affine map from portrait pixels to crop pixels."""
    lenses: tuple[np.ndarray, ...]
    """(RIM_ANGLES, 2) each lens's smooth outline, the middle of its rim, in portrait pixels: around
    the character's right eye, then the left; point i lies 360 i / RIM_ANGLES degrees from the
    photo's right of the eye, turning downwards first (a quarter of the way round: below the eye).
    Empty when no glasses were found."""
    reflections: np.ndarray | None = None
    """(h, w) float32 0..1 in the crop: a reflection in a lens (``_reflections``); None: none."""
    dark: bool = False
    """Whether the lenses are dark (sunglasses, ``dark_lenses``): the eyes behind them are not seen,
    and the lenses are part of ``frame``."""

    def at(self, coords: np.ndarray) -> np.ndarray:
        """(N,) frame probability at portrait pixel coordinates (N, 2); 0 outside the crop."""
        return self._sample(self.frame, coords)

    def reflection_at(self, coords: np.ndarray) -> np.ndarray:
        """(N,) probability of a reflection in a lens at portrait pixel coordinates (N, 2)."""
        if self.reflections is None:
            return np.zeros(len(coords), np.float32)
        return self._sample(self.reflections, coords)

    def covered_at(self, coords: np.ndarray) -> np.ndarray:
        """(N,) probability that the glasses, not the skin, show at portrait pixel coordinates
        (N, 2): a frame or the room reflected in a lens."""
        return np.maximum(self.at(coords), self.reflection_at(coords))

    def lens_at(self, coords: np.ndarray) -> np.ndarray:
        """(N,) float32 1 where portrait pixel coordinates (N, 2) lie inside a lens's outline (its
        rim's middle), 0 elsewhere, at NaN and without glasses: skin seen through the lens, which a
        tinted lens darkens."""
        from skimage.measure import points_in_poly

        xy = np.asarray(coords)
        inside = np.zeros(len(xy), np.float32)
        if not self.found or not self.lenses:
            return inside
        # The polygon test on the points in the lenses' box only: over every texel of a 1024² atlas
        # it took 0.7 s a request (NaN coordinates fall outside the box).
        low, high = np.concatenate(self.lenses).min(axis=0), np.concatenate(self.lenses).max(axis=0)
        x, y = xy[:, 0], xy[:, 1]
        near = np.flatnonzero((x >= low[0]) & (x <= high[0]) & (y >= low[1]) & (y <= high[1]))
        points = xy[near].astype(np.float64)
        for lens in self.lenses:
            inside[near[points_in_poly(points, np.asarray(lens, np.float64))]] = 1.0
        return inside

    def _sample(self, crop_map: np.ndarray, coords: np.ndarray) -> np.ndarray:
        a = self.to_crop.astype(np.float32)
        xy = np.asarray(coords, np.float32) @ a[:, :2].T + a[:, 2]
        # The map's border is zero and the sampler replicates it: outside the crop reads 0.
        return sample_image(crop_map, xy)[..., 0]


def _eye_crop(portrait: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crop sRGB (h, w, 3), the landmarks in crop pixels, the (2, 3) portrait -> crop map): the eyes
    level, PX_PER_IOD pixels per eye distance, whatever the photo's size and roll."""
    eyes, x_axis, up = face.axes()
    down = -up
    k = PX_PER_IOD / max(face.interocular, 1e-3)
    half_w, above, below = CROP
    w, h = int(2 * half_w * PX_PER_IOD), int((above + below) * PX_PER_IOD)
    rot = np.stack([x_axis, down]) * k
    to_crop = np.concatenate([rot, (np.array([half_w, above]) * PX_PER_IOD - rot @ eyes)[:, None]], axis=1)
    cv_map = to_crop.copy()
    cv_map[:, 2] += rot @ np.array([0.5, 0.5]) - 0.5  # cv2 puts pixel centres at integers
    image = cv2.warpAffine(
        np.ascontiguousarray(portrait, np.float32), cv_map, (w, h), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    points = face.landmarks.astype(np.float64) @ to_crop[:, :2].T + to_crop[:, 2]
    return image, points, to_crop


SKIN_MIN_RATIOS = (0.35, 0.17)
"""The least green and blue, over red, in linear light, of a face's skin under a light of no colour:
Grace Hopper's warm skin is 0.37 and 0.19, the astronaut's 0.66 and 0.45; under a tungsten light
left in the photo (no eye whites seen to take it out) 0.27 and 0.07."""


def skin_plausible(image: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """The crop (sRGB 0..1) with the green and blue of its face's skin (median over ``skin``, in linear
    light) raised to SKIN_MIN_RATIOS of its red where they are below them: a warm light's cast. The
    frame's highlights (SHINE_LIGHTNESS: the metal studs at Grace Hopper's lens corners) lost a tenth
    of their lightness under a tungsten light and stayed on the skin as pale blobs."""
    if skin.sum() < 200:
        return image
    red, green, blue = np.median(np.clip(image[skin], 0.0, 1.0) ** GAMMA, axis=0)
    if red <= 1e-4:
        return image
    gains = np.array(
        [
            1.0,
            max(1.0, SKIN_MIN_RATIOS[0] * red / max(green, 1e-4)),
            max(1.0, SKIN_MIN_RATIOS[1] * red / max(blue, 1e-4)),
        ],
        np.float32,
    )
    if np.all(gains == 1.0):
        return image
    return balanced(image, gains)


def even_lightness(lightness: np.ndarray, skin: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """CIE L* of the crop with the light's slope across the face taken out: the log-luminance plane
    fitted to the face's ``skin`` (robustly), levelled about ``centre`` (the eyes' midpoint), at most
    EVEN_MAX_SLOPE stops per eye distance. A frame's darkness is a ratio of luminances; in L*
    differences a rim in a side light's shadow (2.6 stops down: 8 L* become 4.7) went unseen, and
    the lens's outline was fitted to the creases around it."""
    h, w = lightness.shape
    skin = skin & (lightness > 5.0) & (lightness < 97.0)
    if skin.sum() < 200:
        return lightness
    level = np.log2(_luminance(lightness))
    ys, xs = np.nonzero(skin)
    design = np.stack([np.ones(len(xs)), (xs - centre[0]) / PX_PER_IOD, (ys - centre[1]) / PX_PER_IOD], 1)
    target = level[ys, xs].astype(np.float64)
    keep = np.ones(len(xs), bool)
    for _ in range(EVEN_ROUNDS):  # trimmed: the frame, shadows of the nose, hair on the face drop out
        fit = np.linalg.lstsq(design[keep], target[keep], rcond=None)[0]
        residual = target - design @ fit
        spread = 1.4826 * np.median(np.abs(residual[keep] - np.median(residual[keep])))
        keep = np.abs(residual) <= EVEN_TRIM * max(spread, 0.05)
    slope = np.clip(fit[1:], -EVEN_MAX_SLOPE, EVEN_MAX_SLOPE)
    grid_y, grid_x = np.mgrid[0:h, 0:w]
    tilt = slope[0] * (grid_x - centre[0]) / PX_PER_IOD + slope[1] * (grid_y - centre[1]) / PX_PER_IOD
    return _lightness(_luminance(lightness) * np.exp2(-tilt)).astype(np.float32)


EVEN_ROUNDS = 4
"""Rounds of the trimmed plane fit."""
EVEN_TRIM = 2.5
"""Robust spreads beyond which a skin pixel is left out of the next round."""
EVEN_MAX_SLOPE = 3.0
"""Stops per eye distance: the steepest light slope taken out (a side light on a face is 1-2)."""


def _luminance(lightness: np.ndarray) -> np.ndarray:
    """CIE L* -> relative luminance Y (0..1)."""
    f = (np.asarray(lightness, np.float64) + 16.0) / 116.0
    return np.where(f > 6.0 / 29.0, f**3, 3.0 * (6.0 / 29.0) ** 2 * (f - 4.0 / 29.0))


def _lightness(luminance: np.ndarray) -> np.ndarray:
    """Relative luminance Y -> CIE L* (0..100)."""
    y = np.clip(luminance, 0.0, 1.0)
    f = np.where(y > (6.0 / 29.0) ** 3, np.cbrt(y), y / (3.0 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return 116.0 * f - 16.0


def frame_darkness(lightness: np.ndarray, disc_px: float) -> np.ndarray:
    """(h, w) float32: how much darker (CIE L*) each pixel is than the grey closing with a disc of
    ``disc_px`` pixels (a black-hat): high on dark structures thinner than the disc."""
    light = np.ascontiguousarray(lightness, np.float32)
    return cv2.morphologyEx(light, cv2.MORPH_CLOSE, _disc(disc_px)) - light


def _disc(diameter: float) -> np.ndarray:
    """An elliptic structuring element about ``diameter`` pixels across (odd, at least 3)."""
    size = max(3, int(round(diameter)) | 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def best_loop(gain: np.ndarray, max_step: int = 1) -> np.ndarray:
    """(n,) column per row of the closed path of largest total ``gain`` (n rows = directions around
    a centre, m columns = radii), moving at most ``max_step`` columns from one row to the next, the
    last row within ``max_step`` of the first (dynamic programming from every start at once)."""
    n, m = gain.shape
    starts = np.arange(m)
    total = np.full((m, m), -np.inf)  # (start, current column)
    total[starts, starts] = gain[0]
    back = np.zeros((n, m, m), np.int8)
    shifts = range(-max_step, max_step + 1)
    for i in range(1, n):
        best = np.full((m, m), -np.inf)
        for d in shifts:
            moved = np.full((m, m), -np.inf)
            # moved[:, j] = total[:, j + d]: arriving at column j from column j + d.
            if d >= 0:
                moved[:, : m - d] = total[:, d:]
            else:
                moved[:, -d:] = total[:, : m + d]
            better = moved > best
            best = np.where(better, moved, best)
            back[i] = np.where(better, d, back[i])
        total = best + gain[i]
    closes = np.abs(starts[None, :] - starts[:, None]) <= max_step
    start, end = np.unravel_index(np.argmax(np.where(closes, total, -np.inf)), total.shape)
    path = np.empty(n, np.int64)
    path[-1] = end
    for i in range(n - 1, 0, -1):
        path[i - 1] = path[i] + back[i, start, path[i]]
    return path


def smooth_outline(radius: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the smooth radius (n,), the robust weights (n,)) of a closed outline given by its ``radius``
    in n directions evenly around a centre: a Fourier series of RIM_HARMONICS harmonics fitted by
    least squares weighted by ``weight`` and, round after round, by Tukey's biweight of each
    radius's distance to the fit, so that a stretch off the smooth shape stops pulling it; its
    bending is penalised (RIM_STIFFNESS), so that it bridges the stretches without weight
    smoothly instead of swinging out across them."""
    n = len(radius)
    angles = np.arange(n) * (2.0 * np.pi / n)
    k = np.arange(1, RIM_HARMONICS + 1, dtype=np.float64)
    basis = np.concatenate([np.ones((n, 1)), np.cos(angles[:, None] * k), np.sin(angles[:, None] * k)], 1)
    # The mean squared second derivative over the angle of the series is half the sum of k^4 times
    # its coefficients squared: penalised as rows of the least squares.
    bending = np.diag(np.concatenate([[0.0], k**2, k**2]))[1:]
    robust = np.ones(n)
    fit = np.full(n, np.average(radius, weights=weight) if weight.sum() > 0 else radius.mean())
    for _ in range(RIM_FIT_ROUNDS):
        w = weight * robust
        if (w > 0).sum() < basis.shape[1]:
            break
        rows = np.concatenate([basis * np.sqrt(w)[:, None], bending * np.sqrt(0.5 * RIM_STIFFNESS * w.sum())])
        target = np.concatenate([radius * np.sqrt(w), np.zeros(len(bending))])
        fit = basis @ np.linalg.lstsq(rows, target, rcond=None)[0]
        residual = radius - fit
        spread = 1.4826 * np.median(np.abs(residual[w > 0]))
        u = residual / (RIM_FIT_CUT * max(spread, RIM_FIT_SPREAD))
        robust = np.where(np.abs(u) < 1.0, (1.0 - u**2) ** 2, 0.0)
    return fit, weight * robust


@dataclass
class _Rim:
    """One eye's rim, in crop pixels: the best frame-dark loop, the dark run across it and the
    lens's smooth outline with the band of the rim's thickness along it."""

    centre: np.ndarray
    """(2,) the eye's centre, which the loop goes round."""
    loop: np.ndarray
    """(RIM_ANGLES, 2) the loop's points."""
    inner: np.ndarray
    """(RIM_ANGLES, 2) above the eye, where the dark structure across the outline's loop ends towards
    the eye; the loop's point itself below the eye, where it is not dark or strays off the outline."""
    outer: np.ndarray
    """(RIM_ANGLES, 2) the same away from the eye."""
    share: float
    """Share of the loop's points that are frame-dark."""
    outline: np.ndarray
    """(RIM_ANGLES, 2) the lens's smooth outline: the middle of the rim all round (the loop itself,
    and no band, where the loop is frame-dark along less than RIM_SHARE: no glasses then)."""
    band_inner: np.ndarray
    """(RIM_ANGLES, 2) the band along the outline, towards the eye: half the rim's thickness in."""
    band_outer: np.ndarray
    """(RIM_ANGLES, 2) the same away from the eye."""


def _dark_runs(dark: np.ndarray, path: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """(inner, outer) columns (n,) of the run of ``dark`` (n, m) through ``path``'s column in each
    row, at most ``reach`` columns either side; both ``path``'s column where it is not dark."""
    rows, last = np.arange(len(path)), dark.shape[1] - 1
    on = dark[rows, path]
    inner, outer = path.copy(), path.copy()
    for step in range(1, reach + 1):
        grow_in = on & (inner == path - step + 1) & (path - step >= 0)
        inner[grow_in & dark[rows, np.clip(path - step, 0, last)]] -= 1
        grow_out = on & (outer == path + step - 1) & (path + step <= last)
        outer[grow_out & dark[rows, np.clip(path + step, 0, last)]] += 1
    return inner, outer


def _rim(darkness: np.ndarray, centre: np.ndarray) -> _Rim:
    """The best frame-dark loop around ``centre`` (crop pixels), the dark run across it at each
    direction (a bar's thickness, within FRAME_BAND of the loop), and the lens's smooth outline
    through the runs' middles with a band as thick as their median (at least RIM_MIN_THICKNESS)."""
    radii = np.arange(RIM_RADII[0] * PX_PER_IOD, RIM_RADII[1] * PX_PER_IOD, 1.0)
    angles = np.linspace(0.0, 2.0 * np.pi, RIM_ANGLES, endpoint=False)
    mx = (centre[0] + np.cos(angles)[:, None] * radii[None] - 0.5).astype(np.float32)
    my = (centre[1] + np.sin(angles)[:, None] * radii[None] - 0.5).astype(np.float32)
    polar = cv2.remap(darkness, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # Capped: one very dark spot (a pupil's glint, a mole) must not buy a loop through nothing.
    capped = np.minimum(polar, 3.0 * FRAME_DARKNESS).astype(np.float64)
    path = best_loop(capped)
    dark = polar >= FRAME_DARKNESS
    on_rim = dark[np.arange(RIM_ANGLES), path]
    direction = np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def at(radius: np.ndarray) -> np.ndarray:
        return centre + direction * radius[:, None]

    if on_rim.mean() < RIM_SHARE:  # not a rim (no glasses are found): no outline to draw
        loop = at(radii[path])
        return _Rim(centre, loop, loop, loop, float(on_rim.mean()), loop, loop, loop)
    outward = best_loop(capped + RIM_OUTWARD * (radii - radii[0])[None] / PX_PER_IOD)
    # The lens's outline: smooth through the middles of the outer loop's dark runs, where it is
    # frame-dark.
    inner, outer = _dark_runs(dark, outward, int(round(FRAME_BAND * PX_PER_IOD)))
    on_outline = dark[np.arange(RIM_ANGLES), outward].astype(np.float64)
    smooth, weight = smooth_outline(radii[0] + 0.5 * (inner + outer), on_outline)
    kept = weight > 0
    thickness = outer[kept] - inner[kept] + 1.0 if kept.any() else np.zeros(1)
    half = 0.5 * max(float(np.median(thickness)), RIM_MIN_THICKNESS * PX_PER_IOD)
    # Above the eye a bar thicker than the band (cat-eye, browline) is taken by its dark runs; below
    # it the rim is the band alone: the dark runs there are eye bags and creases seen through the
    # lens or below it. Nor are the runs of a stretch off the outline (along a crease) the frame's.
    taken = kept & (np.sin(angles) < 0.0)
    inner, outer = np.where(taken, inner, outward), np.where(taken, outer, outward)
    return _Rim(
        centre, at(radii[path]), at(radii[inner]), at(radii[outer]), float(on_rim.mean()),
        at(smooth), at(np.maximum(smooth - half, 0.0)), at(smooth + half),
    )  # fmt: skip


def _run_mask(shape: tuple[int, int], inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Crop pixels covered by runs across a rim: quads between neighbouring directions, ``inner``
    to ``outer`` end ((n, 2) each; a pixel wider each side, so even a one-pixel rim is drawn)."""
    out = np.zeros(shape, np.uint8)
    n = len(inner)
    for i in range(n):
        j = (i + 1) % n
        quad = np.stack([inner[i], outer[i], outer[j], inner[j]])
        if np.allclose(inner[i], outer[i]) and np.allclose(inner[j], outer[j]):
            continue
        cv2.fillConvexPoly(out, np.round((quad - 0.5) * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    return cv2.dilate(out, np.ones((3, 3), np.uint8)) > 0


def _strip(shape: tuple[int, int], a: np.ndarray, b: np.ndarray, height: float) -> np.ndarray:
    """Pixels of the crop within ``height / 2`` pixels of the segment from ``a`` to ``b``."""
    out = np.zeros(shape, np.uint8)
    ends = np.round((np.stack([a, b]) - 0.5) * 16).astype(np.int32)
    cv2.line(out, tuple(ends[0]), tuple(ends[1]), 1, thickness=max(1, int(round(height))), shift=4)
    return out > 0


def _bridge_share(dark_bridge: np.ndarray, x_right: float, x_left: float) -> float:
    """Share of the crop columns from ``x_right`` to ``x_left`` (the loops' nasal ends) holding a
    frame-dark pixel of the bridge's strip; 1 where the loops meet."""
    c0, c1 = int(np.floor(x_right)), int(np.ceil(x_left))
    if c1 - c0 < 2:
        return 1.0
    columns = dark_bridge[:, max(c0, 0) : min(c1, dark_bridge.shape[1])].any(axis=0)
    return float(columns.mean()) if columns.size else 1.0


def _grow_through(seed: np.ndarray, allowed: np.ndarray, steps: int) -> np.ndarray:
    """``seed`` grown pixel by pixel (8-connected) through ``allowed``, ``steps`` times."""
    grown = seed.astype(np.uint8)
    allowed8 = allowed.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(steps):
        grown = np.maximum(grown, cv2.dilate(grown, kernel) & allowed8)
    return grown > 0


def find_glasses(portrait: np.ndarray, face: Face) -> PortraitGlasses:
    """The portrait's glasses frames (module docstring), or ``found=False`` and an empty map."""
    image, points, to_crop = _eye_crop(portrait, face)
    h, w = image.shape[:2]
    eyes = np.zeros((h, w), bool)
    for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR):
        eyes |= polygon_mask((h, w), points[list(contour)], grow=KEPT_EYE_GROW)
    brows, cores = np.zeros((h, w), bool), np.zeros((h, w), bool)
    for contour in (RIGHT_EYEBROW_OUTLINE, LEFT_EYEBROW_OUTLINE):
        brows |= polygon_mask((h, w), points[list(contour)], grow=KEPT_BROW_GROW)
        cores |= polygon_mask((h, w), points[list(contour)], grow=BROW_CORE_GROW)
    # The rims are searched through the brows (a frame may run along them) but not the eyes.
    # Read on the face's skin (its oval, off the eyes and brows): a warm cast, the light's slope.
    skin = polygon_mask((h, w), points[list(FACE_OVAL)]) & ~(eyes | brows)
    image = skin_plausible(image, skin)
    centre = points[list(RIGHT_EYE_CONTOUR) + list(LEFT_EYE_CONTOUR)].mean(axis=0)
    lightness = even_lightness(to_lab(image)[..., 0], skin, centre)
    darkness = np.where(eyes, 0.0, frame_darkness(lightness, FRAME_DISC * PX_PER_IOD))
    darkness = darkness.astype(np.float32)
    rims = [
        _rim(darkness, points[list(contour)].mean(axis=0))
        for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR)
    ]
    shares = (rims[0].share, rims[1].share)
    right_loop, left_loop = rims[0].loop, rims[1].loop
    inner_right = right_loop[np.argmax(right_loop[:, 0])]  # the nasal side: towards the other eye
    inner_left = left_loop[np.argmin(left_loop[:, 0])]
    bridge = _strip((h, w), inner_right, inner_left, BRIDGE_HEIGHT * PX_PER_IOD)
    dark = darkness >= FRAME_DARKNESS
    crossed = _bridge_share(bridge & dark, inner_right[0], inner_left[0])
    dark_lens = dark_lenses(lightness, points)
    if min(shares) < RIM_SHARE or crossed < BRIDGE_SHARE:
        if dark_lens is not None:  # sunglasses whose rims are no thin loop: the lenses are the frame
            frame = dark_lens | (bridge & dark & ~brows)
            return PortraitGlasses(True, shares, crossed, _edged(frame), to_crop, (), dark=True)
        return PortraitGlasses(False, shares, crossed, np.zeros((h, w), np.float32), to_crop, ())

    # The rims: a band along each lens's smooth outline, its light stretches too, and above the eyes
    # the dark runs across it (over a brow's edge too: a frame there hides it, and a brow's outer
    # tip often lies on the corner of the frame), but for the brows' cores.
    frame = np.zeros((h, w), bool)
    for rim in rims:
        frame |= _run_mask((h, w), rim.inner, rim.outer) | _run_mask((h, w), rim.band_inner, rim.band_outer)
    frame &= ~cores
    # What the frame is continued through: its dark structure outside the lenses (inside them it is
    # the skin's creases) and its highlights (polished plastic, the studs on a cat-eye frame's
    # corners), above the eyes only (below them the creases of the cheeks and the nose meet a rim).
    shine = (
        lightness - cv2.morphologyEx(lightness, cv2.MORPH_OPEN, _disc(FRAME_DISC * PX_PER_IOD)) >= FRAME_SHINE
    )
    shine &= lightness >= SHINE_LIGHTNESS
    in_lens = np.zeros((h, w), np.uint8)
    for rim in rims:
        cv2.fillPoly(
            in_lens, [np.round((rim.band_inner - 0.5) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4
        )
    joinable = ((dark & (in_lens == 0)) | shine) & ~eyes & ~cores
    joinable[int(np.ceil(max(rim.centre[1] for rim in rims))) :] = False
    zone = bridge
    for loop, outward in ((right_loop, -1.0), (left_loop, 1.0)):
        # The arm leaves the rim's outer side at the height of its upper half.
        upper = loop[loop[:, 1] <= np.median(loop[:, 1])]
        start = upper[np.argmax(outward * upper[:, 0])]
        end = start + np.array([outward * ARM_LENGTH * PX_PER_IOD, 0.0])
        zone |= _strip((h, w), start, end, ARM_HEIGHT * PX_PER_IOD)
    # The bridge and the arms: the dark structure there, the brows kept whole.
    frame |= zone & dark & ~brows
    # Then what joins all that, a little way (a cat-eye frame's raised corners, its studs).
    frame = _grow_through(frame, joinable, int(round(JOINED_REACH * PX_PER_IOD)))
    # Closed over a few pixels: a rim's highlight is frame too.
    frame = cv2.morphologyEx(frame.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)) > 0
    frame = frame & ~eyes & ~cores
    if dark_lens is not None:  # what a dark lens covers, it hides: the brows' cores too
        frame |= dark_lens
    frame = _edged(frame)
    to_portrait = np.linalg.inv(to_crop[:, :2])
    lenses = tuple((rim.outline - to_crop[:, 2]) @ to_portrait.T for rim in rims)
    reflections = None if dark_lens is not None else _reflections(image, in_lens > 0, frame > 0.5, eyes)
    return PortraitGlasses(True, shares, crossed, frame, to_crop, lenses, reflections, dark_lens is not None)


def _edged(frame: np.ndarray) -> np.ndarray:
    """A crop map of the frame as float32, zero on the crop's border (the sampler replicates it)."""
    frame = frame.astype(np.float32)
    frame[[0, -1]] = 0.0
    frame[:, [0, -1]] = 0.0
    return frame


DARK_LENS = (20.0, 0.5)
"""A dark lens's pixels lie this many CIE L* under the face's skin (its median away from the eyes
and brows), and under this share of the skin's lightness: a light skin's L* 65 puts the bar at 32,
a dark skin's 35 at 15. Sunglasses' lenses are L* 5-25; an eye's white is lighter than the skin."""
DARK_LENS_DISC = (0.25, 0.8)
"""Eye distances about each eye's centre within which that share of the pixels must be lens-dark
(the eye and its lids: an eye in a socket's shadow shows its white and its lit lower lid)."""
DARK_LENS_RING = (0.25, 0.35, 0.6)
"""Between these eye distances from each eye's centre, that share of the pixels must be lens-dark
too: a lens (0.6-0.9 eye distances wide) reaches past the lids onto the brow and the cheek, where
no shadow of the socket reaches."""
DARK_LENS_REACH = 0.55
"""Eye distances from an eye's centre within which its lens is taken: the dark region joined to
the eye, its holes (a reflection, a highlight) filled, grown by DARK_LENS_GROW."""
DARK_LENS_OPEN = 0.2
"""Eye distances: the disc a dark lens is opened with, which cuts off the brows (about a tenth of an
eye distance thick) where they join it; whatever of them the lens covers goes with it."""
DARK_LENS_GROW = 0.03
"""Eye distances by which a dark lens is grown: its rim, lighter or darker than the lens."""


def dark_lenses(lightness: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """(h, w) bool in the eye crop (``_eye_crop``, CIE L* ``lightness``, the landmarks ``points`` in
    crop pixels): the lenses of sunglasses, which hide the eyes; None where the eyes are seen.

    A lens is dark against the face's own skin (DARK_LENS), over the eye and its lids
    (DARK_LENS_DISC) and beyond them (DARK_LENS_RING), around both eyes."""
    h, w = lightness.shape
    eyes = [points[list(contour)].mean(axis=0) for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR)]
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    near_eye = np.zeros((h, w), bool)
    distances = []
    for centre in eyes:
        d = np.hypot(xx - centre[0], yy - centre[1]) / PX_PER_IOD
        distances.append(d)
        near_eye |= d < 0.5
    skin = polygon_mask((h, w), points[list(FACE_OVAL)], grow=-0.2) & ~near_eye
    for contour in (RIGHT_EYEBROW_OUTLINE, LEFT_EYEBROW_OUTLINE):
        skin &= ~polygon_mask((h, w), points[list(contour)], grow=0.2)
    if skin.sum() < 50:
        return None
    skin_l = float(np.median(lightness[skin]))
    below, share = DARK_LENS
    dark = lightness < min(skin_l - below, share * skin_l)
    for d in distances:
        disc = d < DARK_LENS_DISC[0]
        ring = (d >= DARK_LENS_RING[0]) & (d < DARK_LENS_RING[1])
        if dark[disc].mean() < DARK_LENS_DISC[1] or dark[ring].mean() < DARK_LENS_RING[2]:
            return None
    lenses = np.zeros((h, w), bool)
    for d in distances:
        _, labels = cv2.connectedComponents((dark & (d < DARK_LENS_REACH)).astype(np.uint8))
        near = labels[(d < 0.1) & dark]
        if near.size == 0:
            continue
        lens = (labels == np.bincount(near).argmax()).astype(np.uint8)
        # Holes filled (a reflection, a highlight on the lens): the lens's outer contour, filled.
        contours, _ = cv2.findContours(lens, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(lens, contours, -1, 1, thickness=cv2.FILLED)
        # Then opened: a brow or a lash line as dark as the lens, joined to it, is thinner than a lens.
        lenses |= cv2.morphologyEx(lens, cv2.MORPH_OPEN, _disc(DARK_LENS_OPEN * PX_PER_IOD)) > 0
    grow = _disc(2 * DARK_LENS_GROW * PX_PER_IOD)
    return cv2.dilate(lenses.astype(np.uint8), grow) > 0


REFLECTION_LIGHTER = (6.0, 12.0)
"""CIELAB L* above the lenses' skin (its 35th percentile) over which a pixel counts from not at all
to fully as a reflection (with REFLECTION_PALER)."""
REFLECTION_PALER = (4.0, 8.0)
"""CIELAB chroma under the lenses' skin (its 65th percentile) over which it counts so: a reflection
of the sky or a window is lighter and greyer than the skin behind the lens; a highlight of the
skin's own is lighter but keeps most of its colour, a crease is darker."""
REFLECTION_MIN_AREA = 0.015
"""Square eye distances under which a light, pale patch in a lens is a glint of the skin's own (an
eyelid's highlight: 0.004 on the astronaut through drawn lenses), not the room reflected (Grace
Hopper's crescents under her eyes: 0.04 each)."""
REFLECTION_GROW = 0.03
"""Eye distances by which a reflection is grown (its soft edge)."""


def _reflections(image: np.ndarray, in_lens: np.ndarray, frame: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """(h, w) float32 0..1 in the crop: where a lens reflects the room instead of showing the skin
    behind it, pixels lighter and paler than the lenses' skin (REFLECTION_LIGHTER,
    REFLECTION_PALER); patches under REFLECTION_MIN_AREA are dropped (the skin's own glints)."""
    skin = in_lens & ~frame & ~eyes
    if skin.sum() < LENS_MIN_PIXELS:
        return np.zeros(in_lens.shape, np.float32)
    lab = to_lab(image)
    light, chroma = lab[..., 0], np.hypot(lab[..., 1], lab[..., 2])
    # The skin's level over both lenses and below the median: a reflection may cover much of one
    # lens's skin (a small lens hugging the eye holds little else).
    level, colour = np.percentile(light[skin], 35), np.percentile(chroma[skin], 65)
    lighter = (light - level - REFLECTION_LIGHTER[0]) / np.ptp(REFLECTION_LIGHTER)
    paler = (colour - chroma - REFLECTION_PALER[0]) / np.ptp(REFLECTION_PALER)
    out = np.where(skin, np.clip(lighter, 0, 1) * np.clip(paler, 0, 1), 0.0).astype(np.float32)
    keep = cv2.morphologyEx((out >= 0.5).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(keep)
    small = stats[:, cv2.CC_STAT_AREA] < REFLECTION_MIN_AREA * PX_PER_IOD**2
    small[0] = True  # the background
    keep = (~small[labels]).astype(np.uint8)
    grow = max(1, int(round(REFLECTION_GROW * PX_PER_IOD)))
    near = cv2.dilate(keep, _disc(2 * grow + 1)) > 0
    out = np.where(near & ~eyes, np.maximum(out, keep.astype(np.float32)), 0.0)
    out = cv2.GaussianBlur(out.astype(np.float32), (0, 0), grow / 2.0) * (~eyes)
    return out.astype(np.float32)


LENS_RING_IOD = (0.06, 0.25)
"""Eye distances outside a lens's outline between which the skin around it is read (past the frame
band, short of the hairline and the nose's far side)."""
LENS_INNER_IOD = 0.06
"""Eye distances inside a lens's outline from which the skin behind it is read (off the frame)."""
LENS_MIN_PIXELS = 40
"""Fewer skin pixels than this inside the lenses or around them: their tint is not measured."""
LENS_TINT_MAX = 12.0
"""Largest chroma shift (CIELAB a*, b*) taken out of a lens: tinted glasses shift the skin behind
them by a few units (Grace Hopper's amber lenses: 4-7 towards red and yellow); more than this is
not a lens's tint but something else seen through it (a hand, a shadow of the frame)."""
LENS_FEATHER_IOD = 0.03
"""Eye distances over which the correction fades in across the lens's outline (Gaussian sigma)."""


@dataclass
class LensTint:
    """What the lenses of a pair of glasses do to the colour of the skin seen through them."""

    shift_ab: tuple[float, float] | None
    """The CIELAB (a*, b*) the skin behind the lenses is moved by against the skin around them (one
    for both: the lenses are of one material); None without glasses, or where it was not measured."""
    around_ab: tuple[float, float] = (0.0, 0.0)
    """The CIELAB (a*, b*) of the skin around the lenses (its median): a pixel behind a lens as far
    from it along the tint as the skin behind the lenses is, is tinted; one no further, or greyer
    (a reflection of the room, added on the lens, not seen through it), is not (``remove``)."""

    def remove(self, portrait: np.ndarray, face: Face, glasses: PortraitGlasses) -> np.ndarray:
        """A copy of ``portrait`` with the chroma shift taken out inside each lens's outline, faded in
        across it; lightness is left alone (the skin round the eyes is darker by its own shading).
        The portrait itself when there is nothing to take out."""
        if self.shift_ab is None or not np.any(self.shift_ab):
            return portrait
        out = portrait.copy()
        sigma = LENS_FEATHER_IOD * face.interocular
        shift = np.asarray(self.shift_ab, np.float32)
        around = np.asarray(self.around_ab, np.float32)
        for lens in glasses.lenses:
            lo = np.floor(lens.min(axis=0) - 3 * sigma).astype(int).clip(0)
            hi = np.ceil(lens.max(axis=0) + 3 * sigma).astype(int) + 1
            hi = np.minimum(hi, (portrait.shape[1], portrait.shape[0]))
            if np.any(hi <= lo):
                continue
            inside = _lens_mask((hi[1] - lo[1], hi[0] - lo[0]), lens - lo).astype(np.float32)
            weight = cv2.GaussianBlur(inside, (0, 0), max(sigma, 0.5))
            patch = out[lo[1] : hi[1], lo[0] : hi[0], :3]
            lab = to_lab(patch)
            # How tinted each pixel is: its chroma's way from the skin around the lenses along the
            # tint, in tints (1: as the skin behind the lenses is on the median).
            along = ((lab[..., 1:] - around) @ shift) / float(shift @ shift)
            weight = weight * np.clip(along + 0.5, 0.0, 1.0)
            lab[..., 1] -= weight * shift[0]
            lab[..., 2] -= weight * shift[1]
            out[lo[1] : hi[1], lo[0] : hi[0], :3] = from_lab(lab)
        return out


def _lens_mask(shape: tuple[int, int], outline: np.ndarray) -> np.ndarray:
    """(h, w) bool: the pixels inside a lens's outline (portrait pixel coordinates)."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round((outline - 0.5) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return mask > 0


def lens_tint(portrait: np.ndarray, face: Face, glasses: PortraitGlasses) -> LensTint:
    """The chroma shift of the skin behind the lenses against the skin around them (medians over
    both lenses: a crease, or one eye's redder lids, does not move them much), on pixels the frame
    and the lenses' reflections do not cover, outside the eyes and brows and inside the face's
    outline. Clear lenses shift 1-2 units; a shift beyond LENS_TINT_MAX is not taken (None)."""
    if not glasses.found or glasses.dark:  # dark lenses: no skin is seen through them
        return LensTint(None)
    # Read around the lenses only, at PX_PER_IOD (medians need no more: a 3000-pixel photo took 4 s
    # at its own size).
    reach = (LENS_RING_IOD[1] + 0.05) * face.interocular
    outlines = np.concatenate(glasses.lenses)
    lo = np.floor(outlines.min(axis=0) - reach).clip(0)
    hi = np.minimum(np.ceil(outlines.max(axis=0) + reach), (portrait.shape[1], portrait.shape[0]))
    scale = min(1.0, PX_PER_IOD / face.interocular)
    size = np.maximum(np.round((hi - lo) * scale).astype(int), 1)
    crop = portrait[int(lo[1]) : int(hi[1]), int(lo[0]) : int(hi[0]), :3]
    crop = cv2.resize(np.ascontiguousarray(crop, np.float32), tuple(size), interpolation=cv2.INTER_AREA)
    scale_xy = size / np.maximum(hi - lo, 1.0)

    def to_crop(points: np.ndarray) -> np.ndarray:
        return (points - lo) * scale_xy

    shape = crop.shape[:2]
    lm, iod = to_crop(face.landmarks), face.interocular * float(scale_xy.mean())
    features = np.zeros(shape, bool)
    for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR):
        features |= polygon_mask(shape, lm[list(contour)], grow=0.3)
    for contour in (RIGHT_EYEBROW_OUTLINE, LEFT_EYEBROW_OUTLINE):
        features |= polygon_mask(shape, lm[list(contour)], grow=0.2)
    oval = polygon_mask(shape, lm[list(FACE_OVAL)])
    inside = np.zeros(shape, bool)
    for lens in glasses.lenses:
        inside |= _lens_mask(shape, to_crop(lens))
    inner = cv2.erode(inside.astype(np.uint8), _disc(2 * LENS_INNER_IOD * iod)) > 0
    near = cv2.dilate(inside.astype(np.uint8), _disc(2 * LENS_RING_IOD[0] * iod)) > 0
    far = cv2.dilate(inside.astype(np.uint8), _disc(2 * LENS_RING_IOD[1] * iod)) > 0
    skin_inner, skin_ring = inner & ~features, far & ~near & oval & ~features
    for part in (skin_inner, skin_ring):
        rows, cols = np.nonzero(part)
        if len(rows):
            centres = np.stack([cols + 0.5, rows + 0.5], axis=1) / scale_xy + lo  # portrait pixels
            part[rows, cols] = glasses.covered_at(centres) < 0.1
    if skin_inner.sum() < LENS_MIN_PIXELS or skin_ring.sum() < LENS_MIN_PIXELS:
        return LensTint(None)
    lab = to_lab(crop)
    around = np.median(lab[skin_ring][:, 1:], axis=0)
    shift = np.median(lab[skin_inner][:, 1:], axis=0) - around
    if float(np.hypot(*shift)) > LENS_TINT_MAX:
        return LensTint(None)
    return LensTint(
        (round(float(shift[0]), 3), round(float(shift[1]), 3)),
        (round(float(around[0]), 3), round(float(around[1]), 3)),
    )
