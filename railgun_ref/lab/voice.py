"""Voice calls in the lab: plans from live advertisements, their graphs and bandwidth, live calls.

* `advertised_capabilities` turns what a node fetched through the DHT
  (`lab.capacity.fetch_advertisements`, CAP-3.5) into the participant map
  `voice.topology.plan_call` takes; `plan_for_count` plans a call of the first
  n advertising nodes (VOICE-1 .. VOICE-3), so the hosts it elects are the
  ones the live nodes' advertisements call for.
* `plan_frame` lists each participant of a plan with its role, its host and
  its upload / download at a bit rate (VOICE-3.6); `topology_chart` draws the
  plan's media links (VOICE-1.1) as a networkx-laid-out graph in altair, hosts
  highlighted; `bandwidth_comparison` / `bandwidth_chart` set mesh, one SFU
  host and a distributed SFU side by side for 1..20 participants.
* `TopologyPanel` is an ipywidgets slider (participants 1..20) and bit rate
  that redraws the graph and the bandwidth of the elected plan.
* `grow_call` runs a real aiortc call (`drivers.voice_media`) that starts
  with some participants and admits the others one at a time, each step a
  plan from `plan_call` with the previous plan (make-before-break switches,
  VOICE-4.2); `fps_frame` / `fps_chart` give every stream's frames per second
  over time, `stream_gaps` the frames each stream lost of those its source
  sent, and `no_gaps` the verdict. A `StallMeter` measures when the call's own
  event loop did not run (a busy machine starving the lab process): frames lost
  then are excused, and the wait to hear everyone does not count that time.

The live call runs in an event loop of its own, in a worker thread, so a
notebook cell calls `grow_call` synchronously without touching the kernel's
loop; its participants are fresh `NodeHost`s under the identities of the
lab nodes they stand for (`network_identities`), so the capabilities
fetched for a node id are the ones the call plans with.
"""

import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import altair as alt
import anyio
import ipywidgets as widgets
import networkx as nx
import pandas as pd

from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.drivers.voice_media import (
    FORWARD_QUEUE_FRAMES,
    FRAME_SECONDS,
    CallRunner,
    MediaClock,
    MediaRouter,
    OpusClip,
    opus_clip,
)
from railgun_ref.drivers.voice_signalling import NodeSignalling
from railgun_ref.identity.keys import Identity
from railgun_ref.lab.capacity import network_candidates
from railgun_ref.lab.lookups import short
from railgun_ref.lab.network import LocalNetwork, identities
from railgun_ref.lab.widgets import SnapshotPanel, show_chart
from railgun_ref.voice.topology import (
    DEFAULT_CONFIG,
    STREAM_BITRATE_BPS,
    CallPlan,
    Topology,
    VoiceConfig,
    bandwidth_per_participant,
    plan_call,
)

#: Columns of `plan_frame`, in order.
PLAN_COLUMNS: Final = (
    "node",
    "node_id",
    "role",
    "host",
    "streams_up",
    "streams_down",
    "upload_kbps",
    "download_kbps",
)
#: Columns of `bandwidth_comparison`, in order.
BANDWIDTH_COLUMNS: Final = ("participants", "topology", "who", "upload_mbps", "download_mbps")
#: Columns of `fps_frame`, in order.
FPS_COLUMNS: Final = ("t", "listener", "source", "stream", "fps")
#: Columns of `fps_summary`, in order.
FPS_SUMMARY_COLUMNS: Final = ("t", "streams", "min_fps", "median_fps", "max_fps")
#: Columns of `stream_gaps`, in order.
GAP_COLUMNS: Final = (
    "listener",
    "source",
    "first_frame",
    "last_frame",
    "frames",
    "skipped",
    "missing",
    "longest_gap",
    "excused",
)
#: Colour of a host and of any other participant in the graphs.
ROLE_COLOURS: Final = {"host": "#e45756", "participant": "#4c78a8"}
#: Colour of each topology in the bandwidth charts.
TOPOLOGY_COLOURS: Final = {
    Topology.MESH.value: "#54a24b",
    Topology.SFU.value: "#4c78a8",
    Topology.DISTRIBUTED_SFU.value: "#f58518",
}
#: The participant counts of the topology table (VOICE-2.1), the slider's range.
MAX_PARTICIPANTS: Final = 20
#: Call id of the calls `grow_call` runs (any 16 bytes; one call at a time).
LAB_CALL_ID: Final = b"railgun-lab-call"
#: Seconds `grow_call` waits for every listener to hear every source after a step,
#: not counting the seconds its event loop was measured stalled (`StallMeter`).
HEARING_TIMEOUT: Final = 15.0
#: Wall-clock seconds after which the wait gives up however stalled the loop was.
HEARING_LIMIT: Final = 120.0
#: How often `StallMeter` wakes, and how late a wake-up must be to count as a stall
#: (two frames: later than that, the capture loop and every receiver waited too).
STALL_PROBE: Final = 0.01
STALL_SECONDS: Final = 0.04
#: Frames either side of a measured stall whose loss `stream_gaps` excuses: what was
#: queued when the loop stopped and the catch-up burst when it ran again (the forwarding
#: queue holds `voice_media.FORWARD_QUEUE_FRAMES`).
STALL_MARGIN_FRAMES: Final = FORWARD_QUEUE_FRAMES
#: Frames per stream that count as hearing a source after a step.
HEARING_FRAMES: Final = 10
#: Frames at a stream's end not judged by `stream_gaps` (they may still be in flight).
TAIL_FRAMES: Final = 10
#: Longest run of lost frames not counted as a gap by `no_gaps` (40 ms): Opus packet
#: loss concealment (RFC 6716 §4.4) fills a lost packet or two. A lab threshold.
MAX_CONCEALED_FRAMES: Final = 2


# -------------------------------------------------------------- planning


def advertised_capabilities(
    network: LocalNetwork, fetched: pd.DataFrame
) -> dict[NodeId, DeviceCapabilities]:
    """Node id -> verified capabilities from a `fetch_advertisements` table, in node order."""
    return {c.node_id: c.capabilities for c in network_candidates(network, fetched)}


def node_index(network: LocalNetwork) -> dict[NodeId, int]:
    """Node id -> node index of a `LocalNetwork`, the labels of every chart here."""
    return {NodeId(bytes.fromhex(text)): i for i, text in enumerate(network.nodes()["node_id"])}


def participants_of(
    capabilities: Mapping[NodeId, DeviceCapabilities], count: int
) -> dict[NodeId, DeviceCapabilities]:
    """The first `count` entries of `capabilities` (its order: node order), as `plan_call` takes."""
    if not 1 <= count <= len(capabilities):
        raise ValueError(f"count must be in 1..{len(capabilities)}, got {count}")
    return dict(list(capabilities.items())[:count])


def plan_for_count(
    capabilities: Mapping[NodeId, DeviceCapabilities],
    count: int,
    *,
    config: VoiceConfig = DEFAULT_CONFIG,
    previous: CallPlan | None = None,
) -> CallPlan:
    """VOICE-1.2: the plan of a call of the first `count` nodes of `capabilities`."""
    return plan_call(participants_of(capabilities, count), config=config, previous=previous)


def plan_frame(
    plan: CallPlan,
    index: Mapping[NodeId, int],
    *,
    bitrate_bps: int = STREAM_BITRATE_BPS,
) -> pd.DataFrame:
    """One row per participant (`PLAN_COLUMNS`): its role, its host's node index
    (<NA> in a mesh), the streams it sends and receives (VOICE-3.6) and what that
    costs at `bitrate_bps` per stream, in kbit/s."""
    streams = bandwidth_per_participant(plan, 1)
    rows = []
    for node_id in plan.participants:
        up, down = streams[node_id]
        host = plan.assignment.get(node_id)
        rows.append(
            {
                "node": index[node_id],
                "node_id": short(node_id),
                "role": "host" if node_id in plan.hosts else "participant",
                "host": pd.NA if host is None else index[host],
                "streams_up": up,
                "streams_down": down,
                "upload_kbps": up * bitrate_bps / 1000,
                "download_kbps": down * bitrate_bps / 1000,
            }
        )
    frame = pd.DataFrame(rows, columns=list(PLAN_COLUMNS))
    frame["host"] = frame["host"].astype("Int64")
    return frame


def describe_plan(plan: CallPlan, index: Mapping[NodeId, int]) -> str:
    """One line: participants, topology, hosts by node index, degradation if any."""
    text = f"{len(plan.participants)} participants: {plan.topology.value}"
    if plan.hosts:
        text += ", hosts " + ", ".join(str(index[h]) for h in plan.hosts)
    if plan.degraded is not None:
        text += f" (degraded: {plan.degraded.value})"
    return text


# ---------------------------------------------------------------- graphs


def topology_layout(plan: CallPlan) -> dict[NodeId, tuple[float, float]]:
    """Node id -> (x, y): a mesh on the unit circle; hosts inside (one host in the
    middle), each host's participants on the unit circle, grouped by host
    (networkx's circular / shell layouts, scaled to radius 1: no randomness)."""
    graph = nx.Graph()
    graph.add_nodes_from(plan.participants)
    graph.add_edges_from(plan.media_links())
    if not plan.hosts:
        positions = nx.circular_layout(graph)
    else:
        others = [p for h in plan.hosts for p in plan.served_by(h) if p != h]
        shells = [list(plan.hosts), others] if others else [list(plan.hosts)]
        positions = nx.shell_layout(graph, nlist=shells)
    radius = max((math.hypot(float(x), float(y)) for x, y in positions.values()), default=0.0)
    scale = 1.0 / radius if radius > 0 else 1.0
    return {
        NodeId(node): (float(x) * scale, float(y) * scale) for node, (x, y) in positions.items()
    }


def topology_chart(
    plan: CallPlan,
    index: Mapping[NodeId, int],
    *,
    bitrate_bps: int = STREAM_BITRATE_BPS,
    title: str | None = None,
) -> Any:
    """The media links of `plan` (VOICE-1.1): a point per participant (hosts red and
    larger), a rule per link, labels are node indices; tooltips give each
    participant's upload and download at `bitrate_bps`."""
    positions = topology_layout(plan)
    points = plan_frame(plan, index, bitrate_bps=bitrate_bps)
    points["host"] = points["host"].astype("object").where(points["host"].notna(), None)
    points["x"] = [positions[p][0] for p in plan.participants]
    points["y"] = [positions[p][1] for p in plan.participants]
    x = alt.X("x:Q", axis=None, scale=alt.Scale(domain=[-1.25, 1.25]))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[-1.25, 1.25]))
    rules = _link_rules(_link_frame(plan, index, positions), x, y)
    labels = (
        alt.Chart(points)
        .mark_text(dx=10, align="left", fontSize=10)
        .encode(x=x, y=y, text="node:O")
    )
    return (rules + _participant_dots(points, x, y) + labels).properties(
        title=title or describe_plan(plan, index), width=300, height=300
    )


def _link_frame(
    plan: CallPlan, index: Mapping[NodeId, int], positions: Mapping[NodeId, tuple[float, float]]
) -> pd.DataFrame:
    """One row per media link of `plan`: its ends' indices, its kind and its ends' positions."""
    rows = []
    for a, b in plan.media_links():
        between_hosts = a in plan.hosts and b in plan.hosts
        kind = "host-host" if between_hosts else ("to host" if plan.hosts else "mesh")
        rows.append(
            {
                "a": index[a],
                "b": index[b],
                "kind": kind,
                "x": positions[a][0],
                "y": positions[a][1],
                "x2": positions[b][0],
                "y2": positions[b][1],
            }
        )
    return pd.DataFrame(rows, columns=["a", "b", "kind", "x", "y", "x2", "y2"])


def _link_rules(edges: pd.DataFrame, x: Any, y: Any) -> Any:
    """A rule per link; links between hosts are drawn thicker."""
    return (
        alt.Chart(edges)
        .mark_rule(opacity=0.5)
        .encode(
            x=x,
            y=y,
            x2="x2:Q",
            y2="y2:Q",
            strokeWidth=alt.StrokeWidth(
                "kind:N",
                scale=alt.Scale(domain=["mesh", "to host", "host-host"], range=[1, 1, 3]),
                legend=None,
            ),
            tooltip=["a:O", "b:O", "kind:N"],
        )
    )


def _participant_dots(points: pd.DataFrame, x: Any, y: Any) -> Any:
    """A point per participant, coloured and sized by role, with its streams as tooltip."""
    role = alt.Color(
        "role:N",
        title="role",
        scale=alt.Scale(domain=list(ROLE_COLOURS), range=list(ROLE_COLOURS.values())),
    )
    return (
        alt.Chart(points)
        .mark_circle(opacity=1)
        .encode(
            x=x,
            y=y,
            color=role,
            size=alt.Size(
                "role:N",
                scale=alt.Scale(domain=list(ROLE_COLOURS), range=[320, 110]),
                legend=None,
            ),
            tooltip=[
                "node:O",
                "node_id:N",
                "role:N",
                "host:O",
                "streams_up:Q",
                "streams_down:Q",
                "upload_kbps:Q",
                "download_kbps:Q",
            ],
        )
    )


def participant_bandwidth_chart(frame: pd.DataFrame, *, title: str = "per participant") -> Any:
    """Upload and download (kbit/s) of each participant of a `plan_frame`, hosts red."""
    long = frame.melt(
        id_vars=["node", "role"],
        value_vars=["upload_kbps", "download_kbps"],
        var_name="direction",
        value_name="kbps",
    )
    long["direction"] = long["direction"].str.removesuffix("_kbps")
    return (
        alt.Chart(long, title=title)
        .mark_bar()
        .encode(
            x=alt.X("node:O", title="node"),
            y=alt.Y("kbps:Q", title="kbit/s"),
            color=alt.Color(
                "role:N",
                title="role",
                scale=alt.Scale(domain=list(ROLE_COLOURS), range=list(ROLE_COLOURS.values())),
            ),
            column=alt.Column("direction:N", title=None, sort=["upload", "download"]),
            tooltip=["node:O", "role:N", "direction:N", "kbps:Q"],
        )
        .properties(width=220, height=160)
    )


# ------------------------------------------------------------- bandwidth


def _synthetic_ids(count: int) -> list[NodeId]:
    return [NodeId(i.to_bytes(32, "big")) for i in range(1, count + 1)]


def forced_plan(topology: Topology, count: int, *, hosts: int = 2) -> CallPlan:
    """A plan of `count` anonymous participants with the given topology, whatever
    VOICE-2 would choose: no hosts; host 1; or `hosts` hosts (fewer if `count` is
    smaller) serving equal shares (VOICE-3.4's balance). For comparing costs only."""
    ids = _synthetic_ids(count)
    if topology is Topology.MESH:
        return CallPlan(topology=topology, participants=tuple(ids), hosts=(), assignment={})
    chosen = ids[:1] if topology is Topology.SFU else ids[: max(2, min(hosts, count))]
    if len(chosen) > count or (topology is Topology.DISTRIBUTED_SFU and count < 2):
        raise ValueError(f"a {topology.value} needs more than {count} participants")
    assignment = {h: h for h in chosen}
    others = [p for p in ids if p not in assignment]
    for k, p in enumerate(others):
        assignment[p] = chosen[k % len(chosen)]
    return CallPlan(
        topology=topology, participants=tuple(ids), hosts=tuple(chosen), assignment=assignment
    )


def bandwidth_comparison(
    counts: Iterable[int] = range(1, MAX_PARTICIPANTS + 1),
    *,
    bitrate_bps: int = STREAM_BITRATE_BPS,
    hosts: int = 2,
) -> pd.DataFrame:
    """VOICE-3.6 side by side: for each participant count, the upload and download
    (Mbit/s) of a mesh participant, of an SFU's host and other participants, and of a
    distributed SFU's busiest host (of `hosts`) and other participants. Columns
    `BANDWIDTH_COLUMNS`; ``who`` is ``participant`` or ``host``."""
    rows = []
    for count in counts:
        for topology in Topology:
            if topology is Topology.DISTRIBUTED_SFU and count < 2:
                continue
            if topology is Topology.SFU and count < 1:
                continue
            plan = forced_plan(topology, count, hosts=hosts)
            costs = bandwidth_per_participant(plan, bitrate_bps)
            groups = {
                "host": [costs[h] for h in plan.hosts],
                "participant": [costs[p] for p in plan.participants if p not in plan.hosts],
            }
            for who, values in groups.items():
                if not values:
                    continue
                up, down = max(values)
                rows.append(
                    {
                        "participants": count,
                        "topology": topology.value,
                        "who": who,
                        "upload_mbps": up / 1e6,
                        "download_mbps": down / 1e6,
                    }
                )
    return pd.DataFrame(rows, columns=list(BANDWIDTH_COLUMNS))


def bandwidth_chart(frame: pd.DataFrame, *, title: str = "bandwidth per participant") -> Any:
    """Upload and download of a `bandwidth_comparison`: colour the topology, solid
    lines the hosts, dashed the other participants (a mesh has no host)."""
    long = frame.melt(
        id_vars=["participants", "topology", "who"],
        value_vars=["upload_mbps", "download_mbps"],
        var_name="direction",
        value_name="mbps",
    )
    long["direction"] = long["direction"].str.removesuffix("_mbps")
    long = long[long["mbps"] > 0]
    return (
        alt.Chart(long, title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("participants:Q", title="participants", scale=alt.Scale(domain=[1, 20])),
            y=alt.Y("mbps:Q", title="Mbit/s", scale=alt.Scale(type="log")),
            color=alt.Color(
                "topology:N",
                scale=alt.Scale(
                    domain=list(TOPOLOGY_COLOURS), range=list(TOPOLOGY_COLOURS.values())
                ),
            ),
            strokeDash=alt.StrokeDash(
                "who:N", scale=alt.Scale(domain=["host", "participant"], range=[[1, 0], [4, 3]])
            ),
            column=alt.Column("direction:N", title=None, sort=["upload", "download"]),
            tooltip=["participants:Q", "topology:N", "who:N", "direction:N", "mbps:Q"],
        )
        .properties(width=280, height=220)
    )


# ----------------------------------------------------------------- panel


class TopologyPanel(SnapshotPanel):
    """A participant-count slider (1..`maximum`) and a bit rate; each move re-plans
    a call of the first n nodes of `capabilities` and redraws its graph and the
    bandwidth of each participant. `last_plan` is what was drawn."""

    def __init__(
        self,
        capabilities: Mapping[NodeId, DeviceCapabilities],
        index: Mapping[NodeId, int],
        *,
        count: int = 4,
        bitrate_bps: int = STREAM_BITRATE_BPS,
        config: VoiceConfig = DEFAULT_CONFIG,
    ) -> None:
        if not capabilities:
            raise ValueError("no participant has advertised capabilities")
        self.capabilities = dict(capabilities)
        self.index = dict(index)
        self.config = config
        maximum = min(MAX_PARTICIPANTS, len(self.capabilities))
        self.count = widgets.IntSlider(
            value=min(max(count, 1), maximum), min=1, max=maximum, description="participants"
        )
        self.bitrate = widgets.IntSlider(
            value=bitrate_bps // 1000, min=8, max=128, step=8, description="kbit/s"
        )
        self.status = widgets.Label(value="")
        self.output = widgets.Output()
        self.widget = widgets.VBox(
            [widgets.HBox([self.count, self.bitrate]), self.status, self.output]
        )
        self.last_plan: CallPlan | None = None
        self.redraw()
        self.count.observe(self._on_change, names="value")
        self.bitrate.observe(self._on_change, names="value")

    def _on_change(self, _change: Any) -> None:
        self.redraw()

    def redraw(self) -> CallPlan:
        plan = plan_for_count(self.capabilities, self.count.value, config=self.config)
        bitrate = self.bitrate.value * 1000
        frame = plan_frame(plan, self.index, bitrate_bps=bitrate)
        chart = alt.hconcat(
            topology_chart(plan, self.index, bitrate_bps=bitrate),
            participant_bandwidth_chart(frame, title=f"at {self.bitrate.value} kbit/s a stream"),
        )
        self.status.value = describe_plan(plan, self.index)
        show_chart(self.output, chart)
        self.last_plan = plan
        self.refresh_snapshot()
        return plan


def topology_panel(
    capabilities: Mapping[NodeId, DeviceCapabilities],
    index: Mapping[NodeId, int],
    **options: Any,
) -> TopologyPanel:
    return TopologyPanel(capabilities, index, **options)


# ------------------------------------------------------------- live call


class RecordingRouter(MediaRouter):
    """A `MediaRouter` that also records the frame numbers its own node captured.

    A lab process that stalls for longer than the capture loop tolerates
    (`voice_media.MAX_CAPTURE_LAG`) skips frames at the source: those were
    never sent, and `stream_gaps` must not blame the call for them.
    """

    def __init__(self, node_id: NodeId) -> None:
        super().__init__(node_id)
        self.captured: list[int] = []

    def on_frame(
        self,
        source: NodeId,
        frame: int,
        payload: bytes,
        arrival: float,
        *,
        epoch: int | None = None,
    ) -> None:
        if source == self.node_id:
            self.captured.append(frame)
        super().on_frame(source, frame, payload, arrival, epoch=epoch)


class StallMeter:
    """Measures the stalls of the event loop it runs in: every `STALL_PROBE` it wakes,
    and a wake-up later than `STALL_SECONDS` is a stall from when it should have woken
    to when it did. All of a lab call's participants share that loop, so a stall is
    a time none of them captured, sent, forwarded or received a frame: the test
    process was starved of CPU (a busy machine) or busy elsewhere, not the call.
    """

    def __init__(self) -> None:
        #: (start, end) CLOCK_MONOTONIC seconds of every stall, in order.
        self.stalls: list[tuple[float, float]] = []

    async def run(self) -> None:
        due = time.monotonic() + STALL_PROBE
        while True:
            await anyio.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            if now - due > STALL_SECONDS:
                self.stalls.append((due, now))
            due = now + STALL_PROBE

    def stalled_since(self, since: float) -> float:
        """Seconds the loop was stalled after `since`."""
        return sum(end - max(start, since) for start, end in self.stalls if end > since)


def network_identities(network: LocalNetwork, nodes: Iterable[int]) -> list[Identity]:
    """The identities of `network`'s nodes at `nodes` (drawn again from its seed),
    checked against the ids the nodes run with."""
    chosen = [int(i) for i in nodes]
    drawn = identities(network.size, network.seed)
    ids = network.nodes()["node_id"].tolist()
    out = []
    for i in chosen:
        identity = drawn[i][0]
        if identity.node_id.hex() != ids[i]:
            raise ValueError(f"node {i} does not run under the identity its seed gives")
        out.append(identity)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStep:
    """One plan of a growing call: applied at `applied` and, make-before-break,
    in force everywhere at `switched` (seconds since the call started)."""

    epoch: int
    plan: CallPlan
    applied: float
    switched: float
    heard: bool  #: every listener heard every source after this step


@dataclass(frozen=True, slots=True, kw_only=True)
class GrownCall:
    """What `grow_call` recorded: the plans, and every frame every listener got."""

    participants: tuple[NodeId, ...]  #: in the order they joined
    steps: tuple[CallStep, ...]
    #: (listener, source) -> the frame numbers received (capture numbers, ascending).
    frames: Mapping[tuple[NodeId, NodeId], tuple[int, ...]]
    #: source -> the frame numbers it captured and sent (ascending).
    captured: Mapping[NodeId, tuple[int, ...]]
    #: Frame number captured when the call started (time 0 of `steps`).
    first_frame: int
    #: Frame number captured when the recording stopped.
    last_frame: int
    counters: Mapping[NodeId, Mapping[str, int]]
    #: (first, last) frame numbers captured during each measured stall of the call's
    #: event loop (`StallMeter`), in order.
    stalls: tuple[tuple[int, int], ...] = ()

    def capture_second(self, frame: int) -> float:
        """Seconds since the call started at which `frame` was captured."""
        return (frame - self.first_frame) * FRAME_SECONDS


def grow_call(
    identities: Sequence[Identity],
    capabilities: Mapping[NodeId, DeviceCapabilities],
    *,
    start: int = 4,
    hold: float = 1.0,
    config: VoiceConfig = DEFAULT_CONFIG,
    connect_timeout: float = 5.0,
) -> GrownCall:
    """A real call of the first `start` identities that the others join one at a time.

    Each step plans the call with `plan_call` (the step before as ``previous``)
    from `capabilities` and applies it on every participant, make-before-break;
    the call then runs `hold` seconds more. Runs in a worker thread with an
    event loop of its own and returns when the call has ended.
    """
    if not 1 <= start <= len(identities):
        raise ValueError(f"start must be in 1..{len(identities)}, got {start}")
    missing = [i.node_id for i in identities if NodeId(i.node_id) not in capabilities]
    if missing:
        raise ValueError(f"no capabilities for {short(missing[0])}")
    result: Future[GrownCall] = Future()

    def run() -> None:
        try:
            call = partial(_grow, list(identities), dict(capabilities), start, hold, config)
            result.set_result(anyio.run(call, connect_timeout, backend="asyncio"))
        except BaseException as exc:
            result.set_exception(exc)

    thread = threading.Thread(target=run, name="railgun-lab-call", daemon=True)
    thread.start()
    thread.join()
    return result.result()


async def _grow(
    people: list[Identity],
    capabilities: dict[NodeId, DeviceCapabilities],
    start: int,
    hold: float,
    config: VoiceConfig,
    connect_timeout: float,
) -> GrownCall:
    clip = opus_clip()
    call = _LabCall(
        clip=clip, clock=MediaClock(time.monotonic()), began=time.monotonic(), config=config
    )
    hosts = [NodeHost(identity) for identity in people]
    ids = [host.node_id for host in hosts]
    async with anyio.create_task_group() as tg:
        tg.start_soon(call.meter.run)
        for host in hosts:
            await tg.start(host.run)
        directory = {host.node_id: host.address for host in hosts}
        plan: CallPlan | None = None
        for size in range(start, len(hosts) + 1):
            for host in hosts[:size]:
                if host.node_id not in call.runners:
                    runner = CallRunner(
                        NodeSignalling(host, directory),
                        call_id=LAB_CALL_ID,
                        clock=call.clock,
                        clip=clip,
                        connect_timeout=connect_timeout,
                        capabilities=capabilities,
                        voice_config=config,
                    )
                    runner.router = RecordingRouter(host.node_id)  # before any frame flows
                    await tg.start(runner.run)
                    call.runners[host.node_id] = runner
            plan = plan_call({p: capabilities[p] for p in ids[:size]}, config=config, previous=plan)
            await call.step(plan)
            await anyio.sleep(hold)
        grown = call.record(ids)
        tg.cancel_scope.cancel()
    return grown


@dataclass(slots=True, kw_only=True)
class _LabCall:
    """The running call of `grow_call`: its runners and the steps taken so far."""

    clip: OpusClip
    clock: MediaClock
    began: float  #: CLOCK_MONOTONIC second the call started (time 0 of its steps)
    config: VoiceConfig
    runners: dict[NodeId, CallRunner] = field(default_factory=dict)
    steps: list[CallStep] = field(default_factory=list)
    meter: StallMeter = field(default_factory=StallMeter)

    async def step(self, plan: CallPlan) -> None:
        """Apply `plan` on every runner (make-before-break), then wait to hear everyone."""
        epoch = len(self.steps) + 1
        applied = time.monotonic() - self.began
        async with anyio.create_task_group() as apply_group:
            for runner in self.runners.values():
                apply_group.start_soon(partial(runner.apply, plan, epoch=epoch))
        switched = time.monotonic() - self.began
        mark = self.clock.current_frame(time.monotonic())
        heard = await _hear_everyone(self.runners, after=mark, meter=self.meter)
        self.steps.append(
            CallStep(epoch=epoch, plan=plan, applied=applied, switched=switched, heard=heard)
        )

    def record(self, participants: Sequence[NodeId]) -> GrownCall:
        """What every listener received and every source captured, up to now."""
        last = self.clock.current_frame(time.monotonic())
        runners = self.runners
        return GrownCall(
            participants=tuple(participants),
            steps=tuple(self.steps),
            frames={
                (me, source): tuple(sorted(set(runner.frames_from(source))))
                for me, runner in runners.items()
                for source in runners
                if source != me
            },
            captured={
                me: tuple(runner.router.captured)
                for me, runner in runners.items()
                if isinstance(runner.router, RecordingRouter)
            },
            first_frame=self.clock.current_frame(self.began),
            last_frame=last,
            counters={me: dict(runner.counters) for me, runner in runners.items()},
            stalls=tuple(
                (self.clock.current_frame(start), self.clock.current_frame(end))
                for start, end in self.meter.stalls
            ),
        )


async def _hear_everyone(
    runners: Mapping[NodeId, CallRunner], *, after: int, meter: StallMeter
) -> bool:
    """Wait until every listener heard `HEARING_FRAMES` frames of every source captured
    after frame `after`: at most `HEARING_TIMEOUT` seconds the loop ran (stalls
    measured by `meter` do not count), at most `HEARING_LIMIT` seconds in all."""

    def heard() -> bool:
        return all(
            sum(n > after for n in runner.frames_from(source)) >= HEARING_FRAMES
            for me, runner in runners.items()
            for source in runners
            if source != me
        )

    began = time.monotonic()
    while not heard():
        now = time.monotonic()
        if now - began - meter.stalled_since(began) > HEARING_TIMEOUT:
            return False
        if now - began > HEARING_LIMIT:
            return False
        await anyio.sleep(0.02)
    return True


# ------------------------------------------------------------- analysis


def fps_frame(
    call: GrownCall, index: Mapping[NodeId, int], *, bin_seconds: float = 0.2
) -> pd.DataFrame:
    """Frames per second of every stream, per `bin_seconds` of capture time (`FPS_COLUMNS`).

    A stream is counted from the first bin that starts at or after its first
    frame to the last complete bin; 50 is every frame. ``t`` is the bin's start in seconds since
    the call started; ``stream`` reads ``source→listener`` in node indices.
    """
    per_bin = max(1, round(bin_seconds / FRAME_SECONDS))
    end_bin = (call.last_frame - call.first_frame - TAIL_FRAMES) // per_bin
    rows = []
    for (listener, source), frames in call.frames.items():
        if not frames:
            continue
        counts: dict[int, int] = {}
        for n in frames:
            b = (n - call.first_frame) // per_bin
            counts[b] = counts.get(b, 0) + 1
        # The first bin a stream is judged in is the first it was there for all of.
        first_bin = -((call.first_frame - frames[0]) // per_bin)
        for b in range(first_bin, end_bin):
            rows.append(
                {
                    "t": round(b * per_bin * FRAME_SECONDS, 6),
                    "listener": index[listener],
                    "source": index[source],
                    "stream": f"{index[source]}→{index[listener]}",
                    "fps": counts.get(b, 0) / (per_bin * FRAME_SECONDS),
                }
            )
    return pd.DataFrame(rows, columns=list(FPS_COLUMNS))


def fps_summary(fps: pd.DataFrame) -> pd.DataFrame:
    """Per bin of an `fps_frame`: how many streams it measured and their lowest, median
    and highest frames/s (`FPS_SUMMARY_COLUMNS`), bins in time order."""
    grouped = fps.groupby("t", sort=True)["fps"]
    frame = pd.DataFrame(
        {
            "streams": grouped.size(),
            "min_fps": grouped.min(),
            "median_fps": grouped.median(),
            "max_fps": grouped.max(),
        }
    ).reset_index()
    return frame.astype({"t": "float64", "streams": "int64"})[list(FPS_SUMMARY_COLUMNS)]


def _runs(values: pd.Series) -> list[int]:
    """`values` with consecutive repeats collapsed: [12, 12, 20, 30, 30] -> [12, 20, 30]."""
    out: list[int] = []
    for value in values.tolist():
        if not out or out[-1] != value:
            out.append(int(value))
    return out


def _fps_over_time(fps: pd.DataFrame, call: GrownCall, index: Mapping[NodeId, int]) -> Any:
    """The min-max band and the median and min lines of `fps_summary`, the plan switches."""
    summary = fps_summary(fps)
    x = alt.X("t:Q", title="seconds since the call started (capture time)")
    y_scale = alt.Scale(domain=[0, 60])
    tooltip = ["t:Q", "streams:Q", "min_fps:Q", "median_fps:Q", "max_fps:Q"]
    band = (
        alt.Chart(summary)
        .mark_area(opacity=0.25, color="#4c78a8", interpolate="step-after")
        .encode(
            x=x,
            y=alt.Y("min_fps:Q", title="frames/s per stream", scale=y_scale),
            y2="max_fps:Q",
            tooltip=tooltip,
        )
    )
    statistics = {"median_fps": "median stream", "min_fps": "lowest stream"}
    long = summary.melt(id_vars=["t", "streams"], value_vars=list(statistics), var_name="statistic")
    long = long.rename(columns={"value": "fps"}).replace({"statistic": statistics})
    lines = (
        alt.Chart(long)
        .mark_line(interpolate="step-after")
        .encode(
            x=x,
            y=alt.Y("fps:Q", scale=y_scale),
            color=alt.Color(
                "statistic:N",
                title="over all streams",
                scale=alt.Scale(domain=list(statistics.values()), range=["#4c78a8", "#e45756"]),
            ),
            strokeDash=alt.StrokeDash(
                "statistic:N",
                scale=alt.Scale(domain=list(statistics.values()), range=[[1, 0], [4, 2]]),
                legend=None,
            ),
            tooltip=["t:Q", "streams:Q", "statistic:N", "fps:Q"],
        )
    )
    switches = pd.DataFrame(
        {
            "t": [step.applied for step in call.steps],
            "plan": [describe_plan(step.plan, index) for step in call.steps],
        }
    )
    rules = alt.Chart(switches).mark_rule(strokeDash=[4, 3], color="black").encode(x="t:Q")
    text = (
        alt.Chart(switches)
        .mark_text(align="left", dx=3, dy=-4, fontSize=9, baseline="bottom")
        .encode(x="t:Q", y=alt.value(12), text="plan:N")
    )
    return (band + lines + rules + text).properties(
        title=alt.TitleParams(
            "frames/s over time, all streams",
            subtitle=[
                "band: lowest to highest stream; 50 is every frame; dashed rules: new plans",
                "streams measured: " + " → ".join(str(n) for n in _runs(summary["streams"])),
            ],
        ),
        width=620,
        height=220,
    )


def _gap_strip(gaps: pd.DataFrame, tolerance: int) -> Any:
    """The longest run of lost frames of every stream, against the concealment limit."""
    data = gaps.assign(
        stream=[f"{s}→{d}" for s, d in zip(gaps["source"], gaps["listener"], strict=True)],
        longest_gap=gaps["longest_gap"].astype("float64"),
        frames=gaps["frames"].astype("int64"),
    )
    data["verdict"] = [
        "gap" if frames == 0 or not longest <= tolerance else "no gap"
        for frames, longest in zip(data["frames"], data["longest_gap"], strict=True)
    ]
    data["longest_gap"] = data["longest_gap"].fillna(float(tolerance + 1))
    data = data[["stream", "source", "listener", "frames", "missing", "longest_gap", "verdict"]]
    data = data.astype({"missing": "float64"})
    bad = int((data["verdict"] == "gap").sum())
    verdict = (
        "no stream had a gap"
        if no_gaps(gaps, tolerance=tolerance)
        else f"{bad} stream(s) had a gap"
    )
    order = data.sort_values(["source", "listener"])["stream"].tolist()
    top = max(float(data["longest_gap"].max()) if len(data) else 0.0, tolerance + 1.0)
    points = (
        alt.Chart(data)
        .mark_point(filled=True, size=50)
        .encode(
            x=alt.X("stream:N", sort=order, title="stream (source→listener)"),
            y=alt.Y(
                "longest_gap:Q",
                title="longest run of lost frames",
                scale=alt.Scale(domain=[0, top]),
                axis=alt.Axis(tickMinStep=1),
            ),
            color=alt.Color(
                "verdict:N",
                title="check",
                scale=alt.Scale(domain=["no gap", "gap"], range=["#54a24b", "#e45756"]),
            ),
            tooltip=["stream:N", "frames:Q", "missing:Q", "longest_gap:Q", "verdict:N"],
        )
    )
    limit = (
        alt.Chart(pd.DataFrame({"limit": [tolerance]}))
        .mark_rule(color="#e45756", strokeDash=[4, 3])
        .encode(y="limit:Q")
    )
    return (points + limit).properties(
        title=alt.TitleParams(
            f"the no-gap check: {verdict} ({len(data)} streams)",
            subtitle=f"dashed: {tolerance} frames ({tolerance * 20} ms), what concealment fills",
        ),
        width=620,
        height=120,
    )


def fps_chart(
    fps: pd.DataFrame,
    call: GrownCall,
    index: Mapping[NodeId, int],
    *,
    gaps: pd.DataFrame | None = None,
    tolerance: int = MAX_CONCEALED_FRAMES,
    title: str = "frames/s of every stream",
) -> Any:
    """What every stream of a call delivered, in two panels that read at a glance.

    Top: per bin of `fps` (an `fps_frame`), the lowest, median and highest
    frames/s over all streams (`fps_summary`), with a rule where each plan
    was applied: a stream that lost frames pulls the lowest line down.
    Bottom: the no-gap check (`no_gaps`), one point per stream of `gaps`
    (default: `stream_gaps` of `call`) at its longest run of lost frames,
    against the `tolerance` line.
    """
    gaps = stream_gaps(call, index) if gaps is None else gaps
    return alt.vconcat(
        _fps_over_time(fps, call, index), _gap_strip(gaps, tolerance), title=title
    ).resolve_scale(color="independent")


def stalled_frames(call: GrownCall, *, margin: int = STALL_MARGIN_FRAMES) -> frozenset[int]:
    """The frames captured during a measured stall of the call's loop, or within
    `margin` frames of one: their loss is the machine's, not the call's."""
    return frozenset(
        n for first, last in call.stalls for n in range(first - margin, last + margin + 1)
    )


def stream_gaps(call: GrownCall, index: Mapping[NodeId, int]) -> pd.DataFrame:
    """Per stream, from its first frame to the end of the recording (less `TAIL_FRAMES`
    still in flight): the frames it delivered, the frames its source ``skipped`` (never
    captured: the lab process stalled), the captured frames it ``missing`` (lost on the
    way), of those the ones ``excused`` (lost around a measured stall of the call's
    event loop, `stalled_frames`), and the longest run of consecutive captured frames
    it lost that were not excused (`GAP_COLUMNS`): an excused frame neither ends a run
    nor adds to it. A stream that never delivered a frame has <NA> in every column
    but ``frames`` (0)."""
    end = call.last_frame - TAIL_FRAMES
    stalled = stalled_frames(call)
    rows = []
    for (listener, source), frames in sorted(
        call.frames.items(), key=lambda item: (index[item[0][0]], index[item[0][1]])
    ):
        judged = [n for n in frames if n <= end]
        row: dict[str, Any] = {"listener": index[listener], "source": index[source]}
        if not judged:
            rows.append(row | {"frames": 0})
            continue
        first = judged[0]
        received = set(judged)
        sent = [n for n in call.captured.get(source, ()) if first <= n <= end]
        lost = [n for n in sent if n not in received]
        rows.append(
            row
            | {
                "first_frame": first,
                "last_frame": judged[-1],
                "frames": len(judged),
                "skipped": (end - first + 1) - len(sent),
                "missing": len(lost),
                "longest_gap": _longest_run(sent, received, stalled),
                "excused": sum(1 for n in lost if n in stalled),
            }
        )
    frame = pd.DataFrame(rows, columns=list(GAP_COLUMNS))
    for column in ("first_frame", "last_frame", "skipped", "missing", "longest_gap", "excused"):
        frame[column] = frame[column].astype("Int64")
    frame["frames"] = frame["frames"].astype("int64")
    return frame


def _longest_run(sent: Sequence[int], received: set[int], excused: frozenset[int]) -> int:
    """The longest run of frames of `sent` not `received`, `excused` ones left out."""
    longest = run = 0
    for n in sent:
        if n in received:
            run = 0
        elif n not in excused:
            run += 1
            longest = max(longest, run)
    return longest


def no_gaps(gaps: pd.DataFrame, *, tolerance: int = MAX_CONCEALED_FRAMES) -> bool:
    """True if every stream of a `stream_gaps` table delivered frames and none lost
    more than `tolerance` consecutive frames its source sent, from its first frame on
    (frames lost around a measured stall of the lab's own event loop left out)."""
    if gaps.empty:
        return False
    delivered = bool((gaps["frames"] > 0).all())
    return delivered and bool((gaps["longest_gap"].fillna(tolerance + 1) <= tolerance).all())
