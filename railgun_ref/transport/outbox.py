"""Exactly-once delivery across paths: the sender's outbox and the receiver's dedup (HT-4.x).

Sender side (`Outbox`): `send()` puts a message in the outbox and it stays
there until it is *settled*: the central service acknowledged it durably
(its mailbox then delivers to every member, HT-4.2), or every member
acknowledged it over P2P. Whatever path is up re-sends what is unsettled,
so a message accepted before a failover goes out on the P2P path, and one
that P2P delivered to only some members goes to the rest after failback.
The outbox is pure; the driver persists it through `OutboxChange`s so it
survives a restart (HT-4.4).

Receiver side (`Deduplicator`): every path may deliver the same message —
hybrid redundancy sends on both on purpose — so the application gets a
message only the first time its id is seen (HT-4.3). Ids are remembered for
the message TTL, which bounds how late a duplicate can arrive.
"""

import heapq
from dataclasses import dataclass, field
from enum import Enum

from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId


class Path(Enum):
    CENTRAL = "central"
    P2P = "p2p"
    STORE = "store"  #: picked up from store-and-forward holders (SF-8.4); receiving only


@dataclass(slots=True)
class OutboxEntry:
    message_id: bytes
    room_id: bytes
    blob: bytes
    members: frozenset[NodeId]  #: who must receive it (the sender excluded)
    accepted_at: float
    expires_at: float
    central_acked: bool = False
    p2p_acked: set[NodeId] = field(default_factory=set)
    attempts: dict[Path, int] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        return self.central_acked or self.p2p_acked >= self.members

    def missing_p2p(self) -> frozenset[NodeId]:
        return self.members - self.p2p_acked


@dataclass(frozen=True, slots=True)
class OutboxChange:
    """What a driver persists: an entry to write (again) or to delete."""

    message_id: bytes
    entry: OutboxEntry | None  #: None: delete


class Outbox:
    def __init__(self) -> None:
        self._entries: dict[bytes, OutboxEntry] = {}
        self.changes: list[OutboxChange] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, message_id: bytes) -> bool:
        return message_id in self._entries

    def add(self, entry: OutboxEntry) -> None:
        if entry.message_id in self._entries:
            raise LocalProtocolError("message id already in the outbox")
        if not entry.members:
            raise LocalProtocolError("a message needs at least one other member")
        self._entries[entry.message_id] = entry
        self.changes.append(OutboxChange(entry.message_id, entry))

    def restore(self, entry: OutboxEntry) -> None:
        """Re-load a persisted entry after a restart (no change is emitted)."""
        self._entries[entry.message_id] = entry

    def unsettled(self, *, now: float) -> list[OutboxEntry]:
        """Entries still to deliver, oldest first; expired ones are dropped."""
        for entry in [e for e in self._entries.values() if e.expires_at <= now]:
            self._remove(entry.message_id)
        return sorted(
            (e for e in self._entries.values() if not e.settled), key=lambda e: e.accepted_at
        )

    def get(self, message_id: bytes) -> OutboxEntry | None:
        return self._entries.get(message_id)

    def central_ack(self, message_id: bytes) -> bool:
        """HT-4.2: the central service holds it durably; True if that settled it."""
        entry = self._entries.get(message_id)
        if entry is None:
            return False
        entry.central_acked = True
        self._remove(message_id)
        return True

    def p2p_ack(self, message_id: bytes, member: NodeId) -> bool:
        """A member acknowledged it over P2P; True if that settled it."""
        entry = self._entries.get(message_id)
        if entry is None or member not in entry.members:
            return False
        entry.p2p_acked.add(member)
        if entry.settled:
            self._remove(message_id)
            return True
        self.changes.append(OutboxChange(message_id, entry))
        return False

    def _remove(self, message_id: bytes) -> None:
        if self._entries.pop(message_id, None) is not None:
            self.changes.append(OutboxChange(message_id, None))

    def drain_changes(self) -> list[OutboxChange]:
        out, self.changes = self.changes, []
        return out


class Deduplicator:
    """HT-4.3: deliver each message id to the application once, for as long as it can recur."""

    def __init__(self, *, capacity: int = 1_000_000) -> None:
        self._seen: dict[bytes, float] = {}
        self._expiries: list[tuple[float, bytes]] = []
        self._capacity = capacity

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, message_id: bytes, *, expires_at: float, now: float) -> bool:
        self._forget(now)
        if message_id in self._seen:
            return False
        if len(self._seen) >= self._capacity:
            raise LocalProtocolError("dedup capacity reached; raise it or shorten TTLs")
        self._seen[message_id] = expires_at
        heapq.heappush(self._expiries, (expires_at, message_id))
        return True

    def _forget(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            _, message_id = heapq.heappop(self._expiries)
            self._seen.pop(message_id, None)
