"""The integration API (as the TypeScript client's ``integration.ts``): a client in a few calls.

::

    from railgun_ref.client import connect, fast_profile

    async with connect(central_url="http://127.0.0.1:8000", data_dir=path,
                       bootstrap=[("127.0.0.1", 9000)], profile=fast_profile()) as alice:
        room = alice.create_room("lobby")              # a closed room (ROOM-2)
        invitation = alice.invite(room, bob_public_key)  # hand it to bob, any channel
        ...                                             # bob: room = bob.accept(invitation)
        await alice.wait_for_members(room, 1)
        message_id = await alice.send(room, "hello")
        async for item in alice:          # MessageReceived, RoomMembershipChanged...
            ...
        call = await alice.call(room)                  # rings members (VOICE-6)
        ...                    # bob: IncomingCall event -> call = await bob.answer(call_id)
        call.participants, call.topology, call.hosts, call.stats(); call.mute()
        await call.leave()                             # the others go on
        alice.remove(room, bob_public_key)             # bob reads nothing sent after this
        alice.state                        # "connected-aws", "connected-p2p", ...

`connect` starts a `HybridTransport` (railgun_ref/drivers/transport.py): a
DHT node and the P2P room path, the central-service session, health checks,
automatic failover and failback, the durable outbox and E2EE. Everything the
client keeps — its identity key, outbox, rooms, ids of messages already
shown — lives in `data_dir`, so a client restarted on the same directory is
the same member and delivers what it had not sent yet.

Rooms are closed: members decide who joins (invitations), and the E2EE
recipients, the central service and the DHT follow the room's signed
membership log. A room is named by its room id (bytes), or by the local name
given at `create_room`/`accept` (text), which never leaves the device. Joining
by a name is refused (ROOM-2.4). Bodies of `send` are text.
"""

import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Unpack

import anyio
import anyio.abc

from railgun_ref.capacity.nat import NatType
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.bootstrap import BootstrapSetup
from railgun_ref.drivers.call_events import (
    CallEnded,
    CallEvent,
    CallPlanChanged,
    CallProblem,
    CallProblemKind,
    CallRefusal,
    CallSignalRefused,
    IncomingCall,
)
from railgun_ref.drivers.calls import Call, CallManager, RoomDirectory
from railgun_ref.drivers.capabilities import advertise_by_default, machine_reader
from railgun_ref.drivers.central_client import Resolver
from railgun_ref.drivers.keystore import load_or_create_identity
from railgun_ref.drivers.peer_cache import PeerCache
from railgun_ref.drivers.stun_server import detect_nat_type
from railgun_ref.drivers.transport import (
    Failure,
    HybridTransport,
    InvitationExpired,
    MembersChange,
    MessageAccepted,
    MessageAcked,
    MessageReceived,
    NoMembersError,
    PathChange,
    ReachChange,
    RoomMembershipChanged,
    StateChange,
    TransportEvent,
)
from railgun_ref.drivers.transport_traversal import TraversalSettings
from railgun_ref.drivers.turn_server import TurnUdpServer
from railgun_ref.drivers.udp import HostStoppedError
from railgun_ref.identity.keys import Identity, node_id_of
from railgun_ref.relay.credentials import CREDENTIAL_SECRET_SIZE
from railgun_ref.transport.p2p import P2PConfig
from railgun_ref.transport.service import HybridTransportConfig, TransportOverrides
from railgun_ref.transport.state import TransportMode, TransportState

__all__ = [
    "Call",
    "CallEnded",
    "CallEvent",
    "CallPlanChanged",
    "CallProblem",
    "CallProblemKind",
    "CallRefusal",
    "CallSignalRefused",
    "Client",
    "Failure",
    "IncomingCall",
    "InvitationExpired",
    "MembersChange",
    "MessageAccepted",
    "MessageAcked",
    "MessageReceived",
    "NoMembersError",
    "PathChange",
    "Profile",
    "ReachChange",
    "RoomMembershipChanged",
    "StateChange",
    "TransportEvent",
    "TransportMode",
    "TransportState",
    "connect",
    "fast_profile",
    "seed_profile",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """The timing knobs of both paths."""

    transport: HybridTransportConfig = field(default_factory=HybridTransportConfig)
    p2p: P2PConfig = field(default_factory=P2PConfig)


def seed_profile(**overrides: Unpack[TransportOverrides]) -> Profile:
    """The default configuration: health check every 30 s, failover after 3 failures (HT-5.1)."""
    return Profile(transport=HybridTransportConfig(**overrides))


def fast_profile(**overrides: Unpack[TransportOverrides]) -> Profile:
    """For localhost demos and tests: health check every 1 s, each failing after 0.5 s
    and followed at once by another while the service is judged up (HT-2.4: failover
    within ~2.5 s even when the address is blackholed), failback after 3 healthy checks
    over 2 s, re-sends every second, probes every second."""
    settings: TransportOverrides = {
        "aws_health_check_interval": 1.0,
        "aws_check_timeout": 0.5,
        "recheck_after_failure": True,
        "failback_min_interval": 2.0,
        "resend_interval": 1.0,
    }
    settings.update(overrides)
    return Profile(
        transport=HybridTransportConfig(**settings),
        p2p=P2PConfig(
            probe_interval=1.0,
            probe_timeout=1.0,
            initial_backoff=0.3,
            max_backoff=2.0,
            lookup_interval=2.0,
            announce_interval=5.0,
            unknown_lookup_interval=1.0,
        ),
    )


#: Seconds between two readings of this machine's capabilities (CAP-3.4).
READING_INTERVAL = 60.0


class Client:
    """A connected messenger client. Make one with `connect`."""

    def __init__(self, transport: HybridTransport, address: Address) -> None:
        self.transport = transport
        self.address = address  #: where its DHT node / P2P path listens
        #: Calls (VOICE-6), started by `connect` unless told not to.
        self.calls: CallManager | None = None
        #: This client's NAT type as given to `connect` or detected there (NAT-6.4).
        self.nat: NatType = NatType.UNKNOWN

    # ---------------------------------------------------------------- calls

    def _call_manager(self) -> CallManager:
        if self.calls is None:
            raise LocalProtocolError("calls are not running on this client")
        return self.calls

    async def call(self, room: str | bytes, *, audio: bool = True, video: bool = False) -> Call:
        """Ring the room's reachable members and start a call (VOICE-6.2); they `answer`.

        ``video=True`` makes a video call: VP8 from every participant, forwarded by
        the call's hosts without decoding (VOICE-7).

        Works with the central service down: signalling travels on the node's own
        channel and is accepted only from members of the room's signed log."""
        return await self._call_manager().place(self.room_id(room), audio=audio, video=video)

    async def answer(
        self, call_id: bytes, *, audio: bool = True, video: bool | None = None
    ) -> Call:
        """Take part in a call an `IncomingCall` event announced (VOICE-6.3).

        A call's media are those it rang with (VOICE-7.2); ``video=False`` on a video
        call joins with the camera off, None (the default) with it on."""
        return await self._call_manager().answer(call_id, audio=audio, video=video)

    async def hang_up(self, call_id: bytes) -> None:
        """Leave a call (VOICE-6.5); the others go on."""
        call = self._call_manager().calls.get(call_id)
        if call is not None:
            await call.leave()

    @property
    def node_id(self) -> NodeId:
        return self.transport.node_id

    @property
    def public_key(self) -> bytes:
        """The Ed25519 key others invite this client with."""
        return self.transport.identity.public_key

    @property
    def state(self) -> str:
        """The transport state (HT-1.2 wire value: ``connected-aws``, ``degraded``...)."""
        return self.transport.state.value

    @property
    def rooms(self) -> frozenset[bytes]:
        """The ids of the rooms this client is a member of."""
        return self.transport.rooms

    @property
    def queued(self) -> int:
        """Messages (membership messages included) accepted but not yet settled: the
        central service has not committed them, nor every member receipted them."""
        return self.transport.outbox_size()

    def room_name(self, room_id: bytes) -> str:
        """The local name given to `room_id` at `create_room`/`accept` ("" if none)."""
        return self.transport.rooms_core.name(room_id)

    def room_id(self, room: str | bytes) -> bytes:
        """A room id, given it or the room's local name (ROOM-2.3: names stay local)."""
        if isinstance(room, bytes):
            return room
        core = self.transport.rooms_core
        found = [r for r in core.rooms() if core.name(r) == room]
        if len(found) != 1:
            raise LocalProtocolError(
                f"no single room named {room!r} here; rooms named by a plain name are"
                " not shared (ROOM-2.4): create_room() and invite, or accept an invitation"
            )
        return found[0]

    async def join(self, room: str | bytes) -> None:
        """Refused: rooms are closed (ROOM-2.4); accept an invitation instead."""
        await self.transport.join(room.encode() if isinstance(room, str) else room)

    def create_room(self, name: str) -> bytes:
        """Create a closed room (this client its creator and first admin); its room id."""
        return self.transport.create_room(name)

    def invite(
        self, room: str | bytes, public_key: bytes, *, ttl: float | None = None, admin: bool = False
    ) -> bytes:
        """An invitation for the client with Ed25519 key `public_key` (any channel carries it)."""
        return self.transport.invite(self.room_id(room), public_key, ttl=ttl, admin=admin)

    def accept(self, invitation: bytes, *, name: str = "") -> bytes:
        """Accept an invitation (RemoteProtocolError if forged, expired or replayed); room id."""
        return self.transport.accept(invitation, name=name)

    def remove(self, room: str | bytes, public_key: bytes) -> None:
        """Remove a member (admins): nothing sent afterwards is encrypted for it."""
        self.transport.remove(self.room_id(room), public_key)

    def leave(self, room: str | bytes) -> None:
        self.transport.leave(self.room_id(room))

    def members(self, room: str | bytes) -> frozenset[NodeId]:
        """The other members of `room` by its signed log (whom `send` encrypts for)."""
        return self.transport.members(self.room_id(room))

    def member_keys(self, room: str | bytes) -> dict[NodeId, bytes]:
        """The other members of `room` with their Ed25519 keys (what `remove` takes)."""
        mine = self.public_key
        keys = self.transport.rooms_core.members(self.room_id(room))
        return {node_id_of(key): key for key in keys if key != mine}

    async def wait_for_members(
        self, room: str | bytes, count: int, *, timeout: float = 20, reachable: bool = False
    ) -> None:
        """Wait until `room` has at least `count` other members (TimeoutError); with
        `reachable`, members the P2P path has found an address for."""
        room_id = self.room_id(room)
        with anyio.fail_after(timeout):
            while len(self._members(room_id, reachable)) < count:
                await anyio.sleep(0.05)

    def reachable_members(self, room: str | bytes) -> frozenset[NodeId]:
        """The other members of `room` whose P2P address (DHT announcement) is known."""
        room_id = self.room_id(room)
        return self.transport.members(room_id) & self.transport.reachable_members(room_id)

    def _members(self, room_id: bytes, reachable: bool) -> frozenset[NodeId]:
        if reachable:
            return self.reachable_members(room_id)
        return self.transport.members(room_id)

    async def send(self, room: str | bytes, text: str) -> bytes:
        """Send `text` to `room`; returns the message id once it is durably accepted."""
        return await self.transport.send(self.room_id(room), text.encode())

    async def next_event(self) -> TransportEvent:
        return await self.transport.events.receive()

    def __aiter__(self) -> AsyncIterator[TransportEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[TransportEvent]:
        try:
            while True:
                yield await self.transport.events.receive()
        except anyio.EndOfStream:
            return


def _with_cache(setup: BootstrapSetup | None, data: Path) -> BootstrapSetup | None:
    """BOOT-4.1: every client keeps its verified bootstrap peers (method 1, cached peers)."""
    if setup is None or setup.cache is not None:
        return setup
    return dataclasses.replace(setup, cache=PeerCache(data / "bootstrap-peers.db"))


async def _start_turn(
    tg: anyio.abc.TaskGroup, reader: Callable[[], DeviceCapabilities], turn: bool | None
) -> TurnUdpServer | None:
    """TURN-2.3: run a TURN server with a fresh credential secret if asked or allowed."""
    if turn is False or (turn is None and not reader().can_act_as_turn):
        return None
    server = TurnUdpServer(users={}, credential_secret=os.urandom(CREDENTIAL_SECRET_SIZE))
    started: TurnUdpServer = await tg.start(server.run)
    return started


def _with_turn(
    reader: Callable[[], DeviceCapabilities], server: TurnUdpServer | None
) -> Callable[[], DeviceCapabilities]:
    if server is None:
        return reader
    # Running TURN declares the node reachable from outside: open NAT (CAP-4.2).
    return lambda: dataclasses.replace(reader(), can_act_as_turn=True, nat_type=NatType.OPEN)


async def _start_calls(
    tg: anyio.abc.TaskGroup, client: Client, *, calls: bool, advertise: bool, turn: bool | None
) -> None:
    """Peer TURN (TURN-2.3), capability advertising (CAP-3.7) and calls (VOICE-6)."""
    transport = client.transport
    reader = machine_reader(nat_type=client.nat)
    server = await _start_turn(tg, reader, turn)
    if advertise:
        _advertise(tg, transport, _with_turn(reader, server))
    if calls:
        client.calls = CallManager(RoomDirectory(transport), transport.emit_event, turn=server)
        await tg.start(client.calls.run)


def _advertise(
    tg: anyio.abc.TaskGroup, transport: HybridTransport, read: Callable[[], DeviceCapabilities]
) -> None:
    """CAP-3.7: one publisher per node. A store-and-forward holder already publishes
    (SF-8.5): feed it fresh readings instead of publishing beside it."""
    sf = transport.store_forward
    holder = sf.host if sf is not None else None
    if holder is None:
        tg.start_soon(advertise_by_default, transport.host, read)
        return

    async def feed() -> None:
        while True:
            fresh, kept = read(), holder.capabilities
            merged = dataclasses.replace(
                fresh,
                upload_bandwidth=kept.upload_bandwidth,
                download_bandwidth=kept.download_bandwidth,
                max_relay_bandwidth=kept.max_relay_bandwidth,
                nat_type=kept.nat_type if fresh.nat_type is NatType.UNKNOWN else fresh.nat_type,
                can_store_messages=kept.can_store_messages,
            )
            if merged != kept:  # CAP-3.4: a change is published now, not at the next round
                holder.capabilities = merged
                with contextlib.suppress(HostStoppedError):
                    await transport.host.advertise_capabilities(merged)
            await anyio.sleep(READING_INTERVAL)

    tg.start_soon(feed)


#: NAT-6.4: the longest a client waits for its NAT detection before it starts, seconds.
NAT_DETECTION_BOUND = 30.0


async def detect_own_nat(stun: Address, *, host: str, allow_public: bool) -> NatType:
    """NAT-6.4: this host's NAT type by RFC 5780 tests against `stun`, from a socket of
    its own on `host`; ``unknown`` if the server cannot be used, never answers, or the
    tests run over `NAT_DETECTION_BOUND`."""
    with anyio.move_on_after(NAT_DETECTION_BOUND):
        try:
            found = await detect_nat_type(stun, local_host=host, allow_public=allow_public)
        except OSError:
            return NatType.UNKNOWN
        # A silent server reads as UDP blocked (RFC 5780); the node may still reach peers.
        return NatType.UNKNOWN if found.nat_type is NatType.UDP_BLOCKED else found.nat_type
    return NatType.UNKNOWN


@asynccontextmanager
async def connect(
    *,
    data_dir: Path | str,
    central_url: str | None = None,
    bootstrap: list[Address] | None = None,
    bootstrap_setup: BootstrapSetup | None = None,
    identity: Identity | None = None,
    keystore: Path | str | None = None,
    profile: Profile | None = None,
    mode: TransportMode | str | None = None,
    resolve: Resolver | None = None,
    origin: str | None = None,
    port: int = 0,
    host: str = "127.0.0.1",
    allow_public: bool = False,
    calls: bool = True,
    advertise_capabilities: bool = True,
    turn: bool | None = None,
    nat: NatType | str = NatType.UNKNOWN,
    stun: Address | None = None,
    traversal: bool = True,
) -> AsyncIterator[Client]:
    """Start a client and yield it; everything stops when the block ends.

    `identity` wins over `keystore` (default: ``data_dir/identity.key``,
    created on first use). `mode` overrides the profile's preferred mode
    (``aws``, ``hybrid``, ``p2p-only``); without `central_url` it is
    ``p2p-only``. `resolve` resolves a central host name (DNS scenario);
    `origin` is the origin to sign when `central_url` is a proxy (CEN-3.2).
    `bootstrap_setup` races the discovery methods it enables for a first
    verified peer (BOOT-4); without a cache of its own it keeps one in
    ``data_dir/bootstrap-peers.db``. The node binds `host`:`port` (IPv4 or
    IPv6); an address off loopback needs `allow_public` (ValueError otherwise).
    Peers learn this client's address from where its datagrams come from, never
    from `host`. With `calls` (the default) the client
    answers call signalling (`Client.call`, `IncomingCall`). With
    `advertise_capabilities` (the default) it detects this machine's
    capabilities and keeps them advertised in the DHT (CAP-3.3, CAP-3.4;
    `drivers.capabilities.advertise_by_default`), which call elections read
    (with store-and-forward on, its holder publishes them, SF-8.5, and keeps
    doing so even without `advertise_capabilities`).
    `turn`: run a peer TURN server for room members (TURN-2.3) — None (the
    default) when the detected capabilities allow it (``canActAsTurn``), True
    or False to decide; a client running one advertises ``canActAsTurn`` and an
    open NAT (forcing it declares the node reachable, as an operator would).
    With `traversal` (the default) the client relays traversal for others and
    connects directly to members it cannot reach when their NATs allow (NAT-6.3),
    planning by `nat`, this client's NAT type as RFC 5780 detection reports it
    (``unknown``: every pair is tried, NAT-3.1). With `stun`, the primary address
    of a STUN server with an alternate address (RFC 5780), and `nat` unknown, the
    client detects its NAT type from `host` before it starts (NAT-6.4): traversal
    plans and its capability adverts use what it found (`Client.nat`).
    """
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    if identity is None:
        identity = load_or_create_identity(Path(keystore or data / "identity.key"), os.urandom)
    chosen = profile or Profile()
    config = chosen.transport
    wanted = TransportMode(mode) if mode is not None else config.preferred_mode
    if central_url is None:
        wanted = TransportMode.P2P_ONLY
    if wanted is not config.preferred_mode:
        config = dataclasses.replace(config, preferred_mode=wanted)
    setup = _with_cache(bootstrap_setup, data)
    nat = NatType(nat)
    if stun is not None and nat is NatType.UNKNOWN:
        nat = await detect_own_nat(stun, host=host, allow_public=allow_public)
    transport = HybridTransport(
        identity,
        data_dir=data,
        central_url=central_url,
        config=config,
        p2p_config=chosen.p2p,
        bootstrap=bootstrap,
        bootstrap_setup=setup,
        resolve=resolve,
        origin=origin,
        host=host,
        port=port,
        allow_public=allow_public,
        traversal=TraversalSettings(nat=nat) if traversal else None,
    )
    async with anyio.create_task_group() as tg:
        address = await tg.start(transport.run)
        client = Client(transport, address)
        client.nat = nat
        await _start_calls(tg, client, calls=calls, advertise=advertise_capabilities, turn=turn)
        try:
            yield client
        finally:
            tg.cancel_scope.cancel()
            if setup is not None and setup is not bootstrap_setup and setup.cache is not None:
                setup.cache.close()  # the cache this function opened
