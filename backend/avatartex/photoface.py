"""The photographed face's own shape, as the face detector reads it, for de-lighting on another head.

A photo's shading belongs to the face photographed: its nose, its sockets, and its sides turning
away from the camera towards its outline. Where the mesh is that face (a scan of the person), the
mesh's own normals shade it best. Where the mesh is another head (a sculpt, a stylised character,
another person's scan), the mesh's shading is the wrong one: where the sculpt's cheeks face the
light but the photographed face's turned from it, the shadow stayed in the albedo
(``bench/delight_cross.py``: one cheek 1.4 L* darker than the other, a median over other heads).

mediapipe's face mesh gives each of its 468 points a relative depth (``Face.depth``, pixels, under a
weak-perspective camera). Made a smooth depth map over the photo (a quadratic through the points,
which carries the face's curvature to its border, plus what the points add to it, interpolated and
smoothed), its gradient is the photographed face's surface normal at every pixel of the face:
``photo_face_normals`` returns it at each atlas texel's portrait position, in the head frame
(through the registered camera's rotation), with how far the face mesh covers the texel (fading out
at the face mesh's border, where the interpolation ends). The classic de-lighting fits its light on
them as far as they explain the photo better than the mesh's own (``latent.FACE_EXPLAINS``).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.interpolate import LinearNDInterpolator

from .camera import Camera
from .imaging import sample_image, smoothstep

GRID_PX_PER_IOD = 24.0
"""The depth map's grid, pixels per eye distance: the face mesh's points lie about a tenth of an eye
distance apart, and the map is smoothed coarser still."""
SMOOTH_IOD = 0.08
"""Gaussian sigma (eye distances) of the depth map's smoothing: the face mesh's triangles' facets
gone, the nose, cheeks and jaw kept."""
BORDER_FADE_IOD = (0.0, 0.04)
"""Distance inside the face mesh's border over which its normals fade in (none on the border)."""


def _quadratic_terms(x: np.ndarray, y: np.ndarray, centre: np.ndarray, scale: float) -> np.ndarray:
    """(..., 6) the terms of a quadratic in x and y about ``centre``, in units of ``scale``."""
    u, v = (x - centre[0]) / scale, (y - centre[1]) / scale
    return np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=-1)


def photo_face_normals(
    landmarks: np.ndarray,
    depth: np.ndarray | None,
    interocular: float,
    portrait_coords: np.ndarray,
    camera: Camera,
    head_axes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(S, S, 3) normals of the photographed face at each texel's portrait position
    ``portrait_coords`` (S, S, 2, NaN where unseen) (unit on the depth map's grid, read bilinearly
    between its points), in the head frame (rows of ``head_axes``: the
    head frame's axes in mesh space), and (S, S) how far the face mesh covers each texel (0..1);
    None without depths."""
    if depth is None or not np.all(np.isfinite(depth)) or interocular <= 0:
        return None
    points = np.asarray(landmarks, np.float64)
    z = np.asarray(depth, np.float64)
    k = GRID_PX_PER_IOD / interocular
    x0, y0 = points.min(axis=0) - 2.0 / k
    x1, y1 = points.max(axis=0) + 2.0 / k
    w, h = int(np.ceil((x1 - x0) * k)) + 1, int(np.ceil((y1 - y0) * k)) + 1
    gx, gy = np.meshgrid(x0 + np.arange(w) / k, y0 + np.arange(h) / k)
    # A quadratic through the points carries the face's curvature up to its border and beyond (the
    # chin turning under, the forehead back); what the points add to it is interpolated inside.
    centre = points.mean(axis=0)
    design = _quadratic_terms(points[:, 0], points[:, 1], centre, interocular)
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    base = _quadratic_terms(gx, gy, centre, interocular) @ coef
    surface = LinearNDInterpolator(points, z - design @ coef)(gx, gy)
    inside = np.isfinite(surface)
    if inside.sum() < 16:
        return None
    # The rest smoothed as a normalised convolution (the border does not pull it towards zero).
    sigma = SMOOTH_IOD * GRID_PX_PER_IOD
    weight = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), sigma)
    filled = cv2.GaussianBlur(np.where(inside, surface, 0.0).astype(np.float32), (0, 0), sigma)
    smooth = base + filled / np.maximum(weight, 1e-6)
    # Depth in pixels over a grid in pixels / k: the slopes in pixel units.
    dzdx = np.gradient(smooth, axis=1) * k
    dzdy = np.gradient(smooth, axis=0) * k
    # Camera frame (x right, y down, z away from the camera): the normal facing the camera.
    normal = np.stack([dzdx, dzdy, -np.ones_like(dzdx)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    # Into the mesh (R.T n, row-wise) and then the head frame, on the grid (a few thousand points)
    # rather than at every texel.
    to_head = np.asarray(camera.R, np.float64) @ np.asarray(head_axes, np.float64).T
    normal = normal @ to_head
    border = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3) / GRID_PX_PER_IOD
    lo, hi = BORDER_FADE_IOD
    cover = (smoothstep((border - lo) / (hi - lo)) * inside).astype(np.float32)
    stack = np.concatenate([normal.astype(np.float32), cover[..., None]], axis=-1)

    s = portrait_coords.shape[:2]
    coords = portrait_coords.reshape(-1, 2)
    # Only the texels whose portrait pixel lies in the face mesh's box (NaN compares false): the
    # rest of the head is not covered.
    seen = np.flatnonzero(
        (coords[:, 0] > x0) & (coords[:, 0] < x1) & (coords[:, 1] > y0) & (coords[:, 1] < y1)
    )
    grid_xy = (coords[seen] - np.array([x0, y0], np.float32)) * np.float32(k) + np.float32(0.5)
    sampled = sample_image(stack, grid_xy.astype(np.float32))
    out = np.zeros((coords.shape[0], 4), np.float32)
    out[seen] = sampled
    out = out.reshape(s + (4,))
    # (Bilinear reads of unit normals are a little shorter between grid points: the de-lighting
    # normalises what it turns.)
    return out[..., :3], np.clip(out[..., 3], 0.0, 1.0)
