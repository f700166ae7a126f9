"""`railgun-ref node`: one node on real sockets until SIGINT/SIGTERM.

Its first line on stdout is the contract other programs (the conformance
runner's tests, scripts) rely on::

    railgun-ref node listening udp://HOST:PORT id=<64 hex digits>

With ``--data-dir`` it also runs a store-and-forward holder (SF-8.5) whose
messages live in ``storeforward.sqlite3`` there.
When its capabilities make it eligible for the relay role (CAP-4.2) it runs
a committee relay on APP topic 4 (RLY-8.1) within its sharing budget (CAP-7).

With ``--bootstrap HOST:PORT`` (repeatable) it joins the DHT through those
nodes and prints a second line ``joined: N contacts`` when the join lookup
ends. With ``--lookup KEY`` (64 hex digits, repeatable; needs ``--bootstrap``)
it then runs a FIND_NODE lookup (DHT-6) for each key in turn and prints
``lookup <KEY>: <id>,<id>,...``, the up to k closest nodes that answered,
nearest first (nothing after the colon if none did): the control surface the
requester-side conformance runner drives (REQ-1.1). Nothing else goes to stdout.

``-v`` logs on stderr, one timestamped line each: the join, every lookup, get
and store this node ran or served, stream connections opened and closed, changes
in the number of peers it knows, and every `SUMMARY_INTERVAL` seconds the
datagrams and stream messages in and out by message type. ``-vv`` adds a line
per datagram and stream message and every other node event.
"""

import logging
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Final

import anyio

from railgun_ref.abuse.admission import AdmissionGate
from railgun_ref.capacity.budget import SharingBudget
from railgun_ref.capacity.nat import NatType
from railgun_ref.capacity.selection import Role, is_eligible
from railgun_ref.capacity.sharing import CapacitySharing
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core import cbor
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.drivers.capabilities import (
    advertise_by_default,
    detect_capabilities,
    machine_reader,
)
from railgun_ref.drivers.console import UsageError
from railgun_ref.drivers.keystore import load_or_create_identity
from railgun_ref.drivers.relay_host import RelayHost
from railgun_ref.drivers.sqlite_store import SqliteNodeStore
from railgun_ref.drivers.storeforward_host import AdmissionSettings, SfHost
from railgun_ref.drivers.udp import (
    Direction,
    DriverCounter,
    NodeHost,
    StreamClosed,
    StreamOpened,
    TapEvent,
    Traffic,
)
from railgun_ref.identity.keys import Identity
from railgun_ref.relay.committee import RelayGate
from railgun_ref.trace import TraceRecord
from railgun_ref.wire.messages import MessageType

#: Bandwidth a node advertises, bytes/s (loopback: nothing is measured).
_SERVER_BANDWIDTH: Final = 10_000_000
#: Seconds between two traffic summaries at ``-v``.
SUMMARY_INTERVAL: Final = 10.0
#: Node events logged at ``-v``; ``-vv`` logs every event.
_EVENTS_AT_V: Final = frozenset(
    {"LookupFinished", "GetFinished", "StoreFinished", "RecordStored", "RequestTimedOut"}
)

_log = logging.getLogger("railgun_ref.node")


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def message_type(data: bytes) -> str:
    """The envelope's message type name (``PING``...), unverified: for logs only."""
    try:
        outer = cbor.decode(data)
        signed = outer[0] if isinstance(outer, list) and outer else None
        fields = cbor.decode(signed) if isinstance(signed, bytes) else None
    except RemoteProtocolError:
        return "?"
    number = fields.get(1) if isinstance(fields, dict) else None
    if not isinstance(number, int):
        return "?"
    try:
        return MessageType(number).name
    except ValueError:
        return f"type {number}"


def _short(node_id: str) -> str:
    return node_id[:12]


class NodeLog:
    """What ``-v``/``-vv`` print (module docstring): fed by the host's tap and trace."""

    def __init__(self, host: NodeHost, verbosity: int) -> None:
        self.host = host
        self.verbosity = verbosity
        self.traffic: Counter[tuple[Direction, str]] = Counter()
        self.peers = 0

    def on_traffic(self, event: TapEvent) -> None:
        match event:
            case Traffic(direction=direction, channel=channel, peer=peer, data=data):
                kind = message_type(data)
                self.traffic[(direction, kind)] += 1
                if self.verbosity >= 2:
                    arrow = "<-" if direction is Direction.IN else "->"
                    where = f"{peer[0]}:{peer[1]}"
                    _log.info("%s %s %s %s (%d B)", arrow, channel.value, kind, where, len(data))
            case StreamOpened(peer=peer, outbound=outbound):
                how = "to" if outbound else "from"
                _log.info("stream connection opened %s %s:%d", how, peer[0], peer[1])
            case StreamClosed(peer=peer, outbound=outbound):
                how = "to" if outbound else "from"
                _log.info("stream connection closed %s %s:%d", how, peer[0], peer[1])

    def on_record(self, record: TraceRecord) -> None:
        if record.event not in _EVENTS_AT_V and self.verbosity < 2:
            return
        data = record.data
        match record.event:
            case "LookupFinished":
                _log.info(
                    "lookup %s: %d closest, %d queries, %d failed, %d hops, %.0f ms",
                    _short(data["target"]),
                    len(data["closest"]),
                    data["queries"],
                    data["failures"],
                    data["hops"],
                    data["duration"] * 1000,
                )
            case "GetFinished":
                found = "found" if data["found"] else "not found"
                _log.info(
                    "get %s: %s, %d queries, %.0f ms",
                    _short(data["key"]),
                    found,
                    data["queries"],
                    data["duration"] * 1000,
                )
            case "StoreFinished":
                _log.info(
                    "store %s: %d accepted, %d refused, %d failed",
                    _short(data["key"]),
                    data["accepted"],
                    data["refused"],
                    data["failed"],
                )
            case "RecordStored":
                _log.info(
                    "holding record %s from %s",
                    _short(data["key"]),
                    _short(data["publisher_id"]),
                )
            case _:
                _log.info("%s %s", record.event, data)

    def check_peers(self) -> None:
        peers = len(self.host.node.dht.routing)
        if peers != self.peers:
            _log.info("peers known: %d (was %d)", peers, self.peers)
            self.peers = peers

    def summary(self) -> None:
        if not self.traffic:
            return
        parts = []
        for direction in Direction:
            counts = sorted((k, n) for (d, k), n in self.traffic.items() if d is direction)
            text = ", ".join(f"{kind} {n}" for kind, n in counts) or "-"
            parts.append(f"{direction.value}: {text}")
        _log.info("traffic in the last %.0f s; %s", SUMMARY_INTERVAL, "; ".join(parts))
        self.traffic.clear()

    async def run(self) -> None:
        """Every second: peer count changes; every `SUMMARY_INTERVAL`: traffic."""
        ticks = 0
        while True:
            await anyio.sleep(1.0)
            self.check_peers()
            ticks += 1
            if ticks % int(SUMMARY_INTERVAL) == 0:
                self.summary()


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s.%(msecs)03d %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    )
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False


#: A join that found nobody is retried this often, doubling up to the cap (seconds).
_JOIN_RETRY_FIRST = 2.0
_JOIN_RETRY_MAX = 60.0


async def _join(
    host: NodeHost, bootstrap: list[tuple[str, int]], lookups: tuple[bytes, ...] = ()
) -> None:
    """Join through `bootstrap`; while nobody answers, retry with exponential backoff.
    Then look up each of `lookups` and print its result (REQ-1.1)."""
    delay = _JOIN_RETRY_FIRST
    while True:
        _log.info("joining through %s", ", ".join(f"{h}:{p}" for h, p in bootstrap))
        joined = await host.bootstrap(bootstrap)
        contacts = len(host.node.dht.routing)
        if joined.closest or contacts:
            _print(f"joined: {contacts} contacts, {joined.queries} queries")
            for key in lookups:
                found = await host.find_node(key)
                _print(f"lookup {key.hex()}: " + ",".join(i.hex() for i, _ in found.closest))
            return
        _print(f"join: no bootstrap node answered; retrying in {delay:.0f} s")
        await anyio.sleep(delay)
        delay = min(delay * 2, _JOIN_RETRY_MAX)


async def _serve(
    host: NodeHost,
    bootstrap: list[tuple[str, int]],
    verbosity: int,
    where: str,
    lookups: tuple[bytes, ...] = (),
    holder_path: Path | None = None,
    advertise: bool = True,
    admission_rate: float | None = None,
) -> None:
    async with anyio.create_task_group() as tg:
        try:
            address = await tg.start(host.run)
        except OSError as exc:
            raise UsageError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        reader = machine_reader(server=True)
        capabilities = reader()
        if holder_path is not None:  # SF-8.5: a node with a data directory keeps messages
            holder = _holder(host, holder_path, admission_rate)
            capabilities = holder.capabilities
            await tg.start(holder.run)
        elif advertise:  # CAP-3.7 (a holder advertises itself, SF-8.5); NAT not measured
            tg.start_soon(advertise_by_default, host, reader)
        relay = _relay(host, capabilities, admission_rate)
        if relay is not None:  # RLY-8.1: a node fit to relay serves committees
            await tg.start(relay.run)
        _print(
            f"railgun-ref node listening udp://{address[0]}:{address[1]} id={host.node_id.hex()}"
        )
        if verbosity:
            log = NodeLog(host, verbosity)
            host.tap(log.on_traffic)
            host.subscribe(log.on_record)
            tg.start_soon(log.run)
        if bootstrap:
            tg.start_soon(_join, host, bootstrap, lookups)
        restored = host.driver_counters.get_count(DriverCounter.RECORDS_RESTORED)
        if restored:
            _print(f"restored: {restored} records")
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                tg.cancel_scope.cancel()
                return


def _holder(host: NodeHost, path: Path, admission_rate: float | None) -> SfHost:
    """SF-8.5: the store-and-forward holder of a server node (always on, open NAT);
    with `admission_rate`, STOREs beyond that many per second pay for admission (SF-9.3)."""
    capabilities = detect_capabilities(
        upload_bandwidth=_SERVER_BANDWIDTH,
        download_bandwidth=_SERVER_BANDWIDTH,
        nat_type=NatType.OPEN,
        server=True,
    )
    admission = None if admission_rate is None else AdmissionSettings(rate=admission_rate)
    return SfHost(host, path=path, capabilities=capabilities, admission=admission)


def _relay(
    host: NodeHost, capabilities: DeviceCapabilities, admission_rate: float | None
) -> RelayHost | None:
    """RLY-8.1: a committee relay within the node's sharing budget (CAP-7), when the
    capabilities it advertises make it eligible for the relay role (CAP-4.2); with
    `admission_rate`, requests beyond that many per second pay for admission (RLY-9.3)."""
    if not is_eligible(capabilities, Role.RELAY):
        return None
    budget = SharingBudget(CapacitySharing(capabilities, now=time.time()))
    gate: RelayGate | None = None
    if admission_rate is not None:
        gate = AdmissionGate(host.node_id, os.urandom, rate=admission_rate, now=time.time())
    return RelayHost(host, budget=budget, admission=gate)


def _open_data_dir(directory: Path) -> SqliteNodeStore:
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--data-dir {directory} exists and is not a directory")
    return SqliteNodeStore(directory / "node.sqlite3")


def run_node(
    *,
    host: str,
    port: int,
    identity_path: str | None,
    bootstrap: list[tuple[str, int]],
    data_dir: str | None = None,
    verbosity: int = 0,
    lookups: tuple[bytes, ...] = (),
    allow_public: bool = False,
    advertise: bool = True,
    admission_rate: float | None = None,
) -> int:
    """Serve a node. With `data_dir`, its identity, held records and cached peers live
    there (``identity``, ``node.sqlite3``) and survive restarts; a restarted node with
    no ``--bootstrap`` rejoins through its cached peers. `verbosity` 1 or 2: ``-v``,
    ``-vv`` (module docstring)."""
    if verbosity:
        _configure_logging()
    store = None
    if data_dir is not None:
        directory = Path(data_dir)
        identity_path = identity_path or str(directory / "identity")
        store = _open_data_dir(directory)
    try:
        identity = (
            load_or_create_identity(Path(identity_path))
            if identity_path
            else Identity.generate(os.urandom)
        )
        node_host = NodeHost(identity, host=host, port=port, store=store, allow_public=allow_public)
        if not bootstrap:
            bootstrap = node_host.cached_peers()
        holder_path = None if data_dir is None else Path(data_dir) / "storeforward.sqlite3"
        anyio.run(
            _serve,
            node_host,
            bootstrap,
            verbosity,
            f"{host}:{port}",
            lookups,
            holder_path,
            advertise,
            admission_rate,
        )
    finally:
        if store is not None:
            store.close()
    return 0
