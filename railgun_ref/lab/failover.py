"""The failover demo in a notebook: live clients, a button per scenario, timelines.

`FailoverLab` runs the engine of ``railgun-ref demo``
(`railgun_ref.apps.demo.FailoverNetwork`: a real ``railgun-ref central``
process behind a fault proxy and a DNS server, and chatting clients) in an
event loop of its own in a background thread, like `LocalNetwork`, so its
methods are plain blocking calls that work from a Jupyter cell.

Everything the clients observed is one report (`FailoverLab.report`, the
same dict ``railgun-ref demo`` writes to ``events.json``). The tables and
charts of a report (`events_frame`, `state_intervals`, `message_paths`,
`timings_frame`, `state_timeline`, ...) and `write_html_report` live with the
demo in `railgun_ref.apps.demo_report` and are re-exported here for notebooks.
`failover_panel` is the button-per-scenario widget.
"""

import tempfile
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, Self

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
from railgun_ref.apps.demo_report import (
    CLIENT_TIMING_COLUMNS,
    DELIVERY_COLUMNS,
    INTERVAL_COLUMNS,
    MESSAGE_COLUMNS,
    PATH_COLOURS,
    RATE_BIN_S,
    STATE_COLOURS,
    TIMING_COLUMNS,
    WINDOW_COLUMNS,
    client_timings_frame,
    deliveries_frame,
    delivery_rate_chart,
    delivery_rates,
    events_frame,
    message_path_chart,
    message_paths,
    report_charts,
    report_span,
    scenario_windows,
    state_intervals,
    state_timeline,
    timings_frame,
    write_html_report,
)
from railgun_ref.lab.network import PortalThread
from railgun_ref.lab.widgets import SnapshotPanel, show_chart

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
    "FailoverLab",
    "FailoverPanel",
    "client_timings_frame",
    "deliveries_frame",
    "delivery_rate_chart",
    "delivery_rates",
    "events_frame",
    "failover_panel",
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
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="railgun-lab-failover-")
        self.network = FailoverNetwork(
            peers=peers,
            data_dir=Path(self._tmp.name),
            chat_interval=chat_interval,
            hold=hold,
            fresh_client=False,  # the demo's late joiner (apps/demo_bootstrap.py) stays out
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
    ) -> Self:
        """Start the central service, the DNS server, the proxy and `peers` chatting clients.

        Returns once every client knows every other member of the room.
        """
        lab = cls(peers=peers, chat_interval=chat_interval, hold=hold)
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


class FailoverPanel(SnapshotPanel):
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
        self.refresh_snapshot()
        return result


class _FrameBundle:
    """A DataFrame as a mime bundle, for `show_chart`."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/html": self.frame.to_html(index=False), "text/plain": str(self.frame)}


def failover_panel(lab: FailoverLab, **options: Any) -> FailoverPanel:
    """A `FailoverPanel` for `lab`; options as for `FailoverPanel`."""
    return FailoverPanel(lab, **options)
