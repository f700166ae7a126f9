"""The Kademlia routing table (DHT-5.x).

Theory of operation (Kademlia §2.2, libp2p `kbucket`):

* Bucket *i* holds contacts at distance ``[2**i, 2**(i+1))`` from the local id
  (`geometry.bucket_index`), at most `k` of them, least-recently seen first.
* DHT-5.1: only *authenticated* contacts enter the table: the driver calls
  `observe` for the sender of an envelope whose signature binds its NodeId,
  at the address it came from. Contacts merely *named* by other peers are
  lookup candidates, never table entries until they talk to us themselves.
  Garbage that does not authenticate therefore cannot touch the table.
  An envelope does not bind the address it comes from, though: anyone who
  once received a datagram from a contact can replay it from elsewhere. So
  a known contact heard from another address is not moved there; it moves
  only after its old address fails (DHT-5.3) and it is heard from again.
* DHT-5.2: a full bucket does not drop its oldest contact for a newcomer.
  The newcomer waits in the bucket's replacement cache and the oldest
  contact is pinged; if it answers it moves to the tail (Kademlia's
  preference for long-lived nodes), if it does not it is evicted and the
  freshest replacement takes its place.
* DHT-5.3: a contact that fails `max_failures` requests in a row is removed
  and replaced from the cache, so churn empties the table of dead nodes.
* DHT-5.4: a bucket with no activity for the refresh interval is refreshed by
  a lookup of a random id in its range (the DHT core drives that).
"""

import heapq
import random
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from railgun_ref.core.constants import DHT_K, DHT_MAX_FAILURES
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.geometry import as_int, bucket_index, bucket_range, id_at_distance


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    node_id: NodeId
    address: Address


@dataclass(slots=True)
class _Entry:
    contact: Contact
    last_seen: float
    failures: int = 0


class Observed(Enum):
    """What `RoutingTable.observe` did with a contact."""

    INSERTED = "inserted"
    REFRESHED = "refreshed"  #: already known, same address; moved to the tail
    CHECK_OLDEST = "check_oldest"  #: bucket full: cached; ping the returned oldest contact
    CACHED = "cached"  #: bucket full, a check is already running: cached only
    IGNORED = "ignored"  #: our own id, or a known contact heard from another address


class _Bucket:
    __slots__ = ("checking", "entries", "last_activity", "replacements")

    def __init__(self, now: float) -> None:
        self.entries: OrderedDict[NodeId, _Entry] = OrderedDict()
        self.replacements: OrderedDict[NodeId, _Entry] = OrderedDict()
        self.checking: NodeId | None = None
        self.last_activity = now


class RoutingTable:
    def __init__(
        self,
        local_id: NodeId,
        *,
        k: int = DHT_K,
        max_failures: int = DHT_MAX_FAILURES,
        now: float = 0.0,
    ) -> None:
        if k < 1 or max_failures < 1:
            raise LocalProtocolError("k and max_failures must be at least 1")
        self.local_id = local_id
        self.k = k
        self.max_failures = max_failures
        self._created = now
        self._buckets: dict[int, _Bucket] = {}
        self._ints: list[tuple[int, Contact]] | None = None  # (id as int, contact) cache

    def __len__(self) -> int:
        return sum(len(b.entries) for b in self._buckets.values())

    def __contains__(self, node_id: NodeId) -> bool:
        index = bucket_index(self.local_id, node_id)
        return (
            index is not None and index in self._buckets and node_id in self._buckets[index].entries
        )

    def _bucket(self, index: int, now: float) -> _Bucket:
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = _Bucket(now)
        return bucket

    def observe(self, contact: Contact, *, now: float) -> tuple[Observed, Contact | None]:
        """DHT-5.1/5.2: an authenticated `contact` was heard from at `now`."""
        index = bucket_index(self.local_id, contact.node_id)
        if index is None:
            return Observed.IGNORED, None
        bucket = self._bucket(index, now)
        entry = bucket.entries.get(contact.node_id)
        if entry is not None and entry.contact.address != contact.address:
            # DHT-5.1: possibly a replay from another address; the contact stays put.
            return Observed.IGNORED, None
        bucket.last_activity = now
        if entry is not None:
            entry.last_seen, entry.failures = now, 0
            bucket.entries.move_to_end(contact.node_id)
            return Observed.REFRESHED, None
        if len(bucket.entries) < self.k:
            self._ints = None
            bucket.entries[contact.node_id] = _Entry(contact, now)
            bucket.replacements.pop(contact.node_id, None)
            return Observed.INSERTED, None
        bucket.replacements[contact.node_id] = _Entry(contact, now)
        bucket.replacements.move_to_end(contact.node_id)
        while len(bucket.replacements) > self.k:
            bucket.replacements.popitem(last=False)
        if bucket.checking is not None:
            return Observed.CACHED, None
        oldest = next(iter(bucket.entries.values()))
        bucket.checking = oldest.contact.node_id
        return Observed.CHECK_OLDEST, oldest.contact

    def check_result(self, node_id: NodeId, *, alive: bool, now: float) -> Contact | None:
        """DHT-5.2: outcome of pinging the oldest contact; returns the promoted one, if any."""
        index = bucket_index(self.local_id, node_id)
        bucket = self._buckets.get(index) if index is not None else None
        if bucket is None or bucket.checking != node_id:
            return None
        bucket.checking = None
        if alive:
            entry = bucket.entries.get(node_id)
            if entry is not None:
                entry.last_seen, entry.failures = now, 0
                bucket.entries.move_to_end(node_id)
            return None
        return self._evict(bucket, node_id)

    def _evict(self, bucket: _Bucket, node_id: NodeId) -> Contact | None:
        if bucket.entries.pop(node_id, None) is None:
            return None
        self._ints = None
        if bucket.checking == node_id:
            bucket.checking = None
        if not bucket.replacements:
            return None
        _, promoted = bucket.replacements.popitem(last=True)  # freshest first
        bucket.entries[promoted.contact.node_id] = promoted
        return promoted.contact

    def record_failure(self, node_id: NodeId) -> bool:
        """DHT-5.3: a request to `node_id` failed; True if it was removed as dead."""
        index = bucket_index(self.local_id, node_id)
        bucket = self._buckets.get(index) if index is not None else None
        if bucket is None:
            return False
        entry = bucket.entries.get(node_id)
        if entry is None:
            bucket.replacements.pop(node_id, None)
            return False
        entry.failures += 1
        if entry.failures >= self.max_failures:
            self._evict(bucket, node_id)
            return True
        return False

    def remove(self, node_id: NodeId) -> bool:
        index = bucket_index(self.local_id, node_id)
        bucket = self._buckets.get(index) if index is not None else None
        if bucket is None or node_id not in bucket.entries:
            return False
        self._evict(bucket, node_id)
        return True

    def contacts(self) -> list[Contact]:
        return [e.contact for b in self._buckets.values() for e in b.entries.values()]

    def closest(self, target: bytes, count: int, *, exclude: NodeId | None = None) -> list[Contact]:
        """The `count` known contacts closest to `target`, nearest first."""
        if self._ints is None:
            self._ints = [(as_int(c.node_id), c) for c in self.contacts()]
        t = as_int(target)
        best = heapq.nsmallest(count + 1, self._ints, key=lambda item: item[0] ^ t)
        return [c for _, c in best if c.node_id != exclude][:count]

    def bucket_fill(self) -> dict[int, int]:
        """Bucket index -> number of contacts, for non-empty buckets."""
        return {i: len(b.entries) for i, b in sorted(self._buckets.items()) if b.entries}

    def touch(self, target: bytes, *, now: float) -> None:
        """A lookup for `target` completed: its bucket counts as fresh (DHT-5.4)."""
        index = bucket_index(self.local_id, target)
        if index is not None:
            self._bucket(index, now).last_activity = now

    def stale_buckets(self, *, now: float, interval: float) -> list[int]:
        """Indices of non-empty buckets idle for at least `interval` seconds."""
        return [
            i
            for i, b in sorted(self._buckets.items())
            if b.entries and now - b.last_activity >= interval
        ]

    def random_id_in_bucket(self, index: int, rng: random.Random) -> NodeId:
        low, high = bucket_range(index)
        return NodeId(id_at_distance(self.local_id, rng.randrange(low, high)))
