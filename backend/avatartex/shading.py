"""Low-order lighting as a function of the surface normal: 9-coefficient spherical harmonics, and
ambient plus directional lights (``DirectionalLights``), which the SH fit starts.

Used to take the photo's light out of the texture (classic stage 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

from .imaging import sample_image

LIGHT_FIT_TOLERANCE = 1e-5
"""Relative change of the robust cost and of the parameters at which ``fit_lights`` stops (scipy's
default 1e-8; the registration's fits stop at the same, ``registration.FIT_TOLERANCE``): on the
astronaut's demo request, 33 600 residuals, its two starts took 12 and 10 evaluations for 20 and
12, 0.20 s for 0.27 alone on this 2-core machine, and the fitted light moved by less than 1e-4 of
its strength, the ambient's occluded share by 0.002."""


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
    occluded: float = 0.0
    """The share of the ambient light the mesh's own ambient occlusion takes away (0: an ambient
    that reaches into every crease, 1: a sky the creases see only as far as ``occlusion`` says)."""

    def __call__(self, normals: np.ndarray, occlusion: np.ndarray | None = None) -> np.ndarray:
        """Shading at unit ``normals`` (..., 3), where the surface sees the share ``occlusion``
        (...) of the sky (``occlusion.vertex_occlusion``; None: all of it)."""
        n = np.asarray(normals, np.float32)
        lit = np.clip(n @ self.lights.T.astype(np.float32), 0.0, None).sum(axis=-1)
        return ambient_term(self.ambient, self.occluded, occlusion) + lit


def ambient_term(ambient: float, occluded: float, occlusion: np.ndarray | None) -> np.ndarray | np.float32:
    """``ambient * (1 - occluded * (1 - occlusion))``: the ambient light a surface seeing the share
    ``occlusion`` of the sky receives (float32; the plain ambient where ``occlusion`` is None)."""
    if occlusion is None or occluded == 0:
        return np.float32(ambient)
    closed = np.float32(1.0) - np.asarray(occlusion, np.float32)
    return np.float32(ambient) * (np.float32(1.0) - np.float32(occluded) * closed)


def fit_lights(
    luminance: np.ndarray,
    normals: np.ndarray,
    weights: np.ndarray,
    sh: np.ndarray,
    occlusion: np.ndarray | None = None,
) -> tuple[DirectionalLights, float]:
    """Robust fit of ambient plus one key light (``DirectionalLights``), started from the SH fit
    ``sh``: its first-order part points at the key light, and a clamped cosine's first-order
    coefficient is half its intensity. (A second light and cast shadows from a shadow map of the
    surface were tried on the sweep's renders and gained nothing.) With the samples' ambient
    ``occlusion`` (N,) (``occlusion.vertex_occlusion``), also the share of the ambient it takes away
    (``DirectionalLights.occluded``, within 0..1): the photo's own darkness in the creases, which no
    light of the normal alone makes. Returns the model and its robust residual scale (MAD)."""
    from scipy.optimize import least_squares

    n = np.asarray(normals, np.float64)
    y = np.asarray(luminance, np.float64)
    weight = np.clip(np.asarray(weights, np.float64), 0.0, None)
    sw = np.sqrt(weight)
    key = 2.0 * np.asarray(sh[1:4], np.float64)
    if np.linalg.norm(key) < 1e-6:
        key = np.array([0.0, 0.0, 1e-3])
    ambient = max(float(sh[0]) - 0.25 * float(np.linalg.norm(key)), 1e-3)
    closed = None if occlusion is None else 1.0 - np.clip(np.asarray(occlusion, np.float64), 0.0, 1.0)
    if closed is not None and not (sw[closed > 0.02] > 0).any():
        closed = None  # no fitted texel in a crease: the share is not observable
    x0 = np.concatenate([[ambient], key] + ([[0.25]] if closed is not None else []))
    residual_sh = y - sh_basis(n) @ sh
    scale = max(1.4826 * float(np.median(np.abs(residual_sh[sw > 0]))), 1e-4)

    def ambient_of(x: np.ndarray) -> np.ndarray | float:
        return x[0] if closed is None else x[0] * (1.0 - x[4] * closed)

    def residuals(x: np.ndarray) -> np.ndarray:
        return sw * (ambient_of(x) + np.clip(n @ x[1:4], 0.0, None) - y)

    def jacobian(x: np.ndarray) -> np.ndarray:
        J = np.empty((len(n), len(x)))
        J[:, 0] = 1.0 if closed is None else 1.0 - x[4] * closed
        J[:, 1:4] = (n @ x[1:4] > 0)[:, None] * n
        if closed is not None:
            J[:, 4] = -x[0] * closed
        return J * sw[:, None]

    bounds = (-np.inf, np.inf) if closed is None else ([-np.inf] * 4 + [0.0], [np.inf] * 4 + [1.0])

    def solve(start: np.ndarray):
        return least_squares(
            residuals,
            start,
            jac=jacobian,
            bounds=bounds,
            loss="soft_l1",
            f_scale=scale,
            max_nfev=60,
            ftol=LIGHT_FIT_TOLERANCE,
            xtol=LIGHT_FIT_TOLERANCE,
        )

    fit = solve(x0)
    # A key light that lights hardly any of the samples (behind the face) is a flat model's twin:
    # where the normals explain the luminance poorly (a head that is not the photographed face) the
    # fit can settle there from the SH's start; the light of the same strength along the samples'
    # mean normal is tried too, and the lower cost wins.
    if float(weight[(n @ fit.x[1:4]) > 0].sum()) < 0.25 * max(float(weight.sum()), 1e-12):
        facing = (n * weight[:, None]).sum(axis=0)
        start = x0.copy()
        start[1:4] = max(np.linalg.norm(key), 1e-3) * facing / max(np.linalg.norm(facing), 1e-12)
        other = solve(start)
        if other.cost < fit.cost:
            fit = other
    occluded = 0.0 if closed is None else float(fit.x[4])
    model = DirectionalLights(float(fit.x[0]), fit.x[1:4].reshape(1, 3).astype(np.float32), occluded)
    predicted = model(n.astype(np.float32), occlusion)
    mad = 1.4826 * float(np.median(np.abs(predicted - y)[sw > 0]))
    return model, mad


def as_photographed(values: np.ndarray, coords: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per-texel ``values`` (N,) (shading, in linear light) as the photo recorded them: averaged over
    each portrait pixel, then read back at each texel's portrait position ``coords`` (N, 2) (pixel
    centres at +0.5) through the same bilinear sampling that gave the texel its colour.

    Where the atlas is finer than the photo, a crease (eyelid, nostril, lip line) is sharper in the
    mesh's shading than in the photo: divided out texel by texel, its fine shading comes back
    inverted in the albedo (on bench/sweep.py's renders with the true camera and the true light the
    fine error followed the crease shading with correlation -0.1 to -0.6). Each texel's value is
    splatted into the four pixels around it with its bilinear weights, and read back from there as
    a normalised convolution, so pixels no texel reached do not count.
    """
    h, w = int(shape[0]), int(shape[1])
    xy = np.asarray(coords, np.float64)
    v = np.asarray(values, np.float64)
    if len(v) == 0:
        return np.zeros(0, np.float32)
    # Only the photo's box around the texels (and one empty pixel around it, which the sampling
    # reads as the whole photo's zeros there would be): a face is a small part of a large photo.
    low, high = _corner_extent(xy)
    x0 = max(int(np.clip(low[0], 0, w - 1)) - 1, 0)
    y0 = max(int(np.clip(low[1], 0, h - 1)) - 1, 0)
    x1 = min(int(np.clip(high[0], 0, w - 1)) + 1, w - 1)
    y1 = min(int(np.clip(high[1], 0, h - 1)) + 1, h - 1)
    grid = np.zeros((y1 - y0 + 1, x1 - x0 + 1, 2), np.float64)
    _splat_bilinear(xy, v, np.array([x0, y0, w, h], np.int64), grid)
    back = sample_image(
        grid.astype(np.float32), np.asarray(coords, np.float32) - np.array([x0, y0], np.float32)
    )
    return (back[:, 0] / np.maximum(back[:, 1], 1e-9)).astype(np.float32)


@njit(cache=True)
def _corner_extent(xy) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest top-left pixel of the bilinear cells of positions ``xy`` (N, 2), and
    the highest's right neighbour: (x, y) int64 pairs (a numpy reduction along the first axis of an
    (N, 2) array costs ten times this)."""
    low = np.full(2, np.iinfo(np.int64).max, np.int64)
    high = np.full(2, np.iinfo(np.int64).min, np.int64)
    for i in range(xy.shape[0]):
        for k in range(2):
            corner = int(np.floor(xy[i, k] - 0.5))
            low[k] = min(low[k], corner)
            high[k] = max(high[k], corner + 1)
    return low, high


@njit(cache=True)
def _splat_bilinear(xy, values, frame, grid) -> None:
    """Add each value (and its weight) into the four pixels around its position ``xy`` (pixel
    centres at +0.5) with its bilinear weights: ``grid`` (rows, cols, 2) covers the photo from pixel
    (``frame[0]``, ``frame[1]``); positions off the photo (``frame[2]`` x ``frame[3]``) clamp to its
    edge, as the sampling that read the colour does."""
    x0, y0, w, h = frame[0], frame[1], frame[2], frame[3]
    for i in range(xy.shape[0]):
        px, py = xy[i, 0] - 0.5, xy[i, 1] - 0.5
        cx, cy = np.floor(px), np.floor(py)
        fx, fy = px - cx, py - cy
        ix, iy = int(cx), int(cy)
        for dy in range(2):
            row = min(max(iy + dy, 0), h - 1) - y0
            wy = fy if dy else 1.0 - fy
            for dx in range(2):
                col = min(max(ix + dx, 0), w - 1) - x0
                weight = (fx if dx else 1.0 - fx) * wy
                grid[row, col, 0] += weight * values[i]
                grid[row, col, 1] += weight


@dataclass(frozen=True)
class DetailFit:
    """A key light refitted to the shading's detail band, and how much of that band it explains."""

    lights: DirectionalLights
    explained: float
    """1 - (weighted mean square of the band's residual) / (that of the band itself): near 1 where
    the mesh's creases are the photo's, near 0 where they are not (another face's, misplaced); 0
    where nothing was fitted."""


def fit_detail_light(
    model: DirectionalLights,
    luminance: np.ndarray,
    normals: np.ndarray,
    weight: np.ndarray,
    sigma: float,
    iterations: int = 8,
    occlusion: np.ndarray | None = None,
) -> DetailFit:
    """Refit the key light of ``model`` to the shading's detail: the part of log-luminance finer than
    a Gaussian of ``sigma`` texels (creases, the nose's sides, the brows' ridge, the lips),
    compared with the same band of the model's log-shading.

    The fit on the luminance itself (``fit_lights``) cannot tell a face-sized albedo variation
    (ruddy cheeks, a paler forehead) from the light's falloff, and settles on a flatter light: with
    the true camera on bench/sweep.py's renders it recovered a top light's contrast as 2.7 for a true
    3.5, and two lights' as 1.2 for 1.7. The flat part of the error is harmless; the crease part is
    not: a key light too weak leaves the creases' shading in the albedo (embossed eyelids and
    nostrils). Albedo hardly varies at the creases' scale, the shading does: in that band the light
    is seen without the albedo's large-scale part.

    ``luminance`` (linear), ``weight`` (H, W) and ``normals`` (H, W, 3) are images (atlas crops);
    texels of zero weight (not skin, unseen) are left out of every average. Gauss-Newton with Huber
    weights on the ratio key/ambient (the shading's scale is not observable in the band and is kept).
    A start that lights almost none of the skin has no gradient: the light of the same strength
    along the skin's mean normal is tried too, and the lower cost wins.

    With the texels' ambient ``occlusion`` (H, W), the share of the ambient it takes away
    (``DirectionalLights.occluded``, within 0..1) is refitted in the same band: the creases' own
    darkness lives at their scale, where the albedo hardly varies.
    """
    w = np.asarray(weight, np.float32)
    inside = w > 0
    if inside.sum() < 100 or not model.ambient > 0 or not np.all(np.isfinite(model.lights)):
        return DetailFit(model, 0.0)
    n = np.asarray(normals, np.float32)
    blurred_weight = np.maximum(cv2.GaussianBlur(w, (0, 0), sigma), 1e-6)

    def band(stack: np.ndarray) -> np.ndarray:
        low = cv2.GaussianBlur(stack * w[..., None], (0, 0), sigma).reshape(stack.shape)
        return stack - low / blurred_weight[..., None]

    y = band(np.log(np.maximum(np.asarray(luminance, np.float32), 1e-4))[..., None])[inside, 0]
    ws = w[inside].astype(np.float64)
    closed = None if occlusion is None else (1.0 - np.clip(np.asarray(occlusion, np.float32), 0.0, 1.0))
    if closed is not None and not (closed[inside] > 0.02).any():
        closed = None  # no skin texel in a crease: the share is not observable here

    def residuals(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The band's residual at ``q`` (the key over the ambient, then the occluded share when
        fitted), its Jacobian and the Huber weights."""
        d = n @ q[:3].astype(np.float32)
        lit = d > 0
        base = np.float32(1.0) if closed is None else 1.0 - np.float32(q[3]) * closed
        s = np.maximum(base + np.where(lit, d, 0.0), np.float32(1e-3))  # a closed-in texel in no light
        columns = [np.log(s)[..., None], np.where(lit[..., None], n / s[..., None], 0.0)]
        if closed is not None:
            columns.append((-closed / s)[..., None])
        b = band(np.concatenate(columns, axis=-1).astype(np.float32))[inside]
        r = (y - b[:, 0]).astype(np.float64)
        scale = max(1.4826 * float(np.median(np.abs(r))), 1e-4)
        return (
            r,
            b[:, 1:].astype(np.float64),
            ws * np.minimum(1.0, 1.345 * scale / np.maximum(np.abs(r), 1e-12)),
        )

    def solve(q: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """Gauss-Newton from ``q``, the light's steps at most half as long as the light (a step
        across the terminator changes which texels are lit), the occluded share kept within 0..1;
        the result, its robust cost and the band's residual there."""
        for _ in range(iterations):
            r, J, robust = residuals(q)
            normal = J.T @ (J * robust[:, None]) + 1e-6 * robust.sum() * np.eye(len(q))
            step = np.linalg.solve(normal, J.T @ (robust * r))
            limit = 0.5 * np.linalg.norm(q[:3]) + 0.1
            if np.linalg.norm(step[:3]) > limit:
                step *= limit / np.linalg.norm(step[:3])
            moved = q + step
            if len(q) > 3:
                moved[3] = np.clip(moved[3], 0.0, 1.0)
            step, q = moved - q, moved
            if np.linalg.norm(step) < 1e-3 * (1.0 + np.linalg.norm(q)):
                break
        r, _, robust = residuals(q)
        return q, float((robust * r * r).sum() / ws.sum()), r

    q0 = np.asarray(model.lights[0], np.float64) / model.ambient
    starts = [q0]
    if float(((n[inside] @ q0.astype(np.float32)) > 0).mean()) < 0.25:
        facing = (n[inside] * ws[:, None]).sum(axis=0)
        starts.append(max(np.linalg.norm(q0), 1.0) * facing / max(np.linalg.norm(facing), 1e-9))
    if closed is not None:
        starts = [np.append(start, model.occluded) for start in starts]
    q, _, r = min((solve(start) for start in starts), key=lambda found: found[1])
    if not np.all(np.isfinite(q)):
        return DetailFit(model, 0.0)
    occluded = float(q[3]) if closed is not None else model.occluded
    explained = 1.0 - float((ws * r * r).sum()) / max(float((ws * y * y).sum()), 1e-12)
    lights = DirectionalLights(
        model.ambient, (q[:3] * model.ambient).reshape(1, 3).astype(np.float32), occluded
    )
    return DetailFit(lights, explained)


def warm_up() -> None:
    """Load the compiled splat (numba's on-disk cache) ahead of the first request."""
    as_photographed(np.ones(1, np.float32), np.full((1, 2), 1.5, np.float32), (4, 4))
