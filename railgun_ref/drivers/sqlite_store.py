"""SQLite persistence for what a node promised to keep (DHT-4.5).

Two tables in one file:

* ``records``: every DHT record the node holds, keyed by (key, publisher),
  as its deterministic CBOR bytes. Written when the node reports
  `RecordStored`, deleted on `RecordDropped`. Each write is its own
  transaction, committed before the driver lets the STORED reply leave, so a
  record that was acknowledged survives a kill -9.
* ``peers``: the routing table's contacts when the node last stopped, the
  "cached peer list" a restarted node bootstraps from.

On start the driver replays the records through the same acceptance checks
as a STORE (`check_record`): expired or corrupt rows are dropped and counted,
never trusted.
"""

from pathlib import Path
from typing import Final

from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.records import Record, check_record
from railgun_ref.drivers.sqlite import Schema, open_database
from railgun_ref.wire import cbor

_SCHEMA_1: Final = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    key BLOB NOT NULL,
    publisher BLOB NOT NULL,
    record BLOB NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (key, publisher)
);
CREATE TABLE IF NOT EXISTS peers (
    node_id BLOB PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL
);
"""
#: The node store's migrations: 1 is the original schema, whose `meta` table held the
#: version before ``PRAGMA user_version`` did; 2 drops that table.
SCHEMA: Final = Schema(name="node store", migrations=(_SCHEMA_1, "DROP TABLE IF EXISTS meta;"))
SCHEMA_VERSION: Final = SCHEMA.version


class SqliteNodeStore:
    """One node's durable state. Not thread-safe: use it from the node's event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_database(path, SCHEMA)  # autocommit; explicit transactions

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------ records

    def put_record(self, key: bytes, publisher: NodeId, record: bytes, expires_ms: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)",
            (key, publisher, record, expires_ms),
        )

    def delete_record(self, key: bytes, publisher: NodeId) -> None:
        self._db.execute("DELETE FROM records WHERE key=? AND publisher=?", (key, publisher))

    def load_records(self, *, now: float) -> tuple[list[Record], int]:
        """Every stored record that still passes `check_record`, and how many rows did not."""
        good: list[Record] = []
        bad = 0
        for key, publisher, data in self._db.execute(
            "SELECT key, publisher, record FROM records"
        ).fetchall():
            try:
                record = Record.from_cbor_value(cbor.decode(data))
                check_record(record, now=now, key=key)
            except RemoteProtocolError:
                bad += 1
                self.delete_record(key, NodeId(publisher))
                continue
            good.append(record)
        return good, bad

    def record_count(self) -> int:
        count: int = self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        return count

    # ------------------------------------------------------------ peers

    def save_peers(self, peers: list[tuple[NodeId, Address]]) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM peers")
            self._db.executemany(
                "INSERT INTO peers VALUES (?, ?, ?)",
                [(node_id, host, port) for node_id, (host, port) in peers],
            )

    def load_peers(self) -> list[tuple[NodeId, Address]]:
        return [
            (NodeId(node_id), (host, port))
            for node_id, host, port in self._db.execute("SELECT node_id, host, port FROM peers")
        ]
