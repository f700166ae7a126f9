"""VP8 over RTP for the forwarder (VOICE-7.1, VOICE-7.3, VOICE-7.4): descriptors, frame
assembly and its loss reports, keyframe flags, request rate limits."""

import pytest
from aiortc.codecs.vpx import Vp8Encoder
from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.voice.vp8 import (
    Assembled,
    AssemblyCounter,
    FrameAssembler,
    KeyframeRequests,
    decode_descriptor,
    is_keyframe,
)

# A keyframe tag (P bit 0) and a delta tag (P bit 1), padded to several packets.
KEY = bytes([0x10, 0x02, 0x00]) + bytes(range(256)) * 12
DELTA = bytes([0x31, 0x02, 0x00]) + bytes(range(200))


def packets(frame: bytes, picture_id: int) -> list[bytes]:
    """aiortc's own VP8 packetizer (RFC 7741), what a real sender puts on the wire."""
    return Vp8Encoder._packetize(frame, picture_id)


def feed(assembler: FrameAssembler, payloads: list[bytes], seq: int, ts: int) -> list[Assembled]:
    last = len(payloads) - 1
    return [
        assembler.add(sequence=(seq + i) & 0xFFFF, timestamp=ts, marker=i == last, payload=p)
        for i, p in enumerate(payloads)
    ]


def test_descriptor_with_15_bit_picture_id() -> None:
    """VOICE-7.1: X, I and M set: a two-byte picture id, then the VP8 bytes."""
    descriptor, data = decode_descriptor(bytes([0x90, 0x80, 0x81, 0x23]) + b"vp8")
    assert descriptor.start and descriptor.partition == 0
    assert descriptor.picture_id == 0x0123 and descriptor.size == 4 and data == b"vp8"


@pytest.mark.parametrize(
    "payload", [b"", b"\x90", b"\x90\x80", b"\x90\x80\x81", b"\x90\x80\x81\x23", b"\x10"]
)
def test_truncated_descriptors_are_remote_errors(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_descriptor(payload)


@given(st.binary(max_size=64))
def test_descriptor_decoder_raises_only_remote_errors(payload: bytes) -> None:
    try:
        _, data = decode_descriptor(payload)
    except RemoteProtocolError:
        return
    assert data and len(data) < len(payload)


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.booleans(), st.binary(max_size=40))))
def test_assembler_never_raises_on_arbitrary_packets(items: list[tuple[int, bool, bytes]]) -> None:
    assembler = FrameAssembler()
    for seq, marker, payload in items:
        assembler.add(sequence=seq, timestamp=seq // 3, marker=marker, payload=payload)


def test_frames_reassemble_byte_for_byte_across_sequence_wrap() -> None:
    """VOICE-7.1: the forwarder passes on exactly the encoder's bytes."""
    assembler = FrameAssembler()
    key = feed(assembler, packets(KEY, 7), 0xFFFE, 1000)
    delta = feed(assembler, packets(DELTA, 8), (0xFFFE + len(packets(KEY, 7))) & 0xFFFF, 4000)
    frames = [d.frame for d in key + delta if d.frame is not None]
    assert [f.data for f in frames] == [KEY, DELTA]
    assert [f.keyframe for f in frames] == [True, False]
    assert not any(d.lost for d in key + delta)
    assert assembler.counters.get_count(AssemblyCounter.FRAMES) == 2


def test_a_missing_packet_is_reported_and_its_frame_dropped() -> None:
    """VOICE-7.3: a gap means the frames after it need a keyframe: the assembler says so."""
    assembler = FrameAssembler()
    parts = packets(KEY, 1)
    assert len(parts) >= 3
    results = [
        assembler.add(sequence=10 + i, timestamp=90, marker=i == len(parts) - 1, payload=p)
        for i, p in enumerate(parts)
        if i != 1
    ]
    assert all(r.frame is None for r in results) and any(r.lost for r in results)
    # The next whole frame assembles again.
    after = feed(assembler, packets(DELTA, 2), 10 + len(parts), 3090)
    assert after[-1].frame is not None
    assert assembler.counters.get_count(AssemblyCounter.LOSS) >= 1


def test_joining_in_the_middle_of_a_frame_is_loss() -> None:
    """A stream first seen mid-frame: no partial frame comes out."""
    assembler = FrameAssembler()
    parts = packets(KEY, 1)
    results = feed(assembler, parts[1:], 51, 90)
    assert all(r.frame is None for r in results)


def test_keyframe_flag_is_the_inverted_p_bit() -> None:
    assert is_keyframe(KEY) and not is_keyframe(DELTA) and not is_keyframe(b"")


def test_keyframe_requests_are_rate_limited_per_stream() -> None:
    """VOICE-7.4: one request per stream per interval; other streams are independent."""
    limiter = KeyframeRequests(interval=0.3)
    assert limiter.allow("a", now=100.0)
    assert not limiter.allow("a", now=100.2)
    assert limiter.allow("b", now=100.2)
    assert limiter.allow("a", now=100.31)
