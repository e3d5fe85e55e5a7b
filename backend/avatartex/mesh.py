"""Head meshes: the capture file the add-on sends, mesh files for the CLI, checks and UV unwrapping.

A ``Mesh`` is triangles with per-corner UVs, so UV seams need no duplicated vertices: ``positions``
are shared by all corners that meet at a vertex, which is what makes the baked texture seam-free.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .protocol import PIN_NAMES, AvatarTexError, ErrorCode

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

    @property
    def corner_positions(self) -> np.ndarray:
        """(T, 3, 3) the positions of each triangle's corners."""
        return self.positions[self.triangles]


AxisLike = str | Sequence[float] | np.ndarray
"""An axis: ``"+y"``, ``"-Z"``, ``"x"`` or three numbers."""


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


def validate(mesh: Mesh, require_uvs: bool = True) -> Mesh:
    """Check a mesh and return a cleaned copy: typed errors for what cannot be used, warnings else.

    Empty meshes, NaN/inf positions and out-of-range indices are errors; degenerate triangles are
    dropped with a warning (real meshes have a few); normals are computed when absent.
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
    bad = ~np.isfinite(positions).all(axis=1)
    if bad.any():
        raise AvatarTexError(
            ErrorCode.MESH_INVALID,
            f"Mesh '{mesh.name}' has {int(bad.sum())} vertices with NaN or infinite coordinates.",
            "Fix or delete those vertices (Blender: Mesh > Clean Up).",
        )
    triangles = triangles.astype(np.int64)
    if triangles.min() < 0 or triangles.max() >= len(positions):
        raise AvatarTexError(
            ErrorCode.MESH_INVALID,
            f"Mesh '{mesh.name}' has triangle indices outside its {len(positions)} vertices.",
            "Re-export the mesh.",
        )
    warnings = list(mesh.warnings)
    corners = positions[triangles].astype(np.float64)
    area2 = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
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
        finite = np.isfinite(uvs).all(axis=(1, 2))
        if not finite.all():
            warnings.append(f"dropped {int((~finite).sum())} triangles with NaN UVs")
            keep &= finite
    if not keep.all():
        dropped = int((~keep).sum())
        if dropped == len(triangles):
            raise AvatarTexError(
                ErrorCode.MESH_INVALID,
                f"Every triangle of mesh '{mesh.name}' is degenerate (zero area).",
                "Check the mesh's scale and that it is not flattened.",
            )
        warnings.append(f"dropped {dropped} degenerate triangles")
        triangles = triangles[keep]
        if uvs is not None:
            uvs = uvs[keep]
    if uvs is None and require_uvs:
        raise AvatarTexError(
            ErrorCode.NO_UV_MAP,
            f"Mesh '{mesh.name}' has no UV map.",
            "Unwrap it (Blender: UV > Smart UV Project) or pass --unwrap to make one.",
        )
    triangles = triangles.astype(np.int32)
    normals = mesh.normals
    if normals is None or np.asarray(normals).shape != positions.shape:
        normals = compute_normals(positions, triangles)
    for pin_name, index in mesh.pins.items():
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
        dict(mesh.pins),
        mesh.name,
        mesh.up,
        mesh.forward,
        warnings,
    )


def unwrap(mesh: Mesh) -> Mesh:
    """A copy of ``mesh`` with a new UV map made by xatlas (charts packed into the unit square)."""
    import xatlas

    vmapping, indices, uvs = xatlas.parametrize(
        mesh.positions.astype(np.float32), mesh.triangles.astype(np.uint32)
    )
    del vmapping  # xatlas keeps the input triangle order, so per-corner UVs need only the new indices
    corner_uvs = uvs[indices.astype(np.int64)].astype(np.float32)
    out = Mesh(**{**mesh.__dict__, "uvs": corner_uvs, "warnings": list(mesh.warnings)})
    out.warnings.append("made a UV map with xatlas (--unwrap)")
    return out


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
    )


def load_mesh(path: str | os.PathLike, uv_map: str = "", unwrap_if_missing: bool = False) -> Mesh:
    """Load a head mesh for the pipeline: a capture ``.npz`` or an ``.obj``/``.glb``/``.gltf``/``.ply``.

    N-gons are triangulated by the loader; several objects in one file are merged. ``uv_map`` picks a
    UV set by name where the format has several (glTF: ``TEXCOORD_0``...; captures carry the one the
    add-on chose). A mesh without UVs is an error unless ``unwrap_if_missing``.
    """
    path = Path(path)
    if not path.exists():
        raise AvatarTexError(ErrorCode.MESH_MISSING, f"Mesh file {path} does not exist.", "Check the path.")
    suffix = path.suffix.lower()
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
        mesh = unwrap(validate(mesh, require_uvs=False))
    return validate(mesh)


def _load_with_trimesh(path: Path, uv_map: str) -> Mesh:
    import trimesh

    try:
        scene = trimesh.load(path, force="scene", process=False)
    except Exception as exc:  # trimesh raises many types for corrupt files
        raise AvatarTexError(
            ErrorCode.MESH_UNREADABLE,
            f"Cannot read mesh {path.name}: {exc}.",
            "Re-export it as .glb, .obj or .ply.",
        ) from None
    geometries = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not geometries:
        raise AvatarTexError(
            ErrorCode.MESH_EMPTY,
            f"Mesh file {path.name} contains no triangles.",
            "Export the head mesh itself (not only curves or points).",
        )
    positions, triangles, uvs = [], [], []
    offset = 0
    have_uvs = True
    for geometry in geometries:
        uv = getattr(geometry.visual, "uv", None)
        faces = np.asarray(geometry.faces, np.int64)
        positions.append(np.asarray(geometry.vertices, np.float32))
        triangles.append(faces + offset)
        if uv is None or len(uv) != len(geometry.vertices):
            have_uvs = False
        else:
            uvs.append(np.asarray(uv, np.float32)[faces])
        offset += len(geometry.vertices)
    available = ["TEXCOORD_0"] if have_uvs else []
    if uv_map and uv_map not in available and uv_map not in ("UVMap", "0"):
        raise AvatarTexError(
            ErrorCode.UV_MAP_NOT_FOUND,
            f"{path.name} has no UV map named {uv_map!r}.",
            f"Available: {', '.join(available) or 'none'}. Leave --uv-map empty for the first.",
        )
    return Mesh(
        np.concatenate(positions),
        np.concatenate(triangles).astype(np.int32),
        np.concatenate(uvs) if have_uvs else None,
        None,
        {},
        path.stem,
    )
