"""The photo's exposure and sensor noise, read on the face's skin, and what is done about them.

A phone photo in a dim room comes out dark and grainy; one in harsh sun or with a flash close by
burns the skin out to white. The texture takes its skin from the photo, so a dark photo gives a dark
character, grain gives speckled skin (the projection enlarges the photo's pixels two to four times
on a face of ordinary size), and burnt-out skin gives a white patch with nothing under it.

- **Exposure**: a photo whose head, eye whites and highlights included, nowhere comes near white
  (``UNDEREXPOSED_PEAK``) was underexposed: no scene with a face in it is that dark everywhere, and a
  person with dark skin in a well-exposed photo still has eye whites, catch-lights and highlights
  high up. It is brightened in linear light, as a longer exposure would have, up to three stops.
- **Noise**: the sensor's noise is read on the face's skin as Donoho's estimate (the median of the
  finest diagonal wavelet band over 0.6745), which skin's own detail (pores, wrinkles) hardly
  reaches: 2-3 /255 on clean photos, 6-15 /255 on grainy ones. Above ``NOISE_SIGMA_MIN`` the head's
  part of the photo is denoised with BayesShrink wavelet thresholds at that sigma (scikit-image),
  which keep wrinkles and edges where a plain blur would not.
- **Clipped skin** is only said: what the camera clipped is lost. Warm skin a little overexposed
  reaches full red first and comes out paler and yellower there (said with the channel); skin
  burnt out to white in every channel is taken off by the projection and filled (said apart).

``GenerateParams.white_balance`` ``off`` keeps the photo as it is (both are still said);
``auto`` and ``eyes`` correct exposure and noise before the eye whites are read. Both are for the
colours: the registration reads the photo as taken (``steps.Analysis.registered``), so a corrected
photo is placed by the same camera as the photo kept as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .atlas_filters import GAMMA, linear_luminance
from .face import (
    CHIN,
    FACE_OVAL,
    FOREHEAD,
    LEFT_EYE_CONTOUR,
    LEFT_EYEBROW,
    LIPS_OUTER,
    RIGHT_EYE_CONTOUR,
    RIGHT_EYEBROW,
    Face,
)
from .imaging import box_around
from .projection import BURNT_MAX_SHARE, BURNT_WHITE, polygon_mask

UNDEREXPOSED_PEAK = (0.8, 0.6)
"""The sRGB value (brightest channel) of the head's brightest half percent of pixels below which a
photo counts as underexposed, and below which it is brought all the way to ``EXPOSED_PEAK``
(between the two, part of the way, so that photos a little apart in exposure give textures a little
apart). Eye whites, catch-lights and the skin's highlights sit at 0.8-1.0 in a photo exposed for the
face, whatever the skin's colour (the astronaut 0.96, Grace Hopper 1.0); one stop under at about
0.7, two at 0.5."""

EXPOSED_PEAK = 0.92
"""Where brightening an underexposed photo puts that brightest half percent: about where it lies in
photos exposed for the face (the astronaut 0.96, Grace Hopper 1.0, faces of scikit-image's LFW
subset 0.72-0.95)."""

SAID_GAIN = 2**0.5
"""The brightening (half a stop) from which the warning names it; less is done without a word."""

MAX_EXPOSURE_GAIN = 8.0
"""The most an underexposed photo is brightened in linear light: three stops. Darker than that, the
8-bit photo holds too few levels to bring back, and the warning says so."""

NOISE_SIGMA_MIN = 4.5 / 255
"""Sensor noise (sRGB standard deviation) on the face's skin above which the photo is denoised. Clean
photos read 2-3 /255 (skin's own fine detail, JPEG's remains); the astronaut's blue channel, the
noisiest of the test photos, 4.2; noise the eye sees as grain on skin starts about 5."""

HEAD_REACH_FACES = 0.6
"""How far beyond the face's oval, in face sizes, the photo is denoised: the scalp, ears and neck the
projection also reads."""

CLIPPED_SKIN_SHARE = 0.1
"""Share of the face's skin clipped (a channel at 250 /255 or above) above which the photo is said to
be overexposed. A photographer's key light leaves a clipped highlight of a few percent (the
astronaut's cheek: 2 %)."""

CHANNELS = ("red", "green", "blue")

ONE_SIDED_STOPS = 2.5
"""How much darker (stops, the median of linear luminance) the face's skin on one side of its midline
may be than on the other before the photo is said to be lit from one side (``lit_sides``): photos
in ordinary light 0.0-0.5 (the astronaut, Grace Hopper), bench/sweep.py's side, grazing, top and
below lights up to 2.0; the astronaut under a falloff from 1.3 to 0.03 across her face 2.9, whose
texture had the shadowed side's hair on both brows and muddy, blotched skin."""
BLOCKY_CHROMA = 4.0
"""How much larger the colour's steps are across JPEG's block edges (every 16 pixels of its
subsampled chroma) than between them, from which a photo is taken for heavily compressed
(``blockiness``): 1.0 on the astronaut as rendered, 2.0 on Grace Hopper's JPEG as shipped, 1.6-2.4
at quality 70-92, 2.5-2.8 at 40, 3.5-4.0 at 20, 5.0-6.1 at 8, where the blocks show as pink and
orange squares on the skin."""
BLOCK_STEP_MIN = 1.0 / 255
"""How much larger, at least, the colour's step across the block edges must be than between them for
the blocks to show: a render of smooth skin saved at quality 60 read a ratio of 5 (its steps between
blocks nearly nil) on an excess of 0.4 /255 that no one sees, and smoothing it cost 0.5 dB; the
astronaut at quality 8 exceeds by 1.65 /255, at 20 by 1.3."""
BLOCK_CHROMA_SIGMA = 6.0
"""Pixels of Gaussian blur on the colour (not the lightness) of a heavily compressed photo's head at
least: its chroma blocks are 16 pixels wide."""
BLOCK_CHROMA_IOD = 0.35
"""The same blur in eye distances, where that is more: on a face whose eyes are 43 pixels apart the
blocks are a third of the eye distance, and blurred by 6 pixels they were still pink and orange
patches on the cheeks (the astronaut at JPEG quality 8)."""


@dataclass(frozen=True)
class PhotoCondition:
    """What was read of the photo's exposure and noise, and what was done."""

    mode: str
    """``GenerateParams.white_balance``: ``off`` reads and says, every other mode also corrects."""
    peak: float | None = None
    """sRGB value (brightest channel) of the head's brightest half percent of pixels, as taken."""
    gain: float = 1.0
    """The linear-light gain the photo was brightened by (1: left as it was)."""
    noise: float | None = None
    """Sensor noise on the face's skin (sRGB standard deviation, 0-1), after any brightening."""
    denoised: bool = False
    clipped_skin: float | None = None
    """Share of the face's skin with a channel clipped (250 /255 or above) in the photo as taken."""
    white_skin: float | None = None
    """Share of the face's skin burnt out to white, every channel clipped (of ``clipped_skin``)."""
    blockiness: float | None = None
    """JPEG's block grid in the head's colour (``blockiness``; 1: none)."""
    deblocked: bool = False
    """Whether the head's colour was smoothed over the blocks (``BLOCKY_CHROMA``)."""
    sides_stops: float | None = None
    """How many stops darker the face's shadowed side is than its lit side (``lit_sides``)."""

    @property
    def changed(self) -> bool:
        """Whether the photo was brightened, denoised or deblocked."""
        return self.gain != 1.0 or self.denoised or self.deblocked

    def report(self) -> dict:
        """``report.json``'s ``portrait.condition``."""
        found: dict = {"mode": self.mode, "exposure_gain": round(self.gain, 3), "denoised": self.denoised}
        if self.peak is not None:
            found["peak"] = round(self.peak, 3)
        if self.noise is not None:
            found["noise"] = round(self.noise * 255, 2)  # /255, as photo editors give it
        if self.clipped_skin is not None:
            found["clipped_skin"] = round(self.clipped_skin, 4)
        if self.white_skin is not None:
            found["white_skin"] = round(self.white_skin, 4)
        if self.blockiness is not None:
            found["blockiness"], found["deblocked"] = self.blockiness, self.deblocked
        if self.sides_stops is not None:
            found["sides_stops"] = self.sides_stops
        return found


def face_skin(portrait: np.ndarray, face: Face) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The face's skin in the photo: the box (x0, y0, x1, y1) around its oval and, over that box, the
    mask inside the oval (pulled in) and off the eyes, brows and lips."""
    box = box_around(face.landmarks[list(FACE_OVAL)], 1, portrait.shape)
    shape = (box[3] - box[1], box[2] - box[0])
    lm = face.landmarks - box[:2]
    inside = polygon_mask(shape, lm[list(FACE_OVAL)], grow=-0.15)
    for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR, RIGHT_EYEBROW, LEFT_EYEBROW, LIPS_OUTER):
        inside &= ~polygon_mask(shape, lm[list(contour)], grow=0.4)
    return box, inside


def skin_noise(crop: np.ndarray, skin: np.ndarray) -> float | None:
    """Sensor noise (sRGB standard deviation) of an (H, W, 3) crop over its ``skin`` mask: Donoho's
    median absolute deviation of the finest diagonal Daubechies-2 band, per channel, the channels'
    median; None where under 64 of the band's coefficients lie on skin."""
    import pywt

    sigmas = []
    for channel in range(3):
        _, (_, _, diagonal) = pywt.dwt2(crop[..., channel].astype(np.float64), "db2")
        h, w = diagonal.shape
        # the band's coefficient (i, j) covers the crop's pixels near (2i, 2j)
        rows = np.minimum(2 * np.arange(h), skin.shape[0] - 1)
        cols = np.minimum(2 * np.arange(w), skin.shape[1] - 1)
        on_skin = skin[np.ix_(rows, cols)]
        if on_skin.sum() < 64:
            return None
        sigmas.append(np.median(np.abs(diagonal[on_skin])) / 0.6745)
    return float(np.median(sigmas))


def lit_sides(crop: np.ndarray, skin: np.ndarray, face: Face, x0: int, y0: int) -> float | None:
    """How many stops darker the face's skin is on its darker side of its midline (the line from the
    forehead's landmark to the chin's) than on the other: ``crop`` (H, W, 3) sRGB at (``x0``,
    ``y0``) in the photo, ``skin`` its mask (``face_skin``); None where a side has under 64 pixels."""
    top, bottom = face.landmarks[FOREHEAD].astype(np.float64), face.landmarks[CHIN].astype(np.float64)
    yy, xx = np.mgrid[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]]
    side = (xx - top[0]) * (bottom[1] - top[1]) - (yy - top[1]) * (bottom[0] - top[0])
    light = linear_luminance(np.clip(crop[..., :3], 0.0, 1.0))
    one, other = skin & (side > 0), skin & (side < 0)
    if one.sum() < 64 or other.sum() < 64:
        return None
    a, b = float(np.median(light[one])), float(np.median(light[other]))
    return float(np.log2(max(a, b) / max(min(a, b), 1e-4)))


def blockiness(region: np.ndarray, x0: int, y0: int) -> tuple[float, float]:
    """JPEG's block grid in the colour of a photo's ``region`` (sRGB 0..1, its top-left pixel at
    (``x0``, ``y0``) in the photo, whose origin the grid starts from): the mean step of Cr and Cb
    across the 16-pixel block edges over the mean step elsewhere, and how much larger it is (0..1
    units), of the axis where the ratio is larger."""
    ycc = cv2.cvtColor(np.clip(region[..., :3], 0, 1).astype(np.float32), cv2.COLOR_RGB2YCrCb)
    found = (1.0, 0.0)
    for axis, origin in ((1, x0), (0, y0)):
        if ycc.shape[axis] < 64:
            return 1.0, 0.0
        steps = np.abs(np.diff(ycc[..., 1:], axis=axis)).mean(axis=(1 - axis, 2))
        at_edge = (np.arange(len(steps)) + origin) % 16 == 15
        edge, between = float(steps[at_edge].mean()), float(steps[~at_edge].mean())
        ratio = edge / max(between, 1e-6)
        if ratio > found[0]:
            found = (ratio, edge - between)
    return found


def _head_box(portrait: np.ndarray, face: Face) -> tuple[int, int, int, int]:
    oval = face.landmarks[list(FACE_OVAL)]
    reach = int(round(HEAD_REACH_FACES * float(np.ptp(oval, axis=0).max())))
    return box_around(oval, reach, portrait.shape)


def condition_portrait(
    portrait: np.ndarray, face: Face | None, mode: str, name: str = "the photo"
) -> tuple[np.ndarray, PhotoCondition, list[str]]:
    """The portrait (H, W, 3+) sRGB 0..1 brightened where it was underexposed and denoised where its
    skin is grainy (unless ``mode`` is ``off``), what was read and done, and the warnings to show.
    Nothing is read where the face's landmarks are not the detector's landmark model's (none read,
    or placed from the head's outline: the eyes and skin would be the mesh's guess)."""
    if face is None or face.extras.get("pass") == "outline":
        return portrait, PhotoCondition(mode), []
    correct = mode != "off"
    said: list[str] = []
    x0, y0, x1, y1 = _head_box(portrait, face)
    peak = float(np.percentile(portrait[y0:y1, x0:x1, :3].max(axis=2), 99.5))
    (sx0, sy0, sx1, sy1), skin = face_skin(portrait, face)
    clipped, white, channel = clipped_skin(portrait[sy0:sy1, sx0:sx1, :3], skin)

    gain, out = 1.0, portrait
    start, full = UNDEREXPOSED_PEAK
    share = float(np.clip((start - peak) / (start - full), 0.0, 1.0))
    wanted = (EXPOSED_PEAK / max(peak, 1e-3)) ** (GAMMA * share)
    if wanted > 1.0 and correct:
        gain = min(wanted, MAX_EXPOSURE_GAIN)
        out = np.array(portrait, np.float32, copy=True)
        out[..., :3] = np.minimum(out[..., :3] * np.float32(gain ** (1.0 / GAMMA)), 1.0)
    if wanted >= SAID_GAIN:
        stops = np.log2(wanted)
        if not correct:
            said.append(
                f"{name} is underexposed (its brightest parts reach {peak:.0%} of white, about "
                f"{stops:.1f} stops short): the skin is as dark as the photo shows it; white_balance=auto "
                "brightens it"
            )
        else:
            short = ""
            if gain < wanted:
                short = (
                    f" by {np.log2(gain):.0f} of the {stops:.1f} stops it lacked (darker than that, the "
                    "photo holds too few levels to bring back)"
                )
            said.append(
                f"{name} is underexposed (its brightest parts reach {peak:.0%} of white): it was "
                f"brightened{short} before its skin was read; a photo exposed for the face gives truer "
                "skin, and white_balance=off keeps the photo's own exposure"
            )

    noise = skin_noise(out[sy0:sy1, sx0:sx1, :3], skin)
    denoised = False
    if noise is not None and noise > NOISE_SIGMA_MIN:
        if correct:
            from skimage.restoration import denoise_wavelet

            out = np.array(out, np.float32, copy=True) if out is portrait else out
            region = out[y0:y1, x0:x1, :3]
            cleaned = denoise_wavelet(
                region, sigma=noise, channel_axis=-1, convert2ycbcr=True, method="BayesShrink",
                mode="soft", rescale_sigma=True,
            )  # fmt: skip
            out[y0:y1, x0:x1, :3] = np.clip(cleaned, 0.0, 1.0)
            denoised = True
            said.append(
                f"{name} is grainy (sensor noise {noise * 255:.0f}/255 on the skin): its head was "
                "denoised before projecting, so the skin's finest detail is a little softer; a photo "
                "in more light gives a cleaner texture"
            )
        else:
            said.append(
                f"{name} is grainy (sensor noise {noise * 255:.0f}/255 on the skin), and the grain is "
                "in the texture; white_balance=auto denoises the photo first"
            )
    sides = lit_sides(portrait[sy0:sy1, sx0:sx1], skin, face, sx0, sy0)
    if sides is not None and sides >= ONE_SIDED_STOPS:
        said.append(
            f"{name} is lit from one side: the face's skin on its shadowed side is {sides:.1f} stops "
            "darker than on its lit side, so its colour there rests on little light and the shadow "
            "(or hair in it) may stay in the texture; a photo in even, frontal light gives a truer one"
        )
    blocky, excess = blockiness(portrait[y0:y1, x0:x1], x0, y0)
    deblocked = False
    if blocky >= BLOCKY_CHROMA and excess >= BLOCK_STEP_MIN:
        if correct:
            out = np.array(out, np.float32, copy=True) if out is portrait else out
            ycc = cv2.cvtColor(np.ascontiguousarray(out[y0:y1, x0:x1, :3]), cv2.COLOR_RGB2YCrCb)
            sigma = max(BLOCK_CHROMA_SIGMA, BLOCK_CHROMA_IOD * face.interocular)
            ycc[..., 1:] = cv2.GaussianBlur(ycc[..., 1:], (0, 0), sigma)
            out[y0:y1, x0:x1, :3] = np.clip(cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB), 0.0, 1.0)
            deblocked = True
        said.append(
            f"{name} is heavily compressed (its JPEG blocks show in the colour, {blocky:.1f} times the "
            "steps between them): "
            + (
                "the colour of its head was smoothed over the blocks, so the skin's colour detail is "
                "softer, but not their lightness: at this compression the skin may show lighter and "
                "darker squares; the photo as saved by the camera, or at a higher quality, gives a "
                "cleaner texture"
                if correct
                else "the blocks are in the texture; white_balance=auto smooths their colour first"
            )
        )
    if clipped > CLIPPED_SKIN_SHARE:
        said.append(overexposed_warning(name, clipped, white, channel))
    condition = PhotoCondition(
        mode, peak, gain, noise, denoised, clipped, white, round(blocky, 2), deblocked,
        None if sides is None else round(sides, 2),
    )  # fmt: skip
    return out, condition, said


def clipped_skin(crop: np.ndarray, skin: np.ndarray) -> tuple[float, float, str]:
    """Of the ``skin`` pixels of an (H, W, 3) sRGB 0..1 crop: the share with a channel clipped (250
    /255 or above), the share of those also near white in the others (burnt out to white, as the
    projection takes it off: ``projection.BURNT_WHITE``'s middle), and the channel clipped most
    often. Read on 5-pixel medians: grain alone lifts single pixels of light skin to white."""
    if not skin.any():
        return 0.0, 0.0, CHANNELS[0]
    levels = np.clip(crop * 255, 0, 255).astype(np.uint8)
    medians = np.stack([cv2.medianBlur(np.ascontiguousarray(levels[..., k]), 5) for k in range(3)], -1)[skin]
    clipped = medians >= 250
    whitish = medians.min(axis=1) >= 255 * (BURNT_WHITE[0] + BURNT_WHITE[1]) / 2
    any_clipped = clipped.any(axis=1)
    return (
        float(any_clipped.mean()),
        float((any_clipped & whitish).mean()),
        CHANNELS[int(np.argmax(clipped.sum(axis=0)))],
    )


def overexposed_warning(name: str, clipped: float, white: float, channel: str) -> str:
    """The warning for a photo whose face's skin is clipped on the share ``clipped``, the share
    ``white`` of it burnt out to white, mostly in ``channel``."""
    what = (
        f"{clipped:.0%} of the face's skin reached full {channel}: paler there than the skin's own "
        "colour, with the clipping's edges"
    )
    if white > BURNT_MAX_SHARE:  # the projection reads it anyway: there is no skin around to fill from
        what += (
            f", and {white:.0%} is clipped to near white: its colour and detail are lost, too much of it to "
            "fill from the skin around, so the texture keeps it paler there"
        )
    elif white >= 0.005:
        what += (
            f", and {white:.0%} is clipped to near white: its colour and detail are lost there, filled "
            "from the skin around"
        )
    return (
        f"{name} is overexposed: {what}; a photo with less light or a lower exposure gives the skin's colour"
    )
