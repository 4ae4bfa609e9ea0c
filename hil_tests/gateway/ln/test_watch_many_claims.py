"""Several HTLC outputs to claim at one deadline land in one block, on one channel or on several
(gateway/ln/node/watch.py `_outputs`, `_submit_outputs`; docs/channels.md, Closing).

We fulfil K incoming HTLCs that expire together; the peer signs none of our fulfils. At
UPSTREAM_BLOCKS before the expiry the watch force-closes and claims. Each submission waits for
a block of its own (the real ledger seals blocks at least idle_block_ms apart while a channel
is closing; MemoryLedger, one per transaction): submitted one by one, the claims took K blocks
and those past the expiry were refused, so the peer took those HTLCs back although we had
released the preimages. Several channels at their deadline in one tick: their force closes
took a block each too, and then their claims. Real NodeCore, Switch, Watcher, lifecycle and
store; the ledger's own rules (MemoryLedger)."""

from __future__ import annotations

import hashlib

from gateway.ln.node.watch import UPSTREAM_BLOCKS
from hil_tests.gateway.ln.watched_core import DEPOSIT, M, watched

K = 8
EXPIRY = 60


def test_claims_due_together_land_in_one_block_before_the_expiry(tmp_path):
    w = watched(tmp_path, (50 * M, 50 * M), we_open=False)  # we are the payee, party 1
    w.core.reestablished.add(w.cid)
    preimages = [bytes([i + 1]) * 32 for i in range(K)]
    for p in preimages:
        w.core.switch.add_invoice(p, 2 * M)
        w.theirs.queue_add(2 * M, hashlib.sha256(p).digest(), EXPIRY)
    w.ours.receive_update(w.theirs.propose())  # our ack never reaches the payer
    for i, p in enumerate(preimages):
        w.ours.queue_fulfill(i, p)  # what the switch does; no round can run (no revoke came)
    w.core.commit()
    watcher = w.watcher()
    w.ledger.mine(EXPIRY - UPSTREAM_BLOCKS - w.ledger.height())
    watcher.tick()  # the deadline: force close, then every claim
    view = w.view()
    assert [o["outcome"] for o in view.htlcs] == ["fulfilled"] * K, view.htlcs
    for _ in range(view.dispute_blocks + 2):
        w.ledger.mine()
        watcher.tick()
    assert w.view().status == "closed"
    assert w.ledger.balance(w.core.node_id) == DEPOSIT + K * 2 * M
    assert all(w.core.switch.invoices[hashlib.sha256(p).digest()].paid for p in preimages)
    assert w.ledger.money() == 2 * DEPOSIT
    w.core.store.close()


def test_channels_at_their_deadline_in_one_tick_close_and_claim_before_the_expiry(tmp_path):
    w = watched(tmp_path, (50 * M, 50 * M), we_open=False)
    pairs = [(w.theirs, w.ours), *w.more_peers(4)]  # four more peers, each a channel to us
    preimages = []
    for n, (theirs, ours) in enumerate(pairs):
        w.core.reestablished.add(ours.channel_id)
        mine = [bytes([n + 1, i + 1]) * 16 for i in range(2)]
        for p in mine:
            w.core.switch.add_invoice(p, 2 * M)
            theirs.queue_add(2 * M, hashlib.sha256(p).digest(), EXPIRY)
        ours.receive_update(theirs.propose())  # our ack never reaches the payer
        for i, p in enumerate(mine):
            ours.queue_fulfill(i, p)
        preimages += mine
    w.core.commit()
    watcher = w.watcher()
    w.ledger.mine(EXPIRY - UPSTREAM_BLOCKS - w.ledger.height())
    watcher.tick()  # the deadline of all five channels
    for _, ours in pairs:
        view = w.ledger.channel(ours.channel_id)
        assert view is not None and view.status == "closing"
        assert [o["outcome"] for o in view.htlcs] == ["fulfilled"] * 2, view.htlcs
    for _ in range(view.dispute_blocks + 2):
        w.ledger.mine()
        watcher.tick()
    assert w.ledger.balance(w.core.node_id) == DEPOSIT + len(pairs) * 2 * 2 * M
    assert all(w.core.switch.invoices[hashlib.sha256(p).digest()].paid for p in preimages)
    assert w.ledger.money() == (1 + len(pairs)) * DEPOSIT
    w.core.store.close()
