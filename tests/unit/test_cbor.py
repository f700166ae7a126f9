"""Deterministic CBOR codec (ENC-1.x): what it produces and what it refuses."""

from enum import IntEnum
from typing import Any

import cbor2
import pytest

from railgun_ref.core.constants import MAX_CBOR_DEPTH
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.wire.cbor import decode, encode

# RFC 8949 Appendix A examples that fall inside the data model, plus a few boundaries.
ROUND_TRIPS: list[tuple[Any, str]] = [
    (0, "00"),
    (1, "01"),
    (23, "17"),
    (24, "1818"),
    (255, "18ff"),
    (256, "190100"),
    (1000, "1903e8"),
    (65535, "19ffff"),
    (65536, "1a00010000"),
    (1000000, "1a000f4240"),
    (2**32, "1b0000000100000000"),
    (2**64 - 1, "1bffffffffffffffff"),
    (-1, "20"),
    (-10, "29"),
    (-24, "37"),
    (-25, "3818"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (-(2**64), "3bffffffffffffffff"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    (b"\x00" * 24, "5818" + "00" * 24),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ("\U00010151", "64f0908591"),
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"),
    ({1: 2, 3: 4}, "a201020304"),
    ({0: [b"x", "y"], 1: {2: None}}, "a200824178617901a102f6"),
]


@pytest.mark.parametrize(("value", "hex_bytes"), ROUND_TRIPS, ids=[h for _, h in ROUND_TRIPS])
def test_round_trip_known_bytes(value: Any, hex_bytes: str) -> None:
    """ENC-1.1: values encode to the RFC 8949 deterministic bytes and decode back."""
    data = encode(value)
    assert data.hex() == hex_bytes
    decoded = decode(data)
    assert decoded == value
    assert type(decoded) is type(value)


def test_tuple_encodes_as_array() -> None:
    """ENC-1.2: a tuple is an array on the wire (and decodes as a list)."""
    assert encode((1, 2)) == encode([1, 2])
    assert decode(encode((1, (2,)))) == [1, [2]]


def test_int_enum_encodes_as_its_value() -> None:
    """ENC-1.2: an IntEnum member is just its integer on the wire."""

    class Kind(IntEnum):
        PING = 1

    assert encode({0: Kind.PING}) == encode({0: 1})


def test_map_keys_sorted_whatever_the_insertion_order() -> None:
    """ENC-1.3: map keys are written in bytewise order of their encodings (numeric for uints)."""
    keys = [100, 1, 2**32, 24, 0, 23, 256, 2**64 - 1, 255]
    forward = encode({k: k % 7 for k in keys})
    backward = encode({k: k % 7 for k in reversed(keys)})
    assert forward == backward
    assert list(decode(forward)) == sorted(keys)
    assert (
        encode({10: 0, 1: 0, 100: 0, 24: 0}).hex() == "a4" + "0100" + "0a00" + "181800" + "186400"
    )


NON_CANONICAL: dict[str, str] = {
    # ENC-1.5: integers and lengths MUST use the shortest head
    "uint 0 in 1 byte": "1800",
    "uint 23 in 1 byte": "1817",
    "uint 1 in 2 bytes": "190001",
    "uint 255 in 2 bytes": "1900ff",
    "uint 1 in 4 bytes": "1a00000001",
    "uint 65535 in 4 bytes": "1a0000ffff",
    "uint 1 in 8 bytes": "1b0000000000000001",
    "uint 2^32-1 in 8 bytes": "1b00000000ffffffff",
    "nint -1 in 1 byte": "3800",
    "nint -1 in 8 bytes": "3b0000000000000000",
    "bytes length in 1 byte": "580100",
    "text length in 2 bytes": "79000161",
    "array length in 1 byte": "980100",
    "map length in 4 bytes": "ba00000001" + "0000",
    "map key non-shortest": "a1" + "1800" + "00",
    "nested value non-shortest": "81" + "1800",
    # ENC-1.3: keys in increasing order, no duplicates
    "unsorted keys": "a2" + "0100" + "0000",
    "unsorted wide keys": "a2" + "1818" + "00" + "17" + "00",
    "duplicate keys": "a2" + "0000" + "0001",
    "duplicate keys non-adjacent": "a3" + "0000" + "0100" + "0000",
    # ENC-1.2: map keys are unsigned integers only
    "text key": "a1" + "6161" + "00",
    "bytes key": "a1" + "4161" + "00",
    "negative key": "a1" + "20" + "00",
    "bool key": "a1" + "f5" + "00",
    "null key": "a1" + "f6" + "00",
    "array key": "a1" + "8100" + "00",
    # ENC-1.2: no floats, no simple values besides false/true/null
    "half float": "f93c00",
    "half float zero": "f90000",
    "single float": "fa3f800000",
    "double float": "fb3ff0000000000000",
    "float NaN": "f97e00",
    "undefined": "f7",
    "simple 16": "f0",
    "simple 255": "f8ff",
    "reserved simple 24 form": "f818",
    # ENC-1.2: no tags, including ones a lax decoder folds into plain values
    "tag 0 date string": "c074" + b"2013-03-21T20:04:00Z".hex(),
    "tag 1 epoch": "c11a514b67b0",
    "tag 2 bignum small": "c24101",
    "tag 2 bignum 2^64": "c249010000000000000000",
    "tag 3 negative bignum 2^64": "c349010000000000000000",
    "tag 24 embedded": "d8184100",
    "tag 28 shareable": "d81c8100",
    "tag 258 set": "d90102820102",
    "self-describe tag 55799": "d9d9f700",
    "tag inside map value": "a100c24101",
    # ENC-1.2: no indefinite lengths
    "indefinite bytes": "5f4100ff",
    "indefinite text": "7f6161ff",
    "indefinite array": "9fff",
    "indefinite array with item": "9f00ff",
    "indefinite map": "bfff",
    "lone break": "ff",
    # ENC-1.5: exactly one item spanning all the input
    "empty input": "",
    "trailing byte": "0000",
    "trailing break": "01ff",
    "two items": "8000",
    "truncated uint": "19",
    "truncated bytes": "4201",
    "truncated array": "820102"[:-2],
    "huge claimed bytes length": "5bffffffffffffffff",
    "huge claimed array length": "9bffffffffffffffff",
    "huge claimed map length": "bb00000000ffffffff",
    "reserved additional info 28": "1c",
    "reserved additional info 31 on uint": "1f",
    # ENC-1.2: text strings are valid UTF-8
    "lone continuation byte": "6180",
    "invalid start byte": "61ff",
    "truncated sequence": "62c328",
    "overlong slash": "62c0af",
    "encoded surrogate": "63eda080",
    "beyond U+10FFFF": "64f4908080",
    "invalid utf8 as map value": "a100" + "61ff",
}


@pytest.mark.parametrize("hex_bytes", NON_CANONICAL.values(), ids=NON_CANONICAL.keys())
def test_decode_refuses_non_deterministic_or_out_of_model(hex_bytes: str) -> None:
    """ENC-1.2/ENC-1.3/ENC-1.5: anything but deterministic in-model CBOR is MALFORMED."""
    with pytest.raises(RemoteProtocolError) as info:
        decode(bytes.fromhex(hex_bytes))
    assert info.value.code is ErrorCode.MALFORMED


def nested(levels: int, leaf: Any = 0) -> Any:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def test_depth_limit_boundary() -> None:
    """ENC-1.4: items nest at most 8 deep (top level is depth 0); depth 9 is refused."""
    deepest = nested(MAX_CBOR_DEPTH)  # the leaf int sits at depth 8
    assert decode(encode(deepest)) == deepest
    too_deep = nested(MAX_CBOR_DEPTH + 1)  # the leaf int sits at depth 9
    with pytest.raises(LocalProtocolError):
        encode(too_deep)
    with pytest.raises(RemoteProtocolError) as info:
        decode(cbor2.dumps(too_deep))
    assert info.value.code is ErrorCode.MALFORMED


def test_depth_limit_counts_maps_too() -> None:
    """ENC-1.4: maps count toward the depth limit exactly like arrays."""
    value: Any = 0
    for _ in range(MAX_CBOR_DEPTH + 1):
        value = {0: value}
    with pytest.raises(LocalProtocolError):
        encode(value)
    with pytest.raises(RemoteProtocolError):
        decode(cbor2.dumps(value))
    assert decode(encode(value[0])) == value[0]


def test_depth_limit_encoder_and_decoder_agree_on_empty_innermost_container() -> None:
    """ENC-1.4: the limit is on item depth; an empty container at depth 8 is inside it.

    Nine nested arrays whose innermost is empty contain no item deeper than 8, so
    both sides accept them; what matters for interop is that encoder and decoder agree.
    """
    value = nested(MAX_CBOR_DEPTH, leaf=[])
    assert decode(encode(value)) == value
    with pytest.raises(LocalProtocolError):
        encode(nested(MAX_CBOR_DEPTH + 1, leaf=[]))
    with pytest.raises(RemoteProtocolError):
        decode(cbor2.dumps(nested(MAX_CBOR_DEPTH + 1, leaf=[])))


def test_very_deep_input_is_malformed_not_a_crash() -> None:
    """ENC-1.4: a decoder fed thousands of nested arrays raises only RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError):
        decode(b"\x81" * 100_000 + b"\x00")


OUT_OF_MODEL: dict[str, Any] = {
    "2^64": 2**64,
    "-2^64-1": -(2**64) - 1,
    "huge int in a list": [0, 2**100],
    "float": 1.5,
    "text key": {"a": 1},
    "bytes key": {b"a": 1},
    "negative key": {-1: 1},
    "bool key": {True: 1},
    "key 2^64": {2**64: 1},
    "set": {1, 2},
    "bytearray": bytearray(b"x"),
    "memoryview": memoryview(b"x"),
    "object": object(),
    "lone surrogate": "\ud800",
    "lone surrogate in a map": {0: ["ok", "\udfff"]},
}


@pytest.mark.parametrize("value", OUT_OF_MODEL.values(), ids=OUT_OF_MODEL.keys())
def test_encode_refuses_out_of_model_with_local_error(value: Any) -> None:
    """ENC-1.2: encoding a value outside the data model is a caller bug (LocalProtocolError)."""
    with pytest.raises(LocalProtocolError):
        encode(value)


def test_int_range_boundaries_on_decode() -> None:
    """ENC-1.2: the 64-bit range is inclusive at both ends and nothing beyond decodes."""
    assert decode(bytes.fromhex("1bffffffffffffffff")) == 2**64 - 1
    assert decode(bytes.fromhex("3bffffffffffffffff")) == -(2**64)
    for beyond in (2**64, -(2**64) - 1, 2**200):
        with pytest.raises(RemoteProtocolError) as info:
            decode(cbor2.dumps(beyond))
        assert info.value.code is ErrorCode.MALFORMED
