"""Emulated-board figures: boot time, memory of a board process, firmware heap high-water mark.

uv run python -m hil_tests.bench.bench_board [--boards 4] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from boards.emulated.host.vclock import VirtualClock
from hil_tests.rig.board_process import BoardProcess
from tools.build import build


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run(boards: int, seconds: float) -> dict[str, float]:
    rom = build("emulated")
    with tempfile.TemporaryDirectory() as tmp:
        # 60x virtual time and 60 s intervals: a signed reading every real second, so the
        # high-water mark includes signing and journaling, not just an idle loop
        procs = [
            BoardProcess(
                flash_dir=Path(tmp) / f"b{i}" / "flash",
                board_id=f"bench-{i}",
                rom_dir=rom,
                clock=VirtualClock(speed=60.0),
            )
            for i in range(boards)
        ]
        boot_s = []
        try:
            for p in procs:
                p.flash_dir.mkdir(parents=True)
                (p.flash_dir / "config.json").write_text(json.dumps({"interval_s": 60}))
                t0 = time.monotonic()
                p.start()
                boot_s.append(time.monotonic() - t0)
            time.sleep(seconds)
            for p in procs:
                p.pulses(10)
            time.sleep(1)
            rss = [_rss_kb(p.proc.pid) for p in procs if p.proc]
            signed = sum(sum("signed and journaled" in line for line in p.console) for p in procs)
            states = [p.state() for p in procs]
            peaks = [st["reports"].get("heap_peak", 0) for st in states]
            code_ram = states[0]["code_ram"]
        finally:
            for p in procs:
                p.stop()
    return {
        "boards": boards,
        "boot_s_median": statistics.median(boot_s),
        "boot_s_max": max(boot_s),
        "rss_mb_median": statistics.median(rss) / 1024,
        "heap_peak_bytes_max": max(peaks),
        "code_ram_bytes": code_ram,
        "records_signed": signed,
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--boards", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    r = run(args.boards, args.seconds)
    print(f"emulated boards: {r['boards']}")
    print(
        f"boot time (process start -> banner): median {r['boot_s_median']:.2f} s, max {r['boot_s_max']:.2f} s"
    )
    print(f"RSS per board process: median {r['rss_mb_median']:.1f} MiB")
    print(f"readings signed and journaled during the run: {r['records_signed']}")
    print(
        f"firmware data-heap high-water mark: {r['heap_peak_bytes_max']} bytes of {110 * 1024} "
        f"(plus {r['code_ram_bytes']} bytes of loaded code, which an ESP32 keeps frozen in flash)"
    )
    return r


if __name__ == "__main__":
    main()
