"""Firmware core budgets: wasm fuel and heap per operation, flash writes per day, power-cut torture.

    uv run python -m hil_tests.bench.bench_firmware [--n 20] [--kills 1000]

Fuel is wasmtime's deterministic instruction count, read through a host function right before
and after each operation inside one MicroPython VM (110 KB heap). Automatic GC is off in this
VM, so the bytes an operation allocates (gc.mem_alloc() after - before) are all still on the
heap when it returns: "peak heap" = live heap before the operation + those bytes, an upper
bound of the operation's true peak.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
from pathlib import Path

from boards.emulated.host.bl0942_chip import encode_frame
from boards.emulated.host.wasm import DEFAULT_HEAP, MicroPythonVM, Mount
from hil_tests import REPO_ROOT

LIB = REPO_ROOT / "firmware" / "lib"
TLIB = REPO_ROOT / "hil_tests" / "firmware" / "mpy"

HARNESS = """
import sys
sys.path.insert(0, '/lib')
sys.path.insert(0, '/tlib')
import gc, host, json

def fuel():
    return json.loads(host.call('fuel', ''))[1]

%(setup)s

def op(i):
%(op)s

gc.collect()
f0 = fuel()
f1 = fuel()
overhead = f1 - f0
total = 0
worst_alloc = 0
live = 0
for i in range(%(n)d):
    gc.collect()  # top level: a safe point
    live = gc.mem_alloc()
    fa = fuel()
    op(i)
    fb = fuel()
    a = gc.mem_alloc() - live
    if a > worst_alloc:
        worst_alloc = a
    total += fb - fa - overhead
print('RESULT ' + json.dumps([total // %(n)d, live, worst_alloc]))
"""

OPS = {
    "journal append (1 record, 672-record journal)": (
        "import hashlib, journal, testrec\n"
        "J = journal.Journal('/flash/j')\n"
        "RECS = []\n"
        "h = J.last_hash()\n"
        "for s in range(%(n)d):\n"
        "    RECS.append(testrec.make(s, h))\n"
        "    h = hashlib.sha256(RECS[-1]).digest()\n",
        "    J.append(RECS[i])",
        "",
    ),
    "journal ack (1 record)": (
        "import journal, testrec\nJ = journal.Journal('/flash/j2')\ntestrec.chain(J, %(n)d + 1)\n",
        "    J.ack(i)",
        "",
    ),
    "journal boot recovery (full: 672 records)": (
        "import journal, testrec\n"
        "J = journal.Journal('/flash/j3')\n"
        "for _ in range(672):\n"
        "    J.append(testrec.make(J.last_seq() + 1, J.last_hash()))\n"
        "    gc.collect()\n"
        "J = None\n",
        "    journal.Journal('/flash/j3')",
        "",
    ),
    "registers: close an interval": (
        "import registers\n"
        "R = registers.Registers(60)\n"
        "R.tick(1700000000)\n"
        "R.add_energy(12345, 0)\n"
        "R.sample(1500, 2301)\n",
        "    R.add_energy(1234, 10)\n    R.tick(1700000060 + 60 * i)",
        "",
    ),
    "registers: checkpoint save (atomic rename)": (
        "import registers\nR = registers.Registers()\nC = registers.Checkpoint('/flash/ckpt')\n",
        "    R.add_energy(1000, 0)\n    C.save(R)",
        "",
    ),
    "bl0942: one full-packet read + parse": (
        "import binascii, bl0942, fakes\n"
        "FRAME = binascii.unhexlify(%(frame)r)\n"
        "U = fakes.FakeUart([FRAME] * (%(n)d + 1))\n"
        "M = bl0942.BL0942(U, clock=fakes.FakeClock())\n"
        "M.read()\n",
        "    M.read()\n    M.take_energy()",
        "",
    ),
}


def measure(name: str, n: int, flash: Path) -> tuple[int, int, int]:
    setup, op, extra = OPS[name]
    frame = encode_frame(
        i_rms=1255328,
        v_rms=3653168,
        i_fast_rms=1255328,
        watt=716481,
        cf_cnt=500,
        period_us=20000,
        status=0,
    ).hex()
    code = HARNESS % {"setup": (setup % {"n": n, "frame": frame}) + extra, "op": op, "n": n}
    holder: dict[str, MicroPythonVM] = {}
    vm = MicroPythonVM(
        mounts=[Mount(LIB, "/lib"), Mount(TLIB, "/tlib"), Mount(flash, "/flash", writable=True)],
        host_functions={"fuel": lambda _p: holder["vm"].fuel_used()},
        heap_bytes=DEFAULT_HEAP,
    )
    holder["vm"] = vm
    outcome = vm.run_code("import gc\ngc.disable()\n" + code)
    lines = [ln for ln in outcome.stdout.splitlines() if ln.startswith("RESULT ")]
    if outcome.exit_code != 0 or not lines:
        raise RuntimeError(f"{name}: {outcome.stdout}\n{outcome.stderr}")
    fuel, live, alloc = json.loads(lines[0][7:])
    return fuel, live, alloc


def flash_writes_per_day(checkpoint_s: int = 60, interval_s: int = 900) -> dict[str, int]:
    """A day of steady 1 kW at one energy update per second, default periods (CPython, pure)."""
    spec = importlib.util.spec_from_file_location("fw_registers", LIB / "registers.py")
    assert spec is not None and spec.loader is not None
    registers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(registers)
    with tempfile.TemporaryDirectory() as tmp:
        regs = registers.Registers(interval_s)
        ckpt = registers.Checkpoint(str(Path(tmp) / "r"), period_s=checkpoint_s)
        t0 = 1_700_000_000 - 1_700_000_000 % interval_s
        readings = 0
        for second in range(86_400):
            regs.add_energy(278, 0)
            closed = regs.tick(t0 + second)
            ckpt.maybe_save(regs, second * 1000, force=closed is not None)
            readings += closed is not None
    seg = 32
    debits = credit_debits_per_day()
    return {
        "checkpoint": ckpt.writes,
        "journal appends": readings,
        "journal ack states (one ack per reading)": readings,
        "journal segment removals": readings // seg,
        "credit debits ahead (20 Wh reserve, relay closed)": debits,
        "total": ckpt.writes + 2 * readings + readings // seg + debits,
    }


def credit_debits_per_day(reserve_wh: int = 20) -> int:
    """The credit store's writes for a day of steady 1 kW through a closed relay (CPython)."""
    import sys

    sys.path.insert(0, str(LIB))
    try:
        import credit  # firmware/lib/credit.py

        with tempfile.TemporaryDirectory() as tmp:
            store = credit.CreditStore(b"\0" * 16, None, str(Path(tmp) / "c"), reserve_wh)
            mwh = 0
            for _second in range(86_400):
                mwh += 278
                store.track(mwh // 1000, True)
            return store.writes
    finally:
        sys.path.remove(str(LIB))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="repetitions per operation")
    parser.add_argument("--kills", type=int, default=1000, help="SIGKILLs in the torture (0: skip)")
    args = parser.parse_args(argv)

    print(f"firmware core budgets (MicroPython, {DEFAULT_HEAP // 1024} KB heap, n={args.n})")
    print(f"{'operation':48} {'fuel/op':>12} {'live heap':>10} {'alloc':>8} {'peak heap':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in OPS:
            fuel, live, alloc = measure(name, args.n, Path(tmp))
            print(f"{name:48} {fuel:>12,} {live:>10,} {alloc:>8,} {live + alloc:>10,}")

    writes = flash_writes_per_day()
    print("flash writes per day (checkpoint every 60 s, 15-min readings, steady 1 kW load):")
    for key, value in writes.items():
        print(f"  {key:44} {value:>6}")

    if args.kills:
        import time

        from hil_tests.firmware.torture import run_torture

        with tempfile.TemporaryDirectory() as tmp:
            t = time.monotonic()
            model = run_torture(Path(tmp), kills=args.kills, seed=7)
            dt = time.monotonic() - t
        print(
            f"journal power-cut torture: {args.kills} SIGKILLs in {dt:.0f} s, "
            f"{model.committed + 1} records appended, {model.acked + 1} acked, "
            f"{model.opens} opens checked, {len(model.logs)} recovery log lines: OK"
        )


if __name__ == "__main__":
    main()
