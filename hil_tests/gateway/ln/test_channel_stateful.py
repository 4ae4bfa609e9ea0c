"""Random sequences of add / fulfill / fail / propose / ack / revoke / sg_preimages / lost messages
on two channels. Early lock-in: each party reports each of the peer's HTLCs exactly once, as soon
as it signed it; an honest peer's preimage hints are never rejected."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gateway.ln.channel.channel import (
    LOCK_IN_AFTER,
    REPORTED_EARLY,
    IncomingHtlc,
    OutgoingSettled,
    PreimageLearned,
)
from gateway.ln.channel.htlc import AddHtlc, decode_updates
from gateway.ln.channel.messages import AckBatch, Preimages, UpdateBatch
from gateway.ln.errors import InsufficientBalance, ProtocolViolation, UnknownHtlc
from hil_tests.gateway.ln.channel_pair import make_pair

CAP = (1_000_000, 400_000)


class TwoChannels(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chans = make_pair(CAP)
        self.inbox: list[list] = [[], []]  # messages in flight towards party i
        self.incoming: list[list] = [[], []]  # committed HTLCs each party may settle
        self.preimages: dict[bytes, bytes] = {}
        self.counter = 0
        self.paid = [0, 0]  # msat each party received through fulfilled HTLCs
        self.reported: list[dict[int, int]] = [{}, {}]  # party -> peer's htlc id -> reports
        self.signed: list[set[int]] = [set(), set()]  # peer's HTLCs each party ever signed
        self.learnt: list[set[int]] = [set(), set()]  # own HTLCs whose preimage each learnt
        # the commitments whose ledger state each party signed for the peer (a batch's or an
        # ack's ledger_sig): the peer may publish any of them, even one lost in flight
        self.given: list[list] = [[], []]
        self.fulfilled: list[set] = [set(), set()]  # own HTLCs each party saw fulfilled
        self.refusable: list = []  # batches sent before the peer's reestablish was handled

    def _deliver(self, i: int, msg) -> None:
        ch = self.chans[i]
        if isinstance(msg, Preimages):
            assert ch.receive_preimages(msg) == []  # an honest peer's hints are all good
        else:
            handlers: dict[str, Any] = {
                "UpdateBatch": ch.receive_update,
                "AckBatch": ch.receive_ack,
                "Revoke": ch.receive_revoke,
            }
            # a batch sent early and again by the reestablish: the second ack may come after
            # the next round (refused, changing nothing: the node logs it)
            dup = isinstance(msg, UpdateBatch) and msg.number == ch.latest.number
            try:
                reply = handlers[type(msg).__name__](msg)
            except ProtocolViolation:
                if not any(msg is r for r in self.refusable):
                    raise
                reply = None
            if reply is not None:
                self._send(i, reply)
                if dup:
                    self.refusable.append(reply)
        self.signed[i].update(h.htlc_id for h in ch.latest.htlcs if h.offerer == 1 - i)
        for ev in ch.drain_events():
            if isinstance(ev, IncomingHtlc):
                assert ev.add.offerer == 1 - i
                self.incoming[i].append(ev.add)
                n = self.reported[i].get(ev.add.htlc_id, 0)
                self.reported[i][ev.add.htlc_id] = n + 1
            elif isinstance(ev, PreimageLearned):
                self.learnt[i].add(ev.htlc.htlc_id)
            elif isinstance(ev, OutgoingSettled):
                if ev.preimage is not None:
                    self.fulfilled[i].add(ev.htlc.key)
                    assert ev.htlc.htlc_id in self.learnt[i]  # learnt when it signed the fulfil

    def _send(self, i: int, msg) -> None:
        """Party i sends `msg`: a batch or an ack gives the peer a ledger state to publish."""
        ch = self.chans[i]
        if isinstance(msg, UpdateBatch):
            self.given[i].append(ch.proposal.commitment)
        elif isinstance(msg, AckBatch) and msg.number == ch.latest.number:
            self.given[i].append(ch.latest)
        self.inbox[1 - i].append(msg)

    def _hints(self, i: int) -> None:
        """What the node sends after the commit that persisted party i's queued fulfils."""
        hints = self.chans[i].take_preimage_hints()
        if hints:
            self.inbox[1 - i].append(Preimages(self.chans[i].channel_id, tuple(hints)))

    @rule(i=st.integers(0, 1), amount=st.integers(1, 300_000))
    def add(self, i, amount):
        self.counter += 1
        pre = self.counter.to_bytes(32, "big")
        h = hashlib.sha256(pre).digest()
        self.preimages[h] = pre
        try:
            self.chans[i].queue_add(amount, h, 1000)
        except InsufficientBalance:
            assert amount > self.chans[i].spendable_msat()

    @rule(i=st.integers(0, 1), data=st.data(), fulfill=st.booleans())
    def settle(self, i, data, fulfill):
        if not self.incoming[i]:
            return
        add = self.incoming[i].pop(data.draw(st.integers(0, len(self.incoming[i]) - 1)))
        try:
            if fulfill:
                self.chans[i].queue_fulfill(add.htlc_id, self.preimages[add.payment_hash])
            else:
                self.chans[i].queue_fail(add.htlc_id, "random")
        except UnknownHtlc:
            raise AssertionError("committed incoming HTLC vanished") from None
        self._hints(i)

    @rule(i=st.integers(0, 1))
    def propose(self, i):
        msg = self.chans[i].propose()
        if msg is not None:
            self._send(i, msg)

    @precondition(lambda self: self.inbox[0] or self.inbox[1])
    @rule(i=st.integers(0, 1), then_propose=st.booleans())
    def deliver(self, i, then_propose=False):
        """...and, as the node does after a burst, propose in the same step (then_propose)."""
        if self.inbox[i]:
            self._deliver(i, self.inbox[i].pop(0))
            if then_propose:
                self.propose(i)

    @precondition(lambda self: self.inbox[0] or self.inbox[1])
    @rule(i=st.integers(0, 1), early=st.tuples(st.booleans(), st.booleans()))
    def lose_and_reestablish(self, i, early=(False, False)):
        """A connection drop loses everything in flight; both sides reestablish. A node may
        propose on the new connection before the peer's reestablish is handled (`early`): the
        peer may refuse that batch (changing nothing), the reestablish sends it again."""
        self.inbox = [[], []]
        a, b = self.chans
        for j in (0, 1):
            if early[j] and self.chans[j].propose() is not None:
                self._send(j, self.chans[j].proposal_msg())
                self.refusable.append(self.inbox[1 - j][-1])
        for src, dst in ((0, 1), (1, 0)):
            msg = self.chans[src].reestablish_msg()
            for out in self.chans[dst].on_reestablish(msg):
                self._send(dst, out)
            self._hints(dst)  # the queued fulfils, hinted again after the reestablish
        del a, b

    def teardown(self):
        """Liveness: with no more losses, both sides always converge on one commitment."""
        for _ in range(200):
            for i in (0, 1):
                self.propose(i)
            if not (self.inbox[0] or self.inbox[1]):
                if not (self.chans[0].pending or self.chans[1].pending):
                    break
            while self.inbox[0] or self.inbox[1]:
                self.deliver(0)
                self.deliver(1)
        a, b = self.chans
        assert a.latest == b.latest and not a.pending and not b.pending
        assert a.proposal is None and b.proposal is None
        for i in (0, 1):  # every HTLC of the peer it signed was reported, exactly once
            assert set(self.reported[i]) == self.signed[i]
            assert all(n == 1 for n in self.reported[i].values())

    @invariant()
    def reported_once_as_soon_as_signed(self):
        """...except a batch that crossed the party's own proposal (party 1's, dropped): the
        peer holds a state of that number without it, so it is reported at the revoke."""
        for i in (0, 1):
            ch = self.chans[i]
            assert all(n == 1 for n in self.reported[i].values())
            late = set()
            if ch.awaiting_revoke and ch.extra.get(REPORTED_EARLY) != ch.latest.number:
                late = {u.htlc_id for u in ch.unrevoked_updates if isinstance(u, AddHtlc)}
            for _, enc in ch.extra.get(LOCK_IN_AFTER, []):  # wait for that number's revoke
                late |= {u.htlc_id for u in decode_updates(bytes.fromhex(enc))}
            assert i == 1 or not late  # only party 1's proposal loses a crossing
            assert set(self.reported[i]) == self.signed[i] - late

    @invariant()
    def every_state_the_peer_may_publish_is_answered(self):
        """Each state party i signed for the peer is revoked (penalty), older than i's latest
        (supersede), or holds i's HTLCs where i's watch looks for them (`offered_htlcs`, not
        among the queued adds a force close fails at once) and the live peer HTLCs i acted on."""
        for i in (0, 1):
            ch = self.chans[i]
            offered = set(ch.offered_htlcs())
            # what a disconnect or a force close fails upstream at once (`drop_pending_adds`)
            queued = {ev.htlc.key for ev in copy.deepcopy(ch).drop_pending_adds("offline")}
            settling = ch.settling()
            acted = {
                h.key
                for h in ch.latest.htlcs
                if h.offerer == 1 - i and h.htlc_id in self.reported[i] and h.key not in settling
            }
            for c in self.given[i]:
                if c.number <= ch.remote_revoked_through or c.number < ch.latest.number:
                    continue
                keys = {h.key for h in c.htlcs}
                own = {k for k in keys if k[0] == i}
                # a fulfilled one may leave the watch's view: we hold its preimage (a failed
                # one a dropped state still holds is kept: extra["held_fails"])
                assert own - offered <= self.fulfilled[i], (i, c.number, own - offered)
                assert not own & queued, (i, c.number, own & queued)
                assert acted <= keys, (i, c.number, acted - keys)

    @invariant()
    def capacity_is_conserved(self):
        for ch in self.chans:
            ch.check_invariant()
            assert ch.latest.total_msat == sum(CAP)

    @invariant()
    def both_hold_adjacent_commitments(self):
        a, b = self.chans
        assert abs(a.latest.number - b.latest.number) <= 1
        if a.latest.number == b.latest.number:
            assert a.latest == b.latest


TwoChannels.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
test_two_channels = TwoChannels.TestCase
