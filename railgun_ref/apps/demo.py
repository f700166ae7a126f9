"""`railgun-ref demo`: a messenger surviving a takedown, live on localhost (issue 6).

What runs, all on 127.0.0.0/8 and in a temporary directory:

* the central service -- a real ``railgun-ref central`` process on
  127.0.0.1 with its SQLite mailbox -- reached through a `FaultProxy` on
  127.0.0.2 (the service's "public address") under the name
  ``central.railgun.test``, which a `DnsServer` on 127.0.0.53 resolves;
* `peers` messenger clients (`railgun_ref.client.connect`, fast profile:
  a health check every second), each in a process of its own
  (`railgun_ref.apps.demo_worker`, driven over JSON lines by
  `railgun_ref.apps.demo_clients.ClientProcess`), in one closed room that
  client 0 created and invited the others to, taking turns to chat every
  `chat_interval` seconds.

Then the scenarios, one after another. Each waits until every client is on
the central path with a live session, chats there for `hold` seconds,
applies the fault, waits until every client has failed over to P2P and a
message has arrived over P2P, chats on for `hold` seconds, lifts the fault
and waits until every client has failed back:

* ``dns``      -- the DNS server answers NXDOMAIN for the service's name;
* ``ip``       -- the proxy blackholes the address (accepts, never answers);
* ``takedown`` -- the central process is killed (SIGKILL), then started
  again on the same port and database. Behind the proxy the clients see
  their connections reset (``connection_reset``), as behind a load
  balancer whose backend died. Mid-outage a *fresh* client starts -- empty
  data directory, no peer to start from -- and joins anyway through its
  bootstrap race (the deployment's signed manifest on an IPFS gateway wins;
  its cache and the shipped list are empty, the censor refuses the DNS SRV
  name): client 0 invites it with one pasteable line and it gets every
  message sent to it from then on (railgun_ref/apps/demo_bootstrap.py).

At the end the chat stops, every outbox drains, and `judge` compares what
each client's application was handed with what was sent: every message
exactly once at every other member (duplicates 0, still queued 0, lost 0),
and at the fresh client every message sent to it.
A delivery missing when the drain bound ran out is "still queued" if the
sender's outbox or the central mailbox still holds it for that member (a
failure, named as such) and "lost" only if nothing holds it. `write_report`
writes ``events.json`` (every event of every client, plus phases, faults,
every process's loop lag once a second and the bounds used; times are
seconds since the start) and, when the ``lab`` extra (pandas + altair) is
installed, ``report.html`` with the charts of railgun_ref/apps/demo_report.py.

Why processes: with every client on one event loop, a host busy with other
work delayed all of them at once (1.2 s of lag, issue 11), so health checks
timed out, failback never completed and the outboxes did not drain. A
process per client gives each its own loop and its own share of the CPU
(the scheduler shares it per process, so a CPU hog no longer takes half of
it), and a client process that dies is reported at once (`ClientCrashedError`).
What lag remains is measured in every process and stretches the waits
(`adaptive_bound`): a bound is its base times 1 + lag / LAG_REFERENCE, at
most LAG_STRETCH_CEILING times the base.

`FailoverNetwork` is the engine; the command (`run_demo`) adds the terminal
view, and railgun_ref/lab/failover.py drives the same engine from a notebook.
Nothing here asserts on timings: a phase that does not complete within its
bound is reported as failed and the run goes on to restore the service.
"""

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.abc
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from railgun_ref.apps.demo_bootstrap import (
    GATEWAY_HOST,
    MANIFEST_NODES,
    BootstrapDeployment,
    LateJoiner,
    join_mid_outage,
    on_accepted,
)
from railgun_ref.apps.demo_clients import CLIENT_START_TIMEOUT, ClientCrashedError, ClientProcess
from railgun_ref.client import fast_profile
from railgun_ref.core.counters import Counters
from railgun_ref.drivers.central import held_in_mailbox
from railgun_ref.drivers.dns_server import DnsMode, DnsServer
from railgun_ref.drivers.fault_proxy import FaultProxy, ProxyMode
from railgun_ref.drivers.ipfs_gateway import IpfsGateway

#: The scenarios in the order the demo runs them.
SCENARIOS: Final = ("dns", "ip", "takedown")
#: What each scenario does, for banners and reports.
SCENARIO_TITLES: Final = {
    "dns": "DNS blocking: the service's name answers NXDOMAIN",
    "ip": "IP blocking: the service's address is blackholed",
    "takedown": "Complete takedown: the central process is killed",
}
#: The health-check label each scenario is expected to produce first.
EXPECTED_LABELS: Final = {
    "dns": "dns_nxdomain",
    "ip": "generic_timeout",
    "takedown": "connection_reset",
}
CENTRAL_NAME: Final = "central.railgun.test"
ROOM: Final = "railgun-demo"
CENTRAL_HOST: Final = "127.0.0.1"  #: the central process listens here
PROXY_HOST: Final = "127.0.0.2"  #: the service's "public address": the fault proxy
DNS_HOST: Final = "127.0.0.53"  #: the resolver the clients ask
#: States in which a client carries the room over P2P without the central service.
ON_P2P: Final = frozenset({"connected-p2p", "degraded"})
ON_CENTRAL: Final = "connected-aws"
#: Seconds the central process may take to print its listening line.
CENTRAL_START_TIMEOUT: Final = 30.0
#: Seconds of bounds on the phases (generous: the host may be busy).
JOIN_TIMEOUT: Final = 60.0
SETTLE_TIMEOUT: Final = 30.0
FAILOVER_TIMEOUT: Final = 30.0
FAILBACK_TIMEOUT: Final = 40.0
DRAIN_TIMEOUT: Final = 40.0
#: Bounds of the away-member steps of the takedown (SF-8): storing, then the pickup.
STORE_TIMEOUT: Final = 40.0
PICKUP_TIMEOUT: Final = 40.0
#: Messages the quitting sender writes while a member is away.
AWAY_MESSAGES: Final = 2
#: Adaptive bounds: each bound above is stretched by the loop lag the processes measured
#: during the wait and LAG_WINDOW seconds before it: x (1 + lag / LAG_REFERENCE), at most
#: x LAG_STRETCH_CEILING. The clients' timers tick about once a second (fast profile), so
#: a wake-up late by a quarter of that stretches each step of a failback or a drain.
LAG_REFERENCE: Final = 0.25
LAG_STRETCH_CEILING: Final = 4.0
LAG_WINDOW: Final = 10.0
#: Seconds to wait after the drain for a late duplicate to show up.
LATE_DUPLICATE_WAIT: Final = 1.5
_POLL: Final = 0.05


class ChatError(StrEnum):
    """What `FailoverNetwork.chat_errors` counts: sends the chat loop could not make."""

    NO_MEMBERS = "no_members"  #: the client knew no other member of the room yet
    REFUSED = "refused"  #: the client refused the send for another reason (its reply says)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(output: bytes, lines: int = 5) -> str:
    text = output.decode(errors="replace").strip().splitlines()[-lines:]
    return " | ".join(text) or "(no output)"


def adaptive_bound(base: float, lag: float) -> float:
    """`base` seconds stretched by `lag` seconds of measured loop lag (see LAG_REFERENCE),
    never shorter than `base` and never longer than LAG_STRETCH_CEILING times it."""
    return base * min(LAG_STRETCH_CEILING, 1.0 + max(0.0, lag) / LAG_REFERENCE)


def path_name(*, central: bool, p2p: bool) -> str:
    """The paths a client sends on, as one word."""
    if central and p2p:
        return "both"
    return "central" if central else "p2p" if p2p else "none"


# ------------------------------------------------------------------ results


@dataclass(slots=True)
class ClientView:
    """What one client has done so far (the rows of the live table)."""

    index: int
    address: str
    node_id: str
    state: str = "connecting"
    path: str = "none"
    sent: int = 0
    delivered: int = 0
    via_central: int = 0
    via_p2p: int = 0
    via_store: int = 0  #: picked up from store-and-forward holders (SF-8)
    duplicates: int = 0
    last_failure: str = ""


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioResult:
    """One scenario's outcome; times are seconds since the demo started, durations seconds."""

    scenario: str
    clients: int
    fault_at: float
    restored_at: float
    failed_over: bool  #: every client reached connected-p2p or degraded within the bound
    failed_back: bool  #: every client was connected-aws again (at some point) within the bound
    detection: dict[int, float]  #: client -> fault to its first failed health check
    failover: dict[int, float]  #: client -> fault to its leaving connected-aws for P2P
    failback: dict[int, float]  #: client -> restore to its being connected-aws again
    labels: dict[str, int]  #: failure labels of health checks during the fault
    first_p2p_delivery: float | None  #: fault to the first message delivered over P2P
    sent_during_fault: int
    delivered_over_p2p: int  #: messages handed to applications over P2P during the fault

    @property
    def ok(self) -> bool:
        return self.failed_over and self.failed_back

    def to_json(self) -> dict[str, Any]:
        def stats(values: dict[int, float]) -> dict[str, float | None]:
            numbers = list(values.values())
            median = _median(numbers)
            return {
                "median_s": None if median is None else round(median, 3),
                "max_s": max(numbers) if numbers else None,
            }

        return {
            "scenario": self.scenario,
            "title": SCENARIO_TITLES.get(self.scenario, self.scenario),
            "clients": self.clients,
            "fault_at": self.fault_at,
            "restored_at": self.restored_at,
            "failed_over": self.failed_over,
            "failed_back": self.failed_back,
            "detection": stats(self.detection),
            "failover": stats(self.failover),
            "failback": stats(self.failback),
            "per_client": [
                {
                    "client": index,
                    "detection_s": self.detection.get(index),
                    "failover_s": self.failover.get(index),
                    "failback_s": self.failback.get(index),
                }
                for index in range(self.clients)
            ],
            "labels": dict(self.labels),
            "first_p2p_delivery_s": self.first_p2p_delivery,
            "sent_during_fault": self.sent_during_fault,
            "delivered_over_p2p": self.delivered_over_p2p,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverySummary:
    """What the applications were handed, judged against what was sent (HT-4.3)."""

    members: int
    sent: int  #: messages accepted by `send` (durably, HT-4.1)
    expected: int  #: sent x (members - 1): each message at every other member
    delivered: int  #: distinct (member, message) pairs handed to an application
    duplicates: int  #: messages handed to the same application more than once
    #: expected pairs not handed over yet but still queued: in the sender's outbox, or
    #: held for the member by the central service (a drain bound ran out, nothing lost)
    queued: int
    lost: int  #: expected pairs neither handed over nor queued anywhere
    unexpected: int  #: deliveries of messages nobody sent, or to their own sender
    by_path: dict[str, int] = field(default_factory=dict)  #: first path that brought each
    #: of `expected`, the deliveries due to a member who joined mid-run (`LateJoiner.fold`)
    late: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.sent > 0
            and self.lost == 0
            and self.queued == 0
            and self.duplicates == 0
            and self.unexpected == 0
            and self.delivered == self.expected
        )

    def line(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        late = f" + {self.late} to the fresh client" if self.late else ""
        return (
            f"exactly once: {self.sent} sent x {self.members - 1} other members{late} = "
            f"{self.expected} expected, {self.delivered} delivered, "
            f"{self.duplicates} duplicates, {self.queued} still queued, "
            f"{self.lost} lost - {verdict}"
        )

    def why(self) -> str:
        """Why the run is not exactly once, in words ("" if it is)."""
        reasons = []
        if self.sent == 0:
            reasons.append("no message was sent")
        if self.lost:
            reasons.append(f"{self.lost} deliveries LOST (not delivered, not queued anywhere)")
        if self.queued:
            reasons.append(
                f"{self.queued} deliveries still queued when the drain bound ran out "
                "(in an outbox or the central mailbox: late, not lost)"
            )
        if self.duplicates:
            reasons.append(f"{self.duplicates} duplicates handed to applications")
        if self.unexpected:
            reasons.append(f"{self.unexpected} deliveries of messages nobody sent them")
        return "; ".join(reasons)

    def to_json(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "sent": self.sent,
            "expected": self.expected,
            "delivered": self.delivered,
            "duplicates": self.duplicates,
            "queued": self.queued,
            "lost": self.lost,
            "unexpected": self.unexpected,
            "by_path": dict(self.by_path),
            "late": self.late,
            "exactly_once": self.ok,
        }


def judge(
    members: int,
    sender_of: Mapping[bytes, int],
    received: Sequence[Mapping[bytes, int]],
    first_paths: Sequence[Mapping[bytes, str]],
    *,
    queued: Collection[tuple[int, bytes]] = (),
) -> DeliverySummary:
    """Exactly once, checked: `sender_of` maps each message accepted by `send` to its
    sender's index; `received[i]` counts how often member i's application was handed
    each message id, and `first_paths[i]` the path that brought it first. Every message
    is expected once at each of the other ``members - 1`` members. `queued` holds the
    (member, message id) pairs still waiting somewhere (an outbox, the central mailbox):
    an expected pair not delivered is queued if it is there, and lost if not."""
    delivered = duplicates = unexpected = 0
    by_path: Counter[str] = Counter()
    for index, counts in enumerate(received):
        for message_id, count in counts.items():
            duplicates += max(0, count - 1)
            if sender_of.get(message_id, index) == index:
                unexpected += 1  # nobody sent it, or it came back to its sender
            else:
                delivered += 1
                by_path[first_paths[index].get(message_id, "unknown")] += 1
    expected = len(sender_of) * (members - 1)
    waiting = sum(
        1
        for member, message_id in set(queued)
        if sender_of.get(message_id, member) != member
        and member < len(received)
        and message_id not in received[member]
    )
    return DeliverySummary(
        members=members,
        sent=len(sender_of),
        expected=expected,
        delivered=delivered,
        duplicates=duplicates,
        queued=waiting,
        lost=expected - delivered - waiting,
        unexpected=unexpected,
        by_path=dict(by_path),
    )


# ------------------------------------------------------------------ engine


class CentralProcess:
    """``railgun-ref central`` on a fixed port and database; killed and restarted at will."""

    def __init__(
        self,
        *,
        data_dir: Path,
        port: int,
        origin: str,
        host: str = CENTRAL_HOST,
        launcher: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        """`launcher` goes before the command (``ip netns exec NS``: a network lab's central
        host); a `host` off loopback is bound with ``--allow-public-bind``."""
        self.port = port
        self.origin = origin
        self.host = host
        self.launcher = tuple(launcher)
        self.env = env
        self.db = data_dir / "central.sqlite3"
        self.log = data_dir / "central.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self) -> None:
        """Start the process and wait for its listening line (RuntimeError if it dies)."""
        if self.running:
            return
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            public = [] if self.host == CENTRAL_HOST else ["--allow-public-bind"]
            self.proc = subprocess.Popen(
                [
                    *self.launcher,
                    *(sys.executable, "-m", "railgun_ref.cli", "central"),
                    *("--host", self.host, "--port", str(self.port), *public),
                    *("--db", str(self.db), "--origin", self.origin),
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        self.starts += 1
        output = b""
        with anyio.move_on_after(CENTRAL_START_TIMEOUT):
            while True:
                with self.log.open("rb") as log:
                    log.seek(offset)
                    output = log.read()
                if b"railgun-ref central listening" in output:
                    return
                if self.proc.poll() is not None:
                    self.kill()
                    raise RuntimeError(f"the central process exited: {_tail(output)}")
                await anyio.sleep(_POLL)
        self.kill()
        raise RuntimeError(
            f"the central process did not listen within {CENTRAL_START_TIMEOUT} s: {_tail(output)}"
        )

    def kill(self) -> None:
        """SIGKILL (a takedown: no goodbye to anyone) and reap the process."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None


class FailoverNetwork:
    """The central service, the fault injectors and `peers` chatting client processes.

    Start with ``await tg.start(network.run)``; then `run_scenario` for each
    scenario and `finish` for the delivery summary. Cancelling `run` stops the
    client processes and kills the central process. A client process that
    exits on its own ends `run` with `ClientCrashedError`.
    """

    def __init__(
        self,
        *,
        peers: int,
        data_dir: Path,
        chat_interval: float = 0.5,
        hold: float = 3.0,
        log: Callable[[str], None] | None = None,
        fresh_client: bool = True,
    ) -> None:
        if peers < 2:
            raise ValueError("a room needs at least two peers")
        if chat_interval <= 0 or hold < 0:
            raise ValueError("chat_interval must be positive and hold not negative")
        self.peers = peers
        self.data_dir = Path(data_dir)
        self.chat_interval = chat_interval
        self.hold = hold
        #: The clients run the fast profile (`railgun_ref.apps.demo_worker`).
        self.profile = fast_profile()
        self._log = log or (lambda line: None)
        self.started_at = time.time()
        #: Every event, as JSON-ready dicts with ``t`` (s since start), ``client``, ``kind``.
        self.records: list[dict[str, Any]] = []
        self.views: list[ClientView] = []
        self.results: list[ScenarioResult] = []
        self.scenario = "start"
        self.phase = "starting the central service"
        self.chatting = False
        self.central: CentralProcess | None = None
        self.proxy: FaultProxy | None = None
        self.dns: DnsServer | None = None
        self.clients: list[ClientProcess] = []
        self._index_of: dict[str, int] = {}  #: node id (hex) -> client index
        self._received: list[Counter[bytes]] = []
        self._paths: list[dict[bytes, str]] = []
        self._sender_of: dict[bytes, int] = {}
        self._sent_at: dict[bytes, float] = {}
        self._sending = anyio.Lock()
        #: When each client last became connected-aws (s since start; -1: never).
        self.on_central_at = [-1.0] * peers
        self.chat_errors: Counters[ChatError] = Counters()
        #: When a message was last handed to an application over P2P (s since start).
        self.last_p2p_delivery = -1.0
        #: Loop lag reports, (s since start, seconds), of every process (`watch_lag`).
        self.lags: list[tuple[float, float]] = []
        #: Each adaptive bound as it was used (`wait_until`).
        self.bounds: list[dict[str, Any]] = []
        #: What each client's outbox held at the end (`finish`), and its counters.
        self.final_outboxes: list[dict[str, Any]] = []
        self.held_by_central: set[tuple[bytes, bytes]] = set()
        #: During the takedown a fresh client joins through a bootstrap race (demo_bootstrap).
        self.fresh_client = fresh_client
        self.room = ROOM
        self.gateway: IpfsGateway | None = None
        self.deployment: BootstrapDeployment | None = None
        self.late: LateJoiner | None = None
        self.tg: anyio.abc.TaskGroup | None = None
        #: Clients the chat leaves out: away, or sending for the away scenario (SF-8).
        self.away: set[int] = set()
        #: The away-member story of the takedown, for the report (`away_and_back`).
        self.away_story: dict[str, Any] = {}

    # ------------------------------------------------------------ helpers

    def now(self) -> float:
        """Seconds since the demo started."""
        return time.time() - self.started_at

    @property
    def max_lag(self) -> float:
        """The longest any process's event loop woke up late, seconds."""
        return max((lag for _, lag in self.lags), default=0.0)

    def _record(self, client: int | None, kind: str, at: float | None = None, **data: Any) -> None:
        t = self.now() if at is None else at - self.started_at
        self.records.append({"t": round(t, 4), "client": client, "kind": kind, **data})

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self._record(None, "phase", scenario=self.scenario, phase=phase)
        self._log(f"[{self.now():6.1f} s] {self.scenario}: {phase}")

    def recent_lag(self, since: float) -> float:
        """The worst lag any process reported since `since` (s since start), seconds."""
        return max((lag for t, lag in self.lags if t >= since), default=0.0)

    async def wait_until(self, predicate: Callable[[], bool], base: float, what: str = "") -> bool:
        """Poll `predicate` until it holds (True) or the adaptive bound runs out (False).

        The bound is `base` stretched by the lag measured during the wait and
        just before it (`adaptive_bound`), recomputed at every poll: a host that
        turns busy in the middle of a wait extends it, up to LAG_STRETCH_CEILING.
        """
        start = self.now()
        bound, lag = base, 0.0
        met = False
        while True:
            if predicate():
                met = True
                break
            lag = self.recent_lag(start - LAG_WINDOW)
            bound = adaptive_bound(base, lag)
            if self.now() - start >= bound:
                break
            await anyio.sleep(_POLL)
        entry: dict[str, Any] = {
            "what": what,
            "base_s": base,
            "bound_s": round(bound, 2),
            "lag_ms": round(lag * 1000, 1),
            "waited_s": round(self.now() - start, 2),
            "met": met,
        }
        self.bounds.append(entry)
        self._record(None, "bound", **entry)
        return met

    def bound_note(self) -> str:
        """How the last bound was set, for a phase line."""
        last = self.bounds[-1]
        if last["bound_s"] <= last["base_s"]:
            return f"bound {last['base_s']:.0f} s"
        return (
            f"bound {last['base_s']:.0f} s stretched to {last['bound_s']:.0f} s by "
            f"{last['lag_ms']:.0f} ms of loop lag"
        )

    def states(self) -> list[str]:
        return [client.state for client in self.clients]

    def all_on_central(self) -> bool:
        return all(c.state == ON_CENTRAL and c.central_connected for c in self.clients)

    def all_on_p2p(self) -> bool:
        return all(state in ON_P2P for state in self.states())

    def all_delivered(self) -> bool:
        for index, received in enumerate(self._received):
            for message_id, sender in self._sender_of.items():
                if sender != index and message_id not in received:
                    return False
        return self.late is None or self.late.all_delivered(self._sender_of)

    def outboxes_empty(self) -> bool:
        return all(c.outbox == 0 for c in self.clients)

    # ------------------------------------------------------------ run

    async def run(
        self, *, task_status: anyio.abc.TaskStatus["FailoverNetwork"] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Start everything, report `self` through `task_status`, chat until cancelled."""
        self.started_at = time.time()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            async with anyio.create_task_group() as tg:
                self.tg = tg
                await self._start_services(tg)
                self._set_phase(f"starting {self.peers} client processes")
                await self._start_clients(tg)
                await self._make_room()
                self._publish_bootstrap()
                self._set_phase("waiting until every client knows the room's members")
                joined = await self.wait_until(
                    lambda: all(c.reachable >= self.peers - 1 for c in self.clients),
                    JOIN_TIMEOUT,
                    "join",
                )
                if not joined:
                    raise RuntimeError("the clients did not find each other in the DHT")
                tg.start_soon(self._chat)
                tg.start_soon(self._watch_loop)
                self.chatting = True
                self._set_phase("chatting via the central service")
                task_status.started(self)
                await anyio.sleep_forever()
        finally:
            self.chatting = False
            with anyio.CancelScope(shield=True):
                async with anyio.create_task_group() as stopping:
                    for client in self.clients:
                        stopping.start_soon(client.stop)
                    if self.late is not None:
                        stopping.start_soon(self.late.process.stop)
            if self.central is not None:
                self.central.kill()

    async def _start_services(self, tg: anyio.abc.TaskGroup) -> None:
        """The DNS server, the fault proxy and the central process."""
        self.dns = await tg.start(DnsServer(host=DNS_HOST).run)
        self.dns.register(CENTRAL_NAME, PROXY_HOST)
        central_port = _free_port(CENTRAL_HOST)
        self.proxy = await tg.start(FaultProxy((CENTRAL_HOST, central_port), host=PROXY_HOST).run)
        self.central = CentralProcess(
            data_dir=self.data_dir, port=central_port, origin=self._origin()
        )
        await self.central.start()
        self._record(None, "central", action="started", port=central_port)
        if self.fresh_client:
            self.gateway = await tg.start(IpfsGateway(host=GATEWAY_HOST).run)
            self.deployment = BootstrapDeployment(self.data_dir)

    def _publish_bootstrap(self) -> None:
        """The deployment's manifest and SRV records name the first clients (demo_bootstrap)."""
        if self.deployment is not None and self.gateway is not None and self.dns is not None:
            nodes = [(bytes.fromhex(c.public_key), c.address) for c in self.clients]
            self.deployment.publish(self.gateway, self.dns, nodes[:MANIFEST_NODES])

    def _origin(self) -> str:
        assert self.proxy is not None
        return f"ws://{CENTRAL_NAME}:{self.proxy.address[1]}"

    async def _start_clients(self, tg: anyio.abc.TaskGroup) -> None:
        """Client 0 first (the others join the DHT through it), then the rest at once."""
        for index in range(self.peers):
            data = self.data_dir / f"client-{index:02d}"
            data.mkdir(parents=True, exist_ok=True)
            self.clients.append(ClientProcess(index=index, log_path=data / "stderr.log"))
            self.views.append(ClientView(index=index, address="", node_id=""))
            self._received.append(Counter())
            self._paths.append({})
        await self._start_client(tg, self.clients[0])
        async with anyio.create_task_group() as starting:
            for client in self.clients[1:]:
                starting.start_soon(self._start_client, tg, client)

    async def _start_client(self, tg: anyio.abc.TaskGroup, client: ClientProcess) -> None:
        """Launch `client` in its own process; return once it reported ready."""
        index, data = client.index, client.log_path.parent
        argv = self.worker_argv(index, data)
        if index:
            argv += ["--bootstrap", self.clients[0].address]
        await client.start(argv)
        tg.start_soon(client.pump, self._on_record)
        with anyio.fail_after(CLIENT_START_TIMEOUT):
            await client.ready.wait()
        self._add_client(client)

    async def _make_room(self) -> None:
        """A closed room (ROOM-2..4): client 0 creates it and invites every other client,
        who accepts; each names it ROOM locally (names never leave a device). The
        invitations travel through the coordinator, as any channel may carry them."""
        creator = self.clients[0]
        room_id = (await creator.request("create_room", name=ROOM))["room_id"]
        for client in self.clients[1:]:
            invited = await creator.request("invite", public_key=client.public_key)
            accepted = await client.request("accept", invitation=invited["invitation"], name=ROOM)
            if accepted.get("room_id") != room_id:
                raise RuntimeError(f"client {client.name} could not accept: {accepted}")
        self._record(0, "room", room_id=room_id, invited=len(self.clients) - 1)

    def worker_argv(self, index: int, data: Path) -> list[str]:
        """The arguments every client process gets (`railgun_ref.apps.demo_worker`)."""
        assert self.proxy is not None and self.dns is not None
        dns_host, dns_port = self.dns.address
        return [
            *("--index", str(index), "--data-dir", str(data), "--room", ROOM),
            *("--central-url", f"http://{CENTRAL_NAME}:{self.proxy.address[1]}"),
            *("--origin", self._origin(), "--dns", f"{dns_host}:{dns_port}"),
        ]

    # Hooks for a client that joins mid-run (railgun_ref/apps/demo_bootstrap.py).

    def add_view(self, index: int) -> None:
        self.views.append(ClientView(index=index, address="", node_id=""))

    def add_client_identity(self, client: ClientProcess) -> None:
        self._add_client(client)

    def index_of(self, node_id: str) -> int | None:
        return self._index_of.get(node_id)

    def record_event(self, client: int | None, kind: str, at: float | None, **data: Any) -> None:
        self._record(client, kind, at, **data)

    def set_phase(self, phase: str) -> None:
        self._set_phase(phase)

    def log(self, line: str) -> None:
        self._log(line)

    def _add_client(self, client: ClientProcess) -> None:
        index = client.index
        self._index_of[client.node_id] = index
        self.views[index].address, self.views[index].node_id = client.address, client.node_id
        self._record(
            index, "client", address=client.address, node_id=client.node_id, pid=client.pid
        )
        self._log(f"  client {client.name}: pid {client.pid}, {client.address}")

    def _on_record(self, client: ClientProcess, record: dict[str, Any]) -> None:
        """One line from a client process: update the views, keep it as an event."""
        index = client.index
        kind = record.pop("kind")
        at = record.pop("at", None)
        if kind in ("ready", "reply"):
            return
        if kind == "status":
            self.views[index].state = str(record["state"])
            return
        if kind == "lag":
            self.lags.append((self.now(), record["lag_ms"] / 1000))
        elif kind == "received":
            self._on_received(index, at, record)
            return
        elif kind == "path":
            record = {"path": path_name(central=record["central"], p2p=record["p2p"])}
            self.views[index].path = record["path"]
        elif kind == "state":
            # the event can arrive before the worker's next status line: take it now
            client.status["state"] = self.views[index].state = record["new"]
            if record["new"] == ON_CENTRAL:
                self.on_central_at[index] = at - self.started_at
        elif kind == "accepted" and self.late is not None:
            on_accepted(self.late, record, at - self.started_at)
        elif kind == "acked" and record["member"] is not None:
            record["member"] = self._index_of.get(record["member"])
        elif kind == "failure" and record["failure"] == "health" and record["label"]:
            self.views[index].last_failure = str(record["label"])
        self._record(index, kind, at, **record)

    def _on_received(self, index: int, at: float, record: dict[str, Any]) -> None:
        """Count a delivery (or a duplicate) by path and record it."""
        view = self.views[index]
        mid = bytes.fromhex(record["message_id"])
        count = self._received[index][mid]
        self._received[index][mid] = count + 1
        if count:
            view.duplicates += 1
        else:
            view.delivered += 1
            self._paths[index][mid] = record["path"]
            if record["path"] == "p2p":
                view.via_p2p += 1
                self.last_p2p_delivery = at - self.started_at
            elif record["path"] == "store":
                view.via_store += 1
            else:
                view.via_central += 1
        record["sender"] = self._index_of.get(record["sender"])
        self._record(index, "received", at, **record, duplicate=bool(count))

    async def _watch_loop(self) -> None:
        """How late the coordinator's loop wakes up, once a second (``lag`` events;
        the client processes report their own)."""
        while True:
            worst = 0.0
            for _ in range(10):
                before = time.monotonic()
                await anyio.sleep(0.1)
                worst = max(worst, time.monotonic() - before - 0.1)
            self.lags.append((self.now(), worst))
            self._record(None, "lag", lag_ms=round(worst * 1000, 1))

    async def _chat(self) -> None:
        """One message every `chat_interval` seconds, the clients taking turns."""
        turn = 0
        while True:
            await anyio.sleep(self.chat_interval)
            if not self.chatting:
                continue
            index = turn % self.peers
            turn += 1
            if index not in self.away:
                await self._send(index, f"client {index:02d}, message {turn}")

    async def _send(self, index: int, text: str) -> bytes | None:
        """`index` sends `text` to the room; its message id (None if refused, counted)."""
        async with self._sending:
            reply = await self.clients[index].request("send", text=text)
        if "message_id" not in reply:
            no_members = reply.get("error") == ChatError.NO_MEMBERS.value
            self.chat_errors.inc(ChatError.NO_MEMBERS if no_members else ChatError.REFUSED)
            return None
        message_id = bytes.fromhex(reply["message_id"])
        self._sender_of[message_id] = index
        self._sent_at[message_id] = self.now()
        self.views[index].sent += 1
        return message_id

    # ------------------------------------------------------------ away member (SF-8)

    def has_everything(self, index: int) -> bool:
        """`index` was handed every message the others sent so far."""
        received = self._received[index]
        return all(m in received for m, s in self._sender_of.items() if s != index)

    def stored_for(self, sender: int, member: int, message_ids: set[bytes]) -> bool:
        """A holder acknowledged each of `message_ids` of `sender` for `member` (SF-8.3)."""
        acked = {
            bytes.fromhex(r["message_id"])
            for r in self.records
            if r["client"] == sender
            and r["kind"] == "acked"
            and r.get("path") == "store"
            and r.get("member") == member
        }
        return message_ids <= acked

    async def away_and_back(self) -> None:
        """SF-8 during the takedown: a member goes away, a sender writes to the room and
        quits once holders keep its messages, the member comes back and picks them up;
        then the sender comes back too (and picks up what the others wrote meanwhile)."""
        away, sender = self.peers - 1, self.peers - 2
        self.away.update((away, sender))
        self._set_phase(f"client {away:02d} goes away")
        await self.clients[away].stop()
        self._record(away, "away")
        written = [await self._send(sender, f"client {sender:02d} while {away:02d} is away")]
        for _ in range(AWAY_MESSAGES - 1):
            written.append(await self._send(sender, f"client {sender:02d}, again"))
        mine = {m for m in written if m is not None}
        stored = await self.wait_until(
            lambda: self.stored_for(sender, away, mine), STORE_TIMEOUT, "store"
        )
        self._set_phase(
            f"client {sender:02d}'s messages are with holders; it quits"
            if stored
            else f"client {sender:02d} quits with its outbox not empty ({self.bound_note()})"
        )
        await self.clients[sender].stop()
        self._record(sender, "quit")
        await self._restart(away)
        self.away.discard(away)
        picked = await self.wait_until(lambda: self.has_everything(away), PICKUP_TIMEOUT, "pickup")
        via_store = sum(1 for m in mine if self._paths[away].get(m) == "store")
        self._set_phase(
            f"client {away:02d} is back: {via_store} of {len(mine)} messages of the departed"
            f" client {sender:02d} picked up from holders"
            + ("" if picked else f" (pickup incomplete, {self.bound_note()})")
        )
        self.away_story = {
            "away": away,
            "sender": sender,
            "sent_while_away": len(mine),
            "stored": stored,
            "picked_up": picked,
            "via_store": via_store,
            "copies_at_away": [self._received[away][m] for m in sorted(mine)],
        }
        await self._restart(sender)
        self.away.discard(sender)

    async def _restart(self, index: int) -> None:
        """Start client `index` again in a new process, on its own data directory."""
        assert self.tg is not None
        client = ClientProcess(index=index, log_path=self.clients[index].log_path)
        self.clients[index] = client
        await self._start_client(self.tg, client)
        self._record(index, "returned")

    # ------------------------------------------------------------ scenarios

    async def apply_fault(self, scenario: str) -> None:
        assert self.dns is not None and self.proxy is not None and self.central is not None
        if scenario == "dns":
            self.dns.set_mode(DnsMode.NXDOMAIN, name=CENTRAL_NAME)
        elif scenario == "ip":
            self.proxy.set_mode(ProxyMode.BLACKHOLE)
        elif scenario == "takedown":
            self.central.kill()
            self._record(None, "central", action="killed")
        else:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")

    async def lift_fault(self, scenario: str) -> None:
        assert self.dns is not None and self.proxy is not None and self.central is not None
        if scenario == "dns":
            self.dns.set_mode(DnsMode.ANSWER, name=CENTRAL_NAME)
        elif scenario == "ip":
            self.proxy.set_mode(ProxyMode.PASS)
        elif scenario == "takedown":
            await self.central.start()
            self._record(None, "central", action="started")
        else:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")

    def title(self, scenario: str) -> str:
        """What `scenario` does, in words (a network with other faults overrides this)."""
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        return SCENARIO_TITLES[scenario]

    async def run_scenario(self, scenario: str) -> ScenarioResult:
        """Fault, failover, chat over P2P, restore, failback (module doc)."""
        title = self.title(scenario)
        self.scenario = scenario
        self._set_phase("waiting until every client is on the central service")
        settled = await self.wait_until(self.all_on_central, SETTLE_TIMEOUT, "settle")
        if not settled:
            self._log(
                f"  not every client is on the central service ({self.bound_note()}): "
                f"{dict(Counter(self.states()))}"
            )
        self._set_phase("chatting via the central service")
        await anyio.sleep(self.hold)
        fault_at = self.now()
        await self.apply_fault(scenario)
        self._record(None, "fault", scenario=scenario)
        self._set_phase(f"FAULT - {title}")
        failed_over = await self.wait_until(self.all_on_p2p, FAILOVER_TIMEOUT, "failover")
        if failed_over:
            self._set_phase(f"every client failed over to P2P in {self.now() - fault_at:.1f} s")
        else:
            self._set_phase(
                f"failover incomplete ({self.bound_note()}): {dict(Counter(self.states()))}"
            )
        await self.wait_until(
            lambda: self.last_p2p_delivery >= fault_at, FAILOVER_TIMEOUT, "first P2P delivery"
        )
        if scenario == "takedown" and self.deployment is not None and self.late is None:
            await join_mid_outage(self, self.deployment)
        await anyio.sleep(self.hold)
        if scenario == "takedown" and self.peers >= 4:
            await self.away_and_back()
        restored_at = self.now()
        self._set_phase("restoring the central service")
        await self.lift_fault(scenario)
        self._record(None, "restored", scenario=scenario)
        # Failback is per client: each has been connected-aws again since the restore. On
        # an overloaded host a client may fail over again afterwards (its 1 s health checks
        # time out); that is the transport doing its job, reported here, not a failed
        # failback. The next scenario still waits until every client is back at once.
        failed_back = await self.wait_until(
            lambda: all(self.on_central_at[i] >= restored_at for i in range(self.peers)),
            FAILBACK_TIMEOUT,
            "failback",
        )
        if failed_back:
            again = [c.name for c in self.clients if c.state != ON_CENTRAL]
            note = f" ({len(again)} failed over again since: {', '.join(again)})" if again else ""
            self._set_phase(
                f"every client failed back to the central service in "
                f"{self.now() - restored_at:.1f} s{note}"
            )
        else:
            self._set_phase(
                f"failback incomplete ({self.bound_note()}): {dict(Counter(self.states()))}"
            )
        result = self._result(scenario, fault_at, restored_at, failed_over, failed_back)
        self.results.append(result)
        return result

    def _result(
        self,
        scenario: str,
        fault_at: float,
        restored_at: float,
        failed_over: bool,
        failed_back: bool,
    ) -> ScenarioResult:
        detection: dict[int, float] = {}
        failover: dict[int, float] = {}
        failback: dict[int, float] = {}
        labels: Counter[str] = Counter()
        first_p2p: float | None = None
        delivered_p2p = 0
        for r in self.records:
            t, client = r["t"], r["client"]
            if t < fault_at or client is None or client >= self.peers:
                continue  # the fresh client is reported on its own (demo_bootstrap)
            kind = r["kind"]
            if kind == "failure" and r["failure"] == "health" and t < restored_at:
                labels[str(r["label"])] += 1
                detection.setdefault(client, t - fault_at)
            elif kind == "state":
                if r["new"] in ON_P2P and t < restored_at:
                    failover.setdefault(client, t - fault_at)
                elif r["new"] == ON_CENTRAL and t >= restored_at:
                    failback.setdefault(client, t - restored_at)
            elif kind == "received" and r["path"] == "p2p" and t < restored_at:
                delivered_p2p += not r["duplicate"]
                if first_p2p is None:
                    first_p2p = t - fault_at
        sent = sum(1 for at in self._sent_at.values() if fault_at <= at < restored_at)
        return ScenarioResult(
            scenario=scenario,
            clients=self.peers,
            fault_at=fault_at,
            restored_at=restored_at,
            failed_over=failed_over,
            failed_back=failed_back,
            detection={k: round(v, 3) for k, v in detection.items()},
            failover={k: round(v, 3) for k, v in failover.items()},
            failback={k: round(v, 3) for k, v in failback.items()},
            labels=dict(labels),
            first_p2p_delivery=None if first_p2p is None else round(first_p2p, 3),
            sent_during_fault=sent,
            delivered_over_p2p=delivered_p2p,
        )

    async def finish(self) -> DeliverySummary:
        """Stop chatting, let every outbox drain, and judge the deliveries."""
        self.scenario = "end"
        if self.results:
            self._set_phase("chatting via the central service again")
            await anyio.sleep(self.hold)
        self.chatting = False
        self._set_phase("chat stopped; waiting until every message is delivered")
        async with self._sending:  # a send in flight: its id is known before judging
            drained = await self.wait_until(
                lambda: self.all_delivered() and self.outboxes_empty(), DRAIN_TIMEOUT, "drain"
            )
        if not drained:
            self._log(f"  the outboxes did not drain within the {self.bound_note()}")
        await anyio.sleep(LATE_DUPLICATE_WAIT)  # room for a late duplicate to show up
        await self.take_stock()
        summary = self.summary()
        self._set_phase(summary.line())
        return summary

    async def take_stock(self) -> None:
        """What is still queued: each client's unsettled outbox entries (and counters), and
        what the central service still holds in its mailbox for a member."""
        self.final_outboxes = [await client.request("outbox") for client in self.clients]
        if self.central is not None:
            self.held_by_central = held_in_mailbox(self.central.db)

    def queued_pairs(self) -> set[tuple[int, bytes]]:
        """(member, message) pairs still queued: in the sender's outbox for that member,
        or in the central service's mailbox for it (HT-4.2)."""
        pairs: set[tuple[int, bytes]] = set()
        for outbox in self.final_outboxes:
            for entry in outbox.get("entries", []):
                for member in entry["missing"]:
                    if member in self._index_of:
                        pairs.add((self._index_of[member], bytes.fromhex(entry["message_id"])))
        for member_id, message_id in self.held_by_central:
            index = self._index_of.get(member_id.hex())
            if index is not None:
                pairs.add((index, message_id))
        return pairs

    def summary(self) -> DeliverySummary:
        """`judge` what the applications were handed so far."""
        queued = self.queued_pairs()
        summary = judge(self.peers, self._sender_of, self._received, self._paths, queued=queued)
        return summary if self.late is None else self.late.fold(summary, self._sender_of, queued)

    def report(self, summary: DeliverySummary | None = None) -> dict[str, Any]:
        """Everything observed, JSON-ready (``events.json``)."""
        return {
            "demo": {
                "peers": self.peers,
                "room": ROOM,
                "central_name": CENTRAL_NAME,
                "chat_interval_s": self.chat_interval,
                "hold_s": self.hold,
                "health_check_interval_s": self.profile.transport.aws_health_check_interval,
                "started_at_unix": self.started_at,
                "duration_s": round(self.now(), 3),
            },
            "summary": (summary or self.summary()).to_json(),
            "scenarios": [r.to_json() for r in self.results],
            "away_member": self.away_story,
            "clients": [
                {
                    "client": v.index,
                    "address": v.address,
                    "node_id": v.node_id,
                    "pid": c.pid,
                    "state": c.state,
                    "outbox": c.outbox,
                    "counters": self._final_counters(v.index),
                }
                for v, c in zip(self.views, self.clients, strict=False)
            ],
            "processes": "one per client (railgun_ref/apps/demo_worker.py) and the central",
            "fresh_client": None if self.late is None else self.late.to_json(self._sender_of),
            "max_loop_lag_ms": round(self.max_lag * 1000, 1),
            "bounds": self.bounds,
            "events": self.records,
        }

    def _final_counters(self, index: int) -> dict[str, int]:
        if index < len(self.final_outboxes):
            return dict(self.final_outboxes[index].get("counters", {}))
        return {}


# ------------------------------------------------------------------ report


def write_report(report: dict[str, Any], directory: Path) -> list[str]:
    """Write ``events.json`` and, with the lab extra, ``report.html``; returns notes."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "events.json").write_text(json.dumps(report, indent=1) + "\n")
    notes = [f"events: {directory / 'events.json'}"]
    try:
        from railgun_ref.apps.demo_report import write_html_report  # noqa: PLC0415
    except ImportError as exc:
        notes.append(
            f"no report.html: the charts need the lab extra (pip install -e '.[lab]'): {exc}"
        )
    else:
        write_html_report(report, directory / "report.html")
        notes.append(f"charts: {directory / 'report.html'}")
    return notes


# ------------------------------------------------------------------ terminal view

_STATE_STYLES: Final = {
    "connected-aws": "green",
    "connected-hybrid": "cyan",
    "connected-p2p": "yellow",
    "degraded": "magenta",
    "connecting": "dim",
    "disconnected": "red",
}


def render(network: FailoverNetwork, scenarios: Sequence[str]) -> RenderableType:
    """The live view: a scenario banner over one row per client."""
    if network.scenario in scenarios:
        number = f"{scenarios.index(network.scenario) + 1}/{len(scenarios)} "
        title = SCENARIO_TITLES[network.scenario]
    else:
        number, title = "", network.scenario
    # Text, not markup strings: a live display re-rendered by a `print(markup=False)`
    # (the log lines above it) would show markup as raw text.
    banner = Panel(
        Text.assemble((f"{number}{title}", "bold"), "\n", network.phase),
        title=Text(f"railgun-ref demo - {network.now():.0f} s"),
        expand=False,
    )
    table = Table(expand=False)
    for column in ("client", "address", "state", "path in use"):
        table.add_column(column)
    for column in ("sent", "delivered", "via central", "via p2p", "dup"):
        table.add_column(column, justify="right")
    table.add_column("last health failure")
    for view in network.views:
        style = _STATE_STYLES.get(view.state, "")
        counts = (view.sent, view.delivered, view.via_central, view.via_p2p, view.duplicates)
        table.add_row(
            Text(f"c{view.index:02d}"),
            Text(view.address),
            Text(view.state, style=style),
            Text(view.path),
            *(Text(str(count)) for count in counts),
            Text(view.last_failure),
        )
    summary = network.summary()
    totals = (
        f"sent {summary.sent}, delivered {summary.delivered} of {summary.expected} so far, "
        f"duplicates {summary.duplicates}"
    )
    return Group(banner, table, Text(totals))


def _scenario_lines(result: ScenarioResult) -> list[str]:
    data = result.to_json()

    def fmt(stats: dict[str, float | None]) -> str:
        median, top = stats["median_s"], stats["max_s"]
        if median is None or top is None:
            return "-"
        return f"median {median:.1f} s, max {top:.1f} s"

    labels = ", ".join(f"{k} x{v}" for k, v in sorted(result.labels.items())) or "-"
    first = result.first_p2p_delivery
    verdict = "OK" if result.ok else "FAILED"
    return [
        f"{result.scenario}: {verdict} - {SCENARIO_TITLES[result.scenario]}",
        f"  detection {fmt(data['detection'])}; failover {fmt(data['failover'])}; "
        f"failback {fmt(data['failback'])}",
        f"  health-check labels: {labels}",
        f"  first P2P delivery after {'-' if first is None else f'{first:.1f} s'}; "
        f"{result.sent_during_fault} sent and {result.delivered_over_p2p} delivered over P2P "
        f"during the fault",
    ]


async def _demo(
    *,
    peers: int,
    scenarios: Sequence[str],
    data_dir: Path,
    report_dir: Path,
    hold: float,
    console: Console,
) -> int:
    tty = console.is_terminal
    live: Live | None = None

    def log(line: str) -> None:
        if live is not None:
            live.console.print(line, markup=False, highlight=False)
        else:
            print(line, flush=True)

    network = FailoverNetwork(peers=peers, data_dir=data_dir, hold=hold, log=log)
    summary: DeliverySummary | None = None
    completed = False
    try:
        async with anyio.create_task_group() as tg:
            if tty:
                live = Live(render(network, scenarios), console=console, refresh_per_second=4)
                live.start()

                async def refresh() -> None:
                    while True:
                        assert live is not None
                        live.update(render(network, scenarios))
                        await anyio.sleep(0.25)

                tg.start_soon(refresh)
            await tg.start(network.run)
            for scenario in scenarios:
                await network.run_scenario(scenario)
            summary = await network.finish()
            completed = True
            tg.cancel_scope.cancel()
    finally:
        if live is not None:
            live.update(render(network, scenarios))
            live.stop()
        if not completed and network.records:  # what happened up to the failure
            write_report(network.report(), report_dir)
    assert summary is not None
    print("", flush=True)
    print("Summary", flush=True)
    for result in network.results:
        for line in _scenario_lines(result):
            print(line, flush=True)
    if network.late is not None:
        for line in network.late.lines():
            print(line, flush=True)
    paths = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_path.items()))
    print(f"deliveries by first path: {paths or '-'}", flush=True)
    print(summary.line(), flush=True)
    if not summary.ok:
        print(f"  {summary.why()}", flush=True)
    print(f"worst loop lag of any process: {network.max_lag * 1000:.0f} ms", flush=True)
    for note in write_report(network.report(summary), report_dir):
        print(note, flush=True)
    ok = summary.ok and all(r.ok for r in network.results)
    ok = ok and (network.late is None or network.late.joined)
    print(f"demo {'OK' if ok else 'FAILED'} in {network.now():.1f} s", flush=True)
    return 0 if ok else 1


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions inside `group` and its nested groups."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def run_demo(
    *,
    peers: int | None = None,
    report_dir: str | Path = "railgun-demo-report",
    scenarios: Sequence[str] | None = None,
    quick: bool = False,
) -> int:
    """`railgun-ref demo`: exit status 0 only if every scenario failed over and back and
    every message was delivered exactly once. `quick`: 4 peers, the takedown only, a
    shorter stay on P2P (for tests); explicit `peers`/`scenarios` still win."""
    chosen = tuple(scenarios) if scenarios else (("takedown",) if quick else SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    count = peers if peers is not None else (4 if quick else 12)
    if count < 2:
        raise SystemExit("need at least 2 peers")
    console = Console()
    with tempfile.TemporaryDirectory(prefix="railgun-demo-") as tmp:
        if console.is_terminal:
            console.print(f"data in {tmp}; central service, DNS server and proxy on 127.0.0.x")
        else:
            print(f"railgun-ref demo: {count} peers, scenarios {','.join(chosen)}", flush=True)
        try:
            return anyio.run(
                lambda: _demo(
                    peers=count,
                    scenarios=chosen,
                    data_dir=Path(tmp),
                    report_dir=Path(report_dir),
                    hold=1.5 if quick else 3.0,
                    console=console,
                )
            )
        except KeyboardInterrupt:
            print("interrupted: the clients are stopped and the central process killed")
            return 130
        except (RuntimeError, OSError, ExceptionGroup) as exc:
            # A setup step that could not be done (the central process did not start,
            # the clients did not find each other): say so, exit 1. Anything else is a bug.
            if isinstance(exc, ExceptionGroup):
                setup, other = exc.split((RuntimeError, OSError))
                if other is not None or setup is None:
                    raise
                errors = _leaves(setup)
            else:
                errors = [exc]
            lines = [str(e) if isinstance(e, ClientCrashedError) else repr(e) for e in errors]
            for line in dict.fromkeys(lines):  # the same crash may surface twice
                print(f"demo FAILED: {line}", flush=True)
            print(f"the events up to the failure are in {Path(report_dir) / 'events.json'}")
            return 1
