"""BOLT #3 per-commitment secret and key-derivation vectors (vectors/bolt3.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coincurve import PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ln.codec import bolt3
from gateway.ln.errors import SecretError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "bolt3.json").read_text())


def _index(value: int | str) -> int:
    return int(value, 16) if isinstance(value, str) else value


@pytest.mark.parametrize("case", VECTORS["generation"], ids=lambda c: c["name"])
def test_generate_from_seed_matches_spec(case: dict) -> None:
    secret = bolt3.generate_from_seed(bytes.fromhex(case["seed"]), _index(case["I"]))
    assert secret.hex() == case["output"]


@pytest.mark.parametrize("case", VECTORS["storage"], ids=lambda c: c["name"])
def test_insert_secret_matches_spec(case: dict) -> None:
    store = bolt3.SecretStore()
    inserted: list[tuple[int, bytes]] = []
    for index, secret_hex, expected in case["steps"]:
        secret = bytes.fromhex(secret_hex)
        if expected == "OK":
            store.insert(index, secret)
            inserted.append((index, secret))
            for old_index, old_secret in inserted:
                assert store.derive(old_index) == old_secret
        else:
            before = store.to_bytes()
            with pytest.raises(SecretError):
                store.insert(index, secret)
            assert store.to_bytes() == before


def test_key_derivation_matches_spec() -> None:
    kd = {k: bytes.fromhex(v) for k, v in VECTORS["key_derivation"].items()}
    assert PrivateKey(kd["base_secret"]).public_key.format() == kd["base_point"]
    assert bolt3.per_commitment_point(kd["per_commitment_secret"]) == kd["per_commitment_point"]
    assert bolt3.derive_pubkey(kd["base_point"], kd["per_commitment_point"]) == kd["localpubkey"]
    assert bolt3.derive_privkey(kd["base_secret"], kd["per_commitment_point"]) == kd["localprivkey"]
    assert (
        bolt3.derive_revocation_pubkey(kd["base_point"], kd["per_commitment_point"])
        == kd["revocationpubkey"]
    )
    revocation_priv = bolt3.derive_revocation_privkey(
        kd["base_secret"], kd["per_commitment_secret"]
    )
    assert revocation_priv == kd["revocationprivkey"]
    assert PrivateKey(revocation_priv).public_key.format() == kd["revocationpubkey"]


def test_store_refuses_out_of_order_index() -> None:
    seed = bytes(range(32))
    store = bolt3.SecretStore()
    store.insert(bolt3.START_INDEX, bolt3.generate_from_seed(seed, bolt3.START_INDEX))
    skipped = bolt3.START_INDEX - 2
    with pytest.raises(SecretError):
        store.insert(skipped, bolt3.generate_from_seed(seed, skipped))


def test_derive_unknown_index_is_a_typed_error() -> None:
    store = bolt3.SecretStore()
    with pytest.raises(SecretError):
        store.derive(bolt3.START_INDEX)


@pytest.mark.parametrize("bad", [b"", b"\x01", b"\x01" + bytes(38), b"\x32" + bytes(39 * 50)])
def test_malformed_store_encoding_is_rejected(bad: bytes) -> None:
    with pytest.raises(SecretError):
        bolt3.SecretStore.from_bytes(bad)


@settings(max_examples=25, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), count=st.integers(1, 300))
def test_store_stays_compact_and_rederives_every_secret(seed: bytes, count: int) -> None:
    store = bolt3.SecretStore()
    indices = [bolt3.START_INDEX - i for i in range(count)]
    for index in indices:
        store.insert(index, bolt3.generate_from_seed(seed, index))
        assert len(store) <= bolt3.MAX_ENTRIES
    restored = bolt3.SecretStore.from_bytes(store.to_bytes())
    for index in indices[:: max(1, count // 20)] + [indices[-1]]:
        assert restored.derive(index) == bolt3.generate_from_seed(seed, index)
    nxt = indices[-1] - 1
    restored.insert(nxt, bolt3.generate_from_seed(seed, nxt))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    indices=st.lists(
        st.one_of(
            st.integers(0, bolt3.START_INDEX),
            st.integers(bolt3.START_INDEX - 64, bolt3.START_INDEX),
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_a_secret_resumed_from_the_previous_walk_is_the_spec_secret(
    seed: bytes, indices: list[int]
) -> None:
    """generate_from_seed resumes the previous index's walk: in any order of indices (and
    again for a repeated one) it gives the spec's secret, computed here from scratch."""
    for index in indices:
        bolt3._from_seed.cache_clear()
        assert bolt3.generate_from_seed(seed, index) == bolt3._derive(seed, bolt3.INDEX_BITS, index)
