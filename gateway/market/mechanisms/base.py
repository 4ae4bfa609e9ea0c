"""The one interface every mechanism implements, and the price-cap step they share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gateway.market.book import Book, Clearing, Order
from gateway.market.mechanisms.matching import bid_key, greedy, offer_key, unmatched


class Mechanism(Protocol):
    """Clears one slot's book. Pure and deterministic: same book and cap, same Clearing."""

    name: str

    def clear(self, book: Book, cap_msat_per_kwh: int | None = None) -> Clearing: ...


def under_cap(offers: Sequence[Order], cap: int | None) -> tuple[list[Order], list[Order]]:
    """(offers at or below the cap, offers above it). The cap (seed 004: below the grid tariff)
    also caps every buyer price, so no trade is priced above it."""
    if cap is None:
        return list(offers), []
    dear = sorted((o for o in offers if o.price_msat_per_kwh > cap), key=offer_key)
    return [o for o in offers if o.price_msat_per_kwh <= cap], dear


def capped(price: int, cap: int | None) -> int:
    return price if cap is None or price <= cap else cap


def no_trade(name: str, bids: Sequence[Order], offers: Sequence[Order]) -> Clearing:
    """The clearing of a book whose best bid is below its cheapest offer."""
    bids = sorted(bids, key=bid_key)
    offers = sorted(offers, key=offer_key)
    return Clearing(
        name, (), None, tuple((b.id, b.wh) for b in bids), tuple((o.id, o.wh) for o in offers)
    )


def clear_at_bid(
    name: str, book: Book, cap: int | None, offer_order: Callable[[Order], Any], merit: bool
) -> Clearing:
    """Bids from the highest price down, each filled from the offers in `offer_order` whose
    reserve it meets; every pair trades at the buyer's bid (capped). `merit`: the offers are in
    merit order (cheapest first), so a bid stops at the first offer it cannot afford."""
    offers, dear = under_cap(book.offers, cap)
    offers.sort(key=offer_order)
    bids = sorted(book.bids, key=bid_key)
    got = greedy(bids, offers, check_reserve=True, offers_in_merit_order=merit, cap=cap)
    return Clearing(
        name,
        tuple(got.trades),
        None,
        unmatched(bids, got.bids_left),
        unmatched(offers, got.offers_left) + unmatched(dear, [o.wh for o in dear]),
    )
