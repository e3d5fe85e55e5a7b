"""Model downloads and look-ups in the Hugging Face cache, offline-aware.

Everything goes through ``huggingface_hub`` and its normal cache, so models fetched by other tools are
reused and ``HF_HOME`` / ``HF_HUB_CACHE`` / ``HF_HUB_OFFLINE`` mean what they always mean. They are read
at call time, not import time, so the server and tests can change them without re-importing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from ...protocol import AvatarTexError, ErrorCode
from .registry import REGISTRY, ModelEntry, get_entry

LOCK_FILE = "avatartex-models.lock.json"
"""In the hub cache: the commit each registry name was downloaded at (see ``registry.py``)."""

_TRUE = {"1", "on", "yes", "true"}


def cache_dir(override: str = "") -> Path:
    """The hub cache folder: ``override``, else ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ~/.cache."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set on (1, on, yes, true), as huggingface_hub
    reads its own (``HF_HUB_OFFLINE``, ``HF_HUB_DISABLE_PROGRESS_BARS``)."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def offline(local_files_only: bool | None = None) -> bool:
    """Whether the network must not be used: an explicit flag, else ``HF_HUB_OFFLINE``."""
    if local_files_only is not None:
        return local_files_only
    return env_flag("HF_HUB_OFFLINE")


def _read_lock(cache: Path) -> dict[str, dict[str, str]]:
    try:
        return json.loads((cache / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_lock(cache: Path, entry: ModelEntry, commit: str) -> None:
    lock = _read_lock(cache)
    lock[entry.name] = {"repo_id": entry.repo_id, "revision": entry.revision, "commit": commit}
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / (LOCK_FILE + ".tmp")
    tmp.write_text(json.dumps(lock, indent=1, sort_keys=True))
    tmp.replace(cache / LOCK_FILE)


def _missing_error(entry: ModelEntry, why: str) -> AvatarTexError:
    return AvatarTexError(
        ErrorCode.MODEL_MISSING,
        f"Model {entry.name!r} ({entry.repo_id}@{entry.revision}, {entry.size_gb:g} GB) is not in the "
        f"Hugging Face cache: {why}",
        f"Run `avatartex models download {entry.name}` on a machine with internet access "
        f"(same HF_HOME), or use --engine classic.",
    )


def _intact(path: Path) -> bool:
    """Whether a weights file is whole: a ``.safetensors`` file's header (its first 8 bytes give the
    length of a JSON table of tensors and their byte ranges) must parse and its tensors fit in the
    file; a copy cut short passed for cached and failed at load with a traceback. Other files: there."""
    if path.suffix != ".safetensors":
        return path.is_file()
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if size < 8 or length > min(size - 8, 100_000_000):
                return False
            table = json.loads(f.read(length))
        ends = [int(t["data_offsets"][1]) for k, t in table.items() if k != "__metadata__"]
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return False
    return size >= 8 + length + max(ends, default=0)


def _complete(snapshot: Path, entry: ModelEntry) -> bool:
    """Every file of the entry is in the snapshot and whole (``_intact``), and each of its patterns
    (``tokenizer/*``) matches one at least: partial downloads and damaged copies are not cached."""
    for pattern in entry.files:
        if any(c in pattern for c in "*?["):
            if not any(p.is_file() for p in snapshot.glob(pattern)):
                return False
        elif not _intact(snapshot / pattern):
            return False
    return True


def find_cached(entry: ModelEntry, cache: str = "") -> Path | None:
    """The local snapshot folder of ``entry`` when it is completely downloaded, else None. No network."""
    from huggingface_hub import snapshot_download

    root = cache_dir(cache)
    locked = _read_lock(root).get(entry.name, {})
    revisions = (
        [locked["commit"]] if locked.get("revision") == entry.revision and locked.get("commit") else []
    )
    revisions.append(entry.revision)
    for revision in revisions:
        try:
            path = Path(
                snapshot_download(
                    entry.repo_id,
                    revision=revision,
                    cache_dir=root,
                    local_files_only=True,
                    allow_patterns=list(entry.files),
                )
            )
        except Exception:  # noqa: BLE001 - any lookup failure means "not cached"; the caller says so
            continue
        if _complete(path, entry):
            return path
    return None


def download(entry: ModelEntry, cache: str = "", progress: Callable[[str], None] = print) -> Path:
    """Fetch ``entry``'s files (resuming partial downloads) and record the commit that was fetched."""
    from huggingface_hub import snapshot_download

    if offline():
        raise AvatarTexError(
            ErrorCode.MODEL_MISSING,
            f"Cannot download {entry.repo_id}: HF_HUB_OFFLINE is set.",
            "Unset HF_HUB_OFFLINE (or set it to 0) and run the command again.",
        )
    root = cache_dir(cache)
    progress(
        f"downloading {entry.name}: {entry.repo_id}@{entry.revision} (~{entry.size_gb:g} GB) into {root}"
    )
    try:
        path = Path(
            snapshot_download(
                entry.repo_id, revision=entry.revision, cache_dir=root, allow_patterns=list(entry.files)
            )
        )
    except Exception as exc:  # noqa: BLE001 - network, auth and disk errors all end here, typed
        raise AvatarTexError(
            ErrorCode.MODEL_MISSING,
            f"Downloading {entry.repo_id} failed: {exc}",
            "Check the network connection and free disk space, then run the command "
            "again; finished files are kept and partial ones resume.",
        ) from exc
    if not _complete(path, entry):
        raise AvatarTexError(
            ErrorCode.MODEL_MISSING,
            f"{entry.repo_id}@{entry.revision} lacks expected files "
            f"{[f for f in entry.files if not (path / f).exists()]}.",
            "The repository layout changed; pin an older revision in registry.py.",
        )
    _write_lock(root, entry, path.name)
    progress(f"{entry.name}: ready at {path}")
    return path


def resolve(name_or_path: str, cache: str = "", auto_download: bool = False) -> Path:
    """A local folder holding the model: the path itself if it is a folder, else the registry entry's
    cached snapshot. Missing models raise ``MODEL_MISSING`` naming the repo and the download command,
    unless ``auto_download`` is set and the network may be used."""
    if name_or_path and Path(name_or_path).expanduser().is_dir():
        return Path(name_or_path).expanduser()
    entry = get_entry(name_or_path)
    found = find_cached(entry, cache)
    if found is not None:
        return found
    if offline():
        raise _missing_error(entry, "HF_HUB_OFFLINE is set, so it cannot be fetched now.")
    if auto_download:
        return download(entry, cache)
    raise _missing_error(entry, "it has not been downloaded yet.")


def status(cache: str = "") -> list[dict[str, object]]:
    """One row per registry entry: name, repo, revision, whether cached (and where), licence, sizes."""
    rows = []
    for entry in REGISTRY.values():
        path = find_cached(entry, cache)
        rows.append(
            {
                "name": entry.name,
                "repo_id": entry.repo_id,
                "revision": entry.revision,
                "stage": entry.stage,
                "default": entry.default,
                "cached": path is not None,
                "path": str(path) if path else "",
                "licence": entry.licence,
                "vram_gb": entry.vram_gb,
                "size_gb": entry.size_gb,
            }
        )
    return rows
