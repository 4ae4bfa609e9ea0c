"""The node stores where it reached each peer (meta "peers", read at start by the redial tick),
and writes it only when an address is new or changed: it wrote it, in a commit of its own, on
every dial, each reconnection included. Two real nodes in one process."""

from __future__ import annotations

import asyncio

from gateway.ln.node.ledger_port import MemoryLedger
from hil_tests.gateway.ln.inproc_nodes import start_nodes, until


async def _scenario(tmp) -> None:  # noqa: ANN001 - a pytest tmp_path
    a, b = await start_nodes(tmp, MemoryLedger(), "alice", "bob")
    try:
        await a.connect("127.0.0.1", b.port, b.node_id)
        await until(lambda: b.node_id in a.peers, "alice to reach bob")
        assert a.store.get_meta("peers") == {b.node_id.hex(): ["127.0.0.1", b.port]}
        writes = a.store.db.total_changes
        for _ in range(3):  # the connection drops; alice dials again
            await a.peers[b.node_id].conn.close()
            await until(lambda: b.node_id not in a.peers, "the connection to drop")
            await a.connect("127.0.0.1", b.port, b.node_id)
            await until(lambda: b.node_id in a.peers, "alice to reach bob again")
        assert a.store.db.total_changes == writes  # nothing written for a known address
        assert a.store.get_meta("peers") == {b.node_id.hex(): ["127.0.0.1", b.port]}
    finally:
        for n in (a, b):
            await n.stop()


def test_a_redial_of_a_known_address_writes_nothing(tmp_path):
    asyncio.run(_scenario(tmp_path))
