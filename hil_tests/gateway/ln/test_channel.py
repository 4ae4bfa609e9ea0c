from __future__ import annotations

import hashlib

import pytest

from gateway.ln.channel.channel import ChannelState, IncomingHtlc, OutgoingSettled, PreimageLearned
from gateway.ln.channel.commitment import verify
from gateway.ln.channel.messages import UpdateBatch
from gateway.ln.errors import (
    BadPreimage,
    IllegalTransition,
    InsufficientBalance,
    ProtocolViolation,
)
from hil_tests.gateway.ln.channel_pair import make_pair, run_round, settle


def _pay(a, b, amount, preimage=b"\x01" * 32):
    h = hashlib.sha256(preimage).digest()
    a.queue_add(amount, h, 500)
    settle(a, b, {h: preimage})


def test_single_payment_moves_the_amount_and_keeps_capacity():
    a, b = make_pair()
    _pay(a, b, 1_234_000)
    assert a.local_balance == 100_000_000 - 1_234_000
    assert b.local_balance == 50_000_000 + 1_234_000
    assert a.latest == b.latest and a.latest.number == 2
    for ch in (a, b):
        ch.check_invariant()
        assert verify(ch.funding_pubs[0], ch.latest.digest(), ch.sigs[0])
        assert verify(ch.funding_pubs[1], ch.latest.digest(), ch.sigs[1])


def test_unknown_payment_is_failed_back_without_moving_money():
    a, b = make_pair()
    a.queue_add(5000, b"\x22" * 32, 500)
    settle(a, b, {})
    assert (a.local_balance, b.local_balance) == (100_000_000, 50_000_000)
    assert not a.latest.htlcs


def test_an_incoming_htlc_is_reported_once_when_signed_and_settlements_at_the_revoke():
    """Early lock-in: b reports a's HTLC as soon as it signed the commitment holding it (the
    ledger's supersede protects it from a's older state), never again at a's revoke; a's own
    HTLC is settled (OutgoingSettled) only once b revoked, its preimage learnt at once."""
    a, b = make_pair()
    pre = b"\x05" * 32
    h = hashlib.sha256(pre).digest()
    a.queue_add(7000, h, 500)
    ack = b.receive_update(a.propose())
    (ev,) = b.drain_events()
    assert isinstance(ev, IncomingHtlc) and ev.add.amount_msat == 7000
    b.queue_fulfill(ev.add.htlc_id, pre)  # before a's revoke
    fulfil = b.propose()  # overlapping rounds: a's batch carried its next revocation hash
    assert fulfil is not None and fulfil.number == ack.number + 1
    b.receive_revoke(a.receive_ack(ack))
    assert b.drain_events() == []  # not reported a second time
    ack = a.receive_update(fulfil)
    (early,) = a.drain_events()  # the preimage is proof of payment at once
    assert isinstance(early, PreimageLearned) and early.preimage == pre
    a.receive_revoke(b.receive_ack(ack))
    (done,) = a.drain_events()
    assert isinstance(done, OutgoingSettled) and done.preimage == pre


def test_without_early_lock_in_incoming_htlcs_wait_for_the_revoke(monkeypatch):
    a, b = make_pair()
    monkeypatch.setattr(b, "early_lock_in", False)
    a.queue_add(7000, b"\x06" * 32, 500)
    ack = b.receive_update(a.propose())
    assert b.events == []  # a has not revoked its old commitment yet
    b.receive_revoke(a.receive_ack(ack))
    (ev,) = b.drain_events()
    assert isinstance(ev, IncomingHtlc) and ev.add.amount_msat == 7000


def test_every_superseded_commitment_is_revoked():
    a, b = make_pair()
    for i in range(5):
        _pay(a, b, 1000 + i, bytes([i + 1]) * 32)
    n = a.latest.number
    assert a.remote_revoked_through == n - 1 and b.remote_revoked_through == n - 1
    for old in range(n):
        assert b.remote_secrets.derive(2**48 - 1 - old) == a.local_secret(old)
        assert a.remote_secrets.derive(2**48 - 1 - old) == b.local_secret(old)


def test_batch_of_many_htlcs_in_one_commitment():
    a, b = make_pair()
    pres = {}
    for i in range(300):
        pre = i.to_bytes(32, "big")
        h = hashlib.sha256(pre).digest()
        pres[h] = pre
        a.queue_add(1000, h, 500)
    settle(a, b, pres)
    assert a.latest.number == 2  # one round to add all 300, one to fulfill all
    assert b.local_balance == 50_000_000 + 300_000


def test_overspending_is_refused_before_anything_is_signed():
    a, b = make_pair((10_000, 0))
    a.queue_add(6000, b"\x01" * 32, 500)
    with pytest.raises(InsufficientBalance):
        a.queue_add(6000, b"\x02" * 32, 500)
    with pytest.raises(InsufficientBalance):
        b.queue_add(1, b"\x03" * 32, 500)


def test_wrong_preimage_is_refused():
    a, b = make_pair()
    a.queue_add(1000, b"\x09" * 32, 500)
    run_round(a, b)
    (ev,) = b.drain_events()
    with pytest.raises(BadPreimage):
        b.queue_fulfill(ev.add.htlc_id, b"\x00" * 32)


def test_forged_signature_is_rejected_and_state_unchanged():
    a, b = make_pair()
    a.queue_add(1000, b"\x09" * 32, 500)
    msg = a.propose()
    before = b.latest
    forged = UpdateBatch(msg.channel_id, msg.number, msg.updates, b.sigs[0], msg.ledger_sig)
    with pytest.raises(ProtocolViolation):
        b.receive_update(forged)
    forged_ledger = UpdateBatch(msg.channel_id, msg.number, msg.updates, msg.sig, b.sigs[0])
    with pytest.raises(ProtocolViolation):
        b.receive_update(forged_ledger)
    assert b.latest == before and not b.awaiting_revoke


def test_peer_cannot_steal_by_settling_its_own_htlc():
    a, b = make_pair()
    a.queue_add(1000, b"\x09" * 32, 500)
    run_round(a, b)
    # a forges a "fulfill" of its own HTLC to get the money back into... a's own batch
    from gateway.ln.channel.htlc import FulfillHtlc, encode_updates

    bogus = encode_updates([FulfillHtlc(0, 0, b"\x00" * 32)])
    with pytest.raises(ProtocolViolation):
        b.receive_update(UpdateBatch(a.channel_id, a.latest.number + 1, bogus, b"0", b"0"))


def test_simultaneous_proposals_resolve_to_party_zero():
    a, b = make_pair()
    a.queue_add(1000, b"\x01" * 32, 500)
    b.queue_add(2000, b"\x02" * 32, 500)
    ma, mb = a.propose(), b.propose()
    assert a.receive_update(mb) is None  # party 0 wins the tie
    ack = b.receive_update(ma)  # party 1 drops its proposal, re-queues it
    b.receive_revoke(a.receive_ack(ack))
    assert run_round(b, a)
    assert a.latest == b.latest and len(a.latest.htlcs) == 2


def test_retransmissions_are_idempotent():
    a, b = make_pair()
    a.queue_add(1000, b"\x01" * 32, 500)
    msg = a.propose()
    ack = b.receive_update(msg)
    assert b.receive_update(msg) == ack  # lost ack: same bytes again
    rev = a.receive_ack(ack)
    assert a.receive_ack(ack) == rev
    b.receive_revoke(rev)
    b.receive_revoke(rev)
    assert len(b.drain_events()) == 1


@pytest.mark.parametrize("lost", ["update", "ack", "revoke"])
def test_reestablish_recovers_from_a_lost_message(lost):
    a, b = make_pair()
    a.queue_add(1000, b"\x01" * 32, 500)
    msg = a.propose()
    if lost != "update":
        ack = b.receive_update(msg)
        if lost == "revoke":
            a.receive_ack(ack)
    for _ in range(3):
        for src, dst in ((a, b), (b, a)):
            for m in dst.on_reestablish(src.reestablish_msg()):
                handler = {
                    "UpdateBatch": src.receive_update,
                    "AckBatch": src.receive_ack,
                    "Revoke": src.receive_revoke,
                }[type(m).__name__]
                reply = handler(m)
                if reply is not None:
                    {"AckBatch": dst.receive_ack, "Revoke": dst.receive_revoke}[
                        type(reply).__name__
                    ](reply)
    assert a.latest == b.latest and a.latest.number == 1
    assert not b.awaiting_revoke and a.proposal is None


def test_cooperative_close_signs_the_final_split():
    a, b = make_pair()
    _pay(a, b, 3000)
    a.shutdown()
    b.shutdown()
    with pytest.raises(IllegalTransition):
        a.queue_add(1, b"\x01" * 32, 500)
    ca = a.closing_signed()
    b.receive_closing_signed(ca)
    a.receive_closing_signed(b.closing_signed())
    assert a.state == b.state == ChannelState.CLOSING
    assert a.closing_sigs == b.closing_sigs


def test_cannot_close_cooperatively_with_htlcs_in_flight():
    a, b = make_pair()
    a.queue_add(1000, b"\x01" * 32, 500)
    run_round(a, b)
    a.shutdown()
    with pytest.raises(IllegalTransition):
        a.closing_signed()


def test_revoked_commitment_published_yields_the_penalty_secret():
    a, b = make_pair()
    _pay(a, b, 3000)
    old = 0
    secret = b.on_remote_published(old)
    assert secret is not None
    assert hashlib.sha256(secret).digest() == a.local_rev_hash(old)
    assert b.state == ChannelState.FORCE_CLOSING


def test_latest_commitment_published_is_not_punished():
    a, b = make_pair()
    _pay(a, b, 3000)
    state, sig = a.force_close()
    assert b.on_remote_published(state["number"]) is None


def test_a_late_ack_after_our_force_close_never_reveals_the_published_state():
    """Seen at 56 nodes: A proposed N+1, force-closed at N (an HTLC expired), then took B's late
    ack and sent Revoke(N) -- the secret of the state it had just published; B penalized it."""
    a, b = make_pair()
    _pay(a, b, 3000)
    a.queue_add(1000, b"\x02" * 32, 500)
    ack = b.receive_update(a.propose())
    assert ack is not None
    published, _ = a.force_close()
    with pytest.raises(IllegalTransition):
        a.receive_ack(ack)
    assert a.latest.number == published["number"]  # still the state on the ledger
    revealing = a.local_rev_hash(published["number"])
    for m in a.on_reestablish(b.reestablish_msg()):  # reconnecting does not reveal it either
        secret = getattr(m, "secret", None)
        assert secret is None or hashlib.sha256(secret).digest() != revealing
    assert b.on_remote_published(published["number"]) is None  # so A keeps its money


def test_illegal_transition_is_typed_and_leaves_state():
    a, _ = make_pair()
    with pytest.raises(IllegalTransition):
        a.set_state(ChannelState.PREOPENING)
    assert a.state == ChannelState.OPEN


def test_an_htlc_field_the_wire_cannot_carry_is_refused_and_the_channel_goes_on():
    a, b = make_pair()
    preimage = b"\x07" * 32
    with pytest.raises(ProtocolViolation):
        a.queue_add(1_000, hashlib.sha256(preimage).digest(), 2**40)  # cltv beyond u32
    with pytest.raises(ProtocolViolation):
        a.queue_add(1_000, hashlib.sha256(preimage).digest(), 100, b"x" * 70_000)  # onion > u16
    a.queue_add(1_000, hashlib.sha256(preimage).digest(), 100)
    run_round(a, b)  # the next commitment still encodes and both sides agree
    assert a.latest == b.latest
    for ch in (a, b):
        ch.check_invariant()
