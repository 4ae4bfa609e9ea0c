"""Real channel nodes in one process (BOLT-8 on loopback, real SQLite stores) on a ledger of
the real rules in memory: the harness of the in-process node tests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.node.ledger_port import MemoryLedger
from gateway.ln.node.node import Node

FUNDS = 10**10  # each node's deposit on the ledger


async def until(pred: Any, what: str, timeout: float = 60) -> None:
    """Let the nodes run until `pred()` holds; the timeout is headroom, not a figure."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def start_nodes(tmp: Path, ledger: MemoryLedger, *names: str) -> list[Node]:
    """One started node per name (ticking every 0.05 s), each with FUNDS on `ledger`."""
    nodes = [Node(tmp / n, ledger, FeePolicy()) for n in names]
    for n in nodes:
        ledger.deposit(n.node_id, FUNDS)
        await n.start(0, 0.05)
    return nodes
