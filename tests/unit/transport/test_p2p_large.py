"""Large room messages on the P2P path: PART frames and reassembly (HT-7.1).

A body over 4 KiB falls into the 64 KiB padding bucket (ROOM-1.4); its sealed
blob does not fit one APP message, so the P2P path carries it in PART frames.
These tests seal real bodies of 20 KB and 60 KB and deliver them with no
central service at all (the cores of `RoomNet`, no sockets).
"""

import os

import pytest

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.identity.e2ee import open_room_message, seal_room_message
from railgun_ref.transport.p2p import (
    MAX_BLOB_SIZE,
    PART_SIZE,
    Acked,
    Delivered,
    DeliveryStalled,
    P2PConfig,
    P2PCounter,
    P2PRoomCore,
    PartFrame,
    Refusal,
    RoomFrame,
    decode_frame,
    encode_frame,
    part_count,
)
from railgun_ref.wire import cbor
from tests.unit.transport.test_p2p import ROOM, T0, RoomNet, message_id


def sealed(sender: P2PRoomCore, others: list[P2PRoomCore], size: int) -> tuple[bytes, bytes]:
    """A real sealed blob of a `size`-byte body for `others`; returns (blob, message id)."""
    return seal_room_message(
        sender.identity,
        room_id=ROOM,
        members=[o.identity.public_key for o in others],
        body=bytes(i % 251 for i in range(size)),
        sent_ms=int(T0 * 1000),
        random_bytes=os.urandom,
    )


def send_blob(net: RoomNet, core: P2PRoomCore, blob: bytes, mid: bytes) -> None:
    core.send(
        room_id=ROOM,
        message_id=mid,
        blob=blob,
        expires_at=net.now + 3600,
        members=core.members(ROOM),
        now=net.now,
    )


@pytest.mark.parametrize("size", [20_000, 60_000])
def test_large_bodies_arrive_in_parts_once_and_open(size: int) -> None:
    """HT-7.1, HT-7.2: a 20 KB or 60 KB body reaches every member over P2P, once, opens."""
    net = RoomNet()
    cores = net.add(3)
    net.join_all()
    net.run(3)
    sender, *others = cores
    blob, mid = sealed(sender, others, size)
    assert len(encode_frame(RoomFrame(room_id=ROOM, message_id=mid, expires_ms=1, blob=blob))) > (
        65536
    )
    send_blob(net, sender, blob, mid)
    net.run(10)
    for other in others:
        delivered = [a for a in net.of(other, Delivered) if isinstance(a, Delivered)]
        assert [d.message_id for d in delivered] == [mid]
        opened = open_room_message(other.identity, delivered[0].blob, room_id=ROOM)
        assert opened.body == bytes(i % 251 for i in range(size))
        assert other.counters.get_count(P2PCounter.PART_REASSEMBLED) == 1
    assert net.acked(sender) == {o.node_id for o in others}
    assert not net.of(sender, DeliveryStalled)
    assert sender.pending() == 0


def test_large_body_through_a_bridge() -> None:
    """HT-6.5, HT-7.1: a 60 KB body crosses a partition through a bridge, in parts."""
    net = RoomNet()
    a, b, x = net.add(3)
    net.join_all()
    net.partition([a], [b])
    net.run(4)
    blob, mid = sealed(a, [b, x], 60_000)
    send_blob(net, a, blob, mid)
    net.run(30)
    assert net.delivered(b) == [mid] and net.delivered(x) == [mid]
    assert net.acked(a) == {b.node_id, x.node_id}
    via = {ack.member: ack.via for ack in net.of(a, Acked) if isinstance(ack, Acked)}
    assert via[b.node_id] == x.node_id


def test_lost_receipt_for_a_large_message_is_answered_again() -> None:
    """HT-6.3, HT-7.2: parts of a message already delivered are acknowledged, not delivered."""
    net = RoomNet()
    a, b = net.add(2)
    net.join_all()
    blob = bytes(100_000)
    parts = [
        PartFrame(
            room_id=ROOM,
            message_id=message_id(3),
            expires_ms=int(T0 * 1000) + 60_000,
            index=i,
            total=len(blob),
            chunk=blob[i * PART_SIZE : (i + 1) * PART_SIZE],
        )
        for i in range(part_count(len(blob)))
    ]
    for _ in range(2):
        for part in parts:
            b.receive(a.node_id, a.address, encode_frame(part), now=net.now)
    net.pump()
    assert net.delivered(b) == [message_id(3)]
    assert b.counters.get_count(P2PCounter.ROOM_DUPLICATE) >= 1


def _part(index: int, total: int, *, expires_ms: int = int(T0 * 1000) + 60_000) -> PartFrame:
    length = min(PART_SIZE, total - index * PART_SIZE)
    return PartFrame(
        room_id=ROOM,
        message_id=message_id(9),
        expires_ms=expires_ms,
        index=index,
        total=total,
        chunk=b"\x01" * length,
    )


def test_parts_that_disagree_are_refused_and_counted() -> None:
    """HT-7.2: a part whose expiry (or other shared field) differs ends the reassembly."""
    net = RoomNet()
    a, b = net.add(2)
    net.join_all()
    b.receive(a.node_id, a.address, encode_frame(_part(0, 60_000)), now=net.now)
    changed = _part(1, 60_000, expires_ms=int(T0 * 1000) + 70_000)
    b.receive(a.node_id, a.address, encode_frame(changed), now=net.now)
    net.pump()
    assert b.counters.get_count(P2PCounter.REJECTED, Refusal.PART_MISMATCH) == 1
    assert net.delivered(b) == []


def test_reassembly_limit_and_timeout() -> None:
    """HT-7.2: at most max_reassemblies at once; an unfinished one ends after its timeout."""
    config = P2PConfig(
        max_reassemblies=1,
        reassembly_timeout=5.0,
        lookup_interval=1e6,
        announce_interval=1e6,
        probe_interval=1.0,
        probe_timeout=0.5,
    )
    net = RoomNet(config=config)
    a, b = net.add(2)
    net.join_all()
    b.receive(a.node_id, a.address, encode_frame(_part(0, 60_000)), now=net.now)
    other = PartFrame(
        room_id=ROOM,
        message_id=message_id(10),
        expires_ms=int(T0 * 1000) + 60_000,
        index=0,
        total=60_000,
        chunk=b"\x02" * PART_SIZE,
    )
    b.receive(a.node_id, a.address, encode_frame(other), now=net.now)
    assert b.counters.get_count(P2PCounter.REJECTED, Refusal.PART_BUSY) == 1
    net.run(6)
    assert b.counters.get_count(P2PCounter.PART_TIMEOUT) == 1
    b.receive(a.node_id, a.address, encode_frame(other), now=net.now)
    assert b.counters.get_count(P2PCounter.REJECTED, Refusal.PART_BUSY) == 1


@pytest.mark.parametrize(
    "value",
    [
        # index past the last part
        {0: 1, 1: 5, 2: ROOM, 3: b"\x00" * 16, 4: 1, 5: b"x", 6: 0, 7: [], 8: 1, 9: 1},
        # a middle part shorter than PART_SIZE
        {0: 1, 1: 5, 2: ROOM, 3: b"\x00" * 16, 4: 1, 5: b"x", 6: 0, 7: [], 8: 0, 9: 60_000},
        # total over MAX_BLOB_SIZE
        {
            0: 1,
            1: 5,
            2: ROOM,
            3: b"\x00" * 16,
            4: 1,
            5: b"x",
            6: 0,
            7: [],
            8: 0,
            9: MAX_BLOB_SIZE + 1,
        },
        # a key missing
        {0: 1, 1: 5, 2: ROOM, 3: b"\x00" * 16, 4: 1, 5: b"x", 6: 0, 7: [], 8: 0},
    ],
)
def test_malformed_parts_are_refused(value: dict[int, object]) -> None:
    """HT-7.1: a PART frame whose index, length or total is inconsistent is MALFORMED."""
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(cbor.encode(value))
    assert info.value.code is ErrorCode.MALFORMED


def test_part_round_trip() -> None:
    """HT-7.1: a PART frame decodes to itself."""
    part = _part(1, 60_000)
    assert decode_frame(encode_frame(part)) == part
