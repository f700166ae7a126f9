"""What a holder stores: a room message sealed to its recipient and padded to a bucket (SF-8.2).

The E2EE room blob (ROOM-1) already hides the content, but its envelope
(room id, message id) must not reach a holder (SF-2.5). The sender so seals
``CBOR([room id, message id, expires_ms, blob])``, padded ISO/IEC 7816-4
style (0x80 then zeros), to the recipient's X25519 key (converted from its
Ed25519 identity) with crypto_box under a fresh ephemeral key; the nonce is
derived from the two public keys, since the ephemeral key is used once. The
stored ciphertext is ``ephemeral public key || box`` and is exactly one
bucket (SF-2.4) long. Randomness is injected (the ephemeral seed).
"""

import hashlib
from dataclasses import dataclass
from typing import Final

import nacl.bindings as sodium
import nacl.exceptions
import nacl.signing

from railgun_ref.core import cbor
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.identity.keys import Identity
from railgun_ref.storeforward.messages import BUCKETS

_NONCE_DOMAIN: Final = b"railgun/v1/sf-seal-nonce\x00"
#: SF-8.2: ephemeral public key (32) and the box's tag (16).
OVERHEAD: Final = 32 + 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsealed:
    """What the recipient finds in a stored ciphertext."""

    room_id: bytes
    message_id: bytes
    expires_ms: int
    blob: bytes


def _nonce(ephemeral: bytes, recipient_x: bytes) -> bytes:
    return hashlib.sha256(_NONCE_DOMAIN + ephemeral + recipient_x).digest()[:24]


def sealed_size(plain_size: int) -> int | None:
    """The bucket a plaintext of `plain_size` bytes seals into, or None if none holds it."""
    for bucket in BUCKETS:
        if plain_size + 1 + OVERHEAD <= bucket:
            return bucket
    return None


def seal(
    recipient_key: bytes,
    *,
    room_id: bytes,
    message_id: bytes,
    expires_ms: int,
    blob: bytes,
    ephemeral_seed: bytes,
) -> bytes:
    """SF-8.2: the bucket-sized ciphertext of a room message for the member `recipient_key`."""
    plain = cbor.encode([room_id, message_id, expires_ms, blob])
    bucket = sealed_size(len(plain))
    if bucket is None:
        raise LocalProtocolError(f"a message of {len(plain)} bytes does not fit the largest bucket")
    padded = plain + b"\x80" + bytes(bucket - OVERHEAD - len(plain) - 1)
    recipient_x: bytes = sodium.crypto_sign_ed25519_pk_to_curve25519(recipient_key)
    eph_public, eph_secret = sodium.crypto_box_seed_keypair(ephemeral_seed)
    boxed: bytes = sodium.crypto_box(
        padded, _nonce(eph_public, recipient_x), recipient_x, eph_secret
    )
    return bytes(eph_public) + boxed


def open_sealed(recipient: Identity, ciphertext: bytes) -> Unsealed:
    """SF-8.2: open a stored ciphertext; raises only `RemoteProtocolError`."""
    if len(ciphertext) not in BUCKETS:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "not a bucket-sized ciphertext")
    eph_public, boxed = ciphertext[:32], ciphertext[32:]
    signing = nacl.signing.SigningKey(recipient.seed)
    own_x = bytes(signing.verify_key.to_curve25519_public_key())
    own_secret = bytes(signing.to_curve25519_private_key())
    try:
        padded: bytes = sodium.crypto_box_open(
            boxed, _nonce(eph_public, own_x), eph_public, own_secret
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "not sealed to us") from None
    end = padded.rstrip(b"\x00")
    if not end.endswith(b"\x80"):
        raise RemoteProtocolError(ErrorCode.MALFORMED, "bad padding")
    value = cbor.decode(end[:-1])
    if (
        type(value) is not list
        or len(value) != 4
        or type(value[0]) is not bytes
        or type(value[1]) is not bytes
        or type(value[2]) is not int
        or type(value[3]) is not bytes
    ):
        raise RemoteProtocolError(ErrorCode.MALFORMED, "sealed content is [room, id, expiry, blob]")
    return Unsealed(room_id=value[0], message_id=value[1], expires_ms=value[2], blob=value[3])
