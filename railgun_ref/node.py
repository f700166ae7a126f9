"""A Rail Gun node: the sans-IO composition of the protocol cores.

Shape (the core contract, CORE-1; aioquic's `QuicConnection`, h11's
`Connection`): the driver feeds inputs — `receive_datagram`,
`receive_stream_message`, `on_timer` and API calls such as `ping` — each with
the current time `now` (seconds since the Unix epoch, the same clock that
stamps envelopes), then drains `next_action()` until it returns None: a
`NodeAction` is `SendDatagram`, `SendStreamMessage` or `EmitEvent`, in the
order the node produced them. It asks `next_deadline()` when to call
`on_timer` next. The node owns the `Dht` core and pulls the DHT's actions
itself (requests to encode and track, events to pass on), so a driver sees
one core with one action union. The node never reads a clock,
never sleeps, never touches a socket, and draws randomness only from the
`random.Random` it was given, so the same inputs give the same outputs in the
UDP driver and in the simulator.

Invariants:
* every input is authenticated (ENV-2.1), fresh and not a replay (ENV-2.3/2.4)
  before any state changes; anything refused is counted under
  ``rejected.<CODE>`` (`NodeCounter.REJECTED`) and reported as
  `MessageRejected`, and the node goes on;
* a node never answers bytes it could not authenticate (NODE-1.2), so it can't
  be used to reflect traffic at a spoofed address;
* every request ends in exactly one `PongReceived`/`ErrorReceived` or
  `RequestTimedOut` event;
* actions leave in the order they were produced, the DHT's included: a
  `RecordStored` event is drained before the STORED reply it acknowledges;
* with `NodeConfig.limits` (ABUSE, on in a deployed host): an input first
  passes its source group's token bucket and, from a source that is not a
  known contact, the shared bucket of unknown sources — before it is decoded,
  so a flood costs a dict lookup — then, once authenticated, its sender's
  bucket; what a limit drops is counted under ``limits.dropped.<reason>`` and
  gets no reply. A datagram reply to an address not yet validated is at most
  the request's size plus `AMPLIFICATION_SLACK`; a FIND_NODE or FIND_VALUE
  whose answer is larger gets a COOKIE, and this node echoes a COOKIE it
  receives by sending its FIND_* again under a new request id, invisibly to
  the DHT (ABUSE-2).
"""

import dataclasses
import hashlib
import random
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NewType, assert_never

from railgun_ref.abuse.reputation import (
    Behaviour,
    ReputationConfig,
    ReputationTable,
    Standing,
    StandingChanged,
)
from railgun_ref.core.constants import (
    APP_TOPIC_TRAVERSAL,
    MAX_CLOCK_SKEW,
    MAX_DATAGRAM_SIZE,
    MAX_STREAM_MESSAGE_SIZE,
    REQUEST_TIMEOUT,
)
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.service import Dht, DhtConfig, EmitDhtEvent, SendDhtRequest
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
from railgun_ref.limits.buckets import KeyedBuckets, LimitReason, LimitsConfig
from railgun_ref.limits.cookies import AddressValidator
from railgun_ref.limits.groups import Group, is_public, source_group
from railgun_ref.rpc.labels import MessageName, error_label
from railgun_ref.rpc.replay import ReplayGuard
from railgun_ref.rpc.requests import Channel, PendingRequest, PendingRequests
from railgun_ref.wire.envelope import Envelope, decode_envelope, encode_envelope
from railgun_ref.wire.messages import (
    AppMessage,
    Cookie,
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

#: ABUSE-2.1: bytes a reply to an address not yet validated may exceed its request by
#: (a PONG's observed address, a COOKIE's cookie).
AMPLIFICATION_SLACK: Final = 64
#: ABUSE-2.2: the domain of the signature the cookie secret is derived from.
_COOKIE_SECRET_DOMAIN: Final = b"railgun/v1/cookie-secret\x00"

#: A stream connection, numbered by the driver that owns it.
ConnectionId = NewType("ConnectionId", int)
#: Where a stream message goes: a listening address (the driver opens or reuses
#: a connection to it) or an existing connection (replies go back on the
#: connection the request came in on).
StreamTarget = Address | ConnectionId


@dataclass(frozen=True, slots=True, kw_only=True)
class SendDatagram:
    """Send `data` (one envelope, at most 1200 bytes) as one UDP datagram to `address`."""

    data: bytes
    address: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class SendStreamMessage:
    """Send `data` (one envelope) as one stream frame to `target` (STR-1.x)."""

    data: bytes
    target: StreamTarget


@dataclass(frozen=True, slots=True, kw_only=True)
class EmitEvent:
    """Report `event` to the driver and the application."""

    event: NodeEvent


#: CORE-1.2: the node's closed action union.
NodeAction = SendDatagram | SendStreamMessage | EmitEvent


class NodeCounter(StrEnum):
    """The node's counters (flat names as `Counters.snapshot()` and node vectors show them)."""

    RX = "rx"  #: messages received, by `Channel`
    TX = "tx"  #: messages sent, by `Channel`
    REQUEST = "request"  #: requests sent, by `MessageName`
    REQUEST_TIMEOUT = "request.timeout"
    RESPONSE = "response"  #: DHT responses matched, by `MessageName`
    REJECTED = "rejected"  #: inputs refused, by `ErrorCode` (see `error_label`)
    REPLY_TOO_LARGE = "reply.too_large"
    REPLAY_EVICTED = "replay.evicted"  #: replay-cache entries evicted before their window
    PING_ANSWERED = "ping.answered"
    PONG_RECEIVED = "pong.received"
    ERROR_RECEIVED = "error.received"
    APP_SENT = "app.sent"
    APP_RECEIVED = "app.received"
    LIMITED = "limits.dropped"  #: ABUSE-1 inputs dropped unanswered, by `LimitReason`
    REPLY_LIMITED = "limits.reply_too_large"  #: ABUSE-2.1 replies cut to an ERROR
    COOKIE_SENT = "cookie.sent"  #: ABUSE-2.2 COOKIEs sent instead of a larger answer
    COOKIE_ACCEPTED = "cookie.accepted"  #: ABUSE-2.3 echoes that validated an address
    COOKIE_INVALID = "cookie.invalid"  #: ABUSE-2.3 echoes that did not check out
    COOKIE_ECHOED = "cookie.echoed"  #: ABUSE-2.4 our requests sent again with a cookie
    GRAYLISTED = "reputation.graylisted"  #: REP-4.1 authenticated inputs dropped unread
    STANDING = "reputation.standing"  #: REP-4.2 standings changed, by the new `Standing`
    CONTACTS_WITHHELD = "reputation.contacts_withheld"  #: REP-4.1 no-publish peers not handed out


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """Node parameters; each names the spec clause that sets its default."""

    #: RPC-1.2: seconds a request waits for its response.
    request_timeout: float = REQUEST_TIMEOUT
    #: ENV-2.3: accepted clock skew of envelope timestamps, seconds.
    max_clock_skew: float = MAX_CLOCK_SKEW
    #: ENV-2.4: how many recent (sender, type, request id) triples are remembered.
    replay_capacity: int = 65536
    #: DHT-9.1: the DHT's parameters.
    dht: DhtConfig = field(default_factory=DhtConfig)
    #: ABUSE-1/2: per-peer limits and address validation; None (the core's default, so
    #: vectors and simulations see the bare protocol) leaves them off. A deployed
    #: `NodeHost` turns them on.
    limits: LimitsConfig | None = None
    #: REP-1..4: peer reputation from what this node sees peers do; None leaves it off
    #: (as `limits`, for the bare protocol of vectors and simulations).
    reputation: ReputationConfig | None = None

    def __post_init__(self) -> None:
        if not self.request_timeout > 0:
            raise LocalProtocolError("request_timeout must be positive")
        if not self.max_clock_skew > 0:
            raise LocalProtocolError("max_clock_skew must be positive")
        if self.replay_capacity < 1:
            raise LocalProtocolError("replay_capacity must be at least 1")


def _limit(channel: Channel) -> int:
    return MAX_DATAGRAM_SIZE if channel is Channel.DATAGRAM else MAX_STREAM_MESSAGE_SIZE


@dataclass(frozen=True, slots=True, kw_only=True)
class _Inbound:
    """One authenticated message being handled: where it came from and how to answer."""

    envelope: Envelope
    address: Address
    channel: Channel
    reply_to: StreamTarget
    now: float
    size: int  #: bytes of the request as received (ABUSE-2.1)


class Node:
    """A Rail Gun node; satisfies `ProtocolCore[NodeAction]`."""

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
        self.counters: Counters[NodeCounter] = Counters()
        self._rng = rng
        self._pending = PendingRequests()
        self._replay = ReplayGuard(
            max_skew=self.config.max_clock_skew, capacity=self.config.replay_capacity
        )
        self._actions: deque[NodeAction] = deque()
        self.dht = Dht(identity, rng=rng, in_flight=self._pending, config=self.config.dht, now=now)
        #: ABUSE-2.4: datagram FIND_* requests in flight that may echo a COOKIE, and the
        #: ids of echoes -> the id the DHT knows them by.
        self._echoable: dict[int, FindNode | FindValue] = {}
        self._aliases: dict[int, int] = {}
        self._init_limits(self.config.limits)
        #: REP: None unless `config.reputation` is set.
        self.reputation = (
            ReputationTable(self.config.reputation, now=now) if self.config.reputation else None
        )
        self._hosts: dict[NodeId, str | None] = {}  # REP-2.3: the host last told the table

    def _init_limits(self, limits: LimitsConfig | None) -> None:
        if limits is None:
            return
        self._source_buckets = {
            Channel.DATAGRAM: KeyedBuckets[Group](limits.datagram_source, capacity=limits.capacity),
            Channel.STREAM: KeyedBuckets[Group](limits.stream_source, capacity=limits.capacity),
        }
        self._identity_buckets = KeyedBuckets[NodeId](limits.identity, capacity=limits.capacity)
        self._unknown_bucket = KeyedBuckets[int](limits.unknown_sources, capacity=1)
        # ABUSE-2.2: a secret only this key can make, and the same after a restart.
        secret = hashlib.sha256(self.identity.sign(_COOKIE_SECRET_DOMAIN)).digest()
        self._validator = AddressValidator(
            secret,
            epoch=limits.cookie_epoch,
            validated_for=limits.validated_for,
            capacity=limits.validated_capacity,
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
        for expired in self._pending.expire(now):
            request = self._as_known(expired)
            self.counters.inc(NodeCounter.REQUEST_TIMEOUT)
            self._event(
                RequestTimedOut(
                    request_id=request.request_id,
                    address=request.address,
                    kind=request.kind,
                    channel=request.channel,
                )
            )
            self.dht.on_timeout(request, now=now)
            if request.expected_sender is not None:
                self._observe(request.expected_sender, Behaviour.TIMED_OUT, now)
        self.dht.on_timer(now=now)
        if self.reputation is not None:
            self.reputation.on_timer(now=now)
            self._pull_reputation()
        self._pull_dht()

    # ------------------------------------------------------------------- API

    def send_app(
        self,
        address: Address,
        topic: int,
        payload: bytes,
        *,
        now: float,
        channel: Channel | None = Channel.STREAM,
    ) -> None:
        """Send an application message (APP-1.1) to the node at `address`.

        One-way: nothing answers it, so delivery is the caller's concern (the
        room path acknowledges at its own layer). `channel` None: the datagram
        channel when the envelope fits it, the stream channel otherwise (APP-1.5).
        Raises `LocalProtocolError` for a bad topic or a payload that does not
        fit `channel`.
        """
        message = AppMessage(topic=topic, payload=payload)
        request_id = self._new_request_id()
        if channel is None:
            try:
                data = self._encode(message, request_id, now, Channel.DATAGRAM)
                channel = Channel.DATAGRAM
            except LocalProtocolError:
                channel = Channel.STREAM
                data = self._encode(message, request_id, now, channel)
        else:
            data = self._encode(message, request_id, now, channel)
        self.counters.inc(NodeCounter.APP_SENT)
        self._send(data, channel, address)

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
        request_id = self._new_request_id()
        self._request(
            Ping(payload=payload),
            request_id,
            address,
            now=now,
            channel=channel,
            expected_peer=expected_peer,
        )
        return request_id

    # --------------------------------------------------------------- outputs

    def next_action(self) -> NodeAction | None:
        """CORE-1.2: the next datagram, stream message or event, oldest first."""
        self._pull_dht()  # API calls on `node.dht` queue there
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        self._pull_dht()
        pending, dht = self._pending.next_deadline(), self.dht.next_deadline()
        decay = self.reputation.next_deadline() if self.reputation is not None else None
        deadlines = [d for d in (pending, dht, decay) if d is not None]
        return min(deadlines) if deadlines else None

    @property
    def requests_in_flight(self) -> int:
        self._pull_dht()
        return len(self._pending)

    def _pull_dht(self) -> None:
        """Move the DHT's actions into the node's queue, ahead of anything queued after."""
        while (action := self.dht.next_action()) is not None:
            match action:
                case SendDhtRequest():
                    self._request(
                        action.message,
                        action.request_id,
                        action.address,
                        now=action.sent_at,
                        channel=action.channel,
                        expected_peer=action.expected_peer,
                        pull=False,
                    )
                case EmitDhtEvent(event=event):
                    self._actions.append(EmitEvent(event=event))
                case _:
                    assert_never(action)

    # ------------------------------------------------------------- internals

    def _new_request_id(self) -> int:
        while True:
            request_id = self._rng.getrandbits(64)
            if request_id not in self._pending and not self.dht.owns(request_id):
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

    def _event(self, event: NodeEvent) -> None:
        self._pull_dht()
        self._actions.append(EmitEvent(event=event))

    def _send(
        self, data: bytes, channel: Channel, target: StreamTarget, *, pull: bool = True
    ) -> None:
        if pull:
            self._pull_dht()
        if channel is Channel.DATAGRAM:
            assert isinstance(target, tuple)
            self._actions.append(SendDatagram(data=data, address=target))
        else:
            self._actions.append(SendStreamMessage(data=data, target=target))
        self.counters.inc(NodeCounter.TX, label=channel)

    def _request(
        self,
        message: Message,
        request_id: int,
        address: Address,
        *,
        now: float,
        channel: Channel,
        expected_peer: NodeId | None,
        pull: bool = True,
    ) -> None:
        data = self._encode(message, request_id, now, channel)
        if isinstance(message, FindNode | FindValue) and channel is Channel.DATAGRAM:
            self._echoable[request_id] = message
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
        self.counters.inc(NodeCounter.REQUEST, label=MessageName.of(message.TYPE))
        self._send(data, channel, address, pull=pull)

    def _reply(self, message: Message, inbound: _Inbound) -> None:
        """Answer `inbound` on the channel (or connection) it came in on, same request id."""
        request_id, channel = inbound.envelope.request_id, inbound.channel
        try:
            data = self._encode(message, request_id, inbound.now, channel)
        except LocalProtocolError:
            # The answer would not fit the channel (e.g. an echo of a PING at the limit).
            self.counters.inc(NodeCounter.REPLY_TOO_LARGE)
            refusal = ErrorReply(code=ErrorCode.TOO_LARGE, reason="reply would exceed the limit")
            data = self._encode(refusal, request_id, inbound.now, channel)
        if self._amplifies(len(data), inbound):
            data = self._small_reply(message, inbound)
        self._send(data, channel, inbound.reply_to)

    def _amplifies(self, size: int, inbound: _Inbound) -> bool:
        """ABUSE-2.1: would `size` bytes to this datagram's source make the node an amplifier?"""
        return (
            self.config.limits is not None
            and self.config.limits.address_validation
            and inbound.channel is Channel.DATAGRAM
            and size > inbound.size + AMPLIFICATION_SLACK
            and not self._validator.is_validated(inbound.address, now=inbound.now)
        )

    def _small_reply(self, message: Message, inbound: _Inbound) -> bytes:
        """ABUSE-2.1/2.2: a COOKIE for an answer to FIND_*, else an ERROR without a reason."""
        request_id, now = inbound.envelope.request_id, inbound.now
        if isinstance(message, Nodes | Value):
            self.counters.inc(NodeCounter.COOKIE_SENT)
            cookie = Cookie(cookie=self._validator.issue(inbound.address, now=now))
            return self._encode(cookie, request_id, now, inbound.channel)
        self.counters.inc(NodeCounter.REPLY_LIMITED)
        refusal = ErrorReply(code=ErrorCode.TOO_LARGE, reason="")
        return self._encode(refusal, request_id, now, inbound.channel)

    def _admit_source(self, address: Address, channel: Channel, now: float) -> bool:
        """ABUSE-1.1/1.3: the source's bucket, then (unknown sources) the shared one."""
        limits = self.config.limits
        if limits is None:
            return True
        group = source_group(address, loopback_hosts=limits.loopback_hosts)
        if not self._source_buckets[channel].take(group, now=now):
            self.counters.inc(NodeCounter.LIMITED, label=LimitReason.SOURCE)
            return False
        known = channel is Channel.DATAGRAM and self.dht.routing.knows_address(address)
        if not known and not self._unknown_bucket.take(0, now=now):
            self.counters.inc(NodeCounter.LIMITED, label=LimitReason.UNKNOWN_SOURCES)
            return False
        return True

    def _admit_sender(self, envelope: Envelope, now: float) -> bool:
        """ABUSE-1.1: the authenticated sender's own bucket."""
        if self.config.limits is None or self._identity_buckets.take(envelope.sender_id, now=now):
            return True
        self.counters.inc(NodeCounter.LIMITED, label=LimitReason.IDENTITY)
        return False

    def _reject(self, address: Address, channel: Channel, exc: RemoteProtocolError) -> None:
        self.counters.inc(NodeCounter.REJECTED, label=error_label(exc.code))
        self._event(
            MessageRejected(address=address, channel=channel, code=exc.code, reason=exc.message)
        )

    def _receive(
        self, data: bytes, address: Address, channel: Channel, reply_to: StreamTarget, now: float
    ) -> None:
        self.counters.inc(NodeCounter.RX, label=channel)
        if not self._admit_source(address, channel, now):
            return  # ABUSE-1.1: dropped before decoding, unanswered
        envelope = self._authenticate(data, address, channel, now)
        if envelope is None:
            return
        evicted = self._replay.evicted - self.counters.get_count(NodeCounter.REPLAY_EVICTED)
        if evicted:
            self.counters.inc(NodeCounter.REPLAY_EVICTED, evicted)
        if channel is Channel.DATAGRAM and not _maybe_relayed(envelope):
            # DHT-5.1: the signature binds the sender's id to the address it sent from.
            self.dht.observe(envelope.sender_id, address, now=now)
        inbound = _Inbound(
            envelope=envelope,
            address=address,
            channel=channel,
            reply_to=reply_to,
            now=now,
            size=len(data),
        )
        try:
            self._dispatch(parse_message(envelope), inbound)
        except RemoteProtocolError as exc:
            self._reject(address, channel, exc)
            self._misbehaved(envelope.sender_id, exc.code, now)
            if exc.code is ErrorCode.UNKNOWN_TYPE or _is_request(envelope.type):
                # MSG-1.3 / NODE-1.4: an authenticated request that cannot be
                # served gets an ERROR naming why; a bad response gets nothing.
                self._reply(ErrorReply(code=exc.code, reason=exc.message), inbound)
        self._pull_dht()

    def _authenticate(
        self, data: bytes, address: Address, channel: Channel, now: float
    ) -> Envelope | None:
        """ENV-2, ABUSE-1.1, REP-4.1: the envelope, if it is to be handled at all."""
        try:
            envelope = decode_envelope(data, max_size=_limit(channel))
        except RemoteProtocolError as exc:
            self._reject(address, channel, exc)  # NODE-1.2: no reply to what we can't trust
            return None
        if not self._admit_sender(envelope, now) or self._graylisted(envelope.sender_id):
            return None
        try:
            self._replay.check(
                envelope.sender_key,
                envelope.type,
                envelope.request_id,
                envelope.timestamp_ms,
                now=now,
            )
        except RemoteProtocolError as exc:
            self._reject(address, channel, exc)
            self._misbehaved(envelope.sender_id, exc.code, now)
            return None
        self._note_host(envelope.sender_id, address, now)
        return envelope

    # ------------------------------------------------------------- reputation (REP)

    def _observe(self, peer: NodeId, behaviour: Behaviour, now: float) -> None:
        if self.reputation is not None:
            self.reputation.observe(peer, behaviour, now=now)
            self._pull_reputation()

    def _misbehaved(self, peer: NodeId, code: ErrorCode, now: float) -> None:
        """REP-1.1: malformed or replayed input from an authenticated sender. Other
        refusals (a late answer, an unknown type, a skewed clock) can be honest."""
        if code in (ErrorCode.MALFORMED, ErrorCode.REPLAY):
            self._observe(peer, Behaviour.MISBEHAVED, now)

    def _graylisted(self, peer: NodeId) -> bool:
        """REP-4.1: a graylisted sender's input is dropped unread."""
        if self.reputation is None or self.reputation.standing(peer) is not Standing.GRAYLISTED:
            return False
        self.counters.inc(NodeCounter.GRAYLISTED)
        return True

    def _note_host(self, peer: NodeId, address: Address, now: float) -> None:
        """REP-2.3: tell the table the IP `peer` is at (global ones, or any loopback IP
        when limits group loopback by IP, as the simulator's hosts are)."""
        if self.reputation is None:
            return
        limits = self.config.limits
        grouped = is_public(address) or (limits is not None and limits.loopback_hosts)
        host = address[0] if grouped else None
        if self._hosts.get(peer) != host:
            self._hosts[peer] = host
            self.reputation.set_address(peer, host, now=now)
            self._pull_reputation()

    def _pull_reputation(self) -> None:
        """REP-4.2: apply each change of standing at once."""
        assert self.reputation is not None
        while (action := self.reputation.next_action()) is not None:
            match action:
                case StandingChanged(peer=peer, standing=standing):
                    self.counters.inc(NodeCounter.STANDING, label=standing)
                    if standing is Standing.GRAYLISTED:
                        self.dht.routing.remove(peer)
                case _:
                    assert_never(action)

    def _publishable(self, message: Message) -> Message:
        """REP-4.1: NODES and VALUE answers leave out peers below the publish threshold."""
        if self.reputation is None or not isinstance(message, Nodes | Value):
            return message
        rep = self.reputation
        shown = tuple(
            c
            for c in message.contacts
            if rep.standing(c[0]) in (Standing.GOOD, Standing.NO_HOSTING)
        )
        if len(shown) == len(message.contacts):
            return message
        self.counters.inc(NodeCounter.CONTACTS_WITHHELD, len(message.contacts) - len(shown))
        return dataclasses.replace(message, contacts=shown)

    def _dispatch(self, message: Message, inbound: _Inbound) -> None:
        match message:
            case Ping() | FindNode() | FindValue() | Store():
                if isinstance(message, FindNode | FindValue) and message.cookie:
                    self._check_cookie(message.cookie, inbound)
                self._reply(self._publishable(self._serve(message, inbound)), inbound)
                if isinstance(message, Ping):
                    self._event(
                        PingReceived(
                            peer_id=inbound.envelope.sender_id,
                            address=inbound.address,
                            request_id=inbound.envelope.request_id,
                            channel=inbound.channel,
                        )
                    )
            case AppMessage():
                self.counters.inc(NodeCounter.APP_RECEIVED)
                self._event(
                    AppMessageReceived(
                        sender=inbound.envelope.sender_id,
                        address=inbound.address,
                        topic=message.topic,
                        payload=message.payload,
                        channel=inbound.channel,
                    )
                )
            case Nodes() | Value() | Stored():
                request = self._complete(inbound, _RESPONSE_TO[message.TYPE])
                self.counters.inc(NodeCounter.RESPONSE, label=MessageName.of(message.TYPE))
                self.dht.on_response(request, inbound.envelope.sender_id, message, now=inbound.now)
            case Pong():
                self._on_pong(message, inbound)
            case ErrorReply():
                self._on_error_reply(message, inbound)
            case Cookie():
                self._on_cookie(message, inbound)
            case _:
                assert_never(message)

    def _serve(self, message: Ping | FindNode | FindValue | Store, inbound: _Inbound) -> Message:
        """The answer to a request (MSG-2.1, DHT-7.x); refusals raise RemoteProtocolError."""
        sender, channel, now = inbound.envelope.sender_id, inbound.channel, inbound.now
        match message:
            case Ping():
                self.counters.inc(NodeCounter.PING_ANSWERED)
                return Pong(observed=inbound.address, payload=message.payload)
            case FindNode():
                return self.dht.handle_find_node(message, sender, channel)
            case FindValue():
                return self.dht.handle_find_value(message, sender, channel, now=now)
            case Store():
                # The DHT's RecordStored event is queued ahead of this STORED reply.
                return self.dht.handle_store(message, sender, now=now)
            case _:
                assert_never(message)

    def _on_pong(self, message: Pong, inbound: _Inbound) -> None:
        request = self._complete(inbound, MessageType.PING)
        if self.dht.owns(request.request_id):
            self.dht.on_response(request, inbound.envelope.sender_id, message, now=inbound.now)
        self.counters.inc(NodeCounter.PONG_RECEIVED)
        self._event(
            PongReceived(
                peer_id=inbound.envelope.sender_id,
                address=inbound.address,
                request_id=request.request_id,
                channel=inbound.channel,
                rtt=inbound.now - request.sent_at,
                observed=message.observed,
                payload_size=len(message.payload),
            )
        )

    def _on_error_reply(self, message: ErrorReply, inbound: _Inbound) -> None:
        request = self._complete(inbound, None)
        if self.dht.owns(request.request_id):
            self.dht.on_error(request, message.code, now=inbound.now)
        self.counters.inc(NodeCounter.ERROR_RECEIVED)
        self._event(
            ErrorReceived(
                peer_id=inbound.envelope.sender_id,
                address=inbound.address,
                request_id=request.request_id,
                code=message.code,
                reason=message.reason,
            )
        )

    def _complete(self, inbound: _Inbound, kind: MessageType | None) -> PendingRequest:
        # RPC-1.4: the type is checked before the request is removed, so a response
        # of the wrong type leaves it in flight instead of ending it without an event.
        envelope = inbound.envelope
        request = self._pending.complete(envelope.request_id, envelope.sender_id, kind=kind)
        self._observe(envelope.sender_id, Behaviour.ANSWERED, inbound.now)
        if (
            self.config.limits is not None
            and request.channel is Channel.DATAGRAM
            and request.address == inbound.address
        ):
            # ABUSE-2.3: an answer to our random request id proves the address.
            self._validator.validate(inbound.address, now=inbound.now)
        return self._as_known(request)

    def _as_known(self, request: PendingRequest) -> PendingRequest:
        """ABUSE-2.4: an echo ends under the id the DHT and the caller know."""
        self._echoable.pop(request.request_id, None)
        original = self._aliases.pop(request.request_id, None)
        if original is None:
            return request
        return dataclasses.replace(request, request_id=original)

    def _check_cookie(self, cookie: bytes, inbound: _Inbound) -> None:
        """ABUSE-2.3: a valid echo validates the address; an invalid one is only counted."""
        if self.config.limits is None or inbound.channel is not Channel.DATAGRAM:
            return
        if self._validator.check(cookie, inbound.address, now=inbound.now):
            self.counters.inc(NodeCounter.COOKIE_ACCEPTED)
            self._validator.validate(inbound.address, now=inbound.now)
        else:
            self.counters.inc(NodeCounter.COOKIE_INVALID)

    def _on_cookie(self, message: Cookie, inbound: _Inbound) -> None:
        """ABUSE-2.4: send the FIND_* again, once, with the cookie, under a new request id."""
        envelope = inbound.envelope
        original = self._echoable.get(envelope.request_id)
        if original is None or envelope.request_id in self._aliases:
            # Not a FIND_* of ours, or its echo drew a second COOKIE: it stays in
            # flight and ends by its timeout (RPC-1.2).
            raise RemoteProtocolError(ErrorCode.UNEXPECTED_RESPONSE, "COOKIE not expected")
        request = self._pending.complete(envelope.request_id, envelope.sender_id)
        del self._echoable[request.request_id]
        request_id = self._new_request_id()
        echo = dataclasses.replace(original, cookie=message.cookie)
        data = self._encode(echo, request_id, inbound.now, Channel.DATAGRAM)
        self._pending.add(dataclasses.replace(request, request_id=request_id))
        self._echoable[request_id] = echo
        self._aliases[request_id] = request.request_id
        self.counters.inc(NodeCounter.COOKIE_ECHOED)
        self._send(data, Channel.DATAGRAM, request.address)


def _maybe_relayed(envelope: Envelope) -> bool:
    """NAT-6.3: a traversal message may come from a relay that forwards its signed envelope
    unchanged (NAT-4.2), so its source is not the signer's address (no DHT-5.1 contact)."""
    if envelope.type != MessageType.APP:
        return False
    try:
        return AppMessage.from_body(envelope.body).topic == APP_TOPIC_TRAVERSAL
    except RemoteProtocolError:
        return False


def _is_request(msg_type: int) -> bool:
    return msg_type in (
        MessageType.PING,
        MessageType.FIND_NODE,
        MessageType.FIND_VALUE,
        MessageType.STORE,
    )
