"""Signed membership changes (ROOM-3): the entries of a room's hash-linked log.

A change is the deterministic CBOR map (ROOM-3.1)::

    {0: 1, 1: room id, 2: kind, 3: signer key, 4: subject key, 5: [* parent hash],
     6: issued ms, 7: role, 8: expires ms, 9: invitation hash, 10: signature}

signed by ``signer`` over ``"railgun/v1/room-change" || 0x00 || CBOR(keys 0..9)``.
A ROTATE (ROOM-3.9: a member moves to its new key, ROT-4.1) carries one more
entry, ``11: co-signature``: the *subject*'s (new key's) signature over
``"railgun/v1/room-change-cosign" || 0x00 || CBOR(keys 0..9)``, so a key
cannot be rotated to without its holder's consent.
Its *hash* is SHA-256 of its whole encoding. ``parents`` are the hashes of the
changes its signer had seen last (the heads of its log), sorted, without
repeats; only the genesis (`ChangeKind.CREATE`) has none.

This module only checks what one change can show on its own (shape,
signature, per-kind field rules). Whether a change *counts* — its signer a
member at that point, its invitation unexpired and unused — depends on the
rest of the log and is decided by `railgun_ref.rooms.log.resolve`.
`decode_change` raises only `RemoteProtocolError`.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.identity.keys import Identity, public_key_problem, verify
from railgun_ref.rooms.ids import ROOM_ID_SIZE
from railgun_ref.wire import cbor

CHANGE_DOMAIN: Final = b"railgun/v1/room-change\x00"
COSIGN_DOMAIN: Final = b"railgun/v1/room-change-cosign\x00"
CHANGE_VERSION: Final = 1
HASH_SIZE: Final = 32
#: ROOM-3.1: at most this many parents per change.
MAX_PARENTS: Final = 16
#: ROOM-3.1: an encoded change is at most this many bytes.
MAX_CHANGE_SIZE: Final = 1024
_NO_HASH: Final = b""


class ChangeKind(IntEnum):
    """ROOM-3.1: what a change does."""

    CREATE = 1  #: the genesis: signer = subject = the creator, an admin
    ADD = 2  #: invite `subject` with `role`, valid until `expires_ms`
    ACCEPT = 3  #: `subject` (= signer) accepts the ADD named by `invitation`
    REMOVE = 4  #: remove `subject` (a member or an invitee)
    LEAVE = 5  #: signer (= subject) leaves
    ROTATE = 6  #: the member `signer` continues as `subject` (its new key, ROOM-3.9)


class Role(IntEnum):
    """ROOM-3.4: what a member may sign."""

    MEMBER = 0  #: may invite members, may leave
    ADMIN = 1  #: may also invite admins and remove anyone but the creator


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One verified change; `encoded` is its exact wire form and `hash` SHA-256 of it."""

    room_id: bytes
    kind: ChangeKind
    signer: bytes
    subject: bytes
    parents: tuple[bytes, ...]
    issued_ms: int
    role: Role
    expires_ms: int
    invitation: bytes
    signature: bytes = field(repr=False)
    encoded: bytes = field(repr=False)
    hash: bytes
    cosignature: bytes = field(default=b"", repr=False)  #: ROTATE only: the subject's


def _body(
    *,
    room_id: bytes,
    kind: ChangeKind,
    signer: bytes,
    subject: bytes,
    parents: tuple[bytes, ...],
    issued_ms: int,
    role: Role,
    expires_ms: int,
    invitation: bytes,
) -> dict[int, object]:
    return {
        0: CHANGE_VERSION,
        1: room_id,
        2: int(kind),
        3: signer,
        4: subject,
        5: list(parents),
        6: issued_ms,
        7: int(role),
        8: expires_ms,
        9: invitation,
    }


def sign_change(
    signer: Identity,
    *,
    room_id: bytes,
    kind: ChangeKind,
    parents: Iterable[bytes],
    issued_ms: int,
    subject: bytes | None = None,
    role: Role = Role.MEMBER,
    expires_ms: int = 0,
    invitation: bytes = _NO_HASH,
    cosigner: Identity | None = None,
) -> Change:
    """Make and sign one change. Field rules are checked as a receiver would (ROOM-3.3).

    A ROTATE names the new identity as `cosigner` (its key is the subject).
    """
    if cosigner is not None:
        subject = cosigner.public_key
    body = _body(
        room_id=room_id,
        kind=kind,
        signer=signer.public_key,
        subject=signer.public_key if subject is None else subject,
        parents=tuple(sorted(set(parents))),
        issued_ms=issued_ms,
        role=Role.ADMIN if kind is ChangeKind.CREATE else role,
        expires_ms=expires_ms,
        invitation=invitation,
    )
    signature = signer.sign(CHANGE_DOMAIN + cbor.encode(body))
    extra = {} if cosigner is None else {11: cosigner.sign(COSIGN_DOMAIN + cbor.encode(body))}
    encoded = cbor.encode({**body, 10: signature, **extra})
    try:
        return decode_change(encoded)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(f"this change would be refused: {exc}") from None


def _malformed(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, f"room change: {reason}")


def _bstr(value: object, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise _malformed(f"{what} must be {'a' if size is None else size}-byte string")
    return value


def _uint(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise _malformed(f"{what} must be an unsigned integer")
    return value


def _kind(value: object) -> ChangeKind:
    try:
        return ChangeKind(_uint(value, "kind"))
    except ValueError:
        raise _malformed(f"unknown kind {value}") from None


def _role(value: object) -> Role:
    try:
        return Role(_uint(value, "role"))
    except ValueError:
        raise _malformed(f"unknown role {value}") from None


def _parents(value: object) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > MAX_PARENTS:
        raise _malformed(f"parents must be a list of at most {MAX_PARENTS} hashes")
    parents = tuple(_bstr(p, "a parent", HASH_SIZE) for p in value)
    if list(parents) != sorted(set(parents)):
        raise _malformed("parents must be sorted and without repeats")
    return parents


def _check_fields(change: Change) -> None:
    """ROOM-3.3: the per-kind rules one change can show on its own."""
    kind = change.kind
    if (kind is ChangeKind.CREATE) != (not change.parents):
        raise _malformed("the genesis, and only it, has no parents")
    if kind in (ChangeKind.CREATE, ChangeKind.ACCEPT, ChangeKind.LEAVE):
        if change.subject != change.signer:
            raise _malformed(f"{kind.name} names its signer as subject")
    elif change.subject == change.signer:
        raise _malformed(f"{kind.name} of oneself")
    if kind is ChangeKind.ADD:
        if change.expires_ms <= change.issued_ms:
            raise _malformed("an ADD expires after it was issued")
    elif change.expires_ms != 0:
        raise _malformed("only an ADD has an expiry")
    if kind is ChangeKind.ACCEPT and len(change.invitation) != HASH_SIZE:
        raise _malformed("an ACCEPT names the hash of its ADD")
    if kind is not ChangeKind.ACCEPT and change.invitation:
        raise _malformed("only an ACCEPT names an invitation")
    if kind is ChangeKind.ACCEPT and change.invitation not in change.parents:
        raise _malformed("an ACCEPT has its ADD as a parent")
    fixed_role = Role.ADMIN if kind is ChangeKind.CREATE else Role.MEMBER
    if kind is not ChangeKind.ADD and change.role is not fixed_role:
        raise _malformed("only an ADD chooses a role (the creator is an admin)")
    if public_key_problem(change.subject) is not None:
        raise RemoteProtocolError(ErrorCode.BAD_KEY, "room change: unusable subject key")


def decode_change(data: bytes) -> Change:
    """ROOM-3.1..3.3: parse and verify one change. Raises only RemoteProtocolError."""
    if len(data) > MAX_CHANGE_SIZE:
        raise RemoteProtocolError(ErrorCode.TOO_LARGE, "room change over 1024 bytes")
    value = cbor.decode(data)
    if (
        isinstance(value, dict)
        and value.keys() == set(range(12))
        and value.get(2) == ChangeKind.ROTATE
    ):
        return _decode_rotate(data, value)
    if not isinstance(value, dict) or value.keys() != set(range(11)):
        raise _malformed("must be a map with keys 0..10")
    return _decode(data, value)


def _decode(data: bytes, value: dict[object, object], cosignature: bytes = b"") -> Change:
    if value[0] != CHANGE_VERSION:
        raise RemoteProtocolError(ErrorCode.UNSUPPORTED_VERSION, "room change version")
    change = Change(
        room_id=_bstr(value[1], "room id", ROOM_ID_SIZE),
        kind=_kind(value[2]),
        signer=_bstr(value[3], "signer", 32),
        subject=_bstr(value[4], "subject", 32),
        parents=_parents(value[5]),
        issued_ms=_uint(value[6], "issued ms"),
        role=_role(value[7]),
        expires_ms=_uint(value[8], "expires ms"),
        invitation=_bstr(value[9], "invitation"),
        signature=_bstr(value[10], "signature", 64),
        encoded=data,
        hash=hashlib.sha256(data).digest(),
        cosignature=cosignature,
    )
    if (change.kind is ChangeKind.ROTATE) != bool(cosignature):
        raise _malformed("a ROTATE, and only it, carries the new key's co-signature (key 11)")
    _check_fields(change)
    signed = cbor.encode({k: value[k] for k in range(10)})
    if public_key_problem(change.signer) is not None:
        raise RemoteProtocolError(ErrorCode.BAD_KEY, "room change: unusable signer key")
    if not verify(change.signer, CHANGE_DOMAIN + signed, change.signature):
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "room change signature")
    return change


def _decode_rotate(data: bytes, value: dict[object, object]) -> Change:
    """ROOM-3.9: a ROTATE: the usual checks, then the new key's co-signature."""
    cosignature = _bstr(value[11], "co-signature", 64)
    change = _decode(data, {k: v for k, v in value.items() if k != 11}, cosignature)
    signed = cbor.encode({k: value[k] for k in range(10)})
    if not verify(change.subject, COSIGN_DOMAIN + signed, cosignature):
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "room change: ROTATE co-signature")
    return change
