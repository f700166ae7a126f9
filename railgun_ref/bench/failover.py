"""`railgun-ref bench failover`: the four takedown scenarios, measured, per failure detector.

Driver ``sim``: `railgun_ref.drivers.sim_transport` runs
N clients -- each the real `HybridTransportService` plus the real
`P2PRoomCore` over a simulated `Node` -- in one room, a simulated central
service with a fault timeline, and chat traffic (every client sends a
message every `send_interval` seconds, +-50 %). Each scenario runs twice
from the same seed, once per detector configuration:

* ``threshold``: the default `HybridTransportConfig` (HT-5.1: 30 s checks,
  3 failures, 2 s latency rule);
* ``phi-accrual``: the same with ``detector=phi-accrual`` (1 s heartbeats,
  phi 8, 2 s acceptable pause; HT-2.3).

Scenarios (times from the start of the run; `fault_at` = 150 s):

1. ``dns_block``    -- the name stops resolving (NXDOMAIN) for `outage` s.
2. ``ip_block``     -- the address is blackholed: checks time out.
3. ``takedown``     -- the service is gone: connection refused.
   ``high_latency`` -- every round trip to the service takes 1.5 s longer, so
   a health check takes about 3.2 s (above the 2 s latency threshold), for `outage` s.
   ``takedown_twice`` -- a flapping service: taken down again 10 s after every
   client is back on the central path; the detectors must work again.
4. ``partition``    -- the service is taken down for good *and* the peers
   are split into two groups that share `bridges` bridge peers; no failback.

Measured per scenario and detector, percentiles over clients:
`detection_s` (fault -> the client's first P2P state), `first_p2p_delivery_s`
(fault -> the first message its application got over P2P), `failback_s`
(service back -> connected-aws again), `back_on_central_during_fault` and
`in_p2p_at_restore` (whether the failover held); over all messages: `lost_messages`
(some other member never got it by the end of the run), `duplicates_to_app`
(the application got a message id twice), message delays; for the
partition above all, `all_members_in_p2p_s`: per message sent once every
client was on P2P, the time until every member had it (through the bridges).
Everything is virtual time, deterministic per seed. Nothing here asserts:
`goals` says which targets were met.

Driver ``localhost`` (`run_localhost`, at the end of this module): ``dns_block``,
``ip_block`` and ``takedown`` on real sockets, built on the demo's engine
`railgun_ref.apps.demo.FailoverNetwork` (a real central process, fault proxy,
DNS server, N clients with the fast profile: a health check every second). One
fresh network per scenario; per scenario over clients: `detection_s` (fault ->
first failed health check), `failover_s` (fault -> first P2P state: the sim's
`detection_s`), `first_p2p_delivery_s`, `failback_s`; over messages, after the
outboxes drained: `lost_messages` and `duplicates_to_app` (`DeliverySummary`).
Wall-clock time, not deterministic; `goals` adds failover p95 <= 3 s per scenario.
"""

import json
import os
import pathlib
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Final

import anyio

from railgun_ref.apps.demo import (
    ON_CENTRAL,
    ON_P2P,
    DeliverySummary,
    FailoverNetwork,
    ScenarioResult,
)
from railgun_ref.client import fast_profile
from railgun_ref.drivers.console import ProgressReport, UsageError
from railgun_ref.drivers.sim import Simulator
from railgun_ref.drivers.sim_transport import (
    P2P_STATES,
    CentralFault,
    CentralLink,
    FaultWindow,
    HarnessCounter,
    SimCentral,
    SimTransportNetwork,
    Traffic,
)
from railgun_ref.transport.outbox import Path
from railgun_ref.transport.service import DetectorKind, HybridTransportConfig, ServiceCounter
from railgun_ref.transport.state import TransportState

#: Seconds from the start of a run to the first fault (all clients settled by then).
FAULT_AT: Final = 150.0
#: Extra latency per round trip in the high-latency scenario. A health check is two round
#: trips (TCP handshake, HTTP exchange), so it takes about 3.2 s: above the 2 s threshold,
#: below the check deadline, i.e. the service answers, slowly.
HIGH_LATENCY_EXTRA: Final = 1.5
#: The second takedown starts this long after every client is back on the central path.
SECOND_TAKEDOWN_GAP: Final = 10.0
#: How long after the first restore the second takedown waits at most for the failbacks.
SECOND_TAKEDOWN_WAIT: Final = 150.0

SCENARIOS: Final = (
    "dns_block",
    "ip_block",
    "takedown",
    "high_latency",
    "takedown_twice",
    "partition",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverParams:
    clients: int = 12
    seed: int = 1
    outage: float = 300.0  #: seconds the service is unavailable (not for `partition`)
    after: float = 240.0  #: seconds of traffic after the service is back
    drain: float = 120.0  #: seconds without new messages before counting losses
    send_interval: float = 5.0  #: each client's mean time between messages
    bridges: int = 2  #: peers in both groups of the partition
    link: CentralLink = field(default_factory=CentralLink)

    def __post_init__(self) -> None:
        if self.clients < 2 or self.bridges < 0:
            raise ValueError("need at least 2 clients and bridges >= 0")
        if min(self.outage, self.after, self.drain, self.send_interval) <= 0:
            raise ValueError("durations must be positive")


def detector_configs() -> dict[str, HybridTransportConfig]:
    default_config = HybridTransportConfig()
    return {
        "threshold": default_config,
        "phi-accrual": replace(default_config, detector=DetectorKind.PHI_ACCRUAL),
    }


def _percentiles(values: Iterable[float]) -> dict[str, float] | None:
    ordered = sorted(values)
    if not ordered:
        return None

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "n": len(ordered),
        "min": round(ordered[0], 3),
        "p50": rank(0.5),
        "p95": rank(0.95),
        "max": round(ordered[-1], 3),
    }


@dataclass(slots=True)
class _Timeline:
    windows: tuple[FaultWindow, ...]
    faults: list[float]  #: fault start times to measure detection from
    restores: list[float]  #: restore times to measure failback from
    traffic_until: float
    end: float
    partition: bool = False
    second_takedown: bool = False  #: decided at run time, once every client failed back


def _timeline(name: str, params: FailoverParams, t0: float) -> _Timeline:
    fault = t0 + FAULT_AT
    restore = fault + params.outage
    kinds = {
        "dns_block": CentralFault.DNS_BLOCK,
        "ip_block": CentralFault.IP_BLOCK,
        "takedown": CentralFault.TAKEDOWN,
        "high_latency": CentralFault.HIGH_LATENCY,
    }
    if name in kinds:
        extra = HIGH_LATENCY_EXTRA if name == "high_latency" else 0.0
        window = FaultWindow(fault=kinds[name], start=fault, end=restore, extra_latency=extra)
        until = restore + params.after
        return _Timeline((window,), [fault], [restore], until, until + params.drain)
    if name == "takedown_twice":
        window = FaultWindow(fault=CentralFault.TAKEDOWN, start=fault, end=restore)
        until = restore + SECOND_TAKEDOWN_WAIT + SECOND_TAKEDOWN_GAP + params.outage
        until += params.after
        return _Timeline(
            (window,), [fault], [restore], until, until + params.drain, second_takedown=True
        )
    if name == "partition":
        if params.clients < params.bridges + 2:
            raise ValueError("the partition scenario needs at least bridges + 2 clients")
        window = FaultWindow(fault=CentralFault.TAKEDOWN, start=fault, end=None)
        until = fault + params.outage
        return _Timeline((window,), [fault], [], until, until + params.drain, partition=True)
    raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")


def _schedule_second_takedown(
    network: SimTransportNetwork, timeline: _Timeline, params: FailoverParams
) -> None:
    """From the first restore on, once every client is back on the central path, take the
    service down again `SECOND_TAKEDOWN_GAP` seconds later (a flapping service)."""
    sim = network.sim
    restore = timeline.restores[0]

    def watch(_sim: Simulator) -> None:
        if all(c.service.state is TransportState.CONNECTED_AWS for c in network.clients):
            start = sim.now + SECOND_TAKEDOWN_GAP
            end = start + params.outage
            network.central.add_window(
                FaultWindow(fault=CentralFault.TAKEDOWN, start=start, end=end)
            )
            timeline.faults.append(start)
            timeline.restores.append(end)
        elif sim.now < restore + SECOND_TAKEDOWN_WAIT:
            sim.after(1.0, watch)

    sim.at(restore, watch)


def _split(network: SimTransportNetwork, bridges: int) -> list[list[int]]:
    """Two groups of clients; the first `bridges` clients are in both."""
    rest = list(range(bridges, len(network.clients)))
    half = len(rest) // 2
    shared = list(range(bridges))
    return [shared + rest[:half], shared + rest[half:]]


def run_scenario(
    name: str, detector: str, params: FailoverParams, config: HybridTransportConfig
) -> dict[str, Any]:
    """One scenario with one detector configuration; returns its metrics row."""
    # One seed per (run seed, scenario): both detectors see the same identities and traffic.
    scenario_seed = params.seed * 1000 + SCENARIOS.index(name)
    sim = Simulator(seed=scenario_seed, keep_trace=False)
    rng = random.Random(scenario_seed)
    t0 = sim.now
    timeline = _timeline(name, params, t0)
    central = SimCentral(
        rng=random.Random(rng.getrandbits(64)), link=params.link, windows=timeline.windows
    )
    network = SimTransportNetwork(
        sim,
        central,
        clients=params.clients,
        config=config,
        rng=random.Random(rng.getrandbits(64)),
    )
    traffic = Traffic(network, interval=params.send_interval, until=timeline.traffic_until)
    groups: list[list[int]] = []
    if timeline.partition:
        groups = _split(network, params.bridges)

        def split(_sim: Simulator) -> None:
            sim.network.split([[network.clients[i].address for i in g] for g in groups])

        sim.at(timeline.faults[0], split)
    if timeline.second_takedown:
        _schedule_second_takedown(network, timeline, params)
    started = time.perf_counter()
    events = sim.run(until=timeline.end)
    wall = time.perf_counter() - started
    row = _measure(network, timeline, t0)
    row.update(
        {
            "scenario": name,
            "detector": detector,
            "messages_sent": traffic.sent,
            "events_processed": events,
            "wall_s": round(wall, 2),
        }
    )
    if timeline.partition:
        row["groups"] = {"sizes": [len(g) for g in groups], "bridges": params.bridges}
    return row


def _first_after(times: Iterable[float], start: float, end: float | None = None) -> float | None:
    later = [t for t in times if t >= start and (end is None or t < end)]
    return min(later) - start if later else None


def _state_at(history: list[tuple[float, TransportState]], t: float) -> TransportState | None:
    current = None
    for at, new in history:
        if at >= t:
            break
        current = new
    return current


_States = dict[int, list[tuple[float, TransportState]]]


def _histories(
    network: SimTransportNetwork, clients: range
) -> tuple[_States, dict[int, list[float]], dict[tuple[int, bytes], float]]:
    """Each client's state changes and P2P delivery times, and when each message arrived."""
    states: _States = {i: [] for i in clients}
    for record in network.states:
        states[record.client].append((record.at, record.new))
    p2p_deliveries: dict[int, list[float]] = {i: [] for i in clients}
    delivered_at: dict[tuple[int, bytes], float] = {}
    for d in network.deliveries:
        delivered_at[(d.client, d.message_id)] = d.at
        if d.path is Path.P2P:
            p2p_deliveries[d.client].append(d.at)
    return states, p2p_deliveries, delivered_at


def _fault_entry(
    k: int,
    timeline: _Timeline,
    t0: float,
    states: _States,
    p2p_deliveries: dict[int, list[float]],
) -> dict[str, Any]:
    """Detection, first P2P delivery and failback around the `k`-th fault."""
    clients = range(len(states))
    fault = timeline.faults[k]
    next_fault = timeline.faults[k + 1] if k + 1 < len(timeline.faults) else None
    detections = [
        _first_after((at for at, new in states[i] if new in P2P_STATES), fault, next_fault)
        for i in clients
    ]
    first_p2p = [_first_after(p2p_deliveries[i], fault, next_fault) for i in clients]
    entry: dict[str, Any] = {
        "fault_at_s": round(fault - t0, 3),
        "detected": sum(d is not None for d in detections),
        "detection_s": _percentiles(d for d in detections if d is not None),
        "first_p2p_delivery_s": _percentiles(d for d in first_p2p if d is not None),
    }
    if k < len(timeline.restores):
        restore = timeline.restores[k]
        # A detector that lets clients back onto the central path while it is still
        # faulty (e.g. a slow service with a detector that ignores latency) shows here.
        entry["back_on_central_during_fault"] = sum(
            1
            for i in clients
            for at, new in states[i]
            if new is TransportState.CONNECTED_AWS and fault < at < restore
        )
        entry["in_p2p_at_restore"] = sum(
            1 for i in clients if _state_at(states[i], restore) in P2P_STATES
        )
        failbacks = [
            _first_after(
                (at for at, new in states[i] if new is TransportState.CONNECTED_AWS),
                restore,
                next_fault,
            )
            for i in clients
        ]
        entry["restored_at_s"] = round(restore - t0, 3)
        entry["failed_back"] = sum(f is not None for f in failbacks)
        entry["failback_s"] = _percentiles(f for f in failbacks if f is not None)
    return entry


@dataclass(slots=True)
class _Deliveries:
    """What reached the other members of the room, message by message (`_deliveries`)."""

    missing: int = 0
    lost_messages: int = 0
    delays: list[float] = field(default_factory=list)
    outage_delays: list[float] = field(default_factory=list)
    all_members: list[float] = field(default_factory=list)
    in_p2p: list[float] = field(default_factory=list)


def _deliveries(
    network: SimTransportNetwork,
    timeline: _Timeline,
    delivered_at: dict[tuple[int, bytes], float],
    first_detections: dict[str, float] | None,
) -> _Deliveries:
    """Exactly once: every other member got every message (duplicates are counted apart)."""
    out = _Deliveries()
    first_fault = timeline.faults[0]
    first_restore = timeline.restores[0] if timeline.restores else None
    # Steady P2P phase: from when the last client detected the first fault to the restore.
    steady_from = first_fault + first_detections["max"] if first_detections is not None else None
    for message_id, sent in sorted(network.sent.items(), key=lambda kv: (kv[1].at, kv[0])):
        latest = sent.at
        complete = True
        for member in range(len(network.clients)):
            if member == sent.sender:
                continue
            at = delivered_at.get((member, message_id))
            if at is None:
                out.missing += 1
                complete = False
                continue
            out.delays.append(at - sent.at)
            latest = max(latest, at)
            in_outage = sent.at >= first_fault and (
                first_restore is None or sent.at < first_restore
            )
            if in_outage:
                out.outage_delays.append(at - sent.at)
        if not complete:
            out.lost_messages += 1
            continue
        if sent.at >= first_fault:
            out.all_members.append(latest - sent.at)
        steady = steady_from is not None and sent.at >= steady_from
        if steady and (first_restore is None or sent.at < first_restore):
            out.in_p2p.append(latest - sent.at)
    return out


def _measure(network: SimTransportNetwork, timeline: _Timeline, t0: float) -> dict[str, Any]:
    clients = range(len(network.clients))
    states, p2p_deliveries, delivered_at = _histories(network, clients)
    row: dict[str, Any] = {"clients": len(network.clients)}
    first_fault = timeline.faults[0]
    row["false_failovers_before_fault"] = sum(
        1 for i in clients for at, new in states[i] if new in P2P_STATES and at < first_fault
    )
    per_fault = [
        _fault_entry(k, timeline, t0, states, p2p_deliveries) for k in range(len(timeline.faults))
    ]
    row["faults"] = per_fault
    deliveries = _deliveries(network, timeline, delivered_at, per_fault[0]["detection_s"])
    row["lost_messages"] = deliveries.lost_messages
    row["missing_deliveries"] = deliveries.missing
    row["duplicates_to_app"] = len(network.duplicates_to_app)
    row["duplicates_suppressed"] = {
        path.value: sum(
            c.service.counters.get_count(ServiceCounter.RECEIVED_DUPLICATE, path)
            for c in network.clients
        )
        for path in Path
    }
    row["delivery_delay_s"] = _percentiles(deliveries.delays)
    row["delivery_delay_during_outage_s"] = _percentiles(deliveries.outage_delays)
    row["all_members_after_fault_s"] = _percentiles(deliveries.all_members)
    row["all_members_in_p2p_s"] = _percentiles(deliveries.in_p2p)
    row["failure_labels"] = dict(sorted((label.value, n) for label, n in network.failures.items()))
    row.update(_counter_rows(network))
    return row


def _counter_rows(network: SimTransportNetwork) -> dict[str, Any]:
    """The counters the report shows, in their flat ``name.label`` form."""
    core_counters: Counter[str] = Counter()
    for client in network.clients:
        core_counters.update(client.core.counters.snapshot())
    return {
        "p2p_counters": {
            key: core_counters[key]
            for key in sorted(core_counters)
            if key.startswith(("relay.", "send.", "ack.", "room.", "rejected."))
        },
        "central_counters": network.central.counters.snapshot(),
        "harness_counters": {
            key: value
            for key, value in network.counters.snapshot().items()
            if key.startswith(HarnessCounter.P2P_STALLED)
        },
    }


def detection_bound(config: HybridTransportConfig, check_duration: float) -> float:
    """HT-2.2: the baseline rule's worst case: `threshold` check intervals plus the last check."""
    return config.aws_failure_threshold * config.aws_health_check_interval + check_duration


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "time": "virtual (discrete-event simulator); wall_s is CPU time on this machine",
    }


def run(
    params: FailoverParams | None = None,
    *,
    scenarios: Iterable[str] = SCENARIOS,
    on_run: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Every scenario under every detector in virtual time; `on_run(scenario, detector)`
    after each run (progress)."""
    params = params or FailoverParams()
    configs = detector_configs()
    out: dict[str, Any] = {
        "benchmark": "failover",
        "driver": "sim",
        "seed": params.seed,
        "clients": params.clients,
        "parameters": {
            "fault_at_s": FAULT_AT,
            "outage_s": params.outage,
            "after_s": params.after,
            "drain_s": params.drain,
            "send_interval_s": params.send_interval,
            "bridges": params.bridges,
            "high_latency_extra_s": HIGH_LATENCY_EXTRA,
            "second_takedown_gap_s": SECOND_TAKEDOWN_GAP,
            "second_takedown_wait_s": SECOND_TAKEDOWN_WAIT,
            "central_link": {
                "one_way_latency_s": params.link.latency,
                "jitter_s": params.link.jitter,
                "dns_rtt_s": params.link.dns_rtt,
                "check_timeout_s": params.link.check_timeout,
            },
            "p2p_link": "simulator default LinkProfile (25 ms one way), streams",
        },
        "detectors": {
            name: {
                "detector": config.detector.value,
                "check_interval_s": config.check_interval,
                "failure_threshold": config.aws_failure_threshold,
                "latency_threshold_s": config.aws_latency_threshold,
                "phi_threshold": config.phi_threshold,
                "phi_acceptable_pause_s": config.phi_acceptable_pause,
                "failback_successes": config.failback_successes,
                "failback_min_interval_s": config.failback_min_interval,
            }
            for name, config in configs.items()
        },
        "environment": environment(),
        "scenarios": {},
    }
    for name in scenarios:
        out["scenarios"][name] = {}
        for detector, config in configs.items():
            out["scenarios"][name][detector] = run_scenario(name, detector, params, config)
            if on_run is not None:
                on_run(name, detector)
    out["environment"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out["goals"] = _goals(out, params, configs["threshold"])
    return out


def _held(row: dict[str, Any]) -> bool:
    """Every client stayed off the central path until the service was back (no flapping)."""
    return all(
        f.get("back_on_central_during_fault", 0) == 0
        and f.get("in_p2p_at_restore", row["clients"]) == row["clients"]
        for f in row["faults"]
    )


def _goals(out: dict[str, Any], params: FailoverParams, baseline: HybridTransportConfig) -> Any:
    rows = [row for per in out["scenarios"].values() for row in per.values()]
    goals: dict[str, Any] = {
        "no_message_lost": all(row["lost_messages"] == 0 for row in rows),
        "no_duplicate_to_app": all(row["duplicates_to_app"] == 0 for row in rows),
    }
    bounds = {}
    for name, per in out["scenarios"].items():
        row = per.get("threshold")
        if row is None:
            continue
        duration = params.link.check_timeout if name == "ip_block" else 2 * params.link.latency
        bound = detection_bound(baseline, duration)
        worst = max(
            (f["detection_s"]["max"] for f in row["faults"] if f["detection_s"] is not None),
            default=None,
        )
        undetected = sum(row["clients"] - f["detected"] for f in row["faults"])
        held = _held(row)
        bounds[name] = {
            "bound_s": round(bound, 3),
            "worst_s": worst,
            "undetected": undetected,
            "failover_held_until_restore": held,
            "met": worst is not None and worst <= bound and undetected == 0 and held,
        }
    goals["threshold_worst_detection_within_3x30s_plus_check"] = bounds
    phi = {}
    for name, per in out["scenarios"].items():
        row = per.get("phi-accrual")
        if row is None:
            continue
        p95s = [f["detection_s"]["p95"] for f in row["faults"] if f["detection_s"] is not None]
        undetected = sum(row["clients"] - f["detected"] for f in row["faults"])
        held = _held(row)
        phi[name] = {
            "p95_s": max(p95s) if p95s else None,
            "undetected": undetected,
            "failover_held_until_restore": held,
            "met": bool(p95s) and max(p95s) <= 10.0 and undetected == 0 and held,
        }
    goals["phi_detection_p95_le_10s"] = phi
    return goals


def _netlab_unavailable() -> str | None:
    from railgun_ref.netlab.lab import unavailable_reason  # noqa: PLC0415

    return unavailable_reason()


def _stderr_line(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def main(
    *,
    json_output: bool,
    seed: int | None,
    clients: int | None,
    scenarios: list[str] | None = None,
    output: str | None = None,
    driver: str = "sim",
) -> int:
    """`railgun-ref bench failover`; `scenarios` may hold comma-separated lists.
    `seed` and `clients` default per driver (sim: 1 and 12; localhost: no seed, 8)."""
    names = [name for item in scenarios or () for name in item.split(",") if name]
    try:
        if driver == "localhost":
            if seed is not None:
                raise ValueError(
                    "--seed applies to --driver sim only (localhost runs on real clocks "
                    "with fresh keys)"
                )
            local = LocalhostParams(clients=8 if clients is None else clients)
            chosen = [localhost_scenario(name) for name in names] or list(LOCALHOST_SCENARIOS)
        elif driver == "netlab":
            if seed is not None:
                raise ValueError("--seed applies to --driver sim only")
            reason = _netlab_unavailable()
            if reason is not None:
                raise ValueError(f"--driver netlab: {reason}")
            local = LocalhostParams(clients=6 if clients is None else clients)
            chosen = [netlab_scenario(name) for name in names]
        elif driver == "sim":
            params = FailoverParams(
                clients=12 if clients is None else clients, seed=1 if seed is None else seed
            )
            for name in names:
                if name not in SCENARIOS:
                    raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        else:
            raise ValueError(f"unknown driver {driver!r}; known: sim, localhost, netlab")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if driver == "localhost":
        result = run_localhost(local, scenarios=chosen, log=_stderr_line)
    elif driver == "netlab":
        result = run_netlab(local, scenarios=chosen or None, log=_stderr_line)
    else:
        chosen_sim = names or list(SCENARIOS)
        total = len(chosen_sim) * len(detector_configs())
        what = f"bench failover: {params.clients} clients"
        with ProgressReport(what, total=total, unit="scenario x detector runs") as report:
            result = run(params, scenarios=chosen_sim, on_run=lambda *_: report.advance())
    text = json.dumps(result, indent=2)
    if output is not None:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    if json_output:
        print(text)
    else:
        for name, per in result["scenarios"].items():
            for detector, row in per.items():
                fault = row["faults"][0]
                detection = fault["detection_s"] or {}
                failover = fault.get("failover_s") or {}
                extra = f" failover p95 {failover.get('p95')}" if failover else ""
                print(
                    f"{name:15} {detector:12} detection p50 {detection.get('p50')} "
                    f"max {detection.get('max')}{extra}  lost {row['lost_messages']} "
                    f"dup {row['duplicates_to_app']}"
                )
    return 0


# ------------------------------------------------------------------ driver localhost
#
# The same scenarios on real sockets: `railgun_ref.apps.demo.FailoverNetwork` runs a
# real ``railgun-ref central`` process behind a fault proxy and a DNS server on
# 127.0.0.0/8, and N `HybridTransport` clients with the fast profile (health check every
# 1 s), each in its own process, chatting in one room. Each scenario gets a fresh
# network, so its exactly-once count (`DeliverySummary`) is its own. Wall-clock time; a
# busy host shows up in `max_loop_lag_ms` (the worst of every process).

#: Sim scenario name -> the demo engine's name for the same fault (only these three exist
#: on localhost: a slow service, a flapping one and a P2P partition need more injectors).
LOCALHOST_SCENARIOS: Final = {"dns_block": "dns", "ip_block": "ip", "takedown": "takedown"}
#: The issue's target for the fast profile: every client on P2P within 3 s of the fault.
LOCALHOST_FAILOVER_GOAL_S: Final = 3.0
#: Why a scenario is expected to miss the failover goal (reported, not tuned away).
LOCALHOST_WHY: Final = {
    "ip_block": (
        "a blackholed address answers nothing: each check waits out its 0.5 s timeout and a "
        "failed one is re-checked at once (HT-2.4), so the third failure lands 1.5 s after "
        "the first check that meets the fault (up to 2.5 s after it) plus event-loop lag"
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalhostParams:
    clients: int = 8
    chat_interval: float = 0.5  #: seconds between messages, clients taking turns
    hold: float = 3.0  #: seconds of chat on each path before the fault and before the restore

    def __post_init__(self) -> None:
        if self.clients < 2:
            raise ValueError("need at least 2 clients")
        if self.chat_interval <= 0 or self.hold < 0:
            raise ValueError("chat_interval must be positive and hold not negative")


def localhost_scenario(name: str) -> str:
    """The sim name of a localhost scenario; the demo's names (dns, ip) are accepted too."""
    for sim_name, demo_name in LOCALHOST_SCENARIOS.items():
        if name in (sim_name, demo_name):
            return sim_name
    known = ", ".join(LOCALHOST_SCENARIOS)
    raise ValueError(f"unknown scenario {name!r} for --driver localhost; known: {known}")


def _localhost_row(
    name: str, network: FailoverNetwork, result: ScenarioResult, summary: DeliverySummary
) -> dict[str, Any]:
    """A sim-shaped row from one scenario's `ScenarioResult`, events and delivery summary."""
    clients = range(network.peers)
    fault, restore = result.fault_at, result.restored_at
    first_p2p: dict[int, float] = {}
    back_on_central = 0
    state_at_restore: dict[int, str] = {}
    for record in network.records:
        t, client, kind = record["t"], record["client"], record["kind"]
        if client is None or t < fault:
            continue
        if kind == "received" and record["path"] == "p2p" and t < restore:
            first_p2p.setdefault(client, t - fault)
        elif kind == "state" and t < restore:
            state_at_restore[client] = record["new"]
            back_on_central += record["new"] == ON_CENTRAL
    sent_total = summary.sent
    entry: dict[str, Any] = {
        "fault_at_s": round(fault, 3),
        "detected": len(result.detection),
        "detection_s": _percentiles(result.detection.values()),
        "failed_over": len(result.failover),
        "failover_s": _percentiles(result.failover.values()),
        "first_p2p_delivery_s": _percentiles(first_p2p.values()),
        "back_on_central_during_fault": back_on_central,
        "in_p2p_at_restore": sum(state_at_restore.get(i) in ON_P2P for i in clients),
        "restored_at_s": round(restore, 3),
        "failed_back": len(result.failback),
        "failback_s": _percentiles(result.failback.values()),
        "health_check_labels": dict(sorted(result.labels.items())),
        "sent_during_fault": result.sent_during_fault,
        "delivered_over_p2p": result.delivered_over_p2p,
    }
    return {
        "scenario": name,
        "detector": "fast-profile",
        "clients": network.peers,
        "messages_sent": sent_total,
        "faults": [entry],
        "lost_messages": summary.lost,
        "queued_messages": summary.queued,
        "duplicates_to_app": summary.duplicates,
        "unexpected_deliveries": summary.unexpected,
        "deliveries": {"expected": summary.expected, "delivered": summary.delivered},
        "deliveries_by_first_path": dict(sorted(summary.by_path.items())),
        "exactly_once": summary.ok,
        "chat_errors": dict(sorted(network.chat_errors.items())),
        "max_loop_lag_ms": round(network.max_lag * 1000, 1),
    }


async def _localhost_scenario(
    name: str,
    params: LocalhostParams,
    data_dir: pathlib.Path,
    log: Callable[[str], None] | None,
) -> Any:
    network = FailoverNetwork(
        peers=params.clients,
        data_dir=data_dir,
        chat_interval=params.chat_interval,
        hold=params.hold,
        log=log,
    )
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        await tg.start(network.run)
        result = await network.run_scenario(LOCALHOST_SCENARIOS[name])
        summary = await network.finish()
        tg.cancel_scope.cancel()
    row = _localhost_row(name, network, result, summary)
    row["wall_s"] = round(time.perf_counter() - started, 2)
    return row


def _localhost_header(params: LocalhostParams, config: HybridTransportConfig) -> dict[str, Any]:
    """The JSON of a localhost run before its scenarios: parameters, detector, definitions."""
    return {
        "benchmark": "failover",
        "driver": "localhost",
        "seed": None,
        "clients": params.clients,
        "parameters": {
            "chat_interval_s": params.chat_interval,
            "hold_s": params.hold,
            "central": (
                "a railgun-ref central process on 127.0.0.1 behind a fault proxy on "
                "127.0.0.2, named by a DNS server on 127.0.0.53"
            ),
            "faults": {
                "dns_block": "the DNS server answers NXDOMAIN for the service's name",
                "ip_block": "the proxy blackholes the address (accepts, never answers)",
                "takedown": "the central process is SIGKILLed, later restarted",
            },
            "new_network_per_scenario": True,
        },
        "detectors": {
            "fast-profile": {
                "detector": config.detector.value,
                "check_interval_s": config.aws_health_check_interval,
                "failure_threshold": config.aws_failure_threshold,
                "latency_threshold_s": config.aws_latency_threshold,
                "failback_successes": config.failback_successes,
                "failback_min_interval_s": config.failback_min_interval,
                "resend_interval_s": config.resend_interval,
            }
        },
        "definitions": {
            "detection_s": "fault -> the client's first failed health check",
            "failover_s": "fault -> the client's first P2P state (the sim's detection_s)",
            "first_p2p_delivery_s": "fault -> first message its application got over P2P",
            "failback_s": "service restored -> the client is connected-aws again",
            "fault_at_s": "seconds from the start of this scenario's network to the fault",
            "lost_messages": "(message, other member) pairs never handed over nor queued",
            "queued_messages": "pairs not handed over but still in an outbox or the mailbox",
            "duplicates_to_app": "messages handed to the same application more than once",
        },
        "environment": {
            **environment(),
            "time": "wall clock on 127.0.0.0/8; one process (event loop) per client",
        },
        "scenarios": {},
    }


def run_localhost(
    params: LocalhostParams | None = None,
    *,
    scenarios: Iterable[str] = tuple(LOCALHOST_SCENARIOS),
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Each scenario on a fresh localhost network (module section above); JSON-ready.
    `log` gets the engine's progress lines (phases, with seconds since that network started)."""
    params = params or LocalhostParams()
    chosen = [localhost_scenario(name) for name in scenarios]
    out = _localhost_header(params, fast_profile().transport)
    with tempfile.TemporaryDirectory(prefix="railgun-bench-failover-") as tmp:
        for name in chosen:
            data_dir = pathlib.Path(tmp) / name
            row = anyio.run(_localhost_scenario, name, params, data_dir, log)
            out["scenarios"][name] = {"fast-profile": row}
    out["environment"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out["goals"] = _localhost_goals(out)
    return out


def _edge_note(detector: dict[str, Any]) -> str:
    """Why a fast-failing fault can still miss the goal: it is the rule's own worst case."""
    threshold, interval = detector["failure_threshold"], detector["check_interval_s"]
    return (
        f"the first failed check comes up to {interval:g} s after the fault and the "
        f"{threshold}th one {threshold - 1} intervals later, so failover takes up to "
        f"{threshold * interval:g} s plus the checks' own durations and event-loop lag: "
        f"{LOCALHOST_FAILOVER_GOAL_S:g} s is the rule's worst case with no overhead"
    )


def _localhost_goals(out: dict[str, Any], *, why: dict[str, str] = LOCALHOST_WHY) -> dict[str, Any]:
    rows = [row for per in out["scenarios"].values() for row in per.values()]
    failover: dict[str, Any] = {}
    for name, per in out["scenarios"].items():
        row = per["fast-profile"]
        fault = row["faults"][0]
        p95 = fault["failover_s"]["p95"] if fault["failover_s"] is not None else None
        not_failed_over = row["clients"] - fault["failed_over"]
        entry: dict[str, Any] = {
            "p95_s": p95,
            "not_failed_over": not_failed_over,
            "failover_held_until_restore": fault["back_on_central_during_fault"] == 0
            and fault["in_p2p_at_restore"] == row["clients"],
            "met": p95 is not None and p95 <= LOCALHOST_FAILOVER_GOAL_S and not_failed_over == 0,
        }
        if name in why and not entry["met"]:
            entry["why"] = why[name]
        elif not entry["met"] and not_failed_over == 0:
            entry["why"] = _edge_note(out["detectors"]["fast-profile"])
        failover[name] = entry
    return {
        "no_message_lost": all(row["lost_messages"] == 0 for row in rows),
        "no_duplicate_to_app": all(row["duplicates_to_app"] == 0 for row in rows),
        "failover_p95_le_3s": failover,
    }


# ------------------------------------------------------------------ driver netlab
#
# The same engine inside a network lab (`railgun_ref.apps.demo_netlab`): one client per
# lab host behind a kernel NAT, the central process in the lab's central host, faults
# as nftables rules in the lab's internet router (and the takedown as a SIGKILL). A
# fresh lab per scenario. Needs root (`railgun_ref.netlab.lab.unavailable_reason`).

#: Why a lab scenario is expected to miss the failover goal (none expected).
NETLAB_WHY: Final[dict[str, str]] = {}


def netlab_scenario(name: str) -> str:
    from railgun_ref.apps.demo_netlab import LAB_SCENARIOS  # noqa: PLC0415

    if name in LAB_SCENARIOS:
        return name
    raise ValueError(
        f"unknown scenario {name!r} for --driver netlab; known: {', '.join(LAB_SCENARIOS)}"
    )


async def _netlab_scenario(
    name: str,
    params: LocalhostParams,
    data_dir: pathlib.Path,
    log: Callable[[str], None] | None,
) -> dict[str, Any]:
    from railgun_ref.apps.demo_netlab import LabFailoverNetwork, scenario_lab  # noqa: PLC0415

    started = time.perf_counter()
    with scenario_lab(params.clients) as lab:
        network = LabFailoverNetwork(
            lab, data_dir=data_dir, chat_interval=params.chat_interval, hold=params.hold, log=log
        )
        async with anyio.create_task_group() as tg:
            await tg.start(network.run)
            result = await network.run_scenario(name)
            summary = await network.finish()
            tg.cancel_scope.cancel()
    row = _localhost_row(name, network, result, summary)
    row["wall_s"] = round(time.perf_counter() - started, 2)
    return row


def _netlab_header(params: LocalhostParams, config: HybridTransportConfig) -> dict[str, Any]:
    from railgun_ref.apps.demo_netlab import (  # noqa: PLC0415
        LAB_SCENARIOS,
        lab_hosts_note,
        lab_topology,
        partition_groups,
    )

    out = _localhost_header(params, config)
    out["driver"] = "netlab"
    group_a, group_b, bridges = partition_groups(params.clients, 2)
    out["parameters"].update(
        {
            "central": (
                "a railgun-ref central process in the lab's central host (198.18.0.2), "
                "named by the project's DNS server as the lab resolver (198.19.0.53)"
            ),
            "clients_behind": lab_hosts_note(lab_topology(params.clients)),
            "faults": dict(LAB_SCENARIOS),
            "partition": {"a": group_a, "b": group_b, "bridges": bridges},
        }
    )
    out["environment"]["time"] = (
        "wall clock; Linux network namespaces, kernel NATs and nftables censor; "
        "one process (event loop) per client"
    )
    return out


def run_netlab(
    params: LocalhostParams | None = None,
    *,
    scenarios: Iterable[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Each scenario in a fresh network lab (module section above); JSON-ready."""
    from railgun_ref.apps.demo_netlab import LAB_SCENARIOS  # noqa: PLC0415

    params = params or LocalhostParams()
    chosen = [netlab_scenario(name) for name in scenarios or LAB_SCENARIOS]
    out = _netlab_header(params, fast_profile().transport)
    with tempfile.TemporaryDirectory(prefix="railgun-bench-netlab-") as tmp:
        for name in chosen:
            data_dir = pathlib.Path(tmp) / name
            row = anyio.run(_netlab_scenario, name, params, data_dir, log)
            out["scenarios"][name] = {"fast-profile": row}
    out["environment"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out["goals"] = _localhost_goals(out, why=NETLAB_WHY)
    return out
