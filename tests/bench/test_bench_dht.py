"""`bench dht` smoke tests: the harness runs both implementations and reports the JSON shape.

Small networks (10 nodes, 3 keys) on 127.0.0.1; no timing is asserted, only
that the gets find what the stores put and that the report has its fields.
"""

import json
from typing import Any

import pytest

from railgun_ref.bench.dht import evaluate_goals, run, worker_main
from railgun_ref.bench.dht import main as bench_main
from railgun_ref.bench.dht_common import BenchParams, make_workload, nearest_rank
from railgun_ref.cli import build_parser
from railgun_ref.drivers.console import UsageError

pytestmark = pytest.mark.timeout(60)

SMALL = BenchParams(nodes=10, keys=3, seed=7, settle_s=0.1)


def _check_impl_report(report: dict[str, Any], *, impl: str, driver: str) -> None:
    assert "error" not in report, report
    assert report["impl"] == impl
    assert report["driver"] == driver
    assert report["joins_failed"] == 0
    assert report["setup_s"] >= 0
    assert report["peak_rss_mb"] > 0
    for phase in ("stores", "gets"):
        summary = report[phase]
        assert summary["n"] == SMALL.keys
        assert summary["succeeded"] == SMALL.keys
        assert summary["success_rate"] == 1.0
        assert set(summary["latency_ms"]) == {"median", "p95", "max", "mean"}
    assert set(report["gets"]["rpcs"]) == {"median", "p95", "max", "mean"}
    assert isinstance(report["notes"], list) and report["notes"]


def test_the_workload_is_a_function_of_the_seed_and_spares_the_getters() -> None:
    params = BenchParams(nodes=50, keys=20, churn=0.3, seed=3)
    first, second = make_workload(params), make_workload(params)
    assert first == second
    assert len(first.stopped) == 15
    assert not set(first.get_from) & set(first.stopped)
    assert make_workload(BenchParams(nodes=50, keys=20, churn=0.3, seed=4)) != first


def test_nearest_rank_p95() -> None:
    values = [float(v) for v in range(1, 101)]
    assert nearest_rank(values, 0.95) == 95.0
    assert nearest_rank([4.0], 0.95) == 4.0


def test_ours_on_udp_finds_every_value_it_stored() -> None:
    result = run(SMALL, impls=["ours"], in_process=True, quiet=True)
    assert result["benchmark"] == "dht"
    assert result["parameters"]["nodes"] == 10
    _check_impl_report(result["impls"]["ours"], impl="ours", driver="udp")
    assert result["impls"]["ours"]["gets"]["rpcs"]["median"] >= 1
    # Every store reached the other nine nodes (k=20 > 9), not only the publisher's own table.
    assert result["impls"]["ours"]["stores"]["remote_replicas"]["median"] == 9.0
    assert [goal["id"] for goal in result["goals"]] == ["G1", "G2", "G3"]
    assert all(goal["applies"] is False and goal["met"] is None for goal in result["goals"])
    assert {"python", "cpu_count", "machine_note"} <= set(result["environment"])


def test_ours_on_udp_survives_churn_with_link_delay() -> None:
    params = BenchParams(nodes=10, keys=3, churn=0.3, rtt_ms=10.0, seed=7, settle_s=0.1)
    report = run(params, impls=["ours"], in_process=True, quiet=True)["impls"]["ours"]
    assert report["gets"]["success_rate"] == 1.0


def test_ours_in_the_simulator_reports_hops_and_events() -> None:
    params = BenchParams(nodes=10, keys=3, rtt_ms=50.0, seed=7, settle_s=0.1)
    result = run(params, impls=["ours"], driver="sim", in_process=True, quiet=True)
    report = result["impls"]["ours"]
    _check_impl_report(report, impl="ours", driver="sim")
    assert report["gets"]["hops"]["median"] >= 1
    assert report["events_processed"] > 0
    assert report["log2_nodes"] == pytest.approx(3.32, abs=0.01)
    # Virtual time: a get asks the network even when the getter holds the value,
    # so it lasts at least one simulated 50 ms round trip.
    assert report["gets"]["latency_ms"]["median"] >= 50.0


def test_kademlia_under_the_same_harness() -> None:
    pytest.importorskip("kademlia")
    result = run(SMALL, impls=["kademlia"], in_process=True, quiet=True)
    report = result["impls"]["kademlia"]
    _check_impl_report(report, impl="kademlia", driver="udp")
    assert report["datagrams_refused_non_loopback"] == 0


def test_the_worker_prints_one_implementations_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    params = json.dumps({"nodes": 4, "keys": 1, "settle_s": 0.1})
    assert worker_main(["--worker", "ours", "--params", params, "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["impl"] == "ours"
    assert report["gets"]["success_rate"] == 1.0


def test_by_default_each_implementation_runs_in_its_own_subprocess() -> None:
    params = BenchParams(nodes=4, keys=1, settle_s=0.1)
    result = run(params, impls=["ours"], quiet=True)
    assert result["impls"]["ours"]["gets"]["success_rate"] == 1.0
    assert not any("in-process" in note for note in result["notes"])


def test_goal_two_is_evaluated_only_for_its_parameters() -> None:
    params = BenchParams(nodes=200, keys=5, churn=0.3, rtt_ms=50.0)
    ours = {"gets": {"success_rate": 1.0, "latency_ms": {"median": 120.0, "p95": 900.0}}}
    peer = {"gets": {"success_rate": 0.9}}
    goals = {g["id"]: g for g in evaluate_goals(params, "udp", {"ours": ours, "kademlia": peer})}
    assert goals["G1"]["applies"] is False
    assert goals["G2"]["applies"] is True and goals["G2"]["met"] is True
    assert goals["G2"]["peer_success_rate"] == 0.9
    slow = {"gets": {"success_rate": 1.0, "latency_ms": {"median": 151.0, "p95": 900.0}}}
    goals = {g["id"]: g for g in evaluate_goals(params, "udp", {"ours": slow, "kademlia": peer})}
    assert goals["G2"]["met"] is False
    alone = {g["id"]: g for g in evaluate_goals(params, "udp", {"ours": ours})}
    assert alone["G2"]["both_in_same_run"] is False and alone["G2"]["met"] is False


def test_the_cli_has_a_bench_dht_command() -> None:
    args = build_parser().parse_args(
        ["bench", "dht", "--nodes", "500", "--churn", "0.3", "--rtt-ms", "50", "--json"]
    )
    assert (args.nodes, args.churn, args.rtt_ms, args.json) == (500, 0.3, 50.0, True)
    assert args.impl is None and args.driver == "udp"


def test_room_members_in_the_simulator() -> None:
    """--room-members: every non-holder finds every member (DHT-7.8), the datagram answers
    alone do not, and G3 is evaluated only at N=200, 50 members."""
    params = BenchParams(nodes=30, keys=2, seed=7, settle_s=0.1, room_members=10)
    result = run(params, impls=["ours"], driver="sim", in_process=True, quiet=True)
    room = result["room_members_found"]
    assert room == result["impls"]["ours"]["room_members_found"]
    assert room["members"] == room["members_announced"] == 10
    assert room["getters"] > 0 and room["getters_found_all"] == room["getters"]
    assert room["per_getter"] == {"min": 1.0, "median": 1.0} and room["fraction"] == 1.0
    assert room["fraction_without_stream_fetch"] < 1.0
    assert room["dht_counters"]["dht.stream_fetch"] > 0
    assert {"impls", "goals", "parameters", "environment"} <= set(result)
    (g3,) = [g for g in result["goals"] if g["id"] == "G3"]
    assert g3["applies"] is False and g3["checks"][0]["value"] == 1.0
    goal_params = BenchParams(nodes=200, keys=1, room_members=50)
    ours = {"room_members_found": {"fraction": 0.98}}
    goals = {g["id"]: g for g in evaluate_goals(goal_params, "sim", {"ours": ours})}
    assert goals["G3"]["applies"] is True and goals["G3"]["met"] is False


def test_room_members_need_the_simulator() -> None:
    args = build_parser().parse_args(["bench", "dht", "--room-members", "50"])
    assert args.room_members == 50
    with pytest.raises(UsageError):
        bench_main(json_output=True, nodes=10, keys=1, churn=0.0, rtt_ms=None, seed=1,
                   impl="ours", room_members=5)  # fmt: skip


def test_the_peer_module_does_not_import_the_harness() -> None:
    """No import cycle: dht_kademlia takes the shared types from dht_common, never from dht."""
    import ast  # noqa: PLC0415
    import inspect  # noqa: PLC0415

    import railgun_ref.bench.dht_kademlia as peer  # noqa: PLC0415

    imported = {
        node.module
        for node in ast.walk(ast.parse(inspect.getsource(peer)))
        if isinstance(node, ast.ImportFrom)
    }
    assert "railgun_ref.bench.dht_common" in imported
    assert "railgun_ref.bench.dht" not in imported
