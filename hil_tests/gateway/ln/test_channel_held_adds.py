"""A crossing batch drops party 1's proposal, whose adds go back to its queue: party 0 holds
party 1's signature of that state (numbered as party 1's new latest, so no supersede replaces
it) until it revokes that number. Those adds are not "queued, never proposed": a disconnect or a
force close must not fail them upstream (the peer may publish the state and claim them), and
the watch must count them among the HTLCs the channel may still hold."""

from __future__ import annotations

import hashlib

from gateway.ln.channel.closing import HELD_ADDS
from gateway.ln.channel.state import ChannelState
from hil_tests.gateway.ln.channel_pair import make_pair


def _crossed():
    a, b = make_pair((1_000_000, 400_000))
    a.queue_add(1_000, hashlib.sha256(b"a").digest(), 1000)
    b.queue_add(2_000, hashlib.sha256(b"b").digest(), 1000)
    pa, pb = a.propose(), b.propose()
    assert a.receive_update(pb) is None  # party 0's proposal wins the crossing
    ack = b.receive_update(pa)  # party 1 drops its own, re-queued
    return a, b, ack


def test_a_dropped_add_is_not_failed_while_the_peer_may_publish_it():
    a, b, ack = _crossed()
    key = (1, 0)
    assert [u.htlc_id for u in b.pending] == [0] and b.proposal is None
    assert b.drop_pending_adds("peer offline") == []  # a disconnect keeps it queued
    assert [u.htlc_id for u in b.pending] == [0] and b.next_local_htlc_id == 1
    assert key in b.offered_htlcs()  # the watch looks for it on the ledger
    assert key in b.may_come_back(b.latest.number - 1, height=10)
    # party 0 publishes the dropped state (same number as b's latest): its output stays b's
    assert key not in b.may_come_back(b.latest.number, height=10)
    # once party 0 revoked that number, the dropped state is answered by the penalty
    b.receive_revoke(a.receive_ack(ack))
    assert b.extra.get(HELD_ADDS)  # party 0 revoked the state before, not this number yet
    a.receive_revoke(b.receive_ack(a.receive_update(b.propose())))  # party 0 revokes 1
    assert HELD_ADDS not in b.extra and key in b.offered_htlcs()  # in b's latest now
    assert b.drop_pending_adds("peer offline") == [] and not b.pending


def test_a_shutdown_fails_a_held_add_only_once_the_peer_revoked_its_number():
    """A shutdown takes the held add out of the queue (no add after it) but fails it only at
    party 0's revoke of that number (it failed it at once, while party 0 could still publish
    the dropped state and claim it). Party 0's own add of the crossing batch, held for that
    same revoke, is failed by b at its shutdown: no other update is left to make a round, so
    both would wait for good; the round of that fail brings the revoke."""
    from gateway.ln.channel.closing import HELD_FAILS
    from gateway.ln.channel.htlc import FailHtlc
    from gateway.ln.channel.state import OutgoingSettled

    a, b, ack = _crossed()
    assert b.shutdown() == [] and b.state == ChannelState.SHUTDOWN
    assert not [u for u in b.pending if not isinstance(u, FailHtlc)]  # no add queued
    assert b.extra[HELD_FAILS] and (1, 0) in b.offered_htlcs()
    b.receive_revoke(a.receive_ack(ack))  # a revoked 0, not 1: its add waits (lock_in_after)
    assert [(type(u).__name__, u.htlc_id) for u in b.pending] == [("FailHtlc", 0)]
    assert not b.drain_events()
    a.receive_revoke(b.receive_ack(a.receive_update(b.propose())))  # the fail's round
    (failed,) = b.drain_events()  # a revoked 1: b's held add fails upstream now
    assert isinstance(failed, OutgoingSettled) and failed.htlc.key == (1, 0)
    assert failed.preimage is None and HELD_FAILS not in b.extra
    assert a.latest == b.latest and not a.latest.htlcs  # nothing left: they may close


def test_our_htlc_the_winning_batch_fails_is_failed_only_once_the_dropped_state_is_revoked():
    """b (party 1) offered h; both propose 2, a's batch (failing h) wins: b's dropped state 2,
    which a holds signed and has not revoked, still has h. a's revoke of 1 makes the fail final
    for a's state 2, not for that one: b fails h upstream only once a revoked 2 too."""
    from gateway.ln.channel.closing import HELD_FAILS
    from gateway.ln.channel.state import OutgoingSettled
    from hil_tests.gateway.ln.channel_pair import run_round

    a, b = make_pair((1_000_000, 400_000))
    b.queue_add(2_000, hashlib.sha256(b"h").digest(), 1000)
    assert run_round(b, a)
    (ev,) = a.drain_events()
    a.queue_fail(ev.add.htlc_id, "no route")
    b.queue_add(3_000, hashlib.sha256(b"h2").digest(), 1000)  # b proposes too: a crossing
    pa, pb = a.propose(), b.propose()
    assert a.receive_update(pb) is None
    ack = b.receive_update(pa)
    b.receive_revoke(a.receive_ack(ack))  # a revoked 1, not 2
    h = (1, 0)
    assert not [e for e in b.drain_events() if isinstance(e, OutgoingSettled)]
    assert b.extra[HELD_FAILS] and h in b.offered_htlcs()
    assert h in b.may_come_back(b.latest.number - 1, height=10)  # a may publish the dropped 2
    a.receive_revoke(b.receive_ack(a.receive_update(b.propose())))  # b's adds again: a revokes 2
    (failed,) = [e for e in b.drain_events() if isinstance(e, OutgoingSettled)]
    assert failed.htlc.key == h and failed.preimage is None and failed.reason == "no route"
    assert HELD_FAILS not in b.extra and h not in b.offered_htlcs()


def test_a_cooperative_close_fails_what_is_still_held():
    """a's winning batch only fails b's h; b's dropped proposal adds h2, and b shuts down. No
    update is left (a's batch added nothing to fail back), so a never revokes that number: at
    the cooperative close nothing but the final split can reach the ledger, and b fails both
    upstream then (`release_held`, called by the node's lifecycle)."""
    from gateway.ln.channel.closing import HELD_FAILS
    from hil_tests.gateway.ln.channel_pair import run_round

    a, b = make_pair((1_000_000, 400_000))
    b.queue_add(2_000, hashlib.sha256(b"h").digest(), 1000)
    assert run_round(b, a)
    (ev,) = a.drain_events()
    a.queue_fail(ev.add.htlc_id, "no route")
    b.queue_add(3_000, hashlib.sha256(b"h2").digest(), 1000)
    pa, pb = a.propose(), b.propose()
    assert a.receive_update(pb) is None
    ack = b.receive_update(pa)
    b.shutdown()
    b.receive_revoke(a.receive_ack(ack))
    assert not b.pending and b.ready_to_close()
    b.drain_events()
    held = {e.htlc.key: e.preimage for e in b.release_held("channel closed")}
    assert held == {(1, 0): None, (1, 1): None}
    assert HELD_FAILS not in b.extra and HELD_ADDS not in b.extra
    assert b.release_held("channel closed") == []  # once
