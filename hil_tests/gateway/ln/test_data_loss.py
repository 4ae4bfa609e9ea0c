"""Data-loss protection on reconnection (gateway/ln/channel/data_loss.py): a node restored from
an old backup learns from its peer's reestablish that its state is stale (with a proof it can
check from its own seed), the peer learns the node is behind; an ordinary reconnection, in any
phase of an update round, triggers neither."""

from __future__ import annotations

import copy
import hashlib
import time

import pytest

from gateway.ln.channel import data_loss
from gateway.ln.channel import messages_wire as wire
from gateway.ln.channel.messages import Reestablish
from gateway.ln.errors import ProtocolViolation
from hil_tests.gateway.ln.channel_pair import make_pair, run_round

M = 1_000_000


def _add(a, n: int) -> None:
    a.queue_add(M, hashlib.sha256(bytes([n])).digest(), 500)


def _neither(x, y) -> None:
    for us, them in ((x, y), (y, x)):
        assert not data_loss.we_are_behind(us, them.reestablish_msg())
        assert not data_loss.peer_is_behind(us, them.reestablish_msg())


def test_an_ordinary_reconnection_in_any_phase_of_a_round_is_not_data_loss():
    a, b = make_pair()
    _neither(a, b)  # commitment 0, no secret exchanged yet
    for n in range(3):
        _add(a, n)
        batch = a.propose()
        _neither(a, b)  # proposed, not received
        ack = b.receive_update(batch)
        _neither(a, b)  # the acceptor signed, the proposer has not its ack
        rev = a.receive_ack(ack)
        _neither(a, b)  # the proposer revoked, the acceptor has not the revoke
        b.receive_revoke(rev)
        _neither(a, b)


def test_a_node_restored_from_an_old_backup_learns_it_is_behind_and_its_peer_too():
    a, b = make_pair()
    _add(a, 0)
    run_round(a, b)
    backup = copy.deepcopy(a)  # what alice's backup holds: commitment 1
    for n in (1, 2):
        _add(a, n)
        run_round(a, b)
    assert backup.latest.number < a.latest.number == b.latest.number
    assert data_loss.we_are_behind(backup, b.reestablish_msg())
    assert data_loss.peer_is_behind(b, backup.reestablish_msg())
    assert not data_loss.we_are_behind(b, backup.reestablish_msg())  # bob's own state is good


def test_a_claim_that_we_are_behind_needs_our_own_secret():
    a, b = make_pair()
    for n in range(2):
        _add(a, n)
        run_round(a, b)
    backup = copy.deepcopy(a)
    _add(a, 2)
    run_round(a, b)
    msg = b.reestablish_msg()
    forged = Reestablish(msg.channel_id, msg.latest, msg.revoked_through, bytes(32))
    with pytest.raises(ProtocolViolation, match="not ours"):
        data_loss.we_are_behind(backup, forged)
    # a peer claiming more than it holds cannot forge the secret either
    bluff = Reestablish(msg.channel_id, msg.latest + 5, msg.revoked_through + 5, msg.last_secret)
    with pytest.raises(ProtocolViolation):
        data_loss.we_are_behind(a, bluff)


def test_the_reestablish_carries_the_last_secret_on_the_wire():
    a, b = make_pair()
    _add(a, 0)
    run_round(a, b)
    msg = b.reestablish_msg()
    assert msg.revoked_through == 0 and msg.last_secret == a.local_secret(0)
    assert wire.from_wire(wire.TABLE.decode(wire.to_wire(msg))) == msg
    none_yet = make_pair()[0].reestablish_msg()
    assert none_yet.revoked_through == -1 and none_yet.last_secret == bytes(32)
    assert wire.from_wire(wire.TABLE.decode(wire.to_wire(none_yet))) == none_yet


def _watched_node(tmp_path):
    """A node core with one funded channel whose latest state holds our HTLC, expired."""
    from gateway.ln.channel.htlc import FeePolicy
    from gateway.ln.node.core import NodeCore
    from gateway.ln.node.gossip import Gossip
    from gateway.ln.node.ledger_port import MemoryLedger
    from gateway.ln.node.lifecycle import ChannelLifecycle
    from gateway.ln.node.watch import Watcher
    from hil_tests.gateway.ln.channel_pair import node_keys, open_pair

    ledger = MemoryLedger()
    core = NodeCore(tmp_path, ledger, FeePolicy())
    peer = node_keys("bob")
    for k in (core.keys, peer):
        ledger.deposit(k.node_id, 100 * M)
    ours, theirs, cid = open_pair(core.keys, peer, (50 * M, 50 * M), ledger.chain, "n", ledger)
    ours.on_persist = core.store.mark
    core.switch.channels[cid] = ours
    ours.queue_add(M, hashlib.sha256(b"x").digest(), 10)
    run_round(ours, theirs)  # our HTLC is in the latest state of both
    ledger.mine(20)  # ... and past its expiry
    watcher = Watcher(core, ChannelLifecycle(core, Gossip(core)))
    return core, watcher, ledger, cid


def test_after_a_start_an_expired_htlc_waits_for_the_peers_reestablish(tmp_path, monkeypatch):
    """The state may come from an old backup: until the peer reestablished the channel, an
    expired HTLC does not make the node publish it, however long the peer stays away (a grace of
    20 s used to publish it then: a restored node whose peer was down lost its channel)."""
    core, watcher, ledger, cid = _watched_node(tmp_path)
    started = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: started + 3600)  # an hour after the start
    for _ in range(3):
        watcher.tick()
        ledger.mine(50)
    assert core.switch.channels[cid].state.name == "OPEN"
    assert ledger.channel(cid).status == "open"
    core.reestablished.add(cid)  # the peer's reestablish showed our state current
    watcher.tick()
    assert core.switch.channels[cid].state.name == "FORCE_CLOSING"
    assert ledger.channel(cid).status == "closing"
    core.store.close()
