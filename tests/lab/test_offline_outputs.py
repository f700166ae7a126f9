"""Stored charts need no network: notebooks keep Vega-Lite JSON + PNG, the report inlines Vega."""

import base64
import json
from pathlib import Path
from typing import Any

import altair as alt
import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

import railgun_ref.lab
from railgun_ref.lab.failover import write_html_report
from railgun_ref.lab.offline import (
    PNG_SCALE,
    RENDERER,
    TEXT,
    VEGALITE_MIME,
    chart_png,
    enable_offline_charts,
    remote_script_references,
    script_safe,
    standalone_chart_html,
)
from tests.lab.test_lab_failover import report  # noqa: F401  (the fixture)

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: What altair's default renderer stored before: a page that fetches Vega from a CDN.
CDN_HTML = """<div id="altair-viz-1"></div><script type="text/javascript">
var VEGA_DEBUG = (typeof VEGA_DEBUG == "undefined") ? {} : VEGA_DEBUG;
(function(spec, embedOpt){
  const paths = {"vega": "https://cdn.jsdelivr.net/npm/vega@5?noext"};
  function loadScript(lib) { return new Promise(function(resolve, reject) {
    var s = document.createElement('script'); s.src = paths[lib]; });}
})({}, {});
</script>"""


def _chart() -> Any:
    frame = pd.DataFrame({"node": ["a", "b", "c"], "rtt_ms": [1.5, 2.0, 0.7]})
    return alt.Chart(frame, title="rtt").mark_bar().encode(x="node:N", y="rtt_ms:Q")


def _notebook(path: Path, *outputs: dict[str, Any]) -> Path:
    cell = new_code_cell("chart", outputs=[new_output("display_data", data=o) for o in outputs])
    nbformat.write(new_notebook(cells=[cell]), path)
    return path


# ------------------------------------------------------------------ the checker


@pytest.mark.parametrize(
    "html",
    [
        '<script src="https://cdn.jsdelivr.net/npm/vega@6"></script>',
        "<SCRIPT type='text/javascript' SRC='http://example.invalid/v.js'></SCRIPT>",
        '<script src="//unpkg.com/vega-embed"></script>',
        '<script>import("https://esm.sh/vega").then(v => v)</script>',
        "<script>require.config({paths: {vega: 'x'}});</script>",
        CDN_HTML,
    ],
)
def test_remote_scripts_are_found_in_html(html: str, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(f"<html><body>{html}</body></html>")
    (found,) = remote_script_references(page)[:1]
    assert found.where == "page.html"
    assert found.snippet in html


def test_inline_scripts_links_and_mentions_are_not_remote(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        '<a href="https://www.rfc-editor.org/rfc/rfc2119">RFC 2119</a>'
        '<svg xmlns="http://www.w3.org/2000/svg"></svg>'
        '<p>Never <code>import("https://cdn.jsdelivr.net/npm/vega")</code> here.</p>'
        '<script src="vega.js"></script><script>vegaEmbed("#c", {})</script>'
    )
    assert remote_script_references(page) == []


def test_only_what_a_notebook_would_run_is_searched(tmp_path: Path) -> None:
    notebook = new_notebook(
        metadata={
            "widgets": {
                "state": {"m1": {"state": {"value": "<script src='https://unpkg.com/w.js'>"}}}
            }
        },
        cells=[
            new_code_cell('html = "<script src=\\"https://cdn.jsdelivr.net/x\\">"'),
            new_code_cell(
                "chart",
                outputs=[
                    new_output("display_data", data={"text/plain": "//unpkg.com/x.js"}),
                    new_output("display_data", data={"text/html": CDN_HTML, "text/plain": "c"}),
                    new_output(
                        "display_data", data={"application/javascript": "require.config({})"}
                    ),
                ],
            ),
        ],
    )
    path = tmp_path / "n.ipynb"
    nbformat.write(notebook, path)
    found = remote_script_references(path)
    assert [r.where for r in found] == [
        "n.ipynb cell 1 output 1 text/html",
        "n.ipynb cell 1 output 2 application/javascript",
        "n.ipynb widget state",
    ]
    assert "cdn.jsdelivr.net" in str(found[0])
    assert found[1].snippet == "require.config"
    assert found[2].snippet == "<script src='https://unpkg.com/w.js'>"


# ------------------------------------------------------------------ notebooks


def test_importing_the_lab_enables_the_offline_renderer() -> None:
    assert railgun_ref.lab.__name__ == "railgun_ref.lab"
    assert alt.renderers.active == RENDERER


def test_a_chart_is_stored_as_vega_lite_json_and_png(tmp_path: Path) -> None:
    chart = _chart()
    data, metadata = chart._repr_mimebundle_()
    assert set(data) == {VEGALITE_MIME, "image/png", "text/plain"}
    spec = data[VEGALITE_MIME]
    assert spec["mark"] == {"type": "bar"}
    assert spec["datasets"] == chart.to_dict()["datasets"]
    png = base64.b64decode(data["image/png"])
    assert png.startswith(PNG_MAGIC)
    assert metadata["image/png"]["width"] == int.from_bytes(png[16:20], "big") // PNG_SCALE
    assert data["text/plain"] == TEXT
    stored = _notebook(tmp_path / "n.ipynb", data)
    nbformat.validate(nbformat.read(stored, as_version=4))
    assert remote_script_references(stored) == []


def test_the_png_scale_is_a_renderer_option() -> None:
    try:
        enable_offline_charts(png_scale=2)
        data, metadata = _chart()._repr_mimebundle_()
    finally:
        enable_offline_charts()
    png = base64.b64decode(data["image/png"])
    assert int.from_bytes(png[16:20], "big") == 2 * metadata["image/png"]["width"]
    assert alt.renderers.active == RENDERER
    assert alt.renderers.options == {"png_scale": PNG_SCALE}


def test_the_png_is_a_drawing_of_the_chart() -> None:
    small = chart_png(_chart().to_dict(), scale=1)
    large = chart_png(_chart().to_dict(), scale=2)
    assert small.startswith(PNG_MAGIC) and large.startswith(PNG_MAGIC)
    assert int.from_bytes(large[16:20], "big") == 2 * int.from_bytes(small[16:20], "big")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.name for n in NOTEBOOKS])
def test_stored_notebooks_load_no_remote_script(notebook: Path) -> None:
    assert [str(r) for r in remote_script_references(notebook)] == []
    images = [
        output
        for cell in json.loads(notebook.read_text())["cells"]
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert images, f"{notebook.name} stores no chart image"


# ------------------------------------------------------------------ the report


def test_a_standalone_chart_inlines_vega_and_an_svg_copy(tmp_path: Path) -> None:
    fragment = standalone_chart_html(_chart(), div="rtt")
    page = tmp_path / "chart.html"
    page.write_text(fragment)
    assert remote_script_references(page) == []
    assert 'vegaEmbed("#rtt", ' in fragment
    assert "window.vegaEmbed = vegaEmbed" in fragment or "window.vegaEmbed=" in fragment
    assert len(fragment) > 500_000  # vega, vega-lite and vega-embed themselves
    noscript = fragment[fragment.index("<noscript>") :]
    assert "<svg" in noscript and ">rtt</text>" in noscript


def test_inlined_scripts_cannot_close_their_tag_and_stay_intact() -> None:
    code = 'const e = /</g; s.replace(e, "&lt;"); x = "</SCRIPT>"; y = "</div>";'
    assert (
        script_safe(code)
        == 'const e = /</g; s.replace(e, "&lt;"); x = "<\\/SCRIPT>"; y = "</div>";'
    )
    assert script_safe(json.dumps({"title": "</script><script>alert(1)"})) == (
        '{"title": "<\\/script><script>alert(1)"}'
    )


def test_the_demo_report_loads_no_remote_script(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    write_html_report(request.getfixturevalue("report"), page)
    assert remote_script_references(page) == []
    text = page.read_text(encoding="utf-8")
    assert text.count("<script") == 2  # the inlined libraries, then the call
    assert "<noscript><svg" in text
