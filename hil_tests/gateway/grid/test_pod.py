"""The POD's quotes and a node's imbalance request, on real receipts and a real reading store."""

from __future__ import annotations

import time

import pytest

from gateway.config_grid import MarketConfig
from gateway.grid.pod import PodDesk, check_quote, period_of
from gateway.ln.codec import energy_request as er
from gateway.ln.codec import receipt
from gateway.ln.codec.wire import TABLE
from gateway.ln.errors import WireError
from gateway.ln.node.keys import NodeKeys

POD = NodeKeys(bytes([3] * 32))
MARKET = MarketConfig(role="pod", strategy="pod", tariff_msat_per_kwh=2_000_000,
                      imbalance_price_msat_per_kwh=3_000_000)  # fmt: skip


def _make(amount: int, memo: receipt.EnergyMemo, expiry: int | None) -> receipt.Receipt:
    now = int(time.time())
    return receipt.create_receipt(memo, amount, bytes(32), POD.node_priv, now,
                                  expiry_s=expiry or max(memo.start - now, 60))  # fmt: skip


def _req(kind: int, start: int, wh: int = 250, rid: bytes = b"\x01" * 32) -> er.EnergyRequest:
    return er.EnergyRequest(rid, kind, start, start + 900, wh)


def test_codec_roundtrip_and_limits():
    r = _req(er.KIND_IMBALANCE, 1_700_000_000)
    assert er.request_from(TABLE.decode(er.encode_request(r))) == r
    q = er.EnergyQuote(r.request_id, "lnbcrt1...", "")
    assert er.quote_from(TABLE.decode(er.encode_quote(q))) == q
    for bad in (_req(3, 0), _req(1, 0, wh=0), er.EnergyRequest(bytes(32), 1, 10, 10, 1)):
        with pytest.raises(WireError):
            er.encode_request(bad)


def test_imbalance_is_priced_at_the_imbalance_price_and_idempotent():
    desk = PodDesk("pod", MARKET, _make)
    now = time.time()
    past = int(now) // 900 * 900 - 900
    req = _req(er.KIND_IMBALANCE, past)
    q = desk.quote(req, now)
    inv, memo = receipt.read_receipt(q.invoice)
    assert inv.amount_msat == 250 * 3_000_000 // 1000 and (memo.start, memo.end) == (
        past,
        past + 900,
    )
    assert desk.quote(req, now) == q  # the same request id: the same receipt
    assert check_quote(q, req, POD.node_id, int(now)) is None
    assert check_quote(q, _req(er.KIND_IMBALANCE, past, wh=251), POD.node_id, int(now))
    assert (
        check_quote(q, req, NodeKeys(bytes([9] * 32)).node_id, int(now)) == "not issued by the POD"
    )


def test_refusals():
    desk = PodDesk("pod", MARKET, _make)
    now = time.time()
    future = int(now) + 900
    assert "not over" in desk.quote(_req(er.KIND_IMBALANCE, future, rid=b"\x02" * 32), now).reason
    assert "too old" in desk.quote(_req(er.KIND_IMBALANCE, 1000, rid=b"\x03" * 32), now).reason
    assert "over" in desk.quote(_req(er.KIND_PURCHASE, 1000, rid=b"\x04" * 32), now).reason
    q = desk.quote(_req(er.KIND_PURCHASE, future, rid=b"\x05" * 32), now)
    assert receipt.read_receipt(q.invoice)[0].amount_msat == 500_000
    nothing = PodDesk("pod", MarketConfig(role="pod"), _make)
    assert "sells no energy" in nothing.quote(_req(er.KIND_PURCHASE, future), now).reason


def test_periods():
    assert period_of(1800, 900) == (900, 1800)
    assert period_of(1801, 900) == (1800, 2700)


def test_a_last_resort_receipt_stays_payable_until_its_window_ends():
    """The sim's bug: the receipt expired when its window began, a few virtual minutes after the
    request; at 480x the payment took longer than that and failed ('invoice expired')."""
    desk = PodDesk("pod", MARKET, _make)
    now = time.time()
    start = int(now) // 900 * 900 + 900
    q = desk.quote(_req(er.KIND_PURCHASE, start), now)
    inv, _ = receipt.read_receipt(q.invoice)
    assert inv.expires_at >= start + 900 - 1
    assert check_quote(q, _req(er.KIND_PURCHASE, start), POD.node_id, start + 600) is None
