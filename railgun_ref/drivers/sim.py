"""Discrete-event simulation driver: the same `Node` objects, in virtual time.

A heap of timed events ``(time, seq, event)`` drives every node through the
exact sans-IO calls the UDP driver makes — `receive_datagram`,
`receive_stream_message`, `on_timer`, API calls — with `now` taken from the
virtual clock. No asyncio, no sockets, no wall clock: a 30 s health-check
interval or a 7-day TTL costs only the events that happen in it.

Determinism: every random draw (loss, jitter, node identities and node RNGs)
comes from one `random.Random(seed)`, and ties in time are broken by a
sequence number in scheduling order, so the same seed and the same script
give the same trace byte for byte (`Simulator.trace_lines()`).

The network model (`SimNetwork`): per-link one-way latency, jitter, loss and
bandwidth (serialisation delay); partitions as groups of addresses (a node in
several groups is a bridge); stopped nodes drop what reaches them. Datagrams
may be lost or reordered; stream messages are reliable and ordered per
connection, and lost only when a partition or a stopped node breaks the
connection, as TCP would.

Middleboxes and apps (NAT emulation, `railgun_ref.drivers.sim_nat`): every
datagram passes the network's `Middlebox`es -- `outbound` when sent (it may
rewrite the source or drop it), `inbound` when it arrives (it may rewrite the
destination or drop it) -- in list order out and reverse order in, so an inner
NAT listed before a carrier-grade one nests inside it. Link profiles and
partitions apply to the addresses as sent, before translation. Stream messages
bypass middleboxes. Besides `Node`s, the simulator hosts `SimApp`s: datagram-only
sans-IO endpoints that may own several addresses (an RFC 5780 STUN server has
four) and say which one each datagram leaves from.
"""

import heapq
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Protocol, TypeVar, assert_never

from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import Address
from railgun_ref.events import NodeEvent
from railgun_ref.identity.keys import CryptoMode, Identity, set_crypto_mode
from railgun_ref.node import (
    ConnectionId,
    EmitEvent,
    Node,
    NodeConfig,
    SendDatagram,
    SendStreamMessage,
    StreamTarget,
)
from railgun_ref.rpc.requests import Channel
from railgun_ref.trace import TraceRecord, record_event

_T = TypeVar("_T")

#: Virtual time starts here (2026-01-01T00:00:00Z), so envelope timestamps look real.
SIM_EPOCH: Final = 1_767_225_600.0


class SimCounter(StrEnum):
    """What the simulated network (and the churn script, `drivers.churn`) counts."""

    DATAGRAMS_DELIVERED = "sim.datagrams_delivered"
    DATAGRAMS_LOST = "sim.datagrams_lost"
    DATAGRAMS_PARTITIONED = "sim.datagrams_partitioned"
    DATAGRAMS_FILTERED = "sim.datagrams_filtered"  #: dropped by a middlebox
    DROPPED_NO_RUNNING_NODE = "sim.dropped_no_running_node"
    STREAM_DELIVERED = "sim.stream_delivered"
    STREAM_LOST_BROKEN = "sim.stream_lost_broken"
    STREAM_LOST_NO_STREAM_APP = "sim.stream_lost_no_stream_app"
    CONNECTIONS_OPENED = "sim.connections_opened"
    CHURN_LEFT = "churn.left"
    CHURN_RETURNED = "churn.returned"


@contextmanager
def crypto_mode(mode: CryptoMode) -> Iterator[CryptoMode]:
    """Sign and verify in `mode` for the extent of one simulation, then restore the mode.

    `CryptoMode.FAST` (a keyed hash in place of Ed25519, `identity.keys`) is for scale
    studies of honest networks in the simulator only; results made with it say so.
    """
    previous = set_crypto_mode(mode)
    try:
        yield mode
    finally:
        set_crypto_mode(previous)


def sim_address(index: int, port: int = 7000) -> Address:
    """A loopback-looking label for simulated node `index` (never used on a socket)."""
    return (f"127.{1 + index // 65536}.{(index // 256) % 256}.{index % 256}", port)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkProfile:
    """One direction of a link. Times in seconds, bandwidth in bytes/s."""

    latency: float = 0.025
    jitter: float = 0.0  #: uniform extra delay in [0, jitter)
    loss: float = 0.0  #: probability a datagram is dropped
    bandwidth: float | None = None  #: adds len(data)/bandwidth of serialisation delay

    def __post_init__(self) -> None:
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter must be >= 0")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError("loss is a probability in [0, 1]")
        if self.bandwidth is not None and self.bandwidth <= 0:
            raise ValueError("bandwidth must be positive")


class Middlebox(Protocol):
    """A box on the path of every datagram (a NAT, a firewall): it may rewrite or drop it."""

    def outbound(self, src: Address, dst: Address, *, now: float) -> Address | None:
        """The source address a datagram from `src` leaves with: `src` itself if the box
        does not handle it, a translated one, or None to drop it."""
        ...

    def inbound(self, src: Address, dst: Address, *, now: float) -> Address | None:
        """Where a datagram addressed to `dst` goes: `dst` itself if the box does not
        handle it, the translated destination, or None to drop (filter) it."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SendFrom:
    """Send `data` to `destination` from `source`, which must be one of the app's addresses."""

    data: bytes
    destination: Address
    source: Address


#: Everything a `SimApp` asks the simulator to do (a closed union of one).
SimAppAction = SendFrom


class SimApp(ProtocolCore[SimAppAction], Protocol):
    """A datagram-only sans-IO endpoint hosted on one or more addresses.

    It follows the core contract (CORE-1): the simulator drains `next_action`
    after every input and re-arms `on_timer` at `next_deadline`.
    """

    def receive_datagram(self, data: bytes, src: Address, *, local: Address, now: float) -> None:
        """A datagram from `src` arrived on the app's address `local`."""
        ...


@dataclass(slots=True)
class SimNetwork:
    """Who can reach whom, and how fast."""

    default: LinkProfile = field(default_factory=LinkProfile)
    links: dict[tuple[Address, Address], LinkProfile] = field(default_factory=dict)
    #: When set, two addresses can talk only if some group holds both.
    partition: list[frozenset[Address]] | None = None
    #: Applied to every datagram (see the module docstring); e.g. `sim_nat.NatBox`.
    middleboxes: list[Middlebox] = field(default_factory=list)

    def outbound(self, src: Address, dst: Address, *, now: float) -> Address | None:
        """The source `dst` sees for a datagram `src` sends, or None if a box drops it."""
        for box in self.middleboxes:
            translated = box.outbound(src, dst, now=now)
            if translated is None:
                return None
            src = translated
        return src

    def inbound(self, src: Address, dst: Address, *, now: float) -> Address | None:
        """Where a datagram arriving for `dst` is delivered, or None if a box drops it."""
        for box in reversed(self.middleboxes):
            translated = box.inbound(src, dst, now=now)
            if translated is None:
                return None
            dst = translated
        return dst

    def set_link(self, a: Address, b: Address, profile: LinkProfile, *, both: bool = True) -> None:
        self.links[(a, b)] = profile
        if both:
            self.links[(b, a)] = profile

    def profile(self, src: Address, dst: Address) -> LinkProfile:
        return self.links.get((src, dst), self.default)

    def split(self, groups: Iterable[Iterable[Address]]) -> None:
        """Partition the network; an address listed in several groups bridges them."""
        self.partition = [frozenset(g) for g in groups]

    def heal(self) -> None:
        self.partition = None

    def reachable(self, src: Address, dst: Address) -> bool:
        if self.partition is None:
            return True
        return any(src in group and dst in group for group in self.partition)


@dataclass(slots=True)
class _Connection:
    """A simulated stream connection; each end knows it by its own id."""

    opener: Address
    acceptor: Address
    opener_id: ConnectionId
    acceptor_id: ConnectionId
    last_delivery: dict[Address, float] = field(default_factory=dict)
    broken: bool = False


@dataclass(frozen=True, slots=True)
class _DatagramArrival:
    data: bytes
    src: Address


@dataclass(frozen=True, slots=True)
class _StreamArrival:
    data: bytes
    src: Address
    conn_id: ConnectionId


@dataclass(frozen=True, slots=True)
class _TimerDue:
    pass


@dataclass(frozen=True, slots=True)
class _HostedApp:
    app: SimApp
    addresses: tuple[Address, ...]  #: the first one keys its timer


_Action = Callable[["Simulator"], None]
_Payload = _DatagramArrival | _StreamArrival | _TimerDue | _Action
_TIMER_DUE: Final = _TimerDue()
_NOWHERE: Final[Address] = ("", 0)
# Heap entries are (time, seq, address, payload); seq is unique, so tuples
# compare on (time, seq) and never reach the payload.


class Simulator:
    def __init__(
        self,
        *,
        seed: int,
        network: SimNetwork | None = None,
        start_time: float = SIM_EPOCH,
        keep_trace: bool = True,
    ) -> None:
        self.now = start_time
        self.network = network or SimNetwork()
        self.rng = random.Random(seed)
        self.counters: Counters[SimCounter] = Counters()
        self.nodes: dict[Address, Node] = {}
        self.trace: list[TraceRecord] = []
        self._keep_trace = keep_trace
        self._listeners: list[Callable[[Address, NodeEvent, float], None]] = []
        self._heap: list[tuple[float, int, Address, _Payload]] = []
        self._seq = 0
        self._timer_at: dict[Address, float | None] = {}
        self._stopped: set[Address] = set()
        self._connections: dict[ConnectionId, _Connection] = {}
        self._outbound: dict[tuple[Address, Address], _Connection] = {}
        self._next_conn = 1
        self._apps: dict[Address, _HostedApp] = {}

    # ------------------------------------------------------------ population

    def add_node(self, node: Node, address: Address) -> None:
        if address in self.nodes or address in self._apps:
            raise ValueError(f"{address} already hosts a node")
        self.nodes[address] = node
        self._timer_at[address] = None
        self._stopped.discard(address)

    def spawn(self, count: int, *, config: NodeConfig | None = None) -> list[Address]:
        """Add `count` nodes with identities and RNGs drawn from the simulator's seed."""
        addresses = []
        for _ in range(count):
            address = sim_address(len(self.nodes))
            identity = Identity.from_seed(self.rng.randbytes(32))
            node = Node(
                identity,
                rng=random.Random(self.rng.getrandbits(64)),
                config=config,
                now=self.now,
            )
            self.add_node(node, address)
            addresses.append(address)
        return addresses

    def stop(self, address: Address) -> None:
        """Crash-stop a node: it receives nothing more; its connections break."""
        self._stopped.add(address)
        for conn in self._connections.values():
            if address in (conn.opener, conn.acceptor):
                conn.broken = True

    def restart(self, address: Address, *, keep_records: bool = True) -> list[Address]:
        """Bring a stopped node back: same identity, a fresh process state.

        What a real node keeps on disk survives (its held records, as the
        SQLite store would give them back) and its routing contacts become the
        cached peers it may bootstrap from, which are returned. Everything in
        memory — requests in flight, lookups, the replay cache — is lost.
        """
        old = self.nodes[address]
        if address not in self._stopped:
            raise ValueError(f"{address} is running; stop it first")
        node = Node(
            old.identity,
            rng=random.Random(self.rng.getrandbits(64)),
            config=old.config,
            now=self.now,
        )
        if keep_records:
            for record in old.dht.records.all_records():
                node.dht.records.restore(record, now=self.now)
        self.nodes[address] = node
        self._timer_at[address] = None
        self._stopped.discard(address)
        self._pump(address)
        return [c.address for c in old.dht.routing.contacts()]

    def is_running(self, address: Address) -> bool:
        hosted = address in self.nodes or address in self._apps
        return hosted and address not in self._stopped

    def add_app(self, app: SimApp, *addresses: Address) -> None:
        """Host `app` on `addresses` (at least one) and send what it has queued."""
        if not addresses:
            raise ValueError("an app needs at least one address")
        for address in addresses:
            if address in self.nodes or address in self._apps:
                raise ValueError(f"{address} already hosts a node or an app")
        hosted = _HostedApp(app, tuple(addresses))
        for address in addresses:
            self._apps[address] = hosted
        self._timer_at[addresses[0]] = None
        self._pump_app(hosted)

    def pump_app(self, address: Address) -> None:
        """Send what the app at `address` queued and re-arm its timer (after an API call)."""
        self._pump_app(self._apps[address])

    def subscribe(self, listener: Callable[[Address, NodeEvent, float], None]) -> None:
        """Call `listener(address, event, now)` for every node event."""
        self._listeners.append(listener)

    # ------------------------------------------------------------ scheduling

    def _push(self, at: float, address: Address, payload: _Payload) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, address, payload))

    def at(self, time: float, action: Callable[["Simulator"], None]) -> None:
        """Run `action(sim)` at virtual `time` (for scripted scenarios)."""
        self._push(max(time, self.now), _NOWHERE, action)

    def after(self, delay: float, action: Callable[["Simulator"], None]) -> None:
        self.at(self.now + delay, action)

    def call(self, address: Address, api: Callable[[Node, float], _T]) -> _T:
        """Invoke a node API now (e.g. ``lambda n, now: n.ping(dst, now=now)``) and pump."""
        if not self.is_running(address):
            raise ValueError(f"no running node at {address}")
        result = api(self.nodes[address], self.now)
        self._pump(address)
        return result

    def ping(
        self,
        src: Address,
        dst: Address,
        *,
        channel: Channel = Channel.DATAGRAM,
        payload: bytes = b"",
    ) -> int:
        return self.call(src, lambda n, now: n.ping(dst, now=now, channel=channel, payload=payload))

    # ------------------------------------------------------------ main loop

    def step(self) -> bool:
        """Process the next event; False when none is left."""
        if not self._heap:
            return False
        at, _, address, payload = heapq.heappop(self._heap)
        self.now = max(self.now, at)
        if callable(payload):
            payload(self)
            return True
        if isinstance(payload, _DatagramArrival) and self.network.middleboxes:
            inner = self.network.inbound(payload.src, address, now=self.now)
            if inner is None:
                self.counters.inc(SimCounter.DATAGRAMS_FILTERED)
                return True
            address = inner
        if not self.is_running(address):
            if not isinstance(payload, _TimerDue):
                self.counters.inc(SimCounter.DROPPED_NO_RUNNING_NODE)
            return True
        hosted = self._apps.get(address)
        if hosted is not None:
            self._step_app(hosted, address, at, payload)
            return True
        node = self.nodes[address]
        match payload:
            case _TimerDue():
                if self._timer_at.get(address) != at:
                    return True  # superseded by a later reschedule
                self._timer_at[address] = None
                node.on_timer(now=self.now)
            case _DatagramArrival(data, src):
                self.counters.inc(SimCounter.DATAGRAMS_DELIVERED)
                node.receive_datagram(data, src, now=self.now)
            case _StreamArrival(data, src, conn_id):
                if self._connections[conn_id].broken:
                    self.counters.inc(SimCounter.STREAM_LOST_BROKEN)
                    return True
                self.counters.inc(SimCounter.STREAM_DELIVERED)
                node.receive_stream_message(data, conn_id, src, now=self.now)
        self._pump(address)
        return True

    def run(self, *, until: float | None = None, max_events: int | None = None) -> int:
        """Process events up to virtual time `until` (inclusive); return how many ran.

        Nodes keep periodic maintenance timers, so the heap never empties by
        itself: give `until`, `max_events`, or both.
        """
        if until is None and max_events is None:
            raise ValueError("give until= or max_events=: maintenance timers never run out")
        processed = 0
        while self._heap:
            if until is not None and self._heap[0][0] > until:
                break
            if max_events is not None and processed >= max_events:
                break
            self.step()
            processed += 1
        if until is not None and until > self.now:
            self.now = until
        return processed

    def run_for(self, duration: float) -> int:
        return self.run(until=self.now + duration)

    # ------------------------------------------------------------ internals

    def _delay(self, profile: LinkProfile, size: int) -> float:
        delay = profile.latency
        if profile.jitter:
            delay += self.rng.random() * profile.jitter
        if profile.bandwidth:
            delay += size / profile.bandwidth
        return delay

    def _send_datagram(self, src: Address, data: bytes, dst: Address) -> None:
        seen_from = src
        if self.network.middleboxes:
            translated = self.network.outbound(src, dst, now=self.now)
            if translated is None:
                self.counters.inc(SimCounter.DATAGRAMS_FILTERED)
                return
            seen_from = translated
        if not self.network.reachable(src, dst):
            self.counters.inc(SimCounter.DATAGRAMS_PARTITIONED)
            return
        profile = self.network.profile(src, dst)
        if profile.loss and self.rng.random() < profile.loss:
            self.counters.inc(SimCounter.DATAGRAMS_LOST)
            return
        at = self.now + self._delay(profile, len(data))
        self._push(at, dst, _DatagramArrival(data, seen_from))

    def _connection_for(self, src: Address, target: StreamTarget) -> tuple[_Connection, Address]:
        if isinstance(target, tuple):
            conn = self._outbound.get((src, target))
            if conn is None or conn.broken:
                opener_id = ConnectionId(self._next_conn)
                acceptor_id = ConnectionId(self._next_conn + 1)
                self._next_conn += 2
                conn = _Connection(
                    opener=src, acceptor=target, opener_id=opener_id, acceptor_id=acceptor_id
                )
                self._connections[opener_id] = conn
                self._connections[acceptor_id] = conn
                self._outbound[(src, target)] = conn
                self.counters.inc(SimCounter.CONNECTIONS_OPENED)
            return conn, target
        conn = self._connections[target]
        return conn, conn.opener if conn.acceptor == src else conn.acceptor

    def _send_stream(self, src: Address, data: bytes, target: StreamTarget) -> None:
        conn, dst = self._connection_for(src, target)
        if conn.broken or not self.network.reachable(src, dst) or not self.is_running(dst):
            conn.broken = True  # TCP would reset or time out; later sends reconnect
            self.counters.inc(SimCounter.STREAM_LOST_BROKEN)
            return
        at = self.now + self._delay(self.network.profile(src, dst), len(data))
        at = max(at, conn.last_delivery.get(dst, at))  # reliable, in order
        conn.last_delivery[dst] = at
        dst_conn_id = conn.acceptor_id if dst == conn.acceptor else conn.opener_id
        self._push(at, dst, _StreamArrival(data, src, dst_conn_id))

    def _step_app(self, hosted: _HostedApp, address: Address, at: float, payload: _Payload) -> None:
        match payload:
            case _TimerDue():
                if self._timer_at.get(address) != at:
                    return  # superseded by a later reschedule
                self._timer_at[address] = None
                hosted.app.on_timer(now=self.now)
            case _DatagramArrival(data, src):
                self.counters.inc(SimCounter.DATAGRAMS_DELIVERED)
                hosted.app.receive_datagram(data, src, local=address, now=self.now)
            case _StreamArrival():
                self.counters.inc(SimCounter.STREAM_LOST_NO_STREAM_APP)  # apps are datagram-only
                return
        self._pump_app(hosted)

    def _pump_app(self, hosted: _HostedApp) -> None:
        while (action := hosted.app.next_action()) is not None:
            match action:
                case SendFrom(data=data, destination=dst, source=local):
                    if local not in hosted.addresses:
                        raise ValueError(f"the app sent from {local}, not one of its addresses")
                    self._send_datagram(local, data, dst)
                case _:
                    assert_never(action)
        home = hosted.addresses[0]
        deadline = hosted.app.next_deadline()
        if deadline is not None and deadline != self._timer_at.get(home):
            self._timer_at[home] = deadline
            self._push(deadline, home, _TIMER_DUE)

    def _pump(self, address: Address) -> None:
        """Drain the node after an input, then re-arm its timer at its deadline.

        Sends go on the network as they are drained; events are reported after
        the drain, so a listener that calls back into a node sees this node's
        output already in flight.
        """
        node = self.nodes[address]
        events: list[NodeEvent] = []
        while (action := node.next_action()) is not None:
            match action:
                case SendDatagram(data=data, address=dst):
                    self._send_datagram(address, data, dst)
                case SendStreamMessage(data=data, target=target):
                    self._send_stream(address, data, target)
                case EmitEvent(event=event):
                    events.append(event)
                case _:
                    assert_never(action)
        for event in events:
            if self._keep_trace:
                self.trace.append(record_event(node.node_id, self.now, event))
            for listener in self._listeners:
                listener(address, event, self.now)
        deadline = node.next_deadline()
        if deadline is not None and deadline != self._timer_at.get(address):
            self._timer_at[address] = deadline
            self._push(deadline, address, _TIMER_DUE)

    def trace_lines(self) -> list[str]:
        """The trace as canonical JSON lines (what determinism is checked on)."""
        return [record.to_json() for record in self.trace]
