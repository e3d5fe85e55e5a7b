"""Errors of the Blender side that the backend's ``ErrorCode`` table has no code for.

They are still ``protocol.AvatarTexError`` instances (code, message, hint), so every error the
artist sees has the same shape whether it came from the backend or from the add-on.
"""

from __future__ import annotations

from .paths import protocol

BACKEND_UNAVAILABLE = "backend_unavailable"
"""The backend interpreter is not set, missing, or fails before answering ``hello``."""
BACKEND_CRASHED = "backend_crashed"
"""The backend process died while a request was running."""
NOTHING_SELECTED = "nothing_selected"
NOT_A_MESH = "not_a_mesh"
ALREADY_RUNNING = "already_running"

HINT_SET_PYTHON = ("Set the backend Python in Edit > Preferences > Add-ons > AvatarTex (or create the "
                   "managed environment there), or set AVATARTEX_BACKEND_PYTHON.")


def backend_error(message: str, hint: str, code: str = BACKEND_UNAVAILABLE) -> Exception:
    """An AvatarTexError about the backend process."""
    return protocol().AvatarTexError(code, message, hint)


def error(code: str, message: str, hint: str = "") -> Exception:
    """Any AvatarTexError raised on the Blender side."""
    return protocol().AvatarTexError(code, message, hint)
