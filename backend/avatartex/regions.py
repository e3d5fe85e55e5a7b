"""The parts of the head the portrait cannot texture as plain skin: the scalp, the eyes, the mouth.

Runs on the projected partial atlas texture, before the stages (``pipeline.generator``):

* **Scalp** (``scalp``). Where hair grows is defined on the mesh, in the head frame, from its
  landmarks: above the forehead's hairline (the face outline's upper landmarks), above the ears at
  the sides, down to the nape at the back (``hairline_height``, ``scalp_membership``). The photo's
  hair is found in the portrait (``find_hair``: the person mask and a colour model of this face's
  skin against the hair sampled along the upper face outline). ``skin``: the scalp and whatever lands
  on the head that is hair (or, above the brows and beside the face, not skin: a hat, its brim)
  lose their confidence with a feathered edge, so the inpaint fills them with the face's skin.
  ``hair``: the same texels are cleared for the stages, which fill skin under them, and a hair layer
  is painted over their result (``Regions.paint_layers``, after the de-lighting and before the style):
  the photo's hair where the photo sees it well, strands synthesised with the seen hair's colour
  statistics elsewhere (``strand_field``, ``hair_colours``), feathered at the hairline. A photo that
  shows no hair (bald, covered) falls back to ``skin`` with a warning.
* **Glasses** (``glasses.find_glasses``): where the photo shows glasses, their frames (rims, bridge,
  arms; never the eyes or the brows) lose their confidence with a feathered edge like the hair, so
  the inpaint fills them with the skin around instead of painting them on the face.
* **Eyes**: inside the mesh's eye contours, texels the photo backs weakly are filled as an eye: a
  sclera and an iris disc (with a pupil) in the colours measured inside the photo's eye contours.
  Separate eyeballs (``eyes.find_eyeballs``) are an eye at rest whatever the photo shows on them:
  painted over the stages' result (``Regions.paint_layers``) round the face's forward direction, the
  sclera read de-lit on them (``Regions.eye_colours``).
* **Mouth**: inside the mesh's inner lip contour where the surface is recessed (an opening), a dark
  interior; between the inner and outer contours the photo's own lips, mapped lip onto lip
  (``photo_lips_coords``), so the lips stay continuous. A photo's open mouth (a smile's teeth) is
  taken off wherever the mesh has no opening, so a closed mouth's lips get no teeth painted along
  them, and the photo's lips' detail around their median colour goes there instead.

Fills go *under* the photo: a texel's new colour is its photo colour with its confidence ``c`` and
the fill with the rest, ``(c * photo + (1 - c) * m * fill) / (c + (1 - c) * m)`` (``m`` the
region's soft membership), and its confidence becomes ``c + (1 - c) * m``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .atlas import AtlasGeometry, directions
from .atlas_filters import GAMMA, linear_luminance
from .engines.base import AtlasTexture
from .eyes import EDGE_DEG as EYE_EDGE
from .eyes import Eyes, eyeball_colours
from .face import (
    FACE_OVAL,
    FOREHEAD,
    LEFT_EYE_CONTOUR,
    LEFT_EYE_INNER,
    LEFT_EYE_OUTER,
    LEFT_EYEBROW,
    LEFT_EYEBROW_OUTLINE,
    LIPS_INNER,
    LIPS_OUTER,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    NOSE_LOWER,
    RIGHT_EYE_CONTOUR,
    RIGHT_EYE_INNER,
    RIGHT_EYE_OUTER,
    RIGHT_EYEBROW,
    RIGHT_EYEBROW_OUTLINE,
    Face,
    eyes_cut,
    eyes_too_small,
    small_eyes_note,
)
from .glasses import PortraitGlasses, find_glasses
from .imaging import LUMA, disc, from_lab, put_rows, sample_image, smoothstep, take_rows, to_lab, unit_range
from .marks import SPOT_RING_IOD, atlas_marks, find_marks
from .projection import polygon_mask
from .registration import Registration

SCALP_OPTIONS = ("skin", "hair")
"""``skin``: a clean scalp (hair is a separate mesh or cards); ``hair``: the photo's hair over it."""

# The hairline on the head frame (unit: eye distance, y up from the skull's centre; eyes at y = -0.1).
# Front: the face outline's upper landmarks, from the forehead's middle to the temple, per side.
_UPPER_OVAL = {
    -1: (109, 67, 103, 54, 21, 162),  # the character's right (theta < 0)
    1: (338, 297, 332, 284, 251, 389),
}
_TEMPLATE_FRONT = (0.73, 0.72, 0.69, 0.64, 0.55, 0.45, 0.30)
"""The hairline's height at FOREHEAD and the points of _UPPER_OVAL on an average head (measured on the
scanned head and the demo head): used for a landmark the mesh lacks."""
_TEMPLATE_THETA = (0.0, 11.0, 21.0, 32.0, 43.0, 55.0, 64.0)
EAR_BACK_DEG = 115.0
"""Longitude (degrees from the front) behind which the hairline leaves the top of the ear for the nape."""
HAIRLINE_FEATHER = 0.12
"""Half-width (eye distances) of the soft transition across the hairline over the forehead."""
EAR_FEATHER = 0.2
"""Half-width of the transition above the ears."""
NAPE_FEATHER = 0.3
"""Half-width of the transition at the nape and behind the ears, where hair thins out gradually."""

SKIN_D2 = 16.0
"""Squared Mahalanobis distance (Lab) to the face's skin beyond which a pixel counts as not skin (4 sigma)."""
HAIR_BAND = 0.7
"""Half-width (eye distances) of the band along the upper face outline where the hair is sampled."""
HAIR_CLUSTERS = 3
"""Gaussians of the hair's colour model."""
HAIR_CONTRAST = 0.7
"""Spread of the synthesised hair's lightness, relative to the seen hair's (robust) spread."""
HAIR_WISP = 0.1
"""Hair probability above which a texel over the scalp or beside the face is taken off whole (the
astronaut's fringe: its tips held 0.1-0.3, kept at part confidence they drew a brown line along the
hairline of the filled forehead)."""
HAIR_SHADOW = 0.05
"""Eye distances of skin below the photo's hair taken off with it (then feathered as far again): the
shadow a fringe casts on the forehead."""
HAIR_SURE = 0.6
"""Hair doubt above which the photo surely shows hair (whose shadow goes too, HAIR_SHADOW)."""
HAIR_CLOSE = 0.08
"""Eye distances over which what is taken off with the photo's hair is closed (grown, then shrunk
as far: notches narrower than twice this between hair and skin are taken too). The astronaut's
fringe left a frayed line of brown wisps along the filled forehead's edge, and Grace Hopper's white
temple hair a pale patch beside it; closed at 0.08 the hairline is a smooth curve."""
HAIR_MIN_SHARE = 0.12
"""Share of that band (inside and outside the photo) that must be hair for the photo to show hair."""
FEATURE_GROW = 0.2
"""Scale by which the photo's brow, eye and lip outlines are grown about their centres where they
mark features, not hair (``find_hair``)."""
PX_PER_IOD = 40.0
"""Resolution of the face-aligned crop the hair is classified in: hair needs little."""
IRIS_RADIUS = 0.093
"""Iris radius in eye distances (11.7 mm over 63 mm)."""
PUPIL_SHARE = 0.42
"""Pupil radius / iris radius."""
LID_MARGIN = 0.02
"""Eye distances inside a mesh's eye contour that are filled as the lids' margin (the lash line,
darker than the lid's skin) rather than as sclera: a white rim round an eye the photo does not
cover reads as a defect, a dark one as lashes."""
LID_LINE_DARKNESS = 0.5
"""The lash line's colour: the lid skin around the eye times this."""
LID_BAND = 0.1
"""Eye distances outside a mesh's eye contour where what the photo does not back is filled with the
lid's skin beside it, not left to the inpaint, which also draws on the photo's eye: the scanned
head's lower lid rims, hidden from the camera by the lids' bulge (before ``projection``'s
DEPTH_TOLERANCE took them as seen), were filled from the eye white above them (a pale streak)."""
LID_SIGMA = 0.05
"""Eye distances: the reach (Gaussian sigma) of the seen skin averaged into the lids' fill."""
FRAME_FEATHER = 0.01
"""Eye distances by which glasses frames taken off the face are grown and feathered (a rim's soft
edge and its shadow on the skin)."""

DEFAULT_SCLERA = np.array([0.90, 0.87, 0.83], np.float32)
EYE_SEEN = 0.8
"""Photo confidence from which a texel of a separate eyeball counts as seen (``Regions.eye_colours``)."""
EYE_MIN_SEEN = 20
"""Seen eyeball texels (of the atlas) from which the sclera is read on them."""
SCLERA_OVER_SKIN = 1.4
"""A separate eyeball's sclera is at least this many times as light (linear luminance) as the de-lit
skin (``Regions.eye_colours``): a sclera's albedo (about 0.7) is half again a light skin's and more
than a dark skin's; what the balls show between the lids lies in their shadow (the astronaut's read
L* 72 against her skin's 75, Grace Hopper's 44 against 62). On bench/sweep.py's made-up faces the
sclera read stays above it."""
LID_REACH = 0.15
"""Eye distances round separate eyeballs (in the atlas) within which the photo's own eyes are taken
off the skin (``_photo_eyes_off_lids``)."""
LID_FEATHER = 0.02
"""Eye distances (Gaussian sigma) over which the photo's eye contours fade for that."""
LID_SHRINK = 0.2
"""Share by which the photo's eye contours are pulled in for that: their rims hold the lash line,
which the lids keep."""
EYE_SCLERA_SHARE = 0.3
"""The lightest share of those texels taken for sclera: the eye between the lids shows more sclera
than that, and the lids' skin, lashes and iris a registration lays there are darker."""
IRIS_BAND = (0.35, 0.65)
"""Luminance quantiles of the pixels across the middle of the eye between which they are iris: the
darkest are the pupil (an iris of 28 degrees round a pupil of 11 holds a sixth of its disc) and the
lashes' shadow, the lightest the sclera beside a small iris. The darker half read the astronaut's
hazel iris at L* 19, a pupil's darkness; this band 33."""
DEFAULT_IRIS = np.array([0.33, 0.22, 0.14], np.float32)
DEFAULT_LIPS = np.array([0.62, 0.36, 0.33], np.float32)
MOUTH_INTERIOR = np.array([0.10, 0.035, 0.035], np.float32)
"""Colour of the mouth's opening, deepest part (dark red-brown, as under a lit face)."""
PHOTO_MOUTH_OPEN = 0.05
"""Square eye distances inside the photo's inner lip contour above which its mouth counts as open
(teeth or the mouth's interior showing): the astronaut's smile encloses 0.11, Grace Hopper's closed
mouth 0.006, the closed mouths of bench/sweep.py's renders 0.006-0.04."""
PHOTO_MOUTH_GROW = 0.06
"""Eye distances by which the photo's mouth opening is grown: the teeth's edges and the lips' shadow
over them (at 0.03 the astronaut's lower teeth still showed as white spots under the demo head's
lower lip)."""
PHOTO_MOUTH_FEATHER = 0.02
"""Eye distances (Gaussian sigma) over which that opening's edge fades outwards."""
LIP_BAND = (0.2, 1.0)
"""Where across the photo's lips (0 its inner contour, 1 its outer) the mesh's lips read it
(``photo_lips_coords``): not the inner edge itself, which borders a smile's teeth."""
LIP_COLOUR_DE = (12.0, 24.0)
"""CIE76 distance from the photo's median lip colour over which a remapped lip pixel gives way to
that median (all of it by the second): a tooth or the skin beside a thin lip is not lip."""
LIP_REDDER = 4.0
"""CIELAB a* by which a pixel inside the lip contours must be redder than the skin round the mouth to
count as lip (``_lip_colour``): lips are redder than the skin beside them, a nose's side is not."""
LIP_RED_SHARE = 0.1
"""Share of the pixels inside the lip contours that must be that red for the lips' colour to be read
from them alone."""
LIP_DETAIL_IOD = 0.08
"""Eye distances (Gaussian sigma) of the local mean the photo's lip detail is taken against."""
LIP_DETAIL = 0.25
"""Bound of that detail, the log of the photo's lip pixel under its local mean, per channel."""
LIP_SEAM_IOD = 0.01
"""Eye distances (Gaussian sigma, across) of the line where a closed mouth's lips meet
(``closed_slit``)."""
LIP_SEAM_SMOOTH_IOD = 0.03
"""Eye distances (Gaussian sigma) along the slit over which that line's course is smoothed."""
LIP_SEAM_LAB = (0.72, 1.15)
"""That line's middle is the lips' colour with its CIELAB lightness and chroma scaled by these: a
deeper lip tone (the astronaut's pale lips, scaled in sRGB, met in a mauve slit; raised to a power,
in a drawn red line)."""


@dataclass
class Regions:
    """The partial texture with the scalp, eyes and mouth handled, for the stages; the hair and the
    separate eyeballs to paint over their result."""

    texture: AtlasTexture
    """Colour and confidence: fills written under the photo, removed hair at confidence 0."""
    portrait_coords: np.ndarray
    """(S, S, 2) the projection's portrait coordinates, NaN where a texel's colour is now mostly a fill
    (so the detail transfer does not paint the photo's detail over it)."""
    photo_confidence: np.ndarray
    """(S, S) how much each texel's colour still comes from the photo (for the bake's detail)."""
    scalp: str
    """The scalp treatment applied: ``skin`` or ``hair`` (``skin`` when ``hair`` found no hair)."""
    warnings: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    """What was measured (hair share, hair/iris/sclera colours, texels filled), for the report."""
    hair_layer: HairLayer | None = None
    """``scalp=hair``: the hair, painted over the atlas once the stages have completed and de-lit the
    skin under it (``paint_layers``)."""
    colours: FeatureColours | None = None
    """The photo's sclera, iris and lip colours (``feature_colours``), for the separate eyeballs'
    texels in the mesh's UVs (``pipeline.steps.eyes_on_surface``)."""
    eye_layer: EyeLayer | None = None
    """The mesh's separate eyeballs painted as eyes (``_eyeball_layer``), over the stages' result."""
    marks: np.ndarray | None = None
    """(S, S) float32 0..1: texels showing a mark on one side of the face (``marks.atlas_marks``: a
    mole, a birthmark, paint), which the fill must not draw on; None where there are none."""

    def eye_colours(self, texture: AtlasTexture, delight: np.ndarray | None) -> FeatureColours | None:
        """The separate eyeballs' sclera and iris in the de-lit texture's terms: ``texture`` is the
        stages' result before the eyes are painted on it, ``delight`` the latent stage's factor
        (``StageContext.delight``; None where there was none).

        The sclera is read on the balls themselves where the photo saw them (confidence EYE_SEEN):
        the median of their lightest EYE_SCLERA_SHARE, de-lit texel by texel at the balls' own
        normals as the skin was, so that the eye keeps the skin's exposure (the photo's sclera,
        measured beside the eye, and the skin de-lit to the face's mean brightness differ by the
        light there); kept nearly neutral. The iris, too small there to read apart from the pupil and
        the lashes, is the photo's (``feature_colours``) times the de-lighting's median factor on the
        same texels. Where the photo saw fewer than EYE_MIN_SEEN of them, the photo's colours times
        the factor the balls carry from the lids round them. None without separate eyeballs."""
        layer, colours = self.eye_layer, self.colours
        if layer is None or colours is None:
            return colours
        factor = (
            np.ones((len(layer.index), 3), np.float32)
            if delight is None
            else np.asarray(delight, np.float32).reshape(-1, 3)[layer.index]
        )
        color = np.asarray(texture.color, np.float32).reshape(-1, 3)
        # The de-lit skin's lightness: the sclera's floor (SCLERA_OVER_SKIN).
        skin = np.asarray(texture.confidence, np.float32).reshape(-1) >= 0.9
        skin[layer.index] = False
        skin_y = float(np.median(linear_luminance(color[skin]))) if skin.sum() >= 100 else 0.0
        y = min(SCLERA_OVER_SKIN * skin_y, 1.0)
        floor = float(116.0 * np.cbrt(y) - 16.0) if y > 0.008856 else float(903.3 * y)
        seen = layer.seen >= EYE_SEEN
        if seen.sum() >= EYE_MIN_SEEN:
            exposure = np.median(factor[seen], axis=0)
            rgb = color[layer.index[seen]]
            lum = rgb @ LUMA
            light = lum >= np.quantile(lum, 1.0 - EYE_SCLERA_SHARE)
            sclera = _neutral_sclera(np.median(rgb[light], axis=0), floor)
        else:
            exposure = np.median(factor, axis=0)
            sclera = _neutral_sclera(np.clip(colours.sclera * exposure, 0.0, 1.0), floor)
        iris = np.clip(colours.iris * exposure, 0.0, 1.0)
        return FeatureColours(sclera.astype(np.float32), iris.astype(np.float32), colours.lips)

    def hair_cover(self, size: int) -> np.ndarray | None:
        """(``size``, ``size``) float32: how far the hair layer covers each atlas texel (0..1, soft at
        the hairline); None without one (``scalp=skin``, or no hair found)."""
        layer = self.hair_layer
        if layer is None:
            return None
        cover = np.zeros(size * size, np.float32)
        cover[layer.index] = layer.alpha
        return cover.reshape(size, size)

    def paint_layers(self, texture: AtlasTexture, eye_colours: FeatureColours | None = None) -> AtlasTexture:
        """``texture`` with the hair layer and the separate eyeballs as eyes at rest in
        ``eye_colours`` (``Regions.eye_colours``) over it (a copy; ``texture`` itself when there are
        neither).

        They go on after the fill and the de-lighting and before the style: synthesised texels passed
        through them as if seen by the photo would give the skin fill the hair's tint and grain or
        the sclera's white, be "de-lit" by a shading they never had, and enter the light's fit.
        """
        hair, eyes = self.hair_layer, self.eye_layer
        if hair is None and (eyes is None or eye_colours is None):
            return texture
        color = np.array(texture.color, np.float32)
        conf = np.array(texture.confidence, np.float32)
        flat_color, flat_conf = color.reshape(-1, 3), conf.reshape(-1)
        if hair is not None:
            a = hair.alpha
            flat_color[hair.index] = a[:, None] * hair.color + (1.0 - a[:, None]) * flat_color[hair.index]
            flat_conf[hair.index] = a + (1.0 - a) * flat_conf[hair.index]
        if eyes is not None and eye_colours is not None:
            painted = eyeball_colours(eyes.points, eyes.eyes, eye_colours.iris, eye_colours.sclera, EYE_EDGE)
            flat_color[eyes.index], flat_conf[eyes.index] = painted, 1.0
        return AtlasTexture(color, conf)


@dataclass
class HairLayer:
    """The hair over the scalp, on the atlas texels it covers."""

    index: np.ndarray
    """(M,) flat atlas indices."""
    color: np.ndarray
    """(M, 3) float32 sRGB: the photo's hair where it sees it well, synthesised strands elsewhere."""
    alpha: np.ndarray
    """(M,) float32 coverage (feathered at the hairline)."""
    photo_share: np.ndarray
    """(M,) float32 how much of ``color`` is the photo's."""


@dataclass
class EyeLayer:
    """The mesh's separate eyeballs, on the atlas texels they hold, to be painted as eyes."""

    index: np.ndarray
    """(M,) flat atlas indices."""
    points: np.ndarray
    """(M, 3) their surface points (mesh space)."""
    seen: np.ndarray
    """(M,) float32 the photo's confidence there as projected."""
    eyes: Eyes


# -- small helpers -------------------------------------------------------------------------------


def _gaussian_model(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of Lab samples, refitted on the central 90 % (features, glints left out)."""
    mean = samples.mean(axis=0)
    cov = np.cov((samples - mean).T) + np.eye(3)
    d2 = _mahalanobis(samples, mean, cov)
    core = samples[d2 <= np.quantile(d2, 0.9)]
    if len(core) >= 10:
        mean = core.mean(axis=0)
        cov = np.cov((core - mean).T) + np.eye(3)
    return mean, cov


def _mixture(samples: np.ndarray, k: int) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """(weight, mean, covariance) of up to ``k`` Gaussian clusters of Lab samples (k-means started at
    lightness quantiles, so the result is deterministic); clusters under 5 % are dropped."""
    order = np.argsort(samples[:, 0])
    centres = samples[order[((np.arange(k) + 0.5) / k * len(samples)).astype(int)]].astype(np.float64)
    for _ in range(8):
        label = np.argmin(((samples[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
        centres = np.array(
            [samples[label == j].mean(axis=0) if (label == j).any() else centres[j] for j in range(k)]
        )
    out = []
    for j in range(k):
        members = samples[label == j]
        if len(members) >= max(10, 0.05 * len(samples)):
            cov = np.cov((members - centres[j]).T) + np.eye(3) * 4.0
            out.append((len(members) / len(samples), centres[j], cov))
    return out


def _mahalanobis(lab: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    d = lab.reshape(-1, 3) - mean
    return np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d).reshape(lab.shape[:-1])


def _point(points: np.ndarray, indices) -> np.ndarray | None:
    """Mean of the finite rows of ``points[indices]``; None when none is finite."""
    p = points[list(indices)]
    p = p[np.isfinite(p).all(axis=1)]
    return p.mean(axis=0) if len(p) else None


# -- the head's regions on the mesh --------------------------------------------------------------


def hairline_height(points_head: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The hairline as heights over longitude, per side, from the mesh's landmarks (head frame).

    Returns (longitudes in degrees from the front, heights of the character's right side, of its
    left side, the nape's height). Front: the forehead's landmark and the face outline's upper
    points to the temple; then the top of the ear (a little above the temple's last point) as far
    back as EAR_BACK_DEG; then steeply down behind the ear and along the nape, level with the mouth.
    """
    forehead = points_head[FOREHEAD]
    y0 = forehead[1] if np.isfinite(forehead).all() else _TEMPLATE_FRONT[0]
    shift = y0 - _TEMPLATE_FRONT[0]
    mouth = _point(points_head, (MOUTH_LEFT, MOUTH_RIGHT))
    y_nape = float(mouth[1]) if mouth is not None else -1.25
    sides = {}
    for side, indices in _UPPER_OVAL.items():
        thetas, heights = [0.0], [float(y0)]
        for index, theta_t, y_t in zip(indices, _TEMPLATE_THETA[1:], _TEMPLATE_FRONT[1:], strict=True):
            p = points_head[index]
            if np.isfinite(p).all() and np.sign(p[0]) == side:
                theta = float(np.degrees(abs(np.arctan2(p[0], p[2]))))
                thetas.append(max(theta, thetas[-1] + 1.0))
                heights.append(float(p[1]))
            else:
                thetas.append(max(theta_t, thetas[-1] + 1.0))
                heights.append(y_t + shift)
        # Over the ear, down behind it to the lobe's height, then along the nape.
        ear_top = max(heights[-1], 0.2 + shift)
        over = max(thetas[-1] + 10.0, 80.0)
        behind = max(over + 10.0, EAR_BACK_DEG)
        thetas += [over, behind, behind + 15.0, 180.0]
        heights += [ear_top, ear_top, 0.5 * (ear_top + y_nape), y_nape]
        sides[side] = (np.array(thetas), np.array(heights))
    grid = np.linspace(0.0, 180.0, 181)
    right = np.interp(grid, *sides[-1])
    left = np.interp(grid, *sides[1])
    return grid, right, left, y_nape


def scalp_membership(points_head: np.ndarray, head: np.ndarray, ear: float | None = None) -> np.ndarray:
    """Soft membership 0..1 in the scalp of head-frame surface points (N, 3) (``hairline_height``).

    The transition is HAIRLINE_FEATHER wide across the front, EAR_FEATHER above the ears and
    NAPE_FEATHER at the back, where hair thins out rather than stopping at a line. ``ear``: the
    height of the mesh's ears' tops (``ear_top``), over which the hairline then passes.
    """
    grid, right, left, _ = hairline_height(points_head)
    if ear is not None:  # over the ears, clear of them (a hairline through the ear: its top was hair)
        (a, b), ramp = EAR_ZONE_DEG, 15.0
        over = np.interp(grid, (a - ramp, a, b, b + ramp), (0.0, 1.0, 1.0, 0.0))
        clear = ear + EAR_FEATHER + EAR_CLEAR_IOD
        right = np.maximum(right, over * clear + (1 - over) * right)
        left = np.maximum(left, over * clear + (1 - over) * left)
    theta = np.degrees(np.arctan2(head[:, 0], head[:, 2]))
    back = np.abs(theta)
    # One table over signed longitude: the character's right side at negative angles.
    h = np.interp(theta, np.concatenate([-grid[::-1], grid[1:]]), np.concatenate([right[::-1], left[1:]]))
    width = np.interp(back, (60.0, 90.0, 180.0), (HAIRLINE_FEATHER, EAR_FEATHER, NAPE_FEATHER))
    return smoothstep((head[:, 1] - h + width) / (2 * width)).astype(np.float32)


def _amid_skin(
    doubt: np.ndarray, spots: np.ndarray, index: np.ndarray, geometry: AtlasGeometry
) -> np.ndarray:
    """(N,) float32 1 at the texels ``index`` holds where no texel within ``marks.SPOT_RING_IOD`` is
    more likely hair than not (``doubt``, 0 on the ``spots`` themselves), else 0: a mole amid the
    skin, not a strand's end by a fringe (also a small round dark spot)."""
    s = geometry.size
    around = np.zeros(s * s, np.float32)
    around[index] = np.where(spots < 0.5, doubt, 0.0)
    reach = max(1, int(round(SPOT_RING_IOD * geometry.layout.face_texels_per_iod)))
    most = cv2.dilate(around.reshape(s, s), disc(reach)).reshape(-1)[index]
    return (most < 0.5).astype(np.float32)


def atlas_polygon(geometry: AtlasGeometry, points_head: np.ndarray, indices) -> np.ndarray | None:
    """Atlas pixel coordinates (N, 2) of a closed landmark contour; None when part of it is missing."""
    p = points_head[list(indices)]
    if not np.isfinite(p).all():
        return None
    theta, phi = directions(p)
    return geometry.layout.band_xy(theta, phi)


def feature_zone(geometry: AtlasGeometry, points_head: np.ndarray) -> np.ndarray:
    """(S, S) bool the hull of the brows, eyes, nose and lips in the atlas, grown by a sixteenth of
    the eye distance: where dark texels are features, not hair (a fringe down to the brows is
    found above it)."""
    indices = RIGHT_EYEBROW + LEFT_EYEBROW + RIGHT_EYE_CONTOUR + LEFT_EYE_CONTOUR + NOSE_LOWER + LIPS_OUTER
    p = points_head[list(indices)]
    p = p[np.isfinite(p).all(axis=1)]
    zone = np.zeros((geometry.size, geometry.size), np.uint8)
    if len(p) < 3:
        return zone.astype(bool)
    xy = geometry.layout.band_xy(*directions(p))
    grow = int(round(geometry.layout.face_texels_per_iod / 16))
    x0, y0 = np.maximum(np.floor(xy.min(axis=0)).astype(int) - grow - 1, 0)
    x1, y1 = np.minimum(np.ceil(xy.max(axis=0)).astype(int) + grow + 2, geometry.size)
    if x1 <= x0 or y1 <= y0:
        return zone.astype(bool)
    box = np.zeros((y1 - y0, x1 - x0), np.uint8)
    hull = cv2.convexHull(np.round((xy - (x0, y0) - 0.5) * 16).astype(np.int32))
    cv2.fillConvexPoly(box, hull, 1, lineType=cv2.LINE_8, shift=4)
    zone[y0:y1, x0:x1] = cv2.dilate(box, disc(grow))
    return zone.astype(bool)


def _texels_above(geometry: AtlasGeometry, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the atlas texels whose surface lies above ``height`` (head frame), and their
    head-frame points (N, 3) float32."""
    frame = geometry.frame
    index = np.flatnonzero(geometry.mask)
    positions = geometry.positions.reshape(-1, 3)[index]
    origin = frame.origin.astype(np.float32)
    axes = (frame.axes / frame.scale).astype(np.float32)
    y = (positions - origin) @ axes[1]
    keep = y > height
    index = index[keep]
    return index, ((positions[keep] - origin) @ axes.T).astype(np.float32)


EAR_ZONE_DEG = (70.0, 110.0)
"""Longitudes (degrees from the front) where the ears stand out of the head's sides."""
EAR_DETAIL = 2.0
"""Times the side's median surface detail (|cavity|, blurred) from which a texel there is an ear's."""
EAR_CLEAR_IOD = 0.05
"""Eye distances the hairline passes over the ears' tops, besides its feather."""


def ear_top(geometry: AtlasGeometry, mouth_y: float, brow_y: float) -> float | None:
    """The height (head frame) of the mesh's ears' tops, or None where no ear stands out: the highest
    texels at the head's sides (EAR_ZONE_DEG, from the mouth to an eye distance above the brows) whose
    surface detail (the mesh's folds, ``occlusion.MeshCavity``, blurred a tenth of an eye distance) is
    EAR_DETAIL times the side's. The hairline over the ears came from the face's landmarks alone and
    cut the demo head's ears in half, hair painted on their tops (QA); nothing found (a smooth head,
    folds everywhere: sculpted hair) or found at the zone's top, the landmarks' hairline stands."""
    if geometry.cavity is None:
        return None
    band = geometry.band_rows
    scale = float(geometry.frame.scale)
    held = geometry.mask[:band].astype(np.float32)
    folds = geometry.cavity.at_texels(0.03 * scale, geometry.tri_id[:band], geometry.bary[:band]) / scale
    sigma = 0.1 * geometry.layout.face_texels_per_iod
    detail = cv2.GaussianBlur(np.abs(folds) * held, (0, 0), sigma) / np.maximum(
        cv2.GaussianBlur(held, (0, 0), sigma), 1e-3
    )
    head = geometry.frame.to_head(geometry.positions[:band])
    side = np.abs(np.degrees(np.arctan2(head[..., 0], head[..., 2])))
    top = brow_y + 1.0
    zone = (geometry.mask[:band]) & (side >= EAR_ZONE_DEG[0]) & (side <= EAR_ZONE_DEG[1])
    zone &= (head[..., 1] > mouth_y) & (head[..., 1] < top)
    if zone.sum() < 100:
        return None
    ear = zone & (detail > EAR_DETAIL * np.median(detail[zone]))
    if ear.sum() < 0.02 * zone.sum():
        return None
    height = float(np.percentile(head[..., 1][ear], 98))
    return None if height > top - 0.2 else height


def _feathered(
    values: np.ndarray,
    index: np.ndarray,
    size: int,
    radius: int,
    grow: bool = True,
    coarse: int = 1,
    surface: np.ndarray | None = None,
) -> np.ndarray:
    """``values`` (N,) of atlas texels ``index`` dilated (``grow``) or eroded by ``radius`` texels and
    blurred as much, read back at the same texels; the work stays in the box around the non-zero
    values. ``coarse`` > 1 does the work on a box that many times smaller (a wide feather is smooth:
    the scalp's shadow band, 9 texels grown and 13 blurred at 1024, took 25 ms at full size).

    ``surface``: (S, S) bool the atlas texels that hold the surface (``AtlasGeometry.mask``); an
    erosion then does not eat into the values from the space between the charts, where the surface
    goes on in another chart: the band's top rows end in teeth, and the photo's hair eroded from
    them gave way to strands in the band and not in the crown disc for the same surface points (a
    seam in the shape of the teeth, a dark "M" on the crown's front)."""
    if not (values > 1e-3).any():
        return np.zeros(len(index), np.float32)
    image = np.zeros(size * size, np.float32)
    if surface is not None and not grow:
        image[~np.asarray(surface, bool).reshape(-1)] = 1.0
    image[index] = values
    image = image.reshape(size, size)
    rows, cols = np.divmod(index[values > 1e-3], size)
    margin = 5 * radius
    r0, r1 = max(int(rows.min()) - margin, 0), min(int(rows.max()) + margin + 1, size)
    c0, c1 = max(int(cols.min()) - margin, 0), min(int(cols.max()) + margin + 1, size)
    box = image[r0:r1, c0:c1]
    if coarse > 1:
        box = cv2.resize(
            box,
            (max(1, box.shape[1] // coarse), max(1, box.shape[0] // coarse)),
            interpolation=cv2.INTER_AREA,
        )
    reach = max(1, int(round(radius / coarse)))
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    box = cv2.GaussianBlur((cv2.dilate if grow else cv2.erode)(box, kernel), (0, 0), 1.5 * radius / coarse)
    if coarse > 1:
        box = cv2.resize(box, (c1 - c0, r1 - r0), interpolation=cv2.INTER_LINEAR)
    image[r0:r1, c0:c1] = box
    return image.reshape(-1)[index]


def polygon_coverage(shape: tuple[int, int], xy: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage 0..1 of a polygon in atlas pixels (centres at +0.5)."""
    mask = np.zeros(shape, np.uint8)
    pts = np.round((xy - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


@dataclass
class HeadRegions:
    """What the regions step needs from the mesh alone (cached per atlas geometry and landmarks)."""

    points_head: np.ndarray
    """(468, 3) the mesh's landmarks in the head frame."""
    index: np.ndarray
    """Flat indices of the atlas texels above the nape's feather (the only ones the scalp concerns)."""
    head: np.ndarray
    """(N, 3) float32 their head-frame surface points."""
    scalp: np.ndarray
    """(N,) their soft membership in the scalp (``scalp_membership``)."""
    hair_may_show: np.ndarray
    """(N,) bool: above the mouth, off the features and, below the brows, near the face's sides: where
    a photo's hair may land."""
    skin_expected: np.ndarray
    """(N,) bool: inside the face outline below the brows, where only hair (not any colour that is not
    skin: shadows, make-up) is taken off for a clean scalp."""
    fringe: np.ndarray
    """(N,) float32 0..1: inside the face outline at the brows' height or above (``FRINGE_BELOW_BROWS``
    below them, fading over as much again), where a photo's fringe may hang over the face."""
    _strands: dict[int, np.ndarray] = field(default_factory=dict)

    def strands(self, size: int, seed: int) -> np.ndarray:
        """``strand_field`` (N,) over the scalp's texels (0 elsewhere), kept per seed: variants of one
        head with the same seed share their strands."""
        if seed not in self._strands:
            field_ = np.zeros(len(self.index), np.float32)
            on_scalp = self.scalp > 0
            field_[on_scalp] = strand_field(self.head[on_scalp], size, seed)
            self._strands = {seed: field_}
        return self._strands[seed]


FRINGE_BELOW_BROWS = 0.15
"""Eye distances below the brows down to which the photo's hair is kept over the face (a fringe), fading
to none as far again below: the hair hanging beside a photographed face (the astronaut's, Grace
Hopper's) landed as dark wedges on a wider jaw's cheeks with ``scalp=hair``."""


FRINGE_EDGE_IOD = 0.08
"""Eye distances (Gaussian sigma) over which the fringe fades at the face region's edge."""


_HEAD_REGIONS: dict[int, tuple[weakref.ref, bytes, HeadRegions]] = {}


def head_regions(geometry: AtlasGeometry, landmarks3d: np.ndarray) -> HeadRegions:
    """The mesh's scalp membership and where hair may show, per atlas texel (cached: variants and
    batches of one head pay for it once)."""
    key = np.ascontiguousarray(landmarks3d, np.float64).tobytes()
    hit = _HEAD_REGIONS.get(id(geometry))
    if hit is not None and hit[0]() is geometry and hit[1] == key:
        return hit[2]
    points_head = geometry.frame.to_head(landmarks3d)
    mouth = _point(points_head, (MOUTH_LEFT, MOUTH_RIGHT))
    mouth_y = float(mouth[1]) if mouth is not None else -1.25
    # Hair lower than the mouth is a beard: texels below the nape's feather are never scalp.
    index, head = _texels_above(geometry, mouth_y - 2 * NAPE_FEATHER)
    off_features = ~feature_zone(geometry, points_head).reshape(-1)[index]
    brow = _point(points_head, RIGHT_EYEBROW + LEFT_EYEBROW)
    brow_y = float(brow[1]) if brow is not None else 0.25
    in_face = geometry.face.reshape(-1)[index]
    # Inside the face below the brows, hair only hangs over its sides: the middle (a nasolabial fold's
    # shadow, a dark mole) is never taken for hair.
    inward = cv2.distanceTransform(geometry.face.astype(np.uint8), cv2.DIST_L2, 5).reshape(-1)[index]
    middle = inward > 0.3 * geometry.layout.face_texels_per_iod
    skin_expected = in_face & (head[:, 1] < brow_y + 0.1)
    # The face region's edge softened: a hard one cut the fringe in a square step at the temple and
    # drew a line across the hair where it meets the scalp's.
    soft = cv2.GaussianBlur(
        geometry.face.astype(np.float32), (0, 0), FRINGE_EDGE_IOD * geometry.layout.face_texels_per_iod
    )
    fringe = soft.reshape(-1)[index] * smoothstep(
        (head[:, 1] - brow_y + 2 * FRINGE_BELOW_BROWS) / FRINGE_BELOW_BROWS
    )
    out = HeadRegions(
        points_head,
        index,
        head,
        scalp_membership(points_head, head, ear_top(geometry, mouth_y, brow_y)),
        off_features & (head[:, 1] > mouth_y) & ~(skin_expected & middle),
        skin_expected,
        fringe.astype(np.float32),
    )
    _HEAD_REGIONS.clear()  # one head at a time is what a batch of variants needs
    _HEAD_REGIONS[id(geometry)] = (weakref.ref(geometry), key, out)
    return out


# -- what the portrait shows ---------------------------------------------------------------------


@dataclass
class PortraitHair:
    """The portrait's hair: where it is (a probability map in a face-aligned crop) and its colours."""

    maps: np.ndarray
    """(h, w, 3) float32 0..1 in the crop: hair (or a hat) rather than skin; skin of this face; the
    face's own brows, eyes and lips (``FEATURE_GROW``), which are never hair."""
    to_crop: np.ndarray
    """(2, 3) affine map from portrait pixels to crop pixels."""
    share: float
    """Share of the band along the upper face outline that shows hair."""
    lab: np.ndarray
    """(N, 3) Lab samples of the seen hair at the photo's own resolution."""

    @property
    def seen(self) -> bool:
        """Whether the photo shows enough hair to continue it over the scalp."""
        return self.share >= HAIR_MIN_SHARE and len(self.lab) >= 50

    def at(self, coords: np.ndarray) -> np.ndarray:
        """(N, 3) hair, skin and feature probabilities at portrait pixel coordinates (N, 2); 0 where
        NaN or outside the crop."""
        a = self.to_crop.astype(np.float32)
        xy = coords.astype(np.float32) @ a[:, :2].T + a[:, 2]
        # The maps' border is zero and the sampler replicates it: outside the crop reads 0.
        return sample_image(self.maps, xy)


def _band(shape: tuple[int, int], polyline: np.ndarray) -> np.ndarray:
    """Pixels within HAIR_BAND eye distances of a polyline, in the face-aligned crop."""
    band = np.zeros(shape, np.uint8)
    line = np.round((polyline - 0.5) * 16).astype(np.int32)
    cv2.polylines(band, [line], False, 1, thickness=int(2 * HAIR_BAND * PX_PER_IOD), shift=4)
    return band > 0


def find_hair(portrait: np.ndarray, face: Face, person: np.ndarray) -> PortraitHair:
    """Classify the portrait's head region into hair and not hair.

    Works in a face-aligned crop at PX_PER_IOD (roll and photo size do not matter). The skin model
    is this face's (Lab Gaussian inside its outline, features left out); hair is sampled in a band
    along the upper face outline where the person mask says person and the skin model says not
    skin; each pixel is then hair or not by the two Gaussians' likelihood ratio, times the person
    mask. Pixels of the band that fall outside the photo count as not hair (a photo cropped at the
    brows shows none).
    """
    iod = max(face.interocular, 1e-3)
    eyes, x_axis, up = face.axes()
    k = PX_PER_IOD / iod
    half_w, above, below = 2.3, 3.2, 2.4  # eye distances around the eyes' midpoint
    w, h = int(2 * half_w * PX_PER_IOD), int((above + below) * PX_PER_IOD)
    # crop = A @ portrait: crop x along the eye axis, crop y down the face.
    rot = np.stack([x_axis, -up]) * k
    offset = np.array([half_w * PX_PER_IOD, above * PX_PER_IOD]) - rot @ eyes
    to_crop = np.concatenate([rot, offset[:, None]], axis=1)
    # cv2 puts pixel centres at integers: shift by half a pixel on both sides.
    cv_map = to_crop.copy()
    cv_map[:, 2] += rot @ np.array([0.5, 0.5]) - 0.5
    image = cv2.warpAffine(
        np.ascontiguousarray(portrait, np.float32), cv_map, (w, h), flags=cv2.INTER_AREA, borderValue=0
    )
    stack = np.stack([np.asarray(person, np.float32), np.ones(person.shape, np.float32)], axis=-1)
    warped = cv2.warpAffine(stack, cv_map, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    person_c, inside = warped[..., 0], warped[..., 1] > 0.5
    points = face.landmarks.astype(np.float64) @ to_crop[:, :2].T + to_crop[:, 2]

    lab = to_lab(image)
    features = np.zeros((h, w), bool)
    outlines = (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR, LIPS_OUTER, RIGHT_EYEBROW_OUTLINE, LEFT_EYEBROW_OUTLINE)
    for contour in outlines:
        features |= polygon_mask((h, w), points[list(contour)], grow=0.5)
    inner = polygon_mask((h, w), points[list(FACE_OVAL)], grow=-0.15) & ~features & inside
    if inner.sum() < 30:
        return PortraitHair(np.zeros((h, w, 3), np.float32), to_crop, 0.0, np.zeros((0, 3), np.float32))
    skin_mean, skin_cov = _gaussian_model(lab[inner])
    d_skin = _mahalanobis(lab, skin_mean, skin_cov)

    # Bands along the upper face outline: over the forehead (above the brows) and down the temples to
    # the ears (outside the face), where the hair shows if the photo shows any.
    rows = np.arange(h)[:, None] + 0.5
    brow_row = float(points[list(RIGHT_EYEBROW) + list(LEFT_EYEBROW), 1].min())
    oval = polygon_mask((h, w), points[list(FACE_OVAL)])
    top = _band((h, w), points[list(FACE_OVAL[32:]) + list(FACE_OVAL[:5])]) & (
        rows < brow_row - 0.1 * PX_PER_IOD
    )
    sides = (
        _band((h, w), points[list(FACE_OVAL[28:33])]) | _band((h, w), points[list(FACE_OVAL[4:9])])
    ) & ~oval
    sides &= ~top
    not_skin = inside & (person_c > 0.5) & (d_skin > SKIN_D2)
    seeds = (top | sides) & not_skin
    share = float(seeds.sum()) / max(float(top.sum() + sides.sum()), 1.0)
    on_features = np.zeros((h, w), bool)
    for contour in outlines:
        on_features |= polygon_mask((h, w), points[list(contour)], grow=FEATURE_GROW)
    if seeds.sum() < 30:
        skin = np.clip((SKIN_D2 + 9.0 - d_skin) / 9.0, 0, 1)
        maps = np.stack([np.zeros((h, w), np.float32), skin, on_features], -1)
        return PortraitHair(maps.astype(np.float32), to_crop, share, np.zeros((0, 3), np.float32))
    # Hair is several colours (dark roots, light highlights): a few Gaussians against the skin's one.
    log_skin = -0.5 * (d_skin + np.log(np.linalg.det(skin_cov)))
    log_hair = np.full((h, w), -np.inf)
    nearest = np.full((h, w), np.inf)
    for weight, mean, cov in _mixture(lab[seeds], HAIR_CLUSTERS):
        d = _mahalanobis(lab, mean, cov)
        nearest = np.minimum(nearest, d)
        log_hair = np.logaddexp(log_hair, np.log(weight) - 0.5 * (d + np.log(np.linalg.det(cov))))
    score = np.clip(log_hair - log_skin, -30.0, 30.0)
    person_c = np.clip((person_c - 0.3) / 0.4, 0.0, 1.0) * inside
    # Likelier hair than skin, and of the hair's own colours (a badge is neither).
    probability = np.clip((SKIN_D2 + 9.0 - nearest) / 9.0, 0.0, 1.0) / (1.0 + np.exp(-score))
    # Closed over a tenth of the eye distance: the gaps between strands and highlights are hair too.
    probability = cv2.morphologyEx(probability.astype(np.float32), cv2.MORPH_CLOSE, disc(2)) * person_c
    # The photo's own brows, eyes and lips are features, however hair-coloured. Those not of the
    # hair's colours are kept whatever lies beside them (``complete_regions``); a brow as dark as a
    # fringe that touches it may go with the fringe (kept, the astronaut's brows' outer tips were
    # dark dashes on her filled forehead).
    kept_features = on_features & (probability < 0.5)
    probability[on_features] = 0.0
    skin = np.clip((SKIN_D2 + 9.0 - d_skin) / 9.0, 0.0, 1.0) * person_c

    # The hair's colours at the photo's own resolution (the crop averages strands away).
    rr, cc = np.nonzero(seeds & (probability > 0.5))
    crop_xy = np.stack([cc + 0.5, rr + 0.5], axis=1)
    inverse = cv2.invertAffineTransform(to_crop)
    photo_xy = crop_xy @ inverse[:, :2].T + inverse[:, 2]
    step = max(1, len(photo_xy) // 20_000)
    samples = to_lab(sample_image(portrait, photo_xy[::step], interpolation="nearest"))
    maps = np.stack([probability, skin, kept_features], axis=-1).astype(np.float32)
    maps[[0, -1]] = 0.0
    maps[:, [0, -1]] = 0.0
    return PortraitHair(maps, to_crop, share, samples.astype(np.float32))


@dataclass
class FeatureColours:
    """Colours measured in the portrait's eyes and lips."""

    sclera: np.ndarray
    iris: np.ndarray
    lips: np.ndarray
    sclera_read: np.ndarray | None = None
    """(3,) sRGB the eye whites as the photo shows them (before they are kept nearly neutral); None
    where the eyes were too small to read or the photo is black and white."""


SCLERA_SEEN_L = 60.0
"""CIELAB L* from which what ``feature_colours`` reads as the sclera is the eye's white and not the
lids' skin in shadow (Grace Hopper's, behind glasses: 32)."""
SCLERA_NATURAL_AB = ((-4.0, 14.0), (-5.0, 16.0))
"""CIELAB a* and b* ranges of eye whites seen under white light: a little red (vessels, more in
tired or irritated eyes) and yellow (with age). Beyond them the photo's light is coloured (a
fluorescent tube's green, a tungsten bulb's orange, shade's blue): the astronaut's sclera reads
(3.2, 8.2); her
photo under 3200 K tungsten light (linear gains 1.0, 0.78, 0.52) (7.0, 24.0), at 4300 K (5.0,
15.2)."""


def photo_cast(colours: FeatureColours) -> tuple[float, float] | None:
    """The CIELAB (a*, b*) of the photo's eye whites where they say its light was coloured (outside
    SCLERA_NATURAL_AB), None where they look white or were not read (``SCLERA_SEEN_L``)."""
    if colours.sclera_read is None:
        return None
    lab = to_lab(np.asarray(colours.sclera_read, np.float32))
    if lab[0] < SCLERA_SEEN_L:
        return None
    (a_lo, a_hi), (b_lo, b_hi) = SCLERA_NATURAL_AB
    if a_lo <= lab[1] <= a_hi and b_lo <= lab[2] <= b_hi:
        return None
    return round(float(lab[1]), 1), round(float(lab[2]), 1)


def cast_tint(cast: tuple[float, float]) -> str:
    """The light's colour a ``photo_cast`` says: by each axis it leaves SCLERA_NATURAL_AB on, yellow
    to blue first (the usual one), then green to magenta (a fluorescent tube's green is often warm
    too: both are named)."""
    (a_lo, a_hi), (b_lo, b_hi) = SCLERA_NATURAL_AB
    parts = []
    if cast[1] > b_hi or cast[1] < b_lo:
        parts.append("warm (orange)" if cast[1] > b_hi else "cool (blue)")
    if cast[0] > a_hi or cast[0] < a_lo:
        parts.append("magenta" if cast[0] > a_hi else "green")
    return " and ".join(parts) or "white"


IRIS_RED_HUES = (-60.0, 55.0)
"""CIELAB hues (degrees) no iris has: brown irises read 50-75, hazel and amber 70-90, green 100-140,
blue and grey 200-260 at low chroma. An iris read in this range took the red of the lids' rims or of
a warm print (Grace Hopper's dark brown eyes read hue 33, drawn red by toon and anime)."""


def plausible_iris(lab: np.ndarray, lightest: float = 55.0) -> np.ndarray:
    """An iris colour (CIELAB, (3,)) at most L* ``lightest`` (lighter, read in a photo, is the sclera
    beside a small iris), and a hue in ``IRIS_RED_HUES`` turned to the nearer brown at its edge."""
    lab = np.array(lab, np.float32, copy=True)
    lab[0] = min(lab[0], lightest)
    hue = float(np.degrees(np.arctan2(lab[2], lab[1])))
    low, high = IRIS_RED_HUES
    if low < hue < high:
        chroma = float(np.hypot(lab[1], lab[2]))
        lab[1:] = chroma * np.array([np.cos(np.radians(high)), np.sin(np.radians(high))], np.float32)
    return lab


def feature_colours(portrait: np.ndarray, face: Face, eyes_seen: bool = True) -> FeatureColours:
    """The sclera, iris and lip colours inside the portrait's eye and lip contours.

    Iris: the pixels near each eye's centre between the pupil and the sclera (IRIS_BAND of their
    luminance; lashes excepted by staying off the lids); sclera: the lighter half towards the corners,
    kept plausibly light and pale; lips: between the outer and inner lip contours, as far as they are
    redder than the skin (``_lip_colour``). Defaults when a contour is too small to measure, and for
    the eyes where they are not seen (``eyes_seen`` False: behind dark glasses).
    """
    lm = face.landmarks.astype(np.float64)
    irises, scleras = [], []
    eye_contours = (
        (RIGHT_EYE_CONTOUR, RIGHT_EYE_OUTER, RIGHT_EYE_INNER),
        (LEFT_EYE_CONTOUR, LEFT_EYE_OUTER, LEFT_EYE_INNER),
    )
    for contour, outer, inner in eye_contours if eyes_seen else ():
        pts = lm[list(contour)]
        x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 1
        x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 2
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, portrait.shape[1]), min(y1, portrait.shape[0])
        if x1 - x0 < 3 or y1 - y0 < 2:
            continue
        mask = polygon_mask((y1 - y0, x1 - x0), pts - (x0, y0), grow=-0.15)
        pixels = portrait[y0:y1, x0:x1][mask]
        if len(pixels) < 8:
            continue
        yy, xx = np.nonzero(mask)
        axis = lm[inner] - lm[outer]
        length = max(np.linalg.norm(axis), 1e-6)
        centre = (lm[inner] + lm[outer]) / 2 - (x0, y0)
        along = np.abs(((np.stack([xx, yy], 1) + 0.5 - centre) @ axis) / length) / length
        lum = pixels @ LUMA
        middle = along < 0.2
        if middle.sum() >= 4:
            low, high = np.quantile(lum[middle], IRIS_BAND)
            iris_pixels = middle & (lum >= low) & (lum <= high)
            irises.append(np.median(pixels[iris_pixels if iris_pixels.sum() >= 2 else middle], axis=0))
        corners = along > 0.22
        if corners.sum() >= 4:
            light = corners & (lum >= np.median(lum[corners]))
            scleras.append(np.median(pixels[light], axis=0))
    iris = np.mean(irises, axis=0) if irises else DEFAULT_IRIS
    sclera = np.mean(scleras, axis=0) if scleras else DEFAULT_SCLERA
    # A sclera in shadow or tinted by the lids reads as skin: keep it light and nearly neutral.
    iris_lab = plausible_iris(to_lab(np.asarray(iris, np.float32)))
    if face.extras.get("monochrome"):  # a black-and-white photo's (tinted): no colour to read
        return FeatureColours(_neutral_sclera(sclera, 78.0), DEFAULT_IRIS.copy(), _grey_lips(portrait, lm))
    read = face.extras.get("pass") != "outline"
    return FeatureColours(
        _neutral_sclera(sclera, 78.0),
        from_lab(iris_lab),
        _lip_colour(portrait, lm, read),
        np.asarray(sclera, np.float32) if scleras else None,
    )


def _between_lips(shape: tuple[int, int], lm: np.ndarray) -> np.ndarray:
    """(H, W) bool: between the outer lip contour and the inner one grown by a tenth (the lips)."""
    return polygon_mask(shape, lm[list(LIPS_OUTER)]) & ~polygon_mask(shape, lm[list(LIPS_INNER)], grow=0.1)


def _grey_lips(portrait: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """The lips' colour in a black-and-white photo: DEFAULT_LIPS' hue and chroma at the photo's own
    lips' lightness (``tinted_lips`` gives the photo's lips the same), so that lips under the photo
    and lips filled (an open mouth's, closed) match."""
    between = _between_lips(portrait.shape[:2], lm)
    lab = to_lab(DEFAULT_LIPS)
    if between.sum() >= 8:
        lab[0] = float(np.median(to_lab(portrait[between][:, :3])[:, 0]))
    return from_lab(lab).astype(np.float32)


def tinted_lips(portrait: np.ndarray, lm: np.ndarray, interocular: float) -> np.ndarray:
    """A black-and-white photo, tinted with a skin tone (``image_io.tinted_if_monochrome``), with its
    lips (between the outer and inner lip contours, feathered) given DEFAULT_LIPS' hue and chroma at
    their own lightness: they were skin-coloured under the photo, while an open mouth's, filled,
    took the default lip colour (Grace Hopper in grey: lips the skin's; the astronaut's: red)."""
    shape = portrait.shape[:2]
    lips = polygon_mask(shape, lm[list(LIPS_OUTER)]).astype(np.float32)
    lips -= polygon_mask(shape, lm[list(LIPS_INNER)]).astype(np.float32)
    blur = max(0.5, LIP_TINT_FEATHER_IOD * interocular)
    # Whole to their edge (a thin lip is a few pixels high), fading out just beyond it.
    weight = np.clip(2.0 * cv2.GaussianBlur(np.clip(lips, 0.0, 1.0), (0, 0), blur), 0.0, 1.0)
    if not (weight > 0.5).any():
        return portrait
    lab = to_lab(portrait[..., :3])
    target = to_lab(DEFAULT_LIPS)[1:]
    lab[..., 1:] += weight[..., None] * (target - lab[..., 1:])
    out = np.array(portrait, np.float32, copy=True)
    out[..., :3] = from_lab(lab)
    return out


LIP_TINT_FEATHER_IOD = 0.02
"""Eye distances over which a black-and-white photo's lip tint fades into the skin's (``tinted_lips``)."""


def _neutral_sclera(rgb: np.ndarray, floor: float) -> np.ndarray:
    """A sclera's colour (3,) sRGB kept nearly neutral (CIELAB a*, b* halved, within -3..6) and
    between L* ``floor`` and 94: one in shadow or tinted by the lids reads as skin."""
    lab = to_lab(np.asarray(rgb, np.float32))
    lab[0] = np.clip(lab[0], min(floor, 94.0), 94.0)
    lab[1:] = np.clip(lab[1:] * 0.5, -3.0, 6.0)
    return from_lab(lab).astype(np.float32)


def _lip_colour(portrait: np.ndarray, lm: np.ndarray, read: bool = True) -> np.ndarray:
    """The lips' colour: the median of the pixels between the outer and inner lip contours that are
    redder than the skin round the mouth (CIELAB a* over the ring's median by LIP_REDDER), where there
    are enough of them (LIP_RED_SHARE); else the median of all of them (lips as pale as the skin).
    Only where the face's landmarks were ``read`` from the photo: a face placed from the head's
    outline has the mesh's own lip contours laid on it, and what is redder there is the skin's
    pattern, not lips (bench/sweep.py's striped skins: r014 -0.57 dB with their stripes as lips).

    The contours also hold skin: a thin smile's lips are a pixel or two high inside them, and where a
    nose or a hand hides part of the lips (a turned face's long nose) the skin they show there is most
    of the region: the plain median read skin-coloured lips (bench/sweep.py's made-up faces: a
    brownish grey for painted red lips)."""
    shape = portrait.shape[:2]
    lip_pixels = portrait[_between_lips(shape, lm)][:, :3]
    if len(lip_pixels) < 8:
        return np.asarray(DEFAULT_LIPS, np.float32)
    if read:
        lips = lm[list(LIPS_OUTER)]
        ring = polygon_mask(shape, lips, grow=0.6) & ~polygon_mask(shape, lips, grow=0.2)
        if ring.sum() >= 8:
            skin_a = float(np.median(to_lab(portrait[ring][:, :3])[:, 1]))
            red = to_lab(lip_pixels)[:, 1] > skin_a + LIP_REDDER
            if red.sum() >= max(8, LIP_RED_SHARE * len(lip_pixels)):
                lip_pixels = lip_pixels[red]
    return np.median(lip_pixels, axis=0).astype(np.float32)


# -- hair synthesis ------------------------------------------------------------------------------


def _strand_grid(rng: np.random.Generator, rows: int, cols: int, sigma_across: float, sigma_along: float):
    """White noise blurred along the meridians (rows) far more than across them, wrapping around in
    longitude (columns), normalised to unit standard deviation."""
    noise = rng.standard_normal((rows, cols)).astype(np.float32)
    pad = int(np.ceil(3 * max(sigma_across, 1.0))) + 1
    padded = cv2.copyMakeBorder(noise, 0, 0, pad, pad, cv2.BORDER_WRAP)
    blurred = cv2.GaussianBlur(padded, (0, 0), sigmaX=sigma_across, sigmaY=sigma_along)[:, pad:-pad]
    blurred -= blurred.mean()
    return blurred / max(float(blurred.std()), 1e-6)


def strand_field(head: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The hair's texture (N,), zero mean and unit variance, at head-frame surface points (N, 3).

    Strands run along the meridians (from the hairline back over the crown and down the back and
    sides): noise stretched along latitude, as a function of longitude and latitude so that the band
    and the crown disc show the same strands at the same surface point, at a density that halves as
    the meridians converge towards the crown, with no direction left at the pole (the whorl). A
    coarser clump noise varies it at a larger scale and makes the strands wave a little.
    """
    rng = np.random.default_rng(seed + 7919)
    theta, phi = directions(head)
    rows, cols = max(size // 2, 64), max(size // 2, 64)
    lat_row = (np.pi / 2 - phi) / np.pi * rows
    clump_grid = _strand_grid(rng, rows // 4, cols // 8, 1.0, 4.0)
    clump_xy = np.stack([(theta + np.pi) / (2 * np.pi) * (cols // 8), lat_row / 4], axis=1)
    clump = sample_image(clump_grid, clump_xy, wrap_rows=rows // 4)[:, 0]
    theta = theta + 0.02 * clump
    level = np.clip(np.log2(1.0 / np.maximum(np.cos(phi), 1.0 / 8)), 0.0, 3.0)
    strands = np.zeros(len(head), np.float32)
    for k in range(4):
        weight = np.clip(1.0 - np.abs(level - k), 0.0, 1.0)
        use = weight > 0
        if not use.any():
            continue
        width = cols >> k
        grid = _strand_grid(rng, rows, width, 0.6, 16.0)
        xy = np.stack([(theta[use] + np.pi) / (2 * np.pi) * width, lat_row[use]], axis=1)
        strands[use] += weight[use] * sample_image(grid, xy, wrap_rows=rows)[:, 0]
    whorl = smoothstep((np.degrees(phi) - 70.0) / 15.0).astype(np.float32)
    strands *= 1.0 - 0.6 * whorl
    return (0.9 * strands + 0.45 * clump).astype(np.float32)


def hair_colours(field: np.ndarray, hair_lab: np.ndarray) -> np.ndarray:
    """sRGB hair (N, 3) from a strand field (N,) and Lab samples of the seen hair.

    The lightness has the seen hair's median and HAIR_CONTRAST times its robust spread; a* and b*
    follow lightness as in the seen hair (a linear fit: highlights of blond hair are paler, of red
    hair redder).
    """
    lightness = hair_lab[:, 0]
    l_mean = float(np.median(lightness))
    l_std = float(1.4826 * np.median(np.abs(lightness - l_mean)))
    lab = np.empty((len(field), 3), np.float32)
    lab[:, 0] = np.clip(l_mean + HAIR_CONTRAST * l_std * field, 0.0, 100.0)
    centred = lightness - l_mean
    for channel in (1, 2):
        values = hair_lab[:, channel]
        slope = float(np.clip((centred @ (values - values.mean())) / max(centred @ centred, 1e-6), -1.0, 1.0))
        lab[:, channel] = float(np.median(values)) + slope * (lab[:, 0] - l_mean)
    return from_lab(lab)


def _hair_layer(
    geometry: AtlasGeometry,
    registration: Registration,
    regions: HeadRegions,
    region: np.ndarray,
    hair: PortraitHair,
    photo_says: np.ndarray,
    photo_color: np.ndarray,
    seed: int,
) -> tuple[HairLayer, np.ndarray]:
    """The hair painted over the completed atlas (``Regions.paint_layers``), and the confidence the
    photo keeps under it for the stages.

    Over the scalp: the photo's hair where the photo sees it well (facing the camera, and hair by the
    colour model), synthesised strands elsewhere, nothing where the photo sees skin (a high
    forehead). Beside the scalp, inside the face outline (a fringe), only the photo's hair where it is
    seen well: neither the photo's hair nor strands go over ears or cheeks. Everything the layer covers is
    cleared for the stages, so that the skin they fill under it is not tinted by hair.

    Returns the layer and the confidence the photo keeps on the regions' texels (N,).
    """
    s = geometry.size
    sub = np.flatnonzero(region > 0)
    ids = regions.index[sub]
    says = photo_says[sub]
    # What the photo shows well (facing the camera): hair, or skin. A badge, a brim or the
    # background is neither, and is not continued.
    facing = np.zeros(len(sub), np.float32)
    looked = np.flatnonzero(says.sum(axis=1) > 0)
    normals = geometry.normals.reshape(-1, 3)[ids[looked]] @ geometry.frame.axes.astype(np.float32)
    to_camera = registration.camera.center.astype(np.float32) - geometry.positions.reshape(-1, 3)[ids[looked]]
    cos = np.einsum("ij,ij->i", normals, to_camera) / np.maximum(
        np.linalg.norm(normals, axis=1) * np.linalg.norm(to_camera, axis=1), 1e-12
    )
    facing[looked] = smoothstep((cos - 0.35) / 0.35)
    photo_hair = facing * says[:, 0]
    photo_skin = facing * says[:, 1] * (1.0 - says[:, 0])
    # Over the scalp the photo's hair fades into the strands over a few texels, not at its ragged edge.
    fade = _feathered(photo_hair, ids, s, max(1, s // 256), grow=False, surface=geometry.mask)
    scalp = regions.scalp[sub]
    over_scalp = scalp * (1.0 - photo_skin)
    # The rest of the region (a fringe) up to it, so the two add up across the scalp's soft edge:
    # (1 - scalp) times it as well left a quarter of the skin showing at mid-edge, a pale line
    # across the hair along the hairline.
    beside = np.clip(region[sub] - scalp, 0.0, 1.0) * photo_hair * regions.fringe[sub]
    alpha = np.clip(over_scalp + beside, 0.0, 1.0)
    use = alpha > 0
    w_photo = (np.minimum(photo_hair, fade) * over_scalp + beside)[use] / np.maximum(alpha[use], 1e-6)
    w_photo = np.clip(w_photo, 0.0, 1.0)[:, None]
    strands = hair_colours(regions.strands(s, seed)[sub[use]], hair.lab)
    color = w_photo * photo_color.reshape(-1, 3)[ids[use]] + (1.0 - w_photo) * strands
    layer = HairLayer(ids[use], color.astype(np.float32), alpha[use].astype(np.float32), w_photo[:, 0])
    kept = np.ones(len(region), np.float32)
    kept[sub] = 1.0 - region[sub] * (1.0 - photo_skin)
    return layer, kept


# -- eyes and mouth ------------------------------------------------------------------------------


def _eye_fill(head_xy: np.ndarray, contour: np.ndarray, colours: FeatureColours) -> np.ndarray:
    """An eye's colours (h, w, 3) over its atlas box: sclera, iris disc, pupil, seen straight on.

    ``head_xy`` holds the box's texels' head-frame (x, y); ``contour`` the eye's landmarks in the
    head frame (outer corner first, inner corner eighth). The iris sits midway between the
    corners, at the opening's mid-height; the lids cut it where the opening is narrower.
    """
    centre = np.array([contour[[0, 8], 0].mean(), contour[:, 1].mean()])
    half_width = max(abs(contour[0, 0] - contour[8, 0]) / 2, 1e-3)
    d = np.linalg.norm(head_xy - centre, axis=-1)
    soft = 0.012
    iris = smoothstep((IRIS_RADIUS + soft - d) / (2 * soft))[..., None]
    pupil = smoothstep((PUPIL_SHARE * IRIS_RADIUS + soft / 2 - d) / soft)[..., None]
    # The limbus is darker than the iris's middle; the sclera darkens a little towards the corners.
    ring = np.clip(d / IRIS_RADIUS, 0.0, 1.0)[..., None]
    iris_colour = colours.iris * (1.0 - 0.35 * ring**4)
    corner = np.clip(np.abs(head_xy[..., 0] - centre[0]) / half_width, 0.0, 1.0)[..., None]
    sclera = colours.sclera * (1.0 - 0.15 * corner**2)
    out = sclera * (1.0 - iris) + iris_colour * iris
    return (out * (1.0 - pupil) + 0.04 * pupil).astype(np.float32)


def _under(color: np.ndarray, conf: np.ndarray, fill: np.ndarray, weight: np.ndarray) -> tuple:
    """``fill`` with soft membership ``weight`` put under the photo (``color`` at confidence ``conf``):
    the new colour and confidence (module docstring)."""
    total = conf + (1.0 - conf) * weight
    mixed = conf[..., None] * color + ((1.0 - conf) * weight)[..., None] * fill
    out = np.where(total[..., None] > 1e-6, mixed / np.maximum(total, 1e-6)[..., None], color)
    return out.astype(np.float32), total.astype(np.float32)


@dataclass
class _Work:
    """The texture being edited, and what the photo still contributes to each texel."""

    color: np.ndarray
    conf: np.ndarray
    photo: np.ndarray
    """(S, S) the photo's share of each texel's confidence (the rest is a fill)."""

    def under(self, box: tuple[slice, slice], fill: np.ndarray, weight: np.ndarray) -> int:
        """A fill under the photo over an atlas box; returns the texels it now mostly makes."""
        before = self.conf[box].copy()
        self.color[box], self.conf[box] = _under(self.color[box], before, fill, weight.astype(np.float32))
        return int(((self.conf[box] - before) > 0.5).sum())

    def take_off(self, where, amount: np.ndarray) -> int:
        """The photo taken off texels ``where`` (a box, or index arrays) by ``amount`` 0..1 (for the
        inpaint or a fill under it to replace); returns the texels it mostly took."""
        before = self.conf[where]
        taken = int((before * amount > 0.5).sum())
        self.conf[where] = before * (1.0 - amount)
        self.photo[where] = np.minimum(self.photo[where], self.conf[where])
        return taken


def _box(xy: np.ndarray, size: int, margin: int = 2) -> tuple[slice, slice] | None:
    """The atlas box around polygon corners (N, 2), with a margin (texels); None when empty."""
    x0, y0 = np.maximum(np.floor(xy.min(axis=0)).astype(int) - margin, 0)
    x1, y1 = np.minimum(np.ceil(xy.max(axis=0)).astype(int) + margin + 1, size)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return slice(y0, y1), slice(x0, x1)


def _box_head(geometry: AtlasGeometry, box: tuple[slice, slice]) -> np.ndarray:
    """Head-frame surface points (h, w, 3) of an atlas box (zeros off the mesh)."""
    inside = geometry.tri_id[box] >= 0
    out = np.zeros(inside.shape + (3,), np.float32)
    out[inside] = geometry.frame.to_head(geometry.positions[box][inside])
    return out


def _fill_eyes(
    work: _Work,
    geometry: AtlasGeometry,
    points_head: np.ndarray,
    colours: FeatureColours,
    eyes_in_photo: np.ndarray,
    portrait_coords: np.ndarray,
    mirrored: tuple[bool, bool] = (False, False),
    too_small: bool = False,
) -> int:
    """Eyes under the photo inside the mesh's eye contours, and the lids' skin under the photo
    around them (``_eye_and_lids``); ``eyes_in_photo`` (H, W) marks the photo's own eyes, which
    ``portrait_coords`` (S, S, 2) place in the atlas. ``mirrored``: the character's right eye, the
    left, left to the inpaint's mirror of the other (the photo's edge cut it, the other it shows).
    ``too_small``: the photo's eyes are a blur of a pixel or two (``face.eyes_too_small``), taken off
    inside the mesh's eye contours, so the eyes are the fill's. Returns the texels filled."""
    filled = 0
    texels_per_iod = geometry.layout.face_texels_per_iod
    reach = int(np.ceil((LID_BAND + 3 * LID_SIGMA) * texels_per_iod))
    for contour, mirror in zip((RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR), mirrored, strict=True):
        if mirror:
            continue
        xy = atlas_polygon(geometry, points_head, contour)
        box = None if xy is None else _box(xy, geometry.size, reach)
        if box is None:
            continue
        corner = np.array([box[1].start, box[0].start])
        shape = (box[0].stop - box[0].start, box[1].stop - box[1].start)
        on_mesh = geometry.tri_id[box] >= 0
        member = polygon_coverage(shape, xy - corner) * on_mesh
        if member.any():
            eye = _eye_fill(_box_head(geometry, box)[..., :2], points_head[list(contour)], colours)
            coords = portrait_coords[box]
            seen = np.isfinite(coords[..., 0])
            photo_eye = np.zeros(shape, bool)
            photo_eye[seen] = sample_image(eyes_in_photo, coords[seen], interpolation="nearest")[:, 0] > 0.5
            skin = on_mesh & ~photo_eye & (work.conf[box] > 0.8)
            if too_small:
                eye = _as_light_as_the_photos(eye, member, work.color[box], work.conf[box])
            fill, weight = _eye_and_lids(eye, member, on_mesh, work.color[box], skin, texels_per_iod)
            if too_small:  # softened, and the photo's blur taken off (after the lids' skin was read)
                sigma = max(PAINTED_EYE_SOFT_IOD * texels_per_iod, 0.5)
                fill = cv2.GaussianBlur(fill, (0, 0), sigma)
                work.take_off(box, member)
            filled += work.under(box, fill, weight)
    return filled


PAINTED_EYE_SOFT_IOD = 0.012
"""Eye distances (Gaussian sigma) by which an eye painted over a small face's blur is softened, with
its lash line and the lids round it: drawn sharp, its whites' corners and its pupil were hard-edged
and blocky against the blurred face (the scanned head's small eyes in the atlas: a square pupil)."""
PAINTED_EYE_GAIN = (0.55, 1.0)
"""Bounds of the lightness gain that matches an eye painted over a small face's blur to that blur's
mean (``_as_light_as_the_photos``): never lighter than painted, at most this much darker."""


def _as_light_as_the_photos(
    eye: np.ndarray, member: np.ndarray, photo: np.ndarray, conf: np.ndarray
) -> np.ndarray:
    """An eye painted where the photo's is too small to show (``face.eyes_too_small``), as light on
    average as the photo's blur inside the eye's contour (``member``), within PAINTED_EYE_GAIN: its
    whites lit as the face is (a default sclera of 0.9 glowed on the dim LFW faces)."""
    weight = member * conf
    if weight.sum() <= 1.0:
        return eye
    seen = (photo * weight[..., None]).sum(axis=(0, 1)) / weight.sum()
    painted = (eye * member[..., None]).sum(axis=(0, 1)) / max(float(member.sum()), 1e-6)
    gain = float(linear_luminance(seen)) / max(float(linear_luminance(painted)), 1e-6)
    return (eye * np.float32(np.clip(gain, *PAINTED_EYE_GAIN) ** (1.0 / GAMMA))).astype(np.float32)


def _eyeball_layer(
    work: _Work,
    geometry: AtlasGeometry,
    eyeballs: Eyes,
    ball: np.ndarray,
    color: np.ndarray,
    seen: np.ndarray,
) -> EyeLayer:
    """The ``ball`` texels (on the mesh's separate eyeballs), to be painted as an eye at rest over the
    stages' result (``Regions.paint_layers``): sclera, an iris in the photo's colour and a pupil
    round the face's forward direction (``eyes.eyeball_colours``). For the stages they hold the
    photo as it was read there (``color`` (K, 3) at confidence ``seen`` (K,), before ``_fill_eyes``),
    from which ``Regions.eye_colours`` reads the de-lit sclera; its share of the result is 0.

    Never the photo as it lands there: an eyeball turns in its socket (an eye rig aims it), so what
    the photo shows on it besides the eye, the lids' skin and lashes that a registration a little
    off lays over its top, the lids' shadow, a reflection, would turn with it; and the photo's iris
    lies where the portrait's eyes looked, not where the ball's rest pose does. On bench/sweep.py's
    separate eyeballs (``e`` cases) the photo's reading scored 9-19 dB on the balls' seen texels (a
    pupil blurred into its iris, the lids' skin over the sclera's top)."""
    work.color[ball], work.conf[ball] = color, seen
    work.photo[ball] = 0.0
    return EyeLayer(np.flatnonzero(ball), geometry.positions[ball], seen.astype(np.float32), eyeballs)


def _photo_eyes_off_lids(
    work: _Work,
    geometry: AtlasGeometry,
    ball: np.ndarray,
    face: Face,
    portrait_coords: np.ndarray,
    shape: tuple[int, int],
) -> int:
    """Around separate eyeballs (``ball``), the photo's own eyes (inside its eye contours pulled in by
    LID_SHRINK, off the lash line at their rims) taken off the skin within LID_REACH of them, for the
    inpaint to fill with the skin round them: a registration a little off lays the photo's iris and
    sclera on the lids, a second iris above the painted one. Returns the texels mostly taken."""
    reach = LID_REACH * geometry.layout.face_texels_per_iod
    away = cv2.distanceTransform((~ball).astype(np.uint8), cv2.DIST_L2, 5)
    near = (away > 0) & (away < reach) & (geometry.tri_id >= 0) & np.isfinite(portrait_coords[..., 0])
    if not near.any():
        return 0
    # The eyes' masks, feathered, in a box round them (the whole photo's blur cost 70 ms at 2048 px);
    # its margin beyond the Gaussian's reach keeps it zero at the box's edge, as outside it.
    contours = [face.landmarks[list(c)].astype(np.float64) for c in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR)]
    sigma = max(0.5, LID_FEATHER * face.interocular)
    margin = int(np.ceil(4.0 * sigma)) + 2
    corners = np.concatenate(contours)
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - margin, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + margin + 1, (shape[1], shape[0]))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0
    eyes_in_photo = np.zeros((y1 - y0, x1 - x0), np.float32)
    for pts in contours:
        eyes_in_photo[polygon_mask(eyes_in_photo.shape, pts - (x0, y0), grow=-LID_SHRINK)] = 1.0
    soft = cv2.GaussianBlur(eyes_in_photo, (0, 0), sigma)
    where = np.nonzero(near)
    xy = portrait_coords[where] - np.array([x0, y0], np.float32)
    amount = np.clip(sample_image(soft[..., None], xy)[:, 0] * 2.0, 0.0, 1.0)
    return work.take_off(where, amount.astype(np.float32))


def _eye_and_lids(
    eye: np.ndarray,
    member: np.ndarray,
    on_mesh: np.ndarray,
    color: np.ndarray,
    skin: np.ndarray,
    texels_per_iod: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The fill (h, w, 3) and its membership (h, w) around one of the mesh's eyes: the ``eye``
    (sclera, iris) inside its contour ``member``, its outer LID_MARGIN a lash line, and within
    LID_BAND outside it the lid's skin: the seen ``skin`` texels' ``color`` nearby (a Gaussian
    average, LID_SIGMA), never the photo's eye; the lash line is that skin darkened by
    LID_LINE_DARKNESS."""
    inside = (member > 0.5).astype(np.uint8)
    if not inside.any() or skin.sum() < 10:
        return eye, member
    sigma = LID_SIGMA * texels_per_iod
    weight = cv2.GaussianBlur(skin.astype(np.float32), (0, 0), sigma)
    summed = cv2.GaussianBlur(color * skin[..., None], (0, 0), sigma)
    lid = np.where(
        weight[..., None] > 0.05, summed / np.maximum(weight, 1e-6)[..., None], np.median(color[skin], axis=0)
    )
    depth = cv2.distanceTransform(np.pad(inside, 1), cv2.DIST_L2, 3)[1:-1, 1:-1] / texels_per_iod
    away = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 3) / texels_per_iod
    rim = smoothstep(1.0 - depth / LID_MARGIN)[..., None]
    fill = np.where(inside[..., None] > 0, eye * (1.0 - rim) + LID_LINE_DARKNESS * lid * rim, lid)
    lids = smoothstep((LID_BAND - away) / (0.5 * LID_BAND)) * on_mesh
    return fill.astype(np.float32), np.maximum(member, lids).astype(np.float32)


def mouth_interior(depth: np.ndarray) -> np.ndarray:
    """(..., 3) float32 the mouth's inside at ``depth`` head units behind its opening's edge:
    MOUTH_INTERIOR, lighter just behind the edge."""
    shade = 1.0 + 1.5 * np.exp(-np.asarray(depth, np.float32) / np.float32(0.05))
    return (MOUTH_INTERIOR * shade[..., None]).astype(np.float32)


def _fill_mouth(
    work: _Work,
    geometry: AtlasGeometry,
    points_head: np.ndarray,
    colours: FeatureColours,
    mouth_in_photo: np.ndarray | None = None,
    portrait_coords: np.ndarray | None = None,
    portrait: np.ndarray | None = None,
    photo_landmarks: np.ndarray | None = None,
) -> tuple[int, int, int]:
    """The photo's lips under the photo between the mesh's lip contours, a dark interior inside the
    inner one where the surface is recessed (the mesh has an opening), and where it is not (a closed
    mouth's slit) the lips meeting (``closed_slit``).

    The lips under the photo are the photo's own lips mapped onto the mesh's (``photo_lips_coords``,
    given the ``portrait`` and its ``photo_landmarks``), falling back to the photo's median lip colour
    where that reads something else (LIP_COLOUR_DE) or without them: one flat colour read as a sticker
    where a smile's teeth were taken off.

    ``mouth_in_photo`` (H, W) 0..1 marks the photo's own mouth opening (its teeth, its interior),
    which ``portrait_coords`` (S, S, 2) place in the atlas: outside the mesh's opening it is taken
    off first (a smile's teeth on a closed mouth's lips, or below them), so the lips' colour and the
    skin fill close the mouth. Returns the texels filled as lips and as interior, and the texels the
    photo's opening was taken off.
    """
    outer = atlas_polygon(geometry, points_head, LIPS_OUTER)
    margin = int(np.ceil(0.3 * geometry.layout.face_texels_per_iod))
    box = None if outer is None else _box(outer, geometry.size, margin)
    if box is None:
        return 0, 0, 0
    corner = np.array([box[1].start, box[0].start])
    shape = (box[0].stop - box[0].start, box[1].stop - box[1].start)
    on_mesh = geometry.tri_id[box] >= 0
    within_outer = polygon_coverage(shape, outer - corner) * on_mesh
    lips = within_outer
    inner = atlas_polygon(geometry, points_head, LIPS_INNER)
    mouth, taken = 0, 0
    opening = np.zeros(shape, np.float32)
    depth = np.zeros(shape, np.float32)
    radius = np.linalg.norm(_box_head(geometry, box), axis=-1)
    if inner is not None:
        inside = polygon_coverage(shape, inner - corner) * on_mesh
        lips = np.clip(lips - inside, 0.0, 1.0)
        within = np.nonzero(inside > 0)
        level = np.linalg.norm(points_head[list(LIPS_INNER)], axis=1)
        lip_radius = _contour_level(inner - corner, level, np.stack(within[::-1], axis=-1) + 0.5)
        depth[within] = np.clip(lip_radius - radius[within], 0.0, None)
        opening = inside * smoothstep((depth - 0.01) / 0.04)
    # An open mouth's inner lip landmarks, lifted onto the surface, land in its hole (the QA's
    # open-mouth head: 1.27-1.73 from the origin against its outer lips' 1.92), and their outline in
    # the atlas ran down onto the chin: the opening the atlas does see was never found, the photo's
    # mouth was taken off and the warning said the mesh's mouth was closed. Whatever of the surface
    # inside the lips' outer outline lies MOUTH_BEHIND_IOD or more behind it is the opening too.
    outline = float(np.median(np.linalg.norm(points_head[list(LIPS_OUTER)], axis=1)))
    behind = np.where(on_mesh, outline - radius - MOUTH_BEHIND_IOD, 0.0)
    deep = within_outer * smoothstep(behind / 0.05)
    if deep.any():
        depth = np.maximum(depth, np.clip(behind, 0.0, None) * (deep > 0))
        opening = np.maximum(opening, deep)
        lips = np.clip(lips - deep, 0.0, 1.0)
    # The slit between closed lips: within the outer contour, neither lips nor an opening.
    closed = np.clip(within_outer - lips - opening, 0.0, 1.0)
    if mouth_in_photo is not None and portrait_coords is not None:
        coords = portrait_coords[box]
        seen = np.isfinite(coords[..., 0])
        photo_mouth = np.zeros(shape, np.float32)
        photo_mouth[seen] = sample_image(mouth_in_photo, coords[seen])[:, 0]
        taken = work.take_off(box, np.clip(photo_mouth * (1.0 - opening) * on_mesh, 0.0, 1.0))
    if opening.any():
        dark = mouth_interior(depth)
        mouth = work.under(box, dark, opening)
    if closed.any():
        # Where the photo's teeth were taken off the slit between the mesh's closed lips, its skin
        # fill drew a pale band across the mouth (the astronaut's smile on the demo head): the lips
        # meet there.
        work.under(box, closed_slit(colours.lips, closed, geometry.layout.face_texels_per_iod), closed)
    lip_fill = np.broadcast_to(colours.lips, lips.shape + (3,)).copy()
    if portrait is not None and photo_landmarks is not None and inner is not None:
        where = photo_lips_coords(
            outer - corner,
            inner - corner,
            photo_landmarks[list(LIPS_OUTER)],
            photo_landmarks[list(LIPS_INNER)],
            shape,
        )
        h, w = portrait.shape[:2]
        read = (lips > 0) & np.isfinite(where[..., 0])
        read &= (where[..., 0] >= 0) & (where[..., 0] <= w) & (where[..., 1] >= 0) & (where[..., 1] <= h)
        if read.any():
            sampled = sample_image(portrait, where[read])[:, :3]
            distance = np.linalg.norm(to_lab(sampled) - to_lab(colours.lips[None])[0], axis=-1)
            keep = 1.0 - smoothstep((distance - LIP_COLOUR_DE[0]) / (LIP_COLOUR_DE[1] - LIP_COLOUR_DE[0]))
            # The photo's lips' own variation (lines, darker edges) over their median colour: a
            # smile's lips are a pixel or two high, and read there as they are they are half skin.
            # Only what is darker than the lips round it: what is lighter is their sheen (the
            # light's, not the albedo's) or a tooth's edge, and was drawn on the mesh's full lips as
            # the teeth's outlines (the astronaut's smile on the demo head).
            grid = np.zeros(lips.shape + (4,), np.float32)
            grid[read, :3] = sampled * keep[:, None]
            grid[read, 3] = keep
            sigma = LIP_DETAIL_IOD * geometry.layout.face_texels_per_iod
            local = cv2.GaussianBlur(grid, (0, 0), sigma)
            mean = local[read, :3] / np.maximum(local[read, 3:], 1e-6)
            detail = np.clip(np.log(np.maximum(sampled, 1e-3) / np.maximum(mean, 1e-3)), -LIP_DETAIL, 0.0)
            detail = keep[:, None] * detail
            # The lips as a whole keep the photo's median lip colour.
            detail -= (detail * keep[:, None]).sum(axis=0) / max(float(keep.sum()), 1e-6)
            lip_fill[read] = colours.lips * np.exp(keep[:, None] * detail)
    return work.under(box, lip_fill, lips), mouth, taken


def closed_slit(lips: np.ndarray, closed: np.ndarray, unit: float) -> np.ndarray:
    """(h, w, 3) float32 the colour of a closed mouth's slit (``closed`` 0..1, the mesh's inner lip
    contour where it is not an opening; the atlas's face upright, so the slit runs across its
    columns): the ``lips`` colour, deepening (LIP_SEAM_LAB) towards the line where they meet, the
    slit's middle in each column (smoothed along the slit over LIP_SEAM_SMOOTH_IOD: the deepest
    texel of each column stepped where the slit's height changed), LIP_SEAM_IOD wide."""
    from scipy.ndimage import gaussian_filter1d

    inside = closed > 0.5
    rows = np.arange(inside.shape[0], dtype=np.float64)[:, None]
    count = inside.sum(axis=0).astype(np.float64)
    middle = (rows * inside).sum(axis=0) / np.maximum(count, 1.0)
    along = max(LIP_SEAM_SMOOTH_IOD * unit, 0.5)
    held = count > 0
    middle = gaussian_filter1d(middle * held, along) / np.maximum(gaussian_filter1d(held * 1.0, along), 1e-6)
    sigma = max(LIP_SEAM_IOD * unit, 0.5)
    line = (np.exp(-0.5 * ((rows - middle[None, :]) / sigma) ** 2) * inside).astype(np.float32)[..., None]
    lips = np.asarray(lips, np.float32).reshape(1, 3)
    lightness, chroma = LIP_SEAM_LAB
    seam = from_lab(to_lab(lips) * np.array([lightness, chroma, chroma], np.float32))
    return (lips + line * (seam - lips)).astype(np.float32)


MOUTH_BEHIND_IOD = 0.1
"""Eye distances behind the lips' outline (its distance from the head frame's origin) beyond which a
surface the atlas does not hold, seen from the origin through the lips, is the mouth's inside
(``mouth_cavity``): a mouth bag, the teeth and tongue of a head with an open mouth in the face's
material. Lips are thicker than this; a closed mouth's lips meet in front of it."""
MOUTH_DEPTH_IOD = 1.2
"""Eye distances behind the lips' outline beyond which a surface is no longer the mouth's: the scanned
head's mouth inside lies 0.2-0.83 behind, a mouth bag of the QA's open-mouth head 0.23-0.94; a bust's
hollow inside, seen from the origin through the lips, lies deeper."""


def mouth_cavity(
    geometry: AtlasGeometry, points_head: np.ndarray, surface_points: np.ndarray, hidden: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The surface points ((M, 3), the atlas's mesh's coordinates) that lie inside the mouth, and
    their colour as its dark interior (``mouth_interior``, as ``_fill_mouth``'s opening):
    among those the atlas does not hold (``hidden``: the atlas keeps the outermost surface of each
    direction, the lips over a narrow opening), those seen from the head frame's origin within the
    lips' outline, from MOUTH_BEHIND_IOD to MOUTH_DEPTH_IOD behind it. They were filled from the
    surface nearest them, the lips and the skin: a mouth bag came out skin-coloured, the teeth
    lip-pink (a QA of a head with an open mouth). Returns (K,) indices among the points and (K, 3)
    float32 colours."""
    none = (np.zeros(0, np.int64), np.zeros((0, 3), np.float32))
    outer = atlas_polygon(geometry, points_head, LIPS_OUTER)
    candidates = np.flatnonzero(hidden)
    if outer is None or not len(candidates):
        return none
    from skimage.measure import points_in_poly

    lip_points = points_head[list(LIPS_OUTER)]
    lips = float(np.median(np.linalg.norm(lip_points, axis=1)))
    points = geometry.frame.to_head(np.asarray(surface_points)[candidates]).astype(np.float64)
    radius = np.linalg.norm(points, axis=1)
    # Cheap tests first (a few hundred thousand hidden texels): the depth, then the cone round the lips.
    axis = lip_points.mean(axis=0)
    axis /= max(float(np.linalg.norm(axis)), 1e-12)
    cone = float(np.min(lip_points @ axis / np.maximum(np.linalg.norm(lip_points, axis=1), 1e-12)))
    near = ((lips - radius) > MOUTH_BEHIND_IOD) & ((lips - radius) < MOUTH_DEPTH_IOD)
    near &= points @ axis >= cone * radius
    candidates, points, radius = candidates[near], points[near], radius[near]
    if not len(candidates):
        return none
    theta, phi = directions(points)
    inside = points_in_poly(geometry.layout.band_xy(theta, phi), outer)
    if not inside.any():
        return none
    depth = lips - radius
    return candidates[inside], mouth_interior(depth[inside] - MOUTH_BEHIND_IOD)


def _contour_level(contour: np.ndarray, level: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N,) the contour's ``level`` (one value per point, e.g. its distance from the head's centre)
    at the atlas points ``xy`` (N, 2) inside it: the inverse-square-distance mean of the points'.

    The mouth's depth is taken against it, not against the contour's mean: a face curves back
    towards the corners of the mouth, and against the mean a closed mouth's corners read recessed
    (0.045 head units on the demo head) and were painted as dark spots of interior."""
    d2 = ((xy[:, None, :] - contour[None, :, :]) ** 2).sum(axis=-1)
    weight = 1.0 / np.maximum(d2, 0.25)
    return (weight * level).sum(axis=-1) / weight.sum(axis=-1)


def photo_lips_coords(
    mesh_outer: np.ndarray, mesh_inner: np.ndarray, photo_outer: np.ndarray, photo_inner: np.ndarray, shape
) -> np.ndarray:
    """(h, w, 2) the photo pixel each texel of the mesh's lips reads, NaN off them: the lips mapped
    onto the lips, not through the camera.

    Both mouths are cut into the same quads, one per pair of neighbouring contour points (LIPS_OUTER
    and LIPS_INNER run alike, corner to corner), from the inner contour to the outer one; each quad of
    the mesh's (atlas pixels, ``shape`` box) is mapped onto the photo's by its homography. A closed
    mouth's upper and lower inner contours meet, an open one's part: each lip still lands on its own,
    and a smile's thin lips are stretched over the mesh's full ones. Across the lips the photo is read
    from LIP_BAND[0] of the way out (its inner edge borders the teeth)."""
    h, w = int(shape[0]), int(shape[1])
    out = np.full((h, w, 2), np.nan, np.float32)
    lo, hi = LIP_BAND
    photo_in = photo_inner + lo * (photo_outer - photo_inner)
    photo_out = photo_inner + hi * (photo_outer - photo_inner)
    # The mesh's quads start a little off its inner contour too: a closed mouth's two inner contours
    # coincide, and a quad of no area has no homography.
    mesh_in = mesh_inner + 0.02 * (mesh_outer - mesh_inner)
    label = np.zeros((h, w), np.int32)
    maps = []
    n = len(mesh_outer)
    for k in range(n):
        j = (k + 1) % n
        src = np.array([mesh_in[k], mesh_in[j], mesh_outer[j], mesh_outer[k]], np.float32)
        dst = np.array([photo_in[k], photo_in[j], photo_out[j], photo_out[k]], np.float32)
        if abs(cv2.contourArea(src)) < 0.5 or abs(cv2.contourArea(dst)) < 0.05:
            maps.append(None)
            continue
        maps.append(cv2.getPerspectiveTransform(src - 0.5, dst - 0.5))
        cv2.fillPoly(label, [np.round((src - 0.5) * 16).astype(np.int32)], k + 1, shift=4)
    if not label.any():
        return out
    # Texels the quads' rasterisation missed (their anti-aliased rims) take the nearest quad's map.
    from scipy.ndimage import distance_transform_edt

    _, (near_r, near_c) = distance_transform_edt(label == 0, return_indices=True)
    label = label[near_r, near_c]
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    for k, matrix in enumerate(maps):
        if matrix is None:
            continue
        at = label == k + 1
        xy1 = np.stack([cols[at], rows[at], np.ones(int(at.sum()), np.float32)], 1) @ matrix.T.astype(
            np.float32
        )
        out[at] = xy1[:, :2] / np.where(np.abs(xy1[:, 2:]) > 1e-6, xy1[:, 2:], np.nan) + 0.5
    return out


def photo_mouth_open(face: Face) -> bool:
    """Whether the photo's mouth is open: its inner lip contour holds PHOTO_MOUTH_OPEN of an eye
    distance squared or more."""
    contour = face.landmarks[list(LIPS_INNER)].astype(np.float32)
    return bool(cv2.contourArea(contour) >= PHOTO_MOUTH_OPEN * face.interocular**2)


def photo_mouth_opening(portrait: np.ndarray, face: Face) -> np.ndarray | None:
    """(H, W) float32 0..1: the photo's mouth opening (inside its inner lip contour, grown by
    PHOTO_MOUTH_GROW, then fading out over PHOTO_MOUTH_FEATHER), or None when the mouth is closed
    (``photo_mouth_open``)."""
    if not photo_mouth_open(face):
        return None
    contour = face.landmarks[list(LIPS_INNER)].astype(np.float64)
    inside = polygon_mask(portrait.shape[:2], contour).astype(np.uint8)
    # Grown by a disc, not scaled about its centre: a smile's opening is a crescent.
    radius = max(1, int(round(PHOTO_MOUTH_GROW * face.interocular)))
    grown = cv2.dilate(inside, disc(radius)).astype(np.float32)
    # Feathered outwards (the grown edge stays fully taken): a hard edge cut the lips' colour off
    # against the photo's skin like a sticker.
    feather = cv2.GaussianBlur(grown, (0, 0), PHOTO_MOUTH_FEATHER * face.interocular)
    return np.clip(feather * 2.0, 0.0, 1.0)


# -- the whole step ------------------------------------------------------------------------------


def complete_regions(
    texture: AtlasTexture,
    geometry: AtlasGeometry,
    landmarks3d: np.ndarray,
    portrait: np.ndarray,
    face: Face,
    person: np.ndarray,
    registration: Registration,
    portrait_coords: np.ndarray,
    scalp: str = "skin",
    seed: int = 0,
    glasses: PortraitGlasses | None = None,
    eyeballs: Eyes | None = None,
) -> Regions:
    """The scalp, eyes and mouth of the partial atlas texture (module docstring).

    ``landmarks3d``: the mesh's 468 landmarks in mesh space (NaN rows allowed); ``person``: the
    portrait's person mask; ``portrait_coords``: the projection's (S, S, 2) portrait pixel of each
    texel, NaN where unseen; ``glasses``: the portrait's frames where already found (the
    projection's), else found here; ``eyeballs``: the mesh's separate eyeballs
    (``eyes.find_eyeballs``), whose texels the photo does not cover are painted as eyes. Returns a
    new texture; the input is left untouched.
    """
    if scalp not in SCALP_OPTIONS:
        raise ValueError(f"scalp must be one of {SCALP_OPTIONS}, got {scalp!r}")
    s = geometry.size
    regions = head_regions(geometry, landmarks3d)
    points_head, index = regions.points_head, regions.index
    conf0 = unit_range(texture.confidence)
    color = np.array(texture.color, np.float32)
    color[np.isnan(color)] = 0.0
    work = _Work(color, conf0.copy(), conf0.copy())
    coords = take_rows(portrait_coords.reshape(-1, 2), index)
    seen = np.isfinite(coords[:, 0])
    warnings: list[str] = []
    summary: dict[str, Any] = {}

    if glasses is None:
        glasses = find_glasses(portrait, face)
    # Marks on the skin (a mole, paint): kept as the photo shows them, no source of the fills.
    marks = find_marks(portrait, face, glasses)

    # -- the scalp: the mesh's hair region, and the photo's hair where it lands on the head --
    hair = find_hair(portrait, face, person)
    summary["hair_share"] = round(hair.share, 3)
    if len(hair.lab):
        summary["hair_lab"] = [round(float(v), 1) for v in np.median(hair.lab, axis=0)]
    allowed = seen & regions.hair_may_show
    photo_says = np.zeros((len(index), 3), np.float32)
    put_rows(photo_says, allowed, hair.at(take_rows(coords, allowed)))
    photo_feature, photo_says = photo_says[:, 2], np.ascontiguousarray(photo_says[:, :2])
    # What is taken off the head: hair, and above the brows or beside the face anything that is not
    # skin (a hat, its brim); grown by a few texels and feathered, so that edges and wisps go too.
    hair_p, skin_p = photo_says[:, 0], photo_says[:, 1]
    if not hair.seen:
        # Too little of the band along the upper face outline is hair-coloured to say the photo shows
        # hair (HAIR_MIN_SHARE): what the hair model learned from it is a pattern or paint on the
        # skin, a shadow or the background beside the head, and its doubts took seen skin off bald
        # scalps and foreheads (bench/oracle.py, true camera, 32 cases: 22 better by up to 2.6 dB,
        # none worse). What is not skin-coloured still goes, through ``skin_p``.
        hair_p = np.zeros_like(hair_p)
    doubt = np.where(regions.skin_expected, hair_p, np.maximum(hair_p, 1.0 - skin_p))
    # A doubt above HAIR_WISP goes whole (clear skin's stays below it), so the feather below lies on
    # the skin beside the hair: kept at part confidence, a wisp's colour (hair) reached the fill too,
    # a brown line along the hairline.
    off = np.maximum(smoothstep((doubt - 0.3) / 0.4), doubt > HAIR_WISP) * allowed
    taken = np.clip(_feathered(off, index, s, max(1, s // 256)) * 1.5, 0.0, 1.0)
    if hair.seen:
        # Where the photo surely shows hair, grown by HAIR_SHADOW: the skin right under a fringe lies
        # in its shadow, a dark rim the fill would keep as a line along the hairline. (Only with hair
        # seen: on a bald head, stray doubts grown that far made holes that moved with the mesh.)
        shadow = max(1, int(round(HAIR_SHADOW * geometry.layout.face_texels_per_iod)))
        surely = (doubt > HAIR_SURE) * allowed
        wide = _feathered(surely, index, s, shadow, coarse=max(1, shadow // 3))
        taken = np.maximum(taken, np.clip(wide * 1.5, 0.0, 1.0))
        # Closed over HAIR_CLOSE: the skin left in the notches of the hair's ragged edge (between
        # strands, under a wisp) kept the photo's hair-coloured rims, a frayed brown hairline.
        close = max(1, int(round(HAIR_CLOSE * geometry.layout.face_texels_per_iod)))
        coarse = max(1, close // 3)
        grown = (_feathered(taken, index, s, close, coarse=coarse) > 0.5).astype(np.float32)
        closed = _feathered(grown, index, s, close, False, coarse)
        # (less its feather's far tail: at the upper cheeks it took up to 0.005 of the photo's weight)
        taken = np.maximum(taken, np.clip((closed - 0.01) * 1.5, 0.0, 1.0))
    # On the scalp, whatever the photo does not show as skin goes; a bald head's seen scalp is its
    # skin and stays (the ground-truth sweep's heads are bald: clearing it lost seen texels).
    not_skin = np.where(seen, smoothstep((0.7 - skin_p) / 0.4), 1.0).astype(np.float32)
    region = np.maximum(regions.scalp * not_skin, taken)
    # Where the photo's own brows, eyes or lips land outside the mesh's features (its brows a little
    # above the brow ridge the mesh's landmarks were read on), they stay: hair-coloured, not skin, and
    # next to hair or to skin the skin model does not know (a lit side), they were taken off with it
    # (bench/sweep.py's made-up faces lost whole brows).
    region = region * (1.0 - photo_feature)
    if marks is not None:
        # Nor a mole on the forehead or a cheek, however hair-coloured: a small round spot amid skin.
        spots = np.zeros(len(index), np.float32)
        spots[seen] = marks.spots_at(take_rows(coords, seen))
        if spots.any():
            region = region * (1.0 - spots * _amid_skin(doubt * allowed, spots, index, geometry))

    applied = scalp
    if scalp == "hair" and not hair.seen:
        applied = "skin"
        warnings.append(
            "scalp=hair: the photo shows no hair above the forehead (bald, covered, or cropped at the "
            "brows), so the scalp was made skin; use a photo that shows the hair, or scalp=skin"
        )
    flat_conf, flat_photo = work.conf.reshape(-1), work.photo.reshape(-1)
    c0 = flat_conf[index]
    layer = None
    if applied == "skin":
        # The inpaint fills what has no confidence: here, with the face's skin.
        kept = c0 * (1.0 - region)
        summary["scalp_texels_cleared"] = int(((c0 - kept) > 0.5).sum())
    else:
        layer, kept = _hair_layer(geometry, registration, regions, region, hair, photo_says, work.color, seed)
        summary["hair_texels"] = int((layer.alpha > 0.5).sum())
        kept = np.minimum(c0, kept)
    flat_conf[index] = kept
    flat_photo[index] = kept

    # -- glasses: their frames are not skin; the inpaint fills them with the skin around --
    summary["glasses"] = glasses.found
    if glasses.found:
        frame = np.zeros(len(index), np.float32)
        # The frames, and the room reflected in the lenses (lighter and greyer than the skin).
        frame[seen] = glasses.covered_at(coords[seen])
        radius = max(1, int(round(FRAME_FEATHER * geometry.layout.face_texels_per_iod)))
        off = np.clip(_feathered(frame, index, s, radius) * 1.5, 0.0, 1.0)
        summary["glasses_texels_cleared"] = work.take_off(np.unravel_index(index, (s, s)), off)
        summary["dark_lenses"] = glasses.dark
        if glasses.dark:
            warnings.append(
                "the photo's eyes are hidden behind dark glasses: the glasses were taken off and filled "
                "with the skin around, and the eyes painted in with a brown iris, since the photo does "
                "not show their colour. A photo without sunglasses gives the eyes as they are"
            )
        else:
            warnings.append(
                "the photo shows glasses: their frames and the lenses' reflections were taken off and "
                "filled with the skin around, and the lenses' tint taken out of the skin behind them. A "
                "photo without glasses gives a cleaner texture"
            )

    # -- eyes, mouth, lips: under the photo --
    colours = feature_colours(portrait, face, eyes_seen=not glasses.dark)
    summary["iris_rgb"] = [round(float(v), 3) for v in colours.iris]
    summary["sclera_rgb"] = [round(float(v), 3) for v in colours.sclera]
    eyes_in_photo = np.zeros(portrait.shape[:2], np.float32)
    for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR):
        eyes_in_photo[polygon_mask(eyes_in_photo.shape, face.landmarks[list(contour)])] = 1.0
    ball = None if eyeballs is None else eyeballs.texels(geometry.tri_id)
    photo_on_balls = None if ball is None or not ball.any() else (work.color[ball], work.conf[ball])
    # An eye the photo's edge cuts (its texels taken off whole, ``steps.eyes_cut_by_frame``) is the
    # other eye's mirror where the photo shows that one: an eye at rest beside a photographed one
    # looked painted.
    right_cut, left_cut = eyes_cut(face, portrait.shape[1], portrait.shape[0])
    mirrored = (right_cut and not left_cut, left_cut and not right_cut)
    # A small face's eyes are a pixel or two of blur, which came out as skin: eyeless sockets.
    summary["photo_eyes_too_small"] = too_small = eyes_too_small(face)
    if too_small:
        warnings.append(small_eyes_note(face))
    summary["eye_texels_filled"] = _fill_eyes(
        work, geometry, points_head, colours, eyes_in_photo, portrait_coords, mirrored, too_small
    )
    eye_layer = None
    if photo_on_balls is not None:
        eye_layer = _eyeball_layer(work, geometry, eyeballs, ball, *photo_on_balls)
        summary["photo_eye_texels_cleared"] = _photo_eyes_off_lids(
            work, geometry, ball, face, portrait_coords, portrait.shape[:2]
        )
    if ball is not None:
        summary["eyeball_texels_filled"] = 0 if eye_layer is None else len(eye_layer.index)
    mouth_in_photo = photo_mouth_opening(portrait, face)
    lips_filled, mouth_filled, mouth_taken = _fill_mouth(
        work, geometry, points_head, colours, mouth_in_photo, portrait_coords, portrait, face.landmarks
    )
    summary["lip_texels_filled"], summary["mouth_texels_filled"] = lips_filled, mouth_filled
    summary["photo_mouth_texels_cleared"] = mouth_taken
    if mouth_taken > 0 and mouth_filled > 0:
        warnings.append(
            "the photo's open mouth does not lie on the mesh's: its teeth and mouth were taken off where "
            "they fell on the mesh's lips, which got the lips' colour, and the mesh's own opening was "
            "painted as the mouth's dark inside; a photo with the mouth as the mesh's keeps more of it"
        )
    elif mouth_taken > 0:
        warnings.append(
            "the photo's mouth is open where the mesh's is closed: its teeth were taken off and its lips "
            "stretched over the mesh's closed ones; a photo with the mouth closed keeps the lips as seen"
        )

    # Texels now mostly a fill: the photo's detail must not be painted back over them.
    photo = np.minimum(work.photo, work.conf)
    mostly_fill = (work.conf > 0.05) & (photo < 0.5 * work.conf)
    if layer is not None:
        flat_photo, flat_fill = photo.reshape(-1), mostly_fill.reshape(-1)
        alpha, share = layer.alpha, layer.photo_share
        flat_photo[layer.index] = flat_photo[layer.index] * (1.0 - alpha) + alpha * share
        flat_fill[layer.index] |= alpha * (1.0 - share) > 0.5
    new_coords = portrait_coords.copy()
    new_coords[mostly_fill] = np.nan
    if eye_layer is not None:  # painted over the stages: no photo detail on them either
        new_coords.reshape(-1, 2)[eye_layer.index] = np.nan
    summary["scalp"] = applied
    texture = AtlasTexture(work.color, work.conf)
    marks = atlas_marks(marks, portrait_coords, work.color, work.conf, geometry)
    summary["mark_texels"] = 0 if marks is None else int((marks * (work.conf > 0)).sum() + 0.5)
    return Regions(
        texture, new_coords, photo.astype(np.float32), applied, warnings, summary, layer, colours, eye_layer,
        marks,
    )  # fmt: skip
