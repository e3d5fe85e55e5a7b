"""Stage times of the classic engine and how they grow with triangles and texture size.

    python bench/speed.py --mesh ../shared/assets/heads/lee_perry_smith.glb

Prints one JSON object: warm per-stage seconds at each texture size (512-4096) on the mesh as it is,
the same at 1024 for the mesh subdivided 1x and 2x (4x and 16x the triangles), and the UV
rasterisation of a ~100k-triangle mesh at 2048x2048 alone. "Warm" is a second request to the same
running backend: numba compiled, mediapipe loaded, the mesh's landmarks and atlas cached — what a
batch or a re-generate costs. "Cold" (first request in a fresh process) is printed too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from avatartex import raster  # noqa: E402
from avatartex.image_io import save_png  # noqa: E402
from avatartex.mesh import Mesh, load_mesh, save_capture  # noqa: E402
from avatartex.pipeline import Generator  # noqa: E402
from avatartex.protocol import GenerateParams  # noqa: E402


def subdivide(mesh: Mesh) -> Mesh:
    """Split every triangle into four at its edge midpoints (positions and per-corner UVs)."""
    tri = mesh.triangles.astype(np.int64)
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    unique, inverse = np.unique(edges, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    mid = (mesh.positions[unique[:, 0]] + mesh.positions[unique[:, 1]]) / 2
    positions = np.concatenate([mesh.positions, mid]).astype(np.float32)
    t = len(tri)
    m01, m12, m20 = (inverse[k * t : (k + 1) * t] + len(mesh.positions) for k in range(3))
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    triangles = np.concatenate(
        [
            np.stack([a, m01, m20], 1),
            np.stack([m01, b, m12], 1),
            np.stack([m20, m12, c], 1),
            np.stack([m01, m12, m20], 1),
        ]
    ).astype(np.int32)
    uv = mesh.uvs
    u01, u12, u20 = (uv[:, 0] + uv[:, 1]) / 2, (uv[:, 1] + uv[:, 2]) / 2, (uv[:, 2] + uv[:, 0]) / 2
    uvs = np.concatenate(
        [
            np.stack([uv[:, 0], u01, u20], 1),
            np.stack([u01, uv[:, 1], u12], 1),
            np.stack([u20, u12, uv[:, 2]], 1),
            np.stack([u01, u12, u20], 1),
        ]
    ).astype(np.float32)
    return Mesh(positions, triangles, uvs, None, {}, mesh.name + "_sub")


def timed_generate(generator: Generator, mesh_path: str, portrait: str, out: str, size: int) -> dict:
    params = GenerateParams(mesh=mesh_path, portrait=portrait, out_dir=out, size=size, engine="classic")
    return generator.generate(params)["report"]["timings"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesh", required=True)
    parser.add_argument("--portrait", default="", help="default: skimage's astronaut")
    parser.add_argument("--sizes", default="512,1024,2048,4096")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="avatartex-speed-"))
    portrait = args.portrait
    if not portrait:
        from skimage import data

        portrait = str(work / "astronaut.png")
        save_png(portrait, np.asarray(data.astronaut(), np.uint8))

    generator = Generator()
    result: dict = {"mesh": Path(args.mesh).name}
    started = time.perf_counter()
    cold = timed_generate(generator, args.mesh, portrait, str(work / "out"), 1024)
    result["cold_1024"] = {"wall": round(time.perf_counter() - started, 3), **cold}
    result["by_size"] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        result["by_size"][size] = timed_generate(generator, args.mesh, portrait, str(work / "out"), size)

    mesh = load_mesh(args.mesh)
    result["by_triangles_1024"] = {}
    level = mesh
    for _ in range(3):
        path = work / f"mesh_{len(level.triangles)}.npz"
        save_capture(level, path)
        timed_generate(generator, str(path), portrait, str(work / "out"), 1024)  # fills the mesh cache
        warm = timed_generate(generator, str(path), portrait, str(work / "out"), 1024)
        fresh = Generator(landmarker=generator.landmarker)  # a new mesh: landmarks + atlas included
        first = timed_generate(fresh, str(path), portrait, str(work / "out"), 1024)
        result["by_triangles_1024"][len(level.triangles)] = {"new_mesh": first, "warm": warm}
        level = subdivide(level)

    big = subdivide(subdivide(mesh))
    big.uvs = big.uvs[:100_000]
    raster.rasterize_uv(big.uvs, 2048)
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        raster.rasterize_uv(big.uvs, 2048)
        runs.append(time.perf_counter() - t)
    result["uv_raster_100k_tris_2048_s"] = round(min(runs), 4)
    result["command"] = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
