"""One channel event that fails must not drop the others drained with it (seen at 56 nodes: an
UnknownHtlc escaped the switch and every other event of that drain was lost, their HTLCs left
to expire). The switch handles each event on its own and logs a failure, rate-limited."""

from __future__ import annotations

import dataclasses
import hashlib
import logging

from gateway.ln.channel.channel import IncomingHtlc
from gateway.ln.node.event_failures import EventFailureLog
from hil_tests.gateway.ln.mesh import Mesh

M = 1_000_000


def test_a_failing_event_among_good_ones_leaves_the_good_ones_handled(caplog):
    mesh = Mesh()
    a, c = mesh.node("alice"), mesh.node("carol")
    mesh.connect("alice", "carol", (50 * M, 50 * M))
    invoices = [c.add_invoice(hashlib.sha256(bytes([i])).digest(), M) for i in range(3)]
    pays = [a.pay(c.node_id, inv.payment_hash, M, mesh.ledger.height()) for inv in invoices]
    handle, seen = c.handle, []

    def with_a_bad_event_first(events, height):
        incoming = [e for e in events if isinstance(e, IncomingHtlc)]
        if incoming:  # an event for an HTLC the channel does not have: UnknownHtlc
            bad = dataclasses.replace(
                incoming[0], add=dataclasses.replace(incoming[0].add, htlc_id=99)
            )
            events = [bad, *events]
            seen.append(len(incoming))
        handle(events, height)

    c.handle = with_a_bad_event_first  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, "gateway.ln.node"):
        mesh.pump()
    assert seen == [3]  # all three arrived in one drain, behind the bad one
    assert [p.status for p in pays] == ["succeeded"] * 3
    assert all(inv.paid for inv in invoices)
    assert c.failures.total == 1
    assert "IncomingHtlc: UnknownHtlc" in caplog.text
    for sw in mesh.switches.values():
        for ch in sw.channels.values():
            ch.check_invariant()
            assert not ch.latest.htlcs


def test_failures_are_logged_at_most_burst_times_per_window_and_the_rest_counted(caplog):
    now = [0.0]
    failures = EventFailureLog(burst=2, window_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, "gateway.ln.node"):
        logged = [failures.failed("IncomingHtlc", "1x2x3", KeyError("x")) for _ in range(5)]
        assert logged == [True, True, False, False, False]
        now[0] = 61.0
        assert failures.failed("IncomingHtlc", "1x2x3", KeyError("x"))
        assert failures.failed("propose", "1x2x3", ValueError("y"))  # another kind: own budget
    assert failures.total == 7
    assert len(caplog.records) == 4
    assert "(+3 more not logged)" in caplog.records[2].getMessage()


def test_held_failures_of_swept_kinds_are_said_by_the_next_line(caplog):
    # kinds whose window ended are dropped from the budget's table when it grows past
    # sweep_at; their held failures are reported by the line that swept them, once
    now = [0.0]
    failures = EventFailureLog(burst=1, window_s=60, clock=lambda: now[0], sweep_at=2)
    with caplog.at_level(logging.ERROR, "gateway.ln.node"):
        for what in ("IncomingHtlc", "OutgoingSettled"):
            assert failures.failed(what, "1x2x3", KeyError("x"))
            assert not failures.failed(what, "1x2x3", KeyError("x"))  # held
            assert not failures.failed(what, "1x2x3", KeyError("x"))  # held
        now[0] = 60.0
        assert failures.failed("propose", "1x2x3", ValueError("y"))  # a third kind: swept
        assert failures.failed("IncomingHtlc", "1x2x3", KeyError("x"))  # its entry was dropped
    lines = [r.getMessage() for r in caplog.records]
    assert lines[-2].endswith(": y (+4 more failures of other kinds not logged)")
    assert lines[-1].endswith(": 'x'")  # its held ones were said once, by the line before
    assert failures.total == 8 and len(lines) == 4


class _Outbox:
    """A peer's outbox as the node core sees it (queue, moves_payments, flush); no connection
    behind it."""

    moves_payments = False

    def __init__(self) -> None:
        self.queued: list[object] = []

    def queue(self, msg: object) -> None:
        self.queued.append(msg)

    def flush(self) -> None:
        pass


def test_a_channel_whose_round_fails_does_not_hold_up_the_other_channels(tmp_path, caplog):
    from gateway.ln.channel.htlc import FeePolicy
    from gateway.ln.node.core import NodeCore
    from gateway.ln.node.ledger_port import MemoryLedger
    from hil_tests.gateway.ln.channel_pair import node_keys, open_pair

    ledger = MemoryLedger()
    core = NodeCore(tmp_path, ledger, FeePolicy())
    outboxes = {}
    for name in ("bob", "carol"):
        peer = node_keys(name)
        ours, _theirs, cid = open_pair(core.keys, peer, (50 * M, 50 * M), ledger.chain, name)
        core.switch.channels[cid] = ours
        core.peers[peer.node_id] = outboxes[name] = _Outbox()  # type: ignore[assignment]
        ours.queue_add(M, hashlib.sha256(name.encode()).digest(), 500)
    broken, working = (
        core.channels_with(node_keys("bob").node_id)[0],
        core.channels_with(node_keys("carol").node_id)[0],
    )

    def propose():
        raise RuntimeError("signing failed")

    broken.propose = propose  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, "gateway.ln.node"):
        core.after()
    assert outboxes["bob"].queued == []
    assert [type(m).__name__ for m in outboxes["carol"].queued] == ["UpdateBatch"]
    assert working.proposal is not None
    assert "propose: RuntimeError" in caplog.text
    core.store.close()
