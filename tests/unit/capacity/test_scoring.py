"""The capacity score: the design's weights in millipoints, per factor (CAP-2.x)."""

import pytest

from railgun_ref.capacity import Availability, DeviceClass, NatType, score
from railgun_ref.capacity.scoring import (
    AVAILABILITY_SCORES,
    BANDWIDTH_MAX_SCORE,
    CLASS_SCORES,
    FULL_BANDWIDTH,
    MAX_SCORE,
    NAT_SCORES,
    bandwidth_score,
)

from .helpers import battery, caps


def test_weights_are_the_seeds() -> None:
    """CAP-2.1: 30 / 50 / 10 / 10 points, in thousandths."""
    assert max(CLASS_SCORES.values()) == 30_000
    assert BANDWIDTH_MAX_SCORE == 50_000
    assert max(NAT_SCORES.values()) == 10_000
    assert max(AVAILABILITY_SCORES.values()) == 10_000
    assert MAX_SCORE == 100_000


def test_every_enum_member_has_a_score() -> None:
    """CAP-2.2, CAP-2.4, CAP-2.5: no member is left unscored (NatType is shared with nat.py)."""
    assert set(CLASS_SCORES) == set(DeviceClass)
    assert set(NAT_SCORES) == set(NatType)
    assert set(AVAILABILITY_SCORES) == set(Availability)


@pytest.mark.parametrize(
    ("device_class", "points"),
    [
        (DeviceClass.SERVER, 30),
        (DeviceClass.DESKTOP_POWERFUL, 25),
        (DeviceClass.DESKTOP_STANDARD, 20),
        (DeviceClass.LAPTOP_PLUGGED, 15),
        (DeviceClass.LAPTOP_BATTERY, 10),
        (DeviceClass.MOBILE_WIFI, 5),
        (DeviceClass.MOBILE_CELLULAR, 0),
    ],
)
def test_class_factor(device_class: DeviceClass, points: int) -> None:
    """CAP-2.2: the design's class table."""
    assert score(caps(device_class=device_class)).device_class == points * 1000


@pytest.mark.parametrize(
    ("rate", "millipoints"),
    [
        (0, 0),
        (24, 0),
        (25, 1),
        (625_000, 25_000),
        (FULL_BANDWIDTH - 1, 49_999),
        (FULL_BANDWIDTH, 50_000),
        (FULL_BANDWIDTH + 1, 50_000),
        (2**53 - 1, 50_000),
    ],
)
def test_bandwidth_factor_is_linear_below_ten_megabits(rate: int, millipoints: int) -> None:
    """CAP-2.3: 10 Mbps = 1 250 000 bytes/s gets 50 points; floor(b / 25) below."""
    assert bandwidth_score(rate) == millipoints


def test_bandwidth_factor_is_monotonic() -> None:
    """CAP-2.3: more bandwidth never scores less."""
    scores = [bandwidth_score(b) for b in range(0, FULL_BANDWIDTH + 100, 997)]
    assert scores == sorted(scores)


def test_the_smaller_direction_counts() -> None:
    """CAP-2.3: min(upload, download)."""
    assert score(caps(upload_bandwidth=10**8, download_bandwidth=500_000)).bandwidth == 20_000
    assert score(caps(upload_bandwidth=500_000, download_bandwidth=10**8)).bandwidth == 20_000


@pytest.mark.parametrize(
    ("nat", "points"),
    [
        (NatType.OPEN, 10),
        (NatType.FULL_CONE, 10),
        (NatType.RESTRICTED, 6),
        (NatType.PORT_RESTRICTED, 4),
        (NatType.SYMMETRIC, 2),
        (NatType.UNKNOWN, 0),
        (NatType.UDP_BLOCKED, 0),
    ],
)
def test_nat_factor(nat: NatType, points: int) -> None:
    """CAP-2.4: the design's table, port-restricted between, unknown at 0."""
    assert score(caps(nat_type=nat)).nat == points * 1000


@pytest.mark.parametrize(
    ("availability", "points"),
    [(Availability.ALWAYS, 10), (Availability.WHEN_ACTIVE, 5), (Availability.SCHEDULED, 5)],
)
def test_availability_factor(availability: Availability, points: int) -> None:
    """CAP-2.5: scheduled scores like when-active."""
    assert score(caps(availability=availability)).availability == points * 1000


def test_battery_does_not_move_the_score() -> None:
    """CAP-2.6: only the class prices the battery."""
    base = caps(device_class=DeviceClass.LAPTOP_PLUGGED)
    for status in (battery(1), battery(99, plugged_in=True)):
        assert score(caps(device_class=DeviceClass.LAPTOP_PLUGGED, battery_status=status)) == (
            score(base)
        )


def test_breakdown_adds_up_and_serialises() -> None:
    """CAP-2.1: the total is the sum of the factors, and all are in the JSON form."""
    got = score(
        caps(
            device_class=DeviceClass.LAPTOP_PLUGGED,
            upload_bandwidth=312_500,
            nat_type=NatType.PORT_RESTRICTED,
            availability=Availability.SCHEDULED,
        )
    )
    assert (got.device_class, got.bandwidth, got.nat, got.availability) == (
        15_000,
        12_500,
        4_000,
        5_000,
    )
    assert got.total == 36_500 and got.points == 36.5
    assert got.to_json() == {
        "deviceClass": 15_000,
        "bandwidth": 12_500,
        "nat": 4_000,
        "availability": 5_000,
        "total": 36_500,
    }
    best = score(caps(device_class=DeviceClass.SERVER))
    assert best.total == MAX_SCORE
