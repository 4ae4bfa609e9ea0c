"""Acknowledgements and commands a gateway sends to a meter: tiny JSON signed by the site key.

The one definition of these bytes, imported by the meter (firmware/lib/uplink.py) and the gateway
(gateway/mqtt/messages.py); docs/mqtt-topics.md. Each message is JSON with a `sig` field: 128 hex
characters, r || s (low-S) of a secp256k1 ECDSA signature over sha256 of a fixed binary string
that a meter rebuilds from the JSON fields with one `struct.pack` (no canonical JSON needed):

    ack   {"upto": N, "h": "<64 hex>", "sig": "..."}
          signed bytes: b"SGACK1" + meter_id(16) + u32be(N) + h(32)
          h is the chain hash (sha256 of the full record) of record N: the meter checks it against
          its journal before freeing records <= N.
    cmd   {"op": "resend", "from": N, "sig": "..."}   signed: b"SGCMD1" + meter_id + b"\x01" + u32be(N)
          {"op": "time", "t": T, "sig": "..."}        signed: b"SGCMD1" + meter_id + b"\x02" + u32be(T)
          {"op": "clock", "t": T, "n": "<16 hex>", "sig": "..."}
                            signed: b"SGCMD1" + meter_id + b"\x03" + u32be(T) + nonce(8)
          "time" may only set a clock that is unset, or move it forward (never before the meter's
          open interval); "clock" sets it either way, also back (a clock wrongly set into the
          future), but only with the nonce the meter published in its current `online` status
          (STATUS_NONCE): a recorded clock command cannot be replayed.

The meter id inside the signed bytes stops an ack for one meter being replayed to another; acks are
monotonic (a meter ignores upto <= what it already freed), so replaying an old ack does nothing.
The decoders only check the form; the caller verifies `sig` (step-wise on a meter).
"""

import binascii
import hashlib
import json
import struct

ACK_TAG = b"SGACK1"
CMD_TAG = b"SGCMD1"
OPS = {"resend": (1, "from"), "time": (2, "t"), "clock": (3, "t")}  # op -> (code, argument)
NONCE_OPS = ("clock",)  # ops that carry the meter's nonce ("n")
NONCE_LEN = 8
SIG_LEN = 64


class MessageFormatError(ValueError):
    """A payload is not a well-formed ack or command (its signature is not looked at)."""


def ack_digest(meter_id, upto, record_hash):
    return hashlib.sha256(ACK_TAG + meter_id + struct.pack(">I", upto) + record_hash).digest()


def cmd_digest(meter_id, op, arg, nonce=b""):
    code = OPS[op][0]
    signed = CMD_TAG + meter_id + bytes((code,)) + struct.pack(">I", arg) + nonce
    return hashlib.sha256(signed).digest()


def online_status(nonce, refresh=False):
    """The meter's retained `online` status, carrying the nonce a clock command must echo.

    `refresh`: the status a meter publishes when a clock command used its nonce up: only the new
    nonce, not "I came online" (the gateway answers it with nothing; answering it with another
    clock command would loop). After every connect the plain status goes out again."""
    more = ',"refresh":true' if refresh else ""
    return ('{"state":"online","nonce":"%s"%s}' % (_hex(nonce), more)).encode()


def _hex(raw):
    return binascii.hexlify(raw).decode()


def encode_ack(upto, record_hash, sig):
    """The ack's JSON (bytes) for a signature `sig` over ack_digest(meter_id, upto, record_hash)."""
    return ('{"upto":%d,"h":"%s","sig":"%s"}' % (upto, _hex(record_hash), _hex(sig))).encode()


def encode_cmd(op, arg, sig, nonce=b""):
    """The command's JSON (bytes) for a signature `sig` over cmd_digest(meter_id, op, arg, nonce)."""
    n = ',"n":"%s"' % _hex(nonce) if op in NONCE_OPS else ""
    return ('{"op":"%s","%s":%d%s,"sig":"%s"}' % (op, OPS[op][1], arg, n, _hex(sig))).encode()


def _unhex(value, size):
    if not isinstance(value, str) or len(value) != 2 * size:
        return None
    try:
        return binascii.unhexlify(value)
    except ValueError:
        return None


def _is_u32(value):
    return type(value) is int and 0 <= value <= 0xFFFFFFFF  # not bool


def _load(payload, what):
    try:
        msg = json.loads(payload)
    except (ValueError, UnicodeError):
        msg = None
    if not isinstance(msg, dict):
        raise MessageFormatError("%s is not a JSON object: %r" % (what, bytes(payload[:60])))
    sig = _unhex(msg.get("sig"), SIG_LEN)
    if sig is None:
        raise MessageFormatError("%s without a valid sig field" % what)
    return msg, sig


def decode_ack(payload):
    """(upto, record_hash, sig) of an ack, or MessageFormatError."""
    msg, sig = _load(payload, "ack")
    upto, h = msg.get("upto"), _unhex(msg.get("h"), 32)
    if not _is_u32(upto) or h is None:
        raise MessageFormatError("malformed ack")
    return upto, h, sig


def decode_cmd(payload):
    """(op, arg, sig, nonce) of a command (nonce b"" for ops without one), or
    MessageFormatError (an unknown op is one too)."""
    msg, sig = _load(payload, "command")
    op = msg.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise MessageFormatError("unknown command %r" % (op,))
    name = OPS[op][1]
    arg = msg.get(name)
    if not _is_u32(arg):
        raise MessageFormatError("command %s without a u32 %s" % (op, name))
    nonce = b""
    if op in NONCE_OPS:
        nonce = _unhex(msg.get("n"), NONCE_LEN)
        if nonce is None:
            raise MessageFormatError("command %s without a valid nonce" % op)
    return op, arg, sig, nonce
