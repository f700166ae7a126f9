"""The DHT service: Kademlia RPCs, lookups, storage and maintenance (DHT-7/8).

`Dht` is a sans-IO core (`ProtocolCore[DhtAction]`, CORE-1) owned by `Node`.
The node hands it every authenticated datagram sender (`observe`), every DHT
request (`handle_*`), the outcome of every request it sent (`on_response`,
`on_error`, `on_timeout`), and timer ticks, and pulls what the DHT has to say
with `next_action()`: `SendDhtRequest` (the node encodes, signs and tracks it
under the request id the DHT drew) and `EmitDhtEvent`. It keeps no clock and
no socket, and never calls back into the node.

Operations (the design's DHT API, DHT-8) each get a query id and end in one event:
`find_node` -> `LookupFinished`; `get` -> `GetFinished`; `store`,
`announce_room` -> `StoreFinished`; `find_room_peers` is a `get` of the
room key. `bootstrap` pings the given addresses and then looks up the
node's own id (the Kademlia join), ending in `LookupFinished`.

Maintenance: idle buckets are refreshed (DHT-5.4); the original publisher
republishes its records with a fresh seq and expiry (DHT-8.4); holders
replicate what they hold to the k closest contacts they know (DHT-8.5);
records expire (DHT-4.3). Every holder change is reported as
`RecordStored` / `RecordDropped` so a driver can persist it before the
STORED reply leaves (the node queues replies behind events).
"""

import random
from collections import deque
from collections.abc import Container
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Final, assert_never

from railgun_ref.core.constants import (
    DHT_ALPHA,
    DHT_K,
    DHT_MAX_FAILURES,
    MAX_CLOCK_SKEW,
    MAX_DATAGRAM_SIZE,
    MAX_STREAM_MESSAGE_SIZE,
)
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.geometry import KEY_BITS, bucket_index, distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.lookup import DisjointLookup, Finished, Lookup, QueryPeer
from railgun_ref.dht.records import MAX_TTL, Record, check_record, sign_record
from railgun_ref.dht.routing import Contact, Diversity, Observed, RoutingTable
from railgun_ref.dht.storage import PutOutcome, RecordTable, StorageLimits
from railgun_ref.events import (
    GetFinished,
    LookupFinished,
    RecordDropped,
    RecordStored,
    StoreFinished,
)
from railgun_ref.identity.keys import Identity
from railgun_ref.rooms.announce import check_announcement_proof
from railgun_ref.rpc.labels import error_label
from railgun_ref.rpc.requests import Channel, PendingRequest
from railgun_ref.wire.messages import (
    MAX_CONTACTS,
    FindNode,
    FindValue,
    Message,
    Nodes,
    Ping,
    Store,
    Stored,
    StoreStatus,
    Value,
    WireContact,
    contact_size,
)

__all__ = [
    "Dht",
    "DhtAction",
    "DhtConfig",
    "DhtCounter",
    "DhtEvent",
    "EmitDhtEvent",
    "SendDhtRequest",
]

#: Room for the envelope around a reply body (signature, key, headers), bytes.
_ENVELOPE_OVERHEAD: Final = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class DhtConfig:
    """DHT parameters (DHT-9.1 lists them with their defaults)."""

    k: int = DHT_K  #: DHT-5.2: bucket size and replication factor
    alpha: int = DHT_ALPHA  #: DHT-6.1: queries in flight per lookup
    #: DHT-5.3: consecutive failed requests before a contact is dropped
    max_failures: int = DHT_MAX_FAILURES
    slow_after_min: float = 0.25  #: DHT-6.2 floor, seconds
    slow_after_max: float = 2.0  #: DHT-6.2 ceiling, seconds
    slow_after_rtt_factor: float = 3.0  #: slow_after = factor x smoothed RTT within the bounds
    refresh_interval: float = 3600.0  #: DHT-5.4 idle-bucket refresh, seconds
    republish_interval: float = 3600.0  #: DHT-8.4 publisher republish, seconds
    replicate_interval: float = 3600.0  #: DHT-8.5 holder replication, seconds
    record_ttl: float = 24 * 3600.0  #: default lifetime of a published record, seconds
    #: DHT-6.5: lookups over this many disjoint paths (1: plain Kademlia).
    disjoint_paths: int = 1
    #: DHT-8.2: a join's bucket refresh ends once this many of the closest peers it
    #: knows of answered (at most k; k: a full lookup per bucket, Kademlia's literal join).
    join_refresh_k: int = 1
    #: DHT-7.8: holders per get whose truncated VALUE is asked again on a stream (0: never).
    stream_fetches: int = 3
    #: ROOM-6.2: a holder checks a ``room`` record's proof of the room secret on STORE
    #: and refuses one that fails. Off keeps the plain set-valued ``room`` key of DHT-3.4
    #: (the conformance vectors and simulations store arbitrary values under it).
    room_proofs: bool = False
    storage: StorageLimits = field(default_factory=StorageLimits)
    #: DHT-5.5: identities per endpoint and contacts per source group (None: no limits).
    diversity: Diversity | None = field(default_factory=Diversity)

    def __post_init__(self) -> None:
        if self.k < 1 or self.alpha < 1 or self.disjoint_paths < 1:
            raise LocalProtocolError("k, alpha and disjoint_paths must be at least 1")
        if self.join_refresh_k < 1:
            raise LocalProtocolError("join_refresh_k must be at least 1")
        if self.stream_fetches < 0:
            raise LocalProtocolError("stream_fetches must be at least 0")
        if self.k > MAX_CONTACTS:
            raise LocalProtocolError(f"k is at most {MAX_CONTACTS}: a NODES reply names no more")
        if not 0 < self.slow_after_min <= self.slow_after_max:
            raise LocalProtocolError("need 0 < slow_after_min <= slow_after_max")
        for name in ("refresh_interval", "republish_interval", "replicate_interval", "record_ttl"):
            if getattr(self, name) <= 0:
                raise LocalProtocolError(f"{name} must be positive")


class DhtCounter(StrEnum):
    """The DHT's counters (flat names as `Counters.snapshot()` shows them)."""

    EVICTION_CHECKS = "dht.eviction_checks"  #: DHT-5.2 PINGs to a full bucket's oldest
    SERVED_FIND_NODE = "dht.served_find_node"
    SERVED_FIND_VALUE = "dht.served_find_value"
    STORE = "dht.store"  #: STOREs held, labelled by `PutOutcome`
    STORE_ROUNDS = "dht.store_rounds"  #: store/republish queries ended
    JOIN_REFRESH = "dht.join_refresh"  #: buckets refreshed after a join
    REFRESH_DONE = "dht.refresh_done"
    REPLICATED = "dht.replicated"
    REPLICATE_REFUSED = "dht.replicate_refused"
    REPLICATE_FAILED = "dht.replicate_failed"
    REJECTED_RECORD = "dht.rejected_record"  #: records in a VALUE refused, by `ErrorCode`
    #: ROOM-6.2 room records refused on STORE for their proof, by `ErrorCode`
    ROOM_PROOF_REFUSED = "dht.room_proof_refused"
    REFUSED = "dht.refused"  #: our requests refused with ERROR, by `ErrorCode`
    EXPIRED = "dht.expired"
    STREAM_FETCH = "dht.stream_fetch"  #: DHT-7.8 truncated VALUEs asked again on a stream
    STREAM_FETCH_FAILED = "dht.stream_fetch_failed"  #: ... that were refused or timed out
    #: DHT-5.5 contacts kept out of the table, labelled `Observed.REFUSED_*`
    DIVERSITY_REFUSED = "dht.diversity_refused"


@dataclass(frozen=True, slots=True, kw_only=True)
class SendDhtRequest:
    """Send `message` to `address` as request `request_id` (drawn by the DHT).

    The node encodes and signs it at `sent_at`, tracks it (RPC-1.2) and
    reports its outcome back through `on_response` / `on_error` / `on_timeout`.
    `channel` is a datagram except for the stream FIND_VALUE of DHT-7.8.
    """

    request_id: int
    message: Message
    address: Address
    expected_peer: NodeId | None
    sent_at: float
    channel: Channel = Channel.DATAGRAM


#: What the DHT reports: query outcomes and changes to the records it holds.
DhtEvent = LookupFinished | GetFinished | StoreFinished | RecordStored | RecordDropped


@dataclass(frozen=True, slots=True, kw_only=True)
class EmitDhtEvent:
    event: DhtEvent


#: CORE-1.2: the DHT's closed action union.
DhtAction = SendDhtRequest | EmitDhtEvent


class _Kind(Enum):
    FIND_NODE = "find_node"
    GET = "get"
    STORE = "store"
    JOIN = "join"
    REFRESH = "refresh"
    REPUBLISH = "republish"


@dataclass(slots=True)
class _Query:
    query_id: int
    kind: _Kind
    target: bytes
    lookup: Lookup | DisjointLookup
    started_at: float
    wake_at: float | None = None
    failures: int = 0
    found: dict[NodeId, Record] = field(default_factory=dict)
    holders: int = 0  #: peers that returned at least one valid record
    quorum: int = 1
    record: Record | None = None  #: what a store query stores
    storing: set[int] = field(default_factory=set)  #: STORE request ids outstanding
    stores_sent: bool = False  #: the STOREs went out (once: late lookup answers add none)
    accepted: int = 0
    refused: int = 0
    store_failed: int = 0
    done: bool = False
    #: DHT-7.8: holders whose datagram VALUE was truncated, not yet asked on a stream
    truncated: deque[Contact] = field(default_factory=deque)
    fetching: set[int] = field(default_factory=set)  #: stream FIND_VALUE ids outstanding
    fetched: int = 0  #: stream FIND_VALUEs answered
    fetch_failed: int = 0  #: stream FIND_VALUEs refused or timed out


class _StoreEnd(Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    FAILED = "failed"


class _Purpose(Enum):
    LOOKUP = "lookup"
    STORE = "store"
    CHECK = "check"
    BOOTSTRAP = "bootstrap"
    REPLICATE = "replicate"
    FETCH = "fetch"  #: DHT-7.8: the rest of a truncated VALUE, on a stream


@dataclass(frozen=True, slots=True)
class _Request:
    purpose: _Purpose
    query_id: int | None
    peer: NodeId | None


@dataclass(slots=True)
class _Published:
    key_type: KeyType
    ident: bytes
    value: bytes
    ttl: float
    seq: int


class Dht:
    def __init__(
        self,
        identity: Identity,
        *,
        rng: random.Random,
        in_flight: Container[int] = frozenset(),
        config: DhtConfig | None = None,
        now: float = 0.0,
    ) -> None:
        """`rng` draws request ids and refresh targets; a request id is never one
        in `in_flight` (the owning node's requests) nor one of the DHT's own."""
        self.identity = identity
        self.config = config or DhtConfig()
        self.routing = RoutingTable(
            identity.node_id,
            k=self.config.k,
            max_failures=self.config.max_failures,
            now=now,
            diversity=self.config.diversity,
        )
        self.records = RecordTable(self.config.storage)
        self.counters: Counters[DhtCounter] = Counters()
        self._rng = rng
        self._in_flight = in_flight
        self._actions: deque[DhtAction] = deque()
        self._queries: dict[int, _Query] = {}
        self._requests: dict[int, _Request] = {}
        self._published: dict[bytes, _Published] = {}
        self._next_query = 1
        self._srtt: float | None = None
        self._pending_join: int | None = None
        self._bootstrap_outstanding = 0
        self._next_refresh = now + self.config.refresh_interval
        self._next_republish = now + self.config.republish_interval
        self._next_replicate = now + self.config.replicate_interval

    def next_action(self) -> DhtAction | None:
        """CORE-1.2: the next request to send or event to report, oldest first."""
        return self._actions.popleft() if self._actions else None

    def _send(
        self,
        message: Message,
        address: Address,
        peer: NodeId | None,
        now: float,
        channel: Channel = Channel.DATAGRAM,
    ) -> int:
        while True:
            request_id = self._rng.getrandbits(64)
            if request_id not in self._in_flight and request_id not in self._requests:
                break
        self._actions.append(
            SendDhtRequest(
                request_id=request_id,
                message=message,
                address=address,
                expected_peer=peer,
                sent_at=now,
                channel=channel,
            )
        )
        return request_id

    def _emit(self, event: DhtEvent) -> None:
        self._actions.append(EmitDhtEvent(event=event))

    def owns(self, request_id: int) -> bool:
        return request_id in self._requests

    # ------------------------------------------------------------ contacts

    def observe(self, node_id: NodeId, address: Address, *, now: float) -> None:
        """DHT-5.1: an authenticated datagram from `node_id` arrived from `address`."""
        outcome, oldest = self.routing.observe(Contact(node_id=node_id, address=address), now=now)
        if outcome in (Observed.REFUSED_ENDPOINT, Observed.REFUSED_GROUP):
            self.counters.inc(DhtCounter.DIVERSITY_REFUSED, label=outcome)
        if outcome is Observed.CHECK_OLDEST and oldest is not None:
            request_id = self._send(Ping(), oldest.address, oldest.node_id, now)
            self._requests[request_id] = _Request(_Purpose.CHECK, None, oldest.node_id)
            self.counters.inc(DhtCounter.EVICTION_CHECKS)

    def _slow_after(self) -> float:
        cfg = self.config
        if self._srtt is None:
            return cfg.slow_after_max / 2
        return min(
            cfg.slow_after_max, max(cfg.slow_after_min, cfg.slow_after_rtt_factor * self._srtt)
        )

    def _rtt_sample(self, rtt: float) -> None:
        self._srtt = rtt if self._srtt is None else 0.875 * self._srtt + 0.125 * rtt

    # ------------------------------------------------------------ serving

    def _wire_contacts(
        self, target: bytes, exclude: NodeId, budget: int
    ) -> tuple[WireContact, ...]:
        out: list[WireContact] = []
        for contact in self.routing.closest(target, self.config.k, exclude=exclude):
            size = contact_size(contact.address)
            if size is None:
                continue  # not an IP literal: cannot be named on the wire
            if size > budget:
                break
            budget -= size
            out.append((contact.node_id, contact.address))
        return tuple(out)

    def handle_find_node(self, message: FindNode, sender: NodeId, channel: Channel) -> Nodes:
        """DHT-7.2: the k closest contacts to the target this node knows, minus the asker."""
        self.counters.inc(DhtCounter.SERVED_FIND_NODE)
        budget = _channel_limit(channel) - _ENVELOPE_OVERHEAD
        return Nodes(contacts=self._wire_contacts(message.target, sender, budget))

    def handle_find_value(
        self, message: FindValue, sender: NodeId, channel: Channel, *, now: float
    ) -> Value:
        """DHT-7.4: records held under the key that fit, then closer contacts."""
        self.counters.inc(DhtCounter.SERVED_FIND_VALUE)
        budget = _channel_limit(channel) - _ENVELOPE_OVERHEAD
        records = []
        truncated = False
        for record in self.records.get(message.key, now=now):
            size = len(record.encode())
            if size > budget:
                truncated = True
                break
            budget -= size
            records.append(record.to_cbor_value())
        contacts = self._wire_contacts(message.key, sender, budget)
        return Value(records=tuple(records), contacts=contacts, truncated=truncated)

    def handle_store(self, message: Store, sender: NodeId, *, now: float) -> Stored:
        """DHT-7.6: check and hold one record; refusals raise RemoteProtocolError."""
        record = Record.from_cbor_value(message.record)
        check_record(record, now=now)
        if record.key_type is KeyType.ROOM and self.config.room_proofs:
            self._check_room_proof(record)
        self._expire(now)  # DHT-4.3: an expired record neither blocks nor counts
        outcome = self.records.put(record)
        self.counters.inc(DhtCounter.STORE, label=outcome)
        if outcome is not PutOutcome.UNCHANGED:
            self._emit(
                RecordStored(
                    key=record.key, publisher_id=record.publisher_id, record=record.encode()
                )
            )
        return Stored(status=_STORE_STATUS[outcome])

    def _check_room_proof(self, record: Record) -> None:
        """ROOM-6.2: refuse a room record without a valid proof of the room secret.

        The holder recomputes the DHT ident from the announce key the value
        carries and verifies the proof for the record's publisher; it cannot
        check current membership (a removed member still knows the secret).
        """
        try:
            check_announcement_proof(
                record.value, publisher=record.publisher_key, dht_ident=record.ident
            )
        except RemoteProtocolError as exc:
            self.counters.inc(DhtCounter.ROOM_PROOF_REFUSED, label=error_label(exc.code))
            raise

    # ------------------------------------------------------------ API

    def _lookup(
        self, target: bytes, seeds: list[Contact], *, k: int | None = None
    ) -> Lookup | DisjointLookup:
        """A lookup for `target` that ends once the `k` (default: the config's k) closest
        peers it knows of answered (DHT-6.3)."""
        cfg = self.config
        if cfg.disjoint_paths > 1:
            return DisjointLookup(
                target,
                seeds,
                local_id=self.identity.node_id,
                paths=cfg.disjoint_paths,
                k=k or cfg.k,
                alpha=cfg.alpha,
                slow_after=self._slow_after(),
            )
        return Lookup(
            target,
            seeds,
            local_id=self.identity.node_id,
            k=k or cfg.k,
            alpha=cfg.alpha,
            slow_after=self._slow_after(),
        )

    def _seeds(self, target: bytes) -> list[Contact]:
        """DHT-6.3: a lookup starts from the 2k known contacts nearest `target`.

        Seeds beyond the k nearest are asked only if nearer ones fail, so a lookup
        whose k nearest known contacts all died at once (a crashed replica set, not
        yet noticed) goes on with the next ones instead of running dry.
        """
        return self.routing.closest(target, 2 * self.config.k)

    def _new_query(
        self,
        kind: _Kind,
        target: bytes,
        now: float,
        *,
        seeds: bool = True,
        refresh_k: int | None = None,
    ) -> _Query:
        query = _Query(
            query_id=self._next_query,
            kind=kind,
            target=target,
            lookup=self._lookup(target, self._seeds(target) if seeds else [], k=refresh_k),
            started_at=now,
        )
        self._next_query += 1
        self._queries[query.query_id] = query
        return query

    def find_node(self, peer_id: bytes, *, now: float) -> int:
        """DHT operation `findNode(peerId)`: the k closest nodes to `peer_id` that answered."""
        query = self._new_query(_Kind.FIND_NODE, peer_id, now)
        self._drive(query, now)
        return query.query_id

    def get(self, key: bytes, *, now: float, quorum: int = 1) -> int:
        """DHT operation `get(key)`: valid records under `key` (newest per publisher).

        The lookup stops once `quorum` peers returned valid records; with a
        quorum above the number of holders it runs to completion, which is what
        set-valued keys (rooms) use to merge every member's announcement.
        """
        query = self._new_query(_Kind.GET, key, now)
        query.quorum = max(1, quorum)
        for record in self.records.get(key, now=now):
            query.found[record.publisher_id] = record
        self._drive(query, now)
        return query.query_id

    def store(
        self,
        key_type: KeyType,
        ident: bytes,
        value: bytes,
        *,
        now: float,
        ttl: float | None = None,
    ) -> int:
        """DHT operation `store(key, value)`: sign a record as this node, put it on the k closest.

        The record's seq is the publish time in milliseconds (strictly
        increasing per key), so a restarted publisher still supersedes itself.
        """
        key = derive_key(key_type, ident)
        ttl = self.config.record_ttl if ttl is None else ttl
        if not 0 < ttl <= MAX_TTL - MAX_CLOCK_SKEW:
            raise LocalProtocolError(f"ttl must be in (0, {MAX_TTL - MAX_CLOCK_SKEW}] seconds")
        previous = self._published.get(key)
        seq = max(round(now * 1000), previous.seq + 1 if previous else 0)
        self._published[key] = _Published(key_type, ident, value, ttl, seq)
        return self._start_store(key, now, _Kind.STORE)

    def _start_store(self, key: bytes, now: float, kind: _Kind) -> int:
        published = self._published[key]
        record = sign_record(
            self.identity,
            key_type=published.key_type,
            ident=published.ident,
            seq=published.seq,
            expires_ms=round((now + published.ttl) * 1000),
            value=published.value,
        )
        query = self._new_query(kind, key, now)
        query.record = record
        self._drive(query, now)
        return query.query_id

    def announce_room(self, room_id: bytes, *, now: float, value: bytes = b"") -> int:
        """DHT operation `announceRoom(roomId)`: add this node's signed entry to the room's set."""
        return self.store(KeyType.ROOM, room_id, value, now=now)

    def find_room_peers(self, room_id: bytes, *, now: float) -> int:
        """DHT operation `findRoomPeers(roomId)`: every member announcement (a full lookup)."""
        return self.get(derive_key(KeyType.ROOM, room_id), now=now, quorum=self.config.k)

    def bootstrap(self, addresses: list[Address], *, now: float) -> int:
        """Join: ping `addresses` (ids unknown), then look up our own id. Returns the query id."""
        query_id = self._next_query
        self._next_query += 1
        self._pending_join = query_id
        self._bootstrap_outstanding = 0
        for address in addresses:
            request_id = self._send(Ping(), address, None, now)
            self._requests[request_id] = _Request(_Purpose.BOOTSTRAP, query_id, None)
            self._bootstrap_outstanding += 1
        if not addresses:
            self._start_join(now)
        return query_id

    def _start_join(self, now: float) -> None:
        if self._pending_join is None:
            return
        query = _Query(
            query_id=self._pending_join,
            kind=_Kind.JOIN,
            target=self.identity.node_id,
            lookup=self._lookup(self.identity.node_id, self._seeds(self.identity.node_id)),
            started_at=now,
        )
        self._pending_join = None
        self._queries[query.query_id] = query
        self._drive(query, now)

    def _refresh_beyond(self, nearest: NodeId, now: float) -> None:
        """Kademlia §2.3 join: refresh every bucket further away than our nearest neighbour.

        DHT-8.2: each refresh is a lookup that ends once the `join_refresh_k` closest
        peers it knows of answered, all of them in that bucket once it reaches its
        subtree, so the bucket gains contacts at a few queries instead of a full lookup."""
        start = bucket_index(self.identity.node_id, nearest)
        if start is None:
            return
        refresh_k = min(self.config.join_refresh_k, self.config.k)
        for index in range(start + 1, KEY_BITS):
            target = self.routing.random_id_in_bucket(index, self._rng)
            self.counters.inc(DhtCounter.JOIN_REFRESH)
            query = self._new_query(_Kind.REFRESH, target, now, refresh_k=refresh_k)
            self._drive(query, now)

    # ------------------------------------------------------------ driving lookups

    def _drive(self, query: _Query, now: float) -> None:
        if query.done:
            return
        while True:
            step = query.lookup.next(now=now)
            if isinstance(step, QueryPeer):
                contact = step.contact
                message: Message = (
                    FindValue(key=query.target)
                    if query.kind is _Kind.GET
                    else FindNode(target=query.target)
                )
                request_id = self._send(message, contact.address, contact.node_id, now)
                self._requests[request_id] = _Request(
                    _Purpose.LOOKUP, query.query_id, contact.node_id
                )
                continue
            if isinstance(step, Finished):
                query.wake_at = None
                self._lookup_done(query, now)
            else:
                query.wake_at = step.until
            return

    def _lookup_done(self, query: _Query, now: float) -> None:
        lookup = query.lookup
        closest = lookup.closest_succeeded()
        hops = lookup.hops_to(closest[0].node_id) if closest else 0
        if query.kind in (_Kind.STORE, _Kind.REPUBLISH):
            if not query.stores_sent:
                query.stores_sent = True
                self._store_phase(query, closest, now)
            return
        if query.fetching:
            return  # DHT-7.8: a get ends once its stream FIND_VALUEs have ended too
        query.done = True
        del self._queries[query.query_id]
        self.routing.touch(query.target, now=now)
        if query.kind is _Kind.JOIN and closest:
            self._refresh_beyond(closest[0].node_id, now)
        if query.kind is _Kind.GET:
            records = tuple(query.found[p].encode() for p in sorted(query.found))
            self._emit(
                GetFinished(
                    query_id=query.query_id,
                    key=query.target,
                    records=records,
                    found=bool(records),
                    queries=lookup.queries,
                    failures=query.failures,
                    hops=hops or 0,
                    started_at=query.started_at,
                    duration=now - query.started_at,
                )
            )
        elif query.kind in (_Kind.FIND_NODE, _Kind.JOIN):
            self._emit(
                LookupFinished(
                    query_id=query.query_id,
                    target=query.target,
                    closest=tuple((c.node_id, c.address) for c in closest),
                    queries=lookup.queries,
                    failures=query.failures,
                    late_answers=lookup.late_answers,
                    hops=hops or 0,
                    started_at=query.started_at,
                    duration=now - query.started_at,
                    peers=tuple(lookup.peer_table()),
                )
            )
        else:
            self.counters.inc(DhtCounter.REFRESH_DONE)

    def _store_phase(self, query: _Query, closest: list[Contact], now: float) -> None:
        record = query.record
        assert record is not None
        targets = closest[: self.config.k]
        own_distance = distance(self.identity.node_id, record.key)
        if len(targets) < self.config.k or own_distance < distance(targets[-1].node_id, record.key):
            # DHT-8.1: the publisher is itself among the k closest: it holds a copy too,
            # if it is one the other holders would accept (DHT-3.3/3.4).
            try:
                check_record(record, now=now)
                outcome = self.records.put(record)
                if outcome is not PutOutcome.UNCHANGED:
                    self._emit(
                        RecordStored(
                            key=record.key, publisher_id=record.publisher_id, record=record.encode()
                        )
                    )
                query.accepted += 1
            except RemoteProtocolError:
                query.refused += 1
        for contact in targets:
            request_id = self._send(
                Store(record=record.to_cbor_value()), contact.address, contact.node_id, now
            )
            self._requests[request_id] = _Request(_Purpose.STORE, query.query_id, contact.node_id)
            query.storing.add(request_id)
        self._maybe_store_done(query, now)

    def _maybe_store_done(self, query: _Query, now: float) -> None:
        if query.storing or query.done:
            return
        query.done = True
        self._queries.pop(query.query_id, None)
        self.counters.inc(DhtCounter.STORE_ROUNDS)
        if query.kind is _Kind.STORE:
            self._emit(
                StoreFinished(
                    query_id=query.query_id,
                    key=query.target,
                    accepted=query.accepted,
                    refused=query.refused,
                    failed=query.store_failed,
                    started_at=query.started_at,
                    duration=now - query.started_at,
                )
            )

    # ------------------------------------------------------------ outcomes

    def on_response(
        self, request: PendingRequest, sender: NodeId, message: Message, *, now: float
    ) -> None:
        """A response to one of our requests arrived (already matched and authenticated)."""
        entry = self._requests.pop(request.request_id, None)
        if entry is None:
            return
        self._rtt_sample(now - request.sent_at)
        match entry.purpose:
            case _Purpose.CHECK:
                self.routing.check_result(sender, alive=True, now=now)
            case _Purpose.BOOTSTRAP:
                join = self._queries.get(entry.query_id or 0)
                if join is not None and not join.done:
                    # A later bootstrap answer joins the running join lookup.
                    join.lookup.add_seeds([Contact(node_id=sender, address=request.address)])
                    self._drive(join, now)
                self._bootstrap_ended(now, answered=True)
            case _Purpose.REPLICATE:
                self.counters.inc(DhtCounter.REPLICATED)
            case _Purpose.STORE:
                self._store_ended(entry, request.request_id, _StoreEnd.ACCEPTED, now)
            case _Purpose.LOOKUP:
                self._lookup_response(entry, request.address, message, now)
            case _Purpose.FETCH:
                self._fetch_ended(entry, request.request_id, message, now)

    def _bootstrap_ended(self, now: float, *, answered: bool) -> None:
        """One bootstrap PING ended: join on the first answer, or when none is left."""
        self._bootstrap_outstanding -= 1
        if answered or self._bootstrap_outstanding <= 0:
            self._start_join(now)

    def _store_ended(self, entry: _Request, request_id: int, end: _StoreEnd, now: float) -> None:
        """One STORE of a store query ended: accepted, refused or failed (no answer)."""
        query = self._queries.get(entry.query_id or 0)
        if query is None:
            return
        query.storing.discard(request_id)
        match end:
            case _StoreEnd.ACCEPTED:
                query.accepted += 1
            case _StoreEnd.REFUSED:
                query.refused += 1
            case _StoreEnd.FAILED:
                query.store_failed += 1
            case _:
                assert_never(end)
        self._maybe_store_done(query, now)

    def _lookup_response(
        self, entry: _Request, address: Address, message: Message, now: float
    ) -> None:
        query = self._queries.get(entry.query_id or 0)
        if query is None or entry.peer is None:
            return
        contacts: tuple[WireContact, ...] = ()
        if isinstance(message, Nodes | Value):
            contacts = message.contacts
        closer = [Contact(node_id=n, address=a) for n, a in contacts]
        query.lookup.on_success(entry.peer, closer, now=now)
        if isinstance(message, Value) and query.kind is _Kind.GET:
            if message.truncated:
                query.truncated.append(Contact(node_id=entry.peer, address=address))
                self._fetch_more(query, now)
            if self._merge(query, message, now):
                query.holders += 1
                if query.holders >= query.quorum:
                    query.lookup.finish()
        self._drive(query, now)

    def _merge(self, query: _Query, message: Value, now: float) -> int:
        """DHT-8.3: keep the newest valid record per publisher; how many were valid."""
        valid = 0
        for item in message.records:
            try:
                record = Record.from_cbor_value(item)
                check_record(record, now=now, key=query.target)
            except RemoteProtocolError as exc:
                self.counters.inc(DhtCounter.REJECTED_RECORD, label=error_label(exc.code))
                continue
            valid += 1
            held = query.found.get(record.publisher_id)
            if held is None or record.seq > held.seq:
                query.found[record.publisher_id] = record
        return valid

    def _fetch_more(self, query: _Query, now: float) -> None:
        """DHT-7.8: ask truncated holders again on a stream, up to `stream_fetches` answers
        and `stream_fetches` failures per get."""
        cap = self.config.stream_fetches
        while query.truncated and len(query.fetching) + query.fetched < cap > query.fetch_failed:
            holder = query.truncated.popleft()
            request_id = self._send(
                FindValue(key=query.target), holder.address, holder.node_id, now, Channel.STREAM
            )
            self._requests[request_id] = _Request(_Purpose.FETCH, query.query_id, holder.node_id)
            query.fetching.add(request_id)
            self.counters.inc(DhtCounter.STREAM_FETCH)

    def _fetch_ended(
        self, entry: _Request, request_id: int, message: Message | None, now: float
    ) -> None:
        """One stream FIND_VALUE ended: its records merge (its contacts add nothing new)."""
        query = self._queries.get(entry.query_id or 0)
        if query is None:
            return
        query.fetching.discard(request_id)
        if isinstance(message, Value):
            query.fetched += 1
            self._merge(query, message, now)
        else:
            query.fetch_failed += 1
            self.counters.inc(DhtCounter.STREAM_FETCH_FAILED)
        self._fetch_more(query, now)  # a failed fetch hands its turn to the next holder
        self._drive(query, now)

    def on_error(self, request: PendingRequest, code: int, *, now: float) -> None:
        """The peer refused one of our requests with an ERROR reply."""
        entry = self._requests.pop(request.request_id, None)
        if entry is None:
            return
        self.counters.inc(DhtCounter.REFUSED, label=error_label(code))
        match entry.purpose:
            case _Purpose.CHECK:
                if entry.peer is not None:  # it refused, so it is alive (DHT-5.2)
                    self.routing.check_result(entry.peer, alive=True, now=now)
            case _Purpose.BOOTSTRAP:
                self._bootstrap_ended(now, answered=False)
            case _Purpose.REPLICATE:
                self.counters.inc(DhtCounter.REPLICATE_REFUSED)
            case _Purpose.STORE:
                self._store_ended(entry, request.request_id, _StoreEnd.REFUSED, now)
            case _Purpose.LOOKUP:
                self._lookup_failed(entry, now)
            case _Purpose.FETCH:
                self._fetch_ended(entry, request.request_id, None, now)

    def on_timeout(self, request: PendingRequest, *, now: float) -> None:
        entry = self._requests.pop(request.request_id, None)
        if entry is None:
            return
        if entry.peer is not None and entry.purpose not in (_Purpose.CHECK, _Purpose.FETCH):
            # A stream that does not answer says nothing of the datagram path (DHT-5.3).
            self.routing.record_failure(entry.peer)
        match entry.purpose:
            case _Purpose.CHECK:
                if entry.peer is not None:
                    self.routing.check_result(entry.peer, alive=False, now=now)
            case _Purpose.BOOTSTRAP:
                self._bootstrap_ended(now, answered=False)
            case _Purpose.REPLICATE:
                self.counters.inc(DhtCounter.REPLICATE_FAILED)
            case _Purpose.STORE:
                self._store_ended(entry, request.request_id, _StoreEnd.FAILED, now)
            case _Purpose.LOOKUP:
                self._lookup_failed(entry, now)
            case _Purpose.FETCH:
                self._fetch_ended(entry, request.request_id, None, now)

    def _lookup_failed(self, entry: _Request, now: float) -> None:
        query = self._queries.get(entry.query_id or 0)
        if query is None or entry.peer is None:
            return
        query.failures += 1
        query.lookup.on_failure(entry.peer, now=now)
        self._drive(query, now)

    # ------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        candidates = [self._next_refresh, self._next_republish, self._next_replicate]
        candidates.extend(q.wake_at for q in self._queries.values() if q.wake_at is not None)
        expiry = self.records.next_expiry()
        if expiry is not None:
            candidates.append(expiry)
        return min(candidates)

    def on_timer(self, *, now: float) -> None:
        for query in list(self._queries.values()):
            if query.wake_at is not None and query.wake_at <= now:
                self._drive(query, now)
        self._expire(now)
        if now >= self._next_refresh:
            self._next_refresh = now + self.config.refresh_interval
            for index in self.routing.stale_buckets(now=now, interval=self.config.refresh_interval):
                target = self.routing.random_id_in_bucket(index, self._rng)
                self._drive(self._new_query(_Kind.REFRESH, target, now), now)
        if now >= self._next_republish:
            self._next_republish = now + self.config.republish_interval
            for key, published in self._published.items():
                published.seq = max(round(now * 1000), published.seq + 1)
                self._start_store(key, now, _Kind.REPUBLISH)
        if now >= self._next_replicate:
            self._next_replicate = now + self.config.replicate_interval
            self._replicate(now)

    def _expire(self, now: float) -> None:
        for record in self.records.expire(now=now):
            self.counters.inc(DhtCounter.EXPIRED)
            self._emit(
                RecordDropped(key=record.key, publisher_id=record.publisher_id, reason="expired")
            )

    def _replicate(self, now: float) -> None:
        """DHT-8.5: push every held record to the k closest contacts this node knows."""
        for record in self.records.all_records():
            if record.expires_at <= now:
                continue
            for contact in self.routing.closest(record.key, self.config.k):
                request_id = self._send(
                    Store(record=record.to_cbor_value()), contact.address, contact.node_id, now
                )
                self._requests[request_id] = _Request(_Purpose.REPLICATE, None, contact.node_id)


_STORE_STATUS: Final = {
    PutOutcome.STORED: StoreStatus.STORED,
    PutOutcome.REPLACED: StoreStatus.REPLACED,
    PutOutcome.UNCHANGED: StoreStatus.UNCHANGED,
}


def _channel_limit(channel: Channel) -> int:
    return MAX_DATAGRAM_SIZE if channel is Channel.DATAGRAM else MAX_STREAM_MESSAGE_SIZE
