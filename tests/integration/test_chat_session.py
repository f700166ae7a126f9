"""`ChatSession` (railgun-ref chat's commands) on real clients, peer to peer on localhost:
what each command answers, and every mistake ending in one ``!`` line, never an exception.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from railgun_ref.apps.chat import INVITATION_PREFIX, ChatOptions, ChatSession, ChatStore
from railgun_ref.client import Client, connect, fast_profile
from railgun_ref.core.ids import Address

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(90)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Member:
    """A session whose output lines are kept in `out`."""

    def __init__(self, client: Client, directory: Path) -> None:
        self.client = client
        self.out: list[str] = []
        self.store = ChatStore(directory / "chat.sqlite3")
        options = ChatOptions(data_dir=directory)
        self.session = ChatSession(client, self.store, options, self.out.append)

    async def say(self, line: str) -> list[str]:
        """Type `line`; the lines it printed."""
        before = len(self.out)
        assert await self.session.handle(line)
        return self.out[before:]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        with anyio.fail_after(timeout):
            while not predicate():
                await anyio.sleep(0.05)


@asynccontextmanager
async def member(tmp_path: Path, name: str, bootstrap: Address | None) -> AsyncIterator[Member]:
    directory = tmp_path / name
    async with connect(
        data_dir=directory,
        profile=fast_profile(),
        bootstrap=[bootstrap] if bootstrap else None,
    ) as client:
        one = Member(client, directory)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(one.session._show_events)
                yield one
                tg.cancel_scope.cancel()
        finally:
            one.store.close()


async def _invite(alice: Member, bob: Member) -> str:
    answer = await alice.say(f"/invite {bob.client.public_key.hex()} bob")
    assert answer[0].startswith("* invitation to lobby for bob, valid 7 days")
    assert answer[1].startswith(INVITATION_PREFIX)
    saved = (
        alice.client.transport.data_dir
        / "invitations"
        / f"lobby-{bob.client.node_id.hex()[:8]}.txt"
    )
    assert answer[2] == f"* also saved in {saved}: on this machine they can /accept {saved}"
    return answer[1]


async def test_commands_answer_and_mistakes_are_one_line(tmp_path: Path) -> None:
    async with (
        member(tmp_path, "alice", None) as alice,
        member(tmp_path, "bob", alice.client.address) as bob,
        member(tmp_path, "carol", alice.client.address) as carol,
    ):
        assert await alice.say("hello") == [
            "! no current room: /create NAME, /accept an invitation or /room NAME"
        ]
        assert (await alice.say("/create lobby"))[0].startswith("* created lobby")
        assert "already have a room named 'lobby'" in (await alice.say("/create lobby"))[0]
        assert (await alice.say("hello"))[0].startswith("! nobody else is in this room yet")
        assert "64 hex digits" in (await alice.say("/invite zz"))[0]
        own = await alice.say(f"/invite {alice.client.public_key.hex()}")
        assert own == ["! that is your own key: ask the person you invite for theirs"]
        assert await alice.say("/invite") == ["! usage: /invite KEY [NICK]"]
        bad_nick = await alice.say(f"/invite {bob.client.public_key.hex()} cafe")
        assert bad_nick == ["! a nickname must not look like a node id (use a letter)"]

        line = await _invite(alice, bob)
        (saved,) = (tmp_path / "alice" / "invitations").iterdir()
        assert saved.read_text() == line + "\n" and saved.stat().st_mode & 0o777 == 0o600
        wrong = await carol.say(f"/accept {line}")  # sealed to bob: carol cannot use it
        assert wrong == ["! refused: invitation for another identity (FORBIDDEN)"]
        assert await bob.say(f"/accept {saved}") == [
            "* joined room1 (a local name: /accept INVITATION NAME chooses another)"
        ]
        assert "already" in (await bob.say(f"/accept {line} again"))[0]
        assert "damaged" in (await bob.say(f"/accept {line[:-3]}x!"))[0]

        await alice.wait_for(lambda: "* lobby: bob joined" in alice.out)
        await alice.wait_for(lambda: bool(alice.client.reachable_members("lobby")))
        assert await alice.say("//slash first") == []
        await bob.wait_for(lambda: any(o.endswith("via p2p: /slash first") for o in bob.out))

        members = await alice.say("/members")
        assert members[0].endswith("(you)") and members[1].startswith("* lobby: ")
        assert members[1].split(": ")[1].split(",")[0].endswith("(bob)")
        nobody = await alice.say("/nick nobody x")
        assert nobody == ["! no member matches 'nobody' (/members lists them)"]
        assert "must not look like a node id" in (await alice.say("/nick bob cafe"))[0]
        assert (await alice.say("/nick bob robert"))[0].endswith("is robert here")
        assert await alice.say("/rooms") == ["* lobby: you and 1 other(s) (current)"]
        assert "no room named 'nope'" in (await alice.say("/room nope"))[0]
        assert await alice.say("/remove robert") == ["* removed robert from lobby"]
        assert alice.client.members("lobby") == frozenset()

        assert await alice.say("/leave") == ["* you left lobby"]
        assert (await alice.say("hello"))[0].startswith("! no current room")
        assert await alice.say("/frobnicate") == [
            "! unknown command /frobnicate (/help lists them)"
        ]
        assert (await alice.say("/"))[0].startswith("a line that is not a command")
        assert not await alice.session.handle("/quit")
