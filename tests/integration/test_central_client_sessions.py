"""Mailbox deliveries across central sessions: nothing lost, nothing shown twice (HT-4.3).

A session can end (takedown, reset, failover) while DELIVER frames are read
off the socket but not yet taken with `receive()`. Those entries were never
handed to the application nor ACKed, so the service pushes them again on the
next session, and the client must deliver them then rather than drop them as
duplicates. Each test runs its own in-process central service on 127.0.0.1
with a fresh SQLite mailbox.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
import pytest

from railgun_ref.drivers.central import CentralConfig, CentralService, MailboxStore, serve_central
from railgun_ref.drivers.central_client import CentralClient, connect_central
from railgun_ref.identity.keys import Identity

from .rooms_helpers import room_log

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(60)]

ALICE = Identity.from_seed(bytes([1]) * 32)
BOB = Identity.from_seed(bytes([2]) * 32)
ROOM, LOG = room_log(ALICE, BOB)  #: a closed room; LOG is its JOIN proof (ROOM-6.3)


@asynccontextmanager
async def central_service(tmp_path: Path) -> AsyncIterator[tuple[str, MailboxStore]]:
    store = MailboxStore(tmp_path / "central.sqlite3")
    try:
        async with anyio.create_task_group() as tg:
            url = await tg.start(partial(serve_central, CentralService(store, CentralConfig())))
            yield url, store
            tg.cancel_scope.cancel()
    finally:
        store.close()


def unacked(store: MailboxStore) -> list[int]:
    return [row.seq for row in store.pending(BOB.node_id, after=0, now_ms=0, limit=100)]


async def wait_buffered(client: CentralClient, count: int) -> None:
    """Until `count` deliveries are read off the socket (bounded: fails after 5 s)."""
    with anyio.fail_after(5):
        while client.buffered < count:
            await anyio.sleep(0.01)


async def take(client: CentralClient, count: int) -> list[int]:
    seqs = []
    with anyio.fail_after(5):
        for _ in range(count):
            seqs.append((await client.receive()).seq)
    return seqs


async def test_buffered_deliveries_survive_the_end_of_a_session(tmp_path: Path) -> None:
    """HT-4.3, CEN-4.5, CEN-4.6: with one `seen_seqs` set shared across sessions, deliveries
    read off the socket but not taken when the session ends are delivered by the next
    session (not dropped as duplicates) and can be ACKed: the mailbox ends empty, and the
    entry handed out and ACKed before is not delivered again."""
    seen: set[int] = set()
    async with central_service(tmp_path) as (url, store):
        async with (
            connect_central(url, ALICE) as alice,
            connect_central(url, BOB, seen_seqs=seen) as bob,
        ):
            await alice.join(ROOM, LOG)
            await bob.join(ROOM, LOG)
            for i in range(3):
                await alice.send(ROOM, b"m%d" % i)
            [first] = await take(bob, 1)
            assert await bob.ack([first]) == 1
            await wait_buffered(bob, 2)
            assert seen == {first}  # read off the socket is not handed out
        # The session ended with two deliveries buffered, never handed over nor ACKed.
        assert len(unacked(store)) == 2
        async with connect_central(url, BOB, seen_seqs=seen) as bob:
            again = await take(bob, 2)
            assert sorted(again) == unacked(store)
            assert first not in again
            assert bob.duplicates_dropped == 0
            assert await bob.ack(again) == 2
        assert unacked(store) == []
        assert seen == {first, *again}


async def test_a_handed_out_seq_is_still_dropped_on_the_next_session(tmp_path: Path) -> None:
    """HT-4.3: exactly-once is kept: an entry `receive()` handed out, whose ACK the session's
    end cut off, is re-pushed by the service and dropped by a client given the same
    `seen_seqs` set, so the application does not see it twice."""
    seen: set[int] = set()
    async with central_service(tmp_path) as (url, store):
        async with (
            connect_central(url, ALICE) as alice,
            connect_central(url, BOB, seen_seqs=seen) as bob,
        ):
            await alice.join(ROOM, LOG)
            await bob.join(ROOM, LOG)
            await alice.send(ROOM, b"only")
            [seq] = await take(bob, 1)
        assert unacked(store) == [seq]
        async with connect_central(url, BOB, seen_seqs=seen) as bob:
            with anyio.fail_after(5):
                while bob.duplicates_dropped < 1:
                    await anyio.sleep(0.01)
            assert bob.buffered == 0
            with anyio.move_on_after(0.3):
                await bob.receive()
                pytest.fail("a handed-out entry was delivered twice")


async def test_without_a_shared_set_every_repushed_entry_can_be_acked(tmp_path: Path) -> None:
    """HT-4.3, CEN-4.6: what HybridTransport relies on: sessions that share no seq set get
    every unACKed entry again (handed out or only buffered before), so the caller can drop
    repeats by message id and ACK them all; nothing stays in the mailbox."""
    async with central_service(tmp_path) as (url, store):
        async with connect_central(url, ALICE) as alice, connect_central(url, BOB) as bob:
            await alice.join(ROOM, LOG)
            await bob.join(ROOM, LOG)
            sent = {(await alice.send(ROOM, b"m%d" % i)).message_id for i in range(3)}
            first = await bob.receive()  # handed out; its ACK is cut by the session's end
            await wait_buffered(bob, 2)
        async with connect_central(url, BOB) as bob:
            with anyio.fail_after(5):
                again = [await bob.receive() for _ in range(3)]
            assert {d.message_id for d in again} == sent
            assert first.message_id in {d.message_id for d in again}
            assert await bob.ack([d.seq for d in again]) == 3
        assert unacked(store) == []
