"""A claim of an HTLC output names the published state it claims from (ledger_bodies
`htlc_claim_body`, docs/ledger-api.md §3).

A claim is identified by its body. After a `channel_supersede`, output `i` of the new state may
be another HTLC with the same payment hash as output `i` of the superseded state that the
receiver already claimed (a retried payment with the same hash, the outputs before it
renumbered): a claim body naming only the index and the preimage is then the earlier claim
again, a replay the ledger refuses ("duplicate" from the node, as if done), the output stays
pending and goes back to its offerer: the receiver that holds the preimage loses the money.

Here Bob (b) offers two HTLCs with Alice's payment hash: b:0 in commitment 2 (after Alice's a:0)
and b:1 in commitment 3, where Bob also failed a:0, so b:1 is output 1 of state 3 as b:0 was of
state 2. Bob publishes his unrevoked state 2, Alice claims b:0, Bob supersedes with his state 3
(Alice signed it before she lost it: she runs from a backup of commitment 2): Alice must still
be able to claim b:1. Once with the ledger's rules, once with Alice's node process watching the
real ledger node."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

from gateway.ledger import rules, txs
from gateway.ledger.client import LedgerClient
from gateway.ln.channel.channel import Channel
from gateway.ln.channel.commitment import sign
from gateway.ln.channel.ledger_bodies import (
    digest,
    force_close_body,
    htlc_claim_body,
    supersede_body,
)
from gateway.ln.node.keys import NodeKeys, load_or_create
from gateway.ln.node.store import Store
from gateway.ln.node.switch import Switch
from hil_tests.gateway.ledger import supersede_kit as kit
from hil_tests.gateway.ledger.conftest import ALICE, BOB, OPERATOR
from hil_tests.gateway.ln.channel_pair import open_pair, run_round
from hil_tests.gateway.ln.node_procs import NodeProc, wait_until
from hil_tests.gateway.ln.real_ledger import DEPOSIT, RealLedger

M = 1_000_000
P = bytes([0x51] * 32)  # Alice's invoice preimage
H = hashlib.sha256(P).digest()
K = hashlib.sha256(b"a payment Bob fails").digest()


# --- the ledger's rules -------------------------------------------------------------------------
def _claim(ch: str, index: int, number: int) -> txs.Tx:
    body = htlc_claim_body(kit.CHAIN, bytes.fromhex(ch), "a", index, P, number=number)
    return txs.Tx(body).signed_by(ALICE)


def test_a_claim_of_a_superseding_states_output_is_its_own_tx():
    ledger, ch = kit.funded(dispute_blocks=5)
    b0, b1 = (txs.state_htlc("b", i, 1_000, H.hex(), 50) for i in (0, 1))
    old = kit.state(ch, 2, BOB, 3_000, [txs.state_htlc("a", 0, 1_000, K.hex(), 50), b0])
    rules.apply(ledger, kit.force_close(old, BOB), 2)
    rules.apply(ledger, _claim(ch, 1, 2), 3)  # b:0, output 1 of state 2
    rules.apply(ledger, kit.supersede(kit.state(ch, 3, BOB, 4_000, [b0, b1]), BOB), 4)
    outs = ledger.channels[ch].htlcs
    assert [(h["id"], h["outcome"]) for h in outs] == [(0, "fulfilled"), (1, "pending")]
    rules.apply(ledger, _claim(ch, 1, 3), 5)  # b:1, output 1 of state 3: not a replay
    assert ledger.channels[ch].htlcs[1]["outcome"] == "fulfilled"
    rules.apply(ledger, kit.settle(ch, "a"), 10)
    assert ledger.channels[ch].status == "closed"
    assert kit.paid(ledger) == {"a": 4_000 + 2_000, "b": kit.CAPACITY - 6_000}
    assert ledger.conservation_error() is None


def test_the_claim_body_names_the_state_and_the_output():
    cid = bytes(range(32))
    bodies = {
        (n, i): htlc_claim_body("c", cid, "a", i, P, number=n) for n in (2, 3) for i in (0, 1)
    }
    assert len({digest(b) for b in bodies.values()}) == 4  # four distinct transactions
    assert bodies[(3, 1)]["nonce"] == "claim-3-1" and bodies[(3, 1)]["htlc"] == 1
    assert htlc_claim_body("c", cid, "a", 1, P, number=3) == bodies[(3, 1)]  # idempotent


# --- Alice's node on the real ledger ------------------------------------------------------------
def _enroll(client: LedgerClient, keys: NodeKeys, name: str) -> None:
    pub = keys.node_id.hex()
    for tx in (
        txs.make(
            "enroll_participant", client.info()["chain"], participant=pub, name=name, role="gateway"
        ),  # fmt: skip
        txs.make(
            "deposit", client.info()["chain"], account=pub, amount_msat=DEPOSIT, reference="t"
        ),  # fmt: skip
    ):
        client.submit(tx.signed_by(OPERATOR))


def _submit(client: LedgerClient, body: dict, *keys: NodeKeys) -> None:
    client.submit({"body": body, "sigs": {k.node_id.hex(): sign(k.node_priv, digest(body)).hex()
                                          for k in keys}})  # fmt: skip


def _open(client: LedgerClient, ka: NodeKeys, kb: NodeKeys, dispute_blocks: int):
    """Alice's and Bob's channel ends, funded with 50 M each on the ledger, with a longer
    dispute window."""
    a, b, _ = open_pair(
        ka, kb, (50 * M, 50 * M), client.info()["chain"], "f",
        dispute_blocks=dispute_blocks,
        submit=lambda body, sigs: client.submit({"body": body, "sigs": sigs}),
    )  # fmt: skip
    return a, b


def _store_alice(data_dir: Path, keys: NodeKeys, ch: Channel) -> None:
    """Alice's node database: the channel as her backup holds it, and her invoice of P."""
    store, switch = Store(data_dir / "channels.sqlite", keys), Switch(keys.node_id)
    try:
        store.load(switch)
        switch.channels[ch.channel_id] = ch
        ch.on_persist = store.mark
        store.mark(ch)
        switch.add_invoice(P, M)
        store.commit(switch)
    finally:
        store.close()


def _claims_logged(node: NodeProc) -> int:
    return (node.data_dir / "node.log").read_text().count("claimed HTLC output 1 ")


def test_alice_node_claims_the_output_of_the_superseding_state_too(tmp_path: Path) -> None:
    led = RealLedger(tmp_path / "ledger", idle_block_ms=200)
    ka, kb = load_or_create(tmp_path / "alice"), load_or_create(tmp_path / "bob")
    alice: NodeProc | None = None
    try:
        for keys, name in ((ka, "alice"), (kb, "bob")):
            _enroll(led.client, keys, name)
        a, b = _open(led.client, ka, kb, dispute_blocks=60)  # 12 s of blocks: headroom
        cid = a.channel_id.hex()
        expiry = led.client.info()["height"] + 2_000
        a.queue_add(M, K, expiry)
        run_round(a, b)  # 1: a:0
        b.queue_add(M, H, expiry)
        run_round(b, a)  # 2: a:0, b:0
        backup = copy.deepcopy(a)
        published = b.ledger_state(b.latest, 1), b.remote_ledger_sig
        b.queue_fail(0, "unknown payment")
        b.queue_add(M, H, expiry)  # the same hash again
        run_round(b, a)  # 3: b:0, b:1 (Bob's revoke of 2 lost with Alice's last commits)
        later = b.ledger_state(b.latest, 1), b.remote_ledger_sig
        assert [h["id"] for h in published[0]["htlcs"]] == [0, 0]
        assert [(h["offerer"], h["id"]) for h in later[0]["htlcs"]] == [("b", 0), ("b", 1)]
        _store_alice(tmp_path / "alice", ka, backup)
        alice = NodeProc("alice", tmp_path / "alice", tmp_path / "unused",
                         ["--ledger-url", led.url]).start()  # fmt: skip

        _submit(led.client, force_close_body(led.chain, *published), kb)
        out = lambda i: led.client.channel(cid)["htlcs"][i]  # noqa: E731
        wait_until(lambda: out(1)["outcome"] == "fulfilled", 60, "alice claims b:0")
        _submit(led.client, supersede_body(led.chain, *later), kb)
        assert led.client.channel(cid)["state"]["number"] == 3
        assert out(0)["outcome"] == "fulfilled"  # b:0, claimed in state 2, kept
        wait_until(lambda: out(1)["outcome"] == "fulfilled" or _claims_logged(alice) >= 2, 60,
                   "alice claims b:1")  # fmt: skip
        assert out(1)["outcome"] == "fulfilled", alice.log_tail()

        wait_until(lambda: led.client.channel(cid)["status"] == "closed", 60, "settled")
        state = led.client.channel(cid)["state"]
        assert state["balance_a_msat"] + state["balance_b_msat"] + 2 * M == 100 * M
        assert (
            led.client.balance(ka.node_id.hex())
            == DEPOSIT - 50 * M + state["balance_a_msat"] + 2 * M
        )
        assert led.client.balance(kb.node_id.hex()) == DEPOSIT - 50 * M + state["balance_b_msat"]
        wait_until(lambda: alice.channels()[0]["state"] == "CLOSED", 60, "alice sees it closed")
    finally:
        if alice is not None:
            alice.kill()
        led.stop()
