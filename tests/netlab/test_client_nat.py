"""Messenger clients behind kernel NATs with the central service down (NAT-6, HT-6.7).

Two clients behind different punchable NATs (restricted, port-restricted) get room
messages from each other over P2P while the open client -- their bootstrap peer, the
only one a relay could run on -- is cut off from both by the censor: the path between
them can only be direct. Two clients behind symmetric NATs cannot reach each other and
get each other's messages through a bridge member both reach (the relay fallback).
The demo's worker processes run in the lab's hosts; nothing asserts on timings.
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


def _p2p_from(network: LabFailoverNetwork, *, to: int, sender: int, since: float) -> bool:
    return any(
        r["kind"] == "received"
        and r["path"] == "p2p"
        and r["client"] == to
        and r["sender"] == sender
        and r["t"] >= since
        for r in network.records
    )


async def _announcing_public_addresses(network: LabFailoverNetwork, lab: NetLab) -> None:
    """Wait until every client announces its public (router) address (HT-6.7)."""
    publics = [h.public for h in lab.topology.hosts]
    with anyio.fail_after(WAIT):
        while True:
            replies = [await client.request("outbox") for client in network.clients]
            if [r["p2p_address"].split(":")[0] for r in replies] == publics:
                return
            await anyio.sleep(0.5)


async def _outage(
    description: str, cut_off: list[str], pairs: list[tuple[int, int]], data_dir: Path
) -> tuple[dict[tuple[int, int], bool], list[dict[str, Any]], bool, list[str | None]]:
    """Take the service down (and cut `cut_off` off the others), then wait for a P2P
    delivery over each (sender, receiver) pair; lift, drain, judge. Also returns the
    NAT type each client detected from inside its host (NAT-6.4)."""
    with NetLab(parse_topology(description)) as lab:
        network = LabFailoverNetwork(lab, data_dir=data_dir, chat_interval=0.3, hold=1.0)
        others = [h.name for h in lab.topology.hosts if h.name not in cut_off]
        async with anyio.create_task_group() as tg:
            await tg.start(network.run)
            await network.wait_until(network.all_on_central, WAIT, "settle")
            nats = [client.nat for client in network.clients]
            await _announcing_public_addresses(network, lab)
            fault = network.now()
            assert network.central is not None
            network.central.kill()
            if cut_off:
                lab.partition(cut_off, others)
            seen = {}
            for sender, to in pairs:

                def arrived(sender: int = sender, to: int = to) -> bool:
                    return _p2p_from(network, to=to, sender=sender, since=fault)

                seen[(sender, to)] = await network.wait_until(arrived, WAIT, f"p2p {sender}->{to}")
            lab.lift()
            await network.central.start()
            summary = await network.finish()
            tg.cancel_scope.cancel()
    return seen, network.final_outboxes, summary.ok and summary.lost == 0, nats


def test_punchable_nats_exchange_room_messages_directly(tmp_path: Path) -> None:
    """NAT-6.1, HT-6.7: restricted and port-restricted clients, the open one cut off."""
    require_lab()
    seen, outboxes, exactly_once, nats = anyio.run(
        _outage,
        "c00:open,c01:restricted,c02:port-restricted",
        ["c00"],
        [(1, 2), (2, 1)],
        tmp_path,
    )
    assert seen == {(1, 2): True, (2, 1): True}
    assert [o["p2p_address"].split(":")[0] for o in outboxes[1:]] == ["198.18.2.2", "198.18.3.2"]
    assert exactly_once
    assert nats == ["open", "restricted", "port-restricted"]  # NAT-6.4: each found its own


def test_symmetric_nats_fall_back_to_a_bridge(tmp_path: Path) -> None:
    """NAT-6.2: two clients behind symmetric NATs get each other's messages through c00."""
    require_lab()
    seen, outboxes, exactly_once, nats = anyio.run(
        _outage, "c00:open,c01:symmetric,c02:symmetric", [], [(1, 2), (2, 1)], tmp_path
    )
    assert nats == ["open", "symmetric", "symmetric"]  # NAT-6.4
    assert seen == {(1, 2): True, (2, 1): True}
    asked = sum(o["p2p_counters"].get("relay.asked", 0) for o in outboxes[1:])
    relayed = outboxes[0]["p2p_counters"].get("relay.started", 0)
    assert asked > 0 and relayed > 0  # the symmetric pair went through the bridge, c00
    assert exactly_once
