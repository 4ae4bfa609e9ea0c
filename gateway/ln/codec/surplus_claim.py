"""`sg_surplus_claim` / `sg_surplus_answer`: a node asks the POD to buy its unsold surplus.

The long side of imbalance settlement (docs/channels.md, "The POD buys a node's surplus"): after a
settlement period is over, a node whose meter exported more energy than the node sold in that
period issues a receipt for the difference and asks the POD to pay it. The claim carries the
evidence the POD checks without trusting the node: two records signed by the node's meter (its
key enrolled on the ledger, owned by the claiming node) that bound the period, whose cumulative
export counters give the most the POD will ever pay for.

| message | type | fields |
|---|---|---|
| `sg_surplus_claim` | 33031 | request_id bytes32, start u32, end u32, wh u32, first varbytes (167), last varbytes (167), invoice varbytes (<= 2048) |
| `sg_surplus_answer` | 33033 | request_id bytes32, status u8, reason varbytes (<= 200) |

`request_id` is not chosen by the node: it is `request_id_for(meter_id, start, end)`, so there is
one claim per meter and period, whatever the node sends. Pure.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from gateway.ln.codec.wire import TABLE, Message
from gateway.ln.errors import WireError
from sgcore import reading as rc

CLAIM, ANSWER = "sg_surplus_claim", "sg_surplus_answer"
MAX_WH = 10_000_000  # 10 MWh in one claim
MAX_PERIOD_S = 86_400
MAX_INVOICE = 2048
MAX_REASON = 200

# sg_surplus_answer.status
PAID = 1  # the POD's payment of the invoice succeeded
PENDING = 2  # accepted, the payment is under way: ask again later
RETRY = 3  # not now (the POD is busy, the ledger away, no route): ask again later
REFUSED = 4  # never: the claim is wrong (the reason says why); do not ask again
STATUSES = (PAID, PENDING, RETRY, REFUSED)

if CLAIM not in TABLE.by_name:
    TABLE.register(
        CLAIM,
        33031,
        [("request_id", "bytes32"), ("start", "u32"), ("end", "u32"), ("wh", "u32"),
         ("first", "varbytes"), ("last", "varbytes"), ("invoice", "varbytes")],
    )  # fmt: skip
    TABLE.register(ANSWER, 33033, [("request_id", "bytes32"), ("status", "u8"),
                                   ("reason", "varbytes")])  # fmt: skip


def request_id_for(meter_id: bytes, start: int, end: int) -> bytes:
    """The one request id of a meter's claim for the period [start, end)."""
    return hashlib.sha256(b"sg-surplus" + meter_id + struct.pack(">II", start, end)).digest()


@dataclass(frozen=True)
class SurplusClaim:
    request_id: bytes
    start: int
    end: int
    wh: int  # the energy the invoice sells: exported - sold in the period
    first: bytes  # the meter's signed record at (or just after) the period's start
    last: bytes  # the meter's signed record at (or just before) the period's end
    invoice: str  # the node's receipt for `wh`, memo kind "surplus"

    def check(self) -> None:
        if len(self.request_id) != 32:
            raise WireError(f"{CLAIM}.request_id must be 32 bytes")
        if not 0 < self.end - self.start <= MAX_PERIOD_S:
            raise WireError(f"{CLAIM}: the period must be 1 s .. 1 day long")
        if not 0 < self.wh <= MAX_WH:
            raise WireError(f"{CLAIM}.wh must be 1..{MAX_WH}")
        if len(self.first) != rc.RECORD_LEN or len(self.last) != rc.RECORD_LEN:
            raise WireError(f"{CLAIM}: first and last must be {rc.RECORD_LEN}-byte meter records")
        if not 0 < len(self.invoice) <= MAX_INVOICE or not self.invoice.isascii():
            raise WireError(f"{CLAIM}.invoice must be 1..{MAX_INVOICE} ASCII bytes")


@dataclass(frozen=True)
class SurplusAnswer:
    request_id: bytes
    status: int
    reason: str = ""


def encode_claim(c: SurplusClaim) -> bytes:
    c.check()
    return TABLE.encode(CLAIM, request_id=c.request_id, start=c.start, end=c.end, wh=c.wh,
                        first=c.first, last=c.last, invoice=c.invoice.encode("ascii"))  # fmt: skip


def claim_from(msg: Message) -> SurplusClaim:
    if len(msg["invoice"]) > MAX_INVOICE:
        raise WireError(f"{CLAIM}.invoice over {MAX_INVOICE} bytes")
    try:
        invoice = msg["invoice"].decode("ascii")
    except UnicodeDecodeError as exc:
        raise WireError(f"{CLAIM}.invoice must be ASCII") from exc
    c = SurplusClaim(msg["request_id"], msg["start"], msg["end"], msg["wh"], msg["first"],
                     msg["last"], invoice)  # fmt: skip
    c.check()
    return c


def encode_answer(a: SurplusAnswer) -> bytes:
    if a.status not in STATUSES:
        raise WireError(f"{ANSWER}.status must be one of {STATUSES}")
    reason = a.reason.encode("utf-8")[:MAX_REASON].decode("utf-8", "ignore").encode("utf-8")
    return TABLE.encode(ANSWER, request_id=a.request_id, status=a.status, reason=reason)


def answer_from(msg: Message) -> SurplusAnswer:
    if msg["status"] not in STATUSES or len(msg["reason"]) > MAX_REASON:
        raise WireError(f"{ANSWER}: unknown status or reason over {MAX_REASON} bytes")
    try:
        return SurplusAnswer(msg["request_id"], msg["status"], msg["reason"].decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WireError(f"{ANSWER}.reason must be UTF-8") from exc
