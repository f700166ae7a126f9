"""Per-client blocking: members on the central path deliver to members off it (HT-7.3, HT-7.4).

The design's scenario 2: one client cannot reach the central service while the
others can. The cut-off client tells the room so in signed STATUS frames; a
member whose message the central service took (`settled_centrally`) delivers it
over P2P to every member that said it is off central, and to one whose notice
comes later within `recent_window`. Receivers deduplicate by message id, so a
copy from the central mailbox later on is not delivered twice (HT-4.3).
"""

import pytest

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.transport.p2p import (
    P2PConfig,
    P2PCounter,
    P2PRoomCore,
    Refusal,
    StatusFrame,
    decode_frame,
    encode_frame,
    status_message,
)
from railgun_ref.wire import cbor
from tests.unit.transport.test_p2p import ROOM, RoomNet, message_id

CONFIG = P2PConfig(
    probe_interval=1.0,
    probe_timeout=0.5,
    lookup_interval=1e6,
    announce_interval=1e6,
    status_interval=2.0,
    status_ttl=6.0,
    recent_window=60.0,
)


def central_send(net: RoomNet, core: P2PRoomCore, i: int) -> bytes:
    """`core` sends message i on the central path only (HT-3: no P2P job), and the
    central service takes it (its ACK)."""
    mid = message_id(i)
    blob = b"sealed %d" % i
    core.settled_centrally(
        room_id=ROOM, message_id=mid, blob=blob, expires_at=net.now + 3600, now=net.now
    )
    return mid


def room() -> tuple[RoomNet, list[P2PRoomCore]]:
    net = RoomNet(config=CONFIG)
    cores = net.add(4)
    net.join_all()
    net.run(3)
    return net, cores


def test_members_on_central_deliver_to_the_blocked_member_once() -> None:
    """HT-7.3, HT-7.4: c is off central; a's central message reaches c over P2P, once;
    b and d (on central) get no P2P copy: their copy is the central service's."""
    net, (a, b, c, d) = room()
    c.set_central_reachable(False, now=net.now)
    net.run(1)
    assert a.blocked_members(ROOM, now=net.now) == {c.node_id}
    assert b.blocked_members(ROOM, now=net.now) == {c.node_id}
    mid = central_send(net, a, 1)
    net.run(10)
    assert net.delivered(c) == [mid]
    assert net.delivered(b) == [] and net.delivered(d) == []
    assert net.acked(a) == {c.node_id}
    assert a.pending() == 0


def test_a_late_notice_still_gets_recent_messages() -> None:
    """HT-7.4: a message the central service took before c said it is off reaches c once
    its notice arrives (within recent_window), and only once however often it repeats."""
    net, (a, _b, c, _d) = room()
    mid = central_send(net, a, 2)
    net.run(2)
    assert net.delivered(c) == []
    c.set_central_reachable(False, now=net.now)
    net.run(12)  # several notices
    assert net.delivered(c) == [mid]
    assert a.counters.get_count(P2PCounter.COVER_STARTED) == 1


def test_back_on_central_stops_the_cover() -> None:
    """HT-7.3: c says it is back on central: members stop delivering to it over P2P."""
    net, (a, _b, c, _d) = room()
    c.set_central_reachable(False, now=net.now)
    net.run(1)
    c.set_central_reachable(True, now=net.now)
    net.run(1)
    assert a.blocked_members(ROOM, now=net.now) == frozenset()
    central_send(net, a, 3)
    net.run(5)
    assert net.delivered(c) == []


def test_a_notice_lapses_when_it_is_not_repeated() -> None:
    """HT-7.3: a member that said it is off central and then vanished stops counting
    as blocked once its notice expires (status_ttl)."""
    net, (a, _b, c, _d) = room()
    c.set_central_reachable(False, now=net.now)
    net.run(1)
    net.down.add(c.node_id)
    net.run(CONFIG.status_ttl + 1)
    assert a.blocked_members(ROOM, now=net.now) == frozenset()


def status(core: P2PRoomCore, off: bool, expires_ms: int, room_id: bytes = ROOM) -> StatusFrame:
    signature = core.identity.sign(status_message(room_id, off, expires_ms))
    return StatusFrame(room_id=room_id, off_central=off, expires_ms=expires_ms, signature=signature)


def test_forged_and_foreign_notices_are_refused() -> None:
    """HT-7.3: a notice signed by another key, from a non-member, expired, or for a room
    not joined is refused and counted; it marks nobody as blocked."""
    net, (a, b, c, _d) = room()
    outsider = RoomNet(config=CONFIG).add(1)[0]
    later = int((net.now + 5) * 1000)
    forged = status(b, True, later)  # b's signature, sent as c
    a.receive(c.node_id, c.address, encode_frame(forged), now=net.now)
    assert a.counters.get_count(P2PCounter.REJECTED, Refusal.BAD_STATUS) == 1
    a.receive(
        outsider.node_id, outsider.address, encode_frame(status(outsider, True, later)), now=net.now
    )
    assert a.counters.get_count(P2PCounter.STATUS_UNKNOWN_MEMBER) == 1
    old = status(c, True, int((net.now - 1) * 1000))
    a.receive(c.node_id, c.address, encode_frame(old), now=net.now)
    assert a.counters.get_count(P2PCounter.REJECTED, Refusal.EXPIRED) == 1
    other_room = status(c, True, later, room_id=b"another room")
    a.receive(c.node_id, c.address, encode_frame(other_room), now=net.now)
    assert a.counters.get_count(P2PCounter.REJECTED, Refusal.NOT_JOINED) == 1
    assert a.blocked_members(ROOM, now=net.now) == frozenset()
    a.receive(c.node_id, c.address, encode_frame(status(c, True, later)), now=net.now)
    assert a.blocked_members(ROOM, now=net.now) == {c.node_id}


def test_status_round_trip_and_bad_shapes() -> None:
    """HT-7.3: STATUS decodes to itself; a non-boolean flag or short signature is MALFORMED."""
    frame = StatusFrame(room_id=ROOM, off_central=True, expires_ms=5, signature=b"\x01" * 64)
    assert decode_frame(encode_frame(frame)) == frame
    for value in (
        {0: 1, 1: 6, 2: ROOM, 3: 1, 4: 5, 5: b"\x01" * 64},
        {0: 1, 1: 6, 2: ROOM, 3: True, 4: 5, 5: b"\x01" * 63},
        {0: 1, 1: 6, 2: ROOM, 3: True, 4: 5},
    ):
        with pytest.raises(RemoteProtocolError) as info:
            decode_frame(cbor.encode(value))
        assert info.value.code is ErrorCode.MALFORMED


def test_central_ack_ends_p2p_jobs_except_for_blocked_members() -> None:
    """HT-7.4: a message sent on both paths: the central ACK ends the P2P jobs of members
    on central (their copy is the mailbox's) but not the blocked member's."""
    net, (a, b, c, d) = room()
    c.set_central_reachable(False, now=net.now)
    net.run(1)
    net.down.update({b.node_id, c.node_id, d.node_id})  # nothing acknowledges yet
    mid = message_id(4)
    a.send(
        room_id=ROOM,
        message_id=mid,
        blob=b"both paths",
        expires_at=net.now + 3600,
        members=a.members(ROOM),
        now=net.now,
    )
    assert a.pending() == 3
    a.settled_centrally(
        room_id=ROOM, message_id=mid, blob=b"both paths", expires_at=net.now + 3600, now=net.now
    )
    assert a.pending() == 1
    net.down.clear()
    net.run(10)
    assert net.delivered(c) == [mid]
    assert net.acked(a) == {c.node_id}
