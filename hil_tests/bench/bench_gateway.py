"""Gateway benchmark: prints figures, asserts nothing.

    uv run python -m hil_tests.bench.bench_gateway [--n 10000] [--meters 20] [--reps 5]
                                                   [--latency-n 200] [--flood-n 20000]
                                                   [--flood-meters 10] [--floods 3]

Every figure is measured after a warm-up run (discarded) and repeated: the machine may be
shared, so each is printed as the median with its min and max.

1. raw libsecp256k1 verify rate (coincurve, cached public key, r||s parsed in C), one core;
2. readings verified + stored (SQLite WAL, synchronous=FULL, real file) + acknowledged (ack JSON
   signed by the site key) per second through the gateway's `IngestPipeline`, one core, same run.
   Figures 1 and 2 alternate (verify, ingest, verify, ..., verify): each ingest run is divided
   by the mean of the verify runs on either side of it, and the ratio is printed by wall clock
   and by CPU time (CPU seconds of this process; the wall-clock ratio also counts the fsync
   waits the pipeline does not hide); then where the CPU time beyond the verify goes, stage by
   stage, each batch against the verify of the same batch just before it (ingest_stages.py):
   the goal's ratio, which a shared machine's ups and downs between runs do not move;
3. meter-to-gateway latency through a real mosquitto: a meter publishes one reading and waits for
   its signed ack from a real `sgrid gateway run` subprocess (p50/p95/max), then floods of
   readings from several meters end to end (readings/s until every one is acked, broker and
   gateway sharing this machine's cores), with where the time went during the floods: CPU
   seconds per 1,000 readings of the gateway (its loop thread and its other threads), of
   mosquitto and of this process (the meters: publishing, receiving and verifying acks), and
   the gateway's batches (count, mean readings per batch, mean ms verifying + storing one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.crypto import MeterVerifier, SiteKey
from gateway.ingest.pipeline import Incoming, Ingestor
from gateway.ingest.pipelined import IngestPipeline, Result, StoreFailed
from gateway.ingest.store import ReadingStore
from gateway.mqtt import messages
from hil_tests.bench import ingest_stages
from hil_tests.bench.cpu_account import cpu_s as _cpu_s
from hil_tests.bench.cpu_account import loop_thread_cpu_s as _loop_thread_cpu_s
from hil_tests.bench.cpu_account import one_core, unpin
from hil_tests.gateway.gateway_proc import GatewayProcess, sgrid_gateway, write_config
from hil_tests.gateway.mqtt_meter import MqttMeter
from hil_tests.gateway.raw_publisher import RawPublisher
from hil_tests.gateway.soft_meter import SoftMeter
from hil_tests.rig.broker import Broker, mosquitto_available
from sgcore import reading as rc

WINDOW = 200  # readings a flooding meter has in flight to the broker
WARMUP_N = 2000  # readings of the discarded warm-up runs


def _records(n: int, meters: int) -> tuple[list[SoftMeter], list[Incoming]]:
    softs = [SoftMeter() for _ in range(meters)]
    items = []
    for i in range(n):
        m = softs[i % meters]
        items.append(Incoming(m.hex, m.next_record(), 0.0))
    return softs, items


def bench_verify(items: list[Incoming], softs: list[SoftMeter]) -> tuple[float, float]:
    """(verifies per wall second, per CPU second)."""
    verifiers = {s.meter_id: MeterVerifier(s.pubkey) for s in softs}
    work = []
    for it in items:
        body, sig = it.payload[: rc.BODY_LEN], it.payload[rc.BODY_LEN :]
        work.append((verifiers[body[3:19]], sig, rc.digest(body)))
    c0, t0 = time.process_time(), time.perf_counter()
    ok = 0
    for v, sig, d in work:
        ok += v.verify_digest(sig, d)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert ok == len(work)
    return len(work) / dt, len(work) / max(cpu, 1e-9)


def bench_ingest(
    items: list[Incoming], softs: list[SoftMeter], batch: int, tmp: Path
) -> tuple[float, float, int]:
    """The service's ingest path: `IngestPipeline` (batch k+1 verified while batch k commits),
    then each stored batch's acks signed. (readings per wall second, per CPU second of this
    process: its commit and checkpoint threads included; signed acks)."""
    store = ReadingStore(tmp / "bench.sqlite3")
    for s in softs:
        store.enroll(s.pubkey)
    key = SiteKey.load_or_create(tmp / "site.key")
    pipe = IngestPipeline(Ingestor(store))
    stored = acks = 0

    def publish(results: list[Result]) -> None:
        nonlocal stored, acks
        for out in results:
            assert not isinstance(out, StoreFailed), out
            stored += len(out.records)
            for mid, (upto, h) in out.acks.items():
                messages.encode_ack(key, mid, upto, h)
                acks += 1

    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(0, len(items), batch):
        publish(pipe.submit(items[i : i + batch]))
    publish(pipe.close())
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    store.close()
    assert stored == len(items), (stored, len(items))
    return stored / dt, stored / max(cpu, 1e-9), acks


def bench_in_process(
    items: list[Incoming], softs: list[SoftMeter], batch: int, reps: int
) -> dict[str, Any]:
    """Warm-up, then verify and ingest alternately: V I V I ... V (`reps` ingest runs)."""
    warm = items[: min(len(items), WARMUP_N)]
    bench_verify(warm, softs)
    with tempfile.TemporaryDirectory() as tmp:
        bench_ingest(warm, softs, batch, Path(tmp))
    verify = [bench_verify(items, softs)]
    ingest = []
    acks = 0
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu, acks = bench_ingest(items, softs, batch, Path(tmp))
        ingest.append((wall, cpu))
        verify.append(bench_verify(items, softs))
    ratio_wall = [
        ingest[i][0] / ((verify[i][0] + verify[i + 1][0]) / 2) for i in range(len(ingest))
    ]
    ratio_cpu = [ingest[i][1] / ((verify[i][1] + verify[i + 1][1]) / 2) for i in range(len(ingest))]
    return {
        "verify": [v for v, _ in verify],
        "ingest": [w for w, _ in ingest],
        "ratio_wall": ratio_wall,
        "ratio_cpu": ratio_cpu,
        "verify_cpu_us": 1e6 / statistics.median(c for _, c in verify),
        "ingest_cpu_us": 1e6 / statistics.median(c for _, c in ingest),
        "acks": acks,
    }


def _batches(gw: GatewayProcess, port: int) -> tuple[float, float]:
    """(ingest batches so far, their total seconds) from the gateway's /metrics."""
    m = gw.metrics(port)
    return m.get("sgrid_ingest_batch_seconds_count", 0.0), m.get(
        "sgrid_ingest_batch_seconds_sum", 0.0
    )


def _flood(
    publishers: list[RawPublisher],
    fleet: list[MqttMeter],
    softs: list[SoftMeter],
    per_meter: int,
    gw: GatewayProcess,
    metrics_port: int,
    broker_pid: int | None,
) -> dict[str, float]:
    """`per_meter` readings from every meter at once, until each is acknowledged."""
    flood = [[s.next_record() for _ in range(per_meter)] for s in softs]  # signed before
    pids = (gw.proc.pid, broker_pid)
    # the loop thread read after its process at the start and before it at the end: its share
    # never exceeds the whole (clock ticks)
    cpu0 = [_cpu_s(p) for p in pids] + [_loop_thread_cpu_s(gw.proc.pid)]
    me0, batches0 = os.times(), _batches(gw, metrics_port)
    t0 = time.perf_counter()
    half = WINDOW // 2
    for start in range(0, per_meter, half):
        for pub, m, records in zip(publishers, fleet, flood, strict=True):
            pub.send(m.topic("reading"), records[start : start + half])
        for pub in publishers:
            pub.drain(down_to=half)
    for pub in publishers:
        pub.drain()
    for m, s in zip(fleet, softs, strict=True):
        if not m.wait_acked(s.seq - 1, timeout=120):
            raise RuntimeError("flood not acked:\n" + gw.log())
    dt = time.perf_counter() - t0
    loop1 = _loop_thread_cpu_s(gw.proc.pid)
    cpu1 = [_cpu_s(p) for p in pids] + [loop1]
    me1, batches1 = os.times(), _batches(gw, metrics_port)
    n = per_meter * len(fleet)
    n_batches = batches1[0] - batches0[0]
    gateway, broker, loop = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    # the kernel scales a process's and each thread's utime/stime to its runtime separately: over
    # a flood of a few ticks the loop thread can show a tick more than its whole process
    loop = min(loop, gateway)
    return {
        "per_s": n / dt,
        "gateway_cpu": gateway / n * 1000,
        "loop_cpu": loop / n * 1000,
        "broker_cpu": broker / n * 1000,
        "meters_cpu": (me1.user + me1.system - me0.user - me0.system) / n * 1000,
        "batches": n_batches,
        "batch_size": n / max(1.0, n_batches),
        "batch_ms": (batches1[1] - batches0[1]) / max(1.0, n_batches) * 1e3,
    }


def bench_broker(
    tmp: Path, latency_n: int, flood_n: int, meters: int, floods: int = 1
) -> dict[str, Any]:
    """Latency of one reading at a time, then a warm-up flood and `floods` floods from
    `meters` meters at once.

    The floods' readings are signed before the clock starts (each meter signs its own, on its
    own chip) and go out through `RawPublisher` (pre-encoded QoS 1 packets: the meters are
    separate devices, their MQTT stack is not what is measured); each meter keeps at most
    WINDOW readings not yet acknowledged by the broker. The gateway's signed acks are received
    and verified by each meter's paho client (MqttMeter).
    """
    with Broker(tmp / "mosquitto") as broker:
        cfg, metrics_port = write_config(tmp, broker, "bench", "[homeassistant]\nenabled = false\n")
        softs = [SoftMeter() for _ in range(max(1, meters))]
        for soft in softs:
            sgrid_gateway("enroll-meter", "--config", str(cfg), "--pubkey", soft.pubkey.hex())
        site_pub = bytes.fromhex(sgrid_gateway("site-key", "--config", str(cfg)).stdout.strip())
        gw = GatewayProcess(cfg, broker, "bench")
        fleet = [MqttMeter(broker.host, broker.port, "bench", site_pub, soft) for soft in softs]
        meter, soft = fleet[0], softs[0]
        try:
            gw.wait_online()
            for m in fleet:
                m.wait_subscribed()
            lat = []
            for _ in range(latency_n):
                t0 = time.perf_counter()
                meter.publish_next()
                if not meter.wait_acked(soft.seq - 1, timeout=10):
                    raise RuntimeError("no ack:\n" + gw.log())
                lat.append(time.perf_counter() - t0)
            per_meter = max(1, flood_n // len(fleet))
            publishers = [
                RawPublisher(broker.host, broker.port, f"flood-{i}") for i in range(len(fleet))
            ]
            bpid = broker.proc.pid if broker.proc else None
            warm = max(1, min(per_meter, WARMUP_N // len(fleet)))
            _flood(publishers, fleet, softs, warm, gw, metrics_port, bpid)
            runs = [
                _flood(publishers, fleet, softs, per_meter, gw, metrics_port, bpid)
                for _ in range(max(1, floods))
            ]
            for pub in publishers:
                pub.close()
            gw.terminate()
        finally:
            for m in fleet:
                m.close()
            gw.close()
    lat.sort()
    out: dict[str, Any] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    out.update(
        {
            "flood_per_s": [r["per_s"] for r in runs],
            "flooded": per_meter * len(fleet),
            "load": os.getloadavg()[0],
            "p50_ms": statistics.median(lat) * 1e3,
            "p95_ms": lat[int(0.95 * (len(lat) - 1))] * 1e3,
            "max_ms": lat[-1] * 1e3,
        }
    )
    return out


def _spread(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """'median M (min A, max B)' of `values`."""
    return (
        f"median {fmt(statistics.median(values))} (min {fmt(min(values))}, max {fmt(max(values))})"
    )


def _rate(v: float) -> str:
    return f"{v:,.0f}"


def _pct(v: float) -> str:
    return f"{v:.0%}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=10_000, help="readings per in-process run")
    ap.add_argument("--meters", type=int, default=20)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--reps", type=int, default=5, help="in-process ingest runs (after a warm-up)")
    ap.add_argument(
        "--latency-n", type=int, default=200, help="one-by-one readings through the broker"
    )
    ap.add_argument(
        "--flood-n", type=int, default=20_000, help="readings per flood through the broker"
    )
    ap.add_argument("--flood-meters", type=int, default=10, help="meters flooding at once")
    ap.add_argument("--floods", type=int, default=3, help="floods (after a warm-up one)")
    args = ap.parse_args(argv)

    print(
        f"gateway benchmark: {args.n} readings from {args.meters} meters, batches of"
        f" {args.batch}, {args.reps} repetitions after a warm-up"
    )
    softs, items = _records(args.n, args.meters)
    pinned = one_core()
    f = bench_in_process(items, softs, args.batch, max(1, args.reps))
    stages = ingest_stages.measure(items, softs, args.batch, max(1, args.reps))
    unpin()
    print(
        f"  raw libsecp256k1 verify (coincurve, 1 core):         {_spread(f['verify'], _rate)}"
        f" verifies/s"
    )
    print(
        f"  verified + stored + acked (SQLite WAL FULL, 1 core): {_spread(f['ingest'], _rate)}"
        f" readings/s; {f['acks']} signed acks a run"
    )
    print(
        f"    ingest / verify ceiling, run by run: {_spread(f['ratio_wall'], _pct)} by wall clock,"
        f" {_spread(f['ratio_cpu'], _pct)} by CPU time ({pinned})"
    )
    print(
        f"    CPU per reading: verify {f['verify_cpu_us']:.1f} us, ingest"
        f" {f['ingest_cpu_us']:.1f} us (the rest: {f['ingest_cpu_us'] - f['verify_cpu_us']:.1f}"
        f" us: decode, hashes, checks, SQLite, acks); load {os.getloadavg()[0]:.1f}"
    )
    print(ingest_stages.line(stages))
    if args.latency_n or args.flood_n:
        if not mosquitto_available():
            print("  broker figures skipped: mosquitto not installed")
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            b = bench_broker(
                Path(tmp),
                max(args.latency_n, 1),
                max(args.flood_n, 1),
                args.flood_meters,
                args.floods,
            )
        print(
            f"  meter -> mosquitto -> gateway -> signed ack latency ({args.latency_n} readings): "
            f"p50 {b['p50_ms']:.2f} ms, p95 {b['p95_ms']:.2f} ms, max {b['max_ms']:.2f} ms"
        )
        verify_rate = statistics.median(f["verify"])
        flood = statistics.median(b["flood_per_s"])
        print(
            f"  end to end through the broker ({len(b['flood_per_s'])} floods of {b['flooded']}"
            f" from {args.flood_meters} meters): {_spread(b['flood_per_s'], _rate)} readings/s"
            f" = {flood / verify_rate:.0%} of the verify ceiling,"
            f" {flood / statistics.median(f['ingest']):.0%} of the in-process rate;"
            f" goal >= 10,000/s"
        )
        print(
            f"    where the time went (CPU s per 1,000 readings, median flood): gateway"
            f" {b['gateway_cpu']:.3f} (loop thread {b['loop_cpu']:.3f}, other threads"
            f" {b['gateway_cpu'] - b['loop_cpu']:.3f}), mosquitto {b['broker_cpu']:.3f},"
            f" meters (this process) {b['meters_cpu']:.3f}; {b['batches']:.0f} gateway batches"
            f" of {b['batch_size']:.0f} readings, {b['batch_ms']:.1f} ms each to verify + store;"
            f" load {b['load']:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
