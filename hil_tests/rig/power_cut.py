"""Power-cut torture of a whole emulated meter: SIGKILL at random moments, restart, check flash.

Used by the CI test (a few dozen cuts) and by the benchmark (1000 and more). The meter is a prepaid
meter with a known credit and a load behind its relay: the rig sends S0 pulses only while the
relay is closed, in bursts with quiet gaps. Cuts come at random instants, and every third cut is
aimed at the close-to-sign window: the rig cuts as soon as the console says
"interval ... closed" (the reading is then being signed), which is how the rig targets it without
any hook in the firmware. After every cut, from the flash:
- the journal opens and every record seen before is still there, byte for byte (nothing is
  acknowledged in this run, so nothing may disappear);
- no energy fell out of the interval deltas: each reading's delta is the change of the totals
  since the previous reading, and intervals follow each other without a hole;
- no credit came back: the credit on flash (credited - debited) is never more than the credit
  paid minus what the meter had certainly counted (every pulse sent before the last quiet gap).
"""

from __future__ import annotations

import hashlib
import json
import queue
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from boards.emulated.host.vclock import VirtualClock
from hil_tests.rig.board_process import BoardProcess
from hil_tests.rig.flash_reader import journal_records
from sgcore import reading as rd

CREDIT_PER_CUT_WH = 25  # paid credit: runs out about a quarter into the run
_CLOSED = re.compile(r"interval \d+\.\.(\d+) closed")
_QUIET_S = 0.4  # the meter takes every pulse within a step (250 ms idle) of its arrival
# Energy a load draws between the meter's read that takes the credit below zero and the relay
# opening: the burst in flight (the rig sends 1-6 Wh every 20 ms while it sees the relay closed)
OVERSHOOT_WH = 12


@dataclass
class TortureResult:
    cuts: int = 0
    aimed_cuts: int = 0  # cuts made right after an "interval closed" line
    window_cuts: int = 0  # of those, cuts that landed before the reading was journaled
    records: int = 0
    readings: int = 0
    boots_reaching_ready: int = 0
    recoveries_logged: int = 0
    pulses_released: int = 0  # Wh the rig let through a closed relay
    released_beyond_credit: int = 0  # beyond the paid credit plus OVERSHOOT_WH (must be 0)
    credit_given_back: int = 0  # Wh of credit a cut ever gave back (must be 0)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def _seed(flash: Path, credit_wh: int) -> None:
    flash.mkdir(parents=True, exist_ok=True)
    cfg = {"interval_s": 60, "checkpoint_s": 600, "min_switch_s": 0, "journal_capacity": 4096}
    (flash / "config.json").write_text(json.dumps(cfg))
    credit = {
        "credited_wh": credit_wh,
        "debited_wh": 0,
        "floor": 0,
        "seen": 0,
        "issuer": "",
        "window": [0, 0, 0],
    }  # fmt: skip  (as a paid token would have left it)
    (flash / "credit.json").write_text(json.dumps(credit))


def _flash_credit(flash: Path) -> int | None:
    for name in ("credit.json", "credit.json.tmp"):
        try:
            s = json.loads((flash / name).read_text())
            return int(s["credited_wh"]) - int(s["debited_wh"] or 0)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _readings(recs: dict[int, bytes]) -> list[rd.Reading]:
    out = [rd.decode(recs[s])[0] for s in sorted(recs)]
    return [r for r in out if r.kind == rd.KIND_READING]


def deltas_problems(readings: list[rd.Reading]) -> list[str]:
    """Each reading's interval delta must be the change of the totals since the previous one."""
    problems = []
    for prev, r in zip(readings, readings[1:], strict=False):
        if r.interval_import_wh != r.import_wh - prev.import_wh:
            problems.append(
                f"seq {r.seq}: delta {r.interval_import_wh} Wh but the total moved "
                f"{r.import_wh - prev.import_wh} Wh since seq {prev.seq}"
            )
        if r.start != prev.end:
            problems.append(f"seq {r.seq}: starts at {r.start}, the previous ended at {prev.end}")
    return problems


class _Run:
    def __init__(self, board: BoardProcess, rng: random.Random) -> None:
        self.board, self.rng = board, rng
        self.sent = 0  # pulses sent in all
        self.counted = 0  # pulses the meter has certainly taken (sent before a quiet gap)
        self._last_pulse = 0.0

    def _relay_closed(self) -> bool:
        try:
            return self.board.state()["gpio"]["relay"] == 1  # type: ignore[index]
        except (OSError, RuntimeError, AssertionError, KeyError, TypeError):
            return False  # the control socket is not up yet

    def _pulse(self, n: int) -> None:
        if n and self._relay_closed():
            try:
                self.board.pulses(n)
            except (OSError, RuntimeError, AssertionError):
                return
            if time.monotonic() - self._last_pulse >= _QUIET_S:
                self.counted = self.sent  # the meter took everything before this burst
            self.sent += n
            self._last_pulse = time.monotonic()

    def powered(self, mode: str) -> int | None:
        """Run the board, then return for the cut. mode "boot": 0.05-1.5 s after power-on (a cut
        while it boots); "random": 0-2.5 s after "meter ready"; "aim": as soon as an interval
        closes after "meter ready" (returns its end: the cut lands in the close-to-sign window)."""
        start = time.monotonic()
        deadline = start + (self.rng.uniform(0.05, 1.5) if mode == "boot" else 60.0)
        burst_until = 0.0
        while time.monotonic() < deadline and self.board.alive():
            now = time.monotonic()
            if now >= burst_until + _QUIET_S:  # a new burst after a quiet gap
                burst_until = now + self.rng.uniform(0.05, 0.6)
            if now < burst_until:
                self._pulse(self.rng.randint(1, 6))
            while True:
                try:
                    line = self.board.lines.get_nowait()
                except queue.Empty:
                    break
                if mode == "random" and "meter ready" in line:
                    deadline = time.monotonic() + self.rng.uniform(0, 2.5)
                elif mode == "aim" and "meter ready" in line:
                    deadline = time.monotonic() + 30.0
                    mode = "aiming"
                m = _CLOSED.search(line) if mode == "aiming" else None
                if m:
                    return self._aimed(int(m.group(1)))
            if mode != "aiming":
                time.sleep(0.02)
                continue
            try:  # aiming: woken by the line itself, not up to a 20 ms poll later
                line = self.board.lines.get(timeout=0.02)
            except queue.Empty:
                continue
            m = _CLOSED.search(line)
            if m:
                return self._aimed(int(m.group(1)))
        return None

    def _aimed(self, end: int) -> int:
        """The interval ending at `end` just closed: cut within the next ~10 ms (the window to
        its journal write is a few ms on a fast host; a 20 ms poll plus a 0-20 ms delay missed
        it in every aimed cut of a loaded CI run)."""
        time.sleep(self.rng.uniform(0, 0.01))
        return end


def torture(
    workdir: Path,
    cuts: int,
    seed: int = 1,
    speed: float = 60.0,
    progress=None,
    rom_dir: Path | None = None,
) -> TortureResult:
    """`rom_dir`: a firmware image to boot (default: built from firmware/ at every boot)."""
    rng = random.Random(seed)
    flash = workdir / "flash"
    paid = CREDIT_PER_CUT_WH * cuts
    _seed(flash, paid)
    board = BoardProcess(
        flash_dir=flash, board_id="torture", run_dir=workdir, clock=VirtualClock(speed=speed),
        rom_dir=rom_dir,
    )  # fmt: skip
    res = TortureResult()
    run = _Run(board, rng)
    seen: dict[int, bytes] = {}
    t0 = time.monotonic()
    for i in range(cuts):
        board.start(wait_banner=False)
        aim = i % 3 == 2
        end = run.powered("aim" if aim else rng.choice(("boot", "random", "random")))
        if time.monotonic() - run._last_pulse >= _QUIET_S:
            run.counted = run.sent  # a quiet gap before the cut: the meter took every pulse
        board.power_cut()
        res.cuts += 1
        now = journal_records(flash)
        if aim and end is not None:
            res.aimed_cuts += 1
            if all(r.end != end for r in _readings(now)):
                res.window_cuts += 1
        for seq, rec in seen.items():
            if now.get(seq) != rec:
                res.problems.append(f"cut {i}: record {seq} lost or changed")
        seen.update(now)
        credit = _flash_credit(flash)
        if credit is None:
            res.problems.append(f"cut {i}: credit.json unreadable")
        else:
            over = credit - (paid - run.counted)
            if over > 0:
                res.credit_given_back = max(res.credit_given_back, over)
                res.problems.append(
                    f"cut {i}: {credit} Wh of credit on flash, but {paid} paid and "
                    f"{run.counted} Wh counted: {over} Wh given back"
                )
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
    recs = journal_records(flash)
    res.problems += check_chain(recs)
    readings = _readings(recs)
    res.problems += deltas_problems(readings)
    res.records, res.readings = len(recs), len(readings)
    res.pulses_released = run.sent
    res.released_beyond_credit = max(0, run.sent - paid - OVERSHOOT_WH)
    if res.released_beyond_credit:
        res.problems.append(f"{run.sent} Wh released for {paid} Wh paid")
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
