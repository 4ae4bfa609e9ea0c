"""One victim of the journal power-cut torture (run by test_journal_torture.py).

    python -m hil_tests.firmware.journal_torture_worker FLASH_DIR SEED CAPACITY SEG_RECORDS

Loads the MicroPython VM, prints READY, waits for a line on stdin, then runs MicroPython that
opens the journal on FLASH_DIR (reporting what it found: `O last acked hash`, one `P seq hash`
per pending record, `E`) and appends/acks in an endless loop, printing `C seq` after each
append returned and `A acked` after each ack returned. The test SIGKILLs it at a random moment.
"""

from __future__ import annotations

import sys
from pathlib import Path

from boards.emulated.host.wasm import MicroPythonVM, Mount, _engine_and_module
from hil_tests import REPO_ROOT

GUEST = """
import sys
sys.path.insert(0, '/lib')
sys.path.insert(0, '/tlib')
import binascii, gc, hashlib, journal, testrec

def hexd(b):
    return binascii.hexlify(b).decode()

def open_journal():
    j = journal.Journal('/flash/j', %(capacity)d, %(seg)d, log=lambda m: print('L', m))
    print('O', j.last_seq(), j.acked_seq(), hexd(j.last_hash()))
    for r in j.pending():
        print('P', int.from_bytes(r[19:23], 'big'), hexd(hashlib.sha256(r).digest()))
    print('E')
    return j

def step(j, x):
    if j.is_full() or x %% 5 == 0:
        span = j.last_seq() - j.acked_seq()
        if span > 0:
            j.ack(j.acked_seq() + 1 + (x >> 4) %% span)
            print('A', j.acked_seq())
    seq = j.last_seq() + 1
    j.append(testrec.make(seq, j.last_hash()))
    print('C', seq)

J = open_journal()
x = %(seed)d
while True:
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    step(J, x)
    gc.collect()  # top level: a safe point (boards/emulated/host/wasm.py)
"""


def main() -> None:
    flash, seed, capacity, seg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    _engine_and_module()  # load (build/wasm-cache) before READY: the kill clock times MicroPython
    out = sys.stdout.buffer

    def emit(data: bytes) -> None:
        out.write(data)
        out.flush()

    vm = MicroPythonVM(
        mounts=[
            Mount(REPO_ROOT / "firmware" / "lib", "/lib"),
            Mount(REPO_ROOT / "hil_tests" / "firmware" / "mpy", "/tlib"),
            Mount(Path(flash), "/flash", writable=True),
        ],
        stdout=emit,
    )
    emit(b"READY\n")
    sys.stdin.readline()
    code = GUEST % {"capacity": capacity, "seg": seg, "seed": seed}
    outcome = vm.run_code("import gc\ngc.disable()\n" + code)
    sys.stderr.write(outcome.stderr)
    sys.exit(100 + outcome.exit_code)  # the guest never ends on its own: any exit is a failure


if __name__ == "__main__":
    main()
