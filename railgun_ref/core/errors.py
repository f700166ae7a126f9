"""The two error families (h11 style).

`LocalProtocolError` means *our caller* misused an API: it is a bug on this side
and is never caused by bytes from the network. `RemoteProtocolError` means *a
peer* sent something invalid; every decoder raises only this for any input, and
its `code` is the wire error code (spec ERR-1.1) that counters and ERROR
replies use.
"""

from enum import IntEnum


class ErrorCode(IntEnum):
    """ERR-1.1: wire error codes. Values are stable; never reuse one."""

    MALFORMED = 1  #: not well-formed deterministic CBOR or wrong shape
    TOO_LARGE = 2  #: over the size limit of the channel it came on
    BAD_SIGNATURE = 3  #: Ed25519 verification failed (ID-2.x rules)
    UNSUPPORTED_VERSION = 4  #: protocol version this node does not speak
    UNKNOWN_TYPE = 5  #: message type not defined by this spec version
    STALE = 6  #: timestamp outside the accepted clock skew
    REPLAY = 7  #: (sender, type, request id) already seen in the window
    WRONG_SENDER = 8  #: signed by a key other than the one expected
    UNEXPECTED_RESPONSE = 9  #: a response matching no request in flight
    BAD_KEY = 10  #: public key not acceptable (ID-2.x rules)
    EXPIRED = 11  #: a record whose expiry is past
    WRONG_KEY = 12  #: a record offered under a key it does not derive to
    FORBIDDEN = 13  #: a publisher not entitled to this key (DHT-3.4)
    STALE_SEQUENCE = 14  #: a record older than the one held from the same publisher
    QUOTA = 15  #: storage or relay limit reached; try another node
    TTL_TOO_LONG = 16  #: a record expiring further ahead than the maximum TTL
    DELETED = 17  #: a stored message that was delivered and deleted (tombstone, SF-4.3)


class ProtocolError(Exception):
    """Common base of both families."""


class LocalProtocolError(ProtocolError):
    """The local caller broke an API contract (a bug on this side)."""


class RemoteProtocolError(ProtocolError):
    """A peer sent something this implementation must refuse."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
