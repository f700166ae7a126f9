"""Decoders fed anything raise only RemoteProtocolError (ENC-1.5, ENV-2.1, STR-1.3, NODE-1.2).

h11's rule: "If this method raises any exception besides RemoteProtocolError then
that's a bug." Each decoder is fed random bytes, mutations of valid input, and --
exhaustively, not by sampling -- every truncation and every single-bit flip of a
valid envelope.
"""

import itertools
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from railgun_ref.conformance.common import take_outputs
from railgun_ref.core.constants import MAX_STREAM_MESSAGE_SIZE
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.identity.keys import Identity
from railgun_ref.node import ConnectionId, Node, NodeCounter
from railgun_ref.rpc.requests import Channel
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import Envelope, decode_envelope, encode_envelope
from railgun_ref.wire.framing import FrameDecoder, encode_frame
from railgun_ref.wire.messages import MessageType, parse_message

from .strategies import model_values, mutated, uints

T0 = 1_700_000_000.0
ALICE = Identity.from_seed(b"\x01" * 32)
BOB = Identity.from_seed(b"\x02" * 32)
PEER: tuple[str, int] = ("127.0.0.1", 40001)
VALID = encode_envelope(
    ALICE, type=MessageType.PING, request_id=2**40 + 5, timestamp_ms=int(T0 * 1000), body={0: b"x"}
)


def refused(data: bytes, **kwargs: Any) -> ErrorCode:
    """The code `decode_envelope` refuses `data` with; fails if it accepts or raises otherwise."""
    with pytest.raises(RemoteProtocolError) as info:
        decode_envelope(data, **kwargs)
    return info.value.code


# ------------------------------------------------------------------------------- CBOR


@given(st.binary(max_size=300))
def test_cbor_decode_arbitrary_bytes(data: bytes) -> None:
    """ENC-1.5: decode of any bytes returns a value or raises RemoteProtocolError(MALFORMED)."""
    try:
        value = cbor.decode(data)
    except RemoteProtocolError as exc:
        assert exc.code is ErrorCode.MALFORMED
    else:
        assert cbor.encode(value) == data  # whatever decodes is canonical


@given(st.data())
def test_cbor_decode_mutated_valid_items(data: st.DataObject) -> None:
    """ENC-1.5: small edits of a valid item decode canonically or raise MALFORMED."""
    original = cbor.encode(data.draw(model_values(4)))
    candidate = data.draw(mutated(original))
    try:
        value = cbor.decode(candidate)
    except RemoteProtocolError as exc:
        assert exc.code is ErrorCode.MALFORMED
    else:
        assert cbor.encode(value) == candidate


# --------------------------------------------------------------------------- envelope


@given(st.binary(max_size=400))
def test_decode_envelope_arbitrary_bytes(data: bytes) -> None:
    """ENV-2.1: decode_envelope of any bytes raises only RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError):
        decode_envelope(data)


@given(st.data())
def test_decode_envelope_mutated(data: st.DataObject) -> None:
    """ENV-2.1: a valid envelope with a few random edits is refused with a RemoteProtocolError."""
    candidate = data.draw(mutated(VALID))
    try:
        decode_envelope(candidate, expected_sender=ALICE.node_id)
    except RemoteProtocolError:
        return
    assert candidate == VALID  # no edit of a signed envelope survives unless it undid itself


def test_envelope_truncated_at_every_offset() -> None:
    """ENV-2.1/ENC-1.5: every proper prefix of a valid envelope is MALFORMED."""
    assert decode_envelope(VALID).sender_id == ALICE.node_id
    for cut in range(len(VALID)):
        assert refused(VALID[:cut]) is ErrorCode.MALFORMED, f"prefix of {cut} bytes"


def test_envelope_every_byte_flipped() -> None:
    """ENV-2.1: inverting any one byte of a valid envelope gets it refused."""
    for position in range(len(VALID)):
        candidate = bytearray(VALID)
        candidate[position] ^= 0xFF
        refused(bytes(candidate), expected_sender=ALICE.node_id)


def test_envelope_every_bit_flipped() -> None:
    """ENV-2.1: flipping any single bit of a valid envelope gets it refused."""
    for bit in range(len(VALID) * 8):
        candidate = bytearray(VALID)
        candidate[bit // 8] ^= 1 << (bit % 8)
        refused(bytes(candidate))


def test_envelope_every_byte_inserted_or_deleted() -> None:
    """ENV-2.1/ENC-1.5: inserting or deleting a byte anywhere gets the envelope refused."""
    for position in range(len(VALID) + 1):
        refused(VALID[:position] + b"\x00" + VALID[position:])
        if position < len(VALID):
            refused(VALID[:position] + VALID[position + 1 :])


@given(st.sampled_from(list(MessageType)), st.dictionaries(uints, model_values(3), max_size=3))
def test_parse_message_arbitrary_bodies(msg_type: MessageType, body: dict[int, Any]) -> None:
    """MSG-1.2: parse_message on arbitrary data-model bodies raises only RemoteProtocolError."""
    _parse_only_remote(msg_type, body)


def _parse_only_remote(msg_type: int, body: dict[int, Any]) -> None:
    envelope = Envelope(
        version=1,
        type=msg_type,
        request_id=1,
        sender_key=ALICE.public_key,
        sender_id=ALICE.node_id,
        timestamp_ms=int(T0 * 1000),
        body=body,
        signature=bytes(64),
        size=100,
    )
    try:
        message = parse_message(envelope)
    except RemoteProtocolError as exc:
        assert exc.code in (ErrorCode.MALFORMED, ErrorCode.UNKNOWN_TYPE)
    else:
        assert msg_type == message.TYPE


# ------------------------------------------------------------------------------- node


def fresh_node() -> Node:
    return Node(BOB, rng=random.Random(0), now=T0)


def rejected_total(node: Node) -> int:
    return node.counters.total(NodeCounter.REJECTED)


@given(st.binary(max_size=1300), st.booleans())
def test_node_receive_arbitrary_bytes(data: bytes, stream: bool) -> None:
    """NODE-1.2: any bytes are counted as one rejection, never answered, and never raise."""
    node = fresh_node()
    if stream:
        node.receive_stream_message(data, ConnectionId(1), PEER, now=T0)
    else:
        node.receive_datagram(data, PEER, now=T0)
    assert rejected_total(node) == 1
    sent = take_outputs(node)
    assert sent.datagrams == [] and sent.streams == []
    assert node.requests_in_flight == 0


@given(st.data())
def test_node_receive_mutated_envelopes(data: st.DataObject) -> None:
    """NODE-1.2: a mutated PING is refused and counted; only the intact one is answered."""
    node = fresh_node()
    candidate = data.draw(mutated(VALID))
    node.receive_datagram(candidate, PEER, now=T0)
    answered = len(take_outputs(node).datagrams)
    if candidate == VALID:
        assert answered == 1
    else:
        assert answered == 0
        assert rejected_total(node) == 1


@given(
    msg_type=st.one_of(st.sampled_from(list(MessageType)), st.integers(0, 2**64 - 1)),
    request_id=uints,
    body=st.dictionaries(uints, model_values(3), max_size=3),
    skew=st.sampled_from([0.0, 1.0, -1.0, 299.0, 301.0, -301.0]),
    stream=st.booleans(),
)
def test_node_receive_authenticated_arbitrary_messages(
    msg_type: int, request_id: int, body: dict[int, Any], skew: float, stream: bool
) -> None:
    """NODE-1.2/MSG-1.3: a signed envelope of any type and body never makes the node raise."""
    node = fresh_node()
    envelope = encode_envelope(
        ALICE,
        type=msg_type,
        request_id=request_id,
        timestamp_ms=int((T0 + skew) * 1000),
        body=body,
        max_size=MAX_STREAM_MESSAGE_SIZE,
    )
    if stream:
        node.receive_stream_message(envelope, ConnectionId(1), PEER, now=T0)
    else:
        node.receive_datagram(envelope, PEER, now=T0)
    sent = take_outputs(node)
    out = sent.datagrams + sent.streams
    channel = Channel.STREAM if stream else Channel.DATAGRAM
    assert node.counters.get_count(NodeCounter.RX, channel) == 1
    assert len(out) <= 1  # at most one reply to one request, never more
    if abs(skew) > 300:
        assert out == []
        assert node.counters.get_count(NodeCounter.REJECTED, ErrorCode.STALE) == 1
    for data, _ in out:
        reply = decode_envelope(data, max_size=MAX_STREAM_MESSAGE_SIZE)
        assert reply.request_id == request_id
        assert reply.sender_id == BOB.node_id


# ---------------------------------------------------------------------------- framing


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(st.data())
def test_frame_decoder_arbitrary_chunks_of_arbitrary_bytes(data: st.DataObject) -> None:
    """STR-1.3: fed any bytes in any chunking, FrameDecoder raises only RemoteProtocolError."""
    raw = data.draw(st.binary(max_size=200))
    decoder = FrameDecoder(
        max_size=data.draw(st.sampled_from([1, 16, 300, MAX_STREAM_MESSAGE_SIZE]))
    )
    try:
        for chunk in data.draw(chunked(raw)):
            decoder.feed(chunk)
            while decoder.next_frame() is not None:
                pass
    except RemoteProtocolError as exc:
        assert exc.code in (ErrorCode.MALFORMED, ErrorCode.TOO_LARGE)


@given(st.data())
def test_frames_reassemble_under_any_chunking(data: st.DataObject) -> None:
    """STR-1.1: valid frames cut anywhere come out whole, in order, and nothing else."""
    frames = data.draw(st.lists(st.binary(min_size=1, max_size=40), max_size=6))
    stream = b"".join(encode_frame(f) for f in frames)
    decoder = FrameDecoder()
    out = []
    for chunk in data.draw(chunked(stream)):
        decoder.feed(chunk)
        while (frame := decoder.next_frame()) is not None:
            out.append(frame)
    assert out == frames
    assert decoder.buffered == 0
