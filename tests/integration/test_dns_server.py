"""The scenario DNS server and the stub resolver over real UDP on 127.0.0.1 (HT-2.1).

`DnsServer.handle` is checked on bytes (modes, malformed input), then the
server and `StubResolver` talk over a real socket, switching modes at run time.
"""

import errno
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.drivers.central_client import (
    DnsNxDomainError,
    DnsServFailError,
    DnsTimeoutError,
)
from railgun_ref.drivers.dns_server import DnsCounter, DnsMode, DnsServer
from railgun_ref.drivers.resolver import ResolverCounter, StubResolver

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(60)]

NAME = "central.railgun.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def query(name: str = NAME, qtype: str = "A", *, ident: int = 4242) -> bytes:
    record = DNSRecord.question(name, qtype)
    record.header.id = ident
    packed: bytes = record.pack()
    return packed


def server_with_record() -> DnsServer:
    server = DnsServer()
    server.register(NAME, "127.0.0.1")
    return server


def parse(reply: bytes | None) -> DNSRecord:
    assert reply is not None
    return DNSRecord.parse(reply)


def test_answer_mode_returns_the_registered_a_record() -> None:
    """HT-2.1: in `answer` mode a registered name resolves (case and trailing dot ignored)."""
    server = server_with_record()
    reply = parse(server.handle(query("Central.Railgun.Test.")))
    assert reply.header.id == 4242
    assert reply.header.rcode == RCODE.NOERROR
    assert [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A] == ["127.0.0.1"]
    assert server.counters.get_count(DnsCounter.QUERIES) == 1
    assert server.counters.get_count(DnsCounter.ANSWERS, DnsMode.ANSWER) == 1


def test_unknown_name_and_other_types() -> None:
    """An unregistered name is NXDOMAIN; AAAA for a known name is NODATA (NOERROR, empty)."""
    server = server_with_record()
    assert parse(server.handle(query("other.test"))).header.rcode == RCODE.NXDOMAIN
    aaaa = parse(server.handle(query(NAME, "AAAA")))
    assert (aaaa.header.rcode, len(aaaa.rr)) == (RCODE.NOERROR, 0)


@pytest.mark.parametrize(
    ("mode", "rcode"),
    [
        (DnsMode.NXDOMAIN, RCODE.NXDOMAIN),
        (DnsMode.SERVFAIL, RCODE.SERVFAIL),
        (DnsMode.REFUSED, RCODE.REFUSED),
    ],
)
def test_error_modes(mode: DnsMode, rcode: int) -> None:
    """HT-2.1: each blocking mode answers with its response code and no record."""
    server = server_with_record()
    server.set_mode(mode)
    reply = parse(server.handle(query()))
    assert (reply.header.rcode, len(reply.rr)) == (rcode, 0)
    assert server.counters.get_count(DnsCounter.ANSWERS, mode) == 1


def test_silent_mode_drops_the_query() -> None:
    server = server_with_record()
    server.set_mode(DnsMode.SILENT)
    assert server.handle(query()) is None
    assert server.counters.get_count(DnsCounter.ANSWERS, DnsMode.SILENT) == 1


def test_per_name_mode_wins_over_the_global_one() -> None:
    """Blocking one name leaves the others alone, and the other way round."""
    server = server_with_record()
    server.register("peer.railgun.test", "127.0.0.2")
    server.set_mode(DnsMode.NXDOMAIN, name=NAME)
    assert parse(server.handle(query())).header.rcode == RCODE.NXDOMAIN
    assert parse(server.handle(query("peer.railgun.test"))).header.rcode == RCODE.NOERROR
    server.set_mode(DnsMode.SERVFAIL)
    server.set_mode(DnsMode.ANSWER, name="peer.railgun.test")
    assert parse(server.handle(query("peer.railgun.test"))).header.rcode == RCODE.NOERROR
    server.clear_mode(NAME)
    assert parse(server.handle(query())).header.rcode == RCODE.SERVFAIL


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x12\x34\x01\x00\x00\x01",  # header cut short
        query()[:-3],  # question cut short
        bytes(12),  # a header with no question
        bytes(DNSRecord.question(NAME).reply().pack()),  # a response, not a query
    ],
    ids=["empty", "one-byte", "short-header", "short-question", "no-question", "response"],
)
def test_malformed_is_counted_not_answered(data: bytes) -> None:
    """Bad input: a malformed datagram is counted and dropped; the server goes on."""
    server = server_with_record()
    assert server.handle(data) is None
    assert server.counters.get_count(DnsCounter.MALFORMED) == 1
    assert server.counters.get_count(DnsCounter.QUERIES) == 0
    assert parse(server.handle(query())).header.rcode == RCODE.NOERROR


@given(st.binary(max_size=600))
def test_any_bytes_never_crash(data: bytes) -> None:
    """Bad input: whatever arrives, `handle` returns bytes or None and never raises."""
    server = server_with_record()
    reply = server.handle(data)
    assert reply is None or isinstance(reply, bytes)
    counters = server.counters
    assert counters.get_count(DnsCounter.MALFORMED) + counters.get_count(DnsCounter.QUERIES) == 1


def test_register_only_what_the_harness_allows() -> None:
    with pytest.raises(ValueError, match="harness"):
        DnsServer().register(NAME, "192.0.2.1")
    with pytest.raises(ValueError, match="IPv4"):
        DnsServer().register(NAME, "::1")
    with pytest.raises(ValueError, match="allow-public-bind"):
        DnsServer(host="0.0.0.0")


@asynccontextmanager
async def running(server: DnsServer) -> AsyncIterator[DnsServer]:
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        yield server
        tg.cancel_scope.cancel()


async def test_resolver_against_the_server_in_every_mode() -> None:
    """HT-2.1: the resolver's typed errors follow the server's mode, switched at run time."""
    async with running(server_with_record()) as server:
        resolve = StubResolver(server.address, timeout=0.5)
        assert await resolve(NAME) == "127.0.0.1"
        server.set_mode(DnsMode.NXDOMAIN, name=NAME)
        with pytest.raises(DnsNxDomainError):
            await resolve(NAME)
        for mode in (DnsMode.SERVFAIL, DnsMode.REFUSED):
            server.set_mode(mode, name=NAME)
            with pytest.raises(DnsServFailError):
                await resolve(NAME)
        server.set_mode(DnsMode.SILENT, name=NAME)
        with pytest.raises(DnsTimeoutError):
            await resolve(NAME)
        server.set_mode(DnsMode.ANSWER, name=NAME)
        assert await resolve(NAME) == "127.0.0.1"
        with pytest.raises(DnsNxDomainError):
            await resolve("unknown.railgun.test")
        server.register("second.railgun.test", "127.0.0.3")
        assert await resolve("second.railgun.test") == "127.0.0.3"
        assert server.counters.get_count(DnsCounter.ANSWERS, DnsMode.SILENT) == 1
        assert resolve.counters.get_count(ResolverCounter.TIMEOUTS) == 1


async def test_server_survives_garbage_on_the_socket() -> None:
    """Bad input: garbage datagrams are counted; real queries are still answered."""
    async with running(server_with_record()) as server:
        host, port = server.address
        async with await anyio.create_connected_udp_socket(host, port) as sock:
            for junk in (b"", b"\xff" * 3, b"not dns at all" * 10):
                await sock.send(junk)
        resolve = StubResolver(server.address, timeout=2.0)
        assert await resolve(NAME) == "127.0.0.1"
        # an empty datagram may not be delivered
        assert server.counters.get_count(DnsCounter.MALFORMED) >= 2


async def test_resolver_ignores_forged_and_garbage_replies() -> None:
    """Bad input: replies with another id or question, or garbage, do not end the wait."""
    async with await anyio.create_udp_socket(local_host="127.0.0.1") as fake:
        port = fake.extra(anyio.abc.SocketAttribute.local_port)
        resolve = StubResolver(("127.0.0.1", port), timeout=2.0)
        answer: list[str] = []

        async def ask() -> None:
            answer.append(await resolve(NAME))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            data, (host, client_port) = await fake.receive()
            asked = DNSRecord.parse(data)
            wrong_id = asked.reply()
            wrong_id.header.id = (asked.header.id + 1) % 65536
            wrong_name = DNSRecord.question("evil.test").reply()
            wrong_name.header.id = asked.header.id
            for junk in (b"garbage", wrong_id.pack(), wrong_name.pack(), asked.pack()):
                await fake.sendto(junk, host, client_port)
            good = asked.reply()
            good.add_answer(RR(NAME, QTYPE.A, rdata=A("127.0.0.9")))
            await fake.sendto(good.pack(), host, client_port)
        assert answer == ["127.0.0.9"]
        assert resolve.counters.get_count(ResolverCounter.MISMATCHED) == 4


async def test_a_kernel_picked_port_taken_on_tcp_is_picked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With port 0 the UDP port the kernel picks may be held on TCP by another process
    (CI failed once on exactly this): the server picks another port instead of failing."""
    real = anyio.create_tcp_listener
    refused: list[int] = []

    async def busy_once(**kwargs: object) -> object:
        if not refused:
            refused.append(int(kwargs["local_port"]))  # type: ignore[call-overload]
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return await real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(anyio, "create_tcp_listener", busy_once)
    server = server_with_record()
    async with anyio.create_task_group() as tg:
        await tg.start(server.run)
        assert len(refused) == 1
        assert server.address[1] != 0
        tg.cancel_scope.cancel()


async def test_a_fixed_port_taken_on_tcp_is_an_error_not_a_silent_move() -> None:
    """An explicit port is what the operator asked for: when TCP holds it, say so."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = DnsServer(host="127.0.0.1", port=port)
        with pytest.raises(BaseException) as caught:
            async with anyio.create_task_group() as tg:
                await tg.start(server.run)
        assert "Address already in use" in repr(caught.value) or "98" in repr(caught.value)
