import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from gateway.cli import main

BOOK = {
    "slot": {"start": 1767225600, "end": 1767229200},
    "offers": [
        {"id": "o1", "node": "pv-1", "wh": 1500, "price_msat_per_kwh": 120000, "time": 1767220000}
    ],
    "bids": [
        {"id": "b1", "node": "home-1", "wh": 800, "price_msat_per_kwh": 150000, "time": 1767220100}
    ],
}


def _clear(tmp_path, book, *args):
    path = tmp_path / "book.json"
    path.write_text(book if isinstance(book, str) else json.dumps(book))
    return CliRunner().invoke(main, ["market", "clear", str(path), *args])


@pytest.mark.parametrize("mechanism", ["seed003", "pay-as-bid", "pay-as-clear", "trade-reduction"])
def test_clear_prints_the_issue_output_format(tmp_path, mechanism):
    out = _clear(tmp_path, BOOK, "--mechanism", mechanism)
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["mechanism"] == mechanism
    assert {"trades", "clearing_price_msat_per_kwh", "unmatched_bids", "unmatched_offers"} <= set(
        result
    )
    for t in result["trades"]:
        assert t["amount_msat"] == t["wh"] * t["price_msat_per_kwh"] // 1000


def test_seed003_on_the_issue_book_sells_800_wh_at_the_bid(tmp_path):
    out = _clear(tmp_path, BOOK)
    result = json.loads(out.stdout)
    assert result["trades"] == [
        {
            "bid": "b1",
            "offer": "o1",
            "wh": 800,
            "price_msat_per_kwh": 150000,
            "amount_msat": 120000,
            "buyer": "home-1",
            "seller": "pv-1",
            "seller_price_msat_per_kwh": 150000,
            "seller_amount_msat": 120000,
        }
    ]
    assert (
        result["unmatched_offers"] == [{"id": "o1", "wh": 700}] and result["unmatched_bids"] == []
    )


def test_cap_leaves_dearer_offers_out(tmp_path):
    result = json.loads(_clear(tmp_path, BOOK, "--cap-msat-per-kwh", "100000").stdout)
    assert result["trades"] == [] and result["unmatched_offers"] == [{"id": "o1", "wh": 1500}]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["offers"][0].pop("wh"), "offers[0].wh"),
        (lambda b: b["bids"][0].update(price_msat_per_kwh=1.5), "bids[0].price_msat_per_kwh"),
        (lambda b: b["bids"][0].update(wh=-3), "bids[0].wh"),
        (lambda b: b["slot"].update(end=0), "slot.end"),
        (lambda b: b.pop("bids"), "bids"),
        (lambda b: b["offers"][0].update(id="b1"), "bids[0].id"),
        (lambda b: b["offers"][0].update(colour="red"), "offers[0].colour"),
        (lambda b: b.update(offers={}), "offers"),
    ],
)
def test_malformed_book_exits_2_naming_the_field(tmp_path, mutate, field):
    book = json.loads(json.dumps(BOOK))
    mutate(book)
    out = _clear(tmp_path, book)
    assert out.exit_code == 2
    assert field in out.stderr and "Traceback" not in out.output


@pytest.mark.parametrize(
    "text", ["", "{", "[]", "null", '{"slot": 5, "offers": [], "bids": []}', "[" * 100000]
)
def test_garbage_exits_2_without_a_traceback(tmp_path, text):
    out = _clear(tmp_path, text)
    assert out.exit_code == 2 and "Traceback" not in out.output, out.output


def test_sgrid_market_clear_reads_stdin_in_a_real_process():
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "market", "clear", "-", "--mechanism", "pay-as-clear"],
        input=json.dumps(BOOK),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["clearing_price_msat_per_kwh"] == 135000
