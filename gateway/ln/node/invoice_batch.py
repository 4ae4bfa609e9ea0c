"""Decoding a batch of BOLT-11 invoices for `Node.pay_invoices`, large ones in worker processes.

Decoding and verifying an invoice (bech32, field parsing, a signature check: ~60 us here) costs
the payer half as much CPU as the rest of its payment, and one node process runs on one core. A batch of at least
`POOL_MIN` invoices is therefore decoded in worker processes (started on the first such batch,
`spawn`ed: they import only the codec), in chunks that are handed back one by one, so the node
starts the payments of a chunk while the workers decode the next ones. The first chunk is small
(`FIRST_CHUNK`) and decoded by the node itself while the workers start on the second: the
channel waits for it idle; each next one doubles, up to `CHUNK`, while the channel is busy with
the ones before (decoding one costs less than paying it). A smaller batch, or any batch once
the pool has failed, is decoded in the node's own process. Both run the same `decode_chunk`, so
the checks are the same.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor

from gateway.ln.codec import bolt11
from gateway.ln.errors import LnError

log = logging.getLogger(__name__)

POOL_MIN = 128  # invoices in a batch before it is worth a round trip to a worker
FIRST_CHUNK = 128  # the first worker task: the payments start after it
CHUNK = 1000  # invoices per worker task at most: fewer, larger rounds (256 made ~20 % more)
# (payee, payment hash, amount msat, min final cltv, payment secret, expires at unix s)
Decoded = tuple[bytes, bytes, int, int, bytes, int]


def decode_chunk(texts: list[str]) -> list[Decoded | str]:
    """Each invoice decoded and verified (`bolt11.payment_terms`: every check of `decode`,
    without building an `Invoice`), or the reason it cannot be paid."""
    out: list[Decoded | str] = []
    for text in texts:
        try:
            t = bolt11.payment_terms(text)
        except LnError as exc:
            out.append(f"{type(exc).__name__}: {exc}")
            continue
        if t.amount_msat is None:
            out.append("invoice lacks payee or amount")
            continue
        out.append(
            (
                t.payee,
                t.payment_hash,
                t.amount_msat,
                t.min_final_cltv,
                t.payment_secret or b"",
                t.expires_at,
            )
        )
    return out


def chunk_starts(count: int) -> list[int]:
    """Where each chunk of `count` invoices starts, and `count` last: FIRST_CHUNK, then twice
    the previous chunk, at most CHUNK; towards the end each chunk is half of what is left
    (down to FIRST_CHUNK), so that when the last one is decoded the channel has few payments
    left to make (a last chunk of 1,000 left it ~150 ms of paying after the decoding ended)."""
    starts, size, pos = [], FIRST_CHUNK, 0
    while pos < count:
        starts.append(pos)
        left = count - pos
        if left <= 2 * size:
            size = left if left <= FIRST_CHUNK * 3 // 2 else max(FIRST_CHUNK, -(-left // 2))
        pos += size
        size = min(2 * size, CHUNK)
    return [*starts, count]


def _worker_start(parent: int) -> None:
    """Worker initializer: a worker of a node that is killed (SIGKILL too) exits within a
    second instead of waiting forever on its task queue; what it imported is frozen out of
    the collector's generations (each full collection would walk it again, per chunk)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    gc.collect()
    gc.freeze()


class BatchDecoder:
    def __init__(self, workers: int | None = None) -> None:
        cores = os.cpu_count() or 1
        self.workers = workers if workers is not None else max(1, min(3, cores - 1))
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False

    async def chunks(self, texts: list[str]) -> AsyncIterator[tuple[int, list[Decoded | str]]]:
        """(offset of the chunk in `texts`, its decoded invoices), in order."""
        if len(texts) < POOL_MIN or self._broken:
            yield 0, decode_chunk(texts)
            return
        loop = asyncio.get_running_loop()
        pool = self._get_pool()
        starts = chunk_starts(len(texts))
        parts = [texts[a:b] for a, b in zip(starts, starts[1:], strict=False)]
        # the workers start on the second chunk while this process decodes the first (the
        # channel waits for it idle): its payments start without a worker's wake-up and pickles
        futs = [loop.run_in_executor(pool, decode_chunk, part) for part in parts[1:]]
        yield 0, decode_chunk(parts[0])
        for start, part, fut in zip(starts[1:], parts[1:], futs, strict=False):
            try:
                decoded = await fut
            except Exception as exc:  # noqa: BLE001 - a dead worker: decode here from now on
                if not self._broken:
                    log.warning("invoice decoding workers failed (%r): decoding in-process", exc)
                self._broken = True
                decoded = decode_chunk(part)
            yield start, decoded

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")  # not fork: the node has threads, sockets
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=ctx,
                initializer=_worker_start,
                initargs=(os.getpid(),),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
