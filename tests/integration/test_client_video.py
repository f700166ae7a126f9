"""Video calls through the client API on real localhost (VOICE-7 over VOICE-6).

Three `connect`ed clients in a closed room: the caller rings with video, one
member answers, both decode each other's pictures; the third answers later and
gets a picture because its PLI reached the senders, whose encoders made a
keyframe. Assertions count decoded pictures and keyframe requests, never time.
"""

from pathlib import Path

import anyio
import pytest

from railgun_ref.client import Call, Client, IncomingCall, connect, fast_profile
from railgun_ref.drivers.video_media import VideoCounter

from .rooms_helpers import make_room

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(240)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _ring(client: Client, timeout: float = 60) -> IncomingCall:
    with anyio.fail_after(timeout):
        async for event in client:
            if isinstance(event, IncomingCall):
                return event
    raise AssertionError("event stream ended")


async def _seeing(calls: list[Call], *, pictures: int, timeout: float = 120) -> None:
    """Every call decoded `pictures` pictures of every other participant."""
    with anyio.fail_after(timeout):
        while not all(
            len(c.pictures_from(s.node_id)) >= pictures for c in calls for s in calls if s is not c
        ):
            await anyio.sleep(0.1)


async def test_video_call_through_the_client_and_a_late_joiner_gets_a_keyframe(
    tmp_path: Path,
) -> None:
    """VOICE-7.1, VOICE-7.2, VOICE-7.3: ring with video, decode everyone's pictures;
    a late joiner's PLI reaches the senders and its first picture is a keyframe."""
    profile = fast_profile()
    async with (
        connect(data_dir=tmp_path / "a", profile=profile) as alice,
        connect(data_dir=tmp_path / "b", profile=profile, bootstrap=[alice.address]) as bob,
        connect(data_dir=tmp_path / "c", profile=profile, bootstrap=[alice.address]) as carol,
    ):
        room = await make_room(alice, bob, carol, timeout=60)
        for client in (alice, bob, carol):
            await client.wait_for_members(room, 2, timeout=60, reachable=True)
        call_a = await alice.call(room, video=True)
        ring_b, ring_c = await _ring(bob), await _ring(carol)
        assert ring_b.video and ring_c.video
        call_b = await bob.answer(ring_b.call_id)
        assert call_b.video and call_b.camera
        await _seeing([call_a, call_b], pictures=30)
        senders = [call_a.runner.video_router, call_b.runner.video_router]
        before = [r.counters.get_count(VideoCounter.PLI_RECEIVED) for r in senders]

        call_c = await carol.answer(ring_c.call_id)
        await _seeing([call_a, call_b, call_c], pictures=30)
        after = [r.counters.get_count(VideoCounter.PLI_RECEIVED) for r in senders]
        assert all(a > b for a, b in zip(after, before, strict=True))
        for source in (alice.node_id, bob.node_id):
            stats = call_c.stats()[source]
            assert stats.video_keyframes >= 1 and stats.video_frames >= 30
            assert stats.first_picture_at is not None
        # The audio of the video call flows too.
        assert all(s.frames > 0 for s in call_c.stats().values())

        # Camera off: alice's encoder stops (one frame may be in flight), audio goes on.
        call_a.set_camera(False)
        captured = len(call_a.runner.video_router.captured)
        heard = len(call_b.frames_from(alice.node_id))
        with anyio.fail_after(60):
            while len(call_b.frames_from(alice.node_id)) < heard + 50:
                await anyio.sleep(0.1)
        assert len(call_a.runner.video_router.captured) <= captured + 1
        assert not call_a.camera and call_a.epoch == call_b.epoch
        await call_a.leave()
        await call_b.leave()
        await call_c.leave()
