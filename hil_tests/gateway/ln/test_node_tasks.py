"""A node holds only the tasks still running (gateway/ln/node/node.py `_keep`).

The reconnect tick redials an offline peer every tick; each dial was kept in the node's task
list for good, with its exception and traceback: ~18,000 an hour per offline peer. A real node
(real SQLite store, BOLT-8 dials to a loopback port nobody listens on)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from coincurve import PrivateKey

from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.errors import TransportError
from gateway.ln.node.ledger_port import MemoryLedger
from gateway.ln.node.node import Node


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _dial_offline(tmp: Path, times: int) -> tuple[int, int]:
    node = Node(tmp / "a", MemoryLedger(), FeePolicy())
    await node.start(0, 60.0)  # the ticker sleeps: only our dials run
    try:
        before = len(node._tasks)
        port, peer = _closed_port(), PrivateKey().public_key.format()
        for _ in range(times):
            try:
                await node.connect("127.0.0.1", port, peer)
            except TransportError:
                pass  # refused, as every time: the peer is offline
        await asyncio.sleep(0)  # done callbacks run on the next loop turn
        return before, len(node._tasks)
    finally:
        await node.stop()


def test_failed_dials_leave_no_tasks_behind(tmp_path):
    before, after = asyncio.run(_dial_offline(tmp_path, 50))
    assert after == before, f"{after - before} finished dials kept"
