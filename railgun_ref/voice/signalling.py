"""Voice call signalling messages (VOICE-6.1): their deterministic CBOR encoding, sans-IO.

The driver `railgun_ref.drivers.voice_signalling` carries them on the node's
application channel; see its docstring for the layout and the call flow.
`decode_message` raises only `RemoteProtocolError`, whatever the bytes.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, assert_never

from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import NodeId, parse_node_id
from railgun_ref.wire import cbor

#: The version of the voice signalling messages (VOICE-6.1).
SIGNALLING_VERSION: Final = 1
#: Longest SDP accepted, in characters (a 16-stream offer is about 10 000).
MAX_SDP_SIZE: Final = 60_000
#: Most streams one media link may carry in one direction.
MAX_STREAMS: Final = 256
#: Longest accepted mid (RFC 8843 identification-tag), in characters.
MAX_MID_SIZE: Final = 32
#: Call ids are this many bytes.
CALL_ID_SIZE: Final = 16


class MessageType(IntEnum):
    OFFER = 1
    ANSWER = 2
    REPLAN = 3
    RING = 4
    JOIN = 5
    PLAN = 6
    TURN_REQUEST = 7
    TURN_GRANT = 8


class _Key(IntEnum):
    VERSION = 0
    TYPE = 1
    CALL = 2
    EPOCH = 3
    SDP = 4
    FORWARD = 5
    BACKWARD = 6
    GONE = 7
    ROOM = 8
    MEDIA = 9
    TOPOLOGY = 10
    PARTICIPANTS = 11
    HOSTS = 12
    ASSIGNMENT = 13
    TURN_HOST = 14
    TURN_PORT = 15
    USERNAME = 16
    PASSWORD = 17
    EXPIRES = 18


#: Longest accepted room id, in bytes (closed rooms use 32).
MAX_ROOM_ID_SIZE: Final = 64
#: Media flags of RING and JOIN.
MEDIA_AUDIO: Final = 1
MEDIA_VIDEO: Final = 2
#: The topologies a PLAN may name (VOICE-1.1 wire values).
PLAN_TOPOLOGIES: Final = frozenset({"mesh", "sfu", "distributed-sfu"})


#: (mid, source node id): which transceiver carries which participant's audio.
StreamMap = tuple[tuple[str, NodeId], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """The offerer's SDP and which of its transceivers carry whose audio."""

    call_id: bytes
    epoch: int
    sdp: str
    #: Streams the offerer sends to the answerer (mid, source).
    forward: StreamMap
    #: Streams the offerer expects from the answerer (mid, source).
    backward: StreamMap


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    call_id: bytes
    epoch: int
    sdp: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Replan:
    """Call control: the sender moved to plan `epoch` because `gone` vanished."""

    call_id: bytes
    epoch: int
    gone: tuple[NodeId, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Ring:
    """Call control: the sender started call `call_id` in room `room_id` (VOICE-6.2)."""

    call_id: bytes
    room_id: bytes
    media: int
    epoch: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Join:
    """Call control: the sender asks to take part in call `call_id` (VOICE-6.3)."""

    call_id: bytes
    room_id: bytes
    media: int
    epoch: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanMessage:
    """Call control: the call's coordinator moved the call to this plan (VOICE-6.4)."""

    call_id: bytes
    epoch: int
    topology: str
    participants: tuple[NodeId, ...]
    hosts: tuple[NodeId, ...]
    assignment: tuple[tuple[NodeId, NodeId], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnRequest:
    """A room member asks a TURN peer for a credential (TURN-2.3); `call_id` is the
    request's id, echoed by the grant."""

    call_id: bytes
    room_id: bytes
    epoch: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnGrant:
    """A TURN peer's answer: where its server listens and the member's credential."""

    call_id: bytes
    room_id: bytes
    host: str
    port: int
    username: str
    password: str
    expires_at: int
    epoch: int = 0


#: Longest TURN host, user name or password accepted, in characters.
MAX_TURN_TEXT: Final = 255

SignalMessage = Offer | Answer | Replan | Ring | Join | PlanMessage | TurnRequest | TurnGrant


def _encode_streams(streams: StreamMap) -> list[list[object]]:
    return [[mid, bytes(source)] for mid, source in streams]


def encode_message(message: SignalMessage) -> bytes:
    """The deterministic CBOR encoding of `message`."""
    if len(message.call_id) != CALL_ID_SIZE:
        raise LocalProtocolError(f"call id must be {CALL_ID_SIZE} bytes")
    if message.epoch < 0:
        raise LocalProtocolError("epoch must be >= 0")
    body: dict[int, object] = {
        _Key.VERSION: SIGNALLING_VERSION,
        _Key.CALL: message.call_id,
        _Key.EPOCH: message.epoch,
    }
    match message:
        case Offer():
            body[_Key.TYPE] = MessageType.OFFER
            body[_Key.SDP] = message.sdp
            body[_Key.FORWARD] = _encode_streams(message.forward)
            body[_Key.BACKWARD] = _encode_streams(message.backward)
        case Answer():
            body[_Key.TYPE] = MessageType.ANSWER
            body[_Key.SDP] = message.sdp
        case Replan():
            body[_Key.TYPE] = MessageType.REPLAN
            body[_Key.GONE] = [bytes(node) for node in message.gone]
        case Ring() | Join():
            body[_Key.TYPE] = MessageType.RING if isinstance(message, Ring) else MessageType.JOIN
            body[_Key.ROOM] = message.room_id
            body[_Key.MEDIA] = message.media
        case PlanMessage():
            body[_Key.TYPE] = MessageType.PLAN
            body[_Key.TOPOLOGY] = message.topology
            body[_Key.PARTICIPANTS] = [bytes(node) for node in message.participants]
            body[_Key.HOSTS] = [bytes(node) for node in message.hosts]
            body[_Key.ASSIGNMENT] = [[bytes(p), bytes(h)] for p, h in message.assignment]
        case TurnRequest():
            body[_Key.TYPE] = MessageType.TURN_REQUEST
            body[_Key.ROOM] = message.room_id
        case TurnGrant():
            body[_Key.TYPE] = MessageType.TURN_GRANT
            body[_Key.ROOM] = message.room_id
            body[_Key.TURN_HOST] = message.host
            body[_Key.TURN_PORT] = message.port
            body[_Key.USERNAME] = message.username
            body[_Key.PASSWORD] = message.password
            body[_Key.EXPIRES] = message.expires_at
        case _:
            assert_never(message)
    return cbor.encode({int(k): v for k, v in sorted(body.items())})


def _malformed(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, f"voice signalling: {reason}")


def _field(body: Mapping[int, object], key: _Key, kind: type) -> object:
    value = body.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _malformed(f"field {key.name.lower()} missing or not {kind.__name__}")
    return value


def _decode_streams(value: object) -> StreamMap:
    if not isinstance(value, list) or len(value) > MAX_STREAMS:
        raise _malformed("stream list must be a list of at most 256 entries")
    streams: list[tuple[str, NodeId]] = []
    for entry in value:
        if not (isinstance(entry, list) and len(entry) == 2):
            raise _malformed("stream entry must be [mid, source]")
        mid, source = entry
        if not isinstance(mid, str) or not 0 < len(mid) <= MAX_MID_SIZE:
            raise _malformed("mid must be 1..32 characters")
        if not isinstance(source, bytes):
            raise _malformed("stream source must be a node id")
        streams.append((mid, parse_node_id(source)))
    if len({mid for mid, _ in streams}) != len(streams):
        raise _malformed("duplicate mid in a stream list")
    return tuple(streams)


def _decode_nodes(value: object) -> tuple[NodeId, ...]:
    if not isinstance(value, list) or len(value) > MAX_STREAMS:
        raise _malformed("node list must be a list of at most 256 node ids")
    nodes = []
    for node in value:
        if not isinstance(node, bytes):
            raise _malformed("node list must hold node ids")
        nodes.append(parse_node_id(node))
    return tuple(nodes)


def _decode_ring(body: Mapping[int, object], kind: int, call_id: bytes, epoch: int) -> Ring | Join:
    room_id = _field(body, _Key.ROOM, bytes)
    media = _field(body, _Key.MEDIA, int)
    assert isinstance(room_id, bytes) and isinstance(media, int)
    if not 0 < len(room_id) <= MAX_ROOM_ID_SIZE:
        raise _malformed("room id must be 1..64 bytes")
    if media & ~(MEDIA_AUDIO | MEDIA_VIDEO) or not media or epoch != 0:
        raise _malformed("media must be a non-empty set of audio/video, epoch 0")
    if kind == MessageType.RING:
        return Ring(call_id=call_id, room_id=room_id, media=media)
    return Join(call_id=call_id, room_id=room_id, media=media)


def _decode_plan(body: Mapping[int, object], call_id: bytes, epoch: int) -> PlanMessage:
    topology = _field(body, _Key.TOPOLOGY, str)
    if topology not in PLAN_TOPOLOGIES:
        raise _malformed(f"unknown topology {topology!r}")
    participants = _decode_nodes(body.get(_Key.PARTICIPANTS))
    hosts = _decode_nodes(body.get(_Key.HOSTS))
    pairs = body.get(_Key.ASSIGNMENT)
    if not isinstance(pairs, list) or len(pairs) > MAX_STREAMS:
        raise _malformed("assignment must be a list of [participant, host]")
    assignment = []
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise _malformed("assignment entry must be [participant, host]")
        nodes = _decode_nodes(pair)
        assignment.append((nodes[0], nodes[1]))
    members = set(participants)
    if (
        not participants
        or list(participants) != sorted(members)
        or not set(hosts) <= members
        or len(set(hosts)) != len(hosts)
        or (topology == "mesh") != (not hosts)
        or {p for p, _ in assignment} != (members if hosts else set())
        or len(assignment) != len({p for p, _ in assignment})
        or any(h not in hosts for _, h in assignment)
    ):
        raise _malformed("plan breaks VOICE-1.1")
    return PlanMessage(
        call_id=call_id,
        epoch=epoch,
        topology=str(topology),
        participants=participants,
        hosts=hosts,
        assignment=tuple(assignment),
    )


def _text(body: Mapping[int, object], key: _Key) -> str:
    value = _field(body, key, str)
    assert isinstance(value, str)
    if not 0 < len(value) <= MAX_TURN_TEXT:
        raise _malformed(f"{key.name.lower()} must be 1..{MAX_TURN_TEXT} characters")
    return value


def _decode_turn(
    body: Mapping[int, object], kind: int, call_id: bytes, epoch: int
) -> TurnRequest | TurnGrant:
    room_id = _field(body, _Key.ROOM, bytes)
    assert isinstance(room_id, bytes)
    if not 0 < len(room_id) <= MAX_ROOM_ID_SIZE or epoch != 0:
        raise _malformed("room id must be 1..64 bytes, epoch 0")
    if kind == MessageType.TURN_REQUEST:
        return TurnRequest(call_id=call_id, room_id=room_id)
    port = _field(body, _Key.TURN_PORT, int)
    expires = _field(body, _Key.EXPIRES, int)
    assert isinstance(port, int) and isinstance(expires, int)
    if not 0 < port <= 0xFFFF or expires < 0:
        raise _malformed("port must be 1..65535 and the expiry a Unix time")
    return TurnGrant(
        call_id=call_id,
        room_id=room_id,
        host=_text(body, _Key.TURN_HOST),
        port=port,
        username=_text(body, _Key.USERNAME),
        password=_text(body, _Key.PASSWORD),
        expires_at=expires,
    )


def decode_message(data: bytes) -> SignalMessage:
    """Parse one signalling message; raises only `RemoteProtocolError`."""
    body = cbor.decode(data)
    if not isinstance(body, dict):
        raise _malformed("message must be a map")
    version = _field(body, _Key.VERSION, int)
    if version != SIGNALLING_VERSION:
        raise RemoteProtocolError(
            ErrorCode.UNSUPPORTED_VERSION, f"voice signalling version {version}"
        )
    kind = _field(body, _Key.TYPE, int)
    call_id = _field(body, _Key.CALL, bytes)
    epoch = _field(body, _Key.EPOCH, int)
    assert isinstance(call_id, bytes) and isinstance(epoch, int)
    if len(call_id) != CALL_ID_SIZE:
        raise _malformed(f"call id must be {CALL_ID_SIZE} bytes")
    if epoch < 0:
        raise _malformed("epoch must be >= 0")
    allowed = {_Key.VERSION, _Key.TYPE, _Key.CALL, _Key.EPOCH}
    message: SignalMessage
    if kind in (MessageType.OFFER, MessageType.ANSWER):
        sdp = _field(body, _Key.SDP, str)
        assert isinstance(sdp, str)
        if len(sdp) > MAX_SDP_SIZE:
            raise RemoteProtocolError(ErrorCode.TOO_LARGE, "SDP too long")
        allowed.add(_Key.SDP)
        if kind == MessageType.OFFER:
            allowed |= {_Key.FORWARD, _Key.BACKWARD}
            message = Offer(
                call_id=call_id,
                epoch=epoch,
                sdp=sdp,
                forward=_decode_streams(body.get(_Key.FORWARD)),
                backward=_decode_streams(body.get(_Key.BACKWARD)),
            )
        else:
            message = Answer(call_id=call_id, epoch=epoch, sdp=sdp)
    elif kind == MessageType.REPLAN:
        allowed.add(_Key.GONE)
        message = Replan(call_id=call_id, epoch=epoch, gone=_decode_nodes(body.get(_Key.GONE)))
    elif kind in (MessageType.RING, MessageType.JOIN):
        allowed |= {_Key.ROOM, _Key.MEDIA}
        assert isinstance(kind, int)
        message = _decode_ring(body, kind, call_id, epoch)
    elif kind == MessageType.PLAN:
        allowed |= {_Key.TOPOLOGY, _Key.PARTICIPANTS, _Key.HOSTS, _Key.ASSIGNMENT}
        message = _decode_plan(body, call_id, epoch)
    elif kind in (MessageType.TURN_REQUEST, MessageType.TURN_GRANT):
        allowed.add(_Key.ROOM)
        if kind == MessageType.TURN_GRANT:
            allowed |= {_Key.TURN_HOST, _Key.TURN_PORT, _Key.USERNAME}
            allowed |= {_Key.PASSWORD, _Key.EXPIRES}
        assert isinstance(kind, int)
        message = _decode_turn(body, kind, call_id, epoch)
    else:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_TYPE, f"voice message type {kind}")
    extra = set(body) - {int(k) for k in allowed}
    if extra:
        raise _malformed(f"unexpected fields {sorted(extra)}")
    return message


def to_json(message: SignalMessage) -> dict[str, object]:
    """The JSON form of `message` used by the conformance vectors (ids and bytes in hex)."""

    def streams(value: StreamMap) -> list[list[str]]:
        return [[mid, source.hex()] for mid, source in value]

    out: dict[str, object] = {"callId": message.call_id.hex(), "epoch": message.epoch}
    match message:
        case Offer():
            out |= {"type": "offer", "sdp": message.sdp}
            out |= {"forward": streams(message.forward), "backward": streams(message.backward)}
        case Answer():
            out |= {"type": "answer", "sdp": message.sdp}
        case Replan():
            out |= {"type": "replan", "gone": [node.hex() for node in message.gone]}
        case Ring() | Join():
            out["type"] = "ring" if isinstance(message, Ring) else "join"
            out |= {"roomId": message.room_id.hex(), "media": message.media}
        case PlanMessage():
            out |= {"type": "plan", "topology": message.topology}
            out["participants"] = [node.hex() for node in message.participants]
            out["hosts"] = [node.hex() for node in message.hosts]
            out["assignment"] = [[p.hex(), h.hex()] for p, h in message.assignment]
        case TurnRequest():
            out |= {"type": "turn-request", "roomId": message.room_id.hex()}
        case TurnGrant():
            out |= {"type": "turn-grant", "roomId": message.room_id.hex()}
            out |= {"host": message.host, "port": message.port, "username": message.username}
            out |= {"password": message.password, "expiresAt": message.expires_at}
        case _:
            assert_never(message)
    return out
