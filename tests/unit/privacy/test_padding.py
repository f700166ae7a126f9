"""PRIV-2, PRIV-3: frame padding, the wrap table, Padmé."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.identity.e2ee import open_room_message, seal_room_message
from railgun_ref.identity.keys import Identity
from railgun_ref.privacy.padding import (
    FRAME_BUCKETS,
    overhead_table,
    pad_frame,
    padme_length,
    unpad_frame,
    wrap_slots,
)


@pytest.mark.parametrize(
    ("size", "bucket"), [(0, 256), (255, 256), (256, 4096), (4095, 4096), (65535, 65536)]
)
def test_pad_frame_takes_the_smallest_bucket_with_room_for_the_marker(
    size: int, bucket: int
) -> None:
    """PRIV-2.1: the smallest bucket; unpadding gives the frame back."""
    frame = bytes([7]) * size
    padded = pad_frame(frame)
    assert len(padded) == bucket
    assert unpad_frame(padded) == frame


def test_a_frame_over_the_largest_bucket_is_a_caller_error() -> None:
    """PRIV-2.1."""
    with pytest.raises(LocalProtocolError):
        pad_frame(bytes(65536))


@pytest.mark.parametrize(
    "padded",
    [
        bytes(256),  # no marker at all
        b"x" * 256,  # no marker, no zeros
        b"a\x80" + bytes(253) + b"\x01",  # a non-zero byte after the marker
        b"a\x80" + bytes(254 + 1),  # 257 bytes: not a bucket
        b"",
        b"a\x80" + bytes(1000),  # an unknown bucket
    ],
)
def test_a_malformed_pad_is_refused_as_malformed(padded: bytes) -> None:
    """PRIV-2.2."""
    with pytest.raises(RemoteProtocolError) as refused:
        unpad_frame(padded)
    assert refused.value.code is ErrorCode.MALFORMED


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000))
def test_unpad_raises_only_remote_errors_and_round_trips(data: bytes) -> None:
    """PRIV-2.2: any bytes: a frame or a RemoteProtocolError."""
    try:
        frame = unpad_frame(data)
    except RemoteProtocolError:
        assert len(data) not in FRAME_BUCKETS or not data.rstrip(b"\x00").endswith(b"\x80")
    else:
        assert pad_frame(frame) == data


def test_padme_overhead_stays_under_twelve_percent_where_buckets_do_not() -> None:
    """PRIV-2.3: the overhead table of the spec."""
    rows = overhead_table([100, 300, 1_000, 5_000, 20_000, 60_000])
    assert all(row.padme_overhead <= 0.12 for row in rows)
    assert max(row.bucket_overhead for row in rows) > 1.0
    assert [padme_length(n) for n in (1, 9, 100, 1000)] == [1, 10, 104, 1024]


def test_the_wrap_table_hides_the_room_size_within_its_class() -> None:
    """PRIV-3.1: rooms of 2 and of 8 members give blobs of the same length; members open."""
    rng = random.Random(5)
    sender = Identity.from_seed(bytes([1]) * 32)
    people = [Identity.from_seed(bytes([i]) * 32) for i in range(2, 10)]
    lengths = []
    for n in (2, 8):
        members = [p.public_key for p in people[:n]]
        blob, _ = seal_room_message(
            sender,
            room_id=b"r",
            members=members,
            body=b"hi",
            sent_ms=1,
            random_bytes=rng.randbytes,
            wrap_slots=wrap_slots(n),
        )
        lengths.append(len(blob))
        assert open_room_message(people[n - 1], blob, room_id=b"r").body == b"hi"
    assert lengths[0] == lengths[1]
    assert wrap_slots(9) == 32
