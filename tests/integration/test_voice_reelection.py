"""Voice calls planned and re-planned by the VOICE election, over real aiortc media.

Every participant is a real `NodeHost` and a `CallRunner` given the
participants' capabilities (CAP-1.1), so the plans come from
`voice.topology.plan_call`: the first from the test, the re-plan after a host
vanished from each survivor's own runner. Each runner records the frames it
captured (`lab.voice.RecordingRouter`), so a listener's losses are counted
against what its source really sent. Assertions count frames by their capture
number, never time.
"""

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial

import anyio
import pytest

from railgun_ref.capacity.nat import NatType
from railgun_ref.capacity.types import (
    Availability,
    BatteryStatus,
    DeviceCapabilities,
    DeviceClass,
)
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.drivers.voice_media import (
    CallRunner,
    CallRunnerCounter,
    LabPlan,
    MediaClock,
    MediaCounter,
    PlanTopology,
    elect_without,
    opus_clip,
    sfu_plan,
)
from railgun_ref.drivers.voice_signalling import NodeSignalling
from railgun_ref.lab.voice import MAX_CONCEALED_FRAMES, RecordingRouter
from railgun_ref.voice.topology import CallPlan, Topology, VoiceError, link, plan_call

from .conftest import identity, wait_until
from .voice_helpers import apply_everywhere, hearing_everyone, longest_loss

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CALL_ID = bytes(range(100, 116))
MBPS = 125_000  # bytes/s
# Generous bounds for a loaded 2-core CI machine, where ~6 aiortc peers share one
# process: a listener declares a peer lost after LOSS_TIMEOUT of silence, a link not
# up by CONNECT_TIMEOUT breaks anyway. The tests are about who is elected and whether
# make-before-break loses frames, not how fast loss is detected, and they still fail
# if a re-plan repeats or a break waits for the timeout.
LOSS_TIMEOUT = 2.0
CONNECT_TIMEOUT = 30.0


def device(
    device_class: DeviceClass,
    *,
    upload_mbps: float,
    relay_bytes: int | None = None,
    connections: int = 16,
    nat: NatType = NatType.FULL_CONE,
) -> DeviceCapabilities:
    """A plugged-in, always-on device; `relay_bytes` (default: its upload) caps what it forwards."""
    upload = int(upload_mbps * MBPS)
    return DeviceCapabilities(
        device_class=device_class,
        upload_bandwidth=upload,
        download_bandwidth=upload * 4,
        max_relay_connections=connections,
        max_relay_bandwidth=upload if relay_bytes is None else relay_bytes,
        can_act_as_turn=False,
        can_store_messages=True,
        nat_type=nat,
        battery_status=BatteryStatus(level_percent=90, plugged_in=True),
        availability=Availability.ALWAYS,
    )


@asynccontextmanager
async def call_with(
    capabilities_of: Mapping[int, DeviceCapabilities],
) -> AsyncIterator[tuple[dict[NodeId, CallRunner], dict[NodeId, DeviceCapabilities]]]:
    """One running node and runner per identity number, each runner knowing every
    participant's capabilities (what it would have fetched from the DHT, CAP-3.5)."""
    clip = opus_clip()
    clock = MediaClock(anyio.current_time())  # asyncio's loop clock is CLOCK_MONOTONIC
    hosts = {n: NodeHost(identity(n)) for n in capabilities_of}
    capabilities = {hosts[n].node_id: caps for n, caps in capabilities_of.items()}
    async with anyio.create_task_group() as tg:
        for host in hosts.values():
            await tg.start(host.run)
        directory = {h.node_id: h.address for h in hosts.values()}
        runners = {
            h.node_id: CallRunner(
                NodeSignalling(h, directory),
                call_id=CALL_ID,
                clock=clock,
                clip=clip,
                capabilities=capabilities,
                loss_timeout=LOSS_TIMEOUT,
                connect_timeout=CONNECT_TIMEOUT,
            )
            for h in hosts.values()
        }
        for runner in runners.values():
            runner.router = RecordingRouter(runner.node_id)
            await tg.start(runner.run)
        yield runners, capabilities
        tg.cancel_scope.cancel()


def latest_frames(runners: Mapping[NodeId, CallRunner]) -> dict[NodeId, int]:
    return {
        me: max((max(r.frames_from(s), default=-1) for s in runners if s != me), default=-1)
        for me, r in runners.items()
    }


async def test_survivors_elect_the_second_best_host_and_keep_talking() -> None:
    """VOICE-5.1, VOICE-2.3: the SFU host vanishes; every survivor elects, on its own,
    the best-ranked eligible survivor (not the smallest id), the same plan on each."""
    caps = {
        40: device(DeviceClass.LAPTOP_PLUGGED, upload_mbps=3),
        41: device(DeviceClass.DESKTOP_STANDARD, upload_mbps=4),
        42: device(DeviceClass.SERVER, upload_mbps=100),  # the best: hosts first
        43: device(DeviceClass.DESKTOP_POWERFUL, upload_mbps=20),  # the second best
        44: device(DeviceClass.DESKTOP_POWERFUL, upload_mbps=30, nat=NatType.SYMMETRIC),
    }
    async with call_with(caps) as (runners, capabilities):
        best, second = identity(42).node_id, identity(43).node_id
        survivors = {me: r for me, r in runners.items() if me != best}
        # The fallback would pick the smallest surviving id: make sure it is not `second`.
        assert min(survivors) != second
        plan = plan_call(capabilities)
        assert plan.topology is Topology.SFU and plan.hosts == (best,)
        await apply_everywhere(runners, plan)
        start = {me: -1 for me in runners}
        await wait_until(lambda: hearing_everyone(runners, after=start, frames=10), timeout=20)

        runners[best].abandon()
        await wait_until(lambda: all(r.epoch == 2 for r in survivors.values()), timeout=20)
        plans = {me: r.plan for me, r in survivors.items()}
        for me, runner in survivors.items():
            new = plans[me]
            assert isinstance(new, CallPlan)  # elected by the core, not the fallback
            assert new.topology is Topology.SFU  # 4 left: hysteresis keeps a host (VOICE-2.2)
            assert new.hosts == (second,)
            assert new.participants == tuple(sorted(survivors))
            assert runner.counters.get_count(CallRunnerCounter.CALL_REPLANS) == 1
            assert runner.counters.get_count(CallRunnerCounter.CALL_REPLAN_FALLBACK) == 0
        assert len({repr(p) for p in plans.values()}) == 1  # the same plan on every survivor

        replanned = latest_frames(survivors)
        await wait_until(
            lambda: hearing_everyone(survivors, after=replanned, frames=25), timeout=20
        )
        for me, runner in survivors.items():
            peers = {p for _, p, _ in runner.links()}
            assert peers == ({second} if me != second else set(survivors) - {second})
        assert runners[second].router.counters.get_count(MediaCounter.MEDIA_FORWARDED) > 0


async def test_distributed_sfu_forwards_between_hosts() -> None:
    """VOICE-3.2, VOICE-3.3, VOICE-1.1: six participants whose hosts can each serve only
    three get two hosts linked to each other; every listener hears every source,
    half of them through the host-to-host link."""
    # 16 streams of 64 kbit/s each: at (6 participants, 1 host) a host serves 4,
    # at (6, 2) 3 (VOICE-3.2), so two hosts carry the call and one does not.
    budget = 16 * 64_000 // 8
    caps = {
        50: device(DeviceClass.SERVER, upload_mbps=50, relay_bytes=budget),
        51: device(DeviceClass.DESKTOP_POWERFUL, upload_mbps=50, relay_bytes=budget),
        **{n: device(DeviceClass.MOBILE_CELLULAR, upload_mbps=2) for n in range(52, 56)},
    }
    async with call_with(caps) as (runners, capabilities):
        plan = plan_call(capabilities)
        first, other = identity(50).node_id, identity(51).node_id
        assert plan.topology is Topology.DISTRIBUTED_SFU and plan.hosts == (first, other)
        assert len(plan.served_by(first)) == len(plan.served_by(other)) == 3
        await apply_everywhere(runners, plan)
        start = {me: -1 for me in runners}
        await wait_until(lambda: hearing_everyone(runners, after=start, frames=25), timeout=20)
        for me, runner in runners.items():
            peers = {p for _, p, up in runner.links() if up}
            if me in plan.hosts:
                mine = set(plan.served_by(me)) - {me}
                assert peers == mine | (set(plan.hosts) - {me})
            else:
                assert peers == {plan.assignment[me]}
        assert link(first, other) in plan.media_links()
        # Each host forwarded the other host's participants to its own (and back).
        for host in plan.hosts:
            far = [p for p in plan.participants if plan.assignment[p] != host]
            assert all(len(runners[host].frames_from(s)) >= 25 for s in far)
            assert runners[host].router.counters.get_count(MediaCounter.MEDIA_FORWARDED) > 0


def test_election_falls_back_without_a_survivors_capabilities() -> None:
    """VOICE-5.1: `elect_without` elects only from known capabilities, and refuses
    when a survivor's are unknown (a runner then falls back to `replan_without`,
    test_voice_calls.py checks that path with media)."""
    ids = sorted(identity(n).node_id for n in range(60, 65))
    caps = {i: device(DeviceClass.DESKTOP_STANDARD, upload_mbps=10) for i in ids}
    plan = LabPlan(
        topology=PlanTopology.SFU,
        participants=tuple(ids),
        hosts=(ids[2],),
        assignment={p: ids[2] for p in ids},
    )
    elected = elect_without(plan, frozenset({ids[2]}), caps)
    assert elected.topology is Topology.SFU and ids[2] not in elected.participants
    assert elected.hosts == (ids[0],)  # equal scores: NodeId ascending (VOICE-2.3)
    with pytest.raises(VoiceError, match="no capabilities"):
        elect_without(plan, frozenset({ids[2]}), {i: caps[i] for i in ids[1:]})


async def test_a_newcomer_taking_over_as_host_is_make_before_break() -> None:
    """VOICE-4.2: a sixth participant joins and becomes the host at once, so it has no
    old link to relay from, and one participant applies the new plan half a second
    late (slow signalling). Every listener breaks only once the new host delivers
    every source, the late one included, and the old host's forwarding links are
    closed by the listeners they serve: no stream loses a frame its source sent."""
    caps = {n: device(DeviceClass.DESKTOP_STANDARD, upload_mbps=10) for n in range(70, 76)}
    async with call_with(caps) as (runners, _):
        newcomer = identity(75).node_id
        first = {me: r for me, r in runners.items() if me != newcomer}
        old = min(first)
        await apply_everywhere(first, sfu_plan(sorted(first), old))
        start = {me: -1 for me in first}
        await wait_until(lambda: hearing_everyone(first, after=start, frames=10), timeout=20)
        switch = min(latest_frames(first).values())
        late = max(first)
        plan = sfu_plan(sorted(runners), newcomer)

        async def apply_late() -> None:
            await anyio.sleep(0.5)
            await runners[late].apply(plan, epoch=2)

        async with anyio.create_task_group() as tg:
            for me, runner in runners.items():
                if me != late:
                    tg.start_soon(partial(runner.apply, plan, epoch=2))
            tg.start_soon(apply_late)
        for me, runner in runners.items():
            peers = {p for _, p, _ in runner.links()}
            assert peers == ({newcomer} if me != newcomer else set(first))
            assert all(e == 2 for e, _, _ in runner.links())
            assert (
                runner.counters.get_count(CallRunnerCounter.CALL_BREAK_TIMED_OUT) == 0
            )  # nobody waited for the timeout
        after = latest_frames(runners)
        await wait_until(lambda: hearing_everyone(runners, after=after, frames=25), timeout=20)
        until = min(latest_frames(runners).values()) - 5
        assert longest_loss(first, since=switch, until=until) <= MAX_CONCEALED_FRAMES
        # Both paths carried frames during the switch; the copies were dropped.
        assert (
            sum(
                r.router.counters.get_count(MediaCounter.MEDIA_DUPLICATE_DROPPED)
                for r in first.values()
            )
            > 0
        )


async def test_a_runner_whose_own_process_stalled_does_not_declare_its_peers_lost() -> None:
    """A stall of the participants' own process (a busy machine: here the event loop
    is blocked for longer than loss_timeout) is not a peer's silence: nobody re-plans,
    each runner counts the stall, and the call goes on with the same plan."""
    caps = {
        50: device(DeviceClass.LAPTOP_PLUGGED, upload_mbps=3),
        51: device(DeviceClass.LAPTOP_PLUGGED, upload_mbps=3),
        52: device(DeviceClass.LAPTOP_PLUGGED, upload_mbps=3),
    }
    async with call_with(caps) as (runners, capabilities):
        plan = plan_call(capabilities)
        await apply_everywhere(runners, plan)
        start = {me: -1 for me in runners}
        await wait_until(lambda: hearing_everyone(runners, after=start, frames=10), timeout=20)
        loss_timeout = next(iter(runners.values())).loss_timeout
        assert loss_timeout is not None
        time.sleep(loss_timeout + 0.3)  # the whole process stops: nobody's fault but ours
        after = latest_frames(runners)
        await wait_until(lambda: hearing_everyone(runners, after=after, frames=25), timeout=20)
        for runner in runners.values():
            assert runner.counters.get_count(CallRunnerCounter.CALL_LOCAL_STALLS) >= 1
            assert runner.counters.get_count(CallRunnerCounter.CALL_PEERS_LOST) == 0
            assert runner.epoch == 1 and runner.plan == plan
