"""Accuracy against synthetic ground truth (DESIGN.md §5).

Puts a known, seam-free texture on a real head mesh, renders it lit (Lambert key light + ambient)
from a camera the pipeline is not told, feeds the render as the portrait to ``generate`` and compares
the produced texture with the known one on the texels that camera saw.

    python bench/accuracy.py --mesh ../shared/assets/heads/lee_perry_smith.glb --out out/bench

Prints one JSON object: psnr_visible, ssim_visible (after a global colour gain), coverage (and
coverage_including_grazing, see pipeline.py), seam_error
(0-255), registration_error (landmark residual / IOD, as the report says), registration_error_true
(the fitted projection vs the true camera on visible vertices / IOD), and per-stage seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

import groundtruth as gt  # noqa: E402
from avatartex import raster  # noqa: E402
from avatartex.camera import Camera  # noqa: E402
from avatartex.image_io import load_texture, save_png  # noqa: E402
from avatartex.mesh import load_mesh  # noqa: E402
from avatartex.metrics import gain_corrected, psnr, seam_error, ssim  # noqa: E402
from avatartex.pipeline import Generator  # noqa: E402
from avatartex.protocol import GenerateParams  # noqa: E402

skin_texture = gt.skin_texture  # kept importable under its old name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesh", required=True)
    parser.add_argument("--out", default="out/bench")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--style", default="photoreal")
    parser.add_argument(
        "--yaw", type=float, default=12.0, help="camera yaw in degrees (not told to the pipeline)"
    )
    parser.add_argument("--pitch", type=float, default=4.0)
    parser.add_argument(
        "--oracle-camera",
        action="store_true",
        help="diagnostic: give the pipeline the true camera (no landmark registration), "
        "to separate registration error from the rest",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    mesh = load_mesh(args.mesh)
    # Head-sized units: the scan's head spans roughly the top 45 % of its height, face towards +z.
    lo, hi = mesh.positions.min(0), mesh.positions.max(0)
    head_top = hi[1]
    head_height = 0.45 * (hi[1] - lo[1])
    center = np.array([(lo[0] + hi[0]) / 2, head_top - head_height * 0.55, (lo[2] + hi[2]) / 2])
    is_scan = Path(args.mesh).name == gt.SHARED_SCAN.name
    head = gt.Head(
        Path(args.mesh).stem,
        np.asarray(mesh.positions, np.float64),
        np.asarray(mesh.triangles, np.int32),
        np.asarray(mesh.uvs, np.float32),
        np.asarray(mesh.normals, np.float64),
        gt.SCAN_EYES if is_scan else np.full((2, 3), np.nan),
        gt.SCAN_MOUTH if is_scan else center,
    )
    surface = gt.texel_surface(head, args.size)
    truth = np.full((args.size, args.size, 3), 0.5, np.float32)
    truth[surface.mask] = skin_texture(surface.positions, head_height)
    truth, _ = raster.dilate(truth, surface.mask, 8)
    save_png(out / "truth.png", truth)

    yaw, pitch = np.radians(args.yaw), np.radians(args.pitch)
    direction = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    eye = center + direction * head_height * 3.2
    camera = Camera.look_at(eye, center, np.array([0, 1.0, 0]), 28.0, 1024, 1024)
    light = np.array([0.45, 0.5, 0.75])
    light /= np.linalg.norm(light)
    background = np.full((camera.height, camera.width, 3), 0.25, np.float32)
    render = gt.render_portrait(head, truth, camera, [gt.Light(light, 0.75)], 0.35, background)
    save_png(out / "portrait.png", render.image)

    generator = Generator()
    tap = gt.RegistrationTap(generator)
    if args.oracle_camera:

        def oracle(*args_, **kwargs):
            return gt.true_registration(camera, args_[0], args_[1])

        tap.oracle = oracle
    params = GenerateParams(
        mesh=args.mesh,
        portrait=str(out / "portrait.png"),
        out_dir=str(out),
        style=args.style,
        size=args.size,
        engine="classic",
        debug=True,
    )
    generator.generate(params)  # cold: numba compilation, mediapipe start, mesh landmarks
    result = generator.generate(params)  # warm: what a running backend costs per request
    report = result["report"]
    produced = load_texture(result["texture"])

    # Texels the true camera saw: in front, not occluded, facing it.
    visible = gt.seen_texels(head, surface, render)
    corrected = gain_corrected(produced, truth, visible)

    # Registration against the truth: the fitted projection of the seen surface vs the true camera's,
    # in eye distances (the scan's known eyes through the true camera; else the portrait's detected).
    true_error = float("nan")
    if tap.last is not None:
        iod_px = None if is_scan else float(report["portrait"]["interocular_px"])
        true_error, _ = gt.misplacement(
            head,
            gt.placement("none", head),
            surface,
            visible,
            camera,
            tap.project,
            iod_px=iod_px,
        )

    result = {
        "mesh": Path(args.mesh).name,
        "size": args.size,
        "psnr_visible": round(psnr(corrected, truth, visible), 2),
        "ssim_visible": round(ssim(corrected, truth, visible), 4),
        "visible_texels": int(visible.sum()),
        "coverage": report["coverage"],
        "coverage_including_grazing": report["coverage_including_grazing"],
        "seam_error": round(seam_error(produced, mesh.positions, mesh.triangles, mesh.uvs), 3),
        "seam_error_truth": round(seam_error(truth, mesh.positions, mesh.triangles, mesh.uvs), 3),
        "registration_error": report["registration_error"],
        "registration_error_true": round(true_error, 4),
        "registration_error_true_measure": "mean over the seen surface of |fitted - true| portrait "
        "position / true eye distance (bench/groundtruth.misplacement)",
        "landmarks_source": report["landmarks_source"],
        "seconds_warm": report["timings"],
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
