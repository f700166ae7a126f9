"""Many NodeHosts served by one HostGroup: one watch loop, one timer heap, no task per host."""

import socket

import anyio
import pytest

from railgun_ref.drivers.host_group import GroupStoppedError, HostGroup
from railgun_ref.drivers.udp import HostState, HostStoppedError, NodeHost
from railgun_ref.events import PongReceived, RequestTimedOut
from railgun_ref.node import NodeConfig
from railgun_ref.rpc.requests import Channel

from .conftest import identity

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def _bound_again(address: tuple[str, int]) -> None:
    """Both halves of a stopped host's port can be bound again (its sockets are closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(address)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(address)


async def test_hosts_in_one_group_answer_datagram_and_stream_pings() -> None:
    hosts = [NodeHost(identity(n)) for n in range(1, 9)]
    group = HostGroup()
    async with anyio.create_task_group() as tg:
        await tg.start(group.run)
        addresses = [group.add(host) for host in hosts]
        assert len(group) == len(hosts)
        for host, target in zip(hosts, addresses[1:] + addresses[:1], strict=True):
            assert isinstance(await host.ping(target), PongReceived)
        stream = await hosts[0].ping(addresses[1], channel=Channel.STREAM, payload=b"x" * 4000)
        assert isinstance(stream, PongReceived)
        tg.cancel_scope.cancel()
    assert all(host.state is HostState.STOPPED for host in hosts)
    assert len(group) == 0


async def test_stopping_one_host_leaves_the_others_serving() -> None:
    config = NodeConfig(request_timeout=0.3)
    a, b, c = (NodeHost(identity(n), config=config) for n in (1, 2, 3))
    group = HostGroup()
    async with anyio.create_task_group() as tg:
        await tg.start(group.run)
        for host in (a, b, c):
            group.add(host)
        b_address = b.address
        b.stop()
        b.stop()  # idempotent
        assert not b.running and len(group) == 2
        _bound_again(b_address)
        assert isinstance(await a.ping(b_address), RequestTimedOut)
        assert isinstance(await a.ping(c.address), PongReceived)
        with pytest.raises(HostStoppedError):
            await b.ping(a.address)
        tg.cancel_scope.cancel()


async def test_a_stop_ends_the_calls_waiting_on_that_host() -> None:
    a = NodeHost(identity(1), config=NodeConfig(request_timeout=60))
    silent = await anyio.create_udp_socket(local_host="127.0.0.1")
    errors: list[HostStoppedError] = []
    group = HostGroup()

    async def waiting_ping() -> None:
        try:
            await a.ping(("127.0.0.1", silent.extra(anyio.abc.SocketAttribute.local_port)))
        except HostStoppedError as exc:
            errors.append(exc)

    async with silent, anyio.create_task_group() as tg:
        await tg.start(group.run)
        group.add(a)
        tg.start_soon(waiting_ping)
        with anyio.fail_after(5):
            while a.node.requests_in_flight == 0:
                await anyio.sleep(0.005)
        a.stop()
        with anyio.fail_after(5):
            while not errors:
                await anyio.sleep(0.005)
        tg.cancel_scope.cancel()
    assert len(errors) == 1


async def test_a_group_serves_only_while_it_runs_and_only_hosts_on_its_clock() -> None:
    group = HostGroup()
    with pytest.raises(GroupStoppedError):
        group.add(NodeHost(identity(1)))
    async with anyio.create_task_group() as tg:
        await tg.start(group.run)
        with pytest.raises(ValueError, match="clock"):
            group.add(NodeHost(identity(2), clock=lambda: 1_700_000_000.0))
        host = NodeHost(identity(3))
        group.add(host)
        with pytest.raises(HostStoppedError):
            group.add(host)  # a host runs once
        tg.cancel_scope.cancel()
    with pytest.raises(GroupStoppedError):
        group.add(NodeHost(identity(4)))
    with pytest.raises(GroupStoppedError):
        await group.run()
