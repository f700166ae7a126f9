"""Notebook helpers: live localhost networks, traces to pandas, altair charts, widgets.

Notebooks import from here and from the public API only; the logic lives in
these modules, where it is typed and tested (tests/lab/).
"""

from railgun_ref.lab.charts import rtt_cdf, rtt_heatmap, rtt_histogram
from railgun_ref.lab.network import PING_COLUMNS, LocalNetwork
from railgun_ref.lab.widgets import NetworkPanel, network_panel
from railgun_ref.rpc.requests import Channel

__all__ = [
    "PING_COLUMNS",
    "Channel",
    "LocalNetwork",
    "NetworkPanel",
    "network_panel",
    "rtt_cdf",
    "rtt_heatmap",
    "rtt_histogram",
]
