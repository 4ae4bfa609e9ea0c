"""How many log lines a kind of trouble may write: a fixed window per key, no I/O.

A flood of one kind of bad input (rejected readings, refused control requests, failing channel
events) must not fill the journal, yet nothing may go unseen. Each key gets `burst` lines per
window of `window_s`; a window starts at the first call of its key after the last window ended.
Beyond the budget a call is only counted (held), and the next line of that key says how many
were held. The caller writes the line: this module only decides, so it is the same for every
caller and testable with a fake clock.

Memory stays bounded by the live keys: an entry whose window is over and that holds nothing is
the same as no entry, so such entries are dropped when the table grows (a caller whose keys carry
input text cannot grow it without bound by sending ever new text slowly).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

SWEEP_AT = 1024  # entries before the first sweep of ended windows


class Admitted(NamedTuple):
    """A call that may write its line."""

    held: int  # calls of this key not logged since its last line (say so in this line)
    first: bool  # the first line of a window with nothing held before it (worth a traceback)


class LogBudget:
    def __init__(
        self, burst: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if burst < 1 or not window_s > 0:
            raise ValueError(f"burst must be >= 1 and window_s > 0, not {burst}, {window_s}")
        self.burst, self.window_s, self._clock = burst, window_s, clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # key -> (start, logged, held)
        self._sweep_at = SWEEP_AT
        self.total = 0  # every call, logged or held

    def admit(self, key: str) -> Admitted | None:
        """One call of `key`: an `Admitted` if it may be logged, None if it is only counted."""
        self.total += 1
        now = self._clock()
        start, logged, held = self._windows.get(key, (now, 0, 0))
        if now - start >= self.window_s:
            start, logged = now, 0
        if logged >= self.burst:
            self._windows[key] = (start, logged, held + 1)
            return None
        self._windows[key] = (start, logged + 1, 0)
        if len(self._windows) > self._sweep_at:
            self._sweep(now)
        return Admitted(held, logged == 0 and not held)

    def _sweep(self, now: float) -> None:
        ended = [
            k
            for k, (start, _, held) in self._windows.items()
            if not held and now - start >= self.window_s
        ]
        for k in ended:
            del self._windows[k]
        self._sweep_at = max(SWEEP_AT, 2 * len(self._windows))
