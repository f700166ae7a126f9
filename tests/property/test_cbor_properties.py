"""Properties of the deterministic CBOR codec (ENC-1.x) over the whole data model."""

from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.wire.cbor import decode, encode

from .strategies import deep_chains, model_values, near_model, same, uints


def head(major: int, argument: int) -> bytes:
    """RFC 8949 §3 shortest-form head, written independently of the codec under test."""
    if argument < 24:
        return bytes([major << 5 | argument])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * width):
            return bytes([major << 5 | info]) + argument.to_bytes(width, "big")
    raise ValueError(argument)


@given(model_values())
def test_round_trip(value: Any) -> None:
    """ENC-1.1/ENC-1.2: every data-model value decodes back to itself, types included."""
    assert same(decode(encode(value)), value)


@given(model_values())
def test_encoding_is_canonical(value: Any) -> None:
    """ENC-1.5: decode(encode(x)) re-encodes to the identical bytes."""
    data = encode(value)
    assert encode(decode(data)) == data


@given(deep_chains())
def test_round_trip_at_the_depth_limit(value: Any) -> None:
    """ENC-1.4: values nested exactly to the limit round-trip."""
    data = encode(value)
    assert same(decode(data), value)
    assert encode(decode(data)) == data


@given(deep_chains(depth=9))
def test_one_past_the_depth_limit_is_refused_both_ways(value: Any) -> None:
    """ENC-1.4: a scalar nested 9 containers deep is refused by encoder and decoder alike."""
    with pytest.raises(LocalProtocolError):
        encode(value)
    with pytest.raises(RemoteProtocolError):
        decode(cbor2.dumps(value, canonical=True))


@given(st.sets(uints, max_size=12))
def test_map_key_order_is_rfc8949_bytewise(keys: set[int]) -> None:
    """ENC-1.3: cbor2's canonical order is RFC 8949 bytewise order of encoded uint keys."""
    encoded_keys = {k: head(0, k) for k in keys}
    bytewise = sorted(keys, key=lambda k: encoded_keys[k])
    assert bytewise == sorted(keys)  # for uints, bytewise == numeric
    expected = head(5, len(keys)) + b"".join(encoded_keys[k] + b"\xf6" for k in bytewise)
    shuffled = dict.fromkeys(sorted(keys, key=lambda k: hash((k, 7))))
    assert encode(shuffled) == expected
    assert list(decode(expected)) == bytewise


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_ints_use_the_shortest_head(positive: int, magnitude: int) -> None:
    """ENC-1.5: integers are encoded with the RFC 8949 shortest head, and only that decodes."""
    assert encode(positive) == head(0, positive)
    assert encode(-1 - magnitude) == head(1, magnitude)
    if positive < 2**32:
        wider = bytes([0x1B]) + positive.to_bytes(8, "big")
        with pytest.raises(RemoteProtocolError):
            decode(wider)


@given(near_model)
def test_encoder_and_decoder_agree_on_the_model(value: Any) -> None:
    """ENC-1.2: encode accepts a value iff decode accepts its (cbor2-canonical) encoding."""
    try:
        foreign = cbor2.dumps(value, canonical=True)
    except Exception:  # e.g. cbor2 cannot write it at all
        return
    try:
        ours = encode(value)
    except LocalProtocolError:
        with pytest.raises(RemoteProtocolError) as info:
            decode(foreign)
        assert info.value.code is ErrorCode.MALFORMED
    else:
        assert ours == foreign
        assert same(decode(foreign), decode(ours))
