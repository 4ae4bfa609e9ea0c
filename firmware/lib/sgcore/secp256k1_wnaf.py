"""Variable-base multiplication k*Q (the u2*Q half of a verification): GLV + width-5 wNAF.

GLV (Gallant-Lambert-Vanstone): secp256k1 has an endomorphism phi(x, y) = (beta*x, y) = lambda*Q,
so k*Q = k1*Q + k2*phi(Q) with |k1|, |k2| < 2^128, and one chain of ~128 doublings serves
both halves (instead of 256 doublings). Constants and the lattice basis are libsecp256k1's
(src/scalar_impl.h, secp256k1_scalar_split_lambda; checked in hil_tests/sgcore).

Q's odd multiples Q, 3Q, ..., 15Q are computed in Jacobian form and made affine together with
one inversion (Montgomery's trick), so the main loop uses the cheaper mixed addition; phi of
each costs one multiplication.
"""

from sgcore import secp256k1_arith as _ec
from sgcore.compat import const

_WIDTH = const(5)
_WINDOW = const(32)  # 2^WIDTH
_HALF = const(16)
_MASK = const(31)
_ODD_MULTIPLES = const(8)  # Q, 3Q, ..., 15Q
_ZEROS = (0,) * (_WIDTH - 1)  # after a non-zero digit
_BYTE_ZEROS = (0,) * 8

_BETA = 0x7AE96A2B657C07106E64479EAC3434E99CF0497512F58995C1396C28719501EE  # cube root of 1 mod P
LAMBDA = 0x5363AD4CC05C30E0A5261C028812645A122E22EA20816678DF02967C1B23BD72  # ... mod N
_A1 = 0x3086D221A7D46BCDE86C90E49284EB15
_B1 = -0xE4437ED6010E88286F547FA90ABFE4C3
_A2 = 0x114CA50F7A8E2F3F657C1108D9D44CFD8
_HALF_N = _ec.N >> 1


def _bits5(kb, i):
    """Bits i..i+4 of the 33-byte big-endian kb."""
    v = kb[32 - (i >> 3)] >> (i & 7)
    if i < 256:
        v |= kb[31 - (i >> 3)] << (8 - (i & 7))
    return v & _MASK


def wnaf(k):
    """Width-5 NAF digits of 0 <= k < 2^256, least significant first: each is 0 or odd in
    -15..15, and any two non-zero digits are at least 5 positions apart.

    Reads k's bytes with small ints (shifting a 256-bit int once per bit would allocate
    ~40 KB on MicroPython; slicing the text bin(k) is O(n) per slice) and skips zero bytes."""
    k = k.to_bytes(33, "big")  # bit i is bit i & 7 of k[32 - (i >> 3)]
    out = []
    i = 0
    carry = 0
    while i < 264:
        rest = k[32 - (i >> 3)] >> (i & 7)
        if not (rest or carry):  # the rest of this byte is zero
            out.extend(_BYTE_ZEROS[i & 7 :])
            i = (i | 7) + 1
            continue
        if not (rest + carry) & 1:  # digit 0 (a carry meeting a set bit carries on)
            out.append(0)
            carry = rest & carry
            i += 1
            continue
        rest = _bits5(k, i) + carry  # the window's value, odd
        carry = 0
        if rest > _HALF:
            rest -= _WINDOW
            carry = 1
        out.append(rest)
        out.extend(_ZEROS)
        i += _WIDTH
    while out and not out[-1]:
        out.pop()
    return out


def _odd_multiples_steps(x, y):
    """Generator: [(x, y) of Q, 3Q, ..., 15Q] affine (its return value)."""
    twice = _ec.double((x, y, 1))
    yield False
    jac = [(x, y, 1)]
    for _ in range(_ODD_MULTIPLES - 1):
        jac.append(_ec.add(jac[-1], twice))
        yield False
    out = yield from _ec.affine_steps(jac, 2)  # one inversion for all Z's
    return out


def split_scalar(k):
    """(k1, k2) with k = k1 + k2 * LAMBDA (mod N) and |k1|, |k2| < 2^128 (either may be < 0)."""
    c1 = (_A1 * k + _HALF_N) // _ec.N  # b2 = a1
    c2 = (-_B1 * k + _HALF_N) // _ec.N
    return k - c1 * _A1 - c2 * _A2, -c1 * _B1 - c2 * _A1


def mul_steps(k, x, y, work_per_step):
    """Generator: k * (x, y) as a Jacobian point (its return value), yielding False whenever
    `work_per_step` units are done (a doubling is 2 units, an addition 3: ~0.12 M fuel and
    ~2.5 KB of garbage a unit on MicroPython). (x, y) must be a valid affine point."""
    table = yield from _odd_multiples_steps(x, y)
    phi = []
    for p in table:
        phi.append((_ec.fmul(_BETA, p[0]) % _ec.P, p[1]))
    k1, k2 = split_scalar(k)
    yield False
    neg1 = k1 < 0
    d1 = wnaf(-k1 if neg1 else k1)
    yield False
    neg2 = k2 < 0
    d2 = wnaf(-k2 if neg2 else k2)
    yield False
    acc = _ec.INFINITY
    i = max(len(d1), len(d2)) - 1
    work = 0
    while i >= 0:
        acc = _ec.double(acc)
        work += 2
        d = d1[i] if i < len(d1) else 0
        if d:
            if work >= work_per_step:  # checked before each addition too: a step stays small
                work = 0
                yield False
            p = table[(d if d > 0 else -d) >> 1]
            acc = _ec.add_affine(acc, p[0], _ec.P - p[1] if (d < 0) != neg1 else p[1])
            work += 3
        d = d2[i] if i < len(d2) else 0
        if d:
            if work >= work_per_step:
                work = 0
                yield False
            p = phi[(d if d > 0 else -d) >> 1]
            acc = _ec.add_affine(acc, p[0], _ec.P - p[1] if (d < 0) != neg2 else p[1])
            work += 3
        i -= 1
        if work >= work_per_step:
            work = 0
            yield False
    return acc
