"""Stage 1, classic engine: fill what the portrait did not see, without weights, on any CPU.

Three steps, each weaker than the one before it and used only where the one before had nothing:
symmetric completion (the other side of the face), a smooth multi-scale fill (push-pull, circular
around the back of the head), and synthetic skin grain whose spectrum is measured on the seen skin.
Texels the portrait backs keep their colour: ``out = conf * in + (1 - conf) * fill`` exactly.

The atlas is a map of directions from the head's centre. Where the surface runs along those
directions (the neck below the jaw, the bottom of a bust, the back of the head where the longitude
is squeezed), one texel is a long strip of skin, and anything that varies from texel to texel is
drawn out along the strips as streaks: there the fill is blurred (FILL_ANISOTROPY), and the grain
is gradient noise of the 3D surface point (a few octaves, those the atlas can hold at that texel)
instead of noise drawn per texel: the same skin grain everywhere, across the charts too.
"""

from __future__ import annotations

import cv2
import numpy as np
from numba import njit, prange

from ... import atlas_filters as filters
from ...atlas import AtlasGeometry
from ...imaging import luminance, smoothstep
from ..base import AtlasTexture, Stage, StageContext

_BANDS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0))
"""Gaussian sigmas (texels) bounding the detail bands; seen and synthetic bands are measured alike."""

GRAIN_OCTAVES = (1.25, 2.5, 5.0)
"""Lattice spacings of the surface grain's octaves, one per band of _BANDS, in face texels (the
atlas's texel size on the face)."""
FILL_ANISOTROPY = (3.0, 6.0)
"""Texel footprint anisotropy from which the smooth fill is blurred over FILL_BLUR texels, and by
which entirely: where a texel is a strip many times longer than wide on the surface (the bottom of
a neck or a bust, which the atlas's rays graze), the fill's variation across the strip would be
drawn out along it as streaks."""
FILL_BLUR = 8.0
"""Texels (at an atlas of 1024) of that blur."""
GRAIN_ANISOTROPY = (1.8, 2.8)
"""Texel footprint anisotropy from which the surface grain replaces the atlas's own, and by which it
has replaced it entirely."""
GRAIN_SAMPLING = (0.8, 1.5)
"""An octave fades out where its lattice spacing is less than the first of these times the texel's
longest step on the surface, and is whole from the second: finer noise would alias into streaks."""


def _band_pass(image: np.ndarray, rows: int) -> list[np.ndarray]:
    """Difference-of-Gaussian bands of a single-channel image, finest first."""
    blurred = {0.0: image}
    for lo, hi in _BANDS:
        for sigma in (lo, hi):
            if sigma not in blurred:
                blurred[sigma] = filters.gaussian(image, sigma, rows)
    return [blurred[lo] - blurred[hi] for lo, hi in _BANDS]


@njit(cache=True, inline="always")
def _hash(x: int, y: int, z: int, seed: int) -> int:
    h = (x * 73856093) ^ (y * 19349663) ^ (z * 83492791) ^ (seed * 2654435761)
    h &= 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x7FEB352D) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x846CA68B) & 0xFFFFFFFF
    h ^= h >> 16
    return h


@njit(cache=True, inline="always")
def _corner(x: int, y: int, z: int, seed: int, fx: float, fy: float, fz: float) -> float:
    """Perlin's improved-noise gradient (one of the 12 cube edge directions) dotted with the offset."""
    h = _hash(x, y, z, seed) & 15
    u = fx if h < 8 else fy
    v = fy if h < 4 else (fx if h == 12 or h == 14 else fz)
    return (u if (h & 1) == 0 else -u) + (v if (h & 2) == 0 else -v)


@njit(cache=True, inline="always")
def _fade(t: float) -> float:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


@njit(cache=True, parallel=True)
def _gradient_noise(
    points: np.ndarray, spacings: np.ndarray, seed: int, held: np.ndarray, out: np.ndarray
) -> None:
    """``out[i, k]``: 3D gradient noise of ``points[i]`` at lattice spacing ``spacings[k]``, where
    ``held[i, k] > 0`` (0 elsewhere)."""
    for i in prange(points.shape[0]):
        for k in range(spacings.shape[0]):
            if held[i, k] <= 0.0:
                out[i, k] = 0.0
                continue
            s = seed * 7919 + k * 104729
            px = points[i, 0] / spacings[k] + 0.37 * k
            py = points[i, 1] / spacings[k] + 0.61 * k
            pz = points[i, 2] / spacings[k] + 0.13 * k
            x0 = int(np.floor(px))
            y0 = int(np.floor(py))
            z0 = int(np.floor(pz))
            fx = px - x0
            fy = py - y0
            fz = pz - z0
            u = _fade(fx)
            v = _fade(fy)
            w = _fade(fz)
            c000 = _corner(x0, y0, z0, s, fx, fy, fz)
            c100 = _corner(x0 + 1, y0, z0, s, fx - 1, fy, fz)
            c010 = _corner(x0, y0 + 1, z0, s, fx, fy - 1, fz)
            c110 = _corner(x0 + 1, y0 + 1, z0, s, fx - 1, fy - 1, fz)
            c001 = _corner(x0, y0, z0 + 1, s, fx, fy, fz - 1)
            c101 = _corner(x0 + 1, y0, z0 + 1, s, fx - 1, fy, fz - 1)
            c011 = _corner(x0, y0 + 1, z0 + 1, s, fx, fy - 1, fz - 1)
            c111 = _corner(x0 + 1, y0 + 1, z0 + 1, s, fx - 1, fy - 1, fz - 1)
            a = c000 + u * (c100 - c000)
            b = c010 + u * (c110 - c010)
            c = c001 + u * (c101 - c001)
            d = c011 + u * (c111 - c011)
            e = a + v * (b - a)
            f = c + v * (d - c)
            out[i, k] = e + w * (f - e)


def texel_footprint(atlas: AtlasGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) float32 each: a texel's longest step to a neighbour on the surface (eye distances) and
    the anisotropy of its footprint (the ratio of the singular values of d(surface)/d(atlas), 1 for
    a square); NaN where no neighbour on the same chart shows surface. Cached on the atlas."""
    cache = atlas.__dict__.setdefault("_cache", {})
    if "texel_footprint" not in cache:
        p = np.asarray(atlas.positions, np.float32) / np.float32(atlas.frame.scale)
        mask, chart = atlas.mask, atlas.chart
        longest = np.full(mask.shape, np.nan, np.float32)
        derivatives = []
        for axis in (1, 0):
            total = np.zeros(p.shape, np.float32)
            count = np.zeros(mask.shape, np.float32)
            for shift in (-1, 1):
                ok = mask & np.roll(mask, shift, axis) & (np.roll(chart, shift, axis) == chart)
                step = (np.roll(p, shift, axis) - p) * np.float32(-shift)  # towards +1 along the axis
                longest = np.where(ok, np.fmax(longest, np.linalg.norm(step, axis=-1)), longest)
                total += np.where(ok[..., None], step, 0.0)
                count += ok
            derivatives.append(
                np.where((count > 0)[..., None], total / np.maximum(count, 1)[..., None], np.nan)
            )
        dx, dy = derivatives
        a, b, c = (dx * dx).sum(-1), (dy * dy).sum(-1), (dx * dy).sum(-1)
        half = 0.5 * (a + b)
        root = np.sqrt(np.maximum(half * half - (a * b - c * c), 0.0))
        anisotropy = np.sqrt((half + root) / np.maximum(half - root, 1e-12 * (half + root) + 1e-30))
        cache["texel_footprint"] = (longest, anisotropy.astype(np.float32))
    return cache["texel_footprint"]


def surface_grain(atlas: AtlasGeometry, where: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) the grain's octaves (GRAIN_OCTAVES) at the texels ``where``, and (N, K) how much of
    each the atlas holds there (0 where its steps are too long for the octave, 1 where fine enough)."""
    cache = atlas.__dict__.setdefault("_cache", {})
    if "head_positions" not in cache:
        cache["head_positions"] = atlas.frame.to_head(atlas.positions).astype(np.float32)
    points = np.ascontiguousarray(cache["head_positions"][where])
    spacings = (
        np.asarray(GRAIN_OCTAVES, np.float32) * np.float32(1.0 / atlas.layout.face_texels_per_iod)
    ).astype(np.float32)
    step = np.nan_to_num(texel_footprint(atlas)[0][where], nan=np.inf)
    lo, hi = GRAIN_SAMPLING
    held = smoothstep((spacings[None, :] / np.maximum(step[:, None], 1e-12) - lo) / (hi - lo))
    held = held.astype(np.float32)
    octaves = np.empty((len(points), len(spacings)), np.float32)
    _gradient_noise(points, spacings, int(seed), held, octaves)
    return octaves, held


def synthesize_grain(
    color: np.ndarray, confidence: np.ndarray, ctx: StageContext, where: np.ndarray | None = None
) -> np.ndarray:
    """Skin grain (S, S, 3) for the filled region: noise whose band energies match the seen skin's.

    The smooth fill has no high frequencies; real skin has pores and mottling. The seen region's
    luminance is split into difference-of-Gaussian bands and each band's robust standard deviation
    measured (median absolute deviation, so eyes, brows and hair edges do not count as grain).
    Where the atlas's texels are about square on the surface, white noise (seeded by ``ctx.seed``)
    is split the same way and each band scaled to the seen band's; where they are long strips
    (GRAIN_ANISOTROPY), that noise would be stretched into streaks, and the grain is instead one
    octave of gradient noise of the surface point per band (``surface_grain``), each scaled to
    that band's standard deviation. The grain is tinted by the skin's mean colour ratio, as skin
    detail is mostly a change of brightness. ``where`` (S, S) bool, optional: the texels that need
    grain (the rest may hold the atlas's noise only).
    """
    atlas = ctx.atlas
    rows = atlas.band_rows
    seen = atlas.mask & (confidence > 0.8)
    if seen.sum() < 64:
        return np.zeros_like(color)
    lum = luminance(color)
    sample = filters.subsample(seen, 50_000)
    target = np.array([filters.robust_std(band.reshape(-1)[sample]) for band in _band_pass(lum, rows)])
    rng = np.random.default_rng(ctx.seed)
    noise = rng.standard_normal(lum.shape, dtype=np.float32)
    grain = np.zeros_like(lum)
    for band, want in zip(_band_pass(noise, rows), target, strict=True):
        have = filters.robust_std(band.reshape(-1)[sample])
        if have > 0:
            grain += band * np.float32(want / have)

    stretched, blend = _anisotropy_blend(atlas, GRAIN_ANISOTROPY)
    if where is not None:
        blend = blend[where[stretched]]
        stretched = stretched & where
    if stretched.any():
        octaves, held = surface_grain(atlas, stretched, ctx.seed)
        surface = (octaves * held) @ _octave_amplitudes(atlas, target)
        grain[stretched] = (1.0 - blend) * grain[stretched] + blend * surface
    flat = color.reshape(-1, 3)[sample]
    tint = flat.mean(axis=0) / max(float(lum.reshape(-1)[sample].mean()), 1e-3)
    return grain[..., None] * tint.astype(np.float32)


def continue_band_into_caps(filled: np.ndarray, confidence: np.ndarray, atlas: AtlasGeometry) -> np.ndarray:
    """The caps' fill anchored to the band's where they overlap it.

    Each chart is filled from its own seen texels. A cap often has few or none (under the chin,
    the photo's grazing texels are rightly not trusted), and its fill would come from a few
    doubtful texels or from nothing: a tone of its own under the chin and on the bottom of a bust,
    unlike the face's. The ring of cap texels whose surface the band also holds takes the band's
    fill there, with the weight the cap's own confidence leaves, and the cap is filled again from
    those anchors and its own seen texels (push-pull): the band's tone carries on into the cap.
    """
    from ...atlas import BAND

    rows = atlas.band_rows
    if rows >= atlas.size:
        return filled
    chart, tri = atlas.chart[rows:], atlas.tri_id[rows:]
    in_cap = atlas.mask[rows:] & (chart != BAND)
    ids = tri[in_cap]
    ring = atlas.triangle_chart[ids] == BAND
    if not ring.any():
        return filled
    r, c = np.nonzero(in_cap)
    r, c = r[ring], c[ring]
    band_xy = (atlas.triangle_xy[ids[ring]] * atlas.bary[r + rows, c][..., None]).sum(axis=1)
    # A ring triangle's band corners may lie past the band's first or last row: only the texels
    # whose point the band image holds anchor.
    inside = (band_xy[:, 1] >= 0.5) & (band_xy[:, 1] <= rows - 0.5)
    if not inside.any():
        return filled
    r, c, band_xy = r[inside], c[inside], band_xy[inside]
    own = np.clip(confidence[rows:], 0.0, 1.0) * atlas.mask[rows:]
    values = np.ascontiguousarray(filled[rows:], np.float32).copy()
    weights = own.astype(np.float32).copy()
    anchor = 1.0 - own[r, c]
    values[r, c] = own[r, c, None] * values[r, c] + anchor[:, None] * atlas.sample(filled, band_xy)
    weights[r, c] = 1.0
    out = filled.copy()
    half = atlas.size // 2  # the crown's disc on the left, the chin's on the right: filled apart
    for part in (slice(0, half), slice(half, atlas.size)):
        out[rows:, part] = filters.fill(np.ascontiguousarray(values[:, part]), weights[:, part])
    return out


def smooth_where_stretched(filled: np.ndarray, atlas: AtlasGeometry) -> np.ndarray:
    """The fill, blurred where the atlas's texels are long strips on the surface (FILL_ANISOTROPY)."""
    where, blend = _anisotropy_blend(atlas, FILL_ANISOTROPY)
    if not where.any():
        return filled
    # A wide blur of a smooth fill: at a quarter of the resolution, per chart, normalised by the mask.
    weights = atlas.mask.astype(np.float32)[..., None]
    sigma = FILL_BLUR * atlas.size / 1024 / 4

    def blur(part: np.ndarray, wrap: bool) -> np.ndarray:
        h, w = part.shape[:2]
        small = cv2.resize(part, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    stack = np.concatenate([filled * weights, weights], axis=-1)
    blurred = filters.per_chart(blur, stack, atlas.band_rows, int(np.ceil(12 * sigma)))
    picked = blurred[where]
    out = filled.copy()
    out[where] += blend[:, None] * (picked[:, :3] / np.maximum(picked[:, 3:], 1e-6) - filled[where])
    return out


def _anisotropy_blend(atlas: AtlasGeometry, limits: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) bool texels whose footprint anisotropy exceeds ``limits[0]``, and (M,) their smoothstep
    weight, whole from ``limits[1]``. Cached on the atlas."""
    cache = atlas.__dict__.setdefault("_cache", {})
    key = ("anisotropy_blend", limits)
    if key not in cache:
        _, anisotropy = texel_footprint(atlas)
        lo, hi = limits
        t = np.clip((np.nan_to_num(anisotropy, nan=1.0) - lo) / (hi - lo), 0.0, 1.0) * atlas.mask
        where = t > 0
        cache[key] = (where, smoothstep(t)[where].astype(np.float32))
    return cache[key]


def octave_energies(atlas: AtlasGeometry) -> np.ndarray:
    """(bands, octaves) the energy (robust variance) each surface-grain octave puts in each band of
    _BANDS, measured like the seen skin is (the same bands) on the face region, where texels are
    about square. A property of the atlas (the noise is statistically the same for every seed):
    cached on it."""
    cache = atlas.__dict__.setdefault("_cache", {})
    if "octave_energies" in cache:
        return cache["octave_energies"]
    margin = int(np.ceil(3 * _BANDS[-1][1])) + 1
    region = atlas.face & atlas.mask if atlas.face is not None and atlas.face.any() else atlas.mask
    rows, cols = np.nonzero(region[: atlas.band_rows])
    energy = np.ones((len(_BANDS), len(GRAIN_OCTAVES)))
    if rows.size >= 64:
        r0, r1 = max(rows.min() - margin, 0), min(rows.max() + margin + 1, atlas.band_rows)
        c0, c1 = max(cols.min() - margin, 0), min(cols.max() + margin + 1, atlas.size)
        crop = np.zeros(atlas.mask.shape, bool)
        crop[r0:r1, c0:c1] = atlas.mask[r0:r1, c0:c1]
        octaves, _ = surface_grain(atlas, crop, 0)
        inner = np.zeros((r1 - r0, c1 - c0), bool)
        inner[margin:-margin, margin:-margin] = True  # the blurs reflect at the crop's edge
        measured = region[r0:r1, c0:c1] & inner
        if measured.sum() < 64:
            measured = region[r0:r1, c0:c1]
        measured = np.flatnonzero(measured)[:: max(1, int(measured.sum()) // 50_000)]
        reflect = cv2.BORDER_REFLECT_101
        for k in range(octaves.shape[1]):
            image = np.zeros(crop.shape, np.float32)
            image[crop] = octaves[:, k]
            image = image[r0:r1, c0:c1]
            blurred = {0.0: image}
            for b, (lo, hi) in enumerate(_BANDS):
                for sigma in (lo, hi):
                    if sigma not in blurred:
                        blurred[sigma] = cv2.GaussianBlur(image, (0, 0), sigma, borderType=reflect)
                energy[b, k] = filters.robust_std((blurred[lo] - blurred[hi]).reshape(-1)[measured]) ** 2
    cache["octave_energies"] = energy
    return energy


def _octave_amplitudes(atlas: AtlasGeometry, target: np.ndarray) -> np.ndarray:
    """(K,) float32 weights of the surface grain's octaves so that, measured like the seen skin, the
    grain has ``target`` standard deviations per band: each octave spreads over neighbouring bands
    (``octave_energies``), the weights are solved by non-negative least squares on energies."""
    from scipy.optimize import nnls

    power, _ = nnls(octave_energies(atlas), np.asarray(target, np.float64) ** 2)
    return np.sqrt(power).astype(np.float32)


class ClassicInpaint(Stage):
    """Fill low-confidence texels: mirror, push-pull, then grain; confident texels stay as they were."""

    name = "inpaint"
    engine = "classic"

    def run(self, texture: AtlasTexture, ctx: StageContext) -> AtlasTexture:
        """Return the completed texture; its confidence is the input's (what the portrait backs)."""
        atlas = ctx.atlas
        style = ctx.style
        # Unseen texels may hold NaN from the projection; they have no weight, but 0 * NaN is NaN.
        color = np.nan_to_num(np.asarray(texture.color, np.float32), nan=0.0)
        conf = np.clip(np.asarray(texture.confidence, np.float32), 0.0, 1.0) * atlas.mask

        ctx.check_cancel()
        ctx.progress(0.0, "symmetric completion and multi-scale fill")
        symmetry = style.classic_at("symmetry", 1.0, ctx.strength)
        filled, sym_conf = filters.smooth_fill(color, conf, atlas, symmetry)
        filled = continue_band_into_caps(filled, sym_conf, atlas)
        filled = smooth_where_stretched(filled, atlas)

        ctx.check_cancel()
        ctx.progress(0.5, "synthesising skin grain")
        grain_amount = style.classic_at("grain", 1.0, ctx.strength)
        if grain_amount > 0:
            grain = synthesize_grain(color, conf, ctx, where=sym_conf < 1.0)
            # Grain only where neither the portrait nor the mirror brought real detail.
            filled = filled + grain * (np.float32(grain_amount) * (1.0 - sym_conf))[..., None]
        filled = np.clip(filled, 0.0, 1.0).astype(np.float32)

        ctx.check_cancel()
        # Exactly the input where conf == 1 (1 * x + 0 * y == x in floating point), outside the
        # mask the fill, so that bilinear lookups at chart borders see plausible colours.
        c = np.clip(np.asarray(texture.confidence, np.float32), 0.0, 1.0)[..., None]
        out = c * color + (1.0 - c) * filled
        ctx.progress(1.0, "inpaint done")
        return AtlasTexture(out.astype(np.float32), np.asarray(texture.confidence, np.float32).copy())


def warm_up() -> None:
    """Load the compiled surface noise (numba's on-disk cache) ahead of the first request."""
    one = np.ones((1, 1), np.float32)
    _gradient_noise(np.zeros((1, 3), np.float32), np.ones(1, np.float32), 0, one, np.empty_like(one))
