"""sgcore crypto figures inside real MicroPython (the emulated ESP32: 110 KB heap, GC as on the board).

    uv run python -m hil_tests.bench.bench_crypto [--n 5]

Fuel is wasmtime's deterministic instruction count (the firmware's CPU budget). Every figure is
measured in the guest around the call, minus the cost of reading the fuel counter. The modules
are mpy-cross compiled, as on a device. Like the firmware's main loop, the guest runs with
automatic GC off and collects after every step; collections are reported separately.

Heap: `mem_peak` is micropython.mem_peak(), which in this build counts every allocation and
never subtracts what the GC frees (so it is cumulative, not a high-water mark). `heap_peak` is
the real high-water mark: the most heap in use at any step boundary (before the collection),
including the modules and the bench's own data; `heap_own` is that minus the heap in use just
before the job started (the job's state plus one step's garbage).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import coincurve

from boards.emulated.host.wasm import DEFAULT_HEAP, MicroPythonVM, Mount
from hil_tests import REPO_ROOT
from sgcore import reading
from tools.build import compile_one

LIB = REPO_ROOT / "firmware" / "lib"

GUEST = r"""
# Automatic GC off, collections only at top level: a collection inside a large (heap-allocated)
# frame corrupts this build's heap (boards/emulated/host/wasm.py), so helpers stay small.
import gc
gc.disable()
import sys
sys.path.insert(0, '/rom')
import host, json, micropython
from binascii import unhexlify

def fuel():
    return json.loads(host.call('fuel', ''))['value']

f0 = fuel()
CAL = fuel() - f0  # the cost of one fuel() call

gc.collect()
BOOT = gc.mem_alloc()
from sgcore import secp256k1 as ec
from sgcore import signing
gc.collect()
MODULES = gc.mem_alloc()

def step(obj, st):  # st: [steps, fuel, max step fuel, gc fuel, max heap in use, heap before]
    f0 = fuel()
    done = obj.step()
    f0 = fuel() - f0 - CAL
    st[0] += 1
    st[1] += f0
    st[2] = max(st[2], f0)
    st[4] = max(st[4], gc.mem_alloc())
    return done

def figures(st):
    return {'steps': st[0], 'fuel': st[1], 'max_step': st[2], 'gc_fuel': st[3],
            'heap_peak': st[4] - BOOT, 'heap_own': st[4] - st[5]}

results = {'modules_heap': MODULES - BOOT, 'records': []}
for case in CASES:
    priv, body, sig = unhexlify(case[0]), unhexlify(case[1]), unhexlify(case[2])
    gc.collect()
    st = [0, 0, 0, 0, 0, gc.mem_alloc()]
    deriver = ec.KeyDeriver(priv)
    while not step(deriver, st):
        gc.collect()
    pub = deriver.public_key
    derive = figures(st)
    gc.collect()
    st = [0, 0, 0, 0, 0, gc.mem_alloc()]
    f0 = fuel()
    signer = signing.RecordSigner(body, priv)
    st[1] = fuel() - f0 - CAL
    while not step(signer, st):
        f0 = fuel()
        gc.collect()
        st[3] += fuel() - f0 - CAL
    sign = figures(st)
    digest = signing._reading.digest(body)
    gc.collect()
    st = [0, 0, 0, 0, 0, gc.mem_alloc()]
    verifier = ec.Verifier(pub, digest, sig)
    while not step(verifier, st):
        f0 = fuel()
        gc.collect()
        st[3] += fuel() - f0 - CAL
    verify = figures(st)
    key = verifier.public_key
    gc.collect()
    st = [0, 0, 0, 0, 0, gc.mem_alloc()]
    verifier2 = ec.Verifier(key, digest, sig)
    while not step(verifier2, st):
        gc.collect()
    results['records'].append({'pubkey': derive, 'sign': sign, 'verify': verify,
                               'verify_parsed_key': figures(st),
                               'same_as_coincurve': signer.record[103:] == sig
                               and verifier.valid is True and verifier2.valid is True})
    gc.collect()
results['mem_peak'] = micropython.mem_peak()
print('RESULT ' + json.dumps(results))
"""


def _rom(tmp: Path) -> Path:
    for source in (LIB / "sgcore").glob("*.py"):
        compile_one(source, tmp / "sgcore" / source.with_suffix(".mpy").name, None)
    shutil.copy(LIB / "sgcore" / "secp256k1_g.bin", tmp / "sgcore")
    return tmp


def _cases(n: int) -> list[tuple[str, str, str]]:
    cases = []
    for i in range(n):
        priv = hashlib.sha256(b"bench meter %d" % i).digest()
        pub = coincurve.PrivateKey(priv).public_key.format()
        body = reading.encode_body(
            reading.Reading(
                reading.meter_id_from_pubkey(pub),
                i,
                b"\x00" * 32,
                1_700_000_000 + 900 * i,
                1_700_000_900 + 900 * i,
                10_000 + i,
                500,
                120,
                0,
                480,
                2200,
                2305,
                1,
            )
        )
        sig = coincurve.PrivateKey(priv).sign_recoverable(reading.digest(body), hasher=None)[:64]
        cases.append((priv.hex(), body.hex(), sig.hex()))
    return cases


def run(n: int, heap_bytes: int = DEFAULT_HEAP) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        rom = _rom(Path(tmp))
        vm = MicroPythonVM(mounts=[Mount(rom, "/rom")], heap_bytes=heap_bytes)
        vm.host_functions = {"fuel": lambda _: vm.fuel_used()}
        outcome = vm.run_code(f"CASES = {_cases(n)!r}\n" + GUEST)
    if outcome.exit_code != 0:
        raise RuntimeError(f"guest failed: {outcome.stderr}")
    line = next(x for x in outcome.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def _m(fuel: float) -> str:
    return f"{fuel / 1e6:6.2f} M"


def report(results: dict) -> dict[str, float]:
    recs = results["records"]

    def avg(path: str, key: str) -> float:
        return sum(r[path][key] for r in recs) / len(recs)

    figures = {
        "pubkey_fuel": avg("pubkey", "fuel"),
        "sign_fuel": avg("sign", "fuel"),
        "sign_steps": avg("sign", "steps"),
        "sign_gc_fuel": avg("sign", "gc_fuel"),
        "verify_fuel": avg("verify", "fuel"),
        "verify_steps": avg("verify", "steps"),
        "verify_parsed_fuel": avg("verify_parsed_key", "fuel"),
        "max_step_fuel": max(
            max(r[p]["max_step"] for p in ("sign", "verify", "verify_parsed_key")) for r in recs
        ),
        "sign_heap_peak": max(r["sign"]["heap_peak"] for r in recs),
        "sign_heap_own": max(r["sign"]["heap_own"] for r in recs),
        "verify_heap_peak": max(r["verify"]["heap_peak"] for r in recs),
        "modules_heap": results["modules_heap"],
        "mem_peak": results["mem_peak"],
    }
    print(f"sgcore secp256k1 in MicroPython, {len(recs)} record(s), heap {DEFAULT_HEAP // 1024} KB")
    print(f"  derive pubkey            {_m(figures['pubkey_fuel'])} fuel (KeyDeriver)")
    print(
        f"  sign one reading         {_m(figures['sign_fuel'])} fuel in {figures['sign_steps']:.0f} steps"
        f" (+{_m(figures['sign_gc_fuel'])} for a gc.collect() after each step)"
    )
    print(
        f"  verify (33-byte key)     {_m(figures['verify_fuel'])} fuel in {figures['verify_steps']:.0f} steps"
    )
    print(f"  verify (parsed key)      {_m(figures['verify_parsed_fuel'])} fuel")
    print(
        f"  max fuel of one step()   {_m(figures['max_step_fuel'])} (the main loop's worst added latency)"
    )
    print(
        f"  heap peak, signing       {figures['sign_heap_peak'] / 1024:5.1f} KB"
        f" (modules {figures['modules_heap'] / 1024:.1f} KB; the signer itself {figures['sign_heap_own'] / 1024:.1f} KB)"
    )
    print(f"  heap peak, verifying     {figures['verify_heap_peak'] / 1024:5.1f} KB")
    print(
        f"  micropython.mem_peak()   {figures['mem_peak'] / 1024:5.1f} KB (cumulative in this build, see docstring)"
    )
    print(f"  signatures equal coincurve's: {all(r['same_as_coincurve'] for r in recs)}")
    return figures


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="records (different keys and readings)")
    args = parser.parse_args(argv)
    return report(run(args.n))


if __name__ == "__main__":
    main()
