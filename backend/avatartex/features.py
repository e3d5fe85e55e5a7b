"""The face's features (eyes, brows, lips, nose, jaw) as polylines in the head atlas, for the styles.

A toon or comic texture draws its outlines along the eyes, brows and lips: the ink has to follow the
contours the texture actually shows, not whatever edges noise and smears make. The portrait's 468
landmarks say where those contours are in the photo; ``ctx.portrait_coords`` says which photo pixel
each atlas texel shows, so each landmark is found in the atlas by inverting that map (the nearest
texel in photo space, refined by the map's local Jacobian). Where the photo does not show a landmark
on the mesh (a 3/4 view's far eye, an occluded point) the same feature on the other side is
mirrored, and failing that the mesh's own landmark is projected into the atlas (``head frame ->
directions -> band``), shifted by how far the seen points of that feature moved.

Polylines are atlas pixel coordinates (x, y) in the band (x may run past the seam, atlas columns
wrap); closed contours repeat their first point at the end. ``draw_strokes`` and ``fill_regions``
rasterise them with anti-aliasing and a width profile per stroke.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .atlas import AtlasGeometry, directions
from .face import (
    JAW,
    LEFT_EYE_CONTOUR,
    LEFT_EYEBROW_OUTLINE,
    LIPS_INNER,
    LIPS_OUTER,
    NOSE_LOWER,
    RIGHT_EYE_CONTOUR,
    RIGHT_EYEBROW_OUTLINE,
)

FEATURES: dict[str, tuple[tuple[int, ...], bool]] = {
    "right_eye": (RIGHT_EYE_CONTOUR, True),
    "left_eye": (LEFT_EYE_CONTOUR, True),
    "right_brow": (RIGHT_EYEBROW_OUTLINE, True),
    "left_brow": (LEFT_EYEBROW_OUTLINE, True),
    "lips_outer": (LIPS_OUTER, True),
    "lips_inner": (LIPS_INNER, True),
    "nose": (NOSE_LOWER, False),
    "jaw": (JAW, False),
}
"""Feature name -> (mediapipe landmark indices along the contour, closed)."""
MIRRORED = {
    "right_eye": "left_eye",
    "left_eye": "right_eye",
    "right_brow": "left_brow",
    "left_brow": "right_brow",
}
"""Features whose landmark lists run in mirror-corresponding order (33 <-> 263, 46 <-> 276 ...)."""
OWN_OUTLINE = ("jaw", "lips_inner")
"""Features drawn where the mesh's own landmarks put them, not the photo's: the jaw is the head's
outline, which a style inks where the head turns under, whatever the photo's jaw was (on a sculpt
with a wider jaw than the photographed face's, the photo's jaw crossed the cheeks as a line); the
inner lips are where the mesh's lips meet or part, whatever the photo's mouth does (the astronaut's
open smile drew the line where the lips meet on the upper lip of a closed mouth, and left the
lower lip's middle unfilled)."""
_SUBDIVIDE = 6
"""Points per landmark segment of the smoothed polylines (a 1024 atlas's eye is ~100 texels wide)."""


def _portrait_to_atlas(
    landmarks: np.ndarray, coords: np.ndarray, rows: int, search: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Each portrait point's atlas position by inverting ``coords`` (band rows only); NaN if unseen.

    The band's texels are splatted into a grid of the portrait's pixels (texel index per pixel);
    each point takes the texel, among those splatted within ``search`` pixels, whose photo position
    is nearest, then moves by the inverse of the map's local Jacobian. Returns the (N, 2) atlas
    positions and the (N,) residual in texels.
    """
    points = np.asarray(landmarks, np.float64)
    n = len(points)
    out = np.full((n, 2), np.nan)
    residual = np.full(n, np.inf)
    band = np.asarray(coords[:rows], np.float32)
    h, w = band.shape[:2]
    finite = np.isfinite(points).all(axis=1)
    if not finite.any():
        return out, residual
    lo = np.floor(points[finite].min(axis=0)).astype(int) - search - 1
    hi = np.ceil(points[finite].max(axis=0)).astype(int) + search + 2
    # Comparisons with NaN are false: this also drops the unseen texels.
    x, y = band[..., 0], band[..., 1]
    near = (x >= lo[0]) & (x < hi[0]) & (y >= lo[1]) & (y < hi[1])
    flat = np.flatnonzero(near)
    if flat.size == 0:
        return out, residual
    px = np.floor(band.reshape(-1, 2)[flat]).astype(np.int64) - lo
    gw, gh = int(hi[0] - lo[0]), int(hi[1] - lo[1])
    grid = np.full((gh, gw), -1, np.int64)
    grid[px[:, 1], px[:, 0]] = flat
    # Candidates: every splatted texel in a (2 search + 1)^2 window around each point.
    ids = np.flatnonzero(finite)
    base = np.floor(points[ids]).astype(np.int64) - lo
    offsets = np.arange(-search, search + 1)
    oy, ox = np.meshgrid(offsets, offsets, indexing="ij")
    cy = np.clip(base[:, 1, None] + oy.reshape(1, -1), 0, gh - 1)
    cx = np.clip(base[:, 0, None] + ox.reshape(1, -1), 0, gw - 1)
    cand = grid[cy, cx]
    cand_xy = band.reshape(-1, 2)[np.maximum(cand, 0)]
    dist = np.where(cand >= 0, np.linalg.norm(cand_xy - points[ids, None, :], axis=-1), np.inf)
    best = np.argmin(dist, axis=1)
    texel = cand[np.arange(len(ids)), best]
    ok = texel >= 0
    ids, texel = ids[ok], texel[ok]
    r, c = texel // w, texel % w
    here = band[r, c].astype(np.float64)
    # Jacobian d(photo)/d(atlas) by central differences (columns wrap around the back seam).
    jx = (band[r, (c + 1) % w] - band[r, (c - 1) % w]).astype(np.float64) / 2.0
    r0, r1 = np.maximum(r - 1, 0), np.minimum(r + 1, h - 1)
    jy = (band[r1, c] - band[r0, c]).astype(np.float64) / np.maximum(r1 - r0, 1)[:, None]
    jac = np.stack([jx, jy], axis=2)  # (K, 2 photo, 2 atlas)
    det = jac[:, 0, 0] * jac[:, 1, 1] - jac[:, 0, 1] * jac[:, 1, 0]
    good = np.isfinite(det) & (np.abs(det) > 1e-9)
    err = points[ids] - here
    delta = np.zeros_like(err)
    inv = (
        np.stack([np.stack([jac[:, 1, 1], -jac[:, 0, 1]], 1), np.stack([-jac[:, 1, 0], jac[:, 0, 0]], 1)], 1)
        / np.where(good, det, 1.0)[:, None, None]
    )
    delta[good] = np.clip(np.einsum("kij,kj->ki", inv[good], err[good]), -1.5, 1.5)
    predicted = here + np.where(good[:, None], np.einsum("kij,kj->ki", np.nan_to_num(jac), delta), 0.0)
    footprint = np.where(good, np.sqrt(np.abs(np.where(good, det, 1.0))), 1.0)
    out[ids] = np.stack([c + 0.5 + delta[:, 0], r + 0.5 + delta[:, 1]], axis=1)
    residual[ids] = np.linalg.norm(points[ids] - predicted, axis=1) / np.maximum(footprint, 1e-3)
    return out, residual


def _mesh_to_atlas(geometry: AtlasGeometry, points3d: np.ndarray) -> np.ndarray:
    """Mesh-space points (N, 3) into the atlas band (N, 2); NaN stays NaN."""
    theta, phi = directions(geometry.frame.to_head(np.asarray(points3d, np.float64)))
    return geometry.layout.band_xy(theta, phi)


def landmarks_in_atlas(
    geometry: AtlasGeometry,
    portrait_landmarks: np.ndarray,
    portrait_coords: np.ndarray,
    mesh_points3d: np.ndarray | None = None,
    max_residual: float = 2.0,
) -> np.ndarray:
    """(468, 2) atlas position of every landmark the texture shows, NaN where none is known.

    Where the photo shows it: the inverted ``portrait_coords``. A landmark whose inversion misses
    by more than ``max_residual`` texels (the photo shows it, but not on this mesh's visible
    surface) is left for the fallbacks of ``feature_lines``.
    """
    found, residual = _portrait_to_atlas(portrait_landmarks, portrait_coords, geometry.band_rows)
    found[~(residual <= max_residual)] = np.nan
    return found


def _drop_outliers(pts: np.ndarray, prior: np.ndarray | None, tolerance: float, closed: bool) -> np.ndarray:
    """``pts`` (N, 2) with the points that are out of place set to NaN.

    The photo's point can be found on another surface that the photo shows next to it (an ear or
    the neck beside the jaw): such a point is far from where the mesh's landmark puts it (after
    the feature's median shift), or far from both its neighbours along the contour.
    """
    pts = np.asarray(pts, np.float64).copy()
    ok = np.isfinite(pts).all(axis=1)
    if prior is not None:
        both = ok & np.isfinite(prior).all(axis=1)
        if both.sum() >= 3:
            shift = np.median(pts[both] - prior[both], axis=0)
            far = np.linalg.norm(pts - prior - shift, axis=1) > tolerance
            pts[both & far] = np.nan
            ok = np.isfinite(pts).all(axis=1)
    if ok.sum() >= 4:
        q = pts[ok]
        step = np.linalg.norm(np.diff(q, axis=0, append=q[:1] if closed else q[-1:]), axis=1)
        before = np.roll(step, 1) if closed else np.concatenate([[0.0], step[:-1]])
        typical = max(float(np.median(step[step > 0])) if (step > 0).any() else 1.0, 1.0)
        jump = np.minimum(np.where(before > 0, before, np.inf), np.where(step > 0, step, np.inf))
        bad = np.flatnonzero(ok)[jump > 6 * typical]
        pts[bad] = np.nan
    return pts


def _catmull_rom(points: np.ndarray, closed: bool, steps: int = _SUBDIVIDE) -> np.ndarray:
    """A smooth curve through ``points`` (N, 2) (centripetal-free uniform Catmull-Rom)."""
    p = np.asarray(points, np.float64)
    if len(p) < 3:
        return p.astype(np.float32)
    if closed:
        ext = np.concatenate([p[-1:], p, p[:2]])
    else:
        ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    segments = len(p) if closed else len(p) - 1
    t = np.linspace(0.0, 1.0, steps, endpoint=False)[:, None]
    t2, t3 = t * t, t * t * t
    out = []
    for i in range(segments):
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        out.append(
            0.5
            * (
                2 * p1
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t3
            )
        )
    curve = np.concatenate(out + [p[:1] if closed else p[-1:]])
    return curve.astype(np.float32)


def feature_lines(
    geometry: AtlasGeometry,
    portrait_landmarks: np.ndarray,
    portrait_coords: np.ndarray,
    mesh_points3d: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Smooth atlas polylines (N, 2) of each feature of :data:`FEATURES` the texture can place.

    Each landmark comes from the photo (inverted projection) where it can; else from the mirrored
    twin feature (eyes, brows); else from the mesh's landmark, moved by the feature's median offset
    between photo and mesh. A feature with fewer than 70 % of its points placed is left out.
    """
    found = landmarks_in_atlas(geometry, portrait_landmarks, portrait_coords, mesh_points3d)
    mesh_xy = None
    if mesh_points3d is not None and np.isfinite(mesh_points3d).any():
        mesh_xy = _mesh_to_atlas(geometry, mesh_points3d)
    s = geometry.size
    lines: dict[str, np.ndarray] = {}
    # Texels per eye distance on the face: the scale of what counts as a landmark out of place.
    per_iod = geometry.layout.face_texels_per_iod
    for name, (indices, closed) in FEATURES.items():
        idx = np.asarray(indices)
        if name in OWN_OUTLINE and mesh_xy is not None and np.isfinite(mesh_xy[idx]).all():
            # An outline of the head's own shape, not of what the photo shows on it.
            lines[name] = _catmull_rom(_unwrapped(mesh_xy[idx], s), closed)
            continue
        pts = _drop_outliers(found[idx], None if mesh_xy is None else mesh_xy[idx], 0.2 * per_iod, closed)
        missing = ~np.isfinite(pts).all(axis=1)
        twin = MIRRORED.get(name)
        if missing.any() and twin is not None:
            twin_pts = found[np.asarray(FEATURES[twin][0])]
            mirrored = np.stack([s - twin_pts[:, 0], twin_pts[:, 1]], axis=1)
            pts[missing] = mirrored[missing]
            missing = ~np.isfinite(pts).all(axis=1)
        if missing.any() and mesh_xy is not None:
            own = mesh_xy[idx]
            seen = ~missing & np.isfinite(own).all(axis=1)
            offset = np.median(pts[seen] - own[seen], axis=0) if seen.sum() >= 3 else np.zeros(2)
            pts[missing] = own[missing] + offset
            missing = ~np.isfinite(pts).all(axis=1)
        if missing.mean() > 0.3:
            continue
        lines[name] = _catmull_rom(_unwrapped(pts[~missing], s), closed)
    return lines


DRAWN_ON_THE_HEAD = ("lips_outer", "lips_inner", "nose", "jaw")
"""Features the flat styles draw where the mesh's own landmarks put them (``drawn_lines``): a style
that redraws the lips and the nose draws them on the head's lips and nose, whatever the photo's
registration left of its own (Grace Hopper on the scanned head: her lower lip's shadow a blotch
under the head's lip). Not the eyes: the mesh's eye contour read on its unpainted render is
narrower than its opening (a lid's edge without the sclera's contrast), and smaller on a stylised
head's big eyes than the photo's warped onto them; drawn there (as read, or the photo's eye laid on
its centre and width), every head squinted or its eyes shrank, and its brows moved with them left
their shadow behind."""


def drawn_lines(
    geometry: AtlasGeometry, photo_lines: dict[str, np.ndarray], mesh_points3d: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The feature lines a flat style draws: ``DRAWN_ON_THE_HEAD`` from the mesh's own landmarks (each
    where all of its landmarks are known), every other the photo's (``photo_lines``,
    ``feature_lines``). The colours are still read from the photo's lines (its lips)."""
    if mesh_points3d is None or not np.isfinite(mesh_points3d).any():
        return dict(photo_lines)
    mesh_xy = _mesh_to_atlas(geometry, mesh_points3d)
    lines = dict(photo_lines)
    for name in DRAWN_ON_THE_HEAD:
        idx, closed = FEATURES[name]
        own = _gaps_filled(mesh_xy[np.asarray(idx)], closed)
        if own is not None:
            lines[name] = _catmull_rom(_unwrapped(own, geometry.size), closed)
    return lines


UNKNOWN_SHARE = 0.25
"""Share of a feature's mesh landmarks that may be unknown (``_gaps_filled``). A landmark the mesh's
renders did not place (one below the ear, behind the jaw's turn) is not a reason to draw the
feature where the photo's registration put it: the stylised demo head missed one of its 21 jaw
points and comic inked the photo's jaw across its cheeks, a second smile 0.3 eye distances above its
own jaw."""


def _gaps_filled(points: np.ndarray, closed: bool) -> np.ndarray | None:
    """``points`` (N, 2) with the unknown (NaN) ones interpolated from their neighbours along the
    line (around it when ``closed``; an open line's ends continued straight), or None when more than
    ``UNKNOWN_SHARE`` of them, or fewer than two, are known."""
    points = np.asarray(points, np.float64)
    known = np.isfinite(points).all(axis=1)
    if known.all():
        return points
    n = len(points)
    if known.sum() < 2 or (~known).sum() > UNKNOWN_SHARE * n:
        return None
    index = np.flatnonzero(known).astype(np.float64)
    wanted = np.arange(n, dtype=np.float64)
    filled = points.copy()
    for axis in range(2):
        value = points[known, axis]
        if closed:
            # Around the loop: the known points repeated a turn before and after.
            at, value = np.concatenate([index - n, index, index + n]), np.tile(value, 3)
            filled[:, axis] = np.interp(wanted, at, value)
        else:
            inner = np.interp(wanted, index, value)
            # Beyond the first and last known points: on along their neighbours' step.
            first, second, last, before = index[0], index[1], index[-1], index[-2]
            head = value[0] + (wanted - first) * (value[1] - value[0]) / (second - first)
            tail = value[-1] + (wanted - last) * (value[-1] - value[-2]) / (last - before)
            filled[:, axis] = np.where(wanted < first, head, np.where(wanted > last, tail, inner))
    return filled


def _unwrapped(pts: np.ndarray, size: int) -> np.ndarray:
    """``pts`` (N, 2) with consecutive points on the same side of the atlas's back seam (features
    never span it, but be safe)."""
    pts = np.array(pts, np.float64)
    step = (np.diff(pts[:, 0]) + size / 2) % size - size / 2
    pts[:, 0] = pts[0, 0] + np.concatenate([[0.0], np.cumsum(step)])
    return pts


# -- drawing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stroke:
    """One inked line: a polyline and its width profile along it."""

    points: np.ndarray
    """(N, 2) atlas pixel coordinates."""
    width: np.ndarray
    """(N,) full width in texels at each point."""


def taper(n: int, width: float, ends: float = 0.15, power: float = 0.6) -> np.ndarray:
    """A brush-like width profile: ``width`` in the middle, thinning to ``ends`` x width at both ends."""
    s = np.linspace(0.0, 1.0, n)
    return (width * (ends + (1 - ends) * np.sin(np.pi * s) ** power)).astype(np.float32)


def arc(line: np.ndarray, start: float, stop: float) -> np.ndarray:
    """The part of a polyline between two fractions of its point count (wrapping for closed ones)."""
    n = len(line) - 1
    i0, i1 = int(round(start * n)), int(round(stop * n))
    if i1 >= i0:
        return line[i0 : i1 + 1]
    return np.concatenate([line[i0:n], line[: i1 + 1]])


_SUPER = 4
"""Strokes are drawn at 4x and averaged down: anti-aliased, with quarter-texel widths."""


def draw_strokes(shape: tuple[int, int], strokes: list[Stroke]) -> np.ndarray:
    """(H, W) float32 ink coverage 0..1 of ``strokes`` (round caps, per-point widths, anti-aliased).

    Only the strokes' bounding box is rasterised; columns past the atlas's edge wrap around.
    """
    h, w = shape
    ink = np.zeros((h, w), np.float32)
    strokes = [st for st in strokes if len(st.points) >= 2 and np.isfinite(st.points).all()]
    if not strokes:
        return ink
    pts = np.concatenate([st.points for st in strokes])
    pad = float(max(st.width.max() for st in strokes)) + 2
    x0, y0 = int(np.floor(pts[:, 0].min() - pad)), max(int(np.floor(pts[:, 1].min() - pad)), 0)
    x1, y1 = int(np.ceil(pts[:, 0].max() + pad)), min(int(np.ceil(pts[:, 1].max() + pad)), h)
    if y1 <= y0 or x1 <= x0:
        return ink
    canvas = np.zeros(((y1 - y0) * _SUPER, (x1 - x0) * _SUPER), np.uint8)
    for st in strokes:
        p = np.round((st.points - [x0, y0]) * _SUPER).astype(np.int32)
        widths = np.maximum(np.round(st.width * _SUPER).astype(int), 1)
        for a, b, wa, wb in zip(p[:-1], p[1:], widths[:-1], widths[1:], strict=True):
            cv2.line(canvas, tuple(int(v) for v in a), tuple(int(v) for v in b), 255, int((wa + wb) // 2))
    small = cv2.resize(canvas, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    cols = np.arange(x0, x1) % w  # columns past the edge wrap around the back seam
    ink[y0:y1, cols] = np.maximum(ink[y0:y1, cols], small)
    return ink


def fill_polygon(shape: tuple[int, int], line: np.ndarray, feather: float = 0.0) -> np.ndarray:
    """(H, W) float32 0..1 coverage of the closed polygon ``line``, anti-aliased, optionally feathered."""
    h, w = shape
    canvas = np.zeros((h, w), np.uint8)
    if len(line) < 3 or not np.isfinite(line).all():
        return canvas.astype(np.float32)
    p = np.round(np.asarray(line, np.float64) * 16).astype(np.int32)
    cv2.fillPoly(canvas, [p], 255, lineType=cv2.LINE_AA, shift=4)
    out = canvas.astype(np.float32) / 255
    if feather > 0:
        out = cv2.GaussianBlur(out, (0, 0), feather)
    return out


def distance_to_lines(shape: tuple[int, int], lines: list[np.ndarray]) -> np.ndarray:
    """(H, W) float32 distance in texels from each texel to the nearest of ``lines`` (no wrap)."""
    h, w = shape
    canvas = np.full((h, w), 255, np.uint8)
    for line in lines:
        if len(line) >= 2 and np.isfinite(line).all():
            p = np.round(np.asarray(line, np.float64) * 16).astype(np.int32)
            cv2.polylines(canvas, [p], False, 0, 1, lineType=cv2.LINE_8, shift=4)
    return cv2.distanceTransform(canvas, cv2.DIST_L2, 5)


def _resample(line: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along a polyline."""
    step = np.linalg.norm(np.diff(line, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(step)])
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, line[:, 0]), np.interp(t, s, line[:, 1])], axis=1).astype(np.float32)


def brow_arc(outline: np.ndarray, n: int = 40) -> np.ndarray:
    """``brow_midline`` drawn as one arc: its offset from the chord between its ends fitted by a
    parabola. The detector's brow widens and lifts at its head, and the midline hooked up there: an
    ink tick at each brow's inner end that gave every face a frown (QA)."""
    mid = brow_midline(outline, n).astype(np.float64)
    chord = mid[-1] - mid[0]
    length = float(np.linalg.norm(chord))
    if length < 1e-6:
        return mid.astype(np.float32)
    along_dir = chord / length
    across_dir = np.array([-along_dir[1], along_dir[0]])
    along, across = (mid - mid[0]) @ along_dir, (mid - mid[0]) @ across_dir
    curve = np.polyfit(along, across, 2)
    t = np.linspace(along.min(), along.max(), n)
    return (mid[0] + t[:, None] * along_dir + np.polyval(curve, t)[:, None] * across_dir).astype(np.float32)


def brow_midline(outline: np.ndarray, n: int = 40) -> np.ndarray:
    """The centre line of a brow from its closed outline (lower edge outer->inner, then upper edge
    inner->outer, as in ``face.RIGHT_EYEBROW_OUTLINE``): outer end to inner end."""
    loop = np.asarray(outline[:-1], np.float64)
    half = len(loop) // 2
    lower = _resample(loop[: half + 1], n)
    upper = _resample(np.concatenate([loop[half:], loop[:1]]), n)[::-1]
    return (0.5 * (lower + upper)).astype(np.float32)
