"""The TURN server core fed anything never raises, and answers only with proper STUN.

Arbitrary bytes, mutations of every kind of message a client sends (signed
requests, Send indications, ChannelData) on a server that holds an active
allocation with a permission and a channel, and arbitrary datagrams from peers:
the core returns actions, each reply is a STUN message that decodes (an error
response, or the Data indication / ChannelData of relayed data), and it raises
nothing. The ChannelData codec round-trips and refuses with RemoteProtocolError
only.
"""

from hypothesis import given
from hypothesis import strategies as st
from unit.relay.turn_client import PEER, Client, make_server, receive, receive_relayed

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.relay.turn import SendToClient, SendToPeer, TurnAction, TurnServer
from railgun_ref.stun.codec import (
    CHANNEL_NUMBER_MAX,
    CHANNEL_NUMBER_MIN,
    ChannelDataMessage,
    ChannelNumber,
    Data,
    Lifetime,
    MessageClass,
    Method,
    RequestedTransport,
    StunMessage,
    XorPeerAddress,
    decode_channel_data,
    decode_message,
    encode_channel_data,
    encode_message,
    is_channel_data,
)

from .strategies import mutated


def ready_server() -> tuple[TurnServer, Client]:
    """A server with alice's active allocation, a permission and channel 0x4000 for PEER."""
    server = make_server()
    client = Client(server)
    client.allocate(now=0)
    client.reply(Method.CHANNEL_BIND, ChannelNumber(0x4000), XorPeerAddress(PEER), now=0)
    return server, client


def samples(client: Client) -> list[bytes]:
    send = StunMessage(
        method=Method.SEND,
        message_class=MessageClass.INDICATION,
        transaction_id=bytes(12),
        attributes=(XorPeerAddress(PEER), Data(b"payload")),
    )
    return [
        client.build(Method.ALLOCATE, RequestedTransport(), Lifetime(700)),
        client.build(Method.REFRESH, Lifetime(900)),
        client.build(Method.CREATE_PERMISSION, XorPeerAddress(PEER)),
        client.build(Method.CHANNEL_BIND, ChannelNumber(0x4001), XorPeerAddress(("127.0.0.3", 9))),
        client.build(Method.ALLOCATE, RequestedTransport(), sign=False),
        encode_message(send, fingerprint=True),
        encode_channel_data(ChannelDataMessage(channel=0x4000, data=b"media")),
    ]


def check_actions(actions: list[TurnAction]) -> None:
    """Every datagram for a client is STUN (a response or a Data indication) or ChannelData."""
    for action in actions:
        if isinstance(action, SendToClient):
            if is_channel_data(action.data):
                decode_channel_data(action.data)
                continue
            message = decode_message(action.data)
            assert message.message_class is not MessageClass.REQUEST
            if message.message_class is MessageClass.INDICATION:
                assert message.method == Method.DATA
        elif isinstance(action, SendToPeer):
            assert action.peer[0] == PEER[0] or action.peer == ("127.0.0.3", 9)


@given(st.binary(max_size=200), st.floats(0, 10_000))
def test_any_bytes_from_a_client(data: bytes, now: float) -> None:
    """TURN-1.10: arbitrary bytes never make the core raise; any answer is proper STUN."""
    server, client = ready_server()
    check_actions(receive(server, data, client.address, now=now))
    check_actions(receive(server, data, ("127.0.0.1", 1), now=now))  # from a stranger


@given(st.data())
def test_mutated_client_messages(data: st.DataObject) -> None:
    """TURN-1.10: edits of well-formed requests, indications and ChannelData never crash it."""
    server, client = ready_server()
    for sample in samples(client):
        edited = data.draw(mutated(sample))
        check_actions(receive(server, edited, client.address, now=1))
    # and the allocation still works afterwards
    frame = encode_channel_data(ChannelDataMessage(channel=0x4000, data=b"still here"))
    assert receive(server, frame, client.address, now=2)


@given(st.binary(max_size=1500), st.integers(1, 0xFFFF), st.booleans())
def test_any_datagram_from_a_peer(data: bytes, port: int, known_host: bool) -> None:
    """TURN-1.7, TURN-1.9: whatever a peer sends is relayed intact or dropped, never a crash."""
    server, client = ready_server()
    assert client.allocation is not None
    peer = (PEER[0] if known_host else "127.0.0.77", port)
    actions = receive_relayed(server, data, peer, client.allocation, now=1)
    check_actions(actions)
    if not known_host:
        assert actions == []
        return
    (delivered,) = actions
    assert isinstance(delivered, SendToClient)
    if peer == PEER:
        assert decode_channel_data(delivered.data).data == data
    else:
        assert decode_message(delivered.data).find(Data) == Data(data)


@given(st.integers(CHANNEL_NUMBER_MIN, CHANNEL_NUMBER_MAX), st.binary(max_size=2000), st.booleans())
def test_channel_data_round_trip(channel: int, payload: bytes, pad: bool) -> None:
    """TURN-1.9: decode(encode(m)) == m, padded or not."""
    message = ChannelDataMessage(channel=channel, data=payload)
    frame = encode_channel_data(message, pad=pad)
    assert len(frame) % 4 == 0 or not pad
    assert decode_channel_data(frame) == message


@given(st.binary(max_size=100))
def test_channel_data_decoder_raises_only_remote_protocol_error(data: bytes) -> None:
    """TURN-1.9: any bytes decode to a frame or raise RemoteProtocolError(MALFORMED)."""
    try:
        message = decode_channel_data(data)
    except RemoteProtocolError as exc:
        assert exc.code is ErrorCode.MALFORMED
        return
    assert encode_channel_data(message) == data[: 4 + len(message.data)]
