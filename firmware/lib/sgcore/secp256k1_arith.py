"""secp256k1 field and group arithmetic, written for MicroPython's interpreter.

Points are Jacobian tuples (X, Y, Z) with x = X/Z^2, y = Y/Z^3; Z == 0 is infinity.
Field elements are kept "loosely reduced": any int congruent to the value mod P whose size
stays near 256 bits (it may be negative or slightly above P). A product is folded twice
with 2^256 = 0x1000003D1 (mod P), which on MicroPython costs about 60 % of `% P`; a value
that only feeds one more product with a small factor is folded once. Jacobian points that
`double`, `add_affine` and `add` return, and accept, have |X| < 2^261, |Y| < 2^258 and
|Z| < 2^259 (tested); every product then stays below 2^700, where two folds always land
below 2^257. Only `sqrt()`, `to_affine()` and `% P` give canonical values in [0, P).

The formulas for a = 0 are from the Explicit-Formulas Database (hyperelliptic.org/EFD):
doubling 3M+4S, mixed addition 8M+3S, addition 12M+4S.
Nothing here is constant-time: MicroPython cannot be, see docs/crypto.md.

Frame size rule (checked by hil_tests/sgcore/test_frames.py): every plain function here keeps
locals + stack within 11 slots, so MicroPython keeps its frame on the C stack. Larger frames
go to the heap, and the emulated board's WASI build frees those in a garbage collection while
they are still running. Generator frames live inside the generator object and are safe.
"""

from sgcore.compat import const

P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
GX = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798
GY = 0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8

_M = (1 << 256) - 1
_K = 0x1000003D1  # 2^256 mod P

INFINITY = (1, 1, 0)

# A loosely reduced |v| < 2^262 is 0 mod P only as c P with |c| <= 16; c P = -977 c mod 2^30.
_LOW = const(0x3FFFFFFF)
_ZERO_LOW = tuple((c * P) & _LOW for c in range(-32, 33))

_INVERSE_CHUNK = const(48)  # Euclid division steps per yield
_PREFIX_PER_STEP = const(8)  # affine_steps' running products of Z per yield (~0.6 KB each)
_TOP = const(0x10000000)  # 2^28: Lehmer's leading digits stay small ints


class Secp256k1Error(ValueError):
    """Malformed key, message or signature, or a missing table: the root of sgcore's crypto errors."""


# sqrt addition chain as (squarings, multiply by entry #) pairs; entry 0 is the input.
_SQRT_CHAIN = (1, 0, 1, 0, 3, 2, 3, 2, 2, 1, 11, 5, 22, 6, 44, 7, 88, 8, 44, 7, 3, 2, 23, 6, 6, 1)


def fmul(a, b):
    t = a * b
    t = (t & _M) + (t >> 256) * _K
    return (t & _M) + (t >> 256) * _K


def _sqr_n(a, n):
    for _ in range(n):
        a = a * a
        a = (a & _M) + (a >> 256) * _K
        a = (a & _M) + (a >> 256) * _K
    return a


def sqrt_steps(a, chunk):
    """Generator: a square root of a mod P (return value), or None if a is not a square;
    yields False about every `chunk` squarings. P = 3 mod 4, so the root is a^((P+1)/4),
    by libsecp256k1's addition chain (secp256k1_fe_sqrt: 253 squarings, 13 products)."""
    a = a % P
    powers = [a]
    i = 0
    budget = chunk
    while i < 26:
        n = _SQRT_CHAIN[i]
        x = powers[-1]
        while n > budget:
            x = _sqr_n(x, budget)
            n -= budget
            budget = chunk
            yield False
        x = _sqr_n(x, n)
        budget -= n
        powers.append(fmul(x, powers[_SQRT_CHAIN[i + 1]]))
        i += 2
    x = _sqr_n(powers[-1], 2) % P
    if x * x % P != a:
        return None
    return x


def sqrt(a):
    return run_to_end(sqrt_steps(a, 1 << 30))


def _store_result(steps, out):
    out.append((yield from steps))


def run_to_end(steps):
    """Drive a step generator (as `mul_g_steps`) to the end and return its return value.
    (No try/except StopIteration here: a handler would push this frame onto the heap.)"""
    out = []
    for _ in _store_result(steps, out):
        pass
    return out[0]


def inverse(a, m):
    """The inverse of a mod m (extended Euclid); ValueError if there is none."""
    return run_to_end(inverse_steps(a, m, _INVERSE_CHUNK))


def _bits(v):
    """Bit length of a small int >= 0 (MicroPython's int has no bit_length())."""
    n = 0
    while v >= 256:
        v >>= 8
        n += 8
    while v:
        v >>= 1
        n += 1
    return n


def inverse_steps(a, m, chunk):
    """Generator form of `inverse` for incremental callers: yields False every `chunk`
    division steps; the inverse is its return value (use `yield from`).

    Lehmer's extended Euclid (Knuth 4.5.2, algorithm L): the quotients come from the leading
    28 bits of the remainders in small ints, and the big numbers are updated once per run of
    quotients, which costs about 20 % less than one big division per quotient here."""
    r0, r1 = m, a % m
    x0, x1 = 0, 1
    s = 228  # r0 >> s keeps the leading 28 bits of a 256-bit modulus
    count = 0
    while r1 >= _TOP:
        hi = r0 >> s
        if hi >= _TOP:
            s += _bits(hi) - 28
            hi = r0 >> s
        elif s and hi < _TOP >> 4:
            s -= 28 - _bits(hi)
            if s < 0:
                s = 0
            hi = r0 >> s
        lo = r1 >> s
        A, B, C, D = 1, 0, 0, 1
        while lo + C and lo + D:
            q = (hi + A) // (lo + C)
            if q != (hi + B) // (lo + D):
                break
            A, C = C, A - q * C
            B, D = D, B - q * D
            hi, lo = lo, hi - q * lo
            count += 1
        if B == 0:  # no quotient was certain: one big division step
            q = r0 // r1
            r0, r1 = r1, r0 - q * r1
            x0, x1 = x1, x0 - q * x1
            count += 1
        else:
            r0, r1 = A * r0 + B * r1, C * r0 + D * r1
            x0, x1 = A * x0 + B * x1, C * x0 + D * x1
        if count >= chunk:
            count = 0
            yield False
    while r1 > 1:  # small ints from here
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        x0, x1 = x1, x0 - q * x1
    if r1 == 0:
        raise Secp256k1Error("not invertible")
    return x1 % m


def is_on_curve(x, y):
    return 0 <= x < P and 0 <= y < P and (y * y - x * x * x - 7) % P == 0


def double(p):
    X, Y, Z = p
    if Z == 0:
        return p
    Z = Y * Z  # Z3 = 2 Y Z
    Z = (Z & _M) + (Z >> 256) * _K
    Z = ((Z & _M) + (Z >> 256) * _K) << 1
    Y = Y * Y  # B = Y^2
    Y = (Y & _M) + (Y >> 256) * _K
    Y = (Y & _M) + (Y >> 256) * _K
    p = X * Y  # D = 4 X B
    p = (p & _M) + (p >> 256) * _K
    p = ((p & _M) + (p >> 256) * _K) << 2
    Y = Y * Y  # C = B^2, left unreduced: it is folded together with Y3
    X = X * X  # E = 3 X^2
    X = (X & _M) + (X >> 256) * _K
    X = ((X & _M) + (X >> 256) * _K) * 3
    T = X * X  # X3 = E^2 - 2 D
    T = (T & _M) + (T >> 256) * _K
    T = (T & _M) + (T >> 256) * _K - (p << 1)
    p = X * (p - T) - (Y << 3)  # Y3 = E (D - X3) - 8 C, one reduction for both products
    p = (p & _M) + (p >> 256) * _K
    p = (p & _M) + (p >> 256) * _K
    return T, p, Z


def add_affine(p, x2, y2):
    """p + (x2, y2) with p Jacobian and (x2, y2) affine (not infinity).

    Values that only feed a product with a reduced value are folded once (< 2^330); the
    others twice, so every input stays within the bounds stated in the module docstring."""
    X1, Y1, Z1 = p
    if Z1 == 0:
        return x2, y2, 1
    A = Z1 * Z1  # Z1^2, folded once
    A = (A & _M) + (A >> 256) * _K
    p = x2 * A  # H = x2 Z1^2 - X1  (p is free once unpacked)
    p = (p & _M) + (p >> 256) * _K
    p = (p & _M) + (p >> 256) * _K - X1
    A = Z1 * A  # Z1^3, folded once
    A = (A & _M) + (A >> 256) * _K
    A = y2 * A  # R = y2 Z1^3 - Y1
    A = (A & _M) + (A >> 256) * _K
    A = (A & _M) + (A >> 256) * _K - Y1
    if (p & _LOW) in _ZERO_LOW and p % P == 0:  # the low bits rule out H = c P first
        if A % P == 0:
            return double((x2, y2, 1))
        return INFINITY
    Z1 = Z1 * p  # Z3 = Z1 H
    Z1 = (Z1 & _M) + (Z1 >> 256) * _K
    Z1 = (Z1 & _M) + (Z1 >> 256) * _K
    x2 = p * p  # HH, folded once
    x2 = (x2 & _M) + (x2 >> 256) * _K
    p = p * x2  # HHH
    p = (p & _M) + (p >> 256) * _K
    p = (p & _M) + (p >> 256) * _K
    x2 = X1 * x2  # V = X1 HH
    x2 = (x2 & _M) + (x2 >> 256) * _K
    x2 = (x2 & _M) + (x2 >> 256) * _K
    X1 = A * A  # X3 = R^2 - HHH - 2 V
    X1 = (X1 & _M) + (X1 >> 256) * _K
    X1 = (X1 & _M) + (X1 >> 256) * _K - p - (x2 << 1)
    A = A * (x2 - X1) - Y1 * p  # Y3 = R (V - X3) - Y1 HHH, one reduction for both products
    A = (A & _M) + (A >> 256) * _K
    A = (A & _M) + (A >> 256) * _K
    return X1, A, Z1


def add(p, q):
    """Sum of two Jacobian points."""
    if p[2] == 0:
        return q
    if q[2] == 0:
        return p
    A = fmul(q[2], q[2])  # Z2^2
    U1 = fmul(p[0], A)
    S1 = fmul(q[2], A)
    S1 = fmul(p[1], S1)
    A = fmul(p[2], p[2])  # Z1^2
    H = fmul(q[0], A) - U1
    R = fmul(p[2], A)
    R = fmul(q[1], R) - S1
    if H % P == 0:
        if R % P == 0:
            return double(p)
        return INFINITY
    A = fmul(H, H)  # HH
    q = fmul(p[2], q[2])
    q = fmul(q, H)  # Z3 = Z1 Z2 H
    H = fmul(H, A)  # HHH
    U1 = fmul(U1, A)  # V = U1 HH
    A = fmul(R, R) - H - (U1 << 1)  # X3 = R^2 - HHH - 2 V
    S1 = fmul(S1, H)
    R = fmul(R, U1 - A) - S1  # Y3 = R (V - X3) - S1 HHH
    return A, R, q


def affine_steps(jac, per_step):
    """Generator: the Jacobian points `jac` (none infinity) as canonical affine (x, y), with one
    inversion for all (Montgomery's trick); its return value. Yields every `per_step` points."""
    prefix = [jac[0][2]]
    for p in jac[1:]:
        prefix.append(fmul(prefix[-1], p[2]))
        if len(prefix) % _PREFIX_PER_STEP == 0:
            yield False
    yield False
    inv = yield from inverse_steps(prefix[-1], P, _INVERSE_CHUNK)
    yield False  # the inversion's last run, apart from the first points
    out = [None] * len(jac)
    i = len(jac) - 1
    while i >= 0:
        zi = fmul(inv, prefix[i - 1]) if i else inv
        inv = fmul(inv, jac[i][2])
        zz = fmul(zi, zi)
        out[i] = (fmul(jac[i][0], zz) % P, fmul(fmul(jac[i][1], zz), zi) % P)
        if i % per_step == 0:
            yield False
        i -= 1
    return out


def to_affine(p):
    """(x, y) canonical, or None for infinity."""
    if p[2] % P == 0:
        return None
    z = inverse(p[2], P)
    zz = z * z % P
    return p[0] * zz % P, p[1] * zz * z % P
