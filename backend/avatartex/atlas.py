"""The canonical head atlas: one square map of the head that does not depend on the artist's UVs.

All 2D work (projection, inpaint, latent, repaint) happens here; only the final bake reads it into the
mesh's own UV layout. Coordinates are taken in the *head frame* (``HeadFrame``): origin near the centre
of the skull, +x towards the character's left, +y up, +z out of the face, one unit = the distance
between the eye centres. A surface point's direction from the origin gives longitude ``theta``
(0 = straight ahead, + towards the character's left) and latitude ``phi``.

Layout of an S x S atlas::

    rows [0, band_rows)   the band: a cylindrical map of longitude x latitude, face in the middle,
                          the single seam at the back of the head (columns 0 and S-1 are neighbours)
    rows [band_rows, S)   two discs: the crown (left) and under the chin (right), azimuthal maps of
                          the directions beyond the band's latitude range

The band's longitude is warped (``u = 0.5 + (theta + a sin theta) / 2 pi``) so the face gets three
times the texels of the back of the head. Everything is mirror-symmetric about the face's symmetry
plane (``AtlasGeometry.mirror``), which the classic inpaint uses for symmetric completion. The caps
overlap the band by a ring of latitudes; ``harmonise_charts`` makes their colours agree there so the
bake is continuous across chart borders.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

from . import raster
from .imaging import sample_image
from .meshframe import MeshFrame, mesh_frame
from .occlusion import MeshCavity

BAND = 1
CROWN = 2
CHIN = 3

EYES_AHEAD_IOD = 1.35
"""How far the eyes sit in front of the head frame's origin, in eye distances."""
MOUTH_BELOW_TYPICAL = 1.15
"""How far the mouth lies below the head frame's origin on a typical head, eye distances (the demo
head 1.15, the scanned head 1.23; a stylised one with big eyes 1.01, the scanned head made 1.3 times
wider and 0.85 times as tall 0.87)."""


@dataclass
class HeadFrame:
    """The head's own coordinate frame, from mesh landmarks."""

    origin: np.ndarray
    """(3,) the frame's origin in mesh space."""
    axes: np.ndarray
    """(3, 3) rows: x (character's left), y (up), z (out of the face), unit vectors in mesh space."""
    scale: float
    """Mesh units per head-frame unit (the distance between the eye centres)."""
    mouth_below: float = MOUTH_BELOW_TYPICAL
    """How far the mouth lies below the frame's origin (head-frame units): the face's height in eye
    distances, short on a head made wider (a wider head's eyes are further apart)."""

    @property
    def stretch(self) -> float:
        """By how much this face's heights are shorter than a typical face's (1 or more): heights
        below the face times this read as a typical face's (``repaint.head_part``)."""
        return max(1.0, MOUTH_BELOW_TYPICAL / max(float(self.mouth_below), 0.3))

    def to_head(self, points: np.ndarray) -> np.ndarray:
        """Mesh-space points (..., 3) in head-frame coordinates."""
        return (np.asarray(points, np.float64) - self.origin) @ self.axes.T / self.scale

    def directions_to_head(self, vectors: np.ndarray) -> np.ndarray:
        """Mesh-space direction vectors (..., 3), e.g. normals, rotated into the head frame."""
        return np.asarray(vectors, np.float64) @ self.axes.T

    @classmethod
    def from_landmarks(
        cls, right_eye: np.ndarray, left_eye: np.ndarray, mouth: np.ndarray, nose_tip: np.ndarray
    ) -> HeadFrame:
        """The frame from the eye centres, the mouth centre and the nose tip (mesh space).

        The origin sits behind the eyes where the skull's centre is on an adult head (1.35 eye
        distances back, 0.1 up): the latitude/longitude map is then close to area-preserving on
        the skull.
        """
        right_eye, left_eye, mouth, nose_tip = (
            np.asarray(p, np.float64) for p in (right_eye, left_eye, mouth, nose_tip)
        )
        x = left_eye - right_eye
        scale = float(np.linalg.norm(x))
        x /= scale
        eyes = (left_eye + right_eye) / 2
        up = eyes - mouth
        y = up - x * (up @ x)
        y /= np.linalg.norm(y)
        z = np.cross(x, y)
        if (nose_tip - eyes) @ z < 0:  # a mirrored mesh: keep z out of the face, x then flips
            z, x = -z, -x
        origin = eyes - EYES_AHEAD_IOD * scale * z + 0.1 * scale * y
        return cls(origin, np.stack([x, y, z]), scale, float((origin - mouth) @ y / scale))


@dataclass
class AtlasLayout:
    """Where each direction around the head lands in the S x S atlas (independent of any mesh)."""

    size: int
    lat_top: float = np.radians(55.0)
    lat_bottom: float = np.radians(-70.0)
    overlap: float = np.radians(10.0)
    """Latitudes by which the caps overlap the band."""
    warp: float = 0.5
    """Longitude warp a: the face gets (1 + a) / (1 - a) times the texels of the back."""

    @property
    def band_rows(self) -> int:
        return int(round(0.75 * self.size))

    @property
    def face_texels_per_iod(self) -> float:
        """Atlas texels per eye distance on the face: EYES_AHEAD_IOD from the frame's origin, where
        the band's longitude warp gives the front 1 + warp times the mean texels per radian."""
        return self.size * (1 + self.warp) / (2 * np.pi) / EYES_AHEAD_IOD

    @property
    def cap_radius(self) -> float:
        return (self.size - self.band_rows) / 2 - 1.0

    def cap_center(self, chart: int) -> tuple[float, float]:
        """Pixel centre (x, y) of a cap disc; the x are chosen so that mirroring is an index flip."""
        y = self.band_rows + (self.size - self.band_rows) / 2
        return (self.size / 4 if chart == CROWN else 3 * self.size / 4), y

    def band_xy(self, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """Band pixel coordinates (..., 2) of longitudes/latitudes (theta may run past +-pi)."""
        x = (0.5 + (theta + self.warp * np.sin(theta)) / (2 * np.pi)) * self.size
        y = (self.lat_top - phi) / (self.lat_top - self.lat_bottom) * self.band_rows
        return np.stack([x, y], axis=-1)

    def cap_xy(self, theta: np.ndarray, phi: np.ndarray, chart: int) -> np.ndarray:
        """Cap pixel coordinates (..., 2): azimuthal equidistant around the up (crown) or down pole."""
        if chart == CROWN:
            psi, extent, sign = np.pi / 2 - phi, np.pi / 2 - self.lat_top, 1.0
        else:
            psi, extent, sign = np.pi / 2 + phi, np.pi / 2 + self.lat_bottom, -1.0
        r = psi / (extent + self.overlap) * self.cap_radius
        cx, cy = self.cap_center(chart)
        return np.stack([cx + r * np.sin(theta), cy + sign * r * np.cos(theta)], axis=-1)

    def band_under_caps(self, full: float, fade: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The band's texels within ``fade`` radians of its top or bottom edge (``lat_top``,
        ``lat_bottom``, where the bake turns to a cap: a triangle's centroid decides), where each of
        them lies in its cap, and a weight: 1 within ``full`` radians of the edge (a triangle
        straddling it reaches that far), falling smoothly to 0 at ``fade``: (N,) flat atlas indices,
        (N, 2) cap pixel coordinates, (N,) weights. The caps overlap the band by ``overlap`` radians,
        so ``fade`` must not exceed it."""
        if not 0.0 <= full < fade <= self.overlap:
            raise ValueError(f"need 0 <= full < fade <= {self.overlap} radians, got {full}, {fade}")
        s, rows = self.size, self.band_rows
        # Each column's longitude: x = (0.5 + (theta + warp sin theta) / 2pi) s, inverted by Newton.
        target = ((np.arange(s) + 0.5) / s - 0.5) * 2.0 * np.pi
        theta = target.copy()
        for _ in range(20):
            theta -= (theta + self.warp * np.sin(theta) - target) / (1.0 + self.warp * np.cos(theta))
        phi = self.lat_top - (np.arange(rows) + 0.5) / rows * (self.lat_top - self.lat_bottom)
        index, xy, weight = [], [], []
        for cap, edge in ((CROWN, self.lat_top), (CHIN, self.lat_bottom)):
            inside = np.abs(phi - edge)  # radians from the edge, into the band
            near = np.flatnonzero(inside < fade)
            if len(near) == 0:
                continue
            r, c = np.meshgrid(near, np.arange(s), indexing="ij")
            w = np.clip((fade - inside[r]) / (fade - full), 0.0, 1.0)
            index.append((r * s + c).reshape(-1))
            xy.append(self.cap_xy(theta[c], phi[r], cap).reshape(-1, 2))
            weight.append((w * w * (3.0 - 2.0 * w)).reshape(-1))
        if not index:
            return np.zeros(0, np.int64), np.zeros((0, 2), np.float32), np.zeros(0, np.float32)
        return (
            np.concatenate(index).astype(np.int64),
            np.concatenate(xy).astype(np.float32),
            np.concatenate(weight).astype(np.float32),
        )

    def mirror_index(self) -> np.ndarray:
        """(S, S) flat index of each texel's mirror image across the face's symmetry plane."""
        s, rows = self.size, self.band_rows
        r, c = np.mgrid[0:s, 0:s]
        mc = s - 1 - c
        cap = r >= rows
        left = c < s // 2
        mc = np.where(cap & left, s // 2 - 1 - c, mc)
        mc = np.where(cap & ~left, s + s // 2 - 1 - c, mc)
        return (r * s + mc).astype(np.int64)


def directions(points_head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (radians) of head-frame points seen from the origin."""
    p = np.asarray(points_head, np.float64)
    r = np.maximum(np.linalg.norm(p, axis=-1), 1e-12)
    return np.arctan2(p[..., 0], p[..., 2]), np.arcsin(np.clip(p[..., 1] / r, -1, 1))


@dataclass
class AtlasGeometry:
    """The atlas layout filled with one mesh: which surface point each texel shows."""

    layout: AtlasLayout
    frame: HeadFrame
    tri_id: np.ndarray
    """(S, S) int32 triangle of each texel, -1 where the atlas shows no surface."""
    bary: np.ndarray
    """(S, S, 3) float32 barycentrics of each texel in its triangle."""
    positions: np.ndarray
    """(S, S, 3) float32 mesh-space surface point of each texel."""
    normals: np.ndarray
    """(S, S, 3) float32 unit normal of each texel, in head-frame axes."""
    chart: np.ndarray
    """(S, S) uint8: 0 none, BAND, CROWN or CHIN."""
    triangle_xy: np.ndarray
    """(T, 3, 2) float32 atlas pixel coordinates of each triangle's corners in its bake chart."""
    triangle_chart: np.ndarray
    """(T,) uint8 the chart each triangle is baked from."""
    face: np.ndarray
    """(S, S) bool the face region (inside the face's outline), set by ``set_face_region``."""
    cavity: MeshCavity | None = None
    """The mesh's folds (``occlusion.MeshCavity``), measured when a style first draws its shadows;
    None for an atlas not built from a mesh."""
    occlusion: np.ndarray | None = None
    """(S, S) float32 the share of the sky each texel's surface point sees past the mesh
    (``occlusion.vertex_occlusion``: 1 open, lower in creases), set with the head
    (``HeadModel.atlas``); None where it was not measured (the de-lighting then leaves it out)."""
    mesh_frame: MeshFrame | None = None
    """The mesh's own frame (``meshframe.mesh_frame``) in which its surface grain is drawn: the same
    grain at the same surface point however the file turns, scales or moves the mesh. Set by
    ``build_atlas`` (a full-body character's: its whole body's, ``HeadModel.atlas``)."""

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def band_rows(self) -> int:
        return self.layout.band_rows

    @property
    def mask(self) -> np.ndarray:
        """(S, S) bool texels that show the mesh's surface."""
        return self.tri_id >= 0

    @property
    def cache(self) -> dict:
        """Tables the steps derive from this geometry alone (texel footprints, the caps' rings, the
        grain's bands...), kept with it by name: a warm request on the same head reads them instead
        of computing them again. Lives as long as the geometry (``HeadCache`` keeps it per mesh)."""
        return self.__dict__.setdefault("_cache", {})

    def mirror(self, image: np.ndarray) -> np.ndarray:
        """``image`` (S, S, ...) mirrored across the face's symmetry plane."""
        index = self.mirror_index()
        flat = image.reshape(self.size * self.size, *image.shape[2:])
        return flat[index.reshape(-1)].reshape(image.shape)

    def mirror_index(self) -> np.ndarray:
        """(S, S) flat index of each texel's mirror image (``AtlasLayout.mirror_index``), cached."""
        if getattr(self, "_mirror_cache", None) is None:
            self._mirror_cache = self.layout.mirror_index()
        return self._mirror_cache

    def set_face_region(self, outline_xy: np.ndarray) -> None:
        """Mark the face region from the face outline's atlas coordinates (N, 2), a closed polygon."""
        from skimage.draw import polygon2mask

        # polygon2mask takes (row, col) vertices and tests texel centres at integer coordinates.
        rc = np.asarray(outline_xy, np.float64)[:, ::-1] - 0.5
        self.face = polygon2mask((self.size, self.size), rc) & self.mask

    def noise_spacings(self, spacings_iod: np.ndarray) -> np.ndarray:
        """Lattice spacings given in eye distances, in units of the mesh's ``mesh_frame`` (float32)."""
        return (np.asarray(spacings_iod, np.float64) * self.frame.scale / self.mesh_frame.unit).astype(
            np.float32
        )

    def sample(self, image: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Bilinear samples of an atlas image at atlas pixel coordinates (N, 2); wraps in the band."""
        out = sample_image(image, xy, wrap_rows=self.band_rows)
        return out if np.ndim(image) == 3 else out[:, 0]


def _triangle_coords(
    layout: AtlasLayout, head_positions: np.ndarray, triangles: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-corner longitude/latitude with the back seam unwrapped per triangle, and centroid latitude."""
    theta, phi = directions(head_positions)
    t = theta[triangles]
    # A triangle across the back seam has corners near +pi and -pi: move them next to each other.
    ref = t[:, :1]
    t = np.where(t - ref > np.pi, t - 2 * np.pi, np.where(t - ref < -np.pi, t + 2 * np.pi, t))
    p = phi[triangles]
    centroid = head_positions[triangles].mean(axis=1)
    _, centroid_phi = directions(centroid)
    return t, p, centroid_phi, np.linalg.norm(head_positions, axis=1)[triangles]


def build_atlas(
    positions: np.ndarray,
    triangles: np.ndarray,
    normals: np.ndarray,
    frame: HeadFrame,
    size: int,
    own: MeshFrame | None = None,
) -> AtlasGeometry:
    """Rasterise a mesh into the atlas: the surface point, normal and chart of every texel.

    Where several surface points share a direction (folds, ears), the outermost one wins. ``own``:
    the mesh's own frame when the caller has it (a character's whole body's); else the mesh's.
    """
    layout = AtlasLayout(size)
    head = frame.to_head(positions)
    theta, phi, centroid_phi, radius = _triangle_coords(layout, head, triangles)
    s, rows = layout.size, layout.band_rows

    in_band = (centroid_phi <= layout.lat_top) & (centroid_phi >= layout.lat_bottom)
    triangle_chart = np.where(in_band, BAND, np.where(centroid_phi > layout.lat_top, CROWN, CHIN)).astype(
        np.uint8
    )
    band_xy = layout.band_xy(theta, phi)
    triangle_xy = band_xy.copy()

    tri_id = np.full((s, s), -1, np.int32)
    bary = np.zeros((s, s, 3), np.float32)
    chart = np.zeros((s, s), np.uint8)
    depth = -radius  # the outermost surface wins the z-test

    # Band: triangles of the band chart, plus copies shifted by one turn where they cross the seam.
    band_ids = np.flatnonzero(in_band)
    pts = band_xy[band_ids]
    ids, shifted = [band_ids], [pts]
    for shift in (-s, s):
        moved = pts + np.array([shift, 0.0])
        crosses = (moved[..., 0].max(axis=1) > 0) & (moved[..., 0].min(axis=1) < s)
        ids.append(band_ids[crosses])
        shifted.append(moved[crosses])
    ids_all = np.concatenate(ids)
    band_tri, band_bary, _ = raster.rasterize_triangles(np.concatenate(shifted), depth[ids_all], rows, s)
    hit = band_tri >= 0
    tri_id[:rows][hit] = ids_all[band_tri[hit]]
    bary[:rows][hit] = band_bary[hit]
    chart[:rows][hit] = BAND

    # Caps: the triangles beyond the band's latitudes, and a ring of band triangles they overlap.
    for cap in (CROWN, CHIN):
        if cap == CROWN:
            chosen = centroid_phi > layout.lat_top - layout.overlap
        else:
            chosen = centroid_phi < layout.lat_bottom + layout.overlap
        cap_ids = np.flatnonzero(chosen)
        if len(cap_ids) == 0:
            continue
        cap_xy = layout.cap_xy(theta[cap_ids], phi[cap_ids], cap)
        triangle_xy[cap_ids[triangle_chart[cap_ids] == cap]] = cap_xy[triangle_chart[cap_ids] == cap]
        cx, cy = layout.cap_center(cap)
        r = layout.cap_radius
        x0, y0 = int(np.floor(cx - r - 1)), int(np.floor(cy - r - 1))
        w = int(np.ceil(2 * r + 2))
        local = cap_xy - np.array([x0, y0])
        c_tri, c_bary, _ = raster.rasterize_triangles(local, depth[cap_ids], w, w)
        yy, xx = np.mgrid[0:w, 0:w]
        inside = (c_tri >= 0) & ((xx + 0.5 + x0 - cx) ** 2 + (yy + 0.5 + y0 - cy) ** 2 <= r * r)
        inside &= (yy + y0 >= rows) & (yy + y0 < s) & (xx + x0 >= 0) & (xx + x0 < s)
        rr, cc = yy[inside] + y0, xx[inside] + x0
        tri_id[rr, cc] = cap_ids[c_tri[inside]]
        bary[rr, cc] = c_bary[inside]
        chart[rr, cc] = cap

    hit = tri_id >= 0
    corners = np.ascontiguousarray(triangles, np.int64)
    pos = np.zeros((s, s, 3), np.float32)
    _barycentric_mix(np.ascontiguousarray(positions), corners, tri_id, bary, pos)
    mixed_normals = np.zeros((s, s, 3), np.result_type(normals, np.float32))
    _barycentric_mix(np.ascontiguousarray(normals), corners, tri_id, bary, mixed_normals)
    n = frame.directions_to_head(mixed_normals[hit])
    nrm = np.zeros((s, s, 3), np.float32)
    nrm[hit] = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    face = np.zeros((s, s), bool)
    geometry = AtlasGeometry(
        layout, frame, tri_id, bary, pos, nrm, chart, triangle_xy.astype(np.float32), triangle_chart, face
    )
    geometry.cavity = MeshCavity(positions, triangles, normals)
    geometry.mesh_frame = own if own is not None else mesh_frame(positions, triangles, frame.axes)
    return geometry


@njit(cache=True)
def _barycentric_mix(
    values: np.ndarray, triangles: np.ndarray, tri_id: np.ndarray, bary: np.ndarray, out: np.ndarray
) -> None:
    """``out[r, c] = sum_k bary[r, c, k] * values[triangles[t, k]]`` where ``t = tri_id[r, c] >= 0``,
    summed in the order and precision numpy's ``(corners * bary).sum(axis=1)`` uses (the gathers of
    that formulation cost a new mesh's atlas 0.2 s at 1024)."""
    h, w = tri_id.shape
    for r in range(h):
        for c in range(w):
            t = tri_id[r, c]
            if t < 0:
                continue
            i0, i1, i2 = triangles[t, 0], triangles[t, 1], triangles[t, 2]
            b0, b1, b2 = bary[r, c, 0], bary[r, c, 1], bary[r, c, 2]
            for k in range(values.shape[1]):
                out[r, c, k] = values[i0, k] * b0 + values[i1, k] * b1 + values[i2, k] * b2


CAP_OFFSET_REDUCTION = 4
"""The caps' colour offset field is blurred at 1/4 of the atlas's resolution: it is a Gaussian of
sigma cap_radius / 4 (32 texels at 1024), smooth at the scale of 4 texels, and a full-resolution
blur of it cost 60 ms of CPU per request (two 256-texel kernels). At 1/4 the baked texture differs
from the full-resolution one's by at most 0.06/255 (mean 0.001/255) on the scanned and demo heads."""


@dataclass
class _CapRing:
    """What ``harmonise_charts`` needs of one cap that depends on the geometry alone."""

    rows: np.ndarray
    """(N,) texel rows of the cap."""
    cols: np.ndarray
    """(N,) their columns."""
    ring: np.ndarray
    """(N,) bool the cap texels whose triangle the band also holds."""
    band_xy: np.ndarray
    """(R, 2) the band's pixel coordinates of the ring texels."""
    box: tuple[int, int, int, int]
    """r0, r1, c0, c1: the cap's bounding box, its size a multiple of CAP_OFFSET_REDUCTION."""
    coverage: np.ndarray
    """(h, w) the ring's blurred weight at the reduced size (normalises the blurred offsets)."""


def _reduced_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A cap's box reduced by CAP_OFFSET_REDUCTION and blurred there (zeros around the box)."""
    h, w = image.shape[:2]
    k = CAP_OFFSET_REDUCTION
    small = cv2.resize(image, (w // k, h // k), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (0, 0), sigma / k, borderType=cv2.BORDER_CONSTANT).reshape(small.shape)


def _cap_rings(geometry: AtlasGeometry) -> list[_CapRing]:
    """The caps' rings and bounding boxes, computed once per atlas geometry."""
    cache = geometry.cache
    if "cap_rings" in cache:
        return cache["cap_rings"]
    rings = []
    k = CAP_OFFSET_REDUCTION
    sigma = geometry.layout.cap_radius / 4
    for cap in (CROWN, CHIN):
        in_cap = geometry.chart == cap
        if not in_cap.any():
            continue
        rr, cc = np.nonzero(in_cap)
        ids = geometry.tri_id[rr, cc]
        ring = geometry.triangle_chart[ids] == BAND
        if not ring.any():
            continue
        corners_xy = geometry.triangle_xy[ids[ring]]
        xy = (corners_xy * geometry.bary[rr[ring], cc[ring]][..., None]).sum(axis=1)
        # Only where the band holds the surface round the point: its charts end in teeth near its
        # top and bottom rows, and a point there or past the band's edge read whatever lay between
        # them (a dark "M" on the crown's front, with the photo's hair over it).
        within = (xy[:, 1] >= 0.0) & (xy[:, 1] <= geometry.band_rows - 1)
        held = geometry.sample(geometry.mask[: geometry.band_rows].astype(np.float32), xy) >= 1.0 - 1e-4
        keep = within & held
        ring[np.flatnonzero(ring)[~keep]] = False
        xy = xy[keep]
        if not ring.any():
            continue
        r0, c0 = int(rr.min()), int(cc.min())
        r1 = r0 + -(-(int(rr.max()) + 1 - r0) // k) * k
        c1 = c0 + -(-(int(cc.max()) + 1 - c0) // k) * k
        weight = np.zeros((r1 - r0, c1 - c0), np.float32)
        weight[rr[ring] - r0, cc[ring] - c0] = 1.0
        coverage = _reduced_blur(weight, sigma)
        rings.append(_CapRing(rr, cc, ring, xy.astype(np.float32), (r0, r1, c0, c1), coverage))
    cache["cap_rings"] = rings
    return rings


def harmonise_charts(geometry: AtlasGeometry, color: np.ndarray) -> np.ndarray:
    """Make the cap discs agree with the band where they overlap, and shift the rest of each cap smoothly.

    The stages work on the atlas image as a whole, so a cap and the band may end up with slightly
    different colours for the same surface. The bake reads band triangles from the band and cap
    triangles from the caps; this makes the ring where both exist identical and carries the colour
    offset into the cap's interior with a smooth (normalised-blur) field, so no edge appears.
    """
    out = color.copy()
    sigma = geometry.layout.cap_radius / 4
    for cap in _cap_rings(geometry):
        rr, cc, ring = cap.rows, cap.cols, cap.ring
        # The band's rows only: a bilinear tap past its last row would read the caps below it.
        band_color = geometry.sample(color[: geometry.band_rows], cap.band_xy)
        # Work on the cap's bounding box only, at a quarter of its resolution (the field is smooth).
        r0, r1, c0, c1 = cap.box
        offset = np.zeros((r1 - r0, c1 - c0, color.shape[2]), np.float32)
        offset[rr[ring] - r0, cc[ring] - c0] = band_color - color[rr[ring], cc[ring]]
        smooth = _reduced_blur(offset, sigma) / np.maximum(cap.coverage, 1e-6)[..., None]
        smooth = cv2.resize(smooth, (c1 - c0, r1 - r0), interpolation=cv2.INTER_LINEAR)
        smooth = smooth.reshape(offset.shape)
        out[rr, cc] = color[rr, cc] + smooth[rr - r0, cc - c0]
        out[rr[ring], cc[ring]] = band_color
    return out


def warm_up() -> None:
    """Load the compiled kernel (numba's on-disk cache) ahead of the first request."""
    out = np.zeros((1, 1, 3), np.float32)
    one = np.ones((1, 3), np.float32)
    _barycentric_mix(one, np.zeros((1, 3), np.int64), np.zeros((1, 1), np.int32), out, out.copy())
