"""CPU triangle rasterisation: triangle-id, barycentric and depth buffers, in screen space or UV space.

Everything 2D the backend does on a mesh goes through here: rendering the head to find landmarks,
finding each texel's surface point for projection and baking, and padding UV islands.

Conventions: pixel ``(row r, col c)`` has its centre at ``x = c + 0.5, y = r + 0.5`` (x right, y
down), as in :mod:`avatartex.camera`. UV ``(0, 0)`` is the bottom-left corner of a texture, so texel
``(r, c)`` of a ``size``-texel texture sits at ``u = (c + 0.5) / size, v = 1 - (r + 0.5) / size``.

Coverage follows a tie-breaking rule equivalent to the usual top-left rule: a pixel centre exactly on
an edge belongs to the triangle that contains it after an infinitesimal shift to the right (and then
down), so triangles sharing an edge or a vertex cover every pixel exactly once. The shared edge's
function is evaluated with its endpoints in a canonical order, so both triangles see bit-identical
values and the rule holds in floating point, not just in exact arithmetic.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .camera import Camera

_MODE_NO_DEPTH = 0
_MODE_LINEAR = 1
_MODE_PERSPECTIVE = 2


@njit(cache=True, inline="always")
def _edge(ax: float, ay: float, bx: float, by: float, px: float, py: float) -> tuple[float, float]:
    """Signed edge function of (a -> b) at p, evaluated in canonical endpoint order.

    Returns the value for the orientation a -> b and the tie rule's verdict for a point exactly on
    the edge (+1 owned, -1 not), also for this orientation.
    """
    sign = 1.0
    # Canonical order (lexicographic on x, then y) makes the two triangles of a shared edge compute
    # the very same floating-point number, only with opposite signs.
    if bx < ax or (bx == ax and by < ay):
        ax, bx = bx, ax
        ay, by = by, ay
        sign = -1.0
    dx = bx - ax
    dy = by - ay
    e = dx * (py - ay) - dy * (px - ax)
    # Gradient of e along the tie direction (1, eps): -dy, then dx when the edge is horizontal.
    g = -dy if dy != 0.0 else dx
    return sign * e, (1.0 if sign * g > 0.0 else -1.0)


@njit(cache=True, parallel=True)
def _raster_kernel(
    points: np.ndarray,
    depth: np.ndarray,
    mode: int,
    height: int,
    width: int,
    n_bands: int,
    tri_id: np.ndarray,
    bary: np.ndarray,
    zbuf: np.ndarray,
) -> None:
    """Fill the buffers; rows are split into bands so threads never write the same pixel."""
    n_tri = points.shape[0]
    # Per-triangle pixel bounding boxes (rows/cols of pixel centres inside), -1 rows = skip.
    y0s = np.full(n_tri, -1, np.int64)
    y1s = np.full(n_tri, -2, np.int64)
    x0s = np.zeros(n_tri, np.int64)
    x1s = np.zeros(n_tri, np.int64)
    for t in prange(n_tri):
        ok = True
        for k in range(3):
            if not (np.isfinite(points[t, k, 0]) and np.isfinite(points[t, k, 1])):
                ok = False
            if mode != _MODE_NO_DEPTH and not np.isfinite(depth[t, k]):
                ok = False
            if mode == _MODE_PERSPECTIVE and not depth[t, k] > 0.0:
                ok = False
        if not ok:
            continue
        xmin = min(points[t, 0, 0], points[t, 1, 0], points[t, 2, 0])
        xmax = max(points[t, 0, 0], points[t, 1, 0], points[t, 2, 0])
        ymin = min(points[t, 0, 1], points[t, 1, 1], points[t, 2, 1])
        ymax = max(points[t, 0, 1], points[t, 1, 1], points[t, 2, 1])
        # Pixel c is a candidate when xmin <= c + 0.5 <= xmax; clip before converting to int so huge
        # coordinates (triangles near the camera plane) cannot overflow.
        cx0 = max(np.ceil(xmin - 0.5), 0.0)
        cx1 = min(np.floor(xmax - 0.5), width - 1.0)
        cy0 = max(np.ceil(ymin - 0.5), 0.0)
        cy1 = min(np.floor(ymax - 0.5), height - 1.0)
        if cx0 > cx1 or cy0 > cy1:
            continue
        x0s[t] = np.int64(cx0)
        x1s[t] = np.int64(cx1)
        y0s[t] = np.int64(cy0)
        y1s[t] = np.int64(cy1)

    for band in prange(n_bands):
        r_lo = band * height // n_bands
        r_hi = (band + 1) * height // n_bands - 1
        for t in range(n_tri):  # in order, so "later wins" without depth is deterministic
            if y1s[t] < r_lo or y0s[t] > r_hi:
                continue
            ax = points[t, 0, 0]
            ay = points[t, 0, 1]
            bx = points[t, 1, 0]
            by = points[t, 1, 1]
            cx = points[t, 2, 0]
            cy = points[t, 2, 1]
            area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
            if not (area > 0.0 or area < 0.0):  # zero area or NaN
                continue
            orient = 1.0 if area > 0.0 else -1.0
            if mode != _MODE_NO_DEPTH:
                z0 = depth[t, 0]
                z1 = depth[t, 1]
                z2 = depth[t, 2]
            else:
                z0 = 0.0
                z1 = 0.0
                z2 = 0.0
            for r in range(max(y0s[t], r_lo), min(y1s[t], r_hi) + 1):
                py = r + 0.5
                for c in range(x0s[t], x1s[t] + 1):
                    px = c + 0.5
                    # w0 is opposite vertex 0 (edge b -> c), and so on.
                    e, tie = _edge(bx, by, cx, cy, px, py)
                    w0 = orient * e
                    if w0 < 0.0 or (w0 == 0.0 and orient * tie < 0.0):
                        continue
                    e, tie = _edge(cx, cy, ax, ay, px, py)
                    w1 = orient * e
                    if w1 < 0.0 or (w1 == 0.0 and orient * tie < 0.0):
                        continue
                    e, tie = _edge(ax, ay, bx, by, px, py)
                    w2 = orient * e
                    if w2 < 0.0 or (w2 == 0.0 and orient * tie < 0.0):
                        continue
                    s = w0 + w1 + w2
                    if not s > 0.0:
                        continue
                    b0 = w0 / s
                    b1 = w1 / s
                    b2 = w2 / s
                    if mode == _MODE_PERSPECTIVE:
                        # 1/z is linear in screen space; corrected weights are (b_i / z_i) * z.
                        q0 = b0 / z0
                        q1 = b1 / z1
                        q2 = b2 / z2
                        z = 1.0 / (q0 + q1 + q2)
                        b0 = q0 * z
                        b1 = q1 * z
                        b2 = q2 * z
                    elif mode == _MODE_LINEAR:
                        z = b0 * z0 + b1 * z1 + b2 * z2
                    else:
                        z = 0.0
                    if mode != _MODE_NO_DEPTH and not z < zbuf[r, c]:
                        continue
                    zbuf[r, c] = z
                    tri_id[r, c] = t
                    bary[r, c, 0] = b0
                    bary[r, c, 1] = b1
                    bary[r, c, 2] = b2


def _rasterize(
    points: np.ndarray, depth: np.ndarray | None, mode: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    points = np.ascontiguousarray(points, np.float64).reshape(-1, 3, 2)
    if depth is None:
        depth_arr = np.zeros((points.shape[0], 3), np.float64)
    else:
        depth_arr = np.ascontiguousarray(depth, np.float64).reshape(-1, 3)
        if depth_arr.shape[0] != points.shape[0]:
            raise ValueError(f"depth has {depth_arr.shape[0]} triangles, points {points.shape[0]}")
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    tri_id = np.full((height, width), -1, np.int32)
    bary = np.zeros((height, width, 3), np.float32)
    zbuf = np.full((height, width), np.inf, np.float32)
    if points.shape[0]:
        # A few bands per thread balance the load when the covered area is uneven.
        n_bands = min(height, 8 * numba.get_num_threads())
        _raster_kernel(points, depth_arr, mode, height, width, n_bands, tri_id, bary, zbuf)
    if mode == _MODE_NO_DEPTH:
        zbuf[tri_id >= 0] = 0.0
    return tri_id, bary, zbuf


def rasterize_triangles(
    points: np.ndarray, depth: np.ndarray | None, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise 2D triangles given in pixel coordinates.

    Args:
        points: (T, 3, 2) corner positions in pixels (x right, y down, pixel centres at i + 0.5).
        depth: (T, 3) per-corner depth, interpolated linearly in screen space; the smallest depth
            wins. ``None``: no depth test, a later triangle overwrites an earlier one.
        height, width: image size in pixels.

    Returns:
        ``tri_id`` (H, W) int32 triangle index, -1 where empty; ``bary`` (H, W, 3) float32
        screen-space barycentrics of each pixel centre; ``zbuf`` (H, W) float32 depth, +inf where
        empty (0 where covered when ``depth`` is None).

    Zero-area and non-finite triangles are skipped. Cost is linear in triangles plus the pixels of
    their clipped bounding boxes.
    """
    return _rasterize(points, depth, _MODE_NO_DEPTH if depth is None else _MODE_LINEAR, height, width)


def rasterize_uv(uvs: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise triangles in UV space into a ``size`` x ``size`` texture.

    Args:
        uvs: (T, 3, 2) per-corner UVs, (0, 0) bottom-left, (1, 1) top-right.
        size: texture edge length in texels.

    Returns:
        ``tri_id`` (size, size) int32, -1 where no triangle covers the texel centre, and ``bary``
        (size, size, 3) float32 barycentrics. Where UV islands overlap, the later triangle wins.
    """
    uvs = np.asarray(uvs, np.float64).reshape(-1, 3, 2)
    points = np.empty_like(uvs)
    points[..., 0] = uvs[..., 0] * size
    points[..., 1] = (1.0 - uvs[..., 1]) * size
    tri_id, bary, _ = _rasterize(points, None, _MODE_NO_DEPTH, size, size)
    return tri_id, bary


NEAR_SHARE = 1e-4
"""The near plane, as a share of the farthest corner's depth: a plane at an absolute 1 mm (as it
was) lay behind a head modelled in kilometres (0.0002 units across, its camera 0.0008 away), whose
preview and every render came out empty or cut."""


def rasterize_camera(
    positions: np.ndarray, triangles: np.ndarray, camera: Camera, near: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a mesh's triangle-id, barycentric and depth buffers through a pinhole camera.

    Args:
        positions: (V, 3) world-space vertex positions.
        triangles: (T, 3) vertex indices.
        camera: the camera; the image is ``camera.height`` x ``camera.width``.
        near: triangles with any corner at camera depth ``z <= near`` are skipped (no clipping:
            meshes are framed whole, so a triangle crossing the camera plane is a framing error);
            ``None``: ``NEAR_SHARE`` of the farthest corner's depth, whatever the mesh's unit.

    Returns:
        ``tri_id`` (H, W) int32, -1 where empty; ``bary`` (H, W, 3) float32 perspective-correct
        barycentrics (they interpolate world-space attributes correctly); ``depth`` (H, W) float32
        camera-space z of the visible surface, +inf where empty. Back faces are kept; the z-buffer
        decides what is visible.
    """
    positions = np.asarray(positions, np.float64).reshape(-1, 3)
    triangles = np.asarray(triangles, np.int64).reshape(-1, 3)
    pix, z = camera.project(positions)
    points = pix[triangles]  # (T, 3, 2)
    depth = z[triangles]  # (T, 3)
    if near is None:
        farthest = float(np.max(depth, initial=0.0, where=np.isfinite(depth)))
        near = NEAR_SHARE * farthest if farthest > 0 else 0.0
    behind = (depth <= near).any(axis=1)
    points[behind] = np.nan  # the kernel skips non-finite triangles
    return _rasterize(points, depth, _MODE_PERSPECTIVE, camera.height, camera.width)


@njit(cache=True, parallel=True)
def _interpolate_kernel(
    corner_values: np.ndarray, corner_index: np.ndarray, tri_id: np.ndarray, bary: np.ndarray, out: np.ndarray
) -> None:
    """out[r, c] = sum_k bary[r, c, k] * corner_values[corner_index[t, k]] with t = tri_id[r, c]."""
    height, width = tri_id.shape
    n_ch = corner_values.shape[1]
    for r in prange(height):
        for c in range(width):
            t = tri_id[r, c]
            if t < 0:
                continue
            i0 = corner_index[t, 0]
            i1 = corner_index[t, 1]
            i2 = corner_index[t, 2]
            b0 = np.float64(bary[r, c, 0])
            b1 = np.float64(bary[r, c, 1])
            b2 = np.float64(bary[r, c, 2])
            for ch in range(n_ch):
                out[r, c, ch] = (
                    b0 * corner_values[i0, ch] + b1 * corner_values[i1, ch] + b2 * corner_values[i2, ch]
                )


def interpolate(
    values: np.ndarray, triangles: np.ndarray | None, tri_id: np.ndarray, bary: np.ndarray
) -> np.ndarray:
    """Interpolate an attribute over the pixels of a rasterisation.

    Args:
        values: (V, C) per-vertex attribute (needs ``triangles``) or (T, 3, C) per-corner attribute
            (``triangles`` ignored, may be None). A (V,) array is read as C = 1.
        triangles: (T, 3) vertex indices, or None for per-corner values.
        tri_id, bary: buffers from one of the ``rasterize_*`` functions.

    Returns:
        (H, W, C) float32, zeros where ``tri_id == -1``.
    """
    values = np.asarray(values)
    tri_id = np.ascontiguousarray(tri_id, np.int32)
    bary = np.ascontiguousarray(bary, np.float32)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim == 3:
        n_tri = values.shape[0]
        corner_values = np.ascontiguousarray(values.reshape(n_tri * 3, values.shape[2]), np.float64)
        corner_index = np.arange(n_tri * 3, dtype=np.int64).reshape(n_tri, 3)
    elif values.ndim == 2:
        if triangles is None:
            raise ValueError("per-vertex values (V, C) need triangles")
        corner_values = np.ascontiguousarray(values, np.float64)
        corner_index = np.ascontiguousarray(triangles, np.int64).reshape(-1, 3)
        n_tri = corner_index.shape[0]
    else:
        raise ValueError(f"values must be (V, C) or (T, 3, C), got shape {values.shape}")
    if tri_id.size and tri_id.max() >= n_tri:
        raise ValueError(f"tri_id refers to triangle {tri_id.max()} but only {n_tri} are given")
    out = np.zeros(tri_id.shape + (corner_values.shape[1],), np.float32)
    _interpolate_kernel(corner_values, corner_index, tri_id, bary, out)
    return out


def padding_index(mask: np.ndarray, pixels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where padding by ``pixels`` writes and reads: (targets, sources) flat indices and the grown mask.

    Every uncovered texel within Euclidean distance ``pixels`` of a covered one reads its nearest
    covered texel. Depends on the mask alone, so callers that pad many images over one mask (each
    request over the same UV layout) compute it once.
    """
    from scipy.ndimage import distance_transform_edt

    mask = np.asarray(mask, bool)
    if pixels <= 0 or mask.all() or not mask.any():
        empty = np.zeros(0, np.int64)
        return empty, empty, mask.copy()
    dist, (rows, cols) = distance_transform_edt(~mask, return_indices=True)
    grown = dist <= pixels
    fill = grown & ~mask
    targets = np.flatnonzero(fill)
    sources = (rows * mask.shape[1] + cols).ravel()[targets]
    return targets, sources, grown


def dilate(
    image: np.ndarray,
    mask: np.ndarray,
    pixels: int,
    index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pad covered regions outward so texture filtering never reaches the empty background.

    Every uncovered texel within Euclidean distance ``pixels`` of a covered texel takes the value of
    its nearest covered texel (UV island padding against mip-map bleeding).

    Args:
        image: (H, W, C) or (H, W) image.
        mask: (H, W) bool, True where the image is valid.
        pixels: padding width in texels (0 leaves the image as it is).
        index: ``padding_index(mask, pixels)`` when the caller keeps it; computed when None.

    Returns:
        The padded image (same dtype) and the grown mask; the inputs are not modified.
    """
    image = np.asarray(image)
    mask = np.asarray(mask, bool)
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} sizes differ")
    targets, sources, grown = padding_index(mask, pixels) if index is None else index
    out = image.copy()
    flat = out.reshape(mask.size, *image.shape[2:])
    flat[targets] = image.reshape(mask.size, *image.shape[2:])[sources]
    return out, grown


def warm_up() -> None:
    """Load the compiled kernels (numba's on-disk cache) ahead of the first request."""
    tri_id, bary = rasterize_uv(np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]]), 4)
    interpolate(np.zeros((3, 2)), np.array([[0, 1, 2]]), tri_id, bary)


def _bench() -> None:
    """Time UV rasterisation of a ~100k-triangle sphere at 2048^2 (``python -m avatartex.raster``)."""
    import time

    import trimesh

    sphere = trimesh.creation.uv_sphere(count=[160, 160])  # ~100k faces
    p = sphere.vertices
    uv = np.stack(
        [0.5 + np.arctan2(p[:, 0], p[:, 2]) / (2 * np.pi), 0.5 + np.arcsin(np.clip(p[:, 1], -1, 1)) / np.pi],
        axis=1,
    )
    uvs = uv[sphere.faces]
    # Triangles across the u = 0/1 seam would span the whole texture; move them past u = 1 instead.
    wrap = uvs[..., 0].max(axis=1) - uvs[..., 0].min(axis=1) > 0.5
    uvs[wrap, :, 0] = np.where(uvs[wrap, :, 0] < 0.5, uvs[wrap, :, 0] + 1.0, uvs[wrap, :, 0])
    print(f"{len(sphere.faces)} triangles, 2048x2048, {numba.get_num_threads()} threads")
    rasterize_uv(uvs, 64)  # compile / load cache
    for _ in range(3):
        t0 = time.perf_counter()
        tri_id, bary = rasterize_uv(uvs, 2048)
        t1 = time.perf_counter()
        interpolate(uvs, None, tri_id, bary)
        t2 = time.perf_counter()
        print(
            f"rasterize_uv {t1 - t0:.3f} s, interpolate {t2 - t1:.3f} s, coverage {(tri_id >= 0).mean():.3f}"
        )


if __name__ == "__main__":
    _bench()
