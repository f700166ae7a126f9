"""The hybrid transport driver: one client's `HybridTransportService` on real IO (HT-x).

`HybridTransport` runs, for one identity, inside one task group:

* a `NodeHost` (DHT + application channel) and a `P2PRoomCore` for the P2P
  path: announcements, member look-ups, APP frames in and out;
* a `CentralClient` session for the central path, reconnected with backoff
  whenever it drops, joined to every room, pushing mailbox deliveries in;
* health checks of the central service (`check_health_waiting_late`) whenever
  the service asks (`CheckHealth`, with its adaptive timeout, HT-2.5), optionally
  resolving a host name with `resolve` (DNS scenario) and dialling any URL, e.g. a
  fault proxy;
* the SQLite outbox (HT-4.4) and a small state database: rooms joined and
  message ids already handed to the application, so a restarted client
  resumes sending what was not settled and never shows a message twice;
* E2EE (ROOM-1.x): `send` seals the text for the room's members — the
  members its membership log counts (ROOM-5.1), never whoever announced
  itself in the DHT; every delivery is opened, its inner message id checked
  against the outer;
* closed rooms (ROOM-2..7): a `RoomsCore` holds each room's secret and
  signed membership log (persisted in the state database); `create_room`,
  `invite`, `accept`, `remove`, `leave` drive it. Its log goes to the
  central service with every JOIN (the membership proof, ROOM-6.3) and to
  the members as E2EE membership messages on every path (ROOM-7.2, 7.4);
  the P2P core admits as peers only the log's members (ROOM-6.1).

Ordering invariants: every input (a frame, a delivery, a timer, an API call)
is fed to the cores with ``now = clock()`` and then the `CoreLoop` is poked,
which drains both cores synchronously (its `run` task fires their timers).
Outbox changes are committed while draining, before any send of
the same input is queued (HT-4.1); a message id is committed to the seen
table before the message goes to the application, and a central delivery
is ACKed only after that (HT-4.3). Central sessions share no mailbox-seq
set: an entry re-pushed by the next session (its ACK was cut, or it was
still buffered when the session ended) reaches the service, which drops it
by message id if it was delivered already, and is ACKed either way, so no
entry is lost and none stays in the mailbox.

Everything that happens is an event on `events` (state changes, path
switches, messages, acknowledgements, failures).
"""

import contextlib
import hashlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Final, assert_never
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from railgun_ref import rooms as closed
from railgun_ref.abuse.admission import SolvePow
from railgun_ref.bootstrap.manifest import AddressKind
from railgun_ref.bootstrap.race import RaceFailed, RaceWon
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.bootstrap import BootstrapSetup, run_bootstrap, udp_address
from railgun_ref.drivers.call_events import ClientCallEvent
from railgun_ref.drivers.central_client import (
    CentralClient,
    CentralError,
    DnsError,
    Resolver,
    check_health_waiting_late,
    connect_central,
)
from railgun_ref.drivers.loop import CoreLoop
from railgun_ref.drivers.outbox_store import SqliteOutboxStore
from railgun_ref.drivers.pow_solver import solve_off_loop
from railgun_ref.drivers.sqlite import Schema, open_database
from railgun_ref.drivers.transport_relay import TransportRelays
from railgun_ref.drivers.transport_sf import TransportStoreForward
from railgun_ref.drivers.transport_traversal import (
    DEFAULT_TRAVERSAL,
    TransportTraversal,
    TraversalSettings,
)
from railgun_ref.drivers.udp import HostStoppedError, NodeHost
from railgun_ref.events import AppMessageReceived, PongReceived
from railgun_ref.identity.e2ee import (
    CONTENT_COVER,
    CONTENT_MEMBERSHIP,
    open_room_message,
    seal_room_message,
)
from railgun_ref.identity.keys import Identity, RandomBytes, node_id_of
from railgun_ref.privacy.padding import wrap_slots
from railgun_ref.rooms.announce import room_announcement
from railgun_ref.rooms.ids import dht_ident_of, require_closed_room_id
from railgun_ref.storeforward import client as sfc
from railgun_ref.storeforward.client import SfClientConfig
from railgun_ref.transport import p2p, service
from railgun_ref.transport.health import FailureLabel, HealthResult
from railgun_ref.transport.outbox import OutboxEntry
from railgun_ref.transport.outbox import Path as DeliveryPath
from railgun_ref.transport.service import (
    HybridTransportConfig,
    HybridTransportService,
    StoreAndForwardConfig,
)
from railgun_ref.transport.state import Central, Reach, TransportMode, TransportState
from railgun_ref.wire import cbor
from railgun_ref.wire.central import MAX_TTL

#: The transport state's migrations: 1 is the joined rooms and the ids already delivered.
_STATE_SCHEMA: Final = Schema(
    name="transport state",
    migrations=(
        """
CREATE TABLE IF NOT EXISTS rooms (room_id BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS seen (message_id BLOB PRIMARY KEY, expires_at REAL NOT NULL);
""",
        # 2: closed rooms (ROOM-2..7). Rows of `rooms` are rooms joined by a plain
        # name: refused at start (ROOM-2.4) and dropped.
        """
CREATE TABLE IF NOT EXISTS room_secrets (
    room_id BLOB PRIMARY KEY, secret BLOB NOT NULL, name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS room_changes (
    room_id BLOB NOT NULL, hash BLOB NOT NULL, change BLOB NOT NULL,
    PRIMARY KEY (room_id, hash)
) WITHOUT ROWID;
""",
        # 3: mailbox keys other members announced (SF-8.1).
        """
CREATE TABLE IF NOT EXISTS mailbox_keys (
    room_id BLOB NOT NULL, member BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (room_id, member)
) WITHOUT ROWID;
""",
    ),
)
#: ROOM-5.3: messages held per room from senders our log does not count (yet).
_MAX_HELD: Final = 64
#: PRIV-6: the largest wrap-table class a client fills (see `_filled_wrap_table`).
_MAX_FILLED_WRAPS: Final = 128
#: P2P sends waiting for the sender task; beyond it they are dropped and counted. A
#: starved process would otherwise queue re-sends without bound (memory, then CPU).
APP_QUEUE_SIZE: Final = 1024
#: Reconnect backoff of the central session, seconds.
_RECONNECT_MIN: Final = 0.2
_RECONNECT_MAX: Final = 5.0


# ------------------------------------------------------------------ counters


def _sf_client_config(sf: StoreAndForwardConfig) -> SfClientConfig:
    """SF-2.1, SF-3.2, SF-2.3: the design's `storeAndForward` fields, in effect."""
    return SfClientConfig(
        enabled=sf.enabled,
        redundancy=sf.redundancy_factor,
        candidate_pool=2 * sf.redundancy_factor,
        default_ttl=sf.default_ttl,
    )


class FailureKind(StrEnum):
    """What failed, in a `Failure` event and the `TransportCounter.FAILURE` label."""

    HEALTH = "health"  #: a health check of the central service failed
    CENTRAL = "central"  #: the central session: connect, resolve, join, send
    OPEN = "open"  #: a delivered blob did not open (ROOM-1.x)
    P2P = "p2p"  #: the P2P path: a send, or a delivery that stalled
    DHT = "dht"  #: bootstrapping the DHT
    ROOMS = "rooms"  #: a membership message or stored room refused (ROOM-2.4, ROOM-7.3)


#: HT-6.7: asks for the observed address one probe interval apart before slowing down
_OBSERVED_RETRIES: Final = 5


def _filled_wrap_table(members: int) -> int | None:
    """PRIV-3.1, PRIV-6: the wrap table to fill, for rooms up to 128 members.

    Larger classes would push a 64 KiB message past the central service's blob limit.
    """
    return wrap_slots(members) if members <= _MAX_FILLED_WRAPS else None


class TransportCounter(StrEnum):
    """Counters of the `HybridTransport` driver (its cores count in their own enums)."""

    FAILURE = "failure"  #: label: the `FailureKind`
    DELIVERED = "delivered"  #: handed to the application; label: the `Path`
    COVER_DROPPED = "cover.dropped"  #: PRIV-4.4: a cover message, dropped after opening
    HEALTH_OK = "health.ok"
    HEALTH_FAILED = "health.failed"
    HEALTH_SKIPPED_BUSY = "health.skipped_busy"  #: a check asked for while the most run
    HEALTH_LATE = "health.late"  #: HT-2.5: a timed-out check answered later (a sample)
    CENTRAL_CONNECTED = "central.connected"
    CENTRAL_SEND_UNCONNECTED = "central.send_unconnected"
    DHT_ANNOUNCE = "dht.announce"
    DHT_ANNOUNCE_UNSTORED = "dht.announce_unstored"  #: no DHT node stored the announcement
    OUTBOX_RESTORED = "outbox.restored"  #: unsettled entries reloaded at start (HT-4.4)
    MEMBERSHIP_SENT = "membership.sent"  #: membership messages sealed (ROOM-7.4)
    MEMBERSHIP_RECEIVED = "membership.received"  #: membership messages opened (ROOM-7.4)
    LEGACY_ROOM_REFUSED = "rooms.legacy_refused"  #: a room joined by name, refused (ROOM-2.4)
    HELD_NOT_MEMBER = "rooms.held_not_member"  #: a message from a non-member held (ROOM-5.3)
    READDRESSED = "p2p.readdressed"  #: announcing the address a peer observes (HT-6.7)
    OBSERVED_UNANSWERED = "p2p.observed_unanswered"  #: a bootstrap peer did not PONG (HT-6.7)
    APP_QUEUE_FULL = "p2p.app_queue_full"  #: a P2P send dropped: the send queue was full


# ------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived:
    room_id: bytes
    message_id: bytes
    sender: NodeId  #: from inside the ciphertext (ROOM-1.1)
    body: bytes
    sent_ms: int
    path: str  #: "central" or "p2p": the first path that brought it
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageAccepted:
    room_id: bytes
    message_id: bytes
    members: frozenset[NodeId]
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageAcked:
    """The central service committed it (member None), or a member's P2P receipt came."""

    message_id: bytes
    path: str
    member: NodeId | None
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChange:
    old: TransportState
    new: TransportState
    reason: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PathChange:
    """The paths in use switched (a mode switch: central <-> P2P <-> both)."""

    central: bool
    p2p: bool
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ReachChange:
    reach: Reach
    reachable: int
    members: int
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MembersChange:
    room_id: bytes
    members: frozenset[NodeId]
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomMembershipChanged:
    """ROOM-5.1: a room's member list (by its signed log) moved; so did the recipients."""

    room_id: bytes
    members: frozenset[NodeId]  #: every member, this node included while it is one
    added: frozenset[NodeId]
    removed: frozenset[NodeId]
    state: str  #: this node's `RoomState` value: member, removed, left...
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class InvitationExpired:
    """An invitation sent or received by this node lapsed unaccepted (ROOM-4.3)."""

    room_id: bytes
    invitee: NodeId
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class _RoomProof:
    """Join `room_id` on the central service with its log (ROOM-6.3), in send order."""

    room_id: bytes
    changes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """Something failed; `kind` says where."""

    kind: FailureKind
    detail: str
    at: float
    label: FailureLabel | None = None


TransportEvent = (
    MessageReceived
    | MessageAccepted
    | MessageAcked
    | StateChange
    | PathChange
    | ReachChange
    | MembersChange
    | RoomMembershipChanged
    | InvitationExpired
    | Failure
    | ClientCallEvent
)


class NoMembersError(LocalProtocolError):
    """`send` to a room whose other members are not known yet (nobody to encrypt for)."""


# ------------------------------------------------------------------ state DB


class _StateStore:
    def __init__(self, path: Path) -> None:
        self._db = open_database(path, _STATE_SCHEMA)

    def legacy_rooms(self) -> list[bytes]:
        """Rooms joined by a plain name before closed rooms (ROOM-2.4); forgotten as read."""
        rows = [bytes(r) for (r,) in self._db.execute("SELECT room_id FROM rooms")]
        self._db.execute("DELETE FROM rooms")
        return rows

    def closed_rooms(self) -> list[tuple[bytes, bytes, str, list[bytes]]]:
        """(room id, secret, name, changes) of every closed room this node knows."""
        out = []
        for room_id, secret, name in self._db.execute("SELECT * FROM room_secrets").fetchall():
            changes = self._db.execute(
                "SELECT change FROM room_changes WHERE room_id=?", (room_id,)
            ).fetchall()
            out.append((bytes(room_id), bytes(secret), str(name), [bytes(c) for (c,) in changes]))
        return out

    def add_room_secret(self, room_id: bytes, secret: bytes, name: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO room_secrets VALUES (?, ?, ?)", (room_id, secret, name)
        )

    def add_room_change(self, room_id: bytes, change: bytes) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO room_changes VALUES (?, ?, ?)",
            (room_id, hashlib.sha256(change).digest(), change),
        )

    def seen(self, *, now: float) -> list[tuple[bytes, float]]:
        self._db.execute("DELETE FROM seen WHERE expires_at <= ?", (now,))
        rows = self._db.execute("SELECT message_id, expires_at FROM seen").fetchall()
        return [(bytes(m), float(e)) for m, e in rows]

    def add_seen(self, message_id: bytes, expires_at: float) -> None:
        self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (message_id, expires_at))

    def mailbox_keys(self) -> list[tuple[NodeId, bytes]]:
        rows = self._db.execute("SELECT member, data FROM mailbox_keys").fetchall()
        return [(NodeId(bytes(member)), bytes(data)) for member, data in rows]

    def add_mailbox_keys(self, room_id: bytes, member: NodeId, data: bytes) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO mailbox_keys VALUES (?, ?, ?)", (room_id, member, data)
        )

    def close(self) -> None:
        self._db.close()


# ------------------------------------------------------------------ driver


class HybridTransport:
    """One client's hybrid transport on localhost. Start with ``await tg.start(t.run)``."""

    def __init__(
        self,
        identity: Identity,
        *,
        data_dir: Path,
        central_url: str | None,
        config: HybridTransportConfig | None = None,
        p2p_config: p2p.P2PConfig | None = None,
        bootstrap: list[Address] | None = None,
        bootstrap_setup: BootstrapSetup | None = None,
        resolve: Resolver | None = None,
        origin: str | None = None,
        health_timeout: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        random_bytes: RandomBytes = os.urandom,
        allow_public: bool = False,
        sf_config: SfClientConfig | None = None,
        traversal: TraversalSettings | None = DEFAULT_TRAVERSAL,
    ) -> None:
        """`host` is the node's bind address (loopback unless `allow_public`,
        `drivers.addresses`). `central_url` is the service's base URL
        (``http://HOST:PORT``; a host name
        needs `resolve`), or a fault proxy's; None runs P2P only. `origin`
        overrides the origin signed at AUTH (needed behind a proxy, CEN-3.2).
        `clock` gives wall-clock seconds (outbox times survive restarts).
        `traversal`: how the client runs NAT traversal with members it cannot reach
        (NAT-6.3; None: not at all, bridges only)."""
        self.identity = identity
        self.config = config or HybridTransportConfig()
        if health_timeout is not None:  # a fixed floor of the check timeout (HT-2.4)
            self.config = replace(self.config, aws_check_timeout=health_timeout)
        if central_url is None and self.config.preferred_mode is not TransportMode.P2P_ONLY:
            raise ValueError("a central_url is needed unless preferred_mode is p2p-only")
        self.p2p_config = p2p_config or p2p.P2PConfig()
        self.central_url = central_url
        self.data_dir = Path(data_dir)
        self.bootstrap_peers = list(bootstrap or [])
        #: BOOT-4: methods raced for a first verified peer before joining the DHT.
        self.bootstrap_setup = bootstrap_setup
        #: BOOT-4.6: the race's outcome once it ran (which method won, why the others failed).
        self.bootstrap_race: RaceWon | RaceFailed | None = None
        self.resolve = resolve
        self.origin = origin
        #: Seconds a central session may take to connect and to answer a request: the
        #: longest a health check may wait (HT-2.5), not its floor, so a slow but healthy
        #: service (or a late event loop) keeps its session.
        self.session_timeout = self.config.check_timeout_ceiling
        self.counters: Counters[TransportCounter] = Counters()
        self._clock = clock
        self._loop = CoreLoop(clock=clock)
        self._random_bytes = random_bytes
        self.host = NodeHost(identity, host=host, port=port, clock=clock, allow_public=allow_public)
        self.service = HybridTransportService(self.config, local_id=identity.node_id, now=clock())
        self.p2p: p2p.P2PRoomCore | None = None
        self.rooms_core = closed.RoomsCore(identity, random_bytes=random_bytes)
        self._outbox_store: SqliteOutboxStore | None = None
        self._state: _StateStore | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._events_in: MemoryObjectSendStream[TransportEvent]
        self.events: MemoryObjectReceiveStream[TransportEvent]
        self._events_in, self.events = anyio.create_memory_object_stream[TransportEvent](math.inf)
        self._app_out: MemoryObjectSendStream[p2p.SendApp] | None = None
        self._central_out: MemoryObjectSendStream[OutboxEntry | _RoomProof] | None = None
        self._central: CentralClient | None = None
        #: health checks overlap: as many as can be waiting for an answer at once (each up
        #: to the ceiling, HT-2.5), started an interval apart or, re-checking (HT-2.4), a
        #: timeout apart
        spacing = min(self.config.check_interval, self.config.check_timeout_floor)
        self._max_checks_in_flight = math.ceil(self.config.check_timeout_ceiling / spacing) + 1
        self._checks_in_flight = 0
        self._next_check_seq = 0
        self._next_check_report = 0
        self._check_results: dict[int, HealthResult | None] = {}
        self._held: dict[bytes, dict[bytes, MessageReceived]] = {}
        self._lookups: set[bytes] = set()
        self._dht_alive = True
        self._p2p_anything = True
        self._reach = Reach.UNKNOWN
        self._paths = (False, False)
        self._stopped = False
        #: SF-8: store-and-forward (holder and member side); None when disabled.
        sf = self.config.store_and_forward
        self.store_forward: TransportStoreForward | None = (
            TransportStoreForward(self, config=sf_config or _sf_client_config(sf))
            if sf.enabled
            else None
        )
        #: RLY-7, RLY-8: the sharing budget, the capability directory, the committee relay.
        self.relays = TransportRelays(self)

        #: NAT-6.3: traversal to unreachable members, and relaying for others; None when off.
        self.traversal: TransportTraversal | None = (
            TransportTraversal(self, traversal) if traversal is not None else None
        )

    # ------------------------------------------------------------ public API

    @property
    def node_id(self) -> NodeId:
        return self.identity.node_id

    @property
    def state(self) -> TransportState:
        return self.service.state

    @property
    def rooms(self) -> frozenset[bytes]:
        """The closed rooms this node is a member of."""
        core = self.rooms_core
        return frozenset(r for r in core.rooms() if core.state(r) is closed.RoomState.MEMBER)

    def members(self, room_id: bytes) -> frozenset[NodeId]:
        """The *other* members of `room_id` by its signed log (whom `send` encrypts for)."""
        mine = self.identity.public_key
        return frozenset(node_id_of(k) for k in self.rooms_core.members(room_id) if k != mine)

    def reachable_members(self, room_id: bytes) -> frozenset[NodeId]:
        """The other members the P2P path has an address for (their DHT records)."""
        return frozenset(self.p2p.members(room_id)) if self.p2p is not None else frozenset()

    @property
    def central_connected(self) -> bool:
        return self._central is not None

    async def join(self, room_id: bytes) -> None:
        """Rooms are closed (ROOM-2.4): nobody joins by an id; `accept` an invitation."""
        require_closed_room_id(room_id)
        raise LocalProtocolError(
            "joining a room by its id is not possible (ROOM-2.4): accept an invitation"
        )

    def create_room(self, name: str) -> bytes:
        """ROOM-2.1, ROOM-3.2: a new closed room with this node as creator; its room id."""
        self._running()
        room_id = self.rooms_core.create_room(name=name, now=self._clock())
        self._loop.poke()
        return room_id

    def invite(
        self, room_id: bytes, invitee: bytes, *, ttl: float | None = None, admin: bool = False
    ) -> bytes:
        """ROOM-4.1: invite the Ed25519 key `invitee`; returns the invitation to hand over."""
        self._running()
        role = closed.Role.ADMIN if admin else closed.Role.MEMBER
        invitation = self.rooms_core.invite(room_id, invitee, now=self._clock(), role=role, ttl=ttl)
        self._loop.poke()
        return invitation

    def accept(self, invitation: bytes, *, name: str = "") -> bytes:
        """ROOM-4.2, ROOM-4.3: check and accept an invitation; returns the room id.

        Raises `RemoteProtocolError` (counted) for a forged, expired, replayed
        or misdirected invitation.
        """
        self._running()
        now = self._clock()
        room_id = self.rooms_core.receive_invitation(invitation, now=now, name=name)
        self.rooms_core.accept(room_id, now=now, name=name)
        self._loop.poke()
        return room_id

    def remove(self, room_id: bytes, member: bytes) -> None:
        """ROOM-3.7: remove the member with Ed25519 key `member` (admins only)."""
        self._running()
        self.rooms_core.remove(room_id, member, now=self._clock())
        self._loop.poke()

    def leave(self, room_id: bytes) -> None:
        """ROOM-3.7: leave the room; the others stop encrypting for this node."""
        self._running()
        self.rooms_core.leave(room_id, now=self._clock())
        self._loop.poke()

    async def send(self, room_id: bytes, body: bytes, *, ttl: float | None = None) -> bytes:
        """Encrypt `body` for the room's known members and accept it (HT-4.1).

        Returns the message id once the message is in the durable outbox.
        Raises `NoMembersError` if no other member of the room is known yet.
        """
        self._running()
        if room_id not in self.rooms:
            require_closed_room_id(room_id)
            raise LocalProtocolError("not a member of this room: create it or accept an invitation")
        keys = self.rooms_core.members(room_id)  # ROOM-5.1: the log's members, nobody else
        members = self.members(room_id)
        if not members:
            raise NoMembersError("this room has no other member yet: invite someone")
        now = self._clock()
        blob, message_id = seal_room_message(
            self.identity,
            room_id=room_id,
            members=keys,
            body=body,
            sent_ms=round(now * 1000),
            random_bytes=self._random_bytes,
            wrap_slots=_filled_wrap_table(len(keys)),
        )
        self.service.send(
            room_id=room_id,
            members=frozenset(members),
            blob=blob,
            message_id=message_id,
            now=now,
            ttl=ttl,
        )
        self._emit(
            MessageAccepted(
                room_id=room_id, message_id=message_id, members=frozenset(members), at=now
            )
        )
        self._loop.poke()
        return message_id

    def outbox_size(self) -> int:
        return len(self.service.outbox)

    # ------------------------------------------------------------------ run

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Address] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; reports the node's address through `task_status`."""
        self._outbox_store = SqliteOutboxStore(self.data_dir / "outbox.sqlite3")
        self._state = _StateStore(self.data_dir / "transport.sqlite3")
        app_out, app_in = anyio.create_memory_object_stream[p2p.SendApp](APP_QUEUE_SIZE)
        central_out, central_in = anyio.create_memory_object_stream[OutboxEntry | _RoomProof](
            math.inf
        )
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                address = await tg.start(self.host.run)
                now = self._clock()
                self.p2p = p2p.P2PRoomCore(
                    self.identity,
                    address,
                    config=self.p2p_config,
                    budget=self.relays.budget,  # CAP-7: bridging shares the device's budget
                    now=now,
                )
                inbox = self.host.app_inbox(self.p2p_config.topic)
                self._restore(now)
                if self.store_forward is not None:
                    await self.store_forward.start(tg, self.data_dir)
                    self.store_forward.restore_mailbox_keys(self._state.mailbox_keys())
                if self.traversal is not None:
                    await self.traversal.start(tg)
                self._app_out = app_out
                self.relays.start(tg)
                tg.start_soon(self._app_sender, app_in)
                tg.start_soon(self._app_receiver, inbox)
                tg.start_soon(self._loop.run)
                if self.bootstrap_peers or self.bootstrap_setup is not None:
                    tg.start_soon(self._bootstrap)
                if self.config.preferred_mode is not TransportMode.P2P_ONLY:
                    tg.start_soon(self._central_loop, central_out, central_in)
                # Pumped from here on: both cores drain after every input (CORE-1.4).
                # Annotated: mypy cannot infer a union type argument from the core alone.
                service_core: ProtocolCore[service.Action] = self.service
                p2p_core: ProtocolCore[p2p.Action] = self.p2p
                rooms_core: ProtocolCore[closed.RoomAction] = self.rooms_core
                self._loop.add(service_core, self._service_action)
                self._loop.add(p2p_core, self._p2p_action)
                self._loop.add(rooms_core, self._rooms_action)
                task_status.started(address)
        finally:
            self._stopped = True
            self._tg = None
            self._app_out = None
            self._central_out = None
            self._events_in.close()
            if self._outbox_store is not None:
                self._outbox_store.close()
            if self._state is not None:
                self._state.close()

    def _running(self) -> tuple[p2p.P2PRoomCore, _StateStore]:
        if self.p2p is None or self._state is None or self._stopped:
            raise LocalProtocolError("the transport is not running")
        return self.p2p, self._state

    def _restore(self, now: float) -> None:
        """HT-4.4: reload the outbox, the rooms and their logs, and the ids already delivered."""
        assert self._outbox_store is not None and self._state is not None
        for room_id in self._state.legacy_rooms():
            self.counters.inc(TransportCounter.LEGACY_ROOM_REFUSED)
            self._emit_failure(
                FailureKind.ROOMS,
                f"room {room_id!r} was joined by a plain name and is refused (ROOM-2.4):"
                " create a room and invite its members",
            )
        for room_id, secret, name, changes in self._state.closed_rooms():
            self.rooms_core.restore(room_id, secret=secret, name=name, changes=changes, now=now)
            if self.rooms_core.state(room_id) is closed.RoomState.MEMBER:
                self._open_p2p_room(room_id, now)
        restored = 0
        for entry in self._outbox_store.load():
            if entry.expires_at > now:
                self.service.outbox.restore(entry)
                restored += 1
        self.counters.inc(TransportCounter.OUTBOX_RESTORED, restored)
        for message_id, expires_at in self._state.seen(now=now):
            self.service.dedup.first_time(message_id, expires_at=expires_at, now=now)

    # ------------------------------------------------------------- plumbing

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @property
    def random_bytes(self) -> RandomBytes:
        return self._random_bytes

    @property
    def loop(self) -> CoreLoop:
        return self._loop

    def persist_mailbox_keys(self, room_id: bytes, member: NodeId, data: bytes) -> None:
        """SF-8.1: keep what a member announced (the state database)."""
        if self._state is not None:
            self._state.add_mailbox_keys(room_id, member, data)

    def store_acked(self, message_id: bytes, member: NodeId, now: float) -> None:
        """SF-8.3: a holder kept our message for `member` (its outbox part is settled)."""
        self._emit(MessageAcked(message_id=message_id, path="store", member=member, at=now))

    def store_failed(self, action: "sfc.StoreFailed") -> None:
        self._emit_failure(
            FailureKind.P2P,
            f"{action.message_id.hex()} to {action.member.hex()[:16]}: store {action.reason}",
        )

    def emit_event(self, event: TransportEvent) -> None:
        """Put `event` on `events` (components beside the transport: calls)."""
        self._emit(event)

    def _emit(self, event: TransportEvent) -> None:
        # Events are best-effort once nobody listens any more (or we stopped).
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._events_in.send_nowait(event)

    def _emit_failure(
        self, kind: FailureKind, detail: str, label: FailureLabel | None = None
    ) -> None:
        self.counters.inc(TransportCounter.FAILURE, label=kind)
        self._emit(Failure(kind=kind, detail=detail, at=self._clock(), label=label))

    def _service_action(self, action: service.Action) -> None:
        now = self._clock()
        match action:
            case service.PersistOutbox(changes=changes):
                assert self._outbox_store is not None
                self._outbox_store.apply(changes)
            case service.CheckHealth(timeout=timeout):
                if self._checks_in_flight >= self._max_checks_in_flight:
                    self.counters.inc(TransportCounter.HEALTH_SKIPPED_BUSY)
                elif self._tg is not None:
                    self._checks_in_flight += 1
                    self._tg.start_soon(self._health_check, self._next_check_seq, timeout)
                    self._next_check_seq += 1
            case service.SendCentral(entry=entry):
                if self._central_out is None:
                    self.counters.inc(TransportCounter.CENTRAL_SEND_UNCONNECTED)
                else:
                    self._central_out.send_nowait(entry)
            case service.SendP2P(entry=entry, members=members):
                core = self._core()
                if entry.room_id not in core.rooms:  # left or removed since: nobody to send to
                    return
                core.send(
                    room_id=entry.room_id,
                    message_id=entry.message_id,
                    blob=entry.blob,
                    expires_at=entry.expires_at,
                    members=members,
                    now=now,
                )
            case service.Deliver():
                self._deliver(action, now)
            case service.StateChanged(old=old, new=new, reason=reason):
                self._emit(StateChange(old=old, new=new, reason=reason, at=now))
                paths = (self.service.machine.uses_central, self.service.machine.uses_p2p)
                if paths != self._paths:
                    self._paths = paths
                    self._emit(PathChange(central=paths[0], p2p=paths[1], at=now))
                self._tell_central_status(now)
            case service.CentralFailure(label=label):
                self._emit_failure(FailureKind.HEALTH, label.value, label)
                self._tell_central_status(now)
            case _:
                assert_never(action)

    def _tell_central_status(self, now: float) -> None:
        """HT-7.3: members learn whether this client reaches the central service."""
        if self.p2p is not None:
            down = self.service.machine.central is Central.DOWN
            self.p2p.set_central_reachable(not down, now=now)

    def _core(self) -> p2p.P2PRoomCore:
        assert self.p2p is not None, "the P2P core exists before any core is pumped"
        return self.p2p

    def _deliver(self, action: service.Deliver, now: float) -> None:
        try:
            opened = open_room_message(self.identity, action.payload, room_id=action.room_id)
        except RemoteProtocolError as exc:
            self._emit_failure(FailureKind.OPEN, f"{action.message_id.hex()}: {exc}")
            return
        if opened.message_id != action.message_id:
            self._emit_failure(FailureKind.OPEN, "inner message id differs from the envelope's")
            return
        assert self._state is not None
        # HT-4.3: remembered durably before the application sees it.
        self._state.add_seen(action.message_id, now + self.config.store_and_forward.default_ttl)
        if opened.content_type == CONTENT_MEMBERSHIP:  # ROOM-7.4: for the rooms core only
            self._membership_received(action.room_id, opened.body, now)
            return
        if opened.content_type == CONTENT_COVER:  # PRIV-4.4: known as cover only once opened
            self.counters.inc(TransportCounter.COVER_DROPPED)
            return
        received = MessageReceived(
            room_id=action.room_id,
            message_id=action.message_id,
            sender=opened.sender_id,
            body=opened.body,
            sent_ms=opened.sent_ms,
            path=action.path.value,
            at=now,
        )
        if opened.sender_key not in self.rooms_core.members(action.room_id):
            # ROOM-5.3: not a member by our log (yet?): held until its ACCEPT arrives.
            held = self._held.setdefault(action.room_id, {})
            if len(held) >= _MAX_HELD:
                held.pop(next(iter(held)))
            held[opened.sender_key + action.message_id] = received
            self.counters.inc(TransportCounter.HELD_NOT_MEMBER)
            return
        self.counters.inc(TransportCounter.DELIVERED, label=action.path)
        self._emit(received)

    def _release_held(self, room_id: bytes) -> None:
        """ROOM-5.3: hand over what senders now counted as members sent before we knew."""
        held = self._held.get(room_id, {})
        members = self.rooms_core.members(room_id)
        for key, received in list(held.items()):
            if key[:32] in members:
                del held[key]
                self.counters.inc(TransportCounter.DELIVERED, label=DeliveryPath(received.path))
                self._emit(received)

    def _p2p_action(self, action: p2p.Action) -> None:
        now = self._clock()
        match action:
            case p2p.SendApp():
                if self._app_out is not None:
                    try:
                        self._app_out.send_nowait(action)
                    except anyio.WouldBlock:  # the P2P core re-sends what is not acknowledged
                        self.counters.inc(TransportCounter.APP_QUEUE_FULL)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        self._app_out = None  # the sender ended with the host: stopping
            case p2p.Delivered():
                self.service.received(
                    message_id=action.message_id,
                    room_id=action.room_id,
                    payload=action.blob,
                    expires_at=action.expires_at,
                    path=DeliveryPath.P2P,
                    now=now,
                )
            case p2p.Acked():
                self.service.p2p_acked(action.message_id, action.member, now=now)
                self._emit(
                    MessageAcked(
                        message_id=action.message_id, path="p2p", member=action.member, at=now
                    )
                )
            case p2p.ReachabilityChanged():
                if action.anything_reachable and not self._p2p_anything and self.store_forward:
                    self.store_forward.back_online()  # SF-8.4: picked up on return
                self._p2p_anything = action.anything_reachable
                self._reach = action.reach
                self._emit(
                    ReachChange(
                        reach=action.reach,
                        reachable=action.reachable,
                        members=action.members,
                        at=now,
                    )
                )
                self._report_reach(now)
            case p2p.DeliveryStalled():
                if self.store_forward is not None and action.reason == "attempts":
                    self.store_forward.delivery_stalled(action.message_id, action.member)
                self._emit_failure(
                    FailureKind.P2P,
                    f"{action.message_id.hex()} to {action.member.hex()[:16]}: {action.reason}",
                )
            case p2p.Announce():
                if self._tg is not None:
                    self._tg.start_soon(self._announce, action.dht_ident, action.value)
            case p2p.LookupMembers():
                if self._tg is not None and action.room_id not in self._lookups:
                    self._lookups.add(action.room_id)
                    self._tg.start_soon(self._lookup, action.room_id, action.dht_ident)
            case SolvePow():
                if self._tg is not None:
                    self._tg.start_soon(self._solve_relay_pow, action)
            case p2p.MembersChanged():
                core = self._core()
                known = [(n, core.member_address(n)) for n in sorted(action.members)]
                self.relays.members_changed([(n, a) for n, a in known if a is not None])
                if self.store_forward is not None:
                    self.store_forward.members_reachable(action.room_id, action.members)
                self._emit(MembersChange(room_id=action.room_id, members=action.members, at=now))
            case _:
                assert_never(action)

    # ----------------------------------------------------------- closed rooms

    def _rooms_action(self, action: closed.RoomAction) -> None:
        now = self._clock()
        match action:
            case closed.PersistRoom(room_id=room_id, secret=secret, name=name):
                assert self._state is not None
                self._state.add_room_secret(room_id, secret, name)
            case closed.PersistChange(room_id=room_id, change=change):
                assert self._state is not None
                self._state.add_room_change(room_id, change)
            case closed.SendChanges(room_id=room_id, changes=changes, to=to):
                self._send_membership(room_id, changes, to, now)
            case closed.DeliverInvitation():
                pass  # `invite` returned it; the application hands it over
            case closed.MembershipChanged():
                self._membership_changed(action, now)
            case closed.InvitationLapsed(room_id=room_id, invitee=invitee):
                self._emit(InvitationExpired(room_id=room_id, invitee=node_id_of(invitee), at=now))
            case _:
                assert_never(action)

    def _open_p2p_room(self, room_id: bytes, now: float) -> None:
        """ROOM-6.1, ROOM-6.2: join the P2P path of a closed room, or update its members."""
        core = self._core()
        members = frozenset(self.rooms_core.members(room_id))
        if self.store_forward is not None:
            self.store_forward.room_opened(
                room_id, self.rooms_core.secret(room_id), self.rooms_core.members(room_id)
            )
        self.relays.room_opened(room_id, dht_ident_of(self.rooms_core.secret(room_id)))
        if room_id in core.rooms:
            core.set_members(room_id, members, now=now)
            return
        secret = self.rooms_core.secret(room_id)
        host, port = core.address
        closed = p2p.ClosedRoom(
            dht_ident=dht_ident_of(secret),
            announcement=room_announcement(
                secret, publisher=self.identity.public_key, host=host, port=port
            ),
            members=members,
        )
        core.join(room_id, now=now, closed=closed)

    def _membership_changed(self, action: closed.MembershipChanged, now: float) -> None:
        if action.state is closed.RoomState.MEMBER:
            self._open_p2p_room(action.room_id, now)
            self._release_held(action.room_id)
        elif self.p2p is not None:
            self.p2p.leave(action.room_id, now=now)
            self.relays.room_left(action.room_id)
            if self.store_forward is not None:
                self.store_forward.room_left(action.room_id)
        self._emit(
            RoomMembershipChanged(
                room_id=action.room_id,
                members=frozenset(node_id_of(k) for k in action.members),
                added=frozenset(node_id_of(k) for k in action.added),
                removed=frozenset(node_id_of(k) for k in action.removed),
                state=action.state.value,
                at=now,
            )
        )

    def _send_membership(
        self, room_id: bytes, changes: tuple[bytes, ...], to: tuple[bytes, ...], now: float
    ) -> None:
        """ROOM-7.2: the log to the central service (JOIN proof) and, sealed, to `to`."""
        # Sent even after leaving: the service merges the log before it refuses the JOIN.
        if self._central_out is not None:
            self._central_out.send_nowait(_RoomProof(room_id=room_id, changes=changes))
        else:
            self.counters.inc(TransportCounter.CENTRAL_SEND_UNCONNECTED)
        # Sealed for everyone concerned, settled by the members still in the log.
        current = set(self.rooms_core.members(room_id))
        members = frozenset(node_id_of(k) for k in to if k in current)
        if not members or room_id not in self._core().rooms:
            return
        blob, message_id = seal_room_message(
            self.identity,
            room_id=room_id,
            members=list(to),
            body=cbor.encode(list(changes)),
            sent_ms=round(now * 1000),
            random_bytes=self._random_bytes,
            content_type=CONTENT_MEMBERSHIP,
        )
        self.counters.inc(TransportCounter.MEMBERSHIP_SENT)
        self.service.send(
            room_id=room_id, members=members, blob=blob, message_id=message_id, now=now, ttl=None
        )

    def _membership_received(self, room_id: bytes, body: bytes, now: float) -> None:
        """ROOM-7.4: merge a member's log; refusals are counted by the rooms core."""
        self.counters.inc(TransportCounter.MEMBERSHIP_RECEIVED)
        try:
            changes = cbor.decode(body)
            if not isinstance(changes, list) or not all(isinstance(c, bytes) for c in changes):
                raise RemoteProtocolError(ErrorCode.MALFORMED, "a membership body is [* change]")
            self.rooms_core.receive_changes(room_id, changes, now=now)
        except RemoteProtocolError as exc:
            self._emit_failure(FailureKind.ROOMS, f"membership message refused: {exc}")

    def _report_reach(self, now: float) -> None:
        anything = self._p2p_anything or self._dht_alive
        self.service.reachability(reach=self._reach, anything_reachable=anything, now=now)

    # ------------------------------------------------------------------ tasks

    async def _health_check(self, seq: int, timeout: float) -> None:
        """One check; checks overlap (a blackholed one does not hold up the next), and
        their results reach the service in the order the checks started. A check that
        timed out waits on for its answer, whose latency the service samples (HT-2.5)."""
        assert self.central_url is not None
        reported = False

        def report(result: HealthResult | None) -> None:
            nonlocal reported
            if not reported:
                reported = True
                self._check_results[seq] = result
                self._report_checks()

        try:
            late = await check_health_waiting_late(
                self.central_url,
                timeout,
                self.config.check_timeout_ceiling,
                report=report,
                resolve=self.resolve,
                clock=self._clock,
            )
            if late is not None:
                self.counters.inc(TransportCounter.HEALTH_LATE)
                self.service.check_answered_late(latency=late, now=self._clock())
        finally:
            self._checks_in_flight -= 1
            report(None)  # cancelled (or failed) before it had a result

    def _report_checks(self) -> None:
        """Hand over finished checks in start order (a cancelled one is skipped)."""
        while self._next_check_report in self._check_results:
            result = self._check_results.pop(self._next_check_report)
            self._next_check_report += 1
            if result is None:
                continue
            self.counters.inc(
                TransportCounter.HEALTH_OK if result.ok else TransportCounter.HEALTH_FAILED
            )
            self.service.health_result(result, now=self._clock())
        self._loop.poke()

    async def _race_for_a_peer(self, setup: BootstrapSetup) -> None:
        """BOOT-4: race the discovery methods; a UDP winner joins the bootstrap addresses."""
        try:
            result, _ = await run_bootstrap(self.host, setup, clock=self._clock)
        except HostStoppedError:
            return
        self.bootstrap_race = result
        if not isinstance(result, RaceWon):
            reasons = ", ".join(sorted({f"{f.method.name}:{f.failure}" for f in result.failures}))
            self._emit_failure(FailureKind.DHT, f"bootstrap race: every method failed ({reasons})")
            return
        winner = result.candidate
        if winner.reached_by is AddressKind.UDP:  # the DHT itself runs over UDP (BOOT-4.8)
            address = udp_address(winner.address)
            if address not in self.bootstrap_peers:
                self.bootstrap_peers.insert(0, address)

    async def _bootstrap(self) -> None:
        if self.bootstrap_setup is not None:
            await self._race_for_a_peer(self.bootstrap_setup)
        if not self.bootstrap_peers:
            return
        for attempt in range(10):
            try:
                outcome = await self.host.bootstrap(self.bootstrap_peers)
            except HostStoppedError:
                return
            if outcome.closest:
                break
            self._emit_failure(FailureKind.DHT, f"bootstrap found nobody (attempt {attempt + 1})")
            await anyio.sleep(min(0.5 * 2**attempt, 5.0))
        # Announce again now that the DHT has peers to store on.
        if self.p2p is not None:
            if not await self._learn_observed_address():
                self.p2p.reannounce(now=self._clock())
            if self.traversal is not None:  # NAT-6.3: the peer the other members joined by
                self.traversal.use_relay(self.bootstrap_peers[0])
            if self.store_forward is not None:
                self.store_forward.back_online()  # SF-8.4: pick up what waited for us
            self._loop.poke()
            tries = 0
            while True:  # HT-6.7: a lost PONG, or a NAT that changed its mapping
                tries += 1
                pause = self.p2p_config.probe_interval if tries <= _OBSERVED_RETRIES else None
                await anyio.sleep(pause or self.p2p_config.announce_interval)
                if await self._learn_observed_address():
                    self._loop.poke()

    async def _learn_observed_address(self) -> bool:
        """HT-6.7: announce where a bootstrap peer sees us (behind a NAT, not our bind
        address); True if the address changed (the rooms were re-announced)."""
        core = self._core()
        for peer in self.bootstrap_peers:
            try:
                outcome = await self.host.ping(peer)
            except (HostStoppedError, ValueError):
                return False
            if not isinstance(outcome, PongReceived):
                self.counters.inc(TransportCounter.OBSERVED_UNANSWERED)
                continue
            observed = outcome.observed
            if observed == core.address:
                return False
            now = self._clock()
            announcements = {
                room_id: room_announcement(
                    self.rooms_core.secret(room_id),
                    publisher=self.identity.public_key,
                    host=observed[0],
                    port=observed[1],
                )
                for room_id in core.rooms
            }
            core.readdress(observed, announcements=announcements, now=now)
            self.counters.inc(TransportCounter.READDRESSED)
            return True
        return False

    async def _announce(self, dht_ident: bytes, value: bytes) -> None:
        try:
            outcome = await self.host.announce_room(dht_ident, value)
        except HostStoppedError:
            return
        self.counters.inc(TransportCounter.DHT_ANNOUNCE)
        if outcome.accepted == 0:
            self.counters.inc(TransportCounter.DHT_ANNOUNCE_UNSTORED)

    async def _lookup(self, room_id: bytes, dht_ident: bytes) -> None:
        try:
            outcome = await self.host.find_room_peers(dht_ident)
        except HostStoppedError:
            return
        finally:
            self._lookups.discard(room_id)
        if self.p2p is None or room_id not in self.p2p.rooms:
            return
        alive = outcome.queries > outcome.failures
        if alive != self._dht_alive:
            self._dht_alive = alive
            self._report_reach(self._clock())
        self.p2p.members_found(room_id, outcome.records, now=self._clock())
        self._loop.poke()

    async def _app_sender(self, queue: MemoryObjectReceiveStream[p2p.SendApp]) -> None:
        async with queue:
            async for action in queue:
                try:
                    await self.host.send_app(action.address, action.topic, action.payload)
                except HostStoppedError:
                    return
                except (ValueError, LocalProtocolError, OSError) as exc:
                    self._emit_failure(FailureKind.P2P, f"send to {action.address}: {exc}")

    async def _solve_relay_pow(self, action: SolvePow) -> None:
        """RLY-9.4: pay a committee relay's price off the loop, then ask it again."""
        solution = await solve_off_loop(action)
        if self.p2p is not None:
            self.p2p.relay_pow_solved(action.token, solution, now=self._clock())
            self._loop.poke()

    async def _app_receiver(self, inbox: MemoryObjectReceiveStream[AppMessageReceived]) -> None:
        async with inbox:
            async for event in inbox:
                if self.p2p is not None:
                    self.p2p.receive(event.sender, event.address, event.payload, now=self._clock())
                    self.relays.room_frame(event)  # RLY-4.1: members' receipts to our relay
                    self._loop.poke()

    # ----------------------------------------------------------- central path

    async def _central_target(self) -> str:
        """The URL to dial: a host name is resolved with `resolve` first (DNS scenario)."""
        assert self.central_url is not None
        parts = urlsplit(self.central_url)
        host = parts.hostname or ""
        if self.resolve is None or host.replace(".", "").isdigit():
            return self.central_url
        with anyio.fail_after(self.session_timeout):
            address = await self.resolve(host)
        netloc = f"{address}:{parts.port}" if parts.port else address
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    async def _central_loop(
        self,
        central_out: MemoryObjectSendStream[OutboxEntry | _RoomProof],
        central_in: MemoryObjectReceiveStream[OutboxEntry | _RoomProof],
    ) -> None:
        """Keep a central session up, reconnecting with backoff whenever it ends."""
        delay = _RECONNECT_MIN
        while True:
            try:
                url = await self._central_target()
                async with connect_central(
                    url,
                    self.identity,
                    timeout=self.session_timeout,
                    origin=self.origin,
                    random_bytes=self._random_bytes,
                ) as client:
                    for room_id in self.rooms:  # ROOM-6.3: every JOIN carries the log
                        await self._join_central(client, room_id, self.rooms_core.changes(room_id))
                    self._central = client
                    self._central_out = central_out
                    delay = _RECONNECT_MIN
                    await self._central_session(client, central_out, central_in)
            except Exception as exc:  # every way a session ends: reconnect
                if isinstance(exc, DnsError):
                    self._emit_failure(FailureKind.CENTRAL, f"resolve failed: {exc!r}", exc.label)
                else:
                    self._emit_failure(FailureKind.CENTRAL, f"session ended: {exc!r}")
            finally:
                self._central = None
                self._central_out = None
            await anyio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX)

    async def _central_session(
        self,
        client: CentralClient,
        central_out: MemoryObjectSendStream[OutboxEntry | _RoomProof],
        central_in: MemoryObjectReceiveStream[OutboxEntry | _RoomProof],
    ) -> None:
        """One authenticated session: send what is unsettled, take deliveries until it ends."""
        self.counters.inc(TransportCounter.CENTRAL_CONNECTED)
        # Whatever is unsettled goes out now on this session (HT-4.2).
        for entry in self.service.outbox.unsettled(now=self._clock()):
            if self.service.machine.uses_central:
                central_out.send_nowait(entry)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._central_sender, client, central_in)
            while True:
                delivery = await client.receive()
                self.service.received(
                    message_id=delivery.message_id,
                    room_id=delivery.room_id,
                    payload=delivery.blob,
                    expires_at=delivery.timestamp_ms / 1000 + delivery.ttl,
                    path=DeliveryPath.CENTRAL,
                    now=self._clock(),
                )
                self._loop.poke()  # delivered (and its id committed) before the ACK
                await client.ack([delivery.seq])

    async def _join_central(
        self, client: CentralClient, room_id: bytes, changes: tuple[bytes, ...]
    ) -> None:
        """ROOM-6.3: JOIN with the room's log; a refusal is reported, the session goes on."""
        try:
            await client.join(room_id, changes)
        except CentralError as exc:
            self._emit_failure(FailureKind.CENTRAL, f"join refused: {exc}")

    async def _central_sender(
        self, client: CentralClient, queue: MemoryObjectReceiveStream[OutboxEntry | _RoomProof]
    ) -> None:
        while True:
            entry = await queue.receive()
            if isinstance(entry, _RoomProof):
                await self._join_central(client, entry.room_id, entry.changes)
                continue
            if entry.message_id not in self.service.outbox:
                continue  # settled meanwhile
            now = self._clock()
            ttl = int(min(MAX_TTL, max(1.0, entry.expires_at - now)))
            try:
                await client.send(entry.room_id, entry.blob, ttl=ttl, message_id=entry.message_id)
            except CentralError as exc:
                self._emit_failure(FailureKind.CENTRAL, f"send refused: {exc}")
                continue
            now = self._clock()
            self.service.central_acked(entry.message_id, now=now)
            if self.p2p is not None:
                # HT-7.4: P2P jobs end, except towards members cut off from the service.
                self.p2p.settled_centrally(
                    room_id=entry.room_id,
                    message_id=entry.message_id,
                    blob=entry.blob,
                    expires_at=entry.expires_at,
                    now=now,
                )
            self._emit(
                MessageAcked(message_id=entry.message_id, path="central", member=None, at=now)
            )
            self._loop.poke()
