"""Voice call signalling over our own node channels (no signalling server).

Theory of operation
-------------------
A call needs three kinds of messages between participants: the SDP offer and
answer of each WebRTC media link, and call control (a re-plan after a host
vanished). They travel as application messages on topic `APP_TOPIC_VOICE`
(APP-1.x): `NodeHost.send_app` carries them on the node's stream channel,
signed by the sender's node identity, and `NodeHost.app_inbox` hands them over
with the *authenticated* sender `NodeId`. Nothing here trusts a node id found
inside a payload for who sent it.

Every message is one deterministic CBOR map (ENC-1.x, integer keys) with a
version and a type tag:

    {0: version, 1: type, 2: call id (bytes), 3: epoch (uint), ...}

    OFFER   4: sdp (text), 5: offerer->answerer streams, 6: answerer->offerer
            streams; a stream list is [[mid (text), source node id (32 bytes)], ...]
    ANSWER  4: sdp (text)
    REPLAN  7: node ids the sender found gone (list of 32-byte ids); a participant
            hanging up sends one naming itself (VOICE-6.5)
    RING    8: room id, 9: media (bit 0 audio, bit 1 video)            (VOICE-6.2)
    JOIN    8: room id, 9: media                                         (VOICE-6.3)
    PLAN    10: topology (text), 11: participants (sorted ids),
            12: hosts (ids, best first), 13: assignment [[participant, host], ...]
                                                                         (VOICE-6.4)

`epoch` numbers the call plans of one call: every media link belongs to the
epoch of the plan that asked for it, so the old and new links of a
make-before-break switch between the same two nodes never get mixed up.

`decode_message` raises only `RemoteProtocolError` whatever the bytes; the
channel counts such messages (``signalling.malformed``) and drops them, so a
peer sending garbage never stops a call.

The media driver (`voice_media`) only needs `SignallingChannel`: `send` to a
node id and `receive` the next (sender, message). `NodeSignalling` is that
interface over a running `NodeHost` and a directory of participants'
addresses.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import Protocol

from anyio.streams.memory import MemoryObjectReceiveStream

from railgun_ref.core.constants import APP_TOPIC_VOICE
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.udp import NodeHost
from railgun_ref.events import AppMessageReceived
from railgun_ref.voice.signalling import (
    CALL_ID_SIZE,
    MAX_MID_SIZE,
    MAX_ROOM_ID_SIZE,
    MAX_SDP_SIZE,
    MAX_STREAMS,
    MEDIA_AUDIO,
    MEDIA_VIDEO,
    PLAN_TOPOLOGIES,
    SIGNALLING_VERSION,
    Answer,
    Join,
    MessageType,
    Offer,
    PlanMessage,
    Replan,
    Ring,
    SignalMessage,
    StreamMap,
    TurnGrant,
    TurnRequest,
    decode_message,
    encode_message,
)

#: The codec lives in the sans-IO `railgun_ref.voice.signalling`; re-exported here.
__all__ = [
    "CALL_ID_SIZE",
    "MAX_MID_SIZE",
    "MAX_ROOM_ID_SIZE",
    "MAX_SDP_SIZE",
    "MAX_STREAMS",
    "MEDIA_AUDIO",
    "MEDIA_VIDEO",
    "PLAN_TOPOLOGIES",
    "SIGNALLING_VERSION",
    "Answer",
    "Join",
    "MessageType",
    "NodeSignalling",
    "Offer",
    "PlanMessage",
    "Replan",
    "Ring",
    "SignalMessage",
    "SignallingChannel",
    "SignallingCounter",
    "StreamMap",
    "TurnGrant",
    "TurnRequest",
    "decode_message",
    "encode_message",
]


class SignallingChannel(Protocol):
    """What the media driver needs from signalling: addressed by node id."""

    @property
    def node_id(self) -> NodeId: ...

    async def send(self, peer: NodeId, message: SignalMessage) -> None: ...

    async def receive(self) -> tuple[NodeId, SignalMessage]: ...


class SignallingCounter(StrEnum):
    """What `NodeSignalling.counters` counts."""

    SENT = "signalling.sent"
    SEND_FAILED = "signalling.send_failed"  #: the peer's node is gone
    RECEIVED = "signalling.received"
    MALFORMED = "signalling.malformed"  #: dropped: it does not parse


class NodeSignalling:
    """`SignallingChannel` over a running `NodeHost`'s application messages.

    `directory` maps each participant's node id to its node address; a message
    to a node missing from it is a caller bug (`LocalProtocolError`). Messages
    that do not parse are dropped and counted in `counters`
    (``signalling.malformed``), as are send failures (``signalling.send_failed``:
    the peer's node is gone, which the call notices through its media).
    """

    def __init__(self, host: NodeHost, directory: Mapping[NodeId, Address]) -> None:
        self._host = host
        self._directory = dict(directory)
        self._inbox: MemoryObjectReceiveStream[AppMessageReceived] | None = None
        self.counters: Counters[SignallingCounter] = Counters()

    @property
    def node_id(self) -> NodeId:
        return self._host.node_id

    def add_peer(self, node: NodeId, address: Address) -> None:
        self._directory[node] = address

    async def send(self, peer: NodeId, message: SignalMessage) -> None:
        address = self._directory.get(peer)
        if address is None:
            raise LocalProtocolError(f"no address known for node {peer.hex()[:12]}")
        try:
            await self._host.send_app(address, APP_TOPIC_VOICE, encode_message(message))
        except (OSError, RuntimeError, LocalProtocolError):
            self.counters.inc(SignallingCounter.SEND_FAILED)
            raise
        self.counters.inc(SignallingCounter.SENT)

    async def receive(self) -> tuple[NodeId, SignalMessage]:
        self.subscribe()
        assert self._inbox is not None
        while True:
            received = await self._inbox.receive()
            try:
                message = decode_message(received.payload)
            except RemoteProtocolError:
                self.counters.inc(SignallingCounter.MALFORMED)
                continue
            self.counters.inc(SignallingCounter.RECEIVED)
            return received.sender, message

    def subscribe(self) -> None:
        """Open the inbox now, so messages arriving before the first `receive` are kept."""
        if self._inbox is None:
            self._inbox = self._host.app_inbox(APP_TOPIC_VOICE)
