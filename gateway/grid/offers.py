"""Receipts travelling between nodes: what a node does with an `sg_receipt_offer` (seed 000).

A producer offers its receipt to its channel neighbours. Each receiver checks the offer (a valid
signed receipt with an energy memo, not expired, not seen before, not looping back, within the
sender's rate) and asks its market agent: PAY it whole, or FORWARD it towards the POD
(`market.forward_to`, or every other neighbour when that is not set). The POD is the last resort:
it pays what its strategy accepts and forwards nothing. Bounds:

* loops: the path of visited node ids travels with the offer; a node on it drops the offer;
* duplicates: each payment hash is handled once (remembered until the receipt expires, at most
  SEEN_MAX hashes, oldest forgotten first);
* floods: at most `hops_left` (<= MAX_HOPS) further hops; per sending peer a token bucket of
  RATE offers/s with a burst of BURST; beyond it offers are dropped and counted.

Pure apart from the clock passed in: the runtime does the paying and the sending.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from gateway.config_grid import MarketConfig
from gateway.ln.codec import bolt11
from gateway.ln.codec.receipt_offer import ReceiptOffer
from gateway.ln.errors import LnError
from gateway.market.agent import Action, MarketAgent
from gateway.market.errors import MarketError
from gateway.market.forecast import Forecast, NodeState, Window
from gateway.market.strategies import ConsumerStrategy, PodStrategy, ProducerStrategy, Strategy
from gateway.token_bucket import TokenBuckets

log = logging.getLogger(__name__)

SEEN_MAX = 10_000
RATE = 20.0  # offers per second per peer
BURST = 100.0


def strategy_for(m: MarketConfig) -> Strategy | None:
    """The market strategy of the [market] section; None for `manual` (forward everything)."""
    chosen: object = None
    if m.strategy == "consumer":
        chosen = ConsumerStrategy(m.max_price_msat_per_kwh)
    elif m.strategy == "pod":
        chosen = PodStrategy(m.tariff_msat_per_kwh, m.feed_in_msat_per_kwh)
    elif m.strategy == "producer":
        chosen = ProducerStrategy(m.tariff_msat_per_kwh or m.max_price_msat_per_kwh)
    return cast("Strategy | None", chosen)


@dataclass
class Decision:
    action: str  # "pay", "forward", "drop"
    reason: str = ""
    to: list[bytes] = field(default_factory=list)  # peers to forward to
    offer: ReceiptOffer | None = None  # the offer as forwarded


class OfferDesk:
    def __init__(
        self,
        me: bytes,
        name: str,
        market: MarketConfig,
        forward_to: bytes | None,
        is_pod: bool,
        need_wh: Callable[[int, int], int] | None = None,
    ) -> None:
        self.me = me
        self.market = market
        self.need_wh = need_wh  # (start, end) -> Wh the node expects to buy (its forecast)
        self.forward_to = forward_to
        self.is_pod = is_pod
        strategy = strategy_for(market)
        self.agent = MarketAgent(name, strategy) if strategy is not None else None
        self.state = NodeState(name)
        self.seen: OrderedDict[bytes, int] = OrderedDict()  # payment hash -> expires_at
        self.buckets = TokenBuckets(RATE, BURST)  # per sending peer (its channel neighbours)
        self.counts: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def _remember(self, payment_hash: bytes, expires_at: int, now: float) -> bool:
        """False if already seen. Forgets expired hashes and keeps at most SEEN_MAX."""
        if payment_hash in self.seen:
            return False
        while self.seen and (len(self.seen) >= SEEN_MAX or next(iter(self.seen.values())) < now):
            self.seen.popitem(last=False)
        self.seen[payment_hash] = expires_at
        return True

    def _forecast(self, window: Window) -> Forecast:
        if self.need_wh is not None:
            need = self.need_wh(window.start, window.end)
        else:
            need = int(self.market.need_wh_per_hour * (window.end - window.start) / 3600)
        return Forecast.of(self.state.node, [(window, -need)])

    def receive(self, offer: ReceiptOffer, sender: bytes, neighbours: list[bytes], now: float
                ) -> Decision:  # fmt: skip
        """What to do with an offer that arrived from `sender` (our connected peers: neighbours)."""
        if not self.buckets.allow(sender, now):
            self._count("rate_limited")
            return Decision("drop", "rate_limited")
        if self.me in offer.path:
            self._count("loop")
            return Decision("drop", "loop")
        try:
            inv = bolt11.decode(offer.invoice, description=offer.memo)
            offered = MarketAgent.read(offer.invoice, offer.memo)
        except (LnError, MarketError) as exc:
            self._count("invalid")
            return Decision("drop", f"invalid: {exc}")
        if inv.payment_hash != offer.payment_hash or inv.payee != offer.path[0]:
            self._count("invalid")
            return Decision("drop", "invalid: hash or issuer differs from the receipt's")
        if inv.is_expired(int(now)):
            self._count("expired")
            return Decision("drop", "expired")
        if not self._remember(offer.payment_hash, inv.expires_at, now):
            self._count("duplicate")
            return Decision("drop", "duplicate")
        if self.agent is not None:
            window = Window(offered.start, offered.end)
            action = self.agent.decide(offered, int(now), self._forecast(window), self.state)
            if action == Action.PAY:
                MarketAgent.paid(offered, self.state)
                self._count("pay")
                return Decision("pay")
        if self.is_pod:  # the last resort keeps what it does not buy: it expires here
            self._count("kept")
            return Decision("drop", "not bought by the POD")
        if offer.hops_left <= 0:
            self._count("hops")
            return Decision("drop", "no hops left")
        onward = offer.forwarded_by(self.me)
        if self.forward_to is not None and self.forward_to in neighbours:
            targets = [] if self.forward_to in onward.path else [self.forward_to]
        else:
            targets = [n for n in neighbours if n not in onward.path and n != sender]
        if not targets:
            self._count("nowhere")
            return Decision("drop", "no neighbour to forward to")
        self._count("forward")
        return Decision("forward", to=targets, offer=onward)

    def unpaid(self, offer: ReceiptOffer) -> None:
        """A payment we decided on failed: release the position (the receipt may go elsewhere)."""
        try:
            offered = MarketAgent.read(offer.invoice, offer.memo)
        except (LnError, MarketError):
            return
        self.state.position(Window(offered.start, offered.end)).bought_wh -= offered.wh
