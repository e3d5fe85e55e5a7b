"""The project's own demo head: a signed-distance sculpture meshed with marching cubes, UV-unwrapped.

The README demo and tests that must not depend on ``../shared`` use this head. It is built from
smoothly blended primitives (skull, face, jaw, chin, cheekbones, brow, nose, lips, eyes in their
sockets, ears, neck), so every landmark's position is known exactly and the pins come for free.

Frame: metres, Y up, the face looks towards +Z, the character's left is +X; the eyes sit at y = 0
and the head is about 0.23 tall from chin to crown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

# --- signed-distance primitives (negative inside) -------------------------------------------------


def _ellipsoid(p: np.ndarray, centre: tuple[float, ...], radii: tuple[float, ...]) -> np.ndarray:
    """Inigo Quilez's bound for an ellipsoid: exact on the surface, good enough near it."""
    q = (p - np.asarray(centre)) / np.asarray(radii)
    k0 = np.linalg.norm(q, axis=-1)
    k1 = np.linalg.norm(q / np.asarray(radii), axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def _capsule(
    p: np.ndarray, a: tuple[float, ...], b: tuple[float, ...], r0: float, r1: float | None = None
) -> np.ndarray:
    """Segment a-b thickened by a radius that goes linearly from r0 (at a) to r1 (at b)."""
    a_, b_ = np.asarray(a), np.asarray(b)
    ab = b_ - a_
    h = np.clip(((p - a_) @ ab) / float(ab @ ab), 0.0, 1.0)
    r = r0 if r1 is None else r0 + (r1 - r0) * h
    return np.linalg.norm(p - a_ - h[..., None] * ab, axis=-1) - r


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth union: blends the two surfaces over a width of about k."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth intersection; ``_smax(a, -b, k)`` carves b out of a."""
    return -_smin(-a, -b, k)


def _mirror(p: np.ndarray) -> np.ndarray:
    """Fold the left half onto the right (|x|): the head is symmetric."""
    q = p.copy()
    q[..., 0] = np.abs(q[..., 0])
    return q


UPPER_LIP = ((0.0, -0.0555, 0.1035), (0.022, -0.0595, 0.094), 0.006, 0.003)
LOWER_LIP = ((0.0, -0.0665, 0.1005), (0.02, -0.0625, 0.093), 0.0065, 0.003)
"""The lips' capsules (``_capsule``'s a, b, r0, r1) on the character's left, in the head's frame."""


def lips_distance(folded: np.ndarray) -> np.ndarray:
    """Distance (metres) of points folded onto the character's left (``_mirror``: |x|) to the two
    lips' capsules, negative inside: the lips of ``head_sdf``, and where bench/groundtruth.py's
    made-up skin paints them."""
    return np.minimum(_capsule(folded, *UPPER_LIP), _capsule(folded, *LOWER_LIP))


# Where the named landmarks are, on the sculpted surface (x < 0 is the character's right).
EYE_X, EYE_Y, EYEBALL_Z, EYEBALL_R = 0.032, 0.0, 0.073, 0.0125
FEATURES: dict[str, tuple[float, float, float]] = {
    "right_eye_outer": (-0.041, -0.003, 0.083),
    "right_eye_inner": (-0.018, -0.003, 0.087),
    "left_eye_inner": (0.018, -0.003, 0.087),
    "left_eye_outer": (0.041, -0.003, 0.083),
    "nose_tip": (0.0, -0.034, 0.127),
    "mouth_right": (-0.022, -0.061, 0.098),
    "mouth_left": (0.022, -0.061, 0.098),
    "chin": (0.0, -0.108, 0.083),
}
"""Approximate positions of the pins; each pin is the mesh vertex nearest to its point."""

NECK_CUT_Y = -0.19
BOUNDS = (np.array([-0.105, -0.2, -0.125]), np.array([0.105, 0.135, 0.145]))


@dataclass(frozen=True)
class HeadShape:
    """Proportions of the demo head, for stylized variants; the defaults are the demo head itself.

    Each factor scales one feature about its own place on the face, so a variant keeps the frame
    (eyes at y = 0, face towards +Z) and the named landmarks move with their feature.
    """

    eye_scale: float = 1.0
    """Eyeball, socket and lid size (big eyes: 1.4)."""
    nose_length: float = 1.0
    """Bridge and tip pushed down and out (long nose: 1.5)."""
    nose_width: float = 1.0
    """Tip and nostril wings (wide nose: 1.6)."""
    jaw_width: float = 1.0
    """Jaw and cheek width (wide jaw: 1.35)."""
    chin_scale: float = 1.0
    """Chin size (small chin: 0.5)."""
    forehead: float = 0.0
    """Extra forehead height and bulge in metres (big forehead: 0.02)."""


DEFAULT_SHAPE = HeadShape()

STYLIZED_SHAPES: dict[str, HeadShape] = {
    "big_eyes": HeadShape(eye_scale=1.45),
    "long_nose": HeadShape(nose_length=1.55),
    "wide_nose": HeadShape(nose_width=1.7),
    "wide_jaw": HeadShape(jaw_width=1.35),
    "small_chin": HeadShape(chin_scale=0.5),
    "big_forehead": HeadShape(forehead=0.022),
}
"""Named stylized variants of the demo head (one exaggerated feature each), for benchmarks."""


def _nose_point(point: tuple[float, float, float], shape: HeadShape) -> tuple[float, float, float]:
    """A nose point moved by the shape: length stretches it away from the bridge's root, width in x."""
    if shape.nose_width == 1.0 and shape.nose_length == 1.0:
        return point
    root = np.array([0.0, 0.004, 0.094])
    q = root + (np.asarray(point) - root) * np.array([shape.nose_width, shape.nose_length, shape.nose_length])
    return (float(q[0]), float(q[1]), float(q[2]))


def features(shape: HeadShape = DEFAULT_SHAPE) -> dict[str, tuple[float, float, float]]:
    """Where the named landmarks of :data:`FEATURES` are on a head of ``shape``."""
    out = dict(FEATURES)
    for name in ("right_eye_outer", "left_eye_outer"):
        x, y, z = out[name]
        grow = (shape.eye_scale - 1.0) * EYEBALL_R
        out[name] = (x + np.sign(x) * grow, y, z)
    out["nose_tip"] = _nose_point(out["nose_tip"], shape)
    x, y, z = out["chin"]
    out["chin"] = (x, y + 0.016 * (1.0 - shape.chin_scale), z - 0.017 * (1.0 - shape.chin_scale))
    return out


def head_sdf(p: np.ndarray, shape: HeadShape = DEFAULT_SHAPE) -> np.ndarray:
    """Signed distance (approximately, in metres) of (..., 3) points to the head's surface."""
    m = _mirror(p)
    f = shape.forehead
    skull = _ellipsoid(p, (0.0, 0.022 + 0.5 * f, -0.012), (0.077, 0.098 + 0.5 * f, 0.102))
    face = _ellipsoid(p, (0.0, -0.03, 0.03), (0.06, 0.082, 0.07))
    d = _smin(skull, face, 0.03)
    if f > 0:
        # The brow ridge stays; the forehead above it bulges forward.
        bulge = _ellipsoid(p, (0.0, 0.05 + 0.6 * f, 0.045), (0.058, 0.035 + f, 0.05 + 0.4 * f))
        d = _smin(d, bulge, 0.02)
    jw = shape.jaw_width
    jaw = _ellipsoid(m, (0.022 * jw, -0.078, 0.03), (0.04 * jw, 0.038, 0.055))
    d = _smin(d, jaw, 0.025)
    c = shape.chin_scale
    chin = _ellipsoid(
        p, (0.0, -0.103 + 0.016 * (1 - c), 0.068 - 0.012 * (1 - c)), (0.021 * c, 0.016 * c, 0.017 * c)
    )
    d = _smin(d, chin, 0.015 * min(c, 1.0))
    cheek = _ellipsoid(m, (0.041 + 0.02 * (jw - 1), -0.02, 0.064), (0.022, 0.019, 0.022))
    d = _smin(d, cheek, 0.015)
    muzzle = _ellipsoid(p, (0.0, -0.056, 0.074), (0.032, 0.028, 0.026))
    d = _smin(d, muzzle, 0.015)
    brow = _capsule(m, (0.0, 0.02, 0.088), (0.046, 0.019, 0.079), 0.009, 0.006)
    d = _smin(d, brow, 0.012)

    # Eye sockets carved under the brow, then the eyeballs set into them.
    e = shape.eye_scale
    # Bigger eyes grow about the eyeball's front, so they stay in the face rather than sink into it.
    ball_z = EYEBALL_Z + EYEBALL_R * (1 - e)
    socket = _ellipsoid(m, (EYE_X, EYE_Y, 0.093), (0.019 * e, 0.013 * e, 0.016 * min(e, 1.2)))
    d = _smax(d, -socket, 0.006)
    eyeball = np.linalg.norm(m - np.array([EYE_X, EYE_Y, ball_z]), axis=-1) - EYEBALL_R * e
    d = _smin(d, eyeball, 0.003)
    # Upper lids: a thin shelf over the top of the eyeball gives the eye its shape.
    lid = _capsule(
        m,
        (0.02 - 0.012 * (e - 1), 0.007 * e, 0.086),
        (0.044 + 0.012 * (e - 1), 0.006 * e, 0.081),
        0.0035,
    )
    d = _smin(d, lid, 0.004)

    # Nose: bridge from between the eyes down to a rounded tip, with nostril wings.
    nw = shape.nose_width
    bridge = _capsule(p, (0.0, 0.004, 0.094), _nose_point((0.0, -0.03, 0.116), shape), 0.0065, 0.0095 * nw)
    d = _smin(d, bridge, 0.008)
    tip_centre = _nose_point((0.0, -0.034, 0.115), shape)
    if nw == 1.0:
        tip = np.linalg.norm(p - np.array(tip_centre), axis=-1) - 0.0115
    else:
        tip = _ellipsoid(p, tip_centre, (0.0115 * nw, 0.0115, 0.0115))
    d = _smin(d, tip, 0.006)
    wing = _ellipsoid(
        m, _nose_point((0.0135, -0.037, 0.102), shape), (0.009 * nw, 0.0075, 0.009 * min(nw, 1.3))
    )
    d = _smin(d, wing, 0.006)

    # Lips, and the line between them.
    d = _smin(d, lips_distance(m), 0.004)
    slit = _ellipsoid(p, (0.0, -0.0605, 0.104), (0.024, 0.0012, 0.014))
    d = _smax(d, -slit, 0.002)

    # Ears: a flattened disc with a hollow, set on the sides behind the jaw.
    ear = _ellipsoid(m, (0.077, -0.008, -0.008), (0.013, 0.031, 0.019))
    concha = _ellipsoid(m, (0.088, -0.01, -0.004), (0.006, 0.017, 0.01))
    d = _smin(d, _smax(ear, -concha, 0.003), 0.008)

    # Neck, cut flat at the bottom so the surface is closed.
    neck = _capsule(p, (0.0, -0.05, -0.022), (0.0, -0.3, -0.01), 0.046)
    d = _smin(d, neck, 0.03)
    return np.maximum(d, NECK_CUT_Y - p[..., 1])


@lru_cache(maxsize=4)
def _surface(resolution: int, shape: HeadShape = DEFAULT_SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of the SDF on a grid whose longest side has ``resolution`` samples (cached:
    callers must not modify the arrays)."""
    from skimage.measure import marching_cubes

    lo, hi = BOUNDS
    step = float((hi - lo).max()) / (resolution - 1)
    axes = [np.arange(lo[i], hi[i] + step, step) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    sdf = head_sdf(grid.reshape(-1, 3), shape).reshape(grid.shape[:3])
    # Border of the grid must be outside for a closed surface.
    sdf[[0, -1]] = sdf[:, [0, -1]] = sdf[:, :, [0, -1]] = step
    verts, faces, _, _ = marching_cubes(
        sdf.astype(np.float32), 0.0, spacing=(step, step, step), allow_degenerate=False
    )
    verts = verts + lo
    # A little Taubin smoothing removes marching cubes' facets without shrinking the features.
    import trimesh

    mesh = trimesh.Trimesh(verts, faces, process=False)
    trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=-0.53, iterations=2)
    verts = np.asarray(mesh.vertices)
    # The capture format wants counter-clockwise seen from outside, i.e. a positive signed volume;
    # check rather than rely on skimage's winding convention.
    corners = verts[faces]
    if np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() < 0:
        faces = faces[:, ::-1]
    return verts.astype(np.float32), np.ascontiguousarray(faces, np.int32)


@lru_cache(maxsize=4)
def _build(
    resolution: int, shape: HeadShape = DEFAULT_SHAPE
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import xatlas

    positions, triangles = _surface(resolution, shape)
    atlas = xatlas.Atlas()
    atlas.add_mesh(positions, triangles)
    pack = xatlas.PackOptions()
    pack.resolution = 1024  # islands 2 texels apart on a 1024 texture
    pack.padding = 2
    atlas.generate(xatlas.ChartOptions(), pack)
    vmapping, indices, uv = atlas[0]
    return positions, triangles, vmapping, indices, uv


def make_demo_head(
    resolution: int = 96, shape: HeadShape | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Build the demo head.

    Args:
        resolution: marching-cubes samples along the longest side of the head's box; 96 gives
            about 38k triangles (8-15 s here, mostly xatlas; cached per process).
        shape: proportions of a stylized variant (:class:`HeadShape`, e.g. a value of
            :data:`STYLIZED_SHAPES`); None is the demo head itself.

    Returns:
        positions (V, 3) float32, triangles (T, 3) int32 (counter-clockwise from outside), per-corner
        uvs (T, 3, 2) float32 in [0, 1] ((0, 0) bottom-left), and pins: a landmark name of
        ``protocol.PIN_NAMES`` -> nearest vertex index. The same resolution always gives the same
        arrays.
    """
    shape = DEFAULT_SHAPE if shape is None else replace(shape)
    positions, triangles, vmapping, indices, uv = _build(int(resolution), shape)
    # xatlas splits vertices along seams; keep the welded positions and carry UVs per corner.
    tri = vmapping[indices].astype(np.int32)
    uvs = uv[indices].astype(np.float32)
    return positions.copy(), tri, uvs, nearest_pins(positions, shape)


def nearest_pins(positions: np.ndarray, shape: HeadShape = DEFAULT_SHAPE) -> dict[str, int]:
    """Each landmark of :data:`FEATURES` (moved by ``shape``) -> index of the nearest of ``positions``."""
    positions = np.asarray(positions, np.float64)
    return {
        name: int(np.argmin(np.linalg.norm(positions - np.asarray(point), axis=1)))
        for name, point in features(shape).items()
    }


DEMO_NAME = "DemoHead"
"""The demo head's object, mesh and material name in the files it is written as."""


def save_demo_head(
    path: str | os.PathLike, resolution: int = 96, texture: str | os.PathLike | None = None
) -> None:
    """Write the demo head as ``.glb``/``.gltf``/``.obj``/``.ply`` with its UV map (via trimesh), its
    object, mesh and material named DEMO_NAME; with ``texture`` (an image file), that image as its
    material's base colour, embedded in a .glb: imported into Blender, it shows the result (without,
    trimesh's placeholder, a dark grey 2x2 image named ``geometry_0``, was all it showed)."""
    import trimesh
    from PIL import Image

    positions, triangles, vmapping, indices, uv = _build(int(resolution))
    material = trimesh.visual.material.PBRMaterial(
        name=DEMO_NAME,
        baseColorFactor=[255, 255, 255, 255],
        baseColorTexture=None if texture is None else Image.open(os.fspath(texture)).convert("RGB"),
        metallicFactor=0.0,
        roughnessFactor=0.6,
    )
    mesh = trimesh.Trimesh(
        positions[vmapping],
        indices,
        process=False,
        visual=trimesh.visual.TextureVisuals(uv=uv, material=material),
    )
    scene = trimesh.Scene()
    scene.add_geometry(mesh, node_name=DEMO_NAME, geom_name=DEMO_NAME)
    scene.export(os.fspath(path))


def _detect_check(size: int = 512) -> None:
    """Render the untextured head from the front and run the face detector on it."""
    from types import SimpleNamespace

    from .face import default_landmarker
    from .image_io import save_png
    from .preview import render_views

    positions, triangles, uvs, pins = make_demo_head()
    print(f"{len(positions)} vertices, {len(triangles)} triangles")
    mesh = SimpleNamespace(positions=positions, triangles=triangles, uvs=uvs)
    front = render_views(mesh, None, ("front",), size)[0]
    save_png("/tmp/demo_head_front.png", front)
    faces = default_landmarker().detect(front)
    print(f"faces detected: {len(faces)}")


if __name__ == "__main__":
    _detect_check()
