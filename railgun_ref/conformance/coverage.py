"""Conformance coverage: which MUST clauses the runners check, which only vectors or tests
cover, and the mutation score, written to ``paper/conformance_coverage.md``.

The clause side comes from `traceability` (spec clauses, vector ``clause``
fields, tests) and `catalog` (runner checks W1.., R1..). The mutation side
comes from the two sets of deliberately broken targets under
``tests/conformance/``: ``responders.py`` (`MUTANTS`: mode -> (clause, ...),
run against the wire runner) and ``requesters.py`` (`MUTANTS`: mode -> clause,
run against the requester-side runner). They are read with `ast`, never
imported. A mutant counts as caught when a test asserts that the runner fails
it on its clause (the parametrised ``test_broken_*`` tests, which run every
mutant in CI); a mutant without such a test counts as not caught.

``python -m railgun_ref.conformance.coverage`` writes the report; ``--check``
fails if the committed one is stale. Run it from a checkout.
"""

import ast
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from railgun_ref.conformance.traceability import (
    REPO_ROOT,
    TESTS_DIR,
    Matrix,
    build_matrix,
    runner_checks,
)

REPORT_PATH: Final = REPO_ROOT / "paper" / "conformance_coverage.md"
_CONFORMANCE_TESTS: Final = TESTS_DIR / "conformance"


@dataclass(frozen=True, slots=True, kw_only=True)
class MutantSet:
    """One set of broken targets and the test that must see each of them fail."""

    name: str  #: what they are, for the report
    source: str  #: the file that defines them, relative to the checkout
    test: str  #: the parametrised test that asserts each is caught
    mutants: dict[str, str]  #: mode -> the clause it breaks
    caught: frozenset[str]  #: modes the test runs


def _literal_mutants(path: Path) -> dict[str, str]:
    """mode -> clause of the module-level ``MUTANTS`` dict literal in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        targets: list[ast.expr]
        if isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = list(node.targets), node.value
        else:
            continue
        if value is not None and any(
            isinstance(t, ast.Name) and t.id == "MUTANTS" for t in targets
        ):
            return _mode_clauses(value)
    raise ValueError(f"{path}: no MUTANTS")


def _mode_clauses(value: ast.expr) -> dict[str, str]:
    assert isinstance(value, ast.Dict)
    out: dict[str, str] = {}
    for key, item in zip(value.keys, value.values, strict=True):
        assert isinstance(key, ast.Constant) and isinstance(key.value, str)
        clause = item.elts[0] if isinstance(item, ast.Tuple) else item
        assert isinstance(clause, ast.Constant) and isinstance(clause.value, str)
        out[key.value] = clause.value
    return out


def _parametrised_over_mutants(path: Path, test: str) -> bool:
    """Whether `test` in `path` is parametrised over ``sorted(MUTANTS)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == test:
            return any("sorted(MUTANTS)" in ast.unparse(d) for d in node.decorator_list)
    return False


def mutant_sets(tests_dir: Path = _CONFORMANCE_TESTS) -> list[MutantSet]:
    sets = []
    for name, module, test_file, test in (
        (
            "broken responders (wire runner)",
            "responders.py",
            "test_wire_runner.py",
            "test_broken_responder_fails_the_clause_it_breaks",
        ),
        (
            "broken requesters (requester-side runner)",
            "requesters.py",
            "test_requester_runner.py",
            "test_broken_requester_fails_the_clause_it_breaks",
        ),
    ):
        mutants = _literal_mutants(tests_dir / module)
        ran = _parametrised_over_mutants(tests_dir / test_file, test)
        sets.append(
            MutantSet(
                name=name,
                source=f"tests/conformance/{module}",
                test=f"tests/conformance/{test_file}::{test}",
                mutants=mutants,
                caught=frozenset(mutants if ran else ()),
            )
        )
    return sets


def _kinds(matrix: Matrix, runner: dict[str, list[str]], clause_id: str) -> str:
    kinds = [
        kind
        for kind, present in (
            ("runner", bool(runner.get(clause_id))),
            ("vector", bool(matrix.vectors.get(clause_id))),
            ("test", bool(matrix.tests.get(clause_id))),
        )
        if present
    ]
    return " + ".join(kinds) or "none"


def render(matrix: Matrix, sets: list[MutantSet]) -> str:
    """The Markdown report, deterministic for a given spec, vectors, tests and mutants."""
    runner = runner_checks()
    musts = [c for c in matrix.clauses if c.is_must]
    kinds = {c.id: _kinds(matrix, runner, c.id) for c in musts}
    by_runner = sum(1 for k in kinds.values() if k.startswith("runner"))
    only_vectors = sum(1 for k in kinds.values() if k.startswith("vector"))
    only_tests = sum(1 for k in kinds.values() if k == "test")
    lines = [
        "# Conformance coverage",
        "",
        "Generated by `python -m railgun_ref.conformance.coverage` from `paper/spec.md`,",
        "the runner checks of spec section 9.1, the vectors, the tests and the broken",
        "targets under `tests/conformance/`. Do not edit by hand; a test fails when stale.",
        "",
        "## Mutation score",
        "",
        "| set | caught / total | defined in | asserted by |",
        "|---|---|---|---|",
    ]
    for s in sets:
        lines.append(
            f"| {s.name} | {len(s.caught)} / {len(s.mutants)} | `{s.source}` | `{s.test}` |"
        )
    lines += [
        "",
        "A broken target is caught when the runner fails it on the clause it breaks; the",
        "test named runs every one of them, so CI fails if one passes.",
        "",
        "## MUST clauses",
        "",
        f"{len(musts)} MUST clauses: {by_runner} checked by a runner, {only_vectors} by",
        f"vectors (and maybe tests) but no runner, {only_tests} by tests only,",
        f"{sum(1 for k in kinds.values() if k == 'none')} by nothing.",
        "",
        "| clause | covered by | runner checks | broken targets |",
        "|---|---|---|---|",
    ]
    for clause in musts:
        checks = ", ".join(runner.get(clause.id, [])) or "—"
        broken = ", ".join(
            f"`{mode}`" for s in sets for mode, c in sorted(s.mutants.items()) if c == clause.id
        )
        lines.append(f"| {clause.id} | {kinds[clause.id]} | {checks} | {broken or '—'} |")
    return "\n".join(lines) + "\n"


def main(check: bool) -> int:
    """Write the report (or, with `check`, fail if the committed one is stale)."""
    if not _CONFORMANCE_TESTS.is_dir():
        print("coverage: needs a checkout (tests/conformance/)", file=sys.stderr)
        return 2
    text = render(build_matrix(), mutant_sets())
    if check:
        committed = REPORT_PATH.read_text(encoding="utf-8") if REPORT_PATH.is_file() else None
        if committed != text:
            print(
                "coverage: paper/conformance_coverage.md is stale; run"
                " `python -m railgun_ref.conformance.coverage`",
                file=sys.stderr,
            )
            return 1
        return 0
    REPORT_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {REPORT_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(check="--check" in sys.argv[1:]))
