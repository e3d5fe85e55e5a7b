"""Dark skins, measured: the contact sheet's portraits with their skin darkened in CIELAB.

    PYTHONPATH=backend .venv/bin/python bench/dark_skin.py [--size 512] [--styles photoreal,painterly]
        [--json rows.json] [--sheet dark_skin.png]

No colour photo of a dark-skinned face loads offline here, so the astronaut's and Grace Hopper's
skin is darkened in CIELAB (``darkened``: L* times ``k``, a* and b* times ``c``, on the face and the
neck, the eyes' and the mouth's openings left as they are) to three depths besides the photo as it
is: ``IV`` (the astronaut's skin L* about 47), ``V`` (about 36) and ``VI`` (about 28, the darkest
skins photographed). Each is textured onto the contact sheet's heads (``contact_sheet.heads``: the
demo head, its stylised variant, the scanned head when ../shared is there) in each style asked for,
one warm generator, classic engine. Per case, from the run's debug atlases (``debug_partial.png``,
the photo projected into the head atlas; ``debug_atlas.png``, the result; ``debug_confidence.png``):

- ``skin_dl``, ``skin_dab``: the result's seen face skin against the photo's on the same texels
  (median L*, and the distance of the median a*, b*): the skin's tone kept through the de-lighting;
- ``whites_dl``, ``whites_db``: the eye whites (light texels of the photo round each eye, greyer than
  its skin) against the photo's: L* and b* (amber whites read b* +20 and more); empty where the
  photo shows none or shows them through glasses (Grace Hopper's: what is light and grey round her
  eyes is her lenses' reflections, which the pipeline takes off);
- ``fill_de``: CIELAB distance of the unseen skin's median (scalp, back of the head, neck: texels
  the photo does not reach) from the seen face skin's, in the result: the fill matching the face.

Prints a row per case and, per depth and style, the median and the worst of each figure. The
darkening is a stand-in: a dark skin's own photograph differs (its blue channel, its shine, the
camera's exposure for it), so these figures say how the pipeline treats a darker skin's colours, not
that a real photograph of one comes out as well.
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))
sys.path.insert(0, str(ROOT / "bench"))

from avatartex.atlas import CHIN, CROWN, AtlasLayout, directions  # noqa: E402
from avatartex.face import (  # noqa: E402
    FACE_OVAL,
    LEFT_EYE_CONTOUR,
    LIPS_INNER,
    RIGHT_EYE_CONTOUR,
    default_landmarker,
)
from avatartex.image_io import load_portrait, load_texture, save_png  # noqa: E402
from avatartex.imaging import from_lab, to_lab  # noqa: E402
from avatartex.mesh import load_mesh  # noqa: E402
from avatartex.pipeline import Generator  # noqa: E402
from avatartex.preview import render_views  # noqa: E402
from avatartex.projection import polygon_mask  # noqa: E402
from avatartex.protocol import GenerateParams  # noqa: E402
from contact_sheet import heads, label, portraits  # noqa: E402

DEPTHS = {"photo": (1.0, 1.0), "IV": (0.62, 1.15), "V": (0.48, 1.25), "VI": (0.38, 1.35)}
"""Depth name -> (lightness factor, chroma factor) of the darkening (the astronaut's skin, L* 76 as
the head atlas reads it: about 47, 36 and 28)."""
NECK_FROM_L = 20.0
"""Below the jaw, pixels of the face's hue from this CIELAB L* up are the neck's skin (a black collar
is not)."""
EYES = ((-0.5, 0.0, 1.2), (0.5, 0.0, 1.2))
"""Head-frame points (eye distances) round which the eye whites are looked for."""
EYE_REACH_IOD = 0.25
FEATURES = ((-0.5, 0.0, 1.2), (0.5, 0.0, 1.2), (0.0, -1.25, 1.1), (-0.45, 0.45, 1.2), (0.45, 0.45, 1.2))
"""The eyes, the mouth and the brows: left out of the skin's figures (FEATURE_REACH_IOD round each)."""
FEATURE_REACH_IOD = 0.35


def darkened(photo: np.ndarray, k: float, c: float) -> np.ndarray:
    """``photo`` (float sRGB) with its face and neck darkened: CIELAB L* times ``k``, a* and b* times
    ``c``, the eyes' and the mouth's openings left as they are, softened over a pixel at the mask's edge
    (outside the eyes)."""
    if k == 1.0 and c == 1.0:
        return photo
    face = max(default_landmarker().detect(photo), key=lambda f: f.size)
    shape = photo.shape[:2]
    lab = to_lab(photo)
    points = face.landmarks
    eyes = polygon_mask(shape, points[list(RIGHT_EYE_CONTOUR)], grow=0.0)
    eyes |= polygon_mask(shape, points[list(LEFT_EYE_CONTOUR)], grow=0.0)
    eyes |= polygon_mask(shape, points[list(LIPS_INNER)], grow=0.0)  # and the teeth
    skin = polygon_mask(shape, points[list(FACE_OVAL)], grow=0.05)
    # The jaw's underside and the neck: from the jaw's corners down, as wide as the jaw, of the face's
    # hue and chroma (not the collar, not the grey background).
    chin, iod = points[152], face.interocular
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))
    face_hue = float(np.median(hue[skin & (lab[..., 0] > 40.0)]))  # the lit skin's, not the hair's
    neck = (rows > chin[1] - 0.6 * iod) & (rows < chin[1] + 1.2 * iod) & (np.abs(cols - chin[0]) < 1.2 * iod)
    neck &= (np.abs(hue - face_hue) < 20.0) & (np.hypot(lab[..., 1], lab[..., 2]) > 8.0)
    neck &= lab[..., 0] > NECK_FROM_L
    # The whole face, its shadows, lips and brows too (a dark skin's are darker as well).
    mask = ((skin | neck) & ~eyes).astype(np.float32)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.0) * ~eyes  # softened at its edge, not into the eyes
    dark = np.clip(from_lab(lab * np.array([k, c, c], np.float32)), 0.0, 1.0)
    # Blended in sRGB: a pixel the mask leaves is the photo's to the bit (CIELAB's round trip is not).
    return (photo + mask[..., None] * (dark - photo)).astype(np.float32)


def _discs(layout: AtlasLayout, centres, reach: float) -> np.ndarray:
    rows, cols = np.mgrid[0 : layout.size, 0 : layout.size]
    out = np.zeros(rows.shape, bool)
    for centre in centres:
        x, y = layout.band_xy(*directions(np.array(centre, np.float64)))
        out |= np.hypot(cols + 0.5 - x, rows + 0.5 - y) < reach * layout.face_texels_per_iod
    return out


def _in_atlas(layout: AtlasLayout) -> np.ndarray:
    """(S, S) bool: the band and the two cap discs (the corners beside the caps hold nothing)."""
    rows, cols = np.mgrid[0 : layout.size, 0 : layout.size]
    out = rows < layout.band_rows
    for chart in (CROWN, CHIN):
        x, y = layout.cap_center(chart)
        out |= np.hypot(cols + 0.5 - x, rows + 0.5 - y) < layout.cap_radius
    return out


def figures(out_dir: Path) -> dict[str, float | None]:
    """The case's figures (module docstring) from its debug atlases."""
    photo = to_lab(load_texture(out_dir / "debug_partial.png")[..., :3])
    made = to_lab(load_texture(out_dir / "debug_atlas.png")[..., :3])
    confidence = load_texture(out_dir / "debug_confidence.png")
    confidence = confidence[..., 0] if confidence.ndim == 3 else confidence
    layout = AtlasLayout(made.shape[0])
    features = _discs(layout, FEATURES, FEATURE_REACH_IOD)
    seen = (confidence > 0.8) & ~features
    skin_l = float(np.median(photo[seen, 0]))
    skin = seen & (np.abs(photo[..., 0] - skin_l) < 15.0)  # not the hair, the glasses, a shadow
    photo_skin, made_skin = np.median(photo[skin], axis=0), np.median(made[skin], axis=0)
    near_eyes = _discs(layout, EYES, EYE_REACH_IOD) & (confidence > 0.5)
    # Light and greyer than the skin (a light skin's whites are no lighter than it).
    chroma = np.hypot(photo[..., 1], photo[..., 2])
    whites = near_eyes & (photo[..., 0] > 45.0) & (chroma < min(20.0, 0.7 * np.hypot(*photo_skin[1:])))
    unseen = (confidence == 0) & _in_atlas(layout)
    row: dict[str, float | None] = {
        "skin_l": round(float(photo_skin[0]), 1),
        "skin_dl": round(float(made_skin[0] - photo_skin[0]), 2),
        "skin_dab": round(float(np.hypot(*(made_skin[1:] - photo_skin[1:]))), 2),
        "whites_dl": None,
        "whites_db": None,
        "fill_de": round(float(np.linalg.norm(np.median(made[unseen], axis=0) - made_skin)), 2),
    }
    report = json.loads((out_dir / "report.json").read_text())
    behind_glasses = bool(report.get("regions", {}).get("glasses"))  # lenses and their reflections
    if whites.sum() >= 30 and not behind_glasses:
        photo_whites, made_whites = np.median(photo[whites], axis=0), np.median(made[whites], axis=0)
        row["whites_dl"] = round(float(made_whites[0] - photo_whites[0]), 2)
        row["whites_db"] = round(float(made_whites[2] - photo_whites[2]), 2)
    return row


def summary(rows: list[dict]) -> None:
    """Per depth and style: the median and the worst (largest magnitude) of each figure."""
    keys = ("skin_dl", "skin_dab", "whites_dl", "whites_db", "fill_de")
    print(f"\n{'depth':6s} {'style':10s} {'n':>3s}  " + "  ".join(f"{k:>17s}" for k in keys))
    for depth, style in sorted(
        {(r["depth"], r["style"]) for r in rows}, key=lambda k: (list(DEPTHS).index(k[0]), k[1])
    ):
        group = [r for r in rows if r["depth"] == depth and r["style"] == style]
        cells = []
        for key in keys:
            values = np.array([r[key] for r in group if r[key] is not None], np.float64)
            if not len(values):
                cells.append(f"{'-':>17s}")
                continue
            worst = values[np.argmax(np.abs(values))]
            cells.append(f"{np.median(values):8.2f} / {worst:6.2f}")
        print(f"{depth:6s} {style:10s} {len(group):3d}  " + "  ".join(cells))
    print("(median / worst of the cases; skin and whites: the result less the photo, CIELAB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="texture size of each generate")
    parser.add_argument("--styles", default="photoreal,painterly", help="comma-separated styles")
    parser.add_argument("--depths", default=",".join(DEPTHS), help="comma-separated: " + ", ".join(DEPTHS))
    parser.add_argument("--json", default="", help="write the rows here")
    parser.add_argument("--sheet", default="", help="write the cases' front views here (a PNG)")
    parser.add_argument("--view", type=int, default=160, help="edge of each view of the sheet, pixels")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="avatartex-dark-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    styles = [s for s in args.styles.split(",") if s]
    depths = [d for d in args.depths.split(",") if d]
    unknown = sorted(set(depths) - set(DEPTHS))
    if unknown:
        parser.error(f"unknown depths {unknown}: choose from {', '.join(DEPTHS)}")
    generator = Generator()
    rows, sheet_rows = [], []
    started = time.time()
    print(f"{'head':20s} {'portrait':13s} {'depth':6s} {'style':10s} {'skin L*':>7s} {'skin dL':>7s} "
          f"{'skin dab':>8s} {'white dL':>8s} {'white db':>8s} {'fill dE':>7s}")  # fmt: skip
    # (label, path, the mesh itself where the sheet renders it)
    meshes = [(name, path, load_mesh(path) if args.sheet else None) for name, path in heads(work / "heads")]
    for portrait_label, portrait_path in portraits(work):
        photo, _ = load_portrait(portrait_path)
        for depth in depths:
            dark = work / f"{Path(portrait_path).stem}_{depth}.png"
            save_png(dark, darkened(photo, *DEPTHS[depth]))
            for head_label, mesh_path, mesh in meshes:
                cells = []
                for style in styles:
                    out_dir = work / f"{Path(mesh_path).stem}_{dark.stem}_{style}"
                    params = GenerateParams(
                        mesh=mesh_path, portrait=str(dark), out_dir=str(out_dir), style=style,
                        size=args.size, engine="classic", debug=True,
                    )  # fmt: skip
                    result = generator.generate(params)
                    row = {"head": head_label, "portrait": portrait_label, "depth": depth, "style": style}
                    row.update(figures(out_dir))
                    rows.append(row)
                    print(
                        f"{head_label:20s} {portrait_label:13s} {depth:6s} {style:10s} {row['skin_l']:7.1f} "
                        f"{row['skin_dl']:7.2f} {row['skin_dab']:8.2f} "
                        f"{'-' if row['whites_dl'] is None else row['whites_dl']:>8} "
                        f"{'-' if row['whites_db'] is None else row['whites_db']:>8} {row['fill_de']:7.2f}",
                        flush=True,
                    )
                    if args.sheet:
                        view = render_views(mesh, load_texture(result["texture"]), ("front",), args.view)[0]
                        cell = (np.clip(view, 0, 1) * 255 + 0.5).astype(np.uint8)
                        cells.append(label(cell, f"{depth} {style}", 0.38))
                if cells:
                    sheet_rows.append(np.concatenate(cells, axis=1))
    summary(rows)
    print(f"{len(rows)} cases in {time.time() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.sheet and sheet_rows:
        width = max(r.shape[1] for r in sheet_rows)
        padded = [
            np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in sheet_rows
        ]
        save_png(args.sheet, np.concatenate(padded, axis=0))
        print(f"wrote {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
