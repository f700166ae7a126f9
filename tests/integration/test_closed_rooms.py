"""Issue #10, closed rooms: an outsider who knows a room's id reads nothing, on every path.

Each attack is the worst case: the outsider knows the room id (as the central
service does) and even the room's DHT ident, and tries what used to work —
JOIN on the central service, an announcement under the room's DHT key — then
a member sends. Before closed rooms the outsider became an E2EE recipient and
read every later message. Each test waits until the real member got the
message, then checks the outsider got nothing and is no recipient. A removed
member, who knows the secret, reads nothing sent after its removal.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from railgun_ref.client import Client, MessageReceived, RoomMembershipChanged, connect, fast_profile
from railgun_ref.core.errors import ErrorCode, LocalProtocolError
from railgun_ref.dht.service import DhtCounter
from railgun_ref.drivers.central_client import CentralError, connect_central
from railgun_ref.drivers.transport import Failure, FailureKind, TransportCounter, _StateStore
from railgun_ref.rooms.announce import room_announcement
from railgun_ref.rooms.ids import dht_ident_of
from railgun_ref.transport import p2p

from .rooms_helpers import make_room, wait_for_members
from .test_transport_failover import CentralProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(120)]


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
    """Every message and membership event a client got, collected in the background."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.bodies: list[bytes] = []
        self.membership: list[RoomMembershipChanged] = []

    async def collect(self) -> None:
        async for event in self.client:
            if isinstance(event, MessageReceived):
                self.bodies.append(event.body)
            elif isinstance(event, RoomMembershipChanged):
                self.membership.append(event)


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


async def announce_as_outsider(outsider: Client, member: Client, room: bytes) -> None:
    """The DHT attack: an announcement under the room's (leaked) DHT key, with an open
    room's value and with a proof made from a guessed secret."""
    ident = dht_ident_of(member.transport.rooms_core.secret(room))
    host, port = outsider.address
    for value in (
        p2p.encode_announcement(outsider.address),
        room_announcement(bytes(32), publisher=outsider.public_key, host=host, port=port),
    ):
        await outsider.transport.host.announce_room(ident, value)


def holder_refusals(*holders: Client) -> int:
    """ROOM-6.2: room records the holders refused on STORE for their proof."""
    return sum(
        h.transport.host.node.dht.counters.get_count(DhtCounter.ROOM_PROOF_REFUSED, label)
        for h in holders
        for label in ErrorCode
    )


async def central_join_refused(url: str, outsider: Client, member: Client, room: bytes) -> None:
    """The central attack: JOIN with the room's real (leaked) log, and with no proof."""
    log = member.transport.rooms_core.changes(room)
    async with connect_central(url, outsider.transport.identity) as session:
        for changes in (log, (b"\x00",)):
            with pytest.raises(CentralError) as refused:
                await session.join(room, changes)
            assert "NOT_MEMBER" in str(refused.value)


async def members_only(inboxes: dict[str, Inbox], room: bytes, text: str) -> None:
    """alice sends; bob gets it; mallory gets nothing and is nobody's recipient."""
    alice, bob, mallory = inboxes["alice"], inboxes["bob"], inboxes["mallory"]
    await alice.client.send(room, text)
    await wait_for(lambda: text.encode() in bob.bodies, 30)
    await anyio.sleep(1)  # room for a stray delivery to show up
    assert mallory.bodies == []
    for member in (alice, bob):
        assert mallory.client.node_id not in member.client.members(room)
        assert mallory.client.node_id not in member.client.transport.reachable_members(room)


async def test_outsider_reads_nothing_on_the_p2p_path(tmp_path: Path) -> None:
    """ROOM-5.1, ROOM-6.1, ROOM-6.2: announcements under the room's DHT key by an outsider
    are refused by members; it is no recipient; joining by an id is refused (ROOM-2.4)."""
    async with clients(tmp_path, ["alice", "bob", "mallory"], url=None) as inboxes:
        alice, bob, mallory = (inboxes[n].client for n in ("alice", "bob", "mallory"))
        room = await make_room(alice, bob)
        with pytest.raises(LocalProtocolError, match=r"ROOM-2\.4"):
            await mallory.join(room)
        with pytest.raises(LocalProtocolError, match="plain name"):
            await mallory.join("general")
        await announce_as_outsider(mallory, alice, room)
        # ROOM-6.2: the holders (the members here) refuse both on STORE; one held by the
        # outsider itself and found by a member is refused there by ROOM-6.1.
        await wait_for(lambda: holder_refusals(alice, bob) >= 2, 30)
        await members_only(inboxes, room, "for members only")


async def test_outsider_reads_nothing_on_the_central_path(
    tmp_path: Path, central: CentralProcess
) -> None:
    """ROOM-6.3, CEN-4.1: JOIN by an outsider, even with the room's real log, is refused;
    nothing the members send reaches it."""
    async with clients(tmp_path, ["alice", "bob", "mallory"], url=central.url) as inboxes:
        alice, bob, mallory = (inboxes[n].client for n in ("alice", "bob", "mallory"))
        room = await make_room(alice, bob)
        await wait_for(lambda: alice.state == "connected-aws", 30)
        await central_join_refused(central.url, mallory, alice, room)
        await members_only(inboxes, room, "for members only")


async def test_outsider_reads_nothing_after_a_takedown(
    tmp_path: Path, central: CentralProcess
) -> None:
    """ROOM-5.1 after failover: with the central service gone, P2P keeps the room closed."""
    async with clients(tmp_path, ["alice", "bob", "mallory"], url=central.url) as inboxes:
        alice, bob, mallory = (inboxes[n].client for n in ("alice", "bob", "mallory"))
        room = await make_room(alice, bob)
        await central_join_refused(central.url, mallory, alice, room)
        central.kill()
        await wait_for(lambda: alice.state == "connected-p2p", 30)
        await announce_as_outsider(mallory, alice, room)
        await wait_for(lambda: holder_refusals(alice, bob) >= 2, 30)
        await members_only(inboxes, room, "after the takedown")


@pytest.mark.parametrize("path", ["central", "p2p"])
async def test_a_removed_member_reads_nothing_sent_after_its_removal(
    tmp_path: Path, central: CentralProcess, path: str
) -> None:
    """ROOM-5.2, ROOM-5.3, ROOM-6.1, ROOM-6.3: carol, removed by alice, gets what was sent
    before and nothing after, though she keeps the room secret; what she still sends is
    shown to nobody."""
    url = central.url if path == "central" else None
    async with clients(tmp_path, ["alice", "bob", "carol"], url=url) as inboxes:
        alice, bob, carol = (inboxes[n].client for n in ("alice", "bob", "carol"))
        room = await make_room(alice, bob, carol)
        await alice.send(room, "before")
        await wait_for(lambda: all(b"before" in inboxes[n].bodies for n in ("bob", "carol")), 30)
        alice.remove(room, carol.public_key)
        await wait_for_members([alice, bob], room, 1)
        assert carol.transport.rooms_core.secret(room)  # she still knows the secret
        await carol.send(room, "still here?")
        await alice.send(room, "after, from alice")
        await bob.send(room, "after, from bob")
        await wait_for(lambda: b"after, from alice" in inboxes["bob"].bodies, 30)
        await wait_for(lambda: b"after, from bob" in inboxes["alice"].bodies, 30)
        await anyio.sleep(1)
        assert inboxes["carol"].bodies == [b"before"]
        for name in ("alice", "bob"):
            assert b"still here?" not in inboxes[name].bodies


async def test_a_room_joined_by_name_before_closed_rooms_is_refused_at_start(
    tmp_path: Path,
) -> None:
    """ROOM-2.4: a client whose state still lists a room joined by a plain name reports it
    refused (a Failure naming ROOM-2.4, a counter) and is in no such room."""
    state = _StateStore(tmp_path / "alice" / "transport.sqlite3")
    state._db.execute("INSERT INTO rooms VALUES (?)", (b"general",))
    state.close()
    async with connect(data_dir=tmp_path / "alice", profile=fast_profile()) as alice:
        with anyio.fail_after(10):
            event = await alice.next_event()
            while not isinstance(event, Failure):
                event = await alice.next_event()
        assert event.kind is FailureKind.ROOMS and "ROOM-2.4" in event.detail
        assert alice.transport.counters.get_count(TransportCounter.LEGACY_ROOM_REFUSED) == 1
        assert alice.rooms == frozenset()
        with pytest.raises(LocalProtocolError, match="plain name"):
            await alice.send("general", "hello?")
