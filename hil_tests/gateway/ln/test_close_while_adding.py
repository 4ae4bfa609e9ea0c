"""A cooperative close that crosses the peer's add (gateway/ln/channel/channel.py receive_update,
gateway/ln/node/switch.py): two real channel nodes in one process (BOLT-8 on loopback, the
ledger's rules in memory, real SQLite stores). Alice's batch with an HTLC is on its way when
bob starts closing. Bob refused the batch ("HTLC added after shutdown"): alice's proposal then
waited for an ack that never came, neither side could close cooperatively, and the payment hung
until its expiry. As BOLT 2 asks of the node that sent `shutdown`, bob signs the batch and fails
the HTLC instead of routing it; the payment fails, and the channel closes."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from gateway.ln.channel.channel import ChannelState
from gateway.ln.node.ledger_port import MemoryLedger
from hil_tests.gateway.ln.inproc_nodes import FUNDS, start_nodes, until

M = 1_000_000


async def _scenario(tmp: Path) -> None:
    ledger = MemoryLedger()
    a, b = await start_nodes(tmp, ledger, "alice", "bob")
    try:
        await a.connect("127.0.0.1", b.port, b.node_id)
        await a.lifecycle.open_channel(b.node_id, 10 * M)
        (cid,) = a.switch.channels
        await until(lambda: cid in b.switch.channels, "bob to hold the channel")
        await until(
            lambda: all(n.switch.channels[cid].state == ChannelState.OPEN for n in (a, b)),
            "the channel to open on both sides",
        )
        money = ledger.money()
        inv = b.switch.add_invoice(secrets.token_bytes(32), M, b"", 2**40)
        # alice proposes her add (sent at once); bob starts closing before he reads it
        a.switch.pay(b.node_id, inv.payment_hash, M, a.height, 18, b"")
        a.after()
        close = asyncio.create_task(b.lifecycle.close_channel(cid, force=False, timeout=60))
        pay = await a.wait_for(inv.payment_hash, 60)
        assert pay.status == "failed", pay
        await close
        await until(
            lambda: all(n.switch.channels[cid].state == ChannelState.CLOSED for n in (a, b)),
            "both to see it closed",
        )
        assert ledger.channel(cid).status == "closed"  # type: ignore[union-attr]
        assert ledger.money() == money
        assert ledger.balance(a.node_id) + ledger.balance(b.node_id) == 2 * FUNDS
        assert not inv.paid
    finally:
        for n in (a, b):
            await n.stop()


def test_a_close_that_crosses_the_peers_add_fails_the_htlc_and_closes(tmp_path):
    asyncio.run(_scenario(tmp_path))
