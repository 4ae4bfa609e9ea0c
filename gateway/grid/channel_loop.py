"""The grid node's channel loop: connect to and open the channels its topology asks for.

A round every CHANNEL_ROUND_S; while a peer or channel is missing (a grid coming up, a neighbour
restarting) the next round comes sooner, CHANNEL_RETRY_S first and doubling up to the same period.
Of each link, the end that `we_open` (gateway/grid/topology.py) connects and funds the channel.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.config_grid import GridConfig
from gateway.grid import topology
from gateway.grid.node import GridNode
from gateway.ln.errors import LnError
from gateway.ln.node.core import LIVE

log = logging.getLogger("gateway.grid")

CHANNEL_ROUND_S = 5.0  # channels along the topology: a round every 5 s when all are there
CHANNEL_RETRY_S = 0.5  # ... the first retry this soon when one is missing, doubling up to 5 s


def why(exc: BaseException) -> str:
    """An error for the log: its text, or what it means when it has none (a timeout raised
    by asyncio has no text: "opening a channel to pod: " said nothing)."""
    if str(exc):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "no answer in time (TimeoutError)"
    return type(exc).__name__


async def ensure_channels(node: GridNode, grid: GridConfig) -> bool:
    """Connect to and open the channels this node opens; True when every one is there."""
    complete = True
    for link in topology.neighbours(grid.topology, grid.node.name):
        if not link.we_open:
            continue
        peer_id = bytes.fromhex(link.peer.node_id)
        if peer_id not in node.peers:
            try:
                await node.connect(link.peer.host, link.peer.port, peer_id)
            except (TimeoutError, OSError, LnError) as exc:
                log.info("%s %s unreachable: %s", link.kind, link.peer.name, why(exc))
                complete = False
                continue
        have = [c for c in node.channels_with(peer_id) if c.state in LIVE]
        if have or not grid.node.channel_msat or peer_id not in node.peers:
            complete = complete and (bool(have) or not grid.node.channel_msat)
            continue
        try:
            amount = grid.node.channel_msat  # both ends fund it: payments both ways
            cid = await node.lifecycle.open_channel(peer_id, amount, amount)
            log.info("opened %s channel %s to %s", link.kind, cid.hex()[:16], link.peer.name)
        except (TimeoutError, LnError) as exc:
            log.warning("opening a channel to %s: %s", link.peer.name, why(exc))
            complete = False
    return complete


async def channel_loop(node: GridNode, grid: GridConfig) -> None:
    missing = 0  # rounds in a row that left something missing
    while True:
        complete = False
        try:
            complete = await ensure_channels(node, grid)
        except Exception:  # noqa: BLE001 - a peer down or the ledger busy: next round
            log.exception("channel round failed")
        missing = 0 if complete else missing + 1
        await asyncio.sleep(
            min(CHANNEL_ROUND_S, CHANNEL_RETRY_S * 2 ** max(0, missing - 1))
            if missing
            else CHANNEL_ROUND_S
        )
