"""Closed-form projection of the portrait onto the head: colour and confidence for surface points.

For every surface point (an atlas texel, or a texel of the mesh's own UV map at bake time): project it
into the portrait with the registered camera and warp, keep it where the camera sees it (depth test
against a render of the mesh from that camera), and let the confidence fall off with how stretched
the photo is over the surface there, near the silhouette, and where the photo does not show this
face's skin (hair, background, clothing, hands) outside the face outline. ``project_surface`` does
it in one compiled pass per point: an atlas has a million of them.

Two rules keep smears and background out, whatever the stages after do with partial confidence
(``out = conf * photo + (1 - conf) * fill``, so any weight on a wrong colour shows):

* **Stretch, not angle.** One photo pixel covers ``stretch`` times more surface along one direction
  than along the other (the ratio of the singular values of the surface -> portrait Jacobian:
  camera, normal, view direction and the registration's warp). Every edge of the photo becomes a
  streak that much longer; a stretched texel is better filled from well-seen skin. In the atlas
  (``pipeline.steps.project``) the same holds for the atlas's own sampling of the photo
  (``sampling_weight``), narrow steep walls keep the photo (``keep_narrow_stretch``) and patches
  cut off from the face by stretched skin are dropped (``keep_joined_to_face``).
* **Skin is a region, not a colour.** A photo pixel is skin inside the face outline or inside a
  region of skin-coloured pixels that the person segmentation covers with a margin and that is
  connected to the face; the weight rises from 0 at that region's border (the face outline's too,
  where it meets a collar or a hat brim), so a bilinear sample never mixes in the background, a
  collar or a brim, and the photo fades out instead of ending on an edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit, prange

from . import raster
from .imaging import bilinear_at, box_around, disc, put_rows, sample_image, smoothstep, take_rows

STRETCH_FULL = 1.8
"""Full confidence up to this stretch (on a sphere seen from afar: 56 degrees from the view axis)."""
STRETCH_NONE = 3.6
"""No confidence from this stretch on (74 degrees): the photo would smear over the surface, however
softly it is read. Read sharp, 3.2 drew the edge of Grace Hopper's cap at her temples into a streak
5.2 % of the demo head's height (bench/look.py), and it was 2.8; read softly beyond STRETCH_FULL,
the grazing band is the photo's instead of the fill's, which scored 22-28 dB there with the true
camera where the photo scored 27-41 (bench/oracle.py): quick sweep +0.10 dB on average (16 of 19
cases better). 4.2 gave +0.25 dB, but a copy of the scanned head turned 45° then differed from the
original by 1.26/255 (its grazing band's colour moves with the camera's small differences)."""
STRETCH_SOFT = 2.6
"""From STRETCH_FULL to this stretch the photo is read ever more softly, from here on wholly so
(``read_softly``): a stretched texel gets the photo's colour over its footprint, not the fine detail
that a smear draws out into streaks."""
SOFT_MIN_SKIN = 0.2
"""Share of skin in the soft reading's reach below which it gives way to the sharp reading (nothing
of the skin's to average)."""
SOFT_SIGMA_IOD = 0.03
"""Eye distances (Gaussian sigma) of the soft reading (quick sweep: 0.02, 0.03 and 0.04 within 0.02
dB of each other)."""
PERSON_MARGIN = 0.05
"""Eye distances by which the person segmentation is shrunk before skin outside the face counts
(its edge is soft and a few pixels wide of the true one)."""
SKIN_RAMP = 0.04
"""Eye distances over which a skin region's weight rises from its border."""
SKIN_CONTOUR_PX = 1.5
"""Portrait pixels (Gaussian sigma) over which a skin region's border is smoothed (``skin_regions``)."""
SKIN_SPECK = 0.08
"""Eye distances: non-skin-coloured specks inside skin smaller than this across still count as skin."""
BURNT_OUT = (0.94, 0.98)
"""sRGB values of a photo pixel's strongest channel over which it counts from not at all to fully as
clipped (``burnt_out``); it must also be white (``BURNT_WHITE``)."""
BURNT_WHITE = (0.8, 0.88)
"""sRGB values of a clipped pixel's weakest channel over which it counts from not at all to fully as
burnt out: a highlight clipped to white lost the skin's colour (the astronaut's right cheek,
0.98/0.94/0.93 with a glow of 0.96/0.87/0.82 round it: a pale blue-grey spot on the textures); skin
whose red alone clipped keeps its colour in the other two and is read (Grace Hopper's lit forehead
and cheeks, 0.98/0.73/0.62 and a weakest channel of 0.75 at most; the sweep's lit cheeks,
0.97/0.75/0.64). Paleness against the face's own skin does not tell them apart: her lit forehead is
as much paler than her skin (0.22) as the astronaut's highlight is than hers."""
BURNT_MAX_SHARE = 0.1
"""Share of the face outline's pixels burnt out above which they are read anyway: an overexposed
photo has nothing else to give. (The overexposure warning, ``photo_condition.CLIPPED_SKIN_SHARE``,
counts skin with any channel clipped, white or not: the two shares are not the same measure.)"""
BURNT_REACH = 0.02
"""Eye distances by which a burnt-out patch is grown: its rim is the highlight's glow, whiter than the
skin as far as the lens spread the clipped light."""
NARROW_STRETCH = 0.08
"""Eye distances: stretched patches narrower than twice this (the walls of the nostrils, the eye
corners, the lips' corners) keep the photo (``keep_narrow_stretch``); a smear cannot be longer than
the patch is wide, and that is under 5 % of a head's height."""
OCCLUSION_FEATHER = 0.03
"""Eye distances over which the photo fades in from where the camera faces the surface but something
else of the mesh hides it (``feather_occlusions``)."""
OCCLUDED_FACING = 0.1
"""Cosine between a texel's normal and the direction to the camera above which, unseen, it counts as
hidden by the mesh rather than turned away."""
DEPTH_TOLERANCE = 0.05
"""Eye distances by which a surface point may lie behind the nearest surface the camera sees there
and still count as seen. Thin folds of the mesh hide their own inner side by a millimetre or two:
at 0.01 the scanned head's lower lid rims (hidden by the lids' bulge) were left unseen under the
photo's lash line and filled from the eye white above (a pale streak under each eye); at 0.05 they
take the photo's lash line. What a farther surface hides (a nose, a jaw, an ear) lies much deeper."""


@dataclass
class PortraitView:
    """What the projection needs to know about the portrait, computed once per request."""

    image: np.ndarray
    """(H, W, 3) float32 sRGB 0..1."""
    zbuffer_near: np.ndarray
    """(h, w) float32 camera depth of the mesh seen by the registered camera, the nearest over each
    pixel's 3x3 neighbourhood (slanted surfaces change depth within a pixel); +inf where empty."""
    zscale: float
    """zbuffer pixels per portrait pixel (the depth render may be smaller than the photo)."""
    edge_distance: np.ndarray
    """(h, w) float32 distance in portrait pixels to the mesh's silhouette, inside the silhouette."""
    skin: np.ndarray
    """(H, W) float32 0..1 weight of each portrait pixel as this face's skin (``skin_regions``): the
    face outline and the skin joined to it, 0 on and next to anything else."""
    face_outline: np.ndarray
    """(H, W) bool pixels inside the face outline of the landmarks, pulled in a little: skin whatever
    its colour (``skin_regions``)."""
    camera_center: np.ndarray
    """(3,) the registered camera's position in mesh space."""
    tolerance: float
    """Depth-test tolerance in mesh units."""
    burnt: np.ndarray | None = None
    """(H, W) float32 0..1 skin the camera burnt out to white (``burnt_out``): the texels read there
    lose that much of their confidence and are filled as unseen ones are; None: none."""


DARK_FLOOR = (0.12, 0.25)
"""Shares of the face's median lightness (CIELAB L*) below which a pixel is not skin, and above which
it may wholly be (``skin_likelihood``). Skin that dark lies four stops or more below the face; black
clothing and hair do. On a light face the band of 45 L* below the face's median is the stricter
bound and this one changes nothing; on a dark face (the astronaut's skin darkened to L* 29) that band
reached below black, and her black collar (L* 1, whose relative chroma means nothing) read 0.56
skin."""


def skin_likelihood(
    image: np.ndarray, face_mask: np.ndarray, exclude: np.ndarray | None = None
) -> np.ndarray:
    """0..1 per pixel: closeness to the skin colour statistics inside ``face_mask`` (Lab, Mahalanobis).

    A weight-free stand-in for a face-parsing net: hair, background and clothing differ in colour from
    the face's skin; skin of the ears and neck does not.
    """
    lab = cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2Lab)
    sample = face_mask if exclude is None else face_mask & ~exclude
    pixels = lab[sample]
    if len(pixels) < 50:
        return np.ones(image.shape[:2], np.float32)

    # Chroma relative to lightness ((a*, b*) / L*) decides: a surface in shadow keeps that ratio while
    # its lightness and raw chroma fall. Lightness itself only has to stay within a broad band (a
    # white wall or black hair of skin-like hue is rejected).
    def relative_chroma(values: np.ndarray) -> np.ndarray:
        return values[..., 1:] / np.maximum(values[..., :1], 5.0)

    chroma = relative_chroma(pixels)
    mean = chroma.mean(axis=0)
    # Keep the central 90 % of the face's pixels so eyes, brows and lips do not widen the model.
    d0 = np.linalg.norm(chroma - mean, axis=1)
    core = chroma[d0 <= np.quantile(d0, 0.9)]
    inv = np.linalg.inv(np.cov(core.T) + np.eye(2) * 1e-4)
    diff = relative_chroma(lab).reshape(-1, 2) - mean
    d2 = np.einsum("ij,jk,ik->i", diff, inv, diff).reshape(image.shape[:2])
    # Full trust within 2.5 standard deviations, none beyond 4 (a chi-square with 2 degrees of freedom).
    chroma_ok = np.clip((16.0 - d2) / 10.0, 0.0, 1.0)
    l_face = np.median(pixels[:, 0])
    lightness = lab[..., 0]
    l_ok = np.clip(1.0 - np.maximum(l_face - 45.0 - lightness, lightness - l_face - 30.0) / 10.0, 0.0, 1.0)
    # And never near black, for a dark skin's band reaches down to it: a black collar under a face
    # of L* 29 read as skin, and a demo head's neck came out near-black (DARK_FLOOR).
    lo, hi = DARK_FLOOR[0] * l_face, DARK_FLOOR[1] * l_face
    l_ok = np.minimum(l_ok, np.clip((lightness - lo) / max(hi - lo, 1e-3), 0.0, 1.0))
    return (chroma_ok * l_ok).astype(np.float32)


def polygon_mask(shape: tuple[int, int], outline_xy: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """Pixels inside a polygon given in (x, y) pixel coordinates, optionally scaled about its centre."""
    pts = np.asarray(outline_xy, np.float64)
    centre = pts.mean(axis=0)
    pts = centre + (pts - centre) * (1.0 + grow)
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def skin_regions(
    likelihood: np.ndarray,
    face_outline: np.ndarray,
    person: np.ndarray | None,
    interocular: float,
) -> np.ndarray:
    """(H, W) float32 0..1: where a sample of the photo is this face's skin.

    Every pixel of the face outline counts. Outside it, a pixel counts when its colour is skin-like
    (``likelihood``, smoothed over a pixel or two, >= 0.5; specks of other colours smaller than
    SKIN_SPECK eye distances across, such as moles or pores in shadow, count too), the person
    segmentation covers it with a margin of PERSON_MARGIN eye distances, and it is connected
    through such pixels to the face outline: a skin-coloured wall, a badge on a cap or a shirt's
    light folds are not. The weight is 0 on the region's border pixel and rises over SKIN_RAMP eye
    distances inside (the face outline's too, where it meets a collar or a hat brim), so a
    bilinear sample near the border (four pixels) never reads what lies beyond it and the photo
    fades out rather than ending on an edge.
    """
    sigma = max(0.7, 0.015 * interocular)
    core = cv2.GaussianBlur(np.asarray(likelihood, np.float32), (0, 0), sigma) >= 0.5
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~core).astype(np.uint8), connectivity=4)
    speck = stats[:, cv2.CC_STAT_AREA] < (SKIN_SPECK * interocular) ** 2
    speck[0] = False  # label 0 is the skin itself
    core |= speck[labels]
    if person is not None:
        margin = max(1, int(round(PERSON_MARGIN * interocular)))
        kernel = disc(margin)
        core &= cv2.erode((person >= 0.5).astype(np.uint8), kernel).astype(bool)
    core |= face_outline
    if face_outline.any():
        count, labels = cv2.connectedComponents(core.astype(np.uint8), connectivity=8)
        keep = np.bincount(labels[face_outline & core], minlength=count) > 0
        keep[0] = False
        core = keep[labels]
    # The signed distance to the region's border, smoothed over a pixel: its level lines no longer
    # step with the pixel grid (a step, stretched over a jaw turning away, was a ragged edge in the
    # atlas) and the border pixel still reads about 1, so the weight there stays 0.
    mask = core.astype(np.uint8)
    signed = cv2.distanceTransform(mask, cv2.DIST_L2, 5) - cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)
    signed = cv2.GaussianBlur(signed, (0, 0), SKIN_CONTOUR_PX)
    ramp = max(1.5, SKIN_RAMP * interocular)
    return np.clip((signed - 1.0) / ramp, 0.0, 1.0).astype(np.float32)


def prepare_view(
    image: np.ndarray,
    positions: np.ndarray,
    triangles: np.ndarray,
    registration,
    face_outline_xy: np.ndarray,
    feature_mask: np.ndarray | None,
    mesh_scale: float,
    max_render: int = 1024,
    person: np.ndarray | None = None,
) -> PortraitView:
    """Render the mesh's depth from the registered camera and find this face's skin in the portrait.

    ``person`` (H, W) 0..1, optional: where the photo shows the person rather than the background
    (``face.PersonSegmenter``); outside the face outline, skin must also be person (``skin_regions``).
    """
    from .camera import Camera

    h, w = image.shape[:2]
    cam = registration.camera
    # Render depth at about max_render pixels whatever the photo's size: a small photo's face is only
    # a hundred pixels wide, too coarse a depth map for the steep parts of a face (nose, brow).
    zscale = max_render / max(h, w)
    small = Camera(
        cam.fx * zscale,
        cam.fy * zscale,
        cam.cx * zscale,
        cam.cy * zscale,
        cam.R,
        cam.t,
        max(1, int(round(w * zscale))),
        max(1, int(round(h * zscale))),
    )
    tri_id, _, depth = raster.rasterize_camera(positions, triangles, small)
    covered = tri_id >= 0
    edge = cv2.distanceTransform(covered.astype(np.uint8), cv2.DIST_L2, 5) / np.float32(zscale)
    # Skin without the colour test: inside the face outline, pulled in a little, since the mesh's
    # silhouette rarely matches the photo's exactly and the background starts right outside it.
    outline = polygon_mask((h, w), face_outline_xy, grow=-0.04)
    likelihood = skin_likelihood(image, polygon_mask((h, w), face_outline_xy, grow=-0.1), feature_mask)
    skin = skin_regions(likelihood, outline, person, float(registration.interocular))
    # Highlights on the face's skin, away from its border, where a fringe's or the background's
    # whites meet it (the hair's own step takes the fringe).
    inner = polygon_mask((h, w), face_outline_xy, grow=-0.15)
    burnt = burnt_out(image, inner, feature_mask, float(registration.interocular))
    near = cv2.erode(np.where(covered, depth, np.float32(3e38)).astype(np.float32), np.ones((3, 3), np.uint8))
    near = np.where(near >= np.float32(3e38), np.inf, near).astype(np.float32)
    return PortraitView(
        image, near, zscale, edge, skin, outline, cam.center, DEPTH_TOLERANCE * mesh_scale, burnt
    )


def burnt_out(
    image: np.ndarray, outline: np.ndarray, feature_mask: np.ndarray | None, interocular: float
) -> np.ndarray:
    """(H, W) float32 0..1: how surely each pixel inside the face ``outline`` is skin the camera
    burnt out to white (clipped, ``BURNT_OUT``, in every channel, ``BURNT_WHITE``; grown by
    ``BURNT_REACH``), off the eyes and lips
    (``feature_mask``: eye whites and teeth are white); zero where more than ``BURNT_MAX_SHARE`` of the
    outline is (an overexposed photo's face is read as it is). The texels read there are filled from
    the skin around, as unseen ones are."""
    h, w = outline.shape
    out = np.zeros((h, w), np.float32)
    if not outline.any():
        return out
    x0, y0, x1, y1 = box_around(np.argwhere(outline)[:, ::-1].astype(np.float32), 2, outline.shape)
    box = (slice(y0, y1), slice(x0, x1))
    rgb = image[box][..., :3]
    inside = outline[box] if feature_mask is None else outline[box] & ~feature_mask[box]
    burnt = smoothstep((rgb.max(axis=2) - BURNT_OUT[0]) / (BURNT_OUT[1] - BURNT_OUT[0])).astype(np.float32)
    burnt *= smoothstep((rgb.min(axis=2) - BURNT_WHITE[0]) / (BURNT_WHITE[1] - BURNT_WHITE[0])) * inside
    if float((burnt > 0.5).sum()) > BURNT_MAX_SHARE * float(outline.sum()):
        return out
    reach = max(int(round(BURNT_REACH * interocular)), 1)
    out[box] = cv2.dilate(burnt, disc(reach))
    return out


def read_softly(
    portrait: np.ndarray,
    coords: np.ndarray,
    stretch: np.ndarray,
    sharp: np.ndarray,
    interocular: float,
    skin: np.ndarray | None = None,
) -> np.ndarray:
    """(N, 3) the colours ``sharp`` (the photo read at ``coords``, N points) where the photo is read
    undistorted, the photo blurred by SOFT_SIGMA_IOD where it is stretched over the surface (a
    smoothstep from STRETCH_FULL to STRETCH_SOFT of ``stretch``): seen at a grazing angle, a texel
    is the photo's colour there, not its detail drawn out.

    The blur is the skin's own (``skin``, the view's skin weight per photo pixel: a normalised
    convolution): a stretched texel lies near the head's outline, and a plain blur there drew in the
    background and the hair beyond it, which moved with any change of the camera (copies of one mesh,
    turned, differed more)."""
    stretch = np.asarray(stretch, np.float32)
    # Beyond STRETCH_NONE the photo has no weight: what is read there does not matter.
    soft = np.isfinite(coords[:, 0]) & (stretch > STRETCH_FULL) & (stretch < STRETCH_NONE)
    t = smoothstep((stretch[soft] - STRETCH_FULL) / (STRETCH_SOFT - STRETCH_FULL))
    out = np.array(sharp, np.float32)
    if not soft.any():
        return out
    sigma = max(SOFT_SIGMA_IOD * float(interocular), 0.5)
    # Only the photo's box around the texels read softly (and the blur's reach): a face is a small
    # part of a large photo.
    xy = take_rows(coords, soft)
    x0, y0, x1, y1 = box_around(xy, int(np.ceil(4 * sigma)) + 2, portrait.shape)
    box = (slice(y0, y1), slice(x0, x1))
    weight = np.ones((y1 - y0, x1 - x0), np.float32) if skin is None else np.asarray(skin, np.float32)[box]
    stack = np.concatenate([portrait[box][..., :3] * weight[..., None], weight[..., None]], axis=-1)
    blurred = cv2.GaussianBlur(stack, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    blurred = sample_image(blurred, xy - np.array([x0, y0], np.float32))
    share = blurred[:, 3:]
    blend = t[:, None] * np.clip(share / SOFT_MIN_SKIN, 0.0, 1.0)
    put_rows(
        out, soft, (1.0 - blend) * take_rows(out, soft) + blend * blurred[:, :3] / np.maximum(share, 1e-6)
    )
    return out


def stretch_weight(stretch: np.ndarray) -> np.ndarray:
    """Confidence factor of a stretch: 1 up to STRETCH_FULL, a smoothstep down to 0 at STRETCH_NONE."""
    t = (STRETCH_NONE - np.asarray(stretch, np.float32)) / (STRETCH_NONE - STRETCH_FULL)
    return smoothstep(t).astype(np.float32)


def warp_jacobian_table(
    warp, lo: np.ndarray, hi: np.ndarray, cells: int = 16
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The registration's 2D warp's Jacobian on a ``cells`` x ``cells`` grid over camera pixels
    ``lo``..``hi``: (cells, cells, 4) d(u, v)/dx then d(u, v)/dy, the grid's first node (x, y) and
    its step (x, y).

    The warp is smooth (a thin-plate spline, a quadratic correction): central differences on a
    coarse grid (a head is about four eye distances wide in the photo: a quarter of one per cell),
    interpolated bilinearly, cost a thousand warp evaluations instead of two per point. The samples
    stay inside ``lo``..``hi`` (the warp's own grid covers the points' extent).
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    step = np.maximum(hi - lo, 1.0) / (cells - 1)
    eps = 0.5 * step
    gx = np.linspace(lo[0] + eps[0], hi[0] - eps[0], cells)
    gy = np.linspace(lo[1] + eps[1], hi[1] - eps[1], cells)
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)  # rows y, columns x
    ex, ey = np.array([eps[0], 0.0]), np.array([0.0, eps[1]])
    warped = np.asarray(warp(np.concatenate([grid + ex, grid - ex, grid + ey, grid - ey])), np.float64)
    warped = warped.reshape(4, -1, 2)
    d_dx = (warped[0] - warped[1]) / (2 * eps[0])
    d_dy = (warped[2] - warped[3]) / (2 * eps[1])
    table = np.concatenate([d_dx, d_dy], axis=1).reshape(cells, cells, 4).astype(np.float32)
    origin = np.array([gx[0], gy[0]])
    spacing = np.array([max(gx[1] - gx[0], 1e-6), max(gy[1] - gy[0], 1e-6)])
    return table, origin, spacing


@njit(cache=True, inline="always")
def _bilinear(table, y0, x0, c00, c01, c10, c11, k):
    """Channel ``k`` of ``table`` bilinear between the four nodes from (``y0``, ``x0``)."""
    return (
        c00 * table[y0, x0, k]
        + c01 * table[y0, x0 + 1, k]
        + c10 * table[y0 + 1, x0, k]
        + c11 * table[y0 + 1, x0 + 1, k]
    )


@njit(cache=True, parallel=True)
def _stretch_kernel(
    points: np.ndarray,
    normals: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    intrinsics: np.ndarray,
    center: np.ndarray,
    table: np.ndarray,
    origin: np.ndarray,
    spacing: np.ndarray,
    where: np.ndarray,
    out: np.ndarray,
) -> None:
    """``footprint_stretch`` per point (inf where not ``where``): the camera's Jacobian on the
    tangent plane, times the warp's (bilinear in ``table``), and the ratio of the singular values."""
    fx, fy, cx, cy = intrinsics[0], intrinsics[1], intrinsics[2], intrinsics[3]
    cells_y, cells_x = table.shape[0], table.shape[1]
    for i in prange(points.shape[0]):
        if not where[i]:
            out[i] = np.inf
            continue
        px, py, pz = np.float64(points[i, 0]), np.float64(points[i, 1]), np.float64(points[i, 2])
        nx, ny, nz = np.float64(normals[i, 0]), np.float64(normals[i, 1]), np.float64(normals[i, 2])
        norm = np.sqrt(nx * nx + ny * ny + nz * nz)
        x = R[0, 0] * px + R[0, 1] * py + R[0, 2] * pz + t[0]
        y = R[1, 0] * px + R[1, 1] * py + R[1, 2] * pz + t[1]
        z = R[2, 0] * px + R[2, 1] * py + R[2, 2] * pz + t[2]
        facing = nx * (center[0] - px) + ny * (center[1] - py) + nz * (center[2] - pz)
        if norm < 1e-12 or z <= 1e-12 or facing <= 0.0:
            out[i] = np.inf
            continue
        nx, ny, nz = nx / norm, ny / norm, nz / norm
        # d(u, v)/dp: rows fx/z (R0 - x/z R2) and fy/z (R1 - y/z R2), then onto the tangent plane.
        ax = fx / z * (R[0, 0] - x / z * R[2, 0])
        ay = fx / z * (R[0, 1] - x / z * R[2, 1])
        az = fx / z * (R[0, 2] - x / z * R[2, 2])
        bx = fy / z * (R[1, 0] - y / z * R[2, 0])
        by = fy / z * (R[1, 1] - y / z * R[2, 1])
        bz = fy / z * (R[1, 2] - y / z * R[2, 2])
        da = ax * nx + ay * ny + az * nz
        db = bx * nx + by * ny + bz * nz
        ax, ay, az = ax - da * nx, ay - da * ny, az - da * nz
        bx, by, bz = bx - db * nx, by - db * ny, bz - db * nz
        # The warp's Jacobian at the camera pixel, bilinear between grid nodes (clamped).
        gx = min(max((fx * x / z + cx - origin[0]) / spacing[0], 0.0), cells_x - 1.0)
        gy = min(max((fy * y / z + cy - origin[1]) / spacing[1], 0.0), cells_y - 1.0)
        x0 = min(int(gx), cells_x - 2) if cells_x > 1 else 0
        y0 = min(int(gy), cells_y - 2) if cells_y > 1 else 0
        wx, wy = gx - x0, gy - y0
        c00, c01 = (1 - wx) * (1 - wy), wx * (1 - wy)
        c10, c11 = (1 - wx) * wy, wx * wy
        j0 = _bilinear(table, y0, x0, c00, c01, c10, c11, 0)
        j1 = _bilinear(table, y0, x0, c00, c01, c10, c11, 1)
        j2 = _bilinear(table, y0, x0, c00, c01, c10, c11, 2)
        j3 = _bilinear(table, y0, x0, c00, c01, c10, c11, 3)
        # table: (du/dx, dv/dx, du/dy, dv/dy); the rows of the composite are du/dp and dv/dp.
        r1x, r1y, r1z = j0 * ax + j2 * bx, j0 * ay + j2 * by, j0 * az + j2 * bz
        r2x, r2y, r2z = j1 * ax + j3 * bx, j1 * ay + j3 * by, j1 * az + j3 * bz
        s11 = r1x * r1x + r1y * r1y + r1z * r1z
        s22 = r2x * r2x + r2y * r2y + r2z * r2z
        s12 = r1x * r2x + r1y * r2y + r1z * r2z
        half = 0.5 * (s11 + s22)
        root = np.sqrt(max(half * half - (s11 * s22 - s12 * s12), 0.0))
        big, small = half + root, max(half - root, 0.0)
        out[i] = np.sqrt(big / small) if small > big * 1e-12 else np.inf


@njit(cache=True)
def _sparse_extent(xy: np.ndarray, where: np.ndarray, stride: int) -> np.ndarray:
    """(x0, y0, x1, y1): the bounding box of every ``stride``-th point of ``where`` with finite
    coordinates; (0, 0, 1, 1) when there is none."""
    x0, y0, x1, y1 = np.inf, np.inf, -np.inf, -np.inf
    taken = 0
    for i in range(xy.shape[0]):
        if not where[i]:
            continue
        taken += 1
        if (taken - 1) % stride != 0 or not (np.isfinite(xy[i, 0]) and np.isfinite(xy[i, 1])):
            continue
        x0, x1 = min(x0, xy[i, 0]), max(x1, xy[i, 0])
        y0, y1 = min(y0, xy[i, 1]), max(y1, xy[i, 1])
    if x0 > x1:
        return np.array([0.0, 0.0, 1.0, 1.0])
    return np.array([x0, y0, x1, y1])


def footprint_stretch(
    registration,
    points: np.ndarray,
    normals: np.ndarray,
    cam_xy: np.ndarray | None = None,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) how stretched the photo is over the surface at each point: sigma_max / sigma_min of the
    Jacobian of surface -> portrait pixels (camera, the point's tangent plane, the warp).

    A pinhole camera's Jacobian on the tangent plane of normal ``n`` has singular values of about
    ``f / z`` across the view and ``f / z * cos`` along it: the stretch is ``1 / cos`` of the
    viewing angle in the image centre, more off-centre and where the warp compresses. ``inf`` where
    the surface faces away from the camera or the normal is missing. ``cam_xy``, optional: the
    points' camera pixels, if already known (for the warp's extent); ``where``, optional: the points
    that need it (inf elsewhere).
    """
    cam = registration.camera
    p = np.ascontiguousarray(points, np.float32)
    out = np.empty(len(p), np.float32)
    if len(p) == 0:
        return out
    where = np.ones(len(p), bool) if where is None else np.ascontiguousarray(where, np.bool_)
    if cam_xy is None:
        cam_xy = cam.project(p)[0]
    # The warp's extent from every 8th point is enough: the table's edges are clamped.
    extent = _sparse_extent(np.ascontiguousarray(cam_xy, np.float64), where, 8)
    table, origin, spacing = warp_jacobian_table(registration.warp, extent[:2], extent[2:])
    intrinsics = np.array([cam.fx, cam.fy, cam.cx, cam.cy], np.float64)
    _stretch_kernel(
        p,
        np.ascontiguousarray(normals, np.float32),
        np.ascontiguousarray(cam.R, np.float64),
        np.ascontiguousarray(cam.t, np.float64),
        intrinsics,
        np.asarray(cam.center, np.float64),
        table,
        origin,
        spacing,
        where,
        out,
    )
    return out


def sampling_weight(portrait_coords: np.ndarray, chart: np.ndarray, band_rows: int) -> np.ndarray:
    """(S, S) float32 0..1: how well an atlas holds the photo at each texel, from its portrait
    coordinates alone (finite differences, so the camera, the warp and the atlas's own layout all
    count).

    Where one atlas step spans more than a photo pixel along one axis and much less along the other
    (the neck or the bottom of a bust, where the atlas's rays run along the surface), the photo's
    detail is sampled coarsely along the long axis and baked as streaks that long. The ratio of the
    Jacobian's singular values (pixels per texel) to the larger of the small one and one pixel is
    that risk: full weight up to STRETCH_FULL, none from STRETCH_NONE, like the surface stretch. A
    photo sampled finely in both directions, or coarsely in both (a large photo: the bake adds its
    fine detail), keeps its weight.
    """
    xy = np.ascontiguousarray(portrait_coords, np.float32)
    ratio = np.empty(xy.shape[:2], np.float32)
    _sampling_ratio(xy, np.ascontiguousarray(chart), int(band_rows), ratio)
    return np.where(np.isfinite(xy[..., 0]), stretch_weight(ratio), 0.0).astype(np.float32)


@njit(cache=True, inline="always")
def _difference(xy: np.ndarray, chart: np.ndarray, r: int, c: int, dr: int, dc: int, wrap: bool):
    """Mean of the forward and backward differences of ``xy`` at (r, c) along (dr, dc) within the
    chart; (0, 0) where neither neighbour is usable."""
    h, w = chart.shape
    sx, sy, n = 0.0, 0.0, 0
    for side in (-1, 1):
        rr = r + side * dr
        cc = c + side * dc
        if cc < 0 or cc >= w:
            if not wrap:
                continue
            cc = cc % w
        if rr < 0 or rr >= h:
            continue
        if chart[rr, cc] != chart[r, c] or not np.isfinite(xy[rr, cc, 0]):
            continue
        sx += (xy[rr, cc, 0] - xy[r, c, 0]) * side
        sy += (xy[rr, cc, 1] - xy[r, c, 1]) * side
        n += 1
    if n > 1:
        sx, sy = sx / n, sy / n
    return sx, sy


@njit(cache=True, parallel=True)
def _sampling_ratio(xy: np.ndarray, chart: np.ndarray, band_rows: int, out: np.ndarray) -> None:
    """``sampling_weight``'s ratio per texel: central (or one-sided) differences of ``xy`` along
    both atlas axes within a chart (columns wrap in the band), singular values of the 2 x 2."""
    h, w = chart.shape
    for r in prange(h):
        for c in range(w):
            if not np.isfinite(xy[r, c, 0]):
                out[r, c] = 0.0
                continue
            xx, xy_ = _difference(xy, chart, r, c, 0, 1, r < band_rows)
            yx, yy = _difference(xy, chart, r, c, 1, 0, False)
            a = xx * xx + xy_ * xy_
            b = yx * yx + yy * yy
            cr = xx * yx + xy_ * yy
            half = 0.5 * (a + b)
            root = np.sqrt(max(half * half - (a * b - cr * cr), 0.0))
            out[r, c] = np.sqrt(half + root) / max(np.sqrt(max(half - root, 0.0)), 1.0)


def keep_narrow_stretch(weight: np.ndarray, band_rows: int, radius: int) -> np.ndarray:
    """The stretch weight of an atlas (S, S) with narrow low patches raised to their surroundings'.

    A surface turns steeply away across a crease's wall (the sides of the nose, the eye corners),
    and that is also the direction the photo smears in: over a wall narrower than ``2 * radius``
    texels a smear stays that short, and the photo's colour there beats a fill. A grey closing
    with a square of side ``2 * radius + 1`` (per chart, the band wrapping) finds those walls; wide
    stretched regions (the sides of the head, under the chin) keep their low weight.
    """
    from .atlas_filters import per_chart

    if radius < 1:
        return weight
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)

    def close(part: np.ndarray, wrap: bool) -> np.ndarray:
        return cv2.morphologyEx(part, cv2.MORPH_CLOSE, kernel)

    closed = per_chart(close, np.ascontiguousarray(weight, np.float32), band_rows, radius + 1)
    return np.maximum(weight, closed).astype(np.float32)


def feather_occlusions(confidence: np.ndarray, occluded: np.ndarray, geometry) -> np.ndarray:
    """An atlas's confidence (S, S) faded in over OCCLUSION_FEATHER from the texels the camera faces
    but cannot see (``occluded``: behind the chin, the nose's wings, a fold), instead of stepping
    from the photo to the fill there: the depth test is exact, the photo's edge there is not (the
    contour of whatever hides them slides with any misregistration), and the step read as a hard-edged
    shape under the chin and crescents beside the nose."""
    radius = OCCLUSION_FEATHER * geometry.layout.face_texels_per_iod
    if radius < 0.5 or not occluded.any():
        return confidence
    distance = cv2.distanceTransform((~occluded).astype(np.uint8), cv2.DIST_L2, 3)
    return (confidence * smoothstep(distance / radius)).astype(np.float32)


def keep_joined_to_face(confidence: np.ndarray, geometry) -> np.ndarray:
    """An atlas's confidence (S, S) with the photo-backed islands that do not touch the face removed.

    Where the surface between the face and a patch is too stretched to use (under the jaw, the
    temples), the patch the photo still shows beyond it (the neck between a collar's lapels, the
    rim of an ear) floats in the fill with other light and other texture: an artist would rather
    have a clean neck or ear. Islands are the connected components of texels with confidence; one
    is kept when it holds texels of the face region, or (a cap's) when its ring, the latitudes the
    cap shares with the band, lands on a kept island of the band.
    """
    from .atlas import BAND

    face = geometry.face
    seen = (confidence > 0.02) & geometry.mask
    if face is None or not (face & seen).any():
        return confidence
    count, labels = cv2.connectedComponents(seen.astype(np.uint8), connectivity=8)
    keep = np.bincount(labels[face & seen], minlength=count) > 0
    keep[0] = False
    in_cap = seen & (geometry.chart != BAND)
    ids = geometry.tri_id[in_cap]
    ring = geometry.triangle_chart[ids] == BAND
    if ring.any():
        rows, cols = np.nonzero(in_cap)
        rows, cols = rows[ring], cols[ring]
        band_xy = (geometry.triangle_xy[ids[ring]] * geometry.bary[rows, cols][..., None]).sum(axis=1)
        bx = np.clip(band_xy[:, 0].astype(np.int64) % geometry.size, 0, geometry.size - 1)
        by = np.clip(band_xy[:, 1].astype(np.int64), 0, geometry.band_rows - 1)
        joined = keep[labels[by, bx]]
        keep |= np.bincount(labels[rows[joined], cols[joined]], minlength=count) > 0
        keep[0] = False
    return np.where(keep[labels], confidence, 0.0).astype(np.float32)


@dataclass
class SurfaceProjection:
    """Surface points in the portrait (``project_surface``)."""

    coords: np.ndarray
    """(N, 2) portrait pixel coordinates, NaN where the camera does not see the point."""
    confidence: np.ndarray
    """(N,) 0..1 how far the photo's colour at ``coords`` is this point's skin (``usable`` times the
    stretch weight)."""
    stretch: np.ndarray
    """(N,) ``footprint_stretch``: 1 undistorted, inf facing away."""
    usable: np.ndarray
    """(N,) the confidence before the stretch: seen, away from the silhouette, skin. What is
    low here and not for stretch is hidden by something (hair, hands, glasses, the background)."""
    facing: np.ndarray
    """(N,) cosine between the normal and the direction to the camera (0 where the normal is missing):
    how frontally the camera sees each point."""
    camera_xy: np.ndarray
    """(N, 2) the points' pixels through the registered camera, before the warp."""


WARP_TABLE_STEP = 1.0 / 32.0
"""Eye distances between the nodes of the table the registration's warp is read from in
``project_surface``: half the warp's own grid (``registration.GRID_STEP``). On the demo head with
Grace Hopper the table's reading is within 0.23 pixel of the exact spline, where the warp's own
grid reading is within 0.46; the projection's coordinates move by 0.05-0.26 pixel at the 99.9th
percentile (scanned and demo heads, astronaut and Grace Hopper), less than that grid's own error."""


def warp_table(
    warp, lo: np.ndarray, hi: np.ndarray, step: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The warp's displacement ``warp(p) - p`` on a grid of camera pixels ``lo``..``hi`` (inclusive)
    ``step`` pixels apart: (rows, cols, 2) float64 (rows along y), the first node (x, y) and the
    step (x, y).

    The warp costs a bilinear lookup and a dozen array passes per point through its own interface;
    read from this table inside the projection's kernel it costs a bilinear lookup, for a few
    thousand evaluations of the warp instead of one per atlas texel.
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    cells = np.maximum(np.ceil((hi - lo) / step).astype(np.int64), 1) + 1
    gx = lo[0] + step * np.arange(cells[0])
    gy = lo[1] + step * np.arange(cells[1])
    nodes = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)  # rows y, columns x
    moved = np.asarray(warp(nodes), np.float64) - nodes
    table = np.ascontiguousarray(moved.reshape(cells[1], cells[0], 2))
    return table, lo.copy(), np.array([step, step], np.float64)


@njit(cache=True, parallel=True)
def _camera_kernel(points, R, t, intrinsics, cam_xy, depth) -> None:
    """Camera pixel (x, y) and depth of each point (``camera.Camera.project``'s arithmetic)."""
    fx, fy, cx, cy = intrinsics[0], intrinsics[1], intrinsics[2], intrinsics[3]
    for i in prange(points.shape[0]):
        px, py, pz = np.float64(points[i, 0]), np.float64(points[i, 1]), np.float64(points[i, 2])
        x = R[0, 0] * px + R[0, 1] * py + R[0, 2] * pz + t[0]
        y = R[1, 0] * px + R[1, 1] * py + R[1, 2] * pz + t[1]
        z = R[2, 0] * px + R[2, 1] * py + R[2, 2] * pz + t[2]
        safe = 1e-12 if abs(z) < 1e-12 else z
        cam_xy[i, 0] = fx * x / safe + cx
        cam_xy[i, 1] = fy * y / safe + cy
        depth[i] = z


@njit(cache=True)
def _inside_extent(cam_xy, width, height) -> np.ndarray:
    """(x0, y0, x1, y1): the bounding box of the camera pixels inside the image; (0, 0, 1, 1) if none."""
    x0, y0, x1, y1 = np.inf, np.inf, -np.inf, -np.inf
    for i in range(cam_xy.shape[0]):
        x, y = cam_xy[i, 0], cam_xy[i, 1]
        if 0.0 <= x < width and 0.0 <= y < height:
            x0, x1 = min(x0, x), max(x1, x)
            y0, y1 = min(y0, y), max(y1, y)
    if x0 > x1:
        return np.array([0.0, 0.0, 1.0, 1.0])
    return np.array([x0, y0, x1, y1])


@njit(cache=True, parallel=True)
def _visibility_kernel(
    points, normals, cam_xy, depth, center, table, origin, spacing, size, znear, zscale, fz,
    tolerance, edge, ramp, skin, warped, facing, visible, usable, scratch,
) -> None:  # fmt: skip
    """Per point: the warp (bilinear in ``table``), the depth test, the silhouette ramp and the skin
    weight (``project_surface``). The silhouette distance ``edge`` (h, w, 1) and the ``skin`` map
    (H, W, 1) are read bilinearly (``imaging.bilinear_at``; ``scratch`` (N,) takes the first): read
    at the nearest pixel, their borders were staircases in the atlas, each step a photo pixel
    stretched over a jaw turning away (8-10 texels on the demo head's jaw at 1024), which the fill
    carried on as ragged streaks."""
    width, height = size[0], size[1]
    zh, zw = znear.shape
    rows, cols = table.shape[0], table.shape[1]
    for i in prange(points.shape[0]):
        x, y = cam_xy[i, 0], cam_xy[i, 1]
        gx = min(max((x - origin[0]) / spacing[0], 0.0), cols - 1.0)
        gy = min(max((y - origin[1]) / spacing[1], 0.0), rows - 1.0)
        x0 = min(int(gx), cols - 2) if cols > 1 else 0
        y0 = min(int(gy), rows - 2) if rows > 1 else 0
        wx, wy = gx - x0, gy - y0
        c00, c01 = (1 - wx) * (1 - wy), wx * (1 - wy)
        c10, c11 = (1 - wx) * wy, wx * wy
        u = x + _bilinear(table, y0, x0, c00, c01, c10, c11, 0)
        v = y + _bilinear(table, y0, x0, c00, c01, c10, c11, 1)
        warped[i, 0], warped[i, 1] = u, v
        dx = center[0] - points[i, 0]
        dy = center[1] - points[i, 1]
        dz = center[2] - points[i, 2]
        nx, ny, nz = normals[i, 0], normals[i, 1], normals[i, 2]
        norms = (nx * nx + ny * ny + nz * nz) * (dx * dx + dy * dy + dz * dz)
        cos = (nx * dx + ny * dy + nz * dz) / np.sqrt(max(norms, 1e-20))
        facing[i] = cos
        z = depth[i]
        zx = min(max(int(x * zscale), 0), zw - 1)
        zy = min(max(int(y * zscale), 0), zh - 1)
        inside = 0.0 <= x < width and 0.0 <= y < height and 0.0 <= u < width and 0.0 <= v < height
        # The depth map is a sampled surface: allow for its slope over a pixel (steeper where the
        # surface turns away), on top of a fixed tolerance for the nearest-of-neighbours lookup.
        slope = 1.0 / max(abs(cos), 0.2)
        seen = inside and z > 0 and z <= znear[zy, zx] + tolerance + 2.0 * (z / fz) * slope
        visible[i] = seen
        if not seen:
            usable[i] = 0.0
            continue
        bilinear_at(edge, x * zscale, y * zscale, 0, scratch[i : i + 1])
        silhouette = min(max(scratch[i] / ramp, 0.0), 1.0)
        bilinear_at(skin, u, v, 0, usable[i : i + 1])
        usable[i] *= silhouette


def _channel(image: np.ndarray) -> np.ndarray:
    """A (H, W) map as the (H, W, 1) float32 image ``imaging.bilinear_at`` reads."""
    return np.ascontiguousarray(image, np.float32)[..., None]


def project_surface(
    view: PortraitView, registration, points: np.ndarray, normals: np.ndarray
) -> SurfaceProjection:
    """Portrait coordinates, confidence and stretch of surface points (mesh space).

    Confidence multiplies: visible (depth test); facing the camera and ``stretch_weight`` of the
    photo's stretch over the surface; away from the silhouette (a ramp of 4 % of the eye distance);
    inside the photo; skin (``skin_regions``: the face outline and the skin joined to it, so the
    photo fades out where it meets a collar or a hat brim instead of being cut off). One compiled
    pass per point (the warp read from ``warp_table``): an atlas has a million of them.
    """
    points = np.ascontiguousarray(points, np.float32)
    n = np.ascontiguousarray(normals, np.float32)
    h, w = view.image.shape[:2]
    cam = registration.camera
    count = len(points)
    cam_xy, depth = np.empty((count, 2), np.float64), np.empty(count, np.float64)
    intrinsics = np.array([cam.fx, cam.fy, cam.cx, cam.cy], np.float64)
    rotation = np.ascontiguousarray(cam.R, np.float64)
    translation = np.ascontiguousarray(cam.t, np.float64)
    _camera_kernel(points, rotation, translation, intrinsics, cam_xy, depth)

    extent = _inside_extent(cam_xy, float(w), float(h))
    step = max(WARP_TABLE_STEP * float(registration.interocular), 0.25)
    table, origin, spacing = warp_table(registration.warp, extent[:2] - step, extent[2:] + step, step)
    warped = np.empty((count, 2), np.float64)
    facing = np.empty(count, np.float32)
    visible = np.empty(count, np.bool_)
    usable = np.empty(count, np.float32)
    _visibility_kernel(
        points, n, cam_xy, depth, np.asarray(view.camera_center, np.float64), table, origin, spacing,
        np.array([w, h], np.float64), view.zbuffer_near, float(view.zscale), float(cam.fx * view.zscale),
        float(view.tolerance), _channel(view.edge_distance), 0.04 * float(registration.interocular),
        _channel(view.skin), warped, facing, visible, usable, np.empty(count, np.float32),
    )  # fmt: skip

    stretch = footprint_stretch(registration, points, n, cam_xy, where=visible)  # inf unseen
    confidence = (usable * stretch_weight(stretch)).astype(np.float32)
    coords = warped.astype(np.float32)
    put_rows(coords, ~visible, np.full(2, np.nan, np.float32))  # (what the kernel left unwritten)
    return SurfaceProjection(coords, confidence, stretch, usable, facing, cam_xy)


def warm_up() -> None:
    """Load the compiled kernels (numba's on-disk cache) ahead of the first request."""
    from types import SimpleNamespace

    from .camera import Camera

    camera = Camera.look_at(np.array([0.0, 0.0, 5.0]), np.zeros(3), np.array([0.0, 1.0, 0.0]), 30.0, 8, 8)
    registration = SimpleNamespace(
        camera=camera, warp=lambda p: np.asarray(p, np.float64).copy(), interocular=4.0
    )
    flat = np.zeros((8, 8), np.float32)
    view = PortraitView(
        np.zeros((8, 8, 3), np.float32), flat + 5.0, 1.0, flat, flat, flat > 0, camera.center, 0.01
    )
    project_surface(view, registration, np.zeros((1, 3)), np.array([[0.0, 0.0, 1.0]]))
    sampling_weight(np.zeros((4, 4, 2), np.float32), np.ones((4, 4), np.uint8), 4)
