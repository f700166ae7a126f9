"""ChannelData framing (RFC 8656 §12.4/§12.5), as the TURN server and its clients put it on UDP."""

import pytest

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.stun.codec import (
    CHANNEL_NUMBER_MAX,
    CHANNEL_NUMBER_MIN,
    ChannelDataMessage,
    binding_request,
    decode_channel_data,
    encode_channel_data,
    encode_message,
    is_channel_data,
)


def test_layout_is_channel_length_data() -> None:
    """TURN-1.9: two bytes of channel number, two of length, then the data, unpadded on UDP."""
    frame = encode_channel_data(ChannelDataMessage(channel=0x4001, data=b"hello"))
    assert frame == bytes.fromhex("40010005") + b"hello"
    assert decode_channel_data(frame) == ChannelDataMessage(channel=0x4001, data=b"hello")


def test_padding_is_optional_on_udp_and_ignored() -> None:
    """TURN-1.9: up to three padding bytes after the data are accepted and dropped."""
    message = ChannelDataMessage(channel=0x4FFF, data=b"abcde")
    padded = encode_channel_data(message, pad=True)
    assert padded == bytes.fromhex("4fff0005") + b"abcde" + bytes(3)
    assert decode_channel_data(padded) == message
    assert decode_channel_data(bytes.fromhex("4fff0005") + b"abcde" + b"\xff") == message
    empty = ChannelDataMessage(channel=0x7FFF, data=b"")
    assert encode_channel_data(empty, pad=True) == bytes.fromhex("7fff0000")
    assert decode_channel_data(bytes.fromhex("7fff0000")) == empty


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"", "shorter than its 4-byte header"),
        (bytes.fromhex("4000"), "shorter than its 4-byte header"),
        (bytes.fromhex("40000005") + b"abcd", "datagram has 4"),
        (bytes.fromhex("40000001") + b"abcde", "4 bytes after"),
        (bytes.fromhex("40000004") + b"abcd" + b"\x00", "1 bytes after"),
        (bytes.fromhex("3fff0000"), "outside"),
        (bytes.fromhex("80000000"), "outside"),
        (bytes.fromhex("ffff0000"), "outside"),
    ],
)
def test_malformed_frames_raise_remote_protocol_error(frame: bytes, why: str) -> None:
    """TURN-1.9: a frame shorter than its length, longer than its padding, or on a channel
    number outside 0x4000..0x7FFF is malformed."""
    with pytest.raises(RemoteProtocolError) as info:
        decode_channel_data(frame)
    assert info.value.code is ErrorCode.MALFORMED
    assert why in info.value.message


def test_channel_number_range_is_checked_when_building() -> None:
    for channel in (CHANNEL_NUMBER_MIN - 1, CHANNEL_NUMBER_MAX + 1, 0):
        with pytest.raises(LocalProtocolError):
            ChannelDataMessage(channel=channel, data=b"")
    with pytest.raises(LocalProtocolError):
        ChannelDataMessage(channel=0x4000, data=bytes(0x10000))


def test_demultiplexing_from_stun() -> None:
    """TURN-1.9: the first two bits tell ChannelData (01) from STUN (00) on one socket."""
    stun = encode_message(binding_request(bytes(12)))
    assert not is_channel_data(stun)
    assert is_channel_data(encode_channel_data(ChannelDataMessage(channel=0x4000, data=b"x")))
    assert not is_channel_data(b"")
    assert not is_channel_data(b"\x80\x00\x00\x00")  # RTP/RTCP and DTLS live elsewhere
