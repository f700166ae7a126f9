"""Generate `datasets/device_population.csv`: a synthetic population of Rail Gun devices.

Every row is one device's `DeviceCapabilities` (CAP-1.1), in the Python field
names, plus the modelling columns it was drawn from. The population is
calibrated to published figures (the datasheet in `datasets/README.md` lists
them and cites each source in full under "References") and is otherwise a set
of stated modelling assumptions, all in this file:

* **Device classes and countries** (assumption): fixed counts per class
  (`CLASS_COUNTS`), each class split equally between US, DE and BR.
* **Bandwidth** (calibrated): per country, a two-piece log-normal through the
  M-Lab NDT p10, p50 and p90 (CC0; `MLAB_MBPS`): log-normal below the median
  with the sigma that puts p10 in place, log-normal above it with the sigma
  that puts p90 in place. Devices on fixed access (desktops, laptops, phones
  on Wi-Fi) draw from it as is; phones on cellular draw from the same shape
  with the median scaled by Ookla's global mobile/fixed median ratio
  (`MOBILE_RATIO`); servers draw from an assumed data-centre distribution.
  Download and upload are tied by a Gaussian copula (`UP_DOWN_CORRELATION`).
* **NAT** (assumption calibrated to targets): a measured NAT type per device
  from per-access mixes (`NAT_MIX`), carrier-grade NAT (`behind_cgn`) for most
  cellular devices, and a pairwise direct-connection success matrix
  (`DIRECT_SUCCESS`) such that a random pair connects directly with
  probability about 0.70 (DCUtR, Trautwein et al. 2025) and 0.15..0.30 of
  pairs need a relay (WebRTC in production).
* **Availability and battery** (assumption after Android Doze / App Standby
  and the FLASH trace): `AVAILABILITY_MIX`, `PLUGGED_IN`, `BATTERY_BETA`.
* **What a device offers** follows the reference detection policy,
  `railgun_ref.drivers.capabilities.detect_capabilities`, from synthetic
  machine readings and a sharing config (`SHARING_ENABLED`): relay bandwidth
  half the upload, TURN only behind an open or full-cone NAT and on mains,
  no hosting role for phones.

Sampling is stratified, so a few thousand rows hit the targets closely: every
(class, country) stratum takes its bandwidth quantiles from a Latin hypercube
(one draw per 1/n slice of probability), and categorical columns are allotted
in exact proportions (largest remainder) and then shuffled. All randomness
comes from one `numpy.random.Generator` seeded with `SEED`; the same seed and
library versions give the same file byte for byte.

Usage (from the repository root)::

    .venv/bin/python datasets/generate_device_population.py            # write the CSV
    .venv/bin/python datasets/generate_device_population.py --check    # compare, don't write
    .venv/bin/python datasets/generate_device_population.py --summary  # achieved marginals
"""

import argparse
import csv
import hashlib
import io
import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.random import Generator
from scipy import optimize, stats

from railgun_ref.capacity.nat import NatType, advertised_nat_type
from railgun_ref.capacity.sharing import CapacitySharingConfig
from railgun_ref.capacity.types import Availability, DeviceCapabilities, DeviceClass
from railgun_ref.drivers.capabilities import MachineReadings, MobileNetwork, detect_capabilities

#: The seed the committed file was generated with.
SEED: Final = 20241001
#: Where the committed file lives.
OUTPUT: Final = Path(__file__).resolve().parent / "device_population.csv"

COUNTRIES: Final = ("US", "DE", "BR")

#: Devices per class (assumption): a messenger's users, 55 % of them on phones.
#: Each count is a multiple of 3, so every class splits equally between the countries.
CLASS_COUNTS: Final[Mapping[DeviceClass, int]] = {
    DeviceClass.SERVER: 60,
    DeviceClass.DESKTOP_POWERFUL: 240,
    DeviceClass.DESKTOP_STANDARD: 450,
    DeviceClass.LAPTOP_PLUGGED: 360,
    DeviceClass.LAPTOP_BATTERY: 240,
    DeviceClass.MOBILE_WIFI: 900,
    DeviceClass.MOBILE_CELLULAR: 750,
}

#: How each class reaches the Internet: ``fixed`` broadband (Wi-Fi included),
#: ``cellular``, or a ``datacenter`` (assumption: a `server` is a VPS or a rented machine).
ACCESS: Final[Mapping[DeviceClass, str]] = {
    DeviceClass.SERVER: "datacenter",
    DeviceClass.DESKTOP_POWERFUL: "fixed",
    DeviceClass.DESKTOP_STANDARD: "fixed",
    DeviceClass.LAPTOP_PLUGGED: "fixed",
    DeviceClass.LAPTOP_BATTERY: "fixed",
    DeviceClass.MOBILE_WIFI: "fixed",
    DeviceClass.MOBILE_CELLULAR: "cellular",
}

# ---------------------------------------------------------------- bandwidth

#: M-Lab NDT download/upload throughput percentiles (p10, p50, p90), Mbps, CC0. From
#: github.com/m-lab/iqb data/us_2024_10.json, data/de_2024_10.json, data/br_2025_10.json
#: (commit 2e0bd719e502a00a1d280c0631131eb3ecfc7c1f), rounded to 0.01 Mbps.
MLAB_MBPS: Final[Mapping[str, Mapping[str, tuple[float, float, float]]]] = {
    "US": {"download": (7.63, 96.35, 474.19), "upload": (1.01, 20.96, 224.34)},
    "DE": {"download": (3.43, 45.27, 248.62), "upload": (0.20, 17.19, 53.17)},
    "BR": {"download": (5.02, 71.75, 400.04), "upload": (0.32, 38.81, 232.91)},
}
#: Ookla Speedtest Global Index, Sep 2020 global medians, Mbps: mobile 35.96 down / 11.22 up,
#: fixed 85.73 down / 45.74 up. Cellular medians are the M-Lab medians times these (derived).
MOBILE_RATIO: Final[Mapping[str, float]] = {"download": 35.96 / 85.73, "upload": 11.22 / 45.74}
#: Servers (assumption, not calibrated): log-normal, median 500 Mbps, sigma 0.5, both ways.
SERVER_MEDIAN_MBPS: Final = 500.0
SERVER_SIGMA: Final = 0.5
#: Draws are clipped to this range, Mbps: NDT's p1 is about 0.05 Mbps and a gigabit line
#: tops out near 1000 (the two-piece fit's upper tail is heavier than NDT's p99);
#: servers may reach 10 Gbps.
MIN_MBPS: Final = 0.05
MAX_MBPS: Final = 1000.0
MAX_SERVER_MBPS: Final = 10_000.0
#: Gaussian-copula correlation of a device's log download and log upload (assumption:
#: plans are sold in tiers, so a fast downlink usually comes with a fast uplink).
UP_DOWN_CORRELATION: Final = 0.7
#: Bytes per second in one Mbps (decimal, as CAP-2.3 counts it).
BYTES_PER_MBPS: Final = 125_000

_Z90: Final = float(stats.norm.ppf(0.9))


def split_lognormal(percentiles: tuple[float, float, float]) -> tuple[float, float, float]:
    """(median, sigma below, sigma above) of the two-piece log-normal through p10, p50, p90."""
    p10, p50, p90 = percentiles
    return p50, math.log(p50 / p10) / _Z90, math.log(p90 / p50) / _Z90


def mbps_at(z: np.ndarray, median: float, sigma_low: float, sigma_high: float) -> np.ndarray:
    """The two-piece log-normal's quantile at standard-normal quantile `z`, Mbps."""
    sigma = np.where(z < 0, sigma_low, sigma_high)
    return np.asarray(median * np.exp(sigma * z))


def bandwidth_model(
    device_class: DeviceClass, country: str, direction: str
) -> tuple[float, float, float]:
    """(median Mbps, sigma below, sigma above) a device of this class and country draws from."""
    access = ACCESS[device_class]
    if access == "datacenter":
        return SERVER_MEDIAN_MBPS, SERVER_SIGMA, SERVER_SIGMA
    median, low, high = split_lognormal(MLAB_MBPS[country][direction])
    if access == "cellular":
        median *= MOBILE_RATIO[direction]
    return median, low, high


def model_cdf(mbps: float, models: Sequence[tuple[float, float, float]]) -> float:
    """P(bandwidth <= mbps) under an equal mixture of two-piece log-normals (unclipped)."""
    total = 0.0
    for median, low, high in models:
        sigma = low if mbps < median else high
        total += float(stats.norm.cdf(math.log(mbps / median) / sigma))
    return total / len(models)


def model_quantile(q: float, models: Sequence[tuple[float, float, float]]) -> float:
    """The q-quantile (Mbps) of an equal mixture of two-piece log-normals."""
    return float(optimize.brentq(lambda x: model_cdf(x, models) - q, 1e-6, 1e6, xtol=1e-9))


# ---------------------------------------------------------------------- NAT

#: Measured NAT type mixes per situation (assumption). Values are what the RFC 5780
#: classifier (`railgun_ref.capacity.nat`) would report; a device advertises ``udp-blocked``
#: as ``unknown`` (`advertised_nat_type`). A CGN conforming to RFC 6888 maps
#: endpoint-independently (port-restricted behind its filter); the rest map per destination.
_O, _F, _R, _P, _S, _U, _B = (
    NatType.OPEN,
    NatType.FULL_CONE,
    NatType.RESTRICTED,
    NatType.PORT_RESTRICTED,
    NatType.SYMMETRIC,
    NatType.UNKNOWN,
    NatType.UDP_BLOCKED,
)
#: The mixes: (share of the class group, behind a CGN, {measured NAT type: share}).
NAT_MIX: Final[Mapping[str, tuple[tuple[float, bool, Mapping[NatType, float]], ...]]] = {
    # open: a public address or a port mapped by UPnP/PCP; port-restricted also covers a
    # public address behind a stateful firewall.
    "datacenter": ((1.0, False, {_O: 0.80, _F: 0.05, _P: 0.15}),),
    "fixed": (
        (0.90, False, {_O: 0.20, _F: 0.18, _R: 0.15, _P: 0.33, _S: 0.06, _U: 0.05, _B: 0.03}),
        (0.10, True, {_P: 0.65, _S: 0.30, _U: 0.05}),
    ),
    # Phones on Wi-Fi: home routers, plus hotel, campus and office networks.
    "mobile-wifi": (
        (0.85, False, {_O: 0.12, _F: 0.17, _R: 0.16, _P: 0.36, _S: 0.10, _U: 0.05, _B: 0.04}),
        (0.15, True, {_P: 0.65, _S: 0.30, _U: 0.05}),
    ),
    # Cellular: >90 % of cellular ASes deploy CGN (Richter et al., IMC 2016, secondary).
    "cellular": (
        (0.92, True, {_P: 0.65, _S: 0.30, _U: 0.05}),
        (0.08, False, {_O: 0.20, _F: 0.10, _R: 0.20, _P: 0.50}),
    ),
}

#: P(a direct UDP connection between two devices succeeds), by their measured NAT types
#: (assumption). Pairs of cone NATs punch through (Ford et al. 2005: 82 % of NATs support
#: UDP hole punching; Halkes & Pouwelse 2010: >80 % of attempts between such peers
#: succeed); an address-restricted cone also reaches a symmetric NAT, a port-restricted
#: one rarely does (port prediction), two symmetric NATs almost never (NATCracker,
#: INFOCOM 2009: traversal depends on the pair). ``unknown`` is a mixture; a device whose
#: UDP is blocked has no direct UDP path. The upper triangle; the matrix is symmetric.
_SUCCESS_ROWS: Final = {
    _O: {_O: 1.00, _F: 1.00, _R: 0.98, _P: 0.98, _S: 0.95, _U: 0.90, _B: 0.0},
    _F: {_F: 0.95, _R: 0.92, _P: 0.92, _S: 0.90, _U: 0.80, _B: 0.0},
    _R: {_R: 0.85, _P: 0.85, _S: 0.75, _U: 0.60, _B: 0.0},
    _P: {_P: 0.82, _S: 0.15, _U: 0.50, _B: 0.0},
    _S: {_S: 0.05, _U: 0.30, _B: 0.0},
    _U: {_U: 0.45, _B: 0.0},
    _B: {_B: 0.0},
}
DIRECT_SUCCESS: Final[Mapping[tuple[NatType, NatType], float]] = {
    pair: p for a, row in _SUCCESS_ROWS.items() for b, p in row.items() for pair in ((a, b), (b, a))
}


def pairwise_direct_success(nat_types: Iterable[NatType | str]) -> float:
    """P(direct success) for two distinct devices drawn at random from `nat_types`."""
    counts = Counter(NatType(t) for t in nat_types)
    n = sum(counts.values())
    if n < 2:
        raise ValueError("need at least two devices")
    total = 0.0
    for a, count_a in counts.items():
        for b, count_b in counts.items():
            pairs = count_a * (count_b - 1) if a == b else count_a * count_b
            total += pairs * DIRECT_SUCCESS[a, b]
    return total / (n * (n - 1))


# ------------------------------------------------- availability and battery

#: Availability per class (assumption after Android's Doze / App Standby documentation and
#: the FLASH smartphone trace, Yang et al., WWW 2021): desktops are on always or while used;
#: a phone in Doze / App Standby is reachable in short windows (``scheduled``) or while its
#: user has the app open (``when-active``).
AVAILABILITY_MIX: Final[Mapping[DeviceClass, Mapping[Availability, float]]] = {
    DeviceClass.SERVER: {Availability.ALWAYS: 1.0},
    DeviceClass.DESKTOP_POWERFUL: {Availability.ALWAYS: 0.6, Availability.WHEN_ACTIVE: 0.4},
    DeviceClass.DESKTOP_STANDARD: {Availability.ALWAYS: 0.3, Availability.WHEN_ACTIVE: 0.7},
    DeviceClass.LAPTOP_PLUGGED: {Availability.WHEN_ACTIVE: 0.9, Availability.SCHEDULED: 0.1},
    DeviceClass.LAPTOP_BATTERY: {Availability.WHEN_ACTIVE: 0.9, Availability.SCHEDULED: 0.1},
    DeviceClass.MOBILE_WIFI: {Availability.WHEN_ACTIVE: 0.6, Availability.SCHEDULED: 0.4},
    DeviceClass.MOBILE_CELLULAR: {Availability.WHEN_ACTIVE: 0.7, Availability.SCHEDULED: 0.3},
}
#: Share of a battery class on external power at the snapshot (assumption; the class
#: decides it for laptops; phones on Wi-Fi charge at night, FLASH-like).
PLUGGED_IN: Final[Mapping[DeviceClass, float]] = {
    DeviceClass.LAPTOP_PLUGGED: 1.0,
    DeviceClass.LAPTOP_BATTERY: 0.0,
    DeviceClass.MOBILE_WIFI: 0.35,
    DeviceClass.MOBILE_CELLULAR: 0.10,
}
#: Battery level ~ 100 x Beta(a, b) (assumption): high on mains, spread out on battery.
BATTERY_BETA: Final[Mapping[bool, tuple[float, float]]] = {True: (6.0, 1.5), False: (3.0, 2.0)}
#: Share of battery devices that report no level (their batteryStatus is absent, CAP-4.3).
BATTERY_UNREPORTED: Final = 0.05
#: Share of each class that shares capacity at all (assumption; metered links share less).
SHARING_ENABLED: Final[Mapping[DeviceClass, float]] = {
    DeviceClass.SERVER: 1.0,
    DeviceClass.DESKTOP_POWERFUL: 0.9,
    DeviceClass.DESKTOP_STANDARD: 0.9,
    DeviceClass.LAPTOP_PLUGGED: 0.9,
    DeviceClass.LAPTOP_BATTERY: 0.9,
    DeviceClass.MOBILE_WIFI: 0.8,
    DeviceClass.MOBILE_CELLULAR: 0.5,
}
#: maxRelayConnections offered (default 20, CAP-5.1; assumption: server operators raise it).
RELAY_CONNECTIONS: Final = 20
SERVER_RELAY_CONNECTIONS: Final = 100

#: Synthetic machine readings that `classify_device` maps onto each non-phone class.
_DESKTOP_READINGS: Final = {
    DeviceClass.DESKTOP_POWERFUL: (16, 32 * 2**30),
    DeviceClass.DESKTOP_STANDARD: (4, 8 * 2**30),
    DeviceClass.SERVER: (8, 16 * 2**30),
}
_MOBILE_NETWORK: Final[Mapping[DeviceClass, MobileNetwork]] = {
    DeviceClass.MOBILE_WIFI: "wifi",
    DeviceClass.MOBILE_CELLULAR: "cellular",
}

#: The CSV's columns, in order: the row id and modelling columns, then CAP-1.1's fields
#: (batteryStatus flattened into two columns, empty when absent), then what the NAT model
#: knows beyond the advertised type.
COLUMNS: Final = (
    "device",
    "country",
    "access",
    "device_class",
    "upload_bandwidth",
    "download_bandwidth",
    "max_relay_connections",
    "max_relay_bandwidth",
    "can_act_as_turn",
    "can_store_messages",
    "nat_type",
    "battery_level_percent",
    "battery_plugged_in",
    "availability",
    "measured_nat_type",
    "behind_cgn",
)


# --------------------------------------------------------------- sampling


def allot(rng: Generator, n: int, shares: Mapping[Any, float]) -> list[Any]:
    """`n` labels in the exact proportions `shares` (largest remainder), shuffled."""
    labels = list(shares)
    total = sum(shares.values())
    quotas = [n * shares[label] / total for label in labels]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(labels)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    out = [label for label, count in zip(labels, counts, strict=True) for _ in range(count)]
    return [out[i] for i in rng.permutation(n)]


def latin_hypercube_z(rng: Generator, n: int) -> np.ndarray:
    """`n` standard-normal quantiles, one from each 1/n slice of probability, shuffled."""
    u = (rng.permutation(n) + rng.random(n)) / n
    return np.asarray(stats.norm.ppf(u))


def correlated_z(rng: Generator, z: np.ndarray, rho: float) -> np.ndarray:
    """Latin-hypercube quantiles whose ranks follow a Gaussian copula with `z` (correlation rho)."""
    n = len(z)
    w = rho * z + math.sqrt(1 - rho**2) * rng.standard_normal(n)
    ranks = np.argsort(np.argsort(w, kind="stable"), kind="stable")
    return np.asarray(stats.norm.ppf((ranks + rng.random(n)) / n))


def _bytes_per_second(mbps: float, maximum: float) -> int:
    return math.floor(min(max(mbps, MIN_MBPS), maximum) * BYTES_PER_MBPS)


def _nat_draws(rng: Generator, device_class: DeviceClass, n: int) -> list[tuple[NatType, bool]]:
    access = ACCESS[device_class]
    group = "mobile-wifi" if device_class is DeviceClass.MOBILE_WIFI else access
    shares: dict[tuple[NatType, bool], float] = {}
    for group_share, cgn, mix in NAT_MIX[group]:
        for nat_type, share in mix.items():
            shares[nat_type, cgn] = shares.get((nat_type, cgn), 0.0) + group_share * share
    return allot(rng, n, shares)


def _readings(
    rng: Generator, device_class: DeviceClass, plugged: bool, reported: bool
) -> MachineReadings:
    if device_class in _DESKTOP_READINGS:
        cores, memory = _DESKTOP_READINGS[device_class]
        return MachineReadings(logical_cores=cores, memory_bytes=memory, battery_present=False)
    a, b = BATTERY_BETA[plugged]
    level = float(round(100 * rng.beta(a, b)))
    return MachineReadings(
        logical_cores=8,
        memory_bytes=8 * 2**30,
        battery_present=True,
        battery_percent=level if reported else None,
        power_plugged=plugged,
    )


def generate(seed: int = SEED) -> list[dict[str, Any]]:
    """The population's rows (the CSV's columns), in file order."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for device_class, count in CLASS_COUNTS.items():
        countries = [c for c in COUNTRIES for _ in range(count // len(COUNTRIES))]
        bandwidth: dict[int, tuple[int, int]] = {}
        for country in COUNTRIES:
            members = [i for i, c in enumerate(countries) if c == country]
            z_down = latin_hypercube_z(rng, len(members))
            z_up = correlated_z(rng, z_down, UP_DOWN_CORRELATION)
            top = MAX_SERVER_MBPS if device_class is DeviceClass.SERVER else MAX_MBPS
            down = mbps_at(z_down, *bandwidth_model(device_class, country, "download"))
            up = mbps_at(z_up, *bandwidth_model(device_class, country, "upload"))
            for i, d, u in zip(members, down, up, strict=True):
                bandwidth[i] = (_bytes_per_second(float(u), top), _bytes_per_second(float(d), top))
        nats = _nat_draws(rng, device_class, count)
        availability = allot(rng, count, AVAILABILITY_MIX[device_class])
        sharing = allot(
            rng,
            count,
            {True: SHARING_ENABLED[device_class], False: 1.0 - SHARING_ENABLED[device_class]},
        )
        plugged = allot(
            rng,
            count,
            {
                True: PLUGGED_IN.get(device_class, 0.0),
                False: 1.0 - PLUGGED_IN.get(device_class, 0.0),
            },
        )
        reported = allot(rng, count, {True: 1.0 - BATTERY_UNREPORTED, False: BATTERY_UNREPORTED})
        for i in range(count):
            upload, download = bandwidth[i]
            measured, cgn = nats[i]
            connections = (
                SERVER_RELAY_CONNECTIONS
                if device_class is DeviceClass.SERVER
                else RELAY_CONNECTIONS
            )
            caps = detect_capabilities(
                upload_bandwidth=upload,
                download_bandwidth=download,
                nat_type=advertised_nat_type(measured),
                readings=_readings(rng, device_class, plugged[i], reported[i]),
                sharing=CapacitySharingConfig(
                    enabled=sharing[i], max_relay_connections=connections
                ),
                availability=availability[i],
                server=device_class is DeviceClass.SERVER,
                mobile_network=_MOBILE_NETWORK.get(device_class),
            )
            if caps.device_class is not device_class:
                raise AssertionError(
                    f"readings for {device_class} classified as {caps.device_class}"
                )
            rows.append(
                row_of(caps)
                | {
                    "country": countries[i],
                    "access": ACCESS[device_class],
                    "measured_nat_type": measured.value,
                    "behind_cgn": cgn,
                }
            )
    order = rng.permutation(len(rows))
    return [{"device": number} | rows[i] for number, i in enumerate(order)]


def row_of(caps: DeviceCapabilities) -> dict[str, Any]:
    """The CAP-1.1 columns of one row."""
    battery = caps.battery_status
    return {
        "device_class": caps.device_class.value,
        "upload_bandwidth": caps.upload_bandwidth,
        "download_bandwidth": caps.download_bandwidth,
        "max_relay_connections": caps.max_relay_connections,
        "max_relay_bandwidth": caps.max_relay_bandwidth,
        "can_act_as_turn": caps.can_act_as_turn,
        "can_store_messages": caps.can_store_messages,
        "nat_type": caps.nat_type.value,
        "battery_level_percent": None if battery is None else battery.level_percent,
        "battery_plugged_in": None if battery is None else battery.plugged_in,
        "availability": caps.availability.value,
    }


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_csv(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The CSV file's bytes: a header, then one line per row, ``\\n`` line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[column]) for column in COLUMNS])
    return buffer.getvalue().encode("utf-8")


# ---------------------------------------------------------------- summary


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The achieved marginals the datasheet reports (Mbps medians, shares)."""
    out: dict[str, Any] = {"rows": len(rows)}

    def median_mbps(selected: list[Mapping[str, Any]], column: str) -> float:
        return round(float(np.median([r[column] for r in selected])) / BYTES_PER_MBPS, 2)

    fixed = [r for r in rows if r["access"] == "fixed"]
    for country in COUNTRIES:
        mine = [r for r in fixed if r["country"] == country]
        out[f"fixed {country} download p50 Mbps"] = median_mbps(mine, "download_bandwidth")
        out[f"fixed {country} upload p50 Mbps"] = median_mbps(mine, "upload_bandwidth")
    for device_class in CLASS_COUNTS:
        mine = [r for r in rows if r["device_class"] == device_class.value]
        out[f"{device_class.value} download p50 Mbps"] = median_mbps(mine, "download_bandwidth")
        out[f"{device_class.value} upload p50 Mbps"] = median_mbps(mine, "upload_bandwidth")
    measured = [r["measured_nat_type"] for r in rows]
    for nat_type, count in sorted(Counter(measured).items()):
        out[f"measured NAT {nat_type}"] = round(count / len(rows), 3)
    cellular = [r for r in rows if r["access"] == "cellular"]
    out["cellular behind CGN"] = round(sum(r["behind_cgn"] for r in cellular) / len(cellular), 3)
    direct = pairwise_direct_success(NatType(t) for t in measured)
    out["random-pair direct success"] = round(direct, 3)
    out["random-pair relay needed"] = round(1 - direct, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare with the file, write nothing")
    parser.add_argument("--summary", action="store_true", help="print the achieved marginals")
    args = parser.parse_args(argv)
    rows = generate(args.seed)
    data = render_csv(rows)
    digest = hashlib.sha256(data).hexdigest()
    if args.summary:
        for name, value in summary(rows).items():
            print(f"{name}: {value}")
    if args.check:
        same = args.output.exists() and args.output.read_bytes() == data
        print(f"{args.output}: {'up to date' if same else 'DIFFERS'} (sha256 {digest})")
        return 0 if same else 1
    args.output.write_bytes(data)
    print(f"wrote {args.output}: {len(rows)} rows, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
