"""RELAY requests to committee relays (RLY-2.1): the codec, in `wire` so that both the
relay core and the P2P path that asks relays can use it."""

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.wire import cbor
from railgun_ref.wire.pow import (
    PowChallenge,
    PowSolution,
    challenge_from_value,
    solution_from_value,
    solution_value,
)

#: RLY-2.1: room ids are 1..64 bytes and message ids 16 (as in ROOM frames, HT-6.2).
MAX_ROOM_ID_SIZE: Final = 64
MESSAGE_ID_SIZE: Final = 16
#: RLY-2.1: the relay frames' format version.
RELAY_VERSION: Final = 1
#: RLY-2.1: the largest blob a relay request carries (the request fits one APP message).
MAX_RELAY_BLOB: Final = 65000
#: RLY-2.1: DHT idents of rooms are 32 bytes (ROOM-2.2).
DHT_IDENT_SIZE: Final = 32


class RelayFrameType(IntEnum):
    RELAY = 1  #: RLY-2.1: forward this sealed message to the room's members
    BUSY = 2  #: RLY-9.2: relay -> requester: overloaded, pay this price (a relay refuses it)


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayFrame:
    """RLY-2: ``{0: 1, 1: 1, 2: room id, 3: dht ident, 4: message id, 5: expires_ms,
    6: blob}``."""

    room_id: bytes
    dht_ident: bytes
    message_id: bytes
    expires_ms: int
    blob: bytes
    #: RLY-9.1: key 7, present only when the requester paid for admission (POW-6.1).
    pow_solution: PowSolution | None = None

    def to_value(self) -> dict[int, Any]:
        value: dict[int, Any] = {
            0: RELAY_VERSION,
            1: RelayFrameType.RELAY,
            2: self.room_id,
            3: self.dht_ident,
            4: self.message_id,
            5: self.expires_ms,
            6: self.blob,
        }
        if self.pow_solution is not None:
            value[7] = solution_value(self.pow_solution)
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class BusyFrame:
    """RLY-9.2: ``{0: 1, 1: 2, 2: message id, 3: challenge}``: the relay is overloaded and
    serves the request for `message_id` if it is sent again paying `challenge` (POW-6.2)."""

    message_id: bytes
    challenge: PowChallenge

    def to_value(self) -> dict[int, Any]:
        return {
            0: RELAY_VERSION,
            1: RelayFrameType.BUSY,
            2: self.message_id,
            3: self.challenge.to_value(),
        }


def encode_busy_frame(frame: BusyFrame) -> bytes:
    return cbor.encode(frame.to_value())


def encode_relay_frame(frame: RelayFrame) -> bytes:
    return cbor.encode(frame.to_value())


def _malformed(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, reason)


def _bstr(value: object, name: str, low: int, high: int) -> bytes:
    if not isinstance(value, bytes) or not low <= len(value) <= high:
        raise _malformed(f"{name} must be a byte string of {low}..{high} bytes")
    return value


def _head(data: bytes, expected: RelayFrameType) -> dict[Any, Any]:
    """RLY-2.1: a map with our version and the `expected` type (others: UNKNOWN_TYPE)."""
    value = cbor.decode(data)
    if not isinstance(value, dict) or 0 not in value or 1 not in value:
        raise _malformed("a relay frame is a map with a version and a type")
    if type(value[0]) is not int or value[0] != RELAY_VERSION:
        raise RemoteProtocolError(ErrorCode.UNSUPPORTED_VERSION, f"relay version {value[0]!r}")
    if type(value[1]) is not int or value[1] != expected:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"relay frame type {value[1]!r}")
    return value


def peek_relay_type(data: bytes) -> int | None:
    """The type of a relay-topic message, or None if it has none (never raises)."""
    try:
        value = cbor.decode(data)
    except RemoteProtocolError:
        return None
    kind = value.get(1) if isinstance(value, dict) else None
    return kind if type(kind) is int else None


def decode_busy_frame(data: bytes) -> BusyFrame:
    """RLY-9.2: parse a BUSY answer. Raises only `RemoteProtocolError`, whatever the bytes."""
    value = _head(data, RelayFrameType.BUSY)
    if value.keys() != set(range(4)):
        raise _malformed("BUSY frame must have keys 0..3")
    return BusyFrame(
        message_id=_bstr(value[2], "message id", MESSAGE_ID_SIZE, MESSAGE_ID_SIZE),
        challenge=challenge_from_value(value[3]),
    )


def decode_relay_frame(data: bytes) -> RelayFrame:
    """RLY-2: parse a relay request. Raises only `RemoteProtocolError`, whatever the bytes."""
    value = _head(data, RelayFrameType.RELAY)
    if value.keys() != set(range(7)) and value.keys() != set(range(8)):
        raise _malformed("RELAY frame must have keys 0..6 (and 7, RLY-9.1)")
    expires_ms = value[5]
    if type(expires_ms) is not int or not 0 <= expires_ms < 2**64:
        raise _malformed("expires_ms must be an unsigned integer")
    return RelayFrame(
        room_id=_bstr(value[2], "room id", 1, MAX_ROOM_ID_SIZE),
        dht_ident=_bstr(value[3], "dht ident", DHT_IDENT_SIZE, DHT_IDENT_SIZE),
        message_id=_bstr(value[4], "message id", MESSAGE_ID_SIZE, MESSAGE_ID_SIZE),
        expires_ms=expires_ms,
        blob=_bstr(value[6], "blob", 1, MAX_RELAY_BLOB),
        pow_solution=solution_from_value(value[7]) if 7 in value else None,
    )
