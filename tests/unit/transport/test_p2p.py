"""The P2P room path: membership, direct delivery, receipts, retries, reach, bridges (HT-6.x).

`RoomNet` is an in-memory network of `P2PRoomCore`s (h11 `ConnectionPair`
style, no sockets): each core has an address; a `SendApp` is delivered to
the core at that address after `latency`, unless the link between the two
nodes is cut. Time advances by jumping to the earliest deadline.
"""

import contextlib
import heapq
import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.records import sign_record
from railgun_ref.identity.keys import Identity
from railgun_ref.transport import p2p as p2p_module
from railgun_ref.transport.p2p import (
    Acked,
    AckFrame,
    Action,
    Announce,
    Delivered,
    DeliveryStalled,
    Frame,
    LookupMembers,
    MembersChanged,
    P2PConfig,
    P2PCounter,
    P2PRoomCore,
    PeerStatus,
    ProbeFrame,
    ReachabilityChanged,
    Receipt,
    Refusal,
    RoomFrame,
    RoomMember,
    SendApp,
    decode_announcement,
    decode_frame,
    encode_announcement,
    encode_frame,
    member_from_record,
    receipt_message,
)
from railgun_ref.transport.service import (
    HybridTransportConfig,
    HybridTransportService,
    SendP2P,
)
from railgun_ref.transport.state import Reach, TransportMode, TransportState
from railgun_ref.wire import cbor

T0 = 1_800_000_000.0
ROOM = b"room-1"
FAST = P2PConfig(probe_interval=1.0, probe_timeout=0.5, lookup_interval=1e6, announce_interval=1e6)


def identity(i: int) -> Identity:
    return Identity.from_seed(bytes([i]) * 32)


def message_id(i: int) -> bytes:
    return i.to_bytes(16, "big")


@dataclass
class RoomNet:
    """Cores wired through an in-memory network with cuttable links."""

    config: P2PConfig = FAST
    latency: float = 0.01
    now: float = T0
    cores: dict[Address, P2PRoomCore] = field(default_factory=dict)
    by_id: dict[NodeId, P2PRoomCore] = field(default_factory=dict)
    cut: set[frozenset[NodeId]] = field(default_factory=set)
    down: set[NodeId] = field(default_factory=set)
    queue: list[tuple[float, int, Address, NodeId, Address, bytes]] = field(default_factory=list)
    seq: "itertools.count[int]" = field(default_factory=itertools.count)
    outputs: dict[NodeId, list[Action]] = field(default_factory=dict)
    sent: int = 0

    def add(self, n: int) -> list[P2PRoomCore]:
        made = []
        for i in range(n):
            ident = identity(len(self.cores) + 1)
            address = ("127.0.0.1", 10_000 + len(self.cores))
            core = P2PRoomCore(ident, address, config=self.config, now=self.now)
            self.cores[address] = core
            self.by_id[core.node_id] = core
            self.outputs[core.node_id] = []
            made.append(core)
            del i
        return made

    def join_all(self, room: bytes = ROOM, cores: list[P2PRoomCore] | None = None) -> None:
        group = cores if cores is not None else list(self.cores.values())
        members = [
            RoomMember(
                node_id=c.node_id,
                public_key=c.identity.public_key,
                address=c.address,
                expires_at=self.now + 3600,
            )
            for c in group
        ]
        for core in group:
            core.join(room, now=self.now)
            core.add_members(room, members, now=self.now)
        self.pump()

    def partition(self, left: list[P2PRoomCore], right: list[P2PRoomCore]) -> None:
        for a in left:
            for b in right:
                self.cut.add(frozenset({a.node_id, b.node_id}))

    def pump(self) -> None:
        """Move every queued action of every core into the network or its output list."""
        moved = True
        while moved:
            moved = False
            for core in self.cores.values():
                while (action := core.next_action()) is not None:
                    moved = True
                    if isinstance(action, SendApp):
                        self.sent += 1
                        heapq.heappush(
                            self.queue,
                            (
                                self.now + self.latency,
                                next(self.seq),
                                action.address,
                                core.node_id,
                                core.address,
                                action.payload,
                            ),
                        )
                    else:
                        self.outputs[core.node_id].append(action)

    def run(self, duration: float) -> None:
        end = self.now + duration
        while True:
            self.pump()
            candidates = [self.queue[0][0]] if self.queue else []
            for core in self.cores.values():
                deadline = core.next_deadline()
                if deadline is not None:
                    candidates.append(max(deadline, self.now))
            when = min(candidates, default=end)
            if when > end:
                self.now = end
                return
            self.now = when
            while self.queue and self.queue[0][0] <= self.now:
                _, _, to, sender, sender_address, payload = heapq.heappop(self.queue)
                target = self.cores.get(to)
                if (
                    target is None
                    or target.node_id in self.down
                    or sender in self.down
                    or frozenset({sender, target.node_id}) in self.cut
                ):
                    continue
                target.receive(sender, sender_address, payload, now=self.now)
            for core in self.cores.values():
                deadline = core.next_deadline()
                if deadline is not None and deadline <= self.now:
                    core.on_timer(now=self.now)

    def of(self, core: P2PRoomCore, kind: type) -> list[Action]:
        return [a for a in self.outputs[core.node_id] if isinstance(a, kind)]

    def delivered(self, core: P2PRoomCore) -> list[bytes]:
        return [a.message_id for a in self.of(core, Delivered) if isinstance(a, Delivered)]

    def acked(self, core: P2PRoomCore) -> set[NodeId]:
        return {a.member for a in self.of(core, Acked) if isinstance(a, Acked)}

    def reach(self, core: P2PRoomCore) -> Reach:
        changes = [a for a in self.of(core, ReachabilityChanged)]
        assert changes
        last = changes[-1]
        assert isinstance(last, ReachabilityChanged)
        return last.reach

    def send(self, core: P2PRoomCore, i: int, room: bytes = ROOM) -> bytes:
        mid = message_id(i)
        core.send(
            room_id=room,
            message_id=mid,
            blob=b"ciphertext %d" % i,
            expires_at=self.now + 3600,
            members=core.members(room),
            now=self.now,
        )
        return mid


# ------------------------------------------------------------- codec (HT-6.2)


def test_frames_round_trip() -> None:
    """HT-6.2: every frame type encodes to deterministic CBOR and decodes to itself."""
    frames: list[Frame] = [
        RoomFrame(room_id=ROOM, message_id=message_id(1), expires_ms=5, blob=b"x"),
        RoomFrame(
            room_id=ROOM,
            message_id=message_id(2),
            expires_ms=5,
            blob=b"x",
            hops=2,
            relay_to=(NodeId(b"\x05" * 32),),
        ),
        AckFrame(
            room_id=ROOM,
            message_id=message_id(1),
            receipts=(Receipt(member=NodeId(b"\x01" * 32), signature=b"\x02" * 64),),
        ),
        ProbeFrame(nonce=7),
        ProbeFrame(nonce=7, answer=True),
    ]
    for frame in frames:
        assert decode_frame(encode_frame(frame)) == frame


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ({0: 2, 1: 3, 2: 1}, ErrorCode.UNSUPPORTED_VERSION),
        ({0: 1, 1: 9, 2: 1}, ErrorCode.UNKNOWN_TYPE),
        ({0: 1, 1: 3}, ErrorCode.MALFORMED),
        ({0: 1, 1: 1, 2: b"", 3: b"\x00" * 16, 4: 1, 5: b"x", 6: 0, 7: []}, ErrorCode.MALFORMED),
        ({0: 1, 1: 1, 2: b"r", 3: b"\x00" * 15, 4: 1, 5: b"x", 6: 0, 7: []}, ErrorCode.MALFORMED),
        ({0: 1, 1: 1, 2: b"r", 3: b"\x00" * 16, 4: 1, 5: b"x", 6: 99, 7: []}, ErrorCode.MALFORMED),
        (
            {0: 1, 1: 1, 2: b"r", 3: b"\x00" * 16, 4: 1, 5: b"x", 6: 0, 7: [b"\x01" * 32] * 2},
            ErrorCode.MALFORMED,
        ),
        ({0: 1, 1: 2, 2: b"r", 3: b"\x00" * 16, 4: []}, ErrorCode.MALFORMED),
        ({0: 1, 1: 2, 2: b"r", 3: b"\x00" * 16, 4: [[b"\x01" * 32, b"s"]]}, ErrorCode.MALFORMED),
        ([1, 2, 3], ErrorCode.MALFORMED),
    ],
)
def test_decoder_refuses_bad_frames(value: object, code: ErrorCode) -> None:
    """HT-6.2: a frame of the wrong version, type or shape is refused with its error code."""
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(cbor.encode(value))
    assert info.value.code is code


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoder_raises_only_remote_errors(data: bytes) -> None:
    """HT-6.2: whatever the bytes, decoding fails only with RemoteProtocolError."""
    with contextlib.suppress(RemoteProtocolError):
        decode_frame(data)


def test_garbage_is_counted_not_raised() -> None:
    """HT-6.2: a core fed garbage counts it under rejected.<code> and goes on."""
    net = RoomNet()
    a, b = net.add(2)
    net.join_all()
    a.receive(b.node_id, b.address, b"\xff\x00garbage", now=net.now)
    a.receive(b.node_id, b.address, cbor.encode({0: 1, 1: 42, 2: 0}), now=net.now)
    assert a.counters.get_count(P2PCounter.REJECTED, ErrorCode.MALFORMED) == 1
    assert a.counters.get_count(P2PCounter.REJECTED, ErrorCode.UNKNOWN_TYPE) == 1


# --------------------------------------------------------- membership (HT-6.1)


def test_announcement_and_member_records() -> None:
    """HT-6.1: the announcement value is {0: 1, 1: host, 2: port}; records are fully checked."""
    alice = identity(1)
    value = encode_announcement(("127.0.0.1", 4000))
    assert decode_announcement(value) == ("127.0.0.1", 4000)
    record = sign_record(
        alice,
        key_type=KeyType.ROOM,
        ident=ROOM,
        seq=1,
        expires_ms=int((T0 + 600) * 1000),
        value=value,
    )
    member = member_from_record(record.encode(), room_id=ROOM, now=T0)
    assert member.node_id == alice.node_id
    assert member.public_key == alice.public_key
    assert member.address == ("127.0.0.1", 4000)
    with pytest.raises(RemoteProtocolError) as wrong_room:
        member_from_record(record.encode(), room_id=b"other", now=T0)
    assert wrong_room.value.code is ErrorCode.WRONG_KEY
    with pytest.raises(RemoteProtocolError) as expired:
        member_from_record(record.encode(), room_id=ROOM, now=T0 + 601)
    assert expired.value.code is ErrorCode.EXPIRED
    forged = record.encode()[:-1] + bytes([record.encode()[-1] ^ 1])
    with pytest.raises(RemoteProtocolError) as bad:
        member_from_record(forged, room_id=ROOM, now=T0)
    assert bad.value.code is ErrorCode.BAD_SIGNATURE
    with pytest.raises(RemoteProtocolError):
        decode_announcement(cbor.encode({0: 1, 1: 5, 2: 80}))


def test_join_announces_and_looks_up_then_members_found() -> None:
    """HT-6.1: joining asks the driver to announce and to look members up; records feed it."""
    net = RoomNet()
    (a,) = net.add(1)
    a.join(ROOM, now=T0)
    net.pump()
    announce = net.of(a, Announce)
    assert announce and isinstance(announce[0], Announce)
    assert decode_announcement(announce[0].value) == a.address
    assert net.of(a, LookupMembers)
    bob = identity(9)
    record = sign_record(
        bob,
        key_type=KeyType.ROOM,
        ident=ROOM,
        seq=1,
        expires_ms=int((T0 + 600) * 1000),
        value=encode_announcement(("127.0.0.1", 5000)),
    )
    assert a.members_found(ROOM, [record.encode(), b"junk"], now=T0) == 1
    assert a.counters.get_count(P2PCounter.REJECTED_MEMBER, ErrorCode.MALFORMED) == 1
    assert a.members(ROOM) == {bob.node_id: bob.public_key}
    net.pump()
    changed = net.of(a, MembersChanged)
    assert changed and isinstance(changed[-1], MembersChanged)
    assert changed[-1].members == {bob.node_id}


# ---------------------------------------------------- direct delivery (HT-6.3)


def test_room_of_four_delivers_to_everyone_once_with_receipts() -> None:
    """HT-6.3: direct delivery to every member, signed receipts become Acked."""
    net = RoomNet()
    cores = net.add(4)
    net.join_all()
    net.run(3)
    sender, *others = cores
    mid = net.send(sender, 1)
    net.run(5)
    for other in others:
        assert net.delivered(other) == [mid]
    assert net.acked(sender) == {o.node_id for o in others}
    assert sender.pending() == 0
    assert net.reach(sender) is Reach.ALL


def test_duplicate_copies_are_delivered_once_and_acked_every_time() -> None:
    """HT-6.3: a copy of a message already seen is acknowledged again, delivered once."""
    net = RoomNet()
    a, b = net.add(2)
    net.join_all()
    frame = RoomFrame(
        room_id=ROOM, message_id=message_id(3), expires_ms=int(T0 * 1000) + 9000, blob=b"c"
    )
    for _ in range(3):
        b.receive(a.node_id, a.address, encode_frame(frame), now=net.now)
    net.pump()
    assert net.delivered(b) == [message_id(3)]
    assert b.counters.get_count(P2PCounter.ROOM_DUPLICATE) == 2
    acks = [
        decode_frame(payload)
        for _, _, to, _, _, payload in net.queue
        if to == a.address and isinstance(decode_frame(payload), AckFrame)
    ]
    assert len(acks) == 3


def test_forged_receipt_does_not_settle() -> None:
    """HT-6.3: a receipt whose signature is not the member's is refused and counted."""
    net = RoomNet()
    a, b, c = net.add(3)
    net.join_all()
    net.down.add(b.node_id)
    mid = net.send(a, 4)
    forged = AckFrame(
        room_id=ROOM,
        message_id=mid,
        receipts=(
            Receipt(member=b.node_id, signature=c.identity.sign(receipt_message(ROOM, mid))),
        ),
    )
    a.receive(c.node_id, c.address, encode_frame(forged), now=net.now)
    net.pump()
    assert b.node_id not in net.acked(a)
    assert a.counters.get_count(P2PCounter.REJECTED, Refusal.BAD_RECEIPT) == 1


def test_retries_until_the_member_returns_then_stalls_and_revives() -> None:
    """HT-6.3: jobs retry with backoff; after max_attempts they stall; send() revives them."""
    config = P2PConfig(
        probe_interval=1.0,
        probe_timeout=0.5,
        max_attempts=3,
        max_bridges=0,
        lookup_interval=1e6,
        announce_interval=1e6,
    )
    net = RoomNet(config=config)
    a, b = net.add(2)
    net.join_all()
    net.down.add(b.node_id)
    mid = net.send(a, 5)
    net.run(30)
    stalled = net.of(a, DeliveryStalled)
    assert stalled and isinstance(stalled[0], DeliveryStalled)
    assert stalled[0].attempts == 3 and stalled[0].reason == "attempts"
    assert net.delivered(b) == []
    net.down.clear()
    net.send(a, 5)  # the service's periodic re-send
    net.run(5)
    assert net.delivered(b) == [mid]
    assert net.acked(a) == {b.node_id}


def test_a_message_is_encoded_once_for_every_member_and_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HT-6.3, HT-7.1: every copy of a message -- to each member, on each attempt -- is the
    same direct ROOM frame, so it is encoded once (not once to measure its size and again
    to send it, per copy); the copies still arrive and are acknowledged."""
    encoded: list[bytes] = []
    real_encode = p2p_module.encode_frame

    def counting_encode(frame: Frame) -> bytes:
        if isinstance(frame, RoomFrame):
            encoded.append(frame.message_id)
        return real_encode(frame)

    monkeypatch.setattr(p2p_module, "encode_frame", counting_encode)
    config = P2PConfig(
        probe_interval=1.0,
        probe_timeout=0.5,
        max_attempts=3,
        max_bridges=0,
        lookup_interval=1e6,
        announce_interval=1e6,
    )
    net = RoomNet(config=config)
    a, *others = net.add(4)
    net.join_all()
    net.down.update(o.node_id for o in others)
    mid, expires_at = message_id(7), net.now + 3600

    def send() -> None:
        members = a.members(ROOM)
        a.send(
            room_id=ROOM,
            message_id=mid,
            blob=b"x" * 300,
            expires_at=expires_at,
            members=members,
            now=net.now,
        )

    send()
    net.run(30)
    assert a.counters.get_count(P2PCounter.SEND_DIRECT) == 3 * len(others)
    net.down.clear()
    send()  # the service's re-send revives the stalled jobs
    net.run(5)
    assert all(net.delivered(o) == [mid] for o in others)
    assert net.acked(a) == {o.node_id for o in others}
    assert encoded.count(mid) == 1


def test_too_large_for_the_app_channel() -> None:
    """HT-6.7: a blob over 256 KiB is not sent, even in parts: DeliveryStalled(too_large)."""
    net = RoomNet()
    a, b = net.add(2)
    net.join_all()
    a.send(
        room_id=ROOM,
        message_id=message_id(6),
        blob=bytes(300_000),
        expires_at=T0 + 60,
        members=[b.node_id],
        now=net.now,
    )
    net.pump()
    stalled = net.of(a, DeliveryStalled)
    assert [s.reason for s in stalled if isinstance(s, DeliveryStalled)] == ["too_large"]


def test_not_joined_and_expired_frames_are_refused() -> None:
    """HT-6.3: a frame for a room this node did not join, or already expired, is refused."""
    net = RoomNet()
    a, b = net.add(2)
    net.join_all()
    other = RoomFrame(
        room_id=b"other", message_id=message_id(1), expires_ms=int(T0 * 1000) + 9000, blob=b"c"
    )
    old = RoomFrame(
        room_id=ROOM, message_id=message_id(2), expires_ms=int(T0 * 1000) - 1, blob=b"c"
    )
    b.receive(a.node_id, a.address, encode_frame(other), now=net.now)
    b.receive(a.node_id, a.address, encode_frame(old), now=net.now)
    net.pump()
    assert net.delivered(b) == []
    assert b.counters.get_count(P2PCounter.REJECTED, Refusal.NOT_JOINED) == 1
    assert b.counters.get_count(P2PCounter.REJECTED, Refusal.EXPIRED) == 1


# ------------------------------------------------------------ reach (HT-6.4)


def test_reach_follows_probes() -> None:
    """HT-6.4: members answer probes (all); one silent member makes reach `some`; back: all."""
    net = RoomNet()
    a, b, c = net.add(3)
    net.join_all()
    net.run(2)
    assert net.reach(a) is Reach.ALL
    net.down.add(c.node_id)
    net.run(5)
    assert net.reach(a) is Reach.SOME
    assert a.status(c.node_id) is PeerStatus.UNREACHABLE
    net.down.clear()
    net.run(3)
    assert net.reach(a) is Reach.ALL
    net.down.update({b.node_id, c.node_id})
    net.run(5)
    last = net.of(a, ReachabilityChanged)[-1]
    assert isinstance(last, ReachabilityChanged)
    assert last.reach is Reach.NONE and not last.anything_reachable


def _slow_link_timeouts(max_probe_timeout: float) -> tuple[int, PeerStatus]:
    """Two members 1.5 s apart each way (RTT 3 s, six times probe_timeout): the probe
    timeouts `a` counted in the minute after a two-minute warm-up, and b's status then."""
    config = P2PConfig(
        probe_interval=1.0,
        probe_timeout=0.5,
        max_probe_timeout=max_probe_timeout,
        lookup_interval=1e6,
        announce_interval=1e6,
    )
    net = RoomNet(config=config, latency=1.5)
    a, b = net.add(2)
    net.join_all()
    b.leave(ROOM, now=net.now)  # b only answers: its own probes would also answer a's
    net.run(120)
    before = a.counters.get_count(P2PCounter.PROBE_TIMEOUT)
    net.run(60)
    assert a.counters.get_count(P2PCounter.RTT_SAMPLES) > 0
    return a.counters.get_count(P2PCounter.PROBE_TIMEOUT) - before, a.status(b.node_id)


def test_probe_timeout_follows_the_measured_rtt() -> None:
    """HT-6.8: on a link slower than probe_timeout, answers that came late are RTT
    samples; the timeout grows to SRTT + 4 RTTVAR and probes stop timing out."""
    timeouts, status = _slow_link_timeouts(max_probe_timeout=16.0)
    assert timeouts == 0
    assert status is PeerStatus.REACHABLE


def test_probe_timeout_capped_at_probe_timeout_keeps_timing_out() -> None:
    """HT-6.8, the check can fail: with no room to grow, the same link times out."""
    timeouts, _ = _slow_link_timeouts(max_probe_timeout=0.5)
    assert timeouts > 10


def test_a_silent_member_is_unreachable_within_the_largest_timeout() -> None:
    """HT-6.8: a member that stops answering is unreachable after probe_failures probes
    of at most max_probe_timeout each, however long its RTT was."""
    config = P2PConfig(
        probe_interval=1.0,
        probe_timeout=0.5,
        max_probe_timeout=4.0,
        lookup_interval=1e6,
        announce_interval=1e6,
    )
    net = RoomNet(config=config, latency=1.5)
    a, b = net.add(2)
    net.join_all()
    net.run(60)
    assert a.status(b.node_id) is PeerStatus.REACHABLE
    net.down.add(b.node_id)
    net.run(config.probe_failures * (config.max_probe_timeout + config.probe_interval) + 3.0)
    assert a.status(b.node_id) is PeerStatus.UNREACHABLE


def test_partial_reach_drives_the_service_to_degraded() -> None:
    """HT-6.4, HT-1.3: reach `some` from the P2P core gives the service's `degraded` state."""
    net = RoomNet()
    a, _b, c = net.add(3)
    net.join_all()
    net.partition([a], [c])
    net.run(5)
    service = HybridTransportService(
        HybridTransportConfig(preferred_mode=TransportMode.P2P_ONLY),
        local_id=a.node_id,
        now=net.now,
    )
    last = net.of(a, ReachabilityChanged)[-1]
    assert isinstance(last, ReachabilityChanged)
    service.reachability(reach=last.reach, anything_reachable=last.anything_reachable, now=net.now)
    assert service.state is TransportState.DEGRADED


# ----------------------------------------------------------- bridges (HT-6.5)


def test_partition_with_a_bridge_gets_eventual_delivery() -> None:
    """HT-6.5: groups {a1, a2} and {b1, b2} cut apart, x reaches both: all get it, once."""
    net = RoomNet()
    a1, a2, b1, b2, x = net.add(5)
    net.join_all()
    net.partition([a1, a2], [b1, b2])
    net.run(4)
    assert net.reach(a1) is Reach.SOME
    mid = net.send(a1, 7)
    net.run(20)
    for core in (a2, b1, b2, x):
        assert net.delivered(core) == [mid]
    assert net.acked(a1) == {a2.node_id, b1.node_id, b2.node_id, x.node_id}
    via = {a.member: a.via for a in net.of(a1, Acked) if isinstance(a, Acked)}
    assert via[b1.node_id] == x.node_id and via[b2.node_id] == x.node_id
    assert x.counters.get_count(P2PCounter.RELAY_STARTED) == 2
    assert a1.pending() == 0 and x.pending() == 0


def test_partition_both_directions_and_many_messages() -> None:
    """HT-6.5: several senders on both sides of a partition with two bridges: exactly once."""
    net = RoomNet()
    left = net.add(3)
    right = net.add(3)
    bridges = net.add(2)
    net.join_all()
    net.partition(left, right)
    net.run(4)
    sent: dict[bytes, P2PRoomCore] = {}
    for i, core in enumerate(left + right):
        sent[net.send(core, 100 + i)] = core
    net.run(40)
    for core in left + right + bridges:
        got = net.delivered(core)
        assert len(got) == len(set(got))
        assert set(got) == {mid for mid, origin in sent.items() if origin is not core}
    for core in left + right:
        assert net.acked(core) == {c.node_id for c in net.cores.values() if c is not core}


def test_hop_limit_bounds_relay_chains() -> None:
    """HT-6.5: a chain a - x - y - b needs two relay levels; with one it does not arrive."""
    for hops, arrives in ((2, True), (1, False)):
        config = P2PConfig(
            probe_interval=1.0,
            probe_timeout=0.5,
            max_relay_hops=hops,
            lookup_interval=1e6,
            announce_interval=1e6,
        )
        net = RoomNet(config=config)
        a, x, y, b = net.add(4)
        net.join_all()
        net.partition([a], [y, b])
        net.partition([x], [b])
        net.run(4)
        mid = net.send(a, 8)
        net.run(40)
        assert (net.delivered(b) == [mid]) is arrives
        assert (b.node_id in net.acked(a)) is arrives


def test_relay_request_from_a_stranger_is_refused() -> None:
    """HT-6.5: only a known member of the room may ask this node to relay."""
    net = RoomNet()
    a, b = net.add(2)
    net.join_all()
    stranger = identity(77)
    frame = RoomFrame(
        room_id=ROOM,
        message_id=message_id(9),
        expires_ms=int(T0 * 1000) + 9000,
        blob=b"c",
        hops=1,
        relay_to=(b.node_id,),
    )
    a.receive(stranger.node_id, ("127.0.0.1", 9), encode_frame(frame), now=net.now)
    net.pump()
    assert a.counters.get_count(P2PCounter.RELAY_REFUSED_STRANGER) == 1
    assert a.pending() == 0
    assert net.of(a, LookupMembers)  # a stranger's frame makes it refresh the member list


def test_relay_quota() -> None:
    """HT-6.5: a node runs at most max_relay_jobs relay jobs for others."""
    config = P2PConfig(max_relay_jobs=1, lookup_interval=1e6, announce_interval=1e6)
    net = RoomNet(config=config)
    a, b, c, d = net.add(4)
    net.join_all()
    frame = RoomFrame(
        room_id=ROOM,
        message_id=message_id(10),
        expires_ms=int(T0 * 1000) + 9000,
        blob=b"c",
        hops=1,
        relay_to=(c.node_id, d.node_id),
    )
    b.receive(a.node_id, a.address, encode_frame(frame), now=net.now)
    assert b.counters.get_count(P2PCounter.RELAY_STARTED) == 1
    assert b.counters.get_count(P2PCounter.RELAY_REFUSED_QUOTA) == 1


def test_service_and_core_settle_the_outbox_over_bridges() -> None:
    """HT-6.3, HT-4.2: Acked from the core settles the service's outbox, bridges included."""
    net = RoomNet()
    a, b, _x = net.add(3)
    net.join_all()
    net.partition([a], [b])
    net.run(4)
    service = HybridTransportService(
        HybridTransportConfig(preferred_mode=TransportMode.P2P_ONLY),
        local_id=a.node_id,
        now=net.now,
    )
    service.reachability(reach=Reach.SOME, anything_reachable=True, now=net.now)
    service.send(
        room_id=ROOM,
        members=frozenset(a.members(ROOM)),
        blob=b"sealed",
        message_id=message_id(11),
        now=net.now,
    )
    while (action := service.next_action()) is not None:
        if isinstance(action, SendP2P):
            a.send(
                room_id=ROOM,
                message_id=action.entry.message_id,
                blob=action.entry.blob,
                expires_at=action.entry.expires_at,
                members=action.members,
                now=net.now,
            )
    net.run(20)
    for acked in net.of(a, Acked):
        assert isinstance(acked, Acked)
        service.p2p_acked(acked.message_id, acked.member, now=net.now)
    assert message_id(11) not in service.outbox


def _resends_on_a_slow_link(max_probe_timeout: float) -> tuple[int, int, int]:
    """Three members 1.5 s apart each way (RTT 3 s); after a warm-up that gives `a` RTT
    samples, `a` sends one message to b and c: (direct sends, bridge asks, deliveries)."""
    config = P2PConfig(
        probe_interval=1.0,
        probe_timeout=0.5,
        max_probe_timeout=max_probe_timeout,
        initial_backoff=0.3,
        max_backoff=2.0,
        lookup_interval=1e6,
        announce_interval=1e6,
    )
    net = RoomNet(config=config, latency=1.5)
    a, b, c = net.add(3)
    net.join_all()
    net.run(60)
    a.send(
        room_id=ROOM,
        message_id=message_id(9),
        blob=b"slow but alive",
        expires_at=net.now + 600,
        members=[b.node_id, c.node_id],
        now=net.now,
    )
    net.run(20)
    delivered = len(net.delivered(b)) + len(net.delivered(c))
    return (
        a.counters.get_count(P2PCounter.SEND_DIRECT),
        a.counters.get_count(P2PCounter.RELAY_ASKED),
        delivered,
    )


def test_resends_wait_for_the_measured_rtt() -> None:
    """HT-6.9: on a 3 s round trip, attempts are spaced by the probe timeout, so each
    member gets one or two copies and no bridge is asked for a member that is only slow."""
    sends, asked, delivered = _resends_on_a_slow_link(max_probe_timeout=16.0)
    assert delivered == 2
    assert sends <= 4 and asked == 0


def test_resends_at_the_bare_backoff_bring_bridges_in() -> None:
    """HT-6.9, the check can fail: with the timeout capped at the floor, the same link
    gets attempts every backoff, and after relay_after of them, bridges."""
    sends, asked, delivered = _resends_on_a_slow_link(max_probe_timeout=0.5)
    assert delivered == 2
    assert sends > 4 and asked > 0
