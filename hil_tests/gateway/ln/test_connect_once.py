"""Two dials of one peer at once make one connection (gateway/ln/node/node.py `connect`).

Seen in the sim's bring-up: a home's channel loop dialled the POD and sent open_channel while its
exchange dialled the POD too; both passed "not connected yet", the second connection replaced
the first and the open on it was lost: open_channel waited its whole timeout (20 s, three
virtual hours at 720x) before the next round opened the channel. Two real channel nodes in one
process (BOLT-8 on loopback, the ledger's rules in memory, real SQLite stores)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.codec import bolt8_transport
from gateway.ln.node.ledger_port import MemoryLedger
from gateway.ln.node.node import Node

M = 1_000_000


async def _scenario(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = MemoryLedger()
    a, b = Node(tmp / "a", ledger, FeePolicy()), Node(tmp / "b", ledger, FeePolicy())
    for n in (a, b):
        ledger.deposit(n.node_id, 10**10)
        await n.start(0, 0.05)
    dial, dials = bolt8_transport.connect, []
    second_may_dial = asyncio.Event()

    async def held_second(*args: Any) -> Any:  # a second dial waits until the open is answered
        dials.append(args)
        if len(dials) == 2:
            await second_may_dial.wait()
        return await dial(*args)

    monkeypatch.setattr(bolt8_transport, "connect", held_second)
    try:
        # both start before either handshake ends: the first suspends on the socket, and the
        # second runs up to its dial (the buggy node's "not connected yet" check passes for it)
        first = asyncio.create_task(a.connect("127.0.0.1", b.port, b.node_id))
        second = asyncio.create_task(a.connect("127.0.0.1", b.port, b.node_id))
        await asyncio.wait_for(first, 30)
        peer = a.peers[b.node_id]
        # the channel loop opens as soon as its dial is done, the other caller still waiting
        await a.lifecycle.open_channel(b.node_id, 10 * M, timeout=10)
        second_may_dial.set()  # a second dial, if one was made, now completes and replaces it
        await asyncio.wait_for(second, 30)
        assert len(dials) == 1, f"{len(dials)} dials of one peer"  # the second joined the first
        assert a.peers[b.node_id] is peer  # not replaced by a second connection
    finally:
        for n in (a, b):
            await n.stop()


def test_two_dials_at_once_make_one_connection_and_an_open_on_it_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_scenario(tmp_path, monkeypatch))
