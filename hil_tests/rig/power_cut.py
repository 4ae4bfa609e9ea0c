"""Power-cut torture of a whole emulated meter: SIGKILL at random moments, restart, check flash.

Used by the CI test (200 cuts) and by the benchmark (more). After every cut the journal must
open, and every record seen before the cut must still be there, byte for byte (nothing is
acknowledged in this run, so nothing may disappear); at the end the chain and the totals are checked.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from boards.emulated.host.vclock import VirtualClock
from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.flash_reader import journal_records
from sgcore import reading as rd


@dataclass
class TortureResult:
    cuts: int = 0
    records: int = 0
    boots_reaching_ready: int = 0
    recoveries_logged: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def torture(
    workdir: Path,
    cuts: int,
    seed: int = 1,
    speed: float = 240.0,
    max_on_s: float = 1.0,
    progress=None,
) -> TortureResult:
    rng = random.Random(seed)
    flash = workdir / "flash"
    flash.mkdir(parents=True, exist_ok=True)
    (flash / "config.json").write_text(json.dumps({"interval_s": 60, "checkpoint_s": 10}))
    board = BoardProcess(
        flash_dir=flash, board_id="torture", run_dir=workdir, clock=VirtualClock(speed=speed)
    )
    res = TortureResult()
    seen: dict[int, bytes] = {}
    t0 = time.monotonic()
    for i in range(cuts):
        board.start(wait_banner=False)
        deadline = time.monotonic() + rng.uniform(0.05, max_on_s)
        while time.monotonic() < deadline and board.alive():
            try:
                board.pulses(rng.randint(0, 20))
            except (OSError, RuntimeError, AssertionError):
                pass  # the control socket is not up yet
            time.sleep(0.02)
        board.power_cut()
        res.cuts += 1
        now = journal_records(flash)
        for seq, rec in seen.items():
            if now.get(seq) != rec:
                res.problems.append(f"cut {i}: record {seq} lost or changed")
        seen.update(now)
        if progress:
            progress(i + 1, len(seen))
    board.start(wait_banner=False)
    board.expect("meter ready", timeout=60)  # the journal always opens (this boot's console only)
    board.stop()
    res.boots_reaching_ready = sum("meter ready" in line for line in board.console)
    res.recoveries_logged = sum(
        line.startswith("journal:") and ("cut" in line or "removed" in line)
        for line in board.console
    )
    res.problems += check_chain(journal_records(flash))
    res.records = len(journal_records(flash))
    res.seconds = time.monotonic() - t0
    return res


def check_chain(recs: dict[int, bytes]) -> list[str]:
    problems = []
    seqs = sorted(recs)
    if seqs and seqs != list(range(seqs[0], seqs[-1] + 1)):
        problems.append("gap in the journal's sequence")
    prev = None
    last_import = 0
    for s in seqs:
        r, _, _ = rd.decode(recs[s])
        if prev is not None and r.prev_hash != hashlib.sha256(prev).digest():
            problems.append(f"chain broken at {s}")
        if r.import_wh < last_import:
            problems.append(f"import total went backwards at {s}: {r.import_wh} < {last_import}")
        last_import = r.import_wh
        prev = recs[s]
    return problems
