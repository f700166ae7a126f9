"""The documentation site builds with `mkdocs build --strict` and covers every package."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from railgun_ref.lab.offline import remote_script_references

ROOT = Path(__file__).resolve().parents[2]
#: Pages the README and the tutorial link to; each must exist.
REQUIRED = (
    "client",
    "core",
    "wire",
    "identity",
    "dht",
    "capacity",
    "transport",
    "voice",
    "relay",
    "drivers",
    "lab",
    "node",
)


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_module_is_on_exactly_one_reference_page() -> None:
    pages = _hooks().reference_pages()
    assert list(pages)[:2] == ["client", "core"]
    assert set(REQUIRED) <= set(pages)
    documented = [module for modules in pages.values() for module in modules]
    assert len(documented) == len(set(documented))
    on_disk = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "railgun_ref").rglob("*.py")
        if not any(part.startswith("_") and part != "__init__.py" for part in path.parts)
    }
    assert on_disk - {"railgun_ref"} == set(documented)


@pytest.mark.timeout(180)
def test_the_site_builds_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for page in REQUIRED:
        assert (site / "reference" / page / "index.html").is_file(), page
    client = (site / "reference" / "client" / "index.html").read_text()
    assert 'id="railgun_ref.client.connect"' in client  # rendered from the docstrings
    spec = (site / "spec" / "index.html").read_text()
    assert "ENV-" in spec and "RFC 2119" in spec
    assert "installs JupyterLab into" in (site / "install" / "index.html").read_text()
    for page in site.rglob("*.html"):
        assert remote_script_references(page) == [], page
