"""A live video call for notebooks: VP8 through an SFU host, a late joiner, optionally via TURN.

`video_call` runs real `CallRunner` instances with video (`drivers/video_media`) in a
worker thread with an event loop of its own: the first participants start an
SFU call, one more joins later (so its pictures need a keyframe, VOICE-7.3),
and the call runs `hold` seconds. With ``turn=True`` a peer TURN server runs
too and every participant gathers relayed candidates only, each with its own
short-lived credential (TURN-2.1): the media goes through TURN or not at all.
`video_frame` turns the result into one row per (source, listener) stream.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import altair as alt
import anyio
import pandas as pd
from aiortc import RTCIceServer

from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.turn_server import TurnUdpServer
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.drivers.video_media import VIDEO_FPS, VideoCounter
from railgun_ref.drivers.voice_media import CallRunner, MediaClock, sfu_plan
from railgun_ref.drivers.voice_signalling import NodeSignalling
from railgun_ref.identity.keys import Identity
from railgun_ref.relay.credentials import CREDENTIAL_SECRET_SIZE
from railgun_ref.relay.turn import TurnCounter

LAB_VIDEO_CALL_ID: Final = b"railgun-lab-vid1"
#: Pictures every listener must have decoded from every source before a step ends.
SEEN_PICTURES: Final = 15
#: Longest wait for that (s): a loaded machine is slow, the call is not judged by it.
SEEN_TIMEOUT: Final = 60.0

VIDEO_COLUMNS: Final = (
    "source",
    "listener",
    "pictures",
    "fps",
    "keyframes",
    "first_picture_ms",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoStream:
    """What one listener got of one source's video."""

    source: NodeId
    listener: NodeId
    pictures: int  #: decoded pictures whose capture number was read
    fps: float  #: decodable frames per second over the last `hold` seconds (30: all)
    keyframes: int
    #: From the later of listener and source joining to the listener's first picture.
    first_picture_ms: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoCall:
    """The outcome of `video_call`."""

    participants: tuple[NodeId, ...]
    host: NodeId
    late: NodeId
    streams: tuple[VideoStream, ...]
    everyone_seen: bool  #: every listener decoded SEEN_PICTURES of every source
    #: PLI/FIR that reached each participant's senders, keyframes its encoder made on request.
    pli_received: Mapping[NodeId, int]
    keyframes_forced: Mapping[NodeId, int]
    pli_sent_by_host: int
    #: Seconds until the first participants saw each other, and until the joiner saw all.
    seconds: Mapping[str, float]
    #: TURN only: datagrams our TURN server relayed each way, allocations made.
    turn_counters: Mapping[str, int] | None


def video_call(
    identities: Sequence[Identity], *, host: int = 1, hold: float = 2.0, turn: bool = False
) -> VideoCall:
    """A real video call: all but the last identity start it through an SFU on
    ``identities[host]``, the last joins later; runs in a worker thread."""
    if len(identities) < 3 or not 0 <= host < len(identities) - 1:
        raise ValueError("need 3+ identities and a host among the first ones")
    result: Future[VideoCall] = Future()

    def run() -> None:
        try:
            result.set_result(anyio.run(partial(_call, list(identities), host, hold, turn)))
        except BaseException as exc:
            result.set_exception(exc)

    thread = threading.Thread(target=run, name="railgun-lab-video", daemon=True)
    thread.start()
    thread.join()
    return result.result()


async def _call(people: list[Identity], host_index: int, hold: float, turn: bool) -> VideoCall:
    hosts = [NodeHost(identity) for identity in people]
    clock = MediaClock(time.monotonic())
    secret = os.urandom(CREDENTIAL_SECRET_SIZE)
    async with anyio.create_task_group() as tg:
        server = TurnUdpServer(users={}, credential_secret=secret) if turn else None
        if server is not None:
            await tg.start(server.run)
        for node in hosts:
            await tg.start(node.run)
        directory = {node.node_id: node.address for node in hosts}
        # The runners stop first, while the TURN server still answers their deallocations.
        async with anyio.create_task_group() as calls:
            runners: dict[NodeId, CallRunner] = {}
            for node in hosts:
                runner = _runner(node, directory, clock, server)
                await calls.start(runner.run)
                runners[node.node_id] = runner
            ids = [node.node_id for node in hosts]
            outcome = await _grow(runners, ids, ids[host_index], hold)
            calls.cancel_scope.cancel()
        turn_counters = None
        if server is not None:
            counters = server.core.counters
            turn_counters = {
                "allocations": counters.get_count(TurnCounter.ALLOCATIONS_CREATED),
                "to_peer": counters.get_count(TurnCounter.RELAYED_TO_PEER_DATAGRAMS),
                "to_client": counters.get_count(TurnCounter.RELAYED_TO_CLIENT_DATAGRAMS),
                "dropped_bandwidth": counters.get_count(TurnCounter.DROPPED_BANDWIDTH),
            }
        tg.cancel_scope.cancel()
    return VideoCall(**outcome, turn_counters=turn_counters)  # type: ignore[arg-type]


def _runner(
    node: NodeHost,
    directory: Mapping[NodeId, tuple[str, int]],
    clock: MediaClock,
    server: TurnUdpServer | None,
) -> CallRunner:
    runner = CallRunner(
        NodeSignalling(node, dict(directory)),
        call_id=LAB_VIDEO_CALL_ID,
        clock=clock,
        video=True,
        loss_timeout=None,  # a loaded machine is slow, not gone
        connect_timeout=30.0,
    )
    if server is not None:  # TURN-2.1: a credential of its own; relayed candidates only
        credential = server.issue_credential(node.node_id)
        address = f"turn:{server.address[0]}:{server.address[1]}"
        runner.ice_servers = [RTCIceServer(address, credential.username, credential.password)]
        runner.relay_only = True
    return runner


async def _grow(
    runners: dict[NodeId, CallRunner], ids: list[NodeId], host: NodeId, hold: float
) -> dict[str, object]:
    """Epoch 1: all but the last; epoch 2: everyone. Then `hold` seconds of call."""
    first, late = ids[:-1], ids[-1]
    joined: dict[NodeId, float] = {}
    async with anyio.create_task_group() as tg:
        for node in first:
            joined[node] = time.monotonic()
            tg.start_soon(partial(runners[node].apply, sfu_plan(first, host), epoch=1))
    seen = await _seeing(runners, first)
    phase1 = time.monotonic() - joined[first[0]]
    async with anyio.create_task_group() as tg:
        joined[late] = time.monotonic()
        for runner in runners.values():
            tg.start_soon(partial(runner.apply, sfu_plan(ids, host), epoch=2))
    seen = await _seeing(runners, ids) and seen
    phase2 = time.monotonic() - joined[late]
    since = time.monotonic()
    await anyio.sleep(hold)
    until = time.monotonic()
    return {
        "participants": tuple(ids),
        "host": host,
        "late": late,
        "streams": tuple(_streams(runners, joined, since, until)),
        "everyone_seen": seen,
        "pli_received": {
            n: r.video_router.counters.get_count(VideoCounter.PLI_RECEIVED)
            for n, r in runners.items()
        },
        "keyframes_forced": {
            n: r.video_router.counters.get_count(VideoCounter.KEYFRAMES_FORCED)
            for n, r in runners.items()
        },
        "pli_sent_by_host": runners[host].video_router.counters.get_count(VideoCounter.PLI_SENT),
        "seconds": {"first_seen": round(phase1, 1), "joiner_seen": round(phase2, 1)},
    }


async def _seeing(runners: Mapping[NodeId, CallRunner], among: Sequence[NodeId]) -> bool:
    def seen() -> bool:
        for me in among:
            logs = runners[me].video_router.logs
            for source in among:
                log = logs.get(source)
                if source != me and (log is None or len(log.frames) < SEEN_PICTURES):
                    return False
        return True

    with anyio.move_on_after(SEEN_TIMEOUT):
        while not seen():
            await anyio.sleep(0.05)
    return seen()


def _streams(
    runners: Mapping[NodeId, CallRunner], joined: Mapping[NodeId, float], since: float, until: float
) -> list[VideoStream]:
    out = []
    for me, runner in runners.items():
        for source, log in runner.video_router.logs.items():
            first = log.first_frame_at
            out.append(
                VideoStream(
                    source=source,
                    listener=me,
                    pictures=len(log.frames),
                    fps=sum(since <= a < until for a in log.complete) / (until - since),
                    keyframes=log.keyframes,
                    first_picture_ms=None
                    if first is None
                    else (first - max(joined[me], joined[source])) * 1000,
                )
            )
    return out


def video_frame(call: VideoCall, index: Mapping[NodeId, int]) -> pd.DataFrame:
    """One row per (source, listener) stream, nodes by their network index (`VIDEO_COLUMNS`)."""
    rows = [
        {
            "source": f"node {index[s.source]}",
            "listener": f"node {index[s.listener]}",
            "pictures": s.pictures,
            "fps": round(s.fps, 1),
            "keyframes": s.keyframes,
            "first_picture_ms": None if s.first_picture_ms is None else round(s.first_picture_ms),
        }
        for s in call.streams
    ]
    return pd.DataFrame(rows, columns=list(VIDEO_COLUMNS)).sort_values(["source", "listener"])


def video_fps_chart(frame: pd.DataFrame, *, title: str = "video frames/s per stream") -> Any:
    """Frames/s of each stream over the hold, against the 30 frames/s the camera takes."""
    data = frame.assign(stream=frame["source"] + " → " + frame["listener"])
    bars = (
        alt.Chart(data, title=title)
        .mark_bar()
        .encode(
            x=alt.X("fps:Q", title="decodable frames/s", scale=alt.Scale(domain=[0, VIDEO_FPS])),
            y=alt.Y("stream:N", title=None),
            color=alt.Color("listener:N"),
            tooltip=list(VIDEO_COLUMNS),
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"fps": [VIDEO_FPS]})).mark_rule(strokeDash=[4, 3]).encode(x="fps")
    )
    return alt.layer(bars, rule).properties(width=360, height=22 * len(data))
