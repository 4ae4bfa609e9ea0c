"""Energy receipts: BOLT #11 invoices whose description is the seed-000 energy memo.

Seed 000 (sections III-IV): a receipt's memo carries the quantity of energy (kWh) or a power
profile (kW), the delivery window, and the issuer's grid node id. We write it as compact JSON
with sorted keys, so the same memo always gives the same bytes (and description hash):

    {"end":1767229200,"kwh":1.5,"node":"pv-07","start":1767225600,"v":1}
    {"end":1767229200,"kw":[0.5,1.2,1.4,0.9],"node":"pv-07","start":1767225600,"step_s":900,"v":1}

A memo longer than `INLINE_MEMO_MAX` bytes goes into the invoice as its SHA-256 (`h`) and the
full memo travels alongside the invoice string (`Receipt.memo_json`).
The default invoice expiry runs until delivery starts: a receipt cannot be paid once its
window has begun (the issuer replaces expired receipts, seed 000).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass

from gateway.ln.codec import bolt11
from gateway.ln.errors import InvoiceError, ReceiptError

MEMO_VERSION = 1
INLINE_MEMO_MAX = bolt11.MAX_DESCRIPTION_BYTES  # 639 bytes: beyond that, use `h`
DEFAULT_MIN_FINAL_CLTV = 18
MAX_NODE_ID_LEN = 64
MAX_PROFILE_POINTS = 96 * 7  # a week of 15-minute slots
# memo "kind" (absent: energy sold ahead of its window). "surplus": energy a node injected beyond
# what it sold in a settlement period that is over, bought by the POD (gateway/grid/pod_surplus.py)
KIND_SURPLUS = "surplus"
KINDS = (KIND_SURPLUS,)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReceiptError(f"{what} must be a finite number")
    if value < 0:
        raise ReceiptError(f"{what} must not be negative")
    return value


@dataclass(frozen=True)
class EnergyMemo:
    """What a receipt sells: energy (kWh) or a power profile (kW per step) in a window."""

    node: str  # issuer grid node id
    start: int  # delivery window start, unix seconds
    end: int  # delivery window end, unix seconds
    kwh: float | None = None
    kw: tuple[float, ...] | None = None  # power profile, one value per step
    step_s: int | None = None  # profile step; len(kw) * step_s == end - start
    kind: str | None = None  # None, or one of KINDS

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ReceiptError(f"memo kind must be one of {KINDS}")
        if not isinstance(self.node, str) or not 0 < len(self.node) <= MAX_NODE_ID_LEN:
            raise ReceiptError(f"node id must be 1..{MAX_NODE_ID_LEN} characters")
        for name in ("start", "end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ReceiptError(f"{name} must be a unix time in whole seconds")
        if self.end <= self.start:
            raise ReceiptError("delivery window end must be after its start")
        if (self.kwh is None) == (self.kw is None):
            raise ReceiptError("a memo carries exactly one of kwh and a kw profile")
        if self.kwh is not None:
            _number(self.kwh, "kwh")
            if self.step_s is not None:
                raise ReceiptError("step_s belongs to a kw profile")
        if self.kw is not None:
            if not 0 < len(self.kw) <= MAX_PROFILE_POINTS:
                raise ReceiptError(f"kw profile must have 1..{MAX_PROFILE_POINTS} points")
            for p in self.kw:
                _number(p, "kw profile point")
            step = self.step_s
            if isinstance(step, bool) or not isinstance(step, int) or step <= 0:
                raise ReceiptError("a kw profile needs a positive whole step_s")
            if step * len(self.kw) != self.end - self.start:
                raise ReceiptError("kw profile length * step_s must equal the delivery window")

    @property
    def energy_kwh(self) -> float:
        """Total energy of the memo (a profile integrates kW over its steps)."""
        if self.kwh is not None:
            return float(self.kwh)
        assert self.kw is not None and self.step_s is not None
        return sum(self.kw) * self.step_s / 3600.0

    def to_json(self) -> str:
        body: dict[str, object] = {
            "v": MEMO_VERSION,
            "node": self.node,
            "start": self.start,
            "end": self.end,
        }
        if self.kwh is not None:
            body["kwh"] = self.kwh
        else:
            body["kw"] = list(self.kw or ())
            body["step_s"] = self.step_s
        if self.kind is not None:
            body["kind"] = self.kind
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> EnergyMemo:
        try:
            body = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise ReceiptError(f"memo is not JSON: {exc}") from exc
        if not isinstance(body, dict) or body.get("v") != MEMO_VERSION:
            raise ReceiptError(f"memo is not a version {MEMO_VERSION} energy memo")
        allowed = {"v", "node", "start", "end", "kwh", "kw", "step_s", "kind"}
        if set(body) - allowed:
            raise ReceiptError(f"memo has unknown keys {sorted(set(body) - allowed)}")
        kw = body.get("kw")
        if kw is not None and not isinstance(kw, list):
            raise ReceiptError("kw profile must be a list")
        return cls(
            node=body.get("node"),  # type: ignore[arg-type]
            start=body.get("start"),  # type: ignore[arg-type]
            end=body.get("end"),  # type: ignore[arg-type]
            kwh=body.get("kwh"),
            kw=tuple(kw) if kw is not None else None,
            step_s=body.get("step_s"),
            kind=body.get("kind"),
        )


@dataclass(frozen=True)
class Receipt:
    """An issued receipt: the invoice string and the full memo it commits to."""

    invoice: str
    memo: EnergyMemo
    memo_json: str
    payment_hash: bytes


def create_receipt(
    memo: EnergyMemo,
    amount_msat: int,
    payment_hash: bytes,
    node_key: bytes,
    now: int,
    expiry_s: int | None = None,
    min_final_cltv_expiry: int = DEFAULT_MIN_FINAL_CLTV,
    payment_secret: bytes | None = None,
    currency: str = bolt11.REGTEST,
) -> Receipt:
    """Sign a receipt invoice for `memo` with the issuer's node key.

    The expiry defaults to the time left until delivery starts; a receipt for a window that
    has already started is refused unless `expiry_s` is given explicitly.
    """
    memo_json = memo.to_json()
    raw = memo_json.encode("utf-8")
    if expiry_s is None:
        expiry_s = memo.start - now
        if expiry_s <= 0:
            raise ReceiptError("delivery window has already started: pass expiry_s explicitly")
    if expiry_s <= 0:
        raise ReceiptError("expiry must be positive")
    inline = len(raw) <= INLINE_MEMO_MAX
    invoice = bolt11.Invoice(
        currency=currency,
        timestamp=now,
        payment_hash=payment_hash,
        amount_msat=amount_msat,
        payment_secret=payment_secret if payment_secret is not None else os.urandom(32),
        description=memo_json if inline else None,
        description_hash=None if inline else hashlib.sha256(raw).digest(),
        expiry=expiry_s,
        min_final_cltv_expiry=min_final_cltv_expiry,
        features=(1 << bolt11.FEATURE_VAR_ONION_REQUIRED)
        | (1 << bolt11.FEATURE_PAYMENT_SECRET_REQUIRED),
        payee=bolt11.payee_key(node_key),
    )
    try:
        text = bolt11.encode(invoice, node_key)
    except InvoiceError as exc:
        raise ReceiptError(f"cannot encode receipt: {exc}") from exc
    return Receipt(invoice=text, memo=memo, memo_json=memo_json, payment_hash=payment_hash)


def read_receipt(text: str, memo_json: str | None = None) -> tuple[bolt11.Invoice, EnergyMemo]:
    """Decode a receipt invoice and its memo (inline, or given alongside for `h` invoices)."""
    inv = bolt11.decode(text, description=memo_json)
    if inv.description is not None:
        if memo_json is not None and memo_json != inv.description:
            raise ReceiptError("memo given alongside differs from the invoice's description")
        return inv, EnergyMemo.from_json(inv.description)
    if memo_json is None:
        raise ReceiptError("receipt commits to its memo by hash: the memo must be supplied")
    return inv, EnergyMemo.from_json(memo_json)
