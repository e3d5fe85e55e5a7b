"""Errors raised on the Blender side (their codes live in ``protocol.ErrorCode`` with the rest).

They are ``protocol.AvatarTexError`` instances (code, message, hint), so every error the artist
sees has the same shape whether it came from the backend or from the add-on.
"""

from __future__ import annotations

from . import engines, state
from .paths import protocol

BACKEND_UNAVAILABLE = protocol().ErrorCode.BACKEND_UNAVAILABLE
BACKEND_CRASHED = protocol().ErrorCode.BACKEND_CRASHED
NOTHING_SELECTED = protocol().ErrorCode.NOTHING_SELECTED
NOT_A_MESH = protocol().ErrorCode.NOT_A_MESH
ALREADY_RUNNING = protocol().ErrorCode.ALREADY_RUNNING
LINKED_DATA = protocol().ErrorCode.LINKED_DATA

HINT_SET_PYTHON = (
    "Set the backend Python in Edit > Preferences > Add-ons > AvatarTex (or create the "
    "managed environment there), or set AVATARTEX_BACKEND_PYTHON."
)


def backend_error(message: str, hint: str, code: str = BACKEND_UNAVAILABLE) -> Exception:
    """An AvatarTexError about the backend process."""
    return protocol().AvatarTexError(code, message, hint)


def error(code: str, message: str, hint: str = "") -> Exception:
    """Any AvatarTexError raised on the Blender side."""
    return protocol().AvatarTexError(code, message, hint)


def for_artist(error: Exception) -> Exception:
    """``error`` with a hint in Blender's words where the backend's speaks of command-line flags: an
    engine that cannot run gets what to do about it from the neural engine's ``hello`` code."""
    code = getattr(error, "code", "")
    classic = "Set Engine to Classic in the AvatarTex panel"
    if code == protocol().ErrorCode.ENGINE_UNAVAILABLE:
        neural = engines.neural_code()
        if neural and neural != "ok":
            error.hint = f"{classic}, or make the neural engine available: {engines.engine_advice(neural)}."
            if neural in ("no_gpu", "cpu_only"):
                # The backend's reason says the same as the advice, in the command line's words: the
                # panel drew both, some twenty wrapped lines.
                error.message = "The neural engine cannot run: there is no GPU it can use."
        else:  # a backend that sends no codes
            error.hint = (
                f"{classic} (Test Backend in {engines.PREFERENCES} says what the neural engine lacks)."
            )
    elif code == protocol().ErrorCode.MODEL_MISSING and any(
        row.get("name") in error.message or str(row.get("repo_id")) in error.message
        for row in engines.missing_models(state.hello)
    ):
        error.hint = f"{classic}, or {engines.engine_advice('models_missing')}."
    elif code == protocol().ErrorCode.PACKAGES_MISSING:
        advice = engines.engine_advice("packages_missing", engine="classic")
        error.hint = advice[0].upper() + advice[1:] + "."
    return error
