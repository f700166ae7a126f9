"""VP8 over RTP for a forwarding SFU: payload descriptors, frame assembly, keyframe requests.

Theory of operation
-------------------
1. A forwarder passes video on without decoding it (VOICE-7.1). It cannot pass
   RTP packets on as they are (each link has its own SSRC, sequence numbers and
   picture ids), so it re-assembles each *encoded frame* from its packets
   (`FrameAssembler`) and hands the frame, byte for byte, to the next link's
   packetizer. Only the RFC 7741 §4.2 payload descriptor is read and dropped.
2. A frame is complete when its packets run from one with S=1 and PID=0 to one
   with the RTP marker bit, with consecutive sequence numbers and one RTP
   timestamp (RFC 7741 §4.1, RFC 3550 §5.1). Anything else -- a missing packet,
   a frame that starts in the middle -- is *loss*: the frames after it cannot
   be decoded until a keyframe, so the assembler reports it (VOICE-7.3).
3. A frame is a keyframe when the P bit of its first byte is 0 (RFC 6386 §9.1,
   RFC 7741 §4.3).
4. Keyframe requests (PLI, RFC 4585 §6.3.1; FIR, RFC 5104 §4.3.1) are
   rate-limited per stream (`KeyframeRequests`, VOICE-7.4): a keyframe costs
   every receiver of the stream bandwidth, so a burst of requests (several
   joiners, a loss seen by many) becomes one.

Pure: no IO, no clock (``now`` is passed in); malformed payloads raise
`RemoteProtocolError` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError

#: RTP timestamps of video run at 90 kHz (RFC 7741 §4.1).
VIDEO_CLOCK_RATE: Final = 90_000
#: Shortest interval between two keyframe requests for one stream (s, VOICE-7.4).
KEYFRAME_REQUEST_INTERVAL: Final = 0.3
#: Largest encoded frame assembled (bytes): a 320x240 keyframe is ~10-30 KB.
MAX_FRAME_BYTES: Final = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Vp8Descriptor:
    """The RFC 7741 §4.2 payload descriptor fields a forwarder reads."""

    start: bool  #: S: first packet of a partition
    partition: int  #: PID
    picture_id: int | None
    size: int  #: descriptor length in bytes


def _byte(payload: bytes, pos: int) -> int:
    if pos >= len(payload):
        raise RemoteProtocolError(ErrorCode.MALFORMED, "VP8 payload descriptor truncated")
    return payload[pos]


def decode_descriptor(payload: bytes) -> tuple[Vp8Descriptor, bytes]:
    """Split an RTP payload into its VP8 descriptor and the VP8 bytes (RFC 7741 §4.2)."""
    first = _byte(payload, 0)
    pos = 1
    picture_id: int | None = None
    if first & 0x80:  # X: extension byte follows
        ext = _byte(payload, pos)
        pos += 1
        if ext & 0x80:  # I: picture id, 7 or 15 bits (M)
            high = _byte(payload, pos)
            pos += 1
            if high & 0x80:
                picture_id = ((high & 0x7F) << 8) | _byte(payload, pos)
                pos += 1
            else:
                picture_id = high
        if ext & 0x40:  # L: TL0PICIDX
            _byte(payload, pos)
            pos += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            _byte(payload, pos)
            pos += 1
    if pos >= len(payload):
        raise RemoteProtocolError(ErrorCode.MALFORMED, "VP8 packet without payload")
    descriptor = Vp8Descriptor(
        start=bool(first & 0x10), partition=first & 0x0F, picture_id=picture_id, size=pos
    )
    return descriptor, payload[pos:]


def is_keyframe(frame: bytes) -> bool:
    """RFC 6386 §9.1: bit 0 of the frame tag is 0 on a keyframe (an empty frame is not)."""
    return bool(frame) and not frame[0] & 0x01


@dataclass(frozen=True, slots=True, kw_only=True)
class Vp8Frame:
    """One encoded frame as it was sent: the bytes a decoder takes."""

    data: bytes
    timestamp: int  #: RTP timestamp (90 kHz) of the link it arrived on
    keyframe: bool


class AssemblyCounter(StrEnum):
    """What a `FrameAssembler` counts."""

    FRAMES = "vp8.frames"  #: complete frames
    LOSS = "vp8.loss"  #: a frame given up: missing packet or a start in the middle
    MALFORMED = "vp8.malformed"  #: a payload whose descriptor does not parse
    OVERSIZE = "vp8.oversize"  #: a frame beyond MAX_FRAME_BYTES


@dataclass(frozen=True, slots=True, kw_only=True)
class Assembled:
    """What one packet completed: a frame, and whether loss was seen first."""

    frame: Vp8Frame | None
    lost: bool


@dataclass(slots=True)
class FrameAssembler:
    """Re-assembles one RTP stream's VP8 frames (theory of operation, 1-2)."""

    counters: Counters[AssemblyCounter] = field(default_factory=Counters)
    _parts: list[bytes] = field(default_factory=list)
    _size: int = 0
    _timestamp: int | None = None
    _next_seq: int | None = None
    _last_seq: int | None = None

    def add(self, *, sequence: int, timestamp: int, marker: bool, payload: bytes) -> Assembled:
        """Feed one packet; RemoteProtocolError-free (malformed packets count as loss)."""
        try:
            descriptor, data = decode_descriptor(payload)
        except RemoteProtocolError:
            self.counters.inc(AssemblyCounter.MALFORMED)
            self._drop()
            return Assembled(frame=None, lost=True)
        lost = self._last_seq is not None and sequence != (self._last_seq + 1) & 0xFFFF
        self._last_seq = sequence
        if descriptor.start and descriptor.partition == 0:
            if self._timestamp is not None:  # the previous frame never saw its marker
                lost = True
            self._drop()
            self._timestamp, self._next_seq = timestamp, sequence
        elif self._timestamp is None or timestamp != self._timestamp or sequence != self._next_seq:
            self._drop()
            if lost or self._next_seq is not None:
                self.counters.inc(AssemblyCounter.LOSS)
            return Assembled(frame=None, lost=True)
        self._parts.append(data)
        self._size += len(data)
        self._next_seq = (sequence + 1) & 0xFFFF
        if self._size > MAX_FRAME_BYTES:
            self.counters.inc(AssemblyCounter.OVERSIZE)
            self._drop()
            return Assembled(frame=None, lost=True)
        if lost:
            self.counters.inc(AssemblyCounter.LOSS)
        if not marker:
            return Assembled(frame=None, lost=lost)
        frame_bytes = b"".join(self._parts)
        self._drop()
        self.counters.inc(AssemblyCounter.FRAMES)
        frame = Vp8Frame(data=frame_bytes, timestamp=timestamp, keyframe=is_keyframe(frame_bytes))
        return Assembled(frame=frame, lost=lost)

    def _drop(self) -> None:
        self._parts = []
        self._size = 0
        self._timestamp = None
        self._next_seq = None


@dataclass(slots=True)
class KeyframeRequests:
    """VOICE-7.4: at most one keyframe request per stream per `interval` seconds."""

    interval: float = KEYFRAME_REQUEST_INTERVAL
    _last: dict[object, float] = field(default_factory=dict)

    def allow(self, stream: object, *, now: float) -> bool:
        """Whether a request for `stream` goes out now (and record it if so)."""
        last = self._last.get(stream)
        if last is not None and now - last < self.interval:
            return False
        self._last[stream] = now
        return True
