"""A market day: the nodes' agents, slot clearing on three levels with the feeder check, and
settlement per period with reliability updates. What `sgrid sim` drives (pure: the caller brings
the metered energy, read from the reading store by gateway.market.readings).

    day = MarketDay(agents, forecasts, grid, topology=topo, mechanism="pay-as-clear")
    slot = day.clear(window, now)             # SlotClearing: trades (+ loss_wh), feeder figures
    period = day.settle(window, metered, imbalance_price_msat_per_kwh)   # statements
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.market.agent import MarketAgent
from gateway.market.book import Book, Clearing, Order, Trade
from gateway.market.feeder import Feeder, FeederClearing, clear_feasible
from gateway.market.forecast import Forecast, NodeState, Window
from gateway.market.reliability import Reliability
from gateway.market.settlement import Contract, Metered, PeriodSettlement, settle_period
from gateway.market.slots import GridPrices, clear_slot
from gateway.market.topology import Topology


@dataclass(frozen=True)
class SlotClearing:
    window: Window
    book: Book
    trades: tuple[Trade, ...]
    loss_wh: tuple[int, ...]  # aligned with trades
    feeder: FeederClearing | None

    def contracts(self) -> list[Contract]:
        return [
            Contract(t.seller, t.buyer, t.wh, t.amount_msat, t.seller_amount_msat, loss)
            for t, loss in zip(self.trades, self.loss_wh, strict=True)
        ]


class MarketDay:
    def __init__(
        self,
        agents: list[MarketAgent],
        forecasts: Mapping[str, Forecast],
        grid: GridPrices,
        topology: Topology | None = None,
        mechanism: str = "pay-as-clear",
        cap_msat_per_kwh: int | None = None,
        feeder: Feeder | None = None,
    ) -> None:
        self.agents = sorted(agents, key=lambda a: a.node)
        self.forecasts = dict(forecasts)
        self.grid = grid
        self.topology = topology
        self.mechanism = mechanism
        self.cap = cap_msat_per_kwh
        self.feeder = feeder if feeder is not None or topology is None else Feeder(topology)
        self.reliability = Reliability()
        self.states = {a.node: NodeState(a.node) for a in self.agents}
        self.cleared: dict[Window, SlotClearing] = {}

    def book(self, window: Window, now: int) -> Book:
        offers: list[Order] = []
        bids: list[Order] = []
        for agent in self.agents:
            forecast = self.forecasts.get(agent.node, Forecast(agent.node, ()))
            o, b = agent.orders(window, now, forecast, self.states[agent.node])
            score = self.reliability.score(agent.node)
            offers += [_scored(x, score) for x in o]
            bids += [_scored(x, score) for x in b]
        return Book(window.start, window.end, tuple(offers), tuple(bids))

    def clear_levels(self, book: Book) -> Clearing:
        """The three-level clearing of one book (no feeder check)."""
        topo = self.topology
        return clear_slot(
            book,
            topo.microgrid_of if topo is not None else (lambda n: None),
            self.grid,
            self.mechanism,
            self.cap,
        ).as_clearing()

    def clear(self, window: Window, now: int) -> SlotClearing:
        """Clear one slot: orders from every agent, three levels, feeder check, curtailment."""
        book = self.book(window, now)
        checked = None
        if self.feeder is not None:
            checked = clear_feasible(self.feeder, book, clear=self.clear_levels)
            trades, losses = checked.clearing.trades, checked.trade_loss_wh
        else:
            trades = self.clear_levels(book).trades
            losses = (0,) * len(trades)
        for t in trades:  # book the positions: paid receipts oblige both sides
            if t.seller in self.states:
                self.states[t.seller].position(window).sold_wh += t.wh
            if t.buyer in self.states:
                self.states[t.buyer].position(window).bought_wh += t.wh
        result = SlotClearing(window, book, trades, losses, checked)
        self.cleared[window] = result
        return result

    def settle(
        self, window: Window, metered: Mapping[str, Metered], imbalance_price_msat_per_kwh: int
    ) -> PeriodSettlement:
        """Settle a cleared window against metered energy; update reliability scores."""
        slot = self.cleared.get(window)
        contracts = slot.contracts() if slot is not None else []
        period = settle_period(
            window.start,
            window.end,
            contracts,
            metered,
            imbalance_price_msat_per_kwh,
            self.grid.pod,
        )
        for node in sorted(metered):
            if node in self.forecasts:
                self.reliability.record(
                    node, self.forecasts[node].net_wh(window), metered[node].net_wh
                )
        return period


def _scored(order: Order, score: int) -> Order:
    return Order(order.id, order.node, order.wh, order.price_msat_per_kwh, order.time, score)
