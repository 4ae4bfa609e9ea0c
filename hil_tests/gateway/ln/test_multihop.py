from __future__ import annotations

import hashlib

import pytest

from gateway.ln.channel.channel import OutgoingSettled
from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.errors import NoRoute
from hil_tests.gateway.ln.mesh import Mesh

M = 1_000_000  # msat


GRID_CHARGE = FeePolicy(base_msat=1000, ppm=1000, cltv_delta=6)


def _line(policy_b=GRID_CHARGE):
    """alice -- bob -- carol: the feeder line of a street."""
    mesh = Mesh()
    a, b, c = mesh.node("alice"), mesh.node("bob", policy_b), mesh.node("carol")
    mesh.connect("alice", "bob", (50 * M, 50 * M))
    mesh.connect("bob", "carol", (50 * M, 50 * M))
    return mesh, a, b, c


def _invoice(sw, amount, tag=b"p"):
    pre = hashlib.sha256(tag).digest()
    return sw.add_invoice(pre, amount)


def _capacity_conserved(mesh):
    for sw in mesh.switches.values():
        for ch in sw.channels.values():
            ch.check_invariant()


def test_two_hop_payment_pays_the_grid_charge_to_the_middle_node():
    mesh, a, b, c = _line()
    inv = _invoice(c, 10 * M)
    before = mesh.balances()
    pay = a.pay(c.node_id, inv.payment_hash, 10 * M, mesh.ledger.height())
    mesh.pump()
    fee = 1000 + 10 * M * 1000 // 1_000_000
    assert pay.status == "succeeded" and pay.preimage == inv.preimage and pay.fee_msat == fee
    after = mesh.balances()
    assert after["alice"] == before["alice"] - 10 * M - fee
    assert after["bob"] == before["bob"] + fee
    assert after["carol"] == before["carol"] + 10 * M
    assert not b.links
    _capacity_conserved(mesh)


def test_expiry_decreases_hop_by_hop():
    mesh, a, b, c = _line()
    seen: dict[str, list] = {"bob": [], "carol": []}
    for name, sw in (("bob", b), ("carol", c)):
        orig = sw.handle

        def spy(events, height, orig=orig, name=name):
            seen[name] += [e.add for e in events if hasattr(e, "add")]
            orig(events, height)

        sw.handle = spy
    inv = _invoice(c, M)
    a.pay(c.node_id, inv.payment_hash, M, 100)
    mesh.pump()
    (at_bob,), (at_carol,) = seen["bob"], seen["carol"]
    assert at_bob.cltv_expiry - at_carol.cltv_expiry == GRID_CHARGE.cltv_delta
    assert at_carol.cltv_expiry == 100 + 18 + a.policy.cltv_delta  # the payer's margin
    assert at_bob.amount_msat - at_carol.amount_msat == GRID_CHARGE.fee(M)


def test_a_payment_that_took_a_hops_delta_of_blocks_to_arrive_is_accepted():
    """The payer adds its cltv_delta to the payee's min_final_cltv: the ledger sealed 6 blocks
    while the HTLC travelled (at 56 nodes, seconds of a loaded hop), and carol still takes it
    (sent with exactly min_final_cltv, it would have met "final expiry too soon")."""
    mesh, a, b, c = _line()
    inv = _invoice(c, M)
    sent_at = mesh.ledger.height() - a.policy.cltv_delta  # the blocks sealed on its way
    pay = a.pay(c.node_id, inv.payment_hash, M, sent_at)
    mesh.pump()
    assert pay.status == "succeeded", pay.reason


@pytest.mark.parametrize("fault", ["refuses", "offline", "no_capacity", "unknown_hash"])
def test_failing_hop_leaves_every_balance_unchanged(fault):
    mesh, a, b, c = _line()
    inv = _invoice(c, 10 * M)
    before = mesh.balances()
    amount = 10 * M
    if fault == "refuses":
        b.refuse_forwarding = True
    elif fault == "no_capacity":  # bob spent his side of bob-carol; alice's graph is stale
        b.pay(c.node_id, _invoice(c, 45 * M, b"drain").payment_hash, 45 * M, 0)
        mesh.pump()
        before = mesh.balances()
    elif fault == "unknown_hash":
        del c.invoices[inv.payment_hash]
    a.pay(c.node_id, inv.payment_hash, amount, mesh.ledger.height())
    if fault == "offline":
        mesh.set_offline("carol")
    mesh.pump()
    pay = a.payments[inv.payment_hash]
    assert pay.status == "failed", pay
    assert mesh.balances() == before
    for sw in mesh.switches.values():
        for ch in sw.channels.values():
            assert not ch.latest.htlcs
    _capacity_conserved(mesh)


def test_route_avoids_a_channel_without_capacity():
    mesh = Mesh()
    for n in ("a", "b", "c", "d"):
        mesh.node(n)
    mesh.connect("a", "b", (10 * M, 0))
    mesh.connect("b", "d", (1 * M, 0))  # too small
    mesh.connect("a", "c", (10 * M, 0))
    mesh.connect("c", "d", (10 * M, 0))
    a, d = mesh.switches["a"], mesh.switches["d"]
    inv = _invoice(d, 5 * M)
    a.pay(d.node_id, inv.payment_hash, 5 * M, mesh.ledger.height())
    mesh.pump()
    assert a.payments[inv.payment_hash].status == "succeeded"
    assert mesh.balances()["c"] > 0 and mesh.balances()["b"] == 1 * M  # b-d untouched


def test_no_route_is_a_typed_error():
    mesh, a, b, c = _line()
    with pytest.raises(NoRoute):
        a.pay(c.node_id, b"\x01" * 32, 500 * M, mesh.ledger.height())


def test_many_payments_batch_into_few_commitments():
    mesh, a, b, c = _line(FeePolicy(0, 0, 6))
    for i in range(200):
        inv = _invoice(c, 1000, i.to_bytes(4, "big"))
        a.pay(c.node_id, inv.payment_hash, 1000, mesh.ledger.height())
    mesh.pump()
    assert all(p.status == "succeeded" for p in a.payments.values())
    ab = next(iter(a.channels.values()))
    assert ab.latest.number <= 4
    assert mesh.balances()["carol"] == 50 * M + 200 * 1000


def test_unhandled_incoming_htlc_is_failed_before_it_expires():
    mesh, a, b, c = _line()
    inv = _invoice(b, M)
    b.handle = lambda events, height: None  # bob loses the event (e.g. a crash before acting)
    a.pay(b.node_id, inv.payment_hash, M, mesh.ledger.height())
    mesh.pump()
    ab = next(ch for ch in b.channels.values() if ch.node_ids[ch.remote] == a.node_id)
    (stuck,) = ab.latest.htlcs
    b.check_timeouts(stuck.cltv_expiry - 3)
    assert not ab.pending
    b.check_timeouts(stuck.cltv_expiry - 2)
    mesh.pump()
    assert a.payments[inv.payment_hash].status == "failed"
    assert not ab.latest.htlcs


def test_an_htlc_failed_for_expiry_before_it_was_locked_in_is_failed_once():
    """Seen at 56 nodes: bob's timer failed an HTLC that was in his latest commitment but not yet
    locked in; when alice's revoke locked it in, the switch failed it again, UnknownHtlc escaped
    and every other event drained with it was lost."""
    mesh, a, b, c = _line()
    inv = _invoice(b, M)
    a.pay(b.node_id, inv.payment_hash, M, mesh.ledger.height())
    ab_a = next(iter(a.channels.values()))
    ab_b = next(ch for ch in b.channels.values() if ch.node_ids[ch.remote] == a.node_id)
    ack = ab_b.receive_update(ab_a.propose())
    (stuck,) = ab_b.latest.htlcs
    b.check_timeouts(stuck.cltv_expiry - 2)  # about to expire: bob fails it at once
    ab_b.receive_revoke(ab_a.receive_ack(ack))  # now it is locked in: IncomingHtlc
    b.handle(ab_b.drain_events(), mesh.ledger.height())
    a.handle(ab_a.drain_events(), mesh.ledger.height())
    mesh.pump()
    assert a.payments[inv.payment_hash].status == "failed"
    assert not ab_a.latest.htlcs and not ab_b.latest.htlcs
    _capacity_conserved(mesh)


def test_outgoing_htlc_past_expiry_asks_for_force_close():
    mesh, a, b, c = _line()
    inv = _invoice(c, M)
    c.handle = lambda events, height: None  # carol takes the HTLC and never answers
    a.pay(c.node_id, inv.payment_hash, M, mesh.ledger.height())
    mesh.pump()
    bc = next(ch for ch in b.channels.values() if ch.node_ids[ch.remote] == c.node_id)
    assert bc.latest.htlcs  # bob's HTLC to carol is stuck
    expiry = bc.latest.htlcs[0].cltv_expiry
    assert b.check_timeouts(expiry - 1) == []
    assert b.check_timeouts(expiry) == [bc.channel_id]
    mesh.offline.add("carol")
    state, _ = bc.force_close()
    outputs = {("ab".index(h["offerer"]), h["id"]) for h in state["htlcs"]}
    b.on_published(bc.channel_id, outputs)  # bob's HTLC is an output on the ledger: it waits
    mesh.pump()
    assert a.payments[inv.payment_hash].status == "pending"
    # what bob's watch reports once the output's expiry has passed unclaimed: unwind upstream
    b.handle([OutgoingSettled(bc.channel_id, bc.latest.htlcs[0], None, "expired")], expiry)
    mesh.pump()
    assert a.payments[inv.payment_hash].status == "failed"


def test_the_payee_refuses_an_htlc_for_an_expired_invoice_or_without_its_secret():
    # issue 16 item 6: only the payer checked expiry and secret; a payer that skips the checks
    # (or forwards an old request) must not get an expired or secretless invoice paid
    mesh, a, b, c = _line()
    secret = b"\x5e" * 32
    c.clock = lambda: 2_000_000_000.0
    expired = c.add_invoice(b"\x01" * 32, M, secret, expires_at=1_999_999_999)
    a.pay(c.node_id, expired.payment_hash, M, mesh.ledger.height(), payment_secret=secret)
    no_secret = c.add_invoice(b"\x02" * 32, M, secret, expires_at=2_000_000_100)
    a.pay(c.node_id, no_secret.payment_hash, M, mesh.ledger.height())
    good = c.add_invoice(b"\x03" * 32, M, secret, expires_at=2_000_000_100)
    a.pay(c.node_id, good.payment_hash, M, mesh.ledger.height(), payment_secret=secret)
    mesh.pump()
    assert a.payments[expired.payment_hash].reason == "invoice expired"
    assert a.payments[no_secret.payment_hash].reason == "payment secret missing or wrong"
    assert a.payments[good.payment_hash].status == "succeeded"
    assert not expired.paid and not no_secret.paid and good.paid


def test_a_paid_invoice_is_not_paid_twice():
    # the payee used to fulfil every HTLC for a known hash: a second payer (or a payer that lost
    # its record) paid the same receipt again and the money was gone for nothing
    mesh, a, b, c = _line()
    inv = _invoice(c, 2 * M)
    first = a.pay(c.node_id, inv.payment_hash, 2 * M, mesh.ledger.height())
    mesh.pump()
    assert first.status == "succeeded" and inv.paid
    before = mesh.balances()
    again = b.pay(c.node_id, inv.payment_hash, 2 * M, mesh.ledger.height())
    mesh.pump()
    assert again.status == "failed" and again.reason == "invoice already paid"
    assert mesh.balances() == before
    _capacity_conserved(mesh)


def test_a_route_naming_a_reopened_channel_is_forwarded_over_the_new_one():
    """BOLT 4 non-strict forwarding: alice's graph still names the bob-carol channel that was
    closed and reopened under a new id (gossip never told her); bob forwards over the open
    channel he has with carol. With no open channel to carol that can carry the amount, he
    fails it as before."""
    mesh = Mesh()
    a, b, c = mesh.node("alice"), mesh.node("bob", GRID_CHARGE), mesh.node("carol")
    mesh.connect("alice", "bob", (100 * M, 100 * M))
    real = mesh.connect("bob", "carol", (50 * M, 50 * M))
    stale = hashlib.sha256(b"closed bob-carol").digest()
    a.graph.remove_channel(real)
    a.graph.add_channel(stale, b.node_id, c.node_id, 100 * M, 100 * M)
    inv = _invoice(c, 10 * M)
    before = mesh.balances()
    pay = a.pay(c.node_id, inv.payment_hash, 10 * M, mesh.ledger.height())
    mesh.pump()
    assert pay.status == "succeeded"
    assert mesh.balances()["carol"] == before["carol"] + 10 * M
    _capacity_conserved(mesh)
    big = _invoice(c, 70 * M, b"q")  # more than bob's side of the real channel holds
    pay2 = a.pay(c.node_id, big.payment_hash, 70 * M, mesh.ledger.height())
    mesh.pump()
    assert pay2.status == "failed" and pay2.reason == "unknown next channel"
    _capacity_conserved(mesh)


def test_a_forwarder_whose_policy_has_not_reached_the_payer_is_taken_to_charge_as_it_does():
    """Policies travel one hop (each node announces its own to its peers): alice has not heard
    bob's. The grid's nodes share one policy (34 blocks per hop at 56 nodes), so alice plans
    bob's hop with her own; with FeePolicy()'s 6 blocks bob refused it ("expiry too soon")."""
    grid = FeePolicy(base_msat=1000, ppm=100, cltv_delta=34)
    mesh = Mesh()
    a, b, c = mesh.node("alice", grid), mesh.node("bob", grid), mesh.node("carol", grid)
    mesh.connect("alice", "bob", (50 * M, 50 * M))
    mesh.connect("bob", "carol", (50 * M, 50 * M))
    del a.graph.policies[b.node_id]  # bob's signed policy never reached alice
    inv = _invoice(c, M)
    pay = a.pay(c.node_id, inv.payment_hash, M, mesh.ledger.height())
    mesh.pump()
    assert pay.status == "succeeded", pay.reason
    assert pay.fee_msat == grid.fee(M)
