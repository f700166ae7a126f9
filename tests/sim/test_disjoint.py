"""DHT-6.5: disjoint-path lookups (S/Kademlia) find the same closest nodes."""

from railgun_ref.dht.geometry import distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.service import DhtConfig
from railgun_ref.drivers.sim import Simulator
from railgun_ref.events import GetFinished, LookupFinished, NodeEvent
from railgun_ref.node import NodeConfig


def test_disjoint_paths_find_true_closest_and_values() -> None:
    """DHT-6.5: with d=3 paths no peer is queried on two paths, and results stay exact."""
    config = NodeConfig(request_timeout=2.0, dht=DhtConfig(disjoint_paths=3))
    sim = Simulator(seed=9)
    nodes = sim.spawn(80, config=config)
    for i, address in enumerate(nodes[1:]):
        sim.at(
            sim.now + i * 0.1,
            lambda s, a=address: s.call(a, lambda n, now: n.dht.bootstrap([nodes[0]], now=now)),
        )
    sim.run_for(60)
    events: list[NodeEvent] = []
    sim.subscribe(lambda _a, e, _n: events.append(e))
    target = derive_key(KeyType.PEER, b"somebody")
    sim.call(nodes[7], lambda n, now: n.dht.find_node(target, now=now))
    sim.call(nodes[8], lambda n, now: n.dht.store(KeyType.RENDEZVOUS, b"box", b"v", now=now))
    sim.run_for(20)
    sim.call(nodes[70], lambda n, now: n.dht.get(derive_key(KeyType.RENDEZVOUS, b"box"), now=now))
    sim.run_for(20)
    lookups = [e for e in events if isinstance(e, LookupFinished)]
    assert len(lookups) == 1
    truth = sorted(
        (sim.nodes[a].node_id for a in nodes if a != nodes[7]),
        key=lambda i: distance(i, target),
    )[:20]
    assert [n for n, _ in lookups[0].closest] == truth
    paths = {row["path"] for row in lookups[0].peers}
    assert paths == {0, 1, 2}
    asked = {"succeeded", "failed", "unresponsive"}
    queried = [row["node_id"] for row in lookups[0].peers if row["state"] in asked]
    assert len(queried) == len(set(queried)) == lookups[0].queries  # one path per peer
    assert any(row["state"] == "skipped" for row in lookups[0].peers)
    gets = [e for e in events if isinstance(e, GetFinished)]
    assert len(gets) == 1 and gets[0].found
