"""Click to texture in Blender with the backend warmed up when the AvatarTex tab is first shown.

    .venv/bin/python build.py --output /tmp/a.zip && \
    .venv/bin/python bench/addon_warmup.py /tmp/a.zip [--mesh ../shared/assets/heads/lee_perry_smith.glb]
        [--size 1024] [--think 3]

Prints: how long the warm-up takes from the panel's first draw to a backend that answered ``hello``;
click to texture when the artist clicks ``--think`` seconds after opening the tab (the warm-up then
overlaps their picking the portrait); click to texture with a cold backend (no warm-up) for
comparison; and a warm click. The bpy module has no event loop: the timers the panel registers are
run by hand, as Blender's loop would. Uses an isolated Blender user folder.
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

ROOT = Path(__file__).resolve().parents[1]


class _Layout:
    def __getattr__(self, name):
        return lambda *args, **kwargs: _Layout()


def _draw_panel(mod) -> None:
    mod.panels.AVATARTEX_PT_main.draw(type("P", (), {"layout": _Layout()})(), bpy.context)


def _click(head) -> float:
    start = time.perf_counter()
    assert bpy.ops.avatartex.generate() == {"FINISHED"}, head.avatartex.status
    return time.perf_counter() - start


def main() -> None:
    """Run the measurements."""
    parser = argparse.ArgumentParser()
    parser.add_argument("zip")
    parser.add_argument(
        "--mesh", default=str(ROOT.parent / "shared" / "assets" / "heads" / "lee_perry_smith.glb")
    )
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument(
        "--think", type=float, default=3.0, help="seconds between opening the tab and clicking"
    )
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    os.environ["AVATARTEX_BACKEND_PYTHON"] = args.python

    from PIL import Image
    from skimage import data

    portrait = Path(os.environ["BLENDER_USER_RESOURCES"]) / "astronaut.png"
    Image.fromarray(data.astronaut()).save(portrait)
    bpy.ops.extensions.package_install_files(filepath=args.zip, repo="user_default", enable_on_install=True)
    mod = sys.modules["bl_ext.user_default.avatartex"]
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
    bpy.ops.import_scene.gltf(filepath=args.mesh)
    head = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    bpy.context.view_layer.objects.active = head
    head.avatartex.portrait_path = str(portrait)
    settings = bpy.context.scene.avatartex
    settings.engine, settings.resolution = "classic", args.size

    # Cold: no panel shown, the click starts the backend.
    mod.backend.shutdown()
    mod.state.warm_tried = True  # as if the panel had not warmed it
    print(f"click to texture, cold backend: {_click(head):.1f} s")

    # Warm-up: the panel is drawn, its timer starts the backend; the artist clicks --think s later.
    mod.backend.shutdown()
    opened = time.perf_counter()
    _draw_panel(mod)
    bpy.app.timers.unregister(mod.backend.warm_up)
    mod.backend.warm_up()
    client = mod.state.client
    ready = None
    while time.perf_counter() - opened < args.think:
        if (
            ready is None
            and client.hello is None
            and client._hello_request is not None
            and client._hello_request.done
        ):
            message = client._hello_request.get(timeout=0)
            client.finish_start(message["result"])
            ready = time.perf_counter() - opened
        time.sleep(0.02)
    print(f"warm-up (panel shown -> hello answered): {ready:.1f} s" if ready else "warm-up: not ready yet")
    print(f"click to texture {args.think:.0f} s after the tab opened: {_click(head):.1f} s")
    settings.seed = 1
    print(f"click to texture, warm backend: {_click(head):.1f} s")
    mod.backend.shutdown()


if __name__ == "__main__":
    main()
