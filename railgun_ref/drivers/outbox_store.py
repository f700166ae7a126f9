"""SQLite persistence of the transport outbox (HT-4.4).

The sans-IO `HybridTransportService` reports every outbox change as a
`PersistOutbox` action *before* the send actions of the same input (HT-4.1);
a driver applies it here, committed, before it sends anything, so a message
`send()` accepted is on disk before any path sees it, and a restarted client
resumes delivering whatever was not settled.
"""

from pathlib import Path
from typing import Final

from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.sqlite import Schema, open_database
from railgun_ref.transport.outbox import OutboxChange, OutboxEntry
from railgun_ref.transport.outbox import Path as DeliveryPath
from railgun_ref.wire import cbor

#: The outbox's migrations: 1 is its one table.
SCHEMA: Final = Schema(
    name="transport outbox",
    migrations=(
        """
CREATE TABLE IF NOT EXISTS outbox (
    message_id BLOB PRIMARY KEY,
    entry BLOB NOT NULL
);
""",
    ),
)


def _encode(entry: OutboxEntry) -> bytes:
    return cbor.encode(
        {
            0: entry.room_id,
            1: entry.blob,
            2: sorted(entry.members),
            3: round(entry.accepted_at * 1000),
            4: round(entry.expires_at * 1000),
            5: entry.central_acked,
            6: sorted(entry.p2p_acked),
            7: {
                0: entry.attempts.get(DeliveryPath.CENTRAL, 0),
                1: entry.attempts.get(DeliveryPath.P2P, 0),
            },
        }
    )


def _decode(message_id: bytes, data: bytes) -> OutboxEntry:
    value = cbor.decode(data)
    return OutboxEntry(
        message_id=message_id,
        room_id=value[0],
        blob=value[1],
        members=frozenset(NodeId(m) for m in value[2]),
        accepted_at=value[3] / 1000,
        expires_at=value[4] / 1000,
        central_acked=value[5],
        p2p_acked={NodeId(m) for m in value[6]},
        attempts={DeliveryPath.CENTRAL: value[7][0], DeliveryPath.P2P: value[7][1]},
    )


class SqliteOutboxStore:
    def __init__(self, path: Path) -> None:
        self._db = open_database(path, SCHEMA)

    def apply(self, changes: tuple[OutboxChange, ...] | list[OutboxChange]) -> None:
        """Write a batch of changes in one transaction."""
        with self._db:
            self._db.execute("BEGIN")
            for change in changes:
                if change.entry is None:
                    self._db.execute("DELETE FROM outbox WHERE message_id=?", (change.message_id,))
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO outbox VALUES (?, ?)",
                        (change.message_id, _encode(change.entry)),
                    )

    def load(self) -> list[OutboxEntry]:
        rows = self._db.execute("SELECT message_id, entry FROM outbox").fetchall()
        return [_decode(bytes(message_id), bytes(data)) for message_id, data in rows]

    def close(self) -> None:
        self._db.close()
