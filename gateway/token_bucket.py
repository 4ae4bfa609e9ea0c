"""A token bucket per key (pure, no clock of its own): `burst` at once, refilled at `rate` per
second, so that one sender cannot flood a desk while the others are served.

The time is the caller's `now` (seconds; a clock that steps back refills nothing, and the rate
counts from the time it stepped back to). With `max_keys`, at most that many buckets are
remembered: the one used longest ago is forgotten first (it comes back full, which only errs
towards the sender it belongs to). gateway/mqtt/status.AnswerLimiter is a third bucket of the
same kind, left as it is (it forgets every meter at once when full).
"""

from __future__ import annotations

from collections.abc import Hashable


class TokenBuckets:
    def __init__(self, rate: float, burst: float, max_keys: int | None = None) -> None:
        if not rate > 0 or not burst >= 1 or (max_keys is not None and max_keys < 1):
            raise ValueError(
                f"rate > 0, burst >= 1, max_keys >= 1: not {rate}, {burst}, {max_keys}"
            )
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at), oldest first

    def allow(self, key: Hashable, now: float) -> bool:
        """Take one token of `key`'s bucket if it has one; False (nothing taken) if not."""
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        ok = tokens >= 1
        if self.max_keys is not None:
            while len(self._buckets) >= self.max_keys:
                del self._buckets[next(iter(self._buckets))]
        self._buckets[key] = (tokens - 1 if ok else tokens, now)
        return ok

    def __len__(self) -> int:
        return len(self._buckets)
