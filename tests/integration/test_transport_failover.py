"""The hybrid transport on real localhost: chat via central, takedown, failover, failback,
restart with an unsent outbox, DNS and IP blocking (HT-3.2, HT-3.3, HT-4.x, HT-6.x).

Clients are `railgun_ref.client.connect` with the fast profile (health check every
1 s). The central service runs as its own `railgun-ref central` process for the
takedown (killed with SIGKILL), or in-process behind a `FaultProxy` and named by a
`DnsServer` for scenarios 1 and 2. Every wait is bounded; nothing asserts on timings.
Unauthenticated/replayed WebSocket clients and sends to a room not joined are covered by
tests/integration/test_central.py (test_replayed_auth_is_refused,
test_frames_before_auth_are_refused, test_send_to_a_room_not_joined_is_refused).
"""

import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio
import anyio.abc
import pytest

from railgun_ref.client import Client, MessageReceived, StateChange, connect, fast_profile
from railgun_ref.drivers.central import CentralConfig, CentralService, MailboxStore, serve_central
from railgun_ref.drivers.central_client import origin_of, websocket_url
from railgun_ref.drivers.dns_server import DnsMode, DnsServer
from railgun_ref.drivers.fault_proxy import FaultProxy, ProxyMode
from railgun_ref.drivers.resolver import StubResolver
from railgun_ref.drivers.transport import Failure, TransportCounter
from railgun_ref.transport.health import FailureLabel

from .rooms_helpers import make_room

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(120)]

ROOM = "room-failover"
NAME = "central.railgun.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class CentralProcess:
    """`railgun-ref central` on a fixed port; killed with SIGKILL and restarted on demand."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "railgun_ref.cli", "central"),
                *("--host", "127.0.0.1", "--port", str(self.port), "--db", str(self.db)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert first.startswith("railgun-ref central listening"), first

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@pytest.fixture
def central(tmp_path: Path) -> Iterator[CentralProcess]:
    process = CentralProcess(tmp_path / "central.sqlite3")
    process.start()
    try:
        yield process
    finally:
        process.kill()


@dataclass
class Member:
    """A running client and everything it observed."""

    client: Client
    name: str
    received: list[MessageReceived] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)

    async def collect(self) -> None:
        async for event in self.client:
            if isinstance(event, MessageReceived):
                self.received.append(event)
            elif isinstance(event, StateChange):
                self.states.append(event.new.value)
            elif isinstance(event, Failure):
                self.failures.append(event)

    async def say(self, text: str) -> bytes:
        message_id = await self.client.send(ROOM, text)
        self.sent.append(message_id)
        return message_id


@asynccontextmanager
async def running_member(
    tg: anyio.abc.TaskGroup,
    stack: AsyncExitStack,
    data_dir: Path,
    name: str,
    url: str,
    bootstrap: list[tuple[str, int]],
    **kwargs: object,
) -> AsyncIterator[Member]:
    client = await stack.enter_async_context(
        connect(
            data_dir=data_dir,
            central_url=url,
            bootstrap=bootstrap,
            profile=fast_profile(),
            **kwargs,  # type: ignore[arg-type]
        )
    )
    member = Member(client, name)
    tg.start_soon(member.collect)
    yield member


async def start_room(
    tg: anyio.abc.TaskGroup,
    stack: AsyncExitStack,
    tmp_path: Path,
    url: str,
    n: int,
    **kwargs: object,
) -> list[Member]:
    members: list[Member] = []
    for i in range(n):
        bootstrap = [members[0].client.address] if members else []
        member = await stack.enter_async_context(
            running_member(tg, stack, tmp_path / f"c{i}", f"c{i}", url, bootstrap, **kwargs)
        )
        members.append(member)
    # A closed room made by invitations (ROOM-4); each member names it ROOM locally.
    await make_room(*(m.client for m in members), name=ROOM)
    for member in members:
        await member.client.wait_for_members(ROOM, n - 1, timeout=30, reachable=True)
    await wait_for(lambda: all(m.client.state == "connected-aws" for m in members), 20)
    return members


async def wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.05)


def expected_for(member: Member, members: list[Member]) -> set[bytes]:
    return {mid for other in members if other is not member for mid in other.sent}


def all_delivered(members: list[Member]) -> bool:
    return all({r.message_id for r in m.received} >= expected_for(m, members) for m in members)


def assert_exactly_once(members: list[Member]) -> None:
    for member in members:
        ids = [r.message_id for r in member.received]
        assert len(ids) == len(set(ids)), f"{member.name} got a duplicate"
        assert set(ids) == expected_for(member, members), f"{member.name} missed or got extra"


async def test_takedown_failover_and_failback(tmp_path: Path, central: CentralProcess) -> None:
    """Scenario 3, HT-3.2, HT-3.3, HT-4.3, HT-6.3: four clients chat via central; the
    central process is killed; they fail over to P2P and keep chatting; it comes back and
    they fail back; every message reaches every other member exactly once."""
    async with anyio.create_task_group() as tg, AsyncExitStack() as stack:
        members = await start_room(tg, stack, tmp_path, central.url, 4)
        for m in members:
            await m.say(f"{m.name}: hello via central")
        await wait_for(lambda: all_delivered(members), 20)
        assert {r.path for m in members for r in m.received} == {"central"}

        central.kill()
        await wait_for(lambda: all(m.client.state == "connected-p2p" for m in members), 20)
        outage: set[bytes] = set()
        for m in members:
            outage.add(await m.say(f"{m.name}: during the takedown"))
        await wait_for(lambda: all_delivered(members), 20)
        assert {r.path for m in members for r in m.received if r.message_id in outage} == {"p2p"}
        assert any(
            f.label in (FailureLabel.CONNECTION_REFUSED, FailureLabel.CONNECTION_RESET)
            for m in members
            for f in m.failures
        )

        central.start()
        await wait_for(lambda: all(m.client.state == "connected-aws" for m in members), 30)
        for m in members:
            await m.say(f"{m.name}: back on central")
        await wait_for(lambda: all_delivered(members), 20)
        await anyio.sleep(2)  # room for a late duplicate to show up
        assert_exactly_once(members)
        for m in members:
            assert m.states.index("connected-p2p") < len(m.states) - 1
            assert m.states[-1] == "connected-aws"
            assert m.client.transport.outbox_size() == 0
        tg.cancel_scope.cancel()


async def test_restart_with_an_unsent_outbox(tmp_path: Path, central: CentralProcess) -> None:
    """HT-4.1, HT-4.4: a message accepted while the central service is gone, by a client
    stopped before it could send it anywhere, is delivered once after the client restarts
    (over P2P, the service still being down)."""
    async with anyio.create_task_group() as tg, AsyncExitStack() as stack:
        members = await start_room(tg, stack, tmp_path, central.url, 2)
        async with AsyncExitStack() as alice_stack:
            alice = await alice_stack.enter_async_context(
                running_member(
                    tg,
                    alice_stack,
                    tmp_path / "alice",
                    "alice",
                    central.url,
                    [members[0].client.address],
                )
            )
            invitation = members[0].client.invite(ROOM, alice.client.public_key)
            alice.client.accept(invitation, name=ROOM)
            await wait_for(lambda: all(len(m.client.members(ROOM)) == 2 for m in members), 30)
            await alice.client.wait_for_members(ROOM, 2, timeout=30, reachable=True)
            await wait_for(lambda: alice.client.state == "connected-aws", 20)
            central.kill()
            await wait_for(lambda: not alice.client.transport.central_connected, 10)
            # P2P is not in use yet (no failover so far), so this waits in the outbox.
            message_id = await alice.say("written during the takedown, before a restart")
            assert alice.client.transport.outbox_size() == 1
        assert all(message_id not in {r.message_id for r in m.received} for m in members)

        alice = await stack.enter_async_context(
            running_member(
                tg, stack, tmp_path / "alice", "alice", central.url, [members[0].client.address]
            )
        )
        alice.sent.append(message_id)
        assert alice.client.transport.outbox_size() == 1
        everyone = [*members, alice]
        await wait_for(lambda: all_delivered(everyone), 40)
        await wait_for(lambda: alice.client.transport.outbox_size() == 0, 20)
        central.start()
        await wait_for(lambda: all(m.client.state == "connected-aws" for m in everyone), 30)
        await anyio.sleep(1)
        assert_exactly_once(everyone)
        assert [r.path for m in members for r in m.received] == ["p2p", "p2p"]
        tg.cancel_scope.cancel()


@asynccontextmanager
async def blockable_central(tmp_path: Path) -> AsyncIterator[tuple[str, FaultProxy, DnsServer]]:
    """An in-process central service behind a fault proxy, named by a DNS server."""
    store = MailboxStore(tmp_path / "central.sqlite3")
    try:
        async with anyio.create_task_group() as tg:
            url = await tg.start(partial(serve_central, CentralService(store, CentralConfig())))
            host, port = url.removeprefix("http://").split(":")
            proxy: FaultProxy = await tg.start(FaultProxy((host, int(port))).run)
            dns: DnsServer = await tg.start(DnsServer().run)
            dns.register(NAME, "127.0.0.1")
            yield url, proxy, dns
            tg.cancel_scope.cancel()
    finally:
        store.close()


@pytest.mark.parametrize("scenario", ["dns", "ip"])
async def test_blocking_scenarios_fail_over_and_back(tmp_path: Path, scenario: str) -> None:
    """Scenarios 1 and 2, HT-2.1, HT-3.2, HT-3.3: the central service's name stops resolving
    (NXDOMAIN) or its address is blackholed; clients label the failure, fail over, keep
    chatting over P2P, and fail back once the block is lifted; exactly once throughout."""
    async with blockable_central(tmp_path) as (central_url, proxy, dns):
        origin = origin_of(websocket_url(central_url))  # what the service itself expects
        resolve = StubResolver(dns.address, timeout=0.5)
        url = f"http://{NAME}:{proxy.address[1]}"
        async with anyio.create_task_group() as tg, AsyncExitStack() as stack:
            members = await start_room(tg, stack, tmp_path, url, 3, resolve=resolve, origin=origin)
            for m in members:
                await m.say(f"{m.name}: before the block")
            await wait_for(lambda: all_delivered(members), 20)

            if scenario == "dns":
                dns.set_mode(DnsMode.NXDOMAIN, name=NAME)
                label = FailureLabel.DNS_NXDOMAIN
            else:
                proxy.set_mode(ProxyMode.BLACKHOLE)
                label = FailureLabel.GENERIC_TIMEOUT
            await wait_for(lambda: all(m.client.state == "connected-p2p" for m in members), 20)
            assert all(any(f.label is label for f in m.failures) for m in members)
            for m in members:
                await m.say(f"{m.name}: during the block")
            await wait_for(lambda: all_delivered(members), 20)

            if scenario == "dns":
                dns.set_mode(DnsMode.ANSWER, name=NAME)
            else:
                proxy.set_mode(ProxyMode.PASS)
            await wait_for(lambda: all(m.client.state == "connected-aws" for m in members), 30)
            for m in members:
                await m.say(f"{m.name}: after the block")
            await wait_for(lambda: all_delivered(members), 20)
            await anyio.sleep(1)
            assert_exactly_once(members)
            tg.cancel_scope.cancel()


async def test_a_slow_central_service_lets_failback_complete(tmp_path: Path) -> None:
    """HT-2.5, HT-3.3: after an IP block the service comes back slow -- each health check
    answered after about 1.2 s, more than twice the fast profile's 0.5 s check timeout --
    yet healthy: the late answers raise the timeout, the clients fail back and keep their
    sessions. Blackholed again, it is still detected and they fail over."""
    async with blockable_central(tmp_path) as (central_url, proxy, _dns):
        origin = origin_of(websocket_url(central_url))
        url = f"http://127.0.0.1:{proxy.address[1]}"
        async with anyio.create_task_group() as tg, AsyncExitStack() as stack:
            members = await start_room(tg, stack, tmp_path, url, 2, origin=origin)
            proxy.set_mode(ProxyMode.BLACKHOLE)
            await wait_for(lambda: all(m.client.state == "connected-p2p" for m in members), 20)

            proxy.set_mode(ProxyMode.DELAY, delay=0.6)  # per direction: 1.2 s per check
            await wait_for(
                lambda: all(
                    m.client.state == "connected-aws" and m.client.transport.central_connected
                    for m in members
                ),
                60,
            )
            for m in members:
                assert m.client.transport.counters.get_count(TransportCounter.HEALTH_LATE) >= 1
            for m in members:
                await m.say(f"{m.name}: via a slow central service")
            await wait_for(lambda: all_delivered(members), 30)

            proxy.set_mode(ProxyMode.BLACKHOLE)
            await wait_for(lambda: all(m.client.state == "connected-p2p" for m in members), 30)
            assert all(
                any(f.label is FailureLabel.GENERIC_TIMEOUT for f in m.failures) for m in members
            )
            tg.cancel_scope.cancel()
