"""BOLT #11 invoices: encode, decode, sign and verify (pure, no I/O).

Spec: https://github.com/lightning/bolts/blob/master/11-payment-encoding.md

Our network uses the regtest-style prefix `lnbcrt` (see docs/invoices.md); the spec's
currencies `bc`, `tb`, `tbs` decode too so the spec's examples round-trip.

`decode()` keeps every tagged field verbatim, in wire order, in `Invoice.fields`;
`encode_fields()` re-signs exactly those fields, so decode -> encode_fields reproduces the
original string (signatures are RFC 6979 deterministic). `encode()` builds the fields from
the semantic attributes, for the invoices we issue.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from coincurve import PrivateKey

from gateway.ln.codec import bech32
from gateway.ln.codec.bolt11_signature import payee_of
from gateway.ln.errors import Bech32Error, InvoiceError

CURRENCIES = ("bcrt", "bc", "tbs", "tb")
REGTEST = "bcrt"
DEFAULT_EXPIRY_S = 3600  # when the `x` field is absent
DEFAULT_MIN_FINAL_CLTV = 18  # when the `c` field is absent
MAX_FIELD_WORDS = 1023  # 10-bit data_length
MAX_DESCRIPTION_BYTES = MAX_FIELD_WORDS * 5 // 8  # 639: longer memos go by `h`
TIMESTAMP_WORDS = 7  # 35 bits
SIGNATURE_WORDS = 104  # 520 bits: 64-byte signature + recovery id
MSAT_PER_BTC = 100_000_000_000
# BOLT #9 features meaningful in invoices (context 9): var_onion_optin, payment_secret,
# basic_mpp, route_blinding, payment_metadata. Unknown *even* bits make an invoice unpayable.
KNOWN_FEATURE_BITS = frozenset({8, 9, 14, 15, 16, 17, 24, 25, 48, 49})
FEATURE_PAYMENT_SECRET_REQUIRED = 14
FEATURE_VAR_ONION_REQUIRED = 8

_MULTIPLIERS = {"m": 10**8, "u": 10**5, "n": 10**2, "p": None}  # msat per unit (p: 1/10 msat)
_AMOUNT_RE = re.compile(r"^([0-9]+)([munp]?)$")
_FIXED_LENGTH = {"p": 52, "s": 52, "h": 52, "n": 53}  # readers skip these at other lengths


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


@dataclass(frozen=True)
class Invoice:
    """A BOLT #11 invoice. Absent optional fields are None (see `expiry_s` for defaults)."""

    currency: str
    timestamp: int
    payment_hash: bytes
    amount_msat: int | None = None
    payment_secret: bytes | None = None
    description: str | None = None
    description_hash: bytes | None = None
    expiry: int | None = None
    min_final_cltv_expiry: int | None = None
    features: int | None = None
    payee: bytes | None = None  # 33-byte node key: from `n`, or recovered from the signature
    extra_fields: tuple[TaggedField, ...] = ()  # uninterpreted (f, r, m, unknown), kept as is
    fields: tuple[TaggedField, ...] = ()  # after decode: every tagged field, in wire order
    signature: bytes = b""  # 65 bytes: r || s || recovery id
    has_payee_field: bool = field(default=False, compare=False)

    @property
    def hrp(self) -> str:
        amount = "" if self.amount_msat is None else amount_to_hrp(self.amount_msat)
        return "ln" + self.currency + amount

    @property
    def expiry_s(self) -> int:
        return DEFAULT_EXPIRY_S if self.expiry is None else self.expiry

    @property
    def expires_at(self) -> int:
        return self.timestamp + self.expiry_s

    @property
    def min_final_cltv(self) -> int:
        return (
            DEFAULT_MIN_FINAL_CLTV
            if self.min_final_cltv_expiry is None
            else self.min_final_cltv_expiry
        )

    def is_expired(self, now: int) -> bool:
        return now >= self.expires_at


# --- amounts ---------------------------------------------------------------------------------


def amount_to_hrp(amount_msat: int) -> str:
    """Shortest hrp amount for `amount_msat` (e.g. 250_000_000 -> '2500u')."""
    if not isinstance(amount_msat, int) or amount_msat <= 0:
        raise InvoiceError("amount must be a positive whole number of msat")
    for unit in ("", "m", "u", "n"):
        per_unit = MSAT_PER_BTC if unit == "" else _MULTIPLIERS[unit]
        assert per_unit is not None
        if amount_msat % per_unit == 0:
            return f"{amount_msat // per_unit}{unit}"
    return f"{amount_msat * 10}p"


def hrp_to_amount(text: str) -> int:
    match = _AMOUNT_RE.match(text)
    if not match:
        raise InvoiceError(f"invalid amount {text!r} in human-readable part")
    number, unit = int(match.group(1)), match.group(2)
    if unit == "p":
        if number % 10:
            raise InvoiceError("amount has sub-millisatoshi precision")
        msat = number // 10
    else:
        per_unit = MSAT_PER_BTC if unit == "" else _MULTIPLIERS[unit]
        assert per_unit is not None
        msat = number * per_unit
    if msat <= 0:
        raise InvoiceError("amount must be positive")
    return msat


@functools.lru_cache(maxsize=256)
def _split_hrp(hrp: str) -> tuple[str, int | None]:
    if not hrp.startswith("ln"):
        raise InvoiceError(f"human-readable part {hrp!r} does not start with 'ln'")
    rest = hrp[2:]
    digits = re.search(r"[0-9]", rest)
    currency, amount = (rest[: digits.start()], rest[digits.start() :]) if digits else (rest, "")
    if currency not in CURRENCIES:
        raise InvoiceError(f"unknown currency prefix {currency!r}")
    return currency, hrp_to_amount(amount) if amount else None


# --- encoding --------------------------------------------------------------------------------


def _bytes_field(tag: str, data: bytes) -> TaggedField:
    return TaggedField(tag, tuple(bech32.bytes_to_words(data)))


def _int_field(tag: str, value: int) -> TaggedField:
    if value < 0:
        raise InvoiceError(f"field {tag!r} must not be negative")
    return TaggedField(tag, tuple(bech32.int_to_words(value)))


def semantic_fields(inv: Invoice) -> dict[str, TaggedField]:
    """The tagged fields for the invoice's semantic attributes, keyed by tag."""
    out: dict[str, TaggedField] = {}
    if len(inv.payment_hash) != 32:
        raise InvoiceError("payment_hash must be 32 bytes")
    out["p"] = _bytes_field("p", inv.payment_hash)
    if inv.payment_secret is not None:
        if len(inv.payment_secret) != 32:
            raise InvoiceError("payment_secret must be 32 bytes")
        out["s"] = _bytes_field("s", inv.payment_secret)
    if (inv.description is None) == (inv.description_hash is None):
        raise InvoiceError("an invoice carries exactly one of description and description_hash")
    if inv.description is not None:
        raw = inv.description.encode("utf-8")
        if len(raw) > MAX_DESCRIPTION_BYTES:
            raise InvoiceError(f"description is {len(raw)} bytes, max 639: use description_hash")
        out["d"] = _bytes_field("d", raw)
    if inv.description_hash is not None:
        if len(inv.description_hash) != 32:
            raise InvoiceError("description_hash must be 32 bytes")
        out["h"] = _bytes_field("h", inv.description_hash)
    if inv.expiry is not None:
        out["x"] = _int_field("x", inv.expiry)
    if inv.min_final_cltv_expiry is not None:
        out["c"] = _int_field("c", inv.min_final_cltv_expiry)
    if inv.payee is not None and inv.has_payee_field:
        out["n"] = _bytes_field("n", inv.payee)
    if inv.features:
        out["9"] = _int_field("9", inv.features)
    return out


def encode(
    inv: Invoice, private_key: bytes, order: str = "psdhncx9", include_payee: bool = True
) -> str:
    """Sign and encode `inv` with the payee's 32-byte private key.

    `order` lists the tags in the order they are written; `extra_fields` follow. With
    `include_payee` the `n` field carries the payee key (readers then verify, not recover).
    """
    if not 0 <= inv.timestamp < 1 << 35:
        raise InvoiceError("timestamp must fit in 35 bits")
    if inv.currency not in CURRENCIES:
        raise InvoiceError(f"unknown currency {inv.currency!r}")
    payee = PrivateKey(private_key).public_key.format(compressed=True)
    if inv.payee is not None and inv.payee != payee:
        raise InvoiceError("invoice payee does not match the signing key")
    by_tag = semantic_fields(replace(inv, payee=payee, has_payee_field=include_payee))
    fields = [by_tag.pop(tag) for tag in order if tag in by_tag]
    fields += list(by_tag.values()) + list(inv.extra_fields)
    return encode_fields(inv.hrp, inv.timestamp, fields, private_key)


def signing_message(hrp: str, data_words: Sequence[int]) -> bytes:
    """hrp bytes || data part (timestamp + fields) regrouped into bytes, zero-padded."""
    return hrp.encode("utf-8") + bech32.words_to_padded_bytes(data_words)


def encode_fields(
    hrp: str, timestamp: int, fields: Sequence[TaggedField], private_key: bytes
) -> str:
    """Low level: sign exactly these tagged fields in this order."""
    words = _timestamp_words(timestamp)
    for f in fields:
        words += f.to_words()
    try:
        sig = PrivateKey(private_key).sign_recoverable(signing_message(hrp, words))
    except ValueError as exc:
        raise InvoiceError(f"cannot sign with this key: {exc}") from exc
    return bech32.encode(hrp, words + bech32.bytes_to_words(sig))


def _timestamp_words(timestamp: int) -> list[int]:
    if not 0 <= timestamp < 1 << 35:
        raise InvoiceError("timestamp must fit in 35 bits")
    words = bech32.int_to_words(timestamp)
    return [0] * (TIMESTAMP_WORDS - len(words)) + words


# --- decoding --------------------------------------------------------------------------------


def _field_spans(words: Sequence[int]) -> list[tuple[str, int, int]]:
    """(tag, start, end) of each tagged field's data words in `words`, in wire order."""
    spans = []
    pos = 0
    while pos < len(words):
        if pos + 3 > len(words):
            raise InvoiceError("truncated tagged field header")
        tag = bech32.CHARSET[words[pos]]
        length = words[pos + 1] * 32 + words[pos + 2]
        if pos + 3 + length > len(words):
            raise InvoiceError(f"tagged field {tag!r} runs past the end of the data")
        spans.append((tag, pos + 3, pos + 3 + length))
        pos += 3 + length
    return spans


def _parse_fields(words: Sequence[int]) -> list[TaggedField]:
    return [TaggedField(tag, tuple(words[a:b])) for tag, a, b in _field_spans(words)]


def _check_features(features: int) -> None:
    value = features
    while value:  # one step per set bit (an invoice sets a few)
        low = value & -value
        bit = low.bit_length() - 1
        if bit % 2 == 0 and bit not in KNOWN_FEATURE_BITS:
            raise InvoiceError(f"invoice requires unknown feature bit {bit}")
        value ^= low


def decode(text: str, description: str | None = None) -> Invoice:
    """Decode and verify an invoice string. Raises InvoiceError (or a subclass) on any defect.

    If the invoice commits to a description by hash (`h`) and `description` is given, the
    hash is checked against it.

    An invoice is decoded and its signature verified once: a grid node reads an offered receipt
    when it arrives, again to credit its meter and again to pay it, so the verified `Invoice`
    (immutable) of the last DECODED_CACHE strings is kept. Strings that fail are not kept.
    """
    if not isinstance(text, str):
        raise InvoiceError("an invoice is a string")
    inv = _decode_verified(text.strip())
    if description is not None and inv.description_hash is not None:
        if hashlib.sha256(description.encode("utf-8")).digest() != inv.description_hash:
            raise InvoiceError("description does not match the invoice's description hash")
    return inv


DECODED_CACHE = 1024


_VALUE_TAGS = frozenset("pshndxc9")
_INT_TAGS = frozenset("xc9")


@functools.lru_cache(maxsize=DECODED_CACHE)
def _decode_verified(text: str) -> Invoice:
    try:
        hrp, words = bech32.decode_words(text)
    except Bech32Error as exc:
        raise InvoiceError(f"not a bech32 invoice: {exc}") from exc
    currency, amount = _split_hrp(hrp)
    if len(words) < TIMESTAMP_WORDS + SIGNATURE_WORDS:
        raise InvoiceError("invoice too short to hold a timestamp and a signature")
    data = words[:-SIGNATURE_WORDS]
    signature = bech32.words_to_bytes(words[-SIGNATURE_WORDS:])  # 520 bits: no padding
    # the data part (timestamp and fields) as one integer, 5 bits a word, the last word lowest:
    # every field value and the signed message are shifts and masks of it (no per-field pass)
    whole = bech32.words_to_int(data)
    total_bits = 5 * len(data)
    timestamp = whole >> (total_bits - 5 * TIMESTAMP_WORDS)
    body = data[TIMESTAMP_WORDS:]
    spans = _field_spans(body)
    fields = [TaggedField(tag, tuple(body[a:b])) for tag, a, b in spans]

    values: dict[str, object] = {}
    extra: list[TaggedField] = []
    base = total_bits - 5 * TIMESTAMP_WORDS  # bits below the first field word
    for f, (tag, a, b) in zip(fields, spans, strict=True):
        if tag not in _VALUE_TAGS:
            extra.append(f)
            continue
        n = b - a
        if tag in _FIXED_LENGTH and n != _FIXED_LENGTH[tag]:
            continue  # the spec: readers skip p/h/s/n of another length
        if tag in values:
            continue  # the first one is the preferred one
        bits = 5 * n
        value = (whole >> (base - 5 * b)) & ((1 << bits) - 1)
        if tag in _INT_TAGS:
            values[tag] = value
            continue
        raw = (value >> (bits % 8)).to_bytes(bits // 8, "big")  # incomplete last bits dropped
        if tag == "d":
            try:
                values[tag] = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvoiceError("description is not valid UTF-8") from exc
        else:
            values[tag] = raw

    if "p" not in values:
        raise InvoiceError("invoice has no payment hash")
    if ("d" in values) == ("h" in values):
        raise InvoiceError("invoice must carry exactly one of description (d) and its hash (h)")
    if "9" in values:
        _check_features(int(values["9"]))  # type: ignore[call-overload]

    pad = -total_bits % 8
    message = hrp.encode("utf-8") + (whole << pad).to_bytes((total_bits + pad) // 8, "big")
    payee = payee_of(signature, message, values.get("n"))  # type: ignore[arg-type]

    return Invoice(
        currency=currency,
        timestamp=timestamp,
        payment_hash=values["p"],  # type: ignore[arg-type]
        amount_msat=amount,
        payment_secret=values.get("s"),  # type: ignore[arg-type]
        description=values.get("d"),  # type: ignore[arg-type]
        description_hash=values.get("h"),  # type: ignore[arg-type]
        expiry=values.get("x"),  # type: ignore[arg-type]
        min_final_cltv_expiry=values.get("c"),  # type: ignore[arg-type]
        features=values.get("9"),  # type: ignore[arg-type]
        payee=payee,
        extra_fields=tuple(extra),
        fields=tuple(fields),
        signature=signature,
        has_payee_field="n" in values,
    )
