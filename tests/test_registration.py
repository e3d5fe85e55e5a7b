"""Camera fit and warp (avatartex.registration): synthetic ground truth and the scanned head."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from avatartex.camera import Camera
from avatartex.face import FACE_OVAL, LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR, Face
from avatartex.registration import FOV_RANGE_DEG, WARP_DEADBAND, fit_camera, fit_warp, register

HEAD = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "heads" / "lee_perry_smith.glb"


def _pose_error(fit: Camera, truth: Camera) -> tuple[float, float, float]:
    focal = abs(fit.fx / truth.fx - 1)
    angle = np.degrees(np.arccos(np.clip((np.trace(fit.R @ truth.R.T) - 1) / 2, -1, 1)))
    centre = np.linalg.norm(fit.center - truth.center) / np.linalg.norm(truth.center)
    return focal, angle, centre


def _face_points(n: int = 200, seed: int = 0) -> np.ndarray:
    """Points on a face-sized half ellipsoid looking towards +z (depth varies, as on a face)."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1, 1, (n, 2))
    z = np.sqrt(np.clip(1 - (u**2).sum(1) * 0.7, 0.05, None))
    return np.stack([u[:, 0] * 7, u[:, 1] * 9, z * 6], axis=1)


@pytest.mark.parametrize("fov", [15.0, 35.0, 60.0])
def test_fit_camera_recovers_known_camera(fov: float) -> None:
    X = _face_points(80)
    distance = 12 / np.tan(np.radians(fov) / 2)
    truth = Camera.look_at(
        np.array([0.3, -0.2, 1.0]) * distance / 1.06,
        np.array([0, 0, 2.0]),
        np.array([0.1, 1.0, 0.0]),
        fov,
        640,
        480,
    )
    x = truth.project(X)[0]
    fit, residual = fit_camera(X, x, (640, 480))
    focal, angle, centre = _pose_error(fit, truth)
    # The portrait-lens prior trades a few percent of focal length against distance where the points
    # barely tell them apart (far, narrow views): the picture it predicts is off by a fraction of a
    # pixel, while real detectors are off by a pixel or more.
    assert focal < 0.06 and angle < 0.5 and centre < 0.06, (focal, angle, centre)
    assert residual.max() < 0.25
    assert (fit.cx, fit.cy, fit.width, fit.height) == (320, 240, 640, 480)


def test_a_fit_started_from_a_near_camera_finds_the_searched_one() -> None:
    """The view-matched fit starts from the first fit's camera instead of searching focal lengths:
    on the other landmark set of the same face (here: the points moved by detector-like noise) it
    lands where a full search lands."""
    X = _face_points(150)
    truth = Camera.look_at(
        np.array([0.4, 0.1, 1.0]) * 60.0, np.array([0, 0, 2.0]), np.array([0, 1.0, 0.0]), 30.0, 600, 800
    )
    x = truth.project(X)[0]
    first, _ = fit_camera(X, x, (600, 800))
    other = x + np.random.default_rng(2).normal(0.0, 1.5, x.shape)
    searched, searched_residual = fit_camera(X, other, (600, 800))
    started, started_residual = fit_camera(X, other, (600, 800), start=first)
    focal, angle, centre = _pose_error(started, searched)
    assert focal < 0.01 and angle < 0.1 and centre < 0.01, (focal, angle, centre)
    assert abs(started_residual.mean() - searched_residual.mean()) < 0.01


def test_the_field_of_view_stays_within_its_range() -> None:
    """The refinement is solved without bounds first (faster); a camera it would take beyond
    FOV_RANGE_DEG (here a 2-degree telephoto, below the 3-degree floor) is solved again within it."""
    X = _face_points(120)
    distance = 12 / np.tan(np.radians(2.0) / 2)
    truth = Camera.look_at(
        np.array([0.2, -0.1, 1.0]) * distance, np.array([0, 0, 2.0]), np.array([0, 1.0, 0.0]), 2.0, 640, 480
    )
    fit, residual = fit_camera(X, truth.project(X)[0], (640, 480))
    fov = np.degrees(2 * np.arctan(0.5 * 480 / fit.fy))
    assert fov == pytest.approx(FOV_RANGE_DEG[0], abs=1e-6)
    assert residual.mean() < 0.5  # nearly orthographic: the pose still explains the points


@pytest.mark.parametrize("fov", [18.0, 40.0])
def test_an_exif_focal_length_holds_against_a_face_of_other_proportions(fov: float) -> None:
    """A person whose face is deeper than the mesh's pulls a landmark-only fit far off the true
    field of view (that ambiguity is real: more perspective or a deeper face); the EXIF's focal
    length holds it."""
    from avatartex.registration import FovPrior

    rng = np.random.default_rng(7)
    X = _face_points(200, seed=7)
    distance = 12 / np.tan(np.radians(fov) / 2)
    truth = Camera.look_at(
        np.array([0.2, 0.1, 1.0]) * distance, np.array([0, 0, 2.0]), np.array([0, 1.0, 0]), fov, 600, 800
    )
    person = X * np.array([1.0, 1.0, 1.6])
    x = truth.project(person)[0] + rng.normal(size=(len(X), 2)) * 2.0
    landmarks_only, _ = fit_camera(X, x, (600, 800))
    with_exif, _ = fit_camera(X, x, (600, 800), prior=FovPrior.for_image((600, 800), fov))
    # The portrait-lens prior keeps the landmark-only fit near plausible lenses; the EXIF's is exact.
    assert abs(truth.fy / with_exif.fy - 1) < 1e-3 < abs(truth.fy / landmarks_only.fy - 1)


def test_exif_focal_length_becomes_the_field_of_view(tmp_path) -> None:
    from avatartex.image_io import load_portrait
    from PIL import Image

    image = Image.new("RGB", (600, 800), (128, 100, 90))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 52  # FocalLengthIn35mmFilm
    image.save(tmp_path / "p.jpg", exif=exif)
    _, info = load_portrait(tmp_path / "p.jpg")
    focal_px = 52 * np.hypot(600, 800) / 43.27
    assert info["focal_35mm"] == 52
    assert info["fov_y_deg_exif"] == pytest.approx(np.degrees(2 * np.arctan(400 / focal_px)), abs=1e-3)
    image.save(tmp_path / "plain.jpg")
    assert "fov_y_deg_exif" not in load_portrait(tmp_path / "plain.jpg")[1]


def test_fit_camera_robust_to_outliers_and_noise() -> None:
    rng = np.random.default_rng(3)
    X = _face_points(120, seed=3)
    truth = Camera.look_at(
        np.array([5.0, 3.0, 60.0]), np.array([0, 0, 2.0]), np.array([0, 1.0, 0]), 25, 800, 1000
    )
    x = truth.project(X)[0]
    bad = x.copy()
    bad[:6] += rng.normal(size=(6, 2)) * 80  # six grossly wrong correspondences
    fit, residual = fit_camera(X, bad, (800, 1000))
    focal, angle, centre = _pose_error(fit, truth)
    assert focal < 0.06 and angle < 0.5 and centre < 0.06, (focal, angle, centre)
    assert np.median(residual[6:]) < 0.05 and residual[:6].min() > 20
    noisy = x + rng.normal(size=x.shape) * 1.0
    fit, residual = fit_camera(X, noisy, (800, 1000))
    focal, angle, centre = _pose_error(fit, truth)
    assert focal < 0.05 and angle < 1.0, (focal, angle)
    assert abs(residual.mean() - 1.25) < 0.3  # the noise itself (Rayleigh mean of sigma 1), nothing more


def _synthetic_pair(distortion: float):
    """Face points, a camera, and portrait landmarks = projection + a smooth non-affine distortion."""
    X = _face_points(468, seed=5)
    # Eye contours where eyes are (0.35 of the face's width apart), so that the portrait's eye
    # distance, the unit of every threshold in registration.py, is the face's.
    ring = np.linspace(0, 2 * np.pi, len(RIGHT_EYE_CONTOUR), endpoint=False)
    for side, contour in ((-1, RIGHT_EYE_CONTOUR), (1, LEFT_EYE_CONTOUR)):
        eye = np.stack([side * 2.45 + 0.8 * np.cos(ring), 2.0 + 0.3 * np.sin(ring)], axis=1)
        X[list(contour), :2] = eye
        X[list(contour), 2] = 6 * np.sqrt(np.clip(1 - ((eye / (7, 9)) ** 2).sum(1) * 0.7, 0.05, None))
    camera = Camera.look_at(
        np.array([4.0, 2.0, 70.0]), np.array([0, 0, 2.0]), np.array([0, 1.0, 0]), 25, 600, 800
    )
    x = camera.project(X)[0]
    iod = Face(x.astype(np.float32)).interocular
    c = x.mean(0)
    u = (x - c) / np.ptp(x[:, 0])
    # Bigger eyes-and-mouth shape than the mesh: a bulge, not expressible by any camera.
    field = np.stack([np.sin(np.pi * u[:, 0]) * np.cos(np.pi * u[:, 1]), u[:, 0] * u[:, 1] * 2], axis=1)
    return X, camera, x + distortion * iod * field, iod


def _held_out_errors(distortion: float):
    """Register half the landmarks of a distorted pair; errors on the other half, in eye distances,
    of the camera alone and of the camera and warp."""
    X, _, target, iod = _synthetic_pair(distortion)
    fit_idx, held = np.arange(0, 468, 2), np.arange(1, 468, 2)
    valid = np.zeros(468, bool)
    valid[fit_idx] = True  # the held-out half is unknown to the registration
    mesh = SimpleNamespace(points3d=X, valid=valid)
    reg = register(mesh, Face(target.astype(np.float32)), (600, 800))
    before = np.linalg.norm(reg.camera.project(X[held])[0] - target[held], axis=1).mean() / iod
    after = np.linalg.norm(reg.project(X[held])[0] - target[held], axis=1).mean() / iod
    return reg, before, after


def test_warp_corrects_smooth_distortion_on_held_out_points() -> None:
    # A stylised head's proportions: displacements of a fifth of the eye distance and more.
    reg, before, after = _held_out_errors(0.5)
    assert before > 0.15, before  # the camera alone cannot explain the distortion
    assert after < 0.25 * before and after < 0.05, (before, after)
    assert reg.error_iod < reg.error_iod_camera / 4
    assert reg.error_iod_holdout < reg.error_iod_camera / 2
    assert 0 < reg.error_iod  # smoothed: the warp does not interpolate exactly


def test_warp_ignores_distortion_as_small_as_detector_disagreement() -> None:
    # Two renders of one head disagree by ~0.04 eye distances (WARP_DEADBAND): no shape to follow.
    reg, before, after = _held_out_errors(0.05)
    assert 0.01 < before < WARP_DEADBAND, before
    assert abs(after - before) < 0.1 * before, (before, after)


def test_warp_fades_outside_the_landmarks() -> None:
    X, camera, target, iod = _synthetic_pair(0.5)
    proj = camera.project(X)[0]
    warp, _ = fit_warp(proj, target, iod)
    centre = proj.mean(axis=0)
    far = centre + np.array([[3.0, 0.0], [0.0, -3.5], [-3.0, 1.0]]) * iod  # ears, neck: no landmark
    inside = proj[::40]
    assert np.linalg.norm(warp(far) - far, axis=1).max() < 0.01 * iod
    assert np.linalg.norm(warp(inside) - inside, axis=1).max() > 0.1 * iod


def test_warp_stays_identity_like_without_distortion() -> None:
    X, camera, target, iod = _synthetic_pair(0.0)
    noisy = target + np.random.default_rng(0).normal(size=target.shape) * 0.02 * iod
    proj = camera.project(X)[0]
    warp, _ = fit_warp(proj, noisy, iod)
    # Pure noise: the chosen warp smooths it away rather than following it.
    moved = np.linalg.norm(warp(proj) - proj, axis=1).mean()
    assert moved < 0.5 * np.linalg.norm(noisy - proj, axis=1).mean()


@pytest.fixture(scope="module")
def head_case():
    if not HEAD.is_file():
        pytest.skip(f"../shared absent: {HEAD} not found, scanned-head registration skipped")
    import trimesh
    from avatartex.face import MediapipeLandmarker
    from avatartex.landmarks import _vertex_normals, detect_mesh_landmarks
    from avatartex.raster import interpolate, rasterize_camera

    mesh = trimesh.load(HEAD, force="mesh")
    P, T = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    landmarker = MediapipeLandmarker()
    mesh_landmarks = detect_mesh_landmarks(P, T, landmarker, up=[0, 1, 0], forward=[0, 0, 1])
    # The "portrait": the head lit from the upper right in another colour, yaw 10 deg, 30 deg lens.
    direction = np.array([np.sin(np.radians(10)), 0.0, np.cos(np.radians(10))])
    target = np.array([0.0, 1.0, 0.5])
    truth = Camera.look_at(
        target + direction * 3.0 / np.tan(np.radians(15)), target, np.array([0, 1.0, 0]), 30.0, 600, 800
    )
    tri, bary, _ = rasterize_camera(P, T, truth)
    normal = interpolate(_vertex_normals(P, T), T, tri, bary)
    normal /= np.linalg.norm(normal, axis=2, keepdims=True) + 1e-9
    light = np.array([0.5, 0.6, 0.8]) / np.linalg.norm([0.5, 0.6, 0.8])
    shade = 0.2 + 0.8 * np.clip(normal @ light, 0, 1)
    image = np.where((tri >= 0)[..., None], shade[..., None] * [0.8, 0.62, 0.5], [0.3, 0.4, 0.5])
    face = landmarker.detect(image.astype(np.float32))[0]
    return mesh_landmarks, face, truth


def test_scanned_head_registration_error(head_case) -> None:
    mesh_landmarks, face, truth = head_case
    reg = register(mesh_landmarks, face, (600, 800))
    assert reg.error_iod < 0.03, reg.report()
    assert reg.error_iod_camera < 0.05 and reg.error_iod_holdout < 0.03
    assert abs(reg.report()["fov_y_deg"] - 30.0) < 5.0
    # Against the truth: where the known camera puts the mesh landmarks (eyes, nose, lips; the face
    # oval is a silhouette and not a fixed surface point). What remains is the detector's own
    # view-to-view disagreement (~3% of the eye distance measured here).
    inner = mesh_landmarks.valid.copy()
    inner[list(FACE_OVAL)] = False
    X = mesh_landmarks.points3d[inner]
    error = np.linalg.norm(reg.project(X)[0] - truth.project(X)[0], axis=1).mean() / face.interocular
    assert error < 0.045, error
    depth = reg.project(X)[1]
    assert np.all(depth > 0)


def test_gridded_warp_matches_exact_evaluation():
    """Many points go through a grid of exact evaluations; the difference must stay sub-pixel."""
    from avatartex.registration import GRID_ABOVE, fit_warp

    rng = np.random.default_rng(3)
    src = rng.uniform(0, 400, (200, 2))
    dst = src + np.stack([6 * np.sin(src[:, 1] / 60), 4 * np.cos(src[:, 0] / 80)], 1)
    warp, _ = fit_warp(src, dst, scale=100.0, smoothing=1e-3)
    many = rng.uniform(-50, 450, (GRID_ABOVE + 1000, 2))
    gridded = warp(many)
    exact = np.concatenate([warp(chunk) for chunk in np.array_split(many, 4)])
    # Displacements here straddle WARP_DEADBAND (6 px at 100 px per eye distance) and most points lie
    # outside the landmarks' hull, where the fade bends the field: a quarter pixel at most.
    assert np.abs(gridded - exact).max() < 0.25
    assert np.abs(gridded - many).max() > 2  # the warp does move points


@pytest.mark.parametrize("count, smoothing", [(468, 0.3), (60, 0.03), (16, 10.0)])
def test_the_compiled_spline_is_scipys_thin_plate_spline(count: int, smoothing: float) -> None:
    """The warp's own spline solves the system scipy's RBFInterpolator solves (thin-plate kernel,
    linear part, per-point smoothing): the same interpolant, read inside and far outside the points,
    and through them where the smoothing is small."""
    from avatartex.registration import ThinPlateSpline
    from scipy.interpolate import RBFInterpolator

    rng = np.random.default_rng(count)
    points = rng.normal(size=(count, 2))
    values = np.stack([np.sin(points[:, 0]), points[:, 0] * points[:, 1]], 1) + rng.normal(
        0, 0.05, (count, 2)
    )
    per_point = smoothing / rng.uniform(0.1, 1.0, count)
    ours = ThinPlateSpline.fit(points, values, per_point)
    scipys = RBFInterpolator(points, values, kernel="thin_plate_spline", degree=1, smoothing=per_point)
    queries = np.concatenate([rng.normal(size=(3000, 2)) * 3.0, points])
    assert np.abs(ours(queries) - scipys(queries)).max() < 1e-9 * max(1.0, np.abs(values).max())
    exact = ThinPlateSpline.fit(points, values, np.zeros(count))
    assert np.abs(exact(points) - values).max() < 1e-8  # no smoothing: through every point
    assert np.abs(ours(points) - values).max() > 1e-4  # smoothing: not through them


def test_warp_smoothing_moves_continuously_with_the_validation() -> None:
    """The warp's smoothing is read where the validated error crosses the tolerance: scores a hair
    apart give smoothings a hair apart, not two neighbouring listed values."""
    from avatartex.registration import WARP_SMOOTHING, _smoothest_within

    base = np.array([1.0, 0.9, 0.95, 1.1, 1.4, 2.0])[: len(WARP_SMOOTHING)]
    chosen = []
    for tolerance in np.linspace(1.05, 1.15, 101):
        smoothing, score = _smoothest_within(WARP_SMOOTHING, list(base), tolerance)
        assert score <= tolerance + 1e-12
        chosen.append(np.log(smoothing))
    steps = np.diff(chosen)
    assert np.all(steps >= 0) and steps.max() < 0.05
    assert WARP_SMOOTHING[2] < np.exp(chosen[0]) and np.exp(chosen[-1]) < WARP_SMOOTHING[4]


def test_view_matched_landmarks_give_way_smoothly_when_they_fit_worse() -> None:
    """The portrait-view landmarks are taken whole while they fit the photo about as well as the
    mesh's own, and give way to them gradually as they fit it worse: no branch for a moved copy of a
    mesh to fall on the other side of."""
    from avatartex.pipeline.steps import VIEW_MATCH_RATIO, blend_landmarks, view_matched_share

    assert view_matched_share(0.04, 0.03) == 1.0
    assert view_matched_share(0.04, 0.04 * VIEW_MATCH_RATIO[1] + 1e-6) == 0.0
    ratios = np.linspace(1.0, 1.6, 301)
    shares = np.array([view_matched_share(0.04, 0.04 * r) for r in ratios])
    assert np.all(np.diff(shares) <= 0) and np.abs(np.diff(shares)).max() < 0.02

    own = SimpleNamespace(points3d=np.zeros((3, 3)), valid=np.array([True, True, False]))
    from avatartex.landmarks import MeshLandmarks

    matched = MeshLandmarks(
        np.ones((3, 3)),
        np.array([True, False, True]),
        np.zeros(3, np.int32),
        np.zeros((3, 3), np.float32),
        None,
        np.zeros(3),
        np.zeros(3),
        "detected",
    )
    half = blend_landmarks(own, matched, 0.5)
    assert half.valid.tolist() == [True, False, False] and np.allclose(half.points3d[0], 0.5)
    assert blend_landmarks(own, matched, 1.0) is matched and blend_landmarks(own, matched, 0.0) is own


def test_reshaped_landmarks_steer_the_warp_not_the_camera() -> None:
    """Landmarks moved to follow the mesh's own shape (a caricature's nose, ``reshaped``) are left
    out of the camera fit — the camera is the one the other landmarks give — and still steer the
    warp, which takes the photo's points onto them."""
    X, camera, target, iod = _synthetic_pair(0.0)
    face = Face(target.astype(np.float32))
    valid = np.ones(468, bool)
    nose = np.zeros(468, bool)
    nose[np.argsort(np.linalg.norm(X[:, :2] - X[1, :2], axis=1))[:40]] = True
    stretched = X.copy()
    stretched[nose, 1] -= 0.3 * 2 * 2.45  # the nose 0.3 eye distances longer on the mesh
    reshaped = SimpleNamespace(points3d=stretched, valid=valid, reshaped=nose)
    without = SimpleNamespace(points3d=stretched, valid=~nose)
    kept = register(reshaped, face, (600, 800))
    rest = ~nose
    camera_miss = np.linalg.norm(kept.camera.project(X[rest])[0] - target[rest], axis=1).mean() / iod
    assert camera_miss < 0.01, camera_miss
    focal, angle, centre = _pose_error(kept.camera, register(without, face, (600, 800)).camera)
    assert focal < 1e-3 and angle < 0.05 and centre < 1e-3, (focal, angle, centre)
    # The warp takes the photo's nose (target) to where the camera puts the mesh's longer one.
    moved = kept.project(stretched[nose])[0]
    assert np.linalg.norm(moved - target[nose], axis=1).mean() / iod < 0.1


def test_blending_cameras_near_a_half_turn_stays_between_them() -> None:
    """Two cameras a degree apart, both nearly a half turn from the world's axes (a camera in front
    of a face that looks along +z): their blend lies between them, where blending the rotation
    vectors (of opposite signs there) would throw it anywhere."""
    import cv2
    from avatartex.registration import blend_cameras

    def turned(angle_deg: float) -> Camera:
        R = cv2.Rodrigues(np.array([[0.0], [np.radians(angle_deg)], [0.0]]))[0]
        return Camera(800.0, 800.0, 320.0, 240.0, R, np.array([0.0, 0.0, 5.0]), 640, 480)

    a, b = turned(179.6), turned(-179.6)  # 0.8° apart, rotation vectors of opposite signs
    points = np.array([[0.3, 0.2, 0.1], [-0.2, 0.1, -0.3], [0.0, -0.3, 0.2]])
    for share in (0.0, 0.25, 0.5, 1.0):
        blended = blend_cameras(a, b, share)
        gap = np.linalg.norm(blended.project(points)[0] - a.project(points)[0], axis=1).max()
        span = np.linalg.norm(b.project(points)[0] - a.project(points)[0], axis=1).max()
        assert gap <= 1.05 * share * span + 1e-6
    assert np.allclose(blend_cameras(a, b, 1.0).R, b.R, atol=1e-9)


def test_the_report_names_the_head_outline_as_the_fovs_source_only_where_its_camera_was_taken() -> None:
    from avatartex.registration import OUTLINE_FOV_WEIGHT, FovPrior, Registration, ThinPlateWarp

    def registration(prior: FovPrior, outline_weight: float | None) -> Registration:
        camera = Camera(800.0, 800.0, 300.0, 400.0, np.eye(3), np.array([0.0, 0.0, 5.0]), 600, 800)
        return Registration(
            camera=camera,
            warp=ThinPlateWarp(None, np.zeros(2), 1.0),
            residual_camera=0.0,
            residual_warped=0.0,
            error_iod=0.0,
            error_iod_camera=0.0,
            error_iod_holdout=0.0,
            interocular=100.0,
            indices=np.arange(0),
            residuals=np.zeros(0),
            outline={}
            if outline_weight is None
            else {"applied": outline_weight > 0, "weight": outline_weight},
            prior=prior,
        )

    lenses = FovPrior.for_image((600, 800))
    exif = FovPrior.for_image((600, 800), 30.0)
    assert registration(lenses, None).fov_source == "portrait prior"  # the outline never measured
    assert registration(lenses, 0.0).fov_source == "portrait prior"  # hair hid it
    assert registration(lenses, OUTLINE_FOV_WEIGHT * 0.9).fov_source == "portrait prior"
    assert registration(lenses, OUTLINE_FOV_WEIGHT).fov_source == "head outline"
    assert registration(lenses, 1.0).report()["fov_source"] == "head outline"
    # The photo's own lens data is held whatever the outline did.
    assert registration(exif, 1.0).fov_source == "exif"


def test_under_an_outline_led_camera_the_landmarks_that_fit_it_steer_the_warp() -> None:
    """Where the head's outline led the camera, the mesh's own landmarks and the view-matched ones
    are judged again by how each fits the photo under that camera: the view-matched set, read 0.2 eye
    distances high here (as a render from the photo's view can be read), gives way to the
    mesh's own as far as the outline led; a camera the outline did not lead keeps the first choice."""
    from avatartex.pipeline.steps import landmarks_under_the_outline

    X, camera, target, _ = _synthetic_pair(0.0)
    face = Face(target.astype(np.float32))
    valid = np.ones(468, bool)
    own = SimpleNamespace(points3d=X, valid=valid)
    off = X + np.array([0.0, 0.2 * 2 * 2.45, 0.0])  # the view-matched set read 0.2 eye distances high
    seen = SimpleNamespace(points3d=off, valid=valid, reshaped=None)
    first = register(seen, face, (600, 800), fitted=camera)  # the view-matched set taken whole
    for led, expected in ((1.0, X), (0.0, off)):
        placed = dataclasses.replace(first, outline={"applied": True, "weight": 1.0, "led_weight": led})
        judged = landmarks_under_the_outline(placed, own, seen, 1.0, face, (600, 800))
        assert judged.camera is camera and judged.outline is placed.outline
        assert np.allclose(judged.points3d, expected)
        assert (judged.error_iod_camera < 0.01) == (led == 1.0)  # the camera puts the photo's on them


def test_a_camera_placed_by_the_outline_leaves_the_landmarks_placement_out_of_the_warp() -> None:
    """Where the head's outline placed the camera (``placed``), the photo's landmarks read shifted,
    turned and scaled as a whole against the mesh's (the detector's reading, not the face) do not
    bend the texture; the face's own shape (a bulge no similarity makes) still does."""
    from avatartex.registration import placement_part

    X, camera, shaped, iod = _synthetic_pair(0.5)
    centre = shaped.mean(axis=0)
    turn = np.radians(3.0)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    read = (shaped - centre) @ rotation.T * 1.05 + centre + np.array([0.08, -0.12]) * iod
    weights = np.ones(len(X))
    # A similarity alone is all placement.
    assert np.allclose(placement_part(shaped, read, weights), read - shaped, atol=1e-9)
    face = Face(read.astype(np.float32))
    mesh = SimpleNamespace(points3d=X, valid=np.ones(468, bool))
    projected = camera.project(X)[0]
    for placed in (0.0, 1.0):
        reg = register(mesh, face, (600, 800), fitted=camera, placed=placed)
        to_read = np.linalg.norm(reg.project(X)[0] - read, axis=1).mean() / iod
        # What the warp keeps: the bend beyond the best similarity of the projection to the photo.
        bend = reg.project(X)[0] - projected
        shape_only = bend - placement_part(projected, reg.project(X)[0], weights)
        expected_shape = (shaped - projected) - placement_part(projected, shaped, weights)
        shape_miss = np.linalg.norm(shape_only - expected_shape, axis=1).mean() / iod
        placement = np.linalg.norm(placement_part(projected, reg.project(X)[0], weights), axis=1).mean() / iod
        if placed == 0.0:  # the warp takes the photo's points whole
            assert to_read < 0.05 and placement > 0.15, (to_read, placement)
        else:  # the shape is bent in, the placement left out
            assert placement < 0.02 and to_read > 0.15, (placement, to_read)
        assert shape_miss < 0.05, (placed, shape_miss)


def test_the_registration_runs_its_small_fits_on_one_blas_thread_and_gives_the_rest_back():
    from avatartex.pipeline import steps
    from avatartex.registration import SMALL_FITS_BLAS_THREADS, small_fits
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    assert before, "numpy's BLAS is not seen by threadpoolctl"
    inside = small_fits(blas_threads)()
    assert inside == [SMALL_FITS_BLAS_THREADS] * len(before)
    assert blas_threads() == before
    # The pipeline's registration step is the one run so.
    assert getattr(steps.register_portrait, "__wrapped__", None) is not None
    assert steps.register_portrait.__wrapped__.__name__ == "register_portrait"
