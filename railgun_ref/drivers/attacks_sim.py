"""Three attacks on the real Node cores in the simulator (`railgun-ref bench attacks`, notebook 07).

One population of `nodes` nodes is built twice from the same seed: once with
the defences (DHT-5.5 diversity with loopback addresses grouped by IP, since
every simulated node has its own 127.x.y.z; S/Kademlia disjoint lookups,
DHT-6.5; per-peer limits, ABUSE-1/2) and once without any (the peer measured
in the same run). On each:

(a) a share `malicious` of the nodes (never node 0, the bootstrap, nor a
    getter) answer FIND_NODE and FIND_VALUE with the malicious contacts closest
    to the target and no record, and acknowledge STOREs they drop; honest
    nodes store `keys` records and other honest nodes get them:
    `lookup_success_malicious_20pct` is the share of gets that found the record.
(b) an attacker with 2 IP addresses and unlimited keys (Marcus et al., "Low-
    Resource Eclipse Attacks on Ethereum's Peer-to-Peer Network", USENIX
    Security 2018) runs `sybils` identities on many ports of the two IPs, with
    ids mined to fall into every bucket of a victim; they PING the victim before
    and while it joins through an honest node, and answer lookups with each
    other only. `eclipse_share_2_ips` is the share of the victim's routing
    entries held by the attacker once the victim has joined and refreshed.
(c) a victim with a modelled CPU (`_Cpu`: a FIFO of `queue` datagrams, each
    costing 1 / (capacity_factor x normal load) seconds, or `check_cost` if the
    per-peer limits drop it before decoding) gets PINGs from `pingers` honest nodes at 1/s each (the
    normal load), then the same plus a flood at 10x that load from 4 IPs with
    many keys. `honest_delivery_under_flood` is the share of honest PINGs
    answered; the p95 round-trip time is compared with the unloaded run.

The malicious behaviours live here, in this simulator driver of the attacks bench and
notebook, never in a node's code.
Virtual time throughout: latencies are simulated seconds, not wall time.
"""

import functools
import random
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.geometry import bucket_index, distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.routing import Diversity
from railgun_ref.dht.service import DhtConfig
from railgun_ref.drivers.sim import LinkProfile, SimNetwork, Simulator, sim_address
from railgun_ref.events import GetFinished, NodeEvent, PongReceived, RequestTimedOut
from railgun_ref.identity.keys import Identity
from railgun_ref.limits.buckets import LimitReason, LimitsConfig
from railgun_ref.node import Node, NodeConfig, NodeCounter
from railgun_ref.wire.messages import (
    FindNode,
    FindValue,
    Nodes,
    Stored,
    StoreStatus,
    Value,
    WireContact,
)

#: Seconds between two joins (the network grows as nodes arrive, not all at once).
JOIN_SPACING = 0.05
#: The two attacker hosts of the eclipse and the four of the flood (outside sim_address's range).
ECLIPSE_IPS = ("127.250.0.1", "127.250.0.2")
FLOOD_IPS = ("127.251.0.1", "127.251.0.2", "127.251.0.3", "127.251.0.4")


@dataclass(frozen=True, slots=True, kw_only=True)
class Params:
    nodes: int = 1000
    malicious: float = 0.2
    keys: int = 100
    sybils: int = 300
    pingers: int = 200
    flood_factor: float = 10.0
    flood_seconds: float = 10.0
    #: the victim's CPU serves this many times the normal load (so a 10x flood overloads it)
    capacity_factor: float = 10.0
    check_cost: float = 1 / 200_000  #: seconds per datagram a limit drops before decoding
    queue: int = 200  #: datagrams the victim's receive buffer holds
    latency: float = 0.025  #: one-way link latency, seconds
    seed: int = 1
    #: "fast": a keyed hash stands in for Ed25519 (drivers.sim.crypto_mode), for 1,000+
    #: nodes. No scenario forges a signature: the attackers sign with keys of their own.
    crypto: str = "real"


def node_config(*, defended: bool) -> NodeConfig:
    """The configuration every honest node runs, with or without the defences."""
    if defended:
        dht = DhtConfig(disjoint_paths=3, diversity=Diversity(loopback_hosts=True))
        return NodeConfig(request_timeout=2.0, dht=dht, limits=LimitsConfig(loopback_hosts=True))
    return NodeConfig(request_timeout=2.0, dht=DhtConfig(disjoint_paths=1, diversity=None))


# ---------------------------------------------------------------- malicious behaviour


def turn_liar(node: Node, liars: Callable[[], list[tuple[NodeId, Address]]]) -> None:
    """Make `node` answer lookups with `liars()` only and drop what it is asked to store."""

    def closest(target: bytes) -> tuple[WireContact, ...]:
        ranked = sorted(liars(), key=lambda c: distance(c[0], target))
        return tuple(c for c in ranked if c[0] != node.node_id)[:20]

    def find_node(message: FindNode, *_args: object, **_kw: object) -> Nodes:
        return Nodes(contacts=closest(message.target))

    def find_value(message: FindValue, *_args: object, **_kw: object) -> Value:
        return Value(records=(), contacts=closest(message.key), truncated=False)

    def store(*_args: object, **_kw: object) -> Stored:
        return Stored(status=StoreStatus.STORED)

    node.dht.handle_find_node = find_node  # type: ignore[method-assign]
    node.dht.handle_find_value = find_value  # type: ignore[method-assign]
    node.dht.handle_store = store  # type: ignore[method-assign]


@dataclass(slots=True)
class _Cpu:
    """A single-core receive path: datagrams queue, each costs CPU time when served."""

    sim: Simulator
    address: Address
    params: Params
    queue: deque[tuple[bytes, Address]] = field(default_factory=deque)
    busy: bool = False
    dropped: int = 0

    def arrive(self, data: bytes, source: Address) -> None:
        if len(self.queue) >= self.params.queue:
            self.dropped += 1  # the receive buffer is full: the kernel drops it
            return
        self.queue.append((data, source))
        if not self.busy:
            self.busy = True
            self.sim.at(self.sim.now, self._serve)

    def _limited(self, node: Node) -> int:
        return sum(
            node.counters.get_count(NodeCounter.LIMITED, label)
            for label in (LimitReason.SOURCE, LimitReason.UNKNOWN_SOURCES)
        )

    def _serve(self, sim: Simulator) -> None:
        if not self.queue:
            self.busy = False
            return
        data, source = self.queue.popleft()
        node = sim.nodes[self.address]
        before = self._limited(node)
        assert isinstance(node, BusyNode)
        sim.call(self.address, lambda n, now: BusyNode.process(node, data, source, now=now))
        cheap = self._limited(node) > before
        full = 1 / (self.params.capacity_factor * self.params.pingers)
        cost = self.params.check_cost if cheap else full
        sim.at(sim.now + cost, self._serve)


class BusyNode(Node):
    """A node whose datagrams pass a modelled CPU (`cpu`) when one is attached."""

    cpu: _Cpu | None = None

    def receive_datagram(self, data: bytes, address: Address, *, now: float) -> None:
        if self.cpu is None:
            super().receive_datagram(data, address, now=now)
        else:
            self.cpu.arrive(data, address)

    def process(self, data: bytes, address: Address, *, now: float) -> None:
        super().receive_datagram(data, address, now=now)


# ---------------------------------------------------------------- the population


@dataclass(slots=True)
class World:
    """One simulated population and what the scenarios recorded."""

    sim: Simulator
    addresses: list[Address]
    config: NodeConfig
    rng: random.Random
    bad: set[Address] = field(default_factory=set)
    events: list[tuple[Address, NodeEvent]] = field(default_factory=list)

    @property
    def honest(self) -> list[Address]:
        return [a for a in self.addresses if a not in self.bad]

    def listen(self, address: Address, event: NodeEvent, _now: float) -> None:
        if isinstance(event, GetFinished | PongReceived | RequestTimedOut):
            self.events.append((address, event))

    def new_node(self, identity: Identity, address: Address, *, busy: bool = False) -> Node:
        cls = BusyNode if busy else Node
        node = cls(
            identity,
            rng=random.Random(self.sim.rng.getrandbits(64)),
            config=self.config,
            now=self.sim.now,
        )
        self.sim.add_node(node, address)
        return node


def build(params: Params, *, defended: bool) -> World:
    """`params.nodes` nodes (a share of them liars) join through node 0."""
    network = SimNetwork(default=LinkProfile(latency=params.latency))
    sim = Simulator(seed=params.seed, network=network, keep_trace=False)
    world = World(sim, [], node_config(defended=defended), random.Random(params.seed ^ 0xA77AC))
    for i in range(params.nodes):
        identity = Identity.from_seed(sim.rng.randbytes(32))
        world.new_node(identity, sim_address(i), busy=i == 1)
        world.addresses.append(sim_address(i))
    sim.subscribe(world.listen)
    candidates = world.addresses[2:]
    world.bad = set(world.rng.sample(candidates, round(params.malicious * params.nodes)))
    liars = [(sim.nodes[a].node_id, a) for a in sorted(world.bad)]
    for address in world.bad:
        turn_liar(sim.nodes[address], lambda: liars)
    via = world.addresses[0]
    for i, address in enumerate(world.addresses[1:]):
        sim.at(sim.now + i * JOIN_SPACING, _joiner(address, via))
    sim.run_for(len(world.addresses) * JOIN_SPACING + 60)
    return world


def _joiner(address: Address, via: Address) -> Callable[[Simulator], None]:
    def join(sim: Simulator) -> None:
        sim.call(address, lambda n, now: n.dht.bootstrap([via], now=now))

    return join


# ---------------------------------------------------------------- (a) lookups


def _store(node: Node, now: float, *, ident: bytes) -> int:
    return node.dht.store(KeyType.RENDEZVOUS, ident, b"v", now=now)


def _get(node: Node, now: float, *, key: bytes) -> int:
    return node.dht.get(key, now=now)


def lookups(world: World, params: Params) -> dict[str, Any]:
    """Honest nodes store `keys` records; other honest nodes get them."""
    sim, honest = world.sim, [a for a in world.honest if a != world.addresses[1]]
    idents = [f"attack-key-{i}".encode() for i in range(params.keys)]
    for ident in idents:
        publisher = world.rng.choice(honest)
        sim.call(publisher, functools.partial(_store, ident=ident))
    sim.run_for(60)
    world.events.clear()
    for ident in idents:
        key = derive_key(KeyType.RENDEZVOUS, ident)
        sim.call(world.rng.choice(honest), functools.partial(_get, key=key))
    sim.run_for(60)
    gets = [e for _, e in world.events if isinstance(e, GetFinished)]
    return {
        "gets": params.keys,
        "gets_finished": len(gets),
        "get_success": sum(g.found for g in gets) / params.keys,
        "queries_per_get": round(sum(g.queries for g in gets) / max(1, len(gets)), 2),
    }


# ---------------------------------------------------------------- (b) eclipse


def mine_sybils(victim: NodeId, count: int, rng: random.Random) -> list[Identity]:
    """Identities spread over the victim's 10 farthest buckets, `count / 10` in each (the
    attacker has unlimited keys; buckets 255..246 are where a 1,000-node network lives)."""
    wanted: dict[int, int] = {}
    found: list[Identity] = []
    per_bucket = max(1, count // 10)
    tries = 0
    while len(found) < count and tries < 400_000:
        tries += 1
        identity = Identity.from_seed(rng.randbytes(32))
        index = bucket_index(victim, identity.node_id)
        if index is None or index < 246 or wanted.get(index, 0) >= per_bucket:
            continue
        wanted[index] = wanted.get(index, 0) + 1
        found.append(identity)
    return found


def eclipse(world: World, params: Params) -> dict[str, Any]:
    """A new victim joins while `sybils` identities on two IPs court it."""
    sim = world.sim
    victim_address = sim_address(params.nodes + 10)
    victim = world.new_node(Identity.from_seed(sim.rng.randbytes(32)), victim_address)
    sybils = mine_sybils(victim.node_id, params.sybils, world.rng)
    sybil_addresses: list[Address] = []
    for i, identity in enumerate(sybils):
        address = (ECLIPSE_IPS[i % 2], 20_000 + i)
        world.new_node(identity, address)
        sybil_addresses.append(address)
    roster = [(sim.nodes[a].node_id, a) for a in sybil_addresses]
    for address in sybil_addresses:
        turn_liar(sim.nodes[address], lambda: roster)

    def court(s: Simulator) -> None:
        for address in sybil_addresses:
            s.ping(address, victim_address)

    for t in range(0, 120, 10):
        sim.at(sim.now + t, court)
    sim.at(sim.now + 1, _joiner(victim_address, world.addresses[0]))
    sim.run_for(180)
    contacts = victim.dht.routing.contacts()
    held = sum(1 for c in contacts if c.address[0] in ECLIPSE_IPS)
    return {
        "sybil_identities": len(sybils),
        "attacker_ips": len(ECLIPSE_IPS),
        "victim_routing_entries": len(contacts),
        "attacker_entries": held,
        "share": round(held / max(1, len(contacts)), 4),
    }


# ---------------------------------------------------------------- (c) flood


def _honest_run(world: World, params: Params, *, flood: bool) -> dict[str, Any]:
    """Honest PINGs at 1/s per pinger for `flood_seconds`, with or without a flood."""
    sim, victim = world.sim, world.addresses[1]
    pingers = world.rng.sample([a for a in world.honest if a != victim], params.pingers)
    flooders = _flooders(world, params) if flood else []
    world.events.clear()
    start = sim.now
    rate = params.flood_factor * params.pingers
    for second in range(int(params.flood_seconds)):
        for pinger in pingers:  # each at its own moment of the second
            sim.at(start + second + world.rng.random(), _ping_one(pinger, victim))
        for j in range(int(rate) if flooders else 0):
            source = flooders[j % len(flooders)]
            sim.at(start + second + j / rate, _ping_one(source, victim))
    sim.run_for(params.flood_seconds + 5)
    honest = set(pingers)
    mine = [
        e
        for a, e in world.events
        if a in honest and isinstance(e, PongReceived | RequestTimedOut) and e.address == victim
    ]
    pongs = [e for e in mine if isinstance(e, PongReceived)]
    lost = [e for e in mine if isinstance(e, RequestTimedOut)]
    sent = params.pingers * int(params.flood_seconds)
    rtts = sorted(p.rtt for p in pongs)
    p95 = rtts[min(len(rtts) - 1, int(0.95 * len(rtts)))] if rtts else None
    return {
        "honest_pings": sent,
        "honest_answered": len(pongs),
        "honest_timed_out": len(lost),
        "delivery": round(len(pongs) / sent, 4),
        "p95_rtt_s": round(p95, 4) if p95 is not None else None,
        "median_rtt_s": round(statistics.median(rtts), 4) if rtts else None,
        "flood_pings": int(rate * params.flood_seconds) if flooders else 0,
    }


def _ping_one(source: Address, victim: Address) -> Callable[[Simulator], None]:
    def fire(sim: Simulator) -> None:
        sim.ping(source, victim)

    return fire


def _flooders(world: World, params: Params) -> list[Address]:
    """64 fresh identities on the 4 flood IPs (new keys cost the attacker nothing)."""
    out = []
    for i in range(64):
        address = (FLOOD_IPS[i % len(FLOOD_IPS)], 30_000 + i)
        if address not in world.sim.nodes:
            world.new_node(Identity.from_seed(world.sim.rng.randbytes(32)), address)
        out.append(address)
    return out


def flood(world: World, params: Params) -> dict[str, Any]:
    victim = world.sim.nodes[world.addresses[1]]
    assert isinstance(victim, BusyNode)
    cpu = _Cpu(world.sim, world.addresses[1], params)
    victim.cpu = cpu
    unloaded = _honest_run(world, params, flood=False)
    loaded = _honest_run(world, params, flood=True)
    victim.cpu = None
    ratio = None
    if unloaded["p95_rtt_s"] and loaded["p95_rtt_s"]:
        ratio = round(loaded["p95_rtt_s"] / unloaded["p95_rtt_s"], 3)
    return {
        "unloaded": unloaded,
        "flooded": loaded,
        "delivery": loaded["delivery"],
        "p95_ratio_flooded_to_unloaded": ratio,
        "victim_receive_buffer_drops": cpu.dropped,
        "victim_limited": {
            str(reason): victim.counters.get_count(NodeCounter.LIMITED, reason)
            for reason in LimitReason
        },
    }
