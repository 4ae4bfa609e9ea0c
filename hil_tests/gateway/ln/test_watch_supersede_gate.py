"""The watch supersedes only a state it can trust (gateway/ln/node/watch.py; reviewer1 finding
4; docs/channels.md, Closing).

A node run from a backup taken mid-round (the acceptor waiting for the peer's revoke) holds a
latest state it has since revoked, and cannot know it until the peer's reestablish says so. If
the peer then publishes a state the backup thinks unrevoked (it is revoked: bait), superseding
with that latest hands the peer the whole channel through the penalty. So, as the close for an
expired HTLC, the supersede waits until the peer reestablished the channel since our start
(`NodeCore.reestablished`, which a stale state never gets: the reestablish marks it `behind`).
Real NodeCore, Switch, Watcher and store; the ledger's own rules (MemoryLedger)."""

from __future__ import annotations

import copy
import hashlib

from gateway.ln.channel.channel import secret_index
from gateway.ln.channel.ledger_bodies import force_close_body, penalty_body
from gateway.ln.errors import LedgerPortError
from hil_tests.gateway.ln.channel_pair import run_round
from hil_tests.gateway.ln.watched_core import DEPOSIT, M, watched


def _hash(n: int) -> bytes:
    return hashlib.sha256(bytes([n])).digest()


def test_a_node_restored_from_a_mid_round_backup_does_not_supersede_with_a_revoked_state(
    tmp_path,
):
    w = watched(tmp_path, (50 * M, 50 * M), we_open=False)  # we are bob, party 1
    w.theirs.queue_add(M, _hash(1), 500)
    run_round(w.theirs, w.ours)  # commitment 1
    w.theirs.queue_add(M, _hash(2), 500)
    batch = w.theirs.propose()
    bait = force_close_body(w.ledger.chain, *w.peer_state())  # alice's state 1
    ack = w.ours.receive_update(batch)  # we are at 2, alice's revoke of 1 not yet in
    hook, w.ours.on_persist = w.ours.on_persist, None
    backup = copy.deepcopy(w.ours)  # the backup is taken now
    w.ours.on_persist = hook
    w.ours.receive_revoke(w.theirs.receive_ack(ack))
    w.theirs.queue_add(M, _hash(3), 500)
    run_round(w.theirs, w.ours)  # commitment 3: we revoked 2
    assert w.theirs.remote_revoked_through == 2
    # our disk dies; we start from the backup; alice never reestablishes, she publishes the bait
    backup.on_persist = w.core.store.mark
    w.core.switch.channels[w.cid] = backup
    watcher = w.watcher()
    w.peer_submit(bait)
    watcher.tick()
    view = w.view()
    assert view.state["number"] == 1, "superseded with commitment 2, which we revoked"
    assert "supersede" not in backup.extra
    secret = w.theirs.remote_secrets.derive(secret_index(2))
    try:  # alice tries the penalty with our revoked commitment 2: it is not on the ledger
        w.peer_submit(penalty_body(w.ledger.chain, w.cid, "a", secret))
    except LedgerPortError:
        pass
    for _ in range(view.dispute_blocks + 2):
        w.ledger.mine()
        watcher.tick()
    view = w.view()
    assert view.status == "settled"  # alice's HTLC output is still pending (expiry 500)
    assert w.ledger.balance(w.core.node_id) == DEPOSIT  # our 50 M of alice's state 1
    assert w.ledger.money() == 2 * DEPOSIT
    w.core.store.close()


def test_the_supersede_waits_for_the_peers_reestablish_since_our_start(tmp_path):
    w = watched(tmp_path, (50 * M, 50 * M), we_open=False)
    w.theirs.queue_add(M, _hash(1), 500)
    batch = w.theirs.propose()
    older = force_close_body(w.ledger.chain, *w.peer_state())  # alice's state 0, unrevoked
    w.ours.receive_update(batch)  # we are at 1; our ack never reaches alice
    w.core.commit()
    watcher = w.watcher()
    w.peer_submit(older)
    for _ in range(2):
        watcher.tick()
        w.ledger.mine()
    assert w.view().state["number"] == 0
    assert "supersede" not in w.ours.extra
    w.core.reestablished.add(w.cid)  # alice's reestablish showed our state current
    watcher.tick()
    view = w.view()
    assert view.state["number"] == 1 and view.state["holder"] == w.core.node_id.hex()
    w.core.store.close()
