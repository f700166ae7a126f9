"""The failover demo in a notebook: live clients, a button per scenario, timelines.

`FailoverLab` runs the engine of ``railgun-ref demo``
(`railgun_ref.apps.demo.FailoverNetwork`: a real ``railgun-ref central``
process behind a fault proxy and a DNS server, and chatting clients) in an
event loop of its own in a background thread, like `LocalNetwork`, so its
methods are plain blocking calls that work from a Jupyter cell.

Everything the clients observed is one report (`FailoverLab.report`, the
same dict ``railgun-ref demo`` writes to ``events.json``); the functions
below turn a report into tables:

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
``report.html``). `failover_panel` is the button-per-scenario widget.
"""

import html
import json
import tempfile
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import altair as alt
import anyio
import anyio.abc
import anyio.to_thread
import ipywidgets as widgets
import pandas as pd

from railgun_ref.apps.demo import (
    CENTRAL_NAME,
    SCENARIO_TITLES,
    SCENARIOS,
    DeliverySummary,
    FailoverNetwork,
    ScenarioResult,
)
from railgun_ref.client import Profile
from railgun_ref.lab.network import PortalThread
from railgun_ref.lab.widgets import show_chart

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


def message_paths(report: dict[str, Any]) -> pd.DataFrame:
    """One row per message accepted by `send`: the path(s) that brought it to its recipients.

    ``path`` is ``central`` or ``p2p`` if every recipient got it over that path
    first, ``both`` if some got it one way and some the other, ``none`` if
    nobody got it; ``last_delivery_s`` is from sending to the last recipient.
    """
    sent: dict[str, dict[str, Any]] = {}
    for event in report["events"]:
        if event["kind"] == "accepted":
            sent[event["message_id"]] = {
                "message_id": event["message_id"],
                "sender": event["client"],
                "sent_at": event["t"],
                "recipients": 0,
                "via_central": 0,
                "via_p2p": 0,
                "last": None,
            }
    for event in report["events"]:
        row = sent.get(event.get("message_id", ""))
        if event["kind"] != "received" or row is None or event["duplicate"]:
            continue
        row["recipients"] += 1
        row["via_p2p" if event["path"] == "p2p" else "via_central"] += 1
        row["last"] = event["t"] if row["last"] is None else max(row["last"], event["t"])
    rows = []
    for row in sent.values():
        central, p2p = row["via_central"], row["via_p2p"]
        path = "both" if central and p2p else "central" if central else "p2p" if p2p else "none"
        last = None if row["last"] is None else round(row["last"] - row["sent_at"], 4)
        rows.append(
            {**{k: row[k] for k in MESSAGE_COLUMNS[:6]}, "path": path, "last_delivery_s": last}
        )
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


def _windows_layer(windows: pd.DataFrame) -> Any:
    """Shaded fault windows with the scenario's name on top."""
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
        .mark_text(align="left", baseline="top", dx=3, dy=-12, color="#e45756")
        .encode(x="fault_at:Q", text="scenario:N")
    )
    return shade + label


def state_timeline(intervals: pd.DataFrame, windows: pd.DataFrame | None = None) -> Any:
    """One bar per client across time, coloured by transport state; faults shaded."""
    states = [s for s in STATE_COLOURS if s in set(intervals["state"])] or list(STATE_COLOURS)
    bars = (
        alt.Chart(intervals, title="Transport state of each client")
        .mark_bar(height=12)
        .encode(
            x=alt.X("start:Q", title="seconds since start"),
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


def message_path_chart(paths: pd.DataFrame, windows: pd.DataFrame | None = None) -> Any:
    """Every message sent: when and by whom, coloured by the path that delivered it."""
    domain = [*PATH_COLOURS, "none"]
    points = (
        alt.Chart(paths, title="The path each message took")
        .mark_point(filled=True, size=60)
        .encode(
            x=alt.X("sent_at:Q", title="sent at (seconds since start)"),
            y=alt.Y("sender:O", title="sender"),
            color=alt.Color(
                "path:N",
                scale=alt.Scale(domain=domain, range=[*PATH_COLOURS.values(), "#e45756"]),
                title="delivered via",
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


def delivery_rate_chart(deliveries: pd.DataFrame, windows: pd.DataFrame | None = None) -> Any:
    """Messages handed to applications per second, stacked by the path that brought them."""
    first = deliveries[~deliveries["duplicate"].astype(bool)]
    data = (
        first.assign(second=first["t"].astype(float).floordiv(1.0))
        .groupby(["second", "path"], as_index=False)
        .size()
        .rename(columns={"size": "deliveries"})
    )
    bars = (
        alt.Chart(data, title="Deliveries per second by path")
        .mark_bar()
        .encode(
            x=alt.X("second:Q", title="seconds since start"),
            y=alt.Y("deliveries:Q", title="deliveries", stack=True),
            color=alt.Color(
                "path:N",
                scale=alt.Scale(
                    domain=["central", "p2p"], range=[PATH_COLOURS["central"], PATH_COLOURS["p2p"]]
                ),
                title="path",
            ),
            tooltip=["second:Q", "path:N", "deliveries:Q"],
        )
    )
    chart = bars if windows is None or windows.empty else _windows_layer(windows) + bars
    return chart.properties(width=640, height=160)


def report_charts(report: dict[str, Any]) -> Any:
    """The three charts of a report, one above the other."""
    windows = scenario_windows(report)
    return alt.vconcat(
        state_timeline(state_intervals(report), windows),
        message_path_chart(message_paths(report), windows),
        delivery_rate_chart(deliveries_frame(report), windows),
    )


# ------------------------------------------------------------------ HTML report

_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>railgun-ref demo report</title>
<script src="https://cdn.jsdelivr.net/npm/vega@{vega}"></script>
<script src="https://cdn.jsdelivr.net/npm/vega-lite@{vegalite}"></script>
<script src="https://cdn.jsdelivr.net/npm/vega-embed@{embed}"></script>
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
<h2>Timeline</h2>
<div id="charts"></div>
<p>The events behind these charts are in <code>events.json</code>.</p>
<script>
vegaEmbed("#charts", {spec}, {{"actions": false}});
</script>
</body>
</html>
"""


def write_html_report(report: dict[str, Any], path: Path) -> None:
    """Write one HTML page with the report's tables and charts (vega from a CDN)."""
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
        f"{summary['sent']} sent x {summary['members'] - 1} other members = "
        f"{summary['expected']} expected; {summary['delivered']} delivered, "
        f"{summary['duplicates']} duplicates, {summary['lost']} lost: "
        + ("every message exactly once" if ok else "NOT exactly once")
    )
    summary_table = pd.DataFrame([summary]).drop(columns=["by_path"]).to_html(index=False)
    page = _PAGE.format(
        vega=alt.VEGA_VERSION.split(".")[0],
        vegalite=alt.VEGALITE_VERSION.split(".")[0],
        embed=alt.VEGAEMBED_VERSION.split(".")[0],
        intro=intro,
        verdict_class="ok" if ok else "failed",
        verdict=html.escape(verdict),
        summary=summary_table,
        timings=timings_frame(report).to_html(index=False, na_rep="-"),
        spec=json.dumps(report_charts(report).to_dict()).replace("</", "<\\/"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)


# ------------------------------------------------------------------ the live lab


class FailoverLab:
    """The demo's network, driven from synchronous code (module docstring).

    >>> with FailoverLab.start(5) as lab:  # doctest: +SKIP
    ...     result = lab.run_scenario("takedown")
    ...     summary = lab.finish()
    """

    def __init__(
        self,
        *,
        peers: int,
        chat_interval: float = 0.5,
        hold: float = 2.0,
        profile: Profile | None = None,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="railgun-lab-failover-")
        self.network = FailoverNetwork(
            peers=peers,
            data_dir=Path(self._tmp.name),
            chat_interval=chat_interval,
            hold=hold,
            profile=profile,
        )
        self.summary: DeliverySummary | None = None
        self._loop: PortalThread | None = None
        self._serving: Future[None] | None = None
        self._stop: anyio.Event | None = None

    @classmethod
    def start(
        cls,
        peers: int = 5,
        *,
        chat_interval: float = 0.5,
        hold: float = 2.0,
        profile: Profile | None = None,
    ) -> Self:
        """Start the central service, the DNS server, the proxy and `peers` chatting clients.

        Returns once every client knows every other member of the room.
        """
        lab = cls(peers=peers, chat_interval=chat_interval, hold=hold, profile=profile)
        try:
            lab._loop = PortalThread()
            lab._serving, lab._stop = lab._loop.portal.start_task(lab._serve)
        except BaseException:
            lab.close()
            raise
        return lab

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[anyio.Event]) -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            await tg.start(self.network.run)
            task_status.started(stop)
            await stop.wait()
            tg.cancel_scope.cancel()

    @property
    def running(self) -> bool:
        return self._stop is not None

    def _portal(self) -> Any:
        if self._loop is None or self._stop is None:
            raise RuntimeError(f"{self!r} is not running")
        return self._loop.portal

    def run_scenario(self, scenario: str) -> ScenarioResult:
        """Fault, failover, chat over P2P, restore, failback; blocks ~15 s (fast profile)."""
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        result: ScenarioResult = self._portal().call(self.network.run_scenario, scenario)
        return result

    async def arun_scenario(self, scenario: str) -> ScenarioResult:
        """`run_scenario` in a worker thread, for top-level ``await`` in a notebook."""
        return await anyio.to_thread.run_sync(self.run_scenario, scenario)

    def finish(self) -> DeliverySummary:
        """Stop the chat, wait until every outbox drains, judge every delivery."""
        summary: DeliverySummary = self._portal().call(self.network.finish)
        self.summary = summary
        return summary

    def report(self) -> dict[str, Any]:
        """Everything observed so far, as ``railgun-ref demo`` writes it to ``events.json``."""
        if self._loop is None or self._stop is None:
            return self.network.report(self.summary)
        report: dict[str, Any] = self._portal().call(self.network.report, self.summary)
        return report

    def clients(self) -> pd.DataFrame:
        """One row per client: state, path in use, messages sent and delivered."""

        def snapshot() -> list[dict[str, Any]]:
            return [
                {
                    "client": v.index,
                    "address": v.address,
                    "state": v.state,
                    "path": v.path,
                    "sent": v.sent,
                    "delivered": v.delivered,
                    "via_central": v.via_central,
                    "via_p2p": v.via_p2p,
                    "duplicates": v.duplicates,
                    "last_health_failure": v.last_failure,
                }
                for v in self.network.views
            ]

        rows = self._portal().call(snapshot) if self.running else snapshot()
        return pd.DataFrame(rows)

    def timings(self) -> pd.DataFrame:
        """`timings_frame` of the scenarios run so far."""
        return timings_frame(self.report())

    def charts(self) -> Any:
        """`report_charts` of everything so far."""
        return report_charts(self.report())

    def close(self) -> None:
        """Stop the clients, kill the central process, end the thread, delete the data."""
        try:
            if self._loop is not None and self._stop is not None and self._serving is not None:
                stop, serving, self._stop, self._serving = self._stop, self._serving, None, None
                self._loop.portal.call(stop.set)
                serving.result()
        finally:
            if self._loop is not None:
                loop, self._loop = self._loop, None
                loop.stop()
            if self.network.central is not None:
                self.network.central.kill()
            self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"<FailoverLab {self.network.peers} clients, central service {CENTRAL_NAME}: {state}>"
        )


# ------------------------------------------------------------------ widget


class FailoverPanel:
    """A button per scenario, a status line and the timeline.

    Pressing a button runs that scenario on the lab (the kernel waits for
    it, ~15 s with the fast profile), then redraws the state timeline and the
    timings table. ``panel.buttons["takedown"].click()`` or `run` does the
    same from code.
    """

    def __init__(self, lab: FailoverLab, *, scenarios: Sequence[str] = SCENARIOS) -> None:
        self.lab = lab
        self.last_result: ScenarioResult | None = None
        self.buttons = {
            name: widgets.Button(description=name, tooltip=SCENARIO_TITLES[name])
            for name in scenarios
        }
        self.status = widgets.Label(value="press a button to run a scenario")
        self.table = widgets.Output()
        self.output = widgets.Output()
        for name, button in self.buttons.items():
            button.on_click(lambda _button, name=name: self.run(name))
        self.widget = widgets.VBox(
            [widgets.HBox(list(self.buttons.values())), self.status, self.table, self.output]
        )

    def run(self, scenario: str) -> ScenarioResult:
        """Run `scenario`, then redraw."""
        self.status.value = f"running {scenario}: {SCENARIO_TITLES[scenario]}..."
        for button in self.buttons.values():
            button.disabled = True
        try:
            result = self.lab.run_scenario(scenario)
        finally:
            for button in self.buttons.values():
                button.disabled = False
        self.last_result = result
        failover = result.to_json()["failover"]["max_s"]
        failback = result.to_json()["failback"]["max_s"]
        self.status.value = (
            f"{scenario}: failed over {result.failed_over} (slowest {failover} s), "
            f"failed back {result.failed_back} (slowest {failback} s)"
        )
        report = self.lab.report()
        show_chart(self.table, _FrameBundle(timings_frame(report)))
        show_chart(self.output, state_timeline(state_intervals(report), scenario_windows(report)))
        return result

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


class _FrameBundle:
    """A DataFrame as a mime bundle, for `show_chart`."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/html": self.frame.to_html(index=False), "text/plain": str(self.frame)}


def failover_panel(lab: FailoverLab, **options: Any) -> FailoverPanel:
    """A `FailoverPanel` for `lab`; options as for `FailoverPanel`."""
    return FailoverPanel(lab, **options)
