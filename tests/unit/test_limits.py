"""ABUSE-1..3 and DHT-5.5 in the sans-IO cores: buckets, groups, cookies, slots, diversity."""

import random

import pytest

from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.routing import Contact, Diversity, Observed, RoutingTable
from railgun_ref.identity.keys import Identity
from railgun_ref.limits.buckets import KeyedBuckets, LimitReason, LimitsConfig, Rate, TokenBucket
from railgun_ref.limits.cookies import AddressValidator, cookie_for
from railgun_ref.limits.groups import source_group
from railgun_ref.limits.slots import CloseConnection, CloseReason, ConnectionSlots, SlotsConfig
from railgun_ref.node import Node, NodeConfig, NodeCounter, SendDatagram
from railgun_ref.rpc.requests import Channel
from railgun_ref.wire.envelope import decode_envelope
from railgun_ref.wire.messages import Cookie, FindNode, parse_message


def test_a_bucket_passes_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(Rate(rate=10, burst=5), now=0.0)
    assert [bucket.take(now=0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.take(now=0.1) and not bucket.take(now=0.1)  # one token per 0.1 s
    assert not bucket.take(now=0.05)  # time never runs backwards


def test_keyed_buckets_forget_the_least_recently_used_key() -> None:
    buckets = KeyedBuckets[str](Rate(rate=1, burst=1), capacity=2)
    assert buckets.take("a", now=0) and buckets.take("b", now=0) and buckets.take("c", now=0)
    assert len(buckets) == 2
    assert not buckets.take("c", now=0)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(LocalProtocolError):
        Rate(rate=0, burst=1)
    with pytest.raises(LocalProtocolError):
        LimitsConfig(capacity=0)
    with pytest.raises(LocalProtocolError):
        SlotsConfig(fair_share=0)
    with pytest.raises(LocalProtocolError):
        Diversity(per_table=0)


def test_source_groups() -> None:
    """ABUSE-1.2: a public /24 or /48 is one source; loopback endpoints are separate."""
    assert source_group(("8.8.8.8", 1)) == source_group(("8.8.8.200", 2))
    assert source_group(("8.8.8.8", 1)) != source_group(("8.8.9.8", 1))
    assert source_group(("2001:4860::1", 1)) == source_group(("2001:4860:0:ffff::1", 9))
    assert source_group(("127.0.0.1", 1)) != source_group(("127.0.0.1", 2))
    assert source_group(("127.0.0.2", 1), loopback_hosts=True) == source_group(
        ("127.0.0.2", 2), loopback_hosts=True
    )
    assert source_group(("node.example", 1))[0] == "name"


def test_cookies_are_bound_to_the_address_and_two_epochs() -> None:
    validator = AddressValidator(b"k" * 32, epoch=100.0, validated_for=10.0, capacity=2)
    cookie = validator.issue(("127.0.0.1", 9), now=150.0)
    assert cookie == cookie_for(b"k" * 32, ("127.0.0.1", 9), 1) and len(cookie) == 16
    assert validator.check(cookie, ("127.0.0.1", 9), now=250.0)
    assert not validator.check(cookie, ("127.0.0.1", 9), now=300.0)  # two epochs later
    assert not validator.check(cookie, ("127.0.0.1", 10), now=150.0)  # another port
    validator.validate(("127.0.0.1", 9), now=0.0)
    assert validator.is_validated(("127.0.0.1", 9), now=9.9)
    assert not validator.is_validated(("127.0.0.1", 9), now=10.0)


def _ids(n: int, seed: int = 1) -> list[NodeId]:
    rng = random.Random(seed)
    return [NodeId(rng.randbytes(32)) for _ in range(n)]


def test_diversity_one_identity_per_endpoint() -> None:
    """DHT-5.5: a second key at a known IP:port enters neither the bucket nor the cache."""
    local, *others = _ids(40)
    table = RoutingTable(local, diversity=Diversity())
    outcomes = [
        table.observe(Contact(node_id=n, address=("127.0.0.1", 7)), now=0)[0] for n in others
    ]
    assert outcomes.count(Observed.INSERTED) == 1
    assert outcomes.count(Observed.REFUSED_ENDPOINT) == len(others) - 1
    assert len(table) == 1


def test_diversity_per_subnet_per_bucket_and_per_table() -> None:
    """DHT-5.5: at most 2 contacts of one public /24 per bucket and 10 in the table."""
    local, *others = _ids(400, seed=2)
    table = RoutingTable(local, diversity=Diversity())
    for i, node_id in enumerate(others):
        table.observe(Contact(node_id=node_id, address=("8.8.8.8", 1000 + i)), now=0)
    assert len(table) <= 10
    assert all(count <= 2 for count in table.bucket_fill().values())
    plain = RoutingTable(local, diversity=None)
    for i, node_id in enumerate(others):
        plain.observe(Contact(node_id=node_id, address=("8.8.8.8", 1000 + i)), now=0)
    assert len(plain) > 10


def test_slots_close_the_idlest_and_the_idle() -> None:
    """ABUSE-3.2/3.3."""
    slots = ConnectionSlots(SlotsConfig(inbound=2, outbound=1, idle_timeout=10))
    group = ("endpoint", "127.0.0.1", 1)
    slots.open(1, group, inbound=True, now=0)
    slots.open(2, ("endpoint", "127.0.0.1", 2), inbound=True, now=0)
    slots.activity(1, now=1)
    slots.open(3, ("endpoint", "127.0.0.1", 3), inbound=True, now=2)  # 2 never carried a frame
    assert slots.next_action() == CloseConnection(connection=2, reason=CloseReason.POOL_FULL)
    slots.open(4, group, inbound=False, now=2)  # the outbound pool is its own
    assert slots.next_action() is None
    assert slots.next_deadline() == 10
    slots.on_timer(now=11.5)
    closed = {a.connection for a in iter(slots.next_action, None)}
    assert closed == {1} and slots.next_deadline() == 12  # 3 and 4 were opened at 2


def test_fair_share_per_group() -> None:
    slots = ConnectionSlots(SlotsConfig(inbound=4, fair_share=0.5))
    same = ("ip", "127.0.0.9", 0)
    for c in range(3):
        slots.open(c, same, inbound=True, now=float(c))
    assert slots.next_action() == CloseConnection(connection=0, reason=CloseReason.GROUP_SHARE)


def _node(seed: int, limits: LimitsConfig | None) -> Node:
    return Node(
        Identity.from_seed(bytes([seed]) * 32),
        rng=random.Random(seed),
        config=NodeConfig(limits=limits),
        now=1000.0,
    )


def _datagrams(node: Node) -> list[SendDatagram]:
    return [a for a in iter(node.next_action, None) if isinstance(a, SendDatagram)]


def test_a_find_node_echoes_a_cookie_and_its_lookup_ends_normally() -> None:
    """ABUSE-2.4: the asker sends its FIND_NODE again with the cookie; the DHT sees one request."""
    now = 1000.0
    a, b = _node(1, LimitsConfig()), _node(2, LimitsConfig())
    a_addr, b_addr = ("127.0.0.1", 1), ("127.0.0.1", 2)
    friends = [_node(10 + i, None) for i in range(20)]
    for i, friend in enumerate(friends):  # b knows 20 contacts, so its NODES is large
        friend.ping(b_addr, now=now)
        for d in _datagrams(friend):
            b.receive_datagram(d.data, ("127.0.0.1", 100 + i), now=now)
    _datagrams(b)
    # a learns b from b's PING, so its lookup has b to ask.
    a.receive_datagram(_ping_from(b, a_addr, now), b_addr, now=now)
    _datagrams(a)
    query = a.dht.find_node(bytes(32), now=now)
    (ask,) = _datagrams(a)
    b.receive_datagram(ask.data, a_addr, now=now)
    (cookie,) = _datagrams(b)
    assert isinstance(parse_message(decode_envelope(cookie.data)), Cookie)
    assert len(cookie.data) <= len(ask.data)
    a.receive_datagram(cookie.data, b_addr, now=now)
    (echo,) = _datagrams(a)
    echoed = parse_message(decode_envelope(echo.data))
    assert isinstance(echoed, FindNode) and len(echoed.cookie) == 16
    b.receive_datagram(echo.data, a_addr, now=now)
    (nodes,) = _datagrams(b)
    assert len(nodes.data) > len(echo.data)  # a validated address gets the full answer
    a.receive_datagram(nodes.data, b_addr, now=now)
    assert a.counters.get_count(NodeCounter.COOKIE_ECHOED) == 1
    assert b.counters.get_count(NodeCounter.COOKIE_ACCEPTED) == 1
    assert a.dht.routing.knows_address(b_addr) and query >= 1


def _ping_from(sender: Node, to: tuple[str, int], now: float) -> bytes:
    sender.ping(to, now=now)
    (datagram,) = _datagrams(sender)
    return datagram.data


def test_a_flood_from_one_source_is_dropped_before_decoding() -> None:
    """ABUSE-1.1: past its burst, a source's datagrams are dropped unanswered, even garbage."""
    node = _node(1, LimitsConfig(datagram_source=Rate(rate=1, burst=3)))
    for _ in range(10):
        node.receive_datagram(b"garbage", ("127.0.0.1", 5), now=1000.0)
    assert node.counters.get_count(NodeCounter.LIMITED, LimitReason.SOURCE) == 7
    assert _datagrams(node) == []
    assert node.counters.get_count(NodeCounter.RX, Channel.DATAGRAM) == 10


def test_known_contacts_skip_the_shared_bucket_of_unknown_sources() -> None:
    """ABUSE-1.3: strangers empty the shared bucket; a contact in the table still gets a PONG."""
    now = 1000.0
    node = _node(1, LimitsConfig(unknown_sources=Rate(rate=1, burst=3)))
    contact = _node(2, None)
    contact_addr = ("127.0.0.1", 2)
    node.receive_datagram(_ping_from(contact, ("127.0.0.1", 1), now), contact_addr, now=now)
    assert len(_datagrams(node)) == 1 and node.dht.routing.knows_address(contact_addr)
    strangers = [_node(10 + i, None) for i in range(5)]
    for i, stranger in enumerate(strangers):
        data = _ping_from(stranger, ("127.0.0.1", 1), now)
        node.receive_datagram(data, ("127.0.0.1", 100 + i), now=now)
    assert len(_datagrams(node)) == 2  # the contact's PING took the first token
    assert node.counters.get_count(NodeCounter.LIMITED, LimitReason.UNKNOWN_SOURCES) == 3
    node.receive_datagram(_ping_from(contact, ("127.0.0.1", 1), now), contact_addr, now=now)
    assert len(_datagrams(node)) == 1


def test_diversity_group_share_keeps_two_hosts_under_a_tenth() -> None:
    """DHT-5.5: a group holds at most 5 % of the other groups' contacts (never fewer than 1).

    Two attacker hosts with unlimited keys court the table before and while honest
    contacts arrive (each 127.x.y.z counts as a host with loopback_hosts).
    """
    local, *ids = _ids(701, seed=3)
    honest, sybils = ids[:400], ids[400:]
    table = RoutingTable(local, diversity=Diversity(loopback_hosts=True))
    for i, node_id in enumerate(sybils[:20]):  # first, into an empty table
        table.observe(
            Contact(node_id=node_id, address=(f"127.250.0.{i % 2 + 1}", 20_000 + i)), now=0
        )
    assert len(table) == 2  # the floor (1) per host while the table is empty
    for i, node_id in enumerate(honest):
        table.observe(Contact(node_id=node_id, address=(f"127.1.{i // 250}.{i % 250}", 7)), now=1)
        sybil = sybils[20 + i % 280]
        host = f"127.250.0.{i % 2 + 1}"
        table.observe(Contact(node_id=sybil, address=(host, 21_000 + i)), now=1)
    held = sum(1 for c in table.contacts() if c.address[0].startswith("127.250."))
    assert 2 < held < 0.1 * len(table)
    per_host = Diversity().group_cap(held=held // 2, table=len(table))
    assert held <= 2 * per_host
