"""DHT key derivation for the design's five key types (DHT-2.x).

DHT-2.1: ``key = SHA-256("railgun/v1/dht-key" || 0x00 || type-name || 0x00 || ident)``
where type-name is the ASCII name (``peer``, ``room``, ``rendezvous``,
``capability``, ``bootstrap``) and ident the type's identifier bytes (a NodeId
for ``peer`` and ``capability``, a room id for ``room``...). The fixed prefix
and the zero separators make the input prefix-free, so no (type, ident) pair
can collide with another by construction, and keys of this protocol never
collide with hashes computed elsewhere.
"""

import hashlib
from enum import IntEnum
from typing import Final

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError

KEY_DOMAIN: Final = b"railgun/v1/dht-key\x00"
#: DHT-2.2: an ident is at most this many bytes.
MAX_IDENT_SIZE: Final = 64


class KeyType(IntEnum):
    """DHT-2.1: the design's key types, with their wire numbers."""

    PEER = 1  #: peer presence announcement, ident = NodeId of the publisher
    ROOM = 2  #: room membership, ident = room id; a set of member announcements
    RENDEZVOUS = 3  #: store-and-forward pickup point, ident = rendezvous id
    CAPABILITY = 4  #: device capability advertisement, ident = NodeId of the publisher
    BOOTSTRAP = 5  #: bootstrap node announcement, ident = network name

    @property
    def wire_name(self) -> bytes:
        return self.name.lower().encode("ascii")


def derive_key(key_type: KeyType, ident: bytes) -> bytes:
    """DHT-2.1: the 256-bit DHT key of (type, ident)."""
    if len(ident) > MAX_IDENT_SIZE:
        raise ValueError(f"ident is at most {MAX_IDENT_SIZE} bytes")
    return hashlib.sha256(KEY_DOMAIN + key_type.wire_name + b"\x00" + ident).digest()


def parse_key_type(value: object) -> KeyType:
    if type(value) is not int:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "key type must be an unsigned integer")
    try:
        return KeyType(value)
    except ValueError:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"unknown key type {value}") from None
