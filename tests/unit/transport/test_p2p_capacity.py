"""Bridges chosen by capacity and bridging within the sharing budget (HT-7.5, HT-7.6)."""

from railgun_ref.capacity import CapacitySharing, CapacitySharingConfig, DeviceClass, NatType
from railgun_ref.capacity.budget import BudgetCounter, Duty, SharingBudget
from railgun_ref.transport.p2p import Acked, P2PCounter, RoomFrame, encode_frame
from tests.unit.capacity.helpers import caps
from tests.unit.transport.test_p2p import ROOM, T0, RoomNet, message_id


def test_bridges_are_chosen_by_capacity_not_by_last_heard() -> None:
    """HT-7.5: with a and b cut apart, a asks the member with the best advertised capacity
    (x2, a desktop) rather than the one it heard last; a member whose advertisement rules
    the relay role out (x3, on a cellular link) is never asked."""
    net = RoomNet()
    a, b, x1, x2, x3 = net.add(5)
    net.join_all()
    net.partition([a], [b])
    net.run(4)
    a.set_capacity(x1.node_id, caps(device_class=DeviceClass.MOBILE_WIFI, upload_bandwidth=100_000))
    a.set_capacity(x2.node_id, caps())
    a.set_capacity(
        x3.node_id, caps(nat_type=NatType.SYMMETRIC, device_class=DeviceClass.MOBILE_CELLULAR)
    )
    mid = net.send(a, 1)
    net.run(20)
    via = {ack.member: ack.via for ack in net.of(a, Acked) if isinstance(ack, Acked)}
    assert via[b.node_id] == x2.node_id
    assert x2.counters.get_count(P2PCounter.RELAY_STARTED) == 1
    assert x3.counters.get_count(P2PCounter.RELAY_STARTED) == 0
    assert net.delivered(b) == [mid]


def test_bridging_draws_on_the_sharing_budget() -> None:
    """HT-7.6, CAP-7.2: a bridge holds one BRIDGE slot per member it relays to; with one
    slot left, a second target is refused and counted, and the slot frees when done."""
    net = RoomNet()
    a, b, c, d = net.add(4)
    net.join_all()
    sharing = CapacitySharing(caps(max_relay_connections=1), CapacitySharingConfig(), now=net.now)
    shared = SharingBudget(sharing)
    b.budget = shared
    frame = RoomFrame(
        room_id=ROOM,
        message_id=message_id(2),
        expires_ms=int(T0 * 1000) + 60_000,
        blob=b"sealed",
        hops=1,
        relay_to=(c.node_id, d.node_id),
    )
    b.receive(a.node_id, a.address, encode_frame(frame), now=net.now)
    assert b.counters.get_count(P2PCounter.RELAY_STARTED) == 1
    assert b.counters.get_count(P2PCounter.RELAY_REFUSED_QUOTA) == 1
    assert shared.counters.get_count(BudgetCounter.REFUSED_CONNECTIONS, Duty.BRIDGE) == 1
    assert shared.connections(Duty.BRIDGE) == 1
    net.run(5)
    assert shared.connections(Duty.BRIDGE) == 0
    assert shared.counters.get_count(BudgetCounter.BYTES_GRANTED, Duty.BRIDGE) >= len(b"sealed")


def test_bridging_waits_for_bandwidth() -> None:
    """HT-7.6: a relay attempt over the bandwidth budget waits (counted) and goes later."""
    net = RoomNet()
    a, b, c = net.add(3)
    net.join_all()
    # 200 B/s upload x 0.5: 100 B/s shared, a 100-byte burst
    sharing = CapacitySharing(caps(upload_bandwidth=200), CapacitySharingConfig(), now=net.now)
    b.budget = SharingBudget(sharing)
    for i in (3, 4):
        frame = RoomFrame(
            room_id=ROOM,
            message_id=message_id(i),
            expires_ms=int(T0 * 1000) + 60_000,
            blob=b"x" * 80,
            hops=1,
            relay_to=(c.node_id,),
        )
        b.receive(a.node_id, a.address, encode_frame(frame), now=net.now)
    assert b.counters.get_count(P2PCounter.RELAY_THROTTLED) == 1
    net.run(5)
    assert sorted(net.delivered(c)) == [message_id(3), message_id(4)]
