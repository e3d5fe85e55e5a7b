"""Training data of a stage-2 prior: textured heads converted into the head atlas.

Each head's own UV layout stops mattering: its landmarks give the head frame, and every atlas texel
reads the head's texture at the UV of its surface point.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from avatartex.face import default_landmarker
from avatartex.image_io import load_texture, save_png
from avatartex.imaging import sample_uv
from avatartex.mesh import load_mesh
from avatartex.pipeline.cache import HeadCache
from avatartex.pipeline.report import check_writable
from avatartex.protocol import AvatarTexError, ErrorCode

TEXTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def _texture_of(mesh_path: Path) -> np.ndarray:
    """The colour texture of a textured head file: ``<stem>.png/.jpg`` beside it, else its material's."""

    for suffix in TEXTURE_SUFFIXES:
        sibling = mesh_path.with_suffix(suffix)
        if sibling.exists():
            return load_texture(sibling)
    import trimesh

    scene = trimesh.load(mesh_path, force="scene", process=False)
    for geometry in scene.geometry.values():
        material = getattr(geometry.visual, "material", None)
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        if image is not None:
            return np.asarray(image.convert("RGB"), np.float32) / 255.0
    raise AvatarTexError(
        ErrorCode.MESH_INVALID,
        f"{mesh_path.name} has no texture.",
        f"Put its colour texture beside it as {mesh_path.stem}.png, or embed it in the file's material.",
    )


def atlas_from_textured_mesh(
    folder: str | os.PathLike, resolution: int, out_folder: str | os.PathLike
) -> Path:
    """Convert every textured head in ``folder`` into the head atlas: the training data of a stage-2 prior.

    Each head's own UV layout stops mattering: its landmarks give the head frame, every atlas texel
    reads the head's texture at the UV of its surface point. Writes ``out_folder/<stem>.png`` and
    returns ``out_folder``. Texels the head does not cover are filled with its mean colour.
    """
    source, out = Path(folder), Path(out_folder)
    check_writable(out)
    meshes = sorted(
        p for p in source.iterdir() if p.suffix.lower() in (".glb", ".gltf", ".obj", ".ply", ".npz")
    )
    if not meshes:
        raise AvatarTexError(
            ErrorCode.MESH_MISSING,
            f"No head meshes (.glb/.gltf/.obj/.ply/.npz) in {source}.",
            "Point --heads at a folder of textured heads.",
        )
    heads = HeadCache(size=1)
    landmarker = default_landmarker()
    for path in meshes:
        mesh = load_mesh(path)
        texture = _texture_of(path)
        geometry = heads.head(mesh, landmarker).atlas(resolution)
        hit = geometry.mask
        uv = (mesh.uvs[geometry.tri_id[hit]] * geometry.bary[hit][..., None]).sum(axis=1)
        colour = sample_uv(texture, uv)
        atlas = np.empty((resolution, resolution, 3), np.float32)
        atlas[:] = colour.mean(axis=0)
        atlas[hit] = colour
        save_png(out / f"{path.stem}.png", atlas)
    return out
