"""Quality measures of DESIGN.md §5: PSNR/SSIM on seen texels, seam error, sampling helpers."""

from __future__ import annotations

import numpy as np

from .imaging import sample_uv


def gain_corrected(produced: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``produced`` times the per-channel gain that best matches ``reference`` on ``mask`` (least squares).

    The pipeline cannot know the absolute exposure of the light that lit the portrait; a global colour
    gain is the one degree of freedom the comparison forgives.
    """
    p = produced[mask].astype(np.float64)
    r = reference[mask].astype(np.float64)
    gain = (p * r).sum(axis=0) / np.maximum((p * p).sum(axis=0), 1e-12)
    return np.clip(produced * gain, 0, 1).astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two 0..1 images over ``mask``."""
    mse = float(np.mean((a[mask].astype(np.float64) - b[mask].astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean structural similarity of two 0..1 RGB images over ``mask`` (scikit-image's SSIM map)."""
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(
        a,
        b,
        channel_axis=2,
        data_range=1.0,
        full=True,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    return float(full.mean(axis=2)[mask].mean())


def seam_edges(
    positions: np.ndarray, triangles: np.ndarray, uvs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The UV seams: pairs of triangle edges that share a surface edge but not their UVs.

    Returns ``(uv_a, uv_b)``, each (E, 2, 2): the UV endpoints of the edge on either side, ordered so
    that endpoint k is the same surface point on both sides.
    """
    _, weld = np.unique(np.round(positions.astype(np.float64), 6), axis=0, return_inverse=True)
    weld = weld.reshape(-1)[triangles]
    local = np.array([[0, 1], [1, 2], [2, 0]])
    ends = weld[:, local]  # (T, 3, 2) welded vertex ids of each edge
    key = np.sort(ends, axis=2).reshape(-1, 2)
    tri = np.repeat(np.arange(len(triangles)), 3)
    edge = np.tile(np.arange(3), len(triangles))
    order = np.lexsort((key[:, 1], key[:, 0]))
    key, tri, edge = key[order], tri[order], edge[order]
    same = (key[1:] == key[:-1]).all(axis=1)
    i = np.flatnonzero(same)
    ta, ea, tb, eb = tri[i], edge[i], tri[i + 1], edge[i + 1]
    uv_a = uvs[ta[:, None], local[ea]]
    uv_b = uvs[tb[:, None], local[eb]]
    # Edge b may run the other way round: flip where its first end is edge a's second.
    flip = weld[tb, local[eb][:, 0]] != weld[ta, local[ea][:, 0]]
    uv_b = np.where(flip[:, None, None], uv_b[:, ::-1], uv_b)
    differs = np.abs(uv_a - uv_b).max(axis=(1, 2)) > 1e-5
    # An edge collapsed to a point in UV space on one side (scans have such fans) is not a seam a
    # viewer can see: that side shows one texel along the whole edge, whatever the texture.
    collapsed = (
        np.minimum(
            np.linalg.norm(uv_a[:, 1] - uv_a[:, 0], axis=1), np.linalg.norm(uv_b[:, 1] - uv_b[:, 0], axis=1)
        )
        < 1e-4
    )
    keep = differs & ~collapsed
    return uv_a[keep], uv_b[keep]


def seam_error(
    texture: np.ndarray,
    positions: np.ndarray,
    triangles: np.ndarray,
    uvs: np.ndarray,
    samples_per_edge: int = 8,
) -> float:
    """Mean colour jump across UV seams, 0-255 scale, sampled along each seam on both sides."""
    uv_a, uv_b = seam_edges(positions, triangles, uvs)
    if len(uv_a) == 0:
        return 0.0
    t = (np.arange(samples_per_edge) + 0.5) / samples_per_edge
    pa = uv_a[:, :1] * (1 - t)[None, :, None] + uv_a[:, 1:] * t[None, :, None]
    pb = uv_b[:, :1] * (1 - t)[None, :, None] + uv_b[:, 1:] * t[None, :, None]
    ca = sample_uv(texture, pa.reshape(-1, 2))
    cb = sample_uv(texture, pb.reshape(-1, 2))
    scale = 255.0 if texture.dtype != np.uint8 else 1.0
    return float(np.abs(ca - cb).mean() * scale)
