"""Charts drawn by vl-convert: PNG and SVG images, and HTML that needs no network.

The demo's ``report.html`` must open offline and in viewers that block
scripts: `standalone_chart_html` inlines Vega, Vega-Lite and vega-embed
(vl-convert bundles them, about 0.9 MB) and adds an SVG copy of the chart
in ``<noscript>``. `chart_png` and `chart_svg` draw a Vega-Lite spec without
a browser; `railgun_ref.lab.offline` stores notebook charts with them.
"""

import json
import re
from typing import Any, Final

import altair as alt
import vl_convert

__all__ = [
    "PNG_SCALE",
    "chart_png",
    "chart_svg",
    "script_safe",
    "standalone_chart_html",
    "vl_convert_version",
]

#: Pixels per CSS pixel of a PNG (frontends show it at its CSS size). 1 keeps a
#: stored notebook small (a chart is 30-120 kB); 2 is sharper on high-density screens
#: at about three times the size.
PNG_SCALE: Final = 1


def vl_convert_version() -> str:
    """vl-convert's name of the Vega-Lite version altair writes, e.g. ``v6_4``."""
    major, minor = alt.SCHEMA_VERSION.lstrip("v").split(".")[:2]
    return f"v{major}_{minor}"


def chart_png(spec: dict[str, Any], *, scale: float = PNG_SCALE) -> bytes:
    """The Vega-Lite `spec` drawn as a PNG (no browser, no network)."""
    return bytes(vl_convert.vegalite_to_png(spec, vl_version=vl_convert_version(), scale=scale))


def chart_svg(spec: dict[str, Any]) -> str:
    """The Vega-Lite `spec` drawn as an SVG document."""
    return str(vl_convert.vegalite_to_svg(spec, vl_version=vl_convert_version()))


#: The bundle's entry point: put the three libraries on ``window`` for the next script.
_GLOBALS: Final = "window.vegaEmbed = vegaEmbed; window.vegaLite = vegaLite; window.vega = vega;"

_STANDALONE: Final = """<div id="{div}"></div>
<script>
{bundle}
</script>
<script>
vegaEmbed("#{div}", {spec}, {{"actions": false}});
</script>
<noscript>{svg}</noscript>"""


def script_safe(text: str) -> str:
    """`text` (JSON or minified JavaScript) with nothing that would end its ``<script>``."""
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)


def standalone_chart_html(chart: Any, *, div: str = "charts") -> str:
    """An HTML fragment drawing `chart` with everything inlined: no request leaves the page.

    Vega, Vega-Lite and vega-embed come inlined from vl-convert (about
    0.9 MB); a ``<noscript>`` SVG copy stands in where scripts are blocked.
    """
    spec = chart.to_dict()
    svg = re.sub(r"^<\?xml[^>]*>\s*", "", chart_svg(spec))
    bundle = vl_convert.javascript_bundle(_GLOBALS, vl_version=vl_convert_version())
    return _STANDALONE.format(
        div=div, bundle=script_safe(bundle), spec=script_safe(json.dumps(spec)), svg=svg
    )
