"""Rooms cores wired by a simulated network: `RoomNet` and `room_of` (a room with N members).

`RoomNet` drains every core's actions and delivers `SendChanges` and
`DeliverInvitation` to the cores they name, unless a partition separates
sender and receiver; undelivered changes are simply lost (a member re-sends
its whole log whenever it learns something, so healing = one `sync`).
"""

import hashlib
import random
from collections.abc import Iterable
from typing import assert_never

from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.identity.keys import Identity, RandomBytes
from railgun_ref.rooms import (
    DeliverInvitation,
    InvitationLapsed,
    MembershipChanged,
    PersistChange,
    PersistRoom,
    Role,
    RoomAction,
    RoomsCore,
    RoomState,
    SendChanges,
)

T0 = 1_700_000_000.0
_HOLDS_LOG = (RoomState.MEMBER, RoomState.REMOVED, RoomState.LEFT)


def identity(name: str) -> Identity:
    return Identity.from_seed(hashlib.sha256(b"rooms-test/" + name.encode()).digest())


def byte_source(label: str) -> RandomBytes:
    """Reproducible 'random' bytes: SHA-256 in counter mode."""
    counter = 0

    def take(size: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < size:
            out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
            counter += 1
        return out[:size]

    return take


class RoomNet:
    """Named rooms cores and a network between them, with partitions."""

    def __init__(self, names: Iterable[str]) -> None:
        self.cores = {
            name: RoomsCore(identity(name), random_bytes=byte_source(name)) for name in names
        }
        self.by_key = {core.identity.public_key: name for name, core in self.cores.items()}
        self.groups: list[set[str]] = [set(self.cores)]
        self.log: list[tuple[str, RoomAction]] = []
        self.errors: list[RemoteProtocolError] = []
        self.auto_accept = True

    def key(self, name: str) -> bytes:
        return self.cores[name].identity.public_key

    def partition(self, *groups: Iterable[str]) -> None:
        self.groups = [set(g) for g in groups]

    def heal(self) -> None:
        self.groups = [set(self.cores)]

    def connected(self, a: str, b: str) -> bool:
        return any(a in g and b in g for g in self.groups)

    def pump(self, *, now: float) -> None:
        """Deliver until every core is idle."""
        busy = True
        while busy:
            busy = False
            for name, core in self.cores.items():
                while (action := core.next_action()) is not None:
                    busy = True
                    self.log.append((name, action))
                    self._deliver(name, action, now=now)

    def _deliver(self, sender: str, action: RoomAction, *, now: float) -> None:
        match action:
            case SendChanges(room_id=room_id, changes=changes, to=to):
                for key in to:
                    target = self.by_key.get(key)
                    if target is not None and self.connected(sender, target):
                        self._changes_to(target, room_id, changes, now=now)
            case DeliverInvitation(invitee=invitee, invitation=invitation):
                target = self.by_key.get(invitee)
                if target is not None and self.connected(sender, target):
                    core = self.cores[target]
                    room_id = core.receive_invitation(invitation, now=now)
                    if self.auto_accept:
                        core.accept(room_id, now=now)
            case PersistRoom() | PersistChange() | MembershipChanged() | InvitationLapsed():
                pass
            case _:
                assert_never(action)

    def _changes_to(
        self, target: str, room_id: bytes, changes: tuple[bytes, ...], *, now: float
    ) -> None:
        try:
            self.cores[target].receive_changes(room_id, changes, now=now)
        except RemoteProtocolError as exc:
            self.errors.append(exc)

    def sync(self, room_id: bytes, *, now: float) -> None:
        """Every core that has the room's log re-sends it to every core it can reach."""
        holding = [n for n, c in self.cores.items() if c.state(room_id) in _HOLDS_LOG]
        for name in holding:
            changes = self.cores[name].changes(room_id)
            for target in holding:
                if target != name and self.connected(name, target):
                    self._changes_to(target, room_id, changes, now=now)
        self.pump(now=now)

    def members(self, name: str, room_id: bytes) -> set[str]:
        return {self.by_key[k] for k in self.cores[name].members(room_id)}


def room_of(
    names: list[str], *, others: Iterable[str] = (), now: float = T0
) -> tuple[RoomNet, bytes]:
    """A room created by names[0] with every other name invited and accepted; `others`
    are nodes on the same network that are not in the room."""
    net = RoomNet([*names, *others])
    creator = net.cores[names[0]]
    room_id = creator.create_room(name="test room", now=now)
    for name in names[1:]:
        creator.invite(room_id, net.key(name), now=now)
        net.pump(now=now)
    return net, room_id


def random_change(net: RoomNet, room_id: bytes, rng: random.Random, *, now: float) -> None:
    """One membership change by a random member: invite, remove or leave (never fails)."""
    actors = [n for n, c in net.cores.items() if c.state(room_id) is RoomState.MEMBER]
    if not actors:
        return
    actor = rng.choice(actors)
    core = net.cores[actor]
    me = core.membership(room_id).members[net.key(actor)]
    others = [n for n in net.cores if n != actor]
    choice = rng.random()
    target = rng.choice(others)
    if choice < 0.6:
        target = rng.choice([n for n in others if net.connected(actor, n)] or others)
        if (
            target not in net.members(actor, room_id)
            and net.key(target) not in core.membership(room_id).invited
        ):
            role = Role.ADMIN if me is Role.ADMIN and rng.random() < 0.3 else Role.MEMBER
            core.invite(room_id, net.key(target), now=now, role=role)
    elif choice < 0.85:
        if me is Role.ADMIN and net.key(target) != core.membership(room_id).creator:
            core.remove(room_id, net.key(target), now=now)
    elif net.key(actor) != core.membership(room_id).creator:
        core.leave(room_id, now=now)
    net.pump(now=now)


def converged(net: RoomNet, room_id: bytes) -> bool:
    """Every core holding the log computes the same members, invitees and refusals."""
    views = {
        (c.membership(room_id).member_keys(), tuple(sorted(c.membership(room_id).refused.items())))
        for c in net.cores.values()
        if c.state(room_id) in _HOLDS_LOG
    }
    return len(views) == 1
