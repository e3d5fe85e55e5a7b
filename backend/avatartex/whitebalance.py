"""The photo's light colour, read on its eye whites and taken out of the whole photo.

A photo taken under tungsten light, a sunset or a cool shade without white balance gives the skin
the light's tint, and nothing in the skin alone tells the person's colour from the light's. The eye
whites do: under white light they are nearly white (a little red from vessels, a little yellow with
age: ``regions.SCLERA_NATURAL_AB``). Where they are read (``regions.feature_colours``) and light
enough to be whites (``regions.SCLERA_SEEN_L``), a von Kries balance (one gain per linear RGB channel)
brings them to the middle of eye whites under white light (``EYE_WHITE_AB``) at their own lightness,
and every later step reads the balanced photo.

``GenerateParams.white_balance`` chooses: ``auto`` balances where the whites say the light was
coloured (``regions.photo_cast``) and leaves every other photo as it is, byte for byte; ``eyes``
balances on the whites whenever they are read (an artist who knows the photo's light was off but
not by enough to be told from yellowed whites); ``off`` keeps the photo's colours and only says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .atlas_filters import GAMMA, balanced
from .face import Face
from .imaging import from_lab, to_lab
from .photo_condition import face_skin
from .protocol import WHITE_BALANCE_CHOICES
from .regions import SCLERA_SEEN_L, cast_tint, feature_colours, photo_cast

EYE_WHITE_AB = (3.0, 8.0)
"""CIELAB a*, b* the balance gives the eye whites: about the middle of eye whites seen under white
light (``regions.SCLERA_NATURAL_AB``; the astronaut's, under a photographer's lights, read 3.2, 8.2)."""

SKIN_BEYOND_WHITES = 6.0
"""Least CIELAB a*b* distance, in the balanced photo, from the eye whites to the face's skin, which
must also lie towards red and yellow from them (``SKIN_HUE_DEG``). Skin is redder and yellower than
the whites of the same face under any light (the astronaut's by 11); where the "whites" read are the
skin's own colour (a sculpture, a render of a head without painted eyes: bench/sweep.py's blotched
skins read a*, b* 16, 21 there) they are no white to balance on."""

SKIN_HUE_DEG = (0.0, 110.0)
"""The CIELAB hue angles, from the eye whites to the face's skin, of real skin (red at 0, yellow
at 90)."""

MAX_GAIN_SPREAD = 10.0
"""Largest ratio between the balance's linear channel gains: a household bulb's light (2700 K, its
linear sRGB red over blue 10.1 against daylight's 1; 3200 K tungsten 5.2), left in the photo by a
camera that did not balance it. A larger one is warmer than any lamp (a candle's) or no light at all
but a misread eye (a coloured lens, make-up, a painted face), and the photo is left as it is. Not 2.5
as before: that refused a bulb's light at 3.3 (linear gains 1, 0.62, 0.30) as a painted face."""

MAX_GREEN_OFF = 1.6
"""Largest ratio of the green gain to the geometric mean of the red and blue ones, either way: how far
off the lamps' warm-to-cool line a light's tint may lie. A 2700 K bulb needs 0.76, 3200 K 0.85, a
fluorescent tube's green tint about 0.87; a light pure green or magenta (0.2, 5) is no lamp's."""


@dataclass(frozen=True)
class Balance:
    """What the white balance read and did."""

    mode: str
    eye_whites_ab: tuple[float, float] | None = None
    """CIELAB (a*, b*) of the eye whites as the photo shows them; None where they were not read."""
    gains: tuple[float, float, float] | None = None
    """The linear RGB gains applied to the photo; None where it was left as it is."""
    cast: bool = False
    """The whites are beyond those of eyes under white light (``regions.photo_cast``)."""

    @property
    def applied(self) -> bool:
        return self.gains is not None

    def report(self) -> dict:
        """``report.json``'s ``white_balance``."""
        # "cast" is only known where the whites were read: behind glasses no cast was looked for.
        found = {
            "mode": self.mode,
            "applied": self.applied,
            "cast": self.cast,
            "eye_whites_read": self.eye_whites_ab is not None,
        }
        if self.eye_whites_ab is not None:
            found["eye_whites_ab"] = [round(v, 1) for v in self.eye_whites_ab]
        if self.gains is not None:
            found["gains"] = [round(v, 4) for v in self.gains]
        return found


def eye_white_gains(sclera_rgb: np.ndarray) -> np.ndarray:
    """(3,) linear RGB gains that move eye whites of sRGB colour ``sclera_rgb`` to ``EYE_WHITE_AB`` at
    their own L* (so at their own luminance: the photo's exposure is left alone)."""
    lab = to_lab(np.asarray(sclera_rgb, np.float32))
    target = from_lab(np.array([lab[0], *EYE_WHITE_AB], np.float32))
    seen = np.maximum(np.asarray(sclera_rgb, np.float64), 1e-4) ** GAMMA
    return target.astype(np.float64) ** GAMMA / seen


def balance_portrait(
    portrait: np.ndarray, face: Face | None, mode: str
) -> tuple[np.ndarray, Balance, list[str]]:
    """The portrait white-balanced on its eye whites as ``mode`` says, what was done, and warnings.
    Nothing is read where the face's landmarks are not the detector's (no face, or one placed from
    the head's outline: its eyes are where the mesh's would be)."""
    if mode not in WHITE_BALANCE_CHOICES:
        raise ValueError(f"white balance {mode!r} is not one of {WHITE_BALANCE_CHOICES}")
    read = face is not None and face.score > 0.0 and face.extras.get("pass") != "outline"
    colours = feature_colours(portrait, face) if read else None
    sclera = None if colours is None else colours.sclera_read
    lab = None if sclera is None else to_lab(np.asarray(sclera, np.float32))
    if lab is None or lab[0] < SCLERA_SEEN_L:
        return portrait, Balance(mode), _unread(mode, "too small, shadowed, behind glasses, or no face read")
    gains = eye_white_gains(sclera)
    skin = _face_skin(portrait, face)
    if skin is None or not _skin_beyond_whites(balanced(skin[None], gains)[0]):
        return portrait, Balance(mode), _unread(mode, "they are the colour of the skin around them")

    ab = (float(lab[1]), float(lab[2]))
    whites = f"CIELAB a*, b* {ab[0]:+.0f}, {ab[1]:+.0f}"
    cast = photo_cast(colours)
    found, out, said = Balance(mode, ab, None, cast is not None), portrait, []
    if mode == "off" or (mode == "auto" and cast is None):
        if cast is not None:
            said.append(
                f"the whites of the photo's eyes are tinted ({whites}): its light was {cast_tint(cast)}, "
                "and with white_balance=off the skin keeps that tint; white_balance=auto takes it out"
            )
    elif gains.max() / gains.min() > MAX_GAIN_SPREAD or not (
        1.0 / MAX_GREEN_OFF <= gains[1] / np.sqrt(gains[0] * gains[2]) <= MAX_GREEN_OFF
    ):
        said.append(
            f"the photo's eye whites ({whites}) are more coloured than a household bulb's light makes "
            "them (a candle's light, a coloured contact lens, make-up, a painted face?), so the photo's "
            "colours were kept; white-balance it in an image editor if its light was coloured"
        )
    else:
        found = Balance(mode, ab, (float(gains[0]), float(gains[1]), float(gains[2])), cast is not None)
        out = balanced(portrait, gains)
        why = f"its light was {cast_tint(cast)}" if cast is not None else "as asked (white_balance=eyes)"
        said.append(
            f"the photo was white-balanced on its eye whites ({whites}, made {EYE_WHITE_AB[0]:+.0f}, "
            f"{EYE_WHITE_AB[1]:+.0f}): {why}; white_balance=off keeps the photo's colours"
        )
    return out, found, said


def _unread(mode: str, why: str) -> list[str]:
    """The warning of ``eyes`` where the photo's eye whites could not be read as whites."""
    if mode != "eyes":
        return []
    return [
        f"white_balance=eyes: the photo's eye whites could not be read ({why}), so its colours were "
        "kept; white-balance the photo in an image editor (on a white garment or a grey card)"
    ]


def _face_skin(portrait: np.ndarray, face: Face) -> np.ndarray | None:
    """(3,) sRGB median of the face's skin: inside its oval (pulled in), off the eyes, brows and lips
    (``photo_condition.face_skin``) and off what is too dark to be lit skin (nostrils, hair); None
    where too little of it shows."""
    (x0, y0, x1, y1), inside = face_skin(portrait, face)
    pixels = portrait[y0:y1, x0:x1, :3][inside]
    pixels = pixels[to_lab(pixels)[:, 0] > 25.0]
    if len(pixels) < 50:
        return None
    return np.median(pixels, axis=0).astype(np.float32)


def _skin_beyond_whites(skin_rgb: np.ndarray) -> bool:
    """Whether balanced skin of sRGB colour ``skin_rgb`` lies as skin does from eye whites balanced to
    ``EYE_WHITE_AB``: far enough (SKIN_BEYOND_WHITES), towards red and yellow (SKIN_HUE_DEG)."""
    lab = to_lab(np.asarray(skin_rgb, np.float32))
    da, db = float(lab[1]) - EYE_WHITE_AB[0], float(lab[2]) - EYE_WHITE_AB[1]
    hue = float(np.degrees(np.arctan2(db, da)))
    return bool(np.hypot(da, db) >= SKIN_BEYOND_WHITES and SKIN_HUE_DEG[0] <= hue <= SKIN_HUE_DEG[1])
