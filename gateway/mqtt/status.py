"""A meter's status messages: parsed defensively, answered at most once per window per meter.

`sg/<site>/<meter>/status` is `online` / `offline` (the meter's will), or a small JSON object
`{"state": "online", ...}`. Anyone who may publish there could send garbage or floods: a payload
over MAX_STATUS_BYTES or one that is not such an object is a StatusRejected (never an exception
out of json, RecursionError included), and `AnswerLimiter` lets the gateway answer `online` (ack
+ time command, both signed) at most `burst` times at once, then once per `min_interval_s`,
per meter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from gateway.errors import GatewayError
from sgcore.messages import NONCE_LEN

MAX_STATUS_BYTES = 512


class StatusRejected(GatewayError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # "oversized" | "malformed"
        self.detail = detail


def parse_status(payload: bytes) -> tuple[bool, bytes | None, bool]:
    """(online?, the meter's clock nonce if it sent one, refresh?); StatusRejected for garbage.

    The firmware's status is {"state": "online", "nonce": "<16 hex>"} (sgcore.messages): the
    nonce lets the gateway's signed "clock" command set the meter's clock back, once. With
    `"refresh": true` it only brings the next nonce (a clock command used the last one up): the
    meter did not (re)connect, and nothing needs answering."""
    if len(payload) > MAX_STATUS_BYTES:
        raise StatusRejected("oversized", f"{len(payload)} bytes")
    if payload in (b"online", b"offline"):
        return payload == b"online", None, False
    try:
        msg = json.loads(payload)  # short: no nesting deep enough to recurse far
    except (ValueError, RecursionError) as exc:
        raise StatusRejected("malformed", f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise StatusRejected("malformed", "not a JSON object")
    state = msg.get("state")
    if not isinstance(state, str):
        raise StatusRejected("malformed", "no string 'state'")
    nonce = msg.get("nonce")
    raw = None
    if isinstance(nonce, str) and len(nonce) == 2 * NONCE_LEN:
        try:
            raw = bytes.fromhex(nonce)
        except ValueError:
            raw = None
    return state == "online", raw, msg.get("refresh") is True


class AnswerLimiter:
    """A token bucket per meter: `burst` answers at once (a meter that reboots twice in a row is
    answered each time), then one per `min_interval_s` (monotonic clock)."""

    def __init__(
        self,
        min_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        burst: int = 3,
        max_meters: int = 100_000,
    ) -> None:
        self.min_interval_s = min_interval_s
        self.burst = burst
        self._clock = clock
        self._max = max_meters
        self._bucket: dict[bytes, tuple[float, float]] = {}  # meter -> (tokens, at)

    def allow(self, meter_id: bytes) -> bool:
        now = self._clock()
        tokens, at = self._bucket.get(meter_id, (float(self.burst), now))
        if self.min_interval_s > 0:
            tokens = min(float(self.burst), tokens + (now - at) / self.min_interval_s)
        else:
            tokens = float(self.burst)
        if tokens < 1:
            self._bucket[meter_id] = (tokens, now)
            return False
        if len(self._bucket) >= self._max and meter_id not in self._bucket:
            self._bucket.clear()  # only enrolled meters get here; bounded anyway
        self._bucket[meter_id] = (tokens - 1, now)
        return True
