"""A stored panel reads well: its bundle carries an HTML and a text snapshot of what it shows."""

import base64
from pathlib import Path

import altair as alt
import ipywidgets as widgets
import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from railgun_ref.lab import capacity_panel
from railgun_ref.lab.notebooks import execute_notebook
from railgun_ref.lab.offline import remote_script_references
from railgun_ref.lab.widgets import (
    SNAPSHOT_NOTE,
    panel_mimebundle,
    show_chart,
    static_html,
    static_text,
)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _panel() -> tuple[widgets.VBox, widgets.Output]:
    output = widgets.Output()
    chart = alt.Chart(pd.DataFrame({"x": [1, 2], "y": [3, 4]})).mark_line().encode(x="x", y="y")
    show_chart(output, chart)
    panel = widgets.VBox(
        [
            widgets.HBox(
                [
                    widgets.IntSlider(value=7, min=2, max=9, description="nodes"),
                    widgets.Dropdown(options=[("node 0", 0), ("node 3", 3)], value=3),
                    widgets.Button(description="restart & ping"),
                ]
            ),
            widgets.Label(value="7 nodes, 42 pings: {'pong': 42}"),
            widgets.HTML(value="<b>relay</b>: eligible<br><b>turn</b>: no"),
            output,
        ]
    )
    return panel, output


def test_the_snapshot_shows_controls_status_and_chart() -> None:
    panel, output = _panel()
    page = static_html(panel)
    assert "<b>nodes</b> 7" in page
    assert "node 3" in page  # a dropdown shows its label, not its value
    assert "<button disabled>restart &amp; ping</button>" in page
    assert "{&#x27;pong&#x27;: 42}" in page  # labels are text, escaped
    assert "<b>relay</b>: eligible<br>" in page  # HTML widgets are HTML
    (stored,) = output.outputs
    png = stored["data"]["image/png"]
    assert base64.b64decode(png).startswith(b"\x89PNG")
    assert f'<img src="data:image/png;base64,{png}" width=' in page
    assert "<script" not in page


def test_the_text_snapshot_has_one_line_per_part() -> None:
    panel, _ = _panel()
    assert static_text(panel) == [
        "nodes: 7",
        ": node 3",
        "[restart & ping]",
        "7 nodes, 42 pings: {'pong': 42}",
        "relay: eligible; turn: no",
        "[1 output(s): chart or table]",
    ]


def test_panels_keep_the_live_widget_and_add_the_snapshot(tmp_path: Path) -> None:
    panel = capacity_panel()
    bundle = panel._repr_mimebundle_()
    assert bundle[WIDGET_VIEW]["model_id"] == panel.widget.model_id
    assert bundle["text/plain"].startswith(SNAPSHOT_NOTE)
    assert "VBox(" not in bundle["text/plain"]
    assert "total 79 points" in bundle["text/plain"]
    assert "<b>class</b> desktop-standard" in bundle["text/html"]
    assert '<img src="data:image/png;base64,' in bundle["text/html"]
    notebook = new_notebook(cells=[new_code_cell("panel", outputs=[new_output("display_data")])])
    notebook.cells[0].outputs[0]["data"] = bundle
    path = tmp_path / "panel.ipynb"
    nbformat.write(notebook, path)
    nbformat.validate(nbformat.read(path, as_version=4))
    assert remote_script_references(path) == []


def test_a_bare_widget_gets_the_snapshot_too() -> None:
    slider = widgets.FloatSlider(value=0.5, description="loss")
    bundle = panel_mimebundle(slider)
    assert bundle["text/plain"] == f"{SNAPSHOT_NOTE}\nloss: 0.5"
    assert "<b>loss</b> 0.5" in bundle["text/html"]


@pytest.mark.integration
def test_a_stored_panel_shows_its_last_redraw(tmp_path: Path) -> None:
    """The panel is shown in one cell and changed in the next: the stored output of the
    first cell is the snapshot after the change (as Jupyter saves an updated display)."""
    path = tmp_path / "panel.ipynb"
    notebook = new_notebook(
        cells=[
            new_code_cell("from railgun_ref.lab import capacity_panel\npanel = capacity_panel()"),
            new_code_cell("panel"),
            new_code_cell("panel.upload.value = 1.5  # moving the slider redraws"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    nbformat.write(notebook, path)
    execute_notebook(path)
    cells = nbformat.read(path, as_version=4).cells
    (shown,) = cells[1].outputs
    assert shown["output_type"] == "display_data"
    assert WIDGET_VIEW in shown["data"]
    text = shown["data"]["text/plain"]
    assert "upload Mbps: 1.5" in text and "upload Mbps: 20.0" not in text
    assert "<b>upload Mbps</b> 1.5" in shown["data"]["text/html"]
    assert cells[2].outputs == []
    assert remote_script_references(path) == []
