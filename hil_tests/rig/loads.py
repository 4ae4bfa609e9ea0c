"""Simulated loads and sources of the microgrid: pure functions of (virtual) time.

Power is in watts as a meter sees it: positive = import from the grid (consumption),
negative = export (production). Profiles are smooth and deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

DAY = 86400.0


def _hour_of_day(t: float) -> float:
    return (t % DAY) / 3600.0


@dataclass
class Household:
    """A home: base load, morning and evening peaks, seeded jitter."""

    base_w: float = 300.0
    peak_w: float = 2500.0
    seed: int = 0

    def power_w(self, t: float) -> float:
        h = _hour_of_day(t)
        morning = math.exp(-((h - 7.5) ** 2) / 1.5)
        evening = math.exp(-((h - 19.0) ** 2) / 3.0)
        jitter = random.Random(self.seed * 1_000_003 + int(t // 60)).uniform(0.85, 1.15)
        return (self.base_w + self.peak_w * max(morning, evening)) * jitter


@dataclass
class PvPlant:
    """Photovoltaics: a clear-sky bell between sunrise and sunset, minus a small self-consumption."""

    peak_w: float = 5000.0
    sunrise_h: float = 6.0
    sunset_h: float = 20.0
    standby_w: float = 5.0

    def power_w(self, t: float) -> float:
        h = _hour_of_day(t)
        if not self.sunrise_h < h < self.sunset_h:
            return self.standby_w
        x = (h - self.sunrise_h) / (self.sunset_h - self.sunrise_h)
        return self.standby_w - self.peak_w * math.sin(math.pi * x) ** 2


@dataclass
class Battery:
    """Storage that charges around midday and discharges in the evening, within its capacity."""

    capacity_wh: float = 10_000.0
    max_w: float = 3000.0
    soc_wh: float = 5_000.0
    _last_t: float | None = field(default=None, repr=False)

    def power_w(self, t: float) -> float:
        h = _hour_of_day(t)
        wanted = self.max_w if 10 <= h < 15 else (-self.max_w if 17 <= h < 22 else 0.0)
        if self._last_t is not None:
            dt_h = max(0.0, t - self._last_t) / 3600
            self.soc_wh = min(self.capacity_wh, max(0.0, self.soc_wh + wanted * dt_h))
        self._last_t = t
        if wanted > 0 and self.soc_wh >= self.capacity_wh:
            return 0.0
        if wanted < 0 and self.soc_wh <= 0:
            return 0.0
        return wanted


class EnergyIntegrator:
    """Turns a power profile into whole S0 pulses without ever losing a fraction of a pulse."""

    def __init__(self, imp_per_kwh: int = 1000) -> None:
        self.imp_per_kwh = imp_per_kwh
        self.import_wh = 0.0
        self.export_wh = 0.0
        self._pulses_sent = 0

    def advance(self, power_w: float, seconds: float) -> int:
        """Account `seconds` at `power_w`; return the import pulses now due."""
        wh = power_w * seconds / 3600
        if wh >= 0:
            self.import_wh += wh
        else:
            self.export_wh -= wh
        due = int(self.import_wh * self.imp_per_kwh / 1000) - self._pulses_sent
        self._pulses_sent += due
        return due
