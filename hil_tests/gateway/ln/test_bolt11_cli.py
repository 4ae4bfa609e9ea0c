"""`sgrid invoice create|decode` run as the real CLI (subprocess), as an operator would.

An invoice is made only through the running channel node (which keeps the preimage); decoding
works offline and fails on an expired invoice.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.ln.codec import bolt11, receipt
from gateway.ln.node import keys
from hil_tests import REPO_ROOT
from hil_tests.gateway.ln.node_procs import Grid

# one worker runs the whole module (hil_tests/conftest.py): its module fixture is set up once
pytestmark = pytest.mark.xdist_group("gateway.ln.test_bolt11_cli")


def sgrid(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from gateway.cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    g = Grid(tmp_path_factory.mktemp("grid"))
    try:
        yield g.add("pv-07")
    finally:
        g.close()


def test_create_through_the_node_then_decode_an_energy_receipt(node) -> None:
    start = int(time.time()) + 3600
    created = sgrid("invoice", "create", "--node-url", node.url, "--token-file", node.token_file,
                    "--amount-msat", "150000",
                    "--node", "pv-07", "--start", str(start), "--end", str(start + 3600),
                    "--kwh", "1.5")  # fmt: skip
    assert created.returncode == 0, created.stderr
    out = json.loads(created.stdout)
    assert "preimage" not in out  # the secret stays in the node
    text = out["invoices"][0]
    assert text.startswith("lnbcrt1500n1")
    inv = bolt11.decode(text)
    assert (
        inv.payee == bytes.fromhex(node.node_id)
        and inv.payment_hash.hex() == out["payment_hashes"][0]
    )
    decoded = sgrid("invoice", "decode", text)
    assert decoded.returncode == 0, decoded.stderr
    info = json.loads(decoded.stdout)
    assert info["payee"] == node.node_id and info["expired"] is False
    assert info["energy"]["kwh"] == 1.5 and info["energy"]["node"] == "pv-07"


def test_long_profile_goes_by_hash_and_decodes_with_memo_file(node, tmp_path: Path) -> None:
    start = int(time.time()) + 600
    profile = ",".join(["1234.5678"] * 96)
    created = sgrid("invoice", "create", "--node-url", node.url, "--token-file", node.token_file,
                    "--amount-msat", "42",
                    "--node", "pod", "--start", str(start), "--end", str(start + 96 * 900),
                    "--kw", profile, "--step-s", "900")  # fmt: skip
    assert created.returncode == 0, created.stderr
    out = json.loads(created.stdout)
    assert bolt11.decode(out["invoices"][0]).description is None  # by hash
    memo = tmp_path / "memo.json"
    memo.write_text(out["memo"])
    decoded = json.loads(sgrid("invoice", "decode", out["invoices"][0], "--memo", str(memo)).stdout)
    assert decoded["energy"]["step_s"] == 900 and len(decoded["energy"]["kw"]) == 96
    memo.write_text(out["memo"].replace("1234.5678", "1.0", 1))
    tampered = sgrid("invoice", "decode", out["invoices"][0], "--memo", str(memo))
    assert tampered.returncode != 0 and "description hash" in tampered.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kwh", "1", "--start", "5"], "already ended"),
        (["--kwh", "1", "--kw", "1", "--step-s", "3600"], "exactly one"),
        (["--kw", "1,x", "--step-s", "3600"], "comma-separated"),
    ],
)
def test_create_refuses_bad_input_with_a_clear_message(node, args: list[str], message: str) -> None:
    start = str(int(time.time()) + 10)
    base = {"--amount-msat": "1", "--node": "n", "--start": start}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    flat = [x for kv in base.items() for x in kv]
    res = sgrid("invoice", "create", "--node-url", node.url, "--token-file", node.token_file, *flat)
    assert res.returncode != 0 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_create_without_a_running_node_says_so(node) -> None:
    res = sgrid("invoice", "create", "--node-url", "http://127.0.0.1:9", "--amount-msat", "1",
                "--token-file", node.token_file, "--kwh", "1")  # fmt: skip
    assert res.returncode != 0 and "cannot reach the node" in res.stderr


def test_decode_refuses_a_corrupted_invoice() -> None:
    res = sgrid("invoice", "decode", "lnbcrt1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyq")
    assert res.returncode != 0 and "invalid invoice" in res.stderr
    assert "Traceback" not in res.stderr


def test_decode_of_an_expired_invoice_exits_non_zero() -> None:
    priv = keys.NodeKeys(bytes.fromhex("07" * 32)).node_priv
    now = int(time.time()) - 7200
    memo = receipt.EnergyMemo("pv-07", now + 60, now + 3660, kwh=1.0)
    rec = receipt.create_receipt(memo, 1000, bytes(32), priv, now, expiry_s=60)
    res = sgrid("invoice", "decode", rec.invoice)
    assert res.returncode == 1 and "expired" in res.stderr
    assert json.loads(res.stdout)["expired"] is True


def test_channel_node_help_lists_its_options() -> None:
    res = sgrid("channel", "node", "--help")
    assert res.returncode == 0
    for option in ("--data-dir", "--listen", "--port", "--control-port", "--ledger-url"):
        assert option in res.stdout
    assert res.stdout.startswith("usage: sgrid channel node")


def test_channel_node_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    g = Grid(tmp_path)
    n = g.add("a")
    assert n.proc is not None
    n.proc.send_signal(signal.SIGTERM)
    assert n.proc.wait(10) == 0
    g.close()
