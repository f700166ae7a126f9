"""The hybrid transport in the simulator: real cores, simulated central service and network.

Clients are `HybridTransportService` + `P2PRoomCore` over simulated `Node`s
(`railgun_ref.drivers.sim_transport`). Each test runs a short scenario in
virtual time and checks what a user would see: failover within the baseline
rule's window (HT-2.2), every message delivered exactly once, bridges carrying messages
across a partition, failback after the service returns, determinism.
"""

import random

import pytest

from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.sim import SIM_EPOCH, Simulator
from railgun_ref.drivers.sim_transport import (
    P2P_STATES,
    CentralFault,
    FaultWindow,
    SimCentral,
    SimTransportNetwork,
    Traffic,
)
from railgun_ref.transport.health import FailureLabel, HealthResult
from railgun_ref.transport.outbox import Path
from railgun_ref.transport.p2p import P2PCounter
from railgun_ref.transport.service import (
    DetectorKind,
    HybridTransportConfig,
    HybridTransportService,
)
from railgun_ref.transport.state import Reach, TransportState

pytestmark = pytest.mark.timeout(120)

SEED_CONFIG = HybridTransportConfig()
PHI_CONFIG = HybridTransportConfig(detector=DetectorKind.PHI_ACCRUAL)


def build(
    *,
    clients: int,
    config: HybridTransportConfig,
    windows: tuple[FaultWindow, ...],
    seed: int = 7,
    traffic_for: float = 400.0,
) -> tuple[Simulator, SimTransportNetwork, Traffic]:
    sim = Simulator(seed=seed, keep_trace=False)
    central = SimCentral(rng=random.Random(seed + 1), windows=windows)
    network = SimTransportNetwork(
        sim, central, clients=clients, config=config, rng=random.Random(seed + 2)
    )
    traffic = Traffic(network, interval=5.0, until=sim.now + traffic_for)
    return sim, network, traffic


def check_exactly_once(network: SimTransportNetwork) -> None:
    """HT-4.2, HT-4.3: every other member got every message, no application got one twice."""
    delivered = {(d.client, d.message_id) for d in network.deliveries}
    missing = [
        (member, message_id)
        for message_id, sent in network.sent.items()
        for member in range(len(network.clients))
        if member != sent.sender and (member, message_id) not in delivered
    ]
    assert missing == []
    assert network.duplicates_to_app == []
    assert len(network.deliveries) == len(network.sent) * (len(network.clients) - 1)


def first_p2p_state(network: SimTransportNetwork, client: int, after: float) -> float | None:
    times = [
        r.at for r in network.states if r.client == client and r.new in P2P_STATES and r.at >= after
    ]
    return min(times) if times else None


@pytest.mark.parametrize(
    ("fault", "label"),
    [
        (CentralFault.DNS_BLOCK, FailureLabel.DNS_NXDOMAIN),
        (CentralFault.IP_BLOCK, FailureLabel.GENERIC_TIMEOUT),
        (CentralFault.TAKEDOWN, FailureLabel.CONNECTION_REFUSED),
    ],
)
def test_seed_detector_fails_over_within_the_window_and_back(
    fault: CentralFault, label: FailureLabel
) -> None:
    """HT-2.2, HT-3.2, HT-3.3, HT-4.2, HT-4.3: with the default configuration every client fails
    over within 3 x 30 s (+ the last check), chat continues over P2P with nothing lost or
    duplicated, and every client fails back after the service returns."""
    start = SIM_EPOCH
    fault_at, restore = start + 100.0, start + 250.0
    window = FaultWindow(fault=fault, start=fault_at, end=restore)
    sim, network, traffic = build(clients=5, config=SEED_CONFIG, windows=(window,))
    sim.run(until=start + 520.0)
    assert traffic.sent > 0
    check_duration = network.central.link.check_timeout if fault is CentralFault.IP_BLOCK else 1
    for client in range(5):
        detected = first_p2p_state(network, client, fault_at)
        assert detected is not None
        assert 2 * 30.0 <= detected - fault_at <= 3 * 30.0 + check_duration
        back = [
            r.at
            for r in network.states
            if r.client == client and r.new is TransportState.CONNECTED_AWS and r.at >= restore
        ]
        assert back, f"client {client} never failed back"
    assert set(network.failures) == {label}
    assert any(d.path is Path.P2P for d in network.deliveries)
    check_exactly_once(network)


def test_phi_detector_fails_over_in_seconds() -> None:
    """HT-2.3: the adaptive detector (1 s heartbeats) detects a takedown within 10 s."""
    fault_at = SIM_EPOCH + 60.0
    window = FaultWindow(fault=CentralFault.TAKEDOWN, start=fault_at, end=fault_at + 60)
    sim, network, _ = build(clients=4, config=PHI_CONFIG, windows=(window,), traffic_for=160)
    sim.run(until=sim.now + 220.0)
    for client in range(4):
        detected = first_p2p_state(network, client, fault_at)
        assert detected is not None and detected - fault_at <= 10.0
    check_exactly_once(network)


def test_partition_is_bridged() -> None:
    """HT-6.5: the service is gone and the peers are split into two groups sharing one bridge;
    every message still reaches every member, through the bridge."""
    fault_at = SIM_EPOCH + 100.0
    window = FaultWindow(fault=CentralFault.TAKEDOWN, start=fault_at)
    sim, network, traffic = build(
        clients=5, config=PHI_CONFIG, windows=(window,), traffic_for=250.0
    )
    addresses = [c.address for c in network.clients]
    groups = [
        [addresses[0], addresses[1], addresses[2]],
        [addresses[0], addresses[3], addresses[4]],
    ]
    sim.at(fault_at, lambda s: s.network.split(groups))
    sim.run(until=sim.now + 400.0)
    states = {network.state_of(i) for i in range(5)}
    assert states <= P2P_STATES
    assert TransportState.DEGRADED in states  # the non-bridges reach only part of the room
    relayed = sum(c.core.counters.get_count(P2PCounter.RELAY_STARTED) for c in network.clients)
    assert relayed > 0
    assert traffic.sent > 0
    check_exactly_once(network)


def test_same_seed_same_run() -> None:
    """Determinism: the same seed gives the same states and deliveries, event for event."""

    def once() -> tuple[list[tuple[int, float, str]], list[tuple[int, bytes, float, str]]]:
        fault_at = SIM_EPOCH + 80.0
        window = FaultWindow(fault=CentralFault.DNS_BLOCK, start=fault_at, end=fault_at + 100)
        sim, network, _ = build(clients=4, config=SEED_CONFIG, windows=(window,), seed=3)
        sim.run(until=sim.now + 300.0)
        states = [(r.client, r.at, r.new.value) for r in network.states]
        deliveries = [(d.client, d.message_id, d.at, d.path.value) for d in network.deliveries]
        return states, deliveries

    assert once() == once()


def test_central_model_labels_and_latency() -> None:
    """The simulated service's health answers follow its fault timeline."""
    central = SimCentral(
        rng=random.Random(1),
        windows=(
            FaultWindow(fault=CentralFault.HIGH_LATENCY, start=10, end=20, extra_latency=1.5),
            FaultWindow(fault=CentralFault.IP_BLOCK, start=20, end=30),
        ),
    )
    healthy = central.check(0.0)
    assert healthy.ok and healthy.latency is not None and healthy.latency < 0.5
    slow = central.check(12.0)
    assert slow.ok and slow.latency is not None and slow.latency > 2.0
    blocked = central.check(25.0)
    assert (blocked.ok, blocked.label) == (False, FailureLabel.GENERIC_TIMEOUT)
    assert blocked.at == 25.0 + central.link.check_timeout
    assert central.reachable(12.0) and not central.reachable(25.0) and central.reachable(30.0)


def test_phi_deadline_makes_progress() -> None:
    """HT-2.3, HT-3.2: sans-IO timer contract with phi-accrual: after `on_timer(now=d)` with
    `d = next_deadline()`, the service has either acted (it failed over) or asks for a later
    deadline, because `suspects()` and `suspicion_time()` are one formula."""
    service = HybridTransportService(PHI_CONFIG, local_id=NodeId(bytes(32)), now=0.0)
    service.reachability(reach=Reach.ALL, anything_reachable=True, now=0.0)
    for i in range(10):
        t = i * 1.0 + 0.05
        service.health_result(HealthResult(at=t, ok=True, latency=0.05), now=t)
    deadline = service.next_deadline()
    assert deadline is not None
    # Run the timers up to the moment phi is due to cross the threshold.
    while deadline < 20.0 and service.state is TransportState.CONNECTED_AWS:
        service.on_timer(now=deadline)
        while service.next_action() is not None:
            pass
        following = service.next_deadline()
        assert following is not None
        assert service.state is not TransportState.CONNECTED_AWS or following > deadline
        deadline = following
    assert service.state is TransportState.CONNECTED_P2P


def test_phi_detects_a_second_takedown_as_fast_as_the_first() -> None:
    """HT-2.3: a service that flaps (down, back, down again soon after the failback) is
    detected the second time within 10 s as well: the heartbeat that ends a suspected
    silence restarts the detector's window, so the outage is not an interval in it."""
    t0 = SIM_EPOCH
    first = FaultWindow(fault=CentralFault.TAKEDOWN, start=t0 + 60, end=t0 + 180)
    second = FaultWindow(fault=CentralFault.TAKEDOWN, start=t0 + 220, end=t0 + 400)
    sim, network, _ = build(clients=3, config=PHI_CONFIG, windows=(first, second), traffic_for=0)
    sim.run(until=t0 + 420.0)
    for client in range(3):
        back = [
            r.at
            for r in network.states
            if r.client == client and r.new is TransportState.CONNECTED_AWS and r.at > t0 + 180
        ]
        assert back and min(back) < t0 + 220  # it had failed back before the second takedown
        detected = first_p2p_state(network, client, t0 + 220)
        assert detected is not None and detected - (t0 + 220) <= 10.0


def test_failback_hysteresis_after_a_silent_failover() -> None:
    """HT-3.3: after a failover on silence alone (no failed check), one healthy check is not
    enough to return to the central path: the detector's suspicion restarted the count, and
    it takes `failbackSuccesses` (3) of them spanning `failbackMinInterval` (10 s)."""
    service = HybridTransportService(PHI_CONFIG, local_id=NodeId(bytes(32)), now=1000.0)
    service.reachability(reach=Reach.ALL, anything_reachable=True, now=1000.0)
    t = 1000.0
    for _ in range(30):
        t += 1.0
        service.health_result(HealthResult(at=t, ok=True, latency=0.05), now=t)
    states = [service.state]
    service.on_timer(now=t + 10.0)  # ten seconds of silence: phi suspects
    states.append(service.state)
    late = t + 10.5
    service.health_result(HealthResult(at=late, ok=True, latency=0.05), now=late)
    states.append(service.state)
    assert states[:2] == [TransportState.CONNECTED_AWS, TransportState.CONNECTED_P2P]
    assert states[2] is TransportState.CONNECTED_P2P  # one heartbeat is not a failback
    # Heartbeats resume every second: the failback comes once the new streak spans 10 s.
    t, back_at = late, None
    while back_at is None and t < late + 30.0:
        t += 1.0
        service.health_result(HealthResult(at=t, ok=True, latency=0.05), now=t)
        if service.state is TransportState.CONNECTED_AWS:
            back_at = t
    assert back_at is not None
    assert back_at - late >= PHI_CONFIG.failback_min_interval
