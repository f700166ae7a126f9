"""The anyio driver in virtual time: trio's MockClock jumps over every sleep.

The sockets are real; only time is virtual. The driver's clock is trio's
clock shifted to a plausible Unix time, so envelope timestamps are fresh
(ENV-2.3) for every node sharing it, and a 5 s timeout takes no real time.
"""

from typing import Any

import anyio
import pytest
import trio
import trio.testing

from railgun_ref.core.errors import ErrorCode
from railgun_ref.drivers.udp import DriverCounter, NodeHost
from railgun_ref.events import PongReceived, RequestTimedOut
from railgun_ref.node import NodeConfig, NodeCounter
from railgun_ref.rpc.requests import Channel

from .conftest import identity, serving

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

#: 2023-11-14T22:13:20Z; virtual time 0 is mapped here.
EPOCH = 1_700_000_000.0


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


def virtual_clock() -> float:
    return EPOCH + trio.current_time()


def host(n: int, config: NodeConfig | None = None) -> NodeHost:
    return NodeHost(identity(n), clock=virtual_clock, config=config)


async def test_a_ping_to_a_silent_socket_times_out_after_exactly_request_timeout() -> None:
    a = host(1)  # the default 5 s timeout: virtual, so the test takes milliseconds
    silent = await anyio.create_udp_socket(local_host="127.0.0.1")  # bound, never read
    async with silent, serving(a):
        started = trio.current_time()
        outcome = await a.ping(("127.0.0.1", silent.extra(anyio.abc.SocketAttribute.local_port)))
        elapsed = trio.current_time() - started
    assert isinstance(outcome, RequestTimedOut)
    assert elapsed == pytest.approx(a.node.config.request_timeout, abs=1e-6)


async def test_requests_started_at_different_times_each_get_their_own_deadline() -> None:
    a = host(1, NodeConfig(request_timeout=10.0))
    silent = await anyio.create_udp_socket(local_host="127.0.0.1")
    address = ("127.0.0.1", silent.extra(anyio.abc.SocketAttribute.local_port))
    ended: dict[str, float] = {}

    async def ping(name: str, delay: float, channel: Channel = Channel.DATAGRAM) -> None:
        await anyio.sleep(delay)
        outcome = await a.ping(address, channel=channel)
        assert isinstance(outcome, RequestTimedOut)
        ended[name] = trio.current_time()

    async with silent, serving(a):
        start = trio.current_time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(ping, "first", 0.0)
            tg.start_soon(ping, "second", 3.0)  # starts while the timer sleeps for the first
            tg.start_soon(ping, "stream", 1.0, Channel.STREAM)  # connect refused: dropped
    assert ended["first"] - start == pytest.approx(10.0, abs=1e-6)
    assert ended["stream"] - start == pytest.approx(11.0, abs=1e-6)
    assert ended["second"] - start == pytest.approx(13.0, abs=1e-6)
    assert a.driver_counters.get_count(DriverCounter.CONNECT_FAILED) == 1


async def test_two_hosts_exchange_ping_and_pong_in_virtual_time() -> None:
    a, b = host(1), host(2)
    async with serving(a, b):
        datagram = await a.ping(b.address, expected_peer=b.node_id)
        stream = await b.ping(a.address, channel=Channel.STREAM, payload=b"\x01" * 50_000)
    assert isinstance(datagram, PongReceived) and isinstance(stream, PongReceived)
    assert stream.payload_size == 50_000
    # Timestamps came from the shifted virtual clock and were accepted as fresh.
    assert (
        a.node.counters.get_count(NodeCounter.REJECTED, ErrorCode.STALE)
        == b.node.counters.get_count(NodeCounter.REJECTED, ErrorCode.STALE)
        == 0
    )
    assert all(record.time >= EPOCH for record in a.trace() + b.trace())
