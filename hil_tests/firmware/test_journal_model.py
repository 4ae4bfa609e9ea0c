"""The journal against a model (CPython, hypothesis state machine): appends, acks, reboots and
appends torn by a power cut at any byte, in any order."""

from __future__ import annotations

import hashlib
import importlib
import shutil
import sys
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hil_tests.firmware.conftest import FIRMWARE_LIB
from hil_tests.firmware.records import make

if str(FIRMWARE_LIB) not in sys.path:
    sys.path.append(str(FIRMWARE_LIB))  # at the end: firmware modules never shadow others
journal = importlib.import_module("journal")

ENTRY = 175
CAPACITY = 10
SEG = 3


class JournalModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="sg-journal-"))
        self.records: list[bytes] = []  # every committed record, by seq
        self.acked = -1
        self.j = self._open()

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _open(self):
        return journal.Journal(str(self.dir / "j"), CAPACITY, SEG, log=lambda _m: None)

    def _next(self) -> bytes:
        prev = hashlib.sha256(self.records[-1]).digest() if self.records else b"\x00" * 32
        return make(len(self.records), prev)

    @rule(n=st.integers(1, 4))
    def append(self, n: int) -> None:
        for _ in range(n):
            rec = self._next()
            if len(self.records) - 1 - self.acked >= CAPACITY:
                try:
                    self.j.append(rec)
                except journal.JournalFull:
                    return
                raise AssertionError("a full journal accepted a record")
            self.j.append(rec)
            self.records.append(rec)

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        upto = data.draw(st.integers(self.acked - 1, len(self.records) + 1))
        self.j.ack(upto)
        self.acked = max(self.acked, min(upto, len(self.records) - 1))

    @rule()
    def reboot(self) -> None:
        self.j = self._open()

    @precondition(lambda self: len(self.records) - 1 - self.acked < CAPACITY)
    @rule(k=st.integers(1, ENTRY - 1))
    def power_cut_during_append(self, k: int) -> None:
        """The next append wrote only k bytes of its entry; the meter reboots."""
        seq = len(self.records)
        segs = sorted(int(p.stem[1:]) for p in (self.dir / "j").glob("s*.seg"))
        first = segs[-1] if segs and seq - segs[-1] < SEG else seq
        entry = b"SJ\x00\xa7" + self._next() + b"\x00" * 4
        with open(self.dir / "j" / f"s{first}.seg", "ab") as f:
            f.write(entry[:k])
        self.j = self._open()
        assert self.j.truncated_bytes == k

    @invariant()
    def matches_the_model(self) -> None:
        last = len(self.records) - 1
        assert self.j.last_seq() == last
        assert self.j.acked_seq() == self.acked
        expected_hash = hashlib.sha256(self.records[-1]).digest() if self.records else b"\x00" * 32
        assert self.j.last_hash() == expected_hash
        assert list(self.j.pending()) == self.records[self.acked + 1 :]
        assert self.j.is_full() == (last - self.acked >= CAPACITY)


JournalModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_journal_matches_its_model = JournalModel.TestCase
