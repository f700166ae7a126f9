"""The STUN decoder fed anything raises only RemoteProtocolError (RFC 8489 codec, h11's rule).

Random bytes, random attribute soups behind a valid header, mutations of valid
messages, and -- exhaustively -- every truncation of the RFC 5769 vectors. What
does decode must be self-consistent: it re-encodes to a message that decodes
to the same thing. The sans-IO consumers (the Binding responder and the NAT
classifier) never raise for what a peer sends either.
"""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from unit.stun.rfc5769 import (
    SAMPLE_IPV4_RESPONSE,
    SAMPLE_IPV6_RESPONSE,
    SAMPLE_LONG_TERM_REQUEST,
    SAMPLE_REQUEST,
)

from railgun_ref.capacity.nat import NatClassifier
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.stun.codec import (
    MAGIC_COOKIE,
    Attribute,
    ChangeRequest,
    Data,
    ErrorCodeAttribute,
    Fingerprint,
    IceControlling,
    MessageClass,
    MessageIntegrity,
    Nonce,
    OtherAddress,
    RawAttribute,
    Realm,
    ResponseOrigin,
    Software,
    StunMessage,
    UnknownAttributes,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    decode_message,
    encode_message,
)
from railgun_ref.stun.server import BindingServer, ServerAddresses

from .strategies import mutated

VECTORS = [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE, SAMPLE_LONG_TERM_REQUEST]
COOKIE = MAGIC_COOKIE.to_bytes(4, "big")
SERVER = ServerAddresses(
    primary_host="127.0.0.1", primary_port=3478, alternate_host="127.0.0.2", alternate_port=3479
)


def check_decodes_or_refuses(data: bytes) -> StunMessage | None:
    """Decode `data`: only RemoteProtocolError(MALFORMED) may escape; a result must be stable."""
    try:
        message = decode_message(data)
    except RemoteProtocolError as exc:
        assert exc.code is ErrorCode.MALFORMED
        return None
    if message.find(Fingerprint) is None:
        # (With FINGERPRINT, zero padding instead of the original padding would break the CRC.)
        again = decode_message(encode_message(message))
        assert again == message
    return message


# ------------------------------------------------------------------- strategies

hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
addresses = st.tuples(hosts, st.integers(0, 0xFFFF))
short_text = st.text(max_size=20)

typed_attributes: st.SearchStrategy[Attribute] = st.one_of(
    addresses.map(XorMappedAddress),
    addresses.map(XorPeerAddress),
    addresses.map(OtherAddress),
    addresses.map(ResponseOrigin),
    short_text.map(Software),
    short_text.map(Username),
    short_text.map(Realm),
    short_text.map(Nonce),
    st.binary(max_size=40).map(Data),
    st.builds(ChangeRequest, change_ip=st.booleans(), change_port=st.booleans()),
    st.builds(ErrorCodeAttribute, st.integers(300, 699), short_text),
    st.lists(st.integers(0, 0xFFFF), max_size=5).map(lambda t: UnknownAttributes(tuple(t))),
    st.integers(0, 2**64 - 1).map(IceControlling),
    st.builds(
        RawAttribute,
        st.sampled_from([0x0002, 0x0004, 0x7FFF, 0x8000, 0xC0DE, 0xFFFF]),
        st.binary(max_size=20),
    ),
)

messages = st.builds(
    StunMessage,
    method=st.integers(0, 0xFFF),
    message_class=st.sampled_from(list(MessageClass)),
    transaction_id=st.binary(min_size=12, max_size=12),
    attributes=st.lists(typed_attributes, max_size=6).map(tuple),
)


# ------------------------------------------------------------------- properties


@given(st.binary(max_size=300))
def test_decode_arbitrary_bytes(data: bytes) -> None:
    """Any bytes: a message or RemoteProtocolError, nothing else."""
    check_decodes_or_refuses(data)


@given(
    message_type=st.integers(0, 0x3FFF),
    transaction_id=st.binary(min_size=12, max_size=12),
    body=st.lists(
        st.tuples(
            st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0x0001, 0x0008, 0x0020, 0x8028])),
            st.binary(max_size=24),
            st.integers(-3, 3),
        ),
        max_size=8,
    ),
)
def test_decode_attribute_soup_behind_a_valid_header(
    message_type: int, transaction_id: bytes, body: list[tuple[int, bytes, int]]
) -> None:
    """A well-framed header with random TLVs (lengths sometimes lying) gets past the framing
    checks and exercises every attribute decoder."""
    payload = bytearray()
    for attribute_type, value, lie in body:
        length = max(0, len(value) + lie)
        payload += attribute_type.to_bytes(2, "big") + length.to_bytes(2, "big") + value
        payload += b"\x00" * (-len(value) % 4)
    payload += b"\x00" * (-len(payload) % 4)
    header = message_type.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + COOKIE
    check_decodes_or_refuses(header + transaction_id + bytes(payload))


@given(messages, st.booleans(), st.one_of(st.none(), st.binary(min_size=1, max_size=20)))
def test_encode_decode_round_trip(
    message: StunMessage, fingerprint: bool, key: bytes | None
) -> None:
    """Every message the encoder accepts decodes to itself (plus the integrity attributes)."""
    data = encode_message(message, integrity_key=key, fingerprint=fingerprint)
    decoded = decode_message(data)
    extra = (MessageIntegrity,) * (key is not None) + (Fingerprint,) * fingerprint
    assert decoded.attributes[: len(message.attributes)] == message.attributes
    assert tuple(type(a) for a in decoded.attributes[len(message.attributes) :]) == extra
    assert (decoded.method, decoded.message_class) == (message.method, message.message_class)
    assert decoded.transaction_id == message.transaction_id
    assert encode_message(decoded) == data


@given(st.data())
def test_decode_mutated_valid_messages(data: st.DataObject) -> None:
    """Small edits of valid messages decode consistently or are refused."""
    original = data.draw(st.sampled_from(VECTORS))
    check_decodes_or_refuses(data.draw(mutated(original)))


@pytest.mark.parametrize("vector", VECTORS, ids=["req", "v4", "v6", "long-term"])
def test_truncated_at_every_offset(vector: bytes) -> None:
    """Every proper prefix of a valid message is refused (the length field no longer fits)."""
    assert decode_message(vector).transaction_id
    for cut in range(len(vector)):
        with pytest.raises(RemoteProtocolError):
            decode_message(vector[:cut])


@pytest.mark.parametrize("vector", VECTORS, ids=["req", "v4", "v6", "long-term"])
def test_truncated_with_length_fixed_up(vector: bytes) -> None:
    """Prefixes cut on a 4-byte boundary with the length field patched to match: still only
    messages or RemoteProtocolError (an attribute that runs past the end is refused)."""
    for cut in range(20, len(vector), 4):
        data = bytearray(vector[:cut])
        data[2:4] = (cut - 20).to_bytes(2, "big")
        check_decodes_or_refuses(bytes(data))


@given(st.binary(max_size=200))
def test_binding_server_never_raises(data: bytes) -> None:
    """The responder answers or drops anything; whatever it sends decodes."""
    server = BindingServer(SERVER)
    server.receive(data, ("127.0.0.9", 9), local=SERVER.primary, now=0.0)
    for reply in iter(server.next_action, None):
        assert decode_message(reply.data).transaction_id == data[8:20]


@given(st.data())
def test_binding_server_mutated_requests(data: st.DataObject) -> None:
    server = BindingServer(SERVER)
    candidate = data.draw(mutated(SAMPLE_REQUEST))
    local = data.draw(st.sampled_from(SERVER.all()))
    server.receive(candidate, ("127.0.0.9", 9), local=local, now=0.0)
    for reply in iter(server.next_action, None):
        assert reply.source in SERVER.all()
        decode_message(reply.data)


@given(st.lists(st.binary(max_size=120), max_size=5))
def test_nat_classifier_ignores_garbage(datagrams: list[bytes]) -> None:
    """The classifier counts and ignores what it cannot use; its state stays consistent."""
    classifier = NatClassifier(
        primary=SERVER.primary,
        local=("127.0.0.1", 40000),
        random_bytes=random.Random(1).randbytes,
    )
    classifier.start(now=0.0)
    for datagram in datagrams:
        classifier.receive_datagram(datagram, SERVER.primary, now=0.1)
    assert not classifier.done
    assert classifier.next_deadline() == 0.5
