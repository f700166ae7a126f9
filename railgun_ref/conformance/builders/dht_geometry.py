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
from typing import Final

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


def _distance_tests(v: Vectors) -> None:
    tests = v.group("DhtDistanceTest", keyBits=KEY_BITS)
    a = hashlib.sha256(seed_for("dht_geometry/a")).digest()

    def add(x: bytes, y: bytes, comment: str, flags: tuple[str, ...], clause: str) -> None:
        d = distance(x, y)
        index = bucket_index(x, y)
        assert index == (d.bit_length() - 1 if d else None)
        if index is not None:
            low, high = bucket_range(index)
            assert low <= d < high, comment
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause=clause,
            flags=flags,
            a=x.hex(),
            b=y.hex(),
            distance=d.to_bytes(KEY_BYTES, "big").hex(),
            bucketIndex=index,
        )

    add(a, a, "an id and itself: distance 0, no bucket", ("Zero",), "DHT-1.3")
    add(a, id_at_distance(a, 1), "distance 1: bucket 0", ("Boundary",), "DHT-1.3")
    add(a, id_at_distance(a, 2), "distance 2: bucket 1", ("Boundary",), "DHT-1.3")
    add(a, id_at_distance(a, 3), "distance 3: bucket 1", ("Boundary",), "DHT-1.3")
    for i in (1, 7, 8, 31, 64, 128, 200, 254):
        for d, what in (
            ((1 << i) - 1, f"2^{i} - 1"),
            (1 << i, f"2^{i}"),
            ((1 << (i + 1)) - 1, f"2^{i + 1} - 1"),
        ):
            index = d.bit_length() - 1
            add(
                a,
                id_at_distance(a, d),
                f"distance {what}: bucket {index}",
                ("Boundary",),
                "DHT-1.3",
            )
    add(
        a,
        id_at_distance(a, 1 << 255),
        "distance 2^255: bucket 255",
        ("Boundary", "TopBit"),
        "DHT-1.3",
    )
    add(
        a,
        id_at_distance(a, (1 << 256) - 1),
        "distance 2^256 - 1 (the complement): bucket 255",
        ("TopBit",),
        "DHT-1.3",
    )
    zero, ones = bytes(KEY_BYTES), b"\xff" * KEY_BYTES
    add(zero, ones, "all zeros and all ones", ("TopBit",), "DHT-1.2")
    last = bytes(KEY_BYTES - 1) + b"\x01"
    first = b"\x01" + bytes(KEY_BYTES - 1)
    add(
        zero,
        last,
        "ids differing in the last byte: big-endian, so bucket 0",
        ("Boundary",),
        "DHT-1.1",
    )
    add(
        zero,
        first,
        "ids differing in the first byte's low bit: bucket 248",
        ("Boundary",),
        "DHT-1.1",
    )
    b = hashlib.sha256(seed_for("dht_geometry/b")).digest()
    add(a, b, "two unrelated ids", ("Random",), "DHT-1.2")
    add(b, a, "the same pair swapped: the same distance", ("Random", "Symmetric"), "DHT-1.2")
    for n in range(3):
        x = pseudo_random(f"dht_geometry/x{n}", KEY_BYTES)
        y = pseudo_random(f"dht_geometry/y{n}", KEY_BYTES)
        add(x, y, f"random pair {n}", ("Random",), "DHT-1.2")


def _key_tests(v: Vectors) -> None:
    tests = v.group("DhtKeyDerivationTest", domain=KEY_DOMAIN.hex())
    node_id = Identity.from_seed(seed_for("dht_geometry/publisher")).node_id

    def add(
        number: int,
        ident: bytes,
        comment: str,
        flags: tuple[str, ...],
        clause: str,
        error: ErrorCode | None = None,
    ) -> None:
        number = int(number)
        fields: JsonObject = {"keyType": number, "ident": ident.hex()}
        if error is None:
            key_type = parse_key_type(number)
            data = KEY_DOMAIN + key_type.wire_name + b"\x00" + ident
            key = derive_key(key_type, ident)
            assert key == hashlib.sha256(data).digest()
            fields |= {
                "keyTypeName": key_type.wire_name.decode("ascii"),
                "input": data.hex(),
                "key": key.hex(),
            }
            result = "valid"
        else:
            try:
                parse_key_type(number)
            except RemoteProtocolError as exc:
                assert exc.code is error
            else:
                assert error is ErrorCode.TOO_LARGE and len(ident) > MAX_IDENT_SIZE
            fields["expectedError"] = error.name
            result = "invalid"
        v.test(tests, comment=comment, result=result, clause=clause, flags=flags, **fields)

    idents = {
        KeyType.PEER: (node_id, "the publisher's node id"),
        KeyType.ROOM: (b"room:design-review", "a room id"),
        KeyType.RENDEZVOUS: (pseudo_random("dht_geometry/rendezvous", 32), "a rendezvous id"),
        KeyType.CAPABILITY: (node_id, "the publisher's node id"),
        KeyType.BOOTSTRAP: (b"mainnet", "a network name"),
    }
    for key_type, (ident, what) in idents.items():
        add(key_type, ident, f"{key_type.name.lower()} key of {what}", ("KeyType",), "DHT-2.1")
    add(
        KeyType.CAPABILITY,
        node_id,
        "the peer ident again under capability: another key (see the peer test)",
        ("KeyType", "DomainSeparation"),
        "DHT-2.1",
    )
    add(KeyType.ROOM, b"", "room key of an empty ident", ("EmptyIdent",), "DHT-2.2")
    add(
        KeyType.ROOM,
        pseudo_random("dht_geometry/ident64", 64),
        "room key of a 64-byte ident",
        ("IdentLimit",),
        "DHT-2.2",
    )
    add(
        KeyType.ROOM,
        pseudo_random("dht_geometry/ident65", 65),
        "a 65-byte ident is refused",
        ("IdentLimit",),
        "DHT-2.2",
        ErrorCode.TOO_LARGE,
    )
    add(
        KeyType.BOOTSTRAP,
        bytes(200),
        "a 200-byte ident is refused",
        ("IdentLimit",),
        "DHT-2.2",
        ErrorCode.TOO_LARGE,
    )
    for number in (0, 6, 255):
        add(
            number,
            b"x",
            f"key type {number} is not defined",
            ("UnknownKeyType",),
            "DHT-2.1",
            ErrorCode.MALFORMED,
        )


def build() -> JsonObject:
    v = Vectors("dht_geometry", "railgun-dht-geometry-v1", HEADER, NOTES)
    _distance_tests(v)
    _key_tests(v)
    return v.document()
