"""One payment channel as a pure state machine (no I/O), in the manner of Electrum's lnchannel.

The channel is driven by method calls that return the message to send; a persistence hook is
called *before* any method returns a signature or secret, so the caller must make the hook's
effect durable before it sends (the node commits its SQLite transaction). See channel_msgs for
the three-message update round, and docs/channels.md for the whole protocol.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.ln import bolt3
from gateway.ln.channel_close import ChannelClosing
from gateway.ln.channel_errors import (
    BadPreimage,
    IllegalTransition,
    InsufficientBalance,
    InvariantBroken,
    ProtocolViolation,
    UnknownHtlc,
)
from gateway.ln.channel_msgs import AckBatch, Reestablish, Revoke, UpdateBatch
from gateway.ln.channel_state import (
    MAX_BATCH,
    MAX_BATCH_BYTES,
    TRANSITIONS,
    ChannelState,
    Event,
    IncomingHtlc,
    OutgoingSettled,
    PreimageLearned,
    secret_index,
)
from gateway.ln.commitment import Commitment, Htlc, sign, verify
from gateway.ln.htlc import (
    AddHtlc,
    FailHtlc,
    FulfillHtlc,
    Update,
    apply_updates,
    decode_updates,
    encode_updates,
    payment_hash,
)
from gateway.ln.ledger_port import digest, ledger_state

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

log = logging.getLogger(__name__)


@dataclass
class Proposal:
    commitment: Commitment
    updates: tuple[Update, ...]
    sig: bytes
    ledger_sig: bytes


@dataclass
class Channel(ChannelClosing):
    channel_id: bytes
    me: int  # 0: we opened the channel, 1: the peer did
    funding_priv: bytes
    shachain_seed: bytes
    funding_pubs: tuple[bytes, bytes]
    node_ids: tuple[bytes, bytes]
    chain: str  # the ledger's chain id
    node_priv: bytes  # signs the peer's ledger states (the ledger knows node keys)
    latest: Commitment
    capacity_msat: int
    state: ChannelState = ChannelState.PREOPENING
    sigs: tuple[bytes, bytes] = (b"", b"")
    remote_ledger_sig: bytes = b""  # peer's signature of our ledger state for `latest`
    latest_proposer: int = -1  # who proposed `latest` (-1: commitment 0)
    proposal: Proposal | None = None
    pending: list[Update] = field(default_factory=list)
    remote_next_hash: bytes = b""  # peer's revocation hash for latest.number + 1
    remote_prev_hash: bytes = (
        b""  # peer's revocation hash for latest.number - 1 (to check its revoke)
    )
    awaiting_revoke: bool = False  # we accepted the peer's batch; its revoke has not come yet
    unrevoked_updates: tuple[Update, ...] = ()  # the peer's last batch, final once it revokes
    unrevoked_removed: tuple[Htlc, ...] = ()  # our HTLCs that batch settles
    remote_secrets: bolt3.SecretStore = field(default_factory=bolt3.SecretStore)
    next_local_htlc_id: int = 0
    closing_sigs: tuple[bytes, bytes] = (b"", b"")
    events: list[Event] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # node bookkeeping (funding body, ...)
    # derived values (reserved msat, HTLCs being settled, index of `latest`), never persisted
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    on_persist: Callable[[Channel], None] | None = None

    # --- identities -------------------------------------------------------------------------
    @property
    def remote(self) -> int:
        return 1 - self.me

    @property
    def short_id(self) -> str:
        return self.channel_id.hex()[:12]

    @property
    def remote_revoked_through(self) -> int:
        last = self.remote_secrets.last_index
        return -1 if last is None else bolt3.START_INDEX - last

    def local_secret(self, number: int) -> bytes:
        return bolt3.generate_from_seed(self.shachain_seed, secret_index(number))

    def local_rev_hash(self, number: int) -> bytes:
        return hashlib.sha256(self.local_secret(number)).digest()

    # --- state transitions and invariants ----------------------------------------------------
    def set_state(self, new: ChannelState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"channel {self.short_id}: {self.state.name} -> {new.name}")
        log.info("channel %s: %s -> %s", self.short_id, self.state.name, new.name)
        self.state = new
        self._persist()

    def _persist(self) -> None:
        self._cache.clear()
        self.check_invariant()
        if self.on_persist is not None:
            self.on_persist(self)

    def _queued(self) -> None:
        """A queued update changes no commitment: only the hook runs (no invariant to check)."""
        if self.on_persist is not None:
            self.on_persist(self)

    def check_invariant(self) -> None:
        """to_local + to_remote + in-flight HTLCs == capacity, for every commitment we hold."""
        for c in (self.latest, self.proposal.commitment if self.proposal else None):
            if c is not None and c.total_msat != self.capacity_msat:
                raise InvariantBroken(
                    f"channel {self.short_id} commitment {c.number}: "
                    f"{c.balances} + {c.in_flight_msat} != {self.capacity_msat}"
                )

    def _require(self, *states: ChannelState) -> None:
        if self.state not in states:
            raise IllegalTransition(f"channel {self.short_id} is {self.state.name}")

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

    # --- the ledger's view: each party holds its own state, signed by the other -------------
    def ledger_state(self, c: Commitment, holder: int) -> dict:
        return ledger_state(self.chain, c, holder, self.node_ids)

    def _sign_remote_state(self, c: Commitment) -> bytes:
        return sign(self.node_priv, digest(self.ledger_state(c, self.remote)))

    def _check_own_state(self, c: Commitment, sig: bytes) -> None:
        d = digest(self.ledger_state(c, self.me))
        if not verify(self.node_ids[self.remote], d, sig):
            raise ProtocolViolation(f"bad signature on our ledger state {c.number}")

    # --- balances as the node sees them -----------------------------------------------------
    @property
    def local_balance(self) -> int:
        return self.latest.balances[self.me]

    @property
    def remote_balance(self) -> int:
        return self.latest.balances[self.remote]

    def _updates_in_flight(self) -> list[Update]:
        return list(self.pending) + (list(self.proposal.updates) if self.proposal else [])

    def spendable_msat(self) -> int:
        """What we can still add: our balance minus HTLCs we queued or proposed."""
        if "reserved" not in self._cache:
            ups = self._updates_in_flight()
            self._cache["reserved"] = sum(u.amount_msat for u in ups if isinstance(u, AddHtlc))
        return self.local_balance - int(self._cache["reserved"])

    def settling(self) -> set[tuple[int, int]]:
        """Incoming HTLCs we already queued or proposed a fulfill/fail for."""
        if "settling" not in self._cache:
            ups = self._updates_in_flight()
            self._cache["settling"] = {
                (u.offerer, u.htlc_id) for u in ups if not isinstance(u, AddHtlc)
            }
        return set(self._cache["settling"])

    def htlc(self, key: tuple[int, int]) -> Htlc | None:
        """The HTLC ``(offerer, id)`` of the latest commitment."""
        if "index" not in self._cache:
            self._cache["index"] = {h.key: h for h in self.latest.htlcs}
        return self._cache["index"].get(key)

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
        self.settling()
        if h.key in self._cache["settling"]:
            raise UnknownHtlc(f"HTLC {htlc_id} is already being settled")
        return h

    def queue_fulfill(self, htlc_id: int, preimage: bytes) -> None:
        h = self._incoming(htlc_id)
        if payment_hash(preimage) != h.payment_hash:
            raise BadPreimage(f"preimage does not match incoming HTLC {htlc_id}")
        self.pending.append(FulfillHtlc(self.remote, htlc_id, preimage))
        self._cache["settling"].add(h.key)
        self._queued()

    def queue_fail(self, htlc_id: int, reason: str) -> None:
        h = self._incoming(htlc_id)
        self.pending.append(FailHtlc(self.remote, htlc_id, reason))
        self._cache["settling"].add(h.key)
        self._queued()

    # --- the update round -----------------------------------------------------------------
    def propose(self) -> UpdateBatch | None:
        """Sign the next commitment with our queued updates, or None if a round is under way."""
        if (
            self.proposal is not None
            or not self.pending
            or self.awaiting_revoke
            or self.state not in (ChannelState.OPEN, ChannelState.SHUTDOWN)
        ):
            return None
        size, count = 4, 0
        for u in self.pending[:MAX_BATCH]:
            size += len(u.encode())
            if size > MAX_BATCH_BYTES:
                break
            count += 1
        batch = tuple(self.pending[: max(count, 1)])
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
        return UpdateBatch(
            self.channel_id, p.commitment.number, encode_updates(p.updates), p.sig, p.ledger_sig
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
        if self.proposal is not None:
            if self.me == 0:
                log.debug("channel %s: both proposed %d, ours wins", self.short_id, msg.number)
                return None
            self.pending[:0] = list(self.proposal.updates)  # ours loses: propose it again later
            self.proposal = None
        updates = decode_updates(msg.updates)
        if self.state == ChannelState.SHUTDOWN and any(isinstance(u, AddHtlc) for u in updates):
            raise ProtocolViolation("HTLC added after shutdown")
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
        self.remote_next_hash = b""
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
        if self.proposal is None or msg.number != self.proposal.commitment.number:
            if msg.number == self.latest.number and self.latest_proposer == self.me:
                return self.revoke_msg()  # duplicate ack: our revoke may have been lost
            raise ProtocolViolation(f"ack for {msg.number} without a matching proposal")
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
        self._persist()
        return self.revoke_msg()

    def revoke_msg(self) -> Revoke:
        n = self.latest.number
        return Revoke(self.channel_id, n - 1, self.local_secret(n - 1), self.local_rev_hash(n + 1))

    def receive_revoke(self, msg: Revoke) -> None:
        if not self.awaiting_revoke:
            if msg.number <= self.remote_revoked_through:
                return  # duplicate
            raise ProtocolViolation(f"unexpected revoke of {msg.number}")
        if msg.number != self.latest.number - 1:
            raise ProtocolViolation(f"revoke of {msg.number}, expected {self.latest.number - 1}")
        self._take_remote_secret(msg.number, msg.secret, self.remote_prev_hash)
        self.remote_next_hash = msg.next_hash
        self.awaiting_revoke = False
        removed = {h.key: h for h in self.unrevoked_removed}
        for u in self.unrevoked_updates:
            if isinstance(u, AddHtlc):
                self.events.append(IncomingHtlc(self.channel_id, u))
            elif isinstance(u, FulfillHtlc):
                h = removed[(u.offerer, u.htlc_id)]
                self.events.append(OutgoingSettled(self.channel_id, h, u.preimage))
            else:
                h = removed[(u.offerer, u.htlc_id)]
                self.events.append(OutgoingSettled(self.channel_id, h, None, u.reason))
        self.unrevoked_updates, self.unrevoked_removed = (), ()
        self._persist()

    def _take_remote_secret(self, number: int, secret: bytes, rev_hash: bytes) -> None:
        if hashlib.sha256(secret).digest() != rev_hash:
            raise ProtocolViolation(f"secret does not match the peer's revocation hash {number}")
        self.remote_secrets.insert(secret_index(number), secret)

    def drain_events(self) -> list[Event]:
        out, self.events = self.events, []
        return out

    # --- reconnection -----------------------------------------------------------------------
    def reestablish_msg(self) -> Reestablish:
        return Reestablish(self.channel_id, self.latest.number, self.remote_revoked_through)

    def on_reestablish(self, msg: Reestablish) -> list[UpdateBatch | AckBatch | Revoke]:
        """What to send again so that both sides reach the same latest commitment."""
        out: list[UpdateBatch | AckBatch | Revoke] = []
        n = self.latest.number
        if msg.latest == n - 1 and self.latest_proposer == self.remote:
            out.append(self.ack_msg())  # the peer never got our ack
        elif msg.latest == n + 1 and self.proposal is not None:
            pass  # the peer signed our proposal; it sends its ack again
        elif msg.latest != n:
            raise ProtocolViolation(f"peer is at commitment {msg.latest}, we are at {n}")
        if msg.latest >= n and msg.revoked_through < n - 1 and self.latest_proposer == self.me:
            out.append(self.revoke_msg())  # the peer never got our revoke
        if msg.latest == n and self.proposal is not None:
            out.append(self.proposal_msg())  # after the revoke: order matters
        return out
