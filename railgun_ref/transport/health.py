"""Central-service health: failure labels and the two failure detectors (HT-2.x).

A health check is done by a driver (DNS lookup, TCP connect, HTTP GET
``/health``) and reported here as a `HealthResult`: success with a latency, or
failure with a label in the vocabulary network-measurement tools use (OONI's
``dns_nxdomain``, ``generic_timeout``, ``connection_refused``...), so a
researcher can tell *how* the service was blocked.

Two detectors decide when the central path counts as down:

* `ThresholdDetector` is the baseline failover rule: down after `failure_threshold`
  consecutive failed checks, where a check slower than `latency_threshold`
  counts as failed (HT-2.2). With 30 s checks and 3 failures it detects a
  takedown 60–90 s after it happens.
* `PhiAccrualDetector` (Hayashibara et al., SRDS 2004) treats successful
  checks as heartbeats, models their inter-arrival times as a normal
  distribution over a sliding window, and suspects the service when
  ``phi = -log10(P(no heartbeat for this long))`` reaches a threshold (HT-2.3).
  With 1 s checks it detects in seconds, and adapts to jitter instead of
  flapping on it.

Both are pure: results and `now` in, a verdict out.

How long one check may take is `CheckTimeout` (HT-2.5): the configured
timeout is a floor, and the latencies of answered checks (late answers to
checks that already timed out included) raise it as RFC 6298 raises a
retransmission timeout, up to the latency threshold, beyond which an answer
counts as failed anyway.
"""

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class FailureLabel(Enum):
    """HT-2.1: why a health check failed (OONI-style failure strings)."""

    DNS_NXDOMAIN = "dns_nxdomain"  #: the resolver says the name does not exist
    DNS_SERVFAIL = "dns_servfail"  #: the resolver failed (or refused)
    DNS_TIMEOUT = "dns_timeout"  #: no answer from the resolver
    GENERIC_TIMEOUT = "generic_timeout"  #: TCP connect or HTTP exchange timed out
    CONNECTION_REFUSED = "connection_refused"  #: TCP RST to the SYN
    CONNECTION_RESET = "connection_reset"  #: TCP RST after connecting
    HTTP_ERROR = "http_error"  #: an HTTP status other than 200
    INVALID_RESPONSE = "invalid_response"  #: a 200 whose body is not a health answer
    HIGH_LATENCY = "high_latency"  #: answered, but slower than the latency threshold


#: Labels that mean "the name itself is blocked" (scenario 1) rather than the address.
DNS_FAILURES = frozenset(
    {FailureLabel.DNS_NXDOMAIN, FailureLabel.DNS_SERVFAIL, FailureLabel.DNS_TIMEOUT}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthResult:
    at: float  #: when the check ended (now), seconds
    ok: bool
    latency: float | None = None  #: seconds, when the service answered
    label: FailureLabel | None = None  #: why it failed, when it did

    def __post_init__(self) -> None:
        if self.ok and self.label is not None:
            raise ValueError("a successful check has no failure label")
        if not self.ok and self.label is None:
            raise ValueError("a failed check needs a failure label")


class CheckTimeout:
    """HT-2.5: a health check's deadline from the latencies of answered checks.

    RFC 6298 §2 applied to whole checks: SRTT and RTTVAR (gains 1/8 and 1/4)
    over every sample, and the deadline SRTT + 4·RTTVAR within [`floor`,
    `ceiling`]; `floor` until the first sample. A check that times out gives
    no sample and changes nothing (no back-off, RFC 6298 §5.5), so silence is
    still detected within `failure_threshold` x `ceiling`. The P2P probe
    timeout of HT-6.8 is the same estimator per member.
    """

    def __init__(self, *, floor: float, ceiling: float) -> None:
        if not 0 < floor <= ceiling:
            raise ValueError("need 0 < floor <= ceiling")
        self.floor = floor
        self.ceiling = ceiling
        self.srtt: float | None = None  #: smoothed latency, seconds (None: no sample yet)
        self.rttvar = 0.0  #: its mean deviation, seconds

    def observe(self, latency: float) -> None:
        """One answered check's latency, seconds (RFC 6298 §2.2, §2.3)."""
        if latency < 0:
            raise ValueError("a latency is not negative")
        if self.srtt is None:
            self.srtt, self.rttvar = latency, latency / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - latency)
            self.srtt = 0.875 * self.srtt + 0.125 * latency

    @property
    def timeout(self) -> float:
        """Seconds the next check may take before it fails (``generic_timeout``)."""
        if self.srtt is None:
            return self.floor
        return min(self.ceiling, max(self.floor, self.srtt + 4 * self.rttvar))


class FailureDetector(Protocol):
    """What the transport service asks of a detector (HT-2.2, HT-2.3)."""

    def classify(self, result: HealthResult) -> HealthResult:
        """The result as this detector counts it (a slow success may count as a failure)."""
        ...

    def observe(self, result: HealthResult) -> None:
        """Take one check result into account."""
        ...

    def suspects(self, *, now: float) -> bool:
        """Whether the central service counts as down at `now`."""
        ...

    def suspicion_time(self) -> float | None:
        """When silence alone will make the detector suspect (None: only results can)."""
        ...


class ThresholdDetector:
    """HT-2.2: the baseline failover rule — N consecutive failures (slow counts as failed)."""

    def __init__(self, *, failure_threshold: int = 3, latency_threshold: float = 2.0) -> None:
        if failure_threshold < 1 or latency_threshold <= 0:
            raise ValueError("failure_threshold >= 1 and latency_threshold > 0")
        self.failure_threshold = failure_threshold
        self.latency_threshold = latency_threshold
        self.consecutive_failures = 0

    def classify(self, result: HealthResult) -> HealthResult:
        """A success slower than the latency threshold becomes a HIGH_LATENCY failure."""
        if result.ok and result.latency is not None and result.latency > self.latency_threshold:
            return HealthResult(
                at=result.at, ok=False, latency=result.latency, label=FailureLabel.HIGH_LATENCY
            )
        return result

    def observe(self, result: HealthResult) -> None:
        if self.classify(result).ok:
            self.consecutive_failures = 0
        else:
            self.consecutive_failures += 1

    def suspects(self, *, now: float) -> bool:
        return self.consecutive_failures >= self.failure_threshold

    def suspicion_time(self) -> float | None:
        """Never: the baseline rule moves only on check results, not on silence."""
        return None


class PhiAccrualDetector:
    """HT-2.3: phi-accrual failure detection over successful checks as heartbeats.

    `min_std` keeps phi finite when checks are perfectly regular (as they are
    in a quiet simulation), and `acceptable_pause` widens the tolerance for a
    known pause, as in Akka's implementation of the same detector. The window
    statistics are kept as running sums, so each heartbeat costs O(1).

    `suspects` and `suspicion_time` are one formula (phi has reached the
    threshold once `now >= suspicion_time()`), so a driver that sets its timer
    to `suspicion_time()` finds the detector suspecting when it fires. A
    heartbeat that ends a suspected silence restarts the window (HT-2.3): the
    outage is not an inter-arrival time of the service, and left in the window
    it would inflate the mean so much that the next takedown, soon after the
    failback, is detected minutes late instead of seconds.
    """

    def __init__(
        self,
        *,
        threshold: float = 8.0,
        window: int = 100,
        min_std: float = 0.1,
        acceptable_pause: float = 0.0,
        first_interval: float = 1.0,
    ) -> None:
        if threshold <= 0 or window < 2 or min_std <= 0 or acceptable_pause < 0:
            raise ValueError("invalid phi-accrual parameters")
        self.threshold = threshold
        self.min_std = min_std
        self.acceptable_pause = acceptable_pause
        self._window = window
        self._intervals: deque[float] = deque()
        self._sum = 0.0
        self._sum_sq = 0.0
        self._last: float | None = None
        self._first_interval = first_interval
        self._z = _inverse_survival(10.0 ** (-threshold))

    def classify(self, result: HealthResult) -> HealthResult:
        """Unchanged: a slow heartbeat is still a heartbeat (its lateness is the signal)."""
        return result

    def observe(self, result: HealthResult) -> None:
        if not result.ok:
            return  # only heartbeats count; failures show up as silence
        if self.suspects(now=result.at):
            self._restart(result.at)  # the service is back after a suspected silence
            return
        if self._last is not None:
            interval = result.at - self._last
            self._intervals.append(interval)
            self._sum += interval
            self._sum_sq += interval * interval
            if len(self._intervals) > self._window:
                old = self._intervals.popleft()
                self._sum -= old
                self._sum_sq -= old * old
        self._last = result.at

    def _restart(self, at: float) -> None:
        """Forget the intervals: the model starts again from `first_interval` at `at`."""
        self._intervals.clear()
        self._sum = 0.0
        self._sum_sq = 0.0
        self._last = at

    def _mean_std(self) -> tuple[float, float]:
        n = len(self._intervals)
        if n == 0:
            return self._first_interval + self.acceptable_pause, self._first_interval / 4
        mean = self._sum / n
        variance = max(self._sum_sq / n - mean * mean, 0.0)
        return mean + self.acceptable_pause, max(math.sqrt(variance), self.min_std)

    def phi(self, *, now: float) -> float:
        if self._last is None:
            return 0.0
        mean, std = self._mean_std()
        # P(X > elapsed) for X ~ N(mean, std), via the complementary error function.
        p_later = 0.5 * math.erfc((now - self._last - mean) / (std * math.sqrt(2)))
        return -math.log10(max(p_later, 1e-300))

    def suspects(self, *, now: float) -> bool:
        """phi has reached the threshold: `now` is at or past `suspicion_time()` (HT-2.3)."""
        when = self.suspicion_time()
        return when is not None and now >= when

    def suspicion_time(self) -> float | None:
        """When phi will cross the threshold if no heartbeat arrives (None before the first).

        phi is monotonic in the silence, so this is exact: a driver can set
        one timer instead of polling.
        """
        if self._last is None:
            return None
        mean, std = self._mean_std()
        return self._last + mean + std * self._z


def _inverse_survival(p: float) -> float:
    """z with P(N(0,1) > z) = p, by bisection on erfc (p in (0, 0.5])."""
    low, high = 0.0, 40.0
    for _ in range(200):
        mid = (low + high) / 2
        if 0.5 * math.erfc(mid / math.sqrt(2)) > p:
            low = mid
        else:
            high = mid
    return (low + high) / 2
