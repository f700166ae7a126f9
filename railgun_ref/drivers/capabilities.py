"""Capability detection and advertisement: the IO half of the capacity component.

Detection reads the machine through psutil (battery present and plugged in,
CPU cores, memory) into a `MachineReadings`; `classify_device` turns readings
into a device class (CAP-1.2) and is a pure function, so it is tested with
injected readings. `detect_capabilities` adds what psutil cannot know and the
caller measured — upload and download bandwidth, the NAT type — and the
sharing config, and returns a checked `DeviceCapabilities`.

The classification heuristic is local policy, not protocol: peers only see
the class a node advertises (CAP-1.1). The reference's rules:

* a caller that knows it is a phone says so (``mobile_network``): psutil
  cannot tell a phone from a laptop;
* ``server`` is declared, never guessed: hardware does not say whether a
  machine is kept on around the clock;
* a machine with a battery is a laptop, ``laptop-plugged`` when on external
  power, ``laptop-battery`` otherwise (also when the power state is unknown);
* without a battery, at least `POWERFUL_MIN_CORES` logical cores and
  `POWERFUL_MIN_MEMORY` bytes of memory make ``desktop-powerful``; anything
  less ``desktop-standard``.

`keep_advertising` runs the sans-IO `Advertiser` against a running
`NodeHost`: it re-reads the capabilities periodically and publishes when the
advertiser says so (CAP-3.3, CAP-3.4).
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import anyio
import psutil

from railgun_ref.capacity.advert import Advertiser
from railgun_ref.capacity.nat import NatType
from railgun_ref.capacity.sharing import DEFAULT_SHARING, CapacitySharingConfig
from railgun_ref.capacity.types import (
    MAX_BATTERY_PERCENT,
    MAX_CAPACITY_INTEGER,
    Availability,
    BatteryStatus,
    DeviceCapabilities,
    DeviceClass,
)
from railgun_ref.core.ids import Address
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.events import PongReceived
from railgun_ref.rpc.requests import Channel

#: desktop-powerful needs at least this many logical CPU cores ...
POWERFUL_MIN_CORES: Final = 8
#: ... and at least this much memory, bytes (16 GiB).
POWERFUL_MIN_MEMORY: Final = 16 * 2**30

#: NAT types behind which a node offers to act as a TURN server (CAP-4.2's rule for turn).
_TURN_NATS: Final = frozenset({NatType.OPEN, NatType.FULL_CONE})

MobileNetwork = Literal["wifi", "cellular"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineReadings:
    """What psutil says about the machine (or what a test injects)."""

    logical_cores: int | None  #: None when the OS does not say
    memory_bytes: int  #: total physical memory
    battery_present: bool
    battery_percent: float | None = None  #: 0..100 when a battery reports it
    power_plugged: bool | None = None  #: None when the OS does not say


def read_machine() -> MachineReadings:
    """Read the machine through psutil."""
    sensors_battery = getattr(psutil, "sensors_battery", None)  # absent on some platforms
    battery = sensors_battery() if sensors_battery is not None else None
    return MachineReadings(
        logical_cores=psutil.cpu_count(logical=True),
        memory_bytes=int(psutil.virtual_memory().total),
        battery_present=battery is not None,
        battery_percent=None if battery is None else float(battery.percent),
        power_plugged=None if battery is None else battery.power_plugged,
    )


def classify_device(
    readings: MachineReadings,
    *,
    server: bool = False,
    mobile_network: MobileNetwork | None = None,
) -> DeviceClass:
    """The device class (CAP-1.2) of a machine (the module docstring gives the rules)."""
    if mobile_network == "cellular":
        return DeviceClass.MOBILE_CELLULAR
    if mobile_network == "wifi":
        return DeviceClass.MOBILE_WIFI
    if server:
        return DeviceClass.SERVER
    if readings.battery_present:
        return DeviceClass.LAPTOP_PLUGGED if readings.power_plugged else DeviceClass.LAPTOP_BATTERY
    cores = readings.logical_cores or 1
    if cores >= POWERFUL_MIN_CORES and readings.memory_bytes >= POWERFUL_MIN_MEMORY:
        return DeviceClass.DESKTOP_POWERFUL
    return DeviceClass.DESKTOP_STANDARD


def battery_status(readings: MachineReadings) -> BatteryStatus | None:
    """The advertised battery: whole percent rounded down, clamped to 0..100; None if unknown."""
    if not readings.battery_present or readings.battery_percent is None:
        return None
    percent = readings.battery_percent
    if not math.isfinite(percent):
        return None
    level = min(MAX_BATTERY_PERCENT, max(0, math.floor(percent)))
    return BatteryStatus(level_percent=level, plugged_in=bool(readings.power_plugged))


def _bytes_per_second(name: str, value: float) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number of bytes/s >= 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return min(MAX_CAPACITY_INTEGER, math.floor(value))


def detect_capabilities(
    *,
    upload_bandwidth: float,
    download_bandwidth: float,
    nat_type: NatType,
    readings: MachineReadings | None = None,
    sharing: CapacitySharingConfig = DEFAULT_SHARING,
    availability: Availability | None = None,
    server: bool = False,
    mobile_network: MobileNetwork | None = None,
) -> DeviceCapabilities:
    """This machine's `DeviceCapabilities` from measured bandwidth (bytes/s) and NAT type.

    `readings` defaults to `read_machine()`. Bandwidths are rounded down to
    whole bytes/s (CAP-1.3). What the device offers follows `sharing`: its
    relay bandwidth is floor(upload x maxUploadShare), its relay connections
    ``maxRelayConnections``, both 0 when sharing is disabled; it offers TURN
    only behind an open or full-cone NAT, not on battery and not as a phone;
    it stores messages unless it is a phone. `availability` defaults to
    ``always`` for a server and ``when-active`` otherwise.
    """
    upload = _bytes_per_second("upload_bandwidth", upload_bandwidth)
    download = _bytes_per_second("download_bandwidth", download_bandwidth)
    machine = read_machine() if readings is None else readings
    device_class = classify_device(machine, server=server, mobile_network=mobile_network)
    battery = battery_status(machine)
    mobile = mobile_network is not None
    on_battery = machine.battery_present and not machine.power_plugged
    if availability is None:
        availability = (
            Availability.ALWAYS if device_class is DeviceClass.SERVER else Availability.WHEN_ACTIVE
        )
    shares = sharing.enabled
    return DeviceCapabilities(
        device_class=device_class,
        upload_bandwidth=upload,
        download_bandwidth=download,
        max_relay_connections=sharing.max_relay_connections if shares else 0,
        max_relay_bandwidth=math.floor(upload * sharing.max_upload_share) if shares else 0,
        can_act_as_turn=shares and nat_type in _TURN_NATS and not on_battery and not mobile,
        can_store_messages=shares and not mobile,
        nat_type=nat_type,
        battery_status=battery,
        availability=availability,
    )


async def keep_advertising(
    host: NodeHost,
    read_capabilities: Callable[[], DeviceCapabilities],
    *,
    advertiser: Advertiser | None = None,
    reading_interval: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> None:
    """Publish `host`'s capabilities and keep them fresh until cancelled (CAP-3.3, CAP-3.4).

    Reads `read_capabilities()` every `reading_interval` seconds, feeds the
    `advertiser` (default: `Advertiser()`, TTL 30 min, refresh at half) and
    stores every advertisement it asks for through
    `NodeHost.advertise_capabilities`.
    """
    if not reading_interval > 0:
        raise ValueError("reading_interval must be positive")
    advertiser = advertiser or Advertiser()
    next_reading = clock()
    while True:
        now = clock()
        if now >= next_reading:
            advertiser.update(read_capabilities(), now=now)
            next_reading = now + reading_interval
        advertiser.on_timer(now=now)
        action = advertiser.next_action()
        if action is not None:
            await host.advertise_capabilities(action.capabilities, ttl=action.ttl)
            continue
        due = advertiser.next_deadline()
        wake = next_reading if due is None else min(due, next_reading)
        await anyio.sleep(max(0.0, wake - clock()))


@dataclass(frozen=True, slots=True)
class BandwidthMeasurement:
    """What `measure_bandwidth` saw: bytes/s carried each way over the stream channel."""

    bytes_per_second: int  #: payload bytes delivered per second in each direction
    payload_bytes: int  #: echoed payload bytes in total
    seconds: float
    pings: int
    failures: int


async def measure_bandwidth(
    host: NodeHost,
    peer: Address,
    *,
    duration: float = 1.0,
    payload_size: int = 60_000,
    in_flight: int = 4,
    clock: Callable[[], float] | None = None,
) -> BandwidthMeasurement:
    """Probe the path to `peer` with stream PINGs of `payload_size` bytes (MSG-2.1).

    Each PONG echoes its payload, so every ping moves the payload once each way
    and the rate measured is that of the slower direction: a probe against a
    peer whose link is faster than ours measures our own. `in_flight` pings are
    kept outstanding so the link, not the round trip, is the bottleneck. The
    result feeds `detect_capabilities(upload_bandwidth=..., download_bandwidth=...)`.
    """
    if duration <= 0 or payload_size < 1 or in_flight < 1:
        raise ValueError("duration, payload_size and in_flight must be positive")
    now = clock or anyio.current_time
    payload = bytes(payload_size)
    delivered = 0
    pings = failures = 0
    start = now()
    deadline = start + duration

    async def worker() -> None:
        nonlocal delivered, pings, failures
        while now() < deadline:
            outcome = await host.ping(peer, channel=Channel.STREAM, payload=payload)
            pings += 1
            if isinstance(outcome, PongReceived) and outcome.payload_size == payload_size:
                delivered += payload_size
            else:
                failures += 1

    async with anyio.create_task_group() as tg:
        for _ in range(in_flight):
            tg.start_soon(worker)
    elapsed = now() - start
    return BandwidthMeasurement(
        bytes_per_second=int(delivered / elapsed) if elapsed > 0 else 0,
        payload_bytes=delivered,
        seconds=elapsed,
        pings=pings,
        failures=failures,
    )


#: Bandwidth a node advertises when nothing was measured, bytes/s each way (1 MB/s:
#: a modest broadband line; `detect_capabilities` takes a measurement when there is one).
UNMEASURED_BANDWIDTH: Final = 1_000_000
#: Seconds before a publication no peer accepted is tried again.
ADVERTISE_RETRY: Final = 5.0


def machine_reader(
    *,
    server: bool = False,
    nat_type: NatType = NatType.UNKNOWN,
    bandwidth: float = UNMEASURED_BANDWIDTH,
    sharing: CapacitySharingConfig = DEFAULT_SHARING,
) -> Callable[[], DeviceCapabilities]:
    """A `read_capabilities` for `advertise_by_default`: this machine, read afresh each
    time (battery and power change; the bandwidth and NAT type are the caller's)."""

    def read() -> DeviceCapabilities:
        return detect_capabilities(
            upload_bandwidth=bandwidth,
            download_bandwidth=bandwidth,
            nat_type=nat_type,
            sharing=sharing,
            server=server,
        )

    return read


async def advertise_by_default(
    host: NodeHost,
    read_capabilities: Callable[[], DeviceCapabilities],
    *,
    reading_interval: float = 60.0,
    retry: float = ADVERTISE_RETRY,
    clock: Callable[[], float] = time.time,
) -> None:
    """What every client and node runs unless told not to (CAP-3.3, CAP-3.4).

    `keep_advertising`'s schedule (re-read every `reading_interval`, publish
    on a change that matters, refresh at half the TTL), except that a
    publication no peer accepted — a node that has not joined the DHT yet —
    is tried again after `retry` seconds instead of at the next refresh.
    """
    if not reading_interval > 0 or not retry > 0:
        raise ValueError("reading_interval and retry must be positive")
    advertiser = Advertiser()
    next_reading = clock()
    while True:
        now = clock()
        if now >= next_reading:
            advertiser.update(read_capabilities(), now=now)
            next_reading = now + reading_interval
        advertiser.on_timer(now=now)
        action = advertiser.next_action()
        if action is not None:
            outcome = await host.advertise_capabilities(action.capabilities, ttl=action.ttl)
            if outcome.accepted == 0:
                await anyio.sleep(retry)
                advertiser = Advertiser()  # nothing stored: due again at once
                next_reading = clock()
            continue
        due = advertiser.next_deadline()
        wake = next_reading if due is None else min(due, next_reading)
        await anyio.sleep(max(0.0, wake - clock()))
