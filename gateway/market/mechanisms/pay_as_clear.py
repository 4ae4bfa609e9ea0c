"""Uniform price (pay-as-clear): one price for the whole slot.

1. Walk the merit-ordered demand (bids, highest first) and supply (offers, cheapest first)
   curves to their crossing; the marginal bid b_k and offer s_k are the last ones that trade.
2. The clearing price is p = floor((b_k + s_k) / 2), capped.
3. Every bid priced >= p and every offer priced <= p is eligible; they are matched in tie order
   (bids from the highest, offers from the cheapest), never a self-trade. The long side is
   rationed by the tie order. Everyone trades at p: money in = money out.
"""

from __future__ import annotations

from gateway.market.book import Book, Clearing, Order
from gateway.market.mechanisms.base import capped, no_trade, under_cap
from gateway.market.mechanisms.matching import bid_key, crossing, greedy, offer_key, unmatched

NAME = "pay-as-clear"


def uniform(
    name: str, bids: list[Order], offers: list[Order], dear: list[Order], price: int
) -> Clearing:
    """Match every bid >= price with every offer <= price, all at `price`."""
    nb = next((i for i, b in enumerate(bids) if b.price_msat_per_kwh < price), len(bids))
    no = next((j for j, o in enumerate(offers) if o.price_msat_per_kwh > price), len(offers))
    got = greedy(bids[:nb], offers[:no], False, offers_in_merit_order=True, fixed=(price, price))
    return Clearing(
        name,
        tuple(got.trades),
        price,
        unmatched(bids, got.bids_left + [b.wh for b in bids[nb:]]),
        unmatched(offers, got.offers_left + [o.wh for o in offers[no:]])
        + unmatched(dear, [o.wh for o in dear]),
    )


class PayAsClear:
    name = NAME

    def clear(self, book: Book, cap_msat_per_kwh: int | None = None) -> Clearing:
        offers, dear = under_cap(book.offers, cap_msat_per_kwh)
        offers.sort(key=offer_key)
        bids = sorted(book.bids, key=bid_key)
        cross = crossing(bids, offers)
        if cross is None:
            return no_trade(NAME, bids, offers + dear)
        ik, jk, _, _ = cross
        p = (bids[ik].price_msat_per_kwh + offers[jk].price_msat_per_kwh) // 2
        return uniform(NAME, bids, offers, dear, capped(p, cap_msat_per_kwh))
