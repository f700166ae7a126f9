"""The TURN server on real UDP sockets, driven by aioice's TURN client (the one aiortc uses).

aioice allocates with long-term credentials (401 then a signed retry), binds
a channel per peer (and never sends CreatePermission), sends ChannelData,
refreshes, and deletes with LIFETIME 0. These tests run it against our server
on 127.0.0.1 and check the wire behaviour and the server's counters. The
expiry test runs in trio's virtual time with our own codec as the client.
"""

import asyncio
import random
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import trio
import trio.testing
from unit.relay.turn_client import Client

from railgun_ref.capacity.sharing import CapacitySharingConfig, LimitKind
from railgun_ref.drivers.turn_server import LOOPBACK_PEERS, TurnDriverCounter, TurnUdpServer
from railgun_ref.relay.turn import DEFAULT_LIFETIME, TurnConfig, TurnCounter
from railgun_ref.stun.codec import (
    ErrorCodeAttribute,
    Lifetime,
    Method,
    Nonce,
    RequestedTransport,
    StunErrorCode,
    XorRelayedAddress,
    decode_message,
)

aioice_turn = pytest.importorskip("aioice.turn")
aioice_stun = pytest.importorskip("aioice.stun")

pytestmark = pytest.mark.integration

USERS = {"alice": "wonderland", "bob": "builder"}
CLI = (sys.executable, "-m", "railgun_ref.cli")
REALM = "railgun-test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aioice runs on asyncio


class Inbox(asyncio.DatagramProtocol):
    """A datagram endpoint that queues what it receives."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))

    async def next(self) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.received.get(), 5)


async def udp_peer() -> tuple[asyncio.DatagramTransport, Inbox]:
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(Inbox, local_addr=("127.0.0.1", 0))


async def aioice_client(server: TurnUdpServer, user: str = "alice") -> Any:
    """aioice's TURN client protocol on its own socket (not yet allocated)."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: aioice_turn.TurnClientUdpProtocol(
            server.address,
            username=user,
            password=USERS[user],
            lifetime=DEFAULT_LIFETIME,
            channel_refresh_time=500,
        ),
        remote_addr=server.address,
    )
    return protocol


@pytest.fixture
async def turn_server() -> AsyncIterator[TurnUdpServer]:
    async with anyio.create_task_group() as tg:
        server = await tg.start(TurnUdpServer(users=USERS, realm=REALM).run)
        yield server
        tg.cancel_scope.cancel()


async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_aioice_allocates_binds_and_relays_both_ways(turn_server: TurnUdpServer) -> None:
    """TURN-1.2, TURN-1.4, TURN-1.8, TURN-1.9: aioice's client through our server to a plain
    UDP peer and back, on one channel; closing it deletes the allocation (TURN-1.5)."""
    transport, inbox = await aioice_turn.create_turn_endpoint(
        Inbox, turn_server.address, "alice", USERS["alice"]
    )
    relayed = transport.get_extra_info("sockname")
    assert relayed in turn_server.relay_sockets.values()
    peer_transport, peer = await udp_peer()
    peer_address = peer_transport.get_extra_info("sockname")
    try:
        transport.sendto(b"to the peer", peer_address)
        assert await peer.next() == (b"to the peer", relayed)
        peer_transport.sendto(b"to the client", relayed)
        assert await inbox.next() == (b"to the client", peer_address)
        (allocation,) = turn_server.allocations()
        assert [c.peer for c in allocation.channels] == [peer_address]
        assert allocation.bytes_to_peer == 11 and allocation.bytes_to_client == 13
    finally:
        peer_transport.close()
        transport.close()
    await wait_until(lambda: not turn_server.allocations() and not turn_server.relay_sockets)
    counters = turn_server.core.counters
    assert counters.get_count(TurnCounter.CHALLENGED) == 1
    assert counters.get_count(TurnCounter.ALLOCATIONS_CREATED) == 1
    assert counters.get_count(TurnCounter.CHANNEL_DATA_TO_CLIENT) == 1
    assert counters.get_count(TurnCounter.ALLOCATIONS_DELETED) == 1
    assert turn_server.driver_counters.get_count(TurnDriverCounter.RELAYS_CLOSED) == 1


@pytest.mark.anyio
async def test_aioice_refresh_and_stale_nonce() -> None:
    """TURN-1.3, TURN-1.5: a Refresh gets the clamped LIFETIME; after the nonce's lifetime the
    server answers 438 with a new nonce and aioice's retry with it succeeds."""
    config = TurnConfig(realm=REALM, nonce_lifetime=1, allowed_peers=LOOPBACK_PEERS)
    async with anyio.create_task_group() as tg:
        server = await tg.start(TurnUdpServer(users=USERS, config=config).run)
        client = await aioice_client(server)
        try:
            await client.connect()
            first_nonce = client.nonce
            await anyio.sleep(1.05)  # the nonce is now stale
            request = aioice_stun.Message(
                message_method=aioice_stun.Method.REFRESH,
                message_class=aioice_stun.Class.REQUEST,
            )
            request.attributes["LIFETIME"] = 1200
            response, _ = await client.request_with_retry(request)
            assert response.attributes["LIFETIME"] == 1200
            assert client.nonce != first_nonce
            assert server.core.counters.get_count(TurnCounter.ERROR, StunErrorCode.STALE_NONCE) == 1
            (allocation,) = server.allocations()
            assert allocation.expires - anyio.current_time() == pytest.approx(1200, abs=2)
        finally:
            await client.delete()
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_aioice_with_a_wrong_password_is_refused(turn_server: TurnUdpServer) -> None:
    """TURN-1.2: wrong credentials get 401 again and no allocation."""
    with pytest.raises(aioice_stun.TransactionFailed) as info:
        await aioice_turn.create_turn_endpoint(
            Inbox, turn_server.address, "alice", "not the password"
        )
    assert info.value.response.error_code == 401
    assert turn_server.allocations() == ()
    assert turn_server.core.counters.get_count(TurnCounter.BAD_CREDENTIALS) == 1


@pytest.mark.anyio
async def test_capacity_quota_refuses_with_a_signed_508() -> None:
    """TURN-1.6: with one relay connection shared, a second allocation gets 508 -- which aioice
    accepts only because it is signed with the request's key (TURN-1.2)."""
    sharing = CapacitySharingConfig(max_relay_connections=1)
    async with anyio.create_task_group() as tg:
        server = await tg.start(TurnUdpServer(users=USERS, realm=REALM, sharing_config=sharing).run)
        first, _ = await aioice_turn.create_turn_endpoint(
            Inbox, server.address, "alice", USERS["alice"]
        )
        try:
            with pytest.raises(aioice_stun.TransactionFailed) as info:
                await aioice_turn.create_turn_endpoint(Inbox, server.address, "bob", USERS["bob"])
            assert info.value.response.error_code == 508
            assert "quota connections limit=1" in info.value.response.attributes["ERROR-CODE"][1]
            refused = server.core.counters.get_count(
                TurnCounter.CAPACITY_REFUSED, LimitKind.CONNECTIONS
            )
            assert refused == 1
        finally:
            first.close()
        await wait_until(lambda: not server.allocations())
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_garbage_is_counted_and_the_server_keeps_serving(
    turn_server: TurnUdpServer,
) -> None:
    """TURN-1.10: junk, truncated STUN and bad ChannelData are counted; a request with a sound
    header and a bad attribute gets a 400 naming the problem; allocation still works after."""
    rng = random.Random(5)
    async with await anyio.create_udp_socket(family=socket.AF_INET, local_host="127.0.0.1") as sock:
        host, port = turn_server.address
        for junk in (b"\xff" * 64, b"\x00\x01\x00", bytes.fromhex("4000ffff") + b"x"):
            await sock.sendto(junk, host, port)
        bad_lifetime = bytearray.fromhex("0003000800000000") + rng.randbytes(12)
        bad_lifetime[4:8] = bytes.fromhex("2112a442")
        bad_lifetime += bytes.fromhex("000d0003") + b"\x00\x00\x01\x00"
        await sock.sendto(bytes(bad_lifetime), host, port)
        with anyio.fail_after(5):
            data, _ = await sock.receive()
        reply = decode_message(data)
        error = reply.find(ErrorCodeAttribute)
        assert error is not None and error.code == 400 and "Lifetime" in error.reason
        assert reply.transaction_id == bytes(bad_lifetime[8:20])
    await wait_until(lambda: turn_server.core.counters.get_count(TurnCounter.MALFORMED) == 3)
    assert turn_server.core.counters.get_count(TurnCounter.MALFORMED_CHANNEL_DATA) == 1
    transport, _ = await aioice_turn.create_turn_endpoint(
        Inbox, turn_server.address, "alice", USERS["alice"]
    )
    transport.close()
    await wait_until(lambda: not turn_server.allocations())


def test_allocation_expires_and_its_relay_closes_in_virtual_time() -> None:
    """TURN-1.5: an allocation nobody refreshes is gone after its 600 s lifetime, and its
    relayed socket is closed, with no request arriving to trigger it (the driver's timer)."""

    async def main() -> tuple[float, dict[str, int], int]:
        async with anyio.create_task_group() as tg:
            server = await tg.start(TurnUdpServer(users=USERS, realm=REALM).run)
            client = Client(server.core)
            async with await anyio.create_udp_socket(
                family=socket.AF_INET, local_host="127.0.0.1"
            ) as sock:
                host, port = server.address

                async def ask(data: bytes) -> Any:
                    await sock.sendto(data, host, port)
                    with anyio.fail_after(1):
                        return decode_message((await sock.receive())[0])

                challenge = await ask(
                    client.build(Method.ALLOCATE, RequestedTransport(), sign=False)
                )
                client.nonce = challenge.find(Nonce).text
                started = anyio.current_time()
                response = await ask(client.build(Method.ALLOCATE, RequestedTransport()))
                assert response.find(Lifetime) == Lifetime(DEFAULT_LIFETIME)
                relayed = response.find(XorRelayedAddress).address
                assert list(server.relay_sockets.values()) == [relayed]
                while server.allocations() or server.relay_sockets:
                    await anyio.sleep(1)
                elapsed = anyio.current_time() - started
                # a datagram to the old relayed port goes nowhere now
                await sock.sendto(b"anyone?", *relayed)
                await anyio.sleep(1)
            tg.cancel_scope.cancel()
        return elapsed, server, len(server.allocations())

    elapsed, server, left = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert DEFAULT_LIFETIME <= elapsed <= DEFAULT_LIFETIME + 1
    assert server.core.counters.get_count(TurnCounter.ALLOCATIONS_EXPIRED) == 1 and left == 0
    assert server.driver_counters.get_count(TurnDriverCounter.RELAYS_CLOSED) == 1
    assert server.core.counters.get_count(TurnCounter.RELAYED_TO_CLIENT_DATAGRAMS) == 0


def test_only_loopback() -> None:
    with pytest.raises(ValueError):
        TurnUdpServer(users=USERS, host="0.0.0.0")
    with pytest.raises(ValueError):
        TurnUdpServer(users=USERS, relay_host="192.0.2.1")


@pytest.mark.anyio
async def test_cli_turn_serves_until_interrupted() -> None:
    """`railgun-ref turn` as its own process: aioice allocates and relays through it, and
    SIGINT stops it with its counters printed."""
    proc = subprocess.Popen(
        [*CLI, "turn", "--port", "0", "--realm", REALM, "--user", "alice:wonderland"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with anyio.fail_after(30):
            line = await anyio.to_thread.run_sync(proc.stdout.readline)
        match = re.fullmatch(r"turn: listening on udp://127\.0\.0\.1:(\d+) realm=\S+\n", line)
        assert match, line
        address = ("127.0.0.1", int(match.group(1)))
        transport, _ = await aioice_turn.create_turn_endpoint(Inbox, address, "alice", "wonderland")
        peer_transport, peer = await udp_peer()
        transport.sendto(b"via the cli", peer_transport.get_extra_info("sockname"))
        assert (await peer.next())[0] == b"via the cli"
        peer_transport.close()
        transport.close()
        await anyio.sleep(0.2)  # let the deletion reach the server
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=10))
    assert proc.returncode == 130, err
    assert "'turn.relayed_to_peer_datagrams': 1" in out


def test_the_server_can_be_built_outside_an_event_loop() -> None:
    server = TurnUdpServer(users=USERS)
    with pytest.raises(RuntimeError):
        _ = server.address
    assert server.counters == {}
