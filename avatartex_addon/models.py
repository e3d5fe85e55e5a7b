"""The neural engine's models, downloaded from Blender (the preferences' **Download Models**).

The download is the backend's own command, ``avatartex models download NAME...``, run with the
backend's Python and environment, so the models land in the cache the backend reads. It runs in a
thread: progress is the bytes arriving in the model cache against the registry's sizes (the command
prints a line per model, not per byte), Cancel ends the process, and a failure (offline, a full disk)
changes nothing the add-on or the backend uses: the environment, the running backend and the models
already downloaded stay as they were; a model only counts as downloaded once complete, and a partial
one resumes the next time.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy

from . import engines, errors, state
from .client import BackendConfig
from .environment import redraw_preferences, stream_lines
from .paths import user_dir

_DOWNLOADING = re.compile(r"downloading (\S+):")
"""The line ``hub.download`` prints as it starts on a model (shown as progress only)."""
_ERROR = re.compile(r"error \[(\w+)\]: (.*)")
"""How the backend's commands print a typed error (``console.print_error``)."""
_TRUE = {"1", "on", "yes", "true"}


def cache_bytes(cache: str, repos: list[str]) -> int:
    """Bytes in the hub cache's folders of ``repos`` (finished and partial files; links not followed)."""
    total = 0
    for repo in repos if cache else []:
        folder = Path(cache) / ("models--" + repo.replace("/", "--"))
        for root, _dirs, files in os.walk(folder):
            for name in files:
                try:
                    st = os.lstat(os.path.join(root, name))
                except OSError:
                    continue
                if not stat.S_ISLNK(st.st_mode):
                    total += st.st_size
    return total


@dataclass
class ModelDownload:
    """A model download: planned (``plan``), then running in a thread (``start``), then done."""

    rows: list[dict[str, Any]]
    """The ``hello["models"]`` rows to fetch (name, repo_id, size_gb...)."""
    cache: str
    """The hub cache the backend reads (``hello["model_cache"]``; '' from a backend that does not say)."""
    config: BackendConfig
    progress: float = 0.0
    message: str = "Starting..."
    error: str = ""
    done: bool = False
    succeeded: bool = False
    """Every model arrived (``done`` and neither failed nor cancelled)."""
    cancelled: bool = False
    downloaded_bytes: int = 0
    """Bytes that arrived in the cache during this download."""
    steps: list[str] = field(default_factory=list)
    """Every progress message shown, in order (for tests)."""
    log_path: Path = field(default_factory=lambda: user_dir("logs") / "models.log")
    thread: threading.Thread | None = None
    _process: subprocess.Popen | None = None

    @property
    def names(self) -> list[str]:
        """Registry names of the models to fetch."""
        return [str(r.get("name")) for r in self.rows]

    @property
    def size_gb(self) -> float:
        """Approximate size of the whole download."""
        return engines.download_size_gb(self.rows)

    def describe(self) -> str:
        """What will be fetched, for the artist to agree to: names, size, where."""
        where = self.cache or "the model cache"
        return f"{', '.join(self.names)} ({engines.size_text(self.size_gb)}) from Hugging Face into {where}"

    def start(self) -> ModelDownload:
        """Run the download in a thread; ``state.model_download`` is this one."""
        state.model_download = self
        self.thread = threading.Thread(target=self.run, daemon=True, name="avatartex-model-download")
        self.thread.start()
        return self

    def run(self) -> None:
        """Run the backend's download command and follow it (the download thread)."""
        repos = [str(r.get("repo_id")) for r in self.rows]
        before = cache_bytes(self.cache, repos)
        total, size = max(self.size_gb * 1e9, 1.0), engines.size_text(self.size_gb)
        current, failure = "", ""
        cmd = [self.config.python, "-m", "avatartex.cli_models", "models", "download", *self.names]
        try:
            with self.log_path.open("a", encoding="utf-8") as log:
                log.write(f"--- model download {time.strftime('%Y-%m-%d %H:%M:%S')}: {self.describe()} ---\n")
                for line in stream_lines(
                    cmd,
                    log,
                    env=self.config.process_env(),
                    cwd=self.config.work_dir or None,
                    started=self._started,
                ):
                    if line is not None:
                        found = _DOWNLOADING.match(line.strip())
                        current = found.group(1) if found else current
                        failed = _ERROR.match(line.strip())
                        failure = failed.group(2) if failed else failure
                    self.downloaded_bytes = max(0, cache_bytes(self.cache, repos) - before)
                    index = (
                        f" ({self.names.index(current) + 1} of {len(self.names)})"
                        if current in self.names
                        else ""
                    )
                    got = engines.size_text(self.downloaded_bytes / 1e9)
                    self._set(
                        min(0.99, self.downloaded_bytes / total),
                        f"Downloading {current or 'the models'}{index}: {got} of {size}",
                    )
            self._set(1.0, f"Models downloaded: {', '.join(self.names)}")
            self.succeeded = True
        except Exception as exc:  # noqa: BLE001 - reported in the preferences
            kept = self._what_is_kept()
            if self.cancelled:
                self.message = f"Download cancelled. {kept}"
            else:
                why = (failure or str(exc)).rstrip(".")
                self.error = (
                    f"Downloading the models failed: {why}. {kept} {self._advice()} (log: {self.log_path})"
                )
                self.message = "Failed."
            self.steps.append(self.error or self.message)
        finally:
            self._process = None
            self.done = True

    def cancel(self) -> None:
        """Stop the download: its process ends; what was fetched so far is kept to resume."""
        self.cancelled = True
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    def finish(self) -> None:
        """On the main thread, once done: a backend that is running reads the new models at its next
        ``hello`` (its engine status changes); nothing happens after a failure or a cancel."""
        from . import backend

        if self.succeeded:
            backend.refresh_hello()

    def _started(self, process: subprocess.Popen) -> None:
        self._process = process
        if self.cancelled:  # cancelled before the process existed
            process.terminate()

    def _set(self, progress: float, message: str) -> None:
        self.progress = max(self.progress, min(progress, 1.0))
        if message != self.message:
            self.message = message
            self.steps.append(message)

    def _what_is_kept(self) -> str:
        partial = (
            f"; the {engines.size_text(self.downloaded_bytes / 1e9)} fetched so far stay in the model cache "
            "and resume next time"
            if self.downloaded_bytes
            else ""
        )
        return (
            "Nothing was changed: the backend, its environment and the models already downloaded are as "
            f"they were{partial}."
        )

    def _advice(self) -> str:
        if self.config.process_env().get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
            return (
                "HF_HUB_OFFLINE is set in Blender's environment, which forbids downloads: start Blender "
                "without it, then press Download Models again."
            )
        return "Check the network connection and the free disk space, then press Download Models again."


def plan(hello: dict[str, Any]) -> ModelDownload | None:
    """The download of the models the neural engine still needs, per ``hello``; None when it has them
    all. Raises a typed error when downloading cannot work here."""
    from . import backend

    if state.model_download is not None and not state.model_download.done:
        raise errors.error(
            errors.ALREADY_RUNNING,
            "The models are already being downloaded.",
            "Wait for it, or press Cancel.",
        )
    if not hello.get("models"):
        raise errors.backend_error(
            "The backend cannot download models: the neural engine's packages are not installed.",
            f"Get them first ({engines.install_packages_hint()}), then download the models.",
        )
    rows = engines.missing_models(hello)
    if not rows:
        return None
    if not bpy.app.online_access:
        raise errors.backend_error(
            "Blender's online access is off, so the models cannot be downloaded.",
            "Enable Preferences > System > Network > Allow Online Access, then press Download Models again.",
        )
    return ModelDownload(
        rows=rows, cache=str(hello.get("model_cache") or ""), config=backend.backend_config()
    )


def watch() -> float | None:
    """Timer: redraw the preferences while the download runs; refresh the engines once it is done."""
    redraw_preferences()
    download = state.model_download
    if download is not None and download.done:
        download.finish()
    return None if download is None or download.done else 0.5
