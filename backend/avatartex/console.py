"""What the command-line tools show a person at a terminal: a progress bar, results and typed errors;
what the libraries underneath print goes to a log file instead (``library_output``)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from .protocol import AvatarTexError, Progress

QUIET_ENV = {
    "GLOG_minloglevel": "2",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}
"""Set before the libraries load: mediapipe's C++ side (glog/absl, TensorFlow Lite) then logs errors
only, and the neural engine's diffusers and transformers neither warn nor draw their progress bars
(``Loading pipeline components…``) into the command's own progress line: they write to Python's
stderr, which stays the terminal (``engines.neural.pipelines`` turns diffusers' bars off by this)."""


def log_path() -> Path:
    """The CLI's log file: ``AVATARTEX_LOG``, else ``avatartex/cli.log`` in the user's cache folder."""
    if os.environ.get("AVATARTEX_LOG"):
        return Path(os.environ["AVATARTEX_LOG"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "avatartex" / "cli.log"


LOG_MAX_BYTES = 1 << 20
"""Size from which the CLI's log is started afresh, the old one kept as ``cli.log.1`` (one
generation): mediapipe's and protobuf's lines grew it by megabytes, never trimmed."""


def _rotate(path: Path) -> None:
    """Move ``path`` to ``<path>.1`` (replacing an older one) once it holds LOG_MAX_BYTES."""
    with contextlib.suppress(OSError):
        if path.is_file() and path.stat().st_size >= LOG_MAX_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))


@contextlib.contextmanager
def library_output(verbose: bool = False) -> Iterator[Path | None]:
    """While inside, a command shows only its own progress, results and errors.

    Without ``verbose``, everything else written to stderr goes to :func:`log_path` (yielded):
    logging records, Python warnings (protobuf's deprecations) and what C++ libraries write to file
    descriptor 2 (mediapipe's TensorFlow-Lite and absl lines), which only a redirect of the
    descriptor itself can catch. ``sys.stderr`` meanwhile stays the terminal. With ``verbose`` the
    library logs go to stderr at INFO level, as the server's do.
    """
    root = logging.getLogger()
    previous_level = root.level
    if verbose:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield None
        finally:
            root.removeHandler(handler)
            root.setLevel(previous_level)
        return

    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _rotate(path)
        log_file: TextIO = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    except OSError:
        path, log_file = Path(os.devnull), open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    handler = logging.StreamHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)

    old_stderr = sys.stderr
    with contextlib.suppress(Exception):
        old_stderr.flush()
    saved_fd = os.dup(2)
    terminal = None
    try:
        # Python's own sys.stderr is fd 2 unless a caller (pytest's capsys) replaced it: only then
        # must it be re-pointed at the terminal before fd 2 is sent to the log.
        try:
            writes_fd2 = old_stderr.fileno() == 2
        except (AttributeError, OSError, io.UnsupportedOperation):
            writes_fd2 = False
        if writes_fd2:
            terminal = os.fdopen(os.dup(saved_fd), "w", encoding="utf-8", errors="replace", buffering=1)
            sys.stderr = terminal
        os.dup2(log_file.fileno(), 2)
        yield path
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        sys.stderr = old_stderr
        if terminal is not None:
            terminal.close()
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(previous_level)
        log_file.close()


class ProgressBar:
    """A one-line progress bar on a terminal's stderr; silent when stderr is not a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        try:
            self._tty = self._stream.isatty()
        except (AttributeError, ValueError):
            self._tty = False

    def __call__(self, progress: Progress) -> None:
        if not self._tty:
            return
        width = 30
        filled = int(round(progress.fraction * width))
        bar = "#" * filled + "-" * (width - filled)
        self._stream.write(
            f"\r[{bar}] {progress.fraction:4.0%} {progress.stage:<8} {progress.message[:40]:<40}"
        )
        self._stream.flush()

    def close(self) -> None:
        if self._tty:
            self._stream.write("\n")


ERROR_STATUS = 1
"""Exit status of a command that stopped at a typed error (an input, a file, a model): 1. A command
line argparse cannot read exits 2, its own, so a farm's script tells a mistake of its own from an
asset that failed; Ctrl-C exits 130."""


def print_error(error: AvatarTexError, as_json: bool = False, extra: dict | None = None) -> int:
    """Print a typed error on stderr: for a person at a terminal (``error [code]: message`` and a
    hint line), or ``as_json``, one JSON object on one line (``code``, ``message``, ``hint`` and
    ``extra``'s keys) for a script to read. Returns the command's exit status (``ERROR_STATUS``)."""
    if as_json:
        fields = {"code": str(error.code), "message": error.message, "hint": error.hint, **(extra or {})}
        print(json.dumps({"error": fields}), file=sys.stderr)
        return ERROR_STATUS
    print(f"error [{error.code}]: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"  hint: {error.hint}", file=sys.stderr)
    for name, value in (extra or {}).items():
        print(f"  {name}: {value}", file=sys.stderr)
    return ERROR_STATUS


def run_subcommands(
    prog: str, description: str, add_subcommands: Callable[[Any], None], argv: list[str] | None
) -> int:
    """A small command of its own: parse ``argv`` with the subcommands ``add_subcommands`` adds (each
    sets a ``handler``), run the chosen one, and print a typed error the way every command does."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except AvatarTexError as error:
        return print_error(error)
