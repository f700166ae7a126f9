"""`railgun-ref bench failover`: the four takedown scenarios, measured, per failure detector.

Driver ``sim`` (the only one here): `railgun_ref.drivers.sim_transport` runs
N clients -- each the real `HybridTransportService` plus the real
`P2PRoomCore` over a simulated `Node` -- in one room, a simulated central
service with a fault timeline, and chat traffic (every client sends a
message every `send_interval` seconds, +-50 %). Each scenario runs twice
from the same seed, once per detector configuration:

* ``threshold``: the seed's `HybridTransportConfig` defaults (30 s checks,
  3 failures, 2 s latency rule);
* ``phi-accrual``: the same with ``detector=phi-accrual`` (1 s heartbeats,
  phi 8, 2 s acceptable pause; HT-2.3).

Scenarios (times from the start of the run; `fault_at` = 150 s):

1. ``dns_block``    -- the name stops resolving (NXDOMAIN) for `outage` s.
2. ``ip_block``     -- the address is blackholed: checks time out.
3. ``takedown``     -- the service is gone: connection refused.
   ``high_latency`` -- every round trip to the service takes 1.5 s longer, so
   a health check takes about 3.2 s (the seed's 2 s latency rule), for `outage` s.
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
"""

import json
import os
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from railgun_ref.drivers.sim import Simulator
from railgun_ref.drivers.sim_transport import (
    P2P_STATES,
    CentralFault,
    CentralLink,
    FaultWindow,
    SimCentral,
    SimTransportNetwork,
    Traffic,
)
from railgun_ref.transport.outbox import Path
from railgun_ref.transport.service import DetectorKind, HybridTransportConfig
from railgun_ref.transport.state import TransportState

#: Seconds from the start of a run to the first fault (all clients settled by then).
FAULT_AT: Final = 150.0
#: Extra latency per round trip in the high-latency scenario. A health check is two round
#: trips (TCP handshake, HTTP exchange), so it takes about 3.2 s: above the seed's 2 s rule,
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
    seed_default = HybridTransportConfig()
    return {
        "threshold": seed_default,
        "phi-accrual": replace(seed_default, detector=DetectorKind.PHI_ACCRUAL),
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


def _measure(network: SimTransportNetwork, timeline: _Timeline, t0: float) -> dict[str, Any]:
    clients = range(len(network.clients))
    states: dict[int, list[tuple[float, TransportState]]] = {i: [] for i in clients}
    for record in network.states:
        states[record.client].append((record.at, record.new))
    p2p_deliveries: dict[int, list[float]] = {i: [] for i in clients}
    delivered_at: dict[tuple[int, bytes], float] = {}
    for d in network.deliveries:
        delivered_at[(d.client, d.message_id)] = d.at
        if d.path is Path.P2P:
            p2p_deliveries[d.client].append(d.at)

    row: dict[str, Any] = {"clients": len(network.clients)}
    first_fault = timeline.faults[0]
    row["false_failovers_before_fault"] = sum(
        1 for i in clients for at, new in states[i] if new in P2P_STATES and at < first_fault
    )
    per_fault = []
    for k, fault in enumerate(timeline.faults):
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
        per_fault.append(entry)
    row["faults"] = per_fault

    # Exactly once: every other member got every message, and no application got one twice.
    missing = 0
    lost_messages = 0
    delays: list[float] = []
    outage_delays: list[float] = []
    all_members: list[float] = []
    first_restore = timeline.restores[0] if timeline.restores else None
    # Steady P2P phase: from when the last client detected the first fault to the restore.
    first_detections = per_fault[0]["detection_s"]
    steady_from = first_fault + first_detections["max"] if first_detections is not None else None
    in_p2p: list[float] = []
    for message_id, sent in sorted(network.sent.items(), key=lambda kv: (kv[1].at, kv[0])):
        latest = sent.at
        complete = True
        for member in clients:
            if member == sent.sender:
                continue
            at = delivered_at.get((member, message_id))
            if at is None:
                missing += 1
                complete = False
                continue
            delays.append(at - sent.at)
            latest = max(latest, at)
            in_outage = sent.at >= first_fault and (
                first_restore is None or sent.at < first_restore
            )
            if in_outage:
                outage_delays.append(at - sent.at)
        if not complete:
            lost_messages += 1
            continue
        if sent.at >= first_fault:
            all_members.append(latest - sent.at)
        steady = steady_from is not None and sent.at >= steady_from
        if steady and (first_restore is None or sent.at < first_restore):
            in_p2p.append(latest - sent.at)
    row["lost_messages"] = lost_messages
    row["missing_deliveries"] = missing
    row["duplicates_to_app"] = len(network.duplicates_to_app)
    service_counters: Counter[str] = Counter()
    core_counters: Counter[str] = Counter()
    for client in network.clients:
        service_counters.update(client.service.counters)
        core_counters.update(client.core.counters)
    row["duplicates_suppressed"] = {
        path.value: service_counters[f"received.duplicate.{path.value}"] for path in Path
    }
    row["delivery_delay_s"] = _percentiles(delays)
    row["delivery_delay_during_outage_s"] = _percentiles(outage_delays)
    row["all_members_after_fault_s"] = _percentiles(all_members)
    row["all_members_in_p2p_s"] = _percentiles(in_p2p)
    row["failure_labels"] = dict(sorted(network.failures.items()))
    row["p2p_counters"] = {
        key: core_counters[key]
        for key in sorted(core_counters)
        if key.startswith(("relay.", "send.", "ack.", "room.", "rejected."))
    }
    row["central_counters"] = dict(sorted(network.central.counters.items()))
    row["harness_counters"] = {
        key: value
        for key, value in sorted(network.counters.items())
        if key.startswith(("timer.", "p2p.stalled"))
    }
    return row


def detection_bound(config: HybridTransportConfig, check_duration: float) -> float:
    """HT-2.2: the seed rule's worst case: `threshold` check intervals plus the last check."""
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
    params: FailoverParams | None = None, *, scenarios: Iterable[str] = SCENARIOS
) -> dict[str, Any]:
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
        out["scenarios"][name] = {
            detector: run_scenario(name, detector, params, config)
            for detector, config in configs.items()
        }
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


def _goals(out: dict[str, Any], params: FailoverParams, seed: HybridTransportConfig) -> Any:
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
        bound = detection_bound(seed, duration)
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


def main(
    *,
    json_output: bool,
    seed: int,
    clients: int,
    scenarios: list[str] | None = None,
    output: str | None = None,
) -> int:
    try:
        params = FailoverParams(clients=clients, seed=seed)
        for name in scenarios or ():
            if name not in SCENARIOS:
                raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    except ValueError as exc:
        sys.stderr.write(f"railgun-ref bench failover: {exc}\n")
        return 2
    result = run(params, scenarios=scenarios or SCENARIOS)
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
                print(
                    f"{name:15} {detector:12} detection p50 {detection.get('p50')} "
                    f"max {detection.get('max')}  lost {row['lost_messages']} "
                    f"dup {row['duplicates_to_app']}"
                )
    return 0
