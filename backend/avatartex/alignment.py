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
from dataclasses import dataclass

import cv2
import numpy as np

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


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 below ``lo``, 1 above ``hi``, smooth (3t² - 2t³) in between."""
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def trust(agreement: float, offset_iod: float) -> float:
    """How much of a dense correction to apply, 0..1, from what it measured: the images' agreement
    once corrected (``AGREEMENT_RAMP``) and its largest displacement (``OFFSET_RAMP_IOD``); a soft
    decision, so that two nearly equal registrations (the same mesh moved, the same photo) get
    nearly equal corrections instead of one applied and one not."""
    return _ramp(agreement, *AGREEMENT_RAMP) * (1.0 - _ramp(offset_iod, *OFFSET_RAMP_IOD))


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
    from .camera import Camera

    scale = min(1.0, WORK_IOD_PX / max(interocular, 1e-6), WORK_SIDE / max(camera.width, camera.height))
    width, height = max(1, round(camera.width * scale)), max(1, round(camera.height * scale))
    work = Camera(
        camera.fx * scale,
        camera.fy * scale,
        camera.cx * scale,
        camera.cy * scale,
        camera.R,
        camera.t,
        width,
        height,
    )
    return work, scale


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
    render = _normalised(image.mean(axis=2), sigma)
    photo = _normalised(seen.mean(axis=2), sigma)
    to8 = lambda x: np.clip(x * 40 + 128, 0, 255).astype(np.uint8)  # noqa: E731
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(to8(render), to8(photo), None)

    # Where the render has structure, the flow is about geometry; elsewhere it only sees the photo.
    gray = image.mean(axis=2)
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
    after = _ncc(render, _normalised(photo_in_camera(correction).mean(axis=2), sigma), mask)
    ys, xs = np.nonzero(covered)
    covered_xy = np.stack([(xs + 0.5) / scale, (ys + 0.5) / scale], axis=1)
    moved = float(np.linalg.norm(correction.offset(covered_xy), axis=1).max() / iod)
    share = trust(after, moved)
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
