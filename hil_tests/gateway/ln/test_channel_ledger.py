"""Channels against the in-memory ledger: funding, cooperative close, force close, penalty."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ledger.errors import TxRejected
from gateway.ln.channel.commitment import Commitment, Htlc, sign
from gateway.ln.channel.ledger_bodies import (
    close_body,
    digest,
    force_close_body,
    htlc_claim_body,
    htlc_refund_body,
    ledger_state,
    ledger_state_digest,
    penalty_body,
    settle_body,
)
from gateway.ln.errors import LedgerPortError
from gateway.ln.node.ledger_port import MemoryLedger
from hil_tests.gateway.ln.channel_pair import make_pair, node_keys, run_round, settle

A, B = node_keys("alice"), node_keys("bob")
TOTAL = 200_000_000


def _ledger() -> MemoryLedger:
    led = MemoryLedger()
    led.deposit(A.node_id, TOTAL)
    led.deposit(B.node_id, TOTAL)
    return led


def _pay(a, b, amount, tag):
    pre = hashlib.sha256(tag).digest()
    a.queue_add(amount, hashlib.sha256(pre).digest(), 500)
    settle(a, b, {hashlib.sha256(pre).digest(): pre})


def _submit(led, body, *keys):
    d = digest(body)
    led.submit(body, {k.node_id.hex(): sign(k.node_priv, d).hex() for k in keys})


def _money(led):
    return led.money()


def test_funding_moves_both_contributions_into_the_channel():
    led = _ledger()
    a, _ = make_pair((100_000_000, 50_000_000), led)
    view = led.channel(a.channel_id)
    assert view is not None and view.capacity_msat == 150_000_000 and view.status == "open"
    assert led.balance(A.node_id) == TOTAL - 100_000_000
    assert _money(led) == 2 * TOTAL


def test_cooperative_close_pays_the_last_split():
    led = _ledger()
    a, b = make_pair((100_000_000, 50_000_000), led)
    _pay(a, b, 30_000_000, b"x")
    a.shutdown()
    b.shutdown()
    b.receive_closing_signed(a.closing_signed())
    body = close_body(led.chain, a.channel_id, a.latest.balances)
    _submit(led, body, A, B)
    assert led.balance(A.node_id) == TOTAL - 30_000_000
    assert led.balance(B.node_id) == TOTAL + 30_000_000


def test_force_close_settles_after_the_window_and_an_unclaimed_htlc_is_refunded():
    led = _ledger()
    a, b = make_pair((100_000_000, 50_000_000), led)
    _pay(a, b, 10_000_000, b"y")
    b.queue_add(2_000_000, b"\x07" * 32, 30)  # in flight when a force-closes

    run_round(b, a)
    state, sig = a.force_close()
    assert [h["amount_msat"] for h in state["htlcs"]] == [2_000_000]
    _submit(led, force_close_body(led.chain, state, sig), A)
    with pytest.raises(LedgerPortError) as exc:
        _submit(led, settle_body(led.chain, a.channel_id, "a"), A)
    assert exc.value.reason == "dispute_window_open"
    led.mine(10)
    _submit(led, settle_body(led.chain, a.channel_id, "a"), A)
    assert led.balance(A.node_id) == TOTAL - 10_000_000
    assert led.balance(B.node_id) == TOTAL + 8_000_000  # its 2M HTLC is an output until expiry
    assert led.channel(a.channel_id).status == "settled"
    led.mine(30)
    _submit(led, htlc_refund_body(led.chain, a.channel_id, "b", 0), B)
    assert led.balance(B.node_id) == TOTAL + 10_000_000
    assert led.channel(a.channel_id).status == "closed"
    assert _money(led) == 2 * TOTAL


def test_the_receiver_who_knows_the_preimage_takes_a_force_closed_htlc():
    # issue 16 item 5: b offered a 2M HTLC, a learnt the preimage (released it downstream);
    # b publishes its state before a's fulfil is signed: the ledger must not refund it to b
    led = _ledger()
    a, b = make_pair((100_000_000, 50_000_000), led)
    preimage = b"\x42" * 32
    b.queue_add(2_000_000, hashlib.sha256(preimage).digest(), 30)
    run_round(b, a)
    state, sig = b.force_close()
    _submit(led, force_close_body(led.chain, state, sig), B)
    _submit(
        led, htlc_claim_body(led.chain, a.channel_id, "a", 0, preimage, number=state["number"]), A
    )
    led.mine(10)
    _submit(led, settle_body(led.chain, a.channel_id, "b"), B)
    assert led.balance(A.node_id) == TOTAL + 2_000_000
    assert led.balance(B.node_id) == TOTAL - 2_000_000
    view = led.channel(a.channel_id)
    assert view.status == "closed" and view.htlcs[0]["preimage"] == preimage.hex()
    assert _money(led) == 2 * TOTAL


def test_cheater_publishing_a_revoked_state_loses_the_whole_channel():
    led = _ledger()
    a, b = make_pair((100_000_000, 50_000_000), led)
    old_state, old_sig = a.ledger_state(a.latest, 0), a.remote_ledger_sig  # a keeps state 0
    _pay(a, b, 40_000_000, b"z")  # a paid b: a would like to undo it
    _submit(led, force_close_body(led.chain, old_state, old_sig), A)
    secret = b.on_remote_published(old_state["number"])
    assert secret is not None
    _submit(led, penalty_body(led.chain, b.channel_id, "b", secret), B)
    assert led.channel(a.channel_id).status == "penalized"
    assert led.balance(B.node_id) == TOTAL + 100_000_000
    assert led.balance(A.node_id) == TOTAL - 100_000_000
    assert _money(led) == 2 * TOTAL


def test_penalty_with_a_wrong_secret_is_refused():
    led = _ledger()
    a, b = make_pair((100_000_000, 50_000_000), led)
    _pay(a, b, 1000, b"w")
    state, sig = a.force_close()
    _submit(led, force_close_body(led.chain, state, sig), A)
    assert b.on_remote_published(state["number"]) is None  # latest: nothing to punish
    with pytest.raises(LedgerPortError) as exc:
        _submit(led, penalty_body(led.chain, b.channel_id, "b", b"\x00" * 32), B)
    assert exc.value.reason == "bad_secret"


def test_forged_state_signature_is_refused_by_the_ledger():
    led = _ledger()
    a, _ = make_pair((100_000_000, 50_000_000), led)
    state = a.ledger_state(a.latest, 0)
    state["balance_a_msat"], state["balance_b_msat"] = 150_000_000, 0
    with pytest.raises(LedgerPortError):
        _submit(led, force_close_body(led.chain, state, a.remote_ledger_sig), A)


_htlcs = st.lists(
    st.builds(
        Htlc,
        offerer=st.integers(0, 1),
        htlc_id=st.integers(0, 2**40),
        amount_msat=st.integers(1, 2**62),
        payment_hash=st.binary(min_size=32, max_size=32),
        cltv_expiry=st.integers(0, 2**32 - 1),
    ),
    max_size=6,
).map(lambda hs: tuple(sorted(set(hs))))


@settings(max_examples=80, deadline=None)
@given(
    htlcs=_htlcs,
    chain=st.text(max_size=30),
    balances=st.tuples(st.integers(0, 2**62), st.integers(0, 2**62)),
    holder=st.integers(0, 1),
    number=st.integers(0, 2**48 - 1),
    channel_id=st.binary(min_size=32, max_size=32),
)
def test_the_spliced_state_digest_is_the_canonical_digest_of_the_state(
    htlcs: tuple[Htlc, ...],
    chain: str,
    balances: tuple[int, int],
    holder: int,
    number: int,
    channel_id: bytes,
) -> None:
    c = Commitment(channel_id, number, balances, (3, 4), (b"\x02" * 32, b"\x03" * 32), htlcs)
    ids = (A.node_id, B.node_id)
    for _ in range(2):  # the second time from the cached HTLC outputs
        assert ledger_state_digest(chain, c, holder, ids) == digest(
            ledger_state(chain, c, holder, ids)
        )


def test_a_state_with_a_balance_outside_64_bits_is_refused_as_before() -> None:
    c = Commitment(b"\x01" * 32, 7, (2**63, 0), (0, 0), (b"\x02" * 32, b"\x03" * 32), ())
    with pytest.raises(TxRejected):
        ledger_state_digest('"htlcs":[]', c, 0, (A.node_id, B.node_id))


def test_a_state_with_an_htlc_amount_outside_64_bits_is_refused_as_before() -> None:
    h = Htlc(0, 1, 2**63, b"\x05" * 32, 100)
    c = Commitment(b"\x01" * 32, 7, (0, 0), (2, 0), (b"\x02" * 32, b"\x03" * 32), (h,))
    with pytest.raises(TxRejected):
        ledger_state_digest('"htlcs":[]', c, 0, (A.node_id, B.node_id))
