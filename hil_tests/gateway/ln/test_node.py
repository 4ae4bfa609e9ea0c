"""Gateway node processes on loopback: open, pay, close cooperatively and unilaterally, penalty."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from gateway.ln.errors import LnError
from gateway.ln.node.invoice_batch import CHUNK, POOL_MIN
from hil_tests.gateway.ln.node_procs import DEPOSIT, Grid, wait_until
from hil_tests.gateway.ln.stale_state import publish_stored_state, stored_channels

M = 1_000_000


@pytest.fixture
def grid(tmp_path):
    g = Grid(tmp_path)
    yield g
    g.close()


def _open(a, b, amount=50 * M, push=0):
    a.connect(b)
    return a.api("/open", {"node_id": b.node_id, "amount_msat": amount, "push_msat": push})


def _ledger_balance(grid, node):
    return grid.ledger.balance(bytes.fromhex(node.node_id))


def test_two_gateways_pay_and_close_cooperatively(grid):
    a, b = grid.add("alice"), grid.add("bob", "--accept-max-msat", str(10 * M))
    ch = _open(a, b, 50 * M, 10 * M)
    assert ch["state"] == "OPEN" and ch["local_msat"] == 50 * M and ch["remote_msat"] == 10 * M
    r = a.api("/pay", {"invoice": b.invoice(3 * M)[0]})
    assert r["status"] == "succeeded" and len(r["preimage"]) == 64
    r = b.api("/pay", {"invoice": a.invoice(1 * M)[0]})
    assert r["status"] == "succeeded"
    # the payer learns the preimage before the payee's commitment is signed: wait for both
    wait_until(
        lambda: (
            a.channel_with(b)["local_msat"] == 48 * M and b.channel_with(a)["local_msat"] == 12 * M
        ),
        60,
        "both sides to sign the payments",
    )
    closed = a.api("/close", {"channel_id": ch["channel_id"]})
    assert closed["state"] == "CLOSED"
    wait_until(lambda: b.channel_with(a)["state"] == "CLOSED", 60, "bob sees the close")
    assert _ledger_balance(grid, a) == DEPOSIT - 2 * M
    assert _ledger_balance(grid, b) == DEPOSIT + 2 * M
    assert grid.money() == 2 * DEPOSIT


def test_unilateral_close_pays_out_after_the_dispute_window(grid):
    a, b = grid.add("alice"), grid.add("bob")
    ch = _open(a, b)
    a.api("/pay", {"invoice": b.invoice(5 * M)[0]})
    # alice learns the preimage before bob has signed her commitment without the HTLC: killed
    # then, bob leaves her a last commitment with the HTLC in it, and its output is not hers
    wait_until(
        lambda: (
            a.channel_with(b)["htlcs"] == 0
            and a.channel_with(b)["local_msat"] == 45 * M
            and b.channel_with(a)["htlcs"] == 0
        ),
        60,
        "both sides to sign the payment",
    )
    b.kill()  # bob disappears: alice closes alone
    a.api("/close", {"channel_id": ch["channel_id"], "force": True})
    assert a.channel_with(b)["state"] == "FORCE_CLOSING"
    grid.ledger.mine(10)
    wait_until(lambda: a.channel_with(b)["state"] == "CLOSED", 60, "settle")
    assert _ledger_balance(grid, a) == DEPOSIT - 5 * M
    assert _ledger_balance(grid, b) == DEPOSIT + 5 * M
    assert grid.money() == 2 * DEPOSIT


def _restore(node, backup):
    """`node` (stopped) gets its channel database back from `backup`."""
    for suffix in ("", "-wal", "-shm"):
        (node.data_dir / f"channels.sqlite{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, node.data_dir / "channels.sqlite")


def _backup(node):
    backup = node.data_dir / "backup.sqlite"
    with sqlite3.connect(node.data_dir / "channels.sqlite") as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    return backup


def test_cheater_publishing_a_revoked_state_loses_the_channel(grid):
    """Alice cheats on purpose: her old backup's state (commitment 0, where she still had
    everything) goes to the ledger while her node is down (stale_state.py: the node itself
    never publishes a state its peer proved stale). Bob's node takes the whole channel."""
    a, b = grid.add("alice"), grid.add("bob")
    ch = _open(a, b)
    backup = _backup(a)
    for _ in range(3):
        assert a.api("/pay", {"invoice": b.invoice(10 * M)[0]})["status"] == "succeeded"
    a.kill()
    _restore(a, backup)
    db = a.data_dir / "channels.sqlite"
    assert stored_channels(db)[ch["channel_id"]]["local_msat"] == 50 * M  # the old state
    assert publish_stored_state(db, ch["channel_id"], grid.ledger.chain, grid.ledger.submit) == 0
    a.start()
    wait_until(lambda: b.channel_with(a)["state"] == "CLOSED", 60, "bob's penalty")
    assert grid.ledger.channel(bytes.fromhex(ch["channel_id"])).status == "penalized"
    assert _ledger_balance(grid, b) == DEPOSIT + 50 * M  # bob took the whole channel
    assert _ledger_balance(grid, a) == DEPOSIT - 50 * M
    assert grid.money() == 2 * DEPOSIT


def test_an_honest_node_restored_from_an_old_backup_keeps_its_true_balance(grid):
    """Data-loss protection: alice's disk dies and she restores last week's backup. Her node
    learns from bob's reestablish that its state is stale, refuses to publish it (even when
    asked), and bob closes with the newest state: she gets her true balance, no penalty."""
    a, b = grid.add("alice"), grid.add("bob")
    ch = _open(a, b)
    a.api("/pay", {"invoice": b.invoice(5 * M)[0]})
    wait_until(lambda: b.channel_with(a)["local_msat"] == 5 * M, 60, "bob signs the payment")
    backup = _backup(a)  # commitment > 0: a revoked state once alice pays again
    for _ in range(3):
        assert a.api("/pay", {"invoice": b.invoice(10 * M)[0]})["status"] == "succeeded"
    wait_until(lambda: a.channel_with(b)["local_msat"] == 15 * M and not a.channel_with(b)["htlcs"]
               and not b.channel_with(a)["htlcs"], 60, "both sides sign the payments")  # fmt: skip
    a.kill()
    _restore(a, backup)
    a.start()
    stale = wait_until(lambda: a.channel_with(b)["behind"] is not None and a.channel_with(b),
                       60, "alice learns her state is stale")  # fmt: skip
    assert stale["state"] == "FORCE_CLOSING" and stale["local_msat"] == 45 * M
    with pytest.raises(LnError, match="stale"):
        a.api("/close", {"channel_id": ch["channel_id"], "force": True})
    wait_until(lambda: b.channel_with(a)["state"] == "FORCE_CLOSING", 60, "bob closes")
    grid.ledger.mine(10)
    wait_until(lambda: a.channel_with(b)["state"] == "CLOSED", 60, "alice sees it settled")
    wait_until(lambda: b.channel_with(a)["state"] == "CLOSED", 60, "bob sees it settled")
    assert grid.ledger.channel(bytes.fromhex(ch["channel_id"])).status != "penalized"
    assert _ledger_balance(grid, a) == DEPOSIT - 35 * M  # what she really paid, no more
    assert _ledger_balance(grid, b) == DEPOSIT + 35 * M
    assert grid.money() == 2 * DEPOSIT
    assert a.api("/info")["event_failures"] == b.api("/info")["event_failures"] == 0


def test_unknown_invoice_and_bad_requests_are_refused_cleanly(grid):
    a, b = grid.add("alice"), grid.add("bob")
    _open(a, b)
    with pytest.raises(LnError):
        a.api("/pay", {"invoice": "lnbcrt1notaninvoice"})
    with pytest.raises(LnError):
        a.api("/pay", {"invoice": a.invoice(1000)[0]})  # paying ourselves: no route
    assert a.channel_with(b)["local_msat"] == 50 * M


@pytest.mark.parametrize("count", [30, POOL_MIN + 10])  # decoded in the node / by workers
def test_a_batch_of_invoices_is_paid_in_shared_commitments_each_with_its_result(grid, count):
    a, b = grid.add("alice"), grid.add("bob")
    _open(a, b)
    good = b.invoice(1000, count=count)
    batch = [good[0], "lnbcrt1notaninvoice", *good[1:], good[0]]  # a bad one, a repeated one
    n0 = a.channel_with(b)["commitment"]
    results = a.api("/pay", {"invoices": batch})
    assert len(results) == len(batch)
    assert [r["status"] for r in results] == ["succeeded", "failed"] + ["succeeded"] * (
        count - 1
    ) + ["failed"]
    assert "bech32" in results[1]["reason"] and "already paid" in results[-1]["reason"]
    # the results come with the preimages, before the last rounds are signed: wait for those
    ch = wait_until(
        lambda: (c := a.channel_with(b))["htlcs"] == 0 and c, 60, "the batch's rounds to finish"
    )
    assert ch["local_msat"] == 50 * M - count * 1000 and ch["remote_msat"] == count * 1000
    # HTLCs share rounds (a decoded chunk's adds go together, the fulfils follow in batches):
    # never a round per payment
    assert ch["commitment"] - n0 <= 4 * (1 + count // CHUNK), ch


def test_a_node_does_not_commit_more_of_its_balance_than_it_accepts(grid):
    a, b = grid.add("alice"), grid.add("bob", "--accept-max-msat", str(5 * M))
    before = _ledger_balance(grid, b)
    # "open with 1 msat and lock all of Bob's money": Bob's error says why, at once (before, the
    # refusal was silent and Alice waited out open_channel's 20 s)
    with pytest.raises(LnError, match="refused the channel.*we accept at most 5000000"):
        _open(a, b, 1, DEPOSIT)
    assert _ledger_balance(grid, b) == before
    assert not [c for c in a.api("/channels") if c["state"] == "OPEN"]
