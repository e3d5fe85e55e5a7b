"""Image operations on the head atlas shared by the neural stages (numpy + OpenCV, no torch).

The top ``band_rows`` rows of the atlas are a cylinder cut open at the back of the head: column 0 and
column S-1 are neighbours. A diffusion model sees a flat image, so the band is padded circularly
before inference and the two copies of the seam region are cross-faded after it, which makes the
output continuous across the seam.
"""

from __future__ import annotations

import numpy as np


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


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an (H, W[, C]) float image: area-averaging down, bicubic up (clipped to the input range)."""
    import cv2

    if image.shape[:2] == (height, width):
        return image.astype(np.float32, copy=True)
    down = height * width < image.shape[0] * image.shape[1]
    out = cv2.resize(
        image.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA if down else cv2.INTER_CUBIC
    )
    if not down:
        out = np.clip(out, float(image.min()), float(image.max()))
    return out.reshape((height, width) + image.shape[2:])


def sample_portrait(portrait: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The portrait's colour at every atlas texel (bilinear) and whether the texel sees the portrait.

    ``coords`` are portrait pixel positions with pixel centres at +0.5 (the camera convention), NaN
    where the texel is unseen."""
    import cv2

    valid = np.isfinite(coords).all(axis=-1)
    xy = np.where(valid[..., None], coords, -10.0).astype(np.float32) - 0.5
    out = cv2.remap(
        portrait.astype(np.float32),
        xy[..., 0],
        xy[..., 1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    out[~valid] = 0.0
    return out, valid


def working_shape(size: int, pad: int, work_height: int) -> tuple[int, int]:
    """(height, width) the padded atlas (size x size+2*pad) is resampled to for a model of
    ``work_height`` px; both multiples of 64 so any VAE/UNet down-sampling divides them."""
    scale = work_height / size
    height = max(64, int(round(size * scale / 64.0)) * 64)
    width = max(64, int(round((size + 2 * pad) * scale / 64.0)) * 64)
    return height, width
