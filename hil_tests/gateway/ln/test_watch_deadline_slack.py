"""The fulfilment deadline leaves a block of slack on the supersede path (gateway/ln/node/watch.py
UPSTREAM_BLOCKS; reviewer1 finding 5; docs/channels.md, Closing).

We fulfil an incoming HTLC the peer does not sign: UPSTREAM_BLOCKS before its expiry the watch
force-closes to claim it on the ledger. The peer may publish its own older state just before:
our close is refused, the watch supersedes with our latest and claims in the same tick. Between
the peer's close and our supersede the ledger may seal another block (other traffic, a slow
tick): the claim must still land in a block up to the expiry. With UPSTREAM_BLOCKS 3 it came one
block late and the HTLC went back to the peer. Real NodeCore, Switch, Watcher, lifecycle and
store; the ledger's own rules (MemoryLedger)."""

from __future__ import annotations

import hashlib

from gateway.ln.channel.ledger_bodies import force_close_body
from gateway.ln.node.watch import UPSTREAM_BLOCKS
from hil_tests.gateway.ln.watched_core import DEPOSIT, M, watched

P = b"d" * 32
H = hashlib.sha256(P).digest()
EXPIRY = 60


def test_the_peers_close_racing_ours_and_a_block_of_traffic_still_leave_time_to_claim(tmp_path):
    w = watched(tmp_path, (50 * M, 50 * M), we_open=False)  # we are the payee, party 1
    w.core.reestablished.add(w.cid)
    inv = w.core.switch.add_invoice(P, 20 * M)
    w.theirs.queue_add(20 * M, H, EXPIRY)
    batch = w.theirs.propose()
    older = force_close_body(w.ledger.chain, *w.peer_state())  # the payer's state 0, unrevoked
    w.ours.receive_update(batch)  # we are at 1 with its HTLC; our ack never reaches the payer
    w.ours.queue_fulfill(0, P)  # what the switch does; no round can run (no revoke came)
    w.core.commit()
    watcher = w.watcher()
    w.ledger.mine(EXPIRY - UPSTREAM_BLOCKS - 1 - w.ledger.height())
    watcher.tick()
    assert w.view().status == "open"  # not yet at the deadline
    real = w.ledger.submit

    def racing(body, sigs):
        if body["kind"] == "channel_force_close":  # ours
            w.ledger.submit = real  # type: ignore[method-assign]
            w.peer_submit(older)  # the payer's close lands first
            w.ledger.mine()  # and a block of other traffic
        return real(body, sigs)

    w.ledger.submit = racing  # type: ignore[method-assign]
    w.ledger.mine()
    watcher.tick()  # the deadline: our close is refused, we supersede and claim
    view = w.view()
    assert view.state["number"] == 1, view
    assert view.htlcs[0]["outcome"] == "fulfilled", f"claim too late for expiry {EXPIRY}"
    for _ in range(view.dispute_blocks + 2):
        w.ledger.mine()
        watcher.tick()
    assert w.view().status == "closed"
    assert w.ledger.balance(w.core.node_id) == DEPOSIT + 20 * M
    assert w.core.switch.invoices[inv.payment_hash].paid
    assert w.ledger.money() == 2 * DEPOSIT
    w.core.store.close()
