"""The sgrid CLI against two running gateway nodes: connect, open, receive, pay, list, close."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bolt11 as pypi_bolt11

from hil_tests import REPO_ROOT
from hil_tests.gateway.ln.node_procs import Grid

SGRID = str(Path(sys.executable).parent / "sgrid")


def sgrid(node, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [SGRID, *args] if args[0] == "pay" else [SGRID, "channel", *args]
    return subprocess.run(
        [*cmd, "--node-url", node.url, "--token-file", node.token_file],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_drives_a_channel_from_open_to_close(tmp_path):
    g = Grid(tmp_path)
    try:
        a, b = g.add("alice"), g.add("bob")
        r = sgrid(a, "connect", f"{b.node_id}@127.0.0.1:{b.port}")
        assert r.returncode == 0, r.stderr
        r = sgrid(a, "open", b.node_id, "20000000")
        assert r.returncode == 0, r.stderr
        cid = json.loads(r.stdout)["channel_id"]
        r = sgrid(b, "receive", "--amount-msat", "1500000", "--kwh", "1.5", "--node", "pv-07")
        assert r.returncode == 0, r.stderr
        invoice = json.loads(r.stdout)["invoices"][0]
        assert invoice.startswith("lnbcrt")
        decoded = pypi_bolt11.decode(invoice)
        assert json.loads(decoded.description)["kwh"] == 1.5
        assert decoded.amount_msat == 1_500_000
        r = sgrid(a, "pay", invoice)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["status"] == "succeeded"
        r = sgrid(a, "pay", invoice)  # the same receipt cannot be paid twice
        assert r.returncode != 0
        listed = json.loads(sgrid(a, "list").stdout)
        assert listed[0]["local_msat"] == 20_000_000 - 1_500_000
        r = sgrid(a, "close", cid)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["state"] == "CLOSED"
    finally:
        g.close()
