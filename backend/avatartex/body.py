"""Full-body characters: find the head of a character mesh, and texture that region only.

The facing search (``landmarks.detect_mesh_landmarks``) frames the whole mesh, so on a full-body
character the face is a few dozen pixels and may not be found, and the pipeline would then treat the
whole body as one big head. Here a mesh whose bounding box is far from a head's proportions is searched
as a body:

1. **Where is the head?** For each candidate up axis (the mesh's own up hint first, then the axes by
   the mesh's extent along them), the top of the mesh along it (a ball around its crown that holds a
   head and shoulders of any proportions) is searched with the normal facing search. The first face
   the detector vouches for, upright along that axis, wins.
2. **How far does it reach?** From the face's frame (eyes, mouth, nose), the neck is where the
   cross-section below the chin is narrowest (surface samples in slices along the head's up axis, the
   radius holding 90 % of them around the neck's centre); the cut is the middle of that narrow run.
   The head is the connected part of the surface above the cut that holds the face (plus the pieces
   lying wholly inside the head, such as separate eyes or teeth).
3. The steps (register, project, stages, bake) then run on that **head part** alone, a sub-mesh with
   the character's own UVs, so they see a head as usual and its texels land where the body's UV map
   has them.
4. ``compose`` puts the head texture on the head region through a mask feathered along the neck (a
   band of ``BAND_FRACTION`` of the head height, measured along the neck's axis, which on a neck is the
   distance along the surface) and keeps, or skin-fills, the body.

Tone matching (``GenerateParams.tone_match``) moves one side's skin by the difference of the two
median Lab colours measured in rings just outside the band: the face's just above it, the body's just
below it on the neck.

- ``body_to_face``: body texels whose colour is skin-like (within ``SKIN_DELTA_E`` of the body's neck
  tone, fully below the first value and fading to nothing at the second) are moved towards the face's
  tone, in proportion; clothes, hair and every other texel outside the band are unchanged bit for bit.
- ``face_to_body``: the head texture's skin-like texels are moved towards the body's tone; every texel
  outside the head region and the band is the base texture's bit for bit.
- ``none``: only the head region and the band change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atlas import HeadFrame
from .face import CHIN, LEFT_EYE_CONTOUR, MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP, RIGHT_EYE_CONTOUR
from .imaging import from_lab, smoothstep, to_lab
from .landmarks import AXES, TRUSTED_SCORE, MeshLandmarks, detect_mesh_landmarks
from .mesh import Mesh, surface_points, welded_parts
from .meshframe import normalized
from .protocol import AvatarTexError, ErrorCode, GenerateParams
from .uvtiles import UDIM_TOKEN, tile_files

TONE_MATCHES = ("body_to_face", "face_to_body", "none")
"""Values of ``GenerateParams.tone_match``."""
BODY_RATIO = 3.0
"""Longest over shortest extent of the bounding box from which a mesh is searched as a body (a head,
with or without shoulders, is 1.1-1.8; a standing or T-posed character 4-8). Not 2: a scanned head
with its back cut away (an open-back bust, 2.45) was searched as a body first, from ten axes, and
took 14.7 s to analyse instead of 2.1."""
CROWN_BALL = 0.2
"""Radius of the region searched for the head, as a share of the mesh's extent along the candidate
up axis; its centre is half that below the crown (a realistic head and shoulders, or a chibi head)."""
BAND_FRACTION = 0.05
"""Width of the blend band along the neck, as a share of the head's height (neck cut to crown)."""
RING_IOD = 0.25
"""Width of the rings beside the band where the two tones are measured, in eye distances."""
MARGIN_IOD = 0.3
"""Head part kept below the band, in eye distances: the atlas sees some neck under the blend."""
SKIN_DELTA_E = (12.0, 24.0)
"""Lab distance from the measured skin tone below which a texel is moved fully, and from which not at
all (tone matching)."""
WHOLE_HEAD = 0.97
"""A head part holding this share of the mesh's triangles is the whole mesh: textured as a head."""
NECK_TILT_MAX_DEG = 30.0
"""Largest angle between the neck's axis and the face's up axis (``find_neck``). A neck leans forward
a little under a head held up; a scanned bust set on a body leaned its slices' centres 52° (the body's
shoulders inside the bust's): the cut, square to that axis, ran from the chest at the front to high
on the neck at the back, painting skin over the shirt and leaving the old neck under the new head."""
NECK_STEP_WARN = 10.0
"""CIELAB distance between the head's and the body's skin across the neck (``neck_tone_step``) from
which the texture is said to show a seam there."""


@dataclass
class HeadPart:
    """The head of a full-body character, in the coordinates of the normalised whole mesh."""

    mesh: Mesh
    """The head sub-mesh, centred and scaled to unit size: ``(whole - centre) / scale``."""
    centre: np.ndarray
    scale: float
    whole: Mesh
    """The whole character (normalised as the cache normalises it), for its UV map."""
    head_triangles: np.ndarray
    """(T,) bool over the whole mesh's triangles: the head (above the cut, and the band)."""
    part_triangles: np.ndarray
    """(t,) indices into the whole mesh's triangles of ``mesh``'s triangles."""
    frame: HeadFrame
    """The face's frame in the whole mesh's coordinates (scale: the eye distance)."""
    neck_point: np.ndarray
    """(3,) centre of the neck at the cut."""
    neck_axis: np.ndarray
    """(3,) unit axis of the neck, towards the head."""
    neck_radius: float
    """Radius of the neck at the cut, whole-mesh units."""
    band: float
    """Width of the blend band along the neck, whole-mesh units."""
    head_height: float
    """Crown above the cut along the neck's axis, whole-mesh units."""
    axis_searched: str
    """The up axis whose top held the face (``+y``, ``up`` for the mesh's own hint...)."""
    layouts: dict[tuple, TexelLayout] = field(default_factory=dict)

    def heights(self, points: np.ndarray) -> np.ndarray:
        """Signed height of points above the neck's cut along its axis, in eye distances."""
        return (np.asarray(points, np.float64) - self.neck_point) @ self.neck_axis / self.frame.scale

    def weight(self, points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """Head mask (0 body, 1 head) of surface points on the given whole-mesh triangles."""
        smooth = smoothstep((self.heights(points) * self.frame.scale + self.band / 2) / self.band)
        return np.where(self.head_triangles[triangles], smooth, 0.0).astype(np.float32)

    def layout(
        self, height: int, width: int, tile: tuple[int, int] = (0, 0), material: int | None = None
    ) -> TexelLayout:
        """The texels of an image of that size for one UV tile (``uvtiles``) and material (the
        whole mesh's ``parts``; None: all): surface, heights, mask (cached per size, tile, material)."""
        key = (height, width, tile, material)
        if key not in self.layouts:
            self.layouts[key] = _texel_layout(self, height, width, tile, material)
        return self.layouts[key]


@dataclass
class TexelLayout:
    """The whole mesh's UV map rasterised at one image size, with the head mask of each texel."""

    covered: np.ndarray
    """(H, W) bool: a texel of some triangle."""
    weight: np.ndarray
    """(H, W) float32 head mask, 0 outside the head region and on uncovered texels."""
    height: np.ndarray
    """(H, W) float32 height above the cut in eye distances, NaN where uncovered."""
    neck: np.ndarray
    """(H, W) bool: covered texels on the neck's surface (near its axis, around the cut)."""
    head: np.ndarray
    """(H, W) bool: texels of the head region's triangles."""
    cache: dict[str, Any] = field(default_factory=dict)


# -- finding the head ------------------------------------------------------------------------------
def principal_extents(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mesh's extents along its principal axes, longest first, and those axes (rows): the box
    that turns with the mesh, where the file's axis-aligned box does not."""
    points = np.asarray(positions, np.float64)
    points = points - points.mean(axis=0)
    _, axes = np.linalg.eigh(points.T @ points)
    axes = axes[:, ::-1].T
    return np.ptp(points @ axes.T, axis=0), axes


def is_body_shaped(positions: np.ndarray) -> bool:
    """True when the mesh is too elongated for a head (``BODY_RATIO``), measured along its principal
    axes: a standing character turned 45 degrees about two axes has an axis-aligned box of a head's
    proportions (2 of 10 random turns of the test character were textured as one big head)."""
    extent, _ = principal_extents(positions)
    return bool(extent.max() > BODY_RATIO * max(float(extent.min()), 1e-12))


def _candidate_axes(positions: np.ndarray, up: np.ndarray | None) -> list[tuple[str, np.ndarray]]:
    """Up axes to look for the head along: the given up, the file's axes (longest extent first),
    then the mesh's own longest and second principal axes (a character turned in its file)."""
    extent = np.ptp(positions, axis=0)
    out = []
    if up is not None and np.linalg.norm(up) > 1e-9:
        out.append(("up", np.asarray(up, np.float64) / np.linalg.norm(up)))
    for k in np.argsort(-extent, kind="stable"):
        for sign in ("+", "-"):
            name = sign + "xyz"[k]
            axis = np.asarray(AXES[name], np.float64)
            if not any(abs(axis @ a - 1.0) < 1e-6 for _, a in out):
                out.append((name, axis))
    _, principal = principal_extents(positions)
    for k, axis in enumerate(principal[:2]):
        for sign in (1.0, -1.0):
            if not any(abs(sign * axis @ a - 1.0) < 1e-3 for _, a in out):
                out.append((f"{'+' if sign > 0 else '-'}principal{k}", sign * axis))
    return out


def submesh(mesh: Mesh, triangles: np.ndarray) -> tuple[Mesh, np.ndarray]:
    """The mesh of the given triangle indices, vertices compacted; returns it and the old vertex ids."""
    tri = np.asarray(mesh.triangles)[triangles]
    used, local = np.unique(tri, return_inverse=True)
    pins = {}
    lookup = {int(v): i for i, v in enumerate(used)}
    for name, vertex in mesh.pins.items():
        if int(vertex) in lookup:
            pins[name] = lookup[int(vertex)]
    part = Mesh(
        positions=np.ascontiguousarray(mesh.positions[used], np.float32),
        triangles=np.ascontiguousarray(local.reshape(-1, 3), np.int32),
        uvs=None if mesh.uvs is None else np.ascontiguousarray(mesh.uvs[triangles]),
        normals=None if mesh.normals is None else np.ascontiguousarray(mesh.normals[used]),
        pins=pins,
        name=mesh.name,
        up=mesh.up,
        forward=mesh.forward,
        parts=None if mesh.parts is None else np.ascontiguousarray(mesh.parts[triangles]),
        part_names=list(mesh.part_names),
    )
    return part, used


def _frame(points3d: np.ndarray) -> HeadFrame:
    def centre(indices) -> np.ndarray:
        return np.nanmean(points3d[list(indices)], axis=0)

    return HeadFrame.from_landmarks(
        centre(RIGHT_EYE_CONTOUR),
        centre(LEFT_EYE_CONTOUR),
        centre([MOUTH_RIGHT, MOUTH_LEFT]),
        points3d[NOSE_TIP],
    )


def find_face(
    mesh: Mesh, landmarker: Any, forward: np.ndarray | None = None
) -> tuple[MeshLandmarks, Mesh, np.ndarray, str] | None:
    """The face of a character: the normal facing search on the top of the mesh along each candidate
    up axis in turn. Returns the landmarks (on the searched region), that region, its triangles in
    ``mesh`` and the axis's name; None when no region shows a face."""
    positions = np.asarray(mesh.positions, np.float64)
    triangles = np.asarray(mesh.triangles)
    centroids = positions[triangles].mean(axis=1)
    for name, axis in _candidate_axes(positions, mesh.up):
        height = positions @ axis
        extent = float(np.ptp(height))
        crown = positions[height > height.max() - 0.03 * extent].mean(axis=0)
        centre = crown - 0.5 * CROWN_BALL * extent * axis
        region = np.flatnonzero(np.linalg.norm(centroids - centre, axis=1) < CROWN_BALL * extent)
        if len(region) < 100 or len(region) > 0.9 * len(triangles):
            continue
        part, _ = submesh(mesh, region)
        try:
            found = detect_mesh_landmarks(
                part.positions,
                part.triangles,
                landmarker,
                up=axis,
                forward=forward,
                normals=part.normals,
                past_hints=False,  # each candidate up in turn: a wrong one is passed over, not searched past
            )
        except AvatarTexError as exc:
            if exc.code != ErrorCode.NO_FACE_ON_MESH:
                raise
            continue
        if found.source.startswith("detected") and found.score >= TRUSTED_SCORE and found.up @ axis > 0.3:
            return found, part, region, name
    return None


def find_neck(
    positions: np.ndarray, triangles: np.ndarray, frame: HeadFrame, chin: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """(centre at the cut, axis towards the head, radius) of the neck: the narrowest cross-section
    between the chin and the shoulders, in slices along the face's up axis (mesh units)."""
    iod = frame.scale
    near = np.linalg.norm(positions[triangles].mean(axis=1) - frame.origin, axis=1) < 6 * iod
    points, _, _ = surface_points(positions, triangles[near], 300.0 / iod**2)
    q = frame.to_head(points)
    chin_y = float(frame.to_head(chin)[1])
    levels = np.arange(chin_y, chin_y - 3.0, -0.1)
    radii, centres = np.full(len(levels), np.inf), np.zeros((len(levels), 2))
    for i, y in enumerate(levels):
        slab = q[np.abs(q[:, 1] - y) < 0.1]
        slab = slab[np.hypot(slab[:, 0], slab[:, 2] + 0.3) < 2.5]
        if len(slab) < 12:
            continue
        centre = np.median(slab[:, [0, 2]], axis=0)
        r = np.hypot(slab[:, 0] - centre[0], slab[:, 2] - centre[1])
        radii[i], centres[i] = np.percentile(r, 90), centre
    if not np.isfinite(radii).any():
        raise AvatarTexError(
            ErrorCode.NO_FACE_ON_MESH,
            "A face was found on the character, but no neck below it.",
            "Texture the head as its own mesh, or check the mesh is a character.",
        )
    best = int(np.argmin(radii))
    narrow = radii <= 1.12 * radii[best]
    lo = hi = best
    while lo > 0 and narrow[lo - 1]:
        lo -= 1
    while hi < len(levels) - 1 and narrow[hi + 1]:
        hi += 1
    cut = (lo + hi) // 2
    y, (x, z) = levels[cut], centres[cut]
    above, below = max(cut - 5, lo), min(cut + 5, hi)
    axis = frame.axes[1]
    if above != below:
        top = np.array([centres[above][0], levels[above], centres[above][1]])
        bottom = np.array([centres[below][0], levels[below], centres[below][1]])
        direction = (top - bottom) @ frame.axes
        axis = direction / np.linalg.norm(direction)
    point = frame.origin + iod * np.array([x, y, z]) @ frame.axes
    return point, _tilted_at_most(axis, frame.axes[1], NECK_TILT_MAX_DEG), float(radii[cut]) * iod


def _tilted_at_most(axis: np.ndarray, up: np.ndarray, degrees: float) -> np.ndarray:
    """``axis`` (unit) turned towards ``up`` (unit) until it is at most ``degrees`` from it."""
    along = float(np.clip(axis @ up, -1.0, 1.0))
    if np.degrees(np.arccos(along)) <= degrees:
        return axis
    side = axis - along * up
    if np.linalg.norm(side) < 1e-9:  # pointing down the head: no side to lean to
        return up.copy()
    side /= np.linalg.norm(side)
    angle = np.radians(degrees)
    return np.cos(angle) * up + np.sin(angle) * side


def _components(triangles: np.ndarray, positions: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """(T,) component label of each chosen triangle (``mesh.welded_parts``: vertices at one position
    are one vertex), -1 for the others."""
    out = np.full(len(triangles), -1)
    out[chosen] = welded_parts(positions, triangles[chosen])[1]
    return out


def head_part(mesh: Mesh, landmarker: Any, forward: np.ndarray | None = None) -> HeadPart | None:
    """The head of a full-body character (``mesh`` normalised as the cache normalises it), or None
    for a mesh that is a head (not body-shaped, or its head part is nearly all of it) or shows no
    face from any candidate up axis (the normal search then runs and says so)."""
    positions = np.asarray(mesh.positions, np.float64)
    if not is_body_shaped(positions):
        return None
    found = find_face(mesh, landmarker, forward)
    if found is None:
        return None
    landmarks, region_mesh, region, axis_name = found
    frame = _frame(landmarks.points3d)
    iod = frame.scale
    triangles = np.asarray(mesh.triangles)
    neck_point, neck_axis, neck_radius = find_neck(positions, triangles, frame, landmarks.points3d[CHIN])

    heights = (positions - neck_point) @ neck_axis / iod  # eye distances
    corner_h = heights[triangles]
    centroids = positions[triangles].mean(axis=1)
    radial = centroids - neck_point - np.outer((centroids - neck_point) @ neck_axis, neck_axis)
    # A first band from the head's typical height (4.5 eye distances); the head's own height below.
    band = BAND_FRACTION * 4.5
    reach = band / 2 + MARGIN_IOD
    chosen = (corner_h.max(axis=1) > -reach) & (np.linalg.norm(radial, axis=1) < 4.0 * iod)
    labels = _components(triangles, positions, chosen)
    face_triangles = region[landmarks.tri_id[landmarks.valid]]
    face_labels = labels[face_triangles]
    face_labels = face_labels[face_labels >= 0]
    if len(face_labels) == 0:
        return None
    face_label = np.bincount(face_labels).argmax()
    head = labels == face_label
    # Pieces lying wholly above the band and near the face: separate eyes, teeth, lashes, hair cards.
    distance = np.linalg.norm(centroids - frame.origin, axis=1) / iod
    for label in np.unique(labels[chosen & ~head]):
        members = labels == label
        if corner_h[members].min() > band / 2 and distance[members].max() < 3.5:
            head |= members
    head_height = float(corner_h[head].max()) * iod
    band = BAND_FRACTION * head_height
    keep = head & (corner_h.max(axis=1) > -(band / 2 / iod + MARGIN_IOD))
    if keep.sum() > WHOLE_HEAD * len(triangles):
        return None
    part_triangles = np.flatnonzero(keep)
    part, _ = submesh(mesh, part_triangles)
    # The search on the head part starts from the face found: one straight-on view, not 26.
    part.up, part.forward = landmarks.up, landmarks.forward
    part, centre, scale = normalized(part)
    return HeadPart(
        mesh=part,
        centre=centre,
        scale=scale,
        whole=mesh,
        head_triangles=head & (corner_h.max(axis=1) > -band / 2 / iod),
        part_triangles=part_triangles,
        frame=frame,
        neck_point=neck_point,
        neck_axis=neck_axis,
        neck_radius=neck_radius,
        band=band,
        head_height=head_height,
        axis_searched=axis_name,
    )


# -- the texels ------------------------------------------------------------------------------------
def _texel_layout(
    part: HeadPart, height: int, width: int, tile: tuple[int, int], material: int | None
) -> TexelLayout:
    from .raster import interpolate, rasterize_uv
    from .uvtiles import in_tile

    whole = part.whole
    side = max(height, width)
    chosen = None if material is None or whole.parts is None else np.flatnonzero(whole.parts == material)
    uvs = in_tile(whole.uvs, tile, chosen).astype(np.float64)
    # A non-square image: its texel centres are those of the top-left corner of a square one.
    uvs[..., 0] *= width / side
    uvs[..., 1] = 1.0 - (1.0 - uvs[..., 1]) * height / side
    tri_id, bary = rasterize_uv(uvs, side)
    tri_id, bary = tri_id[:height, :width], bary[:height, :width]
    covered = tri_id >= 0
    points = interpolate(whole.positions, whole.triangles, tri_id, bary)[covered]
    tri = tri_id[covered]
    weight = np.zeros((height, width), np.float32)
    weight[covered] = part.weight(points, tri)
    h = np.full((height, width), np.nan, np.float32)
    h[covered] = part.heights(points)
    offset = points - part.neck_point
    radial = np.linalg.norm(offset - np.outer(offset @ part.neck_axis, part.neck_axis), axis=1)
    neck = np.zeros((height, width), bool)
    neck[covered] = radial < 1.6 * part.neck_radius
    head = np.zeros((height, width), bool)
    head[covered] = part.head_triangles[tri]
    return TexelLayout(covered, weight, h, neck, head)


def _head_padding(layout: TexelLayout, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(targets, sources) flat indices: uncovered texels within ``pad`` of an island whose nearest
    covered texel is in the head region or the band, and that texel."""
    from .raster import padding_index

    key = f"pad{pad}"
    if key not in layout.cache:
        targets, sources, _ = padding_index(layout.covered, pad)
        head = layout.weight.reshape(-1)[sources] > 0
        layout.cache[key] = (targets[head], sources[head])
    return layout.cache[key]


def rings(layout: TexelLayout, band_iod: float) -> tuple[np.ndarray, np.ndarray]:
    """(above, below): the neck's texels in the rings just outside the band, head side and body side."""
    half = band_iod / 2
    with np.errstate(invalid="ignore"):
        above = layout.neck & layout.head & (layout.height >= half) & (layout.height < half + RING_IOD)
        below = layout.neck & (layout.height <= -half) & (layout.height > -half - RING_IOD)
    return above, below


def neck_tone_step(
    part: HeadPart, texture: np.ndarray, tile: tuple[int, int] = (0, 0), material: int | None = None
) -> dict[str, float]:
    """How the colour changes across the blend band along the neck, in a texture of the whole mesh
    (of its UV tile ``tile``).

    ``delta_e``: Lab distance (CIE76) between the skin's tones (``ring_tone``) of the rings just
    above and just below the band; ``max_step``: the largest distance between the tones of
    neighbouring slices, a quarter of the band thick, from one ring through the band to the other.
    """
    texture = np.asarray(texture)
    if np.issubdtype(texture.dtype, np.integer):
        texture = texture.astype(np.float32) / np.iinfo(texture.dtype).max
    layout = part.layout(*texture.shape[:2], tile, material)
    band_iod = part.band / part.frame.scale
    above, below = rings(layout, band_iod)
    out = {"delta_e": float("nan"), "max_step": float("nan")}
    if above.sum() < 8 or below.sum() < 8:
        return out
    lab = to_lab(texture[..., :3])
    # On the skin the rings and slices hold (``ring_tone``): a shirt across them is no tone step.
    out["delta_e"] = float(np.linalg.norm(ring_tone(lab[above]) - ring_tone(lab[below])))
    step = band_iod / 4
    edges = np.arange(-band_iod / 2 - RING_IOD, band_iod / 2 + RING_IOD + 1e-9, step)
    medians = []
    with np.errstate(invalid="ignore"):
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            sel = layout.neck & (layout.height >= a) & (layout.height < b)
            if sel.sum() >= 4:
                medians.append(ring_tone(lab[sel]))
    if len(medians) >= 2:
        out["max_step"] = float(np.linalg.norm(np.diff(np.array(medians), axis=0), axis=1).max())
    return out


# -- the request -----------------------------------------------------------------------------------
def _unreadable(path: str, why: str) -> AvatarTexError:
    return AvatarTexError(
        ErrorCode.BASE_TEXTURE_UNREADABLE,
        f"The base texture {path!r} cannot be used: {why}.",
        "Pass the path of the material's base-colour image (PNG, JPEG, TIFF; 8 or 16 bit), or none.",
    )


def read_base(path: str) -> np.ndarray:
    """The base texture's pixels as stored: (H, W, 3 or 4) uint8 or uint16, RGB(A) order."""
    import cv2

    if not Path(path).is_file():
        raise _unreadable(path, "no such file")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype not in (np.uint8, np.uint16) or raw.ndim not in (2, 3):
        raise _unreadable(path, "not an 8- or 16-bit image OpenCV can read")
    if raw.ndim == 2:
        raw = raw[..., None]
    if raw.shape[2] == 1:
        raw = np.repeat(raw, 3, axis=2)
    elif raw.shape[2] == 2:  # grey + alpha
        raw = np.concatenate([np.repeat(raw[..., :1], 3, axis=2), raw[..., 1:]], axis=2)
    order = [2, 1, 0, 3][: raw.shape[2]]
    return np.ascontiguousarray(raw[..., order])


def prepare(params: GenerateParams) -> GenerateParams:
    """Check the request's body fields; with a base texture, the output takes its bit depth and, when
    it is square and 512-4096, its size (the head is baked at that size, no resampling)."""
    if params.tone_match not in TONE_MATCHES:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"Unknown tone_match {params.tone_match!r}.",
            f"Use one of {', '.join(TONE_MATCHES)}.",
        )
    if not params.base_texture:
        return params
    path = params.base_texture
    if UDIM_TOKEN in path:  # a set of UDIM tiles (name.<UDIM>.png): they share size and depth
        path = str(next(iter(tile_files(path, ErrorCode.BASE_TEXTURE_UNREADABLE).values())))
    raw = read_base(path)  # read whole: PIL reports 16-bit colour PNGs as 8-bit
    height, width = raw.shape[:2]
    bit_depth = 16 if raw.dtype == np.uint16 else 8
    size = width if width == height and 512 <= width <= 4096 else params.size
    return dataclasses.replace(params, size=size, bit_depth=bit_depth)


def skin_weight(lab: np.ndarray, tone: np.ndarray) -> np.ndarray:
    distance = np.linalg.norm(lab - tone, axis=-1)
    lo, hi = SKIN_DELTA_E
    return np.clip((hi - distance) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _skin_like(lab: np.ndarray) -> np.ndarray:
    """Per colour (..., 3) CIELAB: a warm hue (reds to yellows) with some colour, skin of any tone,
    not a blue or grey collar."""
    hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))
    return (np.hypot(lab[..., 1], lab[..., 2]) > 4.0) & (hue >= -10.0) & (hue <= 100.0)


def plausible_skin(lab: np.ndarray) -> bool:
    """Whether one colour (3,) is skin-like (``_skin_like``)."""
    return bool(_skin_like(np.asarray(lab)))


RING_SKIN_SHARE = 0.25
"""Share of the ring below the neck's band that must look like skin (``_skin_like``) for the body's
tone to be read there, on those texels alone: a collar or a shirt across part of the ring (a scanned
bust set on a body, its shirt up to the neck in front) made the ring's median a shirt colour, and the
tone match was skipped with the old neck showing under the new head."""


def ring_tone(ring_lab: np.ndarray) -> np.ndarray:
    """The skin's tone in a ring round the neck (N, 3) CIELAB: the median of its skin-like texels
    where they are ``RING_SKIN_SHARE`` of it at least (and 8), else of all of it."""
    skin = _skin_like(ring_lab)
    if skin.sum() >= max(8, RING_SKIN_SHARE * len(ring_lab)):
        return np.median(ring_lab[skin], axis=0)
    return np.median(ring_lab, axis=0)


def tone_mode(
    mode: str, face_tone: np.ndarray | None, body_tone: np.ndarray | None, warnings: list[str], between: str
) -> str:
    """The tone match ``mode`` as it can be done: ``none`` (said) where either side's tone was not read
    beside ``between`` (what lies between the two rings) or the body's does not look like skin."""
    if mode == "none":
        return mode
    if face_tone is None or body_tone is None:
        warnings.append(f"tone_match {mode} skipped: too little neck on either side of {between}")
        return "none"
    if not plausible_skin(body_tone):
        warnings.append(
            f"tone_match {mode} skipped: the neck below the head does not look like skin "
            f"(Lab {', '.join(f'{float(v):.1f}' for v in body_tone)}; clothing?)"
        )
        return "none"
    return mode


def move_skin(
    colours: np.ndarray, tone: np.ndarray, offset: np.ndarray, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``colours`` (..., 3) float sRGB with their skin-like ones (``skin_weight`` from ``tone``) moved
    by ``offset`` (CIELAB) in proportion, and where they moved; ``keep``: those never moved."""
    lab = to_lab(colours)
    w = skin_weight(lab, tone)
    if keep is not None:
        w[keep] = 0.0
    moved = w > 0
    out = colours.copy()
    out[moved] = from_lab(lab[moved] + w[moved, None] * offset)
    return out, moved


def warn_neck_step(delta_e: float, asked: str, warnings: list[str]) -> None:
    """Say a seam across the neck where the two skins still differ by ``NECK_STEP_WARN`` or more,
    with what evens it (``asked``: the request's ``tone_match``)."""
    if delta_e < NECK_STEP_WARN:
        return
    warnings.append(
        f"the head's skin and the body's differ by ΔE {delta_e:.0f} across the neck: a "
        + (
            "seam shows there; tone_match body_to_face or face_to_body evens it"
            if asked == "none"
            else "seam shows there (the tone match could not even it); paint over the neck, or "
            "give the body a texture whose neck is skin"
        )
    )


def compose(
    part: HeadPart | None,
    head_texture: np.ndarray,
    params: GenerateParams,
    warnings: list[str],
    tile: tuple[int, int] = (0, 0),
    material: int | None = None,
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """The texture to write: ``head_texture`` (the bake of the head part, in the whole mesh's UVs,
    UV tile ``tile``, material ``material`` of the whole mesh's ``parts``) on the head region, and
    the base texture (tone-matched) or a skin fill on the body's texels in that tile and material.
    Returns it (float 0..1, or the base's own dtype and channels when there is a base) and the
    report's ``body``."""
    if part is None:
        if params.base_texture:
            warnings.append("base_texture not used: the mesh is a head, all of it textured")
        return head_texture, None
    base_path = params.base_texture
    if UDIM_TOKEN in base_path:  # the base's own file for this tile (steps.texture_files checked it)
        base_path = str(tile_files(base_path)[tile])
    base_raw = read_base(base_path) if base_path else None
    height, width = base_raw.shape[:2] if base_raw is not None else head_texture.shape[:2]
    layout = part.layout(height, width, tile, material)
    band_iod = part.band / part.frame.scale
    m = layout.weight
    head = np.asarray(head_texture, np.float32)
    if head.shape[:2] != (height, width):
        from .imaging import sample_image

        rows, cols = np.nonzero(m > 0)
        resampled = np.zeros((height, width, 3), np.float32)
        n = head.shape[0]
        xy = np.stack([(cols + 0.5) * n / width, (rows + 0.5) * n / height], axis=1)
        resampled[rows, cols] = sample_image(head, xy)
        head = resampled
    above, below = rings(layout, band_iod)
    face_tone = np.median(to_lab(head[above]), axis=0) if above.sum() >= 8 else None
    report: dict[str, Any] = {
        "head_fraction": round(float((m[layout.covered] >= 0.5).mean()), 4),
        "band_texels": int(((m > 0) & (m < 1)).sum()),
        "band_iod": round(float(band_iod), 4),
        "head_search_axis": part.axis_searched,
    }
    if base_raw is None:
        tone = face_tone
        if tone is None:
            tone = np.median(to_lab(head[layout.head & layout.covered]), axis=0)
        skin = from_lab(tone[None])[0]
        out = head.copy() if head.shape[2] == 3 else head[..., :3].copy()
        covered = layout.covered
        out[covered] = m[covered, None] * head[covered] + (1 - m[covered, None]) * skin
        from .raster import padding_index

        pad = max(2, max(height, width) // 128)
        targets, sources, _ = padding_index(covered, pad)
        flat = out.reshape(-1, 3)
        flat[targets] = flat[sources]
        step = neck_tone_step(part, out, tile, material)
        report.update(
            tone_match="skin_fill",
            base_texture=None,
            skin_rgb=[round(float(c), 4) for c in skin],
            neck_delta_e=None if not np.isfinite(step["delta_e"]) else round(step["delta_e"], 3),
        )
        report["summary"] = summary(report)
        return out, report

    peak = float(np.iinfo(base_raw.dtype).max)
    base = base_raw[..., :3].astype(np.float32) / peak
    body_tone = ring_tone(to_lab(base[below])) if below.sum() >= 8 else None
    mode = tone_mode(params.tone_match, face_tone, body_tone, warnings, "the blend band")
    offset = np.zeros(3, np.float32) if mode == "none" else (face_tone - body_tone).astype(np.float32)
    body = base
    toned = np.zeros((height, width), bool)
    if mode == "body_to_face":
        body, toned = move_skin(base, body_tone, offset, keep=m >= 1)
    elif mode == "face_to_body":
        sel = m > 0
        lab = to_lab(head[sel])
        w = skin_weight(lab, face_tone)
        head = head.copy()
        head[sel] = from_lab(lab - w[:, None] * offset)
    changed = (m > 0) | toned
    final = base.copy()
    final[changed] = m[changed, None] * head[changed] + (1 - m[changed, None]) * body[changed]
    # The head's islands are padded from the new texels (mip-maps and bilinear filtering read them);
    # padding texels nearest a body texel keep the base's.
    targets, sources = _head_padding(layout, max(2, max(height, width) // 128))
    flat, flat_changed = final.reshape(-1, 3), changed.reshape(-1)
    flat[targets] = flat[sources]
    flat_changed[targets] = True
    out = base_raw.copy()
    out[changed, :3] = (np.clip(final[changed], 0.0, 1.0) * peak + 0.5).astype(base_raw.dtype)
    before = (
        np.linalg.norm(face_tone - body_tone) if face_tone is not None and body_tone is not None else None
    )
    after = neck_tone_step(part, out, tile, material)
    if np.isfinite(after["delta_e"]):
        warn_neck_step(after["delta_e"], params.tone_match, warnings)
    report.update(
        tone_match=mode,
        base_texture=str(params.base_texture),
        changed_texels=int(changed.sum()),
        toned_body_texels=int((toned & (m == 0)).sum()),
        neck_delta_e_before=None if before is None else round(float(before), 3),
        neck_delta_e=None if not np.isfinite(after["delta_e"]) else round(after["delta_e"], 3),
        neck_max_step=None if not np.isfinite(after["max_step"]) else round(after["max_step"], 3),
    )
    report["summary"] = summary(report)
    return out, report


def summary(report: dict[str, Any]) -> str:
    """What was done to a full-body character, in a sentence for the command line and the panel (the
    report's ``body``: all of it was in report.json alone)."""
    head = f"a full-body character: its head textured ({report['head_fraction']:.0%} of its texels)"
    if report["tone_match"] == "skin_fill":
        return head + ", the body (no base texture given) filled with the face's skin tone"
    before, after = report.get("neck_delta_e_before"), report.get("neck_delta_e")
    step = f"neck ΔE {before:.0f} → {after:.1f}" if before is not None and after is not None else ""
    kept = f", the rest kept from {Path(report['base_texture']).name}"
    if report["tone_match"] == "body_to_face":
        return head + kept + ", the body's skin matched to the face's" + (f" ({step})" if step else "")
    if report["tone_match"] == "face_to_body":
        return head + kept + ", the head's skin matched to the body's" + (f" ({step})" if step else "")
    return head + kept + " as it was" + (f" (neck ΔE {after:.0f})" if after is not None else "")
