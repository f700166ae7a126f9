"""Invitations (ROOM-4): a signed, expiring offer that carries the room secret, sealed.

An invitation is the deterministic CBOR map (ROOM-4.1)::

    {0: 1, 1: room id, 2: inviter key, 3: invitee key, 4: ADD hash, 5: expires ms,
     6: ephemeral X25519 key, 7: sealed secret, 8: [+ change], 9: signature}

signed by the inviter over ``"railgun/v1/room-invitation" || 0x00 || CBOR(keys 0..8)``.
Key 8 is the inviter's whole log, the ADD included, so the invitee can check
on its own that the inviter is a member and that the ADD counts.

The room secret is sealed to the invitee like a libsodium sealed box, but
with the ephemeral key from the injected byte source (so vectors are exact):
``crypto_box(secret, nonce, invitee X25519, ephemeral secret)`` where the
invitee's X25519 key is converted from its Ed25519 key and
``nonce = SHA-256("railgun/v1/room-seal" || 0x00 || eph || invitee X25519)[:24]``.
`open_invitation` raises only `RemoteProtocolError`.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import nacl.bindings as sodium
import nacl.exceptions

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.identity.keys import Identity, RandomBytes, public_key_problem, verify
from railgun_ref.rooms.changes import HASH_SIZE, Change, ChangeKind, decode_change
from railgun_ref.rooms.ids import ROOM_ID_SIZE, ROOM_SECRET_SIZE, room_id_of
from railgun_ref.rooms.log import MAX_CHANGES, ChangeLog, Membership
from railgun_ref.wire import cbor

INVITATION_DOMAIN: Final = b"railgun/v1/room-invitation\x00"
SEAL_DOMAIN: Final = b"railgun/v1/room-seal\x00"
INVITATION_VERSION: Final = 1
_SEALED_SIZE: Final = ROOM_SECRET_SIZE + 16


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedInvitation:
    """What a valid invitation gives its invitee (ROOM-4.2)."""

    room_id: bytes
    secret: bytes
    inviter: bytes
    add: Change  #: the ADD this invitation offers; ACCEPT names its hash
    expires_ms: int
    log: ChangeLog  #: the inviter's log, verified, ADD included
    encoded: bytes

    @property
    def membership(self) -> Membership:
        return self.log.membership


def _seal_nonce(ephemeral: bytes, invitee_x: bytes) -> bytes:
    return hashlib.sha256(SEAL_DOMAIN + ephemeral + invitee_x).digest()[:24]


def _x25519(ed_public: bytes) -> bytes:
    converted: bytes = sodium.crypto_sign_ed25519_pk_to_curve25519(ed_public)
    return converted


def seal_invitation(
    inviter: Identity,
    *,
    secret: bytes,
    add: Change,
    log: Sequence[bytes],
    random_bytes: RandomBytes,
) -> bytes:
    """ROOM-4.1: the invitation offering `add` (already in `log`) to its subject."""
    eph_public, eph_secret = sodium.crypto_box_seed_keypair(random_bytes(32))
    invitee_x = _x25519(add.subject)
    sealed = sodium.crypto_box(secret, _seal_nonce(eph_public, invitee_x), invitee_x, eph_secret)
    body = {
        0: INVITATION_VERSION,
        1: add.room_id,
        2: inviter.public_key,
        3: add.subject,
        4: add.hash,
        5: add.expires_ms,
        6: eph_public,
        7: sealed,
        8: list(log),
    }
    signature = inviter.sign(INVITATION_DOMAIN + cbor.encode(body))
    return cbor.encode({**body, 9: signature})


def _malformed(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, f"invitation: {reason}")


def _fields(data: bytes) -> dict[int, object]:
    value = cbor.decode(data)
    if not isinstance(value, dict) or value.keys() != set(range(10)):
        raise _malformed("must be a map with keys 0..9")
    if value[0] != INVITATION_VERSION:
        raise RemoteProtocolError(ErrorCode.UNSUPPORTED_VERSION, "invitation version")
    sizes = {1: ROOM_ID_SIZE, 2: 32, 3: 32, 4: HASH_SIZE, 6: 32, 7: _SEALED_SIZE, 9: 64}
    for key, size in sizes.items():
        if not (isinstance(value[key], bytes) and len(value[key]) == size):
            raise _malformed(f"key {key} must be a {size}-byte string")
    if type(value[5]) is not int or value[5] < 0:
        raise _malformed("expiry must be an unsigned integer")
    changes = value[8]
    if not (isinstance(changes, list) and 1 <= len(changes) <= MAX_CHANGES):
        raise _malformed(f"the log is a list of 1..{MAX_CHANGES} changes")
    if not all(isinstance(c, bytes) for c in changes):
        raise _malformed("each change is a byte string")
    return value


def _unseal(invitee: Identity, ephemeral: bytes, sealed: bytes) -> bytes:
    my_x = _x25519(invitee.public_key)
    my_secret: bytes = sodium.crypto_sign_ed25519_sk_to_curve25519(
        invitee.seed + invitee.public_key
    )
    try:
        secret: bytes = sodium.crypto_box_open(
            sealed, _seal_nonce(ephemeral, my_x), ephemeral, my_secret
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise RemoteProtocolError(
            ErrorCode.BAD_SIGNATURE, "the sealed secret does not open"
        ) from None
    return secret


def _log_of(room_id: bytes, encoded: list[bytes]) -> ChangeLog:
    changes = [decode_change(c) for c in encoded]
    genesis = [c for c in changes if c.kind is ChangeKind.CREATE]
    if len(genesis) != 1 or genesis[0].room_id != room_id:
        raise RemoteProtocolError(ErrorCode.WRONG_KEY, "invitation: no genesis for this room")
    log = ChangeLog(genesis[0])
    log.insert(changes)
    if log.orphans:
        raise _malformed("the log misses a parent")
    return log


def open_invitation(invitee: Identity, data: bytes, *, now: float) -> OpenedInvitation:
    """ROOM-4.2: check everything an invitee can check; raises only RemoteProtocolError.

    Order of checks: shape, addressee (FORBIDDEN), inviter signature
    (BAD_SIGNATURE), expiry (EXPIRED), the sealed secret (BAD_SIGNATURE), that
    it derives the room id (WRONG_KEY), then the log: the ADD is in it, counts,
    is pending for the invitee and was signed by the inviter (FORBIDDEN).
    """
    value = _fields(data)
    room_id, inviter, invitee_key = value[1], value[2], value[3]
    assert isinstance(room_id, bytes) and isinstance(inviter, bytes)
    if invitee_key != invitee.public_key:
        raise RemoteProtocolError(ErrorCode.FORBIDDEN, "invitation for another identity")
    signed = cbor.encode({k: value[k] for k in range(9)})
    if public_key_problem(inviter) is not None or not verify(
        inviter,
        INVITATION_DOMAIN + signed,
        value[9],  # type: ignore[arg-type]
    ):
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "invitation signature")
    expires_ms = value[5]
    assert isinstance(expires_ms, int)
    if now * 1000 > expires_ms:
        raise RemoteProtocolError(ErrorCode.EXPIRED, "the invitation has expired")
    secret = _unseal(invitee, value[6], value[7])  # type: ignore[arg-type]
    if room_id_of(secret) != room_id:
        raise RemoteProtocolError(ErrorCode.WRONG_KEY, "the secret does not derive the room id")
    log = _log_of(room_id, value[8])  # type: ignore[arg-type]
    add = log.get(value[4])  # type: ignore[arg-type]
    pending = log.membership.invited.get(invitee.public_key)
    if add is None or pending is None or pending.add_hash != add.hash:
        raise RemoteProtocolError(ErrorCode.FORBIDDEN, "the ADD does not count in the log")
    if add.signer != inviter or add.expires_ms != expires_ms:
        raise RemoteProtocolError(ErrorCode.FORBIDDEN, "the ADD is not the inviter's offer")
    return OpenedInvitation(
        room_id=room_id,
        secret=secret,
        inviter=inviter,
        add=add,
        expires_ms=expires_ms,
        log=log,
        encoded=data,
    )
