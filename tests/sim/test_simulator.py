"""The discrete-event driver runs the same Node objects deterministically."""

import hashlib

from railgun_ref.drivers.sim import LinkProfile, SimCounter, SimNetwork, Simulator, sim_address
from railgun_ref.node import NodeConfig
from railgun_ref.rpc.requests import Channel


def _scenario(seed: int) -> Simulator:
    """20 nodes, lossy jittery links, random pings on both channels, a partition, a crash."""
    network = SimNetwork(default=LinkProfile(latency=0.02, jitter=0.03, loss=0.05))
    sim = Simulator(seed=seed, network=network)
    nodes = sim.spawn(20, config=NodeConfig(request_timeout=1.0))
    script_rng = sim.rng

    def burst(s: Simulator) -> None:
        for _ in range(30):
            src, dst = script_rng.sample(nodes, 2)
            if s.is_running(src):
                channel = Channel.STREAM if script_rng.random() < 0.3 else Channel.DATAGRAM
                s.ping(src, dst, channel=channel, payload=script_rng.randbytes(16))

    for k in range(5):
        sim.at(sim.now + k, burst)
    sim.at(sim.now + 2.5, lambda s: s.network.split([nodes[:10], nodes[9:]]))
    sim.at(sim.now + 3.5, lambda s: s.stop(nodes[3]))
    sim.run(until=sim.now + 10)
    return sim


def _digest(sim: Simulator) -> str:
    return hashlib.sha256("\n".join(sim.trace_lines()).encode()).hexdigest()


def test_same_seed_same_trace_byte_for_byte() -> None:
    first, second = _scenario(7), _scenario(7)
    assert len(first.trace) > 100
    assert first.trace_lines() == second.trace_lines()
    assert first.counters == second.counters


def test_different_seed_different_trace() -> None:
    assert _digest(_scenario(7)) != _digest(_scenario(8))


def test_scenario_exercises_every_outcome() -> None:
    sim = _scenario(7)
    kinds = {record.event for record in sim.trace}
    assert {"PingReceived", "PongReceived", "RequestTimedOut"} <= kinds
    assert sim.counters.get_count(SimCounter.DATAGRAMS_LOST) > 0
    assert sim.counters.get_count(SimCounter.DATAGRAMS_PARTITIONED) > 0


def test_rtt_is_the_link_latency_both_ways() -> None:
    network = SimNetwork(default=LinkProfile(latency=0.04))
    sim = Simulator(seed=1, network=network)
    a, b = sim.spawn(2)
    sim.ping(a, b)
    sim.run_for(1.0)
    pongs = [r for r in sim.trace if r.event == "PongReceived"]
    assert len(pongs) == 1
    # float seconds near 1.77e9 resolve to ~0.24 us
    assert abs(pongs[0].data["rtt"] - 0.08) < 1e-6


def test_timeout_fires_exactly_at_deadline_in_virtual_time() -> None:
    sim = Simulator(seed=1)
    (a,) = sim.spawn(1, config=NodeConfig(request_timeout=5.0))
    start = sim.now
    sim.ping(a, sim_address(999))
    sim.run_for(4.999)
    assert not any(r.event == "RequestTimedOut" for r in sim.trace)
    sim.run_for(1.0)
    timeouts = [r for r in sim.trace if r.event == "RequestTimedOut"]
    assert [t.time - start for t in timeouts] == [5.0]


def test_partition_with_bridge() -> None:
    sim = Simulator(seed=3)
    a, bridge, c = sim.spawn(3, config=NodeConfig(request_timeout=1.0))
    sim.network.split([[a, bridge], [bridge, c]])
    sim.ping(a, c)
    sim.ping(a, bridge)
    sim.ping(bridge, c)
    sim.run_for(2.0)
    outcome = {(r.node, r.event) for r in sim.trace if r.event != "PingReceived"}
    ids = {addr: sim.nodes[addr].node_id.hex() for addr in (a, bridge)}
    assert (ids[a], "RequestTimedOut") in outcome
    pongs = [r for r in sim.trace if r.event == "PongReceived"]
    assert sorted(r.node for r in pongs) == sorted([ids[a], ids[bridge]])


def test_stream_messages_arrive_in_order_and_large() -> None:
    """STR-1.2: stream messages far above the datagram limit, delivered in order."""
    network = SimNetwork(default=LinkProfile(latency=0.01, jitter=0.05, bandwidth=1e6))
    sim = Simulator(seed=5, network=network)
    a, b = sim.spawn(2)
    ids = [sim.ping(a, b, channel=Channel.STREAM, payload=bytes(60_000)) for _ in range(5)]
    sim.run_for(5.0)
    pongs = [r for r in sim.trace if r.event == "PongReceived"]
    assert [p.data["request_id"] for p in pongs] == ids
    assert all(p.data["payload_size"] == 60_000 for p in pongs)
    assert sim.counters.get_count(SimCounter.CONNECTIONS_OPENED) == 1


def test_stopped_node_stops_answering() -> None:
    sim = Simulator(seed=4)
    a, b = sim.spawn(2, config=NodeConfig(request_timeout=1.0))
    sim.stop(b)
    sim.ping(a, b)
    sim.run_for(2.0)
    assert [r.event for r in sim.trace] == ["RequestTimedOut"]
    assert sim.counters.get_count(SimCounter.DROPPED_NO_RUNNING_NODE) == 1
