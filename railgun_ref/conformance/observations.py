"""What node vectors observe, under the spec's names (OBS-1.1, OBS-1.2), mapped from the
reference's.

`node_ping.json` and `dht_node.json` record, after each step, the events a node
reported and, at the end, its base-protocol counters. The names are the spec's
(tables in paper/spec.md §9.2), not the reference's trace and counter names: an
implementation maps its own names onto these once. This module is that mapping
for the reference, and the only place that knows both sets of names:

* an event is ``{"event": <spec name>, "data": {...}}``, its field names in
  lowerCamelCase (`spec_event`);
* a counter name is ``<family>`` or ``<family>.<label>`` (`spec_counter`), the
  label an ERR code name (ERR-1.1), a message type name (MSG-1.1) or a channel.

A reference name with no spec name is a bug: `spec_event` and `spec_counter`
raise `KeyError`, so a new event or counter cannot reach a vector unnamed.
"""

from enum import StrEnum
from typing import Any, Final


class SpecEvent(StrEnum):
    """OBS-1.1: the events node vectors record."""

    PING_RECEIVED = "ping_received"
    PONG_RECEIVED = "pong_received"
    ERROR_RECEIVED = "error_received"
    MESSAGE_REFUSED = "message_refused"
    REQUEST_TIMED_OUT = "request_timed_out"
    RECORD_STORED = "record_stored"
    RECORD_DROPPED = "record_dropped"
    GET_FINISHED = "get_finished"


#: Reference trace record name (`railgun_ref.trace`) -> spec event name.
EVENTS: Final[dict[str, SpecEvent]] = {
    "PingReceived": SpecEvent.PING_RECEIVED,
    "PongReceived": SpecEvent.PONG_RECEIVED,
    "ErrorReceived": SpecEvent.ERROR_RECEIVED,
    "MessageRejected": SpecEvent.MESSAGE_REFUSED,
    "RequestTimedOut": SpecEvent.REQUEST_TIMED_OUT,
    "RecordStored": SpecEvent.RECORD_STORED,
    "RecordDropped": SpecEvent.RECORD_DROPPED,
    "GetFinished": SpecEvent.GET_FINISHED,
}


class SpecCounter(StrEnum):
    """OBS-1.2: the counter families node vectors record (labels after a dot)."""

    RECEIVED = "received"  #: .<channel>: envelopes received, before any check
    SENT = "sent"  #: .<channel>: envelopes sent
    REFUSED = "refused"  #: .<ERR code name>: inputs refused (NODE-1.1)
    REQUESTS = "requests"  #: .<message type name>: requests sent
    TIMED_OUT = "timed_out"  #: requests that timed out (RPC-1.2)
    PINGS_ANSWERED = "pings_answered"  #: PINGs answered with a PONG
    PONGS_RECEIVED = "pongs_received"  #: requests completed by a PONG
    ERRORS_RECEIVED = "errors_received"  #: requests completed by an ERROR
    REPLIES_TOO_LARGE = "replies_too_large"  #: replies replaced by ERROR TOO_LARGE (NODE-1.4)


#: Reference counter family -> (spec family, whether its label is upper-cased).
_FAMILIES: Final[dict[str, tuple[SpecCounter, bool]]] = {
    "rx": (SpecCounter.RECEIVED, False),
    "tx": (SpecCounter.SENT, False),
    "rejected": (SpecCounter.REFUSED, False),
    "request": (SpecCounter.REQUESTS, True),
}
#: Reference counters without a label -> spec counter.
_SINGLE: Final[dict[str, SpecCounter]] = {
    "request.timeout": SpecCounter.TIMED_OUT,
    "ping.answered": SpecCounter.PINGS_ANSWERED,
    "pong.received": SpecCounter.PONGS_RECEIVED,
    "error.received": SpecCounter.ERRORS_RECEIVED,
    "reply.too_large": SpecCounter.REPLIES_TOO_LARGE,
}


def spec_counter(name: str) -> str:
    """The spec name of the reference's counter `name` (KeyError if it has none)."""
    if name in _SINGLE:
        return str(_SINGLE[name])
    family, _, label = name.partition(".")
    spec, upper = _FAMILIES[family]
    return f"{spec}.{label.upper() if upper else label}"


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.capitalize() for part in rest)


def spec_event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """A reference trace record (`name`, `data`) as vectors write it."""
    return {"event": str(EVENTS[name]), "data": {_camel(k): v for k, v in data.items()}}
