"""Package hygiene: every package says what it exports, and the root knows its version."""

import ast
import importlib
import importlib.util
from pathlib import Path
from typing import Final

import pytest

PACKAGE_ROOT: Final = Path(__file__).resolve().parent.parent / "railgun_ref"
#: Directories under railgun_ref/ that hold data, not Python modules.
DATA_DIRS: Final = frozenset({"vectors", "schemas", "data", "__pycache__"})


def package_dirs() -> list[Path]:
    return sorted(
        path
        for path in [PACKAGE_ROOT, *PACKAGE_ROOT.rglob("*")]
        if path.is_dir() and not DATA_DIRS.intersection(path.relative_to(PACKAGE_ROOT).parts)
    )


def declared_all(init: Path) -> list[str] | None:
    """The literal ``__all__`` of an ``__init__.py``, or None when it has none."""
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if not isinstance(node, ast.Assign):
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(name) for name in value]
    return None


def dotted(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE_ROOT.parent).parts)


@pytest.mark.parametrize("directory", package_dirs(), ids=dotted)
def test_every_package_declares_all(directory: Path) -> None:
    """Each package has an ``__init__.py`` whose ``__all__`` names only things that exist.

    A name is an attribute of the package or one of its submodules; submodules are
    found, not imported, so optional extras (aiortc, pandas) need not be installed.
    """
    init = directory / "__init__.py"
    assert init.exists(), f"{dotted(directory)} has no __init__.py"
    names = declared_all(init)
    assert names, f"{dotted(directory)}/__init__.py has no __all__"
    assert len(names) == len(set(names)), "duplicate names in __all__"
    package = importlib.import_module(dotted(directory))
    missing = [
        name
        for name in names
        if not hasattr(package, name)
        and importlib.util.find_spec(f"{package.__name__}.{name}") is None
    ]
    assert missing == []


def test_the_package_list_is_not_vacuous() -> None:
    names = {dotted(d) for d in package_dirs()}
    assert {"railgun_ref", "railgun_ref.apps", "railgun_ref.drivers", "railgun_ref.dht"} <= names
    assert "railgun_ref.conformance.vectors" not in names
