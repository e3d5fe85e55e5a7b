"""Progress, cancel and per-step timing of one request."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..protocol import STAGES, Progress

STEP_SPAN = {
    "analyse": (0.0, 0.1),
    "register": (0.1, 0.2),
    "project": (0.2, 0.3),
    "inpaint": (0.3, 0.5),
    "latent": (0.5, 0.65),
    "repaint": (0.65, 0.85),
    "bake": (0.85, 1.0),
}
"""Share of the whole request each step takes, for the progress bar (measured on the classic engine)."""
assert set(STEP_SPAN) == set(STAGES)


class RequestClock:
    """Emits progress events, checks for cancel at every one, and times each step."""

    def __init__(
        self, emit: Callable[[Progress], None] | None = None, check_cancel: Callable[[], None] | None = None
    ) -> None:
        self.emit = emit or (lambda progress: None)
        self.check_cancel = check_cancel or (lambda: None)
        self.timings: dict[str, float] = {}
        self._started = self._last = time.perf_counter()

    def step(self, name: str, within: float = 0.0, message: str = "") -> None:
        """Report ``within`` (0..1) of step ``name``; raises ``Cancelled`` when the client cancelled."""
        self.check_cancel()
        lo, hi = STEP_SPAN[name]
        self.emit(Progress(name, lo + (hi - lo) * within, message))

    def done(self, name: str) -> None:
        """Close step ``name``: the time since the previous ``done`` is added to its timing."""
        now = time.perf_counter()
        self.timings[name] = round(self.timings.get(name, 0.0) + now - self._last, 4)
        self._last = now

    def total(self) -> float:
        """Seconds since the request started."""
        return round(time.perf_counter() - self._started, 4)
