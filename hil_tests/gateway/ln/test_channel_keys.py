from __future__ import annotations

import os

import pytest

from gateway.ln.errors import KeyFileError
from gateway.ln.node.keys import SEED_FILE, NodeKeys, load_or_create, restore


def test_seed_file_is_created_0600_and_reloaded(tmp_path):
    keys = load_or_create(tmp_path)
    assert os.stat(tmp_path / SEED_FILE).st_mode & 0o777 == 0o600
    assert load_or_create(tmp_path).node_id == keys.node_id
    assert len(keys.node_id) == 33 and keys.node_id[0] in (2, 3)


def test_world_readable_seed_is_refused(tmp_path):
    load_or_create(tmp_path)
    os.chmod(tmp_path / SEED_FILE, 0o644)
    with pytest.raises(KeyFileError, match="0600"):
        load_or_create(tmp_path)


def test_channel_keys_are_deterministic_and_distinct():
    k = NodeKeys(bytes(range(32)))
    a, b = b"\x01" * 32, b"\x02" * 32
    assert k.funding_priv(a) == NodeKeys(bytes(range(32))).funding_priv(a)
    assert len({k.funding_priv(a), k.funding_priv(b), k.shachain_seed(a), k.node_priv}) == 4


def test_restore_from_backup_gives_the_same_keys(tmp_path):
    keys = load_or_create(tmp_path / "old")
    restored = restore(tmp_path / "new", keys.seed.hex())
    assert restored.node_id == keys.node_id
    assert os.stat(tmp_path / "new" / SEED_FILE).st_mode & 0o777 == 0o600
    with pytest.raises(KeyFileError):
        restore(tmp_path / "new", "00" * 32)


def test_malformed_seed_is_a_typed_error():
    with pytest.raises(KeyFileError):
        NodeKeys(b"short")
