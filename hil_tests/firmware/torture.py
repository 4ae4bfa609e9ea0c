"""Journal power-cut torture: SIGKILL MicroPython processes that append and ack, then check.

Shared by the CI test (test_journal_torture.py) and the benchmark (bench_firmware.py).
Each round starts a worker (a spare is always warming up, so the VM compile is off the clock),
lets it run for a random 10-300 ms and SIGKILLs it. The next worker's open report is checked
against everything the killed ones had confirmed (`C seq` printed after append returned,
`A acked` after ack returned): nothing committed is lost, corrupted or duplicated, the chain
continues, the acknowledged position never goes back and the journal always opens.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hil_tests import REPO_ROOT
from hil_tests.firmware.records import make
from sgcore.reading import ZERO_HASH


class TortureFailure(AssertionError):
    pass


@dataclass
class Model:
    """What the killed workers confirmed, and the expected records."""

    committed: int = -1  # highest seq whose append() returned
    acked: int = -1  # highest acked seq whose ack() returned
    opens: int = 0  # completed open reports checked
    logs: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)

    def hash_of(self, seq: int) -> str:
        while len(self.hashes) <= seq:
            prev = bytes.fromhex(self.hashes[-1]) if self.hashes else ZERO_HASH
            self.hashes.append(hashlib.sha256(make(len(self.hashes), prev)).hexdigest())
        return self.hashes[seq]

    def check_open(
        self, last: int, acked: int, last_hash: str, pending: list[tuple[int, str]]
    ) -> None:
        def fail(msg: str) -> None:
            raise TortureFailure(
                f"{msg} (open #{self.opens}: last={last} acked={acked}, "
                f"confirmed committed={self.committed} acked={self.acked})"
            )

        if acked < self.acked:
            fail("acknowledged position went back")
        if last < self.committed:
            fail("a committed record was lost")
        if last > self.committed + 1:
            fail("records appeared that were never appended")
        if last_hash != (self.hash_of(last) if last >= 0 else ZERO_HASH.hex()):
            fail("last_hash does not continue the chain")
        if [s for s, _ in pending] != list(range(acked + 1, last + 1)):
            fail(f"pending seqs are not acked+1..last: {[s for s, _ in pending]}")
        for seq, digest in pending:
            if digest != self.hash_of(seq):
                fail(f"record {seq} is corrupted")
        self.committed = last  # an append cut after its write but before it returned is kept
        self.acked = acked
        self.opens += 1

    def feed(self, stdout: bytes) -> None:
        lines = stdout.decode(errors="replace").split("\n")[:-1]  # drop a line cut by the kill
        report: dict | None = None
        for line in lines:
            tag, _, rest = line.partition(" ")
            if tag == "O":
                last, acked, digest = rest.split()
                report = {"last": int(last), "acked": int(acked), "hash": digest, "pending": []}
            elif tag == "P" and report is not None:
                seq, digest = rest.split()
                report["pending"].append((int(seq), digest))
            elif tag == "E" and report is not None:
                self.check_open(report["last"], report["acked"], report["hash"], report["pending"])
                report = None
            elif tag == "C":
                self.committed = max(self.committed, int(rest))
            elif tag == "A":
                self.acked = max(self.acked, int(rest))
            elif tag == "L":
                self.logs.append(rest)


def _spawn(flash: Path, seed: int, capacity: int, seg: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hil_tests.firmware.journal_torture_worker"]
        + [str(flash), str(seed), str(capacity), str(seg)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _ready(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    if proc.stdout.readline() != b"READY\n":
        proc.wait(timeout=10)
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise TortureFailure(f"worker did not start: {err}")


def run_torture(flash: Path, kills: int, seed: int = 1, capacity: int = 24, seg: int = 4) -> Model:
    """Kill `kills` workers at random moments; returns the checked model."""
    rng = random.Random(seed)
    model = Model()
    spare = _spawn(flash, rng.getrandbits(30), capacity, seg)
    for _ in range(kills):
        proc = spare
        _ready(proc)
        spare = _spawn(flash, rng.getrandbits(30), capacity, seg)
        _go(proc)
        time.sleep(rng.uniform(0.010, 0.300))
        model.feed(_kill(proc))
    # the last worker must open the journal and report it completely
    _ready(spare)
    _go(spare)
    assert spare.stdout is not None
    seen = []
    while True:
        line = spare.stdout.readline()
        seen.append(line)
        if line in (b"E\n", b""):
            break
    model.feed(b"".join(seen) + _kill(spare))
    if not seen or seen[-1] != b"E\n":
        raise TortureFailure("the journal did not open after the last power cut")
    return model


def _go(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.flush()


def _kill(proc: subprocess.Popen[bytes]) -> bytes:
    """SIGKILL the worker; returns what it printed."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.kill()
    stdout = proc.stdout.read()
    code = proc.wait()
    err = proc.stderr.read().decode(errors="replace")
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        stream.close()
    if code != -9:
        raise TortureFailure(f"worker ended by itself ({code}) before the kill:\n{err}")
    return stdout
