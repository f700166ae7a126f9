"""The anyio driver on real sockets: UDP datagrams and TCP streams on 127.0.0.0/8."""

import random
import socket
import struct
from functools import partial

import anyio
import pytest

from railgun_ref.core.constants import MAX_STREAM_MESSAGE_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError
from railgun_ref.drivers.udp import DriverCounter, HostStoppedError, NodeHost, serve_node
from railgun_ref.events import PongReceived, RequestTimedOut
from railgun_ref.limits.slots import CloseReason, SlotCounter
from railgun_ref.node import NodeConfig, NodeCounter
from railgun_ref.rpc.labels import MessageName
from railgun_ref.rpc.requests import Channel
from railgun_ref.trace import TraceRecord
from railgun_ref.wire.framing import encode_frame

from .conftest import identity, serving, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

SHORT = NodeConfig(request_timeout=0.5)


def closed_udp_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_datagram_ping_both_ways() -> None:
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    async with serving(a, b):
        ab = await a.ping(b.address, expected_peer=b.node_id)
        ba = await b.ping(a.address, expected_peer=a.node_id)
    assert isinstance(ab, PongReceived) and isinstance(ba, PongReceived)
    assert (ab.peer_id, ab.address, ab.observed) == (b.node_id, b.address, a.address)
    assert (ba.peer_id, ba.address, ba.observed) == (a.node_id, a.address, b.address)
    assert ab.channel is Channel.DATAGRAM and ab.rtt >= 0
    assert (
        a.node.counters.get_count(NodeCounter.PING_ANSWERED)
        == b.node.counters.get_count(NodeCounter.PING_ANSWERED)
        == 1
    )


async def test_stream_ping_carries_a_payload_no_datagram_could() -> None:
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    payload = random.Random(1).randbytes(60_000)
    async with serving(a, b):
        with pytest.raises(LocalProtocolError):
            await a.ping(b.address, payload=payload)  # 60 KB never fits a datagram
        outcome = await a.ping(b.address, channel=Channel.STREAM, payload=payload)
        again = await a.ping(b.address, channel=Channel.STREAM)
        back = await b.ping(a.address, channel=Channel.STREAM, payload=payload)
    assert isinstance(outcome, PongReceived) and outcome.channel is Channel.STREAM
    assert outcome.payload_size == 60_000 and outcome.peer_id == b.node_id
    assert isinstance(again, PongReceived) and isinstance(back, PongReceived)
    # The TCP listener shares the UDP port; a second PING reuses the connection.
    assert a.driver_counters.get_count(DriverCounter.CONNECTIONS_OPENED) == 1
    assert b.driver_counters.get_count(DriverCounter.CONNECTIONS_ACCEPTED) == 1
    assert (
        b.driver_counters.get_count(DriverCounter.CONNECTIONS_OPENED) == 1
    )  # b dialled a's listener for its own


async def test_ping_to_a_closed_udp_port_times_out() -> None:
    a = NodeHost(identity(1), config=SHORT)
    async with serving(a):
        outcome = await a.ping(("127.0.0.1", closed_udp_port()))
    assert isinstance(outcome, RequestTimedOut)
    assert outcome.channel is Channel.DATAGRAM
    assert a.node.counters.get_count(NodeCounter.REQUEST_TIMEOUT) == 1


async def test_stream_ping_to_a_closed_port_counts_the_failed_connect_and_times_out() -> None:
    a = NodeHost(identity(1), config=SHORT)
    async with serving(a):
        outcome = await a.ping(("127.0.0.1", closed_udp_port()), channel=Channel.STREAM)
        assert a.open_connections == 0
    assert isinstance(outcome, RequestTimedOut) and outcome.channel is Channel.STREAM
    assert a.driver_counters.get_count(DriverCounter.CONNECT_FAILED) == 1
    assert a.driver_counters.get_count(DriverCounter.STREAM_DROPPED) == 1


async def test_garbage_datagrams_are_counted_and_the_host_keeps_answering() -> None:
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    rng = random.Random(7)
    garbage = [b"", b"\x00", rng.randbytes(100), rng.randbytes(1200), rng.randbytes(2000)]
    garbage.append(rng.randbytes(60_000))  # far over the 1200-byte datagram limit
    async with serving(a, b):
        # A plain socket: asyncio's transport silently skips empty datagrams.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for data in garbage:
                sender.sendto(data, a.address)
            await wait_until(
                lambda: a.node.counters.get_count(NodeCounter.RX, Channel.DATAGRAM) == len(garbage)
            )
        outcome = await b.ping(a.address)
        stream_outcome = await b.ping(a.address, channel=Channel.STREAM)
    rejected = a.node.counters.total(NodeCounter.REJECTED)
    assert rejected == len(garbage)
    assert a.node.counters.get_count(NodeCounter.REJECTED, ErrorCode.TOO_LARGE) == 2
    assert (
        a.node.counters.get_count(NodeCounter.TX, Channel.DATAGRAM) == 1
    )  # only the PONG: garbage is never answered
    assert isinstance(outcome, PongReceived) and isinstance(stream_outcome, PongReceived)


async def test_garbage_on_a_stream_is_counted_and_closes_only_that_connection() -> None:
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    async with serving(a, b):
        # b holds an open stream connection to a throughout.
        assert isinstance(await b.ping(a.address, channel=Channel.STREAM), PongReceived)
        raw = await anyio.connect_tcp(*a.address)
        async with raw:
            # A well-framed envelope of random bytes: refused by the node, connection kept.
            await raw.send(encode_frame(random.Random(3).randbytes(500)))
            await wait_until(
                lambda: a.node.counters.get_count(NodeCounter.REJECTED, ErrorCode.MALFORMED) == 1
            )
            # A length prefix over the limit: the stream can't be resynchronised.
            await raw.send(struct.pack(">I", MAX_STREAM_MESSAGE_SIZE + 1) + b"x" * 10)
            with anyio.fail_after(2), pytest.raises(anyio.EndOfStream):
                await raw.receive()  # a closes this connection, and only this one
        raw = await anyio.connect_tcp(*a.address)
        async with raw:
            await raw.send(struct.pack(">I", 0))  # a zero length is malformed too
            with anyio.fail_after(2), pytest.raises(anyio.EndOfStream):
                await raw.receive()
        noise = random.Random(5).randbytes(1000)
        assert int.from_bytes(noise[:4], "big") > MAX_STREAM_MESSAGE_SIZE  # reads as a length
        raw = await anyio.connect_tcp(*a.address)
        async with raw:
            await raw.send(noise)
            with anyio.fail_after(2), pytest.raises(anyio.EndOfStream):
                await raw.receive()
        assert a.driver_counters.get_count(DriverCounter.FRAMING_ERROR) == 3
        assert isinstance(await b.ping(a.address, channel=Channel.STREAM), PongReceived)
        assert isinstance(await b.ping(a.address), PongReceived)
        assert (
            b.driver_counters.get_count(DriverCounter.CONNECTIONS_OPENED) == 1
        )  # b's connection survived


async def test_a_peer_resetting_its_connection_is_counted_not_fatal() -> None:
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    async with serving(a, b):
        for _ in range(3):
            sock = socket.create_connection(a.address)
            # Half a frame, then an abortive close: the host sees data, then a reset.
            sock.sendall(struct.pack(">I", 100) + b"half")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        await wait_until(
            lambda: a.driver_counters.get_count(DriverCounter.CONNECTIONS_ACCEPTED) == 3
        )
        await wait_until(lambda: a.open_connections == 0)
        assert isinstance(await b.ping(a.address, channel=Channel.STREAM), PongReceived)
    assert a.driver_counters.get_count(DriverCounter.CONNECTION_ERROR) == 3


async def test_hosts_on_two_loopback_addresses() -> None:
    a = NodeHost(identity(1), host="127.0.0.1")
    b = NodeHost(identity(2), host="127.0.0.2")
    async with serving(a, b):
        assert a.address[0] == "127.0.0.1" and b.address[0] == "127.0.0.2"
        outcomes = [
            await a.ping(b.address, channel=channel, expected_peer=b.node_id) for channel in Channel
        ] + [await b.ping(a.address, channel=channel) for channel in Channel]
    assert all(isinstance(o, PongReceived) for o in outcomes)
    # Each host is seen at its own address, on TCP as on UDP.
    assert [o.observed[0] for o in outcomes if isinstance(o, PongReceived)] == [
        "127.0.0.1",
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.2",
    ]


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "192.0.2.7", "::"])
async def test_other_interfaces_need_allow_public(host: str) -> None:
    with pytest.raises(ValueError, match="allow-public-bind"):
        NodeHost(identity(1), host=host)


@pytest.mark.parametrize("host", ["localhost", ""])
async def test_names_cannot_be_bound(host: str) -> None:
    with pytest.raises(ValueError, match="literal"):
        NodeHost(identity(1), host=host, allow_public=True)


async def test_ipv6_loopback_nodes_see_each_other_at_the_observed_address() -> None:
    a, b = NodeHost(identity(1), host="::1"), NodeHost(identity(2), host="::1")
    async with serving(a, b):
        outcomes = [await b.ping(a.address, channel=channel) for channel in Channel]
    assert all(isinstance(o, PongReceived) for o in outcomes)
    assert [o.observed[0] for o in outcomes if isinstance(o, PongReceived)] == ["::1", "::1"]


async def test_only_loopback_addresses_can_be_pinged() -> None:
    a = NodeHost(identity(1))
    async with serving(a):
        for address in [("192.0.2.1", 9), ("8.8.8.8", 53), ("127.0.0.1", 0), ("127.0.0.1", 70000)]:
            with pytest.raises(ValueError):
                await a.ping(address)
    assert (
        a.node.counters.get_count(NodeCounter.REQUEST, MessageName.PING) == 0
        and a.node.counters.get_count(NodeCounter.TX, Channel.DATAGRAM) == 0
    )


async def test_the_requested_port_is_used_for_udp_and_tcp() -> None:
    port = closed_udp_port()
    a, b = NodeHost(identity(1), port=port), NodeHost(identity(2))
    async with serving(a, b):
        assert a.address == ("127.0.0.1", port)
        assert isinstance(await b.ping(("127.0.0.1", port)), PongReceived)
        assert isinstance(await b.ping(("127.0.0.1", port), channel=Channel.STREAM), PongReceived)


async def test_many_concurrent_pings_all_complete() -> None:
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    outcomes: list[object] = []

    async def one(channel: Channel) -> None:
        outcomes.append(await a.ping(b.address, channel=channel))

    async with serving(a, b), anyio.create_task_group() as tg:
        for i in range(80):
            tg.start_soon(one, Channel.DATAGRAM if i % 4 else Channel.STREAM)
    assert len(outcomes) == 80
    assert all(isinstance(o, PongReceived) for o in outcomes)
    assert a.node.requests_in_flight == 0


async def test_a_pong_from_the_wrong_node_is_refused_and_the_request_times_out() -> None:
    a, b = NodeHost(identity(1), config=SHORT), NodeHost(identity(2))
    async with serving(a, b):
        outcome = await a.ping(b.address, expected_peer=identity(3).node_id)
    assert isinstance(outcome, RequestTimedOut)
    assert a.node.counters.get_count(NodeCounter.REJECTED, ErrorCode.WRONG_SENDER) == 1


async def test_trace_records_and_subscribers() -> None:
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    seen: list[TraceRecord] = []
    unsubscribe = a.subscribe(seen.append)
    async with serving(a, b):
        await a.ping(b.address)
        unsubscribe()
        await a.ping(b.address)
    assert [r.event for r in seen] == ["PongReceived"]
    assert [r.event for r in a.trace()] == ["PongReceived", "PongReceived"]
    assert [r.event for r in b.trace()] == ["PingReceived", "PingReceived"]
    record = a.trace()[0]
    assert record.node == a.node_id.hex() and record.data["peer_id"] == b.node_id.hex()
    assert record.data["address"] == list(b.address)


async def test_the_trace_is_bounded() -> None:
    a, b = NodeHost(identity(1), trace_limit=3), NodeHost(identity(2))
    async with serving(a, b):
        for _ in range(5):
            await a.ping(b.address)
    assert len(a.trace()) == 3
    assert a.driver_counters.get_count(DriverCounter.TRACE_EVICTED) == 2


async def test_a_host_runs_once_and_refuses_calls_when_stopped() -> None:
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    with pytest.raises(HostStoppedError):
        await a.ping(b.address)  # not started
    async with serving(a, b):
        pass
    assert not a.running
    with pytest.raises(HostStoppedError):
        await a.ping(b.address)
    with pytest.raises(HostStoppedError):
        await a.run()


async def test_stopping_a_host_releases_its_port_and_ends_waiting_pings() -> None:
    a = NodeHost(identity(1), config=NodeConfig(request_timeout=60))
    errors: list[BaseException] = []

    async def waiting_ping() -> None:
        try:
            await a.ping(("127.0.0.1", closed_udp_port()))
        except HostStoppedError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as outer, anyio.create_task_group() as tg:
        await tg.start(a.run)
        outer.start_soon(waiting_ping)  # outside the host's task group
        await wait_until(lambda: a.node.requests_in_flight == 1)
        tg.cancel_scope.cancel()
    assert len(errors) == 1
    host, port = a.address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((host, port))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((host, port))


async def test_serve_node_reports_a_ready_host_and_serves_until_cancelled() -> None:
    ready: list[NodeHost] = []
    b = NodeHost(identity(2))
    async with serving(b), anyio.create_task_group() as tg:
        serve = partial(
            serve_node, host="127.0.0.1", port=0, identity=identity(1), on_ready=ready.append
        )
        tg.start_soon(serve)
        await wait_until(lambda: len(ready) == 1)
        assert ready[0].running and ready[0].node_id == identity(1).node_id
        assert isinstance(await b.ping(ready[0].address), PongReceived)
        tg.cancel_scope.cancel()
    assert not ready[0].running


async def test_a_full_pool_closes_its_idlest_connection_and_counts_it() -> None:
    """ABUSE-3.2: a newcomer is never refused; the idlest holder of its pool makes room."""
    a, b = NodeHost(identity(1), max_connections=1), NodeHost(identity(2))
    async with serving(a, b):
        first = await anyio.connect_tcp(*a.address)
        async with first:
            await wait_until(lambda: a.open_connections == 1)
            second = await anyio.connect_tcp(*a.address)
            async with second:
                with (
                    anyio.fail_after(2),
                    pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)),
                ):
                    await first.receive()
                assert a.driver_counters.get_count(DriverCounter.CONNECTION_LIMIT) == 1
                assert a.slots.counters.get_count(SlotCounter.CLOSED, CloseReason.POOL_FULL) == 1
        await wait_until(lambda: a.open_connections == 0)
        assert isinstance(await b.ping(a.address, channel=Channel.STREAM), PongReceived)
