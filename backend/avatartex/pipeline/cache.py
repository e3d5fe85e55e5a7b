"""What the pipeline derives from a mesh alone, kept between requests of one backend process.

A batch of variants of one head, or the same head re-textured from another photo, skips the facing
search, the landmark detection, the atlas rasterisation and the UV surface of the bake.

The key is the mesh's content, not its name or path: a SHA-1 over its positions, triangles, UVs and
pins, plus the facing the request gave. Editing a single vertex, UV or pin is a new head; saving the
same mesh under another name is the same one.

A ``HeadStore`` (a folder, ``AVATARTEX_CACHE_DIR`` for the server) also keeps each head's landmarks
on disk, the costliest thing a new process does for a mesh (26 renders through the detector, 2-3 s),
and its ambient occlusion (64 depth maps, 0.4-0.6 s): the first request after Blender restarts, on a
head textured before, skips them too. Its entries are plain ``.npz`` arrays and JSON, keyed by the
mesh and by the code that found them; they keep the mesh's normalised vertices (float16), so that a
copy of a head kept there, turned, moved or scaled since, is read from it too (``HeadStore.turned``).

``FitCache`` keeps a portrait's fit to a head (camera, warp, projection) for the variants of one head
from one photo.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import __version__, uvtiles
from ..atlas import AtlasGeometry, HeadFrame, build_atlas, directions
from ..bake import UVSurface, uv_surface
from ..body import head_part  # -- body --
from ..camera import Camera
from ..eyes import Eyes, find_eyeballs
from ..face import (
    FACE_OVAL,
    JAW,
    LEFT_EYE_CONTOUR,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    NOSE_TIP,
    RIGHT_EYE_CONTOUR,
)
from ..jawline import jaw_on_outline
from ..landmarks import FACING_NOTE, MeshLandmarks, detect_from_camera, detect_mesh_landmarks
from ..mesh import Mesh, compute_normals, mapped_triangles, parse_facing
from ..meshframe import MeshFrame, mesh_frame, normalized
from ..occlusion import MeshCavity, at_texels, vertex_occlusion
from ..protocol import AvatarTexError, ErrorCode
from ..sheets import sheets_warning, thin_open_parts
from ..winding import outward

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "AVATARTEX_CACHE_DIR"
"""The folder of the server's ``HeadStore``; unset, nothing is kept on disk."""


@dataclass
class HeadModel:
    """One mesh's landmarks, head frame, and its atlases and UV surfaces by size."""

    mesh: Mesh
    """The mesh as the steps see it: centred and scaled to unit size (``normalized``)."""
    landmarks: MeshLandmarks
    frame: HeadFrame
    file_centre: np.ndarray = field(default_factory=lambda: np.zeros(3))
    file_scale: float = 1.0
    file_turn: np.ndarray | None = None
    """``mesh.positions = (the file's positions @ file_turn.T - file_centre) / file_scale``; no turn
    (None) but for a turned copy of a head kept in memory (``turned_copy``) or on disk
    (``HeadStore.turned``), which is read in that head's axes."""
    original: HeadModel | None = None
    """The kept head this one is a turned, moved or scaled copy of (``turned_copy``): the same mesh
    in its own units, sharing that head's landmarks, atlases, surfaces and fits."""
    atlases: dict[int, AtlasGeometry] = field(default_factory=dict)
    """Atlas size -> the atlas geometry, face region marked."""
    surfaces: dict[tuple[int, tuple[int, int]], UVSurface] = field(default_factory=dict)
    """(texture size, UV tile) -> the surface behind every texel of that tile of the mesh's UV map."""
    texels: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """Atlas size -> ``atlas_texels``."""
    # -- body --
    body: Any = None
    """``body.HeadPart`` when the mesh is a full-body character: ``mesh`` is then its head part."""
    # -- end body --
    derived: dict[str, Any] = field(default_factory=dict)
    """What requests derive from the head alone, once (``eyeballs``, ``painted_landmarks``)."""

    def eyeballs(self) -> Eyes | None:
        """The mesh's separate eyeballs behind its detected eyes (``eyes.find_eyeballs``), or None."""
        if "eyes" not in self.derived:
            found = None
            if self.landmarks.source.startswith("detected"):
                found = find_eyeballs(self.mesh.positions, self.mesh.triangles, self.landmarks)
            self.derived["eyes"] = found
        return self.derived["eyes"]

    def painted_landmarks(self, landmarker: Any) -> MeshLandmarks | None:
        """The mesh's landmarks read again from the render they were found in with the eyeballs
        painted (``eyes``): what a photo with open eyes is matched with. None without eyeballs, or
        when the painted render shows no face; the artist's pins override as everywhere."""
        if "painted" not in self.derived:
            eyes, found = self.eyeballs(), None
            if eyes is not None:
                mesh = self.mesh
                found = detect_from_camera(
                    mesh.positions,
                    mesh.triangles,
                    self.landmarks.camera,
                    landmarker,
                    normals=mesh.normals,
                    eyes=eyes,
                    pins=mesh.pins,
                )
            self.derived["painted"] = found
        return self.derived["painted"]

    def drawn_landmarks(self) -> np.ndarray:
        """The mesh's landmarks as the flat styles draw the head's own features (``features.
        drawn_lines``): its jaw's on the jaw's outline (``jawline.jaw_on_outline``)."""
        if "drawn" not in self.derived:
            points = np.array(self.landmarks.points3d, np.float64)
            jaw = list(JAW)
            mesh = self.mesh
            points[jaw] = jaw_on_outline(
                mesh.positions, mesh.triangles, mesh.normals, self.frame, points[jaw]
            )
            self.derived["drawn"] = points
        return self.derived["drawn"]

    def to_file(self, points: np.ndarray) -> np.ndarray:
        """Points of ``mesh`` (and of the atlas, landmarks, registration) in the file's coordinates."""
        points = np.asarray(points, np.float64) * self.file_scale + self.file_centre
        return points if self.file_turn is None else points @ self.file_turn

    def from_file(self, points: np.ndarray) -> np.ndarray:
        """Points in the file's coordinates in those of ``mesh``."""
        points = np.asarray(points, np.float64)
        if self.file_turn is not None:
            points = points @ self.file_turn.T
        return (points - self.file_centre) / self.file_scale

    @property
    def warnings(self) -> list[str]:
        """What the artist is told of the mesh itself, by its name: thin open parts painted with what
        lies under them, faces wound against their neighbours that were turned, and what the landmark
        search said (to a copy, which was not searched, not how its search could be skipped)."""
        said = sheets_warning(self.mesh.name, *self.derived.get("sheets", (0, 0.0)))
        if turned := self.derived.get("faces_turned", 0):
            said.append(
                f"{turned} faces of mesh '{self.mesh.name}' were wound the other way from those around "
                "them (flipped normals on part of it) and got no photo: they were turned to agree; "
                "Blender: Edit Mode > Mesh > Normals > Recalculate Outside fixes the file"
            )
        notes = self.landmarks.warnings
        if self.file_turn is not None:  # a copy, not searched
            notes = [note for note in notes if not note.startswith(FACING_NOTE)]
        return said + notes

    def whole_positions(self) -> np.ndarray:
        """The positions of the whole mesh as read, normalised (``normalized``): a full-body
        character's whole body, not its head part."""
        return (self.mesh if self.body is None else self.body.whole).positions  # -- body --

    def turned_copy(self, name: str, turn: np.ndarray, centre: np.ndarray, scale: float) -> HeadModel:
        """This head as the copy ``name`` of it in a file: ``whole_positions() ≈ ((copy's positions -
        centre) / scale) @ turn.T``. Everything found on the head is shared (in the normalised mesh's
        coordinates, which are the same); only the way back to the file differs."""
        inner_centre, inner_scale = np.zeros(3), 1.0
        if self.body is not None:  # -- body -- the head part within the whole
            inner_centre, inner_scale = np.asarray(self.body.centre, np.float64), float(self.body.scale)
        return dataclasses.replace(
            self,
            mesh=dataclasses.replace(self.mesh, name=name),
            file_centre=np.asarray(centre, np.float64) @ turn.T + scale * inner_centre,
            file_scale=scale * inner_scale,
            file_turn=turn,
            original=self,
        )

    def atlas(self, size: int) -> AtlasGeometry:
        """The head's atlas geometry at ``size``, with the face region marked."""
        if size not in self.atlases:
            mesh = self.mesh
            geometry = build_atlas(
                mesh.positions, mesh.triangles, mesh.normals, self.frame, size, self.own_frame()
            )
            outline = self.landmarks.points3d[list(FACE_OVAL)]
            outline = outline[np.isfinite(outline).all(axis=1)]
            if len(outline) >= 8:
                theta, phi = directions(self.frame.to_head(outline))
                geometry.set_face_region(geometry.layout.band_xy(theta, phi))
            geometry.occlusion = at_texels(self.occlusion(), mesh.triangles, geometry.tri_id, geometry.bary)
            geometry.cavity = self.cavity
            self.atlases[size] = geometry
        return self.atlases[size]

    def own_frame(self) -> MeshFrame:
        """The mesh's own frame (``meshframe.mesh_frame``), in which its grain and occlusion are
        measured; a full-body character's is its whole body's, in its head part's coordinates (the
        head part is cut where the landmarks say, a little differently on each copy of the
        character; the whole body is the same)."""
        if "own_frame" not in self.derived:
            whole, centre, scale = self.mesh, np.zeros(3), 1.0
            if self.body is not None:  # -- body --
                whole, centre, scale = self.body.whole, self.body.centre, self.body.scale
            frame = mesh_frame(whole.positions, whole.triangles, self.frame.axes)
            self.derived["own_frame"] = frame.moved(centre, scale)
        return self.derived["own_frame"]

    def atlas_texels(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) surface points and (N, 3) unit normals, in the mesh's axes, of the N texels the
        ``size`` atlas shows (``mask`` order): what the projection reads for every photo, gathered
        once (63 ms of each 1024 request on the scanned head). Read-only: requests share them."""
        if size not in self.texels:
            geometry = self.atlas(size)
            hit = geometry.mask
            points, normals = geometry.positions[hit], geometry.normals[hit] @ self.frame.axes
            for array in (points, normals):
                array.setflags(write=False)
            self.texels[size] = (points, normals)
        return self.texels[size]

    @property
    def material(self) -> int | None:
        """The material the texture is for, where the mesh has several (``Mesh.parts``): the face's,
        the one most of the face's landmarks lie on (eyes, teeth or a body in other materials keep
        their own textures, and their UV islands may overlap the face's). None: one material."""
        if "material" not in self.derived:
            self.derived["material"] = face_material(self.mesh, self.landmarks.points3d)
        return self.derived["material"]

    @property
    def textured(self) -> np.ndarray:
        """(T,) int64 indices of the triangles the texture is for: the face's material's (all of
        them for a mesh with one material)."""
        if "textured" not in self.derived:
            mesh, material = self.mesh, self.material
            chosen = np.ones(len(mesh.triangles), bool) if material is None else mesh.parts == material
            # Parts read without a UV map of their own (``mesh.unmapped_parts``) are in no image.
            mapped = mapped_triangles(mesh.uvs)
            if not (chosen & mapped).any():
                part = "" if material is None else f" ('{mesh.part_name(material)}')"
                raise AvatarTexError(
                    ErrorCode.NO_UV_MAP,
                    f"The face's part{part} of mesh '{mesh.name}' has no UV map; only other parts have one.",
                    "Unwrap the face's part (Blender: UV > Smart UV Project) and export it again.",
                )
            self.derived["textured"] = np.flatnonzero(chosen & mapped)
        return self.derived["textured"]

    @property
    def uv_area(self) -> float:
        """The textured triangles' area in UV space (squares of it), summed over the tiles."""
        if "uv_area" not in self.derived:
            self.derived["uv_area"] = uvtiles.uv_area(self.mesh.uvs, self.textured)
        return self.derived["uv_area"]

    @property
    def uv_tiles(self) -> list[tuple[int, int]]:
        """The UV squares (``uvtiles``) the textured triangles lie in: one image each, UDIM order."""
        if "uv_tiles" not in self.derived:
            self.derived["uv_tiles"] = uvtiles.tiles(self.mesh.uvs, self.textured)
        return self.derived["uv_tiles"]

    def surface(self, size: int, tile: tuple[int, int] | None = None) -> UVSurface:
        """The UV surface of a ``size`` texture of one UV tile (the first when ``None``): each
        texel's triangle and barycentrics, the triangles of other tiles and materials left out."""
        tile = self.uv_tiles[0] if tile is None else tile
        if (size, tile) not in self.surfaces:
            mesh = self.mesh
            uvs = uvtiles.in_tile(mesh.uvs, tile, self.textured)
            surface = uv_surface(mesh.positions, mesh.triangles, mesh.normals, uvs, size)
            surface.cavity = self.cavity
            covered = surface.mask
            surface.occlusion = at_texels(
                self.occlusion(), mesh.triangles, surface.tri_id[covered][None], surface.bary[covered][None]
            )[0]
            self.surfaces[size, tile] = surface
        return self.surfaces[size, tile]

    @property
    def cavity(self) -> MeshCavity:
        """The mesh's folds (``occlusion.MeshCavity``), one for its atlases and UV surfaces: measured
        when a style first draws its shadows, once."""
        if "cavity" not in self.derived:
            mesh = self.mesh
            self.derived["cavity"] = MeshCavity(mesh.positions, mesh.triangles, mesh.normals)
        return self.derived["cavity"]

    def occlusion(self) -> np.ndarray:
        """(V,) the ambient occlusion of each vertex of ``mesh`` (``occlusion.vertex_occlusion``),
        measured once: the de-lighting takes the photo's darkness in the creases out with it."""
        if "occlusion" not in self.derived:
            mesh = self.mesh
            self.derived["occlusion"] = vertex_occlusion(
                mesh.positions, mesh.triangles, mesh.normals, frame=self.own_frame()
            )
        return self.derived["occlusion"]


def wound_one_way(mesh: Mesh) -> tuple[Mesh, int]:
    """``mesh`` with the faces wound against those around them turned (``winding.outward``), its
    normals computed again; and how many were turned."""
    flipped = outward(mesh.positions, mesh.triangles)
    if flipped is None:
        return mesh, 0
    triangles = np.asarray(mesh.triangles, np.int32)
    triangles = np.where(flipped[:, None], triangles[:, ::-1], triangles)
    uvs = None if mesh.uvs is None else np.where(flipped[:, None, None], mesh.uvs[:, ::-1], mesh.uvs)
    normals = compute_normals(mesh.positions, triangles)
    return dataclasses.replace(mesh, triangles=triangles, uvs=uvs, normals=normals), int(flipped.sum())


def face_material(mesh: Mesh, points3d: np.ndarray) -> int | None:
    """The material (``Mesh.parts``) of the triangles nearest most of the face's landmarks, or None
    for a mesh of one material (or without landmarks to tell)."""
    parts = mesh.parts
    points = np.asarray(points3d, np.float64)
    points = points[np.isfinite(points).all(axis=1)]
    if parts is None or not len(points):
        return None
    from scipy.spatial import cKDTree

    centroids = np.asarray(mesh.positions, np.float64)[mesh.triangles].mean(axis=1)
    _, nearest = cKDTree(centroids).query(points)
    return int(np.bincount(parts[nearest]).argmax())


def shape_key(mesh: Mesh, facing: str = "") -> str:
    """The key of a mesh's content but where its vertices are: its vertex count, triangles, UVs,
    parts and pins, and the facing asked. Heads that share it may be one turned copy of another
    (``turn_onto`` tells)."""
    digest = hashlib.sha1(str(len(mesh.positions)).encode())
    for array in (a if a is not None else np.zeros(0) for a in (mesh.triangles, mesh.uvs, mesh.parts)):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(sorted(mesh.pins.items())).encode())
    digest.update(facing.encode())
    return digest.hexdigest()


def mesh_key(mesh: Mesh, facing: str = "", shape: str | None = None) -> str:
    """The cache key of a mesh: its content (``shape_key``, given or worked out) and where its
    vertices are."""
    digest = hashlib.sha1((shape_key(mesh, facing) if shape is None else shape).encode())
    digest.update(np.ascontiguousarray(mesh.positions).tobytes())
    return digest.hexdigest()


TURNED_COPY_TOLERANCE = 1e-3
"""Farthest a vertex of a mesh may lie from its kept head's, after the best turn, in the normalised
head's units (its farthest vertex at 1), for the mesh to be that head turned, moved or scaled:
float32 positions turned and scaled move by about 1e-7 of the head's size, and by 1e-4 where the
file puts a head of 3 mm at 3 units from its origin (a tenth of a millimetre on a 10 cm head is
nothing the texture shows). A vertex sculpted further, or a shape key, is another head."""

COPIES_KEPT = 64
"""Turned copies of the kept heads remembered by their own keys (each holds no arrays of its own)."""


def turn_onto(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray | None:
    """The rotation ``turn`` (3, 3) with ``moving @ turn.T`` within ``TURNED_COPY_TOLERANCE`` of
    ``fixed`` row by row (the same vertices, both normalised), or None: another shape, or a mirror
    image (a mirrored head is another head: its left eye is where the other's right is)."""
    moving, fixed = np.asarray(moving, np.float64), np.asarray(fixed, np.float64)
    if moving.shape != fixed.shape:
        return None
    u, _, vt = np.linalg.svd(moving.T @ fixed)  # Kabsch: the turn that best lays one onto the other
    turn = (u @ vt).T
    if np.linalg.det(turn) < 0:
        return None
    if np.linalg.norm(moving @ turn.T - fixed, axis=1).max() > TURNED_COPY_TOLERANCE:
        return None
    return turn


def _turned(mesh: Mesh, turn: np.ndarray) -> Mesh:
    """``mesh`` (normalised) turned by ``turn``: its vertices and normals."""
    normals = (
        None if mesh.normals is None else (np.asarray(mesh.normals, np.float64) @ turn.T).astype(np.float32)
    )
    positions = (np.asarray(mesh.positions, np.float64) @ turn.T).astype(np.float32)
    return dataclasses.replace(mesh, positions=positions, normals=normals)


def head_frame(landmarks: MeshLandmarks) -> HeadFrame:
    """The head frame from a mesh's landmarks: eye centres, mouth centre, nose tip."""
    p = landmarks.points3d

    def centre(indices) -> np.ndarray:
        return np.nanmean(p[list(indices)], axis=0)

    return HeadFrame.from_landmarks(
        centre(RIGHT_EYE_CONTOUR), centre(LEFT_EYE_CONTOUR), centre([MOUTH_RIGHT, MOUTH_LEFT]), p[NOSE_TIP]
    )


_STORED_TYPES = {"MeshLandmarks": MeshLandmarks, "Camera": Camera}
"""The only classes a stored entry is rebuilt into (nothing in it is executed or imported)."""


_NOT_STORED = {"render"}
"""Fields left out of a stored entry (rebuilt with their default): the landmarks' ``render`` is the
detector's view, kept for a debug overlay, 3 MB of the entry's 3.2 MB."""


def _flatten(obj: Any, prefix: str, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> None:
    """A dataclass's fields into ``arrays`` (numpy) and ``values`` (JSON), nested ones by prefix."""
    values[prefix + "__type__"] = type(obj).__name__
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = prefix + f.name
        if f.name in _NOT_STORED:
            continue
        if isinstance(value, np.ndarray):
            arrays[name] = value
        elif dataclasses.is_dataclass(value):
            _flatten(value, name + ".", arrays, values)
        elif isinstance(value, np.generic):
            values[name] = value.item()
        else:
            values[name] = value


def _rebuild(prefix: str, arrays: Any, values: dict[str, Any]) -> Any:
    """The dataclass ``_flatten`` wrote under ``prefix``; fields it left out take their defaults."""
    cls = _STORED_TYPES[values[prefix + "__type__"]]
    kwargs = {}
    for f in dataclasses.fields(cls):
        name = prefix + f.name
        if name in arrays:
            kwargs[f.name] = np.asarray(arrays[name])
        elif name + ".__type__" in values:
            kwargs[f.name] = _rebuild(name + ".", arrays, values)
        elif name in values:
            kwargs[f.name] = values[name]
    return cls(**kwargs)


_OCCLUSION = "__occlusion__"
"""The entry's array of the vertices' ambient occlusion (``HeadModel.occlusion``)."""
_POSITIONS = "__positions__"
"""The entry's array of the mesh's normalised vertices (float16; ``HeadStore.turned``)."""


class StoredHead(NamedTuple):
    """What a ``HeadStore`` entry holds for a mesh."""

    landmarks: MeshLandmarks
    occlusion: np.ndarray | None
    """(V,) the vertices' ambient occlusion, or None in an entry that did not keep it."""


class HeadStore:
    """Meshes' landmarks and occlusion kept in a folder across processes (see the module's docstring).

    An entry is only written for a mesh that is a head (a full-body character's head part is found
    again each time), and only read back by the same code: the key includes a fingerprint of the
    backend's version, the modules that find and lift the landmarks, and the detector's class.
    A damaged or unreadable entry is a miss, never an error.
    """

    MODULES = ("landmarks", "face", "camera", "raster", "body", "mesh", "occlusion", "meshframe")
    """The modules whose code decides a mesh's landmarks and occlusion (their source is in the
    fingerprint)."""
    MAX_ENTRIES = 256
    """Entries kept (about 60 kB each); the least recently written go first."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    @classmethod
    def from_env(cls) -> HeadStore | None:
        """The store in ``AVATARTEX_CACHE_DIR``'s ``heads`` folder, or None when it is unset."""
        folder = os.environ.get(CACHE_DIR_ENV, "")
        return cls(Path(folder) / "heads") if folder else None

    def _prefix(self, shape: str, landmarker: Any) -> str:
        """The start of the file names of the entries of meshes of one ``shape_key`` (turned copies of
        one another), for this code and detector."""
        digest = hashlib.sha1(shape.encode())
        digest.update(_code_fingerprint(self.MODULES).encode())
        digest.update(f"{type(landmarker).__module__}.{type(landmarker).__qualname__}".encode())
        return digest.hexdigest()[:16]

    def path(self, key: str, landmarker: Any, shape: str = "") -> Path:
        """The entry's file for a mesh key (and its ``shape_key``) and detector."""
        digest = hashlib.sha1(key.encode())
        digest.update(_code_fingerprint(self.MODULES).encode())
        digest.update(f"{type(landmarker).__module__}.{type(landmarker).__qualname__}".encode())
        return self.folder / f"{self._prefix(shape, landmarker)}-{digest.hexdigest()}.npz"

    def load(self, key: str, landmarker: Any, shape: str = "") -> StoredHead | None:
        """The stored landmarks (and occlusion, where it was kept) of a mesh, or None."""
        return self._read(self.path(key, landmarker, shape))[1]

    def turned(self, shape: str, landmarker: Any) -> list[tuple[np.ndarray, StoredHead]]:
        """The entries of the meshes of ``shape`` that kept their vertices (normalised, float16), with
        those vertices: a mesh among them turned, moved or scaled is found by ``turn_onto``."""
        found = []
        for path in sorted(self.folder.glob(f"{self._prefix(shape, landmarker)}-*.npz")):
            positions, entry = self._read(path)
            if positions is not None and entry is not None:
                found.append((positions, entry))
        return found

    @staticmethod
    def _read(path: Path) -> tuple[np.ndarray | None, StoredHead | None]:
        """An entry's kept vertices (None where it kept none) and what it holds; (None, None) for a
        missing, damaged or foreign file (a miss, never an error)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                values = json.loads(str(data["__values__"]))
                occlusion = np.asarray(data[_OCCLUSION], np.float32) if _OCCLUSION in data else None
                positions = np.asarray(data[_POSITIONS], np.float32) if _POSITIONS in data else None
                return positions, StoredHead(_rebuild("", data, values), occlusion)
        except FileNotFoundError:
            return None, None
        except Exception as exc:  # a damaged or foreign file: find the landmarks again
            log.warning("head store entry %s unreadable (%s): ignored", path.name, exc)
            return None, None

    def save(
        self,
        key: str,
        landmarker: Any,
        landmarks: MeshLandmarks,
        occlusion: np.ndarray | None = None,
        shape: str = "",
        positions: np.ndarray | None = None,
    ) -> None:
        """Keep a mesh's landmarks, its vertices' ``occlusion`` and its normalised ``positions``
        (float16: within 3e-4 of the head's size, for ``turned``), atomically: a reader never sees
        half a file."""
        arrays: dict[str, np.ndarray] = {}
        values: dict[str, Any] = {}
        _flatten(landmarks, "", arrays, values)
        if occlusion is not None:
            arrays[_OCCLUSION] = np.asarray(occlusion, np.float32)
        if positions is not None:
            arrays[_POSITIONS] = np.asarray(positions, np.float16)
        path = self.path(key, landmarker, shape)
        temporary = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(suffix=".tmp", dir=self.folder)
            with os.fdopen(handle, "wb") as out:
                np.savez(out, __values__=np.array(json.dumps(values)), **arrays)
            os.replace(temporary, path)
            temporary = None
            self._prune()
        except (OSError, TypeError, ValueError) as exc:  # a read-only folder, a full disk
            log.warning("could not keep the head's landmarks in %s: %s", self.folder, exc)
        finally:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)

    def _prune(self) -> None:
        entries = sorted(self.folder.glob("*.npz"), key=lambda p: p.stat().st_mtime)
        for old in entries[: max(0, len(entries) - self.MAX_ENTRIES)]:
            old.unlink(missing_ok=True)


_FINGERPRINTS: dict[tuple[str, ...], str] = {}


def _code_fingerprint(modules: tuple[str, ...]) -> str:
    """A SHA-1 of the backend's version and the source of ``modules`` (computed once)."""
    if modules not in _FINGERPRINTS:
        import importlib

        digest = hashlib.sha1(__version__.encode())
        for name in modules:
            module = importlib.import_module(f"avatartex.{name}")
            digest.update(Path(module.__file__).read_bytes())
        _FINGERPRINTS[modules] = digest.hexdigest()
    return _FINGERPRINTS[modules]


HEAD_CACHE_BYTES = 3 << 30
"""What the heads kept in memory may hold together (their atlases, UV surfaces and what requests
derived from them) before the least recently used are let go, the head asked for always kept: a
warm server kept four heads whatever the texture size, 1.7 GB each at 4096² (9.4 GB at its peak in
a QA's run, beside Blender). ``AVATARTEX_HEAD_CACHE_MB`` sets another."""


def head_cache_bytes() -> int:
    """HEAD_CACHE_BYTES, or ``AVATARTEX_HEAD_CACHE_MB`` megabytes where set to a number."""
    try:
        return int(float(os.environ["AVATARTEX_HEAD_CACHE_MB"]) * (1 << 20))
    except (KeyError, ValueError):
        return HEAD_CACHE_BYTES


def held_bytes(value: Any, seen: set[int] | None = None, depth: int = 6) -> int:
    """The bytes of the numpy arrays ``value`` holds: in dicts, lists, tuples and objects' attributes,
    ``depth`` levels down, each array once (views count their base's bytes once)."""
    seen = set() if seen is None else seen
    if depth < 0 or id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        base = value if value.base is None else value.base
        if base is not value and id(base) in seen:
            return 0
        seen.add(id(base))
        return int(getattr(base, "nbytes", value.nbytes))
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, (list, tuple)):
        items = list(value)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        items = list(vars(value).values())
    else:
        return 0
    return sum(held_bytes(item, seen, depth - 1) for item in items)


class HeadCache:
    """The last ``size`` heads by content (least recently used first out), no more than ``budget``
    bytes of them beside the one asked for (``held_bytes``; ``head_cache_bytes()`` when None), and
    optionally every head's landmarks on disk (``store``)."""

    def __init__(
        self, size: int = 4, store: HeadStore | None = None, budget: int | None = None, copies: bool = True
    ) -> None:
        self.size = size
        self.copies = copies
        """Whether a turned, moved or scaled copy of a kept head is that head (``turned_copy``); the
        benchmarks that measure the landmark search's own invariance to a file's turn set it False."""
        self.store = store
        self.budget = budget
        self._heads: OrderedDict[str, HeadModel] = OrderedDict()
        self._shapes: dict[str, list[str]] = {}
        """``shape_key`` -> the keys of the kept heads with that topology, UVs, parts and pins."""
        self._copies: OrderedDict[str, tuple[str, HeadModel]] = OrderedDict()
        """Key -> (the key of a kept head, a turned copy of it: ``HeadModel.turned_copy``), while that
        head is kept."""

    def _trim(self) -> None:
        """Let the least recently used heads go while more than ``size`` are kept, or the kept hold
        more than the budget (the most recent, the one in use, stays whatever it holds)."""
        budget = head_cache_bytes() if self.budget is None else self.budget
        while len(self._heads) > self.size:
            self._heads.popitem(last=False)
        held = sum(held_bytes(h) for h in self._heads.values())
        while len(self._heads) > 1 and held > budget:
            held -= held_bytes(self._heads.popitem(last=False)[1])
        # what refers to the heads let go goes with them (copies hold no arrays of their own)
        for shape, keys in list(self._shapes.items()):
            keys[:] = [k for k in keys if k in self._heads]
            if not keys:
                del self._shapes[shape]
        for key in [k for k, (kept, _) in self._copies.items() if kept not in self._heads]:
            del self._copies[key]
        while len(self._copies) > COPIES_KEPT:
            self._copies.popitem(last=False)

    def __len__(self) -> int:
        return len(self._heads)

    def __contains__(self, key: str) -> bool:
        """Whether the head of ``mesh_key(mesh, facing)`` is in memory (itself or a copy of it)."""
        return key in self._heads or key in self._copies

    def head(
        self, mesh: Mesh, landmarker: Any, facing: str = "", check_cancel: Callable[[], None] | None = None
    ) -> HeadModel:
        """The mesh's head model: found in the cache, or its landmarks detected and its frame built.

        ``check_cancel`` is called before each detector view of the landmark search (it raises to
        stop it: a ``prepare`` the artist moved on from), so nothing half-found is kept."""
        shape = shape_key(mesh, facing)
        key = mesh_key(mesh, facing, shape)
        kept_key, model = self._copies.get(key, (key, None))
        if kept_key in self._heads:
            if model is not None:
                self._copies.move_to_end(key)
            self._heads.move_to_end(kept_key)
            self._trim()  # what the others grew to in their requests counts now
            return self._heads[kept_key] if model is None else model
        mesh, file_centre, file_scale = normalized(mesh)
        # The same mesh turned, moved or scaled (copies placed about a scene, an importer's axes):
        # the head kept, not a new landmark search.
        for kept_key in self._shapes.get(shape, ()) if self.copies else ():
            kept = self._heads[kept_key]
            turn = turn_onto(mesh.positions, kept.whole_positions())
            if turn is not None:
                model = kept.turned_copy(mesh.name, turn, file_centre, file_scale)
                self._copies[key] = (kept_key, model)
                self._heads.move_to_end(kept_key)
                self._trim()
                return model
        detector = landmarker if check_cancel is None else _CancellableDetector(landmarker, check_cancel)
        forward = parse_facing(facing)
        if forward is None and mesh.forward is not None:
            forward = np.asarray(mesh.forward, np.float64)
        mesh, turned = wound_one_way(mesh)
        # The up and forward hints of the capture steer the facing search: part of the stored key.
        hints = json.dumps([None if v is None else np.asarray(v, float).tolist() for v in (mesh.up, forward)])
        stored_key = f"{key}:{hints}"
        stored = self.store.load(stored_key, landmarker, shape) if self.store is not None else None
        file_turn = None
        if stored is None and self.store is not None and self.copies:
            # A head kept on disk by an earlier process, of which this mesh is a turned copy: read in
            # that head's axes (its landmarks and occlusion hold there), turned back to the file's.
            for positions, entry in self.store.turned(shape, landmarker):
                file_turn = turn_onto(mesh.positions, positions)
                if file_turn is not None:
                    stored = entry
                    mesh = _turned(mesh, file_turn)
                    file_centre = file_centre @ file_turn.T
                    break
        part = None
        if stored is not None:
            landmarks = stored.landmarks
        else:
            # -- body -- a full-body character: everything below runs on its head part (body.py)
            part = head_part(mesh, detector, forward)
            if part is not None:
                mesh, forward = part.mesh, part.mesh.forward
                file_centre, file_scale = file_centre + file_scale * part.centre, file_scale * part.scale
            # -- end body --
            landmarks = detect_mesh_landmarks(
                mesh.positions,
                mesh.triangles,
                detector,
                up=mesh.up,
                forward=forward,
                pins=mesh.pins or None,
            )
        model = HeadModel(mesh, landmarks, head_frame(landmarks), file_centre, file_scale, file_turn)
        model.body = part  # -- body --
        if (
            stored is not None
            and stored.occlusion is not None
            and stored.occlusion.shape == (len(mesh.positions),)
        ):
            model.derived["occlusion"] = stored.occlusion
        elif self.store is not None and part is None:
            self.store.save(stored_key, landmarker, landmarks, model.occlusion(), shape, mesh.positions)
        model.derived["sheets"] = thin_open_parts(mesh.positions, mesh.triangles)
        model.derived["faces_turned"] = turned
        self._heads[key] = model
        self._shapes.setdefault(shape, []).append(key)
        self._trim()
        return model


class _CancellableDetector:
    """A face detector that asks ``check_cancel`` before each detection: the landmark search (tens
    of renders) stops within one view of a cancel, with no cancel hook of its own."""

    def __init__(self, landmarker: Any, check_cancel: Callable[[], None]) -> None:
        self._landmarker = landmarker
        self._check_cancel = check_cancel

    def detect(self, image: np.ndarray) -> Any:
        """The wrapped detector's faces in ``image``, unless the request was cancelled."""
        self._check_cancel()
        return self._landmarker.detect(image)


@dataclass
class PortraitFit:
    """A portrait fitted to a head: what ``register`` and ``project`` made of it."""

    registration: Any
    person: np.ndarray
    """The person mask of the portrait (segmentation)."""
    projection: Any
    landmark_scatter: float | None = None
    """How surely the detector read the portrait's face (``face.landmark_scatter``), for the verdict."""
    face: Any = None
    """The portrait's face the fit was made with (landmarks steadied: ``steps.steady_portrait``)."""


class FitCache:
    """The fits of the last ``size`` (head, portrait) pairs.

    Variants of one head from one photo (another style, seed, strength or scalp) need the same
    camera, warp and projection: about a second of a warm request (``bench/speed.py``). The key is
    the head (the cached model itself), the portrait's pixels and landmarks, its EXIF field of view,
    the atlas size and the registration function used (a turned copy of a head: the head's, the same
    in the normalised coordinates fits live in). Fits are handed out as copies, so a step
    that changed one in place could not change the next request's.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._fits: OrderedDict[tuple, tuple[HeadModel, PortraitFit]] = OrderedDict()

    @staticmethod
    def key(
        head: HeadModel,
        portrait: np.ndarray,
        landmarks: np.ndarray,
        fov_y_deg_exif: float | None,
        atlas_size: int,
        register: Any,
    ) -> tuple:
        """The key of a fit (``register``: the function that fits the camera, a bound method)."""
        digest = hashlib.sha1(np.ascontiguousarray(portrait).tobytes())
        digest.update(str(portrait.shape).encode())
        digest.update(np.ascontiguousarray(landmarks, np.float64).tobytes())
        function = getattr(register, "__func__", register)
        return (id(head.original or head), digest.hexdigest(), fov_y_deg_exif, atlas_size, function)

    def get(self, key: tuple, head: HeadModel) -> PortraitFit | None:
        """A copy of the fit kept under ``key`` for this very head model, or None."""
        entry = self._fits.get(key)
        if entry is None or entry[0] is not (head.original or head):
            return None
        self._fits.move_to_end(key)
        return copy.deepcopy(entry[1])

    def put(self, key: tuple, head: HeadModel, fit: PortraitFit) -> None:
        """Keep a copy of ``fit`` (the least recently used one goes when full)."""
        self._fits[key] = (head.original or head, copy.deepcopy(fit))
        self._fits.move_to_end(key)
        while len(self._fits) > self.size:
            self._fits.popitem(last=False)
