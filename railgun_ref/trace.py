"""Trace records: one flat, JSON-able row per node event, for every driver.

The simulator and the UDP driver both turn `NodeEvent`s into `TraceRecord`s
with `record_event`, so a researcher's pandas code reads either the same way,
and the simulator's determinism test compares canonical JSON lines byte for
byte.
"""

import dataclasses
import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from railgun_ref.core.ids import NodeId
from railgun_ref.events import AppMessageReceived, NodeEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceRecord:
    time: float  #: the `now` at which the event was drained, seconds
    node: str  #: hex NodeId of the node that reported it
    event: str  #: the event's class name, e.g. "PongReceived"
    data: dict[str, Any]  #: the event's fields, JSON-able

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): equal records give equal lines."""
        return json.dumps(
            {"time": self.time, "node": self.node, "event": self.event, "data": self.data},
            sort_keys=True,
            separators=(",", ":"),
        )


def _jsonable(value: object) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Enum):
        return value.name if isinstance(value.value, int) else value.value
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def record_event(node_id: NodeId, now: float, event: NodeEvent) -> TraceRecord:
    data = {f.name: _jsonable(getattr(event, f.name)) for f in dataclasses.fields(event)}
    if isinstance(event, AppMessageReceived):
        # The payload belongs to the application (often ciphertext, up to 64 KiB):
        # the trace keeps its size only.
        del data["payload"]
        data["payload_size"] = len(event.payload)
    return TraceRecord(time=now, node=node_id.hex(), event=type(event).__name__, data=data)
