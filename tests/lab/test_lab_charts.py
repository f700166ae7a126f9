"""Altair charts of ping and DHT tables build valid Vega-Lite specs of the right data."""

import math
from typing import Any

import pandas as pd
import pytest

from railgun_ref.dht.geometry import bucket_index, bucket_range
from railgun_ref.lab import (
    LocalNetwork,
    bucket_fill_chart,
    duration_cdf,
    hops_histogram,
    lookup_distances,
    lookup_graph,
    rtt_cdf,
    rtt_heatmap,
    rtt_histogram,
)
from railgun_ref.lab.charts import HEATMAP_COLUMNS, NO_RTT_COLOURS, heatmap_cells, lookup_layout
from railgun_ref.lab.lookups import bucket_table

pytestmark = pytest.mark.integration


def rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The data rows altair inlined in `spec`."""
    (values,) = spec["datasets"].values()
    assert isinstance(values, list)
    return values


def heatmap_layers(spec: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cells of the PONG layer and of the no-RTT layer of an `rtt_heatmap` spec."""
    pongs, others = spec["layer"]
    return (
        pd.DataFrame(spec["datasets"][pongs["data"]["name"]]),
        pd.DataFrame(spec["datasets"][others["data"]["name"]]),
    )


def test_the_heatmap_is_a_src_by_dst_grid_coloured_by_rtt(pings: pd.DataFrame) -> None:
    spec = rtt_heatmap(pings).to_dict()  # validates against the Vega-Lite schema
    pongs_layer = spec["layer"][0]
    assert pongs_layer["mark"]["type"] == "rect"
    encoding = pongs_layer["encoding"]
    assert (encoding["x"]["field"], encoding["y"]["field"]) == ("dst", "src")
    assert encoding["color"]["field"] == "rtt_ms" and encoding["color"]["type"] == "quantitative"
    assert encoding["x"]["scale"]["domain"] == list(range(5)) == encoding["y"]["scale"]["domain"]
    pongs, others = heatmap_layers(spec)
    assert len(pongs) == len(pings) == 20 and others.empty
    assert spec["layer"][1]["encoding"]["color"]["legend"] is None  # nothing to explain


# Nodes 0..3; node 2 was down: pings to it timed out, and it sent none.
DOWN_PINGS = pd.DataFrame(
    {
        "src": [0, 0, 0, 1, 1, 1, 3, 3, 3],
        "dst": [1, 2, 3, 0, 2, 3, 0, 1, 2],
        "outcome": [
            "pong",
            "timeout",
            "pong",
            "pong",
            "timeout",
            "error",
            "pong",
            "pong",
            "timeout",
        ],
        "rtt_ms": [1.0, math.nan, 2.0, 3.0, math.nan, math.nan, 4.0, 5.0, math.nan],
    }
)


def test_heatmap_cells_keep_every_pair_and_say_why_a_cell_has_no_rtt() -> None:
    cells = heatmap_cells(DOWN_PINGS, down=[2])
    assert tuple(cells.columns) == HEATMAP_COLUMNS
    assert len(cells) == 4 * 3  # every ordered pair of distinct nodes, the down one included
    status = {
        (s, d): v for s, d, v in zip(cells["src"], cells["dst"], cells["status"], strict=True)
    }
    assert [status[2, d] for d in (0, 1, 3)] == ["down", "down", "down"]
    assert [status[s, 2] for s in (0, 1, 3)] == ["timeout", "timeout", "timeout"]
    assert status[1, 3] == "error" and status[0, 1] == "pong"
    assert cells.loc[cells["status"] == "pong", "rtt_ms"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert cells.loc[cells["status"] != "pong", "rtt_ms"].isna().all()
    # without `down`, a node that sent nothing has no row to show
    assert set(heatmap_cells(DOWN_PINGS)["src"]) == {0, 1, 3}


def test_the_heatmap_shows_down_nodes_as_cells_of_their_own_colour() -> None:
    spec = rtt_heatmap(DOWN_PINGS, down=[2]).to_dict()
    pongs, others = heatmap_layers(spec)
    assert len(pongs) + len(others) == 12
    assert sorted(set(others["status"])) == ["down", "error", "timeout"]
    colour = spec["layer"][1]["encoding"]["color"]
    assert colour["field"] == "status" and colour["type"] == "nominal"
    assert colour["scale"]["range"] == [NO_RTT_COLOURS[s] for s in colour["scale"]["domain"]]
    assert spec["resolve"]["scale"]["color"] == "independent"  # RTT gradient + status legend
    assert colour["legend"] == {}  # the default legend
    assert spec["layer"][0]["encoding"]["y"]["scale"]["domain"] == [0, 1, 2, 3]


def test_the_histogram_bins_pong_rtts(pings: pd.DataFrame) -> None:
    spec = rtt_histogram(pings, max_bins=10).to_dict()
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["x"]["bin"] == {"maxbins": 10}
    assert len(rows(spec)) == 20


def test_the_cdf_has_one_line_per_channel_ending_at_one(network: LocalNetwork) -> None:
    pings = pd.concat(
        [network.ping_all_pairs(), network.ping_all_pairs(channel="stream")], ignore_index=True
    )
    spec = rtt_cdf(pings).to_dict()
    assert spec["mark"]["type"] == "line" and spec["encoding"]["color"]["field"] == "channel"
    data = pd.DataFrame(rows(spec))
    assert set(data["channel"]) == {"datagram", "stream"}
    for _, line in data.groupby("channel"):
        assert line["rtt_ms"].is_monotonic_increasing
        assert line["fraction"].iloc[-1] == 1.0 and len(line) == 20


def test_charts_leave_out_pairs_without_a_pong(pings: pd.DataFrame) -> None:
    lossy = pings.copy()
    lossy.loc[:4, "outcome"] = "timeout"
    lossy.loc[:4, "rtt_ms"] = float("nan")
    assert len(rows(rtt_histogram(lossy).to_dict())) == 15
    assert len(rows(rtt_cdf(lossy).to_dict())) == 15
    pongs, others = heatmap_layers(rtt_heatmap(lossy).to_dict())
    assert (len(pongs), len(others)) == (15, 5)  # the timeouts are cells of their own
    assert set(others["status"]) == {"timeout"}


def test_a_table_that_is_not_a_ping_table_is_refused() -> None:
    with pytest.raises(ValueError, match="rtt_ms"):
        rtt_heatmap(pd.DataFrame({"src": [0], "dst": [1], "outcome": ["pong"]}))


# ------------------------------------------------------------------ DHT charts

# A lookup from node 9 (same shape as `LocalNetwork.lookup_frame`): it asked 2 and 3
# from its own table, 2 named 1 and 4, 1 never answered, 5 was never asked.
LOOKUP = pd.DataFrame(
    {
        "node": [1, 2, 3, 4, 5],
        "state": ["unresponsive", "succeeded", "succeeded", "succeeded", "not_contacted"],
        "distance_bits": [250, 251, 252, 252, 253],
        "hop": [2, 1, 1, 2, 1],
        "learned_from": [2, 9, 9, 2, 9],
        "query": pd.array([3, 1, 2, 4, None], dtype="Int64"),
    }
)


def layered(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each layer of a layered chart spec by mark type."""
    return {layer["mark"]["type"]: layer for layer in spec["layer"]}


def test_the_hops_layout_puts_hop_h_in_column_h_nearest_on_top() -> None:
    positions = lookup_layout(LOOKUP)
    assert set(positions) == {9, 1, 2, 3, 4, 5}
    columns = sorted({x for x, _ in positions.values()})
    assert len(columns) == 3  # the start node, hop 1, hop 2
    assert positions[9][0] == columns[0]
    assert {positions[n][0] for n in (2, 3, 5)} == {columns[1]}
    assert {positions[n][0] for n in (1, 4)} == {columns[2]}
    assert positions[2][1] > positions[3][1] > positions[5][1]  # nearer peers higher
    assert positions[1][1] > positions[4][1]


def test_force_layouts_are_reproducible() -> None:
    assert lookup_layout(LOOKUP, layout="spring", seed=3) == lookup_layout(
        LOOKUP, layout="spring", seed=3
    )
    assert set(lookup_layout(LOOKUP, layout="kamada_kawai")) == {9, 1, 2, 3, 4, 5}
    with pytest.raises(ValueError, match="layout"):
        lookup_layout(LOOKUP, layout="circle")


def test_the_query_graph_is_points_and_rules_at_the_layout_positions() -> None:
    spec = lookup_graph(LOOKUP).to_dict()
    layers = layered(spec)
    assert set(layers) == {"rule", "circle", "text"}
    assert layers["circle"]["encoding"]["color"]["field"] == "state"
    points = pd.DataFrame(spec["datasets"][layers["circle"]["data"]["name"]])
    edges = pd.DataFrame(spec["datasets"][layers["rule"]["data"]["name"]])
    assert sorted(points["node"]) == [1, 2, 3, 4, 5, 9]
    assert points.set_index("node").loc[9, "state"] == "start"
    assert sorted(zip(edges["from"], edges["to"], strict=True)) == [
        (2, 1),
        (2, 4),
        (9, 2),
        (9, 3),
        (9, 5),
    ]
    positions = lookup_layout(LOOKUP)
    for edge in edges.itertuples():
        assert (edge.x, edge.y) == pytest.approx(positions[edge[1]])  # "from"
        assert (edge.x2, edge.y2) == pytest.approx(positions[edge.to])


def test_the_distance_chart_has_one_point_per_query_in_order() -> None:
    spec = lookup_distances(LOOKUP).to_dict()
    assert spec["encoding"]["x"]["field"] == "query"
    assert spec["encoding"]["y"]["field"] == "distance_bits"
    assert spec["encoding"]["color"]["field"] == "state"
    data = rows(spec)
    assert [row["query"] for row in data] == [1, 2, 3, 4]
    assert [row["node"] for row in data] == [2, 3, 1, 4]


def test_the_bucket_chart_layers_contacts_candidates_and_capacity() -> None:
    buckets = pd.DataFrame(
        {"bucket": [253, 254, 255], "contacts": [2, 4, 4], "in_network": [2, 6, 9], "k": 4}
    )
    layers = layered(bucket_fill_chart(buckets).to_dict())
    assert set(layers) == {"bar", "tick", "rule"}
    assert layers["bar"]["encoding"]["y"]["field"] == "contacts"
    assert layers["tick"]["encoding"]["y"]["field"] == "in_network"
    assert layers["rule"]["encoding"]["y"]["field"] == "k"


def test_the_bucket_axis_says_what_the_dht_geometry_does() -> None:
    """Bucket i holds distances [2^i, 2^(i+1)): the bit length of the distance is i + 1."""
    local = bytes(32)
    other = bytes(31) + b"\x05"  # distance 5: bit length 3, bucket 2
    assert bucket_index(local, other) == 2 == (5).bit_length() - 1
    assert bucket_range(2) == (4, 8)
    table = bucket_table(local, {2: 1}, [local, other], k=4)
    assert table[["bucket", "contacts", "in_network"]].values.tolist() == [[2, 1, 1]]
    spec = bucket_fill_chart(table).to_dict()
    title = layered(spec)["bar"]["encoding"]["x"]["title"]
    assert "2^i to 2^(i+1) - 1" in title and "bit length of" not in title


def test_the_hops_histogram_counts_lookups_and_marks_log2_n() -> None:
    lookups = pd.DataFrame({"hops": [1, 1, 2, 3, 1, 2], "phase": list("aaabbb")})
    spec = hops_histogram(lookups, n=64).to_dict()
    bars, rule = layered(spec)["bar"], layered(spec)["rule"]
    counts = pd.DataFrame(spec["datasets"][bars["data"]["name"]])
    assert dict(zip(counts["hops"], counts["lookups"], strict=True)) == {1: 3, 2: 2, 3: 1}
    assert spec["datasets"][rule["data"]["name"]][0]["x"] == 6.0
    grouped = hops_histogram(lookups, n=64, color="phase").to_dict()
    bars = layered(grouped)["bar"]
    counts = pd.DataFrame(grouped["datasets"][bars["data"]["name"]])
    assert len(counts) == 5 and bars["encoding"]["color"]["field"] == "phase"
    one = counts[counts["hops"] == 1].sort_values("phase")
    assert one["right"].iloc[0] <= one["left"].iloc[1]  # side by side, not stacked
    with pytest.raises(ValueError):
        hops_histogram(lookups, n=0)


def test_the_duration_cdf_ends_at_one_per_group() -> None:
    lookups = pd.DataFrame({"duration_ms": [3.0, 1.0, 2.0, 9.0], "phase": list("aabb")})
    data = pd.DataFrame(rows(duration_cdf(lookups, color="phase").to_dict()))
    for _, line in data.groupby("group"):
        assert line["duration_ms"].is_monotonic_increasing and line["fraction"].iloc[-1] == 1
    assert len(rows(duration_cdf(lookups).to_dict())) == 4


def test_dht_charts_refuse_tables_of_the_wrong_kind() -> None:
    with pytest.raises(ValueError, match="lookup table"):
        lookup_graph(pd.DataFrame({"node": [1]}))
    with pytest.raises(ValueError, match="bucket table"):
        bucket_fill_chart(pd.DataFrame({"bucket": [1]}))
