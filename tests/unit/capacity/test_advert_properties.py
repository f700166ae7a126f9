"""The advertisement decoder under arbitrary input; round trips of arbitrary values (CAP-3.2)."""

from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.capacity import (
    Availability,
    BatteryStatus,
    DeviceCapabilities,
    DeviceClass,
    NatType,
    decode_capabilities,
    encode_capabilities,
    score,
)
from railgun_ref.capacity.types import MAX_CAPACITY_INTEGER
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.wire import cbor

counts = st.integers(min_value=0, max_value=MAX_CAPACITY_INTEGER)
batteries = st.none() | st.builds(
    BatteryStatus, level_percent=st.integers(0, 100), plugged_in=st.booleans()
)
capabilities = st.builds(
    DeviceCapabilities,
    device_class=st.sampled_from(DeviceClass),
    upload_bandwidth=counts,
    download_bandwidth=counts,
    max_relay_connections=counts,
    max_relay_bandwidth=counts,
    can_act_as_turn=st.booleans(),
    can_store_messages=st.booleans(),
    nat_type=st.sampled_from(NatType),
    battery_status=batteries,
    availability=st.sampled_from(Availability),
)


@given(capabilities)
def test_encode_decode_round_trip(value: DeviceCapabilities) -> None:
    """CAP-3.1: every valid value encodes within 256 bytes and decodes to itself."""
    data = encode_capabilities(value)
    assert len(data) <= 102
    assert decode_capabilities(data) == value
    assert DeviceCapabilities.from_json(value.to_json()) == value
    assert 0 <= score(value).total <= 100_000


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_remote_protocol_error(data: bytes) -> None:
    """CAP-3.2: whatever the bytes, a value or RemoteProtocolError, nothing else."""
    try:
        value = decode_capabilities(data)
    except RemoteProtocolError as exc:
        assert exc.code.name in {"MALFORMED", "TOO_LARGE", "UNSUPPORTED_VERSION"}
    else:
        assert encode_capabilities(value) == data


@given(capabilities, st.integers(0, 10), st.one_of(st.integers(-5, 2**64 - 1), st.text(max_size=3),
       st.binary(max_size=3), st.booleans(), st.none()))  # fmt: skip
def test_one_field_replaced_decodes_or_is_refused(
    value: DeviceCapabilities, key: int, replacement: object
) -> None:
    """CAP-3.2: a well-formed map with one field swapped is a value or a RemoteProtocolError."""
    body = cbor.decode(encode_capabilities(value))
    body[key] = replacement
    try:
        got = decode_capabilities(cbor.encode(dict(sorted(body.items()))))
    except RemoteProtocolError:
        return
    assert encode_capabilities(got) == cbor.encode(dict(sorted(body.items())))
