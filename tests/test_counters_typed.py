"""No counter is named by a string (core/counters.py): every ``.py`` under ``railgun_ref/``.

Counters are `Counters[N]` keyed by a component's ``StrEnum`` of names, so a renamed
counter is a type error rather than a silently new series. mypy already refuses a
string passed to `Counters.inc`; this test, on an `ast` parse of the whole package,
catches the other ways a string-named counter comes back:

* an augmented assignment to a subscript with a string or f-string key
  (``stats["sent"] += 1``, ``counters[f"bytes.{d}"] += n``), and a plain assignment
  that steps one (``stats["sent"] = stats.get("sent", 0) + 1``);
* a call to ``inc``/``_count``/``count_*``-style helpers (`COUNTING_CALLS`) whose
  name argument (the first positional one, or ``name=``) is a string or f-string.

The checker is tested on synthetic snippets, so a package that passes is not a
checker that finds nothing.
"""

import ast
from pathlib import Path
from typing import Final

import pytest

PACKAGE_ROOT: Final = Path(__file__).resolve().parent.parent / "railgun_ref"

#: Names of methods and functions that step a counter by the name they are given.
COUNTING_CALLS: Final = frozenset({"inc", "_inc", "incr", "_count", "count_event", "bump"})


def _is_text(node: ast.expr) -> bool:
    """A string literal or an f-string."""
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    if isinstance(call.func, ast.Name):
        return call.func.id
    return None


def _counter_name_argument(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg == "name"), None)


def _steps_text_key(target: ast.Subscript, value: ast.expr) -> bool:
    """``x["k"] = x["k"] + n`` or ``x["k"] = x.get("k", 0) + n``: an increment spelt out."""
    if not _is_text(target.slice):
        return False
    if not (isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add | ast.Sub)):
        return False
    key = ast.dump(target.slice)
    for side in (value.left, value.right):
        if isinstance(side, ast.Subscript) and ast.dump(side.slice) == key:
            return True
        if (
            isinstance(side, ast.Call)
            and _called_name(side) == "get"
            and side.args
            and ast.dump(side.args[0]) == key
        ):
            return True
    return False


def string_named_counters(source: str) -> list[tuple[int, str]]:
    """(line, code) of every counter step in `source` that names its counter by a string."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        match node:
            case ast.AugAssign(target=ast.Subscript(slice=key)) if _is_text(key):
                found.append((node.lineno, ast.unparse(node)))
            case ast.Assign(targets=[ast.Subscript() as target], value=value):
                if _steps_text_key(target, value):
                    found.append((node.lineno, ast.unparse(node)))
            case ast.Call() if _called_name(node) in COUNTING_CALLS:
                name = _counter_name_argument(node)
                if name is not None and _is_text(name):
                    found.append((node.lineno, ast.unparse(node)))
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        'self.counters["sent"] += 1',
        'counters[f"bytes.{direction}"] += len(data)',
        'stats["dropped"] -= 1',
        'stats["sent"] = stats.get("sent", 0) + 1',
        'stats["sent"] = stats["sent"] + 1',
        'self.counters.inc("rejected", label=code)',
        'self._count(f"rejected.{code.name}")',
        'counters.inc(name="relayed")',
    ],
)
def test_checker_finds_string_named_counters(snippet: str) -> None:
    assert string_named_counters(snippet) == [(1, ast.unparse(ast.parse(snippet)))]


@pytest.mark.parametrize(
    "snippet",
    [
        "self.counters.inc(ProxyCounter.RESET)",
        "self.counters.inc(ProxyCounter.BYTES, len(data), label=direction)",
        "votes[(start - r) % frames] += 1",
        "self.failures[label] += 1",
        'row["text"] = row["text"].strip()',
        'config["name"] = "central"',
        "states.count('unresponsive')",
    ],
)
def test_checker_accepts_typed_counters_and_other_code(snippet: str) -> None:
    assert string_named_counters(snippet) == []


def test_no_counter_in_the_package_is_named_by_a_string() -> None:
    """Every counter in railgun_ref/ is stepped by a member of its component's enum."""
    offences = [
        f"{path.relative_to(PACKAGE_ROOT.parent)}:{line}: {code}"
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
        for line, code in string_named_counters(path.read_text(encoding="utf-8"))
    ]
    assert offences == [], "counters named by strings:\n" + "\n".join(offences)
