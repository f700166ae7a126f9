"""The sans-IO RFC 5780 Binding responder: who answers, from where, with what."""

import pytest

from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.stun.codec import (
    AttributeType,
    ChangeRequest,
    ErrorCodeAttribute,
    Fingerprint,
    MessageClass,
    Method,
    OtherAddress,
    Padding,
    RawAttribute,
    ResponseOrigin,
    ResponsePort,
    Software,
    StunErrorCode,
    StunMessage,
    UnknownAttributes,
    XorMappedAddress,
    binding_request,
    decode_message,
    encode_message,
)
from railgun_ref.stun.server import BindingServer, ServerAddresses, StunCounter, StunReply

ADDRESSES = ServerAddresses(
    primary_host="127.0.0.1", primary_port=3478, alternate_host="127.0.0.2", alternate_port=3479
)
PRIMARY, ALTERNATE = ADDRESSES.primary, ADDRESSES.alternate
CLIENT = ("127.0.0.9", 40000)
TID = b"\x07" * 12


def replies_to(
    server: BindingServer, data: bytes, *, local: tuple[str, int] = PRIMARY
) -> list[StunReply]:
    """Feed one datagram from CLIENT and pull every reply the server queued."""
    server.receive(data, CLIENT, local=local, now=0.0)
    return list(iter(server.next_action, None))


def answer(
    server: BindingServer,
    request: StunMessage,
    *,
    local: tuple[str, int] = PRIMARY,
    fingerprint: bool = False,
) -> tuple[StunMessage, tuple[str, int], tuple[str, int]]:
    """The single reply: (decoded message, destination, source)."""
    replies = replies_to(server, encode_message(request, fingerprint=fingerprint), local=local)
    assert len(replies) == 1
    (reply,) = replies
    return decode_message(reply.data), reply.destination, reply.source


def test_addresses_are_the_four_combinations() -> None:
    """RFC 5780 §3: two IPs x two ports; OTHER-ADDRESS differs in both from the receiving one."""
    assert set(ADDRESSES.all()) == {
        ("127.0.0.1", 3478),
        ("127.0.0.1", 3479),
        ("127.0.0.2", 3478),
        ("127.0.0.2", 3479),
    }
    assert ADDRESSES.other(PRIMARY) == ALTERNATE
    assert ADDRESSES.other(("127.0.0.1", 3479)) == ("127.0.0.2", 3478)
    single = ServerAddresses(primary_host="127.0.0.1", primary_port=3478)
    assert single.all() == (("127.0.0.1", 3478),) and single.alternate is None
    with pytest.raises(LocalProtocolError):
        ServerAddresses(primary_host="127.0.0.1", primary_port=1, alternate_host="127.0.0.2")
    with pytest.raises(LocalProtocolError):
        ServerAddresses(
            primary_host="127.0.0.1", primary_port=1, alternate_host="127.0.0.2", alternate_port=1
        )


def test_binding_response_attributes() -> None:
    """RFC 5780 §6.1: XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS; same transaction."""
    server = BindingServer(ADDRESSES)
    response, destination, source = answer(server, binding_request(TID))
    assert response.message_class is MessageClass.SUCCESS_RESPONSE
    assert response.method is Method.BINDING
    assert response.transaction_id == TID
    assert response.find(XorMappedAddress) == XorMappedAddress(CLIENT)
    assert response.find(ResponseOrigin) == ResponseOrigin(PRIMARY)
    assert response.find(OtherAddress) == OtherAddress(ALTERNATE)
    assert response.find(Software) == Software("railgun-ref")
    assert response.find(Fingerprint) is None  # the request had none
    assert (destination, source) == (CLIENT, PRIMARY)
    assert server.counters.get_count(StunCounter.BINDING_ANSWERED) == 1


@pytest.mark.parametrize(
    ("change_ip", "change_port", "local", "expected_source"),
    [
        (False, False, ("127.0.0.1", 3478), ("127.0.0.1", 3478)),
        (True, True, ("127.0.0.1", 3478), ("127.0.0.2", 3479)),
        (False, True, ("127.0.0.1", 3478), ("127.0.0.1", 3479)),
        (True, False, ("127.0.0.1", 3478), ("127.0.0.2", 3478)),
        (True, True, ("127.0.0.2", 3479), ("127.0.0.1", 3478)),
        (False, True, ("127.0.0.2", 3478), ("127.0.0.2", 3479)),
        (True, False, ("127.0.0.1", 3479), ("127.0.0.2", 3479)),
    ],
)
def test_change_request_picks_the_source(
    change_ip: bool,
    change_port: bool,
    local: tuple[str, int],
    expected_source: tuple[str, int],
) -> None:
    """RFC 5780 §6.1: change IP and/or port = answer from the corresponding other address."""
    server = BindingServer(ADDRESSES)
    request = binding_request(TID, ChangeRequest(change_ip=change_ip, change_port=change_port))
    response, destination, source = answer(server, request, local=local)
    assert source == expected_source
    assert destination == CLIENT
    assert response.find(ResponseOrigin) == ResponseOrigin(expected_source)
    assert response.find(OtherAddress) == OtherAddress(ADDRESSES.other(local))


def test_fingerprint_is_mirrored() -> None:
    """A request with FINGERPRINT (as ICE agents send) gets a response with one."""
    response, _, _ = answer(BindingServer(ADDRESSES), binding_request(TID), fingerprint=True)
    assert response.find(Fingerprint) is not None


def test_response_port() -> None:
    """RFC 5780 §6.1: RESPONSE-PORT sends the answer to that port of the source IP."""
    server = BindingServer(ADDRESSES)
    _, destination, _ = answer(server, binding_request(TID, ResponsePort(5555)))
    assert destination == ("127.0.0.9", 5555)
    error, _, _ = answer(server, binding_request(TID, ResponsePort(0)))
    assert error.error == ErrorCodeAttribute(400, "Bad Request")


def test_unknown_required_attribute_gets_420() -> None:
    """RFC 8489 §6.3.1: 420 listing the unknown comprehension-required types."""
    server = BindingServer(ADDRESSES, software=None)
    request = binding_request(TID, RawAttribute(0x7FF0, b""), RawAttribute(0x8FF0, b""))
    response, destination, source = answer(server, request)
    assert response.message_class is MessageClass.ERROR_RESPONSE
    assert response.error == ErrorCodeAttribute(420, "Unknown Attribute")
    assert response.find(UnknownAttributes) == UnknownAttributes((0x7FF0,))
    assert response.find(Software) is None
    assert (destination, source) == (CLIENT, PRIMARY)
    assert server.counters.get_count(StunCounter.ERROR, StunErrorCode.UNKNOWN_ATTRIBUTE) == 1


def test_single_address_server_refuses_change_request() -> None:
    """RFC 5780 §6.1: no alternate address -> 420 naming CHANGE-REQUEST; no OTHER-ADDRESS."""
    server = BindingServer(ServerAddresses(primary_host="127.0.0.1", primary_port=3478))
    plain, _, _ = answer(server, binding_request(TID, ChangeRequest()))
    assert plain.find(XorMappedAddress) == XorMappedAddress(CLIENT)
    assert plain.find(OtherAddress) is None
    refused, _, _ = answer(server, binding_request(TID, ChangeRequest(change_port=True)))
    assert refused.error is not None and refused.error.code == 420
    assert refused.find(UnknownAttributes) == UnknownAttributes((AttributeType.CHANGE_REQUEST,))


def test_other_methods_get_400() -> None:
    request = StunMessage(
        method=Method.ALLOCATE, message_class=MessageClass.REQUEST, transaction_id=TID
    )
    response, _, _ = answer(BindingServer(ADDRESSES), request)
    assert response.method is Method.ALLOCATE
    assert response.error == ErrorCodeAttribute(400, "Bad Request")


def test_garbage_responses_and_indications_are_counted_not_answered() -> None:
    """RFC 8489 §6.3: nothing answers a response or an indication; garbage is dropped."""
    server = BindingServer(ADDRESSES)
    for data in (b"", b"GET / HTTP/1.1\r\n", bytes(20), bytes(range(256))):
        assert replies_to(server, data) == []
    for cls in (MessageClass.INDICATION, MessageClass.SUCCESS_RESPONSE):
        msg = StunMessage(method=Method.BINDING, message_class=cls, transaction_id=TID)
        assert replies_to(server, encode_message(msg)) == []
    assert server.counters.get_count(StunCounter.MALFORMED) == 4
    assert server.counters.get_count(StunCounter.IGNORED, MessageClass.INDICATION) == 1
    assert server.counters.get_count(StunCounter.IGNORED, MessageClass.SUCCESS_RESPONSE) == 1


def test_local_must_be_one_of_ours() -> None:
    with pytest.raises(LocalProtocolError):
        replies_to(BindingServer(ADDRESSES), b"", local=("127.0.0.3", 3478))


def test_the_responder_is_a_core_without_timers() -> None:
    """A stateless responder still has the timer half of the core contract."""
    server = BindingServer(ADDRESSES)
    assert server.next_deadline() is None
    server.on_timer(now=1e9)
    assert server.next_action() is None and server.next_deadline() is None


def test_padding_is_echoed_at_the_same_length() -> None:
    """CAP-6.4 (RFC 5780 §6.1, §7.6): PADDING in the request -> PADDING of its length."""
    server = BindingServer(ADDRESSES)
    request = binding_request(TID, Padding(b"\xab" * 500))
    reply, destination, _ = answer(server, request)
    assert reply.message_class is MessageClass.SUCCESS_RESPONSE
    padding = reply.find(Padding)
    assert padding is not None and len(padding.value) == 500
    assert destination == CLIENT


def test_padding_with_response_port_gets_400() -> None:
    """CAP-6.4 (RFC 5780 §6.1): PADDING and RESPONSE-PORT together -> 400 to the source."""
    server = BindingServer(ADDRESSES)
    request = binding_request(TID, Padding(bytes(64)), ResponsePort(40001))
    reply, destination, _ = answer(server, request)
    error = reply.find(ErrorCodeAttribute)
    assert error is not None and error.code == StunErrorCode.BAD_REQUEST
    assert destination == CLIENT
    assert server.counters.get_count(StunCounter.ERROR, StunErrorCode.BAD_REQUEST) == 1
