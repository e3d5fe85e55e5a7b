"""Which backend to run and the one shared client: started on demand, reused, shut down at exit."""

from __future__ import annotations

import atexit
import os
from pathlib import Path

import bpy

from . import errors, prepare, state
from .client import BackendClient, BackendConfig
from .paths import ADDON_PACKAGE, backend_root, user_dir

ENV_PYTHON = "AVATARTEX_BACKEND_PYTHON"
"""Environment variable naming the backend interpreter (render farms, tests)."""


def preferences():
    """This add-on's preferences, or None when the add-on is not enabled under ``ADDON_PACKAGE``."""
    addon = bpy.context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


def managed_python() -> Path:
    """Interpreter of the managed environment in use (which may not exist yet)."""
    from . import environment

    return environment.env_python(environment.active_env())


def resolve_python() -> str:
    """The backend Python: the preference's path, else $AVATARTEX_BACKEND_PYTHON, else the managed env."""
    prefs = preferences()
    if prefs is not None and prefs.backend_mode == "CUSTOM" and prefs.python_path:
        return bpy.path.abspath(prefs.python_path)
    if os.environ.get(ENV_PYTHON):
        return os.environ[ENV_PYTHON]
    managed = managed_python()
    if managed.exists():
        return str(managed)
    raise errors.backend_error(
        "No backend Python is set and the managed environment does not exist.", errors.HINT_SET_PYTHON
    )


def backend_config(python: str | None = None) -> BackendConfig:
    """How to start the backend with the current preferences (``python``: this interpreter instead)."""
    prefs = preferences()
    env = cache_env()
    if prefs is not None:
        if prefs.model_cache:
            cache = bpy.path.abspath(prefs.model_cache)
            env["AVATARTEX_MODEL_CACHE"] = cache
            env["HF_HUB_CACHE"] = cache
        # A render farm sets these in the environment (a node's GPU, cuda:1); the preferences
        # replaced them with their defaults, so `blender -b` could choose no device. A preference
        # set away from its default still wins.
        if prefs.device != "auto" or not os.environ.get("AVATARTEX_DEVICE"):
            env["AVATARTEX_DEVICE"] = prefs.device
        if prefs.low_vram or not os.environ.get("AVATARTEX_LOW_VRAM"):
            env["AVATARTEX_LOW_VRAM"] = "1" if prefs.low_vram else "0"
    return BackendConfig(
        python=resolve_python() if python is None else python,
        backend_root=str(backend_root()),
        log_path=str(user_dir("logs") / "backend.log"),
        env=env,
        work_dir=str(user_dir("work")),
    )


def cache_env() -> dict[str, str]:
    """Environment that sends every cache the backend writes into the extension's user folder.

    The add-on's own folder may be read-only and is replaced on every upgrade: Python's bytecode
    (``PYTHONPYCACHEPREFIX``) and numba's compiled kernels (``NUMBA_CACHE_DIR``) would otherwise land
    in ``backend/avatartex/__pycache__`` there, and each upgrade would make the next start cold. The
    TensorFlow Lite / glog chatter of mediapipe is turned down at its source (what still comes is
    filtered out of the log by the client). ``AVATARTEX_CACHE_DIR`` keeps each mesh's landmarks
    across backend restarts (the first request on a head textured before skips their search).
    """
    return {
        "AVATARTEX_CACHE_DIR": str(user_dir("cache")),
        "PYTHONPYCACHEPREFIX": str(user_dir("cache/pycache")),
        "NUMBA_CACHE_DIR": str(user_dir("cache/numba")),
        "MPLCONFIGDIR": str(user_dir("cache/matplotlib")),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "GLOG_minloglevel": "2",
        "PYTHONWARNINGS": "ignore::UserWarning:google.protobuf.symbol_database",
    }


def get_client() -> BackendClient:
    """The shared client for the current preferences (a changed preference means a new process)."""
    config = backend_config()
    if state.client is not None and state.client.config.key() != config.key():
        state.client.stop()
        state.client = None
    if state.client is None:
        state.client = BackendClient(config)
    return state.client


def warm_up() -> None:
    """Start the backend in the background so that the first click finds it warm (panel first shown).

    Does nothing while a job runs, when the backend is already up or starting, after a failed try
    (the click then reports why), or when no backend Python is set. Never blocks: the ``hello``
    answer is collected by a timer. Runs as a one-shot ``bpy.app.timers`` function.
    """
    if state.warm_tried or (state.job is not None and not state.job.finished):
        return
    state.warm_tried = True
    try:
        client = get_client()
        pending = client.start_async()
    except Exception:  # noqa: BLE001 - the artist sees the reason when they press Generate
        return
    if pending is not None:
        bpy.app.timers.register(lambda: _collect_warm_hello(client, pending), first_interval=0.2)


def _collect_warm_hello(client: BackendClient, pending) -> float | None:
    """Timer: take the warm-up's ``hello`` answer unless a job has taken it over."""
    if (
        state.client is not client
        or client.hello is not None
        or (state.job is not None and not state.job.finished)
    ):
        return None
    if not pending.done:
        return 0.2 if client.alive() or not pending.messages.empty() else None
    message = pending.get(timeout=0)
    if message is not None and "result" in message:
        try:
            state.hello = client.finish_start(message["result"])
        except Exception:  # noqa: BLE001 - a protocol mismatch is reported on the next click
            pass
    return None


def hello() -> dict:
    """Start the backend if needed and return its ``hello`` answer (blocking)."""
    answer = get_client().start()
    state.hello = answer
    return answer


def refresh_hello() -> None:
    """Ask a running backend again what it offers (its engines changed: models were downloaded); with
    none running, forget the old answer (the next start asks anew)."""
    from .client import HELLO_TIMEOUT_S

    client = state.client
    if client is not None and client.alive() and client.hello is not None:
        try:
            client.hello = state.hello = client.call("hello", {}, HELLO_TIMEOUT_S)
            return
        except Exception:  # noqa: BLE001 - a dead backend restarts and says hello on the next request
            pass
    state.hello = None


def shutdown() -> None:
    """Stop the backend process (unregister, quit, preference change)."""
    if state.client is not None:
        try:
            state.client.stop()
        finally:
            state.client = None
    state.warm_tried = False
    prepare.reset()  # a new process knows no heads


atexit.register(shutdown)
