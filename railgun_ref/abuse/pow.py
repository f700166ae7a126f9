"""Adaptive proof-of-work for admission to relaying and storage (POW), after Tor's proposal 327.

Theory of operation
===================

1. POW-1: a *service* (a node offering relaying or storage) holds a random
   32-byte seed, replaced every ``seed_period``; it publishes the first four
   bytes of the seed (the *seed head*) and a *suggested effort* next to its
   capability advert.
2. POW-2: a requester with NodeId *q* asking service *s* picks an effort *E*
   and searches 16-byte nonces *n* until ``R * E <= 2^32 - 1`` where *R* is
   the first four bytes, big-endian, of ``BLAKE2b-256("railgun/v1/pow" || 0x00
   || seed || s || q || uint32_be(E) || n)``. That takes *E* hashes on
   average; checking it takes one. Effort 0 is "no work" and always holds.
   The solution is bound to the requester and to the seed, so it cannot be
   lent to another requester or kept for a later seed.
3. POW-3: the service accepts solutions under its current and previous seed
   (older ones are *stale*), keeps a replay cache per seed of (requester,
   nonce) and drops a seed's cache when the seed expires. Wrong, stale and
   reused solutions raise `PowError` and are counted.
4. POW-4: accepted requests wait in a priority queue by effort (then arrival
   order). When the queue is full the lowest effort is shed (`Shed`). The
   service handles requests from the front as it has capacity (`take`).
5. POW-5: every ``update_period`` the suggested effort moves from the
   service's *own load only*: if the service was overloaded during the
   period (it shed a request, or requests were still waiting at its end)
   the effort doubles (at least ``min_effort``, at most ``max_effort``);
   otherwise it falls to two thirds and below ``min_effort`` to 0. What
   requesters *offer* never enters it, so an attacker paying a high effort
   does not raise the price for others; only overload does, and it decays
   once the overload stops.

The hash is BLAKE2b rather than Tor's Equi-X: Equi-X (a memory-hard
asymmetric puzzle) has no Python implementation and would add a native
dependency; a plain hash puzzle is cheap to verify (one hash) and simple to
implement anywhere. Its weakness -- GPUs solve it much faster than a phone --
matters less here because the effort only prices *admission under load*
and adapts to what attackers pay.
"""

import hashlib
import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.wire.pow import (
    DEFAULT_MAX_EFFORT,
    NONCE_SIZE,
    SEED_HEAD_SIZE,
    SEED_SIZE,
    UINT32_MAX,
    PowChallenge,
    PowError,
    PowRefusal,
    PowSolution,
    challenge_from_value,
    decode_solution,
    encode_solution,
    solution_from_value,
    solution_value,
)

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_MAX_EFFORT",
    "NONCE_SIZE",
    "Admitted",
    "EffortChanged",
    "PowChallenge",
    "PowConfig",
    "PowCounter",
    "PowError",
    "PowRefusal",
    "PowService",
    "PowSolution",
    "SeedRotated",
    "Shed",
    "challenge_from_value",
    "decode_solution",
    "encode_solution",
    "pow_value",
    "solution_from_value",
    "solution_value",
    "solve",
    "solves",
]

POW_DOMAIN: Final = b"railgun/v1/pow\x00"


class PowCounter(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"  #: label: PowRefusal
    SHED = "shed"
    TAKEN = "taken"
    EFFORT_RAISED = "effort-raised"
    EFFORT_LOWERED = "effort-lowered"
    SEED_ROTATED = "seed-rotated"


def pow_value(seed: bytes, service: bytes, requester: bytes, effort: int, nonce: bytes) -> int:
    """POW-2.1: R, the first four bytes (big-endian) of the puzzle hash."""
    data = POW_DOMAIN + seed + service + requester + effort.to_bytes(4, "big") + nonce
    return int.from_bytes(hashlib.blake2b(data, digest_size=32).digest()[:4], "big")


def solves(seed: bytes, service: bytes, requester: bytes, solution: PowSolution) -> bool:
    """POW-2.1: does `solution` meet its effort for (seed, service, requester)?"""
    value = pow_value(seed, service, requester, solution.effort, solution.nonce)
    return value * solution.effort <= UINT32_MAX


def solve(
    seed: bytes, service: bytes, requester: bytes, effort: int, *, start: bytes, max_tries: int
) -> PowSolution | None:
    """POW-2.1: search nonces from `start` (16 injected random bytes) upward; None if none
    within `max_tries` (the requester's budget)."""
    if len(start) != NONCE_SIZE or not 0 <= effort <= UINT32_MAX:
        raise LocalProtocolError("start is 16 bytes, effort a uint32")
    prefix = POW_DOMAIN + seed + service + requester + effort.to_bytes(4, "big")
    bound = UINT32_MAX // effort if effort else UINT32_MAX
    first = int.from_bytes(start, "big")
    for i in range(max_tries):
        nonce = ((first + i) % 2 ** (8 * NONCE_SIZE)).to_bytes(NONCE_SIZE, "big")
        digest = hashlib.blake2b(prefix + nonce, digest_size=32).digest()
        if int.from_bytes(digest[:4], "big") <= bound:  # R * E <= 2^32 - 1
            return PowSolution(seed_head=seed[:SEED_HEAD_SIZE], nonce=nonce, effort=effort)
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class PowConfig:
    """POW parameters; each field names its clause."""

    seed_period: float = 3600.0  #: seconds a seed is current (POW-1.1)
    update_period: float = 60.0  #: seconds between effort updates (POW-5.1)
    queue_limit: int = 256  #: requests waiting at most (POW-4.1)
    min_effort: int = 16  #: the lowest non-zero suggested effort (POW-5.1)
    max_effort: int = DEFAULT_MAX_EFFORT  #: the highest effort accepted or suggested (POW-2.3)


DEFAULT_CONFIG: Final = PowConfig()


@dataclass(frozen=True, slots=True, kw_only=True)
class Shed:
    """POW-4.1: this request was dropped from a full queue; tell it the suggested effort."""

    request_id: int
    requester: NodeId
    suggested_effort: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EffortChanged:
    """POW-5.1: publish the new suggested effort (with the seed head) in the advert."""

    effort: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedRotated:
    """POW-1.1: publish the new seed head."""

    seed_head: bytes


Action = Shed | EffortChanged | SeedRotated


@dataclass(frozen=True, slots=True, kw_only=True)
class Admitted:
    """POW-4.2: the next request to serve, as `PowService.take` returns it."""

    request_id: int
    requester: NodeId
    effort: int


class PowService:
    """Admission by proof-of-work for one service (a sans-IO core, POW-1..POW-5)."""

    def __init__(
        self,
        service_id: NodeId,
        random_bytes: Callable[[int], bytes],
        config: PowConfig = DEFAULT_CONFIG,
        *,
        now: float,
    ) -> None:
        self.service_id = service_id
        self.config = config
        self.counters: Counters[PowCounter] = Counters()
        self._random = random_bytes
        self._seeds: list[bytes] = [random_bytes(SEED_SIZE)]  # current first, then previous
        self._seen: dict[bytes, set[tuple[NodeId, bytes]]] = {self._seeds[0]: set()}
        self._queue: list[tuple[int, int, int, NodeId]] = []  # (-effort, arrival, id, requester)
        self._arrivals = 0
        self._overloaded = False
        self.suggested_effort = 0
        self._next_rotation = now + config.seed_period
        self._next_update = now + config.update_period
        self._actions: deque[Action] = deque()

    @property
    def seed_head(self) -> bytes:
        return self._seeds[0][:SEED_HEAD_SIZE]

    @property
    def seed(self) -> bytes:
        """POW-6.2: the current seed, which a refusal for load hands the requester."""
        return self._seeds[0]

    # ---- inputs

    def submit(
        self, requester: NodeId, solution: PowSolution | None, request_id: int, *, now: float
    ) -> None:
        """POW-3, POW-4: check `solution` (None: effort 0) and queue the request.

        Raises `PowError` (counted) for a wrong, stale, reused or over-high solution.
        """
        self.on_timer(now=now)
        try:
            effort = 0 if solution is None else self._check(requester, solution)
        except PowError as exc:
            self.counters.inc(PowCounter.REFUSED, label=exc.refusal)
            raise
        self.counters.inc(PowCounter.ACCEPTED)
        self._arrivals += 1
        heapq.heappush(self._queue, (-effort, self._arrivals, request_id, requester))
        if len(self._queue) > self.config.queue_limit:
            self._shed_lowest()

    def take(self, *, now: float) -> Admitted | None:
        """POW-4.2: the highest-effort waiting request (earliest first among equals)."""
        self.on_timer(now=now)
        if not self._queue:
            return None
        effort, _, request_id, requester = heapq.heappop(self._queue)
        self.counters.inc(PowCounter.TAKEN)
        return Admitted(request_id=request_id, requester=requester, effort=-effort)

    def on_timer(self, *, now: float) -> None:
        while now >= self._next_rotation:
            self._next_rotation += self.config.seed_period
            self._rotate()
        if now >= self._next_update:
            periods = int((now - self._next_update) // self.config.update_period) + 1
            self._next_update += periods * self.config.update_period
            for _ in range(min(periods, 64)):  # after 64 quiet periods any effort is 0
                self._update_effort()

    def next_deadline(self) -> float | None:
        return min(self._next_rotation, self._next_update)

    def next_action(self) -> Action | None:
        return self._actions.popleft() if self._actions else None

    @property
    def waiting(self) -> int:
        return len(self._queue)

    # ---- internals

    def _check(self, requester: NodeId, solution: PowSolution) -> int:
        if solution.effort > self.config.max_effort:
            raise PowError(PowRefusal.EFFORT_TOO_HIGH, f"effort over {self.config.max_effort}")
        seed = next((s for s in self._seeds if s[:SEED_HEAD_SIZE] == solution.seed_head), None)
        if seed is None:
            raise PowError(PowRefusal.STALE, "unknown or expired seed")
        if not solves(seed, self.service_id, requester, solution):
            raise PowError(PowRefusal.WRONG, "hash does not meet the effort")
        seen = self._seen[seed]
        if (requester, solution.nonce) in seen:
            raise PowError(PowRefusal.REUSED, "solution already used")
        seen.add((requester, solution.nonce))
        return solution.effort

    def _shed_lowest(self) -> None:
        lowest = max(self._queue)  # least effort, latest arrival
        self._queue.remove(lowest)
        heapq.heapify(self._queue)
        self._overloaded = True
        self.counters.inc(PowCounter.SHED)
        self._actions.append(
            Shed(request_id=lowest[2], requester=lowest[3], suggested_effort=self.suggested_effort)
        )

    def _rotate(self) -> None:
        """POW-1.1, POW-3.1: a new current seed; the one before the previous expires."""
        seed = self._random(SEED_SIZE)
        if len(seed) != SEED_SIZE:
            raise LocalProtocolError("random_bytes returned the wrong size")
        self._seeds = [seed, self._seeds[0]]
        self._seen = {s: self._seen.get(s, set()) for s in self._seeds}
        self.counters.inc(PowCounter.SEED_ROTATED)
        self._actions.append(SeedRotated(seed_head=self.seed_head))

    def _update_effort(self) -> None:
        """POW-5.1: from the service's own load during the last period, nothing else."""
        config = self.config
        old = self.suggested_effort
        if self._overloaded or self._queue:
            new = min(config.max_effort, max(config.min_effort, old * 2))
        else:
            new = old * 2 // 3
            if new < config.min_effort:
                new = 0
        self._overloaded = False
        if new != old:
            self.suggested_effort = new
            name = PowCounter.EFFORT_RAISED if new > old else PowCounter.EFFORT_LOWERED
            self.counters.inc(name)
            self._actions.append(EffortChanged(effort=new))
