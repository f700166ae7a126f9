"""The one way this package opens a SQLite database (stdlib `sqlite3`).

Everything a node promised to keep (stored records, cached peers, the
outbox, the central service's mailbox) lives in SQLite and survives a kill.
Every store opens its file through `open_database`, which keeps these
invariants:

1. **Private files.** Missing directories are created with mode 0700; the
   database file is created 0600 (and an existing one is tightened to 0600)
   before SQLite opens it. SQLite creates the ``-wal``, ``-shm`` and
   ``-journal`` files with the mode of the database file; they are chmod-ed
   to 0600 as well once the database is open, in case an older version left
   them looser. An existing directory is the caller's choice and is left alone.
2. **One set of pragmas.** ``journal_mode=WAL`` (readers never block the
   writer; a commit is one append), ``synchronous=FULL`` by default (a
   committed transaction survives a power cut, which is what lets a driver
   acknowledge after the commit), ``foreign_keys=ON`` and a busy timeout, so
   two processes opening one file wait for each other instead of failing.
3. **A schema version.** The version is ``PRAGMA user_version``; a `Schema`
   is an ordered tuple of migrations, ``migrations[i]`` taking version ``i``
   to ``i + 1``. Opening applies the missing ones in one ``BEGIN IMMEDIATE``
   transaction together with the new version number, so a crash leaves the
   old version or the new one, never a mix. A database whose version is newer
   than the code's is refused with `SchemaVersionError` and left untouched.

The first migration of every store is written with ``IF NOT EXISTS``, so a
file created before versions were recorded (version 0, tables present)
migrates in place.
"""

import contextlib
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

#: Mode of every database file and its -wal/-shm/-journal companions.
DB_FILE_MODE: Final = 0o600
#: Mode of every directory `open_database` creates.
DB_DIR_MODE: Final = 0o700
#: Milliseconds a connection waits for another one's lock before failing.
BUSY_TIMEOUT_MS: Final = 5000
#: The files SQLite may create next to a database.
COMPANION_SUFFIXES: Final = ("-wal", "-shm", "-journal")
#: The name `sqlite3` uses for a private in-memory database.
MEMORY: Final = ":memory:"

#: One step of a schema: a SQL script, or a function for what SQL cannot say.
Migration = str | Callable[[sqlite3.Connection], None]


class Synchronous(StrEnum):
    """``PRAGMA synchronous`` values a store may choose (FULL unless it can lose a commit)."""

    FULL = "FULL"
    NORMAL = "NORMAL"


class SchemaVersionError(ValueError):
    """The database was written by a newer schema than this code knows."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Schema:
    """A store's schema as ordered migrations; `version` is how many there are."""

    name: str  #: the store, for error messages
    migrations: tuple[Migration, ...]

    @property
    def version(self) -> int:
        return len(self.migrations)


def make_private_directory(directory: Path) -> None:
    """Create `directory` and its missing parents, each with mode 0700 (not mkdir -p's 0777)."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for item in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile by another process
            item.mkdir(mode=DB_DIR_MODE)
        item.chmod(DB_DIR_MODE)  # mkdir's mode is filtered by the umask


def secure_files(path: Path) -> None:
    """chmod the database and whichever of its companion files exist to 0600."""
    for item in (path, *(Path(f"{path}{suffix}") for suffix in COMPANION_SUFFIXES)):
        with contextlib.suppress(FileNotFoundError):  # a companion may come and go
            if item.stat().st_mode & 0o777 != DB_FILE_MODE:
                item.chmod(DB_FILE_MODE)


def _create_private_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, DB_FILE_MODE)
    try:
        os.fchmod(fd, DB_FILE_MODE)  # os.open's mode is filtered by the umask
    finally:
        os.close(fd)


def schema_version(db: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version``."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    return int(version)


def _statements(script: str) -> list[str]:
    """A SQL script as single statements (`sqlite3.complete_statement` finds their ends)."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                statements.append(pending.strip())
            pending = ""
    return statements


def _refuse_newer(found: int, schema: Schema, where: str) -> None:
    if found > schema.version:
        raise SchemaVersionError(
            f"{where}: {schema.name} schema version {found} is newer than this "
            f"program's {schema.version}; refusing to open it (upgrade railgun-ref "
            "or use another data directory)"
        )


def migrate(db: sqlite3.Connection, schema: Schema, *, where: str = MEMORY) -> int:
    """Bring `db` to `schema.version` in one transaction; returns the version found.

    `db` must be in autocommit mode (``isolation_level=None``). Raises
    `SchemaVersionError`, changing nothing, if the database is newer than `schema`.
    """
    found = schema_version(db)
    _refuse_newer(found, schema, where)
    if found == schema.version:
        return found
    db.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(db)  # another process may have migrated meanwhile
        _refuse_newer(found, schema, where)
        for migration in schema.migrations[found:]:
            if isinstance(migration, str):
                for statement in _statements(migration):
                    db.execute(statement)
            else:
                migration(db)
        db.execute(f"PRAGMA user_version = {schema.version:d}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return found


def open_database(
    path: Path | str,
    schema: Schema,
    *,
    synchronous: Synchronous = Synchronous.FULL,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """Open (creating if needed) the database at `path`, migrated to `schema` (module doc).

    The connection is in autocommit mode: a store writes a batch with an
    explicit ``BEGIN`` ... ``COMMIT`` (or ``with db:`` after ``BEGIN``).
    ``":memory:"`` gives a private in-memory database with the same schema.
    """
    where = str(path)
    if where != MEMORY:
        path = Path(path)
        make_private_directory(path.parent)
        _create_private_file(path)
    db = sqlite3.connect(where, isolation_level=None, check_same_thread=check_same_thread)
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {Synchronous(synchronous).value}")
        db.execute("PRAGMA foreign_keys = ON")
        migrate(db, schema, where=where)
    except BaseException:
        db.close()
        raise
    if where != MEMORY:
        secure_files(Path(where))
    return db


__all__ = [
    "BUSY_TIMEOUT_MS",
    "COMPANION_SUFFIXES",
    "DB_DIR_MODE",
    "DB_FILE_MODE",
    "MEMORY",
    "Migration",
    "Schema",
    "SchemaVersionError",
    "Synchronous",
    "make_private_directory",
    "migrate",
    "open_database",
    "schema_version",
    "secure_files",
]
