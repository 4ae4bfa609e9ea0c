"""Receipt offers between nodes: the wire format and each receiver's bounded decisions."""

from __future__ import annotations

import hashlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config_grid import MarketConfig
from gateway.grid.offers import BURST, OfferDesk
from gateway.ln.codec import receipt
from gateway.ln.codec import receipt_offer as ro
from gateway.ln.codec.wire import TABLE
from gateway.ln.errors import WireError
from gateway.ln.node.keys import NodeKeys

PV = NodeKeys(bytes([1] * 32))
HOME = NodeKeys(bytes([2] * 32)).node_id
POD = NodeKeys(bytes([3] * 32)).node_id
OTHER = NodeKeys(bytes([4] * 32)).node_id
CONSUMER = MarketConfig(strategy="consumer", max_price_msat_per_kwh=1_000_000,
                        need_wh_per_hour=1000, forward_to="pod")  # fmt: skip
POD_MARKET = MarketConfig(role="pod", strategy="pod", tariff_msat_per_kwh=2_000_000,
                          feed_in_msat_per_kwh=500_000)  # fmt: skip


def _offer(wh: int, msat: int, n: int = 0, now: int | None = None, expiry: int = 900,
           hops: int = 3) -> ro.ReceiptOffer:  # fmt: skip
    now = int(time.time()) if now is None else now
    memo = receipt.EnergyMemo("pv", now + 900, now + 1800, kwh=wh / 1000)
    ph = hashlib.sha256(b"%d" % n).digest()
    rec = receipt.create_receipt(memo, msat, ph, PV.node_priv, now, expiry_s=expiry)
    return ro.ReceiptOffer(ph, hops, (PV.node_id,), rec.invoice, None)


def test_wire_roundtrip_and_limits():
    offer = _offer(200, 200_000)
    back = ro.from_message(TABLE.decode(ro.encode(offer)))
    assert back == offer
    with pytest.raises(WireError, match="hops_left"):
        ro.encode(
            ro.ReceiptOffer(offer.payment_hash, ro.MAX_HOPS + 1, offer.path, offer.invoice, None)
        )
    with pytest.raises(WireError, match="loop"):
        ro.encode(
            ro.ReceiptOffer(offer.payment_hash, 1, (PV.node_id, PV.node_id), offer.invoice, None)
        )
    with pytest.raises(WireError, match="invoice"):
        ro.encode(
            ro.ReceiptOffer(offer.payment_hash, 1, offer.path, "x" * (ro.MAX_INVOICE + 1), None)
        )
    raw = TABLE.encode(ro.NAME, payment_hash=bytes(32), hops_left=1, path=b"\x02" * 10,
                       invoice=b"lnbc", memo=b"")  # fmt: skip
    with pytest.raises(WireError, match="33-byte"):
        ro.from_message(TABLE.decode(raw))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_never_escapes_as_anything_but_a_wire_error(data):
    try:
        ro.from_message(TABLE.decode(ro.TYPE.to_bytes(2, "big") + data))
    except WireError:
        pass


def test_consumer_pays_what_it_needs_and_forwards_the_rest_to_the_pod_only():
    desk = OfferDesk(HOME, "home", CONSUMER, forward_to=POD, is_pod=False)
    now = int(time.time())  # one clock for both offers: the second must fall in the same window
    first = _offer(200, 200_000, 1, now=now)
    assert desk.receive(first, PV.node_id, [PV.node_id, POD], now).action == "pay"
    d = desk.receive(_offer(200, 200_000, 2, now=now), PV.node_id, [PV.node_id, POD], now)
    # need is 250 Wh in that window and 200 are bought: the second offer goes on to the POD
    assert d.action == "forward" and d.to == [POD]
    assert d.offer is not None and d.offer.hops_left == 2 and d.offer.path == (PV.node_id, HOME)
    d = desk.receive(_offer(10, 2_000_000, 3), PV.node_id, [PV.node_id, POD], now)  # too dear
    assert d.action == "forward"


def test_expired_duplicate_looping_and_exhausted_offers_are_dropped():
    desk = OfferDesk(HOME, "home", MarketConfig(), forward_to=None, is_pod=False)
    now = int(time.time())
    old = _offer(1, 1, 10, now=now - 1000, expiry=60)
    assert desk.receive(old, PV.node_id, [PV.node_id], now).reason == "expired"
    fresh = _offer(1, 1, 11)
    assert desk.receive(fresh, PV.node_id, [PV.node_id, OTHER], now).action == "forward"
    assert desk.receive(fresh, OTHER, [PV.node_id, OTHER], now).reason == "duplicate"
    looped = ro.ReceiptOffer(fresh.payment_hash, 2, (PV.node_id, HOME), fresh.invoice, None)
    assert desk.receive(looped, OTHER, [OTHER], now).reason == "loop"
    last = _offer(1, 1, 12, hops=0)
    assert desk.receive(last, PV.node_id, [PV.node_id, OTHER], now).reason == "no hops left"
    forged = ro.ReceiptOffer(hashlib.sha256(b"x").digest(), 1, (PV.node_id,), fresh.invoice, None)
    assert desk.receive(forged, PV.node_id, [OTHER], now).reason.startswith("invalid")


def test_the_pod_buys_at_its_feed_in_price_and_keeps_the_rest():
    desk = OfferDesk(POD, "pod", POD_MARKET, forward_to=None, is_pod=True)
    now = time.time()
    assert desk.receive(_offer(300, 120_000, 20), HOME, [HOME], now).action == "pay"
    d = desk.receive(_offer(300, 600_000, 21), HOME, [HOME], now)
    assert d.action == "drop" and "POD" in d.reason


def test_a_flooding_peer_is_rate_limited():
    desk = OfferDesk(HOME, "home", MarketConfig(), forward_to=None, is_pod=False)
    now = time.time()
    offer = _offer(1, 1, 30)
    reasons = [desk.receive(offer, OTHER, [OTHER], now).reason for _ in range(int(BURST) + 50)]
    assert reasons.count("rate_limited") == 50


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.sampled_from([PV.node_id, OTHER, POD])), max_size=40)
)
def test_each_receipt_is_acted_on_at_most_once(events):
    desk = OfferDesk(HOME, "home", CONSUMER, forward_to=POD, is_pod=False)
    offers = {n: _offer(50, 50_000, 100 + n) for n in range(6)}
    acted: dict[bytes, int] = {}
    now = time.time()
    for n, sender in events:
        d = desk.receive(offers[n], sender, [PV.node_id, OTHER, POD], now)
        if d.action != "drop":
            acted[offers[n].payment_hash] = acted.get(offers[n].payment_hash, 0) + 1
            if d.offer is not None:
                assert HOME not in d.to and all(t not in d.offer.path for t in d.to)
    assert all(v == 1 for v in acted.values())
