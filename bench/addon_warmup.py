"""Click to texture in Blender with the backend warmed up when the AvatarTex tab is first shown.

    .venv/bin/python build.py --output /tmp/a.zip && \
    .venv/bin/python bench/addon_warmup.py /tmp/a.zip [--mesh ../shared/assets/heads/lee_perry_smith.glb]
        [--size 1024] [--think 3]

Prints, each on a head the backend has never seen (its landmark store emptied first): click to
texture with a cold backend (no panel shown); with the panel shown and the click ``--think`` seconds
later, without the head's ``prepare`` (the backend only warmed up) and with it (the panel's target
prepared once it settled: ``avatartex_addon/prepare.py``), and when the warm-up's ``hello`` and the
prepare's answer came; then a warm click. The bpy module has no event loop: the timers the panel
registers are run by hand, as Blender's loop would. Uses an isolated Blender user folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def _forget_heads(mod) -> None:
    """A new backend that has never seen the head: no process, and no landmarks kept on disk."""
    mod.backend.shutdown()
    shutil.rmtree(mod.paths.user_dir("cache") / "heads", ignore_errors=True)


def _open_tab_and_think(mod, seconds: float, prepare: bool) -> dict[str, float]:
    """The tab is shown with the head active, then ``seconds`` pass (the artist picks a photo)
    while Blender's loop runs the panel's timers: the warm-up, and with ``prepare`` the head's
    prepare once its target settled. Returns when ``hello`` and the prepare's answer came."""
    opened = time.perf_counter()
    _draw_panel(mod)
    bpy.app.timers.unregister(mod.backend.warm_up)
    mod.backend.warm_up()
    client = mod.state.client
    found: dict[str, float] = {}
    sent = None
    next_prepare = opened + mod.prepare.DEBOUNCE_S
    while time.perf_counter() - opened < seconds:
        now = time.perf_counter()
        pending = client._hello_request
        if client.hello is None and pending is not None and pending.done:
            client.finish_start(pending.get(timeout=0)["result"])
            found["hello_s"] = round(now - opened, 2)
        if prepare and sent is None and now >= next_prepare:
            again = mod.prepare._send_when_settled()
            sent = mod.state.prepare_sent
            next_prepare = now + (again or 0.0)
            if sent is None and again is None:
                break  # nothing to prepare
        if sent is not None and sent.answer is None and sent.pending.done:
            mod.prepare._collect(sent)
            found["prepared_s"] = round(now - opened, 2)
            found["prepare_timings"] = (sent.answer or {}).get("timings")
        time.sleep(0.02)
    if not prepare:
        mod.prepare.reset()  # as before the prepare request: only the backend warmed up
    return found


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
    _forget_heads(mod)
    mod.state.warm_tried = True  # as if the panel had not warmed it
    print(f"click to texture, cold backend, new head: {_click(head):.1f} s")

    for prepare in (False, True):
        _forget_heads(mod)
        found = _open_tab_and_think(mod, args.think, prepare)
        what = "head prepared" if prepare else "backend warmed up only"
        print(f"tab opened, {what}: {found}")
        seconds = _click(head)
        print(f"click to texture {args.think:g} s after the tab opened, new head, {what}: {seconds:.1f} s")
    settings.seed = 1
    print(f"click to texture, warm backend: {_click(head):.1f} s")
    mod.backend.shutdown()


if __name__ == "__main__":
    main()
