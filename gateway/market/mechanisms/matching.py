"""The shared core of every mechanism: sort keys (the total tie order) and the greedy matcher.

Tie order (docs/market.md §4), a total order because order ids are unique in a book:
  offers in merit order: price ascending, reliability descending, time ascending, id ascending
  bids:                  price descending, reliability descending, time ascending, id ascending
  offers by time (seed 003): time ascending, reliability descending, id ascending
Ids compare as Python str (code point order), never by dict or set iteration.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.market.book import Order, Trade
from gateway.market.units import amount_msat

SortKey = tuple[int, int, int, str]


def offer_key(o: Order) -> SortKey:
    return (o.price_msat_per_kwh, -o.reliability_permille, o.time, o.id)


def bid_key(b: Order) -> SortKey:
    return (-b.price_msat_per_kwh, -b.reliability_permille, b.time, b.id)


def offer_time_key(o: Order) -> tuple[int, int, str]:
    return (o.time, -o.reliability_permille, o.id)


class Matched:
    """What `greedy` returns: the trades and the Wh left on each bid and offer (by position)."""

    __slots__ = ("trades", "bids_left", "offers_left")

    def __init__(self, trades: list[Trade], bids_left: list[int], offers_left: list[int]) -> None:
        self.trades = trades
        self.bids_left = bids_left
        self.offers_left = offers_left


def greedy(
    bids: Sequence[Order],
    offers: Sequence[Order],
    check_reserve: bool,
    offers_in_merit_order: bool,
    fixed: tuple[int, int] | None = None,
    cap: int | None = None,
) -> Matched:
    """Fill each bid in the given order from the offers in the given order, never a self-trade.

    Prices: `fixed` (buyer price, seller price) for every pair, else each pair at the bid's
    price, capped at `cap`. With `check_reserve`, an offer trades only with a bid priced at or
    above it; `bids` must then be in non-increasing price, so an offer too dear for one bid is dead
    for all later ones, and when the offers are in merit order the scan stops at the first
    too-dear offer. Dead and filled offers are jumped over with a path-compressed "next alive"
    array, so the whole match is O((n + m) log m) apart from skipped same-node offers.
    """
    m = len(offers)
    offers_left = [o.wh for o in offers]
    parent = list(range(m + 1))

    def find(j: int) -> int:
        root = j
        while parent[root] != root:
            root = parent[root]
        while parent[j] != root:
            parent[j], j = root, parent[j]
        return root

    trades: list[Trade] = []
    add = trades.append
    bids_left: list[int] = []
    for b in bids:
        need = b.wh
        if fixed is not None:
            buyer_price, seller_price = fixed
        else:
            buyer_price = b.price_msat_per_kwh if cap is None else min(b.price_msat_per_kwh, cap)
            seller_price = buyer_price
        j = find(0)
        while need and j < m:
            o = offers[j]
            if check_reserve and o.price_msat_per_kwh > b.price_msat_per_kwh:
                if offers_in_merit_order:
                    break
                parent[j] = j + 1
                j = find(j + 1)
                continue
            if o.node == b.node:
                j = find(j + 1)
                continue
            have = offers_left[j]
            q = need if need < have else have
            add(
                Trade(
                    b.id,
                    o.id,
                    b.node,
                    o.node,
                    q,
                    buyer_price,
                    amount_msat(q, buyer_price),
                    seller_price,
                    amount_msat(q, seller_price),
                )
            )
            need -= q
            offers_left[j] = have - q
            if q == have:
                parent[j] = j + 1
                j = find(j + 1)
        bids_left.append(need)
    return Matched(trades, bids_left, offers_left)


def crossing(bids: Sequence[Order], offers: Sequence[Order]) -> tuple[int, int, int, int] | None:
    """Walk the merit-ordered demand and supply curves (ignoring who is who) to their crossing.

    Returns (marginal bid index, marginal offer index, index of the first bid with untraded Wh,
    same for offers), or None when the best bid is below the cheapest offer. An index equal to
    the list length means that side has nothing left.
    """
    n, m = len(bids), len(offers)
    if not n or not m or bids[0].price_msat_per_kwh < offers[0].price_msat_per_kwh:
        return None
    i = j = 0
    rb, ro = bids[0].wh, offers[0].wh
    ik = jk = 0
    while i < n and j < m and bids[i].price_msat_per_kwh >= offers[j].price_msat_per_kwh:
        q = rb if rb < ro else ro
        rb -= q
        ro -= q
        ik, jk = i, j
        if not rb:
            i += 1
            rb = bids[i].wh if i < n else 0
        if not ro:
            j += 1
            ro = offers[j].wh if j < m else 0
    return ik, jk, i, j


def unmatched(orders: Sequence[Order], left: Sequence[int]) -> tuple[tuple[str, int], ...]:
    return tuple((o.id, w) for o, w in zip(orders, left, strict=True) if w)
