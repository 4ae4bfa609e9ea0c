"""One node's real core and watch (NodeCore, Switch, Watcher, store) with one channel funded on
an in-memory ledger that runs the real ledger rules (MemoryLedger), and the peer's channel end
driven by hand: the harness of the watch tests (test_watch_*.py). The peer signs its ledger
transactions itself (`Watched.peer_submit`), as a node process would."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.ln.channel.channel import Channel
from gateway.ln.channel.commitment import sign
from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.channel.ledger_bodies import digest
from gateway.ln.node.core import NodeCore
from gateway.ln.node.gossip import Gossip
from gateway.ln.node.keys import NodeKeys
from gateway.ln.node.ledger_port import ChannelView, MemoryLedger
from gateway.ln.node.lifecycle import ChannelLifecycle
from gateway.ln.node.watch import Watcher
from hil_tests.gateway.ln.channel_pair import node_keys, open_pair

M = 1_000_000
DEPOSIT = 100 * M


@dataclass
class Watched:
    core: NodeCore
    ledger: MemoryLedger
    ours: Channel  # our end, persisted by the core's store
    theirs: Channel  # the peer's end (no node: the test plays the peer)
    cid: bytes
    peer: NodeKeys

    def watcher(self) -> Watcher:
        return Watcher(self.core, ChannelLifecycle(self.core, Gossip(self.core)))

    def view(self) -> ChannelView:
        view = self.ledger.channel(self.cid)
        assert view is not None
        return view

    def peer_submit(self, body: dict[str, Any]) -> None:
        self.ledger.submit(
            body, {self.peer.node_id.hex(): sign(self.peer.node_priv, digest(body)).hex()}
        )

    def more_peers(self, count: int) -> list[tuple[Channel, Channel]]:
        """``count`` more peers (``peer1``...), each with DEPOSIT and an OPEN channel it opened
        to us (50 M of its own, 10 M of ours): (theirs, ours) per channel."""
        pairs = []
        for n in range(1, count + 1):
            keys = node_keys(f"peer{n}")
            self.ledger.deposit(keys.node_id, DEPOSIT)
            theirs, ours, cid = open_pair(
                keys, self.core.keys, (50 * M, 10 * M), self.ledger.chain, f"n{n}", self.ledger
            )
            ours.on_persist = self.core.store.mark
            self.core.switch.channels[cid] = ours
            pairs.append((theirs, ours))
        return pairs

    def peer_state(self) -> tuple[dict, bytes]:
        """The peer's ledger state of its latest commitment and our signature of it."""
        return self.theirs.ledger_state(self.theirs.latest, self.theirs.me), (
            self.theirs.remote_ledger_sig
        )


def watched(
    tmp_path: Path, amounts: tuple[int, int], *, we_open: bool = True, peer: str = "peer"
) -> Watched:
    """Our node (party 0 if ``we_open``, else 1) with one OPEN channel to ``peer``; both have
    DEPOSIT on the ledger before funding. The channel is not marked reestablished."""
    ledger = MemoryLedger()
    core = NodeCore(tmp_path, ledger, FeePolicy())
    keys = node_keys(peer)
    for k in (core.keys, keys):
        ledger.deposit(k.node_id, DEPOSIT)
    pair = (core.keys, keys) if we_open else (keys, core.keys)
    a, b, cid = open_pair(*pair, amounts, ledger.chain, "n", ledger)
    ours, theirs = (a, b) if we_open else (b, a)
    ours.on_persist = core.store.mark
    core.switch.channels[cid] = ours
    core.commit()
    return Watched(core, ledger, ours, theirs, cid, keys)
