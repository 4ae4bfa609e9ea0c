"""Seller coalition (seed 004): the round's sellers pool their energy and share the revenue.

1. The pooled energy is sold to the bids by the uniform-price rule (pay-as-clear with the cap:
   the microgrid price, below the main-grid tariff), so every buyer pays one price p <= cap;
   the members are the offers p pays at least their reserve (price <= p).
2. Each member's delivery obligation is the pooled Wh sold split in proportion to its offered Wh;
   the revenue (what the buyers paid) is split in proportion to the obligations (units.split). At
   settlement the same split can be re-run on the delivered (metered) Wh (`share`).
3. Unmatched demand falls back to the grid: the POD sells it at its tariff (`grid_fills`).
Money: sum of buyer payments == sum of member shares; grid fills are paid to the POD.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.market import mechanisms
from gateway.market.book import Book, Clearing
from gateway.market.units import amount_msat, split


@dataclass(frozen=True)
class Share:
    node: str
    offered_wh: int
    obligation_wh: int
    revenue_msat: int


@dataclass(frozen=True)
class CoalitionResult:
    price_msat_per_kwh: int | None
    sales: Clearing  # buyers' fills (the offers are the members' pooled energy)
    shares: tuple[Share, ...]  # by node id
    grid_fills: tuple[tuple[str, str, int, int], ...]  # (bid id, buyer, Wh, msat at the tariff)

    @property
    def revenue_msat(self) -> int:
        return sum(t.amount_msat for t in self.sales.trades)


def share(revenue_msat: int, contributions: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Split revenue over (node, Wh) contributions in proportion; nodes in id order."""
    ordered = sorted(contributions)
    return list(
        zip(
            [n for n, _ in ordered],
            split(revenue_msat, [wh for _, wh in ordered]),
            strict=True,
        )
    )


def clear_coalition(book: Book, cap_msat_per_kwh: int, tariff_msat_per_kwh: int) -> CoalitionResult:
    if cap_msat_per_kwh >= tariff_msat_per_kwh:
        raise ValueError("the coalition's price cap must be below the grid tariff")
    sales = mechanisms.clear(book, "pay-as-clear", cap_msat_per_kwh)
    price = sales.clearing_price_msat_per_kwh
    members: dict[str, int] = {}  # only offers the uniform price pays at least their reserve
    for o in book.offers:
        if price is not None and o.price_msat_per_kwh <= price:
            members[o.node] = members.get(o.node, 0) + o.wh
    nodes = sorted(members)
    sold = sum(t.wh for t in sales.trades)
    obligations = split(sold, [members[n] for n in nodes])
    revenue = split(sum(t.amount_msat for t in sales.trades), obligations)
    shares = tuple(
        Share(n, members[n], w, r) for n, w, r in zip(nodes, obligations, revenue, strict=True)
    )
    bids = {b.id: b for b in book.bids}
    grid = tuple(
        (bid_id, bids[bid_id].node, wh, amount_msat(wh, tariff_msat_per_kwh))
        for bid_id, wh in sales.unmatched_bids
    )
    return CoalitionResult(sales.clearing_price_msat_per_kwh, sales, shares, grid)
