"""Modbus RTU slave figures, measured in real MicroPython (wasmtime fuel = executed instructions).

    uv run python -m hil_tests.bench.bench_modbus [--requests 200]

- fuel per request: one `poll()` that takes a "read 10 holding registers" frame, checks its CRC,
  executes it and sends the 25-byte reply (through an in-memory UART written in Python, whose
  own cost is measured and subtracted: a real UART's readinto/write are C);
- fuel of `execute()` alone (the PDU work) and of an idle `poll()` (no byte waiting);
- CRC-16/MODBUS fuel per byte, table-driven (used) against bitwise;
- heap: bytes the module import and one slave keep, bytes allocated per request (GC is off in
  the guest, so gc.mem_alloc() grows by exactly what a request allocates), peak heap.
"""

from __future__ import annotations

import argparse
import json

from boards.emulated.host.wasm import run_snippet
from hil_tests import REPO_ROOT

FIRMWARE_LIB = REPO_ROOT / "firmware" / "lib"

# A rig for the slave that runs in MicroPython and in CPython: a clock the caller moves, a DE pin,
# and a UART that hands out pre-loaded bytes one frame (or `chunk` bytes) per readinto.
GUEST_RIG = """
class Clock:
    def __init__(self):
        self.t = 0
    def ticks_ms(self):
        return self.t
    def ticks_diff(self, a, b):
        return a - b

class Pin:
    def __init__(self):
        self.v = 0
        self.edges = 0
    def value(self, v=None):
        if v is None:
            return self.v
        if v != self.v:
            self.edges += 1
        self.v = v

class MemUart:
    def __init__(self, data, chunk=8):
        self.data = data
        self.pos = 0
        self.chunk = chunk
        self.sent = bytearray(0)
        self.keep = True
    def feed(self, data):
        self.data = self.data[self.pos:] + data
        self.pos = 0
    def readinto(self, buf, n):
        left = len(self.data) - self.pos
        if left <= 0:
            return None
        k = self.chunk
        if k > n:
            k = n
        if k > left:
            k = left
        data = self.data
        p = self.pos
        for i in range(k):
            buf[i] = data[p + i]
        self.pos = p + k
        return k
    def write(self, buf):
        if self.keep:
            self.sent += buf
        return len(buf)
"""

_SETUP = (
    """
import sys
sys.path.insert(0, '/lib')
import gc, micropython
gc.collect()
heap0 = gc.mem_alloc()
import modbus_rtu
from modbus_crc import append_crc, crc16, crc16_bitwise
from modbus_pdu import execute
gc.collect()
heap_import = gc.mem_alloc() - heap0
"""
    + GUEST_RIG
    + """
VALUES = {"import_wh": 123456789, "export_wh": 4567, "power_w": -1500, "voltage_dv": 2301,
          "relay": 1, "credit_wh": 25000, "seq": 4242, "current_ma": 6520}
req = bytearray(8)
req[0] = 1; req[1] = 3; req[2] = 0; req[3] = 0; req[4] = 0; req[5] = 10
append_crc(req, 6)
uart = MemUart(bytes(req) * N)
uart.keep = False
def make():
    return modbus_rtu.ModbusSlave(uart, Pin(), Clock(), VALUES, unit_id=1)
gc.collect()
heap1 = gc.mem_alloc()
slave = make()
gc.collect()
heap_slave = gc.mem_alloc() - heap1
tx = bytearray(256)
buf = bytearray(256)
gc.collect()
a0 = gc.mem_alloc()
"""
)

# what each variant does N times (the empty variant is the baseline)
_WORK = {
    "base": "pass",
    "uart": "uart.readinto(buf, 256)\n    uart.write(tx)",
    "poll": "slave.poll()",
    "idle": "slave.poll()",  # the UART is empty: N reads that find nothing
    "execute": "execute(slave, req, 8, tx)",
    "crc_table": "crc16(buf, 256)",
    "crc_bitwise": "crc16_bitwise(buf, 256)",
}

_REPORT = """
alloc = gc.mem_alloc() - a0
peak = micropython.mem_peak() if hasattr(micropython, "mem_peak") else 0
print("J " + json.dumps({"import": heap_import, "slave": heap_slave, "alloc": alloc,
                         "peak": peak, "frames": slave.frames}))
"""


def _run(variant: str, n: int) -> tuple[int, dict[str, int]]:
    loop = f"for _ in range({n}):\n    {_WORK[variant]}\n"
    frames = 0 if variant == "idle" else n
    code = f"import json\nN = {frames}\n" + _SETUP + loop + _REPORT
    out = run_snippet(code, rom_dirs={"/lib": FIRMWARE_LIB})
    if out.exit_code != 0:
        raise RuntimeError(f"guest failed ({variant}):\n{out.stdout}\n{out.stderr}")
    lines = [ln[2:] for ln in out.stdout.splitlines() if ln.startswith("J ")]
    return out.fuel_used, json.loads(lines[-1])


def run(requests: int) -> dict[str, float]:
    n = requests
    base, base_info = _run("base", n)
    fuel = {v: _run(v, n) for v in ("uart", "poll", "idle", "execute", "crc_table", "crc_bitwise")}
    per = {v: (f - base) / n for v, (f, _) in fuel.items()}
    poll_info = fuel["poll"][1]
    if poll_info["frames"] != n:
        raise RuntimeError(f"the slave answered {poll_info['frames']} of {n} requests")
    return {
        "requests": n,
        "fuel_per_request": per["poll"] - per["uart"],
        "fuel_per_request_with_python_uart": per["poll"],
        "fuel_execute_read10": per["execute"],
        "fuel_idle_poll": per["idle"],
        "crc_table_fuel_per_byte": per["crc_table"] / 256,
        "crc_bitwise_fuel_per_byte": per["crc_bitwise"] / 256,
        "heap_import_bytes": base_info["import"],
        "heap_slave_bytes": base_info["slave"],
        "alloc_per_request_bytes": (poll_info["alloc"] - fuel["uart"][1]["alloc"]) / n,
        "heap_peak_bytes": poll_info["peak"],
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args(argv)
    r = run(args.requests)
    print(f"Modbus RTU slave, {r['requests']} requests (read 10 holding registers), MicroPython")
    print(f"  fuel per request (poll: CRC, execute, reply) {r['fuel_per_request']:12,.0f}")
    print(
        f"    same, incl. the in-memory Python UART      {r['fuel_per_request_with_python_uart']:12,.0f}"
    )
    print(f"    execute() alone                            {r['fuel_execute_read10']:12,.0f}")
    print(f"  fuel per idle poll (nothing received)        {r['fuel_idle_poll']:12,.0f}")
    print(f"  CRC-16 fuel per byte: table                  {r['crc_table_fuel_per_byte']:12,.0f}")
    print(f"  CRC-16 fuel per byte: bitwise                {r['crc_bitwise_fuel_per_byte']:12,.0f}")
    print(f"  heap kept by the imports                     {r['heap_import_bytes']:12,} B")
    print(f"  heap kept by one slave                       {r['heap_slave_bytes']:12,} B")
    print(f"  heap allocated per request                   {r['alloc_per_request_bytes']:12,.1f} B")
    print(f"  heap peak (GC off, whole run)                {r['heap_peak_bytes']:12,} B")
    return r


if __name__ == "__main__":
    main()
