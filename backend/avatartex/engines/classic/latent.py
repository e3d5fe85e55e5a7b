"""Stage 2, classic engine (the "consistency" step): de-lighting and colour harmonisation.

The neural engine projects the texture onto a generative prior; without one, the classic engine
makes the texture consistent by removing what does not belong to the skin's albedo:

* the photo's shading, ambient plus a key light on the surface normal (``shading.fit_lights``,
  started from a robust 9-coefficient spherical-harmonic fit) fitted to the luminance of the
  portrait-backed skin texels, its key light refitted to the creases' band of the luminance where
  the registration is trusted (``shading.fit_detail_light``: a face-sized albedo variation
  flattens the first fit), and divided out at the photo's resolution (``shading.as_photographed``:
  a crease sharper in the mesh than in the photo would come back inverted), from each channel to
  the power that channel follows it with in the photo (``channel_exponents``: skin in shadow is
  redder, lit skin whiter); before that division, the skin's shine where the fitted key light
  mirrors towards the registered camera (``shine.py``, ``_without_shine``); on a mesh that is not
  the photographed face, with it, what the mesh's shading cannot take off: that face's relief
  (``relief_band``, ``relief_amount``);
* the step between seen and filled texels (grazing-angle texels of the photo are darker or lighter
  than the fill next to them): a smooth per-channel gain map pulls them to the fill's level;
* colour casts and dark edges carried into the fill (hair or background at the face's border, the
  light's falloff): the fill's low-frequency chroma and lightness are pulled towards the seen
  skin's;
* for flat styles (toon, comic), the remaining low-frequency brightness variation is compressed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit, prange

from ... import atlas_filters as filters
from ... import memo, shine
from ...atlas import AtlasGeometry, HeadFrame
from ...features import fill_polygon
from ...imaging import LUMA, disc, luminance, smoothstep, take_rows, unit_range
from ...registration import small_fits
from ...shading import (
    DetailFit,
    DirectionalLights,
    as_photographed,
    fit_detail_light,
    fit_lights,
    fit_shading,
    sh_eval,
)
from ..base import AtlasTexture, Stage, StageContext
from .inpaint import classic_fill

OPENINGS = ("right_eye", "left_eye", "lips_inner")
"""The features whose insides are no skin (``feature_openings``)."""
OPENING_MARGIN_IOD = 0.03
"""The openings are grown by this many eye distances (a landmark's misplacement)."""
SAMPLE_LIMIT = 40_000
"""Skin texels the global light fit uses at most (evenly spread)."""
DETAIL_TEXELS_PER_IOD = 48.0
"""The detail band's light fit works at about this many texels per eye distance (the 1024² atlas's
181 area-averaged by 4): creases stay one or two texels wide, the fit costs a sixteenth."""
DETAIL_SIGMA_IOD = 0.15
"""The light's detail band (``fit_detail_light``): log-luminance finer than a Gaussian of this
many eye distances: the creases, the nose's sides, the lips (tuned on bench/sweep.py's renders)."""
DETAIL_TRUST_IOD = (0.12, 0.17)
"""The detail band's light is used in full while the registration's estimated error is below the
first (eye distances), not at all above the second, blended between. Its creases must land on the
mesh's: ungated on bench/sweep.py it gained 0.8 to 2.9 dB in every case estimated at <= 0.13 (10
cases) and lost up to 1.9 dB (a flatter light: misplaced creases decorrelate the band) in a third of
those estimated above 0.15; gated, against the same code without it, 23 of 46 cases gained 0.3 to
5.1 dB and one lost 0.49 (a side light with cast shadows)."""
SHAPE_AGREEMENT = (0.15, 0.45)
"""The share of the photo's detail band (``DETAIL_SIGMA_IOD``) the mesh's creases explain under the
detail light, below which the mesh is taken for another face than the photographed one (the detail
light left out, unless it keeps its contrast: ``SHAPE_CONTRAST``), above which for the same (used in
full)."""
SHAPE_CONTRAST = (0.5, 0.8)
"""The detail light's contrast (key over ambient) as a share of the luminance fit's, below which its
flatness is taken for another face's creases, above which for the photo's light."""
RELIEF_BAND_IOD = (0.06, 0.5)
"""The band of the skin's log-luminance taken for the photographed face's relief where the mesh is
another face (``relief_band``): finer than the second Gaussian (eye distances), coarser than the
first (grain, pores and fine creases stay)."""
PHOTO_FACE_SCALE_IOD = 0.25
"""Gaussian sigma (eye distances) above which the photographed face's shape (``photoface``) replaces
the mesh's in the de-lighting: its sides turning away, its nose's and cheeks' bulk. Finer, the
mesh's own normals stay (the detector's 468 points do not resolve creases)."""
FACE_EXPLAINS = (0.90, 0.97)
"""The light fitted on the photographed face's shape against the one on the mesh's: the ratio of
their robust residuals (``shading.fit_lights``) below which the photographed face's shape is taken
whole, above which not at all. A mesh that is the photographed face explains its photo at least as
well as the detector's coarse shape does; another head does not. Measured: renders of a head on
other heads (``bench/delight_cross.py``) 0.68-0.90 where the scan was the photo, 1.10-1.94 for the
demo head's render on its own variants (their shapes nearly its own); a made-up face painted on the
mesh's own shape (``bench/sweep.py``), which the crease test takes for another face, 0.97-1.06."""
RELIEF_LEVELS = 2
"""The relief is measured at the atlas's size halved this many times (``relief_band``): its band's
finer Gaussian is still a few texels wide there at 512² and above."""
RELIEF_REACH_IOD = 0.1
"""The relief's correction fades out over about this many eye distances beyond the seen skin."""
RELIEF_UNSURE = (0.1, 0.9)
"""Left to the photo, a share of the relief taken off (``relief_amount``) between these says the
mesh's creases matched the photo's only in part: neither the photographed person's mesh nor surely
another's. Where the relief is also strong (``RELIEF_NOTICEABLE``) the report warns and says which
setting decides it."""
RELIEF_NOTICEABLE = 0.05
"""The relief band's standard deviation over the skin (log-luminance, ``relief_band``; 0.05 is about
1.5 CIELAB L* on skin) from which its being taken off or kept shows in a render."""
CHANNEL_EXPONENTS = (0.5, 2.0)
"""Bounds of the power of the shading divided out of each channel (``channel_exponents``): 1 is a
Lambertian render's; the astronaut's and Grace Hopper's photos measured 0.79-1.92."""
CHANNEL_SPREAD = (0.02, 0.05)
"""Standard deviation of the fitted log shading over the skin below which the channels' powers stay
1 (the light too even to measure them), above which they are used in full."""
SKIN_FIT_CONFIDENCE = 0.8
"""Confidence above which a skin texel enters the shading fit (``_skin_mask``): the photo well seen,
not at the grazing angles it is read softly at, whose colour moves with the camera."""
SKIN_CHROMA = 0.04
"""How far (chromaticity: a channel over the three's sum) a texel's colour may lie from the skin's
reference to be fitted as skin (``_skin_mask``), or from the line to grey as skin the light whitened
(``whitened_skin``)."""
WHITENED = 0.8
"""How far from the skin's chromaticity towards grey (0 the skin's, 1 grey) lit skin a photo whitened
may be (``whitened_skin``); eye whites and teeth are greyer."""
WHITENING_CORRELATION = 0.82
"""The correlation of the skin's paleness with its log brightness along the line to grey
(``whitened_skin``) from which pale skin is taken for lit skin the photo whitened, below which for
the skin's own. Measured: photos (the astronaut and Grace Hopper, as they are, one stop darker, 0.4
stop brighter, under a warm cast, JPEG quality 40) 0.835-0.894; bench/sweep.py's renders of
patterned and made-up skins (no tone curve) 0.79 at most, 0.66 but for one."""
SHINE_STEP = 4
"""Texels between the samples the skin's own colour and the skin around a shine are read on
(``_without_shine``): both are smooth over tens of texels."""
MAX_GAIN = 3.0
"""De-lighting never brightens or darkens linear light by more than this factor (about 1.6 stops): where the
SH model extrapolates (grazing normals, misregistered features) a wrong division is bounded."""


@dataclass
class CandidateColours:
    """The colours of the texels the light may be fitted on (``_fit_candidates``), read once for
    ``_skin_mask`` and ``whitened_skin``."""

    index: np.ndarray
    """(N,) their flat indices in the atlas."""
    chroma: np.ndarray
    """(N, 3) float32 each one's channels over their sum."""
    total: np.ndarray
    """(N,) float32 each one's channels' sum (sRGB)."""

    @classmethod
    def read(cls, color: np.ndarray, candidates: np.ndarray) -> CandidateColours:
        index = np.flatnonzero(candidates)
        rgb = color.reshape(-1, 3)[index]
        total = np.maximum(rgb.sum(axis=1), 1e-3)
        return cls(index, rgb / total[:, None], total)


def _skin_mask(
    colours: CandidateColours, conf: np.ndarray, reference: int = 160_000
) -> tuple[np.ndarray, SkinReference | None]:
    """(S, S) bool: confident skin texels to fit the shading on, and the skin's reference colour.

    The shading models cannot tell dark hair at the face's border from shadow, so the fit is
    restricted to skin: the candidates (``_fit_candidates``: the face region when the pipeline has
    set it, their ``colours``), and of them the texels whose chromaticity and luminance are near
    those of the most confident ones (eyes, brows, lips, hair and background are left out; the
    robust weights catch the rest). The reference chromaticity and luminance are taken on at most
    ``reference`` evenly spread texels.
    """
    index, chroma, total = colours.index, colours.chroma, colours.total
    out = np.zeros(conf.shape, bool)
    if index.size == 0:
        return out, None
    probe = slice(None, None, int(np.ceil(index.size / reference)))  # ``filters.subsample``'s texels
    c = conf.reshape(-1)[index[probe]]
    core = c >= np.quantile(c, 0.5)
    ref = SkinReference(np.median(chroma[probe][core], axis=0), float(np.median(total[probe][core])))
    keep = (
        (np.abs(chroma - ref.chroma).max(axis=1) < SKIN_CHROMA)
        & (total > 0.4 * ref.total)
        & (total < 2.5 * ref.total)
    )
    out.reshape(-1)[index[keep]] = True
    return out, ref


@dataclass
class SkinReference:
    """The face's skin colour as ``_skin_mask`` reads it on its most confident texels."""

    chroma: np.ndarray
    """(3,) the channels over their sum."""
    total: float
    """The channels' sum (sRGB)."""


def feature_openings(ctx: StageContext) -> np.ndarray:
    """(S, S) bool: the eyes' and the mouth's openings in the atlas (``StageContext.features``, grown by
    OPENING_MARGIN_IOD): eye whites and teeth, which are no skin whatever their colour."""
    atlas = ctx.atlas
    shape = atlas.mask.shape
    lines = ctx.features()
    cover = np.zeros(shape, np.float32)
    for name in OPENINGS:
        if name in lines:
            cover = np.maximum(cover, fill_polygon(shape, lines[name]))
    if not cover.any():
        return np.zeros(shape, bool)
    grow = max(1, round(OPENING_MARGIN_IOD * atlas.layout.face_texels_per_iod))
    return cv2.dilate((cover > 0).astype(np.uint8), disc(grow)) > 0


def _fit_candidates(conf: np.ndarray, atlas: AtlasGeometry) -> np.ndarray:
    """(S, S) bool: texels the light may be fitted on, whatever their colour: well seen, facing
    somewhere (a normal), in the face region where the pipeline has set one."""
    cache = atlas.cache
    if "normal_ok" not in cache:  # the atlas's own: kept with it
        cache["normal_ok"] = atlas.mask & (np.einsum("ijk,ijk->ij", atlas.normals, atlas.normals) > 0.25)
    candidates = cache["normal_ok"] & (conf > SKIN_FIT_CONFIDENCE)
    if atlas.face is not None and (atlas.face & candidates).sum() >= 200:
        candidates &= atlas.face
    return candidates


@dataclass
class Whitening:
    """How a photo's lit skin is whitened along the line from the skin's chromaticity to grey
    (``whitened_skin``)."""

    correlation: float
    """Of the paleness with the log brightness (NaN: too few texels on the line to tell)."""
    slope: float
    """Paleness per unit of log brightness above the skin's reference (``SkinReference.total``), on
    the line's texels brighter than it; NaN where the correlation is under WHITENING_CORRELATION
    (the skin's own pale patches, no tone curve to undo)."""

    @property
    def camera(self) -> bool:
        """Whether a camera's tone curve whitened the lit skin."""
        return bool(np.isfinite(self.slope))


def _paleness(chroma: np.ndarray, total: np.ndarray, ref: SkinReference) -> tuple[np.ndarray, np.ndarray]:
    """Of colours' ``chroma`` (N, 3) and channel sums ``total`` (N,): on the line from the skin's
    chromaticity to grey (``SKIN_CHROMA`` off it at most, less than ``WHITENED`` of the way, between
    0.4 and 3 times the skin's brightness), and their paleness (0 the skin's, 1 grey)."""
    skin = ref.chroma.astype(np.float32)
    towards = np.float32(1.0 / 3.0) - skin
    offset = chroma - skin
    paleness = offset @ towards / np.float32(max(float(towards @ towards), 1e-6))
    off_line = np.abs(offset - paleness[:, None] * towards).max(axis=1)
    line = (
        (off_line < SKIN_CHROMA)
        & (paleness < WHITENED)
        & (total > 0.4 * ref.total)
        & (total < 3.0 * ref.total)
    )
    return line, paleness


def whitened_skin(
    colours: CandidateColours, skin: np.ndarray, ref: SkinReference, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, Whitening]:
    """Lit skin the photo whitened, which ``_skin_mask``'s chroma test leaves out: (S, S) bool, and
    how it is whitened.

    A camera's response flattens towards white as the light rises (the tone curve's shoulder, the
    sensor's channels nearing full), so a photo's lit brow, forehead and nose ridge are paler than
    its cheeks, straight towards grey: Grace Hopper's between the brows 0.42 of the way from her
    skin's chromaticity, her nose ridge 0.53. Those are the candidates (``colours``) whose
    chromaticity lies on the line from the skin's to grey (``SKIN_CHROMA`` off it at most), less
    than ``WHITENED`` of the way (eye whites and teeth are greyer). A skin's own pale patches lie on
    it too; what tells the light's whitening is how closely the paleness follows the brightness
    along the line (their correlation, at least ``WHITENING_CORRELATION``). Then the texels not in
    ``skin`` and brighter than the skin's reference are taken for it, and the trend of their paleness
    over their log brightness above the reference's is measured (``unwhitened`` takes it out).

    ``exclude`` ((S, S) bool): texels that are no skin whatever their colour (``feature_openings``),
    neither measured nor taken: on a dark skin the eye whites lie on the line short of WHITENED."""
    out = np.zeros(skin.shape, bool)
    nothing = Whitening(float("nan"), float("nan"))
    if float(np.abs(np.float32(1.0 / 3.0) - ref.chroma).max()) < 1e-3:  # a grey skin: no line
        return out, nothing
    # The correlation and the trend on at most SAMPLE_LIMIT evenly spread texels
    # (``filters.subsample``'s); which texels are let in, on all.
    probe = slice(None, None, max(1, int(np.ceil(colours.index.size / SAMPLE_LIMIT))))
    allowed = np.ones(colours.index.size, bool) if exclude is None else ~exclude.reshape(-1)[colours.index]
    total = colours.total[probe]
    line, paleness = _paleness(colours.chroma[probe], total, ref)
    line &= allowed[probe]
    if line.sum() < 100:
        return out, nothing
    level, paleness = np.log(total[line] / np.float32(ref.total)), paleness[line]
    correlation = float(np.corrcoef(level, paleness)[0, 1])
    if correlation < WHITENING_CORRELATION:
        return out, Whitening(correlation, float("nan"))
    lit = level > 0
    slope = float((paleness[lit] * level[lit]).sum() / max(float((level[lit] ** 2).sum()), 1e-9))
    rest = ~skin.reshape(-1)[colours.index] & allowed
    total = colours.total[rest]
    line, _ = _paleness(colours.chroma[rest], total, ref)
    out.reshape(-1)[colours.index[rest][line & (total > ref.total)]] = True
    return out, Whitening(correlation, max(slope, 0.0))


def unwhitened(
    color: np.ndarray, conf: np.ndarray, ref: SkinReference, whitening: Whitening
) -> tuple[np.ndarray, int]:
    """``color`` with the whitening a camera's tone curve gave the lit skin taken out, and how many
    texels moved (by at least 0.01 of the way to grey).

    Fitted as skin (``whitened_skin``), Grace Hopper's lit brow was de-lit to her cheeks' lightness
    but stayed paler: C* 36 against her cheeks' 44 on the scanned head. A texel on the line from the
    skin's chromaticity to grey and brighter than the skin's reference is moved back towards the
    skin's chromaticity by the paleness the trend gives its brightness (``Whitening.slope``), never
    past it, its channels' sum kept; as far as the photo saw it (``conf``): the fill, carried from
    the seen skin before the light was known, is left as it is (moved too, Grace Hopper's scalp came
    out more saturated than her face). Texels darker than the reference are left: what the trend
    reads there is as much the skin's own (ruddier cheeks in shade) as the curve's toe. One compiled
    pass (numpy's took 20 ms of a 1024² request)."""
    skin = np.ascontiguousarray(ref.chroma, np.float32)
    towards = (np.float32(1.0 / 3.0) - skin).astype(np.float32)
    color = np.ascontiguousarray(color, np.float32)
    out = np.empty_like(color)
    moved = _unwhiten_kernel(
        color,
        np.ascontiguousarray(conf, np.float32),
        skin,
        towards,
        np.float32(ref.total),
        np.float32(whitening.slope),
        out,
    )
    return out, int(moved)


@njit(cache=True, parallel=True)
def _unwhiten_kernel(color, conf, skin, towards, ref_total, slope, out) -> int:
    """``unwhitened``'s pass: ``out`` the moved ``color``; returns how many texels moved by at least
    0.01 of the way to grey. The line's test is ``_paleness``'s."""
    span = max(towards[0] ** 2 + towards[1] ** 2 + towards[2] ** 2, 1e-6)
    counts = np.zeros(color.shape[0], np.int64)
    for i in prange(color.shape[0]):
        for j in range(color.shape[1]):
            r, g, b = color[i, j, 0], color[i, j, 1], color[i, j, 2]
            out[i, j, 0], out[i, j, 1], out[i, j, 2] = r, g, b
            total = r + g + b
            if conf[i, j] <= 0 or total <= ref_total or total >= 3.0 * ref_total:
                continue
            c0, c1, c2 = r / total - skin[0], g / total - skin[1], b / total - skin[2]
            paleness = (c0 * towards[0] + c1 * towards[1] + c2 * towards[2]) / span
            off = max(
                abs(c0 - paleness * towards[0]),
                abs(c1 - paleness * towards[1]),
                abs(c2 - paleness * towards[2]),
            )
            if off >= SKIN_CHROMA or paleness >= WHITENED:
                continue
            back = min(paleness, slope * np.log(total / ref_total))
            if back <= 0:
                continue
            back *= conf[i, j]
            for k in range(3):
                value = (color[i, j, k] / total - back * towards[k]) * total
                out[i, j, k] = min(max(value, 0.0), 1.0)
            if back > 0.01:
                counts[i] += 1
    return counts.sum()


def relief_band(
    color: np.ndarray, log_shading: np.ndarray, skin: np.ndarray, atlas: AtlasGeometry
) -> np.ndarray:
    """(S, S) the de-lit skin's log-luminance in the relief's band (``RELIEF_BAND_IOD``): on a mesh
    that is another face than the photographed one, what is left of that face's relief once the
    mesh's shading (``log_shading``, divided out of ``color``) is: its nose's, sockets' and
    cheekbones' shading, which the mesh's own shape does not cast.

    Measured on the confident skin texels ``skin`` (``_skin_mask``), filled over the eyes, brows
    and lips from the skin around them (the relief's shading lies over them too), faded out beyond
    the seen skin."""
    if skin.sum() < 200:
        return np.zeros(skin.shape, np.float32)
    # Everything here is coarser than a few texels of a quarter-size atlas: worked out there (the
    # skin's colour and shading area-averaged over its texels) and the result interpolated back.
    # Colour, log shading and 1 on the skin texels, 0 elsewhere.
    stack = filters.premultiplied(filters.with_channel(color, log_shading), skin)
    rows, sizes = atlas.band_rows, []
    for _ in range(RELIEF_LEVELS):
        sizes.append((stack.shape[:2], rows))
        stack, rows = filters.downsample(stack, rows)
    weights = stack[..., 4]
    share = np.maximum(weights, 1e-6)[..., None]
    rgb = np.clip(stack[..., :3] / share, 1e-4, 1.0)
    log_lum = np.log(np.maximum(filters.linear_luminance(rgb), 1e-4)) - stack[..., 3] / share[..., 0]
    log_lum = log_lum[..., None].astype(np.float32)
    weights = np.where(weights > 0.25, weights, 0.0).astype(np.float32)  # texels mostly skin
    texels_per_iod = atlas.layout.face_texels_per_iod / 2**RELIEF_LEVELS
    fine, coarse = (
        filters.normalized_gaussian(log_lum, weights, b * texels_per_iod, rows)[0] for b in RELIEF_BAND_IOD
    )
    band = filters.push_pull((fine - coarse).astype(np.float32), weights, rows)[..., 0]
    band *= smoothstep(filters.gaussian(weights, RELIEF_REACH_IOD * texels_per_iod, rows) / 0.5)
    for shape, full_rows in reversed(sizes):
        band = filters.upsample(band.astype(np.float32), rows, shape, full_rows)
        rows = full_rows
    return np.where(atlas.mask, band, 0.0).astype(np.float32)


def _exp_scaled(field: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(S, S, C) ``exp(field[..., None] * scales)``, ``field`` (S, S) and ``scales`` (C,) or (S, S,
    C), in numpy's precision for them (float32 unless either is float64). The products in one
    compiled pass, numpy's exp over them (numpy's broadcast over the three channels took 22 ms of
    the 30 at 1024²)."""
    field, scales = filters.contiguous_floating(field), filters.contiguous_floating(scales)
    out = np.empty(field.shape + scales.shape[-1:], np.result_type(field, scales))
    if scales.ndim == 1:
        _outer_kernel(field, scales, out)
    else:
        _times_field_kernel(field, scales, out)
    return np.exp(out, out=out)


@njit(cache=True)
def _outer_kernel(field: np.ndarray, scales: np.ndarray, out: np.ndarray) -> None:
    """``out = field[..., None] * scales``, ``scales`` (C,)."""
    for i in range(field.shape[0]):
        for j in range(field.shape[1]):
            for k in range(scales.shape[0]):
                out[i, j, k] = field[i, j] * scales[k]


@njit(cache=True)
def _times_field_kernel(field: np.ndarray, scales: np.ndarray, out: np.ndarray) -> None:
    """``out = field[..., None] * scales``, ``scales`` (S, S, C)."""
    for i in range(field.shape[0]):
        for j in range(field.shape[1]):
            for k in range(scales.shape[2]):
                out[i, j, k] = field[i, j] * scales[i, j, k]


def relief_amount(subject: str, explained: float) -> float:
    """How much of the photographed face's relief to take off (``relief_band``): all of it where the
    request says the photo shows someone else than the mesh (``subject`` ``other``), none where it
    shows the person the mesh was made from (``same``); otherwise from the share of the photo's
    crease band the mesh's creases explain (``explained``, ``shading.DetailFit``): all below
    ``SHAPE_AGREEMENT``'s first bound, none above its second (none where it is not measured)."""
    if subject in ("same", "other"):
        return 1.0 if subject == "other" else 0.0
    if not np.isfinite(explained):
        return 0.0
    return 1.0 - creases_agree(explained)


def relief_unsure(amount: float, strength: float) -> bool:
    """Whether a share ``amount`` of a relief as strong as ``strength`` (``relief_band``'s standard
    deviation over the skin), decided from the photo, is worth a warning: the decision was not
    clear-cut (``RELIEF_UNSURE``) and it shows (``RELIEF_NOTICEABLE``)."""
    low, high = RELIEF_UNSURE
    return low <= amount <= high and strength >= RELIEF_NOTICEABLE


def relief_warning(amount: float) -> str:
    """The report's warning for an unsure decision (``relief_unsure``), with the setting that makes it."""
    return (
        f"the shading of the photographed face's own relief (its nose, eye sockets, cheekbones) was "
        f"{round(100 * amount)}% taken off the skin: the mesh's creases match the photo's only in part, "
        "so it could not be told whether the photo shows the person this head was made from. Set "
        "Photo Of: This Person (--subject same) to keep that shading, or Someone Else (--subject "
        "other) to take all of it off"
    )


def channel_exponents(linear: np.ndarray, log_shading: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(3,) the power of the fitted shading each channel of the photo follows, from the skin texels.

    A Lambertian render's colour is albedo x shading in every channel alike; a photograph's is not:
    skin in shadow is redder (light scattered under the skin), lit skin whiter (a sheen, a flash's
    highlight, the camera's tone curve), and the tone curve also sets how strongly the luminance
    follows the light. Divided by the same shading in every channel, the de-lit face kept a pale,
    grey centre and orange sides (the astronaut and Grace Hopper on the scanned and demo heads: the
    darkest and the brightest fifth of the skin 4.4-6.6 apart in CIELAB a*b*; 0.8-1.7 with these
    powers). Each channel's log and the luminance's are regressed on the log shading over the
    fitted texels (``linear`` (N, 3), ``log_shading`` (N,), the fit's robust ``weights``); the
    powers are the channels' slopes over the luminance's, within CHANNEL_EXPONENTS, and fade to 1
    when the light is too even for a slope to mean anything (CHANNEL_SPREAD).

    Relative to the luminance's: the luminance keeps the fitted shading's own power of 1. Its slope
    on bench/sweep.py's Lambertian renders strayed from 1 with the albedo's large patterns (0.6-1.4)
    and, taken as the power, cost up to 3.3 dB there (a blotch that lies where the light is low
    passes for a steeper light).
    """
    w = np.asarray(weights, np.float64) * np.isfinite(log_shading)
    x = np.nan_to_num(np.asarray(log_shading, np.float64))
    if w.sum() <= 0:
        return np.ones(3, np.float32)
    dx = x - np.average(x, weights=w)
    variance = float(np.average(dx * dx, weights=w))
    linear = np.maximum(np.asarray(linear, np.float64), 1e-4)
    y = np.log(np.concatenate([linear, (linear @ LUMA)[:, None]], axis=1))
    slopes = np.average(dx[:, None] * (y - np.average(y, axis=0, weights=w)), axis=0, weights=w)
    if slopes[3] < 0.25 * max(variance, 1e-12):
        return np.ones(3, np.float32)  # the luminance hardly follows this shading: nothing to read
    low, high = CHANNEL_SPREAD
    sure = float(smoothstep((np.sqrt(variance) - low) / (high - low)))
    exponents = 1.0 + sure * (np.clip(slopes[:3] / slopes[3], *CHANNEL_EXPONENTS) - 1.0)
    return exponents.astype(np.float32)


def _contrast(lights: DirectionalLights) -> float:
    """The key light's strength over the ambient."""
    return float(np.linalg.norm(lights.lights[0]) / max(lights.ambient, 1e-9))


def creases_agree(explained: float) -> float:
    """0..1: how far the mesh's creases are taken for the photographed face's, from the share of the
    photo's detail band they explain (``SHAPE_AGREEMENT``, ``shading.DetailFit.explained``)."""
    low, high = SHAPE_AGREEMENT
    return float(smoothstep(np.clip((explained - low) / (high - low), 0.0, 1.0)))


def shape_agreement(explained: float, contrast: float) -> float:
    """How far the mesh's fine shading is the photo's: where the detail light explains a good share
    of the photo's detail band (``SHAPE_AGREEMENT``, ``shading.DetailFit.explained``), or keeps at
    least the luminance fit's contrast (``contrast``, the detail light's over the luminance fit's;
    ``SHAPE_CONTRAST``): a textured skin explains little of the band on its own mesh too, but
    another face's creases flatten the light."""
    by_band = creases_agree(explained)
    low, high = SHAPE_CONTRAST
    by_contrast = smoothstep(np.clip((contrast - low) / (high - low), 0.0, 1.0))
    return float(max(by_band, by_contrast))


def detail_trust(alignment_error_iod: float) -> float:
    """How much of the detail band's light to use (``DETAIL_TRUST_IOD``); none when unknown."""
    low, high = DETAIL_TRUST_IOD
    if not np.isfinite(alignment_error_iod):
        return 0.0
    return float(np.clip((high - alignment_error_iod) / (high - low), 0.0, 1.0))


def _refine_on_detail(
    lights: DirectionalLights, color: np.ndarray, skin: np.ndarray, atlas: AtlasGeometry
) -> DetailFit:
    """``fit_detail_light`` on the box of the atlas around the skin texels, at about
    ``DETAIL_TEXELS_PER_IOD`` (area averages of the skin texels: the band's Gaussian stays a few
    texels wide whatever the atlas size)."""
    if not np.all(np.isfinite(lights.lights)) or skin.sum() < 100:
        return DetailFit(lights, 0.0)
    texels_per_iod = atlas.layout.face_texels_per_iod
    factor = max(1, int(round(texels_per_iod / DETAIL_TEXELS_PER_IOD)))
    sigma = DETAIL_SIGMA_IOD * texels_per_iod / factor
    rows, cols = np.flatnonzero(skin.any(axis=1)), np.flatnonzero(skin.any(axis=0))
    pad = factor * int(np.ceil(3 * sigma))
    box = (
        slice(max(rows[0] - pad, 0), rows[-1] + pad + 1),
        slice(max(cols[0] - pad, 0), cols[-1] + pad + 1),
    )
    w = skin[box].astype(np.float32)
    lum = filters.linear_luminance(np.clip(color[box], 0.0, 1.0))
    layers = [(lum * w)[..., None], atlas.normals[box] * w[..., None], w[..., None]]
    if atlas.occlusion is not None:
        layers.append((atlas.occlusion[box] * w)[..., None])
    stack = np.concatenate(layers, axis=-1)
    if factor > 1:
        h, wd = stack.shape[0] // factor, stack.shape[1] // factor
        stack = cv2.resize(stack[: h * factor, : wd * factor], (wd, h), interpolation=cv2.INTER_AREA)
    weight = stack[..., 4]
    share = np.maximum(weight, 1e-6)[..., None]
    normals = stack[..., 1:4] / share
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-6)
    occlusion = stack[..., 5] / share[..., 0] if atlas.occlusion is not None else None
    # Work texels mostly skin only: a texel half hair is neither.
    weight = np.where(weight > 0.5, weight, 0.0).astype(np.float32)
    return fit_detail_light(
        lights, stack[..., 0] / share[..., 0], normals, weight, sigma, occlusion=occlusion
    )


@njit(cache=True)
def _ring(conf):
    """How far a texel of photo confidence ``conf`` (0..1, a scalar or an array) lies on the ring
    between the seen face and the fill: ``(4 conf (1 - conf))^(1/4)``, 1 at 0.5, 0 on fully seen and
    fully filled texels. The fourth root reaches well into the seen side, where a photo's face is
    darkest (its light falling off towards the cheeks' and jaw's edges): with ``4 conf (1 - conf)``
    itself the ring gain left the astronaut's face on the scanned head a border 2.7 L* darker than
    the skin on either side of it at confidences 0.9-0.97 (a mask's edge); 1.0 L* with this."""
    return np.sqrt(np.sqrt(np.maximum(4.0 * conf * (1.0 - conf), 0.0)))


@njit(cache=True, parallel=True)
def _apply_ring_gain(color, log_gain, conf, amount, out) -> None:
    """``out = color * exp(log_gain * amount * _ring(conf))``: the gain only on the ring between
    seen and filled texels; fully seen and fully filled texels (most of the atlas) are copied. One
    pass over rows on every core (numpy's four full-size passes cost ~35 ms at 1024²)."""
    h, w, c = color.shape
    for i in prange(h):
        for j in range(w):
            ring = np.float32(_ring(conf[i, j])) * amount
            if ring == 0:
                for k in range(c):
                    out[i, j, k] = color[i, j, k]
            else:
                for k in range(c):
                    out[i, j, k] = color[i, j, k] * np.exp(log_gain[i, j, k] * ring)


@dataclass(frozen=True)
class SurfaceDelight:
    """``ClassicLatent._delight``'s factor for any surface point the photo saw, not only the atlas's
    texels (``StageContext.delight_at``): the fitted light at the point's normal over the fit's
    reference, clipped to the range seen on the fitted texels, as the photo recorded it
    (``as_photographed``), each channel to its power, the same brightness kept."""

    model: Callable[..., np.ndarray]
    """Head-frame unit normals (N, 3) and their ambient occlusion (N,) or None to the fitted
    shading (N,)."""
    reference: float
    clip: tuple[float, float]
    power: np.ndarray
    """(3,) the channels' powers (``channel_exponents``, times the style's strength)."""
    keep: float
    frame: HeadFrame
    portrait_shape: tuple[int, int]

    def __call__(
        self, normals: np.ndarray, coords: np.ndarray, occlusion: np.ndarray | None = None
    ) -> np.ndarray:
        """(N, 3) float32 factor for mesh-space ``normals`` (N, 3) seen at portrait pixels ``coords``,
        where the surface sees the share ``occlusion`` (N,) of the sky (None: all of it)."""
        n = self.frame.directions_to_head(normals).astype(np.float32)
        shading = np.clip(self.model(n, occlusion) / self.reference, *self.clip).astype(np.float32)
        if len(shading):
            shading = as_photographed(shading, coords, self.portrait_shape)
        log_shading = np.log(np.clip(shading, 1 / MAX_GAIN, MAX_GAIN))
        factor = np.exp(log_shading[:, None] * (-self.power / np.float32(filters.GAMMA)))
        return (factor * np.float32(self.keep)).astype(np.float32)


def _without_shine(
    color: np.ndarray,
    conf: np.ndarray,
    skin: np.ndarray,
    lights: DirectionalLights,
    ctx: StageContext,
    normals: np.ndarray,
) -> np.ndarray:
    """``color`` with the skin's shine taken out of the photo-backed texels (``shine.py``): where the
    fitted key lights mirror towards the registered camera, the shine (in its own colour,
    ``shine.shine_colour``) beyond the skin's own colour (read on the skin texels that cannot
    shine), at most what the colour holds over the skin around
    (the unshining skin's albedo filled in under the shine, times the texel's own shading; read on
    every SHINE_STEP-th texel: it is smooth). report.json's ``lighting.shine``: the share of the
    photo-backed face texels that lost more than 2/255 of it."""
    atlas = ctx.atlas
    seen = atlas.mask & (conf > 0)
    if not seen.any() or not len(lights.lights):
        return color
    cache = atlas.cache
    if "head_positions" not in cache:  # the atlas's own: kept with it
        cache["head_positions"] = atlas.frame.to_head(atlas.positions).astype(np.float32)
    positions, step = cache["head_positions"], SHINE_STEP
    grid = slice(step // 2, None, step)

    def lobe_at(
        where: np.ndarray, grid_cells: tuple[slice, slice] = (slice(None), slice(None))
    ) -> np.ndarray:
        out = np.zeros(where.shape, np.float32)
        cell_normals, points = normals[grid_cells], positions[grid_cells]
        out[where] = shine.lobe(cell_normals[where], points[where], ctx.view_from, lights.lights)
        return out

    # The lobe on the grid first; at every texel only near where the grid's reaches half the gate.
    coarse = lobe_at(seen[grid, grid], (grid, grid))
    near = cv2.dilate((coarse > 0.5 * shine.LOBE_GATE[0]).astype(np.uint8), np.ones((3, 3), np.uint8))
    candidates = seen & np.repeat(np.repeat(near, step, 0), step, 1)[: seen.shape[0], : seen.shape[1]].astype(
        bool
    )
    strength = lobe_at(candidates)
    gate = smoothstep((strength - shine.LOBE_GATE[0]) / (shine.LOBE_GATE[1] - shine.LOBE_GATE[0])) * conf
    active = seen & (gate > 0.01)
    ctx.lighting["shine"] = 0.0
    if not active.any():
        return color
    linear = np.power(color[grid, grid], filters.GAMMA)
    unlit = skin[grid, grid] & (coarse < shine.UNLIT_LOBE)
    ratio = shine.skin_ratio(linear[unlit])
    occlusion = None if atlas.occlusion is None else atlas.occlusion[grid, grid]
    shading = np.maximum(lights(normals[grid, grid], occlusion), 1e-3)[..., None]
    rows = -(-(atlas.band_rows - step // 2) // step)  # the grid's rows in the band
    around = filters.push_pull(linear / shading, (conf[grid, grid] * unlit).astype(np.float32), rows)
    r, c = np.nonzero(active)
    in_band = r < atlas.band_rows
    # The nearest sample, in the texel's own chart (the band's rows, or the caps').
    low, high = np.where(in_band, 0, rows), np.where(in_band, rows - 1, len(around) - 1)
    gr, gc = np.clip(r // step, low, high), np.minimum(c // step, around.shape[1] - 1)
    own_occlusion = None if atlas.occlusion is None else atlas.occlusion[r, c]
    own = np.maximum(lights(normals[r, c], own_occlusion), 1e-3)
    before = np.power(color[r, c], filters.GAMMA)
    expected = around[gr, gc] * own[:, None]
    colour = shine.shine_colour(before, expected, gate[r, c])
    clean, _ = shine.without_shine(before, gate[r, c], ratio, expected, colour)
    out = color.copy()
    out[r, c] = np.power(clean, 1.0 / filters.GAMMA)
    face = atlas.face if atlas.face is not None and atlas.face.any() else atlas.mask
    visible = np.abs(out[r, c] - color[r, c]).max(axis=1) > 2.0 / 255.0
    ctx.lighting["shine"] = round(float(visible[face[r, c]].sum() / max((seen & face).sum(), 1)), 4)
    return _without_carried_shine(out, r, c, color[r, c] - out[r, c], conf, ctx)


def _without_carried_shine(
    color: np.ndarray, r: np.ndarray, c: np.ndarray, removed: np.ndarray, conf: np.ndarray, ctx: StageContext
) -> np.ndarray:
    """``color`` less the shine the inpaint's symmetric completion carried into the texels it filled
    from their mirror images (the far side of a turned face, a patch burnt out to white, mirrored
    from a shining cheek), which lost theirs only after the fill: ``removed`` (N, 3) sRGB, what
    ``_without_shine`` took off the seen texels (``r``, ``c``). Each mirror image takes off that
    texel's removed shine as far as the completion mixed it in (``atlas_filters.symmetric_completion``'s
    gain, with the fill's weights) and the fill made its colour (1 - its confidence). (The fill's
    push-pull from the skin around spreads a shine thin: carried through the whole fill it cost
    0.1-0.2 s of a 1024² request, the mirror's share alone 1 ms.)"""
    atlas = ctx.atlas
    amount = np.float32(ctx.style.classic_at("symmetry", 1.0, ctx.strength))
    target = atlas.mirror_index()[r, c]
    tr, tc = np.unravel_index(target, conf.shape)
    weight = filters.fill_weight(ctx.fill_confidence(conf))
    holes = filters.planned_holes(weight, atlas, float(amount))  # filled from around, not mirrored
    gain = np.clip(weight[r, c] - weight[tr, tc], 0.0, 1.0) * amount * ~holes[tr, tc]
    share = (
        gain / np.maximum(weight[tr, tc] + gain, np.float32(1e-6)) * (1.0 - conf[tr, tc]) * atlas.mask[tr, tc]
    )
    keep = share > 0
    out = color.copy()
    tr, tc = tr[keep], tc[keep]
    out[tr, tc] = np.maximum(color[tr, tc] - share[keep, None] * removed[keep], 0.0)
    return out


class ClassicLatent(Stage):
    """De-light (SH shading removal), seen/filled border gain, chroma harmonisation, flattening."""

    name = "latent"
    engine = "classic"

    def run(self, texture: AtlasTexture, ctx: StageContext) -> AtlasTexture:
        """Return the harmonised texture; the confidence is passed through."""
        atlas = ctx.atlas
        style = ctx.style
        rows = atlas.band_rows
        mask = atlas.mask
        conf = np.clip(np.asarray(texture.confidence, np.float32), 0.0, 1.0) * mask
        out = unit_range(texture.color)

        ctx.check_cancel()
        ctx.progress(0.0, "de-lighting")
        delight = style.classic_at("delight", 1.0, ctx.strength)
        if delight > 0:
            out = self._delight_kept(out, conf, ctx, delight)

        ctx.check_cancel()
        ctx.progress(0.4, "matching seen and filled regions")
        border_gain = style.classic_at("border_gain", 1.0, ctx.strength)
        if border_gain > 0:
            out = self._border_gain(out, conf, ctx, border_gain)

        ctx.check_cancel()
        ctx.progress(0.6, "harmonising colour")
        harmonise = style.classic_at("harmonise", 0.5, ctx.strength)
        if harmonise > 0:
            out = self._harmonise(out, conf, ctx, harmonise)

        ctx.check_cancel()
        flatten = style.classic_at("flatten", 0.0, ctx.strength)
        if flatten > 0:
            ctx.progress(0.8, "flattening")
            lum = luminance(out)
            low, _ = filters.normalized_gaussian(
                lum[..., None], mask.astype(np.float32), atlas.size / 32, rows
            )
            low = low[..., 0]
            mean = float(lum[mask].mean()) if mask.any() else 0.5
            factor = (mean + (low - mean) * (1.0 - flatten)) / np.maximum(low, 1e-3)
            out = out * np.where(mask, factor, 1.0)[..., None]
        ctx.progress(1.0, "latent done")
        return AtlasTexture(
            np.clip(out, 0.0, 1.0).astype(np.float32), np.asarray(texture.confidence, np.float32).copy()
        )

    @classmethod
    def _delight_kept(
        cls, color: np.ndarray, conf: np.ndarray, ctx: StageContext, strength: float
    ) -> np.ndarray:
        """``_delight``, or what it gave for the same inputs (``memo``: a variant of the same photo whose
        inpainted atlas is the same, e.g. toon after comic, or another output size), with its
        effects on ``ctx`` (``delight``, ``delight_at``, ``lighting``, ``warnings``) replayed."""
        if ctx.memo is None:
            return cls._delight(color, conf, ctx, strength)
        key = memo.digest(
            color, conf, ctx.portrait_coords, ctx.portrait, id(ctx.atlas), strength, ctx.subject,
            ctx.alignment_error_iod, None if ctx.view_from is None else np.asarray(ctx.view_from),
            ctx.style.classic_at("symmetry", 1.0, ctx.strength), ctx.photo_face is None, ctx.marks,
        )  # fmt: skip
        kept = ctx.memo.get("delight", key)
        if kept is None:
            lighting, said = dict(ctx.lighting), len(ctx.warnings)
            out = cls._delight(color, conf, ctx, strength)
            changed = {k: v for k, v in ctx.lighting.items() if lighting.get(k, object()) != v}
            kept = (out, ctx.delight, ctx.delight_at, changed, ctx.warnings[said:])
            ctx.memo.put("delight", key, kept)
            return out
        out, ctx.delight, ctx.delight_at, changed, said = kept
        ctx.lighting.update(changed)
        ctx.warnings.extend(said)
        return out

    @staticmethod
    @small_fits
    def _delight(color: np.ndarray, conf: np.ndarray, ctx: StageContext, strength: float) -> np.ndarray:
        """Divide out the shading fitted on the confident texels, keeping their mean brightness.

        Filled texels did not get their colour under their own normal: the inpaint carried it in
        from seen texels. The shading they carry is therefore the same fill applied to the shading
        field (``inpaint.classic_fill``), not the shading at their own normal.
        """
        atlas = ctx.atlas
        mask = atlas.mask
        normals = atlas.normals
        # The light is fitted on skin and the fills draw on it: not on the marks (a mole, paint).
        sources = ctx.fill_confidence(conf)
        # Eye whites and teeth are no skin: not taken for lit skin a camera whitened (on a dark skin
        # they lie on the line to grey ``whitened_skin`` reads, short of WHITENED), not unwhitened, no
        # shine taken off (the astronaut's skin darkened to L* 28: her whites came out L* 45 and
        # amber, b* +33). Those of a skin's colour (the lids' rims) are fitted as the skin is.
        openings = feature_openings(ctx)
        skin_conf = np.where(openings, np.float32(0.0), conf)
        candidates = CandidateColours.read(color, _fit_candidates(sources, atlas))
        skin, reference_skin = _skin_mask(candidates, conf)
        if reference_skin is not None:
            # Lit skin the photo whitened is skin the light must be fitted on and taken off: left out,
            # the light was fitted on the darker skin alone and clipped to the shading seen there, and
            # Grace Hopper's lit brow and nose ridge stayed 16 and 7 L* lighter than her cheeks.
            whitened, whitening = whitened_skin(candidates, skin, reference_skin, openings)
            if np.isfinite(whitening.correlation):
                ctx.lighting["whitening"] = round(whitening.correlation, 4)
            skin |= whitened
            if whitening.camera:
                # ... and paler than the skin around it, which the light's division does not undo.
                color, moved = unwhitened(color, skin_conf, reference_skin, whitening)
                ctx.lighting["whitening_slope"] = round(whitening.slope, 4)
                ctx.lighting["unwhitened_texels"] = moved
        sample = filters.subsample(skin, SAMPLE_LIMIT)
        if sample.size < 100:
            ctx.warnings.append("de-lighting skipped: too few portrait-backed skin texels to fit the shading")
            return color
        linear = np.power(color.reshape(-1, 3)[sample], filters.GAMMA)
        lum = linear @ LUMA
        sample_normals = normals.reshape(-1, 3)[sample]
        occlusion = atlas.occlusion
        sample_occlusion = None if occlusion is None else occlusion.reshape(-1)[sample]
        coeffs, weights = fit_shading(lum, sample_normals, sources.reshape(-1)[sample])
        # Ambient plus a key light, started from the SH fit: it has a terminator where SH rings.
        # Measured with the true camera on bench/sweep.py renders (front, top, side, two lights,
        # from below): psnr_visible +0.2 to +1.3 dB over SH alone, never worse. The ambient is
        # occluded as the mesh occludes it, as far as the photo shows (``occlusion.py``).
        lights, mesh_spread = fit_lights(lum, sample_normals, weights, coeffs, sample_occlusion)
        # The request may say whether the photo shows the mesh's own face (``StageContext.subject``);
        # otherwise the photo's creases tell.
        trust = 0.0 if ctx.subject == "other" else detail_trust(ctx.alignment_error_iod)
        explained = float("nan")  # not measured
        if trust > 0 or not ctx.subject:
            # The detail band's light, and whether the mesh's creases are the photo's at all: a head
            # that is not the photographed face (a sculpture, another person's scan) has other
            # creases, and the band's fit then explains little of the photo's band and settles on a
            # flat light.
            detail = _refine_on_detail(lights, color, skin, atlas)
            ctx.lighting["detail_explained"] = round(detail.explained, 4)
            explained = detail.explained
            refined = detail.lights
            if ctx.subject != "same":
                trust *= shape_agreement(detail.explained, _contrast(refined) / max(_contrast(lights), 1e-6))
            key = lights.lights + trust * (refined.lights - lights.lights)
            occluded = lights.occluded + trust * (refined.occluded - lights.occluded)
            lights = DirectionalLights(lights.ambient, key, occluded)
        # Where the mesh is another face than the photographed one, the photo's shading is that
        # face's (``photoface``): its large-scale shape, as the face detector's depths give it, as
        # far as its face mesh covers a texel, with the light fitted again on it; taken as far as it
        # explains the photo's luminance better than the mesh's own shape does (``FACE_EXPLAINS``).
        relief = relief_amount(ctx.subject, explained)
        photo_face = ctx.photo_face() if relief > 0 and ctx.photo_face is not None else None
        if photo_face is not None:
            face_normals, cover = photo_face
            sigma = PHOTO_FACE_SCALE_IOD * atlas.layout.face_texels_per_iod
            turn, _ = filters.normalized_gaussian(face_normals - normals, cover, sigma, atlas.band_rows)
            # Only the texels the face covers turn (the atlas's face, a sixth of it or less).
            covered = np.flatnonzero((cover * mask).reshape(-1) > 0)
            turn = (
                take_rows(turn.reshape(-1, 3), covered)
                * (np.float32(relief) * cover.reshape(-1)[covered])[:, None]
            )

            def turned_by(amount: float) -> np.ndarray:
                """The mesh's normals turned by ``amount`` of the photographed face's turn."""
                out = normals.reshape(-1, 3).copy()
                moved = take_rows(out, covered) + np.float32(amount) * turn
                out[covered] = moved / np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-6)
                return out.reshape(normals.shape)

            turned_sample = turned_by(1.0).reshape(-1, 3)[sample]
            face_coeffs, face_weights = fit_shading(lum, turned_sample, sources.reshape(-1)[sample])
            face_lights, face_spread = fit_lights(
                lum, turned_sample, face_weights, face_coeffs, sample_occlusion
            )
            lo, hi = FACE_EXPLAINS
            share = 1.0 - float(smoothstep((face_spread / max(mesh_spread, 1e-9) - lo) / (hi - lo)))
            ctx.lighting["photo_face"] = round(share, 4)
            if share > 0.0 and np.all(np.isfinite(face_lights.lights)):
                normals = turned_by(share)
                sample_normals = normals.reshape(-1, 3)[sample]
                weights = weights + share * (face_weights - weights)
                lights = DirectionalLights(
                    lights.ambient + share * (face_lights.ambient - lights.ambient),
                    lights.lights + share * (face_lights.lights - lights.lights),
                    lights.occluded + share * (face_lights.occluded - lights.occluded),
                )
        if np.all(np.isfinite(lights.lights)) and np.isfinite(lights.ambient):
            model = lights
        else:
            model = lambda n, occlusion=None: sh_eval(n, coeffs)  # noqa: E731
        ctx.lighting["occluded"] = round(float(getattr(model, "occluded", 0.0)), 4)
        if model is lights and ctx.view_from is not None:
            color = _without_shine(color, skin_conf, skin, lights, ctx, normals)
            linear = np.power(color.reshape(-1, 3)[sample], filters.GAMMA)
            lum = linear @ LUMA
        fitted = model(sample_normals, sample_occlusion)
        reference = float((weights * fitted).sum() / max(weights.sum(), 1e-9))
        if reference <= 1e-6:
            ctx.warnings.append("de-lighting skipped: the fitted shading is not positive")
            return color
        # Never extrapolate beyond the shading values seen on the fitted texels (grazing normals,
        # features the registration misplaced) nor beyond MAX_GAIN.
        used = fitted[weights > 0] / reference
        low, high = np.quantile(used, [0.01, 0.99]) if used.size else (1.0, 1.0)
        low, high = max(float(low), 1 / MAX_GAIN), min(float(high), MAX_GAIN)
        # Evaluated on the whole atlas and masked after: gathering the surface texels' normals cost
        # five times the evaluation (34 of 40 ms at 1024).
        shading = np.where(
            mask, np.clip(model(normals, occlusion) / reference, low, max(high, low)), np.float32(1.0)
        )
        # The photo saw the shading at its own resolution: a texel's colour is divided by the
        # shading its portrait pixels recorded, not by the sharper shading at its own normal.
        photographed = mask & np.isfinite(ctx.portrait_coords[..., 0])
        if photographed.any():
            shading[photographed] = as_photographed(
                shading[photographed], take_rows(ctx.portrait_coords, photographed), ctx.portrait.shape[:2]
            )
        symmetry = ctx.style.classic_at("symmetry", 1.0, ctx.strength)
        carried, _ = classic_fill(shading, sources, atlas, symmetry)
        # A chart without one confident texel (a cap the photo does not reach) gets no fill (0):
        # its texels carry the average light, not the darkest allowed (which brightened it 1.65x).
        carried = np.where(carried > 0, carried, 1.0).astype(np.float32)
        embedded = conf * shading + (1.0 - conf) * carried
        embedded = np.where(mask, np.clip(embedded, 1 / MAX_GAIN, MAX_GAIN), 1.0).astype(np.float32)
        # Each channel divided by the shading to its own power (``channel_exponents``), keeping the
        # confident texels' mean linear luminance.
        log_embedded = np.log(embedded)
        log_sample = log_embedded.reshape(-1)[sample]
        power = np.float32(strength) * channel_exponents(linear, log_sample, weights)
        # What the mesh's shading could not take off where it is not the photographed face: that
        # face's relief (``relief_band``, ``relief`` as above), divided out with the shading.
        ctx.lighting["relief"] = round(relief, 4)
        if relief > 0:
            band = relief_band(color, log_embedded, skin, atlas)
            strength = float(np.std(band.reshape(-1)[sample]))
            ctx.lighting["relief_strength"] = round(strength, 4)
            if not ctx.subject and relief_unsure(relief, strength):
                ctx.warnings.append(relief_warning(relief))
            # A filled texel's colour is what the fill carried from the texels it drew on (from a
            # mirror image, say): so is its relief, as its shading (the band's own fill reaches the
            # skin around the seen skin alone). The astronaut's photo 0.4 stop brighter on the scanned
            # head: a burnt-out patch on her cheek, filled from the other cheek, took its colour but
            # the relief of the skin round the patch, and came out 4.6 L* paler than those texels of
            # her photo as it is (the skin around 0.3 L*); 0.7 with this.
            carried_band, _ = classic_fill(band, sources, atlas, symmetry)
            band = np.where(mask, conf * band + (1.0 - conf) * carried_band, 0.0).astype(np.float32)
            log_embedded += np.float32(relief) * band
            log_sample = log_embedded.reshape(-1)[sample]
        before = float((weights * lum).sum())
        after = float((weights * ((linear * np.exp(-log_sample[:, None] * power)) @ LUMA)).sum())
        keep = (before / max(after, 1e-9)) ** (1.0 / filters.GAMMA)
        factor = _exp_scaled(log_embedded, (-power / np.float32(filters.GAMMA)).astype(np.float32))
        factor *= np.float32(keep)
        ctx.delight = factor
        ctx.delight_at = SurfaceDelight(
            model, reference, (low, max(high, low)), power, keep, atlas.frame, ctx.portrait.shape[:2]
        )
        return color * factor

    @staticmethod
    def _border_gain(color: np.ndarray, conf: np.ndarray, ctx: StageContext, amount: float) -> np.ndarray:
        """Remove the light or dark ring where the portrait region meets the fill.

        Grazing-angle texels of a photo are off in brightness and colour (rim light, falloff,
        shadow), while the fill next to them is an average from further in: a visible ring. The
        level the ring should have is interpolated from both sides of it, the fully seen texels
        and the fully filled ones (push-pull anchored where ``_ring(conf)`` is small); the smooth
        per-channel ratio of that level to the ring's own local level is applied in proportion to
        ``_ring(conf)``. Fully seen and fully filled texels are left alone.
        """
        atlas = ctx.atlas
        rows = atlas.band_rows
        # Everything here is low-frequency: worked out at half resolution (the mask's half is the
        # atlas's, kept), and only the gain's product with the ring's full-resolution weight made at
        # full size.
        small, small_rows = filters.downsample(filters.with_channel(color, conf), rows)
        cache = atlas.cache
        if "mask_half" not in cache:
            cache["mask_half"] = (filters.downsample(atlas.mask.astype(np.float32), rows)[0] > 0.5).astype(
                np.float32
            )
        c_small, m_small = np.clip(small[..., 3], 0, 1), cache["mask_half"]
        sigma = max(atlas.size / 512, 1.0)
        # Only where the portrait region actually borders the fill: a low-confidence spot inside
        # the face (the sides of the nose) is surrounded by confident texels and is left alone.
        surround = filters.gaussian(c_small, 16 * sigma, small_rows)
        near_fill = np.clip(2.0 * (1.0 - surround), 0.0, 1.0)
        # No texel on the ring (``_ring`` is 0 wherever the confidence is 0 or 1): nothing to correct.
        if float(near_fill.max()) < 1e-3 or float((conf * (1.0 - conf)).max()) <= 0.0:
            return color
        b_small = _ring(c_small)
        # Levels of the skin: a mark's colour (``ctx.marks``) would carry into the ring beside it.
        skin = m_small if ctx.marks is None else m_small * (1.0 - filters.downsample(ctx.marks, rows)[0])
        anchored = filters.push_pull(small[..., :3], (1.0 - b_small) ** 4 * skin, small_rows)
        both, _ = filters.normalized_gaussian(
            np.concatenate([anchored, small[..., :3]], axis=-1), skin, sigma, small_rows
        )
        ratio = np.log(np.clip((both[..., :3] + 1e-3) / (both[..., 3:] + 1e-3), 0.5, 2.0))
        ratio = filters.gaussian(ratio.astype(np.float32), sigma, small_rows) * near_fill[..., None]
        gain = filters.upsample(ratio.astype(np.float32), small_rows, conf.shape, rows)
        out = np.empty_like(color)
        _apply_ring_gain(color, gain, conf, np.float32(amount), out)
        return out

    @staticmethod
    def _harmonise(color: np.ndarray, conf: np.ndarray, ctx: StageContext, amount: float) -> np.ndarray:
        """Pull the filled region's low-frequency chroma and lightness towards the seen skin's
        medians.

        The fill is drawn from the edge of what the photo shows, where the light falls off and the
        de-lighting is least sure: left alone, the scalp and neck came out darker than the face
        (the astronaut: CIELAB L* 70 against the face's 74), a mask's edge in a render.
        """
        atlas = ctx.atlas
        seen = filters.subsample(atlas.mask & (conf > 0.7), 40_000)
        if seen.size < 64:
            return color
        flat = color.reshape(-1, 3)[seen]
        flat_lum = np.maximum(flat @ LUMA, 1e-3)
        target = np.median(flat / flat_lum[:, None], axis=0) * np.median(flat_lum)

        def log_gain(low: np.ndarray) -> np.ndarray:
            """log of the gain taking the blurred colour to the target's chroma and luminance (the
            blur is linear: the blurred luminance is the blurred colour's)."""
            return np.log(np.clip(target / np.maximum(low, 1e-3), 0.5, 2.0)).astype(np.float32)

        # Evaluated at the blur's coarsest level and interpolated (``filters.gaussian``'s ``then``).
        log_gains = filters.gaussian(color, atlas.size / 64, atlas.band_rows, then=log_gain)
        weight = np.float32(amount) * (1.0 - conf) * atlas.mask
        # gain ** weight, as exp(weight log gain): the same to 4e-7, in half the time of float32 pow.
        return color * _exp_scaled(weight, log_gains)


def warm_up() -> None:
    """Load the compiled ring gain and exponent products (numba's on-disk cache) ahead of the first
    request."""
    one = np.ones((1, 1, 3), np.float32)
    _apply_ring_gain(one, one, np.full((1, 1), 0.5, np.float32), np.float32(1.0), np.empty_like(one))
    _exp_scaled(one[..., 0], one[0, 0])
    _exp_scaled(one[..., 0], one)
    _unwhiten_kernel(
        one, one[..., 0], one[0, 0], one[0, 0], np.float32(1.0), np.float32(1.0), np.empty_like(one)
    )
