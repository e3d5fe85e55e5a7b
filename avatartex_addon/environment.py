"""The managed backend environment: a venv in the extension's user folder with the backend's requirements.

Never inside the add-on's own folder (read-only for system installs, wiped on upgrade). The install
runs in a thread; its progress is read from pip's output and shown in the preferences.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from . import backend, errors, state
from .paths import requirements_file, user_dir


@dataclass
class EnvInstall:
    """A running (or finished) environment install."""

    env_dir: Path
    requirements: Path
    pip_args: tuple[str, ...] = ()
    progress: float = 0.0
    message: str = "Starting..."
    error: str = ""
    done: bool = False
    log_path: Path = field(default_factory=lambda: user_dir("logs") / "environment.log")
    thread: threading.Thread | None = None

    def run(self) -> None:
        """Create the venv and pip-install the requirements (runs in the install thread)."""
        try:
            with self.log_path.open("a", encoding="utf-8") as log:
                log.write(f"--- environment install {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n")
                self.message = "Creating the virtual environment..."
                self._run([_base_python(), "-m", "venv", "--clear", str(self.env_dir)], log)
                self.progress = 0.1
                total = max(1, _count_requirements(self.requirements))
                seen = 0
                self.message = "Installing the backend's requirements..."
                python = backend.managed_python()
                cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check",
                       "-r", str(self.requirements), *self.pip_args]
                for line in self._stream(cmd, log):
                    if line.startswith("Collecting "):
                        seen += 1
                        # Dependencies of dependencies are collected too: the bar slows, never overshoots.
                        self.progress = 0.1 + 0.75 * min(1.0, seen / (total * 3))
                        self.message = line.strip()
                    elif line.startswith("Installing collected packages"):
                        self.progress = 0.9
                        self.message = "Installing collected packages..."
            self.progress = 1.0
            self.message = f"Environment ready: {python}"
        except Exception as exc:  # noqa: BLE001 - reported in the preferences
            self.error = f"{exc} (log: {self.log_path})"
            self.message = "Failed."
        finally:
            self.done = True

    def _run(self, cmd: list[str], log) -> None:
        for _line in self._stream(cmd, log):
            pass

    def _stream(self, cmd: list[str], log):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                encoding="utf-8", errors="replace")
        tail: list[str] = []
        for line in proc.stdout:
            log.write(line)
            tail = (tail + [line.strip()])[-3:]
            yield line
        if proc.wait() != 0:
            raise RuntimeError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} failed (exit {proc.returncode}): "
                               + " ".join(tail))


def _base_python() -> str:
    """The interpreter that creates the venv: Blender's own Python (``sys.executable``)."""
    return sys.executable


def _count_requirements(path: Path) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if re.match(r"^\s*[A-Za-z0-9]", line))


def start_install(requirements: Path | None = None, pip_args: tuple[str, ...] = ()) -> EnvInstall:
    """Start creating the managed environment in a thread; returns the install to watch."""
    if state.env_install is not None and not state.env_install.done:
        raise errors.error(errors.ALREADY_RUNNING, "The environment is already being created.",
                           "Wait for it to finish.")
    requirements = requirements or requirements_file()
    if not requirements.is_file():
        raise errors.backend_error(f"This build has no backend requirements file ({requirements}).",
                                   "Reinstall the extension from an official build, or set an existing "
                                   "backend Python in the preferences.")
    if "--no-index" not in pip_args and not bpy.app.online_access:
        raise errors.backend_error("Blender's online access is off, so the backend cannot be downloaded.",
                                   "Enable Preferences > System > Network > Allow Online Access, or point "
                                   "to an existing backend Python.")
    backend.shutdown()  # the old environment's process must not keep files open
    install = EnvInstall(env_dir=user_dir("env"), requirements=requirements, pip_args=tuple(pip_args))
    install.thread = threading.Thread(target=install.run, daemon=True, name="avatartex-env-install")
    state.env_install = install
    install.thread.start()
    return install


def watch() -> float | None:
    """Timer: redraw the preferences while the install runs."""
    wm = bpy.context.window_manager
    if wm is not None:
        for window in wm.windows:
            for area in window.screen.areas:
                if area.type == 'PREFERENCES':
                    area.tag_redraw()
    install = state.env_install
    return None if install is None or install.done else 0.5
