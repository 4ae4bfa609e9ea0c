"""Where a node's store commit goes, in one process: the channel's document (CPU), the SQL
statements, BEGIN and COMMIT (the WAL write and its fsync), beside a bare pwrite + fdatasync of
the same bytes on the same disk.

    uv run python -m hil_tests.bench.store_commit [--payments 200] [--dir DIR]

One channel end on a real `Store` (the payer's: its peer's end lives in memory, without a
store) makes the commits a payment makes at the payer: the add proposed, the peer's ack
received, the fulfil received, the revoke received; one HTLC a payment, as bench_channels' 2-hop
payments. Two passes on new files: the WAL only appended to (no checkpoint: each commit grows
the file, and its size delta counts the WAL frames it wrote), then the WAL reused (a checkpoint
every CHECKPOINT_COMMITS commits, as the node does: after each, commits overwrite the file's
first blocks). The bare writes are the floor: what the disk takes for those frames with no SQLite.

A commit in the 2-hop run (bench_channels: "store commits on the payments' paths, in the nodes")
costs more than here: there, the other nodes' commits and checkpoints often fsync at the same
time, and the CPU caches are cold after the rest of a node's handler.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, TypeVar

from gateway.ln.channel.channel import Channel
from gateway.ln.channel.state import IncomingHtlc
from gateway.ln.node import store as store_mod
from gateway.ln.node.core import CHECKPOINT_COMMITS
from gateway.ln.node.store import Store
from gateway.ln.node.switch import Switch
from hil_tests.gateway.ln.channel_pair import make_pair, node_keys

M = TypeVar("M")
FRAME = 4096 + 24  # a WAL frame: its header and a page
IDLE_S = 0.002  # about the time between a node's commits in bench_channels' 2-hop run


class _TimedDb:
    """The store's connection, timing each statement: BEGIN, COMMIT and the others apart."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.ns = {"begin": 0, "sql": 0, "commit": 0}

    def execute(self, sql: str, *args: Any) -> Any:
        t0 = time.perf_counter_ns()
        try:
            return self._db.execute(sql, *args)
        finally:
            self._add(sql, time.perf_counter_ns() - t0)

    def executemany(self, sql: str, rows: Any) -> Any:
        t0 = time.perf_counter_ns()
        try:
            return self._db.executemany(sql, rows)
        finally:
            self._add(sql, time.perf_counter_ns() - t0)

    def _add(self, sql: str, ns: int) -> None:
        kind = "begin" if sql.startswith("BEGIN") else "commit" if sql == "COMMIT" else "sql"
        self.ns[kind] += ns

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def _sent(msg: M | None) -> M:
    assert msg is not None, "the channel had nothing to send"
    return msg


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))]


def store_commits(root: Path, payments: int, checkpoint_every: int) -> dict[str, list[float]]:
    """Microseconds per commit: doc (building the document), sql, begin, commit, total; and
    frames (WAL frames written, counted when the WAL only grows: checkpoint_every 0)."""
    a, b = make_pair(amounts=(10**10, 10**10))
    keys = node_keys("alice")
    st = Store(root / "channels.sqlite", keys)
    sw = Switch(keys.node_id)
    sw.channels[a.channel_id] = a
    a.on_persist = st.mark
    timed = _TimedDb(st.db)
    st.db = timed  # type: ignore[assignment]
    wal = Path(f"{st.path}-wal")
    doc_ns = [0]
    build = store_mod.channel_doc_json

    def timed_build(ch: Channel, pending: tuple[bytes, bytes]) -> tuple[str, dict[bytes, bytes]]:
        t0 = time.perf_counter_ns()
        try:
            return build(ch, pending)
        finally:
            doc_ns[0] += time.perf_counter_ns() - t0

    out: dict[str, list[float]] = {k: [] for k in ("doc", "sql", "begin", "commit", "total")}
    out["frames"] = []

    def commit() -> None:
        timed.ns = dict.fromkeys(timed.ns, 0)
        doc_ns[0] = 0
        size = wal.stat().st_size
        t0 = time.perf_counter_ns()
        st.mark(a)
        st.commit(sw)
        total = time.perf_counter_ns() - t0
        out["doc"].append(doc_ns[0] / 1e3)
        out["sql"].append((timed.ns["sql"]) / 1e3)
        out["begin"].append(timed.ns["begin"] / 1e3)
        out["commit"].append(timed.ns["commit"] / 1e3)
        out["total"].append(total / 1e3)
        if not checkpoint_every:
            out["frames"].append((wal.stat().st_size - size) / FRAME)
        if checkpoint_every and st.commits % checkpoint_every == 0:
            st.checkpoint()

    store_mod.channel_doc_json = timed_build
    try:
        for i in range(payments):
            pre = hashlib.sha256(b"%d" % i).digest()
            a.queue_add(1000, hashlib.sha256(pre).digest(), 500, b'{"a":1000,"e":500}')
            ack = b.receive_update(_sent(a.propose()))
            commit()  # the add, before it leaves
            rev = a.receive_ack(_sent(ack))
            commit()
            b.receive_revoke(rev)
            for ev in b.drain_events():
                if isinstance(ev, IncomingHtlc):
                    b.queue_fulfill(ev.add.htlc_id, pre)
            a.drain_events()
            ack = a.receive_update(_sent(b.propose()))
            commit()  # the fulfil received, before the ack leaves
            a.receive_revoke(b.receive_ack(_sent(ack)))
            commit()
            a.drain_events()
            b.drain_events()
    finally:
        store_mod.channel_doc_json = build
        st.db = timed._db
        st.close()
    return out


def bare_fsyncs(root: Path, count: int, frames: int) -> dict[str, list[float]]:
    """Microseconds of pwrite + fdatasync of `frames` WAL frames' bytes, in turn: overwriting a
    file's first blocks (written and synced before), appending to another file, and overwriting
    again after IDLE_S without I/O (a node commits every few ms in a 2-hop run, not back to
    back: the disk answers such a sync more slowly)."""
    data = os.urandom(frames * FRAME)
    over = os.open(root / "overwrite.bin", os.O_RDWR | os.O_CREAT)
    grow = os.open(root / "append.bin", os.O_RDWR | os.O_CREAT)
    out: dict[str, list[float]] = {"overwrite": [], "append": [], "idle": []}
    try:
        os.pwrite(over, bytes(64 * len(data)), 0)
        os.fsync(over)
        end = 0
        for i in range(count):
            t0 = time.perf_counter_ns()
            os.pwrite(over, data, (i % 64) * len(data))
            os.fdatasync(over)
            t1 = time.perf_counter_ns()
            os.pwrite(grow, data, end)
            os.fdatasync(grow)
            t2 = time.perf_counter_ns()
            end += len(data)
            time.sleep(IDLE_S)
            t3 = time.perf_counter_ns()
            os.pwrite(over, data, ((i + 32) % 64) * len(data))
            os.fdatasync(over)
            out["idle"].append((time.perf_counter_ns() - t3) / 1e3)
            out["overwrite"].append((t1 - t0) / 1e3)
            out["append"].append((t2 - t1) / 1e3)
    finally:
        os.close(over)
        os.close(grow)
    return out


def run(root: Path, payments: int) -> dict[str, Any]:
    (root / "appended").mkdir()
    (root / "reused").mkdir()
    appended = store_commits(root / "appended", payments, 0)
    reused = store_commits(root / "reused", payments, CHECKPOINT_COMMITS)
    frames = max(1, round(statistics.mean(appended["frames"])))
    bare = bare_fsyncs(root, 4 * payments, frames)
    return {"appended": appended, "reused": reused, "bare": bare, "frames": frames}


def report(r: dict[str, Any]) -> list[str]:
    def row(name: str, t: dict[str, list[float]]) -> str:
        p = {k: statistics.median(v) for k, v in t.items() if v}
        return (
            f"  {name}: p50 {p['total']:.0f} us (p99 {_pct(t['total'], 0.99):.0f}) = doc"
            f" {p['doc']:.0f} + SQL {p['sql']:.0f} + BEGIN {p['begin']:.0f} + COMMIT"
            f" {p['commit']:.0f} (+ the rest of Store.commit)"
        )

    n = len(r["appended"]["total"])
    frames = r["appended"]["frames"]
    bare = r["bare"]
    return [
        f"store commits of a payer's payments ({n} a pass; one channel, one HTLC a payment):",
        row("WAL appended (no checkpoint)", r["appended"])
        + f"; {statistics.mean(frames):.2f} WAL frames a commit",
        row(f"WAL reused (checkpoint every {CHECKPOINT_COMMITS} commits)", r["reused"]),
        f"  bare pwrite + fdatasync of {r['frames']} frames ({r['frames'] * FRAME} bytes):"
        f" overwriting p50 {statistics.median(bare['overwrite']):.0f} us, appending p50"
        f" {statistics.median(bare['append']):.0f} us (back to back); overwriting after"
        f" {IDLE_S * 1000:.0f} ms without I/O p50 {statistics.median(bare['idle']):.0f} us",
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--payments", type=int, default=200)
    ap.add_argument("--dir", type=Path, default=None, help="on this disk (default: a temp dir)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        r = run(Path(d), args.payments)
    for line in report(r):
        print(line, flush=True)
    return r


if __name__ == "__main__":
    main()
