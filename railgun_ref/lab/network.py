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
"""

import contextlib
import random
import threading
import time
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
from railgun_ref.drivers.udp import HostStoppedError, NodeHost, PingOutcome
from railgun_ref.events import ErrorReceived, PongReceived, RequestTimedOut
from railgun_ref.identity.keys import Identity
from railgun_ref.node import NodeConfig
from railgun_ref.rpc.requests import Channel

#: Pings in flight at once across the whole network, by default.
#: All nodes share one event loop, so an RTT includes waiting behind other nodes'
#: work: more pings in flight finish no sooner (the loop is CPU-bound) but
#: inflate every RTT. 16 keeps 380 pairs well under a second.
DEFAULT_CONCURRENCY: Final = 16
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


class _PortalThread:
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
        self._loop: _PortalThread | None = None
        self._stop: anyio.Event | None = None
        self._serving: Future[None] | None = None
        self._host_scopes: list[anyio.CancelScope] = []
        self._host_stopped: list[anyio.Event] = []

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
    ) -> Self:
        """A new network of `n` running nodes whose ids are drawn from `seed`."""
        network = cls(host=host, config=config, concurrency=concurrency)
        network.restart(n, seed=seed)
        return network

    def restart(self, n: int, *, seed: int | None = None) -> None:
        """Stop the current nodes (if any) and start `n` new ones.

        With the same seed, the first nodes keep their ids (node i's identity
        depends only on the seed and i), so results stay comparable.
        """
        if n < 1:
            raise ValueError("a network needs at least one node")
        self._stop_hosts()
        if seed is not None:
            self.seed = seed
        hosts = [
            NodeHost(identity, host=self.host, config=self.config, rng=rng)
            for identity, rng in identities(n, self.seed)
        ]
        if self._loop is None:
            self._loop = _PortalThread()
        self.started_at = time.time()
        future, stop = self._loop.portal.start_task(self._serve, hosts)
        self._hosts, self._serving, self._stop = hosts, future, stop

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
        if not 0 <= index < self.size:
            raise IndexError(f"no node {index} in a network of {self.size}")
        self._call(self._stop_host, index)

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
