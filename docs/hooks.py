"""MkDocs hooks: the API reference and the specification, generated at build time.

The reference has one page per package of ``railgun_ref`` (and one for its
top-level modules), each rendering every public module it finds on disk
with mkdocstrings, so a module or package added later is documented without
touching this file or ``mkdocs.yml``. The normative specification and its
traceability table are copied from ``paper/``, which stays their only copy.
"""

import ast
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "railgun_ref"
#: Pages first in this order (the public API, then the protocol cores bottom-up, then IO);
#: packages not named here follow alphabetically.
ORDER = (
    "client",
    "core",
    "wire",
    "identity",
    "rpc",
    "dht",
    "capacity",
    "stun",
    "transport",
    "rooms",
    "voice",
    "relay",
    "node",
    "drivers",
    "apps",
    "lab",
    "conformance",
    "bench",
)
#: Top-level modules with a page of their own; the others share the "node" page.
OWN_PAGE = ("client",)
#: Pages copied from paper/ into the site: (source, page, title).
PAPER = (
    ("spec.md", "spec.md", "Specification"),
    ("traceability.md", "traceability.md", "Traceability"),
)


def _public(name: str) -> bool:
    return not name.startswith("_")


def _modules(directory: Path, dotted: str) -> list[str]:
    """Dotted names of the public modules under `directory`, package docstring first."""
    names = [dotted] if (directory / "__init__.py").exists() else []
    for path in sorted(directory.iterdir()):
        if path.suffix == ".py" and _public(path.stem):
            names.append(f"{dotted}.{path.stem}")
        elif path.is_dir() and _public(path.name) and any(path.glob("*.py")):
            names.extend(_modules(path, f"{dotted}.{path.name}"))
    return names


def reference_pages() -> dict[str, list[str]]:
    """Page name -> the modules it documents, in navigation order."""
    pages: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.iterdir()):
        if path.is_dir() and _public(path.name) and any(path.glob("*.py")):
            pages[path.name] = _modules(path, f"railgun_ref.{path.name}")
        elif path.suffix == ".py" and _public(path.stem):
            page = path.stem if path.stem in OWN_PAGE else "node"
            pages.setdefault(page, []).append(f"railgun_ref.{path.stem}")
    rank = {name: index for index, name in enumerate(ORDER)}
    return dict(sorted(pages.items(), key=lambda item: (rank.get(item[0], len(ORDER)), item[0])))


def _namespace_block(module: str) -> str:
    """A module of a directory without ``__init__.py``: its docstring and public names.

    Static analysis (griffe) does not descend into such a namespace package,
    so mkdocstrings cannot collect it; this is read with `ast` instead.
    Once the directory gets an ``__init__.py`` its modules get full pages.
    """
    tree = ast.parse(ROOT.joinpath(*module.split(".")).with_suffix(".py").read_text())
    names = [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and _public(node.name)
    ]
    listed = ", ".join(f"`{name}`" for name in names) or "none"
    return f"## `{module}`\n\n{ast.get_docstring(tree) or ''}\n\nPublic names: {listed}.\n"


def _block(module: str) -> str:
    """The Markdown documenting `module`: a mkdocstrings directive where it can collect it."""
    path = ROOT.joinpath(*module.split("."))
    if path.is_dir() or (path.parent / "__init__.py").exists():
        return f"::: {module}\n"
    return _namespace_block(module)


def _page_text(page: str, modules: list[str]) -> str:
    title = f"`railgun_ref.{page}`" if page != "node" else "Node, events and the command line"
    blocks = "\n".join(_block(module) for module in modules)
    return f"# {title}\n\n{blocks}"


def on_config(config: MkDocsConfig, **_kwargs: Any) -> MkDocsConfig:
    """Append the copied paper pages and the API reference to the navigation."""
    nav = list(config.nav or [])
    nav.extend({title: page} for _, page, title in PAPER)
    reference = [{page: f"reference/{page}.md"} for page in reference_pages()]
    nav.append({"API reference": reference})
    config.nav = nav
    return config


def on_files(files: Files, config: MkDocsConfig, **_kwargs: Any) -> Files:
    """Add the generated reference pages and the copies of the paper."""
    for page, modules in reference_pages().items():
        files.append(
            File.generated(config, f"reference/{page}.md", content=_page_text(page, modules))
        )
    for source, page, _ in PAPER:
        files.append(File.generated(config, page, abs_src_path=str(ROOT / "paper" / source)))
    return files
