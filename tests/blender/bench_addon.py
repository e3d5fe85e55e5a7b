"""Figures of the add-on with the real backend (not a test; run by hand):

    cd <repo> && python build.py --output /tmp/avatartex-bench.zip && \
    PYTHONPATH=backend python tests/blender/bench_addon.py /tmp/avatartex-bench.zip [--size 1024] [--batch 10]

Prints: memory of Blender (the bpy module) idle before/after enabling the extension; time from
``bpy.ops.avatartex.generate()`` to the texture in the material on the scanned head with a cold and a
warm backend; batch throughput for N objects. Uses an isolated Blender user folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="avatartex-bench-")

import bpy  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HEAD = ROOT.parent / "shared" / "assets" / "heads" / "lee_perry_smith.glb"


def rss_mib() -> float:
    """Resident memory of this process in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    """Run the measurements."""
    parser = argparse.ArgumentParser()
    parser.add_argument("zip")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    os.environ["AVATARTEX_BACKEND_PYTHON"] = args.python

    from PIL import Image
    from skimage import data

    portrait = Path(os.environ["BLENDER_USER_RESOURCES"]) / "astronaut.png"
    Image.fromarray(data.astronaut()).save(portrait)

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    before = rss_mib()
    bpy.ops.extensions.package_install_files(filepath=args.zip, repo="user_default", enable_on_install=True)
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    after = rss_mib()
    print(
        f"memory idle: {before:.0f} MiB before enabling, {after:.0f} MiB after "
        f"(+{after - before:.1f} MiB); backend not started"
    )

    bpy.ops.import_scene.gltf(filepath=str(HEAD))
    head = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    bpy.context.view_layer.objects.active = head
    head.avatartex.portrait_path = str(portrait)
    settings = bpy.context.scene.avatartex
    settings.engine, settings.resolution = "classic", args.size
    for label, seed in (("cold backend", 0), ("warm backend, same mesh", 0), ("warm backend, seed 1", 1)):
        settings.seed = seed
        start = time.perf_counter()
        assert bpy.ops.avatartex.generate() == {"FINISHED"}
        print(f"generate {args.size}px {label}: {time.perf_counter() - start:.1f} s")

    objs = []
    for i in range(args.batch):
        copy = head.copy()
        copy.data = head.data.copy()
        # A slightly different shape per object, so the backend cannot reuse one mesh analysis:
        # each is a new character, as in a real batch.
        co = np.empty(len(copy.data.vertices) * 3, np.float32)
        copy.data.vertices.foreach_get("co", co)
        copy.data.vertices.foreach_set("co", co * (1.0 + 0.002 * (i + 1)))
        copy.data.update()
        bpy.context.scene.collection.objects.link(copy)
        objs.append(copy)
    for obj in bpy.context.scene.objects:
        obj.select_set(obj in objs)
    start = time.perf_counter()
    bpy.ops.avatartex.batch_retexture()
    elapsed = time.perf_counter() - start
    done = sum(item.status == "done" for item in settings.batch)
    print(
        f"batch of {args.batch} at {args.size}px: {elapsed:.1f} s, {done} done, "
        f"{elapsed / args.batch:.1f} s per object"
    )
    mod = sys.modules["bl_ext.user_default.avatartex"]
    mod.backend.shutdown()


if __name__ == "__main__":
    main()
