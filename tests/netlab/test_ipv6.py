"""A dual-stack lab: IPv6 (unique local fd00::/8 addresses) beside IPv4 in every namespace.

Each host keeps its IPv4 NAT and gets an IPv6 address routed without translation,
its home router a stateful firewall (RFC 6092). The same two hosts, behind a
symmetric and a port-restricted NAT over IPv4, therefore sit behind two filters that
map nothing over IPv6: the RFC 5780 classifier tells the families apart from inside
each host, the pair is unpunchable over IPv4 (NAT-3.1: relayed) and punched over IPv6
with each side's own address as the direct path, and a firewall that is only told the
peer is reachable drops the unsolicited first attempt.
"""

import json
import subprocess
from collections.abc import Iterator

import pytest

from railgun_ref.capacity.nat import NatType
from railgun_ref.netlab import nft
from railgun_ref.netlab.agent import RELAY_PORT, STUN_PORT
from railgun_ref.netlab.lab import NetLab
from railgun_ref.netlab.topology import (
    CENTRAL,
    CENTRAL_ALT_IP,
    CENTRAL_ALT_IP6,
    CENTRAL_IP,
    CENTRAL_IP6,
    LAB_NETWORKS,
    parse_topology,
)

from .conftest import require_lab

AGENT = "railgun_ref.netlab.agent"
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def lab6() -> Iterator[NetLab]:
    require_lab()
    topology = parse_topology("o6:open,p6:port-restricted,s6:symmetric", ipv6=True)
    with NetLab(topology) as built:
        for relay_ip in (CENTRAL_IP, CENTRAL_IP6):
            relay = built.start(CENTRAL, built.python(AGENT, "relay", "--host", relay_ip))
            assert relay.stdout is not None and relay.stdout.readline().strip() == "ready"
        yield built


class Peer:
    """A traversal agent in `name`'s host, on one address family."""

    def __init__(self, lab: NetLab, name: str, *, v6: bool, nat: NatType) -> None:
        host = lab.topology.host(name)
        local = host.address6 if v6 else host.address
        relay = f"[{CENTRAL_IP6}]:{RELAY_PORT}" if v6 else f"{CENTRAL_IP}:{RELAY_PORT}"
        argv = ["peer", "--local", local, "--relay", relay, "--nat", nat.value]
        self.process: subprocess.Popen[str] = lab.start(name, lab.python(AGENT, *argv))

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def read(self) -> dict[str, object]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the agent exited"
        result: dict[str, object] = json.loads(line)
        return result

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def _attempt(a: Peer, b: Peer) -> tuple[dict[str, object], dict[str, object], list[object]]:
    a.send("new")
    b.send("new")
    mine, theirs = a.read(), b.read()
    assert mine["event"] == theirs["event"] == "registered"
    a.send(f"connect {theirs['id']}")
    return a.read(), b.read(), [mine["observed"], theirs["observed"]]


def test_the_classifier_tells_the_families_apart(lab6: NetLab) -> None:
    """§13 on both families: IPv4 finds each NAT, IPv6 finds no mapping and a
    port-restricted filter behind the routers (none at the open host)."""
    for primary, alternate in ((CENTRAL_IP, CENTRAL_ALT_IP), (CENTRAL_IP6, CENTRAL_ALT_IP6)):
        args = ["stun", "--primary", primary, "--alternate", alternate]
        server = lab6.start(CENTRAL, lab6.python(AGENT, *args))
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    found: dict[tuple[str, bool], dict[str, object]] = {}
    running = {}
    for host in lab6.topology.hosts:
        for v6 in (False, True):
            server = f"[{CENTRAL_IP6}]:{STUN_PORT}" if v6 else f"{CENTRAL_IP}:{STUN_PORT}"
            local = host.address6 if v6 else host.address
            argv = lab6.python(AGENT, "detect", "--server", server, "--local", local)
            running[(host.name, v6)] = lab6.start(host.name, argv)
    for key, process in running.items():
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        found[key] = json.loads(out)
    v4 = {name: found[(name, False)]["nat_type"] for name in ("o6", "p6", "s6")}
    v6 = {name: found[(name, True)]["nat_type"] for name in ("o6", "p6", "s6")}
    assert v4 == {"o6": "open", "p6": "port-restricted", "s6": "symmetric"}
    assert v6 == {"o6": "open", "p6": "port-restricted", "s6": "port-restricted"}
    for host in lab6.topology.hosts:  # IPv6 is not translated: the mapped address is its own
        mapped = found[(host.name, True)]["mapped"]
        assert isinstance(mapped, list) and mapped[0] == host.address6


def test_a_pair_unpunchable_over_ipv4_is_punched_over_ipv6(lab6: NetLab) -> None:
    """NAT-3.1 per family: symmetric/port-restricted relays over IPv4; over IPv6 both
    firewalls map nothing, the punch succeeds and each side's direct path is the other's
    own address (what the relay observed: the address peers see, HT-6.7)."""
    p6, s6 = lab6.topology.host("p6"), lab6.topology.host("s6")
    a4 = Peer(lab6, "s6", v6=False, nat=NatType.SYMMETRIC)
    b4 = Peer(lab6, "p6", v6=False, nat=NatType.PORT_RESTRICTED)
    a6 = Peer(lab6, "s6", v6=True, nat=NatType.PORT_RESTRICTED)
    b6 = Peer(lab6, "p6", v6=True, nat=NatType.PORT_RESTRICTED)
    try:
        mine, theirs, _ = _attempt(a4, b4)
        assert (mine["outcome"], mine["reason"], theirs["outcome"]) == (
            "relayed",
            "unpunchable",
            "relayed",
        )
        mine, theirs, observed = _attempt(a6, b6)
        assert [o[0] for o in observed] == [s6.address6, p6.address6]  # type: ignore[index]
        assert (mine["outcome"], theirs["outcome"]) == ("punched", "punched")
        assert mine["attempts"] == 1
        assert mine["direct"] == observed[1] and theirs["direct"] == observed[0]
    finally:
        for peer in (a4, b4, a6, b6):
            peer.stop()


def test_the_ipv6_firewall_drops_what_the_host_did_not_ask_for(lab6: NetLab) -> None:
    """RFC 6092 in the lab: told its peer is reachable (full cone), the initiator sends
    alone (plan `direct`, NAT-3.2) and the peer's firewall drops it; the second attempt
    punches from both sides and gets through (NAT-5.4)."""
    a = Peer(lab6, "s6", v6=True, nat=NatType.PORT_RESTRICTED)
    b = Peer(lab6, "p6", v6=True, nat=NatType.FULL_CONE)  # a claim the firewall belies
    try:
        mine, theirs, _ = _attempt(a, b)
        assert (mine["outcome"], theirs["outcome"]) == ("punched", "punched")
        assert mine["attempts"] == 2
    finally:
        a.stop()
        b.stop()


def test_a_partition_cuts_both_families(lab6: NetLab) -> None:
    """The censor's partition drops IPv6 too: the punch never gets through (NAT-5.4)."""
    lab6.partition(["p6"], ["s6"])
    a = Peer(lab6, "s6", v6=True, nat=NatType.PORT_RESTRICTED)
    b = Peer(lab6, "p6", v6=True, nat=NatType.PORT_RESTRICTED)
    try:
        mine, theirs, _ = _attempt(a, b)
        assert (mine["outcome"], mine["reason"]) == ("relayed", "punch_timeout")
        assert theirs["outcome"] == "relayed"
    finally:
        lab6.lift()
        a.stop()
        b.stop()


def test_the_dual_stack_address_plan_and_rules() -> None:
    """Pure data (no lab needed): ULA addresses per link, no NAT66, family-aware rules."""
    topology = parse_topology("a:open,b:symmetric", ipv6=True)
    a, b = topology.hosts
    assert (a.address6, a.wan6) == ("fd00:18:1::2", "fd00:18:1::2")
    assert (b.address6, b.wan6, b.lan6) == ("fd00:10:2::2", "fd00:18:2::2", "fd00:10:2::/64")
    assert "fd00:18::/32" in LAB_NETWORKS and "fd00:10::/32" in LAB_NETWORKS
    assert not parse_topology("a:open").ipv6
    rules = nft.partition_rules(["198.18.1.2", a.address6], ["198.18.2.2", b.address6])
    assert rules[2:] == [
        f"ip6 saddr {a.address6} ip6 daddr {b.address6} drop",
        f"ip6 saddr {b.address6} ip6 daddr {a.address6} drop",
    ]
    firewall = nft.firewall6_ruleset()
    assert "table ip6" in firewall and "masquerade" not in firewall
