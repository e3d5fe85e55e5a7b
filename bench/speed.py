"""Step times of the classic engine and how they grow with texture size and triangles.

    python bench/speed.py --mesh ../shared/assets/heads/lee_perry_smith.glb

Prints one JSON object:

- ``first_request``: a fresh backend process (``python -m avatartex.server``) is started, answers
  ``hello``, and then gets one ``generate`` at 1024 right away (``idle_0``) or after ``--idle``
  seconds (an artist choosing a photo after the panel started the backend: the server warms up
  meanwhile). Seconds from sending ``generate`` to its result, and the request's step timings. Each
  starts with an empty ``AVATARTEX_CACHE_DIR`` (a head this machine never saw), and
  ``known_head_idle_N`` once more with the cache the previous run filled (Blender restarted on a
  head textured before: its landmarks come from the disk). ``prepared_idle_N``: a new head again,
  with a ``prepare`` of the mesh sent right after ``hello`` (what the add-on sends when the head
  becomes the panel's target), and when it was answered (``prepare_s``, from ``hello``).
- ``cold_1024``: the first request in this process (pipeline imported, nothing else loaded).
- ``by_size``: warm requests (numba compiled, mediapipe loaded, the mesh's landmarks, atlas and UV
  surface cached: what a batch or a re-generate costs) at each texture size, ``--repeats`` times:
  per step the median and minimum wall seconds and the median CPU seconds (``time.process_time``,
  every thread of the process; above the wall time where a step runs on both cores). ``new_photo``:
  each request another photo (the portrait cropped a few pixels differently), so the camera fit and
  projection run; ``variant``: the first photo again with another seed (a variant of one head from
  one photo), whose fit the generator keeps.
- ``by_triangles_1024`` (unless ``--quick``): the mesh as it is and subdivided 1x and 2x (4x and 16x
  the triangles; ``--levels 4`` adds 64x: the scanned head at 1.13M triangles, a dense scan), for a
  new mesh and warm; and the UV rasterisation of ~100k triangles at 2048².

Timings on a shared machine are noisy: compare medians and minimums of several repeats, and the CPU
seconds, which other processes disturb less.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from avatartex import raster  # noqa: E402
from avatartex.image_io import load_portrait, save_png  # noqa: E402
from avatartex.mesh import Mesh, load_mesh, save_capture  # noqa: E402
from avatartex.pipeline import Generator  # noqa: E402
from avatartex.pipeline import generator as generator_module  # noqa: E402
from avatartex.pipeline.progress import RequestClock  # noqa: E402
from avatartex.protocol import GenerateParams  # noqa: E402

BACKEND = Path(__file__).resolve().parents[1] / "backend"


class CpuClock(RequestClock):
    """The request clock, also keeping each step's CPU seconds (all threads of the process)."""

    last: dict[str, float] = {}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._cpu = time.process_time()
        CpuClock.last = {}

    def done(self, name: str) -> None:
        super().done(name)
        now = time.process_time()
        CpuClock.last[name] = CpuClock.last.get(name, 0.0) + now - self._cpu
        self._cpu = now


generator_module.RequestClock = CpuClock  # Generator.generate makes one per request


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


def timed_generate(
    generator: Generator, mesh_path: str, portrait: str, out: str, size: int, seed: int = 0
) -> dict:
    """One request's step timings: wall seconds, plus ``cpu`` seconds per step."""
    params = GenerateParams(
        mesh=mesh_path, portrait=portrait, out_dir=out, size=size, engine="classic", seed=seed
    )
    cpu_started = time.process_time()
    timings = generator.generate(params)["report"]["timings"]
    cpu = {k: round(v, 3) for k, v in CpuClock.last.items()}
    cpu["total"] = round(time.process_time() - cpu_started, 3)
    return {**timings, "cpu": cpu}


def summary(runs: list[dict]) -> dict:
    """Per step: median and minimum wall seconds and median CPU seconds over the runs."""
    steps = [k for k in runs[0] if k != "cpu"]
    return {
        step: {
            "wall_median": round(float(np.median([r[step] for r in runs])), 3),
            "wall_min": round(min(r[step] for r in runs), 3),
            "cpu_median": round(float(np.median([r["cpu"].get(step, 0.0) for r in runs])), 3),
        }
        for step in steps
    }


def other_photos(portrait: str, work: Path, count: int) -> list[str]:
    """``count`` new photos of the same face: the portrait cropped by 2, 4, ... pixels on the left
    (other pixels, so a generator that keeps the fit of a photo cannot reuse it)."""
    image, _ = load_portrait(portrait)
    paths = []
    for k in range(1, count + 1):
        path = work / f"photo_{k}.png"
        save_png(path, np.round(np.clip(image[:, 2 * k :], 0, 1) * 255).astype(np.uint8))
        paths.append(str(path))
    return paths


def first_request(
    mesh: str, portrait: str, out: str, idle: float, cache_dir: str, prepare: bool = False
) -> dict:
    """A new backend process: ``hello``, ``idle`` seconds, then one 1024 ``generate``; the server's
    disk cache in ``cache_dir``. ``prepare``: the mesh's ``prepare`` is sent right after ``hello``
    (its answer is read when the generate is sent, or after it)."""
    env = dict(os.environ, PYTHONPATH=str(BACKEND), AVATARTEX_CACHE_DIR=cache_dir)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "avatartex.server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )

    answers: dict[int, tuple[float, dict]] = {}
    """Final messages by request id, with when they arrived (a reader thread: the prepare's answer
    comes while the bench sleeps)."""
    arrived = threading.Condition()

    def read() -> None:
        for line in process.stdout:
            message = json.loads(line)
            if "result" in message or "error" in message:
                with arrived:
                    answers[message.get("id")] = (time.perf_counter(), message)
                    arrived.notify_all()

    def send(request_id: int, method: str, params: dict) -> None:
        process.stdin.write(json.dumps({"id": request_id, "method": method, "params": params}) + "\n")
        process.stdin.flush()

    def answer(request_id: int) -> tuple[float, dict]:
        with arrived:
            if not arrived.wait_for(lambda: request_id in answers or not reader.is_alive(), 600):
                raise RuntimeError(f"no answer to request {request_id}")
            if request_id not in answers:
                raise RuntimeError("the backend closed its output")
            return answers[request_id]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        send(1, "hello", {})
        hello = answer(1)[0] - started
        if prepare:
            send(4, "prepare", {"mesh": mesh, "size": 1024})
        time.sleep(idle)
        sent = time.perf_counter()
        params = {"mesh": mesh, "portrait": portrait, "out_dir": out, "size": 1024, "engine": "classic"}
        send(2, "generate", params)
        done, final = answer(2)
        prepared = answer(4) if prepare else None
        send(3, "shutdown", {})
        answer(3)
    finally:
        process.kill()
    if "error" in final:
        raise RuntimeError(f"generate failed: {final['error']}")
    found = {
        "hello_s": round(hello, 3),
        "idle_s": idle,
        "generate_s": round(done - sent, 3),
        "timings": final["result"]["report"]["timings"],
    }
    if prepared is not None:
        if "result" not in prepared[1] or not prepared[1]["result"].get("ready"):
            raise RuntimeError(f"prepare failed: {prepared[1]}")
        found["prepare_s"] = round(prepared[0] - started - hello, 3)
        found["prepare_timings"] = prepared[1]["result"]["timings"]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesh", required=True)
    parser.add_argument("--portrait", default="", help="default: skimage's astronaut")
    parser.add_argument("--sizes", default="512,1024,2048,4096")
    parser.add_argument("--repeats", type=int, default=3, help="warm requests per size")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds between hello and generate")
    parser.add_argument("--no-first-request", action="store_true", help="skip the fresh-process runs")
    parser.add_argument("--quick", action="store_true", help="skip the triangle-count runs")
    parser.add_argument(
        "--levels",
        type=int,
        default=3,
        help="triangle-count runs: the mesh and subdivided up to N-1 times (4^(N-1)x)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="avatartex-speed-") as work:  # textures, caches: gigabytes
        result = measure(args, Path(work))
    result["command"] = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print(json.dumps(result, indent=1))
    return 0


def measure(args: argparse.Namespace, work: Path) -> dict:
    """Every timing the arguments ask for, each request writing under ``work``."""
    portrait = args.portrait
    if not portrait:
        from skimage import data

        portrait = str(work / "astronaut.png")
        save_png(portrait, np.asarray(data.astronaut(), np.uint8))
    mesh_path = str(Path(args.mesh).resolve())
    portrait = str(Path(portrait).resolve())

    result: dict = {"mesh": Path(args.mesh).name, "cpus": os.cpu_count()}
    if not args.no_first_request:
        first = {}
        for idle in (0.0, args.idle):
            cache = str(work / f"cache_{idle:g}")  # empty: a head this machine never saw
            first[f"idle_{idle:g}"] = first_request(mesh_path, portrait, str(work / "first"), idle, cache)
        first[f"known_head_idle_{args.idle:g}"] = first_request(
            mesh_path, portrait, str(work / "first"), args.idle, cache
        )
        for idle in (0.0, args.idle):
            cache = str(work / f"cache_prepared_{idle:g}")  # a new head, prepared after hello
            first[f"prepared_idle_{idle:g}"] = first_request(
                mesh_path, portrait, str(work / "first"), idle, cache, prepare=True
            )
        result["first_request"] = first

    generator = Generator()
    started = time.perf_counter()
    cold = timed_generate(generator, mesh_path, portrait, str(work / "out"), 1024)
    result["cold_1024"] = {"wall": round(time.perf_counter() - started, 3), **cold}
    result["by_size"] = {}
    photos = other_photos(portrait, work, args.repeats)
    for size in (int(s) for s in args.sizes.split(",")):
        timed_generate(generator, mesh_path, portrait, str(work / "out"), size)  # the size's UV surface
        out = str(work / "out")
        runs = [timed_generate(generator, mesh_path, photo, out, size) for photo in photos]
        variants = [
            timed_generate(generator, mesh_path, portrait, out, size, seed)
            for seed in range(1, args.repeats + 1)
        ]
        result["by_size"][size] = {"new_photo": summary(runs), "variant": summary(variants)}

    if not args.quick:
        mesh = load_mesh(mesh_path)
        result["by_triangles_1024"] = {}
        level = mesh
        for _ in range(args.levels):
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
    return result


if __name__ == "__main__":
    sys.exit(main())
