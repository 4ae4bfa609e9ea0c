"""Announcements of channels are checked on the ledger off the event loop (gateway/ln/node/
gossip.py): two real channel nodes in one process (BOLT-8 on loopback, the ledger's rules in
memory, real SQLite stores). While the ledger answers nothing (its lock held by another
thread), a peer floods announcements of channels nobody has: the node still pays, looks up at
most MAX_CHECKS of them at once, and adds none of them once the ledger answers again.
Checked synchronously in the handler, the first look-up stopped the event loop."""

from __future__ import annotations

import asyncio
import secrets
import threading
from pathlib import Path

from gateway.ln.node.gossip import MAX_CHECKS
from gateway.ln.node.ledger_port import MemoryLedger
from hil_tests.gateway.ln.inproc_nodes import start_nodes, until

M = 1_000_000
FLOOD = 100


async def _scenario(tmp: Path) -> None:
    ledger = MemoryLedger()
    a, b = await start_nodes(tmp, ledger, "alice", "bob")
    held, release = threading.Event(), threading.Event()

    def hold_the_ledger() -> None:
        with ledger._lock:  # every ledger call waits for it
            held.set()
            release.wait(60)  # a node that waits on its event loop would never set it

    try:
        await a.connect("127.0.0.1", b.port, b.node_id)
        await a.lifecycle.open_channel(b.node_id, 10 * M)
        # both ends open and in both graphs (sg_channel_ready reads the ledger on the loop)
        await until(
            lambda: (
                all(ch.state.name == "OPEN" for n in (a, b) for ch in n.switch.channels.values())
                and len(a.switch.graph.edges) == len(b.switch.graph.edges) == 2
            ),
            "the channel to open on both sides",
        )
        edges = set(a.switch.graph.edges)
        threading.Thread(target=hold_the_ledger, daemon=True).start()
        held.wait()
        peer = b.peers[a.node_id]
        flood = [secrets.token_bytes(32) for _ in range(FLOOD)]
        for cid in flood:
            peer.queue_named(
                "sg_channel_announce",
                channel_id=cid,
                node_a=min(a.node_id, b.node_id),
                node_b=max(a.node_id, b.node_id),
            )
        b.after()

        def looked_up() -> set[bytes]:
            return set(flood) & set(a.gossip._checking)

        await until(lambda: a.gossip.dropped + len(looked_up()) == FLOOD, "alice to read it")
        waiting = looked_up()
        # at most MAX_CHECKS at once (a look-up of their own channel, announced before it was
        # in alice's graph, may hold one of them)
        assert MAX_CHECKS - 1 <= len(waiting) <= MAX_CHECKS
        inv = b.switch.add_invoice(secrets.token_bytes(32), M, b"", 2**40)
        result = await a.pay(b.node_id, inv.payment_hash, M, 30)
        assert result["status"] == "succeeded"
        assert looked_up() == waiting  # all still waiting for the ledger
        release.set()
        await until(lambda: not a.gossip._checking, "the look-ups to end")
        assert set(a.switch.graph.edges) == edges  # the ledger knows none of them
    finally:
        release.set()
        for n in (a, b):
            await n.stop()


def test_a_flood_of_announcements_while_the_ledger_is_slow_does_not_stall_payments(tmp_path):
    asyncio.run(_scenario(tmp_path))
