"""What the channel node needs from the ledger (docs/ledger-api.md), and an in-memory ledger.

The port speaks the ledger's own vocabulary: transaction bodies in canonical JSON signed over their
digest (built by `gateway.ln.channel.ledger_bodies`). `MemoryLedger` applies the real ledger's
rules (`gateway.ledger.rules`: funding, cooperative close, force close with HTLC outputs and a
dispute window in blocks, supersede, penalty, settle, HTLC claims and refunds) for tests and the file ledger; `gateway.ln.node.ledger_http.HttpLedger` adapts the real
node's client.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.ledger import keys, rules
from gateway.ledger.errors import TxRejected
from gateway.ledger.state import Channel as LedgerChannel
from gateway.ledger.state import LedgerState, Participant
from gateway.ledger.txs import Tx
from gateway.ln.errors import LedgerPortError


@dataclass
class ChannelView:
    """The ledger's record of a channel (GET /v1/channels/{id})."""

    channel: str
    a: str
    b: str
    capacity_msat: int
    status: str  # open | closing | settled | closed | penalized
    dispute_blocks: int
    close_height: int | None = None
    state: dict[str, Any] | None = None
    htlcs: list[dict[str, Any]] = field(default_factory=list)  # outputs of the published state
    # {"holder", "number", "revocation_hash"} of every state published in this close, oldest
    # first: a penalty may use the secret of any of them held by the other party
    published: list[dict[str, Any]] = field(default_factory=list)


Signed = tuple[dict[str, Any], dict[str, str]]  # a transaction body and its signatures


class LedgerPort(Protocol):
    chain: str

    def height(self) -> int: ...

    def submit(self, body: dict[str, Any], sigs: dict[str, str]) -> None:
        """Record a signed transaction; idempotent; raises LedgerPortError(reason) if refused."""

    def submit_many(self, txs: list[Signed]) -> list[LedgerPortError | None]:
        """Record several signed transactions with one wait (one block, as far as the ledger's
        blocks allow): per transaction, in order, None (recorded, or recorded before) or the
        LedgerPortError that refused it; an outage refuses them all as "unavailable"."""

    def channel(self, channel_id: bytes) -> ChannelView | None: ...

    def balance(self, account: bytes) -> int: ...


CHANNEL_KINDS = (
    "channel_fund",
    "channel_close",
    "channel_force_close",
    "channel_supersede",
    "channel_penalty",
    "channel_settle",
    "channel_htlc_claim",
    "channel_htlc_refund",
)
_OPERATOR = "02" + "00" * 31 + "01"  # a placeholder: MemoryLedger takes no operator transactions


def view_of(channel: LedgerChannel) -> ChannelView:
    d = channel.to_json()
    return ChannelView(
        channel=d["channel"],
        a=d["a"],
        b=d["b"],
        capacity_msat=d["capacity_msat"],
        status=d["status"],
        dispute_blocks=d["dispute_blocks"],
        close_height=d["close_height"],
        state=d["state"],
        htlcs=d["htlcs"],
        published=d["published"],
    )


@dataclass
class MemoryLedger:
    """The real ledger's channel rules (`gateway.ledger.rules`) in memory, for tests and the file
    ledger: one block per transaction or mine(); whoever signs is enrolled; deposits need no
    operator. Thread-safe: a node reads its ledger in worker threads (watch.py), while a
    submission runs on its event loop."""

    chain: str = "memory"
    state: LedgerState = field(init=False)
    tip: int = 0
    _lock: threading.RLock = field(
        default_factory=threading.RLock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.state = LedgerState.genesis(self.chain, _OPERATOR, _OPERATOR)

    def height(self) -> int:
        return self.tip

    def mine(self, blocks: int = 1) -> None:
        with self._lock:
            self.tip += blocks

    def _enroll(self, account: str) -> None:
        if account not in self.state.participants:
            self.state.participants[account] = Participant("node", "gateway")
            self.state.balances[account] = 0

    def deposit(self, account: bytes, amount: int) -> None:
        with self._lock:
            self._enroll(account.hex())
            self.state.balances[account.hex()] += amount
            self.state.deposited += amount

    def balance(self, account: bytes) -> int:
        with self._lock:
            return self.state.balances.get(account.hex(), 0)

    def money(self) -> int:
        """All msat on this ledger: balances plus what channels still hold."""
        with self._lock:
            return sum(self.state.balances.values()) + self.state.locked()

    def channel(self, channel_id: bytes) -> ChannelView | None:
        with self._lock:
            ch = self.state.channels.get(channel_id.hex())
            return None if ch is None else view_of(ch)

    def submit(self, body: dict[str, Any], sigs: dict[str, str]) -> None:
        (refused,) = self.submit_many([(body, sigs)])
        if refused is not None:
            raise refused

    def submit_many(self, txs: list[Signed]) -> list[LedgerPortError | None]:
        """All in one block (the next), each applied or refused on its own."""
        out: list[LedgerPortError | None] = []
        with self._lock:
            applied = False
            for body, sigs in txs:
                tx = Tx(body, sigs)
                try:
                    if tx.id not in self.state.tx_ids:  # else recorded before: idempotent
                        if body.get("kind") not in CHANNEL_KINDS:
                            kind = body.get("kind")
                            raise TxRejected("malformed", f"{kind!r} is not a channel kind")
                        for pub in sigs:
                            if keys.is_pubkey(pub):
                                self._enroll(pub)
                        rules.apply(self.state, tx, self.tip + 1)
                        applied = True
                    out.append(None)
                except TxRejected as exc:
                    out.append(LedgerPortError(exc.reason, exc.detail))
            if applied:
                self.tip += 1
        return out
