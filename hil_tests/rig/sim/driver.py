"""The physics of the simulated microgrid: what each load and source really does, step by step.

Each step (a fraction of a real second, many virtual seconds) the driver

* asks every node's profile for its actual power (the battery asks its strategy),
* lets energy through a prepaid or critical meter as S0 pulses — a prepaid load draws only while
  its relay is closed (what it wanted meanwhile is counted as unserved, never delivered),
* sets the power the BL0942 chips of PV plants and batteries see (they integrate it themselves),
* and meters the sum through the grid connection (the POD's SDM630), plus the feeder's line losses
  from a pandapower power flow every `LOSS_STEP_S` of virtual time (the same network the market's
  feeder check uses).

The truth it keeps (energy per node and per 15-minute period, unserved energy, losses, relay
positions) is what the invariants compare the signed readings and the settlement with.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hil_tests.rig.sim.grid import SimGrid
from hil_tests.rig.sim.node import SimNode

LOSS_STEP_S = 300
PERIOD_S = 900


@dataclass
class Truth:
    import_wh: float = 0.0
    export_wh: float = 0.0
    unserved_wh: float = 0.0  # a prepaid load wanted it while its relay was open
    relay_open_s: float = 0.0  # time a critical load spent cut off (must stay 0)
    power: list[tuple[float, float]] = field(default_factory=list)  # (t, W) every LOSS_STEP_S
    period_wh: dict[int, float] = field(default_factory=lambda: defaultdict(float))  # + import
    # (t, Wh moved either way until t, when it was done) per step booked at t: what flowed in
    # a time window (the per-slot balance's attribution bound, hil_tests/rig/sim/slot_balance.py)
    steps: list[tuple[float, float, float]] = field(default_factory=list)

    def sent(self, done: float) -> None:
        """The last step's pulses had all been sent at virtual time `done`."""
        t, moved, _ = self.steps[-1]
        self.steps[-1] = (t, moved, done)

    def largest_step_wh(self) -> float:
        """The most energy one step moved (either way): what the rig sent at once."""
        moved = [m for _, m, _ in self.steps]
        return max((b - a for a, b in zip([0.0, *moved], moved, strict=False)), default=0.0)

    def add(self, watts: float, seconds: float, t: float) -> None:
        wh = watts * seconds / 3600
        self.steps.append((t, (self.steps[-1][1] if self.steps else 0.0) + abs(wh), t))
        if wh >= 0:
            self.import_wh += wh
        else:
            self.export_wh -= wh
        self.period_wh[int(t // PERIOD_S * PERIOD_S)] += wh


@dataclass
class Battery:
    """A home battery's physical strategy: charge from the feeder's PV surplus, discharge into its
    evening peak, within its capacity and its inverter's power."""

    capacity_wh: float
    max_w: float = 3000.0
    soc_wh: float = 0.0

    def __post_init__(self) -> None:
        self.soc_wh = self.capacity_wh / 2

    def power_w(self, surplus_w: float, hour: float, seconds: float) -> float:
        if surplus_w > 200 and self.soc_wh < self.capacity_wh:
            want = min(self.max_w, surplus_w)
        elif 17 <= hour < 23 and self.soc_wh > 0:
            want = -self.max_w
        else:
            want = 0.0
        self.soc_wh = min(self.capacity_wh, max(0.0, self.soc_wh + want * seconds / 3600))
        return want


class Driver:
    def __init__(self, sg: SimGrid) -> None:
        self.sg = sg
        self.truth: dict[str, Truth] = {name: Truth() for name in sg.nodes}
        self.batteries = {
            n.name: Battery(n.spec.capacity_wh)
            for n in sg.nodes.values()
            if n.spec.kind == "battery"
        }
        self.power_w = sg.power_w
        self.relay: dict[str, int] = {}
        self.loss_wh = 0.0
        self.loss_period: dict[int, float] = defaultdict(float)
        self._loss_w = 0.0
        self.peak_w = 0.0  # the most power moving on the feeder at once (all nodes, |W|)
        self.boundary_slop: dict[int, float] = {}  # boundary -> length of the step across it
        self.boundary_w: dict[int, float] = {}  # boundary -> sum of |W| of the meters across it
        self.pod_truth = Truth()  # what really flowed through the grid connection
        self.steps = 0
        self.longest_step_s = 0.0  # virtual seconds one step covered, at most
        self.longest_step_real_s = 0.0  # real seconds one step took to compute, at most
        self._feeder: Any = None
        self._last = sg.clock.now()
        self._window_wh: dict[str, float] = defaultdict(float)
        self._window_start = self._last
        self._chip_flow: dict[str, tuple[float, float]] = {}
        # the S0 meters are asked for their relay and sent their pulses all at once: one after
        # the other, 45 boards on a loaded 2-core machine made one step last virtual minutes
        # (and the energy of a step is booked at the relay position of its end)
        self._s0 = [n for n in sg.nodes.values() if n.spec.meter_source == "s0"
                    and n.spec.kind != "pod"]  # fmt: skip
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(16, len(self._s0))),
                                        thread_name_prefix="driver")  # fmt: skip

    def feeder(self) -> Any:
        if self._feeder is None:
            from gateway.market.feeder import Feeder

            self._feeder = Feeder(self.sg.grid.topology)
        return self._feeder

    def adopt_feeder(self, feeder: Any) -> None:
        self._feeder = feeder

    def begin(self) -> None:
        """The day starts now: nothing before counts (the meters saw no load until now). The
        feeder model is built first: pandapower takes seconds to import."""
        self.feeder()
        self._last = self._window_start = self.sg.clock.now()
        self._chip_flow = {n.name: n.chip.flow_wh() for n in self.sg.nodes.values() if n.chip}

    def settle(self) -> None:
        """The span is over: account the last step, then every load and source goes quiet, so
        the last readings close on exactly what was counted."""
        self.step()
        for name in self.power_w:
            self.power_w[name] = 0.0
        now = self.sg.clock.now()
        for n in self.sg.nodes.values():
            if n.chip is not None:  # what it counted since the step, at the powers set then
                wh = self._chip_wh(n)
                self.truth[n.name].add(wh * 3600, 1.0, now)
                self.pod_truth.add(wh * 3600, 1.0, now)
                self.sg.pod_meter.advance(wh * 3600, 1.0)
        self.sg.pod_meter.advance(0.0, 0.0)

    def _chip_wh(self, n: SimNode) -> float:
        """Net Wh (+ import) through a BL0942 node since the last call, as its chip saw it."""
        assert n.chip is not None
        imp, exp = n.chip.flow_wh()
        imp0, exp0 = self._chip_flow.get(n.name, (imp, exp))
        self._chip_flow[n.name] = (imp, exp)
        return (imp - imp0) - (exp - exp0)

    def step(self) -> float:
        """Advance the physics to the clock's now; returns the virtual seconds covered.

        A zero-order hold: the powers set at the previous step flowed during [last, now]. That
        energy is booked (truth, S0 pulses, the POD's meter, the BL0942 chips' own count, which
        is brought up to now before its power changes); then the powers for the next step are
        set from the profiles and strategies."""
        now = self.sg.clock.now()
        dt, last, self._last = max(0.0, now - self._last), self._last, now
        if dt == 0:
            return 0.0
        wall0 = time.monotonic()
        self.steps += 1
        self.longest_step_s = max(self.longest_step_s, dt)
        boundary = now // PERIOD_S * PERIOD_S
        if last < boundary:  # this step straddles a period boundary: its energy could be on
            self.boundary_slop[int(boundary)] = now - last  # either side of it for a meter
            self.boundary_w[int(boundary)] = sum(
                abs(self.power_w[n.name])
                for n in self.sg.nodes.values()
                if n.spec.kind != "pod" and n.meter_pubkey
            )
        net = 0.0
        closed = dict(zip((n.name for n in self._s0), self._pool.map(self._relay, self._s0),
                          strict=True))  # fmt: skip
        send: list[tuple[SimNode, int]] = []
        for n in self.sg.nodes.values():
            if n.spec.kind == "pod":
                continue
            watts = self.power_w[n.name]
            t = self.truth[n.name]
            if n.spec.meter_source == "s0":
                if not closed[n.name]:
                    if n.spec.kind == "critical":
                        t.relay_open_s += dt
                    t.unserved_wh += max(watts, 0.0) * dt / 3600
                    watts = 0.0
                due = n.energy.advance(watts, dt)
                if due and n.board is not None and n.board.alive():
                    send.append((n, due))
            elif n.chip is not None:  # what flowed is what the chip saw (it samples its load
                watts = self._chip_wh(n) * 3600 / dt  # on its own clock, not at our steps)
            t.add(watts, dt, now)
            self._window_wh[n.name] += watts * dt / 3600
            net += watts
        for _ in self._pool.map(lambda nd: nd[0].board.pulses(nd[1]), send):  # type: ignore[union-attr]
            pass  # (a failed send raises here, as it did one by one)
        done = self.sg.clock.now()
        for n, _due in send:
            self.truth[n.name].sent(done)
        self.peak_w = max(self.peak_w, sum(abs(w) for w in self.power_w.values()))
        loss_w = self._loss_w  # the last power flow's losses, until the next one
        self.loss_wh += loss_w * dt / 3600
        self.loss_period[int(now // PERIOD_S * PERIOD_S)] += loss_w * dt / 3600
        self.pod_truth.add(net + loss_w, dt, now)
        self.sg.pod_meter.advance(net + loss_w, dt)
        if now - self._window_start >= LOSS_STEP_S:
            self._losses(now)
        self._set_powers(now, dt)
        self.longest_step_real_s = max(self.longest_step_real_s, time.monotonic() - wall0)
        return dt

    def _set_powers(self, now: float, dt: float) -> None:
        hour = (now % 86400) / 3600
        sources = sum(-min(0.0, self._actual(n, now)) for n in self._nodes("pv"))
        loads = sum(max(0.0, self._actual(n, now)) for n in self._nodes("home", "critical", "ev"))
        for n in self.sg.nodes.values():
            if n.spec.kind == "battery":
                self.power_w[n.name] = self.batteries[n.name].power_w(sources - loads, hour, dt)
            elif n.spec.kind != "pod":
                self.power_w[n.name] = self._actual(n, now)
            if n.chip is not None:
                n.chip.integrate()  # the chip samples its new load now

    def _losses(self, now: float) -> None:
        span = now - self._window_start
        net_wh = {name: round(wh) for name, wh in self._window_wh.items()}
        for name, t in self.truth.items():
            if name != "pod":
                t.power.append((self._window_start, self._window_wh[name] * 3600 / span))
        try:
            feeder = self.feeder()
            feeder.run(net_wh, int(span))
            loss = float(feeder.net.res_line.pl_mw.sum()) * 1e6 * span / 3600  # Wh, unrounded
        except Exception:  # noqa: BLE001 - a non-converging flow must not stop the day
            loss = 0.0
        self._loss_w = loss * 3600 / span
        self._window_wh.clear()
        self._window_start = now

    def _actual(self, n: SimNode, now: float) -> float:
        return n.spec.profile.actual_w(now) if n.spec.profile is not None else 0.0

    def _nodes(self, *kinds: str) -> list[SimNode]:
        return [n for n in self.sg.nodes.values() if n.spec.kind in kinds]

    def _relay(self, n: SimNode) -> int:
        if n.board is None or not n.board.alive():
            return 0  # a meter without power switches nothing through
        try:
            state = n.board.state()
            self.relay[n.name] = int(state["gpio"]["relay"])  # type: ignore[index]
        except Exception:  # noqa: BLE001 - the board is being reset: keep the last position
            pass
        return self.relay.get(n.name, 0)


def run_until(driver: Driver, t_end: float, tick: Any = None, step_s: float = 0.1) -> None:
    """Drive the physics until virtual time `t_end`; `tick(now)` after each step (view, faults).

    Steps are `step_s` of real time, except around each 15-minute boundary: one step just before
    it and one just after, so the energy booked to a period is what the meters count in their
    interval (S0 pulses arrive when sent; the chips integrate continuously). The steps keep 1.5
    of the meters' idle floors (real time) away from a boundary: a meter notices the boundary
    at most one floor late, and closes its interval before the pulses after it come."""
    clock = driver.sg.clock
    floor_s = getattr(driver.sg, "idle_floor_ms", 0.0) / 1000
    margin = max(1.0, 0.01 * clock.speed, 1.5 * floor_s * clock.speed)  # virtual s either side
    while (now := clock.now()) < t_end:
        driver.step()
        if tick is not None:
            tick(now)
        now = clock.now()
        boundary = (now // PERIOD_S + 1) * PERIOD_S
        wake = now + step_s * clock.speed
        if now < boundary - margin < wake:
            wake = boundary - margin
        elif boundary - margin <= now < boundary + margin:
            wake = boundary + margin
        time.sleep(max(0.0, (min(wake, t_end) - now) / clock.speed))


def hours(seconds: float) -> str:
    h = math.floor(seconds / 3600)
    return f"{h:02d}:{int(seconds % 3600 // 60):02d}"
