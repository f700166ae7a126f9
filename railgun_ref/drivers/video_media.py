"""Real WebRTC video for calls (aiortc): VP8 forwarded as encoded frames, keyframes on demand.

Theory of operation
-------------------
The voice driver (`voice_media`) carries one transceiver per (direction,
source) and kind; this module is what its video transceivers run.

**Sources.** A participant's camera is `test_card`: a 320x240 picture that
moves every frame and carries its frame number as a row of black and white
blocks (19 bits and a parity bit), so a receiver that decodes a frame knows
which capture it is -- frames are named exactly, as the audio clip names its
packets. Frame n is captured at ``origin + n / VIDEO_FPS`` on the call's
`MediaClock` and encoded once by `VideoEncoder` (libvpx through PyAV,
realtime), whatever the number of links: every link's track gets the same
encoded frame (VOICE-7.1).

**Forwarding without decoding.** Senders take `av.Packet` objects: aiortc's VP8
sender then only packetizes (``Vp8Encoder.pack``). Receivers are intercepted as
for audio (`voice_media._intercept_rtp`); `voice.vp8.FrameAssembler` re-builds
each encoded frame from its RTP packets and the `VideoRouter` de-duplicates by
content (identical bytes along the whole path), forwards epoch-pure like the
audio router, and hands a listener's frames to its `VideoSink`. A stock
`MediaRelay` cannot do this: it subscribes to decoded frames, so a stock SFU
decodes every stream once and encodes it once per listener.

**Keyframes (VOICE-7.3, VOICE-7.4).** Our encoders make a keyframe only when
asked (as WebRTC senders do). A track that forwards someone else's video
starts by waiting for a keyframe and asks upstream for one; a sink that gets a
frame it cannot decode (a start in the middle, a loss, a decoder error) drops
frames until a keyframe and sends a PLI on the link the frame came on. A PLI
or FIR a forwarder's sender receives is relayed upstream as a PLI on the link
the stream arrives on; the source's sender hook forces its encoder. aiortc has
no public hook for either end: the sender's ``_send_keyframe`` (what its
RTCP handler calls for PLI and FIR) is replaced on the one sender instance,
and PLIs go out through the receiver's ``_send_rtcp_pli``; both are checked
at call set-up by `voice_media.check_aiortc_hooks`. Requests are rate-limited
per stream (`voice.vp8.KeyframeRequests`).

**A slow receiver.** A track's queue holds `VIDEO_QUEUE_FRAMES` frames; when
its link cannot keep up the oldest frame is dropped, the track then waits for
a keyframe and asks for one. No simulcast (see VOICE-7.5): the slow receiver
sees fewer pictures, and the keyframes it asks for go to every receiver of
that stream.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import hashlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import av
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import NodeId
from railgun_ref.voice.vp8 import KeyframeRequests, is_keyframe

WIDTH: Final = 320
HEIGHT: Final = 240
VIDEO_FPS: Final = 30
VIDEO_TIME_BASE: Final = fractions.Fraction(1, 90_000)
TICKS_PER_FRAME: Final = 90_000 // VIDEO_FPS
#: Target bit rate of a participant's encoder (bits/s).
VIDEO_BITRATE: Final = 300_000
#: A forwarding track holds this many frames (~270 ms) before dropping the oldest.
VIDEO_QUEUE_FRAMES: Final = 8
#: Frames remembered per stream to drop a second copy (two paths during a switch).
VIDEO_DEDUP_WINDOW: Final = 128
#: The test card's frame-number row: blocks of BLOCK pixels, NUMBER_BITS + parity.
BLOCK: Final = 16
NUMBER_BITS: Final = 19
NUMBER_CYCLE: Final = 1 << NUMBER_BITS
_BLACK, _WHITE = 16, 235
_PHASES: Final = 50  #: the moving background repeats every 50 frames
#: aiortc 1.16 private methods (checked by `voice_media.check_aiortc_hooks`): what a
#: sender's RTCP handler calls on PLI/FIR, and how a receiver sends a PLI.
KEYFRAME_HOOK: Final = "_send_keyframe"
PLI_HOOK: Final = "_send_rtcp_pli"


# ------------------------------------------------------------- the camera


@functools.cache
def _ramp() -> bytes:
    return bytes((k % 200) + 28 for k in range(WIDTH + HEIGHT + 4 * _PHASES))


@functools.cache
def _background(phase: int) -> bytes:
    ramp, shift = _ramp(), 4 * phase
    return b"".join(ramp[y + shift : y + shift + WIDTH] for y in range(BLOCK, HEIGHT))


def _number_row(number: int) -> bytes:
    bits = [(number >> i) & 1 for i in range(NUMBER_BITS)]
    bits.append(sum(bits) & 1)  # even parity over the 20 blocks
    row = b"".join(bytes([_WHITE if bit else _BLACK]) * BLOCK for bit in bits)
    return row * BLOCK


_CHROMA: Final = bytes([128]) * (WIDTH // 2 * HEIGHT // 2)


def test_card(frame: int) -> av.VideoFrame:
    """Capture `frame`: a moving picture whose top row of blocks spells the frame number."""
    picture = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    luma = _number_row(frame % NUMBER_CYCLE) + _background(frame % _PHASES)
    picture.planes[0].update(luma)
    picture.planes[1].update(_CHROMA)
    picture.planes[2].update(_CHROMA)
    picture.pts = frame * TICKS_PER_FRAME
    picture.time_base = VIDEO_TIME_BASE
    return picture


def read_frame_number(picture: av.VideoFrame) -> int | None:
    """The frame number a decoded test card spells (mod NUMBER_CYCLE), None if unreadable."""
    plane = picture.planes[0]
    if picture.width != WIDTH or picture.height != HEIGHT:
        return None
    row = bytes(plane)[(BLOCK // 2) * plane.line_size :][:WIDTH]
    bits = [row[BLOCK * i + BLOCK // 2] > 128 for i in range(NUMBER_BITS + 1)]
    if sum(bits) & 1:
        return None
    return sum(1 << i for i, bit in enumerate(bits[:NUMBER_BITS]) if bit)


class VideoEncoder:
    """One participant's VP8 encoder (libvpx, realtime); keyframes only when asked."""

    def __init__(self) -> None:
        codec = av.CodecContext.create("libvpx", "w")
        assert isinstance(codec, av.VideoCodecContext)
        codec.width, codec.height = WIDTH, HEIGHT
        codec.pix_fmt = "yuv420p"
        codec.bit_rate = VIDEO_BITRATE
        codec.time_base = VIDEO_TIME_BASE
        codec.framerate = fractions.Fraction(VIDEO_FPS)
        codec.gop_size = 3000  # no periodic keyframes: receivers ask (VOICE-7.3)
        codec.thread_count = 1
        codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        self._codec = codec
        self._force = True  # the first frame is a keyframe anyway
        self.keyframes = 0

    def force_keyframe(self) -> None:
        self._force = True

    def encode(self, frame: int) -> bytes:
        """Encode capture `frame` (blocking: run it in a worker thread)."""
        picture = test_card(frame)
        if self._force:
            self._force = False
            picture.pict_type = av.video.frame.PictureType.I
        data = b"".join(bytes(p) for p in self._codec.encode(picture))
        if is_keyframe(data):
            self.keyframes += 1
        return data


# ------------------------------------------------------------- the tracks


class VideoForwardTrack(MediaStreamTrack):
    """A video track of encoded VP8 frames (`av.Packet`), fed by the `VideoRouter`.

    While `awaiting_keyframe` it drops every frame but a keyframe: a decoder
    that missed a frame can do nothing with the frames after it. Until its sender
    first asks for a frame (the link is up) it keeps nothing; then, if it awaits a
    keyframe, it calls `on_start` to ask for one -- asking earlier would make the
    source send keyframes nobody can receive yet.
    """

    kind = "video"

    def __init__(self, source: NodeId, epoch: int | None, *, awaiting_keyframe: bool) -> None:
        super().__init__()
        self.source = source
        self.epoch = epoch
        self.awaiting_keyframe = awaiting_keyframe
        self._queue: deque[av.Packet[Any]] = deque()
        self._ready = asyncio.Event()
        self.dropped = 0
        self.sent = 0
        self.started = False
        self.on_start: Callable[[], None] | None = None

    def push(self, data: bytes, pts: int, *, keyframe: bool) -> bool:
        """Queue a frame; True if this track now waits for a keyframe it should ask for."""
        if not self.started or (self.awaiting_keyframe and not keyframe):
            return False
        self.awaiting_keyframe = False
        if len(self._queue) >= VIDEO_QUEUE_FRAMES:  # a slow link: drop, resync on a keyframe
            self.dropped += len(self._queue)
            self._queue.clear()
            self.awaiting_keyframe = True
            return True
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = VIDEO_TIME_BASE
        self._queue.append(packet)
        self._ready.set()
        return False

    async def recv(self) -> av.Packet[Any]:
        if not self.started:
            self.started = True
            if self.awaiting_keyframe and self.on_start is not None:
                self.on_start()
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


# ---------------------------------------------------------------- sinks


@dataclass(slots=True)
class VideoLog:
    """What one listener got of one source's video (after de-duplication)."""

    #: Frame numbers read from decoded pictures, and their arrival times.
    frames: list[int] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    #: Arrival times of frames that would decode (whether decoded or not).
    complete: list[float] = field(default_factory=list)
    decoded: int = 0
    keyframes: int = 0
    #: CLOCK_MONOTONIC time of the first decodable frame, None until then.
    first_frame_at: float | None = None
    #: With `VideoRouter.digests`: `frame_digest` of each decodable frame, in arrival order.
    digests: list[int] | None = None


class VideoCounter(StrEnum):
    """What a `VideoRouter` counts."""

    FRAMES_FORWARDED = "video.frames_forwarded"  #: frames pushed to outgoing tracks
    DUPLICATES = "video.duplicates"  #: a frame seen before (two paths)
    TRACK_DROPS = "video.track_drops"  #: a slow link's queue overflowed
    WAITING_KEYFRAME = "video.waiting_keyframe"  #: frames a sink dropped until a keyframe
    DECODE_ERRORS = "video.decode_errors"
    LOSS = "video.loss"  #: a link lost part of a frame
    PLI_RECEIVED = "video.pli_received"  #: PLI/FIR that reached one of our senders
    PLI_SENT = "video.pli_sent"  #: PLIs this node sent upstream
    KEYFRAMES_FORCED = "video.keyframes_forced"  #: our encoder made a keyframe on request
    REQUESTS_COALESCED = "video.requests_coalesced"  #: rate-limited (VOICE-7.4)
    NO_UPSTREAM = "video.no_upstream"  #: a request for a stream not arriving here
    CAPTURE_SKIPPED = "video.capture_skipped"  #: frames not captured: the loop fell behind


class VideoSink:
    """Decodes one source's frames at a listener (or only checks they would decode)."""

    def __init__(self, log: VideoLog, *, decode: bool) -> None:
        self.log = log
        self.needs_keyframe = True
        self._decoder = av.CodecContext.create("vp8", "r") if decode else None

    def take(self, data: bytes, *, keyframe: bool, arrival: float) -> bool | None:
        """Feed a frame: True decoded/decodable, False dropped (a keyframe is needed)."""
        if keyframe:
            self.needs_keyframe = False
            self.log.keyframes += 1
        if self.needs_keyframe:
            return False
        if self._decoder is not None:
            try:
                pictures = self._decoder.decode(av.Packet(data))
            except av.FFmpegError:
                self.needs_keyframe = True
                return None
            for picture in pictures:
                assert isinstance(picture, av.VideoFrame)
                self.log.decoded += 1
                number = read_frame_number(picture)
                if number is not None:
                    self.log.frames.append(number)
                    self.log.arrivals.append(arrival)
        self.log.complete.append(arrival)
        if self.log.digests is not None:
            self.log.digests.append(frame_digest(data))
        if self.log.first_frame_at is None:
            self.log.first_frame_at = arrival
        return True


def frame_digest(data: bytes) -> int:
    """A 64-bit digest naming an encoded frame: forwarders pass the same bytes on."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


# ---------------------------------------------------------------- router


class _Window:
    __slots__ = ("_order", "_seen")

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._order: deque[int] = deque()

    def first_time(self, key: int) -> bool:
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > VIDEO_DEDUP_WINDOW:
            self._seen.discard(self._order.popleft())
        return True


@dataclass(slots=True)
class _Upstream:
    """Where a source's video arrives: the receiver to send PLIs on."""

    epoch: int
    receiver: RTCRtpReceiver
    ssrc: int | None = None
    closed: bool = False


Schedule = Callable[[Callable[[], Awaitable[None]]], None]


class VideoRouter:
    """One node's video switch: de-duplicates, forwards epoch-pure, feeds sinks, routes
    keyframe requests (see the module docstring)."""

    def __init__(
        self, node_id: NodeId, *, schedule: Schedule, decode: bool = True, watch: bool = True
    ) -> None:
        self.node_id = node_id
        self.decode = decode
        #: False on a node that only forwards (it takes part without watching).
        self.watch = watch
        self.logs: dict[NodeId, VideoLog] = {}
        self.counters: Counters[VideoCounter] = Counters()
        self.encoder: VideoEncoder | None = None
        #: Frame numbers this node captured and sent (a stalled process skips some).
        self.captured: list[int] = []
        #: Name frames by `frame_digest` (a benchmark matches what arrived to what was
        #: sent): captured frames here, decodable frames received in `VideoLog.digests`.
        self.digests = False
        #: With `digests`: frame number of each frame captured here, by digest.
        self.captured_digests: dict[int, int] = {}
        self._schedule = schedule
        self._sinks: dict[NodeId, VideoSink] = {}
        self._outputs: dict[NodeId, list[VideoForwardTrack]] = {}
        self._seen: dict[NodeId, _Window] = {}
        self._forwarded: dict[tuple[NodeId, int], _Window] = {}
        self._upstream: dict[NodeId, list[_Upstream]] = {}
        self._requests = KeyframeRequests()

    # ----------------------------------------------------------- wiring

    def attach(self, track: VideoForwardTrack) -> None:
        self._outputs.setdefault(track.source, []).append(track)
        track.on_start = functools.partial(self.request_keyframe, track.source)

    def detach(self, track: VideoForwardTrack) -> None:
        outputs = self._outputs.get(track.source, [])
        if track in outputs:
            outputs.remove(track)

    def detach_all(self) -> None:
        self._outputs.clear()

    def record_capture(self, frame: int, data: bytes) -> None:
        """Frame `frame` was captured and encoded here as `data`."""
        self.captured.append(frame)
        if self.digests:
            self.captured_digests[frame_digest(data)] = frame

    def add_upstream(self, source: NodeId, epoch: int, receiver: RTCRtpReceiver) -> _Upstream:
        upstream = _Upstream(epoch=epoch, receiver=receiver)
        self._upstream.setdefault(source, []).append(upstream)
        return upstream

    def hook_sender(self, sender: RTCRtpSender, source: NodeId) -> None:
        """Route PLI/FIR that reach `sender` (its RTCP handler calls ``_send_keyframe``)."""

        def on_keyframe_request() -> None:
            self.counters.inc(VideoCounter.PLI_RECEIVED)
            self.request_keyframe(source)

        setattr(sender, KEYFRAME_HOOK, on_keyframe_request)

    # ----------------------------------------------------------- frames

    def on_frame(
        self, source: NodeId, data: bytes, pts: int, arrival: float, *, epoch: int | None
    ) -> None:
        """An encoded frame of `source`: ours (`epoch` None) or received on an epoch link."""
        key = hash(data)
        keyframe = is_keyframe(data)
        first = self._seen.setdefault(source, _Window()).first_time(key)
        if not first:
            self.counters.inc(VideoCounter.DUPLICATES)
        elif source != self.node_id and self.watch:
            self._sink(source, data, keyframe, arrival)
        outputs = self._outputs.get(source, [])
        if epoch is not None:
            window = self._forwarded.setdefault((source, epoch), _Window())
            outputs = [t for t in outputs if t.epoch == epoch] if window.first_time(key) else []
        elif not first:
            outputs = []
        for track in outputs:
            if track.push(data, pts, keyframe=keyframe):
                self.counters.inc(VideoCounter.TRACK_DROPS)
                self.request_keyframe(source)
            elif track.started and track.awaiting_keyframe:
                # Still waiting: the request may have been coalesced into one whose
                # keyframe came before this track started. Ask again (VOICE-7.4 rate).
                self.request_keyframe(source)
        if outputs:
            self.counters.inc(VideoCounter.FRAMES_FORWARDED, len(outputs))

    def _sink(self, source: NodeId, data: bytes, keyframe: bool, arrival: float) -> None:
        sink = self._sinks.get(source)
        if sink is None:
            log = self.logs.setdefault(source, VideoLog(digests=[] if self.digests else None))
            sink = self._sinks[source] = VideoSink(log, decode=self.decode)
        taken = sink.take(data, keyframe=keyframe, arrival=arrival)
        if taken is None:
            self.counters.inc(VideoCounter.DECODE_ERRORS)
        elif not taken:
            self.counters.inc(VideoCounter.WAITING_KEYFRAME)
        if not taken:
            self.request_keyframe(source)

    def on_loss(self, source: NodeId, epoch: int) -> None:
        """Part of a frame of `source` was lost on an epoch link: resync its followers."""
        self.counters.inc(VideoCounter.LOSS)
        for track in self._outputs.get(source, []):
            if track.epoch == epoch:
                track.awaiting_keyframe = True
        sink = self._sinks.get(source)
        if sink is not None:
            sink.needs_keyframe = True
        self.request_keyframe(source)

    # ------------------------------------------------------- keyframes

    def request_keyframe(self, source: NodeId) -> None:
        """VOICE-7.3: our encoder makes one, or a PLI goes upstream (VOICE-7.4 rate)."""
        if not self._requests.allow(source, now=time.monotonic()):
            self.counters.inc(VideoCounter.REQUESTS_COALESCED)
            return
        if source == self.node_id:
            if self.encoder is not None:
                self.encoder.force_keyframe()
                self.counters.inc(VideoCounter.KEYFRAMES_FORCED)
            return
        live = [u for u in self._upstream.get(source, []) if not u.closed and u.ssrc is not None]
        if not live:
            self.counters.inc(VideoCounter.NO_UPSTREAM)
            return
        upstream = max(live, key=lambda u: u.epoch)
        self.counters.inc(VideoCounter.PLI_SENT)
        self._schedule(functools.partial(_send_pli, upstream.receiver, upstream.ssrc))

    def forget_upstream(self, receiver: RTCRtpReceiver) -> None:
        for entries in self._upstream.values():
            for upstream in entries:
                if upstream.receiver is receiver:
                    upstream.closed = True


async def _send_pli(receiver: RTCRtpReceiver, ssrc: int | None) -> None:
    if ssrc is not None:
        await getattr(receiver, PLI_HOOK)(ssrc)


def prefer_vp8(transceiver: RTCRtpTransceiver) -> None:
    """VP8 only (VOICE-7.1): the forwarder re-assembles VP8 frames; RTX is not used."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() == "video/vp8"])
