"""The ledger state that transactions change (pure data; rules.py changes it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.ledger.auction import Listing


@dataclass
class Participant:
    name: str
    role: str


@dataclass
class Meter:
    pubkey: str
    owner: str


@dataclass
class Channel:
    """A 2-of-2 channel. status: open -> closed | closing -> (penalized | closed | settled).

    `settled`: the published balances are paid, HTLC outputs are still pending (each is claimed
    with its preimage up to its expiry or refunded after it); `closed` once none is pending.
    """

    id: str
    a: str
    b: str
    capacity: int
    dispute_blocks: int
    fund_height: int
    status: str = "open"
    close_height: int | None = None
    # the published commitment state while closing (a force close's, or the latest supersede's)
    state: dict[str, Any] | None = None
    # the published state's HTLC outputs, each with "outcome" pending | fulfilled | refunded and
    # the "preimage" that fulfilled it; paid out at settle, or at once once settled
    htlcs: list[dict[str, Any]] = field(default_factory=list)
    # every state published in this close (the force close's, then each supersede's), oldest
    # first, as {"holder", "number", "revocation_hash"}: a penalty may use any of them (rules.py)
    published: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # a channel stored before the record existed (gateway.ln.node.ledger_file) knew only its
        # published state; a ledger node rebuilds the record by replaying its blocks
        if self.state is not None and not self.published:
            self.publish(self.state)

    def publish(self, state: dict[str, Any]) -> None:
        """Record `state` (already checked) as the published one, the latest of this close."""
        self.state = state
        self.published.append(
            {
                "holder": state["holder"],
                "number": state["number"],
                "revocation_hash": state["revocation_hash"],
            }
        )

    def pending_htlc_msat(self) -> int:
        return sum(h["amount_msat"] for h in self.htlcs if h["outcome"] == "pending")

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.id,
            "a": self.a,
            "b": self.b,
            "capacity_msat": self.capacity,
            "dispute_blocks": self.dispute_blocks,
            "fund_height": self.fund_height,
            "status": self.status,
            "close_height": self.close_height,
            "state": self.state,
            "htlcs": [dict(h) for h in self.htlcs],
            "published": [dict(p) for p in self.published],
        }


@dataclass
class LedgerState:
    chain: str
    operator: str
    validator: str
    height: int = 0
    participants: dict[str, Participant] = field(default_factory=dict)
    meters: dict[str, Meter] = field(default_factory=dict)
    balances: dict[str, int] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    anchors: dict[str, str] = field(default_factory=dict)  # merkle root -> tx id
    markets: dict[str, dict[str, Any]] = field(default_factory=dict)
    listings: dict[str, Listing] = field(default_factory=dict)  # seed-003 auctions
    settlements: dict[str, dict[str, Any]] = field(default_factory=dict)  # period -> result
    tx_ids: set[str] = field(default_factory=set)
    deposited: int = 0
    withdrawn: int = 0

    @classmethod
    def genesis(cls, chain: str, operator: str, validator: str) -> LedgerState:
        state = cls(chain=chain, operator=operator, validator=validator)
        state.participants[operator] = Participant("operator", "operator")
        state.balances[operator] = 0
        return state

    def locked(self) -> int:
        """Money held by channels: open or closing ones whole, settled ones their pending HTLCs."""
        held = 0
        for c in self.channels.values():
            if c.status in ("open", "closing"):
                held += c.capacity
            elif c.status == "settled":
                held += c.pending_htlc_msat()
        return held

    def conservation_error(self) -> str | None:
        """None when sum(balances) + locked channel funds == deposits - withdrawals."""
        held = sum(self.balances.values()) + self.locked()
        if held != self.deposited - self.withdrawn or any(v < 0 for v in self.balances.values()):
            return (
                f"balances+locked={held} but deposits-withdrawals={self.deposited - self.withdrawn}"
            )
        return None

    def closing_channels(self) -> int:
        """Channels whose dispute window or HTLC expiries need blocks to keep coming."""
        return sum(1 for c in self.channels.values() if c.status in ("closing", "settled"))
