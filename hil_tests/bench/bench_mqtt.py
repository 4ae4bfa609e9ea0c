"""What one MQTT publish of a signed reading costs the meter, inside real MicroPython.

    uv run python -m hil_tests.bench.bench_mqtt [--n 50]

Runs firmware/lib/mqtt*.py in the WASI MicroPython (110 KB heap) against an in-guest loopback
stream that answers CONNACK, SUBACK and every PUBACK, so the figures are the client's own work
(the emulated board's host bridge, and lwIP on a real ESP32, come on top). Prints:
- wasm fuel (instructions) of one QoS 1 publish of a 167-byte record, PUBACK processed;
- heap bytes allocated by it (automatic GC is off, so gc.mem_alloc() grows by exactly that),
  the client's resident size, and MicroPython's heap high-water mark for the whole run;
- fuel of verifying one signed gateway ack (uplink: sha256 + secp256k1 Verifier, all slices).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys

import coincurve

from boards.emulated.host.wasm import MicroPythonVM, Mount
from gateway.crypto import sign_digest
from hil_tests import REPO_ROOT
from sgcore import messages

FIRMWARE_LIB = REPO_ROOT / "firmware" / "lib"

GUEST = """
import sys, gc, json, micropython, host
sys.path.insert(0, "/lib")
import mqtt as mq

def fuel():
    return json.loads(host.call("fuel", ""))[1]

class Loop:
    # A broker in a box: CONNACK, SUBACK for each SUBSCRIBE, PUBACK for each QoS 1 PUBLISH.
    def __init__(self):
        self.out = bytearray(64)
        self.n = 0
    def write(self, data):
        kind = data[0] & 0xF0
        if kind == 0x10:
            self._put(b"\\x20\\x02\\x00\\x00")
        elif kind == 0x80:
            self._put(bytes((0x90, 3, data[2], data[3], 1)))
        elif kind == 0x30 and data[0] & 0x02:
            tl = (data[2] << 8) | data[3] if data[1] < 128 else (data[3] << 8) | data[4]
            at = 4 + tl if data[1] < 128 else 5 + tl
            self._put(bytes((0x40, 2, data[at], data[at + 1])))
        return len(data)
    def _put(self, b):
        self.out[self.n : self.n + len(b)] = b
        self.n += len(b)
    def readinto(self, buf, n=None):
        if not self.n:
            return None
        k = min(n or len(buf), self.n)
        buf[0:k] = self.out[0:k]
        self.out[0 : self.n - k] = self.out[k : self.n]
        self.n -= k
        return k
    def close(self):
        pass

class Board:
    def __init__(self):
        self.t = 0
    def ticks_ms(self):
        self.t += 1
        return self.t
    def ticks_diff(self, a, b):
        return a - b
    def ticks_add(self, a, b):
        return a + b
    def random_bytes(self, n):
        return bytes(n)

def make():
    link = mq.MqttLink(Board(), "x", 1883, b"meter-bench", will_topic=b"sg/s/m/status",
                       connect=lambda h, p, t: Loop())
    c = mq.MQTTClient(link, window=4)
    c.subscribe(b"sg/s/m/cmd")
    return c

def settle(c):
    for _ in range(8):
        c.poll()

def one(c, record):
    c.publish(b"sg/lab/00112233445566778899aabbccddeeff/reading", record, 1)
    c.poll()

gc.collect()
before = gc.mem_alloc()
c = make()
settle(c)
gc.collect()
resident = gc.mem_alloc() - before
record = bytes(range(167))
fuels = []
allocs = []
i = 0
while i < N:  # top level stays shallow: gc.collect() here is safe on the WASI build
    gc.collect()
    a0 = gc.mem_alloc()
    f0 = fuel()
    one(c, record)
    f1 = fuel()
    allocs.append(gc.mem_alloc() - a0)
    fuels.append(f1 - f0)
    i += 1
gc.collect()
print("J " + json.dumps({"fuel": fuels, "alloc": allocs, "acked": c.acked,
                         "resident": resident, "peak": micropython.mem_peak()}))
"""

VERIFY = """
import sys, gc, json, host
sys.path.insert(0, "/lib")
from sgcore import messages, secp256k1
def fuel():
    return json.loads(host.call("fuel", ""))[1]
def start():
    d = messages.ack_digest(MID, 41, H)
    return secp256k1.Verifier(PUB, d, SIG)
f0 = fuel()
v = start()
steps = 0
worst = 0
while True:
    s0 = fuel()
    done = v.step()
    worst = max(worst, fuel() - s0)
    steps += 1
    gc.collect()
    if done:
        break
print("J " + json.dumps({"fuel": fuel() - f0, "valid": v.valid, "steps": steps, "worst": worst}))
"""


def _run(code: str) -> dict:
    vm = MicroPythonVM(mounts=[Mount(FIRMWARE_LIB, "/lib")])
    vm.host_functions = {"fuel": lambda _: vm.fuel_used()}
    out = vm.run_code("import gc\ngc.disable()\n" + code)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("J ")]
    if out.exit_code != 0 or not lines:
        raise RuntimeError(f"guest failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(lines[-1][2:])


def run(n: int) -> dict[str, float]:
    pub = _run(f"N = {n}\n" + GUEST)
    key = coincurve.PrivateKey()
    mid, h = b"\x11" * 16, hashlib.sha256(b"record 41").digest()
    sig = sign_digest(key, messages.ack_digest(mid, 41, h))
    pubkey = key.public_key.format(compressed=True)
    ver = _run(f"MID = {mid!r}\nH = {h!r}\nSIG = {sig!r}\nPUB = {pubkey!r}\n" + VERIFY)
    assert ver["valid"] is True and pub["acked"] >= n
    return {
        "publishes": n,
        "publish_fuel_median": statistics.median(pub["fuel"]),
        "publish_fuel_max": max(pub["fuel"]),
        "publish_heap_bytes_median": statistics.median(pub["alloc"]),
        "client_resident_bytes": pub["resident"],
        "heap_peak_bytes": pub["peak"],
        "ack_verify_fuel": ver["fuel"],
        "ack_verify_slices": ver["steps"],
        "ack_verify_worst_slice_fuel": ver["worst"],
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="publishes to measure")
    args = parser.parse_args(argv)
    r = run(args.n)
    print(
        f"MQTT QoS 1 publish of a 167-byte record ({r['publishes']} runs, MicroPython 110 KB heap)"
    )
    print(
        f"  fuel per publish      median {r['publish_fuel_median']:,.0f}  max {r['publish_fuel_max']:,.0f}"
    )
    print(f"  heap per publish      {r['publish_heap_bytes_median']:,.0f} bytes allocated (GC off)")
    print(
        f"  client resident       {r['client_resident_bytes']:,} bytes (1 KB tx + 1 KB rx buffers)"
    )
    print(f"  heap high-water mark  {r['heap_peak_bytes']:,} bytes (whole run)")
    print(f"signed ack verification  {r['ack_verify_fuel']:,} fuel in {r['ack_verify_slices']} slices,"
          f" worst slice {r['ack_verify_worst_slice_fuel']:,}")  # fmt: skip
    return r


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
