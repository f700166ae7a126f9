"""Large bodies and per-client blocking on real localhost (HT-7.1 to HT-7.4).

Clients are `railgun_ref.client.connect` with the fast profile, on real UDP/TCP
sockets. The central service is its own `railgun-ref central` process (killed
with SIGKILL for the takedown), or, for per-client blocking, an in-process
service behind one `FaultProxy` per client so that one client alone can be cut
off from it. Every wait is bounded; nothing asserts on timings.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
import pytest

from railgun_ref.drivers.central import CentralConfig, CentralService, MailboxStore, serve_central
from railgun_ref.drivers.central_client import origin_of, websocket_url
from railgun_ref.drivers.fault_proxy import FaultProxy, ProxyMode

from .rooms_helpers import make_room
from .test_transport_failover import (
    ROOM,
    CentralProcess,
    Member,
    all_delivered,
    assert_exactly_once,
    running_member,
    start_room,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(150)]


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


async def test_large_bodies_over_p2p_with_the_central_service_down(
    tmp_path: Path, central: CentralProcess
) -> None:
    """HT-7.1: with the central service killed, 20 KB and 60 KB bodies (the 64 KiB
    padding bucket) reach every other member over P2P, once, intact."""
    async with anyio.create_task_group() as tg, AsyncExitStack() as stack:
        members = await start_room(tg, stack, tmp_path, central.url, 3)
        central.kill()
        await wait_for(lambda: all(m.client.state == "connected-p2p" for m in members), 20)
        bodies = {20_000: "a" * 20_000, 60_000: "b" * 60_000}
        sender = members[0]
        for body in bodies.values():
            await sender.say(body)
        await wait_for(lambda: all_delivered(members), 30)
        await wait_for(lambda: sender.client.transport.outbox_size() == 0, 20)
        await anyio.sleep(1)  # room for a late duplicate
        assert_exactly_once(members)
        for member in members[1:]:
            got = sorted(len(r.body) for r in member.received)
            assert got == sorted(bodies)
            assert {r.path for r in member.received} == {"p2p"}
            assert {r.body.decode() for r in member.received} == set(bodies.values())
        tg.cancel_scope.cancel()


@asynccontextmanager
async def central_behind_proxies(
    tmp_path: Path, n: int
) -> AsyncIterator[tuple[str, list[FaultProxy]]]:
    """An in-process central service with one fault proxy per client in front of it."""
    store = MailboxStore(tmp_path / "central.sqlite3")
    try:
        async with anyio.create_task_group() as tg:
            url = await tg.start(partial(serve_central, CentralService(store, CentralConfig())))
            host, port = url.removeprefix("http://").split(":")
            proxies = [await tg.start(FaultProxy((host, int(port))).run) for _ in range(n)]
            yield url, proxies
            tg.cancel_scope.cancel()
    finally:
        store.close()


async def test_a_client_blocked_alone_gets_everything_once_and_can_send(tmp_path: Path) -> None:
    """Scenario 2, HT-7.3, HT-7.4, HT-4.3: four clients, each reaching the central service
    through its own proxy. One proxy is blackholed: that client fails over alone and says
    so; the others stay on central and deliver to it over P2P. It receives every message
    once, its own reach the others; after the block is lifted, the mailbox's copies are
    not delivered again."""
    async with central_behind_proxies(tmp_path, 4) as (central_url, proxies):
        origin = origin_of(websocket_url(central_url))
        async with anyio.create_task_group() as tg, AsyncExitStack() as stack:
            members: list[Member] = []
            for i, proxy in enumerate(proxies):
                url = f"http://127.0.0.1:{proxy.address[1]}"
                bootstrap = [members[0].client.address] if members else []
                member = await stack.enter_async_context(
                    running_member(
                        tg, stack, tmp_path / f"c{i}", f"c{i}", url, bootstrap, origin=origin
                    )
                )
                members.append(member)
            await make_room(*(m.client for m in members), name=ROOM)
            for member in members:
                await member.client.wait_for_members(ROOM, 3, timeout=30, reachable=True)
            await wait_for(lambda: all(m.client.state == "connected-aws" for m in members), 20)
            *others, blocked = members

            proxies[3].set_mode(ProxyMode.BLACKHOLE)
            await wait_for(lambda: blocked.client.state == "connected-p2p", 20)
            assert all(m.client.state == "connected-aws" for m in others)
            during: set[bytes] = set()
            for m in members:
                during.add(await m.say(f"{m.name}: while c3 is blocked"))
            await wait_for(lambda: all_delivered(members), 30)
            assert {r.path for r in blocked.received if r.message_id in during} == {"p2p"}
            assert all(m.client.state == "connected-aws" for m in others)

            proxies[3].set_mode(ProxyMode.PASS)
            await wait_for(lambda: blocked.client.state == "connected-aws", 30)
            for m in members:
                await m.say(f"{m.name}: after the block")
            await wait_for(lambda: all_delivered(members), 20)
            await anyio.sleep(2)  # the mailbox's copies for c3 arrive and must be dropped
            assert_exactly_once(members)
            tg.cancel_scope.cancel()
