"""Early lock-in and sg_preimages between three gateway processes on a line: alice -- bob -- carol.

The payer is answered on the preimage message (not on the fulfil round); the payee sends its
ack and its preimages in one flush, before the forwarder's revoke (early lock-in); payments
settle when every sg_preimages is lost; a peer's bad sg_preimages are refused, rate-limited in
the log, and change nothing."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from gateway.ln.channel import messages_wire as mw
from gateway.ln.channel.messages import Preimages
from gateway.ln.codec import bolt8_transport
from gateway.ln.codec.wire import TABLE
from gateway.ln.node.peer import REJECT_BURST
from hil_tests.gateway.ln.node_procs import Grid, NodeProc, wait_until

pytestmark = pytest.mark.xdist_group("gateway.ln.test_preimages_nodes")

M = 1_000_000
TIMELINE = ("--timeline", "4096")


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    g = Grid(tmp_path_factory.mktemp("preimages"))
    try:
        a, b, c = (g.add(n, *TIMELINE) for n in ("alice", "bob", "carol"))
        for x, y in ((a, b), (b, c)):
            x.connect(y)
            x.api("/open", {"node_id": y.node_id, "amount_msat": 40 * M, "push_msat": 0})
        a.pay_once_routed(c, 1000)
        yield g, a, b, c
    finally:
        g.close()


def _balances(*nodes: NodeProc) -> list[int]:
    return [sum(ch["local_msat"] for ch in n.channels() if ch["state"] == "OPEN") for n in nodes]


def _settled(*nodes: NodeProc) -> bool:
    return all(ch["htlcs"] == 0 for n in nodes for ch in n.channels())


def _quiet(a, b, c) -> list[int]:
    wait_until(lambda: _settled(a, b, c), 60, "no HTLC in flight")
    for n in (a, b, c):
        n.api("/timeline")  # start each record empty
    return _balances(a, b, c)


def test_the_payer_is_answered_on_the_preimage_message_and_the_payee_fulfils_early(line):
    g, a, b, c = line
    before = _quiet(a, b, c)
    r = a.api("/pay", {"invoice": c.invoice(3 * M)[0]})
    assert r["status"] == "succeeded"
    marks = a.api("/timeline")
    whats = [(m["what"], m["detail"]) for m in marks]
    paid = next(i for i, (w, _) in enumerate(whats) if w == "paid")
    got = [d for w, d in whats[:paid] if w == "recv"]
    assert any(d.startswith("Preimages from") for d in got), got
    # carol: bob's batch in, then her ack and her preimages out in one flush (2 messages at
    # least), before bob revoked
    # (alice is answered before bob's revoke reaches carol: read her marks until it came)
    cm: list[tuple[str, str]] = []

    def revoked() -> bool:
        cm.extend((m["what"], m["detail"]) for m in c.api("/timeline"))  # taken: kept here
        return any(w == "recv" and "Revoke" in d for w, d in cm)

    wait_until(revoked, 60, "bob's revoke at carol")
    first_batch = cm.index(next(x for x in cm if x[0] == "recv" and "UpdateBatch" in x[1]))
    revoke = next(i for i, x in enumerate(cm) if x[0] == "recv" and "Revoke" in x[1])
    sends = [d for w, d in cm[first_batch:revoke] if w == "send"]
    assert sends and int(sends[0].split(" ")[0]) >= 2, cm[first_batch : revoke + 1]
    fee = r["fee_msat"]
    want = [before[0] - 3 * M - fee, before[1] + fee, before[2] + 3 * M]
    wait_until(lambda: _balances(a, b, c) == want, 60, f"balances {want}")


def test_every_payment_settles_when_every_sg_preimages_is_lost(line):
    g, a, b, c = line
    for n in (b, c):
        n.stop()
        n.start(module="hil_tests.gateway.ln.lossy_node")
    try:
        wait_until(lambda: len(b.api("/info")["peers"]) == 2, 60, "bob back with both peers")
        before = _quiet(a, b, c)
        results = [a.api("/pay", {"invoice": c.invoice(M + i)[0]}) for i in range(3)]
        assert [r["status"] for r in results] == ["succeeded"] * 3
        fees = sum(r["fee_msat"] for r in results)
        want = [before[0] - 3 * M - 3 - fees, before[1] + fees, before[2] + 3 * M + 3]
        wait_until(lambda: _balances(a, b, c) == want, 60, f"balances {want}")
        assert "fault injection: sg_preimages dropped" in c.log_tail(400)
    finally:
        for n in (b, c):
            n.stop()
            n.start()
        wait_until(lambda: len(b.api("/info")["peers"]) == 2, 60, "bob back with both peers")


async def _send_as_stranger(a: NodeProc, msgs: list[bytes]) -> None:
    priv = hashlib.sha256(b"stranger").digest()
    conn = await bolt8_transport.connect("127.0.0.1", a.port, priv, bytes.fromhex(a.node_id))
    try:
        conn.send_all([TABLE.encode("init", globalfeatures=b"", features=b""), *msgs])
        await conn.drain()
        await asyncio.sleep(0.5)  # let the node read them before the connection closes
    finally:
        await conn.close()


def test_bad_sg_preimages_are_refused_rate_limited_and_change_nothing(line):
    g, a, b, c = line
    _quiet(a, b, c)
    channels = {ch["channel_id"]: ch["commitment"] for ch in a.channels()}
    ab = next(ch["channel_id"] for ch in a.channels() if ch["peer"] == b.node_id)
    bad = [mw.to_wire(Preimages(bytes.fromhex(ab), ((0, b"\x01" * 32),)))] * 20  # not our peer
    bad += [mw.to_wire(Preimages(b"\x07" * 32, ((i, b"\x02" * 32),))) for i in range(20)]
    bad += [TABLE.encode("sg_preimages", channel_id=b"\x07" * 32, preimages=b"\x00" * 41)] * 20
    asyncio.run(_send_as_stranger(a, bad))
    log = a.log_tail(2000)
    refused = log.count("refused sg_preimages")
    malformed = log.count("malformed message: sg_preimages")
    assert 0 < refused <= REJECT_BURST and 0 < malformed <= REJECT_BURST
    assert {ch["channel_id"]: ch["commitment"] for ch in a.channels()} == channels
    assert a.api("/pay", {"invoice": c.invoice(1000)[0]})["status"] == "succeeded"
