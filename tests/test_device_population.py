"""datasets/device_population.csv: reproducible, valid, and calibrated as its datasheet says."""

import csv
import hashlib
import importlib.util
import math
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import scipy

from railgun_ref.capacity.nat import NatType, advertised_nat_type
from railgun_ref.capacity.types import DeviceCapabilities, DeviceClass

DATASETS = Path(__file__).parent.parent / "datasets"
CSV_PATH = DATASETS / "device_population.csv"
MBPS = 125_000  # bytes/s


def load_generator() -> ModuleType:
    path = DATASETS / "generate_device_population.py"
    spec = importlib.util.spec_from_file_location("generate_device_population", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = load_generator()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with CSV_PATH.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def mbps(selected: list[dict[str, str]], column: str) -> np.ndarray:
    return np.array([int(r[column]) for r in selected]) / MBPS


def where(rows: list[dict[str, str]], **conditions: str) -> list[dict[str, str]]:
    return [r for r in rows if all(r[k] == v for k, v in conditions.items())]


def json_form(row: dict[str, str]) -> dict[str, Any]:
    """The CAP-1.1 JSON form of a CSV row, built without the lab helpers."""
    out: dict[str, Any] = {
        "deviceClass": row["device_class"],
        "uploadBandwidth": int(row["upload_bandwidth"]),
        "downloadBandwidth": int(row["download_bandwidth"]),
        "maxRelayConnections": int(row["max_relay_connections"]),
        "maxRelayBandwidth": int(row["max_relay_bandwidth"]),
        "canActAsTurn": {"true": True, "false": False}[row["can_act_as_turn"]],
        "canStoreMessages": {"true": True, "false": False}[row["can_store_messages"]],
        "natType": row["nat_type"],
        "availability": row["availability"],
    }
    if row["battery_level_percent"] or row["battery_plugged_in"]:
        out["batteryStatus"] = {
            "levelPercent": int(row["battery_level_percent"]),
            "pluggedIn": {"true": True, "false": False}[row["battery_plugged_in"]],
        }
    return out


# ------------------------------------------------------------ provenance


# NEP 19: numpy keeps a seeded Generator's bit stream but may change how its
# distributions use it between feature releases; byte equality is promised only
# with the numpy/scipy releases the file was generated with (the datasheet names them).
GENERATED_WITH = ("2.4", "1.17")


@pytest.mark.skipif(
    (".".join(np.__version__.split(".")[:2]), ".".join(scipy.__version__.split(".")[:2]))
    != GENERATED_WITH,
    reason="byte-exact regeneration is pinned to numpy 2.4 / scipy 1.17",
)
def test_regenerating_with_the_seed_reproduces_the_file_byte_for_byte() -> None:
    assert gen.render_csv(gen.generate(gen.SEED)) == CSV_PATH.read_bytes()


def test_another_seed_gives_another_population() -> None:
    assert gen.render_csv(gen.generate(gen.SEED + 1)) != CSV_PATH.read_bytes()


def test_the_datasheet_states_the_files_checksum_and_size(rows: list[dict[str, str]]) -> None:
    sheet = (DATASETS / "README.md").read_text(encoding="utf-8")
    section = sheet[sheet.index("## `device_population.csv`") :]
    digest = hashlib.sha256(CSV_PATH.read_bytes()).hexdigest()
    assert f"`{digest}`" in section
    assert f"{len(rows):,} rows" in section
    assert f"seed {gen.SEED}" in section


# ------------------------------------------------------------- validity


def test_there_are_a_few_thousand_rows_numbered_in_order(rows: list[dict[str, str]]) -> None:
    assert 2000 <= len(rows) <= 10_000
    assert [int(r["device"]) for r in rows] == list(range(len(rows)))
    assert tuple(rows[0]) == gen.COLUMNS


def test_every_row_validates_as_device_capabilities(rows: list[dict[str, str]]) -> None:
    for row in rows:
        capabilities = DeviceCapabilities.from_json(json_form(row))
        assert capabilities.to_json() == json_form(row)


def test_class_counts_are_the_stated_assumption(rows: list[dict[str, str]]) -> None:
    counts = Counter(r["device_class"] for r in rows)
    assert counts == {c.value: n for c, n in gen.CLASS_COUNTS.items()}
    for device_class in DeviceClass:
        countries = Counter(r["country"] for r in where(rows, device_class=device_class.value))
        assert len(set(countries.values())) == 1  # an equal split between the countries


# ------------------------------------------------------------ bandwidth


@pytest.mark.parametrize("country", ["US", "DE", "BR"])
@pytest.mark.parametrize("direction", ["download", "upload"])
def test_fixed_access_quantiles_match_mlab(
    rows: list[dict[str, str]], country: str, direction: str
) -> None:
    # M-Lab NDT (CC0) p10 / p50 / p90 per country (github.com/m-lab/iqb `data/`).
    values = mbps(where(rows, access="fixed", country=country), f"{direction}_bandwidth")
    p10, p50, p90 = gen.MLAB_MBPS[country][direction]
    assert np.median(values) == pytest.approx(p50, rel=0.02)
    assert np.percentile(values, 10) == pytest.approx(p10, rel=0.05)
    assert np.percentile(values, 90) == pytest.approx(p90, rel=0.05)


def test_calibration_medians_are_the_published_ones() -> None:
    # The same M-Lab IQB files as published, rounded: US Oct 2024, DE Oct 2024, BR Oct 2025.
    assert gen.MLAB_MBPS["US"]["download"] == pytest.approx((7.6, 96.4, 474), abs=0.5)
    assert gen.MLAB_MBPS["US"]["upload"] == pytest.approx((1.0, 21.0, 224), abs=0.5)
    assert gen.MLAB_MBPS["DE"]["download"][1] == pytest.approx(45.3, abs=0.05)
    assert gen.MLAB_MBPS["DE"]["upload"][1] == pytest.approx(17.2, abs=0.05)
    assert gen.MLAB_MBPS["BR"]["download"][1] == pytest.approx(71.7, abs=0.1)
    assert gen.MLAB_MBPS["BR"]["upload"][1] == pytest.approx(38.8, abs=0.05)


@pytest.mark.parametrize("device_class", list(DeviceClass))
@pytest.mark.parametrize("direction", ["download", "upload"])
def test_median_per_class_matches_its_model(
    rows: list[dict[str, str]], device_class: DeviceClass, direction: str
) -> None:
    models = [gen.bandwidth_model(device_class, c, direction) for c in gen.COUNTRIES]
    target = gen.model_quantile(0.5, models)
    values = mbps(where(rows, device_class=device_class.value), f"{direction}_bandwidth")
    assert np.median(values) == pytest.approx(target, rel=0.05)


def test_cellular_is_slower_than_fixed_by_the_ookla_ratio(rows: list[dict[str, str]]) -> None:
    # Ookla Sep 2020 global medians: mobile 35.96 / 11.22, fixed 85.73 / 45.74 Mbps.
    for direction, ratio in (("download", 35.96 / 85.73), ("upload", 11.22 / 45.74)):
        for country in gen.COUNTRIES:
            cellular = mbps(
                where(rows, access="cellular", country=country), direction + "_bandwidth"
            )
            fixed = mbps(where(rows, access="fixed", country=country), direction + "_bandwidth")
            assert np.median(cellular) / np.median(fixed) == pytest.approx(ratio, rel=0.05)


def test_download_and_upload_are_correlated(rows: list[dict[str, str]]) -> None:
    down = np.log(mbps(rows, "download_bandwidth"))
    up = np.log(mbps(rows, "upload_bandwidth"))
    assert np.corrcoef(down, up)[0, 1] > 0.5


def test_bandwidths_stay_within_the_clip(rows: list[dict[str, str]]) -> None:
    for row in rows:
        top = gen.MAX_SERVER_MBPS if row["device_class"] == "server" else gen.MAX_MBPS
        for column in ("upload_bandwidth", "download_bandwidth"):
            assert gen.MIN_MBPS * MBPS - 1 <= int(row[column]) <= top * MBPS


# ------------------------------------------------------------------ NAT


def test_advertised_nat_type_is_the_measured_one_with_udp_blocked_as_unknown(
    rows: list[dict[str, str]],
) -> None:
    for row in rows:
        assert row["nat_type"] == advertised_nat_type(NatType(row["measured_nat_type"])).value
    assert not where(rows, nat_type="udp-blocked")


def test_nat_fractions_are_the_stated_mix(rows: list[dict[str, str]]) -> None:
    expected: Counter[str] = Counter()
    for device_class, count in gen.CLASS_COUNTS.items():
        group = (
            "mobile-wifi" if device_class is DeviceClass.MOBILE_WIFI else gen.ACCESS[device_class]
        )
        for share, _cgn, mix in gen.NAT_MIX[group]:
            for nat_type, part in mix.items():
                expected[nat_type.value] += count * share * part
    got = Counter(r["measured_nat_type"] for r in rows)
    for nat_type, count in expected.items():
        assert got[nat_type] / len(rows) == pytest.approx(count / len(rows), abs=0.005)


def test_mobile_nodes_are_mostly_behind_cgn_or_symmetric(rows: list[dict[str, str]]) -> None:
    cellular = where(rows, access="cellular")
    cgn = sum(r["behind_cgn"] == "true" for r in cellular) / len(cellular)
    assert cgn == pytest.approx(0.92, abs=0.01)  # >90 % of cellular ASes run CGN (Richter 2016)
    phones = [r for r in rows if r["device_class"].startswith("mobile-")]
    hard = [r for r in phones if r["behind_cgn"] == "true" or r["measured_nat_type"] == "symmetric"]
    assert len(hard) / len(phones) > 0.5
    fixed = [
        r for r in rows if r["access"] == "fixed" and not r["device_class"].startswith("mobile")
    ]
    assert sum(r["behind_cgn"] == "true" for r in fixed) / len(fixed) < cgn


def test_the_success_matrix_is_symmetric_and_complete() -> None:
    for a in NatType:
        for b in NatType:
            assert gen.DIRECT_SUCCESS[a, b] == gen.DIRECT_SUCCESS[b, a]
            assert 0.0 <= gen.DIRECT_SUCCESS[a, b] <= 1.0
    assert gen.DIRECT_SUCCESS[NatType.OPEN, NatType.OPEN] == 1.0
    assert gen.DIRECT_SUCCESS[NatType.SYMMETRIC, NatType.SYMMETRIC] < 0.1
    assert all(gen.DIRECT_SUCCESS[NatType.UDP_BLOCKED, t] == 0.0 for t in NatType)


def test_random_pair_direct_success_is_about_seventy_percent(rows: list[dict[str, str]]) -> None:
    # DCUtR hole punching 70 % +- 7.1 % (Trautwein et al., arXiv:2510.27500, 2025);
    # 22-30 % of WebRTC calls needed TURN (callstats.io).
    direct = gen.pairwise_direct_success(r["measured_nat_type"] for r in rows)
    assert direct == pytest.approx(0.70, abs=0.05)
    assert 0.15 <= 1 - direct <= 0.30


def test_pairwise_success_counts_distinct_pairs_only() -> None:
    assert gen.pairwise_direct_success(["open", "udp-blocked"]) == 0.0
    assert gen.pairwise_direct_success(["symmetric", "open", "open"]) == pytest.approx(
        (2 * 0.95 + 2 * 0.95 + 2 * 1.0) / 6
    )
    with pytest.raises(ValueError):
        gen.pairwise_direct_success(["open"])


def test_pairwise_success_agrees_with_sampled_pairs(rows: list[dict[str, str]]) -> None:
    rng = np.random.default_rng(3)
    types = [NatType(r["measured_nat_type"]) for r in rows]
    pairs = [rng.choice(len(types), size=2, replace=False) for _ in range(20_000)]
    sampled = np.mean([gen.DIRECT_SUCCESS[types[a], types[b]] for a, b in pairs])
    assert sampled == pytest.approx(gen.pairwise_direct_success(types), abs=0.01)


# ------------------------------------------------- availability and battery


def test_availability_follows_the_device(rows: list[dict[str, str]]) -> None:
    assert {r["availability"] for r in where(rows, device_class="server")} == {"always"}
    for cls in ("desktop-powerful", "desktop-standard"):
        assert {r["availability"] for r in where(rows, device_class=cls)} == {
            "always",
            "when-active",
        }
    for cls in ("mobile-wifi", "mobile-cellular", "laptop-plugged", "laptop-battery"):
        assert {r["availability"] for r in where(rows, device_class=cls)} == {
            "when-active",
            "scheduled",
        }
    for device_class, mix in gen.AVAILABILITY_MIX.items():
        mine = where(rows, device_class=device_class.value)
        for value, share in mix.items():
            got = len(where(mine, availability=value.value)) / len(mine)
            assert got == pytest.approx(share, abs=0.01)


def test_battery_is_reported_by_battery_devices_only(rows: list[dict[str, str]]) -> None:
    for cls in ("server", "desktop-powerful", "desktop-standard"):
        assert all(r["battery_level_percent"] == "" for r in where(rows, device_class=cls))
    battery = [r for r in rows if r["device_class"].startswith(("laptop", "mobile"))]
    unreported = sum(r["battery_level_percent"] == "" for r in battery) / len(battery)
    assert unreported == pytest.approx(gen.BATTERY_UNREPORTED, abs=0.01)
    reported = [r for r in battery if r["battery_level_percent"]]
    assert all(0 <= int(r["battery_level_percent"]) <= 100 for r in reported)
    assert {r["battery_plugged_in"] for r in where(reported, device_class="laptop-plugged")} == {
        "true"
    }
    assert {r["battery_plugged_in"] for r in where(reported, device_class="laptop-battery")} == {
        "false"
    }
    for cls, share in (("mobile-wifi", 0.35), ("mobile-cellular", 0.10)):
        mine = where(reported, device_class=cls)
        got = len(where(mine, battery_plugged_in="true")) / len(mine)
        assert got == pytest.approx(share, abs=0.03)


# -------------------------------------------------- what devices offer


def test_what_a_device_offers_follows_the_detection_policy(rows: list[dict[str, str]]) -> None:
    for row in rows:
        capabilities = DeviceCapabilities.from_json(json_form(row))
        upload = capabilities.upload_bandwidth
        sharing = capabilities.max_relay_connections > 0
        expected_connections = 100 if row["device_class"] == "server" else 20
        assert capabilities.max_relay_connections in (0, expected_connections)
        assert capabilities.max_relay_bandwidth == (math.floor(upload * 0.5) if sharing else 0)
        phone = row["device_class"].startswith("mobile-")
        assert capabilities.can_store_messages == (sharing and not phone)
        turn_nat = capabilities.nat_type in (NatType.OPEN, NatType.FULL_CONE)
        on_mains = capabilities.battery_status is None or capabilities.battery_status.plugged_in
        if row["device_class"] == "laptop-battery":
            on_mains = False
        assert capabilities.can_act_as_turn == (sharing and turn_nat and on_mains and not phone)


def test_some_devices_of_every_class_can_host_and_phones_on_cellular_never(
    rows: list[dict[str, str]],
) -> None:
    def iter_caps(cls: str) -> Iterator[DeviceCapabilities]:
        for row in where(rows, device_class=cls):
            yield DeviceCapabilities.from_json(json_form(row))

    assert any(c.can_act_as_turn for c in iter_caps("server"))
    assert any(c.can_act_as_turn for c in iter_caps("laptop-plugged"))
    assert not any(c.can_act_as_turn for c in iter_caps("mobile-cellular"))
