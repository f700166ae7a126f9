"""DeviceCapabilities: the design's fields and values, checked at construction (CAP-1.x)."""

import dataclasses
import math
from typing import Any

import pytest

from railgun_ref.capacity import (
    Availability,
    BatteryStatus,
    CapabilityError,
    DeviceCapabilities,
    DeviceClass,
    NatType,
)
from railgun_ref.capacity.types import MAX_CAPACITY_INTEGER
from railgun_ref.core.errors import LocalProtocolError

from .helpers import battery, caps

SEED_FIELDS = [
    "deviceClass",
    "uploadBandwidth",
    "downloadBandwidth",
    "maxRelayConnections",
    "maxRelayBandwidth",
    "canActAsTurn",
    "canStoreMessages",
    "natType",
    "batteryStatus",
    "availability",
]


def test_fields_are_the_seeds_in_snake_case() -> None:
    """CAP-1.1: the design's ten fields, snake_case in Python, camelCase in the JSON form."""
    names = [f.name for f in dataclasses.fields(DeviceCapabilities)]
    assert [n.replace("_", "") for n in names] == [f.lower() for f in SEED_FIELDS]
    value = caps(battery_status=battery(40)).to_json()
    assert list(value) == SEED_FIELDS
    assert value["batteryStatus"] == {"levelPercent": 40, "pluggedIn": False}
    assert "batteryStatus" not in caps().to_json()


def test_enumerations_have_the_seeds_values() -> None:
    """CAP-1.2: exactly the design's spellings."""
    assert [c.value for c in DeviceClass] == [
        "server",
        "desktop-powerful",
        "desktop-standard",
        "laptop-plugged",
        "laptop-battery",
        "mobile-wifi",
        "mobile-cellular",
    ]
    assert [a.value for a in Availability] == ["always", "when-active", "scheduled"]
    assert {n.value for n in NatType} >= {"open", "full-cone", "restricted", "symmetric"}


@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, -math.inf, -1, 1.5, 1e6, 2**53, True, "100", None],
    ids=repr,
)
@pytest.mark.parametrize(
    "field",
    ["upload_bandwidth", "download_bandwidth", "max_relay_connections", "max_relay_bandwidth"],
)
def test_counts_and_bandwidths_are_checked(field: str, bad: Any) -> None:
    """CAP-1.3: an integer 0..2^53-1; NaN, infinities, negatives, fractions, bools refused."""
    with pytest.raises(CapabilityError) as info:
        caps(**{field: bad})
    assert isinstance(info.value, LocalProtocolError)
    camel = "".join(p.capitalize() if i else p for i, p in enumerate(field.split("_")))
    assert info.value.field == camel


def test_nan_is_named_in_the_message() -> None:
    """CAP-1.3: the refusal says what was wrong, not just where."""
    with pytest.raises(CapabilityError, match="NaN"):
        caps(upload_bandwidth=math.nan)


@pytest.mark.parametrize("value", [0, 1, MAX_CAPACITY_INTEGER])
def test_integer_bounds_are_inclusive(value: int) -> None:
    """CAP-1.3: 0 and 2^53 - 1 are both fine."""
    built = caps(upload_bandwidth=value, max_relay_connections=value)
    assert built.upload_bandwidth == built.max_relay_connections == value


@pytest.mark.parametrize(
    ("field", "bad", "json_name"),
    [
        ("device_class", "server", "deviceClass"),
        ("nat_type", "open", "natType"),
        ("availability", "always", "availability"),
        ("can_act_as_turn", 1, "canActAsTurn"),
        ("can_store_messages", None, "canStoreMessages"),
        ("battery_status", {"levelPercent": 5, "pluggedIn": True}, "batteryStatus"),
    ],
)
def test_enums_and_flags_are_checked(field: str, bad: Any, json_name: str) -> None:
    """CAP-1.3: a bare string is not an enum member; a flag is a bool."""
    with pytest.raises(CapabilityError) as info:
        caps(**{field: bad})
    assert info.value.field == json_name


@pytest.mark.parametrize("level", [-1, 101, 50.0, math.nan, True])
def test_battery_level_is_a_whole_percentage(level: Any) -> None:
    """CAP-1.1, CAP-1.3: levelPercent is an integer 0..100."""
    with pytest.raises(CapabilityError) as info:
        BatteryStatus(level_percent=level, plugged_in=True)
    assert info.value.field == "batteryStatus.levelPercent"


def test_json_form_round_trips() -> None:
    """CAP-1.1: to_json and from_json are inverse."""
    for value in (caps(), caps(battery_status=battery(0, plugged_in=True))):
        assert DeviceCapabilities.from_json(value.to_json()) == value


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"deviceClass": "laptop"}, "deviceClass"),
        ({"natType": "Open"}, "natType"),
        ({"availability": 1}, "availability"),
        ({"uploadBandwidth": 0.5}, "uploadBandwidth"),
        ({"downloadBandwidth": math.nan}, "downloadBandwidth"),
        ({"extra": 1}, "extra"),
        ({"batteryStatus": None}, "batteryStatus"),
        ({"batteryStatus": {"levelPercent": 1}}, "batteryStatus.pluggedIn"),
        ({"batteryStatus": []}, "batteryStatus"),
    ],
)
def test_json_form_refusals_name_the_field(changes: dict[str, Any], field: str) -> None:
    """CAP-1.3: the JSON form is strict, and the refusal says which field."""
    value = {**caps().to_json(), **changes}
    with pytest.raises(CapabilityError) as info:
        DeviceCapabilities.from_json(value)
    assert info.value.field == field


def test_json_form_needs_every_field_but_the_battery() -> None:
    """CAP-1.3: a missing field is refused; batteryStatus may be absent."""
    value = caps().to_json()
    for name in SEED_FIELDS:
        if name == "batteryStatus":
            continue
        partial = {k: v for k, v in value.items() if k != name}
        with pytest.raises(CapabilityError) as info:
            DeviceCapabilities.from_json(partial)
        assert info.value.field == name
    with pytest.raises(CapabilityError):
        DeviceCapabilities.from_json([value])


def test_json_whole_floats_are_integers() -> None:
    """CAP-1.3: 1e6 written as a float is the integer 1000000 (JSON does not tell them apart)."""
    value = {**caps().to_json(), "uploadBandwidth": 1e6}
    built = DeviceCapabilities.from_json(value)
    assert built.upload_bandwidth == 1_000_000 and type(built.upload_bandwidth) is int


def test_on_battery_follows_the_status_then_the_class() -> None:
    """CAP-4.3: a BatteryStatus decides; without one, the battery classes are on battery."""
    assert caps(device_class=DeviceClass.LAPTOP_BATTERY).on_battery
    assert caps(device_class=DeviceClass.MOBILE_WIFI).on_battery
    assert not caps(device_class=DeviceClass.LAPTOP_PLUGGED).on_battery
    assert not caps(
        device_class=DeviceClass.LAPTOP_BATTERY, battery_status=battery(10, plugged_in=True)
    ).on_battery
    assert caps(battery_status=battery(90)).on_battery
