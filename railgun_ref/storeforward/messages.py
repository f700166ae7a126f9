"""Store-and-forward messages (SF-6.x): deterministic CBOR maps, strictly decoded.

Every message is a map with integer keys: ``0`` its type (`SfType`), ``1``
the protocol version, then its fields (the CDDL in paper/spec.md, section
SF). The two requests a peer must be able to attribute end to end carry
their own Ed25519 signature over ``domain || CBOR(map without the signature
key)``: a STORE is signed by its sender, a PICKUP and a RECEIPT by the
recipient's mailbox key (SF-1.4). They are self-contained so that a bridge
may carry them across a partition (failover scenario 4, spec §0.7) without the holder
having to trust it. The other messages are answers or holder-to-holder
repair traffic, attributed by the envelope that carries them.

`decode` accepts any bytes and raises only `RemoteProtocolError`: MALFORMED
for a shape error, TOO_LARGE for a ciphertext over the largest bucket,
UNSUPPORTED_VERSION, UNKNOWN_TYPE. Signatures are *not* checked here (the
holder does it, SF-3.1), so a vector can tell a forged request from a
malformed one.
"""

import hashlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from railgun_ref.abuse.pow import (
    PowChallenge,
    PowSolution,
    challenge_from_value,
    solution_from_value,
    solution_value,
)
from railgun_ref.core import cbor
from railgun_ref.core.constants import PROTOCOL_VERSION, PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.identity.keys import Identity, verify


class SfType(IntEnum):
    """SF-6.1: message types."""

    STORE = 1
    RESULT = 2
    PICKUP = 3
    PICKUP_REPLY = 4
    RECEIPT = 5
    SYNC = 6
    SYNC_REPLY = 7
    REPLICATE = 8
    MAILBOX_KEYS = 9


#: SF-2.4: the padded ciphertext sizes a holder accepts, bytes. The largest leaves
#: `FRAMING_ROOM` of the 64 KiB APP payload (APP-1.2) for the STORE, REPLICATE or
#: PICKUP_REPLY around it; 16 KiB holds a room message whose body is in the 4 KiB
#: padding bucket (ROOM-1.4) with its key wraps.
BUCKETS: Final = (256, 4096, 16384, 61440)
#: SF-2.4: APP payload bytes (APP-1.2) beyond the largest bucket, for the framing.
FRAMING_ROOM: Final = 65536 - BUCKETS[-1]
#: SF-6.2: a key, id or mailbox key is 32 bytes.
ID_SIZE: Final = 32
#: SF-6.2: an authorisation proof is at most this many bytes.
MAX_PROOF_SIZE: Final = 512
#: SF-6.2: a RECEIPT names 1..64 message ids.
MAX_RECEIPT_IDS: Final = 64
#: SF-6.2: a SYNC or SYNC_REPLY lists at most this many ids, and 16 receipts.
MAX_SYNC_IDS: Final = 256
MAX_SYNC_RECEIPTS: Final = 16
#: SF-8.1: a MAILBOX_KEYS names 1..16 mailbox keys, and a room id of 1..64 bytes.
MAX_MAILBOX_KEYS: Final = 16
MAX_ROOM_ID_SIZE: Final = 64
#: SF-6.2: a PICKUP_REPLY carries at most this many messages.
MAX_PICKUP_ENTRIES: Final = 64
_UINT64: Final = 2**64 - 1

STORE_DOMAIN: Final = b"railgun/v1/sf-store\x00"
PICKUP_DOMAIN: Final = b"railgun/v1/sf-pickup\x00"
RECEIPT_DOMAIN: Final = b"railgun/v1/sf-receipt\x00"
MESSAGE_ID_DOMAIN: Final = b"railgun/v1/sf-message\x00"


def message_id(
    rendezvous_key: bytes, mailbox_key: bytes, expires_ms: int, ciphertext: bytes
) -> bytes:
    """SF-2.2: a stored message's id: SHA-256 over its domain and everything a holder keeps."""
    body = cbor.encode([rendezvous_key, mailbox_key, expires_ms, ciphertext])
    return hashlib.sha256(MESSAGE_ID_DOMAIN + body).digest()


def bucket_of(size: int) -> int:
    """SF-2.4: the bucket index of a ciphertext of `size` bytes (it must be exactly one)."""
    if size > BUCKETS[-1]:
        raise RemoteProtocolError(ErrorCode.TOO_LARGE, f"ciphertext over {BUCKETS[-1]} bytes")
    if size not in BUCKETS:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "ciphertext is not padded to a bucket")
    return BUCKETS.index(size)


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreRequest:
    """SF-6.3: keep `ciphertext` for the recipient of `rendezvous_key` until `expires_ms`."""

    sender_key: bytes
    request_id: int
    timestamp_ms: int
    rendezvous_key: bytes
    mailbox_key: bytes
    expires_ms: int
    ciphertext: bytes
    proof: bytes
    signature: bytes
    #: SF-9.1: key 11, present only when the sender paid for admission (POW-6.1).
    pow_solution: PowSolution | None = None

    def signed_fields(self) -> dict[int, Any]:
        fields: dict[int, Any] = {
            0: int(SfType.STORE),
            1: PROTOCOL_VERSION,
            2: self.sender_key,
            3: self.request_id,
            4: self.timestamp_ms,
            5: self.rendezvous_key,
            6: self.mailbox_key,
            7: self.expires_ms,
            8: self.ciphertext,
            9: self.proof,
        }
        if self.pow_solution is not None:  # SF-9.1: signed, so it cannot be moved
            fields[11] = solution_value(self.pow_solution)
        return fields

    def to_map(self) -> dict[int, Any]:
        return {**self.signed_fields(), 10: self.signature}

    def signature_ok(self) -> bool:
        data = STORE_DOMAIN + cbor.encode(self.signed_fields())
        return verify(self.sender_key, data, self.signature)

    @property
    def message_id(self) -> bytes:
        return message_id(self.rendezvous_key, self.mailbox_key, self.expires_ms, self.ciphertext)


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """SF-6.4: the answer to a STORE: ``status`` 0 (kept) or the ERR-1.1 code of the refusal."""

    request_id: int
    status: int
    message_id: bytes
    #: SF-9.2: key 5, only in a refusal while the holder is overloaded (POW-6.2).
    challenge: PowChallenge | None = None

    def to_map(self) -> dict[int, Any]:
        fields: dict[int, Any] = {
            0: int(SfType.RESULT),
            1: PROTOCOL_VERSION,
            2: self.request_id,
            3: self.status,
            4: self.message_id,
        }
        if self.challenge is not None:
            fields[5] = self.challenge.to_value()
        return fields


@dataclass(frozen=True, slots=True, kw_only=True)
class Pickup:
    """SF-6.5: the recipient asks for what is held under `rendezvous_key` for `mailbox_key`."""

    mailbox_key: bytes
    request_id: int
    timestamp_ms: int
    rendezvous_key: bytes
    signature: bytes

    def signed_fields(self) -> dict[int, Any]:
        return {
            0: int(SfType.PICKUP),
            1: PROTOCOL_VERSION,
            2: self.mailbox_key,
            3: self.request_id,
            4: self.timestamp_ms,
            5: self.rendezvous_key,
        }

    def to_map(self) -> dict[int, Any]:
        return {**self.signed_fields(), 6: self.signature}

    def signature_ok(self) -> bool:
        data = PICKUP_DOMAIN + cbor.encode(self.signed_fields())
        return verify(self.mailbox_key, data, self.signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class PickupReply:
    """SF-6.6: held messages as (expires_ms, ciphertext); `more` if some did not fit."""

    request_id: int
    entries: tuple[tuple[int, bytes], ...]
    more: bool

    def to_map(self) -> dict[int, Any]:
        entries = [[expires, data] for expires, data in self.entries]
        return {
            0: int(SfType.PICKUP_REPLY),
            1: PROTOCOL_VERSION,
            2: self.request_id,
            3: entries,
            4: self.more,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """SF-6.7: the recipient got these messages: delete them and keep tombstones (SF-4.x)."""

    mailbox_key: bytes
    timestamp_ms: int
    rendezvous_key: bytes
    message_ids: tuple[bytes, ...]
    signature: bytes

    def signed_fields(self) -> dict[int, Any]:
        return {
            0: int(SfType.RECEIPT),
            1: PROTOCOL_VERSION,
            2: self.mailbox_key,
            3: self.timestamp_ms,
            4: self.rendezvous_key,
            5: list(self.message_ids),
        }

    def to_map(self) -> dict[int, Any]:
        return {**self.signed_fields(), 6: self.signature}

    def signature_ok(self) -> bool:
        data = RECEIPT_DOMAIN + cbor.encode(self.signed_fields())
        return verify(self.mailbox_key, data, self.signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sync:
    """SF-7.2: a holder tells another which ids it holds and which receipts it knows."""

    reply: bool  #: False: SYNC (type 6); True: SYNC_REPLY (type 7), whose ids are those wanted
    rendezvous_key: bytes
    message_ids: tuple[bytes, ...]
    receipts: tuple[Receipt, ...]

    def to_map(self) -> dict[int, Any]:
        kind = SfType.SYNC_REPLY if self.reply else SfType.SYNC
        return {
            0: int(kind),
            1: PROTOCOL_VERSION,
            2: self.rendezvous_key,
            3: list(self.message_ids),
            4: [r.to_map() for r in self.receipts],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Replicate:
    """SF-7.3: a holder copies one message it holds to another holder."""

    rendezvous_key: bytes
    mailbox_key: bytes
    expires_ms: int
    ciphertext: bytes

    def to_map(self) -> dict[int, Any]:
        return {
            0: int(SfType.REPLICATE),
            1: PROTOCOL_VERSION,
            2: self.rendezvous_key,
            3: self.mailbox_key,
            4: self.expires_ms,
            5: self.ciphertext,
        }

    @property
    def message_id(self) -> bytes:
        return message_id(self.rendezvous_key, self.mailbox_key, self.expires_ms, self.ciphertext)


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxKeys:
    """SF-8.1: a member's mailbox public keys in `room_id` for epochs `first_epoch` onwards."""

    room_id: bytes
    first_epoch: int
    keys: tuple[bytes, ...]

    def to_map(self) -> dict[int, Any]:
        return {
            0: int(SfType.MAILBOX_KEYS),
            1: PROTOCOL_VERSION,
            2: self.room_id,
            3: self.first_epoch,
            4: list(self.keys),
        }


SfMessage = StoreRequest | Result | Pickup | PickupReply | Receipt | Sync | Replicate | MailboxKeys


def encode(message: SfMessage) -> bytes:
    """SF-6.1: the deterministic CBOR of `message`."""
    return cbor.encode(message.to_map())


# ---------------------------------------------------------------- signing helpers


def sign_store(
    sender: Identity,
    *,
    request_id: int,
    timestamp_ms: int,
    rendezvous_key: bytes,
    mailbox_key: bytes,
    expires_ms: int,
    ciphertext: bytes,
    proof: bytes,
    pow_solution: PowSolution | None = None,
) -> StoreRequest:
    """A STORE signed by `sender` (SF-3.1), with the admission work it paid if any (SF-9.1)."""
    unsigned = StoreRequest(
        sender_key=sender.public_key,
        request_id=request_id,
        timestamp_ms=timestamp_ms,
        rendezvous_key=rendezvous_key,
        mailbox_key=mailbox_key,
        expires_ms=expires_ms,
        ciphertext=ciphertext,
        proof=proof,
        signature=bytes(SIGNATURE_SIZE),
        pow_solution=pow_solution,
    )
    signature = sender.sign(STORE_DOMAIN + cbor.encode(unsigned.signed_fields()))
    return StoreRequest(**{**_fields_of(unsigned), "signature": signature})


def sign_pickup(
    mailbox: Identity, *, request_id: int, timestamp_ms: int, rendezvous_key: bytes
) -> Pickup:
    """A PICKUP signed by the recipient's mailbox key (SF-5.2)."""
    unsigned = Pickup(
        mailbox_key=mailbox.public_key,
        request_id=request_id,
        timestamp_ms=timestamp_ms,
        rendezvous_key=rendezvous_key,
        signature=bytes(SIGNATURE_SIZE),
    )
    signature = mailbox.sign(PICKUP_DOMAIN + cbor.encode(unsigned.signed_fields()))
    return Pickup(**{**_fields_of(unsigned), "signature": signature})


def sign_receipt(
    mailbox: Identity, *, timestamp_ms: int, rendezvous_key: bytes, message_ids: tuple[bytes, ...]
) -> Receipt:
    """A RECEIPT signed by the recipient's mailbox key (SF-4.1)."""
    if not 1 <= len(message_ids) <= MAX_RECEIPT_IDS:
        raise LocalProtocolError(f"a receipt names 1..{MAX_RECEIPT_IDS} message ids")
    unsigned = Receipt(
        mailbox_key=mailbox.public_key,
        timestamp_ms=timestamp_ms,
        rendezvous_key=rendezvous_key,
        message_ids=tuple(message_ids),
        signature=bytes(SIGNATURE_SIZE),
    )
    signature = mailbox.sign(RECEIPT_DOMAIN + cbor.encode(unsigned.signed_fields()))
    return Receipt(**{**_fields_of(unsigned), "signature": signature})


def _fields_of(message: object) -> dict[str, Any]:
    return {name: getattr(message, name) for name in message.__slots__}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- strict decoding


def _malformed(why: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, why)


def _id(value: object, what: str, size: int = ID_SIZE) -> bytes:
    if type(value) is not bytes or len(value) != size:
        raise _malformed(f"{what} must be {size} bytes")
    return value


def _uint(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _UINT64:
        raise _malformed(f"{what} must be an unsigned integer")
    return value


def _blob(value: object, what: str, limit: int) -> bytes:
    if type(value) is not bytes:
        raise _malformed(f"{what} must be a byte string")
    if len(value) > limit:
        raise RemoteProtocolError(ErrorCode.TOO_LARGE, f"{what} over {limit} bytes")
    return value


def _list(value: object, what: str, limit: int, minimum: int = 0) -> list[Any]:
    if type(value) is not list:
        raise _malformed(f"{what} must be an array")
    if not minimum <= len(value) <= limit:
        raise _malformed(f"{what} must have {minimum}..{limit} items")
    return value


def _ciphertext(value: object) -> bytes:
    data = _blob(value, "ciphertext", BUCKETS[-1])
    bucket_of(len(data))
    return data


def _shape(value: object, count: int, optional: int | None = None) -> dict[int, Any]:
    """SF-6.2: keys 0..count-1, and (SF-9) the type's one optional key if it has one."""
    keys = set(range(count))
    if type(value) is not dict or (set(value) != keys and set(value) != keys | {optional}):
        raise _malformed(f"message must be a map with keys 0..{count - 1}")
    if value[1] != PROTOCOL_VERSION or type(value[1]) is not int:
        raise RemoteProtocolError(ErrorCode.UNSUPPORTED_VERSION, "unknown protocol version")
    return value


def _store(m: dict[int, Any]) -> StoreRequest:
    return StoreRequest(
        sender_key=_id(m[2], "sender key", PUBLIC_KEY_SIZE),
        request_id=_uint(m[3], "request id"),
        timestamp_ms=_uint(m[4], "timestamp"),
        rendezvous_key=_id(m[5], "rendezvous key"),
        mailbox_key=_id(m[6], "mailbox key", PUBLIC_KEY_SIZE),
        expires_ms=_uint(m[7], "expiry"),
        ciphertext=_ciphertext(m[8]),
        proof=_blob(m[9], "proof", MAX_PROOF_SIZE),
        signature=_id(m[10], "signature", SIGNATURE_SIZE),
        pow_solution=solution_from_value(m[11]) if 11 in m else None,
    )


def _result(m: dict[int, Any]) -> Result:
    status = _uint(m[3], "status")
    if status != 0 and status not in ErrorCode.__members__.values():
        raise _malformed("status is 0 or an error code")
    challenge = challenge_from_value(m[5]) if 5 in m else None
    if challenge is not None and status == 0:
        raise _malformed("only a refusal carries a challenge")
    return Result(
        request_id=_uint(m[2], "request id"),
        status=status,
        message_id=_id(m[4], "message id"),
        challenge=challenge,
    )


def _pickup(m: dict[int, Any]) -> Pickup:
    return Pickup(
        mailbox_key=_id(m[2], "mailbox key", PUBLIC_KEY_SIZE),
        request_id=_uint(m[3], "request id"),
        timestamp_ms=_uint(m[4], "timestamp"),
        rendezvous_key=_id(m[5], "rendezvous key"),
        signature=_id(m[6], "signature", SIGNATURE_SIZE),
    )


def _entry(value: object) -> tuple[int, bytes]:
    pair = _list(value, "entry", 2, 2)
    return _uint(pair[0], "expiry"), _ciphertext(pair[1])


def _pickup_reply(m: dict[int, Any]) -> PickupReply:
    entries = tuple(_entry(e) for e in _list(m[3], "entries", MAX_PICKUP_ENTRIES))
    if type(m[4]) is not bool:
        raise _malformed("more must be a boolean")
    return PickupReply(request_id=_uint(m[2], "request id"), entries=entries, more=m[4])


def _receipt(m: dict[int, Any]) -> Receipt:
    ids = tuple(_id(i, "message id") for i in _list(m[5], "ids", MAX_RECEIPT_IDS, 1))
    if len(set(ids)) != len(ids):
        raise _malformed("a receipt names each message id once")
    return Receipt(
        mailbox_key=_id(m[2], "mailbox key", PUBLIC_KEY_SIZE),
        timestamp_ms=_uint(m[3], "timestamp"),
        rendezvous_key=_id(m[4], "rendezvous key"),
        message_ids=ids,
        signature=_id(m[6], "signature", SIGNATURE_SIZE),
    )


def _sync(m: dict[int, Any], reply: bool) -> Sync:
    ids = tuple(_id(i, "message id") for i in _list(m[3], "ids", MAX_SYNC_IDS))
    receipts = tuple(
        _receipt(_shape_of(r, SfType.RECEIPT)) for r in _list(m[4], "receipts", MAX_SYNC_RECEIPTS)
    )
    key = _id(m[2], "rendezvous key")
    if any(r.rendezvous_key != key for r in receipts):
        raise _malformed("a sync carries receipts of its own rendezvous key only")
    return Sync(reply=reply, rendezvous_key=key, message_ids=ids, receipts=receipts)


def _replicate(m: dict[int, Any]) -> Replicate:
    return Replicate(
        rendezvous_key=_id(m[2], "rendezvous key"),
        mailbox_key=_id(m[3], "mailbox key", PUBLIC_KEY_SIZE),
        expires_ms=_uint(m[4], "expiry"),
        ciphertext=_ciphertext(m[5]),
    )


def _mailbox_keys(m: dict[int, Any]) -> MailboxKeys:
    room_id = m[2]
    if type(room_id) is not bytes or not 1 <= len(room_id) <= MAX_ROOM_ID_SIZE:
        raise _malformed(f"room id must be 1..{MAX_ROOM_ID_SIZE} bytes")
    keys = tuple(
        _id(k, "mailbox key", PUBLIC_KEY_SIZE)
        for k in _list(m[4], "mailbox keys", MAX_MAILBOX_KEYS, 1)
    )
    return MailboxKeys(room_id=room_id, first_epoch=_uint(m[3], "first epoch"), keys=keys)


#: SF-9: the one optional key a type's map may add (POW-6.1, POW-6.2).
_OPTIONAL: Final = {SfType.STORE: 11, SfType.RESULT: 5}

#: SF-6.2: how many keys (0..n-1) each type's map has.
_KEYS: Final = {
    SfType.STORE: 11,
    SfType.RESULT: 5,
    SfType.PICKUP: 7,
    SfType.PICKUP_REPLY: 5,
    SfType.RECEIPT: 7,
    SfType.SYNC: 5,
    SfType.SYNC_REPLY: 5,
    SfType.REPLICATE: 6,
    SfType.MAILBOX_KEYS: 5,
}


def _type_of(value: object) -> SfType:
    if type(value) is not dict or 0 not in value:
        raise _malformed("message must be a map with a type under key 0")
    kind = value[0]
    if type(kind) is not int:
        raise _malformed("type must be an unsigned integer")
    try:
        return SfType(kind)
    except ValueError:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown type {kind}") from None


def _shape_of(value: object, expected: SfType) -> dict[int, Any]:
    if _type_of(value) is not expected:
        raise _malformed(f"expected a {expected.name} map")
    return _shape(value, _KEYS[expected])


def from_map(value: object) -> SfMessage:
    """SF-6.2: parse one decoded message map (shape only: no signature is checked)."""
    kind = _type_of(value)
    m = _shape(value, _KEYS[kind], _OPTIONAL.get(kind))
    match kind:
        case SfType.STORE:
            return _store(m)
        case SfType.RESULT:
            return _result(m)
        case SfType.PICKUP:
            return _pickup(m)
        case SfType.PICKUP_REPLY:
            return _pickup_reply(m)
        case SfType.RECEIPT:
            return _receipt(m)
        case SfType.SYNC | SfType.SYNC_REPLY:
            return _sync(m, kind is SfType.SYNC_REPLY)
        case SfType.REPLICATE:
            return _replicate(m)
        case SfType.MAILBOX_KEYS:
            return _mailbox_keys(m)


def peek_type(data: bytes) -> SfType:
    """SF-6.1: the type of a message (its shape is not checked); `RemoteProtocolError` if none."""
    return _type_of(cbor.decode(data))


def decode(data: bytes) -> SfMessage:
    """SF-6.2: any bytes -> a message, or `RemoteProtocolError` (never anything else)."""
    return from_map(cbor.decode(data))


def to_json(message: SfMessage) -> dict[str, Any]:
    """The JSON form vectors write: the type name and every field, bytes as hex."""
    fields: dict[str, Any] = {}
    for name in message.__slots__:
        value = getattr(message, name)
        if value is None:
            continue  # SF-9: an absent optional key (the JSON of older messages is unchanged)
        if isinstance(value, PowSolution):
            value = {
                "seedHead": value.seed_head.hex(),
                "nonce": value.nonce.hex(),
                "effort": value.effort,
            }
        elif isinstance(value, PowChallenge):
            value = {"seed": value.seed.hex(), "effort": value.effort}
        elif isinstance(value, bytes):
            value = value.hex()
        elif name == "message_ids":
            value = [item.hex() for item in value]
        elif name == "entries":
            value = [[expires, data.hex()] for expires, data in value]
        elif name == "keys":
            value = [item.hex() for item in value]
        elif name == "receipts":
            value = [to_json(receipt) for receipt in value]
        fields[_camel(name)] = value
    kind = type(message).__name__
    if isinstance(message, Sync):
        kind = "SyncReply" if message.reply else "Sync"
        del fields["reply"]
    return {"message": kind, **fields}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)
