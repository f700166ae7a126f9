"""Application messages (APP-1.x) between two in-memory nodes."""

import pytest

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.events import AppMessageReceived, MessageRejected
from railgun_ref.node import Node, NodeCounter
from railgun_ref.rpc.requests import Channel
from railgun_ref.trace import record_event
from railgun_ref.wire.envelope import decode_envelope
from railgun_ref.wire.messages import (
    MAX_APP_PAYLOAD,
    AppMessage,
    MessageType,
    parse_message,
)

from .pairs import (
    CONNECTION,
    T0,
    NodePair,
    Packet,
    all_events,
    identity,
    raw_envelope,
    take_datagrams,
    take_streams,
)


def app_events(node: Node) -> list[AppMessageReceived]:
    return [event for event in all_events(node) if isinstance(event, AppMessageReceived)]


def test_app_message_reaches_the_peer_with_the_verified_sender_and_no_reply() -> None:
    """APP-1.1/APP-1.3/APP-1.4: one-way over a stream, sender id from the envelope."""
    pair = NodePair()
    pair.a.send_app(pair.ADDR_B, 1, b"ciphertext", now=T0)
    assert take_datagrams(pair.a) == []
    (sent,) = take_streams(pair.a)
    assert sent[1] == pair.ADDR_B
    pair.deliver(pair.a, Packet(sent[0], Channel.STREAM, sent[1]), now=T0 + 0.1)
    (event,) = app_events(pair.b)
    assert event == AppMessageReceived(
        sender=pair.a.node_id,
        address=pair.ADDR_A,
        topic=1,
        payload=b"ciphertext",
        channel=Channel.STREAM,
    )
    # Nothing goes back: neither a response nor an ERROR.
    assert take_datagrams(pair.b) == [] and take_streams(pair.b) == []
    assert (
        pair.b.counters.get_count(NodeCounter.APP_RECEIVED) == 1
        and pair.a.counters.get_count(NodeCounter.APP_SENT) == 1
    )
    assert pair.a.requests_in_flight == 0


def test_largest_payload_fits_a_stream_and_round_trips() -> None:
    """APP-1.2/APP-1.4: a 64 KiB payload fits the stream channel."""
    pair = NodePair()
    payload = bytes(range(256)) * (MAX_APP_PAYLOAD // 256)
    pair.a.send_app(pair.ADDR_B, 0xFFFF, payload, now=T0)
    pair.pump(now=T0)
    (event,) = app_events(pair.b)
    assert event.payload == payload and event.topic == 0xFFFF


def test_small_app_message_may_use_a_datagram() -> None:
    """APP-1.4: a datagram APP is valid when it fits."""
    pair = NodePair()
    pair.a.send_app(pair.ADDR_B, 2, b"offer", now=T0, channel=Channel.DATAGRAM)
    pair.pump(now=T0)
    (event,) = app_events(pair.b)
    assert event.channel is Channel.DATAGRAM and event.payload == b"offer"


@pytest.mark.parametrize(
    ("topic", "size"), [(0, 1), (0x10000, 1), (-1, 1), (1, MAX_APP_PAYLOAD + 1)]
)
def test_sender_refuses_out_of_range_topics_and_payloads(topic: int, size: int) -> None:
    """APP-1.2: a sender MUST NOT send a body outside the bounds."""
    pair = NodePair()
    with pytest.raises(LocalProtocolError):
        pair.a.send_app(pair.ADDR_B, topic, b"x" * size, now=T0)
    assert take_streams(pair.a) == []


def test_datagram_too_small_for_the_payload_is_a_local_error() -> None:
    """APP-1.4: a datagram APP must fit MAX_DATAGRAM_SIZE."""
    pair = NodePair()
    with pytest.raises(LocalProtocolError):
        pair.a.send_app(pair.ADDR_B, 1, b"x" * 2000, now=T0, channel=Channel.DATAGRAM)


@pytest.mark.parametrize(
    "body",
    [
        {0: 0, 1: b"x"},
        {0: 70000, 1: b"x"},
        {0: "1", 1: b"x"},
        {0: 1, 1: "text"},
        {0: 1, 1: b"x" * (MAX_APP_PAYLOAD + 1)},
        {0: 1},
        {0: 1, 1: b"x", 2: b"extra"},
        {0: True, 1: b"x"},
    ],
)
def test_malformed_app_bodies_are_refused_counted_and_not_answered(body: dict[int, object]) -> None:
    """APP-1.2: a malformed APP is refused as MALFORMED, counted, with no reply."""
    pair = NodePair()
    data = raw_envelope(identity(1), type=MessageType.APP, request_id=99, body=body)
    pair.b.receive_stream_message(data, CONNECTION, pair.ADDR_A, now=T0)
    events = all_events(pair.b)
    assert [type(e) for e in events] == [MessageRejected]
    rejected = events[0]
    assert isinstance(rejected, MessageRejected) and rejected.code is ErrorCode.MALFORMED
    assert pair.b.counters.get_count(NodeCounter.REJECTED, ErrorCode.MALFORMED) == 1
    assert take_streams(pair.b) == [] and take_datagrams(pair.b) == []


def test_app_body_decoder_raises_only_remote_protocol_errors() -> None:
    """APP-1.2: the body codec round-trips and refuses bad bodies as the peer's fault."""
    message = AppMessage(topic=7, payload=b"\x00\x01")
    assert AppMessage.from_body(message.to_body()) == message
    with pytest.raises(RemoteProtocolError):
        AppMessage.from_body({0: 7})


def test_replayed_app_message_is_delivered_once() -> None:
    """APP-1.3 with RPC replay protection: the same signed APP twice is delivered once."""
    pair = NodePair()
    pair.a.send_app(pair.ADDR_B, 1, b"once", now=T0)
    ((data, _),) = take_streams(pair.a)
    pair.b.receive_stream_message(data, CONNECTION, pair.ADDR_A, now=T0)
    pair.b.receive_stream_message(data, CONNECTION, pair.ADDR_A, now=T0 + 1)
    assert len(app_events(pair.b)) == 1
    assert pair.b.counters.total(NodeCounter.REJECTED) == 1


def test_trace_keeps_the_payload_size_not_the_payload() -> None:
    """APP-1.3: the application's payload stays out of traces."""
    pair = NodePair()
    pair.a.send_app(pair.ADDR_B, 1, b"secret" * 10, now=T0)
    pair.pump(now=T0)
    (event,) = app_events(pair.b)
    record = record_event(pair.b.node_id, T0, event)
    assert "payload" not in record.data and record.data["payload_size"] == 60
    assert record.data["topic"] == 1


def test_app_envelope_is_type_22_with_topic_and_payload() -> None:
    """APP-1.1: the wire form is type 22 with body {0: topic, 1: payload}."""
    pair = NodePair()
    pair.a.send_app(pair.ADDR_B, 2, b"sdp", now=T0)
    ((data, _),) = take_streams(pair.a)
    envelope = decode_envelope(data, max_size=10**6)
    assert envelope.type == MessageType.APP == 22
    assert envelope.body == {0: 2, 1: b"sdp"}
    assert parse_message(envelope) == AppMessage(topic=2, payload=b"sdp")
