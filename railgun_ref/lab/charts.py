"""Altair charts of what a `LocalNetwork` measured.

Each function takes a DataFrame from a `LocalNetwork` method and returns an
altair chart, so a notebook can tweak it further (``.properties(...)``,
``|``, ``&``): the RTT charts take `ping_pairs` / `ping_all_pairs` (columns
src, dst, outcome, rtt_ms, channel, ...); the DHT charts take
`lookup_frame`, `bucket_fill` and `many_lookups`. Graphs are laid out with
networkx and drawn as altair points and rules, so they stay data. Altair
embeds the data in the chart spec and refuses more than 5000 rows by
default: an all-pairs table of up to 71 nodes fits; for bigger networks
aggregate first.
"""

import math
from collections.abc import Iterable, Sequence
from typing import Any, Final

import altair as alt
import networkx as nx
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


#: Colours of the heatmap cells that have no RTT: a PING without a PONG (by its
#: outcome), and a node that was down and so sent nothing.
NO_RTT_COLOURS: Final = {"timeout": "#d62728", "error": "#ff7f0e", "down": "#7f7f7f"}
#: Columns of `heatmap_cells`, in order.
HEATMAP_COLUMNS: Final = ("src", "dst", "status", "rtt_ms")


def heatmap_cells(pings: pd.DataFrame, *, down: Iterable[int] = ()) -> pd.DataFrame:
    """Every ordered pair of distinct nodes, as the cells of `rtt_heatmap` (`HEATMAP_COLUMNS`).

    The nodes are those of `pings` plus `down` (nodes that were stopped, so
    sent no PING). ``status`` is ``pong`` (``rtt_ms`` set), the outcome of a
    PING that got no PONG (``timeout``, ``error``), or ``down`` for a pair
    whose source is in `down` and that was not pinged. A pair that is neither
    pinged nor from a down node has no cell.
    """
    _check(pings)
    stopped = {int(node) for node in down}
    nodes = sorted({*pings["src"].astype(int), *pings["dst"].astype(int), *stopped})
    pinged = {
        (int(src), int(dst)): (str(outcome), float(rtt))
        for src, dst, outcome, rtt in zip(
            pings["src"], pings["dst"], pings["outcome"], pings["rtt_ms"], strict=True
        )
    }
    rows = []
    for src in nodes:
        for dst in nodes:
            if src == dst:
                continue
            if (src, dst) in pinged:
                status, rtt = pinged[src, dst]
                rows.append((src, dst, status, rtt if status == "pong" else math.nan))
            elif src in stopped:
                rows.append((src, dst, "down", math.nan))
    return pd.DataFrame(rows, columns=list(HEATMAP_COLUMNS))


def rtt_heatmap(
    pings: pd.DataFrame, *, down: Iterable[int] = (), title: str = "PING round-trip time"
) -> Any:
    """Source × destination grid: PONGs coloured by RTT in ms, the other cells by what happened.

    A PING without a PONG is a cell coloured by its outcome (``timeout``,
    ``error``); the rows of the nodes in `down` (stopped, so they sent
    nothing) are ``down`` cells (`heatmap_cells`), so a down node shows as a
    grey row and a column of timeouts instead of vanishing from the grid.
    """
    cells = heatmap_cells(pings, down=down)
    nodes = sorted({*cells["src"], *cells["dst"]})
    x = alt.X("dst:O", title="destination node", scale=alt.Scale(domain=nodes))
    y = alt.Y("src:O", title="source node", scale=alt.Scale(domain=nodes))
    tooltip = ["src:O", "dst:O", "status:N", alt.Tooltip("rtt_ms:Q", format=".3f")]
    pongs = (
        alt.Chart(cells[cells["status"] == "pong"])
        .mark_rect()
        .encode(
            x=x,
            y=y,
            color=alt.Color("rtt_ms:Q", title="RTT (ms)", scale=alt.Scale(scheme="viridis")),
            tooltip=tooltip,
        )
    )
    missing = cells[cells["status"] != "pong"]
    present = set(missing["status"])
    statuses = [s for s in NO_RTT_COLOURS if s in present] + sorted(present - set(NO_RTT_COLOURS))
    colours = [NO_RTT_COLOURS.get(s, "#000000") for s in statuses]
    legend = alt.Legend() if statuses else None  # no "no RTT" legend over an empty layer
    others = (
        alt.Chart(missing)
        .mark_rect()
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "status:N",
                title="no RTT",
                scale=alt.Scale(domain=statuses, range=colours),
                legend=legend,
            ),
            tooltip=tooltip,
        )
    )
    return (
        alt.layer(pongs, others, title=title)
        .resolve_scale(color="independent")
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


# --------------------------------------------------------------------- DHT

#: Colour of each lookup peer state (and of the node that ran the lookup), shared by all charts.
STATE_COLOURS: Final = {
    "start": "#000000",
    "succeeded": "#2ca02c",
    "unresponsive": "#ff7f0e",
    "failed": "#d62728",
    "waiting": "#9467bd",
    "not_contacted": "#9e9e9e",
    "skipped": "#c7c7c7",
}
#: Graph layouts `lookup_graph` knows; "hops" puts hop h in column h, nearest peers on top.
LAYOUTS: Final = ("hops", "spring", "kamada_kawai")


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"not {what}: missing columns {missing}")


def _state_colour(title: str = "peer state") -> Any:
    return alt.Color(
        "state:N",
        title=title,
        scale=alt.Scale(domain=list(STATE_COLOURS), range=list(STATE_COLOURS.values())),
    )


def lookup_layout(
    lookup: pd.DataFrame, *, layout: str = "hops", seed: int = 0
) -> dict[int, tuple[float, float]]:
    """Node index -> (x, y) for the query graph of a lookup table (`lookup_frame`).

    The graph has an edge ``learned_from -> node`` for every peer, so it is a
    tree rooted at the node that ran the lookup. ``hops`` is networkx's
    multipartite layout with one column per hop, nearest peer on top;
    ``spring`` and ``kamada_kawai`` are networkx's force layouts (``seed``
    fixes the spring one).
    """
    _require(lookup, ("node", "learned_from", "hop", "distance_bits"), "a lookup table")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    graph = nx.DiGraph()
    roots = sorted(set(lookup["learned_from"].tolist()) - set(lookup["node"].tolist()))
    layers: dict[int, list[int]] = {0: roots} if roots else {}
    # Farthest first within a column: the layout stacks upwards, so the nearest ends on top.
    ordered = lookup.sort_values(["hop", "distance_bits", "node"], ascending=[True, False, False])
    for node, hop in zip(ordered["node"].tolist(), ordered["hop"].tolist(), strict=True):
        layers.setdefault(int(hop), []).append(int(node))
    graph.add_nodes_from(roots)
    graph.add_nodes_from(lookup["node"].tolist())
    graph.add_edges_from(zip(lookup["learned_from"].tolist(), lookup["node"].tolist(), strict=True))
    if len(graph) == 0:
        return {}
    if layout == "hops":
        positions = nx.multipartite_layout(graph, subset_key=layers)
    elif layout == "spring":
        positions = nx.spring_layout(graph, seed=seed)
    else:
        positions = nx.kamada_kawai_layout(graph.to_undirected())
    return {int(node): (float(x), float(y)) for node, (x, y) in positions.items()}


def lookup_graph(
    lookup: pd.DataFrame,
    *,
    layout: str = "hops",
    seed: int = 0,
    title: str = "who named whom",
) -> Any:
    """The query graph of one lookup: an edge from each peer to every peer it named.

    Points are peers (colour: state when the lookup ended, black: the node
    that ran it), rules go ``learned_from -> node``, labels are node indices;
    positions come from `lookup_layout` (a networkx layout), so the chart is
    data a notebook can inspect, not a picture.
    """
    positions = lookup_layout(lookup, layout=layout, seed=seed)
    roots = sorted(set(lookup["learned_from"].tolist()) - set(lookup["node"].tolist()))
    points = pd.concat(
        [
            pd.DataFrame({"node": roots, "state": "start", "hop": 0}),
            lookup[["node", "state", "hop", "distance_bits", "query"]],
        ],
        ignore_index=True,
    )
    points["x"] = [positions[int(n)][0] for n in points["node"]]
    points["y"] = [positions[int(n)][1] for n in points["node"]]
    edges = pd.DataFrame(
        {
            "from": lookup["learned_from"].astype("int64"),
            "to": lookup["node"].astype("int64"),
            "state": lookup["state"],
        }
    )
    edges["x"] = [positions[int(n)][0] for n in edges["from"]]
    edges["y"] = [positions[int(n)][1] for n in edges["from"]]
    edges["x2"] = [positions[int(n)][0] for n in edges["to"]]
    edges["y2"] = [positions[int(n)][1] for n in edges["to"]]
    x = alt.X("x:Q", axis=None)
    y = alt.Y("y:Q", axis=None)
    rules = (
        alt.Chart(edges)
        .mark_rule(opacity=0.35)
        .encode(x=x, y=y, x2="x2:Q", y2="y2:Q", tooltip=["from:O", "to:O", "state:N"])
    )
    dots = (
        alt.Chart(points)
        .mark_circle(size=90, opacity=1)
        .encode(
            x=x,
            y=y,
            color=_state_colour(),
            tooltip=["node:O", "state:N", "hop:O", "distance_bits:Q", "query:Q"],
        )
    )
    labels = (
        alt.Chart(points).mark_text(dx=9, align="left", fontSize=9).encode(x=x, y=y, text="node:O")
    )
    return (rules + dots + labels).properties(title=title, width=360, height=300)


def lookup_distances(lookup: pd.DataFrame, *, title: str = "distance to the target") -> Any:
    """Each query of one lookup in the order sent (x) by its peer's distance to the target (y).

    Distance is ``distance_bits``, the bit length of the XOR distance (one
    bit less is half as far); colour is the peer's state when the lookup
    ended, shape the hop at which it was learned.
    """
    _require(lookup, ("query", "distance_bits", "state", "node", "hop"), "a lookup table")
    asked = lookup[lookup["query"].notna()].sort_values("query")
    data = asked[["query", "node", "state", "distance_bits", "hop"]].astype({"query": "int64"})
    return (
        alt.Chart(data)
        .mark_point(size=80, filled=True, opacity=0.9)
        .encode(
            x=alt.X("query:Q", title="query (in the order sent)", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y(
                "distance_bits:Q",
                title="XOR distance to target (bits)",
                scale=alt.Scale(zero=False),
                axis=alt.Axis(tickMinStep=1),
            ),
            color=_state_colour(),
            shape=alt.Shape("hop:O", title="hop"),
            tooltip=["query:Q", "node:O", "state:N", "hop:O", "distance_bits:Q"],
        )
        .properties(title=title, width=320, height=300)
    )


def bucket_fill_chart(buckets: pd.DataFrame, *, title: str = "routing table") -> Any:
    """Contacts per k-bucket (bars), other nodes in the bucket's range (ticks), capacity k (rule).

    Takes `LocalNetwork.bucket_fill`. Bucket i holds the contacts at XOR
    distance [2^i, 2^(i+1)), i.e. whose distance has bit length i + 1
    (`railgun_ref.dht.geometry.bucket_index`). Far buckets cover half, a
    quarter, ... of the id space and hold at most k; near ones hold all the
    few nodes there are.
    """
    _require(buckets, ("bucket", "contacts", "in_network", "k"), "a bucket table")
    x = alt.X("bucket:O", title="bucket i (XOR distance 2^i to 2^(i+1) - 1)")
    bars = (
        alt.Chart(buckets)
        .mark_bar(opacity=0.8)
        .encode(
            x=x,
            y=alt.Y("contacts:Q", title="contacts"),
            tooltip=["bucket:O", "contacts:Q", "in_network:Q", "k:Q"],
        )
    )
    ticks = (
        alt.Chart(buckets)
        .mark_tick(color="#d62728", thickness=2)
        .encode(x=x, y="in_network:Q", tooltip=["bucket:O", "in_network:Q"])
    )
    capacity = (
        alt.Chart(buckets.head(1)).mark_rule(strokeDash=[4, 4], color="#555555").encode(y="k:Q")
    )
    return (bars + ticks + capacity).properties(
        title=alt.TitleParams(
            title, subtitle="bars: contacts; red ticks: nodes in range; dashed: capacity k"
        ),
        width=320,
        height=220,
    )


def hops_histogram(
    lookups: pd.DataFrame,
    *,
    n: int,
    column: str = "hops",
    color: str | None = None,
    title: str = "hops per lookup",
) -> Any:
    """How many lookups took each number of hops, with a rule at log2(n).

    Takes `LocalNetwork.many_lookups` (or several concatenated, told apart by
    the `color` column, e.g. before/after churn: their bars stand side by
    side). `column` is ``hops`` (hop of the nearest peer found) or ``max_hop``.
    """
    _require(lookups, (column,) + ((color,) if color else ()), "a lookups table")
    if n < 1:
        raise ValueError("n must be at least 1")
    bound = math.log2(n)
    keys = [column] + ([color] if color else [])
    counts = lookups.groupby(keys).size().reset_index(name="lookups")
    groups = sorted(counts[color].astype(str).unique()) if color else [""]
    width = 0.8 / len(groups)
    slot = {group: (i - (len(groups) - 1) / 2) * width for i, group in enumerate(groups)}
    offset = counts[color].astype(str).map(slot) if color else 0.0
    counts["left"] = counts[column] + offset - width / 2
    counts["right"] = counts["left"] + width
    top = max(int(lookups[column].max()) if len(lookups) else 0, math.ceil(bound)) + 1
    x = alt.X(
        "left:Q",
        title=column.replace("_", " "),
        scale=alt.Scale(domain=[-0.5, top], nice=False),
        axis=alt.Axis(tickMinStep=1),
    )
    encoding: dict[str, Any] = {
        "x": x,
        "x2": "right:Q",
        "y": alt.Y("lookups:Q", title="lookups"),
        "y2": alt.datum(0),
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=color)
    bars = alt.Chart(counts).mark_bar().encode(**encoding, tooltip=[*keys, "lookups:Q"])
    rule_data = pd.DataFrame({"x": [bound], "label": [f"log2(n) = {bound:.1f}"]})
    rule = alt.Chart(rule_data).mark_rule(color="#d62728", strokeDash=[4, 4]).encode(x="x:Q")
    label = (
        alt.Chart(rule_data)
        .mark_text(align="left", dx=4, baseline="top", color="#d62728")
        .encode(x="x:Q", y=alt.value(4), text="label:N")
    )
    return (bars + rule + label).properties(title=title, width=320, height=220)


def duration_cdf(
    lookups: pd.DataFrame, *, color: str | None = None, title: str = "lookup duration"
) -> Any:
    """Empirical CDF of lookup duration (ms), one line per value of `color` if given."""
    _require(lookups, ("duration_ms",) + ((color,) if color else ()), "a lookups table")
    groups = lookups.groupby(color, sort=True) if color else [("all", lookups)]
    parts = []
    for name, group in groups:
        ms = np.sort(group["duration_ms"].to_numpy(dtype=float))
        fraction = np.arange(1, len(ms) + 1) / len(ms)
        parts.append(pd.DataFrame({"duration_ms": ms, "fraction": fraction, "group": str(name)}))
    data = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame({"duration_ms": [], "fraction": [], "group": []})
    )
    return (
        alt.Chart(data, title=title)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("duration_ms:Q", title="duration (ms)"),
            y=alt.Y("fraction:Q", title="fraction of lookups", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("group:N", title=color or "lookups"),
        )
        .properties(width=320, height=220)
    )
