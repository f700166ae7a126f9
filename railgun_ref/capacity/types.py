"""The Rail Gun design's `DeviceCapabilities` and its enumerations (CAP-1.x).

Python names are snake_case; the *JSON form* (`to_json` / `from_json`) uses
the design's camelCase field names and its string values (``"desktop-powerful"``,
``"when-active"``), which is what the TypeScript client holds and what the
conformance vectors write. The advertisement on the wire is a different,
compact form (integer map keys, `railgun_ref.capacity.advert`).

Invariants kept at construction (CAP-1.3), so no other module re-checks them:

* every count and bandwidth is a Python ``int`` (never ``bool``, never a
  float: NaN, infinities and fractions cannot get in) in ``0 .. 2^53 - 1``;
* every enumerated field is a member of its enum, never a bare string
  (`NatType` is the NAT classifier's, `railgun_ref.capacity.nat`);
* a battery level is an integer percentage ``0 .. 100``.

A violation raises `CapabilityError`, a `LocalProtocolError` that names the
offending field by its JSON name: the caller built a bad value.
"""

import math
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Final, Self

from railgun_ref.capacity.nat import NatType
from railgun_ref.core.errors import LocalProtocolError

#: CAP-1.3: the largest count or bandwidth (2^53 - 1, exact in a JavaScript number).
MAX_CAPACITY_INTEGER: Final = 2**53 - 1
#: CAP-1.3: a battery level is a whole percentage.
MAX_BATTERY_PERCENT: Final = 100


class CapabilityError(LocalProtocolError):
    """A `DeviceCapabilities` (or its JSON form) breaks CAP-1.3; `field` is the JSON name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class DeviceClass(StrEnum):
    """CAP-1.2: the design's device classes, valued by their wire names."""

    SERVER = "server"
    DESKTOP_POWERFUL = "desktop-powerful"
    DESKTOP_STANDARD = "desktop-standard"
    LAPTOP_PLUGGED = "laptop-plugged"
    LAPTOP_BATTERY = "laptop-battery"
    MOBILE_WIFI = "mobile-wifi"
    MOBILE_CELLULAR = "mobile-cellular"


class Availability(StrEnum):
    """CAP-1.2: when the device is online, as the design spells it."""

    ALWAYS = "always"
    WHEN_ACTIVE = "when-active"
    SCHEDULED = "scheduled"


#: Device classes that run on a battery unless a `BatteryStatus` says otherwise (CAP-4.3).
BATTERY_CLASSES: Final = frozenset(
    {DeviceClass.LAPTOP_BATTERY, DeviceClass.MOBILE_WIFI, DeviceClass.MOBILE_CELLULAR}
)


def _check_int(field: str, value: object, maximum: int = MAX_CAPACITY_INTEGER) -> int:
    """`value` if it is an int (not a bool) in 0..`maximum`; else `CapabilityError`."""
    if type(value) is not int:
        if isinstance(value, float) and math.isnan(value):
            raise CapabilityError(field, "NaN is not a number of bytes or connections")
        if isinstance(value, float) and math.isinf(value):
            raise CapabilityError(field, "must be finite")
        raise CapabilityError(field, f"must be an integer, got {type(value).__name__}")
    if value < 0:
        raise CapabilityError(field, f"must not be negative, got {value}")
    if value > maximum:
        raise CapabilityError(field, f"must be at most {maximum}, got {value}")
    return value


def _check_bool(field: str, value: object) -> None:
    if type(value) is not bool:
        raise CapabilityError(field, f"must be a boolean, got {type(value).__name__}")


def _check_enum(field: str, value: object, enum: type[StrEnum]) -> None:
    if not isinstance(value, enum):
        raise CapabilityError(field, f"must be a {enum.__name__}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BatteryStatus:
    """CAP-1.1: the battery, when the device has one and reports it."""

    level_percent: int  #: charge, whole percent 0..100
    plugged_in: bool  #: on external power (charging or full)

    def __post_init__(self) -> None:
        _check_int("batteryStatus.levelPercent", self.level_percent, MAX_BATTERY_PERCENT)
        _check_bool("batteryStatus.pluggedIn", self.plugged_in)

    def to_json(self) -> dict[str, Any]:
        return {"levelPercent": self.level_percent, "pluggedIn": self.plugged_in}


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceCapabilities:
    """CAP-1.1: what a device can contribute, as the design's `DeviceCapabilities`.

    Bandwidths are bytes per second, counts are connections. The value is
    checked when built (CAP-1.3) and raises `CapabilityError` if invalid.
    """

    device_class: DeviceClass
    upload_bandwidth: int  #: bytes/s
    download_bandwidth: int  #: bytes/s
    max_relay_connections: int  #: relay connections this device accepts at once
    max_relay_bandwidth: int  #: bytes/s this device spends relaying for others
    can_act_as_turn: bool
    can_store_messages: bool
    nat_type: NatType
    battery_status: BatteryStatus | None = None
    availability: Availability

    def __post_init__(self) -> None:
        _check_enum("deviceClass", self.device_class, DeviceClass)
        for name in _INT_FIELDS:
            _check_int(_JSON_NAMES[name], getattr(self, name))
        _check_bool("canActAsTurn", self.can_act_as_turn)
        _check_bool("canStoreMessages", self.can_store_messages)
        _check_enum("natType", self.nat_type, NatType)
        if self.battery_status is not None and not isinstance(self.battery_status, BatteryStatus):
            raise CapabilityError("batteryStatus", "must be a BatteryStatus or absent")
        _check_enum("availability", self.availability, Availability)

    @property
    def on_battery(self) -> bool:
        """CAP-4.3: running on battery power (a `BatteryStatus` decides; else the class)."""
        if self.battery_status is not None:
            return not self.battery_status.plugged_in
        return self.device_class in BATTERY_CLASSES

    def to_json(self) -> dict[str, Any]:
        """The JSON form (CAP-1.1): the design's names and values; no batteryStatus if absent."""
        out: dict[str, Any] = {}
        for name, json_name in _JSON_NAMES.items():
            value = getattr(self, name)
            if name == "battery_status":
                if value is not None:
                    out[json_name] = value.to_json()
            elif isinstance(value, StrEnum):
                out[json_name] = value.value
            else:
                out[json_name] = value
        return out

    @classmethod
    def from_json(cls, value: object) -> Self:
        """Parse the JSON form strictly (CAP-1.3): exactly the design's fields, checked values.

        A JSON number is accepted for an integer field only if it is finite and
        whole (``1e6`` is 1000000; ``1.5`` and NaN are refused); ``batteryStatus``
        may be absent but not null. Raises `CapabilityError` naming a bad field.
        """
        obj = _json_object("", value, tuple(_JSON_NAMES.values()), {"batteryStatus"})
        kwargs: dict[str, Any] = {}
        for name, json_name in _JSON_NAMES.items():
            if json_name not in obj:
                continue
            item = obj[json_name]
            if name in _ENUMS:
                kwargs[name] = _json_enum(json_name, item, _ENUMS[name])
            elif name in _INT_FIELDS:
                kwargs[name] = _json_int(json_name, item)
            elif name == "battery_status":
                kwargs[name] = _battery_from_json(item)
            else:
                kwargs[name] = item
        return cls(**kwargs)


def _json_object(
    path: str, value: object, known: tuple[str, ...], optional: set[str]
) -> dict[str, Any]:
    """`value` as a JSON object with no field outside `known` and all but `optional` present."""
    if not isinstance(value, dict):
        raise CapabilityError(path or "capabilities", "must be a JSON object")
    prefix = f"{path}." if path else ""
    unknown = sorted(str(name) for name in value if name not in known)
    if unknown:
        raise CapabilityError(prefix + unknown[0], "is not a field of DeviceCapabilities")
    missing = [name for name in known if name not in optional and name not in value]
    if missing:
        raise CapabilityError(prefix + missing[0], "is required")
    return value


def _json_int(field: str, value: object) -> object:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        raise CapabilityError(field, f"must be a whole number, got {value}")
    return value  # the constructor refuses anything else with the right message


def _json_enum(field: str, value: object, enum: type[StrEnum]) -> StrEnum:
    if not isinstance(value, str):
        raise CapabilityError(field, f"must be a string, got {type(value).__name__}")
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise CapabilityError(field, f"unknown value {value!r} (one of {allowed})") from None


def _battery_from_json(value: object) -> BatteryStatus:
    obj = _json_object("batteryStatus", value, ("levelPercent", "pluggedIn"), set())
    return BatteryStatus(
        level_percent=_check_int(
            "batteryStatus.levelPercent",
            _json_int("batteryStatus.levelPercent", obj["levelPercent"]),
            MAX_BATTERY_PERCENT,
        ),
        plugged_in=obj["pluggedIn"],
    )


#: Python field name -> the design's field name, in the design's order.
_JSON_NAMES: Final = {
    "device_class": "deviceClass",
    "upload_bandwidth": "uploadBandwidth",
    "download_bandwidth": "downloadBandwidth",
    "max_relay_connections": "maxRelayConnections",
    "max_relay_bandwidth": "maxRelayBandwidth",
    "can_act_as_turn": "canActAsTurn",
    "can_store_messages": "canStoreMessages",
    "nat_type": "natType",
    "battery_status": "batteryStatus",
    "availability": "availability",
}
_INT_FIELDS: Final = (
    "upload_bandwidth",
    "download_bandwidth",
    "max_relay_connections",
    "max_relay_bandwidth",
)
_ENUMS: Final[dict[str, type[StrEnum]]] = {
    "device_class": DeviceClass,
    "nat_type": NatType,
    "availability": Availability,
}
assert set(_JSON_NAMES) == {f.name for f in fields(DeviceCapabilities)}
