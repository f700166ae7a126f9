"""What `bench dht` and its peers share: parameters, the workload, results, progress lines.

`railgun_ref.bench.dht` (the harness) and `railgun_ref.bench.dht_kademlia`
(the PyPI peer) both use these; keeping them here lets the peer's module
import them without importing the harness, which imports the peer lazily
(no import cycle).
"""

import math
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from railgun_ref.core.constants import DHT_ALPHA, DHT_K, REQUEST_TIMEOUT
from railgun_ref.drivers.console import ProgressReport

#: `--crypto`: how simulated nodes sign (identity.keys.CryptoMode values).
CRYPTO_MODES: Final = ("real", "fast")

__all__ = [
    "BenchParams",
    "ImplRun",
    "LoopLag",
    "OpResult",
    "Progress",
    "Workload",
    "distribution",
    "kernel_udp_drops",
    "make_workload",
    "nearest_rank",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchParams:
    """One benchmark run. Times in seconds unless the name says otherwise."""

    nodes: int = 100
    keys: int = 50
    churn: float = 0.0  #: fraction of nodes stopped after the stores, before the gets
    rtt_ms: float = 0.0  #: emulated round-trip time; each datagram waits rtt_ms/2 on send
    seed: int = 1
    rpc_timeout: float = REQUEST_TIMEOUT  #: per-RPC timeout, the same for both implementations
    k: int = DHT_K
    alpha: int = DHT_ALPHA
    value_size: int = 32  #: bytes per stored value
    join_concurrency: int = 8  #: joins in flight at once during setup
    op_concurrency: int = 4  #: stores (then gets) in flight at once
    settle_s: float = 2.0  #: pause after setup, before the stores (virtual in the simulator)
    op_timeout: float = 300.0  #: harness cap per operation; a get past it is a failure
    room_members: int = 0  #: members announced in one room after the gets (0: no room phase)
    #: "real" (Ed25519) or "fast" (simulator only: a keyed hash stands in for signatures)
    crypto: str = "real"

    def __post_init__(self) -> None:
        if self.nodes < 2 or self.keys < 1:
            raise ValueError("need at least 2 nodes and 1 key")
        if not 0.0 <= self.churn < 1.0 or round(self.churn * self.nodes) >= self.nodes:
            raise ValueError("churn is a fraction in [0, 1) that leaves a node running")
        if self.rtt_ms < 0 or self.rpc_timeout <= 0 or self.op_timeout <= 0:
            raise ValueError("rtt_ms must be >= 0, timeouts > 0")
        if min(self.join_concurrency, self.op_concurrency, self.k, self.alpha) < 1:
            raise ValueError("concurrencies, k and alpha are at least 1")
        if not 1 <= self.value_size <= 256:
            raise ValueError("value_size is 1..256 bytes (DHT-3.2)")
        if not 0 <= self.room_members <= self.nodes - round(self.churn * self.nodes):
            raise ValueError("room_members is 0..the number of nodes left running")
        if self.crypto not in CRYPTO_MODES:
            raise ValueError(f"crypto is one of {', '.join(CRYPTO_MODES)}")

    @property
    def send_delay(self) -> float:
        """One-way delay added to every datagram, seconds."""
        return self.rtt_ms / 2000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """Everything random in a run, drawn from the seed, shared by all implementations."""

    node_seeds: tuple[bytes, ...]  #: 32 bytes per node (ours: Ed25519 seed; kademlia: id)
    idents: tuple[bytes, ...]  #: per key: the application key (32 bytes)
    values: tuple[bytes, ...]  #: per key: the value stored
    store_from: tuple[int, ...]  #: per key: index of the node that stores it
    stopped: tuple[int, ...]  #: indices of the nodes stopped by churn, sorted
    get_from: tuple[int, ...]  #: per key: index of the (surviving) node that gets it


def make_workload(params: BenchParams) -> Workload:
    rng = random.Random(params.seed)
    n = params.nodes
    node_seeds = tuple(rng.randbytes(32) for _ in range(n))
    idents = tuple(rng.randbytes(32) for _ in range(params.keys))
    values = tuple(rng.randbytes(params.value_size) for _ in range(params.keys))
    store_from = tuple(rng.randrange(n) for _ in range(params.keys))
    stopped = tuple(sorted(rng.sample(range(n), round(params.churn * n))))
    stopped_set = set(stopped)
    alive = [i for i in range(n) if i not in stopped_set]
    get_from = tuple(rng.choice(alive) for _ in range(params.keys))
    return Workload(
        node_seeds=node_seeds,
        idents=idents,
        values=values,
        store_from=store_from,
        stopped=stopped,
        get_from=get_from,
    )


# ------------------------------------------------------------------ results


@dataclass(slots=True)
class LoopLag:
    """How late a periodic sleeper wakes, per phase: the event loop's own queueing delay.

    All N nodes share one loop on a shared 2-core machine; a late wake-up is
    time every datagram handler waited too, so it explains latency noise.
    """

    interval: float = 0.05  #: seconds between samples
    phase: str = "setup"
    samples: dict[str, list[float]] = field(default_factory=dict)

    def record(self, lateness: float) -> None:
        self.samples.setdefault(self.phase, []).append(max(0.0, lateness))

    def report(self) -> dict[str, dict[str, float | None]]:
        return {phase: distribution([x * 1000 for x in xs]) for phase, xs in self.samples.items()}


@dataclass(slots=True, kw_only=True)
class OpResult:
    """One store or get as the harness saw it."""

    ok: bool
    latency_s: float  #: wall (or virtual) seconds the caller waited
    rpcs: int | None = None
    hops: int | None = None
    error: str | None = None  #: why it failed, when it did
    local: bool | None = None  #: a get whose getter itself held the value when it started
    replicas: int | None = None  #: a store: nodes other than the publisher that accepted it


@dataclass(slots=True, kw_only=True)
class ImplRun:
    """What one implementation's worker measured."""

    impl: str
    driver: str
    setup_s: float
    joins_failed: int
    stores: list[OpResult]
    gets: list[OpResult]
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    loop_lag: LoopLag | None = None


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank q-quantile (0 < q <= 1) of already sorted values."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def distribution(values: Sequence[float], *, digits: int = 1) -> dict[str, float | None]:
    """median, p95 (nearest rank), max and mean of `values`, rounded; None when empty."""
    if not values:
        return {"median": None, "p95": None, "max": None, "mean": None}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), digits),
        "p95": round(nearest_rank(ordered, 0.95), digits),
        "max": round(ordered[-1], digits),
        "mean": round(statistics.fmean(ordered), digits),
    }


class Progress:
    """Phase lines on stderr, so a long run shows where it is."""

    def __init__(self, label: str, *, enabled: bool = True) -> None:
        self._label = label
        self._enabled = enabled
        self._start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self._enabled:
            elapsed = time.perf_counter() - self._start
            print(f"[{self._label} {elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)

    def phase(self, description: str, *, total: int, unit: str) -> ProgressReport:
        """A counted phase (the joins): a bar on a terminal, else a line every 5 s."""
        return ProgressReport(
            f"{self._label}: {description}",
            total=total,
            unit=unit,
            enabled=self._enabled,
            final_line=False,  # the phase's own summary line follows
        )


def kernel_udp_drops(ports: Sequence[int]) -> int | None:
    """Datagrams the kernel dropped (full receive buffer) at the IPv4 UDP sockets bound to
    `ports`, summed, from /proc/net/udp's ``drops`` column; None where it is not available."""
    wanted = {f":{port:04X}" for port in ports}
    try:
        with open("/proc/net/udp", encoding="ascii") as table:
            lines = table.readlines()[1:]
    except OSError:
        return None
    drops = 0
    for line in lines:
        fields = line.split()
        if len(fields) > 12 and fields[1][fields[1].rfind(":") :] in wanted:
            drops += int(fields[12])
    return drops
