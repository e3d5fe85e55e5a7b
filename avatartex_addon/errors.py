"""Errors raised on the Blender side (their codes live in ``protocol.ErrorCode`` with the rest).

They are ``protocol.AvatarTexError`` instances (code, message, hint), so every error the artist
sees has the same shape whether it came from the backend or from the add-on.
"""

from __future__ import annotations

from .paths import protocol

BACKEND_UNAVAILABLE = protocol().ErrorCode.BACKEND_UNAVAILABLE
BACKEND_CRASHED = protocol().ErrorCode.BACKEND_CRASHED
NOTHING_SELECTED = protocol().ErrorCode.NOTHING_SELECTED
NOT_A_MESH = protocol().ErrorCode.NOT_A_MESH
ALREADY_RUNNING = protocol().ErrorCode.ALREADY_RUNNING

HINT_SET_PYTHON = ("Set the backend Python in Edit > Preferences > Add-ons > AvatarTex (or create the "
                   "managed environment there), or set AVATARTEX_BACKEND_PYTHON.")


def backend_error(message: str, hint: str, code: str = BACKEND_UNAVAILABLE) -> Exception:
    """An AvatarTexError about the backend process."""
    return protocol().AvatarTexError(code, message, hint)


def error(code: str, message: str, hint: str = "") -> Exception:
    """Any AvatarTexError raised on the Blender side."""
    return protocol().AvatarTexError(code, message, hint)
