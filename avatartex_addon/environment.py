"""The managed backend environment: a venv in the extension's user folder with the backend's requirements.

Never inside the add-on's own folder (read-only for system installs, wiped on upgrade). An install
never breaks the environment that works: it builds a new one in a new folder
(``envs/<time>``), installs into it, checks that the backend answers ``hello`` from it, and only
then makes it the active one (``active_env.txt``, written atomically) and removes the old one. A
failure at any step (offline, a package that does not build) leaves the old environment in use.
The install runs in a thread; its progress ("package N of M") is read from pip and shown in the
preferences.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from . import errors, state
from .client import BackendClient, BackendConfig
from .paths import requirements_file, user_dir

NEURAL_DOWNLOAD = "about 4 GB"
"""What ticking the neural packages adds to the download (PyTorch with CUDA, diffusers, transformers)."""

_POINTER = "active_env.txt"
WARM_TIMEOUT_S = 300.0
"""How long the environment check waits for the new backend's warm-up (33 s measured on a 2-core
CPU in an empty cache: numba's kernels and the bytecode; bench/addon_warmup.py)."""


def env_python(env_dir: Path) -> Path:
    """The interpreter of the environment in ``env_dir``."""
    return env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def active_env() -> Path:
    """Folder of the environment in use: the one ``active_env.txt`` names, else the legacy ``env``."""
    pointer = user_dir() / _POINTER
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except OSError:
        name = ""
    if name and "/" not in name and "\\" not in name and env_python(user_dir("envs") / name).exists():
        return user_dir("envs") / name
    return user_dir() / "env"


def _activate(env_dir: Path) -> None:
    """Make ``env_dir`` the active environment (the pointer file is replaced atomically)."""
    pointer = user_dir() / _POINTER
    tmp = pointer.with_name(pointer.name + ".tmp")
    tmp.write_text(env_dir.name + "\n", encoding="utf-8")
    os.replace(tmp, pointer)


@dataclass
class EnvInstall:
    """A running (or finished) environment install."""

    env_dir: Path
    """The new environment's folder (``envs/<time>``); it becomes active only when complete."""
    requirements: list[Path]
    config: BackendConfig
    """How to start the backend for the ``hello`` check (the new interpreter is filled in)."""
    pip_args: tuple[str, ...] = ()
    progress: float = 0.0
    message: str = "Starting..."
    error: str = ""
    done: bool = False
    total: int = 0
    """How many packages pip will install (from a dry run)."""
    log_path: Path = field(default_factory=lambda: user_dir("logs") / "environment.log")
    thread: threading.Thread | None = None
    previous: Path | None = None
    """The environment that was active before; removed by ``finish`` once the new one is in use."""
    steps: list[str] = field(default_factory=list)
    """Every progress message shown, in order (for the log and for tests)."""

    def run(self) -> None:
        """Create the venv, install, check ``hello``, switch (runs in the install thread)."""
        previous = self.previous = active_env()
        try:
            with self.log_path.open("a", encoding="utf-8") as log:
                log.write(
                    f"--- environment install {time.strftime('%Y-%m-%d %H:%M:%S')} -> {self.env_dir} ---\n"
                )
                self._set(0.02, "Creating the virtual environment...")
                self._run([_base_python(), "-m", "venv", str(self.env_dir)], log)
                python = str(env_python(self.env_dir))
                self._set(0.08, "Finding the packages to install...")
                self.total = self._count_packages(python, log)
                self._install(python, log)
                self._set(0.95, "Checking that the backend starts from the new environment...")
                self._check_hello(python, log)
            _activate(self.env_dir)
            self._set(1.0, f"Environment ready ({self.total} packages): {python}")
        except Exception as exc:  # noqa: BLE001 - reported in the preferences
            shutil.rmtree(self.env_dir, ignore_errors=True)
            kept = f" The environment in use was kept: {previous}." if env_python(previous).exists() else ""
            self.error = f"{exc}{kept} (log: {self.log_path})"
            self.message = "Failed."
        finally:
            self.done = True

    def finish(self) -> None:
        """On the main thread, once the install is done: stop a backend still running from the old
        environment and remove that environment (the add-on's own folder, never the artist's)."""
        from . import backend

        if self.error or self.previous is None or self.previous == self.env_dir:
            return
        backend.shutdown()  # the next request starts the backend from the new environment
        if self.previous.exists():
            shutil.rmtree(self.previous, ignore_errors=True)
        self.previous = None

    def _set(self, progress: float, message: str) -> None:
        # The bar only moves forward, whatever order pip's lines come in.
        self.progress = max(self.progress, min(progress, 1.0))
        self.message = message
        self.steps.append(message)

    def _pip(self, python: str) -> list[str]:
        reqs = [arg for path in self.requirements for arg in ("-r", str(path))]
        return [python, "-m", "pip", "install", "--disable-pip-version-check", *reqs, *self.pip_args]

    def _count_packages(self, python: str, log) -> int:
        """How many packages the install will bring (pip's dry-run report); fails early when offline."""
        with tempfile.TemporaryDirectory(prefix="avatartex-pip-") as tmp:
            report = Path(tmp) / "report.json"
            self._run([*self._pip(python), "--dry-run", "--quiet", "--report", str(report)], log)
            return len(json.loads(report.read_text(encoding="utf-8")).get("install", []))

    def _install(self, python: str, log) -> None:
        total = max(self.total, 1)
        site = _site_packages(self.env_dir)
        before = _installed_count(site)
        seen: list[str] = []
        installing = False
        for line in stream_lines(self._pip(python), log):
            if line is None:  # no output for a while: pip is unpacking, count what is in place
                if installing:
                    done = min(total, _installed_count(site) - before)
                    self._set(0.6 + 0.35 * done / total, f"Installing: package {done} of {total}...")
                continue
            match = re.match(
                r"\s*(Collecting|Processing|Downloading|Using cached) (\S+)(?: \((.+?)\))?", line
            )
            if match and match.group(1) in ("Collecting", "Processing"):
                seen.append(match.group(2))
                n = min(len(seen), total)
                name = match.group(2).rsplit("/", 1)[-1]
                self._set(0.1 + 0.5 * n / total, f"Package {n} of {total}: {name}")
            elif match and match.group(3):
                n = min(len(seen), total)
                name = match.group(2).rsplit("/", 1)[-1]
                self._set(0.1 + 0.5 * n / total, f"Package {n} of {total}: {name} ({match.group(3)})")
            elif line.startswith("Installing collected packages"):
                installing = True
                self._set(0.6, f"Installing: package 0 of {total}...")

    def _check_hello(self, python: str, log) -> None:
        config = BackendConfig(
            python=python,
            backend_root=self.config.backend_root,
            log_path=self.config.log_path,
            env=self.config.env,
            work_dir=self.config.work_dir,
        )
        client = BackendClient(config)
        try:
            answer = client.start()
            # The first start of a new environment compiles the backend's kernels and bytecode into
            # the extension's cache (about half a minute): done here, not on the artist's first click.
            self._set(0.97, "Compiling the backend once (about half a minute)...")
            client.wait(client.send("hello", {"warm": True}), "hello", WARM_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(
                f"The new environment installed, but the backend does not start from it: {exc}"
            ) from None
        finally:
            client.stop()
        log.write(f"hello from the new environment: backend {answer.get('backend_version')}\n")

    def _run(self, cmd: list[str], log) -> None:
        for _line in stream_lines(cmd, log):
            pass


def stream_lines(
    cmd: list[str],
    log,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    started: Callable[[subprocess.Popen], None] = lambda _proc: None,
) -> Iterator[str | None]:
    """The command's output lines (stdout and stderr) as they come, each also written to ``log``; None
    every half second without output (a caller's moment to measure progress). ``started`` gets the
    process (to cancel it). Raises RuntimeError with the last lines when it exits non-zero."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=env,
        cwd=cwd,
    )
    started(proc)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True, name="avatartex-subprocess-output").start()
    tail: list[str] = []
    while True:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            yield None
            continue
        if line is None:
            break
        log.write(line)
        if line.strip():
            tail = (tail + [line.strip()])[-3:]
        yield line
    if proc.wait() != 0:
        raise RuntimeError(
            f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} failed (exit {proc.returncode}): " + " ".join(tail)
        )


def _site_packages(env_dir: Path) -> Path:
    found = sorted(env_dir.glob("lib/python*/site-packages")) or [env_dir / "Lib" / "site-packages"]
    return found[0]


def _installed_count(site: Path) -> int:
    try:
        return sum(1 for p in site.iterdir() if p.name.endswith(".dist-info"))
    except OSError:
        return 0


def _base_python() -> str:
    """The interpreter that creates the venv: Blender's own Python (``sys.executable``)."""
    return sys.executable


def start_install(
    requirements: list[Path] | Path | None = None, pip_args: tuple[str, ...] = (), neural: bool = False
) -> EnvInstall:
    """Start building a new managed environment in a thread; returns the install to watch.

    ``neural`` adds the neural engine's packages (``requirements-neural.txt``, NEURAL_DOWNLOAD more).
    """
    from . import backend

    if state.env_install is not None and not state.env_install.done:
        raise errors.error(
            errors.ALREADY_RUNNING, "The environment is already being created.", "Wait for it to finish."
        )
    if requirements is None:
        requirements = [requirements_file()] + ([requirements_file(neural=True)] if neural else [])
    elif isinstance(requirements, Path):
        requirements = [requirements]
    for path in requirements:
        if not path.is_file():
            raise errors.backend_error(
                f"This build has no backend requirements file ({path}).",
                "Reinstall the extension from an official build, or set an existing "
                "backend Python in the preferences.",
            )
    if "--no-index" not in pip_args and not bpy.app.online_access:
        raise errors.backend_error(
            "Blender's online access is off, so the backend cannot be downloaded.",
            "Enable Preferences > System > Network > Allow Online Access, or point "
            "to an existing backend Python.",
        )
    config = backend.backend_config(python="")
    env_dir = user_dir("envs") / time.strftime("env-%Y%m%d-%H%M%S")
    while env_dir.exists():
        env_dir = env_dir.with_name(env_dir.name + "x")
    install = EnvInstall(
        env_dir=env_dir, requirements=list(requirements), config=config, pip_args=tuple(pip_args)
    )
    install.thread = threading.Thread(target=install.run, daemon=True, name="avatartex-env-install")
    state.env_install = install
    install.thread.start()
    return install


def redraw_preferences() -> None:
    """Redraw every open Preferences window (a progress bar moved)."""
    wm = bpy.context.window_manager
    if wm is not None:
        for window in wm.windows:
            for area in window.screen.areas:
                if area.type == "PREFERENCES":
                    area.tag_redraw()


def watch() -> float | None:
    """Timer: redraw the preferences while the install runs; retire the old environment once it switched."""
    redraw_preferences()
    install = state.env_install
    if install is not None and install.done:
        install.finish()
    return None if install is None or install.done else 0.5
