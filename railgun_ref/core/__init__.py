"""Shared vocabulary of every protocol core: ids, errors, constants. No IO."""

from railgun_ref.core.constants import (
    MAX_DATAGRAM_SIZE,
    MAX_STREAM_MESSAGE_SIZE,
    NODE_ID_SIZE,
    PROTOCOL_VERSION,
)
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId, node_id_from_hex, parse_node_id

__all__ = [
    "MAX_DATAGRAM_SIZE",
    "MAX_STREAM_MESSAGE_SIZE",
    "NODE_ID_SIZE",
    "PROTOCOL_VERSION",
    "Address",
    "ErrorCode",
    "LocalProtocolError",
    "NodeId",
    "RemoteProtocolError",
    "node_id_from_hex",
    "parse_node_id",
]
