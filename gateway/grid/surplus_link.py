"""The long side of imbalance settlement over the peer connection (docs/gateway.md):

* `SurplusSeller` (a node with `market.surplus_price_msat_per_kwh` > 0, a meter and a POD): after
  each settlement period it computes its unsold surplus (gateway/grid/surplus.py), issues a
  receipt for it (memo kind "surplus"), writes the claim and asks the POD with
  `sg_surplus_claim` until its receipt is paid, refused or expired;
* `SurplusBuyer` (the POD): judges each claim (gateway/grid/pod_surplus.py), writes the purchase
  and pays the receipt over its channels; the same claim asked again gets the state of that one
  purchase, so a meter's period is paid at most once, whoever restarts when.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from gateway import clock
from gateway.config_grid import MarketConfig
from gateway.grid import pod_surplus, surplus
from gateway.grid.node import GridNode
from gateway.grid.pod import MAX_AGE_S
from gateway.grid.surplus_book import ClaimRow, PodPurchases, Purchase, SurplusBook
from gateway.ingest.store import ReadingStore
from gateway.ln.codec import bolt11
from gateway.ln.codec import surplus_claim as sc
from gateway.ln.codec.receipt import KIND_SURPLUS, EnergyMemo
from gateway.ln.errors import LnError
from gateway.market.units import amount_msat

log = logging.getLogger("gateway.grid")
RESEND_S = 5.0  # an unanswered (or pending) claim is asked again this often
RECEIPT_EXPIRY_S = MAX_AGE_S  # the POD takes claims of periods up to this old
PAY_TIMEOUT_S = 30.0
KEYS_MAX = 1024  # meter entries the POD caches from the ledger
KEY_TTL_S = 600.0
PRUNE_MARGIN_S = 86_400

LookupMeter = Callable[[bytes], "pod_surplus.MeterEntry | None"]  # blocking (ledger over HTTP)


class SurplusSeller:
    def __init__(
        self,
        name: str,
        market: MarketConfig,
        node: GridNode,
        store: ReadingStore,
        book: SurplusBook,
        meter: Callable[[], bytes | None],
        pod_id: bytes,
    ) -> None:
        self.name, self.market, self.node, self.store, self.book = name, market, node, store, book
        self.meter, self.pod_id = meter, pod_id
        self._sent: dict[bytes, float] = {}  # request id -> when last sent (this process)
        self._pruned_at = 0.0

    def _paid(self, payment_hash: bytes) -> bool:
        inv = self.node.switch.invoices.get(payment_hash)
        return inv is not None and inv.paid

    def plan_once(self, now: float) -> int:
        """Examine the periods that are due; returns how many claims were made."""
        meter = self.meter()
        if meter is None:
            return 0
        enrolled = self.store.meter(meter)
        if enrolled is None or enrolled.next_seq <= enrolled.anchor_seq:
            return 0  # nothing stored yet
        stored = self.store.readings(meter, enrolled.next_seq - 1)
        if not stored:
            return 0
        latest = stored[0].reading
        period = self.market.settle_period_s
        cursor = self.book.cursor(meter)
        if cursor is None:  # first time: from the current period on (sales are booked from now)
            cursor = (int(now) // period * period, 0)
            self.book.advance(meter, cursor[0])
        made = 0
        since, last_seq = cursor
        for start, end in surplus.periods_due(since, latest.end, now, period, now - MAX_AGE_S):
            row, used = self._claim_for(meter, start, end, now, last_seq)
            last_seq = max(last_seq, used)
            self.book.advance(meter, end, row, last_seq)  # claim and cursor in one transaction
            if row is not None:
                made += 1
                log.info("surplus of %d Wh (exported %d, sold %d) in [%d, %d): asking the POD "
                         "for %d msat", row.wh, row.exported_wh, row.sold_wh, start, end,
                         row.amount_msat)  # fmt: skip
        return made

    def _claim_for(
        self, meter: bytes, start: int, end: int, now: float, min_seq: int
    ) -> tuple[ClaimRow | None, int]:
        """The claim for a period (None: no surplus) and the seq of the last record it used."""
        bounds = self.store.bounding(meter, start, end, min_seq)  # from where the last one ended
        if bounds is None:
            return None, 0
        first, last = bounds
        sold = surplus.sold_wh(self.book.sales_overlapping(start, end), self._paid, start, end)
        exported, wh = surplus.surplus_wh(first.reading, last.reading, sold)
        amount = amount_msat(wh, self.market.surplus_price_msat_per_kwh)
        if wh <= 0 or amount <= 0:
            return None, last.reading.seq
        memo = EnergyMemo(self.name, start, end, kwh=wh / 1000, kind=KIND_SURPLUS)
        # committed (and booked as a sale) before the claim that names it is written
        rec = self.node.create_invoice(amount, memo, now=int(now),
                                       settlement_expiry_s=RECEIPT_EXPIRY_S)  # fmt: skip
        rid = sc.request_id_for(meter, start, end)
        row = ClaimRow(rid, meter, start, end, exported, sold, wh, amount, rec.payment_hash,
                       rec.invoice, first.record, last.record, "asking", "", 0)  # fmt: skip
        return row, last.reading.seq

    def ask_once(self, now: float) -> int:
        """Send the open claims that are due to the POD; returns how many were sent."""
        sent = 0
        for row in self.book.claims("asking"):
            if self._paid(row.payment_hash):
                self.book.set_claim(row.request_id, "paid")
                self._sent.pop(row.request_id, None)
                log.info("the POD paid %d msat for the surplus of %d Wh in [%d, %d)",
                         row.amount_msat, row.wh, row.start, row.end)  # fmt: skip
                continue
            if bolt11.decode(row.invoice).is_expired(int(now)):
                self.book.set_claim(row.request_id, "expired", "the receipt expired unpaid")
                self._sent.pop(row.request_id, None)
                continue
            if now - self._sent.get(row.request_id, -1e18) < RESEND_S:
                continue
            if self.pod_id not in self.node.peers:
                continue
            claim = sc.SurplusClaim(row.request_id, row.start, row.end, row.wh, row.first,
                                    row.last, row.invoice)  # fmt: skip
            if self.node.send_raw(self.pod_id, sc.encode_claim(claim)):
                self.book.count_send(row.request_id)
                self._sent[row.request_id] = now
                sent += 1
        if now - self._pruned_at > 3600:
            self._pruned_at = now
            self.book.prune(int(now - MAX_AGE_S - PRUNE_MARGIN_S))
        return sent

    def on_answer(self, sender: bytes, answer: sc.SurplusAnswer) -> None:
        if sender != self.pod_id:
            return
        if answer.status == sc.REFUSED:
            rows = [r for r in self.book.claims("asking") if r.request_id == answer.request_id]
            if rows and not self._paid(rows[0].payment_hash):
                self.book.set_claim(answer.request_id, "refused", answer.reason)
                self._sent.pop(answer.request_id, None)
                log.warning("the POD refused the surplus claim for [%d, %d): %s", rows[0].start,
                            rows[0].end, answer.reason)  # fmt: skip
        elif answer.status in (sc.PENDING, sc.RETRY):
            log.debug("surplus claim %s: %s", answer.request_id.hex()[:12], answer.reason)


class SurplusBuyer:
    def __init__(
        self,
        market: MarketConfig,
        node: GridNode,
        purchases: PodPurchases,
        lookup: LookupMeter,
        spawn: Callable[[Any, str], None],
    ) -> None:
        self.market, self.node, self.purchases = market, node, purchases
        self.lookup, self.spawn = lookup, spawn
        self.limit = pod_surplus.RateLimit()
        self.busy: set[bytes] = set()  # request ids being judged or paid now
        self.keys: OrderedDict[bytes, tuple[float, pod_surplus.MeterEntry | None]] = OrderedDict()
        self.counts: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def on_claim(self, sender: bytes, claim: sc.SurplusClaim) -> None:
        if not self.node.channels_with(sender):
            self._count("no_channel")  # only a channel neighbour can be paid, or make us work
            return
        if not self.limit.allow(sender, clock.now()):
            self._count("rate_limited")
            if self.counts["rate_limited"] <= 20 or self.counts["rate_limited"] % 1000 == 0:
                log.warning("surplus claims from %s over the rate: dropped (%d so far)",
                            sender.hex()[:12], self.counts["rate_limited"])  # fmt: skip
            return
        self.spawn(self._handle(sender, claim), "surplus-claim")

    async def _handle(self, sender: bytes, claim: sc.SurplusClaim) -> None:
        try:
            answer = await self.answer(sender, claim)
        except Exception:  # noqa: BLE001 - one bad claim never stops the POD; the node asks again
            log.exception("surplus claim %s", claim.request_id.hex()[:12])
            answer = sc.SurplusAnswer(claim.request_id, sc.RETRY, "the POD failed; ask again")
        self._count({sc.PAID: "paid", sc.PENDING: "pending", sc.RETRY: "retry",
                     sc.REFUSED: "refused"}[answer.status])  # fmt: skip
        if answer.status == sc.REFUSED:
            log.info("surplus claim of %s refused: %s", sender.hex()[:12], answer.reason)
        self.node.send_raw(sender, sc.encode_answer(answer))

    async def _entry(self, meter: bytes) -> pod_surplus.MeterEntry | None:
        now = time.monotonic()
        cached = self.keys.get(meter)
        if cached is not None and now - cached[0] < KEY_TTL_S:
            return cached[1]
        entry = await asyncio.to_thread(self.lookup, meter)
        self.keys.pop(meter, None)
        while len(self.keys) >= KEYS_MAX:
            self.keys.popitem(last=False)
        self.keys[meter] = (now, entry)
        return entry

    async def answer(self, sender: bytes, claim: sc.SurplusClaim) -> sc.SurplusAnswer:
        rid = claim.request_id
        try:
            meter = pod_surplus.meter_of(claim)
        except ValueError as exc:
            return sc.SurplusAnswer(rid, sc.REFUSED, f"not a meter record: {exc}")
        known = self.purchases.get(meter, claim.start)
        if known is not None:
            return await self._known(known, claim, sender)
        if rid in self.busy:
            return sc.SurplusAnswer(rid, sc.PENDING, "being checked")
        self.busy.add(rid)
        try:
            try:
                entry = await self._entry(meter)
            except Exception as exc:  # noqa: BLE001 - the ledger away: the node asks again
                return sc.SurplusAnswer(rid, sc.RETRY, f"ledger unavailable: {exc}"[:200])
            m = self.market
            v = pod_surplus.judge(claim, sender, entry, m.surplus_price_msat_per_kwh,
                                  m.settle_period_s, clock.now())  # fmt: skip
            if v.status:
                return sc.SurplusAnswer(rid, v.status, v.reason)
            if self.purchases.overlapping(meter, v.first_seq, v.last_seq) is not None:
                return sc.SurplusAnswer(rid, sc.REFUSED, "its records overlap a period bought")
            p = Purchase(meter, claim.start, claim.end, rid, sender, v.wh, v.amount_msat,
                         v.first_seq, v.last_seq, v.payment_hash, claim.invoice, "paying",
                         "")  # fmt: skip
            if not self.purchases.add(p):  # durable before the payment starts
                return sc.SurplusAnswer(rid, sc.REFUSED, "that receipt is bought already")
            log.info("POD: buying the surplus of %d Wh in [%d, %d) from %s for %d msat", v.wh,
                     claim.start, claim.end, sender.hex()[:12], v.amount_msat)  # fmt: skip
            return await self._pay(p)
        finally:
            self.busy.discard(rid)

    async def _known(self, p: Purchase, claim: sc.SurplusClaim, sender: bytes) -> sc.SurplusAnswer:
        rid = claim.request_id
        if p.request_id != rid or p.node_id != sender or p.invoice != claim.invoice:
            return sc.SurplusAnswer(rid, sc.REFUSED, "this meter's period is settled already")
        status = self._sync(p)
        if status == "paid":
            return sc.SurplusAnswer(rid, sc.PAID)
        if status == "paying" or rid in self.busy:
            return sc.SurplusAnswer(rid, sc.PENDING, "the payment is under way")
        if bolt11.decode(p.invoice).is_expired(int(clock.now())):
            return sc.SurplusAnswer(rid, sc.REFUSED, "the receipt has expired")
        self.busy.add(rid)
        try:
            return await self._pay(p)  # failed before: the same receipt, paid again
        finally:
            self.busy.discard(rid)

    def _sync(self, p: Purchase) -> str:
        """The purchase's status brought up to date with the channel node's payment."""
        outcome = self.node.payment_outcome(p.payment_hash)
        status = p.status
        if outcome is not None and outcome[0] == "succeeded":
            status = "paid"
        elif outcome is not None and outcome[0] == "failed":
            status = "failed"
        elif outcome is None and p.status == "paying" and p.request_id not in self.busy:
            status = "failed"  # written, but the payment never started (a crash between)
        if status != p.status:
            self.purchases.set_status(p.meter_id, p.start, status, outcome[1] if outcome else "")
        return status

    async def _pay(self, p: Purchase) -> sc.SurplusAnswer:
        self.purchases.set_status(p.meter_id, p.start, "paying")
        try:
            result = await self.node.pay_invoice(p.invoice, PAY_TIMEOUT_S, credit=False)
            status, reason = str(result.get("status")), str(result.get("reason", ""))
        except TimeoutError:
            return sc.SurplusAnswer(p.request_id, sc.PENDING, "the payment is under way")
        except LnError as exc:
            outcome = self.node.payment_outcome(p.payment_hash)
            status, reason = outcome if outcome is not None else ("failed", str(exc))
        if status == "succeeded":
            self.purchases.set_status(p.meter_id, p.start, "paid")
            log.info("POD: paid %d msat for %d Wh of surplus in [%d, %d)", p.amount_msat, p.wh,
                     p.start, p.end)  # fmt: skip
            return sc.SurplusAnswer(p.request_id, sc.PAID)
        if status == "pending":
            return sc.SurplusAnswer(p.request_id, sc.PENDING, "the payment is under way")
        self.purchases.set_status(p.meter_id, p.start, "failed", reason)
        return sc.SurplusAnswer(p.request_id, sc.RETRY, f"payment failed: {reason}"[:200])

    def reconcile(self, now: float) -> None:
        """Bring open purchases up to date (a payment that settled after its claim was answered)
        and forget those too old to be claimed again."""
        for p in self.purchases.all("paying"):
            self._sync(p)
        self.purchases.prune(int(now - MAX_AGE_S - PRUNE_MARGIN_S))
