"""A prepaid consumer's last-resort purchase from the POD (gateway/grid/topup.py)."""

from __future__ import annotations

from gateway.config_grid import MarketConfig
from gateway.grid.credit_book import CreditBook
from gateway.grid.topup import topup_request
from gateway.ln.codec.receipt import EnergyMemo

METER = bytes(16)
NODE = bytes(33)
MARKET = MarketConfig(role="consumer", strategy="consumer", need_wh_per_hour=800,
                      max_price_msat_per_kwh=300_000, forward_to="pod")  # fmt: skip
T = 1_782_000_000  # a window boundary (900 s)


def _bought(book: CreditBook, wh: int, start: int, issuer: str, status: str, n: int) -> None:
    memo = EnergyMemo(node=issuer, start=start, end=start + 900, kwh=wh / 1000)
    ph = bytes([n]) * 32
    book.record(ph, METER, memo, wh * 300)
    book.set_status(ph, status)


def test_buys_what_the_offers_did_not_cover_for_the_next_window(tmp_path):
    book = CreditBook(tmp_path / "tokens.sqlite3")
    assert topup_request(book, MARKET, METER, NODE, T - 600) is None  # offers may still come
    req = topup_request(book, MARKET, METER, NODE, T - 300)
    assert req is not None and (req.start, req.end, req.wh) == (T, T + 900, 200)
    _bought(book, 150, T, "pv-1", "accepted", 1)
    req2 = topup_request(book, MARKET, METER, NODE, T - 300)
    assert req2 is not None and req2.wh == 50 and req2.request_id != req.request_id
    assert topup_request(book, MARKET, METER, NODE, T - 200) == req2  # same ask after a restart
    _bought(book, 50, T, "pod", "paying", 2)
    assert topup_request(book, MARKET, METER, NODE, T - 300) is None  # one open at a time
    book.set_status(bytes([2]) * 32, "accepted")
    assert topup_request(book, MARKET, METER, NODE, T - 300) is None  # covered


def test_a_failed_purchase_does_not_count_and_other_windows_are_apart(tmp_path):
    book = CreditBook(tmp_path / "tokens.sqlite3")
    _bought(book, 200, T, "pod", "failed", 1)
    _bought(book, 200, T + 900, "pv-1", "accepted", 2)
    req = topup_request(book, MARKET, METER, NODE, T - 10)
    assert req is not None and req.wh == 200
    assert topup_request(book, MarketConfig(), METER, NODE, T - 10) is None  # no forecast
