"""What a request writes besides the texture: ``report.json`` and the ``--debug`` images."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..engines import StagePlan
from ..face import PIN_LANDMARKS, draw_landmarks
from ..image_io import save_png
from ..protocol import AvatarTexError, ErrorCode, GenerateParams
from ..quality import Quality
from ..registration import Registration
from .steps import Analysis, Projection


def check_writable(folder: Path) -> None:
    """Make sure a file can be written in ``folder``, before any work, and leave it as it was: a
    missing folder (and its missing parents) is made for the probe and removed again, so that a
    request that fails later leaves no empty folder behind; the texture's own write creates it
    (``image_io.save_png``)."""
    made = [place for place in (folder, *folder.parents) if not place.exists()]  # innermost first
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
    except ValueError as exc:  # a NUL character in the path, which no file system takes
        raise AvatarTexError(
            ErrorCode.OUTPUT_NOT_WRITABLE,
            f"The output folder {str(folder)!r} is not a path a folder can have: {exc}.",
            "Give the folder's path without a NUL character.",
        ) from None
    finally:
        for place in made:  # rmdir takes only empty folders: nothing put in one meanwhile is lost
            try:
                place.rmdir()
            except (OSError, ValueError):
                pass


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False))
    os.replace(tmp, path)


def json_number(value: Any) -> Any:
    """Floats rounded for the report; NaN/inf (e.g. no cross-validation with few pins) become null."""
    if isinstance(value, float):
        return round(value, 5) if np.isfinite(value) else None
    return value


def pin_points(points3d: np.ndarray) -> dict[str, list[float]]:
    """The pinnable landmarks (``face.PIN_LANDMARKS``) where they were read on the mesh: name ->
    [x, y, z] in the mesh's coordinates, those read (finite) only: what a ``--pin`` would move."""
    points = np.asarray(points3d, np.float64)
    return {
        name: [float(f"{v:.5g}") for v in points[index]]
        for name, index in PIN_LANDMARKS.items()
        if np.all(np.isfinite(points[index]))
    }


def build_report(
    params: GenerateParams,
    plan: StagePlan,
    style_name: str,
    atlas_size: int,
    analysis: Analysis,
    registration: Registration,
    projection: Projection,
    quality: Quality,
    timings: dict[str, float],
    warnings: list[str],
) -> dict[str, Any]:
    """The contents of ``report.json`` (protocol.GenerateResult.report).

    ``registration_error`` is the estimate of the true misplacement (``quality``); the landmarks'
    own residual after the warp, which the warp makes small whatever the truth, is
    ``registration_error_landmarks``."""
    error = registration.error_iod_holdout
    return {
        "backend_version": __version__,
        "engine": plan.engine,
        "stages": plan.report(),
        "style": style_name,
        "size": params.size,
        "atlas_size": atlas_size,
        "seed": params.seed,
        "timings": timings,
        "coverage": round(projection.coverage, 4),
        "coverage_including_grazing": round(projection.coverage_including_grazing, 4),
        "quality": quality.report(),
        "registration_error": round(quality.estimated_error_iod, 4),
        "registration_error_landmarks": round(
            float(error if np.isfinite(error) else registration.error_iod), 5
        ),
        "registration_error_camera_only": round(float(registration.error_iod_camera), 5),
        "landmarks_source": analysis.head.landmarks.source,
        "dense_alignment": registration.alignment,
        "outline_fit": registration.outline,
        "eyes": registration.eyes,
        "registration": {k: json_number(v) for k, v in registration.report().items()},
        "mesh": {
            "name": analysis.mesh.name,
            "vertices": int(len(analysis.mesh.positions)),
            "triangles": int(len(analysis.mesh.triangles)),
            # where the pins' landmarks were read on the mesh, in its file's coordinates (--pin's)
            "landmarks": pin_points(analysis.head.to_file(analysis.head.landmarks.points3d)),
        },
        "portrait": {
            "size": list(analysis.portrait.shape[1::-1]),
            "interocular_px": round(float(analysis.face.interocular), 2),
            # turned counter-clockwise by 90° this many times before reading (steps.turned_upright)
            "quarter_turns": int(analysis.face.extras.get("quarter_turns", 0)),
            # the share of the face the photo's edge cuts off (face.frame_cut)
            "frame_cut": float(analysis.face.extras.get("frame_cut", 0.0)),
            # black and white: given a neutral skin tone (image_io.tinted_if_monochrome)
            "monochrome": bool(analysis.face.extras.get("monochrome", False)),
            # the light's colour read on the eye whites and taken out (whitebalance.py)
            "white_balance": analysis.white_balance.report(),
            # its exposure and grain, read on the face's skin and corrected (photo_condition.py)
            "condition": analysis.condition.report(),
        },
        "warnings": warnings,
    }


def write_debug(
    out_dir: Path,
    projection: Projection,
    final_atlas: np.ndarray,
    analysis: Analysis,
    registration: Registration,
) -> dict[str, str]:
    """The partial projection, its confidence, the finished atlas and a landmark overlay (the
    portrait's landmarks in green, the mesh's projected through the registration in red)."""
    partial = projection.partial
    files = {
        "partial": save_png(out_dir / "debug_partial.png", partial.color),
        "confidence": save_png(
            out_dir / "debug_confidence.png", np.repeat(partial.confidence[..., None], 3, axis=2)
        ),
        "atlas": save_png(out_dir / "debug_atlas.png", final_atlas),
    }
    points = analysis.head.landmarks.points3d
    projected, _ = registration.project(points[np.isfinite(points).all(axis=1)])
    overlay = draw_landmarks(analysis.portrait, analysis.face.landmarks, color=(0.0, 1.0, 0.0))
    overlay = draw_landmarks(overlay, projected, color=(1.0, 0.2, 0.2))
    files["landmarks"] = save_png(out_dir / "debug_landmarks.png", overlay)
    return {name: str(path) for name, path in files.items()}
