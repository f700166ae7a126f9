"""Dispatch over a closed union ends in ``assert_never``, never in ``case _: raise`` (CORE-1.4).

A ``case _:`` whose body only raises turns a forgotten action type into a run-time
error; ``assert_never`` makes it a type error that mypy --strict reports. This
scans every module of the package with `ast`.
"""

import ast
from pathlib import Path
from typing import Final

import pytest

PACKAGE_ROOT: Final = Path(__file__).resolve().parent.parent / "railgun_ref"


def raising_wildcards(source: str) -> list[int]:
    """Line numbers of ``case _:`` arms whose whole body is a ``raise``, in a match on types.

    Only a match with class patterns (``case SendDatagram(...)``) dispatches over a
    union; a match on strings read from data is open and may end in a raise.
    """
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Match):
            continue
        if not any(isinstance(c.pattern, ast.MatchClass) for c in node.cases):
            continue
        for case in node.cases:
            wildcard = isinstance(case.pattern, ast.MatchAs) and case.pattern.pattern is None
            if wildcard and case.guard is None and all(isinstance(s, ast.Raise) for s in case.body):
                lines.append(case.pattern.lineno)
    return lines


def test_checker_finds_a_raising_wildcard() -> None:
    bad = "match x:\n    case A():\n        pass\n    case _:\n        raise TypeError(x)\n"
    good = "match x:\n    case A():\n        pass\n    case _:\n        assert_never(x)\n"
    on_data = "match x:\n    case 'join':\n        pass\n    case _:\n        raise KeyError(x)\n"
    assert raising_wildcards(bad) == [4]
    assert raising_wildcards(good) == []
    assert raising_wildcards(on_data) == []


@pytest.mark.parametrize(
    "path", sorted(PACKAGE_ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE_ROOT))
)
def test_no_match_ends_in_a_bare_raise(path: Path) -> None:
    assert raising_wildcards(path.read_text(encoding="utf-8")) == []
