"""Identities, node ids, Ed25519 verification rules and the key file (ID-1.x, ID-2.x, ID-3.1)."""

import hashlib
from itertools import count

import pytest

from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.identity import ed25519_math as ed
from railgun_ref.identity.keyfile import KEYFILE_TAG, KeyFileError, dump_identity, load_identity
from railgun_ref.identity.keys import Identity, node_id_of, public_key_problem, verify

# RFC 8032 §7.1 TEST 1 and TEST 2.
RFC_SEED_1 = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PK_1 = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIG_1 = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
RFC_SEED_2 = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC_PK_2 = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC_SIG_2 = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)

SEED = bytes(range(32))
MESSAGE = b"rail gun"


def le(n: int) -> bytes:
    return n.to_bytes(32, "little")


# ------------------------------------------------------------------------------ ID-1.x


def test_rfc8032_vectors() -> None:
    """ID-1.1/ID-1.2: keys and signatures are plain RFC 8032 Ed25519."""
    one, two = Identity.from_seed(RFC_SEED_1), Identity.from_seed(RFC_SEED_2)
    assert one.public_key == RFC_PK_1
    assert two.public_key == RFC_PK_2
    assert one.sign(b"") == RFC_SIG_1
    assert two.sign(b"\x72") == RFC_SIG_2
    assert verify(RFC_PK_1, b"", RFC_SIG_1)
    assert verify(RFC_PK_2, b"\x72", RFC_SIG_2)
    # the pure-Python curve code used for vectors agrees with libsodium
    assert ed.sign(RFC_SEED_1, b"") == RFC_SIG_1
    assert ed.encode(ed.mul(ed.secret_scalar(RFC_SEED_2)[0], ed.BASE)) == RFC_PK_2


def test_node_id_is_sha256_of_public_key() -> None:
    """ID-1.1: NodeId = SHA-256(public key), 32 bytes."""
    ident = Identity.from_seed(SEED)
    assert ident.node_id == hashlib.sha256(ident.public_key).digest()
    assert node_id_of(RFC_PK_1) == hashlib.sha256(RFC_PK_1).digest()
    assert len(ident.node_id) == 32


def test_sign_verify_round_trip_and_determinism() -> None:
    """ID-1.2: a signature verifies under its key; signing is deterministic."""
    ident = Identity.from_seed(SEED)
    signature = ident.sign(MESSAGE)
    assert len(signature) == 64
    assert signature == Identity.from_seed(SEED).sign(MESSAGE)
    assert verify(ident.public_key, MESSAGE, signature)


def test_generate_uses_only_the_injected_byte_source() -> None:
    """ID-1.1: a generated identity is a function of the injected bytes alone."""
    asked: list[int] = []

    def source(n: int) -> bytes:
        asked.append(n)
        return bytes([7]) * n

    first = Identity.generate(source)
    second = Identity.generate(source)
    assert asked == [32, 32]
    assert first == second == Identity.from_seed(bytes([7]) * 32)
    assert Identity.generate(lambda n: bytes([8]) * n) != first


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_seed_of_wrong_size_is_a_local_error(size: int) -> None:
    """ID-1.1: a seed is 32 bytes; anything else is a caller bug."""
    with pytest.raises(LocalProtocolError):
        Identity.from_seed(b"\x01" * size)
    with pytest.raises(LocalProtocolError):
        Identity.generate(lambda n: b"\x01" * size)


def test_repr_does_not_leak_the_seed() -> None:
    """ID-3.1: the secret seed never appears in an identity's repr (logs, notebooks)."""
    ident = Identity.from_seed(SEED)
    assert SEED.hex() not in repr(ident)
    assert repr(SEED) not in repr(ident)
    assert repr(ident.public_key) in repr(ident)


# ------------------------------------------------------------------------------ ID-2.x


def test_verify_rejects_wrong_message_and_wrong_key() -> None:
    """ID-2.5: a signature verifies only for its message and its key."""
    ident = Identity.from_seed(SEED)
    signature = ident.sign(MESSAGE)
    assert not verify(ident.public_key, MESSAGE + b"!", signature)
    assert not verify(ident.public_key, b"", signature)
    assert not verify(Identity.from_seed(RFC_SEED_1).public_key, MESSAGE, signature)


def test_verify_rejects_every_single_bit_flip() -> None:
    """ID-2.5: flipping any one bit of signature, message or key breaks verification."""
    ident = Identity.from_seed(SEED)
    signature, key = ident.sign(MESSAGE), ident.public_key
    for bit in range(len(signature) * 8):
        flipped = bytearray(signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not verify(key, MESSAGE, bytes(flipped)), f"signature bit {bit}"
    for bit in range(len(MESSAGE) * 8):
        flipped = bytearray(MESSAGE)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not verify(key, bytes(flipped), signature), f"message bit {bit}"
    for bit in range(len(key) * 8):
        flipped = bytearray(key)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not verify(bytes(flipped), MESSAGE, signature), f"key bit {bit}"


@pytest.mark.parametrize(
    ("key_size", "sig_size"), [(31, 64), (33, 64), (0, 64), (32, 63), (32, 65), (32, 0)]
)
def test_verify_rejects_wrong_lengths(key_size: int, sig_size: int) -> None:
    """ID-2.1: a public key is 32 bytes and a signature 64 bytes, exactly."""
    ident = Identity.from_seed(SEED)
    signature = ident.sign(MESSAGE)
    key = (ident.public_key + b"\x00")[:key_size] if key_size else b""
    sig = (signature + b"\x00")[:sig_size] if sig_size else b""
    assert not verify(key, MESSAGE, sig)
    if key_size != 32:
        assert public_key_problem(key) is not None


def test_verify_rejects_s_plus_l() -> None:
    """ID-2.4: S MUST be < L; S + L satisfies the bare equation but is refused."""
    ident = Identity.from_seed(SEED)
    signature = ident.sign(MESSAGE)
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + le(s + ed.L)
    assert ed.verify_equation(ident.public_key, MESSAGE, malleated, cofactored=False)
    assert not verify(ident.public_key, MESSAGE, malleated)


def test_torsion_points_are_the_eight_small_order_points() -> None:
    """ID-2.2: the excluded set is the 8-torsion: 8 distinct points, 5 distinct y values."""
    points = ed.torsion_points()
    encodings = {ed.encode(p) for p in points}
    assert len(encodings) == 8
    assert all(ed.has_small_order(p) for p in points)
    orders = sorted(
        next(n for n in (1, 2, 4, 8) if ed.equal(ed.mul(n, p), ed.IDENTITY)) for p in points
    )
    assert orders == [1, 2, 4, 4, 8, 8, 8, 8]
    assert len(ed.small_order_y_values()) == 5
    assert not ed.has_small_order(ed.BASE)


@pytest.mark.parametrize("index", range(8))
def test_small_order_public_keys_are_refused(index: int) -> None:
    """ID-2.2: a public key of small order is refused, even when the equation holds."""
    torsion = ed.torsion_points()[index]
    key = ed.encode(torsion)
    assert public_key_problem(key) == "public key has small order"
    # With A of small order, R = rB and S = r satisfy [S]B = R + [k]A whenever kA = 0;
    # for the identity key that is every message.
    r = 12345
    signature = ed.encode(ed.mul(r, ed.BASE)) + le(r)
    if index == 0:
        assert ed.verify_equation(key, MESSAGE, signature, cofactored=False)
    assert not verify(key, MESSAGE, signature)


def test_small_order_key_with_x_sign_bit_is_refused() -> None:
    """ID-2.2: the y test covers both x signs (and the invalid "negative zero" encodings)."""
    for point in ed.torsion_points():
        flipped = bytearray(ed.encode(point))
        flipped[31] ^= 0x80
        assert public_key_problem(bytes(flipped)) is not None
        assert not verify(bytes(flipped), MESSAGE, bytes(64))


@pytest.mark.parametrize("offset", [0, 1, 2, 5, 18])
@pytest.mark.parametrize("sign", [0, 1])
def test_non_canonical_public_key_is_refused(offset: int, sign: int) -> None:
    """ID-2.2: a public key whose y is >= p is refused (no reduction mod p)."""
    key = le(ed.P + offset | sign << 255)
    assert public_key_problem(key) is not None
    assert not verify(key, MESSAGE, Identity.from_seed(SEED).sign(MESSAGE))


def test_non_canonical_key_equivalent_to_a_valid_point_is_refused() -> None:
    """ID-2.2: y + p, which a lax decoder reduces to a valid point, is still refused."""
    for offset in range(19):
        if ed.decode(le(ed.P + offset), allow_non_canonical=True) is None:
            continue
        reduced = ed.decode(le(offset))
        assert reduced is not None
        assert public_key_problem(le(ed.P + offset)) == (
            "public key is not canonically encoded (y >= p)"
        )


def _signature_with_r(seed: bytes, r_enc: bytes, message: bytes) -> bytes:
    """S = k·a with the given R encoding: valid under the bare equation iff R decodes to 0."""
    a, _ = ed.secret_scalar(seed)
    a_enc = ed.encode(ed.mul(a, ed.BASE))
    k = ed.challenge(r_enc, a_enc, message)
    return r_enc + le(k * a % ed.L)


def test_small_order_r_is_refused() -> None:
    """ID-2.3: R MUST NOT be a small-order point, even if the equation holds."""
    ident = Identity.from_seed(SEED)
    identity_r = ed.encode(ed.IDENTITY)
    signature = _signature_with_r(SEED, identity_r, MESSAGE)
    assert ed.verify_equation(ident.public_key, MESSAGE, signature, cofactored=False)
    assert not verify(ident.public_key, MESSAGE, signature)
    for point in ed.torsion_points():
        assert not verify(ident.public_key, MESSAGE, ed.encode(point) + signature[32:])


def test_non_canonical_small_order_r_is_refused() -> None:
    """ID-2.3: R = y + p for a small-order y is refused too."""
    ident = Identity.from_seed(SEED)
    r_enc = le(ed.P + 1)  # decodes leniently to the identity point
    signature = _signature_with_r(SEED, r_enc, MESSAGE)
    assert ed.verify_equation(ident.public_key, MESSAGE, signature, cofactored=False)
    assert not verify(ident.public_key, MESSAGE, signature)


def _mixed_order_signature(message: bytes) -> tuple[bytes, bytes, int]:
    """(A', R||S, k) with A' = A + T8 and S = r + k·a for the secret scalar a of SEED."""
    a, _ = ed.secret_scalar(SEED)
    t8 = next(p for p in ed.torsion_points() if not ed.equal(ed.mul(4, p), ed.IDENTITY))
    mixed = ed.encode(ed.add(ed.mul(a, ed.BASE), t8))
    r = int.from_bytes(hashlib.sha512(b"nonce" + message).digest(), "little") % ed.L
    r_enc = ed.encode(ed.mul(r, ed.BASE))
    k = ed.challenge(r_enc, mixed, message)
    return mixed, r_enc + le((r + k * a) % ed.L), k


def test_mixed_order_key_accepted_iff_cofactorless_equation_holds() -> None:
    """ID-2.2/ID-2.5: a mixed-order key is acceptable; [S]B - [k]A' = R - [k]T is R iff 8 | k."""
    found: dict[bool, tuple[bytes, bytes, bytes]] = {}
    for i in count():
        message = b"mixed %d" % i
        mixed, signature, k = _mixed_order_signature(message)
        found.setdefault(k % 8 == 0, (mixed, message, signature))
        if len(found) == 2:
            break
    mixed, message, signature = found[True]
    assert public_key_problem(mixed) is None
    assert not ed.has_small_order(ed.decode(mixed) or ed.IDENTITY)
    assert verify(mixed, message, signature)
    mixed, message, signature = found[False]
    assert ed.verify_equation(mixed, message, signature, cofactored=True)
    assert not verify(mixed, message, signature)


# ------------------------------------------------------------------------------ ID-3.1


def test_keyfile_round_trip_and_exact_format() -> None:
    """ID-3.1: the file is the tag, a space, 64 hex digits of the seed and a newline."""
    ident = Identity.from_seed(SEED)
    data = dump_identity(ident)
    assert data == f"{KEYFILE_TAG} {SEED.hex()}\n".encode("ascii")
    loaded = load_identity(data)
    assert loaded == ident
    assert loaded.node_id == ident.node_id


def test_keyfile_without_trailing_newline_loads() -> None:
    """ID-3.1: a trailing newline is optional on load (editors strip it)."""
    ident = Identity.from_seed(SEED)
    assert load_identity(dump_identity(ident).rstrip(b"\n")) == ident


KEYFILE_ERRORS: dict[str, bytes] = {
    "empty": b"",
    "not ascii": b"railgun-identity-v1 \xff\n",
    "utf8 not ascii": "railgun-identity-v1 é\n".encode(),
    "wrong tag": f"railgun-identity-v2 {SEED.hex()}\n".encode(),
    "tag prefix only": f"railgun-identity {SEED.hex()}\n".encode(),
    "no separator": f"{KEYFILE_TAG}{SEED.hex()}\n".encode(),
    "tag only": f"{KEYFILE_TAG}\n".encode(),
    "not hex": f"{KEYFILE_TAG} {'zz' * 32}\n".encode(),
    "odd hex": f"{KEYFILE_TAG} {SEED.hex()[:-1]}\n".encode(),
    "short seed": f"{KEYFILE_TAG} {SEED[:31].hex()}\n".encode(),
    "long seed": f"{KEYFILE_TAG} {(SEED + b'x').hex()}\n".encode(),
    "raw binary seed": SEED,
}


@pytest.mark.parametrize("data", KEYFILE_ERRORS.values(), ids=KEYFILE_ERRORS.keys())
def test_keyfile_errors(data: bytes) -> None:
    """ID-3.1: a file that is not a valid identity raises KeyFileError (a ValueError)."""
    with pytest.raises(KeyFileError):
        load_identity(data)
    assert issubclass(KeyFileError, ValueError)
