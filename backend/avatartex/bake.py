"""Bake the atlas into the mesh's own UV map, with island padding.

Each texel of the user's UV map belongs to a triangle at some barycentric position; the same
barycentrics over that triangle's atlas corners give its atlas coordinate. Both sides of a UV seam
are the same surface point and so read the same atlas colour: the texture is seam-free by
construction. Islands are then padded outward so mip-maps and bilinear filtering never pull in the
background.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit, prange

from . import occlusion, raster
from .atlas import AtlasGeometry
from .atlas_filters import fill, robust_std, subsample
from .imaging import LUMA, smoothstep
from .noise import gradient_noise


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
    shared: SharedTexels | None = None
    """Texels two surfaces share (overlapping UV islands), with the one not drawn; None when none."""
    occlusion: np.ndarray | None = None
    """(M,) float32 the ambient occlusion of the covered texels' surface points (as
    ``AtlasGeometry.occlusion``), set with the head (``HeadModel.surface``); None where not measured."""
    cavity: occlusion.MeshCavity | None = None
    """The mesh's folds (``occlusion.MeshCavity``, shared with the head's atlas by ``HeadModel``)."""

    @property
    def mask(self) -> np.ndarray:
        return self.tri_id >= 0


@dataclass
class SurfacePhoto:
    """The photo read on covered UV texels the atlas does not hold (``steps.photo_outside_atlas``)."""

    index: np.ndarray
    """(K,) the texels, as indices among the covered texels (row-major order of ``UVSurface.mask``)."""
    color: np.ndarray
    """(K, 3) float32 their de-lit colour from the photo."""
    confidence: np.ndarray
    """(K,) float32 0..1 how far that colour is theirs (the projection's confidence)."""
    coords: np.ndarray
    """(K, 2) float32 the portrait pixels it was read at."""


@dataclass
class SurfacePaint:
    """Covered UV texels that take a colour of their own, painted last at the texture's own resolution
    (not the atlas's coarser reading, nor the skin fill and grain, nor the photo): the mesh's separate
    eyeballs as eyes at rest (sclera, iris, pupil: ``steps.eyes_on_surface``) and the inside of an
    open mouth the atlas does not hold, dark (``steps.mouth_on_surface``); ``steps.painted_last``
    joins them."""

    index: np.ndarray
    """(K,) the texels, as indices among the covered texels (row-major order of ``UVSurface.mask``)."""
    color: np.ndarray
    """(K, 3) float32 their colour."""


@dataclass
class StyleShadow:
    """A style's cel shadow, for the texels the atlas does not hold (``bake``): where the atlas's
    styled texture has it, and what it is on a surface point of its own form."""

    atlas_map: np.ndarray
    """(S, S) float32 0..1: how much of the shadow each atlas texel shows."""
    at: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    """(mesh-space unit normals (N, 3), cavity (N,) in eye distances: ``occlusion.MeshCavity``,
    mesh-space points (N, 3)) -> (N,) float32 0..1: the shadow there, by the same rule the atlas's
    shadow was drawn with."""
    eye_distance: float
    """Mesh units per eye distance (``HeadFrame.scale``): the unit of the cavity."""
    cavity_sigma_iod: float
    """Eye distances over which the atlas's cavity smooths the surface (``repaint.head_forms``)."""


@dataclass
class SharedTexels:
    """Texels of a UV map that two parts of the mesh map onto (mirrored or stacked UV islands): the
    other part's triangle and barycentrics at each (the first triangle drawn there, where ``tri_id``
    holds the last)."""

    index: np.ndarray
    """(K,) flat texel indices (row-major over the texture)."""
    tri_id: np.ndarray
    """(K,) int32 the other part's triangle."""
    bary: np.ndarray
    """(K, 3) float32 its barycentrics."""

    def share(self, surface: UVSurface) -> float:
        """Share of the covered texels that are shared."""
        return len(self.index) / max(int(surface.mask.sum()), 1)


def _cached(owner, key: str, make):
    """A value derived from ``owner``'s fixed arrays, kept on it (per mesh and size, across requests)."""
    cache = owner.__dict__.setdefault("_cache", {})
    if key not in cache:
        cache[key] = make()
    return cache[key]


SHARED_DISTANCE = 1e-3
"""Surface points of the two triangles drawn at one texel further apart than this (the mesh is at unit
size, ``pipeline.cache.normalized``) are two parts sharing the texel, not one surface's neighbouring
triangles meeting on its centre."""


def uv_surface(
    positions: np.ndarray, triangles: np.ndarray, normals: np.ndarray, uvs: np.ndarray, size: int
) -> UVSurface:
    """Rasterise the UV map at ``size`` and interpolate the surface behind each covered texel; where
    islands overlap, the other part is kept in ``shared`` (drawn in reverse order, the first wins)."""
    attributes = np.concatenate([positions, normals], axis=1)
    tri_id, bary = raster.rasterize_uv(uvs, size)
    hit = tri_id >= 0
    both = raster.interpolate(attributes, triangles, tri_id, bary)[hit]
    surface = UVSurface(tri_id, bary, both[:, :3], both[:, 3:])
    surface.cavity = occlusion.MeshCavity(positions, triangles, normals)
    count = len(triangles)
    first, first_bary = raster.rasterize_uv(np.asarray(uvs)[::-1], size)
    first = np.where(first >= 0, count - 1 - first, -1).astype(np.int32)
    differ = hit & (first != tri_id)
    if differ.any():
        other = raster.interpolate(positions, triangles, first, first_bary)[differ]
        apart = np.linalg.norm(other - both[differ[hit], :3], axis=1) > SHARED_DISTANCE
        index = np.flatnonzero(differ)[apart]
        if len(index):
            surface.shared = SharedTexels(index, first.reshape(-1)[index], first_bary.reshape(-1, 3)[index])
    return surface


SEEN_GAIN = 0.05
"""How much more of a texel the photo must show of another part sharing it than of the part drawn
there for ``prefer_seen`` to swap (nearly equal: the part drawn stays)."""


def prefer_seen(
    surface: UVSurface,
    geometry: AtlasGeometry,
    confidence: np.ndarray,
    positions: np.ndarray,
    triangles: np.ndarray,
    normals: np.ndarray,
    uvs: np.ndarray,
) -> UVSurface:
    """``surface`` with each shared texel (``SharedTexels``) showing whichever of the parts on it the
    photo shows most (``confidence``: how far the photo shows each atlas texel, read at each
    triangle's corners), so a mirrored half takes the half the photo sees; ``surface`` itself when
    nothing changes. Every part on a texel competes, not only the first and the last drawn: a
    planar projection stacks the chin, the neck under it and the back of the neck, and the face's
    chin lost to the back's skin. Where the photo shows two alike, the one facing the head's front
    wins. ``uvs``: the (T, 3, 2) UVs ``surface`` was rasterised from."""
    shared = surface.shared
    if shared is None:
        return surface
    size = surface.tri_id.shape[0]
    corner_xy = np.asarray(geometry.triangle_xy, np.float64).reshape(-1, 2)
    seen = geometry.sample(np.asarray(confidence, np.float32), corner_xy).reshape(-1, 3)
    front = geometry.frame.directions_to_head(np.asarray(normals, np.float64))[:, 2]
    score = seen + 0.01 * np.clip(front[np.asarray(triangles)], -1.0, 1.0)
    points = np.asarray(uvs, np.float64).reshape(-1, 3, 2) * size
    points[..., 1] = size - points[..., 1]
    best, best_bary, depth = raster.rasterize_triangles(points, -score, size, size)
    flat_tri = surface.tri_id.reshape(-1)
    flat_bary = surface.bary.reshape(-1, 3)
    index = shared.index
    now = (score[flat_tri[index]] * flat_bary[index]).sum(axis=1)
    winner = best.reshape(-1)[index]
    swap = (winner >= 0) & (winner != flat_tri[index]) & (-depth.reshape(-1)[index] > now + SEEN_GAIN)
    if not swap.any():
        return surface
    index, chosen = index[swap], winner[swap]
    chosen_bary = best_bary.reshape(-1, 3)[index]
    tri_id, bary = surface.tri_id.copy(), surface.bary.copy()
    tri_id.reshape(-1)[index] = chosen
    bary.reshape(-1, 3)[index] = chosen_bary
    rows = np.cumsum(surface.mask.reshape(-1)) - 1  # texel -> its row in the (M, 3) arrays
    surface_points, point_normals = surface.positions.copy(), surface.normals.copy()
    corners = triangles[chosen]
    w = chosen_bary[..., None]
    surface_points[rows[index]] = (positions[corners] * w).sum(axis=1)
    point_normals[rows[index]] = (normals[corners] * w).sum(axis=1)
    kept = SharedTexels(  # each shared texel's part not shown now: the one drawn, where it swapped
        np.concatenate([shared.index[~swap], index]),
        np.concatenate([shared.tri_id[~swap], flat_tri[index]]),
        np.concatenate([shared.bary[~swap], flat_bary[index]]),
    )
    # The swapped texels keep the occlusion of the part they showed: mirrored parts share it.
    return UVSurface(tri_id, bary, surface_points, point_normals, kept, surface.occlusion)


def atlas_coords(geometry: AtlasGeometry, surface: UVSurface) -> np.ndarray:
    """(M, 2) atlas pixel coordinates of the covered UV texels."""
    return raster.interpolate(geometry.triangle_xy, None, surface.tri_id, surface.bary)[surface.mask]


def hidden_in_atlas(
    geometry: AtlasGeometry, surface: UVSurface, xy: np.ndarray, tolerance: float = 0.15
) -> np.ndarray:
    """(M,) covered UV texels whose surface point is not the one the atlas shows at its coordinate.

    The atlas keeps one surface per direction from the head's centre; ``tolerance`` is in eye
    distances. A texel is also hidden where any of the four atlas texels its bilinear sample reads
    shows another surface: along the edge where the atlas goes over from one surface to another
    behind it (a bust's chest under the jaw's underside), the sample mixed the two, and a style's
    dots or lines on the front one came out as specks on the other (the comic's halftone under the
    scanned bust's jaw, on its chest).
    """
    s = geometry.size
    held = geometry.mask
    ix = np.clip(np.floor(xy[:, 0]).astype(np.int64) % s, 0, s - 1)
    iy = np.clip(np.floor(xy[:, 1]).astype(np.int64), 0, s - 1)
    hidden = ~held[iy, ix]
    # The bilinear sample's four texels (imaging.bilinear_at; the texel holding the point is one of
    # them): columns wrap in the band's rows.
    x0 = np.floor(xy[:, 0] - 0.5).astype(np.int64)
    y0 = np.floor(xy[:, 1] - 0.5).astype(np.int64)
    for dy in (0, 1):
        rows = np.clip(y0 + dy, 0, s - 1)
        for dx in (0, 1):
            cols = np.where(rows < geometry.band_rows, (x0 + dx) % s, np.clip(x0 + dx, 0, s - 1))
            distance = np.linalg.norm(geometry.positions[rows, cols] - surface.positions, axis=1)
            hidden |= held[rows, cols] & (distance > tolerance * geometry.frame.scale)
    return hidden


def surface_in_atlas(geometry: AtlasGeometry, surface: UVSurface) -> tuple[np.ndarray, np.ndarray]:
    """``atlas_coords`` and ``hidden_in_atlas`` of a UV surface, computed once per mesh and sizes."""

    def make():
        xy = atlas_coords(geometry, surface)
        return xy, hidden_in_atlas(geometry, surface, xy)

    return _cached(surface, f"atlas{geometry.size}", make)


def covered_index(surface: UVSurface) -> np.ndarray:
    """(M,) the flat indices of the covered texels (row-major order of ``UVSurface.mask``), kept."""
    return _cached(surface, "covered", lambda: np.flatnonzero(surface.mask))


def _padded(geometry: AtlasGeometry, atlas_image: np.ndarray) -> np.ndarray:
    """An atlas image (S, S, C) padded 3 texels out of the charts: texels near a chart's edge sample
    bilinearly across it, and must read surface values, never the empty space between charts."""
    index = _cached(geometry, "pad3", lambda: raster.padding_index(geometry.mask, 3))
    return raster.dilate(atlas_image, geometry.mask, 3, index)[0]


def atlas_map_at(geometry: AtlasGeometry, atlas_map: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N,) a one-channel atlas map (S, S) read bilinearly at atlas pixels ``xy`` (N, 2), the charts
    padded so that a texel near a chart's edge reads surface values (``_padded``)."""
    padded = _padded(geometry, np.asarray(atlas_map, np.float32)[..., None])
    return geometry.sample(padded, xy)[:, 0]


def carried_into_hidden(geometry: AtlasGeometry, surface: UVSurface, on_held: np.ndarray) -> np.ndarray:
    """(K,) an atlas map as ``bake`` gives it to the K texels the atlas does not hold (in the order of
    ``hidden_in_atlas``), from its values on the texels the atlas holds (``on_held``, in their order:
    ``atlas_map_at``) carried in by the fill. One channel and only the fill: a three-channel bake of
    a 4096² map for it cost 0.6 s."""
    _, hidden = surface_in_atlas(geometry, surface)
    covered = covered_index(surface)
    n = surface.tri_id.shape[0]
    values = np.zeros((n * n, 1), np.float32)
    weights = np.zeros(n * n, np.float32)
    held = covered[~hidden]
    values[held, 0] = on_held
    weights[held] = 1.0
    where = np.zeros(n * n, np.bool_)
    where[covered[hidden]] = True
    # In UV space only (not ``across_islands``): the photo is read on the texel's own surface point
    # as far as the atlas around it in the UV map backs it; from the surface nearest it in 3-D (a
    # chin's underside, seen at a grazing angle) the scanned bust's chest took a third as much of the
    # photo's pattern (tests/test_projection_quality.py).
    filled = fill(values.reshape(n, n, 1), weights.reshape(n, n), where=where.reshape(n, n))
    return np.clip(filled.reshape(-1)[covered[hidden]], 0.0, 1.0)


ACROSS_NEIGHBOURS = 8
"""Texels the atlas holds, nearest on the surface, from which a texel it does not hold takes its colour
where the fill in UV space draws on surface far from it (``across_islands``)."""
ACROSS_SOURCES = 20_000
"""At most this many of the held texels (evenly strided) are the candidates: their colours vary slowly
over the texels between them (the first request for a mesh spends 0.2-0.4 s here at 1024²,
querying 0.2 M texels of the scanned bust; 200 000 took 4 s)."""
ACROSS_APART = (0.3, 1.0)
"""Eye distances between a texel's own surface point and the point the fill in UV space reads it from
(the fill of the held texels' positions) below which that fill stands, above which the surface's
nearest held texels replace it, blended between."""


@dataclass
class AcrossIslands:
    """Texels the atlas does not hold that the fill in UV space would give the colour of surface far
    from them: their UV neighbours are other islands (an automatic unwrap packs a bust's chest, held
    by nothing in the atlas, beside the scalp's islands: the hair's colour spread over the chest in
    scalp=hair). They take the colours of the held texels nearest them on the surface instead."""

    cells: np.ndarray
    """(F,) flat texel indices (row-major over the texture) of those texels."""
    sources: np.ndarray
    """(F, K) flat texel indices of the held texels each takes its colour from."""
    weights: np.ndarray
    """(F, K) float32, summing to 1 per texel: by inverse square distance on the surface."""
    blend: np.ndarray
    """(F,) float32 0..1: how far the surface's colour replaces the UV fill's (``ACROSS_APART``)."""

    def apply(
        self, flat: np.ndarray, source_weight: np.ndarray | None = None, otherwise: np.ndarray | None = None
    ) -> None:
        """Set those texels of ``flat`` (the texture's texels, row-major, (N², C) float32) in place.
        ``source_weight`` (N²,), optional: how far each texel counts as a source (the fill's weights:
        a style's shadow filled apart from the light); where a texel's sources have none,
        ``otherwise`` (C,), else the plain weights."""
        if len(self.cells):
            none = np.zeros(0, np.float32)
            _across_kernel(
                flat,
                self.cells,
                self.sources,
                self.weights,
                self.blend,
                none if source_weight is None else np.ascontiguousarray(source_weight, np.float32),
                none if otherwise is None else np.ascontiguousarray(otherwise, np.float32),
            )


@njit(cache=True, parallel=True)
def _across_kernel(flat, cells, sources, weights, blend, source_weight, otherwise) -> None:
    """``AcrossIslands.apply``'s loop (the sources are held texels, the cells are not: in place)."""
    count, neighbours = sources.shape
    weighted, fallback = source_weight.size > 0, otherwise.size > 0
    for f in prange(count):
        total = np.float32(0.0)
        if weighted:
            for k in range(neighbours):
                total += weights[f, k] * source_weight[sources[f, k]]
        cell, b = cells[f], blend[f]
        for ch in range(flat.shape[1]):
            plain, counted = np.float32(0.0), np.float32(0.0)
            for k in range(neighbours):
                value = flat[sources[f, k], ch]
                plain += weights[f, k] * value
                if weighted:
                    counted += weights[f, k] * source_weight[sources[f, k]] * value
            near = plain
            if weighted:
                if total > 1e-3:
                    near = counted / total
                elif fallback:
                    near = otherwise[ch]
            flat[cell, ch] = b * near + (np.float32(1.0) - b) * flat[cell, ch]


def across_islands(geometry: AtlasGeometry, surface: UVSurface) -> AcrossIslands:
    """``AcrossIslands`` of a UV surface, computed once per mesh and sizes."""

    def make() -> AcrossIslands:
        from scipy.spatial import cKDTree

        _, hidden = surface_in_atlas(geometry, surface)
        covered = covered_index(surface)
        held = np.flatnonzero(~hidden)
        none = np.zeros(0, np.int64)
        empty = AcrossIslands(none, none[:, None], np.zeros((0, 1), np.float32), np.zeros(0, np.float32))
        if not hidden.any() or len(held) < ACROSS_NEIGHBOURS:
            return empty
        # Where the fill in UV space reads each texel from: the held texels' surface points, filled.
        n = surface.mask.shape[0]
        points = np.zeros((n * n, 3), np.float32)
        weights = np.zeros(n * n, np.float32)
        points[covered[held]] = surface.positions[held]
        weights[covered[held]] = 1.0
        where = np.zeros(n * n, bool)
        hidden_index = np.flatnonzero(hidden)
        where[covered[hidden_index]] = True
        filled = fill(points.reshape(n, n, 3), weights.reshape(n, n), where=where.reshape(n, n))
        read_from = filled.reshape(-1, 3)[covered[hidden_index]]
        apart = np.linalg.norm(read_from - surface.positions[hidden_index], axis=1) / geometry.frame.scale
        lo, hi = ACROSS_APART
        blend = smoothstep((apart - lo) / (hi - lo))
        chosen = blend > 0.0
        if not chosen.any():
            return empty
        targets = hidden_index[chosen]
        candidates = held[:: max(1, len(held) // ACROSS_SOURCES)]
        distance, found = cKDTree(surface.positions[candidates]).query(
            surface.positions[targets], k=ACROSS_NEIGHBOURS, eps=1.0, workers=-1
        )
        near = 1.0 / np.maximum(distance, 1e-6) ** 2
        near /= near.sum(axis=1, keepdims=True)
        return AcrossIslands(
            covered[targets],
            covered[candidates[found]],
            near.astype(np.float32),
            blend[chosen].astype(np.float32),
        )

    return _cached(surface, f"across{geometry.size}", make)


def covered_rows(surface: UVSurface) -> np.ndarray:
    """(N + 1,) where each texture row's covered texels start in the (M, ...) per-texel arrays."""

    def make():
        counts = surface.mask.sum(axis=1)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    return _cached(surface, "rows", make)


@njit(cache=True, parallel=True)
def _place(
    tri_id: np.ndarray,
    row_start: np.ndarray,
    values: np.ndarray,
    hidden: np.ndarray,
    background: np.ndarray,
    texture: np.ndarray,
    weights: np.ndarray,
    hidden_mask: np.ndarray,
) -> None:
    """The texture: covered texels take their atlas ``values`` (M, 3), the rest ``background``;
    ``weights`` 1 where the value is the texel's own surface, ``hidden_mask`` where it is not."""
    n, m = tri_id.shape
    for r in prange(n):
        k = row_start[r]
        for c in range(m):
            if tri_id[r, c] >= 0:
                for ch in range(3):
                    texture[r, c, ch] = values[k, ch]
                weights[r, c] = np.float32(0.0) if hidden[k] else np.float32(1.0)
                hidden_mask[r, c] = hidden[k]
                k += 1
            else:
                for ch in range(3):
                    texture[r, c, ch] = background[ch]
                weights[r, c] = np.float32(0.0)
                hidden_mask[r, c] = False


@njit(cache=True, parallel=True)
def _add_detail_and_clip(
    tri_id: np.ndarray, row_start: np.ndarray, detail: np.ndarray, has_detail: bool, texture: np.ndarray
) -> None:
    n, m = tri_id.shape
    for r in prange(n):
        k = row_start[r]
        for c in range(m):
            if tri_id[r, c] >= 0:
                for ch in range(3):
                    v = texture[r, c, ch]
                    if has_detail:
                        v += detail[k, ch]
                    texture[r, c, ch] = min(max(v, np.float32(0.0)), np.float32(1.0))
                k += 1


PHOTO_TONE_SIGMA_IOD = 0.5
"""The photo read on texels the atlas does not hold keeps what is finer than a Gaussian of this many
eye distances; its tone at larger scales is the fill's (``_put_photo``)."""


def _put_photo(texture: np.ndarray, surface: UVSurface, photo: SurfacePhoto, iod: float) -> None:
    """``photo`` over the filled ``texture``, in place, as far as it is confident, with the fill's tone.

    The latent stage's light is fitted on the face; on a surface the atlas does not hold (a neck
    under the chin, a chest) it is an extrapolation, and a shadow it misses would stay in the albedo
    (on bench/sweep.py's scanned bust the error's large-scale correlation with the true shading went
    from -0.03 to 0.17 median, where 0.2 is the limit). The fill carries the face's de-lit tone
    there: the photo is scaled per channel by the fill's local mean over its own, both taken with a
    Gaussian of PHOTO_TONE_SIGMA_IOD over the photo's texels weighted by its confidence.
    """
    n = surface.tri_id.shape[0]
    where = covered_index(surface)[photo.index]
    rows, cols = where // n, where % n
    flat = texture.reshape(-1, 3)
    base = flat[where].copy()
    c = photo.confidence.astype(np.float32)
    spacing = _texel_spacing(where, surface.positions[photo.index], n)
    own = photo.color
    if spacing > 0:
        sigma = PHOTO_TONE_SIGMA_IOD * iod / spacing
        pad = int(np.ceil(3 * sigma))
        r0, r1 = max(int(rows.min()) - pad, 0), min(int(rows.max()) + pad + 1, n)
        c0, c1 = max(int(cols.min()) - pad, 0), min(int(cols.max()) + pad + 1, n)
        local = np.zeros((r1 - r0, c1 - c0, 7), np.float32)
        local[rows - r0, cols - c0] = np.concatenate(
            [own * c[:, None], base * c[:, None], c[:, None]], axis=1
        )
        blurred = _low_pass(local, sigma)[rows - r0, cols - c0]
        weight = np.maximum(blurred[:, 6:7], 1e-6)
        gain = (blurred[:, 3:6] / weight + 1e-3) / (blurred[:, 0:3] / weight + 1e-3)
        own = own * np.clip(gain, 1 / 3, 3)
    flat[where] = c[:, None] * own + (1 - c[:, None]) * base


def _texel_spacing(where: np.ndarray, positions: np.ndarray, n: int) -> float:
    """The median surface distance between horizontally neighbouring texels of ``where`` (sorted flat
    indices into an (n, n) texture; ``positions`` (K, 3) their surface points); 0 where none has a
    neighbour there."""
    right = np.searchsorted(where, where + 1)
    pairs = np.flatnonzero((where % n < n - 1) & (right < len(where)))
    pairs = pairs[where[right[pairs]] == where[pairs] + 1]
    if pairs.size == 0:
        return 0.0
    return float(np.median(np.linalg.norm(positions[right[pairs]] - positions[pairs], axis=1)))


def _low_pass(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of ``image`` (H, W, C) by ``sigma`` texels, worked out on an area-averaged
    copy at most sigma / 4 times smaller and read back bilinearly (a wide blur of a large region in
    full was 0.1-0.2 s of a 1024 request on the scanned bust)."""
    h, w = image.shape[:2]
    step = max(1, int(sigma // 4))
    if step == 1 or min(h, w) < 4 * step:
        return cv2.GaussianBlur(image, (0, 0), sigma)
    out = np.empty_like(image)
    for k in range(0, image.shape[2], 4):  # cv2.resize takes at most four channels
        part = np.ascontiguousarray(image[..., k : k + 4])
        small = cv2.resize(part, (max(w // step, 1), max(h // step, 1)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / step)
        out[..., k : k + 4] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(part.shape)
    return out


HIDDEN_GRAIN_OCTAVES = (1.25, 2.5, 5.0)
"""Lattice spacings, in the atlas's texels on the face (``face_texels_per_iod``), of the gradient-noise
octaves that give grain to the texels the atlas does not hold (``_grain_where_hidden``): the scales
of the atlas's own skin grain (``inpaint.GRAIN_OCTAVES``), whatever the texture's size."""
HIDDEN_GRAIN_SEED = 0
"""The noise's seed: one pattern per surface, whatever the request's seed (a variant's grain there is
a pattern no one compares, and a new one cost 1.5 s at 4096², where one per surface is made once, at
the head's ``prepare``)."""
HIDDEN_GRAIN_FINE_PX = 2.0
"""Gaussian sigma, in texels, of the fine band (the texture minus its blur) in which that grain is
matched to the skin's grain in the rest of the texture."""


def _fine_band(lum: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """``lum`` minus its Gaussian blur inside ``mask`` (normalised: nothing from outside it); 0 outside."""
    m = mask.astype(np.float32)
    blur = cv2.GaussianBlur(lum * m, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(m, (0, 0), sigma), 1e-6)
    return np.where(mask, lum - blur, np.float32(0.0)).astype(np.float32)


def _hidden_noise(geometry: AtlasGeometry, surface: UVSurface) -> tuple[np.ndarray, np.ndarray] | None:
    """The texels the atlas does not hold, as flat indices into the (N, N) texture, and gradient noise
    of their surface points (HIDDEN_GRAIN_OCTAVES), scaled so that its fine band
    (HIDDEN_GRAIN_FINE_PX) has a robust spread of 1 over them; None where there are too few. A
    function of the surface point at the atlas's scale: which material or island a texel is in, or
    the texture's size, does not change its pattern."""
    n = surface.tri_id.shape[0]
    _, hidden = surface_in_atlas(geometry, surface)
    where = covered_index(surface)[hidden]
    if where.size < 64:
        return None
    points = geometry.mesh_frame.to_frame(surface.positions[hidden])
    texel = 1.0 / geometry.layout.face_texels_per_iod
    spacings = geometry.noise_spacings(np.asarray(HIDDEN_GRAIN_OCTAVES, np.float64) * texel)
    octaves = np.empty((len(points), len(spacings)), np.float32)
    gradient_noise(points, spacings, HIDDEN_GRAIN_SEED, np.ones_like(octaves), octaves)
    noise = octaves.sum(axis=1)
    field = np.zeros(n * n, np.float32)
    field[where] = noise
    mask = np.zeros(n * n, bool)
    mask[where] = True
    band = _fine_band(field.reshape(n, n), mask.reshape(n, n), HIDDEN_GRAIN_FINE_PX).reshape(-1)
    spread = robust_std(band[where])
    return (where, noise / np.float32(spread)) if spread > 0 else None


def _grain_where_hidden(
    texture: np.ndarray,
    geometry: AtlasGeometry,
    surface: UVSurface,
    hidden_mask: np.ndarray,
    photo: SurfacePhoto | None,
    painted: SurfacePaint | None = None,
) -> None:
    """Skin grain on the texels the atlas does not hold, in place: they were filled smoothly from
    their neighbours in UV space, and beside the atlas's grainy skin that fill was a hard-edged
    smooth patch (a bust's neck under the chin and the top of its chest: a quarter of the scanned
    head's texels). The grain is gradient noise of the surface point (``_hidden_noise``), as strong
    in the fine band as the rest of the texture's (its robust spread: features and edges do not
    count, and the skin's grain is most of the texels, as the atlas's own fill gives every unseen
    texel the seen skin's grain), tinted by each texel's colour, and left out as far as the photo was
    put there, and on the texels painted last (``painted``: eyeballs, a mouth's inside), which are not
    skin."""
    found = _cached(surface, f"hidden_grain{geometry.size}", lambda: _hidden_noise(geometry, surface))
    if found is None:
        return
    where, noise = found

    def skin_sample():
        """The texels the atlas holds and a sample of them (flat indices)."""
        held = surface.mask & ~hidden_mask
        return held, subsample(held, 50_000)

    held, sample = _cached(surface, f"hidden_grain_skin{geometry.size}", skin_sample)
    if sample.size < 64:
        return
    radius = int(np.ceil(3 * HIDDEN_GRAIN_FINE_PX))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / HIDDEN_GRAIN_FINE_PX) ** 2).astype(np.float32)
    band = np.empty(sample.size, np.float32)
    _fine_band_at(texture, held, sample, taps, band)
    amount = noise * np.float32(robust_std(band))
    if photo is not None and len(photo.index):
        covered = covered_index(surface)
        amount[np.searchsorted(where, covered[photo.index])] *= 1.0 - photo.confidence
    if painted is not None and len(painted.index):
        own = covered_index(surface)[painted.index]
        at = np.minimum(np.searchsorted(where, own), len(where) - 1)
        amount[at[where[at] == own]] = 0.0
    _add_grain(texture.reshape(-1, 3), where, amount)


@njit(cache=True, parallel=True)
def _fine_band_at(texture, held, sample, taps, out) -> None:
    """``out[i]``: the luminance's fine band at flat texel ``sample[i]``: the texel minus the Gaussian
    average (separable ``taps``) of the ``held`` texels around it (the same band as ``_fine_band``,
    read at a sample of texels instead of blurring a 4096² texture)."""
    h, w = held.shape
    r = (taps.shape[0] - 1) // 2
    for i in prange(sample.shape[0]):
        y, x = sample[i] // w, sample[i] % w
        total, weight = np.float32(0.0), np.float32(0.0)
        for dy in range(-r, r + 1):
            yy = y + dy
            if yy < 0 or yy >= h:
                continue
            for dx in range(-r, r + 1):
                xx = x + dx
                if xx < 0 or xx >= w or not held[yy, xx]:
                    continue
                g = taps[dy + r] * taps[dx + r]
                total += g * (
                    LUMA[0] * texture[yy, xx, 0] + LUMA[1] * texture[yy, xx, 1] + LUMA[2] * texture[yy, xx, 2]
                )
                weight += g
        own = LUMA[0] * texture[y, x, 0] + LUMA[1] * texture[y, x, 1] + LUMA[2] * texture[y, x, 2]
        out[i] = own - total / max(weight, np.float32(1e-6))


@njit(cache=True, parallel=True)
def _add_grain(flat, where, amount) -> None:
    """Each texel ``where[i]`` of ``flat`` (N, 3) brightened by ``amount[i]`` in luminance, in its own
    colour's proportions, clipped to 0..1."""
    for i in prange(where.shape[0]):
        k = where[i]
        lum = LUMA[0] * flat[k, 0] + LUMA[1] * flat[k, 1] + LUMA[2] * flat[k, 2]
        gain = amount[i] / max(lum, np.float32(1e-3))
        for c in range(3):
            flat[k, c] = min(max(flat[k, c] * (1 + gain), np.float32(0.0)), np.float32(1.0))


def _fill_hidden(
    texture: np.ndarray,
    weights: np.ndarray,
    hidden_mask: np.ndarray,
    geometry: AtlasGeometry,
    surface: UVSurface,
    xy: np.ndarray,
    hidden: np.ndarray,
    shadow: StyleShadow | None,
) -> None:
    """The texels the atlas does not hold, filled in place from their neighbours in UV space (from
    their neighbours on the surface where those are other islands: ``across_islands``). Under a
    style's cel shadow the fill is two: from the neighbours in the shadow and from those out of it,
    and each such texel takes them as far as the shadow falls on its own normal (a toon bust's
    neck: the shadow under the jaw went on down the neck as far as the atlas held it, then stopped
    in a hard edge where the plain fill smeared it out)."""
    across = across_islands(geometry, surface)
    if shadow is None:
        fill(texture, weights, where=hidden_mask)
        across.apply(texture.reshape(-1, 3))
        return
    covered = covered_index(surface)
    shown = np.zeros(surface.mask.size, np.float32)
    shown[covered] = np.clip(geometry.sample(shadow.atlas_map[..., None], xy)[:, 0], 0.0, 1.0)
    shown = shown.reshape(surface.mask.shape) * weights
    if shown.sum() < 16:  # no texel the atlas holds shows the shadow: the plain fill
        fill(texture, weights, where=hidden_mask)
        across.apply(texture.reshape(-1, 3))
        return
    lit, dark = texture.copy(), texture
    fill(lit, weights - shown, where=hidden_mask)
    fill(dark, shown, where=hidden_mask)
    across.apply(lit.reshape(-1, 3), (weights - shown).reshape(-1))
    # The shadow's own tone where no texel near on the surface shows it (the inside of a mouth).
    flat_shown = shown.reshape(-1)[covered]
    tone = (texture.reshape(-1, 3)[covered] * flat_shown[:, None]).sum(axis=0) / flat_shown.sum()
    across.apply(dark.reshape(-1, 3), shown.reshape(-1), tone)
    where = covered[hidden]
    if surface.cavity is None:
        cavity = np.zeros(len(where), np.float32)
    else:  # the folds of the mesh itself, in eye distances
        sigma, tri_id, bary = shadow.cavity_sigma_iod * shadow.eye_distance, surface.tri_id, surface.bary
        cavity = surface.cavity.at_texels(
            sigma, tri_id.reshape(-1)[where][None], bary.reshape(-1, 3)[where][None]
        )[0]
        cavity = cavity / np.float32(shadow.eye_distance)
    own = shadow.at(surface.normals[hidden], cavity, surface.positions[hidden])
    own = np.clip(own, 0.0, 1.0)[:, None].astype(np.float32)
    flat, flat_lit = texture.reshape(-1, 3), lit.reshape(-1, 3)
    flat[where] = own * flat[where] + (1.0 - own) * flat_lit[where]


def bake(
    geometry: AtlasGeometry,
    atlas_color: np.ndarray,
    surface: UVSurface,
    detail: np.ndarray | None = None,
    padding: int | None = None,
    background: tuple[float, float, float] = (0.5, 0.5, 0.5),
    photo: SurfacePhoto | None = None,
    grain: bool = False,
    shadow: StyleShadow | None = None,
    painted: SurfacePaint | None = None,
) -> np.ndarray:
    """The (N, N, 3) float32 texture in the mesh's UV map.

    ``detail`` (M, 3), optional, is added to the covered texels after sampling the atlas: fine
    portrait detail at the texture's own resolution, which the atlas may be too coarse to hold.
    ``photo``, optional: the photo read on covered texels the atlas does not hold; laid over their
    fill as far as it is confident, with the fill's tone at large scales (``_put_photo``).
    ``padding`` defaults to 1/128 of the size (8 texels at 1024). Texels the atlas does not hold are
    filled from their neighbours in UV space and, with ``grain`` (a colour texture, not a map of
    weights), given skin grain (``_grain_where_hidden``). ``shadow``, optional: a style's cel
    shadow, which those texels take at their own normals (``_fill_hidden``). ``painted``, optional:
    texels with a colour of their own (``SurfacePaint``: separate eyeballs, a mouth's inside), which
    they take last, whatever was sampled, filled, read from the photo or added there (and no skin
    grain).

    Each pass over the texture is one compiled loop over its rows (a 4096² texture has 16 M texels).
    """
    size = surface.tri_id.shape[0]
    atlas_color = _padded(geometry, np.asarray(atlas_color, np.float32))
    xy, hidden = surface_in_atlas(geometry, surface)
    values = geometry.sample(atlas_color, xy)
    tri_id = np.ascontiguousarray(surface.tri_id, np.int32)
    row_start = covered_rows(surface)
    texture = np.empty((size, size, 3), np.float32)
    weights = np.empty((size, size), np.float32)
    hidden_mask = np.empty((size, size), np.bool_)
    fill_colour = np.asarray(background, np.float32)
    _place(tri_id, row_start, values, hidden, fill_colour, texture, weights, hidden_mask)
    del values
    if hidden.any():
        # Surfaces the atlas cannot show (a neck behind the chest along the same rays, the back of an
        # ear) would read another surface's colour: fill them in UV space from their visible
        # neighbours instead, and from their own photo where it saw them.
        _fill_hidden(texture, weights, hidden_mask, geometry, surface, xy, hidden, shadow)
        if photo is not None and len(photo.index):
            _put_photo(texture, surface, photo, geometry.frame.scale)
    del weights
    has_detail = detail is not None
    detail_arr = np.ascontiguousarray(detail, np.float32) if has_detail else np.zeros((1, 3), np.float32)
    _add_detail_and_clip(tri_id, row_start, detail_arr, has_detail, texture)
    if hidden.any() and grain:
        _grain_where_hidden(texture, geometry, surface, hidden_mask, photo, painted)
    if painted is not None and len(painted.index):  # eyes at rest, a mouth's inside: whatever was held
        texture.reshape(-1, 3)[covered_index(surface)[painted.index]] = painted.color
    pad = max(2, size // 128) if padding is None else padding
    hit = surface.mask
    targets, sources, _ = _cached(surface, f"pad{pad}", lambda: raster.padding_index(hit, pad))
    flat = texture.reshape(-1, 3)
    flat[targets] = flat[sources]  # padding reads covered texels only: in place is safe
    return texture


def warm_up() -> None:
    """Load the compiled kernels (numba's on-disk cache) ahead of the first request."""
    tri_id = np.zeros((2, 2), np.int32)
    rows = np.array([0, 2, 4], np.int64)
    texture = np.zeros((2, 2, 3), np.float32)
    values = np.zeros((4, 3), np.float32)
    _place(
        tri_id,
        rows,
        values,
        np.zeros(4, np.bool_),
        np.zeros(3, np.float32),
        texture,
        np.zeros((2, 2), np.float32),
        np.zeros((2, 2), np.bool_),
    )
    _add_detail_and_clip(tri_id, rows, values, True, texture)
    index = np.zeros(1, np.int64)
    _fine_band_at(texture, np.ones((2, 2), np.bool_), index, np.ones(3, np.float32), np.empty(1, np.float32))
    _add_grain(texture.reshape(-1, 3), index, np.zeros(1, np.float32))
