"""The embedded ledger node: one process, SQLite, a producer thread that seals blocks.

Submitters queue transactions; the producer drains the queue into the next block, persists it,
then answers every submit call of it (persist before acknowledge). Whatever arrived while a
block was being written forms the next block, so load batches itself. A call is answered
through its callback (`submit_later`: the HTTP API answers from the producer, no thread waits
per request) or by waking its caller (`submit_many`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.ledger import rules, txs
from gateway.ledger.chain import Chain, Receipt
from gateway.ledger.errors import LedgerUnavailable, TxRejected
from gateway.ledger.txs import Tx

log = logging.getLogger(__name__)
Results = list[Receipt | TxRejected]
Done = Callable[[Results | LedgerUnavailable], None]
TIMEOUT_CHECK_S = 0.25  # how often the timeout thread looks for calls past their deadline
# a block waits up to this long for submit calls whose signatures are being checked: they join
# it rather than wait for its fsync and then take a block (and an fsync) of their own
GATHER_S = 0.002


class _Call:
    """One submit call: `done` gets one result per value once every tx of it has one, or the
    failure; exactly once, from whichever thread finishes it first (the producer after the
    block's commit, the timeout thread, a stopping or failed node)."""

    __slots__ = ("results", "remaining", "deadline", "done", "_once")

    def __init__(self, results: list[Any], remaining: int, deadline: float, done: Done) -> None:
        self.results = results  # per value: Receipt | TxRejected, or its Tx while undecided
        self.remaining = remaining  # only the producer counts it down: no lock needed
        self.deadline = deadline  # time.monotonic()
        self.done = done
        self._once = threading.Lock()

    def finish(self, failure: LedgerUnavailable | None = None) -> None:
        """Answer the caller (txs still undecided time out), unless it was answered already."""
        if not self._once.acquire(blocking=False):
            return
        results = self.results
        if failure is None:
            for i, result in enumerate(results):
                if isinstance(result, Tx):
                    results[i] = TxRejected(
                        "timeout", "not committed in time; resubmit (idempotent)", result.id
                    )
        try:
            self.done(failure or results)
        except Exception:  # a caller's bug must not stop the producer
            log.exception("answering a submit call failed")


@dataclass(slots=True)
class _Waiter:
    tx: Tx
    call: _Call
    index: int  # in call.results

    def answer(self, result: Receipt | TxRejected) -> None:
        call = self.call
        call.results[self.index] = result
        call.remaining -= 1
        if call.remaining <= 0:
            call.finish()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class EmbeddedNode:
    mode = "embedded"

    def __init__(self, chain: Chain, max_block_txs: int = 1000, idle_block_ms: int = 1000) -> None:
        self.chain = chain
        self.max_block_txs = max_block_txs
        self.idle_block_ms = idle_block_ms
        self.lock = threading.RLock()  # guards chain.state and chain.tip for readers
        self._cond = threading.Condition()
        self._queue: list[_Waiter] = []
        self._calls: set[_Call] = set()  # calls with txs in the queue or in the block being built
        self._checking = 0  # submit calls being checked, not queued yet (guarded by _cond)
        self._stop = False
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ledger-producer", daemon=True)
        self._timer = threading.Thread(target=self._timeouts, name="ledger-timeouts", daemon=True)
        # where the time goes (GET /v1/stats), wall and CPU seconds; sums over threads are not
        # atomic: figures, not invariants
        self.check_s = self.check_cpu_s = 0.0  # submitters decoding and checking signatures
        self.wait_s = 0.0  # the producer waiting for transactions
        self.build_cpu_s = 0.0  # the producer validating, sealing and storing blocks
        self.answer_s = self.answer_cpu_s = 0.0  # the producer answering the calls of a block

    def start(self) -> EmbeddedNode:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._stopping.set()
        self._thread.join(timeout=10)
        self._timer.join(timeout=10)

    def submit(self, value: Any, timeout: float = 10.0) -> Receipt:
        """Queue a transaction (wire form) and wait until its block is stored."""
        result = self.submit_many([value], timeout)[0]
        if isinstance(result, TxRejected):
            raise result
        return result

    def submit_many(self, values: list[Any], timeout: float = 10.0) -> Results:
        """Queue transactions (wire form) and wait until the blocks holding them are stored.

        One result per value, in order: its receipt or its refusal ("timeout" when its block
        was not stored within `timeout` seconds)."""
        answered = threading.Event()
        box: list[Results | LedgerUnavailable] = []

        def done(outcome: Results | LedgerUnavailable) -> None:
            box.append(outcome)
            answered.set()

        self.submit_later(values, timeout, done)
        # the timeout thread answers at the deadline at the latest (if the node was started)
        if not answered.wait(timeout + 1 + 2 * TIMEOUT_CHECK_S):
            raise LedgerUnavailable("the ledger did not answer (is the node started?)")
        if isinstance(box[0], LedgerUnavailable):
            raise box[0]
        return box[0]

    def submit_later(self, values: list[Any], timeout: float, done: Done) -> None:
        """Queue transactions (wire form); `done` gets their results once they are decided.

        Called with one result per value, in order (receipt or refusal, "timeout" for a tx whose
        block was not stored within `timeout` seconds), or with LedgerUnavailable; exactly once,
        from the producer thread after the block is stored (or at once if nothing is left to
        queue), so `done` must be quick and must not block. Signatures are checked here, in
        the caller's thread (libsecp256k1 runs without the GIL), so the producer only applies
        the state-dependent rules; a tx with a bad signature never reaches the queue.
        """
        with self._cond:
            self._checking += 1
        try:
            self._check_and_queue(values, timeout, done)
        finally:
            with self._cond:
                self._checking -= 1
                self._cond.notify()

    def _check_and_queue(self, values: list[Any], timeout: float, done: Done) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        results: list[Any] = [None] * len(values)
        fresh: list[tuple[int, Tx]] = []
        chain_id = self.chain.chain_id
        known = self.chain.known
        for i, value in enumerate(values):
            try:
                tx = value if isinstance(value, Tx) else txs.from_json(value)
                txs.check_shape(tx, chain_id)
                receipt = known(tx.id)
                if receipt is None:
                    rules.check_signature_values(tx)
                    tx.wire_json  # noqa: B018 (encoded here, not in the producer's critical path)
            except TxRejected as exc:
                results[i] = exc
                continue
            if receipt is not None:
                results[i] = receipt
            else:
                results[i] = tx
                fresh.append((i, tx))
        self.check_s += time.perf_counter() - t0
        self.check_cpu_s += time.thread_time() - c0
        call = _Call(results, len(fresh), time.monotonic() + timeout, done)
        if not fresh:
            call.finish()
            return
        waiters = [_Waiter(tx, call, i) for i, tx in fresh]
        with self._cond:
            failure = self._failure
            if failure is None and not self._stop:
                self._calls.add(call)
                self._queue.extend(waiters)
                self._cond.notify()  # the producer (the only thread waiting on it)
        if failure is not None:
            call.finish(LedgerUnavailable(f"ledger stopped after a storage failure: {failure}"))
        elif self._stop:
            call.finish(LedgerUnavailable("ledger stopped before committing the transaction"))

    def _next_batch(self) -> list[_Waiter] | None:
        """Wait for work; an empty list means "seal an empty block" (dispute windows).

        While a channel is closing, blocks are at least idle_block_ms apart, full or empty: a
        dispute window of D blocks then lasts at least D * idle_block_ms, however many
        transactions a cheating party pushes to make blocks go by faster.
        """
        with self._cond:
            while not self._stop:
                closing = bool(self.chain.state.closing_channels())
                since = now_ms() - int(self.chain.tip.header["time_ms"])
                spaced = not closing or since >= self.idle_block_ms
                if self._queue and spaced:
                    break
                if not self._queue and closing and spaced:
                    return []
                self._cond.wait((self.idle_block_ms - since) / 1000 if closing else 1.0)
            deadline = time.monotonic() + GATHER_S
            while self._checking and len(self._queue) < self.max_block_txs and not self._stop:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._stop:
                return None
            batch, self._queue = (
                self._queue[: self.max_block_txs],
                self._queue[self.max_block_txs :],
            )
            return batch

    def stats(self) -> dict[str, float]:
        """Where the time goes (GET /v1/stats): the chain's build figures, the producer's wait
        and answer seconds, the submitters' check seconds."""
        return {
            **self.chain.stats(),
            "wait_s": self.wait_s,
            "build_cpu_s": self.build_cpu_s,
            "answer_s": self.answer_s,
            "answer_cpu_s": self.answer_cpu_s,
            "check_s": self.check_s,
            "check_cpu_s": self.check_cpu_s,
        }

    def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            batch = self._next_batch()
            self.wait_s += time.perf_counter() - t0
            if batch is None:
                break
            c0 = time.thread_time()
            try:
                with self.lock:
                    block, results = self.chain.build(
                        [w.tx for w in batch], now_ms(), seal_empty=not batch, sigs_checked=True
                    )
            except BaseException as exc:  # storage failure: state may be ahead of disk, stop
                log.critical("ledger producer stopped: %s", exc)
                with self._cond:
                    self._failure = exc
                self._fail_all(LedgerUnavailable(f"ledger stopped after a storage failure: {exc}"))
                return
            if block is not None:
                log.debug("block %d: %d txs", block.height, len(block.txs))
            t1, c1 = time.perf_counter(), time.thread_time()
            self.build_cpu_s += c1 - c0
            calls = self._calls
            for waiter in batch:
                waiter.answer(results[waiter.tx.id])
                if waiter.call.remaining <= 0:
                    calls.discard(waiter.call)
            self.answer_s += time.perf_counter() - t1
            self.answer_cpu_s += time.thread_time() - c1
        self._fail_all(LedgerUnavailable("ledger stopped before committing the transaction"))

    def _fail_all(self, failure: LedgerUnavailable) -> None:
        with self._cond:
            pending, self._calls, self._queue = list(self._calls), set(), []
        for call in pending:
            call.finish(failure)

    def _timeouts(self) -> None:
        """Answer calls past their deadline (their undecided txs "timeout"), even while the
        producer is stuck in a block's write."""
        while not self._stopping.wait(TIMEOUT_CHECK_S):
            now = time.monotonic()
            late = [c for c in list(self._calls) if c.deadline <= now]  # list(): one C step
            for call in late:
                self._calls.discard(call)
                call.finish()
