"""How many log lines a kind of trouble may write: a fixed window per key, no I/O.

A flood of one kind of bad input (rejected readings, refused control requests, failing channel
events) must not fill the journal, yet nothing may go unseen. Each key gets `burst` lines per
window of `window_s`; a window starts at the first call of its key after the last window ended.
Beyond the budget a call is only counted (held), and the next line of that key says how many
were held. The caller writes the line: this module only decides, so it is the same for every
caller and testable with a fake clock.

Memory stays bounded by the live keys: the entries whose window is over are dropped when the
table grows (a caller whose keys carry input text cannot grow it without bound by sending ever new
text slowly, nor by sending each new text once more than its burst). A dropped entry's held calls
are not lost: the next line of any key reports them as `others` (their key may never come back).
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
    others: int = 0  # calls of other keys held, whose entries were dropped (say so in this line)

    def unlogged(self, others: str, these: str = "") -> str:
        """What the line adds of the calls not logged: " (+3 more not logged)" for its key's
        held ones (``these`` names them: " (+3 more bad_sig rejections not logged)"), and
        " (+5 more <others> not logged)" for those of other keys; "" if none."""
        more = f" (+{self.held} more {these + ' ' if these else ''}not logged)" if self.held else ""
        if self.others:
            more += f" (+{self.others} more {others} not logged)"
        return more


class LogBudget:
    def __init__(
        self,
        burst: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        sweep_at: int = SWEEP_AT,
    ) -> None:
        if burst < 1 or not window_s > 0 or sweep_at < 1:
            raise ValueError(
                f"burst must be >= 1, window_s > 0 and sweep_at >= 1, not {burst}, {window_s},"
                f" {sweep_at}"
            )
        self.burst, self.window_s, self._clock = burst, window_s, clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # key -> (start, logged, held)
        self._floor = self._sweep_at = sweep_at
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
        others = self._sweep(now) if len(self._windows) > self._sweep_at else 0  # not this key
        return Admitted(held, logged == 0 and not held, others)

    def _sweep(self, now: float) -> int:
        """Drop the entries whose window is over; their held calls, for this line to report (an
        entry that held calls was kept for its key's next line: ever new keys grew the table)."""
        ended = [k for k, (start, _, _) in self._windows.items() if now - start >= self.window_s]
        held = sum(self._windows.pop(k)[2] for k in ended)
        self._sweep_at = max(self._floor, 2 * len(self._windows))
        return held
