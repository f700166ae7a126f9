"""Call plans: thresholds, election, capacity, assignment, fallbacks, bandwidth (VOICE-1..3)."""

import re

import pytest

from railgun_ref.capacity import BatteryStatus, DeviceClass, NatType
from railgun_ref.conformance.traceability import SPEC_PATH
from railgun_ref.voice import (
    DEFAULT_CONFIG,
    CallPlan,
    Degradation,
    Topology,
    VoiceConfig,
    VoiceError,
    bandwidth_per_participant,
    host_candidates,
    host_capacity,
    host_upload_streams,
    link,
    minimum_hosts,
    participants_from_pairs,
    plan_call,
    state_diagram,
    stream_budget,
    stream_counts,
)
from railgun_ref.voice import topology as topo

from .helpers import caps, desktops, laptop, node, phone, server

SPEC = SPEC_PATH.read_text(encoding="utf-8")
VOICE = SPEC[SPEC.index("## 16. Voice topology (VOICE)") : SPEC.index("## 17.")]


# ------------------------------------------------------------------ VOICE-1


def test_plan_invariants_are_checked() -> None:
    """VOICE-1.1: a plan that breaks a structural rule is refused when built."""
    a, b, c = node(1), node(2), node(3)
    with pytest.raises(VoiceError):
        CallPlan(topology=Topology.MESH, participants=(a, b), hosts=(a,), assignment={})
    with pytest.raises(VoiceError):
        CallPlan(topology=Topology.SFU, participants=(a, b), hosts=(a, b), assignment={})
    with pytest.raises(VoiceError):
        CallPlan(
            topology=Topology.DISTRIBUTED_SFU,
            participants=(a, b),
            hosts=(a,),
            assignment={a: a, b: a},
        )
    with pytest.raises(VoiceError):
        CallPlan(topology=Topology.SFU, participants=(b, a), hosts=(a,), assignment={a: a, b: a})
    with pytest.raises(VoiceError):  # c unassigned
        CallPlan(topology=Topology.SFU, participants=(a, b, c), hosts=(a,), assignment={a: a, b: a})
    with pytest.raises(VoiceError):  # a host assigned elsewhere
        CallPlan(
            topology=Topology.DISTRIBUTED_SFU,
            participants=(a, b, c),
            hosts=(a, b),
            assignment={a: a, b: a, c: b},
        )
    with pytest.raises(VoiceError):
        CallPlan(topology=Topology.MESH, participants=(), hosts=(), assignment={})


def test_media_links_per_topology() -> None:
    """VOICE-1.1: mesh all pairs; SFU a star; distributed stars plus host pairs."""
    mesh = plan_call(desktops(4))
    assert len(mesh.media_links()) == 6
    sfu = plan_call(desktops(6))
    assert sfu.media_links() == tuple(link(node(1), node(n)) for n in range(2, 7))
    dist = plan_call(desktops(13))
    hosts = dist.hosts
    host_pairs = {link(x, y) for i, x in enumerate(hosts) for y in hosts[i + 1 :]}
    assert host_pairs <= set(dist.media_links())
    assert len(dist.media_links()) == 13 - len(hosts) + len(host_pairs)
    assert all(a < b for a, b in dist.media_links())
    assert sfu.links_of(node(3)) == (link(node(1), node(3)),)


def test_plan_json_round_trip() -> None:
    """VOICE-1.1: the JSON form parses back to the same plan; a malformed one is refused."""
    plan = plan_call(desktops(13))
    assert CallPlan.from_json(plan.to_json()) == plan
    broken = plan.to_json() | {"topology": "star"}
    with pytest.raises(VoiceError):
        CallPlan.from_json(broken)
    with pytest.raises(VoiceError):
        CallPlan.from_json({"topology": "mesh"})


def test_empty_and_duplicate_calls_are_refused() -> None:
    """VOICE-1.2: no participant, or a NodeId twice, is the caller's error."""
    with pytest.raises(VoiceError):
        plan_call({})
    with pytest.raises(VoiceError):
        participants_from_pairs([(node(1), caps()), (node(1), laptop())])
    with pytest.raises(VoiceError):
        plan_call({node(1)[:31]: caps()})  # type: ignore[dict-item]


def test_plan_ignores_input_order() -> None:
    """VOICE-1.2: the same participants in any order give the same plan."""
    people = {**desktops(12), node(40): server(), node(41): laptop()}
    reverse = dict(reversed(list(people.items())))
    assert plan_call(people) == plan_call(reverse)


# ------------------------------------------------------------------ VOICE-2


@pytest.mark.parametrize(("count", "least"), [(1, 0), (4, 0), (5, 1), (12, 1), (13, 2), (40, 2)])
def test_thresholds_without_previous(count: int, least: int) -> None:
    """VOICE-2.1: 1-4 mesh, 5-12 at least one host, 13+ at least two."""
    assert minimum_hosts(count, None, DEFAULT_CONFIG) == least
    people = {**desktops(count - 1), node(99): server()}
    plan = plan_call(people)
    assert len(plan.hosts) >= least
    assert (plan.topology is Topology.MESH) == (least == 0)


def test_hysteresis_on_the_count() -> None:
    """VOICE-2.2: hosted down to 4, mesh at 3; two hosts down to 12, one at 11."""
    five = plan_call(desktops(5))
    assert plan_call(desktops(4), previous=five).topology is Topology.SFU
    assert plan_call(desktops(3), previous=five).topology is Topology.MESH
    big = {**desktops(12), node(99): server()}
    thirteen = plan_call(big)
    assert thirteen.topology is Topology.DISTRIBUTED_SFU
    del big[node(12)]
    twelve = plan_call(big, previous=thirteen)
    assert twelve.topology is Topology.DISTRIBUTED_SFU
    del big[node(11)]
    assert plan_call(big, previous=twelve).topology is Topology.SFU
    mesh4 = plan_call(desktops(4))
    assert plan_call(desktops(4), previous=mesh4).topology is Topology.MESH


def test_election_by_score_then_node_id() -> None:
    """VOICE-2.3: highest score hosts; equal scores go to the smallest NodeId."""
    assert plan_call(desktops(5)).hosts == (node(1),)
    people = {**desktops(4), node(200): server()}
    assert plan_call(people).hosts == (node(200),)


def test_ineligible_and_excluded_participants_do_not_host() -> None:
    """VOICE-2.3, VOICE-5.1: CAP-4.2/4.3 rule out; excluded nodes are skipped."""
    people = {
        node(1): caps(device_class=DeviceClass.SERVER, nat_type=NatType.SYMMETRIC),
        node(2): caps(
            device_class=DeviceClass.LAPTOP_BATTERY,
            battery_status=BatteryStatus(level_percent=20, plugged_in=False),
        ),
        node(3): phone(),
        node(4): laptop(),
        node(5): laptop(),
    }
    assert [c.node_id for c in host_candidates(people)] == [node(4), node(5)]
    assert plan_call(people).hosts == (node(4),)
    assert plan_call(people, excluded={node(4)}).hosts == (node(5),)


def test_incumbent_margin() -> None:
    """VOICE-2.3: a challenger unseats a host only by more than 10000 millipoints."""
    five = plan_call(desktops(5))  # host node(1), 90 points
    powerful = {**desktops(4), node(0): caps(device_class=DeviceClass.DESKTOP_POWERFUL)}
    assert plan_call(powerful, previous=five).hosts == (node(1),)
    assert plan_call(powerful).hosts == (node(0),)
    tie = {**desktops(4), node(0): server()}  # exactly 10 points better
    assert plan_call(tie, previous=five).hosts == (node(1),)
    laptops = plan_call({node(n): laptop() for n in range(1, 6)})  # 51 points
    challenged = {**{node(n): laptop() for n in range(1, 5)}, node(0): caps()}  # 90 > 61
    assert plan_call(challenged, previous=laptops).hosts == (node(0),)


# ------------------------------------------------------------------ VOICE-3


def test_stream_budget_and_capacity() -> None:
    """VOICE-3.1, VOICE-3.2: budget in whole streams; capacity from streams and connections."""
    assert stream_budget(caps()) == 625_000 * 8 // 64_000 == 78
    assert stream_budget(caps(upload_bandwidth=8_000)) == 1  # upload caps the relay figure
    assert host_upload_streams(9, 9, 1) == 64
    assert host_capacity(caps(), 9, 1) == 9
    assert host_capacity(caps(), 10, 1) == 9  # 81 streams would not fit
    assert host_capacity(caps(max_relay_connections=3), 9, 1) == 4  # 3 links + itself
    assert host_capacity(caps(max_relay_connections=0), 9, 2) == 0  # no link to the other host
    assert host_capacity(caps(max_relay_bandwidth=0), 5, 1) == 1  # serves only itself
    exact = caps(max_relay_bandwidth=16 * 8_000)
    assert host_capacity(exact, 5, 1) == 5
    assert host_capacity(caps(max_relay_bandwidth=16 * 8_000 - 1), 5, 1) == 4


def test_host_count_follows_capacity() -> None:
    """VOICE-3.3: the fewest hosts that carry the call; the first set that carries it."""
    assert plan_call(desktops(9)).topology is Topology.SFU
    ten = plan_call(desktops(10))
    assert ten.hosts == (node(1), node(2))
    assert len(plan_call(desktops(13)).hosts) == 3
    weak = caps(device_class=DeviceClass.SERVER, max_relay_bandwidth=127_999)
    people = {node(1): weak, **desktops(4, first=2)}
    assert plan_call(people).hosts == (node(2),)  # one desktop beats two hosts


def test_host_count_hysteresis() -> None:
    """VOICE-3.3: hosts kept while they would still carry one more participant."""
    ten = plan_call(desktops(10))
    nine = plan_call(desktops(9), previous=ten)
    assert nine.hosts == ten.hosts
    assert plan_call(desktops(10), previous=nine).hosts == ten.hosts
    assert plan_call(desktops(8), previous=nine).hosts == (node(1),)


def test_assignment_balances_and_sticks() -> None:
    """VOICE-3.4: hosts serve themselves; previous hosts kept; the rest to the most room."""
    twenty = plan_call(desktops(20))
    assert [len(twenty.served_by(h)) for h in twenty.hosts] == [4] * 5
    ten = plan_call(desktops(10))
    people = {**desktops(10), node(0): caps()}
    eleven = plan_call(people, previous=ten)
    assert all(eleven.assignment[p] == ten.assignment[p] for p in ten.participants)
    assert all(len(eleven.served_by(h)) <= host_capacity(caps(), 11, 2) for h in eleven.hosts)


def test_degraded_fallbacks() -> None:
    """VOICE-3.5: no host -> degraded mesh; too little capacity -> overloaded, degraded."""
    phones = {node(n): phone() for n in range(1, 6)}
    plan = plan_call(phones)
    assert (plan.topology, plan.degraded) == (Topology.MESH, Degradation.NO_ELIGIBLE_HOST)
    assert plan.is_degraded
    useless = {node(n): caps(max_relay_connections=0) for n in range(1, 6)}
    assert plan_call(useless).degraded is Degradation.NO_ELIGIBLE_HOST
    tiny = caps(max_relay_bandwidth=200_000)
    crowd = {node(1): tiny, **{node(n): phone() for n in range(2, 14)}}
    over = plan_call(crowd)
    assert over.topology is Topology.SFU
    assert over.degraded is Degradation.INSUFFICIENT_CAPACITY
    assert set(over.assignment.values()) == {node(1)}
    assert plan_call(desktops(20)).degraded is None


def test_stream_counts_and_bandwidth() -> None:
    """VOICE-3.6: mesh N-1 both ways; star 1 up; hosts per VOICE-3.2; times the rate."""
    mesh = plan_call(desktops(4))
    assert set(stream_counts(mesh).values()) == {(3, 3)}
    sfu = plan_call(desktops(6))
    counts = stream_counts(sfu)
    assert counts[node(1)] == (25, 5)
    assert counts[node(2)] == (1, 5)
    dist = plan_call(desktops(20))
    for h in dist.hosts:
        assert stream_counts(dist)[h] == (host_upload_streams(4, 20, 5), 19)
    bw = bandwidth_per_participant(sfu, 32_000)
    assert bw[node(1)] == (25 * 32_000, 5 * 32_000)
    with pytest.raises(VoiceError):
        bandwidth_per_participant(sfu, -1)


# ------------------------------------------------------------------ parameters


def test_config_is_checked() -> None:
    """VOICE-2.1, VOICE-2.2: the parameters must make sense together."""
    with pytest.raises(VoiceError):
        VoiceConfig(mesh_max_participants=5, sfu_max_participants=5)
    with pytest.raises(VoiceError):
        VoiceConfig(topology_hysteresis=4)
    with pytest.raises(VoiceError):
        VoiceConfig(switch_timeout=float("nan"))
    with pytest.raises(VoiceError):
        VoiceConfig(stream_bitrate_bps=0)
    assert VoiceConfig.from_json(DEFAULT_CONFIG.to_json()) == DEFAULT_CONFIG
    with pytest.raises(VoiceError):
        VoiceConfig.from_json({"bogus": 1})


def test_parameter_table_matches_the_code() -> None:
    """VOICE-2.1, VOICE-2.2, VOICE-2.3, VOICE-3.1, VOICE-4.2, VOICE-5.1: the table is the code's."""
    rows = {}
    for line in VOICE[VOICE.index("| name |") :].splitlines()[2:]:
        if not line.startswith("|"):
            break
        name, value, clause = (cell.strip() for cell in line.strip("|").split("|"))
        rows[name] = (int(re.match(r"\d+", value).group()), clause)  # type: ignore[union-attr]
    assert rows["largest mesh"] == (topo.MESH_MAX_PARTICIPANTS, "VOICE-2.1")
    assert rows["largest single-host SFU"] == (topo.SFU_MAX_PARTICIPANTS, "VOICE-2.1")
    assert rows["topology hysteresis"] == (topo.TOPOLOGY_HYSTERESIS, "VOICE-2.2")
    assert rows["incumbent host margin"] == (topo.HOST_SWITCH_MARGIN, "VOICE-2.3")
    assert rows["stream rate"] == (topo.STREAM_BITRATE_BPS, "VOICE-3.1")
    assert rows["switch timeout"] == (int(topo.SWITCH_TIMEOUT), "VOICE-4.2")
    assert rows["host cool-down after a failure"] == (int(topo.HOST_COOLDOWN), "VOICE-5.1")


def test_spec_diagram_is_generated_from_the_table() -> None:
    """VOICE-4.5: the spec's state diagram is the transition table's."""
    assert f"```mermaid\n{state_diagram()}\n```" in VOICE
