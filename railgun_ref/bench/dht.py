"""`railgun-ref bench dht`: our DHT and the PyPI `kademlia` package, one harness, one run.

The workload (`make_workload`) is drawn from the seed alone, so every
implementation gets the same node seeds, keys, values, storers, stopped
nodes and getters:

1. **setup**: N real UDP nodes on 127.0.0.1 in one event loop, served by one
   `HostGroup` (one watch loop over every socket, one timer task); node 0 starts
   alone and every other node joins through it, `join_concurrency` joins at a
   time. ``setup_s`` runs from binding the first socket to the end of the last
   join; then the network settles for ``settle_s`` (not counted).
2. **stores**: K random 32-byte idents with small random values, each stored
   from a random node, `op_concurrency` at a time.
3. **churn**: round(F·N) random nodes stop (sockets closed: they answer
   nothing, as a crashed peer). Getters are drawn from the survivors only.
4. **gets**: K gets, each from a random live node, `op_concurrency` at a time
   and at most one per getter at a time, each timed with `perf_counter`; a
   get succeeds when the value found equals the value stored. Latency
   statistics cover every get, failed ones included (what a caller waited).

`--rtt-ms R` delays every datagram R/2 ms on send, both directions, both
implementations (ours: `NodeHost(send_delay=...)`; kademlia: its transport's
``sendto`` through ``loop.call_later``). Both use a 5 s RPC timeout.

Each implementation runs in its own subprocess (``python -m
railgun_ref.bench.dht --worker IMPL``), one after the other, so
``peak_rss_mb`` (``ru_maxrss``, process-wide and monotonic) is that
implementation's own and the two never compete for the CPU. The worker
imports an implementation's modules only once it knows which one it runs.

``--driver sim`` runs ours in the discrete-event simulator instead: the same
`Node` code in virtual time, the same workload, latency from the simulated
links, plus lookup hops against log2(N), events processed and wall time.
This is the mode for runs of 10^4 nodes and more.

``--room-members M`` (simulator) adds a room phase after the gets: M live
nodes announce themselves in one closed room as the transport does (a
``room`` record under the room's DHT ident, with the proof of the room
secret, ROOM-6.2), then every live node that does not hold the room key runs
`find_room_peers`; ``room_members_found`` says what fraction of the M members
each of them found (DHT-7.8 fetches what a datagram VALUE leaves out).

Percentiles are nearest-rank: p95 of n samples is the ceil(0.95·n)-th smallest.
"""

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, Final

from railgun_ref.bench.dht_common import (
    BenchParams,
    ImplRun,
    LoopLag,
    OpResult,
    Progress,
    Workload,
    distribution,
    kernel_udp_drops,
    make_workload,
)
from railgun_ref.core.constants import REQUEST_TIMEOUT
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.console import ProgressReport, UsageError

if TYPE_CHECKING:
    from railgun_ref.drivers.udp import NodeHost
    from railgun_ref.events import NodeEvent

#: Goal 1 (issue text): N=500, no churn: 100 % of gets succeed.
GOAL1_NODES: Final = 500
#: Goal 2: N=200, churn 0.3, RTT 50 ms, 5 s RPC timeout for both.
GOAL2_NODES: Final = 200
GOAL2_CHURN: Final = 0.3
GOAL2_RTT_MS: Final = 50.0
GOAL2_SUCCESS: Final = 0.995
GOAL2_MEDIAN_RTTS: Final = 3.0
GOAL2_P95_MS: Final = 1000.0
GOAL_RPC_TIMEOUT: Final = REQUEST_TIMEOUT

IMPLS: Final = ("ours", "kademlia")
#: Goal 3 (issue 13): N=200, 50 room members: every non-holder finds every member.
GOAL3_NODES: Final = 200
GOAL3_MEMBERS: Final = 50
#: The RTT of simulated links when --rtt-ms is not given (zero would make virtual time moot).
SIM_DEFAULT_RTT_MS: Final = 50.0
#: What a report says about its crypto (`impls.ours.crypto`).
_CRYPTO_LABELS: Final = {
    "real": "real: Ed25519 signatures, as on the wire",
    "fast": "fast: a BLAKE2b hash keyed with the public key stands in for Ed25519 "
    "(simulator only, honest nodes; cross-checked against real crypto)",
}
#: NodeHost's datagram queue in the benchmark: with --rtt-ms it is also the delay line,
#: which must not drop what an emulated link would carry (kademlia's call_later has no bound).
_DELAY_LINE_SIZE: Final = 8192
#: A worker that runs longer than this is killed and reported as an error, seconds.
_WORKER_TIMEOUT: Final = 3 * 3600.0

MACHINE_NOTE: Final = (
    "2 CPU cores shared with other engineers' concurrent work (builds, tests, "
    "other benchmarks); wall-clock timings are noisy, compare within one run"
)


# ------------------------------------------------------------------ parameters


def summarise_ops(ops: Sequence[OpResult]) -> dict[str, Any]:
    ok = sum(1 for op in ops if op.ok)
    out: dict[str, Any] = {
        "n": len(ops),
        "succeeded": ok,
        "success_rate": round(ok / len(ops), 4) if ops else None,
        "latency_ms": distribution([op.latency_s * 1000 for op in ops]),
    }
    rpcs = [op.rpcs for op in ops if op.rpcs is not None]
    if rpcs:
        out["rpcs"] = distribution([float(r) for r in rpcs])
    replicas = [op.replicas for op in ops if op.replicas is not None]
    if replicas:
        out["remote_replicas"] = distribution([float(r) for r in replicas])
    hops = [op.hops for op in ops if op.hops is not None]
    if hops:
        out["hops"] = distribution([float(h) for h in hops])
    local = [op.local for op in ops if op.local is not None]
    if local:
        out["getter_held_value"] = sum(local)
    errors = Counter(op.error for op in ops if op.error is not None)
    if errors:
        out["failures"] = dict(sorted(errors.items()))
    return out


def _rss_now_mb() -> float | None:
    """Current resident set (VmRSS) in MiB, or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def impl_report(run: ImplRun, *, baseline_rss_mb: float | None, wall_s: float) -> dict[str, Any]:
    peak = _peak_rss_mb()
    return {
        "impl": run.impl,
        "driver": run.driver,
        "setup_s": round(run.setup_s, 3),
        "joins_failed": run.joins_failed,
        "peak_rss_mb": peak,
        "baseline_rss_mb": baseline_rss_mb,
        "peak_rss_over_baseline_mb": (
            round(peak - baseline_rss_mb, 1) if baseline_rss_mb is not None else None
        ),
        "stores": summarise_ops(run.stores),
        "gets": summarise_ops(run.gets),
        "worker_wall_s": round(wall_s, 2),
        **({"event_loop_lag_ms": run.loop_lag.report()} if run.loop_lag else {}),
        **run.extra,
        "notes": run.notes,
    }


# ------------------------------------------------------------------ ours, real UDP


def _records_hold(records: Sequence[bytes], value: bytes) -> bool:
    """Whether one of the encoded records a get returned carries `value`."""
    from railgun_ref.dht.records import Record  # noqa: PLC0415
    from railgun_ref.wire import cbor  # noqa: PLC0415

    return any(Record.from_cbor_value(cbor.decode(r)).value == value for r in records)


def _store_result(remote_replicas: int, latency_s: float) -> OpResult:
    """A store succeeds when at least one node besides the publisher accepted it."""
    ok = remote_replicas >= 1
    return OpResult(
        ok=ok,
        latency_s=latency_s,
        replicas=remote_replicas,
        error=None if ok else "no_remote_replica",
    )


def run_ours_udp(params: BenchParams, workload: Workload, progress: Progress) -> ImplRun:
    """Our nodes on real UDP sockets (one anyio loop, asyncio backend)."""
    import anyio  # noqa: PLC0415

    return anyio.run(_ours_udp, params, workload, progress)


async def _ours_udp(params: BenchParams, workload: Workload, progress: Progress) -> ImplRun:
    return await _UdpBench(params, workload, progress).run()


class _UdpBench:
    """One `run_ours_udp`: real `NodeHost`s on loopback, the workload, its outcomes."""

    def __init__(self, params: BenchParams, workload: Workload, progress: Progress) -> None:
        import anyio  # noqa: PLC0415

        from railgun_ref.dht.service import DhtConfig  # noqa: PLC0415
        from railgun_ref.drivers.host_group import HostGroup  # noqa: PLC0415
        from railgun_ref.drivers.udp import NodeHost  # noqa: PLC0415
        from railgun_ref.identity.keys import Identity  # noqa: PLC0415
        from railgun_ref.node import NodeConfig  # noqa: PLC0415

        self.params, self.workload, self.progress = params, workload, progress
        config = NodeConfig(
            request_timeout=params.rpc_timeout, dht=DhtConfig(k=params.k, alpha=params.alpha)
        )
        seeds_rng = random.Random(params.seed ^ 0x5EED)
        self.hosts = [
            NodeHost(
                Identity.from_seed(seed),
                config=config,
                rng=random.Random(seeds_rng.getrandbits(64)),
                trace_limit=0,  # the lab's trace is not part of a DHT node's cost
                send_delay=params.send_delay,
                queue_size=_DELAY_LINE_SIZE,
            )
            for seed in workload.node_seeds
        ]
        self.group = HostGroup()
        self.joins_failed = 0
        self.stores: list[OpResult | None] = [None] * params.keys
        self.gets: list[OpResult | None] = [None] * params.keys
        self.limiter = anyio.CapacityLimiter(params.op_concurrency)
        self.join_limiter = anyio.CapacityLimiter(params.join_concurrency)
        #: One lock per getter that has a get (one get per getter at a time).
        self.getter_locks = {g: anyio.Lock() for g in workload.get_from}
        self.lag = LoopLag()

    async def watch_lag(self) -> None:
        import anyio  # noqa: PLC0415

        while True:
            begin = anyio.current_time()
            await anyio.sleep(self.lag.interval)
            self.lag.record(anyio.current_time() - begin - self.lag.interval)

    async def join(self, i: int, report: ProgressReport) -> None:
        import anyio  # noqa: PLC0415

        async with self.join_limiter:
            with anyio.move_on_after(self.params.op_timeout):
                outcome = await self.hosts[i].bootstrap([self.hosts[0].address])
                if outcome.closest:
                    report.advance()
                    return
        self.joins_failed += 1
        report.advance()

    async def store(self, i: int) -> None:
        import anyio  # noqa: PLC0415

        from railgun_ref.dht.keys import KeyType, derive_key  # noqa: PLC0415

        host = self.hosts[self.workload.store_from[i]]
        ident = self.workload.idents[i]
        async with self.limiter:
            begin = time.perf_counter()
            with anyio.move_on_after(self.params.op_timeout) as cap:
                outcome = await host.store(KeyType.RENDEZVOUS, ident, self.workload.values[i])
            elapsed = time.perf_counter() - begin
        if cap.cancelled_caught:
            self.stores[i] = OpResult(ok=False, latency_s=elapsed, error="harness_timeout")
        else:
            # StoreFinished.accepted counts the publisher's own copy (DHT-8.1) too.
            key = derive_key(KeyType.RENDEZVOUS, ident)
            own = bool(host.node.dht.records.get(key, now=time.time()))
            self.stores[i] = _store_result(outcome.accepted - own, elapsed)

    async def get(self, i: int) -> None:
        import anyio  # noqa: PLC0415

        from railgun_ref.dht.keys import KeyType, derive_key  # noqa: PLC0415

        getter = self.workload.get_from[i]
        key = derive_key(KeyType.RENDEZVOUS, self.workload.idents[i])
        async with self.getter_locks[getter], self.limiter:
            local = bool(self.hosts[getter].node.dht.records.get(key, now=time.time()))
            begin = time.perf_counter()
            with anyio.move_on_after(self.params.op_timeout) as cap:
                outcome = await self.hosts[getter].get(key)
            elapsed = time.perf_counter() - begin
        if cap.cancelled_caught:
            self.gets[i] = OpResult(
                ok=False, latency_s=elapsed, error="harness_timeout", local=local
            )
            return
        ok = outcome.found and _records_hold(outcome.records, self.workload.values[i])
        error = None if ok else ("wrong_value" if outcome.found else "not_found")
        self.gets[i] = OpResult(
            ok=ok,
            latency_s=elapsed,
            rpcs=outcome.queries,
            hops=outcome.hops,
            error=error,
            local=local,
        )

    async def each(self, op: Callable[[int], Any], indices: range) -> None:
        """Run `op(i)` for every i in `indices` concurrently (each op limits itself)."""
        import anyio  # noqa: PLC0415

        async with anyio.create_task_group() as ops:
            for i in indices:
                ops.start_soon(op, i)

    async def run(self) -> ImplRun:
        import anyio  # noqa: PLC0415

        params, hosts, lag = self.params, self.hosts, self.lag
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.watch_lag)
            await tg.start(self.group.run)
            started, started_cpu = time.perf_counter(), time.process_time()
            for host in hosts:
                self.group.add(host)
            with self.progress.phase("setup", total=len(hosts) - 1, unit="nodes joined") as joining:
                await self.each(functools.partial(self.join, report=joining), range(1, len(hosts)))
            setup_s = time.perf_counter() - started
            setup_cpu_s = round(time.process_time() - started_cpu, 3)
            self.progress(
                f"setup {len(hosts)} nodes in {setup_s:.1f}s ({self.joins_failed} joins failed)"
            )
            lag.phase = "settle"
            await anyio.sleep(params.settle_s)
            lag.phase = "stores"
            await self.each(self.store, range(params.keys))
            self.progress(f"{params.keys} stores done")
            await self.stop_churned()
            lag.phase = "gets"
            await self.each(self.get, range(params.keys))
            self.progress(f"{params.keys} gets done")
            counters = _udp_counters(hosts)
            traffic = _udp_traffic(hosts, counters)
            tg.cancel_scope.cancel()
        return ImplRun(
            impl="ours",
            driver="udp",
            setup_s=setup_s,
            joins_failed=self.joins_failed,
            stores=[op for op in self.stores if op is not None],
            gets=[op for op in self.gets if op is not None],
            notes=list(_UDP_NOTES),
            extra={
                "setup_cpu_s": setup_cpu_s,
                "driver_and_rejection_counters": counters,
                **traffic,
            },
            loop_lag=lag,
        )

    async def stop_churned(self) -> None:
        for i in self.workload.stopped:
            self.hosts[i].stop()
        self.progress(f"churn: stopped {len(self.workload.stopped)} nodes")


def _udp_counters(hosts: "Sequence[NodeHost]") -> dict[str, int]:
    """The driver's counters and the nodes' rejections, summed over `hosts`, by flat name."""
    from railgun_ref.drivers.udp import DriverCounter  # noqa: PLC0415
    from railgun_ref.node import NodeCounter  # noqa: PLC0415

    counters: Counter[str] = Counter()
    for host in hosts:
        driver = host.driver_counters.snapshot()
        driver.pop(DriverCounter.TRACE_EVICTED.value, None)
        counters.update(driver)
        rejected = host.node.counters.snapshot()
        counters.update(
            {k: v for k, v in rejected.items() if k.startswith(f"{NodeCounter.REJECTED.value}.")}
        )
    return dict(sorted(counters.items()))


def _udp_traffic(hosts: "Sequence[NodeHost]", counters: dict[str, int]) -> dict[str, Any]:
    """Datagrams sent, responses that came after their request timed out, datagrams dropped
    (by the kernel for a full receive buffer, by the driver for a full backlog), all hosts."""
    from railgun_ref.core.errors import ErrorCode  # noqa: PLC0415
    from railgun_ref.drivers.udp import DriverCounter  # noqa: PLC0415
    from railgun_ref.node import NodeCounter  # noqa: PLC0415
    from railgun_ref.rpc.requests import Channel  # noqa: PLC0415

    sent = sum(h.node.counters.get_count(NodeCounter.TX, Channel.DATAGRAM) for h in hosts)
    late = sum(
        h.node.counters.get_count(NodeCounter.REJECTED, ErrorCode.UNEXPECTED_RESPONSE)
        for h in hosts
    )
    return {
        "datagrams_sent_total": sent,
        "late_responses": late,
        "dropped_datagrams": {
            "kernel": kernel_udp_drops([h.address[1] for h in hosts if h.running]),
            "driver_queue_full": counters.get(DriverCounter.UDP_QUEUE_FULL.value, 0),
        },
    }


_UDP_NOTES: Final = [
    "RPC timeout: NodeConfig(request_timeout=5.0) (the default)",
    "rpcs per get: GetFinished.queries, the FIND_VALUE requests the get's lookup sent",
    "link delay: NodeHost(send_delay=rtt/2) on every node, requests and replies",
    "lookups are not in lockstep rounds: a peer silent for slow_after (3x smoothed "
    "RTT within 0.25..2 s) stops counting against alpha (DHT-6.2)",
]


# ------------------------------------------------------------------ ours, simulated


@dataclass(frozen=True, slots=True)
class _Joined:
    closest: int


@dataclass(frozen=True, slots=True)
class _Stored:
    accepted: int  #: including the publisher's own copy, if it kept one
    duration: float


@dataclass(frozen=True, slots=True)
class _Got:
    found: bool
    records: tuple[bytes, ...]
    queries: int
    hops: int
    duration: float


_Outcome = _Joined | _Stored | _Got


def run_ours_sim(params: BenchParams, workload: Workload, progress: Progress) -> ImplRun:
    """Our nodes in the discrete-event simulator: virtual time, same workload."""
    from railgun_ref.drivers.sim import crypto_mode  # noqa: PLC0415
    from railgun_ref.identity.keys import CryptoMode  # noqa: PLC0415

    with crypto_mode(CryptoMode(params.crypto)):
        run = _SimBench(params, workload, progress).run()
    run.extra["crypto"] = _CRYPTO_LABELS[params.crypto]
    return run


#: Starts one operation in the simulator; returns (node address, query id).
_SimStart = Callable[[], tuple[Address, int]]


class _SimBench:
    """One `run_ours_sim`: the simulated population, its operations and their outcomes."""

    def __init__(self, params: BenchParams, workload: Workload, progress: Progress) -> None:
        from railgun_ref.dht.service import DhtConfig  # noqa: PLC0415
        from railgun_ref.drivers.sim import LinkProfile, SimNetwork, Simulator  # noqa: PLC0415
        from railgun_ref.node import NodeConfig  # noqa: PLC0415

        self.params, self.workload, self.progress = params, workload, progress
        self.config = NodeConfig(
            request_timeout=params.rpc_timeout, dht=DhtConfig(k=params.k, alpha=params.alpha)
        )
        network = SimNetwork(default=LinkProfile(latency=params.send_delay))
        self.sim = Simulator(seed=params.seed, network=network, keep_trace=False)
        self.addresses: list[Address] = []
        self.done: dict[tuple[Address, int], _Outcome] = {}
        self.recent: list[tuple[Address, int]] = []
        self.events = 0
        self.held = [False] * params.keys
        self.wall_start = time.perf_counter()

    def populate(self) -> None:
        from railgun_ref.drivers.sim import sim_address  # noqa: PLC0415
        from railgun_ref.identity.keys import Identity  # noqa: PLC0415
        from railgun_ref.node import Node  # noqa: PLC0415

        seeds_rng = random.Random(self.params.seed ^ 0x5EED)
        for i, seed in enumerate(self.workload.node_seeds):
            node = Node(
                Identity.from_seed(seed),
                rng=random.Random(seeds_rng.getrandbits(64)),
                config=self.config,
                now=self.sim.now,
            )
            address = sim_address(i)
            self.sim.add_node(node, address)
            self.addresses.append(address)
        self.sim.subscribe(self.listen)

    def listen(self, address: Address, event: "NodeEvent", _now: float) -> None:
        from railgun_ref.events import GetFinished, LookupFinished, StoreFinished  # noqa: PLC0415

        # Keep only what the harness needs: LookupFinished carries a per-peer table.
        outcome: _Outcome
        if isinstance(event, GetFinished):
            outcome = _Got(
                found=event.found,
                records=event.records,
                queries=event.queries,
                hops=event.hops,
                duration=event.duration,
            )
        elif isinstance(event, StoreFinished):
            outcome = _Stored(accepted=event.accepted, duration=event.duration)
        elif isinstance(event, LookupFinished):
            outcome = _Joined(closest=len(event.closest))
        else:
            return
        self.done[(address, event.query_id)] = outcome
        self.recent.append((address, event.query_id))

    def run_ops(
        self,
        starts: Sequence[_SimStart],
        concurrency: int,
        report: ProgressReport | None = None,
    ) -> list[tuple[_Outcome | None, float]]:
        """Start ops `concurrency` at a time; (outcome or None on timeout, virtual seconds).
        `report` is told how many have ended."""
        sim, timeout = self.sim, self.params.op_timeout
        results: list[tuple[_Outcome | None, float]] = [(None, 0.0)] * len(starts)
        pending: dict[tuple[Address, int], tuple[int, float]] = {}
        next_op = 0
        while next_op < len(starts) or pending:
            while next_op < len(starts) and len(pending) < concurrency:
                pending[starts[next_op]()] = (next_op, sim.now)
                next_op += 1
            deadline = min(begin for _, begin in pending.values()) + timeout
            while not self.recent and sim.now <= deadline:
                if not sim.step():
                    deadline = -math.inf  # nothing left to happen: all pending time out
                    break
                self.events += 1
            for key in self.recent:
                outcome = self.done.pop(key, None)
                if key in pending and outcome is not None:
                    index, begin = pending.pop(key)
                    results[index] = (outcome, sim.now - begin)
            self.recent.clear()
            for key, (index, begin) in list(pending.items()):
                if sim.now > begin + timeout or deadline == -math.inf:
                    del pending[key]
                    results[index] = (None, sim.now - begin)
            if report is not None:
                report.update(next_op - len(pending))
        return results

    def join(self, i: int) -> _SimStart:
        def start() -> tuple[Address, int]:
            a, bootstrap = self.addresses[i], self.addresses[0]
            return a, self.sim.call(a, lambda n, now: n.dht.bootstrap([bootstrap], now=now))

        return start

    def store(self, i: int) -> _SimStart:
        from railgun_ref.dht.keys import KeyType  # noqa: PLC0415

        def start() -> tuple[Address, int]:
            a = self.addresses[self.workload.store_from[i]]
            ident, value = self.workload.idents[i], self.workload.values[i]
            return a, self.sim.call(
                a, lambda n, now: n.dht.store(KeyType.RENDEZVOUS, ident, value, now=now)
            )

        return start

    def get(self, i: int) -> _SimStart:
        def start() -> tuple[Address, int]:
            a, key = self.addresses[self.workload.get_from[i]], self.key(i)
            self.held[i] = bool(self.sim.nodes[a].dht.records.get(key, now=self.sim.now))
            return a, self.sim.call(a, lambda n, now: n.dht.get(key, now=now))

        return start

    def key(self, i: int) -> bytes:
        from railgun_ref.dht.keys import KeyType, derive_key  # noqa: PLC0415

        return derive_key(KeyType.RENDEZVOUS, self.workload.idents[i])

    def setup(self) -> tuple[int, float, float]:
        """Join every node; (joins failed, virtual seconds, wall seconds)."""
        self.populate()
        start = self.sim.now
        total = len(self.addresses) - 1
        with self.progress.phase("setup", total=total, unit="nodes joined") as joining:
            joins = self.run_ops(
                [self.join(i) for i in range(1, len(self.addresses))],
                self.params.join_concurrency,
                joining,
            )
        failed = sum(
            1 for outcome, _ in joins if not isinstance(outcome, _Joined) or outcome.closest == 0
        )
        virtual, wall = self.sim.now - start, time.perf_counter() - self.wall_start
        self.progress(
            f"setup {len(self.addresses)} nodes: {virtual:.1f} virtual s, {wall:.1f} wall s, "
            f"{self.events} events"
        )
        self.events += self.sim.run_for(self.params.settle_s)
        return failed, virtual, wall

    def stores(self) -> list[OpResult]:
        done = self.run_ops(
            [self.store(i) for i in range(self.params.keys)], self.params.op_concurrency
        )
        out: list[OpResult] = []
        for i, (outcome, waited) in enumerate(done):
            if isinstance(outcome, _Stored):
                publisher = self.sim.nodes[self.addresses[self.workload.store_from[i]]]
                own = bool(publisher.dht.records.get(self.key(i), now=self.sim.now))
                out.append(_store_result(outcome.accepted - own, outcome.duration))
            else:
                out.append(OpResult(ok=False, latency_s=waited, error="harness_timeout"))
        return out

    def gets(self) -> list[OpResult]:
        done = self.run_ops(
            [self.get(i) for i in range(self.params.keys)], self.params.op_concurrency
        )
        out: list[OpResult] = []
        for i, (outcome, waited) in enumerate(done):
            if not isinstance(outcome, _Got):
                out.append(
                    OpResult(
                        ok=False, latency_s=waited, error="harness_timeout", local=self.held[i]
                    )
                )
                continue
            ok = outcome.found and _records_hold(outcome.records, self.workload.values[i])
            error = None if ok else ("wrong_value" if outcome.found else "not_found")
            out.append(
                OpResult(
                    ok=ok,
                    latency_s=outcome.duration,
                    rpcs=outcome.queries,
                    hops=outcome.hops,
                    error=error,
                    local=self.held[i],
                )
            )
        return out

    def room_phase(self) -> dict[str, Any]:
        """Announce `room_members` members of one room; every live non-holder looks them up."""
        from railgun_ref.dht.keys import KeyType, derive_key  # noqa: PLC0415
        from railgun_ref.rooms.ids import dht_ident_of  # noqa: PLC0415

        stopped = set(self.workload.stopped)
        live = [a for i, a in enumerate(self.addresses) if i not in stopped]
        rng = random.Random(self.params.seed ^ 0x500E)
        members = rng.sample(live, self.params.room_members)
        secret = rng.randbytes(32)
        ident = dht_ident_of(secret)
        announced = self.run_ops(
            [self._announce(a, secret, ident) for a in members], self.params.op_concurrency
        )
        key = derive_key(KeyType.ROOM, ident)
        getters = [a for a in live if not self.sim.nodes[a].dht.records.get(key, now=self.sim.now)]
        wanted = {self.sim.nodes[a].node_id for a in members}
        done = self._lookups(getters, ident)
        counts = [self._members_in(outcome, ident, wanted) for outcome, _ in done]
        fetches = self._dht_counts()
        # The same lookups with DHT-7.8 turned off: what datagram answers alone carry.
        for a in getters:
            dht = self.sim.nodes[a].dht
            dht.config = dataclasses.replace(dht.config, stream_fetches=0)
        without = [self._members_in(o, ident, wanted) for o, _ in self._lookups(getters, ident)]
        report = room_report(
            counts,
            members=len(members),
            announced=sum(1 for o, _ in announced if isinstance(o, _Stored) and o.accepted),
            timed_out=sum(1 for o, _ in done if not isinstance(o, _Got)),
            fetches=fetches,
        )
        report["fraction_without_stream_fetch"] = room_report(
            without, members=len(members), announced=0, timed_out=0, fetches={}
        )["fraction"]
        return report

    def _lookups(
        self, getters: Sequence[Address], ident: bytes
    ) -> list[tuple[_Outcome | None, float]]:
        return self.run_ops(
            [self._find_room_peers(a, ident) for a in getters], self.params.op_concurrency
        )

    def _announce(self, a: Address, secret: bytes, ident: bytes) -> _SimStart:
        from railgun_ref.rooms.announce import room_announcement  # noqa: PLC0415

        def start() -> tuple[Address, int]:
            host, port = a
            node = self.sim.nodes[a]
            value = room_announcement(
                secret, publisher=node.identity.public_key, host=host, port=port
            )
            return a, self.sim.call(
                a, lambda n, now: n.dht.announce_room(ident, now=now, value=value)
            )

        return start

    def _find_room_peers(self, a: Address, ident: bytes) -> _SimStart:
        def start() -> tuple[Address, int]:
            return a, self.sim.call(a, lambda n, now: n.dht.find_room_peers(ident, now=now))

        return start

    def _members_in(self, outcome: _Outcome | None, ident: bytes, wanted: set[NodeId]) -> int:
        """How many of `wanted` a lookup found, counting valid proven announcements only."""
        from railgun_ref.core.errors import RemoteProtocolError  # noqa: PLC0415
        from railgun_ref.transport.p2p import member_from_record  # noqa: PLC0415

        if not isinstance(outcome, _Got):
            return 0
        found = set()
        for record in outcome.records:
            try:
                member = member_from_record(record, room_id=ident, now=self.sim.now, closed=True)
            except RemoteProtocolError:
                continue
            found.add(member.node_id)
        return len(found & wanted)

    def _dht_counts(self) -> dict[str, int]:
        from railgun_ref.dht.service import DhtCounter  # noqa: PLC0415

        names = (DhtCounter.STREAM_FETCH, DhtCounter.STREAM_FETCH_FAILED)
        return {
            str(name): sum(n.dht.counters.get_count(name) for n in self.sim.nodes.values())
            for name in names
        }

    def run(self) -> ImplRun:
        virtual_start = self.sim.now
        joins_failed, setup_virtual, setup_wall = self.setup()
        wall_stores = time.perf_counter()
        stores = self.stores()
        wall_stores = time.perf_counter() - wall_stores
        self.progress(f"{self.params.keys} stores done ({wall_stores:.1f} wall s)")
        for i in self.workload.stopped:
            self.sim.stop(self.addresses[i])
        wall_gets = time.perf_counter()
        gets = self.gets()
        wall_gets = time.perf_counter() - wall_gets
        wall_total = time.perf_counter() - self.wall_start
        self.progress(
            f"{self.params.keys} gets done ({wall_gets:.1f} wall s); {self.events} events in total"
        )
        extra: dict[str, Any] = {}
        if self.params.room_members:
            extra["room_members_found"] = self.room_phase()
            self.progress(f"room phase: {extra['room_members_found']['fraction']}")
        return ImplRun(
            impl="ours",
            driver="sim",
            setup_s=setup_virtual,
            joins_failed=joins_failed,
            stores=stores,
            gets=gets,
            notes=list(_SIM_NOTES),
            extra={
                "log2_nodes": round(math.log2(self.params.nodes), 2),
                "virtual": {
                    "setup_s": round(setup_virtual, 3),
                    "end_time_s": round(self.sim.now - virtual_start, 3),
                },
                "wall_s": {
                    "setup": round(setup_wall, 2),
                    "stores": round(wall_stores, 2),
                    "gets": round(wall_gets, 2),
                    "total": round(wall_total, 2),
                },
                "events_processed": self.events,
                "events_per_wall_s": round(self.events / wall_total) if wall_total > 0 else None,
                "sim_counters": self.sim.counters.snapshot(),
                **extra,
            },
        )


def room_report(
    counts: Sequence[int], *, members: int, announced: int, timed_out: int, fetches: dict[str, int]
) -> dict[str, Any]:
    """`room_members_found`: members each non-holder's find_room_peers found, as fractions."""
    fractions = sorted(c / members for c in counts) if members else []
    return {
        "members": members,
        "members_announced": announced,
        "getters": len(counts),
        "getters_found_all": sum(1 for c in counts if c == members),
        "lookups_timed_out": timed_out,
        "per_getter": {
            "min": fractions[0] if fractions else None,
            "median": statistics.median(fractions) if fractions else None,
        },
        "fraction": round(sum(counts) / (members * len(counts)), 4) if counts else None,
        "dht_counters": fetches,
        "how_counted": "getters: live nodes not holding the room key; a member counts when a "
        "valid announcement with its proof of the room secret names it (member_from_record); "
        "fraction_without_stream_fetch: the same getters again with stream_fetches = 0 "
        "(datagram answers only, the behaviour before DHT-7.8)",
    }


_SIM_NOTES: Final = [
    "virtual time: setup_s and latency_ms are simulated seconds (link latency "
    "rtt/2 each way, no CPU cost), not wall time",
    "rpcs per get: GetFinished.queries; hops: GetFinished.hops, the hop at which the "
    "closest peer that answered was learned (seeds are hop 1)",
    "the same Node code and the same workload as the UDP driver",
]


# ------------------------------------------------------------------ worker


def _run_worker(impl: str, driver: str, params: BenchParams, *, quiet: bool) -> dict[str, Any]:
    progress = Progress(f"{impl}/{driver}", enabled=not quiet)
    workload = make_workload(params)
    wall = time.perf_counter()
    runner: Callable[[BenchParams, Workload, Progress], ImplRun]
    if impl == "ours" and driver == "udp":
        import anyio  # noqa: PLC0415, F401  (baseline RSS counts the implementation's imports)

        import railgun_ref.drivers.udp  # noqa: PLC0415

        runner = run_ours_udp
    elif impl == "ours" and driver == "sim":
        import railgun_ref.drivers.sim  # noqa: PLC0415, F401

        runner = run_ours_sim
    elif impl == "kademlia" and driver == "udp":
        from railgun_ref.bench.dht_kademlia import import_kademlia, run_kademlia  # noqa: PLC0415

        import_kademlia()
        runner = run_kademlia
    else:
        raise ValueError(f"no runner for impl={impl!r} driver={driver!r}")
    baseline = _rss_now_mb()
    run = runner(params, workload, progress)
    return impl_report(run, baseline_rss_mb=baseline, wall_s=time.perf_counter() - wall)


def measure(impl: str, driver: str, params: BenchParams, *, quiet: bool) -> dict[str, Any]:
    """One implementation's report, measured in this process (what a sweep run calls)."""
    return _run_worker(impl, driver, params, quiet=quiet)


def worker_main(argv: Sequence[str]) -> int:
    """``python -m railgun_ref.bench.dht --worker IMPL --driver D --params JSON``."""
    parser = argparse.ArgumentParser(prog="python -m railgun_ref.bench.dht")
    parser.add_argument("--worker", choices=IMPLS, required=True)
    parser.add_argument("--driver", choices=("udp", "sim"), default="udp")
    parser.add_argument("--params", required=True, help="BenchParams as a JSON object")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    params = BenchParams(**json.loads(args.params))
    print(json.dumps(_run_worker(args.worker, args.driver, params, quiet=args.quiet)))
    return 0


def _spawn_worker(impl: str, driver: str, params: BenchParams, *, quiet: bool) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "railgun_ref.bench.dht",
        "--worker",
        impl,
        "--driver",
        driver,
        "--params",
        json.dumps(asdict(params)),
    ]
    if quiet:
        command.append("--quiet")
    try:
        proc = subprocess.run(  # stderr passes through: progress lines
            command, stdout=subprocess.PIPE, text=True, check=False, timeout=_WORKER_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return {"impl": impl, "driver": driver, "error": f"worker ran over {_WORKER_TIMEOUT}s"}
    if proc.returncode != 0:
        return {"impl": impl, "driver": driver, "error": f"worker exited {proc.returncode}"}
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


# ------------------------------------------------------------------ goals and report


def kademlia_available() -> bool:
    return find_spec("kademlia") is not None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _goal_check(name: str, value: float | None, op: str, threshold: float) -> dict[str, Any]:
    met = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
    return {"what": name, "value": value, "op": op, "threshold": threshold, "met": met}


def evaluate_goals(
    params: BenchParams, driver: str, impls: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The issue's goals, each marked whether this run's parameters are the goal's."""
    both = all(name in impls and "error" not in impls[name] for name in IMPLS)
    ours = impls.get("ours", {})
    gets = ours.get("gets", {})
    real = driver == "udp"
    same_timeout = params.rpc_timeout == GOAL_RPC_TIMEOUT
    goals: list[dict[str, Any]] = []

    applies = real and params.nodes == GOAL1_NODES and params.churn == 0 and same_timeout
    checks = [_goal_check("ours: get success rate", gets.get("success_rate"), ">=", 1.0)]
    peer = impls.get("kademlia", {}).get("gets", {}).get("success_rate")
    goals.append(
        {
            "id": "G1",
            "goal": "N=500, no churn: 100 % get success, both implementations in the same run",
            "applies": applies,
            "both_in_same_run": both,
            "checks": checks,
            "peer_success_rate": peer,
            "met": (applies and both and all(c["met"] for c in checks) if applies else None),
        }
    )

    applies = (
        real
        and params.nodes == GOAL2_NODES
        and params.churn == GOAL2_CHURN
        and params.rtt_ms == GOAL2_RTT_MS
        and same_timeout
    )
    latency = gets.get("latency_ms", {})
    checks = [
        _goal_check("ours: get success rate", gets.get("success_rate"), ">=", GOAL2_SUCCESS),
        _goal_check(
            "ours: median get latency, ms",
            latency.get("median"),
            "<=",
            GOAL2_MEDIAN_RTTS * GOAL2_RTT_MS,
        ),
        _goal_check("ours: p95 get latency, ms", latency.get("p95"), "<=", GOAL2_P95_MS),
    ]
    goals.append(
        {
            "id": "G2",
            "goal": (
                "N=200, churn 0.3, RTT 50 ms, 5 s RPC timeout for both: ours >= 99.5 % "
                "success, median get <= 3 RTT, p95 <= 1 s, both implementations in the same run"
            ),
            "applies": applies,
            "both_in_same_run": both,
            "checks": checks,
            "peer_success_rate": impls.get("kademlia", {}).get("gets", {}).get("success_rate"),
            "met": (applies and both and all(c["met"] for c in checks) if applies else None),
        }
    )
    goals.append(_room_goal(params, ours.get("room_members_found")))
    return goals


def _room_goal(params: BenchParams, room: dict[str, Any] | None) -> dict[str, Any]:
    """G3 (issue 13): every member of a 50-member room found by every non-holder."""
    applies = params.nodes == GOAL3_NODES and params.room_members == GOAL3_MEMBERS
    fraction = None if room is None else room.get("fraction")
    checks = [_goal_check("ours: fraction of room members found", fraction, ">=", 1.0)]
    return {
        "id": "G3",
        "goal": "N=200, 50 room members: every non-holder's find_room_peers finds all 50",
        "applies": applies,
        "checks": checks,
        "met": all(c["met"] for c in checks) if applies else None,
    }


def _git(*args: str) -> str | None:
    """Read-only git query about the checkout the package runs from, or None."""
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def environment() -> dict[str, Any]:
    status = _git("status", "--porcelain", "--", "railgun_ref")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_package_tree_modified": None if status is None else bool(status),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "machine_note": MACHINE_NOTE,
        "versions": {
            dist: _version(dist)
            for dist in ("railgun-ref", "anyio", "pynacl", "cbor2", "kademlia", "rpcudp")
        },
        "network": "127.0.0.1 only, one event loop per implementation",
    }


HOW_COUNTED: Final = {
    "latency": "perf_counter around each awaited get (simulator: GetFinished.duration, "
    "virtual); statistics over every get, failed ones included",
    "success": "the value found equals the value stored under that key",
    "rpcs_ours": "GetFinished.queries: FIND_VALUE requests the get's lookup sent",
    "rpcs_kademlia": "request datagrams (rpcudp type byte 0x00) the getter's transport sent "
    "while its get ran (one get per getter at a time); includes the STORE kademlia sends to "
    "the nearest peer without the value once found, excludes replies to other nodes",
    "peak_rss_mb": "ru_maxrss of the implementation's own worker subprocess; "
    "baseline_rss_mb is VmRSS after its imports, before any node",
    "setup_s": "start of node 0 to the end of the last join (joins through node 0, "
    "join_concurrency at a time)",
    "store_success": "ours: at least one node besides the publisher accepted the record "
    "(StoreFinished.accepted minus the publisher's own copy; remote_replicas is that count); "
    "kademlia: Server.set returned True (some STORE RPC succeeded)",
    "getter_held_value": "gets whose getter held the value itself when the get began "
    "(kademlia's Server.get then answers from local storage with no RPC; ours still "
    "looks the key up on the network, since a record may have newer versions elsewhere)",
    "percentiles": "nearest rank",
    "rtt": "each datagram is held rtt_ms/2 before it is sent, on every node, both directions",
    "event_loop_lag_ms": "how late a 50 ms sleeper in the same loop woke, per phase: "
    "queueing delay every node in that loop suffered (CPU-bound loop, shared cores)",
    "setup_cpu_s": "CPU seconds (user + system, time.process_time) the worker spent during "
    "setup_s: less sensitive than wall time to what else the shared cores run",
    "late_responses": "ours: responses that matched no request in flight "
    "(rejected.unexpected_response: they came after the RPC timeout, or twice)",
    "dropped_datagrams": "kernel: /proc/net/udp drops (receive buffer full) over the "
    "implementation's sockets at the end of the gets; driver_queue_full: ours only, datagrams "
    "its send backlog refused",
}


def run(
    params: BenchParams,
    *,
    impls: Sequence[str],
    driver: str = "udp",
    quiet: bool = False,
    in_process: bool = False,
) -> dict[str, Any]:
    """Run each implementation (in its own subprocess unless `in_process`) and merge."""
    env = environment()
    results: dict[str, dict[str, Any]] = {}
    for impl in impls:
        if in_process:
            results[impl] = _run_worker(impl, driver, params, quiet=quiet)
        else:
            results[impl] = _spawn_worker(impl, driver, params, quiet=quiet)
    env["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    notes = []
    if "kademlia" not in impls and driver == "udp":
        notes.append(
            "kademlia not run"
            + ("" if kademlia_available() else " (not installed: pip install '.[bench]')")
        )
    if in_process:
        notes.append("in-process run: peak_rss_mb is the whole process's, not per impl")
    return {
        "benchmark": "dht",
        "driver": driver,
        "parameters": asdict(params),
        "workload": {
            "stopped_nodes": round(params.churn * params.nodes),
            "key_type_ours": "RENDEZVOUS (SHA-256 key of the ident, DHT-2.1)",
            "key_kademlia": "the ident (kademlia hashes it with SHA-1)",
            "seed_determines": "node ids, keys, values, storers, stopped set, getters",
        },
        "peer": (
            {
                "name": "kademlia (PyPI, bmuller)",
                "version": _version("kademlia"),
                "settings": f"Server(ksize={params.k}, alpha={params.alpha}), RPC timeout "
                f"{params.rpc_timeout} s",
            }
            if "kademlia" in impls
            else None
        ),
        "how_counted": HOW_COUNTED,
        "impls": results,
        "room_members_found": results.get("ours", {}).get("room_members_found"),
        "goals": evaluate_goals(params, driver, results),
        "environment": env,
        "notes": notes,
    }


def _print_table(result: dict[str, Any]) -> None:
    print(f"bench dht, driver {result['driver']}: {result['parameters']}")
    for name, report in result["impls"].items():
        if "error" in report:
            print(f"  {name:9} ERROR {report['error']}")
            continue
        gets = report["gets"]
        print(
            f"  {name:9} setup {report['setup_s']:8.2f}s  rss {report['peak_rss_mb']:7.1f} MB  "
            f"get ok {gets['success_rate']:.3f}  latency ms {gets['latency_ms']}  "
            f"rpcs {gets.get('rpcs')}"
        )
    room = result.get("room_members_found")
    if room is not None:
        print(f"  room members found: {room['fraction']} (per getter {room['per_getter']})")
    for goal in result["goals"]:
        print(f"  goal {goal['id']}: applies={goal['applies']} met={goal['met']}")


def main(
    *,
    json_output: bool,
    nodes: int,
    keys: int,
    churn: float,
    rtt_ms: float | None,
    seed: int,
    impl: str | None,
    driver: str = "udp",
    timeout: float = REQUEST_TIMEOUT,
    join_concurrency: int = 8,
    op_concurrency: int = 4,
    output: str | None = None,
    quiet: bool = False,
    room_members: int = 0,
    crypto: str = "real",
) -> int:
    if room_members and driver != "sim":
        raise UsageError("--room-members runs in the simulator: add --driver sim")
    if crypto != "real" and driver != "sim":
        raise UsageError("--crypto fast runs in the simulator only: add --driver sim")
    if rtt_ms is None:
        rtt_ms = SIM_DEFAULT_RTT_MS if driver == "sim" else 0.0
    params = BenchParams(
        nodes=nodes,
        keys=keys,
        churn=churn,
        rtt_ms=rtt_ms,
        seed=seed,
        rpc_timeout=timeout,
        join_concurrency=join_concurrency,
        op_concurrency=op_concurrency,
        room_members=room_members,
        crypto=crypto,
    )
    if impl is None:
        impl = "both" if driver == "udp" and kademlia_available() else "ours"
    if driver == "sim" and impl != "ours":
        raise UsageError("--driver sim runs ours only (kademlia has no sans-IO core)")
    if impl in ("kademlia", "both") and not kademlia_available():
        raise UsageError("--impl kademlia needs the bench extra: pip install 'railgun-ref[bench]'")
    impls = list(IMPLS) if impl == "both" else [impl]
    result = run(params, impls=impls, driver=driver, quiet=quiet)
    text = json.dumps(result, indent=2)
    if output:
        with open(output, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    if json_output:
        print(text)
    else:
        _print_table(result)
    return 0 if all("error" not in r for r in result["impls"].values()) else 1


if __name__ == "__main__":
    # Run the worker from the imported module, not this `__main__` copy, so the
    # kademlia adapter and the harness share one set of classes.
    import importlib

    sys.exit(importlib.import_module("railgun_ref.bench.dht").worker_main(sys.argv[1:]))
