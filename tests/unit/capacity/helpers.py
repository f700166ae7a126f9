"""Capabilities to build tests from."""

from typing import Any

from railgun_ref.capacity import (
    Availability,
    BatteryStatus,
    DeviceCapabilities,
    DeviceClass,
    NatType,
)


def caps(**changes: Any) -> DeviceCapabilities:
    """A valid desktop (90 points), with `changes` applied."""
    fields: dict[str, Any] = {
        "device_class": DeviceClass.DESKTOP_STANDARD,
        "upload_bandwidth": 1_250_000,
        "download_bandwidth": 12_500_000,
        "max_relay_connections": 20,
        "max_relay_bandwidth": 625_000,
        "can_act_as_turn": True,
        "can_store_messages": True,
        "nat_type": NatType.OPEN,
        "battery_status": None,
        "availability": Availability.ALWAYS,
    }
    fields.update(changes)
    return DeviceCapabilities(**fields)


def battery(level: int, *, plugged_in: bool = False) -> BatteryStatus:
    return BatteryStatus(level_percent=level, plugged_in=plugged_in)
