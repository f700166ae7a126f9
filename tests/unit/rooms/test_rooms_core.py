"""The rooms core: create, invite, accept, remove, leave, and every refusal (ROOM-2..ROOM-7)."""

import re

import pytest

from railgun_ref.conformance.traceability import SPEC_PATH
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.identity.e2ee import open_room_message, seal_room_message
from railgun_ref.rooms import (
    ChangeKind,
    InvitationLapsed,
    MembershipChanged,
    PersistChange,
    PersistRoom,
    Refusal,
    Role,
    RoomCounter,
    RoomsCore,
    RoomState,
    dht_ident_of,
    room_id_of,
    sign_change,
)
from railgun_ref.rooms.core import TRANSITIONS, Trigger, state_diagram
from railgun_ref.rooms.ids import require_closed_room_id

from .helpers import T0, RoomNet, byte_source, identity, room_of


def refusals(core: RoomsCore, code: ErrorCode) -> int:
    return core.counters.get_count(RoomCounter.CHANGES_REFUSED, code)


def test_create_makes_the_creator_the_only_member() -> None:
    """ROOM-2.1, ROOM-2.3, ROOM-3.2: a fresh secret, the room id derived from it, the creator
    an admin; the local name appears in no id, change or invitation."""
    core = RoomsCore(identity("alice"), random_bytes=byte_source("create"))
    room_id = core.create_room(name="family", now=T0)
    secret = core.secret(room_id)
    assert room_id == room_id_of(secret) != dht_ident_of(secret)
    assert b"family" not in room_id and len(room_id) == 32
    assert core.state(room_id) is RoomState.MEMBER
    assert core.members(room_id) == (identity("alice").public_key,)
    assert core.membership(room_id).members[identity("alice").public_key] is Role.ADMIN
    actions = [core.next_action() for _ in range(3)]
    assert [type(a) for a in actions] == [PersistRoom, PersistChange, MembershipChanged]
    assert core.next_action() is None
    invitation = core.invite(room_id, identity("bob").public_key, now=T0)
    for data in (*core.changes(room_id), invitation, room_id, dht_ident_of(secret)):
        assert b"family" not in data


def test_invited_members_agree_on_the_list() -> None:
    """ROOM-4.1..4.3, ROOM-7.2: invitations accepted, logs sent to the members on every
    change; every member computes the same member list."""
    net, room_id = room_of(["alice", "bob", "carol", "dave"])
    everyone = {"alice", "bob", "carol", "dave"}
    for name in everyone:
        assert net.members(name, room_id) == everyone
        assert net.cores[name].state(room_id) is RoomState.MEMBER
        assert net.cores[name].name(room_id) in ("test room", "")
    assert net.errors == []


def test_a_removed_member_is_no_longer_a_recipient() -> None:
    """ROOM-3.7, ROOM-5.1, ROOM-5.2: after removal, what members send does not open for it."""
    net, room_id = room_of(["alice", "bob", "carol"])
    net.cores["alice"].remove(room_id, net.key("carol"), now=T0 + 1)
    net.pump(now=T0 + 1)
    assert net.members("bob", room_id) == {"alice", "bob"}
    assert net.cores["carol"].state(room_id) is RoomState.REMOVED
    assert net.cores["carol"].members(room_id) == ()
    blob, _ = seal_room_message(
        identity("bob"),
        room_id=room_id,
        members=net.cores["bob"].members(room_id),
        body=b"after carol left",
        sent_ms=1,
        random_bytes=byte_source("msg"),
    )
    assert open_room_message(identity("alice"), blob, room_id=room_id).body == b"after carol left"
    with pytest.raises(RemoteProtocolError) as refused:
        open_room_message(identity("carol"), blob, room_id=room_id)
    assert refused.value.code is ErrorCode.FORBIDDEN


def test_leave() -> None:
    """ROOM-3.7: a member leaves; the others drop it; it cannot sign changes any more."""
    net, room_id = room_of(["alice", "bob"])
    net.cores["bob"].leave(room_id, now=T0 + 1)
    net.pump(now=T0 + 1)
    assert net.members("alice", room_id) == {"alice"}
    assert net.cores["bob"].state(room_id) is RoomState.LEFT
    with pytest.raises(LocalProtocolError):
        net.cores["bob"].invite(room_id, net.key("carol") if "carol" in net.cores else b"", now=T0)


def test_only_admins_remove_and_nobody_removes_the_creator() -> None:
    """ROOM-3.4, ROOM-3.7: a plain member's REMOVE does not count."""
    net, room_id = room_of(["alice", "bob", "carol"])
    with pytest.raises(LocalProtocolError):
        net.cores["bob"].remove(room_id, net.key("carol"), now=T0 + 1)
    forged = sign_change(
        identity("bob"),
        room_id=room_id,
        kind=ChangeKind.REMOVE,
        parents=net.cores["bob"]._log(room_id).heads(),
        issued_ms=int(T0 * 1000) + 5,
        subject=net.key("alice"),
    )
    with pytest.raises(RemoteProtocolError) as refused:
        net.cores["carol"].receive_changes(room_id, [forged.encoded], now=T0 + 1)
    assert refused.value.code is ErrorCode.FORBIDDEN
    assert net.members("carol", room_id) == {"alice", "bob", "carol"}
    assert refusals(net.cores["carol"], ErrorCode.FORBIDDEN) == 1


def test_outsider_changes_and_a_flood_of_join_attempts_are_refused() -> None:
    """ROOM-3.5, ROOM-7.3: ACCEPTs with no invitation, changes by non-members: typed
    refusals, counted, never stored, nobody added."""
    net, room_id = room_of(["alice", "bob"])
    alice = net.cores["alice"]
    heads = alice._log(room_id).heads()
    size = len(alice.changes(room_id))
    flood = []
    for i in range(300):
        outsider = identity(f"outsider-{i}")
        flood.append(
            sign_change(
                outsider,
                room_id=room_id,
                kind=ChangeKind.ADD if i % 2 else ChangeKind.LEAVE,
                parents=heads,
                issued_ms=i,
                subject=outsider.public_key if i % 2 == 0 else identity("x").public_key,
                expires_ms=i + 10 if i % 2 else 0,
            ).encoded
        )
    with pytest.raises(RemoteProtocolError) as refused:
        alice.receive_changes(room_id, flood, now=T0 + 1)
    assert refused.value.code is ErrorCode.FORBIDDEN
    assert refusals(alice, ErrorCode.FORBIDDEN) == 300
    assert len(alice.changes(room_id)) == size
    assert net.members("alice", room_id) == {"alice", "bob"}
    assert alice.next_action() is None  # nothing to persist, nothing to send


def test_forged_and_garbage_changes_are_refused() -> None:
    """ROOM-3.3: a flipped signature bit and bytes that are no change: typed, counted."""
    net, room_id = room_of(["alice", "bob"])
    bob = net.cores["bob"]
    real = sign_change(
        identity("alice"),
        room_id=room_id,
        kind=ChangeKind.REMOVE,
        parents=bob._log(room_id).heads(),
        issued_ms=int(T0 * 1000) + 9,
        subject=net.key("bob"),
    ).encoded
    forged = real[:-1] + bytes([real[-1] ^ 1])
    for bad, code in ((forged, ErrorCode.BAD_SIGNATURE), (b"\xa0", ErrorCode.MALFORMED)):
        with pytest.raises(RemoteProtocolError) as refused:
            bob.receive_changes(room_id, [bad], now=T0 + 1)
        assert refused.value.code is code
        assert refusals(bob, code) == 1
    assert net.members("bob", room_id) == {"alice", "bob"}


def test_removed_member_cannot_readd_itself() -> None:
    """ROOM-3.7, ROOM-3.8: after its removal, a member's ADD (of an accomplice) and a
    replayed ACCEPT of its old invitation are refused; a backdated ADD does not count."""
    net, room_id = room_of(["alice", "bob", "carol"])
    bob_log_before = net.cores["bob"]._log(room_id)
    old_heads = bob_log_before.heads()
    bob_accept = next(
        c
        for c in bob_log_before.ordered()
        if c.kind is ChangeKind.ACCEPT and c.signer == net.key("bob")
    )
    net.cores["alice"].remove(room_id, net.key("bob"), now=T0 + 1)
    net.pump(now=T0 + 1)
    carol = net.cores["carol"]
    bob = identity("bob")
    after = carol._log(room_id).heads()
    accomplice = identity("mallory").public_key
    readd = sign_change(
        bob,
        room_id=room_id,
        kind=ChangeKind.ADD,
        parents=after,
        issued_ms=int(T0 * 1000) + 2000,
        subject=accomplice,
        expires_ms=int(T0 * 1000) + 10_000,
    )
    replay = sign_change(
        bob,
        room_id=room_id,
        kind=ChangeKind.ACCEPT,
        parents=[*after, bob_accept.invitation],
        issued_ms=int(T0 * 1000) + 2000,
        invitation=bob_accept.invitation,
    )
    with pytest.raises(RemoteProtocolError) as refused:
        carol.receive_changes(room_id, [readd.encoded], now=T0 + 2)
    assert refused.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(RemoteProtocolError) as refused:
        carol.receive_changes(room_id, [replay.encoded], now=T0 + 2)
    assert refused.value.code is ErrorCode.REPLAY
    backdated = sign_change(
        bob,
        room_id=room_id,
        kind=ChangeKind.ADD,
        parents=old_heads,
        issued_ms=int(T0 * 1000),
        subject=accomplice,
        expires_ms=int(T0 * 1000) + 10_000,
    )
    assert carol.receive_changes(room_id, [backdated.encoded], now=T0 + 2) == 1
    membership = carol.membership(room_id)
    assert membership.refused[backdated.hash] is Refusal.REMOVED_CONCURRENTLY
    assert accomplice not in membership.invited
    assert net.members("carol", room_id) == {"alice", "carol"}


def test_removal_beats_a_concurrent_readd() -> None:
    """ROOM-3.8: in one partition alice removes carol; in the other, bob (an admin) removes
    and re-invites her and she accepts. Healed, carol is out everywhere: the re-add did
    not see alice's removal."""
    net = RoomNet(["alice", "bob", "carol"])
    alice = net.cores["alice"]
    room_id = alice.create_room(name="r", now=T0)
    alice.invite(room_id, net.key("bob"), now=T0, role=Role.ADMIN)
    alice.invite(room_id, net.key("carol"), now=T0)
    net.pump(now=T0)
    net.partition({"alice"}, {"bob", "carol"})
    alice.remove(room_id, net.key("carol"), now=T0 + 1)
    net.cores["bob"].remove(room_id, net.key("carol"), now=T0 + 1)
    net.cores["bob"].invite(room_id, net.key("carol"), now=T0 + 2)
    net.pump(now=T0 + 2)
    assert net.members("bob", room_id) == {"alice", "bob", "carol"}
    net.heal()
    net.sync(room_id, now=T0 + 3)
    for name in ("alice", "bob", "carol"):
        assert net.cores[name].membership(room_id).member_keys() == (
            alice.membership(room_id).member_keys()
        )
    assert net.members("alice", room_id) == net.members("bob", room_id) == {"alice", "bob"}
    assert net.cores["carol"].state(room_id) is RoomState.REMOVED


def test_invitation_refusals() -> None:
    """ROOM-4.2: forged, expired, for someone else, replayed: typed and counted."""
    net = RoomNet(["alice", "bob", "carol"])
    net.auto_accept = False
    alice, bob = net.cores["alice"], net.cores["bob"]
    room_id = alice.create_room(name="r", now=T0)
    invitation = alice.invite(room_id, net.key("bob"), now=T0, ttl=60)
    forged = invitation[:-1] + bytes([invitation[-1] ^ 1])
    cases = [
        (bob, forged, T0, ErrorCode.BAD_SIGNATURE),
        (bob, invitation, T0 + 61, ErrorCode.EXPIRED),
        (net.cores["carol"], invitation, T0, ErrorCode.FORBIDDEN),
        (bob, b"\x00", T0, ErrorCode.MALFORMED),
    ]
    for core, data, now, code in cases:
        with pytest.raises(RemoteProtocolError) as refused:
            core.receive_invitation(data, now=now)
        assert refused.value.code is code
        assert core.counters.get_count(RoomCounter.INVITATIONS_REFUSED, code) == 1
    assert bob.receive_invitation(invitation, now=T0 + 1) == room_id
    bob.accept(room_id, now=T0 + 1)
    with pytest.raises(RemoteProtocolError) as refused:
        bob.receive_invitation(invitation, now=T0 + 2)
    assert refused.value.code is ErrorCode.REPLAY


def test_an_unaccepted_invitation_lapses_on_the_timer() -> None:
    """ROOM-4.3, ROOM-7.1: next_deadline is the expiry; on_timer reports the lapse once."""
    net = RoomNet(["alice", "bob"])
    net.auto_accept = False
    room_id = net.cores["alice"].create_room(name="r", now=T0)
    net.cores["alice"].invite(room_id, net.key("bob"), now=T0, ttl=30)
    net.pump(now=T0)
    for name in ("alice", "bob"):
        core = net.cores[name]
        assert core.next_deadline() == pytest.approx(T0 + 30)
        core.on_timer(now=T0 + 29)
        assert core.next_action() is None
        core.on_timer(now=T0 + 31)
        assert core.next_action() == InvitationLapsed(room_id=room_id, invitee=net.key("bob"))
        assert core.next_deadline() is None
    assert net.cores["bob"].state(room_id) is RoomState.EXPIRED
    with pytest.raises(LocalProtocolError):
        net.cores["bob"].accept(room_id, now=T0 + 31)


def test_plain_name_rooms_are_refused() -> None:
    """ROOM-2.4: a room named by a plain name has no log and is refused with a clear error."""
    core = RoomsCore(identity("alice"), random_bytes=byte_source("legacy"))
    with pytest.raises(LocalProtocolError, match="plain name"):
        require_closed_room_id(b"general")
    with pytest.raises(LocalProtocolError, match="plain name"):
        core.members(b"general") or core.changes(b"general")
    with pytest.raises(RemoteProtocolError):
        core.receive_changes(b"general", [], now=T0)


def test_transitions_table() -> None:
    """ROOM-7.1: moves not in the table raise; the spec embeds the generated diagram."""
    core = RoomsCore(identity("alice"), random_bytes=byte_source("t"))
    room_id = core.create_room(name="r", now=T0)
    with pytest.raises(LocalProtocolError):
        core._move(core._room(room_id), Trigger.ACCEPTED)
    for state, row in TRANSITIONS.items():
        for trigger in Trigger:
            assert (trigger in row) or trigger not in row  # every row is a mapping of triggers
        assert state in RoomState
    spec = SPEC_PATH.read_text(encoding="utf-8")
    block = re.search(r"```mermaid\n(stateDiagram-v2\n    \[\*\] --> none\n.*?)\n```", spec, re.S)
    assert block is not None and block.group(1) == state_diagram()
