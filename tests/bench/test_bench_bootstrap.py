"""Smoke test of `railgun-ref bench bootstrap`: JSON shape and the limits the race guarantees.

Times are virtual (the scripted network); no timing is asserted beyond what the
race's schedule guarantees (BOOT-4.3: never more than ten in flight).
"""

import json

import pytest

from railgun_ref.bench.bootstrap import run
from railgun_ref.cli import main

pytestmark = pytest.mark.timeout(120)


def test_shape_and_in_flight_bound() -> None:
    result = run(runs=3)
    assert result["benchmark"] == "bootstrap"
    assert len(result["combinations"]) == 12  # 6 survivors x (blackhole, refused)
    assert result["max_in_flight"] <= 10
    for row in result["combinations"]:
        assert row["race"]["joined"] == row["sequential"]["joined"] == 3
        assert row["sequential"]["max_in_flight"] == 1
    assert result["stale_cache_30d"]["joined"] == 3
    assert result["manifest_verifications_per_s"] > 0


def test_cli_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "bootstrap", "--json", "--runs", "2"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {"first_peer_s", "max_in_flight", "sequential", "goals"} <= set(document)
    assert "p95" in document["first_peer_s"]


@pytest.mark.parametrize("value", ["-1", "3", "x"])
def test_bad_dead_ahead_is_one_line(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "bootstrap", "--dead-ahead", value])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


@pytest.mark.integration
def test_localhost_driver_has_the_same_keys_on_real_sockets() -> None:
    """BOOT-4.3: the real driver stays within the in-flight caps; the same JSON keys."""
    from railgun_ref.bench.bootstrap import run_localhost  # noqa: PLC0415
    from railgun_ref.bootstrap.race import Method  # noqa: PLC0415

    result = run_localhost(runs=1, rtt=0.05, survivors=(Method.CACHED, Method.I2P))
    virtual = run(runs=1)
    assert set(result) == set(virtual)
    assert [r["survivor"] for r in result["combinations"]] == ["CACHED", "I2P"]
    for row in result["combinations"]:
        assert row["race"]["joined"] == row["sequential"]["joined"] == 1
        assert row["sequential"]["max_in_flight"] == 1
    assert result["max_in_flight"] <= 10
    assert result["stale_cache_30d"]["joined"] == 1
    assert result["params"]["rtt_added_to"].startswith("every method")
