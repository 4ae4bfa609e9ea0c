"""Channel events whose handling failed: logged without flooding the journal, and counted.

The node drains the events of all its channels at once and hands them to the switch; one event
that raises (seen: an `UnknownHtlc` for an HTLC the timer had already failed) must not take the
others with it. The switch handles each event on its own, and the node proposes on each channel
on its own; a failure comes here: `burst` log lines per kind of failure per `window_s`, the
rest counted (the next line says how many; gateway.log_budget). A line also says how many
failures of other kinds were held and will not be reported by their own kind (their counts were
dropped with their ended windows).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.log_budget import SWEEP_AT, LogBudget

log = logging.getLogger("gateway.ln.node")


class EventFailureLog:
    def __init__(
        self,
        burst: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sweep_at: int = SWEEP_AT,
    ) -> None:
        self._budget = LogBudget(burst, window_s, clock, sweep_at)

    @property
    def total(self) -> int:
        """Every failed event (for metrics and tests)."""
        return self._budget.total

    def failed(self, what: str, channel: str, exc: Exception) -> bool:
        """Count one failed step (`what`: the event's type, or what the node did with the
        channel); log it unless its kind is over budget. True if logged."""
        kind = f"{what}: {type(exc).__name__}"
        admitted = self._budget.admit(kind)
        if admitted is None:
            return False
        more = admitted.unlogged("failures of other kinds")
        log.error("channel %s: %s failed, the other events go on: %s%s", channel, kind, exc, more,
                  exc_info=admitted.first)  # fmt: skip
        return True
