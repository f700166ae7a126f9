"""STUN messages: RFC 8489 (obsoletes RFC 5389), with RFC 5780, RFC 8656 and RFC 8445 attributes.

Layout (RFC 8489 §5): a 20-byte header -- two zero bits, a 14-bit message type
that interleaves a 12-bit method with a 2-bit class, a 16-bit body length, the
magic cookie 0x2112A442 and a 96-bit transaction id -- then type-length-value
attributes, each value padded to a multiple of 4 bytes.

Theory of operation:

* `encode_message` / `decode_message` are the codec pair. The decoder is strict
  and total: fed any bytes it returns a `StunMessage` or raises
  `RemoteProtocolError` (code MALFORMED), never anything else. Every attribute
  type it knows is checked for length and content; a type it does not know is
  kept as a `RawAttribute`, and the comprehension-required ones (0x0000-0x7FFF)
  are reported by `StunMessage.unknown_comprehension_required` so a server can
  answer 420 (RFC 8489 §6.3.1) and a client can fail the transaction (§6.3.3).
* Attributes are frozen dataclasses, one class per attribute type, each with
  its type number in ``TYPE`` and a `from_value` / `value_bytes` pair. Values
  hold what a program wants (an address tuple, a `str`), never the XORed wire
  form.
* Padding bytes are ignored on receipt, whatever they hold (RFC 8489 §14; the
  RFC 5769 vectors pad with spaces). The encoder pads with zeros unless told
  otherwise (``pad_byte``), so the RFC 5769 vectors can be rebuilt byte for byte.
* FINGERPRINT, when present, is verified by the decoder: a datagram whose CRC
  does not match is not STUN (RFC 8489 §14.7). It MUST be last, so anything
  after it is malformed. MESSAGE-INTEGRITY needs a key, so the decoder only
  records where it sits; `check_integrity` verifies it later. Attributes after
  MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are
  dropped, as §14 says they MUST be ignored.
* Keys: `short_term_key` and `long_term_key` (RFC 8489 §9.1.1 / §9.2.2, with
  RFC 5389's SASLprep of the password, which is what the RFC 5769 vectors use).
* Transaction ids come from an injected byte source (`new_transaction_id`), so
  messages are reproducible in tests and vectors.
"""

import hashlib
import hmac
import ipaddress
import stringprep
import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Final, Self, TypeVar, get_args

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address

#: RFC 8489 §5: fixed value in every message since RFC 5389.
MAGIC_COOKIE: Final = 0x2112A442
_COOKIE_BYTES: Final = MAGIC_COOKIE.to_bytes(4, "big")
#: RFC 8489 §5: bytes before the first attribute.
HEADER_SIZE: Final = 20
TRANSACTION_ID_SIZE: Final = 12
#: RFC 8489 §14.5: an HMAC-SHA1 is 20 bytes; the attribute with its header is 24.
MESSAGE_INTEGRITY_SIZE: Final = 20
#: RFC 8489 §14.7: the CRC-32 is XORed with this ("STUN" in ASCII).
FINGERPRINT_XOR: Final = 0x5354554E
#: RFC 8489 §14: the largest value a 16-bit length field can carry.
MAX_ATTRIBUTE_SIZE: Final = 0xFFFF
#: RFC 5389 §15.3: USERNAME is fewer than 513 bytes (RFC 8489 lowers it to 509 for senders).
MAX_USERNAME_BYTES: Final = 512
#: RFC 8489 §14.9/§14.10/§14.14/§14.8: REALM, NONCE, SOFTWARE, error reason.
MAX_TEXT_CHARS: Final = 127
MAX_TEXT_BYTES: Final = 763
#: RFC 5780 §7.2: CHANGE-REQUEST flag bits.
CHANGE_IP: Final = 0x04
CHANGE_PORT: Final = 0x02
#: RFC 8489 §14.1: address family octets.
FAMILY_IPV4: Final = 0x01
FAMILY_IPV6: Final = 0x02
#: RFC 8656 §14.7: REQUESTED-TRANSPORT protocol number for UDP.
TRANSPORT_UDP: Final = 17


class MessageClass(IntEnum):
    """RFC 8489 §5: the two class bits C1 C0."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS_RESPONSE = 0b10
    ERROR_RESPONSE = 0b11


class Method(IntEnum):
    """Methods this codebase uses (RFC 8489 §18.2, RFC 8656 §17). Others decode as plain ints."""

    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009


class AttributeType(IntEnum):
    """Attribute type numbers (IANA "STUN Attributes" registry)."""

    # RFC 8489 §18.3.1 (comprehension-required)
    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    REALM = 0x0014
    NONCE = 0x0015
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    PASSWORD_ALGORITHM = 0x001D
    USERHASH = 0x001E
    XOR_MAPPED_ADDRESS = 0x0020
    # RFC 5780 §7
    CHANGE_REQUEST = 0x0003
    PADDING = 0x0026
    RESPONSE_PORT = 0x0027
    # RFC 8656 §18 (TURN)
    CHANNEL_NUMBER = 0x000C
    LIFETIME = 0x000D
    XOR_PEER_ADDRESS = 0x0012
    DATA = 0x0013
    XOR_RELAYED_ADDRESS = 0x0016
    REQUESTED_ADDRESS_FAMILY = 0x0017
    EVEN_PORT = 0x0018
    REQUESTED_TRANSPORT = 0x0019
    DONT_FRAGMENT = 0x001A
    RESERVATION_TOKEN = 0x0022
    # RFC 8445 §16.1 (ICE)
    PRIORITY = 0x0024
    USE_CANDIDATE = 0x0025
    # RFC 8489 §18.3.2 (comprehension-optional)
    PASSWORD_ALGORITHMS = 0x8002
    ALTERNATE_DOMAIN = 0x8003
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    FINGERPRINT = 0x8028
    # RFC 5780 §7 (comprehension-optional)
    CACHE_TIMEOUT = 0x8027
    RESPONSE_ORIGIN = 0x802B
    OTHER_ADDRESS = 0x802C
    # RFC 8445 §16.1 (comprehension-optional)
    ICE_CONTROLLED = 0x8029
    ICE_CONTROLLING = 0x802A


def is_comprehension_required(attribute_type: int) -> bool:
    """RFC 8489 §14: types 0x0000-0x7FFF must be understood or the message refused."""
    return attribute_type < 0x8000


class StunErrorCode(IntEnum):
    """RFC 8489 §14.8 / RFC 8656 §18: the ERROR-CODE values this codebase sends.

    An `int`, so it goes on the wire unchanged; its name labels error counters.
    """

    TRY_ALTERNATE = 300
    BAD_REQUEST = 400
    UNAUTHENTICATED = 401
    FORBIDDEN = 403
    UNKNOWN_ATTRIBUTE = 420
    ALLOCATION_MISMATCH = 437
    STALE_NONCE = 438
    ADDRESS_FAMILY_NOT_SUPPORTED = 440
    WRONG_CREDENTIALS = 441
    UNSUPPORTED_TRANSPORT_PROTOCOL = 442
    PEER_ADDRESS_FAMILY_MISMATCH = 443
    ALLOCATION_QUOTA_REACHED = 486
    SERVER_ERROR = 500
    INSUFFICIENT_CAPACITY = 508


#: RFC 8489 §14.8 / RFC 8656 §18: the reason phrases this codebase sends.
REASON_PHRASES: Final[dict[int, str]] = {
    300: "Try Alternate",
    400: "Bad Request",
    401: "Unauthenticated",
    403: "Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    486: "Allocation Quota Reached",
    500: "Server Error",
    508: "Insufficient Capacity",
}


def _malformed(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, f"STUN: {message}")


# ----------------------------------------------------------------- message type


def encode_message_type(method: int, message_class: MessageClass) -> int:
    """RFC 8489 §5: M11..M7 C1 M6..M4 C0 M3..M0 (the top two bits stay zero)."""
    if not 0 <= method <= 0xFFF:
        raise LocalProtocolError(f"a STUN method is 12 bits, got {method:#x}")
    cls = int(message_class)
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((cls & 0b01) << 4)
        | ((cls & 0b10) << 7)
    )


def decode_message_type(message_type: int) -> tuple[int, MessageClass]:
    """The (method, class) a 14-bit message type carries; the inverse of `encode_message_type`."""
    method = (
        (message_type & 0x000F) | ((message_type >> 1) & 0x0070) | ((message_type >> 2) & 0x0F80)
    )
    cls = ((message_type >> 4) & 0b01) | ((message_type >> 7) & 0b10)
    known = Method(method) if method in Method._value2member_map_ else method
    return known, MessageClass(cls)


# -------------------------------------------------------------- value helpers


def _check_address(address: Address) -> Address:
    host, port = address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise LocalProtocolError(f"not an IP address literal: {host!r}") from None
    if type(port) is not int or not 0 <= port <= 0xFFFF:
        raise LocalProtocolError(f"port must be 0..65535, got {port!r}")
    return (str(ip), port)


def encode_address(address: Address) -> bytes:
    """RFC 8489 §14.1: reserved octet, family, port, then 4 or 16 address bytes."""
    host, port = _check_address(address)
    ip = ipaddress.ip_address(host)
    family = FAMILY_IPV4 if ip.version == 4 else FAMILY_IPV6
    return bytes((0, family)) + port.to_bytes(2, "big") + ip.packed


def decode_address(value: bytes) -> Address:
    """RFC 8489 §14.1; the reserved first octet is ignored as the RFC says."""
    if len(value) < 4:
        raise _malformed(f"address attribute of {len(value)} bytes")
    family = value[1]
    if family == FAMILY_IPV4 and len(value) == 8:
        host = str(ipaddress.IPv4Address(value[4:]))
    elif family == FAMILY_IPV6 and len(value) == 20:
        host = str(ipaddress.IPv6Address(value[4:]))
    else:
        raise _malformed(f"address family {family:#04x} with {len(value) - 4} address bytes")
    return (host, int.from_bytes(value[2:4], "big"))


def _xor_value(value: bytes, transaction_id: bytes) -> bytes:
    """XOR port and address (everything after the family octet) with cookie || transaction id."""
    pad = _COOKIE_BYTES[:2] + _COOKIE_BYTES + transaction_id  # 18 bytes: port + IPv6
    return value[:2] + bytes(b ^ k for b, k in zip(value[2:], pad, strict=False))


def encode_xor_address(address: Address, transaction_id: bytes) -> bytes:
    """RFC 8489 §14.2: the port XOR the cookie's high half, the address XOR cookie || id."""
    return _xor_value(encode_address(address), transaction_id)


def decode_xor_address(value: bytes, transaction_id: bytes) -> Address:
    """The inverse of `encode_xor_address` (XOR is its own inverse); lengths checked as for
    `decode_address`."""
    if len(value) not in (8, 20):
        raise _malformed(f"address attribute of {len(value)} bytes")
    return decode_address(_xor_value(value, transaction_id))


def _decode_text(value: bytes, what: str, *, max_bytes: int, max_chars: int | None) -> str:
    if len(value) > max_bytes:
        raise _malformed(f"{what} of {len(value)} bytes (at most {max_bytes})")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(f"{what} is not UTF-8") from None
    if max_chars is not None and len(text) > max_chars:
        raise _malformed(f"{what} of {len(text)} characters (at most {max_chars})")
    return text


def _encode_text(text: str, what: str, *, max_bytes: int, max_chars: int | None) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > max_bytes or (max_chars is not None and len(text) > max_chars):
        raise LocalProtocolError(f"{what} too long ({len(text)} characters, {len(raw)} bytes)")
    return raw


def _expect_size(value: bytes, size: int, what: str) -> None:
    if len(value) != size:
        raise _malformed(f"{what} of {len(value)} bytes (expected {size})")


def _check_uint(value: int, bits: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise LocalProtocolError(f"{what} must be a {bits}-bit unsigned integer, got {value!r}")


# ------------------------------------------------------------------ attributes
#
# One frozen class per attribute type. Kind base classes (`_AddressAttribute`,
# `_UInt32Attribute`, ...) hold the value codec; each concrete class only names
# its TYPE. `from_value(value, transaction_id)` raises only RemoteProtocolError;
# `value_bytes(transaction_id)` returns the unpadded value.


@dataclass(frozen=True, slots=True)
class _AddressAttribute:
    TYPE: ClassVar[int]
    address: Address

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", _check_address(self.address))

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        return cls(decode_address(value))

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return encode_address(self.address)


@dataclass(frozen=True, slots=True)
class _XorAddressAttribute:
    TYPE: ClassVar[int]
    address: Address

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", _check_address(self.address))

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        return cls(decode_xor_address(value, transaction_id))

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return encode_xor_address(self.address, transaction_id)


@dataclass(frozen=True, slots=True)
class _TextAttribute:
    TYPE: ClassVar[int]
    MAX_BYTES: ClassVar[int] = MAX_TEXT_BYTES
    MAX_CHARS: ClassVar[int | None] = MAX_TEXT_CHARS
    text: str

    def __post_init__(self) -> None:
        _encode_text(
            self.text, type(self).__name__, max_bytes=self.MAX_BYTES, max_chars=self.MAX_CHARS
        )

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        return cls(
            _decode_text(value, cls.__name__, max_bytes=cls.MAX_BYTES, max_chars=cls.MAX_CHARS)
        )

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return self.text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class _BytesAttribute:
    """An opaque value; SIZES, when set, lists the lengths the RFC allows."""

    TYPE: ClassVar[int]
    SIZES: ClassVar[frozenset[int] | None] = None
    value: bytes

    def __post_init__(self) -> None:
        if len(self.value) > MAX_ATTRIBUTE_SIZE:
            raise LocalProtocolError(f"{type(self).__name__} over {MAX_ATTRIBUTE_SIZE} bytes")
        if self.SIZES is not None and len(self.value) not in self.SIZES:
            raise LocalProtocolError(f"{type(self).__name__} of {len(self.value)} bytes")

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        if cls.SIZES is not None and len(value) not in cls.SIZES:
            raise _malformed(f"{cls.__name__} of {len(value)} bytes")
        return cls(bytes(value))

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return self.value


@dataclass(frozen=True, slots=True)
class _UInt32Attribute:
    """An unsigned big-endian integer filling the whole value (`_BYTES` bytes)."""

    TYPE: ClassVar[int]
    _BYTES: ClassVar[int] = 4
    value: int

    def __post_init__(self) -> None:
        _check_uint(self.value, 8 * self._BYTES, type(self).__name__)

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_size(value, cls._BYTES, cls.__name__)
        return cls(int.from_bytes(value, "big"))

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return self.value.to_bytes(self._BYTES, "big")


@dataclass(frozen=True, slots=True)
class _UInt64Attribute(_UInt32Attribute):
    _BYTES: ClassVar[int] = 8


@dataclass(frozen=True, slots=True)
class _UInt16Attribute:
    """A 16-bit value followed by 16 reserved bits (CHANNEL-NUMBER, RESPONSE-PORT)."""

    TYPE: ClassVar[int]
    value: int

    def __post_init__(self) -> None:
        _check_uint(self.value, 16, type(self).__name__)

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_size(value, 4, cls.__name__)
        return cls(int.from_bytes(value[:2], "big"))  # RFFU bits ignored on receipt

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return self.value.to_bytes(2, "big") + b"\x00\x00"


@dataclass(frozen=True, slots=True)
class _FlagAttribute:
    """An attribute whose presence is the information (USE-CANDIDATE, DONT-FRAGMENT)."""

    TYPE: ClassVar[int]

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_size(value, 0, cls.__name__)
        return cls()

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return b""


# --- RFC 8489


@dataclass(frozen=True, slots=True)
class MappedAddress(_AddressAttribute):
    """RFC 8489 §14.1: the reflexive address, in the clear (pre-RFC 5389 servers send it)."""

    TYPE = AttributeType.MAPPED_ADDRESS


@dataclass(frozen=True, slots=True)
class XorMappedAddress(_XorAddressAttribute):
    """RFC 8489 §14.2: the reflexive transport address, XORed so NATs don't rewrite it."""

    TYPE = AttributeType.XOR_MAPPED_ADDRESS


@dataclass(frozen=True, slots=True)
class Username(_TextAttribute):
    """RFC 8489 §14.3: the user name of a credential, UTF-8, at most 512 bytes."""

    TYPE = AttributeType.USERNAME
    MAX_BYTES = MAX_USERNAME_BYTES
    MAX_CHARS = None


@dataclass(frozen=True, slots=True)
class MessageIntegrity(_BytesAttribute):
    """RFC 8489 §14.5: HMAC-SHA1 over the message up to this attribute (see `encode_message`)."""

    TYPE = AttributeType.MESSAGE_INTEGRITY
    SIZES = frozenset({MESSAGE_INTEGRITY_SIZE})


@dataclass(frozen=True, slots=True)
class MessageIntegritySha256(_BytesAttribute):
    """RFC 8489 §14.6: HMAC-SHA256, possibly truncated to 16..32 bytes in steps of 4."""

    TYPE = AttributeType.MESSAGE_INTEGRITY_SHA256
    SIZES = frozenset(range(16, 33, 4))


@dataclass(frozen=True, slots=True)
class Fingerprint(_UInt32Attribute):
    """RFC 8489 §14.7: CRC-32 of the message up to this attribute, XOR 0x5354554e."""

    TYPE = AttributeType.FINGERPRINT


@dataclass(frozen=True, slots=True)
class ErrorCodeAttribute:
    """RFC 8489 §14.8: a code 300..699 and a UTF-8 reason phrase."""

    TYPE: ClassVar[int] = AttributeType.ERROR_CODE
    code: int
    reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.code, int) or not 300 <= self.code <= 699:
            raise LocalProtocolError(f"STUN error code must be 300..699, got {self.code!r}")
        _encode_text(self.reason, "reason", max_bytes=MAX_TEXT_BYTES, max_chars=MAX_TEXT_CHARS)

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        if len(value) < 4:
            raise _malformed(f"ERROR-CODE of {len(value)} bytes")
        error_class, number = value[2] & 0x07, value[3]  # the 21 reserved bits are ignored
        if not 3 <= error_class <= 6 or number > 99:
            raise _malformed(f"ERROR-CODE class {error_class} number {number}")
        reason = _decode_text(
            value[4:], "reason", max_bytes=MAX_TEXT_BYTES, max_chars=MAX_TEXT_CHARS
        )
        return cls(error_class * 100 + number, reason)

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return bytes((0, 0, self.code // 100, self.code % 100)) + self.reason.encode("utf-8")


@dataclass(frozen=True, slots=True)
class UnknownAttributes:
    """RFC 8489 §14.9: the comprehension-required types a 420 response did not understand."""

    TYPE: ClassVar[int] = AttributeType.UNKNOWN_ATTRIBUTES
    types: tuple[int, ...]

    def __post_init__(self) -> None:
        for attribute_type in self.types:
            _check_uint(attribute_type, 16, "attribute type")

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        if len(value) % 2:
            raise _malformed(f"UNKNOWN-ATTRIBUTES of odd length {len(value)}")
        return cls(tuple(int.from_bytes(value[i : i + 2], "big") for i in range(0, len(value), 2)))

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return b"".join(t.to_bytes(2, "big") for t in self.types)


@dataclass(frozen=True, slots=True)
class Realm(_TextAttribute):
    """RFC 8489 §14.9: the long-term credential realm."""

    TYPE = AttributeType.REALM


@dataclass(frozen=True, slots=True)
class Nonce(_TextAttribute):
    """RFC 8489 §14.10: the server's nonce for long-term credentials."""

    TYPE = AttributeType.NONCE


@dataclass(frozen=True, slots=True)
class Software(_TextAttribute):
    """RFC 8489 §14.14: the agent's name and version, for diagnostics only."""

    TYPE = AttributeType.SOFTWARE


@dataclass(frozen=True, slots=True)
class AlternateServer(_AddressAttribute):
    """RFC 8489 §14.15: where a 300 (Try Alternate) response sends the client."""

    TYPE = AttributeType.ALTERNATE_SERVER


@dataclass(frozen=True, slots=True)
class AlternateDomain(_TextAttribute):
    """RFC 8489 §14.16: the TLS server name to use with ALTERNATE-SERVER."""

    TYPE = AttributeType.ALTERNATE_DOMAIN
    MAX_CHARS = None


# --- RFC 5780


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """RFC 5780 §7.2: ask the server to answer from its other IP and/or other port."""

    TYPE: ClassVar[int] = AttributeType.CHANGE_REQUEST
    change_ip: bool = False
    change_port: bool = False

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_size(value, 4, "CHANGE-REQUEST")
        flags = value[3]  # the other bits are unused and ignored
        return cls(change_ip=bool(flags & CHANGE_IP), change_port=bool(flags & CHANGE_PORT))

    def value_bytes(self, transaction_id: bytes) -> bytes:
        flags = (CHANGE_IP if self.change_ip else 0) | (CHANGE_PORT if self.change_port else 0)
        return flags.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class Padding(_BytesAttribute):
    """RFC 5780 §7.6: filler to test fragmentation; its content is meaningless."""

    TYPE = AttributeType.PADDING


@dataclass(frozen=True, slots=True)
class ResponsePort(_UInt16Attribute):
    """RFC 5780 §7.5: the port the response should be sent to."""

    TYPE = AttributeType.RESPONSE_PORT


@dataclass(frozen=True, slots=True)
class CacheTimeout(_UInt32Attribute):
    """RFC 5780 §7.7: seconds the server thinks a binding lasts (experimental)."""

    TYPE = AttributeType.CACHE_TIMEOUT


@dataclass(frozen=True, slots=True)
class ResponseOrigin(_AddressAttribute):
    """RFC 5780 §7.3: the address the response was sent from."""

    TYPE = AttributeType.RESPONSE_ORIGIN


@dataclass(frozen=True, slots=True)
class OtherAddress(_AddressAttribute):
    """RFC 5780 §7.4: the address that differs in both IP and port from the receiving one."""

    TYPE = AttributeType.OTHER_ADDRESS


# --- RFC 8656 (TURN)


@dataclass(frozen=True, slots=True)
class ChannelNumber(_UInt16Attribute):
    """RFC 8656 §18.1: a channel number (0x4000..0x4FFF is the TURN layer's rule, not ours)."""

    TYPE = AttributeType.CHANNEL_NUMBER


@dataclass(frozen=True, slots=True)
class Lifetime(_UInt32Attribute):
    """RFC 8656 §18.2: allocation lifetime in seconds."""

    TYPE = AttributeType.LIFETIME


@dataclass(frozen=True, slots=True)
class XorPeerAddress(_XorAddressAttribute):
    """RFC 8656 §18.3: the peer's address as the TURN server sees it."""

    TYPE = AttributeType.XOR_PEER_ADDRESS


@dataclass(frozen=True, slots=True)
class Data(_BytesAttribute):
    """RFC 8656 §18.4: the application datagram of a Send or Data indication."""

    TYPE = AttributeType.DATA


@dataclass(frozen=True, slots=True)
class XorRelayedAddress(_XorAddressAttribute):
    """RFC 8656 §18.5: the relayed transport address of an allocation."""

    TYPE = AttributeType.XOR_RELAYED_ADDRESS


@dataclass(frozen=True, slots=True)
class RequestedAddressFamily:
    """RFC 8656 §18.6: the family (0x01 IPv4, 0x02 IPv6) of the relayed address wanted."""

    TYPE: ClassVar[int] = AttributeType.REQUESTED_ADDRESS_FAMILY
    family: int

    def __post_init__(self) -> None:
        if self.family not in (FAMILY_IPV4, FAMILY_IPV6):
            raise LocalProtocolError(f"address family must be 1 or 2, got {self.family!r}")

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_size(value, 4, "REQUESTED-ADDRESS-FAMILY")
        if value[0] not in (FAMILY_IPV4, FAMILY_IPV6):
            raise _malformed(f"REQUESTED-ADDRESS-FAMILY {value[0]:#04x}")
        return cls(value[0])

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return bytes((self.family, 0, 0, 0))


@dataclass(frozen=True, slots=True)
class EvenPort:
    """RFC 8656 §18.7: ask for an even relayed port, and optionally reserve the next one."""

    TYPE: ClassVar[int] = AttributeType.EVEN_PORT
    reserve: bool = False

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_size(value, 1, "EVEN-PORT")
        return cls(bool(value[0] & 0x80))

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return b"\x80" if self.reserve else b"\x00"


@dataclass(frozen=True, slots=True)
class RequestedTransport:
    """RFC 8656 §18.8: the IP protocol number of the allocation (17 = UDP)."""

    TYPE: ClassVar[int] = AttributeType.REQUESTED_TRANSPORT
    protocol: int = TRANSPORT_UDP

    def __post_init__(self) -> None:
        _check_uint(self.protocol, 8, "protocol")

    @classmethod
    def from_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_size(value, 4, "REQUESTED-TRANSPORT")
        return cls(value[0])  # RFFU bits ignored on receipt

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return bytes((self.protocol, 0, 0, 0))


@dataclass(frozen=True, slots=True)
class DontFragment(_FlagAttribute):
    """RFC 8656 §18.9: ask the TURN server to set DF on relayed packets."""

    TYPE = AttributeType.DONT_FRAGMENT


@dataclass(frozen=True, slots=True)
class ReservationToken(_BytesAttribute):
    """RFC 8656 §18.10: an 8-byte token naming a reserved relayed port."""

    TYPE = AttributeType.RESERVATION_TOKEN
    SIZES = frozenset({8})


# --- RFC 8445 (ICE)


@dataclass(frozen=True, slots=True)
class Priority(_UInt32Attribute):
    """RFC 8445 §7.1.1: the priority of a peer-reflexive candidate."""

    TYPE = AttributeType.PRIORITY


@dataclass(frozen=True, slots=True)
class UseCandidate(_FlagAttribute):
    """RFC 8445 §7.1.2: the controlling agent nominates this pair."""

    TYPE = AttributeType.USE_CANDIDATE


@dataclass(frozen=True, slots=True)
class IceControlled(_UInt64Attribute):
    """RFC 8445 §7.1.3: the sender is controlled; the value is its tie-breaker."""

    TYPE = AttributeType.ICE_CONTROLLED


@dataclass(frozen=True, slots=True)
class IceControlling(_UInt64Attribute):
    """RFC 8445 §7.1.3: the sender is controlling; the value is its tie-breaker."""

    TYPE = AttributeType.ICE_CONTROLLING


# --- anything else


@dataclass(frozen=True, slots=True)
class RawAttribute:
    """An attribute type this codec does not interpret, kept as its raw value."""

    type: int
    value: bytes

    def __post_init__(self) -> None:
        _check_uint(self.type, 16, "attribute type")
        if self.type in _CLASSES:
            name = _CLASSES[self.type].__name__
            raise LocalProtocolError(f"attribute type {self.type:#06x} has its own class: {name}")
        if len(self.value) > MAX_ATTRIBUTE_SIZE:
            raise LocalProtocolError(f"attribute value over {MAX_ATTRIBUTE_SIZE} bytes")

    @property
    def TYPE(self) -> int:  # noqa: N802 - mirrors the ClassVar of the typed attributes
        return self.type

    def value_bytes(self, transaction_id: bytes) -> bytes:
        return self.value


#: Every attribute class that interprets its value.
TypedAttribute = (
    MappedAddress
    | XorMappedAddress
    | Username
    | MessageIntegrity
    | MessageIntegritySha256
    | Fingerprint
    | ErrorCodeAttribute
    | UnknownAttributes
    | Realm
    | Nonce
    | Software
    | AlternateServer
    | AlternateDomain
    | ChangeRequest
    | Padding
    | ResponsePort
    | CacheTimeout
    | ResponseOrigin
    | OtherAddress
    | ChannelNumber
    | Lifetime
    | XorPeerAddress
    | Data
    | XorRelayedAddress
    | RequestedAddressFamily
    | EvenPort
    | RequestedTransport
    | DontFragment
    | ReservationToken
    | Priority
    | UseCandidate
    | IceControlled
    | IceControlling
)
#: What a message holds: typed attributes, and raw ones for types not interpreted here.
Attribute = TypedAttribute | RawAttribute

#: Every typed attribute class by its type number (the decoder's dispatch table).
_CLASSES: Final[dict[int, type[TypedAttribute]]] = {
    cls.TYPE: cls for cls in get_args(TypedAttribute)
}

#: The attribute types this codec understands (everything else decodes to RawAttribute).
KNOWN_ATTRIBUTE_TYPES: Final = frozenset(_CLASSES)

_A = TypeVar("_A", bound=Attribute)


def _decode_attribute(attribute_type: int, value: bytes, transaction_id: bytes) -> Attribute:
    cls = _CLASSES.get(attribute_type)
    if cls is None:
        return RawAttribute(attribute_type, bytes(value))
    return cls.from_value(value, transaction_id)


# --------------------------------------------------------------------- message


@dataclass(frozen=True, slots=True, kw_only=True)
class StunMessage:
    """One STUN message. `method` is a `Method` when known, else the raw 12-bit int.

    A decoded message also remembers its bytes (``raw``) and where its
    MESSAGE-INTEGRITY attributes sit, so `check_integrity` can verify them; these
    fields take no part in equality.
    """

    method: int
    message_class: MessageClass
    transaction_id: bytes
    attributes: tuple[Attribute, ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)
    integrity_offset: int | None = field(default=None, compare=False, repr=False)
    integrity_sha256_offset: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.transaction_id) != TRANSACTION_ID_SIZE:
            raise LocalProtocolError(f"a transaction id is {TRANSACTION_ID_SIZE} bytes")
        if not 0 <= self.method <= 0xFFF:
            raise LocalProtocolError(f"a STUN method is 12 bits, got {self.method:#x}")

    def find(self, kind: type[_A]) -> _A | None:
        """The first attribute of class `kind` (RFC 8489 §14: only the first one counts)."""
        for attribute in self.attributes:
            if type(attribute) is kind:
                return attribute
        return None

    def find_all(self, kind: type[_A]) -> tuple[_A, ...]:
        return tuple(a for a in self.attributes if type(a) is kind)

    @property
    def unknown_comprehension_required(self) -> tuple[int, ...]:
        """Types in 0x0000-0x7FFF this codec does not understand, in order, without repeats."""
        found: dict[int, None] = {}
        for attribute in self.attributes:
            if isinstance(attribute, RawAttribute) and is_comprehension_required(attribute.type):
                found[attribute.type] = None
        return tuple(found)

    @property
    def mapped_address(self) -> Address | None:
        """XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from a server that sends only that."""
        xor = self.find(XorMappedAddress)
        if xor is not None:
            return xor.address
        plain = self.find(MappedAddress)
        return plain.address if plain is not None else None

    @property
    def error(self) -> ErrorCodeAttribute | None:
        return self.find(ErrorCodeAttribute)


def new_transaction_id(random_bytes: Callable[[int], bytes]) -> bytes:
    """A 96-bit transaction id drawn from an injected byte source (e.g. ``rng.randbytes``)."""
    transaction_id = random_bytes(TRANSACTION_ID_SIZE)
    if len(transaction_id) != TRANSACTION_ID_SIZE:
        raise LocalProtocolError("the byte source returned the wrong number of bytes")
    return bytes(transaction_id)


def binding_request(transaction_id: bytes, *attributes: Attribute) -> StunMessage:
    return StunMessage(
        method=Method.BINDING,
        message_class=MessageClass.REQUEST,
        transaction_id=transaction_id,
        attributes=attributes,
    )


def success_response(request: StunMessage, *attributes: Attribute) -> StunMessage:
    """A success response to `request`: same method and transaction id."""
    return StunMessage(
        method=request.method,
        message_class=MessageClass.SUCCESS_RESPONSE,
        transaction_id=request.transaction_id,
        attributes=attributes,
    )


def error_response(
    request: StunMessage, code: int, *attributes: Attribute, reason: str | None = None
) -> StunMessage:
    """An error response carrying ERROR-CODE `code` (reason phrase from RFC 8489 by default)."""
    phrase = REASON_PHRASES.get(code, "") if reason is None else reason
    return StunMessage(
        method=request.method,
        message_class=MessageClass.ERROR_RESPONSE,
        transaction_id=request.transaction_id,
        attributes=(ErrorCodeAttribute(code, phrase), *attributes),
    )


# ---------------------------------------------------------------- integrity


def _with_length(prefix: bytes, body_length: int) -> bytes:
    """`prefix` (header + attributes so far) with its length field set to `body_length`."""
    return prefix[:2] + body_length.to_bytes(2, "big") + prefix[4:]


def compute_fingerprint(prefix: bytes) -> int:
    """RFC 8489 §14.7: CRC-32 of the message up to FINGERPRINT, its length counting FINGERPRINT."""
    return zlib.crc32(_with_length(prefix, len(prefix) - HEADER_SIZE + 8)) ^ FINGERPRINT_XOR


def compute_integrity(prefix: bytes, key: bytes) -> bytes:
    """RFC 8489 §14.5: HMAC-SHA1 over the message up to MESSAGE-INTEGRITY, length counting it."""
    adjusted = _with_length(prefix, len(prefix) - HEADER_SIZE + 4 + MESSAGE_INTEGRITY_SIZE)
    return hmac.new(key, adjusted, hashlib.sha1).digest()


def compute_integrity_sha256(prefix: bytes, key: bytes, size: int = 32) -> bytes:
    """RFC 8489 §14.6: HMAC-SHA256 over the message up to the attribute, truncated to `size`."""
    adjusted = _with_length(prefix, len(prefix) - HEADER_SIZE + 4 + size)
    return hmac.new(key, adjusted, hashlib.sha256).digest()[:size]


def check_integrity(message: StunMessage, key: bytes) -> bool:
    """Whether the MESSAGE-INTEGRITY of a decoded message verifies under `key`.

    False when the message has none. Constant-time comparison.
    """
    offset = message.integrity_offset
    attribute = message.find(MessageIntegrity)
    if offset is None or attribute is None:
        return False
    return hmac.compare_digest(attribute.value, compute_integrity(message.raw[:offset], key))


def check_integrity_sha256(message: StunMessage, key: bytes) -> bool:
    """Whether the MESSAGE-INTEGRITY-SHA256 of a decoded message verifies under `key`."""
    offset = message.integrity_sha256_offset
    attribute = message.find(MessageIntegritySha256)
    if offset is None or attribute is None:
        return False
    expected = compute_integrity_sha256(message.raw[:offset], key, len(attribute.value))
    return hmac.compare_digest(attribute.value, expected)


def saslprep(text: str) -> str:
    """RFC 4013 SASLprep (stringprep profile), as RFC 5389 §15.4 applies it to passwords.

    Unassigned code points are allowed (the "query" rule of RFC 3454 §7).
    Raises LocalProtocolError for a prohibited character or a bidi violation.
    """
    # RFC 4013 §2.1: non-ASCII spaces -> SPACE; "commonly mapped to nothing" removed.
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    normal = unicodedata.normalize("NFKC", mapped)  # §2.2
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21,
        stringprep.in_table_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
    )
    for c in normal:  # §2.3
        if any(table(c) for table in prohibited):
            raise LocalProtocolError(f"SASLprep: prohibited character U+{ord(c):04X}")
    # §2.4 / RFC 3454 §6: bidirectional text
    if any(stringprep.in_table_d1(c) for c in normal):
        if any(stringprep.in_table_d2(c) for c in normal):
            raise LocalProtocolError("SASLprep: mixes right-to-left and left-to-right text")
        if not (stringprep.in_table_d1(normal[0]) and stringprep.in_table_d1(normal[-1])):
            raise LocalProtocolError("SASLprep: right-to-left text must start and end RTL")
    return normal


def short_term_key(password: str) -> bytes:
    """RFC 5389 §15.4: the HMAC key of a short-term credential is SASLprep(password)."""
    return saslprep(password).encode("utf-8")


def long_term_key(username: str, realm: str, password: str) -> bytes:
    """RFC 5389 §15.4 / RFC 8489 §9.2.2: MD5(username ":" realm ":" SASLprep(password)).

    `username` and `realm` are taken as they appear in the message.
    """
    material = f"{username}:{realm}:{saslprep(password)}".encode()
    return hashlib.md5(material, usedforsecurity=False).digest()


# ---------------------------------------------------------------- encode/decode


def _padding(length: int) -> int:
    return -length % 4


def encode_message(
    message: StunMessage,
    *,
    integrity_key: bytes | None = None,
    fingerprint: bool = False,
    pad_byte: int = 0,
) -> bytes:
    """Encode `message`, appending MESSAGE-INTEGRITY (if `integrity_key`) then FINGERPRINT.

    Attributes are written in order. A message that already carries those
    attributes (e.g. one just decoded) is written as it is, and then neither
    option may be given. `pad_byte` fills padding (receivers ignore it).
    """
    _check_uint(pad_byte, 8, "pad_byte")
    present = {type(a) for a in message.attributes}
    if integrity_key is not None and present & {MessageIntegrity, Fingerprint}:
        raise LocalProtocolError("the message already has MESSAGE-INTEGRITY or FINGERPRINT")
    if fingerprint and Fingerprint in present:
        raise LocalProtocolError("the message already has FINGERPRINT")
    for index, attribute in enumerate(message.attributes):
        if isinstance(attribute, Fingerprint) and index != len(message.attributes) - 1:
            raise LocalProtocolError("FINGERPRINT must be the last attribute")
    body = bytearray()
    for attribute in message.attributes:
        value = attribute.value_bytes(message.transaction_id)
        if len(value) > MAX_ATTRIBUTE_SIZE:
            raise LocalProtocolError(f"attribute {attribute.TYPE:#06x} over 65535 bytes")
        body += attribute.TYPE.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value
        body += bytes([pad_byte]) * _padding(len(value))
    header = (
        encode_message_type(message.method, message.message_class).to_bytes(2, "big")
        + b"\x00\x00"
        + _COOKIE_BYTES
        + message.transaction_id
    )
    data = bytearray(header) + body
    if integrity_key is not None:
        mac = compute_integrity(bytes(data), integrity_key)
        data += AttributeType.MESSAGE_INTEGRITY.to_bytes(2, "big") + b"\x00\x14" + mac
    if fingerprint:
        crc = compute_fingerprint(bytes(data))
        data += AttributeType.FINGERPRINT.to_bytes(2, "big") + b"\x00\x04" + crc.to_bytes(4, "big")
    if len(data) - HEADER_SIZE > 0xFFFF:
        raise LocalProtocolError("STUN message body over 65535 bytes")
    data[2:4] = (len(data) - HEADER_SIZE).to_bytes(2, "big")
    return bytes(data)


def is_stun_message(data: bytes) -> bool:
    """A cheap demultiplexing test (RFC 8489 §5): top bits zero, aligned length, magic cookie.

    True does not mean the message decodes; use `decode_message` for that.
    """
    return (
        len(data) >= HEADER_SIZE
        and data[0] & 0xC0 == 0
        and data[3] % 4 == 0
        and data[4:8] == _COOKIE_BYTES
    )


def decode_message(data: bytes) -> StunMessage:
    """Decode one STUN message from a whole datagram; raises only RemoteProtocolError.

    Checks (RFC 8489 §6.3): the two top bits are zero, the length is a multiple of
    4 and matches the datagram exactly, the magic cookie, every attribute's
    bounds and value, FINGERPRINT last and correct when present.
    """
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise _malformed(f"{len(data)} bytes is shorter than the 20-byte header")
    message_type = int.from_bytes(data[0:2], "big")
    if message_type & 0xC000:
        raise _malformed("the two most significant bits are not zero")
    length = int.from_bytes(data[2:4], "big")
    if length % 4:
        raise _malformed(f"length {length} is not a multiple of 4")
    if data[4:8] != _COOKIE_BYTES:
        raise _malformed("wrong magic cookie")
    if len(data) != HEADER_SIZE + length:
        raise _malformed(f"length field says {length} bytes, datagram has {len(data) - 20}")
    method, message_class = decode_message_type(message_type)
    transaction_id = data[8:HEADER_SIZE]

    attributes: list[Attribute] = []
    integrity_offset: int | None = None
    sha256_offset: int | None = None
    pos = HEADER_SIZE
    while pos < len(data):
        # pos and len(data) are both multiples of 4, so a 4-byte attribute header fits.
        attribute_type = int.from_bytes(data[pos : pos + 2], "big")
        value_length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        value_end = pos + 4 + value_length
        if value_end > len(data):
            raise _malformed(f"attribute {attribute_type:#06x} runs past the end")
        value = data[pos + 4 : value_end]
        if attribute_type == AttributeType.FINGERPRINT:
            fingerprint = Fingerprint.from_value(value, transaction_id)
            if value_end != len(data):
                raise _malformed("FINGERPRINT is not the last attribute")
            if fingerprint.value != compute_fingerprint(data[:pos]):
                raise _malformed("FINGERPRINT does not match")
            attributes.append(fingerprint)
        elif sha256_offset is not None or (
            integrity_offset is not None
            and attribute_type != AttributeType.MESSAGE_INTEGRITY_SHA256
        ):
            pass  # RFC 8489 §14.5/§14.6: what follows the integrity attributes is ignored
        else:
            attribute = _decode_attribute(attribute_type, value, transaction_id)
            if isinstance(attribute, MessageIntegrity):
                integrity_offset = pos
            elif isinstance(attribute, MessageIntegritySha256):
                sha256_offset = pos
            attributes.append(attribute)
        pos = value_end + _padding(value_length)
    return StunMessage(
        method=method,
        message_class=message_class,
        transaction_id=transaction_id,
        attributes=tuple(attributes),
        raw=data,
        integrity_offset=integrity_offset,
        integrity_sha256_offset=sha256_offset,
    )


# ---------------------------------------------------------------- ChannelData
#
# RFC 8656 §12.4 (RFC 5766 §11.4): the compact framing of data on a TURN
# channel -- a 16-bit channel number, a 16-bit length of the application data,
# then the data. Its first two bits are 01, which is how it is told from STUN
# (00) on the same socket (RFC 7983 §7). Over UDP the padding to a multiple of
# 4 bytes is optional (§12.5), so a datagram may carry up to 3 bytes after the
# data; they are ignored. Anything shorter than the length says, or longer
# than the padding allows, is malformed.

#: RFC 5766 §11: channel numbers a client may bind (RFC 8656 §12 narrows it to 0x4FFF).
CHANNEL_NUMBER_MIN: Final = 0x4000
CHANNEL_NUMBER_MAX: Final = 0x7FFF
#: RFC 8656 §12.4: channel number and length.
CHANNEL_DATA_HEADER_SIZE: Final = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDataMessage:
    """RFC 8656 §12.4: application `data` sent on TURN channel `channel`."""

    channel: int
    data: bytes

    def __post_init__(self) -> None:
        if not CHANNEL_NUMBER_MIN <= self.channel <= CHANNEL_NUMBER_MAX:
            raise LocalProtocolError(
                f"a channel number is {CHANNEL_NUMBER_MIN:#06x}..{CHANNEL_NUMBER_MAX:#06x},"
                f" got {self.channel!r}"
            )
        if len(self.data) > 0xFFFF:
            raise LocalProtocolError(f"ChannelData of {len(self.data)} bytes (at most 65535)")


def is_channel_data(data: bytes) -> bool:
    """RFC 7983 §7 demultiplexing: the first two bits are 01 (STUN has 00)."""
    return len(data) >= 1 and data[0] & 0xC0 == 0x40


def encode_channel_data(message: ChannelDataMessage, *, pad: bool = False) -> bytes:
    """Header then data; `pad` adds the zero padding that TCP needs and UDP allows."""
    frame = message.channel.to_bytes(2, "big") + len(message.data).to_bytes(2, "big") + message.data
    if pad:
        frame += bytes(_padding(len(message.data)))
    return frame


def decode_channel_data(data: bytes) -> ChannelDataMessage:
    """Decode one ChannelData datagram; raises only RemoteProtocolError (code MALFORMED)."""
    data = bytes(data)
    if len(data) < CHANNEL_DATA_HEADER_SIZE:
        raise _malformed(f"ChannelData of {len(data)} bytes is shorter than its 4-byte header")
    channel = int.from_bytes(data[0:2], "big")
    if not CHANNEL_NUMBER_MIN <= channel <= CHANNEL_NUMBER_MAX:
        raise _malformed(f"channel number {channel:#06x} outside 0x4000..0x7fff")
    length = int.from_bytes(data[2:4], "big")
    end = CHANNEL_DATA_HEADER_SIZE + length
    if len(data) < end:
        raise _malformed(f"ChannelData length says {length} bytes, datagram has {len(data) - 4}")
    if len(data) > end + _padding(length):
        raise _malformed(f"{len(data) - end} bytes after ChannelData of {length} bytes")
    return ChannelDataMessage(channel=channel, data=data[CHANNEL_DATA_HEADER_SIZE:end])
