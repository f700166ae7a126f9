"""Signed DHT records: round trip, shape checks and the refusal order (DHT-3.2 .. DHT-3.4)."""

import dataclasses
from typing import Any

import pytest

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.dht.keys import MAX_IDENT_SIZE, KeyType, derive_key
from railgun_ref.dht.records import (
    MAX_TTL,
    MAX_VALUE_SIZE,
    RECORD_DOMAIN,
    Record,
    check_record,
    decode_record,
)
from railgun_ref.identity.keys import verify
from railgun_ref.wire import cbor

from .helpers import HOUR_MS, T0, ident, record

ALICE = ident(1)
BOB = ident(2)
#: The identity point: a canonical encoding of a small-order key (ID-2.2).
SMALL_ORDER_KEY = b"\x01" + bytes(31)
#: y = p (2**255 - 19): not a canonical encoding (ID-2.2).
NON_CANONICAL_KEY = (2**255 - 19).to_bytes(32, "little")
OTHER_KEY = derive_key(KeyType.ROOM, b"another room")


def refusal(rec: Record, *, now: float = T0, key: bytes | None = None) -> ErrorCode:
    with pytest.raises(RemoteProtocolError) as info:
        check_record(rec, now=now, key=key)
    return info.value.code


def shape_refusal(value: object) -> ErrorCode:
    with pytest.raises(RemoteProtocolError) as info:
        Record.from_cbor_value(value)
    return info.value.code


def test_sign_check_round_trip() -> None:
    """DHT-3.3: a record signed by its publisher passes every check and survives CBOR."""
    rec = record(ALICE)
    check_record(rec, now=T0, key=derive_key(KeyType.ROOM, b"room-1"))
    decoded = decode_record(cbor.decode(rec.encode()), now=T0, key=rec.key)
    assert decoded == rec
    assert decoded.encode() == rec.encode()
    assert decoded.publisher_id == ALICE.node_id
    assert decoded.expires_at == HOUR_MS / 1000


def test_signature_covers_domain_and_signed_fields() -> None:
    """DHT-3.1: the signature is over RECORD_DOMAIN || CBOR(map without the signature)."""
    rec = record(ALICE)
    assert set(rec.to_cbor_value()) == set(range(7))
    assert verify(ALICE.public_key, RECORD_DOMAIN + cbor.encode(rec.signed_fields()), rec.signature)
    assert not verify(ALICE.public_key, cbor.encode(rec.signed_fields()), rec.signature)


def test_self_keyed_records_of_their_publisher_pass() -> None:
    """DHT-3.4: a peer or capability record naming its own publisher is accepted."""
    for key_type in (KeyType.PEER, KeyType.CAPABILITY):
        check_record(record(ALICE, key_type=key_type, ident_bytes=ALICE.node_id), now=T0)


# ------------------------------------------------------------------ refusal order


def test_bad_key_comes_first() -> None:
    """DHT-3.3: an unacceptable publisher key is BAD_KEY, before any later check."""
    for bad in (SMALL_ORDER_KEY, NON_CANONICAL_KEY):
        # also unsigned, under the wrong key, forbidden and expired
        rec = dataclasses.replace(
            record(ALICE, key_type=KeyType.PEER, ident_bytes=BOB.node_id, expires_ms=0),
            publisher_key=bad,
        )
        assert refusal(rec, key=OTHER_KEY) is ErrorCode.BAD_KEY


def test_bad_signature_before_key_match() -> None:
    """DHT-3.3: a forged signature is BAD_SIGNATURE even if the record is wrong in other ways."""
    rec = record(ALICE, key_type=KeyType.PEER, ident_bytes=BOB.node_id, expires_ms=0)
    forged = dataclasses.replace(rec, signature=bytes(64))
    assert refusal(forged, key=OTHER_KEY) is ErrorCode.BAD_SIGNATURE
    other_signer = dataclasses.replace(rec, signature=record(BOB).signature)
    assert refusal(other_signer) is ErrorCode.BAD_SIGNATURE


def test_wrong_key_before_entitlement() -> None:
    """DHT-3.3: a record offered under a key it does not derive to is WRONG_KEY."""
    rec = record(ALICE, key_type=KeyType.PEER, ident_bytes=BOB.node_id, expires_ms=0)
    assert refusal(rec, key=OTHER_KEY) is ErrorCode.WRONG_KEY
    assert refusal(record(ALICE), key=OTHER_KEY) is ErrorCode.WRONG_KEY


@pytest.mark.parametrize("key_type", [KeyType.PEER, KeyType.CAPABILITY])
def test_forbidden_before_expiry(key_type: KeyType) -> None:
    """DHT-3.4: a peer/capability record for another node is FORBIDDEN."""
    rec = record(ALICE, key_type=key_type, ident_bytes=BOB.node_id, expires_ms=0)
    assert refusal(rec, key=rec.key) is ErrorCode.FORBIDDEN


@pytest.mark.parametrize("key_type", [KeyType.ROOM, KeyType.RENDEZVOUS, KeyType.BOOTSTRAP])
def test_set_valued_keys_accept_any_publisher(key_type: KeyType) -> None:
    """DHT-3.4: room, rendezvous and bootstrap keys take a record from any publisher."""
    check_record(record(BOB, key_type=key_type, ident_bytes=ALICE.node_id), now=T0)


def test_expired_at_exactly_now() -> None:
    """DHT-3.3: a record whose expiry is now (or past) is EXPIRED."""
    rec = record(ALICE, expires_ms=int(T0 * 1000))
    assert refusal(rec, now=T0) is ErrorCode.EXPIRED
    assert refusal(rec, now=T0 + 1) is ErrorCode.EXPIRED
    check_record(rec, now=T0 - 0.001)


def test_ttl_bound_is_inclusive() -> None:
    """DHT-3.2: expiry at most MAX_TTL ahead of the holder's clock; beyond is TTL_TOO_LONG."""
    at_limit = record(ALICE, expires_ms=int((T0 + MAX_TTL) * 1000))
    check_record(at_limit, now=T0)
    beyond = record(ALICE, expires_ms=int((T0 + MAX_TTL) * 1000) + 1)
    assert refusal(beyond, now=T0) is ErrorCode.TTL_TOO_LONG
    # The bound moves with the holder's clock.
    check_record(beyond, now=T0 + 1)


# ------------------------------------------------------------------ shape


def valid_map() -> dict[int, Any]:
    return record(ALICE).to_cbor_value()


def with_field(number: int, value: object) -> dict[int, Any]:
    out = valid_map()
    out[number] = value
    return out


def without_field(number: int) -> dict[int, Any]:
    out = valid_map()
    del out[number]
    return out


MALFORMED_SHAPES: list[tuple[str, object]] = [
    ("not a map", [1, 2, 3]),
    ("bytes", b"\xa7"),
    ("empty map", {}),
    ("missing signature", without_field(6)),
    ("missing key type", without_field(0)),
    ("extra field", {**valid_map(), 7: b""}),
    ("text keys", {str(k): v for k, v in valid_map().items()}),
    ("unknown key type", with_field(0, 9)),
    ("key type as text", with_field(0, "room")),
    ("key type bool", with_field(0, True)),
    ("ident text", with_field(1, "room-1")),
    ("value text", with_field(5, "hello")),
    ("short publisher key", with_field(2, bytes(31))),
    ("publisher key text", with_field(2, "k" * 32)),
    ("long signature", with_field(6, bytes(65))),
    ("signature list", with_field(6, [0] * 64)),
    ("negative seq", with_field(3, -1)),
    ("seq bool", with_field(3, True)),
    ("seq float", with_field(3, 1.0)),
    ("negative expiry", with_field(4, -5)),
    ("expiry text", with_field(4, "soon")),
    # shape is checked before size: an oversized ident with a bad seq is MALFORMED
    ("bad seq beats size", {**with_field(1, bytes(MAX_IDENT_SIZE + 1)), 3: -1}),
]


@pytest.mark.parametrize(("label", "value"), MALFORMED_SHAPES, ids=[s[0] for s in MALFORMED_SHAPES])
def test_shape_errors_are_malformed(label: str, value: object) -> None:
    """DHT-3.1: a record is the map {0..6} with typed fields; anything else is MALFORMED."""
    assert shape_refusal(value) is ErrorCode.MALFORMED


def test_oversized_ident_or_value_is_too_large() -> None:
    """DHT-3.2: ident over 64 bytes or value over 256 bytes is TOO_LARGE."""
    assert shape_refusal(with_field(1, bytes(MAX_IDENT_SIZE + 1))) is ErrorCode.TOO_LARGE
    assert shape_refusal(with_field(5, bytes(MAX_VALUE_SIZE + 1))) is ErrorCode.TOO_LARGE
    # ... and exactly at the limits the shape is fine (the signature then fails).
    at_limits = {**valid_map(), 1: bytes(MAX_IDENT_SIZE), 5: bytes(MAX_VALUE_SIZE)}
    rec = Record.from_cbor_value(at_limits)
    assert refusal(rec) is ErrorCode.BAD_SIGNATURE


def test_shape_parse_does_not_check_the_signature() -> None:
    """DHT-3.3: from_cbor_value checks only shape; decode_record runs the full check."""
    forged = with_field(6, bytes(64))
    assert Record.from_cbor_value(forged).signature == bytes(64)
    with pytest.raises(RemoteProtocolError) as info:
        decode_record(forged, now=T0)
    assert info.value.code is ErrorCode.BAD_SIGNATURE


def test_signing_refuses_out_of_range_fields() -> None:
    """DHT-3.2: the publisher cannot build an oversized or out-of-range record."""
    with pytest.raises(LocalProtocolError):
        record(ALICE, value=bytes(MAX_VALUE_SIZE + 1))
    with pytest.raises(LocalProtocolError):
        record(ALICE, ident_bytes=bytes(MAX_IDENT_SIZE + 1))
    with pytest.raises(LocalProtocolError):
        record(ALICE, seq=-1)
    with pytest.raises(LocalProtocolError):
        record(ALICE, expires_ms=2**64)


def test_cbor_value_round_trips_without_the_codec() -> None:
    """DHT-3.1: to_cbor_value and from_cbor_value are inverse, in memory as on the wire."""
    rec = record(ALICE, key_type=KeyType.CAPABILITY, ident_bytes=ALICE.node_id)
    assert Record.from_cbor_value(rec.to_cbor_value()) == rec
    assert type(rec.to_cbor_value()[0]) is int
