"""`bench attacks` at a toy size: the scenarios run and the defences change what they measure."""

from railgun_ref.bench.attacks import ECLIPSE_IPS, Params, build, eclipse, flood, lookups
from railgun_ref.dht.routing import Diversity

SMALL = Params(nodes=40, keys=5, sybils=60, pingers=20, flood_seconds=3.0)


def test_diversity_caps_a_two_ip_eclipse() -> None:
    defended = eclipse(build(SMALL, defended=True), SMALL)
    plain = eclipse(build(SMALL, defended=False), SMALL)
    # DHT-5.5: per host (loopback grouped by IP), at most 5 % of the other contacts, min 2.
    held = defended["attacker_entries"]
    others = defended["victim_routing_entries"] - held // len(ECLIPSE_IPS)
    assert 0 < held <= len(ECLIPSE_IPS) * Diversity().group_cap(held=0, table=others)
    assert plain["attacker_entries"] > defended["attacker_entries"]


def test_lookups_and_flood_report_every_operation() -> None:
    world = build(SMALL, defended=True)
    got = lookups(world, SMALL)
    assert got["gets_finished"] == SMALL.keys
    result = flood(world, SMALL)
    assert result["unloaded"]["honest_pings"] == SMALL.pingers * 3
    assert result["unloaded"]["delivery"] == 1.0
    assert result["flooded"]["flood_pings"] == 10 * SMALL.pingers * 3
