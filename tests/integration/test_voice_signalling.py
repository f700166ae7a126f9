"""Voice call signalling: CBOR messages over real nodes' application channel (APP-1.x)."""

import anyio
import pytest

from railgun_ref.core.constants import APP_TOPIC_VOICE
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.drivers.voice_media import (
    CallRunner,
    CallRunnerCounter,
    MediaClock,
    opus_clip,
    sfu_plan,
)
from railgun_ref.drivers.voice_signalling import (
    Answer,
    Join,
    NodeSignalling,
    Offer,
    PlanMessage,
    Replan,
    Ring,
    SignallingCounter,
    SignalMessage,
    decode_message,
    encode_message,
)
from railgun_ref.wire import cbor

from .conftest import identity, serving, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CALL = bytes(16)
A, B = NodeId(bytes([1]) * 32), NodeId(bytes([2]) * 32)


def test_messages_round_trip() -> None:
    messages: list[SignalMessage] = [
        Offer(call_id=CALL, epoch=3, sdp="v=0\r\n", forward=(("0", A),), backward=(("1", B),)),
        Answer(call_id=CALL, epoch=3, sdp="v=0\r\n"),
        Replan(call_id=CALL, epoch=4, gone=(A, B)),
        Ring(call_id=CALL, room_id=bytes(32), media=1),
        Join(call_id=CALL, room_id=bytes(32), media=3),
        PlanMessage(
            call_id=CALL, epoch=2, topology="mesh", participants=(A, B), hosts=(), assignment=()
        ),
        PlanMessage(
            call_id=CALL,
            epoch=5,
            topology="sfu",
            participants=(A, B),
            hosts=(B,),
            assignment=((A, B), (B, B)),
        ),
    ]
    for message in messages:
        assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        cbor.encode([1, 2]),
        cbor.encode({0: 1, 1: 99, 2: CALL, 3: 0}),  # unknown type
        cbor.encode({0: 2, 1: 2, 2: CALL, 3: 0, 4: "x"}),  # unknown version
        cbor.encode({0: 1, 1: 2, 2: b"short", 3: 0, 4: "x"}),  # call id size
        cbor.encode({0: 1, 1: 1, 2: CALL, 3: 0, 4: "x", 5: [["0", b"\x01"]], 6: []}),  # bad id
        cbor.encode({0: 1, 1: 1, 2: CALL, 3: 0, 4: "x", 5: [["0", A], ["0", B]], 6: []}),  # dup mid
        cbor.encode({0: 1, 1: 2, 2: CALL, 3: 0, 4: "x", 9: 1}),  # stray field
        cbor.encode({0: 1, 1: 3, 2: CALL, 3: 0, 7: [b"x"]}),
        cbor.encode({0: 1, 1: 4, 2: CALL, 3: 0, 8: b"", 9: 1}),  # empty room id
        cbor.encode({0: 1, 1: 4, 2: CALL, 3: 0, 8: b"r", 9: 4}),  # unknown media bit
        cbor.encode({0: 1, 1: 5, 2: CALL, 3: 1, 8: b"r", 9: 1}),  # JOIN with an epoch
        cbor.encode({0: 1, 1: 6, 2: CALL, 3: 1, 10: "ring", 11: [A], 12: [], 13: []}),
        cbor.encode({0: 1, 1: 6, 2: CALL, 3: 1, 10: "mesh", 11: [B, A], 12: [], 13: []}),
        cbor.encode({0: 1, 1: 6, 2: CALL, 3: 1, 10: "sfu", 11: [A, B], 12: [A], 13: [[A, A]]}),
        cbor.encode({0: 1, 1: 6, 2: CALL, 3: 1, 10: "mesh", 11: [A], 12: [A], 13: []}),
    ],
)
def test_bad_messages_raise_only_remote_protocol_error(data: bytes) -> None:
    """VOICE-6.1: every malformed message is refused as the remote's error."""
    with pytest.raises(RemoteProtocolError):
        decode_message(data)


async def test_offer_travels_signed_over_node_channels_and_garbage_is_counted() -> None:
    """APP-1.3: the receiver learns the authenticated sender; malformed payloads are
    counted and skipped, never fatal."""
    a, b = NodeHost(identity(61)), NodeHost(identity(62))
    async with serving(a, b):
        channel_a = NodeSignalling(a, {b.node_id: b.address})
        channel_b = NodeSignalling(b, {a.node_id: a.address})
        channel_b.subscribe()
        await a.send_app(b.address, APP_TOPIC_VOICE, b"\x00not cbor")
        offer = Offer(call_id=CALL, epoch=1, sdp="v=0\r\n", forward=(), backward=())
        await channel_a.send(b.node_id, offer)
        with anyio.fail_after(5):
            sender, message = await channel_b.receive()
    assert (sender, message) == (a.node_id, offer)
    assert channel_b.counters.get_count(SignallingCounter.MALFORMED) == 1


async def test_offer_that_contradicts_the_plan_is_refused_and_counted() -> None:
    """An answerer checks the offered streams against its own reading of the plan."""
    a, b = NodeHost(identity(63)), NodeHost(identity(64))
    low, high = sorted([a, b], key=lambda h: h.node_id)
    async with serving(a, b):
        directory = {a.node_id: a.address, b.node_id: b.address}
        clock = MediaClock(anyio.current_time())
        runner = CallRunner(
            NodeSignalling(high, directory), call_id=CALL, clock=clock, clip=opus_clip()
        )
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)
            tg.start_soon(runner.apply, sfu_plan([a.node_id, b.node_id], low.node_id))
            await wait_until(lambda: runner.plan is not None)
            forged = Offer(
                call_id=CALL,
                epoch=1,
                sdp="v=0\r\n",
                forward=(("0", high.node_id),),  # claims to send the answerer's own voice
                backward=(),
            )
            await NodeSignalling(low, directory).send(high.node_id, forged)
            other_call = Answer(call_id=bytes([9]) * 16, epoch=1, sdp="v=0\r\n")
            await NodeSignalling(low, directory).send(high.node_id, other_call)
            await wait_until(
                lambda: (
                    runner.counters.get_count(CallRunnerCounter.SIGNALLING_PLAN_MISMATCH) == 1
                    and runner.counters.get_count(CallRunnerCounter.SIGNALLING_OTHER_CALL) == 1
                ),
                timeout=5,
            )
            tg.cancel_scope.cancel()
