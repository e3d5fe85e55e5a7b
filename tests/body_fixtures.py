"""A full-body test character built in code: the demo head on a simple SDF body, with a painted texture.

Two closed pieces, as many game characters are made: the demo head (its own marching cubes, fine
enough for the face detector) and a body of capsules and ellipsoids (neck, torso, shoulders, arms,
hands, pelvis, legs, feet) meshed coarsely, whose neck rises inside the head's neck. Both are unwrapped
together with xatlas into one UV map, and a body texture is painted through it: skin (a tone unlike the
astronaut's) on the neck, forearms and hands, a striped shirt, dark trousers, and an old grey-pink
head that the generator is to replace.

Frame: metres, Y up, the face looks towards +Z; the eyes at y = 0, the feet at about y = -1.63.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

BODY_SKIN = (0.55, 0.38, 0.30)
"""sRGB of the painted body skin: darker and redder than the astronaut's face."""
SHIRT = (0.18, 0.30, 0.62)
TROUSERS = (0.22, 0.20, 0.19)
OLD_HEAD = (0.70, 0.62, 0.62)
HEAD_RESOLUTION = 48
"""Marching-cubes samples along the demo head's longest side (about 9k triangles)."""
BODY_STEP = 0.02
"""Grid step of the body's marching cubes, metres."""


def _capsule(p, a, b, r0, r1=None):
    a_, b_ = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ab = b_ - a_
    h = np.clip(((p - a_) @ ab) / float(ab @ ab), 0.0, 1.0)
    r = r0 if r1 is None else r0 + (r1 - r0) * h
    return np.linalg.norm(p - a_ - h[..., None] * ab, axis=-1) - r


def _ellipsoid(p, centre, radii):
    q = (p - np.asarray(centre)) / np.asarray(radii)
    k0 = np.linalg.norm(q, axis=-1)
    k1 = np.linalg.norm(q / np.asarray(radii), axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def _smin(a, b, k):
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def body_sdf(p: np.ndarray) -> np.ndarray:
    """Signed distance (metres, negative inside) of the body below the head, A-pose."""
    m = p.copy()
    m[..., 0] = np.abs(m[..., 0])
    # The neck starts inside the demo head's (radius 0.046; thinner there so that the coarse facets
    # stay inside it) and widens into the shoulders.
    d = _capsule(p, (0.0, -0.12, -0.021), (0.0, -0.27, -0.012), 0.036, 0.05)
    d = _smin(d, _capsule(m, (0.0, -0.275, -0.015), (0.17, -0.29, -0.015), 0.06), 0.05)
    d = _smin(d, _ellipsoid(p, (0.0, -0.50, -0.015), (0.17, 0.27, 0.11)), 0.06)
    d = _smin(d, _ellipsoid(p, (0.0, -0.78, -0.01), (0.16, 0.11, 0.1)), 0.06)
    arm = _capsule(m, (0.19, -0.29, -0.015), (0.27, -0.56, -0.01), 0.048, 0.038)
    arm = _smin(arm, _capsule(m, (0.27, -0.56, -0.01), (0.31, -0.80, 0.0), 0.038, 0.03), 0.02)
    arm = _smin(arm, _ellipsoid(m, (0.325, -0.87, 0.0), (0.022, 0.055, 0.038)), 0.02)
    d = _smin(d, arm, 0.03)
    leg = _capsule(m, (0.09, -0.80, -0.01), (0.10, -1.20, 0.0), 0.075, 0.05)
    leg = _smin(leg, _capsule(m, (0.10, -1.20, 0.0), (0.10, -1.57, 0.0), 0.05, 0.038), 0.02)
    leg = _smin(leg, _ellipsoid(m, (0.10, -1.60, 0.04), (0.045, 0.035, 0.1)), 0.02)
    return _smin(d, leg, 0.03)


def _march(sdf, lo, hi, step) -> tuple[np.ndarray, np.ndarray]:
    from skimage.measure import marching_cubes

    axes = [np.arange(lo[i], hi[i] + step, step) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    values = sdf(grid.reshape(-1, 3)).reshape(grid.shape[:3])
    values[[0, -1]] = values[:, [0, -1]] = values[:, :, [0, -1]] = step
    verts, faces, _, _ = marching_cubes(
        values.astype(np.float32), 0.0, spacing=(step,) * 3, allow_degenerate=False
    )
    verts = verts + np.asarray(lo)
    corners = verts[faces]
    if np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() < 0:
        faces = faces[:, ::-1]
    return verts.astype(np.float32), np.ascontiguousarray(faces, np.int32)


@dataclass
class Character:
    """The test character: a ``Mesh`` (UVs made by xatlas) and its painted base texture."""

    mesh: object
    """avatartex.mesh.Mesh: positions in metres, Y up, face towards +Z."""
    texture: np.ndarray
    """(size, size, 3) uint8 painted base colour in the mesh's UVs, islands padded."""
    head_triangles: int
    """The first ``head_triangles`` triangles are the demo head's piece."""


def paint(positions: np.ndarray) -> np.ndarray:
    """(N, 3) float sRGB of the body texture at surface points (metres)."""
    x, y, z = positions[:, 0], positions[:, 1], positions[:, 2]
    colour = np.empty((len(positions), 3), np.float64)
    arm = np.abs(x) > 0.21
    skin = (y > -0.30) & (np.abs(x) < 0.12) | arm & (y < -0.52)
    trousers = (y < -0.76) & ~arm
    shirt = ~skin & ~trousers
    colour[:] = OLD_HEAD
    colour[y < -0.10] = SHIRT
    stripes = (np.floor((y + 2.0) / 0.04) % 2 == 0) & shirt & (y < -0.10)
    colour[stripes] = (0.85, 0.85, 0.9)
    colour[trousers & (y < -0.10)] = TROUSERS
    colour[skin & (y < -0.10)] = BODY_SKIN
    # A little low-frequency variation, as a painted texture has.
    colour *= 1.0 + 0.04 * np.sin(17.0 * x + 11.0 * y)[:, None] * np.cos(13.0 * z)[:, None]
    return np.clip(colour, 0.0, 1.0)


@lru_cache(maxsize=2)
def make_character(texture_size: int = 512) -> Character:
    """The character (cached per process; callers must not modify it)."""
    from avatartex.bake import uv_surface
    from avatartex.demo_head import make_demo_head
    from avatartex.mesh import Mesh, compute_normals, unwrap
    from avatartex.raster import padding_index

    head_positions, head_triangles, _, _ = make_demo_head(HEAD_RESOLUTION)
    body_positions, body_triangles = _march(body_sdf, (-0.4, -1.7, -0.16), (0.4, -0.1, 0.17), BODY_STEP)
    positions = np.concatenate([head_positions, body_positions]).astype(np.float32)
    triangles = np.concatenate([head_triangles, body_triangles + len(head_positions)]).astype(np.int32)
    mesh = unwrap(Mesh(positions, triangles, None, compute_normals(positions, triangles), name="character"))
    mesh.warnings.clear()
    mesh.unwrapped = False
    surface = uv_surface(positions, triangles, mesh.normals, mesh.uvs, texture_size)
    texture = np.zeros((texture_size, texture_size, 3), np.float32)
    texture[surface.mask] = paint(surface.positions)
    targets, sources, _ = padding_index(surface.mask, 4)
    flat = texture.reshape(-1, 3)
    flat[targets] = flat[sources]
    return Character(mesh, (texture * 255 + 0.5).astype(np.uint8), len(head_triangles))


if __name__ == "__main__":
    import time

    started = time.perf_counter()
    character = make_character()
    print(
        f"{len(character.mesh.triangles)} triangles ({character.head_triangles} head), "
        f"{time.perf_counter() - started:.1f} s"
    )
