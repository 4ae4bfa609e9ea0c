"""Each fault scenario of `sgrid sim` runs in its short form (issue 13 §4): the smallest grid that
exercises it (one home, or two where a random one is picked; the critical household, one PV
plant and the POD; no battery, no EV) for one virtual hour at 240x, and every invariant of the
report holds, the scenario's own check and the per-slot energy balance (every slot judged,
alone or in a merged window: hil_tests/rig/sim/slot_balance.py) included."""

import json
import subprocess
import sys

import pytest

from hil_tests.rig.broker import mosquitto_available
from hil_tests.rig.sim import invariants

needs_broker = pytest.mark.skipif(
    not mosquitto_available(), reason="needs mosquitto (tools/run installs it)"
)

# the scenario -> (the check it adds to the report's invariants or None, its prepaid homes)
SCENARIOS = {
    "broker-restart": (None, 1),
    "cheater": ("cheater", 1),
    "clock-drift": ("clock_drift", 1),
    "gateway-kill": (None, 1),
    "malicious-meter": ("malicious_meter", 1),
    "partition": ("partition", 1),
    "pod-outage": (None, 1),
    "power-cuts": ("power_cuts", 2),
    "unpaid-draw": ("unpaid_draw", 1),
}


@needs_broker
@pytest.mark.timeout(960)  # a sim of its own: longer than the suite's default on a busy machine
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_short_form_keeps_every_invariant(scenario, tmp_path):
    own, homes = SCENARIOS[scenario]
    report = tmp_path / "report"
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "sim", "--scenario", scenario, "--homes", str(homes),
         "--pv", "1", "--batteries", "0", "--ev", "0", "--hours", "1", "--start-hour", "10",
         "--speed", "240",
         "--workdir", str(tmp_path / "run"), "--report", str(report)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    data = json.loads((report / "report.json").read_text())
    assert data["scenario"] == scenario
    failed = sorted(n for n, inv in data["invariants"].items() if not inv["holds"])
    assert failed == [], (failed, data["invariants"].get("slot_energy_balance"),
                          out.stdout[-3000:] + out.stderr[-2000:])  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    slots = data["invariants"]["slot_energy_balance"]
    assert slots["slots_judged"] == slots["slots"], slots  # no data is missing in these faults
    if own is not None:
        assert own in data["invariants"], sorted(data["invariants"])
    assert "fault" in out.stdout  # the fault was injected and shown


def _end(local, remote, in_flight=0, settling=False):
    return {"state": "OPEN", "local_msat": local, "remote_msat": remote,
            "in_flight_msat": in_flight, "settling": settling}  # fmt: skip


def test_channel_capacity_counts_what_is_in_flight_and_can_fail():
    paying = {"channel_id": "c1", "capacity_msat": 100,
              "ends": {"a": _end(60, 30, 10, True), "b": _end(40, 60)}}  # fmt: skip
    assert invariants.channels_conserved([paying])["holds"]  # 10 msat in an HTLC
    lost = {
        "channel_id": "c1",
        "capacity_msat": 100,
        "ends": {"a": _end(60, 30), "b": _end(30, 60)},
    }
    assert not invariants.channels_conserved([lost])["holds"]
    apart = {
        "channel_id": "c1",
        "capacity_msat": 100,
        "ends": {"a": _end(60, 40), "b": _end(50, 50)},
    }
    assert not invariants.channels_conserved([apart])["holds"]  # both quiet, yet they disagree


def test_a_slow_fault_does_not_stop_the_physics_and_its_error_is_not_lost():
    """A gateway restart takes seconds (many virtual minutes at 240x): the sim loop must keep
    stepping meanwhile, or the driver books the whole gap at the relay positions from before it
    (the cheater's home once drew 140 Wh more than it had paid for that way)."""
    import threading
    import time

    from hil_tests.rig.sim.scenarios import Faults

    release = threading.Event()
    seen: list[str] = []
    faults = Faults(None, "normal", 0.0, 100.0, seen.append)  # type: ignore[arg-type]
    faults.add(0.1, "fault: slow", lambda: (release.wait(10), seen.append("slow done")))
    faults.add(0.2, "fault: after", lambda: seen.append("after done"))
    faults.add(0.3, "fault: inline", lambda: seen.append("inline done"), inline=True)
    t0 = time.monotonic()
    for now in (5.0, 15.0, 25.0, 35.0):
        faults.tick(now)
    assert time.monotonic() - t0 < 1.0  # the loop went on while the slow fault waits
    assert "inline done" in seen and "slow done" not in seen
    release.set()
    faults.join()
    assert seen.index("slow done") < seen.index("after done")  # in their order

    def broken() -> None:
        raise RuntimeError("the gateway did not come back")

    faults = Faults(None, "normal", 0.0, 100.0, seen.append)  # type: ignore[arg-type]
    faults.add(0.0, "fault: broken", broken)
    faults.tick(1.0)
    with pytest.raises(RuntimeError, match="did not come back"):
        faults.join()


def test_every_scenario_but_the_normal_day_injects_its_faults():
    from hil_tests.rig.sim import scenarios

    assert set(scenarios.BUILDERS) == set(scenarios.SCENARIOS) - {"normal"}
