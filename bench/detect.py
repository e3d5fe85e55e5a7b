"""Face detection on the sweep's portraits alone (issue 8 item 5): how often a face is found, by
which pass, and whether it is the right face.

    PYTHONPATH=backend python bench/detect.py [--quick] [--outline] [--json rows.json]

The portraits are exactly those of ``bench/sweep.py`` (same plan, seed, heads, cameras, lights,
skins, backgrounds, sizes and JPEG), rendered once into ``--work`` and reused by later runs, so a
detection idea is judged on the full sweep in a few minutes instead of the sweep's ten. Per
portrait: ``found`` (``face.analyse_portrait`` returned a face, or with ``--outline`` the pipeline's
fallback ``outline.outline_face`` placed it from the head's outline), the ``pass`` that found it
(``direct``, ``upscaled``, ``crop`` or ``outline``) and ``eye_error``: the mean distance of the
found eye centres from the true ones (the head's eye centres through the true camera), in true eye
distances. A face is *right* when ``eye_error`` is below 0.25 (landmark noise on a good detection is
0.02-0.15 here; a face found on the wrong head or mirrored is > 0.5).

The summary prints the found rate, the right rate, the number of faces found at the wrong place by
pass (``wrong_by_pass``: eye error of RIGHT_FACE or more), the rate by light, skin and background
(and the found rate by background), the median and worst eye error of the faces found, and the
median and worst seconds per portrait where the detector saw no face (``seconds_missed``).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
if importlib.util.find_spec("avatartex") is None:  # run from a checkout without PYTHONPATH=backend
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

import groundtruth as gt  # noqa: E402
import sweep as sw  # noqa: E402

RIGHT_FACE = 0.25
"""Eye error (true eye distances) below which a detection is the portrait's face."""


def _portrait(sweep: sw.Sweep, case: sw.Case, folder: Path) -> tuple[Path, np.ndarray]:
    """The case's portrait file and the true eye centres in it ((2, 2) pixels), rendered once."""
    folder.mkdir(parents=True, exist_ok=True)
    truth_file = folder / "eyes.npy"
    found = sorted(folder.glob("portrait.*"))
    if truth_file.exists() and found:
        return found[0], np.load(truth_file)
    head = sweep.head(case.head)
    truth = sweep.truth(head, case.size, case.skin, case.seed)
    render, path = sweep.portrait(case, head, truth, folder)
    eyes, _ = render.camera.project(head.eyes)
    np.save(truth_file, np.asarray(eyes, np.float64))
    return path, np.asarray(eyes, np.float64)


def run_case(path: Path, eyes: np.ndarray, head=None) -> dict:
    """Detect the face of one portrait; with ``head`` (the mesh's ``pipeline.cache.HeadModel``),
    place it from the outline where none is found, or check an unconfirmed one against it, as the
    pipeline does (``steps.analyse``)."""
    from avatartex.face import analyse_portrait
    from avatartex.image_io import load_portrait
    from avatartex.outline import outline_face
    from avatartex.protocol import AvatarTexError
    from avatartex.registration import FovPrior

    image, info = load_portrait(path)
    started = time.perf_counter()
    try:
        face, _ = analyse_portrait(image, str(path))
    except AvatarTexError as error:
        face, unreadable = None, error
    else:
        unreadable = None
    if head is not None and (face is None or face.score <= 0.0):  # as steps.analyse does
        prior = FovPrior.for_image((image.shape[1], image.shape[0]), info.get("fov_y_deg_exif"))
        fov = prior.fov_y_deg(image.shape[0])
        try:
            face, _ = outline_face(
                image,
                head.mesh.positions,
                head.mesh.triangles,
                head.landmarks,
                fov,
                str(path),
                face,
                unreadable,
            )
        except AvatarTexError as error:
            unreadable = error
    if face is None:
        return {"found": False, "error": str(unreadable.code), "seconds": time.perf_counter() - started}
    seconds = time.perf_counter() - started
    iod = float(np.linalg.norm(eyes[1] - eyes[0]))
    detected = np.stack([face.right_eye_center, face.left_eye_center]).astype(np.float64)
    error = float(np.linalg.norm(detected - eyes, axis=1).mean() / max(iod, 1e-6))
    return {
        "found": True,
        "pass": face.extras.get("pass", "direct"),
        "score": round(float(face.score), 3),
        "eye_error": round(error, 4),
        "right": error < RIGHT_FACE,
        "outline_cost": face.extras.get("cost"),
        "seconds": round(seconds, 3),
    }


def _median_and_worst(values: list[float]) -> list[float] | None:
    return [round(float(np.median(values)), 3), round(float(np.max(values)), 3)] if values else None


def summary(rows: list[dict]) -> dict:
    n = len(rows)
    found = [r for r in rows if r["found"]]
    errors = np.array([r["eye_error"] for r in found]) if found else np.zeros(0)
    out = {
        "cases": n,
        "found": round(len(found) / max(n, 1), 3),
        "right": round(sum(r.get("right", False) for r in rows) / max(n, 1), 3),
        "wrong_by_pass": dict(collections.Counter(r["pass"] for r in found if not r["right"])),
        "eye_error_median": round(float(np.median(errors)), 4) if found else None,
        "eye_error_worst": round(float(errors.max()), 4) if found else None,
        "passes": dict(collections.Counter(r["pass"] for r in found)),
        "seconds_median": round(float(np.median([r["seconds"] for r in rows])), 3),
        # where the detector saw no face: with --outline, the fallback's time is in it
        "seconds_missed": _median_and_worst(
            [r["seconds"] for r in rows if r.get("pass", "outline") == "outline"]
        ),
    }
    for factor in ("light", "skin", "background", "head"):
        groups = collections.defaultdict(list)
        for r in rows:
            groups[r[factor]].append(r.get("right", False))
        out[f"right_by_{factor}"] = {k: f"{sum(v)}/{len(v)}" for k, v in sorted(groups.items())}
    found_by = collections.defaultdict(list)
    for r in rows:
        found_by[r["background"]].append(r["found"])
    out["found_by_background"] = {k: f"{sum(v)}/{len(v)}" for k, v in sorted(found_by.items())}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick sweep's portraits")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--work", default="out/detect", help="folder for the rendered portraits")
    parser.add_argument("--json", default=None, help="write every row and the summary to this file")
    parser.add_argument("--scan", default=str(gt.SHARED_SCAN))
    parser.add_argument("--only", default="", help="comma-separated case ids")
    parser.add_argument(
        "--outline", action="store_true", help="place faces the detector misses from the outline"
    )
    args = parser.parse_args(argv)
    from avatartex.mesh import load_mesh
    from avatartex.pipeline.cache import HeadCache

    work = Path(args.work)
    scan = gt.load_scan(Path(args.scan))
    cases = sw.plan(args.quick, scan is not None, args.seed, None)
    # One portrait per invariance group is enough: the copies share it.
    cases = [c for c in cases if not c.group or c.transform == "none"]
    if args.only:
        keep = set(args.only.split(","))
        cases = [c for c in cases if c.id in keep]
    sweep = sw.Sweep(work, scan, 96, 72)
    heads = HeadCache(16)
    rows = []
    for case in cases:
        path, eyes = _portrait(sweep, case, work / "cases" / case.id)
        head = None
        if args.outline:
            truth = sweep.head(case.head)
            mesh_path = sweep.mesh_file(truth, gt.placement("none", truth), "")
            head = heads.head(load_mesh(str(mesh_path)), sweep.generator.landmarker)
        row = {**asdict(case), **run_case(path, eyes, head)}
        rows.append(row)
        mark = "no face" if not row["found"] else f"{row['pass']:<14} eye error {row['eye_error']:.3f}"
        print(f"{case.id:<14} {case.head:<18} {case.light:<8} {case.skin:<9} {case.background:<9} {mark}")
    s = summary(rows)
    s["command"] = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print(json.dumps(s, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": s, "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
