"""The board's clock: real time or virtual time running `speed` times faster.

All processes of a rig share one virtual timeline: virtual = start + (time.time() - real_t0) * speed,
so emulated meters, the gateway and the loads agree on what time it is without talking to each other.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class VirtualClock:
    speed: float = 1.0
    real_t0: float = field(default_factory=time.time)
    virtual_t0: float | None = None  # unix seconds at real_t0; None = same as real_t0

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("clock speed must be > 0")
        if self.virtual_t0 is None:
            self.virtual_t0 = self.real_t0
        self._mono_t0 = time.monotonic()

    def now(self) -> float:
        """Virtual wall-clock time in unix seconds."""
        assert self.virtual_t0 is not None
        return self.virtual_t0 + (time.time() - self.real_t0) * self.speed

    def ticks_ms(self) -> int:
        """Virtual monotonic milliseconds since this clock was made."""
        return int((time.monotonic() - self._mono_t0) * self.speed * 1000)

    def wait(self, virtual_ms: float, wake: threading.Event) -> bool:
        """Sleep `virtual_ms` of virtual time, or until `wake` is set. True if woken early."""
        woke = wake.wait(max(0.0, virtual_ms) / 1000.0 / self.speed)
        wake.clear()
        return woke

    def as_args(self) -> list[str]:
        return [
            "--speed",
            repr(self.speed),
            "--real-t0",
            repr(self.real_t0),
            "--virtual-t0",
            repr(self.virtual_t0),
        ]
