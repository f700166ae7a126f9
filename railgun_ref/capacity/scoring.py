"""The capacity score (CAP-2.x): the design's four weighted factors, exactly.

The Rail Gun design gives a 100-point scale: device class 30, bandwidth 50 (full marks
from 10 Mbps, linear below), NAT type 10, availability 10. This module keeps
the design's numbers and fills its gaps as the spec decides them:

* unit: scores are integers in *millipoints* (1/1000 of a point), so the
  linear bandwidth factor needs no floating point and every implementation
  gets the same number (CAP-2.1); 30 points is 30_000;
* bandwidth: the smaller of upload and download counts, and 10 Mbps is
  10^7 bit/s = 1_250_000 bytes/s, so one millipoint per 25 bytes/s,
  rounded down (CAP-2.3);
* NAT: ``port-restricted`` 4 points, ``unknown`` and ``udp-blocked`` 0 (CAP-2.4);
* availability: ``scheduled`` 5 points, like ``when-active`` (CAP-2.5);
* the battery does not enter the score; it decides eligibility (CAP-2.6,
  CAP-4.3).

The breakdown per factor is part of the API (`CapacityScore`), not just the
total, so a notebook or a peer can see why one device outranks another.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from railgun_ref.capacity.nat import NatType
from railgun_ref.capacity.types import Availability, DeviceCapabilities, DeviceClass

#: Millipoints per point (CAP-2.1).
MILLIPOINTS: Final = 1000
#: CAP-2.1: the highest total score, in millipoints.
MAX_SCORE: Final = 100 * MILLIPOINTS

#: CAP-2.2: device class factor (30 %), millipoints.
CLASS_SCORES: Final[Mapping[DeviceClass, int]] = MappingProxyType(
    {
        DeviceClass.SERVER: 30_000,
        DeviceClass.DESKTOP_POWERFUL: 25_000,
        DeviceClass.DESKTOP_STANDARD: 20_000,
        DeviceClass.LAPTOP_PLUGGED: 15_000,
        DeviceClass.LAPTOP_BATTERY: 10_000,
        DeviceClass.MOBILE_WIFI: 5_000,
        DeviceClass.MOBILE_CELLULAR: 0,
    }
)

#: CAP-2.3: bandwidth factor (50 %): full marks at this rate, bytes/s (10 Mbps, SI).
FULL_BANDWIDTH: Final = 1_250_000
#: CAP-2.3: the bandwidth factor's maximum, millipoints.
BANDWIDTH_MAX_SCORE: Final = 50_000

#: CAP-2.4: NAT type factor (10 %), millipoints.
NAT_SCORES: Final[Mapping[NatType, int]] = MappingProxyType(
    {
        NatType.OPEN: 10_000,
        NatType.FULL_CONE: 10_000,
        NatType.RESTRICTED: 6_000,
        NatType.PORT_RESTRICTED: 4_000,
        NatType.SYMMETRIC: 2_000,
        NatType.UNKNOWN: 0,
        NatType.UDP_BLOCKED: 0,
    }
)

#: CAP-2.5: availability factor (10 %), millipoints.
AVAILABILITY_SCORES: Final[Mapping[Availability, int]] = MappingProxyType(
    {
        Availability.ALWAYS: 10_000,
        Availability.WHEN_ACTIVE: 5_000,
        Availability.SCHEDULED: 5_000,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CapacityScore:
    """CAP-2.1: a device's score per factor and in total, in millipoints (0..100_000)."""

    device_class: int  #: 0..30_000 (CAP-2.2)
    bandwidth: int  #: 0..50_000 (CAP-2.3)
    nat: int  #: 0..10_000 (CAP-2.4)
    availability: int  #: 0..10_000 (CAP-2.5)
    total: int = field(init=False)  #: the sum of the four factors

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "total", self.device_class + self.bandwidth + self.nat + self.availability
        )

    @property
    def points(self) -> float:
        """The total on the design's 0..100 scale, for display (not for comparison)."""
        return self.total / MILLIPOINTS

    def to_json(self) -> dict[str, Any]:
        """The breakdown as vectors write it (millipoints)."""
        return {
            "deviceClass": self.device_class,
            "bandwidth": self.bandwidth,
            "nat": self.nat,
            "availability": self.availability,
            "total": self.total,
        }


def scoring_bandwidth(capabilities: DeviceCapabilities) -> int:
    """CAP-2.3: the bandwidth that is scored: the smaller direction, bytes/s."""
    return min(capabilities.upload_bandwidth, capabilities.download_bandwidth)


def bandwidth_score(bytes_per_second: int) -> int:
    """CAP-2.3: 50 points at 1_250_000 bytes/s and above, linear below, rounded down."""
    if bytes_per_second >= FULL_BANDWIDTH:
        return BANDWIDTH_MAX_SCORE
    return bytes_per_second * BANDWIDTH_MAX_SCORE // FULL_BANDWIDTH


def score(capabilities: DeviceCapabilities) -> CapacityScore:
    """CAP-2.1: the capacity score of `capabilities`, per factor and in total."""
    return CapacityScore(
        device_class=CLASS_SCORES[capabilities.device_class],
        bandwidth=bandwidth_score(scoring_bandwidth(capabilities)),
        nat=NAT_SCORES[capabilities.nat_type],
        availability=AVAILABILITY_SCORES[capabilities.availability],
    )
