"""Channel states, their allowed transitions, and the events a channel reports to its node."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from gateway.ln.channel.commitment import Commitment, Htlc
from gateway.ln.channel.htlc import AddHtlc, Update
from gateway.ln.codec import bolt3

MAX_BATCH = 2000  # updates per commitment round
MAX_BATCH_BYTES = 60_000  # encoded updates per round: the batch must fit one 65535-byte message


class ChannelState(IntEnum):
    PREOPENING = 0  # parameters exchanged; commitment 0 not yet signed by both parties
    FUNDING = 1  # commitment 0 signed by both; funding submitted to the ledger, not yet seen
    OPEN = 2  # funded: HTLCs may be added and settled
    SHUTDOWN = 3  # cooperative close requested: no new HTLCs, in-flight ones are settled
    CLOSING = 4  # closing split signed by both, submitted to the ledger
    FORCE_CLOSING = 5  # a commitment was published unilaterally; the dispute window runs
    CLOSED = 6  # the ledger has paid out the channel (final)


TRANSITIONS: dict[ChannelState, frozenset[ChannelState]] = {
    ChannelState.PREOPENING: frozenset({ChannelState.FUNDING, ChannelState.CLOSED}),
    ChannelState.FUNDING: frozenset({ChannelState.OPEN, ChannelState.CLOSED}),
    ChannelState.OPEN: frozenset({ChannelState.SHUTDOWN, ChannelState.FORCE_CLOSING}),
    ChannelState.SHUTDOWN: frozenset({ChannelState.CLOSING, ChannelState.FORCE_CLOSING}),
    ChannelState.CLOSING: frozenset({ChannelState.CLOSED, ChannelState.FORCE_CLOSING}),
    ChannelState.FORCE_CLOSING: frozenset({ChannelState.CLOSED}),
    ChannelState.CLOSED: frozenset(),
}


def secret_index(number: int) -> int:
    """BOLT #3 counts commitment indices down from 2^48-1; our numbers count up from 0."""
    return bolt3.START_INDEX - number


@dataclass(frozen=True)
class IncomingHtlc:
    """The peer's HTLC is irrevocably committed: fulfill it, forward it or fail it."""

    channel_id: bytes
    add: AddHtlc


@dataclass(frozen=True)
class OutgoingSettled:
    """Our HTLC was irrevocably fulfilled (``preimage`` set) or failed (``reason``)."""

    channel_id: bytes
    htlc: Htlc
    preimage: bytes | None
    reason: str = ""


@dataclass(frozen=True)
class PreimageLearned:
    """The peer fulfilled our HTLC in a batch we just signed: the preimage is proof of payment
    and lets a forwarder fulfil upstream at once, before the round completes."""

    channel_id: bytes
    htlc: Htlc
    preimage: bytes


Event = IncomingHtlc | OutgoingSettled | PreimageLearned


@dataclass
class Proposal:
    """Our signed next commitment, sent to the peer and not yet acknowledged."""

    commitment: Commitment
    updates: tuple[Update, ...]
    sig: bytes
    ledger_sig: bytes
