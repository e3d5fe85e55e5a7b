"""A contact sheet of every style: 3 heads x 2 portraits x every style, each seen front, side and back.

    python bench/contact_sheet.py [--out docs/images/contact_sheet.png] [--size 1024] [--view 128]

Heads: the project's demo head, a stylised variant of it (``demo_head.HeadShape``: big eyes, long
nose, wide jaw, small chin) and the scanned head of ``../shared/assets`` (skipped, loudly, when
absent). Portraits: ``skimage.data.astronaut()`` and matplotlib's ``grace_hopper.jpg`` sample. One
warm ``Generator`` runs every request on the classic engine; ``preview.render_views`` renders them.
Rows are head x portrait, column groups are styles; the sheet is written as a PNG.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from avatartex import demo_head  # noqa: E402
from avatartex.image_io import load_texture, save_png  # noqa: E402
from avatartex.mesh import Mesh, load_mesh, save_capture  # noqa: E402
from avatartex.pipeline import Generator  # noqa: E402
from avatartex.preview import render_views  # noqa: E402
from avatartex.protocol import GenerateParams  # noqa: E402
from avatartex.styles import list_styles  # noqa: E402

SCANNED_HEAD = ROOT.parent / "shared" / "assets" / "heads" / "lee_perry_smith.glb"
VIEWS = ("front", "left", "back")


def stylised_shape():
    """The stylised variant's proportions (a caricature: big eyes, long nose, wide jaw, small chin)."""
    shape_cls = getattr(demo_head, "HeadShape", None)
    if shape_cls is None:
        return None
    return shape_cls(eye_scale=1.35, nose_length=1.3, jaw_width=1.2, chin_scale=0.7)


def heads(work: Path) -> list[tuple[str, str]]:
    """(label, mesh path) of each head of the sheet (the demo heads written into ``work``, made if
    missing, as add-on captures)."""
    work.mkdir(parents=True, exist_ok=True)
    out = []
    positions, triangles, uvs, pins = demo_head.make_demo_head()
    path = work / "demo_head.npz"
    save_capture(Mesh(positions, triangles, uvs, None, pins, "DemoHead"), path)
    out.append(("demo head", str(path)))
    shape = stylised_shape()
    if shape is not None:
        positions, triangles, uvs, pins = demo_head.make_demo_head(shape=shape)
    else:  # an older demo_head without parameters: a squashed, wider copy
        positions = positions * np.array([1.15, 0.9, 1.0], np.float32)
    path = work / "stylised_head.npz"
    save_capture(Mesh(positions, triangles, uvs, None, pins, "StylisedHead"), path)
    out.append(("stylised demo head", str(path)))
    if SCANNED_HEAD.exists():
        out.append(("scanned head", str(SCANNED_HEAD)))  # (Lee Perry-Smith: the caption says)
    else:
        print(f"SKIPPED the scanned head: {SCANNED_HEAD} not found (../shared absent)", file=sys.stderr)
    return out


def portraits(work: Path) -> list[tuple[str, str]]:
    """(label, image path) of each portrait of the sheet."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    astronaut = work / "astronaut.png"
    save_png(astronaut, np.asarray(skimage.data.astronaut(), np.uint8))
    hopper = work / "grace_hopper.png"
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        Image.open(handle).convert("RGB").save(hopper)
    return [("astronaut", str(astronaut)), ("Grace Hopper", str(hopper))]


def label(image: np.ndarray, text: str, scale: float = 0.45) -> np.ndarray:
    """``image`` (uint8) with ``text`` written in its top-left corner."""
    out = image.copy()
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "contact_sheet.png"))
    parser.add_argument("--size", type=int, default=1024, help="texture size of each generate")
    parser.add_argument("--view", type=int, default=128, help="edge of each rendered view, pixels")
    parser.add_argument("--styles", default="", help="comma-separated subset (default: every style)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="avatartex-sheet-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # its textures: gigabytes over a run
    styles = [s.name for s in list_styles()]
    if args.styles:
        styles = [s for s in args.styles.split(",") if s]
    generator = Generator()
    rows = []
    header = [np.full((24, args.view * len(VIEWS), 3), 255, np.uint8) for _ in styles]
    header = [label(h, f"{name}: front, side, back") for h, name in zip(header, styles, strict=True)]
    rows.append(np.concatenate([np.full((24, 150, 3), 255, np.uint8), *header], axis=1))
    for head_label, mesh_path in heads(work):
        mesh = load_mesh(mesh_path)
        for portrait_label, portrait_path in portraits(work):
            cells = []
            for style in styles:
                out_dir = work / f"{Path(mesh_path).stem}_{Path(portrait_path).stem}_{style}"
                params = GenerateParams(
                    mesh=mesh_path,
                    portrait=portrait_path,
                    out_dir=str(out_dir),
                    style=style,
                    size=args.size,
                    engine="classic",
                )
                start = time.time()
                result = generator.generate(params)
                texture = load_texture(result["texture"])
                views = render_views(mesh, texture, VIEWS, args.view)
                cells.append((np.clip(np.concatenate(views, axis=1), 0, 1) * 255 + 0.5).astype(np.uint8))
                print(f"{head_label} / {portrait_label} / {style}: {time.time() - start:.1f} s", flush=True)
            side = np.full((args.view, 150, 3), 255, np.uint8)
            side = label(side, head_label[:22], 0.38)
            cv2.putText(
                side, portrait_label, (6, 36), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (20, 20, 20), 1, cv2.LINE_AA
            )
            rows.append(np.concatenate([side, *cells], axis=1))
    sheet = np.concatenate(rows, axis=0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(out, sheet)
    print(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]}, {out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
