"""dht_records.json: signed records byte for byte (DHT-3.1), their acceptance (DHT-3.2..3.4)
and what a holder does with a sequence of them (DHT-3.5, DHT-4.x).

Sign tests fix a publisher seed and the fields; the record must come out byte
for byte (Ed25519 is deterministic). Accept tests give the record as received
(the deterministic CBOR of whatever map a peer sent, validly signed unless the
point is the signature) and the single code of the first check of DHT-3.3
that fails; tests flagged CheckOrder carry two faults. Store tests feed a
holder with fixed quotas a sequence of records, each at its own time, and give
the outcome of every step and what the key holds at the end.
"""

from typing import Any, Final

from railgun_ref.conformance.builders.base import T0, T0_MS, Vectors, flip, seed_for
from railgun_ref.conformance.builders.ed25519 import first_off_curve_y
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import (
    MAX_TTL,
    MAX_VALUE_SIZE,
    RECORD_DOMAIN,
    Record,
    check_record,
    decode_record,
    sign_record,
)
from railgun_ref.dht.storage import RecordTable, StorageLimits
from railgun_ref.identity import ed25519_math as ed
from railgun_ref.identity.keys import Identity
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import ENVELOPE_DOMAIN

NOTES: Final = {
    "KeyType": "One record per key type of DHT-2.1.",
    "Boundary": "A field exactly at, or one unit past, a limit.",
    "SizeLimit": "The value or ident at or over its size limit.",
    "Expiry": "The expiry relative to the holder's clock.",
    "BadSignature": "The signature does not verify over RECORD_DOMAIN || CBOR(fields 0..5).",
    "DomainSeparation": "Signed by the publisher, but not over the record domain.",
    "WrongKey": "A valid record offered under a key it does not derive to.",
    "Entitlement": "A peer or capability record whose ident is not its publisher's node id.",
    "BadKey": "A publisher key refused by ID-2.2.",
    "Malformed": "Not the record shape of DHT-3.1.",
    "NonCanonical": "The record map is not deterministic CBOR (ENC-1.5).",
    "CheckOrder": "Two faults at once: the code is the one of the earlier check.",
    "Sequence": "Records of one publisher under one key with various seq.",
    "SetOfPublishers": "Several publishers under one key: a set, one entry each.",
    "Quota": "A storage quota of DHT-4.4 reached.",
    "Replacement": "A newer record of a held (key, publisher) entry.",
    "ExpiryFrees": "A held record expired before the step, freeing its entry.",
    "NotProduced": "Fields a publisher must not sign: the signer refuses them.",
}

HEADER: Final = [
    "Signed DHT records (DHT-3.1), acceptance (DHT-3.2..DHT-3.4) and holding (DHT-3.5, DHT-4.x).",
    "A record is the deterministic CBOR map {0: key type, 1: ident, 2: publisher key,",
    "3: seq, 4: expires (ms since the Unix epoch), 5: value, 6: signature}; the",
    "signature is Ed25519 over 'railgun/v1/record' 0x00 || CBOR({0..5}). 'seq' is a",
    "decimal string (64-bit). DhtRecordSignTest: sign the fields with the seed and",
    "compare 'signedPart', 'signature' and 'record' byte for byte; invalid tests are",
    "fields a signer must refuse. DhtRecordAcceptTest: decode 'record' (CBOR) and check",
    "it at 'now' (seconds), under 'storeKey' when not null (a FIND_VALUE answer); valid",
    "tests give the key and publisher id, invalid ones the code of the first failing",
    "check of DHT-3.3. DhtStoreSequenceTest: a holder with 'limits' takes each step's",
    "record at the step's 'now' (dropping records expired by then, DHT-4.3); each step",
    "gives the outcome (STORED, REPLACED, UNCHANGED) or the refusal code, and 'held' is",
    "what the last step's key holds afterwards, ordered by publisher id.",
]

_EXPIRES: Final = T0_MS + 3_600_000


def _publisher(n: int) -> Identity:
    return Identity.from_seed(seed_for(f"dht_records/publisher-{n}"))


def _fields(
    identity: Identity,
    key_type: KeyType,
    ident: bytes | None = None,
    *,
    seq: int = 1,
    expires_ms: int = _EXPIRES,
    value: bytes = b"hello",
) -> dict[int, Any]:
    if ident is None:
        ident = identity.node_id if key_type in (KeyType.PEER, KeyType.CAPABILITY) else b"room-1"
    return {0: int(key_type), 1: ident, 2: identity.public_key, 3: seq, 4: expires_ms, 5: value}


def _signed(
    signer: Identity,
    fields: dict[int, Any],
    *,
    domain: bytes = RECORD_DOMAIN,
    publisher_key: bytes | None = None,
) -> dict[int, Any]:
    """`fields` with the signature of `signer` over `domain` || CBOR(fields) as key 6."""
    if publisher_key is not None:
        fields = {**fields, 2: publisher_key}
    return {**fields, 6: signer.sign(domain + cbor.encode(fields))}


def _sign_tests(v: Vectors) -> None:
    identity = _publisher(1)
    tests = v.group(
        "DhtRecordSignTest",
        seed=identity.seed.hex(),
        publicKey=identity.public_key.hex(),
        nodeId=identity.node_id.hex(),
    )

    def add(
        key_type: KeyType,
        ident: bytes,
        seq: int,
        expires_ms: int,
        value: bytes,
        comment: str,
        flags: tuple[str, ...],
        clause: str = "DHT-3.1",
    ) -> None:
        fields: JsonObject = {
            "keyType": int(key_type),
            "ident": ident.hex(),
            "seq": str(seq),
            "expiresMs": expires_ms,
            "value": value.hex(),
        }
        try:
            record = sign_record(
                identity,
                key_type=key_type,
                ident=ident,
                seq=seq,
                expires_ms=expires_ms,
                value=value,
            )
        except LocalProtocolError:
            v.test(tests, comment=comment, result="invalid", clause=clause, flags=flags, **fields)
            return
        signed_part = cbor.encode(record.signed_fields())
        assert record.signature == identity.sign(RECORD_DOMAIN + signed_part)
        assert record.encode() == cbor.encode({**record.signed_fields(), 6: record.signature})
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause=clause,
            flags=flags,
            **fields,
            signedPart=signed_part.hex(),
            signature=record.signature.hex(),
            record=record.encode().hex(),
            key=record.key.hex(),
            publisherId=record.publisher_id.hex(),
        )

    node_id = identity.node_id
    add(
        KeyType.PEER,
        node_id,
        1,
        _EXPIRES,
        b"\x82\x69127.0.0.1\x19\x1b\x58",
        "peer record: the publisher announces itself",
        ("KeyType",),
    )
    add(
        KeyType.ROOM,
        b"room-1",
        1_700_000_000_000,
        _EXPIRES,
        b"",
        "room membership, seq = publish time in ms, empty value",
        ("KeyType",),
    )
    add(
        KeyType.RENDEZVOUS,
        bytes(range(32)),
        7,
        _EXPIRES,
        b"pickup",
        "rendezvous record",
        ("KeyType",),
    )
    add(
        KeyType.CAPABILITY, node_id, 2, _EXPIRES, b"\xa1\x00\x01", "capability record", ("KeyType",)
    )
    add(KeyType.BOOTSTRAP, b"mainnet", 3, _EXPIRES, b"node", "bootstrap record", ("KeyType",))
    add(
        KeyType.ROOM,
        b"r" * 64,
        0,
        _EXPIRES,
        bytes(MAX_VALUE_SIZE),
        "64-byte ident, 256-byte value, seq 0",
        ("Boundary", "SizeLimit"),
        "DHT-3.2",
    )
    add(
        KeyType.ROOM, b"room-1", 2**64 - 1, _EXPIRES, b"x", "seq 2^64 - 1", ("Boundary",), "DHT-3.2"
    )
    add(
        KeyType.ROOM,
        b"room-1",
        1,
        _EXPIRES,
        bytes(MAX_VALUE_SIZE + 1),
        "a 257-byte value: a signer refuses it",
        ("SizeLimit", "NotProduced"),
        "DHT-3.2",
    )
    add(
        KeyType.ROOM,
        b"r" * 65,
        1,
        _EXPIRES,
        b"x",
        "a 65-byte ident: a signer refuses it",
        ("SizeLimit", "NotProduced"),
        "DHT-2.2",
    )
    add(
        KeyType.ROOM,
        b"room-1",
        2**64,
        _EXPIRES,
        b"x",
        "seq 2^64: not a 64-bit integer",
        ("Boundary", "NotProduced"),
        "DHT-3.2",
    )


def _accept_tests(v: Vectors) -> None:
    p1, p2 = _publisher(1), _publisher(2)
    now = T0
    tests = v.group("DhtRecordAcceptTest", now=now, maxTtl=MAX_TTL)

    def add(
        record: object,
        comment: str,
        flags: tuple[str, ...],
        clause: str,
        error: ErrorCode | None = None,
        *,
        store_key: bytes | None = None,
        encoded: bytes | None = None,
    ) -> None:
        data = cbor.encode(record) if encoded is None else encoded
        fields: JsonObject = {
            "record": data.hex(),
            "storeKey": None if store_key is None else store_key.hex(),
        }
        try:
            got = decode_record(cbor.decode(data), now=now, key=store_key)
        except RemoteProtocolError as exc:
            assert error is not None and exc.code is error, (comment, exc)
            v.test(
                tests,
                comment=comment,
                result="invalid",
                clause=clause,
                flags=flags,
                **fields,
                expectedError=error.name,
            )
            return
        assert error is None, comment
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause=clause,
            flags=flags,
            **fields,
            key=got.key.hex(),
            publisherId=got.publisher_id.hex(),
        )

    def good(
        key_type: KeyType = KeyType.ROOM, ident: bytes | None = None, **changes: Any
    ) -> dict[int, Any]:
        return _signed(p1, _fields(p1, key_type, ident, **changes))

    for key_type in KeyType:
        record = good(key_type)
        add(
            record,
            f"a {key_type.name.lower()} record of its publisher",
            ("KeyType",),
            "DHT-3.3",
            store_key=derive_key(key_type, record[1]),
        )
    add(good(KeyType.ROOM, b"room-1"), "a room record, not offered under a key", (), "DHT-3.3")
    add(
        good(KeyType.ROOM, b"room-2", value=bytes(256)),
        "a 256-byte value",
        ("Boundary", "SizeLimit"),
        "DHT-3.2",
    )
    add(good(KeyType.ROOM, b"i" * 64), "a 64-byte ident", ("Boundary", "SizeLimit"), "DHT-2.2")
    add(good(expires_ms=T0_MS + 1), "expires 1 ms after now", ("Boundary", "Expiry"), "DHT-3.3")
    max_ms = T0_MS + round(MAX_TTL * 1000)
    add(
        good(expires_ms=max_ms),
        "expires exactly now + 7 days + 300 s",
        ("Boundary", "Expiry"),
        "DHT-3.2",
    )

    add(
        good(expires_ms=T0_MS),
        "expires exactly at now",
        ("Boundary", "Expiry"),
        "DHT-3.3",
        ErrorCode.EXPIRED,
    )
    add(
        good(expires_ms=T0_MS - 86_400_000),
        "expired a day ago",
        ("Expiry",),
        "DHT-3.3",
        ErrorCode.EXPIRED,
    )
    add(good(expires_ms=0), "expires at the epoch", ("Expiry",), "DHT-3.3", ErrorCode.EXPIRED)
    add(
        good(expires_ms=max_ms + 1),
        "expires 1 ms past now + 7 days + 300 s",
        ("Boundary", "Expiry"),
        "DHT-3.2",
        ErrorCode.TTL_TOO_LONG,
    )
    add(
        good(expires_ms=T0_MS + 30 * 86_400_000),
        "expires in 30 days",
        ("Expiry",),
        "DHT-3.2",
        ErrorCode.TTL_TOO_LONG,
    )

    record = good()
    add(
        {**record, 6: flip(record[6], 5)},
        "one signature bit flipped",
        ("BadSignature",),
        "DHT-3.3",
        ErrorCode.BAD_SIGNATURE,
    )
    add(
        {**record, 5: b"hellO"},
        "value changed after signing",
        ("BadSignature",),
        "DHT-3.3",
        ErrorCode.BAD_SIGNATURE,
    )
    add(
        {**record, 3: 2},
        "seq raised after signing",
        ("BadSignature",),
        "DHT-3.3",
        ErrorCode.BAD_SIGNATURE,
    )
    add(
        {**record, 4: _EXPIRES + 1},
        "expiry moved after signing",
        ("BadSignature",),
        "DHT-3.3",
        ErrorCode.BAD_SIGNATURE,
    )
    add(
        _signed(p2, _fields(p1, KeyType.ROOM)),
        "signed by another key than field 2",
        ("BadSignature",),
        "DHT-3.3",
        ErrorCode.BAD_SIGNATURE,
    )
    add(
        _signed(p1, _fields(p1, KeyType.ROOM), domain=b""),
        "signed without the record domain",
        ("BadSignature", "DomainSeparation"),
        "DHT-3.1",
        ErrorCode.BAD_SIGNATURE,
    )
    add(
        _signed(p1, _fields(p1, KeyType.ROOM), domain=ENVELOPE_DOMAIN),
        "signed under the envelope domain",
        ("BadSignature", "DomainSeparation"),
        "DHT-3.1",
        ErrorCode.BAD_SIGNATURE,
    )
    add(
        {**record, 6: bytes(64)},
        "an all-zero signature",
        ("BadSignature",),
        "DHT-3.3",
        ErrorCode.BAD_SIGNATURE,
    )

    add(
        good(KeyType.ROOM, b"room-1"),
        "a room-1 record offered under the key of room-2",
        ("WrongKey",),
        "DHT-3.3",
        ErrorCode.WRONG_KEY,
        store_key=derive_key(KeyType.ROOM, b"room-2"),
    )
    add(
        good(KeyType.ROOM, b"room-1"),
        "a room record offered under the rendezvous key of its ident",
        ("WrongKey",),
        "DHT-3.3",
        ErrorCode.WRONG_KEY,
        store_key=derive_key(KeyType.RENDEZVOUS, b"room-1"),
    )

    add(
        good(KeyType.PEER, p2.node_id),
        "a peer record naming another node",
        ("Entitlement",),
        "DHT-3.4",
        ErrorCode.FORBIDDEN,
    )
    add(
        good(KeyType.CAPABILITY, p2.node_id),
        "a capability record naming another node",
        ("Entitlement",),
        "DHT-3.4",
        ErrorCode.FORBIDDEN,
    )
    add(
        good(KeyType.PEER, p1.public_key),
        "a peer record naming its publisher's public key, not node id",
        ("Entitlement",),
        "DHT-3.4",
        ErrorCode.FORBIDDEN,
    )
    add(
        good(KeyType.PEER, b"room-1"),
        "a peer record with a room-like ident",
        ("Entitlement",),
        "DHT-3.4",
        ErrorCode.FORBIDDEN,
    )
    add(
        good(KeyType.ROOM, p2.node_id),
        "a room record may have any ident, even a node id",
        ("Entitlement",),
        "DHT-3.4",
    )

    add(
        good(value=bytes(257)),
        "a 257-byte value, validly signed",
        ("SizeLimit",),
        "DHT-3.2",
        ErrorCode.TOO_LARGE,
    )
    add(
        good(KeyType.ROOM, b"i" * 65),
        "a 65-byte ident, validly signed",
        ("SizeLimit",),
        "DHT-2.2",
        ErrorCode.TOO_LARGE,
    )

    identity_point = ed.encode(ed.IDENTITY)
    add(
        _signed(p1, _fields(p1, KeyType.ROOM), publisher_key=identity_point),
        "publisher key = the identity point (small order)",
        ("BadKey",),
        "DHT-3.3",
        ErrorCode.BAD_KEY,
    )
    non_canonical = (ed.P + 1).to_bytes(32, "little")
    add(
        _signed(p1, _fields(p1, KeyType.ROOM), publisher_key=non_canonical),
        "publisher key with y = p + 1 (non-canonical)",
        ("BadKey",),
        "DHT-3.3",
        ErrorCode.BAD_KEY,
    )
    off_curve = first_off_curve_y().to_bytes(32, "little")
    add(
        _signed(p1, _fields(p1, KeyType.ROOM), publisher_key=off_curve),
        "publisher key not on the curve: caught by the signature check",
        ("BadSignature",),
        "DHT-3.3",
        ErrorCode.BAD_SIGNATURE,
    )

    malformed: list[tuple[object, str]] = [
        ([record[i] for i in range(7)], "an array instead of a map"),
        ({i: record[i] for i in range(6)}, "no signature (key 6)"),
        ({**record, 7: 0}, "an extra key 7"),
        ({**record, 0: 0}, "key type 0"),
        ({**record, 0: 6}, "key type 6"),
        ({**record, 0: "room"}, "key type as text"),
        ({**record, 1: "room-1"}, "ident as text"),
        ({**record, 5: "hello"}, "value as text"),
        ({**record, 2: record[2][:31]}, "a 31-byte publisher key"),
        ({**record, 6: record[6][:63]}, "a 63-byte signature"),
        ({**record, 3: -1}, "seq -1"),
        ({**record, 3: True}, "seq true"),
        ({**record, 4: b"\x01"}, "expiry as bytes"),
        ({**record, 5: None}, "value null"),
        ({}, "an empty map"),
    ]
    for value, what in malformed:
        add(value, f"malformed: {what}", ("Malformed",), "DHT-3.3", ErrorCode.MALFORMED)
    encoded = cbor.encode(record)
    # Swap the first two entries: keys 1 then 0, a map out of order (ENC-1.3).
    head, body = encoded[:1], encoded[1:]
    first = cbor.encode(0) + cbor.encode(record[0])
    second = cbor.encode(1) + cbor.encode(record[1])
    assert body.startswith(first + second)
    swapped = head + second + first + body[len(first + second) :]
    add(
        None,
        "map keys out of order: not deterministic CBOR",
        ("NonCanonical",),
        "DHT-3.1",
        ErrorCode.MALFORMED,
        encoded=swapped,
    )

    add(
        {**record, 5: bytes(257), 6: bytes(63)},
        "a 63-byte signature and a 257-byte value: MALFORMED first",
        ("CheckOrder", "Malformed"),
        "DHT-3.3",
        ErrorCode.MALFORMED,
    )
    add(
        {**record, 5: bytes(257)},
        "a 257-byte value, signature not over it: TOO_LARGE first",
        ("CheckOrder", "SizeLimit"),
        "DHT-3.3",
        ErrorCode.TOO_LARGE,
    )
    add(
        {**_signed(p1, _fields(p1, KeyType.ROOM), publisher_key=identity_point), 6: bytes(64)},
        "small-order key and a bad signature: BAD_KEY first",
        ("CheckOrder", "BadKey"),
        "DHT-3.3",
        ErrorCode.BAD_KEY,
    )
    expired = good(expires_ms=T0_MS - 1)
    add(
        {**expired, 6: flip(expired[6], 9)},
        "expired and a bad signature: BAD_SIGNATURE first",
        ("CheckOrder", "BadSignature"),
        "DHT-3.3",
        ErrorCode.BAD_SIGNATURE,
    )
    add(
        good(KeyType.PEER, p2.node_id),
        "a peer record naming another node, offered under another key: WRONG_KEY first",
        ("CheckOrder", "WrongKey"),
        "DHT-3.3",
        ErrorCode.WRONG_KEY,
        store_key=derive_key(KeyType.PEER, p1.node_id),
    )
    add(
        good(KeyType.PEER, p2.node_id, expires_ms=T0_MS),
        "a peer record naming another node, expired: FORBIDDEN first",
        ("CheckOrder", "Entitlement"),
        "DHT-3.3",
        ErrorCode.FORBIDDEN,
    )
    add(
        good(KeyType.ROOM, b"room-1", expires_ms=T0_MS),
        "an expired record offered under another key: WRONG_KEY first",
        ("CheckOrder", "WrongKey"),
        "DHT-3.3",
        ErrorCode.WRONG_KEY,
        store_key=derive_key(KeyType.ROOM, b"room-2"),
    )


class _Holder:
    """A holder fed records one step at a time, recording each outcome."""

    def __init__(self, limits: StorageLimits) -> None:
        self.table = RecordTable(limits)
        self.steps: list[JsonObject] = []
        self.last_key = b""
        self.now = T0

    def offer(self, record: Record, now: float, comment: str) -> str:
        self.table.expire(now=now)
        self.now, self.last_key = now, record.key
        step: JsonObject = {"comment": comment, "now": now, "record": record.encode().hex()}
        try:
            check_record(record, now=now)
            outcome = self.table.put(record)
        except RemoteProtocolError as exc:
            step["expectedError"] = exc.code.name
            self.steps.append(step)
            return exc.code.name
        step["outcome"] = outcome.name
        self.steps.append(step)
        return outcome.name

    def finish(self) -> JsonObject:
        held = self.table.get(self.last_key, now=self.now)
        result = "invalid" if "expectedError" in self.steps[-1] else "valid"
        return {"result": result, "steps": self.steps, "held": [r.encode().hex() for r in held]}


def _record(
    n: int,
    key_type: KeyType = KeyType.ROOM,
    ident: bytes = b"room-1",
    *,
    seq: int = 1,
    expires_ms: int = _EXPIRES,
    value: bytes = b"v",
) -> Record:
    identity = _publisher(n)
    if key_type in (KeyType.PEER, KeyType.CAPABILITY):
        ident = identity.node_id
    return sign_record(
        identity, key_type=key_type, ident=ident, seq=seq, expires_ms=expires_ms, value=value
    )


def _store_tests(v: Vectors) -> None:
    def group(limits: StorageLimits) -> list[JsonObject]:
        return v.group(
            "DhtStoreSequenceTest",
            limits={
                "perKey": limits.per_key,
                "perPublisher": limits.per_publisher,
                "total": limits.total,
            },
        )

    def add(
        tests: list[JsonObject], holder: _Holder, comment: str, clause: str, flags: tuple[str, ...]
    ) -> None:
        done = holder.finish()
        v.test(
            tests, comment=comment, result=done.pop("result"), clause=clause, flags=flags, **done
        )

    default = StorageLimits()
    tests = group(default)
    h = _Holder(default)
    assert h.offer(_record(1), T0, "A's record, seq 1") == "STORED"
    add(tests, h, "a first record is stored", "DHT-4.1", ())
    h = _Holder(default)
    h.offer(_record(1), T0, "A's record, seq 1")
    assert h.offer(_record(1, seq=2, value=b"w"), T0 + 1, "A's record, seq 2") == "REPLACED"
    add(tests, h, "a higher seq replaces the held record", "DHT-3.5", ("Sequence",))
    h = _Holder(default)
    h.offer(_record(1), T0, "A's record, seq 1")
    assert h.offer(_record(1), T0 + 1, "the same record again") == "UNCHANGED"
    add(tests, h, "the same seq with identical bytes changes nothing", "DHT-3.5", ("Sequence",))
    h = _Holder(default)
    h.offer(_record(1), T0, "A's record, seq 1")
    assert h.offer(_record(1, value=b"w"), T0 + 1, "seq 1 with another value") == ("STALE_SEQUENCE")
    add(
        tests,
        h,
        "the same seq with different bytes is refused; the held one stays",
        "DHT-3.5",
        ("Sequence",),
    )
    h = _Holder(default)
    h.offer(_record(1), T0, "A's record, seq 1")
    out = h.offer(_record(1, expires_ms=_EXPIRES + 1000), T0 + 1, "seq 1 with a later expiry")
    assert out == "STALE_SEQUENCE"
    add(tests, h, "the same seq with another expiry is refused", "DHT-3.5", ("Sequence",))
    h = _Holder(default)
    h.offer(_record(1, seq=5), T0, "A's record, seq 5")
    assert h.offer(_record(1, seq=4, value=b"w"), T0 + 1, "A's record, seq 4") == "STALE_SEQUENCE"
    add(tests, h, "a lower seq is refused", "DHT-3.5", ("Sequence",))
    h = _Holder(default)
    for n in (1, 2, 3):
        assert h.offer(_record(n), T0 + n, f"publisher {n}'s room-1 record") == "STORED"
    add(
        tests,
        h,
        "a room key holds one record per publisher, ordered by publisher id",
        "DHT-4.1",
        ("SetOfPublishers",),
    )
    h = _Holder(default)
    h.offer(_record(1, seq=9), T0, "publisher 1, seq 9")
    assert h.offer(_record(2, seq=1), T0 + 1, "publisher 2, seq 1") == "STORED"
    add(
        tests,
        h,
        "seq is per publisher: another publisher's lower seq is stored",
        "DHT-3.5",
        ("SetOfPublishers", "Sequence"),
    )
    h = _Holder(default)
    h.offer(_record(1, expires_ms=T0_MS + 10_000), T0, "A's record expiring at T0 + 10 s")
    out = h.offer(_record(1, seq=0, expires_ms=T0_MS + 20_000), T0 + 10, "A's seq 0 at T0 + 10 s")
    assert out == "STORED"
    add(
        tests,
        h,
        "once the held record expired, a lower seq is a new entry",
        "DHT-4.3",
        ("Sequence", "ExpiryFrees"),
    )
    h = _Holder(default)
    h.offer(_record(1, expires_ms=T0_MS + 10_000), T0, "A's record expiring at T0 + 10 s")
    out = h.offer(
        _record(1, seq=0, expires_ms=T0_MS + 20_000), T0 + 9.999, "A's seq 0 at T0 + 9.999 s"
    )
    assert out == "STALE_SEQUENCE"
    add(
        tests,
        h,
        "1 ms before the held record expires, a lower seq is still stale",
        "DHT-4.3",
        ("Sequence", "Boundary"),
    )

    limits = StorageLimits(per_key=2, per_publisher=256, total=100_000)
    tests = group(limits)
    h = _Holder(limits)
    h.offer(_record(1), T0, "publisher 1")
    h.offer(_record(2), T0 + 1, "publisher 2")
    assert h.offer(_record(3), T0 + 2, "publisher 3") == "QUOTA"
    add(
        tests,
        h,
        "a third publisher under a key holding its quota of 2 is refused",
        "DHT-4.4",
        ("Quota", "SetOfPublishers"),
    )
    h = _Holder(limits)
    h.offer(_record(1), T0, "publisher 1")
    h.offer(_record(2), T0 + 1, "publisher 2")
    assert h.offer(_record(2, seq=2), T0 + 2, "publisher 2, seq 2") == "REPLACED"
    add(
        tests,
        h,
        "a full key still takes a newer record of a held publisher",
        "DHT-4.4",
        ("Quota", "Replacement"),
    )
    h = _Holder(limits)
    h.offer(_record(1, expires_ms=T0_MS + 5_000), T0, "publisher 1, expiring at T0 + 5 s")
    h.offer(_record(2), T0 + 1, "publisher 2")
    assert h.offer(_record(3), T0 + 5, "publisher 3 at T0 + 5 s") == "STORED"
    add(
        tests,
        h,
        "an expired record frees its place under the key",
        "DHT-4.3",
        ("Quota", "ExpiryFrees"),
    )

    limits = StorageLimits(per_key=64, per_publisher=2, total=100_000)
    tests = group(limits)
    h = _Holder(limits)
    h.offer(_record(1, ident=b"room-1"), T0, "publisher 1 in room-1")
    h.offer(_record(1, KeyType.PEER), T0 + 1, "publisher 1's peer record")
    assert h.offer(_record(1, ident=b"room-2"), T0 + 2, "publisher 1 in room-2") == "QUOTA"
    add(
        tests,
        h,
        "a publisher holding its quota of 2 records cannot add a third",
        "DHT-4.4",
        ("Quota",),
    )
    h = _Holder(limits)
    h.offer(_record(1, ident=b"room-1"), T0, "publisher 1 in room-1")
    h.offer(_record(1, ident=b"room-2"), T0 + 1, "publisher 1 in room-2")
    assert h.offer(_record(2, ident=b"room-2"), T0 + 2, "publisher 2 in room-2") == "STORED"
    add(
        tests,
        h,
        "the per-publisher quota does not limit other publishers",
        "DHT-4.4",
        ("Quota", "SetOfPublishers"),
    )

    limits = StorageLimits(per_key=64, per_publisher=256, total=3)
    tests = group(limits)
    h = _Holder(limits)
    for n in (1, 2, 3):
        h.offer(_record(n, KeyType.PEER), T0 + n, f"publisher {n}'s peer record")
    assert h.offer(_record(4, KeyType.PEER), T0 + 4, "publisher 4's peer record") == "QUOTA"
    add(tests, h, "a holder at its total quota of 3 refuses a new entry", "DHT-4.4", ("Quota",))
    h = _Holder(limits)
    for n in (1, 2, 3):
        h.offer(_record(n, KeyType.PEER), T0 + n, f"publisher {n}'s peer record")
    out = h.offer(_record(3, KeyType.PEER, seq=2), T0 + 4, "publisher 3's peer record, seq 2")
    assert out == "REPLACED"
    add(
        tests,
        h,
        "a holder at its total quota still replaces a held entry",
        "DHT-4.4",
        ("Quota", "Replacement"),
    )


def build() -> JsonObject:
    v = Vectors("dht_records", "railgun-dht-records-v1", HEADER, NOTES)
    _sign_tests(v)
    _accept_tests(v)
    _store_tests(v)
    return v.document()
