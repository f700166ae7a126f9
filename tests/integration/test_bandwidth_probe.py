"""The bandwidth probe measures a capped link, never more than the cap (capacity detection)."""

import anyio
import pytest

from railgun_ref.capacity.nat import NatType
from railgun_ref.drivers.capabilities import detect_capabilities, measure_bandwidth
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.identity.keys import Identity

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CAP = 2_000_000  # bytes/s


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_probe_is_bounded_by_the_capped_side_and_feeds_detection() -> None:
    """CAP-1.1: a measured probe (not a guess) supplies the bandwidth fields.

    Only an upper bound is asserted: the pacer cannot let more than the cap
    through, whereas a slow machine may legitimately measure less.
    """
    capped = NodeHost(Identity.from_seed(bytes([1]) * 32), stream_rate=CAP)
    peer = NodeHost(Identity.from_seed(bytes([2]) * 32))
    async with anyio.create_task_group() as tg:
        await tg.start(capped.run)
        await tg.start(peer.run)
        result = await measure_bandwidth(capped, peer.address, duration=0.5, payload_size=50_000)
        tg.cancel_scope.cancel()
    assert result.failures == 0
    assert result.pings > 0
    assert 0 < result.bytes_per_second <= CAP * 1.1
    caps = detect_capabilities(
        upload_bandwidth=result.bytes_per_second,
        download_bandwidth=result.bytes_per_second,
        nat_type=NatType.OPEN,
    )
    assert caps.upload_bandwidth == result.bytes_per_second


def test_stream_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        NodeHost(Identity.from_seed(bytes(32)), stream_rate=0)


async def test_probe_refuses_bad_parameters() -> None:
    host = NodeHost(Identity.from_seed(bytes(32)))
    with pytest.raises(ValueError):
        await measure_bandwidth(host, ("127.0.0.1", 9), duration=0)
