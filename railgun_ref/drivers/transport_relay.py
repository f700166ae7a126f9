"""Committee relays in a client's hybrid transport (RLY-7, RLY-8): the glue between cores.

`TransportRelays` belongs to one `HybridTransport`. It holds:

* the device's `SharingBudget` (CAP-7), built from the capabilities this
  client detects and its ``capacitySharing`` configuration; the P2P core's
  bridging (HT-7.6) and the committee relay draw on this one budget;
* the `CapabilityDirectory` (RLY-7): it looks up the peers nearest each
  room's key and their advertisements, and feeds the P2P core the room's
  committee (`set_committee`) and members' capacities (`set_capacity`);
* a `RelayHost` running the `CommitteeRelay` (RLY-8.1), when the detected
  capabilities make this node eligible for the ``relay`` role (CAP-4.2):
  requests arrive on APP topic 4 (`APP_TOPIC_RELAY`); the members' ACK
  frames arrive on the room topic, which the transport's P2P core reads, and
  are handed over with `room_frame`.

Lookups run as tasks of the transport's task group; every result is fed
back with ``now = clock()`` and the `CoreLoop` is poked.
"""

from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, assert_never

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream

from railgun_ref.capacity.budget import SharingBudget
from railgun_ref.capacity.nat import NatType
from railgun_ref.capacity.selection import Role, is_eligible
from railgun_ref.capacity.sharing import CapacitySharing
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.constants import APP_TOPIC_RELAY
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.capabilities import detect_capabilities
from railgun_ref.drivers.relay_host import RelayHost, is_busy
from railgun_ref.drivers.udp import HostStoppedError
from railgun_ref.events import AppMessageReceived
from railgun_ref.relay import committee as rly
from railgun_ref.relay import directory as rd

if TYPE_CHECKING:
    from railgun_ref.drivers.transport import HybridTransport

#: Bandwidth a localhost client assumes, bytes/s (nothing is measured on loopback).
LOOPBACK_BANDWIDTH: Final = 10_000_000
#: RLY-7.2: peers of a FindNear whose advertisements are fetched (the committee pool
#: and a margin for peers without one).
_FETCH: Final = 12


class RelayWiringCounter(StrEnum):
    COMMITTEE_SET = "rly.committee_set"  #: committees given to the P2P core
    NOT_A_RELAY = "rly.not_a_relay"  #: RLY-8.1: a request to a client that does not relay


def loopback_capabilities(transport: "HybridTransport") -> DeviceCapabilities:
    """What a localhost client detects: this machine, loopback bandwidth, an open NAT."""
    return detect_capabilities(
        upload_bandwidth=LOOPBACK_BANDWIDTH,
        download_bandwidth=LOOPBACK_BANDWIDTH,
        nat_type=NatType.OPEN,
        sharing=transport.config.capacity_sharing,
    )


class TransportRelays:
    """RLY-7, RLY-8 in one client's transport (see the module docstring)."""

    def __init__(
        self,
        transport: "HybridTransport",
        *,
        capabilities: DeviceCapabilities | None = None,
        config: rd.DirectoryConfig | None = None,
    ) -> None:
        self.transport = transport
        now = transport.clock()
        self.capabilities = capabilities or loopback_capabilities(transport)
        sharing = CapacitySharing(self.capabilities, transport.config.capacity_sharing, now=now)
        self.budget = SharingBudget(sharing)  #: CAP-7: bridging, relaying
        self.counters: Counters[RelayWiringCounter] = Counters()
        self.directory = rd.CapabilityDirectory(transport.node_id, config=config, now=now)
        self.relay_host: RelayHost | None = (
            RelayHost(transport.host, budget=self.budget, clock=transport.clock, room_topic=False)
            if is_eligible(self.capabilities, Role.RELAY)
            else None
        )
        self._tg: anyio.abc.TaskGroup | None = None

    @property
    def relay(self) -> rly.CommitteeRelay | None:
        """The committee relay this client runs (None: not eligible, RLY-8.1)."""
        return None if self.relay_host is None else self.relay_host.relay

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Pump the directory; serve the relay topic when this node relays (RLY-8.1)."""
        self._tg = tg
        directory: ProtocolCore[rd.DirectoryAction] = self.directory
        self.transport.loop.add(directory, self._directory_action)
        if self.relay_host is not None:
            self.relay_host.busy_sink = self._busy
            tg.start_soon(self.relay_host.run)
        else:  # RLY-9.4: BUSY answers to our requests still arrive on the relay topic
            tg.start_soon(self._read_busy, self.transport.host.app_inbox(APP_TOPIC_RELAY))

    async def _read_busy(self, inbox: MemoryObjectReceiveStream[AppMessageReceived]) -> None:
        async with inbox:
            async for event in inbox:
                if is_busy(event.payload):
                    self._busy(event)
                else:
                    self.counters.inc(RelayWiringCounter.NOT_A_RELAY)

    def _busy(self, event: AppMessageReceived) -> None:
        """RLY-9.4: a committee relay's price for one of our requests: to the P2P core."""
        core = self.transport.p2p
        if core is not None:
            core.relay_busy(event.sender, event.payload, now=self.transport.clock())
            self.transport.loop.poke()

    # ---------------------------------------------------------------- hooks

    def room_opened(self, room_id: bytes, dht_ident: bytes) -> None:
        self.directory.track_room(room_id, dht_ident, now=self.transport.clock())

    def room_left(self, room_id: bytes) -> None:
        self.directory.untrack_room(room_id)

    def members_changed(self, members: list[tuple[NodeId, Address]]) -> None:
        self.directory.members_changed(members, now=self.transport.clock())

    def room_frame(self, event: AppMessageReceived) -> None:
        """RLY-4.1: a frame on the room topic; the relay takes the members' ACKs to it."""
        if self.relay_host is not None:
            self.relay_host.room_frame(event)

    # ---------------------------------------------------------------- plumbing

    def _directory_action(self, action: rd.DirectoryAction) -> None:
        core = self.transport.p2p
        match action:
            case rd.FindNear(room_id=room_id, key=key):
                self._spawn(self._find_near, room_id, key)
            case rd.FetchAdvert(node_id=node_id, address=address):
                self._spawn(self._fetch, node_id, address)
            case rd.SetCommittee(room_id=room_id, relays=relays):
                if core is not None and room_id in core.rooms:
                    self.counters.inc(RelayWiringCounter.COMMITTEE_SET)
                    core.set_committee(room_id, relays)
            case rd.SetCapacity(node_id=node_id, capabilities=capabilities):
                if core is not None:
                    core.set_capacity(node_id, capabilities)
            case _:
                assert_never(action)

    def _spawn(self, func: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        if self._tg is not None:
            self._tg.start_soon(func, *args)

    async def _advert(self, node_id: NodeId) -> DeviceCapabilities | None:
        try:
            advert = await self.transport.host.fetch_capabilities(node_id)
        except HostStoppedError:
            return None
        return None if advert is None else advert.capabilities

    async def _find_near(self, room_id: bytes, key: bytes) -> None:
        """RLY-7.2: the peers nearest the room key, with their advertisements."""
        try:
            outcome = await self.transport.host.find_node(key)
        except HostStoppedError:
            return
        found: list[rd.NearPeer] = []

        async def fetch(node_id: NodeId, address: Address) -> None:
            caps = await self._advert(node_id)
            found.append(rd.NearPeer(node_id=node_id, address=address, capabilities=caps))

        async with anyio.create_task_group() as tg:
            for node_id, address in outcome.closest[:_FETCH]:
                tg.start_soon(fetch, node_id, address)
        found.sort(key=lambda peer: peer.node_id)
        self.directory.set_reputation(self.transport.host.reputation_scores())  # RLY-1.2
        self.directory.near_found(room_id, found, now=self.transport.clock())
        self.transport.loop.poke()

    async def _fetch(self, node_id: NodeId, address: Address) -> None:
        caps = await self._advert(node_id)
        self.directory.advertised(node_id, address, caps, now=self.transport.clock())
        self.transport.loop.poke()
