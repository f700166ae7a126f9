"""`railgun-ref bench storeforward --tiny --json` runs and reports the keys it promises."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

KEYS = {
    "delivery_rate",
    "delivery_rate_without_repair",
    "analytic_without_repair",
    "deleted_after_delivery",
    "deleted_within_repair_period_of_holder_online",
    "resurrections",
    "storage_bytes_per_node_mean",
    "sf_messages_per_node_per_day",
    "goals",
    "parameters",
}


def test_tiny_run_has_the_keys() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "railgun_ref.cli", "bench", "storeforward", "--tiny", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout)
    assert set(report) >= KEYS
    assert 0.0 <= report["delivery_rate"] <= 1.0
    assert report["with_repair"]["messages"] == report["parameters"]["messages"]
    assert set(report["goals"]) == {
        "delivery_rate",
        "deleted_within_repair_period",
        "deleted_within_repair_period_of_holder_online",
        "resurrections",
    }
    online = report["deleted_within_repair_period_of_holder_online"]
    assert online == report["with_repair"]["deleted_within_repair_period_of_holder_online"]
    assert online is None or 0.0 <= online <= 1.0
    assert all(isinstance(goal["met"], bool) for goal in report["goals"].values())
