"""`check_health` labels (CEN-8.1, CEN-1.2) against real sockets on 127.0.0.1.

Each failure mode is a tiny TCP server that misbehaves in one way: nobody
listening, never answering, answering 500, answering garbage, resetting.
"""

import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from railgun_ref.drivers.central import CentralConfig, CentralService, MailboxStore, serve_central
from railgun_ref.drivers.central_client import (
    DnsNxDomainError,
    DnsServFailError,
    DnsTimeoutError,
    check_health,
)
from railgun_ref.transport.health import FailureLabel

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(30)]

Handler = Callable[[SocketStream], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1:<free port> running `handler` per connection."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        yield f"http://127.0.0.1:{port}"
        tg.cancel_scope.cancel()
    await listener.aclose()


def answering(response: bytes) -> Handler:
    async def handler(stream: SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(response)

    return handler


@asynccontextmanager
async def central(tmp_path: Path) -> AsyncIterator[str]:
    store = MailboxStore(tmp_path / "central.sqlite3")
    try:
        async with anyio.create_task_group() as tg:
            url = await tg.start(partial(serve_central, CentralService(store, CentralConfig())))
            yield url
            tg.cancel_scope.cancel()
    finally:
        store.close()


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_ok_with_latency(tmp_path: Path) -> None:
    """CEN-8.1, CEN-1.2: a running service answers; the latency is measured."""
    async with central(tmp_path) as url:
        result = await check_health(url, 5.0)
        assert result.ok
        assert result.label is None
        assert result.latency is not None
        assert 0 < result.latency < 5.0


async def test_connection_refused() -> None:
    """CEN-8.1: nobody listens on the port."""
    result = await check_health(f"http://127.0.0.1:{free_port()}", 5.0)
    assert (result.ok, result.label) == (False, FailureLabel.CONNECTION_REFUSED)


async def test_generic_timeout_when_connected_but_silent() -> None:
    """CEN-8.1: the socket accepts but never answers."""

    async def silent(stream: SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    async with tcp_server(silent) as url:
        started = anyio.current_time()
        result = await check_health(url, 0.3)
        assert (result.ok, result.label) == (False, FailureLabel.GENERIC_TIMEOUT)
        assert anyio.current_time() - started < 3.0


async def test_http_error() -> None:
    """CEN-8.1: a status other than 200."""
    response = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"
    async with tcp_server(answering(response)) as url:
        result = await check_health(url, 5.0)
        assert (result.ok, result.label) == (False, FailureLabel.HTTP_ERROR)
        assert result.latency is not None


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n\x00garbage!",
        b'HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{"status": "bad"}',
        b'HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n{"status": "ok", "time": "no"}',
        b'HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n{"status": "ok", "time": true}',
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ntruncated",
        b"SSH-2.0-OpenSSH_9.6\r\n",
    ],
    ids=["binary", "wrong-status", "time-not-number", "time-bool", "truncated", "not-http"],
)
async def test_invalid_response(response: bytes) -> None:
    """CEN-8.1, CEN-1.2: a 200 whose body is not a health answer, or not HTTP at all."""
    async with tcp_server(answering(response)) as url:
        result = await check_health(url, 5.0)
        assert (result.ok, result.label) == (False, FailureLabel.INVALID_RESPONSE)


async def test_connection_reset() -> None:
    """CEN-8.1: the server resets (RST) the connection after reading the request."""

    async def reset(stream: SocketStream) -> None:
        await stream.receive()
        raw = stream.extra(SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()

    async with tcp_server(reset) as url:
        result = await check_health(url, 5.0)
        assert (result.ok, result.label) == (False, FailureLabel.CONNECTION_RESET)


async def test_closed_without_answer_counts_as_reset() -> None:
    """CEN-8.1: an orderly close before any answer byte is labelled connection_reset."""

    async def hang_up(stream: SocketStream) -> None:
        await stream.receive()
        await stream.aclose()

    async with tcp_server(hang_up) as url:
        result = await check_health(url, 5.0)
        assert (result.ok, result.label) == (False, FailureLabel.CONNECTION_RESET)


@pytest.mark.parametrize(
    ("error", "label"),
    [
        (DnsNxDomainError("no such name"), FailureLabel.DNS_NXDOMAIN),
        (DnsServFailError("SERVFAIL"), FailureLabel.DNS_SERVFAIL),
        (DnsTimeoutError("resolver timed out"), FailureLabel.DNS_TIMEOUT),
    ],
)
async def test_dns_failures_from_the_resolver(error: Exception, label: FailureLabel) -> None:
    """CEN-8.1: typed errors of the caller's resolver become DNS labels."""

    async def resolve(name: str) -> str:
        assert name == "central.railgun.test"
        raise error

    result = await check_health("http://central.railgun.test:8080", 5.0, resolve=resolve)
    assert (result.ok, result.label) == (False, label)


async def test_slow_resolver_is_a_dns_timeout() -> None:
    """CEN-8.1: a resolver still busy at the deadline is dns_timeout, not generic_timeout."""

    async def resolve(name: str) -> str:
        await anyio.sleep_forever()
        raise AssertionError

    result = await check_health("http://central.railgun.test:8080", 0.2, resolve=resolve)
    assert (result.ok, result.label) == (False, FailureLabel.DNS_TIMEOUT)


async def test_resolved_name_reaches_the_service(tmp_path: Path) -> None:
    """CEN-8.1: a name resolved to 127.0.0.1 by the caller's resolver is checked normally."""
    async with central(tmp_path) as url:
        port = url.rsplit(":", 1)[1]

        async def resolve(name: str) -> str:
            return "127.0.0.1"

        result = await check_health(f"http://central.railgun.test:{port}", 5.0, resolve=resolve)
        assert result.ok


async def test_only_loopback_is_contacted() -> None:
    """Address policy: a non-loopback target, or a name without a resolver, is a caller error."""
    with pytest.raises(ValueError):
        await check_health("http://192.0.2.1:80", 1.0)
    with pytest.raises(ValueError):
        await check_health("http://central.railgun.test:80", 1.0)

    async def resolve(name: str) -> str:
        return "192.0.2.1"

    with pytest.raises(ValueError):
        await check_health("http://central.railgun.test:80", 1.0, resolve=resolve)
    with pytest.raises(ValueError):
        await check_health("https://127.0.0.1:443", 1.0)
