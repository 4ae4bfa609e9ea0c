import hashlib
import hmac
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgcore.hmac_sha256 import HmacSha256Key, hmac_sha256

VECTORS = json.loads((Path(__file__).parent / "vectors" / "hmac_sha256_rfc4231.json").read_text())


@pytest.mark.parametrize("case", VECTORS["vectors"], ids=lambda c: c["hmac_sha256"][:8])
def test_rfc4231_vectors(case):
    key, data = bytes.fromhex(case["key"]), bytes.fromhex(case["data"])
    assert hmac_sha256(key, data).hex() == case["hmac_sha256"]


@given(st.binary(max_size=200), st.lists(st.binary(max_size=100), max_size=4))
def test_matches_cpython_hmac_for_any_key_and_message_split(key, parts):
    expected = hmac.new(key, b"".join(parts), hashlib.sha256).digest()
    assert HmacSha256Key(key).mac(*parts) == expected


def test_a_prepared_key_can_be_reused():
    key = HmacSha256Key(b"k" * 32)
    assert key.mac(b"one") == hmac_sha256(b"k" * 32, b"one")
    assert key.mac(b"two") == hmac_sha256(b"k" * 32, b"two")


def test_rejects_a_non_bytes_key():
    with pytest.raises(TypeError):
        HmacSha256Key("text")
