"""Logging rejections without letting a flood of garbage fill the journal.

Each reason gets `burst` log lines per `window_s`; beyond that, rejections are only counted, and
the next line of that reason says how many were not logged individually. The Prometheus counter
still counts every rejection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RejectionLog:
    def __init__(
        self,
        logger: logging.Logger,
        burst: int = 20,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[
            str, tuple[float, int, int]
        ] = {}  # reason -> (start, logged, suppressed)

    def log(self, reason: str, meter_hex: str, seq: int | None, detail: str) -> bool:
        """Log one rejection unless its reason is over budget; True if it was logged."""
        now = self._clock()
        start, logged, suppressed = self._windows.get(reason, (now, 0, 0))
        if now - start >= self.window_s:
            start, logged = now, 0
        if logged >= self.burst:
            self._windows[reason] = (start, logged, suppressed + 1)
            return False
        more = f" (+{suppressed} more {reason} rejections not logged)" if suppressed else ""
        self.logger.warning(
            "rejected reading: %s (meter %s, seq %s): %s%s", reason, meter_hex, seq, detail, more
        )
        self._windows[reason] = (start, logged + 1, 0)
        return True
