"""Cover traffic by slot taking (PRIV-4), after Loopix (Piotrowska et al., USENIX Security 2017).

Theory of operation
===================

1. A node with cover enabled sends exactly one message per *slot*. Slot gaps
   are drawn independently: uniform in ``interval_s ± jitter_s`` or
   exponential with mean ``interval_s`` (PRIV-4.1). The gap law does not
   depend on whether the user is active, so inter-arrival times seen by a
   relay carry no activity signal.
2. A real message is queued and *takes the next slot* (PRIV-4.2): it is never
   sent in addition to a slot. Sending cover on top of real traffic would make
   gaps shorter than the jitter allows, which an observer detects with
   certainty (``bench privacy``'s negative control). The price is latency: the
   mean wait is E[G^2] / (2 E[G]) for a gap G, 15.6 s at uniform 20..40 s.
3. An empty slot sends cover: a real room message (the E2EE content type
   COVER, PRIV-4.4) to a destination drawn from the node's real destinations,
   in a bucket drawn from the mix of real buckets (PRIV-4.3). Only a member
   that opened it knows it was cover, and drops it after decryption.
4. Burst rule (PRIV-4.5): while a real message still waits after a slot, the next gap
   is ``interval_s / burst_speedup`` instead, for at most ``burst_slots`` slots
   per ``burst_window_s``. This leaks that a burst happened; it is the bound
   on how much it can leak. A queue over ``queue_bound`` refuses the message
   (the caller sends it by another path or later).
5. Budget (PRIV-4.6): cover bytes per day are capped at
   ``budget_bytes_per_day``; when spent, empty slots stay empty until the day
   window turns. Real messages always take their slot. A spent budget shows
   as silence, a leak the spec states.

Sans-IO: randomness is an injected ``random.Random``; time is ``now``.
"""

import math
import random
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.privacy.padding import FRAME_BUCKETS

DAY_S: Final = 86_400.0
K = TypeVar("K", int, bytes)


class GapLaw(StrEnum):
    """PRIV-4.1: how slot gaps are drawn."""

    UNIFORM = "uniform"
    EXPONENTIAL = "exponential"


@dataclass(frozen=True, slots=True, kw_only=True)
class CoverProfile:
    """PRIV-4: one cover-traffic setting (seconds unless stated)."""

    name: str
    enabled: bool
    interval_s: float = 30.0  #: mean slot gap (the design's ``intervalMs 30000``)
    jitter_s: float = 10.0  #: half-width of a uniform gap (``jitterMs 10000``)
    law: GapLaw = GapLaw.UNIFORM
    queue_bound: int = 64  #: PRIV-4.5: real messages waiting at most
    burst_speedup: float = 4.0  #: PRIV-4.5: a burst slot comes this much sooner
    burst_slots: int = 8  #: PRIV-4.5: burst slots per window at most
    burst_window_s: float = 3600.0
    budget_bytes_per_day: int = 200 * 2**20  #: PRIV-4.6: cover bytes a day at most

    def __post_init__(self) -> None:
        if self.enabled and not 0 <= self.jitter_s < self.interval_s:
            raise LocalProtocolError("cover needs 0 <= jitter_s < interval_s")
        if self.queue_bound < 1 or self.burst_speedup < 1 or self.burst_slots < 0:
            raise LocalProtocolError("queue_bound >= 1, burst_speedup >= 1, burst_slots >= 0")

    def mean_wait_s(self) -> float:
        """PRIV-4.2: the mean wait of a real message for its slot, E[G^2] / (2 E[G])."""
        if not self.enabled:
            return 0.0
        if self.law is GapLaw.EXPONENTIAL:
            return self.interval_s
        second_moment = self.interval_s**2 + (2 * self.jitter_s) ** 2 / 12
        return second_moment / (2 * self.interval_s)

    def bytes_per_day(self, bucket: int) -> float:
        """PRIV-4.6: bytes a day one node sends when every slot carries `bucket` bytes."""
        return 0.0 if not self.enabled else DAY_S / self.interval_s * bucket


#: PRIV-4.1: the design's defaults, a faster interactive setting, and off.
DEFAULT: Final = CoverProfile(name="default", enabled=True)
INTERACTIVE: Final = CoverProfile(
    name="interactive", enabled=True, interval_s=3.0, jitter_s=1.0, budget_bytes_per_day=40 * 2**20
)
OFF: Final = CoverProfile(name="off", enabled=False)
PROFILES: Final = {p.name: p for p in (DEFAULT, INTERACTIVE, OFF)}


class CoverCounter(StrEnum):
    REAL_SENT = "cover.real_sent"
    COVER_SENT = "cover.cover_sent"
    BURST_SLOT = "cover.burst_slot"
    QUEUE_FULL = "cover.queue_full"
    BUDGET_SPENT = "cover.budget_spent"
    NO_DESTINATION = "cover.no_destination"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """A real message waiting for a slot: its id, padded size and destination (opaque)."""

    message_id: bytes
    bucket: int
    destination: bytes
    submitted_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EmitReal:
    """Send `message` now (its slot came); `waited_s` is the latency slot taking added."""

    message: Outgoing
    slot_at: float
    waited_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EmitCover:
    """Send one cover message of `bucket` bytes to `destination` now (PRIV-4.3)."""

    bucket: int
    destination: bytes
    slot_at: float


CoverAction = EmitReal | EmitCover


def gap_from_unit(profile: CoverProfile, unit: float) -> float:
    """PRIV-4.1: the slot gap for a uniform draw `unit` in [0, 1)."""
    if not 0.0 <= unit < 1.0:
        raise LocalProtocolError("a unit draw is in [0, 1)")
    if profile.law is GapLaw.EXPONENTIAL:
        return -profile.interval_s * math.log(1.0 - unit)
    return profile.interval_s - profile.jitter_s + 2 * profile.jitter_s * unit


#: PRIV-4.3: the bucket mix assumed before any real message was seen (weights).
PRIOR_MIX: Final = {256: 90, 4096: 9, 65536: 1}


class CoverScheduler:
    """PRIV-4: the slot scheduler of one node (a `ProtocolCore[CoverAction]`)."""

    def __init__(
        self,
        profile: CoverProfile,
        *,
        rng: random.Random,
        now: float,
        prior_mix: Mapping[int, int] = PRIOR_MIX,
    ) -> None:
        """`prior_mix`: PRIV-4.3's starting weights per bucket (the population's mix)."""
        self.profile = profile
        self.counters: Counters[CoverCounter] = Counters()
        self._rng = rng
        self._queue: deque[Outgoing] = deque()
        self._actions: deque[CoverAction] = deque()
        self._mix: Counter[int] = Counter(prior_mix)
        self._destinations: Counter[bytes] = Counter()
        self._burst_used: deque[float] = deque()
        self._day_start = now
        self._day_bytes = 0
        self._next_slot: float | None = now + self._gap() if profile.enabled else None

    # ------------------------------------------------------------ inputs
    def add_destination(self, destination: bytes, weight: int = 1) -> None:
        """PRIV-4.3: a place cover may go (a relay, storage peer or member), by weight."""
        self._destinations[destination] += weight

    def submit(self, message: Outgoing, *, now: float) -> bool:
        """PRIV-4.2: queue a real message for the next slot; False if refused (PRIV-4.5)."""
        if message.bucket not in FRAME_BUCKETS:
            raise LocalProtocolError(f"{message.bucket} is not a bucket")
        self._mix[message.bucket] += 1
        self._destinations[message.destination] += 1
        if not self.profile.enabled:
            self.counters.inc(CoverCounter.REAL_SENT)
            self._actions.append(EmitReal(message=message, slot_at=now, waited_s=0.0))
            return True
        if len(self._queue) >= self.profile.queue_bound:
            self.counters.inc(CoverCounter.QUEUE_FULL)
            return False
        self._queue.append(message)
        return True

    def on_timer(self, *, now: float) -> None:
        while self._next_slot is not None and self._next_slot <= now:
            slot = self._next_slot
            self._take_slot(slot)
            self._next_slot = slot + self._next_gap(slot)

    # ------------------------------------------------------------ outputs
    def next_deadline(self) -> float | None:
        return self._next_slot

    def next_action(self) -> CoverAction | None:
        return self._actions.popleft() if self._actions else None

    @property
    def queued(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------ slots
    def _take_slot(self, slot: float) -> None:
        if self._queue:
            message = self._queue.popleft()
            self.counters.inc(CoverCounter.REAL_SENT)
            waited = slot - message.submitted_at
            self._actions.append(EmitReal(message=message, slot_at=slot, waited_s=waited))
            return
        if not self._destinations:
            self.counters.inc(CoverCounter.NO_DESTINATION)
            return
        bucket = self._draw(self._mix)
        if slot - self._day_start >= DAY_S:
            self._day_start, self._day_bytes = slot, 0
        if self._day_bytes + bucket > self.profile.budget_bytes_per_day:
            self.counters.inc(CoverCounter.BUDGET_SPENT)
            return
        self._day_bytes += bucket
        self.counters.inc(CoverCounter.COVER_SENT)
        destination = self._draw(self._destinations)
        self._actions.append(EmitCover(bucket=bucket, destination=destination, slot_at=slot))

    def _next_gap(self, slot: float) -> float:
        """PRIV-4.5: a burst slot while a real message still waits and credit lasts."""
        window = self.profile.burst_window_s
        while self._burst_used and self._burst_used[0] <= slot - window:
            self._burst_used.popleft()
        if self._queue and len(self._burst_used) < self.profile.burst_slots:
            self._burst_used.append(slot)
            self.counters.inc(CoverCounter.BURST_SLOT)
            return self._gap() / self.profile.burst_speedup
        return self._gap()

    def _gap(self) -> float:
        """PRIV-4.1: one slot gap, independent of activity."""
        return gap_from_unit(self.profile, self._rng.random())

    def _draw(self, weights: Counter[K]) -> K:
        keys = sorted(weights, key=repr)
        return self._rng.choices(keys, weights=[weights[k] for k in keys])[0]
