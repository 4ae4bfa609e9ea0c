import hashlib

import pytest

from gateway.ln.codec import bolt11
from gateway.market import mechanisms
from gateway.market.agent import Action, MarketAgent, MarketParams
from gateway.market.book import Book, loads_book
from gateway.market.errors import MarketError
from gateway.market.forecast import Forecast, NodeState, windows
from gateway.market.strategies import (
    BatteryStrategy,
    ConsumerStrategy,
    PodStrategy,
    ProducerStrategy,
)

T0 = 1767225600
SLOTS = windows(T0, 4)
HOURS = windows(T0, 24, 3600)
PV_KEY = bytes([7] * 32)
NOW = T0 - 3600


def _hash(i: int) -> bytes:
    return hashlib.sha256(bytes([i])).digest()


def test_a_producer_issues_signed_receipts_for_its_surplus_that_expire_at_gate_closure():
    pv = MarketAgent(
        "pv-1", ProducerStrategy(120_000, lot_wh=500), MarketParams(gate_closure_s=300)
    )
    forecast = Forecast.of("pv-1", [(w, 1100) for w in SLOTS])
    state = NodeState("pv-1")
    specs = pv.plan(NOW, forecast, state)
    assert [(s.window, s.wh) for s in specs[:3]] == [
        (SLOTS[0], 500),
        (SLOTS[0], 500),
        (SLOTS[0], 100),
    ]
    assert len(specs) == 12 and all(s.amount_msat == s.wh * 120 for s in specs)
    receipt = pv.issue(specs[0], PV_KEY, _hash(0), NOW)
    inv = bolt11.decode(receipt.invoice)
    assert inv.amount_msat == 60_000 and inv.expires_at == SLOTS[0].start - 300
    offered = MarketAgent.read(receipt.invoice)
    assert (offered.issuer, offered.wh, offered.amount_msat, offered.start) == (
        "pv-1",
        500,
        60_000,
        T0,
    )
    # once offered, the same energy is not offered twice; an expired receipt frees it again
    for s in specs:
        pv.offered(s, state)
    assert pv.plan(NOW, forecast, state) == []
    pv.expired(specs[0], state)
    assert [(s.window, s.wh) for s in pv.plan(NOW, forecast, state)] == [(SLOTS[0], 500)]
    with pytest.raises(MarketError, match="gate closure"):
        pv.issue(specs[0], PV_KEY, _hash(1), SLOTS[0].start - 300)


def test_day_ahead_hourly_windows_and_short_selling_within_the_limit():
    pv = MarketAgent(
        "pv-1",
        ProducerStrategy(100_000, lot_wh=1000, short_sell_wh=300),
        MarketParams(window_s=3600),
    )
    forecast = Forecast.of("pv-1", [(w, 0) for w in HOURS])
    specs = pv.plan(T0 - 600, forecast, NodeState("pv-1"))
    assert len(specs) == 24 and {s.wh for s in specs} == {300}  # nothing forecast: only the short


def test_a_consumer_pays_whole_receipts_it_needs_and_forwards_the_rest():
    pv = MarketAgent("pv-1", ProducerStrategy(120_000, lot_wh=500))
    home = MarketAgent("home-1", ConsumerStrategy(150_000))
    need = Forecast.of("home-1", [(w, -800) for w in SLOTS])
    state = NodeState("home-1")
    r1 = MarketAgent.read(
        pv.issue(
            pv.plan(NOW, Forecast.of("pv-1", [(SLOTS[0], 500)]), NodeState("pv-1"))[0],
            PV_KEY,
            _hash(2),
            NOW,
        ).invoice
    )
    assert home.decide(r1, NOW, need, state) is Action.PAY
    home.paid(r1, state)
    assert state.position(SLOTS[0]).bought_wh == 500
    assert home.decide(r1, NOW, need, state) is Action.FORWARD  # 300 Wh left: never partially
    dear = MarketAgent("pv-2", ProducerStrategy(200_000, lot_wh=100))
    r2 = MarketAgent.read(
        dear.issue(
            dear.plan(NOW, Forecast.of("pv-2", [(SLOTS[1], 100)]), NodeState("pv-2"))[0],
            PV_KEY,
            _hash(3),
            NOW,
        ).invoice
    )
    assert home.decide(r2, NOW, need, state) is Action.FORWARD  # above its limit
    assert (
        home.decide(r1, SLOTS[0].start - 10, need, NodeState("home-1")) is Action.FORWARD
    )  # too late


def test_the_pod_buys_forwarded_receipts_at_feed_in_and_a_battery_buys_cheap():
    pod = MarketAgent("pod", PodStrategy(250_000, 50_000))
    bat = MarketAgent("bat", BatteryStrategy(5000, 1000, 90_000, 180_000, stored_wh=1000))
    cheap = MarketAgent("pv", ProducerStrategy(40_000, lot_wh=400))
    r = MarketAgent.read(
        cheap.issue(
            cheap.plan(NOW, Forecast.of("pv", [(SLOTS[0], 400)]), NodeState("pv"))[0],
            PV_KEY,
            _hash(4),
            NOW,
        ).invoice
    )
    empty = Forecast("x", ())
    assert pod.decide(r, NOW, empty, NodeState("pod")) is Action.PAY
    assert bat.decide(r, NOW, empty, NodeState("bat")) is Action.PAY
    assert [
        (s.wh, s.price_msat_per_kwh)
        for s in bat.plan(NOW, Forecast.of("bat", [(SLOTS[0], 0)]), NodeState("bat"))
    ] == [(250, 180_000)] * 4
    assert (
        pod.plan(NOW, Forecast.of("pod", [(SLOTS[0], 0)]), NodeState("pod"))[0].price_msat_per_kwh
        == 250_000
    )


def test_auction_orders_and_receipts_for_matched_trades():
    pv = MarketAgent("pv-1", ProducerStrategy(120_000, lot_wh=2000))
    home = MarketAgent("home-1", ConsumerStrategy(150_000))
    w = SLOTS[0]
    po, pb = pv.orders(w, NOW, Forecast.of("pv-1", [(w, 1500)]), NodeState("pv-1"))
    ho, hb = home.orders(w, NOW, Forecast.of("home-1", [(w, -800)]), NodeState("home-1"))
    book = Book(w.start, w.end, tuple(po + ho), tuple(pb + hb))
    assert loads_book(__import__("json").dumps(book.to_json())) == book
    clearing = mechanisms.clear(book, "seed003")
    specs = pv.receipts_for(clearing, w)
    assert [(s.wh, s.buyer, s.amount_msat) for s in specs] == [(800, "home-1", 120_000)]
    assert home.receipts_for(clearing, w) == []


def test_an_hourly_receipt_with_a_power_profile_from_the_15_minute_forecast():
    pv = MarketAgent("pv-1", ProducerStrategy(100_000, lot_wh=10_000))
    forecast = Forecast.of(
        "pv-1", [(w, wh) for w, wh in zip(SLOTS, (250, 500, 0, 125), strict=True)]
    )
    hour = HOURS[0]
    spec = pv.profile(hour, NOW, forecast, NodeState("pv-1"))
    assert spec is not None and spec.profile_wh == (250, 500, 0, 125) and spec.wh == 875
    offered = MarketAgent.read(pv.issue(spec, PV_KEY, _hash(9), NOW).invoice)
    assert offered.profile_wh == (250, 500, 0, 125) and offered.wh == 875
    assert offered.amount_msat == 87_500 and (offered.start, offered.end) == (hour.start, hour.end)
    with pytest.raises(MarketError):
        type(spec)(hour, 10, 1, profile_wh=(5, 4))
