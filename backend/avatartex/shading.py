"""Low-order lighting: 9-coefficient spherical-harmonic shading as a function of the surface normal.

Used to take the photo's light out of the texture (classic stage 2) and to light the mesh like the
photo when its landmarks are detected again (registration).
"""

from __future__ import annotations

import numpy as np


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """The 9 real spherical harmonics up to order 2 (unnormalised) of unit normals (..., 3) -> (..., 9)."""
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    one = np.ones_like(x)
    return np.stack([one, x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1], axis=-1)


def sh_eval(normals: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """``sh_basis(normals) @ coeffs`` without building the (..., 9) basis (a quadratic form in n)."""
    c = coeffs
    quad = np.array(
        [
            [c[7] - c[8], c[4] / 2, c[5] / 2],
            [c[4] / 2, -c[7] - c[8], c[6] / 2],
            [c[5] / 2, c[6] / 2, 2 * c[8]],
        ],
        np.float32,
    )
    n = normals.astype(np.float32)
    return ((n @ quad) * n).sum(axis=-1) + n @ c[1:4].astype(np.float32) + np.float32(c[0])


def fit_shading(
    luminance: np.ndarray, normals: np.ndarray, weights: np.ndarray, iterations: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """Robust least-squares SH shading: ``luminance ~ sh_basis(normals) @ coeffs``.

    The albedo is taken as constant up to outliers (brows, lips, hair, eyes), which Tukey's
    biweight on the residuals removes (iteratively reweighted least squares). Returns the 9
    coefficients and the final per-sample weights.
    """
    basis = sh_basis(normals).astype(np.float64)
    lum = luminance.astype(np.float64)
    w = weights.astype(np.float64)
    coeffs = np.zeros(9)
    ridge = 1e-6 * np.eye(9)
    for _ in range(iterations):
        bw = basis * w[:, None]
        coeffs = np.linalg.solve(bw.T @ basis + ridge * max(w.sum(), 1.0), bw.T @ lum)
        residual = lum - basis @ coeffs
        scale = max(1.4826 * float(np.median(np.abs(residual))), 1e-4)
        u = residual / (4.685 * scale)
        w = weights * np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
    return coeffs, w
