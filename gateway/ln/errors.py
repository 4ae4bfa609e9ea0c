"""One exception tree for `gateway.ln`: every codec failure is an `LnError`.

Library errors (coincurve, cryptography) are translated at the boundary so callers
catch one family and never see a bare ValueError from a dependency.
"""

from __future__ import annotations


class LnError(Exception):
    """Base of every error raised by gateway.ln."""


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
