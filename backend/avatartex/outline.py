"""Where the face is in a portrait the face detector cannot read: from the head's outline and shading.

mediapipe's detector reads a face from its eyes, brows and lips. On a face with bold paint, a photo
printed on the skin or a light grazing from the far side it finds nothing (bench/detect.py: on the
sweep's portraits contrast equalisation, gamma, single colour channels, smoothing, rotations,
mirroring and crops of the person together bring the rate of right faces from 19 to 33 of 98). The
head's outline survives all of those: the person segmentation (refined by GrabCut) finds it, and the
mesh being textured says what an outline looks like from every side. So the mesh's silhouette is
rendered from a grid of views around its face, each laid on the portrait's outline by a similarity
(scale, roll, shift: iterated closest points), and among the best few the one whose normals explain
the portrait's brightness best under a fitted Lambert light is taken (the outline hardly changes
when a head nods; its shading does), then refined on a finer grid. The mesh's landmarks projected
through that view stand in for the detector's.

On a photo background the segmentation takes part of the photo for the person: a cat's face the
head stands before, the coffee cup beside it, a launch tower. GrabCut started from the segmentation
keeps some of it, and that outline fitted nowhere (refused) or at the wrong place. So where the
first cut's fit is not close (CLOSE_FIT) a second is tried that may only shrink the segmentation and
takes the frame's top and side bands for background (``_cut_in_frame``), and the better-fitting cut
is kept. On the sweep's 98 portraits (bench/detect.py --outline) right faces went from 78 to 85
(on photo backgrounds from 20 to 27 of 32, found from 23 to 28), the outline's faces placed wrong
from 4 to 3 (the one on a photo background, 1.7 eye distances off, now right) and the worst eye
error from 1.73 to 0.76 eye distances; no face on a flat or gradient background changed. The
fallback takes 2.6 s (median) to 4.0 s per portrait the detector misses, detector included.

The placement is coarse — median 0.12 eye distances on the sweep's portraits, where the outline is
the head's own; on a person whose outline is not (hair, a hood, another face's proportions) it is
worse — and the registration refines it densely. Fits whose outline does not match (MAX_COST) are
refused. ``steps.analyse`` uses it where the detector found no face, and to check a face only the
landmark model saw (score 0); the report says how the face was found (``quality``:
``portrait_pass``), and the verdict calls the result good only where the dense shading check
confirms it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import Camera
from .face import NUM_LANDMARKS, Face
from .imaging import channel_mean, unit_vectors

WORK_SIZE = 160
"""Pixels of the longest side of the person's box at which outlines are compared (the outline of a
head is a smooth curve: a few pixels of it are a few % of the head)."""
YAWS = tuple(np.arange(-45.0, 45.1, 7.5))
PITCHES = (-18.0, -9.0, 0.0, 9.0, 18.0)
"""The views tried around the mesh's face direction, degrees (the sweep's cameras: yaw 0-40°,
pitch ±12°)."""
TRUNCATE = 0.12
"""Outline distances are capped at this share of the head's width, so that a shoulder, a collar or
a bun of hair the mesh does not have costs no more than a missing piece."""
MIN_PERSON = 0.02
"""Share of the image the person segmentation must cover for an outline to be read at all."""


@dataclass
class OutlineFit:
    """The best view of the mesh on the portrait's outline."""

    face: Face
    """The mesh's landmarks projected into the portrait (pixels), in the detector's format."""
    yaw: float
    pitch: float
    """The view, degrees about the mesh's up and right axes from its face direction."""
    cost: float
    """Mean capped outline distance over the head's width (0 = the outlines coincide)."""


def _boundary(mask: np.ndarray) -> np.ndarray:
    import cv2

    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8))).astype(bool)


def _nearest_outline(mask: np.ndarray) -> np.ndarray:
    """(H, W, 2) float64 the nearest pixel of the mask's outline to each pixel (x, y centres)."""
    import cv2

    edge = _boundary(mask)
    _, labels = cv2.distanceTransformWithLabels(
        (~edge).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    rows, cols = np.nonzero(edge)  # labels number the outline pixels in this (row-major) order
    table = np.concatenate([[[0.0, 0.0]], np.stack([cols, rows], axis=1) + 0.5])
    return table[labels]


def _head_width(mask: np.ndarray) -> float:
    """Width of the mask's top 40 %: the skull, without the shoulders."""
    rows = np.nonzero(mask.any(axis=1))[0]
    top = rows[0]
    cut = top + max(2, int(0.4 * (rows[-1] - top)))
    cols = np.nonzero(mask[top:cut].any(axis=0))[0]
    return float(cols[-1] - cols[0] + 1) if len(cols) else 1.0


def _view_camera(
    centre: np.ndarray,
    forward: np.ndarray,
    up: np.ndarray,
    radius: float,
    yaw: float,
    pitch: float,
    fov: float,
) -> Camera:
    right = np.cross(up, forward)
    a, b = np.radians(yaw), np.radians(pitch)
    d = forward * np.cos(a) + right * np.sin(a)
    d = d * np.cos(b) + up * np.sin(b)
    distance = radius / np.sin(np.radians(fov) / 2) * 1.05
    return Camera.look_at(centre + d * distance, centre, up, fov, WORK_SIZE, WORK_SIZE)


def _similarity(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    log_s, theta, tx, ty = params
    s = np.exp(log_s)
    c, si = np.cos(theta), np.sin(theta)
    return s * np.array([[c, -si], [si, c]]), np.array([tx, ty])


def _fit_similarity(
    points: np.ndarray, pivot: np.ndarray, nearest: np.ndarray, start: np.ndarray, cap: float
) -> tuple[np.ndarray, float]:
    """The similarity (about ``pivot``) that lays ``points`` on the outline: iterated closest points,
    each step the least-squares similarity (Umeyama) onto the nearest outline pixels (``nearest``:
    (H, W, 2) the nearest outline pixel of each pixel), points farther than ``cap`` left out.
    Returns the parameters and the mean capped distance."""
    h, w = nearest.shape[:2]
    params = np.asarray(start, np.float64).copy()
    centred = points - pivot

    def placed(p: np.ndarray) -> np.ndarray:
        A, t = _similarity(p)
        return centred @ A.T + pivot + t

    def targets(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        col = np.clip(q[:, 0].astype(int), 0, w - 1)
        row = np.clip(q[:, 1].astype(int), 0, h - 1)
        target = nearest[row, col]
        distance = np.linalg.norm(q - target, axis=1)
        outside = (q[:, 0] < 0) | (q[:, 0] >= w) | (q[:, 1] < 0) | (q[:, 1] >= h)
        return target, np.where(outside, cap, np.minimum(distance, cap))

    for _ in range(ICP_STEPS):
        q = placed(params)
        target, distance = targets(q)
        use = distance < cap
        if use.sum() < 10:
            break
        src, dst = centred[use], target[use] - pivot
        mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
        a, b = src - mu_s, dst - mu_d
        # closed-form 2-D similarity: rotation angle and scale from the cross-covariance
        sxx = float((a * b).sum())
        sxy = float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum())
        theta = np.arctan2(sxy, sxx)
        scale = np.hypot(sxx, sxy) / max(float((a * a).sum()), 1e-12)
        # a head's outline is not a point: the scale stays near the one the head's width gave
        scale = float(np.clip(scale, np.exp(start[0]) / SCALE_RANGE, np.exp(start[0]) * SCALE_RANGE))
        A, _ = _similarity(np.array([np.log(scale), theta, 0.0, 0.0]))
        step = np.array([np.log(scale), theta, *(mu_d - A @ mu_s)])
        if np.abs(step - params).max() < 1e-4:
            params = step
            break
        params = step
    q = placed(params)
    _, distance = targets(q)
    # the frame's edge cuts a bust or a neck: what falls outside the photo says nothing either way
    inside = (q[:, 0] >= 0) & (q[:, 0] < w) & (q[:, 1] >= 0) & (q[:, 1] < h)
    if inside.mean() < 0.5:
        return params, cap
    return params, float(distance[inside].mean())


SCALE_RANGE = 1.6
"""How far the outline fit may move the scale from the head width's guess (either way): without a
bound, a leaky person mask (a busy background) lets it shrink the head onto a piece of outline."""
ICP_STEPS = 30
"""Iterations of the outline fit (it settles in 5-15 on the sweep's portraits)."""


@dataclass
class _View:
    """One view of the mesh laid on the portrait's outline."""

    yaw: float
    pitch: float
    camera: Camera
    normal: np.ndarray
    """(S, S, 3) unit surface normal of each pixel of the view, 0 off the mesh."""
    covered: np.ndarray
    params: np.ndarray
    """The similarity (log scale, roll, shift) onto the work-size portrait."""
    pivot: np.ndarray
    cost: float
    """Mean capped outline distance over the head's width."""
    explained: float = 0.0
    """Share of the portrait's brightness a Lambert light on the view's normals explains."""

    def affine(self) -> np.ndarray:
        """(2, 3) the similarity in pixel indices (centres at +0.5), for ``cv2.warpAffine``."""
        A, t = _similarity(self.params)
        offset = A @ (0.5 - self.pivot) + self.pivot + t - 0.5
        return np.concatenate([A, offset[:, None]], axis=1)


class _Portrait:
    """One reading of the portrait's person outline, with its brightness, at the work size."""

    def __init__(self, colour: np.ndarray, mask: np.ndarray, k: float) -> None:
        import cv2

        self.k = k
        self.mask = mask
        self.gray = channel_mean(colour)
        self.inside = cv2.erode(self.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        self.nearest = _nearest_outline(self.mask)
        self.width = _head_width(self.mask)
        rows = np.nonzero(self.mask.any(axis=1))[0]
        self.top = np.array([np.nonzero(self.mask[rows[0]])[0].mean() + 0.5, rows[0] + 0.5], np.float64)


def _work_size(portrait: np.ndarray, person: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The portrait's colour and person probability at the work size, and that size's scale."""
    import cv2

    h, w = person.shape
    ys, xs = np.nonzero(np.asarray(person) > 0.5)
    box = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
    k = min(1.0, WORK_SIZE * 1.5 / box)
    size = (max(8, round(w * k)), max(8, round(h * k)))
    colour = cv2.resize(np.asarray(portrait, np.float32)[..., :3], size, interpolation=cv2.INTER_AREA)
    probability = cv2.resize(np.asarray(person, np.float32), size, interpolation=cv2.INTER_AREA)
    return colour, probability, k


GRABCUT_ROUNDS = 4
"""Rounds of GrabCut refining the person segmentation (it settles in 3-5 at the work size)."""


GRABCUT_SEED = 12345
"""OpenCV's random state before each cut (it is process-wide: without it a portrait's cut, and the
face placed from it, depended on what ran before it in the backend)."""


def _grabcut(colour: np.ndarray, state: np.ndarray) -> np.ndarray | None:
    """The foreground GrabCut finds from the seeds ``state``; None without both kinds of seed."""
    import cv2

    if not (state == cv2.GC_PR_FGD).any() or not (state != cv2.GC_PR_FGD).any():
        return None
    bgr = np.ascontiguousarray((np.clip(colour[..., ::-1], 0, 1) * 255).astype(np.uint8))
    models = (np.zeros((1, 65)), np.zeros((1, 65)))
    cv2.setRNGSeed(GRABCUT_SEED)  # its colour models start from k-means: the same photo, the same cut
    cv2.grabCut(bgr, state, None, *models, GRABCUT_ROUNDS, cv2.GC_INIT_WITH_MASK)
    return (state == cv2.GC_FGD) | (state == cv2.GC_PR_FGD)


def _largest(cut: np.ndarray | None, fallback: np.ndarray) -> np.ndarray:
    """The cut's largest piece (the head and what holds it), or ``fallback`` where it has none."""
    import cv2

    if cut is None:
        return fallback
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cut.astype(np.uint8), connectivity=4)
    if count <= 1:
        return fallback
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _frame_edges(shape: tuple[int, int], band: int) -> np.ndarray:
    """(H, W) bool the image's top and side bands ``band`` pixels wide (a bust leaves by the bottom)."""
    edge = np.zeros(shape, bool)
    edge[:band], edge[:, :band], edge[:, -band:] = True, True, True
    return edge


def _cut_out(colour: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """The person mask, the segmentation refined by the colours of person and background (GrabCut).

    The segmentation model takes a cat's face or a coffee cup behind the head for part of the person
    (sweep portraits with photo backgrounds); where their colours are not the head's, GrabCut,
    started from the segmentation, gives them back to the background (where it does not, see
    ``_cut_in_frame``). The image's top and side edges are background wherever the segmentation
    says so."""
    import cv2

    state = np.where(probability > 0.5, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    state[_frame_edges(state.shape, 2) & (probability < 0.5)] = cv2.GC_BGD
    return _largest(_grabcut(colour, state), probability > 0.5)


FRAME_BAND = 0.04
"""Width (share of the work image's longest side) of the top and side bands ``_cut_in_frame`` takes
for background. On the sweep's 27 photo-background portraits the fallback sees, 0.04 placed 23
right and none wrong; 0.02 placed 22 right (a head before a cat refused), 0.07 21 right and 2
wrong."""


def _cut_in_frame(colour: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """The person mask GrabCut finds within the segmentation (it may only shrink it), the image's
    top and side bands (FRAME_BAND) taken for background whatever the segmentation says.

    Where the segmentation took a cat's whole face or a coffee cup for part of the person, the fur
    reaches the frame and the head inside it does not, and the cup's china is in no part of the
    head: GrabCut learns them as background. A cut allowed to grow, as ``_cut_out`` is, takes a
    launch tower's dark steel beside a dark-striped head. The bands then continue the cut at their
    inner edge, within the segmentation, so that a head the frame crops keeps its outline there."""
    import cv2

    state = np.where(probability > 0.5, cv2.GC_PR_FGD, cv2.GC_BGD).astype(np.uint8)
    band = max(2, round(FRAME_BAND * max(state.shape)))
    state[_frame_edges(state.shape, band)] = cv2.GC_BGD
    cut = _grabcut(colour, state)
    person = probability > 0.5
    if cut is not None:
        # the bands say nothing of the outline: they continue the cut at their inner edge
        cut[:band] = cut[band] & person[:band]
        cut[:, :band] = cut[:, band : band + 1] & person[:, :band]
        cut[:, -band:] = cut[:, -band - 1 : -band] & person[:, -band:]
    return _largest(cut, person)


CUTS = (_cut_out, _cut_in_frame)
"""The ways the person outline is read, in the order they are tried."""
CLOSE_FIT = 0.015
"""Outline cost (share of the head's width) of the coarse grid's chosen view within which a cut's fit
is taken without trying the next: each costs a GrabCut and a grid of fits (on 20 sweep portraits,
half of them on photo backgrounds, the fallback's median time went from 1.1 to 1.7 s with both
cuts). The portraits the framed cut placed better fitted the first cut at 0.025-0.12."""


@dataclass
class _Silhouette:
    """The mesh seen from one view of the grid."""

    yaw: float
    pitch: float
    camera: Camera
    normal: np.ndarray
    covered: np.ndarray
    edge: np.ndarray
    """(N, 2) points of its outline (pixel centres)."""
    pivot: np.ndarray
    """The top of its outline, about which it is scaled and turned."""
    width: float
    """Width of its top 40 % (``_head_width``): with the portrait's, the fit's starting scale."""


def _silhouette(view_camera: Camera, positions, triangles, normals, yaw, pitch) -> _Silhouette | None:
    """The mesh seen by ``view_camera``: its normals, coverage and outline."""
    from .raster import interpolate, rasterize_camera

    tri_id, bary, _ = rasterize_camera(positions, triangles, view_camera)
    covered = tri_id >= 0
    if covered.sum() < 50:
        return None
    normal = unit_vectors(interpolate(normals, triangles, tri_id, bary))
    normal = np.where(covered[..., None], normal, 0.0).astype(np.float32)
    edge = np.argwhere(_boundary(covered))[:, ::-1].astype(np.float64) + 0.5
    edge = edge[:: max(1, len(edge) // 400)]
    rows = np.nonzero(covered.any(axis=1))[0]
    pivot = np.array([np.nonzero(covered[rows[0]])[0].mean() + 0.5, rows[0] + 0.5])
    return _Silhouette(yaw, pitch, view_camera, normal, covered, edge, pivot, _head_width(covered))


def _lay(seen: _Silhouette, photo: _Portrait) -> _View:
    """The view's outline fitted to the portrait's."""
    start = np.array([np.log(photo.width / seen.width), 0.0, *(photo.top - seen.pivot)])
    params, cost = _fit_similarity(seen.edge, seen.pivot, photo.nearest, start, TRUNCATE * photo.width)
    return _View(
        seen.yaw, seen.pitch, seen.camera, seen.normal, seen.covered, params, seen.pivot, cost / photo.width
    )


def _explained(view: _View, photo: _Portrait) -> float:
    """How much of the portrait's brightness inside the head a Lambert light (ambient + a direction,
    robustly fitted) explains with ``view``'s normals at its pixels. The outline of a head hardly
    changes when it nods; its shading does."""
    import cv2

    from .landmarks import fit_lambert

    h, w = photo.mask.shape
    M = view.affine()
    normal = cv2.warpAffine(view.normal, M, (w, h), flags=cv2.INTER_NEAREST)
    covered = cv2.warpAffine(view.covered.astype(np.uint8), M, (w, h), flags=cv2.INTER_NEAREST) > 0
    covered = cv2.erode(covered.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    use = covered & photo.inside
    if use.sum() < 200:
        return 0.0
    return fit_lambert(normal[use], photo.gray[use])[1]


SHADING_SHORTLIST = 8
"""Views (best outlines) whose shading is compared."""
OUTLINE_SLACK = 0.01
"""Outline cost (share of the head's width) over the best within which the shading decides."""


def _choose(views: list[_View], photo: _Portrait) -> _View:
    """The view that fits both outline and shading: the best-lit among those whose outline is
    within OUTLINE_SLACK (plus half again) of the best outline."""
    views = sorted(views, key=lambda v: v.cost)[:SHADING_SHORTLIST]
    limit = 1.5 * views[0].cost + OUTLINE_SLACK
    near = [v for v in views if v.cost <= limit]
    for v in near:
        v.explained = _explained(v, photo)
    return max(near, key=lambda v: v.explained)


def _best_reading(
    coarse: list[_Silhouette], colour: np.ndarray, probability: np.ndarray, k: float
) -> tuple[_View, _Portrait]:
    """The view chosen on the coarse grid, and the person outline it was laid on: the cuts are
    tried in turn (CUTS) until one fits within CLOSE_FIT, and the best-fitting is kept."""
    fits = []
    for cut in CUTS:
        photo = _Portrait(colour, cut(colour, probability), k)
        fits.append((_choose([_lay(seen, photo) for seen in coarse], photo), photo))
        if fits[-1][0].cost <= CLOSE_FIT:
            break
    return min(fits, key=lambda fit: fit[0].cost)


def locate_by_outline(
    portrait: np.ndarray,
    person: np.ndarray,
    positions: np.ndarray,
    triangles: np.ndarray,
    points3d: np.ndarray,
    forward: np.ndarray,
    up: np.ndarray,
    fov_y_deg: float,
) -> OutlineFit | None:
    """The view of the mesh whose outline and shading fit the portrait's, or None without a person.

    ``person`` is the portrait's person mask (H, W) 0..1; ``points3d`` the mesh's 468 landmarks,
    ``forward``/``up`` its face frame (``landmarks.MeshLandmarks``); ``fov_y_deg`` the portrait's
    assumed vertical field of view. A grid of views is laid on the outline (read by each of CUTS in
    turn until one fits closely), the best few judged by their shading, then a finer grid around
    the chosen one.
    """
    from .mesh import compute_normals

    if (np.asarray(person) > 0.5).mean() < MIN_PERSON:
        return None
    colour, probability, k = _work_size(portrait, person)
    positions = np.asarray(positions, np.float64)
    normals = compute_normals(positions, triangles)
    valid = np.isfinite(points3d).all(axis=1)
    centre = points3d[valid].mean(axis=0)
    radius = float(np.linalg.norm(positions - centre, axis=1).max())
    forward = np.asarray(forward, np.float64) / np.linalg.norm(forward)
    up = np.asarray(up, np.float64) / np.linalg.norm(up)

    def silhouettes(yaws, pitches) -> list[_Silhouette]:
        seen = []
        for yaw in yaws:
            for pitch in pitches:
                camera = _view_camera(centre, forward, up, radius, yaw, pitch, fov_y_deg)
                one = _silhouette(camera, positions, triangles, normals, float(yaw), float(pitch))
                if one is not None:
                    seen.append(one)
        return seen

    coarse = silhouettes(YAWS, PITCHES)
    if not coarse:
        return None
    chosen, photo = _best_reading(coarse, colour, probability, k)
    step_yaw, step_pitch = (YAWS[1] - YAWS[0]) / 2, (PITCHES[1] - PITCHES[0]) / 2
    offsets = np.array([-1.0, 0.0, 1.0])
    yaws = np.clip(chosen.yaw + step_yaw * offsets, YAWS[0], YAWS[-1])
    pitches = np.clip(chosen.pitch + step_pitch * offsets, PITCHES[0], PITCHES[-1])
    fine = [_lay(seen, photo) for seen in silhouettes(np.unique(yaws), np.unique(pitches))]
    best = _choose(fine, photo)
    A, t = _similarity(best.params)
    xy, _ = best.camera.project(np.where(valid[:, None], points3d, centre))
    xy = ((xy - best.pivot) @ A.T + best.pivot + t) / photo.k
    extras = {"pass": "outline", "yaw": best.yaw, "pitch": best.pitch, "cost": round(best.cost, 4)}
    extras["explained"] = round(best.explained, 3)
    face = Face(xy[:NUM_LANDMARKS].astype(np.float32), 0.0, None, extras)
    return OutlineFit(face, best.yaw, best.pitch, best.cost)


MAX_COST = 0.03
"""Outline distance (share of the head's width) above which the best view is not taken for a head.
On the 76 sweep portraits the outline fallback sees (bench/detect.py --outline), with both cuts:
fits within 0.25 eye distances of the truth cost 0.006-0.029 (one at 0.040, refused), those 0.9-1.6
eye distances off (the head before a cat's face or a cup the cuts keep) 0.031-0.060, and three
0.28-0.68 off on flat and gradient backgrounds 0.012-0.027. Photos without a head (skimage's
coffee, coins, chelsea, hubble_deep_field, immunohistochemistry; crops of them) fit the mesh's
outline at 0.037-0.12, one crop of the coffee cup at 0.027. Above it the detector's own error
stands: "no face" is better than a face on a cheek."""


DISAGREE_IOD = 0.35
"""Distance (eye distances, mean of the two eye centres) between an unconfirmed detection and the
outline's placement above which the detection is taken for a misreading. The detector's mesh model
alone (its face detector not agreeing) put eyes 0.4-0.75 eye distances off in 5 of the 14 such
sweep portraits, where the outline put them within 0.07-0.12; the other 9 agreed with it within
0.3."""


UNSURE_SCATTER_IOD = 0.5
"""Landmark scatter (``face.landmark_scatter``, eye distances; a view the detector cannot read again
counts 1) from which a face the detector did confirm is checked against the head's outline as an
unconfirmed one is: the detector could not read it again in about half of the photo's turned and
scaled views. On bench/sweep.py 13 detector-read portraits scattered that much, 12 of them
misplaced by 0.11-1.25 eye distances (a face misread on a skin pattern or under light from below);
read surely, the sweep's faces scatter 0.016-0.09 and real photos 0.012-0.014."""
SURE_SCATTER_IOD = 0.016
"""Landmark scatter (``face.landmark_scatter``, eye distances) under which the detector read the face
surely enough that the registration does not also place the head from its outline
(``alignment.outline_refit``'s ``outline_start``, a second of work): the astronaut and Grace Hopper,
turned, cropped and mirrored, on the demo head, a stylised variant and the scan, scatter by
0.0096-0.0138; on bench/sweep.py the faces whose head the outline's placement put right where the
landmarks' camera had not (r087 0.50 -> 0.15, r058 0.39 -> 0.11 eye distances) scattered by 0.018
and up, or were read by the landmark model alone."""
OVERRIDE_COST = 0.015
"""Outline distance up to which an outline fit may override a detection: a detection is evidence, so
the outline must fit closely to outweigh it. The five unsure detections an outline corrected on the
sweep's portraits fitted at 0.0065-0.0125; a scanned bust before a coffee cup (bench/look.py), whose
cup the segmentation took for part of the head, at 0.027, and the outline was the one misplaced."""


def _eye_gap(a: Face, b: Face) -> float:
    gaps = [
        np.linalg.norm(a.right_eye_center - b.right_eye_center),
        np.linalg.norm(a.left_eye_center - b.left_eye_center),
    ]
    return float(np.mean(gaps) / max(b.interocular, 1e-6))


def place_head(
    portrait: np.ndarray,
    person: np.ndarray,
    positions: np.ndarray,
    triangles: np.ndarray,
    landmarks,
    fov_y_deg: float,
) -> OutlineFit | None:
    """``locate_by_outline`` for a head's mesh (``landmarks``: its ``landmarks.MeshLandmarks``)."""
    as_detected = landmarks.as_detected
    return locate_by_outline(
        portrait,
        person,
        positions,
        triangles,
        landmarks.points3d if as_detected is None else as_detected,
        landmarks.forward,
        landmarks.up,
        fov_y_deg,
    )


def outline_face(
    portrait: np.ndarray,
    positions: np.ndarray,
    triangles: np.ndarray,
    landmarks,
    fov_y_deg: float,
    name: str,
    detected: Face | None,
    unreadable: Exception | None = None,
    segmenter=None,
    person: np.ndarray | None = None,
) -> tuple[Face, list[str]]:
    """The portrait's face, checked against (or, without one, placed from) the head's outline.

    ``detected`` is the detector's face when it found one its face detector did not confirm (score
    0: only the landmark model saw a face) or one it could not read again in turned and scaled views
    of the photo (UNSURE_SCATTER_IOD), None when it found none; ``unreadable`` is then the
    detector's error, raised again when the outline is not a head's either. An unconfirmed face that
    disagrees with a good outline fit by more than DISAGREE_IOD gives way to the outline's. Returns
    the face and the warnings the artist sees. ``landmarks`` is the mesh's
    ``landmarks.MeshLandmarks``. ``person`` is the portrait's person mask where the caller has it
    (else ``segmenter``'s, or the process's default segmenter's)."""
    from .face import default_segmenter

    if np.count_nonzero(landmarks.valid) < 0.9 * NUM_LANDMARKS:  # pins only: no face to lay out
        if detected is None:
            raise unreadable or ValueError("no face in the portrait")
        return detected, []
    if person is None:
        person = (segmenter or default_segmenter()).mask(portrait)
    fit = place_head(portrait, person, positions, triangles, landmarks, fov_y_deg)
    usable = fit is not None and fit.cost <= MAX_COST
    advice = (
        "It was placed from the head's outline instead, which is coarse. Check the eyes and mouth in "
        "the preview; set pins or use a photo where the eyes, brows and lips are clearly visible."
    )
    if detected is None:
        if not usable:
            raise unreadable or ValueError("no face and no head outline")
        why = "paint or a print on the skin, or a light grazing from the side, hides the eyes and mouth"
        return fit.face, [f"No face could be read in {name!r} ({why} from the face detector). {advice}"]
    if usable and fit.cost <= OVERRIDE_COST and _eye_gap(detected, fit.face) > DISAGREE_IOD:
        return fit.face, [
            f"The face detector's reading of {name!r} was unsure and disagrees with the head's outline "
            f"(eyes {_eye_gap(detected, fit.face):.1f} eye distances apart). {advice}"
        ]
    return detected, []
