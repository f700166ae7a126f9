"""The capability directory (RLY-7): what peers advertise, turned into committees (sans-IO).

A client chooses a room's committee relays (RLY-1.1) and its bridges (HT-7.5)
from capability advertisements (CAP-3). `CapabilityDirectory` keeps the ones
this client fetched and feeds both choices:

1. **Entries** (RLY-7.1). An entry is a peer's NodeId, the address a lookup
   returned for it and its advertised `DeviceCapabilities`, kept until
   `entry_ttl` after it was fetched (a peer that stops advertising drops out).
   A peer whose advertisement was not found has no entry.
2. **Rooms** (RLY-7.2). For every room the client is in (`track_room`), the
   directory asks its driver every `refresh_interval` — after
   `retry_interval`, doubling up to `refresh_interval`, while the room has no
   committee — for the peers nearest
   the room key (`FindNear`: a FIND_NODE of `room_key(dht ident)`, then
   each peer's advertisement, back through `near_found`). The committee is
   `select_committee` over the room's near peers with an entry, this node
   excluded (a sender does not ask itself); `SetCommittee` says it whenever
   it changes.
3. **Members** (RLY-7.3). Members the P2P path learns (`members_changed`)
   whose advertisement is unknown are fetched (`FetchAdvert`, back through
   `advertised`); every entry that appears, changes or lapses is told to the
   P2P core (`SetCapacity`), which ranks bridges by it (HT-7.5).

Sans-IO: time is the keyword-only ``now``; the driver does the lookups.
"""

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from railgun_ref.capacity.selection import Candidate
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.relay.committee import CommitteeConfig, room_key, select_committee

#: RLY-7.1: an entry lives this long after its advertisement was fetched, seconds.
DEFAULT_ENTRY_TTL: Final = 600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectoryConfig:
    """RLY-7: parameters of the capability directory (seconds)."""

    refresh_interval: float = 300.0  #: RLY-7.2: a room's near peers are looked up again
    retry_interval: float = 5.0  #: RLY-7.2: first retry while the room has no committee
    entry_ttl: float = DEFAULT_ENTRY_TTL  #: RLY-7.1
    committee: CommitteeConfig = field(default_factory=CommitteeConfig)  #: RLY-1.1

    def __post_init__(self) -> None:
        if not 0 < self.retry_interval <= self.refresh_interval < self.entry_ttl:
            raise LocalProtocolError("0 < retry_interval <= refresh_interval < entry_ttl")


@dataclass(frozen=True, slots=True, kw_only=True)
class NearPeer:
    """One peer a `FindNear` found: its address and advertisement (None: none found)."""

    node_id: NodeId
    address: Address
    capabilities: DeviceCapabilities | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FindNear:
    """RLY-7.2: FIND_NODE `key`, fetch each peer's advertisement, call `near_found`."""

    room_id: bytes
    key: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchAdvert:
    """RLY-7.3: fetch `node_id`'s advertisement (CAP-3.5), call `advertised`."""

    node_id: NodeId
    address: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class SetCommittee:
    """RLY-1.1: the room's committee changed (to `P2PRoomCore.set_committee`)."""

    room_id: bytes
    relays: tuple[tuple[NodeId, Address], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SetCapacity:
    """HT-7.5: a peer's advertisement appeared, changed or lapsed (`P2PRoomCore.set_capacity`)."""

    node_id: NodeId
    capabilities: DeviceCapabilities | None


#: The closed set of what `CapabilityDirectory.next_action` returns (CORE-1.2).
DirectoryAction = FindNear | FetchAdvert | SetCommittee | SetCapacity


class DirectoryCounter(StrEnum):
    """Counters of `CapabilityDirectory`."""

    LOOKUPS = "directory.lookups"  #: FindNear asked
    FETCHES = "directory.fetches"  #: FetchAdvert asked
    NO_ADVERT = "directory.no_advert"  #: a peer found with no advertisement
    COMMITTEE_CHANGED = "directory.committee_changed"
    EXPIRED = "directory.expired"  #: entries that lapsed


@dataclass(slots=True)
class _Entry:
    address: Address
    capabilities: DeviceCapabilities
    expires_at: float


@dataclass(slots=True)
class _Room:
    dht_ident: bytes
    next_lookup: float
    near: tuple[NodeId, ...] = ()
    committee: tuple[tuple[NodeId, Address], ...] = ()
    looking: bool = False
    empty_lookups: int = 0  #: lookups in a row that gave no committee


class CapabilityDirectory:
    """RLY-7: advertisements fetched, committees and capacities derived; a
    `ProtocolCore[DirectoryAction]` (see the module docstring)."""

    def __init__(
        self, node_id: NodeId, *, config: DirectoryConfig | None = None, now: float
    ) -> None:
        self.node_id = node_id
        self.config = config or DirectoryConfig()
        self.counters: Counters[DirectoryCounter] = Counters()
        self._entries: dict[NodeId, _Entry] = {}
        self._rooms: dict[bytes, _Room] = {}
        self._fetching: set[NodeId] = set()
        #: RLY-1.2, REP-5.1: this node's reputation scores of peers; None: capacity alone
        self._reputation: Mapping[NodeId, int] | None = None
        self._actions: deque[DirectoryAction] = deque()
        del now  # nothing is due before the first room

    # ------------------------------------------------------------ queries

    def set_reputation(self, scores: Mapping[NodeId, int] | None) -> None:
        """RLY-1.2, REP-5.1: rank committees with these scores (None: capacity alone); a
        committee that changes is reported as any change is (`SetCommittee`)."""
        view = None if scores is None else dict(scores)
        if view != self._reputation:
            self._reputation = view
            self._recompute_all()

    def capabilities(self, node_id: NodeId) -> DeviceCapabilities | None:
        entry = self._entries.get(node_id)
        return None if entry is None else entry.capabilities

    def committee(self, room_id: bytes) -> tuple[tuple[NodeId, Address], ...]:
        room = self._rooms.get(room_id)
        return () if room is None else room.committee

    # ---------------------------------------------------------- contract

    def next_action(self) -> DirectoryAction | None:
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        times = [r.next_lookup for r in self._rooms.values() if not r.looking]
        times += [e.expires_at for e in self._entries.values()]
        return min(times, default=None)

    def on_timer(self, *, now: float) -> None:
        lapsed = [n for n, e in self._entries.items() if e.expires_at <= now]
        for node_id in lapsed:
            del self._entries[node_id]
            self.counters.inc(DirectoryCounter.EXPIRED)
            self._actions.append(SetCapacity(node_id=node_id, capabilities=None))
        if lapsed:
            self._recompute_all()
        for room_id, room in self._rooms.items():
            if not room.looking and room.next_lookup <= now:
                room.looking = True
                self.counters.inc(DirectoryCounter.LOOKUPS)
                self._actions.append(FindNear(room_id=room_id, key=room_key(room.dht_ident)))

    # ------------------------------------------------------------ inputs

    def track_room(self, room_id: bytes, dht_ident: bytes, *, now: float) -> None:
        """RLY-7.2: find and keep the committee of `room_id` from now on."""
        if room_id not in self._rooms:
            self._rooms[room_id] = _Room(dht_ident=dht_ident, next_lookup=now)

    def untrack_room(self, room_id: bytes) -> None:
        self._rooms.pop(room_id, None)

    def near_found(self, room_id: bytes, peers: Iterable[NearPeer], *, now: float) -> None:
        """RLY-7.2: the peers nearest the room key and their advertisements."""
        near: list[NodeId] = []
        for peer in peers:
            near.append(peer.node_id)
            self._learn(peer.node_id, peer.address, peer.capabilities, now)
        room = self._rooms.get(room_id)
        if room is None:
            return
        room.looking = False
        room.near = tuple(dict.fromkeys(near))
        self._recompute(room_id, room)
        room.empty_lookups = 0 if room.committee else room.empty_lookups + 1
        room.next_lookup = now + self._wait(room.empty_lookups)

    def members_changed(self, members: Iterable[tuple[NodeId, Address]], *, now: float) -> None:
        """RLY-7.3: members the P2P path knows; fetch the advertisements we lack."""
        for node_id, address in members:
            if node_id in self._entries or node_id in self._fetching or node_id == self.node_id:
                continue
            self._fetching.add(node_id)
            self.counters.inc(DirectoryCounter.FETCHES)
            self._actions.append(FetchAdvert(node_id=node_id, address=address))

    def advertised(
        self,
        node_id: NodeId,
        address: Address,
        capabilities: DeviceCapabilities | None,
        *,
        now: float,
    ) -> None:
        """RLY-7.3: the answer to a `FetchAdvert` (None: no advertisement found)."""
        self._fetching.discard(node_id)
        self._learn(node_id, address, capabilities, now)
        self._recompute_all()

    # --------------------------------------------------------- internals

    def _wait(self, empty_lookups: int) -> float:
        """RLY-7.2: refresh_interval; retry_interval doubling per empty lookup meanwhile."""
        if not empty_lookups:
            return self.config.refresh_interval
        retry: float = self.config.retry_interval * 2.0 ** min(empty_lookups - 1, 16)
        return min(retry, self.config.refresh_interval)

    def _learn(
        self,
        node_id: NodeId,
        address: Address,
        capabilities: DeviceCapabilities | None,
        now: float,
    ) -> None:
        if capabilities is None:
            self.counters.inc(DirectoryCounter.NO_ADVERT)
            return
        old = self._entries.get(node_id)
        self._entries[node_id] = _Entry(address, capabilities, now + self.config.entry_ttl)
        if old is None or old.capabilities != capabilities:
            self._actions.append(SetCapacity(node_id=node_id, capabilities=capabilities))

    def _recompute_all(self) -> None:
        for room_id, room in self._rooms.items():
            self._recompute(room_id, room)

    def _recompute(self, room_id: bytes, room: _Room) -> None:
        """RLY-1.1 over the room's near peers with an entry, this node excluded."""
        candidates = [
            Candidate(node_id=n, capabilities=self._entries[n].capabilities)
            for n in room.near
            if n in self._entries and n != self.node_id
        ]
        chosen = select_committee(
            room.dht_ident, candidates, self.config.committee, reputation=self._reputation
        )
        committee = tuple((n, self._entries[n].address) for n in chosen)
        if committee != room.committee:
            room.committee = committee
            self.counters.inc(DirectoryCounter.COMMITTEE_CHANGED)
            self._actions.append(SetCommittee(room_id=room_id, relays=committee))
