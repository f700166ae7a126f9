"""REP wired into the Node core: what peers do moves their score; standing has effect.

A peer whose authenticated messages are malformed again and again drops to
no-publish (it is no longer handed out in NODES answers) and then to
graylisted (what it sends is dropped unread and it leaves the routing
table); answers and timeouts of the node's own requests are observed too.
"""

import random
from typing import Any

from railgun_ref.abuse.reputation import Behaviour, ReputationConfig, Standing
from railgun_ref.conformance.common import take_outputs
from railgun_ref.identity.keys import Identity
from railgun_ref.node import Node, NodeConfig, NodeCounter
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.messages import MessageType, Nodes, parse_message

T0 = 1_700_000_000.0
ME = Identity.from_seed(b"\x10" * 32)
BAD = Identity.from_seed(b"\x11" * 32)
ASKER = Identity.from_seed(b"\x12" * 32)
BAD_AT = ("127.0.0.2", 4000)
ASKER_AT = ("127.0.0.3", 4000)


def node(reputation: bool = True) -> Node:
    config = NodeConfig(reputation=ReputationConfig() if reputation else None)
    return Node(ME, rng=random.Random(1), config=config, now=T0)


def send(
    n: Node, who: Identity, at: tuple[str, int], kind: int, body: dict[int, Any], rid: int
) -> list[tuple[bytes, Any]]:
    data = encode_envelope(who, type=kind, request_id=rid, timestamp_ms=int(T0 * 1000), body=body)
    n.receive_datagram(data, at, now=T0)
    return take_outputs(n).datagrams


def ping(n: Node, who: Identity, at: tuple[str, int], rid: int) -> list[tuple[bytes, Any]]:
    return send(n, who, at, MessageType.PING, {0: b"hi"}, rid)


def misbehave(n: Node, times: int, first_rid: int = 100) -> None:
    for i in range(times):
        send(n, BAD, BAD_AT, MessageType.PING, {7: "not a ping body"}, first_rid + i)


def test_malformed_input_graylists_the_sender() -> None:
    """REP-6.1, REP-6.2: seven malformed PINGs graylist their sender; its next is dropped."""
    n = node()
    assert len(ping(n, BAD, BAD_AT, 1)) == 1  # answered, and BAD enters the routing table
    assert BAD.node_id in n.dht.routing
    misbehave(n, 7)
    assert n.reputation is not None
    assert n.reputation.standing(BAD.node_id) is Standing.GRAYLISTED
    assert ping(n, BAD, BAD_AT, 2) == []  # dropped unread
    assert n.counters.get_count(NodeCounter.GRAYLISTED) == 1
    assert n.counters.get_count(NodeCounter.STANDING, Standing.GRAYLISTED) == 1
    assert BAD.node_id not in n.dht.routing
    assert len(ping(n, ASKER, ASKER_AT, 3)) == 1  # others are served as before


def test_no_publish_peers_are_left_out_of_nodes_answers() -> None:
    """REP-6.2: a no-publish peer stays in the table but is not handed out."""
    n = node()
    ping(n, BAD, BAD_AT, 1)
    ping(n, ASKER, ASKER_AT, 2)
    misbehave(n, 6)
    assert n.reputation is not None
    assert n.reputation.standing(BAD.node_id) is Standing.NO_PUBLISH
    [(reply, _)] = send(n, ASKER, ASKER_AT, MessageType.FIND_NODE, {0: BAD.node_id}, 3)
    answer = parse_message(decode_envelope(reply))
    assert isinstance(answer, Nodes)
    assert BAD.node_id not in [c[0] for c in answer.contacts]
    assert n.counters.get_count(NodeCounter.CONTACTS_WITHHELD) == 1
    assert BAD.node_id in n.dht.routing  # still known: only not handed out


def test_answers_and_timeouts_of_our_requests_are_observed() -> None:
    """REP-6.1: an answered PING earns credit; one that timed out costs."""
    n = node()
    n.ping(BAD_AT, now=T0, expected_peer=BAD.node_id)
    [(request, _)] = take_outputs(n).datagrams
    rid = decode_envelope(request).request_id
    send(n, BAD, BAD_AT, MessageType.PONG, {0: ["127.0.0.1", 4000], 1: b""}, rid)
    n.ping(ASKER_AT, now=T0, expected_peer=ASKER.node_id)
    take_outputs(n)
    n.on_timer(now=T0 + 60)
    assert n.reputation is not None
    assert set(n.reputation.peer_counters(BAD.node_id)) == {Behaviour.ANSWERED}  # decayed once
    assert Behaviour.TIMED_OUT in n.reputation.peer_counters(ASKER.node_id)
    assert n.reputation.score(BAD.node_id) > 0 > n.reputation.score(ASKER.node_id)


def test_without_reputation_a_misbehaving_peer_is_still_served() -> None:
    """REP-6.2: reputation off (the core's default) changes nothing."""
    n = node(reputation=False)
    misbehave(n, 10)
    assert n.reputation is None
    assert len(ping(n, BAD, BAD_AT, 1)) == 1
