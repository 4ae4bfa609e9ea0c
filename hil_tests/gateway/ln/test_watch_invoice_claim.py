"""The payee's claims on the ledger (gateway/ln/node/watch.py, Switch.preimage_for and
invoice_paid; reviewer1 finding 2).

While a force-closed channel's dispute window runs, the payer may supersede the published state
with a later one the payee signed, and a claim recorded on an output the new state does not
hold is dropped. So the payee never claims an HTLC it is failing (the payer would supersede with
the state where it went back, and keep the preimage from the ledger as proof of payment), and
marks its invoice paid only once its claim is final: the window over (channel settled or closed)
with the output fulfilled. Real NodeCore, Switch, Watcher and store; the ledger's own rules."""

from __future__ import annotations

from gateway.ln.channel.commitment import Htlc
from gateway.ln.channel.ledger_bodies import force_close_body, supersede_body
from hil_tests.gateway.ln.channel_pair import run_round
from hil_tests.gateway.ln.watched_core import DEPOSIT, M, Watched, watched

P = b"q" * 32


def _paid_by_the_peer(tmp_path) -> tuple[Watched, bytes]:
    """We are the payee (bob, party 1); the payer's 20 M HTLC to our invoice is in commitment 1
    (it sent no payment secret: the onion is empty)."""
    w = watched(tmp_path, (50 * M, 50 * M), we_open=False)
    w.core.reestablished.add(w.cid)
    inv = w.core.switch.add_invoice(P, 20 * M, payment_secret=b"s" * 32)
    w.theirs.queue_add(20 * M, inv.payment_hash, 100)
    run_round(w.theirs, w.ours)
    w.ours.drain_events()  # the IncomingHtlc: each test settles it (or not) itself
    w.core.commit()
    return w, inv.payment_hash


def _ticks_until_closed(w: Watched, ticks: int = 12) -> None:
    watcher = w.watcher()
    for _ in range(ticks):
        w.ledger.mine()
        watcher.tick()
        if w.view().status == "closed":
            return
    raise AssertionError(w.view())


def test_the_payee_does_not_claim_an_htlc_it_is_failing(tmp_path):
    w, h = _paid_by_the_peer(tmp_path)
    published = force_close_body(w.ledger.chain, *w.peer_state())  # the payer's state 1
    w.ours.queue_fail(0, "payment secret missing or wrong")  # what the switch does
    batch = w.ours.propose()  # we signed the payer's state 2: its HTLC back to it
    w.core.commit()
    w.theirs.receive_update(batch)  # the payer holds our signature of it and never acks
    later = supersede_body(w.ledger.chain, *w.peer_state())
    w.peer_submit(published)
    w.watcher().tick()
    assert w.view().htlcs[0]["outcome"] == "pending"  # not claimed
    w.peer_submit(later)  # would have dropped our claim
    _ticks_until_closed(w)
    view = w.view()
    assert view.state["number"] == 2 and view.htlcs == []
    assert w.ledger.balance(w.core.node_id) == DEPOSIT  # our 50 M back, none of the 20 M
    assert not w.core.switch.invoices[h].paid
    assert w.ledger.money() == 2 * DEPOSIT
    w.core.store.close()


def test_a_claim_marks_the_invoice_paid_only_once_the_window_is_over(tmp_path):
    w, h = _paid_by_the_peer(tmp_path)  # not failed: we claim it with the invoice's preimage
    w.peer_submit(force_close_body(w.ledger.chain, *w.peer_state()))
    watcher = w.watcher()
    watcher.tick()
    view = w.view()
    assert view.status == "closing" and view.htlcs[0]["outcome"] == "fulfilled"
    assert not w.core.switch.invoices[h].paid  # a supersede may still drop the claim
    for _ in range(view.dispute_blocks):
        w.ledger.mine()
        watcher.tick()
        if w.view().status == "closing":
            assert not w.core.switch.invoices[h].paid
    _ticks_until_closed(w)
    assert w.core.switch.invoices[h].paid
    assert w.ledger.balance(w.core.node_id) == DEPOSIT + 20 * M
    assert w.ledger.money() == 2 * DEPOSIT
    w.core.store.close()


def test_preimage_for_refuses_htlcs_failed_or_settled_in_the_channel(tmp_path):
    w, h = _paid_by_the_peer(tmp_path)
    switch, htlc = w.core.switch, w.ours.latest.htlcs[0]
    assert switch.preimage_for(w.ours, htlc) == P  # ours to claim, not being failed
    w.ours.queue_fail(0, "payment secret missing or wrong")
    assert switch.preimage_for(w.ours, htlc) is None  # queued fail
    run_round(w.ours, w.theirs)
    assert w.ours.htlc(htlc.key) is None
    assert switch.preimage_for(w.ours, htlc) is None  # failed and locked in
    # an HTLC added after our latest commitment (a newer state on the ledger: we run from a
    # backup) is claimed with the invoice's preimage
    newer = Htlc(0, w.ours.latest.next_htlc_ids[0], htlc.amount_msat, htlc.payment_hash, 100)
    assert switch.preimage_for(w.ours, newer) == P
    w.core.store.close()
