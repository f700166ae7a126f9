"""Stream framing (STR-1.x): 4-byte big-endian length prefix, then one envelope."""

import pytest

from railgun_ref.core.constants import MAX_STREAM_MESSAGE_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.wire.framing import FrameDecoder, encode_frame

FRAMES = [b"a", bytes(range(256)) + b"tail", b"\x00\x00\x00\x00", b"z" * 5]
STREAM = b"".join(encode_frame(f) for f in FRAMES)


def pull_all(decoder: FrameDecoder) -> list[bytes]:
    out = []
    while (frame := decoder.next_frame()) is not None:
        out.append(frame)
    return out


def test_encode_frame_layout() -> None:
    """STR-1.1: a frame is a 4-byte big-endian length followed by the message."""
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"x" * 0x01020304, max_size=0x01020304)[:4] == b"\x01\x02\x03\x04"


def test_encode_frame_limits() -> None:
    """STR-1.2: a sender frames only 1..limit bytes; anything else is a caller bug."""
    with pytest.raises(LocalProtocolError):
        encode_frame(b"")
    assert len(encode_frame(b"x" * MAX_STREAM_MESSAGE_SIZE)) == MAX_STREAM_MESSAGE_SIZE + 4
    with pytest.raises(LocalProtocolError):
        encode_frame(b"x" * (MAX_STREAM_MESSAGE_SIZE + 1))
    assert encode_frame(b"xyz", max_size=3) == b"\x00\x00\x00\x03xyz"
    with pytest.raises(LocalProtocolError):
        encode_frame(b"xyzw", max_size=3)


def test_split_at_every_byte_boundary() -> None:
    """STR-1.1: frames reassemble in order however the stream is cut in two."""
    for cut in range(len(STREAM) + 1):
        decoder = FrameDecoder()
        decoder.feed(STREAM[:cut])
        frames = pull_all(decoder)
        decoder.feed(STREAM[cut:])
        frames += pull_all(decoder)
        assert frames == FRAMES, f"cut at {cut}"
        assert decoder.buffered == 0


def test_byte_by_byte() -> None:
    """STR-1.1: a frame is released exactly when its last byte arrives, not before."""
    decoder = FrameDecoder()
    frames: list[bytes] = []
    ends = set()
    position = 0
    for frame in FRAMES:
        position += 4 + len(frame)
        ends.add(position)
    for i, byte in enumerate(STREAM, start=1):
        decoder.feed(bytes([byte]))
        got = pull_all(decoder)
        assert bool(got) == (i in ends), f"after byte {i}"
        frames += got
    assert frames == FRAMES


def test_incomplete_frame_is_buffered() -> None:
    """STR-1.1: a partial frame yields nothing and stays buffered."""
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x00")
    assert decoder.next_frame() is None
    decoder.feed(b"\x00\x02a")
    assert decoder.next_frame() is None
    assert decoder.buffered == 5
    decoder.feed(b"b")
    assert decoder.next_frame() == b"ab"
    assert decoder.next_frame() is None


def test_zero_length_frame_is_malformed() -> None:
    """STR-1.3: a zero length is a protocol error (MALFORMED); it stays one."""
    decoder = FrameDecoder()
    decoder.feed(encode_frame(b"ok") + b"\x00\x00\x00\x00" + encode_frame(b"never"))
    assert decoder.next_frame() == b"ok"
    for _ in range(2):  # the stream cannot be resynchronised
        with pytest.raises(RemoteProtocolError) as info:
            decoder.next_frame()
        assert info.value.code is ErrorCode.MALFORMED


@pytest.mark.parametrize(
    "length", [MAX_STREAM_MESSAGE_SIZE + 1, 2**24, 2**32 - 1], ids=["limit+1", "2^24", "2^32-1"]
)
def test_oversize_length_refused_as_soon_as_prefix_arrives(length: int) -> None:
    """STR-1.3: a length over the limit is TOO_LARGE before any of its body is buffered."""
    decoder = FrameDecoder()
    decoder.feed(length.to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_frame()
    assert info.value.code is ErrorCode.TOO_LARGE


def test_length_exactly_at_limit_is_accepted() -> None:
    """STR-1.2: a frame of exactly the limit is accepted (custom and default limits)."""
    decoder = FrameDecoder(max_size=10)
    decoder.feed(encode_frame(b"x" * 10, max_size=10))
    assert decoder.next_frame() == b"x" * 10
    decoder.feed(encode_frame(b"x" * 11, max_size=11))
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_frame()
    assert info.value.code is ErrorCode.TOO_LARGE
    big = FrameDecoder()
    big.feed(MAX_STREAM_MESSAGE_SIZE.to_bytes(4, "big"))
    assert big.next_frame() is None  # waiting for the body, not refusing it
