"""A real WebRTC audio call whose media flows only through our TURN server.

Two aiortc `RTCPeerConnection`s in this process, configured with nothing but
our TURN server and ``iceTransportPolicy=relay``, exchange offer and answer
directly (no signalling server), and one sends a 440 Hz tone encoded with
Opus. The test checks what a user and an operator would: the callee hears
the tone (frames arrive and their spectrum peaks at 440 Hz), every candidate
either side offered is a relayed one, and our server's counters show media
bytes relayed in both directions (RTP one way, RTCP and ICE consent checks
the other) -- so the media really went through it.

No monkeypatching is needed for loopback: aioice leaves 127.0.0.1 out of its
*host* candidates (`aioice.ice.get_host_addresses`), but under the relay
policy it gathers no host candidates at all -- only the relayed candidate
from the TURN allocation, whose client socket connects to our server on
127.0.0.1 and whose relayed address is on 127.0.0.1. The explicit
configuration also keeps aiortc off its default public STUN server.
"""

import array
import asyncio
import fractions
import math
import time
from collections.abc import AsyncIterator

import anyio
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)
from av import AudioFrame

from railgun_ref.drivers.turn_server import TurnUdpServer
from railgun_ref.relay.turn import TurnCounter

pytestmark = pytest.mark.integration

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
TONE_HZ = 440.0
USER, PASSWORD = "caller", "correct horse"


class ToneTrack(MediaStreamTrack):
    """An audio track producing a sine tone in real time, 20 ms frames of 48 kHz mono s16."""

    kind = "audio"

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self._frequency = frequency
        self._sent = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        else:
            due = self._start + self._sent / SAMPLE_RATE
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        samples = array.array(
            "h",
            (
                round(
                    8000 * math.sin(2 * math.pi * self._frequency * (self._sent + i) / SAMPLE_RATE)
                )
                for i in range(FRAME_SAMPLES)
            ),
        )
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._sent += FRAME_SAMPLES
        return frame


def first_channel(frame: AudioFrame) -> list[int]:
    """The first channel of a packed s16 frame (what aiortc's Opus decoder produces)."""
    assert frame.format.name == "s16"
    samples = array.array("h", bytes(frame.planes[0]))
    return list(samples[:: len(frame.layout.channels)][: frame.samples])


def tone_power(samples: list[int], frequency: float, sample_rate: int) -> float:
    """Goertzel: the power of `samples` at `frequency`."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / sample_rate)
    previous = before = 0.0
    for sample in samples:
        previous, before = sample + coefficient * previous - before, previous
    return previous**2 + before**2 - coefficient * previous * before


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiortc runs on asyncio


@pytest.fixture
async def turn_server() -> AsyncIterator[TurnUdpServer]:
    async with anyio.create_task_group() as tg:
        server = await tg.start(TurnUdpServer(users={USER: PASSWORD}, realm="railgun-test").run)
        yield server
        tg.cancel_scope.cancel()


def relay_only(server: TurnUdpServer) -> RTCConfiguration:
    host, port = server.address
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=f"turn:{host}:{port}", username=USER, credential=PASSWORD)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )


def candidates(sdp: str) -> set[tuple[str, str, int]]:
    """(type, host, port) of every candidate line of an SDP."""
    found = set()
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            words = line.split()
            found.add((words[words.index("typ") + 1], words[4], int(words[5])))
    return found


@pytest.mark.anyio
async def test_audio_call_relayed_only_through_our_turn_server(
    turn_server: TurnUdpServer,
) -> None:
    """TURN-1.1, TURN-1.2, TURN-1.4, TURN-1.8, TURN-1.9: an aiortc call, relay-only, via us."""
    caller = RTCPeerConnection(configuration=relay_only(turn_server))
    callee = RTCPeerConnection(configuration=relay_only(turn_server))
    received: list[list[int]] = []
    enough = asyncio.Event()

    async def listen(track: MediaStreamTrack) -> None:
        while len(received) < 150:  # 3 s of 20 ms frames
            frame = await track.recv()
            assert isinstance(frame, AudioFrame)
            assert frame.sample_rate == SAMPLE_RATE
            received.append(first_channel(frame))
        enough.set()

    listeners: list[asyncio.Task[None]] = []

    @callee.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        listeners.append(asyncio.ensure_future(listen(track)))

    caller.addTrack(ToneTrack(TONE_HZ))
    try:
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        with anyio.fail_after(20):
            await enough.wait()
        during_call = {a.relayed: a for a in turn_server.allocations()}
    finally:
        await caller.close()
        await callee.close()
        for task in listeners:
            task.cancel()

    # Only relayed candidates were offered, so no other path could carry the media,
    # and they are the relayed addresses of our two allocations.
    offered = candidates(caller.localDescription.sdp) | candidates(callee.localDescription.sdp)
    assert {kind for kind, _, _ in offered} == {"relay"}
    assert {(host, port) for _, host, port in offered} == set(during_call)
    ((_, caller_host, caller_port),) = candidates(caller.localDescription.sdp)
    ((_, callee_host, callee_port),) = candidates(callee.localDescription.sdp)
    sender = during_call[(caller_host, caller_port)]
    listener = during_call[(callee_host, callee_port)]

    # The callee heard the tone (skip the first half second while the decoder settles).
    tone = [sample for frame in received[25:] for sample in frame]
    assert max(map(abs, tone)) > 1000
    at_tone = tone_power(tone, TONE_HZ, SAMPLE_RATE)
    for other in (220.0, 330.0, 880.0, 1000.0):
        assert at_tone > 100 * tone_power(tone, other, SAMPLE_RATE)

    # Media went through our server both ways: 3 s of Opus RTP from the caller's client
    # into its allocation and out of the callee's to the callee; RTCP and ICE the other way.
    assert sender.bytes_to_peer > 10_000 and listener.bytes_to_client > 10_000
    assert sender.bytes_to_client > 0 and listener.bytes_to_peer > 0
    counters = turn_server.core.counters
    assert counters.get_count(TurnCounter.ALLOCATIONS_CREATED) == 2  # one per peer connection
    assert counters.get_count(TurnCounter.RELAYED_TO_PEER_DATAGRAMS) > 150
    assert counters.get_count(TurnCounter.RELAYED_TO_CLIENT_DATAGRAMS) > 150
    assert counters.get_count(TurnCounter.DROPPED_BANDWIDTH) == 0
    # Hanging up deletes both allocations (Refresh with LIFETIME 0) and closes the relays.
    with anyio.fail_after(5):
        while turn_server.allocations() or turn_server.relay_sockets:
            await anyio.sleep(0.05)
    assert turn_server.core.counters.get_count(TurnCounter.ALLOCATIONS_DELETED) == 2
