"""Where a node's time goes: a bounded record of what it did, for `GET /timeline`.

Off by default (`--timeline N` keeps the last N marks). A mark is (monotonic ns, what, detail):
the clock is CLOCK_MONOTONIC, the same for every process on one host, so the marks of the
nodes of a payment merge into one timeline (hil_tests/bench/bench_channels.py prints it).
Marks: ``recv`` (a peer message decrypted and decoded, detail: its type and peer),
``handled`` (its handler returned), ``react`` (the switch and the rounds ran), ``commit`` /
``committed`` (the store transaction, one fsync), ``send`` (the flush wrote to the socket),
``api`` / ``api_done`` (a control API request arrived / was answered), ``paid`` (a payment's
outcome is durable and its waiter woken).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any


class Timeline:
    def __init__(self, capacity: int = 0) -> None:
        self.enabled = capacity > 0
        self._marks: deque[tuple[int, str, str]] = deque(maxlen=max(capacity, 1))

    def mark(self, what: str, detail: str = "") -> None:
        if self.enabled:
            self._marks.append((time.monotonic_ns(), what, detail))

    def take(self) -> list[dict[str, Any]]:
        """The marks kept so far, oldest first; the record starts empty again."""
        out = [{"t_ns": t, "what": w, "detail": d} for t, w, d in self._marks]
        self._marks.clear()
        return out
