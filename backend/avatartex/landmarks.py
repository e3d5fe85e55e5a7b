"""Mesh landmarks: the portrait's 468 face-mesh points found on the 3D head.

The mesh's untextured geometry is rendered shaded from in front of the face and the same 2D detector
that reads the portrait reads the render; each 2D landmark is lifted back onto the surface through
the render's triangle-id and barycentric buffers. When the facing direction is unknown, the six axis
directions are tried. A second render, re-framed on the first detection and turned to face the
camera, makes the face large and frontal in the image (scanned heads with shoulders). Artist pins
override detected points, or replace detection entirely when it fails (very stylised heads).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .camera import Camera
from .face import (
    CHIN,
    FOREHEAD,
    LEFT_EYE_CONTOUR,
    LIPS_OUTER,
    NOSE_TIP,
    NUM_LANDMARKS,
    PIN_LANDMARKS,
    RIGHT_EYE_CONTOUR,
    Face,
    FaceLandmarker,
    read_views,
    steady_landmarks,
)
from .imaging import channel_mean, unit_vectors
from .meshframe import MeshFrame, mesh_frame
from .protocol import PIN_NAMES, AvatarTexError, ErrorCode

AXES = {
    "-y": (0, -1, 0),
    "+z": (0, 0, 1),
    "+x": (1, 0, 0),
    "-x": (-1, 0, 0),
    "+y": (0, 1, 0),
    "-z": (0, 0, -1),
}
"""The facing directions searched when the mesh does not say where its face looks: Blender's front
(-y: what the add-on's captures face) and glTF's (+z) first, since the search stops at a face seen
nearly straight on (``FRONTAL_ENOUGH``)."""
FRONTAL_ENOUGH = 0.2
"""Nose offset (``_nose_offset``, eye distances; about 0.4 at 45 degrees of yaw) of a trusted face
below which the search of the other axes stops: every other axis looks at least 90 degrees away,
so it sees this face at 65 degrees or more and cannot see it more frontally, and the straight-on
passes re-render onto the face anyway. On the scanned head and the demo head, as glTF files and as
the add-on captures them, the landmarks are the same, bit for bit, from 26 and 17 views down to 10
and 6 (the scan as captured: 1.13 -> 0.43 CPU seconds)."""

_FOV_DEG = 30.0
TRUSTED_SCORE = 0.3
"""Face-detector score from which a face found in a render of the mesh is believed."""
UNCONFIRMED_SCORE = 0.0
"""The score of a face mediapipe's face mesh reads where no face-detector box holds it
(``face.Face.score``): never taken for the mesh's face. Every head of bench/sweep.py (the scan, the
demo head, its stylised and eyeball variants, their moved copies) is found with a trusted score of
0.6-0.9."""
STRAIGHT_ON_ROUNDS = 4
"""Re-renders straight onto the face found, at most; they stop once the frame turns by less than
SETTLED_DEG. The mesh is analysed once and cached, so rounds cost nothing per request. Measured on
the sweep's invariance block (``bench/sweep.py``, mean texture change of a rotated copy, /255): one
round 1.9 / 3.1 (scanned head turned 45° / 70° about a tilted axis) and 4.0 / 3.4 (demo head); four
rounds 1.0 / 2.0 and 2.8 / 2.6."""
# Skin-like albedo: the detector was trained on faces; a warm grey is found more reliably than a cold
# one on the scanned head, and the colour carries no identity.
_ALBEDO = np.array([0.86, 0.70, 0.60], np.float32)
_AMBIENT = 0.25


@dataclass
class MeshLandmarks:
    """The 468 landmarks on a mesh's surface and how they were found."""

    points3d: np.ndarray
    """(468, 3) float64 surface points in the mesh's space; NaN where not lifted."""
    valid: np.ndarray
    """(468,) bool: the point is on the surface."""
    tri_id: np.ndarray
    """(468,) int32 triangle of each point, -1 where not valid."""
    bary: np.ndarray
    """(468, 3) float32 barycentric coordinates of each point in its triangle."""
    camera: Camera
    """The camera of the render the landmarks were detected in (a framing camera for pins only)."""
    forward: np.ndarray
    """(3,) unit direction the face looks towards (from the landmarks when detected)."""
    up: np.ndarray
    """(3,) unit up direction of the face, orthogonal to ``forward``."""
    source: str
    """``detected``, ``pins`` or ``detected+pins``."""
    score: float = 0.0
    """Detection score of the render's face (0 for pins only)."""
    facing: str = ""
    """The axis (``+z``...) the search found, or ``given`` when ``forward`` was passed."""
    points2d: np.ndarray | None = None
    """(468, 2) landmarks in the render (``camera``'s pixels), NaN where not detected."""
    render: np.ndarray | None = None
    """(H, W, 3) float32 the shaded render the detector saw, for the debug overlay."""
    warnings: list[str] = field(default_factory=list)
    held: bool = True
    """False when the facing search's face did not hold up (no view straight onto it read it
    again, or no nose stands out before its eyes) and was used for want of another: it may not be
    the mesh's face (the verdict then says ``failed``)."""
    reshaped: np.ndarray | None = None
    """(468,) bool: landmarks moved off the detector's placement to follow the mesh's own shape
    (``_follow_nose``). The registration's warp maps the photo's onto them; the camera fit leaves
    them out, since a rigid camera cannot explain proportions."""
    as_detected: np.ndarray | None = None
    """(468, 3) the points as the detector placed them, where ``_follow_nose`` moved some (else
    None). The outline fallback lays these out in the portrait: it stands in for the detector's
    reading of the photo, which has the detector's habits (on the sweep's long-nose portraits,
    placing the followed points instead cost 0.05-0.09 -> 0.06-0.18 of misplacement)."""


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / max(np.linalg.norm(v), 1e-12)


def _vertex_normals(positions: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    from .mesh import compute_normals

    return compute_normals(positions, triangles).astype(np.float64)


def _frame_camera(
    center: np.ndarray, radius: float, forward: np.ndarray, up: np.ndarray, size: int
) -> Camera:
    """A camera on ``forward``'s side of ``center`` that sees a sphere of ``radius`` whole."""
    distance = radius / np.sin(np.radians(_FOV_DEG) / 2) * 1.02
    eye = center + _unit(forward) * distance
    return Camera.look_at(eye, center, up, _FOV_DEG, size, size)


def render_shaded(
    positions: np.ndarray,
    triangles: np.ndarray,
    normals: np.ndarray,
    camera: Camera,
    light: tuple[np.ndarray, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shaded image, tri_id, bary and the per-pixel world position of the mesh seen by ``camera``.

    ``light`` is a (world direction towards the light, ambient share) pair, e.g. the portrait's own
    (``fit_light``); by default a light a little above the camera."""
    tri_id, bary, world, normal = _raster_view(positions, triangles, normals, camera)
    covered = tri_id >= 0
    light = light or _default_light(camera, world, covered)
    return _shade(normal, covered, *light), tri_id, bary, world


def _default_light(camera: Camera, world: np.ndarray, covered: np.ndarray) -> tuple[np.ndarray, float]:
    """A light a little above the camera, so brows and nose cast the shading cues faces have in
    photos; the render's ambient share."""
    # The mean of the surface the view shows (the pixels showing none hold no point of it: counted,
    # they pulled the light towards the file's origin, which a copy of the mesh has elsewhere).
    to_light = _unit(camera.center - world[covered].mean(axis=0) if covered.any() else camera.R[2])
    return _unit(to_light - 0.35 * camera.R[1]), _AMBIENT


def _raster_view(
    positions: np.ndarray, triangles: np.ndarray, normals: np.ndarray, camera: Camera
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """tri_id, bary, world position and unit normal of every pixel of ``camera``'s view."""
    from .raster import interpolate, rasterize_camera

    tri_id, bary, _ = rasterize_camera(positions, triangles, camera)
    attributes = interpolate(np.concatenate([normals, positions], axis=1), triangles, tri_id, bary)
    normal = unit_vectors(attributes[..., :3])
    return tri_id, bary, attributes[..., 3:], normal


def _shade(normal: np.ndarray, covered: np.ndarray, direction: np.ndarray, ambient: float) -> np.ndarray:
    """Lambert shading of a skin-like albedo; both sides lit (inverted normals on some scans)."""
    d = np.asarray(direction, np.float64)
    # Per component, not ``normal @ d``: the normals are a strided view, which matmul copies slowly.
    lambert = np.abs(normal[..., 0] * d[0] + normal[..., 1] * d[1] + normal[..., 2] * d[2])
    shade = (ambient + (1.0 - ambient) * lambert).astype(np.float32)
    shade[~covered] = 0.0
    return shade[..., None] * _ALBEDO


def render_lit_like(
    positions: np.ndarray,
    triangles: np.ndarray,
    normals: np.ndarray,
    camera: Camera,
    photo: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``render_shaded`` under the light of ``photo`` (the portrait as ``camera`` sees it, any size
    of the same aspect; ``fit_light``), or the default light when it shows none or is None, and on
    the photo's background colour (``background_colour``) instead of black.

    Measured with the true camera of a front-lit portrait (landmarks lifted from the render, projected,
    against the photo's; scale of the photo's about their centre, then their mean distance in eye
    distances): default light on black 0.967 / 0.036 (scanned head) and 0.918 / 0.075 (demo head);
    the photo's light and background 0.983 / 0.030 and 0.979 / 0.046."""
    tri_id, bary, world, normal = _raster_view(positions, triangles, normals, camera)
    covered = tri_id >= 0
    if photo is None:
        return _shade(normal, covered, *_default_light(camera, world, covered)), tri_id, bary, world
    import cv2

    seen = np.asarray(photo, np.float32)
    if seen.shape[:2] != covered.shape:
        seen = cv2.resize(seen, (covered.shape[1], covered.shape[0]), interpolation=cv2.INTER_AREA)
    light = fit_light(seen, normal, covered, _default_light(camera, world, covered))
    image = np.where(covered[..., None], _shade(normal, covered, *light), background_colour(seen, covered))
    return image, tri_id, bary, world


BACKGROUND_MARGIN_PX = 7
"""Pixels kept off the render's silhouette when reading the photo's background: there the photo may
still show the head where the first camera does not put it."""


def background_colour(photo: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """(3,) the median colour of ``photo`` (same size as ``covered``) away from the rendered head; the
    mediapipe landmarks of the face's outline follow the contrast of the silhouette against it."""
    import cv2

    kernel = np.ones((2 * BACKGROUND_MARGIN_PX + 1,) * 2, np.uint8)
    away = cv2.dilate(covered.astype(np.uint8), kernel) == 0
    if away.sum() < 100:
        return np.zeros(3, np.float32)
    pick = np.flatnonzero(away)[:: max(1, int(away.sum()) // LIGHT_SAMPLES)]  # not a copy of all of it
    return np.median(photo.reshape(-1, photo.shape[-1])[pick], axis=0).astype(np.float32)


LIGHT_AMBIENT_RANGE = (0.1, 0.6)
"""Bounds of the ambient share ``fit_light`` reads from a photo (a texture's own contrast, not light,
would otherwise be taken for it)."""
LIGHT_SAMPLES = 20_000
"""Pixels, at most, the light is fitted to (evenly spread): four unknowns need no more."""
LIGHT_EXPLAINED = (0.05, 0.2)
"""Share of the photo's brightness variance the fitted light must explain to be taken (fully from
the second value, not at all below the first). The sweep's rendered portraits: 0.30-0.68, whatever
their skin; skimage's astronaut on the scanned head (another face, a real light): 0.01-0.04, and its
fitted light from below and the side moved the registration enough to lose a sixth of the face."""
LIGHT_EDGE_PX = 3
"""Pixels kept off the render's silhouette when reading the photo's light: there the photo may show
background where the first camera puts the head."""


def fit_lambert(normals: np.ndarray, brightness: np.ndarray) -> tuple[np.ndarray, float]:
    """brightness = a + g . n fitted robustly to samples (N, 3) normals and (N,) brightness
    (reweighted three times: eyes, lips, hair and a skin's blotches or paint are not shading).
    Returns (a, gx, gy, gz) and the share of the brightness's variance the fit explains."""
    n = np.asarray(normals, np.float64)
    value = np.asarray(brightness, np.float64)
    basis = np.concatenate([np.ones((len(n), 1)), n], axis=1)
    weight = np.ones(len(n))
    for _ in range(3):
        coef = np.linalg.lstsq(basis * weight[:, None], value * weight, rcond=None)[0]
        residual = np.abs(basis @ coef - value)
        weight = 1.0 / np.maximum(residual / (1.4826 * np.median(residual) + 1e-6), 1.0)
    explained = 1.0 - float(np.mean((basis @ coef - value) ** 2)) / max(float(np.var(value)), 1e-12)
    return coef, explained


def fit_light(
    photo: np.ndarray, normal: np.ndarray, covered: np.ndarray, fallback: tuple[np.ndarray, float]
) -> tuple[np.ndarray, float]:
    """The photo's key light as a (world direction, ambient share) pair, from its brightness over the
    surface ``normal`` seen at each of its pixels (a render of the mesh from the photo's camera):
    brightness = a + g . n, fitted robustly. As far as that fit explains little of the brightness
    (LIGHT_EXPLAINED), the light leans back to ``fallback``: a photo of another face than the mesh's,
    or whose texture hides its shading, has no light to read there.

    Why: mediapipe places landmarks differently as the light moves. On the demo head under a front
    light, landmarks detected on a render lit from 19° above the camera spread 8 % wider than the
    photo's (the head then fitted 8 % small: a tenth of an eye distance off at the scalp); from the
    photo's own light the two agree.
    """
    import cv2

    gray = channel_mean(np.asarray(photo, np.float32)) if photo.ndim == 3 else np.asarray(photo, np.float32)
    if gray.shape != covered.shape:
        gray = cv2.resize(gray, (covered.shape[1], covered.shape[0]), interpolation=cv2.INTER_AREA)
    kernel = np.ones((2 * LIGHT_EDGE_PX + 1,) * 2, np.uint8)
    inside = cv2.erode(covered.astype(np.uint8), kernel) > 0
    if inside.sum() < 500:
        return fallback
    rows, cols = np.nonzero(inside)
    pick = slice(None, None, max(1, len(rows) // LIGHT_SAMPLES))
    n = normal[rows[pick], cols[pick]].astype(np.float64)
    value = gray[rows[pick], cols[pick]].astype(np.float64)
    coef, explained = fit_lambert(n, value)
    a, g = float(coef[0]), coef[1:]
    strength = float(np.linalg.norm(g))
    if strength < 1e-3 or a + strength <= 0:
        return fallback
    share = _smoothstep(explained, *LIGHT_EXPLAINED)
    direction = _unit((1.0 - share) * np.asarray(fallback[0], np.float64) + share * g / strength)
    ambient = float(np.clip(a / (a + strength), *LIGHT_AMBIENT_RANGE))
    return direction, (1.0 - share) * fallback[1] + share * ambient


def _smoothstep(x: float, lo: float, hi: float) -> float:
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _lift(
    points2d: np.ndarray,
    tri_id: np.ndarray,
    world: np.ndarray,
    triangles: np.ndarray,
    positions: np.ndarray,
    depth_tolerance: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Surface points under 2D render landmarks: bilinear in the world-position buffer where the four
    neighbouring pixels lie on one surface, the nearest covered pixel across a depth jump."""
    h, w = tri_id.shape
    n = len(points2d)
    out = np.full((n, 3), np.nan)
    tri = np.full(n, -1, np.int32)
    finite = np.isfinite(points2d).all(axis=1)
    p = np.where(finite[:, None], points2d, 0.0) - 0.5  # pixel centres at +0.5
    x0 = np.clip(np.floor(p[:, 0]).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(p[:, 1]).astype(int), 0, h - 2)
    fx = np.clip(p[:, 0] - x0, 0, 1)[:, None]
    fy = np.clip(p[:, 1] - y0, 0, 1)[:, None]
    corners = [(y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)]
    weights = [(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]
    cover = np.stack([tri_id[r, c] >= 0 for r, c in corners], axis=1)
    values = np.stack([world[r, c] for r, c in corners], axis=1)  # (n, 4, 3)
    blend = sum(wt * world[r, c] for wt, (r, c) in zip(weights, corners, strict=True))
    spread = np.linalg.norm(values - values.mean(axis=1, keepdims=True), axis=2).max(axis=1)
    smooth = cover.all(axis=1) & (spread < depth_tolerance)
    nearest_r = np.clip(np.round(p[:, 1]).astype(int), 0, h - 1)
    nearest_c = np.clip(np.round(p[:, 0]).astype(int), 0, w - 1)
    out[smooth] = blend[smooth]
    near_ok = ~smooth & (tri_id[nearest_r, nearest_c] >= 0)
    out[near_ok] = world[nearest_r[near_ok], nearest_c[near_ok]]
    ok = finite & (smooth | near_ok)
    out[~ok] = np.nan
    tri[ok] = tri_id[nearest_r[ok], nearest_c[ok]]
    # Snap onto the nearest pixel's triangle: barycentrics of the point in that triangle's plane.
    bary = np.zeros((n, 3), np.float32)
    if ok.any():
        corners3 = positions[triangles[tri[ok]]]  # (k, 3, 3)
        a, b, c = corners3[:, 0], corners3[:, 1], corners3[:, 2]
        v0, v1, v2 = b - a, c - a, out[ok] - a
        d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
        d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
        denom = np.where(np.abs(d00 * d11 - d01 * d01) < 1e-30, 1e-30, d00 * d11 - d01 * d01)
        beta = (d11 * d20 - d01 * d21) / denom
        gamma = (d00 * d21 - d01 * d20) / denom
        lam = np.stack([1 - beta - gamma, beta, gamma], axis=1)
        # A bilinear blend across neighbouring triangles can fall just outside this one: clamp.
        lam = np.clip(lam, 0.0, None)
        lam /= np.maximum(lam.sum(axis=1, keepdims=True), 1e-12)
        bary[ok] = lam
        out[ok] = np.einsum("kj,kjc->kc", lam, corners3)
    return out, ok, tri, bary


def _face_frame(points3d: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(forward, up) of a face from its lifted landmarks, or None when the key points are missing."""
    left = points3d[list(LEFT_EYE_CONTOUR)]
    right = points3d[list(RIGHT_EYE_CONTOUR)]
    mouth = points3d[list(LIPS_OUTER)]
    if not (np.isfinite(left).any() and np.isfinite(right).any() and np.isfinite(mouth).any()):
        return None
    left, right, mouth = np.nanmean(left, 0), np.nanmean(right, 0), np.nanmean(mouth, 0)
    across = _unit(left - right)  # the character's left
    # Hairline to chin lies in the face's frontal plane (2.6 deg off on the scanned head); eyes to
    # mouth tilts ~14 deg because the lips stand forward of the eyes.
    top, chin = points3d[FOREHEAD], points3d[CHIN]
    up = top - chin if np.isfinite(top).all() and np.isfinite(chin).all() else (left + right) / 2 - mouth
    up = _unit(up - across * (up @ across))
    # Facing +z with +y up, the character's left is +x: forward = left x up.
    return _unit(np.cross(across, up)), up


def _candidate_ups(forward: np.ndarray, up: np.ndarray | None) -> list[np.ndarray]:
    if up is not None:
        up = np.asarray(up, np.float64)
        up = up - forward * (up @ forward)
        if np.linalg.norm(up) > 1e-6:
            return [_unit(up)]
    # The axes across the facing, made perpendicular to it; +z and +y (Blender's and glTF's up) first.
    order = [(0, 0, 1), (0, 1, 0), (1, 0, 0), (0, 0, -1), (0, -1, 0), (-1, 0, 0)]
    ups = []
    for axis in order:
        a = np.array(axis, np.float64)
        if abs(a @ forward) < 0.75:
            ups.append(_unit(a - forward * (a @ forward)))
    return ups


NOSE_DEPTH_IOD = 0.6
TURN_DAMPING = 0.5
SETTLED_DEG = 3.0
"""A frame that turns less than this between straight-on views has settled: the detector's own
scatter on a render is a few degrees, and chasing it only makes the result depend on it."""
"""How far the nose tip stands before the eyes, in eye distances (adult faces 0.5-0.7)."""


def _nose_offset(face: Face) -> float:
    """How far the nose tip sits off the eyes' midline towards the image's +x, in eye distances:
    0 for a face seen straight on, about +-0.4 at 45 degrees; NaN without two eyes."""
    across = face.left_eye_center - face.right_eye_center
    iod = float(np.linalg.norm(across))
    if iod < 1e-6:
        return float("nan")
    nose = face.landmarks[NOSE_TIP] - (face.left_eye_center + face.right_eye_center) / 2
    return float(nose @ across) / iod**2


def _frontal_offset(face: Face) -> float:
    """|``_nose_offset``|: how far from straight on the face is seen (inf without two eyes)."""
    offset = _nose_offset(face)
    return abs(offset) if np.isfinite(offset) else np.inf


def _turn_to_nose(forward: np.ndarray, up: np.ndarray, face: Face) -> np.ndarray:
    """``forward`` turned about ``up`` by the yaw the face shows in the view that looked along it:
    a face seen straight on has its nose tip on the eyes' midline."""
    offset = _nose_offset(face)
    if not np.isfinite(offset):
        return forward
    yaw = np.arcsin(np.clip(offset / NOSE_DEPTH_IOD, -0.7, 0.7))
    right = _unit(np.cross(-forward, up))  # the image's +x seen from ``forward``
    # Half the measured turn: the nose's depth differs from face to face, and a full step overshoots
    # and swings from side to side, so that a copy of the mesh moved by a rounding error would end
    # on another swing.
    return _unit(forward + np.tan(TURN_DAMPING * yaw) * right)


def _diagonals() -> list[np.ndarray]:
    """The 8 corner and 12 edge directions of the cube around the head: between the six axes."""
    out = []
    for v in np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).reshape(3, -1).T:
        if np.count_nonzero(v) >= 2:
            out.append(_unit(v.astype(np.float64)))
    return out


def _direction_words(direction: np.ndarray) -> str:
    """The axis a direction is nearest, as the facing options name it ("+Y"), when within about 15
    degrees of it; its components otherwise."""
    direction = _unit(np.asarray(direction, np.float64))
    k = int(np.argmax(np.abs(direction)))
    if abs(direction[k]) > 0.965:
        return ("+" if direction[k] > 0 else "-") + "XYZ"[k]
    return "towards " + _axis_name(direction)


FACING_NOTE = "The face does not look along the facing given"
"""How ``facing_note`` begins."""


def facing_note(given: np.ndarray, found: np.ndarray) -> str:
    """The artist's word on a facing hint the face does not look along (``found``: its forward)."""
    return (
        f"{FACING_NOTE} ({_direction_words(given)}) but {_direction_words(found)}: it was searched "
        "for. Set the facing to that to skip the search, or to Search where the heads of a batch look "
        "different ways."
    )


def _axis_name(direction: np.ndarray) -> str:
    return "(" + ", ".join(f"{c:+.2f}" for c in direction) + ")"


def _detect_in_view(
    positions, triangles, normals, center, radius, forward, up, landmarker, size
) -> tuple[Face | None, Camera, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    camera = _frame_camera(center, radius, forward, up, size)
    image, tri_id, bary, world = render_shaded(positions, triangles, normals, camera)
    faces = landmarker.detect(image)
    if not faces:
        return None, camera, image, tri_id, bary, world
    face = max(faces, key=lambda f: (f.score, f.size))
    return face, camera, image, tri_id, bary, world


def _confirmed_close(landmarker, view: tuple, close: bool) -> tuple:
    """``_detect_in_view``'s result for a view framed tightly on a face already found; with ``close``,
    its face confirmed by the short-range detector where the full-range one did not
    (``close_range_score``: a face filling the frame escapes it)."""
    face, image = view[0], view[2]
    if not close or face is None or face.score > 0:
        return view
    face.score = float(landmarker.close_range_score(image, face))
    return view


def _face_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and radius of a view that frames the face the landmark ``points`` (N, 3) describe."""
    center = np.median(points, axis=0)
    return center, 1.25 * float(np.percentile(np.linalg.norm(points - center, axis=1), 98))


JITTER_DEG = 2.0
"""Turn of the extra views of ``_ensemble`` around the straight-on one."""
ENSEMBLE_VIEWS = 4
"""Extra views ``_ensemble`` detects in (each one render and one detection, once per mesh)."""


def _ensemble(
    positions, triangles, normals, center, radius, frame, landmarker, size, found
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The landmarks' surface points steadied over the straight-on view (``found``: points, ok,
    triangle, barycentrics) and ENSEMBLE_VIEWS views turned JITTER_DEG left, right, up and down:
    per landmark, the view's own surface point nearest the median of all views (so it stays on
    its triangle).

    The detector's placement on one render is noisy: a copy of a mesh scaled by 0.01 and moved,
    identical but for float rounding (1e-4 of its size), got landmarks up to 0.26 of the unit
    apart. Turning the view a little changes the pixels, not the face; the most central of five
    detections is steadier (0.04).
    """
    forward, up = frame
    right = _unit(np.cross(up, forward))
    views = [found]
    for axis in (up, -up, right, -right)[:ENSEMBLE_VIEWS]:
        angle = np.radians(JITTER_DEG)
        turned = _unit(forward * np.cos(angle) + np.cross(axis, forward) * np.sin(angle))
        view_up = _unit(up - (up @ turned) * turned)
        face, _, _, tri_id, _, world = _detect_in_view(
            positions, triangles, normals, center, radius, turned, view_up, landmarker, size
        )
        if face is not None and _upright(face):
            views.append(_lift(face.landmarks, tri_id, world, triangles, positions, 0.02 * radius))
    points, ok, tri, bary = (np.array(x, copy=True) for x in found)
    if len(views) < 3:
        return points, ok, tri, bary
    stacked = np.stack([np.where(v[1][:, None], v[0], np.nan) for v in views])  # (V, N, 3)
    with warnings.catch_warnings():  # a landmark no view placed on the surface: NaN, and kept out
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(stacked, axis=0)
    distance = np.linalg.norm(stacked - median[None], axis=2)
    distance = np.where(np.isfinite(distance), distance, np.inf)
    best = distance.argmin(axis=0)  # (N,) the view nearest the median, per landmark
    for k, (v_points, v_ok, v_tri, v_bary) in enumerate(views):
        take = ok & (best == k) & v_ok & np.isfinite(distance[k])
        points[take], tri[take], bary[take] = v_points[take], v_tri[take], v_bary[take]
    return points, ok, tri, bary


NOSE_SEARCH_IOD = 0.5
"""Eye distances around the detected nose tip where the mesh's own tip (its most protruding part
along the face's direction) is looked for."""
NOSE_CAP_IOD = 0.03
"""Depth, in eye distances, of the cap of most protruding surface whose centre is the geometric tip
(its single foremost vertex wanders along a round tip with the face frame's tilt)."""
NOSE_TIP_BIAS_IOD = 0.085
"""How far above the detector's nose tip the geometric tip sits on heads of ordinary proportions:
measured 0.082 (demo head), 0.087 (scanned head), 0.084-0.106 (demo variants whose nose is not
changed). The photo's detector has the same habit, so only what departs from it is shape."""
NOSE_DEADBAND_IOD = 0.08
"""Departures from that bias below this (eye distances) are the detector's and the frame's noise
(up to 0.07 on the variants with an ordinary nose) and move nothing; larger ones (the long nose:
0.19) are shortened by deadband² / length, as the registration's warp is (``WARP_DEADBAND``)."""
NOSE_REACH_IOD = 0.45
"""Landmarks within this many eye distances of the nose tip (in the straight-on view) follow it,
with a weight falling smoothly to zero: the nose's, not the eyes' or the lips'."""


def _eye_distance(points: np.ndarray, ok: np.ndarray) -> float | None:
    """The distance between the eye contours' centres, of 3-D landmarks or of their pixels in a
    view; None unless both contours are wholly there (``ok``)."""
    left, right = list(LEFT_EYE_CONTOUR), list(RIGHT_EYE_CONTOUR)
    if not (ok[left].all() and ok[right].all()):
        return None
    return float(np.linalg.norm(points[left].mean(0) - points[right].mean(0)))


def _follow_nose(
    points, ok, tri, bary, positions, triangles, normals, camera: Camera, frame, view=None
) -> tuple:
    """The nose landmarks moved onto the mesh's own nose where it departs from ordinary proportions.

    A detector reads a face with the proportions it was trained on: on a caricature's long nose it
    puts the tip where an ordinary nose would end (0.19 eye distances above the sculpted tip on the
    demo head's long-nose variant), and the photo's nose would then be painted above the mesh's.
    The geometric tip — the centre of the most protruding cap of surface near the detected one —
    says where the nose really ends; the detector's usual offset from it (``NOSE_TIP_BIAS_IOD``) is
    kept, and what departs beyond the deadband moves the nose's landmarks in the straight-on view,
    re-lifted onto the surface.

    ``view`` is ``camera``'s (triangle id, world position) buffers where the caller has them; they
    are rendered when the nose moves otherwise. Returns points, ok, triangles, barycentrics and the
    (468,) mask of the landmarks it moved.
    """
    unmoved = (points, ok, tri, bary, np.zeros(len(points), bool))
    forward, up = frame
    right = _unit(np.cross(up, forward))
    iod = _eye_distance(points, ok)
    if not ok[NOSE_TIP] or iod is None:
        return unmoved
    tip = points[NOSE_TIP]
    near = positions[np.linalg.norm(positions - tip, axis=1) < NOSE_SEARCH_IOD * iod]
    if len(near) < 3:
        return unmoved
    height = near @ forward
    top = near[height.argmax()]
    if np.linalg.norm(top - tip) > 0.8 * NOSE_SEARCH_IOD * iod:  # the search's edge: no tip inside
        return unmoved
    geometric = near[height >= height.max() - NOSE_CAP_IOD * iod].mean(axis=0)
    offset = np.array([(geometric - tip) @ right, (geometric - tip) @ up - NOSE_TIP_BIAS_IOD * iod]) / iod
    length = float(np.linalg.norm(offset))
    if length <= NOSE_DEADBAND_IOD:
        return unmoved
    offset *= 1.0 - (NOSE_DEADBAND_IOD / length) ** 2
    shift3 = (offset[0] * right + offset[1] * up) * iod
    xy = camera.project(np.where(ok[:, None], points, 0.0))[0]
    tip_xy, moved_tip_xy = camera.project(np.stack([tip, tip + shift3]))[0]
    iod_px = float(np.linalg.norm(np.subtract(*camera.project(np.stack([tip, tip + right * iod]))[0])))
    reach = np.linalg.norm(xy - tip_xy, axis=1) / (NOSE_REACH_IOD * iod_px)
    weight = np.where(ok, np.clip(1.0 - reach**2, 0.0, None) ** 2, 0.0)
    follow = weight > 0
    if view is None:
        tri_id, _, world, _ = _raster_view(positions, triangles, normals, camera)
    else:
        tri_id, world = view
    target = xy[follow] + weight[follow, None] * (moved_tip_xy - tip_xy)
    radius = float(np.linalg.norm(positions.max(0) - positions.min(0)))
    lifted, lift_ok, lift_tri, lift_bary = _lift(target, tri_id, world, triangles, positions, 0.01 * radius)
    points, ok, tri, bary = (np.array(x, copy=True) for x in (points, ok, tri, bary))
    index = np.nonzero(follow)[0][lift_ok]
    points[index], tri[index], bary[index] = lifted[lift_ok], lift_tri[lift_ok], lift_bary[lift_ok]
    moved = np.zeros(len(points), bool)
    moved[index] = True
    return points, ok, tri, bary, moved


def _upright(face: Face) -> bool:
    """The face reads upright in the image: left eye to the image right, eyes above the mouth."""
    across = face.left_eye_center - face.right_eye_center
    down = face.landmarks[list(LIPS_OUTER)].mean(0) - (face.left_eye_center + face.right_eye_center) / 2
    return bool(across[0] > abs(across[1]) and down[1] > abs(down[0]))


def _pin_table(pins, pin_names, n_vertices: int) -> dict[str, int]:
    """name -> vertex index of the valid pins; accepts a dict or parallel arrays."""
    if pins is None:
        return {}
    if isinstance(pins, dict):
        items = list(pins.items())
    else:
        if pin_names is None:
            raise ValueError("pins given as an array need pin_names")
        items = list(zip([str(n) for n in pin_names], np.asarray(pins).reshape(-1).tolist(), strict=True))
    table = {}
    for name, vertex in items:
        if name in PIN_LANDMARKS and 0 <= int(vertex) < n_vertices:
            table[name] = int(vertex)
    return table


def _no_face(
    why: str, positions: np.ndarray | None = None, triangles: np.ndarray | None = None
) -> AvatarTexError:
    """The typed error; with the mesh, it says when the file's parts lie far apart (the renders frame
    them all, the head small in them: a prop or a second head exported with it)."""
    apart = _parts_apart(positions, triangles) if positions is not None and triangles is not None else ""
    hint = (
        "Add landmark pins in the AvatarTex panel (eye corners, nose tip, mouth corners), set the "
        "direction the face looks, or check the mesh is a head."
    )
    if apart:
        hint = (
            "Export the head alone (or hide the other objects), then try again. Else: "
            + hint[0].lower()
            + hint[1:]
        )
    return AvatarTexError(
        ErrorCode.NO_FACE_ON_MESH, f"No face could be found on the mesh: {why}{apart}.", hint
    )


PARTS_APART = 4.0
"""A mesh whose extent is this many times its largest part's (by area) holds parts far apart."""


def _parts_apart(positions: np.ndarray, triangles: np.ndarray) -> str:
    """A clause for the no-face error where the mesh's largest part is small beside the whole (other
    objects exported far from the head), else ""."""
    from .mesh import triangle_areas, welded_parts

    positions, triangles = np.asarray(positions, np.float64), np.asarray(triangles, np.int64)
    if not len(triangles):
        return ""
    _, part, count = welded_parts(positions, triangles)
    corners = positions[triangles]
    area = triangle_areas(corners)
    largest = int(np.bincount(part, weights=area).argmax())
    own = corners[part == largest].reshape(-1, 3)
    whole = float(np.linalg.norm(np.ptp(positions[np.unique(triangles)], axis=0)))
    size = float(np.linalg.norm(np.ptp(own, axis=0)))
    if size <= 0 or whole < PARTS_APART * size:
        return ""
    parts = len(np.unique(part))
    return (
        f"; the file holds {parts} separate parts spread over {whole / size:.0f} times the largest one's "
        "size, so every render showed the head small among them"
    )


UNPLACED = (
    "A face was found in a render of the mesh but could not be placed on its surface; falling back to pins."
)
NOSE_AHEAD_IOD = 0.35
"""How far the nose tip found on the mesh must stand before its eyes along the face's direction, in
eye distances, for the face to be the mesh's (the sweep's 25 heads: 0.56-1.0). The "faces" the
detector trusts in some side views of a turned head (an ear read as an eye) have less: 0.04 and
0.29 on the scanned bust turned at random (the photo's face was laid across its jaw and cheek, and
the report said only `doubtful`, as for the right one), 0.25 on the wide-jaw demo variant. A head
whose real nose is flatter than this still gets its face when nothing else holds up, with a
warning."""
MAX_REFINED = 10
"""Faces read in the facing search that are refined (each a few renders and detections, 0.3-0.6 s
once per mesh) to find one that holds up (``NOSE_AHEAD_IOD``); the first almost always does. The
wide-jaw variant turned as bench/orientations.py's copy 23 turned down four "faces" on its jaw and
sides before its own (with 4 it was textured from one of those and called `failed`; with 10 all 40
of that variant's copies find their face, and the demo head's 40 read the same as with 4)."""


def _nose_ahead(found: MeshLandmarks) -> float:
    """How far the nose tip stands before the eyes' centres along ``found.forward``, in eye
    distances (NaN when a point is missing)."""
    points = found.points3d
    with warnings.catch_warnings():  # an eye with no point on the surface: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        left = np.nanmean(points[list(LEFT_EYE_CONTOUR)], axis=0)
        right = np.nanmean(points[list(RIGHT_EYE_CONTOUR)], axis=0)
    iod = float(np.linalg.norm(left - right))
    if not np.isfinite(iod) or iod < 1e-12:
        return float("nan")
    return float((points[NOSE_TIP] - (left + right) / 2) @ found.forward) / iod


def _facing_search(
    positions, triangles, normals, center, radius, forward, up, landmarker, image_size: int, notes: list
) -> tuple[MeshLandmarks | None, bool]:
    """Passes 1 and 2 of ``detect_mesh_landmarks``: the views searched for a face (the given facing,
    or the six axes and then the diagonals; ``up`` or each axis across as the view's up), the faces
    read refined (``_refine``) in order of trust and frontality until one holds up. Returns the
    landmarks (None when no face was read or none could be placed) and whether they held up (a
    straight-on view confirmed them and their nose stands out); ones that did not carry a warning,
    and ``notes`` one when no face could be placed.

    The six axes come first (most files face along one), then the twenty diagonals between them,
    so that a head turned or tilted any way is seen within ~30 degrees of face-on by one of the
    views. A face is trusted when the face detector itself vouches for it (score): mediapipe's mesh
    also "finds" faces in upside-down renders, with garbage landmarks and no detector box. Such a
    face (score 0) is never the mesh's: Blender's Suzanne, whose render no detector box confirms
    from any side, got one seen diagonally and turned a quarter, the photo's face laid across her
    brow and ear (reported as merely doubtful); without it the request asks for pins."""
    if forward is not None:
        rounds = [[("given", _unit(forward))]]
    else:
        rounds = [
            [(name, np.array(axis, np.float64)) for name, axis in AXES.items()],
            [(_axis_name(d), d) for d in _diagonals()],
        ]
    searched: list = []  # (key, facing, view) of every face the search read
    refined: dict[int, tuple] = {}  # index in searched -> _refine's landmarks and confirmation

    def holds_up(index: int) -> MeshLandmarks | None:
        """The refined landmarks of ``searched[index]`` when a straight-on view confirms them and
        a nose stands out before their eyes."""
        if index not in refined and len(refined) < MAX_REFINED:
            _, facing, view = searched[index]
            args = (view, facing, positions, triangles, normals, radius, landmarker, image_size, notes)
            refined[index] = _refine(*args)
            if refined[index][0] is not None and not refined[index][1]:
                # Not confirmed straight on: the tight view may only have escaped the full-range
                # detector, as a face filling the frame does. A chibi head's face, read whole-head
                # with score 0.86, was never confirmed and an ear was taken for its face (verdict
                # failed). Read again with the short-range detector's word: only where the first
                # reading failed, as the faces confirmed so far are read as before (the long-nose
                # variant's straight-on view settles 4 degrees elsewhere with it, and the sweep's
                # long-nose portraits were placed worse: r042 0.028 -> 0.073 eye distances).
                again = _refine(*args, close=True)
                refined[index] = again if again[1] else refined[index]
        found, confirmed = refined.get(index, (None, False))
        if found is None or not confirmed or not _nose_ahead(found) >= NOSE_AHEAD_IOD:
            return None
        return found

    def ranked() -> list[int]:
        return sorted(range(len(searched)), key=lambda i: searched[i][0], reverse=True)

    detected = None
    for candidates in rounds:
        slanted: dict[str, tuple] = {}  # facing -> the best face read upside down or sideways there
        for name, direction in candidates:
            for up_axis in _candidate_ups(direction, up):
                view = _detect_in_view(
                    positions, triangles, normals, center, radius, direction, up_axis, landmarker, image_size
                )
                face = view[0]
                if face is None or not face.score > UNCONFIRMED_SCORE:
                    continue
                trusted = _upright(face) and face.score >= TRUSTED_SCORE
                if not _upright(face) and face.score >= max(TRUSTED_SCORE, slanted.get(name, (0.0,))[0]):
                    slanted[name] = (face.score, direction, view)
                # Among trusted faces the most frontal view wins: its landmarks sit best on the
                # surface, and the straight-on passes below have least to correct.
                key = (trusted, _upright(face), -_frontal_offset(face) if trusted else face.score, face.size)
                searched.append((key, name, view))
                if trusted:
                    slanted.pop(name, None)
                    break  # an upright face the detector vouches for needs no other up
            if searched:
                first = ranked()[0]
                key = searched[first][0]
                if key[0] and -key[2] < FRONTAL_ENOUGH and first not in refined:
                    # A trusted face seen nearly straight on: no other axis sees it better, unless
                    # it is no face at all once placed on the surface (no nose stands out).
                    detected = holds_up(first)
                    if detected is not None:
                        break
        if detected is None:
            detected = _first_held(searched, ranked(), holds_up)
        if detected is None and slanted:
            # A face read at a slant (none of the four ups shows it upright: a head seen from
            # below its chin, say) and nothing else holding up: each such view turned about its
            # axis until that face stands upright, and read again.
            for name, (_, direction, view) in slanted.items():
                turned = _detect_in_view(
                    positions, triangles, normals, center, radius, direction,
                    _face_up(view[0], view[1], direction), landmarker, image_size,
                )  # fmt: skip
                face = turned[0]
                if face is not None and _upright(face) and face.score >= TRUSTED_SCORE:
                    searched.append(((True, True, -_frontal_offset(face), face.size), name, turned))
            detected = _first_held(searched, ranked(), holds_up)
        if detected is not None:
            break
    if detected is not None:
        return detected, True
    if not searched:
        return None, False
    # Nothing trusted held up: the first face read that does, or the best one, refined, as before
    # the check (with a word).
    detected = next((d for d in map(holds_up, ranked()) if d is not None), None)
    if detected is not None:
        return detected, True
    detected = refined.get(ranked()[0], (None, False))[0]
    if detected is not None:
        detected.held = False
        detected.warnings.append(
            "The face found on the mesh is not confirmed by a view straight onto it, or no nose "
            "stands out before its eyes: it may not be the face; set landmark pins if the texture "
            "lands elsewhere."
        )
    elif UNPLACED not in notes:
        notes.append(UNPLACED)
    return detected, False


def _first_held(searched: list, order: list[int], holds_up) -> MeshLandmarks | None:
    """The first trusted face of ``searched``, in ``order``, that ``holds_up`` (refined and
    checked; None for those it already turned down)."""
    return next((d for d in (holds_up(i) for i in order if searched[i][0][0]) if d is not None), None)


def _face_up(face: Face, camera: Camera, direction: np.ndarray) -> np.ndarray:
    """The up of a view along ``direction`` in which ``face``, read by ``camera``, stands upright:
    from its mouth to its eyes, in the image, carried into the scene."""
    eyes = (face.left_eye_center + face.right_eye_center) / 2
    dx, dy = eyes - face.landmarks[list(LIPS_OUTER)].mean(axis=0)
    up = dx * camera.R[0] + dy * camera.R[1]  # the image's x and y (down) axes in the scene
    return _unit(up - direction * (up @ direction))


SNAP_DEG = 4.0
"""Grid, in degrees, of the straight-on view's direction and roll in the mesh's own frame
(``_snapped_view``)."""
SNAP_CENTRE_IOD = 0.25
"""Grid of the straight-on view's centre along each axis of the mesh's own frame, in eye distances
(read from the mesh's frame unit and the face's own eye distance, itself snapped: SNAP_SCALE)."""
SNAP_SCALE = 0.15
"""Grid of the logarithm of the face's eye distance over the mesh frame's unit."""
FRAMED_IOD = 1.9
"""Radius of the straight-on view, in eye distances (about what ``_face_sphere`` frames)."""
SNAP_ROUNDS = 4
"""Straight-on views at most in the snapped grid: until the view's own landmarks snap to it again."""


@dataclass(frozen=True)
class _View:
    """A view of the mesh: its centre, the radius it frames, the way the face looks and its up."""

    centre: np.ndarray
    radius: float
    forward: np.ndarray
    up: np.ndarray

    def same(self, other: _View) -> bool:
        return bool(
            np.allclose(self.forward, other.forward)
            and np.allclose(self.up, other.up)
            and np.allclose(self.centre, other.centre)
            and np.isclose(self.radius, other.radius)
        )


@dataclass(frozen=True)
class _SnappedRead:
    """What one snapped view (``_snapped_view``) read: the face, its camera and render, the
    landmarks lifted onto the surface (points, ok, triangles, barycentrics) and the direction the
    face looks in it (its landmarks' frame, the nose followed)."""

    view: _View
    face: Face
    camera: Camera
    image: np.ndarray
    lifted: tuple
    forward: np.ndarray


def _face_anchor(points3d: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The face's middle (between the eyes' and the mouth's centres) and its eye distance, from its
    lifted landmarks; None when the eyes or the mouth are missing. Steadier from view to view than
    the landmarks' median and spread (``_face_sphere``): a tenth of an eye distance and a fifth of
    the radius apart on the demo head."""
    parts = [points3d[list(c)] for c in (LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR, LIPS_OUTER)]
    if not all(np.isfinite(part).any() for part in parts):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        left, right, mouth = (np.nanmean(part, 0) for part in parts)
    return ((left + right) / 2 + mouth) / 2, float(np.linalg.norm(left - right))


def _snapped_direction(direction: np.ndarray, step: float) -> tuple[np.ndarray, int]:
    """``direction`` (the mesh frame's coordinates) on a grid of ``step`` radians: on the face of the
    cube around the frame it points through, the angles of its two other coordinates snapped (no
    pole where the grid would crowd, as a latitude and longitude have); and that face's axis."""
    k = int(np.argmax(np.abs(direction)))
    i, j = (k + 1) % 3, (k + 2) % 3
    out = np.zeros(3)
    out[k] = np.sign(direction[k]) or 1.0
    for axis in (i, j):
        angle = np.arctan2(direction[axis], abs(direction[k]))
        out[axis] = np.tan(np.round(angle / step) * step)
    return _unit(out), k


def _snapped_view(own: MeshFrame, frame, anchor: tuple[np.ndarray, float]) -> _View:
    """The straight-on view of the face (``frame``: forward, up; ``anchor``: its middle and eye
    distance) moved onto a grid of the mesh's own frame (SNAP_DEG, SNAP_CENTRE_IOD, SNAP_SCALE).

    The detector reads the same landmarks on two copies of a mesh rendered from the same view
    relative to it (turned, scaled and moved in their files: 0.003 pixels apart), but the facing
    search reaches the face along other views on each copy and settles a degree or so apart, and
    a degree apart the landmarks differ by a hundredth of an eye distance: the camera fit, which
    texels at the edge of the photo's reach are trusted and where the scalp begins follow. Views on
    one grid of the mesh's own frame are the same view on every copy whose search settles in the
    same cell."""
    step = np.radians(SNAP_DEG)
    forward, k = _snapped_direction(own.axes @ np.asarray(frame[0], np.float64), step)
    up = own.axes @ np.asarray(frame[1], np.float64)
    reference = np.eye(3)[(k + 1) % 3]
    across = _unit(reference - (reference @ forward) * forward)
    other = np.cross(forward, across)
    roll = np.round(np.arctan2(up @ other, up @ across) / step) * step
    up = np.cos(roll) * across + np.sin(roll) * other
    centre, iod = anchor
    scale = np.exp(np.round(np.log(iod / own.unit) / SNAP_SCALE) * SNAP_SCALE)  # eye distance / unit
    cell = SNAP_CENTRE_IOD * scale
    local = np.round(own.to_frame(centre).astype(np.float64) / cell) * cell
    return _View(
        own.origin + own.unit * (local @ own.axes),
        float(FRAMED_IOD * scale * own.unit),
        forward @ own.axes,
        up @ own.axes,
    )


def _refine(
    view,
    facing: str,
    positions,
    triangles,
    normals,
    radius: float,
    landmarker,
    image_size: int,
    notes: list,
    close: bool = False,
) -> tuple[MeshLandmarks | None, bool]:
    """Pass 2 of the facing search for one face read (``view``: ``_detect_in_view``'s result, seen
    from ``facing``): the camera turned to the face and framed tightly, detected again until its
    frame settles, steadied over a few views and its nose followed; ``notes`` are the search's
    warnings so far. Returns the landmarks (None when the face cannot be placed on the surface)
    and whether a straight-on view confirmed the face: the "faces" the detector reads in some side
    views of a bust (an ear for an eye) are seen in no view turned to them. ``close``: the tight
    views' faces are confirmed by the short-range detector too (``_confirmed_close``)."""
    face, camera, image, tri_id, bary, world = view
    detected = None
    confirmed = False
    # Turn the camera to the face found and frame it tightly, then detect again.
    points, ok, tri, bry = _lift(face.landmarks, tri_id, world, triangles, positions, 0.02 * radius)
    frame = _face_frame(np.where(ok[:, None], points, np.nan))
    if frame is not None and ok.sum() >= 0.5 * NUM_LANDMARKS:
        # Repeated while the face's frame still turns: the landmarks then come from a straight-on
        # view whatever the first view was, so a rotated copy of a mesh gets the same ones.
        for _ in range(STRAIGHT_ON_ROUNDS):
            face_forward, face_up = frame
            face_center, face_radius = _face_sphere(points[ok])
            face2, camera2, image2, tri2, bary2, world2 = _confirmed_close(
                landmarker,
                _detect_in_view(
                    positions,
                    triangles,
                    normals,
                    face_center,
                    face_radius,
                    face_forward,
                    face_up,
                    landmarker,
                    image_size,
                ),
                close,
            )
            if face2 is None or not _upright(face2) or face2.score < min(face.score, TRUSTED_SCORE):
                break
            points2, ok2, trib, bryb = _lift(
                face2.landmarks, tri2, world2, triangles, positions, 0.02 * face_radius
            )
            if ok2.sum() < ok.sum() * 0.9:
                break
            face, camera, image = face2, camera2, image2
            points, ok, tri, bry = points2, ok2, trib, bryb
            confirmed = True
            frame = _face_frame(np.where(ok[:, None], points, np.nan)) or frame
            # The 3-D frame of landmarks seen from far to the side keeps some of that view's
            # skew; the nose tip off the eyes' midline in this view says how much is left.
            turned = _turn_to_nose(frame[0], frame[1], face2)
            if np.degrees(np.arccos(np.clip(turned @ face_forward, -1, 1))) < SETTLED_DEG:
                break
            frame = (turned, frame[1])
        face_center, face_radius = _face_sphere(points[ok])
        # The straight-on view moved onto the grid of the mesh's own frame, read again until its
        # landmarks put it in the same cell (copies of the mesh then see the same renders).
        own = mesh_frame(positions, triangles, np.stack([np.cross(frame[1], frame[0]), frame[1], frame[0]]))
        anchor = _face_anchor(np.where(ok[:, None], points, np.nan))
        view = _snapped_view(own, frame, anchor) if anchor is not None else None
        reads: list[_SnappedRead] = []  # the reads that snapped to a view
        read: _SnappedRead | None = None  # the one taken: the last, or a cycle's
        for _ in range(SNAP_ROUNDS if view is not None else 0):
            face3, camera3, image3, tri3, bary3, world3 = _confirmed_close(
                landmarker,
                _detect_in_view(
                    positions,
                    triangles,
                    normals,
                    view.centre,
                    view.radius,
                    view.forward,
                    view.up,
                    landmarker,
                    image_size,
                ),
                close,
            )
            if face3 is None or not _upright(face3):
                # Seen straight on, along the frame its own landmarks give, it shows no face: not
                # the mesh's (a head upside down, read in a diagonal view under a wrong up hint,
                # gave a "face" 1.3 eye distances off that one turned view had confirmed).
                confirmed = confirmed and bool(reads)
                break
            if face3.score < min(face.score, TRUSTED_SCORE):
                break
            lifted = _lift(face3.landmarks, tri3, world3, triangles, positions, 0.02 * view.radius)
            if lifted[1].sum() < ok.sum() * 0.9:
                break
            found = np.where(lifted[1][:, None], lifted[0], np.nan)
            seen, anchor = _face_frame(found), _face_anchor(found)
            if seen is None or anchor is None:
                read = _SnappedRead(view, face3, camera3, image3, lifted, None)
                break
            read = _SnappedRead(view, face3, camera3, image3, lifted, _turn_to_nose(seen[0], seen[1], face3))
            reads.append(read)
            again = _snapped_view(own, (read.forward, seen[1]), anchor)
            if again.same(view):
                break
            cycle = next((k for k, past in enumerate(reads) if again.same(past.view)), None)
            if cycle is not None:
                # The reads go round between cells (the face's direction, read in each, scatters by
                # about a cell): which is read last depends on the cell the search came in by, so
                # the one nearest the reads' mean direction is taken, whichever came first.
                mean = _unit(sum(past.forward for past in reads[cycle:]))
                read = max(reads[cycle:], key=lambda past: past.view.forward @ mean)
                break
            view, face, ok = again, face3, lifted[1]  # the next read is held to this one
        if read is not None:
            face, camera, image = read.face, read.camera, read.image
            points, ok, tri, bry = read.lifted
            frame = (read.view.forward, read.view.up)
            face_center, face_radius = read.view.centre, read.view.radius
        points, ok, tri, bry = _ensemble(
            positions,
            triangles,
            normals,
            face_center,
            face_radius,
            frame,
            landmarker,
            image_size,
            (points, ok, tri, bry),
        )
        as_detected = np.where(ok[:, None], points, np.nan)
        points, ok, tri, bry, reshaped = _follow_nose(
            points, ok, tri, bry, positions, triangles, normals, camera, frame
        )
        detected = MeshLandmarks(
            points3d=np.where(ok[:, None], points, np.nan),
            valid=ok,
            tri_id=tri,
            bary=bry,
            camera=camera,
            forward=frame[0],
            up=frame[1],
            source="detected",
            score=float(face.score),
            facing=facing,
            points2d=face.landmarks.astype(np.float64),
            render=image,
            warnings=list(notes),
            reshaped=reshaped,
            as_detected=as_detected if reshaped.any() else None,
        )
    return detected, confirmed


def detect_mesh_landmarks(
    positions: np.ndarray,
    triangles: np.ndarray,
    landmarker: FaceLandmarker,
    up: np.ndarray | None = None,
    forward: np.ndarray | None = None,
    pins=None,
    pin_names=None,
    image_size: int = 512,
    normals: np.ndarray | None = None,
    past_hints: bool = True,
) -> MeshLandmarks:
    """Find the 468 face landmarks on a head mesh's surface.

    Args:
        positions, triangles: the mesh, (V, 3) and (T, 3).
        landmarker: the 2D detector (the one used on the portrait).
        up, forward: the head's up axis and the direction its face looks, when known; otherwise
            the six axis directions (and for each the perpendicular ups) are searched.
        pins: artist landmark pins, a dict name -> vertex or an array of vertex ids (-1 unset)
            with ``pin_names``; names from protocol.PIN_NAMES. They override detected points, and
            replace detection when it fails (at least 4 pins, including both eyes and the nose tip
            or a mouth corner).
        image_size: edge of the square renders, pixels.
        normals: (V, 3) vertex normals for shading; computed when absent.
        past_hints: when no face holds up with ``up`` and ``forward``, search again without them
            (and warn when the face looks elsewhere than ``forward``); False keeps them as
            constraints (``body.find_face`` tries one candidate up after another).

    Raises AvatarTexError NO_FACE_ON_MESH when neither detection nor the pins give a face.
    """
    positions = np.asarray(positions, np.float64).reshape(-1, 3)
    triangles = np.asarray(triangles, np.int64).reshape(-1, 3)
    normals = _vertex_normals(positions, triangles) if normals is None else np.asarray(normals, np.float64)
    pin_table = _pin_table(pins, pin_names, len(positions))
    lo, hi = positions.min(0), positions.max(0)
    center = (lo + hi) / 2
    radius = float(np.linalg.norm(positions - center, axis=1).max())
    warnings: list[str] = []

    # The hints first; then without the up (the add-on sends Blender's +Z: wrong for a head lying in
    # its scene, or a Y-up file read as Z-up), then without the facing (the add-on's default, -Y,
    # is wrong for a head facing elsewhere): the first search whose face holds up is taken, else
    # the first that found one.
    attempts = [(forward, up)]
    if past_hints and up is not None:
        attempts.append((forward, None))
    if past_hints and forward is not None:
        attempts += [(None, up)] + ([(None, None)] if up is not None else [])
    detected, notes = None, []
    for given_forward, given_up in attempts:
        found_notes: list[str] = []
        found, held = _facing_search(
            positions, triangles, normals, center, radius, given_forward, given_up, landmarker, image_size,
            found_notes,
        )  # fmt: skip
        if held or detected is None:
            detected, notes = found, found_notes
        if held:
            if forward is not None and given_forward is None:
                notes.append(facing_note(forward, found.forward))
            break
    warnings += notes
    if detected is not None:
        detected.warnings += [note for note in notes if note not in detected.warnings]
        if pin_table:
            apply_pins(detected, pin_table, positions, triangles, normals)
            detected.source = "detected+pins"
        return detected

    # Fallback: the artist's pins alone.
    missing_why = (
        "the renders of the mesh from 26 directions around it show no face a detector recognises"
        if forward is None
        else "a render from the given facing shows no face"
    )
    if not pin_table:
        raise _no_face(missing_why + ", and no landmark pins are set", positions, triangles)
    names = set(pin_table)
    has_eyes = bool(names & {"right_eye_outer", "right_eye_inner"}) and bool(
        names & {"left_eye_outer", "left_eye_inner"}
    )
    if len(pin_table) < 4 or not has_eyes or not (names & {"nose_tip", "mouth_right", "mouth_left"}):
        raise _no_face(
            missing_why + f", and the {len(pin_table)} pin(s) set ({sorted(names)}) are too "
            "few: at least 4 are needed, with a corner of each eye and the nose tip or a "
            "mouth corner"
        )
    return _pins_only(
        pin_table,
        positions,
        triangles,
        center,
        radius,
        forward,
        up,
        image_size,
        warnings
        + [f"No face was detected on the mesh; registering with the {len(pin_table)} landmark pins only."],
    )


def _vertex_triangle(triangles: np.ndarray, vertex: int) -> tuple[int, np.ndarray]:
    rows, cols = np.nonzero(triangles == vertex)
    if len(rows) == 0:
        return -1, np.zeros(3, np.float32)
    bary = np.zeros(3, np.float32)
    bary[cols[0]] = 1.0
    return int(rows[0]), bary


PIN_REACH_IOD = 0.3
"""Radius (a Gaussian's sigma, eye distances in the view the landmarks were read in) over which a pin
carries the landmarks around it (``apply_pins``). A pin overriding its one landmark moved 1 of 468
points: the eye contour stayed where the detector read it and the photo's eye with it (pins on the
true features of the demo head's variants, ``bench/proportions.py --pins``: the big eyes' outer
corners 0.147 -> 0.135 eye distances off; carried, 0.057; every mesh's median feature error 0.037-0.087
unpinned, 0.022-0.044 pinned). A third of an eye distance takes the eye's contour and lids with
their corners, half the brow, and leaves the other features to their own pins."""


def apply_pins(
    result: MeshLandmarks,
    pin_table: dict[str, int],
    positions: np.ndarray,
    triangles: np.ndarray,
    normals: np.ndarray | None = None,
    view: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Put the pinned landmarks on their vertices, and carry the landmarks around each pin with it
    (in place): in the view ``result`` was read in, every landmark moves by the smooth field
    (Gaussian radial basis of PIN_REACH_IOD) that takes each pinned landmark onto its pin, and is
    lifted onto the surface there. A pin the view does not see moves only its own landmark.

    ``view`` is that view's (triangle id, world position) buffers where the caller has them (they
    are rendered otherwise, with ``normals``)."""
    pin_table = {name: int(v) for name, v in pin_table.items() if name in PIN_LANDMARKS}
    if pin_table and result.camera is not None:
        positions = np.asarray(positions, np.float64)
        result.warnings += _far_pins(result, pin_table, positions)
        _carry_to_pins(result, pin_table, positions, np.asarray(triangles), normals, view)
    _apply_pins(result, pin_table, positions, triangles)


PIN_DOUBT_IOD = 0.5
"""A pin this many eye distances or more from where the detector read its feature is named in a
warning: a pin set on the other eye (left and right are the character's own) or another feature
drags the landmarks around it there. The big-eyes variant's true outer corners lie 0.1-0.15 from
the detector's."""


def _far_pins(result: MeshLandmarks, pin_table: dict[str, int], positions: np.ndarray) -> list[str]:
    ok, points = result.valid, result.points3d
    iod = _eye_distance(points, ok)
    if iod is None:
        return []
    out = []
    for name, vertex in pin_table.items():
        index = PIN_LANDMARKS[name]
        away = float(np.linalg.norm(positions[vertex] - points[index])) / max(iod, 1e-12)
        if ok[index] and away >= PIN_DOUBT_IOD:
            words = name.replace("_", " ")
            out.append(
                f"the {words} pin lies {away:.1f} eye distances from where the face detector reads the "
                f"{words}: check it is on that feature (left and right are the character's own); the "
                "landmarks around it follow it"
            )
    return out


def _carry_to_pins(
    result: MeshLandmarks,
    pin_table: dict[str, int],
    positions: np.ndarray,
    triangles: np.ndarray,
    normals,
    view: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    ok = result.valid
    camera = result.camera
    xy = camera.project(np.where(ok[:, None], result.points3d, 0.0))[0]
    iod_px = _eye_distance(xy, ok)
    if iod_px is None:
        return
    if view is None:
        normals = (
            _vertex_normals(positions, triangles) if normals is None else np.asarray(normals, np.float64)
        )
        tri_id, _, world, _ = _raster_view(positions, triangles, normals, camera)
    else:
        tri_id, world = view
    radius = float(np.linalg.norm(positions - positions.mean(axis=0), axis=1).max())
    centres, shifts = [], []
    for name, vertex in pin_table.items():
        index = PIN_LANDMARKS[name]
        target = camera.project(positions[vertex][None])[0][0]
        column, row = np.clip(
            np.round(target - 0.5).astype(int), 0, [tri_id.shape[1] - 1, tri_id.shape[0] - 1]
        )
        seen = (
            tri_id[row, column] >= 0
            and np.linalg.norm(world[row, column] - positions[vertex]) < 0.02 * radius
        )
        if ok[index] and seen:
            centres.append(xy[index])
            shifts.append(target - xy[index])
    if not centres or iod_px <= 0:
        return
    centres, shifts = np.array(centres), np.array(shifts)
    sigma2 = 2.0 * (PIN_REACH_IOD * iod_px) ** 2

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / sigma2)

    weights = np.linalg.solve(kernel(centres, centres) + 1e-6 * np.eye(len(centres)), shifts)
    field = kernel(xy, centres) @ weights
    moving = ok & (np.linalg.norm(field, axis=1) > 1e-3)
    if not moving.any():
        return
    lifted, lift_ok, lift_tri, lift_bary = _lift(
        xy[moving] + field[moving], tri_id, world, triangles, positions, 0.01 * radius
    )
    index = np.nonzero(moving)[0][lift_ok]
    result.points3d[index] = lifted[lift_ok]
    result.tri_id[index] = lift_tri[lift_ok]
    result.bary[index] = lift_bary[lift_ok]


def _apply_pins(
    result: MeshLandmarks, pin_table: dict[str, int], positions: np.ndarray, triangles: np.ndarray
) -> None:
    for name, vertex in pin_table.items():
        index = PIN_LANDMARKS[name]
        tri, bary = _vertex_triangle(triangles, vertex)
        if tri < 0:
            result.warnings.append(f"Pin {name!r} is on vertex {vertex}, which no triangle uses; ignored.")
            continue
        result.points3d[index] = positions[vertex]
        result.valid[index] = True
        result.tri_id[index] = tri
        result.bary[index] = bary


def _pins_only(
    pin_table, positions, triangles, center, radius, forward, up, image_size, warnings
) -> MeshLandmarks:
    points3d = np.full((NUM_LANDMARKS, 3), np.nan)
    result = MeshLandmarks(
        points3d=points3d,
        valid=np.zeros(NUM_LANDMARKS, bool),
        tri_id=np.full(NUM_LANDMARKS, -1, np.int32),
        bary=np.zeros((NUM_LANDMARKS, 3), np.float32),
        camera=None,  # type: ignore[arg-type]
        forward=np.zeros(3),
        up=np.zeros(3),
        source="pins",
        warnings=warnings,
    )
    _apply_pins(result, pin_table, positions, triangles)
    p = {name: positions[v] for name, v in pin_table.items()}
    right = np.mean([p[n] for n in ("right_eye_outer", "right_eye_inner") if n in p], axis=0)
    left = np.mean([p[n] for n in ("left_eye_outer", "left_eye_inner") if n in p], axis=0)
    lower = np.mean([p[n] for n in ("mouth_right", "mouth_left", "nose_tip", "chin") if n in p], axis=0)
    across = _unit(left - right)
    face_up = (left + right) / 2 - lower
    face_up = _unit(face_up - across * (face_up @ across))
    face_forward = _unit(np.cross(across, face_up))
    if forward is not None:
        face_forward = _unit(forward)
        face_up = _unit(face_up - face_forward * (face_up @ face_forward))
    result.forward, result.up = face_forward, face_up
    result.facing = "given" if forward is not None else "pins"
    result.camera = _frame_camera(center, radius, face_forward, face_up, image_size)
    return result


__all__ = ["AXES", "MeshLandmarks", "detect_mesh_landmarks", "PIN_NAMES"]


VIEW_IOD_PX = 96.0
"""Eye distance, in pixels, of the render ``detect_from_camera`` reads: the face landmarker reads a
face from a crop of about 3.3 eye distances resized to 256 pixels (about 78 pixels per eye distance),
so a larger render only costs time (a 1024-pixel portrait of the scanned head, eyes 160 pixels
apart, was rendered at full size: 0.15 s of its 0.24 s)."""


def _scaled(camera: Camera, scale: float) -> Camera:
    """The same view at ``scale`` times the pixels (same field of view, same pose)."""
    width, height = max(1, round(camera.width * scale)), max(1, round(camera.height * scale))
    sx, sy = width / camera.width, height / camera.height
    return Camera(
        camera.fx * sx, camera.fy * sy, camera.cx * sx, camera.cy * sy, camera.R, camera.t, width, height
    )


def detect_from_camera(
    positions: np.ndarray,
    triangles: np.ndarray,
    camera: Camera,
    landmarker: FaceLandmarker,
    near_xy: np.ndarray | None = None,
    normals: np.ndarray | None = None,
    interocular: float | None = None,
    photo: np.ndarray | None = None,
    steady: bool = True,
    eyes=None,
    pins: dict[str, int] | None = None,
) -> MeshLandmarks | None:
    """Landmarks detected on a render of the mesh from a given camera (the portrait's, once registered).

    The detector places a landmark on slightly different surface points when the head is seen from
    different sides (measured on the scanned head: 3-7 % of the eye distance between a frontal and a
    30-degree view). Detecting on the mesh from the portrait's own viewpoint makes that bias the same
    on both sides, so it cancels in the registration. Returns None when no face is found; with several,
    the one whose centre is nearest ``near_xy`` (``camera``'s pixels).

    ``interocular`` (the face's eye distance in ``camera``'s pixels) lets the render shrink to
    VIEW_IOD_PX per eye distance; the landmarks are then in the smaller render's pixels, and
    ``camera`` of the result is that render's. ``photo`` (the portrait ``camera`` sees) lends the
    render its light (``fit_light``), so that the detector's light-dependent bias cancels too.
    ``steady`` averages the landmarks over views of the render (``face.steady_landmarks``), as the
    portrait's were: only then, or the two sets are read differently and their biases do not cancel.
    ``eyes`` (``eyes.Eyes``) are painted on the render, for a photo whose eyes are open. ``pins``
    (the artist's, name -> vertex) are applied as everywhere (``apply_pins``), in this render.
    """
    if normals is None:
        normals = _vertex_normals(positions, triangles)
    scale = 1.0 if not interocular else min(1.0, VIEW_IOD_PX / float(interocular))
    camera = _scaled(camera, scale) if scale < 1.0 else camera
    image, tri_id, _, world = render_lit_like(
        positions, triangles, np.asarray(normals, np.float64), camera, photo
    )
    if eyes is not None:
        from .eyes import paint

        image = paint(image, world, tri_id, eyes, _ALBEDO)
    faces = landmarker.detect(image)
    if not faces:
        return None
    if near_xy is not None:
        near = np.asarray(near_xy, np.float64) * scale
        faces.sort(key=lambda f: float(np.linalg.norm(np.nanmean(f.landmarks, axis=0) - near)))
    face = faces[0]
    if steady:  # the two sets' jitter is independent: unsteadied, it is fitted as the faces' difference
        # Read at the render's own scale: cropped down to the photo's 64 pixels per eye distance, the
        # detector's input quantisation read two copies of one mesh, moved, differently (Blender's
        # OBJ import against the same head scaled 0.01: textures 3.6/255 apart; 0.7 at this scale).
        face = steady_landmarks(face, read_views(landmarker, image, face, iod_px=face.interocular))
    radius = float(np.linalg.norm(positions - positions.mean(axis=0), axis=1).max())  # turns with the mesh
    points, ok, tri, bary = _lift(face.landmarks, tri_id, world, triangles, positions, 0.02 * radius)
    if ok.sum() < 0.9 * NUM_LANDMARKS:
        return None
    reshaped = np.zeros(len(points), bool)
    frame = _face_frame(np.where(ok[:, None], points, np.nan))
    if frame is not None:  # the nose followed in this view too (it moves its neighbours with it)
        points, ok, tri, bary, reshaped = _follow_nose(
            points, ok, tri, bary, positions, triangles, normals, camera, frame, (tri_id, world)
        )
    found = MeshLandmarks(
        points,
        ok,
        tri,
        bary,
        camera,
        camera.R[2] * -1.0,
        -camera.R[1],
        "detected",
        float(face.score),
        "portrait view",
        face.landmarks,
        image,
        reshaped=reshaped,
    )
    if pins:
        apply_pins(found, pins, positions, triangles, view=(tri_id, world))
    return found
