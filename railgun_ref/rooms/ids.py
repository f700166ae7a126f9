"""Room secrets and the identifiers derived from them (ROOM-2).

A closed room is named, on every wire, only by values derived from a 32-byte
random *room secret* that its creator draws from an injected byte source and
that travels only inside invitations, sealed to the invitee (ROOM-4):

* the **room id** ``SHA-256("railgun/v1/room-id" || 0x00 || secret)`` names the
  room on the central service, in P2P room frames and in the E2EE signature
  binding (ROOM-1.2); the genesis change commits to it (ROOM-3.2), which is
  how a service that never sees the secret ties a membership log to an id;
* the **announce key**, an Ed25519 key pair whose seed is
  ``SHA-256("railgun/v1/room-announce" || 0x00 || secret)``, signs each DHT
  member announcement (ROOM-6.2), so a storing node can check that the
  publisher knows the secret without learning it;
* the **DHT ident** ``SHA-256("railgun/v1/room-dht" || 0x00 || announce public
  key)`` is the ident of the room's DHT key (DHT-2.1, type ``room``): whoever
  knows only the room id (the central service) cannot find the members' DHT
  records, and a storing node can tie a record's announce key to its DHT key.

Human names never leave the device (ROOM-2.3). An id that is not 32 bytes,
or that no membership log backs, is a room from before closed rooms and is
refused (ROOM-2.4).
"""

import hashlib
from typing import Final

from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.identity.keys import Identity, RandomBytes

ROOM_SECRET_SIZE: Final = 32
ROOM_ID_SIZE: Final = 32
ROOM_ID_DOMAIN: Final = b"railgun/v1/room-id\x00"
ROOM_DHT_DOMAIN: Final = b"railgun/v1/room-dht\x00"
ROOM_ANNOUNCE_DOMAIN: Final = b"railgun/v1/room-announce\x00"


def new_room_secret(random_bytes: RandomBytes) -> bytes:
    """ROOM-2.1: a fresh room secret from the injected byte source (a CSPRNG in drivers)."""
    secret = random_bytes(ROOM_SECRET_SIZE)
    if len(secret) != ROOM_SECRET_SIZE:
        raise LocalProtocolError(f"the byte source gave {len(secret)} bytes, not 32")
    return secret


def _check_secret(secret: bytes) -> None:
    if len(secret) != ROOM_SECRET_SIZE:
        raise LocalProtocolError(f"a room secret is {ROOM_SECRET_SIZE} bytes")


def room_id_of(secret: bytes) -> bytes:
    """ROOM-2.2: the room id (central room id, P2P frames, E2EE binding)."""
    _check_secret(secret)
    return hashlib.sha256(ROOM_ID_DOMAIN + secret).digest()


def dht_ident_of(secret: bytes) -> bytes:
    """ROOM-2.2: the ident of the room's DHT key (type ``room``), via the announce key."""
    return dht_ident_for_announce_key(announce_identity_of(secret).public_key)


def dht_ident_for_announce_key(announce_key: bytes) -> bytes:
    """ROOM-6.2: what a storing node recomputes from the announce key a record carries."""
    return hashlib.sha256(ROOM_DHT_DOMAIN + announce_key).digest()


def announce_identity_of(secret: bytes) -> Identity:
    """ROOM-6.2: the room's announce key, shared by everyone who holds the secret."""
    _check_secret(secret)
    return Identity.from_seed(hashlib.sha256(ROOM_ANNOUNCE_DOMAIN + secret).digest())


def require_closed_room_id(room_id: bytes) -> bytes:
    """ROOM-2.4: refuse a room id that cannot be a closed room's (a plain name, say)."""
    if len(room_id) != ROOM_ID_SIZE:
        raise LocalProtocolError(
            "rooms named by a plain name are no longer supported (ROOM-2.4): "
            "create a room with create_room() and invite its members"
        )
    return room_id
