"""Application messages between real hosts (APP-1.x over the anyio driver)."""

import anyio
import pytest

from railgun_ref.core.constants import APP_TOPIC_ROOM, APP_TOPIC_VOICE
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.drivers.udp import DriverCounter, HostStoppedError, NodeHost
from railgun_ref.events import AppMessageReceived
from railgun_ref.node import NodeCounter
from railgun_ref.rpc.requests import Channel

from .conftest import identity, serving, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_app_messages_reach_the_topic_subscriber_in_order() -> None:
    """APP-1.3/APP-1.4: each topic's subscriber gets its messages, in order, with the sender."""
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    async with serving(a, b):
        rooms = b.app_inbox(APP_TOPIC_ROOM)
        voice = b.app_inbox(APP_TOPIC_VOICE)
        for i in range(20):
            await a.send_app(
                b.address, APP_TOPIC_ROOM, f"room {i}".encode(), channel=Channel.STREAM
            )
        await a.send_app(b.address, APP_TOPIC_VOICE, b"x" * 60_000)
        got: list[AppMessageReceived] = []
        with anyio.fail_after(5):
            while len(got) < 20:
                got.append(await rooms.receive())
            offer = await voice.receive()
    assert [m.payload for m in got] == [f"room {i}".encode() for i in range(20)]
    assert {m.sender for m in got} == {a.node_id}
    assert offer.payload == b"x" * 60_000 and offer.sender == a.node_id
    assert (
        a.driver_counters.get_count(DriverCounter.CONNECTIONS_OPENED) == 1
    )  # one stream carried all of it


async def test_app_messages_that_fit_travel_as_datagrams_the_rest_on_a_stream() -> None:
    """APP-1.5: by default a message whose envelope fits a datagram leaves the node's own
    socket as one (the NAT mapping peers reach it by); a larger one opens a stream."""
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    async with serving(a, b):
        rooms = b.app_inbox(APP_TOPIC_ROOM)
        await a.send_app(b.address, APP_TOPIC_ROOM, b"small")
        with anyio.fail_after(5):
            small = await rooms.receive()
        assert small.payload == b"small" and small.sender == a.node_id
        assert a.node.counters.get_count(NodeCounter.TX, Channel.DATAGRAM) == 1
        assert a.driver_counters.get_count(DriverCounter.CONNECTIONS_OPENED) == 0
        await a.send_app(b.address, APP_TOPIC_ROOM, b"y" * 5_000)
        with anyio.fail_after(5):
            large = await rooms.receive()
        assert large.payload == b"y" * 5_000
        assert a.driver_counters.get_count(DriverCounter.CONNECTIONS_OPENED) == 1


async def test_unsubscribed_topic_is_dropped_and_counted() -> None:
    """APP-1.3: no subscriber: dropped and counted, the host keeps serving."""
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    async with serving(a, b):
        await a.send_app(b.address, 77, b"nobody listens")
        await wait_until(lambda: b.driver_counters.get_count(DriverCounter.APP_UNROUTED) == 1)
        pong = await a.ping(b.address)
    assert pong.peer_id == b.node_id


async def test_full_inbox_drops_and_counts_without_blocking_the_host() -> None:
    """APP-1.3: a subscriber that does not read loses messages, counted; pings still answered."""
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    async with serving(a, b):
        inbox = b.app_inbox(APP_TOPIC_ROOM, buffer=2)
        for i in range(5):
            await a.send_app(b.address, APP_TOPIC_ROOM, bytes([i]))
        await wait_until(lambda: b.driver_counters.get_count(DriverCounter.APP_INBOX_FULL) == 3)
        assert (await inbox.receive()).payload == b"\x00"
        assert (await inbox.receive()).payload == b"\x01"
        pong = await a.ping(b.address)
    assert pong.peer_id == b.node_id


async def test_inbox_ends_when_the_host_stops_and_sending_after_stop_fails() -> None:
    """APP-1.3: iterating an inbox ends with the host; a stopped host refuses to send."""
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    async with serving(a, b):
        inbox = a.app_inbox(APP_TOPIC_ROOM)
        b_address = b.address
    received = [m async for m in inbox]
    assert received == []
    with pytest.raises(HostStoppedError):
        await a.send_app(b_address, APP_TOPIC_ROOM, b"late")


async def test_send_app_checks_address_and_topic() -> None:
    """APP-1.2: bad topics are the caller's error; only loopback destinations."""
    a, b = NodeHost(identity(1)), NodeHost(identity(2))
    async with serving(a, b):
        with pytest.raises(LocalProtocolError):
            await a.send_app(b.address, 0, b"x")
        with pytest.raises(ValueError):
            await a.send_app(("10.0.0.1", 4000), APP_TOPIC_ROOM, b"x")
        with pytest.raises(ValueError):
            a.app_inbox(0)
