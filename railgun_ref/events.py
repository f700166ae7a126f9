"""Events a node reports to its driver and application (`Node.next_event()`).

A closed set of frozen values (h11 / wsproto style): consumers dispatch with
`match` and `assert_never`. Times are in the node's `now` units (seconds).
"""

from dataclasses import dataclass

from railgun_ref.core.errors import ErrorCode
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.rpc.requests import Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class PingReceived:
    peer_id: NodeId
    address: Address
    request_id: int
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class PongReceived:
    peer_id: NodeId
    address: Address
    request_id: int
    channel: Channel
    rtt: float  #: seconds from sending the PING to receiving this PONG
    observed: Address  #: our address as the peer saw it
    payload_size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestTimedOut:
    request_id: int
    address: Address
    kind: int  #: the MessageType of the request
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorReceived:
    peer_id: NodeId
    address: Address
    request_id: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRejected:
    """Something a peer sent was refused (and counted); the node keeps serving."""

    address: Address
    channel: Channel
    code: ErrorCode
    reason: str


NodeEvent = PingReceived | PongReceived | RequestTimedOut | ErrorReceived | MessageRejected
