"""Member announcements in the DHT with a proof of the room secret (ROOM-6.1, ROOM-6.2).

A member's DHT record under the room's key (DHT-2.1, type ``room``, ident
`dht_ident_of`) has the value::

    {0: 1, 1: host, 2: port, 3: announce public key, 4: proof}

where ``proof`` is the announce key's Ed25519 signature over
``"railgun/v1/room-announce-proof" || 0x00 || publisher key || CBOR({0: 1, 1: host, 2: port})``.
The announce key derives from the room secret (`announce_identity_of`), so:

* a *storing node*, which knows neither the secret nor the members, can
  check that the DHT ident is the one the announce key gives and that the
  proof verifies for this publisher: the publisher knew the secret
  (`check_announcement_proof`); it cannot tell a member from a removed one.
  A holder with `DhtConfig.room_proofs` runs this check on STORE (ROOM-6.5);
* a *member* additionally checks that the publisher is a member in its own
  log (ROOM-6.1) and ignores every other record.

`parse_announcement` raises only `RemoteProtocolError`.
"""

from dataclasses import dataclass
from typing import Final

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.identity.keys import public_key_problem, verify
from railgun_ref.rooms.ids import announce_identity_of, dht_ident_for_announce_key
from railgun_ref.wire import cbor

PROOF_DOMAIN: Final = b"railgun/v1/room-announce-proof\x00"
ANNOUNCE_VERSION: Final = 1
MAX_HOST_SIZE: Final = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Announcement:
    host: str
    port: int
    announce_key: bytes
    proof: bytes


def _address_part(host: str, port: int) -> bytes:
    return cbor.encode({0: ANNOUNCE_VERSION, 1: host, 2: port})


def room_announcement(secret: bytes, *, publisher: bytes, host: str, port: int) -> bytes:
    """ROOM-6.2: the DHT value announcing `publisher` at (host, port) in the room."""
    announce = announce_identity_of(secret)
    proof = announce.sign(PROOF_DOMAIN + publisher + _address_part(host, port))
    return cbor.encode({0: ANNOUNCE_VERSION, 1: host, 2: port, 3: announce.public_key, 4: proof})


def _malformed(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, f"room announcement: {reason}")


def parse_announcement(value: bytes) -> Announcement:
    """The fields of a room announcement (shape only). Raises only RemoteProtocolError."""
    data = cbor.decode(value)
    if not isinstance(data, dict) or data.keys() != set(range(5)):
        raise _malformed("must be a map with keys 0..4")
    if data[0] != ANNOUNCE_VERSION:
        raise RemoteProtocolError(ErrorCode.UNSUPPORTED_VERSION, "room announcement version")
    host, port, key, proof = data[1], data[2], data[3], data[4]
    if not (isinstance(host, str) and 1 <= len(host) <= MAX_HOST_SIZE):
        raise _malformed("host must be text of 1..64 code points")
    if type(port) is not int or not 1 <= port <= 65535:
        raise _malformed("port must be 1..65535")
    if not (isinstance(key, bytes) and len(key) == 32):
        raise _malformed("announce key must be 32 bytes")
    if not (isinstance(proof, bytes) and len(proof) == 64):
        raise _malformed("proof must be 64 bytes")
    return Announcement(host=host, port=port, announce_key=key, proof=proof)


def check_announcement_proof(value: bytes, *, publisher: bytes, dht_ident: bytes) -> Announcement:
    """ROOM-6.2: what a storing node can check; raises only RemoteProtocolError.

    WRONG_KEY if the announce key does not give `dht_ident`; FORBIDDEN if the
    proof does not verify for `publisher` (the publisher does not know the secret).
    """
    announcement = parse_announcement(value)
    if dht_ident_for_announce_key(announcement.announce_key) != dht_ident:
        raise RemoteProtocolError(ErrorCode.WRONG_KEY, "announce key of another room")
    signed = PROOF_DOMAIN + publisher + _address_part(announcement.host, announcement.port)
    key_ok = public_key_problem(announcement.announce_key) is None
    if not key_ok or not verify(announcement.announce_key, signed, announcement.proof):
        raise RemoteProtocolError(ErrorCode.FORBIDDEN, "no proof of the room secret")
    return announcement
