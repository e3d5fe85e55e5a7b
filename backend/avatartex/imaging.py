"""Low-level image operations every other module builds on: sampling, resizing, luminance.

Pixel convention everywhere in the backend: pixel (i, j) covers [j, j+1) x [i, i+1), so its centre is
at (x, y) = (j + 0.5, i + 0.5). OpenCV puts pixel centres at integers; the one place that converts is
``sample_image``. UV convention (mesh texture coordinates): (0, 0) is the bottom-left corner.

This module imports nothing from the package: the atlas, registration, projection, bake and both
engines import it, never the other way round.
"""

from __future__ import annotations

import cv2
import numpy as np
from numba import njit, prange

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
"""Rec. 709 channel weights; on sRGB values their weighted sum is luma."""

_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST}
_REMAP_WIDTH = 4096
"""cv2.remap wants maps narrower than 32767: scattered points are laid out as rows of this width."""


def luminance(color: np.ndarray) -> np.ndarray:
    """Rec. 709 weighted sum of the channels (..., 3) -> (...)."""
    return color @ LUMA


def channel_mean(image: np.ndarray) -> np.ndarray:
    """The mean of an (..., 3) float image's channels, bit for bit ``image.mean(axis=-1)`` (summed
    in order, then divided by three) at a fifteenth of its cost: numpy reduces a short strided axis
    slowly (12 ms for a 700 x 900 photo, several times a request)."""
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float64)  # as numpy's mean of integers
    return (image[..., 0] + image[..., 1] + image[..., 2]) / image.dtype.type(3)


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """(..., 3) float vectors scaled to unit length in place and returned (a zero vector stays zero):
    bit for bit ``v / max(np.linalg.norm(v, axis=-1), 1e-12)``, without numpy's slow reduction along
    a short strided axis (13 ms for a render's normals)."""
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    vectors /= np.maximum(np.sqrt(x * x + y * y + z * z), 1e-12)[..., None]
    return vectors


def unit_range(values: np.ndarray) -> np.ndarray:
    """``values`` as float32 clipped to 0..1 with NaN as 0: ``np.clip(np.nan_to_num(v), 0, 1)`` in
    two passes where that takes six (9 ms on a 1024² atlas, several a request)."""
    v = np.asarray(values, np.float32)
    return np.fmin(np.fmax(v, np.float32(0.0)), np.float32(1.0))


def _as_rows(array: np.ndarray) -> np.ndarray | None:
    """A view of a C-contiguous (..., C) array with one element per row (a void of the row's bytes),
    or None where the array is not laid out so."""
    if array.ndim < 2 or not array.flags.c_contiguous:
        return None
    return array.view(np.dtype((np.void, array.dtype.itemsize * array.shape[-1])))[..., 0]


def take_rows(array: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``array[where]`` for an (..., C) array and a boolean mask or integer index of its leading
    axes, bit for bit: numpy gathers rows of a few channels element by element (14 ms for a 1024²
    atlas's two-channel portrait coordinates under a mask, 5 ms by an index); as one element of
    C x 4 bytes each, 3 and 0.6 ms."""
    array = np.asarray(array)
    rows = _as_rows(array)
    if rows is None:
        return array[where]
    return rows[where].view(array.dtype).reshape(-1, array.shape[-1])


def put_rows(array: np.ndarray, where: np.ndarray, values: np.ndarray) -> None:
    """``array[where] = values`` (rows of an (..., C) array, ``take_rows``'s mask or index), in place
    and bit for bit, at a quarter of numpy's cost; ``values`` (N, C) or one row for all."""
    rows = _as_rows(array)
    values = np.asarray(values)
    if rows is None or values.dtype != array.dtype or values.shape[-1:] != array.shape[-1:]:
        array[where] = values
        return
    rows[where] = _as_rows(np.ascontiguousarray(values.reshape(-1, array.shape[-1])))


def disc(radius: int) -> np.ndarray:
    """A disc structuring element of ``radius`` pixels (uint8, 2 radius + 1 wide) for cv2's
    morphology."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def smoothstep(x: np.ndarray) -> np.ndarray:
    """3t² - 2t³ of ``x`` clipped to 0..1: a ramp from 0 to 1 with flat ends."""
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB 0..1 (..., 3) -> CIELAB (L 0..100), float32."""
    flat = np.ascontiguousarray(np.clip(rgb, 0.0, 1.0).reshape(-1, 1, 3), np.float32)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(np.shape(rgb))


def from_lab(lab: np.ndarray) -> np.ndarray:
    """CIELAB (..., 3) -> sRGB 0..1, float32."""
    flat = np.ascontiguousarray(np.reshape(lab, (-1, 1, 3)), np.float32)
    return np.clip(cv2.cvtColor(flat, cv2.COLOR_Lab2RGB).reshape(np.shape(lab)), 0.0, 1.0)


def sample_image(
    image: np.ndarray, coords: np.ndarray, interpolation: str = "linear", wrap_rows: int = 0
) -> np.ndarray:
    """Samples of an (H, W[, C]) image at pixel coordinates (..., 2) -> (..., C).

    Pixel centres sit at +0.5 (the module's convention); edges are replicated; NaN coordinates read
    the border (callers mask them). Any number of channels; ``interpolation`` is ``linear``,
    ``cubic`` or ``nearest``. This is the one sampler of photos, atlases and grids in the backend.

    ``wrap_rows`` (linear only): in rows ``[0, wrap_rows)`` the columns wrap around (column 0 and
    W-1 are neighbours; a point there is first taken modulo W), as in the head atlas's band; other
    rows replicate their edges.
    """
    xy = np.asarray(coords, np.float32)
    lead = xy.shape[:-1]
    img = np.asarray(image, np.float32)
    img = img[..., None] if img.ndim == 2 else img
    if interpolation == "linear":
        out = np.empty((int(np.prod(lead)), img.shape[2]), np.float32)
        _bilinear_kernel(np.ascontiguousarray(img), np.ascontiguousarray(xy.reshape(-1, 2)), wrap_rows, out)
        return out.reshape(*lead, img.shape[2])
    if wrap_rows:
        raise ValueError("wrap_rows needs linear interpolation")
    xy = np.nan_to_num(xy.reshape(-1, 2), nan=-1e4) - 0.5
    n = len(xy)
    rows = max(1, -(-n // _REMAP_WIDTH))
    maps = np.zeros((rows * _REMAP_WIDTH, 2), np.float32)
    maps[:n] = xy
    maps = maps.reshape(rows, _REMAP_WIDTH, 2)
    flag = _INTERPOLATION[interpolation]
    # cv2.remap takes at most 4 channels at a time.
    planes = [np.ascontiguousarray(img[..., k : k + 4]) for k in range(0, img.shape[2], 4)]
    out = np.concatenate(
        [
            cv2.remap(plane, maps[..., 0], maps[..., 1], flag, borderMode=cv2.BORDER_REPLICATE).reshape(
                rows * _REMAP_WIDTH, -1
            )[:n]
            for plane in planes
        ],
        axis=1,
    )
    return out.reshape(*lead, img.shape[2])


@njit(cache=True, inline="always")
def bilinear_at(image: np.ndarray, x: float, y: float, wrap_rows: int, out: np.ndarray) -> None:
    """``out[:] =`` the bilinear sample of ``image`` (H, W, C) at pixel coordinates (x, y).

    Bit-for-bit what ``cv2.remap`` (INTER_LINEAR, BORDER_REPLICATE) computes for float32 images: the
    coordinate rounded to 1/32 pixel, float32 weights from that fraction; in rows below
    ``wrap_rows`` the columns wrap instead. A compiled helper for kernels that sample per texel
    (the bake).
    """
    h, w, c = image.shape
    fx = np.float32(x)
    fy = np.float32(y)
    if not (np.isfinite(fx) and np.isfinite(fy)):
        fx = np.float32(-1e4)
        fy = np.float32(-1e4)
    elif wrap_rows > 0 and fy < wrap_rows and not (np.float32(0.0) <= fx < np.float32(w)):
        fx = fx % np.float32(w)
    qx = np.int64(np.rint((fx - np.float32(0.5)) * np.float32(32.0)))
    qy = np.int64(np.rint((fy - np.float32(0.5)) * np.float32(32.0)))
    x0 = qx >> 5
    y0 = qy >> 5
    ax = np.float32(qx & 31) * np.float32(1.0 / 32)
    ay = np.float32(qy & 31) * np.float32(1.0 / 32)
    w00 = (np.float32(1.0) - ay) * (np.float32(1.0) - ax)
    w01 = (np.float32(1.0) - ay) * ax
    w10 = ay * (np.float32(1.0) - ax)
    w11 = ay * ax
    r0 = min(max(y0, 0), h - 1)
    r1 = min(max(y0 + 1, 0), h - 1)
    # Columns: clamped, or wrapped in rows below wrap_rows (x0 is -1 .. w-1 there).
    c0 = min(max(x0, 0), w - 1)
    c1 = min(max(x0 + 1, 0), w - 1)
    a0, a1, b0, b1 = c0, c1, c0, c1
    if x0 < 0 or x0 + 1 >= w:
        if 0 <= y0 < wrap_rows:
            a0 = x0 % w
            a1 = (x0 + 1) % w
        if 0 <= y0 + 1 < wrap_rows:
            b0 = x0 % w
            b1 = (x0 + 1) % w
    for k in range(c):
        top = image[r0, a0, k] * w00 + image[r0, a1, k] * w01
        out[k] = top + image[r1, b0, k] * w10 + image[r1, b1, k] * w11


PARALLEL_MIN_SAMPLES = 1 << 16
"""Fewer samples than this are taken on one thread: waking the second core's thread costs about 6 ms
on the busy shared 2-core machine (2,000 samples: 6.4 ms on two threads, 0.3 ms on one; 20,000:
2.5 ms either way; 800,000: 37 ms on two, 44 ms on one; wall medians, ``bench``-style repeats with
other work between calls), and most calls (landmarks, grids, rings of texels) are small."""


@njit(cache=True, parallel=True)
def _bilinear_parallel(image: np.ndarray, xy: np.ndarray, wrap_rows: int, out: np.ndarray) -> None:
    for i in prange(xy.shape[0]):
        bilinear_at(image, xy[i, 0], xy[i, 1], wrap_rows, out[i])


@njit(cache=True)
def _bilinear_serial(image: np.ndarray, xy: np.ndarray, wrap_rows: int, out: np.ndarray) -> None:
    for i in range(xy.shape[0]):
        bilinear_at(image, xy[i, 0], xy[i, 1], wrap_rows, out[i])


def _bilinear_kernel(image: np.ndarray, xy: np.ndarray, wrap_rows: int, out: np.ndarray) -> None:
    """``bilinear_at`` at every point of ``xy``, on both cores when there are enough of them."""
    kernel = _bilinear_parallel if len(xy) >= PARALLEL_MIN_SAMPLES else _bilinear_serial
    kernel(image, xy, wrap_rows, out)


def warm_up() -> None:
    """Load the compiled sampler (numba's on-disk cache) ahead of the first request."""
    image, out = np.zeros((2, 2, 3), np.float32), np.empty((1, 3), np.float32)
    for kernel in (_bilinear_serial, _bilinear_parallel):
        kernel(image, np.zeros((1, 2), np.float32), 0, out)


def box_around(points: np.ndarray, reach: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the pixels of an image of ``shape`` (H, W, ...) within ``reach`` of the
    points (N, 2; NaN ones ignored, at least one finite), clipped to the image and never empty; for
    filtering only the part of a large photo that is read."""
    h, w = shape[:2]
    lo, hi = np.nanmin(points, axis=0), np.nanmax(points, axis=0)
    x0 = min(max(int(np.floor(lo[0])) - reach, 0), w - 1)
    y0 = min(max(int(np.floor(lo[1])) - reach, 0), h - 1)
    x1 = min(max(int(np.ceil(hi[0])) + reach, x0 + 1), w)
    y1 = min(max(int(np.ceil(hi[1])) + reach, y0 + 1), h)
    return x0, y0, x1, y1


def uv_to_pixels(uv: np.ndarray, height: int, width: int) -> np.ndarray:
    """Mesh UVs ((0, 0) bottom-left) -> pixel coordinates (x, y) of an image of that size."""
    uv = np.asarray(uv, np.float64)
    return np.stack([uv[..., 0] * width, (1.0 - uv[..., 1]) * height], axis=-1)


def sample_uv(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of UVs (..., 2) in an (H, W[, C]) texture, clamped at the edges."""
    h, w = texture.shape[:2]
    out = sample_image(texture, uv_to_pixels(uv, h, w))
    return out if np.ndim(texture) == 3 else out[..., 0]


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an (H, W[, C]) float image: area-averaging down, bicubic up (clipped to the input range)."""
    if image.shape[:2] == (height, width):
        return image.astype(np.float32, copy=True)
    down = height * width < image.shape[0] * image.shape[1]
    out = cv2.resize(
        image.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA if down else cv2.INTER_CUBIC
    )
    if not down:
        out = np.clip(out, float(image.min()), float(image.max()))
    return out.reshape((height, width) + image.shape[2:])
