"""Channel events whose handling failed: logged without flooding the journal, and counted.

The node drains the events of all its channels at once and hands them to the switch; one event
that raises (seen: an `UnknownHtlc` for an HTLC the timer had already failed) must not take the
others with it. The switch handles each event on its own, and the node proposes on each channel
on its own; a failure comes here: `burst` log lines per kind of failure per `window_s`, the
rest counted (the next line says how many).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("gateway.ln.node")


class EventFailureLog:
    def __init__(
        self, burst: int = 10, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst, self.window_s, self._clock = burst, window_s, clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # kind -> (start, logged, held)
        self.total = 0  # every failed event (for metrics and tests)

    def failed(self, what: str, channel: str, exc: Exception) -> bool:
        """Count one failed step (`what`: the event's type, or what the node did with the
        channel); log it unless its kind is over budget. True if logged."""
        self.total += 1
        kind = f"{what}: {type(exc).__name__}"
        now = self._clock()
        start, logged, held = self._windows.get(kind, (now, 0, 0))
        if now - start >= self.window_s:
            start, logged = now, 0
        if logged >= self.burst:
            self._windows[kind] = (start, logged, held + 1)
            return False
        more = f" (+{held} more not logged)" if held else ""
        log.error("channel %s: %s failed, the other events go on: %s%s", channel, kind, exc, more,
                  exc_info=logged == 0 and not held)  # fmt: skip
        self._windows[kind] = (start, logged + 1, 0)
        return True
