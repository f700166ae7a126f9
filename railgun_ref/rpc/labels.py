"""Counter labels a protocol enum cannot give by itself (`core.counters.label_text`).

`label_text` writes a label as its enum member's value when that value is text,
and as the member's name exactly as declared otherwise. Wire error codes are
``IntEnum`` members, so they label counters with their own upper-case names and no
mirror enum (``rejected.BAD_SIGNATURE``, ``dht.refused.QUOTA``; ERR-1.1). Two
labels need more:

* `UnknownCode.UNKNOWN` labels a code ERR-1.1 does not define, which a peer's
  ERROR reply may carry (`error_label`);
* `MessageName` labels the node's ``request.*`` and ``response.*`` counters with
  the lower-case message names node vectors record (``request.ping``, NODE-1.1),
  where `MessageType`'s names are upper case. A test holds it to `MessageType`
  member for member.
"""

from enum import Enum, StrEnum

from railgun_ref.core.errors import ErrorCode
from railgun_ref.wire.messages import MessageType

__all__ = ["MessageName", "UnknownCode", "error_label"]


class UnknownCode(Enum):
    """The label of an error code ERR-1.1 does not define."""

    UNKNOWN = 0


class MessageName(StrEnum):
    """MSG-1.1 message types as counter labels (value = the type's name in lower case)."""

    PING = "ping"
    PONG = "pong"
    ERROR = "error"
    COOKIE = "cookie"
    FIND_NODE = "find_node"
    NODES = "nodes"
    FIND_VALUE = "find_value"
    VALUE = "value"
    STORE = "store"
    STORED = "stored"
    APP = "app"

    @classmethod
    def of(cls, message_type: MessageType) -> "MessageName":
        return cls[message_type.name]


def error_label(code: int) -> ErrorCode | UnknownCode:
    """The label of wire error `code` (`UnknownCode.UNKNOWN` for a code ERR-1.1 does not define)."""
    try:
        return ErrorCode(code)
    except ValueError:
        return UnknownCode.UNKNOWN
