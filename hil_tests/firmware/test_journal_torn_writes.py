"""A write torn at ANY byte (of an entry or of the ack state) is detected and cut at boot."""

from __future__ import annotations

import shutil
from pathlib import Path

from hil_tests.firmware.conftest import json_lines, run_mpy

ENTRY = 175
STATE = 44

# NAMES comes as one string: a big list literal would need a deep value stack at top level,
# which this MicroPython build keeps where its GC cannot see it (boards/emulated/host/wasm.py)
OPEN_ALL = """
import gc, json, journal

def check(name):
    logs = []
    j = journal.Journal('/flash/' + name, 20, 4, log=logs.append)
    print('J ' + json.dumps([name, j.last_seq(), j.acked_seq(), j.truncated_bytes, len(logs)]))

for name in NAMES:
    gc.collect()  # top level only: see boards/emulated/host/wasm.py
    check(name)
"""


def test_torn_last_entry_and_torn_ack_state_at_every_byte(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    run_mpy(
        "import journal, testrec\n"
        "j = journal.Journal('/flash/j', 20, 4)\n"
        "testrec.chain(j, 6)\n"  # s0: 0..3, s4: 4..5
        "j.ack(1)\n"
        "import os\n"
        "f = open('/flash/j/head', 'rb'); state = f.read(); f.close()\n"
        "j.ack(2)\n"
        "f = open('/flash/j/prev_state', 'wb'); f.write(state); f.close()\n",
        base,
    )
    seg = (base / "j" / "s4.seg").read_bytes()
    newer_state = (base / "j" / "head").read_bytes()
    older_state = (base / "j" / "prev_state").read_bytes()
    assert len(seg) == 2 * ENTRY and len(newer_state) == STATE
    names = []
    for k in range(1, ENTRY):  # seq 5 torn after k bytes
        d = tmp_path / f"e{k}"
        shutil.copytree(base / "j", d)
        (d / "s4.seg").write_bytes(seg[: ENTRY + k])
        names.append(d.name)
    for k in range(0, STATE):  # ack(2) torn while head.tmp was written: head still says 1
        d = tmp_path / f"h{k}"
        shutil.copytree(base / "j", d)
        (d / "head").write_bytes(older_state)
        (d / "head.tmp").write_bytes(newer_state[:k])
        names.append(d.name)
    got = {
        r[0]: r[1:]
        for r in json_lines(
            run_mpy(f"NAMES = {','.join(names)!r}.split(',')\n" + OPEN_ALL, tmp_path)
        )
    }
    for k in range(1, ENTRY):
        assert got[f"e{k}"] == [4, 2, k, 1], k  # seq 5 never committed: cut, one log line
    for k in range(0, STATE):
        last, acked, cut, logs = got[f"h{k}"]
        assert (last, acked, cut) == (5, 1, 0), k  # the old ack state holds; nothing lost
        assert logs == 1, k
    for name in names:
        assert not (tmp_path / name / "head.tmp").exists()
