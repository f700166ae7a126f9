"""Committee relays in the client on real localhost sockets (RLY-7, RLY-8, RLY-3, RLY-4, RLY-5).

Three clients (`railgun_ref.client.connect`, fast profile, P2P only) on real
UDP/TCP loopback sockets: members A and B of a closed room, and R, a client
in no room. The test's own fault layer (`NodeHost.blocked`) blackholes every
datagram and stream connection between A and B, so they cannot reach each
other directly and the room has no member to bridge (HT-6.5). Their
capability directories find R among the peers nearest the room key and
make it (with the unreachable member) the room's committee; R relays each
message once, end-to-end encrypted, and carries the receipts back. Every
wait is bounded; nothing asserts on timings.
"""

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio
import anyio.abc
import pytest

from railgun_ref.capacity.budget import BudgetCounter, Duty
from railgun_ref.client import Client, connect, fast_profile
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.transport import MessageReceived
from railgun_ref.drivers.udp import DriverCounter, TapEvent, Traffic
from railgun_ref.relay.committee import RelayCounter
from railgun_ref.transport.p2p import P2PCounter, PeerStatus

from .rooms_helpers import make_room

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(120)]

ROOM = "relayed"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Peer:
    client: Client
    received: list[MessageReceived] = field(default_factory=list)

    async def collect(self) -> None:
        async for event in self.client:
            if isinstance(event, MessageReceived):
                self.received.append(event)


@asynccontextmanager
async def started(
    tg: anyio.abc.TaskGroup, stack: AsyncExitStack, path: Path, bootstrap: list[Address]
) -> AsyncIterator[Peer]:
    client = await stack.enter_async_context(
        connect(data_dir=path, bootstrap=bootstrap, profile=fast_profile(), calls=False)
    )
    peer = Peer(client)
    tg.start_soon(peer.collect)
    yield peer


async def wait_for(predicate: object, timeout: float) -> None:
    assert callable(predicate)
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.05)


def block_each_other(a: Client, b: Client) -> None:
    """The test's fault layer: A and B blackhole each other, both ways, UDP and TCP."""
    a.transport.host.blocked = lambda address: address == b.address
    b.transport.host.blocked = lambda address: address == a.address


BODIES: Final = [f"secret-relayed-body-{i}-xyzzy" for i in range(3)]
REPLY: Final = "secret-reply-body-plugh"


async def exchange_through(a: Peer, b: Peer, relay_id: NodeId) -> list[str]:
    """A and B make a room, see `relay_id` on their committees, are cut off from each
    other, and exchange BODIES and REPLY; each arrives exactly once, over P2P."""
    room = await make_room(a.client, b.client, name=ROOM)
    await a.client.wait_for_members(ROOM, 1, timeout=30, reachable=True)
    await b.client.wait_for_members(ROOM, 1, timeout=30, reachable=True)
    for member in (a, b):  # RLY-7.2: the relay is on each member's committee
        directory = member.client.transport.relays.directory
        await wait_for(lambda d=directory: relay_id in dict(d.committee(room)), 40)

    block_each_other(a.client, b.client)
    a_core, b_core = a.client.transport.p2p, b.client.transport.p2p
    assert a_core is not None and b_core is not None
    await wait_for(lambda: a_core.status(b.client.node_id) is PeerStatus.UNREACHABLE, 20)
    await wait_for(lambda: b_core.status(a.client.node_id) is PeerStatus.UNREACHABLE, 20)

    sent = [await a.client.send(ROOM, body) for body in BODIES]
    reply = await b.client.send(ROOM, REPLY)
    await wait_for(lambda: len(b.received) >= 3 and len(a.received) >= 1, 40)
    await wait_for(
        lambda: a.client.transport.outbox_size() == 0 == b.client.transport.outbox_size(), 30
    )
    await anyio.sleep(1.5)  # room for a late duplicate

    assert sorted(m.message_id for m in b.received) == sorted(sent)
    assert sorted(m.body.decode() for m in b.received) == sorted(BODIES)
    assert [m.message_id for m in a.received] == [reply]
    assert {m.path for m in b.received + a.received} == {"p2p"}
    assert a_core.counters.get_count(P2PCounter.COMMITTEE_ASKED) >= 1
    for member in (a, b):  # nothing went directly between them
        host = member.client.transport.host
        assert host.driver_counters.get_count(DriverCounter.FAULT_DROPPED) > 0
    return [*BODIES, REPLY]


async def test_members_who_cannot_reach_each_other_talk_through_a_committee_relay(
    tmp_path: Path,
) -> None:
    """RLY-7.2: the directory gives the P2P core a committee holding R; RLY-8.1: R runs
    the relay on APP topic 4; RLY-3.1, RLY-4.1: each message reaches the other member
    exactly once through R and its receipt settles the sender's outbox; RLY-5.1: R
    carries only ciphertext (no plaintext body in any byte it sent or received);
    RLY-8.2: R's relaying is charged to the one budget its bridging draws on too."""
    async with anyio.create_task_group() as tg, AsyncExitStack() as stack:
        a = await stack.enter_async_context(started(tg, stack, tmp_path / "a", []))
        first = [a.client.address]
        r = await stack.enter_async_context(started(tg, stack, tmp_path / "r", first))
        b = await stack.enter_async_context(started(tg, stack, tmp_path / "b", first))
        seen_by_relay: list[bytes] = []

        def tap(event: TapEvent) -> None:
            if isinstance(event, Traffic):
                seen_by_relay.append(event.data)

        r.client.transport.host.tap(tap)
        bodies = await exchange_through(a, b, r.client.node_id)

        relay = r.client.transport.relays.relay
        assert relay is not None
        assert relay.counters.get_count(RelayCounter.FORWARDED) >= 4
        assert relay.counters.get_count(RelayCounter.RECEIPTS_FORWARDED) >= 4
        budget = r.client.transport.relays.budget
        assert r.client.transport.p2p is not None and r.client.transport.p2p.budget is budget
        assert relay.budget is budget
        assert budget.counters.get_count(BudgetCounter.BYTES_GRANTED, Duty.RELAY) > 0
        plain = [body.encode() for body in bodies]
        assert seen_by_relay and not any(p in data for p in plain for data in seen_by_relay)
        tg.cancel_scope.cancel()


async def test_a_railgun_ref_node_process_relays_for_a_committee(tmp_path: Path) -> None:
    """RLY-8.1: a bare `railgun-ref node` process fit to relay runs a committee relay;
    members cut off from each other reach each other through it, once each (RLY-3.1,
    RLY-4.1, RLY-7.2)."""
    async with anyio.create_task_group() as tg, AsyncExitStack() as stack:
        a = await stack.enter_async_context(started(tg, stack, tmp_path / "a", []))
        host, port = a.client.address
        node = subprocess.Popen(
            [sys.executable, "-m", "railgun_ref.cli", "node", "--bootstrap", f"{host}:{port}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert node.stdout is not None
            first = node.stdout.readline()
            assert first.startswith("railgun-ref node listening udp://"), first
            node_id = NodeId(bytes.fromhex(first.split("id=")[1].strip()))
            b = await stack.enter_async_context(
                started(tg, stack, tmp_path / "b", [a.client.address])
            )
            await exchange_through(a, b, node_id)
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=10)
        tg.cancel_scope.cancel()
