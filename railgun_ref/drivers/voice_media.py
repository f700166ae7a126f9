"""Real WebRTC voice media on localhost (aiortc): mesh, SFU and distributed SFU.

Theory of operation
-------------------
A call is executed from a *call plan* (`railgun_ref.voice.topology.CallPlan`,
read through the structural `CallPlanLike`): its participants, its hosts and
which host serves which participant. Every participant's audio travels along
the path ``source -> host(source) -> host(listener) -> listener`` (mesh: straight
``source -> listener``), with repeated nodes collapsed; `directed_streams` turns
that into, for every ordered pair of neighbours, the sources whose packets go
that way. One `RTCPeerConnection` per neighbour pair carries them, one audio
transceiver per (direction, source), so a forwarder never has to mix or
rewrite anything: the mid a packet arrives on says whose voice it is. The
smaller node id of the pair offers; the offer names the source of each mid and
the answerer checks those lists against its own reading of the plan.

**Forwarding without decoding.** aiortc decodes every received stream in
`RTCRtpReceiver` and re-encodes it in every `RTCRtpSender`; `MediaRelay` only
fans decoded frames out, so a stock SFU pays one Opus encode (plus the RFC 6465
audio level, computed in Python) per listener per 20 ms frame. Here:

* *Send side, supported path.* A `MediaStreamTrack` may return an `av.Packet`
  instead of a frame: `RTCRtpSender` then calls its encoder's ``pack`` (Opus:
  payload as is, pts converted to the RTP clock) and never encodes.
  `ForwardTrack` is such a track, fed from a small bounded queue.
* *Receive side, no supported path.* aiortc 1.16 has no hook for encoded
  frames: the receiver runs every packet through its jitter buffer and a
  decoder thread. The DTLS transport delivers each routed RTP packet by calling
  ``receiver._handle_rtp_packet(packet, arrival_time_ms)`` (the transport's
  own ``RtpReceiver`` protocol). We replace that method *on the one receiver
  instance* of each transceiver that carries forwarded media
  (`_intercept_rtp`), never on the class, so other connections in the process
  (the stock SFU of the benchmark) keep aiortc's behaviour. Subclassing is not
  possible: `RTCPeerConnection` constructs its receivers itself. The receiver
  still starts an idle decoder thread, which then never gets work. Because
  that method is private, pyproject.toml pins aiortc to the versions it was
  verified on, and `check_aiortc_hooks` (run when a call is set up, by
  `CallRunner.run`) fails with the installed version named if the method is
  gone or no longer has that shape: a rename must not leave the SFU silent.

Participants use the same interception: a listener counts and times packets
without decoding them (the benchmark's participants are expensive enough).

**What the audio is.** `opus_clip` is a 30 s cycle of real Opus packets
(libopus via PyAV, 32 kbit/s, 20 ms, 48 kHz mono) of a 440 Hz tone whose level
steps every frame through a seeded sequence of four levels; participants send
packet ``n mod 1500`` at capture time ``origin + n * 20 ms`` (`MediaClock`), so
capture costs a dict lookup, not an encode. A packet's payload names its
frame: identical bytes all along our path, so a listener (or a forwarder
de-duplicating the two paths of a make-before-break switch) knows ``n`` from
the payload and the arrival time (unambiguous while the delay is under 30 s).
A stock SFU re-encodes, so its payloads are new; there the frame is recovered
from the RTP sequence number and the RFC 6465 audio level the stock sender
attaches, matched against the known level sequence (`summarize_stream`). The
tone's level steps are shifted by libopus's 312-sample delay so that each
*decoded* frame holds one level.

**Clock.** One-way delay is arrival time minus capture time, both on
CLOCK_MONOTONIC, which is shared by all processes of one machine: this driver
is a localhost lab driver and every participant is given the same `MediaClock`
origin (the benchmark passes it to its worker processes).

**Make-before-break.** `CallRunner.apply(plan)` starts plan epoch e+1: it
offers the new links and waits until every one of them is connected. Its own
links being up does not yet mean the new plan carries the call (VOICE-4.2
waits for *every* link of the plan): a forwarder may still be feeding a new
link from an old one, and a peer's links may still be connecting. So a node
breaks only once it has heard every source the new plan routes to it over
links of the new epoch, end to end: forwarding is *epoch-pure* (a frame that
arrived on an epoch-e link is forwarded only on epoch-e links; a node's own
frames go on all), so a frame heard on an epoch-e link came along an epoch-e
path, and the reverse path, made of the same peer connections, carries this
node's audio to that source. Then it closes its old links that forward nobody
else's audio; an old link it forwards others' audio on (an old host's) is
closed by its other end, whose listeners it serves, and only at the timeout
(`connect_timeout` from the start of `apply`) by the forwarder. Until the
break frames arrive twice, and the `MediaRouter` logs the first copy of
``(source, n)`` and forwards the first copy per epoch.

**A host that vanishes.** A link whose media stopped for `loss_timeout`
seconds after having flowed marks its peer gone. The runner computes the next
plan without it, tells the other survivors with a REPLAN message (so they need
not wait for their own timeout) and applies it. The next plan is the VOICE
election (`elect_without`): `voice.topology.plan_call` over the survivors'
advertised capabilities, with the plan in force as ``previous`` and the gone
peers excluded from hosting (VOICE-5.1), so the new host is the best-ranked
eligible survivor and every survivor, holding the same advertisements, the
same plan and the same REPLAN, computes the same plan. A runner given no
capabilities, or lacking a survivor's, falls back to `replan_without` (same
topology, smallest surviving id hosts: deterministic too, but no election) and
counts ``call.replan_fallback``; a `replan` callable overrides both. Nothing
raises because a peer vanished; links that never connect are counted and
closed.

**Video.** A runner made with ``video=True`` adds one video transceiver per
(direction, source), listed after the audio ones; the offer's stream lists
name them like the audio ones and the answerer checks each source has one of
each kind. Their senders and receivers are run by `video_media` (encoded VP8
frames forwarded, keyframes by PLI; VOICE-7). All m-lines share one transport
(max-bundle; see `rtc_configuration`).

**ICE on loopback.** aioice gathers host candidates on every interface except
127.0.0.1 and aiortc defaults to a public STUN server. `use_loopback_ice`
replaces aioice's ``get_host_addresses`` (a module function with no option to
choose interfaces) by one that returns only 127.0.0.1, and every connection
gets ``RTCConfiguration(iceServers=[])``: no packet leaves 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import functools
import inspect
import itertools
import math
import random
import statistics
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from importlib import metadata
from typing import Any, Final, Protocol, assert_never

import aioice.ice
import anyio
import anyio.abc
import av
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
    sdp,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from railgun_ref.capacity.types import DeviceCapabilities
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.video_media import (
    KEYFRAME_HOOK,
    PLI_HOOK,
    TICKS_PER_FRAME,
    VIDEO_FPS,
    VideoCounter,
    VideoEncoder,
    VideoForwardTrack,
    VideoRouter,
    prefer_vp8,
)
from railgun_ref.drivers.voice_signalling import (
    Answer,
    Join,
    Offer,
    PlanMessage,
    Replan,
    Ring,
    SignallingChannel,
    SignalMessage,
    TurnGrant,
    TurnRequest,
)
from railgun_ref.voice.topology import (
    DEFAULT_CONFIG,
    CallPlan,
    Topology,
    VoiceConfig,
    VoiceError,
    plan_call,
)
from railgun_ref.voice.vp8 import FrameAssembler

#: Opus at 48 kHz with 20 ms packets (RFC 7587 §4.2 default ptime).
SAMPLE_RATE: Final = 48_000
FRAME_SECONDS: Final = 0.020
SAMPLES_PER_FRAME: Final = 960
TIME_BASE: Final = fractions.Fraction(1, SAMPLE_RATE)
#: Frames in the pre-encoded clip cycle: 30 s, longer than any delay we measure.
CLIP_FRAMES: Final = 1500
#: The tone's four levels (dBov, RFC 6465 scale): the stock SFU's audio-level
#: header carries them back, which is how its re-encoded frames are named.
LEVELS_DBOV: Final = (-12, -18, -24, -30)
#: libopus's algorithmic delay at 48 kHz (2.5 ms look-ahead + 4 ms), in samples.
OPUS_DELAY_SAMPLES: Final = 312
#: A forwarding queue longer than this drops its oldest packet (100 ms).
FORWARD_QUEUE_FRAMES: Final = 5
#: A capture loop later than this skips to the current frame (counted).
MAX_CAPTURE_LAG: Final = 0.1
#: Frames remembered per source to drop the second copy of a frame.
DEDUP_WINDOW: Final = 256


# ----------------------------------------------------------------- ICE setup


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def use_loopback_ice() -> None:
    """Make aioice gather exactly one host candidate, 127.0.0.1 (idempotent)."""
    if not callable(getattr(aioice.ice, "get_host_addresses", None)):
        # Setting a name aioice no longer reads would gather every interface's address.
        raise RuntimeError(
            f"aioice {_version('aioice')} has no aioice.ice.get_host_addresses: "
            "this driver cannot keep ICE on 127.0.0.1 with it"
        )
    aioice.ice.get_host_addresses = _loopback_host_addresses


# ------------------------------------------------------- third-party hooks

#: The private method of aiortc's `RTCRtpReceiver` that its DTLS transport calls
#: with every routed RTP packet (aiortc 1.16), and its parameters after ``self``.
RTP_HOOK: Final = "_handle_rtp_packet"
_RTP_HOOK_PARAMETERS: Final = ("packet", "arrival_time_ms")
#: Keyframe request hooks (video_media): what the sender's RTCP handler calls on PLI/FIR
#: (replaced per sender instance) and how a receiver sends a PLI.
_KEYFRAME_HOOKS: Final = (
    (RTCRtpSender, KEYFRAME_HOOK, (), False),
    (RTCRtpReceiver, PLI_HOOK, ("media_ssrc",), True),
)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def check_aiortc_hooks() -> None:
    """Fail loudly unless aiortc still has the receive hook `_intercept_rtp` replaces.

    Raises RuntimeError naming the installed aiortc version: with the hook
    renamed, replacing it would not error, and forwarded media would be
    decoded and dropped instead -- a silent SFU.
    """
    hook = getattr(RTCRtpReceiver, RTP_HOOK, None)
    if hook is None or not inspect.iscoroutinefunction(hook):
        raise RuntimeError(
            f"aiortc {_version('aiortc')} has no coroutine RTCRtpReceiver.{RTP_HOOK}, which "
            "this driver replaces to receive encoded RTP (verified: aiortc 1.16; "
            "see pyproject.toml)"
        )
    parameters = tuple(inspect.signature(hook).parameters)[1:]
    if parameters != _RTP_HOOK_PARAMETERS:
        raise RuntimeError(
            f"aiortc {_version('aiortc')}: RTCRtpReceiver.{RTP_HOOK} takes {parameters}, "
            f"not {_RTP_HOOK_PARAMETERS} (verified: aiortc 1.16; see pyproject.toml)"
        )
    for owner, name, expected, coroutine in _KEYFRAME_HOOKS:
        method = getattr(owner, name, None)
        shape = None if method is None else tuple(inspect.signature(method).parameters)[1:]
        if shape != expected or inspect.iscoroutinefunction(method) != coroutine:
            raise RuntimeError(
                f"aiortc {_version('aiortc')}: {owner.__name__}.{name} is not the "
                f"{'coroutine' if coroutine else 'method'} {name}{expected} the video "
                "driver uses for keyframe requests (verified: aiortc 1.16; see pyproject.toml)"
            )


def rtc_configuration(
    ice_servers: Sequence[RTCIceServer] = (), *, relay_only: bool = False
) -> RTCConfiguration:
    """Only the TURN servers given (peer TURN, TURN-2): aiortc's default would ask a public
    STUN server. `relay_only` gathers relayed candidates only (direct paths blocked)."""
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    # Max-bundle: one transport for every m-line. aiortc's default (balanced) gives the
    # first m-line of each kind its own transport and the later ones of that kind the
    # same; BUNDLE then moves the first onto the shared transport but not the later
    # ones, which are left on a transport that is stopped (a second video m-line
    # never started its sender or receiver).
    return RTCConfiguration(
        iceServers=list(ice_servers),
        iceTransportPolicy=policy,
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )


# ------------------------------------------------------------------ the clip


@dataclass(frozen=True, slots=True, kw_only=True)
class OpusClip:
    """A cycle of real Opus packets; `index` maps a payload to its frame number."""

    payloads: tuple[bytes, ...]
    #: Index into `LEVELS_DBOV` of each frame's tone level.
    level_codes: tuple[int, ...]
    index: Mapping[bytes, int]

    @property
    def frames(self) -> int:
        return len(self.payloads)


#: A muted participant's frame: Opus code-3 packet (RFC 6716 §3.2.5) of one 20 ms CELT
#: fullband silence frame, padded with 2 bytes holding the clip frame number, so a
#: listener and a forwarder still name (and de-duplicate) frames while nothing is said.
_SILENT_HEAD: Final = bytes([0xFB, 0x41, 0x02, 0xFF, 0xFE])


def silent_frame(clip_index: int) -> bytes:
    """The muted stand-in for clip frame `clip_index` (valid Opus: silence)."""
    return _SILENT_HEAD + clip_index.to_bytes(2, "big")


def silent_index(payload: bytes) -> int | None:
    """The clip frame number a `silent_frame` payload stands for, else None."""
    if len(payload) == len(_SILENT_HEAD) + 2 and payload.startswith(_SILENT_HEAD):
        return int.from_bytes(payload[-2:], "big")
    return None


@functools.cache
def opus_clip(frames: int = CLIP_FRAMES, seed: int = 7) -> OpusClip:
    """Encode the clip (deterministic for a given libopus; about 0.5 s of CPU)."""
    rng = random.Random(seed)
    codes = tuple(rng.randrange(len(LEVELS_DBOV)) for _ in range(frames))
    amplitudes = [32767 * 10 ** (level / 20) * math.sqrt(2) for level in LEVELS_DBOV]
    encoder = av.CodecContext.create("libopus", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.bit_rate = 32_000
    encoder.format = "s16"
    encoder.layout = "mono"
    encoder.sample_rate = SAMPLE_RATE
    encoder.time_base = TIME_BASE
    encoder.options = {"application": "voip"}
    # 441.37 Hz: no whole number of periods fits a few frames, so frames of
    # equal level still differ; the dither makes every payload distinct.
    step = 2 * math.pi * 441.37 / SAMPLE_RATE
    dither = random.Random(seed + 1)
    packets: list[bytes] = []
    total = frames + 2  # the encoder returns each packet at once; spare frames flush it
    for n in range(total):
        samples = array("h", bytes(2 * SAMPLES_PER_FRAME))
        base = n * SAMPLES_PER_FRAME
        for i in range(SAMPLES_PER_FRAME):
            # Sample s sounds in decoded frame (s + delay) // 960: shift the steps so.
            frame_of = ((base + i + OPUS_DELAY_SAMPLES) // SAMPLES_PER_FRAME) % frames
            tone = amplitudes[codes[frame_of]] * math.sin(step * (base + i))
            samples[i] = int(tone) + dither.randrange(-8, 9)
        audio = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES_PER_FRAME)
        audio.planes[0].update(samples.tobytes())
        audio.sample_rate = SAMPLE_RATE
        audio.pts = base
        audio.time_base = TIME_BASE
        packets.extend(bytes(p) for p in encoder.encode(audio))
    payloads = tuple(packets[:frames])
    if len(payloads) != frames:
        raise RuntimeError(f"libopus returned {len(payloads)} packets for {frames} frames")
    index: dict[bytes, int] = {}
    duplicates: set[bytes] = set()
    for n, payload in enumerate(payloads):
        if payload in index:
            duplicates.add(payload)
        index[payload] = n
    for payload in duplicates:  # an ambiguous payload names no frame
        del index[payload]
    return OpusClip(payloads=payloads, level_codes=codes, index=index)


@dataclass(frozen=True, slots=True)
class MediaClock:
    """Frame n is captured at ``origin + n * 20 ms`` (CLOCK_MONOTONIC seconds)."""

    origin: float

    def capture_time(self, frame: int) -> float:
        return self.origin + frame * FRAME_SECONDS

    def current_frame(self, now: float) -> int:
        return math.floor((now - self.origin) / FRAME_SECONDS)

    def unwrap(self, clip_index: int, arrival: float, clip_frames: int) -> int:
        """The latest frame ``n = clip_index (mod clip_frames)`` captured by `arrival`."""
        latest = self.current_frame(arrival + 0.001)
        return latest - (latest - clip_index) % clip_frames


# -------------------------------------------------------------------- plans


class PlanTopology(Enum):
    """The values of `voice.topology.Topology`, for plans built in this driver."""

    MESH = "mesh"
    SFU = "sfu"
    DISTRIBUTED_SFU = "distributed-sfu"


class CallPlanLike(Protocol):
    """The part of `voice.topology.CallPlan` this driver reads."""

    @property
    def topology(self) -> Enum: ...

    @property
    def participants(self) -> tuple[NodeId, ...]: ...

    @property
    def hosts(self) -> tuple[NodeId, ...]: ...

    @property
    def assignment(self) -> Mapping[NodeId, NodeId]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class LabPlan:
    """A call plan built here (tests, benchmark, `replan_without`)."""

    topology: PlanTopology
    participants: tuple[NodeId, ...]
    hosts: tuple[NodeId, ...] = ()
    assignment: Mapping[NodeId, NodeId] = field(default_factory=dict)


def mesh_plan(participants: Sequence[NodeId]) -> LabPlan:
    return LabPlan(topology=PlanTopology.MESH, participants=tuple(participants))


def sfu_plan(participants: Sequence[NodeId], host: NodeId) -> LabPlan:
    if host not in participants:
        raise LocalProtocolError("an SFU host must be one of the participants")
    return LabPlan(
        topology=PlanTopology.SFU,
        participants=tuple(participants),
        hosts=(host,),
        assignment={p: host for p in participants},
    )


def _is_mesh(plan: CallPlanLike) -> bool:
    return str(plan.topology.value) == PlanTopology.MESH.value


def directed_streams(plan: CallPlanLike) -> dict[tuple[NodeId, NodeId], tuple[NodeId, ...]]:
    """For each ordered neighbour pair (x, y): the sources whose audio x sends y.

    Route of source s to listener d: mesh ``s, d``; with hosts
    ``s, host(s), host(d), d`` with repeats collapsed. A participant without
    an assignment in a hosted plan is a `LocalProtocolError` (a bad plan).
    """
    members = plan.participants
    streams: dict[tuple[NodeId, NodeId], set[NodeId]] = {}
    for source in members:
        for listener in members:
            if listener == source:
                continue
            if _is_mesh(plan):
                path = [source, listener]
            else:
                try:
                    path = [source, plan.assignment[source], plan.assignment[listener], listener]
                except KeyError as exc:
                    raise LocalProtocolError(f"plan assigns no host to {exc}") from None
            hops = [node for i, node in enumerate(path) if i == 0 or node != path[i - 1]]
            for x, y in itertools.pairwise(hops):
                streams.setdefault((x, y), set()).add(source)
    return {pair: tuple(sorted(sources)) for pair, sources in streams.items()}


def replan_without(plan: CallPlanLike, gone: frozenset[NodeId]) -> LabPlan:
    """The plan once `gone` left: same topology; a lost host's participants move.

    Deterministic, so every survivor computes the same plan without talking:
    an orphaned participant goes to the surviving host with the smallest id,
    or, if no host survives, the surviving participant with the smallest id
    becomes the host (for an SFU; a distributed SFU keeps its other hosts).
    """
    members = tuple(p for p in plan.participants if p not in gone)
    if _is_mesh(plan) or not members:
        return mesh_plan(members)
    hosts = tuple(h for h in plan.hosts if h in members) or (min(members),)
    assignment: dict[NodeId, NodeId] = {}
    for p in members:
        current = plan.assignment.get(p)
        assignment[p] = current if current in hosts else min(hosts)
    for h in hosts:
        assignment[h] = h
    topology = PlanTopology(str(plan.topology.value))
    return LabPlan(topology=topology, participants=members, hosts=hosts, assignment=assignment)


#: What a runner calls to re-plan once peers are gone: (plan in force, gone peers) -> next plan.
Replanner = Callable[[CallPlanLike, frozenset[NodeId]], CallPlanLike]


def as_call_plan(plan: CallPlanLike) -> CallPlan:
    """`plan` as the voice core's `CallPlan` (participants sorted); `VoiceError` if malformed."""
    if isinstance(plan, CallPlan):
        return plan
    try:
        topology = Topology(str(plan.topology.value))
    except ValueError:
        raise VoiceError(f"unknown topology {plan.topology.value!r}") from None
    return CallPlan(
        topology=topology,
        participants=tuple(sorted(plan.participants)),
        hosts=tuple(plan.hosts),
        assignment=dict(plan.assignment),
    )


def elect_without(
    plan: CallPlanLike,
    gone: frozenset[NodeId],
    capabilities: Mapping[NodeId, DeviceCapabilities],
    *,
    config: VoiceConfig = DEFAULT_CONFIG,
) -> CallPlan:
    """VOICE-5.1: the plan of the survivors of `plan` once `gone` vanished, by election.

    ``plan_call`` of the survivors with their `capabilities`, ``previous`` the
    plan in force (its hosts are incumbents, its assignment sticks: VOICE-2.3,
    VOICE-3.4) and ``excluded`` the gone peers. The gone leave the call
    altogether: a vanished node can take no media link, so unlike the
    controller's failed host (which stays a participant) it is not planned for.
    Raises `VoiceError` if no participant survives or a survivor has no
    capabilities; the plan in force is ignored as ``previous`` if it is not a
    well-formed plan.
    """
    survivors = [p for p in plan.participants if p not in gone]
    if not survivors:
        raise VoiceError("no participant survives")
    missing = [p for p in survivors if p not in capabilities]
    if missing:
        raise VoiceError(f"no capabilities known for {missing[0].hex()[:12]}")
    try:
        previous: CallPlan | None = as_call_plan(plan)
    except VoiceError:
        previous = None
    return plan_call(
        {p: capabilities[p] for p in survivors}, config=config, previous=previous, excluded=gone
    )


# -------------------------------------------------------------- the tracks


class ForwardTrack(MediaStreamTrack):
    """An audio track of already-encoded Opus packets (`av.Packet`), as aiortc allows.

    The newest `FORWARD_QUEUE_FRAMES` packets wait here until the sender
    asks; older ones are dropped (``dropped``) rather than delayed.
    """

    kind = "audio"

    def __init__(self, source: NodeId, epoch: int | None = None) -> None:
        super().__init__()
        self.source = source
        #: The plan epoch of the link it sends on: it gets frames that arrived on
        #: links of that epoch, and the node's own (None: every frame of `source`).
        self.epoch = epoch
        self._queue: deque[av.Packet[Any]] = deque(maxlen=FORWARD_QUEUE_FRAMES)
        self._ready = asyncio.Event()
        self.dropped = 0
        self.sent = 0

    def push(self, packet: av.Packet[Any]) -> None:
        if len(self._queue) == FORWARD_QUEUE_FRAMES:
            self.dropped += 1
        self._queue.append(packet)
        self._ready.set()

    async def recv(self) -> av.Packet[Any]:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        self.sent += 1
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._ready.set()


class _LateRelayTrack(MediaStreamTrack):
    """The stock SFU's outgoing track: `MediaRelay.subscribe` of a source's
    decoded track, once that source's connection exists (its offer may come
    after a listener's). Adds one await per frame to the stock path."""

    def __init__(self, runner: CallRunner, source: NodeId, kind: str = "audio") -> None:
        super().__init__()
        self.kind = kind
        self._runner = runner
        self._source = source
        self._inner: MediaStreamTrack | None = None

    async def recv(self) -> Any:
        if self._inner is None:
            track = await self._runner._stock_track(self._source, self.kind)
            self._inner = self._runner._relay.subscribe(track)
        return await self._inner.recv()

    def stop(self) -> None:
        super().stop()
        if self._inner is not None:
            self._inner.stop()


# ------------------------------------------------------------- reception


@dataclass(slots=True)
class StreamLog:
    """What one listener received from one source (after de-duplication)."""

    #: Frame numbers and arrival times of identified packets (our path).
    frames: list[int] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    #: Packets whose payload names no clip frame (a re-encoding SFU): RTP
    #: sequence number, arrival time, audio level (dBov, None if absent).
    raw_seq: list[int] = field(default_factory=list)
    raw_arrivals: list[float] = field(default_factory=list)
    raw_levels: list[int | None] = field(default_factory=list)
    #: The first payloads received, kept to check they decode (tests).
    sample_payloads: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamSummary:
    """One (source, listener) stream over a measurement window."""

    frames: int
    frames_per_s: float
    delay_ms_median: float | None
    delay_ms_p95: float | None
    delay_ms_max: float | None
    #: ``payload`` (frames named by their bytes), ``audio-level`` (re-encoded
    #: frames named by sequence number and level pattern) or ``none``.
    method: str
    #: Packets that *arrived* in the window per second, whenever captured
    #: (throughput; equals `frames_per_s` when nothing queues up).
    arrivals_per_s: float = 0.0
    #: For ``audio-level``: fraction of packets whose level matched the pattern.
    alignment: float | None = None


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    k = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


def _nearest_level(level: int | None) -> int:
    if level is None:
        return -1
    return min(range(len(LEVELS_DBOV)), key=lambda k: abs(LEVELS_DBOV[k] - level))


_ALIGN_WINDOW: Final = 8


@functools.cache
def _pattern_positions(codes: tuple[int, ...]) -> dict[tuple[int, ...], list[int]]:
    table: dict[tuple[int, ...], list[int]] = {}
    for start in range(len(codes)):
        key = tuple(codes[(start + i) % len(codes)] for i in range(_ALIGN_WINDOW))
        table.setdefault(key, []).append(start)
    return table


def _align_raw(log: StreamLog, clip: OpusClip, clock: MediaClock) -> tuple[list[int], float]:
    """Frame numbers of re-encoded packets, from sequence numbers + level pattern."""
    rel: list[int] = []
    offset = 0
    previous: int | None = None
    for seq in log.raw_seq:
        if previous is not None:
            step = (seq - previous) % 65536
            offset += step if step < 32768 else step - 65536
        previous = seq
        rel.append(offset)
    table = _pattern_positions(clip.level_codes)
    best: tuple[int, int, list[int]] | None = None  # (votes, shift, codes)
    # The level a re-encoding sender reports may sit a few dB off the clip's
    # (aiortc computes it over interleaved stereo samples: +3 dB), so try offsets.
    for offset in range(-5, 6):
        codes = [_nearest_level(None if v is None else v - offset) for v in log.raw_levels]
        by_rel = dict(zip(rel, codes, strict=True))
        votes: Counter[int] = Counter()
        for r in rel[:: max(1, len(rel) // 400)]:
            key = tuple(by_rel.get(r + i, -1) for i in range(_ALIGN_WINDOW))
            for start in table.get(key, ()):
                votes[(start - r) % clip.frames] += 1
        if votes:
            shift, count = votes.most_common(1)[0]
            if best is None or count > best[0]:
                best = (count, shift, codes)
    if best is None:
        return [], 0.0
    _, shift, codes = best
    matched = sum(
        1
        for r, c in zip(rel, codes, strict=True)
        if clip.level_codes[(r + shift) % clip.frames] == c
    )
    frames = [
        clock.unwrap((r + shift) % clip.frames, arrival, clip.frames)
        for r, arrival in zip(rel, log.raw_arrivals, strict=True)
    ]
    return frames, matched / len(rel)


def summarize_stream(
    log: StreamLog, *, clock: MediaClock, clip: OpusClip, window: tuple[float, float]
) -> StreamSummary:
    """Frames/s and one-way delay of the frames *captured* in `window`.

    frames/s counts distinct frames captured in the window that arrived at
    all (before the log was read), over the window's length: 50 is every
    frame. Delay is arrival minus capture time of each such frame.
    """
    first_frame = math.ceil((window[0] - clock.origin) / FRAME_SECONDS - 1e-6)
    end_frame = math.ceil((window[1] - clock.origin) / FRAME_SECONDS - 1e-6)
    start, end = clock.capture_time(first_frame), clock.capture_time(end_frame)
    method = "payload"
    alignment: float | None = None
    frames, arrivals = log.frames, log.arrivals
    if len(log.raw_seq) > len(log.frames):
        frames, alignment = _align_raw(log, clip, clock)
        arrivals = log.raw_arrivals
        method = "audio-level" if alignment >= 0.5 else "none"
    first: dict[int, float] = {}
    for n, arrival in zip(frames, arrivals, strict=False):
        if first_frame <= n < end_frame and n not in first:
            first[n] = arrival
    length = end - start
    all_arrivals = log.raw_arrivals if len(log.raw_seq) > len(log.frames) else log.arrivals
    arrivals_per_s = sum(1 for a in all_arrivals if window[0] <= a < window[1]) / (
        window[1] - window[0]
    )
    if method == "none":  # frames unnamed: count packets that arrived in the window
        count = sum(1 for a in log.raw_arrivals if start <= a < end)
        return StreamSummary(
            frames=count,
            frames_per_s=count / length,
            delay_ms_median=None,
            delay_ms_p95=None,
            delay_ms_max=None,
            method=method,
            arrivals_per_s=arrivals_per_s,
            alignment=alignment,
        )
    delays = sorted((a - clock.capture_time(n)) * 1000 for n, a in first.items())
    return StreamSummary(
        frames=len(first),
        frames_per_s=len(first) / length,
        delay_ms_median=statistics.median(delays) if delays else None,
        delay_ms_p95=_percentile(delays, 0.95) if delays else None,
        delay_ms_max=delays[-1] if delays else None,
        method=method,
        arrivals_per_s=arrivals_per_s,
        alignment=alignment,
    )


class _FrameWindow:
    """The frame numbers of one stream seen lately (the last `DEDUP_WINDOW`)."""

    __slots__ = ("_order", "_seen")

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._order: deque[int] = deque()

    def first_time(self, frame: int) -> bool:
        """Record `frame`; False if it was seen (or is older than the whole window)."""
        order = self._order
        if frame in self._seen or (order and frame <= order[0] and len(order) == DEDUP_WINDOW):
            return False
        self._seen.add(frame)
        order.append(frame)
        if len(order) > DEDUP_WINDOW:
            self._seen.discard(order.popleft())
        return True


class MediaCounter(StrEnum):
    """What a `MediaRouter` counts."""

    MEDIA_DUPLICATE_DROPPED = "media.duplicate_dropped"  #: a frame seen before (two paths)
    MEDIA_FORWARDED = "media.forwarded"  #: frames pushed to outgoing tracks


class CallRunnerCounter(StrEnum):
    """What a `CallRunner` counts (its router counts the media: `MediaCounter`)."""

    CAPTURE_SKIPPED = "capture.skipped"  #: frames not captured: the loop fell behind
    CALL_PEERS_LOST = "call.peers_lost"  #: peers silent for loss_timeout
    CALL_LOCAL_STALLS = "call.local_stalls"  #: this process stalled: peers not judged
    CALL_REPLANS = "call.replans"
    CALL_REPLAN_FALLBACK = "call.replan_fallback"  #: no election possible: hosts kept
    CALL_LINKS_TIMED_OUT = "call.links_timed_out"  #: links not up by connect_timeout
    CALL_BREAK_UNHEARD = "call.break_unheard"
    CALL_BREAK_TIMED_OUT = "call.break_timed_out"  #: old links closed without a clean close
    LINK_REPLACED = "link.replaced"
    LINK_FAILED = "link.failed"
    LINK_OFFER_FAILED = "link.offer_failed"
    SIGNALLING_SEND_FAILED = "signalling.send_failed"
    SIGNALLING_STALE_OFFER = "signalling.stale_offer"  #: an offer for an epoch gone by
    SIGNALLING_PLAN_MISMATCH = "signalling.plan_mismatch"
    SIGNALLING_BAD_OFFER = "signalling.bad_offer"
    SIGNALLING_UNEXPECTED_ANSWER = "signalling.unexpected_answer"
    SIGNALLING_BAD_ANSWER = "signalling.bad_answer"
    SIGNALLING_OTHER_CALL = "signalling.other_call"
    SIGNALLING_UNEXPECTED_REPLAN = "signalling.unexpected_replan"
    #: RING/JOIN/PLAN: call control, for the call manager (drivers/calls.py), not a runner
    SIGNALLING_CALL_CONTROL = "signalling.call_control"


class MediaRouter:
    """One node's frame switch: de-duplicates, logs, fans out.

    A received frame is logged the first time it arrives from any link, and
    forwarded the first time it arrives on a link of each epoch, to that
    epoch's tracks only (epoch-pure forwarding, see the module docstring); the
    node's own frames (``epoch=None``) go to every track of theirs.
    """

    def __init__(self, node_id: NodeId) -> None:
        self.node_id = node_id
        self.logs: dict[NodeId, StreamLog] = {}
        self.counters: Counters[MediaCounter] = Counters()
        self._outputs: dict[NodeId, list[ForwardTrack]] = {}
        self._seen: dict[NodeId, _FrameWindow] = {}
        self._forwarded: dict[tuple[NodeId, int], _FrameWindow] = {}

    def attach(self, track: ForwardTrack) -> None:
        self._outputs.setdefault(track.source, []).append(track)

    def detach(self, track: ForwardTrack) -> None:
        outputs = self._outputs.get(track.source, [])
        if track in outputs:
            outputs.remove(track)
        if track.epoch is not None and not any(t.epoch == track.epoch for t in outputs):
            self._forwarded.pop((track.source, track.epoch), None)

    def detach_all(self) -> None:
        self._outputs.clear()
        self._forwarded.clear()

    def on_frame(
        self,
        source: NodeId,
        frame: int,
        payload: bytes,
        arrival: float,
        *,
        epoch: int | None = None,
    ) -> None:
        """Frame `frame` of `source`: captured here (`epoch` None) or received on a
        link of plan epoch `epoch`."""
        first = self._seen.setdefault(source, _FrameWindow()).first_time(frame)
        if first and source != self.node_id:
            log = self.logs.setdefault(source, StreamLog())
            log.frames.append(frame)
            log.arrivals.append(arrival)
            if len(log.sample_payloads) < 20:
                log.sample_payloads.append(payload)
        outputs = self._outputs.get(source)
        if outputs and epoch is not None:
            outputs = [t for t in outputs if t.epoch == epoch]
            if outputs and not self._forwarded.setdefault(
                (source, epoch), _FrameWindow()
            ).first_time(frame):
                outputs = []
        elif not first:
            outputs = []
        if not first:
            self.counters.inc(MediaCounter.MEDIA_DUPLICATE_DROPPED)
        if outputs:
            packet = av.Packet(payload)
            packet.pts = frame * SAMPLES_PER_FRAME
            packet.time_base = TIME_BASE
            for track in outputs:
                track.push(packet)
            self.counters.inc(MediaCounter.MEDIA_FORWARDED, len(outputs))

    def on_unnamed(self, source: NodeId, seq: int, arrival: float, level: int | None) -> None:
        log = self.logs.setdefault(source, StreamLog())
        log.raw_seq.append(seq)
        log.raw_arrivals.append(arrival)
        log.raw_levels.append(level)


# ------------------------------------------------------------------ links


class Forwarding(Enum):
    """How a node passes other participants' audio on."""

    OURS = "ours"  #: encoded Opus packets as received (this driver)
    STOCK = "stock"  #: aiortc's decoding receivers + `MediaRelay` (benchmark peer)


@dataclass(slots=True, eq=False)
class _Link:
    epoch: int
    peer: NodeId
    pc: RTCPeerConnection
    created: float
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    connected_at: float | None = None
    last_rx: float | None = None
    receives: bool = False
    tracks: list[ForwardTrack] = field(default_factory=list)
    closed: bool = False
    #: Sources whose frames arrived on this link.
    heard: set[NodeId] = field(default_factory=set)
    #: This node sends other participants' audio on it (it forwards): others need it.
    forwards: bool = False
    video_tracks: list[VideoForwardTrack] = field(default_factory=list)
    video_receivers: list[RTCRtpReceiver] = field(default_factory=list)


def _intercept_rtp(receiver: RTCRtpReceiver, deliver: Callable[[RtpPacket, float], None]) -> None:
    """Route this receiver's RTP packets to `deliver` instead of its decoder."""

    async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        deliver(packet, time.monotonic())

    if not hasattr(receiver, RTP_HOOK):  # checked at call set-up too (`check_aiortc_hooks`)
        raise RuntimeError(f"aiortc {_version('aiortc')}: the receiver has no {RTP_HOOK}")
    # The DTLS transport calls this per routed packet (its RtpReceiver protocol).
    setattr(receiver, RTP_HOOK, handle_rtp_packet)


def _sdp_names(offer: Offer) -> bool:
    """Whether the offer's SDP parses and its m-lines are exactly the mids its lists name."""
    try:
        description = sdp.SessionDescription.parse(offer.sdp)
        mids = {media.rtp.muxId for media in description.media}
    except Exception:  # aiortc's parser raises assorted errors on malformed SDP
        return False
    named = {m for m, _ in offer.forward} | {m for m, _ in offer.backward}
    return bool(named) and mids == named


def _prefer_codec(transceiver: RTCRtpTransceiver) -> None:
    """Opus for audio, VP8 for video: the codecs the forwarder passes on as they are."""
    if transceiver.kind == "video":
        prefer_vp8(transceiver)
        return
    codecs = RTCRtpSender.getCapabilities("audio").codecs
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() == "audio/opus"])


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectedPair:
    """The candidate types (``host``, ``srflx``, ``relay``...) of the pair ICE nominated
    on one link to `peer`; ``None`` while none is nominated."""

    peer: NodeId
    local: str | None
    remote: str | None

    @property
    def relayed(self) -> bool:
        """This end sends and receives through its TURN allocation (checked at both ends
        of a link, no direct path was used)."""
        return self.local == "relay"


def nominated_pair(peer: NodeId, pc: RTCPeerConnection) -> SelectedPair:
    """Read the nominated pair from aioice (aiortc's stats do not report candidate
    pairs); all media of a link share one ICE transport (BUNDLE)."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        pair = getattr(connection, "_nominated", {}).get(1)
        if pair is not None:
            return SelectedPair(
                peer=peer, local=pair.local_candidate.type, remote=pair.remote_candidate.type
            )
    return SelectedPair(peer=peer, local=None, remote=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSetup:
    """When one media link of a plan epoch came up (CLOCK_MONOTONIC seconds)."""

    epoch: int
    peer: NodeId
    created: float
    connected: float | None


class CallRunner:
    """One node's side of a call: executes call plans over real WebRTC links.

    Run it in a task group (``await tg.start(runner.run)``) next to the
    node's `NodeHost`, then `apply` a plan on every participant. `counters`
    and `router.logs` tell what happened; nothing a peer sends or fails to
    send raises out of `run`. Given the participants' advertised
    `capabilities` (CAP-1.1), a runner re-elects a vanished host's
    replacement by VOICE (`elect_without`, with `voice_config`); `replan`
    replaces that policy.
    """

    def __init__(
        self,
        signalling: SignallingChannel,
        *,
        call_id: bytes,
        clock: MediaClock,
        clip: OpusClip | None = None,
        capture: bool = True,
        forwarding: Forwarding = Forwarding.OURS,
        loss_timeout: float | None = 0.5,
        connect_timeout: float = 5.0,
        capabilities: Mapping[NodeId, DeviceCapabilities] | None = None,
        voice_config: VoiceConfig = DEFAULT_CONFIG,
        replan: Replanner | None = None,
        video: bool = False,
        decode_video: bool = True,
    ) -> None:
        self.signalling = signalling
        self.node_id = signalling.node_id
        self.call_id = call_id
        self.clock = clock
        self.clip = clip or opus_clip()
        self.capture = capture
        self.forwarding = forwarding
        self.loss_timeout = loss_timeout
        self.connect_timeout = connect_timeout
        #: Participants' advertised capabilities, read at every re-plan (a caller
        #: may keep updating the mapping it passed); None: no election possible.
        self.capabilities = capabilities
        self.voice_config = voice_config
        self._replan: Replanner = self._elect if replan is None else replan
        self.router = MediaRouter(self.node_id)
        self.counters: Counters[CallRunnerCounter] = Counters()
        self.plan: CallPlanLike | None = None
        self.epoch = 0
        self.gone: set[NodeId] = set()
        #: Every link this node had, in creation order.
        self.setups: list[LinkSetup] = []
        #: Epoch -> CLOCK_MONOTONIC time its plan was applied here.
        self.applied_at: dict[int, float] = {}
        self._links: dict[tuple[int, NodeId], _Link] = {}
        self._pending: dict[tuple[int, NodeId], Offer] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._abandoned = False
        self._relay = MediaRelay()
        self._stock_receivers: dict[tuple[NodeId, str], RTCRtpReceiver] = {}
        self._stock_ready: dict[tuple[NodeId, str], asyncio.Event] = {}
        self._applying: set[int] = set()
        #: TURN servers every new link gathers relayed candidates from (peer TURN, TURN-2);
        #: with `relay_only`, links use nothing else.
        self.ice_servers: list[RTCIceServer] = []
        self.relay_only = False
        #: While True the capture loop sends silence (`silent_frame`: the client's mute),
        #: so links stay alive and listeners do not take the muted for gone.
        self.muted = False
        #: A video call (VOICE-7): every participant sends and receives VP8 too.
        self.video = video
        #: While False a video call sends no pictures (the client's camera off).
        self.camera = True
        self.video_router = VideoRouter(
            self.node_id, schedule=self._schedule, decode=decode_video, watch=capture
        )

    def _schedule(self, work: Callable[[], Any]) -> None:
        if self._tg is not None:
            self._tg.start_soon(work)

    # ---------------------------------------------------------------- running

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        check_aiortc_hooks()  # before any link: a missing hook fails the call, loudly
        use_loopback_ice()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._signal_loop)
                if self.capture:
                    tg.start_soon(self._capture_loop)
                    if self.video and self.forwarding is Forwarding.OURS:
                        tg.start_soon(self._video_capture_loop)
                if self.loss_timeout is not None:
                    tg.start_soon(self._watchdog)
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_links(list(self._links.values()))

    def abandon(self) -> None:
        """Vanish: stop sending media and answering signalling, tell nobody.

        For tests and labs: what a crashed or unplugged host looks like to the
        others (its sockets still answer ICE consent checks until `run` ends).
        """
        self._abandoned = True
        self.router.detach_all()
        self.video_router.detach_all()

    async def _signal_loop(self) -> None:
        while True:
            try:
                sender, message = await self.signalling.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return
            if self._abandoned:
                continue
            self._on_message(sender, message)

    async def _capture_loop(self) -> None:
        clip = self.clip
        frame = self.clock.current_frame(time.monotonic()) + 1
        while not self._abandoned:
            delay = self.clock.capture_time(frame) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > MAX_CAPTURE_LAG:
                now_frame = self.clock.current_frame(time.monotonic())
                self.counters.inc(CallRunnerCounter.CAPTURE_SKIPPED, now_frame - frame)
                frame = now_frame
            index = frame % clip.frames
            payload = silent_frame(index) if self.muted else clip.payloads[index]
            self.router.on_frame(self.node_id, frame, payload, time.monotonic())
            frame += 1

    async def _video_capture_loop(self) -> None:
        """VOICE-7.1: capture and encode frame n at ``origin + n / VIDEO_FPS``, once."""
        encoder = self.video_router.encoder = VideoEncoder()
        origin, interval = self.clock.origin, 1 / VIDEO_FPS
        frame = int((time.monotonic() - origin) / interval) + 1
        while not self._abandoned:
            delay = origin + frame * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > MAX_CAPTURE_LAG:
                now_frame = int((time.monotonic() - origin) / interval)
                self.video_router.counters.inc(VideoCounter.CAPTURE_SKIPPED, now_frame - frame)
                frame = now_frame
            if self.camera:
                data = await asyncio.to_thread(encoder.encode, frame)
                if data and not self._abandoned:
                    self.video_router.record_capture(frame, data)
                    pts = frame * TICKS_PER_FRAME
                    self.video_router.on_frame(
                        self.node_id, data, pts, time.monotonic(), epoch=None
                    )
            frame += 1

    async def _watchdog(self) -> None:
        """Declare peers silent for `loss_timeout` lost, unless this node itself stalled.

        A wake-up later than one more interval means this process did not run (a busy
        machine): packets peers sent meanwhile are still unread, so no peer is judged
        until `loss_timeout` after the stall (counted as ``call.local_stalls``).
        """
        assert self.loss_timeout is not None
        interval = min(0.1, self.loss_timeout / 4)
        judge_from = 0.0
        while True:
            due = time.monotonic() + interval
            await asyncio.sleep(interval)
            now = time.monotonic()
            if now - due > interval:
                self.counters.inc(CallRunnerCounter.CALL_LOCAL_STALLS)
                judge_from = now + self.loss_timeout
            if now < judge_from:
                continue
            lost = {
                link.peer
                for link in list(self._links.values())
                if link.epoch == self.epoch
                and not link.closed
                and link.last_rx is not None
                and now - link.last_rx > self.loss_timeout
                and link.peer not in self.gone
            }
            if lost and self.plan is not None and not self._abandoned:
                self.counters.inc(CallRunnerCounter.CALL_PEERS_LOST, len(lost))
                self._start_replan(self.epoch + 1, frozenset(lost), announce=True)

    def _start_replan(self, epoch: int, gone: frozenset[NodeId], *, announce: bool) -> None:
        if epoch <= self.epoch or epoch in self._applying or self.plan is None:
            return
        self.gone |= gone
        plan = self._replan(self.plan, frozenset(self.gone))
        self.counters.inc(CallRunnerCounter.CALL_REPLANS)
        assert self._tg is not None
        # VOICE-4.3: a gone peer's links close at once, before the new plan's links.
        doomed = [link for link in self._links.values() if link.peer in self.gone]
        self._tg.start_soon(self._close_links, doomed)
        if announce:
            message = Replan(call_id=self.call_id, epoch=epoch, gone=tuple(sorted(self.gone)))
            for peer in plan.participants:
                if peer != self.node_id:
                    self._tg.start_soon(self._send, peer, message)
        self._tg.start_soon(functools.partial(self.apply, plan, epoch=epoch))

    def _elect(self, plan: CallPlanLike, gone: frozenset[NodeId]) -> CallPlanLike:
        """The default re-planner: `elect_without`, or `replan_without` if it cannot elect."""
        if self.capabilities is not None:
            try:
                return elect_without(plan, gone, self.capabilities, config=self.voice_config)
            except VoiceError:  # a survivor's capabilities unknown (or nobody left)
                pass
        self.counters.inc(CallRunnerCounter.CALL_REPLAN_FALLBACK)
        return replan_without(plan, gone)

    async def _send(self, peer: NodeId, message: SignalMessage) -> None:
        try:
            await self.signalling.send(peer, message)
        except Exception:  # a vanished peer's node: the media path notices it
            self.counters.inc(CallRunnerCounter.SIGNALLING_SEND_FAILED)

    # --------------------------------------------------------------- plans

    async def apply(self, plan: CallPlanLike, *, epoch: int | None = None) -> None:
        """Move to `plan` (epoch `epoch`, default the next), make-before-break."""
        epoch = self.epoch + 1 if epoch is None else epoch
        if epoch <= self.epoch:
            raise LocalProtocolError(f"epoch {epoch} is not after {self.epoch}")
        if self._tg is None:
            raise LocalProtocolError("apply() before run() started")
        self._applying.add(epoch)
        self.plan, self.epoch = plan, epoch
        self.applied_at[epoch] = time.monotonic()
        streams = directed_streams(plan)
        me = self.node_id
        peers = sorted({y for (x, y) in streams if x == me} | {x for (x, y) in streams if y == me})
        for peer in peers:
            if me < peer:
                self._tg.start_soon(self._offer, epoch, peer, streams)
        for key in sorted(self._pending):
            offer = self._pending.pop(key)
            if key[0] == epoch:
                self._tg.start_soon(self._answer, key[1], offer)
            else:
                self.counters.inc(CallRunnerCounter.SIGNALLING_STALE_OFFER, int(key[0] < epoch))
        deadline = time.monotonic() + self.connect_timeout
        while time.monotonic() < deadline and self.epoch == epoch:
            links = [self._links.get((epoch, p)) for p in peers]
            if all(link is not None and link.connected.is_set() for link in links):
                break
            await asyncio.sleep(0.01)
        else:
            if self.epoch == epoch:
                down = sum(
                    1
                    for p in peers
                    if (epoch, p) not in self._links or not self._links[epoch, p].connected.is_set()
                )
                self.counters.inc(CallRunnerCounter.CALL_LINKS_TIMED_OUT, down)
        if self.epoch == epoch and any(e < epoch for e, _ in self._links):
            await self._break(epoch, streams, deadline)
        self._applying.discard(epoch)

    async def _break(
        self,
        epoch: int,
        streams: Mapping[tuple[NodeId, NodeId], tuple[NodeId, ...]],
        deadline: float,
    ) -> None:
        """VOICE-4.2: close the links of older epochs once the new plan carries the call.

        First wait until every source routed here has been heard on an epoch
        link (end to end, by epoch-pure forwarding), then close the old links
        this node forwards nobody's audio on; an old link it forwards on stays
        until its other end closes it. Whatever is left goes at `deadline`.
        """
        me = self.node_id
        expected = {s for (_, y), sources in streams.items() if y == me for s in sources}

        def heard_all() -> bool:
            new = [link for (e, _), link in self._links.items() if e == epoch]
            return all(any(s in link.heard for link in new) for s in expected)

        def old_links() -> list[_Link]:
            return [link for (e, _), link in self._links.items() if e < epoch]

        if self.forwarding is Forwarding.OURS:  # the stock path has no frame names to match
            while not heard_all() and time.monotonic() < deadline and self.epoch == epoch:
                await asyncio.sleep(0.01)
            if self.epoch != epoch:
                return
            if not heard_all():
                self.counters.inc(CallRunnerCounter.CALL_BREAK_UNHEARD)
            await self._close_links([link for link in old_links() if not link.forwards])
            while (
                any(link.pc.connectionState != "closed" for link in old_links())
                and time.monotonic() < deadline
                and self.epoch == epoch
            ):
                await asyncio.sleep(0.01)
            if self.epoch != epoch:
                return
        left = old_links()
        open_links = sum(1 for link in left if link.pc.connectionState != "closed")
        self.counters.inc(CallRunnerCounter.CALL_BREAK_TIMED_OUT, open_links)
        await self._close_links(left)

    def _new_link(self, epoch: int, peer: NodeId) -> _Link:
        configuration = rtc_configuration(self.ice_servers, relay_only=self.relay_only)
        pc = RTCPeerConnection(configuration=configuration)
        link = _Link(epoch=epoch, peer=peer, pc=pc, created=time.monotonic())
        previous = self._links.get((epoch, peer))
        if previous is not None:
            self.counters.inc(CallRunnerCounter.LINK_REPLACED)
            assert self._tg is not None
            self._tg.start_soon(self._close_links, [previous])
        self._links[epoch, peer] = link

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and not link.connected.is_set():
                link.connected_at = time.monotonic()
                link.connected.set()
                self.setups.append(
                    LinkSetup(
                        epoch=epoch, peer=peer, created=link.created, connected=link.connected_at
                    )
                )
            elif state == "failed":
                self.counters.inc(CallRunnerCounter.LINK_FAILED)

        return link

    def _kinds(self) -> tuple[str, ...]:
        """The media kinds of this call, in the order every offer lists them."""
        return ("audio", "video") if self.video else ("audio",)

    def _set_up_sender(self, transceiver: RTCRtpTransceiver, source: NodeId) -> None:
        _prefer_codec(transceiver)
        if transceiver.kind == "video" and self.forwarding is Forwarding.OURS:
            self.video_router.hook_sender(transceiver.sender, source)

    def _send_track(self, link: _Link, source: NodeId, kind: str = "audio") -> MediaStreamTrack:
        link.forwards |= source != self.node_id
        if self.forwarding is Forwarding.STOCK and source != self.node_id:
            return _LateRelayTrack(self, source, kind)
        if kind == "video":
            video = VideoForwardTrack(source, link.epoch, awaiting_keyframe=source != self.node_id)
            link.video_tracks.append(video)
            self.video_router.attach(video)
            return video
        track = ForwardTrack(source, epoch=link.epoch)
        link.tracks.append(track)
        self.router.attach(track)
        return track

    def _receive_on(self, link: _Link, transceiver: RTCRtpTransceiver, source: NodeId) -> None:
        link.receives = True
        if self.forwarding is Forwarding.STOCK:
            self._stock_receivers[source, transceiver.kind] = transceiver.receiver
            self._stock_ready.setdefault((source, transceiver.kind), asyncio.Event()).set()
            return
        if transceiver.kind == "video":
            self._receive_video_on(link, transceiver.receiver, source)
            return
        index, frames, clock, router = self.clip.index, self.clip.frames, self.clock, self.router

        epoch = link.epoch

        def deliver(packet: RtpPacket, arrival: float) -> None:
            link.last_rx = arrival
            if link.closed:
                return
            link.heard.add(source)
            payload = packet.payload
            clip_index = index.get(payload)
            if clip_index is None:
                clip_index = silent_index(payload)
            if clip_index is not None and clip_index < frames:
                frame = clock.unwrap(clip_index, arrival, frames)
                router.on_frame(source, frame, payload, arrival, epoch=epoch)
            else:
                level = packet.extensions.audio_level
                router.on_unnamed(
                    source, packet.sequence_number, arrival, -level[1] if level else None
                )

        _intercept_rtp(transceiver.receiver, deliver)

    def _receive_video_on(self, link: _Link, receiver: RTCRtpReceiver, source: NodeId) -> None:
        """VOICE-7.1: re-assemble the encoded frames, never decode them here."""
        router, epoch = self.video_router, link.epoch
        assembler = FrameAssembler()
        upstream = router.add_upstream(source, epoch, receiver)
        link.video_receivers.append(receiver)

        def deliver(packet: RtpPacket, arrival: float) -> None:
            link.last_rx = arrival
            if link.closed:
                return
            upstream.ssrc = packet.ssrc
            done = assembler.add(
                sequence=packet.sequence_number,
                timestamp=packet.timestamp,
                marker=bool(packet.marker),
                payload=packet.payload,
            )
            if done.lost:
                router.on_loss(source, epoch)
            if done.frame is not None:
                frame = done.frame
                router.on_frame(source, frame.data, frame.timestamp, arrival, epoch=epoch)

        _intercept_rtp(receiver, deliver)

    async def _stock_track(self, source: NodeId, kind: str = "audio") -> MediaStreamTrack:
        await self._stock_ready.setdefault((source, kind), asyncio.Event()).wait()
        receiver = self._stock_receivers[source, kind]
        while receiver.track is None:  # an offerer's receiver gets its track with the answer
            await asyncio.sleep(0.01)
        return receiver.track

    async def _offer(
        self, epoch: int, peer: NodeId, streams: Mapping[tuple[NodeId, NodeId], tuple[NodeId, ...]]
    ) -> None:
        link = self._new_link(epoch, peer)
        pc = link.pc
        sending: list[tuple[RTCRtpTransceiver, NodeId]] = []
        receiving: list[tuple[RTCRtpTransceiver, NodeId]] = []
        for kind in self._kinds():
            for source in streams.get((self.node_id, peer), ()):
                track = self._send_track(link, source, kind)
                transceiver = pc.addTransceiver(track, direction="sendonly")
                self._set_up_sender(transceiver, source)
                sending.append((transceiver, source))
            for source in streams.get((peer, self.node_id), ()):
                transceiver = pc.addTransceiver(kind, direction="recvonly")
                _prefer_codec(transceiver)
                self._receive_on(link, transceiver, source)
                receiving.append((transceiver, source))
        try:
            await pc.setLocalDescription(await pc.createOffer())
        except Exception:
            self.counters.inc(CallRunnerCounter.LINK_OFFER_FAILED)
            await self._close_links([link])
            return
        description = pc.localDescription
        offer = Offer(
            call_id=self.call_id,
            epoch=epoch,
            sdp=description.sdp,
            forward=tuple((str(t.mid), s) for t, s in sending),
            backward=tuple((str(t.mid), s) for t, s in receiving),
        )
        await self._send(peer, offer)

    async def _answer(self, peer: NodeId, offer: Offer) -> None:
        assert self.plan is not None
        streams = directed_streams(self.plan)
        kinds = self._kinds()
        expect_in = sorted(streams.get((peer, self.node_id), ()) * len(kinds))
        expect_out = sorted(streams.get((self.node_id, peer), ()) * len(kinds))
        if (
            sorted(s for _, s in offer.forward) != expect_in
            or sorted(s for _, s in offer.backward) != expect_out
            or not self.node_id > peer
        ):
            self.counters.inc(CallRunnerCounter.SIGNALLING_PLAN_MISMATCH)
            return
        if not _sdp_names(offer):  # before any link is replaced: garbage must not cut a call
            self.counters.inc(CallRunnerCounter.SIGNALLING_BAD_OFFER)
            return
        link = self._new_link(offer.epoch, peer)
        pc = link.pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
            by_mid = {t.mid: t for t in pc.getTransceivers()}
            if set(by_mid) != {m for m, _ in offer.forward} | {m for m, _ in offer.backward}:
                raise ValueError("offer's stream list does not match its m-lines")
            for lists in (offer.forward, offer.backward):
                named = sorted((by_mid[m].kind, s) for m, s in lists)
                if named != sorted((k, s) for s in {s for _, s in lists} for k in kinds):
                    raise ValueError("a source lacks one of the call's media kinds")
            for mid, source in offer.forward:
                self._receive_on(link, by_mid[mid], source)
            for mid, source in offer.backward:
                transceiver = by_mid[mid]
                transceiver.sender.replaceTrack(self._send_track(link, source, transceiver.kind))
                self._set_up_sender(transceiver, source)
                transceiver.direction = "sendonly"
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:  # an SDP aiortc refuses, or m-lines the lists do not name
            self.counters.inc(CallRunnerCounter.SIGNALLING_BAD_OFFER)
            await self._close_links([link])
            return
        await self._send(
            peer, Answer(call_id=self.call_id, epoch=offer.epoch, sdp=pc.localDescription.sdp)
        )

    async def _on_answer(self, peer: NodeId, answer: Answer) -> None:
        link = self._links.get((answer.epoch, peer))
        if link is None or link.closed or link.pc.signalingState != "have-local-offer":
            self.counters.inc(CallRunnerCounter.SIGNALLING_UNEXPECTED_ANSWER)
            return
        try:
            await link.pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        except Exception:
            self.counters.inc(CallRunnerCounter.SIGNALLING_BAD_ANSWER)
            await self._close_links([link])

    def _on_message(self, sender: NodeId, message: SignalMessage) -> None:
        assert self._tg is not None
        if message.call_id != self.call_id:
            self.counters.inc(CallRunnerCounter.SIGNALLING_OTHER_CALL)
            return
        match message:
            case Offer():
                if message.epoch == self.epoch and self.plan is not None:
                    self._tg.start_soon(self._answer, sender, message)
                elif message.epoch > self.epoch and len(self._pending) < 64:
                    self._pending[message.epoch, sender] = message
                else:
                    self.counters.inc(CallRunnerCounter.SIGNALLING_STALE_OFFER)
            case Answer():
                self._tg.start_soon(self._on_answer, sender, message)
            case Replan():
                if self.plan is not None and sender in self.plan.participants:
                    self._start_replan(message.epoch, frozenset(message.gone), announce=False)
                else:
                    self.counters.inc(CallRunnerCounter.SIGNALLING_UNEXPECTED_REPLAN)
            case Ring() | Join() | PlanMessage() | TurnRequest() | TurnGrant():
                self.counters.inc(CallRunnerCounter.SIGNALLING_CALL_CONTROL)
            case _:
                assert_never(message)

    async def _close_links(self, links: Sequence[_Link]) -> None:
        for link in links:
            if link.closed:
                continue
            link.closed = True
            for track in link.tracks:
                self.router.detach(track)
            for video in link.video_tracks:
                self.video_router.detach(video)
            for receiver in link.video_receivers:
                self.video_router.forget_upstream(receiver)
            if self._links.get((link.epoch, link.peer)) is link:
                del self._links[link.epoch, link.peer]
            with contextlib.suppress(Exception):
                await link.pc.close()

    # ---------------------------------------------------------------- views

    @property
    def applying(self) -> frozenset[int]:
        """The epochs whose plans are being switched to."""
        return frozenset(self._applying)

    def links(self) -> list[tuple[int, NodeId, bool]]:
        """(epoch, peer, connected) of every open link."""
        return [(e, p, link.connected.is_set()) for (e, p), link in self._links.items()]

    def forward_drops(self) -> int:
        """Packets dropped from full forwarding queues on the open links."""
        return sum(t.dropped for link in self._links.values() for t in link.tracks)

    def selected_pairs(self) -> list[SelectedPair]:
        """The ICE candidate pair each open link uses now (relayed or not, TURN-2)."""
        return [
            nominated_pair(link.peer, link.pc) for link in self._links.values() if not link.closed
        ]

    def frames_from(self, source: NodeId) -> list[int]:
        log = self.router.logs.get(source)
        return list(log.frames) if log else []
