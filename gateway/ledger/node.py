"""The embedded ledger node: one process, SQLite, a producer thread that seals blocks.

Submitters queue transactions and wait; the producer drains the queue into the next block,
persists it, then answers every waiter (persist before acknowledge). Whatever arrived while a
block was being written forms the next block, so load batches itself.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from gateway.ledger import rules, txs
from gateway.ledger.chain import Chain, Receipt
from gateway.ledger.errors import LedgerUnavailable, TxRejected
from gateway.ledger.txs import Tx

log = logging.getLogger(__name__)


class _Call:
    """One submit_many call: its event is set once every tx of it has a result (or on failure).

    Only the producer thread counts down `remaining`, so it needs no lock.
    """

    __slots__ = ("done", "remaining")

    def __init__(self, count: int) -> None:
        self.done = threading.Event()
        self.remaining = count


@dataclass(slots=True)
class _Waiter:
    tx: Tx
    call: _Call
    result: Receipt | TxRejected | None = None

    def answer(self, result: Receipt | TxRejected | None) -> None:
        self.result = result
        self.call.remaining -= 1
        if self.call.remaining <= 0:
            self.call.done.set()


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
        self._stop = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ledger-producer", daemon=True)
        self.check_s = 0.0  # submitters' seconds decoding and checking signatures (all threads)
        self.wait_s = 0.0  # the producer's seconds waiting for transactions
        self.answer_s = 0.0  # the producer's seconds answering the waiters of stored blocks

    def start(self) -> EmbeddedNode:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def submit(self, value: Any, timeout: float = 10.0) -> Receipt:
        """Queue a transaction (wire form) and wait until its block is stored."""
        result = self.submit_many([value], timeout)[0]
        if isinstance(result, TxRejected):
            raise result
        return result

    def submit_many(self, values: list[Any], timeout: float = 10.0) -> list[Receipt | TxRejected]:
        """Queue transactions (wire form) and wait until the blocks holding them are stored.

        One result per value, in order: its receipt or its refusal. Signatures are checked here,
        in the caller's thread (libsecp256k1 runs without the GIL), so the producer only applies
        the state-dependent rules; a tx with a bad signature never reaches the queue.
        """
        t0 = time.perf_counter()
        results: list[Receipt | TxRejected | None] = [None] * len(values)
        checked: list[tuple[int, Tx]] = []
        for i, value in enumerate(values):
            try:
                tx = value if isinstance(value, Tx) else txs.from_json(value)
                txs.check_shape(tx, self.chain.chain_id)
                known = self.chain.known(tx.id)
                if known is None:
                    rules.check_signature_values(tx)
                    tx.wire_json  # noqa: B018 (encoded here, not in the producer's critical path)
            except TxRejected as exc:
                results[i] = exc
                continue
            if known is not None:
                results[i] = known
            else:
                checked.append((i, tx))
        call = _Call(len(checked))
        waiters = [(i, _Waiter(tx, call)) for i, tx in checked]
        self.check_s += time.perf_counter() - t0  # not atomic: a figure, not an invariant
        if waiters:
            with self._cond:
                if self._failure is not None:
                    raise LedgerUnavailable(
                        f"ledger stopped after a storage failure: {self._failure}"
                    )
                self._queue.extend(w for _, w in waiters)
                self._cond.notify_all()
        finished = call.done.wait(timeout) if waiters else True
        for i, waiter in waiters:
            result = waiter.result
            if result is not None:
                results[i] = result
            elif finished:
                raise LedgerUnavailable("ledger stopped before committing the transaction")
            else:
                results[i] = TxRejected(
                    "timeout", "not committed in time; resubmit (idempotent)", waiter.tx.id
                )
        return [r for r in results if r is not None]

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
            "answer_s": self.answer_s,
            "check_s": self.check_s,
        }

    def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            batch = self._next_batch()
            self.wait_s += time.perf_counter() - t0
            if batch is None:
                break
            try:
                with self.lock:
                    block, results = self.chain.build(
                        [w.tx for w in batch], now_ms(), seal_empty=not batch, sigs_checked=True
                    )
            except BaseException as exc:  # storage failure: state may be ahead of disk, stop
                log.critical("ledger producer stopped: %s", exc)
                with self._cond:
                    self._failure = exc
                    pending, self._queue = batch + self._queue, []
                for waiter in pending:
                    waiter.call.done.set()
                return
            if block is not None:
                log.debug("block %d: %d txs", block.height, len(block.txs))
            t1 = time.perf_counter()
            for waiter in batch:
                waiter.answer(results.get(waiter.tx.id))
            self.answer_s += time.perf_counter() - t1
        with self._cond:
            pending, self._queue = self._queue, []
        for waiter in pending:
            waiter.call.done.set()
