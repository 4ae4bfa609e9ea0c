"""Property tests of the pure layers: Merkle proofs, canonical ids, and money conservation."""

import copy
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ledger import blocks, merkle, rules, txs
from gateway.ledger.errors import TxRejected
from gateway.ledger.state import LedgerState
from hil_tests.ledger.conftest import ALICE, BOB, OPERATOR, VALIDATOR


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=70), st.data())
def test_every_leaf_proves_into_the_root_and_nothing_else_does(leaves, data):
    index = data.draw(st.integers(0, len(leaves) - 1))
    path = merkle.audit_path(leaves, index)
    root = merkle.root(leaves)
    assert merkle.root_from_path(leaves[index], index, len(leaves), path) == root
    assert merkle.root_from_path(leaves[index] + b"x", index, len(leaves), path) != root
    if path:
        bent = [bytes(32)] + path[1:]
        assert merkle.root_from_path(leaves[index], index, len(leaves), bent) != root


@given(st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=6))
def test_tx_id_ignores_key_order_but_not_values(fields):
    body = {"kind": "deposit", **fields}
    reordered = dict(reversed(list(body.items())))
    assert txs.Tx(body).id == txs.Tx(reordered).id
    changed = dict(body, kind="withdraw")
    assert txs.Tx(changed).id != txs.Tx(body).id


OPS = st.lists(
    st.tuples(
        st.sampled_from(["deposit", "withdraw", "fund", "close", "force", "penalty", "settle"]),
        st.sampled_from([ALICE, BOB]),
        st.integers(0, 3_000),
    ),
    max_size=14,
)


@settings(max_examples=40, deadline=None)
@given(OPS)
def test_money_is_conserved_and_refusals_change_nothing(ops):
    chain = blocks.genesis("p", OPERATOR.pubkey, VALIDATOR, 0).hash
    state = LedgerState.genesis(chain, OPERATOR.pubkey, VALIDATOR.pubkey)
    for key in (ALICE, BOB):
        tx = txs.make(
            "enroll_participant", chain, participant=key.pubkey, name="p", role="prosumer"
        )
        rules.apply(state, tx.signed_by(OPERATOR), 1)
    channels: list[str] = []
    secret = bytes(32)
    for height, (op, key, amount) in enumerate(ops, start=2):
        other = BOB if key is ALICE else ALICE
        channel = channels[-1] if channels else "00" * 32
        if op == "deposit":
            tx = txs.make(
                "deposit", chain, account=key.pubkey, amount_msat=amount + 1, reference=""
            ).signed_by(OPERATOR)
        elif op == "withdraw":
            tx = txs.make("withdraw", chain, account=key.pubkey, amount_msat=amount + 1).signed_by(
                key
            )
        elif op == "fund":
            tx = txs.make(
                "channel_fund",
                chain,
                a=key.pubkey,
                b=other.pubkey,
                amount_a_msat=amount,
                amount_b_msat=amount // 2,
                dispute_blocks=2,
            ).signed_by(key, other)
        elif op == "close":
            cap = state.channels[channel].capacity if channel in state.channels else amount
            tx = txs.make(
                "channel_close",
                chain,
                channel=channel,
                balance_a_msat=cap // 3,
                balance_b_msat=cap - cap // 3,
            ).signed_by(ALICE, BOB)
        elif op == "force":
            c = state.channels.get(channel)
            cap = c.capacity if c else amount
            holder = key if c is None or key.pubkey in (c.a, c.b) else other
            s = txs.commitment_state(
                chain, channel, amount, cap, 0, holder.pubkey, hashlib.sha256(secret).hexdigest()
            )
            counter = BOB if holder is ALICE else ALICE
            tx = txs.make(
                "channel_force_close",
                chain,
                channel=channel,
                state=s,
                state_sig=txs.sign_state(s, counter),
            ).signed_by(holder)
        else:
            fields = {"secret": secret.hex()} if op == "penalty" else {}
            tx = txs.make(
                f"channel_{op}",
                chain,
                channel=channel,
                party="a" if key is ALICE else "b",
                **fields,
            ).signed_by(key)
        before = copy.deepcopy(state)
        try:
            rules.apply(state, tx, height)
        except TxRejected:
            assert state == before
        if op == "fund" and tx.id in state.channels:
            channels.append(tx.id)
        assert state.conservation_error() is None
