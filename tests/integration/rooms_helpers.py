"""Closed rooms for integration tests: a room with N members, made by invitations."""

import anyio

from railgun_ref.client import Client


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
