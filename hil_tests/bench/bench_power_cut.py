"""Power-cut torture of a whole emulated meter, longer than CI's 200 cuts.

uv run python -m hil_tests.bench.bench_power_cut [--cuts 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.progress import Progress

from hil_tests.rig.power_cut import torture


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cuts", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, Progress() as bar:
        task = bar.add_task("power cuts", total=args.cuts)
        res = torture(
            Path(tmp),
            args.cuts,
            args.seed,
            progress=lambda done, recs: bar.update(
                task, completed=done, description=f"power cuts ({recs} records)"
            ),
        )
    print(
        f"cuts: {res.cuts} in {res.seconds:.0f} s; records journaled: {res.records}; "
        f"boots that reached 'meter ready': {res.boots_reaching_ready}; "
        f"journal recoveries logged: {res.recoveries_logged}"
    )
    print("problems:", "none" if not res.problems else "\n  " + "\n  ".join(res.problems))
    return 1 if res.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
