import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.market import mechanisms
from gateway.market.book import Book, Order, loads_book, parse_book
from gateway.market.mechanisms.matching import offer_key
from gateway.market.units import amount_msat, split
from hil_tests.gateway.market.strategies_hyp import books

CAPS = st.none() | st.integers(0, 300_000)


def _shuffled(book: Book, seed: int) -> Book:
    import random

    r = random.Random(seed)
    offers, bids = list(book.offers), list(book.bids)
    r.shuffle(offers)
    r.shuffle(bids)
    return Book(book.start, book.end, tuple(offers), tuple(bids))


@pytest.mark.parametrize("name", mechanisms.NAMES)
@settings(max_examples=150, deadline=None)
@given(book=books(), cap=CAPS)
def test_mechanism_properties(name, book, cap):
    result = mechanisms.clear(book, name, cap)
    offers = {o.id: o for o in book.offers}
    bids = {b.id: b for b in book.bids}
    sold = dict.fromkeys(offers, 0)
    bought = dict.fromkeys(bids, 0)
    for t in result.trades:
        b, o = bids[t.bid], offers[t.offer]
        assert t.wh > 0
        assert b.node != o.node, "self-trade"
        assert (t.buyer, t.seller) == (b.node, o.node)
        assert t.price_msat_per_kwh <= b.price_msat_per_kwh, "buyer pays above its bid"
        assert t.seller_price_msat_per_kwh >= o.price_msat_per_kwh, "seller below its reserve"
        if cap is not None:
            assert t.price_msat_per_kwh <= cap and o.price_msat_per_kwh <= cap
        assert t.amount_msat == amount_msat(t.wh, t.price_msat_per_kwh)
        assert t.seller_amount_msat == amount_msat(t.wh, t.seller_price_msat_per_kwh)
        assert t.amount_msat >= t.seller_amount_msat, "money created"
        if name != "trade-reduction":
            assert t.amount_msat == t.seller_amount_msat, "money in != money out"
        sold[o.id] += t.wh
        bought[b.id] += t.wh
    assert all(sold[i] <= offers[i].wh for i in offers), "trade larger than the offer"
    assert all(bought[i] <= bids[i].wh for i in bids), "trade larger than the bid"
    assert sum(sold.values()) == sum(bought.values())
    assert result.surplus_msat == sum(t.amount_msat - t.seller_amount_msat for t in result.trades)
    assert dict(result.unmatched_offers) == {
        i: offers[i].wh - sold[i] for i in offers if offers[i].wh - sold[i]
    }
    assert dict(result.unmatched_bids) == {
        i: bids[i].wh - bought[i] for i in bids if bids[i].wh - bought[i]
    }
    if result.clearing_price_msat_per_kwh is not None and name == "pay-as-clear":
        assert {t.price_msat_per_kwh for t in result.trades} <= {result.clearing_price_msat_per_kwh}


@pytest.mark.parametrize("name", mechanisms.NAMES)
@settings(max_examples=100, deadline=None)
@given(book=books(), cap=CAPS, seed=st.integers(0, 2**32))
def test_output_is_bit_identical_for_the_same_book_in_any_input_order(name, book, cap, seed):
    first = mechanisms.clear(book, name, cap).dumps()
    assert mechanisms.clear(book, name, cap).dumps() == first
    assert mechanisms.clear(_shuffled(book, seed), name, cap).dumps() == first
    again = loads_book(json.dumps(book.to_json()))
    assert mechanisms.clear(again, name, cap).dumps() == first


@settings(max_examples=200, deadline=None)
@given(book=books())
def test_pay_as_clear_trades_whenever_the_curves_cross_between_different_nodes(book):
    result = mechanisms.clear(book, "pay-as-clear")
    best_bid = max((b.price_msat_per_kwh for b in book.bids), default=-1)
    cheapest = min((o.price_msat_per_kwh for o in book.offers), default=10**12)
    if best_bid < cheapest:
        assert not result.trades and result.clearing_price_msat_per_kwh is None


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(-(10**12), 10**12),
    weights=st.lists(st.integers(0, 10**6), min_size=1, max_size=20),
)
def test_split_parts_sum_to_the_total(total, weights):
    parts = split(total, weights)
    assert sum(parts) == total and len(parts) == len(weights)
    if sum(weights) and total >= 0:
        for p, w in zip(parts, weights, strict=True):
            assert abs(p * sum(weights) - total * w) < sum(weights)


def _o(i, node, wh, price, time=0):
    return Order(i, node, wh, price, time)


def test_trade_reduction_removes_the_marginal_pair_and_keeps_the_surplus():
    # McAfee's textbook case: bids 10, 8, 6; asks 2, 4, 9 (1 kWh each): k = 2 trade at the
    # crossing; p0 = (6 + 9) / 2 = 7.5 is in [4, 8], so both pairs trade at 7.5.
    kwh = 1000
    book = Book(
        0,
        900,
        (_o("s1", "x", kwh, 2000), _o("s2", "y", kwh, 4000), _o("s3", "z", kwh, 9000)),
        (_o("b1", "p", kwh, 10000), _o("b2", "q", kwh, 8000), _o("b3", "r", kwh, 6000)),
    )
    r = mechanisms.clear(book, "trade-reduction")
    assert [(t.bid, t.offer, t.price_msat_per_kwh) for t in r.trades] == [
        ("b1", "s1", 7500),
        ("b2", "s2", 7500),
    ]
    assert r.surplus_msat == 0
    # Make p0 fall outside [s_k, b_k]: the third ask at 20 gives p0 = 13 > b_k = 8 -> reduce.
    book2 = Book(0, 900, book.offers[:2] + (_o("s3", "z", kwh, 20000),), book.bids)
    r2 = mechanisms.clear(book2, "trade-reduction")
    assert [
        (t.bid, t.offer, t.price_msat_per_kwh, t.seller_price_msat_per_kwh) for t in r2.trades
    ] == [("b1", "s1", 8000, 4000)]
    assert r2.surplus_msat == 4000


def test_a_book_with_a_float_is_refused_naming_the_field():
    raw = {
        "slot": {"start": 1, "end": 2},
        "offers": [],
        "bids": [{"id": "b", "node": "n", "wh": 1.5, "price_msat_per_kwh": 1, "time": 0}],
    }
    with pytest.raises(Exception, match=r"bids\[0\]\.wh"):
        parse_book(raw)


@pytest.mark.parametrize("name", ["seed003", "pay-as-bid", "pay-as-clear"])
def test_equal_price_offers_go_to_the_more_reliable_seller_first(name):
    # (trade reduction removes the marginal pair of a one-bid book; its order is offer_key too)
    offers = (
        Order("o-late", "x", 500, 100_000, 5, reliability_permille=900),
        Order("o-early", "y", 500, 100_000, 1, reliability_permille=300),
    )
    book = Book(0, 900, offers, (Order("b", "z", 500, 200_000, 0),))
    assert [t.offer for t in mechanisms.clear(book, name).trades] == (
        ["o-early"] if name == "seed003" else ["o-late"]  # seed 003 orders offers by time
    )
    assert sorted(offers, key=offer_key)[0].id == "o-late"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
ORDER_KEYS = st.sampled_from(
    ["id", "node", "wh", "price_msat_per_kwh", "time", "reliability_permille"]
)


@settings(max_examples=300, deadline=None)
@given(
    junk=JSON,
    order=st.dictionaries(ORDER_KEYS, JSON | st.integers(-5, 5) | st.text(min_size=1, max_size=3)),
)
def test_any_json_is_a_book_or_a_book_error_naming_a_field(junk, order):
    from gateway.market.errors import BookError

    for value in (junk, {"slot": {"start": 0, "end": 9}, "offers": [order], "bids": [junk]}):
        try:
            parse_book(value)
        except BookError as exc:
            assert exc.field and str(exc).startswith(exc.field)


def _naive(book, offer_order, cap):
    """The seed-003 / pay-as-bid rule written the plain O(n*m) way, as the paper describes it."""
    from gateway.market.mechanisms.matching import bid_key

    offers = sorted(
        (o for o in book.offers if cap is None or o.price_msat_per_kwh <= cap), key=offer_order
    )
    left = [o.wh for o in offers]
    out = []
    for b in sorted(book.bids, key=bid_key):
        need = b.wh
        for j, o in enumerate(offers):
            if (
                need
                and left[j]
                and o.node != b.node
                and o.price_msat_per_kwh <= b.price_msat_per_kwh
            ):
                q = min(need, left[j])
                p = b.price_msat_per_kwh if cap is None else min(cap, b.price_msat_per_kwh)
                out.append((b.id, o.id, q, p))
                need -= q
                left[j] -= q
    return out


@settings(max_examples=200, deadline=None)
@given(book=books(), cap=CAPS)
def test_seed003_and_pay_as_bid_match_the_plain_rule(book, cap):
    from gateway.market.mechanisms.matching import offer_key, offer_time_key

    for name, key in (("seed003", offer_time_key), ("pay-as-bid", offer_key)):
        got = [
            (t.bid, t.offer, t.wh, t.price_msat_per_kwh)
            for t in mechanisms.clear(book, name, cap).trades
        ]
        assert got == _naive(book, key, cap), name
