"""The capability directory (RLY-7) and what the P2P core does with a committee (RLY-7.4)."""

from railgun_ref.capacity.selection import Candidate
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.identity.keys import Identity
from railgun_ref.relay.committee import (
    CommitteeConfig,
    CommitteeRelay,
    LookupRoom,
    RelayCounter,
    room_key,
    select_committee,
)
from railgun_ref.relay.directory import (
    CapabilityDirectory,
    DirectoryConfig,
    DirectoryCounter,
    FetchAdvert,
    FindNear,
    NearPeer,
    SetCapacity,
    SetCommittee,
)
from railgun_ref.transport.p2p import P2PCounter, SendApp
from railgun_ref.transport.state import Reach
from tests.unit.capacity.helpers import caps
from tests.unit.relay.test_committee import RELAY_ADDRESS, Rig, relay_frame
from tests.unit.transport.test_p2p import ROOM, T0, RoomNet
from tests.unit.transport.test_p2p_closed import IDENT, join_closed

CONFIG = DirectoryConfig(
    refresh_interval=60.0, retry_interval=5.0, entry_ttl=120.0, committee=CommitteeConfig()
)


def node(i: int) -> NodeId:
    return Identity.from_seed(i.to_bytes(32, "big")).node_id


def address(i: int) -> Address:
    return ("127.0.0.1", 20_000 + i)


def drain(directory: CapabilityDirectory) -> list[object]:
    out: list[object] = []
    while (action := directory.next_action()) is not None:
        out.append(action)
    return out


def near(n: int, *, without_advert: frozenset[int] = frozenset()) -> list[NearPeer]:
    return [
        NearPeer(
            node_id=node(i),
            address=address(i),
            capabilities=None if i in without_advert else caps(upload_bandwidth=10_000 * i),
        )
        for i in range(1, n + 1)
    ]


def test_a_tracked_room_is_looked_up_near_its_key_and_gets_its_committee() -> None:
    """RLY-7.2: FindNear of the room key; the committee is RLY-1.1's choice over the near
    peers with an advertisement, this node excluded; RLY-7.3: each entry goes to
    SetCapacity; the lookup is repeated every refresh_interval."""
    me = node(3)
    directory = CapabilityDirectory(me, config=CONFIG, now=T0)
    directory.track_room(ROOM, IDENT, now=T0)
    assert directory.next_deadline() == T0
    directory.on_timer(now=T0)
    assert drain(directory) == [FindNear(room_id=ROOM, key=room_key(IDENT))]
    peers = near(10, without_advert=frozenset({7}))
    directory.near_found(ROOM, peers, now=T0 + 1)
    actions = drain(directory)
    capacities = {a.node_id for a in actions if isinstance(a, SetCapacity)}
    assert capacities == {p.node_id for p in peers if p.capabilities is not None}
    eligible = [
        Candidate(node_id=p.node_id, capabilities=p.capabilities)
        for p in peers
        if p.capabilities is not None and p.node_id != me
    ]
    expected = select_committee(IDENT, eligible, CONFIG.committee)
    committees = [a for a in actions if isinstance(a, SetCommittee)]
    assert len(committees) == 1 and committees[0].room_id == ROOM
    assert [relay for relay, _ in committees[0].relays] == list(expected)
    assert me not in dict(committees[0].relays) and node(7) not in dict(committees[0].relays)
    addresses = {p.node_id: p.address for p in peers}
    assert all(addresses[relay] == at for relay, at in committees[0].relays)
    assert directory.committee(ROOM) == committees[0].relays
    assert directory.counters.get_count(DirectoryCounter.NO_ADVERT) == 1
    directory.near_found(ROOM, peers, now=T0 + 2)  # the same view: no new committee
    assert not [a for a in drain(directory) if isinstance(a, SetCommittee)]
    assert directory.next_deadline() == T0 + 2 + CONFIG.refresh_interval


def test_a_room_with_no_eligible_peer_is_looked_up_again_soon() -> None:
    """RLY-7.2: while a room has no committee its near peers are asked for again after
    retry_interval, doubling after each empty lookup up to refresh_interval."""
    directory = CapabilityDirectory(node(1), config=CONFIG, now=T0)
    directory.track_room(ROOM, IDENT, now=T0)
    directory.on_timer(now=T0)
    drain(directory)
    directory.near_found(ROOM, near(3, without_advert=frozenset({1, 2, 3})), now=T0)
    assert directory.committee(ROOM) == ()
    waits = []
    now = T0
    for _ in range(6):
        deadline = directory.next_deadline()
        assert deadline is not None
        waits.append(deadline - now)
        now = deadline
        directory.on_timer(now=now)
        assert drain(directory) == [FindNear(room_id=ROOM, key=room_key(IDENT))]
        directory.near_found(ROOM, near(3, without_advert=frozenset({1, 2, 3})), now=now)
    assert waits == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]  # doubling, capped at refresh


def test_members_adverts_are_fetched_once_and_lapse() -> None:
    """RLY-7.3: a member without an entry is fetched once; its advertisement goes to the
    P2P core; RLY-7.1: an entry lapses entry_ttl after it was fetched, the P2P core
    forgets it and the committee is chosen again without it."""
    directory = CapabilityDirectory(node(1), config=CONFIG, now=T0)
    members = [(node(2), address(2)), (node(3), address(3))]
    directory.members_changed(members, now=T0)
    directory.members_changed(members, now=T0)  # still fetching: not asked twice
    assert drain(directory) == [FetchAdvert(node_id=n, address=a) for n, a in members]
    directory.advertised(node(2), address(2), caps(), now=T0)
    directory.advertised(node(3), address(3), None, now=T0)
    assert drain(directory) == [SetCapacity(node_id=node(2), capabilities=caps())]
    assert directory.capabilities(node(2)) == caps() and directory.capabilities(node(3)) is None
    directory.track_room(ROOM, IDENT, now=T0)
    directory.on_timer(now=T0)
    drain(directory)
    directory.near_found(
        ROOM, [NearPeer(node_id=node(2), address=address(2), capabilities=caps())], now=T0
    )
    assert directory.committee(ROOM) == ((node(2), address(2)),)
    drain(directory)
    directory.on_timer(now=T0 + CONFIG.entry_ttl)
    actions = drain(directory)
    assert SetCapacity(node_id=node(2), capabilities=None) in actions
    assert SetCommittee(room_id=ROOM, relays=()) in actions
    assert directory.counters.get_count(DirectoryCounter.EXPIRED) == 1


def test_members_reached_only_through_the_committee_make_the_room_degraded() -> None:
    """RLY-7.4: two members cut off from each other: the room's reach is none; once the
    room has a committee relay other than the member, the member counts as reached
    through it and the reach is some (the client keeps sending over P2P); a committee
    made of the unreachable member alone does not count."""
    net = RoomNet()
    a, b = net.add(2)
    join_closed(net, [a, b], [a, b])
    net.run(3)
    net.partition([a], [b])
    net.run(10)
    assert a.reach() is Reach.NONE
    a.set_committee(ROOM, [(b.node_id, b.address)])
    net.run(3)
    assert a.reach() is Reach.NONE
    a.set_committee(ROOM, [(b.node_id, b.address), (node(99), RELAY_ADDRESS)])
    net.run(3)
    assert a.reach() is Reach.SOME


def test_a_relay_that_is_a_member_never_sends_itself_a_copy() -> None:
    """RLY-3.1: a relay that is itself a member of the room (a client) forwards to every
    member except the requester and itself."""
    rig = Rig()
    a, b, c = rig.cores
    rig.relay = CommitteeRelay(node_id=c.node_id, now=T0)
    rig.request(a, relay_frame(1))
    assert rig.relay.next_action() == LookupRoom(dht_ident=IDENT)
    rig.lookup()
    sent = []
    while (action := rig.relay.next_action()) is not None:
        sent.append(action)
    assert [s.peer for s in sent if isinstance(s, SendApp)] == [b.node_id]
    assert rig.relay.counters.get_count(RelayCounter.FORWARDED) == 1


def test_the_committee_is_asked_only_when_no_member_can_bridge() -> None:
    """RLY-7.5: a and b cannot reach each other but c reaches both: c bridges, and the
    committee is not asked; with c gone too, the committee is asked."""
    net = RoomNet()
    a, b, c = net.add(3)
    join_closed(net, [a, b, c], [a, b, c])
    for core in (a, b, c):
        core.set_committee(ROOM, [(node(99), RELAY_ADDRESS)])
    net.run(3)
    net.partition([a], [b])
    net.run(10)
    mid = net.send(a, 40)
    net.run(20)
    assert mid in net.delivered(b)
    assert a.counters.get_count(P2PCounter.COMMITTEE_ASKED) == 0
    net.partition([a], [c])
    net.run(10)
    net.send(a, 41)
    net.run(20)
    assert a.counters.get_count(P2PCounter.COMMITTEE_ASKED) >= 1
