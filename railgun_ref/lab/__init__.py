"""Notebook helpers: live localhost networks, traces to pandas, altair charts, widgets.

Notebooks import from here and from the public API only; the logic lives in
these modules, where it is typed and tested (tests/lab/). Importing this
package enables the offline chart renderer (`offline.enable_offline_charts`):
every altair chart a notebook shows is stored as Vega-Lite JSON plus a PNG,
so stored notebooks read well offline and on code-hosting sites.

They need the ``lab`` extra (``pip install 'railgun-ref[lab]'``); without it,
importing this package raises one `ImportError` that names that command.
"""

from railgun_ref.dht.keys import KeyType
from railgun_ref.lab._extra import LAB_EXTRA_MODULES  # first: says what to install
from railgun_ref.lab.capacity import (
    ADVERTISED_COLUMNS,
    CAPABILITY_COLUMNS,
    SCORE_COLUMNS,
    CapacityPanel,
    advertise_population,
    capabilities_from_row,
    capabilities_row,
    capacity_panel,
    eligibility_summary,
    fetch_advertisements,
    load_population,
    ranking_frame,
    score_breakdown,
    score_breakdown_chart,
    score_distribution_chart,
    score_frame,
    score_histogram,
    selection_frame,
)
from railgun_ref.lab.charts import (
    bucket_fill_chart,
    duration_cdf,
    hops_histogram,
    lookup_distances,
    lookup_graph,
    rtt_cdf,
    rtt_heatmap,
    rtt_histogram,
)
from railgun_ref.lab.lookups import (
    BUCKET_COLUMNS,
    LOOKUP_COLUMNS,
    RECORD_COLUMNS,
    SUMMARY_COLUMNS,
    room_key,
)
from railgun_ref.lab.network import PING_COLUMNS, ROUTING_COLUMNS, LocalNetwork
from railgun_ref.lab.offline import (
    RemoteReference,
    enable_offline_charts,
    remote_script_references,
    standalone_chart_html,
)
from railgun_ref.lab.widgets import LookupPanel, NetworkPanel, lookup_panel, network_panel
from railgun_ref.rpc.requests import Channel

__all__ = [
    "ADVERTISED_COLUMNS",
    "BUCKET_COLUMNS",
    "CAPABILITY_COLUMNS",
    "LAB_EXTRA_MODULES",
    "LOOKUP_COLUMNS",
    "PING_COLUMNS",
    "RECORD_COLUMNS",
    "ROUTING_COLUMNS",
    "SCORE_COLUMNS",
    "SUMMARY_COLUMNS",
    "CapacityPanel",
    "Channel",
    "KeyType",
    "LocalNetwork",
    "LookupPanel",
    "NetworkPanel",
    "RemoteReference",
    "advertise_population",
    "bucket_fill_chart",
    "capabilities_from_row",
    "capabilities_row",
    "capacity_panel",
    "duration_cdf",
    "eligibility_summary",
    "enable_offline_charts",
    "fetch_advertisements",
    "hops_histogram",
    "load_population",
    "lookup_distances",
    "lookup_graph",
    "lookup_panel",
    "network_panel",
    "ranking_frame",
    "remote_script_references",
    "room_key",
    "rtt_cdf",
    "rtt_heatmap",
    "rtt_histogram",
    "score_breakdown",
    "score_breakdown_chart",
    "score_distribution_chart",
    "score_frame",
    "score_histogram",
    "selection_frame",
    "standalone_chart_html",
]

enable_offline_charts()
