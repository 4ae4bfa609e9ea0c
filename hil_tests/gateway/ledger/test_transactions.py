import pytest

from gateway.ledger import keys, txs
from gateway.ledger.client import NotFound
from gateway.ledger.errors import TxRejected
from hil_tests.gateway.ledger import funding
from hil_tests.gateway.ledger.conftest import ALICE, BOB, GATEWAY, MALLORY, OPERATOR
from sgcore import reading as sgreading

METER = keys.SigningKey(bytes([9] * 32))


def _rejects(ledger, tx, reason):
    with pytest.raises(TxRejected) as err:
        ledger.submit(tx)
    assert err.value.reason == reason, err.value
    return err.value


def test_enroll_deposit_withdraw_moves_msat_and_is_idempotent(ledger):
    ledger.enroll(ALICE, deposit=5_000)
    withdraw = txs.make(
        "withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=2_000
    ).signed_by(ALICE)
    first = ledger.submit(withdraw)
    again = ledger.submit(withdraw)
    assert again["duplicate"] and again["height"] == first["height"] and not first["duplicate"]
    assert ledger.client.balance(ALICE.pubkey) == 3_000
    assert ledger.client.account(ALICE.pubkey)["role"] == "prosumer"


def _enroll_gateway_and_its_meter(ledger):
    ledger.enroll(GATEWAY, role="gateway")
    ledger.submit(
        txs.make("enroll_meter", ledger.chain, meter=METER.pubkey, owner=GATEWAY.pubkey).signed_by(
            OPERATOR
        )
    )


def test_enroll_meter_by_operator_then_lookup_by_id(ledger):
    _enroll_gateway_and_its_meter(ledger)
    meter = ledger.client.meter(keys.meter_id(METER.pubkey))
    assert meter["owner"] == GATEWAY.pubkey and meter["pubkey"] == METER.pubkey
    again = txs.make(
        "enroll_meter", ledger.chain, meter=METER.pubkey, owner=GATEWAY.pubkey
    ).signed_by(OPERATOR)
    _rejects(ledger, again, "already_enrolled")


def test_unregistered_nodes_are_refused(ledger):
    tx = txs.make("withdraw", ledger.chain, account=MALLORY.pubkey, amount_msat=1).signed_by(
        MALLORY
    )
    _rejects(ledger, tx, "unknown_signer")
    enroll = txs.make(
        "enroll_participant", ledger.chain, participant=MALLORY.pubkey, name="m", role="consumer"
    )
    _rejects(ledger, enroll.signed_by(MALLORY), "not_operator")
    with pytest.raises(NotFound):
        ledger.client.account(MALLORY.pubkey)


def test_double_spend_of_one_balance_is_refused(ledger):
    ledger.enroll(ALICE, deposit=1_000)
    ledger.enroll(BOB)
    ledger.submit(
        txs.make("withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=700).signed_by(ALICE)
    )
    fund = funding.channel_fund(ledger.chain, ALICE, BOB, 700, 0, 2).signed_by(ALICE, BOB)
    _rejects(ledger, fund, "insufficient_funds")
    assert ledger.client.balance(ALICE.pubkey) == 300


def test_signature_rejections(ledger):
    ledger.enroll(ALICE, deposit=1_000)
    tx = txs.make("withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=1)
    _rejects(ledger, tx, "missing_signature")
    forged = txs.Tx(tx.body, {ALICE.pubkey: MALLORY.sign_digest(bytes.fromhex(tx.id))})
    _rejects(ledger, forged, "bad_signature")
    sig = tx.signed_by(ALICE).sigs[ALICE.pubkey]
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = sig[:64] + (n - int(sig[64:], 16)).to_bytes(32, "big").hex()
    _rejects(ledger, txs.Tx(tx.body, {ALICE.pubkey: high_s}), "bad_signature")
    _rejects(ledger, tx.signed_by(ALICE, BOB), "unexpected_signer")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(kind="mint"),
        lambda b: b.update(amount_msat=-5),
        lambda b: b.update(amount_msat=1.5),
        lambda b: b.update(extra=1),
        lambda b: b.pop("nonce"),
        lambda b: b.update(account="02" + "00" * 32),
    ],
    ids=["unknown-kind", "negative", "float", "extra-field", "no-nonce", "not-a-point"],
)
def test_malformed_transactions_are_refused(ledger, mutate):
    ledger.enroll(ALICE, deposit=1_000)
    body = txs.make("withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=1).body
    mutate(body)
    err = _rejects(ledger, {"body": body, "sigs": {}}, "malformed")
    assert err.detail
    assert ledger.client.balance(ALICE.pubkey) == 1_000


def test_wrong_chain_is_refused(ledger):
    tx = txs.make(
        "deposit", "ab" * 32, account=OPERATOR.pubkey, amount_msat=1, reference=""
    ).signed_by(OPERATOR)
    _rejects(ledger, tx, "wrong_chain")


def test_deposit_to_unknown_account_is_refused(ledger):
    tx = txs.make(
        "deposit", ledger.chain, account=BOB.pubkey, amount_msat=1, reference=""
    ).signed_by(OPERATOR)
    _rejects(ledger, tx, "unknown_account")


def _record(meter_key, seq):
    body = sgreading.encode_body(
        sgreading.Reading(
            sgreading.meter_id_from_pubkey(bytes.fromhex(meter_key.pubkey)),
            seq,
            b"\0" * 32,
            900 * seq,
            900 * seq + 900,
            seq,
            0,
        )
    )
    return body + bytes.fromhex(meter_key.sign_digest(sgreading.digest(body)))


def test_anchor_records_a_batch_once_and_proofs_verify_offline(ledger, tmp_path):
    from gateway.ledger import proofs

    _enroll_gateway_and_its_meter(ledger)
    records = [_record(METER, s) for s in range(1, 12)]
    fields = proofs.anchor_fields(records)
    anchor = txs.make(
        "anchor", ledger.chain, submitter=GATEWAY.pubkey, batch="b1", **fields
    ).signed_by(GATEWAY)
    receipt = ledger.submit(anchor)
    txp = ledger.client.tx_proof(receipt["tx_id"])
    validator = ledger.client.info()["validator"]
    summary = proofs.verify_reading_proof(proofs.reading_proof(records, 7, txp), validator)
    assert summary["seq"] == 8 and summary["height"] == receipt["height"]
    forged = proofs.reading_proof(records, 7, txp)
    forged["record"] = _record(METER, 99).hex()
    with pytest.raises(proofs.ProofInvalid):
        proofs.verify_reading_proof(forged, validator)
    again = txs.make(
        "anchor", ledger.chain, submitter=GATEWAY.pubkey, batch="b2", **fields
    ).signed_by(GATEWAY)
    _rejects(ledger, again, "duplicate_anchor")
    other = dict(fields, merkle_root="11" * 32, meter_last="ff" * 16)
    _rejects(
        ledger,
        txs.make("anchor", ledger.chain, submitter=GATEWAY.pubkey, batch="", **other).signed_by(
            GATEWAY
        ),
        "unknown_meter",
    )


def test_market_result_is_recorded_once(ledger):
    result = txs.make(
        "market_result",
        ledger.chain,
        market_id="2026-11-25T13",
        trades_hash="ab" * 32,
        trade_count=4,
        clearing_price_msat_per_kwh=120_000,
    )
    ledger.submit(result.signed_by(OPERATOR))
    assert ledger.client.market("2026-11-25T13")["trade_count"] == 4
    dup = txs.make(
        "market_result",
        ledger.chain,
        market_id="2026-11-25T13",
        trades_hash="cd" * 32,
        trade_count=1,
        clearing_price_msat_per_kwh=1,
    )
    _rejects(ledger, dup.signed_by(OPERATOR), "duplicate_market")
    _rejects(ledger, dup.signed_by(ALICE), "not_operator")


def test_enrolling_a_participant_twice_is_refused(ledger):
    ledger.enroll(ALICE)
    again = txs.make(
        "enroll_participant", ledger.chain, participant=ALICE.pubkey, name="a2", role="consumer"
    )
    _rejects(ledger, again.signed_by(OPERATOR), "already_enrolled")
    assert ledger.client.account(ALICE.pubkey)["name"] == "p"


def test_anchor_with_inverted_ranges_is_malformed(ledger):
    _enroll_gateway_and_its_meter(ledger)
    mid = keys.meter_id(METER.pubkey)
    anchor = txs.make(
        "anchor",
        ledger.chain,
        submitter=GATEWAY.pubkey,
        batch="",
        merkle_root="22" * 32,
        count=2,
        meter_first=mid,
        meter_last=mid,
        seq_first=9,
        seq_last=3,
    )
    _rejects(ledger, anchor.signed_by(GATEWAY), "malformed")


def test_a_kind_that_is_not_a_string_is_malformed_not_a_crash(ledger):
    tx = txs.make("withdraw", ledger.chain, account=ALICE.pubkey, amount_msat=1).signed_by(ALICE)
    tx.body["kind"] = ["withdraw"]
    with pytest.raises(TxRejected) as err:
        txs.check_shape(tx, ledger.chain)
    assert err.value.reason == "malformed"
