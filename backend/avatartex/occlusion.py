"""Ambient occlusion of a mesh: how much of the sky above each point of the surface the mesh itself
leaves open.

A photo's skin is lit by the room as well as by its key light, and the room's light does not reach
into the creases: the eye sockets, the folds beside the nose, the nostrils, under the jaw and behind
the ears are darker in any photo taken in soft light, whatever the direction of the key. A light
model of the normal alone (``shading.DirectionalLights``) cannot make that darkness, so the
de-lighting left it in the albedo (dark rings round the eyes, embossed folds), and a renderer that
adds its own occlusion darkens them twice. ``shading.fit_lights`` fits how much of the photo's
ambient light this occlusion takes away.

The occlusion is measured per vertex with depth maps of the mesh seen from directions spread evenly
over the sphere (``directions``), as a shadow map is read: a vertex sees a direction when nothing
of the mesh lies nearer that direction's far-away camera. Each direction counts by its cosine with
the vertex's normal (a Lambertian surface under a uniform sky).
"""

from __future__ import annotations

import numpy as np

from . import raster
from .camera import Camera

VIEWS = 64
"""Directions the sky is sampled in (over the whole sphere: about half face any one vertex)."""
MAP_SIZE = 192
"""Pixels across each direction's depth map: about 0.03 eye distances on a head, finer than the
creases that matter (an eye socket, a nostril) and coarse enough for 64 maps to take ~0.5 s."""
OPEN = 1.0
"""The occlusion where none was measured (a texel with no surface, a mesh with no triangles)."""


def directions(count: int) -> np.ndarray:
    """(count, 3) unit vectors spread evenly over the sphere (a Fibonacci lattice)."""
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    turn = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.stack([r * np.cos(turn), r * np.sin(turn), z], axis=1)


def vertex_occlusion(
    positions: np.ndarray,
    triangles: np.ndarray,
    normals: np.ndarray,
    views: int = VIEWS,
    size: int = MAP_SIZE,
) -> np.ndarray:
    """(V,) float32 the share of the cosine-weighted sky each vertex sees past the mesh (1: open, 0:
    closed in, as the inside of a mouth).

    Vertices are lifted off the surface by a fifth of a depth map's pixel along their normal and
    a point counts as seen within 1.5 pixels of depth, so a smooth surface does not shadow itself
    (a shadow map's bias); creases narrower than that read as open.
    """
    p = np.asarray(positions, np.float64).reshape(-1, 3)
    t = np.asarray(triangles, np.int64).reshape(-1, 3)
    n = np.asarray(normals, np.float64).reshape(-1, 3)
    if len(p) == 0 or len(t) == 0:
        return np.full(len(p), OPEN, np.float32)
    centre = 0.5 * (p.min(axis=0) + p.max(axis=0))
    radius = float(np.linalg.norm(p - centre, axis=1).max())
    if not radius > 0:
        return np.full(len(p), OPEN, np.float32)
    distance = 40.0 * radius
    fov = float(np.degrees(2.0 * np.arctan(1.02 * radius / distance)))
    pixel = 2.04 * radius / size
    lifted = p + n * (0.2 * pixel)
    seen = np.zeros(len(p))
    total = np.zeros(len(p))
    for d in directions(views):
        weight = np.clip(n @ d, 0.0, None)
        facing = weight > 0
        if not facing.any():
            continue
        up = np.array([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else np.array([0.0, 0.0, 1.0])
        camera = Camera.look_at(centre + d * distance, centre, up, fov, size, size)
        _, _, depth = raster.rasterize_camera(p, t, camera)
        xy, z = camera.project(lifted[facing])
        col = np.clip(xy[:, 0].astype(np.int64), 0, size - 1)
        row = np.clip(xy[:, 1].astype(np.int64), 0, size - 1)
        open_ = z <= depth[row, col] + 1.5 * pixel
        seen[facing] += weight[facing] * open_
        total[facing] += weight[facing]
    return np.where(total > 0, seen / np.maximum(total, 1e-12), OPEN).astype(np.float32)


def at_texels(
    vertex_values: np.ndarray, triangles: np.ndarray, tri_id: np.ndarray, bary: np.ndarray
) -> np.ndarray:
    """Per-vertex occlusion read at the surface points of texels (``tri_id``, ``bary`` of any shape
    (...), (..., 3)): float32 of ``tri_id``'s shape, ``OPEN`` where a texel shows no surface."""
    values = np.asarray(vertex_values, np.float32).reshape(-1, 1)
    mixed = raster.interpolate(values, np.asarray(triangles), tri_id, bary)[..., 0]
    return np.where(tri_id >= 0, np.clip(mixed, 0.0, 1.0), OPEN).astype(np.float32)
