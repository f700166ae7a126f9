"""The bootstrap race in a notebook: every discovery method live on 127.0.0.1, blocked one by one.

`BootstrapLab` starts, in an event loop of its own in a background thread
(like `LocalNetwork`), a client `NodeHost` and one bootstrap node per method
it can be reached by, plus the services the methods go through:

======== ======= ============================================================
method   node    path
======== ======= ============================================================
cached   ``A``   the client's peer cache (SQLite) lists A's UDP address
hardcoded ``B``  the signed list the client ships with lists B's UDP address
tor      ``C``   that list gives C an onion name; pproxy (SOCKS5) tunnels it
i2p      ``D``   that list gives D an I2P name; a local SAM v3 bridge streams it
ipfs     ``E``   a signed manifest on a local IPFS gateway lists E
dns_srv  ``C``   an SRV record names C's key, at C's UDP address
======== ======= ============================================================

`BootstrapLab.race` runs the real race driver (`drivers.bootstrap.run_bootstrap`,
default `RaceConfig`) from a fresh client and returns a `RaceRun`: the
outcome and every attempt and fetch with when it started, when it ended and
how (`won`, a failure label, or `cancelled` when another method won first).
`BootstrapLab.block` blocks one method the way a censor would (`BLOCKS`),
`unblock` lifts it.
`timeline_frame` and `timeline_chart` draw the runs; `rotation_checks` walks
a root rotation (root N -> N+1 signed by both key sets) and shows which
documents a client accepts and why it refuses the others.
"""

import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import altair as alt
import anyio
import anyio.abc
import pandas as pd

from railgun_ref.bootstrap import manifest as m
from railgun_ref.bootstrap.race import (
    CancelAttempt,
    CancelFetch,
    FetchCandidates,
    Method,
    RaceAction,
    RaceConfig,
    RaceFailed,
    RaceWon,
    StartAttempt,
)
from railgun_ref.drivers.bootstrap import (
    BootstrapSetup,
    DnsSrvSource,
    IpfsSource,
    run_bootstrap,
)
from railgun_ref.drivers.bootstrap_proxies import SamBridge, TorProxy
from railgun_ref.drivers.bootstrap_sources import key_label
from railgun_ref.drivers.dns_server import DnsMode, DnsServer
from railgun_ref.drivers.fault_proxy import FaultProxy, ProxyMode
from railgun_ref.drivers.ipfs_gateway import IpfsGateway
from railgun_ref.drivers.peer_cache import PeerCache
from railgun_ref.drivers.sam_bridge import SamBridgeServer
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.identity.keys import Identity
from railgun_ref.lab.network import PortalThread

__all__ = [
    "BLOCKS",
    "METHOD_NODES",
    "OUTCOME_COLOURS",
    "ROTATION_COLUMNS",
    "TIMELINE_COLUMNS",
    "BootstrapLab",
    "RaceRun",
    "Signers",
    "in_flight_peaks",
    "rotation_checks",
    "timeline_chart",
    "timeline_frame",
]

#: Which node each method reaches (the table in the module docstring).
METHOD_NODES: Final = {
    Method.CACHED: "A",
    Method.HARDCODED: "B",
    Method.TOR: "C",
    Method.I2P: "D",
    Method.IPFS: "E",
    Method.DNS_SRV: "C",
}
#: How `BootstrapLab.block` blocks each method.
BLOCKS: Final = {
    Method.CACHED: "stale cache: node A moved while the client was away (old port closed)",
    Method.HARDCODED: "the address listed for node B is blackholed (nothing answers there)",
    Method.TOR: "the SOCKS5 proxy accepts connections and then stalls",
    Method.I2P: "the SAM bridge is down (its port refuses connections)",
    Method.IPFS: "the gateway serves other bytes under the manifest's CID",
    Method.DNS_SRV: "the DNS server answers REFUSED",
}
#: Columns of `timeline_frame`.
TIMELINE_COLUMNS: Final = ("race", "method", "rank", "kind", "address", "start", "end", "outcome")
#: Columns of `rotation_checks`.
ROTATION_COLUMNS: Final = ("document", "signed_by", "client_trusts", "verdict")
#: Colours of the timeline: the winner, a cancellation, then failure labels.
OUTCOME_COLOURS: Final = {"won": "#54a24b", "cancelled": "#bab0ac"}
_FAILURE_COLOUR: Final = "#e45756"

SRV_NAME: Final = "_railgun._udp.bootstrap.test"
_NODE_NAMES: Final = ("A", "B", "C", "D", "E")
_ONION: Final = "c" * 56 + ".onion"
_I2P: Final = "d" * 52 + ".b32.i2p"
_HOUR: Final = 3600.0


def _identity(tag: int) -> Identity:
    return Identity.from_seed(bytes([tag]) * 32)


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _udp(host: NodeHost) -> str:
    return f"{host.address[0]}:{host.address[1]}"


# ------------------------------------------------------------------ signing keys


@dataclass(frozen=True, slots=True)
class Signers:
    """The offline keys of one root version: who signs roots, who signs manifests."""

    root_key: Identity
    manifest_key: Identity

    @classmethod
    def of(cls, version: int) -> Self:
        """Fixed keys per root version, so every run of the notebook signs alike."""
        return cls(_identity(0xA0 + version), _identity(0xB0 + version))

    def root_body(self, version: int, *, now: float) -> dict[int, Any]:
        return m.Root(
            version=version,
            expires_ms=int((now + 365 * 86_400) * 1000),
            root_keys=(self.root_key.public_key,),
            root_threshold=1,
            manifest_keys=(self.manifest_key.public_key,),
            manifest_threshold=1,
        ).body()

    def sign_manifest(
        self,
        nodes: Sequence[m.BootstrapNode],
        *,
        version: int,
        root_version: int,
        now: float,
    ) -> bytes:
        """A manifest of `nodes` under root `root_version`, signed by this manifest key."""
        body = m.Manifest(
            version=version,
            expires_ms=int((now + _HOUR) * 1000),
            root_version=root_version,
            nodes=tuple(nodes),
        ).body()
        return m.sign_document(body, [self.manifest_key])


# ------------------------------------------------------------------ one race


@dataclass(slots=True)
class _Recorder:
    """Collects the start of every attempt and fetch from `run_bootstrap`'s `observe`."""

    starts: dict[tuple[str, int], tuple[Method, str, float]] = field(default_factory=dict)

    def __call__(self, action: RaceAction, elapsed: float) -> None:
        match action:
            case StartAttempt(attempt_id=attempt_id, candidate=candidate):
                self.starts["attempt", attempt_id] = (candidate.method, candidate.address, elapsed)
            case FetchCandidates(method=method):
                self.starts["fetch", int(method)] = (method, "", elapsed)
            case CancelAttempt() | CancelFetch() | RaceWon() | RaceFailed():
                pass


@dataclass(frozen=True, slots=True, kw_only=True)
class RaceRun:
    """One race: its title, what was blocked, the outcome, and every attempt (`rows`)."""

    title: str
    blocked: tuple[Method, ...]
    result: RaceWon | RaceFailed
    rows: tuple[dict[str, Any], ...]

    @property
    def winner(self) -> Method | None:
        return self.result.candidate.method if isinstance(self.result, RaceWon) else None

    def labels(self) -> dict[str, list[str]]:
        """Method name -> the sorted failure labels of its attempts and fetch."""
        out: dict[str, set[str]] = {}
        for failure in self.result.failures:
            assert failure.failure is not None
            out.setdefault(failure.method.name.lower(), set()).add(failure.failure.value)
        return {method: sorted(labels) for method, labels in sorted(out.items())}


def _rows(title: str, result: RaceWon | RaceFailed, recorder: _Recorder) -> list[dict[str, Any]]:
    """Every attempt and fetch: failures from the race's report, the rest from the recorder."""
    rows: list[dict[str, Any]] = []
    failed = set()
    for f in result.failures:
        assert f.failure is not None
        failed.add((f.method, f.address))
        rows.append(_row(title, f.method, f.address, f.started, f.ended, f.failure.value))
    for method, address, started in recorder.starts.values():
        if (method, address) in failed:
            continue
        won = isinstance(result, RaceWon) and (
            result.candidate.method,
            result.candidate.address,
        ) == (method, address)
        outcome = "won" if won else "cancelled"
        if not address and isinstance(result, RaceWon) and result.candidate.method is method:
            outcome = "fetched"  # the fetch that found the winner
        rows.append(_row(title, method, address, started, result.elapsed, outcome))
    return sorted(rows, key=lambda r: (r["rank"], r["start"]))


def _row(
    title: str, method: Method, address: str, start: float, end: float, outcome: str
) -> dict[str, Any]:
    return {
        "race": title,
        "method": method.name.lower(),
        "rank": int(method),
        "kind": "fetch" if not address else "attempt",
        "address": address,
        "start": round(start, 3),
        "end": round(max(end, start), 3),
        "outcome": outcome,
    }


# ------------------------------------------------------------------ the live lab


@dataclass(slots=True)
class _Services:
    client: NodeHost
    nodes: dict[str, NodeHost]
    dns: DnsServer
    gateway: IpfsGateway
    sam: SamBridgeServer
    socks: tuple[str, int]
    stall: tuple[str, int]
    #: Where the client reaches the gateway, and where Tor and I2P streams for nodes C
    #: and D end: the services themselves, or delaying proxies in front of them (`rtt`).
    gateway_address: tuple[str, int]
    stream_ports: dict[str, int]


class BootstrapLab:
    """Every bootstrap method live on localhost (module docstring).

    >>> with BootstrapLab.start() as lab:  # doctest: +SKIP
    ...     lab.race("all open").winner
    ...     lab.block(Method.CACHED)
    """

    def __init__(self, *, config: RaceConfig | None = None, rtt: float = 0.0) -> None:
        self.config = config or RaceConfig()
        self.rtt = rtt  #: seconds added to every round trip of every method (`start`)
        self.signers = Signers.of(1)
        self.now = time.time()
        self.root = m.root_from_document(
            m.sign_document(self.signers.root_body(1, now=self.now), [self.signers.root_key])
        )
        self.blocked: list[Method] = []
        self.runs: list[RaceRun] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="railgun-lab-bootstrap-")
        self._loop: PortalThread | None = None
        self._stop: anyio.Event | None = None
        self._serving: Future[None] | None = None
        self._services: _Services | None = None
        self._ipfs_cid = ""
        self._ipfs_wrong_cid = ""
        self._ipfs_root = self.root
        self._dead_udp = ""
        self._races = 0

    @classmethod
    def start(cls, *, config: RaceConfig | None = None, rtt: float = 0.0) -> Self:
        """Start the nodes and services; returns once every one of them listens.

        `rtt` (seconds) is added to every round trip of every method: the
        client and every node hold each UDP datagram ``rtt / 2`` before sending
        it (`NodeHost` send delay); the DNS server holds each answer ``rtt``;
        the IPFS gateway and the ends of the Tor and I2P streams (nodes C and
        D) sit behind `FaultProxy` in ``delay`` mode, ``rtt / 2`` each way.
        """
        lab = cls(config=config, rtt=rtt)
        try:
            lab._loop = PortalThread()
            lab._serving, lab._stop = lab._loop.portal.start_task(lab._serve)
        except BaseException:
            lab.close()
            raise
        return lab

    # --- services ----------------------------------------------------------------------

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[anyio.Event]) -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            delay = self.rtt / 2
            client = NodeHost(_identity(1), send_delay=delay)
            await tg.start(client.run)
            nodes = {
                name: NodeHost(_identity(10 + n), send_delay=delay)
                for n, name in enumerate(_NODE_NAMES)
            }
            for host in nodes.values():
                await tg.start(host.run)
            dns, gateway, sam = DnsServer(), IpfsGateway(), SamBridgeServer()
            for service in (dns.run, gateway.run, sam.run):
                await tg.start(service)
            dns.answer_delay = self.rtt  # one round trip per query
            gateway_address = await self._delayed(tg, gateway.address)
            ports = {name: (await self._delayed(tg, nodes[name].address))[1] for name in ("C", "D")}
            stall = await tg.start(_stalling_listener)
            async with _socks5_proxy(Path(self._tmp.name), ports["C"]) as socks:
                self._services = _Services(
                    client, nodes, dns, gateway, sam, socks, stall, gateway_address, ports
                )
                self._publish()
                task_status.started(stop)
                await stop.wait()
            tg.cancel_scope.cancel()

    async def _delayed(self, tg: anyio.abc.TaskGroup, upstream: tuple[str, int]) -> tuple[str, int]:
        """`upstream` itself, or with `rtt` a `FaultProxy` in front of it that holds every
        chunk ``rtt / 2`` in each direction (a request and its answer gain one RTT)."""
        if self.rtt <= 0:
            return upstream
        proxy: FaultProxy = await tg.start(FaultProxy(upstream).run)
        proxy.set_mode(ProxyMode.DELAY, delay=self.rtt / 2)
        return proxy.address

    def _publish(self) -> None:
        """The DNS records and the IPFS manifest of the unblocked network."""
        s = self._svc()
        c_key = s.nodes["C"].node.identity.public_key
        target = f"{key_label(c_key)}.nodes.bootstrap.test"
        s.dns.register(target, s.nodes["C"].address[0])
        s.dns.register_srv(SRV_NAME, [(0, 1, s.nodes["C"].address[1], target)])
        self._ipfs_cid = s.gateway.add(self.ipfs_manifest(self.signers, root_version=1))
        other = self.ipfs_manifest(self.signers, root_version=1, version=1)
        self._ipfs_wrong_cid = s.gateway.add(other)
        s.gateway.serve_wrong(self._ipfs_wrong_cid, other + b" (tampered)")
        s.sam.route(_I2P, s.stream_ports["D"])
        self._dead_udp = f"127.0.0.1:{_closed_udp_port()}"

    def _svc(self) -> _Services:
        if self._services is None:
            raise RuntimeError(f"{self!r} is not running")
        return self._services

    def _node(self, name: str, *, blocked: bool = False) -> m.BootstrapNode:
        host = self._svc().nodes[name]
        return m.BootstrapNode(
            public_key=host.node.identity.public_key,
            addresses=((m.AddressKind.UDP, self._dead_udp if blocked else _udp(host)),),
        )

    def hardcoded_manifest(self) -> m.Manifest:
        """The signed list the client ships with: B by UDP, C by onion, D by I2P (verified)."""
        s = self._svc()
        key = {name: s.nodes[name].node.identity.public_key for name in ("B", "C", "D")}
        nodes = [
            self._node("B", blocked=Method.HARDCODED in self.blocked),
            m.BootstrapNode(
                public_key=key["C"], addresses=((m.AddressKind.ONION, f"{_ONION}:7000"),)
            ),
            m.BootstrapNode(public_key=key["D"], addresses=((m.AddressKind.I2P, f"{_I2P}:7000"),)),
        ]
        document = self.signers.sign_manifest(nodes, version=1, root_version=1, now=self.now)
        return m.verify_manifest(self.root, document, now=self.now)

    def ipfs_manifest(self, signers: Signers, *, root_version: int, version: int = 2) -> bytes:
        """A manifest listing node E, signed by `signers`' manifest key."""
        return signers.sign_manifest(
            [self._node("E")], version=version, root_version=root_version, now=self.now
        )

    def publish_ipfs(self, document: bytes, *, root: m.Root | None = None) -> str:
        """Serve `document` on the gateway and race it from now on (under `root` if given).

        This unblocks the IPFS method.
        """
        self._ipfs_cid = self._svc().gateway.add(document)
        self.unblock(Method.IPFS)
        if root is not None:
            self._ipfs_root = root
        return self._ipfs_cid

    # --- blocking ----------------------------------------------------------------------

    def block(self, method: Method) -> str:
        """Block `method` from the next race on, as `BLOCKS` says; returns that description."""
        if method not in self.blocked:
            self.blocked.append(method)
        return BLOCKS[method]

    def unblock(self, method: Method) -> None:
        if method in self.blocked:
            self.blocked.remove(method)

    def setup(self, cache: PeerCache) -> BootstrapSetup:
        """What a fresh client uses: its cache, the shipped list, Tor, I2P, IPFS, DNS SRV.

        Call it on the lab's event loop (it switches the DNS server's mode).
        """
        s, blocked = self._svc(), set(self.blocked)
        tor = s.stall if Method.TOR in blocked else s.socks
        sam = ("127.0.0.1", _free_tcp_port()) if Method.I2P in blocked else s.sam.address
        if Method.DNS_SRV in blocked:
            s.dns.set_mode(DnsMode.REFUSED, name=SRV_NAME)
        else:
            s.dns.clear_mode(SRV_NAME)
        cid = self._ipfs_wrong_cid if Method.IPFS in blocked else self._ipfs_cid
        return BootstrapSetup(
            cache=cache,
            hardcoded=self.hardcoded_manifest(),
            tor=TorProxy(address=tor),
            i2p=SamBridge(address=sam),
            ipfs=IpfsSource(cid=cid, gateway=s.gateway_address, root=self._ipfs_root),
            dns_srv=DnsSrvSource(name=SRV_NAME, nameserver=s.dns.address),
            config=self.config,
        )

    # --- racing ------------------------------------------------------------------------

    def race(self, title: str | None = None) -> RaceRun:
        """Race every method from a fresh client whose cache remembers node A; blocks ~0-4 s.

        The cache says A worked 30 days ago (a client back from a long absence).
        """
        self._races += 1
        title = title or f"race {self._races}"
        recorder = _Recorder()
        result: RaceWon | RaceFailed = self._portal().call(self._race, self._races, recorder)
        run = RaceRun(
            title=title,
            blocked=tuple(self.blocked),
            result=result,
            rows=tuple(_rows(title, result, recorder)),
        )
        self.runs.append(run)
        return run

    async def _race(self, number: int, recorder: _Recorder) -> RaceWon | RaceFailed:
        cache = PeerCache(Path(self._tmp.name) / f"peers-{number}.db")  # SQLite: this thread
        try:
            a_key = self._svc().nodes["A"].node.identity.public_key
            cached = (
                self._dead_udp if Method.CACHED in self.blocked else _udp(self._svc().nodes["A"])
            )
            cache.record_success(a_key, cached, now=self.now - 30 * 86_400)
            setup = self.setup(cache)
            result, _ = await run_bootstrap(
                self._svc().client,
                setup,
                observe=recorder,  # fresh request ids: no replays
            )
        finally:
            cache.close()
        return result

    def _portal(self) -> Any:
        if self._loop is None or self._stop is None:
            raise RuntimeError(f"{self!r} is not running")
        return self._loop.portal

    @property
    def running(self) -> bool:
        return self._stop is not None

    def close(self) -> None:
        """Stop the nodes, the services and the proxy process; delete the caches."""
        try:
            if self._loop is not None and self._stop is not None and self._serving is not None:
                stop, serving, self._stop, self._serving = self._stop, self._serving, None, None
                self._loop.portal.call(stop.set)
                serving.result()  # every service stopped and the proxy process reaped
        finally:
            if self._loop is not None:
                loop, self._loop = self._loop, None
                loop.stop()
            self._services = None
            self._tmp.cleanup()

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
        state = "running" if self.running else "stopped"
        blocked = ", ".join(b.name.lower() for b in self.blocked) or "nothing"
        return f"<BootstrapLab 5 nodes, 6 methods, blocked: {blocked}: {state}>"


@asynccontextmanager
async def _socks5_proxy(directory: Path, target_port: int) -> AsyncIterator[tuple[str, int]]:
    """pproxy (a SOCKS5 server from PyPI) on loopback, tunnelling the onion name to node C."""
    port = _free_tcp_port()
    rules = directory / "onion-rules"
    rules.write_text(re.escape(_ONION) + "\n", encoding="utf-8")
    argv = [sys.executable, "-m", "pproxy", "-l", f"socks5://127.0.0.1:{port}"]
    argv += ["-r", f"tunnel://127.0.0.1:{target_port}?{rules}"]
    devnull = subprocess.DEVNULL
    process = await anyio.open_process(argv, stdin=devnull, stdout=devnull, stderr=devnull)
    try:
        with anyio.fail_after(15):
            while True:
                try:
                    await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await anyio.sleep(0.05)
        yield ("127.0.0.1", port)
    finally:
        with anyio.CancelScope(shield=True):  # reap it on this loop, even when cancelled
            process.terminate()
            await process.wait()


async def _stalling_listener(*, task_status: anyio.abc.TaskStatus[tuple[str, int]]) -> None:
    """A TCP port that accepts and then says nothing: a stalled SOCKS5 proxy."""

    async def stall(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener:
        task_status.started(("127.0.0.1", listener.extra(anyio.abc.SocketAttribute.local_port)))
        await listener.serve(stall)


# ------------------------------------------------------------------ tables and charts


def timeline_frame(runs: Sequence[RaceRun]) -> pd.DataFrame:
    """One row per attempt or fetch of each race (`TIMELINE_COLUMNS`), by race then method."""
    rows = [row for run in runs for row in run.rows]
    return pd.DataFrame(rows, columns=list(TIMELINE_COLUMNS))


def timeline_chart(frame: pd.DataFrame, *, title: str = "Bootstrap race attempts") -> Any:
    """Per race, a row per method: each attempt from start to end, coloured by its outcome."""
    outcomes = sorted(set(frame["outcome"]) - set(OUTCOME_COLOURS) - {"fetched"})
    domain = ["won", "fetched", "cancelled", *outcomes]
    colours = [OUTCOME_COLOURS["won"], "#72b7b2", OUTCOME_COLOURS["cancelled"]]
    palette = ["#e45756", "#f58518", "#b279a2", "#9d755d", "#4c78a8", "#eeca3b", "#ff9da6"]
    colours += [palette[i % len(palette)] for i in range(len(outcomes))]
    order = [m.name.lower() for m in Method]
    data = frame.assign(
        end_shown=frame["end"].where(frame["end"] > frame["start"] + 0.02, frame["start"] + 0.02)
    )
    bars = (
        alt.Chart(data)
        .mark_bar(height=10, opacity=0.85)
        .encode(
            x=alt.X("start:Q", title="seconds since the race began"),
            x2="end_shown:Q",
            y=alt.Y("method:N", sort=order, title=None),
            color=alt.Color("outcome:N", scale=alt.Scale(domain=domain, range=colours)),
            tooltip=["race:N", "method:N", "kind:N", "address:N", "start:Q", "end:Q", "outcome:N"],
        )
        .properties(width=560, height=110)
    )
    return bars.facet(
        row=alt.Row("race:N", sort=list(dict.fromkeys(frame["race"])), title=None),
        title=title,
    )


def _peak(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals open at once (one ending when another starts: not overlapping)."""
    events = sorted([(end, -1) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    open_now = peak = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak


def in_flight_peaks(frame: pd.DataFrame) -> pd.DataFrame:
    """Per race: the most attempts and fetches in flight at once, overall and of one method.

    BOOT-4.3 bounds them by `RaceConfig.max_in_flight` (10) and, per source,
    `RaceConfig.per_source` (2) attempts.
    """
    rows = []
    for race, group in frame.groupby("race", sort=False):
        spans = list(zip(group["start"], group["end"], strict=True))
        attempts = group[group["kind"] == "attempt"]
        per_method = [
            _peak(list(zip(g["start"], g["end"], strict=True)))
            for _, g in attempts.groupby("method")
        ]
        rows.append(
            {
                "race": race,
                "max_in_flight": _peak(spans),
                "max_per_method": max(per_method, default=0),
            }
        )
    return pd.DataFrame(rows, columns=["race", "max_in_flight", "max_per_method"])


# ------------------------------------------------------------------ rotation


def _verdict(check: Any) -> str:
    try:
        check()
    except m.ManifestError as exc:
        return f"refused: {exc.reason.value}"
    return "accepted"


def rotation_checks(*, now: float) -> tuple[pd.DataFrame, m.Root, bytes]:
    """Root 1 -> 2 with new root and manifest keys: what a client holding root 1 accepts.

    Returns the table (`ROTATION_COLUMNS`), the root the client trusts after
    the rotation, and the root-2 document (signed by both key sets).
    """
    old, new = Signers.of(1), Signers.of(2)
    root1 = m.root_from_document(m.sign_document(old.root_body(1, now=now), [old.root_key]))
    body2 = new.root_body(2, now=now)
    both = m.sign_document(body2, [old.root_key, new.root_key])
    root2 = m.update_root(root1, both)
    cases: list[tuple[str, str, str, Any]] = [
        ("root 2", "old and new root keys", "root 1", lambda: m.update_root(root1, both)),
        (
            "root 2",
            "old root key only",
            "root 1",
            lambda: m.update_root(root1, m.sign_document(body2, [old.root_key])),
        ),
        (
            "root 2",
            "new root key only",
            "root 1",
            lambda: m.update_root(root1, m.sign_document(body2, [new.root_key])),
        ),
    ]
    manifests = [
        (
            "manifest 2 under root 2",
            "new manifest key",
            new.sign_manifest([], version=2, root_version=2, now=now),
        ),
        (
            "manifest 2 under root 1",
            "old manifest key",
            old.sign_manifest([], version=2, root_version=1, now=now),
        ),
        (
            "manifest 2 under root 2",
            "old manifest key",
            old.sign_manifest([], version=2, root_version=2, now=now),
        ),
    ]
    for name, signer, document in manifests:
        cases.append(
            (name, signer, "root 2", lambda d=document: m.verify_manifest(root2, d, now=now))
        )
    rows = [
        {"document": d, "signed_by": s, "client_trusts": t, "verdict": _verdict(c)}
        for d, s, t, c in cases
    ]
    return pd.DataFrame(rows, columns=list(ROTATION_COLUMNS)), root2, both
