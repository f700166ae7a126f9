"""The SQLite helper and every store opened through it (drivers/sqlite.py).

What a user can observe on disk: the files' modes, the pragmas a connection
runs with, the schema version, and what happens to an older or a newer file.
"""

import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, Protocol

import pytest

from railgun_ref.core.ids import NodeId
from railgun_ref.drivers import central, sqlite_store
from railgun_ref.drivers.central import MailboxStore
from railgun_ref.drivers.outbox_store import SqliteOutboxStore
from railgun_ref.drivers.sqlite import (
    BUSY_TIMEOUT_MS,
    Schema,
    SchemaVersionError,
    open_database,
    schema_version,
)
from railgun_ref.drivers.sqlite_store import SqliteNodeStore
from railgun_ref.drivers.transport import _StateStore
from railgun_ref.transport.outbox import OutboxChange

NODE: Final = NodeId(bytes(range(32)))
ROOM: Final = b"\x07" * 32

TWO_STEPS: Final = Schema(
    name="test store",
    migrations=(
        "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
        "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT 'unknown';"
        "CREATE INDEX notes_by_author ON notes (author);",
    ),
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    """A permissive umask for the block, so only the helper's own modes can make files private."""
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def _use_mailbox(path: Path) -> MailboxStore:
    store = MailboxStore(path)
    store.join(ROOM, NODE)
    assert store.is_member(ROOM, NODE)
    return store


def _use_node_store(path: Path) -> SqliteNodeStore:
    store = SqliteNodeStore(path)
    store.save_peers([(NODE, ("127.0.0.1", 4000))])
    assert store.load_peers() == [(NODE, ("127.0.0.1", 4000))]
    return store


def _use_outbox(path: Path) -> SqliteOutboxStore:
    store = SqliteOutboxStore(path)
    store.apply([OutboxChange(message_id=b"m" * 16, entry=None)])
    assert store.load() == []
    return store


def _use_state(path: Path) -> _StateStore:
    store = _StateStore(path)
    store.add_room_secret(ROOM, b"\x01" * 32, "a room")
    store.add_room_change(ROOM, b"change")
    assert store.closed_rooms() == [(ROOM, b"\x01" * 32, "a room", [b"change"])]
    return store


class _Closable(Protocol):
    def close(self) -> None: ...


#: Every store of the package: open it and write to it, returning it still open.
STORES: Final[dict[str, Callable[[Path], _Closable]]] = {
    "central mailbox": _use_mailbox,
    "node store": _use_node_store,
    "transport outbox": _use_outbox,
    "transport state": _use_state,
}


@pytest.mark.parametrize("use", STORES.values(), ids=STORES.keys())
def test_every_store_keeps_its_files_private(
    tmp_path: Path, use: Callable[[Path], _Closable]
) -> None:
    """Database, -wal and -shm are 0600 and every directory the store created is 0700."""
    path = tmp_path / "data" / "nested" / "store.sqlite3"
    with umask(0):
        store = use(path)
    try:
        files = sorted(p.name for p in path.parent.iterdir())
        assert files == ["store.sqlite3", "store.sqlite3-shm", "store.sqlite3-wal"]
        assert {name: mode(path.parent / name) for name in files} == dict.fromkeys(files, 0o600)
        assert mode(path.parent) == mode(tmp_path / "data") == 0o700
    finally:
        store.close()


def test_connection_pragmas(tmp_path: Path) -> None:
    """WAL, FULL synchronous, foreign keys and a busy timeout on every connection."""
    db = open_database(tmp_path / "x.sqlite3", TWO_STEPS)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert db.execute("PRAGMA busy_timeout").fetchone() == (BUSY_TIMEOUT_MS,)
    assert schema_version(db) == TWO_STEPS.version == 2
    db.close()


def test_loose_existing_files_are_tightened(tmp_path: Path) -> None:
    """A database and a -wal file left world-readable by something else become 0600."""
    path = tmp_path / "x.sqlite3"
    sqlite3.connect(path).close()
    wal = Path(f"{path}-wal")
    wal.touch()
    path.chmod(0o644)
    wal.chmod(0o666)
    open_database(path, TWO_STEPS).close()
    assert mode(path) == 0o600
    if wal.exists():  # the last close checkpoints and removes it
        assert mode(wal) == 0o600


def test_an_older_version_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    """A file at version 1 gets migration 2 only; its rows stay."""
    path = tmp_path / "x.sqlite3"
    old = open_database(path, Schema(name="test store", migrations=TWO_STEPS.migrations[:1]))
    old.execute("INSERT INTO notes (body) VALUES ('kept')")
    assert schema_version(old) == 1
    old.close()
    db = open_database(path, TWO_STEPS)
    assert schema_version(db) == 2
    assert db.execute("SELECT body, author FROM notes").fetchall() == [("kept", "unknown")]
    db.close()


def test_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    """A file written by a newer schema is refused with a clear error and not changed."""
    path = tmp_path / "x.sqlite3"
    newer = sqlite3.connect(path)
    newer.execute("CREATE TABLE future (x)")
    newer.execute("PRAGMA user_version = 3")
    newer.commit()
    newer.close()
    with pytest.raises(SchemaVersionError, match=r"schema version 3 is newer than .* 2"):
        open_database(path, TWO_STEPS)
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone() == (3,)
    assert check.execute("SELECT name FROM sqlite_master").fetchall() == [("future",)]
    check.close()


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    """Migrations run in one transaction: one that fails leaves the old version and tables."""
    path = tmp_path / "x.sqlite3"
    open_database(path, Schema(name="test store", migrations=TWO_STEPS.migrations[:1])).close()

    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (x)")
        raise RuntimeError("migration bug")

    three = Schema(name="test store", migrations=(*TWO_STEPS.migrations, broken))
    with pytest.raises(RuntimeError, match="migration bug"):
        open_database(path, three)
    db = open_database(path, Schema(name="test store", migrations=TWO_STEPS.migrations[:1]))
    assert schema_version(db) == 1
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert tables == {"notes"}
    db.close()


def test_a_script_with_a_trigger_is_split_into_whole_statements(tmp_path: Path) -> None:
    """Semicolons inside a trigger body do not end the migration's statement."""
    schema = Schema(
        name="test store",
        migrations=(
            """
            CREATE TABLE a (x INTEGER);
            CREATE TABLE b (x INTEGER);
            CREATE TRIGGER copy AFTER INSERT ON a BEGIN
                INSERT INTO b VALUES (new.x);
                INSERT INTO b VALUES (new.x + 1);
            END;
            """,
        ),
    )
    db = open_database(tmp_path / "x.sqlite3", schema)
    db.execute("INSERT INTO a VALUES (1)")
    assert db.execute("SELECT x FROM b ORDER BY x").fetchall() == [(1,), (2,)]
    db.close()


@pytest.mark.parametrize(
    "store, schema",
    [(MailboxStore, central.SCHEMA), (SqliteNodeStore, sqlite_store.SCHEMA)],
    ids=["central mailbox", "node store"],
)
def test_a_store_file_from_before_user_version_migrates(
    tmp_path: Path, store: Callable[[Path], _Closable], schema: Schema
) -> None:
    """A file from before versions were in ``user_version`` (a `meta` row said 1) opens."""
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    script = schema.migrations[0]
    assert isinstance(script, str)
    old.executescript(script)
    old.execute("INSERT INTO meta VALUES ('schema', '1')")
    old.commit()
    old.close()
    store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (schema.version,)
    assert db.execute("SELECT name FROM sqlite_master WHERE name='meta'").fetchall() == []
    db.close()


def test_a_store_refuses_a_newer_file(tmp_path: Path) -> None:
    """The central service's mailbox, written by a newer release, is refused by name."""
    path = tmp_path / "mailbox.sqlite3"
    MailboxStore(path).close()
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version = {central.SCHEMA.version + 1}")
    newer.close()
    with pytest.raises(SchemaVersionError, match="central mailbox schema version"):
        MailboxStore(path)


def test_memory_database() -> None:
    """``:memory:`` gets the same schema and no file anywhere."""
    store = MailboxStore(":memory:")
    store.join(ROOM, NODE)
    assert store.rooms_of(NODE) == [ROOM]
    store.close()
