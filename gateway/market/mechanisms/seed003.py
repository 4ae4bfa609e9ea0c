"""Seed 003's CloseBidding rule: sell offers in order of offer time, buy offers from the highest
price down; each buy offer is filled from the earliest sell offers whose reserve price it meets.

The paper does not say at which price a pair trades. We take the buyer's BidPrice ("the value
they are willing to pay"), capped by the round's cap: buyer and seller see the same amount. A sell
offer without a reserve price has reserve 0. Equal offer times fall back to reliability then id.
"""

from __future__ import annotations

from gateway.market.book import Book, Clearing
from gateway.market.mechanisms.base import under_cap
from gateway.market.mechanisms.matching import bid_key, greedy, offer_time_key, unmatched

NAME = "seed003"


class Seed003:
    name = NAME

    def clear(self, book: Book, cap_msat_per_kwh: int | None = None) -> Clearing:
        cap = cap_msat_per_kwh
        offers, dear = under_cap(book.offers, cap)
        offers.sort(key=offer_time_key)
        bids = sorted(book.bids, key=bid_key)
        got = greedy(bids, offers, check_reserve=True, offers_in_merit_order=False, cap=cap)
        return Clearing(
            NAME,
            tuple(got.trades),
            None,
            unmatched(bids, got.bids_left),
            unmatched(offers, got.offers_left) + unmatched(dear, [o.wh for o in dear]),
        )
