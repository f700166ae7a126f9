"""NAT emulation in the simulator, and RFC 5780 detection through it, in virtual time."""

import itertools
import random

import pytest

from railgun_ref.capacity.nat import NatBehaviour, NatDetectionConfig, NatType
from railgun_ref.core.ids import Address
from railgun_ref.drivers.sim import LinkProfile, SimCounter, SimNetwork, Simulator
from railgun_ref.drivers.sim_nat import (
    NAT_BEHAVIOURS,
    SIM_NAT_PUBLIC_HOST,
    NatBox,
    NatBoxCounter,
    add_stun_server,
    detect_nat_in_sim,
)
from railgun_ref.events import NodeEvent, PongReceived, RequestTimedOut
from railgun_ref.identity.keys import Identity
from railgun_ref.node import Node, NodeConfig

CLIENT: Address = ("127.100.0.2", 5000)
EIM = NatBehaviour.ENDPOINT_INDEPENDENT
ADM = NatBehaviour.ADDRESS_DEPENDENT
APDM = NatBehaviour.ADDRESS_AND_PORT_DEPENDENT


def detect(nat: NatBox | None, *, seed: int = 1, network: SimNetwork | None = None) -> object:
    sim = Simulator(seed=seed, network=network)
    server = add_stun_server(sim)
    if nat is not None:
        sim.network.middleboxes.append(nat)
    return detect_nat_in_sim(sim, CLIENT, server=server)


# ------------------------------------------------------------------ detection


@pytest.mark.parametrize("nat_type", list(NAT_BEHAVIOURS), ids=lambda t: t.value)
def test_each_emulated_nat_is_classified(nat_type: NatType) -> None:
    """CAP-6.1/CAP-6.3: all four emulated NAT types are classified correctly."""
    sim = Simulator(seed=1)
    server = add_stun_server(sim)
    sim.network.middleboxes.append(NatBox.of_type(nat_type, inside=[CLIENT[0]]))
    outcome = detect_nat_in_sim(sim, CLIENT, server=server)
    assert outcome.nat_type is nat_type
    assert (outcome.mapping, outcome.filtering) == NAT_BEHAVIOURS[nat_type]
    assert outcome.behind_nat is True
    assert outcome.mapped_address is not None
    assert outcome.mapped_address[0] == SIM_NAT_PUBLIC_HOST
    assert outcome.alternate_address == server.addresses.alternate


def test_no_nat_is_open() -> None:
    """CAP-6.3."""
    sim = Simulator(seed=1)
    server = add_stun_server(sim)
    outcome = detect_nat_in_sim(sim, CLIENT, server=server)
    assert outcome.nat_type is NatType.OPEN
    assert outcome.behind_nat is False
    assert outcome.mapped_address == CLIENT
    assert outcome.requests_sent == 2  # test I, then "change IP and port" answered: done


@pytest.mark.parametrize(
    ("mapping", "filtering"),
    list(itertools.product(NatBehaviour, NatBehaviour)),
    ids=lambda b: b.value,
)
def test_every_behaviour_pair_is_measured_exactly(
    mapping: NatBehaviour, filtering: NatBehaviour
) -> None:
    """Beyond the four classic boxes: all nine RFC 4787 (mapping, filtering) pairs."""
    nat = NatBox(
        public_host=SIM_NAT_PUBLIC_HOST, inside=[CLIENT[0]], mapping=mapping, filtering=filtering
    )
    sim = Simulator(seed=2)
    server = add_stun_server(sim)
    sim.network.middleboxes.append(nat)
    outcome = detect_nat_in_sim(sim, CLIENT, server=server, tell_alternate=True)
    assert (outcome.mapping, outcome.filtering) == (mapping, filtering)


def test_detection_is_deterministic_and_survives_loss() -> None:
    """Same seed, same outcome; with 10 % loss and more retransmissions, still right."""
    network = SimNetwork(default=LinkProfile(latency=0.03, jitter=0.02, loss=0.1))
    config = NatDetectionConfig(max_transmissions=7)
    outcomes = []
    for _ in range(2):
        sim = Simulator(seed=11, network=SimNetwork(default=network.default))
        server = add_stun_server(sim)
        sim.network.middleboxes.append(NatBox.of_type(NatType.RESTRICTED, inside=[CLIENT[0]]))
        outcomes.append(detect_nat_in_sim(sim, CLIENT, server=server, config=config))
        assert sim.counters.get_count(SimCounter.DATAGRAMS_LOST) > 0
    assert outcomes[0] == outcomes[1]
    assert outcomes[0].nat_type is NatType.RESTRICTED


def test_blocked_and_missing_alternate() -> None:
    """No server: udp-blocked. A single-address server: the NAT is seen but not classified."""
    sim = Simulator(seed=1)
    server = add_stun_server(sim)
    sim.stop(server.addresses.primary)
    assert detect_nat_in_sim(sim, CLIENT, server=server).nat_type is NatType.UDP_BLOCKED
    sim = Simulator(seed=1)
    single = add_stun_server(sim, alternate=None)
    sim.network.middleboxes.append(NatBox.of_type(NatType.FULL_CONE, inside=[CLIENT[0]]))
    outcome = detect_nat_in_sim(sim, CLIENT, server=single)
    assert outcome.nat_type is NatType.UNKNOWN
    assert outcome.behind_nat is True


def test_nested_nats() -> None:
    """A home NAT behind a carrier-grade NAT: the outer box's behaviour shows through."""
    home_public = "127.150.0.1"

    def nested(inner: NatType, outer: NatType) -> NatType:
        sim = Simulator(seed=3)
        server = add_stun_server(sim)
        sim.network.middleboxes += [
            NatBox.of_type(inner, public_host=home_public, inside=[CLIENT[0]]),
            NatBox.of_type(outer, public_host="127.250.0.1", inside=[home_public]),
        ]
        return detect_nat_in_sim(sim, CLIENT, server=server).nat_type

    assert nested(NatType.FULL_CONE, NatType.FULL_CONE) is NatType.FULL_CONE
    assert nested(NatType.FULL_CONE, NatType.SYMMETRIC) is NatType.SYMMETRIC
    assert nested(NatType.FULL_CONE, NatType.PORT_RESTRICTED) is NatType.PORT_RESTRICTED
    assert nested(NatType.RESTRICTED, NatType.FULL_CONE) is NatType.RESTRICTED


def test_many_clients_behind_one_nat() -> None:
    """Two clients behind one full-cone NAT get distinct public ports; both classify."""
    sim = Simulator(seed=4)
    server = add_stun_server(sim)
    nat = NatBox.of_type(NatType.FULL_CONE, inside=["127.100.0.2", "127.100.0.3"])
    sim.network.middleboxes.append(nat)
    first = detect_nat_in_sim(sim, ("127.100.0.2", 5000), server=server)
    second = detect_nat_in_sim(sim, ("127.100.0.3", 5000), server=server)
    assert first.nat_type is second.nat_type is NatType.FULL_CONE
    assert first.mapped_address != second.mapped_address
    assert nat.active_mappings(now=sim.now) == 2


# ------------------------------------------------------------------ the box itself


A: Address = ("127.0.0.1", 3478)
A2: Address = ("127.0.0.1", 3479)
B: Address = ("127.0.0.2", 3478)


def box(mapping: NatBehaviour, filtering: NatBehaviour, **options: float) -> NatBox:
    return NatBox(
        public_host="127.200.0.1",
        inside=["127.100.0.2"],
        mapping=mapping,
        filtering=filtering,
        **options,  # type: ignore[arg-type]
    )


def test_mapping_behaviours() -> None:
    """RFC 4787 §4.1: which destinations share a public port."""
    eim, adm, apdm = box(EIM, EIM), box(ADM, EIM), box(APDM, EIM)
    ports = {
        name: [nat.outbound(CLIENT, dst, now=0.0) for dst in (A, A2, B)]
        for name, nat in (("eim", eim), ("adm", adm), ("apdm", apdm))
    }
    assert len(set(ports["eim"])) == 1
    assert ports["adm"][0] == ports["adm"][1] != ports["adm"][2]
    assert len(set(ports["apdm"])) == 3


def test_filtering_behaviours() -> None:
    """CAP-6.1: RFC 4787 §5: who may send back through a mapping opened towards A."""
    expectations = {
        EIM: {A: True, A2: True, B: True},
        ADM: {A: True, A2: True, B: False},
        APDM: {A: True, A2: False, B: False},
    }
    for filtering, allowed in expectations.items():
        nat = box(EIM, filtering)
        public = nat.outbound(CLIENT, A, now=0.0)
        assert public is not None
        for src, admitted in allowed.items():
            assert (nat.inbound(src, public, now=0.1) == CLIENT) is admitted, (filtering, src)
        assert nat.inbound(A, ("127.200.0.1", 1), now=0.1) is None  # no such mapping
    assert nat.counters.get_count(NatBoxCounter.INBOUND_FILTERED) == 2


def test_mapping_timeout_and_refresh() -> None:
    """RFC 4787 REQ-5/REQ-6: a mapping lives `mapping_timeout` after the last outbound datagram;
    inbound traffic does not refresh it; an expired flow comes back on a new port."""
    nat = box(EIM, EIM, mapping_timeout=120.0)
    public = nat.outbound(CLIENT, A, now=0.0)
    assert public is not None
    assert nat.inbound(B, public, now=100.0) == CLIENT  # inbound: no refresh
    assert nat.inbound(B, public, now=120.0) is None
    again = nat.outbound(CLIENT, A, now=121.0)
    assert again is not None and again != public
    assert nat.outbound(CLIENT, A, now=200.0) == again  # refreshed at 121 and 200
    assert nat.inbound(A, again, now=319.0) == CLIENT
    assert nat.counters.get_count(NatBoxCounter.MAPPINGS_EXPIRED) == 1
    assert nat.active_mappings(now=319.0) == 1
    assert nat.active_mappings(now=320.0) == 0


def test_untranslated_traffic_and_hairpinning() -> None:
    nat = box(EIM, EIM)
    neighbour = ("127.100.0.2", 6000)
    assert nat.outbound(CLIENT, neighbour, now=0.0) == CLIENT  # inside <-> inside
    assert nat.inbound(CLIENT, neighbour, now=0.0) == neighbour
    assert nat.inbound(A, neighbour, now=0.0) is None  # private: unroutable from outside
    assert nat.outbound(A, B, now=0.0) == A  # not ours
    assert nat.inbound(A, B, now=0.0) == B
    theirs = nat.outbound(neighbour, A, now=0.0)  # the neighbour's public address
    ours = nat.outbound(CLIENT, theirs, now=0.0)  # REQ-9: hairpin towards it
    assert theirs is not None and ours is not None
    assert nat.inbound(ours, theirs, now=0.0) == neighbour


def test_box_validation() -> None:
    with pytest.raises(ValueError):
        NatBox.of_type(NatType.OPEN, inside=[CLIENT[0]])
    with pytest.raises(ValueError):
        NatBox(public_host="127.200.0.1", inside=["127.200.0.1"], mapping=EIM, filtering=EIM)
    with pytest.raises(ValueError):
        box(EIM, EIM, mapping_timeout=0)
    nat = NatBox(
        public_host="127.200.0.1", inside=[CLIENT[0]], mapping=APDM, filtering=EIM, first_port=65535
    )
    assert nat.outbound(CLIENT, A, now=0.0) == ("127.200.0.1", 65535)
    assert nat.outbound(CLIENT, B, now=0.0) is None  # out of ports
    assert nat.counters.get_count(NatBoxCounter.PORTS_EXHAUSTED) == 1


# ------------------------------------------------------------------ nodes behind NATs


def node_at(sim: Simulator, address: Address, seed: int) -> None:
    identity = Identity.from_seed(bytes([seed]) * 32)
    node = Node(
        identity, rng=random.Random(seed), config=NodeConfig(request_timeout=1.0), now=sim.now
    )
    sim.add_node(node, address)


def test_nodes_ping_through_a_nat() -> None:
    """The same Node cores behind a port-restricted NAT: outgoing pings work and the peer sees
    the public address; unsolicited ones are filtered until the inside node has sent first."""
    sim = Simulator(seed=5)
    inside, outside = ("127.100.0.2", 7000), ("127.1.0.9", 7000)
    node_at(sim, inside, 1)
    node_at(sim, outside, 2)
    nat = NatBox.of_type(NatType.PORT_RESTRICTED, inside=[inside[0]])
    sim.network.middleboxes.append(nat)
    events: list[tuple[Address, NodeEvent]] = []
    sim.subscribe(lambda address, event, now: events.append((address, event)))

    sim.ping(outside, inside)  # nobody outside can reach a private address
    sim.ping(outside, (SIM_NAT_PUBLIC_HOST, 20_000))  # nor a public port never mapped
    sim.run_for(2.0)
    assert [type(e) for _, e in events] == [RequestTimedOut, RequestTimedOut]

    events.clear()
    sim.ping(inside, outside)
    sim.run_for(0.5)
    [(where, pong)] = [(a, e) for a, e in events if isinstance(e, PongReceived)]
    assert where == inside
    assert pong.observed[0] == SIM_NAT_PUBLIC_HOST  # the peer saw the mapped address

    events.clear()
    sim.ping(outside, pong.observed)  # now the mapping admits the outside node
    sim.run_for(0.5)
    assert [a for a, e in events if isinstance(e, PongReceived)] == [outside]
    assert (
        nat.counters.get_count(NatBoxCounter.INBOUND_UNROUTABLE)
        == nat.counters.get_count(NatBoxCounter.INBOUND_NO_MAPPING)
        == 1
    )
    assert sim.counters.get_count(SimCounter.DATAGRAMS_FILTERED) == 2


def test_apps_share_addresses_with_nodes_only_exclusively() -> None:
    sim = Simulator(seed=1)
    server = add_stun_server(sim)
    with pytest.raises(ValueError):
        add_stun_server(sim)
    with pytest.raises(ValueError):
        node_at(sim, server.addresses.primary, 3)
    with pytest.raises(ValueError):
        sim.add_app(server)
