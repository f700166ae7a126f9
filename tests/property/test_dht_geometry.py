"""XOR geometry laws and bucket boundaries (DHT-1.1, DHT-1.2, DHT-1.3), property-tested.

The bucket bounds are where a popular Python Kademlia went wrong (inclusive in
one place, exclusive in another); every bound is checked on both sides here.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.dht.geometry import (
    KEY_BITS,
    KEY_BYTES,
    as_int,
    bucket_index,
    bucket_range,
    distance,
    id_at_distance,
)

ids = st.binary(min_size=KEY_BYTES, max_size=KEY_BYTES)
distances = st.integers(0, 2**KEY_BITS - 1)
indices = st.integers(0, KEY_BITS - 1)


@given(ids)
def test_distance_to_self_is_zero(a: bytes) -> None:
    """DHT-1.2: d(a, a) = 0."""
    assert distance(a, a) == 0


@given(ids, ids)
def test_distance_zero_only_for_equal_ids(a: bytes, b: bytes) -> None:
    """DHT-1.2: d(a, b) = 0 iff a = b, and distances are 256-bit non-negative integers."""
    d = distance(a, b)
    assert (d == 0) == (a == b)
    assert 0 <= d < 2**KEY_BITS


@given(ids, ids)
def test_distance_is_symmetric(a: bytes, b: bytes) -> None:
    """DHT-1.2: d(a, b) = d(b, a)."""
    assert distance(a, b) == distance(b, a)


@given(ids, ids, ids)
def test_triangle_inequality(a: bytes, b: bytes, c: bytes) -> None:
    """DHT-1.2: d(a, c) <= d(a, b) + d(b, c)."""
    assert distance(a, c) <= distance(a, b) + distance(b, c)


@given(ids, ids, ids)
def test_distances_compose_by_xor(a: bytes, b: bytes, c: bytes) -> None:
    """DHT-1.2: d(a, b) XOR d(b, c) = d(a, c) (the XOR metric's exact form of the triangle)."""
    assert distance(a, b) ^ distance(b, c) == distance(a, c)


@given(ids, distances)
def test_unidirectional_exactly_one_id_per_distance(a: bytes, d: int) -> None:
    """DHT-1.2: for a fixed a and distance d there is exactly one b with d(a, b) = d."""
    b = id_at_distance(a, d)
    assert len(b) == KEY_BYTES
    assert distance(a, b) == d
    # Any other id is at another distance: XOR is a bijection for fixed a.
    other = id_at_distance(a, d ^ 1)
    assert other != b
    assert distance(a, other) != d


@given(ids, ids)
def test_id_at_distance_inverts_distance(a: bytes, b: bytes) -> None:
    """DHT-1.2: id_at_distance(a, d(a, b)) = b."""
    assert id_at_distance(a, distance(a, b)) == b


def test_ids_read_big_endian() -> None:
    """DHT-1.1: ids and keys are 256-bit strings read as big-endian integers."""
    assert as_int(b"\x01" + bytes(31)) == 2**248
    assert as_int(bytes(31) + b"\x01") == 1
    assert distance(b"\x80" + bytes(31), bytes(32)) == 2**255


@given(ids, indices)
def test_bucket_lower_bound_is_inclusive(a: bytes, i: int) -> None:
    """DHT-1.3: distance 2**i is in bucket i."""
    assert bucket_index(a, id_at_distance(a, 2**i)) == i


@given(ids, indices)
def test_bucket_upper_bound_is_exclusive(a: bytes, i: int) -> None:
    """DHT-1.3: distance 2**(i+1) - 1 is still in bucket i; 2**(i+1) is in bucket i + 1."""
    assert bucket_index(a, id_at_distance(a, 2 ** (i + 1) - 1)) == i
    if i + 1 < KEY_BITS:
        assert bucket_index(a, id_at_distance(a, 2 ** (i + 1))) == i + 1


@pytest.mark.parametrize("i", [0, 1, 2, 7, 8, 31, 32, 127, 128, 254, 255])
def test_bucket_boundaries_at_chosen_indices(i: int) -> None:
    """DHT-1.3: both bounds of bucket i, checked at byte and word edges."""
    local = bytes(range(32))
    assert bucket_index(local, id_at_distance(local, 2**i)) == i
    assert bucket_index(local, id_at_distance(local, 2 ** (i + 1) - 1)) == i
    if i > 0:
        assert bucket_index(local, id_at_distance(local, 2**i - 1)) == i - 1
    assert bucket_range(i) == (2**i, 2 ** (i + 1))


@given(ids)
def test_distance_zero_has_no_bucket(a: bytes) -> None:
    """DHT-1.3: the local id itself (distance 0) has no bucket."""
    assert bucket_index(a, a) is None


@given(ids, ids)
def test_bucket_range_agrees_with_bucket_index(a: bytes, b: bytes) -> None:
    """DHT-1.3: every id lies inside the range of the bucket bucket_index puts it in."""
    index = bucket_index(a, b)
    if a == b:
        assert index is None
        return
    assert index is not None
    low, high = bucket_range(index)
    assert low <= distance(a, b) < high


@pytest.mark.parametrize("index", [-1, KEY_BITS, KEY_BITS + 10])
def test_bucket_range_refuses_indices_outside_the_table(index: int) -> None:
    """DHT-1.3: buckets are numbered 0..255."""
    with pytest.raises(ValueError, match="bucket index"):
        bucket_range(index)


def test_bucket_ranges_tile_the_id_space() -> None:
    """DHT-1.3: the 256 buckets cover every non-zero distance exactly once."""
    ranges = [bucket_range(i) for i in range(KEY_BITS)]
    assert ranges[0][0] == 1
    assert ranges[-1][1] == 2**KEY_BITS
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(KEY_BITS - 1))
