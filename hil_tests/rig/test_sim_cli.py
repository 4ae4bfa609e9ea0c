"""The README's main job, `sgrid sim`, runs end to end (short) and reports what it promises."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hil_tests.rig.broker import mosquitto_available
from hil_tests.rig.sim import invariants

needs_broker = pytest.mark.skipif(
    not mosquitto_available(), reason="needs mosquitto (tools/run installs it)"
)


def _sgrid(
    *args: str, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)  # fmt: skip


@needs_broker
@pytest.mark.timeout(1200)
def test_sgrid_sim_runs_a_short_day_with_market_channels_and_report(tmp_path):
    report = tmp_path / "report"
    # a relative --workdir, as the default run/sim is (the nodes' configs once named files
    # relative to their own directory: run/sim/home-1/run/sim/broker/ca.pem)
    out = _sgrid("sim", "--homes", "1", "--pv", "1", "--hours", "1", "--start-hour", "10",
                 "--speed", "60", "--workdir", "run", "--report", str(report),
                 timeout=1100, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    data = json.loads((report / "report.json").read_text())
    assert data["scenario"] == "normal"
    for name, inv in data["invariants"].items():
        assert inv["holds"], (name, inv)
    home = data["nodes"]["home-1"]
    assert home["paid_msat"] > 0 and home["import_wh"] > 0  # it bought energy and drew it
    assert home["import_wh"] <= home["credit_bought_wh"]
    assert data["nodes"]["pv-1"]["export_wh"] > 0
    # money: every msat deposited is held by a node or in flight; what home-1 spent on
    # receipts, their sellers earned (hil_tests/rig/sim/money.py)
    assert data["money"]["difference_msat"] == 0
    assert home["spent_msat"] >= home["paid_msat"] > 0
    sellers = sum(n["earned_msat"] for n in data["nodes"].values())
    assert 0 < sellers <= sum(n["spent_msat"] for n in data["nodes"].values())  # + grid fees
    assert data["service"]["bought_credit"] >= 1 and data["service"]["got_delivery"] >= 1
    assert "every invariant holds" in out.stdout
    for png in ("power", "prices", "channels", "imbalances"):
        assert (report / f"{png}.png").stat().st_size > 5_000
    assert (report / "report.html").stat().st_size > 20_000
    assert max(len(line) for line in out.stdout.splitlines()) <= 100  # fits a terminal


def test_list_scenarios_and_help():
    out = _sgrid("sim", "--list-scenarios")
    assert out.returncode == 0, out.stderr
    for name in ("normal", "broker-restart", "gateway-kill", "power-cuts", "partition",
                 "clock-drift", "malicious-meter", "unpaid-draw", "cheater", "pod-outage"):  # fmt: skip
        assert name in out.stdout
    out = _sgrid("sim", "--help")
    assert out.returncode == 0 and "--hours" in out.stdout and "--scenario" in out.stdout


def test_sgrid_help_lists_every_command():
    out = _sgrid("--help")
    assert out.returncode == 0, out.stderr
    for cmd in ("board", "sim", "gateway", "ledger", "channel", "invoice", "pay"):
        assert f"  {cmd}" in out.stdout, cmd


def test_energy_balance_holds_only_within_metering_resolution():
    nodes = {"a": 150, "b": -320}
    periods = {"a": {0: 100, 900: 50}, "b": {0: -300, 900: -20}}
    pod = {0: -197.0, 900: 33.0}  # 3 Wh of line losses per period
    losses = {0: 3.0, 900: 3.0}
    ok = invariants.energy_balance(nodes, -164.0, 6.0, 0.0, periods, pod, losses)
    assert ok["holds"] and ok["span_gap_wh"] == 0
    broken = invariants.energy_balance(nodes, -164.0 + 40, 6.0, 0.0, periods, pod, losses)
    assert not broken["holds"]  # 40 Wh through the POD that no meter signed for


def test_settlement_and_supply_invariants_can_fail():
    assert invariants.settlement_zero([{"period": 1, "amount_msat": 5},
                                       {"period": 1, "amount_msat": -5}])["holds"]  # fmt: skip
    assert not invariants.settlement_zero([{"period": 1, "amount_msat": 5}])["holds"]
    assert invariants.supply_constant(100, {"a": 60}, 40)["holds"]
    assert not invariants.supply_constant(100, {"a": 61}, 40)["holds"]
    assert not invariants.prepaid_within_credit({"h": 11}, {"h": 10}, 0, 0)["holds"]
