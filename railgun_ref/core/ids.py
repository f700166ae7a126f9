"""Identifiers (ID-1.1).

A `NodeId` is 32 bytes: SHA-256 of the node's Ed25519 public key. It is a
`NewType` over `bytes` so the type checker keeps ids apart from other byte
strings while costing nothing at run time; `parse_node_id` is the only checked
way to make one from untrusted input.
"""

from typing import NewType

from railgun_ref.core.constants import NODE_ID_SIZE
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError

NodeId = NewType("NodeId", bytes)

#: A transport address: (IPv4/IPv6 literal, port). Cores treat it as opaque.
Address = tuple[str, int]


def parse_node_id(data: bytes) -> NodeId:
    """Check that `data` is a NodeId (exactly 32 bytes) received from a peer."""
    if len(data) != NODE_ID_SIZE:
        raise RemoteProtocolError(
            ErrorCode.MALFORMED, f"node id must be {NODE_ID_SIZE} bytes, got {len(data)}"
        )
    return NodeId(bytes(data))


def node_id_from_hex(text: str) -> NodeId:
    """Parse a NodeId written as 64 hex digits (for CLIs and vectors)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"not a hex node id: {text!r}") from exc
    if len(raw) != NODE_ID_SIZE:
        raise ValueError(f"a node id is {NODE_ID_SIZE} bytes, got {len(raw)}")
    return NodeId(raw)
