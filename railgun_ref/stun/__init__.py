"""STUN (RFC 8489 / RFC 5389) and RFC 5780 behaviour-discovery building blocks, sans-IO.

`codec` encodes and strictly decodes STUN messages; `server` answers Binding
requests the way an RFC 5780 server on two addresses and two ports does. The
drivers (`railgun_ref.drivers.stun_server`, `railgun_ref.drivers.sim_nat`) move
their bytes; the NAT classifier lives in `railgun_ref.capacity.nat`.
"""

from railgun_ref.stun.codec import (
    MessageClass,
    Method,
    StunErrorCode,
    StunMessage,
    decode_message,
    encode_message,
)
from railgun_ref.stun.server import (
    BindingServer,
    ServerAddresses,
    StunAction,
    StunCounter,
    StunReply,
)

__all__ = [
    "BindingServer",
    "MessageClass",
    "Method",
    "ServerAddresses",
    "StunAction",
    "StunCounter",
    "StunErrorCode",
    "StunMessage",
    "StunReply",
    "decode_message",
    "encode_message",
]
