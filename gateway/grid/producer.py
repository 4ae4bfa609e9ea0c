"""A producer node's receipts: issued from its forecast and offered to its neighbours (seed 000).

Every `market.plan_every_s` the market agent plans the receipts for the windows still open
(`market.horizon_s` ahead, `market.settle_period_s` long, at `market.tariff_msat_per_kwh`) from
its forecast (`market.forecast_file`, else a flat `market.surplus_wh_per_hour`), less what is
already sold or still on offer: a forecast revised upwards is sold in the next round (intraday). The
channel node issues each one (it keeps the preimage) and the exchange offers it. A paid receipt
is booked as sold; an expired one is released so the next round replaces it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway.config_grid import MarketConfig
from gateway.grid.node import GridNode
from gateway.grid.offers import strategy_for
from gateway.ln.codec.receipt import EnergyMemo, Receipt
from gateway.market.agent import MarketAgent, MarketParams, ReceiptSpec
from gateway.market.forecast import Forecast, NodeState, windows

log = logging.getLogger("gateway.grid")
MAX_PER_ROUND = 32  # receipts issued per round (the rest follow next round)

Offer = Callable[[Receipt], int]


class Producer:
    def __init__(
        self,
        name: str,
        market: MarketConfig,
        node: GridNode,
        offer: Offer,
        surplus_wh: Callable[[int, int], int] | None = None,
    ) -> None:
        strategy = strategy_for(market)
        assert strategy is not None, "a producer needs strategy = producer"
        params = MarketParams(horizon_s=market.horizon_s, window_s=market.settle_period_s)
        self.agent = MarketAgent(name, strategy, params)
        self.market = market
        self.node = node
        self.offer = offer
        self.surplus_wh = surplus_wh  # (start, end) -> Wh it expects to export (its forecast)
        self.state = NodeState(name)
        self.open: dict[bytes, ReceiptSpec] = {}  # payment hash -> what it sells

    def forecast(self, now: int) -> Forecast:
        w = self.market.settle_period_s
        flat = self.market.surplus_wh_per_hour * w // 3600
        first = now // w * w
        return Forecast.of(
            self.agent.node,
            [
                (x, self.surplus_wh(x.start, x.end) if self.surplus_wh else flat)
                for x in windows(first, self.market.horizon_s // w + 2, w)
            ],
        )

    def _book(self, now: int) -> None:
        for h, spec in list(self.open.items()):
            inv = self.node.switch.invoices.get(h)
            if inv is not None and inv.paid:
                MarketAgent.sold(spec, self.state)
                del self.open[h]
            elif inv is None or (inv.expires_at and inv.expires_at <= now):
                MarketAgent.expired(spec, self.state)
                del self.open[h]

    def plan_once(self, now: int) -> int:
        """Issue and offer this round's receipts; returns how many."""
        self._book(now)
        if not any(self.node.channels_with(p) for p in self.node.peers):
            return 0  # nobody to offer to (yet): receipts made now would only expire
        made = 0
        for spec in self.agent.plan(now, self.forecast(now), self.state)[:MAX_PER_ROUND]:
            memo = EnergyMemo(self.agent.node, spec.window.start, spec.window.end,
                              kwh=spec.wh / 1000)  # fmt: skip
            rec = self.node.create_invoice(spec.amount_msat, memo, now=now)
            MarketAgent.offered(spec, self.state)
            self.open[rec.payment_hash] = spec
            self.offer(rec)
            made += 1
        if made:
            log.info("producer: %d receipts issued and offered", made)
        return made
