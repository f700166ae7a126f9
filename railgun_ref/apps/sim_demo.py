"""`railgun-ref sim`: a ping workload on simulated nodes, summarised.

Every node pings a random peer once per virtual second over a lossy network.
The summary ends with the SHA-256 of the trace: run it twice with the same
seed and the digest is the same; change the seed and it changes.
"""

import hashlib
import json
import statistics
import time
from collections.abc import Callable
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from railgun_ref.drivers.console import ProgressReport
from railgun_ref.drivers.sim import LinkProfile, SimNetwork, Simulator, crypto_mode
from railgun_ref.events import NodeEvent, PongReceived, RequestTimedOut
from railgun_ref.identity.keys import CryptoMode
from railgun_ref.node import NodeConfig, NodeCounter
from railgun_ref.rpc.labels import MessageName

#: Virtual seconds after the last ping for its request to end (answer or timeout).
DRAIN: Final = 5.0


def ping_scenario(
    *,
    nodes: int,
    seed: int,
    loss: float,
    latency_ms: float,
    duration: float,
    progress: Callable[[float], None] | None = None,
    crypto: CryptoMode = CryptoMode.REAL,
) -> dict[str, Any]:
    """Run the workload; `progress` is called with the virtual seconds done, once per
    virtual second (the run is the same with or without it). `crypto` FAST replaces
    Ed25519 with a keyed hash for the run (`identity.keys`); the summary says which."""
    if nodes < 2:
        raise ValueError("need at least 2 nodes")
    with crypto_mode(crypto):
        summary = _ping_scenario(nodes, seed, loss, latency_ms, duration, progress)
    return {**summary, "crypto": crypto.value}


def _ping_scenario(
    nodes: int,
    seed: int,
    loss: float,
    latency_ms: float,
    duration: float,
    progress: Callable[[float], None] | None,
) -> dict[str, Any]:
    network = SimNetwork(
        default=LinkProfile(latency=latency_ms / 1000, jitter=latency_ms / 5000, loss=loss)
    )
    sim = Simulator(seed=seed, network=network)
    addresses = sim.spawn(nodes, config=NodeConfig(request_timeout=2.0))
    rtts: list[float] = []
    timeouts = 0

    def on_event(_address: object, event: NodeEvent, _now: float) -> None:
        nonlocal timeouts
        if isinstance(event, PongReceived):
            rtts.append(event.rtt)
        elif isinstance(event, RequestTimedOut):
            timeouts += 1

    sim.subscribe(on_event)

    def tick(s: Simulator) -> None:
        for src in addresses:
            dst = s.rng.choice(addresses)
            if dst != src:
                s.ping(src, dst)
        if s.now + 1.0 <= end:
            s.after(1.0, tick)

    end = sim.now + duration
    sim.after(0.0, tick)
    started = time.perf_counter()
    events = _run_until(sim, end + DRAIN, progress)
    wall = time.perf_counter() - started
    return {
        "nodes": nodes,
        "seed": seed,
        "loss": loss,
        "latency_ms": latency_ms,
        "virtual_seconds": duration,
        **_measurements(sim, rtts=rtts, timeouts=timeouts, events=events, wall=wall),
    }


def _run_until(sim: Simulator, stop: float, progress: Callable[[float], None] | None) -> int:
    """Run `sim` to virtual time `stop` one virtual second at a time; the events processed."""
    events = 0
    start = sim.now
    while sim.now < stop:
        events += sim.run(until=min(sim.now + 1.0, stop))
        if progress is not None:
            progress(sim.now - start)
    return events


def _measurements(
    sim: Simulator, *, rtts: list[float], timeouts: int, events: int, wall: float
) -> dict[str, Any]:
    """What `ping_scenario` reports after its parameters, in its JSON order."""
    sent = sum(
        node.counters.get_count(NodeCounter.REQUEST, MessageName.PING)
        for node in sim.nodes.values()
    )
    quantiles = statistics.quantiles(rtts, n=20) if len(rtts) >= 2 else [float("nan")] * 19
    return {
        "pings_sent": sent,
        "pongs": len(rtts),
        "timeouts": timeouts,
        "success_rate": round(len(rtts) / sent, 4) if sent else 0.0,
        "rtt_median_ms": round(statistics.median(rtts) * 1000, 3) if rtts else None,
        "rtt_p95_ms": round(quantiles[18] * 1000, 3) if rtts else None,
        "events_processed": events,
        "wall_seconds": round(wall, 3),
        "trace_sha256": hashlib.sha256("\n".join(sim.trace_lines()).encode()).hexdigest(),
    }


def run_ping_scenario(
    *,
    nodes: int,
    seed: int,
    loss: float,
    latency_ms: float,
    duration: float,
    json_output: bool,
    crypto: str = "real",
) -> int:
    what = f"sim: {nodes} nodes, {duration:g} virtual s"
    with ProgressReport(what, total=duration + DRAIN, unit="virtual s") as report:
        summary = ping_scenario(
            nodes=nodes,
            seed=seed,
            loss=loss,
            latency_ms=latency_ms,
            duration=duration,
            progress=report.update,
            crypto=CryptoMode(crypto),
        )
    if json_output:
        print(json.dumps(summary, indent=2))
        return 0
    table = Table(title="Simulated ping workload (virtual time)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, str(value))
    Console().print(table)
    return 0
