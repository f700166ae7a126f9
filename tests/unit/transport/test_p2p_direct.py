"""NAT-6.3 in the P2P room core: a member reached on a traversed path instead of its
announced address (the mapping its NAT gives only its bootstrap peer)."""

from railgun_ref.core.ids import Address
from railgun_ref.transport.p2p import P2PCounter, PeerStatus, RoomMember
from tests.unit.transport.test_p2p import ROOM, RoomNet

NOWHERE: Address = ("127.0.0.1", 9)  #: an announced address nothing answers on


def _announce(net: RoomNet, a_index: int, b_index: int, address: Address) -> None:
    """Core a learns core b's membership at `address`."""
    a, b = list(net.cores.values())[a_index], list(net.cores.values())[b_index]
    member = RoomMember(
        node_id=b.node_id,
        public_key=b.identity.public_key,
        address=address,
        expires_at=net.now + 3600,
    )
    a.add_members(ROOM, [member], now=net.now)


def test_a_direct_path_replaces_an_unreachable_announced_address() -> None:
    """HT-6.4 then NAT-6.3: unreachable at its announcement, reachable and acknowledging
    on the direct path; an unchanged announcement keeps the path."""
    net = RoomNet()
    a, b = net.add(2)
    net.join_all()
    _announce(net, 0, 1, NOWHERE)  # neither side's announcement reaches the other
    _announce(net, 1, 0, NOWHERE)
    net.run(5.0)
    assert a.unreachable_members() == frozenset({b.node_id})
    assert b.unreachable_members() == frozenset({a.node_id})
    a.set_direct(b.node_id, b.address, now=net.now)  # both sides' attempts ended direct
    b.set_direct(a.node_id, a.address, now=net.now)
    assert a.counters.get_count(P2PCounter.DIRECT_PATH) == 1
    net.run(2.0)
    assert a.status(b.node_id) is PeerStatus.REACHABLE and not a.unreachable_members()
    _announce(net, 0, 1, NOWHERE)  # the same record again (a lookup) keeps the path
    assert a.member_address(b.node_id) == b.address
    mid = net.send(a, 1)
    net.run(3.0)
    assert net.delivered(b) == [mid] and net.acked(a) == {b.node_id}


def test_a_new_announcement_drops_the_direct_path() -> None:
    """NAT-6.3: a new announced address (a new mapping) replaces the traversed path."""
    net = RoomNet()
    a, b, c = net.add(3)
    net.join_all()
    a.set_direct(b.node_id, c.address, now=net.now)
    assert a.member_address(b.node_id) == c.address
    _announce(net, 0, 1, b.address)  # unchanged announcement: the path stays
    assert a.member_address(b.node_id) == c.address
    _announce(net, 0, 1, NOWHERE)
    assert a.member_address(b.node_id) == NOWHERE
    a.set_direct(b.node_id, NOWHERE, now=net.now)  # the same address: nothing to do
    assert a.counters.get_count(P2PCounter.DIRECT_PATH) == 1
