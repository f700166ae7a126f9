"""Messenger clients run NAT traversal on kernel NATs (NAT-6.3): direct where NAT-3.1 allows.

One client on each NAT the lab builds (full cone, restricted, port-restricted, and two
symmetric) plus an open one, their bootstrap peer and traversal relay. With the central
service down, every ordered pair of NATed clients must get room messages over P2P, and
each pair must end as the spec says: both sides reach each other directly when NAT-3.1
calls the pair punchable (the endpoint-independent pairs by probing alone, NAT-6.1; the
symmetric ones with full-cone and restricted through a coordinated attempt), and through
a bridge when it does not ({symmetric, port-restricted}, {symmetric, symmetric}), whose
attempts end RELAYED as `unpunchable`. When the service is back every message has reached
every other member exactly once. Nothing asserts on timings; each wait is bounded.
"""

from itertools import combinations, permutations
from pathlib import Path
from typing import Any

import anyio
import pytest

from railgun_ref.apps.demo_netlab import LabFailoverNetwork
from railgun_ref.netlab.lab import NetLab
from railgun_ref.netlab.topology import parse_topology
from railgun_ref.traversal.plan import punchable

from .conftest import require_lab

pytestmark = pytest.mark.timeout(420)

#: bound on each wait below (not a timing assertion: a run that misses it fails)
WAIT = 90.0
TOPOLOGY = "c00:open,c01:full-cone,c02:restricted,c03:port-restricted,c04:symmetric,c05:symmetric"
NATED = (1, 2, 3, 4, 5)


def _p2p_pairs(network: LabFailoverNetwork, since: float) -> set[tuple[int, int]]:
    """(sender, receiver) pairs with a P2P delivery after `since`."""
    return {
        (r["sender"], r["client"])
        for r in network.records
        if r["kind"] == "received" and r["path"] == "p2p" and r["t"] >= since
    }


def _direct(replies: list[dict[str, Any]], ids: list[str], a: int, b: int) -> bool:
    """Do `a` and `b` each find the other reachable at the address it sends to (HT-6.4)?"""
    return (
        replies[a]["p2p_reach"].get(ids[b]) == "reachable"
        and replies[b]["p2p_reach"].get(ids[a]) == "reachable"
    )


async def _matrix(data_dir: Path) -> tuple[dict[tuple[int, int], bool], list[dict[str, Any]], Any]:
    with NetLab(parse_topology(TOPOLOGY)) as lab:
        nats = [h.nat for h in lab.topology.hosts]
        expected = {(a, b): punchable(nats[a], nats[b]) for a, b in combinations(NATED, 2)}
        network = LabFailoverNetwork(lab, data_dir=data_dir, chat_interval=0.5, hold=1.0)
        async with anyio.create_task_group() as tg:
            await tg.start(network.run)
            await network.wait_until(network.all_on_central, WAIT, "settle")
            assert network.central is not None
            fault = network.now()
            network.central.kill()
            wanted = set(permutations(NATED, 2))
            await network.wait_until(lambda: wanted <= _p2p_pairs(network, fault), WAIT, "p2p")
            ids = [client.node_id for client in network.clients]
            found: dict[tuple[int, int], bool] = {}
            replies: list[dict[str, Any]] = []
            with anyio.move_on_after(WAIT):  # until the pairs are as the spec says, bounded
                while True:
                    replies = [await client.request("outbox") for client in network.clients]
                    found = {pair: _direct(replies, ids, *pair) for pair in expected}
                    if found == expected:
                        break
                    await anyio.sleep(1.0)
            delivered = _p2p_pairs(network, fault)
            await network.central.start()
            summary = await network.finish()
            tg.cancel_scope.cancel()
    assert wanted <= delivered, sorted(wanted - delivered)
    return found, replies, (expected, summary, ids, nats)


def test_nat_pairs_go_direct_when_punchable_and_through_a_bridge_otherwise(
    tmp_path: Path,
) -> None:
    """NAT-3.1, NAT-6.1..6.3, HT-6.5: the matrix of pairs, and exactly-once delivery."""
    require_lab()
    found, replies, (expected, summary, ids, nats) = anyio.run(_matrix, tmp_path)
    assert found == expected
    attempts = {
        (i, ids.index(a["peer"])): a for i in NATED for a in replies[i]["traversal"]["attempts"]
    }
    for a, b in expected:
        outcomes = [attempts[p] for p in ((a, b), (b, a)) if p in attempts]
        if not expected[(a, b)]:  # unpunchable: tried, and kept on the relay / bridges
            assert outcomes and all(o["outcome"] == "relayed" for o in outcomes), (a, b)
            assert all(o["reason"] == "unpunchable" for o in outcomes)
        elif "symmetric" in (nats[a].value, nats[b].value):  # needed the coordination
            assert any(o["outcome"] in ("direct", "punched") for o in outcomes), (a, b)
            assert any(o["direct"] for o in outcomes)
    relayed = replies[0]["traversal"]["relay_counters"].get("relay.forwarded", 0)
    assert relayed > 0  # the open client carried the coordination (NAT-4.2)
    bridged = sum(r["p2p_counters"].get("relay.started", 0) for r in replies)
    assert bridged > 0  # the unpunchable pairs went through bridges (HT-6.5)
    assert summary.ok and summary.lost == 0 and summary.duplicates == 0, summary.line()
