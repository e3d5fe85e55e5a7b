"""Stylised proportions (issue 8 item 4): do the photo's features land on the mesh's own features?

    PYTHONPATH=backend python bench/proportions.py [--size 512] [--json rows.json] [--pictures DIR]

Every portrait is textured onto the demo head and onto each of its stylised variants
(``demo_head.STYLIZED_SHAPES``: big eyes, long nose, wide nose, wide jaw, small chin, big forehead),
whose named features (``demo_head.features``: eye corners, nose tip, mouth corners, chin) are known
on the mesh. For each feature the registration's projection of the *mesh's* feature point is compared
with where that feature *is* in the portrait:

* real photos (skimage's astronaut, matplotlib's Grace Hopper, the astronaut mirrored): the
  detector's landmark for the feature (mediapipe is accurate to ~0.02 eye distances on such photos;
  its definition of a feature differs a little from the demo head's, which the plain demo head's row
  shows as a floor);
* renders of the plain demo head with a painted-free blotchy skin, front-lit, from three cameras: the
  feature's true projection.

Errors are in the portrait's eye distances. A variant's exaggerated feature (the long nose's tip, the
big eyes' outer corners, the small chin) is where a camera alone fails: the table prints, per mesh,
the median and worst feature error with the registration's warp and through its camera alone, and
the error of the exaggerated feature, plus the verdict the report gave. ``--pins`` pins every mesh's
named features where they are (points on the mesh, the request's ``pins``): what an artist's pins
buy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
if importlib.util.find_spec("avatartex") is None:  # run from a checkout without PYTHONPATH=backend
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

import groundtruth as gt  # noqa: E402

EXAGGERATED = {
    "big_eyes": ("right_eye_outer", "left_eye_outer"),
    "long_nose": ("nose_tip",),
    "wide_nose": ("nose_tip",),
    "small_chin": ("chin",),
    "wide_jaw": ("mouth_right", "mouth_left", "chin"),
    "big_forehead": ("right_eye_inner", "left_eye_inner"),
}
"""The features each variant moves (or, for the jaw and forehead, those nearest the change)."""

SYNTHETIC_VIEWS = ((0.0, 0.0, 30.0), (18.0, 5.0, 25.0), (-28.0, -6.0, 40.0))
"""(yaw, pitch, fov) of the plain demo head's renders."""


@dataclass
class Portrait:
    name: str
    path: Path
    features: dict[str, np.ndarray]
    """Where each named feature is in the portrait, pixels."""
    iod: float


def real_portraits(folder: Path) -> list[Portrait]:
    import matplotlib.cbook
    import skimage.data
    from avatartex.face import analyse_portrait
    from avatartex.image_io import save_png
    from avatartex.protocol import PIN_NAMES
    from PIL import Image

    images = {
        "astronaut": skimage.data.astronaut(),
        "hopper": np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")),
    }
    images["astronaut-mirrored"] = images["astronaut"][:, ::-1].copy()
    out = []
    for name, image in images.items():
        face, _ = analyse_portrait(image)
        path = save_png(folder / f"{name}.png", image.astype(np.float32) / 255.0)
        features = {pin: face.named(pin).astype(np.float64) for pin in PIN_NAMES}
        out.append(Portrait(name, path, features, face.interocular))
    return out


def synthetic_portraits(folder: Path, plain: gt.Head) -> list[Portrait]:
    from avatartex import demo_head as demo
    from avatartex.image_io import save_png

    truth = gt.truth_texture(plain, gt.texel_surface(plain, 512), "blotches", 3)
    named = demo.features(demo.DEFAULT_SHAPE)
    out = []
    for yaw, pitch, fov in SYNTHETIC_VIEWS:
        camera = gt.portrait_camera(plain, yaw, pitch, 0.0, fov, 640, 640)
        lights, ambient = gt.lights_for("front", yaw, False)
        background = gt.background_image("flat", 640, 640, np.random.default_rng(0))
        render = gt.render_portrait(plain, truth, camera, lights, ambient, background)
        name = f"demo-render-yaw{yaw:+.0f}"
        path = save_png(folder / f"{name}.png", render.image)
        points = np.array([named[pin] for pin in named])
        xy = camera.project(points)[0]
        out.append(Portrait(name, path, dict(zip(named, xy, strict=True)), gt.true_iod_px(plain, camera)))
    return out


def measure(
    generator, tap, portrait: Portrait, mesh_path: Path, shape, size: int, folder: Path, pins: bool = False
) -> dict:
    from avatartex import demo_head as demo
    from avatartex.protocol import AvatarTexError, GenerateParams
    from PIL import Image

    row = {"portrait": portrait.name, "mesh": mesh_path.stem}
    # --pins: the mesh's named features as an artist would pin them (points on the mesh, the request's
    # ``pins``, as the CLI's --pin sends them)
    pinned = {name: [float(v) for v in point] for name, point in demo.features(shape).items()} if pins else {}
    params = GenerateParams(
        mesh=str(mesh_path),
        portrait=str(portrait.path),
        out_dir=str(folder),
        style="photoreal",
        size=size,
        pins=pinned,
    )
    started = time.perf_counter()
    try:
        result = generator.generate(params)
    except AvatarTexError as exc:
        return {**row, "error": exc.code}
    row["seconds"] = round(time.perf_counter() - started, 2)
    report = result["report"]
    row["verdict"] = (report.get("quality") or {}).get("verdict")
    row["estimated_error"] = (report.get("quality") or {}).get("estimated_error_iod")
    row["signals"] = (report.get("quality") or {}).get("signals")
    row["texture"] = str(result["texture"])
    named = demo.features(shape)
    points = np.array([named[pin] for pin in named])
    to_head = getattr(tap.head, "from_file", None)
    width = Image.open(portrait.path).size[0]  # the pipeline may have read a rescaled portrait
    scale = width / float((report.get("portrait") or {}).get("size", [width])[0])
    warped = tap.project(points) * scale
    camera_only = tap.last.camera.project(to_head(points) if to_head else points)[0] * scale
    truth = np.array([portrait.features[pin] for pin in named])
    for name, projected in (("warped", warped), ("camera", camera_only)):
        errors = np.linalg.norm(projected - truth, axis=1) / portrait.iod
        row[name] = dict(zip(named, np.round(errors, 4).tolist(), strict=True))
    return row


def summarise(rows: list[dict]) -> list[str]:
    lines = [
        "mesh               warped med/worst   camera med/worst   exaggerated warped/camera   verdicts",
    ]
    meshes = sorted({r["mesh"] for r in rows}, key=lambda m: (m != "demo", m))
    for mesh in meshes:
        done = [r for r in rows if r["mesh"] == mesh and "warped" in r]
        if not done:
            lines.append(f"{mesh:18s} nothing textured")
            continue
        warped = np.concatenate([list(r["warped"].values()) for r in done])
        camera = np.concatenate([list(r["camera"].values()) for r in done])
        picks = EXAGGERATED.get(mesh.removeprefix("demo-"), ())
        ex_w = [r["warped"][p] for r in done for p in picks]
        ex_c = [r["camera"][p] for r in done for p in picks]
        exaggerated = f"{np.median(ex_w):.3f} / {np.median(ex_c):.3f}" if picks else "-"
        verdicts = ",".join(sorted({str(r.get("verdict")) for r in done}))
        lines.append(
            f"{mesh:18s} {np.median(warped):.3f} / {warped.max():.3f}      "
            f"{np.median(camera):.3f} / {camera.max():.3f}      {exaggerated:26s}  {verdicts}"
        )
    for kind, real in (("real photos", True), ("renders", False)):
        done = [r for r in rows if "warped" in r and r["portrait"].startswith("demo-render") != real]
        if done:
            truth = np.array([np.mean(list(r["warped"].values())) for r in done])
            estimate = np.array([r["estimated_error"] for r in done], np.float64)
            good = sum(r.get("verdict") == "good" for r in done)
            lines.append(
                f"{kind}: the report's estimate / the mean feature error: median "
                f"{np.median(estimate / truth):.2f} (range {np.min(estimate / truth):.2f}-"
                f"{np.max(estimate / truth):.2f}); {good} of {len(done)} called good"
            )
    failed = [f"{r['portrait']}->{r['mesh']}: {r['error']}" for r in rows if "error" in r]
    if failed:
        lines.append("not textured: " + "; ".join(failed))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--work", type=Path, default=Path("out/proportions"))
    parser.add_argument("--only", default="", help="only portraits whose name contains this")
    parser.add_argument(
        "--pins",
        action="store_true",
        help="pin the meshes' named features (eye corners, nose tip, mouth, chin)",
    )
    args = parser.parse_args()

    from avatartex import demo_head as demo
    from avatartex.pipeline import Generator

    args.work.mkdir(parents=True, exist_ok=True)
    generator = Generator(cache_size=16)
    tap = gt.RegistrationTap(generator)
    plain = gt.demo_head("", 96)
    shapes = {"demo": demo.DEFAULT_SHAPE} | {f"demo-{k}": v for k, v in demo.STYLIZED_SHAPES.items()}
    meshes = {}
    for name in shapes:
        head = plain if name == "demo" else gt.demo_head(name.removeprefix("demo-"), 96)
        meshes[name] = gt.write_capture(head, gt.placement("none", head), args.work / f"{name}.npz")
    portraits = real_portraits(args.work) + synthetic_portraits(args.work, plain)
    portraits = [p for p in portraits if args.only in p.name]
    rows = []
    started = time.perf_counter()
    for portrait in portraits:
        for name, path in meshes.items():
            folder = args.work / "cases" / f"{portrait.name}-{name}"
            row = measure(generator, tap, portrait, path, shapes[name], args.size, folder, args.pins)
            rows.append(row)
            print(
                f"{portrait.name:22s} {name:18s} "
                + (
                    row.get("error")
                    or f"warped {np.mean(list(row['warped'].values())):.3f} "
                    f"camera {np.mean(list(row['camera'].values())):.3f} {row['verdict']}"
                ),
                flush=True,
            )
    lines = summarise(rows)
    print(f"\n{len(rows)} cases in {time.perf_counter() - started:.0f} s; feature errors in eye distances")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": lines}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
