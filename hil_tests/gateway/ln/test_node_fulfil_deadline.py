"""The fulfilment deadline (BOLT 2): a node that fulfils an incoming HTLC the peer does not sign
closes the channel itself, UPSTREAM_BLOCKS before the HTLC expires, and claims the output on the
ledger; the peer's own close at the expiry would come too late for the claim."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from gateway.ln.errors import LnError
from gateway.ln.node.watch import UPSTREAM_BLOCKS
from hil_tests.gateway.ln.node_procs import DEPOSIT, Grid, NodeProc, wait_until

M = 1_000_000


@pytest.fixture
def grid(tmp_path):
    g = Grid(tmp_path)
    yield g
    for n in g.nodes.values():
        _freeze(n, False)
    g.close()


def _freeze(node: NodeProc, on: bool) -> None:
    if node.proc is not None and node.proc.poll() is None:
        os.kill(node.proc.pid, signal.SIGSTOP if on else signal.SIGCONT)


def _ignore_failure(fn) -> None:
    try:
        fn()
    except LnError:
        pass


def test_a_forwarder_whose_upstream_peer_does_not_sign_its_fulfil_claims_on_the_ledger(grid):
    # alice -> bob -> carol. Carol fulfils, bob knows the preimage and paid her; alice hangs
    # (SIGSTOP, still connected) and never signs bob's fulfil. As blocks pass, bob closes the
    # channel with alice before her HTLC expires and takes it from the ledger.
    a, b, c = grid.add("alice"), grid.add("bob"), grid.add("carol")
    a.connect(b)
    b.connect(c)
    ab = a.api("/open", {"node_id": b.node_id, "amount_msat": 50 * M})["channel_id"]
    b.api("/open", {"node_id": c.node_id, "amount_msat": 50 * M})
    a.pay_once_routed(c, M)  # routes known
    invoice = c.invoice(10 * M)[0]
    _freeze(c, True)
    threading.Thread(
        target=lambda: _ignore_failure(lambda: a.api("/pay", {"invoice": invoice}, timeout=60)),
        daemon=True,
    ).start()
    wait_until(
        lambda: (
            b.channel_with(a)["htlcs"] == 1
            and b.channel_with(a)["unsettled_updates"] == 0
            and b.channel_with(c)["unsettled_updates"] > 0
        ),
        60,
        "alice's HTLC locked in with bob and forwarded to carol",
    )
    _freeze(a, True)  # alice hangs: bob's fulfil will wait for her ack
    _freeze(c, False)
    wait_until(lambda: b.channel_with(c)["remote_msat"] == 11 * M, 60, "bob paid carol")
    assert b.channel_with(a)["htlcs"] == 1 and b.channel_with(a)["unsettled_updates"] > 0
    start = grid.ledger.height()
    for _ in range(60):  # blocks pass, one at a time: bob must close before the expiry
        if b.channel_with(a)["state"] != "OPEN":
            break
        grid.ledger.mine(1)
        wait_until(lambda: b.api("/info")["height"] >= grid.ledger.height(), 60, "bob's tick")
    view = grid.ledger.channel(bytes.fromhex(ab))
    assert view is not None and view.status == "closing", f"bob did not close ({start})"
    (out,) = view.htlcs
    assert out["offerer"] == "a" and grid.ledger.height() < out["cltv_expiry"]
    assert out["cltv_expiry"] - view.close_height <= UPSTREAM_BLOCKS  # not closed too early
    wait_until(
        lambda: grid.ledger.channel(bytes.fromhex(ab)).htlcs[0]["outcome"] == "fulfilled",
        60,
        "bob claims the HTLC output with carol's preimage",
    )
    grid.ledger.mine(10)
    wait_until(lambda: grid.ledger.channel(bytes.fromhex(ab)).status == "closed", 60, "settled")
    view = grid.ledger.channel(bytes.fromhex(ab))
    assert view.state is not None
    bal_a, bal_b = view.state["balance_a_msat"], view.state["balance_b_msat"]
    assert bal_a + bal_b + out["amount_msat"] == 50 * M
    # bob funded bob-carol with 50 M (carol holds 11 M of it), gets his balance and the HTLC
    ledger_b = grid.ledger.balance(bytes.fromhex(b.node_id))
    assert ledger_b == DEPOSIT - 50 * M + bal_b + out["amount_msat"]
    assert grid.money() == 3 * DEPOSIT
