"""Acknowledgements and commands the gateway sends to a meter, signed by the site key.

The bytes (JSON fields, signed strings, tags) are defined once in `sgcore.messages`, which the
meter's firmware imports too (docs/mqtt-topics.md); this module adds the site key's signature and
the gateway's own verification (used by tests and the soft meters).
"""

from __future__ import annotations

from gateway.crypto import MeterVerifier, SiteKey
from gateway.errors import GatewayError
from sgcore import messages as wire
from sgcore.messages import ACK_TAG, CMD_TAG, ack_digest, cmd_digest

__all__ = ["ACK_TAG", "CMD_TAG", "OPS", "MessageError", "ack_digest", "cmd_digest"]

OPS = {op: code for op, (code, _arg) in wire.OPS.items()}


class MessageError(GatewayError):
    """A payload is not a well-formed, correctly signed ack or command."""


def encode_ack(key: SiteKey, meter_id: bytes, upto: int, record_hash: bytes) -> bytes:
    sig = key.sign_digest(ack_digest(meter_id, upto, record_hash))
    return wire.encode_ack(upto, record_hash, sig)


def encode_cmd(key: SiteKey, meter_id: bytes, op: str, arg: int, nonce: bytes = b"") -> bytes:
    """`nonce`: for "clock", the one in the meter's current online status."""
    sig = key.sign_digest(cmd_digest(meter_id, op, arg, nonce))
    return wire.encode_cmd(op, arg, sig, nonce)


def _fields(decode, payload: bytes) -> tuple:  # noqa: ANN001
    try:
        return decode(payload)
    except wire.MessageFormatError as exc:
        raise MessageError(str(exc)) from exc


def _check(site_pubkey: bytes, sig: bytes, digest: bytes, what: str) -> None:
    if not MeterVerifier(site_pubkey).verify_digest(sig, digest):
        raise MessageError(f"bad {what} signature")


def decode_ack(payload: bytes, site_pubkey: bytes, meter_id: bytes) -> tuple[int, bytes]:
    """(upto, record_hash) of a verified ack; what a meter does (used by tests and emulators)."""
    upto, h, sig = _fields(wire.decode_ack, payload)
    _check(site_pubkey, sig, ack_digest(meter_id, upto, h), "ack")
    return upto, h


def decode_cmd(payload: bytes, site_pubkey: bytes, meter_id: bytes) -> tuple[str, int]:
    """(op, arg) of a verified command (a "clock" command's nonce is checked, not returned)."""
    op, arg, sig, nonce = _fields(wire.decode_cmd, payload)
    _check(site_pubkey, sig, cmd_digest(meter_id, op, arg, nonce), "command")
    return op, arg
