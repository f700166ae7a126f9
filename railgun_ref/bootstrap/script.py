"""A scripted network for the race (BOOT-4 vectors, tests, the sequential baseline).

Each candidate address and each fetched source has a scripted outcome: answer
after some seconds (a PONG from the right key, from a wrong key, or a failure
label), or never (a blackhole). `run_script` plays a `Race` against it in
virtual time, exactly as a driver would (drain actions after every input,
`on_timer` at `next_deadline`), and returns the timeline of actions, the
outcome and the largest number of attempts in flight. Pure and
deterministic: the same script gives the same timeline in any implementation.
"""

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from railgun_ref.bootstrap.race import (
    CancelAttempt,
    CancelFetch,
    Candidate,
    Failure,
    FetchCandidates,
    Method,
    Race,
    RaceAction,
    RaceConfig,
    RaceFailed,
    RaceWon,
    StartAttempt,
)
from railgun_ref.identity.keys import node_id_of

__all__ = ["Outcome", "ScriptResult", "run_script"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What the network does with one attempt or fetch: after `delay` s, or never (None)."""

    delay: float | None
    failure: Failure | None = None  #: None: success (a PONG, or candidates found)
    signer: bytes | None = None  #: a PONG from this key instead of the candidate's
    found: tuple[Candidate, ...] = ()  #: what a successful fetch returns


@dataclass(slots=True)
class ScriptResult:
    timeline: list[dict[str, Any]] = field(default_factory=list)
    outcome: RaceWon | RaceFailed | None = None
    max_in_flight: int = 0


@dataclass(slots=True)
class _Player:
    race: Race
    t0: float
    fetches: Mapping[Method, Outcome]
    attempts: Mapping[str, Outcome]
    result: ScriptResult = field(default_factory=ScriptResult)
    heap: list[tuple[float, int, Callable[[float], None]]] = field(default_factory=list)
    live: set[int] = field(default_factory=set)  #: attempt ids not cancelled
    seq: int = 0

    def schedule(self, at: float, event: Callable[[float], None]) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, event))

    def note(self, now: float, action: str, **fields: Any) -> None:
        self.result.timeline.append({"t": round(now - self.t0, 6), "action": action, **fields})

    def dispatch(self, action: RaceAction, now: float) -> None:
        match action:
            case FetchCandidates(method=method):
                self.note(now, "fetch", method=method.name)
                self._play_fetch(method, now)
            case StartAttempt(attempt_id=attempt_id, candidate=candidate):
                self.note(now, "start", attempt=attempt_id, address=candidate.address)
                self.live.add(attempt_id)
                self._play_attempt(attempt_id, candidate, now)
            case CancelAttempt(attempt_id=attempt_id):
                self.note(now, "cancel", attempt=attempt_id)
                self.live.discard(attempt_id)
            case CancelFetch(method=method):
                self.note(now, "cancel-fetch", method=method.name)
            case RaceWon() | RaceFailed():
                self.result.outcome = action

    def _play_fetch(self, method: Method, now: float) -> None:
        outcome = self.fetches.get(method, Outcome(delay=None))
        if outcome.delay is None:
            return
        if outcome.failure is None:
            found = outcome.found
            self.schedule(
                now + outcome.delay, lambda t: self.race.candidates_found(method, found, now=t)
            )
        else:
            failure = outcome.failure
            self.schedule(
                now + outcome.delay, lambda t: self.race.source_failed(method, failure, now=t)
            )

    def _play_attempt(self, attempt_id: int, candidate: Candidate, now: float) -> None:
        outcome = self.attempts.get(candidate.address, Outcome(delay=None))
        if outcome.delay is None:
            return

        def answer(t: float) -> None:
            if attempt_id not in self.live:
                return  # cancelled: a driver reports nothing more
            self.live.discard(attempt_id)
            if outcome.failure is not None:
                self.race.attempt_failed(attempt_id, outcome.failure, now=t)
            else:
                signer = outcome.signer or candidate.public_key
                self.race.attempt_verified(attempt_id, node_id_of(signer), now=t)

        self.schedule(now + outcome.delay, answer)

    def drain(self, now: float) -> None:
        while (action := self.race.next_action()) is not None:
            self.dispatch(action, now)
        self.result.max_in_flight = max(self.result.max_in_flight, self.race.in_flight)


def run_script(
    sources: Mapping[Method, Sequence[Candidate] | None],
    fetches: Mapping[Method, Outcome],
    attempts: Mapping[str, Outcome],
    *,
    now: float,
    config: RaceConfig | None = None,
    limit: int = 10_000,
) -> ScriptResult:
    """Play one race against the scripted network until it is over (or `limit` steps)."""
    player = _Player(Race(sources, now=now, config=config), now, fetches, attempts)
    player.drain(now)
    for _ in range(limit):
        if player.race.over:
            break
        deadline = player.race.next_deadline()
        at_event = player.heap[0][0] if player.heap else None
        if at_event is not None and (deadline is None or at_event <= deadline):
            t, _, event = heapq.heappop(player.heap)
            event(t)
            player.drain(t)
        elif deadline is not None:
            player.race.on_timer(now=deadline)
            player.drain(deadline)
        else:
            break
    return player.result
