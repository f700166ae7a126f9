"""PRIV-2.1 on the P2P path: every frame is padded to a bucket; unpadded ones are refused."""

import dataclasses

from railgun_ref.core.errors import ErrorCode
from railgun_ref.privacy.padding import FRAME_BUCKETS
from railgun_ref.transport.p2p import P2PCounter, ProbeFrame, encode_frame
from tests.unit.transport.test_p2p import FAST, RoomNet


def test_padded_room_delivers_and_every_frame_is_a_bucket() -> None:
    """PRIV-2.1: ROOM, ACK and PROBE frames all arrive as buckets, and delivery works."""
    net = RoomNet(config=dataclasses.replace(FAST, pad_frames=True))
    cores = net.add(3)
    sizes: list[int] = []
    for core in cores:  # what every receiver (and any relay between) is handed
        inner = core.receive

        def receive(*args: object, inner=inner, **kwargs: object) -> None:  # type: ignore[no-untyped-def]
            sizes.append(len(args[2]))  # type: ignore[arg-type]
            inner(*args, **kwargs)  # type: ignore[arg-type]

        core.receive = receive  # type: ignore[method-assign]
    net.join_all()
    net.run(3)
    sender, *others = cores
    mid = net.send(sender, 1)
    net.run(5)
    assert all(net.delivered(o) == [mid] for o in others)
    assert net.acked(sender) == {o.node_id for o in others}
    assert sizes and set(sizes) <= set(FRAME_BUCKETS)


def test_an_unpadded_frame_is_refused_with_a_counter() -> None:
    """PRIV-2.2: on a padded P2P path an unpadded frame is refused and counted."""
    net = RoomNet(config=dataclasses.replace(FAST, pad_frames=True))
    a, b = net.add(2)
    b.receive(a.node_id, a.address, encode_frame(ProbeFrame(nonce=7)), now=net.now)
    assert b.counters.get_count(P2PCounter.REJECTED, ErrorCode.MALFORMED) == 1
    assert b.next_action() is None
