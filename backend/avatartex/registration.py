"""Registration: where each point of the head's surface lands in the portrait.

Two steps. A perspective camera (pose and focal length) is fitted from the 3D mesh landmarks to the
2D portrait landmarks: a focal-length search with OpenCV's PnP per focal, then a joint robust
Levenberg-Marquardt refinement. What a rigid camera cannot explain — a stylised head's proportions,
an expression — is taken up by a smooth 2D thin-plate-spline warp of the camera's image plane, whose
smoothing is chosen by cross-validation so it follows the face's shape and not the detector's noise.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from .camera import Camera
from .face import FACE_OVAL, NUM_LANDMARKS, Face
from .image_io import FULL_FRAME_DIAGONAL_MM
from .imaging import sample_image

FOV_SEARCH_DEG = (8.0, 12.0, 16.0, 20.0, 25.0, 30.0, 36.0, 43.0, 50.0, 60.0, 72.0, 85.0)
"""Vertical fields of view tried before the joint refinement (portrait lenses to phone wide-angle)."""
FOV_RANGE_DEG = (3.0, 120.0)
"""Bounds of the refined field of view."""
SILHOUETTE_WEIGHT = 0.3
"""Weight of the face-oval landmarks: on the photo they are the silhouette, which slides over the
surface as the view turns, so they are less trustworthy surface points than eyes or lips."""
WARP_SMOOTHING = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
"""Thin-plate-spline smoothing values tried (coordinates in inter-ocular units). Over the sweep's
cases (``bench/sweep.py``) the choice was 0.03-10, mostly 0.3 and 1; 0.003 and 0.01 were never
chosen and cost a quarter of the cross-validation."""
WARP_FOLDS = 4
"""Folds of that cross-validation: each candidate costs one spline fit per fold."""
MIN_POINTS_FOR_WARP = 12
WARP_DEADBAND = 0.05
"""Eye distances a warp displacement must exceed to count: mediapipe's landmarks
on two renders of the same geometry from the same camera disagree by a median 0.04 (0.03-0.06 for
eyes, lips and nose; bench/sweep.py cases, measured against the true camera), and a warp that follows
that disagreement moved the texture further from the truth in 4 of 5 cases. A stylised head's real
differences (a big nose, wide-set eyes) are several times larger and still taken up."""
WARP_REACH = 0.35
"""Eye distances from the nearest landmark over which a warp's displacement fades (Gaussian sigma)."""
PORTRAIT_FOCAL_35MM = 50.0
"""Centre of the field-of-view prior: portraits are taken with 24 mm (phones) to 135 mm (portrait
lenses) equivalent focal lengths; 50 mm is about their geometric middle."""
PRIOR_SIGMA_LOG = 0.45
"""Spread of that prior in log focal length: 24 and 105 mm lie about 1.6 sigma away."""
PRIOR_STRENGTH = 0.3
"""What leaving the focal-length prior by one sigma costs: as much as every landmark moving by this
many times the typical error a camera without the prior leaves."""
FIT_TOLERANCE = 1e-5
"""Relative change of the robust cost and of the parameters at which the camera refinement stops
(scipy's default 1e-8): on 24 fits of the scanned and demo heads to four photos the cameras moved by
at most 1e-4 of the face's width in the photo (the detector's own scatter is a few hundredths) and
the fits took a quarter less time."""
SMALL_FITS_BLAS_THREADS = 1
"""BLAS threads while a registration or the de-lighting's light fit runs (``pipeline.steps.
register_portrait``, ``engines.classic.latent``): least-squares problems of 4-12 parameters over a
few thousand to 40 000 residuals, where OpenBLAS's second thread costs more in hand-overs than it
saves (``bench/speed.py``, warm 1024 request with a new photo on this 2-core machine: register
0.53 -> 0.41 s; the whole request's BLAS limited instead gains nothing more). With the light fit (up to
40 000 residuals, started twice) on two threads a warm request's latent stage took 1.85 s beside
another process on both cores, 1.15 s on one (the median of four requests each)."""


def small_fits(function: Callable) -> Callable:
    """``function`` run with BLAS at ``SMALL_FITS_BLAS_THREADS`` (threadpoolctl: the limit is the
    process's while it runs, and restored after). A backend environment made before threadpoolctl
    was required runs the fits as before, a little slower, rather than not at all."""

    @functools.wraps(function)
    def limited(*args, **kwargs):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            logging.getLogger(__name__).warning(
                "threadpoolctl is missing from the backend environment: the registration and the "
                "de-lighting run slower; reinstall the environment from the add-on's preferences"
            )
            return function(*args, **kwargs)
        with threadpool_limits(limits=SMALL_FITS_BLAS_THREADS, user_api="blas"):
            return function(*args, **kwargs)

    return limited


PRIOR_PIECES = 256
"""The prior's residual is spread over this many equal entries so that each stays in the robust
loss's quadratic zone: the prior is then Gaussian, not turned into a weak L1 pull by the loss."""


@dataclass(frozen=True)
class FovPrior:
    """What is known about the portrait's focal length before the landmarks are read."""

    focal_px: float
    """The most likely focal length, pixels."""
    sigma_log: float
    """Spread in log focal length; 0 holds the focal length fixed (the EXIF's: a camera knows its
    lens better than a face's proportions can tell it)."""
    source: str
    """``exif`` (the photo's own lens data) or ``portrait prior`` (typical portrait lenses)."""

    @classmethod
    def for_image(cls, image_size: tuple[int, int], exif_fov_y_deg: float | None = None) -> FovPrior:
        """The EXIF field of view when the photo has one, else the portrait-lens prior."""
        width, height = image_size
        if exif_fov_y_deg and 1.0 < exif_fov_y_deg < 150.0:
            return cls(_focal_from_fov(exif_fov_y_deg, height), 0.0, "exif")
        focal = PORTRAIT_FOCAL_35MM * float(np.hypot(width, height)) / FULL_FRAME_DIAGONAL_MM
        return cls(focal, PRIOR_SIGMA_LOG, "portrait prior")

    def fov_y_deg(self, height: float) -> float:
        """The most likely vertical field of view, degrees, of an image ``height`` pixels tall."""
        return float(np.degrees(2 * np.arctan(height / 2 / self.focal_px)))


def _rotation(rvec: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.Rodrigues(np.asarray(rvec, np.float64).reshape(3, 1))[0]


def _project(
    points3d: np.ndarray, f: float, cx: float, cy: float, rvec: np.ndarray, tvec: np.ndarray
) -> np.ndarray:
    cam = points3d @ _rotation(rvec).T + tvec
    z = np.where(np.abs(cam[:, 2]) < 1e-9, 1e-9, cam[:, 2])
    return np.stack([f * cam[:, 0] / z + cx, f * cam[:, 1] / z + cy], axis=1)


def _focal_from_fov(fov_deg: float, height: float) -> float:
    return 0.5 * height / np.tan(np.radians(fov_deg) / 2)


def _projection_jacobian(
    points3d: np.ndarray, f: float, cx: float, cy: float, rvec: np.ndarray, tvec: np.ndarray
) -> np.ndarray:
    """(2N, 7) derivatives of ``_project``'s interleaved x, y with respect to log focal length,
    rotation vector and translation: OpenCV's analytic ones, one projection's cost where finite
    differences cost eight."""
    import cv2

    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], np.float64)
    _, d = cv2.projectPoints(points3d, np.asarray(rvec, np.float64), np.asarray(tvec, np.float64), K, None)
    d = d[:, :8]  # columns rvec, tvec, fx, fy (then cx, cy and distortion)
    d[~np.isfinite(d)] = 0.0  # a point on the camera's plane (nan_to_num's overhead: 10 ms a request)
    return np.concatenate([f * (d[:, 6:7] + d[:, 7:8]), d[:, :6]], axis=1)


def fit_camera(
    points3d: np.ndarray,
    points2d: np.ndarray,
    image_size: tuple[int, int],
    weights: np.ndarray | None = None,
    prior: FovPrior | None = None,
    start: Camera | None = None,
) -> tuple[Camera, np.ndarray]:
    """Fit a pinhole camera (square pixels, principal point at the image centre) to correspondences.

    Args:
        points3d: (N, 3) world points, N >= 4 (6+ to determine the focal length well).
        points2d: (N, 2) their pixel positions (x right, y down).
        image_size: (width, height) of the image in pixels.
        weights: (N,) optional non-negative confidence of each correspondence.
        prior: what is known of the focal length (typical portrait lenses when None).
        start: a camera already fitted to nearly the same correspondences (the same face's other
            landmark set): the joint refinement starts from it and the focal-length search (a
            PnP solve per field of view of FOV_SEARCH_DEG) is skipped.

    Returns:
        The camera and the (N,) reprojection error of each point in pixels.

    The focal length is searched over FOV_SEARCH_DEG (PnP for the pose at each), the best start is
    refined jointly (focal + pose) with a soft-L1 robust loss so that a few wrong correspondences do
    not pull the fit, then refined once more without the points it flags as outliers.

    Landmarks of one view pin the focal length down poorly (a longer lens from further away gives
    nearly the same picture), so the fit also pays for leaving ``prior``'s focal length, a Gaussian
    pull: perspective evidence in the landmarks still wins, its absence no longer sends the fit to 3
    or 80 degrees.
    """
    import cv2

    X = np.asarray(points3d, np.float64).reshape(-1, 3)
    x = np.asarray(points2d, np.float64).reshape(-1, 2)
    if len(X) != len(x) or len(X) < 4:
        raise ValueError(f"fit_camera needs >= 4 matching points, got {len(X)} and {len(x)}")
    w = np.ones(len(X)) if weights is None else np.clip(np.asarray(weights, np.float64), 0, None)
    width, height = int(image_size[0]), int(image_size[1])
    cx, cy = width / 2.0, height / 2.0
    sqrt_w = np.sqrt(w)
    # The landmarks' own spread sets the scale of "a big residual" for the robust loss.
    spread = float(np.sqrt(np.average(((x - np.average(x, 0, w)) ** 2).sum(1), weights=w)))
    loss_scale = max(0.5, 0.01 * spread)

    prior = prior or FovPrior.for_image((width, height))
    # A Gaussian pull (PRIOR_PIECES), off for a first fit and then as strong as the landmarks are
    # inconsistent with any camera: exact landmarks decide alone, landmarks of a face with other
    # proportions than the mesh's (which pull the focal length anywhere) lean on the prior.
    prior_scale = [0.0]

    def residuals(params: np.ndarray, mask: np.ndarray) -> np.ndarray:
        f = np.exp(params[0])
        diff = (_project(X[mask], f, cx, cy, params[1:4], params[4:7]) - x[mask]) * sqrt_w[mask, None]
        if prior.sigma_log == 0:
            return diff.ravel()
        pull = prior_scale[0] * (params[0] - np.log(prior.focal_px)) / prior.sigma_log
        return np.concatenate([diff.ravel(), np.full(PRIOR_PIECES, pull)])

    def jacobian(params: np.ndarray, mask: np.ndarray) -> np.ndarray:
        f = np.exp(params[0])
        jac = _projection_jacobian(X[mask], f, cx, cy, params[1:4], params[4:7])
        jac *= np.repeat(sqrt_w[mask], 2)[:, None]
        if prior.sigma_log == 0:
            return jac
        pull = np.zeros((PRIOR_PIECES, 7))
        pull[:, 0] = prior_scale[0] / prior.sigma_log
        return np.concatenate([jac, pull])

    best = None if start is None else (0.0, _camera_params(start))
    prior_fov = float(np.degrees(2 * np.arctan(0.5 * height / prior.focal_px)))
    searched = (prior_fov,) if prior.sigma_log == 0 else sorted({*FOV_SEARCH_DEG, round(prior_fov, 3)})
    for fov in searched if start is None else ():
        f = _focal_from_fov(fov, height)
        K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], np.float64)
        try:
            ok, rvec, tvec = cv2.solvePnP(
                X, x, K, None, flags=cv2.SOLVEPNP_EPNP if len(X) >= 6 else cv2.SOLVEPNP_SQPNP
            )
            if not ok:
                continue
            ok, rvec, tvec = cv2.solvePnP(
                X, x, K, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
            )
        except cv2.error:
            continue
        if not ok or not np.isfinite(rvec).all() or not np.isfinite(tvec).all():
            continue
        params = np.concatenate([[np.log(f)], rvec.ravel(), tvec.ravel()])
        cam_z = (X @ _rotation(params[1:4]).T + params[4:7])[:, 2]
        if np.median(cam_z) <= 0:
            continue  # the mirror solution, behind the camera
        r = residuals(params, np.ones(len(X), bool))[: 2 * len(X)].reshape(-1, 2)
        z = (params[0] - np.log(prior.focal_px)) / max(prior.sigma_log, 1e-6)
        cost = float(np.median(np.linalg.norm(r, axis=1)) + np.mean(np.linalg.norm(r, axis=1)))
        cost += loss_scale * 0.5 * z * z
        if best is None or cost < best[0]:
            best = (cost, params)
    if best is None:
        raise ValueError("fit_camera: no camera pose fits these correspondences")

    f_lo, f_hi = (_focal_from_fov(FOV_RANGE_DEG[1], height), _focal_from_fov(FOV_RANGE_DEG[0], height))
    log_f_range = (np.log(f_lo), np.log(f_hi))
    params = best[1].copy()
    if prior.sigma_log == 0:
        params[0] = np.log(prior.focal_px)  # the lens's: held, only the pose is fitted
    else:
        params[0] = np.clip(params[0], log_f_range[0] + 1e-9, log_f_range[1] - 1e-9)

    def solve(params: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return _refine(residuals, jacobian, params, mask, log_f_range, prior.sigma_log == 0, loss_scale)

    mask = w > 0
    for round_ in range(3):
        params = solve(params, mask)
        err = np.linalg.norm(_project(X, np.exp(params[0]), cx, cy, params[1:4], params[4:7]) - x, axis=1)
        typical = np.median(err[mask]) if mask.any() else 0.0
        if round_ == 0:
            # At one sigma the prior costs as much as every landmark moving by PRIOR_STRENGTH times
            # the error no camera could remove.
            prior_scale[0] = PRIOR_STRENGTH * typical * np.sqrt(float(w[mask].sum())) / np.sqrt(PRIOR_PIECES)
            continue
        # Drop gross outliers (far beyond the typical error) and refit once without them.
        keep = (w > 0) & (err <= max(5.0 * 1.4826 * typical, 3.0 * loss_scale))
        if keep.sum() < max(4, 0.5 * (w > 0).sum()) or np.array_equal(keep, mask):
            break
        mask = keep
    f = float(np.exp(params[0]))
    camera = Camera(f, f, cx, cy, _rotation(params[1:4]), params[4:7].copy(), width, height)
    residual = np.linalg.norm(camera.project(X)[0] - x, axis=1)
    return camera, residual


def _refine(
    residuals: Callable,
    jacobian: Callable,
    params: np.ndarray,
    mask: np.ndarray,
    log_f_range: tuple[float, float],
    focal_fixed: bool,
    loss_scale: float,
) -> np.ndarray:
    """One robust joint refinement of ``fit_camera``'s parameters from ``params``.

    Only the focal length has bounds, and a portrait's fit lands well inside them: an unbounded
    solve (its trust region needs no step clipping against bounds, and no reflection) reaches the
    same camera in about half the evaluations (scanned and demo heads, eight photos: 1.8 -> 1.2 CPU
    seconds for 24 fits, cameras within 1e-5 of the face's width); the bounded solve runs only
    when the unbounded one leaves the range. A held focal length (the EXIF's) is not a parameter.
    """
    from scipy.optimize import least_squares

    options = {
        "loss": "soft_l1",
        "f_scale": loss_scale,
        "x_scale": "jac",
        "max_nfev": 200,
        "ftol": FIT_TOLERANCE,
        "xtol": FIT_TOLERANCE,
        "args": (mask,),
    }
    if focal_fixed:
        log_f = params[0]
        fit = least_squares(
            lambda p, m: residuals(np.concatenate([[log_f], p]), m),
            params[1:],
            jac=lambda p, m: jacobian(np.concatenate([[log_f], p]), m)[:, 1:],
            **options,
        )
        return np.concatenate([[log_f], fit.x])
    fit = least_squares(residuals, params, jac=jacobian, **options)
    if log_f_range[0] < fit.x[0] < log_f_range[1]:
        return fit.x
    lower = np.concatenate([[log_f_range[0]], np.full(6, -np.inf)])
    upper = np.concatenate([[log_f_range[1]], np.full(6, np.inf)])
    start = np.clip(params, lower + 1e-9, upper - 1e-9)
    return least_squares(residuals, start, jac=jacobian, bounds=(lower, upper), **options).x


def _camera_params(camera: Camera) -> np.ndarray:
    """(7,) log focal length, rotation vector and translation: ``fit_camera``'s parameters."""
    import cv2

    rvec = cv2.Rodrigues(np.asarray(camera.R, np.float64))[0].ravel()
    return np.concatenate([[np.log(camera.fy)], rvec, np.asarray(camera.t, np.float64).ravel()])


def refine_camera(
    camera: Camera,
    points3d: np.ndarray,
    points2d: np.ndarray,
    weights: np.ndarray | None = None,
) -> Camera:
    """The camera's pose refitted to other correspondences, its focal length kept, starting from
    ``camera`` (no search): cheap enough to refit many times, e.g. leaving groups of landmarks out to
    see how much they agree on where the head is."""
    import cv2
    from scipy.optimize import least_squares

    X = np.asarray(points3d, np.float64).reshape(-1, 3)
    x = np.asarray(points2d, np.float64).reshape(-1, 2)
    w = np.ones(len(X)) if weights is None else np.clip(np.asarray(weights, np.float64), 0, None)
    sqrt_w = np.sqrt(w)
    f, cx, cy = camera.fx, camera.cx, camera.cy
    spread = float(np.sqrt(np.average(((x - np.average(x, 0, w)) ** 2).sum(1), weights=w)))

    def residuals(params: np.ndarray) -> np.ndarray:
        return ((_project(X, f, cx, cy, params[:3], params[3:]) - x) * sqrt_w[:, None]).ravel()

    def jacobian(params: np.ndarray) -> np.ndarray:
        jac = _projection_jacobian(X, f, cx, cy, params[:3], params[3:])[:, 1:]
        return jac * np.repeat(sqrt_w, 2)[:, None]

    rvec = cv2.Rodrigues(np.asarray(camera.R, np.float64))[0].ravel()
    start = np.concatenate([rvec, np.asarray(camera.t, np.float64).ravel()])
    fit = least_squares(
        residuals, start, jac=jacobian, loss="soft_l1", f_scale=max(0.5, 0.01 * spread), max_nfev=60
    )
    return Camera(f, f, cx, cy, _rotation(fit.x[:3]), fit.x[3:].copy(), camera.width, camera.height)


@njit(cache=True, parallel=True)
def _spline_kernel(points, centers, weights, affine, out) -> None:
    """``out[i] = affine[0] + affine[1] x + affine[2] y + sum_j weights[j] phi(|p_i - c_j|)``,
    phi(r) = r^2 log r (written 0.5 r^2 log r^2: no square root)."""
    for i in prange(points.shape[0]):
        x, y = points[i, 0], points[i, 1]
        for k in range(out.shape[1]):
            out[i, k] = affine[0, k] + affine[1, k] * x + affine[2, k] * y
        for j in range(centers.shape[0]):
            dx, dy = x - centers[j, 0], y - centers[j, 1]
            r2 = dx * dx + dy * dy
            if r2 > 0.0:
                phi = 0.5 * r2 * np.log(r2)
                for k in range(out.shape[1]):
                    out[i, k] += weights[j, k] * phi


@njit(cache=True)
def _spline_system(points, smoothing, system) -> None:
    """The spline's (N + 3)² linear system in ``system`` (zeros in): phi between the points plus
    ``smoothing`` on the diagonal, and the linear part's columns (1, x, y) and rows."""
    n = points.shape[0]
    for i in range(n):
        system[i, i] = smoothing[i]
        for j in range(i + 1, n):
            dx, dy = points[i, 0] - points[j, 0], points[i, 1] - points[j, 1]
            r2 = dx * dx + dy * dy
            phi = 0.5 * r2 * np.log(r2) if r2 > 0.0 else 0.0
            system[i, j] = phi
            system[j, i] = phi
        system[i, n] = system[n, i] = 1.0
        system[i, n + 1] = system[n + 1, i] = points[i, 0]
        system[i, n + 2] = system[n + 2, i] = points[i, 1]


@dataclass(frozen=True)
class ThinPlateSpline:
    """A smoothed 2D thin-plate spline with a linear part: the interpolant scipy's
    ``RBFInterpolator(kernel="thin_plate_spline", degree=1, smoothing=s)`` fits (the same linear
    system; tests/test_registration.py compares them), evaluated by a compiled kernel over both
    cores. The warp is read at tens of thousands of points a request (its grid, the projection's
    warp tables): scipy builds each chunk's kernel matrix first, 0.1 s of a warm request on the
    scanned head with Grace Hopper; this kernel sums as it goes."""

    centers: np.ndarray
    """(N, 2) float64: the points it was fitted at."""
    weights: np.ndarray
    """(N, K) float64: the kernel's coefficient per centre and output."""
    affine: np.ndarray
    """(3, K) float64: constant, x and y coefficients of the linear part."""

    @classmethod
    def fit(cls, points: np.ndarray, values: np.ndarray, smoothing: np.ndarray) -> ThinPlateSpline:
        """The spline through ``values`` (N, K) at ``points`` (N, 2), each allowed to miss by more
        as its ``smoothing`` (N,) grows (added to the kernel matrix's diagonal, as scipy does)."""
        x = np.ascontiguousarray(points, np.float64)
        n = len(x)
        system = np.zeros((n + 3, n + 3))
        _spline_system(x, np.broadcast_to(np.asarray(smoothing, np.float64), (n,)).copy(), system)
        rhs = np.zeros((n + 3, np.shape(values)[1]))
        rhs[:n] = values
        solution = np.linalg.solve(system, rhs)
        return cls(x, solution[:n].copy(), solution[n:].copy())

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(M, K) the spline at ``points`` (M, 2)."""
        out = np.empty((len(points), self.weights.shape[1]))
        _spline_kernel(np.ascontiguousarray(points, np.float64), self.centers, self.weights, self.affine, out)
        return out


GRID_ABOVE = 20_000
"""Warps of more points than this are evaluated through a grid (see ThinPlateWarp._gridded)."""
GRID_STEP = 0.0625
"""Grid spacing in eye distances (1/16: under 0.05 px from exact on a strongly bent warp)."""


@dataclass
class ThinPlateWarp:
    """A smooth 2D warp p -> p + d(p), d a smoothed thin-plate spline (identity when ``rbf`` is None)."""

    rbf: Callable | None
    center: np.ndarray
    scale: float
    smoothing: float = 0.0
    deadband: float = 0.0
    """Displacements shorter than this (eye distances) vanish and longer ones are shortened by
    ``deadband² / length`` (``WARP_DEADBAND``): what is as small as the detector's disagreement is
    not shape."""
    anchors: np.ndarray | None = None
    """(N, 2) the landmarks the warp was fitted to, in its normalised units: outside their hull the
    displacement fades out over WARP_REACH (a spline extrapolates linearly without bound, and ears,
    scalp and neck have no landmark to say the camera is wrong there)."""

    def __call__(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, np.float64).reshape(-1, 2)
        if self.rbf is None or len(points) == 0:
            return points.copy()
        out = points.copy()
        finite = np.isfinite(points).all(axis=1)
        u = (points[finite] - self.center) / self.scale
        d = self._gridded(u) if len(u) > GRID_ABOVE else self._displacement(u)
        out[finite] = points[finite] + d * self.scale
        return out

    def _displacement(self, u: np.ndarray) -> np.ndarray:
        """The spline's displacement at ``u`` (normalised units) after the fade and the deadband."""
        fade = np.ones(len(u))
        if self.anchors is not None and len(self.anchors) >= 3:
            from scipy.spatial import ConvexHull

            # Full inside the landmarks' hull; outside, fading with the distance from it (the largest
            # signed distance to its edges' lines: continuous, zero on the hull).
            hull = ConvexHull(self.anchors).equations  # (E, 3): unit normal, offset; <= 0 inside
            distance = np.clip((u @ hull[:, :2].T + hull[:, 2]).max(axis=1), 0.0, None)
            fade = np.exp(-0.5 * (distance / WARP_REACH) ** 2)
        d = np.zeros((len(u), 2))
        near = fade > 1e-4  # the spline costs one kernel per landmark: only where it still counts
        if near.any():
            d[near] = self.rbf(u[near]) * fade[near, None]
        if self.deadband > 0:
            # The non-negative garrote: nothing below the deadband, little bias (deadband² / length)
            # on displacements well above it.
            length = np.linalg.norm(d, axis=1, keepdims=True)
            d = d * np.clip(1.0 - (self.deadband / np.maximum(length, 1e-12)) ** 2, 0.0, None)
        return d

    def _gridded(self, u: np.ndarray) -> np.ndarray:
        """The displacement at many points, bilinear from a grid of exact evaluations.

        A thin-plate spline costs one kernel per landmark per point (seconds for a 1024² atlas); it
        is smooth at the scale of a sixteenth of the eye distance, so a grid that fine loses nothing
        visible (tests/test_registration.py checks the difference).
        """
        lo = u.min(axis=0) - GRID_STEP
        hi = u.max(axis=0) + GRID_STEP
        cached = self.__dict__.get("_grid")
        if cached is not None and (cached[0] <= lo).all() and (cached[1] >= hi).all():
            lo, hi, d, step = cached  # a request warps several point sets over the same region
        else:
            if cached is not None:
                lo, hi = np.minimum(lo, cached[0]), np.maximum(hi, cached[1])
            n = np.minimum(np.ceil((hi - lo) / GRID_STEP).astype(int) + 1, 512)
            gx = np.linspace(lo[0], hi[0], n[0])
            gy = np.linspace(lo[1], hi[1], n[1])
            grid = np.stack(np.meshgrid(gx, gy, indexing="ij"), axis=-1).reshape(-1, 2)
            # Rows index y and columns x, as cv2.remap reads a map.
            d = self._displacement(grid).reshape(n[0], n[1], 2).transpose(1, 0, 2).astype(np.float32)
            step = np.array([gx[1] - gx[0], gy[1] - gy[0]])
            self.__dict__["_grid"] = (lo, hi, d, step)
        # Grid node (i, j) sits at pixel centre (i + 0.5, j + 0.5) in sample_image's convention.
        cells = (u - lo) / step + 0.5
        return sample_image(d, cells).astype(np.float64)


def fit_warp(
    source: np.ndarray,
    target: np.ndarray,
    scale: float,
    weights: np.ndarray | None = None,
    smoothing: float | None = None,
    folds: int = WARP_FOLDS,
    seed: int = 0,
) -> tuple[ThinPlateWarp, float]:
    """A smoothed thin-plate-spline warp taking ``source`` (N, 2) pixels towards ``target`` (N, 2).

    Coordinates are normalised by ``scale`` (the inter-ocular distance) so the smoothing means the
    same for every photo size. Without ``smoothing``, it is chosen from WARP_SMOOTHING by k-fold
    cross-validation (the error on points the warp was not fitted to). Returns the warp and its
    cross-validated mean error in pixels (NaN when too few points to validate).
    """
    src = np.asarray(source, np.float64)
    dst = np.asarray(target, np.float64)
    center = src.mean(axis=0)
    if len(src) < MIN_POINTS_FOR_WARP:
        return ThinPlateWarp(None, center, scale), float("nan")
    u = (src - center) / scale
    d = (dst - src) / scale
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    # The smoothing is per point: a larger value lets that point be missed by more.
    point_smoothing = 1.0 / np.maximum(w, 1e-3)

    def build(indices: np.ndarray, s: float) -> ThinPlateSpline:
        return ThinPlateSpline.fit(u[indices], d[indices], s * point_smoothing[indices])

    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(src)) % folds
    candidates = WARP_SMOOTHING if smoothing is None else (smoothing,)
    scores = []
    for s in candidates:
        errors = np.zeros(len(src))
        for k in range(folds):
            test = fold_of == k
            rbf = build(np.nonzero(~test)[0], s)
            errors[test] = np.linalg.norm(rbf(u[test]) - d[test], axis=1) * scale
        scores.append(float(np.average(errors, weights=w)))
    # The smoothest warp whose validated error is close to the best: the detector's own errors are
    # spatially correlated, so validation alone under-smooths and the warp learns them (measured on
    # the scanned head rendered from known cameras: a smoother warp is nearer the truth).
    tolerance = 1.15 * min(scores) + 0.002 * scale
    chosen, score = _smoothest_within(candidates, scores, tolerance)
    rbf = build(np.arange(len(src)), chosen)
    return ThinPlateWarp(rbf, center, scale, chosen, WARP_DEADBAND, u), score


def _smoothest_within(candidates, scores: list[float], tolerance: float) -> tuple[float, float]:
    """The largest smoothing whose validated error stays within ``tolerance``, and that error.

    Between the last candidate within it and the next one beyond, the smoothing is read where the
    error curve (linear in log smoothing) crosses the tolerance: a choice that moves continuously with
    the landmarks, where picking a listed value jumps (two copies of one mesh, moved, got smoothing 0.3
    and 1.0 from landmarks a few hundredths of an eye distance apart).
    """
    i = max(k for k, score in enumerate(scores) if score <= tolerance)
    if i + 1 == len(scores) or scores[i + 1] <= scores[i]:
        return float(candidates[i]), float(scores[i])
    t = (tolerance - scores[i]) / (scores[i + 1] - scores[i])
    log_s = (1 - t) * np.log(candidates[i]) + t * np.log(candidates[i + 1])
    return float(np.exp(log_s)), float(tolerance)


@dataclass
class Registration:
    """The portrait camera and warp: ``project`` maps any surface point to its portrait pixel."""

    camera: Camera
    warp: ThinPlateWarp
    residual_camera: float
    """Mean landmark error of the camera alone, pixels."""
    residual_warped: float
    """Mean landmark error after the warp, pixels (on the points it was fitted to)."""
    error_iod: float
    """``residual_warped`` divided by the portrait's inter-ocular distance."""
    error_iod_camera: float
    """``residual_camera`` divided by the inter-ocular distance."""
    error_iod_holdout: float
    """Cross-validated error after the warp (points left out of its fit) / inter-ocular distance:
    the honest number; NaN when there are too few landmarks to validate."""
    interocular: float
    """The portrait's inter-ocular distance, pixels."""
    indices: np.ndarray
    """(N,) the landmark indices used."""
    residuals: np.ndarray
    """(N,) per-landmark error after the warp, pixels."""
    warnings: list[str] = field(default_factory=list)
    alignment: dict = field(default_factory=dict)
    """What the dense refinement (``alignment.refine``) measured and whether it was applied."""
    outline: dict = field(default_factory=dict)
    """What the camera's refit to the head's outline (``alignment.outline_refit``) measured and
    applied."""
    eyes: dict = field(default_factory=dict)
    """Whether the mesh's eyeballs were found and how far they were painted for the photo's open eyes
    (``pipeline.steps.landmarks_for_the_eyes``)."""
    points3d: np.ndarray | None = None
    """(N, 3) the mesh landmarks of ``indices`` the camera was fitted to."""
    points2d: np.ndarray | None = None
    """(N, 2) the portrait landmarks they were fitted to."""
    weights: np.ndarray | None = None
    """(N,) their weights in the fit."""
    prior: FovPrior | None = None
    """The focal-length prior of the fit."""

    @property
    def fov_source(self) -> str:
        """Where the field of view came from: ``exif`` (the photo's lens, held fixed), ``head
        outline`` (the camera refitted to the head's outline was taken at OUTLINE_FOV_WEIGHT or more:
        the outline, which lies behind the face, tells the focal length) or ``portrait prior``
        (the landmarks and the prior of portrait lenses, which say little about it)."""
        source = self.prior.source if self.prior is not None else "portrait prior"
        if source != "exif" and float(self.outline.get("weight", 0.0)) >= OUTLINE_FOV_WEIGHT:
            return "head outline"
        return source

    def project(self, points3d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Portrait pixel coordinates (N, 2) and camera depth (N,) of world points."""
        pixels, depth = self.camera.project(np.asarray(points3d, np.float64).reshape(-1, 3))
        return self.warp(pixels), depth

    def report(self) -> dict:
        """Plain numbers for report.json."""
        cam = self.camera
        return {
            "fov_y_deg": cam.fov_y_deg,
            "fov_source": self.fov_source,
            "landmarks": int(len(self.indices)),
            "residual_camera_px": self.residual_camera,
            "residual_warped_px": self.residual_warped,
            "error_iod": self.error_iod,
            "error_iod_camera": self.error_iod_camera,
            "error_iod_holdout": self.error_iod_holdout,
            "warp_smoothing": self.warp.smoothing,
        }


def landmark_weights() -> np.ndarray:
    """(468,) how much each landmark counts in the camera fit: the face oval at SILHOUETTE_WEIGHT."""
    weights = np.ones(NUM_LANDMARKS)
    weights[list(FACE_OVAL)] = SILHOUETTE_WEIGHT
    return weights


def register(
    mesh_landmarks,
    face: Face,
    image_size: tuple[int, int],
    camera_only: bool = False,
    prior: FovPrior | None = None,
    start: Camera | None = None,
    fitted: Camera | None = None,
    smoothing: float | None = None,
    placed: float = 0.0,
) -> Registration:
    """Register a head's mesh landmarks (landmarks.MeshLandmarks) to a portrait's face.

    ``camera_only`` skips the warp (identity, no cross-validation): for a first fit whose camera
    only serves to render the mesh from the photo's viewpoint.

    ``image_size`` is the portrait's (width, height). Uses every landmark valid on both sides, the
    face oval at SILHOUETTE_WEIGHT. ``prior`` is what is known of the focal length (the EXIF's, or
    typical portrait lenses when None). ``start`` is a camera fitted to another landmark set of the
    same face, to refine from instead of searching (``fit_camera``). ``fitted`` is a camera
    already fitted to exactly these landmarks and this face (a ``camera_only`` registration's):
    it is kept and only the warp fitted, where refitting would find the same camera again.
    ``smoothing`` is the warp's, where it was already chosen for nearly the same camera (the
    cross-validation then scores that one value instead of choosing among WARP_SMOOTHING).
    ``placed`` (0..1) is how far other evidence than these landmarks placed the camera (the head's
    outline: ``alignment.outline_refit``'s ``led_weight``): that share of the landmarks' disagreement
    as a whole (``placement_part``) is left out of the warp, which then bends only the face's shape.
    Under a camera the outline placed, that part is how the detector read the photo's face against
    the mesh's render (colours against shading), not where the face is: on ``bench/sweep.py``'s 73
    led cases the warp that carried it misplaced the texture by 0.062 eye distances (median), the
    camera alone by 0.025, the warp without it by 0.035, which still takes a stylised head's long
    nose onto the photo's (``bench/proportions.py``: 0.16 against the camera's 0.43).
    """
    points3d = np.asarray(mesh_landmarks.points3d, np.float64)
    valid = np.asarray(mesh_landmarks.valid, bool) & np.isfinite(points3d).all(axis=1)
    valid &= np.isfinite(face.landmarks).all(axis=1)
    indices = np.nonzero(valid)[0]
    if len(indices) < 4:
        raise ValueError(f"register: only {len(indices)} landmarks on both the mesh and the portrait")
    weights = landmark_weights()
    X, x, w = points3d[indices], np.asarray(face.landmarks, np.float64)[indices], weights[indices]
    reshaped = getattr(mesh_landmarks, "reshaped", None)
    rigid = w if reshaped is None else np.where(np.asarray(reshaped, bool)[indices], 0.0, w)
    prior = prior or FovPrior.for_image(image_size)
    if fitted is None:
        camera, residual = fit_camera(X, x, image_size, rigid, prior, start)
    else:
        camera, residual = fitted, np.linalg.norm(fitted.project(X)[0] - x, axis=1)
    iod = max(face.interocular, 1e-6)
    projected = camera.project(X)[0]
    if camera_only:
        warp, holdout = ThinPlateWarp(None, projected.mean(axis=0), iod), float("nan")
    else:
        target = x - placed * placement_part(projected, x, w) if placed > 0.0 else x
        warp, holdout = fit_warp(projected, target, iod, w, smoothing=smoothing)
    residual_warped = np.linalg.norm(warp(projected) - x, axis=1)
    warnings = []
    mean_cam = float(np.average(residual, weights=w))
    mean_warped = float(np.average(residual_warped, weights=w))
    if mean_cam / iod > 0.25:
        warnings.append(
            f"The head's landmarks match the portrait's poorly (mean error "
            f"{100 * mean_cam / iod:.0f}% of the eye distance before the warp): check the "
            "photo shows the same kind of face, or set landmark pins."
        )
    return Registration(
        camera=camera,
        warp=warp,
        residual_camera=mean_cam,
        residual_warped=mean_warped,
        error_iod=mean_warped / iod,
        error_iod_camera=mean_cam / iod,
        error_iod_holdout=holdout / iod if np.isfinite(holdout) else float("nan"),
        interocular=float(iod),
        indices=indices,
        residuals=residual_warped,
        warnings=warnings,
        points3d=X,
        points2d=x,
        weights=rigid,
        prior=prior,
    )


def placement_part(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N, 2) the part of the displacements ``target - source`` that one 2-D similarity makes (shift,
    turn and scale: the weighted least-squares fit, in closed form as one complex gain and offset):
    the landmarks' disagreement as a whole, which the detector's reading of a face brings whatever
    the face's shape (``bench/correspondence.py``: 0.076 eye distances against the true camera, 0.012
    once one similarity is taken out)."""
    w = np.asarray(weights, np.float64)
    w = w / max(float(w.sum()), 1e-12)
    s = source[:, 0] + 1j * source[:, 1]
    t = target[:, 0] + 1j * target[:, 1]
    s0, t0 = np.sum(w * s), np.sum(w * t)
    gain = np.sum(w * np.conj(s - s0) * (t - t0)) / max(float(np.sum(w * np.abs(s - s0) ** 2)), 1e-12)
    d = gain * (s - s0) + t0 - s
    return np.stack([d.real, d.imag], axis=1)


OUTLINE_FOV_WEIGHT = 0.5
"""The share of the outline's camera (``alignment.outline_refit``'s weight) from which the report names
the head's outline as the field of view's source. On bench/sweep.py's 104 found portraits (no EXIF),
the 61 at or above it had a fitted field of view that follows the truth (correlation 0.62, median
error 19 %); the 43 below it one that does not (-0.06, median error 40 %): the landmarks of one view
hardly tell a wide lens close up from a long one far away."""
OUTLINE_PRIOR_STRENGTH = 0.1
"""PRIOR_STRENGTH's meaning, for the camera fitted to the head's outline as well as the landmarks
(``refit_to_outline``): the outline, which lies behind the face, tells the focal length where the
landmarks of one view cannot, so the portrait-lens prior only steadies it. At PRIOR_STRENGTH (0.3)
the fitted field of view hardly followed the truth on bench/sweep.py (median 29-39° for true 15-60°;
error 22 %, 160 found cases, ``--registration-only``); at 0.1, with the outline seen again from each
refitted camera (``alignment.OutlineSearch.seen_from``), 12.6 % (correlation with the truth 0.51 ->
0.77) and the misplacement's mean 0.070 -> 0.064 (54 cases better, 18 worse). 0.05 and 0.02 gave
9.2 % and 9.1 % and the same mean misplacement: 0.1 keeps more of the prior for a mesh whose
proportions are not the person's, which the sweep (every portrait a render of its own mesh) does not
hold."""
OUTLINE_WEIGHT = 1.0
"""What one point of the head's outline counts in the camera fit against one landmark (both in
pixels; the outline's residual is along its normal, the landmark's in 2D). At 4 on bench/sweep.py's
quick cases the fitted field of view came nearer the truth (scanned head 13.5° -> 24.7° for a true
34°) but the misplacement rose by 0.04-0.06 eye distances: the landmarks' own bias on that head does
not fit the true camera either (issue 8 note), so the outline informs the fit, it does not overrule
it."""


def refit_to_outline(
    registration: Registration,
    outline_points: np.ndarray,
    outline_target: np.ndarray,
    outline_normal: np.ndarray,
    outline_weight: np.ndarray,
    warp_offset: np.ndarray,
    landmark_weight: float = 1.0,
) -> tuple[Camera, np.ndarray]:
    """The camera (focal length and pose) refitted to the registration's landmarks and to where
    the photo shows the head's outline: outline points (surface points on the silhouette) whose
    projection, moved as the registration's warp moves it there, should lie on the line through
    ``outline_target`` across ``outline_normal``.

    Landmarks of one view leave the focal length and the head's depth nearly free (a face seen
    closer through a wider lens looks the same); the outline, which lies behind the face, does
    not. ``warp_offset`` is the warp's displacement at the outline points
    (``alignment.OutlineSearch.warp_offset``); ``landmark_weight`` scales every landmark's weight
    (``alignment.OUTLINE_LED_LANDMARKS``: the outline-led pass). Returns the camera and each
    outline point's residual along its normal (pixels)."""
    from scipy.optimize import least_squares

    camera = registration.camera
    X = np.asarray(registration.points3d, np.float64)
    x = np.asarray(registration.points2d, np.float64)
    w = landmark_weight * np.clip(np.asarray(registration.weights, np.float64), 0, None)
    C = np.asarray(outline_points, np.float64)
    q = np.asarray(outline_target, np.float64)
    n = np.asarray(outline_normal, np.float64)
    wc = OUTLINE_WEIGHT * np.clip(np.asarray(outline_weight, np.float64), 0, None)
    cx, cy = camera.cx, camera.cy
    start = _camera_params(camera)
    moved = np.asarray(warp_offset, np.float64)
    sw, swc = np.sqrt(w), np.sqrt(wc)
    spread = float(np.sqrt(np.average(((x - np.average(x, 0, w)) ** 2).sum(1), weights=w)))
    loss_scale = max(0.5, 0.01 * spread)
    prior = registration.prior or FovPrior.for_image((camera.width, camera.height))
    typical = float(
        np.median(np.linalg.norm(_project(X, camera.fx, cx, cy, start[1:4], start[4:]) - x, axis=1))
    )
    prior_scale = (
        OUTLINE_PRIOR_STRENGTH * typical * np.sqrt(float(w.sum() + wc.sum())) / np.sqrt(PRIOR_PIECES)
    )
    fixed = prior.sigma_log == 0

    def unpack(p: np.ndarray) -> np.ndarray:
        return np.concatenate([[start[0]], p]) if fixed else p

    def residuals(p: np.ndarray) -> np.ndarray:
        p = unpack(p)
        f = np.exp(p[0])
        lm = (_project(X, f, cx, cy, p[1:4], p[4:7]) - x) * sw[:, None]
        ol = ((_project(C, f, cx, cy, p[1:4], p[4:7]) + moved - q) * n).sum(1) * swc
        parts = [lm.ravel(), ol]
        if not fixed:
            parts.append(
                np.full(PRIOR_PIECES, prior_scale * (p[0] - np.log(prior.focal_px)) / prior.sigma_log)
            )
        return np.concatenate(parts)

    def jacobian(p: np.ndarray) -> np.ndarray:
        p = unpack(p)
        f = np.exp(p[0])
        jl = _projection_jacobian(X, f, cx, cy, p[1:4], p[4:7]) * np.repeat(sw, 2)[:, None]
        jc = _projection_jacobian(C, f, cx, cy, p[1:4], p[4:7]).reshape(len(C), 2, 7)
        jo = (jc * n[:, :, None]).sum(1) * swc[:, None]
        parts = [jl, jo]
        if not fixed:
            pull = np.zeros((PRIOR_PIECES, 7))
            pull[:, 0] = prior_scale / prior.sigma_log
            parts.append(pull)
        jac = np.concatenate(parts)
        return jac[:, 1:] if fixed else jac

    fit = least_squares(
        residuals,
        start[1:] if fixed else start,
        jac=jacobian,
        loss="soft_l1",
        f_scale=loss_scale,
        x_scale="jac",
        max_nfev=100,
        ftol=FIT_TOLERANCE,
        xtol=FIT_TOLERANCE,
    )
    p = unpack(fit.x)
    f = float(np.exp(p[0]))
    refitted = Camera(f, f, cx, cy, _rotation(p[1:4]), p[4:7].copy(), camera.width, camera.height)
    residual = ((refitted.project(C)[0] + moved - q) * n).sum(1)
    return refitted, residual


def blend_cameras(a: Camera, b: Camera, share: float) -> Camera:
    """The camera ``share`` of the way from ``a`` to ``b``: focal length blended in log, the
    rotation turned that share of the way about the axis taking ``a``'s to ``b``'s (blending the
    rotation vectors themselves breaks near a half turn, where two nearly equal rotations have
    opposite vectors), the translation blended."""
    import cv2

    Ra, Rb = np.asarray(a.R, np.float64), np.asarray(b.R, np.float64)
    step = cv2.Rodrigues(Rb @ Ra.T)[0].ravel() * share
    R = cv2.Rodrigues(step.reshape(3, 1))[0] @ Ra
    f = float(np.exp((1.0 - share) * np.log(a.fy) + share * np.log(b.fy)))
    t = (1.0 - share) * np.asarray(a.t, np.float64) + share * np.asarray(b.t, np.float64)
    return Camera(f, f, a.cx, a.cy, R, t, a.width, a.height)
