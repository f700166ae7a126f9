"""dht_geometry.json: XOR distance and bucket index (DHT-1.x), key derivation (DHT-2.x).

Distance tests give two 32-byte ids, their distance as 32 bytes and the bucket
index of the second in the first's routing table (null for distance 0). The
pairs are built as ``b = a XOR d`` for the distances of interest: 0, 1, 2^255,
all ones, and every boundary ``2^i - 1``, ``2^i``, ``2^(i+1) - 1`` of a few
buckets, so an off-by-one between "bucket i holds [2^i, 2^(i+1))" and the
code that files an id shows up at once. Key derivation tests give the exact
SHA-256 input and the key for each of the five key types.
"""

import hashlib
from typing import Final, NamedTuple

from railgun_ref.conformance.builders.base import Vectors, pseudo_random, seed_for
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.dht.geometry import (
    KEY_BITS,
    KEY_BYTES,
    bucket_index,
    bucket_range,
    distance,
    id_at_distance,
)
from railgun_ref.dht.keys import KEY_DOMAIN, MAX_IDENT_SIZE, KeyType, derive_key, parse_key_type
from railgun_ref.identity.keys import Identity

NOTES: Final = {
    "Zero": "Distance 0: an id and itself; it has no bucket.",
    "Boundary": "A distance at the edge of a bucket: 2^i - 1, 2^i or 2^(i+1) - 1.",
    "TopBit": "Ids that differ in their most significant bit (bucket 255).",
    "Symmetric": "The same pair as another test, in the other order.",
    "Random": "Two unrelated ids.",
    "KeyType": "One of the five key types of DHT-2.1.",
    "EmptyIdent": "An empty ident.",
    "IdentLimit": "An ident at or over the 64-byte limit of DHT-2.2.",
    "DomainSeparation": "The same ident under two key types gives two unrelated keys.",
    "UnknownKeyType": "A key type number DHT-2.1 does not define.",
}

HEADER: Final = [
    "DHT geometry (DHT-1.x) and key derivation (DHT-2.x).",
    "Ids and keys are 32 bytes, read as unsigned big-endian integers. 'distance' is",
    "a XOR b as 32 bytes; 'bucketIndex' is bit_length(distance) - 1, null for",
    "distance 0: bucket i holds the distances 2^i <= d < 2^(i+1).",
    "Key derivation: key = SHA-256(domain || type name || 0x00 || ident), where",
    "'domain' is 'railgun/v1/dht-key' 0x00 and the type name is ASCII. 'input' is the",
    "exact SHA-256 input. 'keyType' is the wire number (record field 0). Invalid",
    "tests name the code a receiver reports for a record carrying that type or ident.",
]


class _PairCase(NamedTuple):
    """Two ids whose distance and bucket index the reference computes."""

    a: bytes
    b: bytes
    comment: str
    flags: tuple[str, ...]
    clause: str


_A: Final = hashlib.sha256(seed_for("dht_geometry/a")).digest()
_B: Final = hashlib.sha256(seed_for("dht_geometry/b")).digest()
_ZERO: Final = bytes(KEY_BYTES)


def _at(d: int, comment: str, flags: tuple[str, ...] = ("Boundary",)) -> _PairCase:
    """`_A` and the id at distance `d` from it."""
    return _PairCase(_A, id_at_distance(_A, d), comment, flags, "DHT-1.3")


def _bucket_edges(i: int) -> tuple[_PairCase, ...]:
    """The distances 2^i - 1, 2^i and 2^(i+1) - 1, at the edges of buckets i - 1 and i."""
    edges = (
        ((1 << i) - 1, f"2^{i} - 1"),
        (1 << i, f"2^{i}"),
        ((1 << (i + 1)) - 1, f"2^{i + 1} - 1"),
    )
    return tuple(_at(d, f"distance {what}: bucket {d.bit_length() - 1}") for d, what in edges)


def _random_pair(n: int) -> _PairCase:
    x = pseudo_random(f"dht_geometry/x{n}", KEY_BYTES)
    y = pseudo_random(f"dht_geometry/y{n}", KEY_BYTES)
    return _PairCase(x, y, f"random pair {n}", ("Random",), "DHT-1.2")


DISTANCE_CASES: Final = (
    _PairCase(_A, _A, "an id and itself: distance 0, no bucket", ("Zero",), "DHT-1.3"),
    _at(1, "distance 1: bucket 0"),
    _at(2, "distance 2: bucket 1"),
    _at(3, "distance 3: bucket 1"),
    *(case for i in (1, 7, 8, 31, 64, 128, 200, 254) for case in _bucket_edges(i)),
    _at(1 << 255, "distance 2^255: bucket 255", ("Boundary", "TopBit")),
    _at((1 << 256) - 1, "distance 2^256 - 1 (the complement): bucket 255", ("TopBit",)),
    _PairCase(_ZERO, b"\xff" * KEY_BYTES, "all zeros and all ones", ("TopBit",), "DHT-1.2"),
    _PairCase(
        _ZERO,
        bytes(KEY_BYTES - 1) + b"\x01",
        "ids differing in the last byte: big-endian, so bucket 0",
        ("Boundary",),
        "DHT-1.1",
    ),
    _PairCase(
        _ZERO,
        b"\x01" + bytes(KEY_BYTES - 1),
        "ids differing in the first byte's low bit: bucket 248",
        ("Boundary",),
        "DHT-1.1",
    ),
    _PairCase(_A, _B, "two unrelated ids", ("Random",), "DHT-1.2"),
    _PairCase(
        _B, _A, "the same pair swapped: the same distance", ("Random", "Symmetric"), "DHT-1.2"
    ),
    *(_random_pair(n) for n in range(3)),
)


def _distance_tests(v: Vectors) -> None:
    tests = v.group("DhtDistanceTest", keyBits=KEY_BITS)
    for case in DISTANCE_CASES:
        d = distance(case.a, case.b)
        index = bucket_index(case.a, case.b)
        assert index == (d.bit_length() - 1 if d else None)
        if index is not None:
            low, high = bucket_range(index)
            assert low <= d < high, case.comment
        v.test(
            tests,
            comment=case.comment,
            result="valid",
            clause=case.clause,
            flags=case.flags,
            a=case.a.hex(),
            b=case.b.hex(),
            distance=d.to_bytes(KEY_BYTES, "big").hex(),
            bucketIndex=index,
        )


class _KeyCase(NamedTuple):
    """A key type number and ident; `error` the code a receiver reports (None: a key)."""

    number: int
    ident: bytes
    comment: str
    flags: tuple[str, ...]
    clause: str
    error: ErrorCode | None = None


_NODE_ID: Final = Identity.from_seed(seed_for("dht_geometry/publisher")).node_id
_IDENTS: Final = {
    KeyType.PEER: (_NODE_ID, "the publisher's node id"),
    KeyType.ROOM: (b"room:design-review", "a room id"),
    KeyType.RENDEZVOUS: (pseudo_random("dht_geometry/rendezvous", 32), "a rendezvous id"),
    KeyType.CAPABILITY: (_NODE_ID, "the publisher's node id"),
    KeyType.BOOTSTRAP: (b"mainnet", "a network name"),
}

KEY_CASES: Final = (
    *(
        _KeyCase(
            int(key_type), ident, f"{key_type.name.lower()} key of {what}", ("KeyType",), "DHT-2.1"
        )
        for key_type, (ident, what) in _IDENTS.items()
    ),
    _KeyCase(
        int(KeyType.CAPABILITY),
        _NODE_ID,
        "the peer ident again under capability: another key (see the peer test)",
        ("KeyType", "DomainSeparation"),
        "DHT-2.1",
    ),
    _KeyCase(int(KeyType.ROOM), b"", "room key of an empty ident", ("EmptyIdent",), "DHT-2.2"),
    _KeyCase(
        int(KeyType.ROOM),
        pseudo_random("dht_geometry/ident64", 64),
        "room key of a 64-byte ident",
        ("IdentLimit",),
        "DHT-2.2",
    ),
    _KeyCase(
        int(KeyType.ROOM),
        pseudo_random("dht_geometry/ident65", 65),
        "a 65-byte ident is refused",
        ("IdentLimit",),
        "DHT-2.2",
        ErrorCode.TOO_LARGE,
    ),
    _KeyCase(
        int(KeyType.BOOTSTRAP),
        bytes(200),
        "a 200-byte ident is refused",
        ("IdentLimit",),
        "DHT-2.2",
        ErrorCode.TOO_LARGE,
    ),
    *(
        _KeyCase(
            number,
            b"x",
            f"key type {number} is not defined",
            ("UnknownKeyType",),
            "DHT-2.1",
            ErrorCode.MALFORMED,
        )
        for number in (0, 6, 255)
    ),
)


def _derived(case: _KeyCase) -> JsonObject:
    """The expected fields of `case`: the SHA-256 input and key, or the refusal code."""
    if case.error is not None:
        try:
            parse_key_type(case.number)
        except RemoteProtocolError as exc:
            assert exc.code is case.error
        else:
            assert case.error is ErrorCode.TOO_LARGE and len(case.ident) > MAX_IDENT_SIZE
        return {"expectedError": case.error.name}
    key_type = parse_key_type(case.number)
    data = KEY_DOMAIN + key_type.wire_name + b"\x00" + case.ident
    key = derive_key(key_type, case.ident)
    assert key == hashlib.sha256(data).digest()
    return {
        "keyTypeName": key_type.wire_name.decode("ascii"),
        "input": data.hex(),
        "key": key.hex(),
    }


def _key_tests(v: Vectors) -> None:
    tests = v.group("DhtKeyDerivationTest", domain=KEY_DOMAIN.hex())
    for case in KEY_CASES:
        v.test(
            tests,
            comment=case.comment,
            result="valid" if case.error is None else "invalid",
            clause=case.clause,
            flags=case.flags,
            keyType=case.number,
            ident=case.ident.hex(),
            **_derived(case),
        )


def build() -> JsonObject:
    v = Vectors("dht_geometry", "railgun-dht-geometry-v1", HEADER, NOTES)
    _distance_tests(v)
    _key_tests(v)
    return v.document()
