"""Gossip: channels mirror the grid, and each node announces its signed fee policy.

A component of `gateway.ln.node.node.Node`, handed the node's core. Announced channels are
accepted only if the ledger knows them as open, and kept only while it does: nobody announces
a close, so the ticker asks the ledger again about each channel of others in the graph, a few
a tick, each about every `recheck_s` (`forget_closed`), and forgets those it shows closed or
does not know twice in a row (a route over one fails at its first hop; a graph that only grows
is also a leak). An announcement is checked on the ledger in a worker thread, in a task of its
own (`MAX_CHECKS` at once; more are dropped until one ends, and come again with the next
graph a peer sends): the peer's burst goes on meanwhile, and a ledger slow to answer stalls
no payment.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
import time

from gateway.ln.channel.channel import Channel
from gateway.ln.channel.commitment import sign, verify
from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.codec.wire import Message
from gateway.ln.node.core import NodeCore
from gateway.ln.node.peer import Peer

log = logging.getLogger(__name__)
RECHECK_S = 60.0  # each channel of others in the graph is looked up on the ledger this often
RECHECKS_PER_TICK = 2  # ledger look-ups per tick at most (the ticker runs every 0.2 s)
MAX_CHECKS = 16  # announcements of unknown channels being looked up on the ledger at once


def _policy_digest(node: bytes, p: FeePolicy) -> bytes:
    packed = struct.pack(">QIH", p.base_msat, p.ppm, p.cltv_delta)
    return hashlib.sha256(b"sgrid/policy/v1" + node + packed).digest()


class Gossip:
    def __init__(self, core: NodeCore, recheck_s: float = RECHECK_S) -> None:
        self.core = core
        self.recheck_s = recheck_s
        self._to_check: list[bytes] = []  # this pass's channels of others, not yet looked up
        self._next_pass = 0.0  # time.monotonic() of the next pass (real time, not the clock's)
        self._unknown: set[bytes] = set()  # channels the ledger did not know on the last pass
        self._checking: dict[bytes, asyncio.Task[None]] = {}  # announcements being looked up
        self.dropped = 0  # announcements dropped while MAX_CHECKS were being looked up

    async def forget_closed(self) -> None:
        """Look up the next few channels of others on the ledger; forget those it has closed,
        and those it does not know on two passes in a row (a lagging replica, a ledger restored
        from a backup). The lookups run off the event loop: a slow ledger must not stall the
        node's payments. LedgerPortError goes to the caller (the ticker logs it; that channel
        is looked up again next pass)."""
        graph, own = self.core.switch.graph, self.core.switch.channels
        if not self._to_check:
            now = time.monotonic()
            if now < self._next_pass:
                return
            self._next_pass = now + self.recheck_s
            self._to_check = sorted({cid for cid, _ in graph.edges if cid not in own})
        for _ in range(min(RECHECKS_PER_TICK, len(self._to_check))):
            cid = self._to_check.pop()
            if cid in own or not any(k[0] == cid for k in graph.edges):
                continue
            view = await self.core.ledger_call(self.core.ledger.channel, cid)
            if view is not None and view.status == "open":
                self._unknown.discard(cid)
                continue
            if view is None and cid not in self._unknown:
                self._unknown.add(cid)  # forgotten only if still unknown on the next pass
                continue
            self._unknown.discard(cid)
            graph.remove_channel(cid)
            log.info("gossip: channel %s is %s on the ledger: forgotten", cid.hex()[:16],
                     "unknown" if view is None else view.status)  # fmt: skip

    # --- gossip: channels mirror the grid; each node announces its grid charge ---------------------
    def announce_local(self, ch: Channel) -> None:
        a, b = ch.node_ids
        self.core.switch.graph.add_channel(
            ch.channel_id, a, b, ch.latest.balances[0], ch.latest.balances[1]
        )

    def send_graph(self, peer: Peer) -> None:
        seen: set[bytes] = set()
        for (cid, _src), e in self.core.switch.graph.edges.items():
            if cid in seen:
                continue
            seen.add(cid)
            a, b = sorted((e.src, e.dst))
            peer.queue_named("sg_channel_announce", channel_id=cid, node_a=a, node_b=b)
        p = self.core.switch.policy
        peer.queue_named(
            "sg_node_policy",
            node=self.core.node_id,
            base_msat=p.base_msat,
            ppm=p.ppm,
            cltv_delta=p.cltv_delta,
            sig=sign(self.core.keys.node_priv, _policy_digest(self.core.node_id, p)),
        )

    async def on_sg_channel_announce(self, peer: Peer, msg: Message) -> None:
        cid = msg["channel_id"]
        if cid in self._checking or any(k[0] == cid for k in self.core.switch.graph.edges):
            return
        if len(self._checking) >= MAX_CHECKS:
            self.dropped += 1
            return
        task = asyncio.create_task(self._check_announced(cid, msg["node_a"], msg["node_b"]))
        self._checking[cid] = task
        task.add_done_callback(lambda _: self._checking.pop(cid, None))

    async def _check_announced(self, cid: bytes, node_a: bytes, node_b: bytes) -> None:
        """Add an announced channel to the graph if the ledger shows it open between those two."""
        try:
            view = await self.core.ledger_call(self.core.ledger.channel, cid)
        except Exception as exc:  # noqa: BLE001 - the ledger's trouble: the next graph retries
            log.debug("gossip: channel %s not checked: %s", cid.hex()[:16], exc)
            return
        if (
            view is None
            or view.status != "open"
            or {view.a, view.b} != {node_a.hex(), node_b.hex()}
            or any(k[0] == cid for k in self.core.switch.graph.edges)
        ):
            return  # not a channel the ledger knows (ignored), or added meanwhile
        self.core.switch.graph.add_channel(
            cid,
            bytes.fromhex(view.a),
            bytes.fromhex(view.b),
            view.capacity_msat,
            view.capacity_msat,
        )

    async def on_sg_node_policy(self, peer: Peer, msg: Message) -> None:
        pol = FeePolicy(msg["base_msat"], msg["ppm"], msg["cltv_delta"])
        if msg["node"] != self.core.node_id and verify(
            msg["node"], _policy_digest(msg["node"], pol), msg["sig"]
        ):
            self.core.switch.graph.set_policy(msg["node"], pol)
