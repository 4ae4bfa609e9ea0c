"""Gossip: channels mirror the grid, and each node announces its signed fee policy.

A component of `gateway.ln.node.node.Node`, handed the node's core. Announced channels are
accepted only if the ledger knows them as open.
"""

from __future__ import annotations

import hashlib
import struct

from gateway.ln.channel.channel import Channel
from gateway.ln.channel.commitment import sign, verify
from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.codec.wire import Message
from gateway.ln.node.core import NodeCore
from gateway.ln.node.peer import Peer


def _policy_digest(node: bytes, p: FeePolicy) -> bytes:
    packed = struct.pack(">QIH", p.base_msat, p.ppm, p.cltv_delta)
    return hashlib.sha256(b"sgrid/policy/v1" + node + packed).digest()


class Gossip:
    def __init__(self, core: NodeCore) -> None:
        self.core = core

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
        if any(k[0] == cid for k in self.core.switch.graph.edges):
            return
        view = self.core.ledger.channel(cid)
        if (
            view is None
            or view.status != "open"
            or {view.a, view.b} != {msg["node_a"].hex(), msg["node_b"].hex()}
        ):
            return  # not a channel the ledger knows: ignore
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
