"""Device detection from (injected) psutil readings, and once on this machine (CAP-1.x)."""

import math

import pytest

from railgun_ref.capacity import (
    Availability,
    BatteryStatus,
    CapacitySharingConfig,
    DeviceClass,
    NatType,
    Role,
    is_eligible,
)
from railgun_ref.drivers.capabilities import (
    POWERFUL_MIN_CORES,
    POWERFUL_MIN_MEMORY,
    MachineReadings,
    battery_status,
    classify_device,
    detect_capabilities,
    read_machine,
)

GIB = 2**30
DESKTOP = MachineReadings(logical_cores=4, memory_bytes=8 * GIB, battery_present=False)
WORKSTATION = MachineReadings(logical_cores=16, memory_bytes=64 * GIB, battery_present=False)
LAPTOP_ON_MAINS = MachineReadings(
    logical_cores=8,
    memory_bytes=16 * GIB,
    battery_present=True,
    battery_percent=87.6,
    power_plugged=True,
)
LAPTOP_UNPLUGGED = MachineReadings(
    logical_cores=8,
    memory_bytes=16 * GIB,
    battery_present=True,
    battery_percent=42.0,
    power_plugged=False,
)


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        (DESKTOP, DeviceClass.DESKTOP_STANDARD),
        (WORKSTATION, DeviceClass.DESKTOP_POWERFUL),
        (LAPTOP_ON_MAINS, DeviceClass.LAPTOP_PLUGGED),
        (LAPTOP_UNPLUGGED, DeviceClass.LAPTOP_BATTERY),
        (
            MachineReadings(
                logical_cores=2, memory_bytes=GIB, battery_present=True, power_plugged=None
            ),
            DeviceClass.LAPTOP_BATTERY,
        ),
        (
            MachineReadings(
                logical_cores=POWERFUL_MIN_CORES,
                memory_bytes=POWERFUL_MIN_MEMORY - 1,
                battery_present=False,
            ),
            DeviceClass.DESKTOP_STANDARD,
        ),
        (
            MachineReadings(
                logical_cores=POWERFUL_MIN_CORES - 1,
                memory_bytes=POWERFUL_MIN_MEMORY,
                battery_present=False,
            ),
            DeviceClass.DESKTOP_STANDARD,
        ),
        (
            MachineReadings(
                logical_cores=POWERFUL_MIN_CORES,
                memory_bytes=POWERFUL_MIN_MEMORY,
                battery_present=False,
            ),
            DeviceClass.DESKTOP_POWERFUL,
        ),
        (
            MachineReadings(logical_cores=None, memory_bytes=64 * GIB, battery_present=False),
            DeviceClass.DESKTOP_STANDARD,
        ),
    ],
)
def test_classification_from_readings(readings: MachineReadings, expected: DeviceClass) -> None:
    """A battery makes a laptop (plugged or not); cores and memory split desktops."""
    assert classify_device(readings) is expected


def test_declared_classes_win() -> None:
    """server and mobile are declared by the caller: psutil cannot tell them."""
    assert classify_device(LAPTOP_ON_MAINS, server=True) is DeviceClass.SERVER
    assert classify_device(DESKTOP, mobile_network="wifi") is DeviceClass.MOBILE_WIFI
    assert classify_device(DESKTOP, mobile_network="cellular") is DeviceClass.MOBILE_CELLULAR


def test_battery_status_from_readings() -> None:
    """CAP-1.1: a whole percent rounded down, clamped; None without a usable reading."""
    assert battery_status(LAPTOP_ON_MAINS) == BatteryStatus(level_percent=87, plugged_in=True)
    assert battery_status(DESKTOP) is None
    odd = MachineReadings(
        logical_cores=1, memory_bytes=GIB, battery_present=True, battery_percent=100.4
    )
    assert battery_status(odd) == BatteryStatus(level_percent=100, plugged_in=False)
    for percent in (None, math.nan):
        unknown = MachineReadings(
            logical_cores=1, memory_bytes=GIB, battery_present=True, battery_percent=percent
        )
        assert battery_status(unknown) is None


def test_detect_capabilities_builds_a_checked_value() -> None:
    """CAP-1.3, CAP-5.1: measured floats rounded down; what is offered follows the config."""
    got = detect_capabilities(
        upload_bandwidth=1_000_000.9,
        download_bandwidth=5e6,
        nat_type=NatType.FULL_CONE,
        readings=WORKSTATION,
    )
    assert got.device_class is DeviceClass.DESKTOP_POWERFUL
    assert (got.upload_bandwidth, got.download_bandwidth) == (1_000_000, 5_000_000)
    assert (got.max_relay_bandwidth, got.max_relay_connections) == (500_000, 20)
    assert got.can_act_as_turn and got.can_store_messages
    assert got.availability is Availability.WHEN_ACTIVE and got.battery_status is None
    assert all(is_eligible(got, role) for role in Role)


def test_detect_capabilities_on_battery_and_as_server() -> None:
    """No TURN on battery or behind a restrictive NAT; a server is always available."""
    laptop = detect_capabilities(
        upload_bandwidth=10**6,
        download_bandwidth=10**6,
        nat_type=NatType.OPEN,
        readings=LAPTOP_UNPLUGGED,
    )
    assert not laptop.can_act_as_turn and laptop.on_battery
    assert laptop.battery_status == BatteryStatus(level_percent=42, plugged_in=False)
    server = detect_capabilities(
        upload_bandwidth=10**8,
        download_bandwidth=10**8,
        nat_type=NatType.RESTRICTED,
        readings=WORKSTATION,
        server=True,
    )
    assert server.availability is Availability.ALWAYS and not server.can_act_as_turn
    phone = detect_capabilities(
        upload_bandwidth=10**6,
        download_bandwidth=10**6,
        nat_type=NatType.OPEN,
        readings=DESKTOP,
        mobile_network="wifi",
    )
    assert not phone.can_act_as_turn and not phone.can_store_messages
    off = detect_capabilities(
        upload_bandwidth=10**6,
        download_bandwidth=10**6,
        nat_type=NatType.OPEN,
        readings=DESKTOP,
        sharing=CapacitySharingConfig(enabled=False),
    )
    assert (off.max_relay_bandwidth, off.max_relay_connections, off.can_act_as_turn) == (
        0,
        0,
        False,
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, True])
def test_detect_capabilities_refuses_bad_measurements(bad: float) -> None:
    """CAP-1.3: NaN or a negative measurement is the caller's bug."""
    with pytest.raises(ValueError):
        detect_capabilities(
            upload_bandwidth=bad, download_bandwidth=1, nat_type=NatType.OPEN, readings=DESKTOP
        )


def test_this_machine_gets_a_valid_class() -> None:
    """psutil on the real machine: readings make sense and give a class and capabilities."""
    readings = read_machine()
    assert readings.memory_bytes > 0
    assert readings.logical_cores is None or readings.logical_cores >= 1
    assert classify_device(readings) in set(DeviceClass) - {
        DeviceClass.SERVER,
        DeviceClass.MOBILE_WIFI,
        DeviceClass.MOBILE_CELLULAR,
    }
    got = detect_capabilities(
        upload_bandwidth=2.5e6, download_bandwidth=1e7, nat_type=NatType.UNKNOWN
    )
    assert got.device_class is classify_device(readings)
