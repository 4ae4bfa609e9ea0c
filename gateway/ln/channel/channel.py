"""One payment channel as a pure state machine (no I/O), in the manner of Electrum's lnchannel.

The channel is driven by method calls that return the message to send; a persistence hook is
called *before* any method returns a signature or secret, so the caller must make the hook's
effect durable before it sends (the node commits its SQLite transaction). See messages.py for
the three-message update round, and docs/channels.md for the whole protocol.

Early lock-in (`EARLY_LOCK_IN`, docs/channels.md "Commitments and the update round"): the
acceptor reports the peer's new HTLCs as soon as it signed the commitment holding them
(`receive_update`), not once the peer revoked its older state: the ledger's `channel_supersede`
lets whoever holds that newer state replace an older one the peer publishes. Settlements of our
own HTLCs stay final at the revoke. A fulfil we queue is also announced at once to the peer
(`take_preimage_hints` -> `Preimages`), and `receive_preimages` takes the peer's.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import ClassVar

from gateway.ln.channel.closing import HELD_ADDS, HELD_FAILS, ChannelClosing
from gateway.ln.channel.commitment import Commitment, Htlc, sign, verify
from gateway.ln.channel.htlc import (
    AddHtlc,
    FailHtlc,
    FulfillHtlc,
    apply_updates,
    decode_updates,
    encode_updates,
    payment_hash,
    take_batch,
)
from gateway.ln.channel.messages import AckBatch, Preimages, Reestablish, Revoke, UpdateBatch
from gateway.ln.channel.state import (
    MAX_BATCH,
    MAX_BATCH_BYTES,
    TRANSITIONS,
    ChannelState,
    Event,
    IncomingHtlc,
    OutgoingSettled,
    PreimageLearned,
    Proposal,
    secret_index,
)
from gateway.ln.codec import bolt3
from gateway.ln.errors import (
    BadPreimage,
    InsufficientBalance,
    ProtocolViolation,
    UnknownHtlc,
)

__all__ = [
    "Channel",
    "ChannelState",
    "Event",
    "IncomingHtlc",
    "OutgoingSettled",
    "PreimageLearned",
    "Proposal",
    "TRANSITIONS",
    "secret_index",
]

log = logging.getLogger("gateway.ln.channel")
# `extra` key: the number of the peer's batch whose new HTLCs receive_update reported (early
# lock-in); without it (our proposal crossed it, the policy is off, or a document of the
# version before early lock-in) they are reported at the peer's revoke
REPORTED_EARLY = "reported_early"
# `extra` keys of a batch that crossed our dropped proposal: its number until the peer's revoke,
# then [[number, its adds], ...] until the peer revoked that number too (reviewer1 #3: the peer holds
# our signature of a state of that number without the batch, which no supersede can replace)
CROSSED, LOCK_IN_AFTER = "crossed", "lock_in_after"


@dataclass
class Channel(ChannelClosing):
    """A channel: opening, queueing HTLC updates, the update round, and reconnection."""

    # report the peer's new HTLCs when we sign them (True) or when the peer revoked (False)
    early_lock_in: ClassVar[bool] = True
    # send our revocation hash for the commitment after our proposal with it, so the peer may
    # propose right after its ack (True), or not (False: the peer waits for our revoke, as a
    # version before overlapping rounds does); we overlap whenever the peer sent us its hash
    overlap_rounds: ClassVar[bool] = True
    # (htlc id, preimage) of fulfils queued since the node last sent them (never persisted:
    # the FulfillHtlc updates themselves are, and carry the preimages in the next round)
    preimage_hints: list[tuple[int, bytes]] = field(default_factory=list, repr=False, compare=False)

    # --- opening ---------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        *,
        channel_id: bytes,
        me: int,
        funding_priv: bytes,
        shachain_seed: bytes,
        node_ids: tuple[bytes, bytes],
        chain: str,
        node_priv: bytes,
        funding_pubs: tuple[bytes, bytes],
        amounts: tuple[int, int],
        remote_hashes: tuple[bytes, bytes],
    ) -> Channel:
        """A new channel in PREOPENING. ``remote_hashes``: the peer's revocation hashes for numbers 0 and 1."""
        if min(amounts) < 0 or sum(amounts) <= 0:
            raise InsufficientBalance("funding amounts must be >= 0 with a positive total")
        mine = hashlib.sha256(bolt3.generate_from_seed(shachain_seed, secret_index(0))).digest()
        hashes = (mine, remote_hashes[0]) if me == 0 else (remote_hashes[0], mine)
        c0 = Commitment(channel_id, 0, amounts, (0, 0), hashes, ())
        return cls(
            channel_id=channel_id,
            me=me,
            funding_priv=funding_priv,
            shachain_seed=shachain_seed,
            funding_pubs=funding_pubs,
            node_ids=node_ids,
            chain=chain,
            node_priv=node_priv,
            latest=c0,
            capacity_msat=sum(amounts),
            remote_next_hash=remote_hashes[1],
        )

    def initial_sig(self) -> tuple[bytes, bytes]:
        """Our signatures of commitment 0 and of the peer's ledger state 0 (before funding)."""
        self._require(ChannelState.PREOPENING, ChannelState.FUNDING)
        return sign(self.funding_priv, self.latest.digest()), self._sign_remote_state(self.latest)

    def receive_initial_sig(self, sig: bytes, ledger_sig: bytes) -> None:
        self._require(ChannelState.PREOPENING)
        if not verify(self.funding_pubs[self.remote], self.latest.digest(), sig):
            raise ProtocolViolation("bad signature on commitment 0")
        self._check_own_state(self.latest, ledger_sig)
        mine = self.initial_sig()[0]
        self.sigs = (mine, sig) if self.me == 0 else (sig, mine)
        self.remote_ledger_sig = ledger_sig
        self.set_state(ChannelState.FUNDING)

    # --- queueing updates (proposed in the next round) ----------------------------------------
    def queue_add(
        self, amount_msat: int, hash_: bytes, cltv_expiry: int, onion: bytes = b""
    ) -> AddHtlc:
        self._require(ChannelState.OPEN)
        if amount_msat <= 0:
            raise InsufficientBalance("amount must be positive")
        if amount_msat > self.spendable_msat():
            raise InsufficientBalance(
                f"channel {self.short_id}: {amount_msat} msat > spendable {self.spendable_msat()}"
            )
        if not 0 <= cltv_expiry <= 0xFFFFFFFF or len(onion) > 0xFFFF or len(hash_) != 32:
            # fields the wire encodes as u32 / u16 / 32 bytes: refuse here, or every later
            # commitment of the channel would fail to encode
            raise ProtocolViolation("HTLC expiry, routing data or payment hash out of range")
        add = AddHtlc(self.me, self.next_local_htlc_id, amount_msat, hash_, cltv_expiry, onion)
        self.next_local_htlc_id += 1
        self.pending.append(add)
        self._cache["reserved"] = self._cache["reserved"] + amount_msat
        self._queued()
        return add

    def _incoming(self, htlc_id: int) -> Htlc:
        h = self.htlc((self.remote, htlc_id))
        if h is None:
            raise UnknownHtlc(f"channel {self.short_id}: no incoming HTLC {htlc_id}")
        if h.key in self._settling():
            raise UnknownHtlc(f"HTLC {htlc_id} is already being settled")
        return h

    def queue_fulfill(self, htlc_id: int, preimage: bytes) -> None:
        h = self._incoming(htlc_id)
        if payment_hash(preimage) != h.payment_hash:
            raise BadPreimage(f"preimage does not match incoming HTLC {htlc_id}")
        self.pending.append(FulfillHtlc(self.remote, htlc_id, preimage))
        self._cache["settling"].add(h.key)
        self.preimage_hints.append((htlc_id, preimage))
        self._queued()

    def queue_fail(self, htlc_id: int, reason: str) -> None:
        h = self._incoming(htlc_id)
        self.pending.append(FailHtlc(self.remote, htlc_id, reason))
        self._cache["settling"].add(h.key)
        self._queued()

    # --- the update round -----------------------------------------------------------------
    def propose(self) -> UpdateBatch | None:
        """Sign the next commitment with our queued updates, or None if a round is under way.
        While the peer's revoke of the state before its batch is still to come, we propose only
        if its batch carried its next revocation hash (overlapping rounds)."""
        if (
            self.proposal is not None
            or not self.pending
            or (self.awaiting_revoke and not self.remote_next_hash)
            or self.state not in (ChannelState.OPEN, ChannelState.SHUTDOWN)
        ):
            return None
        batch, _ = take_batch(self.pending, MAX_BATCH, MAX_BATCH_BYTES)
        n = self.latest.number + 1
        new = apply_updates(self.latest, batch, self.me, self._rev_hashes(n))
        self.proposal = Proposal(
            new, batch, sign(self.funding_priv, new.digest()), self._sign_remote_state(new)
        )
        del self.pending[: len(batch)]
        self._persist()
        return self.proposal_msg()

    def proposal_msg(self) -> UpdateBatch:
        assert self.proposal is not None
        p = self.proposal
        n = p.commitment.number
        return UpdateBatch(
            self.channel_id,
            n,
            encode_updates(p.updates),
            p.sig,
            p.ledger_sig,
            self.local_rev_hash(n + 1) if self.overlap_rounds else b"",
        )

    def _rev_hashes(self, number: int) -> tuple[bytes, bytes]:
        if not self.remote_next_hash:
            raise ProtocolViolation(f"channel {self.short_id}: peer's next revocation hash unknown")
        mine, theirs = self.local_rev_hash(number), self.remote_next_hash
        return (mine, theirs) if self.me == 0 else (theirs, mine)

    def receive_update(self, msg: UpdateBatch) -> AckBatch | None:
        self._require(ChannelState.OPEN, ChannelState.SHUTDOWN)
        self._cache.clear()
        if msg.number == self.latest.number and self.latest_proposer == self.remote:
            if msg.sig != self.sigs[self.remote]:
                raise ProtocolViolation("retransmitted batch differs from the one we signed")
            return self.ack_msg()  # our ack was lost: send it again
        if msg.number != self.latest.number + 1:
            raise ProtocolViolation(f"batch for {msg.number}, we are at {self.latest.number}")
        if self.awaiting_revoke:
            raise ProtocolViolation("new batch before the peer revoked its previous commitment")
        if msg.next_hash and len(msg.next_hash) != 32:  # before anything changes
            raise ProtocolViolation("next revocation hash must be 32 bytes")
        crossed = False
        if self.proposal is not None:
            if self.me == 0:
                log.debug("channel %s: both proposed %d, ours wins", self.short_id, msg.number)
                return None
            self.pending[:0] = list(self.proposal.updates)  # ours loses: propose it again later
            ours = tuple(u for u in self.proposal.updates if isinstance(u, AddHtlc))
            if ours:  # the peer holds our signature of the dropped state with these HTLCs
                held = self.extra.setdefault(HELD_ADDS, [])
                held.append([msg.number, encode_updates(ours).hex()])
            self.proposal = None
            # the peer holds our signature of a state of this number without its batch, which
            # no supersede can replace (same number): act on its HTLCs once it revoked it
            crossed = True
        # in SHUTDOWN its adds are signed too: they may have left before our shutdown came, and
        # refusing the batch left the peer waiting for an ack for good (the switch fails them)
        updates = decode_updates(msg.updates)
        new = apply_updates(self.latest, updates, self.remote, self._rev_hashes(msg.number))
        if not verify(self.funding_pubs[self.remote], new.digest(), msg.sig):
            raise ProtocolViolation(f"bad signature on commitment {msg.number}")
        self._check_own_state(new, msg.ledger_sig)
        mine = sign(self.funding_priv, new.digest())
        old = {h.key: h for h in self.latest.htlcs}
        self.remote_prev_hash = self.latest.rev_hashes[self.remote]
        self.latest = new
        self.sigs = (mine, msg.sig) if self.me == 0 else (msg.sig, mine)
        self.latest_proposer = self.remote
        self.remote_ledger_sig = msg.ledger_sig
        self.awaiting_revoke = True
        self.unrevoked_updates = updates
        self.unrevoked_removed = tuple(
            old[(u.offerer, u.htlc_id)] for u in updates if not isinstance(u, AddHtlc)
        )
        for u in updates:
            if isinstance(u, FulfillHtlc):
                h = old[(u.offerer, u.htlc_id)]
                self.events.append(PreimageLearned(self.channel_id, h, u.preimage))
        early = self.early_lock_in and not crossed
        adds = [u for u in updates if isinstance(u, AddHtlc)]
        if early and adds:
            self.events.extend(IncomingHtlc(self.channel_id, u) for u in adds)
            self.extra[REPORTED_EARLY] = msg.number  # persisted with the channel
        if crossed:  # its adds wait for that number's revoke, and so do its fails of ours
            self.extra[CROSSED] = msg.number
        # the peer's hash for msg.number + 1: with it we may propose before its revoke comes
        self.remote_next_hash = msg.next_hash
        self._persist()
        return self.ack_msg()

    def ack_msg(self) -> AckBatch:
        n = self.latest.number
        return AckBatch(
            self.channel_id,
            n,
            self.sigs[self.me],
            self._sign_remote_state(self.latest),
            self.local_secret(n - 1),
            self.local_rev_hash(n + 1),
        )

    def receive_ack(self, msg: AckBatch) -> Revoke:
        # Closing unilaterally put self.latest on the ledger: taking a late ack for our proposal
        # would answer with that state's revocation secret, and the peer could take everything.
        self._require(ChannelState.OPEN, ChannelState.SHUTDOWN)
        if self.proposal is None or msg.number != self.proposal.commitment.number:
            if msg.number == self.latest.number and self.latest_proposer == self.me:
                return self.revoke_msg()  # duplicate ack: our revoke may have been lost
            raise ProtocolViolation(f"ack for {msg.number} without a matching proposal")
        if self.awaiting_revoke:  # it sends its revoke of the state before its batch first
            raise ProtocolViolation(f"ack for {msg.number} before the peer's revoke")
        new = self.proposal.commitment
        if not verify(self.funding_pubs[self.remote], new.digest(), msg.sig):
            raise ProtocolViolation(f"bad signature on commitment {msg.number}")
        self._check_own_state(new, msg.ledger_sig)
        self._take_remote_secret(
            self.latest.number, msg.secret, self.latest.rev_hashes[self.remote]
        )
        self.remote_prev_hash = self.latest.rev_hashes[self.remote]
        self.remote_next_hash = msg.next_hash
        self.latest = new
        self.sigs = (self.proposal.sig, msg.sig) if self.me == 0 else (msg.sig, self.proposal.sig)
        self.latest_proposer = self.me
        self.remote_ledger_sig = msg.ledger_sig
        self.proposal = None
        self._release_crossed()
        self._persist()
        return self.revoke_msg()

    def revoke_msg(self, number: int | None = None) -> Revoke:
        """Our revoke of `number` (default: the state before `latest`), byte-identical to the
        one first sent."""
        k = self.latest.number - 1 if number is None else number
        return Revoke(self.channel_id, k, self.local_secret(k), self.local_rev_hash(k + 2))

    def receive_revoke(self, msg: Revoke) -> None:
        if msg.number <= self.remote_revoked_through:
            # a duplicate (e.g. answering the stale ack of a batch the reestablish sent again),
            # which may come after our acceptance of the peer's next batch: nothing new in it
            return
        if not self.awaiting_revoke:
            raise ProtocolViolation(f"unexpected revoke of {msg.number}")
        if msg.number != self.latest.number - 1:
            raise ProtocolViolation(f"revoke of {msg.number}, expected {self.latest.number - 1}")
        if self.remote_next_hash and msg.next_hash != self.remote_next_hash:
            # its batch gave us this hash already (and our proposal may be built on it)
            raise ProtocolViolation("revoke's next hash differs from the one its batch sent")
        self._take_remote_secret(msg.number, msg.secret, self.remote_prev_hash)
        self.remote_next_hash = msg.next_hash
        self.awaiting_revoke = False
        removed = {h.key: h for h in self.unrevoked_removed}
        # the batch's new HTLCs were reported by receive_update, unless it crossed our proposal
        early = self.extra.pop(REPORTED_EARLY, None) == self.latest.number
        crossed = self.extra.pop(CROSSED, None) == self.latest.number
        late = not early and not (crossed and self.early_lock_in)
        self._release_crossed()  # an earlier crossing batch whose number this revoke revoked
        adds = tuple(u for u in self.unrevoked_updates if isinstance(u, AddHtlc))
        if crossed and self.early_lock_in and adds:
            held = self.extra.setdefault(LOCK_IN_AFTER, [])
            held.append([self.latest.number, encode_updates(adds).hex()])
            if self.state == ChannelState.SHUTDOWN:
                self.fail_held_incoming("shutdown")
        for u in self.unrevoked_updates:
            if isinstance(u, AddHtlc):
                if late:
                    self.events.append(IncomingHtlc(self.channel_id, u))
            elif isinstance(u, FulfillHtlc):
                h = removed[(u.offerer, u.htlc_id)]
                self.events.append(OutgoingSettled(self.channel_id, h, u.preimage))
            else:
                h = removed[(u.offerer, u.htlc_id)]
                if crossed and h.offerer == self.me:
                    # our dropped state of this number, signed for the peer and not revoked,
                    # still holds h: the fail is final once the peer revoked that number
                    as_add = AddHtlc(
                        h.offerer, h.htlc_id, h.amount_msat, h.payment_hash, h.cltv_expiry
                    )
                    held_fails = self.extra.setdefault(HELD_FAILS, [])
                    held_fails.append(
                        [self.latest.number, encode_updates((as_add,)).hex(), u.reason]
                    )
                    continue
                self.events.append(OutgoingSettled(self.channel_id, h, None, u.reason))
        self.unrevoked_updates, self.unrevoked_removed = (), ()
        self._persist()

    def shutdown(self) -> list[Event]:
        """`ChannelClosing.shutdown`, and the peer's HTLCs held for a crossing are failed."""
        events = super().shutdown()
        self.fail_held_incoming("shutdown")
        return events

    def fail_held_incoming(self, reason: str) -> None:
        """Fail the peer's HTLCs that wait for its revoke of a crossing number
        (`lock_in_after`), never reported. After a shutdown nothing else may be queued, so no
        round would bring that revoke: they (and the close) would wait for good. Failing them
        is safe for us, and is what a shutdown does to an add anyway (never routed); the
        fails' round brings the revoke, which releases our own held HTLCs too."""
        for _, enc in self.extra.get(LOCK_IN_AFTER, ()):
            for u in decode_updates(bytes.fromhex(enc)):
                key = (u.offerer, u.htlc_id)
                if isinstance(u, AddHtlc) and self.htlc(key) and not self.is_settling(key):
                    self.queue_fail(u.htlc_id, reason)

    def _release_crossed(self) -> None:
        """Report a crossing batch's HTLCs once the peer revoked its number (its secret came
        with an ack or a revoke): still in our latest and not being settled (the timer may
        have failed one meanwhile)."""
        self._release_held_adds()
        self._release_held_fails()
        due = self._take_revoked(LOCK_IN_AFTER)
        if not due:
            return
        self._cache.clear()
        live = {h.key for h in self.latest.htlcs} - self._settling()
        for _, enc in due:
            for u in decode_updates(bytes.fromhex(enc)):
                if isinstance(u, AddHtlc) and (u.offerer, u.htlc_id) in live:
                    self.events.append(IncomingHtlc(self.channel_id, u))

    def _take_remote_secret(self, number: int, secret: bytes, rev_hash: bytes) -> None:
        if hashlib.sha256(secret).digest() != rev_hash:
            raise ProtocolViolation(f"secret does not match the peer's revocation hash {number}")
        self.remote_secrets.insert(secret_index(number), secret)

    def drain_events(self) -> list[Event]:
        out, self.events = self.events, []
        return out

    # --- preimage hints (sg_preimages) -------------------------------------------------------
    def take_preimage_hints(self) -> list[tuple[int, bytes]]:
        """The fulfils queued since the last call, to tell the peer now (after the commit that
        persists them): the peer learns the preimages a round before our FulfillHtlc batch."""
        out, self.preimage_hints = self.preimage_hints, []
        return out

    def receive_preimages(self, msg: Preimages) -> list[str]:
        """The peer's preimages of HTLCs we offered (in `latest` or our proposal): each good one
        is a `PreimageLearned` event; the others are returned as reasons (nothing changes)."""
        proposed: dict[int, Htlc] | None = None  # built once, if an id is not in `latest`
        rejected = []
        for htlc_id, preimage in msg.preimages:
            h = self.htlc((self.me, htlc_id))
            if h is None and self.proposal is not None:
                if proposed is None:
                    ours = (x for x in self.proposal.commitment.htlcs if x.offerer == self.me)
                    proposed = {x.htlc_id: x for x in ours}
                h = proposed.get(htlc_id)
            if h is None:
                rejected.append(f"no HTLC {htlc_id} of ours")
            elif payment_hash(preimage) != h.payment_hash:
                rejected.append(f"preimage does not match our HTLC {htlc_id}")
            else:
                self.events.append(PreimageLearned(self.channel_id, h, preimage))
        return rejected

    # --- reconnection -----------------------------------------------------------------------
    def reestablish_msg(self) -> Reestablish:
        through = self.remote_revoked_through
        last = self.remote_secrets.derive(secret_index(through)) if through >= 0 else bytes(32)
        return Reestablish(self.channel_id, self.latest.number, through, last)

    def on_reestablish(self, msg: Reestablish) -> list[UpdateBatch | AckBatch | Revoke]:
        """What to send again so that both sides reach the same latest commitment."""
        out: list[UpdateBatch | AckBatch | Revoke] = []
        n = self.latest.number
        if msg.latest == n - 1 and self.latest_proposer == self.remote:
            if msg.revoked_through < n - 2:
                # we proposed n-1 and our revoke of n-2 was lost with our ack of n after it
                # (its round overlapped ours): the peer needs the secrets in order
                out.append(self.revoke_msg(n - 2))
            out.append(self.ack_msg())  # the peer never got our ack
            if self.proposal is not None:
                out.append(self.proposal_msg())  # we proposed right after it (overlapping)
        elif msg.latest == n + 1 and self.proposal is not None:
            pass  # the peer signed our proposal; it sends its ack again
        elif msg.latest != n:
            raise ProtocolViolation(f"peer is at commitment {msg.latest}, we are at {n}")
        if msg.latest >= n and msg.revoked_through < n - 1 and self.latest_proposer == self.me:
            out.append(self.revoke_msg())  # the peer never got our revoke
        if msg.latest == n and self.proposal is not None:
            out.append(self.proposal_msg())  # after the revoke: order matters
        # the fulfils still queued: their hints may have been lost with the connection
        self.preimage_hints = [
            (u.htlc_id, u.preimage) for u in self.pending if isinstance(u, FulfillHtlc)
        ]
        return out
