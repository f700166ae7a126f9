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
* DHT-5.5: diversity (geth's `DistinctNetSet`, after Marcus et al. eclipsed
  Ethereum nodes from two hosts): one endpoint (IP and port) holds at most one
  identity in the table, and one source group (`limits.groups`: a public /24
  or /48, or a loopback IP with ``loopback_hosts``) at most `per_bucket`
  contacts per bucket and `per_table` in the table. A contact over a limit
  enters neither the bucket nor its replacement cache, so new keys from one
  address cost the attacker keys but buy it no place.
* DHT-5.4: a bucket with no activity for the refresh interval is refreshed by
  a lookup of a random id in its range (the DHT core drives that).
"""

import random
from dataclasses import dataclass
from enum import Enum

from railgun_ref.core.constants import DHT_K, DHT_MAX_FAILURES
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.geometry import as_int, bucket_index, bucket_range, id_at_distance
from railgun_ref.limits.groups import Group, is_public, source_group


@dataclass(frozen=True, slots=True, kw_only=True)
class Diversity:
    """DHT-5.5: how many contacts one address or source group may hold."""

    per_endpoint: int = 1  #: identities per IP:port in the table
    per_bucket: int = 2  #: contacts per source group per bucket (geth: 2 per /24)
    per_table: int = 10  #: contacts per source group in the table (geth: 10 per /24)
    #: and at most this many per mille of the contacts of *other* groups, but never fewer
    #: than `table_floor` (DHT-5.5): 2 hosts hold under 10 % of a table, whatever its size
    table_share: int = 50
    #: DHT-5.5: a group may always hold this many (1: two hosts hold 2 contacts of a small
    #: table, the 26 a node knows right after a short join in 300 nodes: 7.7 %)
    table_floor: int = 1
    #: group loopback addresses by IP, as if each 127.x.y.z were a host (tests of host limits)
    loopback_hosts: bool = False

    def __post_init__(self) -> None:
        if min(self.per_endpoint, self.per_bucket, self.per_table, self.table_floor) < 1:
            raise LocalProtocolError("diversity limits must be at least 1")
        if not 0 < self.table_share <= 1000:
            raise LocalProtocolError("table_share is per mille: 1..1000")

    def group_cap(self, *, held: int, table: int) -> int:
        """DHT-5.5: contacts a group holding `held` of a `table`-contact table may have."""
        others = table - held
        return min(self.per_table, max(self.table_floor, others * self.table_share // 1000))


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
    REFUSED_ENDPOINT = "refused_endpoint"  #: DHT-5.5: its IP:port already holds an identity
    REFUSED_GROUP = "refused_group"  #: DHT-5.5: its source group holds its share already


def _to_tail(entries: dict[NodeId, _Entry], node_id: NodeId) -> None:
    """Move `node_id` to the end of the insertion order (most recently seen)."""
    entries[node_id] = entries.pop(node_id)


class _Bucket:
    __slots__ = ("checking", "entries", "groups", "last_activity", "replacements")

    def __init__(self, now: float) -> None:
        # Plain dicts keep insertion order at half an OrderedDict's memory; moving a
        # contact to the tail is pop-and-reinsert (`_to_tail`).
        self.entries: dict[NodeId, _Entry] = {}
        self.groups: dict[Group, int] = {}  # DHT-5.5: entries per source group
        self.replacements: dict[NodeId, _Entry] = {}
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
        diversity: Diversity | None = None,
    ) -> None:
        """`diversity` None: no DHT-5.5 limits (plain Kademlia, for comparisons)."""
        if k < 1 or max_failures < 1:
            raise LocalProtocolError("k and max_failures must be at least 1")
        self.local_id = local_id
        self.k = k
        self.max_failures = max_failures
        self.diversity = diversity
        #: Identities in the table per address: a count, not a set of ids (a set per
        #: contact was the largest part of a table's memory at simulated scale).
        self._by_address: dict[Address, int] = {}
        self._group_count: dict[Group, int] = {}
        self._size = 0  # contacts in all buckets (len(self), kept for DHT-5.5's share)
        self._created = now
        self._buckets: dict[int, _Bucket] = {}
        self._ints: list[tuple[int, Contact]] | None = None  # (id as int, contact) cache

    def __len__(self) -> int:
        return self._size

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
            _to_tail(bucket.entries, contact.node_id)
            return Observed.REFRESHED, None
        refusal = self._refusal(contact, bucket)
        if refusal is not None:
            bucket.replacements.pop(contact.node_id, None)
            return refusal, None
        if len(bucket.entries) < self.k:
            self._add(bucket, _Entry(contact, now))
            bucket.replacements.pop(contact.node_id, None)
            return Observed.INSERTED, None
        bucket.replacements.pop(contact.node_id, None)
        bucket.replacements[contact.node_id] = _Entry(contact, now)  # at the tail
        while len(bucket.replacements) > self.k:
            del bucket.replacements[next(iter(bucket.replacements))]  # the oldest
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
                _to_tail(bucket.entries, node_id)
            return None
        return self._evict(bucket, node_id)

    def _group(self, address: Address) -> Group | None:
        """DHT-5.5: the group a subnet limit counts `address` in, None if none applies."""
        d = self.diversity
        if d is None:
            return None
        if is_public(address) or d.loopback_hosts:
            group = source_group(address, loopback_hosts=d.loopback_hosts)
            return group if group[0] != "endpoint" else None
        return None

    def _refusal(self, contact: Contact, bucket: _Bucket) -> Observed | None:
        """DHT-5.5: why `contact` may not enter `bucket` (None: it may)."""
        d = self.diversity
        if d is None:
            return None
        if self._by_address.get(contact.address, 0) >= d.per_endpoint:
            return Observed.REFUSED_ENDPOINT
        group = self._group(contact.address)
        if group is None:
            return None
        in_bucket = bucket.groups.get(group, 0)
        held = self._group_count.get(group, 0)
        if in_bucket >= d.per_bucket or held >= d.group_cap(held=held, table=self._size):
            return Observed.REFUSED_GROUP
        return None

    def _add(self, bucket: _Bucket, entry: _Entry) -> None:
        self._ints = None
        contact = entry.contact
        bucket.entries[contact.node_id] = entry
        self._size += 1
        self._by_address[contact.address] = self._by_address.get(contact.address, 0) + 1
        group = self._group(contact.address)
        if group is not None:
            self._group_count[group] = self._group_count.get(group, 0) + 1
            bucket.groups[group] = bucket.groups.get(group, 0) + 1

    def _drop(self, bucket: _Bucket, node_id: NodeId) -> bool:
        entry = bucket.entries.pop(node_id, None)
        if entry is None:
            return False
        self._ints = None
        self._size -= 1
        address = entry.contact.address
        held = self._by_address.get(address, 0)
        if held > 1:
            self._by_address[address] = held - 1
        else:
            self._by_address.pop(address, None)
        group = self._group(address)
        if group is not None:
            self._group_count[group] -= 1
            bucket.groups[group] -= 1
        return True

    def _evict(self, bucket: _Bucket, node_id: NodeId) -> Contact | None:
        if not self._drop(bucket, node_id):
            return None
        if bucket.checking == node_id:
            bucket.checking = None
        while bucket.replacements:
            _, promoted = bucket.replacements.popitem()  # freshest (last inserted) first
            if self._refusal(promoted.contact, bucket) is None:
                self._add(bucket, promoted)
                return promoted.contact
        return None

    def knows_address(self, address: Address) -> bool:
        """ABUSE-1.3: a contact of the table listens at `address` (a known contact)."""
        return address in self._by_address

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
        ints = self._ints
        # Sorting the distances in C beats a heap with a Python key at routing-table sizes.
        distances = [i ^ t for i, _ in ints]
        nearest = sorted(range(len(ints)), key=distances.__getitem__)[: count + 1]
        return [c for c in (ints[j][1] for j in nearest) if c.node_id != exclude][:count]

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
