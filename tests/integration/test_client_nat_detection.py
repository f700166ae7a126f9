"""NAT-6.4: a client given a STUN server detects its own NAT type before it starts.

On loopback there is no NAT: the RFC 5780 tests against the project's STUN server
(primary 127.0.0.1, alternate 127.0.0.2) find an open host, and the client plans
traversal and advertises its capabilities with that. A STUN address where nothing
answers leaves the type unknown, and the client still starts. (Kernel NATs:
tests/netlab/test_client_nat.py.)
"""

from pathlib import Path

import anyio
import pytest

from railgun_ref.capacity.nat import NatType
from railgun_ref.client import connect, fast_profile
from railgun_ref.drivers.stun_server import StunServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(90)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_client_on_loopback_detects_an_open_host(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tg:
        server = StunServer()
        await tg.start(server.run)
        async with connect(
            data_dir=tmp_path, stun=server.primary, profile=fast_profile(), calls=False
        ) as client:
            assert client.nat is NatType.OPEN
            traversal = client.transport.traversal
            assert traversal is not None and traversal.settings.nat is NatType.OPEN
            sf = client.transport.store_forward
            assert sf is not None and sf.host is not None  # it publishes the adverts (SF-8.5)
            with anyio.fail_after(30):
                while sf.host.capabilities.nat_type is not NatType.OPEN:
                    await anyio.sleep(0.05)
        tg.cancel_scope.cancel()


async def test_a_silent_stun_server_leaves_the_type_unknown(tmp_path: Path) -> None:
    async with connect(
        data_dir=tmp_path, stun=("127.0.0.1", 9), profile=fast_profile(), calls=False
    ) as client:
        assert client.nat is NatType.UNKNOWN


async def test_a_given_type_is_not_detected_again(tmp_path: Path) -> None:
    async with connect(
        data_dir=tmp_path,
        stun=("127.0.0.1", 9),
        nat=NatType.SYMMETRIC,
        profile=fast_profile(),
        calls=False,
    ) as client:
        assert client.nat is NatType.SYMMETRIC
