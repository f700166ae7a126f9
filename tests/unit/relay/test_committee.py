"""Committee relays: selection, the all-malicious analysis, and the relay core (RLY-1 to RLY-6)."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from railgun_ref.capacity import CapacitySharing, CapacitySharingConfig, DeviceClass
from railgun_ref.capacity.budget import BudgetCounter, Duty, SharingBudget
from railgun_ref.capacity.selection import Candidate
from railgun_ref.core.constants import APP_TOPIC_RELAY, APP_TOPIC_ROOM
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.geometry import distance
from railgun_ref.identity.keys import Identity
from railgun_ref.relay.committee import (
    CommitteeConfig,
    CommitteeRelay,
    LookupRoom,
    RelayCounter,
    RelayRefusal,
    all_malicious_finite,
    all_malicious_probability,
    room_key,
    select_committee,
)
from railgun_ref.transport.p2p import (
    Acked,
    AckFrame,
    Delivered,
    P2PCounter,
    P2PRoomCore,
    Receipt,
    RoomFrame,
    SendApp,
    decode_frame,
    encode_frame,
    receipt_message,
)
from railgun_ref.wire import cbor
from railgun_ref.wire.relay import RelayFrame, decode_relay_frame, encode_relay_frame
from tests.unit.capacity.helpers import caps
from tests.unit.transport.test_p2p import ROOM, T0, RoomNet, identity, message_id
from tests.unit.transport.test_p2p_closed import IDENT, join_closed, proven

RELAY_ADDRESS = ("127.0.0.1", 9_999)


def candidates(n: int) -> list[Candidate]:
    made = []
    for i in range(n):
        node = Identity.from_seed(i.to_bytes(32, "big")).node_id
        made.append(Candidate(node_id=node, capabilities=caps(upload_bandwidth=10_000 * (i + 1))))
    return made


# ------------------------------------------------------------------ RLY-1


def test_committee_is_the_best_by_capacity_of_the_nearest_pool() -> None:
    """RLY-1.1: of the `pool` eligible peers nearest the room key, the `size` best by score;
    the same whatever order the candidates come in; ineligible peers never sit."""
    pool = candidates(30)
    pool.append(
        Candidate(
            node_id=NodeId(room_key(IDENT)),  # as near as can be, but on a cellular link
            capabilities=caps(device_class=DeviceClass.MOBILE_CELLULAR),
        )
    )
    config = CommitteeConfig(size=3, pool=6)
    committee = select_committee(IDENT, pool, config)
    assert len(committee) == 3 and NodeId(room_key(IDENT)) not in committee
    eligible = [c for c in pool if c.capabilities.device_class is not DeviceClass.MOBILE_CELLULAR]
    nearest = sorted(eligible, key=lambda c: distance(c.node_id, room_key(IDENT)))[:6]
    best = sorted(nearest, key=lambda c: -c.capabilities.upload_bandwidth)[:3]
    assert set(committee) == {c.node_id for c in best}
    assert select_committee(IDENT, list(reversed(pool)), config) == committee


def test_all_malicious_probability() -> None:
    """RLY-6.1: with pool = size it is f^c; a larger pool makes it likelier; the finite
    (hypergeometric) value approaches the binomial one as the network grows."""
    assert all_malicious_probability(0.2, 5) == pytest.approx(0.2**5)
    assert all_malicious_probability(0.2, 5, 8) > 0.2**5
    assert all_malicious_probability(0.1, 5, 8) == pytest.approx(
        sum(__import__("math").comb(8, k) * 0.1**k * 0.9 ** (8 - k) for k in range(5, 9))
    )
    assert all_malicious_finite(100_000, 20_000, 5, 8) == pytest.approx(
        all_malicious_probability(0.2, 5, 8), rel=1e-3
    )
    assert all_malicious_finite(10, 4, 5, 8) == 0.0  # too few to fill 5 seats


# ------------------------------------------------------------------ RLY-2


def relay_frame(i: int, expires: float = T0 + 600, blob: bytes = b"sealed") -> RelayFrame:
    return RelayFrame(
        room_id=ROOM,
        dht_ident=IDENT,
        message_id=message_id(i),
        expires_ms=int(expires * 1000),
        blob=blob,
    )


def test_relay_frame_round_trip_and_refusals() -> None:
    """RLY-2.1: a RELAY frame decodes to itself; bad shapes get their error code."""
    frame = relay_frame(1)
    assert decode_relay_frame(encode_relay_frame(frame)) == frame
    good = frame.to_value()
    for change, code in [
        ({0: 2}, ErrorCode.UNSUPPORTED_VERSION),
        ({1: 7}, ErrorCode.UNKNOWN_TYPE),
        ({3: b"\x00" * 31}, ErrorCode.MALFORMED),
        ({4: b"\x00" * 15}, ErrorCode.MALFORMED),
        ({5: -1}, ErrorCode.MALFORMED),
        ({6: b""}, ErrorCode.MALFORMED),
        ({7: 0}, ErrorCode.MALFORMED),
    ]:
        with pytest.raises(RemoteProtocolError) as info:
            decode_relay_frame(cbor.encode({**good, **change}))
        assert info.value.code is code


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_relay_decoder_raises_only_remote_errors(data: bytes) -> None:
    """RLY-2.1: whatever the bytes, decoding fails only with RemoteProtocolError."""
    with contextlib.suppress(RemoteProtocolError):
        decode_relay_frame(data)


# ------------------------------------------------------------------ RLY-3, RLY-4


class Rig:
    """Three members of a closed room (real P2P cores) and one committee relay."""

    def __init__(self, budget: SharingBudget | None = None) -> None:
        self.net = RoomNet()
        self.cores = self.net.add(3)
        join_closed(self.net, self.cores, self.cores)
        self.relay = CommitteeRelay(budget=budget, now=T0)
        self.relay_id = identity(99).node_id
        self.records = [proven(c.identity, c.address[1]) for c in self.cores]

    def lookup(self) -> None:
        self.relay.members_found(IDENT, self.records, now=self.net.now)

    def request(self, core: P2PRoomCore, frame: RelayFrame) -> None:
        payload = encode_relay_frame(frame)
        self.relay.receive(core.node_id, core.address, APP_TOPIC_RELAY, payload, now=self.net.now)

    def pump(self) -> list[SendApp]:
        """Carry the relay's copies to members and their ACKs back; return what the relay
        sent to others than members (receipts to requesters)."""
        to_requesters: list[SendApp] = []
        by_address = {c.address: c for c in self.cores}
        for _ in range(4):
            while (action := self.relay.next_action()) is not None:
                if isinstance(action, LookupRoom):
                    continue
                target = by_address[action.address]
                if isinstance(decode_frame(action.payload), AckFrame):
                    to_requesters.append(action)
                    continue
                target.receive(self.relay_id, RELAY_ADDRESS, action.payload, now=self.net.now)
            for core in self.cores:
                while (out := core.next_action()) is not None:
                    self.net.outputs[core.node_id].append(out)
                    if isinstance(out, SendApp) and out.address == RELAY_ADDRESS:
                        self.relay.receive(
                            core.node_id, core.address, out.topic, out.payload, now=self.net.now
                        )
        return to_requesters


def test_relay_forwards_once_and_brings_receipts_back() -> None:
    """RLY-3.1, RLY-4.1: a member's request reaches every other member once; their receipts
    come back to the requester through the relay, verified; a repeated request is sent
    only to members that have not acknowledged."""
    rig = Rig()
    a, b, c = rig.cores
    rig.request(a, relay_frame(1))
    assert rig.relay.next_action() == LookupRoom(dht_ident=IDENT)
    rig.lookup()
    receipts = rig.pump()
    for member in (b, c):
        delivered = [x for x in rig.net.outputs[member.node_id] if isinstance(x, Delivered)]
        assert [d.message_id for d in delivered] == [message_id(1)]
    assert rig.relay.counters.get_count(RelayCounter.FORWARDED) == 2
    acked = {
        r.member
        for s in receipts
        for r in decode_frame(s.payload).receipts  # type: ignore[union-attr]
    }
    assert acked == {b.node_id, c.node_id}
    assert all(s.peer == a.node_id for s in receipts)
    rig.request(a, relay_frame(1))
    again = rig.pump()
    assert rig.relay.counters.get_count(RelayCounter.FORWARDED) == 2  # nobody left to send to
    assert rig.relay.counters.get_count(RelayCounter.DUPLICATE) == 1
    assert again  # the receipts it holds, at once


def test_strangers_expired_and_forged_receipts_are_refused() -> None:
    """RLY-3.1, RLY-4.1: a requester without a valid room record, an expired request and a
    receipt signed by someone else are refused and counted; nothing is forwarded."""
    rig = Rig()
    rig.lookup()
    outsider = P2PRoomCore(identity(50), ("127.0.0.1", 9_998), now=T0)
    rig.request(outsider, relay_frame(2))
    assert rig.relay.counters.get_count(RelayCounter.REJECTED, RelayRefusal.STRANGER) == 1
    rig.request(rig.cores[0], relay_frame(3, expires=T0 - 1))
    assert rig.relay.counters.get_count(RelayCounter.REJECTED, RelayRefusal.EXPIRED) == 1
    assert rig.relay.counters.get_count(RelayCounter.FORWARDED) == 0
    a, b, _c = rig.cores
    rig.request(a, relay_frame(4))

    forged = AckFrame(
        room_id=ROOM,
        message_id=message_id(4),
        receipts=(
            Receipt(
                member=b.node_id, signature=a.identity.sign(receipt_message(ROOM, message_id(4)))
            ),
        ),
    )
    rig.relay.receive(b.node_id, b.address, APP_TOPIC_ROOM, encode_frame(forged), now=T0)
    assert rig.relay.counters.get_count(RelayCounter.REJECTED, RelayRefusal.BAD_RECEIPT) == 1
    rig.relay.receive(a.node_id, a.address, APP_TOPIC_RELAY, b"\xff", now=T0)
    assert rig.relay.counters.total(RelayCounter.REJECTED) == 4


def test_relaying_draws_on_the_sharing_budget() -> None:
    """RLY-3.2, CAP-7.1, CAP-7.2: one `relay` slot per room in flight, each copy charged;
    a copy over the bandwidth is not sent (counted); the slot frees once the room's
    messages expire."""
    sharing = CapacitySharing(caps(upload_bandwidth=400), CapacitySharingConfig(), now=T0)
    shared = SharingBudget(sharing)  # 200 B/s shared: one copy of ~90 bytes fits twice
    rig = Rig(budget=shared)
    rig.lookup()
    a = rig.cores[0]
    for i in range(5, 15):
        rig.request(a, relay_frame(i, expires=T0 + 10, blob=b"x" * 40))
    assert 1 <= rig.relay.counters.get_count(RelayCounter.FORWARDED) < 20
    assert rig.relay.counters.get_count(RelayCounter.THROTTLED) >= 1
    assert shared.connections(Duty.RELAY) == 1
    assert shared.counters.get_count(BudgetCounter.REFUSED_BANDWIDTH, Duty.RELAY) >= 1
    rig.relay.on_timer(now=T0 + 11)
    assert rig.relay.in_flight() == 0 and shared.connections(Duty.RELAY) == 0


def test_no_slot_no_relaying() -> None:
    """RLY-3.2, CAP-7.2: a relay whose connection slots are all taken refuses a new room."""
    sharing = CapacitySharing(caps(max_relay_connections=1), CapacitySharingConfig(), now=T0)
    shared = SharingBudget(sharing)
    shared.open(Duty.STORAGE, "someone")
    rig = Rig(budget=shared)
    rig.lookup()
    rig.request(rig.cores[0], relay_frame(20))
    assert rig.relay.counters.get_count(RelayCounter.REJECTED, RelayRefusal.BUDGET) == 1
    assert shared.refused(Duty.RELAY) == 1


def test_a_relay_is_given_only_routing_fields_and_ciphertext() -> None:
    """RLY-5.1: a request holds the room id, DHT ident, message id, expiry and the sealed
    blob, nothing else; what the relay forwards is a ROOM frame with no hops and no
    relay_to, so it learns no further member list from the requester."""
    assert set(relay_frame(1).to_value()) == set(range(7))
    rig = Rig()
    rig.lookup()
    rig.request(rig.cores[0], relay_frame(30))
    copies = [a for a in iter(rig.relay.next_action, None) if isinstance(a, SendApp)]
    assert len(copies) == 2
    for copy in copies:
        frame = decode_frame(copy.payload)
        assert isinstance(frame, RoomFrame)
        assert (frame.hops, frame.relay_to, frame.blob) == (0, (), b"sealed")


class RelayNode:
    """A committee relay plugged into `RoomNet` (which carries payloads without topics:
    a payload that parses as a RELAY request is one, anything else is a ROOM frame)."""

    def __init__(self, net: RoomNet, records: list[bytes]) -> None:
        self.core = CommitteeRelay(now=net.now)
        self.identity = identity(77)
        self.node_id = self.identity.node_id
        self.address = RELAY_ADDRESS
        self.records = records
        self.net = net

    def receive(self, sender: NodeId, address: Address, payload: bytes, *, now: float) -> None:
        try:
            decode_relay_frame(payload)
            topic = APP_TOPIC_RELAY
        except RemoteProtocolError:
            topic = APP_TOPIC_ROOM
        self.core.receive(sender, address, topic, payload, now=now)

    def next_action(self) -> SendApp | None:
        while (action := self.core.next_action()) is not None:
            if isinstance(action, LookupRoom):
                self.core.members_found(action.dht_ident, self.records, now=self.net.now)
                continue
            return action
        return None

    def next_deadline(self) -> float | None:
        return None

    def on_timer(self, *, now: float) -> None:
        self.core.on_timer(now=now)


def test_a_room_with_no_bridge_gets_through_its_committee() -> None:
    """RLY-6.1, RLY-3.1, RLY-4.1, HT-6.3: every member cut off from every other (no bridge
    possible): the sender asks its committee relay, which reaches each member once, and
    the members' receipts come back through it, so the sender's jobs settle."""
    net = RoomNet()
    cores = net.add(3)
    join_closed(net, cores, cores)
    a, b, c = cores
    relay = RelayNode(net, [proven(x.identity, x.address[1]) for x in cores])
    net.cores[RELAY_ADDRESS] = relay  # type: ignore[assignment]
    net.by_id[relay.node_id] = relay  # type: ignore[assignment]
    net.outputs[relay.node_id] = []
    net.partition([a], [b, c])
    net.partition([b], [c])
    for core in cores:
        core.set_committee(ROOM, [(relay.node_id, RELAY_ADDRESS)])
    net.run(4)
    mid = net.send(a, 40)
    net.run(30)
    assert net.delivered(b) == [mid] and net.delivered(c) == [mid]
    acks = [x for x in net.of(a, Acked) if isinstance(x, Acked)]
    assert {x.member for x in acks} == {b.node_id, c.node_id}
    assert {x.via for x in acks} == {relay.node_id}
    assert a.counters.get_count(P2PCounter.COMMITTEE_ASKED) >= 1
    assert relay.core.counters.get_count(RelayCounter.FORWARDED) >= 2
    assert a.pending() == 0
