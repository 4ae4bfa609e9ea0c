"""The POD as last resort, and imbalance settlement with it (seed 000 §IV; docs/gateway.md).

POD side (`PodDesk`): every `sg_energy_request` from a neighbour gets a receipt the POD issues,
at `market.tariff_msat_per_kwh` for energy in a coming window (kind 1, payable until the window
ends) or at
`market.imbalance_price_msat_per_kwh` for a settlement period that is over (kind 2); the same
request id always gets the same receipt (at most QUOTES_MAX remembered).

Node side (`debt_request`): the meter's readings carry its credit balance. Energy credit is what
the node paid for; a negative balance (a critical load that is never cut, emergency credit) is
energy drawn beyond what was paid: the imbalance. After the settlement period of the newest
reading is over, the node asks the POD for an imbalance receipt of exactly that many Wh, pays it,
and the credit token it buys brings the meter back to zero: imbalance receipts go the same path
as every other receipt. The request id is derived from the reading, so a restart asks again for
the same receipt, and while one imbalance purchase is open no second one is made.

Both halves are pure apart from the clock and the callables passed in.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from collections.abc import Callable

from gateway.config_grid import MarketConfig
from gateway.grid.credit_book import CreditBook
from gateway.ingest.store import ReadingStore
from gateway.ln.codec import energy_request as er
from gateway.ln.codec.receipt import EnergyMemo, Receipt
from gateway.ln.errors import LnError
from gateway.market.units import amount_msat
from sgcore import reading as rc

QUOTES_MAX = 10_000
MAX_AGE_S = 7 * 86_400  # imbalance of periods older than this is not settled any more
QUOTE_EXPIRY_S = 3600
PURCHASE_MIN_EXPIRY_S = 60

MakeReceipt = Callable[[int, EnergyMemo, int | None], Receipt]


class PodDesk:
    def __init__(self, name: str, market: MarketConfig, make_receipt: MakeReceipt) -> None:
        self.name = name
        self.market = market
        self.make_receipt = make_receipt
        self.quotes: OrderedDict[bytes, er.EnergyQuote] = OrderedDict()

    def quote(self, req: er.EnergyRequest, now: float) -> er.EnergyQuote:
        known = self.quotes.get(req.request_id)
        if known is not None:
            return known
        refusal = self._refusal(req, now)
        if refusal:
            return er.EnergyQuote(req.request_id, "", refusal)  # not remembered: may be asked again
        if req.kind == er.KIND_PURCHASE:
            # last-resort energy may be paid until its window ends (nobody else sells it, and
            # the credit serves whatever is left of the window): a receipt that expired when
            # the window began would fail whenever the payment takes longer than the lead
            price = self.market.tariff_msat_per_kwh
            expiry = max(PURCHASE_MIN_EXPIRY_S, int(req.end - now))
        else:
            price = self.market.imbalance_price_msat_per_kwh or self.market.tariff_msat_per_kwh
            expiry = QUOTE_EXPIRY_S
        memo = EnergyMemo(self.name, req.start, req.end, kwh=req.wh / 1000)
        try:
            rec = self.make_receipt(max(1, amount_msat(req.wh, price)), memo, expiry)
        except LnError as exc:
            return er.EnergyQuote(req.request_id, "", f"cannot issue: {exc}")
        q = er.EnergyQuote(req.request_id, rec.invoice)
        while len(self.quotes) >= QUOTES_MAX:
            self.quotes.popitem(last=False)
        self.quotes[req.request_id] = q
        return q

    def _refusal(self, req: er.EnergyRequest, now: float) -> str:
        if req.kind == er.KIND_PURCHASE:
            if not self.market.tariff_msat_per_kwh:
                return "this POD sells no energy (market.tariff_msat_per_kwh = 0)"
            if req.end <= now:
                return "the window is over: ask for an imbalance receipt"
            return ""
        if req.end > now:
            return "the settlement period is not over yet"
        if now - req.end > MAX_AGE_S:
            return "the settlement period is too old"
        return ""


def period_of(t: int, period_s: int) -> tuple[int, int]:
    """The settlement period [start, end) that the instant just before `t` falls in."""
    start = (t - 1) // period_s * period_s
    return start, start + period_s


def latest_reading(store: ReadingStore, meter_id: bytes) -> rc.Reading | None:
    head = store.head(meter_id)  # one meter's: not every meter's heads per debt request
    if head is None:
        return None
    rows = [r.reading for r in store.readings(meter_id, max(0, head - 16))]
    readings = [r for r in rows if r.kind == rc.KIND_READING]  # not relay events
    return readings[-1] if readings else None


def debt_request(
    store: ReadingStore,
    book: CreditBook,
    meter_id: bytes,
    node_id: bytes,
    pod_name: str,
    period_s: int,
    now: float,
) -> er.EnergyRequest | None:
    """The imbalance request the node should make now, or None (no debt, one open, too early)."""
    reading = latest_reading(store, meter_id)
    if reading is None:
        return None
    if reading.credit_wh >= 0:
        return None
    if any(r.issuer_node == pod_name for r in book.in_status("paying", "paid", "issued")):
        return None  # one imbalance purchase at a time: its token changes the balance
    settled = [r for r in book.in_status("accepted") if r.issuer_node == pod_name]
    if settled and reading.end <= max(book.updated_at(r.payment_hash) for r in settled):
        return None  # the reading ended before the last POD credit reached the meter (meter time)
    start, end = period_of(reading.end, period_s)
    if end > now:
        return None
    wh = min(-reading.credit_wh, er.MAX_WH)
    rid = hashlib.sha256(
        b"sg-imbalance" + node_id + meter_id + struct.pack(">III", reading.seq, start, wh)
    ).digest()
    return er.EnergyRequest(rid, er.KIND_IMBALANCE, start, end, wh)


def check_quote(
    quote: er.EnergyQuote, req: er.EnergyRequest, pod_id: bytes, now: int
) -> str | None:
    """Why a quote is not the receipt we asked for (None when it is)."""
    from gateway.ln.codec import receipt

    if not quote.invoice:
        return f"refused: {quote.reason}"
    try:
        inv, memo = receipt.read_receipt(quote.invoice)
    except LnError as exc:
        return f"not a receipt: {exc}"
    if inv.payee != pod_id:
        return "not issued by the POD"
    if (memo.start, memo.end) != (req.start, req.end) or round(memo.energy_kwh * 1000) != req.wh:
        return "the receipt is not for the requested window and energy"
    if inv.is_expired(now):
        return "the receipt has expired"
    return None
