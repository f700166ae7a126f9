"""The P2P send queue is bounded: a starved process drops and counts, never hoards.

The P2P core hands every frame to the transport's sender task through a queue.
When the process cannot keep up (a busy host: re-sends pile in faster than the
sender signs them), an unbounded queue grew to a gigabyte per demo client; now
frames beyond `APP_QUEUE_SIZE` are dropped and counted, and the core's re-sends
(HT-6.3) deliver what matters once the sender catches up.
"""

from pathlib import Path

import pytest

from railgun_ref.client import connect, fast_profile
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.transport import APP_QUEUE_SIZE, TransportCounter
from railgun_ref.transport.p2p import SendApp

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_frames_beyond_the_queue_are_dropped_and_counted(tmp_path: Path) -> None:
    async with connect(data_dir=tmp_path, profile=fast_profile(), calls=False) as client:
        transport = client.transport
        frame = SendApp(peer=NodeId(bytes(32)), address=("127.0.0.1", 9), topic=1, payload=b"x")
        extra = 500
        for _ in range(APP_QUEUE_SIZE + extra):  # no await: the sender task cannot run
            transport._p2p_action(frame)
        assert transport.counters.get_count(TransportCounter.APP_QUEUE_FULL) == extra
