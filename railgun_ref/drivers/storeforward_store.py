"""SQLite persistence of a storage holder (SF-2.6): what it acknowledged survives a kill.

The sans-IO `StorageHolder` emits a `Persist` action before the `Send` that
acknowledges a STORE; a driver applies it here, committed (``synchronous``
FULL, spec section 0.5), before it sends anything, so a RESULT 0 that left
the node is on disk. On start the driver restores the holder from `load`.
The tables hold exactly what SF-2.5 lets a holder keep: no sender, no proof.
"""

from pathlib import Path
from typing import Final

from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.sqlite import Schema, open_database
from railgun_ref.storeforward.holder import (
    DEFAULT_CONFIG,
    Persist,
    StorageHolder,
    StoreAuthoriser,
    StoredMessage,
    StoreForwardConfig,
    StoreGate,
    Tombstone,
)

#: The holder's migrations: 1 creates its two tables; 2 keeps the store public keys
#: it learned (SF-3.7), so that it publishes rendezvous records again after a restart.
SCHEMA: Final = Schema(
    name="store-and-forward holder",
    migrations=(
        """
CREATE TABLE IF NOT EXISTS sf_messages (
    message_id BLOB PRIMARY KEY,
    rendezvous_key BLOB NOT NULL,
    mailbox_key BLOB NOT NULL,
    expires_ms INTEGER NOT NULL,
    ciphertext BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sf_tombstones (
    message_id BLOB NOT NULL,
    mailbox_key BLOB NOT NULL,
    rendezvous_key BLOB NOT NULL,
    keep_until_ms INTEGER NOT NULL,
    receipt BLOB NOT NULL,
    PRIMARY KEY (message_id, mailbox_key)
);
""",
        """
CREATE TABLE IF NOT EXISTS sf_store_keys (
    rendezvous_key BLOB PRIMARY KEY,
    store_key BLOB NOT NULL
);
""",
    ),
)


class SqliteHolderStore:
    """The messages and tombstones of one holder, in one SQLite file (0600)."""

    def __init__(self, path: Path | str) -> None:
        self._db = open_database(path, SCHEMA)

    def apply(self, persist: Persist) -> None:
        """Write one `Persist` action in one committed transaction."""
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO sf_messages VALUES (?, ?, ?, ?, ?)",
                [
                    (s.message_id, s.rendezvous_key, s.mailbox_key, s.expires_ms, s.ciphertext)
                    for s in persist.put
                ],
            )
            db.executemany(
                "DELETE FROM sf_messages WHERE message_id = ?", [(i,) for i in persist.delete]
            )
            db.executemany(
                "INSERT OR REPLACE INTO sf_tombstones VALUES (?, ?, ?, ?, ?)",
                [
                    (t.message_id, t.mailbox_key, t.rendezvous_key, t.keep_until_ms, t.receipt)
                    for t in persist.tombstones
                ],
            )
            db.executemany(
                "DELETE FROM sf_tombstones WHERE message_id = ? AND mailbox_key = ?",
                list(persist.purge),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def put_store_key(self, rendezvous_key: bytes, store_key: bytes) -> None:
        """SF-3.7: remember the store public key of `rendezvous_key` (a public value)."""
        self._db.execute(
            "INSERT OR IGNORE INTO sf_store_keys VALUES (?, ?)", (rendezvous_key, store_key)
        )

    def store_keys(self) -> dict[bytes, bytes]:
        """The store keys of the rendezvous keys this holder still keeps something under;
        the others are forgotten here."""
        self._db.execute(
            "DELETE FROM sf_store_keys WHERE rendezvous_key NOT IN "
            "(SELECT rendezvous_key FROM sf_messages "
            "UNION SELECT rendezvous_key FROM sf_tombstones)"
        )
        rows = self._db.execute("SELECT rendezvous_key, store_key FROM sf_store_keys")
        return {bytes(row[0]): bytes(row[1]) for row in rows}

    def load(self) -> tuple[list[StoredMessage], list[Tombstone]]:
        """Everything kept, to restore a holder with."""
        messages = [
            StoredMessage(
                message_id=row[0],
                rendezvous_key=row[1],
                mailbox_key=row[2],
                expires_ms=row[3],
                ciphertext=row[4],
            )
            for row in self._db.execute("SELECT * FROM sf_messages ORDER BY message_id")
        ]
        tombstones = [
            Tombstone(
                message_id=row[0],
                mailbox_key=row[1],
                rendezvous_key=row[2],
                keep_until_ms=row[3],
                receipt=row[4],
            )
            for row in self._db.execute("SELECT * FROM sf_tombstones ORDER BY message_id")
        ]
        return messages, tombstones

    def restore_holder(
        self,
        node_id: NodeId,
        *,
        authoriser: StoreAuthoriser,
        config: StoreForwardConfig = DEFAULT_CONFIG,
        admission: StoreGate | None = None,
        now: float,
    ) -> StorageHolder:
        """A holder with everything this file kept (expired entries go at its first timer);
        `admission` prices STOREs under load (SF-9.3)."""
        messages, tombstones = self.load()
        return StorageHolder(
            node_id,
            authoriser=authoriser,
            config=config,
            restored=messages,
            restored_tombstones=tombstones,
            admission=admission,
            now=now,
        )

    def close(self) -> None:
        self._db.close()
