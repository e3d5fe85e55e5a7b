"""Low-order lighting as a function of the surface normal: 9-coefficient spherical harmonics, and
ambient plus directional lights (``DirectionalLights``), which the SH fit starts.

Used to take the photo's light out of the texture (classic stage 2).
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class DirectionalLights:
    """Ambient light plus a few distant lights on a Lambertian surface, in linear luminance:
    ``ambient + sum_k max(n . v_k, 0)`` with ``v_k`` a light's direction times its
    intensity. Unlike a low-order spherical harmonic it has a terminator: the side of a face turned
    away from a key light falls to the ambient level and stays there, as it does in photos lit from
    the side, from below or at a grazing angle (order-2 SH rings there, and the ring ends up in the
    albedo)."""

    ambient: float
    lights: np.ndarray
    """(K, 3) direction x intensity of each light, in the normals' frame."""

    def __call__(self, normals: np.ndarray) -> np.ndarray:
        """Shading at unit ``normals`` (..., 3)."""
        n = np.asarray(normals, np.float32)
        lit = np.clip(n @ self.lights.T.astype(np.float32), 0.0, None)
        return np.float32(self.ambient) + lit.sum(axis=-1)


def fit_lights(
    luminance: np.ndarray, normals: np.ndarray, weights: np.ndarray, sh: np.ndarray
) -> tuple[DirectionalLights, float]:
    """Robust fit of ambient plus one key light (``DirectionalLights``), started from the SH fit
    ``sh``: its first-order part points at the key light, and a clamped cosine's first-order
    coefficient is half its intensity. (A second light and cast shadows from a shadow map of the
    surface were tried on the sweep's renders and gained nothing.) Returns the model and its robust
    residual scale (MAD)."""
    from scipy.optimize import least_squares

    n = np.asarray(normals, np.float64)
    y = np.asarray(luminance, np.float64)
    sw = np.sqrt(np.clip(np.asarray(weights, np.float64), 0.0, None))
    key = 2.0 * np.asarray(sh[1:4], np.float64)
    if np.linalg.norm(key) < 1e-6:
        key = np.array([0.0, 0.0, 1e-3])
    ambient = max(float(sh[0]) - 0.25 * float(np.linalg.norm(key)), 1e-3)
    x0 = np.concatenate([[ambient], key])
    residual_sh = y - sh_basis(n) @ sh
    scale = max(1.4826 * float(np.median(np.abs(residual_sh[sw > 0]))), 1e-4)

    def residuals(x: np.ndarray) -> np.ndarray:
        return sw * (x[0] + np.clip(n @ x[1:], 0.0, None) - y)

    def jacobian(x: np.ndarray) -> np.ndarray:
        J = np.empty((len(n), 4))
        J[:, 0] = 1.0
        J[:, 1:] = (n @ x[1:] > 0)[:, None] * n
        return J * sw[:, None]

    fit = least_squares(residuals, x0, jac=jacobian, loss="soft_l1", f_scale=scale, max_nfev=60)
    model = DirectionalLights(float(fit.x[0]), fit.x[1:].reshape(1, 3).astype(np.float32))
    predicted = model(n.astype(np.float32))
    mad = 1.4826 * float(np.median(np.abs(predicted - y)[sw > 0]))
    return model, mad
