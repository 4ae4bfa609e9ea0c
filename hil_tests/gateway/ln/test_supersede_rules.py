"""The pure parts of the watch's supersede and unwinding (gateway/ln/channel/closing.py,
gateway/ln/node/watch.py, Switch.on_published): which state supersedes a published one, which of
our HTLCs a newer state may still bring onto the ledger, and the once-per-HTLC bookkeeping.

The property test plays random update rounds (crossing proposals, lost connections included) and
records every ledger state each party signed for its peer: whatever unrevoked state the peer
publishes, each of our HTLCs that a newer state the peer could supersede it with holds is kept
waiting (`may_come_back`), our `supersede_state` is newer and signed by the peer, and a revoked
one still gets the penalty (we hold its secret)."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gateway.ln.channel.channel import IncomingHtlc, secret_index
from gateway.ln.channel.commitment import Commitment, verify
from gateway.ln.channel.ledger_bodies import digest
from gateway.ln.errors import InsufficientBalance
from gateway.ln.node.switch import Payment, Switch
from gateway.ln.node.watch import UPSTREAM_BLOCKS, cltv_delta_problem, reported_keys
from hil_tests.gateway.ln.channel_pair import make_pair, run_round

CAP = (1_000_000, 400_000)
M = 1_000


def _hash(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(32, "big")).digest()


class SignedStates(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chans = make_pair(CAP)
        self.inbox: list[list] = [[], []]  # messages in flight towards party i
        self.incoming: list[list] = [[], []]
        self.counter = 0
        # per party: the commitments whose ledger state it signed for its peer (what the peer
        # may publish), and those of them from a proposal it dropped (crossing proposals)
        self.signed: list[list[Commitment]] = [[self.chans[0].latest], [self.chans[1].latest]]
        self.dropped: list[list[Commitment]] = [[], []]

    def _deliver(self, i: int, msg) -> None:
        ch = self.chans[i]
        before = ch.proposal.commitment if ch.proposal is not None else None
        name = type(msg).__name__
        handlers: dict[str, Any] = {
            "UpdateBatch": ch.receive_update,
            "AckBatch": ch.receive_ack,
            "Revoke": ch.receive_revoke,
        }
        reply = handlers[name](msg)
        if name == "UpdateBatch" and before is not None and ch.proposal is None:
            self.dropped[i].append(before)  # party 1's proposal lost: the peer holds its sig
        if reply is not None:
            if type(reply).__name__ == "AckBatch":
                self.signed[i].append(ch.latest)  # the ack signs the peer's state of latest
            self.inbox[1 - i].append(reply)
        for ev in ch.drain_events():
            if isinstance(ev, IncomingHtlc):
                self.incoming[i].append(ev.add)

    @rule(i=st.integers(0, 1), amount=st.integers(1, 300 * M))
    def add(self, i, amount):
        self.counter += 1
        try:
            self.chans[i].queue_add(amount, _hash(self.counter), 1000)
        except InsufficientBalance:
            pass

    @rule(i=st.integers(0, 1), data=st.data(), fulfill=st.booleans())
    def settle(self, i, data, fulfill):
        if not self.incoming[i]:
            return
        add = self.incoming[i].pop(data.draw(st.integers(0, len(self.incoming[i]) - 1)))
        if self.chans[i].htlc((1 - i, add.htlc_id)) is None:
            return
        n = next(k for k in range(1, self.counter + 1) if _hash(k) == add.payment_hash)
        if fulfill:
            self.chans[i].queue_fulfill(add.htlc_id, n.to_bytes(32, "big"))
        else:
            self.chans[i].queue_fail(add.htlc_id, "random")

    @rule(i=st.integers(0, 1))
    def propose(self, i):
        msg = self.chans[i].propose()
        if msg is not None:
            self.signed[i].append(self.chans[i].proposal.commitment)
            self.inbox[1 - i].append(msg)

    @precondition(lambda self: self.inbox[0] or self.inbox[1])
    @rule(i=st.integers(0, 1))
    def deliver(self, i):
        if self.inbox[i]:
            self._deliver(i, self.inbox[i].pop(0))

    @precondition(lambda self: self.inbox[0] or self.inbox[1])
    @rule()
    def lose_and_reestablish(self):
        self.inbox = [[], []]
        for src, dst in ((0, 1), (1, 0)):
            msg = self.chans[src].reestablish_msg()
            self.inbox[src].extend(self.chans[dst].on_reestablish(msg))

    @invariant()
    def a_newer_state_the_peer_may_publish_is_covered(self):
        for i, ch in enumerate(self.chans):
            # Known gap, not covered: a proposal party 1 dropped when both proposed at once
            # (party 0's wins) is signed for party 0, which may publish it; its adds go back to
            # `pending` and are failed upstream at once when the channel is force-closed.
            dropped = {c.digest() for c in self.dropped[i]}
            publishable = [
                c
                for c in self.signed[i]
                if c.number > ch.remote_revoked_through and c.digest() not in dropped
            ]
            for p in publishable:
                kept = {h.key for h in p.htlcs} | ch.may_come_back(p.number, 0)
                for q in publishable:
                    if q.number > p.number:
                        ours = {h.key for h in q.htlcs if h.offerer == i}
                        assert ours <= kept, (p.number, q.number, ours - kept)
                        assert ours <= set(ch.offered_htlcs())
                newer = ch.supersede_state(p.number)
                if ch.latest.number > p.number:
                    assert newer is not None
                    state, sig = newer
                    assert state["number"] == ch.latest.number > p.number
                    assert verify(ch.node_ids[ch.remote], digest(state), sig)
                else:
                    assert newer is None

    @invariant()
    def a_revoked_state_still_gets_the_penalty(self):
        for ch in self.chans:
            for c in self.signed[ch.me]:
                if c.number <= ch.remote_revoked_through:
                    secret = ch.remote_secrets.derive(secret_index(c.number))
                    assert hashlib.sha256(secret).digest() == c.rev_hashes[ch.remote]


SignedStates.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_signed_states = SignedStates.TestCase


def test_the_acceptor_supersedes_the_state_whose_revoke_it_misses():
    a, b = make_pair()
    a.queue_add(5 * M, _hash(1), 500)
    ack = b.receive_update(a.propose())  # bob signed 1; alice has not revoked 0 yet
    assert b.supersede_state(0) is not None and b.supersede_state(1) is None
    state, sig = b.supersede_state(0)
    assert state["number"] == 1 and state["holder"] == b.node_ids[1].hex()
    assert [h["id"] for h in state["htlcs"]] == [0]
    assert sig == b.remote_ledger_sig
    a.receive_ack(ack)
    assert a.supersede_state(0) is not None  # alice too holds 1 (she revoked 0)


def test_our_htlc_in_a_newer_state_waits_until_it_expires():
    a, b = make_pair()
    a.queue_add(5 * M, _hash(1), 500)
    batch = a.propose()  # alice signed bob's state 1 (with her HTLC); bob may publish 0 or 1
    assert a.may_come_back(0, 0) == {(0, 0)}
    assert a.may_come_back(0, 499) == {(0, 0)}
    assert a.may_come_back(0, 500) == set()  # no block can claim it any more, in any state
    assert a.may_come_back(1, 0) == set()  # nothing newer than the proposal
    assert set(a.offered_htlcs()) == {(0, 0)}
    b.receive_revoke(a.receive_ack(b.receive_update(batch)))
    assert a.may_come_back(0, 0) == {(0, 0)} and a.may_come_back(1, 0) == set()


def test_an_htlc_the_peer_failed_in_a_batch_it_has_not_revoked_is_still_ours_to_unwind():
    a, b = make_pair()
    a.queue_add(5 * M, _hash(1), 500)
    run_round(a, b)
    b.drain_events()
    b.queue_fail(0, "no")
    a.receive_update(b.propose())  # alice signed 2 without the HTLC; bob's revoke of 1 missing
    assert not a.latest.htlcs
    assert set(a.offered_htlcs()) == {(0, 0)}  # still reported once the ledger shows its fate
    assert a.may_come_back(1, 0) == set()  # state 2 does not hold it: failed at once


def test_on_published_fails_each_htlc_not_kept_and_only_those():
    a, b = make_pair()
    sw = Switch(a.node_ids[0])
    sw.channels[a.channel_id] = a
    for n in (1, 2):
        a.queue_add(5 * M, _hash(n), 500)
        sw.payments[_hash(n)] = Payment(_hash(n), 5 * M, 0)
    a.propose()
    a.queue_add(5 * M, _hash(3), 500)  # queued, never proposed: fails at once
    sw.payments[_hash(3)] = Payment(_hash(3), 5 * M, 0)
    failed = sw.on_published(a.channel_id, set(), keep={(0, 1)})
    assert failed == [(0, 0)] and not a.pending
    assert [sw.payments[_hash(n)].status for n in (1, 2, 3)] == ["failed", "pending", "failed"]
    assert sw.on_published(a.channel_id, {(0, 1)}, keep={(0, 0)}) == []  # an output: it waits
    assert sw.on_published(a.channel_id, None, keep={(0, 0)}) == [(0, 1)]  # penalized
    assert sw.payments[_hash(2)].status == "failed"


def test_reported_htlcs_are_keyed_by_offerer_and_id_and_old_indexes_are_read():
    outputs = [{"offerer": "a", "id": 7}, {"offerer": "b", "id": 2}]
    assert reported_keys([[0, 7], [1, 3]], outputs) == {(0, 7), (1, 3)}
    assert reported_keys([1, 5], outputs) == {(1, 2)}  # an index beyond the outputs: dropped
    assert reported_keys([], outputs) == set()


def test_a_cltv_delta_too_small_to_settle_upstream_is_named():
    assert cltv_delta_problem(6) is None and cltv_delta_problem(UPSTREAM_BLOCKS) is None
    problem = cltv_delta_problem(UPSTREAM_BLOCKS - 1)
    assert problem is not None and "--cltv-delta" in problem


def test_a_fulfil_the_peer_has_not_signed_is_past_its_deadline_near_the_expiry():
    a, b = make_pair()
    a.queue_add(5 * M, _hash(1), 500)
    run_round(a, b)
    assert b.fulfils_past_deadline(500, UPSTREAM_BLOCKS) == []  # not being fulfilled
    b.queue_fulfill(0, (1).to_bytes(32, "big"))
    assert b.fulfils_past_deadline(500 - UPSTREAM_BLOCKS - 1, UPSTREAM_BLOCKS) == []
    (late,) = b.fulfils_past_deadline(500 - UPSTREAM_BLOCKS, UPSTREAM_BLOCKS)
    assert late.key == (0, 0)
    batch = b.propose()  # proposed, not yet signed by alice: still late
    assert b.fulfils_past_deadline(500 - UPSTREAM_BLOCKS, UPSTREAM_BLOCKS) == [late]
    a.receive_revoke(b.receive_ack(a.receive_update(batch)))
    assert b.fulfils_past_deadline(500, UPSTREAM_BLOCKS) == []  # alice signed it: settled
    assert a.fulfils_past_deadline(500, UPSTREAM_BLOCKS) == []  # alice fulfils nothing
