"""paper/conformance_coverage.md is current, and its mutation score is complete."""

from railgun_ref.conformance import coverage
from railgun_ref.conformance.traceability import build_matrix

from .requesters import MUTANTS as REQUESTER_MUTANTS
from .responders import MUTANTS as RESPONDER_MUTANTS


def test_committed_report_is_current() -> None:
    """`python -m railgun_ref.conformance.coverage` would write the committed report."""
    text = coverage.render(build_matrix(), coverage.mutant_sets())
    assert coverage.REPORT_PATH.read_text(encoding="utf-8") == text
    assert coverage.main(check=True) == 0


def test_mutant_sets_are_read_as_the_tests_define_them() -> None:
    """The report reads every broken target, with its clause, and each is run by its test."""
    responders, requesters = coverage.mutant_sets()
    assert responders.mutants == {mode: clause for mode, (clause, _) in RESPONDER_MUTANTS.items()}
    assert requesters.mutants == REQUESTER_MUTANTS
    for mutant_set in (responders, requesters):
        assert mutant_set.caught == set(mutant_set.mutants)
    score = f"| {len(RESPONDER_MUTANTS)} / {len(RESPONDER_MUTANTS)} |"
    assert score in coverage.render(build_matrix(), [responders, requesters])
