"""Altair charts of ping tables build valid Vega-Lite specs."""

from typing import Any

import pandas as pd
import pytest

from railgun_ref.lab import LocalNetwork, rtt_cdf, rtt_heatmap, rtt_histogram

pytestmark = pytest.mark.integration


def rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The data rows altair inlined in `spec`."""
    (values,) = spec["datasets"].values()
    assert isinstance(values, list)
    return values


def test_the_heatmap_is_a_src_by_dst_grid_coloured_by_rtt(pings: pd.DataFrame) -> None:
    spec = rtt_heatmap(pings).to_dict()  # validates against the Vega-Lite schema
    assert spec["mark"]["type"] == "rect"
    encoding = spec["encoding"]
    assert (encoding["x"]["field"], encoding["y"]["field"]) == ("dst", "src")
    assert encoding["color"]["field"] == "rtt_ms" and encoding["color"]["type"] == "quantitative"
    assert len(rows(spec)) == len(pings) == 20


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
    assert len(rows(rtt_heatmap(lossy).to_dict())) == 20  # blank cells, still on the grid


def test_a_table_that_is_not_a_ping_table_is_refused() -> None:
    with pytest.raises(ValueError, match="rtt_ms"):
        rtt_heatmap(pd.DataFrame({"src": [0], "dst": [1], "outcome": ["pong"]}))
