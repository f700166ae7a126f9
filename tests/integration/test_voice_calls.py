"""Real WebRTC voice calls on 127.0.0.1: aiortc media, signalling over node channels.

Every participant is a real `NodeHost` (its application channel carries the
SDP offers and answers, APP-1.x) and a `CallRunner` (real ICE, DTLS-SRTP and
Opus packets). Assertions count frames by their capture number, never time.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import compute_audio_level_dbov
from av import AudioFrame

from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.drivers.voice_media import (
    LEVELS_DBOV,
    CallRunner,
    CallRunnerCounter,
    MediaClock,
    MediaCounter,
    directed_streams,
    mesh_plan,
    opus_clip,
    sfu_plan,
)
from railgun_ref.drivers.voice_signalling import NodeSignalling
from railgun_ref.lab.voice import RecordingRouter
from railgun_ref.voice.topology import CallPlan, Topology

from .conftest import identity, wait_until
from .voice_helpers import apply_everywhere, hearing_everyone, longest_loss

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CALL_ID = bytes(range(16))


@asynccontextmanager
async def call_of(count: int) -> AsyncIterator[dict[NodeId, CallRunner]]:
    """`count` nodes, each with a running CallRunner, sharing one media clock."""
    clip = opus_clip()
    clock = MediaClock(anyio.current_time())  # asyncio's loop clock is CLOCK_MONOTONIC
    hosts = [NodeHost(identity(40 + i)) for i in range(count)]
    async with anyio.create_task_group() as tg:
        for host in hosts:
            await tg.start(host.run)
        directory = {h.node_id: h.address for h in hosts}
        runners = {
            h.node_id: CallRunner(
                NodeSignalling(h, directory), call_id=CALL_ID, clock=clock, clip=clip
            )
            for h in hosts
        }
        for runner in runners.values():
            # Records what each source really captured: a test process that stalls
            # skips frames at the source, which are not the call's loss.
            runner.router = RecordingRouter(runner.node_id)
            await tg.start(runner.run)
        yield runners
        tg.cancel_scope.cancel()


async def test_mesh_call_of_three_carries_real_opus_both_ways() -> None:
    """VOICE-1.1: a mesh links every pair; each hears the two others' real Opus audio."""
    async with call_of(3) as runners:
        ids = sorted(runners)
        await apply_everywhere(runners, mesh_plan(ids))
        start = {me: -1 for me in runners}
        await wait_until(lambda: hearing_everyone(runners, after=start, frames=25), timeout=20)
        for me, runner in runners.items():
            assert sorted(p for _, p, up in runner.links() if up) == [i for i in ids if i != me]
            assert (
                runner.router.counters.get_count(MediaCounter.MEDIA_FORWARDED) > 0
            )  # its own voice, twice
        # The packets are real Opus: they decode, at the clip's levels (audio kept its shape).
        clip = opus_clip()
        runner = runners[ids[0]]
        log = runner.router.logs[ids[1]]
        decoder = OpusDecoder()
        matched = 0
        for n, payload in zip(log.frames[:20], log.sample_payloads, strict=True):
            frame = decoder.decode(JitterFrame(data=payload, timestamp=0))[0]
            assert isinstance(frame, AudioFrame)
            assert frame.samples == 960
            level = compute_audio_level_dbov(frame) - 3  # aiortc's stereo count: +3 dB
            want = LEVELS_DBOV[clip.level_codes[n % clip.frames]]
            matched += abs(level - want) <= 2
        assert matched >= 15


async def test_sfu_call_of_five_through_one_host() -> None:
    """VOICE-1.1: an SFU plan (topology's own CallPlan) links each participant
    with the host only, and the host forwards everyone's packets to everyone."""
    async with call_of(5) as runners:
        ids = sorted(runners)
        host = ids[2]
        plan = CallPlan(
            topology=Topology.SFU,
            participants=tuple(ids),
            hosts=(host,),
            assignment={p: host for p in ids},
        )
        await apply_everywhere(runners, plan)
        start = {me: -1 for me in runners}
        await wait_until(lambda: hearing_everyone(runners, after=start, frames=25), timeout=30)
        for me, runner in runners.items():
            peers = {p for _, p, _ in runner.links()}
            assert peers == ({host} if me != host else set(ids) - {host})
        # 4 listeners per source minus the host's own: the host forwards, it does not decode.
        assert runners[host].router.counters.get_count(MediaCounter.MEDIA_FORWARDED) > 0
        assert runners[ids[0]].router.counters.get_count(MediaCounter.MEDIA_FORWARDED) > 0
        assert directed_streams(plan)[ids[0], host] == (ids[0],)


async def test_switch_from_mesh_to_sfu_loses_no_frames() -> None:
    """VOICE-4.2: make-before-break; the new links are up before the old close, so
    every listener's frame numbers from every source run on without a gap."""
    async with call_of(4) as runners:
        ids = sorted(runners)
        await apply_everywhere(runners, mesh_plan(ids))
        start = {me: -1 for me in runners}
        await wait_until(lambda: hearing_everyone(runners, after=start, frames=10), timeout=20)
        before = {
            me: max(r.frames_from(ids[0] if me != ids[0] else ids[1])) for me, r in runners.items()
        }
        await apply_everywhere(runners, sfu_plan(ids, ids[1]))
        for me, runner in runners.items():
            assert {p for e, p, _ in runner.links()} == (
                {ids[1]} if me != ids[1] else set(ids) - {ids[1]}
            )
            assert all(e == 2 for e, _, _ in runner.links())
        after_switch = {
            me: max(max(r.frames_from(s)) for s in runners if s != me) for me, r in runners.items()
        }
        await wait_until(
            lambda: hearing_everyone(runners, after=after_switch, frames=10), timeout=20
        )
        until = min(
            max(runner.frames_from(s)) for me, runner in runners.items() for s in runners if s != me
        )
        # No listener lost more than two frames in a row the source captured.
        assert longest_loss(runners, since=min(before.values()) - 4, until=until) <= 2
        # Both paths carried some frames at once; the router dropped the copies.
        assert (
            sum(
                r.router.counters.get_count(MediaCounter.MEDIA_DUPLICATE_DROPPED)
                for r in runners.values()
            )
            > 0
        )


async def test_host_vanishing_mid_call_is_replaced_and_the_call_goes_on() -> None:
    """VOICE-5.1 / VOICE-4.3: the SFU host vanishes without a word; the others notice
    the silence, agree on a new host, tell each other (REPLAN) and keep talking."""
    async with call_of(4) as runners:
        ids = sorted(runners)
        host = ids[0]
        await apply_everywhere(runners, sfu_plan(ids, host))
        start = {me: -1 for me in runners}
        await wait_until(lambda: hearing_everyone(runners, after=start, frames=10), timeout=20)
        runners[host].abandon()
        survivors = {me: r for me, r in runners.items() if me != host}
        await wait_until(
            lambda: all(r.epoch == 2 and r.plan is not None for r in survivors.values()), timeout=20
        )
        for runner in survivors.values():
            assert runner.plan is not None and host not in runner.plan.participants
            assert runner.plan.hosts == (ids[1],)  # the smallest surviving id
            assert runner.counters.get_count(CallRunnerCounter.CALL_REPLANS) == 1
            # No capabilities given: no election, the deterministic fallback.
            assert runner.counters.get_count(CallRunnerCounter.CALL_REPLAN_FALLBACK) == 1
        replanned = {
            me: max(max(r.frames_from(s)) for s in survivors if s != me)
            for me, r in survivors.items()
        }
        await wait_until(
            lambda: hearing_everyone(survivors, after=replanned, frames=25), timeout=20
        )
        for runner in survivors.values():
            assert all(p != host for _, p, _ in runner.links())
