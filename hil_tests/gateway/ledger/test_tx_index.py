"""Where each committed tx is (Chain.locate / known / receipt): kept in memory, rebuilt from the
stored blocks at start, never naming a tx whose block did not reach disk."""

from __future__ import annotations

import pytest

from gateway.ledger import config as ledger_config
from gateway.ledger import txs
from gateway.ledger.chain import Chain
from gateway.ledger.keys import SigningKey
from gateway.ledger.store import Store
from hil_tests.gateway.ledger.conftest import OPERATOR, VALIDATOR, write_config

T0 = 1_764_000_001_000


def _chain(tmp_path):
    cfg = ledger_config.load(write_config(tmp_path / "node"))
    store = Store(tmp_path / "node" / "index.sqlite")
    return Chain(store, VALIDATOR, cfg.genesis()), cfg


def _enrolments(chain_id: str, count: int) -> list[txs.Tx]:
    return [
        txs.make(
            "enroll_participant",
            chain_id,
            participant=SigningKey().pubkey,
            name="p",
            role="consumer",
        ).signed_by(OPERATOR)
        for _ in range(count)
    ]


def test_a_restarted_chain_locates_every_committed_tx_from_its_blocks(tmp_path):
    chain, cfg = _chain(tmp_path)
    committed = []
    for size in (1, 5, 3):
        block, _ = chain.build(_enrolments(chain.chain_id, size), T0 + len(committed))
        assert block is not None
        committed.append(block)
    chain.store.close()

    again = Chain(Store(tmp_path / "node" / "index.sqlite"), VALIDATOR, cfg.genesis())
    for block in committed:
        for index, tx in enumerate(block.txs):
            assert again.locate(tx.id) == (block.height, index)
            receipt = again.known(tx.id)
            assert receipt is not None and receipt.duplicate
            assert (receipt.height, receipt.index, receipt.block_hash) == (
                block.height,
                index,
                block.hash,
            )
    stranger = _enrolments(chain.chain_id, 1)[0]
    assert again.locate(stranger.id) is None and again.known(stranger.id) is None
    # and a resubmitted tx is answered with its first receipt, not refused as a replay
    tx = committed[1].txs[4]
    _, results = again.build([tx], T0 + 10)
    assert results[tx.id].height == committed[1].height and results[tx.id].index == 4
    again.store.close()


def test_a_tx_whose_block_failed_to_store_is_not_located(tmp_path):
    chain, _ = _chain(tmp_path)
    tx = _enrolments(chain.chain_id, 1)[0]

    def broken_append(*args, **kwargs):
        raise OSError("disk full")

    real, chain.store.append = chain.store.append, broken_append
    with pytest.raises(OSError):
        chain.build([tx], T0)
    chain.store.append = real  # type: ignore[method-assign]
    assert chain.locate(tx.id) is None and chain.known(tx.id) is None
    block, results = chain.build([tx], T0 + 1)
    assert block is not None and chain.locate(tx.id) == (block.height, 0)
    assert not results[tx.id].duplicate
    chain.store.close()
