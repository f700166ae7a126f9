"""Frames of the central service's WebSocket protocol (CEN-2.x .. CEN-6.x).

Every WebSocket message in either direction is one *binary* frame holding one
deterministic CBOR map (ENC-1.x)::

    {0: version (1), 1: frame type, 2: request id, 3: body}

The request id is chosen by the client for each request and echoed by the
server in the one reply (or ERROR) it gets; frames the server sends on its
own (CHALLENGE, DELIVER, an ERROR that answers no request) carry request id 0.
As in MSG-1.2, a body has exactly the keys its type defines: unknown keys are
refused, never ignored.

The frames carry no signatures: the WebSocket session is authenticated once,
by the AUTH frame answering the server's CHALLENGE (CEN-2.x), and blobs are
end-to-end encrypted by the clients (E2E-x), so the service relays bytes it
cannot read.

This module is sans-IO: it encodes and decodes, and decoding any bytes raises
only `FrameError` (a `RemoteProtocolError`).
"""

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, ClassVar, Final, Self

from railgun_ref.core import cbor
from railgun_ref.core.constants import NODE_ID_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId

#: CEN-2.1: the version every frame carries in key 0.
CENTRAL_VERSION: Final = 1
#: CEN-3.2: the domain prefix of the signed authentication message.
AUTH_DOMAIN: Final = b"railgun/v1/central-auth\x00"
#: CEN-3.1: the challenge nonce, bytes.
NONCE_SIZE: Final = 32
#: CEN-4.3: the client's dedup id of an envelope, bytes.
MESSAGE_ID_SIZE: Final = 16
#: CEN-4.1: a room id is 1..64 bytes, opaque to the service.
MAX_ROOM_ID_SIZE: Final = 64
#: CEN-4.3: the longest TTL a SEND may ask for, seconds (the default store-and-forward TTL, HT-5.1).
MAX_TTL: Final = 7 * 24 * 60 * 60
#: CEN-4.3: the largest blob a SEND may carry, bytes: the 64 KiB padding
#: bucket plus 16 KiB for the E2EE framing and per-member key wraps.
MAX_BLOB_SIZE: Final = 65536 + 16384
#: CEN-2.2: the largest frame, bytes: the largest blob plus the frame fields.
MAX_FRAME_SIZE: Final = MAX_BLOB_SIZE + 1024
#: CEN-4.6: an ACK names 1..256 mailbox sequence numbers.
MAX_ACK_SEQS: Final = 256
#: CEN-4.1, ROOM-6.3: at most this many membership changes in one JOIN.
MAX_PROOF_CHANGES: Final = 256
#: CEN-6.1: ERROR reasons carry at most this many code points (as MSG-3.1).
MAX_REASON_LENGTH: Final = 200
#: CEN-7.3: blob size buckets the service counts, bytes (ROOM-1.4's padding buckets + the max).
BLOB_SIZE_BUCKETS: Final = (256, 4096, 65536, MAX_BLOB_SIZE)
_UINT64_MAX: Final = 2**64 - 1


class FrameType(IntEnum):
    """CEN-2.3: frame type numbers and directions."""

    CHALLENGE = 1  #: server -> client, first frame of every connection
    AUTH = 2  #: client -> server, answers CHALLENGE
    WELCOME = 3  #: server -> client, answers a valid AUTH
    JOIN = 4  #: client -> server
    JOINED = 5  #: server -> client
    LEAVE = 6  #: client -> server
    LEFT = 7  #: server -> client
    SEND = 8  #: client -> server
    SENT = 9  #: server -> client, after the mailbox rows are committed
    DELIVER = 10  #: server -> client, unsolicited (request id 0)
    ACK = 11  #: client -> server
    ACKED = 12  #: server -> client
    ERROR = 15  #: server -> client


class CentralErrorCode(IntEnum):
    """CEN-6.2: error codes in ERROR frames.

    Codes below 100 are ERR-1.1 codes with the same meaning; 100 and above
    exist only on the central service.
    """

    MALFORMED = ErrorCode.MALFORMED.value
    TOO_LARGE = ErrorCode.TOO_LARGE.value
    BAD_SIGNATURE = ErrorCode.BAD_SIGNATURE.value
    UNSUPPORTED_VERSION = ErrorCode.UNSUPPORTED_VERSION.value
    UNKNOWN_TYPE = ErrorCode.UNKNOWN_TYPE.value
    REPLAY = ErrorCode.REPLAY.value
    BAD_KEY = ErrorCode.BAD_KEY.value
    QUOTA = ErrorCode.QUOTA.value
    TTL_TOO_LONG = ErrorCode.TTL_TOO_LONG.value
    UNAUTHENTICATED = 100  #: a frame other than AUTH before authentication
    AUTH_TIMEOUT = 101  #: no AUTH within the deadline
    NOT_MEMBER = 102  #: SEND or JOIN by a node the room's membership log does not count
    RATE_LIMITED = 103  #: the session's frame budget is spent; retry later


#: CEN-6.3: the WebSocket close code the server uses when it closes for an error.
CLOSE_CODE_BASE: Final = 4000


def close_code(code: CentralErrorCode) -> int:
    """CEN-6.3: the WebSocket close code for closing on `code` (4000 + code)."""
    return CLOSE_CODE_BASE + int(code)


class FrameError(RemoteProtocolError):
    """A frame the receiver refuses. `req` is its request id when it could be read."""

    def __init__(self, code: ErrorCode, message: str, *, req: int | None = None) -> None:
        super().__init__(code, message)
        self.req = req


def _malformed(reason: str) -> FrameError:
    return FrameError(ErrorCode.MALFORMED, reason)


def _exact_keys(body: dict[int, Any], keys: frozenset[int], what: str) -> None:
    if body.keys() != keys:
        raise _malformed(f"{what} body must have exactly keys {sorted(keys)}")


def _bytes(value: object, what: str, *, size: int | None = None) -> bytes:
    if not isinstance(value, bytes):
        raise _malformed(f"{what} must be a byte string")
    if size is not None and len(value) != size:
        raise _malformed(f"{what} must be {size} bytes")
    return value


def _uint(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise _malformed(f"{what} must be an unsigned integer")
    return value


def _room_id(value: object) -> bytes:
    room = _bytes(value, "room id")
    if not 1 <= len(room) <= MAX_ROOM_ID_SIZE:
        raise _malformed(f"room id must be 1..{MAX_ROOM_ID_SIZE} bytes")
    return room


def _ttl(value: object) -> int:
    ttl = _uint(value, "ttl")
    if ttl == 0:
        raise _malformed("ttl must be at least 1 second")
    if ttl > MAX_TTL:
        raise FrameError(ErrorCode.TTL_TOO_LONG, f"ttl must be at most {MAX_TTL} seconds")
    return ttl


def _blob(value: object) -> bytes:
    blob = _bytes(value, "blob")
    if not blob:
        raise _malformed("blob must not be empty")
    if len(blob) > MAX_BLOB_SIZE:
        raise FrameError(ErrorCode.TOO_LARGE, f"blob must be at most {MAX_BLOB_SIZE} bytes")
    return blob


def _seq(value: object) -> int:
    seq = _uint(value, "mailbox seq")
    if seq == 0:
        raise _malformed("mailbox seq must be at least 1")
    return seq


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """CEN-3.1: the server's first frame: a fresh nonce and its clock."""

    TYPE: ClassVar[FrameType] = FrameType.CHALLENGE
    nonce: bytes
    server_time_ms: int
    auth_timeout_ms: int  #: AUTH must arrive within this long

    def to_body(self) -> dict[int, Any]:
        return {0: self.nonce, 1: self.server_time_ms, 2: self.auth_timeout_ms}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0, 1, 2}), "CHALLENGE")
        return cls(
            nonce=_bytes(body[0], "nonce", size=NONCE_SIZE),
            server_time_ms=_uint(body[1], "server time"),
            auth_timeout_ms=_uint(body[2], "auth timeout"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Auth:
    """CEN-3.2: the client's answer: the nonce, its key and a signature (auth_message)."""

    TYPE: ClassVar[FrameType] = FrameType.AUTH
    nonce: bytes
    public_key: bytes
    signature: bytes

    def to_body(self) -> dict[int, Any]:
        return {0: self.nonce, 1: self.public_key, 2: self.signature}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0, 1, 2}), "AUTH")
        return cls(
            nonce=_bytes(body[0], "nonce", size=NONCE_SIZE),
            public_key=_bytes(body[1], "public key", size=PUBLIC_KEY_SIZE),
            signature=_bytes(body[2], "signature", size=SIGNATURE_SIZE),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome:
    """CEN-3.4: authentication succeeded; the session is bound to `node_id`."""

    TYPE: ClassVar[FrameType] = FrameType.WELCOME
    node_id: NodeId
    server_time_ms: int
    rooms: tuple[bytes, ...]  #: the rooms this node is a member of (CEN-4.1)

    def to_body(self) -> dict[int, Any]:
        return {0: self.node_id, 1: self.server_time_ms, 2: list(self.rooms)}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0, 1, 2}), "WELCOME")
        rooms = body[2]
        if not isinstance(rooms, list):
            raise _malformed("WELCOME rooms must be an array")
        return cls(
            node_id=NodeId(_bytes(body[0], "node id", size=NODE_ID_SIZE)),
            server_time_ms=_uint(body[1], "server time"),
            rooms=tuple(_room_id(room) for room in rooms),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _RoomFrame:
    """The shape JOIN, JOINED, LEAVE and LEFT share: ``{0: room id}``."""

    TYPE: ClassVar[FrameType]
    room_id: bytes

    def to_body(self) -> dict[int, Any]:
        return {0: self.room_id}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0}), cls.TYPE.name)
        return cls(room_id=_room_id(body[0]))


@dataclass(frozen=True, slots=True, kw_only=True)
class Join:
    """CEN-4.1, ROOM-6.3: become a member of a closed room, proving it with the room's log.

    ``{0: room id, 1: [+ change]}``: the changes are the joiner's membership
    log (ROOM-3), which the service checks and merges; it is also how a member
    tells the service of a later change (a removal), by joining again.
    """

    TYPE: ClassVar[FrameType] = FrameType.JOIN
    room_id: bytes
    changes: tuple[bytes, ...]

    def to_body(self) -> dict[int, Any]:
        return {0: self.room_id, 1: list(self.changes)}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0, 1}), "JOIN")
        changes = body[1]
        if not isinstance(changes, list) or not 1 <= len(changes) <= MAX_PROOF_CHANGES:
            raise _malformed(f"JOIN changes must be an array of 1..{MAX_PROOF_CHANGES} items")
        return cls(
            room_id=_room_id(body[0]),
            changes=tuple(_bytes(change, "room change") for change in changes),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Joined(_RoomFrame):
    """CEN-4.1: the node is a member of the room (committed)."""

    TYPE: ClassVar[FrameType] = FrameType.JOINED


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave(_RoomFrame):
    """CEN-4.2: stop being a member of a room."""

    TYPE: ClassVar[FrameType] = FrameType.LEAVE


@dataclass(frozen=True, slots=True, kw_only=True)
class Left(_RoomFrame):
    """CEN-4.2: the node is no longer a member of the room (committed)."""

    TYPE: ClassVar[FrameType] = FrameType.LEFT


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """CEN-4.3: relay `blob` to the other members of `room_id` for `ttl` seconds."""

    TYPE: ClassVar[FrameType] = FrameType.SEND
    room_id: bytes
    message_id: bytes
    ttl: int
    blob: bytes

    def to_body(self) -> dict[int, Any]:
        return {0: self.room_id, 1: self.message_id, 2: self.ttl, 3: self.blob}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0, 1, 2, 3}), "SEND")
        return cls(
            room_id=_room_id(body[0]),
            message_id=_bytes(body[1], "message id", size=MESSAGE_ID_SIZE),
            ttl=_ttl(body[2]),
            blob=_blob(body[3]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Sent:
    """CEN-4.4: the envelope is stored (committed); `timestamp_ms` is the server's."""

    TYPE: ClassVar[FrameType] = FrameType.SENT
    message_id: bytes
    timestamp_ms: int

    def to_body(self) -> dict[int, Any]:
        return {0: self.message_id, 1: self.timestamp_ms}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0, 1}), "SENT")
        return cls(
            message_id=_bytes(body[0], "message id", size=MESSAGE_ID_SIZE),
            timestamp_ms=_uint(body[1], "timestamp"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Deliver:
    """CEN-4.5: one mailbox entry pushed to a member."""

    TYPE: ClassVar[FrameType] = FrameType.DELIVER
    room_id: bytes
    message_id: bytes
    timestamp_ms: int
    ttl: int
    blob: bytes
    seq: int  #: the mailbox sequence number to ACK

    def to_body(self) -> dict[int, Any]:
        return {
            0: self.room_id,
            1: self.message_id,
            2: self.timestamp_ms,
            3: self.ttl,
            4: self.blob,
            5: self.seq,
        }

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset(range(6)), "DELIVER")
        return cls(
            room_id=_room_id(body[0]),
            message_id=_bytes(body[1], "message id", size=MESSAGE_ID_SIZE),
            timestamp_ms=_uint(body[2], "timestamp"),
            ttl=_ttl(body[3]),
            blob=_blob(body[4]),
            seq=_seq(body[5]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """CEN-4.6: delete these mailbox entries of the session's node."""

    TYPE: ClassVar[FrameType] = FrameType.ACK
    seqs: tuple[int, ...]

    def to_body(self) -> dict[int, Any]:
        return {0: list(self.seqs)}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0}), "ACK")
        seqs = body[0]
        if not isinstance(seqs, list) or not 1 <= len(seqs) <= MAX_ACK_SEQS:
            raise _malformed(f"ACK carries an array of 1..{MAX_ACK_SEQS} mailbox seqs")
        return cls(seqs=tuple(_seq(seq) for seq in seqs))


@dataclass(frozen=True, slots=True, kw_only=True)
class Acked:
    """CEN-4.6: how many of the ACKed entries were deleted (the others were not this node's,
    were already deleted, or expired)."""

    TYPE: ClassVar[FrameType] = FrameType.ACKED
    deleted: int

    def to_body(self) -> dict[int, Any]:
        return {0: self.deleted}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0}), "ACKED")
        return cls(deleted=_uint(body[0], "deleted count"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorFrame:
    """CEN-6.1: a refusal. `retry_after_ms` is non-zero for RATE_LIMITED only."""

    TYPE: ClassVar[FrameType] = FrameType.ERROR
    code: int
    reason: str
    retry_after_ms: int = 0

    def to_body(self) -> dict[int, Any]:
        return {0: self.code, 1: self.reason[:MAX_REASON_LENGTH], 2: self.retry_after_ms}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0, 1, 2}), "ERROR")
        reason = body[1]
        if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
            raise _malformed(f"ERROR reason must be text of at most {MAX_REASON_LENGTH} chars")
        return cls(
            code=_uint(body[0], "error code"),
            reason=reason,
            retry_after_ms=_uint(body[2], "retry after"),
        )


ClientFrame = Auth | Join | Leave | Send | Ack
ServerFrame = Challenge | Welcome | Joined | Left | Sent | Deliver | Acked | ErrorFrame
Frame = ClientFrame | ServerFrame

_CLIENT_TYPES: Final[dict[int, type[ClientFrame]]] = {
    cls.TYPE: cls for cls in (Auth, Join, Leave, Send, Ack)
}
_SERVER_TYPES: Final[dict[int, type[ServerFrame]]] = {
    cls.TYPE: cls for cls in (Challenge, Welcome, Joined, Left, Sent, Deliver, Acked, ErrorFrame)
}


def auth_message(nonce: bytes, origin: str) -> bytes:
    """CEN-3.2: the bytes an AUTH signs: domain || nonce || UTF-8 origin."""
    if len(nonce) != NONCE_SIZE:
        raise LocalProtocolError(f"a challenge nonce is {NONCE_SIZE} bytes")
    return AUTH_DOMAIN + nonce + origin.encode("utf-8")


class BlobSizeBucket(StrEnum):
    """CEN-7.3: the label a stored blob is counted under (one per `BLOB_SIZE_BUCKETS`)."""

    UP_TO_256 = "256"
    UP_TO_4096 = "4096"
    UP_TO_65536 = "65536"
    UP_TO_MAX = str(MAX_BLOB_SIZE)

    @classmethod
    def of(cls, size: int) -> "BlobSizeBucket":
        """The bucket of a blob of `size` bytes (`blob_size_bucket`)."""
        return cls(str(blob_size_bucket(size)))


def blob_size_bucket(size: int) -> int:
    """CEN-7.3: the bucket the service records for a blob of `size` bytes."""
    for bucket in BLOB_SIZE_BUCKETS:
        if size <= bucket:
            return bucket
    raise LocalProtocolError(f"a blob of {size} bytes is over the limit")


def encode_frame(frame: Frame, *, req: int = 0) -> bytes:
    """CEN-2.1: one frame as deterministic CBOR."""
    if not 0 <= req <= _UINT64_MAX:
        raise LocalProtocolError("request id must fit 64 bits")
    return cbor.encode({0: CENTRAL_VERSION, 1: int(frame.TYPE), 2: req, 3: frame.to_body()})


def _decode(
    data: bytes, types: dict[int, type[ClientFrame]] | dict[int, type[ServerFrame]], who: str
) -> tuple[int, Frame]:
    if len(data) > MAX_FRAME_SIZE:
        raise FrameError(ErrorCode.TOO_LARGE, f"frame over {MAX_FRAME_SIZE} bytes")
    value = cbor.decode(data)  # raises RemoteProtocolError(MALFORMED) only
    if not isinstance(value, dict) or value.keys() != {0, 1, 2, 3}:
        raise _malformed("a frame is a map with exactly keys 0..3")
    req = value[2]
    if type(req) is not int or req < 0:
        raise _malformed("request id must be an unsigned integer")
    version, frame_type, body = value[0], value[1], value[3]
    if version != CENTRAL_VERSION or type(version) is not int:
        raise FrameError(
            ErrorCode.UNSUPPORTED_VERSION, f"frame version must be {CENTRAL_VERSION}", req=req
        )
    if type(frame_type) is not int or frame_type < 0:
        raise FrameError(ErrorCode.MALFORMED, "frame type must be an unsigned integer", req=req)
    cls = types.get(frame_type)
    if cls is None:
        raise FrameError(
            ErrorCode.UNKNOWN_TYPE, f"frame type {frame_type} is not sent by {who}", req=req
        )
    if not isinstance(body, dict):
        raise FrameError(ErrorCode.MALFORMED, "frame body must be a map", req=req)
    try:
        frame = cls.from_body(body)
    except FrameError as exc:
        exc.req = req
        raise
    return req, frame


def decode_client_frame(data: bytes) -> tuple[int, ClientFrame]:
    """A frame a server received: (request id, frame). Raises only `RemoteProtocolError`."""
    try:
        req, frame = _decode(data, _CLIENT_TYPES, "clients")
    except FrameError:
        raise
    except RemoteProtocolError as exc:
        raise FrameError(exc.code, exc.message) from None
    assert isinstance(frame, Auth | Join | Leave | Send | Ack)
    return req, frame


def decode_server_frame(data: bytes) -> tuple[int, ServerFrame]:
    """A frame a client received: (request id, frame). Raises only `RemoteProtocolError`."""
    try:
        req, frame = _decode(data, _SERVER_TYPES, "servers")
    except FrameError:
        raise
    except RemoteProtocolError as exc:
        raise FrameError(exc.code, exc.message) from None
    assert not isinstance(frame, Auth | Join | Leave | Send | Ack)
    return req, frame
