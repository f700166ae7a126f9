"""Real WebRTC video on 127.0.0.1: VP8 forwarded as encoded frames, keyframes by PLI (VOICE-7).

Every participant is a real `NodeHost` and a `CallRunner` with video: a real
libvpx encoder per participant, real ICE/DTLS-SRTP, an SFU host that re-assembles
and forwards frames without decoding them. Receivers decode every frame and read
its capture number from the picture. Assertions count decoded frames and
keyframe requests, never wall-clock time; waits are generous because the
machine running the test may be loaded.
"""

import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
import pytest

from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.drivers.video_media import VideoCounter
from railgun_ref.drivers.voice_media import CallRunner, MediaClock, sfu_plan
from railgun_ref.drivers.voice_signalling import NodeSignalling

from .conftest import identity, wait_until
from .voice_helpers import apply_everywhere

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(240)]

CALL_ID = bytes(range(16, 32))


@asynccontextmanager
async def video_call_of(count: int) -> AsyncIterator[dict[NodeId, CallRunner]]:
    """`count` nodes, each with a running video CallRunner, sharing one media clock."""
    clock = MediaClock(anyio.current_time())
    hosts = [NodeHost(identity(60 + i)) for i in range(count)]
    async with anyio.create_task_group() as tg:
        for host in hosts:
            await tg.start(host.run)
        directory = {h.node_id: h.address for h in hosts}
        runners = {
            h.node_id: CallRunner(
                NodeSignalling(h, directory),
                call_id=CALL_ID,
                clock=clock,
                video=True,
                loss_timeout=None,  # a loaded machine must not replan this call away
                connect_timeout=30.0,
            )
            for h in hosts
        }
        for runner in runners.values():
            await tg.start(runner.run)
        yield runners
        tg.cancel_scope.cancel()


def decoded(runner: CallRunner, source: NodeId) -> int:
    """Frames of `source` that `runner` decoded and whose capture number it read."""
    log = runner.video_router.logs.get(source)
    return len(log.frames) if log else 0


def seeing_everyone(runners: Mapping[NodeId, CallRunner], among: list[NodeId], frames: int) -> bool:
    return all(
        decoded(runners[me], source) >= frames for me in among for source in among if source != me
    )


async def test_sfu_forwards_vp8_and_a_late_joiner_gets_a_keyframe_by_pli() -> None:
    """VOICE-7.1, VOICE-7.3: through an SFU host that never decodes, every receiver
    decodes every other participant's video; a participant joining later asks for
    a keyframe, the host relays the PLI to the source, and the joiner's first
    decodable frame is that keyframe."""
    async with video_call_of(3) as runners:
        ids = sorted(runners)
        host, early, late = ids[1], ids[0], ids[2]
        first = {k: v for k, v in runners.items() if k != late}
        await apply_everywhere(first, sfu_plan([early, host], host))
        await wait_until(lambda: seeing_everyone(runners, [early, host], 30), timeout=90)
        source = runners[early].video_router
        pli_before = source.counters.get_count(VideoCounter.PLI_RECEIVED)
        forced_before = source.counters.get_count(VideoCounter.KEYFRAMES_FORCED)

        # The third participant joins: epoch 2 on everyone, the host serves all three.
        async with anyio.create_task_group() as tg:
            for runner in runners.values():
                tg.start_soon(functools.partial(runner.apply, sfu_plan(ids, host), epoch=2))
        await wait_until(lambda: seeing_everyone(runners, ids, 30), timeout=90)

        # The host forwarded encoded frames and decoded nothing of what it forwarded
        # for others: its frames to the joiner came from the source's encoder.
        hub = runners[host].video_router
        assert hub.counters.get_count(VideoCounter.FRAMES_FORWARDED) > 0
        assert hub.counters.get_count(VideoCounter.PLI_SENT) >= 1
        # The PLI reached the source's sender, which made a keyframe on request.
        assert source.counters.get_count(VideoCounter.PLI_RECEIVED) > pli_before
        assert source.counters.get_count(VideoCounter.KEYFRAMES_FORCED) > forced_before
        joined = runners[late].video_router.logs[early]
        assert joined.keyframes >= 1 and joined.first_frame_at is not None
        # Pictures are real: capture numbers read back increase (a decoded moving card).
        numbers = joined.frames[:30]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
