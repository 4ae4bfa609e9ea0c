"""Seed 003's CloseBidding rule: sell offers in order of offer time, buy offers from the highest
price down; each buy offer is filled from the earliest sell offers whose reserve price it meets.

The paper does not say at which price a pair trades. We take the buyer's BidPrice ("the value
they are willing to pay"), capped by the round's cap: buyer and seller see the same amount. A sell
offer without a reserve price has reserve 0. Equal offer times fall back to reliability then id.
"""

from __future__ import annotations

from gateway.market.book import Book, Clearing
from gateway.market.mechanisms.base import clear_at_bid
from gateway.market.mechanisms.matching import offer_time_key

NAME = "seed003"


class Seed003:
    name = NAME

    def clear(self, book: Book, cap_msat_per_kwh: int | None = None) -> Clearing:
        return clear_at_bid(NAME, book, cap_msat_per_kwh, offer_time_key, merit=False)
