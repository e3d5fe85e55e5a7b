"""The whole method, from a portrait and a head mesh to the texture in the mesh's UVs.

``Generator`` keeps what is worth keeping between requests in one backend process: the face
landmarker, the neural models, and per mesh its landmarks, head frame and atlas (a batch of variants
of one head re-uses them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .protocol import STAGES, AvatarTexError, ErrorCode, GenerateParams, Progress

log = logging.getLogger("avatartex")

MIN_SIZE, MAX_SIZE = 512, 4096
REFINE_ROUNDS = 1
"""Rounds of view-matched landmark re-detection after the first registration (each ~0.1-0.2 s)."""

# Share of the whole request each step takes, for the progress bar (measured on the classic engine).
_STEP_SPAN = {
    "analyse": (0.0, 0.1),
    "register": (0.1, 0.2),
    "project": (0.2, 0.3),
    "inpaint": (0.3, 0.5),
    "latent": (0.5, 0.65),
    "repaint": (0.65, 0.85),
    "bake": (0.85, 1.0),
}
assert set(_STEP_SPAN) == set(STAGES)


@dataclass
class HeadModel:
    """What the pipeline derives from a mesh alone, cached per mesh content."""

    mesh: Any
    landmarks: Any
    frame: Any
    atlases: dict
    """Atlas size -> AtlasGeometry."""
    surfaces: dict
    """Texture size -> bake.UVSurface (the surface behind every texel of the mesh's UV map)."""


def atlas_size_for(texture_size: int) -> int:
    """The atlas edge for an output size: the bake adds the portrait's finest detail itself, so the
    atlas stops at 1024 and the stages keep their cost whatever the output size."""
    return 512 if texture_size <= 512 else 1024


def _json_number(value):
    """Floats rounded for the report; NaN/inf (e.g. no cross-validation with few pins) become null."""
    if isinstance(value, float):
        return round(value, 5) if np.isfinite(value) else None
    return value


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and make sure a file can be written there, before any work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".avatartex-probe-"):
            pass
    except OSError as exc:
        raise AvatarTexError(
            ErrorCode.OUTPUT_NOT_WRITABLE,
            f"Cannot write into the output folder {folder}: {exc.strerror or exc}.",
            "Choose a folder you can write to, or fix its permissions.",
        ) from None


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False))
    os.replace(tmp, path)


def _mesh_key(mesh) -> str:
    digest = hashlib.sha1()
    for array in (mesh.positions, mesh.triangles, mesh.uvs if mesh.uvs is not None else np.zeros(0)):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(sorted(mesh.pins.items())).encode())
    return digest.hexdigest()


def _facing_axis(text: str) -> np.ndarray | None:
    if not text:
        return None
    axes = {"x": 0, "y": 1, "z": 2}
    sign = -1.0 if text.startswith("-") else 1.0
    axis = text.lstrip("+-").lower()
    if axis not in axes:
        raise AvatarTexError(
            ErrorCode.BAD_REQUEST,
            f"Unknown facing direction {text!r}.",
            "Use +x, -x, +y, -y, +z or -z, or leave it empty to search.",
        )
    out = np.zeros(3)
    out[axes[axis]] = sign
    return out


class Generator:
    """Runs ``generate`` requests; one per backend process, reused across requests."""

    def __init__(self, landmarker=None, cache_size: int = 4) -> None:
        self._landmarker = landmarker
        self._heads: OrderedDict[str, HeadModel] = OrderedDict()
        self._cache_size = cache_size
        self._neural = None
        self._segmenter = None

    @property
    def segmenter(self):
        """Person-versus-background segmentation of portraits, created on first use."""
        if self._segmenter is None:
            from .face import PersonSegmenter

            self._segmenter = PersonSegmenter()
        return self._segmenter

    @property
    def landmarker(self):
        if self._landmarker is None:
            from .face import default_landmarker

            self._landmarker = default_landmarker()
        return self._landmarker

    # -- engines -------------------------------------------------------------------------------
    def engines(self) -> dict[str, dict[str, Any]]:
        """Which engines can run here, for ``hello``."""
        info = {"classic": {"available": True, "reason": ""}}
        try:
            from .neural import NeuralConfig, available

            ok, reason = available(NeuralConfig.from_env())
        except ImportError as exc:
            ok, reason = False, f"neural packages not installed ({exc.name})"
        info["neural"] = {"available": bool(ok), "reason": reason}
        return info

    def _stages(self, engine: str, style, warnings: list[str]) -> tuple[str, list]:
        if engine not in ("auto", "classic", "neural"):
            raise AvatarTexError(
                ErrorCode.UNKNOWN_ENGINE, f"Unknown engine {engine!r}.", "Use auto, classic or neural."
            )
        if engine in ("auto", "neural"):
            try:
                from . import neural

                if self._neural is None:
                    self._neural = neural.NeuralConfig.from_env()
                ok, reason = neural.available(self._neural)
            except ImportError as exc:
                ok, reason = False, f"the neural packages are not installed ({exc.name})"
            if ok:
                return "neural", neural.build_stages(style, self._neural)
            if engine == "neural":
                raise AvatarTexError(
                    ErrorCode.ENGINE_UNAVAILABLE,
                    f"The neural engine cannot run: {reason}.",
                    "Use --engine classic, or install the neural requirements and "
                    "download the models (avatartex models download --all).",
                )
            warnings.append(f"engine auto chose classic: {reason}")
        from .stages.classic_inpaint import ClassicInpaint
        from .stages.classic_latent import ClassicLatent
        from .stages.classic_repaint import ClassicRepaint

        return "classic", [ClassicInpaint(), ClassicLatent(), ClassicRepaint()]

    # -- the head ------------------------------------------------------------------------------
    def head(self, mesh, facing: str = "") -> HeadModel:
        """Landmarks, head frame and atlas cache of a mesh (computed once per mesh content)."""
        from .atlas import HeadFrame
        from .face import LEFT_EYE_CONTOUR, MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP, RIGHT_EYE_CONTOUR
        from .landmarks import detect_mesh_landmarks

        key = _mesh_key(mesh) + facing
        if key in self._heads:
            self._heads.move_to_end(key)
            return self._heads[key]
        forward = _facing_axis(facing)
        if forward is None and mesh.forward is not None:
            forward = np.asarray(mesh.forward, np.float64)
        landmarks = detect_mesh_landmarks(
            mesh.positions,
            mesh.triangles,
            self.landmarker,
            up=mesh.up,
            forward=forward,
            pins=mesh.pins or None,
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
        model = HeadModel(mesh, landmarks, frame, {}, {})
        self._heads[key] = model
        while len(self._heads) > self._cache_size:
            self._heads.popitem(last=False)
        return model

    def atlas(self, head: HeadModel, size: int):
        """The head's atlas geometry at ``size``, with the face region marked."""
        from .atlas import build_atlas, directions
        from .face import FACE_OVAL

        if size not in head.atlases:
            mesh = head.mesh
            geometry = build_atlas(mesh.positions, mesh.triangles, mesh.normals, head.frame, size)
            outline = head.landmarks.points3d[list(FACE_OVAL)]
            outline = outline[np.isfinite(outline).all(axis=1)]
            if len(outline) >= 8:
                theta, phi = directions(head.frame.to_head(outline))
                geometry.set_face_region(geometry.layout.band_xy(theta, phi))
            head.atlases[size] = geometry
        return head.atlases[size]

    # -- the request ---------------------------------------------------------------------------
    def generate(
        self,
        params: GenerateParams,
        progress: Callable[[Progress], None] | None = None,
        check_cancel: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Run one request; returns ``{"texture": path, "report": {...}}``.

        Nothing is written to ``out_dir`` until the texture is complete, and then only through
        temporary files and renames: a failure or cancel leaves the folder as it was.
        """
        from .atlas import harmonise_charts
        from .bake import bake, uv_surface
        from .face import FACE_OVAL, LEFT_EYE_CONTOUR, LIPS_OUTER, RIGHT_EYE_CONTOUR, analyse_portrait
        from .image_io import load_portrait, save_png
        from .mesh import load_mesh
        from .projection import polygon_mask, prepare_view, project_points, sample_image
        from .stages.base import AtlasTexture, StageContext
        from .styles import get_style

        check_cancel = check_cancel or (lambda: None)
        emit = progress or (lambda p: None)
        timings: dict[str, float] = {}
        warnings: list[str] = []
        started = time.perf_counter()
        clock = [started]

        def step(name: str, within: float = 0.0, message: str = "") -> None:
            check_cancel()
            lo, hi = _STEP_SPAN[name]
            emit(Progress(name, lo + (hi - lo) * within, message))

        def done(name: str) -> None:
            now = time.perf_counter()
            timings[name] = round(timings.get(name, 0.0) + now - clock[0], 4)
            clock[0] = now

        if not MIN_SIZE <= params.size <= MAX_SIZE:
            raise AvatarTexError(
                ErrorCode.INVALID_SIZE,
                f"Texture size {params.size} is out of range.",
                f"Use {MIN_SIZE} to {MAX_SIZE} pixels (1024 or 2048 are typical).",
            )
        if params.bit_depth not in (8, 16):
            raise AvatarTexError(
                ErrorCode.BAD_REQUEST, f"Bit depth {params.bit_depth} is not supported.", "Use 8 or 16."
            )
        style = get_style(params.style)
        engine, stages = self._stages(params.engine, style, warnings)
        out_dir = Path(params.out_dir)
        check_writable(out_dir)

        # Analyse: the portrait's face and the mesh's landmarks.
        step("analyse", 0.0, "reading the portrait")
        portrait, info = load_portrait(params.portrait)
        warnings += info.get("warnings", [])
        face, face_warnings = analyse_portrait(portrait, params.portrait, self.landmarker)
        warnings += face_warnings
        step("analyse", 0.4, "reading the mesh")
        mesh = load_mesh(params.mesh, params.uv_map, params.unwrap)
        warnings += mesh.warnings
        step("analyse", 0.6, "finding the face on the mesh")
        head = self.head(mesh, params.facing)
        warnings += head.landmarks.warnings
        done("analyse")

        step("register", 0.0, "fitting the camera")
        registration = self._register(head, face, portrait)
        done("register")

        step("project", 0.0, "projecting the portrait")
        geometry = self.atlas(head, atlas_size_for(params.size))
        features = np.zeros(portrait.shape[:2], bool)
        for contour in (RIGHT_EYE_CONTOUR, LEFT_EYE_CONTOUR, LIPS_OUTER):
            features |= polygon_mask(features.shape, face.landmarks[list(contour)], grow=0.3)
        view = prepare_view(
            portrait,
            mesh.positions,
            mesh.triangles,
            registration,
            face.landmarks[list(FACE_OVAL)],
            features,
            head.frame.scale,
            person=self.segmenter.mask(portrait),
        )
        hit = geometry.mask
        normals_mesh = geometry.normals[hit] @ head.frame.axes  # head-frame normals back to mesh axes
        coords, confidence = project_points(view, registration, geometry.positions[hit], normals_mesh)
        s = geometry.size
        color = np.zeros((s, s, 3), np.float32)
        conf = np.zeros((s, s), np.float32)
        portrait_coords = np.full((s, s, 2), np.nan, np.float32)
        color[hit] = sample_image(portrait, coords)
        conf[hit] = confidence
        portrait_coords[hit] = coords
        partial = AtlasTexture(color, conf)
        face_region = geometry.face if geometry.face.any() else hit
        # Coverage: of the face texels the portrait's camera sees, the share taken from the portrait
        # (confidence >= 0.5). "Sees" is the depth test and a view less grazing than 72 degrees
        # (cos > 0.3), as bench/accuracy.py counts the texels a camera saw; the share over every
        # texel that passes the depth test, however grazing, is reported beside it.
        to_camera = registration.camera.center - geometry.positions[hit]
        cos = np.zeros((s, s), np.float32)
        cos[hit] = np.einsum("ij,ij->i", normals_mesh, to_camera) / np.maximum(
            np.linalg.norm(normals_mesh, axis=1) * np.linalg.norm(to_camera, axis=1), 1e-12
        )
        in_view = face_region & np.isfinite(portrait_coords[..., 0])
        seen_face = in_view & (cos > 0.3)
        coverage = float((conf[seen_face] >= 0.5).mean()) if seen_face.any() else 0.0
        coverage_grazing = float((conf[in_view] >= 0.5).mean()) if in_view.any() else 0.0
        if coverage < 0.5:
            warnings.append(
                f"only {coverage:.0%} of the face the camera sees is usable (hair, hands or "
                "glasses in front of it?): a clear frontal photo gives a more faithful texture"
            )
        done("project")

        ctx = StageContext(
            atlas=geometry,
            portrait=portrait,
            portrait_coords=portrait_coords,
            style=style,
            seed=params.seed,
            strength=params.strength,
            prompt=params.prompt,
            check_cancel=check_cancel,
            warnings=warnings,
        )
        texture = partial
        for stage in stages:

            def stage_progress(fraction: float, message: str = "", _name=stage.name) -> None:
                step(_name, min(max(fraction, 0.0), 1.0), message)

            ctx.progress = stage_progress
            step(stage.name, 0.0, f"{stage.engine} {stage.name}")
            texture = stage.run(texture, ctx)
            done(stage.name)

        step("bake", 0.0, "baking into the UV map")
        final_atlas = harmonise_charts(geometry, texture.color)
        if params.size not in head.surfaces:
            head.surfaces[params.size] = uv_surface(
                mesh.positions, mesh.triangles, mesh.normals, mesh.uvs, params.size
            )
        surface = head.surfaces[params.size]
        detail = None
        detail_weight = (
            float(getattr(style, "classic", {}).get("bake_detail", 1.0 if style.name == "photoreal" else 0.0))
            if engine == "classic"
            else 0.0
        )
        detail_weight *= 1.0 if style.name == "photoreal" else (1.0 - params.strength)
        if detail_weight > 0:
            detail = self._detail(surface, portrait, geometry, face, portrait_coords, conf) * detail_weight
        result_texture = bake(geometry, final_atlas, surface, detail)
        check_cancel()
        texture_path = out_dir / params.texture_name
        save_png(texture_path, result_texture, params.bit_depth)
        done("bake")
        timings["total"] = round(time.perf_counter() - started, 4)

        report = {
            "backend_version": __version__,
            "engine": engine,
            "stages": {stage.name: stage.engine for stage in stages},
            "style": style.name,
            "size": params.size,
            "atlas_size": geometry.size,
            "seed": params.seed,
            "timings": timings,
            "coverage": round(coverage, 4),
            "coverage_including_grazing": round(coverage_grazing, 4),
            "registration_error": round(
                float(
                    registration.error_iod_holdout
                    if np.isfinite(registration.error_iod_holdout)
                    else registration.error_iod
                ),
                5,
            ),
            "registration_error_camera_only": round(float(registration.error_iod_camera), 5),
            "landmarks_source": head.landmarks.source,
            "dense_alignment": registration.alignment,
            "registration": {k: _json_number(v) for k, v in registration.report().items()},
            "mesh": {
                "name": mesh.name,
                "vertices": int(len(mesh.positions)),
                "triangles": int(len(mesh.triangles)),
            },
            "portrait": {
                "size": list(portrait.shape[1::-1]),
                "interocular_px": round(float(face.interocular), 2),
            },
            "warnings": warnings,
        }
        if params.debug:
            report["debug"] = self._write_debug(
                out_dir, partial, texture, final_atlas, portrait, face, registration, head
            )
        write_json_atomic(out_dir / "report.json", report)
        emit(Progress("bake", 1.0, "done"))
        return {"texture": str(texture_path), "report": report}

    def _register(self, head: HeadModel, face, portrait: np.ndarray):
        """Camera + warp from the mesh's landmarks to the portrait's, refined from the portrait's view
        and then densely (``alignment.refine``).

        A first fit gives the portrait's camera; the mesh is then rendered from that camera and its
        landmarks detected again, so both sets come from the same viewpoint (``detect_from_camera``
        says why). Repeated from each better camera, up to REFINE_ROUNDS times, while the camera's
        landmark error keeps falling.
        """
        from .alignment import refine as refine_alignment
        from .landmarks import detect_from_camera
        from .registration import register

        size = (portrait.shape[1], portrait.shape[0])
        detected = head.landmarks.source.startswith("detected")
        first = register(head.landmarks, face, size, camera_only=detected)
        if not detected:
            # pins: a stylised head the detector cannot read from any side
            return refine_alignment(
                first, head.mesh.positions, head.mesh.triangles, head.mesh.normals, portrait
            )
        from .face import PIN_LANDMARKS

        mesh = head.mesh
        best = first
        for _ in range(REFINE_ROUNDS):
            seen = detect_from_camera(
                mesh.positions,
                mesh.triangles,
                best.camera,
                self.landmarker,
                near_xy=np.nanmean(face.landmarks, axis=0),
                normals=mesh.normals,
            )
            if seen is None:
                break
            for name, index in mesh.pins.items():  # the artist's pins still override
                seen.points3d[PIN_LANDMARKS[name]] = mesh.positions[index]
            candidate = register(seen, face, size)
            log.info(
                "view-matched landmarks: camera error %.4f -> %.4f IOD",
                best.error_iod_camera,
                candidate.error_iod_camera,
            )
            if candidate.error_iod_camera >= best.error_iod_camera:
                break
            best = candidate
        if best is first:  # the view-matched landmarks did not help: the first fit, warp included
            best = register(head.landmarks, face, size)
        return refine_alignment(best, mesh.positions, mesh.triangles, mesh.normals, portrait)

    @staticmethod
    def _detail(surface, portrait, geometry, face, portrait_coords, confidence) -> np.ndarray:
        """Portrait detail finer than the atlas holds, for the covered UV texels, weighted by confidence.

        The atlas samples the photo at about one texel per ``footprint`` portrait pixels; what is finer
        (pores, freckles, lashes) is the photo minus its blur at that footprint. Where each UV texel
        falls in the photo is read from the atlas's own projection (the mapping is smooth), with no
        weight where any neighbouring atlas texel was unseen or the atlas shows another surface.
        """
        import cv2

        from .bake import surface_in_atlas
        from .projection import sample_image

        # Atlas texels per eye distance on the face, vs portrait pixels per eye distance.
        atlas_px_per_iod = geometry.size * (1 + geometry.layout.warp) / (2 * np.pi) / 1.35
        footprint = face.interocular / atlas_px_per_iod
        count = int(surface.mask.sum())
        if footprint < 0.75:
            return np.zeros((count, 3), np.float32)
        xy, hidden = surface_in_atlas(geometry, surface)
        seen = np.isfinite(portrait_coords[..., 0])
        packed = np.concatenate(
            [np.nan_to_num(portrait_coords), confidence[..., None], seen[..., None].astype(np.float32)],
            axis=2,
        )
        sampled = geometry.sample(packed, xy)
        weight = np.where(sampled[:, 3] > 0.999, sampled[:, 2], 0.0)
        weight[hidden] = 0.0
        coords = sampled[:, :2]
        blurred = cv2.GaussianBlur(portrait, (0, 0), 0.5 * footprint)
        fine = sample_image(portrait, coords) - sample_image(blurred, coords)
        return (fine * weight[:, None]).astype(np.float32)

    @staticmethod
    def _write_debug(
        out_dir: Path, partial, texture, final_atlas, portrait, face, registration, head
    ) -> dict[str, str]:
        from .face import draw_landmarks
        from .image_io import save_png

        files = {}
        files["partial"] = str(save_png(out_dir / "debug_partial.png", partial.color))
        files["confidence"] = str(
            save_png(out_dir / "debug_confidence.png", np.repeat(partial.confidence[..., None], 3, axis=2))
        )
        files["atlas"] = str(save_png(out_dir / "debug_atlas.png", final_atlas))
        points = head.landmarks.points3d
        valid = np.isfinite(points).all(axis=1)
        projected, _ = registration.project(points[valid])
        overlay = draw_landmarks(portrait, face.landmarks, color=(0.0, 1.0, 0.0))
        overlay = draw_landmarks(overlay, projected, color=(1.0, 0.2, 0.2))
        files["landmarks"] = str(save_png(out_dir / "debug_landmarks.png", overlay))
        return files


TEXTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def _texture_of(mesh_path: Path) -> np.ndarray:
    """The colour texture of a textured head file: ``<stem>.png/.jpg`` beside it, else its material's."""
    from .image_io import load_texture

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
    from .image_io import save_png
    from .mesh import load_mesh
    from .metrics import sample_uv

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
    generator = Generator(cache_size=1)
    for path in meshes:
        mesh = load_mesh(path)
        texture = _texture_of(path)
        geometry = generator.atlas(generator.head(mesh), resolution)
        hit = geometry.mask
        uv = (mesh.uvs[geometry.tri_id[hit]] * geometry.bary[hit][..., None]).sum(axis=1)
        colour = sample_uv(texture, uv)
        atlas = np.empty((resolution, resolution, 3), np.float32)
        atlas[:] = colour.mean(axis=0)
        atlas[hit] = colour
        save_png(out / f"{path.stem}.png", atlas)
    return out
