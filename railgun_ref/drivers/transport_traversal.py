"""NAT traversal in a client's hybrid transport (NAT-6.3): the glue between the cores.

`TransportTraversal` belongs to one `HybridTransport` and runs spec §20's
cores on the client's node, over the node's one UDP socket (NAT-6.1), so
the mapping a relay observes is the one room frames travel on:

* every client node is a relaying peer (`RelayCore`, NAT-4) for whoever can
  reach it: it answers REGISTER and forwards RELAY from the node's socket;
* once it has joined the DHT, a client registers (`TraversalCore`, NAT-5)
  with the bootstrap peer it asked for its observed address (HT-6.7): a peer
  the other members joined through too, and so one both sides of a pair can
  reach;
* every `check_interval` it looks for members the room path finds
  unreachable (HT-6.4) and starts one attempt per member (again after
  `retry_after`); an attempt that ends on a direct path (DIRECT, REVERSED,
  PUNCHED) moves the member's frames there (`P2PRoomCore.set_direct`); one
  that ends RELAYED (an unpunchable pair, NAT-3.1, or every window missed)
  or FAILED leaves the member to the bridges (HT-6.5, NAT-6.2).

Traversal messages arrive as APP messages on `APP_TOPIC_TRAVERSAL`, already
authenticated by the node; the cores' signed envelopes leave through
`NodeHost.send_datagram`. Every outcome is kept in `finished` and counted.
"""

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Final, assert_never

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream

from railgun_ref.capacity.nat import NatType
from railgun_ref.core.constants import APP_TOPIC_TRAVERSAL
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.udp import HostStoppedError
from railgun_ref.events import AppMessageReceived
from railgun_ref.traversal import messages
from railgun_ref.traversal.punch import (
    Outcome,
    Registered,
    SendDatagram,
    TraversalAction,
    TraversalConfig,
    TraversalCore,
    TraversalFinished,
)
from railgun_ref.traversal.relay import RelayAction, RelayConfig, RelayCore, RelaySend

if TYPE_CHECKING:
    from railgun_ref.drivers.transport import HybridTransport

#: Envelope request ids of the traversal core start at a random 62-bit value (NAT-6.3).
_SEQ_BITS: Final = 62


@dataclass(frozen=True, slots=True, kw_only=True)
class TraversalSettings:
    """How a client runs NAT traversal (NAT-6.3)."""

    #: This client's NAT type (RFC 5780 detection, §13); UNKNOWN plans as punchable (NAT-3.1).
    nat: NatType = NatType.UNKNOWN
    serve_relay: bool = True  #: relay for clients that reach this node (NAT-4)
    check_interval: float = 1.0  #: seconds between looks for unreachable members
    retry_after: float = 30.0  #: seconds before another attempt with the same member
    core: TraversalConfig = field(default_factory=TraversalConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)


DEFAULT_TRAVERSAL: Final = TraversalSettings()


class TraversalWiringCounter(StrEnum):
    STARTED = "traversal.started"  #: attempts started for unreachable members
    FINISHED = "traversal.finished"  #: label: the `Outcome` (either side's)
    DIRECT_PATHS = "traversal.direct_paths"  #: members moved to a direct path
    REGISTERED = "traversal.registered"  #: OBSERVED answers from our relay
    MALFORMED = "traversal.malformed"  #: payloads on the topic that are no traversal message
    NO_CORE = "traversal.no_core"  #: a message for a core this client does not run (yet)


class TransportTraversal:
    """NAT-6.3 in one client's transport (see the module docstring)."""

    def __init__(self, transport: "HybridTransport", settings: TraversalSettings) -> None:
        self.transport = transport
        self.settings = settings
        self.counters: Counters[TraversalWiringCounter] = Counters()
        self.core: TraversalCore | None = None
        self.relay_core = (
            RelayCore(transport.identity, config=settings.relay) if settings.serve_relay else None
        )
        self.finished: list[TraversalFinished] = []  #: every attempt this client took part in
        self._next_try: dict[NodeId, float] = {}

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Take the node's traversal topic and (if serving) pump the relay core."""
        inbox = self.transport.host.app_inbox(APP_TOPIC_TRAVERSAL)
        tg.start_soon(self._receiver, inbox)
        if self.relay_core is not None:
            relay: ProtocolCore[RelayAction] = self.relay_core
            self.transport.loop.add(relay, self._relay_action)
        tg.start_soon(self._watch)

    def use_relay(self, relay: Address) -> None:
        """Register with `relay` (once): from then on attempts coordinate through it."""
        if self.core is not None:
            return
        t = self.transport
        seq = int.from_bytes(t.random_bytes(8), "big") >> (64 - _SEQ_BITS)
        self.core = TraversalCore(
            t.identity,
            relay=relay,
            random_bytes=t.random_bytes,
            nat=self.settings.nat,
            config=self.settings.core,
            seq_start=seq,
        )
        core: ProtocolCore[TraversalAction] = self.core
        t.loop.add(core, self._action)
        self.core.register(now=t.clock())
        t.loop.poke()

    async def _watch(self) -> None:
        while True:
            await anyio.sleep(self.settings.check_interval)
            self.connect_unreachable()

    def connect_unreachable(self) -> None:
        """One attempt with each unreachable member not tried in the last `retry_after`."""
        core, p2p = self.core, self.transport.p2p
        if core is None or core.observed is None or p2p is None:
            return
        now = self.transport.clock()
        for member in sorted(p2p.unreachable_members()):
            if self._next_try.get(member, -math.inf) > now:
                continue
            self._next_try[member] = now + self.settings.retry_after
            self.counters.inc(TraversalWiringCounter.STARTED)
            core.connect(member, now=now)
        self.transport.loop.poke()

    async def _receiver(self, inbox: MemoryObjectReceiveStream[AppMessageReceived]) -> None:
        async with inbox:
            async for event in inbox:
                self._receive(event)
                self.transport.loop.poke()

    def _receive(self, event: AppMessageReceived) -> None:
        try:
            message = messages.decode(event.payload)
        except RemoteProtocolError:
            self.counters.inc(TraversalWiringCounter.MALFORMED)
            return
        now = self.transport.clock()
        to_relay = isinstance(message, messages.Register | messages.Relay)
        if to_relay and self.relay_core is not None:
            self.relay_core.receive(event.sender, message, event.address, now=now)
        elif not to_relay and self.core is not None:
            self.core.receive(event.sender, message, event.address, now=now)
        else:
            self.counters.inc(TraversalWiringCounter.NO_CORE)

    def _send(self, data: bytes, destination: Address) -> None:
        try:
            self.transport.host.send_datagram(data, destination)
        except HostStoppedError:
            return

    def _relay_action(self, action: RelayAction) -> None:
        match action:
            case RelaySend(data=data, destination=destination):
                self._send(data, destination)
            case _:
                assert_never(action)

    def _action(self, action: TraversalAction) -> None:
        match action:
            case SendDatagram(data=data, destination=destination):
                self._send(data, destination)
            case Registered():
                self.counters.inc(TraversalWiringCounter.REGISTERED)
            case TraversalFinished():
                self._finished(action)
            case _:
                assert_never(action)

    def _finished(self, action: TraversalFinished) -> None:
        self.finished.append(action)
        self.counters.inc(TraversalWiringCounter.FINISHED, label=action.outcome)
        self._next_try[action.peer] = action.finished + self.settings.retry_after
        p2p = self.transport.p2p
        if action.direct is not None and p2p is not None:
            self.counters.inc(TraversalWiringCounter.DIRECT_PATHS)
            p2p.set_direct(action.peer, action.direct, now=action.finished)

    def outcomes(self) -> dict[NodeId, Outcome]:
        """The last outcome with each peer (either side's view)."""
        return {f.peer: f.outcome for f in self.finished}
