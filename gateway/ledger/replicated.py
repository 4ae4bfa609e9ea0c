"""Replicated mode: the ordered log lives in etcd; every replica applies it deterministically.

Log layout under `<prefix>/<chain id>/` (docs/ledger-replication.md):
    tx/<tx id>        a submitted transaction (create-only: idempotent by tx id);
                      tx/<tx id>#k is its attempt k+1 after k refusals
    cut/<height:012>  {"height", "time_ms"}: block `height` holds every tx created after the
                      previous cut and before this one, in etcd revision order
Any replica may write the next cut (create-only, so exactly one wins). Each replica validates the
same transactions in the same order at the same height with the same time, so all replicas seal
identical blocks (the validator key is shared; RFC 6979 signatures are deterministic). A replica
stores the revision of the last cut it applied with the block, and resumes the watch there.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from gateway.ledger import txs
from gateway.ledger.chain import Chain, Receipt
from gateway.ledger.config import LedgerConfig
from gateway.ledger.errors import LedgerError, LedgerUnavailable, TxRejected
from gateway.ledger.etcd import EtcdClient, KeyValue
from gateway.ledger.node import now_ms
from gateway.ledger.txs import Tx

log = logging.getLogger(__name__)
META_REVISION = "etcd_cut_revision"


class ReplicatedNode:
    mode = "replicated"

    def __init__(self, chain: Chain, config: LedgerConfig, etcd: EtcdClient | None = None) -> None:
        self.chain = chain
        self.etcd = etcd or EtcdClient(config.etcd)
        self.idle_block_ms = config.idle_block_ms
        self.cut_interval_ms = config.cut_interval_ms
        self.base = f"{config.etcd_prefix.rstrip('/')}/{chain.chain_id}/".encode()
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._pending: list[Tx] = []
        self._cut_revision = int(chain.store.meta(META_REVISION) or 0)
        self._failure: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._watch, name="ledger-etcd-watch", daemon=True),
            threading.Thread(target=self._cut, name="ledger-etcd-cut", daemon=True),
        ]

    def start(self) -> ReplicatedNode:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._threads[1].join(timeout=5)

    # -- submitting -------------------------------------------------------------------------

    def _outcome(self, tx_id: str, refusals_seen: int) -> Receipt | TxRejected | None:
        """The receipt, or a refusal newer than the `refusals_seen` ones, or None (pending)."""
        receipt = self.chain.receipt(tx_id)
        if receipt is not None:
            return receipt
        refused = self.chain.store.rejection(tx_id)
        if refused is not None and refused[3] > refusals_seen:
            return TxRejected(refused[1], refused[2], tx_id)
        return None

    def submit(self, value: Any, timeout: float = 10.0) -> Receipt:
        """Append to the etcd log and wait until this replica applied the cut that holds it.

        Attempt k+1 of a tx refused k times goes to key `tx/<id>#k`: as with the embedded node,
        a refused transaction may be resubmitted later (e.g. a settle after its dispute window).
        """
        tx = value if isinstance(value, Tx) else txs.from_json(value)
        txs.check_shape(tx, self.chain.chain_id)
        receipt = self.chain.receipt(tx.id, duplicate=True)
        if receipt is not None:
            return receipt
        if self._failure is not None:
            raise LedgerUnavailable(f"replica stopped: {self._failure}")
        refused = self.chain.store.rejection(tx.id)
        attempt = refused[3] if refused else 0
        key = self.base + b"tx/" + tx.id.encode() + (f"#{attempt}".encode() if attempt else b"")
        payload = json.dumps(tx.to_json(), sort_keys=True, separators=(",", ":")).encode()
        try:
            created, _ = self.etcd.create(key, payload)
        except LedgerError as exc:
            raise LedgerUnavailable(str(exc)) from exc
        with self._changed:
            self._changed.notify_all()
            deadline = now_ms() + timeout * 1000
            while (outcome := self._outcome(tx.id, attempt)) is None and now_ms() < deadline:
                self._changed.wait(min(0.5, max(0.0, (deadline - now_ms()) / 1000)))
        if outcome is None:
            raise TxRejected("timeout", "not committed in time; resubmit (idempotent)", tx.id)
        if isinstance(outcome, TxRejected):
            raise outcome
        if not created:
            outcome = Receipt(
                outcome.tx_id, outcome.height, outcome.index, outcome.block_hash, True
            )
        return outcome

    # -- applying the log -------------------------------------------------------------------

    def _watch(self) -> None:
        try:
            for kv in self.etcd.watch(self.base, self._cut_revision + 1, self._stop):
                self._on_entry(kv)
        except BaseException as exc:  # a bad log entry or storage failure: stop applying
            log.critical("replica stopped applying the log: %s", exc)
            self._failure = exc
            with self._changed:
                self._changed.notify_all()

    def _on_entry(self, kv: KeyValue) -> None:
        name = kv.key[len(self.base) :].decode()
        with self._changed:
            if name.startswith("tx/"):
                try:
                    tx = txs.from_json(json.loads(kv.value))
                except (ValueError, TxRejected):
                    tx = Tx({"kind": "unreadable", "log_key": name}, {})
                self._pending.append(tx)
            elif name.startswith("cut/"):
                cut = json.loads(kv.value)
                height = int(cut["height"])
                if height <= self.chain.tip.height:
                    return  # applied before a restart (cannot happen when resuming at the cut)
                if height != self.chain.tip.height + 1:
                    raise LedgerError(f"log has cut {height} after block {self.chain.tip.height}")
                block, results = self.chain.build(
                    self._pending,
                    int(cut["time_ms"]),
                    meta={META_REVISION: str(kv.create_revision)},
                    record_rejections=True,
                )
                assert block is not None
                self._cut_revision = kv.create_revision
                log.debug(
                    "block %d: %d txs (cut at revision %d)",
                    height,
                    len(block.txs),
                    kv.create_revision,
                )
                self._pending = []
            self._changed.notify_all()

    def _cut(self) -> None:
        """Propose the next block boundary when transactions wait or a dispute window runs."""
        while not self._stop.is_set():
            with self._changed:
                tip = self.chain.tip
                closing = bool(self.chain.state.closing_channels())
                # while a channel is closing, blocks are at least idle_block_ms apart (full or
                # empty), so a dispute window cannot be hurried through by pushing transactions
                spaced = not closing or now_ms() - int(tip.header["time_ms"]) >= self.idle_block_ms
                if not spaced or (not self._pending and not closing):
                    self._changed.wait(
                        self.idle_block_ms / 1000 if self.chain.state.closing_channels() else 0.5
                    )
                    continue
            self._stop.wait(self.cut_interval_ms / 1000)  # let a batch gather
            height = tip.height + 1
            cut = json.dumps({"height": height, "time_ms": now_ms()}).encode()
            try:
                self.etcd.create(self.base + f"cut/{height:012d}".encode(), cut)
            except LedgerError as exc:
                log.warning("could not propose cut %d: %s", height, exc)
            with self._changed:  # wait until that cut (ours or another replica's) is applied
                while (
                    self.chain.tip.height < height
                    and not self._stop.is_set()
                    and self._failure is None
                ):
                    self._changed.wait(1.0)
