"""What the generator and both runners share: file names, loading, JSON forms of values.

Vector files ship as package data (``railgun_ref/conformance/vectors/*.json``)
and are always opened through `importlib.resources`, so the runners work from
an installed wheel as well as from a checkout.

JSON forms, fixed here once so every file spells a value the same way:

* byte strings are lowercase hex;
* unsigned 64-bit integers that can exceed 2^53 (request ids) are decimal
  *strings*, because a JSON number that large loses precision in JavaScript;
* addresses are ``{"host": ..., "port": ...}``;
* a decoded CBOR value is written in RFC 8949 §8 diagnostic notation
  (`diagnostic`), which is exact and language-neutral.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Final, assert_never

from railgun_ref.conformance.observations import spec_counter, spec_event
from railgun_ref.core.constants import MAX_STREAM_MESSAGE_SIZE
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.events import NodeEvent
from railgun_ref.node import EmitEvent, Node, SendDatagram, SendStreamMessage, StreamTarget
from railgun_ref.storeforward.authorisers import VectorAuthoriser
from railgun_ref.storeforward.holder import StorageHolder, StoreForwardConfig
from railgun_ref.trace import record_event
from railgun_ref.traversal import messages as m
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import decode_envelope
from railgun_ref.wire.messages import (
    Cookie,
    ErrorReply,
    FindNode,
    FindValue,
    Message,
    MessageType,
    Nodes,
    Pong,
    Store,
    Stored,
    Value,
    WireContact,
    parse_message,
)

#: The vector files, by area, in the order the generator writes them.
VECTOR_AREAS: Final = (
    "cbor",
    "ed25519",
    "identity",
    "envelope",
    "framing",
    "node_ping",
    "dht_geometry",
    "dht_records",
    "dht_lookup",
    "dht_messages",
    "dht_node",
    "capacity",
    "voice",
    "rooms",
    "bootstrap",
    "storeforward",
    "abuse",
    "traversal",
    "relays",
    "privacy",
)

#: A vector file or one of its parts, as parsed JSON.
JsonObject = dict[str, Any]


def _package_dir(name: str) -> Traversable:
    return resources.files("railgun_ref.conformance").joinpath(name)


def vector_file_name(area: str) -> str:
    return f"{area}.json"


def schema_file_name(area: str) -> str:
    return f"{area}_schema.json"


def load_vectors(area: str) -> JsonObject:
    """Parse the committed vector file of `area` (e.g. ``"cbor"``)."""
    text = _package_dir("vectors").joinpath(vector_file_name(area)).read_text(encoding="utf-8")
    document: JsonObject = json.loads(text)
    return document


def load_schema(area: str) -> JsonObject:
    """Parse the JSON schema that `area`'s vector file names."""
    text = _package_dir("schemas").joinpath(schema_file_name(area)).read_text(encoding="utf-8")
    document: JsonObject = json.loads(text)
    return document


def read_committed(area: str) -> str | None:
    """The committed text of `area`'s vector file, or None if it does not exist."""
    path = _package_dir("vectors").joinpath(vector_file_name(area))
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8")


def render_json(document: JsonObject) -> str:
    """The one textual form of a vector file: 2-space indent, UTF-8, final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def address_json(address: Address) -> JsonObject:
    return {"host": address[0], "port": address[1]}


def address_from_json(value: JsonObject) -> Address:
    return (str(value["host"]), int(value["port"]))


def diagnostic(value: object) -> str:
    """RFC 8949 §8 diagnostic notation of a value of the ENC-1.2 data model."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return f"h'{value.hex()}'"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(diagnostic(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{diagnostic(k)}: {diagnostic(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"{type(value).__name__} is outside the ENC-1.2 data model")


def event_json(event: NodeEvent) -> JsonObject:
    """A node event as vectors record it: its spec name and fields (OBS-1.1, `observations`).

    Field values are those of `railgun_ref.trace.record_event`, except that
    ``request_id`` is a decimal string (see the module docstring).
    """
    record = record_event(NodeId(b"\x00" * 32), 0.0, event)
    data = dict(record.data)
    if "request_id" in data:
        data["request_id"] = str(data["request_id"])
    return spec_event(record.event, data)


def message_summary(data: bytes) -> JsonObject:
    """What an envelope a node emitted says, for readers and for byte-blind comparison.

    ERROR reason texts are informative (MSG-3.1), so an implementation whose
    texts differ compares ERROR replies by this summary instead of by bytes.
    """
    envelope = decode_envelope(data, max_size=MAX_STREAM_MESSAGE_SIZE)
    summary: JsonObject = {
        "messageType": MessageType(envelope.type).name,
        "requestId": str(envelope.request_id),
        "timestampMs": envelope.timestamp_ms,
    }
    message = parse_message(envelope)
    if isinstance(message, ErrorReply):
        known = message.code in ErrorCode._value2member_map_
        summary["errorCode"] = ErrorCode(message.code).name if known else message.code
    elif isinstance(message, Pong):
        summary["observed"] = address_json(message.observed)
    return summary


def stream_target_json(target: StreamTarget) -> JsonObject:
    if isinstance(target, tuple):
        return {"address": address_json(target)}
    return {"connection": int(target)}


@dataclass(frozen=True, slots=True)
class Outputs:
    """A node's drained actions, sorted by kind (each list in the order the node produced it)."""

    datagrams: list[tuple[bytes, Address]] = field(default_factory=list)
    streams: list[tuple[bytes, StreamTarget]] = field(default_factory=list)
    events: list[NodeEvent] = field(default_factory=list)


def take_outputs(node: Node) -> Outputs:
    """Drain `node.next_action()` until None (CORE-1.4), sorting the actions by kind."""
    out = Outputs()
    while (action := node.next_action()) is not None:
        match action:
            case SendDatagram(data=data, address=address):
                out.datagrams.append((data, address))
            case SendStreamMessage(data=data, target=target):
                out.streams.append((data, target))
            case EmitEvent(event=event):
                out.events.append(event)
            case _:
                assert_never(action)
    return out


class OutputTap:
    """Drains a node and hands its actions out one kind at a time, holding the others.

    For scripts and tests that look at a node's datagrams now and its events
    later: each call drains the node first, so nothing is lost or reordered
    within a kind.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self._held = Outputs()

    def _pull(self) -> Outputs:
        taken = take_outputs(self.node)
        self._held.datagrams.extend(taken.datagrams)
        self._held.streams.extend(taken.streams)
        self._held.events.extend(taken.events)
        return self._held

    def datagrams(self) -> list[tuple[bytes, Address]]:
        held = self._pull().datagrams
        out = list(held)
        held.clear()
        return out

    def streams(self) -> list[tuple[bytes, StreamTarget]]:
        held = self._pull().streams
        out = list(held)
        held.clear()
        return out

    def events(self) -> list[NodeEvent]:
        held = self._pull().events
        out = list(held)
        held.clear()
        return out


def drain(node: Node) -> JsonObject:
    """Everything `node` has to say after one input, in the form node vectors record it.

    The generator and the runner both call this, so they can differ only in
    what the node did, never in how it is written down.
    """
    out = take_outputs(node)
    datagrams = [
        {"to": address_json(address), "data": data.hex(), **message_summary(data)}
        for data, address in out.datagrams
    ]
    streams = [
        {"to": stream_target_json(target), "data": data.hex(), **message_summary(data)}
        for data, target in out.streams
    ]
    return {
        "datagrams": datagrams,
        "streamMessages": streams,
        "events": [event_json(event) for event in out.events],
        "requestsInFlight": node.requests_in_flight,
    }


#: Counter name prefixes of the base protocol that node vectors record (NODE-1.1).
BASE_COUNTER_PREFIXES: Final = (
    "rx.",
    "tx.",
    "rejected.",
    "request.",
    "ping.",
    "pong.",
    "error.",
    "reply.",
)


def base_counters(counters: Mapping[str, int]) -> dict[str, int]:
    """The base-protocol counters under their spec names (OBS-1.2), sorted; component
    counters (``dht.*``) left out."""
    return dict(
        sorted(
            (spec_counter(name), value)
            for name, value in counters.items()
            if name.startswith(BASE_COUNTER_PREFIXES) and value
        )
    )


#: The body parsers of the DHT message types (DHT-7.x), by type number.
DHT_BODY_PARSERS: Final[Mapping[int, Any]] = {
    MessageType.COOKIE: Cookie,  # ABUSE-2.2: answers FIND_NODE / FIND_VALUE
    MessageType.FIND_NODE: FindNode,
    MessageType.NODES: Nodes,
    MessageType.FIND_VALUE: FindValue,
    MessageType.VALUE: Value,
    MessageType.STORE: Store,
    MessageType.STORED: Stored,
}


def parse_dht_body(msg_type: int, body: object) -> Message:
    """Parse the body map of a DHT message; raises RemoteProtocolError (MALFORMED) if wrong."""
    if not isinstance(body, dict):
        raise RemoteProtocolError(ErrorCode.MALFORMED, "a body is a map")
    message: Message = DHT_BODY_PARSERS[msg_type].from_body(body)
    return message


def _contacts_json(contacts: tuple[WireContact, ...]) -> list[JsonObject]:
    return [{"nodeId": node_id.hex(), "host": a[0], "port": a[1]} for node_id, a in contacts]


def _cookie_json(cookie: bytes) -> JsonObject:
    return {"cookie": cookie.hex()} if cookie else {}


def dht_message_json(message: Message) -> JsonObject:
    """What a parsed DHT message (types 16..21) says, in the JSON form dht vectors use.

    Records inside VALUE and STORE are the hex of their own CBOR encoding.
    """
    match message:
        case FindNode():
            return {"target": message.target.hex(), **_cookie_json(message.cookie)}
        case FindValue():
            return {"key": message.key.hex(), **_cookie_json(message.cookie)}
        case Cookie():
            return {"cookie": message.cookie.hex()}
        case Nodes():
            return {"contacts": _contacts_json(message.contacts)}
        case Value():
            return {
                "records": [cbor.encode(record).hex() for record in message.records],
                "contacts": _contacts_json(message.contacts),
                "truncated": message.truncated,
            }
        case Store():
            return {"record": cbor.encode(message.record).hex()}
        case Stored():
            return {"status": message.status.name}
    raise TypeError(f"{type(message).__name__} is not a DHT message")


def sf_run_script(
    config: StoreForwardConfig,
    holder_id: NodeId,
    steps: list[JsonObject],
    after_step: Callable[[StorageHolder, JsonObject], None],
) -> StorageHolder:
    """SfHolderScriptTest: a holder made at the first step's time, fed every step in order."""
    holder = StorageHolder(
        holder_id, authoriser=VectorAuthoriser(), config=config, now=steps[0]["now"]
    )
    for step in steps:
        if step["input"] is None:
            holder.on_timer(now=step["now"])
        else:
            peer = NodeId(bytes.fromhex(step["peer"]))
            holder.receive(bytes.fromhex(step["input"]), peer=peer, now=step["now"])
        after_step(holder, step)
    return holder


def sf_observe(holder: StorageHolder) -> JsonObject:
    """SfHolderScriptTest: what a step expects: actions drained, ids held, the refusal."""
    actions: list[JsonObject] = []
    while (action := holder.next_action()) is not None:
        actions.append(action.to_json())
    return {
        "actions": actions,
        "held": sorted(i.hex() for i in holder.held),
        "tombstoned": sorted({i.hex() for i, _ in holder.tombstones}),
        "refusal": None if holder.last_refusal is None else holder.last_refusal.name,
    }


def traversal_json(message: m.TraversalMessage) -> JsonObject:
    """The JSON form of a decoded traversal message (NAT-2; what the vectors compare)."""
    match message:
        case m.Register():
            return {"kind": "REGISTER"}
        case m.Observed(address=address):
            return {"kind": "OBSERVED", "address": list(address)}
        case m.Relay(to=to, inner=inner):
            return {"kind": "RELAY", "to": to.hex(), "inner": inner.hex()}
        case m.Connect(nonce=nonce, addresses=addresses, nat=nat):
            return {
                "kind": "CONNECT",
                "nonce": nonce.hex(),
                "addresses": [list(a) for a in addresses],
                "nat": nat.value,
            }
        case m.Sync(nonce=nonce, attempt=attempt, plan=plan):
            return {"kind": "SYNC", "nonce": nonce.hex(), "attempt": attempt, "plan": plan.value}
        case m.Punch(nonce=nonce, attempt=attempt):
            return {"kind": "PUNCH", "nonce": nonce.hex(), "attempt": attempt}
        case m.PunchAck(nonce=nonce, attempt=attempt):
            return {"kind": "PUNCH_ACK", "nonce": nonce.hex(), "attempt": attempt}
