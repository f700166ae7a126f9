"""rooms.json: closed rooms — ids, changes, logs, invitations, proofs (ROOM-2..ROOM-6).

Every case is a row of a table; small helpers build the bytes. Identities
are fixed seeds (`seed_for`), the "random" bytes of invitations are
`pseudo_random`, and times are offsets from `T0_MS`, so every build is
byte-identical. Each outcome is computed by the reference while building.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from railgun_ref.conformance.builders.base import T0_MS, Vectors, flip, pseudo_random, seed_for
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.identity.keys import Identity
from railgun_ref.rooms.announce import check_announcement_proof, room_announcement
from railgun_ref.rooms.changes import CHANGE_DOMAIN, Change, ChangeKind, Role, decode_change
from railgun_ref.rooms.ids import announce_identity_of, dht_ident_of, room_id_of
from railgun_ref.rooms.invitation import (
    INVITATION_DOMAIN,
    open_invitation,
    seal_invitation,
)
from railgun_ref.rooms.log import ChangeLog
from railgun_ref.wire import cbor

NOTES: Final = {
    "Derivation": "Identifiers derived from a room secret (ROOM-2.2).",
    "Valid": "Well-formed, correctly signed, and it counts.",
    "Forged": "A signature or sealed box that does not verify.",
    "Malformed": "Breaks the shape or a per-kind rule (ROOM-3.3, ROOM-4.1).",
    "Expired": "Used after its expiry.",
    "Replayed": "An invitation or ACCEPT used a second time.",
    "NonMember": "Signed by a node that is not a member at that point.",
    "RemovedMember": "Signed by a member after (or concurrently with) its removal.",
    "NotAllowed": "Signed by a member whose role does not allow it.",
    "WrongRoom": "Belongs to another room.",
    "NotForMe": "Opened by someone other than its invitee.",
    "Concurrent": "Concurrent branches resolved by the order and removal-wins rules.",
}

HEADER: Final = [
    "Closed rooms (paper/spec.md section 11.2). Keys are Ed25519 public keys in hex;",
    "seeds are SHA-256('railgun-ref/vectors/' || label). RoomLogTest feeds 'changes'",
    "one at a time into a log started with the first one; 'refusedOnArrival' lists",
    "[change hash, error] for those refused (ROOM-3.5), 'notCounted' the stored ones",
    "that do not count (ROOM-3.7, ROOM-3.8), 'members' the sorted member keys.",
]

_NAMES: Final = ("alice", "bob", "carol", "mallory")
SECRET: Final = seed_for("rooms/secret-1")
ROOM: Final = room_id_of(SECRET)


def person(name: str) -> Identity:
    return Identity.from_seed(seed_for(f"rooms/{name}"))


def key(name: str) -> bytes:
    return person(name).public_key


def signed_change(signer: Identity, fields: dict[int, object]) -> bytes:
    """A change with any fields (even ones a writer refuses), correctly signed."""
    body = dict(sorted(fields.items()))
    return cbor.encode({**body, 10: signer.sign(CHANGE_DOMAIN + cbor.encode(body))})


def change_fields(
    signer: str, kind: ChangeKind, parents: list[bytes], **extra: object
) -> dict[int, object]:
    fields: dict[int, object] = {
        0: 1,
        1: ROOM,
        2: int(kind),
        3: key(signer),
        4: key(signer),
        5: sorted(parents),
        6: T0_MS,
        7: int(Role.ADMIN if kind is ChangeKind.CREATE else Role.MEMBER),
        8: 0,
        9: b"",
    }
    names = {"subject": 4, "issued": 6, "role": 7, "expires": 8, "invitation": 9, "room": 1}
    for name, value in extra.items():
        fields[names[name]] = value
    return fields


class Story:
    """A room's history under construction: changes signed on explicit or current heads."""

    def __init__(self) -> None:
        self.genesis = decode_change(
            signed_change(person("alice"), change_fields("alice", ChangeKind.CREATE, []))
        )
        self.log = ChangeLog(self.genesis)
        self.sent: list[Change] = [self.genesis]

    def make(
        self, signer: str, kind: ChangeKind, *, parents: list[bytes] | None = None, **extra: object
    ) -> Change:
        chosen = list(self.log.heads()) if parents is None else parents
        change = decode_change(
            signed_change(person(signer), change_fields(signer, kind, chosen, **extra))
        )
        self.sent.append(change)
        self.log.insert([change])
        return change

    def add(
        self, signer: str, subject: str, *, parents: list[bytes] | None = None, **extra: object
    ) -> Change:
        extra.setdefault("expires", T0_MS + 60_000)
        return self.make(signer, ChangeKind.ADD, parents=parents, subject=key(subject), **extra)

    def accept(self, signer: str, add: Change, **extra: object) -> Change:
        parents = sorted({*self.log.heads(), add.hash})
        return self.make(signer, ChangeKind.ACCEPT, invitation=add.hash, parents=parents, **extra)

    def join(self, name: str, role: Role = Role.MEMBER) -> Change:
        return self.accept(name, self.add("alice", name, role=int(role)))

    def remove(
        self, signer: str, subject: str, *, parents: list[bytes] | None = None, **extra: object
    ) -> Change:
        return self.make(signer, ChangeKind.REMOVE, parents=parents, subject=key(subject), **extra)


# ------------------------------------------------------------------ ROOM-2: identifiers


def _ids(v: Vectors) -> None:
    tests = v.group("RoomIdTest")
    for label in ("rooms/secret-1", "rooms/secret-2", "rooms/secret-3"):
        secret = seed_for(label)
        ident = dht_ident_of(secret)
        v.test(
            tests,
            comment=f"identifiers of the secret of {label!r}",
            result="valid",
            clause="ROOM-2.2",
            flags=("Derivation",),
            secret=secret.hex(),
            roomId=room_id_of(secret).hex(),
            announceKey=announce_identity_of(secret).public_key.hex(),
            dhtIdent=ident.hex(),
            dhtKey=derive_key(KeyType.ROOM, ident).hex(),
        )


# ------------------------------------------------------------------ ROOM-3.3: one change

_G: Final = Story().genesis.hash
_ADD: Final = {"subject": key("bob"), "expires": T0_MS + 1}

#: (comment, flag, signer, kind, parents, extra fields)
_DECODE_CASES: Final[list[tuple[str, str, str, ChangeKind, list[bytes], dict[str, object]]]] = [
    ("the genesis", "Valid", "alice", ChangeKind.CREATE, [], {}),
    ("an ADD of bob", "Valid", "alice", ChangeKind.ADD, [_G], _ADD),
    ("a LEAVE", "Valid", "bob", ChangeKind.LEAVE, [_G], {}),
    ("a REMOVE of bob", "Valid", "alice", ChangeKind.REMOVE, [_G], {"subject": key("bob")}),
    ("an ADD without expiry", "Malformed", "alice", ChangeKind.ADD, [_G], {"subject": key("bob")}),
    ("an ADD of its signer", "Malformed", "alice", ChangeKind.ADD, [_G], {"expires": T0_MS + 1}),
    ("a CREATE with a parent", "Malformed", "alice", ChangeKind.CREATE, [_G], {}),
    ("a LEAVE without parents", "Malformed", "bob", ChangeKind.LEAVE, [], {}),
    ("a LEAVE with a role", "Malformed", "bob", ChangeKind.LEAVE, [_G], {"role": 1}),
    (
        "an ACCEPT whose ADD is not a parent",
        "Malformed",
        "bob",
        ChangeKind.ACCEPT,
        [_G],
        {"invitation": bytes(32)},
    ),
    (
        "a LEAVE naming an invitation",
        "Malformed",
        "bob",
        ChangeKind.LEAVE,
        [_G],
        {"invitation": _G},
    ),
    ("a room id of 31 bytes", "Malformed", "bob", ChangeKind.LEAVE, [_G], {"room": ROOM[:31]}),
    ("unknown kind 9", "Malformed", "bob", 9, [_G], {}),  # type: ignore[list-item]
]


def _decode_case(v: Vectors, tests: list[JsonObject], comment: str, flag: str, data: bytes) -> None:
    try:
        change = decode_change(data)
    except RemoteProtocolError as exc:
        assert flag != "Valid", comment
        v.test(
            tests,
            comment=comment,
            result="invalid",
            clause="ROOM-3.3",
            flags=(flag,),
            change=data.hex(),
            expectedError=exc.code.name,
        )
        return
    assert flag == "Valid", comment
    v.test(
        tests,
        comment=comment,
        result="valid",
        clause="ROOM-3.1",
        flags=(flag,),
        change=data.hex(),
        hash=change.hash.hex(),
        kind=change.kind.name,
        signer=change.signer.hex(),
        subject=change.subject.hex(),
    )


def _decoding(v: Vectors) -> None:
    tests = v.group("RoomChangeDecodeTest")
    for comment, flag, signer, kind, parents, extra in _DECODE_CASES:
        base = kind if isinstance(kind, ChangeKind) else ChangeKind.LEAVE
        fields = change_fields(signer, base, parents, **extra)
        fields[2] = int(kind)
        _decode_case(v, tests, comment, flag, signed_change(person(signer), fields))
    valid = signed_change(person("alice"), change_fields("alice", ChangeKind.ADD, [_G], **_ADD))
    unsorted = change_fields("bob", ChangeKind.LEAVE, [])
    unsorted[5] = [b"\xff" * 32, _G]
    version_2 = {**change_fields("bob", ChangeKind.LEAVE, [_G]), 0: 2}
    extra_rows = [
        ("a flipped signature bit", "Forged", flip(valid, len(valid) * 8 - 3)),
        ("a flipped subject bit", "Forged", flip(valid, 8 * 80)),
        ("parents not sorted", "Malformed", signed_change(person("bob"), unsorted)),
        ("version 2", "Malformed", signed_change(person("bob"), version_2)),
        ("not a map", "Malformed", cbor.encode([1, 2, 3])),
        ("over 1024 bytes", "Malformed", bytes(1025)),
    ]
    for comment, flag, data in extra_rows:
        _decode_case(v, tests, comment, flag, data)


# ------------------------------------------------------------------ ROOM-3.5..3.8: logs


def _basic(s: Story) -> None:
    s.join("bob")
    s.join("carol", Role.ADMIN)


def _outsider(s: Story) -> None:
    s.join("bob")
    s.make("mallory", ChangeKind.LEAVE)
    s.add("mallory", "carol")
    s.make("mallory", ChangeKind.ACCEPT, invitation=s.genesis.hash, parents=[s.genesis.hash])


def _member_removes(s: Story) -> None:
    s.join("bob")
    s.join("carol")
    s.remove("bob", "carol")


def _remove_creator(s: Story) -> None:
    s.join("bob", Role.ADMIN)
    s.remove("bob", "alice")


def _member_adds_admin(s: Story) -> None:
    s.join("bob")
    s.add("bob", "carol", role=int(Role.ADMIN))


def _removed_adds_accomplice(s: Story) -> None:
    s.join("bob")
    s.remove("alice", "bob")
    s.add("bob", "mallory")


def _replayed_accept(s: Story) -> None:
    add = s.add("alice", "bob")
    s.accept("bob", add)
    s.remove("alice", "bob")
    s.accept("bob", add)


def _expired_accept(s: Story) -> None:
    add = s.add("alice", "bob", expires=T0_MS + 1000)
    s.accept("bob", add, issued=T0_MS + 2000)


def _backdated(s: Story) -> None:
    s.join("bob")
    before = list(s.log.heads())
    s.remove("alice", "bob")
    add = s.add("bob", "mallory", parents=before)
    s.make("mallory", ChangeKind.ACCEPT, invitation=add.hash, parents=[add.hash])


def _concurrent_readd(s: Story) -> None:
    s.join("bob", Role.ADMIN)
    s.join("carol")
    fork = list(s.log.heads())
    s.remove("alice", "carol")
    bob_removes = s.remove("bob", "carol", parents=fork)
    add = s.add("bob", "carol", parents=[bob_removes.hash])
    s.make("carol", ChangeKind.ACCEPT, invitation=add.hash, parents=[add.hash])


def _repeated(s: Story) -> None:
    accept = s.join("bob")
    s.sent.append(accept)
    s.sent.append(s.sent[1])


def _wrong_room(s: Story) -> None:
    s.add("alice", "bob", room=room_id_of(seed_for("rooms/secret-2")))


#: (comment, clause, flag, result, scenario)
_LOG_CASES: Final[list[tuple[str, str, str, str, Callable[[Story], None]]]] = [
    ("bob joins, carol joins as admin", "ROOM-3.6", "Valid", "valid", _basic),
    ("every change repeated: no effect", "ROOM-3.5", "Replayed", "valid", _repeated),
    ("an outsider's LEAVE, ADD and ACCEPT", "ROOM-3.5", "NonMember", "invalid", _outsider),
    ("a plain member removes another", "ROOM-3.4", "NotAllowed", "invalid", _member_removes),
    ("an admin removes the creator", "ROOM-3.4", "NotAllowed", "invalid", _remove_creator),
    ("a plain member adds an admin", "ROOM-3.4", "NotAllowed", "invalid", _member_adds_admin),
    (
        "a removed member adds an accomplice",
        "ROOM-3.7",
        "RemovedMember",
        "invalid",
        _removed_adds_accomplice,
    ),
    ("a removed member replays its ACCEPT", "ROOM-3.7", "Replayed", "invalid", _replayed_accept),
    ("an ACCEPT issued after its ADD expired", "ROOM-3.7", "Expired", "invalid", _expired_accept),
    (
        "a removed member backdates an ADD of an accomplice",
        "ROOM-3.8",
        "RemovedMember",
        "invalid",
        _backdated,
    ),
    (
        "alice removes carol while bob removes and re-adds her",
        "ROOM-3.8",
        "Concurrent",
        "valid",
        _concurrent_readd,
    ),
    ("a change of another room", "ROOM-3.5", "WrongRoom", "invalid", _wrong_room),
]


def _outcome(story: Story) -> JsonObject:
    """What a log fed `story.sent` one change at a time gives (as the runner computes)."""
    log = ChangeLog(story.sent[0])
    refused = []
    for change in story.sent[1:]:
        refused += [[h.hex(), e.code.name] for h, e in log.insert([change]).refused]
    membership = log.membership
    return {
        "changes": [c.encoded.hex() for c in story.sent],
        "refusedOnArrival": refused,
        "notCounted": {h.hex(): why.value for h, why in sorted(membership.refused.items())},
        "members": [k.hex() for k in membership.member_keys()],
    }


def _logs(v: Vectors) -> None:
    tests = v.group("RoomLogTest", names={n: key(n).hex() for n in _NAMES})
    for comment, clause, flag, result, scenario in _LOG_CASES:
        story = Story()
        scenario(story)
        outcome = _outcome(story)
        bad = bool(outcome["refusedOnArrival"] or outcome["notCounted"])
        assert bad == (result == "invalid") or flag == "Concurrent", comment
        v.test(tests, comment=comment, result=result, clause=clause, flags=(flag,), **outcome)


# ------------------------------------------------------------------ ROOM-4: invitations


def _source(label: str) -> Callable[[int], bytes]:
    return lambda size: pseudo_random(f"rooms/{label}", size)


def _invitation(inviter: str, add: Change, log: Story, secret: bytes = SECRET) -> bytes:
    return seal_invitation(
        person(inviter),
        secret=secret,
        add=add,
        log=log.log.encoded(),
        random_bytes=_source(inviter),
    )


def _resigned(invitation: bytes, signer: str, edit: Callable[[dict[int, Any]], None]) -> bytes:
    """`invitation` with its body edited and signed again by `signer`."""
    body = {k: v for k, v in cbor.decode(invitation).items() if k != 9}
    edit(body)
    return cbor.encode({**body, 9: person(signer).sign(INVITATION_DOMAIN + cbor.encode(body))})


@dataclass(frozen=True, slots=True, kw_only=True)
class _Offers:
    """The invitations the rows are made of."""

    good: bytes  #: alice invites bob
    wrong_secret: bytes  #: alice's ADD, but another room's secret sealed inside
    by_outsider: bytes  #: mallory (who knows the secret) offers an ADD that does not count
    by_removed: bytes  #: bob, removed, offers an ADD that does not count


def _offers() -> _Offers:
    story = Story()
    add = story.add("alice", "bob", expires=T0_MS + 60_000)
    removed = Story()
    removed.join("bob")
    removed.remove("alice", "bob")
    by_removed = removed.add("bob", "carol")
    outsider = story.add("mallory", "carol")
    return _Offers(
        good=_invitation("alice", add, story),
        wrong_secret=_invitation("alice", add, story, seed_for("rooms/secret-2")),
        by_outsider=_invitation("mallory", outsider, story),
        by_removed=_invitation("bob", by_removed, removed),
    )


def _invitation_rows() -> list[tuple[str, str, str, str, int, bytes]]:
    """(comment, clause, flag, invitee, now ms, invitation)."""
    o = _offers()
    good = o.good
    sealed = cbor.decode(good)[7]
    return [
        ("an invitation for bob", "ROOM-4.2", "Valid", "bob", T0_MS, good),
        ("opened by carol", "ROOM-4.2", "NotForMe", "carol", T0_MS, good),
        (
            "a flipped signature bit",
            "ROOM-4.2",
            "Forged",
            "bob",
            T0_MS,
            flip(good, len(good) * 8 - 5),
        ),
        ("opened after its expiry", "ROOM-4.2", "Expired", "bob", T0_MS + 60_001, good),
        (
            "a sealed secret that does not open",
            "ROOM-4.2",
            "Forged",
            "bob",
            T0_MS,
            _resigned(good, "alice", lambda b: b.update({7: flip(sealed, 3)})),
        ),
        ("the secret of another room", "ROOM-4.2", "WrongRoom", "bob", T0_MS, o.wrong_secret),
        (
            "an ADD by an outsider who knows the secret",
            "ROOM-4.2",
            "NonMember",
            "carol",
            T0_MS,
            o.by_outsider,
        ),
        ("an ADD by a removed member", "ROOM-4.2", "RemovedMember", "carol", T0_MS, o.by_removed),
        (
            "a log without its genesis",
            "ROOM-4.2",
            "Malformed",
            "bob",
            T0_MS,
            _resigned(good, "alice", lambda b: b.update({8: b[8][1:]})),
        ),
    ]


def _invitations(v: Vectors) -> None:
    tests = v.group("RoomInvitationTest")
    for comment, clause, flag, invitee, now_ms, data in _invitation_rows():
        fields: JsonObject = {"inviteeSeed": person(invitee).seed.hex(), "nowMs": now_ms}
        try:
            opened = open_invitation(person(invitee), data, now=now_ms / 1000)
        except RemoteProtocolError as exc:
            assert flag != "Valid", comment
            fields["expectedError"] = exc.code.name
            result = "invalid"
        else:
            assert flag == "Valid", comment
            fields |= {
                "roomId": opened.room_id.hex(),
                "secret": opened.secret.hex(),
                "inviter": opened.inviter.hex(),
                "addHash": opened.add.hash.hex(),
            }
            result = "valid"
        v.test(
            tests,
            comment=comment,
            result=result,
            clause=clause,
            flags=(flag,),
            invitation=data.hex(),
            **fields,
        )


# ------------------------------------------------------------------ ROOM-6.2: proofs


def _announcements(v: Vectors) -> None:
    tests = v.group("RoomAnnounceTest", dhtIdent=dht_ident_of(SECRET).hex())
    good = room_announcement(SECRET, publisher=key("bob"), host="127.0.0.1", port=4000)
    other = room_announcement(
        seed_for("rooms/secret-2"), publisher=key("bob"), host="127.0.0.1", port=4000
    )
    broken = {**cbor.decode(good), 2: 0}
    rows = [
        ("bob's announcement", "Valid", "bob", good),
        ("bob's announcement published by mallory", "Forged", "mallory", good),
        ("the announce key of another room", "WrongRoom", "bob", other),
        ("port 0", "Malformed", "bob", cbor.encode(broken)),
        (
            "the value of an open room (no proof)",
            "Malformed",
            "bob",
            cbor.encode({0: 1, 1: "127.0.0.1", 2: 4000}),
        ),
    ]
    for comment, flag, publisher, value in rows:
        fields: JsonObject = {"publisherKey": key(publisher).hex(), "value": value.hex()}
        error = None
        try:
            check_announcement_proof(
                value, publisher=key(publisher), dht_ident=dht_ident_of(SECRET)
            )
        except RemoteProtocolError as exc:
            error = exc.code.name
        assert (error is None) == (flag == "Valid"), comment
        if error is not None:
            fields["expectedError"] = error
        v.test(
            tests,
            comment=comment,
            result="valid" if error is None else "invalid",
            clause="ROOM-6.2",
            flags=(flag,),
            **fields,
        )


def build() -> JsonObject:
    v = Vectors("rooms", "railgun-closed-rooms", HEADER, NOTES)
    _ids(v)
    _decoding(v)
    _logs(v)
    _invitations(v)
    _announcements(v)
    return v.document()
