"""Which backend to run and the one shared client: started on demand, reused, shut down at exit."""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

import bpy

from . import errors, state
from .client import BackendClient, BackendConfig
from .paths import ADDON_PACKAGE, backend_root, user_dir

ENV_PYTHON = "AVATARTEX_BACKEND_PYTHON"
"""Environment variable naming the backend interpreter (render farms, tests)."""


def preferences():
    """This add-on's preferences, or None when the add-on is not enabled under ``ADDON_PACKAGE``."""
    addon = bpy.context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


def managed_python() -> Path:
    """Interpreter of the managed environment (which may not exist yet)."""
    env_dir = Path(user_dir("env"))
    return env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def resolve_python() -> str:
    """The backend Python: the preference's path, else $AVATARTEX_BACKEND_PYTHON, else the managed env."""
    prefs = preferences()
    if prefs is not None and prefs.backend_mode == 'CUSTOM' and prefs.python_path:
        return bpy.path.abspath(prefs.python_path)
    if os.environ.get(ENV_PYTHON):
        return os.environ[ENV_PYTHON]
    managed = managed_python()
    if managed.exists():
        return str(managed)
    raise errors.backend_error("No backend Python is set and the managed environment does not exist.",
                               errors.HINT_SET_PYTHON)


def backend_config() -> BackendConfig:
    """How to start the backend with the current preferences."""
    prefs = preferences()
    env: dict[str, str] = {}
    if prefs is not None:
        if prefs.model_cache:
            cache = bpy.path.abspath(prefs.model_cache)
            env["AVATARTEX_MODEL_CACHE"] = cache
            env["HF_HUB_CACHE"] = cache
        env["AVATARTEX_DEVICE"] = prefs.device
        env["AVATARTEX_LOW_VRAM"] = "1" if prefs.low_vram else "0"
    return BackendConfig(python=resolve_python(), backend_root=str(backend_root()),
                         log_path=str(user_dir("logs") / "backend.log"), env=env)


def get_client() -> BackendClient:
    """The shared client for the current preferences (a changed preference means a new process)."""
    config = backend_config()
    if state.client is not None and state.client.config.key() != config.key():
        state.client.stop()
        state.client = None
    if state.client is None:
        state.client = BackendClient(config)
    return state.client


def hello() -> dict:
    """Start the backend if needed and return its ``hello`` answer (blocking)."""
    answer = get_client().start()
    state.hello = answer
    return answer


def shutdown() -> None:
    """Stop the backend process (unregister, quit, preference change)."""
    if state.client is not None:
        try:
            state.client.stop()
        finally:
            state.client = None


atexit.register(shutdown)
