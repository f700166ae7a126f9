"""Shared by the voice call tests: apply a plan everywhere, wait for audio, measure loss."""

from collections.abc import Mapping

import anyio

from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.voice_media import CallPlanLike, CallRunner
from railgun_ref.lab.voice import RecordingRouter


async def apply_everywhere(runners: Mapping[NodeId, CallRunner], plan: CallPlanLike) -> None:
    async with anyio.create_task_group() as tg:
        for runner in runners.values():
            tg.start_soon(runner.apply, plan)


def hearing_everyone(
    runners: Mapping[NodeId, CallRunner], *, after: Mapping[NodeId, int], frames: int
) -> bool:
    """Each listener has `frames` frames numbered above `after[listener]` from every other."""
    return all(
        sum(n > after[me] for n in runner.frames_from(source)) >= frames
        for me, runner in runners.items()
        for source in runners
        if source != me
    )


def longest_loss(runners: Mapping[NodeId, CallRunner], *, since: int, until: int) -> int:
    """The longest run of frames a source captured in [since, until] that a listener lost.

    Every runner must record with a `RecordingRouter`: frames a stalled test
    process never captured are not the call's loss.
    """
    longest = 0
    for me, runner in runners.items():
        for source, other in runners.items():
            if source == me:
                continue
            assert isinstance(other.router, RecordingRouter)
            got = set(runner.frames_from(source))
            run = 0
            for n in other.router.captured:
                if since <= n <= until:
                    run = 0 if n in got else run + 1
                    longest = max(longest, run)
    return longest
