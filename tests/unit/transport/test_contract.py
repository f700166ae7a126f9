"""Both transport cores have the one core shape (CORE-1) and count with typed names.

The assignments to `ProtocolCore[...]` are the type check: ``mypy --strict`` on this
file fails if a core's `next_action` returns anything outside its closed `Action` union.
"""

from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.central import CentralCounter
from railgun_ref.identity.keys import Identity
from railgun_ref.transport import p2p, service
from railgun_ref.transport.health import FailureLabel, HealthResult
from railgun_ref.transport.outbox import Path
from railgun_ref.transport.state import Reach, TransportState
from railgun_ref.wire.central import MAX_BLOB_SIZE, BlobSizeBucket, CentralErrorCode

T0 = 1_800_000_000.0
ME = NodeId(b"\x01" * 32)


class ScriptedDetector:
    """A `FailureDetector` that suspects exactly when told to: the service asks nothing else."""

    def __init__(self) -> None:
        self.down = False

    def classify(self, result: HealthResult) -> HealthResult:
        return result

    def observe(self, result: HealthResult) -> None:
        pass

    def suspects(self, *, now: float) -> bool:
        return self.down

    def suspicion_time(self) -> float | None:
        return None


def test_both_cores_are_protocol_cores() -> None:
    """CORE-1.1..1.4: on_timer, next_deadline, next_action over a closed union."""
    transport: ProtocolCore[service.Action] = service.HybridTransportService(
        service.HybridTransportConfig(), local_id=ME, now=T0
    )
    identity = Identity.from_seed(b"\x07" * 32)
    room: ProtocolCore[p2p.Action] = p2p.P2PRoomCore(identity, ("127.0.0.1", 9), now=T0)
    for core in (transport, room):
        core.on_timer(now=T0)
        deadline = core.next_deadline()
        assert deadline is None or deadline >= T0
    assert isinstance(transport.next_action(), service.CheckHealth)


def test_any_failure_detector_drives_failover_and_failback() -> None:
    """HT-3.2/HT-3.3: the service judges through the `FailureDetector` protocol alone."""
    config = service.HybridTransportConfig(failback_successes=2, failback_min_interval=1.0)
    detector = ScriptedDetector()
    core = service.HybridTransportService(config, local_id=ME, now=T0, detector=detector)
    core.reachability(reach=Reach.ALL, anything_reachable=True, now=T0)
    core.health_result(HealthResult(at=T0, ok=True, latency=0.1), now=T0)
    states: list[TransportState] = []
    states.append(core.state)
    detector.down = True
    core.on_timer(now=T0 + 1)  # silence alone: the detector suspects, the timer notices
    states.append(core.state)
    detector.down = False
    core.health_result(HealthResult(at=T0 + 2, ok=True, latency=0.1), now=T0 + 2)
    states.append(core.state)  # HT-3.3: one success is not enough
    core.health_result(HealthResult(at=T0 + 3, ok=True, latency=0.1), now=T0 + 3)
    states.append(core.state)
    aws, p2p_state = TransportState.CONNECTED_AWS, TransportState.CONNECTED_P2P
    assert states == [aws, p2p_state, p2p_state, aws]


def test_service_counters_have_typed_names_and_flat_views() -> None:
    """Counters are read by enum name; the flat view keeps the dotted names /metrics shows."""
    core = service.HybridTransportService(service.HybridTransportConfig(), local_id=ME, now=T0)
    failed = HealthResult(at=T0, ok=False, label=FailureLabel.DNS_NXDOMAIN)
    core.health_result(failed, now=T0)
    for _ in range(2):
        core.received(
            message_id=b"m" * 16,
            room_id=b"r",
            payload=b"x",
            expires_at=T0 + 60,
            path=Path.P2P,
            now=T0,
        )
    counters = core.counters
    assert counters.get_count(service.ServiceCounter.CENTRAL_FAILURE, FailureLabel.DNS_NXDOMAIN)
    assert counters.get_count(service.ServiceCounter.RECEIVED, Path.P2P) == 1
    assert counters.get_count(service.ServiceCounter.RECEIVED_DUPLICATE, Path.P2P) == 1
    assert counters.snapshot() == {
        "central.failure.dns_nxdomain": 1,
        "received.duplicate.p2p": 1,
        "received.p2p": 1,
    }


def test_central_counters_keep_the_metrics_names() -> None:
    """CEN-7.2/7.3: refusals as ``refused.<NAME>``, blob sizes as ``send.bucket.<bucket>``."""
    counters: Counters[CentralCounter] = Counters()
    counters.inc(CentralCounter.REFUSED, label=CentralErrorCode.NOT_MEMBER)
    counters.inc(CentralCounter.SEND_BUCKET, label=BlobSizeBucket.of(257))
    counters.inc(CentralCounter.SEND_BUCKET, label=BlobSizeBucket.of(MAX_BLOB_SIZE))
    assert counters.snapshot() == {
        "refused.NOT_MEMBER": 1,
        "send.bucket.4096": 1,
        "send.bucket.81920": 1,
    }
