"""`NodeHost(send_delay=...)`: link-delay emulation for benchmarks, checked in virtual time.

Real sockets, trio's MockClock: a round trip between two hosts that each
delay what they send by d takes exactly 2·d, concurrent datagrams are not
serialised behind one another, and streams are not delayed.
"""

from typing import Any

import anyio
import pytest
import trio
import trio.testing

from railgun_ref.drivers.udp import NodeHost
from railgun_ref.events import PongReceived
from railgun_ref.rpc.requests import Channel

from .conftest import identity, serving

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

EPOCH = 1_700_000_000.0


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


def virtual_clock() -> float:
    return EPOCH + trio.current_time()


def host(n: int, send_delay: float) -> NodeHost:
    return NodeHost(identity(n), clock=virtual_clock, send_delay=send_delay)


async def test_a_round_trip_takes_both_hosts_send_delays() -> None:
    a, b = host(1, 0.025), host(2, 0.075)
    async with serving(a, b):
        started = trio.current_time()
        outcome = await a.ping(b.address, expected_peer=b.node_id)
        elapsed = trio.current_time() - started
    assert isinstance(outcome, PongReceived)
    assert elapsed == pytest.approx(0.1, abs=1e-6)
    assert outcome.rtt == pytest.approx(0.1, abs=1e-5)


async def test_concurrent_datagrams_are_delayed_once_not_one_after_another() -> None:
    a, b = host(1, 0.05), host(2, 0.05)
    ended: list[float] = []

    async def ping() -> None:
        outcome = await a.ping(b.address)
        assert isinstance(outcome, PongReceived)
        ended.append(trio.current_time())

    async with serving(a, b):
        started = trio.current_time()
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(ping)
    assert len(ended) == 20
    assert max(ended) - started == pytest.approx(0.1, abs=1e-6)


async def test_stream_messages_are_not_delayed() -> None:
    a, b = host(1, 1.0), host(2, 1.0)
    async with serving(a, b):
        started = trio.current_time()
        outcome = await a.ping(b.address, channel=Channel.STREAM)
        elapsed = trio.current_time() - started
    assert isinstance(outcome, PongReceived)
    assert elapsed < 1.0


def test_a_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="send_delay"):
        NodeHost(identity(1), send_delay=-0.001)
