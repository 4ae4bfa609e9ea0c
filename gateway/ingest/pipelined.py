"""Ingest with the store's fsync overlapped: batch k+1 is verified while batch k commits.

A batch's COMMIT is mostly waiting for the disk (WAL fsync, ~20 ms for 500 readings on a Pi's
SD card or this machine's virtual disk), and verification is CPU: `IngestPipeline` checks the
next batch (`Ingestor.check`) while one commit thread runs the previous batch's COMMIT, so the
CPU keeps verifying during the fsync. The rows are written (BEGIN + INSERTs) on the caller's
thread: only the COMMIT, one call that releases the GIL for its whole fsync, is handed over (a
thread binding 500 rows would wait for the GIL at every row while the loop verifies). The guarantees of `Ingestor.ingest` hold unchanged:

* an outcome (its acks) is handed out only after its batch's COMMIT returned, in batch order;
* at most one batch is being stored while the next is checked on top of it; if storing fails,
  both are abandoned (heads rolled back, nothing acknowledged: meters resend them).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from gateway.ingest.pipeline import BatchOutcome, CheckedBatch, Incoming, Ingestor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreFailed:
    """A batch that was not stored (nothing of it is acknowledged)."""

    readings: int
    error: Exception


Result = BatchOutcome | StoreFailed


def _nothing() -> None:
    """The commit of a batch with nothing to store (it still waits its turn: its acks may
    cover readings of the batch before it)."""


class IngestPipeline:
    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-commit")
        self._inflight: tuple[CheckedBatch, int, Future[None]] | None = None

    @property
    def inflight(self) -> Future[None] | None:
        """The commit under way, if any (await it, then call `finish`)."""
        return None if self._inflight is None else self._inflight[2]

    def submit(self, batch: list[Incoming]) -> list[Result]:
        """Check `batch`, then wait for the previous batch's commit and start this one's.
        Returns the results now final (the previous batch's), oldest first."""
        return self.store(self.check(batch))

    def check(self, batch: list[Incoming]) -> CheckedBatch | StoreFailed:
        """The first half of `submit`: check `batch` on top of the batch being stored (an
        asyncio caller then awaits `inflight` instead of blocking in `store`)."""
        try:
            return self.ingestor.check(batch)
        except Exception as exc:  # a store read failed while checking: nothing of it holds
            return StoreFailed(len(batch), exc)

    def store(self, checked: CheckedBatch | StoreFailed) -> list[Result]:
        """The second half of `submit`: wait for the previous batch's commit, write this one
        and start its commit. Returns the results now final, oldest first."""
        if isinstance(checked, StoreFailed):
            return [*self.finish(), checked]
        results: list[Result] = []
        if self._inflight is not None:
            prev, n, fut = self._inflight
            self._inflight = None
            try:
                fut.result()
            except Exception as exc:
                self.ingestor.abandon(checked)  # newest first: it was checked on top of prev
                self.ingestor.abandon(prev)
                return [StoreFailed(n, exc), StoreFailed(checked.size, exc)]
            self.ingestor.stored(prev)
            results.append(prev.outcome)
        try:
            wrote = self.ingestor.write_checked(checked)  # the CPU part, on this thread
        except Exception as exc:
            self.ingestor.abandon(checked)
            return [*results, StoreFailed(checked.size, exc)]
        commit = self.ingestor.store.commit_batch if wrote else _nothing
        self._inflight = (checked, checked.size, self._pool.submit(commit))
        return results

    def finish(self) -> list[Result]:
        """Wait for the commit under way; its result (or nothing if none was under way)."""
        if self._inflight is None:
            return []
        checked, n, fut = self._inflight
        self._inflight = None
        try:
            fut.result()
        except Exception as exc:
            self.ingestor.abandon(checked)
            return [StoreFailed(n, exc)]
        self.ingestor.stored(checked)
        return [checked.outcome]

    def close(self) -> list[Result]:
        out = self.finish()
        self._pool.shutdown(wait=True)
        return out
