"""`sg_energy_request` / `sg_energy_quote`: asking the POD for a receipt (docs/channels.md).

A node asks its POD neighbour for energy as the last resort (kind 1: energy in a coming window,
at the POD's tariff) or to settle an imbalance (kind 2: energy it drew beyond what it paid, in a
period that is over, at the imbalance price). The POD answers with a receipt it issued (the node
then pays it like any receipt, and its meter gets the credit) or with a refusal reason.

| message | type | fields |
|---|---|---|
| `sg_energy_request` | 33027 | request_id bytes32, kind u8, start u32, end u32, wh u32 |
| `sg_energy_quote` | 33029 | request_id bytes32, invoice varbytes (<= 2048, empty on refusal), reason varbytes (<= 200) |

`request_id` makes a request idempotent: the same id gets the same receipt. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ln.codec.wire import TABLE, Message
from gateway.ln.errors import WireError

REQUEST, QUOTE = "sg_energy_request", "sg_energy_quote"
KIND_PURCHASE, KIND_IMBALANCE = 1, 2
MAX_WH = 10_000_000  # 10 MWh in one receipt
MAX_WINDOW_S = 86_400
MAX_INVOICE = 2048
MAX_REASON = 200

if REQUEST not in TABLE.by_name:
    TABLE.register(
        REQUEST,
        33027,
        [("request_id", "bytes32"), ("kind", "u8"), ("start", "u32"), ("end", "u32"),
         ("wh", "u32")],
    )  # fmt: skip
    TABLE.register(
        QUOTE, 33029, [("request_id", "bytes32"), ("invoice", "varbytes"), ("reason", "varbytes")]
    )


@dataclass(frozen=True)
class EnergyRequest:
    request_id: bytes
    kind: int
    start: int
    end: int
    wh: int

    def check(self) -> None:
        if len(self.request_id) != 32:
            raise WireError(f"{REQUEST}.request_id must be 32 bytes")
        if self.kind not in (KIND_PURCHASE, KIND_IMBALANCE):
            raise WireError(f"{REQUEST}.kind must be 1 (purchase) or 2 (imbalance)")
        if not 0 < self.end - self.start <= MAX_WINDOW_S:
            raise WireError(f"{REQUEST}: the window must be 1 s .. 1 day long")
        if not 0 < self.wh <= MAX_WH:
            raise WireError(f"{REQUEST}.wh must be 1..{MAX_WH}")


@dataclass(frozen=True)
class EnergyQuote:
    request_id: bytes
    invoice: str  # "" when refused
    reason: str = ""


def encode_request(r: EnergyRequest) -> bytes:
    r.check()
    return TABLE.encode(REQUEST, request_id=r.request_id, kind=r.kind, start=r.start, end=r.end,
                        wh=r.wh)  # fmt: skip


def request_from(msg: Message) -> EnergyRequest:
    r = EnergyRequest(msg["request_id"], msg["kind"], msg["start"], msg["end"], msg["wh"])
    r.check()
    return r


def encode_quote(q: EnergyQuote) -> bytes:
    invoice, reason = q.invoice.encode("ascii"), q.reason.encode("utf-8")[:MAX_REASON]
    if len(invoice) > MAX_INVOICE:
        raise WireError(f"{QUOTE}.invoice must be at most {MAX_INVOICE} bytes")
    return TABLE.encode(QUOTE, request_id=q.request_id, invoice=invoice, reason=reason)


def quote_from(msg: Message) -> EnergyQuote:
    if len(msg["invoice"]) > MAX_INVOICE or len(msg["reason"]) > MAX_REASON:
        raise WireError(f"{QUOTE}: field over its limit")
    try:
        return EnergyQuote(
            msg["request_id"], msg["invoice"].decode("ascii"), msg["reason"].decode("utf-8")
        )
    except UnicodeDecodeError as exc:
        raise WireError(f"{QUOTE}: invoice must be ASCII and reason UTF-8") from exc
