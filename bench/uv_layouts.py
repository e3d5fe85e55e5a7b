"""UV layouts as real heads come: does the texture stay the one the head gets with a plain 0..1 map?

    PYTHONPATH=backend .venv/bin/python bench/uv_layouts.py [--size 512] [--quick] [--json rows.json]

Heads: the demo head, three of its stylised variants and the scanned head of ``../shared/assets``
(skipped, loudly, when absent). Portraits: skimage's astronaut, matplotlib's Grace Hopper, and renders
of a painted (made-up) face from 30 degrees either side (demo family). Each head is textured with its
own UV map, then with the same map laid out as artists' files have it:

* ``tile 1002`` / ``tile 1011``: every island moved one UDIM tile right / up;
* ``tiles 1001+1002``: the islands right of u = 0.5 moved to tile 1002 (one image per tile);
* ``eyes material`` (demo family): separate eyeballs in a second material whose UVs overlap the
  skin's, against the same head with the eyeballs' islands beside the skin's in one material;
* ``mirrored`` (demo family, the made-up renders): the right half's UVs laid onto the left half's.

Printed per layout, median and worst over heads and portraits: for the first four the mean and the
largest difference of the covered texels from the reference texture (in 1/255; the old code baked a
tile-1002 head blank grey, 60-100 /255 off), and the share of the reference's texels left blank; for
``mirrored`` the difference of the head rendered from the portrait's camera, the texture on mirrored
UVs against its own UVs, next to what taking the part drawn last (the old rasteriser's choice) gives.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
if importlib.util.find_spec("avatartex") is None:  # run from a checkout without PYTHONPATH=backend
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

import groundtruth as gt  # noqa: E402
from avatartex import uvtiles  # noqa: E402
from avatartex.demo_head import (
    STYLIZED_SHAPES,  # noqa: E402
    make_demo_head,  # noqa: E402
)
from avatartex.image_io import load_texture, save_png  # noqa: E402
from avatartex.mesh import Mesh, save_capture  # noqa: E402
from avatartex.pipeline import Generator, steps  # noqa: E402
from avatartex.preview import render_view  # noqa: E402
from avatartex.protocol import GenerateParams  # noqa: E402
from avatartex.raster import rasterize_uv  # noqa: E402

VARIANTS = ("big_eyes", "long_nose", "wide_jaw")
BLANK = 0.5
"""The bake's background grey: a texel left at it was not textured."""


def heads(quick: bool) -> list[tuple[str, Mesh, gt.Head | None]]:
    """(name, mesh, its ground-truth head for the made-up renders, or None)."""
    out = []
    for shape_name in ("",) + (() if quick else VARIANTS):
        truth = gt.demo_head(shape_name, 64)
        positions, triangles, uvs, pins = make_demo_head(64, STYLIZED_SHAPES.get(shape_name))
        out.append((truth.name, Mesh(positions, triangles, uvs, None, pins, truth.name), truth))
    scan = gt.load_scan()
    if scan is not None:
        mesh = Mesh(scan.positions.astype(np.float32), scan.triangles, scan.uvs, None, {}, "scan")
        out.append(("scan", mesh, None))
    return out


def portraits(work: Path, truth: gt.Head | None, size: int) -> dict[str, Path]:
    """The real photos, and for a demo-family head its made-up face rendered from +-30 degrees."""
    import matplotlib.cbook
    from skimage import data

    out = {
        "astronaut": work / "astronaut.png",
        "grace_hopper": Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
    }
    if not out["astronaut"].exists():
        save_png(out["astronaut"], np.asarray(data.astronaut(), np.uint8))
    if truth is not None:
        texture = gt.truth_texture(truth, gt.texel_surface(truth, size), "made_up", 3)
        for yaw in (-30.0, 30.0):
            camera = gt.portrait_camera(truth, yaw, 0, 0, 30, size, size)
            lights, ambient = gt.lights_for("front", yaw, False)
            background = np.full((size, size, 3), 0.6, np.float32)
            path = work / f"{truth.name}_yaw{yaw:+.0f}.png"
            save_png(path, gt.render_portrait(truth, texture, camera, lights, ambient, background).image)
            out[f"made-up yaw {yaw:+.0f}"] = path
    return out


def moved(mesh: Mesh, which, by) -> Mesh:
    uvs = np.array(mesh.uvs, np.float32)
    uvs[which] += np.asarray(by, np.float32)
    return dataclasses.replace(mesh, uvs=uvs)


def with_eye_material(truth: gt.Head, mesh: Mesh) -> tuple[Mesh, Mesh, np.ndarray]:
    """The head with separate eyeballs: in one material (islands beside the skin's), and in a second
    material whose islands overlap the skin's; and the (T,) mask of the eyeballs' triangles."""
    eyed = gt.with_eyeballs(truth)
    eyes = np.arange(len(eyed.triangles)) >= len(truth.triangles)
    one = Mesh(
        eyed.positions.astype(np.float32), eyed.triangles, eyed.uvs, None, mesh.pins, mesh.name + "+eyes"
    )
    overlapping = np.array(eyed.uvs)
    ball = overlapping[eyes]
    overlapping[eyes] = 0.2 + 0.6 * (ball - ball.min(axis=(0, 1))) / np.ptp(ball.reshape(-1, 2), axis=0)
    two = dataclasses.replace(one, uvs=overlapping, parts=eyes.astype(np.int32), part_names=["Skin", "Eyes"])
    return one, two, eyes


class Runner:
    def __init__(self, work: Path, size: int) -> None:
        self.work, self.size, self.generator, self.count = work, size, Generator(), 0

    def texture(self, mesh: Mesh, portrait: Path) -> tuple[dict[int, np.ndarray], dict]:
        """The textures by UDIM tile (one entry for one tile) and the report."""
        self.count += 1
        out = self.work / f"run{self.count}"
        out.mkdir(parents=True, exist_ok=True)
        save_capture(mesh, out / "head.npz")
        params = GenerateParams(
            mesh=str(out / "head.npz"),
            portrait=str(portrait),
            out_dir=str(out),
            size=self.size,
            engine="classic",
        )
        result = self.generator.generate(params)
        tiles = result.get("tiles") or {str(uvtiles.udim(uvtiles.tiles(mesh.uvs)[0])): result["texture"]}
        return {int(k): load_texture(v) for k, v in tiles.items()}, result["report"]


def compare(reference: np.ndarray, covered: np.ndarray, produced: np.ndarray) -> dict[str, float]:
    diff = np.abs(produced - reference)[covered] * 255
    blank = (np.abs(produced - BLANK).max(axis=-1) < 1e-3)[covered] & (
        np.abs(reference - BLANK).max(axis=-1) >= 1e-3
    )[covered]
    return {"mean": float(diff.mean()), "max": float(diff.max()), "blank": float(blank.mean())}


def tile_layouts(runner: Runner, mesh: Mesh, portrait: Path) -> list[dict]:
    size = runner.size
    (reference,) = runner.texture(mesh, portrait)[0].values()
    tri_id = rasterize_uv(mesh.uvs, size)[0]
    covered = tri_id >= 0
    rows = []
    for name, by in (("tile 1002", (1.0, 0.0)), ("tile 1011", (0.0, 1.0))):
        textures, _ = runner.texture(moved(mesh, slice(None), by), portrait)
        rows.append({"layout": name, **compare(reference, covered, next(iter(textures.values())))})
    right = np.asarray(mesh.uvs).mean(axis=1)[:, 0] >= 0.5
    textures, _ = runner.texture(moved(mesh, right, (1.0, 0.0)), portrait)
    combined = np.where(
        (right[np.maximum(tri_id, 0)])[..., None], textures.get(1002, 0.0), textures.get(1001, 0.0)
    )
    rows.append(
        {"layout": "tiles 1001+1002", "files": sorted(textures), **compare(reference, covered, combined)}
    )
    return rows


def eye_material(runner: Runner, truth: gt.Head, mesh: Mesh, portrait: Path) -> dict:
    one, two, eyes = with_eye_material(truth, mesh)
    (reference,) = runner.texture(one, portrait)[0].values()
    textures, report = runner.texture(two, portrait)
    (produced,) = textures.values()
    skin = rasterize_uv(np.where(eyes[:, None, None], np.nan, one.uvs), runner.size)[0] >= 0
    return {
        "layout": "eyes material",
        "material": report.get("material"),
        **compare(reference, skin, produced),
    }


def mirrored(runner: Runner, truth: gt.Head, mesh: Mesh, portrait: Path, yaw: float) -> dict:
    camera = gt.portrait_camera(truth, yaw, 0, 0, 30, runner.size, runner.size)
    mirror = dataclasses.replace(mesh, uvs=gt.mirrored_uvs(mesh.positions, mesh.triangles, mesh.uvs))

    def seen(m: Mesh) -> np.ndarray:
        (texture,) = runner.texture(m, portrait)[0].values()
        image, covered = render_view(m, texture, camera)
        return image[covered]

    own, chosen = seen(mesh), seen(mirror)
    keep = steps.prefer_seen_parts
    steps.prefer_seen_parts = lambda surface, *a: surface
    try:
        drawn = seen(mirror)
    finally:
        steps.prefer_seen_parts = keep
    return {
        "layout": "mirrored",
        "mean": float(np.abs(chosen - own).mean() * 255),
        "drawn_last": float(np.abs(drawn - own).mean() * 255),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="the demo head and one photo only")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="avatartex-uv-") as tmp:
        runner = Runner(Path(tmp), args.size)
        for name, mesh, truth in heads(args.quick):
            photos = portraits(Path(tmp), truth, args.size)
            for photo_name, photo in photos.items():
                if args.quick and photo_name == "grace_hopper":
                    continue
                base = {"head": name, "portrait": photo_name}
                made_up = photo_name.startswith("made-up")
                new = []
                if not made_up:
                    new += tile_layouts(runner, mesh, photo)
                    if truth is not None:
                        new.append(eye_material(runner, truth, mesh, photo))
                elif truth is not None:
                    new.append(mirrored(runner, truth, mesh, photo, float(photo_name.split("yaw ")[1])))
                for row in new:
                    cells = "  ".join(
                        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                    )
                    print(f"{name:<16} {photo_name:<20} {cells}", flush=True)
                rows += [{**base, **row} for row in new]
    print(f"\n{len(rows)} runs of {runner.count} requests, {time.perf_counter() - start:.0f} s")
    print(
        f"{'layout':<18} {'median mean':>12} {'worst mean':>11} {'worst max':>10} {'blank':>7}"
        f" {'drawn last (median)':>20}"
    )
    for layout in dict.fromkeys(r["layout"] for r in rows):
        sel = [r for r in rows if r["layout"] == layout]
        means = [r["mean"] for r in sel]
        worst_max = max((r.get("max", float("nan")) for r in sel), default=float("nan"))
        blank = max((r.get("blank", 0.0) for r in sel), default=0.0)
        drawn = np.median([r["drawn_last"] for r in sel]) if "drawn_last" in sel[0] else float("nan")
        print(
            f"{layout:<18} {np.median(means):>12.3f} {max(means):>11.3f} {worst_max:>10.2f} {blank:>7.1%}"
            f" {drawn:>20.3f}"
        )
    print("(1/255 per texel; mirrored: the head rendered from the portrait's camera)")
    print(
        f"command: PYTHONPATH=backend .venv/bin/python bench/uv_layouts.py {' '.join(argv or sys.argv[1:])}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
