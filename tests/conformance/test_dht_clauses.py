"""DHT clauses that no vector file can pin: behaviour over time and across nodes.

The vectors pin what one node or one lookup does with given inputs; these tests
check the rest of section 10 of paper/spec.md on the sans-IO reference: the
failure count of the routing table, what a holder reports for persistence,
and the operations (store, get, findRoomPeers, republish, replication) on a
small simulated network where the true k closest nodes are known.
"""

import random
from collections.abc import Iterator
from weakref import WeakKeyDictionary

import pytest

from railgun_ref.conformance.common import OutputTap
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.geometry import distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import Record, sign_record
from railgun_ref.dht.service import DhtConfig
from railgun_ref.drivers.sim import Simulator
from railgun_ref.events import (
    GetFinished,
    LookupFinished,
    NodeEvent,
    RecordDropped,
    RecordStored,
    RequestTimedOut,
    StoreFinished,
)
from railgun_ref.identity.keys import Identity
from railgun_ref.node import Node, NodeConfig
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.messages import ErrorReply, MessageType, Ping, Store, Stored

T0 = 1_700_000_000.0
NODE_ADDR: Address = ("127.0.0.1", 7000)


def _identity(n: int) -> Identity:
    return Identity.from_seed(bytes([n]) * 32)


def _node(config: NodeConfig | None = None) -> Node:
    return Node(_identity(1), rng=random.Random(1), config=config, now=T0)


#: One tap per node: a test reads its datagrams now and its events later.
_taps: WeakKeyDictionary[Node, OutputTap] = WeakKeyDictionary()


def _events(node: Node) -> Iterator[NodeEvent]:
    yield from _taps.setdefault(node, OutputTap(node)).events()


def _datagrams(node: Node) -> list[tuple[bytes, Address]]:
    return _taps.setdefault(node, OutputTap(node)).datagrams()


def _envelope(
    identity: Identity, msg_type: int, body: dict[int, object], now: float, request_id: int
) -> bytes:
    return encode_envelope(
        identity, type=msg_type, request_id=request_id, timestamp_ms=round(now * 1000), body=body
    )


# ------------------------------------------------------------------ routing table


@pytest.mark.clause("DHT-5.3")
def test_two_timeouts_in_a_row_remove_a_contact_an_error_does_not() -> None:
    """DHT-5.3: consecutive timeouts count; an ERROR reply or any datagram resets nothing
    but proves the contact alive, and the contact is removed at max_failures = 2."""
    node = _node()
    peer = _identity(2)
    peer_addr: Address = ("127.0.0.1", 41000)
    node.receive_datagram(
        _envelope(peer, MessageType.PING, Ping().to_body(), T0, 1), peer_addr, now=T0
    )
    _datagrams(node)
    assert peer.node_id in node.dht.routing

    def lookup_request(now: float) -> int:
        node.dht.find_node(bytes(32), now=now)
        ((data, to),) = _datagrams(node)
        assert to == peer_addr
        return decode_envelope(data).request_id

    lookup_request(T0)
    node.on_timer(now=T0 + 5)
    assert any(isinstance(e, RequestTimedOut) for e in _events(node))
    assert peer.node_id in node.dht.routing  # one failure: kept

    request_id = lookup_request(T0 + 6)
    error = ErrorReply(code=15, reason="quota").to_body()
    node.receive_datagram(
        _envelope(peer, MessageType.ERROR, error, T0 + 6.1, request_id), peer_addr, now=T0 + 6.1
    )
    assert peer.node_id in node.dht.routing  # an ERROR is an answer: alive, count reset

    lookup_request(T0 + 7)
    node.on_timer(now=T0 + 12)
    assert peer.node_id in node.dht.routing  # one failure since the reset
    lookup_request(T0 + 13)
    node.on_timer(now=T0 + 18)
    assert peer.node_id not in node.dht.routing  # the second in a row: removed


@pytest.mark.clause("DHT-5.1")
def test_contacts_named_in_answers_stay_out_of_the_table() -> None:
    """DHT-5.1: a NODES answer's contacts are lookup candidates, never table entries."""
    node = _node()
    peer, named = _identity(2), _identity(3)
    peer_addr: Address = ("127.0.0.1", 41000)
    node.receive_datagram(
        _envelope(peer, MessageType.PING, Ping().to_body(), T0, 1), peer_addr, now=T0
    )
    _datagrams(node)
    node.dht.find_node(named.node_id, now=T0)
    ((data, _),) = _datagrams(node)
    request_id = decode_envelope(data).request_id
    nodes = {0: [[named.node_id, bytes([127, 0, 0, 1]), 41001]]}
    node.receive_datagram(
        _envelope(peer, MessageType.NODES, nodes, T0 + 0.1, request_id), peer_addr, now=T0 + 0.1
    )
    sent = _datagrams(node)
    assert [to for _, to in sent] == [("127.0.0.1", 41001)]  # the named node is queried...
    assert named.node_id not in node.dht.routing  # ...but not trusted
    assert {c.node_id for c in node.dht.routing.contacts()} == {peer.node_id}


# ------------------------------------------------------------------ persistence


@pytest.mark.clause("DHT-4.5")
def test_every_change_a_holder_makes_is_reported_with_the_reply() -> None:
    """DHT-4.5: the STORED reply and the RecordStored event carrying the exact record come
    out of the same input, so a driver persists before it sends; a replacement is
    reported too, an identical re-store is not, and expiry reports RecordDropped."""
    node = _node()
    peer = _identity(2)
    record = sign_record(
        peer,
        key_type=KeyType.ROOM,
        ident=b"r",
        seq=1,
        expires_ms=round((T0 + 60) * 1000),
        value=b"v",
    )
    newer = sign_record(
        peer,
        key_type=KeyType.ROOM,
        ident=b"r",
        seq=2,
        expires_ms=round((T0 + 60) * 1000),
        value=b"w",
    )
    stored: list[bytes] = []
    for n, rec in enumerate((record, record, newer), start=1):
        body = Store(record=rec.to_cbor_value()).to_body()
        node.receive_datagram(_envelope(peer, MessageType.STORE, body, T0, n), NODE_ADDR, now=T0)
        ((reply, _),) = _datagrams(node)
        assert decode_envelope(reply).type == MessageType.STORED
        stored += [e.record for e in _events(node) if isinstance(e, RecordStored)]
    assert stored == [record.encode(), newer.encode()]
    node.on_timer(now=T0 + 60)
    assert [type(e) for e in _events(node)] == [RecordDropped]


@pytest.mark.clause("DHT-4.5")
def test_records_reloaded_after_a_restart_are_checked_again() -> None:
    """DHT-4.5: after a restart, expired records are dropped and the seq rule applies."""
    peer = _identity(2)
    old = sign_record(
        peer,
        key_type=KeyType.ROOM,
        ident=b"r",
        seq=1,
        expires_ms=round((T0 + 10) * 1000),
        value=b"v",
    )
    live = sign_record(
        peer,
        key_type=KeyType.ROOM,
        ident=b"s",
        seq=5,
        expires_ms=round((T0 + 100) * 1000),
        value=b"v",
    )
    stale = sign_record(
        peer,
        key_type=KeyType.ROOM,
        ident=b"s",
        seq=4,
        expires_ms=round((T0 + 100) * 1000),
        value=b"u",
    )
    node = _node()
    restored = [node.dht.records.restore(r, now=T0 + 20) for r in (old, live, stale)]
    assert restored == [False, True, False]
    assert node.dht.records.get(derive_key(KeyType.ROOM, b"s"), now=T0 + 20) == [live]


# ------------------------------------------------------------------ operations


def _network(count: int, *, k: int, seed: int) -> tuple[Simulator, list[Address], list[NodeEvent]]:
    """`count` nodes joined through the first one; events after the join are collected."""
    config = NodeConfig(request_timeout=2.0, dht=DhtConfig(k=k))
    sim = Simulator(seed=seed)
    nodes = sim.spawn(count, config=config)
    for i, address in enumerate(nodes[1:]):
        sim.at(
            sim.now + i * 0.05,
            lambda s, a=address: s.call(a, lambda n, now: n.dht.bootstrap([nodes[0]], now=now)),
        )
    sim.run_for(30)
    events: list[NodeEvent] = []
    sim.subscribe(lambda _a, e, _n: events.append(e))
    return sim, nodes, events


def _holders(sim: Simulator, key: bytes) -> set[NodeId]:
    return {node.node_id for node in sim.nodes.values() if node.dht.records.get(key, now=sim.now)}


@pytest.mark.clause("DHT-8.1")
def test_store_reaches_the_true_k_closest_nodes() -> None:
    """DHT-8.1: the record lands on the k nodes closest to its key (the publisher holds a
    copy too when it is one of them), and StoreFinished counts the acceptances."""
    sim, nodes, events = _network(30, k=5, seed=3)
    key = derive_key(KeyType.RENDEZVOUS, b"box")
    publisher = sim.nodes[nodes[11]]
    sim.call(nodes[11], lambda n, now: n.dht.store(KeyType.RENDEZVOUS, b"box", b"v", now=now))
    sim.run_for(10)
    others = sorted(
        (n.node_id for n in sim.nodes.values() if n is not publisher),
        key=lambda i: distance(i, key),
    )
    expected = set(others[:5])
    if distance(publisher.node_id, key) < distance(others[4], key):
        expected.add(publisher.node_id)
    assert _holders(sim, key) == expected
    (finished,) = [e for e in events if isinstance(e, StoreFinished)]
    assert (finished.accepted, finished.refused, finished.failed) == (len(expected), 0, 0)


@pytest.mark.clause("DHT-8.3")
def test_get_and_find_room_peers_merge_valid_records() -> None:
    """DHT-8.3: get returns the publisher's record; findRoomPeers merges every member's
    announcement found on the k closest nodes, ordered by publisher id."""
    sim, nodes, events = _network(30, k=5, seed=4)
    members = nodes[3:9]
    for i, address in enumerate(members):
        sim.call(
            address, lambda n, now, i=i: n.dht.announce_room(b"room", now=now, value=bytes([i]))
        )
    sim.call(nodes[20], lambda n, now: n.dht.store(KeyType.PEER, n.node_id, b"me", now=now))
    sim.run_for(10)
    sim.call(nodes[25], lambda n, now: n.dht.find_room_peers(b"room", now=now))
    peer_key = derive_key(KeyType.PEER, sim.nodes[nodes[20]].node_id)
    sim.call(nodes[26], lambda n, now: n.dht.get(peer_key, now=now))
    sim.run_for(10)
    gets = {e.key: e for e in events if isinstance(e, GetFinished)}
    room, peer = gets[derive_key(KeyType.ROOM, b"room")], gets[peer_key]
    publishers = [Record.from_cbor_value(cbor.decode(r)).publisher_id for r in room.records]
    assert publishers == sorted(sim.nodes[a].node_id for a in members)
    assert [Record.from_cbor_value(cbor.decode(r)).value for r in peer.records] == [b"me"]


@pytest.mark.clause("DHT-8.6")
def test_seq_is_the_publish_time_in_ms_and_strictly_increases() -> None:
    """DHT-8.6: seq = round(now x 1000), or the previous seq + 1 within one millisecond."""
    node = _node()
    key = derive_key(KeyType.ROOM, b"r")
    seqs = []
    for now in (T0, T0, T0 + 0.0004, T0 + 1):
        node.dht.store(KeyType.ROOM, b"r", b"v", now=now)  # no contacts: held locally
        (held,) = node.dht.records.get(key, now=now)
        seqs.append(held.seq)
    t0_ms = round(T0 * 1000)
    assert seqs == [t0_ms, t0_ms + 1, t0_ms + 2, t0_ms + 1000]


@pytest.mark.clause("DHT-8.4", "DHT-8.5")
def test_republish_refreshes_and_holders_replicate() -> None:
    """DHT-8.4: an hour on, the publisher re-signs with a newer seq and expiry;
    DHT-8.5: holders push what they hold to the closest contacts they know, so copies
    spread beyond the first holders (replication sends records unchanged, so some of
    those copies carry the old seq, which DHT-3.5 lets the new one replace)."""
    sim, nodes, events = _network(20, k=3, seed=5)
    key = derive_key(KeyType.RENDEZVOUS, b"box")
    sim.call(
        nodes[7], lambda n, now: n.dht.store(KeyType.RENDEZVOUS, b"box", b"v", now=now, ttl=7200)
    )
    sim.run_for(10)
    first = {
        n.node_id: n.dht.records.get(key, now=sim.now)[0]
        for n in sim.nodes.values()
        if n.dht.records.get(key, now=sim.now)
    }
    assert first
    sim.run_for(3700)
    old_seq = next(iter(first.values())).seq
    for node in sim.nodes.values():
        if node.node_id in first:  # the k closest, as before: each holds the new record
            (held,) = node.dht.records.get(key, now=sim.now)
            assert held.seq > old_seq and held.expires_ms > first[node.node_id].expires_ms
    replicated = [e for e in events if isinstance(e, RecordStored) and e.key == key]
    assert len(replicated) > len(first)


@pytest.mark.clause("DHT-6.3")
def test_find_node_result_is_the_true_closest() -> None:
    """DHT-6.3: a lookup on a quiet network ends with the true k closest nodes."""
    sim, nodes, events = _network(40, k=6, seed=6)
    target = derive_key(KeyType.PEER, b"somebody")
    sim.call(nodes[9], lambda n, now: n.dht.find_node(target, now=now))
    sim.run_for(10)
    (finished,) = [e for e in events if isinstance(e, LookupFinished)]
    truth = sorted(
        (sim.nodes[a].node_id for a in nodes if a != nodes[9]), key=lambda i: distance(i, target)
    )[:6]
    assert [n for n, _ in finished.closest] == truth


@pytest.mark.clause("DHT-4.2")
def test_replicated_store_from_a_non_publisher_is_accepted() -> None:
    """DHT-4.2: a holder takes a valid record from whoever sends it."""
    node = _node()
    publisher, relayer = _identity(2), _identity(3)
    record = sign_record(
        publisher,
        key_type=KeyType.PEER,
        ident=publisher.node_id,
        seq=1,
        expires_ms=round((T0 + 60) * 1000),
        value=b"v",
    )
    body = Store(record=record.to_cbor_value()).to_body()
    node.receive_datagram(_envelope(relayer, MessageType.STORE, body, T0, 9), NODE_ADDR, now=T0)
    ((reply, _),) = _datagrams(node)
    envelope = decode_envelope(reply)
    assert envelope.type == MessageType.STORED and Stored.from_body(envelope.body).status == 0
