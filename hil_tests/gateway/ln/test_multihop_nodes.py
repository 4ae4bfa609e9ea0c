"""Three gateway processes on a feeder line: alice -- bob -- carol."""

from __future__ import annotations

import time

import pytest

from gateway.ln.errors import LnError
from hil_tests.gateway.ln.node_procs import Grid

M = 1_000_000


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    g = Grid(tmp_path_factory.mktemp("line"))
    a = g.add("alice")
    b = g.add("bob", "--base-fee-msat", "2000", "--fee-ppm", "1000")
    c = g.add("carol")
    for x, y in ((a, b), (b, c)):
        x.connect(y)
        x.api("/open", {"node_id": y.node_id, "amount_msat": 40 * M, "push_msat": 0})
    yield g, a, b, c
    g.close()


def _balances(*nodes):
    return [sum(ch["local_msat"] for ch in n.channels() if ch["state"] == "OPEN") for n in nodes]


def _wait_for_route(a, c):
    for _ in range(100):  # gossip: alice learns bob-carol and bob's grid charge
        try:
            return a.api("/pay", {"invoice": c.invoice(1000)[0]})
        except LnError:
            time.sleep(0.05)
    raise AssertionError("no route ever appeared")


def test_two_hop_payment_pays_carol_and_the_grid_charge_to_bob(line):
    g, a, b, c = line
    _wait_for_route(a, c)
    before = _balances(a, b, c)
    r = a.api("/pay", {"invoice": c.invoice(5 * M)[0]})
    fee = 2000 + 5 * M * 1000 // 1_000_000
    assert r["status"] == "succeeded" and r["fee_msat"] == fee
    after = _balances(a, b, c)
    assert after == [before[0] - 5 * M - fee, before[1] + fee, before[2] + 5 * M]


def test_refusing_middle_hop_leaves_all_balances_unchanged(line):
    g, a, b, c = line
    _wait_for_route(a, c)
    b.stop()
    b.args.append("--refuse-forwarding")
    b.start()
    try:
        for _ in range(100):
            if {ch["state"] for ch in b.channels()} == {"OPEN"} and len(
                b.api("/info")["peers"]
            ) == 2:
                break
            time.sleep(0.05)
        before = _balances(a, b, c)
        r = a.api("/pay", {"invoice": c.invoice(5 * M)[0]})
        assert r["status"] == "failed" and "refused" in r["reason"]
        assert _balances(a, b, c) == before
        assert all(ch["htlcs"] == 0 for n in (a, b, c) for ch in n.channels())
    finally:
        b.stop()
        b.args.remove("--refuse-forwarding")
        b.start()


def test_offline_middle_hop_fails_the_payment_without_moving_money(line):
    g, a, b, c = line
    before_a, before_c = _balances(a)[0], _balances(c)[0]
    b.kill()
    try:
        with pytest.raises(LnError):
            a.api("/pay", {"invoice": c.invoice(5 * M)[0]})
        assert _balances(a)[0] == before_a and _balances(c)[0] == before_c
    finally:
        b.start()
