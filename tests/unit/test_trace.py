"""Trace records (not a wire clause): one canonical JSON line per event, equal across drivers."""

import json

from railgun_ref.core.errors import ErrorCode
from railgun_ref.core.ids import NodeId
from railgun_ref.events import MessageRejected, PongReceived, RequestTimedOut
from railgun_ref.rpc.requests import Channel
from railgun_ref.trace import record_event

NODE = NodeId(bytes(range(32)))
PEER = NodeId(b"\xab" * 32)


def test_pong_record_is_canonical_json() -> None:
    """Canonical JSON: sorted keys, no spaces, bytes as hex, enums by value, tuples as lists."""
    event = PongReceived(
        peer_id=PEER,
        address=("127.0.0.1", 4000),
        request_id=7,
        channel=Channel.DATAGRAM,
        rtt=0.25,
        observed=("10.0.0.2", 5000),
        payload_size=3,
    )
    line = record_event(NODE, 1700000000.5, event).to_json()
    assert line == (
        '{"data":{"address":["127.0.0.1",4000],"channel":"datagram",'
        '"observed":["10.0.0.2",5000],"payload_size":3,'
        f'"peer_id":"{PEER.hex()}","request_id":7,"rtt":0.25}},'
        f'"event":"PongReceived","node":"{NODE.hex()}","time":1700000000.5}}'
    )


def test_int_enum_fields_are_written_by_name() -> None:
    """Trace records: an error code (ERR-1.1) is written as its name, readable in a dataframe."""
    event = MessageRejected(
        address=("::1", 1), channel=Channel.STREAM, code=ErrorCode.REPLAY, reason="seen"
    )
    record = json.loads(record_event(NODE, 5.0, event).to_json())
    assert record["data"] == {
        "address": ["::1", 1],
        "channel": "stream",
        "code": "REPLAY",
        "reason": "seen",
    }
    assert record["event"] == "MessageRejected"


def test_equal_events_give_identical_lines() -> None:
    """Trace records: the line depends only on event, node and time (determinism diffs it)."""

    def line() -> str:
        event = RequestTimedOut(
            request_id=2**64 - 1, address=("127.0.0.1", 1), kind=1, channel=Channel.DATAGRAM
        )
        return record_event(NODE, 12.0, event).to_json()

    assert line() == line()
    assert " " not in line()
    assert json.loads(line())["data"]["request_id"] == 2**64 - 1
    other = RequestTimedOut(
        request_id=2**64 - 1, address=("127.0.0.1", 1), kind=1, channel=Channel.DATAGRAM
    )
    assert record_event(NODE, 12.5, other).to_json() != line()
