"""Capacity helpers: the population as a table, scores and charts, the panel, live adverts."""

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from railgun_ref.capacity import (
    Availability,
    BatteryStatus,
    CapabilityDirectory,
    CapabilityError,
    DeviceCapabilities,
    DeviceClass,
    NatType,
    Role,
    encode_capabilities,
    is_eligible,
    rank_candidates,
    score,
    sign_advertisement,
)
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.dht.keys import KeyType
from railgun_ref.identity.keys import Identity
from railgun_ref.lab.capacity import (
    ADVERTISED_COLUMNS,
    CAPABILITY_COLUMNS,
    DEFAULT_CAPABILITIES,
    POPULATION_PATH,
    SCORE_COLUMNS,
    CapacityPanel,
    advertise_population,
    capabilities_from_row,
    capabilities_row,
    capacity_panel,
    describe_eligibility,
    eligibility_summary,
    eligible_column,
    fetch_advertisements,
    load_population,
    network_candidates,
    population_capabilities,
    ranking_frame,
    score_breakdown,
    score_breakdown_chart,
    score_distribution_chart,
    score_frame,
    score_histogram,
    selection_frame,
)
from railgun_ref.lab.network import LocalNetwork
from railgun_ref.node import NodeConfig

CSV_PATH = POPULATION_PATH
PHONE = DeviceCapabilities(
    device_class=DeviceClass.MOBILE_CELLULAR,
    upload_bandwidth=250_000,
    download_bandwidth=2_000_000,
    max_relay_connections=0,
    max_relay_bandwidth=0,
    can_act_as_turn=False,
    can_store_messages=False,
    nat_type=NatType.SYMMETRIC,
    battery_status=BatteryStatus(level_percent=40, plugged_in=False),
    availability=Availability.SCHEDULED,
)
SERVER = DeviceCapabilities(
    device_class=DeviceClass.SERVER,
    upload_bandwidth=50_000_000,
    download_bandwidth=50_000_000,
    max_relay_connections=100,
    max_relay_bandwidth=25_000_000,
    can_act_as_turn=True,
    can_store_messages=True,
    nat_type=NatType.OPEN,
    availability=Availability.ALWAYS,
)


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    return load_population()


@pytest.fixture(scope="module")
def scored(population: pd.DataFrame) -> pd.DataFrame:
    return score_frame(population)


def chart_values(chart: Any) -> pd.DataFrame:
    spec = chart.to_dict()
    return pd.concat([pd.DataFrame(v) for v in spec["datasets"].values()], ignore_index=True)


# ------------------------------------------------------------- population


def test_the_population_loads_with_typed_columns(population: pd.DataFrame) -> None:
    assert len(population) == 3000
    assert set(CAPABILITY_COLUMNS) <= set(population.columns)
    assert population["upload_bandwidth"].dtype == "int64"
    assert population["can_act_as_turn"].dtype == bool
    assert population["battery_level_percent"].dtype == "Int64"
    no_battery = population[population["device_class"] == "server"]
    assert no_battery["battery_level_percent"].isna().all()
    assert no_battery["battery_plugged_in"].isna().all()


def test_every_row_becomes_device_capabilities_and_back(population: pd.DataFrame) -> None:
    capabilities = population_capabilities(population)
    assert len(capabilities) == len(population)
    for (_, row), caps in zip(population.head(200).iterrows(), capabilities, strict=False):
        assert capabilities_from_row(capabilities_row(caps)) == caps
        assert capabilities_row(caps)["upload_bandwidth"] == row["upload_bandwidth"]
    assert {c.battery_status is None for c in capabilities} == {True, False}


def test_a_bad_row_is_refused_naming_the_field() -> None:
    row = capabilities_row(SERVER)
    with pytest.raises(CapabilityError, match="uploadBandwidth"):
        capabilities_from_row(row | {"upload_bandwidth": -1})
    with pytest.raises(ValueError, match="whole number"):
        capabilities_from_row(row | {"download_bandwidth": 1.5})
    with pytest.raises(ValueError, match="boolean"):
        capabilities_from_row(row | {"can_act_as_turn": "yes"})
    with pytest.raises(ValueError):
        capabilities_from_row(row | {"nat_type": "cone"})


def test_a_file_without_the_capability_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("device,device_class\n0,server\n")
    with pytest.raises(ValueError, match="missing columns"):
        load_population(path)


def test_a_flag_that_is_not_true_or_false_is_refused(tmp_path: Path) -> None:
    text = CSV_PATH.read_text(encoding="utf-8").splitlines()
    header, first = text[0], text[1].split(",")
    first[header.split(",").index("can_act_as_turn")] = "maybe"
    path = tmp_path / "p.csv"
    path.write_text("\n".join([header, ",".join(first)]) + "\n")
    with pytest.raises(ValueError, match="can_act_as_turn"):
        load_population(path)


# ---------------------------------------------------------------- scores


def test_score_frame_adds_the_breakdown_and_eligibility(
    population: pd.DataFrame, scored: pd.DataFrame
) -> None:
    assert list(scored.columns[: len(population.columns)]) == list(population.columns)
    parts = scored[list(SCORE_COLUMNS[:-1])].sum(axis=1)
    assert (parts - scored["score_total"]).abs().max() < 1e-9
    for (_, row), caps in zip(
        scored.head(300).iterrows(), population_capabilities(scored.head(300)), strict=True
    ):
        assert round(row["score_total"] * 1000) == score(caps).total
        for role in Role:
            assert row[eligible_column(role)] == is_eligible(caps, role)


def test_scoring_twice_replaces_the_columns(scored: pd.DataFrame) -> None:
    again = score_frame(scored)
    assert list(again.columns) == list(scored.columns)
    pd.testing.assert_frame_equal(again, scored)


def test_eligibility_summary_per_class(scored: pd.DataFrame) -> None:
    shares = eligibility_summary(scored)
    assert list(shares.columns) == [role.value for role in Role]
    assert shares.index[-1] == "all" and shares.index[0] == "server"
    assert (shares.loc["mobile-cellular"] == 0).all()  # CAP-4.2: phones on cellular host nothing
    assert shares.loc["laptop-battery", "turn"] == 0  # CAP-4.3: TURN never on battery
    assert shares.loc["all", "relay"] == pytest.approx(scored["eligible_relay"].mean())


def test_score_breakdown_lists_the_four_factors_and_the_total() -> None:
    table = score_breakdown(PHONE)
    assert table["factor"].tolist() == [
        "device class",
        "bandwidth",
        "NAT type",
        "availability",
        "total",
    ]
    # class 0, bandwidth floor(250000 / 25) = 10000 mpts, symmetric 2, scheduled 5.
    assert table["points"].tolist() == [0.0, 10.0, 2.0, 5.0, 17.0]
    assert table["max_points"].tolist() == [30, 50, 10, 10, 100]


def test_the_breakdown_chart_stacks_each_devices_factors() -> None:
    chart = score_breakdown_chart({"phone": PHONE, "server": SERVER})
    spec = chart.to_dict()
    bar = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "bar")
    text = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "text")
    bars = pd.DataFrame(spec["datasets"][bar["data"]["name"]])
    assert len(bars) == 8
    totals = bars.groupby("device")["points"].sum().to_dict()
    assert totals == {"phone": 17.0, "server": 100.0}
    labels = pd.DataFrame(spec["datasets"][text["data"]["name"]])
    assert labels[["device", "total"]].values.tolist() == [["phone", 17.0], ["server", 100.0]]
    assert bar["encoding"]["x"]["scale"]["domain"] == [0, 100]
    assert bar["encoding"]["y"]["sort"] == ["phone", "server"]
    single = chart_values(score_breakdown_chart(PHONE))
    assert set(single["device"]) == {"device"}
    with pytest.raises(ValueError):
        score_breakdown_chart({})


def test_the_distribution_chart_counts_every_device(scored: pd.DataFrame) -> None:
    data = chart_values(score_distribution_chart(scored))
    assert data["devices"].sum() == len(scored)
    assert len(data) < 100  # counted before charting: the spec stays small
    histogram = score_histogram(scored, step=10)
    assert histogram["bin_start"].min() >= 0 and histogram["bin_end"].max() == 100
    servers = histogram[histogram["device_class"] == "server"]
    assert (
        servers.loc[servers["bin_start"] == 90, "devices"].sum()
        == (scored.loc[scored["device_class"] == "server", "score_total"] >= 90).sum()
    )
    with pytest.raises(ValueError):
        score_histogram(scored, step=0)
    with pytest.raises(ValueError):
        score_distribution_chart(scored.drop(columns=["score_total"]))


def test_describe_eligibility_gives_reasons_in_spec_order() -> None:
    verdicts = describe_eligibility(PHONE)
    assert verdicts["relay"] == "mobile-cellular, no-relay-capacity, battery-low"
    assert describe_eligibility(SERVER) == {role.value: "eligible" for role in Role}


# ------------------------------------------------------------------ panel


def test_the_panel_has_a_control_for_every_capability_field() -> None:
    panel = capacity_panel()
    assert isinstance(panel, CapacityPanel)
    fields = set(DeviceCapabilities.__dataclass_fields__) - {"battery_status"}
    assert fields <= set(panel.controls)
    assert {"battery_reported", "battery_level_percent", "battery_plugged_in"} <= set(
        panel.controls
    )
    assert panel.capabilities == DEFAULT_CAPABILITIES
    assert panel.last_score == score(DEFAULT_CAPABILITIES)
    assert len(panel.output.outputs) == 1


def test_moving_a_control_redraws_the_breakdown_live() -> None:
    panel = CapacityPanel(SERVER)
    assert panel.status.value.startswith("total 100 points")
    drawn = panel.output.outputs
    panel.nat_type.value = NatType.SYMMETRIC
    assert panel.capabilities.nat_type is NatType.SYMMETRIC
    assert panel.status.value == (
        "total 92 points = device class 30 + bandwidth 50 + NAT type 2 + availability 10"
    )
    assert panel.last_eligibility["turn"] == "nat-unsuitable"
    assert panel.last_eligibility["sfu-host"] == "nat-unsuitable"
    assert panel.output.outputs != drawn and len(panel.output.outputs) == 1
    panel.upload.value = 4.0  # Mbps: 500000 bytes/s, 20 of the 50 bandwidth points
    assert panel.last_score is not None and panel.last_score.bandwidth == 20_000


def test_the_battery_controls_make_or_drop_the_battery_status() -> None:
    panel = CapacityPanel(PHONE)
    assert panel.capabilities == PHONE
    assert panel.last_eligibility["relay"] == "mobile-cellular, no-relay-capacity, battery-low"
    panel.battery_reported.value = False
    assert panel.capabilities.battery_status is None
    assert panel.battery_level.disabled and panel.plugged_in.disabled
    panel.battery_reported.value = True
    panel.plugged_in.value = True
    assert panel.capabilities.battery_status == BatteryStatus(level_percent=40, plugged_in=True)


def test_set_capabilities_round_trips_population_devices_and_redraws_once(
    population: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = CapacityPanel()
    draws: list[object] = []
    original = panel.redraw

    def counting() -> Any:
        draws.append(None)
        return original()

    monkeypatch.setattr(panel, "redraw", counting)
    for caps in population_capabilities(population.head(100).iloc[::4]):  # 25, spread out
        draws.clear()
        panel.set_capabilities(caps)
        assert len(draws) == 1
        if caps.max_relay_bandwidth <= 1000 * 125_000:
            assert panel.capabilities == caps
        assert panel.last_score == score(caps)


def test_the_panel_compares_with_reference_devices() -> None:
    panel = CapacityPanel(PHONE, compare_with={"server": SERVER})
    (output,) = panel.output.outputs
    assert output["output_type"] == "display_data"
    bundle = panel._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data


# ---------------------------------------------------------- live network


@pytest.fixture(scope="module")
def live(population: pd.DataFrame) -> Iterator[tuple[LocalNetwork, pd.DataFrame, pd.DataFrame]]:
    config = NodeConfig(request_timeout=1.0)
    with LocalNetwork.start(10, seed=4, config=config, join=True) as net:
        adverts = advertise_population(net, population, seed=2)
        fetched = fetch_advertisements(net, via=3)
        yield net, adverts, fetched


@pytest.mark.integration
def test_every_node_advertises_a_sampled_device(
    live: tuple[LocalNetwork, pd.DataFrame, pd.DataFrame], population: pd.DataFrame
) -> None:
    net, adverts, _ = live
    assert list(adverts.columns) == list(ADVERTISED_COLUMNS)
    assert adverts["node"].tolist() == list(range(10))
    assert adverts["device"].tolist() == population.sample(n=10, random_state=2)["device"].tolist()
    assert (adverts["accepted"] > 0).all() and (adverts["refused"] == 0).all()
    assert adverts["node_id"].tolist() == net.nodes()["node_id"].str[:12].tolist()


@pytest.mark.integration
def test_fetched_advertisements_are_verified_and_intact(
    live: tuple[LocalNetwork, pd.DataFrame, pd.DataFrame],
) -> None:
    _, adverts, fetched = live
    assert fetched["found"].all() and fetched["verified"].all()
    assert (fetched["refused"] == "").all()
    assert ((fetched["expires_in"] > 1700) & (fetched["expires_in"] <= 1800)).all()
    sent = [capabilities_from_row(row) for _, row in adverts.iterrows()]
    got = [capabilities_from_row(row) for _, row in fetched.iterrows()]
    assert got == sent
    assert fetched["score_total"].tolist() == adverts["score_total"].tolist()


@pytest.mark.integration
def test_ranking_and_selection_follow_cap_4(
    live: tuple[LocalNetwork, pd.DataFrame, pd.DataFrame],
) -> None:
    net, _, fetched = live
    candidates = network_candidates(net, fetched)
    for role in Role:
        table = ranking_frame(net, fetched, role)
        expected = rank_candidates(candidates, role)
        ranked = table[table["rank"].notna()]
        assert ranked["node_id"].tolist() == [e.node_id.hex()[:12] for e in expected.ranked]
        assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
        assert (table.loc[table["rank"].isna(), "reasons"] != "").all()
        assert len(table) == len(fetched)
    chosen = selection_frame(net, fetched, count=2)
    assert set(chosen["role"]) <= {"relay", "turn", "sfu-host"}
    for role, group in chosen.groupby("role"):
        best = rank_candidates(candidates, Role(str(role))).best(2)
        assert group["node_id"].tolist() == [n.hex()[:12] for n in best]
        assert group["choice"].tolist() == list(range(1, len(group) + 1))
    with pytest.raises(ValueError):
        selection_frame(net, fetched, count=0)


@pytest.mark.integration
def test_a_record_for_another_node_is_refused_and_the_genuine_one_survives(
    live: tuple[LocalNetwork, pd.DataFrame, pd.DataFrame],
) -> None:
    net, adverts, _ = live
    victim = net.hosts[5].node_id
    forged = net.store(1, KeyType.CAPABILITY, victim, encode_capabilities(PHONE))
    assert forged.accepted == 0 and forged.refused > 0  # DHT-3.4: FORBIDDEN at every holder
    again = fetch_advertisements(net, via=7, nodes=[5])
    assert again["verified"].tolist() == [True]
    assert capabilities_from_row(again.iloc[0]) == capabilities_from_row(adverts.iloc[5])
    # A fetcher refuses a record signed by someone else, whoever stored it (CAP-3.5).
    mallory = Identity.from_seed(bytes(32))
    record = sign_advertisement(
        mallory, PHONE, seq=1, expires_ms=int((time.time() + 600) * 1000)
    ).encode()
    with pytest.raises(RemoteProtocolError) as refused:
        CapabilityDirectory().offer(record, now=time.time(), node_id=victim)
    assert refused.value.code is ErrorCode.WRONG_KEY


@pytest.mark.integration
def test_advertising_needs_a_device_per_node(population: pd.DataFrame) -> None:
    with LocalNetwork.start(3, seed=1) as net:
        with pytest.raises(ValueError, match="only 2 devices"):
            advertise_population(net, population.head(2))
        net.stop_node(2)
        adverts = advertise_population(net, population.head(2), seed=0)
        assert adverts["node"].tolist() == [0, 1]


def test_a_changed_device_changes_its_score() -> None:
    slower = replace(SERVER, upload_bandwidth=125_000)
    assert score(slower).bandwidth == 5_000
