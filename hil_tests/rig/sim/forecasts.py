"""The forecast service of the simulated microgrid: what each node's gateway is told to expect.

Each household, EV, critical load and PV plant gets `market.forecast_file`
(gateway/grid/forecast_source.py): Wh per 15-minute window, a noisy, biased version of what its
profile will really do (hil_tests/rig/profiles.py `actual`):

* day-ahead, written before the day starts: actual energy of the window x the node's bias (one
  factor U(1 - BIAS, 1 + BIAS) for the whole day) x a lognormal factor per window (mean 1,
  sigma DAY_AHEAD_SIGMA);
* intraday, every virtual hour: the windows starting within the next REVISE_AHEAD_S are revised
  to actual x a lognormal factor of sigma INTRADAY_SIGMA (no bias: a fresher forecast).

So the gateways plan the day on a forecast that is wrong, and trade again intraday when it is
revised: a producer offers more receipts when its forecast rises (and is short, an imbalance,
when it falls after selling), a consumer's last-resort purchase buys up to its revised need.
The battery keeps its flat forecast. Seeded: the same seed gives the same forecasts.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from hil_tests.rig.sim.driver import PERIOD_S

BIAS = 0.15
DAY_AHEAD_SIGMA = 0.3
INTRADAY_SIGMA = 0.1
REVISE_EVERY_S = 3600
REVISE_AHEAD_S = 2 * 3600
KINDS = ("home", "ev", "critical", "pv")


def _lognormal(rnd: random.Random, sigma: float) -> float:
    return rnd.lognormvariate(-(sigma**2) / 2, sigma)


class Forecaster:
    def __init__(self, nodes: list, workdir: Path, t0: float, t1: float, seed: int) -> None:
        self.nodes = [n for n in nodes if n.kind in KINDS and n.profile is not None]
        self.workdir = workdir
        self.first = int(t0 // PERIOD_S * PERIOD_S)
        self.last = int(t1)
        self.rnd = random.Random(f"forecast-{seed}")
        self.bias = {n.name: self.rnd.uniform(1 - BIAS, 1 + BIAS) for n in self.nodes}
        self.day_ahead: dict[str, dict[int, int]] = {n.name: {} for n in self.nodes}
        self.current: dict[str, dict[int, int]] = {n.name: {} for n in self.nodes}
        self.revisions = 0
        self.cover(t0, t1)

    def cover(self, t0: float, t1: float) -> None:
        """Day-ahead forecasts for the windows of [t0, t1) not forecast yet (the day may start
        later than planned: a slow bring-up)."""
        self.last = max(self.last, int(t1))
        for n in self.nodes:
            table, current = self.day_ahead[n.name], self.current[n.name]
            for s in self._windows(int(t0 // PERIOD_S * PERIOD_S), t1):
                if s not in table:
                    noise = _lognormal(self.rnd, DAY_AHEAD_SIGMA)
                    table[s] = current[s] = round(self._actual(n, s) * self.bias[n.name] * noise)

    def path(self, name: str) -> Path:
        return self.workdir / name / "forecast.csv"

    def _windows(self, start: int, end: float) -> range:
        return range(start, int(end), PERIOD_S)

    def _actual(self, n, start: int) -> float:
        """Wh the node really imports (consumers) or exports (PV) in the window."""
        wh = n.profile.actual_wh(start, start + PERIOD_S)
        return max(0.0, -wh if n.kind == "pv" else wh)

    def write(self) -> None:
        for n in self.nodes:
            lines = [f"# {n.name}: forecast revision {self.revisions}", "start,wh"]
            lines += [f"{s},{wh}" for s, wh in sorted(self.current[n.name].items())]
            path = self.path(n.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text("\n".join(lines) + "\n")
            os.replace(tmp, path)  # the gateway never reads half a file

    def revise(self, now: float) -> None:
        """The intraday forecast for the windows starting within REVISE_AHEAD_S."""
        first = int(now // PERIOD_S + 1) * PERIOD_S
        for n in self.nodes:
            for s in self._windows(first, min(self.last, now + REVISE_AHEAD_S)):
                self.current[n.name][s] = round(
                    self._actual(n, s) * _lognormal(self.rnd, INTRADAY_SIGMA)
                )
        self.revisions += 1
        self.write()
