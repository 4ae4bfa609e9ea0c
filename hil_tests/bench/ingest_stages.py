"""Where an ingested reading's CPU time goes beyond its signature check (bench_gateway's breakdown).

The readings go through the service's `IngestPipeline` (batch k+1 checked while batch k's COMMIT
runs on the commit thread) and every stage is timed in CPU seconds of the thread that runs it.
Before each batch is checked, its signatures are verified alone (the raw ceiling's work, on the
same readings, a moment before), so that each batch is measured against the verify of the same
batch at the same moment, not against a run a second away on a shared machine:

    verify      the batch's signatures alone (libsecp256k1, digests computed beforehand)
    check       `IngestPipeline.check` minus that verify: decode, both SHA-256, the checks, rows
    write       `IngestPipeline.store`: BEGIN, the INSERTs, the meters' heads (sqlite3), handing
                the COMMIT to the commit thread
    commit      `ReadingStore.commit_batch` on the commit thread: the WAL's page writes, its fsync
    acks        one signed ack per meter per batch (`messages.encode_ack`)
    checkpoint  the other threads of this process meanwhile (the WAL checkpointer)

The verify-alone passes run while the commit thread waits for its fsync: this breakdown is a
CPU account (its ratio is by CPU time), not a throughput figure.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from gateway.crypto import MeterVerifier, SiteKey
from gateway.ingest.pipeline import Incoming, Ingestor
from gateway.ingest.pipelined import IngestPipeline, Result, StoreFailed
from gateway.ingest.store import ReadingStore
from gateway.mqtt import messages
from hil_tests.gateway.soft_meter import SoftMeter
from sgcore import reading as rc

STAGES = ("check", "write", "commit", "acks", "checkpoint")


class _TimedStore(ReadingStore):
    """The store, its COMMIT timed on the thread that runs it (the pipeline's commit thread)."""

    commit_s = 0.0

    def commit_batch(self) -> None:
        t0 = time.thread_time()
        super().commit_batch()
        self.commit_s += time.thread_time() - t0


def breakdown(
    items: list[Incoming], softs: list[SoftMeter], batch: int, tmp: Path
) -> dict[str, float]:
    """CPU microseconds per reading: 'verify' and each of `STAGES` (see the module's doc)."""
    store = _TimedStore(tmp / "stages.sqlite3")
    try:
        for s in softs:
            store.enroll(s.pubkey)
        key = SiteKey.load_or_create(tmp / "site.key")
        pipe = IngestPipeline(Ingestor(store))
        verifiers = {s.meter_id: MeterVerifier(s.pubkey) for s in softs}
        spent = dict.fromkeys(("verify", *STAGES), 0.0)
        clock = time.thread_time
        stored = 0

        def acks(results: list[Result]) -> None:
            nonlocal stored
            t0 = clock()
            for out in results:
                assert not isinstance(out, StoreFailed), out
                stored += len(out.records)
                for mid, (upto, h) in out.acks.items():
                    messages.encode_ack(key, mid, upto, h)
            spent["acks"] += clock() - t0

        process0, thread0 = time.process_time(), clock()
        for i in range(0, len(items), batch):
            part = items[i : i + batch]
            work = [
                (verifiers[p[3:19]], p[rc.BODY_LEN :], rc.digest(p[: rc.BODY_LEN]))
                for p in (it.payload for it in part)
            ]
            t0 = clock()
            for verifier, sig, digest in work:
                verifier.verify_digest(sig, digest)
            t1 = clock()
            checked = pipe.check(part)
            t2 = clock()
            results = pipe.store(checked)
            t3 = clock()
            acks(results)
            spent["verify"] += t1 - t0
            spent["check"] += (t2 - t1) - (t1 - t0)
            spent["write"] += t3 - t2
        acks(pipe.close())
        others = (time.process_time() - process0) - (clock() - thread0)
        spent["commit"] = store.commit_s
        spent["checkpoint"] = max(0.0, others - store.commit_s)
        assert stored == len(items), (stored, len(items))
    finally:
        store.close()
    return {stage: s / len(items) * 1e6 for stage, s in spent.items()}


def measure(
    items: list[Incoming], softs: list[SoftMeter], batch: int, reps: int
) -> dict[str, float]:
    """`breakdown` `reps` times (each on a fresh store): the median of each stage."""
    runs = []
    for _ in range(max(1, reps)):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(breakdown(items, softs, batch, Path(tmp)))
    return {stage: statistics.median(r[stage] for r in runs) for stage in runs[0]}


def line(us: dict[str, float]) -> str:
    """The breakdown as one printed line."""
    beyond = sum(us[s] for s in STAGES)
    parts = ", ".join(f"{s} {us[s]:.1f}" for s in STAGES)
    return (
        f"    CPU per reading by stage (IngestPipeline, each batch against the verify of the same"
        f" batch): verify {us['verify']:.1f} us; beyond it {beyond:.1f} us = {parts}"
        f"\n    ingest / verify ceiling, batch by batch: {us['verify'] / (us['verify'] + beyond):.0%}"
        f" by CPU time; goal >= 80%"
    )
