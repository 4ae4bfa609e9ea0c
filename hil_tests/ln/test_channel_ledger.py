"""Channels against the in-memory ledger: funding, cooperative close, force close, penalty."""

from __future__ import annotations

import hashlib

import pytest

from gateway.ln.channel.commitment import sign
from gateway.ln.channel.ledger_bodies import (
    close_body,
    digest,
    force_close_body,
    penalty_body,
    settle_body,
)
from gateway.ln.errors import LedgerPortError
from gateway.ln.node.ledger_port import MemoryLedger
from hil_tests.ln.channel_pair import make_pair, node_keys, run_round, settle

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
    return (
        led.balance(A.node_id)
        + led.balance(B.node_id)
        + sum(c.capacity_msat for c in led.channels.values() if c.status in ("open", "closing"))
    )


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


def test_force_close_settles_after_the_dispute_window_with_htlcs_refunded():
    led = _ledger()
    a, b = make_pair((100_000_000, 50_000_000), led)
    _pay(a, b, 10_000_000, b"y")
    b.queue_add(2_000_000, b"\x07" * 32, 500)  # in flight when a force-closes

    run_round(b, a)
    state, sig = a.force_close()
    _submit(led, force_close_body(led.chain, state, sig), A)
    with pytest.raises(LedgerPortError) as exc:
        _submit(led, settle_body(led.chain, a.channel_id, "a"), A)
    assert exc.value.reason == "dispute_window_open"
    led.mine(10)
    _submit(led, settle_body(led.chain, a.channel_id, "a"), A)
    assert led.balance(A.node_id) == TOTAL - 10_000_000
    assert led.balance(B.node_id) == TOTAL + 10_000_000  # its 2M HTLC came back to it
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
