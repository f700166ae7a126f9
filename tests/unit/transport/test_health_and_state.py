"""Failure detectors and the transport state table (HT-1.x, HT-2.x)."""

import pathlib
import random

import pytest

from railgun_ref.bench.detectors import LinkModel, run
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.transport.health import (
    CheckTimeout,
    FailureDetector,
    FailureLabel,
    HealthResult,
    PhiAccrualDetector,
    ThresholdDetector,
)
from railgun_ref.transport.state import (
    PHASE_INPUTS,
    STATE_TABLE,
    TRANSITIONS,
    Central,
    CentralPhase,
    CentralTrigger,
    Reach,
    TransportMode,
    TransportState,
    TransportStateMachine,
    state_diagram,
)

SPEC = (pathlib.Path(__file__).parents[3] / "paper" / "spec.md").read_text(encoding="utf-8")
HT = SPEC[SPEC.index("## 12. Hybrid transport (HT)") : SPEC.index("## 13.")]


def ok(at: float, latency: float = 0.05) -> HealthResult:
    return HealthResult(at=at, ok=True, latency=latency)


def failed(at: float, label: FailureLabel = FailureLabel.GENERIC_TIMEOUT) -> HealthResult:
    return HealthResult(at=at, ok=False, label=label)


def test_health_result_requires_consistent_label() -> None:
    """HT-2.1: a failure has a label, a success has none."""
    with pytest.raises(ValueError):
        HealthResult(at=0, ok=True, label=FailureLabel.DNS_NXDOMAIN)
    with pytest.raises(ValueError):
        HealthResult(at=0, ok=False)


def test_check_timeout_follows_answered_checks_within_floor_and_ceiling() -> None:
    """HT-2.5: the floor until the first answer; SRTT + 4 RTTVAR (RFC 6298) after, capped
    at the ceiling; back to the floor once answers are fast again."""
    timeout = CheckTimeout(floor=0.5, ceiling=2.0)
    assert timeout.timeout == 0.5
    timeout.observe(0.2)  # fast: 0.2 + 4 x 0.1 = 0.6
    assert timeout.timeout == pytest.approx(0.6)
    for _ in range(3):
        timeout.observe(1.5)
    assert timeout.timeout == 2.0  # slow and jittery: capped
    for _ in range(40):
        timeout.observe(1.5)
    assert 1.5 < timeout.timeout < 2.0  # steady 1.5 s: a little above it
    for _ in range(60):
        timeout.observe(0.01)
    assert timeout.timeout == 0.5
    with pytest.raises(ValueError):
        CheckTimeout(floor=2.0, ceiling=1.0)
    with pytest.raises(ValueError):
        timeout.observe(-1.0)


def test_threshold_detector_needs_consecutive_failures() -> None:
    """HT-2.2: three failures in a row, a success resets, slow counts as failed."""
    detector = ThresholdDetector(failure_threshold=3, latency_threshold=2.0)
    for t, result in enumerate([failed(0), failed(30), ok(60), failed(90), failed(120)]):
        detector.observe(result)
        assert not detector.suspects(now=float(t))
    detector.observe(ok(150, latency=2.5))  # slower than 2 s: HIGH_LATENCY
    assert detector.classify(ok(150, latency=2.5)).label is FailureLabel.HIGH_LATENCY
    assert detector.suspects(now=150)


def test_phi_rises_with_silence_and_heartbeats_clear_it() -> None:
    """HT-2.3: phi grows monotonically in the silence; the suspicion time is exact."""
    detector = PhiAccrualDetector(threshold=8.0)
    rng = random.Random(1)
    t = 0.0
    for _ in range(50):
        t += 1.0 + rng.uniform(-0.1, 0.1)
        detector.observe(ok(t))
    assert not detector.suspects(now=t + 1.0)
    phis = [detector.phi(now=t + dt) for dt in (0.5, 1.0, 1.5, 2.0, 3.0)]
    assert phis == sorted(phis)
    when = detector.suspicion_time()
    assert when is not None
    assert not detector.suspects(now=when - 1e-3)
    assert detector.suspects(now=when + 1e-3)
    detector.observe(ok(when + 0.5))
    assert not detector.suspects(now=when + 0.6)


def test_phi_suspects_exactly_from_the_suspicion_time() -> None:
    """HT-2.3: `suspects` and `suspicion_time` are one formula: at the suspicion time
    itself the detector suspects (phi has reached the threshold), an instant before not."""
    detector = PhiAccrualDetector(threshold=8.0, acceptable_pause=2.0)
    for i in range(10):
        detector.observe(ok(i * 1.0 + 0.05))
    when = detector.suspicion_time()
    assert when is not None
    assert detector.suspects(now=when)
    assert not detector.suspects(now=when - 1e-9)
    assert detector.phi(now=when) == pytest.approx(8.0, abs=1e-6)


def test_phi_restarts_its_window_after_a_suspected_silence() -> None:
    """HT-2.3: the heartbeat that ends a suspected silence does not put the outage in the
    window: the suspicion time after it is what a fresh detector would compute, and a
    second silence is suspected as soon as the first one was."""
    detector = PhiAccrualDetector(threshold=8.0, acceptable_pause=2.0)
    t = 0.0
    for _ in range(100):
        t += 1.0
        detector.observe(ok(t))
    first = detector.suspicion_time()
    assert first is not None
    first_delay = first - t
    t += 120.0  # an outage: two minutes without a heartbeat
    assert detector.suspects(now=t)
    detector.observe(ok(t))
    assert not detector.suspects(now=t)
    fresh = PhiAccrualDetector(threshold=8.0, acceptable_pause=2.0)
    fresh.observe(ok(t))
    assert detector.suspicion_time() == fresh.suspicion_time()
    for _ in range(20):
        t += 1.0
        detector.observe(ok(t))
    again = detector.suspicion_time()
    assert again is not None
    assert again - t == pytest.approx(first_delay, abs=0.01)


def test_phi_ignores_failed_checks() -> None:
    detector = PhiAccrualDetector()
    detector.observe(ok(0.0))
    detector.observe(failed(1.0))
    only_heartbeat = PhiAccrualDetector()
    only_heartbeat.observe(ok(0.0))
    assert detector.suspicion_time() == only_heartbeat.suspicion_time()
    assert detector.phi(now=1.0) < detector.phi(now=5.0)


def test_state_table_is_complete_and_follows_the_rules() -> None:
    """HT-1.3/HT-1.4: every combination has a state; offline is never a failover."""
    assert len(STATE_TABLE) == len(TransportMode) * len(Central) * len(Reach) * 2 * 2
    for (mode, central, reach, offline, _redundancy), state in STATE_TABLE.items():
        if offline:
            assert state is TransportState.DISCONNECTED
        elif mode is TransportMode.P2P_ONLY:
            assert state not in (TransportState.CONNECTED_AWS, TransportState.CONNECTED_HYBRID)
        elif central is Central.UP:
            assert state in (TransportState.CONNECTED_AWS, TransportState.CONNECTED_HYBRID)
        elif central is Central.DOWN and reach is Reach.ALL:
            assert state is TransportState.CONNECTED_P2P


def test_failover_and_failback_through_the_machine() -> None:
    """HT-1.3: central up -> down with peers -> p2p; back up -> central again."""
    machine = TransportStateMachine(TransportMode.AWS)
    assert machine.update(central=Central.UP) == (
        TransportState.CONNECTING,
        TransportState.CONNECTED_AWS,
    )
    assert machine.update(reach=Reach.ALL) is None  # no redundancy: still central
    assert machine.update(central=Central.DOWN) == (
        TransportState.CONNECTED_AWS,
        TransportState.CONNECTED_P2P,
    )
    assert machine.uses_p2p and not machine.uses_central
    machine.update(reach=Reach.SOME)
    assert machine.state is TransportState.DEGRADED
    assert machine.update(central=Central.UP) == (
        TransportState.DEGRADED,
        TransportState.CONNECTED_AWS,
    )
    assert machine.update(offline=True) == (
        TransportState.CONNECTED_AWS,
        TransportState.DISCONNECTED,
    )
    machine.stop()
    with pytest.raises(LocalProtocolError):
        machine.update(central=Central.UP)


def test_hybrid_mode_uses_both_paths() -> None:
    machine = TransportStateMachine(TransportMode.HYBRID)
    machine.update(central=Central.UP, reach=Reach.ALL)
    assert machine.state is TransportState.CONNECTED_HYBRID
    assert machine.uses_central and machine.uses_p2p


def test_detector_comparison_on_the_same_traces() -> None:
    """HT-2.2/2.3: the baseline rule detects a takedown within its 3 x 30 s window; phi in
    seconds; on a lossless link neither raises a false failover."""
    quiet = LinkModel(loss=0.0, jitter=0.01)
    result = run(seed=3, trials=20, client_hours=5.0, link=quiet)
    threshold = result["threshold_30s_x3"]
    phi = result["phi_1s_8"]
    assert threshold["detected"] == phi["detected"] == 20
    assert 60.0 <= threshold["detection_s"]["median"] <= threshold["detection_s"]["max"] <= 90.5
    assert phi["detection_s"]["max"] < 10.0
    assert threshold["false_failovers"] == phi["false_failovers"] == 0


def test_both_detectors_are_failure_detectors() -> None:
    """HT-2.2/2.3: the service sees either only through the `FailureDetector` protocol."""
    detectors: list[FailureDetector] = [ThresholdDetector(), PhiAccrualDetector()]
    slow = ok(0.0, latency=5.0)
    threshold, phi = detectors
    assert threshold.classify(slow).label is FailureLabel.HIGH_LATENCY  # HT-2.2
    assert phi.classify(slow) == slow  # phi-accrual judges lateness, not latency
    assert threshold.suspicion_time() is None  # silence alone never moves the baseline rule
    phi.observe(slow)
    assert phi.suspicion_time() is not None


def test_failback_table_is_total_and_matches_its_inputs() -> None:
    """HT-3.3: every (phase, verdict) has a target; suspicion never trusts the central path;
    failing back needs `failback-ready` once failed over."""
    assert set(TRANSITIONS) == set(CentralPhase) == set(PHASE_INPUTS)
    failed_over = {CentralPhase.FAILED_OVER, CentralPhase.FAILED_OVER_OFFLINE}
    for phase, row in TRANSITIONS.items():
        assert set(row) == set(CentralTrigger)
        assert row[CentralTrigger.FAILBACK_READY] is CentralPhase.TRUSTED
        assert row[CentralTrigger.SUSPECTED] is CentralPhase.FAILED_OVER
        assert PHASE_INPUTS[row[CentralTrigger.SUSPECTED_OFFLINE]] == (Central.DOWN, True)
        healthy = row[CentralTrigger.HEALTHY]
        assert healthy is (phase if phase in failed_over else CentralPhase.TRUSTED)


def test_judging_the_central_path_moves_the_state() -> None:
    """HT-1.4/HT-3.3: offline is not a failover; once failed over, only failback-ready returns."""
    machine = TransportStateMachine(TransportMode.AWS)
    machine.update(reach=Reach.ALL)
    assert machine.judge_central(CentralTrigger.HEALTHY) == (
        TransportState.CONNECTING,
        TransportState.CONNECTED_AWS,
    )
    assert machine.judge_central(CentralTrigger.SUSPECTED_OFFLINE) == (
        TransportState.CONNECTED_AWS,
        TransportState.DISCONNECTED,
    )
    assert not machine.failed_over
    assert machine.judge_central(CentralTrigger.HEALTHY) is not None  # back, no hysteresis
    assert machine.judge_central(CentralTrigger.SUSPECTED) == (
        TransportState.CONNECTED_AWS,
        TransportState.CONNECTED_P2P,
    )
    assert machine.failed_over
    assert machine.judge_central(CentralTrigger.HEALTHY) is None  # hysteresis
    assert machine.state is TransportState.CONNECTED_P2P
    assert machine.judge_central(CentralTrigger.FAILBACK_READY) == (
        TransportState.CONNECTED_P2P,
        TransportState.CONNECTED_AWS,
    )
    assert machine.phase is CentralPhase.TRUSTED


def test_spec_failback_diagram_is_generated_from_the_table() -> None:
    """HT-3.3: paper/spec.md embeds `state_diagram()` verbatim."""
    assert f"```mermaid\n{state_diagram()}\n```" in HT
