"""market.forecast_file: the per-window forecast a node trades on, revised while it runs."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config_grid import MarketConfig
from gateway.grid.credit_book import CreditBook
from gateway.grid.forecast_source import ForecastFileError, ForecastSource, parse
from gateway.grid.topup import topup_request


@given(st.dictionaries(st.integers(0, 2**32), st.integers(0, 10**9), max_size=50))
def test_a_written_table_parses_back(table):
    text = "# a comment\nstart,wh\n" + "".join(f"{s},{w}  # x\n" for s, w in table.items())
    assert parse(text) == table


@pytest.mark.parametrize("bad", ["1,2,3", "x,5", "100,-1", "100"])
def test_a_bad_line_is_named(bad):
    with pytest.raises(ForecastFileError, match="line 2"):
        parse(f"start,wh\n{bad}\n")


def test_the_file_is_read_again_when_revised_and_a_broken_one_keeps_the_last(tmp_path):
    path = tmp_path / "forecast.csv"
    src = ForecastSource(path, flat_wh_per_hour=400, window_s=900)
    assert src.wh(1800) == 100  # no file yet: the flat forecast
    assert src.wh(0, 3600) == 400  # any window length (a receipt for an hour)
    path.write_text("start,wh\n1800,250\n")
    assert src.wh(1800) == 250 and src.wh(2700) == 100
    assert src.wh(1800, 3600) == 350 and src.wh(2250, 2700) == 125  # overlaps, prorated
    path.write_text("start,wh\n1800,300\n2700,40\n")  # an intraday revision
    os.utime(path, ns=(1, 10**18))
    assert (src.wh(1800), src.wh(2700)) == (300, 40)
    path.write_text("start,wh\n1800,oops\n")
    os.utime(path, ns=(1, 2 * 10**18))
    assert src.wh(1800) == 300  # kept


def test_the_last_resort_buys_up_to_the_revised_need(tmp_path):
    book = CreditBook(tmp_path / "tokens.sqlite3")
    market = MarketConfig(strategy="consumer", need_wh_per_hour=400, forward_to="pod",
                          last_resort=True)  # fmt: skip
    now = 900 * 1000 - 200
    flat = topup_request(book, market, b"m" * 16, b"n" * 33, now)
    assert flat is not None and flat.wh == 100
    req = topup_request(book, market, b"m" * 16, b"n" * 33, now, lambda start, end: 321)
    assert req is not None and (req.start, req.wh) == (900 * 1000, 321)
    assert topup_request(book, market, b"m" * 16, b"n" * 33, now, lambda start, end: 0) is None
    book.close()
