"""HybridTransportService: Rail Gun's hybrid transport, as a sans-IO state machine (HT-3.x).

Inputs, each with `now`: health-check results for the central service,
reachability reports from the P2P layer (how much of the room answers, and
whether *anything* answers), `send()` from the application, acknowledgements
from either path, messages received on either path, and timer ticks.
Outputs (`next_action()`): checks to run, envelopes to send on a path,
messages to deliver to the application once, outbox changes to persist, and
events for every state change, failure and delivery.

Failover (HT-3.2): when the configured detector suspects the central
service *and* something else is still reachable, the state table moves to a
P2P state and every unsettled outbox entry is re-sent on the P2P path at
once. If nothing at all is reachable the device is offline: the state is
`disconnected` and no failover happens (HT-1.4).

Failback with hysteresis (HT-3.3): after a failover, the central path is
trusted again only after `failback_successes` consecutive healthy checks
spanning at least `failback_min_interval` seconds, so a service that
flickers does not drag clients back and forth. The streak restarts on a
failed check and whenever the detector suspects the service: phi-accrual
fails over on silence alone (slow or lost answers, no failed check), and
the successes from before that silence must not count towards failback.
The streak is kept as its first time and its length, so it costs O(1)
however long the service stays healthy.

Check timeouts (HT-2.5): each `CheckHealth` carries the time the check may
take, the configured timeout raised by the latencies of answered checks
(`CheckTimeout`), so a slow but healthy service -- or a client whose event
loop is late -- still passes its checks and failback completes.

Timers: `next_deadline()` includes the phi-accrual detector's
`suspicion_time()` while the central path is up, and the detector suspects
from that instant on (`now >= suspicion_time()`), so `on_timer` at the
deadline always acts and virtual time never stands still.
"""

from collections import deque
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Final, TypedDict

from railgun_ref.capacity.sharing import CapacitySharingConfig
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.transport.health import (
    CheckTimeout,
    FailureDetector,
    FailureLabel,
    HealthResult,
    PhiAccrualDetector,
    ThresholdDetector,
)
from railgun_ref.transport.outbox import Deduplicator, Outbox, OutboxChange, OutboxEntry, Path
from railgun_ref.transport.state import (
    Central,
    CentralTrigger,
    Reach,
    TransportMode,
    TransportState,
    TransportStateMachine,
)

_WEEK: Final = 7 * 24 * 3600.0


class DetectorKind(Enum):
    THRESHOLD = "threshold"  #: the baseline failover rule (HT-2.2)
    PHI_ACCRUAL = "phi-accrual"  #: adaptive (HT-2.3), an addition to the design


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreAndForwardConfig:
    enabled: bool = True
    default_ttl: float = _WEEK  #: seconds (default 7 days, HT-5.1)
    redundancy_factor: int = 3  #: storage peers per message (default 3, HT-5.1)


@dataclass(frozen=True, slots=True, kw_only=True)
class HybridTransportConfig:
    """HT-5.1: every field of the design's `HybridTransportConfig`, with its defaults.

    Times are seconds here (the JSON form's are milliseconds); `from_json` takes the
    camelCase, millisecond form.
    """

    preferred_mode: TransportMode = TransportMode.AWS
    aws_endpoint: str = "https://api.railgun.app"
    aws_websocket_endpoint: str = "wss://ws.railgun.app"
    aws_health_check_interval: float = 30.0
    aws_latency_threshold: float = 2.0
    aws_failure_threshold: int = 3
    enable_hybrid_redundancy: bool = False
    store_and_forward: StoreAndForwardConfig = field(default_factory=StoreAndForwardConfig)
    capacity_sharing: CapacitySharingConfig = field(default_factory=CapacitySharingConfig)
    # Additions to the design (HT-5.2):
    detector: DetectorKind = DetectorKind.THRESHOLD
    heartbeat_interval: float = 1.0  #: check interval of the phi-accrual detector
    phi_threshold: float = 8.0
    phi_acceptable_pause: float = 2.0
    failback_successes: int = 3
    failback_min_interval: float = 10.0
    resend_interval: float = 5.0  #: unsettled outbox entries are re-sent this often
    #: HT-2.4, HT-2.5: seconds a health check may take before it fails, at least (None:
    #: the check interval clamped to 1..5 s); answered checks raise it, at most to
    #: `aws_latency_threshold` (`check_timeout_floor`, `check_timeout_ceiling`)
    aws_check_timeout: float | None = None
    #: HT-2.4: after a failed check, while the service is still judged up, check again
    #: at once instead of at the next interval
    recheck_after_failure: bool = False

    def __post_init__(self) -> None:
        positive = (
            "aws_health_check_interval",
            "aws_latency_threshold",
            "heartbeat_interval",
            "phi_threshold",
            "resend_interval",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise LocalProtocolError(f"{name} must be positive")
        if self.aws_failure_threshold < 1 or self.failback_successes < 1:
            raise LocalProtocolError("thresholds must be at least 1")
        if self.aws_check_timeout is not None and not self.aws_check_timeout > 0:
            raise LocalProtocolError("aws_check_timeout must be positive")
        if self.phi_acceptable_pause < 0 or self.failback_min_interval < 0:
            raise LocalProtocolError("pauses and intervals must be >= 0")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "HybridTransportConfig":
        """Read the TypeScript client's config (camelCase, milliseconds)."""
        saf = data.get("storeAndForward", {})
        cap = data.get("capacitySharing", {})
        defaults = cls()
        return cls(
            preferred_mode=TransportMode(data.get("preferredMode", "aws")),
            aws_endpoint=data.get("awsEndpoint", defaults.aws_endpoint),
            aws_websocket_endpoint=data.get(
                "awsWebsocketEndpoint", defaults.aws_websocket_endpoint
            ),
            aws_health_check_interval=data.get("awsHealthCheckInterval", 30000) / 1000,
            aws_latency_threshold=data.get("awsLatencyThreshold", 2000) / 1000,
            aws_failure_threshold=data.get("awsFailureThreshold", 3),
            enable_hybrid_redundancy=data.get("enableHybridRedundancy", False),
            store_and_forward=StoreAndForwardConfig(
                enabled=saf.get("enabled", True),
                default_ttl=saf.get("defaultTTL", _WEEK * 1000) / 1000,
                redundancy_factor=saf.get("redundancyFactor", 3),
            ),
            capacity_sharing=CapacitySharingConfig(
                enabled=cap.get("enabled", True),
                max_upload_share=cap.get("maxUploadShare", 0.5),
                max_relay_connections=cap.get("maxRelayConnections", 20),
            ),
        )

    @property
    def check_interval(self) -> float:
        if self.detector is DetectorKind.PHI_ACCRUAL:
            return self.heartbeat_interval
        return self.aws_health_check_interval

    @property
    def check_timeout_floor(self) -> float:
        """HT-2.4: the shortest wait of a check, seconds (`aws_check_timeout` or its default)."""
        if self.aws_check_timeout is not None:
            return self.aws_check_timeout
        return min(5.0, max(1.0, self.check_interval))

    @property
    def check_timeout_ceiling(self) -> float:
        """HT-2.5: the longest wait of a check, seconds: the latency threshold (a slower
        answer counts as failed anyway, HT-2.2), or the floor if that is longer."""
        return max(self.check_timeout_floor, self.aws_latency_threshold)


class TransportOverrides(TypedDict, total=False):
    """Keyword arguments that override fields of `HybridTransportConfig` (any subset).

    The keys and types are the config's fields one for one (a test holds them
    together), so ``HybridTransportConfig(**overrides)`` type-checks.
    """

    preferred_mode: TransportMode
    aws_endpoint: str
    aws_websocket_endpoint: str
    aws_health_check_interval: float
    aws_latency_threshold: float
    aws_failure_threshold: int
    enable_hybrid_redundancy: bool
    store_and_forward: StoreAndForwardConfig
    capacity_sharing: CapacitySharingConfig
    detector: DetectorKind
    heartbeat_interval: float
    phi_threshold: float
    phi_acceptable_pause: float
    failback_successes: int
    failback_min_interval: float
    resend_interval: float
    aws_check_timeout: float | None
    recheck_after_failure: bool


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckHealth:
    """Run one health check of the central service and report it with `health_result`.

    The check fails (``generic_timeout``, or ``dns_timeout`` while resolving) after
    `timeout` seconds (HT-2.5). A driver that keeps waiting for a timed-out check's
    answer, up to `HybridTransportConfig.check_timeout_ceiling`, reports its latency
    with `check_answered_late`."""

    check_id: int
    timeout: float  #: seconds (HT-2.5)


@dataclass(frozen=True, slots=True, kw_only=True)
class SendCentral:
    entry: OutboxEntry


@dataclass(frozen=True, slots=True, kw_only=True)
class SendP2P:
    entry: OutboxEntry
    members: frozenset[NodeId]  #: who has not acknowledged yet


@dataclass(frozen=True, slots=True, kw_only=True)
class Deliver:
    """Hand a received message to the application (once per message id)."""

    message_id: bytes
    room_id: bytes
    payload: bytes
    path: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistOutbox:
    changes: tuple[OutboxChange, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChanged:
    old: TransportState
    new: TransportState
    at: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CentralFailure:
    at: float
    label: FailureLabel


#: The closed set of what `HybridTransportService.next_action` returns (CORE-1.2).
Action = (
    CheckHealth | SendCentral | SendP2P | Deliver | PersistOutbox | StateChanged | CentralFailure
)


class ServiceCounter(StrEnum):
    """Counters of `HybridTransportService` (labels: `FailureLabel`, `Path`, `TransportState`)."""

    CENTRAL_FAILURE = "central.failure"  #: label: the check's `FailureLabel` (HT-2.1)
    SETTLED_CENTRAL = "outbox.settled_central"
    SETTLED_P2P = "outbox.settled_p2p"
    RESENT = "outbox.resent"
    RECEIVED = "received"  #: label: the `Path` that brought it first
    RECEIVED_DUPLICATE = "received.duplicate"  #: label: the `Path` of the dropped copy
    STATE = "state"  #: label: the `TransportState` entered


def make_detector(config: HybridTransportConfig) -> FailureDetector:
    """The failure detector `config.detector` names (HT-2.2, HT-2.3)."""
    if config.detector is DetectorKind.PHI_ACCRUAL:
        return PhiAccrualDetector(
            threshold=config.phi_threshold,
            acceptable_pause=config.phi_acceptable_pause,
            first_interval=config.heartbeat_interval,
        )
    return ThresholdDetector(
        failure_threshold=config.aws_failure_threshold,
        latency_threshold=config.aws_latency_threshold,
    )


_REASONS: Final = {
    CentralTrigger.SUSPECTED: "central down",
    CentralTrigger.SUSPECTED_OFFLINE: "central down",
    CentralTrigger.HEALTHY: "central healthy",
    CentralTrigger.FAILBACK_READY: "central healthy",
}


class HybridTransportService:
    """The hybrid transport's core; a `ProtocolCore[Action]` (see the module docstring)."""

    def __init__(
        self,
        config: HybridTransportConfig,
        *,
        local_id: NodeId,
        now: float,
        detector: FailureDetector | None = None,
    ) -> None:
        """`detector` overrides the one `config.detector` names (any `FailureDetector`)."""
        self.config = config
        self.local_id = local_id
        self.machine = TransportStateMachine(
            config.preferred_mode, redundancy=config.enable_hybrid_redundancy
        )
        self.detector = detector if detector is not None else make_detector(config)
        #: HT-2.5: how long the next health check may take.
        self.check_timeout = CheckTimeout(
            floor=config.check_timeout_floor, ceiling=config.check_timeout_ceiling
        )
        self.outbox = Outbox()
        self.dedup = Deduplicator()
        self.counters: Counters[ServiceCounter] = Counters()
        self._actions: deque[Action] = deque()
        self._next_check = now if config.preferred_mode is not TransportMode.P2P_ONLY else None
        self._next_check_id = 1
        self._next_resend = now + config.resend_interval
        self._streak_start: float | None = None  #: first healthy check of the streak (HT-3.3)
        self._streak_length = 0
        self._streak_last = now
        self._anything_reachable = True

    @property
    def state(self) -> TransportState:
        return self.machine.state

    # ------------------------------------------------------------ inputs

    def health_result(self, result: HealthResult, *, now: float) -> None:
        if result.latency is not None:
            self.check_timeout.observe(result.latency)  # HT-2.5, before any classification
        result = self.detector.classify(result)
        self.detector.observe(result)
        if not result.ok:
            assert result.label is not None
            self.counters.inc(ServiceCounter.CENTRAL_FAILURE, label=result.label)
            self._actions.append(CentralFailure(at=now, label=result.label))
            self._end_streak()
        else:
            if self._streak_start is None:
                self._streak_start = now
            self._streak_length += 1
            self._streak_last = now
        self._evaluate_central(now)
        if not result.ok:
            self._recheck(now)

    def check_answered_late(self, *, latency: float, now: float) -> None:
        """HT-2.5: a check already reported as timed out was answered after `latency`
        seconds: a sample for the next checks' timeout, not a healthy check."""
        self.check_timeout.observe(latency)

    def _recheck(self, now: float) -> None:
        """HT-2.4: a failed check while the service is judged up: the next one is due now."""
        if (
            self.config.recheck_after_failure
            and self._next_check is not None
            and self.machine.central is Central.UP
        ):
            self._next_check = min(self._next_check, now)

    def reachability(self, *, reach: Reach, anything_reachable: bool, now: float) -> None:
        """From the P2P layer: how much of the room answers, and whether anything does."""
        self._anything_reachable = anything_reachable
        self._apply(self.machine.update(reach=reach), reason="p2p reachability", now=now)
        self._evaluate_central(now)

    def send(
        self,
        *,
        room_id: bytes,
        members: frozenset[NodeId],
        blob: bytes,
        message_id: bytes,
        now: float,
        ttl: float | None = None,
    ) -> None:
        """Accept a message: it is in the outbox (persisted) before this returns (HT-4.1)."""
        ttl = self.config.store_and_forward.default_ttl if ttl is None else ttl
        entry = OutboxEntry(
            message_id=message_id,
            room_id=room_id,
            blob=blob,
            members=members - {self.local_id},
            accepted_at=now,
            expires_at=now + ttl,
        )
        self.outbox.add(entry)
        self._persist()
        self._route(entry)

    def central_acked(self, message_id: bytes, *, now: float) -> None:
        if self.outbox.central_ack(message_id):
            self.counters.inc(ServiceCounter.SETTLED_CENTRAL)
        self._persist()

    def p2p_acked(self, message_id: bytes, member: NodeId, *, now: float) -> None:
        if self.outbox.p2p_ack(message_id, member):
            self.counters.inc(ServiceCounter.SETTLED_P2P)
        self._persist()

    def received(
        self,
        *,
        message_id: bytes,
        room_id: bytes,
        payload: bytes,
        expires_at: float,
        path: Path,
        now: float,
    ) -> bool:
        """A message arrived on `path`; delivered to the application only the first time."""
        if not self.dedup.first_time(message_id, expires_at=expires_at, now=now):
            self.counters.inc(ServiceCounter.RECEIVED_DUPLICATE, label=path)
            return False
        self.counters.inc(ServiceCounter.RECEIVED, label=path)
        self._actions.append(
            Deliver(message_id=message_id, room_id=room_id, payload=payload, path=path)
        )
        return True

    def on_timer(self, *, now: float) -> None:
        if self._next_check is not None and now >= self._next_check:
            self._actions.append(
                CheckHealth(check_id=self._next_check_id, timeout=self.check_timeout.timeout)
            )
            self._next_check_id += 1
            self._next_check = now + self.config.check_interval
        self._evaluate_central(now)  # silence alone can make a detector suspect (HT-2.3)
        if now >= self._next_resend:
            self._next_resend = now + self.config.resend_interval
            for entry in self.outbox.unsettled(now=now):
                self._route(entry, resend=True)
            self._persist()

    def next_deadline(self) -> float | None:
        deadlines = [self._next_resend]
        if self._next_check is not None:
            deadlines.append(self._next_check)
        suspicion = self.detector.suspicion_time()
        if suspicion is not None and self.machine.central is Central.UP:
            deadlines.append(suspicion)
        return min(deadlines)

    def next_action(self) -> Action | None:
        return self._actions.popleft() if self._actions else None

    # ------------------------------------------------------------ internals

    def _central_trigger(self, now: float) -> CentralTrigger | None:
        """HT-3.3: the verdict on the central path now (None: nothing to judge yet)."""
        if self.detector.suspects(now=now):
            self._end_streak()  # HT-3.3: a suspected service restarts the failback count
            if self._anything_reachable:
                return CentralTrigger.SUSPECTED
            return CentralTrigger.SUSPECTED_OFFLINE
        if self._streak_start is None:
            return None
        enough = self._streak_length >= self.config.failback_successes
        spanned = self._streak_last - self._streak_start >= self.config.failback_min_interval
        return CentralTrigger.FAILBACK_READY if enough and spanned else CentralTrigger.HEALTHY

    def _evaluate_central(self, now: float) -> None:
        if self.config.preferred_mode is TransportMode.P2P_ONLY:
            return
        trigger = self._central_trigger(now)
        if trigger is not None:
            self._apply(self.machine.judge_central(trigger), reason=_REASONS[trigger], now=now)

    def _end_streak(self) -> None:
        self._streak_start = None
        self._streak_length = 0

    def _apply(
        self, change: tuple[TransportState, TransportState] | None, *, now: float, reason: str
    ) -> None:
        if change is None:
            return
        old, new = change
        self.counters.inc(ServiceCounter.STATE, label=new)
        self._actions.append(StateChanged(old=old, new=new, at=now, reason=reason))
        # HT-3.2: whatever is unsettled goes out on the paths now in use.
        for entry in self.outbox.unsettled(now=now):
            self._route(entry, resend=True)
        self._persist()

    def _route(self, entry: OutboxEntry, *, resend: bool = False) -> None:
        if self.machine.uses_central:
            entry.attempts[Path.CENTRAL] = entry.attempts.get(Path.CENTRAL, 0) + 1
            self._actions.append(SendCentral(entry=entry))
        if self.machine.uses_p2p:
            missing = entry.missing_p2p()
            if missing:
                entry.attempts[Path.P2P] = entry.attempts.get(Path.P2P, 0) + 1
                self._actions.append(SendP2P(entry=entry, members=missing))
        if resend:
            self.counters.inc(ServiceCounter.RESENT)

    def _persist(self) -> None:
        changes = self.outbox.drain_changes()
        if changes:
            self._actions.append(PersistOutbox(changes=tuple(changes)))
