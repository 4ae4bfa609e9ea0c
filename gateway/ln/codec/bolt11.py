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
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from coincurve import PrivateKey

from gateway.ln.codec import bech32, bolt11_fields
from gateway.ln.codec.bolt11_fields import (  # noqa: F401 - part of this module's API
    FEATURE_PAYMENT_SECRET_REQUIRED,
    FEATURE_VAR_ONION_REQUIRED,
    KNOWN_FEATURE_BITS,
    MAX_FIELD_WORDS,
    SIGNATURE_WORDS,
    TIMESTAMP_WORDS,
    TaggedField,
)
from gateway.ln.errors import Bech32Error, InvoiceError

CURRENCIES = ("bcrt", "bc", "tbs", "tb")
REGTEST = "bcrt"
DEFAULT_EXPIRY_S = 3600  # when the `x` field is absent
DEFAULT_MIN_FINAL_CLTV = 18  # when the `c` field is absent
MAX_DESCRIPTION_BYTES = MAX_FIELD_WORDS * 5 // 8  # 639: longer memos go by `h`
MSAT_PER_BTC = 100_000_000_000

_MULTIPLIERS = {"m": 10**8, "u": 10**5, "n": 10**2, "p": None}  # msat per unit (p: 1/10 msat)
_AMOUNT_RE = re.compile(r"^([0-9]+)([munp]?)$")


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
    payee = payee_key(private_key)
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
    sig = _signer(private_key).sign_recoverable(signing_message(hrp, words))
    return bech32.encode(hrp, words + bech32.bytes_to_words(sig))


@functools.lru_cache(maxsize=64)
def _signer(private_key: bytes) -> PrivateKey:
    """The parsed key (its public key derived once: two EC multiplications): a node signs
    every receipt it issues with the same key."""
    try:
        return PrivateKey(private_key)
    except (ValueError, TypeError) as exc:
        raise InvoiceError(f"cannot sign with this key: {exc}") from exc


def payee_key(private_key: bytes) -> bytes:
    """The 33-byte compressed node key of a 32-byte private key (InvoiceError if invalid)."""
    return _signer(private_key).public_key.format(compressed=True)


def _timestamp_words(timestamp: int) -> list[int]:
    if not 0 <= timestamp < 1 << 35:
        raise InvoiceError("timestamp must fit in 35 bits")
    words = bech32.int_to_words(timestamp)
    return [0] * (TIMESTAMP_WORDS - len(words)) + words


# --- decoding --------------------------------------------------------------------------------


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


class PaymentTerms(NamedTuple):
    """What a payer needs of a decoded and verified invoice (`payment_terms`)."""

    payee: bytes
    payment_hash: bytes
    amount_msat: int | None
    min_final_cltv: int
    payment_secret: bytes | None
    expires_at: int


def payment_terms(text: str) -> PaymentTerms:
    """Decode and verify an invoice for paying it: the checks of `decode` (the same reader,
    signature included) without building the `Invoice` and its tagged fields, and without
    keeping it (a payer decoding a batch in a worker sees each string once). An invoice that
    `decode` already holds is not verified again."""
    if not isinstance(text, str):
        raise InvoiceError("an invoice is a string")
    text = text.strip()
    inv = _kept.get(text)
    if inv is not None:
        return PaymentTerms(
            inv.payee,  # type: ignore[arg-type]  # a decoded invoice always has its payee
            inv.payment_hash,
            inv.amount_msat,
            inv.min_final_cltv,
            inv.payment_secret,
            inv.expires_at,
        )
    r = _read(text, keep_fields=False)
    return PaymentTerms(
        r.payee,
        r.p,
        r.amount,
        DEFAULT_MIN_FINAL_CLTV if r.c is None else r.c,
        r.s,
        r.timestamp + (DEFAULT_EXPIRY_S if r.x is None else r.x),
    )


def _read(text: str, keep_fields: bool) -> bolt11_fields.Read:
    try:
        hrp, words = bech32.decode_words(text)
    except Bech32Error as exc:
        raise InvoiceError(f"not a bech32 invoice: {exc}") from exc
    currency, amount = _split_hrp(hrp)
    return bolt11_fields.read(hrp, currency, amount, words, keep_fields)


class _Kept:
    """The verified `Invoice` of the last `size` strings decoded, keyed by the whole string (a
    lookup compares the full text, so no other string ever returns a kept invoice)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._by_text: OrderedDict[str, Invoice] = OrderedDict()
        self._lock = threading.Lock()  # the move-to-end of a hit and an eviction race otherwise

    def get(self, text: str) -> Invoice | None:
        with self._lock:
            inv = self._by_text.get(text)
            if inv is not None:
                self._by_text.move_to_end(text)
            return inv

    def put(self, text: str, inv: Invoice) -> None:
        with self._lock:
            self._by_text[text] = inv
            if len(self._by_text) > self.size:
                self._by_text.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._by_text.clear()


_kept = _Kept(DECODED_CACHE)


def _decode_verified(text: str) -> Invoice:
    inv = _kept.get(text)
    if inv is not None:
        return inv
    r = _read(text, keep_fields=True)  # raises on any defect: a string that fails is not kept
    inv = Invoice(
        currency=r.currency,
        timestamp=r.timestamp,
        payment_hash=r.p,
        amount_msat=r.amount,
        payment_secret=r.s,
        description=r.d,
        description_hash=r.h,
        expiry=r.x,
        min_final_cltv_expiry=r.c,
        features=r.f9,
        payee=r.payee,
        extra_fields=r.extra,
        fields=r.fields,
        signature=r.signature,
        has_payee_field=r.n is not None,
    )
    _kept.put(text, inv)
    return inv
