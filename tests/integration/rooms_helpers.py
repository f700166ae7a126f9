"""Closed rooms for integration tests: a room with N members, made by invitations."""

import os

import anyio

from railgun_ref.client import Client
from railgun_ref.identity.keys import Identity
from railgun_ref.rooms import RoomsCore

T0 = 1_700_000_000.0  #: the time the test rooms' changes say they were made


async def make_room(
    creator: Client, *others: Client, name: str = "room", timeout: float = 30
) -> bytes:
    """`creator` creates a room and invites `others`, who accept; returns the room id once
    every member's log counts every member (their membership messages arrived)."""
    room = creator.create_room(name)
    for other in others:
        other.accept(creator.invite(room, other.public_key), name=name)
    everyone = [creator, *others]
    await wait_for_members(everyone, room, len(everyone) - 1, timeout=timeout)
    return room


async def wait_for_members(
    clients: list[Client], room: bytes, count: int, *, timeout: float = 30
) -> None:
    """Wait until every client counts exactly `count` other members in `room`."""
    with anyio.fail_after(timeout):
        while not all(len(c.members(room)) == count for c in clients):
            await anyio.sleep(0.05)


def room_log(
    creator: Identity, *members: Identity, now: float = T0
) -> tuple[bytes, tuple[bytes, ...]]:
    """A closed room with these members, for tests that speak to the central service
    directly: (room id, its membership log), the proof every JOIN carries (ROOM-6.3)."""
    core = RoomsCore(creator, random_bytes=os.urandom)
    room = core.create_room(name="test", now=now)
    for member in members:
        invitation = core.invite(room, member.public_key, now=now)
        joiner = RoomsCore(member, random_bytes=os.urandom)
        joiner.receive_invitation(invitation, now=now)
        joiner.accept(room, now=now)
        core.receive_changes(room, joiner.changes(room), now=now)
    return room, core.changes(room)
