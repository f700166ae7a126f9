"""The fault-injecting TCP proxy over real sockets on 127.0.0.1, in front of an echo server.

Each mode is switched at run time on a live connection and on new ones. Only
lower bounds of elapsed time are asserted (a delay adds at least its value);
"nothing arrives" is checked for a short bounded wait.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from railgun_ref.drivers.fault_proxy import (
    ByteFate,
    FaultProxy,
    ListenerEvent,
    ProxyCounter,
    ProxyMode,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(60)]

#: Errors a client sees when its connection is reset or refused.
BROKEN = (anyio.BrokenResourceError, anyio.EndOfStream, OSError)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def echo(stream: SocketStream) -> None:
    async with stream:
        try:
            async for chunk in stream:
                await stream.send(chunk)
        except (anyio.BrokenResourceError, OSError):
            pass


@asynccontextmanager
async def proxied_echo() -> AsyncIterator[FaultProxy]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)
        proxy: FaultProxy = await tg.start(FaultProxy(("127.0.0.1", port)).run)
        yield proxy
        tg.cancel_scope.cancel()
    await listener.aclose()


async def connect(proxy: FaultProxy) -> SocketStream:
    return await anyio.connect_tcp(*proxy.address)


async def roundtrip(stream: SocketStream, data: bytes, timeout: float = 5.0) -> bytes:
    await stream.send(data)
    got = b""
    with anyio.fail_after(timeout):
        while len(got) < len(data):
            got += await stream.receive()
    return got


async def silent_for(stream: SocketStream, wait: float = 0.3) -> bool:
    """True if nothing (not even a close) arrives on `stream` within `wait` seconds."""
    with anyio.move_on_after(wait):
        try:
            await stream.receive()
        except BROKEN:
            return False
        return False
    return True


async def test_pass_relays_both_ways() -> None:
    async with proxied_echo() as proxy:
        async with await connect(proxy) as stream:
            assert await roundtrip(stream, b"hello" * 1000) == b"hello" * 1000
        assert proxy.counters.get_count(ProxyCounter.RELAYED) == 1
        assert proxy.counters.get_count(ProxyCounter.BYTES, ByteFate.UP) == 5000
        assert proxy.counters.get_count(ProxyCounter.BYTES, ByteFate.DOWN) == 5000


async def test_blackhole_silences_open_and_new_connections() -> None:
    """Scenario 2: bytes go nowhere on an open connection; a new one connects, then silence."""
    async with proxied_echo() as proxy:
        async with await connect(proxy) as old:
            assert await roundtrip(old, b"before") == b"before"
            proxy.set_mode(ProxyMode.BLACKHOLE)
            await old.send(b"into the void")
            assert await silent_for(old)
            async with await connect(proxy) as new:  # the handshake still completes
                await new.send(b"anyone?")
                assert await silent_for(new)
        assert proxy.counters.get_count(ProxyCounter.BLACKHOLED_CONNECTIONS) == 1
        assert proxy.counters.get_count(ProxyCounter.BYTES, ByteFate.BLACKHOLED) >= len(
            b"into the void"
        )
        proxy.set_mode(ProxyMode.PASS)
        async with await connect(proxy) as again:
            assert await roundtrip(again, b"after") == b"after"


async def test_refuse_closes_the_listener_and_comes_back() -> None:
    """Scenario 3: while refusing, connecting fails and open connections die; `pass` reopens."""
    async with proxied_echo() as proxy:
        address = proxy.address
        async with await connect(proxy) as old:
            assert await roundtrip(old, b"x") == b"x"
            proxy.set_mode(ProxyMode.REFUSE)
            with pytest.raises(BROKEN):
                with anyio.fail_after(5):
                    await roundtrip(old, b"y")
        with anyio.fail_after(5):
            while proxy.counters.get_count(ProxyCounter.LISTENER, ListenerEvent.CLOSED) == 0:
                await anyio.sleep(0.01)
        with pytest.raises(OSError):
            await anyio.connect_tcp(*address)
        proxy.set_mode(ProxyMode.PASS)
        with anyio.fail_after(5):
            while proxy.counters.get_count(ProxyCounter.LISTENER, ListenerEvent.OPENED) < 2:
                await anyio.sleep(0.01)
        assert proxy.address == address
        async with await connect(proxy) as again:
            assert await roundtrip(again, b"back") == b"back"


async def test_reset_kills_open_and_new_connections() -> None:
    """RST on the open connection, and on each new one right after the handshake."""
    async with proxied_echo() as proxy:
        async with await connect(proxy) as old:
            assert await roundtrip(old, b"x") == b"x"
            proxy.set_mode(ProxyMode.RESET)
            with pytest.raises(BROKEN):
                with anyio.fail_after(5):
                    await roundtrip(old, b"y")
        async with await connect(proxy) as new:
            with pytest.raises(BROKEN):
                with anyio.fail_after(5):
                    await roundtrip(new, b"z")
        assert proxy.counters.get_count(ProxyCounter.RESET) == 2


async def test_delay_adds_latency_each_way_and_keeps_order() -> None:
    """The latency rule's tool: a round trip gains at least twice the delay; order is kept."""
    async with proxied_echo() as proxy:
        proxy.set_delay_ms(150)
        assert (proxy.mode, proxy.delay) == (ProxyMode.DELAY, 0.15)
        async with await connect(proxy) as stream:
            started = anyio.current_time()
            await stream.send(b"one,")
            await stream.send(b"two,")
            got = b""
            with anyio.fail_after(10):
                while len(got) < 8:
                    got += await stream.receive()
            assert got == b"one,two,"
            assert anyio.current_time() - started >= 0.3
            proxy.set_mode(ProxyMode.PASS)
            assert await roundtrip(stream, b"fast") == b"fast"


async def test_upstream_down_resets_the_client() -> None:
    """The service behind the proxy is gone: the client's connection is reset, counted."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    await listener.aclose()  # nobody listens there now
    async with anyio.create_task_group() as tg:
        proxy: FaultProxy = await tg.start(FaultProxy(("127.0.0.1", port)).run)
        async with await connect(proxy) as stream:
            with pytest.raises(BROKEN):
                with anyio.fail_after(5):
                    await roundtrip(stream, b"x")
        assert proxy.counters.get_count(ProxyCounter.UPSTREAM_FAILED) == 1
        tg.cancel_scope.cancel()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        FaultProxy(("192.0.2.1", 80))
    proxy = FaultProxy(("127.0.0.1", 80))
    with pytest.raises(ValueError):
        proxy.set_mode(ProxyMode.DELAY, delay=-1)
    with pytest.raises(ValueError):
        proxy.set_mode(ProxyMode.PASS, delay=1)
    with pytest.raises(RuntimeError):
        _ = proxy.address
