"""Traceability: spec clauses -> vectors -> tests, written to ``paper/traceability.md``.

Three sources, each read by one documented rule:

* **clauses** come from ``paper/spec.md``: every paragraph whose first line
  matches `CLAUSE_LINE` (``**ID** (LEVEL) ...``) outside fenced code blocks,
  as section 0.2 of the spec defines;
* **vectors** cover the clause named in their ``clause`` field
  (``railgun_ref/conformance/vectors/*.json``);
* **tests** are ``test*`` functions in ``tests/**/test_*.py``; one covers a
  clause if it (or the class it is defined in) is decorated with
  ``@pytest.mark.clause("ID", ...)`` or mentions the clause id in its
  docstring. The files are parsed with `ast`, never imported.

`main` regenerates the table or, with ``check``, fails if the committed table
is stale; either way it fails if a MUST clause has neither a vector nor a
test. Run it from a checkout: ``python -m railgun_ref.conformance.traceability``.
"""

import ast
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from railgun_ref.conformance.catalog import (
    CENTRAL_RUNNER_CHECKS,
    REQUESTER_CHECKS,
    STUN_RUNNER_CHECKS,
    TURN_RUNNER_CHECKS,
    WIRE_CHECKS,
)
from railgun_ref.conformance.common import VECTOR_AREAS, load_vectors, vector_file_name

#: The first line of a clause paragraph (spec section 0.2).
CLAUSE_LINE: Final = re.compile(
    r"^\*\*(?P<id>[A-Z]+-[0-9]+\.[0-9]+)\*\* \((?P<level>MUST NOT|MUST|SHOULD NOT|SHOULD|MAY)\) "
)
#: A clause id anywhere in text (docstrings, markers).
CLAUSE_ID: Final = re.compile(r"\b[A-Z]+-[0-9]+\.[0-9]+\b")

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
SPEC_PATH: Final = REPO_ROOT / "paper" / "spec.md"
TABLE_PATH: Final = REPO_ROOT / "paper" / "traceability.md"
TESTS_DIR: Final = REPO_ROOT / "tests"


@dataclass(frozen=True, slots=True, kw_only=True)
class Clause:
    id: str
    level: str  #: MUST, MUST NOT, SHOULD, SHOULD NOT or MAY
    section: str  #: the heading the clause sits under

    @property
    def is_must(self) -> bool:
        return self.level.startswith("MUST")


def clause_sort_key(clause_id: str) -> tuple[str, int, int]:
    area, _, number = clause_id.partition("-")
    major, _, minor = number.partition(".")
    return (area, int(major), int(minor))


def parse_spec(text: str) -> list[Clause]:
    """The clauses of a spec text, in document order; raises ValueError on a duplicate id."""
    clauses: list[Clause] = []
    seen: set[str] = set()
    in_fence = False
    section = ""
    for line in text.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if line.startswith("#"):
            section = line.lstrip("#").strip()
            continue
        match = CLAUSE_LINE.match(line)
        if match is None:
            continue
        clause_id = match["id"]
        if clause_id in seen:
            raise ValueError(f"clause {clause_id} is defined twice")
        seen.add(clause_id)
        clauses.append(Clause(id=clause_id, level=match["level"], section=section))
    return clauses


def scan_vectors(areas: Iterable[str] = VECTOR_AREAS) -> dict[str, dict[str, list[int]]]:
    """clause id -> vector file name -> tcIds that pin it."""
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for area in areas:
        for group in load_vectors(area)["testGroups"]:
            for test in group["tests"]:
                out[test["clause"]][vector_file_name(area)].append(test["tcId"])
    return out


def _marker_clauses(decorators: list[ast.expr]) -> set[str]:
    """Clause ids given to ``@pytest.mark.clause(...)`` / ``@mark.clause(...)``."""
    found: set[str] = set()
    for decorator in decorators:
        if not isinstance(decorator, ast.Call):
            continue
        func = decorator.func
        if isinstance(func, ast.Attribute) and func.attr == "clause":
            for arg in decorator.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.update(CLAUSE_ID.findall(arg.value))
    return found


def _doc_clauses(node: ast.AST) -> set[str]:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return set()
    return set(CLAUSE_ID.findall(ast.get_docstring(node) or ""))


def tests_in_source(source: str, name: str) -> Iterator[tuple[str, set[str]]]:
    """(test id, clause ids it covers) for each test function of one test file."""
    tree = ast.parse(source)

    def visit(
        body: list[ast.stmt], prefix: str, inherited: set[str]
    ) -> Iterator[tuple[str, set[str]]]:
        for node in body:
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                own = inherited | _doc_clauses(node) | _marker_clauses(node.decorator_list)
                yield from visit(node.body, f"{prefix}{node.name}::", own)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test"
            ):
                clauses = inherited | _doc_clauses(node) | _marker_clauses(node.decorator_list)
                yield f"{name}::{prefix}{node.name}", clauses

    yield from visit(tree.body, "", set())


def scan_tests(tests_dir: Path = TESTS_DIR) -> dict[str, list[str]]:
    """clause id -> test ids (``path::function``) that cover it."""
    out: dict[str, list[str]] = defaultdict(list)
    for path in sorted(tests_dir.rglob("test_*.py")):
        relative = path.relative_to(tests_dir.parent).as_posix()
        for test_id, clauses in tests_in_source(path.read_text(encoding="utf-8"), relative):
            for clause_id in clauses:
                out[clause_id].append(test_id)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Matrix:
    clauses: list[Clause]
    vectors: dict[str, dict[str, list[int]]]
    tests: dict[str, list[str]]

    def uncovered_must(self) -> list[str]:
        return [
            c.id
            for c in self.clauses
            if c.is_must and not self.vectors.get(c.id) and not self.tests.get(c.id)
        ]

    def unknown_references(self) -> list[str]:
        """Clause ids named by vectors or tests that the spec does not define."""
        known = {c.id for c in self.clauses}
        cited = set(self.vectors) | set(self.tests)
        return sorted(cited - known, key=clause_sort_key)


def build_matrix(spec_path: Path = SPEC_PATH, tests_dir: Path = TESTS_DIR) -> Matrix:
    return Matrix(
        clauses=parse_spec(spec_path.read_text(encoding="utf-8")),
        vectors=scan_vectors(),
        tests=scan_tests(tests_dir),
    )


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    parts: list[str] = []
    ordered = sorted(set(numbers))
    start = previous = ordered[0]
    for number in [*ordered[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ", ".join(parts)


def runner_checks() -> dict[str, list[str]]:
    """clause id -> the numbers of the runner checks that test it (W1.., R1..)."""
    out: dict[str, list[str]] = defaultdict(list)
    for prefix, checks in (
        ("W", WIRE_CHECKS),
        ("R", REQUESTER_CHECKS),
        ("S", STUN_RUNNER_CHECKS),
        ("T", TURN_RUNNER_CHECKS),
        ("C", CENTRAL_RUNNER_CHECKS),
    ):
        for number, (clause_id, _) in enumerate(checks, 1):
            out[clause_id].append(f"{prefix}{number}")
    return out


def render(matrix: Matrix) -> str:
    """The Markdown table, deterministic for a given spec, vectors and tests."""
    musts = [c for c in matrix.clauses if c.is_must]
    lines = [
        "# Traceability: clauses → vectors → tests",
        "",
        "Generated by `python -m railgun_ref.conformance.traceability` from `paper/spec.md`,",
        "the `clause` fields of `railgun_ref/conformance/vectors/*.json`, and the tests under",
        "`tests/` that carry `@pytest.mark.clause(...)` or name a clause in their docstring.",
        "Do not edit by hand; the test suite fails when this file is stale.",
        "",
        f"{len(matrix.clauses)} clauses ({len(musts)} at MUST level); "
        f"{len(matrix.uncovered_must())} MUST clauses without a vector or a test.",
        "",
        "Runner checks are numbered as in spec section 9.1: W for the wire runner,",
        "R for the requester-side runner, S and T for the STUN and TURN runners, C for the",
        "central-service runner.",
        "",
        "| clause | level | runner checks | vectors (file: tcIds) | tests |",
        "|---|---|---|---|---|",
    ]
    runner = runner_checks()
    for clause in matrix.clauses:
        by_file = matrix.vectors.get(clause.id, {})
        vectors = "<br>".join(f"`{f}`: {_ranges(ids)}" for f, ids in sorted(by_file.items()))
        tests = "<br>".join(f"`{t}`" for t in sorted(set(matrix.tests.get(clause.id, []))))
        checks = ", ".join(runner.get(clause.id, [])) or "—"
        lines.append(
            f"| {clause.id} | {clause.level} | {checks} | {vectors or '—'} | {tests or '—'} |"
        )
    unknown = matrix.unknown_references()
    if unknown:
        lines += [
            "",
            "## Cited but not defined in spec.md",
            "",
            "Clause ids that vectors or tests name but `paper/spec.md` does not (yet) define:",
            "",
        ]
        for clause_id in unknown:
            where = sorted(matrix.vectors.get(clause_id, {})) + sorted(
                set(matrix.tests.get(clause_id, []))
            )
            lines.append(f"* {clause_id}: " + ", ".join(f"`{w}`" for w in where))
    return "\n".join(lines) + "\n"


def main(check: bool) -> int:
    """Write ``paper/traceability.md`` (or check it is fresh); 1 if stale or a MUST is bare."""
    if not SPEC_PATH.is_file() or not TESTS_DIR.is_dir():
        print("traceability: needs a checkout (paper/spec.md and tests/)", file=sys.stderr)
        return 2
    matrix = build_matrix()
    text = render(matrix)
    status = 0
    if check:
        committed = TABLE_PATH.read_text(encoding="utf-8") if TABLE_PATH.is_file() else None
        if committed != text:
            print(
                "traceability: paper/traceability.md is stale; run"
                " `python -m railgun_ref.conformance.traceability`",
                file=sys.stderr,
            )
            status = 1
    else:
        TABLE_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {TABLE_PATH}")
    bare = matrix.uncovered_must()
    if bare:
        print(f"traceability: MUST clauses without vector or test: {', '.join(bare)}")
        status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main(check="--check" in sys.argv[1:]))
