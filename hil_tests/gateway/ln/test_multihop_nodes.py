"""Three gateway processes on a feeder line: alice -- bob -- carol."""

from __future__ import annotations

import pytest

from gateway.ln.errors import LnError
from hil_tests.gateway.ln.node_procs import Grid, wait_until

# one worker runs the whole module (hil_tests/conftest.py): its module fixture is set up once
pytestmark = pytest.mark.xdist_group("gateway.ln.test_multihop_nodes")

M = 1_000_000


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    g = Grid(tmp_path_factory.mktemp("line"))
    try:
        a = g.add("alice")
        b = g.add("bob", "--base-fee-msat", "2000", "--fee-ppm", "1000")
        c = g.add("carol")
        for x, y in ((a, b), (b, c)):
            x.connect(y)
            x.api("/open", {"node_id": y.node_id, "amount_msat": 40 * M, "push_msat": 0})
        yield g, a, b, c
    finally:  # a bring-up that fails half-way leaves no node behind either
        g.close()


def _balances(*nodes):
    return [sum(ch["local_msat"] for ch in n.channels() if ch["state"] == "OPEN") for n in nodes]


def _pay_or_none(a, c):
    try:
        return a.api("/pay", {"invoice": c.invoice(1000)[0]})
    except LnError:  # no route yet
        return None


def _wait_for_route(a, c):
    # gossip: alice learns bob-carol and bob's grid charge (a condition, not a count of tries:
    # on a loaded machine it can take many seconds)
    return wait_until(lambda: _pay_or_none(a, c), 60, "a route from alice to carol")


def _settled(*nodes) -> bool:
    """No HTLC left in any channel of the nodes: every update round is over."""
    return all(ch["htlcs"] == 0 for n in nodes for ch in n.channels())


def test_two_hop_payment_pays_carol_and_the_grid_charge_to_bob(line):
    g, a, b, c = line
    _wait_for_route(a, c)
    wait_until(lambda: _settled(a, b, c), 60, "the route payment's rounds to finish")
    before = _balances(a, b, c)
    r = a.api("/pay", {"invoice": c.invoice(5 * M)[0]})
    fee = 2000 + 5 * M * 1000 // 1_000_000
    assert r["status"] == "succeeded" and r["fee_msat"] == fee
    # alice learns the preimage before bob's and carol's commitments are signed: wait for them
    want = [before[0] - 5 * M - fee, before[1] + fee, before[2] + 5 * M]
    wait_until(lambda: _balances(a, b, c) == want, 60, f"balances {want}")


def test_refusing_middle_hop_leaves_all_balances_unchanged(line):
    g, a, b, c = line
    _wait_for_route(a, c)
    b.stop()
    b.args.append("--refuse-forwarding")
    b.start()
    try:
        wait_until(
            lambda: (
                {ch["state"] for ch in b.channels()} == {"OPEN"}
                and len(b.api("/info")["peers"]) == 2
            ),
            60,
            "bob back with both peers",
        )
        wait_until(lambda: _settled(a, b, c), 60, "no HTLC in flight")
        before = _balances(a, b, c)
        r = a.api("/pay", {"invoice": c.invoice(5 * M)[0]})
        assert r["status"] == "failed" and "refused" in r["reason"]
        # the fail is known to alice before its round is signed: wait for the round, then look
        wait_until(lambda: _settled(a, b, c), 60, "the failed HTLC removed everywhere")
        assert _balances(a, b, c) == before
    finally:
        b.stop()
        b.args.remove("--refuse-forwarding")
        b.start()


def test_offline_middle_hop_fails_the_payment_without_moving_money(line):
    g, a, b, c = line
    wait_until(lambda: _settled(a, b, c), 60, "no HTLC in flight")
    before_a, before_c = _balances(a)[0], _balances(c)[0]
    b.kill()
    try:
        with pytest.raises(LnError):
            a.api("/pay", {"invoice": c.invoice(5 * M)[0]})
        assert _balances(a)[0] == before_a and _balances(c)[0] == before_c
    finally:
        b.start()
