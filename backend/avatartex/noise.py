"""Gradient noise of 3D points (Perlin's improved noise): skin grain that is a function of the
surface point, so the same skin continues across charts, UV islands and the atlas's edge.

The points are read in the mesh's own frame (``meshframe.MeshFrame``: its area's centroid,
principal axes and size), not in the head frame the landmarks give, and the lattice spacings are
rungs of a fixed ladder in that frame's unit (``RUNGS_PER_OCTAVE``): the same mesh turned, scaled
or moved in its file gets the same grain at the same surface point, however the landmarks scatter
between the copies (a hundredth of an eye distance moves a lattice of a few texels by a cell, and
a percent of scale moves it by many cells at the back of the head).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

RUNGS_PER_OCTAVE = 2
"""Lattice spacings the noise is drawn at: 2^(j / RUNGS_PER_OCTAVE) units of the mesh's ``MeshFrame``,
j an integer. A wanted spacing between two rungs is their blend, weighted by how close it is to
each in log scale: a wanted spacing that drifts (with the eye distance of the landmarks) changes
the noise's weights a little instead of its pattern."""


@njit(cache=True, inline="always")
def _hash(x: int, y: int, z: int, seed: int) -> int:
    h = (x * 73856093) ^ (y * 19349663) ^ (z * 83492791) ^ (seed * 2654435761)
    h &= 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x7FEB352D) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x846CA68B) & 0xFFFFFFFF
    h ^= h >> 16
    return h


_GRADIENTS = np.array(
    [
        [1, 1, 0], [-1, 1, 0], [1, -1, 0], [-1, -1, 0],
        [1, 0, 1], [-1, 0, 1], [1, 0, -1], [-1, 0, -1],
        [0, 1, 1], [0, -1, 1], [0, 1, -1], [0, -1, -1],
        [1, 1, 0], [0, -1, 1], [-1, 1, 0], [0, -1, -1],
    ],
    np.float64,
)  # fmt: skip
"""Perlin's improved-noise gradients by the low four bits of a corner's hash: the twelve cube edge
directions, four of them twice. Read from this table rather than chosen by branches on the hash's
bits (``u = x if h < 8 else y`` ...), whose outcomes a random hash makes unpredictable: the same
sums (one term is a zero), the grain of a 1024² atlas in 0.07 s instead of 0.35."""


@njit(cache=True, inline="always")
def _corner(x: int, y: int, z: int, seed: int, fx: float, fy: float, fz: float) -> float:
    """Perlin's improved-noise gradient (``_GRADIENTS``) dotted with the offset."""
    g = _GRADIENTS[_hash(x, y, z, seed) & 15]
    return g[0] * fx + g[1] * fy + g[2] * fz


@njit(cache=True, inline="always")
def _fade(t: float) -> float:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


@njit(cache=True, inline="always")
def _rung(x: float, y: float, z: float, seed: int, j: int, inverse: float) -> float:
    """The noise of rung ``j`` (lattice spacing 1 / ``inverse`` = 2^(j / RUNGS_PER_OCTAVE)) at
    noise-frame point x, y, z: its own hash seed and lattice offset, so that rungs are independent."""
    s = seed * 7919 + j * 104729
    px = x * inverse + 0.37 * j
    py = y * inverse + 0.61 * j
    pz = z * inverse + 0.13 * j
    x0 = int(np.floor(px))
    y0 = int(np.floor(py))
    z0 = int(np.floor(pz))
    fx = px - x0
    fy = py - y0
    fz = pz - z0
    u = _fade(fx)
    v = _fade(fy)
    w = _fade(fz)
    c000 = _corner(x0, y0, z0, s, fx, fy, fz)
    c100 = _corner(x0 + 1, y0, z0, s, fx - 1, fy, fz)
    c010 = _corner(x0, y0 + 1, z0, s, fx, fy - 1, fz)
    c110 = _corner(x0 + 1, y0 + 1, z0, s, fx - 1, fy - 1, fz)
    c001 = _corner(x0, y0, z0 + 1, s, fx, fy, fz - 1)
    c101 = _corner(x0 + 1, y0, z0 + 1, s, fx - 1, fy, fz - 1)
    c011 = _corner(x0, y0 + 1, z0 + 1, s, fx, fy - 1, fz - 1)
    c111 = _corner(x0 + 1, y0 + 1, z0 + 1, s, fx - 1, fy - 1, fz - 1)
    a = c000 + u * (c100 - c000)
    b = c010 + u * (c110 - c010)
    c = c001 + u * (c101 - c001)
    d = c011 + u * (c111 - c011)
    e = a + v * (b - a)
    f = c + v * (d - c)
    return e + w * (f - e)


def gradient_noise(
    points: np.ndarray, spacings: np.ndarray, seed: int, held: np.ndarray, out: np.ndarray
) -> None:
    """``out[i, k]``: 3D gradient noise of noise-frame ``points[i]`` (float32) at lattice spacing
    about ``spacings[k]`` (noise units): the blend of the two rungs around it (``RUNGS_PER_OCTAVE``),
    weighted by closeness in log scale and normalised to one rung's variance, where
    ``held[i, k] > 0`` (0 elsewhere)."""
    t = RUNGS_PER_OCTAVE * np.log2(np.asarray(spacings, np.float64))
    low = np.floor(t).astype(np.int64)
    high_weight = t - low
    norm = np.sqrt((1.0 - high_weight) ** 2 + high_weight**2)
    rungs = np.stack([low, low + 1], axis=1)
    weights = np.stack([1.0 - high_weight, high_weight], axis=1) / norm[:, None]
    inverse = 2.0 ** (-rungs / RUNGS_PER_OCTAVE)
    _ladder(points, rungs, inverse, weights, int(seed), held, out)


@njit(cache=True, parallel=True)
def _ladder(
    points: np.ndarray,
    rungs: np.ndarray,
    inverse: np.ndarray,
    weights: np.ndarray,
    seed: int,
    held: np.ndarray,
    out: np.ndarray,
) -> None:
    """``gradient_noise``'s kernel: ``out[i, k]`` the sum over the two rungs ``rungs[k]`` (lattice
    spacings 1 / ``inverse[k]``) of ``weights[k]`` times their noise, where ``held[i, k] > 0``."""
    for i in prange(points.shape[0]):
        x, y, z = points[i, 0], points[i, 1], points[i, 2]
        for k in range(rungs.shape[0]):
            if held[i, k] <= 0.0:
                out[i, k] = 0.0
                continue
            value = 0.0
            for r in range(2):
                if weights[k, r] != 0.0:
                    value += weights[k, r] * _rung(x, y, z, seed, rungs[k, r], inverse[k, r])
            out[i, k] = value
