"""The panel's head made ready before the click (``avatartex_addon/prepare.py``, the backend's
``prepare`` request): sent once the target settles and the backend runs, once per mesh content, never
shown to the artist when it fails, cancelled when a generate textures another object."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from blender_support import add_demo_head, add_sphere, bpy


class _Layout:
    """Accepts any layout call a panel makes (the bpy module draws nothing)."""

    enabled = True
    scale_y = 1.0

    def __getattr__(self, name):
        return lambda *args, **kwargs: _Layout()


def _draw_panel(addon) -> None:
    addon.panels.AVATARTEX_PT_main.draw(type("P", (), {"layout": _Layout()})(), bpy.context)


def _settle(addon) -> float | None:
    """The debounce timer, run by hand once the target has been still for ``DEBOUNCE_S``."""
    addon.state.prepare_since -= addon.prepare.DEBOUNCE_S
    return addon.prepare._send_when_settled()


def _answer(addon, sent, timeout: float = 120.0) -> dict:
    """Wait for ``sent``'s answer and run the collecting timer on it."""
    deadline = time.monotonic() + timeout
    while not sent.pending.done and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sent.pending.done, "the prepare was not answered"
    addon.prepare._collect(sent)
    return sent.answer


def _prepares(fake_backend) -> list[dict]:
    path = Path(str(fake_backend.control) + ".prepares.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_panels_head_is_prepared_once_per_content_when_it_settles(addon, fake_backend):
    addon.backend.hello()
    head = add_sphere()
    _draw_panel(addon)
    target = addon.state.prepare_target
    assert target.object_name == head.name and target.size == bpy.context.scene.avatartex.resolution
    assert bpy.app.timers.is_registered(addon.prepare._send_when_settled)
    # Not before the target has been still for the debounce: an artist clicking through objects.
    assert 0 < addon.prepare._send_when_settled() <= addon.prepare.DEBOUNCE_S
    assert _prepares(fake_backend) == []
    assert _settle(addon) is None
    sent = addon.state.prepare_sent
    assert _answer(addon, sent) == {"ready": True, "landmarks": "detected"}
    assert not Path(sent.capture).exists()  # the capture is removed once answered
    (request,) = _prepares(fake_backend)
    assert request["size"] == target.size and request["facing"] == target.facing.lower()
    head.data.calc_loop_triangles()
    assert request["triangles"] == len(head.data.loop_triangles)  # this head's capture

    # The same content again (another draw, a click back on it): nothing is sent.
    _draw_panel(addon)
    assert addon.prepare.send(addon.state.prepare_target) is None
    # Edited: another head for the backend.
    head.data.vertices[0].co.x += 0.1
    edited = addon.prepare.send(addon.state.prepare_target)
    assert edited is not None and _answer(addon, edited)["ready"] is True
    assert len(_prepares(fake_backend)) == 2
    # Not a mesh: no target.
    bpy.ops.object.camera_add()
    _draw_panel(addon)
    assert addon.state.prepare_target is None


def test_nothing_is_prepared_without_a_running_backend(addon, fake_backend):
    addon.backend.shutdown()
    add_sphere()
    _draw_panel(addon)
    assert _settle(addon) is None
    assert addon.state.client is None and addon.state.prepare_sent is None


def test_a_prepare_that_finds_no_face_says_nothing_to_the_artist(addon, fake_backend):
    fake_backend("ok", prepare="no_face")
    addon.backend.hello()
    head = add_sphere()
    scene = bpy.context.scene
    status = (scene.avatartex.status, head.avatartex.status)
    _draw_panel(addon)
    _settle(addon)
    sent = addon.state.prepare_sent
    answer = _answer(addon, sent)
    assert answer["ready"] is False and answer["problem"]["code"] == "no_face_on_mesh"
    assert (scene.avatartex.status, head.avatartex.status) == status
    assert sent.key in addon.state.prepared  # not sent again: it would find the same


def test_a_generate_on_another_object_cancels_its_prepare(addon, fake_backend, portrait):
    fake_backend("ok", prepare_delay=60.0)
    addon.backend.hello()
    add_sphere("Other")
    _draw_panel(addon)
    _settle(addon)
    sent = addon.state.prepare_sent
    add_sphere("Head", portrait=portrait)
    started = time.monotonic()
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert time.monotonic() - started < 30  # not after the 60 s prepare
    assert _answer(addon, sent, timeout=10) is None  # cancelled
    assert sent.key not in addon.state.prepared  # so it is sent again when the artist comes back


def test_a_prepared_head_generates_on_the_real_backend(addon, real_backend, portrait):
    """The real backend finds the demo head's face in the prepare, and the generate then succeeds."""
    addon.backend.shutdown()
    addon.backend.hello()
    head = add_demo_head(portrait=portrait)
    head.rotation_euler = (math.pi / 2, 0.0, 0.0)  # made Y-up: stood up, facing -Y as in Blender
    bpy.context.scene.avatartex.resolution = 512
    _draw_panel(addon)
    _settle(addon)
    sent = addon.state.prepare_sent
    if sent is None:
        pytest.fail("no prepare was sent to the real backend")
    answer = _answer(addon, sent)
    assert answer["ready"] is True, answer
    assert answer["landmarks"] == "detected" and answer["known"] is False
    assert answer["size"] == 512 and answer["timings"]["landmarks"] > 0
    assert bpy.ops.avatartex.generate() == {"FINISHED"}
    assert head.active_material.node_tree.nodes.get("AvatarTex Texture") is not None
