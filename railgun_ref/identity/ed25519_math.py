"""Pure-Python Edwards25519 arithmetic (RFC 8032 §5.1), for rules and vectors.

This is *not* used to sign or verify traffic (PyNaCl/libsodium does that). It
exists so that the verification rules of ID-2 can be stated and checked
without trusting any one library: it computes the small-order points that
ID-2.2/ID-2.3 exclude, and the conformance generator uses it to build the
edge-case signatures (non-canonical S, small-order keys and R, mixed-order
keys that only a cofactored check accepts) that different Ed25519 libraries
disagree on. Slow and variable-time by design; never give it secrets that
matter.
"""

import hashlib
from typing import Final

#: The field prime p = 2^255 - 19.
P: Final = 2**255 - 19
#: The prime order of the base point.
L: Final = 2**252 + 27742317777372353535851937790883648493
_D: Final = (-121665 * pow(121666, P - 2, P)) % P
_SQRT_M1: Final = pow(2, (P - 1) // 4, P)

#: A point in extended homogeneous coordinates (X, Y, Z, T) with x=X/Z, y=Y/Z, xy=T/Z.
Point = tuple[int, int, int, int]

IDENTITY: Final[Point] = (0, 1, 1, 0)


def _recover_x(y: int, sign: int) -> int | None:
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * _SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _from_affine(x: int, y: int) -> Point:
    return (x % P, y % P, 1, x * y % P)


_BY: Final = 4 * pow(5, P - 2, P) % P
_BX = _recover_x(_BY, 0)
assert _BX is not None
#: The base point B.
BASE: Final[Point] = _from_affine(_BX, _BY)


def add(p1: Point, p2: Point) -> Point:
    """Point addition (RFC 8032 §5.1.4, extended coordinates)."""
    a = (p1[1] - p1[0]) * (p2[1] - p2[0]) % P
    b = (p1[1] + p1[0]) * (p2[1] + p2[0]) % P
    c = 2 * p1[3] * p2[3] * _D % P
    d = 2 * p1[2] * p2[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def neg(p: Point) -> Point:
    return ((-p[0]) % P, p[1], p[2], (-p[3]) % P)


def mul(s: int, p: Point) -> Point:
    """Scalar multiplication by double-and-add (s >= 0)."""
    q = IDENTITY
    while s > 0:
        if s & 1:
            q = add(q, p)
        p = add(p, p)
        s >>= 1
    return q


def equal(p1: Point, p2: Point) -> bool:
    return (p1[0] * p2[2] - p2[0] * p1[2]) % P == 0 and (p1[1] * p2[2] - p2[1] * p1[2]) % P == 0


def encode(p: Point) -> bytes:
    """Canonical 32-byte encoding: y little-endian, sign of x in the top bit."""
    zinv = pow(p[2], P - 2, P)
    x, y = p[0] * zinv % P, p[1] * zinv % P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def decode(data: bytes, *, allow_non_canonical: bool = False) -> Point | None:
    """Decode 32 bytes to a point, or None if they are not one.

    With `allow_non_canonical`, a y of p or more is reduced mod p first (what a
    lax library does); otherwise it is refused, as ID-2.2 requires.
    """
    if len(data) != 32:
        return None
    value = int.from_bytes(data, "little")
    sign, y = value >> 255, value & ((1 << 255) - 1)
    if y >= P:
        if not allow_non_canonical:
            return None
        y -= P
    x = _recover_x(y, sign)
    if x is None:
        return None
    return _from_affine(x, y)


def has_small_order(p: Point) -> bool:
    """True if 8·p is the identity (the point lies in the torsion subgroup)."""
    return equal(mul(8, p), IDENTITY)


def torsion_points() -> list[Point]:
    """The eight points of order dividing 8, found deterministically."""
    y = 2
    while True:
        candidate = decode(int.to_bytes(y, 32, "little"))
        if candidate is not None:
            t = mul(L, candidate)  # kills the prime-order component
            if not equal(mul(4, t), IDENTITY):  # order exactly 8
                return [mul(k, t) for k in range(8)]
        y += 1


def small_order_y_values() -> frozenset[int]:
    """The y coordinates (mod p) of every small-order point."""
    out = set()
    for t in torsion_points():
        zinv = pow(t[2], P - 2, P)
        out.add(t[1] * zinv % P)
    return frozenset(out)


def _sha512_int(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def secret_scalar(seed: bytes) -> tuple[int, bytes]:
    """RFC 8032 §5.1.5: the clamped scalar a and the nonce prefix from a seed."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def challenge(r_enc: bytes, a_enc: bytes, message: bytes) -> int:
    """k = SHA-512(R || A || M) mod L."""
    return _sha512_int(r_enc, a_enc, message) % L


def sign(seed: bytes, message: bytes) -> bytes:
    """RFC 8032 signing; returns R || S."""
    a, prefix = secret_scalar(seed)
    a_enc = encode(mul(a, BASE))
    r = _sha512_int(prefix, message) % L
    r_enc = encode(mul(r, BASE))
    s = (r + challenge(r_enc, a_enc, message) * a) % L
    return r_enc + int.to_bytes(s, 32, "little")


def verify_equation(
    public_key: bytes, message: bytes, signature: bytes, *, cofactored: bool
) -> bool:
    """The bare verification equation, with none of ID-2's extra rules.

    Cofactorless: `[S]B == R + [k]A`. Cofactored: `[8][S]B == [8]R + [8][k]A`.
    Points are decoded leniently and S is not range-checked, so the result
    shows what a library that checks only the equation would answer.
    """
    a_pt = decode(public_key, allow_non_canonical=True)
    r_pt = decode(signature[:32], allow_non_canonical=True)
    if a_pt is None or r_pt is None or len(signature) != 64:
        return False
    s = int.from_bytes(signature[32:], "little")
    k = challenge(signature[:32], public_key, message)
    lhs = mul(s, BASE)
    rhs = add(r_pt, mul(k, a_pt))
    if cofactored:
        return equal(mul(8, lhs), mul(8, rhs))
    return equal(lhs, rhs)
