"""Messages the channel state machine produces and consumes (before wire encoding).

The update protocol is a three-message round (compare BOLT #2 commitment_signed/revoke_and_ack):

    proposer  --UpdateBatch(n+1, updates, sig_p, hash_p[n+2])-->  acceptor   signs n+1, revokes n
    proposer  <--AckBatch(n+1, sig_a, secret_a[n], hash_a[n+2])--
    proposer  --Revoke(n, secret_p[n], hash_p[n+2])-->         proposer revokes n

Rounds overlap: the batch carries the proposer's revocation hash for n+2, so the acceptor may
propose n+2 right after its ack, before the proposer's revoke of n has come (docs/channels.md,
"Overlapping rounds"). A peer that does not send that hash (an older version) gets the strict
alternation: its acceptor waits for the revoke.

Besides the round, `Preimages` (sg_preimages, an odd wire type) tells the peer at once the
preimages of its HTLCs that we are fulfilling: the FulfillHtlc updates follow in our next round
as always, so the message is a hint (losing it loses nothing) that lets a payer report success
and a forwarder fulfil upstream one round earlier.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpenChannel:
    channel_id: bytes
    nonce: str  # of the channel_fund body; the channel id is that body's digest
    dispute_blocks: int
    amounts: tuple[int, int]  # msat funded by the opener (party 0) and the acceptor (party 1)
    funding_pub: bytes
    rev_hashes: tuple[bytes, bytes]  # opener's revocation hashes for commitments 0 and 1


@dataclass(frozen=True)
class AcceptChannel:
    channel_id: bytes
    funding_pub: bytes
    rev_hashes: tuple[bytes, bytes]
    sig: bytes  # acceptor's signature of commitment 0
    ledger_sig: bytes  # acceptor's signature of the opener's ledger state 0


@dataclass(frozen=True)
class FundingSigned:
    channel_id: bytes
    sig: bytes  # opener's signature of commitment 0
    ledger_sig: bytes  # opener's signature of the acceptor's ledger state 0


@dataclass(frozen=True)
class UpdateBatch:
    channel_id: bytes
    number: int
    updates: bytes  # htlc.encode_updates()
    sig: bytes
    ledger_sig: bytes  # proposer's signature of the acceptor's ledger state number
    # proposer's revocation hash for number + 1 (b"": not sent, the acceptor waits for the revoke)
    next_hash: bytes = b""


@dataclass(frozen=True)
class AckBatch:
    channel_id: bytes
    number: int
    sig: bytes
    ledger_sig: bytes  # acceptor's signature of the proposer's ledger state number
    secret: bytes  # acceptor's per-commitment secret for number - 1
    next_hash: bytes  # acceptor's revocation hash for number + 1


@dataclass(frozen=True)
class Revoke:
    channel_id: bytes
    number: int  # the revoked commitment
    secret: bytes
    next_hash: bytes  # proposer's revocation hash for number + 2


@dataclass(frozen=True)
class Reestablish:
    channel_id: bytes
    latest: int  # number of the newest commitment signed by both
    revoked_through: (
        int  # newest number of the *peer's* commitments we hold the secret of (-1: none)
    )
    # the peer's secret of commitment `revoked_through` (zeros if none): proves to a peer that
    # restored an old backup that it revoked states it no longer has (data-loss protection)
    last_secret: bytes = bytes(32)


@dataclass(frozen=True)
class Preimages:
    """sg_preimages: (htlc_id, preimage) of HTLCs the receiver offered and the sender fulfils."""

    channel_id: bytes
    preimages: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True)
class Shutdown:
    channel_id: bytes


@dataclass(frozen=True)
class ClosingSigned:
    channel_id: bytes
    balances: tuple[int, int]
    sig: bytes


ChannelMsg = (
    OpenChannel
    | AcceptChannel
    | FundingSigned
    | UpdateBatch
    | AckBatch
    | Revoke
    | Reestablish
    | Preimages
    | Shutdown
    | ClosingSigned
)
