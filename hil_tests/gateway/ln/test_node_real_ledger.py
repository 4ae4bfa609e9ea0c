"""Two gateway processes against the real ledger node (gateway/ledger): fund, pay, cheat, close."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from gateway.ledger import config as ledger_config
from gateway.ledger import service, txs
from gateway.ledger.client import LedgerClient
from gateway.ln.node.keys import load_or_create
from gateway.ln.node.ledger_http import HttpLedger
from hil_tests.gateway.ledger.conftest import OPERATOR, write_config
from hil_tests.gateway.ln.node_procs import NodeProc, wait_until
from hil_tests.gateway.ln.stale_state import publish_stored_state

M = 1_000_000
DEPOSIT = 500 * M


def _ledger(tmp_path, idle_block_ms: int):
    cfg = write_config(tmp_path / "ledger", idle_block_ms=idle_block_ms)
    running = service.start(ledger_config.load(cfg))
    client = LedgerClient(running.url)
    try:
        yield running.url, client, client.info()["chain"]
    finally:
        running.stop()


@pytest.fixture
def real_ledger(tmp_path):
    yield from _ledger(tmp_path, 30)


@pytest.fixture
def watched_ledger(tmp_path):
    """Blocks 1 s apart while a channel is closing: the dispute window (6 blocks) is the time
    the wronged node has to notice a revoked state and penalize it. With 30 ms blocks that was
    180 ms of wall clock, which a loaded machine does not always give a node's ticker."""
    yield from _ledger(tmp_path, 1000)


def _node(tmp_path, name, url, client, chain) -> NodeProc:
    d = tmp_path / name
    pub = load_or_create(d).node_id.hex()
    client.submit(
        txs.make("enroll_participant", chain, participant=pub, name=name, role="gateway").signed_by(
            OPERATOR
        )
    )
    client.submit(
        txs.make("deposit", chain, account=pub, amount_msat=DEPOSIT, reference="t").signed_by(
            OPERATOR
        )
    )
    args = ["--ledger-url", url, "--accept-max-msat", str(20 * 1_000_000)]
    return NodeProc(name, d, tmp_path / "unused", args).start()


def _rounds_over(a: NodeProc, b: NodeProc) -> bool:
    ca, cb = a.channel_with(b), b.channel_with(a)
    quiet = all(c["htlcs"] == 0 and c["unsettled_updates"] == 0 for c in (ca, cb))
    return quiet and ca["commitment"] == cb["commitment"]


def test_channel_lifecycle_and_penalty_on_the_real_ledger(tmp_path, watched_ledger):
    url, client, chain = watched_ledger
    a = _node(tmp_path, "alice", url, client, chain)
    b = _node(tmp_path, "bob", url, client, chain)
    try:
        a.connect(b)
        ch = a.api("/open", {"node_id": b.node_id, "amount_msat": 50 * M, "push_msat": 20 * M})
        assert client.channel(ch["channel_id"])["capacity_msat"] == 70 * M
        assert client.balance(a.node_id) == DEPOSIT - 50 * M
        backup = a.data_dir / "old.sqlite"
        with sqlite3.connect(a.data_dir / "channels.sqlite") as s, sqlite3.connect(backup) as t:
            s.backup(t)
        assert a.api("/pay", {"invoice": b.invoice(30 * M)[0]})["status"] == "succeeded"
        # alice knows the preimage (sg_preimages) before the rounds are over: wait for them, so
        # that the state she publishes below is revoked (else bob supersedes it instead)
        wait_until(lambda: _rounds_over(a, b), 60, "the payment's rounds over on both sides")
        a.kill()  # alice restores the old database and publishes the revoked state herself
        for suffix in ("", "-wal", "-shm"):
            (a.data_dir / f"channels.sqlite{suffix}").unlink(missing_ok=True)
        shutil.copy(backup, a.data_dir / "channels.sqlite")
        # (her node would not: bob's reestablish proves the state stale, data_loss.py)
        publish_stored_state(a.data_dir / "channels.sqlite", ch["channel_id"], chain,
                             HttpLedger(url).submit)  # fmt: skip
        a.start()
        wait_until(
            lambda: client.channel(ch["channel_id"])["status"] == "penalized",
            60,
            "bob's penalty on the ledger",
        )
        assert client.balance(b.node_id) == DEPOSIT - 20 * M + 70 * M
        assert client.balance(a.node_id) == DEPOSIT - 50 * M
    finally:
        a.kill()
        b.kill()


def test_cooperative_and_unilateral_close_on_the_real_ledger(tmp_path, real_ledger):
    url, client, chain = real_ledger
    a = _node(tmp_path, "alice", url, client, chain)
    b = _node(tmp_path, "bob", url, client, chain)
    try:
        a.connect(b)
        one = a.api("/open", {"node_id": b.node_id, "amount_msat": 40 * M})
        two = a.api("/open", {"node_id": b.node_id, "amount_msat": 40 * M})
        a.api("/pay", {"invoice": b.invoice(10 * M)[0]})
        a.api("/pay", {"invoice": b.invoice(5 * M)[0]})
        # alice learns each preimage before her commitment with the fulfil is signed
        wait_until(
            lambda: sum(c["remote_msat"] for c in a.channels()) == 15 * M, 60, "15 M paid to bob"
        )
        assert a.api("/close", {"channel_id": one["channel_id"]})["state"] == "CLOSED"
        a.api("/close", {"channel_id": two["channel_id"], "force": True})
        wait_until(lambda: client.channel(two["channel_id"])["status"] == "closed", 60, "settle")
        assert client.balance(a.node_id) == DEPOSIT - 15 * M
        assert client.balance(b.node_id) == DEPOSIT + 15 * M
    finally:
        a.kill()
        b.kill()
