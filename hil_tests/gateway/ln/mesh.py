"""Several switches with channels between them, pumped in memory: the multi-hop test harness."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from gateway.ln.channel.channel import Channel
from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.channel.messages import Preimages
from gateway.ln.node.keys import NodeKeys
from gateway.ln.node.ledger_port import MemoryLedger
from gateway.ln.node.switch import Switch
from hil_tests.gateway.ln.channel_pair import open_pair


@dataclass
class Mesh:
    ledger: MemoryLedger = field(default_factory=MemoryLedger)
    keys: dict[str, NodeKeys] = field(default_factory=dict)
    switches: dict[str, Switch] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)
    lose_hints: bool = False  # drop every sg_preimages (the FulfillHtlc rounds still settle)

    def node(self, name: str, policy: FeePolicy | None = None) -> Switch:
        k = NodeKeys(hashlib.sha256(name.encode()).digest())
        self.keys[name] = k
        self.ledger.deposit(k.node_id, 10**12)
        sw = Switch(k.node_id, policy or FeePolicy())
        self.switches[name] = sw
        return sw

    def name_of(self, node_id: bytes) -> str:
        return next(n for n, k in self.keys.items() if k.node_id == node_id)

    def connect(self, a: str, b: str, amounts: tuple[int, int]) -> bytes:
        ka, kb = self.keys[a], self.keys[b]
        ca, cb, cid = open_pair(ka, kb, amounts, self.ledger.chain, f"{a}-{b}", self.ledger)
        for ch, name in ((ca, a), (cb, b)):
            self.switches[name].channels[cid] = ch
        for sw in self.switches.values():  # everyone learns the graph (gossip, in memory)
            sw.graph.add_channel(cid, ka.node_id, kb.node_id, amounts[0], amounts[1])
            sw.graph.set_policy(ka.node_id, self.switches[a].policy)
            sw.graph.set_policy(kb.node_id, self.switches[b].policy)
        self.switches[a].online.add(kb.node_id)
        self.switches[b].online.add(ka.node_id)
        return cid

    def _peer_channel(self, ch: Channel) -> tuple[Switch, Channel]:
        sw = self.switches[self.name_of(ch.node_ids[ch.remote])]
        return sw, sw.channels[ch.channel_id]

    def pump(self, rounds: int = 200, must_settle: bool = True) -> None:
        """Run update rounds between online nodes until nothing moves."""
        h = self.ledger.height()
        for _ in range(rounds):
            moved = False
            for name, sw in self.switches.items():
                if name in self.offline:
                    continue
                for ch in list(sw.channels.values()):
                    peer_sw, peer_ch = self._peer_channel(ch)
                    if self.name_of(peer_sw.node_id) in self.offline:
                        continue
                    msg = ch.propose()
                    if msg is None:
                        continue
                    moved = True
                    ack = peer_ch.receive_update(msg)
                    assert ack is not None
                    peer_ch.receive_revoke(ch.receive_ack(ack))
                    sw.handle(ch.drain_events(), h)
                    peer_sw.handle(peer_ch.drain_events(), h)
                    self._deliver_hints(h)
            if not moved:
                return
        if must_settle:
            raise AssertionError("mesh did not settle")

    def _deliver_hints(self, height: int) -> None:
        """What the nodes send after a commit: each channel's queued fulfils as sg_preimages to
        its peer, which learns them (and may fulfil upstream: hints again), until none is left."""
        for _ in range(100):
            moved = False
            for name, sw in self.switches.items():
                for ch in list(sw.channels.values()):
                    hints = ch.take_preimage_hints()
                    peer_sw, peer_ch = self._peer_channel(ch)
                    offline = {name, self.name_of(peer_sw.node_id)} & self.offline
                    if not hints or self.lose_hints or offline:
                        continue
                    moved = True
                    rejected = peer_ch.receive_preimages(Preimages(ch.channel_id, tuple(hints)))
                    assert not rejected, rejected  # an honest peer's hints are all good
                    peer_sw.handle(peer_ch.drain_events(), height)
            if not moved:
                return
        raise AssertionError("hints did not stop")

    def set_offline(self, name: str) -> None:
        self.offline.add(name)
        gone = self.keys[name].node_id
        for sw in self.switches.values():
            sw.online.discard(gone)
            for ch in sw.channels.values():
                if ch.node_ids[ch.remote] == gone:
                    sw.fail_unsent(ch.channel_id, "peer offline")

    def balances(self) -> dict[str, int]:
        return {
            n: sum(c.local_balance for c in sw.channels.values()) for n, sw in self.switches.items()
        }
