"""The benchmark's printed tables (throughput and latency; where the time goes) and issue
15's goals, met or not, from the rows' figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hil_tests.bench.ledger import figures

Rows = dict[str, dict[str, float]]  # "mode/batch" -> figures.row()
Column = tuple[str, Callable[[dict[str, float]], str]]


def _us(key: str) -> Callable[[dict[str, float]], str]:
    return lambda r: f"{r[key]:.0f}us" if r[key] >= 0 else "-"


def _ms(key: str, digits: int = 1) -> Callable[[dict[str, float]], str]:
    return lambda r: f"{r[key]:.{digits}f}ms"


def _table(rows: Rows, columns: Sequence[Column]) -> list[str]:
    head: list[Column] = [
        ("mode", lambda r: ""),
        ("tx/req", lambda r: f"{r['batch']:.0f}"),
        *columns,
    ]
    lines = ["  ".join(f"{h:>11}" for h, _ in head)]
    for name, r in rows.items():
        cells = [name.split("/")[0], *(cell(r) for _, cell in head[1:])]
        lines.append("  ".join(f"{c:>11}" for c in cells))
    return lines


THROUGHPUT: list[Column] = [
    ("txs", lambda r: f"{r['txs']:.0f}"),
    ("tx/s", lambda r: f"{r['tps']:.0f}"),
    ("ceiling", lambda r: f"{r['ceiling']:.0f}"),
    ("of ceiling", lambda r: f"{100 * r['ceiling_share']:.0f}%"),
    ("load", lambda r: f"{r['load']:.1f}"),
    ("tx/block", lambda r: f"{r['txs_per_block']:.1f}"),
    ("submit p50", _ms("submit_p50_ms")),
    ("p99", _ms("submit_p99_ms")),
    ("bal@load p50", _ms("load_balance_p50_ms", 2)),
    ("p99", _ms("load_balance_p99_ms", 2)),
    ("balance p50", _ms("balance_p50_ms", 2)),
    ("p99", _ms("balance_p99_ms", 2)),
    ("proof p50", _ms("proof_p50_ms", 2)),
    ("p99", _ms("proof_p99_ms", 2)),
]
MACHINE: list[Column] = [
    ("ledger CPU", _us("server_us")),
    ("kernel", _us("server_sys_us")),
    ("verify", _us("verify_us")),
    ("beyond it", _us("beyond_verify_us")),
    ("client CPU", _us("client_us")),
    ("etcd CPU", _us("etcd_us")),
    ("ledger cores", lambda r: f"{r['ledger_cores']:.2f}"),
    ("client cores", lambda r: f"{r['client_cores']:.2f}"),
    ("switches", lambda r: f"{r['switches']:.1f}"),
]
STEPS: list[Column] = [
    ("check", _us("check_cpu_us")),
    ("build", _us("build_cpu_us")),
    ("answer", _us("answer_cpu_us")),
    ("rest", _us("rest_cpu_us")),
    ("apply", _ms("apply_ms", 2)),
    ("seal", _ms("seal_ms", 2)),
    ("write", _ms("write_ms", 2)),
    ("commit", _ms("commit_ms", 2)),
    ("check wall", _us("check_us")),
    ("idle", lambda r: f"{100 * r['producer_idle']:.0f}%" if r["producer_idle"] >= 0 else "-"),
]


THREADS: list[Column] = [(col, _us(f"thread_{col}_us")) for col in figures.THREAD_COLUMNS]


def render(rows: Rows, concurrency: int, reads: int) -> str:
    return "\n".join(
        [
            f"ledger benchmark: {concurrency} concurrent clients, reads={reads}; tx/req 1 = one"
            " tx per request (POST /v1/tx), > 1 = submit_many (POST /v1/txs); ceiling ="
            " verification ceiling (one core checking signatures), measured around each row;"
            " bal@load = balance reads (one every 10 ms) while the txs are submitted; balance,"
            " proof = reads after the load",
            *_table(rows, THROUGHPUT),
            "where the time goes, per tx: CPU of the ledger process(es); kernel = of it in the"
            " kernel (sockets, futexes of thread hand-offs, WAL writes and fsync); verify = one"
            " signature check at the row's ceiling; beyond it = ledger CPU - verify; CPU of the"
            " client threads (this process: they share the 2 cores with the ledger) and of"
            " etcd; cores = CPU seconds per second of the run; ledger context switches",
            *_table(rows, MACHINE),
            "the ledger's CPU per tx by step (embedded; thread CPU time): check = the HTTP"
            " workers decoding, shape-checking and verifying (libsecp256k1 included); build ="
            " the producer validating, sealing and storing the block; answer = the producer"
            " encoding and writing the replies; rest = everything else (request framing, the"
            " selector thread, thread hand-offs, the kernel's side of the sockets and the"
            " fsync); per block (GET /v1/stats) wall ms validating, sealing, writing,"
            " committing (WAL fsync); check wall = the submitters' wall time per tx; idle ="
            " the producer's share of time waiting for transactions",
            *_table(rows, STEPS),
            "the ledger's CPU per tx by thread (thread CPU clocks, GET /v1/stats): selector ="
            " the HTTP selector thread (accepting, reading requests, taking connections back);"
            " http workers = parsing, JSON, checks and verifies; producer = blocks and answers;"
            " checkpoints = WAL checkpoints; etcd = the replica's watch, cut and write threads;"
            " other = the rest (timeouts, main)",
            *_table(rows, THREADS),
            goals(rows),
        ]
    )


def goals(results: Rows) -> str:
    """Issue 15's goals against the best row of each mode (met or not, with the figures)."""
    lines = []
    embedded = [r for name, r in results.items() if name.startswith("embedded/")]
    if embedded:
        ok = [r for r in embedded if r["submit_p99_ms"] <= 50]
        best = max(ok or embedded, key=lambda r: r["tps"])
        met = bool(ok) and best["tps"] >= 5000 and best["ceiling_share"] >= 0.25
        lines.append(
            f"goal embedded >= 5,000 tx/s, p99 <= 50 ms, >= 25 % of the ceiling:"
            f" {'met' if met else 'NOT met'} (best row with p99 <= 50 ms:"
            + (
                f" {best['tps']:,.0f} tx/s, {best['ceiling_share']:.0%}, p99"
                f" {best['submit_p99_ms']:.0f} ms at {best['batch']:.0f} tx/req)"
                if ok
                else " none)"
            )
        )
    replicated = [r for name, r in results.items() if name.startswith("replicated/")]
    if replicated:
        best = max(replicated, key=lambda r: r["tps"])
        lines.append(
            f"goal replicated >= 2,000 tx/s: {'met' if best['tps'] >= 2000 else 'NOT met'}"
            f" (best {best['tps']:,.0f} tx/s = {best['ceiling_share']:.0%} of its ceiling,"
            f" {best['batch']:.0f} tx/req)"
        )
    return "\n".join(lines)
