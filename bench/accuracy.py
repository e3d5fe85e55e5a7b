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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from avatartex import raster  # noqa: E402
from avatartex.bake import uv_surface  # noqa: E402
from avatartex.camera import Camera  # noqa: E402
from avatartex.image_io import save_png  # noqa: E402
from avatartex.mesh import load_mesh  # noqa: E402
from avatartex.metrics import gain_corrected, psnr, seam_error, ssim  # noqa: E402
from avatartex.pipeline import Generator  # noqa: E402
from avatartex.protocol import GenerateParams  # noqa: E402


def skin_texture(points: np.ndarray, scale: float, seed: int = 1) -> np.ndarray:
    """A skin-like albedo as a function of the surface point: seam-free by construction.

    A warm base tone with blotches and freckle-scale detail: sums of random plane waves from the
    size of the face down to a few millimetres.
    """
    rng = np.random.default_rng(seed)
    p = np.asarray(points, np.float64) / scale
    base = np.array([0.80, 0.60, 0.50])
    value = np.zeros(len(p))
    for wavelength, amplitude, count in ((1.5, 0.10, 6), (0.5, 0.06, 10), (0.15, 0.04, 16), (0.06, 0.03, 24)):
        for _ in range(count):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            value += (
                amplitude
                / np.sqrt(count)
                * np.sin(2 * np.pi * (p @ direction) / wavelength + rng.uniform(0, 2 * np.pi))
            )
    tint = np.stack([value, value * 1.2, value * 1.3], 1)
    return np.clip(base * (1 + tint), 0, 1).astype(np.float32)


def render_lit(mesh, texture: np.ndarray, camera: Camera, light_dir: np.ndarray) -> tuple[np.ndarray, ...]:
    """A lit render of the textured mesh: albedo * (ambient + key * max(n.l, 0)) in linear light, on a
    grey background."""
    tri_id, bary, depth = raster.rasterize_camera(mesh.positions, mesh.triangles, camera)
    hit = tri_id >= 0
    uv = raster.interpolate(mesh.uvs, None, tri_id, bary)
    normal = raster.interpolate(mesh.normals, mesh.triangles, tri_id, bary)
    normal /= np.maximum(np.linalg.norm(normal, axis=2, keepdims=True), 1e-12)
    from avatartex.metrics import sample_uv

    albedo = sample_uv(texture, uv[hit])
    shade = 0.35 + 0.75 * np.clip(normal[hit] @ light_dir, 0, None)
    # Light adds up in linear units, as in a camera: sRGB albedo -> linear, lit, -> sRGB.
    linear = np.power(albedo, 2.2) * shade[:, None]
    image = np.full((camera.height, camera.width, 3), 0.25, np.float32)
    image[hit] = np.clip(np.power(np.clip(linear, 0, 1), 1 / 2.2), 0, 1)
    return image, tri_id, depth


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
    surface = uv_surface(mesh.positions, mesh.triangles, mesh.normals, mesh.uvs, args.size)
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
    portrait, _, depth = render_lit(mesh, truth, camera, light)
    save_png(out / "portrait.png", portrait)

    generator = Generator()
    if args.oracle_camera:
        from avatartex.registration import Registration, ThinPlateWarp

        def oracle(head, face, portrait_image):
            return Registration(
                camera=camera,
                warp=ThinPlateWarp(None, np.zeros(2), 1.0),
                residual_camera=0.0,
                residual_warped=0.0,
                error_iod=0.0,
                error_iod_camera=0.0,
                error_iod_holdout=0.0,
                interocular=float(face.interocular),
                indices=np.arange(0),
                residuals=np.zeros(0),
            )

        generator._register = oracle
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
    from avatartex.image_io import load_texture

    produced = load_texture(result["texture"])

    # Texels the true camera saw: in front, not occluded, facing it.
    uv_xy, z = camera.project(surface.positions)
    px = np.clip(uv_xy[:, 0].astype(int), 0, camera.width - 1)
    py = np.clip(uv_xy[:, 1].astype(int), 0, camera.height - 1)
    to_cam = camera.center - surface.positions
    to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
    n = surface.normals / np.maximum(np.linalg.norm(surface.normals, axis=1, keepdims=True), 1e-12)
    in_frame = (
        (uv_xy[:, 0] >= 0) & (uv_xy[:, 0] < camera.width) & (uv_xy[:, 1] >= 0) & (uv_xy[:, 1] < camera.height)
    )
    seen = in_frame & (z <= depth[py, px] + 0.01 * head_height) & ((n * to_cam).sum(1) > 0.3)
    visible = np.zeros(surface.mask.shape, bool)
    visible[surface.mask] = seen
    corrected = gain_corrected(produced, truth, visible)

    # Registration against the truth: the fitted projection of visible vertices vs the true camera's.
    head = generator.head(load_mesh(args.mesh))
    from avatartex.face import LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR

    p3 = head.landmarks.points3d
    eyes = np.stack([np.nanmean(p3[list(RIGHT_EYE_CONTOUR)], 0), np.nanmean(p3[list(LEFT_EYE_CONTOUR)], 0)])
    iod_px = float(np.linalg.norm(np.diff(camera.project(eyes)[0], axis=0)))
    from avatartex.face import analyse_portrait

    face, _ = analyse_portrait(portrait, "render", generator.landmarker)
    registration = generator._register(head, face, portrait)
    vis_vertices = np.unique(mesh.triangles[surface.tri_id[visible]])
    fitted, _ = registration.project(mesh.positions[vis_vertices])
    true_xy, _ = camera.project(mesh.positions[vis_vertices])
    true_error = float(np.linalg.norm(fitted - true_xy, axis=1).mean() / iod_px)

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
        "landmarks_source": report["landmarks_source"],
        "seconds_warm": report["timings"],
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
