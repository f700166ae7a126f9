"""Execute a notebook in place, saving its outputs for ``pytest --nbval``.

nbval compares a notebook's fresh outputs with the ones stored in it, so a
notebook must be committed executed. This does what ``jupyter nbconvert
--execute --inplace`` does, with only jupyter_client and nbformat (both come
with ipykernel and nbval, so no extra install):

    .venv/bin/python -m railgun_ref.lab.notebooks notebooks/00_tour.ipynb

Cells run in order in a fresh ``python3`` kernel started in the notebook's
directory; the first failing cell stops the run and nothing is written. An
output updated later (``update_display_data``, as a lab panel does after a
redraw) is stored as it was last updated, as Jupyter would save it.
"""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import nbformat
import nbformat.v4
from jupyter_client.manager import start_new_kernel
from nbformat import NotebookNode

#: Seconds a single cell may run before the execution is abandoned.
CELL_TIMEOUT: Final = 300.0

# nbformat ships py.typed but leaves these functions unannotated, which mypy --strict
# will not call from typed code: they are bound to names that claim nothing about
# their results, and `_node` checks each result before it is used (as lab/ipython_io.py
# does for IPython).
_read: Final[Callable[..., object]] = nbformat.read
_write: Final[Callable[..., object]] = nbformat.write
_new_output: Final[Callable[..., object]] = nbformat.v4.new_output
_output_from_msg: Final[Callable[..., object]] = nbformat.v4.output_from_msg


def _node(value: object) -> NotebookNode:
    if not isinstance(value, NotebookNode):
        raise TypeError(f"nbformat returned {type(value).__name__}, not a NotebookNode")
    return value


class CellError(RuntimeError):
    """A cell raised; the notebook was not written."""


def _update_display(msg: Any, displays: dict[str, list[Any]]) -> None:
    """Apply an ``update_display_data`` to every stored output shown with its display id."""
    content = msg["content"]
    updated = _node(
        _new_output("display_data", data=content["data"], metadata=content.get("metadata", {}))
    )
    for output in displays.get(content.get("transient", {}).get("display_id"), []):
        output["data"], output["metadata"] = updated["data"], updated["metadata"]


def _run_cell(
    client: Any, source: str, displays: dict[str, list[Any]]
) -> tuple[list[Any], int | None]:
    msg_id = client.execute(source)
    outputs: list[Any] = []
    while True:
        msg = client.get_iopub_msg(timeout=CELL_TIMEOUT)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "status" and msg["content"]["execution_state"] == "idle":
            break
        if kind == "clear_output":
            outputs = []
        elif kind == "update_display_data":
            _update_display(msg, displays)
        elif kind in ("stream", "display_data", "execute_result", "error"):
            output = _node(_output_from_msg(msg))
            display_id = msg["content"].get("transient", {}).get("display_id")
            if display_id is not None:
                displays.setdefault(display_id, []).append(output)
            last = outputs[-1] if outputs else None
            if (
                kind == "stream"
                and last is not None
                and last.get("output_type") == "stream"
                and last["name"] == output["name"]
            ):
                last["text"] = "".join((last["text"], output["text"]))  # as Jupyter shows them
            else:
                outputs.append(output)
    reply = client.get_shell_msg(timeout=CELL_TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = client.get_shell_msg(timeout=CELL_TIMEOUT)
    if reply["content"]["status"] != "ok":
        errors = [o for o in outputs if o.get("output_type") == "error"]
        trace = "\n".join(errors[-1]["traceback"]) if errors else reply["content"]
        raise CellError(f"cell failed:\n{source}\n{trace}")
    count = reply["content"].get("execution_count")
    return outputs, count if isinstance(count, int) else None


def execute_notebook(path: Path, *, kernel_name: str = "python3") -> None:
    """Run every code cell of the notebook at `path` and store the outputs in it."""
    notebook = _node(_read(path, as_version=4))
    manager, client = start_new_kernel(kernel_name=kernel_name, cwd=str(path.parent.resolve()))
    displays: dict[str, list[Any]] = {}  # display id -> outputs showing it, for updates
    try:
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = _run_cell(client, cell.source, displays)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    nbformat.validate(notebook)
    _write(notebook, path)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m railgun_ref.lab.notebooks NOTEBOOK.ipynb...", file=sys.stderr)
        return 2
    for path in paths:
        execute_notebook(path)
        print(f"executed {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
