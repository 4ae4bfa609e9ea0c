"""The store-and-forward journal (firmware/lib/journal.py) running in real MicroPython."""

from __future__ import annotations

import binascii
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from hil_tests.firmware.conftest import json_lines, run_mpy
from hil_tests.firmware.records import expected_chain

ENTRY = 175
CHAIN = expected_chain(64)

OPEN_AND_REPORT = """
import json, journal, binascii
logs = []
j = journal.Journal('/flash/%s', capacity_records=%d, seg_records=%d, log=logs.append)
print('J ' + json.dumps({
    'last_seq': j.last_seq(),
    'last_hash': binascii.hexlify(j.last_hash()).decode(),
    'acked': j.acked_seq(),
    'pending': [binascii.hexlify(r).decode() for r in j.pending()],
    'truncated': j.truncated_bytes,
    'logs': logs,
}))
"""


def open_report(name: str, flash: Path, capacity: int = 20, seg: int = 4) -> dict:
    return json_lines(run_mpy(OPEN_AND_REPORT % (name, capacity, seg), flash))[0]


def hexhash(seq: int) -> str:
    return hashlib.sha256(CHAIN[seq]).hexdigest()


def test_append_pending_ack_and_reopen_keep_sequence_and_chain(tmp_path: Path) -> None:
    out = run_mpy(
        """
import json, os, journal, testrec
j = journal.Journal('/flash/j', capacity_records=6, seg_records=4)
testrec.chain(j, 6)
try:
    testrec.chain(j, 1)
except journal.JournalFull:
    print('J "full"')
print('J ' + json.dumps([j.is_full(), j.last_seq(), j.ack(2), j.ack(1), sorted(os.listdir('/flash/j'))]))
for bad in (testrec.make(9, j.last_hash()), testrec.make(6, b'x' * 32), b'short'):
    try:
        j.append(bad)
    except journal.JournalError as e:
        print('J ' + json.dumps(str(e)))
print('J ' + json.dumps(j.status()))
""",
        tmp_path,
    )
    lines = json_lines(out)
    assert lines[0] == "full"
    full, last, acked_now, acked_again, files = lines[1]
    assert (full, last, acked_now, acked_again) == (True, 5, 3, 0)
    assert files == ["head", "s0.seg", "s4.seg"]  # s0.seg holds 0..3 and 3 is still pending
    assert "does not follow" in lines[2] and "prev_hash" in lines[3] and "167" in lines[4]
    assert lines[5]["pending"] == 3 and lines[5]["full"] is False

    report = open_report("j", tmp_path, capacity=6)
    assert report["acked"] == 2 and report["last_seq"] == 5
    assert report["last_hash"] == hexhash(5)
    assert report["pending"] == [CHAIN[s].hex() for s in (3, 4, 5)]
    assert report["logs"] == []


def test_fully_acknowledged_journal_keeps_seq_and_hash_after_its_files_are_gone(
    tmp_path: Path,
) -> None:
    run_mpy(
        """
import journal, testrec
j = journal.Journal('/flash/j', capacity_records=20, seg_records=4)
testrec.chain(j, 7)
j.ack(100)
""",
        tmp_path,
    )
    assert sorted(os.listdir(tmp_path / "j")) == ["head"]
    report = open_report("j", tmp_path)
    assert (report["last_seq"], report["acked"], report["pending"]) == (6, 6, [])
    assert report["last_hash"] == hexhash(6)


def _corrupt_bit_flip(d: Path) -> None:
    seg = d / "s4.seg"
    data = bytearray(seg.read_bytes())
    data[ENTRY + 60] ^= 0x10  # inside seq 5's record
    seg.write_bytes(bytes(data))


def _corrupt_truncated_tail(d: Path) -> None:
    seg = d / "s8.seg"
    seg.write_bytes(seg.read_bytes()[:-10])


def _corrupt_torn_last_record(d: Path) -> None:
    with open(d / "s8.seg", "ab") as f:
        f.write(b"SJ\x00\xa7" + CHAIN[10][:50])  # power cut in the middle of appending seq 10


def _corrupt_garbage_segment(d: Path) -> None:
    (d / "s8.seg").write_bytes(os.urandom(3 * ENTRY))


def _corrupt_crc_field(d: Path) -> None:
    seg = d / "s0.seg"
    data = bytearray(seg.read_bytes())
    data[3 * ENTRY - 1] ^= 0x01  # the CRC of seq 2
    seg.write_bytes(bytes(data))


def _corrupt_torn_ack_state(d: Path) -> None:
    (d / "head.tmp").write_bytes((d / "head").read_bytes()[:20])


CORRUPTIONS = {
    # name: (damage, last good seq, bytes the journal must cut, whether a line is logged)
    "bit_flip": (_corrupt_bit_flip, 4, 3 * ENTRY + 2 * ENTRY, True),
    "truncated_tail": (_corrupt_truncated_tail, 8, ENTRY - 10, True),
    "torn_last_record": (_corrupt_torn_last_record, 9, 54, True),
    "garbage_segment": (_corrupt_garbage_segment, 7, 3 * ENTRY, True),
    "crc_field": (_corrupt_crc_field, 1, 2 * ENTRY + 4 * ENTRY + 2 * ENTRY, True),
    "torn_ack_state": (_corrupt_torn_ack_state, 9, 0, True),
}


def test_corrupt_journals_boot_truncate_the_damaged_tail_and_log_it(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    run_mpy(
        """
import journal, testrec
j = journal.Journal('/flash/j', capacity_records=20, seg_records=4)
testrec.chain(j, 10)
j.ack(0)
""",
        base,
    )
    assert sorted(os.listdir(base / "j")) == ["head", "s0.seg", "s4.seg", "s8.seg"]
    for name, (damage, *_rest) in CORRUPTIONS.items():
        shutil.copytree(base / "j", tmp_path / name)
        damage(tmp_path / name)

    opened = run_mpy(
        f"""
import gc, json, journal, testrec

def check(name):
    logs = []
    j = journal.Journal('/flash/' + name, 20, 4, log=logs.append)
    cut = j.truncated_bytes
    sane = j.last_seq()
    testrec.chain(j, 2)
    j2 = journal.Journal('/flash/' + name, 20, 4, log=logs.append)
    print('J ' + json.dumps([name, sane, cut, logs, j2.last_seq(), len(list(j2.pending()))]))

for name in {list(CORRUPTIONS)!r}:
    gc.collect()  # top level only: see boards/emulated/host/wasm.py
    check(name)
""",
        tmp_path,
    )
    results = {r[0]: r[1:] for r in json_lines(opened)}
    for name, (_damage, last_good, cut, logged) in CORRUPTIONS.items():
        sane, got_cut, logs, last_after, pending_after = results[name]
        assert sane == last_good, name
        assert got_cut == cut, name
        assert bool(logs) == logged, (name, logs)
        assert last_after == last_good + 2, name  # the meter goes on journaling after the cut
        assert pending_after == last_after, name  # ack(0): seqs 1..last stay pending
        assert all(line.startswith("journal: ") for line in logs), logs


@pytest.mark.parametrize("state", ["garbage", "empty", "tmp_newer"])
def test_ack_state_files_are_checked(tmp_path: Path, state: str) -> None:
    run_mpy(
        """
import journal, testrec
j = journal.Journal('/flash/j', capacity_records=20, seg_records=4)
testrec.chain(j, 6)
j.ack(1)
""",
        tmp_path,
    )
    d = tmp_path / "j"
    if state == "garbage":
        (d / "head").write_bytes(os.urandom(44))
        expected_acked = -1  # a damaged ack state re-sends everything, losing nothing
    elif state == "empty":
        (d / "head").write_bytes(b"")
        expected_acked = -1
    else:  # power cut after head.tmp was written, before the rename
        state_bytes = bytearray((d / "head").read_bytes())
        state_bytes[4:8] = (3).to_bytes(4, "big")
        state_bytes[8:40] = hashlib.sha256(CHAIN[3]).digest()
        state_bytes[40:44] = binascii.crc32(bytes(state_bytes[:40])).to_bytes(4, "big")
        (d / "head.tmp").write_bytes(bytes(state_bytes))
        expected_acked = 3
    report = open_report("j", tmp_path)
    assert report["acked"] == expected_acked
    assert report["last_seq"] == 5
    assert report["pending"] == [CHAIN[s].hex() for s in range(expected_acked + 1, 6)]
    assert not (d / "head.tmp").exists()
