"""The mesh's own frame: what is measured on a mesh by sampling it on a grid or along directions of
space (its surface grain, ``noise``; its ambient occlusion's sky, ``occlusion``) is measured in this
frame, so that the same mesh turned, scaled or moved in its file gives the same values at the same
surface point. The head frame the landmarks give is not exact enough for that: it scatters by a
hundredth of an eye distance and a percent of scale between copies of a mesh.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .mesh import Mesh


@dataclass(frozen=True)
class MeshFrame:
    """A mesh's own frame: exactly the same on the mesh however its file turns, scales or moves it
    (``mesh_frame``)."""

    origin: np.ndarray
    """(3,) the centroid of the mesh's area, in mesh space."""
    axes: np.ndarray
    """(3, 3) rows: the principal axes of the mesh's area, largest spread first, unit vectors."""
    unit: float
    """Mesh units per frame unit: the square root of the mesh's area."""

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Mesh-space points (..., 3) in this frame's units, float32."""
        return ((np.asarray(points, np.float64) - self.origin) @ self.axes.T / self.unit).astype(np.float32)

    def moved(self, centre: np.ndarray, scale: float) -> MeshFrame:
        """The same frame for the mesh's points moved to ``(points - centre) / scale``."""
        return MeshFrame((self.origin - np.asarray(centre, np.float64)) / scale, self.axes, self.unit / scale)


def mesh_frame(positions: np.ndarray, triangles: np.ndarray, head_axes: np.ndarray) -> MeshFrame:
    """The mesh's ``MeshFrame``: the centroid and principal axes of its surface (each triangle's area
    spread uniformly over it), each axis signed to point the way of the head frame's axis it is
    closest to (``head_axes``, rows; a few degrees of scatter in them do not flip a sign: each axis
    is within 55 degrees of one of them), and the square root of its area as the unit."""
    p = np.asarray(positions, np.float64)
    t = np.asarray(triangles, np.int64)
    a, b, c = p[t[:, 0]], p[t[:, 1]], p[t[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    total = float(area.sum())
    if not total > 0:
        return MeshFrame(np.zeros(3), np.eye(3), 1.0)
    centroid = area @ ((a + b + c) / 3) / total
    a, b, c = a - centroid, b - centroid, c - centroid
    s = a + b + c
    # A uniform triangle's second moment: (a a' + b b' + c c' + s s') / 12, s the sum of its corners.
    moment = sum(np.einsum("n,ni,nj->ij", area, v, v) for v in (a, b, c, s)) / (12 * total)
    _, vectors = np.linalg.eigh(moment)
    axes = vectors[:, ::-1].T.copy()
    closest = np.asarray(head_axes, np.float64) @ axes.T  # (head axis, principal axis) cosines
    for k in range(3):
        axes[k] *= np.sign(closest[np.argmax(np.abs(closest[:, k])), k]) or 1.0
    return MeshFrame(centroid, axes, float(np.sqrt(total)))


def normalized(mesh: Mesh) -> tuple[Mesh, np.ndarray, float]:
    """The mesh moved and scaled so that its vertices' mean is the origin and the vertex farthest
    from it lies at distance 1. Every step works on this copy: a head exported in centimetres,
    metres or hundredths of a unit, anywhere in its scene and turned any way, gives the same texture
    (the texture depends on the UVs and the shape, not on where the file put them). Returns the
    copy, the centre and the size: ``copy = (original - centre) / size``.

    Not the bounding box: its centre and diagonal change when the file turns the mesh, so a turned
    copy was another size in these units, and every tolerance and step size of the registration
    with it (the demo head turned 73 degrees about a slanted axis: textures 1.45/255 apart with the
    same landmarks; 0.3 with this)."""
    positions = np.asarray(mesh.positions, np.float64)
    centre = positions.mean(axis=0)
    size = float(np.linalg.norm(positions - centre, axis=1).max()) or 1.0
    return dataclasses.replace(mesh, positions=((positions - centre) / size).astype(np.float32)), centre, size
