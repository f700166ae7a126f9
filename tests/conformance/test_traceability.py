"""Every MUST clause of paper/spec.md has a vector or a test, and the table is fresh."""

from railgun_ref.conformance import traceability
from railgun_ref.conformance.traceability import (
    TABLE_PATH,
    Matrix,
    build_matrix,
    parse_spec,
    render,
)


def test_every_must_clause_has_a_vector_or_a_test() -> None:
    matrix = build_matrix()
    assert matrix.uncovered_must() == []


def test_committed_table_is_fresh() -> None:
    """paper/traceability.md is what `python -m railgun_ref.conformance.traceability` writes."""
    assert TABLE_PATH.read_text(encoding="utf-8") == render(build_matrix())
    assert traceability.main(check=True) == 0


def test_vectors_cite_only_defined_clauses() -> None:
    matrix = build_matrix()
    defined = {clause.id for clause in matrix.clauses}
    assert set(matrix.vectors) <= defined


SAMPLE_SPEC = """\
# 1. Area

**ABC-1.1** (MUST) A thing.

**ABC-1.2** (MUST NOT) Another.

```
**ABC-9.9** (MUST) inside a code fence: not a clause
```

Not a clause: **ABC-1.3** (MUST) in the middle of a line.

## 2. More

**ABC-2.1** (SHOULD) A wish.

**ABC-2.2** (MAY) A permission.
"""

SAMPLE_TESTS = '''
import pytest

@pytest.mark.clause("ABC-1.1")
def test_marked():
    pass

def test_docstring():
    """Checks ABC-1.2 and ABC-2.1."""

def helper():
    """ABC-2.2 is mentioned by a helper, which is no test."""

class TestGroup:
    """ABC-2.2 for every test in the class."""

    def test_inherits(self):
        pass
'''


def test_parser_reads_exactly_the_clause_lines() -> None:
    clauses = parse_spec(SAMPLE_SPEC)
    assert [(c.id, c.level, c.section) for c in clauses] == [
        ("ABC-1.1", "MUST", "1. Area"),
        ("ABC-1.2", "MUST NOT", "1. Area"),
        ("ABC-2.1", "SHOULD", "2. More"),
        ("ABC-2.2", "MAY", "2. More"),
    ]
    assert [c.id for c in clauses if c.is_must] == ["ABC-1.1", "ABC-1.2"]


def test_tests_are_found_by_marker_docstring_and_class() -> None:
    found = dict(traceability.tests_in_source(SAMPLE_TESTS, "tests/x/test_sample.py"))
    assert found == {
        "tests/x/test_sample.py::test_marked": {"ABC-1.1"},
        "tests/x/test_sample.py::test_docstring": {"ABC-1.2", "ABC-2.1"},
        "tests/x/test_sample.py::TestGroup::test_inherits": {"ABC-2.2"},
    }


def test_uncovered_must_clause_is_reported_and_shown() -> None:
    clauses = parse_spec(SAMPLE_SPEC)
    matrix = Matrix(
        clauses=clauses,
        vectors={"ABC-1.1": {"x.json": [1, 2, 3, 7]}},
        tests={"ABC-2.1": ["t::u"], "XYZ-1.1": ["t::v"]},
    )
    assert matrix.uncovered_must() == ["ABC-1.2"]
    assert matrix.unknown_references() == ["XYZ-1.1"]
    text = render(matrix)
    assert "| ABC-1.1 | MUST | — | `x.json`: 1-3, 7 | — |" in text
    assert "| ABC-1.2 | MUST NOT | — | — |" in text
    assert "* XYZ-1.1: `t::v`" in text
