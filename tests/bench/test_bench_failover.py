"""Smoke test of `railgun-ref bench failover --driver sim`: JSON shape, no loss, no duplicate.

A short run (few clients, short outage). Numbers are virtual time and not asserted
beyond what the scenario guarantees; timing goals live in the benchmark's `goals`.
"""

import json

import pytest

from railgun_ref.bench.failover import SCENARIOS, FailoverParams, run
from railgun_ref.cli import main

pytestmark = pytest.mark.timeout(120)


def test_short_run_shape_and_exactly_once() -> None:
    """HT-4.2, HT-4.3: no message lost, none delivered twice, in each scenario and detector."""
    params = FailoverParams(clients=4, bridges=1, outage=120.0, after=100.0, drain=60.0)
    result = run(params, scenarios=("takedown", "partition"))
    assert result["benchmark"] == "failover"
    assert result["driver"] == "sim"
    assert set(result["scenarios"]) == {"takedown", "partition"}
    for name, per in result["scenarios"].items():
        assert set(per) == {"threshold", "phi-accrual"}
        for detector, row in per.items():
            assert (row["scenario"], row["detector"]) == (name, detector)
            assert row["messages_sent"] > 0
            assert row["lost_messages"] == 0
            assert row["missing_deliveries"] == 0
            assert row["duplicates_to_app"] == 0
            fault = row["faults"][0]
            assert fault["detected"] == 4
            assert set(fault["detection_s"]) == {"n", "min", "p50", "p95", "max"}
            if name == "takedown":
                assert fault["failed_back"] == 4
            else:
                assert "failback_s" not in fault
                assert row["groups"] == {"sizes": [2, 3], "bridges": 1}
    goals = result["goals"]
    assert goals["no_message_lost"] and goals["no_duplicate_to_app"]
    json.dumps(result)  # serialisable as is


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError):
        run(FailoverParams(clients=4), scenarios=("volcano",))
    assert "partition" in SCENARIOS


def test_cli_json_and_localhost_not_available(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI prints the JSON; `--driver localhost` is a clear error until that driver exists."""
    argv = ["bench", "failover", "--driver", "sim", "--clients", "4"]
    code = main([*argv, "--scenario", "dns_block", "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    row = printed["scenarios"]["dns_block"]["threshold"]
    assert row["failure_labels"] == {"dns_nxdomain": row["failure_labels"]["dns_nxdomain"]}
    assert row["lost_messages"] == 0
    assert main(["bench", "failover", "--driver", "localhost", "--json"]) == 2
    assert "not available yet" in capsys.readouterr().err
    assert main(["bench", "failover", "--scenario", "volcano"]) == 2
    assert "unknown scenario" in capsys.readouterr().err
