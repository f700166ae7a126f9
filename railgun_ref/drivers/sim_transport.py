"""The hybrid transport in the discrete-event simulator: N clients, a central service, P2P.

Each `SimClient` is one messenger client made of the real sans-IO cores:
a `HybridTransportService` (health checks, failover, failback, outbox,
dedup) and a `P2PRoomCore` (room delivery between peers, receipts, bridges),
the latter speaking over a simulated `Node`'s application channel
(`Node.send_app` / `AppMessageReceived`) on the `Simulator`'s network, so
P2P frames are signed envelopes on simulated streams with the network's
latency, partitions and stopped nodes. This module is only the wiring: it
routes each core's actions to the other core, to the node or to the
simulated central service, and records what happened.

`SimCentral` stands for the central service (the real one is
`railgun-ref central`; here only its observable behaviour matters): a
health endpoint, an idempotent SEND that is acknowledged once stored, and a
mailbox pushing each stored message to every other member, holding it for
members it cannot reach until they can reach it again. Its reachability
follows a timeline of `FaultWindow`s, one fault at a time:

* ``dns_block``  -- the name does not resolve: checks fail at once with
  ``dns_nxdomain``; the session is cut too (sends and pushes are lost).
* ``ip_block``   -- packets to the address are dropped: checks end in
  ``generic_timeout`` at the check deadline; sends and pushes are lost.
* ``takedown``   -- nothing listens: checks fail at once with
  ``connection_refused``; sends and pushes are lost.
* ``high_latency`` -- everything works, `extra_latency` seconds slower per
  round trip (the 2 s latency threshold of HT-2.2).

A lost SEND is not acknowledged, so the outbox re-sends it (HT-4.2); a
SEND that arrives twice is stored once (CEN-4.3). Whether the fault
started before a packet arrives is judged at the packet's arrival time.

The member list comes from the scenario (`P2PRoomCore.add_members`), not
from the DHT: discovery is not what these scenarios measure, and the DHT has
its own benchmarks. Membership lookups and announcements the core asks for
are counted and otherwise ignored.

Pumping follows the core contract as `drivers/loop.CoreLoop` does, in
virtual time (CORE-1.4): both cores are drained after every input (`_flush`,
dispatching each closed `Action` union with ``match`` and ``assert_never``),
and each client has one simulator timer at the earlier of its two cores'
`next_deadline()`; when it fires both cores get `on_timer` (early is
harmless, CORE-1.3). The cores promise progress: after `on_timer(now=d)`
no core asks for `d` again (for the phi-accrual detector see
`tests/sim/test_sim_failover.py::test_phi_deadline_makes_progress`). A core
that breaks that promise would stop virtual time, so the harness raises
`LocalProtocolError` instead of looping.

Determinism: all randomness comes from the `Simulator`'s seeded generator
and one `random.Random` given here; nothing iterates a hash-ordered set of
ids without sorting it.
"""

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from functools import partial
from typing import Final, assert_never

from railgun_ref.abuse.admission import SolvePow
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.sim import Simulator
from railgun_ref.events import AppMessageReceived, NodeEvent
from railgun_ref.transport import p2p, service
from railgun_ref.transport.health import FailureLabel, HealthResult
from railgun_ref.transport.outbox import OutboxEntry, Path
from railgun_ref.transport.p2p import P2PConfig, P2PRoomCore, RoomMember
from railgun_ref.transport.service import HybridTransportConfig, HybridTransportService
from railgun_ref.transport.state import TransportState

#: Seconds a membership given by the scenario stays valid (longer than any run).
_MEMBERSHIP_TTL: Final = 30 * 24 * 3600.0
#: States in which the P2P path carries the room's traffic.
P2P_STATES: Final = frozenset({TransportState.CONNECTED_P2P, TransportState.DEGRADED})


class SimCentralCounter(StrEnum):
    """Counters of `SimCentral` (the bench's ``central_counters``)."""

    SEND_LOST = "send.lost"  #: a SEND that met a fault on its way
    SEND_DUPLICATE = "send.duplicate"  #: a SEND stored already (CEN-4.3)
    SEND_STORED = "send.stored"
    ACK_LOST = "ack.lost"  #: a SENT that met a fault on its way back
    PUSH_HELD = "push.held"  #: mailbox entries kept for a member out of reach
    PUSH_SENT = "push.sent"


class HarnessCounter(StrEnum):
    """Counters of `SimTransportNetwork`, the wiring itself."""

    APP_OTHER_TOPIC = "app.other_topic"
    CENTRAL_CHECKS = "central.checks"
    OUTBOX_PERSISTED = "outbox.persisted"
    P2P_STALLED = "p2p.stalled"
    P2P_ANNOUNCE = "p2p.Announce"
    P2P_LOOKUP_MEMBERS = "p2p.LookupMembers"
    P2P_MEMBERS_CHANGED = "p2p.MembersChanged"


def schedule(sim: Simulator, at: float, action: Callable[[], None]) -> None:
    """Run `action()` at virtual time `at` (the simulator's scripted-event hook)."""
    sim.at(at, lambda _sim: action())


class CentralFault(Enum):
    """What is wrong with the central service during a `FaultWindow` (module docstring)."""

    DNS_BLOCK = "dns_block"
    IP_BLOCK = "ip_block"
    TAKEDOWN = "takedown"
    HIGH_LATENCY = "high_latency"


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultWindow:
    fault: CentralFault
    start: float  #: absolute virtual time, seconds
    end: float | None = None  #: when the service is back; None: never
    extra_latency: float = 0.0  #: seconds per round trip, for HIGH_LATENCY

    def covers(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass(frozen=True, slots=True, kw_only=True)
class CentralLink:
    """The path from every client to the central service (one way, seconds)."""

    latency: float = 0.04
    jitter: float = 0.02  #: uniform extra delay in [0, jitter)
    dns_rtt: float = 0.01  #: a resolver's answer, for DNS failures
    check_timeout: float = 5.0  #: a health check's deadline (generic_timeout after it)


@dataclass(frozen=True, slots=True)
class AppDelivery:
    """One message handed to a client's application."""

    client: int
    message_id: bytes
    at: float
    path: Path


@dataclass(frozen=True, slots=True)
class StateRecord:
    client: int
    at: float
    old: TransportState
    new: TransportState
    reason: str


@dataclass(frozen=True, slots=True)
class SentRecord:
    sender: int
    at: float


@dataclass(slots=True)
class SimClient:
    index: int
    address: Address
    node_id: NodeId
    service: HybridTransportService
    core: P2PRoomCore
    timer_at: float | None = None
    fired_at: float | None = None  #: when the timer last fired
    flush_scheduled: bool = False


class SimCentral:
    """The central service's observable behaviour, following a fault timeline."""

    def __init__(
        self,
        *,
        rng: random.Random,
        link: CentralLink | None = None,
        windows: tuple[FaultWindow, ...] = (),
    ) -> None:
        self.rng = rng
        self.link = link or CentralLink()
        self.windows: list[FaultWindow] = list(windows)  #: `add_window` adds more at run time
        self.counters: Counters[SimCentralCounter] = Counters()
        #: (sender, message id) already stored: SEND is idempotent (CEN-4.3).
        self.stored: set[tuple[NodeId, bytes]] = set()
        #: member -> messages held for it, in store order.
        self.mailbox: dict[NodeId, list[OutboxEntry]] = {}

    def add_window(self, window: FaultWindow) -> None:
        """Schedule another fault (a scenario may decide it while running)."""
        self.windows.append(window)

    def fault_at(self, t: float) -> FaultWindow | None:
        for window in self.windows:
            if window.covers(t):
                return window
        return None

    def reachable(self, t: float) -> bool:
        window = self.fault_at(t)
        return window is None or window.fault is CentralFault.HIGH_LATENCY

    def one_way(self, t: float) -> float:
        delay = self.link.latency + self.rng.random() * self.link.jitter
        window = self.fault_at(t)
        if window is not None and window.fault is CentralFault.HIGH_LATENCY:
            delay += window.extra_latency / 2
        return delay

    def check(self, t: float) -> HealthResult:
        """The result of a health check started at `t` (its `at` is when it ends)."""
        link = self.link
        window = self.fault_at(t)
        fault = None if window is None else window.fault
        if fault is CentralFault.DNS_BLOCK:
            return HealthResult(at=t + link.dns_rtt, ok=False, label=FailureLabel.DNS_NXDOMAIN)
        if fault is CentralFault.TAKEDOWN:
            rtt = 2 * self.one_way(t)
            return HealthResult(at=t + rtt, ok=False, label=FailureLabel.CONNECTION_REFUSED)
        if fault is CentralFault.IP_BLOCK:
            return HealthResult(
                at=t + link.check_timeout, ok=False, label=FailureLabel.GENERIC_TIMEOUT
            )
        # A check is a TCP handshake plus one HTTP exchange: two round trips.
        latency = self.one_way(t) + self.one_way(t) + self.one_way(t) + self.one_way(t)
        if latency > link.check_timeout:
            return HealthResult(
                at=t + link.check_timeout, ok=False, label=FailureLabel.GENERIC_TIMEOUT
            )
        return HealthResult(at=t + latency, ok=True, latency=latency)


class SimTransportNetwork:
    """N clients in one room, wired to a `Simulator` and a `SimCentral` (module docstring)."""

    def __init__(
        self,
        sim: Simulator,
        central: SimCentral,
        *,
        clients: int,
        config: HybridTransportConfig,
        p2p_config: P2PConfig | None = None,
        room_id: bytes = b"sim-room",
        start_spread: float | None = None,
        rng: random.Random,
    ) -> None:
        """`start_spread`: clients start at uniform times in [0, spread) from now, so their
        health checks are out of phase (default: one check interval)."""
        if clients < 2:
            raise ValueError("a room needs at least two clients")
        self.sim = sim
        self.central = central
        self.config = config
        self.room_id = room_id
        self.rng = rng
        self.counters: Counters[HarnessCounter] = Counters()
        self.deliveries: list[AppDelivery] = []
        self.duplicates_to_app: list[AppDelivery] = []
        self.states: list[StateRecord] = []
        self.failures: Counter[FailureLabel] = Counter()
        self.sent: dict[bytes, SentRecord] = {}
        self._delivered: set[tuple[int, bytes]] = set()
        addresses = sim.spawn(clients)
        self.clients: list[SimClient] = []
        self._by_address: dict[Address, SimClient] = {}
        self._by_node: dict[NodeId, SimClient] = {}
        spread = config.check_interval if start_spread is None else start_spread
        for index, address in enumerate(addresses):
            node = sim.nodes[address]
            start = sim.now + rng.uniform(0, spread)
            service = HybridTransportService(config, local_id=node.node_id, now=start)
            core = P2PRoomCore(node.identity, address, config=p2p_config, now=start)
            client = SimClient(index, address, node.node_id, service, core)
            self.clients.append(client)
            self._by_address[address] = client
            self._by_node[node.node_id] = client
            schedule(sim, start, partial(self._start, client))
        self.members = frozenset(c.node_id for c in self.clients)
        sim.subscribe(self._on_node_event)

    # ------------------------------------------------------------ API

    def client_send(self, index: int, text: bytes) -> bytes:
        """The application of client `index` sends `text` to the room; returns the message id."""
        client = self.clients[index]
        message_id = self.rng.randbytes(16)
        self.sent[message_id] = SentRecord(index, self.sim.now)
        client.service.send(
            room_id=self.room_id,
            members=self.members,
            blob=text,
            message_id=message_id,
            now=self.sim.now,
        )
        self._flush(client)
        return message_id

    def state_of(self, index: int) -> TransportState:
        return self.clients[index].service.state

    # ------------------------------------------------------------ wiring

    def _start(self, client: SimClient) -> None:
        now = self.sim.now
        client.core.join(self.room_id, now=now)
        others = [
            RoomMember(
                node_id=other.node_id,
                public_key=self.sim.nodes[other.address].identity.public_key,
                address=other.address,
                expires_at=now + _MEMBERSHIP_TTL,
            )
            for other in self.clients
            if other is not client
        ]
        client.core.add_members(self.room_id, others, now=now)
        self._flush(client)

    def _on_node_event(self, address: Address, event: NodeEvent, now: float) -> None:
        client = self._by_address.get(address)
        if client is None or not isinstance(event, AppMessageReceived):
            return
        if event.topic != client.core.config.topic:
            self.counters.inc(HarnessCounter.APP_OTHER_TOPIC)
            return
        client.core.receive(event.sender, event.address, event.payload, now=now)
        # Drain later, in an event of its own: the simulator is inside this node's pump now.
        if not client.flush_scheduled:
            client.flush_scheduled = True
            schedule(self.sim, now, partial(self._deferred_flush, client))

    def _deferred_flush(self, client: SimClient) -> None:
        client.flush_scheduled = False
        self._flush(client)

    def _on_timer(self, client: SimClient, at: float) -> None:
        if client.timer_at != at:
            return  # superseded
        client.timer_at = None
        now = self.sim.now
        client.fired_at = now
        client.service.on_timer(now=now)
        client.core.on_timer(now=now)
        self._flush(client)

    def _flush(self, client: SimClient) -> None:
        """Route every pending action of both cores until neither has any, then re-arm."""
        now = self.sim.now
        busy = True
        while busy:
            busy = False
            while (action := client.service.next_action()) is not None:
                busy = True
                self._service_action(client, action, now)
            while (core_action := client.core.next_action()) is not None:
                busy = True
                self._core_action(client, core_action, now)
        deadlines = [
            d
            for d in (client.service.next_deadline(), client.core.next_deadline())
            if d is not None
        ]
        if deadlines:
            deadline = max(min(deadlines), now)
            if deadline <= now and client.fired_at == now:
                # The timer just fired at `now` and a core still asks for `now`: it broke the
                # sans-IO timer contract, and re-arming would stop virtual time for good.
                raise LocalProtocolError(
                    f"client {client.index}: on_timer(now={now}) made no progress"
                )
            if deadline != client.timer_at:
                client.timer_at = deadline
                schedule(self.sim, deadline, partial(self._on_timer, client, deadline))

    def _service_action(self, client: SimClient, action: service.Action, now: float) -> None:
        match action:
            case service.CheckHealth():
                result = self.central.check(now)
                self.counters.inc(HarnessCounter.CENTRAL_CHECKS)
                schedule(self.sim, result.at, partial(self._health, client, result))
            case service.SendCentral(entry=entry):
                self._central_send(client, entry, now)
            case service.SendP2P(entry=entry, members=members):
                client.core.send(
                    room_id=entry.room_id,
                    message_id=entry.message_id,
                    blob=entry.blob,
                    expires_at=entry.expires_at,
                    members=members,
                    now=now,
                )
            case service.Deliver(message_id=message_id, path=path):
                record = AppDelivery(client.index, message_id, now, path)
                key = (client.index, message_id)
                if key in self._delivered:
                    self.duplicates_to_app.append(record)
                else:
                    self._delivered.add(key)
                    self.deliveries.append(record)
            case service.PersistOutbox():
                self.counters.inc(HarnessCounter.OUTBOX_PERSISTED)
            case service.StateChanged(old=old, new=new, at=at, reason=reason):
                self.states.append(StateRecord(client.index, at, old, new, reason))
            case service.CentralFailure(label=label):
                self.failures[label] += 1
            case _:
                assert_never(action)

    def _core_action(self, client: SimClient, action: p2p.Action, now: float) -> None:
        match action:
            case p2p.SendApp(address=address, topic=topic, payload=payload):
                self.sim.call(
                    client.address,
                    lambda n, t: n.send_app(address, topic, payload, now=t),
                )
            case p2p.Delivered(
                room_id=room_id, message_id=message_id, blob=blob, expires_at=expires_at
            ):
                client.service.received(
                    message_id=message_id,
                    room_id=room_id,
                    payload=blob,
                    expires_at=expires_at,
                    path=Path.P2P,
                    now=now,
                )
            case p2p.Acked(message_id=message_id, member=member):
                client.service.p2p_acked(message_id, member, now=now)
            case p2p.ReachabilityChanged(reach=reach, anything_reachable=anything):
                client.service.reachability(reach=reach, anything_reachable=anything, now=now)
            case p2p.DeliveryStalled():
                self.counters.inc(HarnessCounter.P2P_STALLED)
            case p2p.Announce():
                self.counters.inc(HarnessCounter.P2P_ANNOUNCE)  # membership is the scenario's
            case p2p.LookupMembers():
                self.counters.inc(HarnessCounter.P2P_LOOKUP_MEMBERS)
            case p2p.MembersChanged():
                self.counters.inc(HarnessCounter.P2P_MEMBERS_CHANGED)
            case SolvePow():
                pass  # the harness runs no committee relays, so none asks for work
            case _:
                assert_never(action)

    # ------------------------------------------------------------ central path

    def _health(self, client: SimClient, result: HealthResult) -> None:
        client.service.health_result(result, now=self.sim.now)
        if result.ok:
            self._push_mailbox(client)
        self._flush(client)

    def _central_send(self, client: SimClient, entry: OutboxEntry, now: float) -> None:
        central = self.central
        arrival = now + central.one_way(now)
        if not central.reachable(arrival):
            central.counters.inc(SimCentralCounter.SEND_LOST)
            return
        schedule(self.sim, arrival, partial(self._central_store, client, entry))

    def _central_store(self, client: SimClient, entry: OutboxEntry) -> None:
        central, now = self.central, self.sim.now
        key = (client.node_id, entry.message_id)
        if key in central.stored:
            central.counters.inc(SimCentralCounter.SEND_DUPLICATE)
        else:
            central.stored.add(key)
            central.counters.inc(SimCentralCounter.SEND_STORED)
            for member in sorted(entry.members):
                central.mailbox.setdefault(member, []).append(entry)
                self._push_mailbox(self._by_node[member])
        ack_at = now + central.one_way(now)
        if central.reachable(ack_at):
            schedule(self.sim, ack_at, partial(self._central_acked, client, entry.message_id))
        else:
            central.counters.inc(SimCentralCounter.ACK_LOST)

    def _central_acked(self, client: SimClient, message_id: bytes) -> None:
        client.service.central_acked(message_id, now=self.sim.now)
        if message_id not in client.service.outbox:
            client.core.cancel(message_id)  # settled: the mailbox owns delivery now
        self._flush(client)

    def _push_mailbox(self, member: SimClient) -> None:
        """Push what the mailbox holds for `member`, if it can be reached now."""
        central, now = self.central, self.sim.now
        held = central.mailbox.get(member.node_id)
        if not held:
            return
        arrival = now + central.one_way(now)
        if not central.reachable(now) or not central.reachable(arrival):
            central.counters.inc(SimCentralCounter.PUSH_HELD)
            return
        central.mailbox[member.node_id] = []
        for entry in held:
            central.counters.inc(SimCentralCounter.PUSH_SENT)
            schedule(self.sim, arrival, partial(self._central_deliver, member, entry))

    def _central_deliver(self, member: SimClient, entry: OutboxEntry) -> None:
        member.service.received(
            message_id=entry.message_id,
            room_id=entry.room_id,
            payload=entry.blob,
            expires_at=entry.expires_at,
            path=Path.CENTRAL,
            now=self.sim.now,
        )
        self._flush(member)


class Traffic:
    """Chat traffic: each client sends every `interval` seconds (uniform +-50 %) until `until`."""

    def __init__(self, network: SimTransportNetwork, *, interval: float, until: float) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.network = network
        self.interval = interval
        self.until = until  #: absolute virtual time after which nobody sends
        self.sent = 0
        for client in network.clients:
            first = network.sim.now + network.rng.uniform(0, interval)
            schedule(network.sim, first, partial(self._tick, client.index))

    def _tick(self, index: int) -> None:
        network = self.network
        if network.sim.now >= self.until:
            return
        self.sent += 1
        network.client_send(index, b"chat message %d from client %d" % (self.sent, index))
        delay = network.rng.uniform(0.5 * self.interval, 1.5 * self.interval)
        schedule(network.sim, network.sim.now + delay, partial(self._tick, index))
