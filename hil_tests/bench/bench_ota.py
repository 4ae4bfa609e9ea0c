"""OTA on the emulated board: a full-image update's wall time, fuel and heap peak, then a
power-cut torture (SIGKILLs at random instants of updates; every restart must boot).

    uv run python -m hil_tests.bench.bench_ota [--cuts 20] [--speed 10]

The short variant in the suite is hil_tests/tools/test_ota.py::test_power_cuts_during_an_update...
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from hil_tests.tools.ota_rig import SITE, start_rig
from tools.ota import publish


def _measure_update(rig, version: str) -> dict[str, float]:
    board = rig.board
    time.sleep(2.0)  # a few idle steps: the heap peak of normal operation
    idle = int(board.state()["reports"].get("heap_peak", 0))
    bundle = rig.bundle(version)
    boots = board.state()["boots"]
    t0 = time.monotonic()
    publish(bundle, rig.broker.host, rig.broker.port, SITE)
    peak, reports = idle, {}
    while True:
        st = board.state()
        reports = st["reports"]  # kept across boots: ota_done@fuel of the download boot
        if st["boots"] != boots:
            break
        if "ota_start" in reports and "ota_done" not in reports:
            peak = max(peak, int(reports.get("heap_peak", 0)))
        time.sleep(0.05)
    t_done = time.monotonic() - t0
    board.expect(rf"ota: running {version}, confirmed", timeout=120)
    return {
        "bytes": len(bundle.stream),
        "chunks": len(bundle.chunks()),
        "wall_s": t_done,
        "wall_confirmed_s": time.monotonic() - t0,
        "fuel": reports.get("ota_done@fuel", 0) - reports.get("ota_start@fuel", 0),
        "board_ms": reports.get("ota_done@ms", 0) - reports.get("ota_start@ms", 0),
        "heap_idle": idle,
        "heap_peak": peak,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cuts", type=int, default=20)
    ap.add_argument("--speed", type=float, default=10.0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rig = start_rig(Path(tmp), speed=args.speed)
        try:
            m = _measure_update(rig, "0.2.0")
            print(f"full-image update: {m['bytes']} bytes in {m['chunks']} chunks")
            print(
                f"  wall time to the reboot  {m['wall_s']:.1f} s  (confirmed after {m['wall_confirmed_s']:.1f} s)"
            )
            print(
                f"  fuel (download + check)  {m['fuel'] / 1e6:.0f} M  ({m['fuel'] / m['bytes']:.0f} per byte)"
            )
            print(
                f"  board time               {m['board_ms'] / 1000:.1f} s (virtual, speed {args.speed})"
            )
            print(
                f"  data-heap peak           {m['heap_peak']} B  (idle peak before: {m['heap_idle']} B)"
            )
            rnd = random.Random(1)
            cuts = boots_ok = updates = 0
            while cuts < args.cuts:
                updates += 1
                text = f"0.3.{updates}"
                seen = len(rig.board.console)
                publish(rig.bundle(text), rig.broker.host, rig.broker.port, SITE)
                rig.board.expect(rf"ota: fetching {text}", timeout=60)
                for _ in range(min(3, args.cuts - cuts)):
                    time.sleep(rnd.uniform(0.05, 2.5))
                    rig.board.power_cut()
                    cuts += 1
                    rig.board.start(wait_banner=False)
                    rig.board.expect(r"seamless-grid-meter \S+ on board", timeout=60)
                    boots_ok += 1
                deadline = time.monotonic() + 300
                while not any(f"running {text}, confirmed" in line
                              for line in rig.board.console[seen:]):  # fmt: skip
                    if time.monotonic() > deadline:
                        tail = "\n".join(rig.board.console[-30:])
                        raise SystemExit(
                            f"update {text} never completed: {rig.ota_state()}\n{tail}"
                        )
                    time.sleep(0.3)
            print(
                f"power cuts during {updates} updates: {cuts}; boots after a cut: "
                f"{boots_ok}/{cuts}; every update completed (last {text})"
            )
        finally:
            rig.board.stop()
            rig.broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
