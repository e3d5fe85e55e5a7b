"""Stage 1, classic engine: fill what the portrait did not see, without weights, on any CPU.

Three steps, each weaker than the one before it and used only where the one before had nothing:
symmetric completion (the other side of the face), a smooth multi-scale fill (push-pull, circular
around the back of the head), and synthetic skin grain whose spectrum is measured on the seen skin.
Texels the portrait backs keep their colour: ``out = conf * in + (1 - conf) * fill`` exactly.

The atlas is a map of directions from the head's centre. Where the surface runs along those
directions (the neck below the jaw, the bottom of a bust, the back of the head where the longitude
is squeezed), one texel is a long strip of skin (or a large patch of it), and anything that varies
from texel to texel is drawn out along the strips as streaks: there the fill is blurred
(FILL_ANISOTROPY). The grain is gradient noise of the 3D surface point (a few octaves, those the
atlas can hold at that texel), not noise drawn per texel: the same skin grain everywhere, across
the charts too, and the same on the mesh however its file turns or scales it (the atlas's grid
moves on the surface with the landmarks; the surface point does not).
"""

from __future__ import annotations

import cv2
import numpy as np
from numba import njit

from ... import atlas_filters as filters
from ... import memo
from ...atlas import AtlasGeometry
from ...imaging import luminance, sample_image, smoothstep
from ...noise import gradient_noise
from ..base import AtlasTexture, Stage, StageContext

_BANDS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0))
"""Gaussian sigmas (texels) bounding the detail bands; seen and synthetic bands are measured alike."""

GRAIN_FINEST_IOD = 0.0225
"""Eye distances (about 1.4 mm): the coarsest skin detail the grain reproduces. A band of _BANDS
reaching coarser (the third band, 2-4 texels, of a 512 atlas: 0.022-0.044) keeps only its share
below it. Beyond that scale the seen skin's detail is wrinkles, creases and blotches, not grain:
Grace Hopper's face spread over the demo head's scalp and neck at 512 as a crackled, reptilian
pattern; the same texels at 1024 (bands up to 0.022) did not. The grain is so the same skin at any
texture size, only sharper."""
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


def texel_footprint(atlas: AtlasGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) float32 each: a texel's longest step to a neighbour on the surface (eye distances) and
    the anisotropy of its footprint (the ratio of the singular values of d(surface)/d(atlas), 1 for
    a square); NaN where no neighbour on the same chart shows surface. Cached on the atlas."""
    cache = atlas.cache
    if "texel_footprint" not in cache:
        p = np.ascontiguousarray(np.asarray(atlas.positions, np.float32) / np.float32(atlas.frame.scale))
        longest = np.empty(atlas.mask.shape, np.float32)
        anisotropy = np.empty(atlas.mask.shape, np.float32)
        _footprint_kernel(p, atlas.mask, np.ascontiguousarray(atlas.chart), longest, anisotropy)
        cache["texel_footprint"] = (longest, anisotropy)
    return cache["texel_footprint"]


@njit(cache=True)
def _footprint_kernel(
    p: np.ndarray, mask: np.ndarray, chart: np.ndarray, longest: np.ndarray, anisotropy: np.ndarray
) -> None:
    """``texel_footprint`` per texel in one pass (the numpy formulation with its shifted copies of
    the atlas took 0.3 s of a new mesh's first request), float32 in the same order of operations:
    each axis's derivative is the mean of the steps to its neighbours (wrapping around the image's
    edges, as a roll does) that show surface on the same chart."""
    h, w = mask.shape
    nan = np.float32(np.nan)
    for i in range(h):
        for j in range(w):
            far = nan
            d = np.zeros((2, 3), np.float32)
            seen = np.zeros(2, np.int64)
            for axis in range(2):  # 0: along columns (x), 1: along rows (y)
                for shift in (-1, 1):
                    # np.roll(a, shift)[i] is a[i - shift]: the neighbour towards -shift.
                    ni, nj = (i, (j - shift) % w) if axis == 0 else ((i - shift) % h, j)
                    if not (mask[i, j] and mask[ni, nj] and chart[ni, nj] == chart[i, j]):
                        continue
                    sign = np.float32(-shift)
                    norm2 = np.float32(0.0)
                    for k in range(3):
                        step = (p[ni, nj, k] - p[i, j, k]) * sign
                        d[axis, k] += step
                        norm2 += step * step
                    norm = np.sqrt(norm2)
                    if np.isnan(far) or norm > far:
                        far = norm
                    seen[axis] += 1
            longest[i, j] = far
            if seen[0] == 0 or seen[1] == 0:
                anisotropy[i, j] = nan
                continue
            a = np.float32(0.0)
            b = np.float32(0.0)
            c = np.float32(0.0)
            for k in range(3):
                dx = d[0, k] / np.float32(seen[0])
                dy = d[1, k] / np.float32(seen[1])
                a += dx * dx
                b += dy * dy
                c += dx * dy
            half = np.float32(0.5) * (a + b)
            root = np.sqrt(max(half * half - (a * b - c * c), np.float32(0.0)))
            low = max(half - root, np.float32(1e-12) * (half + root) + np.float32(1e-30))
            anisotropy[i, j] = np.sqrt((half + root) / low)


def surface_grain(atlas: AtlasGeometry, where: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) the grain's octaves (GRAIN_OCTAVES) at the texels ``where`` (None: the atlas's mask),
    and (N, K) how much of each the atlas holds there (0 where its steps are too long for the
    octave, 1 where fine enough). Gradient noise of the texel's surface point in the mesh's own
    frame (``atlas.mesh_frame``)."""
    points, held = _grain_support(atlas, where)
    spacings = np.asarray(GRAIN_OCTAVES, np.float64) * (1.0 / atlas.layout.face_texels_per_iod)
    octaves = np.empty((len(points), len(spacings)), np.float32)
    gradient_noise(points, atlas.noise_spacings(spacings), int(seed), held, octaves)
    return octaves, held


def _grain_support(atlas: AtlasGeometry, where: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """What ``surface_grain`` reads of the atlas alone, whatever the seed: the texels' surface points
    in the mesh's own frame (N, 3) and how much of each octave the atlas holds there (N, K). Kept on
    the atlas for its whole mask (``where`` None, ``grain_octaves``: a variant of another seed took
    0.15 s of its 0.25 s grain to work them out again)."""
    cache = atlas.cache
    whole = where is None
    if whole and "grain_support" in cache:
        return cache["grain_support"]
    where = atlas.mask if whole else where
    if "noise_positions" not in cache:
        cache["noise_positions"] = atlas.mesh_frame.to_frame(atlas.positions)
    points = np.ascontiguousarray(cache["noise_positions"][where])
    texel = 1.0 / atlas.layout.face_texels_per_iod
    spacings = np.asarray(GRAIN_OCTAVES, np.float64) * texel
    step = np.nan_to_num(texel_footprint(atlas)[0][where], nan=np.inf)
    lo, hi = GRAIN_SAMPLING
    held = smoothstep((spacings[None, :] / np.maximum(step[:, None], 1e-12) - lo) / (hi - lo))
    support = points, held.astype(np.float32)
    if whole:
        cache["grain_support"] = support
    return support


def synthesize_grain(
    color: np.ndarray, confidence: np.ndarray, ctx: StageContext, where: np.ndarray | None = None
) -> np.ndarray:
    """Skin grain (S, S, 3) for the filled region: noise whose band energies match the seen skin's.

    The smooth fill has no high frequencies; real skin has pores and mottling. The seen region's
    luminance is split into difference-of-Gaussian bands and each band's robust standard deviation
    measured (median absolute deviation, so eyes, brows and hair edges do not count as grain). The
    grain is one octave of gradient noise of the surface point per band (``surface_grain``), mixed
    so that, measured the same way, each band has the seen band's spread (``_octave_amplitudes``):
    a function of the surface point, not of the atlas's grid, so it is neither streaks where texels
    are long strips nor blotches where they span several face texels, and the same mesh turned or
    scaled in its file gets the same grain. It is tinted by the skin's mean colour ratio, as skin
    detail is mostly a change of brightness. ``where`` (S, S) bool, optional: the texels that need
    grain (0 elsewhere).
    """
    atlas = ctx.atlas
    rows = atlas.band_rows
    seen = atlas.mask & (confidence > 0.8)
    if seen.sum() < 64:
        return np.zeros_like(color)
    lum = luminance(color)
    sample = filters.subsample(seen, 50_000)
    target = np.array([filters.robust_std(band.reshape(-1)[sample]) for band in _band_pass(lum, rows)])
    target *= grain_band_share(atlas)
    wanted = atlas.mask if where is None else atlas.mask & where
    values = grain_octaves(atlas, ctx.seed)[wanted[atlas.mask]] @ _octave_amplitudes(atlas, target)
    flat = color.reshape(-1, 3)[sample]
    tint = flat.mean(axis=0) / max(float(lum.reshape(-1)[sample].mean()), 1e-3)
    grain = np.empty(color.shape[:2] + (3,), np.float32)
    _tinted(
        np.ascontiguousarray(values, lum.dtype),
        np.ascontiguousarray(wanted),
        tint.astype(np.float32),
        grain,
    )
    return grain


def grain_band_share(atlas: AtlasGeometry) -> np.ndarray:
    """(bands,) the share of each band of _BANDS (texels) that lies finer than GRAIN_FINEST_IOD on
    this atlas's face (its texel size there: ``face_texels_per_iod``)."""
    texel_iod = 1.0 / atlas.layout.face_texels_per_iod
    lo, hi = (np.array(_BANDS, np.float64) * texel_iod).T
    return np.clip((GRAIN_FINEST_IOD - lo) / (hi - lo), 0.0, 1.0)


def grain_octaves(atlas: AtlasGeometry, seed: int) -> np.ndarray:
    """(N, K) ``surface_grain``'s octaves of every texel of the atlas (``mask`` order), each times
    how much of it the atlas holds there; kept on the atlas for the last GRAIN_SEEDS_KEPT seeds asked:
    it depends on the atlas and the seed only (a batch or a re-generate on the same head does not draw
    it again)."""
    kept = atlas.cache.setdefault("grain_octaves", {})  # seed -> octaves, oldest first
    if seed in kept:
        kept[seed] = kept.pop(seed)  # the most recently used last
    else:
        octaves, held = surface_grain(atlas, None, seed)
        kept[seed] = octaves * held
        while len(kept) > GRAIN_SEEDS_KEPT:
            kept.pop(next(iter(kept)))
    return kept[seed]


GRAIN_SEEDS_KEPT = 4
"""Seeds whose grain an atlas keeps (8.4 MB each at 1024²): variants that step the seed and come
back to one (another style at the panel's seed between them) do not draw it again (0.26 s)."""


def classic_fill(
    values: np.ndarray, confidence: np.ndarray, atlas: AtlasGeometry, symmetry: float
) -> tuple[np.ndarray, np.ndarray]:
    """The stage's smooth fill of ``values`` (S, S) or (S, S, C): ``filters.smooth_fill``, the caps
    continued from the band (``continue_band_into_caps``), blurred where the texels are strips
    (``smooth_where_stretched``); and the sources' weight after symmetric completion. The
    de-lighting fills its shading field with it too: a filled texel's colour is divided by the
    shading the same fill carried into it (the blur alone, on the colour only, had turned the
    strips beside a nose's or a brow's hidden side pale: their colour from the lit cheek, their
    shading from the dark wall)."""
    flat = values.ndim == 2
    filled, sym_conf = filters.smooth_fill(values[..., None] if flat else values, confidence, atlas, symmetry)
    filled = smooth_where_stretched(continue_band_into_caps(filled, sym_conf, atlas), atlas)
    return (filled[..., 0] if flat else filled), sym_conf


def continue_band_into_caps(filled: np.ndarray, confidence: np.ndarray, atlas: AtlasGeometry) -> np.ndarray:
    """The caps' fill anchored to the band's where they overlap it.

    Each chart is filled from its own seen texels. A cap often has few or none (under the chin,
    the photo's grazing texels are rightly not trusted), and its fill would come from a few
    doubtful texels or from nothing: a tone of its own under the chin and on the bottom of a bust,
    unlike the face's. The ring of cap texels whose surface the band also holds takes the band's
    fill there, with the weight the cap's own confidence leaves, and the cap is filled again from
    those anchors and its own seen texels (push-pull): the band's tone carries on into the cap.
    """
    rows = atlas.band_rows
    ring = cap_ring(atlas)
    if ring is None:
        return filled
    r, c, band_xy = ring
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


def cap_ring(atlas: AtlasGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The caps' texels whose surface the band also holds (``continue_band_into_caps``): their rows
    below the band, columns, and points in the band's image; None where there are none. Cached on the
    atlas (the colour's fill and the de-lighting's shading fill read it)."""
    from ...atlas import BAND

    if "cap_ring" in atlas.cache:
        return atlas.cache["cap_ring"]
    rows = atlas.band_rows
    found = None
    if rows < atlas.size:
        chart, tri = atlas.chart[rows:], atlas.tri_id[rows:]
        in_cap = atlas.mask[rows:] & (chart != BAND)
        ids = tri[in_cap]
        ring = atlas.triangle_chart[ids] == BAND
        r, c = np.nonzero(in_cap)
        r, c = r[ring], c[ring]
        band_xy = (atlas.triangle_xy[ids[ring]] * atlas.bary[r + rows, c][..., None]).sum(axis=1)
        # A ring triangle's band corners may lie past the band's first or last row: only the texels
        # whose point the band image holds anchor.
        inside = (band_xy[:, 1] >= 0.5) & (band_xy[:, 1] <= rows - 0.5)
        if inside.any():
            found = (r[inside], c[inside], band_xy[inside])
    atlas.cache["cap_ring"] = found
    return found


def smooth_where_stretched(filled: np.ndarray, atlas: AtlasGeometry) -> np.ndarray:
    """The fill, blurred where the atlas's texels are long strips on the surface (FILL_ANISOTROPY)."""
    where, blend = _anisotropy_blend(atlas, FILL_ANISOTROPY)
    if not where.any():
        return filled
    # A wide blur of a smooth fill: at a quarter of the resolution, per chart, normalised by the
    # mask (whose blur is the atlas's own, kept), read back (bilinear, as cv2.resize would enlarge
    # it) at the stretched texels only.
    filled = filters.contiguous_floating(filled)
    weighted = np.empty_like(filled)
    _times_mask(filled, atlas.mask, weighted)
    picked = [
        sample_image(_quarter_blur(part, sigma), xy) / np.maximum(weight, 1e-6)[:, None]
        for part, sigma, xy, weight in _stretched_charts(atlas, weighted)
    ]
    out = filled.copy()
    _blend_where(out, where, blend, filters.contiguous_floating(np.concatenate(picked)))
    return out


@njit(cache=True)
def _times_mask(image: np.ndarray, mask: np.ndarray, out: np.ndarray) -> None:
    """``image * mask`` (S, S, C) in one pass (numpy's broadcast over three channels took 16 ms at
    1024²)."""
    one, zero = 1.0, 0.0  # exact in any precision: x, or 0 with its sign (NaN stays)
    for i in range(image.shape[0]):
        for j in range(image.shape[1]):
            m = one if mask[i, j] else zero
            for k in range(image.shape[2]):
                out[i, j, k] = image[i, j, k] * m


@njit(cache=True)
def _blend_where(out: np.ndarray, where: np.ndarray, blend: np.ndarray, target: np.ndarray) -> None:
    """``out[where] += blend * (target - out[where])``, texels in row-major order, in numpy's
    precision for them."""
    n = 0
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            if where[i, j]:
                for k in range(out.shape[2]):
                    out[i, j, k] = out[i, j, k] + blend[n] * (target[n, k] - out[i, j, k])
                n += 1


@njit(cache=True)
def _tinted(values: np.ndarray, where: np.ndarray, tint: np.ndarray, out: np.ndarray) -> None:
    """(S, S, 3) ``values`` (one per ``where`` texel, row-major) times ``tint``, 0 times it
    elsewhere, float32 (a scatter and numpy's broadcast took 35 ms at 1024²)."""
    n = 0
    zero = np.float32(0.0)
    for i in range(where.shape[0]):
        for j in range(where.shape[1]):
            value = zero
            if where[i, j]:
                value = values[n]
                n += 1
            for k in range(out.shape[2]):
                out[i, j, k] = value * tint[k]


def _quarter_blur(part: np.ndarray, sigma: float) -> np.ndarray:
    """A padded chart reduced to a quarter (area average) and blurred there by ``sigma``."""
    h, w = part.shape[:2]
    small = cv2.resize(part, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (0, 0), sigma).reshape(small.shape[:2] + part.shape[2:])


def _stretched_charts(atlas: AtlasGeometry, image: np.ndarray):
    """Per chart holding stretched texels (FILL_ANISOTROPY): ``image``'s chart padded for the
    blur, the blur's sigma at the quarter size, where those texels fall in the reduced chart (in
    the order of the atlas's texels), and the blurred mask there. All but the first depend on the
    atlas alone and are kept on it."""
    sigma = FILL_BLUR * atlas.size / 1024 / 4
    margin = int(np.ceil(12 * sigma))
    cache = atlas.cache
    if "stretched_charts" not in cache:
        where = _anisotropy_blend(atlas, FILL_ANISOTROPY)[0]
        mask = atlas.mask.astype(np.float32)
        charts = []
        for rows, wrap in filters.charts(mask, atlas.band_rows):
            r, c = np.nonzero(where[rows])
            if r.size:
                padded = filters.pad(np.ascontiguousarray(mask[rows]), margin, wrap)
                small = _quarter_blur(padded, sigma)
                scale_x, scale_y = small.shape[1] / padded.shape[1], small.shape[0] / padded.shape[0]
                xy = np.stack([(c + margin + 0.5) * scale_x, (r + margin + 0.5) * scale_y], -1)
                xy = xy.astype(np.float32)
                charts.append((rows, wrap, xy, sample_image(small, xy)[:, 0]))
        cache["stretched_charts"] = charts
    for rows, wrap, xy, weight in cache["stretched_charts"]:
        yield filters.pad(np.ascontiguousarray(image[rows]), margin, wrap), sigma, xy, weight


def _anisotropy_blend(atlas: AtlasGeometry, limits: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) bool texels whose footprint anisotropy exceeds ``limits[0]``, and (M,) their
    smoothstep weight, whole from ``limits[1]``. Cached on the atlas."""
    cache = atlas.cache
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
    cache = atlas.cache
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
        """Return the completed texture; its confidence is the input's (what the portrait backs).
        With a generator's ``ctx.memo``, what it gave for the same texture and settings (the flat
        styles, which draw no grain, inpaint a photo's regions alike)."""
        if ctx.memo is None:
            return self._run(texture, ctx)
        grain = ctx.style.classic_at("grain", 1.0, ctx.strength)
        key = memo.digest(
            np.asarray(texture.color), np.asarray(texture.confidence), id(ctx.atlas),
            ctx.style.classic_at("symmetry", 1.0, ctx.strength), grain, ctx.seed if grain > 0 else None,
            ctx.marks,
        )  # fmt: skip
        kept = ctx.memo.get("inpaint", key)
        if kept is None:
            kept = self._run(texture, ctx)
            ctx.memo.put("inpaint", key, kept)
        return kept

    def _run(self, texture: AtlasTexture, ctx: StageContext) -> AtlasTexture:
        atlas = ctx.atlas
        style = ctx.style
        # Unseen texels may hold NaN from the projection; they have no weight, but 0 * NaN is NaN.
        color = np.nan_to_num(np.asarray(texture.color, np.float32), nan=0.0)
        conf = np.clip(np.asarray(texture.confidence, np.float32), 0.0, 1.0) * atlas.mask

        ctx.check_cancel()
        ctx.progress(0.0, "symmetric completion and multi-scale fill")
        symmetry = style.classic_at("symmetry", 1.0, ctx.strength)
        # A mark on the skin keeps the photo's colour where it is (its confidence) but is no source.
        filled, sym_conf = classic_fill(color, ctx.fill_confidence(conf), atlas, symmetry)

        ctx.check_cancel()
        ctx.progress(0.5, "synthesising skin grain")
        grain_amount = style.classic_at("grain", 1.0, ctx.strength)
        grain, grain_weight = np.zeros((1, 3), np.float32), np.zeros(1, np.float32)
        if grain_amount > 0:
            grain = synthesize_grain(color, conf, ctx, where=sym_conf < 1.0)
            # Grain only where neither the portrait nor the mirror brought real detail.
            grain_weight = np.float32(grain_amount) * (1.0 - sym_conf)

        ctx.check_cancel()
        # Exactly the input where conf == 1 (1 * x + 0 * y == x in floating point), outside the
        # mask the fill, so that bilinear lookups at chart borders see plausible colours.
        out = np.empty_like(color)
        _compose(
            color.reshape(-1, 3),
            np.ascontiguousarray(texture.confidence, np.float32).reshape(-1),
            np.ascontiguousarray(filled, np.float32).reshape(-1, 3),
            np.ascontiguousarray(grain, np.float32).reshape(-1, 3),
            np.ascontiguousarray(grain_weight, np.float32).reshape(-1),
            grain_amount > 0,
            out.reshape(-1, 3),
        )
        ctx.progress(1.0, "inpaint done")
        return AtlasTexture(out, np.asarray(texture.confidence, np.float32).copy())


@njit(cache=True)
def _compose(
    color: np.ndarray,
    confidence: np.ndarray,
    filled: np.ndarray,
    grain: np.ndarray,
    grain_weight: np.ndarray,
    use_grain: bool,
    out: np.ndarray,
) -> None:
    """``out = c color + (1 - c) clip(filled + grain_weight grain, 0, 1)``, c the confidence clipped
    to 0..1, per texel (N, 3) in float32: the stage's last five numpy passes over the atlas in one."""
    zero, one = np.float32(0.0), np.float32(1.0)
    for i in range(color.shape[0]):
        c = min(max(confidence[i], zero), one)
        for k in range(3):
            f = filled[i, k]
            if use_grain:
                f = f + grain[i, k] * grain_weight[i]
            f = min(max(f, zero), one)
            out[i, k] = c * color[i, k] + (one - c) * f


def warm_up() -> None:
    """Load the compiled kernels (numba's on-disk cache) ahead of the first request."""
    one = np.ones((1, 1), np.float32)
    gradient_noise(np.zeros((1, 3), np.float32), np.ones(1, np.float32), 0, one, np.empty_like(one))
    pixel = np.zeros((1, 3), np.float32)
    _compose(pixel, np.ones(1, np.float32), pixel, pixel, np.ones(1, np.float32), True, pixel.copy())
    _times_mask(pixel[None], np.ones((1, 1), np.bool_), np.empty((1, 1, 3), np.float32))
    _blend_where(pixel[None].copy(), np.ones((1, 1), np.bool_), np.ones(1, np.float32), pixel)
    _tinted(np.ones(1, np.float32), np.ones((1, 1), np.bool_), np.ones(3, np.float32), pixel[None].copy())
    texel = np.ones((1, 1), np.float32)
    _footprint_kernel(
        np.zeros((1, 1, 3), np.float32), texel > 0, np.ones((1, 1), np.uint8), texel, texel.copy()
    )
