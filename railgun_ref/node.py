"""A Rail Gun node: the sans-IO composition of the protocol cores.

Shape (aioquic's `QuicConnection`, h11's `Connection`): the driver feeds
inputs — `receive_datagram`, `receive_stream_message`, `on_timer` and API
calls such as `ping` — each with the current time `now` (seconds since the
Unix epoch, the same clock that stamps envelopes), then drains the outputs:
`datagrams_to_send()`, `stream_messages_to_send()`, `next_event()`, and asks
`next_deadline()` when to call `on_timer` next. The node never reads a clock,
never sleeps, never touches a socket, and draws randomness only from the
`random.Random` it was given, so the same inputs give the same outputs in the
UDP driver and in the simulator.

Invariants:
* every input is authenticated (ENV-2.1), fresh and not a replay (ENV-2.3/2.4)
  before any state changes; anything refused is counted under
  ``rejected.<CODE>`` and reported as `MessageRejected`, and the node goes on;
* a node never answers bytes it could not authenticate (NODE-1.2), so it can't
  be used to reflect traffic at a spoofed address;
* every request ends in exactly one `PongReceived`/`ErrorReceived` or
  `RequestTimedOut` event.
"""

import random
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import NewType, assert_never

from railgun_ref.core.constants import MAX_CLOCK_SKEW, MAX_DATAGRAM_SIZE, MAX_STREAM_MESSAGE_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.service import Dht, DhtConfig
from railgun_ref.events import (
    AppMessageReceived,
    ErrorReceived,
    MessageRejected,
    NodeEvent,
    PingReceived,
    PongReceived,
    RequestTimedOut,
)
from railgun_ref.identity.keys import Identity
from railgun_ref.rpc.replay import ReplayGuard
from railgun_ref.rpc.requests import Channel, PendingRequest, PendingRequests
from railgun_ref.wire.envelope import Envelope, decode_envelope, encode_envelope
from railgun_ref.wire.messages import (
    AppMessage,
    ErrorReply,
    FindNode,
    FindValue,
    Message,
    MessageType,
    Nodes,
    Ping,
    Pong,
    Store,
    Stored,
    Value,
    parse_message,
)

#: RPC-1.4: which response type answers which request type (ERROR answers any).
_RESPONSE_TO: dict[MessageType, MessageType] = {
    MessageType.PONG: MessageType.PING,
    MessageType.NODES: MessageType.FIND_NODE,
    MessageType.VALUE: MessageType.FIND_VALUE,
    MessageType.STORED: MessageType.STORE,
}

#: A stream connection, numbered by the driver that owns it.
ConnectionId = NewType("ConnectionId", int)
#: Where a stream message goes: a listening address (the driver opens or reuses
#: a connection to it) or an existing connection (replies go back on the
#: connection the request came in on).
StreamTarget = Address | ConnectionId


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """Node parameters; each names the spec clause that sets its default."""

    #: RPC-1.2: seconds a request waits for its response.
    request_timeout: float = 5.0
    #: ENV-2.3: accepted clock skew of envelope timestamps, seconds.
    max_clock_skew: float = MAX_CLOCK_SKEW
    #: ENV-2.4: how many recent (sender, type, request id) triples are remembered.
    replay_capacity: int = 65536
    #: DHT-9.1: the DHT's parameters.
    dht: DhtConfig = field(default_factory=DhtConfig)

    def __post_init__(self) -> None:
        if not self.request_timeout > 0:
            raise LocalProtocolError("request_timeout must be positive")
        if not self.max_clock_skew > 0:
            raise LocalProtocolError("max_clock_skew must be positive")
        if self.replay_capacity < 1:
            raise LocalProtocolError("replay_capacity must be at least 1")


def _limit(channel: Channel) -> int:
    return MAX_DATAGRAM_SIZE if channel is Channel.DATAGRAM else MAX_STREAM_MESSAGE_SIZE


class Node:
    def __init__(
        self,
        identity: Identity,
        *,
        rng: random.Random,
        config: NodeConfig | None = None,
        now: float,
    ) -> None:
        """`now` is the creation time (seconds since the epoch): periodic DHT
        maintenance is scheduled from it."""
        self.identity = identity
        self.config = config or NodeConfig()
        self.counters: Counter[str] = Counter()
        self._rng = rng
        self._pending = PendingRequests()
        self._replay = ReplayGuard(
            max_skew=self.config.max_clock_skew, capacity=self.config.replay_capacity
        )
        self._datagrams: list[tuple[bytes, Address]] = []
        self._stream_out: list[tuple[bytes, StreamTarget]] = []
        self._events: deque[NodeEvent] = deque()
        self.dht = Dht(
            identity,
            rng=rng,
            send=self._dht_send,
            emit=self._events.append,
            config=self.config.dht,
            now=now,
        )

    @property
    def node_id(self) -> NodeId:
        return self.identity.node_id

    # ---------------------------------------------------------------- inputs

    def receive_datagram(self, data: bytes, address: Address, *, now: float) -> None:
        """One UDP datagram arrived from `address`."""
        self._receive(data, address, Channel.DATAGRAM, address, now)

    def receive_stream_message(
        self, data: bytes, connection: ConnectionId, address: Address, *, now: float
    ) -> None:
        """One length-delimited message arrived on stream `connection` from `address`."""
        self._receive(data, address, Channel.STREAM, connection, now)

    def on_timer(self, *, now: float) -> None:
        """Expire whatever is due at `now`. Safe to call early or often."""
        for request in self._pending.expire(now):
            self.counters["request.timeout"] += 1
            self._events.append(
                RequestTimedOut(
                    request_id=request.request_id,
                    address=request.address,
                    kind=request.kind,
                    channel=request.channel,
                )
            )
            self.dht.on_timeout(request, now=now)
        self.dht.on_timer(now=now)

    # ------------------------------------------------------------------- API

    def send_app(
        self,
        address: Address,
        topic: int,
        payload: bytes,
        *,
        now: float,
        channel: Channel = Channel.STREAM,
    ) -> None:
        """Send an application message (APP-1.1) to the node at `address`.

        One-way: nothing answers it, so delivery is the caller's concern (the
        room path acknowledges at its own layer). Raises `LocalProtocolError`
        for a bad topic or a payload that does not fit `channel`.
        """
        message = AppMessage(topic=topic, payload=payload)
        data = self._encode(message, self._new_request_id(), now, channel)
        self.counters["app.sent"] += 1
        self._emit(data, channel, address)

    def ping(
        self,
        address: Address,
        *,
        now: float,
        channel: Channel = Channel.DATAGRAM,
        payload: bytes = b"",
        expected_peer: NodeId | None = None,
    ) -> int:
        """Send a PING (MSG-2.1) and return its request id.

        The outcome arrives later as `PongReceived`, `ErrorReceived` or
        `RequestTimedOut` with that id. Raises `LocalProtocolError` if the
        PING would not fit the channel.
        """
        return self._request(
            Ping(payload=payload), address, now=now, channel=channel, expected_peer=expected_peer
        )

    # --------------------------------------------------------------- outputs

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._datagrams = self._datagrams, []
        return out

    def stream_messages_to_send(self) -> list[tuple[bytes, StreamTarget]]:
        out, self._stream_out = self._stream_out, []
        return out

    def next_event(self) -> NodeEvent | None:
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        pending, dht = self._pending.next_deadline(), self.dht.next_deadline()
        deadlines = [d for d in (pending, dht) if d is not None]
        return min(deadlines) if deadlines else None

    def _dht_send(
        self, message: Message, address: Address, expected_peer: NodeId | None, now: float
    ) -> int:
        return self._request(
            message, address, now=now, channel=Channel.DATAGRAM, expected_peer=expected_peer
        )

    @property
    def requests_in_flight(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------- internals

    def _new_request_id(self) -> int:
        while True:
            request_id = self._rng.getrandbits(64)
            if request_id not in self._pending:
                return request_id

    def _encode(self, message: Message, request_id: int, now: float, channel: Channel) -> bytes:
        return encode_envelope(
            self.identity,
            type=message.TYPE,
            request_id=request_id,
            timestamp_ms=max(0, round(now * 1000)),
            body=message.to_body(),
            max_size=_limit(channel),
        )

    def _emit(self, data: bytes, channel: Channel, target: StreamTarget) -> None:
        if channel is Channel.DATAGRAM:
            assert isinstance(target, tuple)
            self._datagrams.append((data, target))
        else:
            self._stream_out.append((data, target))
        self.counters[f"tx.{channel.value}"] += 1

    def _request(
        self,
        message: Message,
        address: Address,
        *,
        now: float,
        channel: Channel,
        expected_peer: NodeId | None,
    ) -> int:
        request_id = self._new_request_id()
        data = self._encode(message, request_id, now, channel)
        self._pending.add(
            PendingRequest(
                request_id=request_id,
                kind=message.TYPE,
                address=address,
                expected_sender=expected_peer,
                channel=channel,
                sent_at=now,
                deadline=now + self.config.request_timeout,
            )
        )
        self.counters[f"request.{message.TYPE.name.lower()}"] += 1
        self._emit(data, channel, address)
        return request_id

    def _reply(
        self,
        message: Message,
        envelope: Envelope,
        channel: Channel,
        reply_to: StreamTarget,
        now: float,
    ) -> None:
        try:
            data = self._encode(message, envelope.request_id, now, channel)
        except LocalProtocolError:
            # The answer would not fit the channel (e.g. an echo of a PING at the limit).
            self.counters["reply.too_large"] += 1
            refusal = ErrorReply(code=ErrorCode.TOO_LARGE, reason="reply would exceed the limit")
            data = self._encode(refusal, envelope.request_id, now, channel)
        self._emit(data, channel, reply_to)

    def _reject(self, address: Address, channel: Channel, exc: RemoteProtocolError) -> None:
        self.counters[f"rejected.{exc.code.name}"] += 1
        self._events.append(
            MessageRejected(address=address, channel=channel, code=exc.code, reason=exc.message)
        )

    def _receive(
        self, data: bytes, address: Address, channel: Channel, reply_to: StreamTarget, now: float
    ) -> None:
        self.counters[f"rx.{channel.value}"] += 1
        try:
            envelope = decode_envelope(data, max_size=_limit(channel))
            self._replay.check(
                envelope.sender_key,
                envelope.type,
                envelope.request_id,
                envelope.timestamp_ms,
                now=now,
            )
        except RemoteProtocolError as exc:
            self._reject(address, channel, exc)  # NODE-1.2: no reply to what we can't trust
            return
        self.counters["replay.evicted"] = self._replay.evicted
        if channel is Channel.DATAGRAM:
            # DHT-5.1: the signature binds the sender's id to the address it sent from.
            self.dht.observe(envelope.sender_id, address, now=now)
        try:
            message = parse_message(envelope)
            self._dispatch(message, envelope, address, channel, reply_to, now)
        except RemoteProtocolError as exc:
            self._reject(address, channel, exc)
            if exc.code is ErrorCode.UNKNOWN_TYPE or _is_request(envelope.type):
                # MSG-1.3 / NODE-1.4: an authenticated request that cannot be
                # served gets an ERROR naming why; a bad response gets nothing.
                self._reply(
                    ErrorReply(code=exc.code, reason=exc.message), envelope, channel, reply_to, now
                )

    def _dispatch(
        self,
        message: Message,
        envelope: Envelope,
        address: Address,
        channel: Channel,
        reply_to: StreamTarget,
        now: float,
    ) -> None:
        match message:
            case Ping():
                self.counters["ping.answered"] += 1
                self._reply(
                    Pong(observed=address, payload=message.payload),
                    envelope,
                    channel,
                    reply_to,
                    now,
                )
                self._events.append(
                    PingReceived(
                        peer_id=envelope.sender_id,
                        address=address,
                        request_id=envelope.request_id,
                        channel=channel,
                    )
                )
            case FindNode():
                reply = self.dht.handle_find_node(message, envelope.sender_id, channel)
                self._reply(reply, envelope, channel, reply_to, now)
            case FindValue():
                reply_value = self.dht.handle_find_value(
                    message, envelope.sender_id, channel, now=now
                )
                self._reply(reply_value, envelope, channel, reply_to, now)
            case Store():
                stored = self.dht.handle_store(message, envelope.sender_id, now=now)
                self._reply(stored, envelope, channel, reply_to, now)
            case AppMessage():
                self.counters["app.received"] += 1
                self._events.append(
                    AppMessageReceived(
                        sender=envelope.sender_id,
                        address=address,
                        topic=message.topic,
                        payload=message.payload,
                        channel=channel,
                    )
                )
            case Nodes() | Value() | Stored():
                request = self._complete(envelope, _RESPONSE_TO[message.TYPE])
                self.counters[f"response.{message.TYPE.name.lower()}"] += 1
                self.dht.on_response(request, envelope.sender_id, message, now=now)
            case Pong():
                request = self._complete(envelope, MessageType.PING)
                if self.dht.owns(request.request_id):
                    self.dht.on_response(request, envelope.sender_id, message, now=now)
                self.counters["pong.received"] += 1
                self._events.append(
                    PongReceived(
                        peer_id=envelope.sender_id,
                        address=address,
                        request_id=request.request_id,
                        channel=channel,
                        rtt=now - request.sent_at,
                        observed=message.observed,
                        payload_size=len(message.payload),
                    )
                )
            case ErrorReply():
                request = self._complete(envelope, None)
                if self.dht.owns(request.request_id):
                    self.dht.on_error(request, message.code, now=now)
                self.counters["error.received"] += 1
                self._events.append(
                    ErrorReceived(
                        peer_id=envelope.sender_id,
                        address=address,
                        request_id=envelope.request_id,
                        code=message.code,
                        reason=message.reason,
                    )
                )
            case _:
                assert_never(message)

    def _complete(self, envelope: Envelope, kind: MessageType | None) -> PendingRequest:
        # RPC-1.4: the type is checked before the request is removed, so a response
        # of the wrong type leaves it in flight instead of ending it without an event.
        return self._pending.complete(envelope.request_id, envelope.sender_id, kind=kind)


def _is_request(msg_type: int) -> bool:
    return msg_type in (
        MessageType.PING,
        MessageType.FIND_NODE,
        MessageType.FIND_VALUE,
        MessageType.STORE,
    )
