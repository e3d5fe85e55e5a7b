"""The backend's engines said in Blender's words: what ``hello`` reports, and what to do in Blender
about an engine that cannot run.

Each engine of a ``hello`` answer carries a machine-readable ``code`` (``ok``, or why not: the
backend's ``engines.neural.StatusCode``) beside the backend's own ``reason``, which speaks to a
person at a terminal. The add-on acts on the code; a backend too old to send codes (or a code newer
than this add-on) is shown with its reason as it is.
"""

from __future__ import annotations

from typing import Any

from . import state

PREFERENCES = "Edit › Preferences › Add-ons › AvatarTex"
"""Where the artist finds what the advice below refers to."""


def missing_models(hello: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The rows of ``hello["models"]`` the neural engine needs (the registry's defaults) that are not
    downloaded yet; empty when all are there or when the backend cannot list models (no neural packages)."""
    rows = (hello or {}).get("models") or []
    return [r for r in rows if isinstance(r, dict) and r.get("default") and not r.get("cached")]


def size_text(gb: float) -> str:
    """A download size for people: ``8.9 GB``, ``250 MB``."""
    return f"{gb:.1f} GB" if gb >= 0.95 else f"{gb * 1000:.0f} MB"


def download_size_gb(rows: list[dict[str, Any]]) -> float:
    """The approximate download size of model rows (``size_gb`` of each)."""
    return sum(float(r.get("size_gb") or 0.0) for r in rows)


def _custom_python() -> bool:
    from . import backend

    prefs = backend.preferences()
    return prefs is not None and prefs.backend_mode == "CUSTOM"


def install_packages_hint() -> str:
    """How the artist gets the neural engine's packages, for the backend Python in use."""
    if _custom_python():
        return (
            f"install backend/requirements-neural.txt into the backend Python set in {PREFERENCES}, or "
            "choose Managed Environment, tick Neural Engine Packages and press Create Environment"
        )
    return f"in {PREFERENCES}: tick Neural Engine Packages and press Create Environment"


def engine_advice(
    code: str, reason: str = "", hello: dict[str, Any] | None = None, engine: str = "neural"
) -> str:
    """Why ``engine`` cannot run and what to do about it in Blender, from its ``hello`` ``code``;
    ``hello`` (default: the last answer) gives the size of the models to download."""
    if code == "packages_missing" and engine == "classic":
        return (
            f"the backend Python lacks the packages AvatarTex needs: in {PREFERENCES} choose Managed "
            "Environment and press Create Environment, or install backend/requirements.txt into the "
            "Python set there"
        )
    if code == "packages_missing":
        return f"its packages are not installed ({install_packages_hint()})"
    if code == "models_missing":
        gb = download_size_gb(missing_models(hello if hello is not None else state.hello))
        size = f", {size_text(gb)} once" if gb else ""
        return f"its models are not downloaded yet (press Download Models in {PREFERENCES}{size})"
    if code == "no_gpu":
        return (
            f"this computer has no GPU it can use (to run it on the processor, minutes per texture, set "
            f"Device to CPU in {PREFERENCES} and the engine to Neural: Auto stays classic)"
        )
    if code == "cpu_only":
        return (
            "the backend's PyTorch sees no NVIDIA or Apple GPU: update the graphics driver, or create "
            f"the environment again with Neural Engine Packages ticked; or set Device to CPU in "
            f"{PREFERENCES} (minutes per texture)"
        )
    if code == "device_unavailable":
        return f"the Device chosen in {PREFERENCES} is not available on this computer (set it to Auto)"
    return reason or "the backend gave no reason"


def engine_lines(answer: dict[str, Any]) -> list[str]:
    """One line per engine: available, or not and why, in Blender's words."""
    engines = answer.get("engines") or {}
    if isinstance(engines, list):  # older backends list only the engines that can run
        names = [str(n) for n in answer.get("engine_names", []) if n != "auto"] or [str(n) for n in engines]
        engines = {name: {"available": name in engines, "reason": ""} for name in names}
    lines = []
    for name, info in engines.items():
        info = info if isinstance(info, dict) else {"available": bool(info)}
        if info.get("available"):
            lines.append(f"{name.title()} engine: available")
        else:
            why = engine_advice(str(info.get("code", "")), str(info.get("reason", "")), answer, name)
            lines.append(f"{name.title()} engine: not available, {why}")
    return lines


def hello_summary(answer: dict[str, Any]) -> str:
    """What a ``hello`` answer says, as "; "-separated parts: versions, devices, each engine, styles."""
    styles = ", ".join(s.get("name", "?") for s in answer.get("styles", []) if isinstance(s, dict))
    return "; ".join(
        [
            f"Backend {answer.get('backend_version', '?')} (protocol {answer.get('protocol')})",
            f"devices: {', '.join(map(str, answer.get('devices', []))) or 'none'}",
            *engine_lines(answer),
            f"styles: {styles}",
        ]
    )


def neural_code(hello: dict[str, Any] | None = None) -> str:
    """The neural engine's ``code`` in ``hello`` (default: the last answer); '' when unknown."""
    engines = (hello if hello is not None else state.hello or {}).get("engines")
    info = engines.get("neural") if isinstance(engines, dict) else None
    return str(info.get("code", "")) if isinstance(info, dict) else ""
