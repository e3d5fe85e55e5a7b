"""Bake the atlas into the mesh's own UV map, with island padding.

Each texel of the user's UV map belongs to a triangle at some barycentric position; the same
barycentrics over that triangle's atlas corners give its atlas coordinate. Both sides of a UV seam
are the same surface point and so read the same atlas colour: the texture is seam-free by
construction. Islands are then padded outward so mip-maps and bilinear filtering never pull in the
background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import raster
from .atlas import AtlasGeometry


@dataclass
class UVSurface:
    """The surface point behind every texel of the user's UV map, at one texture size."""

    tri_id: np.ndarray
    """(N, N) int32 triangle of each texel, -1 outside every island."""
    bary: np.ndarray
    """(N, N, 3) float32 barycentrics."""
    positions: np.ndarray
    """(M, 3) mesh-space surface points of the M covered texels (row-major order of ``mask``)."""
    normals: np.ndarray
    """(M, 3) their normals, mesh space."""

    @property
    def mask(self) -> np.ndarray:
        return self.tri_id >= 0


def _cached(owner, key: str, make):
    """A value derived from ``owner``'s fixed arrays, kept on it (per mesh and size, across requests)."""
    cache = owner.__dict__.setdefault("_cache", {})
    if key not in cache:
        cache[key] = make()
    return cache[key]


def uv_surface(
    positions: np.ndarray, triangles: np.ndarray, normals: np.ndarray, uvs: np.ndarray, size: int
) -> UVSurface:
    """Rasterise the UV map at ``size`` and interpolate the surface behind each covered texel."""
    tri_id, bary = raster.rasterize_uv(uvs, size)
    hit = tri_id >= 0
    both = raster.interpolate(np.concatenate([positions, normals], axis=1), triangles, tri_id, bary)[hit]
    return UVSurface(tri_id, bary, both[:, :3], both[:, 3:])


def atlas_coords(geometry: AtlasGeometry, surface: UVSurface) -> np.ndarray:
    """(M, 2) atlas pixel coordinates of the covered UV texels."""
    return raster.interpolate(geometry.triangle_xy, None, surface.tri_id, surface.bary)[surface.mask]


def hidden_in_atlas(
    geometry: AtlasGeometry, surface: UVSurface, xy: np.ndarray, tolerance: float = 0.15
) -> np.ndarray:
    """(M,) covered UV texels whose surface point is not the one the atlas shows at its coordinate.

    The atlas keeps one surface per direction from the head's centre; ``tolerance`` is in eye
    distances.
    """
    s = geometry.size
    ix = np.clip(np.floor(xy[:, 0]).astype(np.int64) % s, 0, s - 1)
    iy = np.clip(np.floor(xy[:, 1]).astype(np.int64), 0, s - 1)
    shown = geometry.positions[iy, ix]
    distance = np.linalg.norm(shown - surface.positions, axis=1) / geometry.frame.scale
    return (distance > tolerance) | ~geometry.mask[iy, ix]


def surface_in_atlas(geometry: AtlasGeometry, surface: UVSurface) -> tuple[np.ndarray, np.ndarray]:
    """``atlas_coords`` and ``hidden_in_atlas`` of a UV surface, computed once per mesh and sizes."""

    def make():
        xy = atlas_coords(geometry, surface)
        return xy, hidden_in_atlas(geometry, surface, xy)

    return _cached(surface, f"atlas{geometry.size}", make)


def bake(
    geometry: AtlasGeometry,
    atlas_color: np.ndarray,
    surface: UVSurface,
    detail: np.ndarray | None = None,
    padding: int | None = None,
    background: tuple[float, float, float] = (0.5, 0.5, 0.5),
) -> np.ndarray:
    """The (N, N, 3) float32 texture in the mesh's UV map.

    ``detail`` (M, 3), optional, is added to the covered texels after sampling the atlas: fine
    portrait detail at the texture's own resolution, which the atlas may be too coarse to hold.
    ``padding`` defaults to 1/128 of the size (8 texels at 1024).
    """
    size = surface.tri_id.shape[0]
    hit = surface.mask
    # Texels near a chart's edge sample bilinearly across it: pad the atlas first so that they read
    # surface colours, never the empty space between charts.
    atlas_color, _ = raster.dilate(
        np.asarray(atlas_color, np.float32),
        geometry.mask,
        3,
        _cached(geometry, "pad3", lambda: raster.padding_index(geometry.mask, 3)),
    )
    xy, hidden = surface_in_atlas(geometry, surface)
    values = geometry.sample(atlas_color, xy)
    texture = np.empty((size, size, 3), np.float32)
    texture[:] = np.asarray(background, np.float32)
    texture[hit] = values
    if hidden.any():
        # Surfaces the atlas cannot show (a neck behind the chest along the same rays, the back of an
        # ear) would read another surface's colour: fill them in UV space from their visible
        # neighbours instead.
        from .atlas_filters import fill

        weights = np.zeros((size, size), np.float32)
        weights[hit] = (~hidden).astype(np.float32)
        rows, cols = np.nonzero(hit)
        filled = fill(texture, weights)
        texture[rows[hidden], cols[hidden]] = filled[rows[hidden], cols[hidden]]
    if detail is not None:
        texture[hit] += detail
    texture[hit] = np.clip(texture[hit], 0.0, 1.0)
    pad = max(2, size // 128) if padding is None else padding
    texture, _ = raster.dilate(
        texture, hit, pad, _cached(surface, f"pad{pad}", lambda: raster.padding_index(hit, pad))
    )
    return texture
