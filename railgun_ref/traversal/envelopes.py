"""NAT-1: traversal messages in signed envelopes (APP topic `APP_TOPIC_TRAVERSAL`)."""

from dataclasses import dataclass

from railgun_ref.core.constants import APP_TOPIC_TRAVERSAL
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.identity.keys import Identity
from railgun_ref.traversal import messages
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.messages import AppMessage, MessageType


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """An authenticated traversal message: who signed it, and what it says."""

    sender: NodeId
    message: messages.TraversalMessage


def seal(identity: Identity, message: messages.TraversalMessage, *, now: float, seq: int) -> bytes:
    """`message` signed by `identity` (`seq`: the envelope's request id)."""
    body = AppMessage(topic=APP_TOPIC_TRAVERSAL, payload=messages.encode(message)).to_body()
    return encode_envelope(
        identity,
        type=MessageType.APP,
        request_id=seq,
        timestamp_ms=int(now * 1000),
        body=body,
    )


def open_envelope(data: bytes) -> Received:
    """Authenticate and parse; `RemoteProtocolError` for anything that is not one."""
    envelope = decode_envelope(data)
    if envelope.type != MessageType.APP:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "not an APP envelope")
    app = AppMessage.from_body(envelope.body)
    if app.topic != APP_TOPIC_TRAVERSAL:
        raise RemoteProtocolError(ErrorCode.MALFORMED, f"APP topic {app.topic} is not traversal")
    return Received(sender=envelope.sender_id, message=messages.decode(app.payload))
