"""The P2P path of closed rooms (ROOM-6.1, ROOM-6.2, ROOM-6.4): only the log's members are peers.

Uses the in-memory `RoomNet` of test_p2p. Cores join with a `ClosedRoom`
naming the members (as the rooms core's log would); records and peers of
anyone else are refused, a removed member stops being a peer at once, and
bridges carry frames only to members of their own log.
"""

from railgun_ref.core.errors import ErrorCode
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.records import sign_record
from railgun_ref.identity.keys import Identity
from railgun_ref.rooms.announce import room_announcement
from railgun_ref.rooms.ids import dht_ident_of
from railgun_ref.transport.p2p import (
    Announce,
    ClosedRoom,
    LookupMembers,
    MembersChanged,
    P2PCounter,
    P2PRoomCore,
    RoomMember,
    encode_announcement,
    member_from_record,
)
from tests.unit.transport.test_p2p import ROOM, T0, RoomNet, identity

SECRET = bytes(range(32))
IDENT = dht_ident_of(SECRET)


def closed(core: P2PRoomCore, members: list[Identity]) -> ClosedRoom:
    host, port = core.address
    return ClosedRoom(
        dht_ident=IDENT,
        announcement=room_announcement(
            SECRET, publisher=core.identity.public_key, host=host, port=port
        ),
        members=frozenset(m.public_key for m in members),
    )


def record(who: Identity, value: bytes) -> bytes:
    signed = sign_record(
        who,
        key_type=KeyType.ROOM,
        ident=IDENT,
        seq=1,
        expires_ms=int((T0 + 600) * 1000),
        value=value,
    )
    return signed.encode()


def proven(who: Identity, port: int, secret: bytes = SECRET) -> bytes:
    return record(
        who, room_announcement(secret, publisher=who.public_key, host="127.0.0.1", port=port)
    )


def join_closed(net: RoomNet, cores: list[P2PRoomCore], members: list[P2PRoomCore]) -> None:
    keys = [c.identity for c in members]
    for core in cores:
        core.join(ROOM, now=net.now, closed=closed(core, keys))
        core.add_members(
            ROOM,
            [
                RoomMember(
                    node_id=m.node_id,
                    public_key=m.identity.public_key,
                    address=m.address,
                    expires_at=net.now + 3600,
                )
                for m in members
            ],
            now=net.now,
        )
    net.pump()


def test_only_members_with_a_proof_become_peers() -> None:
    """ROOM-6.1, ROOM-6.2: the DHT ident and the proof are used; non-members, records
    without a proof and proofs from another secret are refused and counted."""
    net = RoomNet()
    (a,) = net.add(1)
    bob, mallory = identity(20), identity(21)
    a.join(ROOM, now=T0, closed=closed(a, [a.identity, bob]))
    net.pump()
    (announce,) = net.of(a, Announce)
    (lookup,) = net.of(a, LookupMembers)
    assert isinstance(announce, Announce) and isinstance(lookup, LookupMembers)
    assert announce.dht_ident == lookup.dht_ident == IDENT != ROOM
    records = [
        proven(bob, 5000),
        proven(mallory, 5001),  # knows the secret, not a member (a removed member, say)
        record(mallory, encode_announcement(("127.0.0.1", 5002))),  # an open room's value
        proven(mallory, 5003, secret=bytes(32)),  # a guessed secret
    ]
    assert a.members_found(ROOM, records, now=T0) == 1
    assert a.members(ROOM) == {bob.node_id: bob.public_key}
    counters = a.counters
    assert counters.get_count(P2PCounter.REJECTED_MEMBER, ErrorCode.FORBIDDEN) == 1
    assert counters.get_count(P2PCounter.REJECTED_MEMBER, ErrorCode.MALFORMED) == 1
    assert counters.get_count(P2PCounter.REJECTED_MEMBER, ErrorCode.WRONG_KEY) == 1


def test_a_removed_member_stops_being_a_peer_and_a_new_one_is_admitted() -> None:
    """ROOM-6.1: set_members drops a removed member's peer entry and jobs at once, and
    admits a waiting publisher (valid proof) the moment the log counts it."""
    net = RoomNet()
    a, b, c = net.add(3)
    join_closed(net, [a, b, c], [a, b, c])
    newcomer = identity(30)
    assert a.members_found(ROOM, [proven(newcomer, 6000)], now=net.now) == 0
    net.send(a, 1)
    net.cut.add(frozenset({a.node_id, c.node_id}))  # c's receipt cannot come back
    after = [a.identity.public_key, b.identity.public_key, newcomer.public_key]
    for member in (a, b):  # both logs counted the removal
        member.set_members(ROOM, after, now=net.now)
    net.pump()
    assert set(a.members(ROOM)) == {b.node_id, newcomer.node_id}
    changed = net.of(a, MembersChanged)
    assert isinstance(changed[-1], MembersChanged)
    assert changed[-1].members == {b.node_id, newcomer.node_id}
    net.send(a, 2)
    net.run(5)
    assert bytes(15) + b"\x02" not in net.delivered(c)  # nothing sent after the removal


def test_bridges_relay_only_to_members_of_their_own_log() -> None:
    """ROOM-6.4, HT-6.5: a bridge whose log removed b2 does not carry frames to it."""
    net = RoomNet()
    a1, x, b1, b2 = net.add(4)
    everyone = [a1, x, b1, b2]
    join_closed(net, everyone, everyone)
    for bridge in (x, b1):
        bridge.set_members(ROOM, [c.identity.public_key for c in (a1, x, b1)], now=net.now)
    a1.set_members(ROOM, [c.identity.public_key for c in (a1, x, b1, b2)], now=net.now)
    net.partition([a1], [b1, b2])
    net.run(4)
    mid = net.send(a1, 7)
    net.run(20)
    assert net.delivered(b1) == [mid]  # relayed by x
    assert net.delivered(b2) == []  # x's log does not count b2: no frame for it
    assert b2.node_id not in x.members(ROOM)


def test_readdress_announces_the_observed_address_at_once_re_signed() -> None:
    """HT-6.7: behind a NAT the member announces the address its peers observe: every room
    is announced again at once, a closed room with its announcement re-signed for the new
    address (the proof of ROOM-6.2 still verifies, and names the new host and port)."""
    net = RoomNet()
    (a,) = net.add(1)
    a.join(ROOM, now=net.now, closed=closed(a, [a.identity]))
    net.pump()
    net.outputs[a.node_id].clear()
    observed = ("198.18.2.2", 40000)
    fresh = room_announcement(SECRET, publisher=a.identity.public_key, host=observed[0], port=40000)
    a.readdress(observed, announcements={ROOM: fresh}, now=net.now + 0.1)
    net.pump()
    announced = net.of(a, Announce)
    assert a.address == observed
    assert announced and isinstance(announced[0], Announce) and announced[0].value == fresh
    member = member_from_record(record(a.identity, fresh), room_id=IDENT, now=T0, closed=True)
    assert member.address == observed
