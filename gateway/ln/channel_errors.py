"""Errors of the channel side of `gateway.ln` (keys, channels, HTLCs, routing, node, store).

They extend the package tree rooted at `gateway.ln.errors.LnError`.
"""

from __future__ import annotations

from gateway.ln.errors import LnError


class KeyFileError(LnError):
    """A node seed file is missing, malformed or readable by others."""


class ChannelError(LnError):
    """Base of every channel failure."""


class IllegalTransition(ChannelError):
    """A channel was asked to move between two states the transition table does not allow."""


class ProtocolViolation(ChannelError):
    """The peer sent something inconsistent with the agreed state (bad signature, bad number)."""


class InsufficientBalance(ChannelError):
    """An HTLC or payment asks for more than the sender can spend in this channel."""


class UnknownHtlc(ChannelError):
    """An update names an HTLC that is not in flight."""


class BadPreimage(ChannelError):
    """sha256(preimage) does not match the HTLC's payment hash."""


class HtlcExpired(ChannelError):
    """An HTLC's expiry is too close or past: it may not be added or fulfilled any more."""


class InvariantBroken(ChannelError):
    """to_local + to_remote + in-flight HTLCs != capacity. Never expected: a bug stops here."""


class NoRoute(LnError):
    """No path with enough capacity leads to the destination."""


class PaymentFailed(LnError):
    """A payment was unwound: `reason` says which hop refused and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LedgerPortError(LnError):
    """The ledger refused (``reason`` as in docs/ledger-api.md) or could not be reached."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class StoreError(LnError):
    """The channel database is missing, corrupt or from a different node."""
