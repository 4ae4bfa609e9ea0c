"""The exception tree of `gateway.ln`, under `gateway.errors.GatewayError`: every codec,
channel, routing, node and store failure is an `LnError`.

Library errors (coincurve, cryptography, sqlite3) are translated at the boundary so callers
catch one family and never see a bare ValueError from a dependency. This module is the bottom
layer of gateway.ln: it imports nothing from the package.
"""

from __future__ import annotations

from gateway.errors import GatewayError


class LnError(GatewayError):
    """Base of every error raised by gateway.ln."""


# --- codecs (gateway.ln.codec) ---------------------------------------------------------------


class SecretError(LnError):
    """A per-commitment secret is malformed or inconsistent with earlier ones (BOLT #3)."""


class KeyDerivationError(LnError):
    """A BOLT #3 key derivation got an invalid point or scalar."""


class Bech32Error(LnError):
    """A bech32 string is malformed: bad charset, mixed case, checksum, length."""


class InvoiceError(LnError):
    """A BOLT #11 invoice cannot be encoded or decoded."""


class InvoiceSignatureError(InvoiceError):
    """The invoice signature is invalid or does not match the `n` field."""


class ReceiptError(LnError):
    """An energy receipt memo is malformed or does not match its invoice."""


class WireError(LnError):
    """A BOLT #1 message cannot be encoded or decoded."""


class UnknownMessageError(WireError):
    """The message type is not in the table. `type_num` tells which; odd types may be ignored."""

    def __init__(self, type_num: int) -> None:
        super().__init__(f"unknown message type {type_num}")
        self.type_num = type_num


class HandshakeError(LnError):
    """The BOLT #8 handshake failed; `code` names the failure as in the spec's test vectors."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


class TransportError(LnError):
    """An encrypted BOLT #8 frame failed authentication, was too long, or the peer went away."""


# --- channels, routing, node and store ---------------------------------------------------
class KeyFileError(LnError):
    """A node seed file is missing, malformed or readable by others."""


class ChannelError(LnError):
    """Base of every channel failure."""


class IllegalTransition(ChannelError):
    """A channel was asked to move between two states the transition table does not allow."""


class ProtocolViolation(ChannelError):
    """The peer sent something inconsistent with the agreed state (bad signature, bad number)."""


class ChannelRefused(ChannelError):
    """The peer answered our open_channel with a BOLT #1 error: it will not open this channel."""


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

    @property
    def undecided(self) -> bool:
        """The ledger was not reached, or did not decide in time: the transaction may still
        commit (submit it again, idempotent), unlike a refusal by its rules."""
        return self.reason in ("unavailable", "timeout")


class ChannelStoreError(LnError):
    """The channel database is missing, corrupt or from a different node."""
