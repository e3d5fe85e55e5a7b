"""Gradient noise of 3D points (Perlin's improved noise): skin grain that is a function of the
surface point, so the same skin continues across charts, UV islands and the atlas's edge."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


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


@njit(cache=True, inline="always")
def _corner(x: int, y: int, z: int, seed: int, fx: float, fy: float, fz: float) -> float:
    """Perlin's improved-noise gradient (one of the 12 cube edge directions) dotted with the offset."""
    h = _hash(x, y, z, seed) & 15
    u = fx if h < 8 else fy
    v = fy if h < 4 else (fx if h == 12 or h == 14 else fz)
    return (u if (h & 1) == 0 else -u) + (v if (h & 2) == 0 else -v)


@njit(cache=True, inline="always")
def _fade(t: float) -> float:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


@njit(cache=True, parallel=True)
def gradient_noise(
    points: np.ndarray, spacings: np.ndarray, seed: int, held: np.ndarray, out: np.ndarray
) -> None:
    """``out[i, k]``: 3D gradient noise of ``points[i]`` at lattice spacing ``spacings[k]``, where
    ``held[i, k] > 0`` (0 elsewhere)."""
    for i in prange(points.shape[0]):
        for k in range(spacings.shape[0]):
            if held[i, k] <= 0.0:
                out[i, k] = 0.0
                continue
            s = seed * 7919 + k * 104729
            px = points[i, 0] / spacings[k] + 0.37 * k
            py = points[i, 1] / spacings[k] + 0.61 * k
            pz = points[i, 2] / spacings[k] + 0.13 * k
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
            out[i, k] = e + w * (f - e)
