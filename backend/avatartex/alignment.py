"""Dense refinement of a landmark registration: align the mesh's shading structure with the photo.

Landmark detectors place points slightly differently on a textured photo and on an untextured render
of the mesh; that bias (a few percent of the eye distance) survives any landmark fit. Here the mesh
is rendered from the registered camera under the photo's own light (``landmarks.render_lit_like``),
the photo is resampled into that camera's pixels, and an optical flow between the two (on
contrast-normalised images) is fitted robustly with a smooth quadratic field, weighted by where the
render has structure (nose, eyes, lips, ears, the silhouette). How much of the correction is applied
moves smoothly with what it measured (``trust``): all of it when it clearly improves the agreement of
the two images and stays small, none when it does not (a photo of someone else's face than the
mesh's, or one whose texture dominates its shading, is left to the landmarks), part of it between,
so that two nearly equal registrations never get one correction applied and the other refused.

Measured on the scanned head rendered from an untold camera (``bench/accuracy.py``): the mean error
against the true projection falls from 0.038 to 0.013 of the eye distance. On ``bench/sweep.py``'s
varied portraits it rarely finds a clear gain (see the issue 8 note).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .imaging import channel_mean

WORK_IOD_PX = 64.0
"""The flow runs where the portrait's eye distance spans this many pixels (the photo and the render
are resampled to it; never above the photo's own size). The correction is a quadratic field over
the whole face, so its few coefficients need no finer pixels: what sets this is the eyelids', lips'
and nostrils' shading still showing, which it does at 64."""
WORK_SIDE = 640
"""Nor does the flow run wider than this many pixels (a face filling the photo)."""
NORMALISE_IOD = 0.03
"""Radius (Gaussian sigma) of the local contrast normalisation, in eye distances: creases and
feature edges kept, smooth light differences removed."""
STRUCTURE_IOD = 0.06
"""Radius over which the render's edge strength is pooled into the weight of a flow vector."""
WARP_GRID_PX = 4
"""The registration's warp is evaluated every this many work pixels (a sixteenth of the eye distance
at WORK_IOD_PX, as the warp's own grid: ``registration.GRID_STEP``) and interpolated in between:
exact evaluation at every pixel was most of the refinement's cost; read this way it stays within
0.15 px of exact (tests/test_alignment.py)."""
AGREEMENT_RAMP = (0.06, 0.14)
"""Normalised cross-correlation of the render and the corrected photo over which the correction
fades in (none below the first, all of it above the second). Where the two agree this little, the
photo's texture or light hides the mesh's shading and the flow follows noise. Measured on 31 cases
of ``bench/sweep.py`` (the registration alone, against the true camera): every correction that
ended above 0.15 helped (true misplacement 0.11 -> 0.05 on the scanned head, 0.06 -> 0.01 on the
demo head), every one below 0.03 hurt (0.48 -> 0.74 at worst). The rise of the correlation is a
poorer judge: on copies of one mesh moved it ranged from -0.04 to +0.26 while the corrected
registrations all landed within 0.015 of each other."""
OFFSET_RAMP_IOD = (0.6, 0.8)
"""Largest displacement of the correction (eye distances) over which it fades out: beyond, it is the
flow following the photo's texture, not a registration error (the helpful ones in those cases moved
a point by up to 0.58)."""


OUTLINE_BOUNDS_DENSE_IOD = (0.15, 0.3)
"""Largest displacement of the dense correction (eye distances) over which it fades out where the
head's outline placed the camera (``outline_refit``'s weight): on bench/sweep.py, with the outline's
camera taken, corrections moving the face by 0.19-0.44 made it worse in 7 cases (r019 0.018 -> 0.056,
r018 0.030 -> 0.067, r000 0.012 -> 0.042) and better by more than 0.005 in one (r048, 0.227); those
under 0.16 helped or did nothing (the invariance blocks' 0.04-0.07 among them)."""


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 below ``lo``, 1 above ``hi``, smooth (3t² - 2t³) in between."""
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def trust(agreement: float, offset_iod: float, outline_weight: float = 0.0) -> float:
    """How much of a dense correction to apply, 0..1, from what it measured: the images' agreement
    once corrected (``AGREEMENT_RAMP``) and its largest displacement (``OFFSET_RAMP_IOD``, and
    ``OUTLINE_BOUNDS_DENSE_IOD`` as far as the head's outline placed the camera: ``outline_weight``,
    ``outline_refit``'s); a soft decision, so that two nearly equal registrations (the same mesh
    moved, the same photo) get nearly equal corrections instead of one applied and one not."""
    share = _ramp(agreement, *AGREEMENT_RAMP) * (1.0 - _ramp(offset_iod, *OFFSET_RAMP_IOD))
    return share * (1.0 - outline_weight * _ramp(offset_iod, *OUTLINE_BOUNDS_DENSE_IOD))


@dataclass
class QuadraticOffset:
    """A smooth 2D offset field: a quadratic polynomial in normalised pixel coordinates."""

    coeffs: np.ndarray
    """(2, 6) coefficients of 1, u, v, u², uv, v² for the x and y offsets (pixels)."""
    center: tuple[float, float]
    size: tuple[float, float]

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, np.float64) + self.offset(xy)

    def offset(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) offsets at pixel positions (N, 2)."""
        xy = np.asarray(xy, np.float64)
        u = (xy[:, 0] - self.center[0]) / self.size[0]
        v = (xy[:, 1] - self.center[1]) / self.size[1]
        basis = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
        return basis @ self.coeffs.T


@dataclass
class CorrectedWarp:
    """The registration's warp applied after a dense correction in camera pixels."""

    base: object
    correction: QuadraticOffset

    def __call__(self, points: np.ndarray) -> np.ndarray:
        return self.base(self.correction(points))

    @property
    def smoothing(self) -> float:
        """The base warp's smoothing (``Registration.report`` reads it)."""
        return getattr(self.base, "smoothing", 0.0)


def _normalised(gray: np.ndarray, sigma: float) -> np.ndarray:
    """Local contrast normalisation: (g - local mean) / local std; removes smooth light differences."""
    mean = cv2.GaussianBlur(gray, (0, 0), sigma)
    var = cv2.GaussianBlur((gray - mean) ** 2, (0, 0), sigma)
    return (gray - mean) / np.sqrt(var + 1e-4)


def _ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    a, b = a[mask], b[mask]
    return float((a * b).mean() / np.sqrt(max((a * a).mean() * (b * b).mean(), 1e-12)))


def _work_camera(camera, interocular: float):
    """The registered camera at the flow's resolution (``WORK_IOD_PX``, ``WORK_SIDE``) and its scale."""
    scale = min(1.0, WORK_IOD_PX / max(interocular, 1e-6), WORK_SIDE / max(camera.width, camera.height))
    return camera.scaled(scale), scale


def _warp_grid(warp, shape: tuple[int, int], scale: float) -> np.ndarray:
    """(gh, gw, 2) float32 photo pixels the warp gives the work pixels (k, l) * WARP_GRID_PX, one
    row of nodes beyond the image on each side (a correction may read a little outside it)."""
    h, w = shape
    gh, gw = -(-h // WARP_GRID_PX) + 3, -(-w // WARP_GRID_PX) + 3
    gy, gx = (np.mgrid[0:gh, 0:gw] - 1) * WARP_GRID_PX
    cam_xy = np.stack([(gx.ravel() + 0.5) / scale, (gy.ravel() + 0.5) / scale], axis=1)
    return np.asarray(warp(cam_xy), np.float32).reshape(gh, gw, 2)


def _photo_coords(
    grid: np.ndarray, correction: QuadraticOffset | None, shape: tuple[int, int], scale: float
) -> np.ndarray:
    """(h, w, 2) float32 photo pixel of every work pixel: moved by the correction (camera pixels),
    then through the warp read bilinearly from its ``grid`` (``_warp_grid``): one evaluation of the
    warp serves the refinement's every reading of the photo."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if correction is not None:
        cam_xy = np.stack([(xs.ravel() + 0.5) / scale, (ys.ravel() + 0.5) / scale], axis=1)
        moved = (correction(cam_xy) * scale - 0.5).astype(np.float32)
        xs, ys = moved[:, 0].reshape(h, w), moved[:, 1].reshape(h, w)
    # Work pixel p sits at grid index p / step + 1 (the extra row of nodes).
    return cv2.remap(
        grid, xs / WARP_GRID_PX + 1, ys / WARP_GRID_PX + 1, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def refine(
    registration, positions: np.ndarray, triangles: np.ndarray, normals: np.ndarray, portrait: np.ndarray
):
    """The registration with as much of a dense correction as its evidence supports (``trust``).

    Its ``alignment`` says what was measured and decided: ``ncc_before``, ``ncc_after``,
    ``max_offset_iod``, ``weight`` (the share of the correction applied) and ``applied``
    (weight > 0), for the report.
    """
    from .landmarks import render_lit_like

    cam = registration.camera
    iod = registration.interocular
    work, scale = _work_camera(cam, iod)
    shape = (work.height, work.width)
    sigma = NORMALISE_IOD * iod * scale
    image_photo = np.ascontiguousarray(portrait, np.float32)

    grid = _warp_grid(registration.warp, shape, scale)

    def photo_in_camera(correction: QuadraticOffset | None) -> np.ndarray:
        photo_xy = _photo_coords(grid, correction, shape, scale)
        return cv2.remap(
            image_photo,
            photo_xy[..., 0] - 0.5,
            photo_xy[..., 1] - 0.5,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )

    seen = photo_in_camera(None)
    # Rendered under the photo's own light: a flow between two lights follows the shading's shift.
    image, tri_id, _, _ = render_lit_like(positions, triangles, np.asarray(normals, np.float64), work, seen)
    covered = tri_id >= 0
    info = {"applied": False, "weight": 0.0}
    if covered.sum() < 1000:
        return dataclasses.replace(registration, alignment=info)
    h, w = covered.shape
    render = _normalised(channel_mean(image), sigma)
    photo = _normalised(channel_mean(seen), sigma)
    to8 = lambda x: np.clip(x * 40 + 128, 0, 255).astype(np.uint8)  # noqa: E731
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(to8(render), to8(photo), None)

    # Where the render has structure, the flow is about geometry; elsewhere it only sees the photo.
    gray = channel_mean(image)
    structure = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    structure = cv2.GaussianBlur(structure * covered, (0, 0), STRUCTURE_IOD * iod * scale)
    step = max(2, w // 96)
    gy, gx = np.mgrid[0:h:step, 0:w:step]
    weight = structure[gy, gx].ravel()
    fx, fy = flow[gy, gx, 0].ravel() / scale, flow[gy, gx, 1].ravel() / scale
    centre, size = (cam.width / 2, cam.height / 2), (float(cam.width), float(cam.height))
    u = ((gx.ravel() + 0.5) / scale - centre[0]) / size[0]
    v = ((gy.ravel() + 0.5) / scale - centre[1]) / size[1]
    basis = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
    keep = weight > np.quantile(weight, 0.7)
    coeffs = np.zeros((2, 6))
    for _ in range(5):  # iteratively reweighted: drop the flow vectors the smooth field cannot explain
        wk = weight * keep
        coeffs = np.stack([np.linalg.lstsq(basis * wk[:, None], f * wk, rcond=None)[0] for f in (fx, fy)])
        residual = np.hypot(basis @ coeffs[0] - fx, basis @ coeffs[1] - fy)
        keep &= residual < 3.0 * (1.4826 * float(np.median(residual[keep])) + 1e-3)
        if keep.sum() < 20:
            return dataclasses.replace(registration, alignment=info)
    correction = QuadraticOffset(coeffs, centre, size)
    mask = covered & (structure > np.quantile(structure[covered], 0.5))
    before = _ncc(render, photo, mask)
    after = _ncc(render, _normalised(channel_mean(photo_in_camera(correction)), sigma), mask)
    ys, xs = np.nonzero(covered)
    covered_xy = np.stack([(xs + 0.5) / scale, (ys + 0.5) / scale], axis=1)
    moved = float(np.linalg.norm(correction.offset(covered_xy), axis=1).max() / iod)
    # Where the head's outline already placed the camera, a correction that moves the face further
    # than the outline's fit allows is the flow following the photo's texture.
    share = trust(after, moved, float(registration.outline.get("weight", 0.0)))
    info = {
        "applied": share > 0.0,
        "weight": round(share, 4),
        "ncc_before": round(before, 4),
        "ncc_after": round(after, 4),
        "max_offset_iod": round(moved, 4),
    }
    if share <= 0.0:
        return dataclasses.replace(registration, alignment=info)
    applied = QuadraticOffset(coeffs * share, centre, size)
    return dataclasses.replace(registration, warp=CorrectedWarp(registration.warp, applied), alignment=info)


# -- the head's outline ------------------------------------------------------------------------------
OUTLINE_IOD_PX = 96.0
"""The outline is matched where the portrait's eye distance spans this many pixels (never above the
photo's own size, nor wider than ``OUTLINE_SIDE``): a pixel is then 0.01 eye distances, and the edge
is found between pixels."""
OUTLINE_SIDE = 1280
"""Nor does the outline's image run wider than this many pixels (twice the dense flow's
``WORK_SIDE``: at 640 a 1024-pixel portrait's outline was read at 0.6 of its pixels, and copies of
the demo head turned 70° about a tilted axis got textures 1.00/255 apart on bench/sweep.py; 0.92
with this and a fourth round)."""
OUTLINE_SPACING_PX = 2.0
"""Work pixels between two of the outline's points."""
OUTLINE_SEARCH_IOD = (0.2, 0.08, 0.04, 0.03)
"""How far (eye distances) each round looks for the photo's edge on either side of the outline:
wide first, then around the outline of the refitted camera; the last round lets the fit settle."""
OUTLINE_FRAME_PX = 3
"""Outline points this close to the image's border are the frame cutting the head, not its edge."""
OUTLINE_INLIER_IOD = 0.015
"""A point whose edge the refitted camera leaves further than this (eye distances) does not agree."""
OUTLINE_SHARE_RAMP = (0.5, 0.75)
"""Share of the outline's points (by length) that agree with the refitted camera over which it fades in:
a head whose outline the photo shows (a bald render, a shaved head against a wall) agrees nearly
everywhere; hair, a collar or a busy background leave most points without an edge where the mesh's
outline would put one."""
OUTLINE_GIVE_UP = (0.2, 0.3)
"""Share of agreeing outline points under which the rounds stop, after the first and after each
later one: a photo whose outline hair or clothing hides does not reach OUTLINE_SHARE_RAMP (the
astronaut on the scanned head: 0.09-0.12 after the first round, 0.15-0.19 after the second, six
crops), and each round costs a camera refit. On bench/sweep.py's quick cases the share rose by at
most 0.25 over the rounds, and every case that ended above 0.5 had 0.29 or more after the first."""
OUTLINE_SIDES_MIN = 3
"""Of the four quarters around the head (left, right, above, below), how many must hold agreeing
points: one side alone cannot tell a shift from a scale."""
OUTLINE_LED_LANDMARKS = 0.01
"""What one landmark counts against one outline point in the outline-led pass, which runs where the
landmarks and the outline cannot be fitted together (``OUTLINE_LED_FADE``). The photo's landmarks
are read from its colours (eyes, brows, lips) and the mesh's from its shading: on bench/sweep.py's
made-up faces (a face painted where the sculpture has one) the two disagree by 0.05-0.2 eye
distances, and the camera fitted to them turned the head around its face, misplacing the scalp, ears
and neck by 0.15-0.3 while the face itself was off by 0.06-0.1. The outline says where the head is;
the landmarks, at this weight, only choose among the cameras that fit it."""
OUTLINE_LED_SEARCH_IOD = (0.4, 0.2, 0.08, 0.04, 0.03)
"""The outline-led pass's rounds (``OUTLINE_SEARCH_IOD``'s meaning): it starts from a camera the
outline disagrees with, by 0.1-0.25 eye distances on the made-up faces, so it looks wider first and
takes every round (a share of 0.15 after the first rose to 0.48)."""
OUTLINE_LED_FADE = (0.4, 0.5)
"""Share of the outline agreeing with the joint fit over which the outline-led pass gives way to it:
all of it below the first value, none from the second, where the joint fit starts to be taken
(``OUTLINE_SHARE_RAMP``), so the camera never jumps between the two."""
OUTLINE_START_CLEAR = 0.3
"""Share of the outline's points with a clear edge (from the landmarks' camera) from which a head's
outline that camera could not fit is searched for from the outline's own placement
(``outline_start``): under it the photo shows no outline worth the second that costs. A camera a
misread face put 0.4 eye distances off and 30 % too far finds a clear edge for 0.37-0.49 of its
outline on tests/test_alignment.py's bald head; bench/sweep.py's cases, 0.62 and more."""
OUTLINE_START_BELOW = 0.5
"""The joint or led pass's weight under which that search runs: above it the photo confirms the
landmarks' camera's outline well enough."""


@dataclass
class _OutlinePoints:
    """Points of the mesh's outline in the work image, each with its outward normal."""

    xy: np.ndarray
    """(N, 2) work pixels."""
    normal: np.ndarray
    """(N, 2) unit, pointing out of the head."""


def _outline_points(covered: np.ndarray) -> _OutlinePoints | None:
    """The silhouette's outer contour, sampled every OUTLINE_SPACING_PX, frame cuts left out."""
    mask = covered.astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    step = max(1, int(round(OUTLINE_SPACING_PX)))
    pieces = [c[::step, 0, :] for c in contours if len(c) >= 20]
    if not pieces:
        return None
    xy = np.concatenate(pieces).astype(np.float64)
    h, w = covered.shape
    inside = (
        (xy[:, 0] >= OUTLINE_FRAME_PX)
        & (xy[:, 0] < w - OUTLINE_FRAME_PX)
        & (xy[:, 1] >= OUTLINE_FRAME_PX)
        & (xy[:, 1] < h - OUTLINE_FRAME_PX)
    )
    xy = xy[inside]
    if len(xy) < 20:
        return None
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2.0)
    gx, gy = cv2.Sobel(soft, cv2.CV_32F, 1, 0), cv2.Sobel(soft, cv2.CV_32F, 0, 1)
    ix, iy = xy[:, 0].astype(int), xy[:, 1].astype(int)
    normal = -np.stack([gx[iy, ix], gy[iy, ix]], axis=1).astype(np.float64)
    length = np.linalg.norm(normal, axis=1)
    keep = length > 1e-6
    return _OutlinePoints(xy[keep] + 0.5, normal[keep] / length[keep, None])


def _edge_along(
    image: np.ndarray, xy: np.ndarray, normal: np.ndarray, reach: float, context: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the offset along its normal (pixels, within ±``reach``) of the photo's
    strongest colour edge, nearer ones preferred, and that edge's strength over the median of the
    profile's over ±``context`` (its contrast: the same measure whatever the reach)."""
    half = max(reach, context)
    offsets = np.arange(-half, half + 0.25, 0.5, dtype=np.float64)
    px = (xy[:, None, 0] + offsets[None, :] * normal[:, None, 0]).astype(np.float32)
    py = (xy[:, None, 1] + offsets[None, :] * normal[:, None, 1]).astype(np.float32)
    profile = cv2.remap(image, px - 0.5, py - 0.5, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    step = np.abs(profile[:, 2:] - profile[:, :-2]).sum(axis=2)  # colour change over one pixel
    inner = offsets[1:-1]
    preferred = step * np.exp(-0.5 * (inner / max(reach, 1e-6)) ** 2)[None, :]
    preferred[:, np.abs(inner) > reach] = -1.0
    best = np.argmax(preferred, axis=1)
    rows = np.arange(len(xy))
    # Sub-pixel: the parabola through the peak and its neighbours.
    lo, hi = np.clip(best - 1, 0, step.shape[1] - 1), np.clip(best + 1, 0, step.shape[1] - 1)
    a, b, c = step[rows, lo], step[rows, best], step[rows, hi]
    denom = a - 2 * b + c
    shift = np.where(np.abs(denom) > 1e-9, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    offset = inner[best] + 0.5 * np.clip(shift, -1, 1)
    contrast = b / (np.median(step, axis=1) + 1e-3)
    return offset, contrast


@dataclass
class OutlineMatches:
    """The mesh's outline from a camera, each point with the photo's edge found along its normal."""

    points3d: np.ndarray
    """(N, 3) surface points on the silhouette (world)."""
    target: np.ndarray
    """(N, 2) photo pixels of the edge each was matched to."""
    normal: np.ndarray
    """(N, 2) unit outward normals of the outline there (photo pixels)."""
    weight: np.ndarray
    """(N,) 0..1 how clear that edge is (its contrast along the profile)."""
    misfit_iod: float
    """Median distance of the outline from its edges, eye distances."""


OUTLINE_CONTRAST = (1.5, 3.0)
"""An edge's strength over its profile's median over which a match counts from nothing to fully."""


@dataclass
class OutlineSearch:
    """The mesh's outline seen from a registration's camera, ready to be matched to the photo's
    edges from that camera and from cameras near it: the silhouette is rasterised once, and its
    surface points, re-projected, stand for it from a refitted camera (it slides over the surface
    by a fraction of a pixel for the changes a refit makes)."""

    points3d: np.ndarray
    """(N, 3) surface points on the silhouette's outer contour (world), the frame's cuts left out."""
    normal: np.ndarray
    """(N, 2) unit outward normals of the outline."""
    image: np.ndarray
    """(h, w, 3) float32 the photo at the work scale, lightly blurred."""
    scale: float
    """Work pixels per photo pixel."""
    interocular: float
    """The portrait's eye distance, photo pixels."""

    positions: np.ndarray = dataclasses.field(repr=False, default=None)
    """(V, 3) the mesh's vertices, to see its outline again from another camera (``seen_from``)."""
    triangles: np.ndarray = dataclasses.field(repr=False, default=None)
    """(F, 3) its triangles."""

    @classmethod
    def start(
        cls, camera, interocular: float, positions: np.ndarray, triangles: np.ndarray, portrait: np.ndarray
    ) -> OutlineSearch | None:
        side = max(camera.width, camera.height)
        scale = min(1.0, OUTLINE_IOD_PX / max(interocular, 1e-6), OUTLINE_SIDE / side)
        work = camera.scaled(scale)
        image = np.ascontiguousarray(portrait, np.float32)
        if scale < 1.0:
            image = cv2.resize(image, (work.width, work.height), interpolation=cv2.INTER_AREA)
        image = cv2.GaussianBlur(image, (0, 0), 0.7)
        empty = np.zeros((0, 3))
        search = cls(empty, empty[:, :2], image, float(scale), float(interocular), positions, triangles)
        return search.seen_from(camera)

    def seen_from(self, camera) -> OutlineSearch | None:
        """The same search with the outline the mesh shows from ``camera``: the silhouette runs over
        another line of the surface when the camera comes closer or goes further (a sphere's, by
        10-15° of its arc between a 60° and a 15° lens at the same framing), which the points of
        the first camera's outline, re-projected, cannot follow. None where it has too few points."""
        from .raster import interpolate, rasterize_camera

        work = camera.scaled(self.scale)
        tri_id, bary, _ = rasterize_camera(self.positions, self.triangles, work)
        points = _outline_points(tri_id >= 0)
        if points is None:
            return None
        ix, iy = (points.xy - 0.5).astype(int).T
        world = interpolate(
            np.asarray(self.positions, np.float64), self.triangles, tri_id[iy, ix][None], bary[iy, ix][None]
        )[0]
        return dataclasses.replace(self, points3d=world.astype(np.float64), normal=points.normal)

    def match(self, camera, warp_offset: np.ndarray, reach_iod: float) -> OutlineMatches:
        """Each outline point, projected by ``camera`` and moved by ``warp_offset`` (the
        registration's warp there: ``OutlineSearch.warp_offset``) into the photo, matched to the
        photo's strongest colour edge within ``reach_iod`` eye distances along its normal."""
        photo_xy = camera.project(self.points3d)[0] + warp_offset
        iod_px = self.interocular * self.scale
        offset, contrast = _edge_along(
            self.image,
            photo_xy * self.scale,
            self.normal,
            max(2.0, reach_iod * iod_px),
            OUTLINE_SEARCH_IOD[0] * iod_px,
        )
        weight = np.clip((contrast - OUTLINE_CONTRAST[0]) / (OUTLINE_CONTRAST[1] - OUTLINE_CONTRAST[0]), 0, 1)
        target = photo_xy + (offset / self.scale)[:, None] * self.normal
        clear = weight > 0
        misfit = float(np.median(np.abs(offset[clear]))) / iod_px if clear.any() else float("nan")
        return OutlineMatches(self.points3d, target, self.normal, weight, misfit)

    def warp_offset(self, camera, warp) -> np.ndarray:
        """(N, 2) how far ``warp`` moves each outline point's projection by ``camera``: a smooth
        field that moves by a small fraction of itself when a refit turns the camera, so it is read
        once per request (the spline's evaluation is most of a round's cost)."""
        projected = camera.project(self.points3d)[0]
        return np.asarray(warp(projected), np.float64) - projected


@dataclass
class _OutlineFit:
    """Where the rounds of an outline search (``_outline_rounds``) left the camera."""

    camera: Any
    matches: Any
    """The last round's ``OutlineSearch.match``."""
    residual: np.ndarray
    """Each outline point's residual along its normal under ``camera`` (pixels)."""
    agree: np.ndarray
    """The points whose edge ``camera`` lays within OUTLINE_INLIER_IOD."""
    share: float
    before: float
    """The outline's misfit under the camera the search started from (eye distances)."""


def _outline_rounds(
    search, registration, offset: np.ndarray, landmark_weight: float, reaches, give_up: bool
) -> _OutlineFit | None:
    """The camera refitted to the landmarks (each counting ``landmark_weight``) and the photo's edges
    along the outline, in rounds that look ``reaches`` eye distances either side of the outline the
    previous round's camera sees (``OutlineSearch.seen_from``: on bench/sweep.py, with the first
    camera's outline re-projected instead, lenses of 50-60° were fitted at 0.93 of their field of
    view, 0.97 this way; the field of view's median error 12.2 % -> 9.2 % at an outline prior of 0.05);
    with ``give_up``, stopped once the agreeing share falls under OUTLINE_GIVE_UP. None where the
    outline has too few points with an edge. ``offset`` is the warp's at ``search``'s points: it is
    read again along each new outline (zero stays zero: a pass that leaves the warp out)."""
    from .registration import refit_to_outline

    iod = registration.interocular
    camera, fit = registration.camera, None
    for round_, reach in enumerate(reaches):
        if round_ > 0:
            # The outline the refitted camera sees, and the warp's offset along it.
            seen = search.seen_from(camera)
            if seen is not None:
                search = seen
                offset = (
                    search.warp_offset(registration.camera, registration.warp)
                    if np.any(offset)
                    else np.zeros((len(search.points3d), 2))
                )
        matches = search.match(camera, offset, reach)
        if (matches.weight > 0).sum() < 20:
            return None
        before = fit.before if fit is not None else matches.misfit_iod
        camera, residual = refit_to_outline(
            dataclasses.replace(registration, camera=camera),
            matches.points3d,
            matches.target,
            matches.normal,
            matches.weight,
            offset,
            landmark_weight,
        )
        agree = (np.abs(residual) < OUTLINE_INLIER_IOD * iod) & (matches.weight > 0)
        fit = _OutlineFit(camera, matches, residual, agree, float(agree.mean()), before)
        if give_up and fit.share < OUTLINE_GIVE_UP[min(round_, len(OUTLINE_GIVE_UP) - 1)]:
            break
    return fit


def _sides(fit: _OutlineFit) -> int:
    """Of the four quarters around the head (left, right, above, below), how many hold at least five
    outline points that agree with ``fit``'s camera."""
    rel = fit.matches.target[fit.agree] - fit.matches.target.mean(axis=0)
    quarters = (
        rel[:, 0] < -0.3 * np.abs(rel[:, 1]),
        rel[:, 0] > 0.3 * np.abs(rel[:, 1]),
        rel[:, 1] < -0.3 * np.abs(rel[:, 0]),
        rel[:, 1] > 0.3 * np.abs(rel[:, 0]),
    )
    return sum(int(q.sum() >= 5) for q in quarters)


def _outline_weight(fit: _OutlineFit, hand_over: float) -> float:
    """How much of ``fit``'s camera is taken: as far as the photo agrees with its outline
    (``OUTLINE_SHARE_RAMP``) on OUTLINE_SIDES_MIN sides, times the led pass's ``hand_over``."""
    return _ramp(fit.share, *OUTLINE_SHARE_RAMP) * float(_sides(fit) >= OUTLINE_SIDES_MIN) * hand_over


def _outline_from_start(
    outline_start: Callable[[], Any],
    registration,
    mesh_landmarks,
    face,
    mesh: tuple[np.ndarray, np.ndarray],
    portrait: np.ndarray,
    fit: _OutlineFit,
) -> _OutlineFit | None:
    """The outline-led pass run from the camera of the head's outline placement (``outline_start``)
    instead of the landmarks' camera; None where there is no such placement, or where the photo
    agrees with its outline less than with ``fit``'s or than ``OUTLINE_SHARE_RAMP``'s start."""
    from .registration import register

    camera = outline_start()
    if camera is None:
        return None
    size = (registration.camera.width, registration.camera.height)
    prior = registration.prior
    search = OutlineSearch.start(camera, registration.interocular, *mesh, portrait)
    if search is None:
        return None
    # The photo's own landmarks, at the outline-led pass's weight, from that camera.
    start = register(mesh_landmarks, face, size, camera_only=True, prior=prior, fitted=camera)
    still = np.zeros((len(search.points3d), 2))
    started = _outline_rounds(
        search, start, still, OUTLINE_LED_LANDMARKS, OUTLINE_LED_SEARCH_IOD, give_up=False
    )
    if started is None or started.share < max(fit.share, OUTLINE_SHARE_RAMP[0]):
        return None
    return started


def outline_refit(
    registration,
    mesh_landmarks,
    face,
    positions: np.ndarray,
    triangles: np.ndarray,
    portrait: np.ndarray,
    outline_start: Callable[[], Any] | None = None,
):
    """The registration with its camera refitted to the head's outline as well as its landmarks,
    as much as the photo confirms that outline (``OUTLINE_SHARE_RAMP`` on ``OUTLINE_SIDES_MIN``
    sides), and its warp fitted again to the landmarks from that camera.

    The mesh's silhouette from the registered camera is matched to the photo's edges
    (``OutlineSearch``), the camera refitted to the landmarks and those matches together
    (``registration.refit_to_outline``), and the search narrowed around the new outline
    (``OUTLINE_SEARCH_IOD``). Hair, a collar or a busy background leave most of the outline without
    an edge it agrees with: the registration then stays as the landmarks put it. Where the photo
    shows the outline but the landmarks pull the camera off it (the photo's face read from its
    colours, the mesh's from its shading: ``OUTLINE_LED_LANDMARKS``), the search runs again led by
    the outline, and that camera is taken as far as the photo confirms it, fading out as the joint
    fit comes to agree (``OUTLINE_LED_FADE``). Its ``outline`` dict says what was measured and how
    much was applied (``weight``; ``led_weight``: the part of it the outline-led pass placed, which
    the verdict reads: the features were then bent onto the mesh's by the warp, not fitted by the
    camera). As far as the outline led, the warp leaves out the landmarks' disagreement with that
    camera as a whole (``registration.placement_part``: the detector's reading, not the face's shape)
    and bends only the face's shape.

    Both passes start from the landmarks' camera and search near it. Where the detector misread the
    face (a skin pattern or a light from below read as features), that camera is far from the
    head's and the outline is not found from it. ``outline_start``, where given, returns the face
    laid out from the head's whole outline (``outline.locate_by_outline``: a grid of views, no
    landmarks), or None; where the photo shows a clear outline that neither pass could fit
    (``OUTLINE_START_BELOW``), the outline-led pass runs once more from that placement's camera
    and is taken where the photo agrees with its outline more (``_outline_from_start``)."""
    from .registration import blend_cameras, register

    iod = registration.interocular
    info = {"applied": False, "weight": 0.0}
    search = OutlineSearch.start(registration.camera, iod, positions, triangles, portrait)
    if search is None:
        return dataclasses.replace(registration, outline=info)
    offset = search.warp_offset(registration.camera, registration.warp)
    fit = _outline_rounds(search, registration, offset, 1.0, OUTLINE_SEARCH_IOD, give_up=True)
    if fit is None:
        return dataclasses.replace(registration, outline=info)
    hand_over = 1.0 - _ramp(fit.share, *OUTLINE_LED_FADE)
    led_fit = None
    if hand_over > 0.0:
        # The warp was fitted to the landmarks the outline disagrees with: not read at the outline.
        still = np.zeros_like(offset)
        led_fit = _outline_rounds(
            search, registration, still, OUTLINE_LED_LANDMARKS, OUTLINE_LED_SEARCH_IOD, give_up=False
        )
        if led_fit is not None:
            fit = led_fit
    started = None
    if outline_start is not None and (fit.matches.weight > 0).mean() >= OUTLINE_START_CLEAR:
        if _outline_weight(fit, hand_over if fit is led_fit else 1.0) < OUTLINE_START_BELOW:
            started = _outline_from_start(
                outline_start, registration, mesh_landmarks, face, (positions, triangles), portrait, fit
            )
    if started is not None:
        fit = led_fit = started
        hand_over = 1.0
    camera, matches, residual, agree, share = fit.camera, fit.matches, fit.residual, fit.agree, fit.share
    clear = matches.weight > 0
    sides = _sides(fit)
    if started is not None:  # another basin than the landmarks' camera's: nothing to blend with
        fraction = float(sides >= OUTLINE_SIDES_MIN)
    else:
        fraction = _outline_weight(fit, hand_over if fit is led_fit else 1.0)
    info = {
        "applied": fraction > 0.0,
        "weight": round(fraction, 4),
        "agreeing_share": round(share, 4),
        "sides": sides,
        "misfit_before_iod": round(fit.before, 4),
        "misfit_after_iod": round(float(np.median(np.abs(residual[agree]))) / iod, 4)
        if agree.any()
        else None,
        "clear_share": round(float(clear.mean()), 4),
        "misfit_clear_iod": round(float(np.median(np.abs(residual[clear]))) / iod, 4)
        if clear.any()
        else None,
        "fov_before_deg": round(registration.camera.fov_y_deg, 2),
        "fov_outline_deg": round(camera.fov_y_deg, 2),
        "led_weight": round(fraction if fit is led_fit else 0.0, 4),
        "from_outline_start": started is not None,
    }
    if fraction <= 0.0:
        return dataclasses.replace(registration, outline=info)
    chosen = blend_cameras(registration.camera, camera, fraction)
    smoothing = getattr(registration.warp, "smoothing", 0.0) or None  # 0: no warp was fitted
    size = (chosen.width, chosen.height)
    refitted = register(
        mesh_landmarks,
        face,
        size,
        prior=registration.prior,
        fitted=chosen,
        smoothing=smoothing,
        placed=info["led_weight"],
    )
    return dataclasses.replace(refitted, outline=info)
