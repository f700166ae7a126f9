"""`Node` and `Dht` are protocol cores (CORE-1): one pull-only action union each,
in the order they were produced, with typed counters under the flat names vectors use.
"""

import random

from railgun_ref.conformance.common import take_outputs
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import label_text
from railgun_ref.core.errors import ErrorCode
from railgun_ref.dht.service import DhtAction, SendDhtRequest
from railgun_ref.events import RecordStored
from railgun_ref.node import EmitEvent, Node, NodeAction, NodeCounter, SendDatagram
from railgun_ref.rpc.labels import MessageName, UnknownCode, error_label
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.messages import FindNode, MessageType, Store

from .dht.helpers import record
from .pairs import T0, NodePair, identity

PEER = ("127.0.0.1", 40100)


def fresh_node() -> Node:
    return Node(identity(1), rng=random.Random(1), now=T0)


def test_node_and_dht_satisfy_the_core_contract() -> None:
    """CORE-1: the node and its DHT type-check as `ProtocolCore` of their own unions."""
    node = fresh_node()
    core: ProtocolCore[NodeAction] = node
    dht_core: ProtocolCore[DhtAction] = node.dht
    assert core.next_action() is None  # a new node has nothing to say
    assert dht_core.next_action() is None
    assert core.next_deadline() == dht_core.next_deadline()  # only DHT maintenance is due


def test_a_dht_request_becomes_one_tracked_signed_datagram() -> None:
    """The DHT draws the request id; the node signs, sends and tracks it (RPC-1.2)."""
    node = fresh_node()
    peer = identity(2)
    ping = encode_envelope(
        peer, type=MessageType.PING, request_id=5, timestamp_ms=int(T0 * 1000), body={}
    )
    node.receive_datagram(ping, PEER, now=T0)
    take_outputs(node)
    node.dht.find_node(bytes(32), now=T0 + 1)
    action = node.next_action()
    assert isinstance(action, SendDatagram) and action.address == PEER
    envelope = decode_envelope(action.data)
    assert envelope.type == MessageType.FIND_NODE and envelope.sender_id == node.node_id
    assert node.requests_in_flight == 1
    assert node.counters.get_count(NodeCounter.REQUEST, MessageName.FIND_NODE) == 1
    assert node.next_action() is None


def test_the_dht_alone_queues_requests_for_its_owner() -> None:
    """The DHT never calls out: what it would send waits in `next_action()`."""
    node = fresh_node()
    node.dht.observe(identity(2).node_id, PEER, now=T0)
    node.dht.find_node(bytes(32), now=T0)
    action = node.dht.next_action()
    assert isinstance(action, SendDhtRequest)
    assert action.message == FindNode(target=bytes(32)) and action.address == PEER
    assert action.sent_at == T0 and action.expected_peer == identity(2).node_id


def test_record_stored_is_drained_before_the_stored_reply() -> None:
    """DHT-4.5: a driver sees `RecordStored` (and may persist it) before the STORED leaves."""
    node = fresh_node()
    held = record(identity(3))
    body = Store(record=held.to_cbor_value()).to_body()
    data = encode_envelope(
        identity(3), type=MessageType.STORE, request_id=9, timestamp_ms=int(T0 * 1000), body=body
    )
    node.receive_datagram(data, PEER, now=T0)
    actions = []
    while (action := node.next_action()) is not None:
        actions.append(action)
    kinds = [
        type(a.event).__name__ if isinstance(a, EmitEvent) else type(a).__name__ for a in actions
    ]
    assert kinds.index(RecordStored.__name__) < kinds.index(SendDatagram.__name__)
    (reply,) = [a for a in actions if isinstance(a, SendDatagram)]
    assert decode_envelope(reply.data).type == MessageType.STORED


def test_counters_keep_the_flat_names_node_vectors_record() -> None:
    """NODE-1.1: ``rx.datagram``, ``ping.answered``, ``rejected.<CODE>`` in upper case."""
    pair = NodePair()
    pair.a.ping(pair.ADDR_B, now=T0)
    pair.pump(now=T0)
    pair.b.receive_datagram(b"garbage", pair.ADDR_A, now=T0)
    flat = pair.b.counters.snapshot()
    assert flat["rx.datagram"] == 2 and flat["ping.answered"] == 1
    assert flat["rejected.MALFORMED"] == 1
    assert pair.b.counters.get_count(NodeCounter.REJECTED, ErrorCode.MALFORMED) == 1
    assert pair.a.counters.snapshot()["request.ping"] == 1


def test_error_codes_label_counters_by_their_names() -> None:
    """ERR-1.1: a wire error code labels a counter as its own name; an undefined one as UNKNOWN."""
    assert all(error_label(code) is code for code in ErrorCode)
    assert [label_text(code) for code in ErrorCode] == [code.name for code in ErrorCode]
    assert error_label(999) is UnknownCode.UNKNOWN
    assert label_text(error_label(999)) == "UNKNOWN"


def test_message_names_mirror_the_message_types() -> None:
    """NODE-1.1: ``request.<name>`` counters use MSG-1.1 type names in lower case."""
    assert [name.name for name in MessageName] == [t.name for t in MessageType]
    assert all(MessageName.of(t).value == t.name.lower() for t in MessageType)
