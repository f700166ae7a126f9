"""Message types and their bodies (MSG-1.x).

Each message is a frozen dataclass with `to_body()` and a `from_body()`
classmethod; `parse_message` maps an authenticated envelope to one of them.
A body MUST contain exactly the keys its type defines (MSG-1.2): unknown keys
are refused rather than ignored, so two implementations never disagree on
what a signed message said. Extensions take a new type number or version.
"""

import functools
import ipaddress
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Final, Self

from railgun_ref.core.constants import NODE_ID_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.wire.envelope import Envelope

#: MSG-3.1: error replies carry at most this many characters of reason text.
MAX_REASON_LENGTH: Final = 200
#: MSG-2.3: an address host is an IP literal of at most this many characters.
MAX_HOST_LENGTH: Final = 64


class MessageType(IntEnum):
    """MSG-1.1: message type numbers. 1-15 are the base protocol."""

    PING = 1
    PONG = 2
    ERROR = 3
    COOKIE = 4  #: ABUSE-2.2: validate your address first
    FIND_NODE = 16
    NODES = 17
    FIND_VALUE = 18
    VALUE = 19
    STORE = 20
    STORED = 21
    APP = 22


def _malformed(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, reason)


def _exact_keys(body: dict[int, Any], keys: frozenset[int], what: str) -> None:
    if body.keys() != keys:
        raise _malformed(f"{what} body must have exactly keys {sorted(keys)}")


def _bytes_field(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise _malformed(f"{what} must be a byte string")
    return value


def encode_address(address: Address) -> list[Any]:
    return [address[0], address[1]]


def decode_address(value: object) -> Address:
    """MSG-2.3: an address is [host: text, port: uint16]."""
    if not isinstance(value, list) or len(value) != 2:
        raise _malformed("address must be [host, port]")
    host, port = value
    if not isinstance(host, str) or not 0 < len(host) <= MAX_HOST_LENGTH:
        raise _malformed("address host must be 1..64 characters of text")
    if type(port) is not int or not 0 <= port <= 0xFFFF:
        raise _malformed("address port must be 0..65535")
    return (host, port)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """MSG-2.1: a liveness probe. `payload` is echoed back in the PONG."""

    TYPE: ClassVar[MessageType] = MessageType.PING
    payload: bytes = b""

    def to_body(self) -> dict[int, Any]:
        return {0: self.payload}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0}), "PING")
        return cls(payload=_bytes_field(body[0], "PING payload"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong:
    """MSG-2.2: the answer to a PING, with the address the PING came from."""

    TYPE: ClassVar[MessageType] = MessageType.PONG
    observed: Address
    payload: bytes = b""

    def to_body(self) -> dict[int, Any]:
        return {0: encode_address(self.observed), 1: self.payload}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0, 1}), "PONG")
        return cls(observed=decode_address(body[0]), payload=_bytes_field(body[1], "PONG payload"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorReply:
    """MSG-3.1: a refusal of a request, naming the ERR-1.1 code."""

    TYPE: ClassVar[MessageType] = MessageType.ERROR
    code: int
    reason: str

    def to_body(self) -> dict[int, Any]:
        return {0: self.code, 1: self.reason[:MAX_REASON_LENGTH]}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0, 1}), "ERROR")
        code, reason = body[0], body[1]
        if type(code) is not int or code < 0:
            raise _malformed("ERROR code must be an unsigned integer")
        if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
            raise _malformed(f"ERROR reason must be text of at most {MAX_REASON_LENGTH} characters")
        return cls(code=code, reason=reason)


# ---------------------------------------------------------------- DHT (DHT-7.x)

#: DHT-7.2: a contact is [node id, packed IPv4 (4 bytes) or IPv6 (16 bytes), port].
WireContact = tuple[NodeId, Address]


@functools.lru_cache(maxsize=65536)
def _pack_host(host: str) -> bytes | None:
    """The packed form of an IP literal, None for anything else (every contact named in a
    NODES reply is sized and packed, so the answers are remembered)."""
    try:
        return ipaddress.ip_address(host).packed
    except ValueError:
        return None


@functools.lru_cache(maxsize=65536)
def _unpack_host(packed: bytes) -> str:
    """DHT-7.2: the text of a packed address; IPv4-mapped IPv6 in the mixed notation of
    RFC 5952 §5 (``::ffff:192.0.2.1``), which Python before 3.13 prints in hexadecimal."""
    ip = ipaddress.ip_address(packed)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def encode_contact(node_id: NodeId, address: Address) -> list[Any]:
    packed = _pack_host(address[0])
    if packed is None:
        raise LocalProtocolError(f"contact host {address[0]!r} is not an IP literal")
    return [node_id, packed, address[1]]


def contact_size(address: Address) -> int | None:
    """DHT-7.2: encoded size of a contact at `address` in bytes, or None if it has none."""
    packed = _pack_host(address[0])
    port = address[1]
    if packed is None or not 0 < port <= 0xFFFF:
        return None  # DHT-7.2: only nameable contacts are listed
    # array(3) head + bstr(32) + bstr(4|16) + uint port
    return 1 + 2 + NODE_ID_SIZE + 1 + len(packed) + (1 if port < 24 else 2 if port < 256 else 3)


def decode_contact(value: object) -> WireContact:
    if not isinstance(value, list) or len(value) != 3:
        raise _malformed("contact must be [node id, ip, port]")
    node_id, packed, port = value
    if not isinstance(node_id, bytes) or len(node_id) != NODE_ID_SIZE:
        raise _malformed("contact node id must be 32 bytes")
    if not isinstance(packed, bytes) or len(packed) not in (4, 16):
        raise _malformed("contact ip must be 4 or 16 bytes")
    if type(port) is not int or not 0 < port <= 0xFFFF:
        raise _malformed("contact port must be 1..65535")
    return NodeId(node_id), (_unpack_host(packed), port)


def _decode_contacts(value: object, what: str) -> tuple[WireContact, ...]:
    if not isinstance(value, list) or len(value) > MAX_CONTACTS:
        raise _malformed(f"{what} must be a list of at most {MAX_CONTACTS} contacts")
    return tuple(decode_contact(item) for item in value)


def _key_field(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != NODE_ID_SIZE:
        raise _malformed(f"{what} must be 32 bytes")
    return value


def _record_maps(value: object) -> tuple[dict[int, Any], ...]:
    if not isinstance(value, list) or len(value) > MAX_RECORDS:
        raise _malformed(f"records must be a list of at most {MAX_RECORDS} maps")
    for item in value:
        if not isinstance(item, dict):
            raise _malformed("each record must be a map")
    return tuple(value)


#: ABUSE-2.2: bytes of a cookie.
COOKIE_SIZE: Final = 16


def _with_cookie(body: dict[int, Any], cookie: bytes) -> dict[int, Any]:
    """ABUSE-2.4: key 1 carries a cookie echo; it is absent when there is none."""
    return {**body, 1: cookie} if cookie else body


def _cookie_field(body: dict[int, Any], what: str) -> bytes:
    if body.keys() == {0}:
        return b""
    _exact_keys(body, frozenset({0, 1}), what)
    cookie = _bytes_field(body[1], f"{what} cookie")
    if len(cookie) != COOKIE_SIZE:
        raise _malformed(f"{what} cookie must be {COOKIE_SIZE} bytes")
    return cookie


@dataclass(frozen=True, slots=True, kw_only=True)
class Cookie:
    """ABUSE-2.2: the answer to a request from an address not yet validated: echo `cookie`."""

    TYPE: ClassVar[MessageType] = MessageType.COOKIE
    cookie: bytes

    def to_body(self) -> dict[int, Any]:
        return {0: self.cookie}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0}), "COOKIE")
        cookie = _bytes_field(body[0], "COOKIE cookie")
        if len(cookie) != COOKIE_SIZE:
            raise _malformed(f"COOKIE cookie must be {COOKIE_SIZE} bytes")
        return cls(cookie=cookie)


#: DHT-7.2: a NODES or VALUE reply names at most this many contacts.
MAX_CONTACTS: Final = 20
#: DHT-7.4: a VALUE reply carries at most this many records.
MAX_RECORDS: Final = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class FindNode:
    """DHT-7.1: ask for the contacts closest to `target`; `cookie` echoes a COOKIE (ABUSE-2.4)."""

    TYPE: ClassVar[MessageType] = MessageType.FIND_NODE
    target: bytes
    cookie: bytes = b""

    def to_body(self) -> dict[int, Any]:
        return _with_cookie({0: self.target}, self.cookie)

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        cookie = _cookie_field(body, "FIND_NODE")
        return cls(target=_key_field(body[0], "FIND_NODE target"), cookie=cookie)


@dataclass(frozen=True, slots=True, kw_only=True)
class Nodes:
    """DHT-7.2: the answer to FIND_NODE: up to k contacts, closest first."""

    TYPE: ClassVar[MessageType] = MessageType.NODES
    contacts: tuple[WireContact, ...]

    def to_body(self) -> dict[int, Any]:
        return {0: [encode_contact(n, a) for n, a in self.contacts]}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0}), "NODES")
        return cls(contacts=_decode_contacts(body[0], "NODES contacts"))


@dataclass(frozen=True, slots=True, kw_only=True)
class FindValue:
    """DHT-7.3: ask for the records under `key` (and closer contacts)."""

    TYPE: ClassVar[MessageType] = MessageType.FIND_VALUE
    key: bytes
    cookie: bytes = b""  #: ABUSE-2.4: the echo of a COOKIE, or empty

    def to_body(self) -> dict[int, Any]:
        return _with_cookie({0: self.key}, self.cookie)

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        cookie = _cookie_field(body, "FIND_VALUE")
        return cls(key=_key_field(body[0], "FIND_VALUE key"), cookie=cookie)


@dataclass(frozen=True, slots=True, kw_only=True)
class Value:
    """DHT-7.4: records held under the key, closer contacts, and whether records were left out.

    `records` are record maps as received; the DHT checks each one (DHT-3.3).
    """

    TYPE: ClassVar[MessageType] = MessageType.VALUE
    records: tuple[dict[int, Any], ...]
    contacts: tuple[WireContact, ...]
    truncated: bool = False

    def to_body(self) -> dict[int, Any]:
        return {
            0: list(self.records),
            1: [encode_contact(n, a) for n, a in self.contacts],
            2: self.truncated,
        }

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0, 1, 2}), "VALUE")
        if not isinstance(body[2], bool):
            raise _malformed("VALUE truncated flag must be a boolean")
        return cls(
            records=_record_maps(body[0]),
            contacts=_decode_contacts(body[1], "VALUE contacts"),
            truncated=body[2],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Store:
    """DHT-7.5: ask the receiver to hold one signed record."""

    TYPE: ClassVar[MessageType] = MessageType.STORE
    record: dict[int, Any]

    def to_body(self) -> dict[int, Any]:
        return {0: self.record}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0}), "STORE")
        if not isinstance(body[0], dict):
            raise _malformed("STORE record must be a map")
        return cls(record=body[0])


class StoreStatus(IntEnum):
    """DHT-7.6: what the holder did with a STORE it accepted."""

    STORED = 0
    REPLACED = 1
    UNCHANGED = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """DHT-7.6: the acceptance of a STORE (refusals are ERROR replies)."""

    TYPE: ClassVar[MessageType] = MessageType.STORED
    status: StoreStatus

    def to_body(self) -> dict[int, Any]:
        return {0: self.status}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0}), "STORED")
        if type(body[0]) is not int or body[0] not in set(StoreStatus):
            raise _malformed("STORED status must be 0, 1 or 2")
        return cls(status=StoreStatus(body[0]))


# --------------------------------------------------------- application (APP-1.x)

#: APP-1.2: topic numbers are 1..65535; 0 is reserved.
MAX_APP_TOPIC: Final = 0xFFFF
#: APP-1.2: an application payload is at most 64 KiB (it fits one stream message).
MAX_APP_PAYLOAD: Final = 65536


@dataclass(frozen=True, slots=True, kw_only=True)
class AppMessage:
    """APP-1.1: an application message from one node to another; one-way, no reply.

    The upper layers (room delivery, voice signalling) own `payload`; the node
    only authenticates the sender and hands it over by `topic`.
    """

    TYPE: ClassVar[MessageType] = MessageType.APP
    topic: int
    payload: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.topic <= MAX_APP_TOPIC:
            raise LocalProtocolError(f"APP topic must be 1..{MAX_APP_TOPIC}, not {self.topic}")
        if len(self.payload) > MAX_APP_PAYLOAD:
            raise LocalProtocolError(f"APP payload exceeds {MAX_APP_PAYLOAD} bytes")

    def to_body(self) -> dict[int, Any]:
        return {0: self.topic, 1: self.payload}

    @classmethod
    def from_body(cls, body: dict[int, Any]) -> Self:
        _exact_keys(body, frozenset({0, 1}), "APP")
        topic, payload = body[0], body[1]
        if type(topic) is not int or not 1 <= topic <= MAX_APP_TOPIC:
            raise _malformed(f"APP topic must be an integer 1..{MAX_APP_TOPIC}")
        payload = _bytes_field(payload, "APP payload")
        if len(payload) > MAX_APP_PAYLOAD:
            raise _malformed(f"APP payload must be at most {MAX_APP_PAYLOAD} bytes")
        return cls(topic=topic, payload=payload)


Message = (
    Ping
    | Pong
    | ErrorReply
    | Cookie
    | FindNode
    | Nodes
    | FindValue
    | Value
    | Store
    | Stored
    | AppMessage
)

_PARSERS: Final[dict[int, Any]] = {
    MessageType.PING: Ping,
    MessageType.PONG: Pong,
    MessageType.ERROR: ErrorReply,
    MessageType.COOKIE: Cookie,
    MessageType.FIND_NODE: FindNode,
    MessageType.NODES: Nodes,
    MessageType.FIND_VALUE: FindValue,
    MessageType.VALUE: Value,
    MessageType.STORE: Store,
    MessageType.STORED: Stored,
    MessageType.APP: AppMessage,
}


def parse_message(envelope: Envelope) -> Message:
    """Interpret an authenticated envelope's body. Raises only `RemoteProtocolError`."""
    parser = _PARSERS.get(envelope.type)
    if parser is None:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"message type {envelope.type}")
    message: Message = parser.from_body(envelope.body)
    return message
