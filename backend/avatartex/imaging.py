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

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
"""Rec. 709 channel weights; on sRGB values their weighted sum is luma."""

_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST}
_REMAP_WIDTH = 4096
"""cv2.remap wants maps narrower than 32767: scattered points are laid out as rows of this width."""


def luminance(color: np.ndarray) -> np.ndarray:
    """Rec. 709 weighted sum of the channels (..., 3) -> (...)."""
    return color @ LUMA


def sample_image(image: np.ndarray, coords: np.ndarray, interpolation: str = "linear") -> np.ndarray:
    """Samples of an (H, W[, C]) image at pixel coordinates (..., 2) -> (..., C).

    Pixel centres sit at +0.5 (the module's convention); edges are replicated; NaN coordinates read
    the border (callers mask them). Any number of channels; ``interpolation`` is ``linear``,
    ``cubic`` or ``nearest``. This is the one sampler of photos, atlases and grids in the backend.
    """
    xy = np.asarray(coords, np.float32)
    lead = xy.shape[:-1]
    xy = np.nan_to_num(xy.reshape(-1, 2), nan=-1e4) - 0.5
    n = len(xy)
    rows = max(1, -(-n // _REMAP_WIDTH))
    maps = np.zeros((rows * _REMAP_WIDTH, 2), np.float32)
    maps[:n] = xy
    maps = maps.reshape(rows, _REMAP_WIDTH, 2)
    img = np.asarray(image, np.float32)
    img = img[..., None] if img.ndim == 2 else img
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
