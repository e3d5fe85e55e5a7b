"""Head meshes: the capture file the add-on sends, mesh files for the CLI, checks and UV unwrapping.

A ``Mesh`` is triangles with per-corner UVs, so UV seams need no duplicated vertices: ``positions``
are shared by all corners that meet at a vertex, which is what makes the baked texture seam-free.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .protocol import PIN_NAMES, AvatarTexError, ErrorCode

log = logging.getLogger("avatartex.mesh")

MESH_SUFFIXES = (".npz", ".obj", ".glb", ".gltf", ".ply")


@dataclass
class Mesh:
    """A triangle mesh with one UV map, as the pipeline uses it."""

    positions: np.ndarray
    """(V, 3) float32 vertex positions."""
    triangles: np.ndarray
    """(T, 3) int32 vertex indices."""
    uvs: np.ndarray | None
    """(T, 3, 2) float32 per-corner UVs, (0, 0) bottom-left; None when the mesh has no UV map."""
    normals: np.ndarray | None = None
    """(V, 3) float32 unit vertex normals; computed by ``validate`` when absent."""
    pins: dict[str, int] = field(default_factory=dict)
    """Landmark pins: a name of ``protocol.PIN_NAMES`` -> vertex index."""
    name: str = "mesh"
    up: np.ndarray | None = None
    """Optional up axis in the mesh's space."""
    forward: np.ndarray | None = None
    """Optional direction the face looks towards, in the mesh's space."""
    warnings: list[str] = field(default_factory=list)
    unwrapped: bool = False
    """True when the UV map was made by :func:`unwrap` (the file had none): the texture fits only
    this UV map, so ``generate`` saves the mesh beside it (:func:`save_mesh`)."""
    parts: np.ndarray | None = None
    """(T,) int32 material of each triangle (the add-on's material slot; a file's primitive), or None
    for one material. Each material has a texture of its own, and their UV islands may overlap:
    only the face's material is textured (``pipeline.cache.HeadModel.textured``)."""
    part_names: list[str] = field(default_factory=list)
    """The materials' names, by index of ``parts`` (may be shorter: then unnamed)."""
    numbered_by: str = ""
    """The OBJ file whose own vertex numbers pins name (``with_pins``): as read, its vertices are
    split where its UVs are, so ``positions`` has more of them, in another order. Empty: pins name
    ``positions``' own vertices."""
    read_index: np.ndarray | None = None
    """(V,) each vertex's index as the file was read, where ``validate`` left out vertices no triangle
    uses (``with_pins`` takes pins by those numbers); None: the same numbers."""
    read_count: int = 0
    """How many vertices the file was read with, where ``read_index`` is set."""

    def part_name(self, index: int) -> str:
        """A material's name for messages (``slot N`` when unnamed)."""
        if 0 <= index < len(self.part_names) and self.part_names[index]:
            return self.part_names[index]
        return f"slot {index}"

    @property
    def corner_positions(self) -> np.ndarray:
        """(T, 3, 3) the positions of each triangle's corners."""
        return self.positions[self.triangles]


AxisLike = str | Sequence[float] | np.ndarray
"""An axis: ``"+y"``, ``"-Z"``, ``"x"`` or three numbers."""


PIN_POINT_REACH = 0.02
"""How far a pin given as a point may lie from the mesh's nearest vertex, as a share of the mesh's
size (its bounding box's diagonal), beyond the longest edge at that vertex (a point picked inside a
large triangle): farther, the point was not on this mesh, most often because it was read in other
axes (Blender shows a glTF's or an OBJ's (x, y, z) as (x, -z, y))."""


def with_pins(mesh: Mesh, pins: Mapping[str, object]) -> Mesh:
    """``mesh`` with the landmark pins of a request over its own (a request's pin replaces the
    mesh's of the same name). Each pin is a vertex index (of the OBJ file where the mesh is one:
    ``Mesh.numbered_by``; of the mesh as read otherwise), or a point ``[x, y, z]`` in the mesh's own
    coordinates, which pins its nearest vertex.

    Raises ``bad_request`` for a name not in ``PIN_NAMES``, an index the mesh does not have, a value
    that is neither, or a point off the mesh (``PIN_POINT_REACH``)."""
    if not pins:
        return mesh
    positions = np.asarray(mesh.positions, np.float64)
    # An OBJ's own vertex numbers (what Blender and other tools show for it), not the split ones.
    numbered = _obj_vertices(Path(mesh.numbered_by)) if mesh.numbered_by else positions
    read = None if mesh.numbered_by or mesh.read_index is None else np.asarray(mesh.read_index)
    count = mesh.read_count if read is not None else len(numbered)
    table = dict(mesh.pins)
    for name, value in pins.items():
        if name not in PIN_NAMES:
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST,
                f"Unknown landmark pin {name!r}.",
                f"Pins are named {', '.join(PIN_NAMES)} (left and right are the character's own).",
            )
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if not 0 <= int(value) < count:
                raise AvatarTexError(
                    ErrorCode.BAD_REQUEST,
                    f"Landmark pin {name!r} names vertex {value}, but mesh '{mesh.name}' has "
                    f"{count} vertices (0 to {count - 1}).",
                    "Give a vertex of the mesh file (numbered from 0), or a point x,y,z on it instead.",
                )
            if read is not None:  # the file's numbers, some of whose vertices no face uses
                at = int(np.searchsorted(read, int(value)))
                if at >= len(read) or read[at] != int(value):
                    raise AvatarTexError(
                        ErrorCode.BAD_REQUEST,
                        f"Landmark pin {name!r} names vertex {value}, which no face of mesh "
                        f"'{mesh.name}' uses.",
                        "Give a vertex of the head's surface, or a point x,y,z on it instead.",
                    )
                table[name] = at
            elif numbered is positions:
                table[name] = int(value)
            else:  # the split vertex at the file vertex's place
                table[name] = int(np.linalg.norm(positions - numbered[int(value)], axis=1).argmin())
            continue
        point = _pin_point(name, value)
        table[name] = _nearest_vertex(mesh, positions, name, point)
    return dataclasses.replace(mesh, pins=table)


def _obj_vertices(path: Path) -> np.ndarray:
    """(F, 3) float64 an OBJ file's vertices (its ``v`` lines), in its own order."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise AvatarTexError(
            ErrorCode.MESH_UNREADABLE,
            f"Cannot read mesh {path.name} again to number its vertices: {exc.strerror or exc}.",
            "Keep the file in place while AvatarTex works, or give the pins as points x,y,z.",
        ) from None
    rows = re.findall(rb"^[ \t]*v[ \t]+(\S+)[ \t]+(\S+)[ \t]+(\S+)", text, flags=re.MULTILINE)
    return np.array(rows, np.float64).reshape(-1, 3)


def _pin_point(name: str, value: object) -> np.ndarray:
    try:
        point = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        point = np.zeros(0)
    if point.shape != (3,) or not np.isfinite(point).all():
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"Landmark pin {name!r} is {value!r}: neither a vertex index nor a point x, y, z.",
            "Give a vertex index (an integer) or three finite numbers.",
        )
    return point


def _nearest_vertex(mesh: Mesh, positions: np.ndarray, name: str, point: np.ndarray) -> int:
    """The vertex nearest ``point``; an error when the point lies off the mesh (PIN_POINT_REACH)."""
    distances = np.linalg.norm(positions - point, axis=1)
    vertex = int(distances.argmin())
    triangles = np.asarray(mesh.triangles)
    at_vertex = triangles[(triangles == vertex).any(axis=1)]
    corners = positions[at_vertex]
    longest = (
        float(np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max()) if len(corners) else 0.0
    )
    size = float(np.linalg.norm(positions.max(axis=0) - positions.min(axis=0)))
    if distances[vertex] > longest + PIN_POINT_REACH * size:
        nearest = ", ".join(f"{v:.4g}" for v in positions[vertex])
        # A point so far out that its distance overflows (1e308) is said as such, not as "inf away".
        away = (
            f"is {distances[vertex]:.3g} away ({distances[vertex] / max(size, 1e-12):.0%} of the mesh's size)"
            if np.isfinite(distances[vertex])
            else "is too far away to measure"
        )
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"Landmark pin {name!r} at ({', '.join(f'{v:.4g}' for v in point)}) is not on mesh "
            f"'{mesh.name}': its nearest vertex, at ({nearest}), {away}.",
            "Give the point in the mesh file's own coordinates, before any scene transform; a glTF or "
            "OBJ point that Blender shows as (x, y, z) is (x, z, -y) in the file.",
        )
    return vertex


def parse_axis(axis: AxisLike, what: str = "axis") -> np.ndarray:
    """A unit 3-vector from ``"+y"``, ``"-Z"``, ``"x"`` or three numbers."""
    if isinstance(axis, str):
        text = axis.strip().lower()
        sign = -1.0 if text.startswith("-") else 1.0
        name = text.lstrip("+-")
        if name not in ("x", "y", "z"):
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST, f"Unknown {what} {axis!r}.", "Use one of +x, -x, +y, -y, +z, -z."
            )
        vec = np.zeros(3)
        vec["xyz".index(name)] = sign
        return vec
    vec = np.asarray(axis, np.float64).reshape(-1)
    norm = float(np.linalg.norm(vec)) if vec.shape == (3,) else 0.0
    if not np.isfinite(norm) or norm < 1e-12:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"The {what} {axis!r} is not a 3D direction.",
            "Give three numbers that are not all zero, or a name such as +y.",
        )
    return vec / norm


def parse_facing(text: str) -> np.ndarray | None:
    """The direction a head's face looks along in its file, from ``+x`` .. ``-z`` ('' = search)."""
    return parse_axis(text, "facing direction") if text else None


def welded_parts(positions: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The triangles' corners with the vertices at one position made one (T, 3), each triangle's
    connected part (T,) and how many labels there are (parts of unused vertices counted too): a
    mesh split where its UVs or normals are is still one part, its separate pieces (eyeballs, cards,
    a body's clothes) not."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    _, welded = np.unique(np.asarray(positions), axis=0, return_inverse=True)
    tri = welded.reshape(-1)[np.asarray(triangles, np.int64)]
    n = int(welded.max()) + 1
    edges = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    count, label = connected_components(graph, directed=False)
    return tri, label[tri[:, 0]], int(count)


def triangle_areas(corners: np.ndarray) -> np.ndarray:
    """(T,) float64 areas of triangles given by their (T, 3, 3) corners."""
    corners = np.asarray(corners, np.float64)
    edges = corners[:, 1:] - corners[:, :1]
    return 0.5 * np.linalg.norm(np.cross(edges[:, 0], edges[:, 1]), axis=1)


def surface_points(
    positions: np.ndarray, triangles: np.ndarray, density: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points spread evenly over the triangles (``density`` per unit area, a seeded Poisson count
    each): their positions (N, 3), their triangles (N,) and their barycentric weights (N, 3)."""
    c = np.asarray(positions)[triangles]
    area = triangle_areas(c)
    rng = np.random.default_rng(seed)
    tri = np.repeat(np.arange(len(triangles)), rng.poisson(area * density))
    u, v = rng.random(len(tri)), rng.random(len(tri))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    c = c[tri]
    points = c[:, 0] + u[:, None] * (c[:, 1] - c[:, 0]) + v[:, None] * (c[:, 2] - c[:, 0])
    return points, tri, np.stack([1 - u - v, u, v], axis=1)


def compute_normals(positions: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals; vertices at the same position share one normal (UV seams)."""
    welded, inverse = np.unique(positions, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    tri = inverse[triangles]
    corners = welded[tri]
    face_n = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    acc = np.zeros_like(welded, dtype=np.float64)
    for k in range(3):
        np.add.at(acc, tri[:, k], face_n)
    length = np.linalg.norm(acc, axis=1, keepdims=True)
    acc = np.where(length > 0, acc / np.maximum(length, 1e-30), np.array([0.0, 0.0, 1.0]))
    return acc[inverse].astype(np.float32)


def inside_out(corners: np.ndarray, face_normals: np.ndarray) -> bool:
    """Whether a mesh's faces point inwards as a whole: their (area-weighted) normals point towards
    its centre rather than away. Holds for open meshes too (a bust, a head cut at the neck), whose
    surfaces still face away from their middle; a mouth's inside or an eye socket is a small part.

    ``corners``: (T, 3, 3) float64; ``face_normals``: (T, 3) their unnormalised normals (winding)."""
    if not len(corners):
        return False
    centroids = corners.mean(axis=1)
    lo, hi = centroids.min(axis=0), centroids.max(axis=0)
    outward = np.einsum("ij,ij->i", face_normals, centroids - (lo + hi) / 2)
    return float(outward.sum()) < 0.0


def mapped_triangles(uvs: np.ndarray) -> np.ndarray:
    """(T,) bool: the triangles of per-corner ``uvs`` (T, 3, 2) whose UVs are all finite. A part
    read without a UV map of its own has NaN UVs (``unmapped_parts``)."""
    return np.isfinite(np.asarray(uvs)).all(axis=(1, 2))


def unmapped_parts(unmapped: np.ndarray, parts: np.ndarray | None) -> np.ndarray:
    """The materials (``Mesh.parts``) every triangle of which is ``unmapped`` ((T,) bool: a
    non-finite UV): parts read from a file without a UV map of their own."""
    if parts is None or not unmapped.any():
        return np.zeros(0, np.int32)
    counts = np.bincount(parts, minlength=int(parts.max()) + 1)
    return np.flatnonzero((np.bincount(parts[unmapped], minlength=len(counts)) == counts) & (counts > 0))


def validate(mesh: Mesh, require_uvs: bool = True) -> Mesh:
    """Check a mesh and return a cleaned copy: typed errors for what cannot be used, warnings else.

    Empty meshes, NaN/inf positions and out-of-range indices are errors; degenerate triangles are
    dropped with a warning (real meshes have a few); a mesh whose faces point inwards is turned
    outside out, with a warning; normals are computed when absent.
    """
    positions = np.asarray(mesh.positions, dtype=np.float32)
    triangles = np.asarray(mesh.triangles)
    if positions.ndim != 2 or positions.shape[-1] != 3 or triangles.ndim != 2 or triangles.shape[-1] != 3:
        raise AvatarTexError(
            ErrorCode.MESH_INVALID,
            f"Mesh '{mesh.name}' has malformed arrays: positions {positions.shape}, "
            f"triangles {triangles.shape}.",
            "Positions must be (V, 3), triangles (T, 3).",
        )
    if len(positions) == 0 or len(triangles) == 0:
        raise AvatarTexError(
            ErrorCode.MESH_EMPTY,
            f"Mesh '{mesh.name}' has no triangles.",
            "Select the head mesh itself, not an empty object or a point cloud.",
        )
    triangles = triangles.astype(np.int64)
    if triangles.min() < 0 or triangles.max() >= len(positions):
        raise AvatarTexError(
            ErrorCode.MESH_INVALID,
            f"Mesh '{mesh.name}' has triangle indices outside its {len(positions)} vertices.",
            "Re-export the mesh.",
        )
    # Vertices no triangle uses (loose points left by modelling, a whole scene's stray ones) are left
    # out: they framed every render of the head, one at 20 m made the face too small to be found.
    read_index, read_count, pins = mesh.read_index, mesh.read_count, dict(mesh.pins)
    used = np.unique(triangles)
    if len(used) < len(positions):
        renumber = np.full(len(positions), -1, np.int64)
        renumber[used] = np.arange(len(used))
        pins = {name: int(renumber[v]) if 0 <= v < len(positions) else v for name, v in pins.items()}
        unused = [name for name, v in pins.items() if v < 0 and 0 <= mesh.pins[name] < len(positions)]
        if unused:
            raise AvatarTexError(
                ErrorCode.MESH_INVALID,
                f"Landmark pin {unused[0]!r} is on a vertex no face of mesh '{mesh.name}' uses.",
                "Set the pin again on a vertex of the head's surface.",
            )
        read_index = used if read_index is None else np.asarray(read_index)[used]
        read_count = read_count or len(positions)
        positions, triangles = positions[used], renumber[triangles]
        if mesh.normals is not None and np.asarray(mesh.normals).shape[0] == len(renumber):
            mesh = dataclasses.replace(mesh, normals=np.asarray(mesh.normals)[used])
    bad = ~np.isfinite(positions).all(axis=1)
    if bad.any():
        raise AvatarTexError(
            ErrorCode.MESH_INVALID,
            f"Mesh '{mesh.name}' has {int(bad.sum())} vertices with NaN or infinite coordinates.",
            "Fix or delete those vertices (Blender: Mesh > Clean Up).",
        )
    warnings = list(mesh.warnings)
    corners = positions[triangles].astype(np.float64)
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area2 = np.linalg.norm(face_normals, axis=1)
    extent = float(np.ptp(positions, axis=0).max()) or 1.0
    keep = area2 > (extent * 1e-7) ** 2
    uvs = mesh.uvs
    if uvs is not None:
        uvs = np.asarray(uvs, dtype=np.float32)
        if uvs.shape != (len(triangles), 3, 2):
            raise AvatarTexError(
                ErrorCode.MESH_INVALID,
                f"Mesh '{mesh.name}' UVs have shape {uvs.shape}, expected ({len(triangles)}, 3, 2).",
                "Re-export the mesh.",
            )
    parts = mesh.parts
    if parts is not None:
        parts = np.asarray(parts, np.int32).reshape(-1)
        if len(parts) != len(triangles):
            raise AvatarTexError(
                ErrorCode.MESH_INVALID,
                f"Mesh '{mesh.name}' has {len(parts)} triangle materials for {len(triangles)} triangles.",
                "Capture the mesh again (or re-export it).",
            )
    degenerate = ~keep
    if uvs is not None:
        unmapped = ~mapped_triangles(uvs)
        # A part with no UV map at all (an eyeball or teeth exported without one) stays in the shape
        # every render reads, untextured; stray non-finite UVs inside a mapped part are dropped.
        whole_parts = unmapped_parts(unmapped, parts)
        stray = unmapped & ~np.isin(parts, whole_parts) if parts is not None else unmapped
        if stray.any():
            warnings.append(f"dropped {int(stray.sum())} triangles with NaN UVs")
            keep &= ~stray
            degenerate &= ~stray
    if not keep.all():
        if not keep.any() and degenerate.all():
            raise AvatarTexError(
                ErrorCode.MESH_INVALID,
                f"Every triangle of mesh '{mesh.name}' is degenerate (zero area).",
                "Check the mesh's scale and that it is not flattened.",
            )
        if not keep.any():
            raise AvatarTexError(
                ErrorCode.NO_UV_MAP,
                f"Mesh '{mesh.name}' has no usable UV map: every triangle has a NaN or infinite UV, "
                "or no area.",
                "Unwrap it again in your modelling tool (Blender: UV > Smart UV Project) and re-export.",
            )
        if degenerate.any():
            warnings.append(f"dropped {int(degenerate.sum())} degenerate triangles")
        triangles = triangles[keep]
        if uvs is not None:
            uvs = uvs[keep]
        if parts is not None:
            parts = parts[keep]
    if uvs is None and require_uvs:
        raise AvatarTexError(
            ErrorCode.NO_UV_MAP,
            f"Mesh '{mesh.name}' has no UV map.",
            "Unwrap it (Blender: UV > Smart UV Project) or pass --unwrap to make one.",
        )
    triangles = triangles.astype(np.int32)
    normals = mesh.normals
    if inside_out(corners, face_normals):  # degenerate faces add nothing
        # Every step reads which side of a face is outside from its winding (and the normals).
        triangles = np.ascontiguousarray(triangles[:, ::-1])
        uvs = None if uvs is None else np.ascontiguousarray(uvs[:, ::-1])
        normals = None if normals is None else -np.asarray(normals, np.float32)
        warnings.append(
            f"the faces of mesh '{mesh.name}' point inwards (flipped normals): it was read turned outside "
            "out; Blender: Edit Mode > Mesh > Normals > Recalculate Outside fixes the file"
        )
    if normals is None or np.asarray(normals).shape != positions.shape:
        normals = compute_normals(positions, triangles)
    for pin_name, index in pins.items():
        if pin_name not in PIN_NAMES:
            raise AvatarTexError(
                ErrorCode.MESH_INVALID,
                f"Unknown landmark pin name {pin_name!r}.",
                f"Pins are named {', '.join(PIN_NAMES)}.",
            )
        if not 0 <= index < len(positions):
            raise AvatarTexError(
                ErrorCode.MESH_INVALID,
                f"Landmark pin {pin_name!r} points at vertex {index}, which does not exist.",
                "Set the pin again on the current mesh.",
            )
    return Mesh(
        positions,
        triangles,
        uvs,
        np.asarray(normals, np.float32),
        pins,
        mesh.name,
        mesh.up,
        mesh.forward,
        warnings,
        mesh.unwrapped,
        parts if parts is not None and len(np.unique(parts)) > 1 else None,
        list(mesh.part_names),
        mesh.numbered_by,
        read_index,
        read_count,
    )


# -- UV unwrapping -------------------------------------------------------------------------------
UNWRAP_MAX_DEGENERATE = 0.01
"""Share of triangles an unwrap may leave with no UV area before it counts as broken. xatlas gives
zero-area (or NaN) UVs to triangles below its area epsilon: a 7 cm sculpt in metres (areas ~1e-7)
came back with 96 % of them so, and the texture would still have reported high coverage."""

UNWRAP_ZERO_AREA = 1e-10
"""UV area (unit square) below which a triangle has none: 1e-4 of a texel of a 1024 texture."""

UNWRAP_IN_PROCESS = 30_000
"""Meshes up to this many triangles are unwrapped in the calling process; larger ones in a child
process, because xatlas holds the interpreter lock for the whole call (minutes on a scan), so only
from outside can progress be shown and a cancel honoured."""

UNWRAP_SECONDS_PER_TRIANGLE = 1e-4
"""Rough xatlas speed in pieces on 2 busy cores (4e-5 idle), for the progress estimate only."""

_UNWRAP_CACHE: OrderedDict[str, np.ndarray] = OrderedDict()
"""Content hash of (positions, triangles) -> per-corner UVs of the last few unwraps: requests and
the CLI's own pre-pass on the same mesh pay for xatlas once."""


UNWRAP_PIECE = 8_000
"""Triangles per piece handed to xatlas. Its chart growing costs more than linearly in the size of a
connected surface, so a large mesh is cut into compact pieces (median splits along the longest
axis) that xatlas charts separately, in parallel, and packs into one atlas; the cuts become chart
borders, which the bake pads like any other. Measured on 2 cores (a loop-subdivided demo head,
``taskset -c 0,1``): 68k triangles 22-33 s whole -> 7.8 s in pieces; 273k triangles more than 9 min
whole (any chart/pack option) -> 11.5 s in pieces (8.4 s with 4,000-triangle pieces, more seams)."""


def _pieces(positions: np.ndarray, triangles: np.ndarray, size: int = UNWRAP_PIECE) -> list[np.ndarray]:
    """Triangle index sets of at most ``size`` triangles, each spatially compact."""
    centroids = positions[triangles].mean(axis=1)
    pieces, stack = [], [np.arange(len(triangles))]
    while stack:
        index = stack.pop()
        if len(index) <= size:
            pieces.append(index)
            continue
        points = centroids[index]
        axis = int(np.ptp(points, axis=0).argmax())
        half = len(index) // 2
        order = np.argpartition(points[:, axis], half)
        stack += [index[order[:half]], index[order[half:]]]
    return pieces


def _xatlas(positions: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T, 3, 2) per-corner UVs from xatlas, the mesh cut into pieces (``UNWRAP_PIECE``) first;
    charts packed for a 1024 texture with 2 texels between islands."""
    import xatlas

    positions = np.ascontiguousarray(positions, np.float32)
    triangles = np.asarray(triangles, np.int64)
    pieces = _pieces(positions, triangles)
    atlas = xatlas.Atlas()
    for piece in pieces:
        used, local = np.unique(triangles[piece], return_inverse=True)
        atlas.add_mesh(positions[used], np.ascontiguousarray(local.reshape(-1, 3), np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = 1024
    pack.padding = 2
    atlas.generate(xatlas.ChartOptions(), pack)
    corner_uvs = np.zeros((len(triangles), 3, 2), np.float32)
    for i, piece in enumerate(pieces):
        _vmapping, indices, uvs = atlas[i]  # xatlas keeps each piece's triangle order
        corner_uvs[piece] = uvs[indices.astype(np.int64)].reshape(-1, 3, 2)
    return corner_uvs


def _xatlas_worker(in_path: str, out_path: str) -> None:
    """Child-process side of :func:`_xatlas_in_child`: npz in, npy out."""
    data = np.load(in_path)
    uvs = _xatlas(data["positions"], data["triangles"])
    np.save(out_path + ".part.npy", uvs)
    os.replace(out_path + ".part.npy", out_path)


def _xatlas_in_child(
    positions: np.ndarray, triangles: np.ndarray, progress: Callable[[float, str], None]
) -> np.ndarray:
    """Run :func:`_xatlas` in a child Python, reporting elapsed time through ``progress`` twice a
    second. ``progress`` may raise (a cancel): the child is then killed."""
    expected = max(1.0, UNWRAP_SECONDS_PER_TRIANGLE * len(triangles))
    what = f"xatlas: {len(triangles):,} triangles"
    with tempfile.TemporaryDirectory(prefix="avatartex-unwrap-") as tmp:
        in_path, out_path = os.path.join(tmp, "mesh.npz"), os.path.join(tmp, "uvs.npy")
        np.savez(in_path, positions=positions, triangles=triangles)
        package_root = str(Path(__file__).resolve().parent.parent)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        }
        code = (
            "import sys; from avatartex.mesh import _xatlas_worker; _xatlas_worker(sys.argv[1], sys.argv[2])"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", code, in_path, out_path],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started = time.perf_counter()
        try:
            while child.poll() is None:
                elapsed = time.perf_counter() - started
                # An estimate, never reaching the end before xatlas does.
                progress(min(0.95, elapsed / expected), f"{what} ({elapsed:.0f} s)")
                try:
                    child.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
        if child.returncode != 0 or not os.path.exists(out_path):
            raise AvatarTexError(
                ErrorCode.MESH_INVALID,
                f"xatlas could not unwrap the mesh (exit status {child.returncode}): "
                f"{stderr.strip().splitlines()[-1] if stderr.strip() else 'no message'}.",
                "Unwrap it in Blender (UV > Smart UV Project) and export it with its UV map.",
            )
        return np.load(out_path)


def check_unwrap(uvs: np.ndarray, name: str = "mesh") -> None:
    """Raise ``MESH_INVALID`` when a made UV map is broken: NaN or outside the unit square, or more
    than UNWRAP_MAX_DEGENERATE of its triangles without UV area."""
    uvs = np.asarray(uvs, np.float64)
    finite = mapped_triangles(uvs)
    e1, e2 = uvs[:, 1] - uvs[:, 0], uvs[:, 2] - uvs[:, 0]
    area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    degenerate = ~finite | ~(area > UNWRAP_ZERO_AREA)
    share = float(degenerate.mean()) if len(uvs) else 1.0
    inside = bool(finite.any()) and float(np.abs(uvs[finite] - 0.5).max()) <= 0.5 + 1e-3
    if share > UNWRAP_MAX_DEGENERATE or not inside:
        raise AvatarTexError(
            ErrorCode.MESH_INVALID,
            f"The UV map made for mesh '{name}' is broken: {share:.0%} of its {len(uvs):,} triangles "
            f"have no UV area{'' if inside else ', and UVs fall outside the unit square'}.",
            "Unwrap it in Blender (UV > Smart UV Project) and export it with its UV map; check the mesh "
            "for flattened or duplicated parts.",
        )


def unwrap(mesh: Mesh, progress: Callable[[float, str], None] | None = None) -> Mesh:
    """A copy of ``mesh`` with a new UV map made by xatlas (charts packed into the unit square).

    The mesh is centred and scaled to a median edge of 1 first: xatlas's epsilons are absolute, and a
    sculpt 7 cm across in metres came back with NaN or zero-area UVs. The result is checked
    (:func:`check_unwrap`: a typed error, never a texture on a broken map). ``progress(fraction,
    message)`` is called while xatlas runs (meshes over UNWRAP_IN_PROCESS triangles run in a child
    process so that it can be); it may raise to cancel. Results are cached by mesh content.
    """
    positions = np.asarray(mesh.positions, np.float64)
    triangles = np.asarray(mesh.triangles, np.int64)
    key = hashlib.sha1(
        np.ascontiguousarray(positions, np.float32).tobytes() + np.ascontiguousarray(triangles).tobytes()
    ).hexdigest()
    corner_uvs = _UNWRAP_CACHE.get(key)
    if corner_uvs is None:
        corners = positions[triangles]
        edges = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2)
        median_edge = float(np.median(edges[edges > 0])) if (edges > 0).any() else 1.0
        centre = 0.5 * (positions.min(axis=0) + positions.max(axis=0))
        normalised = ((positions - centre) / median_edge).astype(np.float32)
        started = time.perf_counter()
        if progress is not None and len(triangles) > UNWRAP_IN_PROCESS:
            corner_uvs = _xatlas_in_child(normalised, triangles.astype(np.uint32), progress)
        else:
            if progress is not None:
                progress(0.0, f"xatlas: {len(triangles):,} triangles")
            corner_uvs = _xatlas(normalised, triangles)
        log.info("xatlas: %d triangles in %.1f s", len(triangles), time.perf_counter() - started)
        check_unwrap(corner_uvs, mesh.name)
        _UNWRAP_CACHE[key] = corner_uvs
        while len(_UNWRAP_CACHE) > 2:
            _UNWRAP_CACHE.popitem(last=False)
    else:
        _UNWRAP_CACHE.move_to_end(key)
    if progress is not None:
        progress(1.0, "unwrapped")
    # One new UV map over every material: one texture for all of them.
    changed = {"uvs": corner_uvs.copy(), "warnings": list(mesh.warnings), "unwrapped": True, "parts": None}
    out = Mesh(**{**mesh.__dict__, **changed})
    out.warnings.append("made a UV map with xatlas (--unwrap)")
    return out


def save_mesh(mesh: Mesh, path: str | os.PathLike) -> Path:
    """Write ``mesh`` with its UV map as a ``.glb`` (atomically), e.g. the mesh ``--unwrap`` made.

    Corners that share a vertex but not a UV become separate vertices (glTF has per-vertex UVs);
    positions are written as they are, in the axes of the file they came from. Raises
    OUTPUT_NOT_WRITABLE when ``path`` cannot be written.
    """
    import trimesh

    if mesh.uvs is None:
        raise ValueError("save_mesh needs a mesh with a UV map")
    path = Path(path)
    corner_vertex = np.asarray(mesh.triangles, np.int64).reshape(-1)
    corner_uv = np.asarray(mesh.uvs, np.float32).reshape(-1, 2)
    keys = np.concatenate([corner_vertex[:, None].astype(np.float64), corner_uv.astype(np.float64)], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    vertices = np.asarray(mesh.positions, np.float32)[unique[:, 0].astype(np.int64)]
    normals = None
    if mesh.normals is not None:
        normals = np.asarray(mesh.normals, np.float32)[unique[:, 0].astype(np.int64)]
    out = trimesh.Trimesh(
        vertices,
        inverse.reshape(-1, 3),
        vertex_normals=normals,
        visual=trimesh.visual.TextureVisuals(uv=unique[:, 1:]),
        process=False,
    )
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_bytes(out.export(file_type="glb"))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise AvatarTexError(
            ErrorCode.OUTPUT_NOT_WRITABLE,
            f"Cannot write {path}: {exc.strerror or exc}.",
            "Choose an output folder you can write to.",
        ) from None
    return path


def save_capture(mesh: Mesh, path: str | os.PathLike) -> None:
    """Write the capture file the backend reads (see ``protocol.CAPTURE_KEYS``), atomically."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "positions": np.asarray(mesh.positions, np.float32),
        "triangles": np.asarray(mesh.triangles, np.int32),
        "name": np.array(mesh.name),
    }
    if mesh.uvs is not None:
        arrays["uvs"] = np.asarray(mesh.uvs, np.float32)
    if mesh.normals is not None:
        arrays["normals"] = np.asarray(mesh.normals, np.float32)
    if mesh.pins:
        arrays["pin_names"] = np.array(list(mesh.pins))
        arrays["pins"] = np.array(list(mesh.pins.values()), np.int32)
    for key in ("up", "forward"):
        if getattr(mesh, key) is not None:
            arrays[key] = np.asarray(getattr(mesh, key), np.float32)
    if mesh.parts is not None:
        arrays["materials"] = np.asarray(mesh.parts, np.int32)
        arrays["material_names"] = np.array(list(mesh.part_names) or [""])
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(tmp, path)


def load_capture(path: str | os.PathLike) -> Mesh:
    """Read a capture ``.npz`` written by the add-on or ``save_capture``."""
    try:
        data = np.load(path, allow_pickle=False)
        positions = data["positions"]
        triangles = data["triangles"]
    except (OSError, ValueError, KeyError) as exc:
        raise AvatarTexError(
            ErrorCode.MESH_UNREADABLE,
            f"Cannot read mesh capture {path}: {exc}.",
            "Capture the mesh again from Blender.",
        ) from None
    pins = {}
    if "pins" in data and "pin_names" in data:
        pins = {str(n): int(i) for n, i in zip(data["pin_names"], data["pins"], strict=True) if int(i) >= 0}
    return Mesh(
        positions,
        triangles,
        data["uvs"] if "uvs" in data else None,
        data["normals"] if "normals" in data else None,
        pins,
        str(data["name"]) if "name" in data else Path(path).stem,
        data["up"] if "up" in data else None,
        data["forward"] if "forward" in data else None,
        parts=data["materials"] if "materials" in data else None,
        part_names=[str(n) for n in data["material_names"]] if "material_names" in data else [],
    )


def load_mesh(
    path: str | os.PathLike,
    uv_map: str = "",
    unwrap_if_missing: bool = False,
    progress: Callable[[float, str], None] | None = None,
) -> Mesh:
    """Load a head mesh for the pipeline: a capture ``.npz`` or an ``.obj``/``.glb``/``.gltf``/``.ply``.

    N-gons and triangle strips are triangulated; several objects in one file are merged. ``uv_map``
    picks a UV set by name where the format has several (glTF: ``TEXCOORD_0``...; captures carry the
    one the add-on chose). A mesh without UVs is an error unless ``unwrap_if_missing``; ``progress``
    is then told how the unwrap goes (see :func:`unwrap`).
    """
    path = Path(path)
    if not path.exists():
        raise AvatarTexError(ErrorCode.MESH_MISSING, f"Mesh file {path} does not exist.", "Check the path.")
    suffix = path.suffix.lower()
    actual = _sniffed_suffix(path)
    if actual and actual != suffix and not (actual == ".gltf" and suffix == ".glb"):
        raise AvatarTexError(
            ErrorCode.MESH_UNREADABLE,
            f"{path.name} is named {suffix or 'without an extension'} but holds a {actual} mesh.",
            f"Rename it to {path.stem}{actual} (or export it again as {suffix or 'a mesh file'}).",
        )
    if suffix not in MESH_SUFFIXES:
        raise AvatarTexError(
            ErrorCode.MESH_UNREADABLE,
            f"{path.name}: unsupported mesh format {suffix!r}.",
            f"Use one of {', '.join(MESH_SUFFIXES)}.",
        )
    if suffix == ".npz":
        mesh = load_capture(path)
    else:
        mesh = _load_with_trimesh(path, uv_map)
    if mesh.uvs is None and unwrap_if_missing:
        mesh = unwrap(validate(mesh, require_uvs=False), progress)
    return validate(mesh)


def _sniffed_suffix(path: Path) -> str:
    """The mesh format ``path``'s first bytes show (``.glb``, ``.ply``, ``.gltf`` for JSON), or empty
    when they show none of those (an OBJ is plain text with no signature; a capture is a zip)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        return ""
    if head.startswith(b"glTF"):
        return ".glb"
    if head.startswith(b"ply"):
        return ".ply"
    if head.lstrip().startswith(b"{"):  # JSON: of the formats read, only a glTF's
        return ".gltf"
    return ""


GLTF_GEOMETRY_CODECS = {
    "KHR_draco_mesh_compression": "DracoPy",
    "EXT_meshopt_compression": None,
}
"""Compressed-geometry glTF extensions -> the Python module trimesh decodes them with (None: it
cannot). Without the decoder trimesh reads zeros or fails with an index error."""


def _gltf_json(path: Path) -> dict | None:
    """The JSON part of a ``.glb``/``.gltf``, or None when it is not readable as one."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(20)
            if head[:4] == b"glTF":
                length, kind = struct.unpack("<II", head[12:20])
                if kind != 0x4E4F534A:
                    return None
                return json.loads(handle.read(length))
            return json.loads(head + handle.read())
    except (OSError, ValueError, struct.error):
        return None


UNNAMED_MATERIAL = "no material"
"""The material given, for loading only, to glTF primitives that have UVs but none: trimesh keeps a
primitive's ``TEXCOORD_0`` only when it has a material, and Blender's exporter writes none for an
object without one (a fresh sculpt), so such a head's UVs were lost ("no UV map")."""


def _gltf_with_materials(path: Path, gltf: dict) -> tuple[io.BytesIO, str] | None:
    """``path``'s glTF with a material (UNNAMED_MATERIAL) on every primitive that has UVs and no
    material, as a file object for ``trimesh.load`` and its file type (the binary chunk of a .glb and
    a .gltf's external buffers untouched); None when none lacks one."""
    fixed = copy.deepcopy(gltf)
    primitives = [p for m in fixed.get("meshes", []) for p in m.get("primitives", [])]
    bare = [p for p in primitives if "TEXCOORD_0" in p.get("attributes", {}) and "material" not in p]
    if not bare:
        return None
    materials = fixed.setdefault("materials", [])
    materials.append({"name": UNNAMED_MATERIAL})
    for primitive in bare:
        primitive["material"] = len(materials) - 1
    raw = path.read_bytes()
    if raw[:4] != b"glTF":
        return io.BytesIO(json.dumps(fixed).encode()), "gltf"
    length = struct.unpack("<I", raw[12:16])[0]
    rest = raw[20 + length :]  # the binary chunk, untouched
    text = json.dumps(fixed).encode()
    text += b" " * (-len(text) % 4)  # chunks are 4-byte aligned, JSON padded with spaces
    header = struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(text) + len(rest))
    return io.BytesIO(header + struct.pack("<II", len(text), 0x4E4F534A) + text + rest), "glb"


def _gltf_texture_sets(gltf: dict) -> dict[str, str]:
    """Material name -> the name of its texture set: materials whose base colour is one image (a
    face, its lips and ears, as character exports split a head) share one, ``"Face, Lips"``."""
    textures, images = gltf.get("textures", []), gltf.get("images", [])
    by_image: dict = {}
    for material in gltf.get("materials", []):
        index = material.get("pbrMetallicRoughness", {}).get("baseColorTexture", {}).get("index")
        source = textures[index].get("source") if isinstance(index, int) and index < len(textures) else None
        image = images[source] if isinstance(source, int) and source < len(images) else None
        if image is None:
            key = ("material", material.get("name", ""))
        else:  # one file, or one stored picture that two image entries point at
            key = ("image", image.get("uri") or image.get("bufferView", source))
        by_image.setdefault(key, []).append(str(material.get("name", "")))
    return {name: ", ".join(group) for group in by_image.values() for name in group}


def _gltf_found(gltf: dict) -> str:
    """What a glTF holds, in words, for error messages: meshes, morph targets, images, extensions."""
    primitives = [p for m in gltf.get("meshes", []) for p in m.get("primitives", [])]
    parts = [f"{len(gltf.get('meshes', []))} mesh(es) with {len(primitives)} primitive(s)"]
    targets = sum(len(p.get("targets", [])) for p in primitives)
    if targets:
        parts.append(f"{targets} morph target(s)")
    images = [
        i.get("mimeType") or Path(str(i.get("uri", "embedded"))).suffix or "image"
        for i in gltf.get("images", [])
    ]
    if images:
        parts.append(f"{len(images)} image(s) ({', '.join(sorted(set(map(str, images))))})")
    if gltf.get("skins"):
        parts.append(f"{len(gltf['skins'])} skin(s)")
    used = sorted(set(gltf.get("extensionsUsed", [])) | set(gltf.get("extensionsRequired", [])))
    if used:
        parts.append("extensions " + ", ".join(used))
    return "; ".join(parts)


def _check_gltf(path: Path, gltf: dict) -> None:
    """Typed errors for glTF geometry trimesh would read wrongly or not at all: its buffer files
    missing (a .gltf copied without its .bin), compressed without its decoder."""
    import importlib.util

    missing = [
        str(buffer["uri"])
        for buffer in gltf.get("buffers", [])
        if isinstance(buffer.get("uri"), str)
        and not buffer["uri"].startswith("data:")
        and not (path.parent / urllib.parse.unquote(buffer["uri"])).is_file()
    ]
    if missing:
        raise AvatarTexError(
            ErrorCode.MESH_UNREADABLE,
            f"{path.name} keeps its geometry in {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not beside it in {path.parent}.",
            "Copy the .bin file(s) the .gltf names into its folder, or export the head as one .glb "
            "(Blender: glTF export > Format > glTF Binary).",
        )
    used = set(gltf.get("extensionsUsed", [])) | set(gltf.get("extensionsRequired", []))
    for extension, module in GLTF_GEOMETRY_CODECS.items():
        if extension in used and (module is None or importlib.util.find_spec(module) is None):
            raise AvatarTexError(
                ErrorCode.MESH_UNREADABLE,
                f"{path.name} stores its geometry compressed with {extension}, which AvatarTex cannot "
                f"decode here (found: {_gltf_found(gltf)}).",
                "Export it again without mesh compression (Blender: glTF export > Data > Compression "
                f"off; gltfpack: without -cc/-c){f', or pip install {module}' if module else ''}.",
            )


def _ply_header(path: Path) -> tuple[str, list[tuple[str, int]]]:
    """A PLY's format and its elements (name, count), from its header."""
    elements: list[tuple[str, int]] = []
    fmt = "unknown"
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                words = raw.decode("ascii", "replace").split()
                if words[:1] == ["format"] and len(words) > 1:
                    fmt = words[1]
                elif words[:1] == ["element"] and len(words) > 2:
                    elements.append((words[1], int(words[2]) if words[2].isdigit() else -1))
                elif words[:1] == ["end_header"]:
                    break
    except OSError:
        pass
    return fmt, elements


def strips_to_triangles(strips) -> np.ndarray:
    """(T, 3) triangles of triangle strips (PLY ``tristrips``): every second triangle's winding is
    flipped to keep the strip's orientation; ``-1`` restarts a strip; degenerate joins are dropped."""
    out = []
    for strip in strips:
        strip = np.asarray(strip, np.int64).reshape(-1)
        cuts = np.flatnonzero(strip < 0)
        for part in np.split(strip, cuts):
            part = part[part >= 0]
            if len(part) < 3:
                continue
            a, b, c = part[:-2], part[1:-1], part[2:]
            odd = (np.arange(len(a)) % 2).astype(bool)
            tri = np.stack([np.where(odd, b, a), np.where(odd, a, b), c], axis=1)
            keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
            out.append(tri[keep])
    return np.concatenate(out) if out else np.zeros((0, 3), np.int64)


def _ply_strips(path: Path, loaded) -> Mesh | None:
    """The mesh of a PLY stored as ``tristrips`` (trimesh reads those as a point cloud), with the
    vertices' ``s, t``/``u, v`` as its UVs; None when the file has no strips."""
    raw = getattr(loaded, "metadata", {}).get("_ply_raw") or {}
    strips = raw.get("tristrips", {}).get("data", {})
    vertex = raw.get("vertex", {}).get("data")
    if not isinstance(strips, dict) or "vertex_indices" not in strips or vertex is None:
        return None
    column = vertex.__getitem__
    positions = np.stack([np.asarray(column(k), np.float32).reshape(-1) for k in "xyz"], axis=1)
    triangles = strips_to_triangles(strips["vertex_indices"])
    names = vertex.keys() if isinstance(vertex, dict) else (vertex.dtype.names or ())
    uvs = None
    for u, v in (("s", "t"), ("u", "v"), ("texture_u", "texture_v")):
        if u in names and v in names:
            uv = np.stack(
                [
                    np.asarray(column(u), np.float32).reshape(-1),
                    np.asarray(column(v), np.float32).reshape(-1),
                ],
                1,
            )
            uvs = uv[triangles]
            break
    return Mesh(positions, triangles.astype(np.int32), uvs, None, {}, path.stem)


def _uvs_lost(loaded) -> bool:
    """Whether a mesh trimesh loaded has no UVs at all (a single mesh without, or no part with)."""
    geometries = loaded.dump() if hasattr(loaded, "dump") else [loaded]
    return not any(getattr(getattr(g, "visual", None), "uv", None) is not None for g in geometries)


def _obj_has_uvs(path: Path) -> bool:
    """Whether an OBJ file has texture coordinates (``vt`` lines)."""
    with open(path, "rb") as file:
        return any(line.startswith(b"vt ") for line in file)


def _load_with_trimesh(path: Path, uv_map: str) -> Mesh:
    import trimesh

    suffix = path.suffix.lower()
    gltf = _gltf_json(path) if suffix in (".glb", ".gltf") else None
    if gltf is not None:
        _check_gltf(path, gltf)
    try:
        with_materials = _gltf_with_materials(path, gltf) if gltf is not None else None
        if with_materials is None:
            loaded = trimesh.load(path, process=False)
        else:
            file_obj, file_type = with_materials
            resolver = trimesh.resolvers.FilePathResolver(str(path))
            loaded = trimesh.load(file_obj, file_type=file_type, resolver=resolver, process=False)
        if suffix == ".obj" and _uvs_lost(loaded) and _obj_has_uvs(path):
            # trimesh joins an OBJ's objects into one mesh and drops every UV when one object has
            # none (an eyeball without vt); read object by object, the others keep theirs.
            loaded = trimesh.load(path, process=False, split_objects=True, group_material=False)
        scene = trimesh.Scene(loaded) if not isinstance(loaded, trimesh.Scene) else loaded
    except Exception as exc:  # trimesh raises many types for corrupt or unusual files
        if suffix == ".ply":
            fmt, elements = _ply_header(path)
            found = f"a {fmt} PLY with " + ", ".join(f"{n} {name}" for name, n in elements)
        elif gltf is not None:
            found = f"glTF with {_gltf_found(gltf)}"
        else:
            found = f"a {suffix} file"
        raise AvatarTexError(
            ErrorCode.MESH_UNREADABLE,
            f"Cannot read mesh {path.name} ({found}): {type(exc).__name__}: {exc}.",
            "Re-export it as .glb, .obj or .ply with plain triangles or polygons (no compression).",
        ) from None
    if suffix == ".ply" and not isinstance(loaded, trimesh.Trimesh):
        stripped = _ply_strips(path, loaded)
        if stripped is not None:
            return stripped
    geometries = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not geometries:
        if suffix == ".ply":
            fmt, elements = _ply_header(path)
            found = "elements " + ", ".join(f"{name} ({n})" for name, n in elements)
        elif gltf is not None:
            found = _gltf_found(gltf)
        else:
            found = ", ".join(sorted({type(g).__name__ for g in scene.geometry.values()})) or "nothing"
        raise AvatarTexError(
            ErrorCode.MESH_EMPTY,
            f"Mesh file {path.name} contains no triangles (found: {found}).",
            "Export the head mesh itself (not only curves or points).",
        )
    positions, triangles, uvs, parts, names, unmapped = [], [], [], [], [], []
    offset = 0
    texture_sets = _gltf_texture_sets(gltf) if gltf is not None else {}
    for geometry in geometries:
        material = getattr(getattr(geometry.visual, "material", None), "name", None)
        # Without a material, the object's (node's) name says which part it is: "Head", "EyeL".
        meta = geometry.metadata
        name = str(material or meta.get("node", "") or meta.get("name", "") or "")
        name = texture_sets.get(name, name)  # materials showing one image are one texture
        mapped = getattr(geometry.visual, "uv", None) is not None and len(geometry.visual.uv) == len(
            geometry.vertices
        )
        if name not in names:
            names.append(name)
        parts.append(np.full(len(geometry.faces), names.index(name), np.int32))
        faces = np.asarray(geometry.faces, np.int64)
        if len(faces) and (faces.min() < 0 or faces.max() >= len(geometry.vertices)):
            # The validation after loading says so for every format; the UVs below were indexed by
            # them first (an IndexError traceback on a glTF whose indices run past its vertices).
            raise AvatarTexError(
                ErrorCode.MESH_INVALID,
                f"Mesh file {path.name} has triangle indices outside its {len(geometry.vertices)} vertices"
                + (f" (part {name!r})." if name else "."),
                "Re-export the mesh.",
            )
        positions.append(np.asarray(geometry.vertices, np.float32))
        triangles.append(faces + offset)
        if not mapped:
            # A part without a UV map (eyeballs or teeth exported without one): kept in the shape,
            # untextured (``validate`` keeps a whole part of non-finite UVs).
            uvs.append(np.full((len(faces), 3, 2), np.nan, np.float32))
            unmapped.append(name)
        else:
            uvs.append(np.asarray(geometry.visual.uv, np.float32)[faces])
        offset += len(geometry.vertices)
    have_uvs = len(unmapped) < len(geometries)
    available = ["TEXCOORD_0"] if have_uvs else []
    in_file = {
        name
        for mesh_entry in (gltf or {}).get("meshes", [])
        for primitive in mesh_entry.get("primitives", [])
        for name in primitive.get("attributes", {})
        if str(name).startswith("TEXCOORD_")
    }
    if uv_map and uv_map in in_file and uv_map not in available:
        raise AvatarTexError(
            ErrorCode.UV_MAP_NOT_FOUND,
            f"{path.name} has a UV set {uv_map!r}, but only a glTF's first (TEXCOORD_0) is read.",
            f"Export the file with {uv_map} as its first UV map (Blender: make it the first in Object Data "
            "> UV Maps), or use the Blender add-on, which reads any UV map by name.",
        )
    if uv_map and uv_map not in available and uv_map not in ("UVMap", "0"):
        raise AvatarTexError(
            ErrorCode.UV_MAP_NOT_FOUND,
            f"{path.name} has no UV map named {uv_map!r}.",
            f"Available: {', '.join(available) or 'none'}. Leave --uv-map empty for the first.",
        )
    warnings = []
    if have_uvs and unmapped:
        warnings.append(
            f"{path.name}: {', '.join(repr(n) for n in dict.fromkeys(unmapped))} "
            f"{'has' if len(set(unmapped)) == 1 else 'have'} no UV map: kept in the shape, left untextured"
        )
    if gltf is not None and any(
        p.get("targets") for m in gltf.get("meshes", []) for p in m.get("primitives", [])
    ):
        warnings.append(f"{path.name}: morph targets ignored, the texture is made on the base shape")
    return Mesh(
        np.concatenate(positions),
        np.concatenate(triangles).astype(np.int32),
        np.concatenate(uvs) if have_uvs else None,
        None,
        {},
        path.stem,
        warnings=warnings,
        parts=np.concatenate(parts) if len(names) > 1 else None,
        part_names=names if len(names) > 1 else [],
        numbered_by=str(path) if suffix == ".obj" else "",
    )
