from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.market.book import Book, Order
from gateway.market.coalition import clear_coalition, share
from gateway.market.slots import GridPrices, clear_slot
from hil_tests.gateway.market.strategies_hyp import books

GRID = GridPrices("pod", 250_000, 50_000)
MICROGRID = {"a": "mg-1", "b": "mg-1", "c": "mg-2", "d": "mg-2"}  # e: no microgrid (DSO level)


@settings(max_examples=150, deadline=None)
@given(book=books(), cap=st.integers(0, 249_999))
def test_coalition_shares_all_revenue_in_proportion_and_stays_under_the_cap(book, cap):
    r = clear_coalition(book, cap, 250_000)
    assert r.revenue_msat == sum(s.revenue_msat for s in r.shares)
    assert sum(s.obligation_wh for s in r.shares) == sum(t.wh for t in r.sales.trades)
    reserves = {o.node: [] for o in book.offers}
    for o in book.offers:
        reserves[o.node].append(o.price_msat_per_kwh)
    if r.price_msat_per_kwh is not None:
        assert r.price_msat_per_kwh <= cap < 250_000
        for s in r.shares:
            assert min(reserves[s.node]) <= r.price_msat_per_kwh
    total_offered = sum(s.offered_wh for s in r.shares)
    for s in r.shares:
        # proportional to the contribution, up to one unit of rounding
        assert (
            abs(s.obligation_wh * total_offered - sum(t.wh for t in r.sales.trades) * s.offered_wh)
            <= total_offered
        )
    left = dict(r.sales.unmatched_bids)
    assert [(b, wh) for b, _, wh, _ in r.grid_fills] == list(left.items())
    assert all(msat == wh * 250_000 // 1000 for _, _, wh, msat in r.grid_fills)


def test_coalition_hand_example():
    offers = (Order("o1", "a", 3000, 80_000, 0), Order("o2", "b", 1000, 90_000, 0))
    bids = (Order("b1", "h", 2000, 200_000, 0), Order("b2", "k", 3000, 120_000, 0))
    r = clear_coalition(Book(0, 900, offers, bids), 150_000, 250_000)
    # crossing: all 4000 Wh sell; marginal bid 120 000, marginal offer 90 000 -> p = 105 000
    assert r.price_msat_per_kwh == 105_000 and r.revenue_msat == 420_000
    assert [(s.node, s.obligation_wh, s.revenue_msat) for s in r.shares] == [
        ("a", 3000, 315_000),
        ("b", 1000, 105_000),
    ]
    assert r.grid_fills == (("b2", "k", 1000, 250_000),)
    assert share(10, [("y", 1), ("x", 2)]) == [("x", 7), ("y", 3)]


@settings(max_examples=150, deadline=None)
@given(book=books())
def test_three_levels_keep_every_order_within_its_size_and_send_the_rest_to_the_grid(book):
    r = clear_slot(book, MICROGRID.get, GRID, "pay-as-clear")
    sold: dict[str, int] = {}
    bought: dict[str, int] = {}
    for level, t in r.trades():
        if level == "microgrid":
            assert MICROGRID.get(t.buyer) == MICROGRID.get(t.seller) is not None
        if level == "grid":
            assert "pod" in (t.buyer, t.seller)
            assert t.price_msat_per_kwh in (GRID.tariff_msat_per_kwh, GRID.feed_in_msat_per_kwh)
        assert t.buyer != t.seller and t.amount_msat == t.seller_amount_msat
        sold[t.offer] = sold.get(t.offer, 0) + t.wh
        bought[t.bid] = bought.get(t.bid, 0) + t.wh
    for o in book.offers:
        assert sold.get(o.id, 0) + dict(r.unsold).get(o.id, 0) == o.wh
    for b in book.bids:
        assert bought.get(b.id, 0) == b.wh  # unmatched demand falls back to the grid
    assert (
        r.as_clearing().to_json()
        == clear_slot(book, MICROGRID.get, GRID, "pay-as-clear").as_clearing().to_json()
    )


def test_local_trades_come_first():
    offers = (Order("o1", "a", 500, 100_000, 0), Order("o2", "c", 500, 90_000, 0))
    bids = (Order("b1", "b", 800, 150_000, 0),)
    r = clear_slot(Book(0, 900, offers, bids), MICROGRID.get, GRID)
    assert [(lv, t.offer, t.wh) for lv, t in r.trades()] == [
        ("microgrid", "o1", 500),
        ("dso", "o2", 300),
    ]
    assert r.unsold == (("o2", 200),)
