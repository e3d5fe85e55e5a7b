"""Image filters on the head atlas, shared by the bake and both engines, all aware of the atlas's
two kinds of chart.

The atlas (``atlas.py``) has a band in rows ``[0, band_rows)`` whose columns wrap around (the back of
the head: column 0 and column S-1 are neighbours) and, below it, two cap discs that do not wrap. A
filter run on the whole image would invent an edge at the back seam and would mix the band's bottom
row with the unrelated caps beneath it. Every helper here therefore filters the band and the caps
as separate images, padding the band's columns circularly (``cv2.BORDER_WRAP``) and everything else
by reflection, and crops the padding afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np
from numba import njit, prange

from .atlas import AtlasGeometry
from .imaging import LUMA, disc, sample_image, smoothstep

GAMMA = 2.2
"""sRGB is treated as a pure power law: dividing linear light by f is multiplying sRGB by f^(-1/2.2)."""


def linear_luminance(srgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luminance (..., 3) -> (...) of sRGB values taken to linear light by the power law of
    GAMMA: the light a colour reflects, where ``imaging.luminance`` of sRGB is its luma."""
    return np.power(srgb, GAMMA) @ LUMA


_BINOMIAL = np.array([1, 4, 6, 4, 1], np.float32) / 16


def balanced(portrait: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """``portrait`` (H, W, 3+) sRGB 0..1 with ``gains`` applied in linear light (the power law of
    GAMMA); an alpha channel is kept. Every channel is capped where the smallest
    gain takes a full one (as raw converters clip highlights): a highlight the camera clipped to
    white stays white instead of taking the gains' colour (a warm light's clipped red, lowered,
    would turn it cyan)."""
    scale = np.asarray(gains, np.float32) ** np.float32(1.0 / GAMMA)
    out = np.array(portrait, np.float32, copy=True)
    out[..., :3] *= scale
    np.clip(out[..., :3], 0.0, min(float(scale.min()), 1.0), out=out[..., :3])
    return out


CAPS_INTO_BAND = (np.radians(3.0), np.radians(7.0))
"""Radians from the band's edges within which ``caps_into_band`` gives the band the caps' content
wholly, and from which it begins to: the ring's texels of triangles straddling the edge lie up to a
triangle's size inside the band (on the scanned head at 512, the ring's edge texels kept 0.15 of
the band's own strokes with a fade from the edge itself)."""
_BAND_UNDER_CAPS: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def caps_into_band(image: np.ndarray, atlas: AtlasGeometry) -> np.ndarray:
    """``image`` (S, S, C) with the band's last latitudes before each cap (CAPS_INTO_BAND) faded into
    what the cap holds of the same surface, where both hold it.

    A filter run per chart (``per_chart``: painterly's strokes and Kuwahara patches, its brush
    texture) makes detail of its own in each chart, and the caps' ring agrees with the band
    (``atlas.harmonise_charts``) only to the ring's edge, where the bake turns from the band to the
    cap: the two charts' strokes met there in a dotted line round the crown. Faded, the band ends in
    the cap's own strokes, and the ring (the band's copy) with them."""
    layout = atlas.layout
    key = (layout.size, layout.lat_top, layout.lat_bottom, layout.overlap, layout.warp)
    if key not in _BAND_UNDER_CAPS:
        _BAND_UNDER_CAPS.clear()  # one atlas size at a time is what requests use
        _BAND_UNDER_CAPS[key] = layout.band_under_caps(*CAPS_INTO_BAND)
    index, xy, weight = _BAND_UNDER_CAPS[key]
    held = atlas.mask.reshape(-1)
    out = np.array(image, np.float32, copy=True)
    flat = out.reshape(-1, out.shape[-1])
    ix = np.clip(np.floor(xy[:, 0]).astype(np.int64), 0, layout.size - 1)
    iy = np.clip(np.floor(xy[:, 1]).astype(np.int64), layout.band_rows, layout.size - 1)
    both = held[index] & held[iy * layout.size + ix]
    index, xy, weight = index[both], xy[both], weight[both]
    cap = sample_image(out[layout.band_rows :], xy - np.float32([0.0, layout.band_rows]))
    flat[index] += weight[:, None] * (cap - flat[index])
    return out


def charts(image: np.ndarray, rows: int) -> list[tuple[slice, bool]]:
    """Row ranges of the atlas's charts and whether their columns wrap: the band, then the caps."""
    parts = [(slice(0, rows), True)]
    if rows < image.shape[0]:
        parts.append((slice(rows, image.shape[0]), False))
    return parts


def pad(image: np.ndarray, width: int, wrap: bool) -> np.ndarray:
    """``image`` padded by ``width`` on all sides: columns circularly when ``wrap``, rows by reflection."""
    if width <= 0:
        return image
    h, w = image.shape[:2]
    if width < h and width < w:
        out = cv2.copyMakeBorder(image, width, width, 0, 0, cv2.BORDER_REFLECT_101)
        out = cv2.copyMakeBorder(out, 0, 0, width, width, cv2.BORDER_WRAP if wrap else cv2.BORDER_REFLECT_101)
        return out.reshape(h + 2 * width, w + 2 * width, *image.shape[2:])
    # Padding wider than the image (very blurry filters on small atlases): numpy repeats as needed.
    extra = ((0, 0),) * (image.ndim - 2)
    out = np.pad(image, ((width, width), (0, 0)) + extra, mode="symmetric")
    return np.pad(out, ((0, 0), (width, width)) + extra, mode="wrap" if wrap else "symmetric")


def per_chart(
    fn: Callable[[np.ndarray, bool], np.ndarray], image: np.ndarray, rows: int, margin: int
) -> np.ndarray:
    """Apply ``fn(padded_chart, wrap)`` to each chart padded by ``margin`` and reassemble the crops.

    ``fn`` must return an array of the padded chart's height and width (any channel count).
    """
    outputs = []
    for rows_slice, wrap in charts(image, rows):
        part = pad(np.ascontiguousarray(image[rows_slice]), margin, wrap)
        result = fn(part, wrap)
        if margin > 0:
            result = result[margin:-margin, margin:-margin]
        outputs.append(result)
    return np.concatenate(outputs, axis=0) if len(outputs) > 1 else outputs[0]


def _down2(image: np.ndarray, wrap: bool) -> np.ndarray:
    """Binomial blur and decimation by two (fine pixel 2j becomes coarse pixel j)."""
    h, w = image.shape[:2]
    if min(h, w) > 2:
        # cv2.pyrDown is this very filter ([1 4 6 4 1] / 16, reflected borders, even pixels kept);
        # the band's wrap is two columns of circular padding, i.e. one coarse column each side.
        coarse_shape = ((h + 1) // 2, (w + 1) // 2) + image.shape[2:]
        if not wrap:
            return cv2.pyrDown(image).reshape(coarse_shape)
        channels = image.shape[2:]
        if w % 2 == 0 and w >= 8:
            # Only the first and last coarse columns read across the wrap: those two come from a
            # pyramid step of the eight columns about it (the last four, then the first four);
            # padding the whole image (a copy of it) cost half of a 1024 atlas's pyramid.
            coarse = cv2.pyrDown(image).reshape(coarse_shape)
            seam = np.ascontiguousarray(np.concatenate([image[:, -4:], image[:, :4]], axis=1))
            across = cv2.pyrDown(seam).reshape(((h + 1) // 2, 4) + channels)
            coarse[:, -1], coarse[:, 0] = across[:, 1], across[:, 2]
            return coarse
        padded = cv2.copyMakeBorder(image, 0, 0, 2, 2, cv2.BORDER_WRAP).reshape((h, w + 4) + channels)
        return np.ascontiguousarray(cv2.pyrDown(padded).reshape(((h + 1) // 2, -1) + channels)[:, 1:-1])
    padded = pad(image, 2, wrap)
    blurred = cv2.sepFilter2D(padded, -1, _BINOMIAL, _BINOMIAL, borderType=cv2.BORDER_REFLECT_101)
    blurred = blurred.reshape(padded.shape)[2:-2, 2:-2]
    return np.ascontiguousarray(blurred[::2, ::2])


def _up2(image: np.ndarray, shape: tuple[int, int], wrap: bool) -> np.ndarray:
    """Linear interpolation of a coarse level back to ``shape`` (fine pixel i sits at coarse i / 2):
    even rows and columns take the coarse pixel, odd ones the mean of two (columns wrap when
    ``wrap``, the last row repeats). One compiled pass (four numpy passes took 2 ms per call and
    about 30 ms of a request's de-lighting)."""
    h, w = shape
    coarse = np.ascontiguousarray(image)
    coarse = coarse.reshape(coarse.shape[:2] + (-1,))
    out = np.empty((h, w, coarse.shape[2]), np.float32)
    _up2_kernel(coarse, wrap, out)
    return out.reshape((h, w) + image.shape[2:])


@njit(cache=True)
def _up2_kernel(coarse: np.ndarray, wrap: bool, out: np.ndarray) -> None:
    """``_up2`` into ``out`` (h, w, C) float32; the row means in the coarse image's precision, the
    column means in float32, as the numpy formulation rounded them."""
    h, w, c = out.shape
    hc, wc = coarse.shape[0], coarse.shape[1]
    for i in range(h):
        i0 = i // 2
        i1 = min(i0 + 1, hc - 1)
        odd_i = i % 2 == 1
        for j in range(w):
            j0 = j // 2
            j1 = j0 + 1
            if j1 >= wc:
                j1 = 0 if wrap else wc - 1
            odd_j = j % 2 == 1
            for k in range(c):
                if odd_i:
                    left = np.float32(0.5 * (coarse[i0, j0, k] + coarse[i1, j0, k]))
                else:
                    left = np.float32(coarse[i0, j0, k])
                if odd_j:
                    if odd_i:
                        right = np.float32(0.5 * (coarse[i0, j1, k] + coarse[i1, j1, k]))
                    else:
                        right = np.float32(coarse[i0, j1, k])
                    out[i, j, k] = np.float32(0.5 * (left + right))
                else:
                    out[i, j, k] = left


PARALLEL_MIN_TEXELS = 1 << 21
"""Pyramid levels with fewer texels than this are pulled on one thread. A parallel launch wakes the
other core's thread, which on a busy machine waits for a time slice: push-pull of a 1024 atlas
(about 20 launches, most on small levels) took 0.14 s of CPU and 0.27 s of wall time with every level
parallel, 0.03 s and 0.06 s on one thread (the shared 2-core machine, ``time.process_time``); even
its finest level (768 x 1024) pulled in 11 ms on one thread and 15 ms on two. Only the bake's fill of
2048 and 4096 textures (4 M and 16 M texels) is worth both cores."""


@njit(cache=True, inline="always")
def _pull_row(
    i: int,
    values: np.ndarray,
    weights: np.ndarray,
    premultiplied: bool,
    coarse: np.ndarray,
    wrap: bool,
    gain: float,
    where: np.ndarray,
    use_where: bool,
    out: np.ndarray,
) -> None:
    """Row ``i`` of the pull: ``out = alpha * own + (1 - alpha) * _up2(coarse)``, alpha the texel's
    weight times ``gain`` (clipped to 0..1) and own its normalised value; only where ``where`` when
    ``use_where``. float32 throughout, the same operations as the numpy formulation.

    ``premultiplied``: ``values`` is a level of the pyramid, (values * weight, weight) with the
    weight as its last channel (``weights`` unused); otherwise plain values and their ``weights``.
    """
    w = values.shape[1]
    c = out.shape[2]
    hc, wc = coarse.shape[0], coarse.shape[1]
    half = np.float32(0.5)
    one = np.float32(1.0)
    g = np.float32(gain)
    i0 = i // 2
    i1 = min(i0 + 1, hc - 1)
    odd_i = i % 2 == 1
    for j in range(w):
        if use_where and not where[i, j]:
            continue
        j0 = j // 2
        j1 = j0 + 1
        if j1 >= wc:
            j1 = 0 if wrap else wc - 1
        odd_j = j % 2 == 1
        weight = values[i, j, c] if premultiplied else weights[i, j]
        alpha = min(max(weight * g, np.float32(0.0)), one)
        denom = max(weight, np.float32(1e-12))
        for k in range(c):
            if odd_i:
                left = half * (coarse[i0, j0, k] + coarse[i1, j0, k])
            else:
                left = coarse[i0, j0, k]
            if odd_j:
                if odd_i:
                    right = half * (coarse[i0, j1, k] + coarse[i1, j1, k])
                else:
                    right = coarse[i0, j1, k]
                up = half * (left + right)
            else:
                up = left
            num = values[i, j, k] if premultiplied else values[i, j, k] * weight
            out[i, j, k] = alpha * (num / denom) + (one - alpha) * up


@njit(cache=True, parallel=True)
def _pull_parallel(values, weights, premultiplied, coarse, wrap, gain, where, use_where, out) -> None:
    """``_pull_row`` over every row, the rows shared between the cores."""
    for i in prange(values.shape[0]):
        _pull_row(i, values, weights, premultiplied, coarse, wrap, gain, where, use_where, out)


@njit(cache=True)
def _pull_serial(values, weights, premultiplied, coarse, wrap, gain, where, use_where, out) -> None:
    """``_pull_row`` over every row on the calling thread."""
    for i in range(values.shape[0]):
        _pull_row(i, values, weights, premultiplied, coarse, wrap, gain, where, use_where, out)


def _pull_kernel(
    values: np.ndarray,
    weights: np.ndarray,
    premultiplied: bool,
    coarse: np.ndarray,
    wrap: bool,
    gain: float,
    where: np.ndarray,
    use_where: bool,
    out: np.ndarray,
) -> None:
    """One level of the pull (``_pull_row``), on both cores only where the level is large enough to
    pay for waking the second (PARALLEL_MIN_TEXELS)."""
    big = values.shape[0] * values.shape[1] >= PARALLEL_MIN_TEXELS
    kernel = _pull_parallel if big else _pull_serial
    kernel(values, weights, premultiplied, coarse, wrap, gain, where, use_where, out)


_UNUSED_WEIGHTS = np.zeros((1, 1), np.float32)
_EVERYWHERE = np.zeros((1, 1), np.bool_)


def _pull(level: np.ndarray, coarse: np.ndarray, wrap: bool, gain: float) -> np.ndarray:
    """The pull from ``coarse`` to a premultiplied ``level`` (values * weight, weight)."""
    out = np.empty(level.shape[:2] + (level.shape[2] - 1,), np.float32)
    _pull_kernel(
        np.ascontiguousarray(level, np.float32),
        _UNUSED_WEIGHTS,
        True,
        np.ascontiguousarray(coarse, np.float32),
        wrap,
        gain,
        _EVERYWHERE,
        False,
        out,
    )
    return out


def _coarse_fill(stack: np.ndarray, wrap: bool, gain: float) -> np.ndarray:
    """Push-pull of a premultiplied stack (values * weight, weight) down to its top, then pulled
    back up to the stack's own level."""
    levels = [stack]
    while min(levels[-1].shape[:2]) > 4:
        levels.append(_down2(levels[-1], wrap))
    top = levels[-1]
    total = top[..., -1:].sum(axis=(0, 1))
    mean = top[..., :-1].sum(axis=(0, 1)) / np.maximum(total, 1e-12)
    filled = np.where(top[..., -1:] > 1e-6, top[..., :-1] / np.maximum(top[..., -1:], 1e-12), mean)
    filled = np.ascontiguousarray(filled, np.float32)
    for level in reversed(levels[:-1]):
        filled = _pull(level, filled, wrap, gain)
    return filled


def premultiplied(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(H, W, C + 1) float32: ``values`` times ``weights``, then the weights."""
    stack = np.empty(values.shape[:2] + (values.shape[2] + 1,), np.float32)
    _premultiply_kernel(contiguous_floating(values), contiguous_floating(weights), stack)
    return stack


def contiguous_floating(array: np.ndarray) -> np.ndarray:
    """``array`` contiguous, float64 if it is, float32 otherwise (bool, integers and float16 exactly
    so): the kernels multiply as numpy would, float64 where either factor is, and round once on
    storing."""
    array = np.asarray(array)
    return np.ascontiguousarray(array, np.float64 if array.dtype == np.float64 else np.float32)


@njit(cache=True)
def _premultiply_kernel(values: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """``premultiplied`` in one pass (numpy's strided writes into the interleaved channels took
    24 ms at 1024², this 3; the product in the factors' precision, rounded to float32 on storing,
    as numpy's ``multiply(..., out=float32)``)."""
    c = values.shape[2]
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            weight = weights[i, j]
            for k in range(c):
                out[i, j, k] = values[i, j, k] * weight
            out[i, j, c] = weight


def _push_pull_chart(values: np.ndarray, weights: np.ndarray, wrap: bool, gain: float) -> np.ndarray:
    """Push-pull fill of one chart: normalised convolution over a pyramid, coarse fills fine."""
    return _coarse_fill(premultiplied(values, weights), wrap, gain)


def push_pull(values: np.ndarray, weights: np.ndarray, rows: int, gain: float = 2.0) -> np.ndarray:
    """Fill ``values`` (S, S, C) everywhere from the texels with ``weights`` (S, S) > 0.

    Pyramid normalised convolution: each level averages the weighted values of the finer one, and
    on the way back up a texel keeps its own (normalised) value in proportion to its weight and
    takes the coarser level's interpolated value for the rest. Zero-weight texels never contribute,
    so the fill is normalised on the texels that carry information (e.g. the atlas mask).
    """
    squeeze = values.ndim == 2
    v = values[..., None] if squeeze else values
    out = np.concatenate(
        [_push_pull_chart(v[sl], weights[sl], wrap, gain) for sl, wrap in charts(v, rows)], axis=0
    )
    return out[..., 0] if squeeze else out


def fill(
    values: np.ndarray, weights: np.ndarray, gain: float = 2.0, where: np.ndarray | None = None
) -> np.ndarray:
    """``push_pull`` of a plain image (no chart, no wrap), e.g. a texture in the mesh's own UVs.

    ``where`` (H, W) bool, optional: fill only these texels of ``values`` (H, W, C), in place, and
    return it. The finest level then costs one pass over those texels instead of the whole image
    (the bake fills a few hidden texels of a 4096² texture).
    """
    squeeze = values.ndim == 2
    v = values[..., None] if squeeze else values
    weights = np.ascontiguousarray(weights, np.float32)
    if where is None:
        out = _push_pull_chart(np.asarray(v, np.float32), weights, False, gain)
        return out[..., 0] if squeeze else out
    h, w = weights.shape
    if min(h, w) <= 4:
        filled = _push_pull_chart(np.asarray(v, np.float32), weights, False, gain)
        v[where] = filled[where]
        return values
    # The level below the finest, built straight from the image: the full-size stack is never made.
    v32 = np.ascontiguousarray(v, np.float32)
    small = np.concatenate(
        [_down2(v32 * weights[..., None], False), _down2(weights, False)[..., None]], axis=2
    )
    coarse = _coarse_fill(small, False, gain)
    where = np.ascontiguousarray(where, np.bool_)
    _pull_kernel(v32, weights, False, np.ascontiguousarray(coarse), False, gain, where, True, v32)
    if v32 is not v:
        v[where] = v32[where]
    return values


def warm_up() -> None:
    """Load the compiled kernels (numba's on-disk cache) ahead of the first request."""
    values, weights = np.zeros((32, 32, 3), np.float32), np.ones((32, 32), np.float32)
    fill(values, weights, where=np.ones((32, 32), bool))  # the serial pull
    coarse, everywhere = np.zeros((16, 16, 3), np.float32), np.ones((32, 32), np.bool_)
    _pull_parallel(values, weights, False, coarse, False, 2.0, everywhere, True, values)
    upsample(coarse, 12, (32, 32), 24)
    flat = values.reshape(-1, 3)
    index = np.arange(len(flat), dtype=np.int64)
    _mirror_mix(flat, weights.reshape(-1), index, np.float32(1.0), flat.copy(), weights.reshape(-1).copy())
    premultiplied(values, weights)
    premultiplied(values, weights.astype(np.float64))  # a float64 weight map (the ring gain's anchors)
    _normalised_kernel(premultiplied(values, weights), values.copy())
    with_channel(values, weights)
    _toward_kernel(np.zeros(3, np.float32), values, weights, np.empty_like(values))
    _mean_step(values.astype(np.float64), np.ones((32, 32), np.int32), 1)


def downsample(image: np.ndarray, rows: int) -> tuple[np.ndarray, int]:
    """Half-resolution copy (binomial pre-filter, per chart) and the band's rows at that size."""
    parts = [_down2(np.ascontiguousarray(image[sl], np.float32), wrap) for sl, wrap in charts(image, rows)]
    return (np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]), parts[0].shape[0]


def upsample(small: np.ndarray, small_rows: int, shape: tuple[int, int], rows: int) -> np.ndarray:
    """Inverse of ``downsample``: linear interpolation back to ``shape`` (H, W), per chart."""
    parts = [_up2(np.ascontiguousarray(small[:small_rows]), (rows, shape[1]), True)]
    if rows < shape[0]:
        parts.append(_up2(np.ascontiguousarray(small[small_rows:]), (shape[0] - rows, shape[1]), False))
    return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


def gaussian(
    image: np.ndarray,
    sigma: float,
    rows: int,
    then: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Gaussian blur per chart (circular in the band); large sigmas go through a pyramid.

    ``then``, a per-texel function of the blurred values (any number of channels out), is applied
    at the pyramid's coarsest level and its result interpolated back: the blur is smooth there, so
    interpolating the function's result is as good as evaluating it at every texel, at a sixteenth
    of the cost or less (a 1024² atlas's colour harmonisation: 30 of its 100 ms)."""
    image = np.asarray(image, np.float32)
    if sigma <= 0:
        out = image.copy()
        return out if then is None else then(out)
    if sigma <= 6:
        margin = int(np.ceil(3 * sigma)) + 1

        def blur(part: np.ndarray, wrap: bool) -> np.ndarray:
            blurred = cv2.GaussianBlur(part, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
            return blurred.reshape(part.shape)

        out = per_chart(blur, image, rows, margin)
        return out if then is None else then(out)
    # Coarse-to-fine: k binomial halvings add variance (4^k - 1) / 3, the rest is blurred at level k.
    k = int(np.floor(np.log2(sigma / 3)))
    residual = np.sqrt(max(sigma**2 - (4**k - 1) / 3 - 4**k / 4, 1.0)) / 2**k
    outputs = []
    for sl, wrap in charts(image, rows):
        part = image[sl]
        shapes = [part.shape[:2]]
        for _ in range(k):
            part = _down2(part, wrap)
            shapes.append(part.shape[:2])
        margin = int(np.ceil(3 * residual)) + 1
        padded = pad(part, margin, wrap)
        part = cv2.GaussianBlur(padded, (0, 0), residual).reshape(padded.shape)
        part = part[margin:-margin, margin:-margin]
        if then is not None:
            part = np.asarray(then(part), np.float32)
        for shape in reversed(shapes[:-1]):
            part = _up2(part, shape, wrap)
        outputs.append(part)
    return np.concatenate(outputs, axis=0) if len(outputs) > 1 else outputs[0]


def normalized_gaussian(
    values: np.ndarray, weights: np.ndarray, sigma: float, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted Gaussian average of ``values`` (S, S, C) and the blurred weight (S, S)."""
    blurred = gaussian(premultiplied(values, weights), sigma, rows)
    out = np.empty(blurred.shape[:2] + (blurred.shape[2] - 1,), np.float32)
    _normalised_kernel(blurred, out)
    return out, blurred[..., -1]


@njit(cache=True)
def _normalised_kernel(stack: np.ndarray, out: np.ndarray) -> None:
    """``stack[..., :-1] / np.maximum(stack[..., -1], 1e-6)`` per texel, float32."""
    c = out.shape[2]
    floor = np.float32(1e-6)
    for i in range(stack.shape[0]):
        for j in range(stack.shape[1]):
            weight = stack[i, j, c]
            # np.maximum's: NaN stays NaN
            weight = weight if (weight >= floor or weight != weight) else floor
            for k in range(c):
                out[i, j, k] = stack[i, j, k] / weight


def with_channel(values: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """(H, W, C + 1) float32: ``values`` (H, W, C) and ``channel`` (H, W) as its last channel, in one
    pass (``np.concatenate`` over the interleaved channels took 15 ms at 1024²)."""
    out = np.empty(values.shape[:2] + (values.shape[2] + 1,), np.float32)
    _with_channel_kernel(
        np.ascontiguousarray(values, np.float32), np.ascontiguousarray(channel, np.float32), out
    )
    return out


@njit(cache=True)
def _with_channel_kernel(values: np.ndarray, channel: np.ndarray, out: np.ndarray) -> None:
    c = values.shape[2]
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            for k in range(c):
                out[i, j, k] = values[i, j, k]
            out[i, j, c] = channel[i, j]


def dilated_blurred(area: np.ndarray, reach: int, sigma: float) -> np.ndarray:
    """``area`` (S, S) float32 dilated by a disc of radius ``reach`` (none for 0) and blurred by a
    Gaussian of ``sigma`` (none for 0), as ``cv2`` does it over the whole image, worked out over the box of
    ``area``'s non-zero texels grown by what the two reach (the disc, and OpenCV's float kernel's 4
    sigma) alone: 0 beyond it, the same values in it. A feature's area in a 1024² atlas (two eyes, a
    mouth) took 0.05-0.19 s over the whole atlas."""
    rows, cols = np.flatnonzero(area.any(axis=1)), np.flatnonzero(area.any(axis=0))
    if not len(rows):
        return np.zeros_like(area)
    margin = reach + int(np.ceil(4 * sigma)) + 2
    y0, y1 = max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, area.shape[0])
    x0, x1 = max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, area.shape[1])
    box = area[y0:y1, x0:x1]
    if reach > 0:
        box = cv2.dilate(box, disc(reach))
    out = np.zeros_like(area)
    out[y0:y1, x0:x1] = cv2.GaussianBlur(box, (0, 0), sigma) if sigma > 0 else box
    return out


def symmetric_completion(
    values: np.ndarray, confidence: np.ndarray, atlas: AtlasGeometry, amount: float
) -> tuple[np.ndarray, np.ndarray]:
    """Complete ``values`` from their mirror image where the mirror was seen better.

    A 3/4 portrait shows one side of the face more than the other; where a texel's mirror has
    higher confidence, its value is mixed in with the confidence gain as weight. Returns the
    completed values and their confidence (``max(conf, mirror conf)`` for ``amount`` 1).
    """
    v = values[..., None] if values.ndim == 2 else values
    v = np.ascontiguousarray(v, np.float32)
    conf = np.ascontiguousarray(confidence, np.float32)
    mixed = np.empty_like(v)
    total = np.empty_like(conf)
    index = atlas.mirror_index()
    _mirror_mix(
        v.reshape(conf.size, -1),
        conf.reshape(-1),
        index.reshape(-1),
        np.float32(amount),
        mixed.reshape(conf.size, -1),
        total.reshape(-1),
    )
    return (mixed[..., 0] if values.ndim == 2 else mixed), total


@njit(cache=True)
def _mirror_mix(
    values: np.ndarray,
    conf: np.ndarray,
    mirror: np.ndarray,
    amount: np.float32,
    mixed: np.ndarray,
    total: np.ndarray,
) -> None:
    """``symmetric_completion`` in one pass over the texels (float32, the numpy formulation's
    operations: it took 45 ms of numpy passes and mirror gathers at 1024, this 5 ms)."""
    zero, one, tiny = np.float32(0.0), np.float32(1.0), np.float32(1e-6)
    for i in range(conf.shape[0]):
        j = mirror[i]
        c = conf[i]
        gain = min(max(conf[j] - c, zero), one) * amount
        t = c + gain
        total[i] = t
        for k in range(values.shape[1]):
            if t > tiny:
                mixed[i, k] = (c * values[i, k] + gain * values[j, k]) / max(t, tiny)
            else:
                mixed[i, k] = values[i, k]


def smooth_fill(
    values: np.ndarray, confidence: np.ndarray, atlas: AtlasGeometry, symmetry: float
) -> tuple[np.ndarray, np.ndarray]:
    """The classic inpaint's smooth fill of ``values``: symmetric completion, then push-pull, both
    drawing only on texels the photo backs (``fill_weight`` of ``confidence``).

    Returns the fill (defined everywhere) and the sources' weight after symmetric completion (what
    the photo or its mirror brought, 0..1). The classic inpaint's whole fill
    (``engines.classic.inpaint.classic_fill``) starts from it; the de-lighting fills its shading
    field with that too, to know which shading the fill carried into each texel.
    """
    weight = fill_weight(confidence)
    sym_values, sym_conf = symmetric_completion(values, weight, atlas, symmetry)
    # What depends on the confidence alone is worked out once for the inpaint's fill of the colour
    # and the de-lighting's of its shading, which fill from the same confidence (the second fill:
    # 81 -> 38 ms at 1024²).
    plan = _fill_plan(weight, atlas, symmetry)
    holes = small_holes(weight, atlas) if plan is None else plan.holes
    if holes.any():
        sym_values[holes] = values[holes]
        sym_conf[holes] = weight[holes]
    sources = sym_conf * atlas.mask
    if plan is None:
        plan = FillPlan(weight, symmetry, holes, overall_reach(sources, atlas))
        atlas.cache["fill_plan"] = plan
    filled = push_pull(sym_values, sources, atlas.band_rows)
    return toward_overall(filled, sym_values, sources, atlas, plan.reach), sym_conf


def planned_holes(weight: np.ndarray, atlas: AtlasGeometry, symmetry: float) -> np.ndarray:
    """``small_holes`` of the fill's ``weight`` (``fill_weight``), as a fill of the same weights worked
    them out (``FillPlan``): patches filled from around them, not from their mirror images."""
    plan = _fill_plan(weight, atlas, symmetry)
    return small_holes(weight, atlas) if plan is None else plan.holes


def _fill_plan(weight: np.ndarray, atlas: AtlasGeometry, symmetry: float) -> FillPlan | None:
    """The atlas's cached ``FillPlan`` where it was worked out for these weights and symmetry."""
    plan = atlas.cache.get("fill_plan")
    return plan if plan is not None and plan.fits(weight, symmetry) else None


class FillPlan(NamedTuple):
    """What ``smooth_fill`` reads of the fill weights alone, for the fills of the same weights."""

    weight: np.ndarray
    symmetry: float
    holes: np.ndarray
    """``small_holes`` of the weights."""
    reach: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    """``overall_reach`` of the sources the weights make."""

    def fits(self, weight: np.ndarray, symmetry: float) -> bool:
        """Whether the plan was worked out for these fill weights and this symmetry."""
        return self.symmetry == symmetry and np.array_equal(self.weight, weight)


FILL_NEAR_IOD = 0.3
"""Eye distances from what the photo or its mirror shows within which the fill is the push-pull's
alone (``toward_overall``): the photo's edge there, which the latent stage's border gain matches
to it, and the photo's texels it did not trust, which its colour nearby predicts best."""
FILL_REACH_IOD = 0.6
"""Eye distances (a Gaussian's sigma) beyond FILL_NEAR_IOD over which the fill goes from the
push-pull's colour to the overall colour of what the photo shows (``toward_overall``)."""
FILL_CORE_IOD = 0.15
"""Eye distances inside the edge of what the photo shows from which its texels make that overall
colour: the edge's texels (a hairline, a jaw's shadow, a grazing cheek) come and go with the
registration."""


def toward_overall(
    filled: np.ndarray,
    values: np.ndarray,
    sources: np.ndarray,
    atlas: AtlasGeometry,
    reach: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``filled`` (push-pull) near the ``sources`` (weights over 0.5) and, further away, the overall
    value of what they show: the weighted mean of ``values`` over the sources FILL_CORE_IOD inside
    their edge, reached with a Gaussian of FILL_REACH_IOD in the distance to them beyond
    FILL_NEAR_IOD.

    Far from what the photo shows (the back of the head, the neck, a cleared scalp) a push-pull
    gives the colour of its coarsest cells that hold any data, each the average of whatever edge
    texels it holds. Which edge texels the photo backs moves with the registration: on copies of
    the scanned head turned in its file, with the same photo, the back of the head came out 3 %
    lighter or darker. A mean (not a median: the de-lighting fills its shading field the same way,
    and the fill's colour over its shading is then the albedo of the same texels) over the same
    texels of both fields, away from the edge, is steady.

    ``reach`` is ``overall_reach(sources, atlas)`` where the caller has it."""
    reach = overall_reach(sources, atlas) if reach is None else reach
    if reach is None:
        return filled
    core, weights, keep = reach
    overall = (weights @ values[core].reshape(len(weights), -1).astype(np.float64)) / weights.sum()
    overall = overall.astype(np.float32).reshape(-1)
    flat = contiguous_floating(filled).reshape(filled.shape[:2] + (-1,))
    out = np.empty(flat.shape, np.float32)
    _toward_kernel(overall, flat, contiguous_floating(keep), out)
    return out.reshape(filled.shape)


@njit(cache=True)
def _toward_kernel(overall: np.ndarray, filled: np.ndarray, keep: np.ndarray, out: np.ndarray) -> None:
    """``overall + (filled - overall) * keep`` per texel and channel, in the inputs' precision,
    stored as float32 (the numpy broadcast took 36 ms at 1024², this 3)."""
    for i in range(filled.shape[0]):
        for j in range(filled.shape[1]):
            kept = keep[i, j]
            for k in range(filled.shape[2]):
                out[i, j, k] = overall[k] + (filled[i, j, k] - overall[k]) * kept


def overall_reach(
    sources: np.ndarray, atlas: AtlasGeometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """What ``toward_overall`` reads of the ``sources`` alone: the core texels the overall value is
    the mean of (a bool mask), their weights, and how much each texel keeps of the push-pull's value
    (S, S); None where the sources are too few for an overall value."""
    seen = sources >= 0.5
    if seen.sum() < 64:
        return None
    texels_per_iod = atlas.layout.face_texels_per_iod
    inside = _distance_to(~seen, atlas) >= np.float32(FILL_CORE_IOD * texels_per_iod)
    core = seen & inside if (seen & inside).sum() >= 64 else seen
    weights = sources[core].astype(np.float64) * texel_areas(atlas)[core]
    near, reach = FILL_NEAR_IOD * texels_per_iod, FILL_REACH_IOD * texels_per_iod
    beyond = np.maximum(_distance_to(seen, atlas) - np.float32(near), 0.0) / np.float32(reach)
    keep = np.exp(np.float32(-0.5) * beyond * beyond).astype(np.float32)
    return core, weights, keep


def texel_areas(atlas: AtlasGeometry) -> np.ndarray:
    """(S, S) float64 the surface area each texel covers, in squared eye distances: the cross product
    of its steps to its neighbours along each axis (their mean where both are on its chart); the
    median area where a texel has no neighbour on its chart along an axis, 0 where no surface.
    Cached on the atlas."""
    cache = atlas.cache
    if "texel_areas" not in cache:
        p = np.asarray(atlas.positions, np.float64) / atlas.frame.scale
        chart = np.where(atlas.mask, atlas.chart, 0)
        steps = [_mean_step(p, chart, axis) for axis in (1, 0)]
        area = np.linalg.norm(np.cross(steps[0], steps[1]), axis=-1)
        shown = chart > 0
        known = shown & np.isfinite(area)
        typical = float(np.median(area[known])) if known.any() else 0.0
        cache["texel_areas"] = np.where(shown, np.where(known, area, typical), 0.0)
    return cache["texel_areas"]


def _mean_step(p: np.ndarray, chart: np.ndarray, axis: int) -> np.ndarray:
    """(S, S, 3) the mean of a texel's steps to its two neighbours along ``axis`` that lie on its own
    chart (NaN where neither does); the image's edges wrap (as ``np.roll`` does). One compiled pass:
    numpy's rolls and masked sums took 0.25 s of a new head's first request at 1024² per axis."""
    out = np.empty(p.shape, np.float64)
    _mean_step_kernel(np.ascontiguousarray(p, np.float64), np.ascontiguousarray(chart, np.int32), axis, out)
    return out


@njit(cache=True)
def _mean_step_kernel(p: np.ndarray, chart: np.ndarray, axis: int, out: np.ndarray) -> None:
    """``_mean_step``: the neighbour ahead (index - 1), then the one behind (+ 1), each step taken
    towards the texel and summed from 0 in that order, over their count."""
    h, w = chart.shape
    for i in range(h):
        for j in range(w):
            own = chart[i, j]
            t0, t1, t2, count = 0.0, 0.0, 0.0, 0.0
            for shift in (-1, 1):
                if axis == 0:
                    a, b = (i - shift) % h, j
                else:
                    a, b = i, (j - shift) % w
                if own > 0 and chart[a, b] == own:
                    t0 = t0 + (p[i, j, 0] - p[a, b, 0]) * shift
                    t1 = t1 + (p[i, j, 1] - p[a, b, 1]) * shift
                    t2 = t2 + (p[i, j, 2] - p[a, b, 2]) * shift
                    count += 1.0
                else:  # numpy's masked sum adds 0 here: a sum of -0 becomes 0, as there
                    t0, t1, t2 = t0 + 0.0, t1 + 0.0, t2 + 0.0
            if count > 0.0:
                out[i, j, 0], out[i, j, 1], out[i, j, 2] = t0 / count, t1 / count, t2 / count
            else:
                out[i, j, 0], out[i, j, 1], out[i, j, 2] = np.nan, np.nan, np.nan


def _distance_to(targets: np.ndarray, atlas: AtlasGeometry) -> np.ndarray:
    """(S, S) float32 each texel's distance in texels to the nearest of ``targets`` (S, S) on its own
    chart (the band wrapping round the back); inf on a chart without one."""
    distance = np.full(targets.shape, np.inf, np.float32)
    reach = int(np.ceil((FILL_NEAR_IOD + 3 * FILL_REACH_IOD) * atlas.layout.face_texels_per_iod))
    for part, wrap in charts(targets, atlas.band_rows):
        found = targets[part]
        if not found.any():
            continue
        h, w = found.shape
        width = min(reach, h - 1, w - 1) if wrap else 0
        padded = pad((~found).astype(np.uint8), width, wrap)
        distance[part] = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[width : width + h, width : width + w]
    return distance


SMALL_HOLE_IOD = 0.2
"""Square root of the area (eye distances) under which a patch the photo does not show, inside what
it does, is filled from around it and not from its mirror image: the alar creases behind the nose's
wings, an eye's or the lips' corners. A sliver's mirror image lands a texel or two beside the
mirrored sliver, on the nose's lit wing or the cheek beside it: a pale crescent on one side of the
nose and a dark one on the other."""


def small_holes(weight: np.ndarray, atlas: AtlasGeometry) -> np.ndarray:
    """(S, S) bool: texels of the mesh in unseen patches (``weight`` under 0.5) smaller than
    SMALL_HOLE_IOD squared."""
    unseen = (atlas.mask & (np.asarray(weight) < 0.5)).astype(np.uint8)
    if not unseen.any():
        return unseen.astype(bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(unseen, connectivity=8)
    limit = (SMALL_HOLE_IOD * atlas.layout.face_texels_per_iod) ** 2
    small = np.zeros(count, bool)
    small[1:] = stats[1:, cv2.CC_STAT_AREA] < limit
    return small[labels]


FILL_SOURCE = (0.5, 0.9)
"""Confidence over which a texel becomes a source of the fill (none below the first value, fully
above the second). The texels at the edge of what the photo shows, kept at part confidence, are
what lies beside hair, a brim or the background (a fringe's shadow, a dark rim): as sources they
defined the fill next to them, a line along the hairline, carried to the other side by symmetry.
They are also the photo seen at a grazing angle (``projection.read_softly``), whose colour moves
with any change of the camera: at (0.25, 0.75) a copy of the scanned head turned 45° got a fill a
little lighter all over (1.09/255 from the original's; 0.88 now)."""


def fill_weight(confidence: np.ndarray) -> np.ndarray:
    """How much each texel's colour counts as a source of the fill (``FILL_SOURCE``), 0..1."""
    lo, hi = FILL_SOURCE
    return smoothstep((np.asarray(confidence, np.float32) - np.float32(lo)) / np.float32(hi - lo))


def robust_std(values: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation (ignores outliers, e.g. edges)."""
    if values.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def subsample(mask: np.ndarray, limit: int) -> np.ndarray:
    """Flat indices of at most ``limit`` texels of ``mask``, evenly spread (deterministic)."""
    index = np.flatnonzero(mask)
    if index.size > limit:
        index = index[:: int(np.ceil(index.size / limit))]
    return index


# -- the back seam for whole-image models (diffusion sees a flat image) --------------------------


def seam_pad_width(size: int, fraction: float) -> int:
    """Columns padded on each side of the seam: a multiple of 8 so latents stay aligned."""
    return int(max(0, round(size * fraction / 8.0)) * 8)


def wrap_pad(image: np.ndarray, band_rows: int, pad: int) -> np.ndarray:
    """(H, W, ...) -> (H, W + 2*pad, ...): band rows wrap around, rows below (caps) repeat their edge."""
    if pad == 0:
        return image.copy()
    widths = [(0, 0), (pad, pad)] + [(0, 0)] * (image.ndim - 2)
    out = np.pad(image, widths, mode="edge")
    band = min(max(band_rows, 0), image.shape[0])
    if band:
        out[:band] = np.pad(image[:band], widths, mode="wrap")
    return out


def wrap_crop(padded: np.ndarray, width: int, band_rows: int, pad: int) -> np.ndarray:
    """Inverse of ``wrap_pad`` for a generated image: crop the core and, in the band, cross-fade each
    seam side with the padded copy of the same columns generated next to the other side.

    At the seam both columns become half core, half the other copy; since the model drew the left pad
    continuous with column 0 and the right pad continuous with column W-1, the two seam columns end up
    equal up to the model's own local variation."""
    core = padded[:, pad : pad + width].astype(np.float32, copy=True)
    if pad == 0:
        return core
    band = min(max(band_rows, 0), padded.shape[0])
    if band == 0:
        return core
    k = np.arange(pad, dtype=np.float32)
    weight = 0.5 * (1.0 - k / pad)  # weight of the other copy, 0.5 at the seam, 0 at pad columns in
    shape = (1, pad) + (1,) * (padded.ndim - 2)
    weight = weight.reshape(shape)
    left_copy = padded[:band, :pad].astype(np.float32)  # columns W-pad .. W-1
    right_copy = padded[:band, pad + width :].astype(np.float32)  # columns 0 .. pad-1
    # column k from the left edge mixes with right_copy[:, k]; column W-1-k with left_copy[:, pad-1-k].
    core[:band, :pad] = (1 - weight) * core[:band, :pad] + weight * right_copy
    right = core[:band, width - pad :]
    core[:band, width - pad :] = (1 - weight[:, ::-1]) * right + weight[:, ::-1] * left_copy
    return core
