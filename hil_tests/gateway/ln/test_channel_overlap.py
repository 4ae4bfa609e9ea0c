"""Overlapping update rounds: the batch carries the proposer's next revocation hash, so the
acceptor proposes right after its ack, before the proposer's revoke has come. The messages of one
direction keep their order; a reconnection re-sends what was lost in that order."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from gateway.ln.channel import messages_wire
from gateway.ln.channel.messages import AckBatch, Revoke, UpdateBatch
from gateway.ln.codec.wire import TABLE
from gateway.ln.errors import ProtocolViolation, WireError
from hil_tests.gateway.ln.channel_pair import make_pair


def _handle(ch, msg):
    return {
        "UpdateBatch": ch.receive_update,
        "AckBatch": ch.receive_ack,
        "Revoke": ch.receive_revoke,
    }[type(msg).__name__](msg)


def _run(a, b, inbox_a, inbox_b) -> None:
    """Deliver in order until quiet (each reply goes to the back of the other's inbox)."""
    boxes = {id(a): inbox_a, id(b): inbox_b}
    for _ in range(100):
        if not (inbox_a or inbox_b):
            for ch, other in ((a, b), (b, a)):
                msg = ch.propose()
                if msg is not None:
                    boxes[id(other)].append(msg)
            if not (inbox_a or inbox_b):
                return
        for ch, other in ((a, b), (b, a)):
            box = boxes[id(ch)]
            if box:
                reply = _handle(ch, box.pop(0))
                if reply is not None:
                    boxes[id(other)].append(reply)
                msg = ch.propose()
                if msg is not None:
                    boxes[id(other)].append(msg)
    raise AssertionError("did not converge")


def _converged(a, b) -> None:
    assert a.latest == b.latest and a.proposal is None and b.proposal is None
    assert not a.awaiting_revoke and not b.awaiting_revoke
    n = a.latest.number
    assert a.remote_revoked_through == n - 1 and b.remote_revoked_through == n - 1
    for old in range(n):  # every older state of each is revoked, with the right secret
        assert b.remote_secrets.derive(2**48 - 1 - old) == a.local_secret(old)
        assert a.remote_secrets.derive(2**48 - 1 - old) == b.local_secret(old)


def _reestablish(a, b) -> tuple[list, list]:
    """Both sides reestablish; what each re-sends, in order, goes to the other's inbox."""
    to_b = a.on_reestablish(b.reestablish_msg())
    to_a = b.on_reestablish(a.reestablish_msg())
    return to_a, to_b


def _add(ch, n: int) -> bytes:
    pre = bytes([n]) * 32
    ch.queue_add(1000 + n, hashlib.sha256(pre).digest(), 500)
    return pre


def test_the_acceptor_proposes_in_the_same_flush_as_its_ack():
    a, b = make_pair()
    _add(a, 1)
    batch = a.propose()
    assert batch.next_hash == a.local_rev_hash(batch.number + 1)
    ack = b.receive_update(batch)
    _add(b, 2)
    mine = b.propose()  # a's revoke of 0 has not come
    assert mine is not None and mine.number == batch.number + 1 and b.awaiting_revoke
    rev = a.receive_ack(ack)
    ack2 = a.receive_update(mine)
    b.receive_revoke(rev)
    a.receive_revoke(b.receive_ack(ack2))
    _converged(a, b)
    assert len(a.latest.htlcs) == 2


def test_a_peer_that_sends_no_next_hash_gets_strict_rounds():
    """A version before overlapping rounds: its batch has no hash, so we wait for its revoke."""
    a, b = make_pair()
    a.overlap_rounds = False  # shadows the class default on this instance only
    _add(a, 1)
    batch = a.propose()
    assert batch.next_hash == b""
    wire = messages_wire.to_wire(batch)
    assert messages_wire.from_wire(TABLE.decode(wire)) == batch  # no TLV stream at all
    ack = b.receive_update(batch)
    _add(b, 2)
    assert b.propose() is None
    b.receive_revoke(a.receive_ack(ack))
    assert b.propose() is not None


def test_an_ack_before_the_revoke_is_refused_and_changes_nothing():
    a, b = make_pair()
    _add(a, 1)
    ack = b.receive_update(a.propose())
    _add(b, 2)
    mine = b.propose()
    rev = a.receive_ack(ack)
    ack2 = a.receive_update(mine)
    before = dataclasses.replace(b)
    with pytest.raises(ProtocolViolation, match="before the peer's revoke"):
        b.receive_ack(ack2)
    assert (b.latest, b.proposal, b.awaiting_revoke) == (
        before.latest,
        before.proposal,
        before.awaiting_revoke,
    )
    b.receive_revoke(rev)
    a.receive_revoke(b.receive_ack(ack2))
    _converged(a, b)


def test_a_revoke_whose_next_hash_differs_from_the_batch_is_refused():
    a, b = make_pair()
    _add(a, 1)
    ack = b.receive_update(a.propose())
    rev = a.receive_ack(ack)
    forged = Revoke(rev.channel_id, rev.number, rev.secret, bytes(32))
    with pytest.raises(ProtocolViolation, match="next hash"):
        b.receive_revoke(forged)
    assert b.awaiting_revoke
    b.receive_revoke(rev)
    assert not b.awaiting_revoke


@pytest.mark.parametrize(
    "lost",
    [
        "b's ack and proposal",  # b at 1 with its proposal 2; a at 0 with its proposal 1
        "b's proposal",  # a got b's ack: both at 1, b's proposal 2 lost
        "a's revoke, ack and proposal",  # a at 2 with its proposal 3; b at 1 with proposal 2
        "b's revoke and ack",  # b at 3 (revoked 1 by Revoke, 2 by its ack); a at 2
        "nothing",
    ],
)
def test_a_reconnection_resends_what_each_side_lost_in_order(lost):
    """a proposes n+1; b acks and proposes n+2 at once; a revokes n, acks n+2 and proposes
    n+3 at once; b revokes n+1 and acks n+3. Cut at each point, reestablish, converge."""
    a, b = make_pair()
    _add(a, 1)
    to_b: list = [a.propose()]
    ack1 = b.receive_update(to_b.pop())
    _add(b, 2)
    to_a: list = [ack1, b.propose()]
    if lost == "b's ack and proposal":
        to_a.clear()
    elif lost == "b's proposal":
        to_b.append(a.receive_ack(to_a.pop(0)))  # a's revoke of 0
        to_a.clear()
    else:
        rev0 = a.receive_ack(to_a.pop(0))
        ack2 = a.receive_update(to_a.pop(0))
        _add(a, 3)
        mine3 = a.propose()
        assert mine3 is not None and a.awaiting_revoke  # overlapping again
        to_b += [rev0, ack2, mine3]
        if lost == "a's revoke, ack and proposal":
            to_b.clear()
        elif lost == "b's revoke and ack":
            b.receive_revoke(to_b.pop(0))
            rev1 = b.receive_ack(to_b.pop(0))
            ack3 = b.receive_update(to_b.pop(0))
            assert isinstance(rev1, Revoke) and isinstance(ack3, AckBatch)
            to_a = []  # both lost
    if lost != "nothing":
        to_a, to_b = _reestablish(a, b)
    _run(a, b, to_a, to_b)
    _converged(a, b)
    assert len(a.latest.htlcs) == 2 + (lost not in ("b's ack and proposal", "b's proposal"))


def test_the_next_hash_record_round_trips_and_a_bad_stream_is_malformed():
    a, b = make_pair()
    _add(a, 1)
    batch = a.propose()
    raw = messages_wire.to_wire(batch)
    assert messages_wire.from_wire(TABLE.decode(raw)) == batch
    plain = messages_wire.to_wire(dataclasses.replace(batch, next_hash=b""))
    assert raw == plain + bytes((1, 32)) + batch.next_hash
    odd = plain + bytes((1, 32)) + batch.next_hash + bytes((3, 2)) + b"xy"  # unknown odd: skipped
    assert messages_wire.from_wire(TABLE.decode(odd)) == batch
    for bad in (
        plain + bytes((2, 1)) + b"x",  # unknown even record
        plain + bytes((1, 31)) + bytes(31),  # wrong length
        plain + bytes((1, 32)) + bytes(10),  # truncated
        plain + bytes((3, 0, 1, 32)) + bytes(32),  # out of order
        plain + bytes((1,)),  # no length
    ):
        with pytest.raises(WireError):
            messages_wire.from_wire(TABLE.decode(bad))
    assert isinstance(messages_wire.from_wire(TABLE.decode(plain)), UpdateBatch)


def test_a_batch_near_the_message_limit_goes_without_the_next_hash():
    """The record must not push the message past 65535 bytes (the peer could not read it, and
    the batch, sent again the same after every reconnection, would never be acked)."""
    hash_ = hashlib.sha256(b"next").digest()
    for size in (65_535 - 172 - 34, 65_535 - 172):  # with room for the record, and without
        msg = UpdateBatch(bytes(32), 1, bytes(size - 2), bytes(64), bytes(64), hash_)
        raw = messages_wire.to_wire(msg)
        assert len(raw) <= 65_535
        back = messages_wire.from_wire(TABLE.decode(raw))
        assert back.updates == msg.updates
        assert back.next_hash == (hash_ if size < 65_535 - 172 else b"")


def test_a_batch_with_a_bad_next_hash_is_refused_before_anything_changes():
    a, b = make_pair((1_000_000, 400_000))
    a.queue_add(1_000, hashlib.sha256(b"x").digest(), 1000)
    msg = dataclasses.replace(a.propose(), next_hash=bytes(16))
    before = (b.latest, b.sigs, b.awaiting_revoke, b.remote_next_hash, dict(b.extra))
    with pytest.raises(ProtocolViolation):
        b.receive_update(msg)
    assert (b.latest, b.sigs, b.awaiting_revoke, b.remote_next_hash, dict(b.extra)) == before
    assert b.drain_events() == []


def test_a_duplicate_revoke_after_the_next_batch_is_ignored():
    """A stale ack (the reestablish sent a batch again, the peer acked both copies) is answered
    with the same revoke again; it may reach the peer after it accepted our next batch: a
    duplicate, changing nothing (it was refused as a revoke of the wrong number)."""
    a, b = make_pair()
    _add(a, 1)
    ack1 = b.receive_update(a.propose())
    rev0 = a.receive_ack(ack1)
    _add(a, 2)
    batch2 = a.propose()
    b.receive_revoke(rev0)
    ack2 = b.receive_update(batch2)
    assert a.receive_ack(ack1) == rev0  # the stale ack: the same revoke again
    before = (b.latest, b.awaiting_revoke, b.remote_revoked_through, dict(b.extra))
    b.receive_revoke(rev0)
    assert (b.latest, b.awaiting_revoke, b.remote_revoked_through, dict(b.extra)) == before
    b.receive_revoke(a.receive_ack(ack2))
    _converged(a, b)
