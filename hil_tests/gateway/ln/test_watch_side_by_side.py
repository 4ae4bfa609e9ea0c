"""The watch acts on its channels side by side: the submissions of one tick wait for their
blocks together (gateway/ln/node/watch.py `Watcher.act`; docs/channels.md, Closing).

Each submission waits for a block, at least `idle_block_ms` apart while a channel is closing.
The watch submitted one channel's supersede, penalty or settle after the other's, each waiting
for its answer first, so a tick with several lasted that many blocks, and the claims after a
supersede came that much later: past their HTLC's expiry when enough upstream peers published
older states at once. Here four channels force-closed in one block are due to settle in one
tick; each submission waits until all four are waiting (`Together`), as transactions that
reach the real ledger together go in one block. Real NodeCore, Switch, Watcher, lifecycle and
store, the watch run as the node runs it (its ledger calls in worker threads); the ledger's own
rules (MemoryLedger)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from gateway.ln.errors import LedgerPortError
from gateway.ln.node.gossip import Gossip
from gateway.ln.node.ledger_port import MemoryLedger
from gateway.ln.node.lifecycle import ChannelLifecycle
from gateway.ln.node.watch import Watcher
from hil_tests.gateway.ln.watched_core import DEPOSIT, M, watched

N = 4  # channels, each with a peer of its own
ALONE_S = 10.0  # how long a submission waits for the others before it is refused


class Together:
    """MemoryLedger whose `submit` returns only once `n` submissions wait together: one made
    while no other is under way (the watch waiting for each answer before the next) is refused
    as "timeout" after ALONE_S, and so is every one after it."""

    def __init__(self, ledger: MemoryLedger, n: int) -> None:
        self.ledger = ledger
        self._all_here = threading.Barrier(n, timeout=ALONE_S)

    def submit(self, body: dict[str, Any], sigs: dict[str, str]) -> None:
        try:
            self._all_here.wait()
        except threading.BrokenBarrierError:
            raise LedgerPortError("timeout", "no other submission came meanwhile") from None
        self.ledger.submit(body, sigs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)


async def _tick(watcher: Watcher) -> None:
    """One tick as `Node.watch_ledger` runs it."""
    reads = await watcher.core.ledger_call(watcher.read, watcher.to_read())
    await watcher.act(reads)


def test_the_settles_of_one_tick_wait_for_their_blocks_together(tmp_path):
    w = watched(tmp_path, (50 * M, 10 * M))
    ours = [w.ours, *(mine for _, mine in w.more_peers(N - 1))]
    lifecycle = ChannelLifecycle(w.core, Gossip(w.core))
    watcher = Watcher(w.core, lifecycle)
    closes = [lifecycle.sign_force_close(ch) for ch in ours]
    assert w.ledger.submit_many(closes) == [None] * N  # one block
    w.ledger.mine(w.view().dispute_blocks + 1)
    w.core.ledger = Together(w.ledger, N)  # type: ignore[assignment]
    w.core.ledger_in_thread = True  # as Node.start sets it
    asyncio.run(_tick(watcher))
    for ch in ours:
        view = w.ledger.channel(ch.channel_id)
        assert view is not None and view.status == "closed", view
    assert w.ledger.balance(w.core.node_id) == DEPOSIT  # no payment: all of it back
    assert w.ledger.money() == (1 + N) * DEPOSIT
    w.core.store.close()
