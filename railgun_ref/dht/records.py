"""Signed, typed DHT records (DHT-3.x).

A record is the deterministic CBOR map ``{0: key type, 1: ident, 2: publisher
key, 3: seq, 4: expires_ms, 5: value, 6: signature}``; the signature is the
publisher's Ed25519 signature over ``RECORD_DOMAIN || CBOR(map without 6)``.
It is stored under ``derive_key(type, ident)`` (DHT-2.1).

Acceptance (DHT-3.3), checked in this order so every implementation reports
the same code: shape (MALFORMED), size (TOO_LARGE), publisher key (BAD_KEY),
signature (BAD_SIGNATURE), key match (WRONG_KEY), entitlement (FORBIDDEN),
expiry (EXPIRED), TTL bound (TTL_TOO_LONG). Freshness relative to what a
holder already has (STALE_SEQUENCE) is the store's business (DHT-3.5).

DHT-3.4 entitlement: a ``peer`` or ``capability`` record's ident MUST be the
publisher's own NodeId — nobody can announce presence or capabilities for
another node. ``room``, ``rendezvous`` and ``bootstrap`` keys hold one record
per publisher (a set), so one publisher can never replace another's entry.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Final, Self

from railgun_ref.core.constants import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.keys import MAX_IDENT_SIZE, KeyType, derive_key, parse_key_type
from railgun_ref.identity.keys import Identity, node_id_of, public_key_problem, verify
from railgun_ref.wire import cbor

RECORD_DOMAIN: Final = b"railgun/v1/record\x00"
#: DHT-3.2: a record's value is at most this many bytes.
MAX_VALUE_SIZE: Final = 256
#: DHT-3.2: a record's expiry is at most this far ahead of the holder's clock (7 days + skew).
MAX_TTL: Final = 7 * 24 * 3600.0 + 300.0
_UINT64_MAX: Final = 2**64 - 1
_SELF_KEYED: Final = frozenset({KeyType.PEER, KeyType.CAPABILITY})


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    key_type: KeyType
    ident: bytes
    publisher_key: bytes
    seq: int
    expires_ms: int
    value: bytes
    signature: bytes
    key: bytes = field(init=False, compare=False)
    publisher_id: NodeId = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", derive_key(self.key_type, self.ident))
        object.__setattr__(self, "publisher_id", node_id_of(self.publisher_key))

    @property
    def expires_at(self) -> float:
        return self.expires_ms / 1000.0

    def signed_fields(self) -> dict[int, Any]:
        return {
            0: int(self.key_type),  # a plain int, as from_cbor_value expects
            1: self.ident,
            2: self.publisher_key,
            3: self.seq,
            4: self.expires_ms,
            5: self.value,
        }

    def to_cbor_value(self) -> dict[int, Any]:
        return {**self.signed_fields(), 6: self.signature}

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor_value())

    @classmethod
    def from_cbor_value(cls, value: object) -> Self:
        """Parse the shape of a record (not its signature): MALFORMED/TOO_LARGE only."""
        if not isinstance(value, dict) or value.keys() != set(range(7)):
            raise RemoteProtocolError(ErrorCode.MALFORMED, "record must be a map with keys 0..6")
        ident, publisher_key, seq, expires_ms, payload, signature = (value[i] for i in range(1, 7))
        key_type = parse_key_type(value[0])
        if not isinstance(ident, bytes) or not isinstance(payload, bytes):
            raise RemoteProtocolError(ErrorCode.MALFORMED, "ident and value are byte strings")
        if not isinstance(publisher_key, bytes) or len(publisher_key) != PUBLIC_KEY_SIZE:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "publisher key must be 32 bytes")
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "signature must be 64 bytes")
        for name, number in (("seq", seq), ("expiry", expires_ms)):
            if type(number) is not int or number < 0:
                raise RemoteProtocolError(ErrorCode.MALFORMED, f"{name} is an unsigned integer")
        if len(ident) > MAX_IDENT_SIZE or len(payload) > MAX_VALUE_SIZE:
            raise RemoteProtocolError(ErrorCode.TOO_LARGE, "ident or value over its size limit")
        return cls(
            key_type=key_type,
            ident=ident,
            publisher_key=publisher_key,
            seq=seq,
            expires_ms=expires_ms,
            value=payload,
            signature=signature,
        )


def sign_record(
    identity: Identity,
    *,
    key_type: KeyType,
    ident: bytes,
    seq: int,
    expires_ms: int,
    value: bytes,
) -> Record:
    """Build and sign a record as `identity` (the publisher)."""
    if len(value) > MAX_VALUE_SIZE or len(ident) > MAX_IDENT_SIZE:
        raise LocalProtocolError("record ident or value over its size limit")
    if not 0 <= seq <= _UINT64_MAX or not 0 <= expires_ms <= _UINT64_MAX:
        raise LocalProtocolError("seq and expiry are unsigned 64-bit integers")
    unsigned = Record(
        key_type=key_type,
        ident=ident,
        publisher_key=identity.public_key,
        seq=seq,
        expires_ms=expires_ms,
        value=value,
        signature=bytes(SIGNATURE_SIZE),
    )
    signature = identity.sign(RECORD_DOMAIN + cbor.encode(unsigned.signed_fields()))
    return dataclasses.replace(unsigned, signature=signature)


def check_record(record: Record, *, now: float, key: bytes | None = None) -> None:
    """DHT-3.3: accept `record` (stored under `key` if given) or raise why not."""
    problem = public_key_problem(record.publisher_key)
    if problem is not None:
        raise RemoteProtocolError(ErrorCode.BAD_KEY, problem)
    if not verify(
        record.publisher_key,
        RECORD_DOMAIN + cbor.encode(record.signed_fields()),
        record.signature,
    ):
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "record signature does not verify")
    if key is not None and key != record.key:
        raise RemoteProtocolError(ErrorCode.WRONG_KEY, "record does not derive to this key")
    if record.key_type in _SELF_KEYED and record.ident != record.publisher_id:
        raise RemoteProtocolError(
            ErrorCode.FORBIDDEN, f"a {record.key_type.name.lower()} record names its publisher"
        )
    if record.expires_at <= now:
        raise RemoteProtocolError(ErrorCode.EXPIRED, "record expiry is past")
    if record.expires_at > now + MAX_TTL:
        raise RemoteProtocolError(ErrorCode.TTL_TOO_LONG, "record expires too far ahead")


def decode_record(value: object, *, now: float, key: bytes | None = None) -> Record:
    """Parse and fully check a record received from a peer."""
    record = Record.from_cbor_value(value)
    check_record(record, now=now, key=key)
    return record
