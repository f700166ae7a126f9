"""Executing a notebook in place stores the outputs nbval compares against."""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from railgun_ref.lab.notebooks import CellError, execute_notebook

pytestmark = pytest.mark.integration


def write(path: Path, *cells: str) -> None:
    notebook = new_notebook(
        cells=[new_markdown_cell("# title"), *(new_code_cell(c) for c in cells)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    nbformat.write(notebook, path)


def test_outputs_are_stored_in_the_notebook(tmp_path: Path) -> None:
    path = tmp_path / "n.ipynb"
    write(path, "print('a')\nprint('b')", "from pathlib import Path\nPath.cwd().name", "x = 1")
    execute_notebook(path)
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == [1, 2, 3]
    assert [o["text"] for o in cells[0].outputs] == ["a\nb\n"]  # one stream, as Jupyter shows
    (result,) = cells[1].outputs
    assert result["data"]["text/plain"] == repr(tmp_path.name)  # runs in the notebook's dir
    assert cells[2].outputs == []


def test_a_failing_cell_stops_the_run_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "n.ipynb"
    write(path, "1 + 1", "raise ValueError('boom')", "print('never')")
    before = path.read_bytes()
    with pytest.raises(CellError, match="boom"):
        execute_notebook(path)
    assert path.read_bytes() == before
