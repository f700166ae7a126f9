"""Peer reputation (REP): scores from behaviour, decay, thresholds, colocation, ranking hooks."""

import pytest

from railgun_ref.abuse.reputation import (
    DEFAULT_CONFIG,
    EVENT,
    Behaviour,
    ReputationConfig,
    ReputationCounter,
    ReputationTable,
    Standing,
    StandingChanged,
    colocation_penalty,
    decay_step,
    rank_score,
    score_of,
    standing_of,
)
from railgun_ref.capacity import Candidate, DeviceClass, Ineligibility, Role, rank_candidates
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.storeforward.placement import choose_holders
from railgun_ref.voice.topology import host_candidates
from unit.capacity.helpers import caps

T0 = 1_700_000_000.0


def node(n: int) -> NodeId:
    return NodeId(bytes([n]) * 32)


def test_positive_components_are_capped() -> None:
    """REP-2.1: 1000 answers count as 50 (10 points), no more."""
    assert score_of({Behaviour.ANSWERED: 1000 * EVENT}) == 10_000
    assert score_of({Behaviour.ANSWERED: 10 * EVENT}) == 2_000


def test_invalid_records_count_squared() -> None:
    """REP-2.1: 3 invalid records cost 9 points, 10 cost 100."""
    assert score_of({Behaviour.INVALID_RECORD: 3 * EVENT}) == -9_000
    assert score_of({Behaviour.INVALID_RECORD: 10 * EVENT}) == -100_000


def test_misbehaviour_is_free_up_to_its_threshold_then_squared() -> None:
    """REP-2.1: the behaviour penalty counts only the excess over 2 events."""
    assert score_of({Behaviour.MISBEHAVED: 2 * EVENT}) == 0
    assert score_of({Behaviour.MISBEHAVED: 5 * EVENT}) == -45_000


def test_colocation_penalty_is_the_squared_surplus() -> None:
    """REP-2.3: two peers per address are free, the third costs 10 points, the fourth 40."""
    assert [colocation_penalty(n) for n in (1, 2, 3, 4)] == [0, 0, -10_000, -40_000]


def test_thresholds_give_standing() -> None:
    """REP-4.1: good, no hosting, no publish, graylisted."""
    assert standing_of(0) is Standing.GOOD
    assert standing_of(-10_000) is Standing.GOOD
    assert standing_of(-10_001) is Standing.NO_HOSTING
    assert standing_of(-50_001) is Standing.NO_PUBLISH
    assert standing_of(-80_001) is Standing.GRAYLISTED


def test_decay_rounds_down_and_drops_small_counters() -> None:
    """REP-3.1, REP-3.2: timeouts keep 900/1000 per interval; below 10 milli-events they go."""
    assert decay_step({Behaviour.TIMED_OUT: 1000}) == {Behaviour.TIMED_OUT: 900}
    assert decay_step({Behaviour.ANSWERED: 10}) == {}
    assert decay_step({Behaviour.ANSWERED: 11}) == {Behaviour.ANSWERED: 10}


def test_bad_thresholds_are_the_callers_error() -> None:
    with pytest.raises(LocalProtocolError):
        ReputationConfig(host_threshold=-60_000, publish_threshold=-50_000)


def test_a_forger_is_graylisted_and_redeems_itself_by_decay() -> None:
    """REP-3.1, REP-4.2: StandingChanged on the way down and on the way back up."""
    table = ReputationTable(now=T0)
    forger = node(1)
    table.observe(forger, Behaviour.INVALID_RECORD, count=10, now=T0)
    assert table.standing(forger) is Standing.GRAYLISTED
    assert table.next_action() == StandingChanged(
        peer=forger, standing=Standing.GRAYLISTED, score=-100_000
    )
    table.on_timer(now=T0 + 3600 * 24)
    assert table.standing(forger) is Standing.GOOD
    assert table.next_action() == StandingChanged(peer=forger, standing=Standing.GOOD, score=0)
    assert table.counters.get_count(ReputationCounter.FORGOTTEN) == 1
    assert table.next_deadline() is None


def test_a_long_gap_is_caught_up_in_bounded_work() -> None:
    """REP-3.3: a year without timers applies at most max_catch_up steps."""
    table = ReputationTable(now=T0)
    table.observe(node(1), Behaviour.RELAYED, now=T0)
    table.on_timer(now=T0 + 365 * 86400)
    assert table.score(node(1)) == 0
    assert table.counters.get_count(ReputationCounter.DECAY_STEPS) == 525_600


def test_good_history_outweighs_a_few_timeouts() -> None:
    table = ReputationTable(now=T0)
    peer = node(2)
    table.observe(peer, Behaviour.ANSWERED, count=40, now=T0)
    table.observe(peer, Behaviour.TIMED_OUT, count=4, now=T0)
    assert table.score(peer) == 8_000 - 2_000


def test_sybils_on_one_address_lose_standing() -> None:
    """REP-2.3: 5 identities behind one IP each pay (5 - 2)^2 * 10 points."""
    table = ReputationTable(now=T0)
    for n in range(5):
        table.set_address(node(n), "127.0.0.9", now=T0)
    table.set_address(node(9), "127.0.0.10", now=T0)
    assert {table.score(node(n)) for n in range(5)} == {-90_000}
    assert table.standing(node(0)) is Standing.GRAYLISTED
    assert table.score(node(9)) == 0
    table.set_address(node(4), "127.0.0.11", now=T0)
    assert table.score(node(0)) == -40_000


def test_rank_score_clamps_reputation() -> None:
    """REP-5.1."""
    assert rank_score(90_000, 200_000) == 140_000
    assert rank_score(90_000, -500_000) == -10_000
    assert rank_score(90_000, 0) == 90_000


def test_rank_candidates_prefers_known_good_over_a_fresh_claim() -> None:
    """REP-5.1: a known desktop (90 + 20 points) beats a fresh 'server' (100 points)."""
    fresh = Candidate(node_id=node(1), capabilities=caps(device_class=DeviceClass.SERVER))
    known = Candidate(node_id=node(2), capabilities=caps())
    shunned = Candidate(node_id=node(3), capabilities=caps(device_class=DeviceClass.SERVER))
    reputation = {node(2): 20_000, node(3): -20_000}
    plain = rank_candidates([fresh, known, shunned], Role.RELAY)
    assert plain.best(3) == [node(1), node(3), node(2)]
    ranking = rank_candidates([fresh, known, shunned], Role.RELAY, reputation=reputation)
    assert ranking.best(3) == [node(2), node(1)]
    assert ranking.excluded == ((node(3), (Ineligibility.LOW_REPUTATION,)),)
    assert [r.rank for r in ranking.ranked] == [110_000, 100_000]


def test_storage_placement_skips_low_reputation_before_the_pool() -> None:
    """REP-5.1, SF-3.2: a shunned peer does not take a place in the candidate pool."""
    key = bytes(32)
    candidates = [Candidate(node_id=node(n), capabilities=caps()) for n in range(1, 5)]
    plain = choose_holders(key, candidates, redundancy=2, candidate_pool=2)
    assert plain == [node(1), node(2)]
    shunned = {node(1): DEFAULT_CONFIG.host_threshold - 1}
    assert choose_holders(key, candidates, redundancy=2, candidate_pool=2, reputation=shunned) == [
        node(2),
        node(3),
    ]


def test_voice_host_election_uses_a_shared_reputation_view() -> None:
    """REP-5.2: with a shared view, a shunned participant never hosts."""
    participants = {node(n): caps() for n in range(1, 4)}
    plain = host_candidates(participants)
    assert [c.node_id for c in plain] == [node(1), node(2), node(3)]
    view = {node(1): -20_000, node(3): 5_000}
    order = host_candidates(participants, reputation=view)
    assert [c.node_id for c in order] == [node(3), node(2)]


def test_each_observation_adds_one_event_and_is_counted() -> None:
    """REP-1.1: one observation is 1000 milli-events, counted by behaviour."""
    table = ReputationTable(now=T0)
    table.observe(node(1), Behaviour.STORED, now=T0, count=3)
    table.observe(node(1), Behaviour.ANSWERED, now=T0)
    assert table.peer_counters(node(1)) == {Behaviour.STORED: 3000, Behaviour.ANSWERED: 1000}
    assert table.counters.get_count(ReputationCounter.OBSERVED, Behaviour.STORED) == 3
    with pytest.raises(LocalProtocolError):
        table.observe(node(1), Behaviour.STORED, now=T0, count=0)
