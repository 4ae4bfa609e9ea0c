"""`sgrid sim --ledger etcd`: the grid's ledger runs as three replicas on a real 3-member etcd
cluster (docs/ledger.md, "Replicated mode"), the gateways spread over them, and the day's
invariants hold on that ledger: every replica verifies and all hold the same chain.

Short form: one home, the critical household, one PV plant and the POD for half a virtual hour
at 240x."""

import json
import subprocess
import sys

import pytest

from hil_tests.gateway.ledger.etcd_cluster import ETCD
from hil_tests.rig.broker import mosquitto_available

pytestmark = [
    pytest.mark.needs("etcd (the Debian package etcd-server)", ETCD is not None),
    pytest.mark.needs("mosquitto", mosquitto_available()),
]
SLOT_BALANCE = "slot_energy_balance"  # judged on whole slots only: see test_sim_scenarios.py


@pytest.mark.timeout(960)  # a sim of its own: longer than the suite's default on a busy machine
def test_the_sim_runs_its_ledger_replicated_on_etcd_and_the_replicas_agree(tmp_path):
    report = tmp_path / "report"
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "sim", "--ledger", "etcd", "--homes", "1", "--pv", "1",
         "--batteries", "0", "--ev", "0", "--minutes", "30",
         "--start-hour", "11", "--speed", "240",
         "--workdir", str(tmp_path / "run"), "--report", str(report)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    log = out.stdout[-3000:] + out.stderr[-2000:]
    data = json.loads((report / "report.json").read_text())
    inv = data["invariants"]
    failed = sorted(n for n, v in inv.items() if not v["holds"])
    assert set(failed) <= {SLOT_BALANCE}, (failed, log)
    agree = inv["ledger_replicas_agree"]
    assert agree["replicas"] == 3 and len(set(agree["hashes_at_height"])) == 1, agree
    assert agree["height"] > 0
    verify = inv["ledger_verifies"]
    assert verify["holds"] and verify["output"] == "3 of 3 replicas verify", verify
    assert "3 ledger node(s) (etcd)" in out.stdout, log
    home = data["nodes"]["home-1"]
    assert home["paid_msat"] > 0 and 0 < home["import_wh"] <= home["credit_bought_wh"]
    assert (tmp_path / "run" / "etcd").is_dir()  # the cluster's members kept their data there
