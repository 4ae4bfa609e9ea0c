"""Power-cut torture of a whole prepaid emulated meter, longer than CI's 15 cuts.

uv run python -m hil_tests.bench.bench_power_cut [--cuts 1000] [--seed 1]

Cuts at random instants (while booting, while running) and every third one right after an
interval closes, inside the close-to-sign window; checks after every cut that no record, no Wh
of the interval deltas and no credit was lost or given back (hil_tests/rig/power_cut.py).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from rich.progress import Progress

from hil_tests.rig.power_cut import torture
from tools.build import build


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cuts", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, Progress() as bar:
        rom = Path(tmp) / "rom"  # one image for the whole run, whatever happens to firmware/
        shutil.copytree(build("emulated"), rom)
        task = bar.add_task("power cuts", total=args.cuts)
        res = torture(
            Path(tmp),
            args.cuts,
            args.seed,
            rom_dir=rom,
            progress=lambda done, recs: bar.update(
                task, completed=done, description=f"power cuts ({recs} records)"
            ),
        )
    print(
        f"cuts: {res.cuts} in {res.seconds:.0f} s ({res.seconds / max(res.cuts, 1):.2f} s a cut); "
        f"aimed at close-to-sign: {res.aimed_cuts}, landed inside it: {res.window_cuts}"
    )
    print(
        f"records journaled: {res.records} ({res.readings} interval readings); "
        f"boots that reached 'meter ready': {res.boots_reaching_ready}; "
        f"journal recoveries logged: {res.recoveries_logged}"
    )
    print(
        f"energy released through the relay: {res.pulses_released} Wh, beyond the paid credit: "
        f"{res.released_beyond_credit} Wh; credit given back by cuts: {res.credit_given_back} Wh; "
        f"Wh lost from interval deltas: {sum('delta' in p for p in res.problems)} problems"
    )
    print("problems:", "none" if not res.problems else "\n  " + "\n  ".join(res.problems))
    return 1 if res.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
