"""Calls between room members over the node's own channel (VOICE-6): ring, join, plan, hang up.

Theory of operation
-------------------
A `CallManager` runs next to a client's `HybridTransport`. It owns the
node's voice topic (APP_TOPIC_VOICE, APP-1.x): every message there arrives
with its *authenticated* sender and is checked before anything else:

* it must parse (`voice_signalling.decode_message`), else it is dropped,
  counted (``calls.malformed``) and reported (`CallSignalRefused`);
* its room — named in RING and JOIN, that of the call for the others — must
  count the sender as a member by its signed log (ROOM-3), else the same
  (``calls.not_a_member``). Nothing here needs the central service: the log
  is local and the channel is the node's own.

`place` starts a call: a new call id, a one-participant plan at epoch 1, and
a RING to every member of the room whose P2P address is known. A member that
`answer`s sends JOIN (repeated each second until a plan names it) to the
caller and every other reachable member. The call's *coordinator* is the
smallest node id of the plan in force (VOICE-6.4): on a JOIN it fetches the
capability advertisements (CAP-3.5) of the participants it does not know
yet — every client and node advertises by default — and computes the next
plan with the joiner (the VOICE election when it holds every participant's
advertisement, else a mesh up to the largest mesh size and a single SFU on
the smallest id beyond), sends it as
PLAN at epoch + 1 to every participant, and applies it. A participant that
hangs up sends REPLAN naming itself at epoch + 1 (VOICE-6.5): the survivors
compute the next plan from the same plan and the same REPLAN (the runner's
`elect_without`/`replan_without`), so a leave needs no coordinator — even the
coordinator's own. Offers, answers and replans go to the call's
`CallRunner` (drivers/voice_media.py), which owns the media links and
replaces a vanished host by itself. Runners are given no capabilities, so
they re-plan by `replan_without` (the plan's surviving hosts, else the
smallest id): survivors may hold different advertisements, and an election
on different inputs would split the call; the next join re-elects.

A `Call` watches its runner every `WATCH_INTERVAL`: a new epoch is a
`CallPlanChanged`; a participant whose media never arrived `silent_after`
seconds after a plan started is a `CallProblem` (``silent-peer``), judged on
time this process actually ran (a stall pushes the judgement back, as the
runner's watchdog does); refused offers/answers and failed links are
`CallProblem`s too. None of them ends the call for anyone.

Media is the lab's synthetic Opus source (`voice_media.opus_clip`), a tone
that names its frames, so per-stream statistics are exact. A call rung with
video (VOICE-7) adds one VP8 stream per participant (`video_media`: a test
card that names its frames); its media are those of the RING (an answer
without the camera sends no pictures) and its plans count each stream as
audio plus video (VOICE-7.6).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, assert_never

import anyio
import anyio.abc
from aiortc import RTCIceServer
from anyio.streams.memory import MemoryObjectReceiveStream

from railgun_ref.capacity.selection import Candidate, Role, rank_candidates
from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.constants import APP_TOPIC_VOICE
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.call_events import (
    CallEnded,
    CallEvent,
    CallPlanChanged,
    CallProblem,
    CallProblemKind,
    CallRefusal,
    CallSignalRefused,
    ClientCallEvent,
    IncomingCall,
)
from railgun_ref.drivers.transport import HybridTransport
from railgun_ref.drivers.turn_server import TurnUdpServer
from railgun_ref.drivers.voice_media import (
    CallPlanLike,
    CallRunner,
    CallRunnerCounter,
    LabPlan,
    MediaClock,
    PlanTopology,
    as_call_plan,
    mesh_plan,
    sfu_plan,
)
from railgun_ref.drivers.voice_signalling import (
    CALL_ID_SIZE,
    MEDIA_AUDIO,
    MEDIA_VIDEO,
    Answer,
    Join,
    Offer,
    PlanMessage,
    Replan,
    Ring,
    SignalMessage,
    TurnGrant,
    TurnRequest,
    decode_message,
    encode_message,
)
from railgun_ref.events import AppMessageReceived
from railgun_ref.voice.topology import DEFAULT_CONFIG, VoiceError, plan_call, with_video

#: How often a call looks at its runner (epochs, silent peers, problems).
WATCH_INTERVAL: Final = 0.25
#: A participant whose media has not arrived this long into a plan is reported silent.
SILENT_AFTER: Final = 8.0
#: A joiner repeats JOIN this often until a plan names it, at most JOIN_TRIES times.
JOIN_INTERVAL: Final = 1.0
JOIN_TRIES: Final = 30
#: Longest wait for one participant's capability advertisement (CAP-3.5).
FETCH_TIMEOUT: Final = 5.0
#: TURN peers a call asks for credentials (the best-ranked, TURN-2.3).
TURN_PEERS: Final = 2
#: Longest wait for a TURN grant (s); a credential is re-requested this long before expiry.
TURN_TIMEOUT: Final = 3.0
TURN_RENEW_MARGIN: Final = 60.0
#: Rings remembered (unanswered calls), oldest dropped first.
MAX_RINGS: Final = 64

#: Runner counters a call reports as problems.
_PROBLEM_COUNTERS: Final = {
    CallRunnerCounter.SIGNALLING_BAD_OFFER: CallProblemKind.BAD_OFFER,
    CallRunnerCounter.SIGNALLING_BAD_ANSWER: CallProblemKind.BAD_ANSWER,
    CallRunnerCounter.LINK_FAILED: CallProblemKind.LINK_FAILED,
    CallRunnerCounter.CALL_LINKS_TIMED_OUT: CallProblemKind.LINKS_TIMED_OUT,
}


class CallCounter(StrEnum):
    """What `CallManager.counters` counts."""

    RINGS_SENT = "calls.rings_sent"
    RINGS_RECEIVED = "calls.rings_received"
    JOINS_RECEIVED = "calls.joins_received"
    PLANS_SENT = "calls.plans_sent"
    PLANS_APPLIED = "calls.plans_applied"
    PLANS_STALE = "calls.plans_stale"  #: a PLAN for an epoch already passed
    NOT_A_MEMBER = "calls.not_a_member"  #: refused: the sender is not in the room's log
    MALFORMED = "calls.malformed"  #: refused: does not parse
    UNKNOWN_CALL = "calls.unknown_call"  #: refused: for no call of ours
    NOT_COORDINATOR = "calls.not_coordinator"  #: refused: a PLAN from a non-coordinator
    SEND_FAILED = "calls.send_failed"  #: a member's node did not take a message
    SILENT_PEERS = "calls.silent_peers"
    TURN_GRANTED = "calls.turn_granted"  #: credentials this node's TURN server issued
    TURN_NOT_SERVED = "calls.turn_not_served"  #: a request while this node runs no TURN
    TURN_GRANTS_RECEIVED = "calls.turn_grants_received"
    TURN_UNANSWERED = "calls.turn_unanswered"  #: a TURN peer that sent no grant in time


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStats:
    """What this participant received from one other participant's stream."""

    source: NodeId
    frames: int  #: distinct frames received
    last_arrival: float | None  #: CLOCK_MONOTONIC seconds of the latest
    #: Video (VOICE-7): pictures decoded, keyframes received, and the CLOCK_MONOTONIC
    #: time of the first decodable picture (None: none yet, or an audio call).
    video_frames: int = 0
    video_keyframes: int = 0
    first_picture_at: float | None = None


class RoomDirectory:
    """What the manager needs from the client's transport: members and their addresses."""

    def __init__(self, transport: HybridTransport) -> None:
        self._transport = transport

    @property
    def node_id(self) -> NodeId:
        return self._transport.node_id

    def is_member(self, room_id: bytes, node: NodeId) -> bool:
        return node in self._transport.members(room_id)

    def reachable(self, room_id: bytes) -> frozenset[NodeId]:
        return self._transport.members(room_id) & self._transport.reachable_members(room_id)

    async def send(self, peer: NodeId, payload: bytes) -> None:
        p2p = self._transport.p2p
        address = None if p2p is None else p2p.member_address(peer)
        if address is None:
            raise LocalProtocolError(f"no address known for node {peer.hex()[:12]}")
        await self._transport.host.send_app(address, APP_TOPIC_VOICE, payload)

    async def fetch_capabilities(self, node: NodeId) -> DeviceCapabilities | None:
        """`node`'s advertised capabilities from the DHT (CAP-3.5), None if not found."""
        with anyio.move_on_after(FETCH_TIMEOUT):
            advertisement = await self._transport.host.fetch_capabilities(node)
            return None if advertisement is None else advertisement.capabilities
        return None

    def inbox(self) -> MemoryObjectReceiveStream[AppMessageReceived]:
        return self._transport.host.app_inbox(APP_TOPIC_VOICE)

    def reputation_scores(self) -> Mapping[NodeId, int] | None:
        """REP-5.1: this node's scores of its peers (None while reputation is off)."""
        return self._transport.host.reputation_scores()


class _CallChannel:
    """The runner's `SignallingChannel`: sends through the directory, receives what the
    manager routed to this call."""

    def __init__(self, manager: CallManager) -> None:
        self._manager = manager
        self._in, self._out = anyio.create_memory_object_stream[tuple[NodeId, SignalMessage]](256)

    @property
    def node_id(self) -> NodeId:
        return self._manager.directory.node_id

    async def send(self, peer: NodeId, message: SignalMessage) -> None:
        await self._manager.directory.send(peer, encode_message(message))

    async def receive(self) -> tuple[NodeId, SignalMessage]:
        return await self._out.receive()

    def deliver(self, sender: NodeId, message: SignalMessage) -> None:
        with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError):
            self._in.send_nowait((sender, message))


class Call:
    """One call this client takes part in. Get it from `Client.call` or `Client.answer`."""

    def __init__(self, manager: CallManager, *, room_id: bytes, call_id: bytes, media: int) -> None:
        self.manager = manager
        self.room_id = room_id
        self.call_id = call_id
        self.audio = bool(media & MEDIA_AUDIO)
        self.video = bool(media & MEDIA_VIDEO)
        self.channel = _CallChannel(manager)
        self.runner = CallRunner(
            self.channel,
            call_id=call_id,
            clock=MediaClock(origin=0.0),
            video=self.video,
            capabilities=None,  # a leave re-plans by replan_without: see the module docstring
            loss_timeout=manager.loss_timeout,
            connect_timeout=manager.connect_timeout,
        )
        self._events_in, self._events = anyio.create_memory_object_stream[CallEvent](math.inf)
        self._scope = anyio.CancelScope()
        self._started = anyio.Event()
        self.ended = anyio.Event()
        self._silent_reported: set[tuple[int, NodeId]] = set()

    # ------------------------------------------------------------ views

    @property
    def node_id(self) -> NodeId:
        return self.runner.node_id

    @property
    def epoch(self) -> int:
        return self.runner.epoch

    @property
    def participants(self) -> tuple[NodeId, ...]:
        plan = self.runner.plan
        return () if plan is None else tuple(plan.participants)

    @property
    def topology(self) -> str | None:
        plan = self.runner.plan
        return None if plan is None else str(plan.topology.value)

    @property
    def hosts(self) -> tuple[NodeId, ...]:
        plan = self.runner.plan
        return () if plan is None else tuple(plan.hosts)

    @property
    def coordinator(self) -> NodeId | None:
        """VOICE-6.4: the smallest node id of the plan in force."""
        return min(self.participants) if self.participants else None

    @property
    def muted(self) -> bool:
        return self.runner.muted

    def stats(self) -> dict[NodeId, StreamStats]:
        """Per other participant: what arrived of its stream (de-duplicated)."""
        out: dict[NodeId, StreamStats] = {}
        for source in self.participants:
            if source == self.node_id:
                continue
            log = self.runner.router.logs.get(source)
            frames = len(log.frames) if log else 0
            last = log.arrivals[-1] if log and log.arrivals else None
            video = self.runner.video_router.logs.get(source)
            out[source] = StreamStats(
                source=source,
                frames=frames,
                last_arrival=last,
                video_frames=video.decoded if video else 0,
                video_keyframes=video.keyframes if video else 0,
                first_picture_at=video.first_frame_at if video else None,
            )
        return out

    def pictures_from(self, source: NodeId) -> list[int]:
        """Capture numbers of the pictures of `source` decoded here (a video call)."""
        log = self.runner.video_router.logs.get(source)
        return list(log.frames) if log else []

    def frames_from(self, source: NodeId) -> list[int]:
        return self.runner.frames_from(source)

    async def events(self) -> AsyncIterator[CallEvent]:
        """Plan changes, problems and the end of this call, in order."""
        with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError):
            while True:
                yield await self._events.receive()

    async def next_event(self) -> CallEvent:
        return await self._events.receive()

    # ---------------------------------------------------------- actions

    def mute(self, muted: bool = True) -> None:
        """Send silence instead of the microphone (links and the plan stay as they are)."""
        self.runner.muted = muted

    def unmute(self) -> None:
        self.mute(False)

    @property
    def camera(self) -> bool:
        """Whether this participant sends pictures (a video call with the camera on)."""
        return self.video and self.runner.camera

    def set_camera(self, on: bool) -> None:
        """Turn the camera on or off (a video call; the plan and links stay as they are)."""
        if not self.video:
            raise LocalProtocolError("not a video call")
        self.runner.camera = on

    async def leave(self) -> None:
        """Hang up (VOICE-6.5): tell the others, close this side's links."""
        if self.ended.is_set():
            return
        plan = self.runner.plan
        if plan is not None and self._started.is_set():
            bye = Replan(call_id=self.call_id, epoch=self.runner.epoch + 1, gone=(self.node_id,))
            for peer in plan.participants:
                if peer != self.node_id:
                    await self.manager.send(peer, bye)
        self._scope.cancel()
        with anyio.move_on_after(5):
            await self.ended.wait()

    # ---------------------------------------------------------- running

    def emit(self, event: CallEvent) -> None:
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._events_in.send_nowait(event)

    async def run(self) -> None:
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    await tg.start(self.runner.run)
                    self._started.set()
                    tg.start_soon(self._watch)
        finally:
            self.manager.forget(self)
            self.emit(CallEnded(call_id=self.call_id, at=time.time()))
            self._events_in.close()
            self.ended.set()

    async def started(self) -> None:
        await self._started.wait()

    async def apply(self, plan: CallPlanLike, epoch: int) -> None:
        if epoch <= self.runner.epoch or epoch in self.runner.applying:
            self.manager.counters.inc(CallCounter.PLANS_STALE)
            return
        self.runner.gone -= set(plan.participants)  # a member back after hanging up
        self.manager.counters.inc(CallCounter.PLANS_APPLIED)
        await self.runner.apply(plan, epoch=epoch)

    async def _watch(self) -> None:
        """Report epochs, silent peers and runner problems (see the module docstring)."""
        seen_epoch, seen_hosts = 0, tuple[NodeId, ...]()
        seen_counts = dict.fromkeys(_PROBLEM_COUNTERS, 0)
        ran = 0.0  # seconds of this plan during which this process ran on time
        while True:
            due = time.monotonic() + WATCH_INTERVAL
            await anyio.sleep(WATCH_INTERVAL)
            late = time.monotonic() - due
            ran = 0.0 if self.runner.epoch != seen_epoch else ran
            ran += WATCH_INTERVAL if late < WATCH_INTERVAL else 0.0
            plan = self.runner.plan
            if plan is not None and self.runner.epoch != seen_epoch:
                hosts = tuple(plan.hosts)
                self.emit(self._plan_event(plan, hosts != seen_hosts))
                seen_epoch, seen_hosts = self.runner.epoch, hosts
            for name, kind in _PROBLEM_COUNTERS.items():
                count = self.runner.counters.get_count(name)
                if count > seen_counts[name]:
                    seen_counts[name] = count
                    self.emit(
                        CallProblem(call_id=self.call_id, kind=kind, peer=None, at=time.time())
                    )
            if ran >= self.manager.silent_after:
                self._report_silent()

    def _plan_event(self, plan: CallPlanLike, hosts_changed: bool) -> CallPlanChanged:
        return CallPlanChanged(
            call_id=self.call_id,
            epoch=self.runner.epoch,
            topology=str(plan.topology.value),
            participants=tuple(plan.participants),
            hosts=tuple(plan.hosts),
            hosts_changed=hosts_changed,
            at=time.time(),
        )

    def _report_silent(self) -> None:
        epoch = self.runner.epoch
        for source, stats in self.stats().items():
            if stats.frames == 0 and (epoch, source) not in self._silent_reported:
                self._silent_reported.add((epoch, source))
                self.manager.counters.inc(CallCounter.SILENT_PEERS)
                self.emit(
                    CallProblem(
                        call_id=self.call_id,
                        kind=CallProblemKind.SILENT_PEER,
                        peer=source,
                        at=time.time(),
                    )
                )


class CallManager:
    """A client's calls: signalling checks, rings, joins, plans (see the module docstring)."""

    def __init__(
        self,
        directory: RoomDirectory,
        emit: Callable[[ClientCallEvent], None],
        *,
        capabilities: Mapping[NodeId, DeviceCapabilities] | None = None,
        loss_timeout: float | None = 2.0,
        connect_timeout: float = 15.0,
        silent_after: float = SILENT_AFTER,
        turn: TurnUdpServer | None = None,
    ) -> None:
        self.directory = directory
        #: The TURN server this node runs for room members (TURN-2.3), if any.
        self.turn = turn
        #: Test and lab knob: calls use relayed candidates only (direct paths blocked).
        self.relay_only = False
        self.grants: dict[NodeId, TurnGrant] = {}
        self._asked: dict[bytes, anyio.Event] = {}
        self._emit = emit
        #: Participants' capabilities given by the caller (tests, labs); None: those
        #: advertised in the DHT (`advertised`, fetched as participants join).
        self.capabilities = capabilities
        self.advertised: dict[NodeId, DeviceCapabilities] = {}
        self.loss_timeout = loss_timeout
        self.connect_timeout = connect_timeout
        self.silent_after = silent_after
        self.counters: Counters[CallCounter] = Counters()
        self.calls: dict[bytes, Call] = {}
        self.rings: dict[bytes, IncomingCall] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        inbox = self.directory.inbox()
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            async for received in inbox:
                self._on_app(received)

    # ------------------------------------------------------------ placing

    async def place(self, room_id: bytes, *, audio: bool = True, video: bool = False) -> Call:
        media = _media(audio, video)
        call = self._start(room_id, os.urandom(CALL_ID_SIZE), media)
        await self._prepare_ice(call)
        await call.started()
        await call.apply(self.plan_for((self.directory.node_id,), None, video=call.video), 1)
        ring = Ring(call_id=call.call_id, room_id=room_id, media=media)
        for peer in sorted(self.directory.reachable(room_id)):
            await self.send(peer, ring)
            self.counters.inc(CallCounter.RINGS_SENT)
        return call

    async def answer(
        self, call_id: bytes, *, audio: bool = True, video: bool | None = None
    ) -> Call:
        """VOICE-7.2: the call's media are those it rang with; ``video=False`` on a video
        call joins with the camera off."""
        ring = self.rings.pop(call_id, None)
        if ring is None:
            raise LocalProtocolError("no call rang with this id (or it was answered already)")
        _media(audio, bool(video))
        call = self._start(ring.room_id, call_id, _media(True, ring.video))
        call.runner.camera = video is not False
        await self._prepare_ice(call)
        await call.started()
        assert self._tg is not None
        self._tg.start_soon(self._join, call, ring.caller)
        return call

    def _start(self, room_id: bytes, call_id: bytes, media: int) -> Call:
        if self._tg is None:
            raise LocalProtocolError("the call manager is not running")
        if call_id in self.calls:
            raise LocalProtocolError("already in this call")
        call = Call(self, room_id=room_id, call_id=call_id, media=media)
        self.calls[call_id] = call
        self._tg.start_soon(call.run)
        return call

    async def _join(self, call: Call, caller: NodeId) -> None:
        join = Join(
            call_id=call.call_id, room_id=call.room_id, media=_media(call.audio, call.video)
        )
        for _ in range(JOIN_TRIES):
            if call.node_id in call.participants or call.ended.is_set():
                return
            others = self.directory.reachable(call.room_id) - {caller}
            for peer in (caller, *sorted(others)):
                await self.send(peer, join)
            await anyio.sleep(JOIN_INTERVAL)

    def forget(self, call: Call) -> None:
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]

    async def send(self, peer: NodeId, message: SignalMessage) -> None:
        try:
            await self.directory.send(peer, encode_message(message))
        except (OSError, RuntimeError, LocalProtocolError, anyio.BrokenResourceError):
            self.counters.inc(CallCounter.SEND_FAILED)

    # ----------------------------------------------------------- planning

    def plan_for(
        self,
        participants: tuple[NodeId, ...],
        previous: CallPlanLike | None,
        *,
        video: bool = False,
    ) -> CallPlanLike:
        """VOICE-6.4: the election if every participant's capabilities are known, else
        a mesh up to the largest mesh and a single SFU on the smallest id beyond; a video
        call counts each stream as audio plus video (VOICE-7.6)."""
        members = tuple(sorted(set(participants)))
        caps = self.advertised if self.capabilities is None else self.capabilities
        if all(p in caps for p in members):
            with contextlib.suppress(VoiceError):
                before = None if previous is None else as_call_plan(previous)
                config = with_video() if video else DEFAULT_CONFIG
                return plan_call({p: caps[p] for p in members}, config=config, previous=before)
        if len(members) <= DEFAULT_CONFIG.mesh_max_participants:
            return mesh_plan(members)
        return sfu_plan(members, host=members[0])

    # ---------------------------------------------------------- receiving

    def _refuse(
        self, sender: NodeId, reason: CallRefusal, call_id: bytes | None, detail: str
    ) -> None:
        counter = {
            CallRefusal.NOT_A_MEMBER: CallCounter.NOT_A_MEMBER,
            CallRefusal.MALFORMED: CallCounter.MALFORMED,
            CallRefusal.UNKNOWN_CALL: CallCounter.UNKNOWN_CALL,
            CallRefusal.NOT_COORDINATOR: CallCounter.NOT_COORDINATOR,
        }[reason]
        self.counters.inc(counter)
        self._emit(
            CallSignalRefused(
                sender=sender, reason=reason, call_id=call_id, detail=detail, at=time.time()
            )
        )

    def _on_app(self, received: AppMessageReceived) -> None:
        sender = received.sender
        try:
            message = decode_message(received.payload)
        except RemoteProtocolError as error:
            self._refuse(sender, CallRefusal.MALFORMED, None, str(error))
            return
        call = self.calls.get(message.call_id)
        if isinstance(message, Ring | Join | TurnRequest | TurnGrant):
            room_id = message.room_id
        elif call is not None:
            room_id = call.room_id
        else:
            self._refuse(sender, CallRefusal.UNKNOWN_CALL, message.call_id, type(message).__name__)
            return
        if not self.directory.is_member(room_id, sender):
            self._refuse(sender, CallRefusal.NOT_A_MEMBER, message.call_id, room_id.hex()[:16])
            return
        self._route(sender, message, call)

    def _route(self, sender: NodeId, message: SignalMessage, call: Call | None) -> None:
        assert self._tg is not None
        match message:
            case Ring():
                self._on_ring(sender, message, call)
            case Join():
                self.counters.inc(CallCounter.JOINS_RECEIVED)
                if call is not None and call.room_id == message.room_id:
                    self._tg.start_soon(self._on_join, call, sender)
            case PlanMessage():
                assert call is not None
                self._on_plan(sender, message, call)
            case Offer() | Answer() | Replan():
                assert call is not None
                call.channel.deliver(sender, message)
            case TurnRequest():
                self._tg.start_soon(self._grant, sender, message)
            case TurnGrant():
                self._on_grant(sender, message)
            case _:
                assert_never(message)

    def _on_ring(self, sender: NodeId, ring: Ring, call: Call | None) -> None:
        self.counters.inc(CallCounter.RINGS_RECEIVED)
        if call is not None or ring.call_id in self.rings:
            return
        while len(self.rings) >= MAX_RINGS:
            del self.rings[next(iter(self.rings))]
        event = IncomingCall(
            room_id=ring.room_id,
            call_id=ring.call_id,
            caller=sender,
            audio=bool(ring.media & MEDIA_AUDIO),
            video=bool(ring.media & MEDIA_VIDEO),
            at=time.time(),
        )
        self.rings[ring.call_id] = event
        self._emit(event)

    async def _on_join(self, call: Call, joiner: NodeId) -> None:
        """The coordinator adds the joiner: PLAN at epoch + 1 to everyone, then apply."""
        plan = call.runner.plan
        if plan is None or call.coordinator != call.node_id:
            return
        if joiner in plan.participants:
            return
        await call.started()
        await self.learn_capabilities((*plan.participants, joiner))
        plan = call.runner.plan
        if plan is None or joiner in plan.participants or call.coordinator != call.node_id:
            return  # the call moved on while we read the DHT
        epoch = max(call.runner.epoch, *call.runner.applying, 0) + 1
        new = self.plan_for((*plan.participants, joiner), plan, video=call.video)
        message = plan_message(call.call_id, epoch, new)
        for peer in new.participants:
            if peer != call.node_id:
                await self.send(peer, message)
                self.counters.inc(CallCounter.PLANS_SENT)
        await call.apply(new, epoch)

    async def learn_capabilities(self, nodes: tuple[NodeId, ...]) -> None:
        """Fetch the advertisements of `nodes` not known yet (CAP-3.5), all at once."""
        if self.capabilities is not None:
            return

        async def fetch(node: NodeId) -> None:
            found = await self.directory.fetch_capabilities(node)
            if found is not None:
                self.advertised[node] = found

        async with anyio.create_task_group() as tg:
            for node in nodes:
                if node not in self.advertised:
                    tg.start_soon(fetch, node)

    # ------------------------------------------------------- peer TURN (TURN-2.3)

    async def _prepare_ice(self, call: Call) -> None:
        call.runner.relay_only = self.relay_only
        call.runner.ice_servers = await self.ice_servers(call.room_id)

    async def ice_servers(self, room_id: bytes) -> list[RTCIceServer]:
        """TURN servers of the best-ranked TURN peers among the room's members, with
        credentials they granted this node (asked now unless a live grant is kept)."""
        members = tuple(sorted(self.directory.reachable(room_id)))
        await self.learn_capabilities(members)
        caps = self.advertised if self.capabilities is None else self.capabilities
        candidates = [Candidate(node_id=n, capabilities=caps[n]) for n in members if n in caps]
        reputation = self.directory.reputation_scores()  # REP-5.1
        best = rank_candidates(candidates, Role.TURN, reputation=reputation).best(TURN_PEERS)
        now = time.time()
        stale = [n for n in best if not self._live_grant(n, now)]
        async with anyio.create_task_group() as tg:
            for node in stale:
                tg.start_soon(self._ask_turn, node, room_id)
        servers = []
        for node in best:
            grant = self.grants.get(node)
            if grant is not None and self._live_grant(node, time.time()):
                servers.append(
                    RTCIceServer(
                        urls=f"turn:{grant.host}:{grant.port}",
                        username=grant.username,
                        credential=grant.password,
                    )
                )
        return servers

    def _live_grant(self, node: NodeId, now: float) -> bool:
        grant = self.grants.get(node)
        return grant is not None and grant.expires_at - TURN_RENEW_MARGIN > now

    async def _ask_turn(self, node: NodeId, room_id: bytes) -> None:
        request_id = os.urandom(CALL_ID_SIZE)
        answered = self._asked[request_id] = anyio.Event()
        try:
            await self.send(node, TurnRequest(call_id=request_id, room_id=room_id))
            with anyio.move_on_after(TURN_TIMEOUT):
                await answered.wait()
            if not answered.is_set():
                self.counters.inc(CallCounter.TURN_UNANSWERED)
        finally:
            del self._asked[request_id]

    async def _grant(self, member: NodeId, request: TurnRequest) -> None:
        """A member asked for a credential for our TURN server (membership checked)."""
        if self.turn is None:
            self.counters.inc(CallCounter.TURN_NOT_SERVED)
            return
        credential = self.turn.issue_credential(member)
        host, port = self.turn.address
        grant = TurnGrant(
            call_id=request.call_id,
            room_id=request.room_id,
            host=host,
            port=port,
            username=credential.username,
            password=credential.password,
            expires_at=credential.expires_at,
        )
        self.counters.inc(CallCounter.TURN_GRANTED)
        await self.send(member, grant)

    def _on_grant(self, sender: NodeId, grant: TurnGrant) -> None:
        answered = self._asked.get(grant.call_id)
        if answered is None:
            self._refuse(sender, CallRefusal.UNKNOWN_CALL, grant.call_id, "unrequested grant")
            return
        self.counters.inc(CallCounter.TURN_GRANTS_RECEIVED)
        self.grants[sender] = grant
        answered.set()

    def _on_plan(self, sender: NodeId, message: PlanMessage, call: Call) -> None:
        """VOICE-6.4: a PLAN counts from the coordinator of the plan in force (any member
        of the new plan, for a joiner that has none yet)."""
        assert self._tg is not None
        me = call.node_id
        current = call.participants if me in call.participants else ()
        allowed = sender == min(current) if len(current) > 1 else sender in message.participants
        if not allowed or me not in message.participants:
            self._refuse(sender, CallRefusal.NOT_COORDINATOR, call.call_id, "plan")
            return
        self._tg.start_soon(call.apply, lab_plan(message), message.epoch)


def _media(audio: bool, video: bool) -> int:
    if not audio:
        raise LocalProtocolError("a call needs audio (mute it instead)")
    return MEDIA_AUDIO | (MEDIA_VIDEO if video else 0)


def plan_message(call_id: bytes, epoch: int, plan: CallPlanLike) -> PlanMessage:
    return PlanMessage(
        call_id=call_id,
        epoch=epoch,
        topology=str(plan.topology.value),
        participants=tuple(sorted(plan.participants)),
        hosts=tuple(plan.hosts),
        assignment=tuple(sorted(plan.assignment.items())),
    )


def lab_plan(message: PlanMessage) -> LabPlan:
    return LabPlan(
        topology=PlanTopology(message.topology),
        participants=message.participants,
        hosts=message.hosts,
        assignment=dict(message.assignment),
    )
