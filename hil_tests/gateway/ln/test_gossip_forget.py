"""Gossip forgets a closed channel of others (gateway/ln/node/gossip.py `forget_closed`): three
real channel nodes in one process (BOLT-8 on loopback, the ledger's rules in memory, real SQLite
stores) on a line alice -- bob -- carol, and a second line carol -- dave. Alice learns bob-carol
and carol-dave from gossip; bob and carol close theirs cooperatively; alice forgets it, keeps
carol-dave (still open) and does not take the closed one back when it is announced again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from coincurve import PrivateKey

from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.errors import LedgerPortError
from gateway.ln.node.ledger_port import MemoryLedger
from gateway.ln.node.node import Node
from hil_tests.gateway.ln.inproc_nodes import start_nodes, until

M = 1_000_000


def _channels(node: Node) -> set[bytes]:
    return {cid for cid, _ in node.switch.graph.edges}


async def _scenario(tmp: Path) -> None:
    ledger = MemoryLedger()
    a, b, c, d = await start_nodes(tmp, ledger, "alice", "bob", "carol", "dave")
    nodes = {"alice": a, "bob": b, "carol": c, "dave": d}
    a.gossip.recheck_s = 0.2  # the default (a minute) is for a grid, not for a test
    try:
        cid = {}
        # a node sends its graph to its peers when one of its channels opens: opened from the
        # far end, every channel reaches alice
        for x, y in ((c, d), (b, c), (a, b)):
            await x.connect("127.0.0.1", y.port, y.node_id)
            await x.lifecycle.open_channel(y.node_id, 10 * M)
            cid[x, y] = next(ch.channel_id for ch in x.channels_with(y.node_id))
            await until(lambda x=x: set(cid.values()) <= _channels(x), "the graph to spread")
        await until(lambda: set(cid.values()) <= _channels(a), "alice to learn both")

        await b.lifecycle.close_channel(cid[b, c], force=False)
        assert ledger.channel(cid[b, c]).status == "closed"  # type: ignore[union-attr]
        assert cid[b, c] not in _channels(b) and cid[b, c] not in _channels(c)
        await until(lambda: cid[b, c] not in _channels(a), "alice to forget bob-carol")
        assert cid[c, d] in _channels(a)  # still open on the ledger: kept

        async def no_recheck() -> None:
            pass

        a.gossip.forget_closed = no_recheck  # type: ignore[method-assign]
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
        # she has handled the old announcement too (its look-up runs in a task of its own)
        await until(lambda: a.switch.graph.policy(b.node_id) == sentinel, "the sentinel")
        await until(lambda: not a.gossip._checking, "its look-up on the ledger to end")
        assert cid[b, c] not in _channels(a) and cid[c, d] in _channels(a)
    finally:
        for n in nodes.values():
            await n.stop()


def test_a_closed_channel_of_others_is_forgotten_and_an_open_one_kept(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))


class _Scripted(MemoryLedger):
    """The ledger's rules in memory; its answers about one channel come from a script."""

    def __init__(self, answers: list[Any]) -> None:
        super().__init__()
        self.answers = answers

    def channel(self, channel_id: bytes) -> Any:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_channel_the_ledger_does_not_know_is_forgotten_only_on_the_second_pass(tmp_path):
    # a lagging replica or a ledger restored from a backup answers "unknown" for a live
    # channel once: forgetting it then dropped a route until a peer sent its graph again
    ledger = _Scripted([None, LedgerPortError("ledger down"), None])
    node = Node(tmp_path / "a", ledger, FeePolicy())
    node.gossip.recheck_s = 0.0  # every call is a new pass
    cid = bytes(32)
    x, y = (PrivateKey().public_key.format() for _ in range(2))
    node.switch.graph.add_channel(cid, x, y, 5 * M, 5 * M)

    async def passes() -> list[bool]:
        kept = []
        for _ in range(3):
            try:
                await node.gossip.forget_closed()
            except LedgerPortError:
                pass  # the ticker logs it; the channel is looked up again next pass
            kept.append(cid in _channels(node))
        return kept

    try:
        assert asyncio.run(passes()) == [True, True, False]
    finally:
        node.store.close()
