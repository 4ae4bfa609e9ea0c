import hashlib
import json
from pathlib import Path

import coincurve
import pytest
from ecdsa import BadSignatureError, SECP256k1, VerifyingKey
from ecdsa.util import sigdecode_string
from hypothesis import given, settings
from hypothesis import strategies as st

from sgcore import secp256k1 as ec

N = SECP256k1.order
VECTORS = json.loads((Path(__file__).parent / "vectors" / "secp256k1_signatures.json").read_text())

secrets = st.integers(1, N - 1).map(lambda d: d.to_bytes(32, "big"))
digests = st.binary(min_size=32, max_size=32)


def _coincurve_sign(priv: bytes, digest: bytes) -> bytes:
    return coincurve.PrivateKey(priv).sign_recoverable(digest, hasher=None)[:64]


def _coincurve_verify(pub: bytes, digest: bytes, sig: bytes) -> bool:
    der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(sig))
    return coincurve.PublicKey(pub).verify(der, digest, hasher=None)


def _python_ecdsa_verify(pub: bytes, digest: bytes, sig: bytes) -> bool:
    key = VerifyingKey.from_string(pub, curve=SECP256k1)
    try:
        return key.verify_digest(sig, digest, sigdecode=sigdecode_string)
    except BadSignatureError:
        return False


@pytest.mark.parametrize("case", VECTORS["vectors"], ids=lambda c: c["message"][:12])
def test_signature_vectors(case):
    priv = bytes.fromhex(case["private_key"])
    digest = hashlib.sha256(case["message"].encode()).digest()
    assert ec.public_key(priv).hex() == case["public_key"]
    assert ec.sign(priv, digest).hex() == case["signature"]
    assert ec.verify(bytes.fromhex(case["public_key"]), digest, bytes.fromhex(case["signature"]))


@settings(max_examples=40, deadline=None)
@given(secrets, digests)
def test_signatures_are_libsecp256k1s_and_verify_everywhere(priv, digest):
    pub = ec.public_key(priv)
    sig = ec.sign(priv, digest)
    assert pub == coincurve.PrivateKey(priv).public_key.format()
    assert sig == _coincurve_sign(priv, digest)  # same RFC 6979 nonce, same low-S rule
    assert int.from_bytes(sig[32:], "big") <= N // 2
    assert _coincurve_verify(pub, digest, sig)
    assert _python_ecdsa_verify(pub, digest, sig)
    assert ec.verify(pub, digest, sig)


@settings(max_examples=25, deadline=None)
@given(secrets, digests, st.data())
def test_tampering_is_rejected(priv, digest, data):
    pub = ec.public_key(priv)
    sig = ec.sign(priv, digest)
    bit = data.draw(st.integers(0, 255))
    other_digest = bytes(b ^ (1 << (bit % 8)) if i == bit // 8 else b for i, b in enumerate(digest))
    assert not ec.verify(pub, other_digest, sig)
    sbit = data.draw(st.integers(0, 511))
    other_sig = bytes(b ^ (1 << (sbit % 8)) if i == sbit // 8 else b for i, b in enumerate(sig))
    assert not ec.verify(pub, digest, other_sig)
    # For a digest of 0 (mod n), u1 = 0 and R = u2*Q: a signature then holds for Q and for -Q
    # alike (ECDSA's own symmetry, libsecp256k1 agrees), so -Q is no "other key" there.
    zero = int.from_bytes(digest, "big") % N == 0
    other_priv = data.draw(
        secrets.filter(
            lambda p: (
                p != priv
                and not (zero and int.from_bytes(p, "big") == N - int.from_bytes(priv, "big"))
            )
        )
    )
    assert not ec.verify(ec.public_key(other_priv), digest, sig)


@settings(max_examples=15, deadline=None)
@given(secrets, digests)
def test_verifies_coincurve_signatures_and_rejects_their_high_s_twin(priv, digest):
    pub = coincurve.PrivateKey(priv).public_key
    sig = _coincurve_sign(priv, digest)
    assert ec.verify(pub.format(), digest, sig)
    assert ec.verify(pub.format(compressed=False), digest, sig)
    high_s = sig[:32] + (N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
    assert _python_ecdsa_verify(pub.format(), digest, high_s)  # mathematically valid...
    assert not ec.verify(pub.format(), digest, high_s)  # ...but not canonical, as in libsecp256k1


def test_step_wise_signer_and_verifier_match_the_one_shot_calls():
    priv, digest = b"\x11" * 32, hashlib.sha256(b"reading").digest()
    signer = ec.Signer(priv, digest)
    steps = 1
    while not signer.step():
        steps += 1
    assert signer.signature == ec.sign(priv, digest)
    assert steps > 10  # really sliced
    assert signer.step() is True  # stays finished
    verifier = ec.Verifier(ec.public_key(priv), digest, signer.signature)
    while not verifier.step():
        pass
    assert verifier.valid is True


def test_public_key_round_trips_both_encodings():
    priv = b"\x22" * 32
    key = ec.PublicKey.from_bytes(ec.public_key(priv))
    assert ec.PublicKey.from_bytes(key.to_bytes(compressed=False)) == key
    assert key.to_bytes(compressed=False) == ec.public_key(priv, compressed=False)
    assert key.to_bytes(compressed=False) == coincurve.PrivateKey(priv).public_key.format(False)


def test_private_key_from_random_rehashes_out_of_range_seeds():
    seed = b"\x07" * 32
    assert ec.private_key_from_random(seed) == seed
    for bad in (b"\x00" * 32, N.to_bytes(32, "big"), b"\xff" * 32):
        key = ec.private_key_from_random(bad)
        assert key == _first_valid_hash(bad)
        assert 0 < int.from_bytes(key, "big") < N


def _first_valid_hash(seed: bytes) -> bytes:
    while not 0 < int.from_bytes(seed, "big") < N:
        seed = hashlib.sha256(seed).digest()
    return seed


GOOD_PRIV = b"\x33" * 32
GOOD_DIGEST = b"\x44" * 32


@pytest.mark.parametrize(
    "call",
    [
        lambda: ec.sign(b"\x00" * 32, GOOD_DIGEST),
        lambda: ec.sign(N.to_bytes(32, "big"), GOOD_DIGEST),
        lambda: ec.sign(GOOD_PRIV[:31], GOOD_DIGEST),
        lambda: ec.sign(GOOD_PRIV, GOOD_DIGEST + b"\x00"),
        lambda: ec.sign("not bytes", GOOD_DIGEST),
        lambda: ec.public_key(b"\xff" * 32),
        lambda: ec.private_key_from_random(b"\x01" * 31),
        lambda: ec.verify(ec.public_key(GOOD_PRIV), GOOD_DIGEST, b"\x01" * 63),
        lambda: ec.verify(ec.public_key(GOOD_PRIV), GOOD_DIGEST[:31], b"\x01" * 64),
        lambda: ec.PublicKey.from_bytes(b"\x05" + b"\x01" * 32),
        lambda: ec.PublicKey.from_bytes(b"\x02" + b"\x01" * 31),
        lambda: ec.PublicKey.from_bytes(b"\x02" + b"\xff" * 32),  # x >= p
        lambda: ec.PublicKey.from_bytes(b"\x02" + (5).to_bytes(32, "big")),  # x^3+7 not a square
        lambda: ec.PublicKey.from_bytes(b"\x04" + b"\x01" * 64),  # off the curve
        lambda: ec.PublicKey.from_bytes(bytearray(10)),
        lambda: ec.Verifier(12345, GOOD_DIGEST, b"\x01" * 64),
        lambda: ec.Verifier(b"\x02" * 34, GOOD_DIGEST, b"\x01" * 64),
    ],
)
def test_malformed_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize(
    "sig",
    [
        b"\x00" * 64,
        b"\x00" * 32 + b"\x01" * 32,
        b"\x01" * 32 + b"\x00" * 32,
        N.to_bytes(32, "big") + b"\x01" * 32,
        b"\x01" * 32 + N.to_bytes(32, "big"),
        b"\xff" * 64,
    ],
)
def test_out_of_range_signatures_are_invalid_not_errors(sig):
    assert ec.verify(ec.public_key(GOOD_PRIV), GOOD_DIGEST, sig) is False
