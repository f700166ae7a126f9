"""Peer reputation (REP): a score per peer from what it did, in the GossipSub v1.1 style.

Theory of operation
===================

1. REP-1: a node keeps, per peer it deals with, one counter per `Behaviour`
   it observed: answers and timeouts of its requests, valid and invalid
   records, messages it relayed or stored and later delivered, and protocol
   misbehaviour. Counters are integers in *milli-events* (one observation
   adds 1000) so decay needs no floating point and every implementation
   computes the same score.
2. REP-2: the score, in millipoints (1/1000 point, the capacity score's unit,
   CAP-2.1), is a weighted sum of per-component terms: positive components
   are capped (a peer cannot bank unlimited credit), invalid records and
   misbehaviour count *squared* (a few mistakes cost little, a pattern costs
   a lot), and peers sharing one IP address with more than
   ``colocation_threshold`` others pay the squared surplus (GossipSub's P6).
3. REP-3: every ``decay_interval`` seconds each counter is multiplied by its
   component's decay factor (a fraction of 1000, rounded down) and dropped
   when it falls below ``decay_to_zero``; a peer with no counter left is
   forgotten. So a peer redeems itself by behaving, and credit fades.
4. REP-4: three thresholds, as GossipSub's gossip, publish and graylist
   thresholds, give a peer's `Standing`: below ``host_threshold`` it is never
   chosen as relay, committee member, storage peer or SFU/TURN host; below
   ``publish_threshold`` our own messages and records are not sent to it and
   it is not handed out as a contact; below ``graylist_threshold`` what it
   sends is dropped unread.
5. REP-5: `rank_score` is the one ranking function of hosting roles:
   capacity score plus reputation clamped to ``[rank_floor, rank_cap]``, so a
   long-known good peer outranks a fresh identity that claims up to
   ``rank_cap`` more capacity, and new keys buy nothing.

`ReputationTable` is a sans-IO core: inputs are `observe`, `set_address` and
`on_timer`; it emits `StandingChanged` when a peer crosses a threshold.
"""

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId

__all__ = [
    "DEFAULT_CONFIG",
    "EVENT",
    "Behaviour",
    "ComponentRule",
    "ReputationConfig",
    "ReputationCounter",
    "ReputationTable",
    "Standing",
    "StandingChanged",
    "colocation_penalty",
    "decay_step",
    "rank_score",
    "score_of",
    "standing_of",
]

#: REP-1.1: one observation, in milli-events.
EVENT: Final = 1000


class Behaviour(StrEnum):
    """REP-1.1: what a node observes a peer do (one counter each)."""

    ANSWERED = "answered"  #: a request of ours got a valid answer
    TIMED_OUT = "timed-out"  #: a request of ours got no answer in time
    VALID_RECORD = "valid-record"  #: a record (DHT value, advert) that verified
    INVALID_RECORD = "invalid-record"  #: a record with a bad signature, expired, wrong key
    RELAYED = "relayed"  #: a message it relayed for us arrived (receipt seen)
    STORED = "stored"  #: a message it stored for us was delivered at pickup
    MISBEHAVED = "misbehaved"  #: malformed, replayed or forged input, wrong PoW


class Standing(StrEnum):
    """REP-4.1: what a peer's score allows, best first."""

    GOOD = "good"  #: may be chosen for hosting roles
    NO_HOSTING = "no-hosting"  #: below host_threshold
    NO_PUBLISH = "no-publish"  #: below publish_threshold
    GRAYLISTED = "graylisted"  #: below graylist_threshold: its input is dropped


class ReputationCounter(StrEnum):
    OBSERVED = "observed"  #: label: Behaviour
    STANDING_CHANGED = "standing-changed"  #: label: the new Standing
    FORGOTTEN = "forgotten"  #: peers whose counters all decayed to zero
    DECAY_STEPS = "decay-steps"


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentRule:
    """REP-2.1: how one behaviour's counter turns into score."""

    weight: int  #: millipoints per event (linear) or per event squared (squared)
    squared: bool = False  #: the term is weight * (events above `threshold`)^2
    threshold: int = 0  #: milli-events not penalised before squaring (behaviour penalty)
    cap: int = 0  #: milli-events counted at most (0: no cap); only for positive weights
    decay: int = 990  #: per interval, the counter keeps decay/1000 of itself (REP-3.1)


#: REP-2.2: the default component table (weights in millipoints).
_RULES: Final[Mapping[Behaviour, ComponentRule]] = MappingProxyType(
    {
        Behaviour.ANSWERED: ComponentRule(weight=200, cap=50 * EVENT),
        Behaviour.TIMED_OUT: ComponentRule(weight=-500, decay=900),
        Behaviour.VALID_RECORD: ComponentRule(weight=200, cap=50 * EVENT),
        Behaviour.INVALID_RECORD: ComponentRule(weight=-1000, squared=True, decay=997),
        Behaviour.RELAYED: ComponentRule(weight=200, cap=100 * EVENT),
        Behaviour.STORED: ComponentRule(weight=200, cap=50 * EVENT),
        Behaviour.MISBEHAVED: ComponentRule(
            weight=-5000, squared=True, threshold=2 * EVENT, decay=997
        ),
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReputationConfig:
    """REP parameters; each field names its clause. Scores are millipoints."""

    rules: Mapping[Behaviour, ComponentRule] = field(default_factory=lambda: _RULES)
    decay_interval: float = 60.0  #: seconds between decay steps (REP-3.1)
    decay_to_zero: int = 10  #: milli-events below which a counter is dropped (REP-3.2)
    colocation_threshold: int = 2  #: peers per IP address that cost nothing (REP-2.3)
    colocation_weight: int = -10_000  #: millipoints per surplus peer squared (REP-2.3)
    host_threshold: int = -10_000  #: REP-4.1
    publish_threshold: int = -50_000  #: REP-4.1
    graylist_threshold: int = -80_000  #: REP-4.1
    rank_cap: int = 50_000  #: REP-5.1: reputation counts at most this much in ranking
    rank_floor: int = -100_000  #: REP-5.1: and at least this much
    max_catch_up: int = 5000  #: decay steps applied at most per on_timer (REP-3.3)

    def __post_init__(self) -> None:
        if not 0 >= self.host_threshold > self.publish_threshold > self.graylist_threshold:
            raise LocalProtocolError("0 >= host > publish > graylist thresholds")
        if self.decay_interval <= 0 or self.colocation_threshold < 1:
            raise LocalProtocolError("decay_interval > 0 and colocation_threshold >= 1")
        for rule in self.rules.values():
            if not 0 <= rule.decay < 1000 or (rule.cap and rule.weight < 0):
                raise LocalProtocolError("decay in 0..999; caps only on positive weights")


DEFAULT_CONFIG: Final = ReputationConfig()


def _term(rule: ComponentRule, value: int) -> int:
    """REP-2.1: one component's contribution, millipoints (rounded toward zero)."""
    if rule.cap:
        value = min(value, rule.cap)
    if rule.squared:
        excess = max(0, value - rule.threshold)
        return rule.weight * excess * excess // (EVENT * EVENT)
    sign = -1 if rule.weight < 0 else 1
    return sign * (abs(rule.weight) * value // EVENT)


def colocation_penalty(peers_on_address: int, config: ReputationConfig = DEFAULT_CONFIG) -> int:
    """REP-2.3: the IP-colocation term of a peer sharing its address with others (<= 0)."""
    surplus = max(0, peers_on_address - config.colocation_threshold)
    return config.colocation_weight * surplus * surplus


def score_of(
    counters: Mapping[Behaviour, int],
    *,
    peers_on_address: int = 1,
    config: ReputationConfig = DEFAULT_CONFIG,
) -> int:
    """REP-2.1: the score, millipoints, of a peer with `counters` (milli-events)."""
    total = sum(_term(config.rules[b], v) for b, v in counters.items() if b in config.rules)
    return total + colocation_penalty(peers_on_address, config)


def standing_of(score: int, config: ReputationConfig = DEFAULT_CONFIG) -> Standing:
    """REP-4.1: the standing a score gives."""
    if score < config.graylist_threshold:
        return Standing.GRAYLISTED
    if score < config.publish_threshold:
        return Standing.NO_PUBLISH
    if score < config.host_threshold:
        return Standing.NO_HOSTING
    return Standing.GOOD


def decay_step(
    counters: Mapping[Behaviour, int], config: ReputationConfig = DEFAULT_CONFIG
) -> dict[Behaviour, int]:
    """REP-3.1, REP-3.2: the counters after one decay interval (zeros dropped)."""
    out: dict[Behaviour, int] = {}
    for behaviour, value in counters.items():
        decayed = value * config.rules[behaviour].decay // 1000
        if decayed >= config.decay_to_zero:
            out[behaviour] = decayed
    return out


def rank_score(
    capacity_total: int, reputation: int, config: ReputationConfig = DEFAULT_CONFIG
) -> int:
    """REP-5.1: the ranking score of a hosting candidate, millipoints.

    Capacity (CAP-2.1, 0..100_000) plus the reputation clamped to
    ``[rank_floor, rank_cap]``.
    """
    return capacity_total + max(config.rank_floor, min(config.rank_cap, reputation))


@dataclass(frozen=True, slots=True, kw_only=True)
class StandingChanged:
    """REP-4.2: `peer` crossed a threshold; drivers apply the new standing."""

    peer: NodeId
    standing: Standing
    score: int


Action = StandingChanged


class ReputationTable:
    """The scores of the peers one node deals with (a sans-IO core, REP-1..REP-4)."""

    def __init__(self, config: ReputationConfig = DEFAULT_CONFIG, *, now: float) -> None:
        self.config = config
        self.counters: Counters[ReputationCounter] = Counters()
        self._peers: dict[NodeId, dict[Behaviour, int]] = {}
        self._addresses: dict[NodeId, str] = {}
        self._standing: dict[NodeId, Standing] = {}
        self._next_decay = now + config.decay_interval
        self._actions: deque[Action] = deque()

    # ---- inputs

    def observe(self, peer: NodeId, behaviour: Behaviour, *, now: float, count: int = 1) -> None:
        """REP-1.1: `peer` did `behaviour` `count` times."""
        if count < 1:
            raise LocalProtocolError("count must be >= 1")
        self._catch_up(now)
        counters = self._peers.setdefault(peer, {})
        counters[behaviour] = counters.get(behaviour, 0) + count * EVENT
        self.counters.inc(ReputationCounter.OBSERVED, count, label=behaviour)
        self._refresh([peer])

    def set_address(self, peer: NodeId, host: str | None, *, now: float) -> None:
        """REP-2.3: the IP address `peer` is seen at (None: forget it)."""
        self._catch_up(now)
        old = self._addresses.pop(peer, None)
        if host is not None:
            self._addresses[peer] = host
        self._refresh(self._sharing(old) + self._sharing(host) + [peer])

    def on_timer(self, *, now: float) -> None:
        self._catch_up(now)

    def next_deadline(self) -> float | None:
        return self._next_decay if self._peers else None

    def next_action(self) -> Action | None:
        return self._actions.popleft() if self._actions else None

    # ---- queries

    def score(self, peer: NodeId) -> int:
        """REP-2.1: `peer`'s score now, millipoints (0 for an unknown peer on its own IP)."""
        return score_of(
            self._peers.get(peer, {}),
            peers_on_address=len(self._sharing(self._addresses.get(peer))) or 1,
            config=self.config,
        )

    def standing(self, peer: NodeId) -> Standing:
        return standing_of(self.score(peer), self.config)

    def scores(self) -> Mapping[NodeId, int]:
        """Every tracked peer's score (for `rank_candidates` and host election)."""
        known = set(self._peers) | set(self._addresses)
        return MappingProxyType({peer: self.score(peer) for peer in sorted(known)})

    def peer_counters(self, peer: NodeId) -> Mapping[Behaviour, int]:
        return MappingProxyType(dict(self._peers.get(peer, {})))

    # ---- internals

    def _sharing(self, host: str | None) -> list[NodeId]:
        if host is None:
            return []
        return [p for p, h in self._addresses.items() if h == host]

    def _catch_up(self, now: float) -> None:
        """REP-3.1, REP-3.3: apply every decay step due by `now`."""
        if now < self._next_decay:
            return
        interval = self.config.decay_interval
        steps = int((now - self._next_decay) // interval) + 1
        self._next_decay += steps * interval
        if self._peers:
            for _ in range(min(steps, self.config.max_catch_up)):
                self._decay_once()
        self.counters.inc(ReputationCounter.DECAY_STEPS, steps)
        self._refresh(list(self._standing))

    def _decay_once(self) -> None:
        for peer in list(self._peers):
            decayed = decay_step(self._peers[peer], self.config)
            if decayed:
                self._peers[peer] = decayed
            else:
                del self._peers[peer]
                self.counters.inc(ReputationCounter.FORGOTTEN)

    def _refresh(self, peers: list[NodeId]) -> None:
        """REP-4.2: emit StandingChanged for each of `peers` whose standing moved."""
        for peer in dict.fromkeys(peers):
            score = self.score(peer)
            standing = standing_of(score, self.config)
            if standing is self._standing.get(peer, Standing.GOOD):
                continue
            if standing is Standing.GOOD:
                del self._standing[peer]
            else:
                self._standing[peer] = standing
            self.counters.inc(ReputationCounter.STANDING_CHANGED, label=standing)
            self._actions.append(StandingChanged(peer=peer, standing=standing, score=score))
