"""The mesh's eyes, recognised as eyes: separate eyeballs found, and painted on the renders the face
detector reads the mesh from when the photo's eyes are open.

The photo's landmarks are read from a face's colours (a dark iris in a light sclera); the mesh's
from its shading alone, where an untextured eyeball looks like skin and the eyes like closed lids.
``bench/mesh_reading.py`` measures the gap on the demo family: the shaded reading's eyes are 0.094
eye distances (worst 0.25) from where the same view painted with a face is read, and the canonical
reading puts the eyes at 0.80-0.86 of the eyeballs' distance; with the eyeballs painted on the
render, 0.041 / 0.067 and 0.87-0.95. On ``bench/sweep.py``'s made-up faces (an oracle that paints the
known eyeballs, ``--paint-eyes``) the misplacement falls from 0.069 to 0.054 median, 0.31 to 0.13
worst. The paint must follow the photo: a portrait whose eyes show no iris (closed, or a face read
from its shading) is matched better by the plain render (the sweep's featureless skins: 0.0525 ->
0.0597 when painted regardless), hence ``photo_eyes_open``. With the eyeballs separate parts of the
demo heads (``groundtruth.with_eyeballs``), the made-up faces went 0.079 -> 0.056 median, 0.25 ->
0.135 worst (20 better, 4 worse), PSNR +1.1 dB; the featureless skins unchanged.

Found here: eyeballs that are parts of their own (a connected component of the mesh that is nearly a
sphere, the size of an eye, behind each eye the detector read), as character meshes usually model
them. Eyes that are one surface with the lids are left alone: the two geometric finders tried (a
sphere fitted inside the detected eye contour; the convex patch enclosed by the lids' valleys) did
not tell the demo head's open eyes from the scanned head's closed lids (docs/measurements-log.md,
session 16), and an iris painted on a closed lid would mislead the detector more than none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .face import LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR, Face
from .imaging import smoothstep
from .projection import polygon_mask

EYEBALL_SIZE_IOD = (0.08, 0.45)
"""An eyeball's radius over the detected eye distance (a human's 12 mm over 63 mm is 0.19; the
detector reads an untextured mesh's eyes up to 20 % too close together, a caricature's eyes are big)."""
EYEBALL_REACH_IOD = 0.5
"""How far an eyeball's centre may lie from the detected eye's middle, in eye distances."""
SPHERE_RMS = 0.05
"""A component is an eyeball when its vertices' distance from the fitted centre varies by less than
this share of the radius (root mean square)."""
MIN_VERTICES = 12
IRIS_DEG, PUPIL_DEG = 28.0, 11.0
"""Angular radii of the painted iris and pupil round the gaze (an iris of 11.7 mm on a 24 mm ball)."""
EDGE_DEG = 2.0
"""Width of the iris's and pupil's edges where an eyeball is painted into a texture
(``eyeball_colours``' ``soft_deg``), degrees round its centre: a few texels on a typical eyeball."""
LIMBUS_DEG, LIMBUS_DARKNESS = 7.0, 0.6
"""Where an eyeball is painted into a texture, the iris darkens over its outer LIMBUS_DEG degrees to
this share of its colour at the edge (the limbal ring, which a flat disc lacks: a doll's eye)."""
SCLERA = np.array([0.88, 0.86, 0.82], np.float32)
IRIS = np.array([0.30, 0.22, 0.15], np.float32)
PUPIL = np.array([0.04, 0.03, 0.03], np.float32)

OPEN_CONTRAST = (0.75, 0.95)
"""The photo's eyes read as open and coloured from an eye-contour contrast (``eye_contrast``) of the
first value, fully from the second. On bench/sweep.py's portraits the detector reads directly:
0.96-1.98 on the made-up faces (an iris, a pupil and a sclera painted), 0.09-0.69 on the
featureless skins (stripes and photographs printed on the skin, lit from below or grazing)."""


@dataclass(frozen=True)
class Eyes:
    """A mesh's two eyeballs, where they are separate parts of it."""

    centres: np.ndarray
    """(2, 3) the character's right and left eyeball centres."""
    radii: np.ndarray
    """(2,) their radii."""
    gaze: np.ndarray
    """(3,) unit direction both look along: the face's."""
    on_ball: np.ndarray
    """(T,) bool: the triangle belongs to an eyeball."""

    def texels(self, tri_id: np.ndarray) -> np.ndarray:
        """Bool mask of the pixels or texels of ``tri_id`` (a raster's triangle ids, -1 where none)
        that lie on an eyeball."""
        covered = tri_id >= 0
        ball = np.zeros(tri_id.shape, bool)
        ball[covered] = self.on_ball[tri_id[covered]]
        return ball


def _sphere(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares sphere through ``points``: centre, radius, RMS of the distances' misfit."""
    a = np.c_[2.0 * points, np.ones(len(points))]
    solution, *_ = np.linalg.lstsq(a, (points**2).sum(axis=1), rcond=None)
    centre = solution[:3]
    radius = float(np.sqrt(max(solution[3] + centre @ centre, 1e-30)))
    misfit = np.linalg.norm(points - centre, axis=1) - radius
    return centre, radius, float(np.sqrt(np.mean(misfit**2)))


def find_eyeballs(positions: np.ndarray, triangles: np.ndarray, landmarks) -> Eyes | None:
    """The mesh's eyeballs behind the eyes ``landmarks`` (``landmarks.MeshLandmarks``) found, when
    both are separate near-spherical parts of the mesh; None otherwise (one surface with the lids,
    no eyeballs, only one found, or no eyes detected)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    positions = np.asarray(positions, np.float64)
    triangles = np.asarray(triangles, np.int64)
    points = np.asarray(landmarks.points3d, np.float64)
    middles = [np.nanmean(points[list(contour)], axis=0) for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR)]
    if not all(np.isfinite(m).all() for m in middles) or len(triangles) == 0:
        return None
    iod = float(np.linalg.norm(middles[1] - middles[0]))
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    n = len(positions)
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    count, label = connected_components(graph, directed=False)
    if count < 3:  # a head and two eyeballs at least
        return None
    sizes = np.bincount(label, minlength=count)
    centroids = np.stack([np.bincount(label, positions[:, k], count) for k in range(3)], axis=1)
    centroids /= np.maximum(sizes, 1)[:, None]
    found = []
    for middle in middles:
        near = np.flatnonzero(
            (sizes >= MIN_VERTICES) & (np.linalg.norm(centroids - middle, axis=1) < EYEBALL_REACH_IOD * iod)
        )
        best = None
        for part in near:
            centre, radius, rms = _sphere(positions[label == part])
            if (
                not EYEBALL_SIZE_IOD[0] * iod <= radius <= EYEBALL_SIZE_IOD[1] * iod
                or rms > SPHERE_RMS * radius
            ):
                continue
            distance = float(np.linalg.norm(centre - middle))
            if distance < EYEBALL_REACH_IOD * iod and (best is None or distance < best[0]):
                best = (distance, part, centre, radius)
        if best is None:
            return None
        found.append(best)
    if found[0][1] == found[1][1]:
        return None
    on_ball = np.isin(label[triangles[:, 0]], [found[0][1], found[1][1]])
    gaze = np.asarray(landmarks.forward, np.float64)
    return Eyes(
        np.array([found[0][2], found[1][2]]),
        np.array([found[0][3], found[1][3]]),
        gaze / max(np.linalg.norm(gaze), 1e-12),
        on_ball,
    )


def paint(
    image: np.ndarray, world: np.ndarray, tri_id: np.ndarray, eyes: Eyes, albedo: np.ndarray
) -> np.ndarray:
    """``image`` (a shaded render of the mesh: the skin ``albedo`` times the shading) with the
    eyeballs' pixels painted sclera, iris and pupil round ``eyes.gaze``, under the same shading."""
    ball = eyes.texels(tri_id)
    if not ball.any():
        return image
    colour = eyeball_colours(np.asarray(world, np.float64)[ball], eyes)
    out = np.array(image, np.float32, copy=True)
    out[ball] = out[ball] / np.asarray(albedo, np.float32) * colour
    return out


def eyeball_colours(
    points: np.ndarray,
    eyes: Eyes,
    iris: np.ndarray = IRIS,
    sclera: np.ndarray = SCLERA,
    soft_deg: float = 0.0,
) -> np.ndarray:
    """(N, 3) float32 an eye's colours at ``points`` (N, 3) on the eyeballs: a pupil (PUPIL_DEG) and
    an iris (IRIS_DEG) round ``eyes.gaze`` from each ball's centre, sclera elsewhere. ``soft_deg``:
    the width of the edges, in degrees (0: hard, as the detector's render is painted; a texture
    gets soft ones, which a real limbus has and which do not alias)."""
    p = np.asarray(points, np.float64)
    # Each point on the eyeball nearest to it (the two are far apart next to their size).
    which = np.argmin(np.linalg.norm(p[:, None, :] - eyes.centres[None], axis=2), axis=1)
    out_of_centre = p - eyes.centres[which]
    cosine = out_of_centre @ eyes.gaze / np.maximum(np.linalg.norm(out_of_centre, axis=1), 1e-12)
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    iris = np.asarray(iris, np.float32)
    sclera = np.asarray(sclera, np.float32)
    if soft_deg <= 0:
        return np.where(
            (angle < PUPIL_DEG)[:, None], PUPIL, np.where((angle < IRIS_DEG)[:, None], iris, sclera)
        )
    in_iris = smoothstep((IRIS_DEG - angle) / soft_deg + 0.5).astype(np.float32)[:, None]
    in_pupil = smoothstep((PUPIL_DEG - angle) / soft_deg + 0.5).astype(np.float32)[:, None]
    # The limbal ring: the iris darkens towards its edge, as a real one does.
    limbus = 1.0 - (1.0 - LIMBUS_DARKNESS) * smoothstep((angle - IRIS_DEG + LIMBUS_DEG) / LIMBUS_DEG)
    ringed = iris * limbus.astype(np.float32)[:, None]
    return sclera + in_iris * (ringed - sclera) + in_pupil * (PUPIL - ringed)


def eye_contrast(photo: np.ndarray, face: Face) -> float:
    """How strongly the photo's eyes are coloured: inside each eye contour, the luminance range (95th
    minus 5th percentile) over the median of the skin round it, averaged over both eyes; NaN where
    the contours hold too few pixels. An open eye's iris and pupil in its sclera give about 1 or
    more; an eye read from shading alone (closed, or a face with no colours) well under 0.7."""
    import cv2

    luminance = np.asarray(photo, np.float32)[..., :3].mean(axis=2)
    values = []
    for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR):
        corners = np.asarray(face.landmarks[list(contour)], np.float64)
        if not np.isfinite(corners).all():
            continue
        inside = polygon_mask(luminance.shape, corners)
        width = float(np.linalg.norm(corners[0] - corners[8]))
        around = np.zeros(luminance.shape, np.uint8)
        middle = np.round(corners.mean(axis=0) * 4).astype(int)
        cv2.circle(around, (int(middle[0]), int(middle[1])), int(round(width * 4)), 1, -1, shift=2)
        eye, skin = luminance[inside], luminance[(around > 0) & ~inside]
        if eye.size < 5 or skin.size < 5:
            continue
        values.append((np.percentile(eye, 95) - np.percentile(eye, 5)) / max(float(np.median(skin)), 1e-3))
    return float(np.mean(values)) if values else float("nan")


def photo_eyes_open(photo: np.ndarray, face: Face) -> float:
    """0..1: how far the photo's eyes read as open and coloured (``eye_contrast`` over
    OPEN_CONTRAST), so that the mesh's eyes are painted as far as the photo's show. 0 for a face
    placed from the head's outline (``outline.outline_face``): its eye contours are laid out from
    the mesh, not read, and on the sweep 11 such portraits of skins printed with stripes or photos
    showed a contrast there, none of them an eye."""
    if face.extras.get("pass") == "outline":
        return 0.0
    contrast = eye_contrast(photo, face)
    if not np.isfinite(contrast):
        return 0.0
    return float(smoothstep((contrast - OPEN_CONTRAST[0]) / (OPEN_CONTRAST[1] - OPEN_CONTRAST[0])))
