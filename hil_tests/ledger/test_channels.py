"""Channel funding, closing and penalties through the HTTP API, as a gateway drives them."""

import hashlib
import time

import pytest

from gateway.ledger import txs
from gateway.ledger.errors import TxRejected
from hil_tests.ledger.conftest import ALICE, BOB, MALLORY

SECRET_1 = bytes([0x21] * 32)
SECRET_2 = bytes([0x22] * 32)


def _rejects(ledger, tx, reason):
    with pytest.raises(TxRejected) as err:
        ledger.submit(tx)
    assert err.value.reason == reason, err.value


@pytest.fixture
def channel(ledger):
    ledger.enroll(ALICE, deposit=1_000_000)
    ledger.enroll(BOB, deposit=1_000_000)
    fund = txs.make(
        "channel_fund",
        ledger.chain,
        a=ALICE.pubkey,
        b=BOB.pubkey,
        amount_a_msat=600_000,
        amount_b_msat=400_000,
        dispute_blocks=3,
    ).signed_by(ALICE, BOB)
    ledger.submit(fund)
    return fund.id


def _state(ledger, channel, number, a, b, holder, secret):
    return txs.commitment_state(
        ledger.chain, channel, number, a, b, holder.pubkey, hashlib.sha256(secret).hexdigest()
    )


def _force_close(ledger, channel, state, signer_of_state):
    return txs.make(
        "channel_force_close",
        ledger.chain,
        channel=channel,
        state=state,
        state_sig=txs.sign_state(state, signer_of_state),
    )


def _wait_height(ledger, height):
    deadline = time.monotonic() + 20
    while ledger.client.info()["height"] < height:
        assert time.monotonic() < deadline, "the dispute window never advanced"
        time.sleep(0.02)


def test_funding_locks_both_sides_and_needs_both_signatures(ledger, channel):
    info = ledger.client.channel(channel)
    assert info["status"] == "open" and info["capacity_msat"] == 1_000_000
    assert ledger.client.balance(ALICE.pubkey) == 400_000
    assert ledger.client.balance(BOB.pubkey) == 600_000
    half = txs.make(
        "channel_fund",
        ledger.chain,
        a=ALICE.pubkey,
        b=BOB.pubkey,
        amount_a_msat=1,
        amount_b_msat=1,
        dispute_blocks=3,
    )
    _rejects(ledger, half.signed_by(ALICE), "missing_signature")


def test_cooperative_close_pays_final_balances_once(ledger, channel):
    close = txs.make(
        "channel_close",
        ledger.chain,
        channel=channel,
        balance_a_msat=250_000,
        balance_b_msat=750_000,
    )
    _rejects(ledger, close.signed_by(ALICE), "missing_signature")
    _rejects(ledger, close.signed_by(ALICE, BOB, MALLORY), "unexpected_signer")
    ledger.submit(close.signed_by(ALICE, BOB))
    assert ledger.client.balance(ALICE.pubkey) == 650_000
    assert ledger.client.balance(BOB.pubkey) == 1_350_000
    again = txs.make(
        "channel_close", ledger.chain, channel=channel, balance_a_msat=0, balance_b_msat=1_000_000
    )
    _rejects(ledger, again.signed_by(ALICE, BOB), "channel_not_open")


def test_close_with_balances_not_summing_to_capacity_is_refused(ledger, channel):
    close = txs.make(
        "channel_close", ledger.chain, channel=channel, balance_a_msat=1, balance_b_msat=1
    )
    _rejects(ledger, close.signed_by(ALICE, BOB), "malformed")


def test_unilateral_close_settles_after_the_dispute_window(ledger, channel):
    state = _state(ledger, channel, 4, 300_000, 700_000, ALICE, SECRET_1)
    receipt = ledger.submit(_force_close(ledger, channel, state, BOB).signed_by(ALICE))
    assert ledger.client.channel(channel)["status"] == "closing"
    settle = txs.make("channel_settle", ledger.chain, channel=channel, party="b").signed_by(BOB)
    _rejects(ledger, settle, "dispute_window_open")
    _wait_height(ledger, receipt["height"] + 3)
    late = txs.make(
        "channel_penalty", ledger.chain, channel=channel, party="b", secret=SECRET_1.hex()
    )
    _rejects(ledger, late.signed_by(BOB), "dispute_window_closed")
    ledger.submit(
        txs.make("channel_settle", ledger.chain, channel=channel, party="b").signed_by(BOB)
    )
    assert ledger.client.balance(ALICE.pubkey) == 700_000
    assert ledger.client.balance(BOB.pubkey) == 1_300_000
    assert ledger.client.channel(channel)["status"] == "closed"


def test_publishing_a_revoked_state_loses_the_whole_channel(ledger, channel):
    old = _state(ledger, channel, 1, 900_000, 100_000, ALICE, SECRET_1)
    ledger.submit(_force_close(ledger, channel, old, BOB).signed_by(ALICE))
    wrong = txs.make(
        "channel_penalty", ledger.chain, channel=channel, party="b", secret=SECRET_2.hex()
    )
    _rejects(ledger, wrong.signed_by(BOB), "bad_secret")
    self_claim = txs.make(
        "channel_penalty", ledger.chain, channel=channel, party="a", secret=SECRET_1.hex()
    )
    _rejects(ledger, self_claim.signed_by(ALICE), "not_channel_party")
    penalty = txs.make(
        "channel_penalty", ledger.chain, channel=channel, party="b", secret=SECRET_1.hex()
    )
    ledger.submit(penalty.signed_by(BOB))
    assert ledger.client.balance(BOB.pubkey) == 1_600_000
    assert ledger.client.balance(ALICE.pubkey) == 400_000
    assert ledger.client.channel(channel)["status"] == "penalized"
    settle = txs.make("channel_settle", ledger.chain, channel=channel, party="a").signed_by(ALICE)
    _rejects(ledger, settle, "channel_not_closing")


def test_force_close_needs_a_state_signed_by_the_counterparty(ledger, channel):
    state = _state(ledger, channel, 2, 500_000, 500_000, ALICE, SECRET_1)
    _rejects(ledger, _force_close(ledger, channel, state, ALICE).signed_by(ALICE), "bad_state")
    lopsided = _state(ledger, channel, 2, 500_000, 600_000, ALICE, SECRET_1)
    _rejects(ledger, _force_close(ledger, channel, lopsided, BOB).signed_by(ALICE), "bad_state")
    stranger = _state(ledger, channel, 2, 500_000, 500_000, MALLORY, SECRET_1)
    _rejects(ledger, _force_close(ledger, channel, stranger, BOB).signed_by(MALLORY), "bad_state")
    other = _state(ledger, "ab" * 32, 2, 500_000, 500_000, ALICE, SECRET_1)
    _rejects(
        ledger, _force_close(ledger, "ab" * 32, other, BOB).signed_by(ALICE), "unknown_channel"
    )


def test_withdraw_while_funds_are_locked_is_a_double_spend(ledger, channel):
    tx = txs.make("withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=400_001).signed_by(
        ALICE
    )
    _rejects(ledger, tx, "insufficient_funds")


def test_pushing_transactions_cannot_hurry_a_dispute_window_by(ledger, channel):
    # A cheater publishes a revoked state, then floods the ledger so that blocks go by before
    # the victim's node looks. While a channel is closing, the ledger spaces blocks at least
    # idle_block_ms apart (30 ms in these tests, 1 s by default), so the window lasts at least
    # dispute_blocks * idle_block_ms however many transactions arrive.
    old = _state(ledger, channel, 1, 900_000, 100_000, ALICE, SECRET_1)
    receipt = ledger.submit(_force_close(ledger, channel, old, BOB).signed_by(ALICE))
    t0 = time.monotonic()
    for i in range(6):
        withdraw = txs.make(
            "withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=1, nonce=100 + i
        )
        ledger.submit(withdraw.signed_by(ALICE))
    elapsed_ms = (time.monotonic() - t0) * 1000
    blocks = ledger.client.info()["height"] - receipt["height"]
    assert blocks == 6  # one per withdrawal, none faster than the spacing...
    assert elapsed_ms >= 6 * 30 * 0.9, elapsed_ms  # ...so six blocks took six spacings
