"""The sim's scenarios: a normal day, and days with one kind of fault injected (issue 13 §4).

A scenario is a list of faults, each at a fraction of the simulated span; `Faults.tick(now)`
fires them from the sim loop, on a worker thread in their order (a gateway's restart takes
seconds, which at 240x are many virtual minutes: the physics must go on meanwhile, or it would
book that whole gap at the relay positions from before it), and `Faults.join()` waits for them. Faults act only on the bench (processes, the broker, the wires):
never on production state the system could not meet in the field. What each one must leave
intact is checked by the invariants like any other day; some add their own check.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hil_tests.rig.sim import faults_cheater, faults_meters, faults_network
from hil_tests.rig.sim.grid import SimGrid
from hil_tests.rig.sim.slot_balance import Allowance


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("normal", "a day with no fault"),
        Scenario("broker-restart", "mosquitto is stopped at 40 % of the day and restarted"),
        Scenario("gateway-kill", "a household's gateway is SIGKILLed mid-day and restarted"),
        Scenario("power-cuts", "random meters lose power (SIGKILL) and come back"),
        Scenario("partition", "a node loses its peers for an hour (its meter keeps going)"),
        Scenario("clock-drift", "a meter's clock is set an hour ahead; the gateway corrects it"),
        Scenario("malicious-meter", "a meter account publishes forged and replayed readings"),
        Scenario("unpaid-draw", "a household with no credit tries to draw energy all day"),
        Scenario("cheater", "a node restores an old channel state and force-closes with it"),
        Scenario("pod-outage", "the POD's gateway is down for an hour"),
    )
}


@dataclass
class Fault:
    at: float  # fraction of the span
    what: str
    action: Callable[[], None]
    inline: bool = False  # run in the sim loop itself (short, and it must be between two steps)
    done: bool = False


@dataclass
class Faults:
    sg: SimGrid
    scenario: str
    t_begin: float
    t_end: float
    log: Callable[[str], None]
    seed: int = 1
    driver: Any = None  # the physics (hil_tests/rig/sim/driver.py): its truth, relay positions
    faults: list[Fault] = field(default_factory=list)
    # scenario-specific results: {"holds", figures}, or a callable judged when the day is over
    checks: dict[str, Any] = field(default_factory=dict)
    watches: list[Callable[[float], None]] = field(default_factory=list)  # called every step
    # energy the rig knows flowed where no meter could count it, per node (power-cuts)
    unmetered: Callable[[], dict[str, int]] = dict
    # what each power cut may have cost its meter's count, where and when (the slot balance)
    allowances: Callable[[], list[Allowance]] = list
    # per meter: (its console lines, the rig's time when the rig put its clock ahead, seconds)
    clock_drifts: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._error: Exception | None = None
        self._worker = threading.Thread(target=self._work, name="faults", daemon=True)
        self._worker.start()
        build = BUILDERS.get(self.scenario)
        if build is not None:
            build(self)

    def tick(self, now: float) -> None:
        for watch in self.watches:
            watch(now)
        frac = (now - self.t_begin) / max(1.0, self.t_end - self.t_begin)
        for f in self.faults:
            if not f.done and frac >= f.at:
                f.done = True
                self.log(f.what)
                if f.inline:
                    f.action()
                else:
                    self._queue.put(f.action)

    def join(self, timeout: float = 600.0) -> None:
        """Wait for the faults still running; raise what one of them raised."""
        self._queue.put(None)
        self._worker.join(timeout)
        if self._worker.is_alive():
            raise RuntimeError(f"a fault action still runs after {timeout:.0f} s")
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while (action := self._queue.get()) is not None:
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - raised again by join()
                self._error = self._error or exc

    def add(self, at: float, what: str, action: Callable[[], None], inline: bool = False) -> None:
        self.faults.append(Fault(at, what, action, inline))

    def victim(self, kind: str = "home") -> Any:
        return next(n for n in self.sg.nodes.values() if n.spec.kind == kind)


# what each scenario adds to a day ("normal": nothing)
BUILDERS: dict[str, Callable[[Faults], None]] = {
    "broker-restart": faults_network.broker_restart,
    "gateway-kill": faults_network.gateway_kill,
    "partition": faults_network.partition,
    "pod-outage": faults_network.pod_outage,
    "power-cuts": faults_meters.power_cuts,
    "clock-drift": faults_meters.clock_drift,
    "malicious-meter": faults_meters.malicious_meter,
    "unpaid-draw": faults_meters.unpaid_draw,
    "cheater": faults_cheater.cheater,
}
