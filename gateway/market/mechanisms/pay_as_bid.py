"""Pay-as-bid (discriminatory): bids from the highest price down meet offers in merit order
(cheapest first); every pair trades at the buyer's own bid (capped), which the seller receives.

Buyers pay exactly what they bid; sellers get at least their reserve. No surplus.
"""

from __future__ import annotations

from gateway.market.book import Book, Clearing
from gateway.market.mechanisms.base import clear_at_bid
from gateway.market.mechanisms.matching import offer_key

NAME = "pay-as-bid"


class PayAsBid:
    name = NAME

    def clear(self, book: Book, cap_msat_per_kwh: int | None = None) -> Clearing:
        return clear_at_bid(NAME, book, cap_msat_per_kwh, offer_key, merit=True)
