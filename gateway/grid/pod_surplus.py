"""The POD buys a node's unsold surplus: the long side of imbalance settlement (docs/gateway.md).

A node whose meter exported more in a settlement period than the node sold asks the POD, once the
period is over, to pay a receipt for the difference (`sg_surplus_claim`,
gateway/ln/codec/surplus_claim.py). The POD trusts nothing the node says about energy it can
check: `judge` accepts a claim only when

* the claim is for one whole period of the POD's `market.settle_period_s` that is over and at most
  MAX_AGE_S old, under the one request id of that meter and period;
* its two records are signed by the meter key the ledger enrolled, for a meter the ledger says the
  claiming peer owns, are interval readings, the first ending at or after the period's start and
  the last at or before its end;
* the energy asked is at most the export between them (`last.export_wh - first.export_wh`): the
  POD never pays for more than the meter measured, and (gateway/grid/surplus_link.py) never twice
  for records of a seq range overlapping one it bought;
* the invoice is the claiming node's own receipt, memo kind "surplus", for that period and energy,
  not expired, asking at most `market.surplus_price_msat_per_kwh` per kWh.

What the node sold in the period is its own statement (the sold receipts were paid by others): the
POD cannot see a sale it did not make, so an under-stated sale is bounded only by the metered
export. Pure: the ledger's answer, the clock and the price come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway.crypto import MeterVerifier
from gateway.errors import EnrollmentError
from gateway.grid.pod import MAX_AGE_S
from gateway.ln.codec import receipt
from gateway.ln.codec import surplus_claim as sc
from gateway.ln.errors import LnError
from gateway.market.units import amount_msat
from gateway.token_bucket import TokenBuckets
from sgcore import reading as rc

RATE = 2.0  # claims per second per peer
BURST = 20.0
PEERS_MAX = 1024  # buckets remembered (oldest forgotten first)


@dataclass(frozen=True)
class MeterEntry:
    """What the ledger says of a meter (`GET /v1/meters/<id>`)."""

    pubkey: bytes
    owner: bytes  # the participant (node id) that owns it


@dataclass(frozen=True)
class Verdict:
    status: int  # 0: buy it; else the sc.* answer status
    reason: str = ""
    wh: int = 0
    amount_msat: int = 0
    payment_hash: bytes = b""
    first_seq: int = 0
    last_seq: int = 0


def meter_of(claim: sc.SurplusClaim) -> bytes:
    """The meter id the claim's first record names (raises ReadingFormatError when malformed)."""
    return rc.decode(claim.first)[0].meter_id


def _refuse(reason: str) -> Verdict:
    return Verdict(sc.REFUSED, reason)


def judge(
    claim: sc.SurplusClaim,
    sender: bytes,
    entry: MeterEntry | None,
    price_msat_per_kwh: int,
    period_s: int,
    now: float,
) -> Verdict:
    """Whether the POD pays this claim's invoice, and how much (see the module docstring)."""
    if not price_msat_per_kwh:
        return _refuse("this POD buys no surplus (market.surplus_price_msat_per_kwh = 0)")
    if claim.start % period_s or claim.end - claim.start != period_s:
        return _refuse(f"not a settlement period of this POD ({period_s} s, aligned)")
    if claim.end > now:
        return Verdict(sc.RETRY, "the settlement period is not over yet")
    if now - claim.end > MAX_AGE_S:
        return _refuse("the settlement period is too old")
    try:
        first = rc.decode(claim.first)[0]
        last = rc.decode(claim.last)[0]
    except rc.ReadingFormatError as exc:
        return _refuse(f"not a meter record: {exc}")
    if first.meter_id != last.meter_id:
        return _refuse("the two records are of different meters")
    if claim.request_id != sc.request_id_for(first.meter_id, claim.start, claim.end):
        return _refuse("the request id is not the one of this meter and period")
    if entry is None:
        return _refuse("the meter is not enrolled on the ledger")
    if entry.owner != sender:
        return _refuse("the meter is not this node's (ledger owner)")
    problem = _evidence(claim, first, last, entry.pubkey)
    if problem:
        return _refuse(problem)
    metered = last.export_wh - first.export_wh
    if claim.wh > metered:
        return _refuse(f"asks {claim.wh} Wh but the meter exported {metered} Wh in the period")
    v = _invoice(claim, sender, price_msat_per_kwh, now)
    return replace(v, first_seq=first.seq, last_seq=last.seq) if v.status == 0 else v


def _evidence(claim: sc.SurplusClaim, first: rc.Reading, last: rc.Reading, pubkey: bytes) -> str:
    try:
        verifier = MeterVerifier(pubkey)
    except EnrollmentError as exc:
        return f"the ledger's meter key is unusable: {exc}"
    if rc.meter_id_from_pubkey(pubkey) != first.meter_id:
        return "the records do not carry the enrolled key's meter id"
    for name, record in (("first", claim.first), ("last", claim.last)):
        body, sig = record[: rc.BODY_LEN], record[rc.BODY_LEN :]
        if not verifier.verify_digest(sig, rc.digest(body)):
            return f"the {name} record's signature does not verify"
    if first.kind != rc.KIND_READING or last.kind != rc.KIND_READING:
        return "the records must be interval readings"
    if first.end < claim.start or last.end > claim.end:
        return "the records do not lie within the period"
    if first.seq >= last.seq or last.export_wh < first.export_wh:
        return "the first record must come before the last"
    return ""


def _invoice(claim: sc.SurplusClaim, sender: bytes, price: int, now: float) -> Verdict:
    try:
        inv, memo = receipt.read_receipt(claim.invoice)
    except LnError as exc:
        return _refuse(f"not a receipt: {exc}")
    if inv.payee != sender:
        return _refuse("the receipt is not the claiming node's")
    if memo.kind != receipt.KIND_SURPLUS:
        return _refuse('the receipt\'s memo is not of kind "surplus"')
    if (memo.start, memo.end) != (claim.start, claim.end):
        return _refuse("the receipt is not for the claimed period")
    if round(memo.energy_kwh * 1000) != claim.wh:
        return _refuse("the receipt does not sell the claimed energy")
    if inv.is_expired(int(now)):
        return _refuse("the receipt has expired")
    most = amount_msat(claim.wh, price)
    if inv.amount_msat is None or not 0 < inv.amount_msat <= most:
        return _refuse(f"the receipt asks {inv.amount_msat} msat; this POD pays at most {most}")
    return Verdict(0, "", claim.wh, inv.amount_msat, inv.payment_hash)


class RateLimit(TokenBuckets):
    """A token bucket per peer: RATE claims/s, burst BURST, PEERS_MAX peers remembered (beyond:
    dropped, counted; gateway/token_bucket.py)."""

    def __init__(self, rate: float = RATE, burst: float = BURST) -> None:
        super().__init__(rate, burst, PEERS_MAX)
