"""Seed 003's hourly auction as ledger transactions, against a real ledger node."""

import pytest

from gateway.ledger import config as ledger_config
from gateway.ledger import keys, service, txs
from gateway.ledger.client import LedgerClient, NotFound
from gateway.ledger.errors import TxRejected
from hil_tests.gateway.ledger.conftest import ALICE, BOB, GATEWAY, MALLORY, OPERATOR

CAROL = keys.SigningKey(bytes([7] * 32))
LISTING = "2026-03-21T13"  # the paper's example: 13:00-14:00 on Mar 21, opened at 12:01
START = 1774098000  # 2026-03-21 13:00 UTC


def _tx(ledger, kind, *signers, **fields):
    return ledger.submit(txs.make(kind, ledger.chain, **fields).signed_by(*signers))


def _offer(ledger, key, wh, reserve):
    return _tx(
        ledger,
        "pv_offer",
        key,
        listing_id=LISTING,
        seller=key.pubkey,
        wh=wh,
        reserve_msat_per_kwh=reserve,
    )


def _bid(ledger, key, wh, bid):
    return _tx(
        ledger, "buy_offer", key, listing_id=LISTING, buyer=key.pubkey, wh=wh, bid_msat_per_kwh=bid
    )


def _open_listing(ledger, signer=OPERATOR):
    """`accept_offer_broadcast` of LISTING (START to an hour later), signed by `signer`."""
    return _tx(
        ledger,
        "accept_offer_broadcast",
        signer,
        listing_id=LISTING,
        start=START,
        end=START + 3600,
    )


def _run_paper_example(ledger):
    for key in (ALICE, BOB, CAROL, MALLORY, GATEWAY):
        ledger.enroll(key)
    _open_listing(ledger)
    assert ledger.client.listing(LISTING)["state"] == "ACCEPT_OFFERS"
    a = _offer(ledger, ALICE, 3000, 0)  # 12:05, no reserve price
    b = _offer(ledger, BOB, 2000, 140_000)  # 12:10, reserve 140 sat/kWh
    c = _bid(ledger, CAROL, 2500, 150_000)
    d = _bid(ledger, MALLORY, 1500, 120_000)
    e = _bid(ledger, GATEWAY, 1000, 160_000)
    _tx(ledger, "close_bidding", OPERATOR, listing_id=LISTING)
    return {k: v["tx_id"] for k, v in zip("abcde", (a, b, c, d, e), strict=True)}


def test_close_bidding_reproduces_the_hand_worked_seed003_example(ledger):
    ids = _run_paper_example(ledger)
    listing = ledger.client.listing(LISTING)
    assert listing["state"] == "AUCTION_CLOSED"
    # By hand: bids from the highest price down: E 160, C 150, D 120 (sat/kWh). Offers in offer
    # time: Alice (3000 Wh, no reserve) then Bob (2000 Wh, reserve 140).
    #   E 1000 Wh <- Alice 1000 @160 = 160 000 msat          (Alice has 2000 left)
    #   C 2500 Wh <- Alice 2000 @150 = 300 000, Bob 500 @150 = 75 000   (Bob 1500 left)
    #   D 1500 Wh: Alice is empty, Bob's reserve 140 > 120 -> D stays unmatched.
    got = [
        (t["bid"], t["offer"], t["wh"], t["price_msat_per_kwh"], t["amount_msat"])
        for t in listing["trades"]
    ]
    assert got == [
        (ids["e"], ids["a"], 1000, 160_000, 160_000),
        (ids["c"], ids["a"], 2000, 150_000, 300_000),
        (ids["c"], ids["b"], 500, 150_000, 75_000),
    ]
    assert all(t["amount_msat"] == t["seller_amount_msat"] for t in listing["trades"])


def test_a_closed_or_unknown_listing_refuses_offers_and_a_second_close(ledger):
    _run_paper_example(ledger)
    for tx in (
        txs.make(
            "pv_offer",
            ledger.chain,
            listing_id=LISTING,
            seller=ALICE.pubkey,
            wh=1,
            reserve_msat_per_kwh=0,
        ).signed_by(ALICE),
        txs.make("close_bidding", ledger.chain, listing_id=LISTING).signed_by(OPERATOR),
    ):
        with pytest.raises(TxRejected) as err:
            ledger.submit(tx)
        assert err.value.reason == "listing_closed"
    with pytest.raises(TxRejected) as err:
        ledger.submit(
            txs.make(
                "buy_offer",
                ledger.chain,
                listing_id="nope",
                buyer=BOB.pubkey,
                wh=1,
                bid_msat_per_kwh=1,
            ).signed_by(BOB)
        )
    assert err.value.reason == "unknown_listing"
    with pytest.raises(NotFound):
        ledger.client.listing("nope")


@pytest.mark.parametrize(
    ("fields", "signer", "reason"),
    [
        ({"seller": BOB.pubkey, "wh": 1, "reserve_msat_per_kwh": 0}, ALICE, "missing_signature"),
        ({"seller": ALICE.pubkey, "wh": 0, "reserve_msat_per_kwh": 0}, ALICE, "malformed"),
        ({"seller": ALICE.pubkey, "wh": 5, "reserve_msat_per_kwh": -1}, ALICE, "malformed"),
    ],
)
def test_a_bad_offer_is_refused(ledger, fields, signer, reason):
    ledger.enroll(ALICE)
    ledger.enroll(BOB)
    _open_listing(ledger)
    with pytest.raises(TxRejected) as err:
        ledger.submit(
            txs.make("pv_offer", ledger.chain, listing_id=LISTING, **fields).signed_by(signer)
        )
    assert err.value.reason == reason
    assert ledger.client.listing(LISTING)["offers"] == []


def test_only_the_operator_opens_and_closes_a_listing(ledger):
    ledger.enroll(ALICE)
    with pytest.raises(TxRejected) as err:
        _open_listing(ledger, signer=ALICE)
    assert err.value.reason in ("not_operator", "missing_signature")


def test_a_restarted_node_replays_the_same_clearing(ledger):
    _run_paper_example(ledger)
    before = ledger.client.listing(LISTING)
    ledger.running.stop()
    running = service.start(ledger_config.load(ledger.config_path))
    try:
        after = LedgerClient(running.url).listing(LISTING)
    finally:
        running.stop()
    assert after == before and after["trades_hash"]


def test_a_settlement_result_is_recorded_once(ledger):
    body = {"period_id": "2026-03-21T13:00", "statements_hash": "ab" * 32, "statement_count": 4}
    _tx(ledger, "settlement_result", OPERATOR, **body)
    assert ledger.client.settlement("2026-03-21T13:00")["statements_hash"] == "ab" * 32
    with pytest.raises(TxRejected) as err:
        _tx(ledger, "settlement_result", OPERATOR, nonce=1, **body)
    assert err.value.reason == "duplicate_settlement"
