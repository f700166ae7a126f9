"""Capacity in the lab: the device population, scores as tables and charts, live advertisements.

* `load_population` reads the synthetic population (`datasets/device_population.csv`,
  datasheet in `datasets/README.md`): one row per device, CAP-1.1's fields in
  their Python names with ``batteryStatus`` flattened into
  ``battery_level_percent`` / ``battery_plugged_in`` (empty when absent), plus
  the modelling columns it was drawn from. `capabilities_from_row` and
  `capabilities_row` convert between a row and a `DeviceCapabilities`.
* `score_frame` adds the CAP-2 score of each row, factor by factor, in points
  (the design's 0..100 scale; the score itself is exact millipoints), and its
  CAP-4 eligibility for every role; `score_breakdown_chart` draws the factors
  of one or a few devices as a stacked bar, `score_distribution_chart` a
  whole table's totals.
* `CapacityPanel` has a control for every capability field and redraws the
  breakdown, and the eligibility per role, whenever one changes.
* `advertise_population` has every running node of a `LocalNetwork` publish a
  device of the population as its signed capability record (CAP-3.3), and
  `fetch_advertisements` fetches them all back through the DHT from one node,
  verifying each record (CAP-3.5) in a `CapabilityDirectory`. `ranking_frame`
  and `selection_frame` run CAP-4 selection on what was fetched.

The live helpers use only the network's public synchronous API (`store`,
`get`, `nodes`, `running_nodes`), so they run from a notebook cell without
touching the kernel's event loop.
"""

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import altair as alt
import ipywidgets as widgets
import pandas as pd

from railgun_ref.capacity.advert import DEFAULT_ADVERT_TTL, CapabilityDirectory, capability_key
from railgun_ref.capacity.advert import encode_capabilities as encode_advert_value
from railgun_ref.capacity.nat import NatType
from railgun_ref.capacity.scoring import MILLIPOINTS, CapacityScore, score
from railgun_ref.capacity.selection import Candidate, Ineligibility, Role, rank_candidates
from railgun_ref.capacity.selection import eligibility as role_eligibility
from railgun_ref.capacity.types import Availability, BatteryStatus, DeviceCapabilities, DeviceClass
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.dht.keys import KeyType
from railgun_ref.lab.lookups import short
from railgun_ref.lab.network import LocalNetwork
from railgun_ref.lab.widgets import SnapshotPanel, show_chart

#: The committed population (a repository checkout; pass a path when installed elsewhere).
POPULATION_PATH: Final = Path(__file__).resolve().parents[2] / "datasets" / "device_population.csv"
#: Columns holding a `DeviceCapabilities` (CAP-1.1), in the design's field order.
CAPABILITY_COLUMNS: Final = (
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
)
#: The CAP-2 factors: (CapacityScore attribute, display name, maximum points), in stack order.
FACTORS: Final = (
    ("device_class", "device class", 30),
    ("bandwidth", "bandwidth", 50),
    ("nat", "NAT type", 10),
    ("availability", "availability", 10),
)
#: Columns `score_frame` adds: each factor and the total, in points.
SCORE_COLUMNS: Final = (
    "score_device_class",
    "score_bandwidth",
    "score_nat",
    "score_availability",
    "score_total",
)
#: The roles `selection_frame` fills by default: who forwards, who runs TURN, who hosts a call.
HOSTING_ROLES: Final = (Role.RELAY, Role.TURN, Role.SFU_HOST)
#: Colour of each factor in the charts.
FACTOR_COLOURS: Final = ("#4c78a8", "#f58518", "#54a24b", "#b279a2")
#: Device classes best first (CAP-2.2), the order of every class axis and legend.
CLASS_ORDER: Final = tuple(member.value for member in DeviceClass)
#: Columns of `advertise_population`, in order.
ADVERTISED_COLUMNS: Final = (
    "node",
    "node_id",
    "device",
    *CAPABILITY_COLUMNS,
    "score_total",
    "accepted",
    "refused",
    "failed",
)
#: Bytes per second in one Mbps (decimal, as CAP-2.3 counts it).
BYTES_PER_MBPS: Final = 125_000

_BOOL_COLUMNS: Final = ("can_act_as_turn", "can_store_messages", "behind_cgn")
_INT_COLUMNS: Final = (
    "device",
    "upload_bandwidth",
    "download_bandwidth",
    "max_relay_connections",
    "max_relay_bandwidth",
)


def eligible_column(role: Role) -> str:
    """The `score_frame` column saying whether a row may host `role`."""
    return "eligible_" + role.value.replace("-", "_")


# ------------------------------------------------------------- population


def load_population(path: Path | str | None = None) -> pd.DataFrame:
    """The device population as a DataFrame, one row per device (see the module docstring).

    Integer columns are int64, flags bool, ``battery_level_percent`` Int64 and
    ``battery_plugged_in`` boolean (both <NA> when the device reports no
    battery), everything else text.
    """
    source = POPULATION_PATH if path is None else Path(path)
    dtypes: dict[str, str] = {"battery_level_percent": "Int64", "battery_plugged_in": "boolean"}
    frame = pd.read_csv(source, dtype=dtypes, keep_default_na=False, na_values=[""])
    missing = [column for column in CAPABILITY_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{source} is not a device population: missing columns {missing}")
    for column in _INT_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].astype("int64")
    for column in _BOOL_COLUMNS:
        if column in frame.columns:
            flags = frame[column].map({"true": True, "false": False, True: True, False: False})
            if flags.isna().any():
                raise ValueError(f"{source}: {column} holds a value other than true/false")
            frame[column] = flags.astype("bool")
    return frame


def capabilities_from_row(row: Mapping[str, Any] | pd.Series) -> DeviceCapabilities:
    """The `DeviceCapabilities` of one population row; raises `CapabilityError` if invalid."""
    level, plugged = row["battery_level_percent"], row["battery_plugged_in"]
    battery = None
    if not (pd.isna(level) and pd.isna(plugged)):
        battery = BatteryStatus(level_percent=_int(level), plugged_in=_bool(plugged))
    return DeviceCapabilities(
        device_class=DeviceClass(row["device_class"]),
        upload_bandwidth=_int(row["upload_bandwidth"]),
        download_bandwidth=_int(row["download_bandwidth"]),
        max_relay_connections=_int(row["max_relay_connections"]),
        max_relay_bandwidth=_int(row["max_relay_bandwidth"]),
        can_act_as_turn=_bool(row["can_act_as_turn"]),
        can_store_messages=_bool(row["can_store_messages"]),
        nat_type=NatType(row["nat_type"]),
        battery_status=battery,
        availability=Availability(row["availability"]),
    )


def _int(value: Any) -> int:
    """A whole number as a Python int (numpy integers are not `int` to CAP-1.3's checks)."""
    if pd.isna(value):
        raise ValueError("a missing value where a number is required")
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"not a whole number: {value!r}")
    return int(value)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        if value not in ("true", "false"):
            raise ValueError(f"not a boolean: {value!r}")
        return value == "true"
    if pd.isna(value):
        raise ValueError("a missing value where a boolean is required")
    return bool(value)


def capabilities_row(capabilities: DeviceCapabilities) -> dict[str, Any]:
    """The `CAPABILITY_COLUMNS` of `capabilities`, as a population row holds them."""
    battery = capabilities.battery_status
    return {
        "device_class": capabilities.device_class.value,
        "upload_bandwidth": capabilities.upload_bandwidth,
        "download_bandwidth": capabilities.download_bandwidth,
        "max_relay_connections": capabilities.max_relay_connections,
        "max_relay_bandwidth": capabilities.max_relay_bandwidth,
        "can_act_as_turn": capabilities.can_act_as_turn,
        "can_store_messages": capabilities.can_store_messages,
        "nat_type": capabilities.nat_type.value,
        "battery_level_percent": pd.NA if battery is None else battery.level_percent,
        "battery_plugged_in": pd.NA if battery is None else battery.plugged_in,
        "availability": capabilities.availability.value,
    }


def population_capabilities(population: pd.DataFrame) -> list[DeviceCapabilities]:
    """Every row of `population` as a `DeviceCapabilities`, in row order."""
    return [capabilities_from_row(row) for _, row in population.iterrows()]


# ---------------------------------------------------------------- scores


def score_row(capabilities: DeviceCapabilities) -> dict[str, Any]:
    """`SCORE_COLUMNS` (points) and the eligibility for every role of one device."""
    result = score(capabilities)
    points: dict[str, Any] = {
        f"score_{name}": getattr(result, name) / MILLIPOINTS for name, _, _ in FACTORS
    }
    points["score_total"] = result.points
    for role in Role:
        points[eligible_column(role)] = not role_eligibility(capabilities, role)
    return points


def score_frame(population: pd.DataFrame) -> pd.DataFrame:
    """A copy of `population` with `SCORE_COLUMNS` (points) and one eligibility flag per role.

    The eligibility columns are ``eligible_relay``, ``eligible_turn``,
    ``eligible_sfu_host`` and ``eligible_message_storage`` (CAP-4.2, CAP-4.3).
    """
    rows = [score_row(caps) for caps in population_capabilities(population)]
    columns = [*SCORE_COLUMNS, *(eligible_column(role) for role in Role)]
    scores = pd.DataFrame(rows, columns=columns, index=population.index)
    return pd.concat([population.drop(columns=columns, errors="ignore"), scores], axis=1)


def score_breakdown(capabilities: DeviceCapabilities) -> pd.DataFrame:
    """One row per CAP-2 factor: its points, its maximum, and the device's total."""
    result = score(capabilities)
    return pd.DataFrame(
        [
            {"factor": label, "points": getattr(result, name) / MILLIPOINTS, "max_points": top}
            for name, label, top in FACTORS
        ]
        + [{"factor": "total", "points": result.points, "max_points": 100}]
    )


def _breakdown_data(devices: Mapping[str, DeviceCapabilities]) -> pd.DataFrame:
    rows = []
    for label, capabilities in devices.items():
        result = score(capabilities)
        for order, (name, factor, top) in enumerate(FACTORS):
            rows.append(
                {
                    "device": label,
                    "factor": factor,
                    "order": order,
                    "points": getattr(result, name) / MILLIPOINTS,
                    "max_points": top,
                    "total": result.points,
                }
            )
    return pd.DataFrame(rows)


def score_breakdown_chart(
    capabilities: DeviceCapabilities | Mapping[str, DeviceCapabilities],
    *,
    title: str = "capacity score by factor (CAP-2)",
) -> Any:
    """A stacked bar of the four CAP-2 factors per device, total written at its end.

    `capabilities` is one device or a mapping label -> device (one bar each, in
    the mapping's order). The axis always spans the full 0..100 points, so
    bars of different charts compare.
    """
    devices = (
        {"device": capabilities}
        if isinstance(capabilities, DeviceCapabilities)
        else dict(capabilities)
    )
    if not devices:
        raise ValueError("no device to draw")
    data = _breakdown_data(devices)
    y = alt.Y("device:N", sort=list(devices), title=None)
    factors = [label for _, label, _ in FACTORS]
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X(
                "sum(points):Q",
                stack="zero",
                title="points",
                scale=alt.Scale(domain=[0, 100]),
            ),
            y=y,
            color=alt.Color(
                "factor:N",
                title="factor",
                sort=factors,
                scale=alt.Scale(domain=factors, range=list(FACTOR_COLOURS)),
            ),
            order=alt.Order("order:Q"),
            tooltip=["device:N", "factor:N", "points:Q", "max_points:Q"],
        )
    )
    totals = (
        alt.Chart(data.drop_duplicates("device"))
        .mark_text(align="left", dx=4)
        .encode(x="total:Q", y=y, text=alt.Text("total:Q", format=".1f"))
    )
    return (bars + totals).properties(title=title, width=360, height=alt.Step(24))


def score_histogram(scored: pd.DataFrame, *, step: float = 5.0) -> pd.DataFrame:
    """Devices per score bin and class: bin_start, bin_end (points), device_class, devices.

    Bins are ``[start, start + step)`` from 0; a score of exactly 100 falls in
    the last bin. Counting here rather than in the chart keeps the chart
    small whatever the number of devices.
    """
    if "score_total" not in scored.columns or "device_class" not in scored.columns:
        raise ValueError("not a score_frame table: needs score_total and device_class")
    if not 0 < step <= 100:
        raise ValueError(f"step must be within (0, 100] points, got {step}")
    last = (math.ceil(100 / step) - 1) * step
    starts = (scored["score_total"].astype(float) // step * step).clip(upper=last)
    counts = (
        pd.DataFrame({"bin_start": starts, "device_class": scored["device_class"]})
        .groupby(["bin_start", "device_class"], sort=True)
        .size()
        .reset_index(name="devices")
    )
    counts.insert(1, "bin_end", counts["bin_start"] + step)
    return counts


def score_distribution_chart(
    scored: pd.DataFrame, *, step: float = 5.0, title: str = "capacity scores"
) -> Any:
    """Histogram of ``score_total`` (points), stacked by device class (a `score_frame` table)."""
    data = score_histogram(scored, step=step)
    return (
        alt.Chart(data, title=title)
        .mark_bar()
        .encode(
            x=alt.X(
                "bin_start:Q",
                bin="binned",
                title="total score (points)",
                scale=alt.Scale(domain=[0, 100]),
            ),
            x2="bin_end:Q",
            y=alt.Y("sum(devices):Q", title="devices"),
            color=alt.Color("device_class:N", title="device class", sort=list(CLASS_ORDER)),
            order=alt.Order("device_class:N"),
            tooltip=["device_class:N", "bin_start:Q", "bin_end:Q", "devices:Q"],
        )
        .properties(width=360, height=200)
    )


def eligibility_summary(scored: pd.DataFrame) -> pd.DataFrame:
    """Share of each device class eligible for each role (rows: class, columns: role)."""
    columns = {eligible_column(role): role.value for role in Role}
    missing = [column for column in columns if column not in scored.columns]
    if missing:
        raise ValueError(f"not a score_frame table: missing columns {missing}")
    shares = (
        scored.groupby("device_class", sort=False)[list(columns)].mean().rename(columns=columns)
    )
    order = [name for name in CLASS_ORDER if name in shares.index]
    shares = shares.reindex(order)
    shares.loc["all"] = scored[list(columns)].mean().rename(columns).to_numpy()
    shares.index.name = "device_class"
    return shares


def describe_eligibility(capabilities: DeviceCapabilities) -> dict[str, str]:
    """Role -> ``"eligible"`` or the reasons it is not (CAP-4.2 order), comma-separated."""
    out: dict[str, str] = {}
    for role in Role:
        reasons: tuple[Ineligibility, ...] = role_eligibility(capabilities, role)
        out[role.value] = ", ".join(reason.value for reason in reasons) or "eligible"
    return out


# ------------------------------------------------------------------ panel

#: What the panel shows before it is given capabilities: a standard desktop on a 20 Mbps line.
DEFAULT_CAPABILITIES: Final = DeviceCapabilities(
    device_class=DeviceClass.DESKTOP_STANDARD,
    upload_bandwidth=20 * BYTES_PER_MBPS,
    download_bandwidth=100 * BYTES_PER_MBPS,
    max_relay_connections=20,
    max_relay_bandwidth=10 * BYTES_PER_MBPS,
    can_act_as_turn=False,
    can_store_messages=True,
    nat_type=NatType.PORT_RESTRICTED,
    availability=Availability.WHEN_ACTIVE,
)


class CapacityPanel(SnapshotPanel):
    """One control per capability field; the score breakdown redraws as any of them moves.

    Enumerations are dropdowns, flags checkboxes, bandwidths logarithmic
    sliders in Mbps (10 kbps .. 10 Gbps; values outside are clamped),
    ``maxRelayConnections`` and the battery level sliders. Without "battery
    reported" the device advertises no ``batteryStatus``. `capabilities` is
    what the controls say now; `set_capabilities` moves every control at once
    and redraws once. `last_score` and `last_eligibility` keep what was drawn,
    `compare_with` adds reference devices as extra bars.
    """

    def __init__(
        self,
        capabilities: DeviceCapabilities | None = None,
        *,
        compare_with: Mapping[str, DeviceCapabilities] | None = None,
    ) -> None:
        self.compare_with = dict(compare_with or {})
        self.last_score: CapacityScore | None = None
        self.last_eligibility: dict[str, str] = {}
        self._quiet = False
        self._make_controls()
        self.status = widgets.Label(value="")
        self.roles = widgets.HTML(value="")
        self.output = widgets.Output()
        self.controls: dict[str, Any] = {
            "device_class": self.device_class,
            "upload_bandwidth": self.upload,
            "download_bandwidth": self.download,
            "max_relay_connections": self.max_relay_connections,
            "max_relay_bandwidth": self.max_relay_bandwidth,
            "can_act_as_turn": self.can_act_as_turn,
            "can_store_messages": self.can_store_messages,
            "nat_type": self.nat_type,
            "battery_reported": self.battery_reported,
            "battery_level_percent": self.battery_level,
            "battery_plugged_in": self.plugged_in,
            "availability": self.availability,
        }
        self.widget = self._layout()
        self.set_capabilities(capabilities or DEFAULT_CAPABILITIES)
        for control in self.controls.values():
            control.observe(self._on_change, names="value")

    def _make_controls(self) -> None:
        """One widget per capability field (class docstring)."""
        log = {"base": 10, "min": -2, "max": 4, "step": 0.01, "readout_format": ".3g"}
        self.device_class = widgets.Dropdown(
            options=[(member.value, member) for member in DeviceClass], description="class"
        )
        self.upload = widgets.FloatLogSlider(description="upload Mbps", **log)
        self.download = widgets.FloatLogSlider(description="download Mbps", **log)
        self.max_relay_connections = widgets.IntSlider(min=0, max=200, description="relay conns")
        self.max_relay_bandwidth = widgets.FloatSlider(
            min=0, max=1000, step=0.1, description="relay Mbps"
        )
        self.can_act_as_turn = widgets.Checkbox(description="can act as TURN")
        self.can_store_messages = widgets.Checkbox(description="can store messages")
        self.nat_type = widgets.Dropdown(
            options=[(member.value, member) for member in NatType], description="NAT type"
        )
        self.battery_reported = widgets.Checkbox(description="battery reported")
        self.battery_level = widgets.IntSlider(min=0, max=100, description="battery %")
        self.plugged_in = widgets.Checkbox(description="plugged in")
        self.availability = widgets.Dropdown(
            options=[(member.value, member) for member in Availability],
            description="availability",
        )

    def _layout(self) -> Any:
        """Two columns of controls over the status line, the roles and the chart."""
        return widgets.VBox(
            [
                widgets.HBox(
                    [
                        widgets.VBox(
                            [
                                self.device_class,
                                self.upload,
                                self.download,
                                self.max_relay_connections,
                                self.max_relay_bandwidth,
                                self.nat_type,
                            ]
                        ),
                        widgets.VBox(
                            [
                                self.availability,
                                self.can_act_as_turn,
                                self.can_store_messages,
                                self.battery_reported,
                                self.battery_level,
                                self.plugged_in,
                            ]
                        ),
                    ]
                ),
                self.status,
                self.roles,
                self.output,
            ]
        )

    @property
    def capabilities(self) -> DeviceCapabilities:
        """The `DeviceCapabilities` the controls describe now (bandwidths rounded to bytes/s)."""
        battery = None
        if self.battery_reported.value:
            battery = BatteryStatus(
                level_percent=int(self.battery_level.value),
                plugged_in=bool(self.plugged_in.value),
            )
        return DeviceCapabilities(
            device_class=self.device_class.value,
            upload_bandwidth=round(float(self.upload.value) * BYTES_PER_MBPS),
            download_bandwidth=round(float(self.download.value) * BYTES_PER_MBPS),
            max_relay_connections=int(self.max_relay_connections.value),
            max_relay_bandwidth=round(float(self.max_relay_bandwidth.value) * BYTES_PER_MBPS),
            can_act_as_turn=bool(self.can_act_as_turn.value),
            can_store_messages=bool(self.can_store_messages.value),
            nat_type=self.nat_type.value,
            battery_status=battery,
            availability=self.availability.value,
        )

    def set_capabilities(self, capabilities: DeviceCapabilities) -> CapacityScore:
        """Move every control to `capabilities`, redraw once, return the score drawn."""
        self._quiet = True
        try:
            self.device_class.value = capabilities.device_class
            self.upload.value = capabilities.upload_bandwidth / BYTES_PER_MBPS
            self.download.value = capabilities.download_bandwidth / BYTES_PER_MBPS
            self.max_relay_connections.value = min(
                capabilities.max_relay_connections, self.max_relay_connections.max
            )
            self.max_relay_bandwidth.value = capabilities.max_relay_bandwidth / BYTES_PER_MBPS
            self.can_act_as_turn.value = capabilities.can_act_as_turn
            self.can_store_messages.value = capabilities.can_store_messages
            self.nat_type.value = capabilities.nat_type
            battery = capabilities.battery_status
            self.battery_reported.value = battery is not None
            if battery is not None:
                self.battery_level.value = battery.level_percent
                self.plugged_in.value = battery.plugged_in
            self.availability.value = capabilities.availability
        finally:
            self._quiet = False
        return self.redraw()

    def _on_change(self, _change: Any) -> None:
        if not self._quiet:
            self.redraw()

    def redraw(self) -> CapacityScore:
        """Score what the controls say, draw the breakdown, list the roles; return the score."""
        capabilities = self.capabilities
        result = score(capabilities)
        self.battery_level.disabled = self.plugged_in.disabled = not self.battery_reported.value
        self.last_score = result
        self.last_eligibility = describe_eligibility(capabilities)
        parts = " + ".join(
            f"{label} {getattr(result, name) / MILLIPOINTS:g}" for name, label, _ in FACTORS
        )
        self.status.value = f"total {result.points:g} points = {parts}"
        self.roles.value = "<br>".join(
            f"<b>{role}</b>: {verdict}" for role, verdict in self.last_eligibility.items()
        )
        show_chart(
            self.output, score_breakdown_chart({"this device": capabilities, **self.compare_with})
        )
        self.refresh_snapshot()
        return result


def capacity_panel(capabilities: DeviceCapabilities | None = None, **options: Any) -> CapacityPanel:
    """A `CapacityPanel` showing `capabilities` (default: a standard desktop)."""
    return CapacityPanel(capabilities, **options)


# ---------------------------------------------------------- live network


def _node_ids(network: LocalNetwork) -> list[NodeId]:
    return [NodeId(bytes.fromhex(text)) for text in network.nodes()["node_id"]]


def advertise_population(
    network: LocalNetwork,
    population: pd.DataFrame,
    seed: int = 0,
    *,
    ttl: float = DEFAULT_ADVERT_TTL,
) -> pd.DataFrame:
    """Every running node advertises a device drawn from `population` (CAP-3.3).

    Devices are drawn without replacement with ``population.sample(random_state=seed)``,
    one per running node in index order; each node stores the CAP-3.1 value of
    its device as its signed ``capability`` record on the k closest nodes,
    living `ttl` seconds (what `NodeHost.advertise_capabilities` does). One
    row per node (`ADVERTISED_COLUMNS`): the device, its score, and how many
    holders ``accepted`` / ``refused`` the record or ``failed`` to answer.
    """
    nodes = network.running_nodes()
    if len(nodes) > len(population):
        raise ValueError(f"{len(nodes)} nodes but only {len(population)} devices")
    sample = population.sample(n=len(nodes), random_state=seed)
    ids = _node_ids(network)
    rows = []
    for node, (label, device) in zip(nodes, sample.iterrows(), strict=True):
        capabilities = capabilities_from_row(device)
        stored = network.store(
            node, KeyType.CAPABILITY, ids[node], encode_advert_value(capabilities), ttl=ttl
        )
        rows.append(
            {
                "node": node,
                "node_id": short(ids[node]),
                "device": int(device["device"]) if "device" in device.index else _int(label),
                **capabilities_row(capabilities),
                "score_total": score(capabilities).points,
                "accepted": stored.accepted,
                "refused": stored.refused,
                "failed": stored.failed,
            }
        )
    return pd.DataFrame(rows, columns=list(ADVERTISED_COLUMNS))


def fetch_advertisements(
    network: LocalNetwork, *, via: int = 0, nodes: Iterable[int] | None = None
) -> pd.DataFrame:
    """Node `via` fetches every node's capability record through the DHT and verifies it.

    For each node (default: all, running or not) `via` runs a DHT ``get`` of
    the node's capability key and offers every record it got to one
    `CapabilityDirectory` under that node's id, so a record signed by anyone
    else, expired, too long-lived or undecodable is refused (CAP-3.5) and the
    newest valid one is kept (CAP-3.6). One row per node: ``found`` (the get
    found records), ``verified`` (one was kept), ``refused`` (the codes of the
    refused ones), ``seq``, ``expires_in`` (seconds), then for a verified one
    its `CAPABILITY_COLUMNS`, `SCORE_COLUMNS` and eligibility per role.
    """
    ids = _node_ids(network)
    targets = range(len(ids)) if nodes is None else [int(i) for i in nodes]
    directory = CapabilityDirectory()
    rows = []
    for node in targets:
        node_id = ids[node]
        result = network.get(via, capability_key(node_id))
        now = time.time()
        refused = []
        for record in result.records:
            try:
                directory.offer(record, now=now, node_id=node_id)
            except RemoteProtocolError as exc:
                refused.append(exc.code.name)
        advert = directory.get(node_id, now=now)
        row: dict[str, Any] = {
            "node": node,
            "node_id": short(node_id),
            "found": result.found,
            "verified": advert is not None,
            "refused": ",".join(refused),
            "hops": result.hops,
            "seq": None if advert is None else advert.seq,
            "expires_in": None if advert is None else advert.expires_at - now,
        }
        if advert is not None:
            row |= capabilities_row(advert.capabilities) | score_row(advert.capabilities)
        rows.append(row)
    columns = [
        *("node", "node_id", "found", "verified", "refused", "hops", "seq", "expires_in"),
        *CAPABILITY_COLUMNS,
        *SCORE_COLUMNS,
        *(eligible_column(role) for role in Role),
    ]
    return pd.DataFrame(rows, columns=columns)


def network_candidates(network: LocalNetwork, adverts: pd.DataFrame) -> list[Candidate]:
    """The verified rows of a `fetch_advertisements` table as CAP-4 candidates."""
    ids = _node_ids(network)
    verified = adverts[adverts["verified"].astype(bool)]
    return [
        Candidate(node_id=ids[int(row["node"])], capabilities=capabilities_from_row(row))
        for _, row in verified.iterrows()
    ]


def ranking_frame(network: LocalNetwork, adverts: pd.DataFrame, role: Role | str) -> pd.DataFrame:
    """CAP-4.4's ranking for `role` of the verified advertisements: best first, then the rest.

    Columns: rank (1 = chosen first; <NA> for an excluded node), node,
    node_id, device_class, score_total (points), reasons (why a node is
    excluded, CAP-4.2 order; empty when eligible).
    """
    role = Role(role)
    ids = _node_ids(network)
    index = {node_id: i for i, node_id in enumerate(ids)}
    classes = dict(zip(adverts["node"].astype(int), adverts["device_class"], strict=True))
    ranking = rank_candidates(network_candidates(network, adverts), role)
    rows = [
        {
            "rank": place,
            "node": index[entry.node_id],
            "node_id": short(entry.node_id),
            "device_class": classes[index[entry.node_id]],
            "score_total": entry.score.points,
            "reasons": "",
        }
        for place, entry in enumerate(ranking.ranked, start=1)
    ]
    for node_id, reasons in ranking.excluded:
        caps_row = adverts[adverts["node"] == index[node_id]].iloc[0]
        rows.append(
            {
                "rank": pd.NA,
                "node": index[node_id],
                "node_id": short(node_id),
                "device_class": classes[index[node_id]],
                "score_total": score(capabilities_from_row(caps_row)).points,
                "reasons": ", ".join(reason.value for reason in reasons),
            }
        )
    frame = pd.DataFrame(
        rows, columns=["rank", "node", "node_id", "device_class", "score_total", "reasons"]
    )
    frame["rank"] = frame["rank"].astype("Int64")
    return frame


def selection_frame(
    network: LocalNetwork,
    adverts: pd.DataFrame,
    *,
    roles: Sequence[Role | str] = HOSTING_ROLES,
    count: int = 3,
) -> pd.DataFrame:
    """Who would be chosen for each role: its `count` best eligible nodes (CAP-4.4).

    One row per (role, choice): role, choice (1 = first), node, node_id,
    device_class, score_total, and ``eligible`` (how many nodes could host
    the role at all). A role with fewer eligible nodes has fewer rows.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    rows = []
    for role in roles:
        ranking = ranking_frame(network, adverts, role)
        eligible = ranking[ranking["rank"].notna()]
        for _, entry in eligible.head(count).iterrows():
            rows.append(
                {
                    "role": Role(role).value,
                    "choice": int(entry["rank"]),
                    "node": int(entry["node"]),
                    "node_id": entry["node_id"],
                    "device_class": entry["device_class"],
                    "score_total": float(entry["score_total"]),
                    "eligible": len(eligible),
                }
            )
    columns = ["role", "choice", "node", "node_id", "device_class", "score_total", "eligible"]
    return pd.DataFrame(rows, columns=columns)
