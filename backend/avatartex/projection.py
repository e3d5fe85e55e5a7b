"""Closed-form projection of the portrait onto the head: colour and confidence for surface points.

For every surface point (an atlas texel, or a texel of the mesh's own UV map at bake time): project it
into the portrait with the registered camera and warp, keep it where the camera sees it (depth test
against a render of the mesh from that camera) and where it faces the camera, and let the confidence
fall off with the viewing angle, near the silhouette, and where the photo does not show skin (hair,
background, hands) outside the face outline.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from . import raster


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
    """(H, W) float32 0..1 how much each portrait pixel looks like this face's skin."""
    face_outline: np.ndarray
    """(H, W) bool pixels inside the (slightly widened) face outline of the landmarks."""
    camera_center: np.ndarray
    """(3,) the registered camera's position in mesh space."""
    tolerance: float
    """Depth-test tolerance in mesh units."""


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
    return (chroma_ok * l_ok).astype(np.float32)


def polygon_mask(shape: tuple[int, int], outline_xy: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """Pixels inside a polygon given in (x, y) pixel coordinates, optionally scaled about its centre."""
    pts = np.asarray(outline_xy, np.float64)
    centre = pts.mean(axis=0)
    pts = centre + (pts - centre) * (1.0 + grow)
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


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
    """Render the mesh's depth from the registered camera and build the skin model of the portrait.

    ``person`` (H, W) 0..1, optional: where the photo shows the person rather than the background
    (``face.PersonSegmenter``); outside the face outline, skin must also be person.
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
    edge = ndimage.distance_transform_edt(covered).astype(np.float32) / zscale
    # Trusted without the skin test: inside the face outline, pulled in a little, since the mesh's
    # silhouette rarely matches the photo's exactly and the background starts right outside it.
    outline = polygon_mask((h, w), face_outline_xy, grow=-0.04)
    skin = skin_likelihood(image, polygon_mask((h, w), face_outline_xy, grow=-0.1), feature_mask)
    if person is not None:
        skin = skin * np.clip((person - 0.3) / 0.4, 0.0, 1.0)
    near = cv2.erode(np.where(covered, depth, np.float32(3e38)).astype(np.float32), np.ones((3, 3), np.uint8))
    near = np.where(near >= np.float32(3e38), np.inf, near).astype(np.float32)
    return PortraitView(image, near, zscale, edge, skin, outline, cam.center, 0.01 * mesh_scale)


def project_points(
    view: PortraitView, registration, points: np.ndarray, normals: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Portrait pixel coordinates (N, 2) (NaN where unseen) and confidence (N,) of surface points.

    ``points`` and ``normals`` are in mesh space. Confidence multiplies: visible (depth test);
    facing (smoothstep of the cosine between the normal and the direction to the camera, full from
    0.25, about 75 degrees: a grazing sample of the photo beats any fill); away from the silhouette
    (a ramp of 4 % of the eye distance); inside the photo; skin-like where the point falls outside
    the face outline.
    """
    points = np.asarray(points, np.float32)
    h, w = view.image.shape[:2]
    cam_xy, depth = registration.camera.project(points)
    warped = registration.warp(cam_xy)
    zh, zw = view.zbuffer_near.shape
    zx = np.clip((cam_xy[:, 0] * view.zscale).astype(np.int32), 0, zw - 1)
    zy = np.clip((cam_xy[:, 1] * view.zscale).astype(np.int32), 0, zh - 1)
    inside = (
        (cam_xy[:, 0] >= 0)
        & (cam_xy[:, 0] < w)
        & (cam_xy[:, 1] >= 0)
        & (cam_xy[:, 1] < h)
        & (warped[:, 0] >= 0)
        & (warped[:, 0] < w)
        & (warped[:, 1] >= 0)
        & (warped[:, 1] < h)
        & (depth > 0)
    )
    to_cam = (view.camera_center[None, :] - points).astype(np.float32)
    n = np.asarray(normals, np.float32)
    cos = np.einsum("ij,ij->i", n, to_cam) / np.sqrt(
        np.maximum(np.einsum("ij,ij->i", n, n) * np.einsum("ij,ij->i", to_cam, to_cam), 1e-20)
    )
    # The depth map is a sampled surface: allow for its slope over a pixel (steeper where the
    # surface turns away), on top of a fixed tolerance for the nearest-of-neighbours lookup.
    pixel_size = depth / (registration.camera.fx * view.zscale)
    slope = 1.0 / np.maximum(np.abs(cos), 0.2)
    visible = inside & (depth <= view.zbuffer_near[zy, zx] + view.tolerance + 2.0 * pixel_size * slope)

    facing = np.clip(cos / 0.25, 0, 1)
    facing = facing * facing * (3 - 2 * facing)

    ramp = 0.04 * registration.interocular
    silhouette = np.clip(view.edge_distance[zy, zx] / ramp, 0, 1)

    px = np.clip(warped[:, 0].astype(np.int32), 0, w - 1)
    py = np.clip(warped[:, 1].astype(np.int32), 0, h - 1)
    skin = np.where(view.face_outline[py, px], 1.0, view.skin[py, px])

    confidence = np.where(visible, facing * silhouette * skin, 0.0).astype(np.float32)
    coords = np.where(visible[:, None], warped, np.nan).astype(np.float32)
    return coords, confidence
