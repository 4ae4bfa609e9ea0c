"""Gossip forgets a closed channel of others (gateway/ln/node/gossip.py `forget_closed`): three
real channel nodes in one process (BOLT-8 on loopback, the ledger's rules in memory, real SQLite
stores) on a line alice -- bob -- carol, and a second line carol -- dave. Alice learns bob-carol
and carol-dave from gossip; bob and carol close theirs cooperatively; alice forgets it, keeps
carol-dave (still open) and does not take the closed one back when it is announced again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.node.ledger_port import MemoryLedger
from gateway.ln.node.node import Node

M = 1_000_000


async def _until(pred: Any, what: str, timeout: float = 60) -> None:
    """Let the nodes run until `pred()` holds; the timeout is headroom, not a figure."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _channels(node: Node) -> set[bytes]:
    return {cid for cid, _ in node.switch.graph.edges}


async def _scenario(tmp: Path) -> None:
    ledger = MemoryLedger()
    nodes = {n: Node(tmp / n, ledger, FeePolicy()) for n in ("alice", "bob", "carol", "dave")}
    a, b, c, d = nodes.values()
    for n in nodes.values():
        ledger.deposit(n.node_id, 10**10)
        await n.start(0, 0.05)
    a.gossip.recheck_s = 0.2  # the default (a minute) is for a grid, not for a test
    try:
        cid = {}
        # a node sends its graph to its peers when one of its channels opens: opened from the
        # far end, every channel reaches alice
        for x, y in ((c, d), (b, c), (a, b)):
            await x.connect("127.0.0.1", y.port, y.node_id)
            await x.lifecycle.open_channel(y.node_id, 10 * M)
            cid[x, y] = next(ch.channel_id for ch in x.channels_with(y.node_id))
            await _until(lambda x=x: set(cid.values()) <= _channels(x), "the graph to spread")
        await _until(lambda: set(cid.values()) <= _channels(a), "alice to learn both")

        await b.lifecycle.close_channel(cid[b, c], force=False)
        assert ledger.channel(cid[b, c]).status == "closed"  # type: ignore[union-attr]
        assert cid[b, c] not in _channels(b) and cid[b, c] not in _channels(c)
        await _until(lambda: cid[b, c] not in _channels(a), "alice to forget bob-carol")
        assert cid[c, d] in _channels(a)  # still open on the ledger: kept

        a.gossip.forget_closed = lambda: None  # type: ignore[method-assign]
        # (the recheck is off from here: a channel alice took back would stay in its graph)
        sentinel = FeePolicy(base_msat=1234)
        b.switch.policy = sentinel
        for p in b.peers.values():  # an old announcement comes again: refused
            p.queue_named(
                "sg_channel_announce",
                channel_id=cid[b, c],
                node_a=min(b.node_id, c.node_id),
                node_b=max(b.node_id, c.node_id),
            )
            b.gossip.send_graph(p)  # after it on the same connection: bob's new signed policy
        b.after()
        # messages of one connection are handled in order: once alice has bob's new policy,
        # she has handled the old announcement too
        await _until(lambda: a.switch.graph.policy(b.node_id) == sentinel, "the sentinel")
        assert cid[b, c] not in _channels(a) and cid[c, d] in _channels(a)
    finally:
        for n in nodes.values():
            await n.stop()


def test_a_closed_channel_of_others_is_forgotten_and_an_open_one_kept(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))
