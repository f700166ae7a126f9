"""A room's membership log and the one rule that turns it into a member list (ROOM-3.5..3.8).

Theory of operation
===================

1. The log is a DAG of signed changes (`railgun_ref.rooms.changes`): each
   names its parents' hashes, the genesis names none. A change joins a log
   only when all its parents are there (until then it waits as an *orphan*),
   so every log a member holds is closed under ancestry (ROOM-3.5).
2. The changes are put in one total order: by *depth* (the genesis 0, any
   other change one more than its deepest parent), then by hash. The order
   extends causality — a parent always comes before its child — and depends
   only on the set of changes, never on the order they arrived in (ROOM-3.6).
3. The order is replayed from the genesis. A change *counts* only if, at its
   point in the replay, its signer may make it (ROOM-3.7): the signer is a
   member (an ACCEPT: the invitee of a pending, unused, unexpired ADD), with
   the role the kind needs. Changes that do not count change nothing.
4. Removal wins (ROOM-3.8). A change *concurrent* with a counted REMOVE or
   LEAVE of its signer — neither is an ancestor of the other — does not
   count, wherever the order put it: a removed member cannot backdate a
   change (give it old parents) to act after its removal. Likewise an ADD of
   a member concurrent with that member's counted removal does not count:
   re-adding needs a change that has seen the removal. When a removal voids
   a change the replay already counted, the change is marked void and the
   replay starts again; the void set only grows, so this ends after at most
   as many restarts as there are changes.
5. Rotation (ROOM-3.9): a counted ROTATE moves its signer's membership and
   role (and creatorship) to its subject, the signer's new key, and counts as
   the old key's departure for rule 4: a change signed by the old key
   concurrent with its rotation does not count, so a retired key cannot
   act on, whether its holder lost it or not.
6. Everything above is a pure function of the set of changes, so two members
   holding the same set compute the same list, whatever partitions they went
   through (convergence); inserting a change twice is a no-op (idempotence).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.rooms.changes import Change, ChangeKind, Role

#: ROOM-3.5: a log holds at most this many changes; more are refused (QUOTA).
MAX_CHANGES: Final = 4096
#: ROOM-3.5: at most this many changes wait for a missing parent.
MAX_ORPHANS: Final = 256


class Refusal(StrEnum):
    """ROOM-3.7, ROOM-3.8: why a change in the log does not count."""

    NOT_MEMBER = "not-member"  #: its signer is not a member at its point
    NOT_ALLOWED = "not-allowed"  #: its signer's role does not allow it
    REMOVED_CONCURRENTLY = "removed-concurrently"  #: concurrent with a removal it conflicts with
    ALREADY = "already"  #: adds a member or an invitee
    NO_INVITATION = "no-invitation"  #: an ACCEPT of no pending ADD for its signer
    EXPIRED = "expired"  #: an ACCEPT issued after its ADD expired
    REPLAYED = "replayed"  #: an ACCEPT of an ADD already accepted


@dataclass(frozen=True, slots=True, kw_only=True)
class Invitee:
    """A pending invitation: who is invited, by which ADD, until when."""

    key: bytes
    add_hash: bytes
    inviter: bytes
    role: Role
    expires_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Membership:
    """The outcome of a log (ROOM-3.6): who is in, who is invited, what did not count."""

    room_id: bytes
    creator: bytes
    members: Mapping[bytes, Role]  #: Ed25519 key -> role
    invited: Mapping[bytes, Invitee]  #: Ed25519 key -> its pending ADD
    refused: Mapping[bytes, Refusal]  #: change hash -> why it does not count
    order: tuple[bytes, ...]  #: every change hash, in the total order

    def is_member(self, key: bytes) -> bool:
        return key in self.members

    def member_keys(self) -> tuple[bytes, ...]:
        """The members' Ed25519 keys, sorted (the E2EE recipients, ROOM-5.1)."""
        return tuple(sorted(self.members))


class _Replay:
    """One replay of the ordered log with a given void set (theory of operation 3, 4)."""

    def __init__(
        self, genesis: Change, ancestors: Mapping[bytes, int], index: Mapping[bytes, int]
    ) -> None:
        self.ancestors = ancestors
        self.index = index
        self.members: dict[bytes, Role] = {genesis.signer: Role.ADMIN}
        self.invited: dict[bytes, Change] = {}
        self.used: set[bytes] = set()
        self.departures: dict[bytes, list[bytes]] = {}
        self.counted_by: dict[bytes, list[bytes]] = {}
        self.refused: dict[bytes, Refusal] = {}
        self.creator = genesis.signer

    def _is_ancestor(self, older: bytes, change: Change) -> bool:
        return bool(self.ancestors[change.hash] >> self.index[older] & 1)

    def _concurrent_departure(self, key: bytes, change: Change) -> bool:
        return any(not self._is_ancestor(r, change) for r in self.departures.get(key, ()))

    def why_not(self, change: Change) -> Refusal | None:
        """ROOM-3.7, ROOM-3.8: why `change` does not count at this point, or None."""
        if self._concurrent_departure(change.signer, change):
            return Refusal.REMOVED_CONCURRENTLY
        if change.kind is ChangeKind.ACCEPT:
            return self._why_not_accept(change)
        role = self.members.get(change.signer)
        if role is None:
            return Refusal.NOT_MEMBER
        if change.kind is ChangeKind.ROTATE:
            if change.subject in self.members or change.subject in self.invited:
                return Refusal.ALREADY
            if self._concurrent_departure(change.subject, change):
                return Refusal.REMOVED_CONCURRENTLY
        elif change.kind is ChangeKind.ADD:
            if change.role is Role.ADMIN and role is not Role.ADMIN:
                return Refusal.NOT_ALLOWED
            if change.subject in self.members or change.subject in self.invited:
                return Refusal.ALREADY
            if self._concurrent_departure(change.subject, change):
                return Refusal.REMOVED_CONCURRENTLY
        # A REMOVE of a non-member still counts: it is the tombstone that makes a
        # concurrent re-add lose (ROOM-3.8), and applying it twice changes nothing.
        elif change.kind is ChangeKind.REMOVE and (
            role is not Role.ADMIN or change.subject == self.creator
        ):
            return Refusal.NOT_ALLOWED
        return None

    def _why_not_accept(self, change: Change) -> Refusal | None:
        if change.invitation in self.used:
            return Refusal.REPLAYED
        add = self.invited.get(change.signer)
        if add is None or add.hash != change.invitation:
            return Refusal.NO_INVITATION
        if change.issued_ms > add.expires_ms:
            return Refusal.EXPIRED
        return None

    def apply(self, change: Change) -> set[bytes]:
        """Count `change`; the hashes it voids retroactively (ROOM-3.8), if any."""
        self.counted_by.setdefault(change.signer, []).append(change.hash)
        kind = change.kind
        if kind is ChangeKind.ADD:
            self.invited[change.subject] = change
        elif kind is ChangeKind.ACCEPT:
            add = self.invited.pop(change.signer)
            self.used.add(add.hash)
            self.members[change.signer] = add.role
        elif kind is ChangeKind.ROTATE:
            self.members[change.subject] = self.members.pop(change.signer)
            if change.signer == self.creator:
                self.creator = change.subject
            return self._depart(change.signer, change)
        elif kind in (ChangeKind.REMOVE, ChangeKind.LEAVE):
            self.members.pop(change.subject, None)
            self.invited.pop(change.subject, None)
            return self._depart(change.subject, change)
        return set()

    def _depart(self, key: bytes, change: Change) -> set[bytes]:
        """`key` leaves at `change`; the changes of `key` concurrent with it (ROOM-3.8)."""
        self.departures.setdefault(key, []).append(change.hash)
        return {
            h
            for h in self.counted_by.get(key, ())
            if h != change.hash and not self._is_ancestor(h, change)
        }


def _ordered(changes: Mapping[bytes, Change]) -> list[Change]:
    """ROOM-3.6: (depth, hash) order; every parent must be in `changes`."""
    depth: dict[bytes, int] = {}

    def depth_of(change: Change) -> int:
        stack = [change]
        while stack:
            top = stack[-1]
            missing = [changes[p] for p in top.parents if p not in depth]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            depth[top.hash] = 1 + max((depth[p] for p in top.parents), default=-1)
        return depth[change.hash]

    return sorted(changes.values(), key=lambda c: (depth_of(c), c.hash))


def _ancestor_masks(order: list[Change]) -> tuple[dict[bytes, int], dict[bytes, int]]:
    index = {change.hash: i for i, change in enumerate(order)}
    masks: dict[bytes, int] = {}
    for change in order:
        mask = 0
        for parent in change.parents:
            mask |= masks[parent] | (1 << index[parent])
        masks[change.hash] = mask
    return masks, index


def resolve(genesis: Change, changes: Mapping[bytes, Change]) -> Membership:
    """ROOM-3.6..3.8: the membership a closed set of changes gives (theory of operation)."""
    order = _ordered(changes)
    if not order or order[0].hash != genesis.hash:
        raise LocalProtocolError("a log starts with its genesis")
    ancestors, index = _ancestor_masks(order)
    void: set[bytes] = set()
    while True:
        replay = _Replay(genesis, ancestors, index)
        voided: set[bytes] = set()
        for change in order[1:]:
            if change.hash in void:
                replay.refused[change.hash] = Refusal.REMOVED_CONCURRENTLY
                continue
            why = replay.why_not(change)
            if why is not None:
                replay.refused[change.hash] = why
                continue
            voided = replay.apply(change)
            if voided:
                break
        if not voided:
            return _membership(genesis, replay, order)
        void |= voided


def _membership(genesis: Change, replay: _Replay, order: list[Change]) -> Membership:
    invited = {
        key: Invitee(
            key=key,
            add_hash=add.hash,
            inviter=add.signer,
            role=add.role,
            expires_ms=add.expires_ms,
        )
        for key, add in replay.invited.items()
    }
    return Membership(
        room_id=genesis.room_id,
        creator=replay.creator,
        members=MappingProxyType(dict(replay.members)),
        invited=MappingProxyType(invited),
        refused=MappingProxyType(dict(replay.refused)),
        order=tuple(change.hash for change in order),
    )


_REFUSAL_CODES: Final[Mapping[Refusal, ErrorCode]] = MappingProxyType(
    {
        Refusal.NOT_MEMBER: ErrorCode.FORBIDDEN,
        Refusal.NOT_ALLOWED: ErrorCode.FORBIDDEN,
        Refusal.REMOVED_CONCURRENTLY: ErrorCode.FORBIDDEN,
        Refusal.ALREADY: ErrorCode.FORBIDDEN,
        Refusal.NO_INVITATION: ErrorCode.FORBIDDEN,
        Refusal.EXPIRED: ErrorCode.EXPIRED,
        Refusal.REPLAYED: ErrorCode.REPLAY,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Inserted:
    """What `ChangeLog.insert` did: the changes new to the log and the ones it refused."""

    added: tuple[Change, ...]
    refused: tuple[tuple[bytes, RemoteProtocolError], ...]  #: (change hash, why)


class ChangeLog:
    """One room's log: changes by hash, orphans waiting for parents, the membership (ROOM-3.5).

    A change is stored only if it counts in the log made of its own ancestors
    (ROOM-3.5: its signer was entitled to it in everything it had seen), so
    changes from non-members, removed members, replayed or expired
    invitations are refused on arrival and never fill the log.
    """

    def __init__(self, genesis: Change) -> None:
        if genesis.kind is not ChangeKind.CREATE:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "a log starts with a CREATE")
        self.genesis = genesis
        self.room_id = genesis.room_id
        self._changes: dict[bytes, Change] = {genesis.hash: genesis}
        self._orphans: dict[bytes, Change] = {}
        self._refused: dict[bytes, None] = {}  #: refused hashes, oldest first (bounded)
        self._membership = resolve(genesis, self._changes)

    @property
    def membership(self) -> Membership:
        return self._membership

    @property
    def orphans(self) -> int:
        return len(self._orphans)

    def __contains__(self, change_hash: bytes) -> bool:
        return change_hash in self._changes

    def __len__(self) -> int:
        return len(self._changes)

    def encoded(self) -> tuple[bytes, ...]:
        """Every change's wire form, in the total order (what a peer needs to converge)."""
        return tuple(self._changes[h].encoded for h in self._membership.order)

    def ordered(self) -> tuple[Change, ...]:
        """Every change, in the total order (ROOM-3.6)."""
        return tuple(self._changes[h] for h in self._membership.order)

    def heads(self) -> tuple[bytes, ...]:
        """Hashes of the changes no other change names as parent: a new change's parents."""
        named = {p for change in self._changes.values() for p in change.parents}
        return tuple(sorted(h for h in self._changes if h not in named))

    def get(self, change_hash: bytes) -> Change | None:
        return self._changes.get(change_hash)

    def insert(self, changes: Iterable[Change]) -> Inserted:
        """Add changes (any order, repeats welcome); never raises for what a peer sent."""
        added: list[Change] = []
        refused: list[tuple[bytes, RemoteProtocolError]] = []
        for change in changes:
            if change.hash in self._changes or change.hash in self._orphans:
                continue  # ROOM-3.5: a replayed change is a no-op
            problem = self._problem(change)
            if problem is not None:
                refused.append((change.hash, problem))
                continue
            self._orphans[change.hash] = change
            self._adopt_orphans(added, refused)
        if added:
            self._membership = resolve(self.genesis, self._changes)
        return Inserted(added=tuple(added), refused=tuple(refused))

    def _problem(self, change: Change) -> RemoteProtocolError | None:
        if change.room_id != self.room_id:
            return RemoteProtocolError(ErrorCode.WRONG_KEY, "a change of another room")
        if change.kind is ChangeKind.CREATE:
            return RemoteProtocolError(ErrorCode.FORBIDDEN, "a second genesis")
        if any(p in self._refused for p in change.parents):
            return RemoteProtocolError(ErrorCode.FORBIDDEN, "a parent was refused")
        if len(self._changes) >= MAX_CHANGES:
            return RemoteProtocolError(ErrorCode.QUOTA, "the room's log is full")
        if len(self._orphans) >= MAX_ORPHANS:
            return RemoteProtocolError(ErrorCode.QUOTA, "too many changes wait for parents")
        return None

    def _adopt_orphans(
        self, added: list[Change], refused: list[tuple[bytes, RemoteProtocolError]]
    ) -> None:
        progress = True
        while progress:
            progress = False
            for change in list(self._orphans.values()):
                if any(p in self._refused for p in change.parents):
                    del self._orphans[change.hash]
                    self._remember_refused(change.hash)
                    refused.append(
                        (change.hash, RemoteProtocolError(ErrorCode.FORBIDDEN, "parent refused"))
                    )
                elif all(p in self._changes for p in change.parents):
                    del self._orphans[change.hash]
                    progress = True
                    why = self._refusal_in_past(change)
                    if why is None:
                        self._changes[change.hash] = change
                        added.append(change)
                    else:
                        self._remember_refused(change.hash)
                        error = RemoteProtocolError(_REFUSAL_CODES[why], f"room change: {why}")
                        refused.append((change.hash, error))

    def _remember_refused(self, change_hash: bytes) -> None:
        """Children of a refused change are refused too; the memory of it is bounded."""
        self._refused[change_hash] = None
        if len(self._refused) > MAX_CHANGES:
            del self._refused[next(iter(self._refused))]

    def _refusal_in_past(self, change: Change) -> Refusal | None:
        """ROOM-3.5: does `change` count in the log of its ancestors and itself?"""
        past: dict[bytes, Change] = {change.hash: change}
        stack = list(change.parents)
        while stack:
            h = stack.pop()
            if h not in past:
                past[h] = self._changes[h]
                stack.extend(past[h].parents)
        return resolve(self.genesis, past).refused.get(change.hash)
