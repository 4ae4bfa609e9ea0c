"""Random sequences of add / fulfill / fail / propose / ack / revoke / sg_preimages / lost messages
/ restarts / a shutdown on two channels whose parties may run older versions and upgrade.
Early lock-in: each party reports each of the peer's HTLCs exactly once, as soon as it signed it
(a version before early lock-in: at the peer's revoke); an honest peer's preimage hints are
never rejected; no HTLC is failed upstream while a state the peer may publish still holds it.

The versions a party may run, oldest first (`VERSIONS`), as the peer sees them on the wire:
- before early lock-in: reports the peer's HTLCs at its revoke, neither sends nor reads
  sg_preimages (an odd type it ignores), and strict rounds (below);
- before overlapping rounds: its batches carry no next revocation hash, and it skips the TLV
  record of the peer's (a reader of that version does not know it), so neither side proposes
  before the other's revoke;
- current.
A restart reloads a party's channel from its stored document (`channel_doc`), possibly as the
next version: the upgrade may come in the middle of a round (a document written by the older
version), and loses the connection. A shutdown (`sg_shutdown`, answered by the peer's) stops
new adds at any point of a round; the HTLCs in flight still settle."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway.ln.channel.channel import (
    LOCK_IN_AFTER,
    REPORTED_EARLY,
    IncomingHtlc,
    OutgoingSettled,
    PreimageLearned,
)
from gateway.ln.channel.htlc import AddHtlc, FailHtlc, decode_updates
from gateway.ln.channel.messages import AckBatch, Preimages, Shutdown, UpdateBatch
from gateway.ln.channel.state import ChannelState
from gateway.ln.errors import IllegalTransition, InsufficientBalance, ProtocolViolation, UnknownHtlc
from gateway.ln.node.channel_doc import channel_doc_json, channel_from_doc, pending_blob
from hil_tests.gateway.ln.channel_pair import make_pair, node_keys

CAP = (1_000_000, 400_000)
KEYS = (node_keys("alice"), node_keys("bob"))  # make_pair's parties
BEFORE_EARLY_LOCK_IN, BEFORE_OVERLAP, CURRENT = VERSIONS = range(3)


def run_as(ch, version: int) -> None:
    """Set the channel's policies to those of `version` (on this instance only)."""
    ch.early_lock_in = version > BEFORE_EARLY_LOCK_IN
    ch.overlap_rounds = version > BEFORE_OVERLAP


class TwoChannels(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chans = list(make_pair(CAP))
        self.inbox: list[list] = [[], []]  # messages in flight towards party i
        self.incoming: list[list] = [[], []]  # committed HTLCs each party may settle
        self.preimages: dict[bytes, bytes] = {}
        self.counter = 0
        self.paid = [0, 0]  # msat each party received through fulfilled HTLCs
        self.reported: list[dict[int, int]] = [{}, {}]  # party -> peer's htlc id -> reports
        self.signed: list[set[int]] = [set(), set()]  # peer's HTLCs each party ever signed
        self.learnt: list[set[int]] = [set(), set()]  # own HTLCs whose preimage each learnt
        # the commitments whose ledger state each party signed for the peer (a batch's or an
        # ack's ledger_sig): the peer may publish any of them, even one lost in flight; with
        # the version the party ran when it signed
        self.given: list[list[tuple[Any, int]]] = [[], []]
        self.fulfilled: list[set] = [set(), set()]  # own HTLCs each party saw fulfilled
        self.failed: list[set] = [set(), set()]  # own HTLCs each party saw failed (final)
        # the peer's HTLCs a party failed itself, never reported: held for a crossing when it
        # shut down (`Channel.fail_held_incoming`)
        self.unreported_fails: list[set[int]] = [set(), set()]
        self.refusable: list = []  # batches sent before the peer's reestablish was handled
        self.version = [CURRENT, CURRENT]
        self.ever_old = [False, False]  # ran a version before early lock-in at some point

    @initialize(versions=st.tuples(*[st.sampled_from((CURRENT, CURRENT, CURRENT, *VERSIONS))] * 2))
    def run_versions(self, versions):
        for i, v in enumerate(versions):
            self._run_as(i, v)

    def _run_as(self, i: int, version: int) -> None:
        self.version[i] = version
        self.ever_old[i] |= version == BEFORE_EARLY_LOCK_IN
        run_as(self.chans[i], version)

    def _deliver(self, i: int, msg) -> None:
        ch = self.chans[i]
        refusable = any(msg is r for r in self.refusable)
        if isinstance(msg, UpdateBatch) and self.version[i] <= BEFORE_OVERLAP:
            msg = dataclasses.replace(msg, next_hash=b"")  # a TLV record it does not read
        if isinstance(msg, Preimages):
            if self.version[i] > BEFORE_EARLY_LOCK_IN:  # else an unknown odd type: ignored
                assert ch.receive_preimages(msg) == []  # an honest peer's hints are all good
        elif isinstance(msg, Shutdown):
            if ch.state == ChannelState.OPEN:  # as the node: shut down too, and answer
                for ev in ch.shutdown():
                    self._settled(i, ev)
                self.inbox[1 - i].append(Shutdown(ch.channel_id))
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
                if not refusable:
                    raise
                reply = None
            if reply is not None:
                self._send(i, reply)
                if dup:
                    self.refusable.append(reply)
        self.signed[i].update(h.htlc_id for h in ch.latest.htlcs if h.offerer == 1 - i)
        self._own_fails(i)
        for ev in ch.drain_events():
            if isinstance(ev, IncomingHtlc):
                assert ev.add.offerer == 1 - i
                self.incoming[i].append(ev.add)
                n = self.reported[i].get(ev.add.htlc_id, 0)
                self.reported[i][ev.add.htlc_id] = n + 1
            elif isinstance(ev, PreimageLearned):
                self.learnt[i].add(ev.htlc.htlc_id)
            elif isinstance(ev, OutgoingSettled):
                self._settled(i, ev)

    def _own_fails(self, i: int) -> None:
        fails = {u.htlc_id for u in self.chans[i].pending if isinstance(u, FailHtlc)}
        self.unreported_fails[i] |= fails - set(self.reported[i])

    def _settled(self, i: int, ev: OutgoingSettled) -> None:
        if ev.preimage is not None:
            self.fulfilled[i].add(ev.htlc.key)
            assert ev.htlc.htlc_id in self.learnt[i]  # learnt when it signed the fulfil
        else:
            self.failed[i].add(ev.htlc.key)  # failed upstream: final

    def _send(self, i: int, msg) -> None:
        """Party i sends `msg`: a batch or an ack gives the peer a ledger state to publish."""
        ch = self.chans[i]
        if isinstance(msg, UpdateBatch):
            self.given[i].append((ch.proposal.commitment, self.version[i]))
        elif isinstance(msg, AckBatch) and msg.number == ch.latest.number:
            self.given[i].append((ch.latest, self.version[i]))
        self.inbox[1 - i].append(msg)

    def _hints(self, i: int) -> None:
        """What the node sends after the commit that persisted party i's queued fulfils."""
        hints = self.chans[i].take_preimage_hints()
        if hints and self.version[i] > BEFORE_EARLY_LOCK_IN:  # an older node sends none
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
        except IllegalTransition:
            assert self.chans[i].state == ChannelState.SHUTDOWN  # no add after a shutdown

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
        for j in (0, 1):  # the node sends its shutdown again on a new connection
            if self.chans[j].state == ChannelState.SHUTDOWN:
                self.inbox[1 - j].append(Shutdown(self.chans[j].channel_id))
        del a, b

    @rule(i=st.integers(0, 1))
    def shutdown(self, i):
        """Party i's operator closes cooperatively: no more adds (the queued ones fail, those
        the peer may still publish once it revoked their number); the peer answers."""
        ch = self.chans[i]
        if ch.state == ChannelState.OPEN:
            for ev in ch.shutdown():
                self._settled(i, ev)
            self._own_fails(i)
            self.inbox[1 - i].append(Shutdown(ch.channel_id))

    @rule(i=st.integers(0, 1), upgrade=st.booleans())
    def restart(self, i, upgrade):
        """Party i's node restarts (on the next version, `upgrade`): its channel is what it
        stored, the connection is lost and reestablished."""
        ch = self.chans[i]
        text, blobs = channel_doc_json(ch, pending_blob(ch, None))
        self.chans[i] = channel_from_doc(json.loads(text), KEYS[i], blobs)
        self._run_as(i, min(self.version[i] + upgrade, CURRENT))
        self.lose_and_reestablish(i)

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
            assert set(self.reported[i]) == self.signed[i] - self.unreported_fails[i]
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
            # only party 1's proposal loses a crossing; a version before early lock-in (or a
            # batch it signed, its document read by the next version) reports at the revoke
            assert i == 1 or not late or self.ever_old[i]
            assert set(self.reported[i]) == self.signed[i] - late - self.unreported_fails[i]

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
            for c, version in self.given[i]:
                if c.number <= ch.remote_revoked_through or c.number < ch.latest.number:
                    continue
                keys = {h.key for h in c.htlcs}
                own = {k for k in keys if k[0] == i}
                # a fulfilled one may leave the watch's view: we hold its preimage (a failed
                # one a dropped state still holds is kept: extra["held_fails"])
                assert own - offered <= self.fulfilled[i], (i, c.number, own - offered)
                # failed upstream while the peer may still publish a state with it and claim
                # it: paid twice (a shutdown failed the adds of a dropped proposal so)
                assert not own & self.failed[i], (i, c.number, own & self.failed[i])
                assert not own & queued, (i, c.number, own & queued)
                # the version before early lock-in acts on a batch that crossed its proposal
                # n+1 at the peer's revoke of n, while the peer may still publish that dropped
                # n+1 (the gap that lock_in_after closed, docs/channels.md)
                if version > BEFORE_EARLY_LOCK_IN:
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


TwoChannels.TestCase.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
test_two_channels = TwoChannels.TestCase
