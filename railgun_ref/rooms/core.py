"""The rooms core (ROOM-7): one node's closed rooms, as a sans-IO state machine.

`RoomsCore` holds, for each room the node created, was invited to or joined,
the room secret, the local name, the membership log and the node's own
state in the room. Inputs are API calls (`create_room`, `invite`, `accept`,
`remove`, `leave`), what peers send (`receive_invitation`,
`receive_changes`) and `on_timer`; outputs are pulled with `next_action`:

* `PersistRoom` / `PersistChange`: what the driver MUST commit before it
  sends anything that depends on it (a room's secret; each new change);
* `SendChanges`: changes the members of a room must get (ROOM-7.2): the
  driver sends them on every path it has (central JOIN proofs, P2P);
* `DeliverInvitation`: an invitation for the driver to hand to its invitee;
* `MembershipChanged`: the member list moved (the E2EE recipients, ROOM-5.1);
* `InvitationLapsed`: an invitation expired before it was accepted.

Theory of operation. A room's own state is the data `TRANSITIONS`
(ROOM-7.1); every move goes through `_move`, so an illegal one raises
`LocalProtocolError`. The member list is never stored: it is recomputed
from the log (`railgun_ref.rooms.log`) after every insert, and the node's
state follows it (LOG_ADMITS / LOG_EXCLUDES). Randomness (room secrets,
ephemeral keys) comes from the injected byte source; time only from ``now``.
Every refusal of peer input raises `RemoteProtocolError` and is counted.
"""

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Final

from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.identity.keys import Identity, RandomBytes
from railgun_ref.rooms.changes import Change, ChangeKind, Role, decode_change, sign_change
from railgun_ref.rooms.ids import new_room_secret, room_id_of
from railgun_ref.rooms.invitation import OpenedInvitation, open_invitation, seal_invitation
from railgun_ref.rooms.log import ChangeLog, Membership

#: ROOM-4.3: how long an invitation is good for unless the caller says otherwise, seconds.
DEFAULT_INVITATION_TTL: Final = 7 * 86400.0
#: ROOM-7.3: at most this many invitations wait to be accepted at once.
MAX_PENDING_INVITATIONS: Final = 256


class RoomState(Enum):
    """ROOM-7.1: where this node stands in one room."""

    NONE = "none"  #: not known yet
    INVITED = "invited"  #: holds a valid invitation, not accepted
    MEMBER = "member"  #: the log counts this node as a member
    LEFT = "left"  #: this node left
    REMOVED = "removed"  #: the log no longer counts this node (removed, or its join voided)
    EXPIRED = "expired"  #: its invitation lapsed unaccepted


class Trigger(Enum):
    """ROOM-7.1: what moves a room's state."""

    CREATED = "created"
    INVITED = "invited"
    ACCEPTED = "accepted"
    INVITATION_EXPIRED = "invitation-expired"
    LOG_ADMITS = "log-admits"
    LOG_EXCLUDES = "log-excludes"
    LEFT = "left"


_S = RoomState
_T = Trigger

#: ROOM-7.1: the transition table; a (state, trigger) pair not listed is a bug.
TRANSITIONS: Final[Mapping[RoomState, Mapping[Trigger, RoomState]]] = MappingProxyType(
    {
        _S.NONE: MappingProxyType({_T.CREATED: _S.MEMBER, _T.INVITED: _S.INVITED}),
        _S.INVITED: MappingProxyType(
            {
                _T.INVITED: _S.INVITED,
                _T.ACCEPTED: _S.MEMBER,
                _T.INVITATION_EXPIRED: _S.EXPIRED,
            }
        ),
        _S.MEMBER: MappingProxyType(
            {_T.LOG_ADMITS: _S.MEMBER, _T.LOG_EXCLUDES: _S.REMOVED, _T.LEFT: _S.LEFT}
        ),
        _S.REMOVED: MappingProxyType(
            {_T.LOG_ADMITS: _S.MEMBER, _T.LOG_EXCLUDES: _S.REMOVED, _T.INVITED: _S.INVITED}
        ),
        _S.LEFT: MappingProxyType({_T.INVITED: _S.INVITED}),
        _S.EXPIRED: MappingProxyType({_T.INVITED: _S.INVITED}),
    }
)


def state_diagram() -> str:
    """The Mermaid state diagram of `TRANSITIONS` (paper/spec.md ROOM-7.1 embeds it)."""
    lines = ["stateDiagram-v2", "    [*] --> none"]
    for state, row in TRANSITIONS.items():
        for trigger, target in row.items():
            lines.append(f"    {state.value} --> {target.value}: {trigger.value}")
    return "\n".join(lines)


class RoomCounter(StrEnum):
    """The rooms core's counters (ROOM-7.3)."""

    ROOMS_CREATED = "rooms.created"
    INVITATIONS_SENT = "rooms.invitations_sent"
    INVITATIONS_ACCEPTED = "rooms.invitations_accepted"
    INVITATIONS_REFUSED = "rooms.invitations_refused"  #: label: ErrorCode
    INVITATIONS_LAPSED = "rooms.invitations_lapsed"
    CHANGES_ADDED = "rooms.changes_added"
    CHANGES_REFUSED = "rooms.changes_refused"  #: label: ErrorCode
    MEMBERS_ADDED = "rooms.members_added"
    MEMBERS_REMOVED = "rooms.members_removed"


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistRoom:
    """Commit this room's secret and local name (before sending anything about it)."""

    room_id: bytes
    secret: bytes
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistChange:
    """Commit this change to the room's log (before sending it)."""

    room_id: bytes
    change: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SendChanges:
    """ROOM-7.2: send the room's log to these members (Ed25519 keys) on every path."""

    room_id: bytes
    changes: tuple[bytes, ...]
    to: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverInvitation:
    """Hand this invitation to its invitee (out of band, or a direct channel)."""

    room_id: bytes
    invitee: bytes
    invitation: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipChanged:
    """ROOM-5.1: the room's members (sorted Ed25519 keys) changed; so did the recipients."""

    room_id: bytes
    members: tuple[bytes, ...]
    added: tuple[bytes, ...]
    removed: tuple[bytes, ...]
    state: RoomState  #: this node's state in the room


@dataclass(frozen=True, slots=True, kw_only=True)
class InvitationLapsed:
    """An invitation (sent or received by this node) expired before it was accepted."""

    room_id: bytes
    invitee: bytes


RoomAction = (
    PersistRoom
    | PersistChange
    | SendChanges
    | DeliverInvitation
    | MembershipChanged
    | InvitationLapsed
)


class _Room:
    """One room's book-keeping inside the core."""

    def __init__(self, room_id: bytes, secret: bytes, name: str) -> None:
        self.room_id = room_id
        self.secret = secret
        self.name = name
        self.state = RoomState.NONE
        self.log: ChangeLog | None = None
        self.invitation: OpenedInvitation | None = None
        self.members: tuple[bytes, ...] = ()
        self.lapsed: set[bytes] = set()  #: add hashes already reported lapsed


class RoomsCore:
    """ROOM-7: this node's closed rooms (see the module docstring)."""

    def __init__(
        self,
        identity: Identity,
        *,
        random_bytes: RandomBytes,
        invitation_ttl: float = DEFAULT_INVITATION_TTL,
    ) -> None:
        self.identity = identity
        self._random_bytes = random_bytes
        self.invitation_ttl = invitation_ttl
        self._rooms: dict[bytes, _Room] = {}
        self._accepted_invitations: set[bytes] = set()
        self._actions: deque[RoomAction] = deque()
        self.counters: Counters[RoomCounter] = Counters()

    # ---------------------------------------------------------------- views

    def rooms(self) -> tuple[bytes, ...]:
        return tuple(self._rooms)

    def state(self, room_id: bytes) -> RoomState:
        room = self._rooms.get(room_id)
        return RoomState.NONE if room is None else room.state

    def name(self, room_id: bytes) -> str:
        return self._room(room_id).name

    def secret(self, room_id: bytes) -> bytes:
        return self._room(room_id).secret

    def membership(self, room_id: bytes) -> Membership:
        return self._log(room_id).membership

    def members(self, room_id: bytes) -> tuple[bytes, ...]:
        """ROOM-5.1: the members' Ed25519 keys (empty unless this node is a member)."""
        room = self._rooms.get(room_id)
        if room is None or room.state is not RoomState.MEMBER:
            return ()
        return room.members

    def is_member(self, room_id: bytes, key: bytes) -> bool:
        return key in self.members(room_id)

    def changes(self, room_id: bytes) -> tuple[bytes, ...]:
        """The room's whole log (the membership proof, ROOM-6.3), in its total order."""
        return self._log(room_id).encoded()

    def _room(self, room_id: bytes) -> _Room:
        room = self._rooms.get(room_id)
        if room is None:
            raise LocalProtocolError("unknown room (rooms named by a plain name are refused)")
        return room

    def _log(self, room_id: bytes) -> ChangeLog:
        log = self._room(room_id).log
        if log is None:
            raise LocalProtocolError("no membership log for this room yet: accept first")
        return log

    # -------------------------------------------------------- core contract

    def next_action(self) -> RoomAction | None:
        return self._actions.popleft() if self._actions else None

    def next_deadline(self) -> float | None:
        """The earliest expiry of an invitation that has neither lapsed nor been accepted."""
        deadlines = [expiry / 1000 for _, _, expiry in self._pending_invitations()]
        return min(deadlines, default=None)

    def on_timer(self, *, now: float) -> None:
        for room, key, expiry in list(self._pending_invitations()):
            if now * 1000 <= expiry:
                continue
            self.counters.inc(RoomCounter.INVITATIONS_LAPSED)
            self._actions.append(InvitationLapsed(room_id=room.room_id, invitee=key))
            if key == self.identity.public_key and room.state is RoomState.INVITED:
                room.invitation = None
                self._move(room, Trigger.INVITATION_EXPIRED)
            else:
                room.lapsed.add(self._add_hash_for(room, key))

    def _pending_invitations(self) -> Iterable[tuple[_Room, bytes, int]]:
        for room in self._rooms.values():
            if room.state is RoomState.INVITED and room.invitation is not None:
                yield room, self.identity.public_key, room.invitation.expires_ms
            elif room.state is RoomState.MEMBER and room.log is not None:
                for key, invitee in room.log.membership.invited.items():
                    mine = invitee.inviter == self.identity.public_key
                    if mine and invitee.add_hash not in room.lapsed:
                        yield room, key, invitee.expires_ms

    @staticmethod
    def _add_hash_for(room: _Room, key: bytes) -> bytes:
        assert room.log is not None
        return room.log.membership.invited[key].add_hash

    # ------------------------------------------------------------ local API

    def create_room(self, *, name: str, now: float) -> bytes:
        """ROOM-2.1, ROOM-3.2: a new room with this node as creator; returns the room id."""
        secret = new_room_secret(self._random_bytes)
        room_id = room_id_of(secret)
        if room_id in self._rooms:
            raise LocalProtocolError("the byte source repeated a room secret")
        room = _Room(room_id, secret, name)
        genesis = sign_change(
            self.identity,
            room_id=room_id,
            kind=ChangeKind.CREATE,
            parents=(),
            issued_ms=_ms(now),
        )
        room.log = ChangeLog(genesis)
        self._rooms[room_id] = room
        self.counters.inc(RoomCounter.ROOMS_CREATED)
        self._actions.append(PersistRoom(room_id=room_id, secret=secret, name=name))
        self._actions.append(PersistChange(room_id=room_id, change=genesis.encoded))
        self._move(room, Trigger.CREATED)
        self._membership_moved(room)
        return room_id

    def invite(
        self,
        room_id: bytes,
        invitee: bytes,
        *,
        now: float,
        role: Role = Role.MEMBER,
        ttl: float | None = None,
    ) -> bytes:
        """ROOM-4.1: sign an ADD of `invitee` and return the invitation that offers it."""
        room = self._member_room(room_id)
        expires_ms = _ms(now + (self.invitation_ttl if ttl is None else ttl))
        add = self._sign(
            room, ChangeKind.ADD, now, subject=invitee, role=role, expires_ms=expires_ms
        )
        assert room.log is not None
        invitation = seal_invitation(
            self.identity,
            secret=room.secret,
            add=add,
            log=room.log.encoded(),
            random_bytes=self._random_bytes,
        )
        self.counters.inc(RoomCounter.INVITATIONS_SENT)
        self._actions.append(
            DeliverInvitation(room_id=room_id, invitee=invitee, invitation=invitation)
        )
        return invitation

    def receive_invitation(self, data: bytes, *, now: float, name: str = "") -> bytes:
        """ROOM-4.2: check an invitation for this node and hold it; returns the room id."""
        try:
            opened = open_invitation(self.identity, data, now=now)
            if opened.add.hash in self._accepted_invitations:
                raise RemoteProtocolError(ErrorCode.REPLAY, "invitation already accepted")
            room = self._rooms.get(opened.room_id)
            if room is not None and RoomState.INVITED not in TRANSITIONS[room.state].values():
                raise RemoteProtocolError(ErrorCode.REPLAY, "already a member of this room")
            if room is None and self._invited_count() >= MAX_PENDING_INVITATIONS:
                raise RemoteProtocolError(ErrorCode.QUOTA, "too many invitations wait")
        except RemoteProtocolError as exc:
            self.counters.inc(RoomCounter.INVITATIONS_REFUSED, label=exc.code)
            raise
        if room is None:
            room = self._rooms[opened.room_id] = _Room(opened.room_id, opened.secret, name)
        room.invitation = opened
        self._move(room, Trigger.INVITED)
        return opened.room_id

    def _invited_count(self) -> int:
        return sum(1 for room in self._rooms.values() if room.state is RoomState.INVITED)

    def accept(self, room_id: bytes, *, now: float, name: str | None = None) -> None:
        """ROOM-4.3: accept the invitation held for `room_id` (sign the ACCEPT)."""
        room = self._room(room_id)
        opened = room.invitation
        if room.state is not RoomState.INVITED or opened is None:
            raise LocalProtocolError("no invitation to accept for this room")
        if now * 1000 > opened.expires_ms:
            raise LocalProtocolError("the invitation has expired")
        if name is not None:
            room.name = name
        if room.log is None:
            room.log = ChangeLog(opened.log.genesis)
        room.log.insert(opened.log.ordered())
        self._accepted_invitations.add(opened.add.hash)
        room.invitation = None
        self._actions.append(PersistRoom(room_id=room_id, secret=room.secret, name=room.name))
        for encoded in room.log.encoded():
            self._actions.append(PersistChange(room_id=room_id, change=encoded))
        self.counters.inc(RoomCounter.INVITATIONS_ACCEPTED)
        self._move(room, Trigger.ACCEPTED)
        self._sign(room, ChangeKind.ACCEPT, now, invitation=opened.add.hash)

    def remove(self, room_id: bytes, member: bytes, *, now: float) -> None:
        """ROOM-3.7: remove a member or cancel an invitation (admins only)."""
        room = self._member_room(room_id)
        self._sign(room, ChangeKind.REMOVE, now, subject=member)

    def leave(self, room_id: bytes, *, now: float) -> None:
        """ROOM-3.7: leave the room; the others stop encrypting to this node."""
        room = self._member_room(room_id)
        self._move(room, Trigger.LEFT)
        self._sign(room, ChangeKind.LEAVE, now)

    def rotate_key(self, new: Identity, *, now: float) -> tuple[bytes, ...]:
        """ROOM-3.9, ROT-2.2: continue as `new` in every room this node is a member of.

        Signs a ROTATE (old key, co-signed by `new`) in each such room and from then on
        acts as `new`; returns the rooms moved. Pending invitations to the old key are
        not moved: the inviter invites the new key again.
        """
        if new.public_key == self.identity.public_key:
            raise LocalProtocolError("rotate to a different key")
        old = self.identity
        rooms = [room for room in self._rooms.values() if room.state is RoomState.MEMBER]
        self.identity = new
        for room in rooms:
            self._sign(room, ChangeKind.ROTATE, now, signer=old, cosigner=new)
        return tuple(room.room_id for room in rooms)

    def _member_room(self, room_id: bytes) -> _Room:
        room = self._room(room_id)
        if room.state is not RoomState.MEMBER:
            raise LocalProtocolError(f"not a member of this room ({room.state.value})")
        return room

    def _sign(
        self,
        room: _Room,
        kind: ChangeKind,
        now: float,
        *,
        subject: bytes | None = None,
        role: Role = Role.MEMBER,
        expires_ms: int = 0,
        invitation: bytes = b"",
        signer: Identity | None = None,
        cosigner: Identity | None = None,
    ) -> Change:
        """Sign a change on top of the log's heads, check it counts, insert and announce it."""
        assert room.log is not None
        parents = room.log.heads()
        change = sign_change(
            self.identity if signer is None else signer,
            room_id=room.room_id,
            kind=kind,
            parents=parents,
            issued_ms=max(_ms(now), self._latest_ms(room.log, parents)),
            subject=subject,
            role=role,
            expires_ms=expires_ms,
            invitation=invitation,
            cosigner=cosigner,
        )
        inserted = room.log.insert([change])
        if inserted.refused:
            raise LocalProtocolError(f"this change would not count: {inserted.refused[0][1]}")
        self.counters.inc(RoomCounter.CHANGES_ADDED)
        recipients = self._recipients(room)
        self._actions.append(PersistChange(room_id=room.room_id, change=change.encoded))
        self._after_log_moved(room)
        self._actions.append(
            SendChanges(room_id=room.room_id, changes=room.log.encoded(), to=recipients)
        )
        return change

    @staticmethod
    def _latest_ms(log: ChangeLog, parents: Iterable[bytes]) -> int:
        return max((c.issued_ms for p in parents if (c := log.get(p)) is not None), default=0)

    def _recipients(self, room: _Room) -> tuple[bytes, ...]:
        """Who must hear of a change: the members before it and after it (ROOM-7.2).

        Invitees are not sent changes: their invitation carries the log, and
        their ACCEPT, sent to every member, makes the members send them the rest.
        """
        assert room.log is not None
        keys = set(room.members) | set(room.log.membership.members)
        keys.discard(self.identity.public_key)
        return tuple(sorted(keys))

    # ------------------------------------------------------- peer input

    def receive_changes(self, room_id: bytes, changes: Sequence[bytes], *, now: float) -> int:
        """ROOM-3.5, ROOM-7.2: merge a peer's changes; the number new to the log.

        Every change that decodes and counts is kept, whatever else the batch
        holds; if any was refused, the first refusal is raised afterwards
        (after counting every one).
        """
        room = self._rooms.get(room_id)
        if room is None or room.log is None:
            self.counters.inc(RoomCounter.CHANGES_REFUSED, label=ErrorCode.FORBIDDEN)
            raise RemoteProtocolError(ErrorCode.FORBIDDEN, "changes of a room this node is not in")
        decoded: list[Change] = []
        errors: list[RemoteProtocolError] = []
        for data in changes:
            try:
                decoded.append(decode_change(data))
            except RemoteProtocolError as exc:
                errors.append(exc)
        inserted = room.log.insert(decoded)
        errors.extend(error for _, error in inserted.refused)
        for error in errors:
            self.counters.inc(RoomCounter.CHANGES_REFUSED, label=error.code)
        if inserted.added:
            self.counters.inc(RoomCounter.CHANGES_ADDED, len(inserted.added))
            for change in inserted.added:
                self._actions.append(PersistChange(room_id=room_id, change=change.encoded))
            recipients = self._recipients(room)
            self._after_log_moved(room)
            self._actions.append(
                SendChanges(room_id=room_id, changes=room.log.encoded(), to=recipients)
            )
        if errors:
            raise errors[0]
        return len(inserted.added)

    def restore(
        self, room_id: bytes, *, secret: bytes, name: str, changes: Sequence[bytes], now: float
    ) -> None:
        """Load a room from the driver's store (what `PersistRoom`/`PersistChange` wrote)."""
        if room_id_of(secret) != room_id:
            raise LocalProtocolError("the stored secret does not derive the room id")
        decoded = [decode_change(c) for c in changes]
        genesis = [c for c in decoded if c.kind is ChangeKind.CREATE]
        if len(genesis) != 1:
            raise LocalProtocolError("a stored log has exactly one genesis")
        room = self._rooms[room_id] = _Room(room_id, secret, name)
        room.log = ChangeLog(genesis[0])
        room.log.insert(decoded)
        me = self.identity.public_key
        room.state = RoomState.MEMBER if room.log.membership.is_member(me) else RoomState.REMOVED
        room.members = room.log.membership.member_keys()

    # ------------------------------------------------------------ helpers

    def _after_log_moved(self, room: _Room) -> None:
        assert room.log is not None
        me = self.identity.public_key
        admitted = room.log.membership.is_member(me)
        if room.state in (RoomState.MEMBER, RoomState.REMOVED):
            self._move(room, Trigger.LOG_ADMITS if admitted else Trigger.LOG_EXCLUDES)
        self._membership_moved(room)

    def _membership_moved(self, room: _Room) -> None:
        assert room.log is not None
        members = room.log.membership.member_keys()
        if members == room.members:
            return
        added = tuple(sorted(set(members) - set(room.members)))
        removed = tuple(sorted(set(room.members) - set(members)))
        room.members = members
        self.counters.inc(RoomCounter.MEMBERS_ADDED, len(added))
        self.counters.inc(RoomCounter.MEMBERS_REMOVED, len(removed))
        self._actions.append(
            MembershipChanged(
                room_id=room.room_id,
                members=members,
                added=added,
                removed=removed,
                state=room.state,
            )
        )

    def _move(self, room: _Room, trigger: Trigger) -> None:
        target = TRANSITIONS[room.state].get(trigger)
        if target is None:
            raise LocalProtocolError(f"{trigger.value} is not allowed in {room.state.value}")
        room.state = target


def _ms(now: float) -> int:
    return int(now * 1000)
