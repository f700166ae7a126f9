"""The anyio driver: one sans-IO `Node` behind one real UDP socket and one TCP listener.

A `NodeHost` binds a UDP socket and a TCP listener on the *same* host:port
(IPv4 or IPv6; loopback unless `allow_public`). Datagrams (DHT RPCs, at most
1200 bytes) go over UDP; stream
messages (up to the 64 KiB bucket) go over TCP as length-prefixed frames
(STR-1.x, `wire.framing`). All protocol logic is in the node; this module
only moves bytes and time:

* every input — a datagram, a stream frame, a timer firing, an API call — is
  fed to the node with ``now = clock()``, wall-clock seconds by default since
  envelopes carry wall-clock timestamps; then the shared `CoreLoop` is poked:
  it drains the node's `NodeAction`s synchronously through `_dispatch` —
  datagrams and stream messages into queues, events into API waiters, trace
  subscribers and a bounded trace list — and runs `on_timer` at the node's
  deadline (the loop's `run` is the host's only timer task);
* a host runs no task of its own while idle: its sockets are watched by the
  watch loop of a `HostGroup` and its `CoreLoop` is fired by the group's
  timer heap (`drivers.host_group`), so one process serves hundreds of hosts
  from two tasks; `run` serves one host in a group of its own;
* the UDP socket is a plain non-blocking socket with a receive buffer sized
  for bursts (`udp_buffer`, SO_RCVBUF/SO_SNDBUF): each time it is readable the
  host drains it — up to `_DRAIN_BATCH` datagrams, fed to the node one
  by one, then one pump — so a flood is read as fast as the node can check it,
  and the node's limits (ABUSE-1) drop the excess before any signature check.
  Datagrams the kernel dropped for a full buffer are read from
  /proc/net/udp's drops column where Linux has it (`kernel_drops`);
* a datagram is sent at once with a non-blocking ``sendto``; only when the
  socket would block, or when `send_delay` holds it (link-delay emulation for
  benchmarks: the same delay for every datagram, so the backlog stays in due
  order), does it wait in a backlog of at most `queue_size` datagrams, which
  one task writes out while there is one; a full backlog drops and counts
  (``driver.udp_queue_full``); each stream connection has one writer and one
  reader task, so a slow peer only ever delays its own connection;
* stream connections take slots from `ConnectionSlots` (ABUSE-3): inbound
  and outbound have their own pools, one source group holds at most a fair
  share of the inbound pool, a full pool makes room by closing its idlest
  connection, and a connection idle for `idle_timeout` seconds is closed;
* stream messages addressed to an `Address` open (or reuse) one outbound
  connection per address, which gets a reader too, since replies come back on
  it; messages addressed to a `ConnectionId` go back on that connection;
* whatever a peer does — garbage datagrams, a bad frame length, a reset, a
  refused connect — is counted under ``driver.*`` (`DriverCounter`; or by the
  node under ``rejected.*``) and the host goes on serving; the node's own request timeout
  ends every request whose bytes were dropped;
* the host binds and sends only what `drivers.addresses` allows and refuses
  anything else with `ValueError`; a test harness narrows that to loopback (or
  its own namespaces) so a test can never send traffic off the machine. What
  the node advertises of itself is what peers observe (PONG, MSG-2.3), never
  the bound address.

The clock is injectable so the same driver runs in virtual time under trio's
`MockClock` (see tests/integration/test_udp_virtual_time.py).
"""

import itertools
import random
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Final, assert_never

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from railgun_ref.capacity.advert import (
    DEFAULT_ADVERT_TTL,
    MAX_ADVERT_TTL,
    Advertisement,
    capability_key,
    encode_capabilities,
    pick_advertisement,
)
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.records import Record
from railgun_ref.dht.service import DhtConfig
from railgun_ref.drivers.addresses import (
    check_bind_host,
    check_destination,
    family_of,
    is_sendable,
)
from railgun_ref.drivers.host_group import HostGroup
from railgun_ref.drivers.loop import CoreLoop
from railgun_ref.drivers.sqlite_store import SqliteNodeStore
from railgun_ref.events import (
    AppMessageReceived,
    ErrorReceived,
    GetFinished,
    LookupFinished,
    NodeEvent,
    PongReceived,
    RecordDropped,
    RecordStored,
    RequestTimedOut,
    StoreFinished,
)
from railgun_ref.identity.keys import Identity
from railgun_ref.limits.buckets import LimitsConfig
from railgun_ref.limits.groups import source_group
from railgun_ref.limits.slots import CloseConnection, ConnectionSlots, SlotsConfig
from railgun_ref.node import (
    ConnectionId,
    EmitEvent,
    Node,
    NodeAction,
    NodeConfig,
    SendDatagram,
    SendStreamMessage,
    StreamTarget,
)
from railgun_ref.rpc.requests import Channel
from railgun_ref.trace import TraceRecord, record_event
from railgun_ref.wire import cbor
from railgun_ref.wire.framing import FrameDecoder, encode_frame
from railgun_ref.wire.messages import MAX_APP_TOPIC

#: A deployed node's configuration: holders refuse room records without a proof (ROOM-6.2),
#: per-peer limits and address validation are on (ABUSE-1, ABUSE-2).
DEPLOYED_CONFIG: Final = NodeConfig(dht=DhtConfig(room_proofs=True), limits=LimitsConfig())
#: Datagrams read per wake-up of the receive task before it lets other tasks run.
_DRAIN_BATCH: Final = 256
#: Bytes asked of a UDP socket per read (larger than any envelope, ENV-1.4).
_UDP_READ_SIZE: Final = 65535
#: Default SO_RCVBUF/SO_SNDBUF request, bytes (Linux caps it at net.core.rmem_max).
UDP_BUFFER: Final = 4 * 1024 * 1024
#: Bytes asked of a stream socket per read.
_READ_SIZE: Final = 65536
#: Connections accepted per wake-up of the listener before other sockets get their turn.
_ACCEPT_BATCH: Final = 64
#: Pending connections the kernel may queue on a listener (it caps this at somaxconn).
_LISTEN_BACKLOG: Final = 65535
#: Seconds a listener rests after an accept error (e.g. out of file descriptors).
_ACCEPT_PAUSE: Final = 0.01
#: How many times to pick a new port when the TCP half of an OS-chosen port is taken.
_BIND_ATTEMPTS: Final = 8
#: Consecutive UDP receive errors after which the socket is considered dead.
_MAX_UDP_ERRORS: Final = 100
#: Distinct source addresses `_interned` keeps before it starts afresh.
_INTERNED_MAX: Final = 65536
#: One shared (host, port) tuple per source address, for every host in the process:
#: routing tables and lookups keep the address of each contact, and recvfrom makes a new
#: host string and tuple for every datagram.
_INTERNED: dict[tuple[str, int], Address] = {}


def _interned(host: str, port: int) -> Address:
    """The process's one tuple for (host, port)."""
    key = (host, port)
    address = _INTERNED.get(key)
    if address is None:
        if len(_INTERNED) >= _INTERNED_MAX:
            _INTERNED.clear()
        address = _INTERNED[key] = key
    return address


#: What `NodeHost.ping` returns: the node's outcome event for the request.
PingOutcome = PongReceived | ErrorReceived | RequestTimedOut
#: What the DHT API calls return: the event that ends the query.
QueryOutcome = LookupFinished | GetFinished | StoreFinished
#: A trace subscriber: called synchronously with each record, must not block.
TraceSubscriber = Callable[[TraceRecord], None]


class Direction(Enum):
    IN = "in"
    OUT = "out"


@dataclass(frozen=True, slots=True, kw_only=True)
class Traffic:
    """One datagram or stream message crossing this host's sockets (what a tap sees).

    Inbound: as received, before the node checks it. Outbound: a datagram once
    sent, a stream message once queued on its connection (without the frame's
    length prefix)."""

    direction: Direction
    channel: Channel
    peer: Address
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOpened:
    peer: Address
    outbound: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamClosed:
    peer: Address
    outbound: bool


#: What a tap (`NodeHost.tap`) is called with.
TapEvent = Traffic | StreamOpened | StreamClosed
#: A tap: called synchronously for every `TapEvent`, must not block.
TrafficTap = Callable[[TapEvent], None]


class DriverCounter(StrEnum):
    """The UDP/TCP driver's own counters (``driver.*``)."""

    RECORDS_RESTORED = "driver.records_restored"
    RECORDS_UNUSABLE = "driver.records_unusable"
    TRACE_EVICTED = "driver.trace_evicted"
    APP_UNROUTED = "driver.app_unrouted"
    APP_INBOX_FULL = "driver.app_inbox_full"
    DROPPED_AFTER_STOP = "driver.dropped_after_stop"
    REFUSED_ADDRESS = "driver.refused_address"
    UDP_QUEUE_FULL = "driver.udp_queue_full"
    JOIN_RETRIED = "driver.join_retried"
    UDP_RECEIVE_ERROR = "driver.udp_receive_error"
    SENDTO_FAILED = "driver.sendto_failed"
    STREAM_TARGET_GONE = "driver.stream_target_gone"
    STREAM_QUEUE_FULL = "driver.stream_queue_full"
    STREAM_DROPPED = "driver.stream_dropped"
    CONNECTION_LIMIT = "driver.connection_limit"
    CONNECT_FAILED = "driver.connect_failed"
    CONNECTIONS_OPENED = "driver.connections_opened"
    CONNECTIONS_ACCEPTED = "driver.connections_accepted"
    ACCEPT_ERROR = "driver.accept_error"
    CONNECTION_ERROR = "driver.connection_error"
    FRAMING_ERROR = "driver.framing_error"
    FAULT_DROPPED = "driver.fault_dropped"  #: dropped by the `blocked` fault rule


class HostStoppedError(RuntimeError):
    """The host stopped (or never ran) while an API call needed it."""


def _check_options(
    host: str, port: int, send_delay: float, stream_rate: float | None, *, allow_public: bool
) -> None:
    """`NodeHost`'s argument checks: ValueError for anything it cannot serve with."""
    check_bind_host(host, allow_public=allow_public)
    if not send_delay >= 0:
        raise ValueError(f"send_delay must be >= 0 seconds, got {send_delay}")
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port must be 0..65535, got {port}")
    if stream_rate is not None and not stream_rate > 0:
        raise ValueError(f"stream_rate must be positive bytes/s, got {stream_rate}")


class HostState(Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


@dataclass(eq=False, slots=True)
class _Waiter:
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: PingOutcome | None = None


@dataclass(eq=False, slots=True)
class _QueryWaiter:
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: QueryOutcome | None = None


@dataclass(eq=False, slots=True)
class _Connection:
    id: ConnectionId
    peer: Address  #: remote address; for outbound connections the listening address dialled
    outbound: bool
    send: MemoryObjectSendStream[bytes]
    receive: MemoryObjectReceiveStream[bytes]
    scope: anyio.CancelScope | None = None  #: cancels the connection's tasks (ABUSE-3)
    closing: bool = False  #: closed by the slot policy before its tasks started


class NodeHost:
    """One `Node` served on a UDP socket and a TCP listener sharing host:port.

    Use it inside a task group: ``address = await tg.start(host.run)``; cancel
    the group to stop it. Or serve many from one task set: ``await
    tg.start(group.run)`` for a `HostGroup`, then ``address = group.add(host)``
    for each, ``host.stop()`` to stop one. `ping` and the other API calls must
    run on the same event loop while the host runs.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: NodeConfig | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        trace_limit: int = 10_000,
        connect_timeout: float = 5.0,
        max_connections: int = 512,
        idle_timeout: float = 60.0,
        queue_size: int = 256,
        send_delay: float = 0.0,
        stream_rate: float | None = None,
        store: SqliteNodeStore | None = None,
        allow_public: bool = False,
        udp_buffer: int = UDP_BUFFER,
    ) -> None:
        """`host` is an IPv4 or IPv6 literal: loopback, or any other with
        `allow_public` (see `drivers.addresses`). `clock` gives ``now`` in
        seconds since the Unix epoch (envelope timestamps
        use it); `rng` draws request ids (default: the OS's CSPRNG). Up to
        `trace_limit` trace records are kept, the oldest dropped first;
        `queue_size` bounds the datagrams and the frames per connection waiting
        to be written (beyond it they are dropped and counted). `send_delay`
        (seconds, event-loop clock) holds every outgoing datagram that long
        before it is sent, emulating one-way link delay; stream messages are
        not delayed. Delayed datagrams count against `queue_size`. `udp_buffer` is
        the socket buffer asked for (bytes, SO_RCVBUF and SO_SNDBUF). Without
        `config`, the node holds room records only with a valid proof (ROOM-6.2)."""
        _check_options(host, port, send_delay, stream_rate, allow_public=allow_public)
        config = config or DEPLOYED_CONFIG
        self.node = Node(identity, rng=rng or random.SystemRandom(), config=config, now=clock())
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._clock = clock
        self._connect_timeout = connect_timeout
        #: ABUSE-3: a quarter of the connection slots for dialling, the rest for peers.
        self.slots = ConnectionSlots(
            SlotsConfig(
                inbound=max(1, max_connections - max_connections // 4),
                outbound=max(1, max_connections // 4),
                idle_timeout=idle_timeout,
            )
        )
        self._loopback_hosts = (config.limits or LimitsConfig()).loopback_hosts
        self._queue_size = queue_size
        self._send_delay = send_delay
        #: Upload cap of this host's stream writes, bytes/s (emulates an access link
        #: for bandwidth probes); None: as fast as the socket takes them.
        self._stream_rate = stream_rate
        self._stream_next_free = 0.0
        self._state = HostState.NEW
        #: The driver's own counters (``driver.*``); the node keeps its own.
        self.driver_counters: Counters[DriverCounter] = Counters()
        self._trace: deque[TraceRecord] = deque(maxlen=trace_limit)
        self._subscribers: list[TraceSubscriber] = []
        self._taps: list[TrafficTap] = []
        #: Fault injection (tests, labs): datagrams to and from an address for which it
        #: answers True are dropped and stream connections to it fail, as a firewall that
        #: blackholes that peer would (counted ``driver.fault_dropped``). None: no fault.
        self.blocked: Callable[[Address], bool] | None = None
        self._waiters: dict[int, _Waiter] = {}
        self._query_waiters: dict[int, _QueryWaiter] = {}
        self._connections: dict[ConnectionId, _Connection] = {}
        self._outbound: dict[Address, _Connection] = {}
        self._connection_ids = itertools.count(1)
        #: The group serving this host while it runs (`HostGroup`).
        self._group: HostGroup | None = None
        #: Cancel scopes of this host's tasks in the group (connections, backlog writer).
        self._scopes: set[anyio.CancelScope] = set()
        self._stopped: anyio.Event | None = None  #: set by `stop`; `run` waits for it
        #: Why the host stopped on its own (its UDP socket kept failing); `run` raises it.
        self._failure: OSError | None = None
        self._udp: socket.socket | None = None
        self._listener: socket.socket | None = None
        self._udp_errors = 0  #: receive errors in a row
        self._udp_buffer = udp_buffer
        #: Datagrams waiting for the socket or their due time: (due time on the event
        #: loop's clock, 0.0 = now; datagram; destination), at most `queue_size`.
        self._udp_backlog: deque[tuple[float, bytes, Address]] = deque()
        self._sending = False  #: a task is writing out the backlog
        #: APP-1.3: one receiver per topic, filled by `_deliver`.
        self._app_inboxes: dict[int, MemoryObjectSendStream[AppMessageReceived]] = {}
        self._store = store
        if store is not None:
            self._restore_records(store)
        self._loop = CoreLoop(clock=clock)
        core: ProtocolCore[NodeAction] = self.node
        self._loop.add(core, self._dispatch)
        slots: ProtocolCore[CloseConnection] = self.slots
        self._loop.add(slots, self._close_connection)

    def _restore_records(self, store: SqliteNodeStore) -> None:
        """DHT-4.5: what the node acknowledged before a restart, re-checked."""
        now = self._clock()
        records, corrupt = store.load_records(now=now)
        restored = sum(self.node.dht.records.restore(r, now=now) for r in records)
        self._count(DriverCounter.RECORDS_RESTORED, restored)
        self._count(DriverCounter.RECORDS_UNUSABLE, corrupt + len(records) - restored)

    # ------------------------------------------------------------ properties

    @property
    def node_id(self) -> NodeId:
        return self.node.node_id

    def reputation_scores(self) -> Mapping[NodeId, int] | None:
        """REP-5.1: the node's scores of its peers, for choosing hosts (relay committees,
        holders, TURN peers); None while reputation is off (REP-6's default)."""
        table = self.node.reputation
        return None if table is None else table.scores()

    @property
    def address(self) -> Address:
        """The (host, port) both the UDP socket and the TCP listener are bound to."""
        if self._port is None:
            raise HostStoppedError("the host is not bound yet: start run() first")
        return (self._host, self._port)

    @property
    def state(self) -> HostState:
        return self._state

    @property
    def running(self) -> bool:
        return self._state is HostState.RUNNING

    @property
    def counters(self) -> Counter[str]:
        """The node's and the driver's counters by flat name (``rx.datagram``,
        ``driver.connect_failed``), a new Counter for printing and /metrics; code
        reads `node.counters` / `driver_counters` with their typed names."""
        merged = Counter(self.node.counters.snapshot())
        merged.update(self.driver_counters.snapshot())
        return merged

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def trace(self) -> list[TraceRecord]:
        """The most recent trace records (at most `trace_limit`), oldest first."""
        return list(self._trace)

    def subscribe(self, subscriber: TraceSubscriber) -> Callable[[], None]:
        """Call `subscriber` with every new trace record; returns an unsubscribe function."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def tap(self, tap: TrafficTap) -> Callable[[], None]:
        """Call `tap` with every datagram and stream message in or out and every stream
        connection opened or closed (for logs: ``railgun-ref node -v``); returns an
        untap function."""
        self._taps.append(tap)

        def untap() -> None:
            if tap in self._taps:
                self._taps.remove(tap)

        return untap

    def _report(self, event: TapEvent) -> None:
        for tap in tuple(self._taps):
            tap(event)

    def __repr__(self) -> str:
        where = f"{self._host}:{self._port}" if self._port is not None else self._host
        return f"<NodeHost {self.node_id.hex()[:16]} {where} {self._state.value}>"

    # ------------------------------------------------------------------- API

    async def ping(
        self,
        address: Address,
        *,
        channel: Channel = Channel.DATAGRAM,
        payload: bytes = b"",
        expected_peer: NodeId | None = None,
    ) -> PingOutcome:
        """PING `address` (MSG-2.1) and wait for the outcome.

        Returns `PongReceived`, `ErrorReceived` or, after the node's
        request_timeout, `RequestTimedOut`. Raises ValueError for an address
        this process may not send to (`drivers.addresses`), `LocalProtocolError`
        if the PING does not fit the
        channel, `HostStoppedError` if the host is not running or stops.
        """
        address = check_destination(address)
        self._require_running()
        now = self._clock()
        request_id = self.node.ping(
            address, now=now, channel=channel, payload=payload, expected_peer=expected_peer
        )
        waiter = _Waiter()
        self._waiters[request_id] = waiter
        try:
            self._pump()
            await waiter.done.wait()
        finally:
            del self._waiters[request_id]
        if waiter.outcome is None:
            raise HostStoppedError("the host stopped before the request ended")
        return waiter.outcome

    async def _query(self, start: Callable[[float], int]) -> QueryOutcome:
        """Start a DHT operation (`start(now) -> query id`) and wait for its final event."""
        self._require_running()
        now = self._clock()
        query_id = start(now)
        waiter = _QueryWaiter()
        self._query_waiters[query_id] = waiter
        try:
            self._pump()
            await waiter.done.wait()
        finally:
            del self._query_waiters[query_id]
        if waiter.outcome is None:
            raise HostStoppedError("the host stopped before the query ended")
        return waiter.outcome

    async def send_app(
        self, address: Address, topic: int, payload: bytes, *, channel: Channel | None = None
    ) -> None:
        """Send an application message (APP-1.1) to the node at `address`: by default as
        a datagram from the node's own socket when it fits, else over a stream (APP-1.5).

        One-way and unacknowledged at this layer. Raises `ValueError` for an
        address this process may not send to (`drivers.addresses`),
        `LocalProtocolError` for a bad topic or
        an oversized payload, `HostStoppedError` if the host is not running.
        """
        address = check_destination(address)
        self._require_running()
        now = self._clock()
        self.node.send_app(address, topic, payload, now=now, channel=channel)
        self._pump()

    def send_datagram(self, data: bytes, address: Address) -> None:
        """Send `data`, an envelope another component signed with this node's identity or
        one a relay forwards unchanged (NAT-4.2), from the node's own UDP socket (NAT-6.1).

        Fire and forget, like every datagram: an address this process may not send to,
        or a full backlog, is counted (``driver.*``) and dropped. `HostStoppedError` if
        the host is not running."""
        self._require_running()
        self._queue_datagram(data, address)

    def app_inbox(
        self, topic: int, *, buffer: int = 1024
    ) -> MemoryObjectReceiveStream[AppMessageReceived]:
        """The application messages for `topic` (APP-1.3), in arrival order.

        One receiver per topic; subscribing again replaces the earlier one
        (which then ends). Messages for a topic nobody subscribed to, or that
        find the buffer full, are dropped and counted
        (``driver.app_unrouted`` / ``driver.app_inbox_full``).
        """
        if not 1 <= topic <= MAX_APP_TOPIC:
            raise ValueError(f"topic must be 1..{MAX_APP_TOPIC}, got {topic}")
        send, receive = anyio.create_memory_object_stream[AppMessageReceived](buffer)
        old = self._app_inboxes.pop(topic, None)
        if old is not None:
            old.close()
        self._app_inboxes[topic] = send
        return receive

    def cached_peers(self) -> list[Address]:
        """Addresses of the contacts saved when this node's store was last closed."""
        return [address for _, address in self._store.load_peers()] if self._store else []

    async def bootstrap(
        self, addresses: list[Address], *, attempts: int = 3, backoff: float = 0.5
    ) -> LookupFinished:
        """Join the DHT through `addresses` (ping them, then look up our own id).

        A join that found nobody (no contact answered and the table is empty) is
        tried again, up to `attempts` times in all, `backoff` seconds after the
        first failure and twice as long after each next one; the last outcome is
        returned either way (``driver.join_retried`` counts the retries)."""
        if attempts < 1 or backoff < 0:
            raise ValueError("need attempts >= 1 and backoff >= 0 seconds")
        checked = [check_destination(a) for a in addresses]
        delay = backoff
        for attempt in range(attempts):
            outcome = await self._query(lambda now: self.node.dht.bootstrap(checked, now=now))
            assert isinstance(outcome, LookupFinished)
            if outcome.closest or len(self.node.dht.routing) or attempt + 1 == attempts:
                return outcome
            self._count(DriverCounter.JOIN_RETRIED)
            await anyio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def find_node(self, peer_id: bytes) -> LookupFinished:
        """DHT operation `findNode(peerId)`: the k closest nodes that answered."""
        outcome = await self._query(lambda now: self.node.dht.find_node(peer_id, now=now))
        assert isinstance(outcome, LookupFinished)
        return outcome

    async def get(self, key: bytes, *, quorum: int = 1) -> GetFinished:
        """DHT operation `get(key)`: valid records under the 256-bit `key`."""
        outcome = await self._query(lambda now: self.node.dht.get(key, now=now, quorum=quorum))
        assert isinstance(outcome, GetFinished)
        return outcome

    async def store(
        self, key_type: KeyType, ident: bytes, value: bytes, *, ttl: float | None = None
    ) -> StoreFinished:
        """DHT operation `store(key, value)`: publish a signed record on the k closest nodes."""
        outcome = await self._query(
            lambda now: self.node.dht.store(key_type, ident, value, now=now, ttl=ttl)
        )
        assert isinstance(outcome, StoreFinished)
        return outcome

    async def announce_room(self, room_id: bytes, value: bytes = b"") -> StoreFinished:
        """DHT operation `announceRoom(roomId)`."""
        outcome = await self._query(
            lambda now: self.node.dht.announce_room(room_id, now=now, value=value)
        )
        assert isinstance(outcome, StoreFinished)
        return outcome

    async def find_room_peers(self, room_id: bytes) -> GetFinished:
        """DHT operation `findRoomPeers(roomId)`: every member announcement found."""
        outcome = await self._query(lambda now: self.node.dht.find_room_peers(room_id, now=now))
        assert isinstance(outcome, GetFinished)
        return outcome

    # ------------------------------------------------------------------- run

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Address] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, report the bound address through `task_status`, serve until cancelled
        (in a `HostGroup` of its own). Raises the OSError that stopped the host, if any."""
        if self._state is not HostState.NEW:
            raise HostStoppedError("a NodeHost runs only once; make a new one")
        group = HostGroup(clock=self._clock)
        stopped = self._stopped = anyio.Event()
        unbound: OSError | None = None
        async with anyio.create_task_group() as tg:
            await tg.start(group.run)
            try:
                address = group.add(self)
            except OSError as exc:  # raised bare below, not in a group: callers catch it
                unbound = exc
            else:
                task_status.started(address)
                await stopped.wait()
            tg.cancel_scope.cancel()
        if unbound is not None:
            raise unbound
        if self._failure is not None:
            raise self._failure

    def start_in(self, group: HostGroup) -> Address:
        """Bind and serve from `group` (what `HostGroup.add` calls); returns the address."""
        if self._state is not HostState.NEW:
            raise HostStoppedError("a NodeHost runs only once; make a new one")
        if group.clock is not self._clock:
            raise ValueError("a host and its group must share one clock")
        self._state = HostState.RUNNING
        try:
            udp, listener = self._bind()
        except BaseException:
            self._state = HostState.STOPPED
            raise
        try:
            group.watch(udp, self._on_udp_readable)
            group.watch(listener, self._on_acceptable)
        except BaseException:
            self._state = HostState.STOPPED
            for sock in (udp, listener):
                group.unwatch(sock)
                sock.close()
            raise
        self._group, self._udp, self._listener = group, udp, listener
        self._loop.attach(group.timers)
        return self.address

    def stop(self) -> None:
        """Stop serving: close the sockets and connections, end the calls waiting on the
        node (they raise `HostStoppedError`). Idempotent; a host that never ran just stops."""
        if self._state is not HostState.RUNNING:
            self._state = HostState.STOPPED
            return
        self._state = HostState.STOPPED
        self._loop.detach()
        group, self._group = self._group, None
        for sock in (self._udp, self._listener):
            if sock is not None:
                if group is not None:
                    group.unwatch(sock)
                sock.close()
        self._udp = self._listener = None
        for scope in tuple(self._scopes):
            scope.cancel()
        self._count(DriverCounter.DROPPED_AFTER_STOP, len(self._udp_backlog))
        self._udp_backlog.clear()
        for connection in list(self._connections.values()):
            self._forget(connection)
        self._end_waits()
        if self._store is not None:
            self._store.save_peers(
                [(c.node_id, c.address) for c in self.node.dht.routing.contacts()]
            )
        if group is not None:
            group.discard(self)
        if self._stopped is not None:
            self._stopped.set()

    def _end_waits(self) -> None:
        """A stopping host ends every API wait (outcome None) and every app inbox."""
        for waiter in self._waiters.values():
            waiter.done.set()
        for query_waiter in self._query_waiters.values():
            query_waiter.done.set()  # outcome None: ping() raises HostStoppedError
        for inbox in self._app_inboxes.values():
            inbox.close()  # an `async for` over app_inbox() ends
        self._app_inboxes.clear()

    def _udp_socket(self) -> socket.socket:
        """A non-blocking UDP socket on host:port with buffers sized for bursts."""
        udp = socket.socket(family_of(self._host), socket.SOCK_DGRAM)
        try:
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                udp.setsockopt(socket.SOL_SOCKET, option, self._udp_buffer)
            udp.setblocking(False)
            udp.bind((self._host, self._requested_port))
        except BaseException:
            udp.close()
            raise
        return udp

    def kernel_drops(self) -> int | None:
        """Datagrams the kernel dropped at this socket (full buffer), from /proc/net/udp's
        ``drops`` column; None where that file is not available."""
        if self._port is None:
            return None
        local = f":{self._port:04X}"
        try:
            with open("/proc/net/udp") as table:
                for line in table.readlines()[1:]:
                    fields = line.split()
                    if len(fields) > 12 and fields[1].endswith(local):
                        return int(fields[12])
        except (OSError, ValueError):
            return None
        return None

    @property
    def udp_receive_buffer(self) -> int:
        """The receive buffer the kernel gave the UDP socket, bytes (0 when not running)."""
        return 0 if self._udp is None else self._udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    def _tcp_listener(self, port: int) -> socket.socket:
        """A non-blocking TCP listening socket on host:port."""
        family = family_of(self._host)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            tcp.setblocking(False)
            if family == socket.AF_INET6:
                tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if sys.platform != "win32":  # as anyio's listeners: rebind while TIME_WAIT lasts
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((self._host, port))
            tcp.listen(_LISTEN_BACKLOG)
        except BaseException:
            tcp.close()
            raise
        return tcp

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        attempts = _BIND_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(attempts):
            udp = self._udp_socket()
            try:
                port = udp.getsockname()[1]
                listener = self._tcp_listener(port)
            except OSError:
                udp.close()
                if attempt + 1 == attempts:
                    raise
                continue  # the TCP half of the port the OS gave us is taken: try another
            except BaseException:
                udp.close()
                raise
            self._port = port
            return udp, listener
        raise AssertionError("unreachable")  # pragma: no cover

    def _require_running(self) -> None:
        if self._state is not HostState.RUNNING or self._group is None:
            raise HostStoppedError(f"{self!r} is not running")

    # ------------------------------------------------------ node plumbing

    def _count(self, name: DriverCounter, amount: int = 1) -> None:
        self.driver_counters.inc(name, amount)

    def _pump(self) -> None:
        """After an input: drain the node through `_dispatch`, re-arm the timer."""
        self._loop.poke()

    def _dispatch(self, action: NodeAction) -> None:
        match action:
            case SendDatagram(data=data, address=address):
                self._queue_datagram(data, address)
            case SendStreamMessage(data=data, target=target):
                self._queue_stream_message(data, target)
            case EmitEvent(event=event):
                self._deliver(event, self._loop.now())
            case _:
                assert_never(action)

    def _trace_event(self, event: NodeEvent, now: float) -> None:
        if len(self._trace) == self._trace.maxlen:
            self._count(DriverCounter.TRACE_EVICTED)
            if not self._trace.maxlen and not self._subscribers:
                return  # trace_limit 0 and nobody listening: no record to build
        record = record_event(self.node.node_id, now, event)
        self._trace.append(record)
        for subscriber in tuple(self._subscribers):
            subscriber(record)

    def _deliver(self, event: NodeEvent, now: float) -> None:
        self._trace_event(event, now)
        if self._store is not None:
            # Persisted here, while the loop drains the node, before the sender task can put the
            # STORED reply on the wire (DHT-4.5).
            if isinstance(event, RecordStored):
                held = Record.from_cbor_value(cbor.decode(event.record))
                self._store.put_record(event.key, event.publisher_id, event.record, held.expires_ms)
            elif isinstance(event, RecordDropped):
                self._store.delete_record(event.key, event.publisher_id)
        if isinstance(event, AppMessageReceived):
            inbox = self._app_inboxes.get(event.topic)
            if inbox is None:
                self._count(DriverCounter.APP_UNROUTED)
            else:
                try:
                    inbox.send_nowait(event)
                except anyio.WouldBlock:
                    self._count(DriverCounter.APP_INBOX_FULL)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    del self._app_inboxes[event.topic]
                    self._count(DriverCounter.APP_UNROUTED)
        # Only request outcomes end an API wait; every event goes to the trace.
        if isinstance(event, LookupFinished | GetFinished | StoreFinished):
            query_waiter = self._query_waiters.get(event.query_id)
            if query_waiter is not None and query_waiter.outcome is None:
                query_waiter.outcome = event
                query_waiter.done.set()
        if isinstance(event, PongReceived | ErrorReceived | RequestTimedOut):
            waiter = self._waiters.get(event.request_id)
            if waiter is not None and waiter.outcome is None:
                waiter.outcome = event
                waiter.done.set()

    def _queue_datagram(self, data: bytes, address: Address) -> None:
        udp, group = self._udp, self._group
        if udp is None or group is None:
            self._count(DriverCounter.DROPPED_AFTER_STOP)
            return
        if not is_sendable(address):
            self._count(DriverCounter.REFUSED_ADDRESS)
            return
        if self.blocked is not None and self.blocked(address):
            self._count(DriverCounter.FAULT_DROPPED)
            return
        if not self._send_delay and not self._udp_backlog and self._sendto(udp, data, address):
            return
        if len(self._udp_backlog) >= self._queue_size:
            self._count(DriverCounter.UDP_QUEUE_FULL)
            return
        due = anyio.current_time() + self._send_delay if self._send_delay else 0.0
        self._udp_backlog.append((due, data, address))
        if not self._sending:
            self._sending = True
            group.start_soon(self._udp_send_loop, udp, scopes=self._scopes)

    def _sendto(self, udp: socket.socket, data: bytes, address: Address) -> bool:
        """Send now if the socket takes it; False if it would block (the caller queues)."""
        try:
            udp.sendto(data, address)
        except BlockingIOError:
            return False
        except OSError:
            self._count(DriverCounter.SENDTO_FAILED)
            return True
        if self._taps:
            self._report(
                Traffic(direction=Direction.OUT, channel=Channel.DATAGRAM, peer=address, data=data)
            )
        return True

    def _queue_stream_message(self, data: bytes, target: StreamTarget) -> None:
        frame = encode_frame(data)
        if isinstance(target, int):
            connection = self._connections.get(target)
            if connection is None:
                self._count(DriverCounter.STREAM_TARGET_GONE)  # the peer hung up before our reply
                return
        else:
            connection = self._outbound.get(target) or self._dial(target)
            if connection is None:
                return
        try:
            connection.send.send_nowait(frame)
            if self._taps:
                self._report(
                    Traffic(
                        direction=Direction.OUT,
                        channel=Channel.STREAM,
                        peer=connection.peer,
                        data=data,
                    )
                )
        except anyio.WouldBlock:
            self._count(DriverCounter.STREAM_QUEUE_FULL)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._count(DriverCounter.STREAM_TARGET_GONE)

    def _new_connection(self, peer: Address, *, outbound: bool) -> _Connection:
        send, receive = anyio.create_memory_object_stream[bytes](self._queue_size)
        connection = _Connection(
            id=ConnectionId(next(self._connection_ids)),
            peer=peer,
            outbound=outbound,
            send=send,
            receive=receive,
        )
        self._connections[connection.id] = connection
        if outbound:
            self._outbound[peer] = connection
        return connection

    def _forget(self, connection: _Connection) -> None:
        self._connections.pop(connection.id, None)
        self.slots.closed(connection.id)
        if self._outbound.get(connection.peer) is connection:
            del self._outbound[connection.peer]
        connection.send.close()
        connection.receive.close()

    # ------------------------------------------------------------ datagrams

    def _on_udp_readable(self) -> None:
        """The group saw the socket readable: drain up to `_DRAIN_BATCH` datagrams, then pump
        once. `_MAX_UDP_ERRORS` receive errors in a row stop the host (`run` raises it)."""
        udp = self._udp
        if udp is None:
            return  # stopped while the group was calling back the sockets it found ready
        for _ in range(_DRAIN_BATCH):
            try:
                data, peer = udp.recvfrom(_UDP_READ_SIZE)  # IPv6 adds flow and scope
            except BlockingIOError:
                break
            except OSError as exc:
                # e.g. an ICMP error reported on the socket; it stays usable.
                self._count(DriverCounter.UDP_RECEIVE_ERROR)
                self._udp_errors += 1
                if self._udp_errors >= _MAX_UDP_ERRORS:
                    self._failure = exc
                    self.stop()
                    return
                continue
            self._udp_errors = 0
            self._on_datagram(data, _interned(peer[0], peer[1]))
        self._pump()

    def _on_datagram(self, data: bytes, address: Address) -> None:
        if self.blocked is not None and self.blocked(address):
            self._count(DriverCounter.FAULT_DROPPED)
            return
        if self._taps:
            self._report(
                Traffic(direction=Direction.IN, channel=Channel.DATAGRAM, peer=address, data=data)
            )
        self.node.receive_datagram(data, address, now=self._clock())

    async def _udp_send_loop(self, udp: socket.socket) -> None:
        """Write out the backlog, each datagram at its due time, when the socket takes it;
        the task ends with the backlog (`_queue_datagram` starts the next one)."""
        backlog = self._udp_backlog
        try:
            while backlog:
                due, data, address = backlog[0]
                if due:
                    # Due times never decrease (one constant delay), so waiting for
                    # the head never holds a later datagram past its own due time.
                    wait = due - anyio.current_time()
                    if wait > 0:
                        await anyio.sleep(wait)
                if self._sendto(udp, data, address):
                    backlog.popleft()
                else:
                    await anyio.wait_writable(udp)
        finally:
            self._sending = False

    # ------------------------------------------------------------- streams

    def _dial(self, address: Address) -> _Connection | None:
        if not is_sendable(address):
            self._count(DriverCounter.REFUSED_ADDRESS)
            return None
        group = self._group
        if group is None:
            self._count(DriverCounter.DROPPED_AFTER_STOP)
            return None
        connection = self._new_connection(address, outbound=True)
        self._open_slot(connection, inbound=False)
        group.start_soon(self._run_outbound, connection, scopes=self._scopes)
        return connection

    async def _run_outbound(self, connection: _Connection) -> None:
        host, port = connection.peer
        try:
            if self.blocked is not None and self.blocked(connection.peer):
                self._count(DriverCounter.FAULT_DROPPED)
                raise ConnectionRefusedError("blocked by the fault rule")
            with anyio.fail_after(self._connect_timeout):
                # From our own host, so the peer sees this node's address, not 127.0.0.1.
                stream = await anyio.connect_tcp(host, port, local_host=self._host)
        except OSError:  # refused, unreachable, or TimeoutError from fail_after
            self._count(DriverCounter.CONNECT_FAILED)
            dropped = connection.receive.statistics().current_buffer_used
            self._count(DriverCounter.STREAM_DROPPED, dropped)
            self._forget(connection)
            return
        self._count(DriverCounter.CONNECTIONS_OPENED)
        self._report(StreamOpened(peer=connection.peer, outbound=True))
        await self._serve_connection(connection, stream)

    def _on_acceptable(self) -> None:
        """The group saw the listener readable: accept what waits (up to `_ACCEPT_BATCH`)."""
        listener, group = self._listener, self._group
        if listener is None or group is None:
            return
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, remote = listener.accept()
            except BlockingIOError:
                return
            except OSError:
                # e.g. out of file descriptors: the listener stays readable, so rest a while.
                self._count(DriverCounter.ACCEPT_ERROR)
                group.unwatch(listener)
                group.start_soon(self._resume_accepting, listener, scopes=self._scopes)
                return
            self._count(DriverCounter.CONNECTIONS_ACCEPTED)
            connection = self._new_connection((remote[0], remote[1]), outbound=False)
            self._open_slot(connection, inbound=True)
            self._report(StreamOpened(peer=connection.peer, outbound=False))
            group.start_soon(self._serve_accepted, connection, sock, scopes=self._scopes)

    async def _resume_accepting(self, listener: socket.socket) -> None:
        await anyio.sleep(_ACCEPT_PAUSE)
        if self._listener is listener and self._group is not None:
            self._group.watch(listener, self._on_acceptable)

    async def _serve_accepted(self, connection: _Connection, sock: socket.socket) -> None:
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = await anyio.abc.SocketStream.from_socket(sock)
        except (OSError, ValueError):  # anyio: ValueError for a socket no longer connected
            sock.close()
            self._count(DriverCounter.CONNECTION_ERROR)  # reset before we could serve it
            self._forget(connection)
            self._report(StreamClosed(peer=connection.peer, outbound=False))
            return
        except BaseException:
            sock.close()
            self._forget(connection)
            raise
        await self._serve_connection(connection, stream)

    def _open_slot(self, connection: _Connection, *, inbound: bool) -> None:
        """ABUSE-3.2: take a slot. An outbound one is taken while the loop drains the
        node (from `_dispatch`), which then drains the slots too; pumping again from
        there could reorder the node's stream frames, so only the accept loop pumps."""
        group = source_group(connection.peer, loopback_hosts=self._loopback_hosts)
        self.slots.open(connection.id, group, inbound=inbound, now=self._clock())
        if inbound:
            self._pump()  # closes whatever the newcomer displaced

    def _close_connection(self, action: CloseConnection) -> None:
        """ABUSE-3: the slot policy closes a connection (idle, or displaced by a newcomer)."""
        connection = self._connections.get(ConnectionId(action.connection))
        if connection is None:
            return
        self._count(DriverCounter.CONNECTION_LIMIT)
        connection.closing = True
        if self._outbound.get(connection.peer) is connection:
            del self._outbound[connection.peer]  # the next message dials afresh
        if connection.scope is not None:
            connection.scope.cancel()

    async def _serve_connection(
        self, connection: _Connection, stream: anyio.abc.SocketStream
    ) -> None:
        if connection.closing:
            await anyio.aclose_forcefully(stream)
            self._forget(connection)
            self._report(StreamClosed(peer=connection.peer, outbound=connection.outbound))
            return
        try:
            async with stream, anyio.create_task_group() as tg:
                connection.scope = tg.cancel_scope
                tg.start_soon(self._write_loop, connection, stream, tg.cancel_scope)
                await self._read_loop(connection, stream)
                tg.cancel_scope.cancel()
        except (anyio.BrokenResourceError, OSError):
            self._count(DriverCounter.CONNECTION_ERROR)  # closing a reset socket may complain too
        finally:
            self._forget(connection)
            self._report(StreamClosed(peer=connection.peer, outbound=connection.outbound))

    async def _read_loop(self, connection: _Connection, stream: anyio.abc.SocketStream) -> None:
        decoder = FrameDecoder()
        while True:
            try:
                chunk = await stream.receive(_READ_SIZE)
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return
            except (anyio.BrokenResourceError, OSError):
                self._count(DriverCounter.CONNECTION_ERROR)  # reset by peer
                return
            decoder.feed(chunk)
            now = self._clock()
            self.slots.activity(connection.id, now=now)
            try:
                while (frame := decoder.next_frame()) is not None:
                    if self._taps:
                        self._report(
                            Traffic(
                                direction=Direction.IN,
                                channel=Channel.STREAM,
                                peer=connection.peer,
                                data=frame,
                            )
                        )
                    self.node.receive_stream_message(frame, connection.id, connection.peer, now=now)
            except RemoteProtocolError:
                # STR-1.3: a bad length cannot be resynchronised; close this connection only.
                self._count(DriverCounter.FRAMING_ERROR)
                return
            finally:
                self._pump()

    async def _write_loop(
        self,
        connection: _Connection,
        stream: anyio.abc.SocketStream,
        scope: anyio.CancelScope,
    ) -> None:
        async for frame in connection.receive:
            if self._stream_rate is not None:
                # One shared link for all of this host's streams: each frame
                # occupies it for len/rate seconds (a serialisation-delay model).
                now = anyio.current_time()
                start = max(now, self._stream_next_free)
                self._stream_next_free = start + len(frame) / self._stream_rate
                await anyio.sleep(self._stream_next_free - now)
            self.slots.activity(connection.id, now=self._clock())
            try:
                await stream.send(frame)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self._count(DriverCounter.CONNECTION_ERROR)
                scope.cancel()
                return

    # ------------------------------------------------ capabilities (CAP-3)

    async def advertise_capabilities(
        self, capabilities: DeviceCapabilities, ttl: float = DEFAULT_ADVERT_TTL
    ) -> StoreFinished:
        """CAP-3.3: publish this node's signed capability record, living `ttl` seconds."""
        if not 0 < ttl <= MAX_ADVERT_TTL:
            raise ValueError(f"ttl must be within (0, {MAX_ADVERT_TTL}] seconds, got {ttl}")
        value = encode_capabilities(capabilities)
        return await self.store(KeyType.CAPABILITY, self.node_id, value, ttl=ttl)

    async def fetch_capabilities(self, node_id: NodeId) -> Advertisement | None:
        """CAP-3.5: `node_id`'s newest valid capability advertisement, or None if none is found."""
        outcome = await self.get(capability_key(node_id))
        return pick_advertisement(outcome.records, now=self._clock(), node_id=node_id)


async def serve_node(
    *,
    host: str,
    port: int,
    identity: Identity,
    on_ready: Callable[[NodeHost], None],
    config: NodeConfig | None = None,
    **host_options: Any,
) -> None:
    """Serve one node on host:port (0: the OS picks) until cancelled.

    `on_ready` is called once, with the running host, as soon as both sockets
    listen. Extra keyword arguments go to `NodeHost`.
    """
    node_host = NodeHost(identity, host=host, port=port, config=config, **host_options)
    async with anyio.create_task_group() as tg:
        await tg.start(node_host.run)
        on_ready(node_host)
