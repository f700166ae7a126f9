"""The bootstrap race (BOOT-4): every discovery method at once, staggered, first verified peer wins.

Theory of operation
===================

1. A *source* is one discovery method (`Method`, in the priority order of
   BOOT-4.1). It either comes with its candidates (cached peers, the signed
   hard-coded list, onion and I2P addresses from a manifest) or must first be
   *fetched* (a DNS SRV lookup, an IPFS manifest): the core emits
   `FetchCandidates` and the driver answers `candidates_found` or
   `source_failed`.
2. Sources open at staggered offsets (`RaceConfig.source_offsets`: source of
   rank *i* at offset *i*), and a source also opens at once when every source
   before it has failed (BOOT-4.2) — Happy Eyeballs v2 (RFC 8305 §5) for
   sources instead of addresses, with OONI's doubling steps.
3. Inside an open source, candidates start one `attempt_delay` (250 ms, RFC
   8305) apart, or at once when the previous one failed, with at most
   `per_source` (2) attempts of one source in flight, so one dead source holds
   at most two slots; across the race at most `max_in_flight` (10) attempts
   and fetches are in flight (BOOT-4.3).
4. The last peer that worked (`Candidate.last_good`) starts alone; every other
   attempt waits `head_start` unless it fails first (BOOT-4.4).
5. An attempt counts only when the driver reports a PONG signed by the key the
   candidate names (`attempt_verified` with the signer's key; any other key is
   a `WRONG_KEY` failure, BOOT-4.5). The first verified attempt wins: every
   other attempt and fetch is cancelled, and `RaceWon` says which method won
   and why each failed attempt failed (BOOT-4.6).

Candidate states move only along `TRANSITIONS`; anything else raises
`LocalProtocolError`. The core reads no clock: every input takes ``now``.
"""

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum, StrEnum
from types import MappingProxyType
from typing import Final

from railgun_ref.bootstrap.manifest import AddressKind
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import node_id_of

__all__ = [
    "TRANSITIONS",
    "Attempt",
    "CancelAttempt",
    "Candidate",
    "CandidateState",
    "Failure",
    "FetchCandidates",
    "Method",
    "Race",
    "RaceAction",
    "RaceConfig",
    "RaceCounter",
    "RaceFailed",
    "RaceWon",
    "StartAttempt",
]


class Method(IntEnum):
    """BOOT-4.1: the discovery methods, in priority order (value = rank + 1)."""

    CACHED = 1  #: peers this client verified before (SQLite)
    HARDCODED = 2  #: the signed list shipped with the client
    TOR = 3  #: onion addresses through a SOCKS5 proxy
    I2P = 4  #: I2P destinations through the SAM v3 bridge
    IPFS = 5  #: a manifest fetched by CID from an IPFS gateway
    DNS_SRV = 6  #: SRV records (RFC 2782)


class Failure(StrEnum):
    """Why an attempt or a source failed: OONI-style labels (as transport/health.py spells them)."""

    GENERIC_TIMEOUT = "generic_timeout"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    DNS_NXDOMAIN = "dns_nxdomain"
    DNS_SERVFAIL = "dns_servfail"
    DNS_TIMEOUT = "dns_timeout"
    DNS_BOGUS_ANSWER = "dns_bogus_answer"  #: SRV targets that are not usable addresses
    HTTP_ERROR = "http_error"
    WRONG_CID = "wrong_cid"  #: a gateway returned content whose CID differs
    MANIFEST_REJECTED = "manifest_rejected"  #: BOOT-3: the fetched manifest was refused
    PROXY_ERROR = "proxy_error"  #: the SOCKS5 proxy or SAM bridge refused or lied
    WRONG_KEY = "wrong_key"  #: the PONG was signed by another key than the candidate's
    INVALID_RESPONSE = "invalid_response"  #: an answer that is not a PONG
    NO_CANDIDATES = "no_candidates"  #: the source had nothing to try
    UNREACHABLE = "unreachable"  #: the driver cannot use this method here


class CandidateState(Enum):
    """BOOT-4.7: where one candidate stands."""

    QUEUED = "queued"
    CONNECTING = "connecting"
    VERIFIED = "verified"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Trigger(Enum):
    START = "start"
    VERIFIED = "verified"
    FAILED = "failed"
    TIMEOUT = "timeout"
    RACE_OVER = "race-over"


#: BOOT-4.7: the candidate state table; a (state, trigger) pair not listed is a bug.
TRANSITIONS: Final[Mapping[CandidateState, Mapping[Trigger, CandidateState]]] = MappingProxyType(
    {
        CandidateState.QUEUED: MappingProxyType(
            {Trigger.START: CandidateState.CONNECTING, Trigger.RACE_OVER: CandidateState.CANCELLED}
        ),
        CandidateState.CONNECTING: MappingProxyType(
            {
                Trigger.VERIFIED: CandidateState.VERIFIED,
                Trigger.FAILED: CandidateState.FAILED,
                Trigger.TIMEOUT: CandidateState.FAILED,
                Trigger.RACE_OVER: CandidateState.CANCELLED,
            }
        ),
        CandidateState.VERIFIED: MappingProxyType({}),
        CandidateState.FAILED: MappingProxyType({}),
        CandidateState.CANCELLED: MappingProxyType({}),
    }
)


def state_diagram() -> str:
    """The Mermaid state diagram of `TRANSITIONS` (paper/spec.md BOOT-4.7 embeds it)."""
    lines = ["stateDiagram-v2", "    [*] --> queued"]
    for state, row in TRANSITIONS.items():
        for trigger, target in row.items():
            lines.append(f"    {state.value} --> {target.value}: {trigger.value}")
    return "\n".join(lines)


class RaceCounter(StrEnum):
    """What `Race.counters` counts."""

    FETCH_STARTED = "fetch.started"  #: label: Method
    FETCH_FAILED = "fetch.failed"  #: label: Failure
    ATTEMPT_STARTED = "attempt.started"  #: label: Method
    ATTEMPT_FAILED = "attempt.failed"  #: label: Failure
    ATTEMPT_VERIFIED = "attempt.verified"  #: label: Method
    SOURCE_FAILED = "source.failed"  #: label: Method


@dataclass(frozen=True, slots=True, kw_only=True)
class RaceConfig:
    """BOOT-4 parameters (seconds)."""

    #: BOOT-4.2: offset at which the source of each priority rank opens.
    source_offsets: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
    attempt_delay: float = 0.25  #: BOOT-4.3: RFC 8305 "Connection Attempt Delay"
    per_source: int = 2  #: BOOT-4.3: attempts of one source in flight at most
    max_in_flight: int = 10  #: BOOT-4.3: attempts and fetches in flight at most
    head_start: float = 0.25  #: BOOT-4.4: the last-good peer's lead
    attempt_timeout: float = 1.5  #: BOOT-4.5: a UDP PING without a verified PONG fails
    proxy_attempt_timeout: float = 3.0  #: BOOT-4.5: the same through Tor or I2P

    def timeout_for(self, kind: AddressKind) -> float:
        """BOOT-4.5: how long an attempt on an address of `kind` may take."""
        return self.attempt_timeout if kind is AddressKind.UDP else self.proxy_attempt_timeout

    fetch_timeout: float = 3.0  #: BOOT-4.2: a fetch without an answer fails

    def __post_init__(self) -> None:
        if len(self.source_offsets) != len(Method) or list(self.source_offsets) != sorted(
            self.source_offsets
        ):
            raise LocalProtocolError("one non-decreasing source offset per method")
        if self.per_source < 1 or self.max_in_flight < 1:
            raise LocalProtocolError("at least one attempt must be allowed in flight")


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A bootstrap peer to try: the key its PONG must carry and where to reach it."""

    method: Method
    public_key: bytes
    address: str  #: "host:port", "name.onion:port", "name.b32.i2p:port"
    last_good: bool = False  #: BOOT-4.4: the peer that worked last time
    #: BOOT-4.8: how `address` is reached; None: as its method reaches addresses
    #: (onion for TOR, I2P for I2P, UDP otherwise). A cached peer keeps its own.
    kind: AddressKind | None = None

    @property
    def reached_by(self) -> AddressKind:
        """UDP, through the SOCKS5 proxy (onion) or through the SAM bridge (I2P)."""
        if self.kind is not None:
            return self.kind
        return _METHOD_KINDS.get(self.method, AddressKind.UDP)


_METHOD_KINDS: Final = {Method.TOR: AddressKind.ONION, Method.I2P: AddressKind.I2P}


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchCandidates:
    """Look up the candidates of `method` (DNS SRV, IPFS).

    The driver answers `Race.candidates_found` or `Race.source_failed`.
    """

    method: Method


@dataclass(frozen=True, slots=True, kw_only=True)
class StartAttempt:
    """Reach `candidate`, PING it, report the PONG's signer (`attempt_verified`) or a failure."""

    attempt_id: int
    candidate: Candidate


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelAttempt:
    """Abandon attempt `attempt_id` (timed out, or the race is over); report nothing more."""

    attempt_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelFetch:
    """Abandon the fetch of `method` (the race is over)."""

    method: Method


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One finished attempt or fetch, for the report (BOOT-4.6)."""

    method: Method
    address: str  #: "" for a fetch
    failure: Failure | None  #: None: verified
    started: float  #: seconds after the race began
    ended: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RaceWon:
    """BOOT-4.6: the first verified peer, the method that found it, and every failure before."""

    candidate: Candidate
    elapsed: float
    failures: tuple[Attempt, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RaceFailed:
    """BOOT-4.6: every source failed; why each attempt failed."""

    elapsed: float
    failures: tuple[Attempt, ...]


RaceAction = FetchCandidates | StartAttempt | CancelAttempt | CancelFetch | RaceWon | RaceFailed


class SourceState(Enum):
    WAITING = "waiting"  #: not open yet
    FETCHING = "fetching"
    OPEN = "open"
    FAILED = "failed"


@dataclass(slots=True)
class _Source:
    method: Method
    offset: float
    queue: deque[Candidate] | None  #: None until fetched
    state: SourceState = SourceState.WAITING
    in_flight: int = 0
    next_start: float = 0.0  #: BOOT-4.3: the earliest start of its next candidate
    started_any: bool = False
    fetch_started: float = 0.0


@dataclass(slots=True)
class _Running:
    candidate: Candidate
    source: _Source
    started: float
    state: CandidateState = CandidateState.CONNECTING


@dataclass(slots=True)
class _Outcome:
    failures: list[Attempt] = field(default_factory=list)
    over: bool = False


class Race:
    """One bootstrap race (BOOT-4), a `ProtocolCore[RaceAction]`."""

    def __init__(
        self,
        sources: Mapping[Method, Sequence[Candidate] | Failure | None],
        *,
        now: float,
        config: RaceConfig | None = None,
    ) -> None:
        """`sources`: per method, its candidates, None (to be fetched), or the `Failure`
        that already refused it before the race (BOOT-1.6: a shipped list that failed
        verification), which is reported like any other failed source."""
        self.config = config or RaceConfig()
        self.counters: Counters[RaceCounter] = Counters()
        self._t0 = now
        self._sources: list[_Source] = []
        self._outcome = _Outcome()
        for rank, method in enumerate(sorted(sources)):
            given = sources[method]
            queue = deque[Candidate]() if isinstance(given, Failure) else _queue(given)
            source = _Source(method, self.config.source_offsets[rank], queue, next_start=now)
            self._sources.append(source)
            if isinstance(given, Failure):
                source.started_any = True
                self._record(method, "", given, now, now)
                self._fail_source(source, given, now)
        self._running: dict[int, _Running] = {}
        self._next_id = 1
        self._actions: deque[RaceAction] = deque()
        self._hold_until = now + self.config.head_start if _has_last_good(sources) else now
        self._pump(now)

    # --- inputs ------------------------------------------------------------------------

    def candidates_found(
        self, method: Method, candidates: Iterable[Candidate], *, now: float
    ) -> None:
        """The fetch of `method` answered with `candidates` (already checked by the driver)."""
        source = self._fetching_source(method)
        if source is None:
            return
        source.queue = _queue(list(candidates))
        source.state = SourceState.OPEN
        self._pump(now)

    def source_failed(self, method: Method, failure: Failure, *, now: float) -> None:
        """The fetch of `method` failed with `failure`."""
        source = self._fetching_source(method)
        if source is None:
            return
        self._fail_source(source, failure, now)
        self._pump(now)

    def attempt_verified(self, attempt_id: int, peer_id: NodeId, *, now: float) -> None:
        """BOOT-4.5: attempt `attempt_id` got a valid PONG from the node `peer_id`.

        The envelope's signature was checked by the node (ENV-2.1); here the
        signer must be the candidate: ``peer_id == SHA-256(candidate key)`` (ID-1.1).
        """
        running = self._running.get(attempt_id)
        if running is None or self._outcome.over:
            return  # late: cancelled or already over
        if peer_id != node_id_of(running.candidate.public_key):
            self.attempt_failed(attempt_id, Failure.WRONG_KEY, now=now)
            return
        self._move(running, Trigger.VERIFIED)
        self.counters.inc(RaceCounter.ATTEMPT_VERIFIED, label=running.candidate.method)
        del self._running[attempt_id]
        running.source.in_flight -= 1
        self._finish(now)
        self._actions.append(
            RaceWon(
                candidate=running.candidate,
                elapsed=now - self._t0,
                failures=tuple(self._outcome.failures),
            )
        )

    def attempt_failed(self, attempt_id: int, failure: Failure, *, now: float) -> None:
        running = self._running.get(attempt_id)
        if running is None or self._outcome.over:
            return
        self._end_attempt(attempt_id, running, Trigger.FAILED, failure, now)
        self._pump(now)

    def on_timer(self, *, now: float) -> None:
        for attempt_id, running in list(self._running.items()):
            if now >= running.started + self.config.timeout_for(running.candidate.reached_by):
                self._end_attempt(
                    attempt_id, running, Trigger.TIMEOUT, Failure.GENERIC_TIMEOUT, now
                )
                self._actions.append(CancelAttempt(attempt_id=attempt_id))
        for source in self._sources:
            if source.state is SourceState.FETCHING and (
                now >= source.fetch_started + self.config.fetch_timeout
            ):
                self._actions.append(CancelFetch(method=source.method))
                self._fail_source(source, Failure.GENERIC_TIMEOUT, now)
        self._pump(now)

    # --- outputs -----------------------------------------------------------------------

    def next_action(self) -> RaceAction | None:
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        if self._outcome.over:
            return None
        times = [
            r.started + self.config.timeout_for(r.candidate.reached_by)
            for r in self._running.values()
        ]
        for source in self._sources:
            if source.state is SourceState.WAITING:
                blocked = source.queue is None and self.in_flight >= self.config.max_in_flight
                if not blocked:  # a fetch held by the cap waits for a slot, not a time
                    times.append(self._t0 + source.offset)
            elif source.state is SourceState.FETCHING:
                times.append(source.fetch_started + self.config.fetch_timeout)
            elif self._has_slot(source):  # waiting only for the stagger, not for a slot
                times.append(self._ready_at(source))
        return min(times) if times else None

    @property
    def in_flight(self) -> int:
        """Attempts and fetches under way (BOOT-4.3 bounds it by `max_in_flight`)."""
        fetching = sum(1 for s in self._sources if s.state is SourceState.FETCHING)
        return len(self._running) + fetching

    @property
    def over(self) -> bool:
        return self._outcome.over

    @property
    def started_at(self) -> float:
        """The ``now`` the race began at; `Attempt` times are seconds after it."""
        return self._t0

    # --- internals ---------------------------------------------------------------------

    def _fetching_source(self, method: Method) -> _Source | None:
        for source in self._sources:
            if source.method is method and source.state is SourceState.FETCHING:
                return source
        return None  # late answer, or a fetch never asked for: ignored

    def _ready_at(self, source: _Source) -> float:
        """BOOT-4.3/4.4: the earliest time the next candidate of `source` may start."""
        ready = source.next_start
        head = source.queue[0] if source.queue else None
        if head is not None and not head.last_good:
            ready = max(ready, self._hold_until)
        return ready

    def _move(self, running: _Running, trigger: Trigger) -> None:
        target = TRANSITIONS[running.state].get(trigger)
        if target is None:
            raise LocalProtocolError(f"candidate {running.state.value} cannot take {trigger.value}")
        running.state = target

    def _end_attempt(
        self, attempt_id: int, running: _Running, trigger: Trigger, failure: Failure, now: float
    ) -> None:
        self._move(running, trigger)
        del self._running[attempt_id]
        source = running.source
        source.in_flight -= 1
        source.next_start = now  # BOOT-4.3: a failure starts the next candidate at once
        if running.candidate.last_good:
            self._hold_until = now  # BOOT-4.4: the head start ends with its failure
        self.counters.inc(RaceCounter.ATTEMPT_FAILED, label=failure)
        self._record(
            running.candidate.method, running.candidate.address, failure, running.started, now
        )

    def _record(
        self, method: Method, address: str, failure: Failure, started: float, now: float
    ) -> None:
        self._outcome.failures.append(
            Attempt(
                method=method,
                address=address,
                failure=failure,
                started=started - self._t0,
                ended=now - self._t0,
            )
        )

    def _fail_source(self, source: _Source, failure: Failure, now: float) -> None:
        if source.state is SourceState.FETCHING:
            self.counters.inc(RaceCounter.FETCH_FAILED, label=failure)
            self._record(source.method, "", failure, source.fetch_started, now)
        source.state = SourceState.FAILED
        self.counters.inc(RaceCounter.SOURCE_FAILED, label=source.method)

    def _finish(self, now: float) -> None:
        """The race is over: cancel every attempt and fetch still under way."""
        self._outcome.over = True
        for attempt_id, running in list(self._running.items()):
            self._move(running, Trigger.RACE_OVER)
            self._actions.append(CancelAttempt(attempt_id=attempt_id))
        self._running.clear()
        for source in self._sources:
            if source.state is SourceState.FETCHING:
                self._actions.append(CancelFetch(method=source.method))

    def _pump(self, now: float) -> None:
        if self._outcome.over:
            return
        for _ in range(len(self._sources) + 1):  # a source failing may open the next one
            self._open_sources(now)
            self._start_attempts(now)
            self._retire_sources(now)
        if all(s.state is SourceState.FAILED for s in self._sources):
            self._finish(now)
            self._actions.append(
                RaceFailed(elapsed=now - self._t0, failures=tuple(self._outcome.failures))
            )

    def _open_sources(self, now: float) -> None:
        """BOOT-4.2: open each source at its offset, or once every source before it failed."""
        earlier_failed = True
        for source in self._sources:
            due = now >= self._t0 + source.offset or earlier_failed
            if source.state is SourceState.WAITING and due:
                if source.queue is not None:
                    source.state = SourceState.OPEN
                elif self.in_flight < self.config.max_in_flight:
                    source.state = SourceState.FETCHING
                    source.fetch_started = now
                    self.counters.inc(RaceCounter.FETCH_STARTED, label=source.method)
                    self._actions.append(FetchCandidates(method=source.method))
            earlier_failed = earlier_failed and source.state is SourceState.FAILED

    def _start_attempts(self, now: float) -> None:
        """BOOT-4.3: start what the per-source and global limits and the stagger allow."""
        started = True
        while started:
            started = False
            for source in self._sources:
                if self.in_flight >= self.config.max_in_flight:
                    return
                if self._may_start(source, now):
                    assert source.queue is not None
                    self._start(source, source.queue.popleft(), now)
                    started = True

    def _has_slot(self, source: _Source) -> bool:
        return (
            source.state is SourceState.OPEN
            and bool(source.queue)
            and source.in_flight < self.config.per_source
            and self.in_flight < self.config.max_in_flight
        )

    def _may_start(self, source: _Source, now: float) -> bool:
        return self._has_slot(source) and now >= self._ready_at(source)

    def _start(self, source: _Source, candidate: Candidate, now: float) -> None:
        attempt_id = self._next_id
        self._next_id += 1
        self._running[attempt_id] = _Running(candidate=candidate, source=source, started=now)
        source.in_flight += 1
        source.started_any = True
        source.next_start = now + self.config.attempt_delay
        self.counters.inc(RaceCounter.ATTEMPT_STARTED, label=candidate.method)
        self._actions.append(StartAttempt(attempt_id=attempt_id, candidate=candidate))

    def _retire_sources(self, now: float) -> None:
        for source in self._sources:
            if source.state is SourceState.OPEN and not source.queue and source.in_flight == 0:
                if not source.started_any:
                    self._record(source.method, "", Failure.NO_CANDIDATES, now, now)
                self._fail_source(source, Failure.NO_CANDIDATES, now)


def _queue(candidates: Sequence[Candidate] | None) -> deque[Candidate] | None:
    """BOOT-4.4: the last-good peer first; otherwise the order given (deduplicated)."""
    if candidates is None:
        return None
    seen: set[tuple[bytes, str]] = set()
    unique = []
    for candidate in candidates:
        key = (candidate.public_key, candidate.address)
        if key not in seen:
            seen.add(key)
            unique.append(candidate)
    return deque(sorted(unique, key=lambda c: not c.last_good))


def _has_last_good(sources: Mapping[Method, Sequence[Candidate] | Failure | None]) -> bool:
    return any(
        c.last_good
        for cs in sources.values()
        if cs is not None and not isinstance(cs, Failure)
        for c in cs
    )
