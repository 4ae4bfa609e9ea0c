"""The worked example of docs/market.md §10 is computed by the code, block by block."""

import json
import re

from gateway.market import mechanisms
from gateway.market.book import loads_book
from gateway.market.settlement import Contract, Metered, settle_period


def _blocks(repo_root):
    text = (repo_root / "docs" / "market.md").read_text()
    return {m[1]: m[2] for m in re.finditer(r"```json ([\w-]+)\n(.*?)```", text, re.S)}


def test_the_worked_clearings_are_what_the_mechanisms_compute(repo_root):
    blocks = _blocks(repo_root)
    book = loads_book(blocks["worked-book"])
    expected = json.loads(blocks["worked-clearings"])
    assert set(expected) == set(mechanisms.NAMES)
    for name, want in expected.items():
        got = mechanisms.clear(book, name)
        trades = [
            [t.bid, t.offer, t.wh, t.price_msat_per_kwh, t.amount_msat, t.seller_amount_msat]
            for t in got.trades
        ]
        assert trades == want["trades"], name
        assert (
            got.clearing_price_msat_per_kwh == want["price"] and got.surplus_msat == want["surplus"]
        )


def test_the_worked_settlement_sums_to_zero(repo_root):
    blocks = _blocks(repo_root)
    want = json.loads(blocks["worked-settlement"])
    cleared = mechanisms.clear(loads_book(blocks["worked-book"]), "pay-as-clear")
    contracts = [
        Contract(t.seller, t.buyer, t.wh, t.amount_msat, t.seller_amount_msat)
        for t in cleared.trades
    ]
    metered = {n: Metered(i, e) for n, (i, e) in want["metered"].items()}
    period = settle_period(1767268800, 1767269700, contracts, metered, want["price"], "pod")
    assert {s.node: s.net_msat for s in period.statements} == want["net_msat"]
    assert {s.node: s.imbalance_msat for s in period.statements} == want["imbalance_msat"]
    assert period.money_created_msat == 0
