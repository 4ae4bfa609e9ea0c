"""`sgrid sim` at scale: wall time of a simulated day, boards per core, RSS per process.

    uv run python -m hil_tests.bench.bench_sim [--nodes 8,25,50] [--hours H] [--speed auto|S[,S,S]]

For each grid size (nodes = households + the fixed PV plants, battery, EV charger, critical
load and the POD) the whole simulated grid comes up (ledger, mosquitto, per node an
`sgrid gateway run` process and an emulated board running the real firmware) and runs `--hours`
of virtual time at `--speed` (hil_tests.rig.sim.run, the code behind `sgrid sim`). Printed per
size: bring-up wall time (and its steps), run wall time (the span, from the end of the bring-up),
what comes after it (the last readings, tokens and anchors landing; results and invariants), the
wall time of a day (measured with --hours 24; else the measured wall time plus the rest of the
day at the clock's speed), board processes per core, the CPU share of a board and of a gateway
(median, in cores), VmRSS of every board and gateway process sampled from /proc during the run
(median and max per process kind), the peak total RSS of the grid (boards + gateways + ledger +
broker + the rig's own process) and whether every invariant held. A size that fails is
reported with its cause.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console

from hil_tests.rig.sim.run import SimOptions, run
from hil_tests.rig.sim.speed import auto_speed

FIXED = {"pv": 2, "batteries": 1, "ev": 1, "critical": 1}  # plus the POD
MIB = 1024 * 1024


def homes_for(nodes: int, fixed: dict[str, int] = FIXED) -> int:
    """Households that make a grid of `nodes` nodes with the fixed PV/battery/EV/critical/POD."""
    homes = nodes - sum(fixed.values()) - 1
    if homes < 1:
        raise ValueError(f"--nodes {nodes}: at least {sum(fixed.values()) + 2} nodes")
    return homes


def rss_bytes(pid: int) -> int | None:
    """VmRSS of a live process (None when it is gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """Samples VmRSS of the grid's board and gateway processes every `every_s` real seconds."""

    def __init__(self, grid: Any, every_s: float) -> None:
        super().__init__(daemon=True)
        self.grid, self.every_s = grid, every_s
        self.board: list[int] = []
        self.gateway: list[int] = []
        self.peak_total = 0
        self.samples = 0
        self.cpu: dict[tuple[str, int], list[float]] = {}  # (kind, pid) -> [first, last, t0, t1]
        self.done = threading.Event()
        self.start()

    def _cpu(self, kind: str, pids: list[int]) -> None:
        now = time.monotonic()
        for pid in pids:
            c = cpu_seconds(pid)
            if c is None:
                continue
            got = self.cpu.setdefault((kind, pid), [c, c, now, now])
            got[1], got[3] = c, now

    def cpu_share(self, kind: str) -> float:
        """Median CPU share (cores) of one process of `kind` over the run."""
        shares = [(c1 - c0) / (t1 - t0) for (k, _), (c0, c1, t0, t1) in self.cpu.items()
                  if k == kind and t1 - t0 > 1]  # fmt: skip
        return round(statistics.median(shares), 3) if shares else 0.0

    def sample(self) -> None:
        g = self.grid
        boards = [n.board.proc.pid for n in g.nodes.values() if n.board and n.board.proc]
        gateways = [n.gateway.proc.pid for n in g.nodes.values() if n.gateway]
        others = [p.pid for p in g.ledger_procs] + [os.getpid()]
        if g.broker.proc is not None:
            others.append(g.broker.proc.pid)
        b = [r for r in map(rss_bytes, boards) if r]
        w = [r for r in map(rss_bytes, gateways) if r]
        o = [r for r in map(rss_bytes, others) if r]
        if not b and not w:
            return
        self._cpu("board", boards)
        self._cpu("gateway", gateways)
        self.board += b
        self.gateway += w
        self.peak_total = max(self.peak_total, sum(b) + sum(w) + sum(o))
        self.samples += 1

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.every_s)

    def stop(self) -> None:
        self.done.set()
        self.join(5)


def _mib(values: list[int], how: str) -> float:
    if not values:
        return 0.0
    v = statistics.median(values) if how == "median" else max(values)
    return round(v / MIB, 1)


def bench_one(nodes: int, hours: float, speed: float, workdir: Path, console: Console,
              start_hour: float = 0.0, fixed: dict[str, int] = FIXED) -> dict[str, Any]:  # fmt: skip
    """One grid size: the figures, or {"error": ...} with the cause when the run failed."""
    homes = homes_for(nodes, fixed)
    if workdir.exists():
        shutil.rmtree(workdir)
    opts = SimOptions(homes=homes, hours=hours, speed=speed, start_hour=start_hour,
                      workdir=workdir, pv=fixed["pv"], batteries=fixed["batteries"],
                      ev=fixed["ev"], critical=fixed["critical"])  # fmt: skip
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {"nodes": nodes, "homes": homes, "hours": hours, "speed": speed,
                           "boards": nodes - 1, "cores": cores,
                           "boards_per_core": round((nodes - 1) / cores, 1)}  # fmt: skip
    samplers: list[RssSampler] = []
    phases: dict[str, float] = {}

    def on_up(sg: Any) -> None:
        phases.update(sg.phases)
        samplers.append(RssSampler(sg, every_s))

    # a sample every ~2 virtual minutes, at most once a second: a few dozen samples per process
    every_s = max(0.5, min(5.0, 120 / speed))
    t0 = time.monotonic()
    out["load_before"] = round(os.getloadavg()[0], 1)
    try:
        result = run(opts, console, on_up=on_up)
    except Exception as exc:  # noqa: BLE001 - a size that fails is reported, not hidden
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()[-2000:]
        out["wall_s"] = round(time.monotonic() - t0, 1)
        result = None
    finally:
        for s in samplers:
            s.stop()
    out["load_after"] = round(os.getloadavg()[0], 1)
    out["bringup_phases_s"] = phases
    if samplers:
        s = samplers[0]
        out.update(
            rss_samples=s.samples,
            board_rss_median_mib=_mib(s.board, "median"),
            board_rss_max_mib=_mib(s.board, "max"),
            gateway_rss_median_mib=_mib(s.gateway, "median"),
            gateway_rss_max_mib=_mib(s.gateway, "max"),
            peak_total_rss_mib=_mib([s.peak_total], "max"),
            board_cpu_share=s.cpu_share("board"),
            gateway_cpu_share=s.cpu_share("gateway"),
        )
    if result is not None:
        inv = result.get("invariants", {})
        failed = sorted(k for k, v in inv.items() if not v.get("holds"))
        out.update(
            bringup_s=result["bringup_s"],
            run_s=result["run_s"],
            wall_s=result["wall_s"],
            # after the span: the last readings, tokens and anchors land, results, invariants
            post_s=round(result["wall_s"] - result["bringup_s"] - result["run_s"], 1),
            after_phases_s=result.get("after_phases_s", {}),
            # the span runs on the rig's clock: a day takes 86400 / speed of wall time (plus
            # the wait for the day's first period); bring-up and what comes after are measured
            day_wall_s=(
                result["wall_s"]
                if hours >= 24
                else round(result["wall_s"] + (86400 - hours * 3600) / speed, 1)
            ),
            day_scaled="measured"
            if hours >= 24
            else f"measured {hours:g} h + {24 - hours:g} h at {speed:g}x",
            invariants=len(inv),
            invariants_failed=failed,
            all_invariants_hold=bool(inv) and not failed,
            failed_details={k: str(inv[k])[:300] for k in failed},
            service=result.get("service", {}),
            served=f"{result.get('service', {}).get('bought_credit', 0)}/"
            f"{result.get('service', {}).get('prepaid', 0)}",
        )
    return out


COLUMNS = [
    ("nodes", "nodes"),
    ("hours", "virt h"),
    ("speed", "speed"),
    ("bringup_s", "bring-up s"),
    ("run_s", "run s"),
    ("post_s", "after s"),
    ("day_wall_s", "day wall s"),
    ("boards_per_core", "boards/core"),
    ("board_rss_median_mib", "board MiB p50"),
    ("board_rss_max_mib", "board MiB max"),
    ("gateway_rss_median_mib", "gw MiB p50"),
    ("gateway_rss_max_mib", "gw MiB max"),
    ("peak_total_rss_mib", "total MiB peak"),
    ("board_cpu_share", "board cores"),
    ("gateway_cpu_share", "gw cores"),
    ("load_after", "load"),
    ("served", "bought credit"),
    ("all_invariants_hold", "invariants"),
]


def print_figures(rows: list[dict[str, Any]]) -> None:
    print(
        "\nsgrid sim bench (day wall s: measured when virt h = 24, else the measured wall time plus"
        " the rest of the day at the clock's speed)"
    )
    print("  ".join(f"{h:>14}" for _, h in COLUMNS))
    for r in rows:
        cells = []
        for key, _ in COLUMNS:
            v = r.get(key, "-")
            if key == "all_invariants_hold" and "error" not in r:
                v = "all hold" if v else "FAILED: " + ",".join(r.get("invariants_failed", []))
            elif key == "all_invariants_hold":
                v = "RUN FAILED"
            cells.append(f"{v!s:>14}")
        print("  ".join(cells))
    for r in rows:
        if r.get("bringup_phases_s"):
            steps = ", ".join(
                f"{k.split(' (')[0]} {v:g} s" for k, v in r["bringup_phases_s"].items()
            )
            print(f"{r['nodes']} nodes, bring-up: {steps}")
        if r.get("after_phases_s"):
            steps = ", ".join(f"{k} {v:g} s" for k, v in r["after_phases_s"].items())
            print(f"{r['nodes']} nodes, after the span: {steps}")
    for r in rows:
        if "error" in r:
            print(f"{r['nodes']} nodes FAILED after {r.get('wall_s')} s: {r['error']}")
    for r in rows:
        print("FIGURES " + json.dumps({k: v for k, v in r.items() if k != "traceback"}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="8,25,50", help="grid sizes, comma separated")
    ap.add_argument("--hours", type=float, default=24.0, help="virtual hours per size")
    ap.add_argument("--speed", default="auto",
                    help="virtual s per real s: one for every size, or one per size (480,240,120); "
                         "auto: sgrid sim's choice for the size (hil_tests.rig.sim.speed.auto_speed)")  # fmt: skip
    ap.add_argument("--start-hour", type=float, default=0.0, help="virtual hour of day to start")
    ap.add_argument("--workdir", type=Path, default=Path("run/bench-sim"))
    args = ap.parse_args()
    console = Console()
    rows = []
    sizes = [int(x) for x in args.nodes.split(",") if x]
    speeds = [x for x in str(args.speed).split(",") if x]
    if len(speeds) not in (1, len(sizes)):
        ap.error("--speed: one value, or one per --nodes size")
    if len(speeds) == 1:
        speeds *= len(sizes)
    for nodes, given in zip(sizes, speeds, strict=True):
        speed = auto_speed(nodes - 1) if given == "auto" else float(given)
        console.rule(f"{nodes} nodes, {args.hours:g} virtual h at {speed:g}x")
        r = bench_one(nodes, args.hours, speed, args.workdir / f"n{nodes}", console,
                      start_hour=args.start_hour)  # fmt: skip
        rows.append(r)
        print_figures([r])
    if len(rows) > 1:
        print_figures(rows)


if __name__ == "__main__":
    main()
