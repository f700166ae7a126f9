"""Voice lab helpers: plans from live advertisements, graphs, bandwidth, the panel, live calls.

Offline tests build plans and recorded calls by hand; the ones marked
``integration`` advertise through a live localhost DHT or run a real call.
"""

from collections.abc import Iterator
from typing import Any

import altair as alt
import anyio
import pandas as pd
import pytest

from railgun_ref.capacity import Availability, BatteryStatus, DeviceCapabilities, DeviceClass
from railgun_ref.capacity.nat import NatType
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.voice_media import CallRunner
from railgun_ref.lab import LocalNetwork, advertise_population, fetch_advertisements
from railgun_ref.lab.capacity import load_population
from railgun_ref.lab.network import identities
from railgun_ref.lab.voice import (
    BANDWIDTH_COLUMNS,
    FPS_COLUMNS,
    FPS_SUMMARY_COLUMNS,
    GAP_COLUMNS,
    MAX_CONCEALED_FRAMES,
    PLAN_COLUMNS,
    CallStep,
    GrownCall,
    RecordingRouter,
    TopologyPanel,
    advertised_capabilities,
    bandwidth_chart,
    bandwidth_comparison,
    describe_plan,
    forced_plan,
    fps_chart,
    fps_frame,
    fps_summary,
    grow_call,
    network_identities,
    no_gaps,
    node_index,
    participants_of,
    plan_for_count,
    plan_frame,
    stalled_frames,
    stream_gaps,
    topology_chart,
    topology_layout,
)
from railgun_ref.voice import CallPlan, Topology, plan_call

MBPS = 125_000


def node(n: int) -> NodeId:
    return NodeId(bytes([n]) * 32)


def device(device_class: DeviceClass, upload_mbps: float) -> DeviceCapabilities:
    upload = int(upload_mbps * MBPS)
    return DeviceCapabilities(
        device_class=device_class,
        upload_bandwidth=upload,
        download_bandwidth=upload,
        max_relay_connections=32,
        max_relay_bandwidth=upload,
        can_act_as_turn=False,
        can_store_messages=False,
        nat_type=NatType.OPEN,
        battery_status=BatteryStatus(level_percent=100, plugged_in=True),
        availability=Availability.ALWAYS,
    )


def population_of(count: int, *, best: int) -> dict[NodeId, DeviceCapabilities]:
    """`count` phones on cellular (never hosts) and one server at position `best`."""
    return {
        node(i): device(DeviceClass.SERVER, 100)
        if i == best
        else device(DeviceClass.MOBILE_CELLULAR, 5)
        for i in range(1, count + 1)
    }


INDEX = {node(i): i for i in range(1, 30)}


def data_of(chart: Any) -> pd.DataFrame:
    """The DataFrame a chart (or layer) was built from."""
    assert isinstance(chart.data, pd.DataFrame)
    return chart.data


# ---------------------------------------------------------------- planning


def test_a_call_of_n_is_the_first_n_nodes_planned_by_voice() -> None:
    """VOICE-2.1: the first n entries, mesh up to 4, the eligible server hosts from 5."""
    caps = population_of(8, best=3)
    assert list(participants_of(caps, 3)) == [node(1), node(2), node(3)]
    assert plan_for_count(caps, 4).topology is Topology.MESH
    five = plan_for_count(caps, 5)
    assert five == plan_call(participants_of(caps, 5))
    assert five.topology is Topology.SFU and five.hosts == (node(3),)
    assert describe_plan(five, INDEX) == "5 participants: sfu, hosts 3"
    for bad in (0, 9):
        with pytest.raises(ValueError, match="count"):
            participants_of(caps, bad)


def test_without_an_eligible_host_the_plan_says_it_is_degraded() -> None:
    """VOICE-3.5: no participant may host: a mesh, marked degraded."""
    caps = {node(i): device(DeviceClass.MOBILE_CELLULAR, 5) for i in range(1, 7)}
    plan = plan_for_count(caps, 6)
    assert plan.topology is Topology.MESH
    assert describe_plan(plan, INDEX) == "6 participants: mesh (degraded: no-eligible-host)"


def test_plan_frame_counts_streams_and_bandwidth_per_participant() -> None:
    """VOICE-3.6: an SFU host of 5 sends 4 x 4 streams, the others 1; all receive 4."""
    plan = plan_for_count(population_of(5, best=2), 5)
    frame = plan_frame(plan, INDEX, bitrate_bps=50_000)
    assert list(frame.columns) == list(PLAN_COLUMNS)
    host = frame[frame["role"] == "host"].iloc[0]
    assert (host["node"], host["streams_up"], host["streams_down"]) == (2, 16, 4)
    assert host["upload_kbps"] == 16 * 50.0
    others = frame[frame["role"] == "participant"]
    assert len(others) == 4
    assert (others["streams_up"] == 1).all() and (others["download_kbps"] == 200.0).all()
    assert (frame["host"] == 2).all()
    mesh = plan_frame(plan_for_count(population_of(5, best=2), 3), INDEX)
    assert mesh["host"].isna().all() and (mesh["streams_up"] == 2).all()


# ------------------------------------------------------------------ graphs


def distributed_plan() -> CallPlan:
    ids = [node(i) for i in range(1, 7)]
    return CallPlan(
        topology=Topology.DISTRIBUTED_SFU,
        participants=tuple(ids),
        hosts=(ids[0], ids[1]),
        assignment={p: ids[k % 2] for k, p in enumerate(ids)},  # hosts 0, 1 to themselves
    )


def test_the_layout_puts_a_mesh_on_a_circle_and_a_single_host_in_the_middle() -> None:
    mesh = plan_for_count(population_of(4, best=1), 4)
    for x, y in topology_layout(mesh).values():
        assert x * x + y * y == pytest.approx(1.0)
    sfu = plan_for_count(population_of(6, best=4), 6)
    positions = topology_layout(sfu)
    assert positions[node(4)] == pytest.approx((0.0, 0.0))
    for p, (x, y) in positions.items():
        if p != node(4):
            assert x * x + y * y == pytest.approx(1.0)
    spread = topology_layout(distributed_plan())
    assert [round(x * x + y * y, 6) for x, y in spread.values()] == [0.25] * 2 + [1.0] * 4


def test_the_topology_chart_draws_every_media_link_and_marks_hosts() -> None:
    """VOICE-1.1: a distributed SFU's links are participant-host plus the host pair."""
    plan = distributed_plan()
    chart = topology_chart(plan, INDEX)
    assert isinstance(chart, alt.LayerChart)
    edges, points, _labels = (data_of(layer) for layer in chart.layer)
    assert len(edges) == len(plan.media_links()) == 4 + 1
    assert edges["kind"].value_counts().to_dict() == {"to host": 4, "host-host": 1}
    assert sorted(points.loc[points["role"] == "host", "node"]) == [1, 2]
    assert chart.to_dict()["title"] == "6 participants: distributed-sfu, hosts 1, 2"


# --------------------------------------------------------------- bandwidth


def test_forced_plans_have_the_topology_asked_for() -> None:
    assert forced_plan(Topology.MESH, 3).hosts == ()
    assert len(forced_plan(Topology.SFU, 7).hosts) == 1
    spread = forced_plan(Topology.DISTRIBUTED_SFU, 7, hosts=3)
    assert [len(spread.served_by(h)) for h in spread.hosts] == [3, 2, 2]
    with pytest.raises(ValueError):
        forced_plan(Topology.DISTRIBUTED_SFU, 1)


def test_bandwidth_comparison_follows_voice_3_6() -> None:
    """VOICE-3.2, VOICE-3.6 at N = 5, r = 64 kbit/s: mesh 4 streams each way; an SFU
    host 16 up; each of two hosts serving 3 and 2: (L-1)(N-1) + L up."""
    frame = bandwidth_comparison([1, 5], bitrate_bps=64_000)
    assert list(frame.columns) == list(BANDWIDTH_COLUMNS)
    at5 = frame[frame["participants"] == 5].set_index(["topology", "who"])
    r = 0.064
    assert at5.loc[("mesh", "participant"), "upload_mbps"] == pytest.approx(4 * r)
    assert at5.loc[("sfu", "host"), "upload_mbps"] == pytest.approx(16 * r)
    assert at5.loc[("sfu", "participant"), "upload_mbps"] == pytest.approx(r)
    assert at5.loc[("distributed-sfu", "host"), "upload_mbps"] == pytest.approx(11 * r)
    assert at5["download_mbps"].tolist() == pytest.approx([4 * r] * len(at5))
    assert ("mesh", "host") not in at5.index
    at1 = frame[frame["participants"] == 1]
    assert set(at1["topology"]) == {"mesh", "sfu"}  # no second host for a call of one


def test_the_bandwidth_chart_leaves_out_zero_rates_on_its_log_axis() -> None:
    chart = bandwidth_chart(bandwidth_comparison(range(1, 4)))
    data = data_of(chart)
    assert (data["mbps"] > 0).all()
    assert set(data["direction"]) == {"upload", "download"}
    chart.to_dict()  # a valid vega-lite spec


# ------------------------------------------------------------------- panel


def test_the_panel_replans_when_the_slider_moves() -> None:
    caps = population_of(20, best=7)
    panel = TopologyPanel(caps, INDEX, count=4)
    assert panel.count.min == 1 and panel.count.max == 20
    assert panel.last_plan is not None and panel.last_plan.topology is Topology.MESH
    panel.count.value = 9
    assert panel.last_plan.hosts == (node(7),)
    assert panel.status.value == "9 participants: sfu, hosts 7"
    assert len(panel.output.outputs) == 1
    panel.bitrate.value = 32
    assert "at 32 kbit/s" in str(panel.output.outputs[0]["data"])
    with pytest.raises(ValueError):
        TopologyPanel({}, INDEX)


# --------------------------------------------------------- recorded calls


def recorded_call() -> GrownCall:
    """Listener 1 hears source 2 with frames 103, 104 lost (a gap of 2) and source 2
    skipped 110..114 (never sent); listener 2 hears source 1 from frame 150 on."""
    a, b = node(1), node(2)
    captured_b = [n for n in range(100, 200) if not 110 <= n <= 114]
    heard_b = [n for n in captured_b if n not in (103, 104)]
    plan = forced_plan(Topology.MESH, 2)
    return GrownCall(
        participants=(a, b),
        steps=(CallStep(epoch=1, plan=plan, applied=0.0, switched=0.1, heard=True),),
        frames={(a, b): tuple(heard_b), (b, a): tuple(range(150, 200))},
        captured={a: tuple(range(100, 200)), b: tuple(captured_b)},
        first_frame=100,
        last_frame=199,
        counters={},
    )


def test_stream_gaps_count_losses_against_what_the_source_sent() -> None:
    gaps = stream_gaps(recorded_call(), INDEX)
    assert list(gaps.columns) == list(GAP_COLUMNS)
    one = gaps[(gaps["listener"] == 1) & (gaps["source"] == 2)].iloc[0]
    # judged up to frame 189 (199 - TAIL_FRAMES)
    assert (one["first_frame"], one["frames"], one["skipped"]) == (100, 83, 5)
    assert (one["missing"], one["longest_gap"]) == (2, 2)
    two = gaps[(gaps["listener"] == 2) & (gaps["source"] == 1)].iloc[0]
    assert (two["first_frame"], two["missing"], two["longest_gap"]) == (150, 0, 0)
    assert no_gaps(gaps)
    assert not no_gaps(gaps, tolerance=1)


def test_a_loss_during_a_measured_stall_is_excused_and_one_outside_is_not() -> None:
    """A run of lost frames is the call's unless the call's own loop was measured
    stalled then (frames 120..121, margin 5: 115..126 excused); an excused frame
    neither ends a run nor adds to it."""
    call = recorded_call()
    lost = {120, 121, 122, 123, 124, 125, 126, 127, 128, 140, 141, 142}
    frames = {
        **call.frames,
        (node(1), node(2)): tuple(n for n in call.frames[node(1), node(2)] if n not in lost),
    }
    stalled = GrownCall(**{**_fields(call), "frames": frames, "stalls": ((120, 121),)})
    assert stalled_frames(stalled) == frozenset(range(115, 127))
    one = stream_gaps(stalled, INDEX).iloc[0]
    assert (one["missing"], one["excused"], one["longest_gap"]) == (14, 7, 3)  # 127, 128, 140..142
    assert not no_gaps(stream_gaps(stalled, INDEX))
    quiet = GrownCall(**{**_fields(call), "frames": frames})
    assert stream_gaps(quiet, INDEX).iloc[0]["longest_gap"] == 9  # 120..128


def _fields(call: GrownCall) -> dict[str, Any]:
    return {name: getattr(call, name) for name in GrownCall.__slots__}


def test_a_silent_stream_is_a_gap() -> None:
    call = recorded_call()
    silent = GrownCall(
        participants=call.participants,
        steps=call.steps,
        frames={**call.frames, (node(2), node(1)): ()},
        captured=call.captured,
        first_frame=call.first_frame,
        last_frame=call.last_frame,
        counters={},
    )
    gaps = stream_gaps(silent, INDEX)
    assert gaps["frames"].tolist() == [83, 0]
    assert gaps["longest_gap"].isna().tolist() == [False, True]
    assert not no_gaps(gaps)
    assert not no_gaps(gaps.iloc[0:0])


def test_fps_frame_bins_frames_by_capture_time() -> None:
    """50 frames/s is every frame; a stream starts at its first whole bin."""
    call = recorded_call()
    fps = fps_frame(call, INDEX, bin_seconds=0.2)
    assert list(fps.columns) == list(FPS_COLUMNS)
    heard = fps[fps["stream"] == "2→1"].set_index("t")["fps"]
    # bins of 10 frames up to frame 189: 100-109 lose 103, 104; 110-119 lose 110-114
    assert heard.round(6).to_dict() == {
        0.0: 40.0,
        0.2: 25.0,
        0.4: 50.0,
        0.6: 50.0,
        0.8: 50.0,
        1.0: 50.0,
        1.2: 50.0,
        1.4: 50.0,
    }
    late = fps[fps["stream"] == "1→2"]
    assert late["t"].min() == pytest.approx(1.0) and (late["fps"] == 50.0).all()


def test_fps_summary_gives_lowest_median_highest_per_bin() -> None:
    fps = pd.DataFrame(
        {
            "t": [0.0, 0.0, 0.0, 0.2, 0.2],
            "listener": [1, 2, 3, 1, 2],
            "source": [2, 1, 1, 2, 1],
            "stream": ["2→1", "1→2", "1→3", "2→1", "1→2"],
            "fps": [50.0, 40.0, 45.0, 50.0, 25.0],
        }
    )
    summary = fps_summary(fps)
    assert tuple(summary.columns) == FPS_SUMMARY_COLUMNS
    assert summary.values.tolist() == [[0.0, 3, 40.0, 45.0, 50.0], [0.2, 2, 25.0, 37.5, 50.0]]


def test_the_fps_chart_summarises_streams_and_shows_the_gap_check() -> None:
    """Top: lowest/median/highest frames/s over time with the plan rules; bottom: one point
    per stream at its longest run of lost frames, against the concealment limit."""
    call = recorded_call()
    fps = fps_frame(call, INDEX, bin_seconds=0.2)
    chart = fps_chart(fps, call, INDEX)
    over_time, check = chart.vconcat
    band, lines, rules, _labels = over_time.layer
    assert data_of(band).equals(fps_summary(fps))
    assert set(data_of(lines)["statistic"]) == {"median stream", "lowest stream"}
    assert data_of(lines)["fps"].min() == 25.0  # 2→1 lost frames 110..114's bin
    assert data_of(rules)["plan"].tolist() == ["2 participants: mesh"]
    points, limit = check.layer
    strip = data_of(points).set_index("stream")
    assert sorted(strip.index) == ["1→2", "2→1"]
    assert strip.loc["2→1", "longest_gap"] == 2 and strip.loc["2→1", "verdict"] == "no gap"
    assert data_of(limit)["limit"].tolist() == [MAX_CONCEALED_FRAMES]
    assert "no stream had a gap (2 streams)" in check.title.text
    strict = fps_chart(fps, call, INDEX, tolerance=1).vconcat[1]
    assert data_of(strict.layer[0]).set_index("stream").loc["2→1", "verdict"] == "gap"
    assert "1 stream(s) had a gap" in strict.title.text


def test_the_recording_router_keeps_its_own_frames_only() -> None:
    router = RecordingRouter(node(1))
    router.on_frame(node(1), 5, b"x", 0.0)
    router.on_frame(node(2), 6, b"y", 0.0, epoch=1)
    assert router.captured == [5]
    assert router.logs[node(2)].frames == [6]


# ---------------------------------------------------------------- live


@pytest.fixture(scope="module")
def advertising() -> Iterator[LocalNetwork]:
    with LocalNetwork.start(8, seed=21, join=True) as net:
        yield net


@pytest.mark.integration
def test_capabilities_come_back_from_the_dht_in_node_order(advertising: LocalNetwork) -> None:
    """CAP-3.5: what node 0 fetched and verified is what each node advertised."""
    sent = advertise_population(advertising, load_population(), seed=2)
    fetched = fetch_advertisements(advertising, via=0)
    caps = advertised_capabilities(advertising, fetched)
    index = node_index(advertising)
    assert [index[n] for n in caps] == list(range(8))
    assert [c.device_class.value for c in caps.values()] == sent["device_class"].tolist()
    assert list(caps) == [
        NodeId(bytes.fromhex(text)) for text in advertising.nodes()["node_id"].tolist()
    ]


@pytest.mark.integration
def test_network_identities_are_the_nodes_own(advertising: LocalNetwork) -> None:
    people = network_identities(advertising, [0, 5])
    ids = advertising.nodes()["node_id"].tolist()
    assert [p.node_id.hex() for p in people] == [ids[0], ids[5]]
    with pytest.raises(IndexError):
        network_identities(advertising, [8])


def test_grow_call_refuses_a_bad_start_or_unknown_capabilities() -> None:
    people = [identity for identity, _ in identities(1, seed=4)]
    caps = {NodeId(people[0].node_id): device(DeviceClass.SERVER, 100)}
    with pytest.raises(ValueError, match="start"):
        grow_call(people, caps, start=2)
    with pytest.raises(ValueError, match="capabilities"):
        grow_call(people, {}, start=1)


def grow_five() -> tuple[GrownCall, dict[NodeId, int]]:
    """Four laptops in a mesh, then node 2 (a server) joins: the call moves to its SFU."""
    with LocalNetwork.start(5, seed=9) as net:
        people = network_identities(net, range(5))
        index = node_index(net)
    caps = {
        NodeId(p.node_id): device(DeviceClass.SERVER if i == 2 else DeviceClass.LAPTOP_PLUGGED, 10)
        for i, p in enumerate(people)
    }
    return grow_call(people, caps, start=4, hold=0.5), index


@pytest.mark.integration
def test_a_live_call_grows_from_mesh_to_sfu_without_a_gap() -> None:
    """VOICE-2.1, VOICE-4.2: four in a mesh, a fifth joins and the call moves to the
    server's SFU make-before-break; every stream delivers every frame its source sent
    (within Opus concealment), across the switch, but for frames lost while the test
    process itself was measured stalled (a busy machine)."""
    call, index = grow_five()
    assert [describe_plan(s.plan, index) for s in call.steps] == [
        "4 participants: mesh",
        "5 participants: sfu, hosts 2",
    ]
    assert all(step.heard for step in call.steps), (call.counters, call.stalls)
    gaps = stream_gaps(call, index)
    assert len(gaps) == 20
    assert no_gaps(gaps), (gaps, call.stalls)
    fps = fps_frame(call, index)
    assert set(fps["stream"]) == {f"{s}→{d}" for s in range(5) for d in range(5) if s != d}


@pytest.mark.integration
def test_the_gap_check_fails_a_call_that_breaks_before_it_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check can fail: runners that close their old links a second before
    they start the new plan's (break-before-make, what VOICE-4.2 forbids) leave the
    streams of the first four silent meanwhile, and `no_gaps` says so. The loop is
    idle during that second, so no measured stall excuses the gap."""
    make = CallRunner.apply

    async def break_first(runner: CallRunner, plan: Any, *, epoch: int | None = None) -> None:
        await runner._close_links(list(runner._links.values()))
        await anyio.sleep(1.0)
        await make(runner, plan, epoch=epoch)

    monkeypatch.setattr(CallRunner, "apply", break_first)
    call, index = grow_five()
    gaps = stream_gaps(call, index)
    first_four = gaps[(gaps["source"] != 4) & (gaps["listener"] != 4)]
    assert len(first_four) == 12
    assert (first_four["longest_gap"] > MAX_CONCEALED_FRAMES).all(), (gaps, call.stalls)
    assert not no_gaps(gaps)
