"""Getting the panel's head ready before the artist clicks: the backend's ``prepare`` request.

On a head the backend has never seen, most of the first click is the search for the face on the
mesh (tens of renders through the detector, about 3 s on a 2-core machine). The panel notes its
target object at every draw (``note_target``); once the target has stayed the same for
``DEBOUNCE_S`` and the backend is running, the head is captured as ``generate`` would capture it and
sent in a ``prepare`` request, so the search runs while the artist picks a photo. Each capture's
content is sent once per backend process; a new target's prepare replaces the previous one (the
backend cancels it), and a generate on another object cancels it too.

A prepare is a hint and never the artist's problem: when it fails (no face on the mesh, no UV map)
nothing is shown, and the generate, which meets the same problem, reports it in full. All of this
runs on Blender's main thread, from ``bpy.app.timers``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import bpy

from . import capture, state
from .paths import protocol, safe_name, user_dir

DEBOUNCE_S = 0.5
"""How long the panel's target must stay the same before its head is prepared: an artist clicking
through a scene's objects prepares only the one they stop at."""
POLL_S = 0.25
"""How often the timers look again (the backend still starting, a prepare's answer)."""
STARTING_PATIENCE_S = 120.0
"""How long a prepare waits for a backend that is still starting (``client.HELLO_TIMEOUT_S``)."""


@dataclass
class Target:
    """What the panel shows, as far as the capture depends on it."""

    object_name: str
    uv_map: str
    facing: str
    size: int


@dataclass
class Sent:
    """A prepare in flight: its request, the object it is for, and its capture file."""

    pending: object
    object_name: str
    capture: Path
    key: tuple
    answer: dict | None = None
    """The backend's result once it came (``ready``, what was found, or the ``problem``)."""


def note_target(obj: bpy.types.Object | None, scene: bpy.types.Scene) -> None:
    """The panel's target is ``obj`` (or nothing): when that is a new head, schedule its prepare.

    Called at every panel draw, so it only compares a few names; the capture and the request wait
    for the target to settle (``DEBOUNCE_S``), in a timer, since drawing must not change data.
    """
    if obj is None or obj.type != "MESH":
        state.prepare_target = None
        return
    settings = scene.avatartex
    target = Target(obj.name, settings.uv_map, settings.facing, int(settings.resolution))
    if target == state.prepare_target:
        return
    state.prepare_target = target
    state.prepare_since = time.monotonic()
    if not bpy.app.timers.is_registered(_send_when_settled):
        bpy.app.timers.register(_send_when_settled, first_interval=DEBOUNCE_S)


def _send_when_settled() -> float | None:
    """Timer: once the target has settled and the backend runs, capture and send its prepare."""
    target = state.prepare_target
    if target is None:
        return None
    waited = time.monotonic() - state.prepare_since
    if waited < DEBOUNCE_S:
        return DEBOUNCE_S - waited
    client = state.client
    if client is None or not client.alive():
        return None  # the backend is not running: the click starts it and does the work itself
    if client.hello is None:  # still starting (the panel's warm-up): its answer comes soon
        return POLL_S if waited < STARTING_PATIENCE_S else None
    if state.job is not None and not state.job.finished:
        return None  # a generate is running: it finds the heads itself
    try:
        send(target)
    except Exception:  # noqa: BLE001 - a hint only: the generate reports whatever is wrong
        pass
    return None


def send(target: Target) -> Sent | None:
    """Capture ``target``'s head and send its ``prepare`` (None: nothing to send, because this
    backend does not know the method or already prepared this content)."""
    client = state.client
    if "prepare" not in (client.hello or {}).get("methods", ()):
        return None  # a backend from before the request
    obj = bpy.data.objects.get(target.object_name)
    if obj is None or obj.mode == "EDIT":
        return None  # gone, or being edited: its content is not settled
    stamp = f"prepare_{safe_name(obj.name)}_{int(time.time() * 1000)}"
    path = user_dir("captures") / f"{stamp}.npz"
    with capture.at_rest([obj]):  # as generate captures it
        capture.capture_object(obj, capture.evaluated_depsgraph(), target.uv_map, path, target.facing)
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    key = (client.process.pid, digest, target.size)
    if key in state.prepared:
        path.unlink(missing_ok=True)
        return None
    params = protocol().PrepareParams(
        mesh=str(path),
        size=target.size,
        facing=target.facing.lower() if target.facing != "AUTO" else "",
    )
    try:
        pending = client.send("prepare", params.to_dict())
    except Exception:
        path.unlink(missing_ok=True)  # the backend died meanwhile: nothing will read the capture
        raise
    sent = Sent(pending, obj.name, path, key)
    state.prepared.add(key)
    state.prepare_sent = sent
    bpy.app.timers.register(lambda: _collect(sent), first_interval=POLL_S)
    return sent


def _collect(sent: Sent) -> float | None:
    """Timer: the prepare's answer, then its capture file removed. A cancelled or refused one
    (the backend busy with a generate) may be sent again; one that found a problem is not."""
    if not sent.pending.done:
        client = state.client
        return POLL_S if client is not None and client.alive() else _forget(sent, retry=True)
    message = sent.pending.get(timeout=0)
    while message is not None and "result" not in message and "error" not in message:
        message = sent.pending.get(timeout=0)  # progress events, if a backend sends any
    sent.answer = (message or {}).get("result")
    return _forget(sent, retry=sent.answer is None)


def _forget(sent: Sent, retry: bool) -> None:
    """The prepare ``sent`` is over: its capture removed; ``retry``: its content may be sent again."""
    sent.capture.unlink(missing_ok=True)
    if retry:
        state.prepared.discard(sent.key)
    if state.prepare_sent is sent:
        state.prepare_sent = None
    return None


def before_generate(object_names: list[str]) -> None:
    """A generate is about to start: cancel a prepare still running for an object it does not
    texture (the backend would finish it before the generate), keep one for an object it does."""
    sent = state.prepare_sent
    client = state.client
    if sent is None or client is None or sent.pending.done:
        return
    if sent.object_name not in object_names:
        client.cancel(sent.pending)


def reset() -> None:
    """Forget what was prepared (the backend process stopped: a new one knows no heads)."""
    state.prepared.clear()
    state.prepare_sent = None
    state.prepare_target = None
    if bpy.app.timers.is_registered(_send_when_settled):
        bpy.app.timers.unregister(_send_when_settled)
