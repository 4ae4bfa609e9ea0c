"""The order in which a node flushes its peers (core._flush_peers): what moves a payment on (an
UpdateBatch: a forwarded add, a fulfil; sg_preimages) leaves before acks and revokes, whichever
peer connected first, after one commit."""

from __future__ import annotations

import hashlib

import pytest

from gateway.ln.channel.htlc import FeePolicy
from gateway.ln.channel.messages import Preimages
from gateway.ln.node.core import NodeCore
from gateway.ln.node.ledger_port import MemoryLedger
from gateway.ln.node.peer import Peer
from hil_tests.gateway.ln.channel_pair import node_keys, open_pair

M = 1_000_000


class _Conn:
    """Records each socket write: (peer name, the store's commits by then, messages)."""

    def __init__(self, name: str, core: NodeCore, sent: list[tuple[str, int, int]]) -> None:
        self.name, self.core, self.sent = name, core, sent

    def send_all(self, out: list[bytes]) -> None:
        self.sent.append((self.name, self.core.store.commits, len(out)))


def _forwarder(tmp_path, upstream_first: bool):
    """A forwarder's core with a channel from alice (upstream) and one to carol (downstream),
    its peers registered in the given order; returns (core, channels by name, sent)."""
    ledger = MemoryLedger()
    core = NodeCore(tmp_path, ledger, FeePolicy())
    alice, carol = node_keys("alice"), node_keys("carol")
    up_alice, up, up_cid = open_pair(alice, core.keys, (50 * M, 50 * M), ledger.chain, "a")
    down, down_carol, down_cid = open_pair(core.keys, carol, (50 * M, 50 * M), ledger.chain, "c")
    for cid, ch in ((up_cid, up), (down_cid, down)):
        ch.on_persist = core.store.mark
        core.switch.channels[cid] = ch
    sent: list[tuple[str, int, int]] = []
    order = [("alice", alice), ("carol", carol)]
    for name, keys in order if upstream_first else order[::-1]:
        core.peers[keys.node_id] = Peer(keys.node_id, _Conn(name, core, sent), core.commit)
    chans = {"alice": up_alice, "up": up, "down": down, "carol": down_carol}
    return core, chans, sent, alice.node_id, carol.node_id


@pytest.mark.parametrize("upstream_first", [True, False])
def test_the_forwarded_add_leaves_before_the_ack_upstream_after_one_commit(
    tmp_path, upstream_first
):
    core, ch, sent, alice, carol = _forwarder(tmp_path, upstream_first)
    h = hashlib.sha256(b"pay").digest()
    ch["alice"].queue_add(M, h, 500)
    ack = ch["up"].receive_update(ch["alice"].propose())
    ch["up"].drain_events()  # no onion: the switch is not asked to forward it here
    ch["down"].queue_add(M, h, 400)
    core.peers[alice].queue(ack)
    core.peers[carol].queue(ch["down"].propose())
    before = core.store.commits
    core._flush_peers()
    assert sent == [("carol", before + 1, 1), ("alice", before + 1, 1)]
    assert not any(p.outbox or p.moves_payments for p in core.peers.values())
    core.store.close()


@pytest.mark.parametrize("upstream_first", [True, False])
def test_preimages_upstream_leave_before_the_revoke_downstream(tmp_path, upstream_first):
    core, ch, sent, alice, carol = _forwarder(tmp_path, upstream_first)
    h = hashlib.sha256(b"pay").digest()
    ch["down"].queue_add(M, h, 400)
    ack = ch["carol"].receive_update(ch["down"].propose())
    revoke = ch["down"].receive_ack(ack)
    ch["down"].drain_events()
    core.peers[carol].queue(revoke)
    core.peers[alice].queue(Preimages(ch["up"].channel_id, ((0, b"\x01" * 32),)))
    before = core.store.commits
    core._flush_peers()
    assert sent == [("alice", before + 1, 1), ("carol", before + 1, 1)]
    core.store.close()
