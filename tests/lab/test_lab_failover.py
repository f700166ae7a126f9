"""The failover lab: report -> tables -> charts -> HTML, and the live lab with its panel.

The tables are checked on a small hand-made report whose answers are known;
the live test starts a real central process and three clients, presses the
DNS button, and checks what the panel and the lab report (HT-3.2, HT-3.3,
HT-4.3). Nothing asserts on timings.
"""

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from railgun_ref.apps.demo import ScenarioResult
from railgun_ref.lab.failover import (
    CLIENT_TIMING_COLUMNS,
    DELIVERY_COLUMNS,
    INTERVAL_COLUMNS,
    MESSAGE_COLUMNS,
    TIMING_COLUMNS,
    FailoverLab,
    client_timings_frame,
    deliveries_frame,
    delivery_rate_chart,
    delivery_rates,
    events_frame,
    failover_panel,
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

M1, M2, M3 = "11" * 16, "22" * 16, "33" * 16


def _received(t: float, client: int, mid: str, sender: int, path: str, dup: bool = False) -> Any:
    return {
        "t": t,
        "client": client,
        "kind": "received",
        "message_id": mid,
        "sender": sender,
        "path": path,
        "latency_ms": 5.0,
        "duplicate": dup,
    }


def _state(t: float, client: int, old: str, new: str) -> dict[str, Any]:
    return {"t": t, "client": client, "kind": "state", "old": old, "new": new, "reason": "x"}


@pytest.fixture
def report() -> dict[str, Any]:
    """Three clients; a takedown from t=10 to t=20; three messages."""
    result = ScenarioResult(
        scenario="takedown",
        clients=3,
        fault_at=10.0,
        restored_at=20.0,
        failed_over=True,
        failed_back=True,
        detection={0: 0.5, 1: 1.0, 2: 1.5},
        failover={0: 2.5, 1: 3.0, 2: 3.5},
        failback={0: 3.0, 1: 4.0},
        labels={"connection_reset": 9},
        first_p2p_delivery=4.0,
        sent_during_fault=2,
        delivered_over_p2p=3,
    )
    events: list[dict[str, Any]] = [
        {"t": 0.5, "client": c, "kind": "client", "address": "127.0.0.1:1", "node_id": "ab"}
        for c in range(3)
    ]
    for c in range(3):
        events.append(_state(1.0, c, "connecting", "connected-aws"))
        events.append(_state(12.5 + c / 2, c, "connected-aws", "connected-p2p"))
    events.append(_state(23.0, 0, "connected-p2p", "connected-aws"))
    events.append(_state(24.0, 1, "connected-p2p", "connected-aws"))
    events += [
        {"t": 5.0, "client": 0, "kind": "accepted", "message_id": M1, "recipients": 2},
        _received(5.1, 1, M1, 0, "central"),
        _received(5.2, 2, M1, 0, "central"),
        {"t": 14.0, "client": 1, "kind": "accepted", "message_id": M2, "recipients": 2},
        _received(14.2, 0, M2, 1, "p2p"),
        _received(14.5, 2, M2, 1, "p2p"),
        _received(21.0, 2, M2, 1, "central", dup=True),
        {"t": 16.0, "client": 2, "kind": "accepted", "message_id": M3, "recipients": 2},
        _received(16.3, 0, M3, 2, "p2p"),
        _received(25.0, 1, M3, 2, "central"),
        {"t": 10.0, "client": None, "kind": "fault", "scenario": "takedown"},
    ]
    return {
        "demo": {
            "peers": 3,
            "room": "railgun-demo",
            "central_name": "central.railgun.test",
            "health_check_interval_s": 1.0,
            "duration_s": 30.0,
        },
        "summary": {
            "members": 3,
            "sent": 3,
            "expected": 6,
            "delivered": 6,
            "duplicates": 1,
            "lost": 0,
            "unexpected": 0,
            "by_path": {"central": 3, "p2p": 3},
            "exactly_once": False,
        },
        "scenarios": [result.to_json()],
        "clients": [],
        "events": events,
    }


def test_state_intervals_cover_each_client_from_start_to_end(report: dict[str, Any]) -> None:
    spans = state_intervals(report)
    assert tuple(spans.columns) == INTERVAL_COLUMNS
    zero = spans[spans["client"] == 0]
    assert zero["state"].tolist() == [
        "connecting",
        "connected-aws",
        "connected-p2p",
        "connected-aws",
    ]
    assert zero["start"].tolist() == [0.5, 1.0, 12.5, 23.0]
    assert zero["end"].tolist() == [1.0, 12.5, 23.0, 30.0]
    # client 2 never failed back: its last span runs to the end of the report
    two = spans[spans["client"] == 2].iloc[-1]
    assert (two["state"], two["end"]) == ("connected-p2p", 30.0)


def test_message_paths_name_the_path_each_message_took(report: dict[str, Any]) -> None:
    paths = message_paths(report)
    assert tuple(paths.columns) == MESSAGE_COLUMNS
    by_id = paths.set_index("message_id")
    assert by_id.loc[M1, "path"] == "central"
    assert by_id.loc[M2, "path"] == "p2p"  # the late duplicate over central is not a path
    assert by_id.loc[M3, "path"] == "both"
    assert by_id["recipients"].tolist() == [2, 2, 2]
    assert math.isclose(by_id["last_delivery_s"].tolist()[2], 9.0)
    assert paths["sent_at"].is_monotonic_increasing


def test_deliveries_windows_and_timings(report: dict[str, Any]) -> None:
    deliveries = deliveries_frame(report)
    assert tuple(deliveries.columns) == DELIVERY_COLUMNS
    assert len(deliveries) == 7 and int(deliveries["duplicate"].sum()) == 1

    windows = scenario_windows(report)
    assert windows[["scenario", "fault_at", "restored_at"]].values.tolist() == [
        ["takedown", 10.0, 20.0]
    ]

    timings = timings_frame(report)
    assert tuple(timings.columns) == TIMING_COLUMNS
    row = timings.iloc[0]
    assert (row["detection_median_s"], row["detection_max_s"]) == (1.0, 1.5)
    assert (row["failover_median_s"], row["failover_max_s"]) == (3.0, 3.5)
    assert (row["failback_median_s"], row["failback_max_s"]) == (3.5, 4.0)
    assert row["labels"] == "connection_reset x9"

    per_client = client_timings_frame(report)
    assert tuple(per_client.columns) == CLIENT_TIMING_COLUMNS
    assert per_client["client"].tolist() == [0, 1, 2]
    assert per_client["failback_s"].isna().tolist() == [False, False, True]  # 2 never did

    events = events_frame(report)
    assert events["t"].is_monotonic_increasing and len(events) == len(report["events"])


def test_charts_are_valid_vega_lite(report: dict[str, Any]) -> None:
    windows = scenario_windows(report)
    timeline = state_timeline(state_intervals(report), windows).to_dict()
    assert timeline["layer"][-1]["mark"]["type"] == "bar"
    assert timeline["layer"][-1]["encoding"]["color"]["field"] == "state"
    paths = message_path_chart(message_paths(report), windows).to_dict()
    assert paths["layer"][-1]["encoding"]["color"]["field"] == "path"
    assert "'none (yet)'" in paths["layer"][-1]["encoding"]["color"]["legend"]["labelExpr"]
    rate = delivery_rate_chart(deliveries_frame(report)).to_dict()
    assert (rate["encoding"]["y"]["field"], rate["encoding"]["y2"]["field"]) == ("high", "low")
    assert len(report_charts(report).to_dict()["vconcat"]) == 3


def test_delivery_rates_bin_first_deliveries_by_delivery_time(report: dict[str, Any]) -> None:
    rates = delivery_rates(deliveries_frame(report))
    assert tuple(rates.columns) == ("start", "end", "path", "deliveries", "low", "high")
    # 5.1, 5.2 central; 14.2, 14.5 p2p; 16.3 p2p; 25.0 central; the duplicate at 21.0 is out
    assert rates[["start", "end", "path", "deliveries"]].values.tolist() == [
        [5.0, 6.0, "central", 2],
        [14.0, 15.0, "p2p", 2],
        [16.0, 17.0, "p2p", 1],
        [25.0, 26.0, "central", 1],
    ]
    halves = delivery_rates(deliveries_frame(report), bin_s=0.5)
    assert halves.loc[halves["start"] == 14.0, "deliveries"].tolist() == [1]
    assert halves.loc[halves["start"] == 14.5, "deliveries"].tolist() == [1]
    with pytest.raises(ValueError):
        delivery_rates(deliveries_frame(report), bin_s=0)


def test_delivery_bars_stack_within_their_bin() -> None:
    deliveries = pd.DataFrame(
        {
            "t": [3.2, 3.4, 3.9, 4.1],
            "client": [0, 1, 2, 0],
            "sender": [1, 0, 0, 2],
            "path": ["p2p", "central", "central", "p2p"],
            "latency_ms": 5.0,
            "duplicate": False,
        }
    )
    rates = delivery_rates(deliveries).set_index(["start", "path"])
    assert rates.loc[(3.0, "central"), ["low", "high"]].tolist() == [0, 2]
    assert rates.loc[(3.0, "p2p"), ["low", "high"]].tolist() == [2, 3]
    assert rates.loc[(4.0, "p2p"), ["low", "high"]].tolist() == [0, 1]


def test_stacked_report_charts_share_one_time_axis(report: dict[str, Any]) -> None:
    """The panels line up: every chart of the report spans the same seconds, and a
    delivery bar spans the bin its deliveries happened in, not the second before."""
    assert report_span(report) == (0.0, 30.0)
    spec = report_charts(report).to_dict()
    for panel in spec["vconcat"]:
        x = panel["layer"][-1]["encoding"]["x"]
        assert x["scale"] == {"domain": [0.0, 30.0], "nice": False}
    bars = spec["vconcat"][2]["layer"][-1]["encoding"]
    assert (bars["x"]["field"], bars["x2"]["field"]) == ("start", "end")


def test_html_report(report: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "r" / "report.html"
    write_html_report(report, page)
    text = page.read_text()
    assert "3 sent x 2 other members = 6 expected; 6 delivered, 1 duplicates" in text
    assert "NOT exactly once" in text
    assert "connection_reset x9" in text
    spec = text[text.index("vegaEmbed(") + len('vegaEmbed("#charts", ') :]
    spec = spec[: spec.index(', {"actions"')]
    assert len(json.loads(spec)["vconcat"]) == 3


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_live_lab_runs_a_scenario_from_its_panel() -> None:
    """HT-3.2, HT-3.3, HT-4.3: pressing the DNS button fails the clients over and back;
    afterwards every message reached every other client exactly once."""
    with FailoverLab.start(3, hold=1.0) as lab:
        assert lab.running
        assert len(lab.clients()) == 3
        panel = failover_panel(lab, scenarios=["dns", "takedown"])
        assert set(panel.buttons) == {"dns", "takedown"}
        panel.buttons["dns"].click()
        result = panel.last_result
        assert result is not None and result.ok
        assert "dns_nxdomain" in result.labels
        assert panel.status.value.startswith("dns: failed over True")
        assert len(panel.output.outputs) == 1 and len(panel.table.outputs) == 1
        timings = lab.timings()
        assert timings["scenario"].tolist() == ["dns"]
        summary = lab.finish()
        assert summary.ok, summary.line()
        assert summary.delivered == summary.expected == summary.sent * 2 > 0
        report = lab.report()
        assert report["summary"]["exactly_once"] is True
        states = state_intervals(report)
        assert {"connected-aws", "connected-p2p"} <= set(states["state"])
    assert not lab.running
    assert "stopped" in repr(lab)
    assert lab.network.central is not None and not lab.network.central.running
