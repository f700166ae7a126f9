"""`railgun-ref bench detectors`: the baseline threshold rule vs phi-accrual, same traces.

Both detectors watch the same simulated link to the central service:
per-packet loss (default 5 %), uniform jitter (default ±100 ms) on a base
RTT, and TCP-like retransmission (a lost request or response costs an RTO
of 1 s, doubling) so loss mostly shows up as delay, as it does for a health
check over a real connection. A check slower than `check_timeout` fails
with `generic_timeout`.

* Detection: the service is taken down at a random time after a warm-up;
  from then on every check fails at once (connection refused). Reported:
  time from takedown to the detector's suspicion, median / p95 / max over
  `trials` takedowns.
* False failovers: the service stays healthy for `client_hours`; every time
  a detector starts suspecting it counts one false failover (an episode ends
  at the next successful check). Reported per 1,000 client-hours.

The threshold rule checks every 30 s (the default `awsHealthCheckInterval`)
and fails over after 3 failures (`awsFailureThreshold`), a check slower than
2 s counting as failed (`awsLatencyThreshold`). Phi-accrual uses 1 s
heartbeats and the threshold given. Time is virtual: 1,000 client-hours of
1 s heartbeats is 3.6 million checks, a few seconds of computing.
"""

import functools
import heapq
import json
import random
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from railgun_ref.transport.health import (
    FailureLabel,
    HealthResult,
    PhiAccrualDetector,
    ThresholdDetector,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkModel:
    loss: float = 0.05  #: per-packet loss probability
    jitter: float = 0.1  #: uniform +- seconds on each check
    rtt: float = 0.05  #: base round-trip time, seconds
    rto: float = 1.0  #: first retransmission timeout, seconds (doubles)
    check_timeout: float = 5.0  #: a check slower than this fails, seconds

    def check_latency(self, rng: random.Random) -> float | None:
        """Latency of one healthy check, or None if it times out."""
        latency = max(0.001, self.rtt + rng.uniform(-self.jitter, self.jitter))
        for _packet in range(2):  # request and response
            rto = self.rto
            while rng.random() < self.loss:
                latency += rto
                rto *= 2
                if latency > self.check_timeout:
                    return None
        return latency if latency <= self.check_timeout else None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _threshold_trial(
    link: LinkModel,
    rng: random.Random,
    *,
    interval: float,
    threshold: int,
    latency: float,
    takedown: float | None,
    horizon: float,
) -> tuple[float | None, int]:
    """Returns (detection delay, false suspicions before the takedown)."""
    detector = ThresholdDetector(failure_threshold=threshold, latency_threshold=latency)
    false_alarms = 0
    suspected = False
    t = rng.uniform(0, interval)
    while t < horizon:
        if takedown is not None and t >= takedown:
            result = HealthResult(at=t, ok=False, label=FailureLabel.CONNECTION_REFUSED)
        else:
            delay = link.check_latency(rng)
            result = (
                HealthResult(at=t + delay, ok=True, latency=delay)
                if delay is not None
                else HealthResult(
                    at=t + link.check_timeout, ok=False, label=FailureLabel.GENERIC_TIMEOUT
                )
            )
        detector.observe(result)
        now_suspects = detector.suspects(now=result.at)
        if now_suspects and not suspected:
            if takedown is not None and result.at >= takedown:
                return result.at - takedown, false_alarms
            false_alarms += 1
        suspected = now_suspects
        t += interval
    return None, false_alarms


def _phi_trial(
    link: LinkModel,
    rng: random.Random,
    *,
    interval: float,
    phi: float,
    pause: float,
    takedown: float | None,
    horizon: float,
) -> tuple[float | None, int]:
    """Heartbeats are processed in *arrival* order (a retransmitted one can be overtaken)."""
    detector = PhiAccrualDetector(threshold=phi, first_interval=interval, acceptable_pause=pause)
    false_alarms = 0
    in_flight: list[tuple[float, float]] = []  # (arrival, latency)

    def arrive_until(limit: float) -> None:
        nonlocal false_alarms
        while in_flight and in_flight[0][0] <= limit:
            arrival, delay = heapq.heappop(in_flight)
            suspicion = detector.suspicion_time()
            if suspicion is not None and suspicion < arrival:
                false_alarms += 1  # the silence outlasted phi before this heartbeat came
            detector.observe(HealthResult(at=arrival, ok=True, latency=delay))

    t = 0.0
    while t < horizon:
        if takedown is not None and t >= takedown:
            arrive_until(takedown + link.check_timeout)  # answers already on their way
            suspicion = detector.suspicion_time()
            assert suspicion is not None
            return max(0.0, suspicion - takedown), false_alarms
        delay = link.check_latency(rng)
        if delay is not None and (takedown is None or t + delay < takedown):
            heapq.heappush(in_flight, (t + delay, delay))
        arrive_until(t)
        t += interval
    return None, false_alarms


def _one_trial(
    link: LinkModel,
    rng: random.Random,
    *,
    kind: str,
    interval: float,
    phi_threshold: float,
    acceptable_pause: float,
    takedown: float | None,
    horizon: float,
) -> tuple[float | None, int]:
    """One run of the `kind` detector ("threshold": 3 failures or 2 s latency; "phi")."""
    if kind == "threshold":
        return _threshold_trial(
            link,
            rng,
            interval=interval,
            threshold=3,
            latency=2.0,
            takedown=takedown,
            horizon=horizon,
        )
    return _phi_trial(
        link,
        rng,
        interval=interval,
        phi=phi_threshold,
        pause=acceptable_pause,
        takedown=takedown,
        horizon=horizon,
    )


def _detector_row(
    link: LinkModel,
    rng: random.Random,
    *,
    kind: str,
    trials: int,
    client_hours: float,
    phi_threshold: float,
    acceptable_pause: float,
) -> dict[str, Any]:
    """Detection delays over `trials` takedowns, then false failovers on a healthy service."""
    interval = (kind == "threshold" and 30.0) or 1.0
    warmup = 600.0 if kind == "threshold" else 120.0
    trial = functools.partial(
        _one_trial,
        link,
        rng,
        kind=kind,
        interval=interval,
        phi_threshold=phi_threshold,
        acceptable_pause=acceptable_pause,
    )
    delays: list[float] = []
    for _ in range(trials):
        takedown = warmup + rng.uniform(0, interval * 3)
        delay, _ = trial(takedown=takedown, horizon=takedown + 600.0)
        if delay is not None:
            delays.append(delay)
    # False failovers: healthy service, in 100 clients' worth of hours.
    clients = 100
    per_client = client_hours * 3600.0 / clients
    false_alarms = 0
    for _ in range(clients):
        _, alarms = trial(takedown=None, horizon=per_client)
        false_alarms += alarms
    return {
        "check_interval_s": interval,
        "takedowns": trials,
        "detected": len(delays),
        "detection_s": {
            "median": round(statistics.median(delays), 3),
            "p95": round(_percentile(delays, 0.95), 3),
            "max": round(max(delays), 3),
        },
        "client_hours": client_hours,
        "false_failovers": false_alarms,
        "false_failovers_per_1000_client_hours": round(false_alarms * 1000 / client_hours, 3),
    }


def run(
    *,
    seed: int = 1,
    trials: int = 500,
    client_hours: float = 1000.0,
    phi_threshold: float = 8.0,
    acceptable_pause: float = 2.0,
    link: LinkModel | None = None,
) -> dict[str, Any]:
    link = link or LinkModel()
    rng = random.Random(seed)
    out: dict[str, Any] = {"benchmark": "detectors", "seed": seed, "link": asdict(link)}
    configs = {
        "threshold_30s_x3": {"kind": "threshold", "interval": 30.0},
        f"phi_1s_{phi_threshold:g}": {"kind": "phi", "interval": 1.0},
    }
    for name, cfg in configs.items():
        out[name] = _detector_row(
            link,
            rng,
            kind=str(cfg["kind"]),
            trials=trials,
            client_hours=client_hours,
            phi_threshold=phi_threshold,
            acceptable_pause=acceptable_pause,
        )
    phi = out[f"phi_1s_{phi_threshold:g}"]
    out["goal_adaptive"] = {
        "detection_p95_le_10s": phi["detection_s"]["p95"] <= 10.0,
        "false_failovers_le_1_per_1000h": phi["false_failovers_per_1000_client_hours"] <= 1.0,
    }
    return out


def main(*, json_output: bool, seed: int, client_hours: float, phi_threshold: float) -> int:
    result = run(seed=seed, client_hours=client_hours, phi_threshold=phi_threshold)
    print(json.dumps(result, indent=2) if json_output else result)
    return 0
