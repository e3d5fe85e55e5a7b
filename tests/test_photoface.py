"""The photographed face's own normals, read from the face detector's depths (``photoface``)."""

from __future__ import annotations

import numpy as np
from avatartex.camera import Camera
from avatartex.photoface import photo_face_normals

IOD = 60.0


def _ellipsoid_face(count: int = 468, seed: int = 0) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Landmarks (N, 2) and depths (N,) of points on the front of an ellipsoid seen straight on
    (x right, y down, depth away from the camera, pixels), as the detector gives a face's; and the
    ellipsoid's centre and radii."""
    rng = np.random.default_rng(seed)
    centre, radii = np.array([200.0, 220.0]), np.array([90.0, 120.0, 80.0])
    angle, r = rng.uniform(0, 2 * np.pi, count), np.sqrt(rng.uniform(0, 0.95**2, count))
    xy = np.stack([np.cos(angle) * r, np.sin(angle) * r], axis=1)
    depth = -radii[2] * np.sqrt(1.0 - (xy**2).sum(axis=1))
    return (centre + xy * radii[:2]).astype(np.float32), depth.astype(np.float32), (centre, radii)


def _true_normals(xy: np.ndarray, centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """The ellipsoid's unit normals facing the camera at image points ``xy`` (N, 2)."""
    u = (xy - centre) / radii[:2]
    w = -np.sqrt(np.clip(1.0 - (u**2).sum(axis=1), 1e-9, None))
    n = np.stack([u[:, 0] / radii[0], u[:, 1] / radii[1], w / radii[2]], axis=1)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _straight_on() -> Camera:
    return Camera(500.0, 500.0, 200.0, 220.0, np.eye(3), np.array([0.0, 0.0, 5.0]), 400, 440)


def test_the_normals_follow_the_detectors_depths_and_fade_out_at_the_face_mesh_border() -> None:
    landmarks, depth, (centre, radii) = _ellipsoid_face()
    inner = centre + np.array([[0, 0], [40, 10], [-50, 30], [30, -60], [-60, -40], [60, 40]], np.float32)
    outside = centre + np.array([[0, 140], [110, 0]], np.float32)
    coords = np.concatenate([inner, outside, [[np.nan, np.nan]]]).astype(np.float32)[None]
    normals, cover = photo_face_normals(landmarks, depth, IOD, coords, _straight_on(), np.eye(3))
    truth = _true_normals(inner, centre, radii)
    angle = np.degrees(np.arccos(np.clip((normals[0, : len(inner)] * truth).sum(axis=1), -1, 1)))
    # Turned towards the sides as the surface turns (up to ~40 degrees at the outer points).
    assert angle.max() < 8.0, angle
    assert np.all(cover[0, : len(inner)] > 0.99) and np.all(cover[0, len(inner) :] == 0.0), cover


def test_the_normals_are_turned_into_the_head_frame_through_the_camera() -> None:
    """A normal facing the camera, in a head frame turned against the mesh and seen by a camera
    turned against the world, points from the head towards that camera."""
    landmarks, depth, (centre, _) = _ellipsoid_face()

    def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
        axis = axis / np.linalg.norm(axis)
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        a = np.radians(degrees)
        return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k

    camera = _straight_on()
    camera.R = rotation(np.array([0.3, 1.0, 0.2]), 35.0)
    axes = rotation(np.array([1.0, -0.4, 0.5]), 50.0)  # rows: the head frame's axes in mesh space
    at_centre = centre[None, None].astype(np.float32)
    normals, _ = photo_face_normals(landmarks, depth, IOD, at_centre, camera, axes)
    towards_camera_mesh = camera.R.T @ np.array([0.0, 0.0, -1.0])
    assert np.allclose(normals[0, 0], axes @ towards_camera_mesh, atol=0.03), normals[0, 0]


def test_no_depths_no_normals() -> None:
    landmarks, _, (centre, _) = _ellipsoid_face()
    coords = centre[None, None].astype(np.float32)
    assert photo_face_normals(landmarks, None, IOD, coords, _straight_on(), np.eye(3)) is None
    bad = np.full(len(landmarks), np.nan, np.float32)
    assert photo_face_normals(landmarks, bad, IOD, coords, _straight_on(), np.eye(3)) is None
