"""Admission under load (POW-6): the proof-of-work queue in front of a service, sans-IO.

Theory of operation
===================

1. POW-6.3: a service that turns admission on serves at most ``rate``
   requests per second (a token bucket holding at most ``burst``). Each
   request, once it passed the service's own cheap checks (shape, signature,
   freshness), is *offered* with the solution it carries, if any: the
   `PowService` checks it (POW-3; a wrong, stale, reused or over-high one
   raises `PowError`, counted by reason) and queues it by effort (POW-4).
2. `ready` hands out, highest effort first, as many queued requests as the
   bucket holds tokens; `next_deadline` names when the next token is due.
3. A request shed from a full queue comes back from `shed` with the
   challenge its refusal carries (POW-6.2): the current seed and the
   suggested effort, at least the lowest non-zero effort, since a shed *is*
   overload even before the first effort update raised the price.
4. `challenge` is what other refusals carry: None while the suggested effort
   is 0, so a service that is not overloaded asks nobody for work (POW-5.1).

The gate holds the requests themselves (of any type `T`) so that the
service answers each one exactly once: served, refused, or shed.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar, assert_never

from railgun_ref.abuse.pow import (
    DEFAULT_CONFIG,
    EffortChanged,
    PowChallenge,
    PowConfig,
    PowService,
    PowSolution,
    SeedRotated,
    Shed,
)
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId

__all__ = ["MAX_POW_TRIES", "AdmissionGate", "SolvePow"]

#: SF-9.4, RLY-9.4: hashes a requester spends on one solution at most: under one core-second
#: at the 0.85 M BLAKE2b hashes per second the reference measured (0.94 s for the bound).
MAX_POW_TRIES: Final = 800_000


@dataclass(frozen=True, slots=True, kw_only=True)
class SolvePow:
    """SF-9.4, RLY-9.4: solve `challenge` (POW-2.1) for `service` as `requester`, trying at
    most `max_tries` nonces from `start`, off the core's thread, and hand the solution (or
    None) back to the core that asked, naming `token`."""

    token: int
    service: NodeId
    requester: NodeId
    challenge: PowChallenge
    start: bytes
    max_tries: int


T = TypeVar("T")

#: Tokens are floats: a refill at exactly the due time may land a hair below one.
_EPSILON = 1e-9


class AdmissionGate(Generic[T]):
    """POW-6: admission by proof of work in front of one service (see the module doc)."""

    def __init__(
        self,
        service_id: NodeId,
        random_bytes: Callable[[int], bytes],
        *,
        rate: float,
        burst: int = 1,
        config: PowConfig = DEFAULT_CONFIG,
        now: float,
    ) -> None:
        if not rate > 0 or burst < 1:
            raise LocalProtocolError("rate > 0 requests per second and burst >= 1")
        self.pow = PowService(service_id, random_bytes, config, now=now)
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._refilled_at = now
        self._items: dict[int, T] = {}
        self._next_id = 0
        self._shed: list[tuple[T, PowChallenge]] = []

    def offer(
        self, requester: NodeId, solution: PowSolution | None, item: T, *, now: float
    ) -> None:
        """POW-3, POW-4: check `solution` and queue `item`; `PowError` (counted) if refused."""
        self._next_id += 1
        self.pow.submit(requester, solution, self._next_id, now=now)
        self._items[self._next_id] = item
        self._collect()

    def ready(self, *, now: float) -> list[T]:
        """POW-4.2, POW-6.3: the requests to serve now, highest effort first."""
        self.on_timer(now=now)
        self._refill(now)
        served: list[T] = []
        while self._tokens >= 1 - _EPSILON and self.pow.waiting:
            admitted = self.pow.take(now=now)
            if admitted is None:
                break
            self._tokens -= 1
            served.append(self._items.pop(admitted.request_id))
        return served

    def shed(self) -> list[tuple[T, PowChallenge]]:
        """POW-4.1, POW-6.2: requests dropped from the full queue, each with its challenge."""
        shed, self._shed = self._shed, []
        return shed

    def challenge(self) -> PowChallenge | None:
        """POW-6.2: the price now, or None while the service asks for no work."""
        effort = self.pow.suggested_effort
        return None if effort == 0 else PowChallenge(seed=self.pow.seed, effort=effort)

    @property
    def waiting(self) -> int:
        return self.pow.waiting

    def on_timer(self, *, now: float) -> None:
        self.pow.on_timer(now=now)
        self._collect()

    def next_deadline(self) -> float | None:
        times = [self.pow.next_deadline()]
        if self.pow.waiting:
            times.append(self._refilled_at + max(0.0, 1 - self._tokens) / self.rate)
        return min(t for t in times if t is not None)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._refilled_at)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._refilled_at = max(now, self._refilled_at)

    def _collect(self) -> None:
        while (action := self.pow.next_action()) is not None:
            match action:
                case Shed(request_id=request_id, suggested_effort=effort):
                    price = max(effort, self.pow.config.min_effort)
                    challenge = PowChallenge(seed=self.pow.seed, effort=price)
                    self._shed.append((self._items.pop(request_id), challenge))
                case EffortChanged() | SeedRotated():
                    pass  # published with the next refusal (POW-6.2)
                case _:
                    assert_never(action)
