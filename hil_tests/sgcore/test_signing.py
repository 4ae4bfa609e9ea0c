import hashlib

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgcore import reading, signing
from sgcore.secp256k1 import Secp256k1Error

PRIV = hashlib.sha256(b"meter key").digest()
PUB = coincurve.PrivateKey(PRIV).public_key.format()
OTHER_PUB = coincurve.PrivateKey(hashlib.sha256(b"another meter").digest()).public_key.format()


def _body(
    meter_id: bytes = reading.meter_id_from_pubkey(PUB), seq: int = 7, import_wh: int = 1000
) -> bytes:
    return reading.encode_body(
        reading.Reading(
            meter_id,
            seq,
            b"\x00" * 32,
            1_700_000_000,
            1_700_000_900,
            import_wh,
            5,
            100,
            0,
            400,
            900,
            2300,
            1,
        )
    )


def test_record_round_trip_and_gateway_check_with_coincurve():
    record = signing.sign_record(_body(), PRIV)
    assert len(record) == reading.RECORD_LEN and record[: reading.BODY_LEN] == _body()
    assert signing.verify_record(record, PUB)
    der = coincurve.ecdsa.cdata_to_der(
        coincurve.ecdsa.deserialize_compact(record[reading.BODY_LEN :])
    )
    assert coincurve.PublicKey(PUB).verify(der, reading.digest(_body()), hasher=None)


def test_step_wise_record_signer_gives_the_same_record():
    signer = signing.RecordSigner(_body(), PRIV)
    while not signer.step():
        pass
    assert signer.record == signing.sign_record(_body(), PRIV)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, reading.RECORD_LEN * 8 - 1))
def test_any_flipped_bit_is_rejected(bit):
    record = bytearray(signing.sign_record(_body(), PRIV))
    record[bit // 8] ^= 1 << (bit % 8)
    try:
        assert signing.verify_record(bytes(record), PUB) is False
    except reading.ReadingFormatError:
        pass  # the flip broke the layout (version, kind, relay...): rejected as malformed


def test_verify_record_reuses_the_parsed_key_and_a_record_verifier_hands_it_out():
    record = signing.sign_record(_body(), PRIV)
    checker = signing.RecordVerifier(record, PUB)
    while not checker.step():
        pass
    assert checker.valid is True and checker.public_key.to_bytes() == PUB
    again = signing.RecordVerifier(record, checker.public_key)
    while not again.step():
        pass
    assert again.valid is True
    assert signing.verify_record(record, PUB) and signing.verify_record(record, PUB)


def test_a_record_is_bound_to_its_meter():
    record = signing.sign_record(_body(), PRIV)
    assert not signing.verify_record(record, OTHER_PUB)
    # signed by the right key but claiming another meter's id
    foreign = signing.sign_record(_body(meter_id=reading.meter_id_from_pubkey(OTHER_PUB)), PRIV)
    assert not signing.verify_record(foreign, PUB)


def test_malformed_input_raises_value_errors():
    record = signing.sign_record(_body(), PRIV)
    with pytest.raises(reading.ReadingFormatError):
        signing.verify_record(record[:-1], PUB)
    with pytest.raises(reading.ReadingFormatError):
        signing.sign_record(_body()[:-1], PRIV)
    with pytest.raises(Secp256k1Error):
        signing.verify_record(record, PUB[:32])
    bad_key = b"\x02" + b"\xff" * 32  # x >= p
    claims_bad_key = signing.sign_record(
        _body(meter_id=reading.meter_id_from_pubkey(bad_key)), PRIV
    )
    with pytest.raises(Secp256k1Error):
        signing.verify_record(claims_bad_key, bad_key)
    with pytest.raises(Secp256k1Error):
        signing.RecordVerifier(record, 12345)
    with pytest.raises(Secp256k1Error):
        signing.sign_record(_body(), b"\x00" * 32)
