"""Acknowledgements and commands the gateway sends to a meter: tiny JSON, signed by the site key.

Each message is JSON with a `sig` field: 128 hex characters, the r || s (low-S) secp256k1 ECDSA
signature by the gateway's site key over sha256 of a fixed binary string that a MicroPython meter
rebuilds from the JSON fields with one `struct.pack` (no canonical-JSON problem):

    ack   {"upto": N, "h": "<64 hex>", "sig": "..."}
          signed bytes: b"SGACK1" + meter_id(16) + u32be(N) + h(32)
          h is the chain hash (sha256 of the full record) of record N: the meter checks it against
          its journal before freeing records <= N.
    cmd   {"op": "resend", "from": N, "sig": "..."}   signed: b"SGCMD1" + meter_id + b"\x01" + u32be(N)
          {"op": "time", "t": T, "sig": "..."}        signed: b"SGCMD1" + meter_id + b"\x02" + u32be(T)

The meter id inside the signed bytes stops an ack for one meter being replayed to another; acks are
monotonic (a meter ignores upto <= what it already freed), so replaying an old ack does nothing.
"""

from __future__ import annotations

import hashlib
import json
import struct

from gateway.crypto import MeterVerifier, SiteKey

ACK_TAG = b"SGACK1"
CMD_TAG = b"SGCMD1"
OPS = {"resend": 1, "time": 2}
_ARG = {"resend": "from", "time": "t"}


class MessageError(ValueError):
    """A payload is not a well-formed, correctly signed ack or command."""


def ack_digest(meter_id: bytes, upto: int, record_hash: bytes) -> bytes:
    return hashlib.sha256(ACK_TAG + meter_id + struct.pack(">I", upto) + record_hash).digest()


def cmd_digest(meter_id: bytes, op: str, arg: int) -> bytes:
    return hashlib.sha256(CMD_TAG + meter_id + bytes([OPS[op]]) + struct.pack(">I", arg)).digest()


def encode_ack(key: SiteKey, meter_id: bytes, upto: int, record_hash: bytes) -> bytes:
    sig = key.sign_digest(ack_digest(meter_id, upto, record_hash))
    return b'{"upto":%d,"h":"%s","sig":"%s"}' % (
        upto,
        record_hash.hex().encode(),
        sig.hex().encode(),
    )


def encode_cmd(key: SiteKey, meter_id: bytes, op: str, arg: int) -> bytes:
    sig = key.sign_digest(cmd_digest(meter_id, op, arg))
    return b'{"op":"%s","%s":%d,"sig":"%s"}' % (
        op.encode(),
        _ARG[op].encode(),
        arg,
        sig.hex().encode(),
    )


def _load(payload: bytes) -> dict:
    try:
        msg = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from exc
    if not isinstance(msg, dict):
        raise MessageError("not a JSON object")
    return msg


def _u32(msg: dict, key: str) -> int:
    v = msg.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
        raise MessageError(f"{key} must be a u32")
    return v


def _hex(msg: dict, key: str, size: int) -> bytes:
    v = msg.get(key)
    try:
        raw = bytes.fromhex(v) if isinstance(v, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise MessageError(f"{key} must be {size} hex bytes")
    return raw


def decode_ack(payload: bytes, site_pubkey: bytes, meter_id: bytes) -> tuple[int, bytes]:
    """(upto, record_hash) of a verified ack; what a meter does (used by tests and emulators)."""
    msg = _load(payload)
    upto, h, sig = _u32(msg, "upto"), _hex(msg, "h", 32), _hex(msg, "sig", 64)
    if not MeterVerifier(site_pubkey).verify_digest(sig, ack_digest(meter_id, upto, h)):
        raise MessageError("bad ack signature")
    return upto, h


def decode_cmd(payload: bytes, site_pubkey: bytes, meter_id: bytes) -> tuple[str, int]:
    msg = _load(payload)
    op = msg.get("op")
    if op not in OPS:
        raise MessageError(f"unknown op {op!r}")
    arg, sig = _u32(msg, _ARG[op]), _hex(msg, "sig", 64)
    if not MeterVerifier(site_pubkey).verify_digest(sig, cmd_digest(meter_id, op, arg)):
        raise MessageError("bad command signature")
    return op, arg
