"""Channel funding, closing and penalties through the HTTP API, as a gateway drives them."""

import hashlib
import time

import pytest

from gateway.ledger import txs
from gateway.ledger.errors import TxRejected
from hil_tests.gateway.ledger import funding
from hil_tests.gateway.ledger.conftest import ALICE, BOB, MALLORY

SECRET_1 = bytes([0x21] * 32)
SECRET_2 = bytes([0x22] * 32)


def _rejects(ledger, tx, reason):
    with pytest.raises(TxRejected) as err:
        ledger.submit(tx)
    assert err.value.reason == reason, err.value


def _fund(ledger, dispute_blocks):
    setup, fund = funding.funded_channel(ledger.chain, 1_000_000, 600_000, 400_000, dispute_blocks)
    for tx in [*setup, fund]:
        ledger.submit(tx)
    return fund.id


# A dispute window of 100 blocks (3 s of 30 ms blocks) and HTLC expiries 100 blocks past it: the
# requests a test makes "while the window is open" or "before the expiry" fit on a loaded CI
# machine (with 3 blocks, 90 ms, a settle submitted right after the force-close was accepted, and
# an expiry 5 blocks after the window passed before the refund that had to be early).
WINDOW = 100
MARGIN = 100


@pytest.fixture
def channel(ledger):
    return _fund(ledger, dispute_blocks=WINDOW)


@pytest.fixture
def long_channel(ledger):
    # a window that stays open for the whole test (1000 blocks = 30 s of idle blocks): for the
    # penalty tests, which act inside the window; on a loaded machine 3 blocks (90 ms) may pass
    # between two requests
    return _fund(ledger, dispute_blocks=1000)


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
    deadline = time.monotonic() + 60
    while ledger.client.info()["height"] < height:
        assert time.monotonic() < deadline, "the dispute window never advanced"
        time.sleep(0.02)


def test_funding_locks_both_sides_and_needs_both_signatures(ledger, channel):
    info = ledger.client.channel(channel)
    assert info["status"] == "open" and info["capacity_msat"] == 1_000_000
    assert ledger.client.balance(ALICE.pubkey) == 400_000
    assert ledger.client.balance(BOB.pubkey) == 600_000
    half = funding.channel_fund(ledger.chain, ALICE, BOB, 1, 1, dispute_blocks=3)
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
    _wait_height(ledger, receipt["height"] + WINDOW)
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


def test_publishing_a_revoked_state_loses_the_whole_channel(ledger, long_channel):
    channel = long_channel
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
    # Judged on the ledger's own block times (a loaded machine only adds empty blocks between
    # the withdrawals, each spaced too).
    old = _state(ledger, channel, 1, 900_000, 100_000, ALICE, SECRET_1)
    receipt = ledger.submit(_force_close(ledger, channel, old, BOB).signed_by(ALICE))
    heights = []
    for i in range(6):
        withdraw = txs.make(
            "withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=1, nonce=100 + i
        )
        heights.append(ledger.submit(withdraw.signed_by(ALICE))["height"])
    assert heights == sorted(set(heights))  # one block per withdrawal: none was batched early
    top = ledger.client.info()["height"]
    times = [
        int(ledger.client.block(h)["header"]["time_ms"]) for h in range(receipt["height"], top + 1)
    ]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) >= 6 and min(gaps) >= 30, gaps  # every block a spacing after the last


PREIMAGE = bytes([0x33] * 32)
PAYMENT_HASH = hashlib.sha256(PREIMAGE).hexdigest()


def _htlc_state(ledger, channel, number, holder, secret, htlcs):
    in_flight = sum(h["amount_msat"] for h in htlcs)
    return txs.commitment_state(
        ledger.chain,
        channel,
        number,
        300_000,
        700_000 - in_flight,
        holder.pubkey,
        hashlib.sha256(secret).hexdigest(),
        htlcs,
    )


def _claim(ledger, channel, index, party, key, preimage=PREIMAGE):
    body = dict(channel=channel, party=party, htlc=index, preimage=preimage.hex())
    return txs.make("channel_htlc_claim", ledger.chain, **body).signed_by(key)


def _refund(ledger, channel, index, party, key):
    body = dict(channel=channel, party=party, htlc=index)
    return txs.make("channel_htlc_refund", ledger.chain, **body).signed_by(key)


def test_force_closed_htlc_goes_to_the_receiver_who_shows_the_preimage(ledger, channel):
    # issue 16 item 5: Bob (b) offered Alice 100,000 msat; Alice knows the preimage (she
    # released it downstream). Bob force-closes: the HTLC is an output, not a refund to Bob.
    height = ledger.client.info()["height"]
    htlcs = [txs.state_htlc("b", 0, 100_000, PAYMENT_HASH, height + WINDOW + MARGIN)]
    state = _htlc_state(ledger, channel, 4, BOB, SECRET_1, htlcs)
    receipt = ledger.submit(_force_close(ledger, channel, state, ALICE).signed_by(BOB))
    view = ledger.client.channel(channel)
    assert view["htlcs"][0]["outcome"] == "pending"
    _rejects(ledger, _claim(ledger, channel, 0, "a", ALICE, SECRET_2), "bad_preimage")
    _rejects(ledger, _claim(ledger, channel, 0, "b", BOB), "wrong_party")
    _rejects(ledger, _claim(ledger, channel, 1, "a", ALICE), "unknown_htlc")
    _rejects(ledger, _refund(ledger, channel, 0, "b", BOB), "dispute_window_open")
    ledger.submit(_claim(ledger, channel, 0, "a", ALICE))  # recorded, paid at settle
    assert ledger.client.balance(ALICE.pubkey) == 400_000
    _rejects(ledger, _claim(ledger, channel, 0, "a", ALICE, PREIMAGE + b""), "htlc_resolved")
    _wait_height(ledger, receipt["height"] + WINDOW)
    ledger.submit(
        txs.make("channel_settle", ledger.chain, channel=channel, party="a").signed_by(ALICE)
    )
    assert ledger.client.balance(ALICE.pubkey) == 400_000 + 300_000 + 100_000
    assert ledger.client.balance(BOB.pubkey) == 600_000 + 600_000
    view = ledger.client.channel(channel)
    assert view["status"] == "closed" and view["htlcs"][0]["preimage"] == PREIMAGE.hex()


def test_an_unclaimed_htlc_output_is_refunded_after_its_expiry(ledger, channel):
    height = ledger.client.info()["height"]
    expiry = height + WINDOW + MARGIN  # after the dispute window ends
    htlcs = [
        txs.state_htlc("a", 0, 50_000, PAYMENT_HASH, height + 1),
        txs.state_htlc("b", 7, 100_000, PAYMENT_HASH, expiry),
    ]
    state = _htlc_state(ledger, channel, 4, BOB, SECRET_1, htlcs)
    state["balance_a_msat"] -= 50_000
    state["balance_b_msat"] += 50_000
    receipt = ledger.submit(_force_close(ledger, channel, state, ALICE).signed_by(BOB))
    _wait_height(ledger, receipt["height"] + WINDOW)
    ledger.submit(
        txs.make("channel_settle", ledger.chain, channel=channel, party="b").signed_by(BOB)
    )
    view = ledger.client.channel(channel)
    # the expired HTLC went back to Alice at settle; Bob's is pending until its expiry
    assert view["status"] == "settled"
    assert [h["outcome"] for h in view["htlcs"]] == ["refunded", "pending"]
    assert ledger.client.balance(ALICE.pubkey) == 400_000 + 250_000 + 50_000
    _rejects(ledger, _refund(ledger, channel, 1, "b", BOB), "htlc_not_expired")
    _rejects(ledger, _refund(ledger, channel, 1, "a", ALICE), "wrong_party")
    _wait_height(ledger, expiry)
    _rejects(ledger, _claim(ledger, channel, 1, "a", ALICE), "htlc_expired")
    ledger.submit(_refund(ledger, channel, 1, "b", BOB))
    assert ledger.client.balance(BOB.pubkey) == 600_000 + 600_000 + 100_000
    assert ledger.client.channel(channel)["status"] == "closed"


def test_a_pending_htlc_output_claimed_after_settle_is_paid_at_once(ledger, channel):
    height = ledger.client.info()["height"]
    htlcs = [txs.state_htlc("b", 0, 100_000, PAYMENT_HASH, height + WINDOW + MARGIN)]
    state = _htlc_state(ledger, channel, 4, BOB, SECRET_1, htlcs)
    receipt = ledger.submit(_force_close(ledger, channel, state, ALICE).signed_by(BOB))
    _wait_height(ledger, receipt["height"] + WINDOW)
    ledger.submit(
        txs.make("channel_settle", ledger.chain, channel=channel, party="b").signed_by(BOB)
    )
    assert ledger.client.channel(channel)["status"] == "settled"
    ledger.submit(_claim(ledger, channel, 0, "a", ALICE))
    assert ledger.client.balance(ALICE.pubkey) == 400_000 + 300_000 + 100_000
    assert ledger.client.channel(channel)["status"] == "closed"


def test_the_penalty_takes_the_htlc_outputs_too(ledger, long_channel):
    channel = long_channel
    height = ledger.client.info()["height"]
    htlcs = [txs.state_htlc("b", 0, 100_000, PAYMENT_HASH, height + 1000)]
    revoked = _htlc_state(ledger, channel, 1, ALICE, SECRET_1, htlcs)
    ledger.submit(_force_close(ledger, channel, revoked, BOB).signed_by(ALICE))
    ledger.submit(_claim(ledger, channel, 0, "a", ALICE))  # the cheater claims the HTLC...
    penalty = txs.make(
        "channel_penalty", ledger.chain, channel=channel, party="b", secret=SECRET_1.hex()
    )
    ledger.submit(penalty.signed_by(BOB))  # ...and still loses everything, HTLC included
    assert ledger.client.balance(BOB.pubkey) == 600_000 + 1_000_000
    assert ledger.client.balance(ALICE.pubkey) == 400_000
    _rejects(ledger, _refund(ledger, channel, 0, "b", BOB), "channel_not_closing")


def test_htlc_outputs_must_add_up_and_be_well_formed(ledger, channel):
    good = txs.state_htlc("b", 0, 100_000, PAYMENT_HASH, 99)
    lopsided = _htlc_state(ledger, channel, 2, BOB, SECRET_1, [good])
    lopsided["balance_a_msat"] += 1
    _rejects(ledger, _force_close(ledger, channel, lopsided, ALICE).signed_by(BOB), "bad_state")
    twice = _htlc_state(ledger, channel, 2, BOB, SECRET_1, [good, good])
    _rejects(ledger, _force_close(ledger, channel, twice, ALICE).signed_by(BOB), "bad_state")
    zero = _htlc_state(ledger, channel, 2, BOB, SECRET_1, [dict(good, amount_msat=0)])
    _rejects(ledger, _force_close(ledger, channel, zero, ALICE).signed_by(BOB), "bad_state")
