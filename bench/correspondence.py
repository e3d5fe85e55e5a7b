"""Where the registration's error comes from: the landmarks' correspondence, split into the part a
2D similarity (shift, scale, turn) explains and what is left (issue 8's misplacement diagnosis).

    PYTHONPATH=backend .venv/bin/python bench/correspondence.py [--quick] [--true-fov]

Runs bench/sweep.py's cases (its design and seed; the moved copies are left out) and, for each case
whose registration was tapped, compares the photo's landmarks (steadied, as the registration reads
them) with where the *true* camera projects the mesh points those landmarks were matched to (the
points the registration fitted its camera to). If the detector read the portrait and the mesh's render
alike, the two would coincide and the camera fit would find the true camera. Per case it prints that
correspondence error (median over the landmarks, in true eye distances) as it is, after the one
shift, after the one 2D similarity and after the one affine map that best explain it (least median
of squares), and the case's true misplacement; then the medians.

``--true-fov`` hands the pipeline the true field of view as if the photo's EXIF had it (the focal
length is then held fixed): what a perfect field of view would give with the same landmarks.

Measured (session 11, the full sweep's 94 detected cases): the correspondence error is 0.076 eye
distances as it is, 0.038 after a shift and **0.012 after a similarity** (0.011 affine), while the
true misplacement is 0.062: the detector reads the untextured render and the textured portrait as
the same shape, placed, sized or turned differently as a whole, and a camera fit takes such a
difference for pose, distance or focal length. With the true field of view (``--true-fov``) the
misplacement got *worse* (0.060 -> 0.073 median; bench/sweep.py's JSON rows case by case): the
fitted focal length was absorbing part of it. Detecting on a render from the true camera does not
remove it (0.11 raw, 0.04 after a similarity, on 23 quick cases): the difference is the two images'
appearance (a painted skin, no painted brows or lips), not the viewpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
if importlib.util.find_spec("avatartex") is None:  # run from a checkout without PYTHONPATH=backend
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

import groundtruth as gt  # noqa: E402
import sweep  # noqa: E402


def explained(photo: np.ndarray, true: np.ndarray, iod: float) -> dict[str, float]:
    """Median landmark distance (eye distances) as it is and after the best shift, 2D similarity and
    affine map from ``true`` to ``photo``."""
    import cv2

    def median(a: np.ndarray) -> float:
        return float(np.median(np.linalg.norm(photo - a, axis=1)) / iod)

    shifted = true + np.median(photo - true, axis=0)
    src, dst = true.astype(np.float32), photo.astype(np.float32)
    similar, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    affine, _ = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)
    out = {"raw": median(true), "shift": median(shifted)}
    out["similarity"] = median(true @ similar[:, :2].T + similar[:, 2]) if similar is not None else np.nan
    out["affine"] = median(true @ affine[:, :2].T + affine[:, 2]) if affine is not None else np.nan
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="bench/sweep.py's quick subset")
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--true-fov", action="store_true", help="give the pipeline the true field of view")
    parser.add_argument("--work", default="out/correspondence")
    parser.add_argument("--scan", default=str(gt.SHARED_SCAN))
    args = parser.parse_args(argv)

    scan = gt.load_scan(Path(args.scan))
    cases = [c for c in sweep.plan(args.quick, scan is not None, args.seed, args.cases) if not c.group]
    runner = sweep.Sweep(Path(args.work), scan, 96, 72)
    if args.true_fov:
        from avatartex.pipeline import steps

        analyse, current = steps.analyse, {}

        def with_true_fov(*a, **k):
            return dataclasses.replace(analyse(*a, **k), fov_y_deg_exif=current["fov"])

        steps.analyse = with_true_fov
    print(f"{len(cases)} cases; true fov given: {args.true_fov}")
    print(f"{'id':<8} {'head':<18} {'raw':>6} {'shift':>6} {'simil':>6} {'affine':>6} {'misplc':>7}")
    rows = []
    for case in cases:
        if args.true_fov:
            current["fov"] = case.fov
        row, extra = runner.run(case)
        reg, head = runner.tap.last, runner.tap.head
        if not row.get("found") or reg is None or not hasattr(reg, "points3d"):
            print(f"{case.id:<8} {case.head:<18} {row.get('error') or 'no registration'}")
            continue
        camera = extra["camera"]
        scale = case.width / float(reg.camera.width)  # the pipeline may have read a rescaled portrait
        # The true camera in the pipeline's unit-size copy of the mesh, where the points are.
        true_xy = gt.camera_in_head(camera, head).project(np.asarray(reg.points3d, np.float64))[0]
        iod = gt.true_iod_px(runner.head(case.head), camera)
        split = explained(np.asarray(reg.points2d, np.float64) * scale, true_xy, iod)
        split["misplacement"] = row.get("misplacement")
        rows.append(split)
        cells = " ".join(f"{split[k]:6.3f}" for k in ("raw", "shift", "similarity", "affine"))
        print(f"{case.id:<8} {case.head:<18} {cells} {split['misplacement']:7.3f}", flush=True)
    if rows:
        keys = ("raw", "shift", "similarity", "affine", "misplacement")
        medians = {k: float(np.nanmedian([r[k] if r[k] is not None else np.nan for r in rows])) for k in keys}
        print(f"median over {len(rows)} cases: " + ", ".join(f"{k} {v:.4f}" for k, v in medians.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
