"""A forwarder keeps the preimages it learns downstream with the upstream channel (to claim on
the ledger if that channel is force-closed before its fulfil is signed), and forgets them once
the fulfil is committed: the channel document, written at every commit, does not grow with
every payment ever forwarded."""

from __future__ import annotations

import hashlib

from gateway.ln.node.switch import PRUNE_MIN
from hil_tests.gateway.ln.mesh import Mesh

M = 1_000_000


def test_forwarded_preimages_are_kept_while_needed_and_then_forgotten():
    mesh = Mesh()
    a, b, c = mesh.node("alice"), mesh.node("bob"), mesh.node("carol")
    mesh.connect("alice", "bob", (50 * M, 50 * M))
    mesh.connect("bob", "carol", (50 * M, 50 * M))
    upstream = next(ch for ch in b.channels.values() if ch.node_ids[ch.remote] == a.node_id)
    sizes = []
    for i in range(3 * PRUNE_MIN):
        inv = c.add_invoice(hashlib.sha256(b"p%d" % i).digest(), 1000)
        pay = a.pay(c.node_id, inv.payment_hash, 1000, mesh.ledger.height())
        mesh.pump()
        assert pay.status == "succeeded"
        sizes.append(len(upstream.extra.get("preimages", {})))
    assert max(sizes) <= PRUNE_MIN + 1  # pruned, never more than the threshold
    assert sizes[PRUNE_MIN - 1] == PRUNE_MIN  # nothing forgotten before a pass


def test_a_pruning_pass_keeps_the_preimage_of_an_htlc_still_in_flight_upstream():
    mesh = Mesh()
    a, b, c = mesh.node("alice"), mesh.node("bob"), mesh.node("carol")
    mesh.connect("alice", "bob", (50 * M, 50 * M))
    mesh.connect("bob", "carol", (50 * M, 50 * M))
    upstream = next(ch for ch in b.channels.values() if ch.node_ids[ch.remote] == a.node_id)
    for i in range(PRUNE_MIN):
        inv = c.add_invoice(hashlib.sha256(b"p%d" % i).digest(), 1000)
        a.pay(c.node_id, inv.payment_hash, 1000, mesh.ledger.height())
        mesh.pump()
    assert len(upstream.extra["preimages"]) == PRUNE_MIN
    held = c.add_invoice(hashlib.sha256(b"held").digest(), 1000)
    pay = a.pay(c.node_id, held.payment_hash, 1000, mesh.ledger.height())
    # one pass: alice adds, bob forwards, carol fulfils and bob learns the preimage (the pass
    # that prunes), but bob's fulfil towards alice is still only queued
    mesh.pump(rounds=1, must_settle=False)
    assert any(h.payment_hash == held.payment_hash for h in upstream.latest.htlcs)
    assert upstream.extra["preimages"] == {held.payment_hash.hex(): held.preimage.hex()}
    mesh.pump()
    assert pay.status == "succeeded"
