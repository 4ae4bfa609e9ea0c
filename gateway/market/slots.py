"""15-minute slots on three levels (seed 002): inside each microgrid, between microgrids through
the DSO-level node, and with the main grid through the POD (pure).

1. **Microgrid**: each microgrid's orders (by `microgrid_of(node)`) are cleared on their own.
2. **DSO**: what is left of every order goes into one book cleared across microgrids; its trades
   are routed through the DSO node (seed 000: multi-hop receipts via DSO-level nodes).
3. **Grid**: what is still left trades with the POD: remaining demand buys at the tariff
   (the grid is the last-resort source), remaining supply whose reserve is at or below the
   feed-in price sells at the feed-in price; the rest stays unsold.
Microgrids are cleared in id order; every level uses the same mechanism and cap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.market import mechanisms
from gateway.market.book import Book, Clearing, Order, Trade
from gateway.market.units import amount_msat

LEVEL_MICROGRID = "microgrid"
LEVEL_DSO = "dso"
LEVEL_GRID = "grid"


@dataclass(frozen=True)
class GridPrices:
    pod: str
    tariff_msat_per_kwh: int
    feed_in_msat_per_kwh: int


@dataclass(frozen=True)
class SlotResult:
    start: int
    end: int
    microgrids: tuple[tuple[str, Clearing], ...]  # by microgrid id
    dso: Clearing
    grid: tuple[Trade, ...]
    unsold: tuple[tuple[str, int], ...]  # offers left after the grid level

    def as_clearing(self, name: str = "three-level") -> Clearing:
        """All levels' trades as one Clearing (the feeder check sees every flow)."""
        return Clearing(name, tuple(t for _, t in self.trades()), None, (), self.unsold)

    def trades(self) -> list[tuple[str, Trade]]:
        """(level, trade) of every level, in level order."""
        out = [(LEVEL_MICROGRID, t) for _, c in self.microgrids for t in c.trades]
        out += [(LEVEL_DSO, t) for t in self.dso.trades]
        out += [(LEVEL_GRID, t) for t in self.grid]
        return out


def _left(orders: tuple[Order, ...], left: dict[str, int]) -> tuple[Order, ...]:
    out = []
    for o in orders:
        wh = left.get(o.id, 0)
        if wh:
            out.append(
                o
                if wh == o.wh
                else Order(o.id, o.node, wh, o.price_msat_per_kwh, o.time, o.reliability_permille)
            )
    return tuple(out)


def clear_slot(
    book: Book,
    microgrid_of: Callable[[str], str | None],
    grid: GridPrices,
    mechanism: str = "pay-as-clear",
    cap_msat_per_kwh: int | None = None,
) -> SlotResult:
    """Clear one slot on the three levels; nodes without a microgrid go straight to the DSO."""
    groups: dict[str, tuple[list[Order], list[Order]]] = {}
    for side, orders in ((0, book.offers), (1, book.bids)):
        for o in orders:
            mg = microgrid_of(o.node)
            if mg is not None:
                groups.setdefault(mg, ([], []))[side].append(o)
    left_offers = {o.id: o.wh for o in book.offers}
    left_bids = {b.id: b.wh for b in book.bids}
    local = []
    for mg in sorted(groups):
        offers, bids = groups[mg]
        c = mechanisms.clear(
            Book(book.start, book.end, tuple(offers), tuple(bids)), mechanism, cap_msat_per_kwh
        )
        for t in c.trades:
            left_offers[t.offer] -= t.wh
            left_bids[t.bid] -= t.wh
        local.append((mg, c))
    rest = Book(book.start, book.end, _left(book.offers, left_offers), _left(book.bids, left_bids))
    dso = mechanisms.clear(rest, mechanism, cap_msat_per_kwh)
    for t in dso.trades:
        left_offers[t.offer] -= t.wh
        left_bids[t.bid] -= t.wh
    grid_trades = []
    by_id = {o.id: o for o in book.offers + book.bids}
    for bid_id, wh in dso.unmatched_bids:
        b = by_id[bid_id]
        if b.node == grid.pod:
            continue
        p = grid.tariff_msat_per_kwh
        grid_trades.append(
            Trade(
                bid_id, "grid", b.node, grid.pod, wh, p, amount_msat(wh, p), p, amount_msat(wh, p)
            )
        )
    unsold = []
    for offer_id, wh in dso.unmatched_offers:
        o = by_id[offer_id]
        p = grid.feed_in_msat_per_kwh
        if o.node != grid.pod and o.price_msat_per_kwh <= p:
            grid_trades.append(
                Trade(
                    "grid",
                    offer_id,
                    grid.pod,
                    o.node,
                    wh,
                    p,
                    amount_msat(wh, p),
                    p,
                    amount_msat(wh, p),
                )
            )
        else:
            unsold.append((offer_id, wh))
    return SlotResult(book.start, book.end, tuple(local), dso, tuple(grid_trades), tuple(unsold))
