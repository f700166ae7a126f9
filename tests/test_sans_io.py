"""The architecture's one rule: protocol cores are sans-IO (ARCHITECTURE.md, "The one rule").

Every module of the cores -- every ``.py`` under ``railgun_ref/`` except the IO layers
(``drivers/``, ``apps/``, ``lab/``, ``conformance/``, ``bench/``, ``sweep/``, ``fuzz/`` and
``cli.py``) -- is parsed with `ast` and must not:

* import an event loop, socket, clock, ambient randomness, process/thread, media,
  HTTP or storage library (`FORBIDDEN_MODULES`), at module level or inside a function,
  with ``import x``, ``from x import y`` or a relative import;
* import the IO layers of this package (a core that imports a driver is not a core);
* use `random` for anything but the type ``random.Random`` in annotations (randomness
  is an injected `random.Random`, never the module-level generator);
* read a clock through ``datetime.now()``/``utcnow()``/``date.today()``;
* call ``open``, ``print``, ``input``, ``__import__``, ``exec``, ``eval``, ``io.open``,
  ``nacl.utils.random`` or ``SigningKey.generate()``/``PrivateKey.generate()``.

The list of checked modules is everything *not* exempted, so a new core package is
covered the day it is created. The checker itself is tested on synthetic modules.

The layer rule (ARCHITECTURE "Layout") is checked on the same parse: ``cli``, ``apps``,
``lab``, ``bench`` -> ``client`` -> ``drivers`` -> cores, with ``conformance`` on the
cores and the UDP driver. Layers above the cores are listed (`LAYER_RANKS`); every other
unit is a core. No import points up a layer, and the units import each other without a
cycle (networkx over the graph of imports between top-level packages and modules).
"""

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import networkx as nx
import pytest

PACKAGE_ROOT: Final = Path(__file__).resolve().parent.parent / "railgun_ref"

#: Parts of the package that do IO by design and are not protocol cores.
EXEMPT_DIRS: Final = frozenset(
    {"drivers", "netlab", "apps", "lab", "conformance", "bench", "sweep", "fuzz"}
)
#: cli.py and client.py (the integration API over drivers/transport.py) are entry points, not
#: cores; the root __init__.py reads the installed version (lazily) and imports no core.
EXEMPT_FILES: Final = frozenset({"cli.py", "client.py", "__init__.py"})

#: Module (or package) -> why a core must not import it. A name matches its submodules too.
FORBIDDEN_MODULES: Final[dict[str, str]] = {
    # event loops and concurrency
    "asyncio": "event loop",
    "anyio": "event loop",
    "trio": "event loop",
    "curio": "event loop",
    "threading": "threads",
    "_thread": "threads",
    "multiprocessing": "processes",
    "concurrent": "threads/processes",
    "subprocess": "processes",
    "signal": "process signals",
    "sched": "scheduler with a clock",
    # network
    "socket": "network IO",
    "socketserver": "network IO",
    "selectors": "network IO",
    "select": "network IO",
    "ssl": "network IO",
    "aiortc": "media/network IO",
    "aioice": "network IO",
    "httpx": "HTTP client",
    "aiohttp": "HTTP client/server",
    "requests": "HTTP client",
    "urllib.request": "HTTP client",
    "http.client": "HTTP client",
    "http.server": "HTTP server",
    "websockets": "WebSocket IO",
    "starlette": "HTTP server",
    "uvicorn": "HTTP server",
    "fastapi": "HTTP server",
    "dns.resolver": "DNS IO",
    "socks": "SOCKS IO",
    # clocks and ambient randomness
    "time": "clock: time is a `now` argument",
    "os": "os.urandom / environment / filesystem",
    "secrets": "ambient randomness: inject a random.Random or byte source",
    "uuid": "uuid1 reads the clock, uuid4 os.urandom",
    "nacl.utils": "nacl.utils.random reads os.urandom",
    # storage and files: persistence is injected into cores, drivers own it
    "sqlite3": "storage must be injected",
    "dbm": "storage must be injected",
    "shelve": "storage must be injected",
    "pathlib": "filesystem",
    "shutil": "filesystem",
    "tempfile": "filesystem",
    "glob": "filesystem",
    "fileinput": "filesystem",
    "importlib": "dynamic imports / resource files",
    # the IO layers of this package
    "railgun_ref.drivers": "IO layer",
    "railgun_ref.netlab": "IO layer",
    "railgun_ref.apps": "IO layer",
    "railgun_ref.lab": "IO layer",
    "railgun_ref.conformance": "IO layer",
    "railgun_ref.bench": "IO layer",
    "railgun_ref.sweep": "IO layer",
    "railgun_ref.fuzz": "IO layer",
    "railgun_ref.cli": "IO layer",
}

FORBIDDEN_CALLS: Final = frozenset(
    {"open", "print", "input", "breakpoint", "__import__", "exec", "eval"}
)
CLOCK_ATTRS: Final = frozenset({"now", "utcnow", "today"})
CLOCK_OWNERS: Final = frozenset({"datetime", "date"})
KEYGEN_OWNERS: Final = frozenset({"SigningKey", "PrivateKey"})


@dataclass(frozen=True, slots=True)
class Violation:
    module: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.what}"


def forbidden_reason(module: str) -> str | None:
    for name, reason in FORBIDDEN_MODULES.items():
        if module == name or module.startswith(name + "."):
            return reason
    return None


def _terminal_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _annotation_nodes(tree: ast.AST) -> set[int]:
    """ids of every node that sits inside a type annotation."""
    roots: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
            every += [a for a in (args.vararg, args.kwarg) if a is not None]
            roots += [a.annotation for a in every if a.annotation is not None]
            if node.returns is not None:
                roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
    return {id(sub) for root in roots for sub in ast.walk(root)}


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module a (possibly relative) ``from`` import names."""
    if level == 0:
        return name or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    base = parts[: len(parts) - (level - 1)] if level > 1 else parts
    return ".".join([*base, name] if name else base)


def check_source(source: str, module: str, *, is_package: bool = False) -> list[Violation]:
    """Every breach of the sans-IO rule in one module's source."""
    tree = ast.parse(source)
    found: list[Violation] = []
    in_annotation = _annotation_nodes(tree)
    random_aliases: set[str] = set()  # names bound to the `random` module
    random_type_aliases: set[str] = set()  # names bound by `from random import Random`

    def flag(node: ast.AST, what: str) -> None:
        found.append(Violation(module, getattr(node, "lineno", 0), what))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "random":
                    random_aliases.add(alias.asname or "random")
                    continue
                if alias.name.startswith("random."):
                    flag(node, f"imports {alias.name}")
                    continue
                reason = forbidden_reason(alias.name)
                if reason is not None:
                    flag(node, f"imports {alias.name} ({reason})")
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            reason = forbidden_reason(base)
            if reason is not None:
                flag(node, f"imports from {base} ({reason})")
                continue
            for alias in node.names:
                if base == "random":
                    if alias.name == "Random":
                        random_type_aliases.add(alias.asname or "Random")
                    else:
                        flag(node, f"imports random.{alias.name} (ambient randomness)")
                    continue
                full = f"{base}.{alias.name}" if base else alias.name
                if full == "random":  # `from . import random` style cannot reach stdlib; be safe
                    flag(node, "imports random indirectly")
                    continue
                reason = forbidden_reason(full)
                if reason is not None:
                    flag(node, f"imports {full} ({reason})")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                flag(node, f"calls {func.id}()")
            elif isinstance(func, ast.Attribute):
                owner = _terminal_name(func.value)
                if owner == "io" and func.attr == "open":
                    flag(node, "calls io.open()")
                elif owner in KEYGEN_OWNERS and func.attr == "generate":
                    flag(node, f"calls {owner}.generate() (keys come from an injected source)")
                elif owner == "importlib" or func.attr == "import_module":
                    flag(node, f"calls {owner}.{func.attr}() (dynamic import)")
        if isinstance(node, ast.Attribute):
            owner = _terminal_name(node.value)
            if node.attr in CLOCK_ATTRS and owner in CLOCK_OWNERS:
                flag(node, f"reads a clock: {owner}.{node.attr}")

    # Second pass: the random module may name only the type, only in annotations.
    attribute_bases = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in random_aliases:
                if node.attr != "Random":
                    flag(node, f"uses {node.value.id}.{node.attr} (ambient randomness)")
                elif id(node) not in in_annotation:
                    flag(node, f"uses {node.value.id}.Random outside a type annotation")
        elif isinstance(node, ast.Name) and id(node) not in in_annotation:
            if node.id in random_type_aliases:
                flag(node, f"uses {node.id} outside a type annotation")
            elif node.id in random_aliases and id(node) not in attribute_bases:
                flag(node, f"uses the {node.id} module itself")
    return found


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def check_file(path: Path, *, module: str, is_package: bool = False) -> list[Violation]:
    return check_source(path.read_text(encoding="utf-8"), module, is_package=is_package)


def core_modules(root: Path = PACKAGE_ROOT) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in EXEMPT_DIRS or (len(rel.parts) == 1 and rel.name in EXEMPT_FILES):
            continue
        out.append(path)
    return out


# ------------------------------------------------------------------------ the rule itself


def test_core_set_is_not_empty() -> None:
    """The checker looks at the real cores (guards against a vacuous pass)."""
    names = {module_name(p, PACKAGE_ROOT)[0] for p in core_modules()}
    for expected in (
        "railgun_ref.node",
        "railgun_ref.events",
        "railgun_ref.trace",
        "railgun_ref.core.cbor",
        "railgun_ref.wire.cbor",
        "railgun_ref.wire.envelope",
        "railgun_ref.identity.keys",
        "railgun_ref.rpc.replay",
        "railgun_ref.core.errors",
        "railgun_ref.voice.topology",
        "railgun_ref.voice.controller",
    ):
        assert expected in names
    assert not any(n.startswith("railgun_ref.drivers") for n in names)


@pytest.mark.parametrize(
    "path", core_modules(), ids=lambda p: str(p.relative_to(PACKAGE_ROOT.parent))
)
def test_core_module_is_sans_io(path: Path) -> None:
    """ARCHITECTURE "one rule": a protocol core imports no IO, clock or ambient randomness."""
    module, is_package = module_name(path, PACKAGE_ROOT)
    violations = check_file(path, module=module, is_package=is_package)
    assert violations == [], "\n".join(str(v) for v in violations)


# ------------------------------------------------------------------ the checker is tested


OFFENDERS: Final = {
    "import_asyncio": "import asyncio\n",
    "import_as": "import socket as s\n",
    "dotted_import": "import os.path\n",
    "from_import": "from time import monotonic\n",
    "from_package_import_submodule": "from urllib import request\n",
    "http_client": "import http.client\n",
    "import_in_function": "def f() -> None:\n    import trio\n",
    "relative_import_of_driver": "from ..drivers import sim\n",
    "relative_import_of_driver_module": "from ..drivers.sim import Simulator\n",
    "sqlite": "import sqlite3\n",
    "secrets": "from secrets import token_bytes\n",
    "open_call": "def f() -> bytes:\n    return open('x', 'rb').read()\n",
    "print_call": "print('hello')\n",
    "random_function": "import random\nx = random.random()\n",
    "random_in_function": "import random\ndef f() -> int:\n    return random.randint(1, 6)\n",
    "random_aliased": "import random as r\nx = r.getrandbits(8)\n",
    "from_random_function": "from random import randint\n",
    "random_constructed": "import random\nrng = random.Random()\n",
    "random_module_passed": "import random\ndef f(g: object) -> None: ...\nf(random)\n",
    "from_random_type_called": "from random import Random\nrng = Random(1)\n",
    "datetime_now": "import datetime\nx = datetime.datetime.now()\n",
    "from_datetime_now": "from datetime import datetime\nx = datetime.utcnow()\n",
    "date_today": "from datetime import date\nx = date.today()\n",
    "signing_key_generate": "import nacl.signing\nk = nacl.signing.SigningKey.generate()\n",
    "nacl_random": "from nacl.utils import random\n",
    "dynamic_import": "x = __import__('socket')\n",
    "importlib": "import importlib\nm = importlib.import_module('socket')\n",
}


@pytest.mark.parametrize("source", OFFENDERS.values(), ids=OFFENDERS.keys())
def test_checker_flags_offending_module(tmp_path: Path, source: str) -> None:
    """The checker flags a synthetic offending module written to disk."""
    path = tmp_path / "offender.py"
    path.write_text(source, encoding="utf-8")
    violations = check_file(path, module="railgun_ref.wire.offender")
    assert violations, f"not flagged:\n{source}"


ALLOWED: Final = {
    "random_type_in_annotations": (
        "import random\n"
        "def f(rng: random.Random, *, other: 'random.Random | None' = None) -> random.Random:\n"
        "    x: list[random.Random] = [rng]\n"
        "    return x[0]\n"
    ),
    "random_type_imported_for_annotation": (
        "from random import Random\ndef f(rng: Random | None) -> None: ...\n"
    ),
    "pure_stdlib": (
        "import hashlib\nimport heapq\nimport urllib.parse\nfrom collections import deque\n"
    ),
    "datetime_arithmetic": "from datetime import timedelta\nx = timedelta(seconds=1)\n",
    "sibling_core": "from ..wire import cbor\nfrom . import envelope\n",
    "method_named_open": "class A:\n    def open(self) -> None: ...\nA().open()\n",
    "injected_clock_named_now": "def f(*, now: float) -> float:\n    return now\n",
}


@pytest.mark.parametrize("source", ALLOWED.values(), ids=ALLOWED.keys())
def test_checker_allows_pure_module(tmp_path: Path, source: str) -> None:
    """The checker does not flag what the rule allows (e.g. `random.Random` as a type)."""
    path = tmp_path / "fine.py"
    path.write_text(source, encoding="utf-8")
    assert check_file(path, module="railgun_ref.wire.fine") == []


def test_checker_reports_the_line(tmp_path: Path) -> None:
    """A violation names the module and the offending line, so a failure is actionable."""
    path = tmp_path / "late.py"
    path.write_text("import hashlib\n\n\ndef f() -> None:\n    import anyio\n", encoding="utf-8")
    (violation,) = check_file(path, module="railgun_ref.dht.late")
    assert violation.line == 5
    assert violation.module == "railgun_ref.dht.late"
    assert "anyio" in violation.what


def test_relative_import_resolution() -> None:
    """Relative imports resolve against the importing module's package."""
    assert _resolve("railgun_ref.wire.cbor", False, 2, "drivers") == "railgun_ref.drivers"
    assert _resolve("railgun_ref.wire", True, 1, "cbor") == "railgun_ref.wire.cbor"
    assert _resolve("railgun_ref.wire.cbor", False, 1, None) == "railgun_ref.wire"
    assert _resolve("railgun_ref.node", False, 0, "socket") == "socket"


# ------------------------------------------------------------------ the layer rule

#: The layers above the cores and their rank; a unit (a top-level module or package of
#: railgun_ref) not listed here is a core, rank 0, so a new core package is covered at once.
#: ARCHITECTURE "Layout": cli, apps, lab, bench -> client -> drivers -> cores; conformance
#: uses the cores and the UDP driver (wire runner). An import never goes to a higher rank.
LAYER_RANKS: Final[dict[str, int]] = {
    "cli": 4,
    "apps": 4,
    "lab": 4,
    "bench": 4,
    "sweep": 4,
    "fuzz": 4,  #: the atheris harnesses: cores and the DNS server driver, fed by libFuzzer
    "client": 3,
    "conformance": 2,
    "drivers": 1,
    "netlab": 1,  #: driver-level: namespaces, nftables, processes
}
#: The root package (``railgun_ref/__init__.py``) holds only the version; it is a core.
ROOT_UNIT: Final = "railgun_ref"


def unit_of(module: str) -> str:
    """The layer unit of a ``railgun_ref.*`` module: its top-level package or module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT_UNIT


def rank_of(unit: str) -> int:
    return LAYER_RANKS.get(unit, 0)


def imported_modules(tree: ast.AST, module: str, *, is_package: bool) -> list[tuple[str, int]]:
    """Every ``railgun_ref`` module a parsed module imports (any depth), with its line."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            if base == ROOT_UNIT:  # `from railgun_ref import client` names a unit
                found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((base, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == ROOT_UNIT]


def package_imports(root: Path = PACKAGE_ROOT) -> dict[tuple[str, str], list[str]]:
    """(importing unit, imported unit) -> where, for every import between two units."""
    edges: dict[tuple[str, str], list[str]] = {}
    paths = sorted(root.rglob("*.py"))
    units = {unit_of(module_name(path, root)[0]) for path in paths}
    for path in paths:
        module, is_package = module_name(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target, line in imported_modules(tree, module, is_package=is_package):
            source, dest = unit_of(module), unit_of(target)
            dest = dest if dest in units else ROOT_UNIT  # `from railgun_ref import __version__`
            if dest != source:
                edges.setdefault((source, dest), []).append(f"{module}:{line}")
    return edges


def layer_violations(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    """Every import that points up a layer, as 'where: a imports b'."""
    return [
        f"{where[0]}: {source} (rank {rank_of(source)}) imports {dest} (rank {rank_of(dest)})"
        for (source, dest), where in sorted(edges.items())
        if rank_of(dest) > rank_of(source)
    ]


def import_cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """The import cycles between units (empty when the unit graph is acyclic)."""
    graph = nx.DiGraph(list(edges))
    return [
        sorted(component)
        for component in nx.strongly_connected_components(graph)
        if len(component) > 1
    ]


def test_layer_units_exist() -> None:
    """Every listed layer is a real unit of the package (a typo would exempt nothing)."""
    units = {unit_of(module_name(p, PACKAGE_ROOT)[0]) for p in PACKAGE_ROOT.rglob("*.py")}
    assert set(LAYER_RANKS) <= units
    assert {"core", "wire", "identity", "dht", "transport", "node"} <= units


def test_no_import_points_up_a_layer() -> None:
    """No core imports a driver or above; no driver imports conformance, client, apps,
    lab, bench or cli; client imports no application; conformance no client or above."""
    edges = package_imports()
    assert ("drivers", "core") in edges  # the checker sees real imports
    violations = layer_violations(edges)
    assert violations == [], "\n".join(violations)


def test_no_import_cycle_between_packages() -> None:
    """The units of the package import each other without a cycle (any import depth)."""
    edges = package_imports()
    cycles = import_cycles(edges)
    detail = [
        f"{c}: " + "; ".join(f"{a}->{b} at {edges[a, b][0]}" for a, b in edges if a in c and b in c)
        for c in cycles
    ]
    assert cycles == [], "\n".join(detail)


SYNTHETIC_TREE: Final = {
    "__init__.py": "",
    "core/__init__.py": "",
    "core/ids.py": "",
    "wire/__init__.py": "",
    "wire/envelope.py": "from railgun_ref.core import ids\n",
    "drivers/__init__.py": "",
    "drivers/udp.py": "from ..wire import envelope\n",
    "client.py": "from railgun_ref.drivers import udp\n",
    "apps/__init__.py": "",
    "apps/demo.py": "from railgun_ref import client\n",
}


def _write_tree(root: Path, files: dict[str, str]) -> Path:
    package = root / "railgun_ref"
    for name, source in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return package


def test_layer_checker_passes_a_layered_tree(tmp_path: Path) -> None:
    """A tree whose imports all point down has no violation and no cycle."""
    edges = package_imports(_write_tree(tmp_path, SYNTHETIC_TREE))
    assert ("apps", "client") in edges and ("drivers", "wire") in edges
    assert layer_violations(edges) == []
    assert import_cycles(edges) == []


UPWARD_IMPORTS: Final = {
    "core_imports_driver": ("core/ids.py", "from railgun_ref.drivers import udp\n"),
    "driver_imports_client": (
        "drivers/udp.py",
        "def f() -> None:\n    import railgun_ref.client\n",
    ),
    "driver_imports_app": ("drivers/udp.py", "from ..apps.demo import x\n"),
    "client_imports_app": ("client.py", "from railgun_ref.apps import demo\n"),
    "core_imports_root_unit": ("wire/envelope.py", "from railgun_ref import client\n"),
    "root_imports_app": ("__init__.py", "from .apps import demo\n"),
}


@pytest.mark.parametrize("file, source", UPWARD_IMPORTS.values(), ids=UPWARD_IMPORTS.keys())
def test_layer_checker_flags_an_upward_import(tmp_path: Path, file: str, source: str) -> None:
    """An import from a lower layer to a higher one is reported with its module and line."""
    package = _write_tree(tmp_path, {**SYNTHETIC_TREE, file: source})
    (violation,) = layer_violations(package_imports(package))
    module, _ = module_name(package / file, package)
    assert violation.startswith(f"{module}:")


def test_cycle_checker_flags_a_cycle_between_cores(tmp_path: Path) -> None:
    """Two cores importing each other (same layer, so no layer violation) form a cycle."""
    tree = {**SYNTHETIC_TREE, "core/ids.py": "from railgun_ref.wire.envelope import x\n"}
    edges = package_imports(_write_tree(tmp_path, tree))
    assert layer_violations(edges) == []
    assert import_cycles(edges) == [["core", "wire"]]
