"""The verdict on a registration (avatartex.quality): consistent landmarks are good, landmarks whose
regions disagree are flagged, and the estimate grows with the disagreement."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from avatartex.atlas import HeadFrame
from avatartex.camera import Camera
from avatartex.face import Face
from avatartex.quality import assess, region_agreement, view_angles
from avatartex.registration import register


def _scene(seed: int = 5):
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1, 1, (468, 2))
    z = np.sqrt(np.clip(1 - (u**2).sum(1) * 0.7, 0.05, None))
    X = np.stack([u[:, 0] * 7, u[:, 1] * 9, z * 6], axis=1)
    camera = Camera.look_at(
        np.array([8.0, 2.0, 70.0]), np.array([0, 0, 2.0]), np.array([0, 1.0, 0]), 25, 600, 800
    )
    frame = HeadFrame(origin=np.array([0.0, 0.0, -2.0]), axes=np.eye(3), scale=5.0)
    return X, camera, frame


def _register(X, x):
    return register(
        SimpleNamespace(points3d=X, valid=np.ones(len(X), bool)), Face(x.astype(np.float32)), (600, 800)
    )


def test_consistent_landmarks_are_good():
    X, camera, frame = _scene()
    reg = _register(X, camera.project(X)[0])
    quality = assess(reg, frame, portrait_score=0.9, mesh_score=0.9, landmarks_source="detected")
    assert quality.verdict == "good", quality.report()
    assert quality.estimated_error_iod < 0.01
    yaw, _ = view_angles(reg, frame)
    assert 3 < yaw < 10  # the camera sits at x = 8 of 70: about 6.5 degrees to the character's left


def test_a_region_that_disagrees_is_flagged_and_grows_the_estimate():
    X, camera, frame = _scene()
    x = camera.project(X)[0]
    lower = X[:, 1] < -3.0  # the lower third of the face
    estimates = []
    for shift in (0.0, 0.15, 0.4):
        moved = x.copy()
        iod = Face(x.astype(np.float32)).interocular
        moved[lower] += np.array([0.0, shift * iod])  # mouth and jaw seen lower than the mesh's
        reg = _register(X, moved)
        estimates.append(assess(reg, frame, 0.9, 0.9, "detected").estimated_error_iod)
        if shift == 0.4:
            assert region_agreement(reg, frame) > 0.005
            assert assess(reg, frame, 0.9, 0.9, "detected").verdict != "good"
    assert estimates[0] < estimates[1] < estimates[2], estimates


def test_an_implausible_lens_or_a_side_view_is_doubtful():
    X, camera, frame = _scene()
    reg = _register(X, camera.project(X)[0])
    side = HeadFrame(origin=frame.origin, axes=np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]]), scale=5.0)
    quality = assess(reg, side, 0.9, 0.9, "detected")
    assert quality.verdict == "doubtful" and any("side" in r for r in quality.reasons)
    assert assess(reg, frame, 0.2, 0.9, "detected").verdict == "doubtful"
