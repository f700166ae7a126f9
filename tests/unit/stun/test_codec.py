"""STUN codec (RFC 8489): message types, every attribute, round trips, strictness, keys."""

import random
import zlib
from typing import get_args

import pytest

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.stun.codec import (
    KNOWN_ATTRIBUTE_TYPES,
    MAGIC_COOKIE,
    AlternateDomain,
    AlternateServer,
    Attribute,
    AttributeType,
    CacheTimeout,
    ChangeRequest,
    ChannelNumber,
    Data,
    DontFragment,
    ErrorCodeAttribute,
    EvenPort,
    Fingerprint,
    IceControlled,
    IceControlling,
    Lifetime,
    MappedAddress,
    MessageClass,
    MessageIntegrity,
    MessageIntegritySha256,
    Method,
    Nonce,
    OtherAddress,
    Padding,
    Priority,
    RawAttribute,
    Realm,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
    ResponseOrigin,
    ResponsePort,
    Software,
    StunMessage,
    TypedAttribute,
    UnknownAttributes,
    UseCandidate,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
    binding_request,
    check_integrity,
    check_integrity_sha256,
    compute_fingerprint,
    compute_integrity_sha256,
    decode_message,
    decode_message_type,
    decode_xor_address,
    encode_message,
    encode_message_type,
    encode_xor_address,
    error_response,
    is_stun_message,
    new_transaction_id,
    saslprep,
    short_term_key,
    success_response,
)

TID = bytes(range(1, 13))
V4 = ("192.0.2.1", 32853)
V6 = ("2001:db8::1", 3478)

#: One or more example values of every typed attribute class.
EXAMPLES: list[Attribute] = [
    MappedAddress(V4),
    MappedAddress(V6),
    XorMappedAddress(V4),
    XorMappedAddress(V6),
    Username("evtj:h6vY"),
    Username("\u30de\u30c8\u30ea\u30c3\u30af\u30b9"),
    MessageIntegrity(bytes(range(20))),
    MessageIntegritySha256(bytes(range(32))),
    MessageIntegritySha256(bytes(16)),
    ErrorCodeAttribute(420, "Unknown Attribute"),
    ErrorCodeAttribute(699),
    ErrorCodeAttribute(300, "\u00e9" * 127),
    UnknownAttributes((0x0003, 0x7FFF)),
    UnknownAttributes((0x0026,)),
    Realm("example.org"),
    Nonce("f//499k954d6OL34oL9FSTvy64sA"),
    Software("railgun-ref 0.1"),
    AlternateServer(V4),
    AlternateDomain("stun.example.org"),
    ChangeRequest(change_ip=True, change_port=True),
    ChangeRequest(change_port=True),
    ChangeRequest(),
    Padding(b"\x00" * 7),
    ResponsePort(5000),
    CacheTimeout(600),
    ResponseOrigin(("127.0.0.2", 3479)),
    OtherAddress(V6),
    ChannelNumber(0x4000),
    Lifetime(600),
    XorPeerAddress(V4),
    XorPeerAddress(V6),
    Data(b""),
    Data(b"hello"),
    XorRelayedAddress(("203.0.113.9", 49152)),
    RequestedAddressFamily(2),
    EvenPort(reserve=True),
    EvenPort(),
    RequestedTransport(),
    DontFragment(),
    ReservationToken(b"12345678"),
    Priority(0x6E0001FF),
    UseCandidate(),
    IceControlled(2**64 - 1),
    IceControlling(0),
    Fingerprint(0xDEADBEEF),
    RawAttribute(0x7FFE, b"unknown but required"),
    RawAttribute(0xFFFF, b""),
]


def message(*attributes: Attribute, cls: MessageClass = MessageClass.REQUEST) -> StunMessage:
    return StunMessage(
        method=Method.BINDING, message_class=cls, transaction_id=TID, attributes=attributes
    )


def refused(data: bytes) -> str:
    """The reason `decode_message` refuses `data`; fails the test if it does not."""
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(data)
    assert info.value.code is ErrorCode.MALFORMED
    return info.value.message


def attribute_bytes(attribute_type: int, value: bytes) -> bytes:
    return attribute_type.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value


def raw_message(body: bytes, *, message_type: int = 0x0001) -> bytes:
    """A header + `body`, with the length field set to len(body)."""
    header = message_type.to_bytes(2, "big") + len(body).to_bytes(2, "big")
    return header + MAGIC_COOKIE.to_bytes(4, "big") + TID + body


# ------------------------------------------------------------------ message type


@pytest.mark.parametrize(
    ("method", "cls", "wire"),
    [
        (Method.BINDING, MessageClass.REQUEST, 0x0001),
        (Method.BINDING, MessageClass.INDICATION, 0x0011),
        (Method.BINDING, MessageClass.SUCCESS_RESPONSE, 0x0101),
        (Method.BINDING, MessageClass.ERROR_RESPONSE, 0x0111),
        (Method.ALLOCATE, MessageClass.REQUEST, 0x0003),
        (Method.ALLOCATE, MessageClass.SUCCESS_RESPONSE, 0x0103),
        (Method.ALLOCATE, MessageClass.ERROR_RESPONSE, 0x0113),
        (Method.REFRESH, MessageClass.REQUEST, 0x0004),
        (Method.SEND, MessageClass.INDICATION, 0x0016),
        (Method.DATA, MessageClass.INDICATION, 0x0017),
        (Method.CREATE_PERMISSION, MessageClass.REQUEST, 0x0008),
        (Method.CHANNEL_BIND, MessageClass.REQUEST, 0x0009),
        (0xFFF, MessageClass.ERROR_RESPONSE, 0x3FFF),
        (0x080, MessageClass.REQUEST, 0x0200),
        (0x010, MessageClass.REQUEST, 0x0020),
    ],
)
def test_message_type_interleaves_method_and_class(
    method: int, cls: MessageClass, wire: int
) -> None:
    """RFC 8489 §5: M11..M7 C1 M6..M4 C0 M3..M0 (RFC 8656 §17 for the TURN values)."""
    assert encode_message_type(method, cls) == wire
    assert decode_message_type(wire) == (method, cls)


def test_every_message_type_round_trips() -> None:
    """All 2**14 message types decode to a (method, class) that encodes back to them."""
    for wire in range(1 << 14):
        method, cls = decode_message_type(wire)
        assert encode_message_type(method, cls) == wire
    assert isinstance(decode_message_type(0x0001)[0], Method)
    assert not isinstance(decode_message_type(0x000A)[0], Method)


def test_method_must_fit_in_twelve_bits() -> None:
    with pytest.raises(LocalProtocolError):
        encode_message_type(0x1000, MessageClass.REQUEST)
    with pytest.raises(LocalProtocolError):
        StunMessage(method=0x1000, message_class=MessageClass.REQUEST, transaction_id=TID)


# ------------------------------------------------------------------ attributes


def test_examples_cover_every_attribute_class() -> None:
    """Every class the codec has is exercised below, so none goes untested."""
    assert {type(a) for a in EXAMPLES} >= set(get_args(TypedAttribute))
    assert {a.TYPE for a in EXAMPLES if not isinstance(a, RawAttribute)} == KNOWN_ATTRIBUTE_TYPES


@pytest.mark.parametrize("attribute", EXAMPLES, ids=repr)
def test_attribute_round_trips(attribute: Attribute) -> None:
    """Each attribute encodes with a 4-byte header and padding, and decodes to itself."""
    original = message(attribute)
    data = encode_message(original)
    assert len(data) % 4 == 0
    assert data[20:22] == attribute.TYPE.to_bytes(2, "big")
    value_length = int.from_bytes(data[22:24], "big")
    assert len(data) == 20 + 4 + value_length + (-value_length % 4)
    if isinstance(attribute, Fingerprint):
        return  # a stored FINGERPRINT is wrong for this message; covered below
    decoded = decode_message(data)
    assert decoded == original
    assert decoded.attributes == (attribute,)
    assert encode_message(decoded) == data


def test_messages_with_every_attribute_round_trip() -> None:
    """Many attributes in one message, in every class, with integrity and fingerprint."""
    attributes = tuple(
        a
        for a in EXAMPLES
        if not isinstance(a, MessageIntegrity | MessageIntegritySha256 | Fingerprint | RawAttribute)
    )
    for cls in MessageClass:
        for method in (Method.BINDING, Method.ALLOCATE, 0x0ABC):
            original = StunMessage(
                method=method, message_class=cls, transaction_id=TID, attributes=attributes
            )
            data = encode_message(original, integrity_key=b"key", fingerprint=True)
            decoded = decode_message(data)
            assert decoded.attributes[:-2] == attributes
            assert (decoded.method, decoded.message_class) == (method, cls)
            assert check_integrity(decoded, b"key")
            assert not check_integrity(decoded, b"other key")


def test_xor_address_wire_form() -> None:
    """RFC 8489 §14.2: X-Port = port ^ 0x2112; X-Address = address ^ cookie (|| id for IPv6)."""
    value = encode_xor_address(("192.0.2.1", 32853), TID)
    assert value == bytes.fromhex("0001") + (32853 ^ 0x2112).to_bytes(2, "big") + bytes(
        a ^ b for a, b in zip(bytes([192, 0, 2, 1]), MAGIC_COOKIE.to_bytes(4, "big"), strict=True)
    )
    assert decode_xor_address(value, TID) == ("192.0.2.1", 32853)
    v6 = encode_xor_address(("::1", 1), TID)
    assert v6[-1] == 1 ^ TID[-1]
    assert decode_xor_address(v6, TID) == ("::1", 1)
    assert XorMappedAddress(("::ffff:192.0.2.9", 9)).address == ("::ffff:c000:209", 9)


def test_address_literal_is_canonicalised() -> None:
    """Addresses are kept in `ipaddress`'s canonical text, so equality means the same address."""
    assert MappedAddress(("2001:0DB8:0000::1", 7)) == MappedAddress(("2001:db8::1", 7))


@pytest.mark.parametrize(
    "make",
    [
        lambda: MappedAddress(("example.org", 1)),
        lambda: XorMappedAddress(("127.0.0.1", 65536)),
        lambda: XorMappedAddress(("127.0.0.1", -1)),
        lambda: ErrorCodeAttribute(299),
        lambda: ErrorCodeAttribute(700),
        lambda: ErrorCodeAttribute(400, "x" * 128),
        lambda: Username("u" * 513),
        lambda: Realm("r" * 128),
        lambda: Nonce("\u00e9" * 400),
        lambda: Software("s" * 128),
        lambda: MessageIntegrity(b"short"),
        lambda: MessageIntegritySha256(bytes(18)),
        lambda: ReservationToken(b"1234567"),
        lambda: Priority(2**32),
        lambda: IceControlled(-1),
        lambda: ChannelNumber(0x10000),
        lambda: RequestedAddressFamily(3),
        lambda: RequestedTransport(256),
        lambda: UnknownAttributes((0x10000,)),
        lambda: RawAttribute(0x0020, b""),
        lambda: RawAttribute(0x10000, b""),
        lambda: Data(bytes(65536)),
    ],
)
def test_invalid_attribute_values_are_caller_errors(make: object) -> None:
    """Building an attribute the RFC forbids is a LocalProtocolError, never a bad encoding."""
    assert callable(make)
    with pytest.raises(LocalProtocolError):
        make()


def test_find_returns_the_first_occurrence() -> None:
    """RFC 8489 §14: an attribute may repeat; only the first one counts."""
    msg = decode_message(encode_message(message(Software("a"), Software("b"), Priority(1))))
    assert msg.find(Software) == Software("a")
    assert msg.find_all(Software) == (Software("a"), Software("b"))
    assert msg.find(Realm) is None
    assert msg.find(Priority) == Priority(1)


def test_mapped_address_prefers_xor() -> None:
    assert message(MappedAddress(V4), XorMappedAddress(V6)).mapped_address == V6
    assert message(MappedAddress(V4)).mapped_address == V4
    assert message().mapped_address is None


def test_unknown_attributes_are_kept_and_required_ones_reported() -> None:
    """RFC 8489 §6.3.1/§6.3.3: unknown 0x0000-0x7FFF types are reported; 0x8000+ only kept."""
    data = raw_message(
        attribute_bytes(0x7FFF, b"a")
        + b"\x00" * 3
        + attribute_bytes(0xC001, b"optional")
        + attribute_bytes(0x0002, b"")  # RESPONSE-ADDRESS: RFC 3489, not understood here
        + attribute_bytes(0x7FFF, b"")
    )
    msg = decode_message(data)
    assert msg.unknown_comprehension_required == (0x7FFF, 0x0002)
    assert RawAttribute(0xC001, b"optional") in msg.attributes
    assert encode_message(msg) == data


def test_error_response_helpers() -> None:
    request = binding_request(TID, Software("x"))
    error = error_response(request, 420, UnknownAttributes((0x7FFF,)))
    assert error.message_class is MessageClass.ERROR_RESPONSE
    assert error.transaction_id == TID
    assert error.error == ErrorCodeAttribute(420, "Unknown Attribute")
    assert error_response(request, 599).error == ErrorCodeAttribute(599, "")
    assert error_response(request, 400, reason="nope").error == ErrorCodeAttribute(400, "nope")
    ok = success_response(request, XorMappedAddress(V4))
    assert (ok.method, ok.message_class, ok.transaction_id) == (
        Method.BINDING,
        MessageClass.SUCCESS_RESPONSE,
        TID,
    )
    assert ok.error is None


# ------------------------------------------------------------- integrity and fingerprint


def test_fingerprint_is_crc32_xor_stun() -> None:
    """RFC 8489 §14.7: CRC-32 over the message with the length counting FINGERPRINT, ^ 'STUN'."""
    data = encode_message(message(Software("x")), fingerprint=True)
    prefix = data[:-8]
    assert data[-8:-4] == b"\x80\x28\x00\x04"
    expected = zlib.crc32(prefix[:2] + (len(prefix) - 20 + 8).to_bytes(2, "big") + prefix[4:])
    assert int.from_bytes(data[-4:], "big") == expected ^ 0x5354554E == compute_fingerprint(prefix)


def test_attributes_after_message_integrity_are_ignored() -> None:
    """RFC 8489 §14.5: only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may follow it."""
    signed = encode_message(message(Software("before")), integrity_key=b"k")
    tail = attribute_bytes(AttributeType.SOFTWARE, b"after")
    tail += b"\x00" * 3 + attribute_bytes(AttributeType.MESSAGE_INTEGRITY, bytes(20))
    data = bytearray(signed + tail)
    data[2:4] = (len(data) - 20).to_bytes(2, "big")
    msg = decode_message(bytes(data))
    assert msg.find_all(Software) == (Software("before"),)
    assert len(msg.find_all(MessageIntegrity)) == 1
    assert check_integrity(msg, b"k")


def test_message_integrity_sha256() -> None:
    """RFC 8489 §14.6: HMAC-SHA256 (optionally truncated) after MESSAGE-INTEGRITY, then nothing."""
    body = encode_message(message(Software("x")), integrity_key=b"k")
    for size in (16, 32):
        mac = compute_integrity_sha256(body, b"k", size)
        data = bytearray(body + attribute_bytes(AttributeType.MESSAGE_INTEGRITY_SHA256, mac))
        data += attribute_bytes(AttributeType.SOFTWARE, b"ignored")  # after SHA256: ignored
        data += b"\x00"
        data[2:4] = (len(data) - 20).to_bytes(2, "big")
        msg = decode_message(bytes(data))
        assert msg.find(MessageIntegritySha256) == MessageIntegritySha256(mac)
        assert msg.find_all(Software) == (Software("x"),)
        assert check_integrity_sha256(msg, b"k")
        assert not check_integrity_sha256(msg, b"wrong")
        assert check_integrity(msg, b"k")
    assert not check_integrity_sha256(decode_message(body), b"k")


def test_check_integrity_without_the_attribute_is_false() -> None:
    assert not check_integrity(decode_message(encode_message(message())), b"k")
    assert not check_integrity(message(), b"k")  # never decoded: nothing to check


def test_encoder_refuses_double_integrity_or_misplaced_fingerprint() -> None:
    signed = decode_message(encode_message(message(), integrity_key=b"k", fingerprint=True))
    with pytest.raises(LocalProtocolError):
        encode_message(signed, integrity_key=b"k")
    with pytest.raises(LocalProtocolError):
        encode_message(signed, fingerprint=True)
    with pytest.raises(LocalProtocolError):
        encode_message(message(Fingerprint(1), Software("x")))
    with pytest.raises(LocalProtocolError):
        encode_message(message(), pad_byte=256)
    with pytest.raises(LocalProtocolError):
        encode_message(message(Data(bytes(40_000)), Data(bytes(40_000))))


# ------------------------------------------------------------------ strictness


def test_decoder_strictness() -> None:
    """RFC 8489 §6.3: every framing rule is enforced; each refusal says why."""
    good = encode_message(message(Software("abc")))
    assert "shorter" in refused(good[:19])
    assert "two most significant" in refused(b"\x80" + good[1:])
    assert "two most significant" in refused(b"\x40" + good[1:])
    assert "multiple of 4" in refused(good[:3] + bytes([good[3] + 2]) + good[4:])
    assert "cookie" in refused(good[:4] + b"\x21\x12\xa4\x43" + good[8:])
    assert "length field" in refused(good + b"\x00" * 4)
    assert "length field" in refused(good[:-4])
    overrun = bytearray(good)
    overrun[22:24] = (9).to_bytes(2, "big")
    assert "past the end" in refused(bytes(overrun))
    assert decode_message(raw_message(b"")).attributes == ()


@pytest.mark.parametrize(
    ("attribute_type", "value", "reason"),
    [
        (AttributeType.MAPPED_ADDRESS, b"\x00\x01\x00", "address attribute"),
        (AttributeType.MAPPED_ADDRESS, b"\x00\x01\x00\x01\x7f\x00\x00", "family"),
        (AttributeType.MAPPED_ADDRESS, b"\x00\x03\x00\x01\x7f\x00\x00\x01", "family"),
        (AttributeType.MAPPED_ADDRESS, b"\x00\x02\x00\x01\x7f\x00\x00\x01", "family"),
        (AttributeType.XOR_MAPPED_ADDRESS, b"\x00\x01" + bytes(16), "address attribute"),
        (AttributeType.XOR_MAPPED_ADDRESS, b"\x00\x01" + bytes(50), "address attribute"),
        (AttributeType.OTHER_ADDRESS, b"\x00\x01\x00\x01\x7f\x00\x00\x01\x00", "family"),
        (AttributeType.USERNAME, b"\xff", "UTF-8"),
        (AttributeType.USERNAME, b"u" * 513, "Username of 513 bytes"),
        (AttributeType.REALM, b"r" * 128, "128 characters"),
        (AttributeType.NONCE, b"n" * 764, "764 bytes"),
        (AttributeType.SOFTWARE, b"\xc3", "UTF-8"),
        (AttributeType.MESSAGE_INTEGRITY, bytes(19), "MessageIntegrity"),
        (AttributeType.MESSAGE_INTEGRITY_SHA256, bytes(12), "MessageIntegritySha256"),
        (AttributeType.MESSAGE_INTEGRITY_SHA256, bytes(18), "MessageIntegritySha256"),
        (AttributeType.ERROR_CODE, b"\x00\x00\x04", "ERROR-CODE of 3"),
        (AttributeType.ERROR_CODE, b"\x00\x00\x02\x00", "class 2"),
        (AttributeType.ERROR_CODE, b"\x00\x00\x07\x00", "class 7"),
        (AttributeType.ERROR_CODE, b"\x00\x00\x04\x64", "number 100"),
        (AttributeType.ERROR_CODE, b"\x00\x00\x04\x00\xff", "UTF-8"),
        (AttributeType.UNKNOWN_ATTRIBUTES, b"\x00\x01\x00", "odd length"),
        (AttributeType.CHANGE_REQUEST, b"\x00\x00\x06", "CHANGE-REQUEST"),
        (AttributeType.RESPONSE_PORT, b"\x00\x01", "ResponsePort"),
        (AttributeType.CHANNEL_NUMBER, b"\x40\x00\x00\x00\x00", "ChannelNumber"),
        (AttributeType.LIFETIME, b"\x00\x00\x02", "Lifetime"),
        (AttributeType.CACHE_TIMEOUT, b"", "CacheTimeout"),
        (AttributeType.REQUESTED_ADDRESS_FAMILY, b"\x03\x00\x00\x00", "FAMILY 0x03"),
        (AttributeType.REQUESTED_ADDRESS_FAMILY, b"\x01", "REQUESTED-ADDRESS-FAMILY"),
        (AttributeType.EVEN_PORT, b"\x80\x00", "EVEN-PORT"),
        (AttributeType.REQUESTED_TRANSPORT, b"\x11", "REQUESTED-TRANSPORT"),
        (AttributeType.DONT_FRAGMENT, b"\x00", "DontFragment"),
        (AttributeType.RESERVATION_TOKEN, bytes(4), "ReservationToken"),
        (AttributeType.PRIORITY, bytes(8), "Priority"),
        (AttributeType.USE_CANDIDATE, b"\x01", "UseCandidate"),
        (AttributeType.ICE_CONTROLLED, bytes(4), "IceControlled"),
        (AttributeType.ICE_CONTROLLING, bytes(9), "IceControlling"),
        (AttributeType.FINGERPRINT, bytes(8), "Fingerprint"),
    ],
)
def test_bad_attribute_values_are_refused(attribute_type: int, value: bytes, reason: str) -> None:
    """Every typed attribute checks its length and content (RFC 8489 §14, RFC 5780 §7, 8656 §18)."""
    body = attribute_bytes(attribute_type, value) + b"\x00" * (-len(value) % 4)
    assert reason in refused(raw_message(body))


def test_reserved_bits_are_ignored_on_receipt() -> None:
    """Reserved/RFFU bits and the address reserved octet are ignored, as the RFCs say."""
    body = (
        attribute_bytes(AttributeType.MAPPED_ADDRESS, b"\xff\x01\x00\x07\x7f\x00\x00\x01")
        + attribute_bytes(AttributeType.CHANGE_REQUEST, b"\xff\xff\xff\xf9")
        + attribute_bytes(AttributeType.ERROR_CODE, b"\xff\xff\xfc\x14")
        + attribute_bytes(AttributeType.CHANNEL_NUMBER, b"\x40\x01\xff\xff")
        + attribute_bytes(AttributeType.REQUESTED_TRANSPORT, b"\x11\xff\xff\xff")
    )
    msg = decode_message(raw_message(body))
    assert msg.attributes == (
        MappedAddress(("127.0.0.1", 7)),
        ChangeRequest(change_ip=False, change_port=False),
        ErrorCodeAttribute(420, ""),
        ChannelNumber(0x4001),
        RequestedTransport(17),
    )


def test_fingerprint_must_be_last_and_right() -> None:
    """RFC 8489 §14.7: FINGERPRINT is the last attribute; a wrong one means "not STUN"."""
    data = encode_message(message(Software("x")), fingerprint=True)
    after = bytearray(data + attribute_bytes(AttributeType.PRIORITY, bytes(4)))
    after[2:4] = (len(after) - 20).to_bytes(2, "big")
    assert "not the last" in refused(bytes(after))
    wrong = data[:-1] + bytes([data[-1] ^ 1])
    assert "does not match" in refused(wrong)


def test_is_stun_message_demultiplexes() -> None:
    """RFC 8489 §5 / RFC 7983: a cheap first-bits-and-cookie test."""
    assert is_stun_message(encode_message(message()))
    assert not is_stun_message(b"\x40\x00\x00\x04abcd")  # TURN ChannelData
    assert not is_stun_message(b"\x00\x01\x00\x00" + b"\x00" * 16)  # no cookie
    assert not is_stun_message(b"\x00\x01")


# ------------------------------------------------------------------ keys and ids


def test_saslprep() -> None:
    """RFC 4013: mapping, NFKC, prohibited output, bidi rules (RFC 4013 §3 examples)."""
    assert saslprep("I\u00adX") == "IX"  # soft hyphen mapped to nothing
    assert saslprep("user") == "user"
    assert saslprep("USER") == "USER"
    assert saslprep("\u00aa") == "a"
    assert saslprep("\u2168") == "IX"
    assert saslprep("a\u00a0b") == "a b"  # non-ASCII space mapped to SPACE
    for bad in ("\u0007", "\u0627\u0031"):  # control character; RTL not ending RTL
        with pytest.raises(LocalProtocolError):
            saslprep(bad)
    with pytest.raises(LocalProtocolError):
        saslprep("\u0627a\u0627")  # mixes RandALCat with LCat
    assert saslprep("\u0627\u0031\u0628") == "\u0627\u0031\u0628"
    assert short_term_key("p\u00e4ss") == "p\u00e4ss".encode()


def test_transaction_ids_come_from_the_injected_source() -> None:
    """Reproducible: the same seeded source gives the same ids; a short source is a bug."""
    a, b = random.Random(5), random.Random(5)
    assert new_transaction_id(a.randbytes) == new_transaction_id(b.randbytes)
    assert len(new_transaction_id(a.randbytes)) == 12
    with pytest.raises(LocalProtocolError):
        new_transaction_id(lambda n: b"\x00" * (n - 1))
    with pytest.raises(LocalProtocolError):
        StunMessage(method=1, message_class=MessageClass.REQUEST, transaction_id=b"short")
