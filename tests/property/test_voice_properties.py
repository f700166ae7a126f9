"""Hypothesis properties of call plans and the controller (VOICE-1..VOICE-5)."""

import random

from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.capacity import (
    Availability,
    BatteryStatus,
    DeviceCapabilities,
    DeviceClass,
    NatType,
)
from railgun_ref.core.ids import NodeId
from railgun_ref.voice import (
    CallController,
    CallPlan,
    CallState,
    Disconnect,
    SwitchTo,
    Topology,
    host_capacity,
    plan_call,
    stream_counts,
)

node_ids = st.binary(min_size=32, max_size=32).map(NodeId)

capabilities = st.builds(
    DeviceCapabilities,
    device_class=st.sampled_from(DeviceClass),
    upload_bandwidth=st.integers(0, 3_000_000),
    download_bandwidth=st.integers(0, 3_000_000),
    max_relay_connections=st.integers(0, 30),
    max_relay_bandwidth=st.integers(0, 2_000_000),
    can_act_as_turn=st.booleans(),
    can_store_messages=st.booleans(),
    nat_type=st.sampled_from(NatType),
    battery_status=st.none()
    | st.builds(BatteryStatus, level_percent=st.integers(0, 100), plugged_in=st.booleans()),
    availability=st.sampled_from(Availability),
)

calls = st.dictionaries(node_ids, capabilities, min_size=1, max_size=24)


def _check_plan(plan: CallPlan, participants: dict[NodeId, DeviceCapabilities]) -> None:
    assert plan.participants == tuple(sorted(participants))
    if plan.topology is Topology.MESH:
        return
    assert set(plan.assignment) == set(participants)  # exactly one host each
    assert all(plan.assignment[h] == h for h in plan.hosts)
    if plan.degraded is None:
        count, hosts = len(plan.participants), len(plan.hosts)
        for h in plan.hosts:
            assert len(plan.served_by(h)) <= host_capacity(participants[h], count, hosts)
            up, _ = stream_counts(plan)[h]
            budget = min(participants[h].upload_bandwidth, participants[h].max_relay_bandwidth)
            assert up * 64_000 <= budget * 8


@given(calls)
def test_every_participant_has_one_host_within_capacity(
    people: dict[NodeId, DeviceCapabilities],
) -> None:
    """VOICE-1.1, VOICE-3.2, VOICE-3.4: one host each; a non-degraded host within capacity."""
    _check_plan(plan_call(people), people)


@given(calls, st.randoms(use_true_random=False))
def test_plan_is_independent_of_input_order(
    people: dict[NodeId, DeviceCapabilities], rng: random.Random
) -> None:
    """VOICE-1.2: any order of the same participants gives the same plan."""
    items = list(people.items())
    rng.shuffle(items)
    assert plan_call(dict(items)) == plan_call(people)


@given(calls, calls)
def test_replanning_keeps_invariants(
    first: dict[NodeId, DeviceCapabilities], second: dict[NodeId, DeviceCapabilities]
) -> None:
    """VOICE-2.2, VOICE-3.3, VOICE-3.4: a plan with any previous plan keeps every invariant."""
    previous = plan_call(first)
    people = {**first, **second}
    _check_plan(plan_call(people, previous=previous), people)


@given(
    st.integers(2, 30),
    st.lists(st.sampled_from(["desktop", "server", "laptop", "phone"]), min_size=40, max_size=40),
    st.integers(0, 9),
)
def test_alternating_join_and_leave_never_flaps(count: int, kinds: list[str], rounds: int) -> None:
    """VOICE-2.2, VOICE-2.3, VOICE-3.3: joining and leaving one participant repeatedly
    changes the topology, host set and host count at most once, whatever the count."""
    profiles = {
        "desktop": DeviceCapabilities(
            device_class=DeviceClass.DESKTOP_STANDARD,
            upload_bandwidth=1_250_000,
            download_bandwidth=12_500_000,
            max_relay_connections=20,
            max_relay_bandwidth=625_000,
            can_act_as_turn=True,
            can_store_messages=True,
            nat_type=NatType.OPEN,
            availability=Availability.ALWAYS,
        ),
        "server": DeviceCapabilities(
            device_class=DeviceClass.SERVER,
            upload_bandwidth=12_500_000,
            download_bandwidth=12_500_000,
            max_relay_connections=100,
            max_relay_bandwidth=6_250_000,
            can_act_as_turn=True,
            can_store_messages=True,
            nat_type=NatType.OPEN,
            availability=Availability.ALWAYS,
        ),
        "laptop": DeviceCapabilities(
            device_class=DeviceClass.LAPTOP_PLUGGED,
            upload_bandwidth=625_000,
            download_bandwidth=2_500_000,
            max_relay_connections=10,
            max_relay_bandwidth=312_500,
            can_act_as_turn=False,
            can_store_messages=True,
            nat_type=NatType.RESTRICTED,
            availability=Availability.WHEN_ACTIVE,
        ),
        "phone": DeviceCapabilities(
            device_class=DeviceClass.MOBILE_CELLULAR,
            upload_bandwidth=100_000,
            download_bandwidth=500_000,
            max_relay_connections=0,
            max_relay_bandwidth=0,
            can_act_as_turn=False,
            can_store_messages=False,
            nat_type=NatType.SYMMETRIC,
            availability=Availability.WHEN_ACTIVE,
        ),
    }
    people = {NodeId(bytes([n]) * 32): profiles[kinds[n]] for n in range(count)}
    extra = NodeId(bytes([200]) * 32)
    plan = plan_call(people)
    shapes = []
    for _ in range(rounds + 2):
        plan = plan_call({**people, extra: profiles[kinds[-1]]}, previous=plan)
        joined = (plan.topology, len(plan.hosts), plan.hosts)
        plan = plan_call(people, previous=plan)
        left = (plan.topology, len(plan.hosts), plan.hosts)
        shapes.append((joined, left))
    # after the first round, nothing changes any more
    assert len(set(shapes[1:])) == 1


events = st.lists(
    st.tuples(
        st.sampled_from(["join", "leave", "fail", "ready", "timer", "upgrade"]),
        st.integers(0, 14),
        st.floats(0, 3),
    ),
    max_size=60,
)


@given(events, capabilities)
def test_controller_never_closes_a_link_in_use(
    script: list[tuple[str, int, float]], caps: DeviceCapabilities
) -> None:
    """VOICE-4.2, VOICE-4.3: a Disconnect names no link of the plan in force, except a
    departed or failed node's; links up and pending stay disjoint and cover the plan."""
    c = CallController()
    now = 0.0
    for kind, n, dt in script:
        now += dt
        who = NodeId(bytes([n]) * 32)
        present = who in c.participants
        gone: NodeId | None = None
        if kind == "join" and not present:
            c.join(who, caps, now=now)
        elif kind == "leave" and present:
            gone = who
            c.leave(who, now=now)
        elif kind == "fail" and present:
            gone = who
            c.host_failed(who, now=now)
        elif kind == "upgrade" and present:
            c.capabilities_changed(who, caps, now=now)
        elif kind == "ready":
            c.links_ready(sorted(c.links_pending)[: n % 4], now=now)
        elif kind == "timer":
            c.on_timer(now=now)
        for action in iter(c.next_action, None):
            if isinstance(action, Disconnect) and c.plan is not None:
                in_use = set(c.plan.media_links())
                assert all(
                    pair not in in_use or (gone is not None and gone in pair)
                    for pair in action.links
                )
            if isinstance(action, SwitchTo):
                assert action.plan == c.plan or c.state is CallState.SWITCHING
        assert not c.links_up & c.links_pending
        if c.plan is not None and c.state is CallState.ACTIVE:
            assert set(c.plan.media_links()) <= c.links_up | c.links_pending
