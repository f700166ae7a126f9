"""Do S/Kademlia disjoint lookups (DHT-6.5) pay off? A measurement in the simulator.

`nodes` nodes join through node 0; a share `malicious` of them (never node 0
or a getter) answer every FIND_NODE and FIND_VALUE with the malicious contacts
closest to the target and no record, and acknowledge STOREs they drop. Honest
nodes store `keys` records, then honest getters get them, with `d` = 1, 2, 3
disjoint paths. Reported per d: get success and FIND_VALUE queries per get.
This is a quick probe for the default of `disjoint_paths`, not `bench attacks`.
"""

import functools
import json
import random
import sys
from collections.abc import Callable
from typing import Any

from railgun_ref.core.ids import Address
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.service import DhtConfig
from railgun_ref.drivers.attacks_sim import turn_liar
from railgun_ref.drivers.sim import Simulator
from railgun_ref.events import GetFinished, NodeEvent
from railgun_ref.node import NodeConfig


def _join(sim: Simulator, address: Address, via: Address) -> None:
    sim.call(address, lambda n, now: n.dht.bootstrap([via], now=now))


def _store(sim: Simulator, address: Address, ident: bytes) -> None:
    sim.call(address, lambda n, now: n.dht.store(KeyType.RENDEZVOUS, ident, b"v", now=now))


def _get(sim: Simulator, address: Address, key: bytes) -> None:
    sim.call(address, lambda n, now: n.dht.get(key, now=now))


def _listener(gets: list[GetFinished]) -> Callable[[Address, NodeEvent, float], None]:
    def listen(_address: Address, event: NodeEvent, _now: float) -> None:
        if isinstance(event, GetFinished):
            gets.append(event)

    return listen


def run(*, nodes: int, malicious: float, keys: int, paths: int, seed: int) -> dict[str, Any]:
    config = NodeConfig(request_timeout=2.0, dht=DhtConfig(disjoint_paths=paths))
    sim = Simulator(seed=seed)
    addresses = sim.spawn(nodes, config=config)
    rng = random.Random(seed)
    bad = set(rng.sample(addresses[1:], round(malicious * nodes)))
    liars = [(sim.nodes[a].node_id, a) for a in bad]
    for address in bad:
        turn_liar(sim.nodes[address], lambda: liars)
    for i, address in enumerate(addresses[1:]):
        sim.at(sim.now + i * 0.05, functools.partial(_join, address=address, via=addresses[0]))
    sim.run_for(nodes * 0.05 + 60)
    honest = [a for a in addresses if a not in bad]
    gets: list[GetFinished] = []
    sim.subscribe(_listener(gets))
    idents = [f"key-{i}".encode() for i in range(keys)]
    for ident in idents:
        publisher = rng.choice(honest)
        _store(sim, publisher, ident)
    sim.run_for(60)
    for ident in idents:
        getter = rng.choice(honest)
        key = derive_key(KeyType.RENDEZVOUS, ident)
        _get(sim, getter, key)
    sim.run_for(60)
    found = sum(g.found for g in gets)
    return {
        "disjoint_paths": paths,
        "get_success": found / keys,
        "queries_per_get": sum(g.queries for g in gets) / max(1, len(gets)),
        "gets_finished": len(gets),
    }


def main(*, nodes: int = 200, malicious: float = 0.2, keys: int = 50, seed: int = 1) -> int:
    rows = [run(nodes=nodes, malicious=malicious, keys=keys, paths=d, seed=seed) for d in (1, 2, 3)]
    result = {
        "benchmark": "disjoint",
        "driver": "sim",
        "nodes": nodes,
        "malicious": malicious,
        "keys": keys,
        "seed": seed,
        "rows": rows,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    # python -m railgun_ref.bench.disjoint [NODES [MALICIOUS [KEYS [SEED]]]]
    args = sys.argv[1:]
    sys.exit(
        main(
            nodes=int(args[0]) if args else 200,
            malicious=float(args[1]) if len(args) > 1 else 0.2,
            keys=int(args[2]) if len(args) > 2 else 50,
            seed=int(args[3]) if len(args) > 3 else 1,
        )
    )
