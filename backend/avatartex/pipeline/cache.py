"""What the pipeline derives from a mesh alone, kept between requests of one backend process.

A batch of variants of one head, or the same head re-textured from another photo, skips the facing
search, the landmark detection, the atlas rasterisation and the UV surface of the bake.

The key is the mesh's content, not its name or path: a SHA-1 over its positions, triangles, UVs and
pins, plus the facing the request gave. Editing a single vertex, UV or pin is a new head; saving the
same mesh under another name is the same one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..atlas import AtlasGeometry, HeadFrame, build_atlas, directions
from ..bake import UVSurface, uv_surface
from ..body import head_part  # -- body --
from ..face import FACE_OVAL, LEFT_EYE_CONTOUR, MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP, RIGHT_EYE_CONTOUR
from ..landmarks import MeshLandmarks, detect_mesh_landmarks
from ..mesh import Mesh, parse_facing


@dataclass
class HeadModel:
    """One mesh's landmarks, head frame, and its atlases and UV surfaces by size."""

    mesh: Mesh
    """The mesh as the steps see it: centred and scaled to unit size (``normalized``)."""
    landmarks: MeshLandmarks
    frame: HeadFrame
    file_centre: np.ndarray = field(default_factory=lambda: np.zeros(3))
    file_scale: float = 1.0
    """``mesh.positions = (the file's positions - file_centre) / file_scale``."""
    atlases: dict[int, AtlasGeometry] = field(default_factory=dict)
    """Atlas size -> the atlas geometry, face region marked."""
    surfaces: dict[int, UVSurface] = field(default_factory=dict)
    """Texture size -> the surface behind every texel of the mesh's UV map."""
    # -- body --
    body: Any = None
    """``body.HeadPart`` when the mesh is a full-body character: ``mesh`` is then its head part."""
    # -- end body --

    def to_file(self, points: np.ndarray) -> np.ndarray:
        """Points of ``mesh`` (and of the atlas, landmarks, registration) in the file's coordinates."""
        return np.asarray(points, np.float64) * self.file_scale + self.file_centre

    def from_file(self, points: np.ndarray) -> np.ndarray:
        """Points in the file's coordinates in those of ``mesh``."""
        return (np.asarray(points, np.float64) - self.file_centre) / self.file_scale

    def atlas(self, size: int) -> AtlasGeometry:
        """The head's atlas geometry at ``size``, with the face region marked."""
        if size not in self.atlases:
            mesh = self.mesh
            geometry = build_atlas(mesh.positions, mesh.triangles, mesh.normals, self.frame, size)
            outline = self.landmarks.points3d[list(FACE_OVAL)]
            outline = outline[np.isfinite(outline).all(axis=1)]
            if len(outline) >= 8:
                theta, phi = directions(self.frame.to_head(outline))
                geometry.set_face_region(geometry.layout.band_xy(theta, phi))
            self.atlases[size] = geometry
        return self.atlases[size]

    def surface(self, size: int) -> UVSurface:
        """The UV surface of a ``size`` texture: each texel's triangle and barycentrics."""
        if size not in self.surfaces:
            mesh = self.mesh
            self.surfaces[size] = uv_surface(mesh.positions, mesh.triangles, mesh.normals, mesh.uvs, size)
        return self.surfaces[size]


def normalized(mesh: Mesh) -> tuple[Mesh, np.ndarray, float]:
    """The mesh moved and scaled so that its bounding box is centred on the origin with a half
    diagonal of 1. Every step works on this copy: a head exported in centimetres, metres or
    hundredths of a unit, anywhere in its scene, gives the same texture (the texture depends on the
    UVs and the shape, not on where the file put them). Returns the copy, the centre and the size:
    ``copy = (original - centre) / size``."""
    positions = np.asarray(mesh.positions, np.float64)
    lo, hi = positions.min(axis=0), positions.max(axis=0)
    size = float(np.linalg.norm(hi - lo)) / 2 or 1.0
    centre = (lo + hi) / 2
    return dataclasses.replace(mesh, positions=((positions - centre) / size).astype(np.float32)), centre, size


def mesh_key(mesh: Mesh, facing: str = "") -> str:
    """The cache key of a mesh: its content (positions, triangles, UVs, pins) and the facing asked."""
    digest = hashlib.sha1()
    for array in (mesh.positions, mesh.triangles, mesh.uvs if mesh.uvs is not None else np.zeros(0)):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(sorted(mesh.pins.items())).encode())
    digest.update(facing.encode())
    return digest.hexdigest()


class HeadCache:
    """The last ``size`` heads by content (least recently used first out)."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._heads: OrderedDict[str, HeadModel] = OrderedDict()

    def __len__(self) -> int:
        return len(self._heads)

    def head(self, mesh: Mesh, landmarker: Any, facing: str = "") -> HeadModel:
        """The mesh's head model: found in the cache, or its landmarks detected and its frame built."""
        key = mesh_key(mesh, facing)
        if key in self._heads:
            self._heads.move_to_end(key)
            return self._heads[key]
        forward = parse_facing(facing)
        if forward is None and mesh.forward is not None:
            forward = np.asarray(mesh.forward, np.float64)
        mesh, file_centre, file_scale = normalized(mesh)
        # -- body -- a full-body character: everything below runs on its head part (body.py)
        part = head_part(mesh, landmarker, forward)
        if part is not None:
            mesh, forward = part.mesh, part.mesh.forward
            file_centre, file_scale = file_centre + file_scale * part.centre, file_scale * part.scale
        # -- end body --
        landmarks = detect_mesh_landmarks(
            mesh.positions, mesh.triangles, landmarker, up=mesh.up, forward=forward, pins=mesh.pins or None
        )
        p = landmarks.points3d

        def centre(indices) -> np.ndarray:
            return np.nanmean(p[list(indices)], axis=0)

        frame = HeadFrame.from_landmarks(
            centre(RIGHT_EYE_CONTOUR),
            centre(LEFT_EYE_CONTOUR),
            centre([MOUTH_RIGHT, MOUTH_LEFT]),
            p[NOSE_TIP],
        )
        model = HeadModel(mesh, landmarks, frame, file_centre, file_scale)
        model.body = part  # -- body --
        self._heads[key] = model
        while len(self._heads) > self.size:
            self._heads.popitem(last=False)
        return model
