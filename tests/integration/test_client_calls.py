"""Calls through the client API on real localhost with the central service down (VOICE-6).

Three `connect`ed clients (real nodes, real aiortc media) in a closed room whose
central service URL points at a port nobody listens on: the caller rings, two
members answer, everyone hears everyone; a non-member's ring and garbage are
refused with typed events and counters while the call goes on; mute keeps the
plan; one member hangs up and the other two go on hearing each other.
Assertions count frames by capture number, never wall-clock time.
"""

import socket
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from railgun_ref.client import (
    Call,
    CallPlanChanged,
    CallProblem,
    CallProblemKind,
    CallRefusal,
    CallSignalRefused,
    Client,
    IncomingCall,
    connect,
    fast_profile,
)
from railgun_ref.core.constants import APP_TOPIC_VOICE
from railgun_ref.drivers.calls import CallCounter
from railgun_ref.drivers.voice_media import CallRunnerCounter
from railgun_ref.drivers.voice_signalling import MEDIA_AUDIO, Offer, Ring, encode_message
from railgun_ref.relay.turn import TurnCounter

from .rooms_helpers import make_room

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(240)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _dead_central() -> str:
    """A central-service URL on a 127.0.0.1 port nobody listens on: the service is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def _next(client: Client, kind: type, timeout: float = 60) -> object:
    with anyio.fail_after(timeout):
        async for event in client:
            if isinstance(event, kind):
                return event
    raise AssertionError("event stream ended")


async def _hearing(calls: Sequence[Call], *, frames: int, timeout: float = 90) -> None:
    """Every call has `frames` more frames from every other participant than now."""
    base = {(id(c), s): len(c.frames_from(s.node_id)) for c in calls for s in calls if s is not c}
    with anyio.fail_after(timeout):
        while not all(
            len(c.frames_from(s.node_id)) >= base[id(c), s] + frames
            for c in calls
            for s in calls
            if s is not c
        ):
            await anyio.sleep(0.1)


async def _plan_without(
    call: Call, gone: bytes, *, after: int, timeout: float = 60
) -> CallPlanChanged:
    """The first plan after epoch `after` that no longer has `gone`."""
    with anyio.fail_after(timeout):
        while True:
            event = await call.next_event()
            if (
                isinstance(event, CallPlanChanged)
                and event.epoch > after
                and gone not in event.participants
            ):
                return event


async def test_three_clients_call_with_central_down(tmp_path: Path) -> None:
    """VOICE-6.2, VOICE-6.3, VOICE-6.4, VOICE-6.5, VOICE-6.6, VOICE-6.7, CAP-3.7: ring,
    answer, hear everyone, advertisements read, refuse outsiders, mute, hang up."""
    profile = fast_profile()
    central = _dead_central()
    async with (
        connect(data_dir=tmp_path / "a", central_url=central, profile=profile) as alice,
        connect(
            data_dir=tmp_path / "b", central_url=central, profile=profile, bootstrap=[alice.address]
        ) as bob,
        connect(
            data_dir=tmp_path / "c", central_url=central, profile=profile, bootstrap=[alice.address]
        ) as carol,
        connect(data_dir=tmp_path / "m", profile=profile, bootstrap=[alice.address]) as mallory,
    ):
        room = await make_room(alice, bob, carol, timeout=60)
        for client in (alice, bob, carol):
            await client.wait_for_members(room, 2, timeout=60, reachable=True)
        assert not alice.transport.central_connected

        call_a = await alice.call(room)
        ring_b = await _next(bob, IncomingCall)
        ring_c = await _next(carol, IncomingCall)
        assert isinstance(ring_b, IncomingCall) and isinstance(ring_c, IncomingCall)
        assert ring_b.caller == alice.node_id and ring_b.room_id == room and ring_b.audio
        call_b = await bob.answer(ring_b.call_id)
        call_c = await carol.answer(ring_c.call_id)
        calls = [call_a, call_b, call_c]
        await _hearing(calls, frames=50)
        assert set(call_a.participants) == {alice.node_id, bob.node_id, carol.node_id}
        assert call_a.topology == "mesh" and call_a.hosts == ()
        # CAP-3.3: every client advertised by default; the coordinator that added the last
        # joiner read every participant's advertisement from the DHT (CAP-3.5).
        managers = [c.calls for c in (alice, bob, carol) if c.calls is not None]
        assert any(set(call_a.participants) <= set(m.advertised) for m in managers)

        # A non-member rings and sends garbage: refused, typed, counted; the call goes on.
        assert alice.calls is not None
        ring = Ring(call_id=bytes(16), room_id=room, media=MEDIA_AUDIO)
        await mallory.transport.host.send_app(alice.address, APP_TOPIC_VOICE, encode_message(ring))
        refused = await _next(alice, CallSignalRefused)
        assert isinstance(refused, CallSignalRefused)
        assert refused.reason is CallRefusal.NOT_A_MEMBER and refused.sender == mallory.node_id
        await mallory.transport.host.send_app(alice.address, APP_TOPIC_VOICE, b"\xff garbage")
        garbage = await _next(alice, CallSignalRefused)
        assert isinstance(garbage, CallSignalRefused) and garbage.reason is CallRefusal.MALFORMED
        assert alice.calls.counters.get_count(CallCounter.NOT_A_MEMBER) == 1
        assert alice.calls.counters.get_count(CallCounter.MALFORMED) == 1
        assert bytes(16) not in alice.calls.rings

        # Mute sends silence: the plan stays, frames (silent) keep arriving.
        epoch = call_a.epoch
        call_a.mute()
        await _hearing(calls, frames=25)
        assert call_a.epoch == epoch and call_a.muted
        call_a.unmute()

        # Bob hangs up: alice and carol move to a plan without him and go on.
        epochs = call_a.epoch, call_c.epoch
        await call_b.leave()
        assert call_b.ended.is_set()
        plan_a = await _plan_without(call_a, bob.node_id, after=epochs[0])
        await _plan_without(call_c, bob.node_id, after=epochs[1])
        assert set(plan_a.participants) == {alice.node_id, carol.node_id}
        await _hearing([call_a, call_c], frames=50)
        await call_a.leave()
        await call_c.leave()


async def _problem(call: Call, kind: CallProblemKind, timeout: float = 90) -> CallProblem:
    with anyio.fail_after(timeout):
        while True:
            event = await call.next_event()
            if isinstance(event, CallProblem) and event.kind is kind:
                return event


async def test_silent_peer_and_malformed_sdp_leave_the_call_going(tmp_path: Path) -> None:
    """VOICE-6.7: a participant that never sends media is reported, typed; VOICE-6.6 and
    VOICE-6.1: an offer whose SDP does not parse is refused before any link is touched;
    either way the others go on hearing each other."""
    profile = fast_profile()
    async with (
        connect(data_dir=tmp_path / "a", profile=profile) as alice,
        connect(data_dir=tmp_path / "b", profile=profile, bootstrap=[alice.address]) as bob,
        connect(data_dir=tmp_path / "c", profile=profile, bootstrap=[alice.address]) as carol,
    ):
        room = await make_room(alice, bob, carol, timeout=60)
        for client in (alice, bob, carol):
            await client.wait_for_members(room, 2, timeout=60, reachable=True)
            assert client.calls is not None
            client.calls.silent_after = 3.0
        call_a = await alice.call(room)
        ring_b = await _next(bob, IncomingCall)
        assert isinstance(ring_b, IncomingCall)
        call_b = await bob.answer(ring_b.call_id)
        await _hearing([call_a, call_b], frames=25)

        ring_c = await _next(carol, IncomingCall)
        assert isinstance(ring_c, IncomingCall)
        call_c = await carol.answer(ring_c.call_id)
        call_c.runner.abandon()  # in the plan, but never sends media nor answers
        silent = await _problem(call_a, CallProblemKind.SILENT_PEER)
        assert silent.peer == carol.node_id
        assert carol.node_id in call_a.participants
        await _hearing([call_a, call_b], frames=50)

        # The smaller id offers (VOICE-4): a garbage SDP with the plan's stream lists.
        small, large = sorted([(alice, call_a), (bob, call_b)], key=lambda p: p[0].node_id)
        bad = Offer(
            call_id=call_a.call_id,
            epoch=large[1].epoch,
            sdp="v=0\r\nm=audio x\r\n",
            forward=(("0", small[0].node_id),),
            backward=(("1", large[0].node_id),),
        )
        await small[0].transport.host.send_app(
            large[0].address, APP_TOPIC_VOICE, encode_message(bad)
        )
        await _problem(large[1], CallProblemKind.BAD_OFFER)
        await _hearing([call_a, call_b], frames=50)
        assert large[1].runner.counters.get_count(CallRunnerCounter.LINK_REPLACED) == 0
        for call in (call_a, call_b, call_c):
            await call.leave()


async def test_call_through_a_members_peer_turn_when_direct_is_blocked(tmp_path: Path) -> None:
    """TURN-2.3, TURN-2.1: a member running peer TURN advertises it and grants credentials; with
    direct paths blocked (relayed candidates only) the call's media goes through it."""
    profile = fast_profile()
    async with (
        connect(data_dir=tmp_path / "t", profile=profile, turn=True) as tess,
        connect(data_dir=tmp_path / "a", profile=profile, bootstrap=[tess.address]) as alice,
        connect(data_dir=tmp_path / "b", profile=profile, bootstrap=[tess.address]) as bob,
    ):
        room = await make_room(tess, alice, bob, timeout=60)
        for client in (alice, bob, tess):
            await client.wait_for_members(room, 2, timeout=60, reachable=True)
            assert client.calls is not None
        assert alice.calls is not None and bob.calls is not None and tess.calls is not None
        assert tess.calls.turn is not None and alice.calls.turn is None
        alice.calls.relay_only = bob.calls.relay_only = True  # no direct path
        call_a = await alice.call(room)
        ring = await _next(bob, IncomingCall)
        assert isinstance(ring, IncomingCall)
        call_b = await bob.answer(ring.call_id)
        await _hearing([call_a, call_b], frames=50)
        # Tess advertised canActAsTurn, was ranked, and granted both a credential.
        assert tess.node_id in alice.calls.grants and tess.node_id in bob.calls.grants
        assert alice.calls.grants[tess.node_id].username.endswith(bytes(alice.node_id).hex())
        assert tess.calls.counters.get_count(CallCounter.TURN_GRANTED) == 2
        counters = tess.calls.turn.core.counters
        assert counters.get_count(TurnCounter.ALLOCATIONS_CREATED) >= 2
        assert counters.get_count(TurnCounter.RELAYED_TO_PEER_DATAGRAMS) > 50
        assert counters.get_count(TurnCounter.RELAYED_TO_CLIENT_DATAGRAMS) > 50
        # Each credential names its member (TURN-2.1): one member's is not the other's.
        assert bob.calls.grants[tess.node_id].username.endswith(bytes(bob.node_id).hex())
        assert counters.get_count(TurnCounter.BAD_CREDENTIALS) == 0
        await call_a.leave()
        await call_b.leave()
