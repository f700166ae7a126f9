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

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
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


# ------------------------------------------------------------------ signing


@dataclass(frozen=True, slots=True, kw_only=True)
class _SignCase:
    """Fields publisher 1 signs; `ident` None is its own node id."""

    comment: str
    flags: tuple[str, ...]
    clause: str = "DHT-3.1"
    key_type: KeyType
    ident: bytes | None
    seq: int
    value: bytes
    expires_ms: int = _EXPIRES


SIGN_CASES: Final = (
    _SignCase(
        comment="peer record: the publisher announces itself",
        flags=("KeyType",),
        key_type=KeyType.PEER,
        ident=None,
        seq=1,
        value=b"\x82\x69127.0.0.1\x19\x1b\x58",
    ),
    _SignCase(
        comment="room membership, seq = publish time in ms, empty value",
        flags=("KeyType",),
        key_type=KeyType.ROOM,
        ident=b"room-1",
        seq=1_700_000_000_000,
        value=b"",
    ),
    _SignCase(
        comment="rendezvous record",
        flags=("KeyType",),
        key_type=KeyType.RENDEZVOUS,
        ident=bytes(range(32)),
        seq=7,
        value=b"pickup",
    ),
    _SignCase(
        comment="capability record",
        flags=("KeyType",),
        key_type=KeyType.CAPABILITY,
        ident=None,
        seq=2,
        value=b"\xa1\x00\x01",
    ),
    _SignCase(
        comment="bootstrap record",
        flags=("KeyType",),
        key_type=KeyType.BOOTSTRAP,
        ident=b"mainnet",
        seq=3,
        value=b"node",
    ),
    _SignCase(
        comment="64-byte ident, 256-byte value, seq 0",
        flags=("Boundary", "SizeLimit"),
        clause="DHT-3.2",
        key_type=KeyType.ROOM,
        ident=b"r" * 64,
        seq=0,
        value=bytes(MAX_VALUE_SIZE),
    ),
    _SignCase(
        comment="seq 2^64 - 1",
        flags=("Boundary",),
        clause="DHT-3.2",
        key_type=KeyType.ROOM,
        ident=b"room-1",
        seq=2**64 - 1,
        value=b"x",
    ),
    _SignCase(
        comment="a 257-byte value: a signer refuses it",
        flags=("SizeLimit", "NotProduced"),
        clause="DHT-3.2",
        key_type=KeyType.ROOM,
        ident=b"room-1",
        seq=1,
        value=bytes(MAX_VALUE_SIZE + 1),
    ),
    _SignCase(
        comment="a 65-byte ident: a signer refuses it",
        flags=("SizeLimit", "NotProduced"),
        clause="DHT-2.2",
        key_type=KeyType.ROOM,
        ident=b"r" * 65,
        seq=1,
        value=b"x",
    ),
    _SignCase(
        comment="seq 2^64: not a 64-bit integer",
        flags=("Boundary", "NotProduced"),
        clause="DHT-3.2",
        key_type=KeyType.ROOM,
        ident=b"room-1",
        seq=2**64,
        value=b"x",
    ),
)


def _signed_entry(identity: Identity, case: _SignCase, ident: bytes) -> JsonObject | None:
    """What signing `case` must give, or None if a signer must refuse it."""
    try:
        record = sign_record(
            identity,
            key_type=case.key_type,
            ident=ident,
            seq=case.seq,
            expires_ms=case.expires_ms,
            value=case.value,
        )
    except LocalProtocolError:
        return None
    signed_part = cbor.encode(record.signed_fields())
    assert record.signature == identity.sign(RECORD_DOMAIN + signed_part)
    assert record.encode() == cbor.encode({**record.signed_fields(), 6: record.signature})
    return {
        "signedPart": signed_part.hex(),
        "signature": record.signature.hex(),
        "record": record.encode().hex(),
        "key": record.key.hex(),
        "publisherId": record.publisher_id.hex(),
    }


def _sign_tests(v: Vectors) -> None:
    identity = _publisher(1)
    tests = v.group(
        "DhtRecordSignTest",
        seed=identity.seed.hex(),
        publicKey=identity.public_key.hex(),
        nodeId=identity.node_id.hex(),
    )
    for case in SIGN_CASES:
        ident = identity.node_id if case.ident is None else case.ident
        fields: JsonObject = {
            "keyType": int(case.key_type),
            "ident": ident.hex(),
            "seq": str(case.seq),
            "expiresMs": case.expires_ms,
            "value": case.value.hex(),
        }
        signed = _signed_entry(identity, case, ident)
        v.test(
            tests,
            comment=case.comment,
            result="invalid" if signed is None else "valid",
            clause=case.clause,
            flags=case.flags,
            **fields,
            **(signed or {}),
        )


# ------------------------------------------------------------------ acceptance

_Map = dict[int, Any]


@cache
def _p1() -> Identity:
    return _publisher(1)


@cache
def _p2() -> Identity:
    return _publisher(2)


def _good(key_type: KeyType = KeyType.ROOM, ident: bytes | None = None, **changes: Any) -> _Map:
    """A record validly signed by publisher 1, with `changes` to the default fields."""
    return _signed(_p1(), _fields(_p1(), key_type, ident, **changes))


def _p1_with_key(publisher_key: bytes) -> Callable[[], _Map]:
    """A publisher-1 room record whose key field is `publisher_key`, signed by publisher 1."""
    return lambda: _signed(_p1(), _fields(_p1(), KeyType.ROOM), publisher_key=publisher_key)


def _key_of(key_type: KeyType, ident: bytes) -> Callable[[], bytes]:
    return lambda: derive_key(key_type, ident)


def _own_key(key_type: KeyType) -> bytes:
    return derive_key(key_type, _good(key_type)[1])


def _keys_swapped(record: object) -> bytes:
    """The CBOR of `record` with its first two entries (keys 0, 1) swapped (ENC-1.3)."""
    assert isinstance(record, dict)
    encoded = cbor.encode(record)
    head, body = encoded[:1], encoded[1:]
    first = cbor.encode(0) + cbor.encode(record[0])
    second = cbor.encode(1) + cbor.encode(record[1])
    assert body.startswith(first + second)
    return head + second + first + body[len(first + second) :]


@dataclass(frozen=True, slots=True, kw_only=True)
class _AcceptCase:
    """A record as received: `record()` then `mutate`, encoded with `encode`, checked under
    `store_key()` (None: not offered under a key); `error` None means accepted."""

    comment: str
    flags: tuple[str, ...]
    clause: str
    error: ErrorCode | None = None
    record: Callable[[], _Map] = _good
    mutate: Callable[[_Map], object] | None = None
    encode: Callable[[object], bytes] = cbor.encode
    store_key: Callable[[], bytes] | None = None


_IDENTITY_POINT: Final = ed.encode(ed.IDENTITY)
_MAX_MS: Final = T0_MS + round(MAX_TTL * 1000)
_MALFORMED: Final[tuple[tuple[Callable[[_Map], object], str], ...]] = (
    (lambda r: [r[i] for i in range(7)], "an array instead of a map"),
    (lambda r: {i: r[i] for i in range(6)}, "no signature (key 6)"),
    (lambda r: {**r, 7: 0}, "an extra key 7"),
    (lambda r: {**r, 0: 0}, "key type 0"),
    (lambda r: {**r, 0: 6}, "key type 6"),
    (lambda r: {**r, 0: "room"}, "key type as text"),
    (lambda r: {**r, 1: "room-1"}, "ident as text"),
    (lambda r: {**r, 5: "hello"}, "value as text"),
    (lambda r: {**r, 2: r[2][:31]}, "a 31-byte publisher key"),
    (lambda r: {**r, 6: r[6][:63]}, "a 63-byte signature"),
    (lambda r: {**r, 3: -1}, "seq -1"),
    (lambda r: {**r, 3: True}, "seq true"),
    (lambda r: {**r, 4: b"\x01"}, "expiry as bytes"),
    (lambda r: {**r, 5: None}, "value null"),
    (lambda r: {}, "an empty map"),
)

ACCEPT_CASES: Final = (
    *(
        _AcceptCase(
            comment=f"a {key_type.name.lower()} record of its publisher",
            flags=("KeyType",),
            clause="DHT-3.3",
            record=partial(_good, key_type),
            store_key=partial(_own_key, key_type),
        )
        for key_type in KeyType
    ),
    _AcceptCase(
        comment="a room record, not offered under a key",
        flags=(),
        clause="DHT-3.3",
        record=partial(_good, KeyType.ROOM, b"room-1"),
    ),
    _AcceptCase(
        comment="a 256-byte value",
        flags=("Boundary", "SizeLimit"),
        clause="DHT-3.2",
        record=partial(_good, KeyType.ROOM, b"room-2", value=bytes(256)),
    ),
    _AcceptCase(
        comment="a 64-byte ident",
        flags=("Boundary", "SizeLimit"),
        clause="DHT-2.2",
        record=partial(_good, KeyType.ROOM, b"i" * 64),
    ),
    _AcceptCase(
        comment="expires 1 ms after now",
        flags=("Boundary", "Expiry"),
        clause="DHT-3.3",
        record=partial(_good, expires_ms=T0_MS + 1),
    ),
    _AcceptCase(
        comment="expires exactly now + 7 days + 300 s",
        flags=("Boundary", "Expiry"),
        clause="DHT-3.2",
        record=partial(_good, expires_ms=_MAX_MS),
    ),
    _AcceptCase(
        comment="expires exactly at now",
        flags=("Boundary", "Expiry"),
        clause="DHT-3.3",
        error=ErrorCode.EXPIRED,
        record=partial(_good, expires_ms=T0_MS),
    ),
    _AcceptCase(
        comment="expired a day ago",
        flags=("Expiry",),
        clause="DHT-3.3",
        error=ErrorCode.EXPIRED,
        record=partial(_good, expires_ms=T0_MS - 86_400_000),
    ),
    _AcceptCase(
        comment="expires at the epoch",
        flags=("Expiry",),
        clause="DHT-3.3",
        error=ErrorCode.EXPIRED,
        record=partial(_good, expires_ms=0),
    ),
    _AcceptCase(
        comment="expires 1 ms past now + 7 days + 300 s",
        flags=("Boundary", "Expiry"),
        clause="DHT-3.2",
        error=ErrorCode.TTL_TOO_LONG,
        record=partial(_good, expires_ms=_MAX_MS + 1),
    ),
    _AcceptCase(
        comment="expires in 30 days",
        flags=("Expiry",),
        clause="DHT-3.2",
        error=ErrorCode.TTL_TOO_LONG,
        record=partial(_good, expires_ms=T0_MS + 30 * 86_400_000),
    ),
    _AcceptCase(
        comment="one signature bit flipped",
        flags=("BadSignature",),
        clause="DHT-3.3",
        error=ErrorCode.BAD_SIGNATURE,
        mutate=lambda r: {**r, 6: flip(r[6], 5)},
    ),
    _AcceptCase(
        comment="value changed after signing",
        flags=("BadSignature",),
        clause="DHT-3.3",
        error=ErrorCode.BAD_SIGNATURE,
        mutate=lambda r: {**r, 5: b"hellO"},
    ),
    _AcceptCase(
        comment="seq raised after signing",
        flags=("BadSignature",),
        clause="DHT-3.3",
        error=ErrorCode.BAD_SIGNATURE,
        mutate=lambda r: {**r, 3: 2},
    ),
    _AcceptCase(
        comment="expiry moved after signing",
        flags=("BadSignature",),
        clause="DHT-3.3",
        error=ErrorCode.BAD_SIGNATURE,
        mutate=lambda r: {**r, 4: _EXPIRES + 1},
    ),
    _AcceptCase(
        comment="signed by another key than field 2",
        flags=("BadSignature",),
        clause="DHT-3.3",
        error=ErrorCode.BAD_SIGNATURE,
        record=lambda: _signed(_p2(), _fields(_p1(), KeyType.ROOM)),
    ),
    _AcceptCase(
        comment="signed without the record domain",
        flags=("BadSignature", "DomainSeparation"),
        clause="DHT-3.1",
        error=ErrorCode.BAD_SIGNATURE,
        record=lambda: _signed(_p1(), _fields(_p1(), KeyType.ROOM), domain=b""),
    ),
    _AcceptCase(
        comment="signed under the envelope domain",
        flags=("BadSignature", "DomainSeparation"),
        clause="DHT-3.1",
        error=ErrorCode.BAD_SIGNATURE,
        record=lambda: _signed(_p1(), _fields(_p1(), KeyType.ROOM), domain=ENVELOPE_DOMAIN),
    ),
    _AcceptCase(
        comment="an all-zero signature",
        flags=("BadSignature",),
        clause="DHT-3.3",
        error=ErrorCode.BAD_SIGNATURE,
        mutate=lambda r: {**r, 6: bytes(64)},
    ),
    _AcceptCase(
        comment="a room-1 record offered under the key of room-2",
        flags=("WrongKey",),
        clause="DHT-3.3",
        error=ErrorCode.WRONG_KEY,
        record=partial(_good, KeyType.ROOM, b"room-1"),
        store_key=_key_of(KeyType.ROOM, b"room-2"),
    ),
    _AcceptCase(
        comment="a room record offered under the rendezvous key of its ident",
        flags=("WrongKey",),
        clause="DHT-3.3",
        error=ErrorCode.WRONG_KEY,
        record=partial(_good, KeyType.ROOM, b"room-1"),
        store_key=_key_of(KeyType.RENDEZVOUS, b"room-1"),
    ),
    _AcceptCase(
        comment="a peer record naming another node",
        flags=("Entitlement",),
        clause="DHT-3.4",
        error=ErrorCode.FORBIDDEN,
        record=lambda: _good(KeyType.PEER, _p2().node_id),
    ),
    _AcceptCase(
        comment="a capability record naming another node",
        flags=("Entitlement",),
        clause="DHT-3.4",
        error=ErrorCode.FORBIDDEN,
        record=lambda: _good(KeyType.CAPABILITY, _p2().node_id),
    ),
    _AcceptCase(
        comment="a peer record naming its publisher's public key, not node id",
        flags=("Entitlement",),
        clause="DHT-3.4",
        error=ErrorCode.FORBIDDEN,
        record=lambda: _good(KeyType.PEER, _p1().public_key),
    ),
    _AcceptCase(
        comment="a peer record with a room-like ident",
        flags=("Entitlement",),
        clause="DHT-3.4",
        error=ErrorCode.FORBIDDEN,
        record=partial(_good, KeyType.PEER, b"room-1"),
    ),
    _AcceptCase(
        comment="a room record may have any ident, even a node id",
        flags=("Entitlement",),
        clause="DHT-3.4",
        record=lambda: _good(KeyType.ROOM, _p2().node_id),
    ),
    _AcceptCase(
        comment="a 257-byte value, validly signed",
        flags=("SizeLimit",),
        clause="DHT-3.2",
        error=ErrorCode.TOO_LARGE,
        record=partial(_good, value=bytes(257)),
    ),
    _AcceptCase(
        comment="a 65-byte ident, validly signed",
        flags=("SizeLimit",),
        clause="DHT-2.2",
        error=ErrorCode.TOO_LARGE,
        record=partial(_good, KeyType.ROOM, b"i" * 65),
    ),
    _AcceptCase(
        comment="publisher key = the identity point (small order)",
        flags=("BadKey",),
        clause="DHT-3.3",
        error=ErrorCode.BAD_KEY,
        record=_p1_with_key(_IDENTITY_POINT),
    ),
    _AcceptCase(
        comment="publisher key with y = p + 1 (non-canonical)",
        flags=("BadKey",),
        clause="DHT-3.3",
        error=ErrorCode.BAD_KEY,
        record=_p1_with_key((ed.P + 1).to_bytes(32, "little")),
    ),
    _AcceptCase(
        comment="publisher key not on the curve: caught by the signature check",
        flags=("BadSignature",),
        clause="DHT-3.3",
        error=ErrorCode.BAD_SIGNATURE,
        record=_p1_with_key(first_off_curve_y().to_bytes(32, "little")),
    ),
    *(
        _AcceptCase(
            comment=f"malformed: {what}",
            flags=("Malformed",),
            clause="DHT-3.3",
            error=ErrorCode.MALFORMED,
            mutate=mutate,
        )
        for mutate, what in _MALFORMED
    ),
    _AcceptCase(
        comment="map keys out of order: not deterministic CBOR",
        flags=("NonCanonical",),
        clause="DHT-3.1",
        error=ErrorCode.MALFORMED,
        encode=_keys_swapped,
    ),
    _AcceptCase(
        comment="a 63-byte signature and a 257-byte value: MALFORMED first",
        flags=("CheckOrder", "Malformed"),
        clause="DHT-3.3",
        error=ErrorCode.MALFORMED,
        mutate=lambda r: {**r, 5: bytes(257), 6: bytes(63)},
    ),
    _AcceptCase(
        comment="a 257-byte value, signature not over it: TOO_LARGE first",
        flags=("CheckOrder", "SizeLimit"),
        clause="DHT-3.3",
        error=ErrorCode.TOO_LARGE,
        mutate=lambda r: {**r, 5: bytes(257)},
    ),
    _AcceptCase(
        comment="small-order key and a bad signature: BAD_KEY first",
        flags=("CheckOrder", "BadKey"),
        clause="DHT-3.3",
        error=ErrorCode.BAD_KEY,
        record=_p1_with_key(_IDENTITY_POINT),
        mutate=lambda r: {**r, 6: bytes(64)},
    ),
    _AcceptCase(
        comment="expired and a bad signature: BAD_SIGNATURE first",
        flags=("CheckOrder", "BadSignature"),
        clause="DHT-3.3",
        error=ErrorCode.BAD_SIGNATURE,
        record=partial(_good, expires_ms=T0_MS - 1),
        mutate=lambda r: {**r, 6: flip(r[6], 9)},
    ),
    _AcceptCase(
        comment="a peer record naming another node, offered under another key: WRONG_KEY first",
        flags=("CheckOrder", "WrongKey"),
        clause="DHT-3.3",
        error=ErrorCode.WRONG_KEY,
        record=lambda: _good(KeyType.PEER, _p2().node_id),
        store_key=lambda: derive_key(KeyType.PEER, _p1().node_id),
    ),
    _AcceptCase(
        comment="a peer record naming another node, expired: FORBIDDEN first",
        flags=("CheckOrder", "Entitlement"),
        clause="DHT-3.3",
        error=ErrorCode.FORBIDDEN,
        record=lambda: _good(KeyType.PEER, _p2().node_id, expires_ms=T0_MS),
    ),
    _AcceptCase(
        comment="an expired record offered under another key: WRONG_KEY first",
        flags=("CheckOrder", "WrongKey"),
        clause="DHT-3.3",
        error=ErrorCode.WRONG_KEY,
        record=partial(_good, KeyType.ROOM, b"room-1", expires_ms=T0_MS),
        store_key=_key_of(KeyType.ROOM, b"room-2"),
    ),
)


def _accepted(data: bytes, store_key: bytes | None, case: _AcceptCase) -> JsonObject:
    """The expected fields of `case`: the key and publisher, or the refusal code."""
    try:
        got = decode_record(cbor.decode(data), now=T0, key=store_key)
    except RemoteProtocolError as exc:
        assert case.error is not None and exc.code is case.error, (case.comment, exc)
        return {"expectedError": case.error.name}
    assert case.error is None, case.comment
    return {"key": got.key.hex(), "publisherId": got.publisher_id.hex()}


def _accept_tests(v: Vectors) -> None:
    tests = v.group("DhtRecordAcceptTest", now=T0, maxTtl=MAX_TTL)
    for case in ACCEPT_CASES:
        record = case.record()
        data = case.encode(record if case.mutate is None else case.mutate(record))
        store_key = None if case.store_key is None else case.store_key()
        v.test(
            tests,
            comment=case.comment,
            result="valid" if case.error is None else "invalid",
            clause=case.clause,
            flags=case.flags,
            record=data.hex(),
            storeKey=None if store_key is None else store_key.hex(),
            **_accepted(data, store_key, case),
        )


# ------------------------------------------------------------------ holding


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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Offer:
    """One store step: publisher `n`'s record (the `_record` arguments) at `at`; `expect`
    the outcome or refusal code the reference must give (None: not checked)."""

    at: float
    comment: str
    n: int
    key_type: KeyType = KeyType.ROOM
    ident: bytes = b"room-1"
    seq: int = 1
    expires_ms: int = _EXPIRES
    value: bytes = b"v"
    expect: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _StoreCase:
    comment: str
    clause: str
    flags: tuple[str, ...] = ()
    steps: tuple[_Offer, ...]


def _offer(at: float, comment: str, n: int, expect: str | None = None, **record: Any) -> _Offer:
    return _Offer(at=at, comment=comment, n=n, expect=expect, **record)


_A1: Final = _offer(T0, "A's record, seq 1", 1)


def _peers(*ns: int) -> tuple[_Offer, ...]:
    return tuple(
        _offer(T0 + n, f"publisher {n}'s peer record", n, key_type=KeyType.PEER) for n in ns
    )


_DEFAULT_CASES: Final = (
    _StoreCase(
        comment="a first record is stored",
        clause="DHT-4.1",
        steps=(_offer(T0, "A's record, seq 1", 1, "STORED"),),
    ),
    _StoreCase(
        comment="a higher seq replaces the held record",
        clause="DHT-3.5",
        flags=("Sequence",),
        steps=(_A1, _offer(T0 + 1, "A's record, seq 2", 1, "REPLACED", seq=2, value=b"w")),
    ),
    _StoreCase(
        comment="the same seq with identical bytes changes nothing",
        clause="DHT-3.5",
        flags=("Sequence",),
        steps=(_A1, _offer(T0 + 1, "the same record again", 1, "UNCHANGED")),
    ),
    _StoreCase(
        comment="the same seq with different bytes is refused; the held one stays",
        clause="DHT-3.5",
        flags=("Sequence",),
        steps=(_A1, _offer(T0 + 1, "seq 1 with another value", 1, "STALE_SEQUENCE", value=b"w")),
    ),
    _StoreCase(
        comment="the same seq with another expiry is refused",
        clause="DHT-3.5",
        flags=("Sequence",),
        steps=(
            _A1,
            _offer(
                T0 + 1,
                "seq 1 with a later expiry",
                1,
                "STALE_SEQUENCE",
                expires_ms=_EXPIRES + 1000,
            ),
        ),
    ),
    _StoreCase(
        comment="a lower seq is refused",
        clause="DHT-3.5",
        flags=("Sequence",),
        steps=(
            _offer(T0, "A's record, seq 5", 1, seq=5),
            _offer(T0 + 1, "A's record, seq 4", 1, "STALE_SEQUENCE", seq=4, value=b"w"),
        ),
    ),
    _StoreCase(
        comment="a room key holds one record per publisher, ordered by publisher id",
        clause="DHT-4.1",
        flags=("SetOfPublishers",),
        steps=tuple(
            _offer(T0 + n, f"publisher {n}'s room-1 record", n, "STORED") for n in (1, 2, 3)
        ),
    ),
    _StoreCase(
        comment="seq is per publisher: another publisher's lower seq is stored",
        clause="DHT-3.5",
        flags=("SetOfPublishers", "Sequence"),
        steps=(
            _offer(T0, "publisher 1, seq 9", 1, seq=9),
            _offer(T0 + 1, "publisher 2, seq 1", 2, "STORED", seq=1),
        ),
    ),
    _StoreCase(
        comment="once the held record expired, a lower seq is a new entry",
        clause="DHT-4.3",
        flags=("Sequence", "ExpiryFrees"),
        steps=(
            _offer(T0, "A's record expiring at T0 + 10 s", 1, expires_ms=T0_MS + 10_000),
            _offer(
                T0 + 10, "A's seq 0 at T0 + 10 s", 1, "STORED", seq=0, expires_ms=T0_MS + 20_000
            ),
        ),
    ),
    _StoreCase(
        comment="1 ms before the held record expires, a lower seq is still stale",
        clause="DHT-4.3",
        flags=("Sequence", "Boundary"),
        steps=(
            _offer(T0, "A's record expiring at T0 + 10 s", 1, expires_ms=T0_MS + 10_000),
            _offer(
                T0 + 9.999,
                "A's seq 0 at T0 + 9.999 s",
                1,
                "STALE_SEQUENCE",
                seq=0,
                expires_ms=T0_MS + 20_000,
            ),
        ),
    ),
)

_PER_KEY_CASES: Final = (
    _StoreCase(
        comment="a third publisher under a key holding its quota of 2 is refused",
        clause="DHT-4.4",
        flags=("Quota", "SetOfPublishers"),
        steps=(
            _offer(T0, "publisher 1", 1),
            _offer(T0 + 1, "publisher 2", 2),
            _offer(T0 + 2, "publisher 3", 3, "QUOTA"),
        ),
    ),
    _StoreCase(
        comment="a full key still takes a newer record of a held publisher",
        clause="DHT-4.4",
        flags=("Quota", "Replacement"),
        steps=(
            _offer(T0, "publisher 1", 1),
            _offer(T0 + 1, "publisher 2", 2),
            _offer(T0 + 2, "publisher 2, seq 2", 2, "REPLACED", seq=2),
        ),
    ),
    _StoreCase(
        comment="an expired record frees its place under the key",
        clause="DHT-4.3",
        flags=("Quota", "ExpiryFrees"),
        steps=(
            _offer(T0, "publisher 1, expiring at T0 + 5 s", 1, expires_ms=T0_MS + 5_000),
            _offer(T0 + 1, "publisher 2", 2),
            _offer(T0 + 5, "publisher 3 at T0 + 5 s", 3, "STORED"),
        ),
    ),
)

_PER_PUBLISHER_CASES: Final = (
    _StoreCase(
        comment="a publisher holding its quota of 2 records cannot add a third",
        clause="DHT-4.4",
        flags=("Quota",),
        steps=(
            _offer(T0, "publisher 1 in room-1", 1, ident=b"room-1"),
            _offer(T0 + 1, "publisher 1's peer record", 1, key_type=KeyType.PEER),
            _offer(T0 + 2, "publisher 1 in room-2", 1, "QUOTA", ident=b"room-2"),
        ),
    ),
    _StoreCase(
        comment="the per-publisher quota does not limit other publishers",
        clause="DHT-4.4",
        flags=("Quota", "SetOfPublishers"),
        steps=(
            _offer(T0, "publisher 1 in room-1", 1, ident=b"room-1"),
            _offer(T0 + 1, "publisher 1 in room-2", 1, ident=b"room-2"),
            _offer(T0 + 2, "publisher 2 in room-2", 2, "STORED", ident=b"room-2"),
        ),
    ),
)

_TOTAL_CASES: Final = (
    _StoreCase(
        comment="a holder at its total quota of 3 refuses a new entry",
        clause="DHT-4.4",
        flags=("Quota",),
        steps=(
            *_peers(1, 2, 3),
            _offer(T0 + 4, "publisher 4's peer record", 4, "QUOTA", key_type=KeyType.PEER),
        ),
    ),
    _StoreCase(
        comment="a holder at its total quota still replaces a held entry",
        clause="DHT-4.4",
        flags=("Quota", "Replacement"),
        steps=(
            *_peers(1, 2, 3),
            _offer(
                T0 + 4,
                "publisher 3's peer record, seq 2",
                3,
                "REPLACED",
                key_type=KeyType.PEER,
                seq=2,
            ),
        ),
    ),
)

#: The store sequences, one group per set of quotas.
STORE_GROUPS: Final = (
    (StorageLimits(), _DEFAULT_CASES),
    (StorageLimits(per_key=2, per_publisher=256, total=100_000), _PER_KEY_CASES),
    (StorageLimits(per_key=64, per_publisher=2, total=100_000), _PER_PUBLISHER_CASES),
    (StorageLimits(per_key=64, per_publisher=256, total=3), _TOTAL_CASES),
)


def _hold(table: RecordTable, offer: _Offer) -> JsonObject:
    """Offer one record to `table` (after expiring what is due) and give the step's record."""
    record = _record(
        offer.n,
        offer.key_type,
        offer.ident,
        seq=offer.seq,
        expires_ms=offer.expires_ms,
        value=offer.value,
    )
    table.expire(now=offer.at)
    step: JsonObject = {"comment": offer.comment, "now": offer.at, "record": record.encode().hex()}
    try:
        check_record(record, now=offer.at)
        step["outcome"] = table.put(record).name
    except RemoteProtocolError as exc:
        step["expectedError"] = exc.code.name
    got = step.get("outcome", step.get("expectedError"))
    assert offer.expect is None or got == offer.expect, (offer.comment, got)
    return step


def _store_case(limits: StorageLimits, case: _StoreCase) -> JsonObject:
    """The fields of one store-sequence test: its steps, result and what the last key holds."""
    table = RecordTable(limits)
    steps = [_hold(table, offer) for offer in case.steps]
    last = case.steps[-1]
    key = _record(last.n, last.key_type, last.ident).key
    held = table.get(key, now=last.at)
    result = "invalid" if "expectedError" in steps[-1] else "valid"
    return {"result": result, "steps": steps, "held": [r.encode().hex() for r in held]}


def _store_tests(v: Vectors) -> None:
    for limits, cases in STORE_GROUPS:
        tests = v.group(
            "DhtStoreSequenceTest",
            limits={
                "perKey": limits.per_key,
                "perPublisher": limits.per_publisher,
                "total": limits.total,
            },
        )
        for case in cases:
            done = _store_case(limits, case)
            v.test(
                tests,
                comment=case.comment,
                result=done.pop("result"),
                clause=case.clause,
                flags=case.flags,
                **done,
            )


def build() -> JsonObject:
    v = Vectors("dht_records", "railgun-dht-records-v1", HEADER, NOTES)
    _sign_tests(v)
    _accept_tests(v)
    _store_tests(v)
    return v.document()
