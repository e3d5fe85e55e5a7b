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


def engine_reason(reason: str) -> str:
    """Why an engine cannot run, said for an artist in Blender rather than for a terminal."""
    text = reason.lower()
    if "not installed" in text:
        return (
            "its packages are not in the backend environment (tick Neural Engine Packages in these "
            "preferences and press Create Environment)"
        )
    if "nvidia" in text or "no gpu" in text or "no cuda" in text:
        return (
            "this computer has no GPU it can use (set Device to CPU in these preferences to run it on "
            "the processor: minutes per texture)"
        )
    if "not downloaded" in text:
        return (
            "its models are not downloaded yet (about 5 GB, once, with a network: see the add-on's "
            "README, 'models download')"
        )
    return reason or "the backend gave no reason"


def for_artist(error: Exception) -> Exception:
    """``error`` with a hint in Blender's words where the backend's speaks of command-line flags."""
    code = getattr(error, "code", "")
    if code in (protocol().ErrorCode.ENGINE_UNAVAILABLE, protocol().ErrorCode.MODEL_MISSING):
        error.hint = (
            f"Set Engine to Classic in the AvatarTex panel, or make the neural engine available: "
            f"{engine_reason(error.message)}."
        )
    return error
