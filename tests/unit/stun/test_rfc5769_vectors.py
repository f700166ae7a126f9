"""RFC 5769 test vectors: decode, verify MESSAGE-INTEGRITY and FINGERPRINT, rebuild exactly."""

import pytest

from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.stun.codec import (
    Fingerprint,
    IceControlled,
    MessageClass,
    MessageIntegrity,
    Method,
    Nonce,
    Priority,
    Realm,
    Software,
    StunMessage,
    Username,
    XorMappedAddress,
    check_integrity,
    decode_message,
    encode_message,
    long_term_key,
    saslprep,
    short_term_key,
)

from .rfc5769 import (
    LONG_TERM_NONCE,
    LONG_TERM_PASSWORD,
    LONG_TERM_REALM,
    LONG_TERM_TRANSACTION_ID,
    LONG_TERM_USERNAME,
    SAMPLE_IPV4_RESPONSE,
    SAMPLE_IPV6_RESPONSE,
    SAMPLE_LONG_TERM_REQUEST,
    SAMPLE_REQUEST,
    SHORT_TERM_PASSWORD,
    TRANSACTION_ID,
)

SHORT_KEY = short_term_key(SHORT_TERM_PASSWORD)


def without_integrity(message: StunMessage) -> StunMessage:
    """The message with MESSAGE-INTEGRITY and FINGERPRINT removed (to re-add them)."""
    kept = tuple(a for a in message.attributes if not isinstance(a, MessageIntegrity | Fingerprint))
    return StunMessage(
        method=message.method,
        message_class=message.message_class,
        transaction_id=message.transaction_id,
        attributes=kept,
    )


def test_sample_request_decodes() -> None:
    """RFC 5769 §2.1: every attribute of the sample request, in order."""
    message = decode_message(SAMPLE_REQUEST)
    assert message.method is Method.BINDING
    assert message.message_class is MessageClass.REQUEST
    assert message.transaction_id == TRANSACTION_ID
    assert message.attributes[:4] == (
        Software("STUN test client"),
        Priority(0x6E0001FF),
        IceControlled(0x932FF9B151263B36),
        Username("evtj:h6vY"),
    )
    assert [type(a) for a in message.attributes[4:]] == [MessageIntegrity, Fingerprint]
    assert message.find(Fingerprint) == Fingerprint(0xE57A3BCF)
    assert message.unknown_comprehension_required == ()


@pytest.mark.parametrize(
    "vector", [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE], ids=["req", "v4", "v6"]
)
def test_short_term_integrity_verifies(vector: bytes) -> None:
    """RFC 5769 §2.1-§2.3: MESSAGE-INTEGRITY under the short-term password; a wrong key fails."""
    message = decode_message(vector)
    assert check_integrity(message, SHORT_KEY)
    assert not check_integrity(message, short_term_key("VOkJxbRl1RmTxUk/WvJxBu"))


@pytest.mark.parametrize(
    "vector", [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE], ids=["req", "v4", "v6"]
)
def test_vector_rebuilt_byte_for_byte(vector: bytes) -> None:
    """The encoder reproduces MESSAGE-INTEGRITY and FINGERPRINT exactly (with space padding)."""
    stripped = without_integrity(decode_message(vector))
    rebuilt = encode_message(stripped, integrity_key=SHORT_KEY, fingerprint=True, pad_byte=0x20)
    assert rebuilt == vector


def test_decoded_vector_reencodes_as_is() -> None:
    """A decoded message, integrity attributes included, re-encodes to the same bytes."""
    for vector in (SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE):
        assert encode_message(decode_message(vector), pad_byte=0x20) == vector
    assert encode_message(decode_message(SAMPLE_LONG_TERM_REQUEST)) == SAMPLE_LONG_TERM_REQUEST


def test_ipv4_response_mapped_address() -> None:
    """RFC 5769 §2.2: XOR-MAPPED-ADDRESS is 192.0.2.1 port 32853."""
    message = decode_message(SAMPLE_IPV4_RESPONSE)
    assert message.message_class is MessageClass.SUCCESS_RESPONSE
    assert message.find(Software) == Software("test vector")
    assert message.find(XorMappedAddress) == XorMappedAddress(("192.0.2.1", 32853))
    assert message.mapped_address == ("192.0.2.1", 32853)


def test_ipv6_response_mapped_address() -> None:
    """RFC 5769 §2.3: XOR-MAPPED-ADDRESS is 2001:db8:1234:5678:11:2233:4455:6677 port 32853."""
    message = decode_message(SAMPLE_IPV6_RESPONSE)
    assert message.mapped_address == ("2001:db8:1234:5678:11:2233:4455:6677", 32853)


def test_long_term_request() -> None:
    """RFC 5769 §2.4: USERNAME, NONCE, REALM in UTF-8; key = MD5(user:realm:SASLprep(pw))."""
    message = decode_message(SAMPLE_LONG_TERM_REQUEST)
    assert message.transaction_id == LONG_TERM_TRANSACTION_ID
    assert message.attributes[:3] == (
        Username(LONG_TERM_USERNAME),
        Nonce(LONG_TERM_NONCE),
        Realm(LONG_TERM_REALM),
    )
    assert message.find(Fingerprint) is None
    assert saslprep(LONG_TERM_PASSWORD) == "TheMatrIX"
    key = long_term_key(LONG_TERM_USERNAME, LONG_TERM_REALM, LONG_TERM_PASSWORD)
    assert key == long_term_key(LONG_TERM_USERNAME, LONG_TERM_REALM, "TheMatrIX")
    assert check_integrity(message, key)
    assert not check_integrity(message, long_term_key(LONG_TERM_USERNAME, LONG_TERM_REALM, "x"))
    assert encode_message(without_integrity(message), integrity_key=key) == SAMPLE_LONG_TERM_REQUEST


@pytest.mark.parametrize(
    "vector", [SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE], ids=["req", "v4", "v6"]
)
def test_any_flipped_bit_is_refused(vector: bytes) -> None:
    """FINGERPRINT covers every byte before it, padding included, and its own value: any single
    bit flip there is refused. (Its own 4-byte attribute header is the one part it cannot cover.)
    """
    fingerprint_header = range(len(vector) - 8, len(vector) - 4)
    for index in (i for i in range(len(vector)) if i not in fingerprint_header):
        for bit in range(8):
            corrupted = bytearray(vector)
            corrupted[index] ^= 1 << bit
            with pytest.raises(RemoteProtocolError):
                decode_message(bytes(corrupted))


def test_padding_flip_keeps_integrity_meaningful() -> None:
    """Without FINGERPRINT, a flipped padding byte still decodes but MESSAGE-INTEGRITY fails."""
    stripped = without_integrity(decode_message(SAMPLE_REQUEST))
    data = bytearray(encode_message(stripped, integrity_key=SHORT_KEY))
    username_padding = data.index(b"evtj:h6vY") + 9
    data[username_padding] ^= 0xFF
    message = decode_message(bytes(data))
    assert message.find(Username) == Username("evtj:h6vY")
    assert not check_integrity(message, SHORT_KEY)
