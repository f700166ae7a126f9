"""Rendezvous keys and mailbox keys of store-and-forward (SF-1.x).

Theory of operation:

1. Time is cut into *epochs* of ``epoch_length`` seconds (one day by
   default): ``epoch = floor(now / epoch_length)`` (SF-1.1).
2. The *rendezvous id* of a recipient in a room for an epoch is HKDF-SHA-256
   (RFC 5869) with the room secret as input keying material, the fixed salt
   `RENDEZVOUS_SALT` and the info ``"railgun/v1/sf-rendezvous" || 0x00 ||
   recipient NodeId || epoch (8 bytes, big-endian)``, 32 bytes of output
   (SF-1.2). Sender and recipient agree on it with no message: both hold the
   room secret (closed rooms) and the recipient's NodeId, and both read the
   epoch off their clocks. Someone without the room secret cannot compute it,
   and two epochs' ids of one recipient look unrelated to them.
3. The *store key* of a rendezvous is an Ed25519 key pair derived from the
   rendezvous id alone (SF-1.5): every member of the room can derive it,
   nobody else can. The *rendezvous key* -- the DHT key holders, stores and
   pickups name -- is ``derive_key(RENDEZVOUS, store public key)`` (DHT-2.1,
   SF-1.3), domain separated from every other DHT key. A holder that is
   shown the store public key checks that it gives the rendezvous key, and
   a signature under it proves the sender knows the room secret (SF-3.5),
   as the announce key of a room record does (ROOM-6.5).
4. The *mailbox key* of that rendezvous is an Ed25519 key pair derived by the
   recipient alone from its identity seed: seed = HKDF-SHA-256(ikm = identity
   seed, salt = `MAILBOX_SALT`, info = ``"railgun/v1/sf-mailbox" || 0x00 ||
   rendezvous id``). Only the recipient can sign with it; it signs pickups and
   delivery receipts, and its public half travels in store requests (SF-1.4).
   Like the rendezvous id it changes every epoch, so it links nothing.
"""

import hashlib
import hmac
from typing import Final

from railgun_ref.core import cbor
from railgun_ref.core.constants import NODE_ID_SIZE, SEED_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.identity.keys import Identity

#: SF-1.2: HKDF salt of rendezvous ids.
RENDEZVOUS_SALT: Final = b"railgun/v1/sf-rendezvous-salt"
#: SF-1.2: the info prefix of rendezvous ids.
RENDEZVOUS_INFO: Final = b"railgun/v1/sf-rendezvous\x00"
#: SF-1.4: HKDF salt of mailbox seeds.
MAILBOX_SALT: Final = b"railgun/v1/sf-mailbox-salt"
#: SF-1.4: the info prefix of mailbox seeds.
MAILBOX_INFO: Final = b"railgun/v1/sf-mailbox\x00"
#: SF-1.5: HKDF salt of store key seeds.
STORE_KEY_SALT: Final = b"railgun/v1/sf-store-key-salt"
#: SF-1.5: the info of store key seeds.
STORE_KEY_INFO: Final = b"railgun/v1/sf-store-key\x00"
#: SF-1.2: a rendezvous id is this many bytes.
RENDEZVOUS_ID_SIZE: Final = 32
#: SF-1.2: a room secret is at least this many bytes.
MIN_ROOM_SECRET_SIZE: Final = 16
#: SF-1.1: default epoch length, seconds (one day).
DEFAULT_EPOCH_LENGTH: Final = 86_400.0


def hkdf_sha256(*, ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 HKDF with SHA-256: extract, then expand to `length` bytes."""
    if not 0 < length <= 255 * 32:
        raise LocalProtocolError("HKDF-SHA-256 output is 1..8160 bytes")
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def epoch_of(now: float, epoch_length: float = DEFAULT_EPOCH_LENGTH) -> int:
    """SF-1.1: the epoch number of time `now` (seconds since the Unix epoch)."""
    if not epoch_length > 0 or now < 0:
        raise LocalProtocolError("epoch length must be positive and now not negative")
    return int(now // epoch_length)


def rendezvous_id(room_secret: bytes, recipient: NodeId, epoch: int) -> bytes:
    """SF-1.2: the rendezvous id of `recipient` in the room of `room_secret` for `epoch`."""
    if len(room_secret) < MIN_ROOM_SECRET_SIZE:
        raise LocalProtocolError(f"a room secret is at least {MIN_ROOM_SECRET_SIZE} bytes")
    if len(recipient) != NODE_ID_SIZE:
        raise LocalProtocolError(f"a recipient NodeId is {NODE_ID_SIZE} bytes")
    if not 0 <= epoch < 2**64:
        raise LocalProtocolError("an epoch is an unsigned 64-bit integer")
    info = RENDEZVOUS_INFO + recipient + epoch.to_bytes(8, "big")
    return hkdf_sha256(ikm=room_secret, salt=RENDEZVOUS_SALT, info=info)


def store_identity(rendezvous: bytes) -> Identity:
    """SF-1.5: the store key pair of a rendezvous id (every member of the room can derive it)."""
    if len(rendezvous) != RENDEZVOUS_ID_SIZE:
        raise LocalProtocolError("a rendezvous id is 32 bytes")
    return Identity.from_seed(hkdf_sha256(ikm=rendezvous, salt=STORE_KEY_SALT, info=STORE_KEY_INFO))


def key_of_store_key(store_public_key: bytes) -> bytes:
    """SF-1.3: the rendezvous key named by a store public key."""
    return derive_key(KeyType.RENDEZVOUS, store_public_key)


def rendezvous_key(room_secret: bytes, recipient: NodeId, epoch: int) -> bytes:
    """SF-1.3: the DHT key holders of this rendezvous announce themselves under."""
    rid = rendezvous_id(room_secret, recipient, epoch)
    return key_of_store_key(store_identity(rid).public_key)


def mailbox_identity(identity_seed: bytes, rendezvous: bytes) -> Identity:
    """SF-1.4: the recipient's mailbox key pair for one rendezvous id."""
    if len(identity_seed) != SEED_SIZE or len(rendezvous) != RENDEZVOUS_ID_SIZE:
        raise LocalProtocolError("an identity seed and a rendezvous id are 32 bytes each")
    seed = hkdf_sha256(ikm=identity_seed, salt=MAILBOX_SALT, info=MAILBOX_INFO + rendezvous)
    return Identity.from_seed(seed)


def pickup_epochs(now: float, *, ttl: float, epoch_length: float = DEFAULT_EPOCH_LENGTH) -> range:
    """SF-5.1: the epochs a returning recipient asks for: every one a live message can be in."""
    current = epoch_of(now, epoch_length)
    oldest = epoch_of(max(0.0, now - ttl), epoch_length)
    return range(current, oldest - 1, -1)


#: SF-3.7: a rendezvous record lives at most this long (repair rounds renew it), seconds.
RECORD_TTL_CAP: Final = 7 * 86_400.0


def encode_rendezvous_value(address: tuple[str, int]) -> bytes:
    """SF-3.7: a rendezvous record's value: ``CBOR([host, port])``, where the holder listens."""
    host, port = address
    if not host or not 1 <= port <= 0xFFFF:
        raise LocalProtocolError("a host and a port in 1..65535")
    return cbor.encode([host, port])


def decode_rendezvous_value(value: bytes) -> tuple[str, int]:
    """SF-3.7: the address a rendezvous record names; `RemoteProtocolError` otherwise."""
    decoded = cbor.decode(value)
    if (
        type(decoded) is not list
        or len(decoded) != 2
        or type(decoded[0]) is not str
        or not decoded[0]
        or type(decoded[1]) is not int
        or not 1 <= decoded[1] <= 0xFFFF
    ):
        raise RemoteProtocolError(ErrorCode.MALFORMED, "a rendezvous value is [host, port]")
    return decoded[0], decoded[1]
