"""A meter's status messages: parsed defensively, answered at most once per window per meter.

`sg/<site>/<meter>/status` is `online` / `offline` (the meter's will), or a small JSON object
`{"state": "online", ...}`. Anyone who may publish there could send garbage or floods: a payload
over MAX_STATUS_BYTES or one that is not such an object is a StatusRejected (never an exception
out of json, RecursionError included), and `AnswerLimiter` lets the gateway answer `online` (ack
+ time command, both signed) at most once per `min_interval_s` per meter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from gateway.errors import GatewayError

MAX_STATUS_BYTES = 512


class StatusRejected(GatewayError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # "oversized" | "malformed"
        self.detail = detail


def parse_status(payload: bytes) -> bool:
    """True for online, False for offline (or another state); StatusRejected for garbage."""
    if len(payload) > MAX_STATUS_BYTES:
        raise StatusRejected("oversized", f"{len(payload)} bytes")
    if payload in (b"online", b"offline"):
        return payload == b"online"
    try:
        msg = json.loads(payload)  # short: no nesting deep enough to recurse far
    except (ValueError, RecursionError) as exc:
        raise StatusRejected("malformed", f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise StatusRejected("malformed", "not a JSON object")
    state = msg.get("state")
    if not isinstance(state, str):
        raise StatusRejected("malformed", "no string 'state'")
    return state == "online"


class AnswerLimiter:
    """At most one answer per meter per `min_interval_s` (monotonic clock)."""

    def __init__(
        self,
        min_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_meters: int = 100_000,
    ) -> None:
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._max = max_meters
        self._last: dict[bytes, float] = {}

    def allow(self, meter_id: bytes) -> bool:
        now = self._clock()
        last = self._last.get(meter_id)
        if last is not None and now - last < self.min_interval_s:
            return False
        if len(self._last) >= self._max:  # only enrolled meters get here; bounded anyway
            cutoff = now - self.min_interval_s
            self._last = {m: t for m, t in self._last.items() if t >= cutoff}
        self._last[meter_id] = now
        return True
