"""ipywidgets panels over a live `LocalNetwork`.

`NetworkPanel` resizes the network and redraws its RTT heatmap;
`LookupPanel` runs one DHT lookup from a chosen node to a room's key and
draws it hop by hop. Panels only call the network's synchronous API, which
runs the nodes in the network's own background thread, so a button callback
never touches the kernel's event loop.

A stored notebook has no widget state, so every panel's mime bundle also
carries a static snapshot of what it shows (`panel_mimebundle`): HTML with
the controls' values, the status lines and the chart as a PNG, and a plain
text summary. Live frontends draw the widget; GitHub and nbviewer show the
snapshot instead of ``VBox(children=(HBox(...``.
"""

import html
import re
from typing import Any, Final

import ipywidgets as widgets
import pandas as pd

from railgun_ref.drivers.udp import HostStoppedError
from railgun_ref.events import LookupFinished
from railgun_ref.lab.charts import lookup_distances, lookup_graph, rtt_heatmap
from railgun_ref.lab.ipython_io import DisplayHandle, display_updatable, update_display
from railgun_ref.lab.lookups import room_key
from railgun_ref.lab.network import LocalNetwork
from railgun_ref.rpc.requests import Channel


def show_chart(output: widgets.Output, chart: Any) -> None:
    """Replace `output`'s content with `chart` (anything with a mime bundle).

    The bundle is put in the Output widget's state directly rather than
    printed inside ``with output:``, so it lands in the panel whichever cell
    or thread the callback runs from.
    """
    bundle = chart._repr_mimebundle_()
    data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
    output.outputs = ({"output_type": "display_data", "data": data, "metadata": metadata},)


#: First line of a panel snapshot, for readers of a stored notebook.
SNAPSHOT_NOTE: Final = "Snapshot of an interactive panel: run the notebook to use it."
_TAG: Final = re.compile(r"<[^>]+>")
_ROW: Final = "display:flex;flex-wrap:wrap;gap:0.4em 1.5em;align-items:center"


def _output_html(output: dict[str, Any]) -> str:
    data, metadata = output.get("data", {}), output.get("metadata", {})
    if "image/png" in data:
        width = metadata.get("image/png", {}).get("width")
        size = f' width="{int(width)}"' if width else ""
        return f'<img src="data:image/png;base64,{data["image/png"]}"{size}>'
    for mime in ("image/svg+xml", "text/html"):
        if mime in data:
            return str(data[mime])
    text = data.get("text/plain", output.get("text", ""))
    return f"<pre>{html.escape(str(text))}</pre>"


def _control(widget: Any) -> tuple[str, str] | None:
    """(label, shown value) of a control with a description, or None."""
    description = str(getattr(widget, "description", "") or "")
    if isinstance(widget, widgets.Button):
        return description, ""
    if not isinstance(widget, widgets.ValueWidget) or isinstance(widget, widgets.Label):
        return None
    value = getattr(widget, "label", None) or widget.value
    return description, str(value)


def static_html(widget: Any) -> str:
    """HTML drawing what `widget` (and its children) show now, without any script."""
    if isinstance(widget, widgets.Box):
        inner = "".join(static_html(child) for child in widget.children)
        style = f' style="{_ROW}"' if isinstance(widget, widgets.HBox) else ""
        return f"<div{style}>{inner}</div>"
    if isinstance(widget, widgets.Output):
        return "".join(_output_html(dict(output)) for output in widget.outputs)
    if isinstance(widget, widgets.HTML):
        return f"<div>{widget.value}</div>"
    if isinstance(widget, widgets.Label):
        return f"<div>{html.escape(str(widget.value))}</div>" if widget.value else ""
    control = _control(widget)
    if control is None:
        return ""
    label, value = control
    if isinstance(widget, widgets.Button):
        return f"<button disabled>{html.escape(label)}</button>"
    return f"<span><b>{html.escape(label)}</b> {html.escape(value)}</span>"


def static_text(widget: Any) -> list[str]:
    """One line per control, status line and output of `widget`, as plain text."""
    if isinstance(widget, widgets.Box):
        return [line for child in widget.children for line in static_text(child)]
    if isinstance(widget, widgets.Output):
        return [f"[{len(widget.outputs)} output(s): chart or table]"] if widget.outputs else []
    if isinstance(widget, widgets.HTML | widgets.Label):
        text = html.unescape(_TAG.sub("", str(widget.value).replace("<br>", "; ")))
        return [text] if text else []
    control = _control(widget)
    if control is None:
        return []
    label, value = control
    return [f"[{label}]" if isinstance(widget, widgets.Button) else f"{label}: {value}"]


def panel_mimebundle(widget: Any, **kwargs: Any) -> dict[str, Any]:
    """`widget`'s own mime bundle plus a static HTML and text snapshot of what it shows."""
    bundle = dict(widget._repr_mimebundle_(**kwargs))
    bundle["text/html"] = (
        f'<div class="railgun-panel"><p><i>{SNAPSHOT_NOTE}</i></p>{static_html(widget)}</div>'
    )
    bundle["text/plain"] = "\n".join([SNAPSHOT_NOTE, *static_text(widget)])
    return bundle


class SnapshotPanel:
    """Base of the panels: shown as the live widget plus a snapshot that follows redraws.

    Shown by IPython (a cell's value or ``display(panel)``), a panel keeps the
    display's handle; `refresh_snapshot` (called after every redraw) updates
    that output in place, so a stored notebook holds the last state drawn,
    even when a later cell pressed the button.
    """

    widget: widgets.Box
    _handle: DisplayHandle | None = None

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return panel_mimebundle(self.widget, **kwargs)

    def _ipython_display_(self) -> None:
        bundle = self._repr_mimebundle_()
        self._handle = display_updatable(bundle)

    def refresh_snapshot(self) -> None:
        """Update the snapshot where the panel was last displayed (if it was)."""
        if self._handle is not None:
            update_display(self._handle, self._repr_mimebundle_())


class NetworkPanel(SnapshotPanel):
    """A node-count slider, a restart button, a status line and a chart area.

    Display it as the last expression of a cell (or ``display(panel.widget)``).
    Clicking the button restarts the network with the slider's node count,
    pings all pairs and redraws the heatmap; ``panel.button.click()`` does the
    same from code.
    """

    def __init__(
        self,
        network: LocalNetwork,
        *,
        min_nodes: int = 2,
        max_nodes: int = 40,
        channel: Channel | str = Channel.DATAGRAM,
    ) -> None:
        self.network = network
        self.channel = channel
        self.last_pings: pd.DataFrame | None = None
        self.slider = widgets.IntSlider(
            value=min(max(network.size, min_nodes), max_nodes),
            min=min_nodes,
            max=max_nodes,
            description="nodes",
            continuous_update=False,
        )
        self.button = widgets.Button(description="restart and ping", icon="refresh")
        self.status = widgets.Label(value="")
        self.output = widgets.Output()
        self.widget = widgets.VBox(
            [widgets.HBox([self.slider, self.button, self.status]), self.output]
        )
        self.button.on_click(self._on_click)

    def _on_click(self, _button: Any) -> None:
        self.redraw()

    def redraw(self) -> pd.DataFrame:
        """Restart with the slider's node count, ping all pairs, draw; return the pings."""
        self.status.value = f"starting {self.slider.value} nodes..."
        self.network.restart(int(self.slider.value))
        pings = self.network.ping_all_pairs(channel=self.channel)
        self.last_pings = pings
        outcomes = pings["outcome"].value_counts().to_dict()
        self.status.value = f"{self.network.size} nodes, {len(pings)} pings: {outcomes}"
        self.show(rtt_heatmap(pings))
        self.refresh_snapshot()
        return pings

    def show(self, chart: Any) -> None:
        """Replace the chart area's content with `chart` (see `show_chart`)."""
        show_chart(self.output, chart)


def network_panel(network: LocalNetwork, **options: Any) -> NetworkPanel:
    """A `NetworkPanel` for `network`; options as for `NetworkPanel`."""
    return NetworkPanel(network, **options)


class LookupPanel(SnapshotPanel):
    """Pick a start node and a room name, press the button, see the lookup hop by hop.

    The room name is hashed to its DHT key (`lookups.room_key`); the start
    node list holds the nodes running when the panel was made (or last
    `refresh_nodes`). ``panel.button.click()`` or `run` does what pressing
    the button does; `last_result` and `last_frame` keep what it drew.
    """

    def __init__(self, network: LocalNetwork, *, room: str = "general", start: int = 0) -> None:
        self.network = network
        self.last_result: LookupFinished | None = None
        self.last_frame: pd.DataFrame | None = None
        self.start = widgets.Dropdown(description="start node")
        self.refresh_nodes(start)
        self.room = widgets.Text(value=room, description="room")
        self.button = widgets.Button(description="look up", icon="search")
        self.status = widgets.Label(value="")
        self.output = widgets.Output()
        self.widget = widgets.VBox(
            [widgets.HBox([self.start, self.room, self.button]), self.status, self.output]
        )
        self.button.on_click(self._on_click)

    def refresh_nodes(self, start: int | None = None) -> None:
        """Offer the nodes running now; keep the selection (or select `start`) if it runs."""
        running = self.network.running_nodes()
        wanted = self.start.value if start is None else start
        self.start.options = [(f"node {i}", i) for i in running]
        if running:
            self.start.value = wanted if wanted in running else running[0]

    def _on_click(self, _button: Any) -> None:
        try:
            self.run()
        except HostStoppedError:  # stopped since the list was made: offer what runs
            stopped = self.start.value
            self.refresh_nodes()
            self.status.value = f"node {stopped} was stopped; pick another"
            self.refresh_snapshot()

    def run(self) -> pd.DataFrame:
        """Look up the room's key from the chosen node, draw it, return its lookup table.

        Raises `HostStoppedError` if the chosen node was stopped (the button
        reports it in the status line and refreshes the node list instead).
        """
        start, name = int(self.start.value), str(self.room.value)
        self.status.value = f"node {start} looking up room {name!r}..."
        result = self.network.find_node(start, room_key(name))
        frame = self.network.lookup_frame(result, start=start)
        self.last_result, self.last_frame = result, frame
        states = frame["state"].value_counts().to_dict()
        self.status.value = (
            f"node {start} -> room {name!r}: {len(result.closest)} closest found, "
            f"{result.hops} hops, {result.queries} queries, "
            f"{result.duration * 1000:.1f} ms; peers {states}"
        )
        self.show(lookup_graph(frame) | lookup_distances(frame))
        self.refresh_snapshot()
        return frame

    def show(self, chart: Any) -> None:
        """Replace the chart area's content with `chart` (see `show_chart`)."""
        show_chart(self.output, chart)


def lookup_panel(network: LocalNetwork, **options: Any) -> LookupPanel:
    """A `LookupPanel` for `network`; options as for `LookupPanel`."""
    return LookupPanel(network, **options)
