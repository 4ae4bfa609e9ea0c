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

from gateway.ledger import rules, txs
from gateway.ledger.chain import Chain, Receipt
from gateway.ledger.config import LedgerConfig
from gateway.ledger.errors import LedgerError, LedgerUnavailable, TxRejected
from gateway.ledger.etcd import EtcdClient, KeyValue
from gateway.ledger.node import now_ms
from gateway.ledger.txs import Tx

log = logging.getLogger(__name__)
META_REVISION = "etcd_cut_revision"
MAX_REMEMBERED = 100_000  # submitted txs whose signatures were checked, awaiting their cut


class ReplicatedNode:
    mode = "replicated"

    def __init__(self, chain: Chain, config: LedgerConfig, etcd: EtcdClient | None = None) -> None:
        self.chain = chain
        self.etcd = etcd or EtcdClient(config.etcd)
        self.idle_block_ms = config.idle_block_ms
        self.cut_interval_ms = config.cut_interval_ms
        self.base = f"{config.etcd_prefix.rstrip('/')}/{chain.chain_id}/".encode()
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)  # the cut thread: work for a cut
        self._applied = threading.Condition(self.lock)  # submitters: a cut was applied
        self._stop = threading.Event()
        self._pending: list[Tx] = []
        self._verified: dict[str, dict[str, str]] = {}  # tx id -> sigs checked at submit
        self._verified_lock = threading.Lock()
        self._awaited: dict[str, int] = {}  # tx id -> submit calls waiting for it
        self._decided: dict[str, Receipt | TxRejected] = {}  # outcomes of awaited txs
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
            self._applied.notify_all()
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
        """Append to the etcd log and wait until this replica applied the cut that holds it."""
        result = self.submit_many([value], timeout)[0]
        if isinstance(result, TxRejected):
            raise result
        return result

    def submit_many(self, values: list[Any], timeout: float = 10.0) -> list[Receipt | TxRejected]:
        """Append transactions to the etcd log in one write; wait until their cuts are applied.

        One result per value, in order. Attempt k+1 of a tx refused k times goes to key
        `tx/<id>#k`: as with the embedded node, a refused transaction may be resubmitted later
        (e.g. a settle after its dispute window).
        """
        results: list[Receipt | TxRejected | None] = [None] * len(values)
        waiting: dict[str, tuple[list[int], int, bytes, bytes]] = {}  # id -> (slots, attempt, ..)
        for i, value in enumerate(values):
            try:
                tx = value if isinstance(value, Tx) else txs.from_json(value)
                txs.check_shape(tx, self.chain.chain_id)
                receipt = self.chain.known(tx.id)
                if receipt is None and tx.id not in waiting:
                    rules.check_signature_values(tx)  # here, in parallel (no GIL in the C part)
            except TxRejected as exc:
                results[i] = exc
                continue
            if receipt is not None:
                results[i] = receipt
            elif tx.id in waiting:
                waiting[tx.id][0].append(i)
            else:
                refused = self.chain.store.rejection(tx.id)
                attempt = refused[3] if refused else 0
                suffix = f"#{attempt}".encode() if attempt else b""
                key = self.base + b"tx/" + tx.id.encode() + suffix
                payload = tx.wire_json.encode()
                waiting[tx.id] = ([i], attempt, key, payload)
                self._remember_verified(tx)
        if waiting and self._failure is not None:
            raise LedgerUnavailable(f"replica stopped: {self._failure}")
        outcomes: dict[str, Receipt | TxRejected | None] = dict.fromkeys(waiting)
        with self._changed:  # registered before the write, so no applied cut goes unseen
            for tx_id in waiting:
                self._awaited[tx_id] = self._awaited.get(tx_id, 0) + 1
        try:
            try:
                created = self.etcd.create_many([(w[2], w[3]) for w in waiting.values()])
            except LedgerError as exc:
                raise LedgerUnavailable(str(exc)) from exc
            with self._applied:
                deadline = now_ms() + timeout * 1000
                look_on_disk = True  # first (and after each quiet wait) also ask the store
                while True:
                    for tx_id, (_, attempt, _, _) in waiting.items():
                        if outcomes[tx_id] is None:
                            outcomes[tx_id] = self._decided.get(tx_id) or (
                                self._outcome(tx_id, attempt) if look_on_disk else None
                            )
                    if all(o is not None for o in outcomes.values()) or now_ms() >= deadline:
                        break
                    look_on_disk = not self._applied.wait(
                        min(0.5, max(0.0, (deadline - now_ms()) / 1000))
                    )
        finally:
            with self._changed:
                for tx_id in waiting:
                    self._awaited[tx_id] -= 1
                    if not self._awaited[tx_id]:
                        del self._awaited[tx_id]
                        self._decided.pop(tx_id, None)
        for (tx_id, (slots, _, _, _)), (was_created, _) in zip(
            waiting.items(), created, strict=True
        ):
            outcome = outcomes[tx_id]
            if outcome is None:
                outcome = TxRejected(
                    "timeout", "not committed in time; resubmit (idempotent)", tx_id
                )
            elif isinstance(outcome, Receipt) and not was_created:
                outcome = Receipt(
                    outcome.tx_id, outcome.height, outcome.index, outcome.block_hash, True
                )
            for i in slots:
                results[i] = outcome
        return [r for r in results if r is not None]

    def _remember_verified(self, tx: Tx) -> None:
        """The applier need not verify again a log entry with exactly these signatures."""
        with self._verified_lock:
            if len(self._verified) >= MAX_REMEMBERED:
                self._verified.pop(next(iter(self._verified)))
            self._verified[tx.id] = dict(tx.sigs)

    def _sigs_verified(self, tx: Tx) -> bool:
        with self._verified_lock:
            return self._verified.pop(tx.id, None) == tx.sigs

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
                self._applied.notify_all()

    def _on_entry(self, kv: KeyValue) -> None:
        name = kv.key[len(self.base) :].decode()
        with self._changed:
            if name.startswith("tx/"):
                try:
                    tx = txs.from_json(json.loads(kv.value))
                except (ValueError, TxRejected):
                    tx = Tx({"kind": "unreadable", "log_key": name}, {})
                self._pending.append(tx)
                if len(self._pending) == 1:
                    self._changed.notify_all()  # the cut thread waits for a first pending tx
                return
            if name.startswith("cut/"):
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
                    sigs_checked=self._sigs_verified,
                )
                assert block is not None
                for tx_id, result in results.items():
                    if tx_id in self._awaited:
                        self._decided[tx_id] = result
                self._cut_revision = kv.create_revision
                log.debug(
                    "block %d: %d txs (cut at revision %d)",
                    height,
                    len(block.txs),
                    kv.create_revision,
                )
                self._pending = []
            self._changed.notify_all()
            self._applied.notify_all()

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
