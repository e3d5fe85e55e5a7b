"""A pinhole camera in OpenCV's convention, shared by rendering, registration and projection.

A world point X maps to camera space as ``x = R @ X + t``; the camera looks down +z, image x goes
right and image y goes down; pixel ``(u, v) = (fx * x / z + cx, fy * y / z + cy)`` where pixel
centres sit at integer + 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Camera:
    """Intrinsics, pose and image size of a pinhole camera."""

    fx: float
    fy: float
    cx: float
    cy: float
    R: np.ndarray
    """(3, 3) rotation world -> camera."""
    t: np.ndarray
    """(3,) translation world -> camera."""
    width: int
    height: int

    def scaled(self, factor: float) -> Camera:
        """The same view with its image scaled by ``factor`` (the size rounded to whole pixels)."""
        return Camera(
            self.fx * factor,
            self.fy * factor,
            self.cx * factor,
            self.cy * factor,
            self.R,
            self.t,
            max(1, int(round(self.width * factor))),
            max(1, int(round(self.height * factor))),
        )

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points in camera space."""
        return np.asarray(points, np.float64) @ self.R.T + self.t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) and camera depth (N,) of world points."""
        cam = self.to_camera(points)
        z = cam[:, 2]
        safe = np.where(np.abs(z) < 1e-12, 1e-12, z)
        uv = np.stack([self.fx * cam[:, 0] / safe + self.cx, self.fy * cam[:, 1] / safe + self.cy], axis=1)
        return uv, z

    @property
    def fov_y_deg(self) -> float:
        """The vertical field of view, degrees."""
        return float(np.degrees(2 * np.arctan(0.5 * self.height / self.fy)))

    @property
    def center(self) -> np.ndarray:
        """The camera's position in world space."""
        return -self.R.T @ self.t

    @classmethod
    def look_at(
        cls, eye: np.ndarray, target: np.ndarray, up: np.ndarray, fov_y_deg: float, width: int, height: int
    ) -> Camera:
        """A camera at ``eye`` looking at ``target`` with ``up`` pointing up in the image."""
        eye, target, up = (np.asarray(a, np.float64) for a in (eye, target, up))
        forward = target - eye
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, up)
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        R = np.stack([right, down, forward])
        f = 0.5 * height / np.tan(np.radians(fov_y_deg) / 2)
        return cls(f, f, width / 2, height / 2, R, -R @ eye, width, height)
