"""Is the mesh's face found whichever way the file turns it? Random orientations, scales and offsets.

    PYTHONPATH=backend .venv/bin/python bench/orientations.py [--copies 40] [--heads scan,demo,long_nose]

Each head (the scanned head of ../shared/assets when present, the demo head, its stylised variants by
name) is turned about a random axis by a random angle, scaled by 10^[-2, 2] and moved, then read as
the cache reads it (normalised, wound one way, no up or facing hint) by the facing search
(``landmarks.detect_mesh_landmarks``). Its landmarks are carried back onto the upright head through
their triangles and barycentrics and compared with the upright head's own: the median distance over
the 468 landmarks, in eye distances. Above WRONG_FACE the search settled on something that is not
the face (the photo's face then lands on a cheek or the jaw). Prints, per head, the median and 90th
percentile of that distance and each wrong case (its index, distance, facing, score, and whether
the result carried a warning to the artist: "warned", or "silent").

``--textures N`` also textures the upright head and its first N copies (classic engine, 1024², the
astronaut, through the whole pipeline as a capture without hints) and prints each copy's mean
|texture - upright texture| over the UV-covered texels, in 1/255: the invariance target is < 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import groundtruth as gt  # noqa: E402

WRONG_FACE = 0.1
"""Median landmark distance (eye distances) from which a copy's face is another place than the
upright head's (the detector's own scatter between copies is 0.01-0.03)."""


def landmarks_on_head(head: gt.Head, positions: np.ndarray, landmarker):
    """The facing search on the copy ``positions`` of ``head``; returns its result and its landmarks
    as points of the upright head (NaN where not found)."""
    from avatartex.landmarks import detect_mesh_landmarks
    from avatartex.mesh import Mesh
    from avatartex.pipeline.cache import normalized, wound_one_way

    mesh = Mesh(positions.astype(np.float32), head.triangles.astype(np.int32), None)
    mesh, _ = wound_one_way(normalized(mesh)[0])
    found = detect_mesh_landmarks(mesh.positions, mesh.triangles, landmarker)
    corners = head.positions[np.asarray(mesh.triangles)[found.tri_id]]
    points = np.einsum("nk,nkc->nc", found.bary, corners)
    return found, np.where(found.valid[:, None], points, np.nan)


def copies(head: gt.Head, seed: int, n: int):
    """The ``n`` turned, scaled and moved copies of ``head`` for ``seed``: (positions) each."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        axis, degrees = rng.normal(size=3), rng.uniform(0, 180)
        scale = 10 ** rng.uniform(-2, 2)
        yield scale * head.positions @ gt.rotation(tuple(axis), degrees).T + scale * rng.normal(size=3)


def texture_differences(head: gt.Head, name: str, seed: int, n: int) -> None:
    """Print the mean |texture(copy) - texture(upright)| (1/255, UV-covered texels) of the first ``n``
    copies: the astronaut, classic engine, 1024²."""
    import tempfile

    from avatartex.image_io import save_png
    from avatartex.mesh import Mesh, save_capture
    from avatartex.pipeline import Generator
    from avatartex.protocol import GenerateParams
    from PIL import Image
    from skimage import data

    generator = Generator(cache_size=2)
    generator.heads.copies = False  # each copy searched for its face, as in a process of its own
    with tempfile.TemporaryDirectory() as folder:
        portrait = Path(folder) / "astronaut.png"
        save_png(portrait, data.astronaut().astype(np.float32) / 255.0)
        textures = []
        for k, positions in enumerate([head.positions, *copies(head, seed, n)]):
            mesh = Path(folder) / f"{k}.npz"
            save_capture(Mesh(positions.astype(np.float32), head.triangles.astype(np.int32), head.uvs), mesh)
            params = GenerateParams(
                mesh=str(mesh),
                portrait=str(portrait),
                out_dir=str(Path(folder) / str(k)),
                size=1024,
                engine="classic",
            )
            texture = generator.generate(params)["texture"]
            textures.append(np.asarray(Image.open(texture).convert("RGBA"), np.float64))
    covered = textures[0][..., 3] > 0
    found = [
        float(np.abs(t[..., :3] - textures[0][..., :3]).mean(axis=2)[covered].mean()) for t in textures[1:]
    ]
    print(
        f"{name}: textures of {n} copies against the upright's, mean |difference| /255: "
        f"{[round(f, 2) for f in found]}; median {np.median(found):.2f}, worst {max(found):.2f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--heads", default="scan,demo,long_nose", help="scan, demo or a variant's name")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--textures", type=int, default=0, help="texture this many copies too")
    args = parser.parse_args(argv)
    from avatartex.face import default_landmarker
    from avatartex.protocol import AvatarTexError

    landmarker = default_landmarker()
    print(f"# PYTHONPATH=backend .venv/bin/python bench/orientations.py {' '.join(sys.argv[1:])}".rstrip())
    for name in args.heads.split(","):
        if name == "scan":
            head = gt.load_scan()
            if head is None:
                print("scan: skipped, ../shared/assets/heads/lee_perry_smith.glb not found")
                continue
        else:
            head = gt.demo_head("" if name == "demo" else name, 96)
        _, upright = landmarks_on_head(head, head.positions, landmarker)
        iod = np.linalg.norm(np.nanmean(upright[[33, 133]], 0) - np.nanmean(upright[[263, 362]], 0))
        distances, wrong, start = [], [], time.perf_counter()
        for k, copy in enumerate(copies(head, args.seed, args.copies)):
            try:
                found, points = landmarks_on_head(head, copy, landmarker)
            except AvatarTexError as exc:
                distances.append(np.inf)
                wrong.append((k, "no face", exc.code))
                continue
            distance = float(np.nanmedian(np.linalg.norm(points - upright, axis=1)) / iod)
            distances.append(distance)
            if distance > WRONG_FACE:
                said = "warned" if found.warnings else "silent"
                wrong.append((k, round(distance, 2), found.facing, round(found.score, 2), said))
        if args.textures:
            texture_differences(head, name, args.seed, args.textures)
        d = np.array(distances)
        print(
            f"{name}: {args.copies - len(wrong)}/{args.copies} copies found the face; landmark distance "
            f"median {np.median(d):.4f}, p90 {np.percentile(d, 90):.4f} eye distances "
            f"({time.perf_counter() - start:.0f} s); wrong: {wrong}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
