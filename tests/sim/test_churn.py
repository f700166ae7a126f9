"""Weibull churn in the simulator, and the DHT living through it."""

import math
from pathlib import Path

import pytest
from scipy import stats

from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.service import DhtConfig
from railgun_ref.drivers.churn import WeibullChurn, apply_churn
from railgun_ref.drivers.sim import LinkProfile, SimCounter, SimNetwork, Simulator
from railgun_ref.events import GetFinished, NodeEvent
from railgun_ref.node import NodeConfig

DATASET = Path(__file__).parents[2] / "datasets" / "churn_weibull.json"


def test_dataset_defaults_match_the_kad_fit() -> None:
    model = WeibullChurn.from_dataset(DATASET)
    assert model == WeibullChurn()
    # Derived from the KAD fit (Steiner et al., IEEE/ACM ToN 2009): median 93 min, P(> 1 h) 0.59.
    assert model.median_session() / 60 == pytest.approx(93, abs=1)
    p_over_hour = math.exp(-((3600 / model.session_scale) ** model.session_shape))
    assert p_over_hour == pytest.approx(0.59, abs=0.01)


def test_sampled_sessions_follow_the_fit() -> None:
    sim = Simulator(seed=11)
    model = WeibullChurn()
    samples = [model.draw_session(sim) for _ in range(4000)]
    fitted = stats.weibull_min(c=model.session_shape, scale=model.session_scale)
    result = stats.kstest(samples, fitted.cdf)
    assert result.pvalue > 0.001


def test_restart_keeps_identity_records_and_cached_peers() -> None:
    sim = Simulator(seed=2)
    a, b = sim.spawn(2)
    sim.call(b, lambda n, now: n.dht.bootstrap([a], now=now))
    sim.run_for(5)
    sim.call(b, lambda n, now: n.dht.store(KeyType.RENDEZVOUS, b"x", b"y", now=now))
    sim.run_for(5)
    before = sim.nodes[a]
    assert len(before.dht.records) == 1
    sim.stop(a)
    with pytest.raises(ValueError):
        sim.restart(b)  # still running
    peers = sim.restart(a)
    after = sim.nodes[a]
    assert after is not before
    assert after.node_id == before.node_id
    assert len(after.dht.records) == 1
    assert peers == [b]


def test_dht_keeps_serving_under_weibull_churn() -> None:
    """DHT-8.4/8.5: with republish and replication, gets keep succeeding while nodes churn."""
    config = NodeConfig(
        request_timeout=2.0,
        dht=DhtConfig(republish_interval=600.0, replicate_interval=600.0, refresh_interval=900.0),
    )
    sim = Simulator(seed=5, network=SimNetwork(default=LinkProfile(latency=0.03, jitter=0.02)))
    nodes = sim.spawn(80, config=config)
    for i, address in enumerate(nodes[1:]):
        sim.at(
            sim.now + i * 0.2,
            lambda s, a=address: s.call(a, lambda n, now: n.dht.bootstrap([nodes[0]], now=now)),
        )
    sim.run_for(60)
    publishers = nodes[:5]  # kept online: the publishers republish
    for i, p in enumerate(publishers):
        sim.call(p, lambda n, now, i=i: n.dht.store(KeyType.RENDEZVOUS, b"k%d" % i, b"v", now=now))
    sim.run_for(30)
    # Sessions scaled to a twentieth: a 93-minute median session lasts ~4.7 minutes.
    apply_churn(sim, nodes[5:], WeibullChurn(time_scale=1 / 20), until=sim.now + 1800)
    results: list[GetFinished] = []

    def collect(_a: object, event: NodeEvent, _now: float) -> None:
        if isinstance(event, GetFinished):
            results.append(event)

    sim.subscribe(collect)

    def probe(s: Simulator) -> None:
        readers = [a for a in publishers if s.is_running(a)]
        for i in range(5):
            key = derive_key(KeyType.RENDEZVOUS, b"k%d" % i)
            reader = readers[(i + 1) % len(readers)]
            s.call(reader, lambda n, now, key=key: n.dht.get(key, now=now))

    for minute in range(1, 30, 5):
        sim.at(sim.now + minute * 60, probe)
    sim.run_for(1900)
    assert sim.counters.get_count(SimCounter.CHURN_LEFT) > 30
    assert sim.counters.get_count(SimCounter.CHURN_RETURNED) > 5
    assert len(results) == 30
    assert sum(r.found for r in results) == len(results)
