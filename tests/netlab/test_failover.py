"""A failover scenario on the lab: the demo's client processes behind kernel NATs, the
central service blackholed by the censor's nftables rule (not a user-space proxy).

What it shows: every client -- one open, one behind a full-cone NAT, one behind a
restricted NAT -- announces the address its peers observe (HT-6.7), fails over to P2P
when the kernel drops its packets to the service, gets room messages over P2P from
behind its NAT, fails back when the rule goes, and every message reaches every other
member exactly once. Nothing asserts on timings.
"""

from pathlib import Path
from typing import Any

import anyio
import pytest

from railgun_ref.apps.demo import DeliverySummary, ScenarioResult
from railgun_ref.apps.demo_netlab import LabFailoverNetwork, lab_topology, scenario_lab
from railgun_ref.capacity.nat import NatType
from railgun_ref.netlab.lab import lab_namespaces

from .conftest import require_lab

pytestmark = pytest.mark.timeout(300)


async def _run(data_dir: Path) -> tuple[ScenarioResult, DeliverySummary, list[dict[str, Any]]]:
    with scenario_lab(3) as lab:
        owner = lab.owner
        network = LabFailoverNetwork(lab, data_dir=data_dir, chat_interval=0.4, hold=1.5)
        async with anyio.create_task_group() as tg:
            await tg.start(network.run)
            result = await network.run_scenario("ip_block")
            summary = await network.finish()
            tg.cancel_scope.cancel()
    assert lab_namespaces(owner=owner) == []  # the lab went with its processes
    return result, summary, network.final_outboxes


def test_ip_block_by_the_kernel_fails_over_behind_nats_exactly_once(tmp_path: Path) -> None:
    """HT-6.7, HT-2.4: see the module docstring."""
    require_lab()
    assert [h.nat for h in lab_topology(3).hosts] == [
        NatType.OPEN,
        NatType.FULL_CONE,
        NatType.RESTRICTED,
    ]
    result, summary, outboxes = anyio.run(_run, tmp_path)
    assert result.failed_over and result.failed_back
    assert set(result.failover) == {0, 1, 2}  # every client, the NATed ones included
    assert "generic_timeout" in result.labels  # dropped by the kernel: checks time out
    assert result.delivered_over_p2p > 0
    # the NATed clients announce their router's address, not their bind address
    readdressed = [o["counters"].get("p2p.readdressed", 0) for o in outboxes]
    assert readdressed[0] == 0 and readdressed[1] >= 1 and readdressed[2] >= 1
    assert [o["p2p_address"].split(":")[0] for o in outboxes] == [
        "198.18.1.2",
        "198.18.2.2",
        "198.18.3.2",
    ]
    assert summary.ok, summary.why()
    assert (summary.lost, summary.duplicates) == (0, 0)
