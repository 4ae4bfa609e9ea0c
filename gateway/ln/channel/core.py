"""The data of one payment channel and what every part of its state machine shares: identities,
checked state transitions, the balance invariant, and the ledger states each party signs.

Pure, no I/O. `closing.ChannelClosing` and `channel.Channel` build on it (one class each, no
mixins), so each module stays small. See docs/channels.md.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.ln.channel.commitment import Commitment, Htlc, sign, verify
from gateway.ln.channel.htlc import AddHtlc, Update
from gateway.ln.channel.ledger_bodies import ledger_state, ledger_state_digest
from gateway.ln.channel.state import TRANSITIONS, ChannelState, Event, Proposal, secret_index
from gateway.ln.codec import bolt3
from gateway.ln.errors import IllegalTransition, InvariantBroken, ProtocolViolation

log = logging.getLogger("gateway.ln.channel")


@dataclass
class ChannelCore:
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
    on_persist: Callable[[Any], None] | None = None  # called with the channel itself

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

    # --- the ledger's view: each party holds its own state, signed by the other -------------
    def ledger_state(self, c: Commitment, holder: int) -> dict:
        return ledger_state(self.chain, c, holder, self.node_ids)

    def ledger_state_digest(self, c: Commitment, holder: int) -> bytes:
        return ledger_state_digest(self.chain, c, holder, self.node_ids)

    def _sign_remote_state(self, c: Commitment) -> bytes:
        return sign(self.node_priv, self.ledger_state_digest(c, self.remote))

    def _check_own_state(self, c: Commitment, sig: bytes) -> None:
        d = self.ledger_state_digest(c, self.me)
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
        """Incoming HTLCs we already queued or proposed a fulfill/fail for (a copy)."""
        return set(self._settling())

    def is_settling(self, key: tuple[int, int]) -> bool:
        """Whether we already queued or proposed a fulfill/fail for incoming HTLC ``key``."""
        return key in self._settling()

    def _settling(self) -> set[tuple[int, int]]:
        """`settling()` itself, kept up to date by the queue methods: settling a burst of
        HTLCs checks each against it, so it must not be copied for every one."""
        if "settling" not in self._cache:
            ups = self._updates_in_flight()
            self._cache["settling"] = {
                (u.offerer, u.htlc_id) for u in ups if not isinstance(u, AddHtlc)
            }
        return self._cache["settling"]  # type: ignore[no-any-return]

    def htlc(self, key: tuple[int, int]) -> Htlc | None:
        """The HTLC ``(offerer, id)`` of the latest commitment."""
        if "index" not in self._cache:
            self._cache["index"] = {h.key: h for h in self.latest.htlcs}
        return self._cache["index"].get(key)
