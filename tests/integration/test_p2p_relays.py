"""Large bodies and per-client blocking on real localhost (HT-6.7, HT-6.8).

Clients are `railgun_ref.client.connect` with the fast profile, on real UDP/TCP
sockets. The central service is its own `railgun-ref central` process (killed
with SIGKILL for the takedown), or, for per-client blocking, an in-process
service behind one `FaultProxy` per client so that one client alone can be cut
off from it. Every wait is bounded; nothing asserts on timings.
"""

from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from .test_transport_failover import (
    CentralProcess,
    all_delivered,
    assert_exactly_once,
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
    """HT-6.7: with the central service killed, 20 KB and 60 KB bodies (the 64 KiB
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
