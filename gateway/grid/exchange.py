"""Receipts between grid nodes, over the peer connections (docs/channels.md):

* `sg_receipt_offer`: offers in (gateway/grid/offers.py decides: pay, forward, drop) and ours out
  (control API `POST /offer`, `sgrid channel offer`);
* `sg_energy_request` / `sg_energy_quote` with the POD (gateway/grid/pod.py), over a peer
  connection of their own when the POD is not a channel neighbour: the POD answers with a
  receipt; a node buys last-resort energy (`POST /buy`, `sgrid channel buy`) and settles its
  imbalance every few seconds once a settlement period is over;
* `sg_surplus_claim` / `sg_surplus_answer` (gateway/grid/surplus_link.py): the POD buys what a
  node's meter injected beyond what the node sold (the long side of the imbalance).

Every receipt paid here goes through the node's `pay_invoice`, so its credit reaches the meter.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from gateway import clock
from gateway.config import GatewayConfig
from gateway.grid import pod, topup
from gateway.grid.credit_book import CreditBook
from gateway.grid.forecast_source import ForecastSource
from gateway.grid.node import GridNode
from gateway.grid.offers import OfferDesk
from gateway.grid.producer import Producer
from gateway.grid.surplus_book import PodPurchases, SurplusBook
from gateway.grid.surplus_link import LookupMeter, SurplusBuyer, SurplusSeller
from gateway.ingest.store import ReadingStore
from gateway.ln.codec import bolt11
from gateway.ln.codec import energy_request as er
from gateway.ln.codec.receipt import EnergyMemo, Receipt
from gateway.ln.codec.receipt_offer import ReceiptOffer
from gateway.ln.errors import LnError

log = logging.getLogger("gateway.grid")
QUOTE_TIMEOUT_S = 10.0  # per 10 nodes of the topology: one POD answers every consumer's asks
SETTLE_CHECK_S = 2.0
POD_REDIAL_S = 5.0  # real seconds between attempts to reach a POD that is not a neighbour


def quote_timeout_s(nodes: int) -> float:
    """How long a consumer waits for the POD's quote: QUOTE_TIMEOUT_S on a grid of up to 10
    nodes, more on a bigger one, whose consumers all ask the one POD (50 consumers' asks met a
    POD answering each in over 10 s on a loaded bench; each timed-out ask was asked again)."""
    return QUOTE_TIMEOUT_S * max(1.0, nodes / 10)


class Exchange:
    def __init__(
        self,
        cfg: GatewayConfig,
        node: GridNode,
        store: ReadingStore,
        book: CreditBook,
        credit_meter: Callable[[], bytes | None],
        sales: SurplusBook | None = None,
        purchases: PodPurchases | None = None,
        lookup_meter: LookupMeter | None = None,
    ) -> None:
        self.grid = cfg.grid
        self.node = node
        self.store = store
        self.book = book
        self.credit_meter = credit_meter
        m, topo = self.grid.market, self.grid.topology
        pod_entry = topo.node(m.forward_to) if m.forward_to else None
        self.pod_name = m.forward_to
        self.pod_id = bytes.fromhex(pod_entry.node_id) if pod_entry else None
        self.is_pod = m.role == "pod"
        flat = m.surplus_wh_per_hour if m.strategy == "producer" else m.need_wh_per_hour
        self.forecast = ForecastSource(m.forecast_file, flat, m.settle_period_s)
        self.offers = OfferDesk(node.node_id, self.grid.node.name, m, self.pod_id, self.is_pod,
                                self.forecast.wh)  # fmt: skip
        self.pod_desk = (
            pod.PodDesk(self.grid.node.name, m, self._make_receipt) if self.is_pod else None
        )
        self.producer = (
            Producer(self.grid.node.name, m, node, self._offer_receipt, self.forecast.wh)
            if m.strategy == "producer"
            else None
        )
        self._quotes: dict[bytes, asyncio.Future[er.EnergyQuote]] = {}
        self._pod_dialled = -POD_REDIAL_S
        self._tasks: set[asyncio.Task[Any]] = set()
        node.on_offer = self.on_offer
        node.on_energy_request = self.on_energy_request
        node.on_energy_quote = self.on_energy_quote
        self.seller: SurplusSeller | None = None
        self.buyer: SurplusBuyer | None = None
        if self.is_pod and purchases is not None and lookup_meter is not None:
            self.buyer = SurplusBuyer(m, node, purchases, lookup_meter, self._spawn)
            node.on_surplus_claim = self.buyer.on_claim
        elif sales is not None and m.surplus_price_msat_per_kwh and self.pod_id is not None:
            self.seller = SurplusSeller(self.grid.node.name, m, node, store, sales, credit_meter,
                                        self.pod_id)  # fmt: skip
            node.on_surplus_answer = self.seller.on_answer

    def routes(self) -> dict[str, Any]:
        return {"POST /offer": self.api_offer, "GET /offers": self.api_offers,
                "POST /buy": self.api_buy}  # fmt: skip

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- offers ----------------------------------------------------------------------------------

    def on_offer(self, sender: bytes, offer: ReceiptOffer) -> None:
        d = self.offers.receive(offer, sender, list(self.node.peers), clock.now())
        short = offer.payment_hash.hex()[:16]
        if d.action == "pay":
            log.info("offered receipt %s: paying it", short)
            self._spawn(self._pay_offer(offer), "pay-offer")
        elif d.action == "forward" and d.offer is not None:
            log.info("offered receipt %s: forwarded to %d peers", short,
                     self.node.send_offer(d.offer, d.to))  # fmt: skip
        else:
            log.debug("offered receipt %s dropped: %s", short, d.reason)

    async def _pay_offer(self, offer: ReceiptOffer) -> None:
        try:
            result = await self.node.pay_invoice(offer.invoice, 30, memo_json=offer.memo)
            ok = result.get("status") == "succeeded"
        except LnError as exc:
            log.warning("paying offered receipt %s: %s", offer.payment_hash.hex()[:16], exc)
            ok = False
        if not ok:
            self.offers.unpaid(offer)

    def offer_own(self, text: str, memo: str | None) -> dict[str, Any]:
        """Offer one of our receipts to every connected neighbour."""
        inv = bolt11.decode(text, description=memo)
        if inv.payee != self.node.node_id:
            raise LnError("only this node's own receipts can be offered from here")
        if inv.is_expired(int(clock.now())):
            raise LnError("the receipt has expired")
        hops = self.grid.market.offer_hops
        offer = ReceiptOffer(inv.payment_hash, hops, (self.node.node_id,), text, memo)
        self.offers.seen[inv.payment_hash] = inv.expires_at  # it may come back: not ours to buy
        sent = self.node.send_offer(offer, list(self.node.peers))
        return {"payment_hash": inv.payment_hash.hex(), "offered_to": sent}

    async def api_offer(self, body: dict[str, Any]) -> Any:
        """POST /offer {invoice, memo?}: offer one of our receipts to our channel neighbours."""
        return self.offer_own(str(body["invoice"]), body.get("memo"))

    def _offer_receipt(self, rec: Receipt) -> int:
        by_hash = bolt11.decode(rec.invoice).description is None
        return int(self.offer_own(rec.invoice, rec.memo_json if by_hash else None)["offered_to"])

    async def producer_loop(self) -> None:
        """Issue receipts from the forecast and offer them (strategy = producer)."""
        assert self.producer is not None
        while True:
            try:
                self.producer.plan_once(int(clock.now()))
            except (LnError, ValueError) as exc:
                log.warning("producer: %s", exc)
            except Exception:
                log.exception("producer round failed")
            await asyncio.sleep(self.grid.market.plan_every_s)

    async def api_offers(self, _: dict[str, Any]) -> Any:
        out: dict[str, Any] = {"counts": dict(self.offers.counts), "seen": len(self.offers.seen)}
        if self.buyer is not None:  # the POD: its answers to claims, by kind
            out["surplus_claims"] = dict(self.buyer.counts)
        if self.seller is not None:  # a node: its claims, by status
            statuses = [c.status for c in self.seller.book.claims()]
            out["surplus_claims"] = {s: statuses.count(s) for s in set(statuses)}
        return out

    async def surplus_loop(self) -> None:
        """The long side: sell our unsold surplus to the POD, or (the POD) keep its purchases
        up to date (gateway/grid/surplus_link.py)."""
        while True:
            await asyncio.sleep(SETTLE_CHECK_S)
            try:
                now = clock.now()
                if self.seller is not None:
                    self.seller.plan_once(now)
                    self.seller.ask_once(now)
                if self.buyer is not None:
                    self.buyer.reconcile(now)
            except (LnError, ValueError) as exc:
                log.warning("surplus settlement: %s (retrying)", exc)
            except Exception:
                log.exception("surplus settlement failed")

    # --- the POD: requests and quotes --------------------------------------------------------------

    def _make_receipt(self, amount: int, memo: EnergyMemo, expiry: int | None) -> Receipt:
        return self.node.create_invoice(amount, memo, settlement_expiry_s=expiry)

    def on_energy_request(self, sender: bytes, req: er.EnergyRequest) -> None:
        if self.pod_desk is None:
            quote = er.EnergyQuote(req.request_id, "", "not a POD")
        else:
            quote = self.pod_desk.quote(req, clock.now())
            if quote.invoice:
                log.info("POD: %s receipt of %d Wh for %s", "imbalance" if req.kind == 2 else
                         "last-resort", req.wh, sender.hex()[:12])  # fmt: skip
        self.node.send_raw(sender, er.encode_quote(quote))

    def on_energy_quote(self, sender: bytes, quote: er.EnergyQuote) -> None:
        fut = self._quotes.get(quote.request_id)
        if fut is not None and not fut.done() and sender == self.pod_id:
            fut.set_result(quote)

    async def _reach_pod(self) -> None:
        """A node that is not the POD's channel neighbour talks to it over a peer connection of
        its own (requests and quotes only: the receipt is paid over the channels, multi-hop)."""
        entry = self.grid.topology.node(self.pod_name) if self.pod_name else None
        if entry is None or self.pod_id is None or self.pod_id in self.node.peers:
            return
        now = time.monotonic()
        if now - self._pod_dialled < POD_REDIAL_S:
            return
        self._pod_dialled = now
        try:
            await self.node.connect(entry.host, entry.port, self.pod_id)
            log.info("connected to the POD %s for its quotes", self.pod_name)
        except (TimeoutError, OSError, LnError) as exc:
            log.info("POD %s unreachable: %s", self.pod_name, exc)

    async def ask_pod(self, req: er.EnergyRequest) -> str:
        """Send a request to the POD and return its receipt (raises LnError on a refusal)."""
        await self._reach_pod()
        if self.pod_id is None or self.pod_id not in self.node.peers:
            raise LnError("no POD connected (market.forward_to names the POD)")
        fut = asyncio.get_running_loop().create_future()
        self._quotes[req.request_id] = fut
        try:
            self.node.send_raw(self.pod_id, er.encode_request(req))
            quote = await asyncio.wait_for(fut, quote_timeout_s(len(self.grid.topology.nodes)))
        except TimeoutError as exc:
            raise LnError("the POD did not answer") from exc
        finally:
            self._quotes.pop(req.request_id, None)
        problem = pod.check_quote(quote, req, self.pod_id, int(clock.now()))
        if problem:
            raise LnError(f"POD: {problem}")
        return quote.invoice

    async def api_buy(self, body: dict[str, Any]) -> Any:
        """POST /buy {wh, start, end}: last-resort energy from the POD, paid at once."""
        req = er.EnergyRequest(secrets.token_bytes(32), er.KIND_PURCHASE, int(body["start"]),
                               int(body["end"]), int(body["wh"]))  # fmt: skip
        invoice = await self.ask_pod(req)
        return await self.node.pay_invoice(invoice, float(body.get("timeout", 30)))

    async def topup_loop(self) -> None:
        """A prepaid consumer buys from the POD what offers did not cover (gateway/grid/topup.py)."""
        while True:
            await asyncio.sleep(self.grid.market.plan_every_s)
            try:
                await self.topup_once()
            except LnError as exc:
                log.warning("last-resort purchase: %s (retrying)", exc)
            except Exception:
                log.exception("last-resort purchase failed")

    async def topup_once(self) -> bool:
        meter = self.credit_meter()
        if meter is None or self.is_pod or self.pod_id is None:
            return False
        req = topup.topup_request(self.book, self.grid.market, meter, self.node.node_id,
                                  clock.now(), self.forecast.wh)  # fmt: skip
        if req is None:
            return False
        invoice = await self.ask_pod(req)
        result = await self.node.pay_invoice(invoice, 30)
        log.info("bought %d Wh for [%d, %d) from the POD (last resort): %s", req.wh, req.start,
                 req.end, result.get("status"))  # fmt: skip
        return result.get("status") == "succeeded"

    async def settle_loop(self) -> None:
        """Settle this node's imbalance with the POD after each period (see gateway/grid/pod.py)."""
        while True:
            await asyncio.sleep(SETTLE_CHECK_S)
            try:
                await self.settle_once()
            except LnError as exc:
                log.warning("imbalance settlement: %s (retrying)", exc)
            except Exception:
                log.exception("imbalance settlement failed")

    async def settle_once(self) -> bool:
        meter = self.credit_meter()
        if meter is None or self.is_pod or self.pod_id is None:
            return False
        req = pod.debt_request(self.store, self.book, meter, self.node.node_id, self.pod_name,
                               self.grid.market.settle_period_s, clock.now())  # fmt: skip
        if req is None:
            return False
        invoice = await self.ask_pod(req)
        result = await self.node.pay_invoice(invoice, 30)
        log.info("imbalance of %d Wh in [%d, %d) settled with the POD: %s", req.wh, req.start,
                 req.end, result.get("status"))  # fmt: skip
        return result.get("status") == "succeeded"
