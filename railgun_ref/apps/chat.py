"""`railgun-ref chat`: a line-based messenger on the client API (`railgun_ref.client`).

One process is one member. ``--data-dir`` holds everything it keeps: its
identity (``identity.key``, 0600), its rooms with their secrets and signed
membership logs, its durable outbox, and its local nicknames and current
room (``chat.sqlite3``); the directory is created 0700. Starting again on the
same directory resumes the same member, in the same rooms, and sends what
was still queued. A lock file keeps two sessions off one directory.

The session reads lines from stdin, a terminal or a pipe alike:

* a line that does not start with ``/`` is sent to the current room
  (``//`` sends a line that starts with ``/``);
* ``/create NAME``, ``/invite KEY [NICK]``, ``/accept INVITATION|FILE [NAME]``,
  ``/rooms``, ``/room NAME``, ``/members``, ``/nick WHO NAME``,
  ``/remove WHO``, ``/leave``, ``/status``, ``/whoami``, ``/help`` and
  ``/quit`` are commands (`HELP`).

It writes one line per thing that happens on stdout, as it happens:

* ``[ROOM] SENDER via PATH: TEXT`` for a message: SENDER is a local
  nickname (``/nick``, or the NICK of ``/invite``) or the first 8 hex
  digits of the sender's node id; PATH is the path that brought it first,
  ``central`` or ``p2p``. Control characters in TEXT are shown as U+FFFD,
  so a member cannot move the cursor of another's terminal;
* ``* ...`` for a status line: the transport state (``connected-aws`` is the
  central path, ``connected-p2p`` peer to peer...), the paths in use, how
  much of the room the P2P path reaches, members joining and leaving, and
  the answers to commands;
* ``! ...`` for an error (a command that failed; with ``-v`` also every
  failure the transport reports, acknowledgements and queued messages).

An invitation is one line, ``railgun-invite:`` and the invitation in
unpadded base64url; ``/invite`` prints it and saves it in
``DATA_DIR/invitations/``, and ``/accept`` takes the line or that file.

End of input (Ctrl-D, or the end of a pipe) and ``/quit`` wait up to
``linger`` seconds for queued messages to be settled, then exit 0; Ctrl-C
exits at once with 130 and SIGTERM with 0. Whatever is still queued is
kept, and sent when the same directory chats again.
"""

import base64
import binascii
import contextlib
import errno
import fcntl
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, assert_never

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream

from railgun_ref.client import (
    CallSignalRefused,
    Client,
    Failure,
    IncomingCall,
    InvitationExpired,
    MembersChange,
    MessageAccepted,
    MessageAcked,
    MessageReceived,
    NoMembersError,
    PathChange,
    Profile,
    ReachChange,
    RoomMembershipChanged,
    StateChange,
    TransportEvent,
    connect,
    fast_profile,
    seed_profile,
)
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.console import UsageError
from railgun_ref.drivers.sqlite import Schema, make_private_directory, open_database
from railgun_ref.drivers.transport import FailureKind
from railgun_ref.identity.keys import node_id_of
from railgun_ref.rooms.core import DEFAULT_INVITATION_TTL

#: What starts an invitation line.
INVITATION_PREFIX: Final = "railgun-invite:"
#: Hex digits of a node id shown for a member without a nickname.
SHORT_ID_DIGITS: Final = 8
#: The timing profiles ``--profile`` names: fast checks the service every second.
PROFILES: Final[dict[str, Callable[[], Profile]]] = {"fast": fast_profile, "seed": seed_profile}
#: Exit status after Ctrl-C (128 + SIGINT), as a shell reports it.
EXIT_INTERRUPTED: Final = 130
#: Failures shown without ``-v``: they mean a message or a room change was refused.
_ALWAYS_SHOWN: Final = frozenset({FailureKind.OPEN, FailureKind.ROOMS})

HELP: Final = """\
a line that is not a command is sent to the current room (start it with // to send a /)
/create NAME                 create a closed room and make it current
/invite KEY [NICK]           invite the member with this key (their /whoami) to the current room
/accept INVITATION|FILE [NAME]  join a room with an invitation line, or a file holding one
/rooms                       your rooms; /room NAME makes one current
/members                     members of the current room
/nick WHO NAME               call a member NAME here (WHO: id prefix or nickname)
/remove WHO                  remove a member from the current room (admins)
/leave                       leave the current room
/status                      transport state, paths in use, queued messages
/whoami                      your id, your key (what others invite) and your P2P address
/quit                        leave the chat (so does Ctrl-D at the start of a line)"""


class ChatError(Exception):
    """A command that cannot be done as typed; shown as a ``!`` line, the session goes on."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatOptions:
    """What ``railgun-ref chat`` was started with."""

    data_dir: Path
    central_url: str | None = None  #: ``http://127.0.0.1:PORT``; None: peer to peer only
    bootstrap: tuple[Address, ...] = ()  #: DHT nodes to join through (another chat's node)
    port: int = 0  #: UDP + TCP port of this member's node (0: any free port)
    profile: str = "fast"  #: a key of `PROFILES`
    mode: str | None = None  #: ``aws``, ``hybrid`` or ``p2p-only`` (default: the profile's)
    linger: float = 10.0  #: seconds to wait at the end for queued messages to be settled
    verbose: bool = False


# ------------------------------------------------------------------ text


def short_id(node_id: bytes) -> str:
    return node_id.hex()[:SHORT_ID_DIGITS]


def printable(text: str) -> str:
    """`text` with every control or other non-printable character as U+FFFD."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def encode_invitation(invitation: bytes) -> str:
    """One copy-pasteable line: the prefix and unpadded base64url."""
    return INVITATION_PREFIX + base64.urlsafe_b64encode(invitation).decode().rstrip("=")


def decode_invitation(text: str) -> bytes:
    """The invitation in a line `encode_invitation` made (ChatError if it is not one)."""
    text = text.strip()
    if not text.startswith(INVITATION_PREFIX):
        raise ChatError(f"an invitation starts with {INVITATION_PREFIX!r}")
    body = text.removeprefix(INVITATION_PREFIX)
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ChatError("the invitation is damaged (not base64url): copy the whole line") from None


def parse_key(text: str) -> bytes:
    """A member's Ed25519 key, 64 hex digits (what ``/whoami`` prints)."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ChatError(f"a key is 64 hex digits (ask them for their /whoami), got {text!r}")
    return key


# ------------------------------------------------------------------ store

_CHAT_SCHEMA: Final = Schema(
    name="chat",
    migrations=(
        """
CREATE TABLE IF NOT EXISTS nicknames (node_id BLOB PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value BLOB NOT NULL);
""",
    ),
)


class ChatStore:
    """Local nicknames and the current room (``chat.sqlite3``); nothing here leaves the device."""

    def __init__(self, path: Path) -> None:
        self._db = open_database(path, _CHAT_SCHEMA)

    def nicknames(self) -> dict[NodeId, str]:
        rows = self._db.execute("SELECT node_id, name FROM nicknames").fetchall()
        return {NodeId(bytes(node_id)): str(name) for node_id, name in rows}

    def set_nickname(self, node_id: NodeId, name: str) -> None:
        """Name `node_id` `name` (a name names one member: whoever had it loses it)."""
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM nicknames WHERE name = ? OR node_id = ?", (name, node_id))
        self._db.execute("INSERT INTO nicknames VALUES (?, ?)", (node_id, name))
        self._db.execute("COMMIT")

    def current_room(self) -> bytes | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = 'room'").fetchone()
        return bytes(row[0]) if row else None

    def set_current_room(self, room_id: bytes | None) -> None:
        if room_id is None:
            self._db.execute("DELETE FROM settings WHERE key = 'room'")
        else:
            self._db.execute("INSERT OR REPLACE INTO settings VALUES ('room', ?)", (room_id,))

    def close(self) -> None:
        self._db.close()


# ------------------------------------------------------------------ events as lines


@dataclass(slots=True, kw_only=True)
class ChatView:
    """Turns transport events into the lines of the module docstring."""

    me: NodeId
    room_label: Callable[[bytes], str]
    nicknames: dict[NodeId, str] = field(default_factory=dict)
    verbose: bool = False
    paths: str = "none"  #: the paths in use, by the last `PathChange`

    def who(self, node_id: bytes) -> str:
        if node_id == self.me:
            return "you"
        return self.nicknames.get(NodeId(node_id)) or short_id(node_id)

    def lines(self, event: TransportEvent) -> list[str]:
        match event:
            case MessageReceived(room_id=room_id, sender=sender, body=body, path=path):
                text = printable(body.decode("utf-8", errors="replace"))
                return [f"[{self.room_label(room_id)}] {self.who(sender)} via {path}: {text}"]
            case StateChange(old=old, new=new, reason=reason):
                return [f"* state: {new.value} (was {old.value}; {reason})"]
            case PathChange(central=central, p2p=p2p):
                used = [name for name, on in (("central", central), ("p2p", p2p)) if on]
                self.paths = " + ".join(used) or "none"
                return [f"* path: {self.paths}"]
            case ReachChange(reach=reach, reachable=reachable, members=members):
                if not members:  # a room of one: nobody to reach
                    return []
                return [f"* p2p reach: {reach.value} ({reachable} of {members} members)"]
            case RoomMembershipChanged():
                return self._membership(event)
            case InvitationExpired(room_id=room_id, invitee=invitee):
                return [f"* {self.room_label(room_id)}: invitation for {self.who(invitee)} expired"]
            case Failure(kind=kind, detail=detail):
                shown = self.verbose or kind in _ALWAYS_SHOWN
                return [f"! {kind.value}: {printable(detail)}"] if shown else []
            case MessageAccepted() | MessageAcked() | MembersChange():
                return self._progress(event) if self.verbose else []
            case IncomingCall(room_id=room_id, caller=caller):
                return [f"* {self.room_label(room_id)}: {self.who(caller)} is calling"]
            case CallSignalRefused(sender=sender, reason=reason):
                return [f"! call signalling from {self.who(sender)}: {reason.value}"]
            case _:
                assert_never(event)

    def _membership(self, event: RoomMembershipChanged) -> list[str]:
        room = self.room_label(event.room_id)
        if self.me in event.removed:
            return [f"* {room}: you are no longer a member ({event.state})"]
        if self.me in event.added:
            return [f"* {room}: you are a member, with {len(event.members) - 1} other(s)"]
        joined = [f"* {room}: {self.who(n)} joined" for n in sorted(event.added)]
        return joined + [f"* {room}: {self.who(n)} left" for n in sorted(event.removed)]

    def _progress(self, event: MessageAccepted | MessageAcked | MembersChange) -> list[str]:
        match event:
            case MessageAccepted(message_id=message_id, members=members):
                return [f"* queued {short_id(message_id)} for {len(members)} member(s)"]
            case MessageAcked(message_id=message_id, path=path, member=member):
                by = f" by {self.who(member)}" if member is not None else ""
                return [f"* {short_id(message_id)} acknowledged via {path}{by}"]
            case MembersChange(room_id=room_id, members=members):
                found = ", ".join(self.who(n) for n in sorted(members)) or "nobody"
                return [f"* {self.room_label(room_id)}: p2p addresses known for {found}"]
            case _:
                assert_never(event)


# ------------------------------------------------------------------ the session

#: A command's handler takes the words after the command name.
Handler = Callable[[list[str]], None]


class ChatSession:
    """One member's interactive session: commands in, lines out (module docstring)."""

    def __init__(
        self, client: Client, store: ChatStore, options: ChatOptions, out: Callable[[str], None]
    ) -> None:
        self.client = client
        self.store = store
        self.options = options
        self.out = out
        self.view = ChatView(
            me=client.node_id,
            room_label=self.room_label,
            nicknames=store.nicknames(),
            verbose=options.verbose,
        )
        self.interrupted: int | None = None  #: the signal that ended the session, if one did
        self.current = self._restored_room()
        self.commands: dict[str, Handler] = {
            "create": self._create,
            "invite": self._invite,
            "accept": self._accept,
            "rooms": self._rooms,
            "room": self._room,
            "members": self._members,
            "nick": self._nick,
            "remove": self._remove,
            "leave": self._leave,
            "status": self._status,
            "whoami": self._whoami,
            "help": lambda _: self.out(HELP),
        }

    # ------------------------------------------------------------ rooms by name

    def room_label(self, room_id: bytes) -> str:
        try:
            return self.client.room_name(room_id) or room_id.hex()[:SHORT_ID_DIGITS]
        except LocalProtocolError:
            return room_id.hex()[:SHORT_ID_DIGITS]

    def _restored_room(self) -> bytes | None:
        saved = self.store.current_room()
        if saved in self.client.rooms:
            return saved
        rooms = self.client.rooms
        return next(iter(rooms)) if len(rooms) == 1 else None

    def _set_current(self, room_id: bytes | None) -> None:
        self.current = room_id
        self.store.set_current_room(room_id)

    def _room_named(self, name: str) -> bytes:
        found = [r for r in self.client.rooms if self.client.room_name(r) == name]
        if not found:
            raise ChatError(f"you are in no room named {name!r} (/rooms lists yours)")
        return found[0]

    def _current(self) -> bytes:
        if self.current is None or self.current not in self.client.rooms:
            raise ChatError("no current room: /create NAME, /accept an invitation or /room NAME")
        return self.current

    def _member(self, who: str, room_id: bytes | None) -> tuple[NodeId, bytes]:
        """A member by nickname or node id prefix: of `room_id`, or of any room if None."""
        rooms = [room_id] if room_id is not None else list(self.client.rooms)
        keys = {n: k for r in rooms for n, k in self.client.member_keys(r).items()}
        named = [n for n in keys if self.view.nicknames.get(n) == who]
        matches = named or [n for n in keys if who and n.hex().startswith(who.lower())]
        if len(matches) != 1:
            what = "no" if not matches else "more than one"
            raise ChatError(f"{what} member matches {who!r} (/members lists them)")
        return matches[0], keys[matches[0]]

    # ------------------------------------------------------------ input

    async def handle(self, line: str) -> bool:
        """Do what one input line asks; False once the session should end (``/quit``)."""
        line = line.rstrip("\r\n")
        if not line.strip():
            return True
        if line.startswith("/") and not line.startswith("//"):
            name, *args = line[1:].split() or ["help"]
            if name in ("quit", "exit"):
                return False
            handler = self.commands.get(name)
            if handler is None:
                self.out(f"! unknown command /{name} (/help lists them)")
                return True
            self._guarded(handler, args)
            return True
        await self._send(line.removeprefix("/"))
        return True

    def _guarded(self, handler: Handler, args: list[str]) -> None:
        try:
            handler(args)
        except ChatError as exc:
            self.out(f"! {exc}")
        except LocalProtocolError as exc:
            self.out(f"! {printable(str(exc))}")
        except RemoteProtocolError as exc:  # an invitation that does not hold
            self.out(f"! refused: {printable(exc.message)} ({exc.code.name})")
        except OSError as exc:  # an invitation file that cannot be read or written
            where = f"{exc.filename}: " if exc.filename else ""
            self.out(f"! {where}{exc.strerror or exc}")

    async def _send(self, text: str) -> None:
        try:
            await self.client.send(self._current(), text)
        except ChatError as exc:
            self.out(f"! {exc}")
        except NoMembersError:
            self.out(
                "! nobody else is in this room yet: /invite someone (they count once they"
                " have accepted)"
            )
        except LocalProtocolError as exc:
            self.out(f"! {exc}")

    # ------------------------------------------------------------ commands

    @staticmethod
    def _words(args: list[str], usage: str, low: int, high: int) -> list[str]:
        if not low <= len(args) <= high:
            raise ChatError(f"usage: {usage}")
        return args

    def _new_name(self, name: str) -> str:
        if any(self.client.room_name(r) == name for r in self.client.rooms):
            raise ChatError(f"you already have a room named {name!r}: choose another name")
        return name

    def _create(self, args: list[str]) -> None:
        (name,) = self._words(args, "/create NAME", 1, 1)
        room_id = self.client.create_room(self._new_name(name))
        self._set_current(room_id)
        self.out(f"* created {name}, a closed room; /invite KEY [NICK] to add someone")

    def _invite(self, args: list[str]) -> None:
        key_text, *nick = self._words(args, "/invite KEY [NICK]", 1, 2)
        room_id, key = self._current(), parse_key(key_text)
        if key == self.client.public_key:
            raise ChatError("that is your own key: ask the person you invite for theirs")
        invitee = node_id_of(key)
        if nick:
            self._name(invitee, nick[0])
        line = encode_invitation(self.client.invite(room_id, key))
        room = self.room_label(room_id)
        self.out(
            f"* invitation to {room} for {self.view.who(invitee)}, valid"
            f" {DEFAULT_INVITATION_TTL / 86400:g} days; give them the next line, they type"
            " /accept and paste it:"
        )
        self.out(line)
        self.out(self._save_invitation(room, invitee, line))

    def _save_invitation(self, room: str, invitee: NodeId, line: str) -> str:
        """Write the invitation to a file too (long lines are awkward to copy); what to say."""
        directory = self.options.data_dir / "invitations"
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", room)
        path = directory / f"{safe}-{short_id(invitee)}.txt"
        try:
            make_private_directory(directory)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(line + "\n")
        except OSError as exc:
            return f"! the invitation is not saved in a file: {exc.strerror or exc}"
        return f"* also saved in {path}: on this machine they can /accept {path}"

    def _accept(self, args: list[str]) -> None:
        given, *name = self._words(args, "/accept INVITATION|FILE [NAME]", 1, 2)
        if not given.startswith(INVITATION_PREFIX) and Path(given).is_file():
            given = Path(given).read_text(errors="replace")
        invitation = decode_invitation(given)
        local = self._new_name(name[0]) if name else self._free_name()
        room_id = self.client.accept(invitation, name=local)
        self._set_current(room_id)
        self.out(f"* joined {local} (a local name: /accept INVITATION NAME chooses another)")

    def _free_name(self) -> str:
        taken = {self.client.room_name(r) for r in self.client.rooms}
        return next(f"room{n}" for n in range(1, len(taken) + 2) if f"room{n}" not in taken)

    def _rooms(self, args: list[str]) -> None:
        self._words(args, "/rooms", 0, 0)
        if not self.client.rooms:
            self.out("* no rooms yet: /create NAME, or /accept an invitation")
        for room_id in sorted(self.client.rooms, key=self.room_label):
            mark = " (current)" if room_id == self.current else ""
            others = len(self.client.members(room_id))
            self.out(f"* {self.room_label(room_id)}: you and {others} other(s){mark}")

    def _room(self, args: list[str]) -> None:
        (name,) = self._words(args, "/room NAME", 1, 1)
        self._set_current(self._room_named(name))
        self.out(f"* current room: {name}")

    def _members(self, args: list[str]) -> None:
        self._words(args, "/members", 0, 0)
        room_id = self._current()
        reachable = self.client.reachable_members(room_id)
        self.out(f"* {self.room_label(room_id)}: {short_id(self.client.node_id)} (you)")
        for node_id in sorted(self.client.members(room_id)):
            p2p = "found on p2p" if node_id in reachable else "not found on p2p yet"
            nick = self.view.nicknames.get(node_id)
            self.out(
                f"* {self.room_label(room_id)}: {short_id(node_id)}"
                f"{f' ({nick})' if nick else ''}, {p2p}"
            )

    def _nick(self, args: list[str]) -> None:
        who, name = self._words(args, "/nick WHO NAME", 2, 2)
        node_id, _ = self._member(who, None)
        self._name(node_id, name)
        self.out(f"* {short_id(node_id)} is {name} here")

    def _name(self, node_id: NodeId, name: str) -> None:
        if re.fullmatch(r"[0-9a-f]+", name):
            raise ChatError("a nickname must not look like a node id (use a letter)")
        self.store.set_nickname(node_id, name)
        self.view.nicknames = self.store.nicknames()

    def _remove(self, args: list[str]) -> None:
        (who,) = self._words(args, "/remove WHO", 1, 1)
        room_id = self._current()
        node_id, key = self._member(who, room_id)
        self.client.remove(room_id, key)
        self.out(f"* removed {self.view.who(node_id)} from {self.room_label(room_id)}")

    def _leave(self, args: list[str]) -> None:
        self._words(args, "/leave", 0, 0)
        room_id = self._current()
        label = self.room_label(room_id)
        self.client.leave(room_id)
        self._set_current(None)
        self.out(f"* you left {label}")

    def _status(self, args: list[str]) -> None:
        self._words(args, "/status", 0, 0)
        self.out(
            f"* state: {self.client.state}; path: {self.view.paths}; queued: {self.client.queued}"
        )

    def _whoami(self, args: list[str]) -> None:
        self._words(args, "/whoami", 0, 0)
        host, port = self.client.address
        self.out(
            f"* you are {short_id(self.client.node_id)}; your key: {self.client.public_key.hex()}"
        )
        self.out(f"* a friend invites you with: /invite {self.client.public_key.hex()} [NICK]")
        self.out(
            f"* p2p node on {host}:{port}: another chat can join with --bootstrap {host}:{port}"
        )

    # ------------------------------------------------------------ the loop

    def greet(self) -> None:
        self._whoami([])
        central = self.options.central_url
        self.out(f"* central service: {central}" if central else "* peer to peer only")
        self._rooms([])
        if self.current is not None:
            self.out(f"* current room: {self.room_label(self.current)}")
        self.out("* /help lists the commands; any other line goes to the current room")

    async def serve(self, lines: MemoryObjectReceiveStream[str]) -> int:
        """Run until end of input, ``/quit`` or a signal; the exit status."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._show_events)
            tg.start_soon(self._watch_signals, tg.cancel_scope)
            async with lines:
                async for line in lines:
                    if not await self.handle(line):
                        break
            await self._linger()
            tg.cancel_scope.cancel()
        queued = self.client.queued
        if queued:
            self.out(
                f"* {queued} message(s) still queued: they are sent when you chat again"
                f" with --data-dir {self.options.data_dir}"
            )
        return EXIT_INTERRUPTED if self.interrupted == signal.SIGINT else 0

    async def _show_events(self) -> None:
        async for event in self.client:
            for line in self.view.lines(event):
                self.out(line)

    async def _watch_signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self.interrupted = signum
                scope.cancel()
                return

    async def _linger(self) -> None:
        """Wait up to `ChatOptions.linger` seconds for the outbox to be settled."""
        if not self.client.queued:
            return
        self.out(f"* waiting up to {self.options.linger:g} s for queued messages to go out")
        with anyio.move_on_after(self.options.linger):
            while self.client.queued:
                await anyio.sleep(0.1)


# ------------------------------------------------------------------ the process


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _read_lines(fd: int, chunk: int = 65536) -> Iterator[str]:
    """Lines of the file descriptor `fd` until its end, with `os.read`: unlike
    `sys.stdin`, a read blocked at exit holds no lock the interpreter's shutdown needs."""
    pending = b""
    while data := os.read(fd, chunk):
        pending += data
        *lines, pending = pending.split(b"\n")
        yield from (line.decode("utf-8", errors="replace") for line in lines)
    if pending:
        yield pending.decode("utf-8", errors="replace")


def _stdin_lines() -> MemoryObjectReceiveStream[str]:
    """Lines of stdin, read by a daemon thread (a blocked read never holds up the exit);
    the stream ends at end of input. Call from inside the event loop."""
    send, receive = anyio.create_memory_object_stream[str](math.inf)
    token = anyio.lowlevel.current_token()

    def read() -> None:
        with contextlib.suppress(Exception):  # no stdin, or the event loop ended first
            for line in _read_lines(sys.stdin.fileno()):
                anyio.from_thread.run_sync(send.send_nowait, line, token=token)
        with contextlib.suppress(Exception):
            anyio.from_thread.run_sync(send.close, token=token)

    threading.Thread(target=read, name="chat-stdin", daemon=True).start()
    return receive


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold ``DIR/chat.lock``: one identity must not run twice (two sessions, one outbox)."""
    fd = os.open(directory / "chat.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"{directory} is in use by another railgun-ref chat (one data directory,"
                " one session)"
            ) from None
        yield
    finally:
        os.close(fd)


def _data_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--data-dir {path} exists and is not a directory")
    make_private_directory(path)
    return path


def _in_use(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno == errno.EADDRINUSE


async def _chat(options: ChatOptions, store: ChatStore) -> int:
    lines = _stdin_lines()
    try:
        async with connect(
            data_dir=options.data_dir,
            central_url=options.central_url,
            bootstrap=list(options.bootstrap) or None,
            profile=PROFILES[options.profile](),
            mode=options.mode,
            port=options.port,
        ) as client:
            session = ChatSession(client, store, options, _print)
            session.greet()
            return await session.serve(lines)
    except* OSError as group:
        if group.subgroup(_in_use) is None:
            raise
        raise UsageError(
            f"cannot listen on 127.0.0.1:{options.port}: Address already in use"
        ) from None


def run_chat(options: ChatOptions) -> int:
    """``railgun-ref chat``: the session of the module docstring; its exit status."""
    directory = _data_dir(options.data_dir)
    with _locked(directory):
        store = ChatStore(directory / "chat.sqlite3")
        try:
            return anyio.run(_chat, options, store)
        finally:
            store.close()
