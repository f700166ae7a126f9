"""The central service: HTTP + WebSocket relay with a durable mailbox (CEN-x).

This is the central path, the one the mode strings call `aws`: a self-hostable process
(`railgun-ref central`) that relays end-to-end encrypted blobs between the
members of a room and keeps them in a mailbox for members that are offline.
It is a Starlette app served by uvicorn:

* ``GET /health`` -> ``{"status": "ok", "time": <server unix time, float s>}`` (CEN-1.2)
* ``GET /metrics`` -> JSON counters, including one per refusal (CEN-7.2)
* ``/ws`` -> the WebSocket protocol of `railgun_ref.wire.central` (CEN-2.x .. CEN-6.x)

Invariants the code keeps:

* **Commit before ack.** A SEND's envelope and its mailbox rows (one per
  other member) are committed to SQLite (WAL, synchronous=FULL) in one
  transaction *before* SENT leaves, and pushes happen after SENT (CEN-4.4).
  A kill -9 after SENT loses nothing: the rows are delivered on reconnect.
* **Deliveries come from the database.** A session's pusher sends the rows of
  its node whose seq is above the session's cursor, in seq order, and sleeps
  until a SEND for that node wakes it. So the backlog on connect and live
  traffic are one code path; within a connection no row is pushed twice, and
  memory per session is one page of rows whatever the backlog (CEN-4.5).
* **Idempotent SEND.** A (sender, message id) pair seen before is
  acknowledged again with its first timestamp and neither stored nor
  delivered again, for as long as the envelope's TTL runs (CEN-4.3).
* **The service sees what E2E-x allows.** Blobs are opaque; the database holds
  room ids, memberships, timestamps/TTLs and the blobs, and the sender only
  as a hash inside the dedup key. Metrics record blob size *buckets* only.

All SQLite access happens on the event loop thread, one statement or
transaction at a time; a SEND costs one fsync'd commit. That is simple and
obviously ordered, which is what a reference wants.
"""

import hashlib
import math
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, Final, NoReturn

import anyio
import uvicorn
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.addresses import check_bind_host, family_of, url_host
from railgun_ref.drivers.sqlite import Schema, open_database
from railgun_ref.identity.keys import RandomBytes, node_id_of, public_key_problem, verify
from railgun_ref.rooms.changes import Change, ChangeKind, decode_change
from railgun_ref.rooms.log import ChangeLog
from railgun_ref.wire.central import (
    MAX_FRAME_SIZE,
    NONCE_SIZE,
    Ack,
    Acked,
    Auth,
    BlobSizeBucket,
    CentralErrorCode,
    Challenge,
    Deliver,
    ErrorFrame,
    FrameError,
    Join,
    Joined,
    Leave,
    Left,
    Send,
    Sent,
    ServerFrame,
    Welcome,
    auth_message,
    close_code,
    decode_client_frame,
    encode_frame,
)


class CentralCounter(StrEnum):
    """CEN-7.2: the service's counters, as ``GET /metrics`` names them."""

    HTTP_HEALTH = "http.health"
    WS_CONNECTIONS = "ws.connections"
    WS_FRAMES_IN = "ws.frames_in"
    AUTH_OK = "auth.ok"
    REFUSED = "refused"  #: label: the `CentralErrorCode` of the ERROR sent (CEN-7.2)
    ROOMS_JOINED = "rooms.joined"
    ROOM_CHANGES_ADDED = "rooms.changes_added"  #: membership changes merged (ROOM-6.3)
    ROOM_CHANGES_REFUSED = "rooms.changes_refused"  #: membership changes refused (ROOM-3.x)
    ROOMS_LEFT = "rooms.left"
    SEND_STORED = "send.stored"
    SEND_DUPLICATE = "send.duplicate"  #: a SEND whose message id was stored already (CEN-4.3)
    SEND_BUCKET = "send.bucket"  #: label: the `BlobSizeBucket` of a stored blob (CEN-7.3)
    MAILBOX_ROWS_WRITTEN = "mailbox.rows_written"
    MAILBOX_PUSHED = "mailbox.pushed"
    MAILBOX_ACKED = "mailbox.acked"
    MAILBOX_EXPIRED = "mailbox.expired"


#: The WebSocket endpoint's path (CEN-1.1).
WEBSOCKET_PATH: Final = "/ws"
_DEDUP_DOMAIN: Final = b"railgun/v1/central-dedup\x00"

_SCHEMA_1: Final = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    room_id BLOB NOT NULL,
    node_id BLOB NOT NULL,
    PRIMARY KEY (room_id, node_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_node ON members (node_id);
CREATE TABLE IF NOT EXISTS envelopes (
    id INTEGER PRIMARY KEY,
    dedup BLOB NOT NULL UNIQUE,
    room_id BLOB NOT NULL,
    message_id BLOB NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    ttl INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    blob BLOB
);
CREATE INDEX IF NOT EXISTS envelopes_by_expiry ON envelopes (expires_ms);
CREATE TABLE IF NOT EXISTS mailbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    member BLOB NOT NULL,
    envelope INTEGER NOT NULL REFERENCES envelopes (id)
);
CREATE INDEX IF NOT EXISTS mailbox_by_member ON mailbox (member, seq);
CREATE INDEX IF NOT EXISTS mailbox_by_envelope ON mailbox (envelope);
"""
#: The mailbox's migrations: 1 is the original schema, whose `meta` table held the
#: version before ``PRAGMA user_version`` did; 2 drops that table.
#: 3 (closed rooms, ROOM-6.3): the membership logs; memberships made by an unproven JOIN
#: (rooms named by a plain name) are dropped, so those rooms are refused (ROOM-2.4).
_SCHEMA_3: Final = """
CREATE TABLE IF NOT EXISTS room_changes (
    room_id BLOB NOT NULL,
    hash BLOB NOT NULL,
    change BLOB NOT NULL,
    PRIMARY KEY (room_id, hash)
) WITHOUT ROWID;
DELETE FROM members;
"""
#: 4 (CEN-4.8): members a merged change added to a room's log who have not joined yet.
_SCHEMA_4: Final = """
CREATE TABLE IF NOT EXISTS pending_members (
    room_id BLOB NOT NULL,
    node_id BLOB NOT NULL,
    PRIMARY KEY (room_id, node_id)
) WITHOUT ROWID;
"""
SCHEMA: Final = Schema(
    name="central mailbox",
    migrations=(_SCHEMA_1, "DROP TABLE IF EXISTS meta;", _SCHEMA_3, _SCHEMA_4),
)
SCHEMA_VERSION: Final = SCHEMA.version


@dataclass(frozen=True, slots=True, kw_only=True)
class CentralConfig:
    """Parameters of one central service. Each names the clause that uses it."""

    #: CEN-3.3: seconds a connection may take to send a valid AUTH.
    auth_timeout: float = 5.0
    #: CEN-4.7: seconds between sweeps of expired mailbox rows.
    sweep_interval: float = 60.0
    #: CEN-5.1: sustained frames per second one session may send after AUTH.
    rate: float = 50.0
    #: CEN-5.1: frames one session may send in a burst.
    burst: float = 100.0
    #: CEN-5.2: malformed frames one session may send before it is closed.
    max_malformed: int = 8
    #: CEN-4.1: rooms one node may be a member of.
    max_rooms_per_node: int = 1024
    #: CEN-4.5: mailbox rows a pusher reads per query (bounds memory per session).
    page_size: int = 64
    #: CEN-3.2: the origin clients sign; None: ``ws://HOST:PORT`` of the listening socket.
    origin: str | None = None
    #: Seconds uvicorn waits for open connections on shutdown before dropping them.
    shutdown_grace: float = 2.0

    def __post_init__(self) -> None:
        if self.auth_timeout <= 0 or self.sweep_interval <= 0:
            raise ValueError("auth_timeout and sweep_interval must be positive")
        if self.rate <= 0 or self.burst < 1 or self.max_malformed < 1 or self.page_size < 1:
            raise ValueError("rate > 0, burst >= 1, max_malformed >= 1, page_size >= 1")


# ---------------------------------------------------------------- storage


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredSend:
    """What `MailboxStore.store_envelope` did with a SEND."""

    timestamp_ms: int  #: the server timestamp of the (first) SEND
    duplicate: bool  #: the (sender, message id) was stored before: nothing was written
    recipients: tuple[NodeId, ...]  #: members given a mailbox row (empty for a duplicate)


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxRow:
    seq: int
    room_id: bytes
    message_id: bytes
    timestamp_ms: int
    ttl: int
    blob: bytes


def dedup_key(sender: NodeId, message_id: bytes) -> bytes:
    """CEN-4.3: the stored key of a (sender, message id) pair (the sender is not kept in clear)."""
    return hashlib.sha256(_DEDUP_DOMAIN + sender + message_id).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomLogMerge:
    """What merging a JOIN's log did (ROOM-6.3)."""

    members: frozenset[NodeId] | None  #: the room's members now; None: no valid log
    added: int  #: changes new to the stored log
    refused: int  #: changes refused (ROOM-3.3, ROOM-3.5)


def _decode_changes(changes: Sequence[bytes]) -> tuple[list[Change], int]:
    decoded: list[Change] = []
    refused = 0
    for data in changes:
        try:
            decoded.append(decode_change(data))
        except RemoteProtocolError:
            refused += 1
    return decoded, refused


def _room_log(room_id: bytes, changes: list[Change]) -> ChangeLog | None:
    """The log of `room_id` started at its genesis (ROOM-3.2), or None without one."""
    for change in changes:
        if change.kind is ChangeKind.CREATE and change.room_id == room_id:
            return ChangeLog(change)
    return None


def held_in_mailbox(path: Path | str) -> set[tuple[bytes, bytes]]:
    """(member node id, message id) of every message the service at `path` still holds
    for a member (HT-4.2), read without writing: for a coordinator that needs to tell a
    message queued at the service from one lost. Empty if there is no database yet."""
    if not Path(path).exists():
        return set()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT mailbox.member, envelopes.message_id FROM mailbox "
            "JOIN envelopes ON envelopes.id = mailbox.envelope"
        ).fetchall()
    finally:
        db.close()
    return {(bytes(member), bytes(message_id)) for member, message_id in rows}


class MailboxStore:
    """The service's durable state: memberships, envelopes and mailbox rows (CEN-4.x).

    Every mutating method is one transaction, committed when it returns, so
    the caller may acknowledge as soon as it has the result. Not thread-safe:
    use it from the event loop thread only.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        # The service opens the store before uvicorn starts its loop and uses it
        # from that loop only; with in-process serving that can be another thread.
        self._db = open_database(path, SCHEMA, check_same_thread=False)

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------ membership

    def is_member(self, room_id: bytes, node_id: NodeId) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM members WHERE room_id=? AND node_id=?", (room_id, node_id)
        ).fetchone()
        return row is not None

    def rooms_of(self, node_id: NodeId) -> list[bytes]:
        return [
            bytes(room)
            for (room,) in self._db.execute(
                "SELECT room_id FROM members WHERE node_id=? ORDER BY room_id", (node_id,)
            )
        ]

    def join(self, room_id: bytes, node_id: NodeId) -> None:
        self._db.execute("INSERT OR IGNORE INTO members VALUES (?, ?)", (room_id, node_id))
        self._not_pending(room_id, node_id)

    def leave(self, room_id: bytes, node_id: NodeId) -> None:
        self._db.execute("DELETE FROM members WHERE room_id=? AND node_id=?", (room_id, node_id))
        self._not_pending(room_id, node_id)

    def _not_pending(self, room_id: bytes, node_id: NodeId) -> None:
        self._db.execute(
            "DELETE FROM pending_members WHERE room_id=? AND node_id=?", (room_id, node_id)
        )

    def _mark_pending(
        self, room_id: bytes, before: ChangeLog | None, members: frozenset[NodeId]
    ) -> None:
        """CEN-4.8: nodes this merge added to an already stored log get mailbox entries from
        now on, before they JOIN; a node the log no longer counts stops being pending."""
        self._db.execute(
            "DELETE FROM pending_members WHERE room_id=? AND node_id NOT IN"
            f" ({','.join('?' * len(members)) or 'NULL'})",
            (room_id, *members),
        )
        if before is None:
            return  # the first log the service sees: its members JOIN as before
        had = {node_id_of(key) for key in before.membership.members}
        self._db.executemany(
            "INSERT OR IGNORE INTO pending_members SELECT ?, ? WHERE NOT EXISTS"
            " (SELECT 1 FROM members WHERE room_id=? AND node_id=?)",
            [(room_id, node, room_id, node) for node in sorted(members - had)],
        )

    def merge_room_log(self, room_id: bytes, changes: Sequence[bytes]) -> RoomLogMerge:
        """ROOM-6.3: check `changes` as a member would, merge them into the room's stored
        log, and end the membership of every node the log no longer counts.

        `members` is None when there is no valid log for `room_id` (no genesis
        naming it): nothing is stored then.
        """
        stored = [
            decode_change(bytes(c))
            for (c,) in self._db.execute(
                "SELECT change FROM room_changes WHERE room_id=?", (room_id,)
            )
        ]
        decoded, refused = _decode_changes(changes)
        log = _room_log(room_id, stored + decoded)
        if log is None:
            return RoomLogMerge(members=None, added=0, refused=refused + len(decoded))
        before = _room_log(room_id, stored)
        if before is not None:
            before.insert(stored)
        log.insert(stored)
        refused += len(log.insert(decoded).refused)
        known = {c.hash for c in stored}
        new = [c for c in log.ordered() if c.hash not in known]
        members = frozenset(node_id_of(key) for key in log.membership.members)
        with self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO room_changes VALUES (?, ?, ?)",
                [(room_id, c.hash, c.encoded) for c in new],
            )
            rows = self._db.execute("SELECT node_id FROM members WHERE room_id=?", (room_id,))
            for (node,) in rows.fetchall():
                if NodeId(bytes(node)) not in members:
                    self.leave(room_id, NodeId(bytes(node)))
            self._mark_pending(room_id, before, members)
        return RoomLogMerge(members=members, added=len(new), refused=refused)

    # ------------------------------------------------------------ envelopes

    def store_envelope(
        self,
        *,
        sender: NodeId,
        room_id: bytes,
        message_id: bytes,
        ttl: int,
        blob: bytes,
        now_ms: int,
    ) -> StoredSend | None:
        """Store one SEND: None if `sender` is not a member of `room_id` (nothing stored).

        CEN-4.3: a duplicate (same sender and message id, envelope not yet
        expired) is reported with its first timestamp and writes nothing.
        """
        key = dedup_key(sender, message_id)
        with self._transaction():
            row = self._db.execute(
                "SELECT timestamp_ms FROM envelopes WHERE dedup=? AND expires_ms > ?",
                (key, now_ms),
            ).fetchone()
            if row is not None:
                return StoredSend(timestamp_ms=row[0], duplicate=True, recipients=())
            if not self.is_member(room_id, sender):
                return None
            # An expired envelope with the same key may still await the sweep.
            self._delete_envelopes("dedup=?", (key,))
            cursor = self._db.execute(
                "INSERT INTO envelopes (dedup, room_id, message_id, timestamp_ms, ttl,"
                " expires_ms, blob) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, room_id, message_id, now_ms, ttl, now_ms + ttl * 1000, blob),
            )
            envelope = cursor.lastrowid
            recipients = tuple(
                NodeId(bytes(member))
                for (member,) in self._db.execute(
                    "INSERT INTO mailbox (member, envelope) SELECT node_id, ? FROM"
                    " (SELECT node_id FROM members WHERE room_id=?"
                    "  UNION SELECT node_id FROM pending_members WHERE room_id=?)"  # CEN-4.8
                    " WHERE node_id != ? ORDER BY node_id RETURNING member",
                    (envelope, room_id, room_id, sender),
                ).fetchall()
            )
            if not recipients:  # nobody to deliver to: keep only the dedup record
                self._db.execute("UPDATE envelopes SET blob=NULL WHERE id=?", (envelope,))
        return StoredSend(timestamp_ms=now_ms, duplicate=False, recipients=recipients)

    def pending(self, member: NodeId, *, after: int, now_ms: int, limit: int) -> list[MailboxRow]:
        """Up to `limit` unexpired mailbox rows of `member` with seq > `after`, in seq order."""
        return [
            MailboxRow(
                seq=seq,
                room_id=bytes(room_id),
                message_id=bytes(message_id),
                timestamp_ms=timestamp_ms,
                ttl=ttl,
                blob=bytes(blob),
            )
            for seq, room_id, message_id, timestamp_ms, ttl, blob in self._db.execute(
                "SELECT m.seq, e.room_id, e.message_id, e.timestamp_ms, e.ttl, e.blob"
                " FROM mailbox m JOIN envelopes e ON e.id = m.envelope"
                " WHERE m.member=? AND m.seq > ? AND e.expires_ms > ? AND e.blob IS NOT NULL"
                " ORDER BY m.seq LIMIT ?",
                (member, after, now_ms, limit),
            )
        ]

    def ack(self, member: NodeId, seqs: Iterable[int]) -> int:
        """CEN-4.6: delete `member`'s rows among `seqs`; returns how many were deleted.

        An envelope whose last mailbox row goes loses its blob at once; its
        row stays (without the blob) until expiry as the dedup record.
        """
        wanted = sorted(set(seqs))
        marks = ",".join("?" * len(wanted))
        with self._transaction():
            envelopes = [
                envelope
                for (envelope,) in self._db.execute(
                    f"DELETE FROM mailbox WHERE member=? AND seq IN ({marks}) RETURNING envelope",
                    (member, *wanted),
                ).fetchall()
            ]
            for envelope in set(envelopes):
                self._db.execute(
                    "UPDATE envelopes SET blob=NULL WHERE id=? AND NOT EXISTS"
                    " (SELECT 1 FROM mailbox WHERE envelope=?)",
                    (envelope, envelope),
                )
        return len(envelopes)

    def sweep(self, *, now_ms: int) -> int:
        """CEN-4.7: delete expired envelopes and their mailbox rows; returns rows deleted."""
        with self._transaction():
            return self._delete_envelopes("expires_ms <= ?", (now_ms,))

    def _delete_envelopes(self, where: str, params: tuple[Any, ...]) -> int:
        rows = self._db.execute(
            f"DELETE FROM mailbox WHERE envelope IN (SELECT id FROM envelopes WHERE {where})",
            params,
        ).rowcount
        self._db.execute(f"DELETE FROM envelopes WHERE {where}", params)
        return rows

    def mailbox_rows(self) -> int:
        count: int = self._db.execute("SELECT COUNT(*) FROM mailbox").fetchone()[0]
        return count

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


# ---------------------------------------------------------------- sessions


class TokenBucket:
    """CEN-5.1: `rate` tokens per second up to `burst`; one frame costs one token."""

    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, *, now: float) -> float:
        """0.0 if a token was taken, else the seconds until one will be available."""
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


@dataclass(eq=False, slots=True, kw_only=True)
class _Session:
    """One authenticated connection (hashed by identity: a node may have several)."""

    websocket: WebSocket
    node_id: NodeId
    bucket: TokenBucket
    send_lock: anyio.Lock = field(default_factory=anyio.Lock)
    wake: anyio.Event = field(default_factory=anyio.Event)
    cursor: int = 0  #: highest mailbox seq pushed on this connection
    malformed: int = 0


def _central_code(code: int) -> CentralErrorCode:
    """The CEN-6.2 code for a decoder's ERR-1.1 code (all of them are CEN codes too)."""
    try:
        return CentralErrorCode(code)
    except ValueError:
        return CentralErrorCode.MALFORMED


class _SessionEndedError(Exception):
    """The connection is gone or was closed by the server: end the session."""


class CentralService:
    """The state of one running central service, shared by all its connections."""

    def __init__(
        self,
        store: MailboxStore,
        config: CentralConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self.store = store
        self.config = config or CentralConfig()
        self.counters: Counters[CentralCounter] = Counters()
        self._clock = clock
        self._monotonic = monotonic
        self._random_bytes = random_bytes
        self._sessions: dict[NodeId, set[_Session]] = {}

    def now_ms(self) -> int:
        return math.floor(self._clock() * 1000)

    # ------------------------------------------------------------ HTTP

    async def health(self, request: Request) -> Response:
        """CEN-1.2: liveness and the server's clock."""
        self.counters.inc(CentralCounter.HTTP_HEALTH)
        return JSONResponse({"status": "ok", "time": self._clock()})

    def metrics_snapshot(self) -> dict[str, Any]:
        """CEN-7.2: counters (every refusal counted by code), sessions, mailbox size."""
        return {
            "counters": self.counters.snapshot(),
            "sessions": sum(len(s) for s in self._sessions.values()),
            "mailbox_rows": self.store.mailbox_rows(),
        }

    async def metrics(self, request: Request) -> Response:
        return JSONResponse(self.metrics_snapshot())

    # ------------------------------------------------------------ background

    async def sweep_forever(self) -> None:
        """CEN-4.7: delete expired rows every `sweep_interval` seconds."""
        while True:
            await anyio.sleep(self.config.sweep_interval)
            swept = self.store.sweep(now_ms=self.now_ms())
            self.counters.inc(CentralCounter.MAILBOX_EXPIRED, swept)

    # ------------------------------------------------------------ WebSocket

    async def websocket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.counters.inc(CentralCounter.WS_CONNECTIONS)
        try:
            session = await self._authenticate(websocket)
        except _SessionEndedError:
            return
        self._sessions.setdefault(session.node_id, set()).add(session)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._push_mailbox, session)
                with suppress(_SessionEndedError):
                    await self._read_loop(session)
                tg.cancel_scope.cancel()
        finally:
            peers = self._sessions.get(session.node_id)
            if peers is not None:
                peers.discard(session)
                if not peers:
                    del self._sessions[session.node_id]

    def _origin(self, websocket: WebSocket) -> str:
        """CEN-3.2: the origin this server expects clients to sign."""
        if self.config.origin is not None:
            return self.config.origin
        server = websocket.scope.get("server")
        scheme = websocket.scope.get("scheme", "ws")
        if server is None:
            return f"{scheme}://"
        host, port = server[0], server[1]
        return f"{scheme}://{host}:{port}"

    async def _send_raw(self, websocket: WebSocket, lock: anyio.Lock | None, data: bytes) -> None:
        try:
            if lock is None:
                await websocket.send_bytes(data)
            else:
                async with lock:
                    await websocket.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError, OSError):
            raise _SessionEndedError from None

    async def _error(
        self,
        websocket: WebSocket,
        lock: anyio.Lock | None,
        code: CentralErrorCode,
        reason: str,
        *,
        req: int = 0,
        retry_after: float = 0.0,
    ) -> None:
        """Send ERROR (CEN-6.1) and count the refusal by code (CEN-7.2)."""
        self.counters.inc(CentralCounter.REFUSED, label=code)
        frame = ErrorFrame(code=code, reason=reason, retry_after_ms=math.ceil(retry_after * 1000))
        await self._send_raw(websocket, lock, encode_frame(frame, req=req))

    async def _close(
        self,
        websocket: WebSocket,
        lock: anyio.Lock | None,
        code: CentralErrorCode,
        reason: str,
        *,
        req: int = 0,
    ) -> NoReturn:
        """CEN-6.3: ERROR, then close with 4000 + code; ends the connection's handler."""
        try:
            await self._error(websocket, lock, code, reason, req=req)
        finally:
            with suppress(WebSocketDisconnect, RuntimeError, OSError):
                await websocket.close(code=close_code(code), reason=code.name)
        raise _SessionEndedError

    async def _receive(self, websocket: WebSocket) -> bytes | str:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError, OSError):
            raise _SessionEndedError from None
        if message["type"] == "websocket.disconnect":
            raise _SessionEndedError
        data: bytes | None = message.get("bytes")
        if data is not None:
            return data
        text: str | None = message.get("text")
        return text if text is not None else ""

    async def _authenticate(self, websocket: WebSocket) -> _Session:
        """CEN-3.x: CHALLENGE, then exactly one valid AUTH within the deadline, or close."""
        nonce = self._random_bytes(NONCE_SIZE)
        challenge = Challenge(
            nonce=nonce,
            server_time_ms=self.now_ms(),
            auth_timeout_ms=math.ceil(self.config.auth_timeout * 1000),
        )
        await self._send_raw(websocket, None, encode_frame(challenge))
        data: bytes | str | None = None
        with anyio.move_on_after(self.config.auth_timeout):
            data = await self._receive(websocket)
        if data is None:
            await self._close(websocket, None, CentralErrorCode.AUTH_TIMEOUT, "no AUTH in time")
        if not isinstance(data, bytes):
            await self._close(websocket, None, CentralErrorCode.MALFORMED, "binary frames only")
        try:
            req, frame = decode_client_frame(data)
        except FrameError as exc:
            code = _central_code(exc.code)
            await self._close(websocket, None, code, exc.message, req=exc.req or 0)
        if not isinstance(frame, Auth):
            reason = f"{frame.TYPE.name} before AUTH"
            await self._close(websocket, None, CentralErrorCode.UNAUTHENTICATED, reason, req=req)
        # CEN-3.3: a nonce is good once, on the one connection it was issued on.
        if frame.nonce != nonce:
            reason = "nonce is not this connection's challenge"
            await self._close(websocket, None, CentralErrorCode.REPLAY, reason, req=req)
        problem = public_key_problem(frame.public_key)
        if problem is not None:
            await self._close(websocket, None, CentralErrorCode.BAD_KEY, problem, req=req)
        signed = auth_message(nonce, self._origin(websocket))
        if not verify(frame.public_key, signed, frame.signature):
            reason = "signature over the challenge does not verify"
            await self._close(websocket, None, CentralErrorCode.BAD_SIGNATURE, reason, req=req)
        node_id = node_id_of(frame.public_key)
        session = _Session(
            websocket=websocket,
            node_id=node_id,
            bucket=TokenBucket(
                rate=self.config.rate, burst=self.config.burst, now=self._monotonic()
            ),
        )
        welcome = Welcome(
            node_id=node_id,
            server_time_ms=self.now_ms(),
            rooms=tuple(self.store.rooms_of(node_id)),
        )
        await self._send_raw(websocket, session.send_lock, encode_frame(welcome, req=req))
        self.counters.inc(CentralCounter.AUTH_OK)
        return session

    async def _reply(self, session: _Session, frame: ServerFrame, req: int) -> None:
        await self._send_raw(session.websocket, session.send_lock, encode_frame(frame, req=req))

    async def _session_refuse(
        self,
        session: _Session,
        code: CentralErrorCode,
        reason: str,
        *,
        req: int = 0,
        retry_after: float = 0.0,
    ) -> None:
        """ERROR on an authenticated session, which stays open."""
        await self._error(
            session.websocket, session.send_lock, code, reason, req=req, retry_after=retry_after
        )

    async def _bad_frame(
        self, session: _Session, code: CentralErrorCode, reason: str, *, req: int = 0
    ) -> None:
        """CEN-5.2: ERROR for a frame that did not decode; the `max_malformed`-th one closes."""
        session.malformed += 1
        if session.malformed >= self.config.max_malformed:
            ws, lock = session.websocket, session.send_lock
            await self._close(ws, lock, code, f"{reason} (too many bad frames)", req=req)
        await self._session_refuse(session, code, reason, req=req)

    async def _read_loop(self, session: _Session) -> None:
        """CEN-4.x, CEN-5.x: handle the frames of an authenticated session until it ends."""
        while True:
            data = await self._receive(session.websocket)
            self.counters.inc(CentralCounter.WS_FRAMES_IN)
            if not isinstance(data, bytes):
                await self._bad_frame(session, CentralErrorCode.MALFORMED, "binary frames only")
                continue
            if len(data) > MAX_FRAME_SIZE:  # CEN-2.2
                reason = f"frame over {MAX_FRAME_SIZE} bytes"
                await self._close(
                    session.websocket, session.send_lock, CentralErrorCode.TOO_LARGE, reason
                )
            wait = session.bucket.take(now=self._monotonic())  # every frame costs a token
            try:
                req, frame = decode_client_frame(data)
            except FrameError as exc:
                code = _central_code(exc.code)
                await self._bad_frame(session, code, exc.message, req=exc.req or 0)
                continue
            if wait > 0:  # CEN-5.1: refused before anything is done, with the request id
                await self._session_refuse(
                    session,
                    CentralErrorCode.RATE_LIMITED,
                    "frame rate limit reached",
                    req=req,
                    retry_after=wait,
                )
                continue
            match frame:
                case Auth():
                    await self._session_refuse(
                        session, CentralErrorCode.REPLAY, "already authenticated", req=req
                    )
                case Join():
                    await self._join(session, frame, req)
                case Leave():
                    self.store.leave(frame.room_id, session.node_id)
                    self.counters.inc(CentralCounter.ROOMS_LEFT)
                    await self._reply(session, Left(room_id=frame.room_id), req)
                case Send():
                    await self._send(session, frame, req)
                case Ack():
                    deleted = self.store.ack(session.node_id, frame.seqs)
                    self.counters.inc(CentralCounter.MAILBOX_ACKED, deleted)
                    await self._reply(session, Acked(deleted=deleted), req)

    async def _join(self, session: _Session, frame: Join, req: int) -> None:
        merged = self.store.merge_room_log(frame.room_id, frame.changes)
        self.counters.inc(CentralCounter.ROOM_CHANGES_ADDED, merged.added)
        self.counters.inc(CentralCounter.ROOM_CHANGES_REFUSED, merged.refused)
        if merged.members is None or session.node_id not in merged.members:
            # ROOM-6.3: only a member by the room's log may join (ROOM-2.4: no plain names).
            await self._session_refuse(
                session, CentralErrorCode.NOT_MEMBER, "not a member by the room's log", req=req
            )
            return
        if not self.store.is_member(frame.room_id, session.node_id):
            if len(self.store.rooms_of(session.node_id)) >= self.config.max_rooms_per_node:
                await self._session_refuse(
                    session, CentralErrorCode.QUOTA, "too many rooms for this node", req=req
                )
                return
            self.store.join(frame.room_id, session.node_id)
            self.counters.inc(CentralCounter.ROOMS_JOINED)
        await self._reply(session, Joined(room_id=frame.room_id), req)

    async def _send(self, session: _Session, frame: Send, req: int) -> None:
        """CEN-4.3/4.4: commit the rows, then SENT to the sender, then wake the members."""
        stored = self.store.store_envelope(
            sender=session.node_id,
            room_id=frame.room_id,
            message_id=frame.message_id,
            ttl=frame.ttl,
            blob=frame.blob,
            now_ms=self.now_ms(),
        )
        if stored is None:
            await self._session_refuse(
                session, CentralErrorCode.NOT_MEMBER, "not a member of this room", req=req
            )
            return
        if stored.duplicate:
            self.counters.inc(CentralCounter.SEND_DUPLICATE)
        else:
            self.counters.inc(CentralCounter.SEND_STORED)
            self.counters.inc(CentralCounter.SEND_BUCKET, label=BlobSizeBucket.of(len(frame.blob)))
            self.counters.inc(CentralCounter.MAILBOX_ROWS_WRITTEN, len(stored.recipients))
        try:
            await self._reply(
                session, Sent(message_id=frame.message_id, timestamp_ms=stored.timestamp_ms), req
            )
        finally:  # the rows are committed: push them even if the sender is gone
            for member in stored.recipients:
                for peer in self._sessions.get(member, ()):
                    peer.wake.set()

    async def _push_mailbox(self, session: _Session) -> None:
        """CEN-4.5: push this node's rows above the cursor, in seq order; sleep until woken."""
        while True:
            session.wake = anyio.Event()  # before the query, so no wake-up is lost
            rows = self.store.pending(
                session.node_id,
                after=session.cursor,
                now_ms=self.now_ms(),
                limit=self.config.page_size,
            )
            if not rows:
                await session.wake.wait()
                continue
            for row in rows:
                deliver = Deliver(
                    room_id=row.room_id,
                    message_id=row.message_id,
                    timestamp_ms=row.timestamp_ms,
                    ttl=row.ttl,
                    blob=row.blob,
                    seq=row.seq,
                )
                try:
                    await self._reply(session, deliver, 0)
                except _SessionEndedError:
                    return
                session.cursor = row.seq
                self.counters.inc(CentralCounter.MAILBOX_PUSHED)


# ---------------------------------------------------------------- app and server


def create_app(service: CentralService) -> Starlette:
    """The ASGI app of `service`: /health, /metrics and the /ws endpoint (CEN-1.1)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(service.sweep_forever)
            yield
            tg.cancel_scope.cancel()

    return Starlette(
        routes=[
            Route("/health", service.health, methods=["GET"]),
            Route("/metrics", service.metrics, methods=["GET"]),
            WebSocketRoute(WEBSOCKET_PATH, service.websocket),
        ],
        lifespan=lifespan,
    )


#: The uvicorn.Server method that installs its SIGINT/SIGTERM handlers around
#: `serve` (verified: uvicorn 0.55; pinned in pyproject.toml). `_Server` replaces it.
UVICORN_SIGNAL_HOOK: Final = "capture_signals"


def check_uvicorn_signal_hook() -> None:
    """Fail loudly unless uvicorn still installs its signal handlers through the hook.

    Raises RuntimeError naming the installed uvicorn version: if the hook were
    renamed, overriding it would not error, and uvicorn would take SIGINT and
    SIGTERM away from our caller.
    """
    hook = getattr(uvicorn.Server, UVICORN_SIGNAL_HOOK, None)
    if not callable(hook) or UVICORN_SIGNAL_HOOK not in uvicorn.Server.serve.__code__.co_names:
        raise RuntimeError(
            f"uvicorn {uvicorn.__version__}: Server.serve no longer calls "
            f"Server.{UVICORN_SIGNAL_HOOK}, which the central service overrides to keep its "
            "own signal handling (verified: uvicorn 0.55; see pyproject.toml)"
        )


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: our caller decides when to stop."""

    def capture_signals(self) -> Any:
        return nullcontext()


def bind_listener(host: str, port: int, *, allow_public: bool = False) -> socket.socket:
    """A TCP socket bound to HOST:PORT (loopback unless `allow_public`; port 0: the OS
    chooses). IPv4 or IPv6."""
    check_bind_host(host, allow_public=allow_public)
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port must be 0..65535, got {port}")
    sock = socket.socket(family_of(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def serve_central(
    service: CentralService,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sock: socket.socket | None = None,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `service` on HOST:PORT (loopback), or on `sock`, until cancelled.

    Reports ``http://HOST:PORT`` (the port the OS chose when `port` is 0)
    through `task_status` once the server accepts connections. On
    cancellation it shuts down gracefully: open WebSockets are closed
    (code 1012) and the store is left consistent. The socket is closed on
    return.
    """
    check_uvicorn_signal_hook()
    if sock is None:
        sock = bind_listener(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        create_app(service),
        lifespan="on",
        log_level="warning",
        access_log=False,
        ws_max_size=4 * MAX_FRAME_SIZE,
        timeout_graceful_shutdown=max(1, math.ceil(service.config.shutdown_grace)),
    )
    server = _Server(config)
    done = anyio.Event()

    async def run() -> None:
        try:
            with anyio.CancelScope(shield=True):  # uvicorn stops via should_exit, not cancel
                await server.serve(sockets=[sock])
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        try:
            with anyio.fail_after(10):
                while not server.started and not done.is_set():
                    await anyio.sleep(0.01)
            if not server.started:
                raise RuntimeError("the central service did not start")
            task_status.started(f"http://{url_host(bound_host)}:{bound_port}")
            await anyio.sleep_forever()
        finally:
            server.should_exit = True
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(service.config.shutdown_grace + 3):
                    await done.wait()
                server.force_exit = True  # connections that outlived the grace are dropped
                with anyio.move_on_after(5):
                    await done.wait()
            sock.close()


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _serve_until_signal(service: CentralService, sock: socket.socket) -> None:
    async with anyio.create_task_group() as tg:
        url = await tg.start(partial(serve_central, service, sock=sock))
        _print(f"railgun-ref central listening {url}")
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                tg.cancel_scope.cancel()
                return


def run_central(
    *,
    host: str,
    port: int,
    db_path: str | None,
    sweep_interval: float = 60.0,
    origin: str | None = None,
    allow_public: bool = False,
) -> int:
    """`railgun-ref central`: serve until SIGTERM/SIGINT. First stdout line (CEN-1.1)::

        railgun-ref central listening http://HOST:PORT

    Without `db_path` the mailbox lives in memory and is lost on exit.
    """
    try:
        config = CentralConfig(sweep_interval=sweep_interval, origin=origin)
    except ValueError as exc:
        sys.stderr.write(f"railgun-ref central: {exc}\n")
        return 2
    try:
        sock = bind_listener(host, port, allow_public=allow_public)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"railgun-ref central: cannot listen on {host}:{port}: {exc}\n")
        return 2  # a port in use or refused: the user's choice, like any bad option
    if db_path is None:
        sys.stderr.write("railgun-ref central: no --db, the mailbox will not survive a restart\n")
    try:
        store = MailboxStore(db_path if db_path is not None else ":memory:")
    except (OSError, ValueError, sqlite3.Error) as exc:
        sock.close()
        sys.stderr.write(f"railgun-ref central: cannot open the mailbox {db_path}: {exc}\n")
        return 2
    service = CentralService(store, config)
    try:
        anyio.run(_serve_until_signal, service, sock)
    finally:
        store.close()
    return 0
