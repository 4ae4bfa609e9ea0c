import hashlib
import json
from pathlib import Path

import pytest
from ecdsa import SECP256k1, rfc6979
from hypothesis import given
from hypothesis import strategies as st

from sgcore.rfc6979 import Rfc6979Nonces

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6979_nonces.json").read_text())
N = SECP256k1.order


def _h1(case):
    if "hash_hex" in case:
        return bytes.fromhex(case["hash_hex"])
    return hashlib.sha256(case["message"].encode()).digest()


@pytest.mark.parametrize("case", VECTORS["vectors"], ids=lambda c: c["name"])
def test_published_nonce_vectors(case):
    nonces = Rfc6979Nonces(int(case["x"], 16), _h1(case), int(case["q"], 16))
    assert nonces.next_candidate() == int(case["k"], 16)


@given(st.integers(1, N - 1), st.binary(min_size=32, max_size=32))
def test_candidate_sequence_matches_python_ecdsa_step_h3(secret, h1):
    # The signer asks for further candidates when r or s is 0 (RFC 6979 step h.3).
    nonces = Rfc6979Nonces(secret, h1, N)
    for retry in range(3):
        expected = rfc6979.generate_k(N, secret, hashlib.sha256, h1, retry_gen=retry)
        assert nonces.next_candidate() == expected


@pytest.mark.parametrize("secret", [0, N, N + 1, -1])
def test_rejects_a_secret_out_of_range(secret):
    with pytest.raises(ValueError):
        Rfc6979Nonces(secret, b"\x00" * 32, N)
