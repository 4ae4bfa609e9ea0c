"""Verification with a key's own fixed-base table (sgcore.secp256k1_keytable): the same answers
as libsecp256k1 and the variable-base path, on random keys and messages (CPython, many cases;
MicroPython, a few), and a damaged or foreign table never makes a bad signature pass."""

import hashlib
from pathlib import Path

import coincurve
import pytest
from ecdsa import SECP256k1, SigningKey
from ecdsa.util import sigencode_string
from hypothesis import given, settings
from hypothesis import strategies as st

from boards.emulated.host.wasm import run_snippet
from hil_tests import REPO_ROOT
from sgcore import secp256k1 as ec
from sgcore import secp256k1_arith as ar
from sgcore import secp256k1_keytable as keytable
from sgcore.secp256k1_table_builder import KeyTableBuilder
from tools.provision import write_key_table

N = ar.N
LIB = REPO_ROOT / "firmware" / "lib"
PRELUDE = "import gc, sys\nsys.path.insert(0, '/lib')\nfrom binascii import hexlify, unhexlify\n"
secrets = st.integers(1, N - 1).map(lambda d: d.to_bytes(32, "big"))


@pytest.fixture(autouse=True)
def _default_table_path():
    yield
    keytable.use_key_table()  # back to the default (absent in the test's cwd)


def _sign(priv: bytes, digest: bytes) -> bytes:
    return coincurve.PrivateKey(priv).sign_recoverable(digest, hasher=None)[:64]


def _pub(priv: bytes) -> bytes:
    return coincurve.PrivateKey(priv).public_key.format()


def _table(tmp: Path, priv: bytes, name: str = "issuer.tbl") -> Path:
    return write_key_table(tmp / name, _pub(priv))


def _generic(pub: bytes, digest: bytes, sig: bytes) -> bool:
    keytable.use_key_table("/nonexistent/table")
    try:
        return ec.verify(pub, digest, sig)
    finally:
        keytable.use_key_table()


@settings(max_examples=60, deadline=None)
@given(secrets, st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_verification_with_a_key_table_matches_libsecp256k1(tmp_path_factory, priv, digest, other):
    tmp = tmp_path_factory.mktemp("kt")
    keytable.use_key_table(str(_table(tmp, priv)))
    pub, sig = _pub(priv), _sign(priv, digest)
    assert ec.verify(pub, digest, sig) is True
    table = keytable.table_for(pub)
    assert table is not None and table.checked  # the table path was taken (and checked)
    assert ec.verify(ec.PublicKey.from_bytes(pub), digest, sig) is True
    if other != digest:
        assert ec.verify(pub, other, sig) is False
        assert _generic(pub, other, sig) is False
    bad = bytearray(sig)
    bad[other[0] % 64] ^= 1 << (other[1] % 8)
    expected = coincurve.PublicKey(pub).verify(
        coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(bytes(bad))),
        digest,
        hasher=None,
    ) if int.from_bytes(bad[32:], "big") <= N // 2 and 0 < int.from_bytes(bad[:32], "big") < N \
        and 0 < int.from_bytes(bad[32:], "big") else False  # fmt: skip
    assert ec.verify(pub, digest, bytes(bad)) is expected


@settings(max_examples=30, deadline=None)
@given(secrets, st.binary(min_size=32, max_size=32))
def test_python_ecdsa_signatures_verify_with_the_table(tmp_path_factory, priv, digest):
    tmp = tmp_path_factory.mktemp("kt")
    keytable.use_key_table(str(_table(tmp, priv)))
    key = SigningKey.from_string(priv, curve=SECP256k1)
    sig = key.sign_digest_deterministic(digest, hashfunc=hashlib.sha256, sigencode=sigencode_string)
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    low = r.to_bytes(32, "big") + min(s, N - s).to_bytes(32, "big")
    high = r.to_bytes(32, "big") + max(s, N - s).to_bytes(32, "big")
    assert ec.verify(_pub(priv), digest, low) is True
    assert ec.verify(_pub(priv), digest, high) is False  # strict low-S, as libsecp256k1


@pytest.mark.parametrize("priv", [1, 2, N - 1, N // 2])
@pytest.mark.parametrize("z", [0, 1, N - 1, N, 2**256 - 1])
def test_edge_keys_and_digests(tmp_path, priv, z):
    secret = priv.to_bytes(32, "big")
    keytable.use_key_table(str(_table(tmp_path, secret)))
    digest = z.to_bytes(32, "big")
    sig = _sign(secret, digest)
    assert ec.verify(_pub(secret), digest, sig) is True
    assert keytable.table_for(_pub(secret)).checked


def test_the_table_sum_handles_equal_and_opposite_points(tmp_path):
    priv = (0x1234567 * 2**200 + 99).to_bytes(32, "big")
    keytable.use_key_table(str(_table(tmp_path, priv)))
    table = keytable.table_for(_pub(priv))
    q = ec.PublicKey.from_bytes(_pub(priv))
    d = int.from_bytes(priv, "big")
    for k in (1, 5, 32, 33, 2**6, 77 * 2**30):
        kq = ar.to_affine(ar.run_to_end(table.add_steps(ar.INFINITY, k, 2)))
        assert kq == ar.to_affine(ar.run_to_end(table.add_steps((q.x, q.y, 1), k - 1, 2)))
        assert kq == _point(k * d)
        same = (kq[0], kq[1], 1)
        assert ar.to_affine(ar.run_to_end(table.add_steps(same, k, 2))) == _point(2 * k * d)
        opposite = (kq[0], ar.P - kq[1], 1)
        assert ar.run_to_end(table.add_steps(opposite, k, 2))[2] % ar.P == 0  # infinity


def _point(k: int) -> tuple[int, int]:
    return coincurve.PrivateKey((k % N).to_bytes(32, "big")).public_key.point()


def _forged(priv: bytes, digest: bytes) -> bytes:
    return _sign(hashlib.sha256(priv).digest(), digest)  # another key's signature


@pytest.mark.parametrize(
    "damage", ["entry", "first entry", "digest", "truncated", "off the curve", "other key"]
)
def test_a_damaged_or_foreign_table_is_refused_and_answers_stay_right(tmp_path, damage):
    priv = hashlib.sha256(b"issuer").digest()
    pub = _pub(priv)
    path = _table(tmp_path, priv)
    data = bytearray(path.read_bytes())
    if damage == "entry":
        data[keytable.HEADER_LEN + 64 * 700 + 5] ^= 0x40
    elif damage == "first entry":  # the check's spot test: entry (0, 1) must be the key
        data[keytable.HEADER_LEN + 3] ^= 1
        data[72:104] = hashlib.sha256(bytes(data[keytable.HEADER_LEN :])).digest()
    elif damage == "digest":
        data[80] ^= 1
    elif damage == "truncated":
        del data[-64:]
    elif damage == "off the curve":
        data[40:72] = (int.from_bytes(data[40:72], "big") ^ 2).to_bytes(32, "big")
    else:
        data = bytearray(_table(tmp_path, hashlib.sha256(b"other").digest(), "o.tbl").read_bytes())
    path.write_bytes(data)
    keytable.use_key_table(str(path))
    digest = hashlib.sha256(b"token").digest()
    assert ec.verify(pub, digest, _sign(priv, digest)) is True  # the variable-base path
    assert ec.verify(pub, digest, _forged(priv, digest)) is False
    assert keytable.table_for(pub) is None  # refused (or not this key's) for good


def test_provisioning_writes_the_table_the_device_builder_writes(tmp_path):
    priv = hashlib.sha256(b"site key").digest()
    host = write_key_table(tmp_path / "host.tbl", _pub(priv))
    assert host.stat().st_size == keytable.TABLE_SIZE
    builder = KeyTableBuilder(str(tmp_path / "dev.tbl"), _pub(priv))
    steps = 1
    while not builder.step():
        steps += 1
    assert steps > 300  # bounded slices
    assert (tmp_path / "dev.tbl").read_bytes() == host.read_bytes()


def test_a_table_cut_short_by_a_power_loss_is_refused(tmp_path):
    priv = hashlib.sha256(b"site key").digest()
    builder = KeyTableBuilder(str(tmp_path / "cut.tbl"), _pub(priv))
    for _ in range(200):
        builder.step()
    del builder  # the generator closes the file: its header is still zeros
    keytable.use_key_table(str(tmp_path / "cut.tbl"))
    assert keytable.table_for(_pub(priv)) is None


def test_micropython_builds_the_table_and_verifies_with_it(tmp_path):
    cases = []
    for i in range(3):
        priv = hashlib.sha256(b"mpy issuer %d" % i).digest()
        digest = hashlib.sha256(b"ack %d" % i).digest()
        cases.append((priv, digest, _sign(priv, digest), _forged(priv, digest)))
    write_key_table(tmp_path / "t1.tbl", _pub(cases[1][0]))
    write_key_table(tmp_path / "t2.tbl", _pub(cases[2][0]))
    damaged = bytearray((tmp_path / "t2.tbl").read_bytes())
    damaged[keytable.HEADER_LEN + 64 * 1000] ^= 1
    (tmp_path / "t2.tbl").write_bytes(damaged)

    def verify(case: tuple[bytes, bytes, bytes, bytes], sig: bytes) -> str:
        args = f"unhexlify('{_pub(case[0]).hex()}'), unhexlify('{case[1].hex()}'), unhexlify('{sig.hex()}')"
        return (
            f"v = ec.Verifier({args})\nwhile not v.step():\n    gc.collect()\n"
            "print(v.valid, kt.table_for(v.public_key) is not None)\ngc.collect()\n"
        )

    code = (
        "from sgcore import secp256k1 as ec\nfrom sgcore import secp256k1_keytable as kt\n"
        "from sgcore.secp256k1_table_builder import KeyTableBuilder\n"
        f"b = KeyTableBuilder('/flash/t0.tbl', unhexlify('{_pub(cases[0][0]).hex()}'))\n"
        "while not b.step():\n    gc.collect()\n"
        "b = None\ngc.collect()\nkt.use_key_table('/flash/t0.tbl')\n"
        + verify(cases[0], cases[0][2])
        + verify(cases[0], cases[0][3])
        + "kt.use_key_table('/flash/t1.tbl')\n"
        + verify(cases[1], cases[1][2])
        + verify(cases[1], cases[1][3])
        + "kt.use_key_table('/flash/t2.tbl')\n"  # damaged: refused, the slow path answers
        + verify(cases[2], cases[2][2])
        + verify(cases[2], cases[2][3])
    )
    outcome = run_snippet(PRELUDE + code, rom_dirs={"/lib": LIB}, flash_dir=tmp_path)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stdout.split() == (
        ["True", "True", "False", "True"] + ["True", "True", "False", "True"]
        + ["True", "False", "False", "False"]
    )  # fmt: skip
    assert (tmp_path / "t0.tbl").read_bytes() == write_key_table(
        tmp_path / "host0.tbl", _pub(cases[0][0])
    ).read_bytes()


@pytest.mark.parametrize("damaged", [False, True])
def test_two_verifications_checking_the_table_at_once_both_answer_right(tmp_path, damaged):
    # the first verifications after boot check the table: an ack on the uplink and a token on
    # the token desk step in turn, on one file. The check read on from wherever the other had
    # left the file: it failed, refused (closed) the table, and the other then raised
    # "I/O operation on closed file"
    priv = hashlib.sha256(b"busy issuer").digest()
    table = _table(tmp_path, priv)
    if damaged:
        data = bytearray(table.read_bytes())
        data[keytable.HEADER_LEN + 64 * 900] ^= 1
        table.write_bytes(data)
    d1, d2 = hashlib.sha256(b"ack").digest(), hashlib.sha256(b"token").digest()
    args = [f"{_pub(priv)!r}, {d!r}, {_sign(priv, d)!r}" for d in (d1, d2)]
    code = (
        "import os\nos.chdir('/flash')\n"
        "from sgcore import secp256k1 as ec\nfrom sgcore import secp256k1_keytable as kt\n"
        f"a = ec.Verifier({args[0]})\nb = ec.Verifier({args[1]})\n"
        "da = a.step()\ndb = False\ngc.collect()\n"  # a starts first, then they alternate
        "while not (da and db):\n"
        "    db = db or b.step()\n    gc.collect()\n    da = da or a.step()\n    gc.collect()\n"
        f"t = kt.table_for({_pub(priv)!r})\n"
        "print(a.valid, b.valid, t is not None and t.checked)\n"
    )
    outcome = run_snippet(PRELUDE + code, rom_dirs={"/lib": LIB}, flash_dir=tmp_path)
    assert outcome.exit_code == 0, outcome.stderr
    assert outcome.stdout.split() == ["True", "True", "False" if damaged else "True"]
