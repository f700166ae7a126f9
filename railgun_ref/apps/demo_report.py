"""The demo's report: its events as pandas tables, altair charts, one HTML page.

A report is the dict ``railgun-ref demo`` writes to ``events.json`` (and
`railgun_ref.lab.failover.FailoverLab.report` returns): every event of every
client, the phases, the faults, the loop's lag (`railgun_ref.apps.demo`). The
functions below turn a report into tables:

* `events_frame` -- every event (``t`` in seconds since the start);
* `state_intervals` -- each client's transport state as [start, end) spans;
* `scenario_windows` -- when each fault was applied and lifted;
* `message_paths` -- one row per message sent: which path(s) brought it to
  its recipients, how many got it, when the last one did;
* `deliveries_frame` -- one row per message handed to an application;
* `timings_frame` / `client_timings_frame` -- detection, failover and
  failback times per scenario and per client;

and the charts draw those tables (`state_timeline`, `message_path_chart`,
`delivery_rate_chart`). `write_html_report` puts the tables and charts of a
report on one HTML page (what ``railgun-ref demo`` writes as
``report.html``). The module needs the ``lab`` extra (pandas, altair): the
demo imports it only when it writes the page.
"""

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import altair as alt
import pandas as pd

from railgun_ref.apps.inline_charts import standalone_chart_html

__all__ = [
    "CLIENT_TIMING_COLUMNS",
    "DELIVERY_COLUMNS",
    "INTERVAL_COLUMNS",
    "MESSAGE_COLUMNS",
    "PATH_COLOURS",
    "RATE_BIN_S",
    "STATE_COLOURS",
    "TIMING_COLUMNS",
    "WINDOW_COLUMNS",
    "client_timings_frame",
    "deliveries_frame",
    "delivery_rate_chart",
    "delivery_rates",
    "events_frame",
    "fresh_client_html",
    "message_path_chart",
    "message_paths",
    "report_charts",
    "report_span",
    "scenario_windows",
    "state_intervals",
    "state_timeline",
    "timings_frame",
    "write_html_report",
]

#: Colours of the transport states, the same in every chart.
STATE_COLOURS: Final = {
    "connecting": "#bab0ac",
    "connected-aws": "#54a24b",
    "connected-hybrid": "#4c78a8",
    "connected-p2p": "#f58518",
    "degraded": "#b279a2",
    "disconnected": "#e45756",
}
#: Colours of the delivery paths.
PATH_COLOURS: Final = {"central": "#4c78a8", "p2p": "#f58518", "both": "#72b7b2"}
#: Columns of `state_intervals`, in order.
INTERVAL_COLUMNS: Final = ("client", "state", "start", "end")
#: Columns of `scenario_windows`, in order.
WINDOW_COLUMNS: Final = ("scenario", "title", "fault_at", "restored_at")
#: Columns of `message_paths`, in order.
MESSAGE_COLUMNS: Final = (
    "message_id",
    "sender",
    "sent_at",
    "recipients",
    "via_central",
    "via_p2p",
    "path",
    "last_delivery_s",
)
#: Columns of `deliveries_frame`, in order.
DELIVERY_COLUMNS: Final = ("t", "client", "sender", "path", "latency_ms", "duplicate")
#: Columns of `timings_frame`, in order.
TIMING_COLUMNS: Final = (
    "scenario",
    "failed_over",
    "failed_back",
    "detection_median_s",
    "detection_max_s",
    "failover_median_s",
    "failover_max_s",
    "first_p2p_delivery_s",
    "failback_median_s",
    "failback_max_s",
    "labels",
)
#: Columns of `client_timings_frame`, in order.
CLIENT_TIMING_COLUMNS: Final = ("scenario", "client", "detection_s", "failover_s", "failback_s")


# ------------------------------------------------------------------ tables


def events_frame(report: dict[str, Any]) -> pd.DataFrame:
    """Every event of the report, one row each, in time order (columns vary by kind)."""
    frame = pd.DataFrame(report["events"])
    if frame.empty:
        return pd.DataFrame(columns=["t", "client", "kind"])
    return frame.sort_values("t", kind="stable").reset_index(drop=True)


def state_intervals(report: dict[str, Any]) -> pd.DataFrame:
    """Each client's state as spans: from its start (``connecting``) to the report's end."""
    end = float(report["demo"]["duration_s"])
    rows: list[dict[str, Any]] = []
    current: dict[int, tuple[str, float]] = {}
    for event in sorted(report["events"], key=lambda e: e["t"]):
        client = event["client"]
        if client is None:
            continue
        if event["kind"] == "client":
            current[client] = ("connecting", event["t"])
        elif event["kind"] == "state":
            state, since = current.get(client, (event["old"], event["t"]))
            if event["t"] > since:
                rows.append({"client": client, "state": state, "start": since, "end": event["t"]})
            current[client] = (event["new"], event["t"])
    for client, (state, since) in sorted(current.items()):
        rows.append({"client": client, "state": state, "start": since, "end": max(end, since)})
    return pd.DataFrame(rows, columns=list(INTERVAL_COLUMNS))


def scenario_windows(report: dict[str, Any]) -> pd.DataFrame:
    """When each scenario's fault was applied and lifted (seconds since the start)."""
    rows = [
        {
            "scenario": s["scenario"],
            "title": s["title"],
            "fault_at": s["fault_at"],
            "restored_at": s["restored_at"],
        }
        for s in report["scenarios"]
    ]
    return pd.DataFrame(rows, columns=list(WINDOW_COLUMNS))


def deliveries_frame(report: dict[str, Any]) -> pd.DataFrame:
    """One row per message handed to an application (``duplicate`` marks a second time)."""
    rows = [
        {column: event.get(column) for column in DELIVERY_COLUMNS}
        for event in report["events"]
        if event["kind"] == "received"
    ]
    return pd.DataFrame(rows, columns=list(DELIVERY_COLUMNS))


@dataclass(slots=True, kw_only=True)
class _MessageTally:
    """What `message_paths` learns about one message as it reads the events."""

    message_id: str
    sender: int
    sent_at: float
    recipients: int = 0
    via_central: int = 0
    via_p2p: int = 0
    last: float | None = None  #: when the last recipient got it (s since start)

    def row(self) -> dict[str, Any]:
        central, p2p = self.via_central, self.via_p2p
        path = "both" if central and p2p else "central" if central else "p2p" if p2p else "none"
        last = None if self.last is None else round(self.last - self.sent_at, 4)
        return {
            "message_id": self.message_id,
            "sender": self.sender,
            "sent_at": self.sent_at,
            "recipients": self.recipients,
            "via_central": central,
            "via_p2p": p2p,
            "path": path,
            "last_delivery_s": last,
        }


def message_paths(report: dict[str, Any]) -> pd.DataFrame:
    """One row per message accepted by `send`: the path(s) that brought it to its recipients.

    ``path`` is ``central`` or ``p2p`` if every recipient got it over that path
    first, ``both`` if some got it one way and some the other, ``none`` if
    nobody got it (yet, in a report taken while the chat runs); ``last_delivery_s``
    is from sending to the last recipient.
    """
    sent: dict[str, _MessageTally] = {}
    for event in report["events"]:
        if event["kind"] == "accepted":
            sent[event["message_id"]] = _MessageTally(
                message_id=event["message_id"], sender=event["client"], sent_at=event["t"]
            )
    for event in report["events"]:
        tally = sent.get(event.get("message_id", ""))
        if event["kind"] != "received" or tally is None or event["duplicate"]:
            continue
        tally.recipients += 1
        if event["path"] == "p2p":
            tally.via_p2p += 1
        else:
            tally.via_central += 1
        tally.last = event["t"] if tally.last is None else max(tally.last, event["t"])
    rows = [tally.row() for tally in sent.values()]
    frame = pd.DataFrame(rows, columns=list(MESSAGE_COLUMNS))
    return frame.sort_values("sent_at", kind="stable").reset_index(drop=True)


def timings_frame(report: dict[str, Any]) -> pd.DataFrame:
    """One row per scenario: detection, failover and failback times (median and max, s)."""
    rows = []
    for s in report["scenarios"]:
        labels = ", ".join(f"{k} x{v}" for k, v in sorted(s["labels"].items()))
        rows.append(
            {
                "scenario": s["scenario"],
                "failed_over": s["failed_over"],
                "failed_back": s["failed_back"],
                "detection_median_s": s["detection"]["median_s"],
                "detection_max_s": s["detection"]["max_s"],
                "failover_median_s": s["failover"]["median_s"],
                "failover_max_s": s["failover"]["max_s"],
                "first_p2p_delivery_s": s["first_p2p_delivery_s"],
                "failback_median_s": s["failback"]["median_s"],
                "failback_max_s": s["failback"]["max_s"],
                "labels": labels,
            }
        )
    return pd.DataFrame(rows, columns=list(TIMING_COLUMNS))


def client_timings_frame(report: dict[str, Any]) -> pd.DataFrame:
    """One row per (scenario, client): fault to detection, fault to failover, restore to
    failback, in seconds (NaN where it did not happen within the scenario's bounds)."""
    rows = [
        {"scenario": s["scenario"], **row} for s in report["scenarios"] for row in s["per_client"]
    ]
    return pd.DataFrame(rows, columns=list(CLIENT_TIMING_COLUMNS))


# ------------------------------------------------------------------ charts

#: Legend label expression of `message_path_chart`: a message nobody has got is "none yet".
NOT_YET_LABEL: Final = "datum.label == 'none' ? 'none (yet)' : datum.label"
#: Seconds of one bar of `delivery_rate_chart`.
RATE_BIN_S: Final = 1.0


def report_span(report: dict[str, Any]) -> tuple[float, float]:
    """The time axis every chart of `report` shares: from its start to its end (seconds)."""
    return 0.0, float(report["demo"]["duration_s"])


def _time_axis(field: str, title: str, domain: tuple[float, float] | None) -> Any:
    """A seconds-since-start x axis, fixed to `domain` if given (charts stacked one above
    the other then line up)."""
    scale = alt.Scale(domain=list(domain), nice=False) if domain else alt.Undefined
    return alt.X(field, title=title, scale=scale)


def _windows_layer(windows: pd.DataFrame) -> Any:
    """Shaded fault windows with the scenario's name just above the plot."""
    shade = (
        alt.Chart(windows)
        .mark_rect(opacity=0.12, color="#e45756")
        .encode(
            x="fault_at:Q",
            x2="restored_at:Q",
            tooltip=["scenario:N", "title:N", "fault_at:Q", "restored_at:Q"],
        )
    )
    label = (
        alt.Chart(windows)
        .mark_text(align="left", baseline="bottom", dx=2, dy=-1, color="#e45756")
        .encode(x="fault_at:Q", y=alt.value(0), text="scenario:N")
    )
    return shade + label


def state_timeline(
    intervals: pd.DataFrame,
    windows: pd.DataFrame | None = None,
    *,
    domain: tuple[float, float] | None = None,
) -> Any:
    """One bar per client across time, coloured by transport state; faults shaded.
    `domain` fixes the time axis (`report_span`)."""
    states = [s for s in STATE_COLOURS if s in set(intervals["state"])] or list(STATE_COLOURS)
    bars = (
        alt.Chart(intervals, title="Transport state of each client")
        .mark_bar(height=12)
        .encode(
            x=_time_axis("start:Q", "seconds since start", domain),
            x2="end:Q",
            y=alt.Y("client:O", title="client"),
            color=alt.Color(
                "state:N",
                scale=alt.Scale(domain=states, range=[STATE_COLOURS[s] for s in states]),
                title="state",
            ),
            tooltip=["client:O", "state:N", "start:Q", "end:Q"],
        )
    )
    chart = bars if windows is None or windows.empty else _windows_layer(windows) + bars
    height = max(120, 18 * intervals["client"].nunique())
    return chart.properties(width=640, height=height)


def message_path_chart(
    paths: pd.DataFrame,
    windows: pd.DataFrame | None = None,
    *,
    domain: tuple[float, float] | None = None,
) -> Any:
    """Every message sent: when and by whom, coloured by the path that delivered it.
    `domain` fixes the time axis (`report_span`)."""
    paths_domain = [*PATH_COLOURS, "none"]
    points = (
        alt.Chart(paths, title="The path each message took")
        .mark_point(filled=True, size=60)
        .encode(
            x=_time_axis("sent_at:Q", "sent at (seconds since start)", domain),
            y=alt.Y("sender:O", title="sender"),
            color=alt.Color(
                "path:N",
                scale=alt.Scale(domain=paths_domain, range=[*PATH_COLOURS.values(), "#e45756"]),
                title="delivered via",
                # A report taken mid-run has messages still on their way: "none" is "yet".
                legend=alt.Legend(labelExpr=NOT_YET_LABEL),
            ),
            tooltip=[
                "sender:O",
                "sent_at:Q",
                "path:N",
                "recipients:Q",
                "via_central:Q",
                "via_p2p:Q",
                "last_delivery_s:Q",
            ],
        )
    )
    chart = points if windows is None or windows.empty else _windows_layer(windows) + points
    height = max(120, 18 * paths["sender"].nunique())
    return chart.properties(width=640, height=height)


def delivery_rates(deliveries: pd.DataFrame, *, bin_s: float = RATE_BIN_S) -> pd.DataFrame:
    """First deliveries per `bin_s` bin of delivery time and path (duplicates left out).

    Columns: ``start``, ``end`` (the bin, seconds since start), ``path``,
    ``deliveries``, and ``low``/``high``, the path's stretch of the bin's
    stacked bar (central below p2p).
    """
    if bin_s <= 0:
        raise ValueError("bin_s must be positive")
    first = deliveries[~deliveries["duplicate"].astype(bool)]
    start = first["t"].astype(float).floordiv(bin_s) * bin_s
    data = (
        first.assign(start=start)
        .groupby(["start", "path"], as_index=False)
        .size()
        .rename(columns={"size": "deliveries"})
    )
    data["end"] = data["start"] + bin_s
    data = data.sort_values(["start", "path"], kind="stable").reset_index(drop=True)
    data["high"] = data.groupby("start")["deliveries"].cumsum()
    data["low"] = data["high"] - data["deliveries"]
    return data[["start", "end", "path", "deliveries", "low", "high"]]


def delivery_rate_chart(
    deliveries: pd.DataFrame,
    windows: pd.DataFrame | None = None,
    *,
    domain: tuple[float, float] | None = None,
    bin_s: float = RATE_BIN_S,
) -> Any:
    """Messages handed to applications per `bin_s` of delivery time, stacked by path.

    Each bar spans its bin ([start, start + bin_s), `delivery_rates`), so it
    stands over the time its deliveries happened; `domain` fixes the time
    axis (`report_span`) so that the chart lines up with the others.
    """
    data = delivery_rates(deliveries, bin_s=bin_s)
    bars = (
        alt.Chart(data, title=f"Deliveries per {bin_s:g} s by path (by delivery time)")
        .mark_rect(stroke="white", strokeWidth=0.5, clip=True)
        .encode(
            x=_time_axis("start:Q", "delivered at (seconds since start)", domain),
            x2="end:Q",
            y=alt.Y("high:Q", title="deliveries"),
            y2="low:Q",
            color=alt.Color(
                "path:N",
                scale=alt.Scale(
                    domain=["central", "p2p"], range=[PATH_COLOURS["central"], PATH_COLOURS["p2p"]]
                ),
                title="delivered via",
            ),
            tooltip=["start:Q", "end:Q", "path:N", "deliveries:Q"],
        )
    )
    chart = bars if windows is None or windows.empty else _windows_layer(windows) + bars
    return chart.properties(width=640, height=160)


def report_charts(report: dict[str, Any]) -> Any:
    """The three charts of a report, one above the other on one time axis
    (`report_span`), each with its own colours and legend (states and paths are
    different things)."""
    windows = scenario_windows(report)
    span = report_span(report)
    return alt.vconcat(
        state_timeline(state_intervals(report), windows, domain=span),
        message_path_chart(message_paths(report), windows, domain=span),
        delivery_rate_chart(deliveries_frame(report), windows, domain=span),
    ).resolve_scale(color="independent")


# ------------------------------------------------------------------ HTML report

_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>railgun-ref demo report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }}
.ok {{ color: #2e7d32; }} .failed {{ color: #c62828; }}
</style>
</head>
<body>
<h1>railgun-ref demo: a messenger surviving a takedown</h1>
<p>{intro}</p>
<h2>Delivery</h2>
<p class="{verdict_class}"><strong>{verdict}</strong></p>
{summary}
<h2>Scenarios</h2>
{timings}
{fresh}
<h2>Timeline</h2>
{charts}
<p>The events behind these charts are in <code>events.json</code>.</p>
</body>
</html>
"""


def fresh_client_html(report: dict[str, Any]) -> str:
    """The fresh client that joined mid-outage (apps/demo_bootstrap.py): its bootstrap race,
    method by method, and what it was handed ("" if the run had none)."""
    fresh = report.get("fresh_client")
    if not fresh:
        return ""
    race = fresh.get("bootstrap") or {"winner": None, "methods": []}
    methods = pd.DataFrame(
        [
            {
                "method": e["method"],
                "outcome": e["outcome"],
                "labels": ", ".join(sorted(set(e["labels"]))),
            }
            for e in race["methods"]
        ],
        columns=["method", "outcome", "labels"],
    )
    verdict = "joined" if fresh["joined"] else "did NOT join"
    text = (
        f"Client c{fresh['client']:02d} started {fresh['started_at']:.1f} s in, with an empty "
        f"data directory and no peer to start from, while the central service was down; it "
        f"{verdict}. Its bootstrap race was won by {race['winner'] or 'no method'}. "
        f"It was handed {fresh['delivered']} of the {fresh['expected']} messages sent to it "
        f"({fresh['duplicates']} duplicates)."
    )
    return (
        f"<h2>A fresh client joins mid-outage</h2>\n<p>{html.escape(text)}</p>\n"
        + methods.to_html(index=False)
    )


def write_html_report(report: dict[str, Any], path: Path) -> None:
    """Write one HTML page with the report's tables and charts; it needs no network
    (Vega inlined, an SVG copy for viewers that block scripts: `standalone_chart_html`)."""
    demo = report["demo"]
    summary = report["summary"]
    intro = (
        f"{demo['peers']} clients in room <code>{html.escape(str(demo['room']))}</code>, "
        f"central service named <code>{html.escape(str(demo['central_name']))}</code>, "
        f"health check every {demo['health_check_interval_s']} s; "
        f"{len(report['scenarios'])} scenario(s) in {demo['duration_s']:.0f} s."
    )
    ok = bool(summary["exactly_once"])
    verdict = (
        f"{summary['sent']} sent x {summary['members'] - 1} other members"
        + (f" + {summary['late']} to the fresh client" if summary.get("late") else "")
        + " = "
        f"{summary['expected']} expected; {summary['delivered']} delivered, "
        f"{summary['duplicates']} duplicates, {summary['lost']} lost: "
        + ("every message exactly once" if ok else "NOT exactly once")
    )
    summary_table = pd.DataFrame([summary]).drop(columns=["by_path"]).to_html(index=False)
    page = _PAGE.format(
        intro=intro,
        verdict_class="ok" if ok else "failed",
        verdict=html.escape(verdict),
        summary=summary_table,
        timings=timings_frame(report).to_html(index=False, na_rep="-"),
        fresh=fresh_client_html(report),
        charts=standalone_chart_html(report_charts(report)),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
