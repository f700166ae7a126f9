"""Store-and-forward in a notebook: live clients, an away member, its holders on the DHT.

`StoreForwardLab` runs a handful of real clients (`railgun_ref.client.connect`,
fast profile) on 127.0.0.1 in an event loop of its own in a background
thread (`PortalThread`), so its methods are plain blocking calls that work
from a Jupyter cell. They share one closed room; a real ``railgun-ref
central`` process serves them until `take_down` kills it (SIGKILL).

Every client node is also a storage holder (SF-8.5), so what the lab shows
is what the client does on its own: a member `go_away` stops, a message to
the room cannot reach it over P2P, the sender stores it on k holders chosen
near the member's rendezvous key (SF-3.2, SF-8.3); `stop` takes a holder
off the network, `repair` runs one repair round on every holder at once
(SF-7.1, instead of waiting for ``repairInterval``); `come_back` restarts a
member from its data directory: it picks up (SF-8.4), its receipts delete
the replicas and leave tombstones (SF-4), and a holder restarted after that
learns of the deletion by the next SYNC instead of resurrecting the message
(SF-7.4).

`replicas` is one row per running client and message: whether it holds the
message or a tombstone of it. `ring_frame` places every client on the
identifier ring by its node id, with its XOR distance to a rendezvous key;
`ring_chart` draws it (holders marked), `replica_chart` the replica count
of each step.
"""

import math
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self

import altair as alt
import anyio
import anyio.abc
import anyio.to_thread
import networkx as nx
import pandas as pd

from railgun_ref.client import Client, MessageReceived, connect, fast_profile
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.lab.network import PortalThread
from railgun_ref.storeforward.holder import StorageHolder

__all__ = [
    "REPLICA_COLUMNS",
    "RING_COLUMNS",
    "LabMember",
    "StoreForwardLab",
    "replica_chart",
    "ring_chart",
    "ring_frame",
]

ROOM: Final = "lab-room"
#: Columns of `StoreForwardLab.replicas`.
REPLICA_COLUMNS: Final = ("member", "running", "message", "held", "tombstone")
#: Columns of `ring_frame`.
RING_COLUMNS: Final = ("member", "node_id", "angle", "x", "y", "distance_bits", "role")
#: Seconds any one step may take before the lab gives up on it (a loaded machine).
STEP_TIMEOUT: Final = 60.0
_POLL: Final = 0.1


class LabTimeoutError(RuntimeError):
    """A step of the lab did not finish within `STEP_TIMEOUT`."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait(predicate: Callable[[], bool], what: str, timeout: float = STEP_TIMEOUT) -> None:
    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(_POLL)
        return
    raise LabTimeoutError(f"{what}: not within {timeout:.0f} s")


class _Central:
    """``railgun-ref central`` on 127.0.0.1, killed with SIGKILL for the takedown."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.port = _free_port()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [sys.executable, "-m", "railgun_ref.cli", "central", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--db", str(self.db)]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        stdout: IO[str] | None = self.proc.stdout
        first = stdout.readline() if stdout is not None else ""
        if not first.startswith("railgun-ref central listening"):
            self.kill()
            raise RuntimeError(f"the central process did not start: {first!r}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@dataclass
class LabMember:
    """One client of the lab: its data directory survives a stop, so it comes back as itself."""

    index: int
    data_dir: Path
    client: Client | None = None
    node_id: NodeId = NodeId(b"")  # noqa: RUF009 -- NewType: the call returns b""
    received: list[MessageReceived] = field(default_factory=list)
    stop_event: anyio.Event | None = None
    stopped: anyio.Event | None = None

    @property
    def running(self) -> bool:
        return self.client is not None

    def holder(self) -> StorageHolder | None:
        """This member's storage holder (SF-8.5), while it runs."""
        if self.client is None:
            return None
        sf = self.client.transport.store_forward
        return None if sf is None or sf.host is None else sf.host.holder


class StoreForwardLab:
    """Live clients on localhost for the store-and-forward notebook (module docstring).

    >>> with StoreForwardLab.start(6) as lab:  # doctest: +SKIP
    ...     lab.take_down()
    ...     lab.go_away(5)
    ...     message = lab.send(0, "while you were away")
    """

    def __init__(self, members: int) -> None:
        if members < 4:
            raise ValueError("the lab needs at least 4 members (a sender, k = 3 holders)")
        self._tmp = tempfile.TemporaryDirectory(prefix="railgun-lab-sf-")
        root = Path(self._tmp.name)
        self.central = _Central(root / "central.sqlite3")
        self.members = [LabMember(index=i, data_dir=root / f"m{i}") for i in range(members)]
        self.sent: dict[bytes, int] = {}  #: message id -> sender index
        #: message id -> the id its holders know it by (SF-2.5: derived from the ciphertext)
        self.stored_as: dict[bytes, bytes] = {}
        self._loop: PortalThread | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._done: anyio.Event | None = None

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls, members: int = 6) -> Self:
        """Start the central process and `members` clients in one closed room.

        Returns once every member reaches every other over P2P and has told
        the others its mailbox keys (SF-8.1).
        """
        lab = cls(members)
        try:
            lab.central.start()
            lab._loop = PortalThread()
            lab._loop.portal.start_task_soon(lab._serve)
            lab._call(lab._start_all)
        except BaseException:
            lab.close()
            raise
        return lab

    def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        if self._loop is None:
            raise RuntimeError(f"{self!r} is not running")
        return self._loop.portal.call(func, *args)

    async def _serve(self) -> None:
        self._done = anyio.Event()
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self._done.wait()
            tg.cancel_scope.cancel()

    async def _start_all(self) -> None:
        await _wait(lambda: self._tg is not None, "the lab's task group")
        for member in self.members:
            await self._start_member(member)
        first, *others = [m.client for m in self.members if m.client is not None]
        room = first.create_room(ROOM)
        for other in others:
            other.accept(first.invite(room, other.public_key), name=ROOM)
        n = len(self.members) - 1
        for member in self.members:
            assert member.client is not None
            await member.client.wait_for_members(ROOM, n, timeout=STEP_TIMEOUT, reachable=True)
        await _wait(lambda: all(self._mailboxes_known(m) for m in self.members), "mailbox keys")

    def _mailboxes_known(self, member: LabMember) -> bool:
        """SF-8.1: `member` learned every other member's mailbox keys."""
        sf = None if member.client is None else member.client.transport.store_forward
        return sf is not None and sf.client.known_mailboxes() >= len(self.members) - 1

    def _bootstrap(self, member: LabMember) -> list[Address]:
        return [m.client.address for m in self.members if m is not member and m.client is not None][
            :2
        ]

    async def _start_member(self, member: LabMember) -> None:
        assert self._tg is not None
        member.stop_event, member.stopped = anyio.Event(), anyio.Event()
        self._tg.start_soon(self._run_member, member, self._bootstrap(member))
        await _wait(lambda: member.client is not None, f"member {member.index} starting")

    async def _run_member(self, member: LabMember, boot: list[Address]) -> None:
        assert member.stop_event is not None and member.stopped is not None
        try:
            async with connect(
                data_dir=member.data_dir,
                central_url=self.central.url,
                bootstrap=boot,
                profile=fast_profile(),
            ) as client:
                member.client, member.node_id = client, client.node_id
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._collect, member, client)
                    await member.stop_event.wait()
                    tg.cancel_scope.cancel()
        finally:
            member.client = None
            member.stopped.set()

    @staticmethod
    async def _collect(member: LabMember, client: Client) -> None:
        async for event in client:
            if isinstance(event, MessageReceived):
                member.received.append(event)

    def close(self) -> None:
        """Stop every client, kill the central process, end the thread, delete the data."""
        try:
            if self._loop is not None and self._done is not None:
                self._call(self._stop_all)
        finally:
            if self._loop is not None:
                loop, self._loop = self._loop, None
                loop.stop()
            self.central.kill()
            self._tmp.cleanup()

    async def _stop_all(self) -> None:
        for member in self.members:
            await self._stop_member(member)
        assert self._done is not None
        self._done.set()

    @staticmethod
    async def _stop_member(member: LabMember) -> None:
        if member.client is not None and member.stop_event is not None:
            member.stop_event.set()
            assert member.stopped is not None
            await member.stopped.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        running = sum(m.running for m in self.members)
        central = "up" if self.central.running else "down"
        return f"<StoreForwardLab {running}/{len(self.members)} clients running, central {central}>"

    # ------------------------------------------------------------ the story

    def states(self) -> dict[int, str]:
        """Transport state of every running member."""
        return {m.index: m.client.state for m in self.members if m.client is not None}

    def take_down(self) -> None:
        """Kill the central process; return once every running client is on P2P."""
        self.central.kill()
        self._call(
            _wait,
            lambda: all(s == "connected-p2p" for s in self.states().values()),
            "failover to P2P",
        )

    def go_away(self, index: int) -> None:
        """Stop member `index` (it keeps its data directory)."""
        self._call(self._stop_member, self.members[index])

    stop = go_away

    def send(self, sender: int, text: str) -> bytes:
        """`sender` writes to the room; returns the message id once its outbox is empty
        (every member has it, over P2P or on store-and-forward holders).

        Holders know a stored message by an id of its own (SF-2.5); the lab maps
        one to the other by what was new on the holders after the send, so
        send one message at a time while one member is away.
        """
        member = self.members[sender]
        if member.client is None:
            raise RuntimeError(f"member {sender} is not running")
        client = member.client

        async def send() -> bytes:
            message_id = await client.send(ROOM, text)
            await _wait(lambda: client.queued == 0, "the outbox to drain")
            return message_id

        before = self._stored_ids()
        message_id: bytes = self._call(send)
        self.sent[message_id] = sender
        new = self._stored_ids() - before
        if len(new) == 1:  # SF-2.5: a holder knows the stored message by its own id
            (self.stored_as[message_id],) = new
        return message_id

    def _stored_ids(self) -> set[bytes]:
        """The store-and-forward ids (SF-2.5) every running holder keeps, held or deleted."""
        out: set[bytes] = set()
        for member in self.members:
            holder = member.holder()
            if holder is not None:
                out |= set(holder.held) | {mid for mid, _ in holder.tombstones}
        return out

    def holders(self, message_id: bytes) -> list[int]:
        """Indices of the running members holding a replica of `message_id`."""
        return [i for i, held, _ in self._holdings(message_id) if held]

    def tombstones(self, message_id: bytes) -> list[int]:
        """Indices of the running members keeping a tombstone of `message_id`."""
        return [i for i, _, tomb in self._holdings(message_id) if tomb]

    def _holdings(self, message_id: bytes) -> list[tuple[int, bool, bool]]:
        message_id = self.stored_as.get(message_id, message_id)
        out = []
        for member in self.members:
            holder = member.holder()
            if holder is None:
                continue
            tomb = any(mid == message_id for mid, _ in holder.tombstones)
            out.append((member.index, message_id in holder.held, tomb))
        return out

    def rendezvous_key(self, message_id: bytes) -> bytes:
        """The rendezvous key a message is held under (SF-2.5), from any holder of it."""
        message_id = self.stored_as.get(message_id, message_id)
        for member in self.members:
            holder = member.holder()
            if holder is not None and message_id in holder.held:
                return holder.held[message_id].rendezvous_key
            if holder is not None:
                for (mid, _), tomb in holder.tombstones.items():
                    if mid == message_id:
                        return tomb.rendezvous_key
        raise KeyError("no running member holds the message or its tombstone")

    def wait_for_holders(self, message_id: bytes, count: int) -> list[int]:
        """Wait until `count` running members hold `message_id`; return them."""
        self._call(_wait, lambda: len(self.holders(message_id)) >= count, f"{count} replicas")
        return self.holders(message_id)

    def repair(self, message_id: bytes, count: int = 3) -> list[int]:
        """SF-7.1: a repair round on every running holder now; return the holders once
        `count` running members hold `message_id` again."""

        async def repair() -> None:
            for member in self.members:
                sf = None if member.client is None else member.client.transport.store_forward
                if sf is not None and sf.host is not None:
                    sf.host.repair_now()

        self._call(repair)
        return self.wait_for_holders(message_id, count)

    def come_back(self, index: int, expected: Sequence[bytes] = ()) -> None:
        """Restart member `index` from its data directory; return once it received
        every message in `expected`."""
        member = self.members[index]
        self._call(self._start_member, member)
        wanted = set(expected)
        self._call(
            _wait,
            lambda: wanted <= {r.message_id for r in member.received},
            f"member {index} picking up",
        )

    def wait_until_deleted(self, message_id: bytes) -> None:
        """Wait until no running member holds `message_id` (receipts and SYNCs, SF-4, SF-7)."""
        self._call(_wait, lambda: not self.holders(message_id), "every replica deleted")

    def received(self, index: int) -> pd.DataFrame:
        """What member `index` was handed: message id (hex prefix), path, count."""
        rows = [
            {"message": r.message_id.hex()[:8], "path": r.path, "from": self.sent.get(r.message_id)}
            for r in self.members[index].received
        ]
        frame = pd.DataFrame(rows, columns=["message", "path", "from"])
        return frame.groupby(["message", "path", "from"]).size().reset_index(name="copies")

    def replicas(self, message_ids: Sequence[bytes]) -> pd.DataFrame:
        """One row per member and message: whether it holds a replica or a tombstone."""
        rows = []
        for message_id in message_ids:
            holdings = {i: (held, tomb) for i, held, tomb in self._holdings(message_id)}
            for member in self.members:
                held, tomb = holdings.get(member.index, (False, False))
                rows.append(
                    {
                        "member": member.index,
                        "running": member.running,
                        "message": message_id.hex()[:8],
                        "held": held,
                        "tombstone": tomb,
                    }
                )
        return pd.DataFrame(rows, columns=list(REPLICA_COLUMNS))

    def ring(self, message_id: bytes, *, away: Sequence[int] = ()) -> pd.DataFrame:
        """`ring_frame` of this lab for `message_id`'s rendezvous key."""
        key = self.rendezvous_key(message_id)
        holders, tombs = set(self.holders(message_id)), set(self.tombstones(message_id))
        roles = {}
        for member in self.members:
            i = member.index
            if not member.running:
                roles[i] = "away" if i in away else "stopped"
            elif i in holders:
                roles[i] = "holder"
            elif i in tombs:
                roles[i] = "tombstone"
            else:
                roles[i] = "member"
        return ring_frame({m.index: m.node_id for m in self.members}, key, roles)


# ------------------------------------------------------------------ the ring


def _angle(node_id: bytes) -> float:
    """Where an id sits on the ring, radians from the top, clockwise."""
    return 2 * math.pi * int.from_bytes(node_id[:8], "big") / 2**64


def _distance_bits(a: bytes, b: bytes) -> int:
    """log2 of the XOR distance, rounded up (0: the same id)."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_length()


def ring_frame(nodes: dict[int, NodeId], key: bytes, roles: dict[int, str]) -> pd.DataFrame:
    """Every node and the key on the identifier ring (x, y on the unit circle).

    Positions come from networkx's circular layout applied in id order, then
    moved to each id's true angle, so the frame is data a notebook can
    inspect. ``distance_bits`` is the XOR distance to `key` in bits; the key
    itself is the row with member -1 and role ``rendezvous key``.
    """
    graph = nx.Graph()
    graph.add_nodes_from(sorted(nodes, key=lambda i: nodes[i]))
    graph.add_node(-1)
    graph.add_edges_from((-1, i) for i, role in roles.items() if role == "holder")
    ids = {**nodes, -1: key}
    rows = []
    for node in graph.nodes:
        angle = _angle(ids[node])
        rows.append(
            {
                "member": node,
                "node_id": ids[node].hex()[:8],
                "angle": round(angle, 4),
                "x": round(math.sin(angle), 4),
                "y": round(math.cos(angle), 4),
                "distance_bits": _distance_bits(ids[node], key),
                "role": "rendezvous key" if node == -1 else roles.get(node, "member"),
            }
        )
    return pd.DataFrame(rows, columns=list(RING_COLUMNS)).sort_values("angle", ignore_index=True)


ROLE_COLOURS: Final = {
    "rendezvous key": "#111111",
    "holder": "#d62728",
    "tombstone": "#9467bd",
    "member": "#1f77b4",
    "away": "#bbbbbb",
    "stopped": "#ff7f0e",
}


def ring_chart(ring: pd.DataFrame, *, title: str = "who holds what, on the id ring") -> Any:
    """The ring: members and the rendezvous key at their ids' angles, holders joined to it."""
    key = ring[ring["role"] == "rendezvous key"]
    kx, ky = (float(key["x"].iloc[0]), float(key["y"].iloc[0])) if len(key) else (0.0, 0.0)
    edges = ring[ring["role"] == "holder"].assign(x2=kx, y2=ky)
    circle = (
        pd.DataFrame({"t": range(121)})
        .assign(x=lambda f: [math.sin(2 * math.pi * t / 120) for t in f["t"]])
        .assign(y=lambda f: [math.cos(2 * math.pi * t / 120) for t in f["t"]])
    )
    x = alt.X("x:Q", axis=None, scale=alt.Scale(domain=[-1.3, 1.3]))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[-1.3, 1.3]))
    colour = alt.Color(
        "role:N",
        scale=alt.Scale(domain=list(ROLE_COLOURS), range=list(ROLE_COLOURS.values())),
    )
    base = alt.Chart(circle).mark_line(color="#cccccc").encode(x=x, y=y, order="t:Q")
    rules = alt.Chart(edges).mark_rule(color="#d62728").encode(x=x, y=y, x2="x2:Q", y2="y2:Q")
    tooltip = ["member:O", "node_id:N", "distance_bits:Q", "role:N"]
    dots = (
        alt.Chart(ring)
        .mark_circle(size=160, opacity=1)
        .encode(x=x, y=y, color=colour, tooltip=tooltip)
    )
    labels = (
        alt.Chart(ring[ring["member"] >= 0])
        .mark_text(dx=10, dy=-8, fontSize=11)
        .encode(x=x, y=y, text="member:O")
    )
    return (base + rules + dots + labels).properties(title=title, width=300, height=300)


def replica_chart(steps: pd.DataFrame, *, title: str = "replicas after each step") -> Any:
    """Bars: replicas and tombstones of a message after each step (``step``, ``held``,
    ``tombstones`` columns; the steps in the frame's order)."""
    long = steps.melt(id_vars=["step"], value_vars=["held", "tombstones"], var_name="kind")
    order = list(steps["step"])
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("step:N", sort=order, title=None),
            x=alt.X("value:Q", title="members", axis=alt.Axis(tickMinStep=1)),
            color=alt.Color("kind:N", title=None),
            yOffset="kind:N",
        )
        .properties(title=title, width=320)
    )
