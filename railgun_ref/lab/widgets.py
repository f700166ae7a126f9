"""ipywidgets panels over a live `LocalNetwork`.

`NetworkPanel` resizes the network and redraws its RTT heatmap;
`LookupPanel` runs one DHT lookup from a chosen node to a room's key and
draws it hop by hop. Panels only call the network's synchronous API, which
runs the nodes in the network's own background thread, so a button callback
never touches the kernel's event loop.
"""

from typing import Any

import ipywidgets as widgets
import pandas as pd

from railgun_ref.drivers.udp import HostStoppedError
from railgun_ref.events import LookupFinished
from railgun_ref.lab.charts import lookup_distances, lookup_graph, rtt_heatmap
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


class NetworkPanel:
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
        return pings

    def show(self, chart: Any) -> None:
        """Replace the chart area's content with `chart` (see `show_chart`)."""
        show_chart(self.output, chart)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def network_panel(network: LocalNetwork, **options: Any) -> NetworkPanel:
    """A `NetworkPanel` for `network`; options as for `NetworkPanel`."""
    return NetworkPanel(network, **options)


class LookupPanel:
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
        return frame

    def show(self, chart: Any) -> None:
        """Replace the chart area's content with `chart` (see `show_chart`)."""
        show_chart(self.output, chart)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def lookup_panel(network: LocalNetwork, **options: Any) -> LookupPanel:
    """A `LookupPanel` for `network`; options as for `LookupPanel`."""
    return LookupPanel(network, **options)
