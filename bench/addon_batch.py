"""A batch of heads with failures among them, in Blender with the real backend, and Blender's memory
with the extension disabled, enabled and idle, and after the batch.

    .venv/bin/python build.py --output /tmp/a.zip && \
    .venv/bin/python bench/addon_batch.py /tmp/a.zip [--heads 10] [--failures 2] [--size 1024]

The heads alternate between the scanned head of ``../shared/assets`` (the demo head alone when it is
absent) and the project's demo head at several mesh resolutions; every copy of the scanned head is
reshaped a little so that the backend cannot reuse one mesh's analysis: each is a new character, as
in a real batch. ``--failures`` of them get a portrait without a face (a flat grey picture, a grey
gradient), which the backend answers with ``no_face_in_portrait``; the others get the astronaut.

The batch runs as a farm runs it (``bpy.ops.avatartex.batch_retexture()`` in background mode, the
backend started and warmed up, as when the artist opened the tab a while before); each head's time
runs from the batch's first line for it to its first line for the next head. Prints the command line, the
total and per-head times, what the batch reported, and the resident memory (RSS) of this Blender
process and of the backend process. Uses an isolated Blender user folder.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="avatartex-bench-")

import bpy  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ROOT.parent / "shared" / "assets" / "heads" / "lee_perry_smith.glb"
MODULE = "bl_ext.user_default.avatartex"


def rss_mib(pid: int | str = "self") -> float:
    """Resident memory of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class LineClock:
    """Stands in for stdout: passes everything on and notes when each head's first line came."""

    def __init__(self, out) -> None:
        self.out = out
        self.first: dict[int, float] = {}

    def write(self, text: str) -> int:
        for found in re.finditer(r"AvatarTex \[(\d+)/\d+\]", text):
            self.first.setdefault(int(found.group(1)), time.perf_counter())
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()


def demo_head(name: str, resolution: int) -> bpy.types.Object:
    """The project's demo head (``avatartex.demo_head``) as a mesh object with its UV map."""
    sys.path.insert(0, str(ROOT / "backend"))
    try:
        from avatartex.demo_head import make_demo_head
    finally:
        sys.path.remove(str(ROOT / "backend"))
    positions, triangles, uvs, _pins = make_demo_head(resolution)
    mesh = bpy.data.meshes.new(name)
    n = len(triangles)
    mesh.vertices.add(len(positions))
    mesh.vertices.foreach_set("co", positions.astype(np.float32).ravel())
    mesh.loops.add(n * 3)
    mesh.loops.foreach_set("vertex_index", triangles.astype(np.int32).ravel())
    mesh.polygons.add(n)
    mesh.polygons.foreach_set("loop_start", np.arange(0, n * 3, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(n, 3, np.int32))
    mesh.uv_layers.new(name="UVMap").uv.foreach_set("vector", uvs.astype(np.float32).ravel())
    mesh.update()
    mesh.validate()
    obj = bpy.data.objects.new(name, mesh)
    obj.rotation_euler = (np.pi / 2, 0.0, 0.0)  # its frame is Y up, face to +Z: stand it up, face to -Y
    bpy.context.scene.collection.objects.link(obj)
    return obj


def scanned_heads(count: int) -> list[bpy.types.Object]:
    """``count`` copies of the scanned head, each reshaped a little (a different mesh to the backend)."""
    if count == 0 or not SCANNED.is_file():
        return []
    bpy.ops.import_scene.gltf(filepath=str(SCANNED))
    source = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    heads = []
    for i in range(count):
        copy = source.copy()
        copy.data = source.data.copy()
        co = np.empty(len(copy.data.vertices) * 3, np.float32)
        copy.data.vertices.foreach_get("co", co)
        copy.data.vertices.foreach_set("co", co * (1.0 + 0.002 * (i + 1)))
        copy.data.update()
        bpy.context.scene.collection.objects.link(copy)
        heads.append(copy)
    bpy.data.objects.remove(source)
    return heads


def portraits(folder: Path) -> tuple[Path, list[Path]]:
    """The astronaut, and pictures without a face: flat grey, a grey gradient."""
    from PIL import Image
    from skimage import data

    good = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).save(good)
    grey = folder / "grey.png"
    Image.new("RGB", (512, 512), (128, 128, 128)).save(grey)
    gradient = folder / "gradient.png"
    ramp = np.tile(np.linspace(40, 220, 512, dtype=np.uint8)[None, :, None], (512, 1, 3))
    Image.fromarray(ramp).save(gradient)
    return good, [grey, gradient]


def build_heads(count: int, failures: int, good: Path, bad: list[Path]) -> tuple[list, set[str]]:
    """The heads, selected, each with its portrait; and the names of those given a faceless one."""
    scanned = scanned_heads(count // 2)
    heads = []
    for i in range(count):
        obj = scanned.pop() if i % 2 == 0 and scanned else demo_head("demo", 40 + 4 * i)
        obj.name = f"Head_{i + 1:02d}"
        heads.append(obj)
    failing = {heads[i].name for i in np.linspace(2, count - 1, failures, dtype=int)}
    for i, obj in enumerate(heads):
        obj.avatartex.portrait_path = str(bad[i % len(bad)] if obj.name in failing else good)
        obj.select_set(True)
    return heads, failing


def warm_backend(mod) -> None:
    """Start the backend and wait for its warm-up (as when the tab was opened a while before)."""
    start = time.perf_counter()
    mod.backend.hello()
    print(f"backend start (hello): {time.perf_counter() - start:.1f} s")
    log = mod.paths.user_dir("logs") / "backend.log"
    while "warm: pipeline loaded" not in log.read_text(errors="replace"):
        assert time.perf_counter() - start < 300, "the backend's warm-up did not finish"
        time.sleep(0.2)
    print(
        f"backend warmed up: {time.perf_counter() - start:.1f} s after the start (a new user folder: "
        "numba compiles its kernels into it, once after installing)"
    )


def run_batch(heads: list, size: int) -> tuple[float, list[float], str]:
    """Run the batch as a farm does; its total time, each head's time, and how the operator ended."""
    clock = LineClock(sys.stdout)
    sys.stdout = clock
    start = time.perf_counter()
    try:
        bpy.ops.avatartex.batch_retexture()
        outcome = "FINISHED"
    except RuntimeError as exc:  # background mode: a batch with failures reports an error (farms)
        outcome = str(exc).strip()
    finally:
        sys.stdout = clock.out
    total = time.perf_counter() - start
    times = [clock.first.get(i + 2, start + total) - clock.first.get(i + 1, start) for i in range(len(heads))]
    return total, times, outcome


def main() -> None:
    """Run the measurements."""
    parser = argparse.ArgumentParser()
    parser.add_argument("zip")
    parser.add_argument("--heads", type=int, default=10)
    parser.add_argument("--failures", type=int, default=2)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--python", default=sys.executable, help="the backend's Python")
    args = parser.parse_args()
    os.environ["AVATARTEX_BACKEND_PYTHON"] = args.python
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print("load average at the start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))

    # Memory first, before any scene or library is loaded into this process.
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    memory = {"extension not installed": rss_mib()}
    bpy.ops.extensions.package_install_files(filepath=args.zip, repo="user_default", enable_on_install=True)
    mod = sys.modules[MODULE]
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    memory["enabled, idle, backend not started"] = rss_mib()
    warm_backend(mod)
    memory["enabled, idle, backend started and warm"] = rss_mib()

    good, bad = portraits(Path(os.environ["BLENDER_USER_RESOURCES"]))
    heads, failing = build_heads(args.heads, args.failures, good, bad)
    settings = bpy.context.scene.avatartex
    settings.engine, settings.resolution = "classic", args.size
    scene = rss_mib()
    total, times, outcome = run_batch(heads, args.size)
    after = rss_mib()

    print(f"\nbatch of {args.heads} heads at {args.size} px, classic engine: {total:.1f} s in all")
    items = {item.name: item for item in settings.batch}
    for obj, seconds in zip(heads, times, strict=True):
        item = items[obj.name]
        triangles = sum(len(p.vertices) - 2 for p in obj.data.polygons)
        what = f"{item.status}: {item.message[:60]}"
        print(f"  {obj.name} ({triangles:5d} triangles): {seconds:5.1f} s  {what}")
    done = [o.name for o in heads if items[o.name].status == "done"]
    failed = [o.name for o in heads if items[o.name].status == "failed"]
    per_done = [t for o, t in zip(heads, times, strict=True) if o.name in done]
    print(
        f"reported: {len(done)} done, {len(failed)} failed ({', '.join(failed)}); the operator: "
        f"{outcome[:120]}...\nper successful head: median {np.median(per_done):.1f} s, "
        f"max {max(per_done):.1f} s; load average at the end: {os.getloadavg()[0]:.1f}"
    )
    assert set(failed) == failing and len(done) == args.heads - args.failures, (done, failed)

    backend_rss = rss_mib(mod.state.client.process.pid)
    bpy.ops.preferences.addon_disable(module=MODULE)
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    memory["disabled after the batch"] = rss_mib()
    base = memory["extension not installed"]
    print("\nBlender's memory (RSS of this process), empty scene:")
    for label, value in memory.items():
        print(f"  {label:42s} {value:5.0f} MiB ({value - base:+.0f})")
    print(
        f"  the batch's {len(done)} textures and materials: +{after - scene:.0f} MiB over the scene "
        f"({scene:.0f} MiB with its {args.heads} heads)\n"
        f"  the backend process (warm, idle after the batch): {backend_rss:.0f} MiB"
    )


if __name__ == "__main__":
    main()
