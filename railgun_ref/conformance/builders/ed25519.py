"""ed25519.json: signatures at the edges where Ed25519 libraries disagree (ID-2.x).

Edge cases are built with the pure-Python arithmetic of `ed25519_math`:

* S + L: same [S]B, so only the S < L check (ID-2.4) refuses it;
* small-order A with R = [r]B, S = r and a message whose k kills A: the bare
  equation holds for every rule but ID-2.2's;
* small-order R = identity with S = k·a: the cofactorless equation holds;
* mixed-order A' = A + T (T of order 8): signing with a gives
  [S]B = R + [k]A, which equals R + [k]A' exactly when 8 divides k, so one
  message verifies under every rule and another only under the cofactored one.

Each test records both bare equations; the reference verdict must match the
result, and the test suite also checks PyNaCl/libsodium agrees.
"""

import hashlib
from collections.abc import Callable
from typing import Final

from railgun_ref.conformance.builders.base import Vectors, flip, pseudo_random, seed_for
from railgun_ref.conformance.common import JsonObject
from railgun_ref.identity import ed25519_math as ed
from railgun_ref.identity.keys import Identity, verify

NOTES: Final = {
    "Valid": "A signature made by RFC 8032 signing.",
    "ModifiedMessage": "The message differs from the one signed.",
    "ModifiedSignature": "A bit of R or S flipped.",
    "NonCanonicalS": "S >= L; [S]B is unchanged, so a library that skips the S < L check"
    " accepts it (signature malleability).",
    "SmallOrderPublicKey": "A has order 1, 2, 4 or 8; the signature satisfies the bare equation"
    " where A decodes, so a library without the small-order check accepts it.",
    "NonCanonicalPublicKey": "A's encoded y is >= p, or x = 0 carries a sign bit.",
    "InvalidPublicKey": "A's 32 bytes decode to no curve point.",
    "SmallOrderR": "R has small order; built so the bare equation holds where possible.",
    "NonCanonicalR": "R's encoded y is >= p.",
    "MixedOrderPublicKey": "A = A0 + T, A0 of prime order, T of order 8: accepted by ID-2.2.",
    "CofactoredOnly": "Only the cofactored equation holds: libraries that verify with the"
    " cofactor (e.g. ZIP-215 rules) accept, this spec refuses.",
    "WrongLength": "A public key that is not 32 bytes or a signature that is not 64.",
}

HEADER: Final = [
    "Ed25519 verification under the rules ID-2.1..ID-2.5 of paper/spec.md:",
    "canonical A not of small order (mixed order accepted), R not of small order,",
    "S < L, and the cofactorless equation compared on encodings.",
    "Each test also records what the bare equations say: 'cofactorless' is",
    "[S]B == R + [k]A and 'cofactored' is [8][S]B == [8]R + [8][k]A, with points",
    "decoded leniently (y >= p reduced; x = 0 with a sign bit refused) and S not",
    "range-checked. Where an equation holds but the result is invalid, a library",
    "that checks only that equation accepts what this spec refuses.",
]

#: (message, signature, comment, clause, flags) of one test.
_Case = tuple[bytes, bytes, str, str, tuple[str, ...]]


def _scalar(label: str, message: bytes) -> int:
    digest = hashlib.sha512(label.encode("ascii") + message).digest()
    return int.from_bytes(digest, "little") % ed.L


def _sig(r_point: ed.Point, s: int) -> bytes:
    return ed.encode(r_point) + s.to_bytes(32, "little")


def sign_as(a: int, a_enc: bytes, message: bytes, *, label: str) -> bytes:
    """RFC 8032-style signing with scalar `a` under an arbitrary public key encoding."""
    r = _scalar(label, message)
    r_enc = ed.encode(ed.mul(r, ed.BASE))
    s = (r + ed.challenge(r_enc, a_enc, message) * a) % ed.L
    return r_enc + s.to_bytes(32, "little")


def order(point: ed.Point) -> int:
    """The order of a point: 1, 2, 4, 8, or L for anything else."""
    for n in (1, 2, 4, 8):
        if ed.equal(ed.mul(n, point), ed.IDENTITY):
            return n
    return ed.L


def order8_point() -> ed.Point:
    return next(t for t in ed.torsion_points() if order(t) == 8)


def _find_message(prefix: str, good: Callable[[bytes], bool]) -> bytes:
    """The first of ``prefix-0``, ``prefix-1``, ... for which `good` holds."""
    for i in range(10_000):
        message = f"{prefix}-{i}".encode("ascii")
        if good(message):
            return message
    raise AssertionError(f"no message found for {prefix}")


def first_off_curve_y() -> int:
    """The smallest y >= 2 for which no x is on the curve."""
    y = 2
    while ed.decode(y.to_bytes(32, "little")) is not None:
        y += 1
    return y


def _ordinary_key_cases(seed: bytes) -> list[_Case]:
    key = Identity.from_seed(seed)
    cases: list[_Case] = []
    for message in (b"", b"abc", bytes(64), pseudo_random("ed25519/long", 200)):
        signature = key.sign(message)
        assert signature == ed.sign(seed, message)  # PyNaCl and RFC 8032 arithmetic agree
        cases.append((message, signature, f"signature over {len(message)} bytes", "ID-2.5",
                      ("Valid",)))  # fmt: skip
    message = b"abc"
    good = key.sign(message)
    s = int.from_bytes(good[32:], "little")
    mod: Final = ("ModifiedMessage",)
    cases += [
        (b"abd", good, "message changed in its last byte", "ID-2.5", mod),
        (b"ab", good, "message truncated", "ID-2.5", mod),
        (b"abc\x00", good, "message with a byte appended", "ID-2.5", mod),
        (message, good[:32] + (s + ed.L).to_bytes(32, "little"), "S replaced by S + L",
         "ID-2.4", ("NonCanonicalS",)),
        (message, good[:32] + (s + 2 * ed.L).to_bytes(32, "little"), "S replaced by S + 2L",
         "ID-2.4", ("NonCanonicalS",)),
    ]  # fmt: skip
    for bit, where in ((0, "R bit 0"), (255, "R's sign bit"), (256, "S bit 0"),
                       (509, "S bit 253"), (511, "S bit 255")):  # fmt: skip
        cases.append((message, flip(good, bit), f"{where} flipped", "ID-2.5",
                      ("ModifiedSignature",)))  # fmt: skip
    return cases + _odd_r_cases(seed, message, good)


def _odd_r_cases(seed: bytes, message: bytes, good: bytes) -> list[_Case]:
    """Signatures over `message` whose R has small or mixed order, and wrong lengths."""
    a, _ = ed.secret_scalar(seed)
    pk = Identity.from_seed(seed).public_key

    def k_times_a(r_enc: bytes) -> bytes:
        k = ed.challenge(r_enc, pk, message)
        return r_enc + (k * a % ed.L).to_bytes(32, "little")

    t8 = order8_point()
    r = _scalar("ed25519/mixed-r", message)
    r_mixed = ed.add(ed.mul(r, ed.BASE), t8)
    k = ed.challenge(ed.encode(r_mixed), pk, message)
    return [
        (message, k_times_a(ed.encode(ed.IDENTITY)),
         "R = identity and S = k*a: the cofactorless equation holds", "ID-2.3", ("SmallOrderR",)),
        (message, k_times_a(ed.encode(t8)), "R of order 8 and S = k*a", "ID-2.3",
         ("SmallOrderR", "CofactoredOnly")),
        (message, k_times_a((ed.P + 1).to_bytes(32, "little")),
         "R = identity encoded with y = p + 1, S = k*a", "ID-2.3",
         ("SmallOrderR", "NonCanonicalR")),
        (message, _sig(r_mixed, (r + k * a) % ed.L),
         "R = [r]B + T with T of order 8, S = r + k*a", "ID-2.5", ("CofactoredOnly",)),
        (message, bytes(64), "all-zero signature (R has order 4)", "ID-2.3", ("SmallOrderR",)),
        (message, b"", "signature of 0 bytes", "ID-2.1", ("WrongLength",)),
        (message, good[:63], "signature of 63 bytes", "ID-2.1", ("WrongLength",)),
        (message, good + b"\x00", "signature of 65 bytes", "ID-2.1", ("WrongLength",)),
    ]  # fmt: skip


def _mixed_key(seed: bytes) -> tuple[bytes, list[_Case]]:
    a, _ = ed.secret_scalar(seed)
    mixed = ed.encode(ed.add(ed.mul(a, ed.BASE), order8_point()))

    def sign(message: bytes) -> bytes:
        return sign_as(a, mixed, message, label="ed25519/mixed")

    def k_mod8(message: bytes) -> int:
        return ed.challenge(sign(message)[:32], mixed, message) % 8

    m0 = _find_message("mixed", lambda m: k_mod8(m) == 0)
    m1 = _find_message("mixed", lambda m: k_mod8(m) != 0)
    flags = "MixedOrderPublicKey", "CofactoredOnly"
    return mixed, [
        (m0, sign(m0), "k = 0 mod 8: valid under every rule", "ID-2.2", (flags[0], "Valid")),
        (m1, sign(m1), f"k = {k_mod8(m1)} mod 8: only the cofactored equation holds", "ID-2.5",
         flags),
    ]  # fmt: skip


def _small_order_keys() -> list[tuple[bytes, str, tuple[str, ...]]]:
    keys = [(ed.encode(t), f"point of order {order(t)}", ()) for t in ed.torsion_points()]
    non_canonical = ("NonCanonicalPublicKey",)
    return [
        *keys,
        ((ed.P + 1).to_bytes(32, "little"), "identity encoded with y = p + 1", non_canonical),
        (ed.P.to_bytes(32, "little"), "order-4 point encoded with y = p", non_canonical),
        (bytes.fromhex("01" + "00" * 30 + "80"), "identity with the sign bit set", non_canonical),
    ]


def _small_order_case(index: int, small: bytes, what: str, extra: tuple[str, ...]) -> _Case:
    point = ed.decode(small, allow_non_canonical=True)
    n = 1 if point is None else order(point)
    r = _scalar(f"ed25519/small-{index}", b"")
    r_enc = ed.encode(ed.mul(r, ed.BASE))
    message = _find_message(
        f"small-order-{index}", lambda m: ed.challenge(r_enc, small, m) % n == 0
    )
    return (message, r_enc + r.to_bytes(32, "little"),
            f"{what}; R = [r]B, S = r and k = 0 mod {n}", "ID-2.2",
            ("SmallOrderPublicKey", *extra))  # fmt: skip


#: (public key, key comment, the tests under that key) of one test group.
_Group = tuple[bytes, str, list[_Case]]


def _verify_group(v: Vectors, public_key: bytes, comment: str, cases: list[_Case]) -> None:
    tests = v.group("Ed25519VerifyTest", publicKey=public_key.hex(), keyComment=comment)
    for message, signature, test_comment, clause, flags in cases:
        accepted = verify(public_key, message, signature)
        assert accepted == (flags[-1] == "Valid"), test_comment
        v.test(
            tests,
            comment=test_comment,
            result="valid" if accepted else "invalid",
            clause=clause,
            flags=flags,
            msg=message.hex(),
            sig=signature.hex(),
            cofactorless=ed.verify_equation(public_key, message, signature, cofactored=False),
            cofactored=ed.verify_equation(public_key, message, signature, cofactored=True),
        )


def _bad_key_groups(key: Identity) -> list[_Group]:
    """Keys refused whatever the signature: non-canonical, off the curve, wrong length."""
    signed_elsewhere = key.sign(b"abc")
    groups: list[_Group] = []
    for c in range(2, 19):
        candidate = (ed.P + c).to_bytes(32, "little")
        point = ed.decode(candidate, allow_non_canonical=True)
        if point is not None and not ed.has_small_order(point):
            groups.append((candidate, f"y = p + {c}, a non-canonical encoding of y = {c}", [
                (b"abc", signed_elsewhere, "non-canonical key of a point not of small order",
                 "ID-2.2", ("NonCanonicalPublicKey",)),
            ]))  # fmt: skip
            break
    y = first_off_curve_y()
    groups.append((y.to_bytes(32, "little"), f"y = {y}: no x satisfies the curve equation", [
        (b"abc", signed_elsewhere, "public key that is not a curve point", "ID-2.2",
         ("InvalidPublicKey",)),
    ]))  # fmt: skip
    for size in (31, 33):
        wrong = (key.public_key + b"\x00")[:size]
        groups.append((wrong, f"public key of {size} bytes", [
            (b"abc", signed_elsewhere, f"public key of {size} bytes", "ID-2.1", ("WrongLength",)),
        ]))  # fmt: skip
    return groups


def build() -> JsonObject:
    v = Vectors("ed25519", "EDDSA-Ed25519-railgun-ID-2", HEADER, NOTES)
    seed = seed_for("ed25519/key-1")
    key = Identity.from_seed(seed)
    _verify_group(v, key.public_key, f"the key of seed {seed.hex()}", _ordinary_key_cases(seed))
    seed = seed_for("ed25519/mixed")
    mixed, cases = _mixed_key(seed)
    _verify_group(v, mixed, f"A0 + T: A0 the key of seed {seed.hex()}, T of order 8", cases)
    for index, (small, what, extra) in enumerate(_small_order_keys()):
        case = _small_order_case(index, small, what, extra)
        _verify_group(v, small, f"small-order key: {what}", [case])
    for public_key, comment, group_cases in _bad_key_groups(key):
        _verify_group(v, public_key, comment, group_cases)
    return v.document()
