"""An ipywidgets panel to resize a live `LocalNetwork` and redraw its RTT heatmap.

The panel only calls the network's synchronous API, which runs the nodes in
the network's own background thread, so a button callback never touches the
kernel's event loop.
"""

from typing import Any

import ipywidgets as widgets
import pandas as pd

from railgun_ref.lab.charts import rtt_heatmap
from railgun_ref.lab.network import LocalNetwork
from railgun_ref.rpc.requests import Channel


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
        """Replace the chart area's content with `chart` (anything with a mime bundle).

        The bundle is put in the Output widget's state directly rather than
        printed inside ``with output:``, so it lands in the panel whichever
        cell or thread the callback runs from.
        """
        bundle = chart._repr_mimebundle_()
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        self.output.outputs = ({"output_type": "display_data", "data": data, "metadata": metadata},)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def network_panel(network: LocalNetwork, **options: Any) -> NetworkPanel:
    """A `NetworkPanel` for `network`; options as for `NetworkPanel`."""
    return NetworkPanel(network, **options)
