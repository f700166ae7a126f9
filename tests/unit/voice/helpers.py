"""Participants and capabilities to build voice tests from."""

from railgun_ref.capacity import Availability, DeviceCapabilities, DeviceClass, NatType
from railgun_ref.core.ids import NodeId
from unit.capacity.helpers import caps

# `caps()` is a desktop: 625_000 bytes/s to relay = 78 streams at 64 kbit/s, 20 connections.


def node(n: int) -> NodeId:
    return NodeId(bytes([n]) * 32)


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
