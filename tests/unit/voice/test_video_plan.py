"""VOICE-7.6: a video call's plan counts every stream as audio plus video, so the same
devices that carry a voice call on one host need more hosts for a video call."""

from railgun_ref.voice.topology import (
    DEFAULT_CONFIG,
    STREAM_BITRATE_BPS,
    VIDEO_STREAM_BITRATE_BPS,
    Topology,
    plan_call,
    stream_budget,
    with_video,
)
from unit.voice.helpers import desktops


def test_a_video_stream_costs_audio_plus_video() -> None:
    """VOICE-7.6: the stream bit rate of a video call's plan."""
    config = with_video()
    assert config.stream_bitrate_bps == STREAM_BITRATE_BPS + VIDEO_STREAM_BITRATE_BPS
    assert with_video(DEFAULT_CONFIG).mesh_max_participants == DEFAULT_CONFIG.mesh_max_participants


def test_the_devices_one_host_serves_for_voice_need_more_for_video() -> None:
    """VOICE-7.6: eight desktops (78 voice streams each, 12 video ones): one SFU host carries the
    voice call's 49 streams; the video call's 49 streams need more than one host."""
    caps = desktops(8)
    some = next(iter(caps.values()))
    assert stream_budget(some, DEFAULT_CONFIG) >= 49 > stream_budget(some, with_video())
    voice = plan_call(caps)
    video = plan_call(caps, config=with_video())
    assert voice.topology is Topology.SFU and len(voice.hosts) == 1
    assert len(video.hosts) > 1 or video.is_degraded
