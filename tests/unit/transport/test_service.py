"""HybridTransportService: failover, offline, failback hysteresis, exactly-once (HT-3, HT-4)."""

import dataclasses
import pathlib
import typing

from railgun_ref.client import fast_profile, seed_profile
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.outbox_store import SqliteOutboxStore
from railgun_ref.transport.health import FailureLabel, HealthResult
from railgun_ref.transport.outbox import Path
from railgun_ref.transport.service import (
    CentralFailure,
    CheckHealth,
    Deliver,
    DetectorKind,
    HybridTransportConfig,
    HybridTransportService,
    PersistOutbox,
    SendCentral,
    SendP2P,
    StateChanged,
    TransportOverrides,
)
from railgun_ref.transport.state import Reach, TransportMode, TransportState

ME, BOB, CAROL = NodeId(b"\x01" * 32), NodeId(b"\x02" * 32), NodeId(b"\x03" * 32)
T0 = 1_800_000_000.0


def drain(service: HybridTransportService) -> list[object]:
    out = []
    while (action := service.next_action()) is not None:
        out.append(action)
    return out


def ok(at: float) -> HealthResult:
    return HealthResult(at=at, ok=True, latency=0.05)


def refused(at: float) -> HealthResult:
    return HealthResult(at=at, ok=False, label=FailureLabel.CONNECTION_REFUSED)


def started(config: HybridTransportConfig | None = None) -> HybridTransportService:
    service = HybridTransportService(config or HybridTransportConfig(), local_id=ME, now=T0)
    service.on_timer(now=T0)
    assert any(isinstance(a, CheckHealth) for a in drain(service))
    service.health_result(ok(T0), now=T0)
    service.reachability(reach=Reach.ALL, anything_reachable=True, now=T0)
    drain(service)
    assert service.state in (TransportState.CONNECTED_AWS, TransportState.CONNECTED_HYBRID)
    return service


def test_default_configuration_and_from_json() -> None:
    """HT-5.1: every field of the design's config, its default, and the millisecond JSON form."""
    default = HybridTransportConfig()
    from_json = HybridTransportConfig.from_json(
        {
            "preferredMode": "aws",
            "awsHealthCheckInterval": 30000,
            "awsLatencyThreshold": 2000,
            "awsFailureThreshold": 3,
            "enableHybridRedundancy": False,
            "storeAndForward": {"enabled": True, "defaultTTL": 604800000, "redundancyFactor": 3},
            "capacitySharing": {"enabled": True, "maxUploadShare": 0.5, "maxRelayConnections": 20},
        }
    )
    assert from_json == default
    assert default.aws_health_check_interval == 30.0
    assert default.store_and_forward.default_ttl == 7 * 24 * 3600


def test_overrides_name_every_config_field_with_its_type() -> None:
    """`TransportOverrides`, the profiles' keyword arguments: the config's fields and types."""
    fields = typing.get_type_hints(HybridTransportConfig)
    assert typing.get_type_hints(TransportOverrides) == {
        f.name: fields[f.name] for f in dataclasses.fields(HybridTransportConfig)
    }
    assert TransportOverrides.__required_keys__ == frozenset()


def test_profiles_apply_overrides_over_their_settings() -> None:
    """The client's profiles: keyword overrides win over the profile's own settings."""
    fast = fast_profile(resend_interval=3.0, detector=DetectorKind.PHI_ACCRUAL).transport
    assert (fast.resend_interval, fast.detector) == (3.0, DetectorKind.PHI_ACCRUAL)
    assert fast.aws_health_check_interval == 1.0  # the fast profile's, not the default
    assert seed_profile(aws_failure_threshold=5).transport == HybridTransportConfig(
        aws_failure_threshold=5
    )


def test_failover_after_three_failures_resends_unsettled_on_p2p() -> None:
    """HT-3.2: three failed checks -> connected-p2p, and the unsettled message goes P2P."""
    service = started()
    service.send(room_id=b"r", members=frozenset({ME, BOB, CAROL}), blob=b"x", message_id=b"m1",
                 now=T0 + 1)  # fmt: skip
    actions = drain(service)
    assert any(isinstance(a, PersistOutbox) for a in actions)
    assert [type(a) for a in actions if isinstance(a, SendCentral | SendP2P)] == [SendCentral]
    for k in (1, 2):
        service.health_result(refused(T0 + 30 * k), now=T0 + 30 * k)
        assert service.state is TransportState.CONNECTED_AWS
    service.health_result(refused(T0 + 90), now=T0 + 90)
    actions = drain(service)
    changes = [a for a in actions if isinstance(a, StateChanged)]
    assert [(c.old, c.new) for c in changes] == [
        (TransportState.CONNECTED_AWS, TransportState.CONNECTED_P2P)
    ]
    p2p = [a for a in actions if isinstance(a, SendP2P)]
    assert p2p and p2p[0].members == frozenset({BOB, CAROL})
    assert sum(isinstance(a, CentralFailure) for a in actions) == 3  # one per failed check


def test_offline_device_does_not_fail_over() -> None:
    """HT-1.4: nothing reachable at all -> disconnected, not connected-p2p."""
    service = started()
    service.reachability(reach=Reach.NONE, anything_reachable=False, now=T0 + 1)
    for k in (1, 2, 3):
        service.health_result(refused(T0 + 30 * k), now=T0 + 30 * k)
    assert service.state is TransportState.DISCONNECTED


def test_failback_needs_consecutive_healthy_checks() -> None:
    """HT-3.3: after failover, one healthy check is not enough to go back."""
    config = HybridTransportConfig(failback_successes=3, failback_min_interval=20.0)
    service = started(config)
    for k in (1, 2, 3):
        service.health_result(refused(T0 + 30 * k), now=T0 + 30 * k)
    assert service.state is TransportState.CONNECTED_P2P
    service.health_result(ok(T0 + 120), now=T0 + 120)
    service.health_result(refused(T0 + 150), now=T0 + 150)  # flicker: streak resets
    service.health_result(ok(T0 + 180), now=T0 + 180)
    service.health_result(ok(T0 + 190), now=T0 + 190)
    assert service.state is TransportState.CONNECTED_P2P
    service.health_result(ok(T0 + 200), now=T0 + 200)
    assert service.state is TransportState.CONNECTED_AWS


def test_settled_by_central_ack_or_all_p2p_acks() -> None:
    """HT-4.2: the outbox empties on a central ack, or when every member acked over P2P."""
    service = started()
    members = frozenset({ME, BOB, CAROL})
    service.send(room_id=b"r", members=members, blob=b"1", message_id=b"a", now=T0)
    service.send(room_id=b"r", members=members, blob=b"2", message_id=b"b", now=T0)
    service.central_acked(b"a", now=T0 + 1)
    assert b"a" not in service.outbox and b"b" in service.outbox
    service.p2p_acked(b"b", BOB, now=T0 + 1)
    assert b"b" in service.outbox
    service.p2p_acked(b"b", CAROL, now=T0 + 1)
    assert len(service.outbox) == 0


def test_receiver_delivers_each_message_once_whatever_the_path() -> None:
    """HT-4.3: the same message over both paths reaches the application once."""
    service = started(HybridTransportConfig(enable_hybrid_redundancy=True))
    kwargs = {"room_id": b"r", "payload": b"hi", "expires_at": T0 + 60}
    assert service.received(message_id=b"m", path=Path.CENTRAL, now=T0, **kwargs)
    assert not service.received(message_id=b"m", path=Path.P2P, now=T0 + 0.1, **kwargs)
    delivered = [a for a in drain(service) if isinstance(a, Deliver)]
    assert len(delivered) == 1 and delivered[0].path is Path.CENTRAL


def test_hybrid_redundancy_sends_on_both_paths() -> None:
    service = started(HybridTransportConfig(enable_hybrid_redundancy=True))
    assert service.state is TransportState.CONNECTED_HYBRID
    service.send(room_id=b"r", members=frozenset({ME, BOB}), blob=b"x", message_id=b"m", now=T0)
    kinds = {type(a) for a in drain(service) if isinstance(a, SendCentral | SendP2P)}
    assert kinds == {SendCentral, SendP2P}


def test_phi_detector_fails_over_in_seconds_on_silence() -> None:
    """HT-2.3: with 1 s heartbeats, silence alone triggers failover within seconds."""
    config = HybridTransportConfig(detector=DetectorKind.PHI_ACCRUAL)
    service = HybridTransportService(config, local_id=ME, now=T0)
    service.reachability(reach=Reach.ALL, anything_reachable=True, now=T0)
    for k in range(30):
        service.health_result(ok(T0 + k), now=T0 + k)
    assert service.state is TransportState.CONNECTED_AWS
    deadline = service.next_deadline()
    assert deadline is not None
    now = T0 + 29
    while service.state is TransportState.CONNECTED_AWS and now < T0 + 60:
        now += 0.5
        service.on_timer(now=now)
    assert service.state is TransportState.CONNECTED_P2P
    assert now - (T0 + 29) < 10.0


def test_p2p_only_never_checks_the_central_service() -> None:
    """HT-3.1: no health checks in p2p-only mode."""
    config = HybridTransportConfig(preferred_mode=TransportMode.P2P_ONLY)
    service = HybridTransportService(config, local_id=ME, now=T0)
    service.on_timer(now=T0 + 100)
    assert not any(isinstance(a, CheckHealth) for a in drain(service))
    service.reachability(reach=Reach.SOME, anything_reachable=True, now=T0)
    assert service.state is TransportState.DEGRADED


def test_modes_and_states_use_the_seed_wire_values() -> None:
    """HT-1.1/HT-1.2: the TypeScript client's strings, exactly."""
    assert {m.value for m in TransportMode} == {"aws", "hybrid", "p2p-only"}
    assert {s.value for s in TransportState} == {
        "connected-aws",
        "connected-hybrid",
        "connected-p2p",
        "degraded",
        "connecting",
        "disconnected",
    }


def test_outbox_is_persisted_before_anything_is_sent() -> None:
    """HT-4.1: the PersistOutbox action precedes every send action of the same input."""
    service = started()
    service.send(room_id=b"r", members=frozenset({ME, BOB}), blob=b"x", message_id=b"m", now=T0)
    kinds = [type(a) for a in drain(service)]
    assert kinds.index(PersistOutbox) < kinds.index(SendCentral)


def test_outbox_survives_a_restart(tmp_path: pathlib.Path) -> None:
    """HT-4.4: unsettled entries written through SQLite come back after a restart."""
    store = SqliteOutboxStore(tmp_path / "outbox.sqlite3")
    service = started()
    members = frozenset({ME, BOB, CAROL})
    for mid in (b"a", b"b", b"c"):
        service.send(room_id=b"r", members=members, blob=mid * 3, message_id=mid, now=T0)
    service.central_acked(b"a", now=T0 + 1)
    service.p2p_acked(b"b", BOB, now=T0 + 1)
    for action in drain(service):
        if isinstance(action, PersistOutbox):
            store.apply(action.changes)
    store.close()

    store = SqliteOutboxStore(tmp_path / "outbox.sqlite3")
    restarted = HybridTransportService(HybridTransportConfig(), local_id=ME, now=T0 + 100)
    for entry in store.load():
        restarted.outbox.restore(entry)
    unsettled = {e.message_id: e for e in restarted.outbox.unsettled(now=T0 + 100)}
    assert set(unsettled) == {b"b", b"c"}
    assert unsettled[b"b"].missing_p2p() == frozenset({CAROL})
    assert unsettled[b"c"].blob == b"ccc"
    store.close()


def _timeout(at: float) -> HealthResult:
    return HealthResult(at=at, ok=False, label=FailureLabel.GENERIC_TIMEOUT)


def _checks_at(service: HybridTransportService, now: float) -> int:
    service.on_timer(now=now)
    return sum(isinstance(a, CheckHealth) for a in drain(service))


def test_recheck_after_failure_makes_the_next_check_due_at_once_while_up() -> None:
    """HT-2.4: with recheck_after_failure a failed check brings the next check forward to
    now -- three timed-out checks of 0.5 s end in failover 1.5 s after the first started --
    and once the service is judged down the interval applies again."""
    config = fast_profile().transport
    assert (config.aws_check_timeout, config.recheck_after_failure) == (0.5, True)
    service = started(config)
    t = T0 + 1.0
    assert _checks_at(service, t - 0.1) == 0  # the interval, while checks succeed
    assert _checks_at(service, t) == 1
    for k in range(3):
        t += 0.5  # the check timed out
        service.health_result(_timeout(t), now=t)
        if k < 2:
            assert service.state is TransportState.CONNECTED_AWS
            assert _checks_at(service, t) == 1  # re-checked now, not at the next interval
    assert service.state is TransportState.CONNECTED_P2P
    assert t - (T0 + 1.0) == 1.5
    drain(service)
    assert _checks_at(service, t) == 0  # judged down: back to the interval
    assert _checks_at(service, t + 1.0) == 1


def test_without_recheck_a_failed_check_waits_for_the_interval() -> None:
    """HT-2.4 is opt-in: the default configuration keeps HT-2.2's schedule."""
    service = started()
    service.health_result(_timeout(T0 + 1), now=T0 + 1)
    drain(service)
    assert _checks_at(service, T0 + 1) == 0
    assert _checks_at(service, T0 + 30) == 1


class _CentralModel:
    """The central service in virtual time as `HybridTransportService` sees it: each check
    is answered `answer_after` seconds after it starts (None: never). A check not answered
    by its `timeout` fails then, and the answer, if it comes by the ceiling, is reported
    late -- what the driver does (HT-2.5)."""

    def __init__(self, service: HybridTransportService, now: float) -> None:
        self.service = service
        self.now = now
        self.answer_after: float | None = 0.05
        self.events: list[tuple[float, int, HealthResult | float]] = []
        self.states: list[tuple[float, TransportState]] = []
        self.timeouts: list[float] = []
        self._seq = 0

    def _start(self, check: CheckHealth) -> None:
        self.timeouts.append(check.timeout)
        ceiling = self.service.config.check_timeout_ceiling
        answer = self.answer_after
        self._seq += 1
        if answer is not None and answer <= check.timeout:
            result = HealthResult(at=self.now + answer, ok=True, latency=answer)
            self.events.append((self.now + answer, self._seq, result))
            return
        self.events.append((self.now + check.timeout, self._seq, _timeout(0.0)))
        if answer is not None and answer <= ceiling:
            self.events.append((self.now + answer, self._seq, answer))

    def run(self, until: float, step: float = 0.05) -> None:
        while self.now < until:
            self.now = round(self.now + step, 6)
            self.events.sort(key=lambda e: (e[0], e[1]))
            while self.events and self.events[0][0] <= self.now:
                at, _, what = self.events.pop(0)
                if isinstance(what, HealthResult):
                    result = dataclasses.replace(what, at=at)
                    self.service.health_result(result, now=at)
                else:
                    self.service.check_answered_late(latency=what, now=at)
            self.service.on_timer(now=self.now)
            for action in drain(self.service):
                if isinstance(action, CheckHealth):
                    self._start(action)
                elif isinstance(action, StateChanged):
                    self.states.append((self.now, action.new))


def test_a_slow_but_healthy_central_service_lets_failback_complete() -> None:
    """HT-2.5, HT-3.3: after a failover the service comes back answering every check after
    1.5 s, three times the fast profile's 0.5 s floor: the late answers raise the check
    timeout, the checks pass, and the client fails back to the central path."""
    config = fast_profile().transport
    assert config.check_timeout_floor == 0.5
    assert config.check_timeout_ceiling > 1.5
    central = _CentralModel(started(config), T0)
    central.answer_after = None  # blackholed: failover
    central.run(T0 + 10)
    assert central.service.state is TransportState.CONNECTED_P2P
    central.answer_after = 1.5  # back, slow but healthy
    central.run(T0 + 40)
    assert central.service.state is TransportState.CONNECTED_AWS
    assert central.timeouts[-1] > 1.5
    assert all(0.5 <= t <= config.check_timeout_ceiling for t in central.timeouts)


def test_a_dead_central_service_still_fails_within_the_ceiling_bound() -> None:
    """HT-2.5: with the timeout at its ceiling (the service had been slow), a service that
    stops answering is judged down after at most failure-threshold checks of at most the
    ceiling each (the first starting within an interval of the fault)."""
    config = fast_profile().transport
    central = _CentralModel(started(config), T0)
    central.answer_after = 1.9  # slow: the timeout climbs to the ceiling
    central.run(T0 + 30)
    assert central.service.state is TransportState.CONNECTED_AWS
    assert central.timeouts[-1] == config.check_timeout_ceiling
    fault_at = central.now
    central.answer_after = None
    central.run(fault_at + 20)
    failover = [at for at, state in central.states if state is TransportState.CONNECTED_P2P]
    bound = config.check_interval + config.aws_failure_threshold * config.check_timeout_ceiling
    assert failover and failover[0] - fault_at <= bound + 0.1  # virtual time, one step


def test_the_default_profile_keeps_a_fixed_check_timeout() -> None:
    """HT-2.4, HT-2.5: a 30 s interval gives a 5 s floor, above the 2 s latency threshold,
    so the default configuration's checks always wait 5 s, as before."""
    config = seed_profile().transport
    assert config.check_timeout_floor == config.check_timeout_ceiling == 5.0
