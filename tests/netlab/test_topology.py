"""The lab's description, address plan and rulesets (pure: no root needed)."""

import pytest

from railgun_ref.capacity.nat import NatType
from railgun_ref.netlab import nft
from railgun_ref.netlab.topology import TopologyError, parse_topology


def test_plan_of_a_small_lab() -> None:
    topology = parse_topology("a:open, b:symmetric")
    a, b = topology.hosts
    assert (a.address, a.public, a.router) == ("198.18.1.2", "198.18.1.2", None)
    assert (b.address, b.public, b.router) == ("10.2.0.2", "198.18.2.2", "rb")
    assert topology.describe() == "a:open,b:symmetric"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "1.."),
        ("a", "NAME:NAT"),
        ("a:cone", "unknown NAT"),
        ("a:open,a:open", "twice"),
        ("Alice:open", "NAME:NAT"),
        ("inet:open", "NAME:NAT"),
        ("a:udp-blocked", "unknown NAT"),
    ],
)
def test_bad_descriptions(text: str, fragment: str) -> None:
    with pytest.raises(TopologyError, match=fragment):
        parse_topology(text)


def test_router_rulesets_differ_by_behaviour() -> None:
    full = nft.router_ruleset(NatType.FULL_CONE, host="10.1.0.2")
    restricted = nft.router_ruleset(NatType.RESTRICTED, host="10.1.0.2")
    port = nft.router_ruleset(NatType.PORT_RESTRICTED, host="10.1.0.2")
    symmetric = nft.router_ruleset(NatType.SYMMETRIC, host="10.1.0.2")
    assert "udp dport @mapped dnat to 10.1.0.2" in full
    assert "ip saddr . udp dport @peers dnat to 10.1.0.2" in restricted
    assert "dnat" not in port and "fully-random" not in port
    assert "masquerade fully-random" in symmetric and "dnat" not in symmetric
    with pytest.raises(ValueError, match="no router"):
        nft.router_ruleset(NatType.OPEN, host="10.1.0.2")


def test_censor_rules() -> None:
    drop = nft.block_rules(["198.18.2.2", "198.18.1.2"], "198.18.0.2", nft.BlockMode.DROP)
    assert drop == ["ip saddr { 198.18.1.2, 198.18.2.2 } ip daddr 198.18.0.2 drop"]
    reject = nft.block_rules(["198.18.1.2"], "198.18.0.2", nft.BlockMode.REJECT)
    assert any("tcp reset" in r for r in reject) and any("admin-prohibited" in r for r in reject)
    ruleset = nft.censor_ruleset(nft.dns_rules(["198.18.1.2"], "198.19.0.53", forger="198.19.0.54"))
    prerouting = ruleset.split("chain forward")[0]
    assert "dnat ip to 198.19.0.54" in prerouting
    with pytest.raises(ValueError, match="at least one"):
        nft.partition_rules([], ["198.18.1.2"])
