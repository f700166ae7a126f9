"""Live localhost networks for notebooks, scripts and tests.

`LocalNetwork` runs N real `NodeHost`s (drivers/udp.py), each on its own UDP
socket and TCP listener on 127.0.0.1 with an OS-chosen port, inside an event
loop of its own in a background thread (an anyio blocking portal). Its methods
are plain synchronous calls that return pandas DataFrames, so the same code
works from a script, from pytest, and from a Jupyter cell, where an asyncio
loop is already running in the main thread and must not be re-entered. Each
sync method has an ``a``-prefixed twin (`aping_all_pairs`, ...) that runs it
in a worker thread, for top-level ``await`` in Jupyter without blocking the
kernel's loop.

Invariants:
* node identities come from ``random.Random(seed)``, so node ids (not ports)
  are the same on every run with the same seed;
* every host is only ever touched from the portal's thread: the sync API
  hands work to that loop and waits for the result;
* `close` stops every host, releases every port and ends the thread; it is
  idempotent and also runs on ``with``-block exit.

The DHT methods (`join_dht`, `find_node`, `get`, `store`, `announce_room`,
`find_room_peers`) wrap the `NodeHost` API by node index; `lookup_frame`,
`bucket_fill` and `many_lookups` turn what they return into tables
(railgun_ref/lab/lookups.py), judged against the ground truth only a lab
has: every node's id and whether it runs.
"""

import contextlib
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Future
from functools import partial
from types import TracebackType
from typing import Any, Final, Self, TypeVar, assert_never

import anyio
import anyio.abc
import anyio.to_thread
import pandas as pd
from anyio.from_thread import BlockingPortal

from railgun_ref.core.ids import Address
from railgun_ref.dht.keys import KeyType
from railgun_ref.drivers.udp import HostStoppedError, NodeHost, PingOutcome
from railgun_ref.events import (
    ErrorReceived,
    GetFinished,
    LookupFinished,
    PongReceived,
    RequestTimedOut,
    StoreFinished,
)
from railgun_ref.identity.keys import Identity
from railgun_ref.lab.lookups import (
    bucket_table,
    index_map,
    lookup_summary,
    lookup_table,
    records_table,
    summary_frame,
)
from railgun_ref.node import NodeConfig
from railgun_ref.rpc.requests import Channel

#: Pings in flight at once across the whole network, by default.
#: All nodes share one event loop, so an RTT includes waiting behind other nodes'
#: work: more pings in flight finish no sooner (the loop is CPU-bound) but
#: inflate every RTT. 16 keeps 380 pairs well under a second.
DEFAULT_CONCURRENCY: Final = 16
#: Nodes joining the DHT at once in `join_dht`. Each join is a lookup of the
#: joiner's own id plus a refresh of its farther buckets. The loop is CPU-bound,
#: so more at once join no sooner but inflate every RTT, and with it the
#: smoothed RTT each node derives its slow_after from (DHT-6.2).
JOIN_CONCURRENCY: Final = 4
#: Lookups in flight at once in `many_lookups`, by default.
LOOKUP_CONCURRENCY: Final = 4
#: Columns of `routing_tables`, in order.
ROUTING_COLUMNS: Final = ("node", "running", "contacts", "buckets")
#: How many lookups `lookup_frame` remembers the start node of.
_REMEMBERED_LOOKUPS: Final = 4096
#: Seconds between two looks at the nodes' requests in flight while settling.
_SETTLE_POLL: Final = 0.02
#: Columns of the DataFrame returned by the ping methods, in order.
PING_COLUMNS: Final = (
    "src",
    "dst",
    "src_id",
    "dst_id",
    "channel",
    "outcome",
    "rtt_ms",
    "payload_size",
)
#: Hex digits of a node id shown in tables: enough to tell nodes apart.
SHORT_ID: Final = 12

_T = TypeVar("_T")


def _channel(channel: Channel | str) -> Channel:
    return channel if isinstance(channel, Channel) else Channel(channel)


def identities(n: int, seed: int) -> list[tuple[Identity, random.Random]]:
    """`n` identities and per-node RNGs drawn reproducibly from `seed`."""
    rng = random.Random(seed)
    return [
        (Identity.from_seed(rng.randbytes(32)), random.Random(rng.getrandbits(64)))
        for _ in range(n)
    ]


def _utf8(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _outcome_name(outcome: PingOutcome) -> str:
    match outcome:
        case PongReceived():
            return "pong"
        case ErrorReceived():
            return "error"
        case RequestTimedOut():
            return "timeout"
        case _:
            assert_never(outcome)


class PortalThread:
    """An event loop in a daemon thread, reached through an anyio `BlockingPortal`.

    Like `anyio.from_thread.start_blocking_portal`, but the thread is a daemon:
    a script that forgets `close()` still exits instead of waiting for it.
    """

    def __init__(self) -> None:
        ready: Future[BlockingPortal] = Future()

        async def main() -> None:
            async with BlockingPortal() as portal:
                ready.set_result(portal)
                await portal.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(main, backend="asyncio")
            except BaseException as exc:  # reported to the starting thread
                if not ready.done():
                    ready.set_exception(exc)
                else:
                    raise

        self._thread = threading.Thread(target=run, name="railgun-lab-network", daemon=True)
        self._thread.start()
        self.portal = ready.result()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.portal.call(self.portal.stop, True)
        self._thread.join()


class LocalNetwork:
    """N real nodes on 127.0.0.1, driven from synchronous code.

    >>> with LocalNetwork.start(3, seed=1) as net:  # doctest: +SKIP
    ...     pings = net.ping_all_pairs()
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        config: NodeConfig | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.host = host
        self.config = config
        self.concurrency = concurrency
        self.seed = 0
        #: Unix time at which the current nodes were started; traces' ``t`` counts from it.
        self.started_at = 0.0
        self._hosts: list[NodeHost] = []
        self._loop: PortalThread | None = None
        self._stop: anyio.Event | None = None
        self._serving: Future[None] | None = None
        self._host_scopes: list[anyio.CancelScope] = []
        self._host_stopped: list[anyio.Event] = []
        self._index: dict[str, int] = {}
        #: (query id, target, started_at) of recent `find_node` results -> start node.
        self._lookup_starts: OrderedDict[tuple[int, bytes, float], int] = OrderedDict()

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def start(
        cls,
        n: int,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        config: NodeConfig | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        join: bool = False,
    ) -> Self:
        """A new network of `n` running nodes whose ids are drawn from `seed`.

        With ``join=True`` the nodes also join the DHT (`join_dht`).
        """
        network = cls(host=host, config=config, concurrency=concurrency)
        try:
            network.restart(n, seed=seed, join=join)
        except BaseException:
            network.close()
            raise
        return network

    def restart(self, n: int, *, seed: int | None = None, join: bool = False) -> None:
        """Stop the current nodes (if any) and start `n` new ones.

        With the same seed, the first nodes keep their ids (node i's identity
        depends only on the seed and i), so results stay comparable. With
        ``join=True`` the new nodes join the DHT through node 0 (`join_dht`).
        """
        if n < 1:
            raise ValueError("a network needs at least one node")
        self._stop_hosts()
        if seed is not None:
            self.seed = seed
        hosts = [
            NodeHost(identity, host=self.host, config=self.config or NodeConfig(), rng=rng)
            for identity, rng in identities(n, self.seed)
        ]
        if self._loop is None:
            self._loop = PortalThread()
        self.started_at = time.time()
        future, stop = self._loop.portal.start_task(self._serve, hosts)
        self._hosts, self._serving, self._stop = hosts, future, stop
        self._index = index_map(host.node_id for host in hosts)
        self._lookup_starts.clear()
        if join:
            self.join_dht()

    def close(self) -> None:
        """Stop every node, release every port, end the background thread."""
        try:
            self._stop_hosts()
        finally:
            if self._loop is not None:
                loop, self._loop = self._loop, None
                loop.stop()

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
        return f"<LocalNetwork {self.size} nodes on {self.host}, seed {self.seed}: {state}>"

    def _stop_hosts(self) -> None:
        if self._stop is None or self._serving is None or self._loop is None:
            return
        stop, serving, self._stop, self._serving = self._stop, self._serving, None, None
        self._loop.portal.call(stop.set)
        serving.result()

    async def _serve(
        self, hosts: Sequence[NodeHost], *, task_status: anyio.abc.TaskStatus[anyio.Event]
    ) -> None:
        stop = anyio.Event()
        scopes: list[anyio.CancelScope] = []
        stopped: list[anyio.Event] = []
        async with anyio.create_task_group() as tg:
            for host in hosts:
                scope, done = anyio.CancelScope(), anyio.Event()
                await tg.start(self._run_host, host, scope, done)
                scopes.append(scope)
                stopped.append(done)
            self._host_scopes, self._host_stopped = scopes, stopped
            task_status.started(stop)
            await stop.wait()
            tg.cancel_scope.cancel()

    @staticmethod
    async def _run_host(
        host: NodeHost,
        scope: anyio.CancelScope,
        done: anyio.Event,
        *,
        task_status: anyio.abc.TaskStatus[Address],
    ) -> None:
        try:
            with scope:
                await host.run(task_status=task_status)
        finally:
            done.set()

    async def _stop_host(self, index: int) -> None:
        self._host_scopes[index].cancel()
        await self._host_stopped[index].wait()

    def _check_index(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(f"no node {index} in a network of {self.size}")
        return index

    def _call(self, func: Callable[..., Awaitable[_T]], *args: object) -> _T:
        if self._loop is None or self._stop is None:
            raise RuntimeError(f"{self!r} is not running: start() or restart() it first")
        return self._loop.portal.call(func, *args)

    # ----------------------------------------------------------- inspection

    @property
    def size(self) -> int:
        return len(self._hosts)

    @property
    def running(self) -> bool:
        """True between start/restart and close (even if `stop_node` stopped some nodes)."""
        return self._stop is not None

    @property
    def all_stopped(self) -> bool:
        """True once no node runs and the background thread has ended."""
        return self._loop is None and not any(host.running for host in self._hosts)

    @property
    def hosts(self) -> tuple[NodeHost, ...]:
        """The hosts themselves; use them only from the network's own loop."""
        return tuple(self._hosts)

    def stop_node(self, index: int) -> None:
        """Stop node `index` (its sockets close; the others keep running).

        PINGs to it then time out after the nodes' request_timeout, and
        `ping_all_pairs` no longer sends from it.
        """
        self._check_index(index)
        self._call(self._stop_host, index)

    def running_nodes(self) -> list[int]:
        """Indices of the nodes that run, ascending."""
        return [i for i, host in enumerate(self._hosts) if host.running]

    def stop_nodes(self, indices: Iterable[int]) -> None:
        """Stop the nodes at `indices` at once (see `stop_node`); stopped ones are skipped."""
        chosen = sorted({self._check_index(int(i)) for i in indices})
        self._call(self._stop_hosts_at, chosen)

    async def _stop_hosts_at(self, indices: list[int]) -> None:
        async with anyio.create_task_group() as tg:
            for index in indices:
                tg.start_soon(self._stop_host, index)

    def stop_fraction(
        self, fraction: float, *, seed: int = 0, keep: Iterable[int] = ()
    ) -> list[int]:
        """Stop ``round(fraction * size)`` running nodes drawn with `seed`; return them, sorted.

        Nodes in `keep` (those a notebook goes on using) are never drawn. The
        draw depends only on `seed`, `fraction`, `keep` and which nodes run, so
        it is the same on every run. Raises ValueError if too few nodes are
        left to draw from.
        """
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        count = round(fraction * self.size)
        kept = {int(i) for i in keep}
        pool = [i for i in self.running_nodes() if i not in kept]
        if count > len(pool):
            raise ValueError(
                f"cannot stop {count} of {self.size} nodes: only {len(pool)} run outside `keep`"
            )
        chosen = sorted(random.Random(seed).sample(pool, count))
        self.stop_nodes(chosen)
        return chosen

    def nodes(self) -> pd.DataFrame:
        """One row per node: index, id, address, whether it runs."""
        rows = [
            {
                "node": i,
                "node_id": host.node_id.hex(),
                "host": host.address[0],
                "port": host.address[1],
                "running": host.running,
            }
            for i, host in enumerate(self._hosts)
        ]
        return pd.DataFrame(rows, columns=["node", "node_id", "host", "port", "running"])

    def counters(self) -> pd.DataFrame:
        """Counters per node (rows) and name (columns, sorted); zeros where absent."""
        snapshot = (
            self._call(self._collect_counters) if self.running else self._collect_counters_now()
        )
        frame = pd.DataFrame(snapshot).fillna(0).astype("int64")
        frame = frame.reindex(sorted(frame.columns), axis=1)
        frame.index.name = "node"
        return frame

    async def _collect_counters(self) -> list[dict[str, int]]:
        return self._collect_counters_now()

    def _collect_counters_now(self) -> list[dict[str, int]]:
        return [dict(host.counters) for host in self._hosts]

    def traces(self) -> pd.DataFrame:
        """Every node's trace records, one row each, ordered by time.

        Columns: time (Unix seconds), t (seconds since the nodes started),
        node (index), node_id, event, then the event's own fields (peer_id,
        address, request_id, channel, rtt, ...).
        """
        rows = self._call(self._collect_traces) if self.running else self._collect_traces_now()
        frame = pd.DataFrame(rows)
        if frame.empty:
            return pd.DataFrame(columns=["time", "t", "node", "node_id", "event"])
        return frame.sort_values(["time", "node"], kind="stable").reset_index(drop=True)

    async def _collect_traces(self) -> list[dict[str, Any]]:
        return self._collect_traces_now()

    def _collect_traces_now(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for i, host in enumerate(self._hosts):
            for record in host.trace():
                rows.append(
                    {
                        "time": record.time,
                        "t": record.time - self.started_at,
                        "node": i,
                        "node_id": record.node,
                        "event": record.event,
                    }
                    | record.data
                )
        return rows

    # ---------------------------------------------------------------- pings

    def ping(
        self,
        src: int,
        dst: int,
        *,
        channel: Channel | str = Channel.DATAGRAM,
        payload_size: int = 0,
    ) -> dict[str, Any]:
        """PING node `dst` from node `src`; one row as a dict (see `ping_pairs`)."""
        frame = self.ping_pairs([(src, dst)], channel=channel, payload_size=payload_size)
        (row,) = frame.to_dict("records")  # Python scalars, not numpy ones
        return {str(key): value for key, value in row.items()}

    def ping_all_pairs(
        self, *, channel: Channel | str = Channel.DATAGRAM, payload_size: int = 0
    ) -> pd.DataFrame:
        """PING every ordered pair of distinct nodes from each running node.

        Pairs go `concurrency` at a time; a stopped node is still a
        destination (its rows time out) but no longer a source.
        """
        sources = [i for i, host in enumerate(self._hosts) if host.running]
        pairs = [(s, d) for s in sources for d in range(self.size) if s != d]
        return self.ping_pairs(pairs, channel=channel, payload_size=payload_size)

    def ping_pairs(
        self,
        pairs: Iterable[tuple[int, int]],
        *,
        channel: Channel | str = Channel.DATAGRAM,
        payload_size: int = 0,
    ) -> pd.DataFrame:
        """PING each (src, dst) pair of node indices; one row per pair, in order.

        Columns: src, dst, src_id, dst_id (id prefixes), channel, outcome
        (``pong`` | ``error`` | ``timeout``), rtt_ms (NaN unless pong),
        payload_size. Each PING names the node it expects (RPC-1.3).
        Raises `HostStoppedError` if a source node was stopped.
        """
        pair_list = [(int(s), int(d)) for s, d in pairs]
        for s, d in pair_list:
            if not (0 <= s < self.size and 0 <= d < self.size):
                raise IndexError(f"no node pair ({s}, {d}) in a network of {self.size}")
            if not self._hosts[s].running:
                raise HostStoppedError(f"node {s} was stopped; it cannot send PINGs")
        rows = self._call(self._ping_pairs, pair_list, _channel(channel), bytes(payload_size))
        return pd.DataFrame(rows, columns=list(PING_COLUMNS))

    async def _ping_pairs(
        self, pairs: list[tuple[int, int]], channel: Channel, payload: bytes
    ) -> list[dict[str, Any]]:
        limiter = anyio.CapacityLimiter(self.concurrency)
        rows: list[dict[str, Any]] = [{} for _ in pairs]

        async def one(i: int, src: NodeHost, dst: NodeHost) -> None:
            async with limiter:
                outcome = await src.ping(
                    dst.address, channel=channel, payload=payload, expected_peer=dst.node_id
                )
            rows[i] = {
                "src": pairs[i][0],
                "dst": pairs[i][1],
                "src_id": src.node_id.hex()[:SHORT_ID],
                "dst_id": dst.node_id.hex()[:SHORT_ID],
                "channel": channel.value,
                "outcome": _outcome_name(outcome),
                "rtt_ms": outcome.rtt * 1000 if isinstance(outcome, PongReceived) else float("nan"),
                "payload_size": len(payload),
            }

        async with anyio.create_task_group() as tg:
            for i, (s, d) in enumerate(pairs):
                tg.start_soon(one, i, self._hosts[s], self._hosts[d])
        return rows

    # ------------------------------------------------------------------ DHT

    def _running_host(self, index: int) -> NodeHost:
        host = self._hosts[self._check_index(index)]
        if not host.running:
            raise HostStoppedError(f"node {index} was stopped")
        return host

    def join_dht(
        self, *, via: int = 0, concurrency: int = JOIN_CONCURRENCY, settle_timeout: float = 10.0
    ) -> pd.DataFrame:
        """Every other running node joins the DHT through node `via`; returns `routing_tables`.

        Each joiner pings `via` and looks up its own id, then refreshes its
        buckets farther than its nearest neighbour (the Kademlia join, DHT
        `bootstrap`); `concurrency` nodes join at once. Afterwards this waits
        (up to `settle_timeout` seconds) until no node has a request in
        flight, so the tables no longer change under the caller's feet.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        address = self._running_host(via).address
        joiners = [i for i in self.running_nodes() if i != via]
        self._call(self._join, joiners, address, concurrency)
        self.settle(timeout=settle_timeout)
        return self.routing_tables()

    async def _join(self, joiners: list[int], address: Address, concurrency: int) -> None:
        limiter = anyio.CapacityLimiter(concurrency)

        async def one(host: NodeHost) -> None:
            async with limiter:
                await host.bootstrap([address])

        async with anyio.create_task_group() as tg:
            for index in joiners:
                tg.start_soon(one, self._hosts[index])

    def settle(self, *, timeout: float = 10.0) -> bool:
        """Wait until no running node has a request in flight; False if `timeout` passed first.

        Background work (bucket refreshes after a join, requests to stopped
        nodes that still have to time out) ends this way before a measurement.
        """
        return self._call(self._settle, timeout)

    async def _settle(self, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            while any(h.running and h.node.requests_in_flight for h in self._hosts):
                await anyio.sleep(_SETTLE_POLL)
            return True
        return False

    def routing_tables(self) -> pd.DataFrame:
        """One row per node (`ROUTING_COLUMNS`): whether it runs, its contacts and buckets."""
        rows = self._call(self._routing_rows) if self.running else self._routing_rows_now()
        return pd.DataFrame(rows, columns=list(ROUTING_COLUMNS))

    async def _routing_rows(self) -> list[dict[str, Any]]:
        return self._routing_rows_now()

    def _routing_rows_now(self) -> list[dict[str, Any]]:
        return [
            {
                "node": i,
                "running": host.running,
                "contacts": len(host.node.dht.routing),
                "buckets": len(host.node.dht.routing.bucket_fill()),
            }
            for i, host in enumerate(self._hosts)
        ]

    def _target(self, target: bytes | int) -> bytes:
        if isinstance(target, int):
            return self._hosts[self._check_index(target)].node_id
        if len(target) != 32:
            raise ValueError(f"a DHT key is 32 bytes, got {len(target)}")
        return bytes(target)

    def find_node(self, start: int, target: bytes | int) -> LookupFinished:
        """Node `start` looks up `target`: a 32-byte key, or a node index (that node's id).

        Returns the node's `LookupFinished`; `lookup_frame` turns it into a table.
        """
        host = self._running_host(start)
        result = self._call(host.find_node, self._target(target))
        self._lookup_starts[(result.query_id, result.target, result.started_at)] = start
        while len(self._lookup_starts) > _REMEMBERED_LOOKUPS:
            self._lookup_starts.popitem(last=False)
        return result

    def lookup_frame(self, result: LookupFinished, *, start: int | None = None) -> pd.DataFrame:
        """Every peer `result` knew of, one row each (`lookups.LOOKUP_COLUMNS`), nearest first.

        `start` is the node that ran the lookup; it may be left out for a
        result of this network's `find_node`, which remembers it.
        """
        if start is None:
            start = self._lookup_starts.get((result.query_id, result.target, result.started_at))
            if start is None:
                raise ValueError("not a recent find_node result of this network: pass start=")
        return lookup_table(result, start=start, index=self._index)

    def bucket_fill(self, index: int) -> pd.DataFrame:
        """Node `index`'s routing table bucket by bucket (`lookups.BUCKET_COLUMNS`).

        ``in_network`` counts the other nodes (running or not) whose distance
        falls in each bucket: what the bucket could hold, capped by ``k``.
        """
        host = self._hosts[self._check_index(index)]
        fill = self._call(self._bucket_fill, index) if self.running else self._fill_now(index)
        return bucket_table(
            host.node_id,
            fill,
            [h.node_id for h in self._hosts],
            k=host.node.dht.routing.k,
        )

    async def _bucket_fill(self, index: int) -> dict[int, int]:
        return self._fill_now(index)

    def _fill_now(self, index: int) -> dict[int, int]:
        return self._hosts[index].node.dht.routing.bucket_fill()

    def many_lookups(
        self,
        count: int,
        *,
        seed: int = 0,
        starts: Sequence[int] | None = None,
        concurrency: int = LOOKUP_CONCURRENCY,
    ) -> pd.DataFrame:
        """`count` lookups of random keys from random running nodes; one row each.

        Keys and start nodes (drawn from `starts`, default: every running
        node) come from ``random.Random(seed)``. Each row (`lookups.SUMMARY_COLUMNS`)
        judges the lookup against the nodes running right now: ``success`` if
        the first peer returned is the running node closest to the key,
        ``recall`` the share of the true k closest it returned.
        """
        if count < 0 or concurrency < 1:
            raise ValueError("count must be >= 0 and concurrency >= 1")
        pool = list(self.running_nodes() if starts is None else starts)
        for index in pool:
            self._running_host(index)
        if count and not pool:
            raise ValueError("no running node to start lookups from")
        rng = random.Random(seed)
        plan = [(rng.choice(pool), rng.randbytes(32)) for _ in range(count)]
        results = self._call(self._many_lookups, plan, concurrency)
        live = [(i, h.node_id) for i, h in enumerate(self._hosts) if h.running]
        rows = []
        for number, ((start, _), result) in enumerate(zip(plan, results, strict=True)):
            host = self._hosts[start]
            rows.append(
                lookup_summary(
                    result,
                    lookup=number,
                    start=start,
                    live_ids=[node_id for i, node_id in live if i != start],
                    k=host.node.dht.routing.k,
                )
            )
        return summary_frame(rows)

    async def _many_lookups(
        self, plan: list[tuple[int, bytes]], concurrency: int
    ) -> list[LookupFinished]:
        limiter = anyio.CapacityLimiter(concurrency)
        results: list[LookupFinished | None] = [None] * len(plan)

        async def one(number: int, host: NodeHost, target: bytes) -> None:
            async with limiter:
                results[number] = await host.find_node(target)

        async with anyio.create_task_group() as tg:
            for number, (start, target) in enumerate(plan):
                tg.start_soon(one, number, self._hosts[start], target)
        return [result for result in results if result is not None]

    def store(
        self,
        index: int,
        key_type: KeyType,
        ident: bytes | str,
        value: bytes | str,
        *,
        ttl: float | None = None,
    ) -> StoreFinished:
        """Node `index` publishes a signed record on the k closest nodes (`NodeHost.store`).

        Text idents and values are stored as UTF-8.
        """
        host = self._running_host(index)
        return self._call(partial(host.store, key_type, _utf8(ident), _utf8(value), ttl=ttl))

    def get(self, index: int, key: bytes, *, quorum: int = 1) -> GetFinished:
        """Node `index` fetches the records under `key` (`NodeHost.get`).

        `records_frame` turns the result into a table.
        """
        host = self._running_host(index)
        return self._call(partial(host.get, key, quorum=quorum))

    def announce_room(
        self, index: int, room_id: bytes | str, value: bytes | str = b""
    ) -> StoreFinished:
        """Node `index` announces itself as a member of `room_id` (`NodeHost.announce_room`)."""
        host = self._running_host(index)
        return self._call(host.announce_room, _utf8(room_id), _utf8(value))

    def find_room_peers(self, index: int, room_id: bytes | str) -> GetFinished:
        """Node `index` collects every member announcement of `room_id`.

        DHT operation `findRoomPeers` (DHT-8, `NodeHost.find_room_peers`); `records_frame` reads it.
        """
        host = self._running_host(index)
        return self._call(host.find_room_peers, _utf8(room_id))

    def records_frame(self, result: GetFinished) -> pd.DataFrame:
        """The records a `get` / `find_room_peers` returned, one row each.

        Columns: `lookups.RECORD_COLUMNS`.
        """
        return records_table(result, index=self._index)

    # ---------------------------------------------- async twins (Jupyter)

    async def aping_all_pairs(
        self, *, channel: Channel | str = Channel.DATAGRAM, payload_size: int = 0
    ) -> pd.DataFrame:
        """`ping_all_pairs` for ``await`` in a running event loop (e.g. a Jupyter cell)."""
        return await anyio.to_thread.run_sync(
            partial(self.ping_all_pairs, channel=channel, payload_size=payload_size)
        )

    async def aping_pairs(
        self,
        pairs: Iterable[tuple[int, int]],
        *,
        channel: Channel | str = Channel.DATAGRAM,
        payload_size: int = 0,
    ) -> pd.DataFrame:
        """`ping_pairs` for ``await`` in a running event loop."""
        return await anyio.to_thread.run_sync(
            partial(self.ping_pairs, list(pairs), channel=channel, payload_size=payload_size)
        )

    async def arestart(self, n: int, *, seed: int | None = None) -> None:
        """`restart` for ``await`` in a running event loop."""
        await anyio.to_thread.run_sync(partial(self.restart, n, seed=seed))

    async def aclose(self) -> None:
        """`close` for ``await`` in a running event loop."""
        await anyio.to_thread.run_sync(self.close)
