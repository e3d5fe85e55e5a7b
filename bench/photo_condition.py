"""Dark, bright and grainy photos against the same photo well exposed: what the exposure and grain
correction (``photo_condition.py``) gives back.

    PYTHONPATH=backend .venv/bin/python bench/photo_condition.py [--heads demo,scan] [--size 512]

Each real photo (the astronaut, Grace Hopper) is made as a camera would have taken it: exposed
``--stops`` more or less in linear light (8 bits, clipped), or with Gaussian sensor noise of
``--noise`` /255, alone or saved again as a JPEG of quality 85 (a phone's). Each is textured with
``white_balance`` ``auto`` (corrected) and ``off`` (kept as it is) and compared with the texture of
the photo as it is, on the atlas's face (``debug_atlas.png``): the face skin's median lightness
difference (L*), the grain (the fine band's median magnitude over the lightness, as a ratio to the
clean texture's), PSNR after one gain per channel (``metrics.gain_corrected``: exposure alone
costs nothing there), and after that gain the 95th percentile of the face's CIELAB ΔE (``dE95``:
a patch unlike the rest, such as burnt-out skin filled pale). Prints one row a case and, per
condition kind and mode, the median and worst.
The scanned head is read from ``../shared/assets`` and skipped, saying so, where it is absent.
"""

from __future__ import annotations

import argparse
import atexit
import io
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from avatartex.demo_head import make_demo_head  # noqa: E402
from avatartex.image_io import load_texture, save_png  # noqa: E402
from avatartex.imaging import to_lab  # noqa: E402
from avatartex.mesh import Mesh, load_mesh, save_capture  # noqa: E402
from avatartex.metrics import gain_corrected, psnr  # noqa: E402
from avatartex.pipeline import Generator  # noqa: E402
from avatartex.protocol import GenerateParams  # noqa: E402

SCAN = Path(__file__).resolve().parents[2] / "shared" / "assets" / "heads" / "lee_perry_smith.glb"


def photos() -> dict[str, np.ndarray]:
    import matplotlib.cbook
    from skimage import data

    hopper = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return {
        "astronaut": np.asarray(data.astronaut(), np.float32) / 255,
        "hopper": np.asarray(hopper.convert("RGB"), np.float32) / 255,
    }


def exposed(image: np.ndarray, stops: float) -> np.ndarray:
    linear = np.power(image, 2.2) * 2.0**stops
    return np.round(np.power(np.clip(linear, 0, 1), 1 / 2.2) * 255) / 255


def grainy(image: np.ndarray, sigma: float, jpeg: bool, seed: int = 0) -> np.ndarray:
    noisy = np.round(
        np.clip(image + np.random.default_rng(seed).normal(0, sigma / 255, image.shape), 0, 1) * 255
    )
    if not jpeg:
        return noisy / 255
    buffer = io.BytesIO()
    Image.fromarray(noisy.astype(np.uint8)).save(buffer, "JPEG", quality=85)
    return np.asarray(Image.open(buffer), np.float32) / 255


def conditions(stops: list[float], noise: list[float]) -> list[tuple[str, str, object]]:
    """(kind, label, how to make it from the clean photo)."""
    made: list[tuple[str, str, object]] = []
    for s in stops:
        made.append(("dark" if s < 0 else "bright", f"{s:+g} stops", lambda p, s=s: exposed(p, s)))
    for n in noise:
        made.append(("grain", f"noise {n:g}", lambda p, n=n: grainy(p, n, False)))
        made.append(("grain+jpeg", f"noise {n:g} jpeg", lambda p, n=n: grainy(p, n, True)))
    return made


def face_figures(atlas_path: Path, face: np.ndarray) -> tuple[np.ndarray, float, float]:
    rgb = load_texture(atlas_path)[..., :3]
    lab = to_lab(rgb)[..., 0]
    lightness = float(np.median(lab[face]))
    grain = float(np.median(np.abs((lab - cv2.GaussianBlur(lab, (0, 0), 1.5))[face]))) / max(lightness, 1.0)
    return rgb, lightness, grain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", default="demo,scan")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--stops", default="-3,-2,-1,1,2")
    parser.add_argument("--noise", default="4,8,12,16")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="photo_condition_"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # its textures: gigabytes over a run
    generator = Generator()
    heads: dict[str, Path] = {}
    for name in args.heads.split(","):
        if name == "demo":
            positions, triangles, uvs, pins = make_demo_head()
            heads["demo"] = work / "demo.npz"
            save_capture(Mesh(positions, triangles, uvs, None, pins, "DemoHead"), heads["demo"])
        elif name == "scan":
            if SCAN.exists():
                heads["scan"] = SCAN
            else:
                print(f"SKIPPED the scanned head: {SCAN} is absent (../shared/assets)", file=sys.stderr)
    made = conditions(
        [float(s) for s in args.stops.split(",") if s], [float(n) for n in args.noise.split(",") if n]
    )
    rows = []
    print("head photo condition mode: gain denoised | dL* grain-ratio PSNR-face(dB) dE95")
    for head_name, head in heads.items():
        face = generator.head(load_mesh(str(head))).atlas(args.size if args.size <= 512 else 1024).face

        def texture(photo: np.ndarray, tag: str, mode: str, head=head, face=face):
            path = save_png(work / f"{tag}.png", photo)
            out = work / f"{tag}_{mode}"
            params = GenerateParams(
                str(head),
                str(path),
                str(out),
                size=args.size,
                engine="classic",
                debug=True,
                white_balance=mode,
            )
            report = generator.generate(params)["report"]["portrait"]["condition"]
            return report, face_figures(out / "debug_atlas.png", face)

        for photo_name, photo in photos().items():
            _, (clean_rgb, clean_l, clean_grain) = texture(photo, f"{head_name}_{photo_name}", "auto")
            for i, (kind, label, make) in enumerate(made):
                taken = make(photo)
                for mode in ("auto", "off"):
                    report, (rgb, lightness, grain) = texture(taken, f"{head_name}_{photo_name}_{i}", mode)
                    matched = gain_corrected(rgb, clean_rgb, face)
                    fair = psnr(matched, clean_rgb, face)
                    patch = float(
                        np.quantile(np.linalg.norm(to_lab(matched) - to_lab(clean_rgb), axis=-1)[face], 0.95)
                    )
                    row = dict(
                        head=head_name, photo=photo_name, kind=kind, label=label, mode=mode,
                        gain=report["exposure_gain"], denoised=report["denoised"],
                        dl=lightness - clean_l, grain=grain / clean_grain, psnr=fair, de95=patch,
                    )  # fmt: skip
                    rows.append(row)
                    print(
                        f"{head_name} {photo_name} {label} {mode}: {row['gain']:.2f} {row['denoised']!s:5} | "
                        f"{row['dl']:+.1f} {row['grain']:.2f} {row['psnr']:.2f} {row['de95']:.1f}",
                        flush=True,
                    )
    print(
        "\nkind mode: cases | |dL*| median / worst | grain ratio median / worst | PSNR median / worst"
        " | dE95 median / worst"
    )
    for kind in dict.fromkeys(r["kind"] for r in rows):
        for mode in ("auto", "off"):
            picked = [r for r in rows if r["kind"] == kind and r["mode"] == mode]
            dl = np.abs([r["dl"] for r in picked])
            grain = np.array([r["grain"] for r in picked])
            fair = np.array([r["psnr"] for r in picked])
            patch = np.array([r["de95"] for r in picked])
            worst_grain = grain[np.argmax(np.abs(np.log(grain)))]
            print(
                f"{kind} {mode}: {len(picked)} | {np.median(dl):.1f} / {dl.max():.1f} | "
                f"{np.median(grain):.2f} / {worst_grain:.2f} | {np.median(fair):.2f} / {fair.min():.2f} | "
                f"{np.median(patch):.1f} / {patch.max():.1f}"
            )
    print(
        f"\n(PYTHONPATH=backend .venv/bin/python bench/photo_condition.py {' '.join(argv or sys.argv[1:])})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
