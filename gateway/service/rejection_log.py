"""Logging rejections without letting a flood of garbage fill the journal.

Each reason gets `burst` log lines per `window_s` (gateway.log_budget); beyond that, rejections
are only counted, and the next line of that reason says how many were not logged individually.
A line also says how many rejections of other reasons were held and will not be reported by
their own reason (their counts were dropped with their ended windows). The Prometheus counter
still counts every rejection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.log_budget import SWEEP_AT, LogBudget


class RejectionLog:
    def __init__(
        self,
        logger: logging.Logger,
        burst: int = 20,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sweep_at: int = SWEEP_AT,
    ) -> None:
        self.logger = logger
        self._budget = LogBudget(burst, window_s, clock, sweep_at)

    def log(self, reason: str, meter_hex: str, seq: int | None, detail: str) -> bool:
        """Log one rejection unless its reason is over budget; True if it was logged."""
        admitted = self._budget.admit(reason)
        if admitted is None:
            return False
        more = admitted.unlogged("rejections of other reasons", f"{reason} rejections")
        self.logger.warning(
            "rejected reading: %s (meter %s, seq %s): %s%s", reason, meter_hex, seq, detail, more
        )
        return True
