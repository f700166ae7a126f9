"""`bench flood` at a tiny size: the victim runs in its own process and reports its drops."""

import anyio
import pytest

from railgun_ref.bench.flood import bench_flood, victim_main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_tiny_flood_reports_both_victims() -> None:
    result = anyio.run(lambda: bench_flood(flood_size=300, rate=500.0, contacts=3, keys=2))
    assert result["network"].endswith("a process of its own")
    for run in (result["limited"], result["peer_unlimited"]):
        assert run["flood_sent"] == 300 and run["contact_pings"] > 0
        assert 0.0 <= run["flood_answered"] <= 1.0
        assert set(run["dropped_datagrams"]) == {"by_limits", "by_kernel", "send_backlog_full"}
    # the victim with limits answers its known contacts; the flood without limits is served
    assert result["known_contacts_answered_under_flood"] > 0
    assert result["flood_answered_unlimited"] > 0


def test_the_victim_entry_point_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert victim_main(["--victim", "both"]) == 2
    assert "usage" in capsys.readouterr().out
