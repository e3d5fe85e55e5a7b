"""Synthetic ground truth for the benchmarks (DESIGN.md §5): known textures on head meshes, rendered
from known cameras and lights, and the measures that compare a produced texture with the truth.

Everything here uses the backend's stable modules only (camera, raster, mesh, metrics, image_io,
demo_head), so ``bench/accuracy.py`` and ``bench/sweep.py`` keep working while the pipeline's
insides move.

Conventions: a head is described in its *canonical* frame (the frame its file comes in: +Y up, the
face towards +Z, +X the character's left). Transformed copies of a mesh are made for the pipeline
only; the portrait is always rendered in the canonical frame, so the same render serves a mesh and
every rotated or rescaled copy of it, and the truth (camera, texture) does not change with the copy.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

if importlib.util.find_spec("avatartex") is None:  # run from a checkout without PYTHONPATH=backend
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from avatartex import raster  # noqa: E402
from avatartex.camera import Camera  # noqa: E402
from avatartex.metrics import gain_corrected, psnr, sample_uv  # noqa: E402
from avatartex.occlusion import directions  # noqa: E402

SHARED_SCAN = Path(__file__).resolve().parents[2] / "shared" / "assets" / "heads" / "lee_perry_smith.glb"

# The scan's eye centres, in its file's frame: the mean of mediapipe's eye contours on the mesh, as
# the pipeline's own mesh landmarks found them (commit dfbf45f). Used only to measure the true eye
# distance in the portrait, which is not sensitive to a millimetre here.
SCAN_EYES = np.array([[-0.64353, 1.67136, 1.89816], [0.47531, 1.66762, 1.88906]])
SCAN_MOUTH = np.array([-0.09618, 0.41707, 2.09953])


# --- heads ------------------------------------------------------------------------------------------


@dataclass
class Head:
    """A head mesh in its canonical frame, with what the truth needs to know about it."""

    name: str
    positions: np.ndarray
    """(V, 3) float64 canonical positions."""
    triangles: np.ndarray
    """(T, 3) int32."""
    uvs: np.ndarray
    """(T, 3, 2) float32 per-corner UVs."""
    normals: np.ndarray
    """(V, 3) float64 unit vertex normals."""
    eyes: np.ndarray
    """(2, 3) the character's right and left eye centres."""
    mouth: np.ndarray
    """(3,) the middle of the mouth."""
    path: Path | None = None
    """A file the pipeline can read for the untransformed head, if one exists."""
    shape: Any = None
    """The demo head's ``HeadShape`` (where its eyes, brows and lips are exactly); None for the scan."""

    @property
    def iod(self) -> float:
        """Eye distance in the mesh's units."""
        return float(np.linalg.norm(self.eyes[1] - self.eyes[0]))

    @property
    def face_centre(self) -> np.ndarray:
        """Between the eyes and the mouth: where a portrait camera aims."""
        return 0.5 * (self.eyes.mean(axis=0) + self.mouth)


def _normals(positions: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    from avatartex.mesh import compute_normals

    return compute_normals(positions.astype(np.float32), triangles).astype(np.float64)


def load_scan(path: Path = SHARED_SCAN) -> Head | None:
    """The scanned head of ``../shared/assets``, or None (with a loud message) when it is absent."""
    if not Path(path).exists():
        print(f"SKIPPED: the scanned head {path} is absent (../shared is not here)", file=sys.stderr)
        return None
    from avatartex.mesh import load_mesh

    mesh = load_mesh(path)
    positions = np.asarray(mesh.positions, np.float64)
    return Head(
        "scan",
        positions,
        np.asarray(mesh.triangles, np.int32),
        np.asarray(mesh.uvs, np.float32),
        np.asarray(mesh.normals, np.float64),
        SCAN_EYES.copy(),
        SCAN_MOUTH.copy(),
        Path(path),
    )


def demo_head(shape_name: str = "", resolution: int = 96) -> Head:
    """The project's demo head, or one of its stylized variants (``demo_head.STYLIZED_SHAPES``)."""
    from avatartex import demo_head as demo

    shape = demo.STYLIZED_SHAPES[shape_name] if shape_name else None
    positions, triangles, uvs, _ = demo.make_demo_head(resolution, shape)
    features = demo.features(shape or demo.DEFAULT_SHAPE)
    # Eye centres on the eyeballs' fronts, as a detector's eye contours average out.
    eyes = np.array([[-demo.EYE_X, -0.002, 0.083], [demo.EYE_X, -0.002, 0.083]])
    mouth = 0.5 * (np.array(features["mouth_left"]) + np.array(features["mouth_right"]))
    positions = np.asarray(positions, np.float64)
    return Head(
        f"demo-{shape_name}" if shape_name else "demo",
        positions,
        triangles,
        uvs,
        _normals(positions, triangles),
        eyes,
        mouth,
        shape=shape or demo.DEFAULT_SHAPE,
    )


HEAD_UV_SHARE = 0.9
"""``with_eyeballs`` shrinks the head's own UV map to this share of the square (towards (0, 0))..."""
EYEBALL_UV = ((0.91, 0.02, 0.08, 0.44), (0.91, 0.52, 0.08, 0.44))
"""...and puts the right and left eyeballs' UV islands, (u, v, width, height), in the strip freed."""


def with_eyeballs(head: Head, rings: int = 12, segments: int = 24) -> Head:
    """``head`` (a demo-family head) with its eyeballs also as two separate spheres, a little proud of
    the sculpted ones (as character meshes model eyes: parts of their own, seen through the lids), each
    with a UV island of its own (EYEBALL_UV, beside the head's map shrunk to HEAD_UV_SHARE)."""
    from avatartex import demo_head as demo

    e = head.shape.eye_scale
    radius = demo.EYEBALL_R * e * 1.04
    theta = np.linspace(0.0, np.pi, rings + 1)  # from the front pole
    phi = np.linspace(0.0, 2 * np.pi, segments + 1)
    t, f = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(t) * np.cos(f), np.sin(t) * np.sin(f), np.cos(t)], axis=-1).reshape(-1, 3)
    grid = np.arange((rings + 1) * (segments + 1)).reshape(rings + 1, segments + 1)
    quads = np.stack([grid[:-1, :-1], grid[1:, :-1], grid[1:, 1:], grid[:-1, 1:]], axis=-1).reshape(-1, 4)
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    positions, triangles, uvs = [head.positions], [head.triangles], [head.uvs * np.float32(HEAD_UV_SHARE)]
    offset = len(head.positions)
    for side, (u0, v0, du, dv) in zip((-1.0, 1.0), EYEBALL_UV, strict=True):
        centre = np.array([side * demo.EYE_X, demo.EYE_Y, demo.EYEBALL_Z + demo.EYEBALL_R * (1 - e)])
        positions.append(centre + radius * unit)
        triangles.append(faces + offset)
        corner_uv = np.stack([u0 + du * f.ravel() / (2 * np.pi), v0 + dv * (1 - t.ravel() / np.pi)], axis=1)
        uvs.append(corner_uv[faces].astype(np.float32))
        offset += len(unit)
    positions = np.concatenate(positions)
    triangles = np.concatenate(triangles).astype(np.int32)
    return replace(
        head,
        name=head.name + "+eyeballs",
        positions=positions,
        triangles=triangles,
        uvs=np.concatenate(uvs),
        normals=_normals(positions, triangles),
    )


def _barycentric(corners: np.ndarray, points: np.ndarray) -> np.ndarray:
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    den = d00 * d11 - d01 * d01
    v, w = (d11 * d20 - d01 * d21) / den, (d00 * d21 - d01 * d20) / den
    return np.stack([1 - v - w, v, w], axis=-1)


def mirrored_uvs(positions: np.ndarray, triangles: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """A symmetric head's UVs with its right half (x < 0) laid onto its left half's islands, as game
    heads mirror their UVs: each right corner takes the UV of its mirror image on the left surface.
    Triangles whose corners land on two islands get a point (no texel) instead of a sheet across."""
    from scipy.spatial import cKDTree

    p, t, u = np.asarray(positions, np.float64), triangles, np.asarray(uvs)
    centroids = p[t].mean(axis=1)
    left = np.flatnonzero(centroids[:, 0] >= 0)
    right = centroids[:, 0] < 0
    corners = p[t[right]].reshape(-1, 3) * [-1.0, 1.0, 1.0]
    _, candidates = cKDTree(centroids[left]).query(corners, k=8)
    best, score = np.zeros((len(corners), 2)), np.full(len(corners), -np.inf)
    for j in range(candidates.shape[1]):
        tri = left[candidates[:, j]]
        bary = _barycentric(p[t[tri]], corners)
        better = bary.min(axis=1) > score
        score[better] = bary.min(axis=1)[better]
        weights = np.clip(bary, 0, None) / np.clip(bary, 0, None).sum(axis=1, keepdims=True)
        best[better] = (weights[better][:, :, None] * u[tri[better]]).sum(axis=1)
    out = u.copy()
    out[right] = best.reshape(-1, 3, 2)
    out[np.ptp(out, axis=1).max(axis=1) > 0.05] = 0.9995
    return out.astype(np.float32)


# --- mesh transforms (the pipeline gets a moved copy; the truth stays canonical) -------------------


def rotation(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """(3, 3) rotation by ``degrees`` about ``axis`` (Rodrigues)."""
    k = np.asarray(axis, np.float64)
    k /= np.linalg.norm(k)
    a = np.radians(degrees)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


TRANSFORMS: dict[str, tuple[np.ndarray, float]] = {
    "none": (np.eye(3), 1.0),
    "yaw45": (rotation((0, 1, 0), 45), 1.0),
    "tilted70": (rotation((0.3, 0.8, 0.5), 70), 1.0),
    "z_up": (rotation((1, 0, 0), 90), 1.0),  # Blender's frame: up +Z, the face towards -Y
    "upside_down": (rotation((0, 0, 1), 180), 1.0),
    "scale0.01": (np.eye(3), 0.01),
    "scale100": (np.eye(3), 100.0),
}
"""Name -> (rotation, scale) of a copy of a mesh: ``x' = scale * R x + offset``."""


@dataclass
class Placement:
    """Where a transformed copy puts the canonical mesh: ``x' = scale * R x + offset``."""

    name: str
    R: np.ndarray
    scale: float
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Canonical points -> the copy's frame."""
        return self.scale * (np.asarray(points, np.float64) @ self.R.T) + self.offset


def placement(name: str, head: Head) -> Placement:
    """The named transform of :data:`TRANSFORMS`, with an offset of a few head sizes (importers
    rarely put a head at the origin)."""
    R, scale = TRANSFORMS[name]
    offset = np.zeros(3) if name == "none" else scale * head.iod * np.array([3.0, -7.0, 2.0])
    return Placement(name, R, scale, offset)


def write_capture(head: Head, where: Placement, path: Path) -> Path:
    """Write the copy of ``head`` moved by ``where`` as a capture ``.npz`` (no up/forward hints)."""
    from avatartex.mesh import Mesh, save_capture

    save_capture(
        Mesh(where.apply(head.positions).astype(np.float32), head.triangles, head.uvs, name=head.name),
        path,
    )
    return path


# --- the texture ------------------------------------------------------------------------------------


@dataclass
class TexelSurface:
    """The surface point behind every covered texel of a mesh's UV map."""

    mask: np.ndarray
    """(S, S) bool, texels some triangle covers."""
    positions: np.ndarray
    """(N, 3) canonical surface points of the covered texels (row-major order of ``mask``)."""
    normals: np.ndarray
    """(N, 3) unit normals there."""


def texel_surface(head: Head, size: int) -> TexelSurface:
    """Rasterise the head's UV map at ``size`` and interpolate positions and normals."""
    tri_id, bary = raster.rasterize_uv(head.uvs, size)
    mask = tri_id >= 0
    positions = raster.interpolate(head.positions, head.triangles, tri_id, bary)[mask].astype(np.float64)
    normals = raster.interpolate(head.normals, head.triangles, tri_id, bary)[mask].astype(np.float64)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return TexelSurface(mask, positions, normals)


def _waves(p: np.ndarray, rng: np.random.Generator, bands) -> np.ndarray:
    value = np.zeros(len(p))
    for wavelength, amplitude, count in bands:
        for _ in range(count):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            phase = rng.uniform(0, 2 * np.pi)
            value += amplitude / np.sqrt(count) * np.sin(2 * np.pi * (p @ direction) / wavelength + phase)
    return value


SKIN_BASE = np.array([0.80, 0.60, 0.50])


def skin_texture(points: np.ndarray, scale: float, seed: int = 1) -> np.ndarray:
    """A skin-like albedo as a function of the surface point: seam-free by construction.

    A warm base tone with blotches and freckle-scale detail: sums of random plane waves from the
    size of the face down to a few millimetres.
    """
    rng = np.random.default_rng(seed)
    p = np.asarray(points, np.float64) / scale
    value = _waves(p, rng, ((1.5, 0.10, 6), (0.5, 0.06, 10), (0.15, 0.04, 16), (0.06, 0.03, 24)))
    tint = np.stack([value, value * 1.2, value * 1.3], 1)
    return np.clip(SKIN_BASE * (1 + tint), 0, 1).astype(np.float32)


def stripe_texture(points: np.ndarray, scale: float, seed: int = 1) -> np.ndarray:
    """Skin with bold painted stripes (face paint, a tiger make-up): high contrast at one direction."""
    rng = np.random.default_rng(seed)
    p = np.asarray(points, np.float64) / scale
    direction = np.array([rng.uniform(-1, 1), rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3)])
    direction /= np.linalg.norm(direction)
    period = rng.uniform(0.08, 0.14)
    wobble = 0.02 * np.sin(2 * np.pi * p[:, 1] / 0.3 + rng.uniform(0, 6))
    s = np.sin(2 * np.pi * (p @ direction + wobble) / period)
    stripe = 1 / (1 + np.exp(-s * 6))  # soft-edged square wave
    paint = np.array(rng.choice([[0.25, 0.18, 0.15], [0.85, 0.45, 0.2], [0.2, 0.3, 0.6]]))
    base = skin_texture(points, scale, seed + 100)
    return np.clip(base * (1 - 0.55 * stripe[:, None]) + 0.55 * stripe[:, None] * paint, 0, 1).astype(
        np.float32
    )


def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3].astype(np.float32) / 255.0


def photo_texture(points: np.ndarray, scale: float, seed: int = 1) -> np.ndarray:
    """Skin modulated by a photograph (``skimage.data.coffee``) projected from the front: detail at
    every scale and of every orientation, like a real face's pores, stubble and make-up."""
    rng = np.random.default_rng(seed)
    photo = _photo("coffee")
    h, w = photo.shape[:2]
    p = np.asarray(points, np.float64) / scale
    zoom = rng.uniform(0.8, 1.4)
    u = np.clip(0.5 + p[:, 0] * zoom * 0.9, 0, 1)
    v = np.clip(0.5 + p[:, 1] * zoom * 0.9, 0, 1)
    colour = sample_uv(photo, np.stack([u, v], 1))
    lum = colour @ np.array([0.3, 0.59, 0.11])
    lum = (lum - lum.mean()) / max(lum.std(), 1e-6)
    albedo = SKIN_BASE * (1 + 0.22 * lum[:, None]) * 0.75 + 0.25 * colour
    del h, w
    return np.clip(albedo, 0, 1).astype(np.float32)


TEXTURES = {"blotches": skin_texture, "stripes": stripe_texture, "photo": photo_texture}

IRIS_COLOURS = ((0.35, 0.22, 0.12), (0.25, 0.4, 0.55), (0.3, 0.35, 0.2))
BROW_COLOURS = ((0.22, 0.15, 0.1), (0.08, 0.06, 0.05), (0.45, 0.33, 0.22))
LIP_COLOURS = ((0.72, 0.38, 0.36), (0.62, 0.28, 0.28), (0.65, 0.12, 0.18))


def paint_eyes(points: np.ndarray, shape, colours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``colours`` (N, 3) with the demo head's eyeballs painted at ``points`` (N, 3, its own frame):
    sclera on the front 75° of each ball, an iris (size and colour drawn from ``rng``) and a pupil."""
    from avatartex import demo_head as demo

    m = np.asarray(points, np.float64).copy()
    m[:, 0] = np.abs(m[:, 0])  # both eyes from the character's left one
    e = shape.eye_scale
    centre = np.array([demo.EYE_X, demo.EYE_Y, demo.EYEBALL_Z + demo.EYEBALL_R * (1 - e)])
    r = np.linalg.norm(m - centre, axis=1)
    on_ball = np.abs(r - demo.EYEBALL_R * e) < 0.0025 * e
    angle = np.degrees(np.arccos(np.clip((m[:, 2] - centre[2]) / np.maximum(r, 1e-9), -1, 1)))
    out = np.array(colours, copy=True)
    out[on_ball & (angle < 75)] = (0.88, 0.86, 0.82)
    out[on_ball & (angle < rng.uniform(24, 32))] = IRIS_COLOURS[int(rng.integers(len(IRIS_COLOURS)))]
    out[on_ball & (angle < rng.uniform(9, 13))] = (0.04, 0.03, 0.03)
    return out


def made_up_texture(points: np.ndarray, shape, seed: int = 1) -> np.ndarray:
    """The blotched skin with a face painted where the demo head's sculpture has one: sclera, an
    iris and a pupil on each eyeball, brows over the sockets, tinted lips on the lip shapes; the
    iris's size and colour, the brows' height, thickness, arch and colour and the lips' colour drawn
    from ``seed``.

    Every real face carries these in its colours, and a face detector reads them there first; the
    other skins carry none, so the photo's face is read from the mesh's shading alone, as the mesh's
    own render is, and the detector's readings of the two agree more than a real photo's would.
    ``points`` are in the demo head's own frame (metres, eyes at y = 0, face towards +z), ``shape``
    its ``HeadShape``."""
    from avatartex import demo_head as demo

    p = np.asarray(points, np.float64)
    out = skin_texture(p - np.array([0.0, -0.03, 0.05]), 3.2 * 0.064, seed).copy()  # the face's middle
    rng = np.random.default_rng(seed + 500)
    out = paint_eyes(p, shape, out, rng)
    m = p.copy()
    m[:, 0] = np.abs(m[:, 0])  # both sides from the character's left one
    e = shape.eye_scale
    # The brows: an arch over each socket, thinning outwards; height, thickness, arch and colour
    # drawn per seed (faces differ most there).
    lo, hi = 0.013, 0.050 + 0.012 * (e - 1)
    t = np.clip((m[:, 0] - lo) / (hi - lo), 0, 1)
    arch = rng.uniform(0.002, 0.006) * np.sin(np.pi * (0.35 + 0.65 * t))
    middle = 0.0185 + rng.uniform(-0.003, 0.003) + 0.007 * (e - 1) + arch
    half = rng.uniform(0.0025, 0.0045) * (1 - 0.5 * t)
    brow = (m[:, 0] > lo) & (m[:, 0] < hi) & (np.abs(m[:, 1] - middle) < half) & (m[:, 2] > 0.06)
    cover = rng.uniform(0.6, 0.9)
    out[brow] = cover * np.array(BROW_COLOURS[int(rng.integers(len(BROW_COLOURS)))]) + (1 - cover) * out[brow]
    # The lips: the surface on the sculpture's two lip capsules (demo_head.lips_distance), from a
    # natural tint to lipstick.
    lips = (demo.lips_distance(m) < 0.0012) & (m[:, 2] > 0.088) & (np.abs(m[:, 1] + 0.061) < 0.011)
    cover = rng.uniform(0.5, 0.8)
    out[lips] = cover * np.array(LIP_COLOURS[int(rng.integers(len(LIP_COLOURS)))]) + (1 - cover) * out[lips]
    return np.clip(out, 0, 1).astype(np.float32)


def truth_texture(head: Head, surface: TexelSurface, kind: str, seed: int) -> np.ndarray:
    """The known texture in the head's UV map, padded 8 texels around its islands. ``made_up``
    (``made_up_texture``) needs a demo head, whose features are known."""
    size = surface.mask.shape[0]
    texture = np.full((size, size, 3), 0.5, np.float32)
    if kind == "made_up":
        if head.shape is None:
            raise ValueError(f"the made-up skin paints the demo head's features; {head.name} has none known")
        texture[surface.mask] = made_up_texture(surface.positions, head.shape, seed)
    else:
        texture[surface.mask] = TEXTURES[kind](surface.positions - head.face_centre, 3.2 * head.iod, seed)
    texture, _ = raster.dilate(texture, surface.mask, 8)
    return texture


# --- cameras, lights, rendering ---------------------------------------------------------------------


def portrait_camera(
    head: Head,
    yaw: float,
    pitch: float,
    roll: float,
    fov: float,
    width: int,
    height: int,
    fill: float = 0.55,
    shift: tuple[float, float] = (0.0, 0.0),
) -> Camera:
    """A camera looking at the face from ``yaw`` (towards the character's left), ``pitch`` (from
    above) in degrees, rolled by ``roll``, with vertical field of view ``fov``; the distance makes
    the head about ``fill`` of the image height; ``shift`` moves the aim by that many eye distances
    (x, y) so the face is not always centred."""
    y, p = np.radians(yaw), np.radians(pitch)
    direction = np.array([np.sin(y) * np.cos(p), np.sin(p), np.cos(y) * np.cos(p)])
    head_size = 3.4 * head.iod
    distance = head_size / (fill * 2 * np.tan(np.radians(fov) / 2))
    target = head.face_centre + head.iod * np.array([shift[0], shift[1], 0.0])
    eye = target + direction * distance
    forward = -direction
    up = np.array([0.0, 1.0, 0.0])
    up = up - forward * (up @ forward)
    up /= np.linalg.norm(up)
    up = rotation(forward, roll) @ up
    return Camera.look_at(eye, target, up, fov, width, height)


@dataclass
class Light:
    """A directional light in the head's canonical frame."""

    direction: np.ndarray
    intensity: float
    shadows: bool = False


LIGHTS = ("front", "side", "top", "grazing", "below", "two")


@dataclass(frozen=True)
class Sky:
    """An ambient light the head occludes, as a room's or an overcast sky's light is: each point
    receives ``intensity`` times the share of the sky it sees past the head (``sky_visibility``)."""

    intensity: float


SOFT_AMBIENT = 0.6
"""A soft light's ambient (``lights_for(..., soft=True)``): a sky the head occludes, its key lights
at half their strength: a portrait in a softbox's or an overcast day's light, where the creases'
own darkness is most of the shading."""


def lights_for(kind: str, yaw: float, shadows: bool, soft: bool = False) -> tuple[list[Light], float | Sky]:
    """The lights of a named set-up, and the ambient term (a ``Sky`` the head occludes where
    ``soft``). ``grazing`` comes from the side the camera does not see (the far cheek is lit at a
    grazing angle, the near one is dark)."""
    far = -1.0 if yaw >= 0 else 1.0
    sets = {
        "front": ([((0.15, 0.2, 1.0), 0.75)], 0.35),
        "side": ([((-far * 1.0, 0.25, 0.45), 0.85)], 0.25),
        "top": ([((0.0, 1.0, 0.3), 0.9)], 0.25),
        "grazing": ([((far * 1.0, 0.1, -0.12), 1.1)], 0.15),
        "below": ([((0.1, -0.85, 0.55), 0.9)], 0.2),
        "two": ([((0.7, 0.35, 0.65), 0.6), ((-0.8, 0.1, 0.5), 0.35)], 0.2),
    }
    lights, ambient = sets[kind]
    out = []
    for direction, intensity in lights:
        d = np.asarray(direction, np.float64)
        out.append(Light(d / np.linalg.norm(d), intensity * (0.5 if soft else 1.0), shadows))
    return out, (Sky(SOFT_AMBIENT) if soft else ambient)


SKY_VIEWS = 200
"""Directions ``sky_visibility`` samples (its own measure, finer than the pipeline's
``occlusion.vertex_occlusion``: per point, not per vertex, 200 directions at 512 pixels)."""


def sky_visibility(head: Head, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(N,) the cosine-weighted share of the sky each surface point (``points``, unit ``normals``
    (N, 3), canonical frame) sees past the head: depth maps from SKY_VIEWS directions over the
    sphere, read as shadow maps (kept with the head: each render and truth reads the same)."""
    maps = head.__dict__.setdefault("_sky_maps", [])
    centre = 0.5 * (head.positions.min(axis=0) + head.positions.max(axis=0))
    radius = float(np.linalg.norm(head.positions - centre, axis=1).max())
    size = 512
    pixel = 2.04 * radius / size
    if not maps:
        distance = 40 * radius
        fov = np.degrees(2 * np.arctan(1.02 * radius / distance))
        for d in directions(SKY_VIEWS):
            up = np.array([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else np.array([0.0, 0.0, 1.0])
            cam = Camera.look_at(centre + d * distance, centre, up, fov, size, size)
            maps.append((d, cam, raster.rasterize_camera(head.positions, head.triangles, cam)[2]))
    points = np.asarray(points, np.float64)
    normals = np.asarray(normals, np.float64)
    lifted = points + normals * 0.5 * pixel
    seen, total = np.zeros(len(points)), np.zeros(len(points))
    for d, cam, depth in maps:
        weight = np.clip(normals @ d, 0.0, None)
        facing = np.flatnonzero(weight > 0)
        xy, z = cam.project(lifted[facing])
        px = np.clip(xy[:, 0].astype(int), 0, size - 1)
        py = np.clip(xy[:, 1].astype(int), 0, size - 1)
        seen[facing] += weight[facing] * (z <= depth[py, px] + 2.0 * pixel)
        total[facing] += weight[facing]
    return np.where(total > 0, seen / np.maximum(total, 1e-12), 1.0)


def shadow_factor(head: Head, light: Light, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """1 where ``points`` see the light, 0 where the head is in the way (a shadow map from afar)."""
    centre = head.positions.mean(axis=0)
    radius = float(np.linalg.norm(head.positions - centre, axis=1).max())
    distance = 40 * radius
    up = np.array([0.0, 1.0, 0.0]) if abs(light.direction[1]) < 0.9 else np.array([0.0, 0.0, 1.0])
    fov = np.degrees(2 * np.arctan(1.05 * radius / distance))
    cam = Camera.look_at(centre + light.direction * distance, centre, up, fov, 1024, 1024)
    _, _, depth = raster.rasterize_camera(head.positions, head.triangles, cam)
    lifted = points + normals * 0.01 * head.iod
    xy, z = cam.project(lifted)
    px = np.clip(xy[:, 0].astype(int), 0, 1023)
    py = np.clip(xy[:, 1].astype(int), 0, 1023)
    return (z <= depth[py, px] + 0.03 * head.iod).astype(np.float64)


def background_image(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A flat colour, a vertical gradient or a photograph (``skimage.data``) behind the head."""
    if kind == "flat":
        return np.broadcast_to(rng.uniform(0.15, 0.8, 3).astype(np.float32), (height, width, 3)).copy()
    if kind == "gradient":
        a, b = rng.uniform(0.05, 0.9, 3), rng.uniform(0.05, 0.9, 3)
        t = np.linspace(0, 1, height)[:, None, None]
        return np.broadcast_to(a * (1 - t) + b * t, (height, width, 3)).astype(np.float32).copy()
    import cv2

    photo = _photo(str(rng.choice(["rocket", "coffee", "chelsea"])))
    return cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)


@dataclass
class Render:
    """A portrait rendered with known truth."""

    image: np.ndarray
    """(H, W, 3) float32 sRGB 0..1."""
    camera: Camera
    depth: np.ndarray
    """(H, W) camera-space depth of the head, +inf on the background."""


def lambert_shading(
    head: Head, lights: list[Light], ambient: float | Sky, normals: np.ndarray, points: np.ndarray | None
) -> np.ndarray:
    """(N,) ambient + Σ intensity · max(n·l, 0) · shadow at unit ``normals`` (N, 3); ``points``
    (N, 3), the surface points in the head's coordinates, are needed only for lights that cast
    shadows and for a ``Sky`` ambient (occluded by the head). The one light model of the renders,
    the texel truth and the oracle's de-lighting."""
    normals = np.asarray(normals, np.float64)
    if isinstance(ambient, Sky):
        shade = ambient.intensity * sky_visibility(head, points, normals)
    else:
        shade = np.full(len(normals), float(ambient))
    for light in lights:
        lit = np.clip(normals @ light.direction, 0, None) * light.intensity
        if light.shadows:
            lit = lit * shadow_factor(head, light, points, normals)
        shade += lit
    return shade


SHINE_EXPONENT = 20.0
"""Blinn exponent of the skin's shine in the shiny renders (``render_portrait``'s ``shine``)."""


def shine_term(
    head: Head, lights: list[Light], camera: Camera, normals: np.ndarray, points: np.ndarray
) -> np.ndarray:
    """(N,) Σ intensity · max(n·h, 0)^SHINE_EXPONENT over the key lights (h halfway between the
    light and the camera, only where the light reaches): the shine a render adds, white, on top of
    the albedo's colour."""
    view = np.asarray(camera.center, np.float64) - points
    view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-12)
    out = np.zeros(len(normals))
    for light in lights:
        half = view + light.direction
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12)
        lit = (normals @ light.direction > 0).astype(np.float64)
        if light.shadows:
            lit = lit * shadow_factor(head, light, points, normals)
        out += light.intensity * np.clip(np.einsum("ij,ij->i", normals, half), 0, 1) ** SHINE_EXPONENT * lit
    return out


FILMIC = (0.15, 0.50, 0.10, 0.20, 0.02, 0.30)
"""The shoulder and toe of John Hable's filmic curve (A..F: a camera or a game engine's tone curve)."""
FILMIC_WHITE = 11.2
"""The linear level the filmic curve maps to white."""
FILMIC_EXPOSURE = 2.9275
"""Linear light is scaled by this before the filmic curve: mid-grey (0.18) stays 0.18, linear 0.5 gives
0.40, 1.0 gives 0.61 (the lit skin's channels compressed, the strongest most: whiter)."""


def _filmic(x: np.ndarray) -> np.ndarray:
    a, b, c, d, e, f = FILMIC
    return (x * (a * x + c * b) + d * e) / (x * (a * x + b) + d * f) - e / f


def camera_response(linear: np.ndarray, tone: str = "") -> np.ndarray:
    """sRGB-like pixel values of ``linear`` light: a plain 1/2.2 power (``tone`` empty, a render), or
    with ``tone="filmic"`` through a camera's tone curve first (``FILMIC``), per channel, as a phone's
    or a camera's JPEG engine does: its shoulder compresses the lit skin's strongest channel most, so
    lit skin comes out paler, towards white (what the de-lighting's ``whitened_skin`` reads)."""
    light = np.clip(np.asarray(linear, np.float64), 0, None)
    if tone == "filmic":
        light = _filmic(FILMIC_EXPOSURE * light) / _filmic(FILMIC_WHITE)
    elif tone:
        raise ValueError(f"unknown tone curve {tone!r}")
    return np.power(np.clip(light, 0, 1), 1 / 2.2)


def render_portrait(
    head: Head,
    texture: np.ndarray,
    camera: Camera,
    lights: list[Light],
    ambient: float | Sky,
    background: np.ndarray,
    shine: float = 0.0,
    tone: str = "",
) -> Render:
    """Albedo × (ambient + Σ key · max(n·l, 0) · shadow) in linear light, over ``background``; with
    ``shine`` > 0, that much of the key lights' white shine on top (``shine_term``): oily skin, a
    highlight the albedo must not keep; through the camera's ``tone`` curve (``camera_response``)."""
    tri_id, bary, depth = raster.rasterize_camera(head.positions, head.triangles, camera)
    hit = tri_id >= 0
    uv = raster.interpolate(head.uvs, None, tri_id, bary)[hit]
    normal = raster.interpolate(head.normals, head.triangles, tri_id, bary)[hit].astype(np.float64)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    albedo = sample_uv(texture, uv)
    points = None
    if shine > 0 or isinstance(ambient, Sky) or any(light.shadows for light in lights):  # where needed
        points = raster.interpolate(head.positions, head.triangles, tri_id, bary)[hit].astype(np.float64)
    shade = lambert_shading(head, lights, ambient, normal, points)
    linear = np.power(albedo, 2.2) * shade[:, None]
    if shine > 0:
        linear = linear + shine * shine_term(head, lights, camera, normal, points)[:, None]
    image = np.asarray(background, np.float32).copy()
    image[hit] = camera_response(linear, tone)
    return Render(image, camera, depth)


# --- the pipeline's registration ---------------------------------------------------------------------


class RegistrationTap:
    """Keeps the registration of the last request, to measure the true misplacement; optionally
    replaces it (``oracle``: a function of the tapped call's arguments returning a registration, to
    separate registration error from the rest); with ``stop_after`` the request ends there
    (``Registered`` is raised), for benchmarks of the registration alone.

    The registration is an internal object of the pipeline: the tap wraps whichever function makes
    it (``Generator._register`` before the structure issue, ``pipeline.steps.register_portrait``
    after) and only uses its ``project(points) -> (pixels, depth)``. Where neither exists, ``where``
    is "none" and the benchmarks report the misplacement as n/a.
    """

    class Registered(Exception):
        """Raised right after the registration when only it is measured (``stop_after``)."""

    def __init__(self, generator) -> None:
        self.last = None
        self.head = None
        self.face = None  # the portrait's face of the last request (its quarter turns)
        self.oracle = None
        self.stop_after = False
        self.where = "none"
        owner, name = None, ""
        if hasattr(generator, "_register"):
            owner, name, self.where = generator, "_register", "Generator._register"
        else:
            try:
                from avatartex.pipeline import steps
            except ImportError:
                steps = None
            if steps is not None and hasattr(steps, "register_portrait"):
                owner, name, self.where = steps, "register_portrait", "pipeline.steps.register_portrait"
        if owner is None:
            return
        original = getattr(owner, name)

        def tapped(*args, **kwargs):
            self.head = args[0] if args else kwargs.get("head")
            self.face = args[1] if len(args) > 1 else kwargs.get("face")
            self.last = self.oracle(*args, **kwargs) if self.oracle else original(*args, **kwargs)
            if self.stop_after:
                raise RegistrationTap.Registered
            return self.last

        setattr(owner, name, tapped)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Portrait pixels of points in the mesh file's coordinates through the last registration
        (the pipeline works on a centred, unit-size copy of the mesh: ``HeadModel.from_file``)."""
        to_head = getattr(self.head, "from_file", None)
        return self.last.project(to_head(points) if to_head else points)[0]


def camera_in_head(camera: Camera, head) -> Camera:
    """A camera of the mesh file's coordinates as the same camera of the pipeline's unit-size copy."""
    if not hasattr(head, "file_scale"):
        return camera
    t = (camera.R @ np.asarray(head.file_centre, np.float64) + camera.t) / head.file_scale
    return Camera(camera.fx, camera.fy, camera.cx, camera.cy, camera.R, t, camera.width, camera.height)


def true_registration(camera: Camera, head, face):
    """The registration of a known camera (``RegistrationTap.oracle``): ``camera`` in the pipeline's
    copy of the mesh (``camera_in_head``), no warp, no residual."""
    from avatartex.registration import Registration, ThinPlateWarp

    return Registration(
        camera=camera_in_head(camera, head),
        warp=ThinPlateWarp(None, np.zeros(2), 1.0),
        residual_camera=0.0,
        residual_warped=0.0,
        error_iod=0.0,
        error_iod_camera=0.0,
        error_iod_holdout=0.0,
        interocular=float(face.interocular),
        indices=np.arange(0),
        residuals=np.zeros(0),
    )


# --- measures ---------------------------------------------------------------------------------------


def seen_texels(head: Head, surface: TexelSurface, render: Render, min_cos: float = 0.3) -> np.ndarray:
    """(S, S) bool: texels the true camera saw (in frame, not occluded, facing it by more than
    ``min_cos``), as bench/accuracy.py has always counted them."""
    camera = render.camera
    xy, z = camera.project(surface.positions)
    in_frame = (xy[:, 0] >= 0) & (xy[:, 0] < camera.width) & (xy[:, 1] >= 0) & (xy[:, 1] < camera.height)
    px = np.clip(xy[:, 0].astype(int), 0, camera.width - 1)
    py = np.clip(xy[:, 1].astype(int), 0, camera.height - 1)
    to_cam = camera.center - surface.positions
    to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
    facing = (surface.normals * to_cam).sum(1) > min_cos
    seen = in_frame & (z <= render.depth[py, px] + 0.03 * head.iod) & facing
    visible = np.zeros(surface.mask.shape, bool)
    visible[surface.mask] = seen
    return visible


def eyeball_texels(size: int) -> np.ndarray:
    """(size, size) bool: the texels of ``with_eyeballs``' eyeball UV islands (EYEBALL_UV, image rows
    from the top: v = 1 at row 0)."""
    centres = (np.arange(size) + 0.5) / size
    u, v = centres[None, :], 1.0 - centres[:, None]
    out = np.zeros((size, size), bool)
    for u0, v0, du, dv in EYEBALL_UV:
        out |= (u >= u0) & (u < u0 + du) & (v >= v0) & (v < v0 + dv)
    return out


def psnr_visible(produced: np.ndarray, truth: np.ndarray, visible: np.ndarray) -> float:
    """PSNR (dB) on the seen texels after the global colour gain the pipeline cannot know."""
    return psnr(gain_corrected(produced, truth, visible), truth, visible)


FINE_SIGMA = 2.0
"""The fine band is the texture minus its Gaussian blur of this sigma (texels): what remains has
wavelengths shorter than about 12 texels (the blur passes half the power at 2π·2·1.0 ≈ 12.6)."""


def fine_band(image: np.ndarray, mask: np.ndarray, sigma: float = FINE_SIGMA) -> np.ndarray:
    """Luminance minus its blur inside ``mask`` (normalised convolution: no bleed from outside)."""
    import cv2

    lum = image[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    m = mask.astype(np.float32)
    blur = cv2.GaussianBlur(lum * m, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(m, (0, 0), sigma), 1e-6)
    return lum - blur


def fine_correlation(
    produced: np.ndarray, truth: np.ndarray, uv_mask: np.ndarray, visible: np.ndarray
) -> float:
    """Pearson correlation of the fine bands of ``produced`` and ``truth`` on the seen texels (away
    from island borders by 3 texels)."""
    from scipy.ndimage import binary_erosion

    inner = visible & binary_erosion(uv_mask, iterations=3)
    if inner.sum() < 100:
        return float("nan")
    a = fine_band(produced, uv_mask)[inner]
    b = fine_band(truth, uv_mask)[inner]
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-12))


def texel_shading(head: Head, surface: TexelSurface, lights: list[Light], ambient: float | Sky) -> np.ndarray:
    """(S, S) the true shading of every covered texel (``render_portrait``'s light: ambient plus
    each key light's clamped cosine, cast shadows included), 0 elsewhere."""
    shade = lambert_shading(head, lights, ambient, surface.normals, surface.positions.astype(np.float64))
    out = np.zeros(surface.mask.shape, np.float32)
    out[surface.mask] = shade
    return out


def shading_correlations(
    produced: np.ndarray, truth: np.ndarray, shading: np.ndarray, uv_mask: np.ndarray, visible: np.ndarray
) -> tuple[float, float]:
    """How much of the true shading is left in (or put into) the albedo, on the seen texels:

    * ``crease``: Pearson correlation of the magnitudes of the fine bands (``fine_band``) of the
      log-luminance error and of the true shading: where the mesh has fine shading structure
      (eyelids, nostrils, lips), does the error have fine structure too?
    * ``large``: Pearson correlation of the error's and the shading's large scale (Gaussian sigma
      8 texels): is the photo's light still in the texture?

    The error is log(produced / truth) luminance after the global gain (``gain_corrected``).
    """
    import cv2
    from scipy.ndimage import binary_erosion

    inner = visible & binary_erosion(uv_mask, iterations=3)
    if inner.sum() < 100:
        return float("nan"), float("nan")
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    corrected = gain_corrected(produced, truth, visible)
    log_luma = lambda x: np.log(np.clip(x[..., :3] @ luma, 1e-3, None))  # noqa: E731
    error = log_luma(corrected) - log_luma(truth)
    error = np.where(uv_mask, error, 0.0).astype(np.float32)
    log_shading = np.where(uv_mask, np.log(np.clip(shading, 1e-3, None)), 0.0).astype(np.float32)
    rgb = lambda x: np.repeat(x[..., None], 3, axis=2)  # noqa: E731 (fine_band takes colour)

    def pearson(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a - a.mean(), b - b.mean()
        return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-12))

    fine_error = np.abs(fine_band(rgb(error), uv_mask))[inner]
    fine_shading = np.abs(fine_band(rgb(log_shading), uv_mask))[inner]
    m = uv_mask.astype(np.float32)

    def low(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x * m, (0, 0), 8.0) / np.maximum(cv2.GaussianBlur(m, (0, 0), 8.0), 1e-6)

    return pearson(fine_error, fine_shading), pearson(low(error)[inner], low(log_shading)[inner])


def crease_sign(
    produced: np.ndarray, truth: np.ndarray, shading: np.ndarray, uv_mask: np.ndarray, visible: np.ndarray
) -> float:
    """Pearson correlation of the fine bands of the log-luminance error and of the true log-shading,
    with their signs, on the seen texels: positive where the albedo kept the creases' shading
    (embossed eyelids and nostrils), negative where the de-lighting put it back inverted. A texture
    that is only softer or noisier than the truth scores about 0, unlike ``shading_correlations``'
    crease measure (magnitudes), which scores 0.04-0.32 for the truth itself blurred by 0.7 texel
    (``crease_floor``): its fine error sits at the features, and the features sit at the creases."""
    from scipy.ndimage import binary_erosion

    inner = visible & binary_erosion(uv_mask, iterations=3)
    if inner.sum() < 100:
        return float("nan")
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    corrected = gain_corrected(produced, truth, visible)
    log_luma = lambda x: np.log(np.clip(x[..., :3] @ luma, 1e-3, None))  # noqa: E731
    error = np.where(uv_mask, log_luma(corrected) - log_luma(truth), 0.0).astype(np.float32)
    log_shading = np.where(uv_mask, np.log(np.clip(shading, 1e-3, None)), 0.0).astype(np.float32)
    a = fine_band(np.repeat(error[..., None], 3, axis=2), uv_mask)[inner]
    b = fine_band(np.repeat(log_shading[..., None], 3, axis=2), uv_mask)[inner]
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-12))


CREASE_FLOOR_SIGMA = 0.7
"""Texels of blur that make the truth as soft as a good projection (bilinear resampling of a photo
about as sharp as the atlas): the crease measure of that texture is the floor no texture reaches."""


def crease_floor(truth: np.ndarray, shading: np.ndarray, uv_mask: np.ndarray, visible: np.ndarray) -> float:
    """``shading_correlations``' crease measure of the truth itself, blurred by
    ``CREASE_FLOOR_SIGMA``: no shading in it at all, and still above 0."""
    import cv2

    soft = cv2.GaussianBlur(truth, (0, 0), CREASE_FLOOR_SIGMA)
    return shading_correlations(soft, truth, shading, uv_mask, visible)[0]


def fine_contrast(produced: np.ndarray, truth: np.ndarray, uv_mask: np.ndarray, visible: np.ndarray) -> float:
    """Standard deviation of the produced texture's fine band over the truth's, on the seen texels
    (issue 10: the real pattern's fine contrast >= 0.8 of the truth's; above 1 is noise or streaks)."""
    from scipy.ndimage import binary_erosion

    inner = visible & binary_erosion(uv_mask, iterations=3)
    if inner.sum() < 100:
        return float("nan")
    spread = fine_band(produced, uv_mask)[inner].std()
    return float(spread / max(fine_band(truth, uv_mask)[inner].std(), 1e-9))


def true_iod_px(head: Head, camera: Camera) -> float:
    """The eye distance in the portrait, in pixels, through the true camera."""
    xy, _ = camera.project(head.eyes)
    return float(np.linalg.norm(xy[1] - xy[0]))


def misplacement(
    head: Head,
    where: Placement,
    surface: TexelSurface,
    visible: np.ndarray,
    camera: Camera,
    project_fitted,
    max_points: int = 20000,
    iod_px: float | None = None,
) -> tuple[float, float]:
    """The true misplacement: over the surface points of the seen texels, the distance between where
    the true camera puts them in the portrait and where the pipeline's registration put them
    (``project_fitted``: points in the copy's frame -> portrait pixels), in true eye distances.

    ``iod_px`` replaces the true eye distance where the head's eyes are not known.
    Returns (mean, 90th percentile).
    """
    points = surface.positions[visible[surface.mask]]
    if len(points) == 0:
        return float("nan"), float("nan")
    if len(points) > max_points:
        points = points[np.linspace(0, len(points) - 1, max_points).astype(int)]
    true_xy, _ = camera.project(points)
    fitted_xy = np.asarray(project_fitted(where.apply(points)), np.float64)
    d = np.linalg.norm(fitted_xy - true_xy, axis=1) / (iod_px or true_iod_px(head, camera))
    return float(d.mean()), float(np.percentile(d, 90))
