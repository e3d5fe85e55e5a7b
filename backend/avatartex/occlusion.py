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
from .mesh import triangle_areas
from .meshframe import MeshFrame

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


DENSE_FACES_PER_PIXEL = 8
"""Faces per pixel of a depth map (MAP_SIZE²) from which ``vertex_occlusion`` draws the mesh merged
(``clustered``): 295 k faces at 192². The scanned head (18 k) and meshes of up to that are drawn whole."""


def vertex_occlusion(
    positions: np.ndarray,
    triangles: np.ndarray,
    normals: np.ndarray,
    views: int = VIEWS,
    size: int = MAP_SIZE,
    frame: MeshFrame | None = None,
) -> np.ndarray:
    """(V,) float32 the share of the cosine-weighted sky each vertex sees past the mesh (1: open, 0:
    closed in, as the inside of a mouth).

    Vertices are lifted off the surface by a fifth of a depth map's pixel along their normal and
    a point counts as seen within 1.5 pixels of depth, so a smooth surface does not shadow itself
    (a shadow map's bias); creases narrower than that read as open. The sky's directions, the depth
    maps' centre and their pixel grids are those of the mesh's own ``frame`` (the file's axes
    without one): 64 directions sample each vertex's sky coarsely, and in the file's axes a copy of
    the mesh turned in its file saw another sample of it (the scanned head's de-lighting took
    0.28-0.40 of the ambient light as occluded on copies of it, and their textures were 2% brighter
    or darker).
    """
    p = np.asarray(positions, np.float64).reshape(-1, 3)
    t = np.asarray(triangles, np.int64).reshape(-1, 3)
    n = np.asarray(normals, np.float64).reshape(-1, 3)
    if len(p) == 0 or len(t) == 0:
        return np.full(len(p), OPEN, np.float32)
    if frame is None:
        centre, axes = 0.5 * (p.min(axis=0) + p.max(axis=0)), np.eye(3)
    else:
        centre, axes = np.asarray(frame.origin, np.float64), np.asarray(frame.axes, np.float64)
    radius = float(np.linalg.norm(p - centre, axis=1).max())
    if not radius > 0:
        return np.full(len(p), OPEN, np.float32)
    distance = 40.0 * radius
    fov = float(np.degrees(2.0 * np.arctan(1.02 * radius / distance)))
    pixel = 2.04 * radius / size
    lifted = p + n * (0.2 * pixel)
    # A mesh of many faces to a pixel (a sculpt of a million) is drawn merged to half a pixel: the
    # same depth maps, within the 1.5-pixel tolerance, at a fraction of the faces (a 1.1 M-face
    # head's 64 maps took 17 s).
    drawn = (p, t) if len(t) <= DENSE_FACES_PER_PIXEL * size * size else clustered(p, t, 0.5 * pixel)
    seen = np.zeros(len(p))
    total = np.zeros(len(p))
    for local in directions(views):
        d = local @ axes
        weight = np.clip(n @ d, 0.0, None)
        facing = weight > 0
        if not facing.any():
            continue
        up = axes[1] if abs(local[1]) < 0.9 else axes[2]
        camera = Camera.look_at(centre + d * distance, centre, up, fov, size, size)
        _, _, depth = raster.rasterize_camera(*drawn, camera)
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
    mixed = _interpolated(vertex_values, triangles, tri_id, bary)
    return np.where(tri_id >= 0, np.clip(mixed, 0.0, 1.0), OPEN).astype(np.float32)


def _interpolated(
    vertex_values: np.ndarray, triangles: np.ndarray, tri_id: np.ndarray, bary: np.ndarray
) -> np.ndarray:
    """Per-vertex values (V,) at the surface points of texels (``tri_id``, ``bary``), float32;
    undefined where a texel shows no surface (``tri_id`` < 0): the callers fill those."""
    values = np.asarray(vertex_values, np.float32).reshape(-1, 1)
    return raster.interpolate(values, np.asarray(triangles), tri_id, bary)[..., 0]


CAVITY_SPAN = 2.5
"""Gaussian sigmas within which the surface around a point counts for its cavity."""
CAVITY_SAMPLES_PER_SIGMA = 3.0
"""Surface samples per smoothing sigma (``spread``): a low-poly head's vertices alone are too few."""
CAVITY_EDGE_PULL = 0.5
"""Sigmas of sideways pull of the smoothed surface (towards where the surface is, away from its open
edge) at which a point's cavity is no longer read: a plane cut straight pulls by 0.8 sigma at its
edge, a fifth of that two sigmas inside."""
CAVITY_CHUNK = 20000
"""Points smoothed at a time (each has a few hundred samples around it)."""


def spread(points: np.ndarray, spacing: float) -> np.ndarray:
    """Indices of a subset of ``points`` (N, 3) about ``spacing`` apart: the first point in each cube
    of that size. A surface sampled densely in one place and sparsely in another (a scan's face
    against its back, the atlas's front against its back) is then sampled evenly, as a smoothing
    must see it."""
    _, first = np.unique(_cell_keys(points, spacing), return_index=True)
    return np.sort(first)


def _cell_keys(points: np.ndarray, spacing: float) -> np.ndarray:
    """(N,) int64 the number of the cube of edge ``spacing`` each of ``points`` (N, 3) lies in."""
    cells = np.floor(np.asarray(points, np.float64) / spacing).astype(np.int64)
    cells -= cells.min(axis=0)
    span = cells.max(axis=0) + 1
    return (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]


def clustered(positions: np.ndarray, triangles: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """A coarser copy of a mesh for its depth maps: its vertices merged per cube of edge ``cell`` (at
    their mean), the triangles that still span three, (positions (C, 3), triangles (T', 3))."""
    p = np.asarray(positions, np.float64)
    _, label = np.unique(_cell_keys(p, cell), return_inverse=True)
    label = label.reshape(-1)
    count = np.bincount(label)
    centres = np.stack([np.bincount(label, p[:, k]) for k in range(3)], axis=1) / count[:, None]
    tri = label[np.asarray(triangles, np.int64)]
    spans = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    return centres, tri[spans]


def smoothed(points: np.ndarray, samples: np.ndarray, sigma: float) -> np.ndarray:
    """(Q, 3) the Gaussian-weighted mean (``sigma``) of the surface ``samples`` (K, 3) around each of
    ``points`` (Q, 3), in 3-D: neighbours across a UV seam or an atlas chart's edge count alike.
    A point with no sample near is its own."""
    from scipy.spatial import cKDTree

    points = np.asarray(points, np.float64)
    tree = cKDTree(samples)
    out = points.copy()
    for start in range(0, len(points), CAVITY_CHUNK):
        part = points[start : start + CAVITY_CHUNK]
        pairs = tree.sparse_distance_matrix(cKDTree(part), CAVITY_SPAN * sigma, output_type="coo_matrix")
        weight = np.exp(-0.5 * (pairs.data / sigma) ** 2)
        total = np.bincount(pairs.col, weight, len(part))
        mean = np.stack(
            [np.bincount(pairs.col, weight * samples[pairs.row, k], len(part)) for k in range(3)], axis=1
        )
        out[start : start + len(part)] = np.where(
            total[:, None] > 1e-9, mean / np.maximum(total, 1e-12)[:, None], part
        )
    return out


def surface_samples(
    positions: np.ndarray, triangles: np.ndarray, spacing: float, seed: int = 0
) -> np.ndarray:
    """(K, 3) points about ``spacing`` apart over a mesh's surface: its vertices and points drawn on
    its triangles by area (about one per spacing²), ``spread``."""
    p = np.asarray(positions, np.float64)
    t = np.asarray(triangles, np.int64)
    corners = p[t]
    area = triangle_areas(corners)
    count = int(min(area.sum() / spacing**2, 2_000_000))
    points = [p]
    if count > 0 and area.sum() > 0:
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(t), count, p=area / area.sum())
        u, v = rng.random((2, count))
        flip = u + v > 1
        u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
        c = corners[picked]
        points.append(c[:, 0] + u[:, None] * (c[:, 1] - c[:, 0]) + v[:, None] * (c[:, 2] - c[:, 0]))
    every = np.concatenate(points)
    return every[spread(every, spacing)]


CAVITY_DENSE = 3
"""Vertices per anchor (vertices ``spread`` ANCHOR_SPACING of a sample's spacing apart) from which a
mesh is dense enough for its smoothed surface to be measured at the anchors and carried to the other
vertices (``_offsets_from_anchors``): a sculpt subdivided to a million faces spent 28 s in the
smoothing, a 4.5 M one minutes. The scanned head of ``../shared`` (1.1-2.0 vertices per anchor) and
heads of up to a few hundred thousand vertices at the finer sigmas are measured at every vertex, as
before. On the scanned head subdivided to 143 k vertices, at the sigma where it is dense enough:
the cavity within 1.5 % of its 95th percentile (median; 15 % at the 99th), correlation 0.996 with
the exact one, 1.5 s against 7.1."""
ANCHOR_SPACING = 0.7
"""Anchors' spacing (``spread``), in sample spacings."""
ANCHORS_NEAR = 8
"""Anchors each vertex reads its offset from."""
ANCHOR_FACING = 0.5
"""Cosine between a vertex's normal and an anchor's below which the anchor is on another surface
(the other lip, an ear's back): not read."""


def _offsets_from_anchors(
    points: np.ndarray, normals: np.ndarray, anchors: np.ndarray, offsets: np.ndarray, spacing: float
) -> np.ndarray:
    """(V, 3) the smoothed surface's offset at every one of ``points`` from its ``offsets`` measured at
    the ``anchors`` (indices into ``points``): a Gaussian mean (width ``spacing``) of the
    ANCHORS_NEAR nearest that face its way (ANCHOR_FACING); NaN where none does."""
    from scipy.spatial import cKDTree

    distance, nearest = cKDTree(points[anchors]).query(points, k=min(ANCHORS_NEAR, len(anchors)))
    distance, nearest = distance.reshape(len(points), -1), nearest.reshape(len(points), -1)
    facing = np.einsum("vkj,vj->vk", normals[anchors][nearest], normals) > ANCHOR_FACING
    weight = np.exp(-0.5 * (distance / spacing) ** 2) * facing
    total = weight.sum(axis=1)
    mixed = np.einsum("vk,vkj->vj", weight, offsets[nearest]) / np.maximum(total, 1e-300)[:, None]
    mixed[total <= 1e-12] = np.nan
    return mixed


def vertex_cavity(
    positions: np.ndarray, triangles: np.ndarray, normals: np.ndarray, sigma: float
) -> np.ndarray:
    """(V,) float32 how far each vertex lies below the surface around it (smoothed over ``sigma``),
    along its normal, in the mesh's units: > 0 in folds (the eye sockets, behind the ears, where
    the jaw meets the neck), < 0 on ridges. Measured on the surface in 3-D, so neither a UV map's
    seams nor an atlas's charts show in it. Where the surface stops on one side (a bust's cut) the
    mean around lies off to the other side and would read the surface's curve there as a fold: the
    cavity fades out as that sideways pull grows to CAVITY_EDGE_PULL sigmas."""
    p = np.asarray(positions, np.float64).reshape(-1, 3)
    n = np.asarray(normals, np.float64).reshape(-1, 3)
    if len(p) == 0 or len(triangles) == 0 or not sigma > 0:
        return np.zeros(len(p), np.float32)
    spacing = sigma / CAVITY_SAMPLES_PER_SIGMA
    samples = surface_samples(p, triangles, spacing)
    anchors = spread(p, spacing * ANCHOR_SPACING)
    if len(p) > CAVITY_DENSE * len(anchors):
        at_anchors = smoothed(p[anchors], samples, sigma) - p[anchors]
        offset = _offsets_from_anchors(p, n, anchors, at_anchors, spacing * ANCHOR_SPACING)
        missing = ~np.isfinite(offset).all(axis=1)
        if missing.any():  # no anchor on the vertex's own side of a thin part near it: measured
            offset[missing] = smoothed(p[missing], samples, sigma) - p[missing]
    else:
        offset = smoothed(p, samples, sigma) - p
    depth = np.einsum("ij,ij->i", offset, n)
    sideways = np.linalg.norm(offset - depth[:, None] * n, axis=1)
    return (depth * np.clip(1.0 - sideways / (CAVITY_EDGE_PULL * sigma), 0.0, 1.0)).astype(np.float32)


class MeshCavity:
    """A mesh's ``vertex_cavity``, measured on first use (per sigma) and read at texels: an atlas's
    and a UV map's share one (``HeadModel``)."""

    def __init__(self, positions: np.ndarray, triangles: np.ndarray, normals: np.ndarray) -> None:
        self.positions, self.triangles, self.normals = positions, triangles, normals
        self._vertices: dict[float, np.ndarray] = {}

    def vertices(self, sigma: float) -> np.ndarray:
        """(V,) ``vertex_cavity`` at ``sigma`` (mesh units)."""
        key = round(float(sigma), 9)
        if key not in self._vertices:
            self._vertices[key] = vertex_cavity(self.positions, self.triangles, self.normals, sigma)
        return self._vertices[key]

    def at_texels(self, sigma: float, tri_id: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """The cavity (mesh units) at the surface points of texels (``tri_id``, ``bary``), 0 where a
        texel shows no surface."""
        mixed = _interpolated(self.vertices(sigma), self.triangles, tri_id, bary)
        return np.where(tri_id >= 0, mixed, 0.0).astype(np.float32)
