"""A node whose ledger submission waits goes on paying (node processes on the real ledger).

Each submission (a funding, a force close, a cooperative close, a penalty, a claim, a settle)
waits for its block: up to `idle_block_ms` (1 s by default) while any channel on the ledger is
closing, and the client's timeout and retries (15 s, 3 times) when the ledger is slow or hung.
The node submitted on its event loop, so for that long it did nothing else: no payment, no peer
message, no control API answer. A `Relay` in front of the ledger keeps the submissions of
alice (`POST` requests) from it while it answers her reads; alice pays carol over their channel
while her submission about the channel with bob waits.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from hil_tests.gateway.ln.node_procs import NodeProc, wait_until
from hil_tests.gateway.ln.real_ledger import RealLedger
from hil_tests.rig.tcp_proxy import Relay

M = 1_000_000


@pytest.fixture
def trio(tmp_path):
    led = RealLedger(tmp_path / "ledger")
    proxy = Relay(led.port)  # alice reaches the ledger through it
    a = led.node(tmp_path, "alice", url=f"http://127.0.0.1:{proxy.port}")
    b = led.node(tmp_path, "bob")
    c = led.node(tmp_path, "carol")
    try:
        a.connect(b)
        a.connect(c)
        a.api("/open", {"node_id": c.node_id, "amount_msat": 40 * M})
        yield led, proxy, a, b, c
    finally:
        proxy.release("out")
        for n in (a, b, c):
            n.kill()
        proxy.close()
        led.stop()


class Call(threading.Thread):
    """A control API call in a thread of its own: it waits for the ledger."""

    def __init__(self, node: NodeProc, path: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.node, self.path, self.body = node, path, body
        self.answer: Any = None
        self.start()

    def run(self) -> None:
        self.answer = self.node.api(self.path, self.body, timeout=180)


def _pays_while_waiting(proxy: Relay, a: NodeProc, c: NodeProc, waiting: Call | None) -> None:
    """Alice pays carol three times while a submission of hers is held (and, if given, the
    control call that made it is still unanswered); then the submission goes through."""
    for inv in c.invoice(M, count=3):
        assert a.api("/pay", {"invoice": inv})["status"] == "succeeded"
    assert proxy.waiting("out"), "the submission was not held all along"
    if waiting is not None:
        assert waiting.is_alive(), "the call was answered before its submission went through"
    proxy.release("out")
    if waiting is not None:
        waiting.join(120)
        assert not waiting.is_alive()


def test_a_force_close_waiting_for_its_block_does_not_stall_payments(trio):
    led, proxy, a, b, _c = trio
    ab = a.api("/open", {"node_id": b.node_id, "amount_msat": 40 * M})["channel_id"]
    proxy.hold("out", b"POST ")
    close = Call(a, "/close", {"channel_id": ab, "force": True})
    wait_until(lambda: proxy.waiting("out"), 30, "alice's force close to wait for the ledger")
    _pays_while_waiting(proxy, a, trio[4], close)
    assert close.answer["state"] == "FORCE_CLOSING"
    wait_until(lambda: led.client.channel(ab)["status"] != "open", 60, "the close on the ledger")


def test_the_watch_resubmitting_a_close_does_not_stall_payments(trio):
    led, proxy, a, b, c = trio
    ab = a.api("/open", {"node_id": b.node_id, "amount_msat": 40 * M})["channel_id"]
    led.stop()
    assert a.api("/close", {"channel_id": ab, "force": True})["state"] == "FORCE_CLOSING"
    proxy.hold("out", b"POST ")  # the watch submits it again every tick, from now on held
    led.start()
    wait_until(lambda: proxy.waiting("out"), 60, "the watch's resubmission to wait for the ledger")
    _pays_while_waiting(proxy, a, c, None)
    wait_until(lambda: led.client.channel(ab)["status"] != "open", 60, "the close on the ledger")


def test_a_funding_waiting_for_its_block_does_not_stall_payments(trio):
    # the acceptor submits the funding: bob opens to alice
    led, proxy, a, b, c = trio
    proxy.hold("out", b"POST ")
    opening = Call(b, "/open", {"node_id": a.node_id, "amount_msat": 40 * M})
    wait_until(lambda: proxy.waiting("out"), 30, "alice's funding to wait for the ledger")
    _pays_while_waiting(proxy, a, c, opening)
    assert led.client.channel(opening.answer["channel_id"])["status"] == "open"
    wait_until(lambda: a.channel_with(b)["state"] == "OPEN", 60, "alice sees the channel open")


def test_a_funding_the_ledger_did_not_decide_is_submitted_again(trio):
    """The ledger was away when the acceptor submitted the funding: the node closed the
    channel, while the submission might still commit (a timeout). It stays FUNDING now, and
    the watch submits it again until the ledger has it."""
    led, _proxy, a, b, _c = trio
    led.stop()
    Call(b, "/open", {"node_id": a.node_id, "amount_msat": 40 * M})
    wait_until(lambda: re.search(r"funding \S+ (not committed|refused)", a.log_tail()), 30, "it")
    assert a.channel_with(b)["state"] == "FUNDING"
    led.start()
    wait_until(lambda: a.channel_with(b)["state"] == "OPEN", 60, "alice sees the channel open")
    wait_until(lambda: b.channel_with(a)["state"] == "OPEN", 60, "bob sees the channel open")
