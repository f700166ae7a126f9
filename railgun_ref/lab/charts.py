"""Altair charts of what a `LocalNetwork` measured.

Each function takes a DataFrame from `LocalNetwork.ping_pairs` /
`ping_all_pairs` (columns src, dst, outcome, rtt_ms, channel, ...) and returns
an `alt.Chart`, so a notebook can tweak it further (``.properties(...)``,
``|``, ``&``). Altair embeds the data in the chart spec and refuses more than
5000 rows by default: an all-pairs table of up to 71 nodes fits; for bigger
networks aggregate first.
"""

from typing import Any, Final

import altair as alt
import numpy as np
import pandas as pd

#: Columns a ping table must have for these charts.
REQUIRED_COLUMNS: Final = ("src", "dst", "outcome", "rtt_ms")


def _check(pings: pd.DataFrame) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in pings.columns]
    if missing:
        raise ValueError(f"not a ping table: missing columns {missing}")


def _pongs(pings: pd.DataFrame) -> pd.DataFrame:
    return pings[pings["outcome"] == "pong"]


def rtt_heatmap(pings: pd.DataFrame, *, title: str = "PING round-trip time") -> Any:
    """Source × destination grid coloured by RTT in ms; pairs without a PONG stay blank."""
    _check(pings)
    data = pings[["src", "dst", "outcome", "rtt_ms"]]
    return (
        alt.Chart(data, title=title)
        .mark_rect()
        .encode(
            x=alt.X("dst:O", title="destination node"),
            y=alt.Y("src:O", title="source node"),
            color=alt.Color("rtt_ms:Q", title="RTT (ms)", scale=alt.Scale(scheme="viridis")),
            tooltip=["src:O", "dst:O", "outcome:N", alt.Tooltip("rtt_ms:Q", format=".3f")],
        )
        .properties(width=320, height=320)
    )


def rtt_histogram(pings: pd.DataFrame, *, max_bins: int = 30) -> Any:
    """How many PONGs came back within each RTT bin."""
    _check(pings)
    data = _pongs(pings)[["rtt_ms"]]
    return (
        alt.Chart(data, title="RTT distribution")
        .mark_bar()
        .encode(
            x=alt.X("rtt_ms:Q", bin=alt.Bin(maxbins=max_bins), title="RTT (ms)"),
            y=alt.Y("count():Q", title="PONGs"),
        )
        .properties(width=320, height=200)
    )


def rtt_cdf(pings: pd.DataFrame) -> Any:
    """Empirical CDF of RTT, one line per channel if the table mixes channels."""
    _check(pings)
    pongs = _pongs(pings)
    channel = pongs["channel"] if "channel" in pongs.columns else pd.Series("all", pongs.index)
    parts = []
    for name, group in pongs.groupby(channel, sort=True):
        rtt = np.sort(group["rtt_ms"].to_numpy(dtype=float))
        fraction = np.arange(1, len(rtt) + 1) / len(rtt)
        parts.append(pd.DataFrame({"rtt_ms": rtt, "fraction": fraction, "channel": str(name)}))
    data = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame({"rtt_ms": [], "fraction": [], "channel": []})
    )
    return (
        alt.Chart(data, title="RTT CDF")
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("rtt_ms:Q", title="RTT (ms)"),
            y=alt.Y("fraction:Q", title="fraction of PONGs", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("channel:N", title="channel"),
        )
        .properties(width=320, height=200)
    )
