"""Pay-as-bid (discriminatory): bids from the highest price down meet offers in merit order
(cheapest first); every pair trades at the buyer's own bid (capped), which the seller receives.

Buyers pay exactly what they bid; sellers get at least their reserve. No surplus.
"""

from __future__ import annotations

from gateway.market.book import Book, Clearing
from gateway.market.mechanisms.base import under_cap
from gateway.market.mechanisms.matching import bid_key, greedy, offer_key, unmatched

NAME = "pay-as-bid"


class PayAsBid:
    name = NAME

    def clear(self, book: Book, cap_msat_per_kwh: int | None = None) -> Clearing:
        cap = cap_msat_per_kwh
        offers, dear = under_cap(book.offers, cap)
        offers.sort(key=offer_key)
        bids = sorted(book.bids, key=bid_key)
        got = greedy(bids, offers, check_reserve=True, offers_in_merit_order=True, cap=cap)
        return Clearing(
            NAME,
            tuple(got.trades),
            None,
            unmatched(bids, got.bids_left),
            unmatched(offers, got.offers_left) + unmatched(dear, [o.wh for o in dear]),
        )
