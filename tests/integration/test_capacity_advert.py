"""Capability advertisements over real sockets: publish, fetch, refresh, refuse (CAP-3.x)."""

import time

import anyio
import pytest

from railgun_ref.capacity import (
    Advertiser,
    Availability,
    DeviceCapabilities,
    DeviceClass,
    NatType,
    encode_capabilities,
)
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.keys import KeyType
from railgun_ref.drivers.capabilities import keep_advertising
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.node import NodeConfig

from .conftest import identity, serving

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CONFIG = NodeConfig(request_timeout=1.0)


def capabilities(nat: NatType = NatType.OPEN) -> DeviceCapabilities:
    return DeviceCapabilities(
        device_class=DeviceClass.DESKTOP_POWERFUL,
        upload_bandwidth=2_500_000,
        download_bandwidth=12_500_000,
        max_relay_connections=20,
        max_relay_bandwidth=1_250_000,
        can_act_as_turn=True,
        can_store_messages=True,
        nat_type=nat,
        availability=Availability.ALWAYS,
    )


async def test_advertise_then_fetch_from_another_node() -> None:
    """CAP-3.3, CAP-3.5: b fetches and verifies what a published; an unknown node gives None."""
    a, b, c = (NodeHost(identity(n), config=CONFIG) for n in (1, 2, 3))
    async with serving(a, b, c):
        await b.bootstrap([a.address])
        await c.bootstrap([a.address])
        stored = await a.advertise_capabilities(capabilities(), ttl=600)
        fetched_at = time.time()
        got = await b.fetch_capabilities(a.node_id)
        missing = await b.fetch_capabilities(c.node_id)
        with pytest.raises(ValueError):
            await a.advertise_capabilities(capabilities(), ttl=2 * 86_400)
    assert stored.accepted >= 1
    assert got is not None
    assert got.node_id == a.node_id and got.capabilities == capabilities()
    assert 590 < got.expires_at - fetched_at <= 600
    assert missing is None


async def test_a_forged_advertisement_is_refused_and_not_used() -> None:
    """CAP-3.5, DHT-3.4: mallory signs a capability record naming a; nobody uses it."""
    a, b, mallory = (NodeHost(identity(n), config=CONFIG) for n in (1, 2, 4))
    async with serving(a, b, mallory):
        await b.bootstrap([a.address])
        await mallory.bootstrap([a.address])
        forged = await mallory.store(
            KeyType.CAPABILITY, a.node_id, encode_capabilities(capabilities(NatType.OPEN))
        )
        assert await b.fetch_capabilities(a.node_id) is None
        await a.advertise_capabilities(capabilities(NatType.SYMMETRIC))
        genuine = await b.fetch_capabilities(a.node_id)
    assert forged.refused >= 1  # honest holders refuse it (FORBIDDEN)
    assert genuine is not None and genuine.capabilities.nat_type is NatType.SYMMETRIC


async def fetch_until(
    host: NodeHost, node_id: NodeId, want: DeviceCapabilities, timeout: float = 5.0
) -> DeviceCapabilities | None:
    """Fetch `node_id`'s advertisement until it says `want` (or the time is up)."""
    got = None
    with anyio.move_on_after(timeout):
        while True:
            advert = await host.fetch_capabilities(node_id)
            got = None if advert is None else advert.capabilities
            if got == want:
                break
            await anyio.sleep(0.05)
    return got


async def test_keep_advertising_republishes_changes() -> None:
    """CAP-3.4: a material change (the NAT type) is published again, early."""
    a, b = NodeHost(identity(1), config=CONFIG), NodeHost(identity(2), config=CONFIG)
    readings = [capabilities()]
    async with serving(a, b):
        await b.bootstrap([a.address])
        async with anyio.create_task_group() as tg:
            advertiser = Advertiser(ttl=600, min_interval=0.0)
            tg.start_soon(
                lambda: keep_advertising(
                    a, lambda: readings[-1], advertiser=advertiser, reading_interval=0.05
                )
            )
            first = await fetch_until(b, a.node_id, capabilities())
            readings.append(capabilities(NatType.SYMMETRIC))
            second = await fetch_until(b, a.node_id, capabilities(NatType.SYMMETRIC))
            tg.cancel_scope.cancel()
    assert first == capabilities()
    assert second == capabilities(NatType.SYMMETRIC)
    assert advertiser.published == capabilities(NatType.SYMMETRIC)
