"""Credit tokens: what a site gateway sends a meter once a payment has settled.

Layout (version 1, big-endian, documented in docs/credit-tokens.md):

    off size field
      0    1 version          = 1
      1    1 kind             1 = energy credit, 2 = time window, 3 = issuer key change
      2   16 meter_id         the meter this token is for
     18    8 token_id         u64, strictly increasing per meter (never reused in a lifetime)
     26    4 amount_wh        energy credit (kind 1)
     30    4 window_start     unix s (kind 2)
     34    4 window_end       unix s (kind 2)
     38    4 power_cap_w      max power during the window (kind 2; 0 = no cap)
     42    4 expiry           unix s: the meter refuses the token after this
     46    8 issuer_key_id    sha256(issuer compressed pubkey)[:8]
     54   33 new_issuer_key   compressed pubkey (kind 3), zeros otherwise
     87   64 signature        r || s, secp256k1 ECDSA over sha256(bytes 0..86), low-S

A token is 151 bytes. Like STS (IEC 62055-41) tokens, it is addressed to one meter, numbered so that
a replay is refused, and authenticated by the issuer; unlike STS, it is signed with a public key,
so a meter holds no secret that could mint credit.
"""

import hashlib
import struct

from sgcore.compat import PACK_ERRORS, const

VERSION = const(1)
KIND_ENERGY = const(1)
KIND_WINDOW = const(2)
KIND_KEY_CHANGE = const(3)

_FORMAT = ">BB16sQIIIII8s33s"
BODY_LEN = const(87)
TOKEN_LEN = const(151)
_NO_KEY = b"\x00" * 33


class TokenFormatError(ValueError):
    pass


class Token:
    __slots__ = (
        "kind",
        "meter_id",
        "token_id",
        "amount_wh",
        "window_start",
        "window_end",
        "power_cap_w",
        "expiry",
        "issuer_key_id",
        "new_issuer_key",
    )

    def __init__(
        self,
        kind,
        meter_id,
        token_id,
        expiry,
        issuer_key_id,
        amount_wh=0,
        window_start=0,
        window_end=0,
        power_cap_w=0,
        new_issuer_key=_NO_KEY,
    ):
        self.kind = kind
        self.meter_id = meter_id
        self.token_id = token_id
        self.amount_wh = amount_wh
        self.window_start = window_start
        self.window_end = window_end
        self.power_cap_w = power_cap_w
        self.expiry = expiry
        self.issuer_key_id = issuer_key_id
        self.new_issuer_key = new_issuer_key

    def __repr__(self):
        return "Token(kind=%d, id=%d, %d Wh, expiry=%d)" % (
            self.kind,
            self.token_id,
            self.amount_wh,
            self.expiry,
        )


def _check(t):
    if t.kind not in (KIND_ENERGY, KIND_WINDOW, KIND_KEY_CHANGE):
        raise TokenFormatError("unknown token kind %r" % (t.kind,))
    if len(t.meter_id) != 16 or len(t.issuer_key_id) != 8 or len(t.new_issuer_key) != 33:
        raise TokenFormatError("meter_id, issuer_key_id or new_issuer_key has the wrong length")
    if t.kind == KIND_ENERGY and t.amount_wh == 0:
        raise TokenFormatError("an energy token must carry energy")
    if t.kind == KIND_WINDOW and t.window_end <= t.window_start:
        raise TokenFormatError("time window ends before it starts")
    if t.kind == KIND_KEY_CHANGE and t.new_issuer_key[0] not in (2, 3):
        raise TokenFormatError("key change needs a compressed public key")


def encode_body(t):
    _check(t)
    try:
        return struct.pack(
            _FORMAT,
            VERSION,
            t.kind,
            t.meter_id,
            t.token_id,
            t.amount_wh,
            t.window_start,
            t.window_end,
            t.power_cap_w,
            t.expiry,
            t.issuer_key_id,
            t.new_issuer_key,
        )
    except PACK_ERRORS as exc:
        raise TokenFormatError("field out of range: %s" % (exc,))


def decode(data):
    """Parse a full token: returns (Token, body, signature). Raises TokenFormatError only."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TokenFormatError("token must be bytes")
    if len(data) != TOKEN_LEN:
        raise TokenFormatError("token is %d bytes, expected %d" % (len(data), TOKEN_LEN))
    body = bytes(data[:BODY_LEN])
    f = struct.unpack(_FORMAT, body)
    if f[0] != VERSION:
        raise TokenFormatError("unsupported token version %d" % f[0])
    t = Token(f[1], f[2], f[3], f[8], f[9], f[4], f[5], f[6], f[7], f[10])
    _check(t)
    return t, body, bytes(data[BODY_LEN:])


def digest(body):
    return hashlib.sha256(body).digest()


def key_id(pubkey33):
    """An issuer key's id: the first 8 bytes of sha256 of its compressed public key."""
    return hashlib.sha256(pubkey33).digest()[:8]


# --- delivery tag: a cheap MAC that lets a meter verify genuine tokens first -------------------
#
# On MQTT a token may travel as token || tag (TOKEN_LEN + TAG_LEN bytes), tag =
# HMAC-SHA256(delivery_key, token)[:16], delivery_key = sha256(b"SGTOKTAG1" || x), x = the
# x-coordinate of the ECDH point (meter key x site key; the meter computes it once per boot).
# The tag proves nothing about credit (the signature does): it only lets the meter queue the
# gateway's tokens ahead of a flood of forgeries, which cost it a whole verification each.
TAG_LEN = const(16)


def delivery_key(shared_x32):
    return hashlib.sha256(b"SGTOKTAG1" + bytes(shared_x32)).digest()


def delivery_tag(key32, token):
    from sgcore.hmac_sha256 import hmac_sha256

    return hmac_sha256(key32, bytes(token))[:TAG_LEN]
