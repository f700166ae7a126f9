"""The records a node holds (DHT-4.x), in memory; persistence is the driver's.

A key holds a *set* of records, one per publisher (DHT-3.4). For a given
(key, publisher) a record replaces the held one only if its ``seq`` is
greater (DHT-3.5); an equal seq with identical bytes is an idempotent
re-store, an equal seq with different bytes is a conflict and is refused,
and a lower seq is refused as stale. Records leave at their expiry (DHT-4.3).

Quotas (DHT-4.4) bound memory against a flood of valid but useless records:
per key, per publisher and in total. A refused store says QUOTA so the
publisher can go to the next-closest node.

The table is pure: the driver replays persisted records through
`restore()` after a restart and writes through the `stored`/`removed`
results, so the core never touches a disk.
"""

import heapq
from dataclasses import dataclass
from enum import Enum
from typing import Final

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.records import Record


class PutOutcome(Enum):
    STORED = "stored"  #: new (key, publisher) entry
    REPLACED = "replaced"  #: newer seq from the same publisher
    UNCHANGED = "unchanged"  #: the identical record was already held


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageLimits:
    #: DHT-4.4: records held under one key (e.g. members of one room).
    per_key: int = 64
    #: DHT-4.4: records held from one publisher across all keys.
    per_publisher: int = 256
    #: DHT-4.4: records held in total.
    total: int = 100_000


DEFAULT_LIMITS: Final = StorageLimits()


class RecordTable:
    def __init__(self, limits: StorageLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._by_key: dict[bytes, dict[NodeId, Record]] = {}
        self._per_publisher: dict[NodeId, int] = {}
        self._count = 0
        self._expiries: list[tuple[float, bytes, NodeId]] = []

    def __len__(self) -> int:
        return self._count

    def keys(self) -> list[bytes]:
        return list(self._by_key)

    def put(self, record: Record) -> PutOutcome:
        """Hold `record` (already checked by `check_record`) or raise why not."""
        holders = self._by_key.get(record.key, {})
        held = holders.get(record.publisher_id)
        if held is not None:
            if record.seq < held.seq:
                raise RemoteProtocolError(
                    ErrorCode.STALE_SEQUENCE, f"seq {record.seq} < held {held.seq}"
                )
            if record.seq == held.seq:
                if record == held:
                    return PutOutcome.UNCHANGED
                raise RemoteProtocolError(
                    ErrorCode.STALE_SEQUENCE, "same seq, different record: refused"
                )
        else:
            if len(holders) >= self.limits.per_key:
                raise RemoteProtocolError(ErrorCode.QUOTA, "key holds its maximum of records")
            if self._per_publisher.get(record.publisher_id, 0) >= self.limits.per_publisher:
                raise RemoteProtocolError(ErrorCode.QUOTA, "publisher holds its maximum here")
            if self._count >= self.limits.total:
                raise RemoteProtocolError(ErrorCode.QUOTA, "node storage is full")
        self._by_key.setdefault(record.key, {})[record.publisher_id] = record
        heapq.heappush(self._expiries, (record.expires_at, record.key, record.publisher_id))
        if held is None:
            self._count += 1
            self._per_publisher[record.publisher_id] = (
                self._per_publisher.get(record.publisher_id, 0) + 1
            )
            return PutOutcome.STORED
        return PutOutcome.REPLACED

    def restore(self, record: Record, *, now: float) -> bool:
        """Re-load a persisted record after a restart; False if it expired meanwhile."""
        if record.expires_at <= now:
            return False
        try:
            self.put(record)
        except RemoteProtocolError:
            return False
        return True

    def get(self, key: bytes, *, now: float) -> list[Record]:
        """Live records under `key`, ordered by publisher id (a stable order for vectors)."""
        holders = self._by_key.get(key, {})
        return [holders[p] for p in sorted(holders) if holders[p].expires_at > now]

    def all_records(self) -> list[Record]:
        return [r for holders in self._by_key.values() for r in holders.values()]

    def remove(self, key: bytes, publisher_id: NodeId) -> Record | None:
        holders = self._by_key.get(key)
        if holders is None or publisher_id not in holders:
            return None
        record = holders.pop(publisher_id)
        if not holders:
            del self._by_key[key]
        self._count -= 1
        remaining = self._per_publisher[publisher_id] - 1
        if remaining:
            self._per_publisher[publisher_id] = remaining
        else:
            del self._per_publisher[publisher_id]
        return record

    def expire(self, *, now: float) -> list[Record]:
        """DHT-4.3: drop and return every record whose expiry is at or before `now`."""
        dropped = []
        while self._expiries and self._expiries[0][0] <= now:
            at, key, publisher_id = heapq.heappop(self._expiries)
            held = self._by_key.get(key, {}).get(publisher_id)
            if held is not None and held.expires_at == at:  # not replaced since
                removed = self.remove(key, publisher_id)
                assert removed is not None
                dropped.append(removed)
        return dropped

    def next_expiry(self) -> float | None:
        while self._expiries:
            at, key, publisher_id = self._expiries[0]
            held = self._by_key.get(key, {}).get(publisher_id)
            if held is not None and held.expires_at == at:
                return at
            heapq.heappop(self._expiries)  # stale heap entry
        return None
