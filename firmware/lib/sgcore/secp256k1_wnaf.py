"""Variable-base multiplication k*Q (the u2*Q half of a verification), width-5 wNAF.

Q's odd multiples Q, 3Q, ..., 15Q are computed in Jacobian form and made affine together
with one inversion (Montgomery's trick), so the main loop uses the cheaper mixed addition:
256 doublings and about 43 additions for a 256-bit k.
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
    jac = [(x, y, 1)]
    for _ in range(_ODD_MULTIPLES - 1):
        jac.append(_ec.add(jac[-1], twice))
        yield False
    # Montgomery's trick: one inversion for all Z's.
    prefix = [jac[0][2]]
    for p in jac[1:]:
        prefix.append(_ec.fmul(prefix[-1], p[2]))
    yield False
    inv = yield from _ec.inverse_steps(prefix[-1], _ec.P, 48)
    out = [None] * _ODD_MULTIPLES
    i = _ODD_MULTIPLES - 1
    while i >= 0:
        zi = _ec.fmul(inv, prefix[i - 1]) if i else inv
        inv = _ec.fmul(inv, jac[i][2])
        zz = _ec.fmul(zi, zi)
        out[i] = (_ec.fmul(jac[i][0], zz) % _ec.P, _ec.fmul(_ec.fmul(jac[i][1], zz), zi) % _ec.P)
        if i & 1:
            yield False
        i -= 1
    return out


def mul_steps(k, x, y, work_per_step):
    """Generator: k * (x, y) as a Jacobian point (its return value), yielding False whenever
    `work_per_step` units are done (a doubling is 2 units, an addition 3: ~0.12 M fuel and
    ~2.5 KB of garbage a unit on MicroPython). (x, y) must be a valid affine point."""
    table = yield from _odd_multiples_steps(x, y)
    digits = wnaf(k)
    yield False
    acc = _ec.INFINITY
    i = len(digits) - 1
    work = 0
    while i >= 0:
        acc = _ec.double(acc)
        work += 2
        d = digits[i]
        if d > 0:
            p = table[d >> 1]
            acc = _ec.add_affine(acc, p[0], p[1])
            work += 3
        elif d < 0:
            p = table[(-d) >> 1]
            acc = _ec.add_affine(acc, p[0], _ec.P - p[1])
            work += 3
        i -= 1
        if work >= work_per_step:
            work = 0
            yield False
    return acc
