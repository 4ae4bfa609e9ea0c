"""Three gateway processes on a feeder line: alice -- bob -- carol."""

from __future__ import annotations

import threading

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


def _settled(*nodes) -> bool:
    """No HTLC left in any channel of the nodes: every update round is over."""
    return all(ch["htlcs"] == 0 for n in nodes for ch in n.channels())


def test_two_hop_payment_pays_carol_and_the_grid_charge_to_bob(line):
    g, a, b, c = line
    a.pay_once_routed(c, 1000)  # gossip: alice knows bob-carol and bob's grid charge
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
    a.pay_once_routed(c, 1000)  # gossip: alice knows bob-carol and bob's grid charge
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


def test_the_rig_pays_once_gossip_brings_the_route(tmp_path):
    """`NodeProc.pay_once_routed` (the tests' first payment over a new line) tries again while
    the payer has no route: here bob opens to carol only after alice asked. A bare first /pay
    was refused NoRoute in a loaded run, and the wait around it ended there."""
    g = Grid(tmp_path)
    try:
        a, b, c = g.add("alice"), g.add("bob"), g.add("carol")
        a.connect(b)
        b.connect(c)
        a.api("/open", {"node_id": b.node_id, "amount_msat": 40 * M, "push_msat": 0})
        with pytest.raises(LnError, match="NoRoute"):
            a.api("/pay", {"invoice": c.invoice(1000)[0]})
        opened = threading.Timer(
            1.0, lambda: b.api("/open", {"node_id": c.node_id, "amount_msat": 40 * M})
        )
        opened.start()
        try:
            assert a.pay_once_routed(c, 1000)["status"] == "succeeded"
        finally:
            opened.join()
    finally:
        g.close()
