"""Counter labels for wire error codes: ``rejected.BAD_SIGNATURE``, ``dht.refused.QUOTA``.

`Counters` renders a string enum's label as its value, so the flat counter
names node vectors record (NODE-1.1) keep the error code's upper-case name
(ERR-1.1). `ErrorLabel` mirrors `ErrorCode` member for member (a test holds
them equal); `UNKNOWN` labels a code this implementation does not define,
which a peer's ERROR reply may carry.
"""

from enum import StrEnum

from railgun_ref.core.errors import ErrorCode

__all__ = ["ErrorLabel", "error_label"]


class ErrorLabel(StrEnum):
    """ERR-1.1 error codes as counter labels (value = the code's name)."""

    MALFORMED = "MALFORMED"
    TOO_LARGE = "TOO_LARGE"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    STALE = "STALE"
    REPLAY = "REPLAY"
    WRONG_SENDER = "WRONG_SENDER"
    UNEXPECTED_RESPONSE = "UNEXPECTED_RESPONSE"
    BAD_KEY = "BAD_KEY"
    EXPIRED = "EXPIRED"
    WRONG_KEY = "WRONG_KEY"
    FORBIDDEN = "FORBIDDEN"
    STALE_SEQUENCE = "STALE_SEQUENCE"
    QUOTA = "QUOTA"
    TTL_TOO_LONG = "TTL_TOO_LONG"
    UNKNOWN = "UNKNOWN"  #: a code ERR-1.1 does not define


def error_label(code: int) -> ErrorLabel:
    """The label of wire error `code` (`UNKNOWN` for a code ERR-1.1 does not define)."""
    try:
        return ErrorLabel[ErrorCode(code).name]
    except ValueError:
        return ErrorLabel.UNKNOWN
