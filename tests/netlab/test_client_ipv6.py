"""Dual-stack messenger clients: the central path over IPv4, the P2P path over IPv6.

Two clients behind symmetric IPv4 NATs cannot reach each other over IPv4 and need a
bridge (tests/netlab/test_client_nat.py). In a dual-stack lab their nodes bind the
hosts' IPv6 addresses, which no router translates: each announces its own address
(HT-6.7, what its bootstrap peer observes), their stateful firewalls open for each
other's probes (NAT-6.1), and with the central service down each gets the other's
room messages straight over IPv6, every message exactly once. Waits are bounded;
nothing asserts on timings.
"""

from pathlib import Path
from typing import Any

import anyio
import pytest

from railgun_ref.apps.demo_netlab import LabFailoverNetwork
from railgun_ref.netlab.lab import NetLab
from railgun_ref.netlab.topology import parse_topology

from .conftest import require_lab

pytestmark = pytest.mark.timeout(300)

#: bound on each wait below (not a timing assertion: a run that misses it fails)
WAIT = 60.0


def _p2p(network: LabFailoverNetwork, since: float) -> set[tuple[int, int]]:
    return {
        (r["sender"], r["client"])
        for r in network.records
        if r["kind"] == "received" and r["path"] == "p2p" and r["t"] >= since
    }


async def _dual_stack(
    data_dir: Path,
) -> tuple[list[dict[str, Any]], list[str], list[str], Any, set[Any]]:
    topology = parse_topology("c00:open,c01:symmetric,c02:symmetric", ipv6=True)
    with NetLab(topology) as lab:
        network = LabFailoverNetwork(
            lab, data_dir=data_dir, chat_interval=0.3, hold=1.0, p2p_ipv6=True
        )
        async with anyio.create_task_group() as tg:
            await tg.start(network.run)
            await network.wait_until(network.all_on_central, WAIT, "settle (central on IPv4)")
            assert network.central is not None
            fault = network.now()
            network.central.kill()
            pairs = {(1, 2), (2, 1)}
            await network.wait_until(lambda: pairs <= _p2p(network, fault), WAIT, "p2p")
            ids = [client.node_id for client in network.clients]
            replies: list[dict[str, Any]] = []
            with anyio.move_on_after(WAIT):  # until both see each other, bounded
                while True:
                    replies = [await client.request("outbox") for client in network.clients]
                    if _direct(replies, ids):
                        break
                    await anyio.sleep(1.0)
            delivered = _p2p(network, fault)
            await network.central.start()
            summary = await network.finish()
            tg.cancel_scope.cancel()
        addresses = [h.address6 for h in lab.topology.hosts]
    return replies, ids, addresses, summary, delivered


def _direct(replies: list[dict[str, Any]], ids: list[str]) -> bool:
    return (
        replies[1]["p2p_reach"].get(ids[2]) == "reachable"
        and replies[2]["p2p_reach"].get(ids[1]) == "reachable"
    )


def test_symmetric_ipv4_nats_are_no_obstacle_over_ipv6(tmp_path: Path) -> None:
    """HT-6.7 and NAT-6.1 over IPv6: own addresses announced, the pair direct, exactly once."""
    require_lab()
    replies, ids, addresses, summary, delivered = anyio.run(_dual_stack, tmp_path)
    assert {(1, 2), (2, 1)} <= delivered
    announced = [r["p2p_address"].rpartition(":")[0] for r in replies]
    assert announced == addresses  # the address the bootstrap peer observed: no NAT66
    assert _direct(replies, ids)
    assert summary.ok and summary.lost == 0 and summary.duplicates == 0, summary.line()
