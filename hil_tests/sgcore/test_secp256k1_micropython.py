"""sgcore's ECDSA inside real MicroPython (the emulated ESP32's VM), cross-checked in CPython.

run_snippet starts the guest with automatic GC off, as the emulated board runs: the snippets
step the Signer / Verifier / KeyDeriver and collect at top level between steps, like the
firmware's main loop (docs/emulated-board.md).
"""

import hashlib
import shutil
from pathlib import Path

import coincurve
import pytest
from ecdsa import SECP256k1, VerifyingKey
from ecdsa.util import sigdecode_string

from boards.emulated.host.wasm import run_snippet
from hil_tests import REPO_ROOT
from sgcore import reading, signing
from tools.build import compile_one

# one worker runs the whole module (hil_tests/conftest.py): its module fixture is set up once
pytestmark = pytest.mark.xdist_group("sgcore.test_secp256k1_micropython")

LIB = REPO_ROOT / "firmware" / "lib"
PRELUDE = "import gc, sys\nsys.path.insert(0, '/lib')\nfrom binascii import hexlify, unhexlify\n"


def _run(code: str, heap_bytes: int = 110 * 1024, lib: Path = LIB) -> list[str]:
    outcome = run_snippet(PRELUDE + code, rom_dirs={"/lib": lib}, heap_bytes=heap_bytes)
    assert outcome.exit_code == 0, outcome.stderr
    return outcome.stdout.split()


def _stepped(name: str, constructor: str) -> str:
    """Guest code: build a step-wise job and run it, collecting at top level."""
    return f"{name} = {constructor}\nwhile not {name}.step():\n    gc.collect()\ngc.collect()\n"


def _keys_and_digests():
    out = []
    for i, secret in enumerate([1, SECP256k1.order - 1, 0x1234567890ABCDEF * 2**190 + 7]):
        out.append((secret.to_bytes(32, "big"), hashlib.sha256(b"reading %d" % i).digest()))
    return out


def test_signatures_made_in_micropython_are_libsecp256k1s():
    cases = _keys_and_digests()
    code = "from sgcore import secp256k1 as ec\n"
    for priv, digest in cases:
        code += (
            f"priv, digest = unhexlify('{priv.hex()}'), unhexlify('{digest.hex()}')\n"
            + _stepped("s", "ec.Signer(priv, digest)")
            + _stepped("k", "ec.KeyDeriver(priv)")
            + "print(hexlify(k.public_key).decode(), hexlify(s.signature).decode())\n"
        )
    words = _run(code)
    for (priv, digest), pub_hex, sig_hex in zip(cases, words[::2], words[1::2], strict=True):
        pub, sig = bytes.fromhex(pub_hex), bytes.fromhex(sig_hex)
        key = coincurve.PrivateKey(priv)
        assert pub == key.public_key.format()
        assert sig == key.sign_recoverable(digest, hasher=None)[:64]
        der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(sig))
        assert coincurve.PublicKey(pub).verify(der, digest, hasher=None)
        vk = VerifyingKey.from_string(pub, curve=SECP256k1)
        assert vk.verify_digest(sig, digest, sigdecode=sigdecode_string)


def test_micropython_verifies_coincurve_signatures_and_rejects_tampering():
    priv, digest = _keys_and_digests()[2]
    key = coincurve.PrivateKey(priv)
    sig = key.sign_recoverable(digest, hasher=None)[:64]
    bad_digest = hashlib.sha256(b"tampered").digest()
    bad_sig = sig[:63] + bytes([sig[63] ^ 1])
    code = (
        "from sgcore import secp256k1 as ec\n"
        f"pub = unhexlify('{key.public_key.format().hex()}')\n"
        f"sig, digest = unhexlify('{sig.hex()}'), unhexlify('{digest.hex()}')\n"
        + _stepped("v", "ec.Verifier(pub, digest, sig)")
        + "print(v.valid)\n"
        + _stepped("v2", f"ec.Verifier(v.public_key, unhexlify('{bad_digest.hex()}'), sig)")
        + "print(v2.valid)\n"
        + _stepped("v3", f"ec.Verifier(v.public_key, digest, unhexlify('{bad_sig.hex()}'))")
        + "print(v3.valid)\n"
    )
    assert _run(code) == ["True", "False", "False"]


@pytest.fixture(scope="module")
def mpy_lib(tmp_path_factory) -> Path:
    """sgcore as it goes onto a device: .mpy modules plus the table file."""
    root = tmp_path_factory.mktemp("rom")
    for source in (LIB / "sgcore").glob("*.py"):
        compile_one(source, root / "sgcore" / source.with_suffix(".mpy").name, None)
    shutil.copy(LIB / "sgcore" / "secp256k1_g.bin", root / "sgcore")
    return root


def test_sign_and_verify_fit_a_48k_heap_and_survive_its_collections(mpy_lib):
    # Precompiled modules (no compile garbage), and a collection between every two steps:
    # a frame the GC freed while it runs (secp256k1_arith's docstring) would corrupt the result.
    # (Signing alone peaks at ~32 KB of heap including ~16 KB of modules: bench_crypto.py.)
    priv, digest = _keys_and_digests()[1]
    code = (
        "from sgcore import secp256k1 as ec\n"
        "gc.collect()\n"
        f"priv, digest = unhexlify('{priv.hex()}'), unhexlify('{digest.hex()}')\n"
        + _stepped("s", "ec.Signer(priv, digest)")
        + _stepped("k", "ec.KeyDeriver(priv)")
        + _stepped("v", "ec.Verifier(k.public_key, digest, s.signature)")
        + "print(hexlify(s.signature).decode(), v.valid)\n"
    )
    sig_hex, valid = _run(code, heap_bytes=48 * 1024, lib=mpy_lib)
    assert (
        bytes.fromhex(sig_hex)
        == coincurve.PrivateKey(priv).sign_recoverable(digest, hasher=None)[:64]
    )
    assert valid == "True"


def test_record_signed_on_the_meter_verifies_on_the_gateway():
    priv = hashlib.sha256(b"meter 7 key").digest()
    pub = coincurve.PrivateKey(priv).public_key.format()
    body = reading.encode_body(
        reading.Reading(
            reading.meter_id_from_pubkey(pub),
            41,
            b"\x00" * 32,
            1_700_000_000,
            1_700_000_900,
            12345,
            678,
            90,
            0,
            360,
            2100,
            2301,
            1,
        )
    )
    code = (
        "from sgcore import signing\n"
        + _stepped(
            "signer", f"signing.RecordSigner(unhexlify('{body.hex()}'), unhexlify('{priv.hex()}'))"
        )
        + "print(hexlify(signer.record).decode())\n"
        + _stepped("checker", f"signing.RecordVerifier(signer.record, unhexlify('{pub.hex()}'))")
        + "print(checker.valid)\n"
    )
    record_hex, verified_there = _run(code)
    record = bytes.fromhex(record_hex)
    assert verified_there == "True"
    assert record[: reading.BODY_LEN] == body
    assert signing.verify_record(record, pub)
    der = coincurve.ecdsa.cdata_to_der(
        coincurve.ecdsa.deserialize_compact(record[reading.BODY_LEN :])
    )
    assert coincurve.PublicKey(pub).verify(der, reading.digest(body), hasher=None)


def test_a_meter_builds_the_table_on_flash_when_its_image_lacks_it(tmp_path):
    code = (
        "from sgcore import secp256k1_table as table\n"
        "from sgcore.secp256k1_table_builder import TableBuilder\n"
        + _stepped("b", "TableBuilder('/flash/secp256k1_g.bin')")
        + "table.use_table('/flash/secp256k1_g.bin')\n"
        "print(table.table_digest() == table.TABLE_SHA256)\n"
    )
    outcome = run_snippet(PRELUDE + code, rom_dirs={"/lib": LIB}, flash_dir=tmp_path)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stdout.split() == ["True"]
    assert (tmp_path / "secp256k1_g.bin").read_bytes() == (
        LIB / "sgcore" / "secp256k1_g.bin"
    ).read_bytes()


def test_micropython_reports_the_same_errors_for_malformed_input():
    code = (
        "from sgcore import secp256k1 as ec\n"
        "for call in (lambda: ec.Signer(bytes(32), bytes(32)), lambda: ec.PublicKey.from_bytes(b'\\x05' + bytes(32)),\n"
        "             lambda: ec.Verifier(b'\\x02' + bytes(32), bytes(32), bytes(63))):\n"
        "    try:\n        call()\n        print('accepted')\n"
        "    except ValueError as exc:\n        print(type(exc).__name__)\n"
    )
    assert _run(code) == ["Secp256k1Error"] * 3
