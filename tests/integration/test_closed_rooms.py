"""Issue #10, closed rooms: an outsider who knows (or guesses) a room's id reads nothing.

The attack on each path: an outsider announces itself / JOINs under the room's
id, then a member sends. Before closed rooms, the outsider became an E2EE
recipient (P2P: it was in the room's DHT record set; central: JOIN was open)
and read every later message. Each test waits until the real member got the
message, then checks the outsider got nothing and is not a recipient.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from railgun_ref.client import Client, MessageReceived, connect, fast_profile

from .test_transport_failover import CentralProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(120)]

ROOM = "general"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def central(tmp_path: Path) -> Iterator[CentralProcess]:
    process = CentralProcess(tmp_path / "central.sqlite3")
    process.start()
    try:
        yield process
    finally:
        process.kill()


class Inbox:
    """Every message a client received, collected in the background."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.bodies: list[bytes] = []

    async def collect(self) -> None:
        async for event in self.client:
            if isinstance(event, MessageReceived):
                self.bodies.append(event.body)


@asynccontextmanager
async def clients(
    tmp_path: Path, names: list[str], *, url: str | None
) -> AsyncIterator[dict[str, Inbox]]:
    async with anyio.create_task_group() as tg, AsyncExitStack() as stack:
        inboxes: dict[str, Inbox] = {}
        for name in names:
            bootstrap = [next(iter(inboxes.values())).client.address] if inboxes else []
            client = await stack.enter_async_context(
                connect(
                    data_dir=tmp_path / name,
                    central_url=url,
                    bootstrap=bootstrap,
                    profile=fast_profile(),
                )
            )
            inboxes[name] = Inbox(client)
            tg.start_soon(inboxes[name].collect)
        yield inboxes
        tg.cancel_scope.cancel()


async def outsider_reads_nothing(inboxes: dict[str, Inbox], *, path_state: str) -> None:
    alice, bob, mallory = inboxes["alice"], inboxes["bob"], inboxes["mallory"]
    for member in (alice, bob):
        await member.client.join(ROOM)
    await mallory.client.join(ROOM)  # the attack: it guessed the room's name
    await alice.client.wait_for_members(ROOM, 1, timeout=30)
    await wait_for(lambda: alice.client.state == path_state, 30)
    await anyio.sleep(3)  # time for the outsider's announcement to be found
    await alice.client.send(ROOM, "for members only")
    await wait_for(lambda: b"for members only" in bob.bodies, 30)
    await anyio.sleep(1)
    assert mallory.bodies == []
    assert mallory.client.node_id not in alice.client.members(ROOM)


async def test_outsider_reads_nothing_on_the_p2p_path(tmp_path: Path) -> None:
    """ROOM-5.1, ROOM-6.1: an outsider announcing itself under the room's key gets nothing."""
    async with clients(tmp_path, ["alice", "bob", "mallory"], url=None) as inboxes:
        await outsider_reads_nothing(inboxes, path_state="connected-p2p")


async def test_outsider_reads_nothing_on_the_central_path(
    tmp_path: Path, central: CentralProcess
) -> None:
    """ROOM-6.3, CEN-4.1: an outsider JOINing the room on the central service gets nothing."""
    async with clients(tmp_path, ["alice", "bob", "mallory"], url=central.url) as inboxes:
        await outsider_reads_nothing(inboxes, path_state="connected-aws")


async def test_outsider_reads_nothing_after_a_takedown(
    tmp_path: Path, central: CentralProcess
) -> None:
    """ROOM-5.1 after failover: once the central service is gone, P2P keeps the room closed."""
    async with clients(tmp_path, ["alice", "bob", "mallory"], url=central.url) as inboxes:
        alice = inboxes["alice"]
        for inbox in inboxes.values():
            await inbox.client.join(ROOM)
        await alice.client.wait_for_members(ROOM, 1, timeout=30)
        central.kill()
        await wait_for(lambda: alice.client.state == "connected-p2p", 30)
        await outsider_reads_nothing(inboxes, path_state="connected-p2p")
