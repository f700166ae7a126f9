"""The node core (NODE-1.x, RPC-1.x, ENV-2.x, MSG-1.3) driven in memory with explicit `now`."""

import math
import random
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest

from railgun_ref.core.constants import MAX_CLOCK_SKEW, MAX_DATAGRAM_SIZE, MAX_STREAM_MESSAGE_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError
from railgun_ref.events import (
    ErrorReceived,
    MessageRejected,
    PingReceived,
    PongReceived,
    RequestTimedOut,
)
from railgun_ref.node import Node, NodeConfig, NodeCounter
from railgun_ref.rpc.labels import MessageName
from railgun_ref.rpc.requests import Channel
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.messages import ErrorReply, MessageType, Pong, parse_message

from .pairs import (
    CONNECTION,
    T0,
    NodePair,
    Packet,
    drain_events,
    identity,
    raw_envelope,
    take_datagrams,
    take_streams,
)


@pytest.fixture
def pair() -> Iterator[NodePair]:
    yield NodePair()


T = TypeVar("T")


def only(items: list[T]) -> T:
    assert len(items) == 1, items
    return items[0]


def no_deadline_by(node: Node, time: float) -> bool:
    """True if `node` needs no timer call at or before `time` (its other timers are later)."""
    deadline = node.next_deadline()
    return deadline is None or deadline > time


def rejected_total(node: Node) -> int:
    return node.counters.total(NodeCounter.REJECTED)


def ping_payload_for_size(pair: NodePair, channel: Channel, size: int) -> bytes:
    """A PING payload that makes node a's PING envelope exactly `size` bytes."""
    probe = pair.a.identity

    def length(n: int) -> int:
        return len(
            encode_envelope(
                probe,
                type=MessageType.PING,
                request_id=2**64 - 1,  # the widest request id: a real one is never longer
                timestamp_ms=round(T0 * 1000),
                body={0: b"x" * n},
                max_size=10**6,
            )
        )

    base = 70_000 if channel is Channel.STREAM else 1000  # same length-head widths as `size`
    n = base + size - length(base)
    assert length(n) == size
    return b"x" * n


# -------------------------------------------------------------------------- PING / PONG


def test_ping_pong_over_datagram(pair: NodePair) -> None:
    """RPC-1.1/MSG-2.2: a PING is answered by a PONG carrying the observed address and payload."""
    request_id = pair.a.ping(pair.ADDR_B, now=T0, payload=b"hello")
    assert pair.a.requests_in_flight == 1
    assert pair.pump(now=T0 + 0.5) == 2
    ping_event = only(drain_events(pair.b))
    assert ping_event == PingReceived(
        peer_id=pair.a.node_id, address=pair.ADDR_A, request_id=request_id, channel=Channel.DATAGRAM
    )
    pong = only(drain_events(pair.a))
    assert pong == PongReceived(
        peer_id=pair.b.node_id,
        address=pair.ADDR_B,
        request_id=request_id,
        channel=Channel.DATAGRAM,
        rtt=0.5,
        observed=pair.ADDR_A,
        payload_size=5,
    )
    assert pair.a.requests_in_flight == 0
    assert no_deadline_by(pair.a, T0 + NodeConfig().request_timeout)
    assert [p.channel for _, p in pair.log] == [Channel.DATAGRAM, Channel.DATAGRAM]


def test_pong_echoes_payload_bytes(pair: NodePair) -> None:
    """MSG-2.2: the PONG's payload is the PING's payload, byte for byte."""
    pair.a.ping(pair.ADDR_B, now=T0, payload=b"\x00\xffecho")
    pair.deliver(pair.a, only(pair.flush(pair.a)), now=T0)
    reply = only(pair.flush(pair.b))
    message = parse_message(decode_envelope(reply.data))
    assert message == Pong(observed=pair.ADDR_A, payload=b"\x00\xffecho")


def test_ping_pong_over_stream_replies_on_the_connection(pair: NodePair) -> None:
    """NODE-1.3/STR-1.4: a stream request is answered on the connection it came in on."""
    request_id = pair.a.ping(pair.ADDR_B, now=T0, channel=Channel.STREAM)
    assert take_datagrams(pair.a) == []
    (outgoing,) = take_streams(pair.a)
    assert outgoing[1] == pair.ADDR_B  # a request goes to the peer's listening address
    pair.deliver(pair.a, Packet(outgoing[0], Channel.STREAM, outgoing[1]), now=T0)
    assert take_datagrams(pair.b) == []
    (reply,) = take_streams(pair.b)
    assert reply[1] == CONNECTION  # the reply goes back on the connection, not to an address
    pair.deliver(pair.b, Packet(reply[0], Channel.STREAM, reply[1]), now=T0 + 0.25)
    pong = only(drain_events(pair.a))
    assert isinstance(pong, PongReceived)
    assert pong.request_id == request_id
    assert pong.channel is Channel.STREAM
    assert pong.rtt == 0.25
    assert isinstance(only(drain_events(pair.b)), PingReceived)


@pytest.mark.parametrize("delay", [0.0, 0.001, 0.25, 1.5, 4.999])
def test_rtt_is_exactly_the_now_difference(pair: NodePair, delay: float) -> None:
    """RPC-1.2: the reported RTT is receive-now minus send-now, nothing else."""
    start = 1000.5
    pair.a.ping(pair.ADDR_B, now=start)
    pair.pump(now=start + delay)
    pong = only(drain_events(pair.a))
    assert isinstance(pong, PongReceived)
    assert pong.rtt == (start + delay) - start


def test_request_ids_are_distinct_and_come_from_the_rng(pair: NodePair) -> None:
    """RPC-1.1: request ids are drawn from the injected RNG and unique in flight."""
    ids = [pair.a.ping(pair.ADDR_B, now=T0) for _ in range(50)]
    assert len(set(ids)) == 50
    again = NodePair()
    assert [again.a.ping(again.ADDR_B, now=T0) for _ in range(50)] == ids
    rng = random.Random(1)
    assert ids[0] == rng.getrandbits(64)


# ----------------------------------------------------------------------------- timers


def test_timeout_at_deadline_and_not_before(pair: NodePair) -> None:
    """RPC-1.2: an unanswered request times out exactly at now + request_timeout."""
    request_id = pair.a.ping(pair.ADDR_B, now=T0)
    pair.flush(pair.a)  # lost
    deadline = T0 + NodeConfig().request_timeout
    assert pair.a.next_deadline() == deadline
    pair.a.on_timer(now=T0 + 1)
    pair.a.on_timer(now=math.nextafter(deadline, 0))
    assert drain_events(pair.a) == []
    assert pair.a.requests_in_flight == 1
    pair.a.on_timer(now=deadline)
    assert only(drain_events(pair.a)) == RequestTimedOut(
        request_id=request_id, address=pair.ADDR_B, kind=MessageType.PING, channel=Channel.DATAGRAM
    )
    assert pair.a.requests_in_flight == 0
    assert no_deadline_by(pair.a, deadline)
    assert pair.a.counters.get_count(NodeCounter.REQUEST_TIMEOUT) == 1
    pair.a.on_timer(now=deadline + 100)
    assert drain_events(pair.a) == []  # exactly one outcome per request


def test_next_deadline_tracks_requests_in_flight() -> None:
    """RPC-1.2: next_deadline is the earliest deadline still pending, or None."""
    pair = NodePair(config_a=NodeConfig(request_timeout=2.0))
    assert no_deadline_by(pair.a, T0 + 100)
    pair.a.ping(pair.ADDR_B, now=T0)
    first = pair.flush(pair.a)
    pair.a.ping(pair.ADDR_B, now=T0 + 1)
    pair.flush(pair.a)
    assert pair.a.next_deadline() == T0 + 2.0
    # the first is answered, the second is lost
    pair.deliver(pair.a, only(first), now=T0 + 1)
    for packet in pair.flush(pair.b):
        pair.deliver(pair.b, packet, now=T0 + 1.5)
    assert pair.a.next_deadline() == T0 + 3.0
    pair.a.on_timer(now=T0 + 3.0)
    assert no_deadline_by(pair.a, T0 + 100)
    kinds = [type(e) for e in drain_events(pair.a)]
    assert kinds == [PongReceived, RequestTimedOut]


def test_late_pong_after_timeout_is_unexpected(pair: NodePair) -> None:
    """RPC-1.2: once timed out, a request cannot also be answered."""
    pair.a.ping(pair.ADDR_B, now=T0)
    ping = only(pair.flush(pair.a))
    pair.a.on_timer(now=T0 + 10)
    pair.deliver(pair.a, ping, now=T0 + 10)
    for packet in pair.flush(pair.b):
        pair.deliver(pair.b, packet, now=T0 + 10)
    events = drain_events(pair.a)
    assert [type(e) for e in events] == [RequestTimedOut, MessageRejected]
    assert isinstance(events[1], MessageRejected)
    assert events[1].code is ErrorCode.UNEXPECTED_RESPONSE


# ------------------------------------------------------------------------- refusals


def test_replayed_ping_is_refused_without_reply(pair: NodePair) -> None:
    """ENV-2.4/NODE-1.2: a replayed PING is counted as REPLAY and not answered."""
    pair.a.ping(pair.ADDR_B, now=T0)
    ping = only(pair.flush(pair.a))
    pair.deliver(pair.a, ping, now=T0)
    assert len(pair.flush(pair.b)) == 1
    drain_events(pair.b)
    pair.deliver(pair.a, ping, now=T0 + 1)
    assert pair.flush(pair.b) == []
    event = only(drain_events(pair.b))
    assert isinstance(event, MessageRejected)
    assert event.code is ErrorCode.REPLAY
    assert event.address == pair.ADDR_A
    assert pair.b.counters.get_count(NodeCounter.REJECTED, ErrorCode.REPLAY) == 1
    assert pair.b.counters.get_count(NodeCounter.PING_ANSWERED) == 1


@pytest.mark.parametrize("skew", [MAX_CLOCK_SKEW + 0.001, -(MAX_CLOCK_SKEW + 0.001)])
def test_stale_ping_is_refused_without_reply(pair: NodePair, skew: float) -> None:
    """ENV-2.3/NODE-1.2: a PING stamped outside the skew window is STALE and unanswered."""
    pair.a.ping(pair.ADDR_B, now=T0)
    pair.deliver(pair.a, only(pair.flush(pair.a)), now=T0 + skew)
    assert pair.flush(pair.b) == []
    event = only(drain_events(pair.b))
    assert isinstance(event, MessageRejected)
    assert event.code is ErrorCode.STALE
    assert pair.b.counters.get_count(NodeCounter.REJECTED, ErrorCode.STALE) == 1


@pytest.mark.parametrize("skew", [MAX_CLOCK_SKEW, -MAX_CLOCK_SKEW])
def test_ping_at_the_skew_limit_is_answered(pair: NodePair, skew: float) -> None:
    """ENV-2.3: a PING exactly at the skew limit is still fresh."""
    pair.a.ping(pair.ADDR_B, now=T0)
    pair.deliver(pair.a, only(pair.flush(pair.a)), now=T0 + skew)
    assert len(pair.flush(pair.b)) == 1


GARBAGE: dict[str, bytes] = {
    "empty": b"",
    "one byte": b"\x00",
    "text": b"hello, node",
    "cbor but not an envelope": b"\x82\x01\x02",
    "oversize": b"\x00" * (MAX_DATAGRAM_SIZE + 1),
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_is_counted_and_not_answered(pair: NodePair, data: bytes) -> None:
    """NODE-1.2: bytes that do not authenticate are counted, reported and never answered."""
    pair.b.receive_datagram(data, pair.ADDR_A, now=T0)
    pair.b.receive_stream_message(data, CONNECTION, pair.ADDR_A, now=T0)
    assert pair.flush(pair.b) == []
    events = drain_events(pair.b)
    assert len(events) == 2
    assert all(isinstance(e, MessageRejected) for e in events)
    assert rejected_total(pair.b) == 2
    assert pair.b.counters.get_count(NodeCounter.RX, Channel.DATAGRAM) == 1
    assert pair.b.counters.get_count(NodeCounter.RX, Channel.STREAM) == 1


def test_forged_ping_is_not_answered(pair: NodePair) -> None:
    """NODE-1.2: a PING with a bad signature gets no reply (no reflection at a spoofed source)."""
    data = raw_envelope(pair.a.identity, signature=bytes(64))
    pair.b.receive_datagram(data, ("198.51.100.9", 53), now=T0)
    assert pair.flush(pair.b) == []
    event = only(drain_events(pair.b))
    assert isinstance(event, MessageRejected)
    assert event.code is ErrorCode.BAD_SIGNATURE
    assert event.address == ("198.51.100.9", 53)


def test_unknown_type_gets_error_reply(pair: NodePair) -> None:
    """MSG-1.3: an authenticated request of an unknown type is answered with ERROR UNKNOWN_TYPE."""
    data = raw_envelope(pair.a.identity, type=999, request_id=77, body={})
    pair.b.receive_datagram(data, pair.ADDR_A, now=T0)
    reply = only(pair.flush(pair.b))
    assert reply.target == pair.ADDR_A
    envelope = decode_envelope(reply.data)
    assert envelope.request_id == 77
    assert envelope.sender_id == pair.b.node_id
    message = parse_message(envelope)
    assert isinstance(message, ErrorReply)
    assert message.code == ErrorCode.UNKNOWN_TYPE
    event = only(drain_events(pair.b))
    assert isinstance(event, MessageRejected)
    assert event.code is ErrorCode.UNKNOWN_TYPE
    assert pair.b.counters.get_count(NodeCounter.REJECTED, ErrorCode.UNKNOWN_TYPE) == 1


def test_pong_without_request_is_unexpected(pair: NodePair) -> None:
    """RPC-1.3: a PONG matching no request in flight is counted as UNEXPECTED_RESPONSE."""
    data = raw_envelope(pair.b.identity, type=2, request_id=5, body={0: ["127.0.0.1", 1], 1: b""})
    pair.a.receive_datagram(data, pair.ADDR_B, now=T0)
    assert pair.flush(pair.a) == []
    event = only(drain_events(pair.a))
    assert isinstance(event, MessageRejected)
    assert event.code is ErrorCode.UNEXPECTED_RESPONSE
    assert pair.a.counters.get_count(NodeCounter.REJECTED, ErrorCode.UNEXPECTED_RESPONSE) == 1


def test_error_without_request_is_unexpected(pair: NodePair) -> None:
    """RPC-1.3: an ERROR matching no request is refused and never answered (no error loops)."""
    data = raw_envelope(pair.b.identity, type=3, request_id=5, body={0: 1, 1: "no"})
    pair.a.receive_datagram(data, pair.ADDR_B, now=T0)
    assert pair.flush(pair.a) == []
    event = only(drain_events(pair.a))
    assert isinstance(event, MessageRejected)
    assert event.code is ErrorCode.UNEXPECTED_RESPONSE


def _pong_from(ident_seed: int, request_id: int, now: float) -> bytes:
    return encode_envelope(
        identity(ident_seed),
        type=MessageType.PONG,
        request_id=request_id,
        timestamp_ms=round(now * 1000),
        body=Pong(observed=NodePair.ADDR_A).to_body(),
    )


def test_pong_from_wrong_peer_then_right_peer(pair: NodePair) -> None:
    """RPC-1.3: a PONG signed by another node is WRONG_SENDER; the expected peer still completes."""
    request_id = pair.a.ping(pair.ADDR_B, now=T0, expected_peer=pair.b.node_id)
    ping = only(pair.flush(pair.a))
    pair.a.receive_datagram(_pong_from(3, request_id, T0), pair.ADDR_B, now=T0 + 0.1)
    event = only(drain_events(pair.a))
    assert isinstance(event, MessageRejected)
    assert event.code is ErrorCode.WRONG_SENDER
    assert pair.a.requests_in_flight == 1
    pair.deliver(pair.a, ping, now=T0 + 0.2)
    for packet in pair.flush(pair.b):
        pair.deliver(pair.b, packet, now=T0 + 0.3)
    pong = only(drain_events(pair.a))
    assert isinstance(pong, PongReceived)
    assert pong.peer_id == pair.b.node_id
    assert pong.request_id == request_id
    assert pair.a.requests_in_flight == 0


def test_pong_from_anyone_when_peer_unknown(pair: NodePair) -> None:
    """RPC-1.3: without expected_peer, any authenticated node's PONG completes the request."""
    request_id = pair.a.ping(pair.ADDR_B, now=T0)
    pair.flush(pair.a)
    pair.a.receive_datagram(_pong_from(3, request_id, T0), pair.ADDR_B, now=T0 + 0.1)
    pong = only(drain_events(pair.a))
    assert isinstance(pong, PongReceived)
    assert pong.peer_id == identity(3).node_id


# ---------------------------------------------------------------------------- sizes


def test_ping_too_large_for_a_datagram_is_a_local_error(pair: NodePair) -> None:
    """ENV-1.4: a PING that cannot fit a datagram is refused locally and leaves no trace."""
    with pytest.raises(LocalProtocolError):
        pair.a.ping(pair.ADDR_B, now=T0, payload=b"x" * MAX_DATAGRAM_SIZE)
    assert pair.a.requests_in_flight == 0
    assert no_deadline_by(pair.a, T0 + 100)
    assert pair.flush(pair.a) == []
    # the same payload fits a stream
    pair.a.ping(pair.ADDR_B, now=T0, payload=b"x" * MAX_DATAGRAM_SIZE, channel=Channel.STREAM)
    assert len(pair.flush(pair.a)) == 1


@pytest.mark.parametrize(
    ("channel", "limit"),
    [(Channel.DATAGRAM, MAX_DATAGRAM_SIZE), (Channel.STREAM, MAX_STREAM_MESSAGE_SIZE)],
)
def test_ping_at_the_limit_gets_error_too_large(
    pair: NodePair, channel: Channel, limit: int
) -> None:
    """NODE-1.4/ENV-1.4: a PING at the limit whose PONG would not fit gets ERROR TOO_LARGE."""
    payload = ping_payload_for_size(pair, channel, limit)
    request_id = pair.a.ping(pair.ADDR_B, now=T0, channel=channel, payload=payload)
    (ping,) = pair.flush(pair.a)
    assert len(ping.data) <= limit
    pair.deliver(pair.a, ping, now=T0)
    (reply,) = pair.flush(pair.b)
    assert reply.channel is channel
    assert len(reply.data) <= limit
    assert pair.b.counters.get_count(NodeCounter.REPLY_TOO_LARGE) == 1
    pair.deliver(pair.b, reply, now=T0 + 1)
    event = only(drain_events(pair.a))
    assert event == ErrorReceived(
        peer_id=pair.b.node_id,
        address=pair.ADDR_B,
        request_id=request_id,
        code=ErrorCode.TOO_LARGE,
        reason="reply would exceed the limit",
    )
    assert pair.a.requests_in_flight == 0


def test_ping_of_limit_plus_one_is_refused_locally(pair: NodePair) -> None:
    """ENV-1.4: one byte over the stream limit is refused before anything is queued."""
    payload = ping_payload_for_size(pair, Channel.STREAM, MAX_STREAM_MESSAGE_SIZE)
    with pytest.raises(LocalProtocolError):
        pair.a.ping(pair.ADDR_B, now=T0, channel=Channel.STREAM, payload=payload + b"x")
    assert pair.a.requests_in_flight == 0


def test_oversize_stream_message_refused_as_too_large(pair: NodePair) -> None:
    """ENV-1.4/STR-1.2: a stream message over the stream limit is TOO_LARGE, not answered."""
    pair.b.receive_stream_message(
        b"\x00" * (MAX_STREAM_MESSAGE_SIZE + 1), CONNECTION, pair.ADDR_A, now=T0
    )
    event = only(drain_events(pair.b))
    assert isinstance(event, MessageRejected)
    assert event.code is ErrorCode.TOO_LARGE
    assert pair.flush(pair.b) == []


# ------------------------------------------------------------------------ config, determinism


@pytest.mark.parametrize(
    "kwargs",
    [
        {"request_timeout": 0.0},
        {"request_timeout": -1.0},
        {"request_timeout": math.nan},
        {"max_clock_skew": 0.0},
        {"max_clock_skew": -5.0},
        {"max_clock_skew": math.nan},
        {"replay_capacity": 0},
        {"replay_capacity": -1},
    ],
)
def test_node_config_validation(kwargs: dict[str, Any]) -> None:
    """RPC-1.2/ENV-2.3/ENV-2.4: nonsensical node parameters are a local error."""
    with pytest.raises(LocalProtocolError):
        NodeConfig(**kwargs)


def test_config_is_honoured() -> None:
    """RPC-1.2/ENV-2.3: request_timeout and max_clock_skew change observable behaviour."""
    config = NodeConfig(request_timeout=0.5, max_clock_skew=10.0)
    pair = NodePair(config_a=config, config_b=config)
    pair.a.ping(pair.ADDR_B, now=T0)
    assert pair.a.next_deadline() == T0 + 0.5
    pair.deliver(pair.a, only(pair.flush(pair.a)), now=T0 + 10.5)
    event = only(drain_events(pair.b))
    assert isinstance(event, MessageRejected)
    assert event.code is ErrorCode.STALE


def test_replay_capacity_evictions_are_counted() -> None:
    """ENV-2.4: evictions from a full replay memory show up in the node's counters."""
    pair = NodePair(config_b=NodeConfig(replay_capacity=2))
    for i in range(4):
        pair.a.ping(pair.ADDR_B, now=T0 + i)
        pair.deliver(pair.a, only(pair.flush(pair.a)), now=T0 + i)
        pair.flush(pair.b)  # b's replies are dropped: b sees exactly four envelopes
    assert pair.b.counters.get_count(NodeCounter.REPLAY_EVICTED) == 2
    assert pair.b.counters.get_count(NodeCounter.PING_ANSWERED) == 4


def _scenario() -> list[tuple[str, bytes]]:
    pair = NodePair(seed_a=11, seed_b=12)
    pair.a.ping(pair.ADDR_B, now=T0, payload=b"one")
    pair.b.ping(pair.ADDR_A, now=T0 + 0.1, channel=Channel.STREAM)
    pair.pump(now=T0 + 0.2)
    pair.a.ping(pair.ADDR_B, now=T0 + 1)
    pair.pump(now=T0 + 1.05)
    return [(sender, packet.data) for sender, packet in pair.log]


def test_same_seeds_same_bytes() -> None:
    """ENV-1.2/RPC-1.1: same identities, RNG seeds and `now`s give identical bytes out."""
    first, second = _scenario(), _scenario()
    assert len(first) >= 6  # three PINGs and their PONGs (other components may add traffic)
    assert first == second


def test_different_rng_seed_changes_request_ids() -> None:
    """RPC-1.1: randomness comes from the injected RNG (another seed, other request ids)."""
    one = Node(identity(1), rng=random.Random(1), now=T0)
    two = Node(identity(1), rng=random.Random(2), now=T0)
    assert one.ping(NodePair.ADDR_B, now=T0) != two.ping(NodePair.ADDR_B, now=T0)


def test_counters_track_traffic(pair: NodePair) -> None:
    """NODE-1.2: counters record what went in and out."""
    pair.a.ping(pair.ADDR_B, now=T0)
    pair.pump(now=T0)
    assert pair.a.counters.get_count(NodeCounter.TX, Channel.DATAGRAM) == 1
    assert pair.a.counters.get_count(NodeCounter.REQUEST, MessageName.PING) == 1
    assert pair.a.counters.get_count(NodeCounter.PONG_RECEIVED) == 1
    assert pair.b.counters.get_count(NodeCounter.RX, Channel.DATAGRAM) == 1
    assert pair.b.counters.get_count(NodeCounter.TX, Channel.DATAGRAM) == 1
    assert pair.b.counters.get_count(NodeCounter.PING_ANSWERED) == 1


def test_response_of_the_wrong_type_does_not_end_the_request(pair: NodePair) -> None:
    """RPC-1.4/RPC-1.2: a response of the wrong type is refused and the request stays open.

    A PING answered with a NODES is UNEXPECTED_RESPONSE; the request must still end in
    exactly one outcome (here the real PONG), never vanish without an event.
    """
    request_id = pair.a.ping(pair.ADDR_B, now=T0, expected_peer=pair.b.node_id)
    ping = only(pair.flush(pair.a))
    wrong = raw_envelope(
        pair.b.identity,
        type=MessageType.NODES,
        request_id=request_id,
        timestamp_ms=round(T0 * 1000),
        body={0: []},
    )
    pair.a.receive_datagram(wrong, pair.ADDR_B, now=T0 + 0.1)
    event = only(drain_events(pair.a))
    assert isinstance(event, MessageRejected)
    assert event.code is ErrorCode.UNEXPECTED_RESPONSE
    assert pair.a.requests_in_flight == 1
    pair.deliver(pair.a, ping, now=T0 + 0.2)
    for packet in pair.flush(pair.b):
        pair.deliver(pair.b, packet, now=T0 + 0.3)
    pong = only(drain_events(pair.a))
    assert isinstance(pong, PongReceived)
    assert pong.request_id == request_id
    assert pair.a.requests_in_flight == 0
