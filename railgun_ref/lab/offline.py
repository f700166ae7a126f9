"""Charts that render without a network: in stored notebooks, in the HTML report.

Altair's default renderer stores a chart as HTML that loads Vega from a
CDN. Offline, on a code-hosting site, or in a freshly cloned (untrusted)
notebook, that script never runs and the chart is blank. Importing
`railgun_ref.lab` therefore enables `RENDERER` (`enable_offline_charts`):
each chart is stored as its Vega-Lite JSON (for frontends that draw it
live) plus a PNG drawn here by vl-convert (for everything else: GitHub,
nbviewer, VS Code, JupyterLab without a Vega extension). No script, no URL.

The report's charts come from `railgun_ref.apps.inline_charts` (re-exported
here): `standalone_chart_html` inlines Vega, Vega-Lite and vega-embed, plus
an SVG copy for viewers that block scripts. `remote_script_references`
finds what would still need the network in a notebook or an HTML file; the
tests run it over the stored notebooks and the demo report. A chart is
stored at `PNG_SCALE`; ``enable_offline_charts(png_scale=2)`` is sharper on
high-density screens at about three times the size.
"""

import base64
import json
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import altair as alt

from railgun_ref.apps.inline_charts import (
    PNG_SCALE,
    chart_png,
    chart_svg,
    script_safe,
    standalone_chart_html,
    vl_convert_version,
)

__all__ = [
    "PNG_SCALE",
    "RENDERER",
    "TEXT",
    "VEGALITE_MIME",
    "RemoteReference",
    "chart_png",
    "chart_svg",
    "enable_offline_charts",
    "offline_renderer",
    "remote_script_references",
    "script_safe",
    "standalone_chart_html",
    "vl_convert_version",
]

#: The name of the renderer `enable_offline_charts` registers with altair.
RENDERER: Final = "railgun-offline"
#: The mime type of the stored spec. Altair's own (``application/vnd.vegalite.v6.json``)
#: is not a JSON mime type to nbformat, which then refuses the spec as a dict;
#: this is the ``+json`` form Jupyter frontends use for earlier Vega-Lite versions.
VEGALITE_MIME: Final = f"application/vnd.vegalite.{alt.SCHEMA_VERSION.split('.')[0]}+json"
#: What a frontend that shows only text prints for a chart.
TEXT: Final = "<altair chart: Vega-Lite JSON and a PNG copy are stored with this output>"

#: A script element: its attributes and its code.
_SCRIPT: Final = re.compile(r"<script\b([^>]*)>(.*?)(?:</script\s*>|$)", re.IGNORECASE | re.DOTALL)
#: A ``src`` attribute naming another host (``http://``, ``https://`` or ``//``).
_REMOTE_SRC: Final = re.compile(r"""\bsrc\s*=\s*["']?((?:https?:)?//[^\s"'>]+)""", re.IGNORECASE)
#: In script code: a dynamic import of a URL, requirejs configuration (altair's
#: HTML renderer points it at a CDN), or any URL on a public JavaScript CDN.
_REMOTE_CODE: Final = re.compile(
    r"""\bimport\s*\(\s*["'](?:https?:)?//[^"']+"""
    r"""|\brequire\.config\b"""
    r"""|(?:https?:)?//(?:cdn\.jsdelivr\.net|unpkg\.com|cdnjs\.cloudflare\.com)/[^\s"'<>]*""",
    re.IGNORECASE,
)


def _png_width(png: bytes) -> int:
    """Width in pixels from a PNG's IHDR chunk."""
    (width,) = struct.unpack(">I", png[16:20])
    return int(width)


def offline_renderer(
    spec: dict[str, Any], *, png_scale: float = PNG_SCALE, **_options: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Altair renderer: the spec as Vega-Lite JSON (`VEGALITE_MIME`), a PNG, a text line."""
    png = chart_png(spec, scale=png_scale)
    data = {
        VEGALITE_MIME: spec,
        "image/png": base64.b64encode(png).decode("ascii"),
        "text/plain": TEXT,
    }
    metadata = {"image/png": {"width": round(_png_width(png) / png_scale)}}
    return data, metadata


def enable_offline_charts(*, png_scale: float = PNG_SCALE) -> None:
    """Register `RENDERER` with altair and make it the active one.

    ``alt.renderers.enable("default")`` goes back to altair's CDN-loading HTML.
    """
    if RENDERER not in alt.renderers.names():
        alt.renderers.register(RENDERER, offline_renderer)
    alt.renderers.enable(RENDERER, png_scale=png_scale)


# ------------------------------------------------------------------ the checker


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteReference:
    """One place where stored output would load something from the network."""

    where: str
    snippet: str

    def __str__(self) -> str:
        return f"{self.where}: {self.snippet}"


def _code_references(code: str, where: str) -> Iterator[RemoteReference]:
    for match in _REMOTE_CODE.finditer(code):
        yield RemoteReference(where=where, snippet=match.group(0)[:120])


def _html_references(page: str, where: str) -> Iterator[RemoteReference]:
    """Remote loads in the ``<script>`` elements of `page`; its text may mention URLs freely."""
    for script in _SCRIPT.finditer(page):
        attributes, code = script.groups()
        if _REMOTE_SRC.search(attributes) is not None:
            tag = page[script.start() : script.start(2)]
            yield RemoteReference(where=where, snippet=tag[:120])
        yield from _code_references(code, where)


def _as_text(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return "".join(value)
    return value if isinstance(value, str) else ""


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value (saved widget state holds HTML in places)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _notebook_references(notebook: dict[str, Any], name: str) -> Iterator[RemoteReference]:
    for number, cell in enumerate(notebook.get("cells", [])):
        for index, output in enumerate(cell.get("outputs", [])):
            where = f"{name} cell {number} output {index}"
            data = output.get("data", {})
            yield from _html_references(_as_text(data.get("text/html")), f"{where} text/html")
            code = _as_text(data.get("application/javascript"))
            yield from _code_references(code, f"{where} application/javascript")
    for text in _strings(notebook.get("metadata", {}).get("widgets")):
        yield from _html_references(text, f"{name} widget state")


def remote_script_references(path: Path) -> list[RemoteReference]:
    """Every place in a notebook's stored outputs or an HTML file that loads a remote script.

    Only what would run is searched: the ``<script>`` elements of an HTML
    file, or of a notebook's HTML outputs and saved widget state, and its
    JavaScript outputs (a page or a printed value may *mention* a URL).
    Flagged: a ``src`` on another host, ``import("https://...")``, requirejs
    configuration and any URL on a public JavaScript CDN.
    """
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        return list(_notebook_references(json.loads(text), path.name))
    return list(_html_references(text, path.name))
