"""Small helpers that run the sim's side work: on a thread of its own, at most once per span of
virtual time, and a stopwatch of consecutive phases."""

from __future__ import annotations

import threading
import time
from typing import Any


class Phases:
    """Wall seconds of consecutive steps: `mark(name)` ends the step called `name`."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._t = time.monotonic()

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self._t, 1)
        self._t = now


class Background(threading.Thread):
    def __init__(self, fn: Any) -> None:
        super().__init__(daemon=True)
        self.fn, self.value, self.error = fn, None, None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.fn()
        except Exception as exc:  # noqa: BLE001 - reported when joined
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


class InBackground:
    """Calls `fn(now)` on a thread of its own; a call while the last one still runs is skipped."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.thread: threading.Thread | None = None

    def __call__(self, now: float) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self.fn, args=(now,), daemon=True)
            self.thread.start()


class Every:
    """Calls `fn(now)` at most once per `seconds` of virtual time."""

    def __init__(self, seconds: float, fn: Any) -> None:
        self.seconds, self.fn, self.last = seconds, fn, -1e18

    def __call__(self, now: float) -> None:
        if now - self.last >= self.seconds:
            self.last = now
            self.fn(now)
