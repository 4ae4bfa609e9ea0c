"""sg_preimages: its one wire format, what a channel accepts and rejects, and the switch learning
a preimage twice (from the message, then from the FulfillHtlc batch)."""

from __future__ import annotations

import copy
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ln.channel import messages_wire as mw
from gateway.ln.channel.channel import (
    CROSSED,
    LOCK_IN_AFTER,
    REPORTED_EARLY,
    IncomingHtlc,
    PreimageLearned,
)
from gateway.ln.channel.messages import Preimages
from gateway.ln.codec.wire import TABLE, must_close
from gateway.ln.errors import WireError
from gateway.ln.node.peer import REJECT_BURST, Peer
from gateway.ln.node.store import Store
from gateway.ln.node.switch import Switch
from hil_tests.gateway.ln.channel_pair import make_pair, node_keys, open_pair, run_round
from hil_tests.gateway.ln.mesh import Mesh

M = 1_000_000
CID = b"\x42" * 32


def _pre(i: int) -> bytes:
    return hashlib.sha256(b"pre%d" % i).digest()


def _h(pre: bytes) -> bytes:
    return hashlib.sha256(pre).digest()


# --- the wire format --------------------------------------------------------------------------
@given(
    st.lists(
        st.tuples(st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32)),
        max_size=mw.MAX_PREIMAGES,
    )
)
@settings(max_examples=60, deadline=None)
def test_preimages_roundtrip(entries):
    msg = Preimages(CID, tuple(entries))
    raw = mw.to_wire(msg)
    assert len(raw) <= 65535
    assert mw.from_wire(TABLE.decode(raw)) == msg


def test_the_message_type_is_odd_so_an_old_peer_ignores_it():
    spec = TABLE.by_name["sg_preimages"]
    assert spec.type_num == 33035 and not must_close(spec.type_num)


@given(st.binary(max_size=200).filter(lambda b: len(b) % 40))
def test_entries_of_a_wrong_length_are_a_wire_error(body):
    raw = TABLE.encode("sg_preimages", channel_id=CID, preimages=body)
    with pytest.raises(WireError):
        mw.from_wire(TABLE.decode(raw))


def test_too_many_or_malformed_entries_are_refused_on_encode():
    with pytest.raises(WireError):
        mw.to_wire(Preimages(CID, tuple((i, bytes(32)) for i in range(mw.MAX_PREIMAGES + 1))))
    with pytest.raises(WireError):
        mw.to_wire(Preimages(CID, ((1, bytes(31)),)))
    with pytest.raises(WireError):
        mw.to_wire(Preimages(CID, ((2**64, bytes(32)),)))


# --- the channel: hints out, preimages in ---------------------------------------------------
def _in_flight(n: int = 3):
    """a offered n HTLCs, committed on both sides; b holds them as incoming."""
    a, b = make_pair()
    for i in range(n):
        a.queue_add(1000 + i, _h(_pre(i)), 500)
    assert run_round(a, b)
    adds = [e.add for e in b.drain_events() if isinstance(e, IncomingHtlc)]
    assert [x.htlc_id for x in adds] == list(range(n))
    return a, b


def _snapshot(ch):
    return copy.deepcopy(
        (ch.latest, ch.proposal, list(ch.pending), ch.sigs, ch.awaiting_revoke, ch.remote_next_hash)
    )


def test_a_queued_fulfil_is_hinted_once_and_the_peer_learns_it():
    a, b = _in_flight()
    b.queue_fulfill(1, _pre(1))
    hints = b.take_preimage_hints()
    assert hints == [(1, _pre(1))] and b.take_preimage_hints() == []
    b.queue_fail(0, "no")  # a fail is not hinted
    assert b.take_preimage_hints() == []
    before = _snapshot(a)
    assert a.receive_preimages(Preimages(a.channel_id, tuple(hints))) == []
    (ev,) = a.drain_events()
    assert isinstance(ev, PreimageLearned) and ev.preimage == _pre(1) and ev.htlc.htlc_id == 1
    assert _snapshot(a) == before  # a hint changes no state: the FulfillHtlc still follows


def test_unknown_htlcs_and_wrong_preimages_are_rejected_without_any_change():
    a, b = _in_flight()
    before = _snapshot(a)
    bad = Preimages(a.channel_id, ((7, _pre(7)), (0, _pre(1)), (2, _pre(2))))
    reasons = a.receive_preimages(bad)
    assert reasons == ["no HTLC 7 of ours", "preimage does not match our HTLC 0"]
    (ev,) = a.drain_events()  # the good one of the three is still learnt
    assert ev.htlc.htlc_id == 2
    assert _snapshot(a) == before
    # b's own HTLCs are not "ours" for a: b cannot make a learn a preimage of b's HTLC
    b.queue_add(500, _h(_pre(9)), 500)
    assert run_round(b, a)
    a.drain_events()
    assert a.receive_preimages(Preimages(a.channel_id, ((0, _pre(9)),))) != []
    assert a.drain_events() == []


def test_an_htlc_only_in_our_proposal_is_known():
    a, b = make_pair()
    a.queue_add(1000, _h(_pre(5)), 500)
    a.propose()  # not acknowledged yet
    assert a.receive_preimages(Preimages(a.channel_id, ((0, _pre(5)),))) == []
    (ev,) = a.drain_events()
    assert ev.htlc.payment_hash == _h(_pre(5))


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=20))
@settings(max_examples=60, deadline=None)
def test_exactly_the_matching_preimages_are_learnt(pairs):
    a, _ = _in_flight(3)
    before = _snapshot(a)
    msg = Preimages(a.channel_id, tuple((i, _pre(j)) for i, j in pairs))
    reasons = a.receive_preimages(msg)
    learnt = [(e.htlc.htlc_id, e.preimage) for e in a.drain_events()]
    assert learnt == [(i, _pre(j)) for i, j in pairs if i < 3 and i == j]
    assert len(reasons) + len(learnt) == len(pairs)
    assert _snapshot(a) == before


def test_a_lost_hint_is_sent_again_after_the_reestablish_and_the_round_still_settles():
    a, b = _in_flight(2)
    a.queue_add(50, _h(_pre(8)), 500)
    ack_b = b.receive_update(a.propose())  # a round under way: b's fulfils wait in its queue
    b.drain_events()
    b.queue_fulfill(0, _pre(0))
    b.queue_fulfill(1, _pre(1))
    b.take_preimage_hints()  # sent, and lost with the connection
    for src, dst in ((a, b), (b, a)):
        for out in dst.on_reestablish(src.reestablish_msg()):
            del out  # the retransmissions are checked by the channel tests
    assert b.take_preimage_hints() == [(0, _pre(0)), (1, _pre(1))]
    assert a.take_preimage_hints() == []
    b.receive_revoke(a.receive_ack(ack_b))
    assert run_round(b, a)  # the FulfillHtlc batch settles them whatever the hints did
    learnt = {e.htlc.htlc_id for e in a.drain_events() if isinstance(e, PreimageLearned)}
    assert learnt == {0, 1}
    assert [h.htlc_id for h in a.latest.htlcs] == [2]


# --- the switch: learnt from the hint, then again from the batch -------------------------------
def _line(lose_hints: bool = False):
    mesh = Mesh(lose_hints=lose_hints)
    a, b, c = mesh.node("alice"), mesh.node("bob"), mesh.node("carol")
    mesh.connect("alice", "bob", (50 * M, 50 * M))
    mesh.connect("bob", "carol", (50 * M, 50 * M))
    return mesh, a, b, c


@pytest.mark.parametrize("lose_hints", [False, True])
def test_two_hops_settle_once_whether_the_hints_arrive_or_not(lose_hints):
    mesh, a, b, c = _line(lose_hints)
    invs = [c.add_invoice(_pre(i), 1000 + i) for i in range(5)]
    pays = [a.pay(c.node_id, inv.payment_hash, inv.amount_msat, 100) for inv in invs]
    mesh.pump()
    assert all(p.status == "succeeded" for p in pays)
    assert [p.preimage for p in pays] == [inv.preimage for inv in invs]
    assert not b.links and b.failures.total == 0
    fees = sum(p.fee_msat for p in pays)
    bal = mesh.balances()
    assert bal["carol"] == 50 * M + sum(inv.amount_msat for inv in invs)
    assert bal["bob"] == 100 * M + fees
    assert sum(bal.values()) == 200 * M
    for sw in (a, b, c):
        assert all(not ch.latest.htlcs for ch in sw.channels.values())


def test_the_payer_succeeds_on_the_hint_before_the_fulfil_round():
    mesh, a, b, c = _line()
    inv = c.add_invoice(_pre(1), 1000)
    pay = a.pay(c.node_id, inv.payment_hash, 1000, 100)
    # one pass: alice's add round, bob's forward round, carol's hint to bob and bob's to alice
    mesh.pump(rounds=1, must_settle=False)
    assert pay.status == "succeeded" and pay.preimage == inv.preimage
    ab = next(iter(a.channels.values()))
    assert ab.latest.htlcs  # the HTLC is still in alice's channel: its fulfil round follows
    mesh.pump()
    assert not ab.latest.htlcs


# --- a batch that crossed our own proposal: locked in at the revoke only ---------------------
def test_a_batch_that_crossed_our_dropped_proposal_is_reported_once_the_peer_revoked_it(
    tmp_path,
):
    """Both propose n+1; party 1's proposal loses. The peer holds party 1's signature of a
    state numbered n+1 without its batch (reviewer1 #3), which no supersede can replace (same
    number) and which its revoke of n does not revoke: the batch's HTLCs are reported once the
    peer revoked n+1 too (its secret comes with its ack of party 1's next proposal, the dropped
    one proposed again), and the marks survive a restart."""
    a, b = _in_flight(1)
    b.queue_fulfill(0, _pre(0))
    crossing = b.propose()  # b's fulfil batch for n+1 ...
    n1 = crossing.number
    a.queue_add(2000, _h(_pre(3)), 500)
    ack = b.receive_update(a.propose())  # ... and a's add batch for n+1: a's wins
    assert a.receive_update(crossing) is None  # a ignores b's
    assert b.drain_events() == [] and b.extra[CROSSED] == n1
    b = _reloaded(tmp_path / "b1.sqlite", b)  # b restarts before a's revoke comes
    b.receive_revoke(a.receive_ack(ack))
    assert b.drain_events() == []  # a's revoke of n leaves the crossing state n+1 standing
    assert b.extra[LOCK_IN_AFTER][0][0] == n1 and CROSSED not in b.extra
    b = _reloaded(tmp_path / "b2.sqlite", b)
    ack = a.receive_update(b.propose())  # b's fulfil, proposed again as n+2
    a.drain_events()
    rev = b.receive_ack(ack)  # with a's secret of n+1: now it is revoked
    (ev,) = b.drain_events()
    assert isinstance(ev, IncomingHtlc) and ev.add.payment_hash == _h(_pre(3))
    assert LOCK_IN_AFTER not in b.extra and REPORTED_EARLY not in b.extra
    a.receive_revoke(rev)
    assert b.drain_events() == []  # once


def _reloaded(path, ch):
    keys = node_keys("bob")
    store = Store(path, keys)
    store.mark(ch)
    store.commit(Switch(keys.node_id, channels={ch.channel_id: ch}))
    store.close()
    sw = Switch(keys.node_id)
    Store(path, keys).load(sw)
    return sw.channels[ch.channel_id]


# --- the peer's refusals: rate-limited per kind ------------------------------------------------
def test_a_peers_refusals_are_logged_rate_limited_and_counted(caplog):
    peer = Peer(b"\x02" * 33, conn=None, commit=lambda: None)
    with caplog.at_level("WARNING", logger="gateway.ln.node.peer"):
        logged = [peer.reject("refused sg_preimages", f"no HTLC {i}") for i in range(50)]
        assert peer.reject("malformed message", "short")  # another kind has its own budget
    assert logged == [True] * REJECT_BURST + [False] * (50 - REJECT_BURST)
    assert caplog.text.count("refused sg_preimages") == REJECT_BURST
    assert peer.rejections.total == 51
    # the node's budget is shared by the peer's connections: a reconnect starts none afresh
    again = Peer(b"\x02" * 33, conn=None, commit=lambda: None, rejections=peer.rejections)
    assert not again.reject("refused sg_preimages", "no HTLC 99")


def test_a_batch_signed_by_the_version_before_early_lock_in_is_reported_at_its_revoke():
    """A document written mid-round by the previous version has no REPORTED_EARLY mark: that
    version had not reported the batch's HTLCs yet, so the revoke does."""
    a, b = make_pair()
    a.queue_add(3000, _h(_pre(4)), 500)
    ack = b.receive_update(a.propose())
    (ev,) = b.drain_events()
    del b.extra[REPORTED_EARLY]  # as the previous version stored it
    b.receive_revoke(a.receive_ack(ack))
    (again,) = b.drain_events()
    assert isinstance(again, IncomingHtlc) and again.add == ev.add
    assert REPORTED_EARLY not in b.extra


def test_a_commit_in_the_middle_of_a_burst_lets_the_switch_act_on_early_htlcs_first(tmp_path):
    """reviewer2 F1: a handler that commits before the burst's end (a close's ledger submit)
    stored the peer's batch while its IncomingHtlc, never stored, waited for the switch: a crash
    then lost the HTLC until its expiry. The node's commit hands the events to the switch
    first, so the payee's fulfil is in the same transaction as the commitment."""
    from gateway.ln.channel.htlc import FeePolicy
    from gateway.ln.node.core import NodeCore
    from gateway.ln.node.ledger_port import MemoryLedger
    from gateway.ln.node.router import Hop, encode_onion

    ledger = MemoryLedger()
    core = NodeCore(tmp_path / "payee", ledger, FeePolicy())
    payer = node_keys("payer")
    for k in (payer, core.keys):
        ledger.deposit(k.node_id, 100 * M)
    theirs, ours, cid = open_pair(payer, core.keys, (50 * M, 50 * M), ledger.chain, "b", ledger)
    ours.on_persist = core.store.mark
    core.switch.channels[cid] = ours
    inv = core.switch.add_invoice(_pre(6), 1000)
    hop = Hop(cid, core.node_id, 1000, 500)
    theirs.queue_add(1000, inv.payment_hash, 500, encode_onion([hop])[0])
    ours.receive_update(theirs.propose())  # the IncomingHtlc waits in ours.events
    core.commit()  # e.g. lifecycle's commit before its ledger submit, then a crash
    core.store.close()
    again = NodeCore(tmp_path / "payee", ledger, FeePolicy())
    (ch,) = again.switch.channels.values()
    assert [(u.htlc_id, u.preimage) for u in ch.pending] == [(0, _pre(6))]  # fulfil queued
    assert again.switch.invoices[inv.payment_hash].paid
    again.store.close()
