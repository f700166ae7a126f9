"""Wire format: deterministic CBOR, the signed envelope, messages, stream framing."""

from railgun_ref.wire.envelope import ENVELOPE_DOMAIN, Envelope, decode_envelope, encode_envelope
from railgun_ref.wire.framing import FrameDecoder, encode_frame
from railgun_ref.wire.messages import (
    ErrorReply,
    Message,
    MessageType,
    Ping,
    Pong,
    parse_message,
)

__all__ = [
    "ENVELOPE_DOMAIN",
    "Envelope",
    "ErrorReply",
    "FrameDecoder",
    "Message",
    "MessageType",
    "Ping",
    "Pong",
    "decode_envelope",
    "encode_envelope",
    "encode_frame",
    "parse_message",
]
