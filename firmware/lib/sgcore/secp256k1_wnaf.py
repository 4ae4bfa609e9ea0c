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


def wnaf(k):
    """Width-5 NAF digits of k >= 0, least significant first: each is 0 or odd in -15..15,
    and any two non-zero digits are at least 5 positions apart."""
    out = []
    while k:
        if k & 1:
            d = k & _MASK
            if d > _HALF:
                d -= _WINDOW
            k -= d
        else:
            d = 0
        out.append(d)
        k >>= 1
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
    inv = yield from _ec.inverse_steps(prefix[-1], _ec.P, 64)
    out = [None] * _ODD_MULTIPLES
    i = _ODD_MULTIPLES - 1
    while i >= 0:
        zi = _ec.fmul(inv, prefix[i - 1]) if i else inv
        inv = _ec.fmul(inv, jac[i][2])
        zz = _ec.fmul(zi, zi)
        out[i] = (_ec.fmul(jac[i][0], zz) % _ec.P, _ec.fmul(_ec.fmul(jac[i][1], zz), zi) % _ec.P)
        i -= 1
    return out


def mul_steps(k, x, y, doublings_per_step):
    """Generator: k * (x, y) as a Jacobian point (its return value), yielding False about
    every `doublings_per_step` doublings. (x, y) must be a valid affine point."""
    table = yield from _odd_multiples_steps(x, y)
    digits = wnaf(k)
    yield False
    acc = _ec.INFINITY
    i = len(digits) - 1
    done = 0
    while i >= 0:
        acc = _ec.double(acc)
        d = digits[i]
        if d > 0:
            p = table[d >> 1]
            acc = _ec.add_affine(acc, p[0], p[1])
        elif d < 0:
            p = table[(-d) >> 1]
            acc = _ec.add_affine(acc, p[0], _ec.P - p[1])
        i -= 1
        done += 1
        if done == doublings_per_step:
            done = 0
            yield False
    return acc
