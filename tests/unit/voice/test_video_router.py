"""The video switch without a network (VOICE-7.1, VOICE-7.3, VOICE-7.5): a slow link's
track drops and resyncs on a keyframe; frames are de-duplicated by their bytes; a
keyframe request for our own stream forces our real encoder."""

import asyncio

import pytest

from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.video_media import (
    VIDEO_QUEUE_FRAMES,
    VideoCounter,
    VideoEncoder,
    VideoForwardTrack,
    VideoRouter,
)
from railgun_ref.voice.vp8 import is_keyframe

ME = NodeId(bytes(32))
OTHER = NodeId(bytes([1]) * 32)
KEY, DELTA = bytes([0x10, 0, 0]), bytes([0x11, 0, 0])


def router() -> VideoRouter:
    return VideoRouter(ME, schedule=lambda work: None, decode=False)


async def _first(track: VideoForwardTrack) -> None:
    await track.recv()


def test_a_slow_link_drops_its_queue_and_waits_for_a_keyframe() -> None:
    """VOICE-7.5: overflow drops the queue, the track asks for a keyframe and takes
    nothing but one; the other links are not slowed."""
    hub = router()
    slow = VideoForwardTrack(OTHER, 1, awaiting_keyframe=False)
    fast = VideoForwardTrack(OTHER, 1, awaiting_keyframe=False)
    for track in (slow, fast):
        hub.attach(track)
        track.started = True
    for n in range(VIDEO_QUEUE_FRAMES):
        hub.on_frame(OTHER, DELTA + bytes([n]), n, 0.0, epoch=1)
    assert slow.dropped == 0
    asyncio.run(_drain(fast))
    hub.on_frame(OTHER, DELTA + b"x", 9, 0.0, epoch=1)  # the slow queue is full
    assert slow.dropped == VIDEO_QUEUE_FRAMES and slow.awaiting_keyframe
    assert not fast.awaiting_keyframe
    assert hub.counters.get_count(VideoCounter.TRACK_DROPS) == 1
    # The request went upstream, but no stream of OTHER arrives here in this test.
    assert hub.counters.get_count(VideoCounter.NO_UPSTREAM) == 1
    hub.on_frame(OTHER, DELTA + b"y", 10, 0.0, epoch=1)
    hub.on_frame(OTHER, KEY + b"z", 11, 0.0, epoch=1)
    assert not slow.awaiting_keyframe
    assert asyncio.run(_drain(slow)) == [KEY + b"z"]


async def _drain(track: VideoForwardTrack) -> list[bytes]:
    out = []
    while track._queue:
        out.append(bytes(await track.recv()))
    return out


def test_frames_are_forwarded_once_per_epoch_and_logged_once() -> None:
    """VOICE-7.1 with VOICE-4.2: the second copy of a frame (another path) is dropped."""
    hub = router()
    track = VideoForwardTrack(OTHER, 2, awaiting_keyframe=False)
    hub.attach(track)
    track.started = True
    hub.on_frame(OTHER, KEY, 0, 1.0, epoch=2)
    hub.on_frame(OTHER, KEY, 0, 1.1, epoch=1)
    hub.on_frame(OTHER, KEY, 0, 1.2, epoch=2)
    assert len(track._queue) == 1
    assert hub.counters.get_count(VideoCounter.DUPLICATES) == 2
    assert len(hub.logs[OTHER].complete) == 1 and hub.logs[OTHER].keyframes == 1


def test_a_request_for_our_own_stream_forces_a_keyframe_of_our_encoder() -> None:
    """VOICE-7.3 at the source, with the real libvpx encoder; VOICE-7.4 coalesces."""
    hub = router()
    hub.encoder = VideoEncoder()
    assert is_keyframe(hub.encoder.encode(1))
    assert not is_keyframe(hub.encoder.encode(2))
    hub.request_keyframe(ME)
    hub.request_keyframe(ME)
    assert is_keyframe(hub.encoder.encode(3))
    assert not is_keyframe(hub.encoder.encode(4))
    assert hub.counters.get_count(VideoCounter.KEYFRAMES_FORCED) == 1
    assert hub.counters.get_count(VideoCounter.REQUESTS_COALESCED) == 1


@pytest.mark.parametrize("awaiting", [True, False])
def test_a_track_keeps_nothing_before_its_link_is_up(awaiting: bool) -> None:
    """VOICE-7.3: nothing queues (and no keyframe is asked for) before the sender pulls."""
    hub = router()
    track = VideoForwardTrack(OTHER, 1, awaiting_keyframe=awaiting)
    hub.attach(track)
    hub.on_frame(OTHER, KEY, 0, 0.0, epoch=1)
    assert not track._queue and not track.started
    assert hub.counters.get_count(VideoCounter.NO_UPSTREAM) == 0
