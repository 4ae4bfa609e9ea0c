"""The data part of a BOLT #11 invoice: its tagged fields read in one pass, the signature
checked last (pure, no I/O; `bolt11` is the module callers use).

Spec: https://github.com/lightning/bolts/blob/master/11-payment-encoding.md (tagged fields;
requirements for readers: skip `p`/`h`/`s`/`n` of another length, the first of a tag counts,
fail on an unknown even feature bit, check the signature).

Speed (a payer decodes every invoice it pays): the data words are one integer, 5 bits a word,
the last word lowest, and every field value, the signature and the signed message are shifts
and masks of it (no regrouping per field); the values are read in the same pass that finds the
fields, and the verbatim fields (`TaggedField`, for re-encoding) are only built when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from gateway.ln.codec import bech32
from gateway.ln.codec.bolt11_signature import payee_of
from gateway.ln.errors import InvoiceError

MAX_FIELD_WORDS = 1023  # 10-bit data_length
TIMESTAMP_WORDS = 7  # 35 bits
SIGNATURE_WORDS = 104  # 520 bits: 64-byte signature + recovery id
# BOLT #9 features meaningful in invoices (context 9): var_onion_optin, payment_secret,
# basic_mpp, route_blinding, payment_metadata. Unknown *even* bits make an invoice unpayable.
KNOWN_FEATURE_BITS = frozenset({8, 9, 14, 15, 16, 17, 24, 25, 48, 49})
FEATURE_PAYMENT_SECRET_REQUIRED = 14
FEATURE_VAR_ONION_REQUIRED = 8

_FIXED_BITS = {"p": 260, "s": 260, "h": 260, "n": 265}  # readers skip these at other lengths
_BYTES_TAGS = frozenset("pshnd")
_INT_TAGS = frozenset("xc9")
_SIGNATURE_MASK = (1 << 5 * SIGNATURE_WORDS) - 1
_CHARSET = bech32.CHARSET


@dataclass(frozen=True)
class TaggedField:
    """One tagged field as on the wire: its bech32 character and 5-bit data words."""

    tag: str
    words: tuple[int, ...]

    def to_words(self) -> list[int]:
        if len(self.words) > MAX_FIELD_WORDS:
            raise InvoiceError(f"field {self.tag!r} is {len(self.words)} words, max 1023")
        n = len(self.words)
        return [bech32.CHARSET.index(self.tag), n >> 5, n & 31, *self.words]


class Read(NamedTuple):
    """An invoice's data part as read: the first value of each known tag (None if absent)."""

    currency: str
    amount: int | None
    timestamp: int
    p: bytes
    s: bytes | None
    d: str | None
    h: bytes | None
    n: bytes | None
    x: int | None
    c: int | None
    f9: int | None
    payee: bytes  # `n` once the signature verified under it, else the recovered key
    signature: bytes
    fields: tuple[TaggedField, ...]  # all, in wire order (empty unless keep_fields)
    extra: tuple[TaggedField, ...]  # f, r, m and unknown tags (empty unless keep_fields)


def check_features(features: int) -> None:
    value = features
    while value:  # one step per set bit (an invoice sets a few)
        low = value & -value
        bit = low.bit_length() - 1
        if bit % 2 == 0 and bit not in KNOWN_FEATURE_BITS:
            raise InvoiceError(f"invoice requires unknown feature bit {bit}")
        value ^= low


def read(hrp: str, currency: str, amount: int | None, words: bytes, keep_fields: bool) -> Read:
    """Every check of an invoice's data `words` (checksum already checked, one word a byte),
    the signature over `hrp` and them last; InvoiceError on any defect."""
    end = len(words) - SIGNATURE_WORDS  # the data part: timestamp and tagged fields
    if end < TIMESTAMP_WORDS:
        raise InvoiceError("invoice too short to hold a timestamp and a signature")
    whole = bech32.words_to_int(words)
    signature = (whole & _SIGNATURE_MASK).to_bytes(65, "big")  # 520 bits: no padding
    whole >>= 5 * SIGNATURE_WORDS
    total_bits = 5 * end
    timestamp = whole >> (total_bits - 5 * TIMESTAMP_WORDS)

    fields: list[TaggedField] = []
    extra: list[TaggedField] = []
    p = s = h = n = None
    d = None
    x = c = f9 = None
    pos = TIMESTAMP_WORDS
    while pos < end:
        if pos + 3 > end:
            raise InvoiceError("truncated tagged field header")
        tag = _CHARSET[words[pos]]
        a = pos + 3
        pos = a + (words[pos + 1] << 5 | words[pos + 2])
        if pos > end:
            raise InvoiceError(f"tagged field {tag!r} runs past the end of the data")
        if keep_fields:
            fields.append(TaggedField(tag, tuple(words[a:pos])))
        bits = 5 * (pos - a)
        if tag in _BYTES_TAGS:
            if bits != _FIXED_BITS.get(tag, bits):
                continue  # the spec: readers skip p/h/s/n of another length
            value = (whole >> (total_bits - 5 * pos)) & ((1 << bits) - 1)
            raw = (value >> (bits % 8)).to_bytes(bits // 8, "big")  # incomplete bits dropped
            if tag == "p":
                p = raw if p is None else p  # the first one is the preferred one
            elif tag == "s":
                s = raw if s is None else s
            elif tag == "h":
                h = raw if h is None else h
            elif tag == "n":
                n = raw if n is None else n
            elif d is None:
                try:
                    d = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvoiceError("description is not valid UTF-8") from exc
        elif tag in _INT_TAGS:
            value = (whole >> (total_bits - 5 * pos)) & ((1 << bits) - 1)
            if tag == "x":
                x = value if x is None else x
            elif tag == "c":
                c = value if c is None else c
            elif f9 is None:
                f9 = value
        elif keep_fields:
            extra.append(fields[-1])  # f, r, m, unknown: uninterpreted, kept as they are

    if p is None:
        raise InvoiceError("invoice has no payment hash")
    if (d is None) == (h is None):
        raise InvoiceError("invoice must carry exactly one of description (d) and its hash (h)")
    if f9 is not None:
        check_features(f9)

    pad = -total_bits % 8
    message = hrp.encode("utf-8") + (whole << pad).to_bytes((total_bits + pad) // 8, "big")
    payee = payee_of(signature, message, n)
    return Read(
        currency, amount, timestamp, p, s, d, h, n, x, c, f9, payee, signature,
        tuple(fields), tuple(extra),
    )  # fmt: skip
