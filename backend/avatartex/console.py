"""What the command-line tools show a person at a terminal: a progress bar and typed errors."""

from __future__ import annotations

import sys

from .protocol import AvatarTexError, Progress


class ProgressBar:
    """A one-line progress bar on a terminal's stderr; silent when stderr is not a terminal."""

    def __init__(self, stream=sys.stderr) -> None:
        self._stream = stream
        self._tty = stream.isatty()

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


def print_error(error: AvatarTexError) -> int:
    """Print a typed error for a person at a terminal; returns the command's exit status (2)."""
    print(f"error [{error.code}]: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"  hint: {error.hint}", file=sys.stderr)
    return 2
