"""`railgun-ref sweep`: grids, seeds as sampled networks, CIs, Parquet, pool and Dask.

The Dask test starts a real `distributed.LocalCluster` on 127.0.0.1 and checks that a
sweep run there gives the same rows as the same sweep in this process (the experiments
are deterministic for their parameters and seed), which is what makes a cluster run
trustworthy.
"""

import json
import math
import socket
from pathlib import Path

import pandas as pd
import pytest

from railgun_ref.cli import main
from railgun_ref.drivers.console import UsageError
from railgun_ref.sweep import (
    EXPERIMENTS,
    Task,
    confidence_interval,
    expand_grid,
    parse_param,
    run_sweep,
    run_task,
)

pytestmark = pytest.mark.timeout(300)

DHT = EXPERIMENTS["dht"]
SF = EXPERIMENTS["storeforward"]
#: A DHT small enough for a test (a run takes well under a second).
TINY_DHT = {"nodes": [12, 24], "keys": [4]}


def test_parse_param_types_values_by_default() -> None:
    assert parse_param(DHT, "nodes=10, 20") == ("nodes", [10, 20])
    assert parse_param(DHT, "churn=0.1,0.3") == ("churn", [0.1, 0.3])
    _name, values = parse_param(DHT, "nodes=10")
    assert isinstance(values[0], int)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("nodes", "write NAME=V1,V2"),
        ("=5", "write NAME=V1,V2"),
        ("nodes=", "write NAME=V1,V2"),
        ("colour=1", "has no such parameter"),
        ("nodes=2.5", "is not an integer"),
        ("churn=abc", "is not a number"),
        ("churn=inf", "finite"),
        ("nodes=10,10", "given twice"),
    ],
)
def test_parse_param_refuses_mistakes(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_param(DHT, text)


def test_grid_is_the_product_over_the_defaults() -> None:
    points = expand_grid(DHT, {"nodes": [10, 20], "churn": [0.0, 0.1, 0.2]})
    assert len(points) == 6
    assert {(p["nodes"], p["churn"]) for p in points} == {
        (n, c) for n in (10, 20) for c in (0.0, 0.1, 0.2)
    }
    assert all(p["k"] == DHT.defaults["k"] and p["alpha"] == DHT.defaults["alpha"] for p in points)
    assert expand_grid(DHT, {}) == [dict(DHT.defaults)]


def test_confidence_interval_is_student_t() -> None:
    # mean 2, sample sd 1, n 3: half width t(0.975, 2) / sqrt(3) = 4.302653 / 1.7320508
    low, high = confidence_interval([1.0, 2.0, 3.0]) or (math.nan, math.nan)
    assert low == pytest.approx(2 - 2.4841377, abs=1e-6)
    assert high == pytest.approx(2 + 2.4841377, abs=1e-6)
    assert confidence_interval([5.0]) is None
    assert confidence_interval([4.0, 4.0]) == (4.0, 4.0)


def test_a_failing_run_is_a_row_with_its_error() -> None:
    row = run_task(Task(experiment="dht", point=0, params={"nodes": 1}, seed=1))
    assert row["error"] is not None and "ValueError" in row["error"]
    assert row["get_success"] is None


def test_seeds_are_independent_networks_and_rows_are_deterministic() -> None:
    first = run_sweep(DHT, TINY_DHT, seeds=[1, 2, 3], workers=0)
    again = run_sweep(DHT, TINY_DHT, seeds=[1, 2, 3], workers=0)
    metrics = list(DHT.metrics)
    assert len(first.rows) == 6 and first.failed_runs == 0
    pd.testing.assert_frame_equal(first.rows[metrics], again.rows[metrics])
    # different seeds sample different networks: the event counts differ within a point
    assert first.rows.groupby("point")["events"].nunique().min() > 1
    summary = first.summary.set_index("nodes")
    assert list(summary.index) == [12, 24] and (summary["runs"] == 3).all()
    events = first.rows[first.rows["nodes"] == 24]["events"]
    assert summary.loc[24, "events_mean"] == pytest.approx(events.mean())
    assert summary.loc[24, "events_ci_low"] < events.mean() < summary.loc[24, "events_ci_high"]


def test_pool_gives_the_rows_of_an_in_process_run() -> None:
    values = {"redundancy": [2, 3]}
    local = run_sweep(SF, values, seeds=[1, 2], workers=0)
    pooled = run_sweep(SF, values, seeds=[1, 2], workers=2)
    metrics = list(SF.metrics)
    pd.testing.assert_frame_equal(local.rows[metrics], pooled.rows[metrics])
    assert pooled.where == "process pool (2 workers)"
    assert set(local.rows["redundancy"]) == {2, 3}
    assert local.rows["delivery_rate"].between(0.0, 1.0).all()


def test_dask_local_cluster_gives_the_same_rows(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    local = run_sweep(DHT, TINY_DHT, seeds=[1, 2], workers=0)
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        remote = run_sweep(DHT, TINY_DHT, seeds=[1, 2], scheduler=address)
    metrics = list(DHT.metrics)
    pd.testing.assert_frame_equal(local.rows[metrics], remote.rows[metrics])
    assert remote.where == f"dask {address}"


def test_cli_writes_parquet_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rows.parquet"
    argv = ["sweep", "dht", "--param", "nodes=12,16", "--param", "keys=3", "--seeds", "2"]
    code = main([*argv, "--workers", "0", "--out", str(out), "--json", "--quiet"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runs"] == 4 and data["failed_runs"] == 0 and data["seeds"] == [1, 2]
    assert [line["nodes"] for line in data["summary"]] == [12, 16]
    rows = pd.read_parquet(out)
    assert len(rows) == 4 and set(rows["seed"]) == {1, 2}
    assert rows["get_success"].notna().all()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["sweep", "nosuch"], "no experiment 'nosuch'"),
        (["sweep", "dht", "--param", "colour=1"], "has no such parameter"),
        (["sweep", "dht", "--param", "nodes=1", "--param", "nodes=2"], "swept twice"),
        (["sweep", "dht", "--seeds", "0"], "at least 1"),
        (["sweep", "dht", "--workers", "-1"], "0 (in this process) or more"),
        (["sweep", "dht", "--scheduler", "127.0.0.1:8786"], "write tcp://HOST:PORT"),
        (["sweep", "dht", "--out", "/nonexistent-dir/x.parquet"], "no directory"),
    ],
)
def test_cli_mistakes_are_one_line_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert fragment in err


def test_unreachable_scheduler_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # a port on loopback nobody listens on (bound then closed)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["sweep", "dht", "--param", "nodes=12", "--seeds", "1", "--quiet"]
    assert main([*argv, "--scheduler", f"tcp://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler" in err and len(err.splitlines()) == 1
