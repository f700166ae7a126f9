"""Events a node reports to its driver and application (`EmitEvent` actions of `Node`).

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


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupFinished:
    """A FIND_NODE lookup ended (DHT-6.3). `peers` describes every peer it knew, for study."""

    query_id: int
    target: bytes
    closest: tuple[tuple[NodeId, Address], ...]  #: up to k that answered, nearest first
    queries: int
    failures: int
    late_answers: int
    hops: int  #: hop count at which the closest peer was learned (seeds are hop 1)
    started_at: float
    duration: float
    peers: tuple[dict[str, object], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GetFinished:
    """`get(key)` ended: the valid records found, newest per publisher (DHT-8.3)."""

    query_id: int
    key: bytes
    records: tuple[bytes, ...]  #: encoded records (deterministic CBOR), ordered by publisher id
    found: bool
    queries: int
    failures: int
    hops: int
    started_at: float
    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreFinished:
    """`store(...)` ended: how many of the k closest nodes accepted the record (DHT-8.1)."""

    query_id: int
    key: bytes
    accepted: int
    refused: int
    failed: int
    started_at: float
    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordStored:
    """This node now holds `record` (CBOR): a driver with a disk persists it (DHT-4.5)."""

    key: bytes
    publisher_id: NodeId
    record: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordDropped:
    """This node no longer holds the record of `publisher_id` under `key` (expired/replaced)."""

    key: bytes
    publisher_id: NodeId
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AppMessageReceived:
    """APP-1.3: an authenticated application message for `topic` arrived from `sender`."""

    sender: NodeId
    address: Address
    topic: int
    payload: bytes
    channel: Channel


NodeEvent = (
    PingReceived
    | PongReceived
    | RequestTimedOut
    | ErrorReceived
    | MessageRejected
    | LookupFinished
    | GetFinished
    | StoreFinished
    | RecordStored
    | RecordDropped
    | AppMessageReceived
)
