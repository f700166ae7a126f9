"""DHT key derivation: the exact rule, domain separation and the ident limit (DHT-2.1, DHT-2.2)."""

import hashlib
import itertools

import pytest

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.dht.keys import KEY_DOMAIN, MAX_IDENT_SIZE, KeyType, derive_key, parse_key_type

WIRE = {
    KeyType.PEER: (1, b"peer"),
    KeyType.ROOM: (2, b"room"),
    KeyType.RENDEZVOUS: (3, b"rendezvous"),
    KeyType.CAPABILITY: (4, b"capability"),
    KeyType.BOOTSTRAP: (5, b"bootstrap"),
}
IDENTS = [b"", b"\x00", b"room-42", bytes(range(32)), b"\xff" * MAX_IDENT_SIZE]


def test_key_types_have_the_seeds_names_and_numbers() -> None:
    """DHT-2.1: the five key types, their wire numbers and ASCII names."""
    assert {t: (t.value, t.wire_name) for t in KeyType} == WIRE


@pytest.mark.parametrize("key_type", list(KeyType))
@pytest.mark.parametrize("ident", IDENTS)
def test_derivation_follows_the_rule(key_type: KeyType, ident: bytes) -> None:
    """DHT-2.1: key = SHA-256("railgun/v1/dht-key" 0x00 type-name 0x00 ident)."""
    expected = hashlib.sha256(
        b"railgun/v1/dht-key\x00" + WIRE[key_type][1] + b"\x00" + ident
    ).digest()
    assert derive_key(key_type, ident) == expected
    assert len(expected) == 32
    assert KEY_DOMAIN == b"railgun/v1/dht-key\x00"


@pytest.mark.parametrize("ident", IDENTS)
def test_same_ident_under_different_types_gives_different_keys(ident: bytes) -> None:
    """DHT-2.1: domain separation between key types."""
    keys = {derive_key(t, ident) for t in KeyType}
    assert len(keys) == len(KeyType)
    # ... and from a bare hash of the ident computed anywhere else.
    assert hashlib.sha256(ident).digest() not in keys


def test_derivation_input_is_prefix_free() -> None:
    """DHT-2.1: no (type, ident) input is a prefix of another, so no two can collide.

    Type names contain no zero byte and none followed by the separator is a prefix
    of another: the input parses back to exactly one (type, ident).
    """
    for a, b in itertools.permutations(KeyType, 2):
        assert b"\x00" not in a.wire_name
        assert not (b.wire_name + b"\x00").startswith(a.wire_name + b"\x00")
    # The classic ambiguity of a plain concatenation: "room" + "x" vs "roo" + "mx".
    crafted = [(t, i) for t in KeyType for i in (b"", b"x", b"\x00x", t.wire_name)]
    keys = [derive_key(t, i) for t, i in crafted]
    assert len(set(keys)) == len(crafted)


def test_ident_length_limit() -> None:
    """DHT-2.2: an ident is at most 64 bytes."""
    assert MAX_IDENT_SIZE == 64
    derive_key(KeyType.ROOM, bytes(MAX_IDENT_SIZE))
    with pytest.raises(ValueError, match="at most 64"):
        derive_key(KeyType.ROOM, bytes(MAX_IDENT_SIZE + 1))


@pytest.mark.parametrize("value", list(range(1, 6)))
def test_key_type_parses_from_the_wire(value: int) -> None:
    """DHT-2.1: the wire numbers 1..5 name the key types."""
    assert parse_key_type(value) is KeyType(value)


@pytest.mark.parametrize("value", [0, 6, -1, 2**64, True, 1.0, "1", b"\x01", None, [1]])
def test_unknown_or_mistyped_key_type_is_malformed(value: object) -> None:
    """DHT-2.1: anything but an unsigned integer naming a key type is MALFORMED."""
    with pytest.raises(RemoteProtocolError) as info:
        parse_key_type(value)
    assert info.value.code is ErrorCode.MALFORMED
