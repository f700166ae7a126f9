"""NAT-6.3: traversal messages carried by the node: authenticated, handed over, and never
taken as the signer's contact address (a relay forwards them from its own, NAT-4.2)."""

import random

from railgun_ref.core.constants import APP_TOPIC_ROOM, APP_TOPIC_TRAVERSAL
from railgun_ref.events import AppMessageReceived
from railgun_ref.node import EmitEvent, Node
from railgun_ref.traversal import messages
from railgun_ref.traversal.envelopes import seal
from railgun_ref.traversal.punch import SendDatagram, TraversalCore, TraversalCounter
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.messages import AppMessage, MessageType

from ..pairs import T0, identity

RELAY = ("127.0.0.1", 40200)


def _events(node: Node) -> list[AppMessageReceived]:
    found = []
    while (action := node.next_action()) is not None:
        if isinstance(action, EmitEvent) and isinstance(action.event, AppMessageReceived):
            found.append(action.event)
    return found


def test_a_relayed_traversal_message_is_handed_over_but_not_a_contact() -> None:
    """DHT-5.1's exception: the sender is authenticated, its source is the relay's."""
    node = Node(identity(1), rng=random.Random(1), now=T0)
    signer = identity(2)
    data = seal(signer, messages.Register(), now=T0, seq=7)
    node.receive_datagram(data, RELAY, now=T0)
    [event] = _events(node)
    assert (event.sender, event.topic, event.address) == (
        signer.node_id,
        APP_TOPIC_TRAVERSAL,
        RELAY,
    )
    assert signer.node_id not in node.dht.routing
    room = AppMessage(topic=APP_TOPIC_ROOM, payload=b"x").to_body()
    other = encode_envelope(
        signer, type=MessageType.APP, request_id=8, timestamp_ms=int(T0 * 1000), body=room
    )
    node.receive_datagram(other, ("127.0.0.1", 40300), now=T0)
    assert _events(node) and signer.node_id in node.dht.routing  # any other APP: a contact


def test_payloads_from_the_node_reach_the_core_and_garbage_is_counted() -> None:
    """`TraversalCore.receive_payload`: decoded once, refused with a counter, never raised."""
    core = TraversalCore(identity(3), relay=RELAY, random_bytes=random.Random(3).randbytes)
    core.receive_payload(identity(4).node_id, b"\xff\x00", RELAY, now=T0)
    assert core.counters.get_count(TraversalCounter.REJECTED_MALFORMED) == 1
    core.receive_payload(
        identity(4).node_id,
        messages.encode(messages.Observed(address=("198.18.1.2", 5))),
        RELAY,
        now=T0,
    )
    assert core.observed == ("198.18.1.2", 5)


def test_the_first_request_id_is_the_one_given() -> None:
    """NAT-6.3: a client starts the core's envelope ids at a random value (ENV-2.4)."""
    core = TraversalCore(
        identity(5), relay=RELAY, random_bytes=random.Random(5).randbytes, seq_start=10**12
    )
    core.register(now=T0)
    action = core.next_action()
    assert isinstance(action, SendDatagram)
    assert decode_envelope(action.data).request_id == 10**12 + 1
