"""The photo's neck kept off a mesh's wider jaw.

A photo's face ends at its jaw: below it the photo shows the neck, in the jaw's shadow, or the
background and a collar beside it. A sculpted or stylised head whose jaw is wider or longer than the
photographed face's reaches below that line in the photo's view: the warp lays the photo's face
outline on the mesh's (``registration``), but the detector reads a wide sculpted jaw's outline inside
its silhouette (0.1-0.3 eye distances on the demo heads), so the mesh's jaw below that reading took
the photo's neck: a pale or dark band across the lower face, blotches in the styles.

Three views decide it, all cheap:

* **Whether the photo's jaw is an edge** (``jaw_edge``): a real face's jaw outline, as the detector
  reads it, runs along the edge between the face and the neck below it (the jaw's shadow, a lit
  neck, a collar): the photo's luminance steps across it. A render of a sculpture, whose outline
  the detector reads inside the jaw's silhouette just as it reads the mesh's, shows smooth jaw there
  and the photo belongs on the mesh's jaw. Only a photo whose outline is an edge loses its pixels
  beyond it.
* **The mesh's jaw front** (``mesh_jaw_front``): in the mesh's render from the registered camera,
  each column from the mouth's corners down to the jaw's lower edge: where the jaw stands before the
  neck behind it (a step in depth) or turns into its underside (a surface facing down). Below that
  edge the mesh's neck may well read the photo's neck.
* **The photo's jaw** (``below_the_jaw``): how far a photo pixel lies outside the photo's face
  outline, below its mouth.

A texel on the mesh's jaw front whose photo pixel lies beyond the photo's jaw loses the photo, as far
as that jaw is an edge (``jaw_factor``), and is filled from the face's skin, as anything else the
photo does not show.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import raster
from .camera import Camera
from .face import FACE_OVAL, LEFT_EYE_CONTOUR, MOUTH_LEFT, MOUTH_RIGHT, RIGHT_EYE_CONTOUR
from .imaging import luminance, smoothstep

JAW_STEP_IOD = 0.4
"""Eye distances of camera depth between two rows of the mesh's render from which the lower row lies
behind the jaw (the neck seen past it). A surface turning away at 84 degrees steps by this much a
row at the render's 87 pixels an eye distance; the neck stands 0.3-1 eye distance behind the jaw."""
JAW_UNDERSIDE = 0.6
"""Downward component of the head-frame normal from which the surface is the jaw's underside."""
NECK_TURN = 0.35
"""Downward component of the head-frame normal below which, past the jaw's underside, the surface is
the neck's (a camera below the chin sees the underside run on into the neck without a step)."""
UNDERSIDE_RUN_IOD = 0.1
"""Eye distances a surface facing down must run down the render to be the jaw's underside (the lower
lip's underside and the hollow under it face down over less)."""
JAW_EDGE = (0.07, 0.09)
"""Mean luminance step (0..1, gamma-encoded) across the photo's jaw outline over which the outline
counts as the face's edge (``jaw_edge``). The bench's renders of sculpted heads (``bench/sweep.py``,
every light, skin and shadow) step by 0.010-0.061 there: the detector's outline lies on the jaw;
the astronaut 0.10, Grace Hopper 0.091 (her neck in her jaw's shadow, under her collar)."""
EDGE_REACH_IOD = (0.01, 0.05)
"""Eye distances either side of the outline over which ``jaw_edge`` reads the photo's luminance."""
EDGE_BELOW_MOUTH_IOD = 0.1
"""Eye distances below the mouth's line from which the face outline is the jaw's (``jaw_edge``)."""
JAW_RENDER = 512
"""Longer side, in pixels, of the mesh's render that finds the jaw's front."""
BEYOND_JAW_IOD = (0.03, 0.11)
"""Eye distances beyond the photo's face outline (below its mouth) over which the photo gives way on
the mesh's jaw front: none within the first (the detector's outline runs a little inside a real
jaw's edge), wholly from the second."""


def mesh_jaw_front(
    positions: np.ndarray,
    triangles: np.ndarray,
    normals: np.ndarray,
    up: np.ndarray,
    mouth_corners: np.ndarray,
    camera: Camera,
    interocular_mesh: float,
) -> tuple[np.ndarray, float]:
    """(h, w) bool pixels of the mesh's render from ``camera`` (scaled to at most ``JAW_RENDER``)
    that lie between its mouth corners' row and its jaw's lower edge, column by column; and the
    render's pixels per camera pixel.

    ``up``: the head's up direction in mesh space; ``mouth_corners``: (2, 3) mesh points;
    ``interocular_mesh``: the eye distance in mesh units."""
    scale = min(1.0, JAW_RENDER / max(camera.width, camera.height))
    small = camera.scaled(scale)
    tri_id, bary, depth = raster.rasterize_camera(positions, triangles, small)
    covered = tri_id >= 0
    front = np.zeros(covered.shape, bool)
    corners, _ = small.project(np.asarray(mouth_corners, np.float64))
    if not np.isfinite(corners).all() or not covered.any():
        return front, scale
    start = int(np.clip(np.floor(corners[:, 1].mean()), 0, small.height - 1))
    normal = raster.interpolate(np.asarray(normals, np.float32), triangles, tri_id, bary)
    facing = (normal @ np.asarray(up, np.float32)) / np.maximum(np.linalg.norm(normal, axis=-1), 1e-6)
    z = np.where(covered, depth, np.float32(1e30))
    step = np.zeros_like(covered)
    step[1:] = (z[1:] - z[:-1]) > JAW_STEP_IOD * interocular_mesh
    # The jaw's underside is a band; a lower lip's or a sulcus's is a few pixels tall.
    px_per_unit = small.fy / float(np.median(depth[covered]))
    run = max(1, int(round(UNDERSIDE_RUN_IOD * interocular_mesh * px_per_unit)))
    under = cv2.morphologyEx(
        (covered & (facing < -JAW_UNDERSIDE)).astype(np.uint8), cv2.MORPH_OPEN, np.ones((run, 1), np.uint8)
    ).astype(bool)
    # Past the jaw's underside the surface turns to face the camera again: the neck.
    seen_under = np.zeros_like(under)
    seen_under[start + 1 :] = np.maximum.accumulate(under[start:-1], axis=0)
    neck = seen_under & ~under & (facing > -NECK_TURN)
    barrier = ~covered | step | neck
    below = barrier[start:]
    front[start:] = np.cumsum(below, axis=0) == 0
    return front, scale


def below_the_jaw(landmarks: np.ndarray, shape: tuple[int, int], interocular: float) -> JawDistance:
    """How far photo pixels lie outside the face outline of the photo's ``landmarks``, on the chin's
    side of the line through its mouth corners, in eye distances (``JawDistance``)."""
    oval = np.asarray(landmarks[list(FACE_OVAL)], np.float64)
    iod = max(float(interocular), 1e-6)
    if not np.isfinite(oval).all():
        return JawDistance(np.zeros((1, 1), np.float32), np.zeros(2), np.zeros(2), np.zeros(2))
    h, w = shape
    reach = BEYOND_JAW_IOD[1] * iod + 2.0
    x0, y0 = np.maximum(np.floor(oval.min(axis=0) - reach), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(oval.max(axis=0) + reach) + 1, [w, h]).astype(int)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    outline = np.zeros((y1 - y0, x1 - x0), np.uint8)
    local = np.round((oval - [x0, y0]) * 16).astype(np.int32)
    cv2.fillPoly(outline, [local], 1, lineType=cv2.LINE_8, shift=4)
    outside = cv2.distanceTransform(1 - outline, cv2.DIST_L2, 5) / np.float32(iod)
    eyes = landmarks[list(LEFT_EYE_CONTOUR)].mean(axis=0) - landmarks[list(RIGHT_EYE_CONTOUR)].mean(axis=0)
    across = eyes / max(float(np.linalg.norm(eyes)), 1e-9)
    down = np.array([-across[1], across[0]])  # the image's y grows downwards: the chin's side
    mouth = (np.asarray(landmarks[MOUTH_LEFT]) + np.asarray(landmarks[MOUTH_RIGHT])) / 2.0
    return JawDistance(outside.astype(np.float32), np.array([x0, y0], np.float64), mouth, down)


@dataclass
class JawDistance:
    """Eye distances outside the photo's face outline, in a box around it (``below_the_jaw``)."""

    outside: np.ndarray
    """(h, w) float32 over the box; beyond the box a pixel is farther than ``BEYOND_JAW_IOD``."""
    origin: np.ndarray
    """(2,) the box's first pixel (x, y) in the photo."""
    mouth: np.ndarray
    """(2,) the mouth corners' midpoint (x, y)."""
    down: np.ndarray
    """(2,) unit vector across the eyes' line towards the chin; only pixels on its side count (none
    where it is zero: no outline read)."""

    def at(self, xy: np.ndarray) -> np.ndarray:
        """(N,) eye distances beyond the jaw of photo pixels ``xy`` (N, 2); 0 above the mouth."""
        h, w = self.outside.shape
        local = np.round(xy - self.origin).astype(np.int64)
        inside = (local[:, 0] >= 0) & (local[:, 0] < w) & (local[:, 1] >= 0) & (local[:, 1] < h)
        far = np.float32(BEYOND_JAW_IOD[1] + 1.0)
        distance = np.full(len(xy), far, np.float32)
        distance[inside] = self.outside[local[inside, 1], local[inside, 0]]
        chin_side = (xy - self.mouth) @ np.asarray(self.down, np.float64) > 0
        return np.where(chin_side, distance, 0.0).astype(np.float32)


def jaw_factor(
    front: np.ndarray,
    front_scale: float,
    camera_xy: np.ndarray,
    beyond: JawDistance,
    coords: np.ndarray,
    edge: float = 1.0,
) -> np.ndarray:
    """(N,) 0..1 factor on the photo's confidence of surface points: ``1 - edge`` on the mesh's jaw
    front (``front`` read at ``camera_xy``, the points' unwarped camera pixels) where the photo pixel
    they read (``coords``) lies beyond the photo's jaw (``beyond``), 1 elsewhere; ``edge`` is how far
    the photo's jaw outline is an edge (``jaw_edge``)."""
    factor = np.ones(len(coords), np.float32)
    rows, cols = np.nonzero(front)
    if rows.size == 0:
        return factor
    # Only the points whose camera pixel lies in the front's box (a NaN pixel lies in none): the
    # atlas's million points cost 40 ms a request through every step below.
    x, y = camera_xy[:, 0] * front_scale, camera_xy[:, 1] * front_scale
    near = np.flatnonzero(
        (x >= cols.min() - 0.5) & (x < cols.max() + 0.5) & (y >= rows.min() - 0.5) & (y < rows.max() + 0.5)
    )
    near = near[np.isfinite(coords[near, 0])]
    pixel = np.round(np.c_[x[near], y[near]]).astype(np.int64)
    pixel = np.clip(pixel, 0, np.array(front.shape[::-1]) - 1)
    near = near[front[pixel[:, 1], pixel[:, 0]]]
    lo, hi = BEYOND_JAW_IOD
    cut = smoothstep((beyond.at(coords[near].astype(np.float64)) - lo) / (hi - lo))
    factor[near] = 1.0 - np.float32(edge) * cut.astype(np.float32)
    return factor


def jaw_edge(portrait: np.ndarray, landmarks: np.ndarray, beyond: JawDistance, interocular: float) -> float:
    """0..1 how far the photo's face outline below its mouth is an edge of the photo (``JAW_EDGE``):
    the mean absolute difference of the photo's luminance just inside and just outside it, across
    it (towards the chin), along the outline every sixth of a landmark's spacing."""
    oval = np.asarray(landmarks[list(FACE_OVAL)], np.float64)
    iod = float(interocular)
    if not np.isfinite(oval).all() or not np.any(beyond.down) or iod <= 0:
        return 0.0
    ring = np.r_[oval, oval[:1]]
    t = np.linspace(0.0, 1.0, 6, endpoint=False)[None, :, None]
    dense = (ring[:-1, None] + (ring[1:] - ring[:-1])[:, None] * t).reshape(-1, 2)
    chin = dense[(dense - beyond.mouth) @ beyond.down > EDGE_BELOW_MOUTH_IOD * iod]
    if len(chin) == 0:
        return 0.0
    offsets = np.linspace(*EDGE_REACH_IOD, 4) * iod
    shift = offsets[None, :, None] * beyond.down[None, None, :]
    sides = np.concatenate([chin[:, None] - shift, chin[:, None] + shift]).reshape(-1, 1, 2)
    map_x, map_y = (np.ascontiguousarray(sides[..., k], np.float32) for k in (0, 1))
    image = np.ascontiguousarray(portrait, np.float32)
    read = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    lum = luminance(read.reshape(2, len(chin), len(offsets), -1)[..., :3]).mean(axis=2)
    step = float(np.abs(lum[0] - lum[1]).mean())
    lo, hi = JAW_EDGE
    return float(smoothstep(np.float32((step - lo) / (hi - lo))))


OUTLINE_PX_PER_IOD = 64.0
"""Pixels an eye distance of the head's front view in which ``jaw_on_outline`` finds its outline."""
OUTLINE_REACH_IOD = 0.4
"""Eye distances ``jaw_on_outline`` moves a jaw landmark outwards at most: the detector reads a
sculpted jaw's outline 0.1-0.3 eye distances inside its silhouette (see the module's docstring)."""
OUTLINE_TURN = 0.25
"""Forward component of the head-frame normal below which the surface has turned away from the
front: the jaw's outline seen from straight ahead."""
OUTLINE_STEP_IOD = 0.1
"""Eye distances of depth from one front-view pixel to the next outwards from which the next lies
behind the jaw (the neck seen past it)."""


def jaw_on_outline(
    positions: np.ndarray, triangles: np.ndarray, normals: np.ndarray, frame, jaw: np.ndarray
) -> np.ndarray:
    """The mesh's jaw landmarks ``jaw`` (N, 3, mesh space, NaN where unknown, in ``JAW``'s order)
    moved outwards, across the jaw line in the head's front view, onto its outline: where the
    surface has turned away from the front (``OUTLINE_TURN``) or stands before the neck behind it
    (``OUTLINE_STEP_IOD``), at most ``OUTLINE_REACH_IOD`` (a point that finds none stays). The
    detector reads a sculpted jaw's outline inside its silhouette; an ink along the reading crossed a
    wide jaw's cheeks (comic's "second smile") and ran up the front of a scanned chin.

    ``frame``: the head's ``atlas.HeadFrame``; ``normals``: (V, 3) vertex normals in mesh space."""
    jaw = np.asarray(jaw, np.float64)
    known = np.isfinite(jaw).all(axis=1)
    if known.sum() < 3:
        return jaw
    head = frame.to_head(np.asarray(positions, np.float64))
    points = frame.to_head(jaw[known])
    px = OUTLINE_PX_PER_IOD
    reach = OUTLINE_REACH_IOD + 0.1
    low, high = points[:, :2].min(axis=0) - reach, points[:, :2].max(axis=0) + reach
    width, height = (np.ceil((high - low) * px)).astype(int) + 1

    def pixel(xy: np.ndarray) -> np.ndarray:  # head-frame x, y (up) -> render x, y (down)
        return np.c_[(xy[:, 0] - low[0]) * px, (high[1] - xy[:, 1]) * px]

    tris = np.asarray(triangles, np.int64)
    tri_id, bary, depth = raster.rasterize_triangles(
        pixel(head[:, :2])[tris], -head[tris][..., 2], height, width
    )
    covered = tri_id >= 0
    forward = raster.interpolate(
        frame.directions_to_head(np.asarray(normals, np.float64)).astype(np.float32), tris, tri_id, bary
    )[..., 2]
    at = pixel(points[:, :2])
    # Outwards: across the line (its neighbours' chord turned a quarter), away from the face's middle.
    chord = np.gradient(at, axis=0)
    out = np.c_[chord[:, 1], -chord[:, 0]]
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    middle = at.mean(axis=0) - [0.0, 0.5 * px]
    out *= np.where(np.sum(out * (at - middle), axis=1, keepdims=True) < 0, -1.0, 1.0)
    steps = np.arange(0.0, OUTLINE_REACH_IOD * px + 0.5, 0.5)
    moved = np.zeros(len(at))
    for i, (start, direction) in enumerate(zip(at, out, strict=True)):
        trail = start + steps[:, None] * direction
        cols, rows = np.round(trail[:, 0] - 0.5).astype(int), np.round(trail[:, 1] - 0.5).astype(int)
        inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
        on = np.zeros(len(steps), bool)
        on[inside] = covered[rows[inside], cols[inside]]
        z = np.zeros(len(steps))
        z[on] = depth[rows[on], cols[on]]
        turned = np.ones(len(steps), bool)
        turned[on] = forward[rows[on], cols[on]] < OUTLINE_TURN
        behind = np.zeros(len(steps), bool)
        both = on[1:] & on[:-1]  # off the render, the step is no depth's
        behind[1:][both] = (z[1:] - z[:-1])[both] > OUTLINE_STEP_IOD
        stop = ~on | turned | behind
        if stop[0] or not stop.any():  # already past the outline, or none within reach
            continue
        moved[i] = steps[np.argmax(stop) - 1]
    # One point's slip (a fold, an ear's lobe) does not kink the line: its neighbours' median.
    padded = np.r_[moved[:1], moved, moved[-1:]]
    moved = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    target = at + moved[:, None] * out
    cols = np.clip(np.round(target[:, 0] - 0.5).astype(int), 0, width - 1)
    rows = np.clip(np.round(target[:, 1] - 0.5).astype(int), 0, height - 1)
    hit = covered[rows, cols] & (moved > 0)
    new = points.copy()
    new[hit, 0] = target[hit, 0] / px + low[0]
    new[hit, 1] = high[1] - target[hit, 1] / px
    new[hit, 2] = -depth[rows[hit], cols[hit]]
    result = jaw.copy()
    result[known] = frame.origin + (new @ frame.axes) * frame.scale
    return result
