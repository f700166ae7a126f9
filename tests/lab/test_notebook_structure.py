"""Every notebook reads as research: what it shows, its questions and run time up front,
each section opened by its question and closed by its finding, a summary at the end.

These check the stored notebooks' markdown, not their outputs (nbval compares those).
"""

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
#: CI runs every notebook on 2 cores; each must stay under this (the stated run time).
MAX_RUN_SECONDS = 60


def markdown(notebook: Any) -> list[tuple[int, str]]:
    return [(i, c.source) for i, c in enumerate(notebook.cells) if c.cell_type == "markdown"]


def sections(notebook: Any) -> list[list[str]]:
    """The markdown cells of each ``## `` section (the summary excluded), in order."""
    out: list[list[str]] = []
    for _, source in markdown(notebook)[1:]:
        if source.startswith("## Summary"):
            break
        if source.startswith("## "):
            out.append([source])
        elif out:
            out[-1].append(source)
    return out


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_first_cell_says_what_it_shows_asks_and_how_long_it_runs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    for part in ("**What this notebook shows.**", "**Questions.**", "**Run time.**"):
        assert part in first.source, f"{path.name}: no {part}"
    assert re.search(r"^1\. ", first.source, re.MULTILINE), f"{path.name}: no numbered question"
    stated = re.search(r"\*\*Run time\.\*\* About (\d+) s", first.source)
    assert stated is not None, f"{path.name}: the run time is not stated as 'About N s'"
    assert int(stated.group(1)) < MAX_RUN_SECONDS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_section_opens_with_a_question_and_closes_with_a_finding(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    found = sections(notebook)
    assert found, f"{path.name} has no sections"
    for cells in found:
        heading = cells[0].splitlines()[0]
        assert "**Question.**" in cells[0], f"{path.name}: {heading!r} asks no question"
        assert cells[-1].startswith("**Finding:** "), f"{path.name}: {heading!r} has no finding"
    # a finding closes its section: no code cell after it before the next heading
    cells = notebook.cells
    for i, cell in enumerate(cells):
        if cell.cell_type == "markdown" and cell.source.startswith("**Finding:** "):
            following = cells[i + 1] if i + 1 < len(cells) else None
            assert following is None or following.cell_type == "markdown", (
                f"{path.name}: code follows the finding in cell {i}"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_last_cell_is_a_summary(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    last = notebook.cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Summary\n")
    assert last.source.count("\n* ") >= 3, f"{path.name}: the summary lists too little"
