"""McAfee's trade reduction (McAfee 1992, "A dominant strategy double auction"): truthful in
price for each order and never runs a deficit.

Merit-ordered bids b_1 >= b_2 >= ... and offers s_1 <= s_2 <= ... are walked to their crossing;
b_k and s_k are the marginal (last trading) bid and offer orders, and b_next / s_next the prices
of the first untraded Wh on each side (the same order if it is only partly filled).

* If both exist and p0 = floor((b_next + s_next) / 2) lies in [s_k, b_k], everyone eligible at p0
  trades at p0 (bids >= p0, offers <= p0): budget balanced, no surplus.
* Otherwise the marginal pair is removed: the bid orders before b_k trade with the offer orders
  before s_k; buyers pay b_k, sellers receive s_k. The difference, floor(wh*b_k/1000) -
  floor(wh*s_k/1000) per trade, is the market's surplus (`surplus_msat`), paid to the operator.

Orders are whole agents: an order is never split into units when it is removed. With a cap,
buyer prices are capped (offers above the cap were already removed, so s_k <= cap).
"""

from __future__ import annotations

from gateway.market.book import Book, Clearing
from gateway.market.mechanisms.base import capped, no_trade, under_cap
from gateway.market.mechanisms.matching import bid_key, crossing, greedy, offer_key, unmatched
from gateway.market.mechanisms.pay_as_clear import uniform

NAME = "trade-reduction"


class TradeReduction:
    name = NAME

    def clear(self, book: Book, cap_msat_per_kwh: int | None = None) -> Clearing:
        cap = cap_msat_per_kwh
        offers, dear = under_cap(book.offers, cap)
        offers.sort(key=offer_key)
        bids = sorted(book.bids, key=bid_key)
        cross = crossing(bids, offers)
        if cross is None:
            return no_trade(NAME, bids, offers + dear)
        ik, jk, i_next, j_next = cross
        b_k, s_k = bids[ik].price_msat_per_kwh, offers[jk].price_msat_per_kwh
        if i_next < len(bids) and j_next < len(offers):
            p0 = (bids[i_next].price_msat_per_kwh + offers[j_next].price_msat_per_kwh) // 2
            if s_k <= p0 <= b_k:
                return uniform(NAME, bids, offers, dear, capped(p0, cap))
        buyer_price = capped(b_k, cap)
        got = greedy(
            bids[:ik], offers[:jk], False, offers_in_merit_order=True, fixed=(buyer_price, s_k)
        )
        return Clearing(
            NAME,
            tuple(got.trades),
            buyer_price,
            unmatched(bids, got.bids_left + [b.wh for b in bids[ik:]]),
            unmatched(offers, got.offers_left + [o.wh for o in offers[jk:]])
            + unmatched(dear, [o.wh for o in dear]),
        )
