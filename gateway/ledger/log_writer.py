"""Group commit of a replica's writes to the etcd log: one txn carries every write queued while
the previous txn was in flight.

Each etcd txn is one raft entry: a round trip to the leader, a WAL fsync on a quorum, and a watch
event to every replica. Sixteen submitters used to make sixteen txns per block, plus the cut;
here they make one or two, and a cut queued behind entries rides in the same txn, after them
(so those entries are in its block). Keys are created only if absent, as with
`EtcdClient.create`: a txn whose keys are not all new (a retried write, a cut another replica
wrote first) is redone one create per key, so each write still learns whether it created its key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from gateway.ledger.errors import LedgerError, LedgerUnavailable
from gateway.ledger.etcd import EtcdClient

log = logging.getLogger(__name__)
MAX_TXN_OPS = 100  # etcd refuses a txn of more than --max-txn-ops (128 by default) operations
MAX_TXN_BYTES = 900_000  # values in one txn (base64 on the wire; etcd's request limit is 1.5 MiB)


Written = Callable[[list[bool] | LedgerError], None]


class _Write:
    __slots__ = ("items", "done", "created", "error", "then")

    def __init__(self, items: Sequence[tuple[bytes, bytes]], then: Written | None = None) -> None:
        self.items = items
        self.done = threading.Event()
        self.created: list[bool] = []
        self.error: LedgerError | None = None
        self.then = then  # called from the writer thread instead of waking a waiting caller

    def finish(self) -> None:
        if self.then is None:
            self.done.set()
            return
        try:
            self.then(self.error if self.error is not None else self.created)
        except Exception:  # a caller's bug must not stop the writer
            log.exception("answering an etcd write failed")


class LogWriter:
    def __init__(self, etcd: EtcdClient) -> None:
        self.etcd = etcd
        self._cond = threading.Condition()
        self._queue: list[_Write] = []
        self._stop = False
        self.txns = 0  # etcd txns written (for tests and metrics)
        self._thread = threading.Thread(target=self._run, name="ledger-etcd-write", daemon=True)

    def start(self) -> LogWriter:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def write(self, items: Sequence[tuple[bytes, bytes]]) -> list[bool]:
        """Create these keys (in this order, each only if absent) with the next txn; returns,
        per item, whether it was created now. Raises LedgerError if etcd cannot be reached."""
        write = _Write(items)
        with self._cond:
            if self._stop:
                raise LedgerUnavailable("the replica is stopping")
            self._queue.append(write)
            self._cond.notify()
        while not write.done.wait(1.0):
            if self._stop and not self._thread.is_alive():
                raise LedgerUnavailable("the replica stopped before writing to etcd")
        if write.error is not None:
            raise write.error
        return write.created

    def write_later(self, items: Sequence[tuple[bytes, bytes]], then: Written) -> None:
        """As `write`, without waiting: `then` gets, from the writer thread, per item whether it
        was created now, or the LedgerError (quick, and must not block)."""
        write = _Write(items, then)
        with self._cond:
            if not self._stop:
                self._queue.append(write)
                self._cond.notify()
                return
        write.error = LedgerUnavailable("the replica is stopping")
        write.finish()

    def _take(self) -> list[_Write] | None:
        """The writes of the next txn (at least one), or None once stopping."""
        with self._cond:
            while not self._queue and not self._stop:
                self._cond.wait()
            if self._stop:
                return None
            taken: list[_Write] = []
            ops = size = 0
            while self._queue:
                nxt = self._queue[0]
                n, b = len(nxt.items), sum(len(v) for _, v in nxt.items)
                if taken and (ops + n > MAX_TXN_OPS or size + b > MAX_TXN_BYTES):
                    break
                taken.append(self._queue.pop(0))
                ops, size = ops + n, size + b
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                break
            items = [item for write in taken for item in write.items]
            try:
                created: list[bool] = []
                for start in range(0, len(items), MAX_TXN_OPS):  # one huge write: in order
                    created += self.etcd.create_many(items[start : start + MAX_TXN_OPS])
                    self.txns += 1
            except LedgerError as exc:
                for write in taken:
                    write.error = exc
                    write.finish()
                continue
            except BaseException as exc:  # never leave a submitter waiting forever
                log.critical("etcd log writer failed: %s", exc)
                for write in taken:
                    write.error = LedgerUnavailable(f"etcd log writer failed: {exc}")
                    write.finish()
                continue
            at = 0
            for write in taken:
                write.created = created[at : at + len(write.items)]
                at += len(write.items)
                write.finish()
        with self._cond:
            pending, self._queue = self._queue, []
        for write in pending:
            write.error = LedgerUnavailable("the replica stopped before writing to etcd")
            write.finish()
