"""Participants and capabilities to build voice tests from."""

from typing import Any

from railgun_ref.capacity import Availability, DeviceCapabilities, DeviceClass, NatType
from railgun_ref.core.ids import NodeId


def node(n: int) -> NodeId:
    return NodeId(bytes([n]) * 32)


def caps(**changes: Any) -> DeviceCapabilities:
    """A desktop: 90 points, 625_000 bytes/s to relay (78 streams at 64 kbit/s), 20 connections."""
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


def server() -> DeviceCapabilities:
    """100 points, 781 streams, 100 connections."""
    return caps(
        device_class=DeviceClass.SERVER,
        upload_bandwidth=12_500_000,
        max_relay_bandwidth=6_250_000,
        max_relay_connections=100,
    )


def laptop() -> DeviceCapabilities:
    """51 points, 39 streams, 10 connections."""
    return caps(
        device_class=DeviceClass.LAPTOP_PLUGGED,
        upload_bandwidth=625_000,
        download_bandwidth=2_500_000,
        max_relay_connections=10,
        max_relay_bandwidth=312_500,
        nat_type=NatType.RESTRICTED,
        availability=Availability.WHEN_ACTIVE,
    )


def phone() -> DeviceCapabilities:
    """Never hosts (mobile-cellular)."""
    return caps(device_class=DeviceClass.MOBILE_CELLULAR, nat_type=NatType.SYMMETRIC)


def desktops(count: int, first: int = 1) -> dict[NodeId, DeviceCapabilities]:
    return {node(n): caps() for n in range(first, first + count)}
