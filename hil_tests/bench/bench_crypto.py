"""sgcore crypto figures inside real MicroPython (the emulated ESP32: 110 KB heap, GC as on the board).

    uv run python -m hil_tests.bench.bench_crypto [--n 5]

Fuel is wasmtime's deterministic instruction count (the firmware's CPU budget). Every figure is
measured in the guest around the call, minus the cost of reading the fuel counter. The modules
are mpy-cross compiled, as on a device. Like the firmware's main loop, the guest runs with
automatic GC off and collects after every step; collections are reported separately.

Heap: `mem_peak` is micropython.mem_peak(), which in this build counts every allocation and
never subtracts what the GC frees (so it is cumulative, not a high-water mark). `heap_peak` is
the real high-water mark: the most heap in use at any step boundary (before the collection),
including the modules and the bench's own data (its results, the records kept for the
verifications); `heap_own` is that minus the heap in use just before the job started (the job's
state plus one step's garbage). The signing figure that counts, `sign_heap`, is sgcore's: its
loaded modules plus the signer's own.

The verifications with the issuer's key use its key table (sgcore.secp256k1_keytable), written
into the guest's ROM by tools/provision.py's code, as a provisioned meter has it.
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
from tools.provision import write_key_table

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
    return json.loads(host.call('fuel', ''))[1]

f0 = fuel()
CAL = fuel() - f0  # the cost of one fuel() call

gc.collect()
BOOT = gc.mem_alloc()
from sgcore import secp256k1 as ec
from sgcore import secp256k1_keytable as keytable
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
signed = []
for case in CASES:  # signing first: what a meter does every interval
    priv, body = unhexlify(case[0]), unhexlify(case[1])
    gc.collect()
    st = [0, 0, 0, 0, 0, gc.mem_alloc()]
    deriver = ec.KeyDeriver(priv)
    while not step(deriver, st):
        gc.collect()
    derive = figures(st)
    pub = deriver.public_key
    deriver = None
    gc.collect()
    st = [0, 0, 0, 0, 0, gc.mem_alloc()]
    f0 = fuel()
    signer = signing.RecordSigner(body, priv)
    st[1] = fuel() - f0 - CAL
    while not step(signer, st):
        f0 = fuel()
        gc.collect()
        st[3] += fuel() - f0 - CAL
    results['records'].append({'pubkey': derive, 'sign': figures(st)})
    signed.append((pub, signer.record))
    signer = None
    gc.collect()
keytable.use_key_table('/rom/issuer.tbl')
gc.collect()
st = [0, 0, 0, 0, 0, gc.mem_alloc()]
verifier = ec.Verifier(ISSUER, signing._reading.digest(unhexlify(CASES[0][1])), unhexlify(CASES[0][3]))
while not step(verifier, st):
    gc.collect()
results['table_check'] = figures(st)  # the first verification checks the table (once per boot)
results['table_check_valid'] = verifier.valid
verifier = None
i = 0
while i < len(CASES):
    rec = results['records'][i]
    pub, record = signed[i]
    digest = signing._reading.digest(record[:103])
    sig = unhexlify(CASES[i][2])
    gc.collect()
    st = [0, 0, 0, 0, 0, gc.mem_alloc()]
    verifier = ec.Verifier(pub, digest, sig)
    while not step(verifier, st):
        f0 = fuel()
        gc.collect()
        st[3] += fuel() - f0 - CAL
    rec['verify'] = figures(st)
    key = verifier.public_key
    ok = verifier.valid is True and record[103:] == sig
    verifier = None
    gc.collect()
    st = [0, 0, 0, 0, 0, gc.mem_alloc()]
    verifier = ec.Verifier(key, digest, sig)
    while not step(verifier, st):
        gc.collect()
    rec['verify_parsed_key'] = figures(st)
    ok = ok and verifier.valid is True
    verifier = None
    gc.collect()
    st = [0, 0, 0, 0, 0, gc.mem_alloc()]
    verifier = ec.Verifier(ISSUER, digest, unhexlify(CASES[i][3]))
    while not step(verifier, st):
        f0 = fuel()
        gc.collect()
        st[3] += fuel() - f0 - CAL
    rec['verify_key_table'] = figures(st)
    ok = ok and verifier.valid is True
    verifier = None
    gc.collect()
    verifier = ec.Verifier(ISSUER, digest, sig)  # the meter's signature is not the issuer's
    while not verifier.step():
        gc.collect()
    rec['same_as_coincurve'] = ok and verifier.valid is False
    verifier = None
    gc.collect()
    i += 1
results['mem_peak'] = micropython.mem_peak()
print('RESULT ' + json.dumps(results))
"""


def issuer_pubkey() -> bytes:
    return coincurve.PrivateKey(ISSUER_PRIV).public_key.format()


def _rom(tmp: Path) -> Path:
    for source in (LIB / "sgcore").glob("*.py"):
        compile_one(source, tmp / "sgcore" / source.with_suffix(".mpy").name, None)
    shutil.copy(LIB / "sgcore" / "secp256k1_g.bin", tmp / "sgcore")
    write_key_table(tmp / "issuer.tbl", issuer_pubkey())  # as tools/provision.py does
    return tmp


ISSUER_PRIV = hashlib.sha256(b"bench issuer").digest()  # the site key tokens and acks come from


def _cases(n: int) -> list[tuple[str, str, str, str]]:
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
        by_issuer = coincurve.PrivateKey(ISSUER_PRIV).sign_recoverable(
            reading.digest(body), hasher=None
        )[:64]
        cases.append((priv.hex(), body.hex(), sig.hex(), by_issuer.hex()))
    return cases


def run(n: int, heap_bytes: int = DEFAULT_HEAP) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        rom = _rom(Path(tmp))
        vm = MicroPythonVM(mounts=[Mount(rom, "/rom")], heap_bytes=heap_bytes)
        vm.host_functions = {"fuel": lambda _: vm.fuel_used()}
        outcome = vm.run_code(f"CASES = {_cases(n)!r}\nISSUER = {issuer_pubkey()!r}\n" + GUEST)
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
        "verify_table_fuel": avg("verify_key_table", "fuel"),
        "verify_table_steps": avg("verify_key_table", "steps"),
        "verify_table_gc_fuel": avg("verify_key_table", "gc_fuel"),
        "table_check_fuel": results["table_check"]["fuel"] - avg("verify_key_table", "fuel"),
        "max_step_fuel": max(
            max(
                r[p]["max_step"]
                for p in ("sign", "verify", "verify_parsed_key", "verify_key_table")
            )
            for r in recs
        ),
        "table_check_max_step": results["table_check"]["max_step"],
        "sign_heap_peak": max(r["sign"]["heap_peak"] for r in recs),
        "sign_heap_own": max(r["sign"]["heap_own"] for r in recs),
        "sign_heap": results["modules_heap"] + max(r["sign"]["heap_own"] for r in recs),
        "verify_heap_peak": max(r["verify"]["heap_peak"] for r in recs),
        "verify_table_heap_peak": max(r["verify_key_table"]["heap_peak"] for r in recs),
        "modules_heap": results["modules_heap"],
        "mem_peak": results["mem_peak"],
    }
    print(f"sgcore secp256k1 in MicroPython, {len(recs)} record(s), heap {DEFAULT_HEAP // 1024} KB")
    print(f"  derive pubkey            {_m(figures['pubkey_fuel'])} fuel (KeyDeriver)")
    print(
        f"  sign one reading         {_m(figures['sign_fuel'])} fuel in {figures['sign_steps']:.0f} steps"
        f" (+{_m(figures['sign_gc_fuel'])} for a gc.collect() after each step;"
        f" goal <= 20 M: {figures['sign_fuel'] / 20e6:.2f} of it)"
    )
    print(
        f"  verify (33-byte key)     {_m(figures['verify_fuel'])} fuel in {figures['verify_steps']:.0f} steps"
    )
    print(f"  verify (parsed key)      {_m(figures['verify_parsed_fuel'])} fuel")
    print(
        f"  verify, issuer key table {_m(figures['verify_table_fuel'])} fuel in"
        f" {figures['verify_table_steps']:.0f} steps (+{_m(figures['verify_table_gc_fuel'])} for"
        f" collections; goal <= 50 M: {figures['verify_table_fuel'] / 50e6:.2f} of it)"
    )
    print(
        f"  check of that table      {_m(figures['table_check_fuel'])} fuel more, in the first"
        f" verification after boot (max step {_m(figures['table_check_max_step'])}),"
        f" valid: {results['table_check_valid']}"
    )
    print(
        f"  max fuel of one step()   {_m(figures['max_step_fuel'])} (the main loop's worst added latency)"
    )
    print(
        f"  heap peak, signing       {figures['sign_heap'] / 1024:5.1f} KB = modules"
        f" {figures['modules_heap'] / 1024:.1f} KB + the signer {figures['sign_heap_own'] / 1024:.1f} KB"
        f" (goal <= 32 KB: {figures['sign_heap'] / 32768:.2f} of it; with the bench's own data"
        f" {figures['sign_heap_peak'] / 1024:.1f} KB)"
    )
    print(
        f"  heap peak, verifying     {figures['verify_heap_peak'] / 1024:5.1f} KB"
        f" ({figures['verify_table_heap_peak'] / 1024:.1f} KB with the key table)"
    )
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
