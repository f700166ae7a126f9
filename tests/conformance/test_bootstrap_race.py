"""The bootstrap race (BOOT-4): table, counters, limits, and properties over random networks."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from railgun_ref.bootstrap.race import (
    TRANSITIONS,
    CancelAttempt,
    Candidate,
    CandidateState,
    Failure,
    FetchCandidates,
    Method,
    Race,
    RaceConfig,
    RaceCounter,
    RaceFailed,
    RaceWon,
    StartAttempt,
    state_diagram,
)
from railgun_ref.bootstrap.script import Outcome, run_script
from railgun_ref.conformance.builders.bootstrap_race import key_of
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.identity.keys import node_id_of

SPEC = (Path(__file__).resolve().parents[2] / "paper" / "spec.md").read_text(encoding="utf-8")
T0 = 1_700_000_000.0


def _c(method: Method, address: str, *, last_good: bool = False) -> Candidate:
    return Candidate(
        method=method, public_key=key_of(address), address=address, last_good=last_good
    )


def _drain(race: Race) -> list[object]:
    out = []
    while (action := race.next_action()) is not None:
        out.append(action)
    return out


@pytest.mark.clause("BOOT-4.7")
def test_the_spec_embeds_the_table() -> None:
    assert f"```mermaid\n{state_diagram()}\n```" in SPEC
    terminal = {CandidateState.VERIFIED, CandidateState.FAILED, CandidateState.CANCELLED}
    assert {s for s, row in TRANSITIONS.items() if not row} == terminal


@pytest.mark.clause("BOOT-4.5")
def test_wrong_key_is_counted_and_the_race_goes_on() -> None:
    race = Race(
        {Method.HARDCODED: [_c(Method.HARDCODED, "a:1"), _c(Method.HARDCODED, "b:1")]}, now=T0
    )
    [first] = _drain(race)
    assert isinstance(first, StartAttempt)
    race.attempt_verified(first.attempt_id, node_id_of(key_of("mallory")), now=T0 + 0.01)
    assert race.counters.get_count(RaceCounter.ATTEMPT_FAILED, Failure.WRONG_KEY) == 1
    [second] = _drain(race)  # the failure starts the next candidate at once
    assert isinstance(second, StartAttempt) and second.candidate.address == "b:1"
    race.attempt_verified(second.attempt_id, node_id_of(key_of("b:1")), now=T0 + 0.02)
    [won] = _drain(race)
    assert isinstance(won, RaceWon) and won.candidate.address == "b:1"
    assert [f.failure for f in won.failures] == [Failure.WRONG_KEY]
    assert race.counters.get_count(RaceCounter.ATTEMPT_VERIFIED, Method.HARDCODED) == 1
    assert race.next_deadline() is None


@pytest.mark.clause("BOOT-4.6")
def test_winning_cancels_the_rest_and_late_answers_are_ignored() -> None:
    race = Race(
        {
            Method.CACHED: [_c(Method.CACHED, "a:1"), _c(Method.CACHED, "b:1")],
            Method.DNS_SRV: None,
        },
        now=T0,
    )
    first = _drain(race)[0]
    assert isinstance(first, StartAttempt)
    race.on_timer(now=T0 + 0.25)  # DNS SRV (rank 1) opens, and the next cached peer starts
    fetch, second = _drain(race)
    assert fetch == FetchCandidates(method=Method.DNS_SRV)
    assert isinstance(second, StartAttempt) and second.candidate.address == "b:1"
    race.attempt_verified(second.attempt_id, node_id_of(key_of("b:1")), now=T0 + 0.6)
    actions = _drain(race)
    assert CancelAttempt(attempt_id=first.attempt_id) in actions
    assert isinstance(actions[-1], RaceWon)
    race.attempt_verified(first.attempt_id, node_id_of(key_of("a:1")), now=T0 + 0.7)
    race.candidates_found(Method.DNS_SRV, [_c(Method.DNS_SRV, "c:1")], now=T0 + 0.7)
    assert _drain(race) == []


@pytest.mark.clause("BOOT-4.2")
def test_no_sources_fails_at_once_and_bad_config_is_refused() -> None:
    race = Race({}, now=T0)
    [failed] = _drain(race)
    assert isinstance(failed, RaceFailed) and failed.failures == ()
    with pytest.raises(LocalProtocolError):
        RaceConfig(source_offsets=(0.0, 1.0))
    with pytest.raises(LocalProtocolError):
        RaceConfig(max_in_flight=0)


_METHODS = st.sampled_from(list(Method))
_OUTCOMES = st.one_of(
    st.just(Outcome(delay=None)),
    st.builds(Outcome, delay=st.floats(0.001, 5.0)),
    st.builds(Outcome, delay=st.floats(0.001, 5.0), failure=st.sampled_from(list(Failure))),
    st.builds(Outcome, delay=st.floats(0.001, 5.0), signer=st.just(key_of("mallory"))),
)


@st.composite
def _networks(draw: st.DrawFn) -> tuple[dict[Method, list[Candidate] | None], dict[str, Outcome]]:
    sources: dict[Method, list[Candidate] | None] = {}
    attempts: dict[str, Outcome] = {}
    for method in draw(st.sets(_METHODS, max_size=6)):
        count = draw(st.integers(0, 12))
        sources[method] = [_c(method, f"{method.name}-{i}:1") for i in range(count)]
        for candidate in sources[method] or []:
            attempts[candidate.address] = draw(_OUTCOMES)
    return sources, attempts


def _would_verify(answer: Outcome) -> bool:
    """A true PONG within the (shorter, UDP) attempt timeout."""
    in_time = answer.delay is not None and answer.delay < RaceConfig().attempt_timeout
    return in_time and answer.failure is None and answer.signer is None


@pytest.mark.clause("BOOT-4.3", "BOOT-4.5", "BOOT-4.6")
@settings(max_examples=150, deadline=None)
@given(_networks())
def test_any_network_ends_within_the_limits(
    network: tuple[dict[Method, list[Candidate] | None], dict[str, Outcome]],
) -> None:
    sources, attempts = network
    result = run_script(sources, {}, attempts, now=T0)
    assert result.max_in_flight <= 10
    outcome = result.outcome
    assert outcome is not None, "every race ends"
    if isinstance(outcome, RaceWon):
        answer = attempts[outcome.candidate.address]
        assert answer.failure is None and answer.signer is None  # only a true PONG wins
    else:
        assert not any(_would_verify(a) for a in attempts.values())
    assert len(outcome.failures) <= len(attempts) + len(sources)


@pytest.mark.clause("BOOT-4.1")
def test_priority_is_the_method_order_among_the_methods_present() -> None:
    """Without Tor and the hard-coded list, DNS SRV takes rank 1 (offset 0.25 s)."""
    race = Race(
        {
            Method.DNS_SRV: [_c(Method.DNS_SRV, "d:1")],
            Method.CACHED: [_c(Method.CACHED, "a:1")],
        },
        now=T0,
    )
    [first] = _drain(race)
    assert isinstance(first, StartAttempt) and first.candidate.method is Method.CACHED
    assert race.next_deadline() == T0 + 0.25
    race.on_timer(now=T0 + 0.25)
    [second] = _drain(race)
    assert isinstance(second, StartAttempt) and second.candidate.method is Method.DNS_SRV
