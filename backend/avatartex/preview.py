"""Quick look at a textured head: front, side and back renders side by side, on the CPU.

Used by ``avatartex preview`` and the README demo, and (untextured) to render a mesh's geometry for
landmark detection. Shading is deliberately plain: Lambert from a light at the camera plus ambient,
so what one sees is the texture, not the lighting.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from . import uvtiles
from .camera import Camera
from .imaging import sample_uv
from .mesh import AxisLike, parse_axis
from .protocol import AvatarTexError, ErrorCode
from .raster import interpolate, rasterize_camera

VIEW_AZIMUTHS = {"front": 0.0, "left": 90.0, "side": 90.0, "back": 180.0, "right": -90.0}
"""Named views as azimuths in degrees around the up axis: 0 looks at the face, 90 at the character's
left side (+x for a glTF head: up +Y, face towards +Z)."""

BACKGROUND = (0.5, 0.5, 0.5)
AMBIENT = 0.25
UNTEXTURED_ALBEDO = 0.8
FOV_Y_DEG = 20.0
"""Narrow field of view: little perspective distortion, close to how portraits are taken."""
MAX_SIZE = 4096
"""Largest view edge: each view is rendered at twice it (supersampled), and a size of 8192 took 157 s
and 17.5 GB (4096: about a quarter of that); a larger view shows nothing more of a 4096 texture."""


def check_size(size: int) -> None:
    """A typed ``invalid_size`` error for a view edge outside 1 to ``MAX_SIZE``, before any work."""
    if not 1 <= size <= MAX_SIZE:
        raise AvatarTexError(
            ErrorCode.INVALID_SIZE,
            f"Preview size {size} is out of range: each view is 1 to {MAX_SIZE} pixels high.",
            "Use a size such as 512 (the default) or 1024.",
        )


def check_out_path(out_path: str | os.PathLike) -> None:
    """A typed error for a preview file not named ``.png``: the preview is written as PNG only, and
    another name would put PNG data under it."""
    suffix = os.path.splitext(os.fspath(out_path))[1]
    if suffix.lower() != ".png":
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"The preview {os.fspath(out_path)!r} is not named .png: the preview is written as a PNG image.",
            "Name the preview file with .png, e.g. out/preview.png.",
        )


def head_frame(up: AxisLike = "+y", forward: AxisLike = "+z") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal (up, forward, left) of a head; ``forward`` is made perpendicular to ``up``.

    ``left`` is the character's own left: ``up x forward`` (+x for up +Y, forward +Z).
    """
    up_v = parse_axis(up, "up axis")
    fwd = parse_axis(forward, "forward axis")
    fwd = fwd - up_v * float(fwd @ up_v)
    norm = float(np.linalg.norm(fwd))
    if norm < 1e-6:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            "The up and forward axes are parallel.",
            "Forward is the direction the face looks towards; it must differ from up.",
        )
    fwd /= norm
    return up_v, fwd, np.cross(up_v, fwd)


def view_camera(
    positions: np.ndarray,
    azimuth_deg: float,
    size: int,
    up: AxisLike = "+y",
    forward: AxisLike = "+z",
    fov_y_deg: float = FOV_Y_DEG,
    margin: float = 1.05,
) -> Camera:
    """A square camera on a circle around the mesh's bounding-box centre that frames it whole.

    The distance depends only on the mesh, not on the azimuth, so every view has the same scale.
    """
    up_v, fwd, left = head_frame(up, forward)
    positions = np.asarray(positions, np.float64)
    centre = 0.5 * (positions.min(axis=0) + positions.max(axis=0))
    radius = float(np.linalg.norm(positions - centre, axis=1).max()) or 1.0
    distance = margin * radius / np.sin(np.radians(fov_y_deg) / 2)
    a = np.radians(azimuth_deg)
    direction = np.cos(a) * fwd + np.sin(a) * left
    return Camera.look_at(centre + distance * direction, centre, up_v, fov_y_deg, size, size)


def _texture_float(texture: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 in 0..1 from float, uint8 or uint16, grey or RGB(A)."""
    tex = np.asarray(texture)
    if tex.ndim == 2:
        tex = tex[..., None]
    if tex.ndim != 3 or tex.shape[2] not in (1, 3, 4) or min(tex.shape[:2]) < 1:
        raise ValueError(f"texture must be (H, W), (H, W, 3) or (H, W, 4), got {tex.shape}")
    if np.issubdtype(tex.dtype, np.integer):
        tex = tex.astype(np.float32) / np.iinfo(tex.dtype).max
    tex = tex.astype(np.float32)
    if tex.shape[2] == 1:
        tex = np.repeat(tex, 3, axis=2)
    return tex[..., :3]


def _vertex_normals(mesh: object) -> np.ndarray:
    normals = getattr(mesh, "normals", None)
    if normals is not None and len(normals) == len(mesh.positions):
        return np.asarray(normals, np.float64)
    from .mesh import compute_normals

    return compute_normals(np.asarray(mesh.positions, np.float32), np.asarray(mesh.triangles))


def _albedo(uvs: np.ndarray, texture, tri_id: np.ndarray, bary: np.ndarray, covered: np.ndarray):
    """The covered pixels' texture colours, each read in its triangle's UV tile (``uvtiles``): one
    image repeats over every tile, as Blender's default *Repeat* extension shows it; a dict of
    images by UV square gives each tile its own, and a tile without one stays grey."""
    tri = tri_id[covered]
    square = uvtiles.triangle_tiles(uvs)[tri]
    uv = interpolate(uvs, None, tri_id, bary)[covered] - square
    if not isinstance(texture, dict):
        return sample_uv(_texture_float(texture), uv)
    albedo = np.full((len(uv), 3), UNTEXTURED_ALBEDO, np.float32)
    for tile, image in texture.items():
        mine = (square == np.asarray(tile)).all(axis=1)
        if mine.any():
            albedo[mine] = sample_uv(_texture_float(image), uv[mine])
    return albedo


def render_view(
    mesh: object,
    texture: np.ndarray | None,
    camera: Camera,
    background: Sequence[float] = BACKGROUND,
    light_dir: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Shade a mesh through one camera.

    Args:
        mesh: anything with ``positions`` (V, 3), ``triangles`` (T, 3), ``uvs`` (T, 3, 2) or None,
            and optionally ``normals`` (V, 3) (an :class:`avatartex.mesh.Mesh` does).
        texture: (H, W, 3) image sampled through the UVs (in every UV tile, as Blender repeats it),
            a dict of them by UV square ``(u, v)`` (UDIM tiles, ``uvtiles``), or None for plain
            grey geometry.
        camera: the camera; the image has its size.
        background: RGB of empty pixels.
        light_dir: world direction *towards* the light; None puts it at the camera (headlight).

    Returns:
        (H, W, 3) float32 image in 0..1 and the (H, W) bool mask of covered pixels.
    """
    positions = np.asarray(mesh.positions, np.float64)
    triangles = np.asarray(mesh.triangles, np.int64)
    tri_id, bary, _ = rasterize_camera(positions, triangles, camera)
    covered = tri_id >= 0
    image = np.empty((camera.height, camera.width, 3), np.float32)
    image[:] = np.asarray(background, np.float32)
    if not covered.any():
        return image, covered

    normals = interpolate(_vertex_normals(mesh), triangles, tri_id, bary)[covered]
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    to_light = camera.R[2] * -1.0 if light_dir is None else np.asarray(light_dir, np.float64)
    to_light = to_light / np.linalg.norm(to_light)
    # Two-sided: meshes with flipped or inconsistent winding still read correctly.
    lambert = np.abs(normals @ to_light.astype(np.float32))
    shade = (AMBIENT + (1.0 - AMBIENT) * lambert)[:, None]

    if texture is None:
        albedo = np.full((len(shade), 3), UNTEXTURED_ALBEDO, np.float32)
    else:
        uvs = getattr(mesh, "uvs", None)
        if uvs is None:
            raise AvatarTexError(
                ErrorCode.NO_UV_MAP,
                "The mesh has no UV map, so a texture cannot be shown.",
                "Unwrap the mesh (or pass --unwrap) before previewing a texture.",
            )
        albedo = _albedo(np.asarray(uvs, np.float32), texture, tri_id, bary, covered)
    image[covered] = np.clip(albedo * shade, 0.0, 1.0)
    return image, covered


def render_views(
    mesh: object,
    texture: np.ndarray | None,
    views: Sequence[str | float] = ("front", "left", "back"),
    size: int = 512,
    up: AxisLike = "+y",
    forward: AxisLike = "+z",
    supersample: int = 2,
) -> list[np.ndarray]:
    """Render a mesh from several views around its up axis, framed from its bounding box.

    Args:
        mesh: see :func:`render_view`.
        texture: (H, W, 3) float 0..1 or uint8 texture in the mesh's UV map, or None for grey.
        views: names of :data:`VIEW_AZIMUTHS` or azimuths in degrees (0 = facing the face,
            90 = the character's left side).
        size: edge length of each square view in pixels, 1 to ``MAX_SIZE``.
        up, forward: the head's up axis and the direction its face looks towards (glTF: +y, +z;
            Blender: +z, -y).
        supersample: render at this factor and average down, for smooth silhouettes.

    Returns:
        One (size, size, 3) float32 image in 0..1 per view.
    """
    check_size(size)
    ss = max(1, int(supersample))
    images = []
    for view in views:
        if isinstance(view, str):
            if view not in VIEW_AZIMUTHS:
                raise AvatarTexError(
                    ErrorCode.BAD_REQUEST,
                    f"Unknown view {view!r}.",
                    f"Use one of {', '.join(VIEW_AZIMUTHS)} or an angle in degrees.",
                )
            azimuth = VIEW_AZIMUTHS[view]
        else:
            azimuth = float(view)
        camera = view_camera(mesh.positions, azimuth, size * ss, up, forward)
        image, _ = render_view(mesh, texture, camera)
        images.append(image.reshape(size, ss, size, ss, 3).mean(axis=(1, 3)))
    return images


def render_preview(
    mesh: object,
    texture: np.ndarray | None,
    out_path: str | os.PathLike,
    size: int = 512,
    up: AxisLike = "+y",
    forward: AxisLike = "+z",
) -> np.ndarray:
    """Render front, left side and back side by side and write them as a PNG (atomically).

    Returns the (size, 3 * size, 3) uint8 image that was written. Raises AvatarTexError
    OUTPUT_NOT_WRITABLE when ``out_path`` cannot be written, BAD_REQUEST when it is not named
    ``.png`` and INVALID_SIZE for a ``size`` outside 1 to ``MAX_SIZE``.
    """
    from .image_io import save_png

    check_out_path(out_path)

    views = render_views(mesh, texture, ("front", "left", "back"), size, up, forward)
    strip = (np.clip(np.concatenate(views, axis=1), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    save_png(out_path, strip)
    return strip
