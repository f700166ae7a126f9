"""Message types and bodies (MSG-1.x, MSG-2.x, MSG-3.x)."""

from typing import Any

import pytest

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.wire.envelope import Envelope, decode_envelope, encode_envelope
from railgun_ref.wire.messages import (
    MAX_HOST_LENGTH,
    MAX_REASON_LENGTH,
    ErrorReply,
    Message,
    MessageType,
    Ping,
    Pong,
    decode_address,
    encode_address,
    parse_message,
)

from .pairs import T0, identity, raw_envelope

ALICE = identity(1)


def sent(message: Message) -> Envelope:
    """`message` as a peer would receive it: signed, encoded, decoded."""
    data = encode_envelope(
        ALICE,
        type=message.TYPE,
        request_id=9,
        timestamp_ms=int(T0 * 1000),
        body=message.to_body(),
        max_size=10**6,
    )
    return decode_envelope(data, max_size=10**6)


def with_body(msg_type: int, body: Any) -> Envelope:
    return decode_envelope(raw_envelope(ALICE, type=msg_type, body=body))


def malformed(env: Envelope) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(env)
    assert info.value.code is ErrorCode.MALFORMED


def test_type_numbers_are_stable() -> None:
    """MSG-1.1: PING = 1, PONG = 2, ERROR = 3 on the wire."""
    assert (MessageType.PING, MessageType.PONG, MessageType.ERROR) == (1, 2, 3)
    assert (Ping.TYPE, Pong.TYPE, ErrorReply.TYPE) == (1, 2, 3)


ROUND_TRIPS: dict[str, Message] = {
    "ping empty": Ping(),
    "ping payload": Ping(payload=b"\x00\x01" * 100),
    "pong ipv4": Pong(observed=("192.0.2.7", 5000), payload=b"echo"),
    "pong ipv6": Pong(observed=("2001:db8::1", 65535)),
    "pong port 0": Pong(observed=("127.0.0.1", 0)),
    "pong longest host": Pong(observed=("h" * MAX_HOST_LENGTH, 1)),
    "error": ErrorReply(code=ErrorCode.TOO_LARGE, reason="too big"),
    "error unknown code": ErrorReply(code=999, reason=""),
    "error longest reason": ErrorReply(code=1, reason="é" * MAX_REASON_LENGTH),
}


@pytest.mark.parametrize("message", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_round_trip(message: Message) -> None:
    """MSG-2.1/MSG-2.2/MSG-3.1: each message survives signing, encoding and parsing."""
    assert parse_message(sent(message)) == message


def test_body_layouts() -> None:
    """MSG-2.1/MSG-2.2/MSG-3.1: the body maps use the documented integer keys."""
    assert Ping(payload=b"p").to_body() == {0: b"p"}
    assert Pong(observed=("10.0.0.1", 9), payload=b"p").to_body() == {0: ["10.0.0.1", 9], 1: b"p"}
    assert ErrorReply(code=5, reason="r").to_body() == {0: 5, 1: "r"}


def test_error_reason_truncated_on_send_refused_over_limit_on_receive() -> None:
    """MSG-3.1: a sender cuts the reason to 200 characters; a receiver refuses longer ones."""
    long = ErrorReply(code=1, reason="x" * 500)
    assert parse_message(sent(long)) == ErrorReply(code=1, reason="x" * MAX_REASON_LENGTH)
    malformed(with_body(3, {0: 1, 1: "x" * (MAX_REASON_LENGTH + 1)}))
    assert parse_message(with_body(3, {0: 1, 1: "x" * MAX_REASON_LENGTH})) == ErrorReply(
        code=1, reason="x" * MAX_REASON_LENGTH
    )


BAD_BODIES: dict[str, tuple[int, Any]] = {
    # MSG-1.2: exactly the keys of the type, no more, no fewer
    "ping missing payload": (1, {}),
    "ping extra key": (1, {0: b"", 1: b""}),
    "ping wrong key": (1, {1: b""}),
    "pong missing payload": (2, {0: ["127.0.0.1", 1]}),
    "pong missing address": (2, {1: b""}),
    "pong extra key": (2, {0: ["127.0.0.1", 1], 1: b"", 2: 0}),
    "error missing reason": (3, {0: 1}),
    "error missing code": (3, {1: "r"}),
    "error extra key": (3, {0: 1, 1: "r", 2: 0}),
    # field types
    "ping payload text": (1, {0: "abc"}),
    "ping payload int": (1, {0: 1}),
    "pong payload text": (2, {0: ["127.0.0.1", 1], 1: "x"}),
    "error code negative": (3, {0: -1, 1: "r"}),
    "error code bool": (3, {0: True, 1: "r"}),
    "error code text": (3, {0: "1", 1: "r"}),
    "error reason bytes": (3, {0: 1, 1: b"r"}),
    "error reason null": (3, {0: 1, 1: None}),
}


@pytest.mark.parametrize(("msg_type", "body"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_bodies(msg_type: int, body: Any) -> None:
    """MSG-1.2: a body with extra, missing or mistyped fields is MALFORMED."""
    malformed(with_body(msg_type, body))


BAD_ADDRESSES: dict[str, Any] = {
    "map": {0: "127.0.0.1", 1: 1},
    "text": "127.0.0.1:1",
    "one element": ["127.0.0.1"],
    "three elements": ["127.0.0.1", 1, 0],
    "empty list": [],
    "host bytes": [b"127.0.0.1", 1],
    "host empty": ["", 1],
    "host too long": ["h" * (MAX_HOST_LENGTH + 1), 1],
    "host int": [2130706433, 1],
    "port negative": ["127.0.0.1", -1],
    "port too large": ["127.0.0.1", 65536],
    "port bool": ["127.0.0.1", True],
    "port text": ["127.0.0.1", "1"],
    "port null": ["127.0.0.1", None],
}


@pytest.mark.parametrize("address", BAD_ADDRESSES.values(), ids=BAD_ADDRESSES.keys())
def test_bad_address_forms(address: Any) -> None:
    """MSG-2.3: an address is [host: 1..64 chars of text, port: 0..65535]; else MALFORMED."""
    with pytest.raises(RemoteProtocolError) as info:
        decode_address(address)
    assert info.value.code is ErrorCode.MALFORMED
    malformed(with_body(2, {0: address, 1: b""}))


def test_address_round_trip() -> None:
    """MSG-2.3: an address encodes as a 2-element array and decodes to the same tuple."""
    for address in [("127.0.0.1", 0), ("::1", 65535), ("fe80::1%eth0", 80)]:
        assert decode_address(encode_address(address)) == address


@pytest.mark.parametrize("msg_type", [0, 999, 2**32, 2**64 - 1])
def test_unknown_type(msg_type: int) -> None:
    """MSG-1.3: a type this version does not define is UNKNOWN_TYPE, whatever the body."""
    assert msg_type not in set(MessageType)
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(with_body(msg_type, {0: b""}))
    assert info.value.code is ErrorCode.UNKNOWN_TYPE
