"""Cached bootstrap peers in SQLite (BOOT-4.1 method 1, BOOT-4.4): what worked, and what failed.

Every client and node keeps the bootstrap peers it verified (a PONG from the
listed key), with the time of the last success, the time of the last failure
and the number of consecutive failures since that success. The race asks for
candidates best first: the most recent success first (it gets the head start,
BOOT-4.4), then by fewest consecutive failures. Aging keeps the cache useful
after a long absence and small under churn:

* a peer is never dropped for age alone — a client whose cache is a month
  old must still join through it (the peers that still answer);
* a peer that failed `MAX_FAILURES` times in a row and has not worked for
  `STALE_AFTER` seconds is dropped;
* the cache holds at most `MAX_PEERS`; the ones that worked longest ago go first.

Each peer is kept per *address kind* (BOOT-4.8: UDP, onion, I2P; one row per
key and kind), so that a peer first reached through Tor is tried through the
SOCKS5 proxy again, never PINGed as if its onion name were a UDP host.
Schema version 3 added the kind; its migration rebuilds the table and
classifies the rows kept before by the form of their address.

It also keeps what BOOT-1.5 asks a client to remember across restarts: the
newest root document and the highest manifest version accepted, so that a
rollback is caught after a restart too. Opened through
`drivers.sqlite.open_database` (private file, WAL, schema version).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from railgun_ref.bootstrap.manifest import AddressKind
from railgun_ref.bootstrap.race import Candidate, Method
from railgun_ref.drivers.sqlite import Schema, open_database

MAX_PEERS: Final = 256
MAX_FAILURES: Final = 5
STALE_AFTER: Final = 30 * 86_400.0

SCHEMA: Final = Schema(
    name="peer-cache",
    migrations=(
        """
        CREATE TABLE IF NOT EXISTS bootstrap_peers (
            public_key BLOB PRIMARY KEY,
            address TEXT NOT NULL,
            last_success REAL NOT NULL,
            last_failure REAL,
            failures INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS bootstrap_peers_success
            ON bootstrap_peers (last_success DESC);
        """,
        # BOOT-1.5: the newest root and the highest manifest version accepted.
        """
        CREATE TABLE IF NOT EXISTS bootstrap_trust (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            root_document BLOB,
            manifest_version INTEGER NOT NULL DEFAULT 0
        );
        INSERT OR IGNORE INTO bootstrap_trust (id) VALUES (1);
        """,
        # BOOT-4.8: one row per key and address kind; rows from before are classified
        # by their address (version 2 stored onion and I2P winners like UDP ones).
        """
        CREATE TABLE bootstrap_peers_by_kind (
            public_key BLOB NOT NULL,
            kind INTEGER NOT NULL,
            address TEXT NOT NULL,
            last_success REAL NOT NULL,
            last_failure REAL,
            failures INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (public_key, kind)
        );
        INSERT INTO bootstrap_peers_by_kind
            SELECT public_key,
                CASE
                    WHEN lower(address) GLOB '*.onion:*' THEN 2
                    WHEN lower(address) GLOB '*.i2p:*' THEN 3
                    ELSE 1
                END,
                address, last_success, last_failure, failures
            FROM bootstrap_peers;
        DROP TABLE bootstrap_peers;
        ALTER TABLE bootstrap_peers_by_kind RENAME TO bootstrap_peers;
        CREATE INDEX bootstrap_peers_success ON bootstrap_peers (last_success DESC);
        """,
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedPeer:
    public_key: bytes
    address: str
    kind: AddressKind
    last_success: float
    last_failure: float | None
    failures: int


class PeerCache:
    """The bootstrap peer cache of one client or node (one SQLite file)."""

    def __init__(self, path: Path | str) -> None:
        self._db = open_database(path, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def record_success(
        self,
        public_key: bytes,
        address: str,
        *,
        now: float,
        kind: AddressKind = AddressKind.UDP,
    ) -> None:
        """A verified PONG from `public_key` at `address`, an address of `kind` (BOOT-4.8),
        committed before returning."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO bootstrap_peers (public_key, kind, address, last_success, failures)"
                " VALUES (?, ?, ?, ?, 0) ON CONFLICT (public_key, kind) DO UPDATE SET"
                " address = excluded.address, last_success = excluded.last_success, failures = 0",
                (public_key, int(AddressKind(kind)), address, now),
            )
            self._trim()

    def record_failure(
        self, public_key: bytes, *, now: float, kind: AddressKind = AddressKind.UDP
    ) -> None:
        """An attempt on a cached peer (its address of `kind`) failed; drop it once it is
        both failing and stale."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE bootstrap_peers SET failures = failures + 1, last_failure = ?"
                " WHERE public_key = ? AND kind = ?",
                (now, public_key, int(AddressKind(kind))),
            )
            self._db.execute(
                "DELETE FROM bootstrap_peers WHERE failures >= ? AND last_success < ?",
                (MAX_FAILURES, now - STALE_AFTER),
            )

    def manifest_version(self) -> int:
        """BOOT-1.5: the highest manifest version accepted so far (0: none)."""
        row = self._db.execute("SELECT manifest_version FROM bootstrap_trust").fetchone()
        return int(row[0])

    def record_manifest_version(self, version: int) -> None:
        """Remember `version` if it is higher than the one kept (never lowers it)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE bootstrap_trust SET manifest_version = max(manifest_version, ?)",
                (version,),
            )

    def root_document(self) -> bytes | None:
        """BOOT-1.5: the newest root document accepted (None: only the shipped one)."""
        row = self._db.execute("SELECT root_document FROM bootstrap_trust").fetchone()
        return None if row[0] is None else bytes(row[0])

    def record_root(self, document: bytes) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE bootstrap_trust SET root_document = ?", (document,))

    def _trim(self) -> None:
        self._db.execute(
            "DELETE FROM bootstrap_peers WHERE rowid NOT IN ("
            " SELECT rowid FROM bootstrap_peers ORDER BY last_success DESC LIMIT ?)",
            (MAX_PEERS,),
        )

    def peers(self) -> list[CachedPeer]:
        """Every cached peer, best first (most recent success, then fewest failures)."""
        rows = self._db.execute(
            "SELECT public_key, kind, address, last_success, last_failure, failures"
            " FROM bootstrap_peers ORDER BY last_success DESC, failures ASC, public_key, kind"
        ).fetchall()
        return [
            CachedPeer(
                public_key=k,
                address=a,
                kind=AddressKind(t),
                last_success=s,
                last_failure=f,
                failures=n,
            )
            for k, t, a, s, f, n in rows
        ]

    def candidates(self) -> list[Candidate]:
        """The race's CACHED source: the most recent success is the last-good peer (BOOT-4.4)."""
        peers = self.peers()
        # The most recent success leads; the rest go by fewest failures, then recency.
        rest = sorted(peers[1:], key=lambda p: (p.failures, -p.last_success))
        return [
            Candidate(
                method=Method.CACHED,
                public_key=p.public_key,
                address=p.address,
                last_good=i == 0 and p.failures == 0,
                kind=p.kind,  # BOOT-4.8: raced the way it was reached
            )
            for i, p in enumerate(peers[:1] + rest)
        ]
