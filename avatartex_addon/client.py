"""The backend process: started on demand, reused, restarted after a crash, shut down at exit.

The client is plain threads and pipes (it touches no Blender data). A reader thread parses the
backend's stdout (JSON lines) and routes each message to the queue
of the request it belongs to; Blender's main thread polls those queues.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import errors
from .paths import protocol

HELLO_TIMEOUT_S = 120.0
"""A cold backend imports numpy/torch before it can answer; generous on slow disks."""


@dataclass
class BackendConfig:
    """How to start the backend process."""

    python: str
    """Interpreter that runs ``python -m avatartex.server``."""
    backend_root: str
    """Folder holding the ``avatartex`` package (prepended to PYTHONPATH)."""
    log_path: str
    """File receiving the backend's stderr (its log)."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables (model cache, device, low-VRAM, cache folders)."""
    work_dir: str = ""
    """Working directory of the process (never the add-on's folder); empty: the backend root."""

    def key(self) -> tuple:
        """Configs with equal keys can share one process."""
        return (self.python, self.backend_root, tuple(sorted(self.env.items())))

    def process_env(self) -> dict[str, str]:
        """The environment of a backend process (the server, or a command such as a model download)."""
        env = dict(os.environ)
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (self.backend_root, env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        # Blender sets PYTHONHOME/PYTHONPATH for its own Python; another interpreter must not inherit
        # the home of this one.
        env.pop("PYTHONHOME", None)
        return env


class PendingRequest:
    """One request in flight: its messages arrive in ``messages`` (progress events, then one final)."""

    def __init__(self, req_id: int, method: str, params: dict[str, Any]) -> None:
        self.id = req_id
        self.method = method
        self.params = params
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.done = False

    def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Next message, or None when none arrived within ``timeout`` (0: do not wait)."""
        try:
            if timeout == 0:
                return self.messages.get_nowait()
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None


class BackendClient:
    """One backend subprocess speaking the JSON-lines protocol."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.process: subprocess.Popen | None = None
        self.hello: dict[str, Any] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, PendingRequest] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_thread: threading.Thread | None = None
        self.starts = 0
        """How many processes this client has started (a restart makes it 2)."""
        self._hello_request: PendingRequest | None = None

    # -- process lifetime -------------------------------------------------------------------------

    def alive(self) -> bool:
        """Whether the backend process is running."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> dict[str, Any]:
        """Start the process (if not running) and return its ``hello`` answer (blocking)."""
        pending = self.start_async()
        if pending is None:
            return self.hello
        return self.finish_start(self.wait(pending, "hello", HELLO_TIMEOUT_S))

    def start_async(self) -> PendingRequest | None:
        """Start the process if needed; returns the ``hello`` request to wait for, or None when warm."""
        if self.alive() and self.hello is not None:
            return None
        waiting = self._hello_request
        if self.alive() and waiting is not None and not (waiting.done and waiting.messages.empty()):
            # Already starting (the panel warms the backend up): wait for that same answer.
            return waiting
        self._spawn()
        self._hello_request = self.send("hello", {})
        return self._hello_request

    def finish_start(self, answer: dict[str, Any]) -> dict[str, Any]:
        """Check ``hello``'s answer (protocol version) and remember it."""
        version = answer.get("protocol")
        if version != protocol().PROTOCOL_VERSION:
            self.stop()
            raise errors.backend_error(
                f"The backend speaks protocol {version}, this add-on speaks {protocol().PROTOCOL_VERSION}.",
                "Update the backend environment (Preferences > AvatarTex > Create Environment) "
                "or the add-on so that both match.",
            )
        self.hello = answer
        self._hello_request = None
        return answer

    def _spawn(self) -> None:
        self.stop()
        python = self.config.python
        if not python:
            raise errors.backend_error("No backend Python is set.", errors.HINT_SET_PYTHON)
        if not Path(python).exists():
            raise errors.backend_error(f"The backend Python {python} does not exist.", errors.HINT_SET_PYTHON)
        if Path(python).is_dir():  # "Permission denied" was all the artist read
            raise errors.backend_error(
                f"The backend Python {python} is a folder, not a Python program (in an environment it "
                "is bin/python, or Scripts\\python.exe on Windows).",
                errors.HINT_SET_PYTHON,
            )
        env = self.config.process_env()
        Path(self.config.log_path).parent.mkdir(parents=True, exist_ok=True)
        self._stderr_tail.clear()
        try:
            self.process = subprocess.Popen(
                [python, "-m", "avatartex.server"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=self.config.work_dir or self.config.backend_root,
                bufsize=1,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except OSError as exc:
            raise errors.backend_error(
                f"Cannot start the backend Python {python}: {exc.strerror or exc}.", errors.HINT_SET_PYTHON
            ) from None
        self.starts += 1
        self.hello = None
        self._hello_request = None
        proc = self.process
        threading.Thread(
            target=self._read_stdout, args=(proc,), daemon=True, name="avatartex-backend-stdout"
        ).start()
        self._stderr_thread = threading.Thread(
            target=self._read_stderr, args=(proc,), daemon=True, name="avatartex-backend-stderr"
        )
        self._stderr_thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the backend to shut down, then make sure it is gone."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self._write({"id": next(self._ids), "method": "shutdown", "params": {}}, proc)
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        # The log reader drains what the process wrote last (a busy machine can lag it by seconds).
        if self._stderr_thread is not None and self._stderr_thread is not threading.current_thread():
            self._stderr_thread.join(timeout=timeout)
        self.process = None
        self.hello = None

    def kill(self) -> None:
        """Kill the process at once (tests, and hung backends)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    # -- requests ---------------------------------------------------------------------------------

    def send(self, method: str, params: dict[str, Any]) -> PendingRequest:
        """Send a request and return its handle; messages arrive on ``handle.messages``."""
        if not self.alive():
            raise errors.backend_error("The backend is not running.", "It starts again on the next request.")
        pending = PendingRequest(next(self._ids), method, params)
        with self._lock:
            self._pending[pending.id] = pending
        try:
            self._write({"id": pending.id, "method": method, "params": params}, self.process)
        except OSError:
            with self._lock:
                self._pending.pop(pending.id, None)
            raise self.died_error() from None
        return pending

    def call(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a request and wait for its result (progress events are dropped)."""
        return self.wait(self.send(method, params), method, timeout)

    def wait(self, pending: PendingRequest, method: str, timeout: float) -> dict[str, Any]:
        """Wait for the final message of ``pending``; its error is raised as AvatarTexError."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise errors.backend_error(
                    f"The backend did not answer '{method}' within {timeout:.0f} s.",
                    f"See the backend log: {self.config.log_path}",
                )
            message = pending.get(timeout=min(left, 0.5))
            if message is None:
                continue
            if "result" in message:
                return message["result"]
            if "error" in message:
                raise error_from_message(message)

    def cancel(self, pending: PendingRequest) -> None:
        """Ask the backend to cancel a running request; it then ends with error ``cancelled``."""
        if self.alive() and not pending.done:
            try:
                self._write(
                    {"id": next(self._ids), "method": "cancel", "params": {"request": pending.id}},
                    self.process,
                )
            except OSError:
                pass

    def died_error(self) -> Exception:
        """The error reported for requests that were running when the process died."""
        code = self.process.poll() if self.process is not None else None
        tail = "\n".join(list(self._stderr_tail)[-3:])
        message = f"The backend process stopped unexpectedly (exit code {code})."
        if tail:
            message += f" Last log lines: {tail}"
        return errors.backend_error(message, f"Full log: {self.config.log_path}", code=errors.BACKEND_CRASHED)

    def _write(self, message: dict[str, Any], proc: subprocess.Popen) -> None:
        with self._write_lock:
            proc.stdin.write(json.dumps(message, separators=(",", ":")) + "\n")
            proc.stdin.flush()

    def _read_stdout(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                # A stray print in the backend: keep it in the log tail, it is not protocol.
                self._stderr_tail.append(f"(stdout) {line[:200]}")
                continue
            req_id = message.get("id")
            with self._lock:
                pending = self._pending.get(req_id)
                final = "result" in message or "error" in message
                if pending is not None and final:
                    self._pending.pop(req_id, None)
            if pending is not None:
                if final:
                    pending.done = True
                pending.messages.put(message)
        proc.wait()
        # Let the log reader catch the last lines (often the traceback that explains the death).
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=2.0)
        # Everything still pending will never get an answer from this process.
        if proc is self.process or self.process is None:
            error = self.died_error().to_dict()
        else:
            error = errors.backend_error("The backend was restarted.", "").to_dict()
        with self._lock:
            orphans = [p for p in self._pending.values() if not p.done]
            for p in orphans:
                self._pending.pop(p.id, None)
        for p in orphans:
            p.done = True
            p.messages.put({"id": p.id, "error": error})

    def _read_stderr(self, proc: subprocess.Popen) -> None:
        log = RotatingLog(Path(self.config.log_path))
        noise = RotatingLog(Path(self.config.log_path).with_name("libraries.log"))
        try:
            log.write(
                f"--- backend started {time.strftime('%Y-%m-%d %H:%M:%S')} ({self.config.python}) ---\n"
            )
            for line in proc.stderr:
                if is_library_noise(line):
                    noise.write(line)
                    continue
                log.write(line)
                if line.strip():
                    self._stderr_tail.append(line.rstrip()[:300])
        finally:
            log.close()
            noise.close()


LOG_CAP_BYTES = 2 * 1024 * 1024
"""Size at which a log file is rotated (one older generation, ``<name>.1``, is kept)."""

_NOISE = re.compile(
    r"^[IWE]\d{4} \d\d:\d\d:\d\d"  # glog / absl lines (mediapipe's C++ side)
    r"|^WARNING: All log messages before absl::InitializeLog"
    r"|^INFO: Created TensorFlow Lite"
    r"|SymbolDatabase\.GetPrototype\(\) is deprecated"
    r"|^\s+warnings\.warn\('SymbolDatabase"
)


def is_library_noise(line: str) -> bool:
    """Whether a stderr line is a library's routine chatter (TensorFlow Lite, glog, protobuf's
    deprecation warning) rather than the backend's own log or a traceback."""
    return bool(_NOISE.search(line))


class RotatingLog:
    """A log file, appended to line by line and rotated to ``<name>.1`` when it exceeds ``LOG_CAP_BYTES``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = None

    def write(self, line: str) -> None:
        """Append ``line`` (flushed, so a crash loses nothing); rotate first when the file is full."""
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._rotate_if_full()
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across lines
        self._fh.write(line)
        self._fh.flush()
        if self._fh.tell() > LOG_CAP_BYTES:
            self._fh.close()
            self._fh = None

    def _rotate_if_full(self) -> None:
        try:
            if self.path.stat().st_size > LOG_CAP_BYTES:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except FileNotFoundError:
            pass

    def close(self) -> None:
        """Close the file (it is reopened on the next write)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def error_from_message(message: dict[str, Any]) -> Exception:
    """The AvatarTexError carried by an ``error`` message."""
    return protocol().AvatarTexError.from_dict(message.get("error") or {})
