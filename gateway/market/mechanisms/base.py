"""The one interface every mechanism implements, and the price-cap step they share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.market.book import Book, Clearing, Order
from gateway.market.mechanisms.matching import bid_key, offer_key


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
