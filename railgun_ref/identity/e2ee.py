"""End-to-end encrypted room messages (ROOM-x).

What every path — central service, relays, storage peers — carries is an
opaque blob. Inside it, and only inside, are the sender's identity, the
message id, the send time, the body and the sender's signature.

Construction (all PyNaCl / libsodium primitives):

1. The inner message ``{0: sender key, 1: message id, 2: sent_ms, 3: body,
   4: Ed25519 signature}`` is signed over ``E2E_DOMAIN || room id ||
   CBOR({0..3})`` (ROOM-1.2), so a message cannot be replayed into another
   room, and padded (ISO/IEC 7816-4: 0x80 then zeros) to the padding
   buckets 256 B / 4 KiB / 64 KiB (ROOM-1.4).
2. It is encrypted once with a fresh 32-byte content key (XSalsa20-Poly1305
   secretbox, random nonce).
3. The content key is wrapped for each member with crypto_box between a
   fresh *ephemeral* X25519 key and the member's X25519 key (converted from
   their Ed25519 identity). Each wrap carries an 8-byte tag
   ``SHA-256("railgun/v1/wrap-tag" || eph || member)[:8]`` so a member finds
   its wrap without trial decryption, while tags of different messages
   cannot be linked (ROOM-1.3). Because the ephemeral key is used for one
   message only, the wrap nonce can be derived from the two public keys.

Randomness (content key, nonce, ephemeral key, message id) comes from an
injected byte source, so vectors are byte-exact and the module stays sans-IO.
`open_room_message` raises only `RemoteProtocolError`.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import nacl.bindings as sodium
import nacl.exceptions

from railgun_ref.core import cbor
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import Identity, RandomBytes, node_id_of, public_key_problem, verify

E2E_DOMAIN: Final = b"railgun/v1/room-message\x00"
_TAG_DOMAIN: Final = b"railgun/v1/wrap-tag\x00"
_NONCE_DOMAIN: Final = b"railgun/v1/wrap-nonce\x00"
#: ROOM-1.4: Rail Gun's padding buckets (small, medium, large), bytes.
SIZE_BUCKETS: Final = (256, 4096, 65536)
MESSAGE_ID_SIZE: Final = 16
#: ROOM-7.4: inner key 5, present only for content other than application messages.
CONTENT_APP: Final = 0
CONTENT_MEMBERSHIP: Final = 1
#: PRIV-4.4: a cover message; its receiver drops it after opening it.
CONTENT_COVER: Final = 2
#: ROOM-7.4, PRIV-4.4: the content types other than application messages.
_OTHER_CONTENT: Final = (CONTENT_MEMBERSHIP, CONTENT_COVER)
_VERSION: Final = 1
_TAG_SIZE: Final = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomMessage:
    room_id: bytes
    message_id: bytes
    sender_key: bytes
    sender_id: NodeId
    sent_ms: int
    body: bytes
    bucket: int  #: the padded size of the inner message
    content_type: int = CONTENT_APP  #: ROOM-7.4: CONTENT_MEMBERSHIP for a room's log


def bucket_for(size: int) -> int:
    """ROOM-1.4: the smallest bucket that holds `size` bytes plus the padding marker."""
    for bucket in SIZE_BUCKETS:
        if size + 1 <= bucket:
            return bucket
    raise LocalProtocolError(f"a message of {size} bytes exceeds the largest bucket")


def _x25519_public(ed_public: bytes) -> bytes:
    converted: bytes = sodium.crypto_sign_ed25519_pk_to_curve25519(ed_public)
    return converted


def _tag(ephemeral: bytes, member_x: bytes) -> bytes:
    return hashlib.sha256(_TAG_DOMAIN + ephemeral + member_x).digest()[:_TAG_SIZE]


def _wrap_nonce(ephemeral: bytes, member_x: bytes) -> bytes:
    return hashlib.sha256(_NONCE_DOMAIN + ephemeral + member_x).digest()[:24]


def seal_room_message(
    sender: Identity,
    *,
    room_id: bytes,
    members: Sequence[bytes],
    body: bytes,
    sent_ms: int,
    random_bytes: RandomBytes,
    content_type: int = CONTENT_APP,
    wrap_slots: int | None = None,
) -> tuple[bytes, bytes]:
    """Encrypt `body` for `members` (their Ed25519 public keys). Returns (blob, message id).

    With `wrap_slots` (PRIV-3.1), the wrap table is filled with dummy wraps to that
    many entries, so the blob's length does not give the number of members.
    """
    if not members:
        raise LocalProtocolError("a room message needs at least one member")
    message_id = random_bytes(MESSAGE_ID_SIZE)
    fields = _signed_fields(sender.public_key, message_id, sent_ms, body, content_type)
    signature = sender.sign(E2E_DOMAIN + room_id + cbor.encode(fields))
    inner = cbor.encode({**fields, 4: signature})
    bucket = bucket_for(len(inner))
    padded = inner + b"\x80" + bytes(bucket - len(inner) - 1)
    content_key = random_bytes(32)
    nonce = random_bytes(24)
    ciphertext = sodium.crypto_secretbox(padded, nonce, content_key)
    eph_public, eph_secret = sodium.crypto_box_seed_keypair(random_bytes(32))
    wraps = []
    for member in dict.fromkeys(members):  # each member once, order kept
        if public_key_problem(member) is not None:
            raise LocalProtocolError("a member key is not a usable Ed25519 key")
        member_x = _x25519_public(member)
        boxed = sodium.crypto_box(
            content_key, _wrap_nonce(eph_public, member_x), member_x, eph_secret
        )
        wraps.append([_tag(eph_public, member_x), boxed])
    if wrap_slots is not None:
        if wrap_slots < len(wraps):
            raise LocalProtocolError("wrap_slots is smaller than the member count")
        # PRIV-3.1: a dummy wrap is random bytes of a real wrap's shape.
        wraps += [
            [random_bytes(_TAG_SIZE), random_bytes(48)] for _ in range(wrap_slots - len(wraps))
        ]
    blob = cbor.encode([_VERSION, eph_public, wraps, nonce, ciphertext])
    return blob, message_id


def _signed_fields(
    sender: bytes, message_id: bytes, sent_ms: int, body: bytes, content_type: int
) -> dict[int, object]:
    """ROOM-1.2, ROOM-7.4: the signed part of the inner message (key 5 only when not app)."""
    fields: dict[int, object] = {0: sender, 1: message_id, 2: sent_ms, 3: body}
    if content_type != CONTENT_APP:
        fields[5] = content_type
    return fields


def _malformed(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, reason)


def _unwrap_content_key(recipient: Identity, eph_public: bytes, wraps: list[object]) -> bytes:
    """The content key from the wrap addressed to `recipient` (for `open_room_message`)."""
    my_x = _x25519_public(recipient.public_key)
    my_secret: bytes = sodium.crypto_sign_ed25519_sk_to_curve25519(
        recipient.seed + recipient.public_key
    )
    tag = _tag(eph_public, my_x)
    content_key = None
    for wrap in wraps:
        if not (
            isinstance(wrap, list) and len(wrap) == 2 and all(isinstance(x, bytes) for x in wrap)
        ):
            raise _malformed("each wrap is [tag, boxed key]")
        if wrap[0] == tag:
            try:
                content_key = sodium.crypto_box_open(
                    wrap[1], _wrap_nonce(eph_public, my_x), eph_public, my_secret
                )
            except (nacl.exceptions.CryptoError, ValueError, TypeError):
                raise RemoteProtocolError(
                    ErrorCode.BAD_SIGNATURE, "key wrap does not open"
                ) from None
            break
    if content_key is None:
        raise RemoteProtocolError(ErrorCode.FORBIDDEN, "not addressed to this member")
    return content_key


def open_room_message(recipient: Identity, blob: bytes, *, room_id: bytes) -> RoomMessage:
    """Decrypt and authenticate a blob addressed to `recipient`. Raises only RemoteProtocolError."""
    outer = cbor.decode(blob)
    if not isinstance(outer, list) or len(outer) != 5 or outer[0] != _VERSION:
        raise _malformed("room message must be [1, eph, wraps, nonce, ciphertext]")
    _, eph_public, wraps, nonce, ciphertext = outer
    if not (isinstance(eph_public, bytes) and len(eph_public) == 32):
        raise _malformed("ephemeral key must be 32 bytes")
    if not (isinstance(nonce, bytes) and len(nonce) == 24 and isinstance(ciphertext, bytes)):
        raise _malformed("nonce must be 24 bytes and ciphertext a byte string")
    if not isinstance(wraps, list):
        raise _malformed("wraps must be a list")
    content_key = _unwrap_content_key(recipient, eph_public, wraps)
    try:
        padded = sodium.crypto_secretbox_open(ciphertext, nonce, content_key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "ciphertext does not open") from None
    end = padded.rstrip(b"\x00")
    if not end.endswith(b"\x80") or len(padded) not in SIZE_BUCKETS:
        raise _malformed("bad padding")
    inner = cbor.decode(end[:-1])
    if not isinstance(inner, dict) or inner.keys() not in (set(range(5)), set(range(6))):
        raise _malformed("inner message must have keys 0..4 (and 5 for membership)")
    sender_key, message_id, sent_ms, body, signature = (inner[i] for i in range(5))
    content_type = inner.get(5, CONTENT_APP)
    if 5 in inner and content_type not in _OTHER_CONTENT:
        raise _malformed("unknown content type")
    if not (isinstance(sender_key, bytes) and isinstance(message_id, bytes)):
        raise _malformed("sender key and message id are byte strings")
    if len(message_id) != MESSAGE_ID_SIZE or type(sent_ms) is not int or sent_ms < 0:
        raise _malformed("message id is 16 bytes, sent_ms an unsigned integer")
    if not (isinstance(body, bytes) and isinstance(signature, bytes)):
        raise _malformed("body and signature are byte strings")
    signed = cbor.encode(_signed_fields(sender_key, message_id, sent_ms, body, content_type))
    if public_key_problem(sender_key) is not None or not verify(
        sender_key, E2E_DOMAIN + room_id + signed, signature
    ):
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "sender signature does not verify")
    return RoomMessage(
        room_id=room_id,
        message_id=message_id,
        sender_key=sender_key,
        sender_id=node_id_of(sender_key),
        sent_ms=sent_ms,
        body=body,
        bucket=len(padded),
        content_type=content_type,
    )
