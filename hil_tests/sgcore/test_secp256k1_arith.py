import random

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgcore import secp256k1_arith as ar
from sgcore import secp256k1_table as table
from sgcore import secp256k1_wnaf as wnaf
from sgcore.secp256k1_table_builder import TableBuilder
from tools import gen_secp256k1_table

P, N = ar.P, ar.N
field = st.integers(0, P - 1)
scalars = st.integers(1, N - 1)


def _point(k: int) -> tuple[int, int] | None:
    if k % N == 0:
        return None  # infinity
    x, y = coincurve.PrivateKey((k % N).to_bytes(32, "big")).public_key.point()
    return x, y


@given(field, field)
def test_loosely_reduced_products_are_congruent(a, b):
    assert ar.fmul(a, b) % P == a * b % P
    assert ar.fmul(a - P, b + P) % P == a * b % P  # negative and unreduced inputs too
    assert abs(ar.fmul(a, b)) < 2**257


@given(field)
def test_sqrt_and_inverse(a):
    root = ar.sqrt(a)
    if pow(a, (P - 1) // 2, P) in (0, 1):
        assert root is not None and root * root % P == a
    else:
        assert root is None
    if a:
        assert ar.inverse(a, P) * a % P == 1
    else:
        with pytest.raises(ValueError):
            ar.inverse(a, P)
    if a % N:
        assert ar.inverse(a, N) * a % N == 1


@settings(max_examples=30, deadline=None)
@given(scalars, scalars)
def test_group_law_matches_libsecp256k1(a, b):
    pa, pb = _point(a), _point(b)
    ja = (pa[0], pa[1], 1)
    assert ar.to_affine(ar.double(ja)) == _point(2 * a % N)
    assert ar.to_affine(ar.add_affine(ar.double(ja), *pb)) == _point((2 * a + b) % N)
    assert ar.to_affine(ar.add(ar.double(ja), ar.double((pb[0], pb[1], 1)))) == _point(
        (2 * a + 2 * b) % N
    )


def test_additions_handle_equal_and_opposite_points():
    g = (ar.GX, ar.GY, 1)
    assert ar.to_affine(ar.add_affine(g, ar.GX, ar.GY)) == _point(2)
    assert ar.to_affine(ar.add(g, g)) == _point(2)
    assert ar.add_affine(g, ar.GX, P - ar.GY)[2] == 0
    assert ar.add(g, (ar.GX, P - ar.GY, 1))[2] == 0
    assert ar.to_affine(ar.add_affine(ar.INFINITY, ar.GX, ar.GY)) == (ar.GX, ar.GY)
    assert ar.to_affine(ar.double(ar.INFINITY)) is None


def _loose(v: int, rng: random.Random, bits: int) -> int:
    """v plus a multiple of P, negative or positive, with |result| < 2^bits."""
    c = rng.randrange(-(2 ** (bits - 256)) + 1, 2 ** (bits - 256) - 1)
    out = v % P + c * P
    return out if abs(out) < 2**bits else v % P


def _jacobian(k: int, rng: random.Random) -> tuple[int, int, int]:
    x, y = _point(k)  # type: ignore[misc]
    z = rng.randrange(1, P)
    jac = (x * z * z % P, y * z * z * z % P, z)
    # the bounds the module docstring promises: |X| < 2^261, |Y| < 2^258, |Z| < 2^259
    return _loose(jac[0], rng, 261), _loose(jac[1], rng, 258), _loose(jac[2], rng, 259)


def _bounded(p: tuple[int, int, int]) -> bool:
    return abs(p[0]) < 2**261 and abs(p[1]) < 2**258 and abs(p[2]) < 2**259


@settings(max_examples=40, deadline=None)
@given(scalars, scalars, st.integers(0, 2**32))
def test_mixed_addition_of_loosely_reduced_points_stays_exact_and_bounded(a, b, seed):
    rng = random.Random(seed)
    acc, total = _jacobian(a, rng), a
    for _ in range(8):  # a chain, as the table sums run it: the bounds hold step after step
        q = _point(b)
        acc = ar.add_affine(acc, *q)  # type: ignore[misc]
        total += b
        assert ar.to_affine(acc) == _point(total) and _bounded(acc)
        b = b * 7 % N or 1


@settings(max_examples=40, deadline=None)
@given(scalars, st.integers(0, 2**32))
def test_loosely_reduced_equal_and_opposite_points_are_recognised(a, seed):
    rng = random.Random(seed)
    q = _point(a)
    assert q is not None
    same = _jacobian(a, rng)
    assert ar.to_affine(ar.add_affine(same, *q)) == _point(2 * a)
    assert _bounded(ar.add_affine(same, *q)) and _bounded(ar.double(same))
    assert ar.to_affine(ar.double(same)) == _point(2 * a)
    assert ar.add_affine(_jacobian(a, rng), q[0], P - q[1])[2] == 0


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**256 - 1))
def test_scalar_recodings_add_up(k):
    digits = table.signed_digits(k)  # G's table: W = 8
    assert len(digits) == table.NWIN and sum(d << (8 * i) for i, d in enumerate(digits)) == k
    assert all(-127 <= d <= 128 for d in digits)
    digits = table.signed_digits(k, 6, 43)  # a key's table: W = 6
    assert sum(d << (6 * i) for i, d in enumerate(digits)) == k
    assert all(-31 <= d <= 32 for d in digits)
    naf = wnaf.wnaf(k)
    assert sum(d << i for i, d in enumerate(naf)) == k
    nonzero = [i for i, d in enumerate(naf) if d]
    assert all(naf[i] % 2 and -15 <= naf[i] <= 15 for i in nonzero)
    assert all(j - i >= 5 for i, j in zip(nonzero, nonzero[1:], strict=False))


@given(st.integers(0, N - 1))
def test_glv_split_gives_two_short_halves(k):
    k1, k2 = wnaf.split_scalar(k)
    assert (k1 + k2 * wnaf.LAMBDA - k) % N == 0
    assert abs(k1) < 2**128 and abs(k2) < 2**128


def test_glv_endomorphism_constants():
    assert pow(wnaf._BETA, 3, P) == 1 and pow(wnaf.LAMBDA, 3, N) == 1
    gx, gy = _point(1)
    assert _point(wnaf.LAMBDA) == (wnaf._BETA * gx % P, gy)


@settings(max_examples=20, deadline=None)
@given(scalars, scalars)
def test_fixed_and_variable_base_multiplication_match_libsecp256k1(k, q):
    assert ar.to_affine(table.mul_g(k)) == _point(k)
    qx, qy = _point(q)
    assert ar.to_affine(ar.run_to_end(wnaf.mul_steps(k, qx, qy, 4))) == _point(k * q % N)


@pytest.mark.parametrize(
    "k", [1, 2, 31, 32, 33, 2**128, 2**252, N - 1, N - 2, (N - 1) // 2, wnaf.LAMBDA]
)
def test_edge_scalars(k):
    assert ar.to_affine(table.mul_g(k)) == _point(k)
    qx, qy = _point(7)
    assert ar.to_affine(ar.run_to_end(wnaf.mul_steps(k, qx, qy, 4))) == _point(7 * k % N)


def test_checked_in_table_is_what_the_tool_generates():
    data = gen_secp256k1_table.build()
    assert gen_secp256k1_table.OUT.read_bytes() == data
    assert len(data) == table.TABLE_SIZE
    assert table.table_digest() == table.TABLE_SHA256


def test_table_entries_are_libsecp256k1_multiples_of_g():
    data = gen_secp256k1_table.OUT.read_bytes()
    rng = random.Random(6979)
    for _ in range(40):
        window, digit = rng.randrange(table.NWIN), rng.randrange(1, 129)
        off = 8 + 64 * (window * 128 + digit - 1)
        entry = (
            int.from_bytes(data[off : off + 32], "big"),
            int.from_bytes(data[off + 32 : off + 64], "big"),
        )
        assert entry == _point(digit * 2 ** (8 * window) % N)


def test_a_missing_or_foreign_table_is_a_clear_error(tmp_path):
    original = table._path
    try:
        table.use_table(str(tmp_path / "absent.bin"))
        with pytest.raises(table.TableError, match="not found"):
            table.mul_g(5)
        (tmp_path / "other.bin").write_bytes(b"SGGT\x04\x41\x00\x00" + b"\x00" * 64)
        table.use_table(str(tmp_path / "other.bin"))
        with pytest.raises(table.TableError, match="W=8"):
            table.mul_g(5)
    finally:
        table.use_table(original)
    assert ar.to_affine(table.mul_g(5)) == _point(5)


def test_the_device_side_builder_writes_the_same_table(tmp_path):
    builder = TableBuilder(str(tmp_path / "g.bin"))
    steps = 1
    while not builder.step():
        steps += 1
    assert steps > 500  # bounded slices, not one long call
    assert (tmp_path / "g.bin").read_bytes() == gen_secp256k1_table.OUT.read_bytes()


def test_a_table_cut_short_by_a_power_loss_is_refused(tmp_path):
    builder = TableBuilder(str(tmp_path / "g.bin"))
    for _ in range(100):
        builder.step()
    del builder  # the generator closes the file, as a reboot would leave it
    original = table._path
    try:
        table.use_table(str(tmp_path / "g.bin"))
        with pytest.raises(table.TableError):
            table.mul_g(5)
    finally:
        table.use_table(original)
