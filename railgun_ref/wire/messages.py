"""Message types and their bodies (MSG-1.x).

Each message is a frozen dataclass with `to_body()` and a `from_body()`
classmethod; `parse_message` maps an authenticated envelope to one of them.
A body MUST contain exactly the keys its type defines (MSG-1.2): unknown keys
are refused rather than ignored, so two implementations never disagree on
what a signed message said. Extensions take a new type number or version.
"""

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Final, Self

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.core.ids import Address
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


Message = Ping | Pong | ErrorReply

_PARSERS: Final[dict[int, type[Ping] | type[Pong] | type[ErrorReply]]] = {
    MessageType.PING: Ping,
    MessageType.PONG: Pong,
    MessageType.ERROR: ErrorReply,
}


def parse_message(envelope: Envelope) -> Message:
    """Interpret an authenticated envelope's body. Raises only `RemoteProtocolError`."""
    parser = _PARSERS.get(envelope.type)
    if parser is None:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"message type {envelope.type}")
    return parser.from_body(envelope.body)
