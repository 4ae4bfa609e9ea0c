"""Property tests of the pure layers: Merkle proofs, canonical ids, and money conservation."""

import copy
import hashlib
import json

from hypothesis import event, given, settings
from hypothesis import strategies as st

from gateway.ledger import blocks, merkle, rules, txs
from gateway.ledger.errors import TxRejected
from gateway.ledger.state import LedgerState
from hil_tests.gateway.ledger import funding
from hil_tests.gateway.ledger.conftest import ALICE, BOB, OPERATOR, VALIDATOR


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


@given(st.lists(st.binary(max_size=8), max_size=300))
def test_root_is_the_rfc6962_recursive_tree_hash(leaves):
    def mth(items):  # RFC 6962 section 2.1, literally
        if not items:
            return hashlib.sha256(b"").digest()
        if len(items) == 1:
            return hashlib.sha256(b"\x00" + items[0]).digest()
        k = 1
        while k * 2 < len(items):
            k *= 2
        return hashlib.sha256(b"\x01" + mth(items[:k]) + mth(items[k:])).digest()

    assert merkle.root(leaves) == mth(leaves)


@given(st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=6))
def test_tx_id_ignores_key_order_but_not_values(fields):
    body = {"kind": "deposit", **fields}
    reordered = dict(reversed(list(body.items())))
    assert txs.Tx(body).id == txs.Tx(reordered).id
    changed = dict(body, kind="withdraw")
    assert txs.Tx(changed).id != txs.Tx(body).id


JSON_VALUES = st.recursive(
    st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=6),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_wire_json_is_the_canonical_json_of_the_wire_form(fields, sigs):
    """Blocks store `wire_json` in place of json.dumps(to_json(), sort_keys=True): same bytes."""
    tx = txs.Tx({"kind": "deposit", **fields}, sigs)
    expected = json.dumps(tx.to_json(), sort_keys=True, separators=(",", ":"))
    assert tx.wire_json == expected
    again = txs.from_json(json.loads(tx.wire_json))
    assert again.id == tx.id and again.sigs == tx.sigs


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "deposit",
                "withdraw",
                "fund",
                "close",
                "force",
                "penalty",
                "settle",
                "claim",
                "refund",
            ]
        ),
        st.sampled_from([ALICE, BOB]),
        st.integers(0, 3_000),
    ),
    max_size=24,
)
PREIMAGE = bytes([7] * 32)
PAYMENT_HASH = hashlib.sha256(PREIMAGE).hexdigest()


def _apply_or_change_nothing(state, tx, height, op):
    """Apply a random step's `tx`; a refusal must leave `state` as it was."""
    before = copy.deepcopy(state)
    try:
        rules.apply(state, tx, height)
        event(f"{op} applied")
    except TxRejected:
        assert state == before


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_money_is_conserved_and_refusals_change_nothing(ops):
    """Supply stays constant through funding, closes, HTLC outputs, claims, refunds, penalties."""
    chain = blocks.genesis("p", OPERATOR.pubkey, VALIDATOR, 0).hash
    state = LedgerState.genesis(chain, OPERATOR.pubkey, VALIDATOR.pubkey)
    setup, fund = funding.funded_channel(chain, 10_000, 3_000, 1_000, dispute_blocks=2)
    for tx in [*setup, fund]:
        rules.apply(state, tx, 1)
    channels: list[str] = [fund.id]
    secret = bytes(32)
    supply = 20_000
    height = 1
    for op, key, amount in ops:
        height += 1 + amount % 3
        other = BOB if key is ALICE else ALICE
        channel = channels[0] if amount % 3 else channels[-1]
        if op == "deposit":
            tx = txs.make(
                "deposit", chain, account=key.pubkey, amount_msat=amount + 1, reference=""
            ).signed_by(OPERATOR)
        elif op == "withdraw":
            tx = txs.make("withdraw", chain, account=key.pubkey, amount_msat=amount + 1).signed_by(
                key
            )
        elif op == "fund":
            tx = funding.channel_fund(chain, key, other, amount, amount // 2, 2).signed_by(
                key, other
            )
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
            htlcs = [
                txs.state_htlc(o, i, cap // 4, PAYMENT_HASH, height + amount % 16)
                for i, o in enumerate("ab"[: 1 + amount % 2])
                if cap // 4 > 0
            ]
            rest = cap - sum(h["amount_msat"] for h in htlcs)
            s = txs.commitment_state(
                chain,
                channel,
                amount,
                rest,
                0,
                holder.pubkey,
                hashlib.sha256(secret).hexdigest(),
                htlcs,
            )
            counter = BOB if holder is ALICE else ALICE
            tx = txs.make(
                "channel_force_close",
                chain,
                channel=channel,
                state=s,
                state_sig=txs.sign_state(s, counter),
            ).signed_by(holder)
        elif op in ("claim", "refund"):
            c = state.channels.get(channel)
            index = amount % 2
            party = "a" if key is ALICE else "b"
            if c is not None and index < len(c.htlcs) and amount % 4:
                offerer = c.htlcs[index]["offerer"]  # mostly the party that may do it
                party = offerer if op == "refund" else "ab"[offerer == "a"]
            signer = ALICE if party == "a" else BOB
            fields = {"preimage": PREIMAGE.hex()} if op == "claim" else {}
            tx = txs.make(
                f"channel_htlc_{op}", chain, channel=channel, party=party, htlc=index, **fields
            ).signed_by(signer)
        else:
            fields = {"secret": secret.hex()} if op == "penalty" else {}
            tx = txs.make(
                f"channel_{op}",
                chain,
                channel=channel,
                party="a" if key is ALICE else "b",
                **fields,
            ).signed_by(key)
        _apply_or_change_nothing(state, tx, height, op)
        if op == "fund" and tx.id in state.channels:
            channels.append(tx.id)
        assert state.conservation_error() is None
        if op == "deposit":
            supply += amount + 1
        elif op == "withdraw" and tx.id in state.tx_ids:
            supply -= amount + 1
        assert sum(state.balances.values()) + state.locked() == supply


HTLCS = st.lists(
    st.tuples(st.sampled_from("ab"), st.integers(1, 500), st.integers(0, 12), st.booleans()),
    max_size=5,
)
STEPS = st.lists(
    st.tuples(st.sampled_from(["claim", "refund", "settle"]), st.integers(0, 5), st.booleans()),
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(HTLCS, STEPS)
def test_each_htlc_output_is_paid_once_to_one_side_and_supply_is_constant(htlcs, steps):
    """A force-closed state with HTLC outputs, then claims / refunds / settle at rising heights."""
    chain = blocks.genesis("p", OPERATOR.pubkey, VALIDATOR, 0).hash
    state = LedgerState.genesis(chain, OPERATOR.pubkey, VALIDATOR.pubkey)
    setup, fund = funding.funded_channel(chain, 5_000, 3_000, 3_000, dispute_blocks=3)
    for tx in setup:
        rules.apply(state, tx, 1)
    rules.apply(state, fund, 2)
    outs = [
        txs.state_htlc(o, i, amt, PAYMENT_HASH if known else "ee" * 32, 3 + expiry)
        for i, (o, amt, expiry, known) in enumerate(sorted(htlcs))
    ]
    in_a = sum(h["amount_msat"] for h in outs if h["offerer"] == "a")
    in_b = sum(h["amount_msat"] for h in outs if h["offerer"] == "b")
    s = txs.commitment_state(
        chain, fund.id, 9, 3_000 - in_a, 3_000 - in_b, ALICE.pubkey, "00" * 32, outs
    )
    force = txs.make(
        "channel_force_close", chain, channel=fund.id, state=s, state_sig=txs.sign_state(s, BOB)
    )
    rules.apply(state, force.signed_by(ALICE), 3)
    height = 3
    for op, index, bump in steps:
        height += 1 + index % 3
        party = "ab"[index % 2]
        if bump and index < len(outs):  # mostly the party that may do it
            offerer = outs[index]["offerer"]
            party = offerer if op == "refund" else "ab"[offerer == "a"]
        fields = (
            {"party": party}
            if op == "settle"
            else {
                "party": party,
                "htlc": index,
                **({"preimage": PREIMAGE.hex()} if op == "claim" else {}),
            }
        )
        kind = "channel_settle" if op == "settle" else f"channel_htlc_{op}"
        tx = txs.make(kind, chain, channel=fund.id, **fields).signed_by(
            ALICE if party == "a" else BOB
        )
        _apply_or_change_nothing(state, tx, height, op)
        assert sum(state.balances.values()) + state.locked() == 10_000
        assert state.conservation_error() is None
    channel = state.channels[fund.id]
    paid = {"a": state.balances[ALICE.pubkey] - 2_000, "b": state.balances[BOB.pubkey] - 2_000}
    if channel.status in ("settled", "closed"):
        expect = {"a": s["balance_a_msat"], "b": s["balance_b_msat"]}
        for h in channel.htlcs:
            receiver = "ab"[h["offerer"] == "a"]
            if h["outcome"] == "fulfilled":
                assert h["payment_hash"] == PAYMENT_HASH
                expect[receiver] += h["amount_msat"]
            elif h["outcome"] == "refunded":
                assert height > h["cltv_expiry"]
                expect[h["offerer"]] += h["amount_msat"]
        assert paid == expect
        assert (channel.status == "closed") == all(h["outcome"] != "pending" for h in channel.htlcs)
    else:
        assert paid == {"a": 0, "b": 0}  # nothing leaves a channel while its window runs


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_signing_is_deterministic_and_matches_coincurves_der_path(secret, digest):
    """The validator signs with two libsecp256k1 calls; the signature must be the one coincurve's
    DER path gave (RFC 6979, low-S), or replicas and existing chains would disagree."""
    from coincurve.ecdsa import der_to_cdata, serialize_compact

    from gateway.ledger.keys import SigningKey, verify_digest

    try:
        key = SigningKey(secret)
    except ValueError:  # zero or >= the group order: not a key
        return
    expected = serialize_compact(der_to_cdata(key._key.sign(digest, hasher=None))).hex()
    assert key.sign_digest(digest) == expected == key.sign_digest(digest)
    assert verify_digest(key.pubkey, digest, expected)
