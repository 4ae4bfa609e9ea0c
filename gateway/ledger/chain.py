"""A chain on disk plus its state in memory: load, build the next block, answer queries.

Shared by the embedded producer (node.py) and the replicated applier (replicated.py). Not
thread-safe by itself: its owner serialises calls to `build`. Readers use `view` (the state as
of the last stored block) under `view_lock`, which `build` holds only while it applies a block
just stored to the view: never during a block's validation, write or fsync.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.ledger import blocks, rules
from gateway.ledger.blocks import Block
from gateway.ledger.errors import StorageError, TxRejected
from gateway.ledger.keys import SigningKey
from gateway.ledger.state import LedgerState
from gateway.ledger.store import Store
from gateway.ledger.txs import Tx

log = logging.getLogger(__name__)


class _NoIds(set[str]):
    """The view's tx ids: none kept (`Chain.locate` knows every committed tx), so the view does
    not hold a second copy of the largest part of the state. Replaying a block onto the view
    never meets a replay: its txs were accepted by the same rules on the same state."""

    def __contains__(self, item: object) -> bool:
        return False

    def add(self, item: str) -> None:
        return None


def _snapshot(state: LedgerState) -> LedgerState:
    """A deep copy of `state` for readers, without its tx ids."""
    return copy.deepcopy(state, memo={id(state.tx_ids): _NoIds()})


@dataclass(frozen=True)
class GenesisParams:
    name: str
    operator: str
    time_ms: int


@dataclass(frozen=True)
class Receipt:
    tx_id: str
    height: int
    index: int
    block_hash: str
    duplicate: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "status": "committed",
            "tx_id": self.tx_id,
            "height": self.height,
            "index": self.index,
            "block_hash": self.block_hash,
            "duplicate": self.duplicate,
        }

    def json_text(self) -> str:
        """`json.dumps(self.to_json())`, formatted directly (ids and hashes are hex: nothing to
        escape): the producer answers every tx of a block with one."""
        return (
            f'{{"status": "committed", "tx_id": "{self.tx_id}", "height": {self.height},'
            f' "index": {self.index}, "block_hash": "{self.block_hash}",'
            f' "duplicate": {"true" if self.duplicate else "false"}}}'
        )


class Chain:
    def __init__(self, store: Store, key: SigningKey, params: GenesisParams) -> None:
        self.store = store
        self.key = key
        genesis = blocks.genesis(params.name, params.operator, key, params.time_ms)
        stored = store.block(0)
        if stored is None:
            store.append(genesis, meta={"chain": genesis.hash})
            stored = genesis
        if stored.hash != genesis.hash:
            raise StorageError(
                f"{store.path} holds chain {stored.hash[:16]}..., the config gives {genesis.hash[:16]}..."
            )
        self.chain_id = genesis.hash
        self._operator = params.operator
        self.state = LedgerState.genesis(self.chain_id, params.operator, key.pubkey)
        self.tip = genesis
        # where each committed tx is: id -> height << 32 | index in its block (rebuilt from the
        # blocks at start; kept here rather than as an SQLite index, whose random-key B-tree
        # inserts cost ~15 us of CPU per tx, most of it in the kernel writing WAL pages)
        self._where: dict[str, int] = {}
        # figures for GET /v1/stats: blocks and txs built here, seconds applying and sealing
        self.built_blocks = self.built_txs = 0
        self.apply_s = self.seal_s = 0.0
        self._replay()
        self.view = _snapshot(self.state)  # what readers see: the state of the stored blocks
        self.view_lock = threading.Lock()

    def _replay(self) -> None:
        """Rebuild the in-memory state from stored blocks (verified when they were written)."""
        count = 0
        where = self._where
        for block in self.store.blocks(1):
            base = block.height << 32
            for index, tx in enumerate(block.txs):
                rules.apply(self.state, tx, block.height, check_sigs=False)
                where[tx.id] = base | index
            count += len(block.txs)
            self.tip = block
        self.state.height = self.tip.height
        log.info("ledger loaded: height %d, %d transactions", self.tip.height, count)

    def build(
        self,
        candidates: list[Tx],
        time_ms: int,
        meta: dict[str, str] | None = None,
        record_rejections: bool = False,
        seal_empty: bool = True,
        sigs_checked: bool | Callable[[Tx], bool] = False,
    ) -> tuple[Block | None, dict[str, Receipt | TxRejected]]:
        """Validate `candidates` in order into the next block, persist it, return per-tx results.

        A candidate already in the chain is answered with its first receipt (idempotency).
        `sigs_checked`: the caller already ran `txs.check_shape` then `rules.check_signature_values`
        on every candidate (or on those for which it returns True); the signer rules are still
        checked here.
        """
        height = self.tip.height + 1
        accepted: list[Tx] = []
        results: dict[str, Receipt | TxRejected] = {}
        rejected: list[tuple[str, str, str]] = []
        state = self.state
        apply = rules.apply
        t0 = time.perf_counter()
        for tx in candidates:
            try:
                checked = sigs_checked(tx) if callable(sigs_checked) else sigs_checked
                apply(state, tx, height, verify_sigs=not checked, shape_checked=checked)
                accepted.append(tx)
            except TxRejected as exc:
                tx_id = exc.tx_id or tx.id
                if exc.reason == "replay":
                    continue  # answered below from the chain
                results[tx_id] = exc
                rejected.append((tx_id, exc.reason, exc.detail))
        block = None
        t1 = time.perf_counter()
        self.apply_s += t1 - t0
        if accepted or seal_empty:
            block = blocks.seal(self.tip, self.chain_id, accepted, time_ms, self.key)
            self.seal_s += time.perf_counter() - t1
            try:
                self.store.append(block, rejected if record_rejections else [], meta)
            except Exception:
                # the block is not on disk: rebuild the state from what is, so that no reader
                # ever sees balances of a block that does not exist (rare: a storage failure)
                self.state = LedgerState.genesis(self.chain_id, self._operator, self.key.pubkey)
                self.tip = self.store.block(0) or self.tip
                self._where = {}
                self._replay()
                raise
            state.height = height
            self.tip = block
            self._advance_view(accepted, height)
            self.built_blocks += 1
            self.built_txs += len(accepted)
            block_hash = block.hash
            where = self._where
            base = height << 32
            for index, tx in enumerate(accepted):
                tx_id = tx.id
                results[tx_id] = Receipt(tx_id, height, index, block_hash)
                where[tx_id] = base | index
        if len(results) < len(candidates):
            for tx in candidates:
                if tx.id not in results:
                    results[tx.id] = self.receipt(tx.id, duplicate=True) or TxRejected(
                        "replay", "", tx.id
                    )
        return block, results

    def _advance_view(self, accepted: list[Tx], height: int) -> None:
        """Apply a block just stored to the readers' view: the same txs, in the same order, at
        the same height, as on the state that validated them (deterministic, as a restart's
        replay and the replicas are), so the view equals the state once it returns."""
        with self.view_lock:
            view = self.view
            try:
                for tx in accepted:
                    rules.apply(view, tx, height, check_sigs=False, shape_checked=True)
            except TxRejected as exc:  # a rule that is not deterministic: a bug, say so loudly
                log.critical("block %d: the readers' view refused %s; copied afresh", height, exc)
                self.view = view = _snapshot(self.state)
            view.height = height

    def stats(self) -> dict[str, float]:
        """Blocks and transactions built since start and where the producer's time went."""
        return {
            "blocks": self.built_blocks,
            "txs": self.built_txs,
            "apply_s": self.apply_s,
            "seal_s": self.seal_s,
            "write_s": self.store.write_s,
            "commit_s": self.store.commit_s,
        }

    def known(self, tx_id: str) -> Receipt | None:
        """The receipt of a committed `tx_id`, found without touching disk for a new one."""
        if tx_id not in self._where:
            return None
        return self.receipt(tx_id, duplicate=True)

    def locate(self, tx_id: str) -> tuple[int, int] | None:
        """(height, index) of a committed transaction (only once its block is stored)."""
        where = self._where.get(tx_id)
        return None if where is None else (where >> 32, where & 0xFFFFFFFF)

    def receipt(self, tx_id: str, duplicate: bool = False) -> Receipt | None:
        where = self.locate(tx_id)
        if where is None:
            return None
        block_hash = self.store.block_hash(where[0])
        assert block_hash is not None
        return Receipt(tx_id, where[0], where[1], block_hash, duplicate)
