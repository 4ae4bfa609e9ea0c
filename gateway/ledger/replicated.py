"""Replicated mode: the ordered log lives in etcd; every replica applies it deterministically.

Log layout under `<prefix>/<chain id>/` (docs/ledger.md, "Replicated mode"):
    txs/<random id>   the transactions of one submit call: a JSON list of wire-form txs (split
                      into several entries only past MAX_ENTRY_BYTES); create-only, so a retried
                      write is a no-op. (`tx/<tx id>[#k]`, one tx per key, is still applied.)
    cut/<height:012>  {"height", "time_ms"}: block `height` holds every tx of the entries created
                      after the previous cut and before this one, in etcd revision order
Any replica may write the next cut (create-only, so exactly one wins). Each replica validates the
same transactions in the same order at the same height with the same time, so all replicas seal
identical blocks (the validator key is shared; RFC 6979 signatures are deterministic); a tx that
is in the log twice (submitted twice before its block) is applied once, the copy is a replay. A
replica stores the revision of the last cut it applied with the block, and resumes the watch there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from typing import Any

from gateway.ledger import rules, txs
from gateway.ledger.chain import Chain, Receipt
from gateway.ledger.config import LedgerConfig
from gateway.ledger.errors import LedgerError, LedgerUnavailable, TxRejected
from gateway.ledger.etcd import EtcdClient, KeyValue
from gateway.ledger.log_entries import log_entries, read_entry
from gateway.ledger.log_writer import LogWriter
from gateway.ledger.node import TIMEOUT_CHECK_S, Done, now_ms
from gateway.ledger.txs import Tx

log = logging.getLogger(__name__)
META_REVISION = "etcd_cut_revision"
MAX_REMEMBERED = 100_000  # submitted txs whose signatures were checked, awaiting their cut


@dataclasses.dataclass(eq=False)
class _Awaiting:
    """One submit call whose log entries are written or being written, awaiting their cut."""

    keys: list[bytes]  # its log entries
    fresh: list[Tx]  # its txs in those entries
    slots: dict[str, list[int]]  # tx id -> positions in the call's values
    results: list[Receipt | TxRejected | None]  # None where the cut decides
    deadline: float  # time.monotonic()
    done: Done


class ReplicatedNode:
    mode = "replicated"

    def __init__(self, chain: Chain, config: LedgerConfig, etcd: EtcdClient | None = None) -> None:
        self.chain = chain
        self.etcd = etcd or EtcdClient(config.etcd)
        self.writer = LogWriter(self.etcd)  # group commit: one etcd txn for what queued meanwhile
        self.idle_block_ms = config.idle_block_ms
        self.cut_interval_ms = config.cut_interval_ms
        self.base = f"{config.etcd_prefix.rstrip('/')}/{chain.chain_id}/".encode()
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)  # the cut thread: work for a cut
        self._applied = threading.Condition(self.lock)  # submitters: a cut was applied
        self._stop = threading.Event()
        self._pending: list[tuple[Tx, bytes]] = []  # since the last cut, with their log keys
        self._verified: dict[str, dict[str, str]] = {}  # tx id -> sigs checked at submit
        self._verified_lock = threading.Lock()
        self._awaited: dict[bytes, dict[str, Receipt | TxRejected]] = {}  # entry key -> outcomes
        self._decided: dict[bytes, dict[str, Receipt | TxRejected]] = {}  # awaited and applied
        self._written: dict[bytes, tuple[bytes, list[Tx]]] = {}  # entry key -> (value, its txs)
        self._waiting: dict[bytes, _Awaiting] = {}  # entry key -> its call, until answered
        # guards the four above, never held for long: a call is answered (its deadline too)
        # while a cut is being applied under `lock` (taken before this one where both are)
        self._calls = threading.Lock()
        self._cut_revision = int(chain.store.meta(META_REVISION) or 0)
        self._failure: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._watch, name="ledger-etcd-watch", daemon=True),
            threading.Thread(target=self._cut, name="ledger-etcd-cut", daemon=True),
            threading.Thread(target=self._timeouts, name="ledger-timeouts", daemon=True),
        ]

    def start(self) -> ReplicatedNode:
        self.writer.start()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
            self._applied.notify_all()
        self._threads[1].join(timeout=5)
        self.writer.stop()
        self._answer_all()  # undecided txs "timeout", as a deadline would

    def stats(self) -> dict[str, float]:
        """Where the time goes (GET /v1/stats): the chain's build figures, etcd txns written."""
        return {**self.chain.stats(), "etcd_txns": self.writer.txns}

    # -- submitting -------------------------------------------------------------------------

    def submit(self, value: Any, timeout: float = 10.0) -> Receipt:
        """Append to the etcd log and wait until this replica applied the cut that holds it."""
        result = self.submit_many([value], timeout)[0]
        if isinstance(result, TxRejected):
            raise result
        return result

    def submit_many(self, values: list[Any], timeout: float = 10.0) -> list[Receipt | TxRejected]:
        """Append transactions to the etcd log as one entry; wait until its cut is applied.

        One result per value, in order. A transaction already committed is answered at once; one
        refused before may be submitted again (as with the embedded node: e.g. a settle after its
        dispute window), since every entry is validated afresh at the height of its cut.
        """
        answered = threading.Event()
        box: list[list[Receipt | TxRejected] | LedgerUnavailable] = []

        def done(outcome: list[Receipt | TxRejected] | LedgerUnavailable) -> None:
            box.append(outcome)
            answered.set()

        self.submit_later(values, timeout, done)
        if not answered.wait(timeout + 1 + 2 * TIMEOUT_CHECK_S):
            raise LedgerUnavailable("the replica did not answer (is the node started?)")
        if isinstance(box[0], LedgerUnavailable):
            raise box[0]
        return box[0]

    def submit_later(self, values: list[Any], timeout: float, done: Done) -> None:
        """As `submit_many`, without waiting: `done` gets the results (or LedgerUnavailable)
        once the cut holding the txs is applied here, or at the deadline ("timeout" for a tx
        still undecided), from the thread that got there: the applier, the etcd writer, the
        timeout thread, or this one if nothing was left to write. No thread waits per call."""
        results, slots, fresh = self._check(values)
        if not fresh:
            done([r for r in results if r is not None])
            return
        if self._failure is not None or self._stop.is_set():
            done(LedgerUnavailable(f"replica stopped: {self._failure or 'stopping'}"))
            return
        entries = log_entries(self.base, fresh)
        call = _Awaiting(
            [key for key, _, _ in entries], fresh, slots, results, time.monotonic() + timeout, done
        )
        with self._calls:  # registered before the write, so no applied cut goes unseen
            for key, payload, entry_txs in entries:
                self._awaited[key] = {}
                self._written[key] = (payload, entry_txs)
                self._waiting[key] = call
        # create-only: a retried write is a no-op; with other submitters' entries
        self.writer.write_later(
            [(key, payload) for key, payload, _ in entries],
            lambda outcome: (
                self._answer(call, outcome) if isinstance(outcome, LedgerError) else None
            ),
        )

    def _check(
        self, values: list[Any]
    ) -> tuple[list[Receipt | TxRejected | None], dict[str, list[int]], list[Tx]]:
        """Shape and signatures of each value: its result if decided now (refused, or committed
        already), else its slot under a fresh tx (a tx twice in `values` is written once)."""
        results: list[Receipt | TxRejected | None] = [None] * len(values)
        slots: dict[str, list[int]] = {}  # tx id -> positions in `values`
        fresh: list[Tx] = []
        for i, value in enumerate(values):
            try:
                tx = value if isinstance(value, Tx) else txs.from_json(value)
                txs.check_shape(tx, self.chain.chain_id)
                receipt = self.chain.known(tx.id)
                if receipt is None and tx.id not in slots:
                    rules.check_signature_values(tx)  # here, in parallel (no GIL in the C part)
            except TxRejected as exc:
                results[i] = exc
                continue
            if receipt is not None:
                results[i] = receipt
            elif tx.id in slots:
                slots[tx.id].append(i)
            else:
                slots[tx.id] = [i]
                fresh.append(tx)
                self._remember_verified(tx)
        return results, slots, fresh

    def _answer(self, call: _Awaiting, failure: LedgerError | None = None) -> None:
        """Answer `call` once (the first thread to get here does): its txs' outcomes from the
        cuts applied so far ("timeout" for those still undecided), or the write's failure."""
        with self._calls:
            if self._waiting.get(call.keys[0]) is not call:
                return  # answered already
            outcomes: dict[str, Receipt | TxRejected] = {}
            for key in call.keys:
                del self._waiting[key]
                self._awaited.pop(key, None)
                self._written.pop(key, None)
                outcomes.update(self._decided.pop(key, {}))
        if failure is not None:
            outcome: list[Receipt | TxRejected] | LedgerUnavailable = LedgerUnavailable(
                str(failure)
            )
        else:
            results = call.results
            for tx in call.fresh:
                decided = outcomes.get(tx.id) or TxRejected(
                    "timeout", "not committed in time; resubmit (idempotent)", tx.id
                )
                for i in call.slots[tx.id]:
                    results[i] = decided
            outcome = [r for r in results if r is not None]
        try:
            call.done(outcome)
        except Exception:  # a caller's bug must not stop the applier
            log.exception("answering a submit call failed")

    def _answer_all(self) -> None:
        with self._calls:
            calls = list({id(c): c for c in self._waiting.values()}.values())
        for call in calls:
            self._answer(call)

    def _timeouts(self) -> None:
        """Answer calls past their deadline (undecided txs "timeout"), also while etcd or this
        replica's applier is stuck."""
        while not self._stop.wait(TIMEOUT_CHECK_S):
            now = time.monotonic()
            with self._calls:
                late = {id(c): c for c in self._waiting.values() if c.deadline <= now}
            for call in late.values():
                self._answer(call)

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
            self._answer_all()

    def _on_entry(self, kv: KeyValue) -> None:
        name = kv.key[len(self.base) :].decode()
        if name.startswith(("txs/", "tx/")):
            with self._calls:
                written = self._written.pop(kv.key, None)
            # an entry this replica wrote: its txs as parsed, checked and encoded at submit
            if written is not None and written[0] == kv.value:
                entry = written[1]
            else:
                entry = read_entry(name, kv.value)
            with self._changed:
                first = not self._pending
                self._pending.extend((tx, kv.key) for tx in entry)
                if first and self._pending:
                    self._changed.notify_all()  # the cut thread waits for a first pending tx
            return
        ready: dict[int, _Awaiting] = {}
        with self._changed:
            if name.startswith("cut/"):
                cut = json.loads(kv.value)
                height = int(cut["height"])
                if height <= self.chain.tip.height:
                    return  # applied before a restart (cannot happen when resuming at the cut)
                if height != self.chain.tip.height + 1:
                    raise LedgerError(f"log has cut {height} after block {self.chain.tip.height}")
                block, results = self.chain.build(
                    [tx for tx, _ in self._pending],
                    int(cut["time_ms"]),
                    meta={META_REVISION: str(kv.create_revision)},
                    record_rejections=True,
                    sigs_checked=self._sigs_verified,
                )
                assert block is not None
                with self._calls:
                    self._decide(results)
                    for _, key in self._pending:
                        call = self._waiting.get(key)
                        if call is not None and all(k in self._decided for k in call.keys):
                            ready[id(call)] = call
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
        for call in ready.values():
            self._answer(call)

    def _decide(self, results: dict[str, Receipt | TxRejected]) -> None:
        """Hand the results of the cut just applied to the submitters awaiting its entries.

        A tx also held by an earlier entry (another submitter's) is a duplicate for this one."""
        answered: set[str] = set()
        for tx, key in self._pending:
            result = results[tx.id]
            if tx.id in answered and isinstance(result, Receipt):
                result = dataclasses.replace(result, duplicate=True)
            answered.add(tx.id)
            decided = self._awaited.get(key)
            if decided is not None:
                decided[tx.id] = result
                self._decided[key] = decided

    def _cut(self) -> None:
        """Propose the next block boundary when transactions wait or a dispute window runs.

        The first entries after a quiet spell get `cut_interval_ms` to gather; entries that
        arrived while the previous block was being cut and applied have gathered already."""
        gathered = False
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
            if not gathered:
                self._stop.wait(self.cut_interval_ms / 1000)  # let a batch gather
            height = tip.height + 1
            cut = json.dumps({"height": height, "time_ms": now_ms()}).encode()
            try:
                # after the entries queued before it, in the same txn when they are in flight
                self.writer.write([(self.base + f"cut/{height:012d}".encode(), cut)])
            except LedgerError as exc:
                log.warning("could not propose cut %d: %s", height, exc)
            with self._changed:  # wait until that cut (ours or another replica's) is applied
                while (
                    self.chain.tip.height < height
                    and not self._stop.is_set()
                    and self._failure is None
                ):
                    self._changed.wait(1.0)
                gathered = bool(self._pending)
