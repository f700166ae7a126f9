"""Bad input to the DHT: malformed, truncated, oversized, replayed and forged datagrams,
records for the wrong key, garbage floods and Sybil floods (DHT-5.1, DHT-5.2, DHT-3.3,
DHT-7.x; ENV-2.x for the envelope layer they arrive through).

The issue's words: "Malformed, truncated, oversized or replayed datagrams, forged
signatures, records for the wrong key: rejected with a counter, the node keeps
serving. A flood of garbage from one address must not evict good contacts."
"""

import functools
import random
from collections.abc import Callable
from typing import Any

import pytest

from railgun_ref.core.errors import ErrorCode
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import MAX_VALUE_SIZE
from railgun_ref.dht.routing import Contact
from railgun_ref.dht.service import DhtConfig, DhtCounter
from railgun_ref.dht.storage import PutOutcome
from railgun_ref.drivers.sim import Simulator
from railgun_ref.events import GetFinished, LookupFinished, NodeEvent, PongReceived
from railgun_ref.identity.keys import Identity
from railgun_ref.node import Node, NodeConfig, NodeCounter
from railgun_ref.rpc.labels import error_label
from railgun_ref.rpc.requests import Channel
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.messages import (
    ErrorReply,
    FindNode,
    Message,
    MessageType,
    Nodes,
    Stored,
    StoreStatus,
    Value,
    parse_message,
)

from ..pairs import T0, NodePair, all_events, raw_envelope, take_datagrams
from .helpers import ident, record

TARGET = bytes(range(32))


def met_pair() -> NodePair:
    """A pair whose nodes know each other (a pinged b)."""
    pair = NodePair()
    pair.a.ping(pair.ADDR_B, now=T0)
    pair.pump(now=T0)
    assert pair.b.node_id in pair.a.dht.routing
    assert pair.a.node_id in pair.b.dht.routing
    return pair


def to_b(pair: NodePair, data: bytes, *, now: float = T0) -> list[Message]:
    """Deliver `data` to b as a datagram from a's address; return b's parsed replies."""
    pair.b.receive_datagram(data, pair.ADDR_A, now=now)
    return [parse_message(decode_envelope(d)) for d, _ in take_datagrams(pair.b)]


def request(pair: NodePair, message_type: int, body: Any, request_id: int) -> bytes:
    return raw_envelope(pair.a.identity, type=message_type, request_id=request_id, body=body)


def error_codes(replies: list[Message]) -> list[int]:
    return [r.code for r in replies if isinstance(r, ErrorReply)]


def contacts_of(node: Node) -> set[Contact]:
    return set(node.dht.routing.contacts())


# ------------------------------------------------------------------ malformed requests

MALFORMED_BODIES: list[tuple[str, int, Any]] = [
    ("FIND_NODE empty", MessageType.FIND_NODE, {}),
    ("FIND_NODE short target", MessageType.FIND_NODE, {0: b"short"}),
    ("FIND_NODE text target", MessageType.FIND_NODE, {0: "x" * 32}),
    ("FIND_NODE extra key", MessageType.FIND_NODE, {0: TARGET, 1: b""}),
    ("FIND_NODE wrong key", MessageType.FIND_NODE, {1: TARGET}),
    ("FIND_VALUE long key", MessageType.FIND_VALUE, {0: bytes(33)}),
    ("FIND_VALUE list key", MessageType.FIND_VALUE, {0: [TARGET]}),
    ("STORE empty", MessageType.STORE, {}),
    ("STORE record text", MessageType.STORE, {0: "record"}),
    ("STORE record list", MessageType.STORE, {0: [0, 1, 2, 3, 4, 5, 6]}),
    ("STORE record missing fields", MessageType.STORE, {0: {0: 2, 1: b"room"}}),
    ("STORE unknown key type", MessageType.STORE, {0: {**record(ident(5)).to_cbor_value(), 0: 9}}),
]


@pytest.mark.parametrize(
    ("label", "message_type", "body"), MALFORMED_BODIES, ids=[m[0] for m in MALFORMED_BODIES]
)
def test_malformed_request_bodies_get_error_malformed(
    label: str, message_type: int, body: Any
) -> None:
    """DHT-7.1, DHT-7.3, DHT-7.5, DHT-7.7: a DHT request whose body breaks its schema is
    answered ERROR MALFORMED, counted, and changes nothing."""
    pair = met_pair()
    records_before = len(pair.b.dht.records)
    replies = to_b(pair, request(pair, message_type, body, request_id=77))
    assert error_codes(replies) == [ErrorCode.MALFORMED]
    assert pair.b.counters.get_count(NodeCounter.REJECTED, ErrorCode.MALFORMED) == 1
    assert len(pair.b.dht.records) == records_before
    # ... and b keeps serving.
    good = FindNode(target=TARGET).to_body()
    (reply,) = to_b(pair, request(pair, MessageType.FIND_NODE, good, request_id=78))
    assert isinstance(reply, Nodes)


def forged_record_map() -> dict[int, Any]:
    return {**record(ident(5)).to_cbor_value(), 6: bytes(64)}


STORE_REFUSALS: list[tuple[str, Callable[[], dict[int, Any]], ErrorCode]] = [
    ("forged signature", forged_record_map, ErrorCode.BAD_SIGNATURE),
    (
        "signature of another record",
        lambda: {**record(ident(5)).to_cbor_value(), 6: record(ident(5), seq=2).signature},
        ErrorCode.BAD_SIGNATURE,
    ),
    (
        "small-order publisher key",
        lambda: {**record(ident(5)).to_cbor_value(), 2: b"\x01" + bytes(31)},
        ErrorCode.BAD_KEY,
    ),
    (
        "value over the limit",
        lambda: {**record(ident(5)).to_cbor_value(), 5: bytes(MAX_VALUE_SIZE + 1)},
        ErrorCode.TOO_LARGE,
    ),
    (
        "presence of another node",
        lambda: record(
            ident(5), key_type=KeyType.PEER, ident_bytes=ident(6).node_id
        ).to_cbor_value(),
        ErrorCode.FORBIDDEN,
    ),
    (
        "expired",
        lambda: record(ident(5), expires_ms=int(T0 * 1000) - 1).to_cbor_value(),
        ErrorCode.EXPIRED,
    ),
    (
        "a year ahead",
        lambda: record(ident(5), expires_ms=int((T0 + 365 * 86400) * 1000)).to_cbor_value(),
        ErrorCode.TTL_TOO_LONG,
    ),
]


@pytest.mark.parametrize(
    ("label", "build", "code"), STORE_REFUSALS, ids=[s[0] for s in STORE_REFUSALS]
)
def test_refused_stores_are_answered_with_the_reason_and_counted(
    label: str, build: Callable[[], dict[int, Any]], code: ErrorCode
) -> None:
    """DHT-3.3, DHT-7.5, DHT-7.7: a STORE of a record that fails a check is refused with an
    ERROR naming the check, counted under rejected.<CODE>, and nothing is held."""
    pair = met_pair()
    replies = to_b(pair, request(pair, MessageType.STORE, {0: build()}, request_id=90))
    assert error_codes(replies) == [code]
    assert pair.b.counters.get_count(NodeCounter.REJECTED, error_label(code)) == 1
    assert len(pair.b.dht.records) == 0


def test_stale_and_conflicting_stores_are_refused() -> None:
    """DHT-3.5: a lower seq, or the same seq with other bytes, is refused STALE_SEQUENCE."""
    pair = met_pair()
    newer, older = record(ident(5), seq=5), record(ident(5), seq=4)
    conflict = record(ident(5), seq=5, value=b"other")
    (ok,) = to_b(pair, request(pair, MessageType.STORE, {0: newer.to_cbor_value()}, 1))
    assert ok == Stored(status=StoreStatus.STORED)
    for n, bad in enumerate((older, conflict)):
        replies = to_b(pair, request(pair, MessageType.STORE, {0: bad.to_cbor_value()}, 2 + n))
        assert error_codes(replies) == [ErrorCode.STALE_SEQUENCE]
    assert pair.b.counters.get_count(NodeCounter.REJECTED, ErrorCode.STALE_SEQUENCE) == 2
    assert pair.b.dht.records.get(newer.key, now=T0) == [newer]


def test_a_replayed_store_is_refused_and_stored_once() -> None:
    """ENV-2.4/DHT-7.6: the same STORE datagram twice: one STORED reply, one REPLAY rejection,
    one record, one RecordStored."""
    pair = met_pair()
    data = request(pair, MessageType.STORE, {0: record(ident(5)).to_cbor_value()}, 55)
    first = to_b(pair, data)
    second = to_b(pair, data, now=T0 + 1)
    assert first == [Stored(status=StoreStatus.STORED)]
    assert second == []  # a replay is not answered
    assert pair.b.counters.get_count(NodeCounter.REJECTED, ErrorCode.REPLAY) == 1
    assert pair.b.dht.counters.get_count(DhtCounter.STORE, PutOutcome.STORED) == 1
    assert len(pair.b.dht.records) == 1


def test_unauthenticated_bytes_are_not_answered_and_touch_no_contact() -> None:
    """DHT-5.1/NODE-1.2: truncated, oversized and forged datagrams are counted, never answered,
    and never enter the routing table."""
    pair = met_pair()
    contacts = contacts_of(pair.b)
    stranger = ident(9)
    valid = encode_envelope(
        stranger,
        type=MessageType.FIND_NODE,
        request_id=3,
        timestamp_ms=int(T0 * 1000),
        body=FindNode(target=TARGET).to_body(),
    )
    forged = valid[:-1] + bytes([valid[-1] ^ 1])
    oversized = raw_envelope(stranger, type=MessageType.PING, request_id=4, body={0: bytes(1300)})
    stale = raw_envelope(stranger, type=MessageType.PING, request_id=5, timestamp_ms=0)
    for data in (valid[:10], valid[:-1], forged, oversized, stale, b"", b"\xff" * 50):
        assert to_b(pair, data) == []
    assert contacts_of(pair.b) == contacts
    assert stranger.node_id not in pair.b.dht.routing
    rejected = {
        label: count
        for label in ErrorCode
        if (count := pair.b.counters.get_count(NodeCounter.REJECTED, label))
    }
    assert rejected == {
        ErrorCode.MALFORMED: 4,
        ErrorCode.BAD_SIGNATURE: 1,
        ErrorCode.TOO_LARGE: 1,
        ErrorCode.STALE: 1,
    }


# ------------------------------------------------------------------ bad responses


def intercept_find_value(pair: NodePair, key: bytes) -> tuple[int, int]:
    """a starts a get of `key`; take its FIND_VALUE to b; return (query id, request id)."""
    query_id = pair.a.dht.get(key, now=T0)
    (datagram, to) = take_datagrams(pair.a)[0]
    assert to == pair.ADDR_B
    envelope = decode_envelope(datagram)
    assert envelope.type == MessageType.FIND_VALUE
    return query_id, envelope.request_id


def reply_from_b(pair: NodePair, message: Message, request_id: int, now: float) -> None:
    data = encode_envelope(
        pair.b.identity,
        type=message.TYPE,
        request_id=request_id,
        timestamp_ms=int(now * 1000),
        body=message.to_body(),
    )
    pair.a.receive_datagram(data, pair.ADDR_B, now=now)


def get_result(node: Node) -> GetFinished:
    (done,) = [e for e in all_events(node) if isinstance(e, GetFinished)]
    return done


def test_a_record_for_another_key_in_a_value_reply_is_ignored() -> None:
    """DHT-3.3: a VALUE answering a get with a (validly signed) record of another key is
    counted WRONG_KEY and never returned by the get."""
    pair = met_pair()
    key = derive_key(KeyType.ROOM, b"wanted")
    _, request_id = intercept_find_value(pair, key)
    impostor = record(ident(5), ident_bytes=b"something else")
    forged = forged_record_map()
    reply = Value(records=(impostor.to_cbor_value(), forged), contacts=())
    reply_from_b(pair, reply, request_id, T0 + 0.1)
    assert pair.a.dht.counters.get_count(DhtCounter.REJECTED_RECORD, ErrorCode.WRONG_KEY) == 1
    assert pair.a.dht.counters.get_count(DhtCounter.REJECTED_RECORD, ErrorCode.BAD_SIGNATURE) == 1
    done = get_result(pair.a)
    assert not done.found
    assert done.records == ()


def test_a_malformed_value_reply_is_dropped_and_the_get_ends_by_timeout() -> None:
    """DHT-7.4, DHT-7.7, MSG-1.3: a malformed response is counted and not answered; the request
    stays in flight until its timeout, and the get still ends."""
    pair = met_pair()
    key = derive_key(KeyType.ROOM, b"wanted")
    _, request_id = intercept_find_value(pair, key)
    bad = raw_envelope(
        pair.b.identity,
        type=MessageType.VALUE,
        request_id=request_id,
        timestamp_ms=int((T0 + 0.1) * 1000),
        body={0: "not a list", 1: [], 2: False},
    )
    pair.a.receive_datagram(bad, pair.ADDR_B, now=T0 + 0.1)
    assert pair.a.counters.get_count(NodeCounter.REJECTED, ErrorCode.MALFORMED) == 1
    assert take_datagrams(pair.a) == []
    assert pair.a.requests_in_flight == 1
    pair.a.on_timer(now=T0 + NodeConfig().request_timeout)
    done = get_result(pair.a)
    assert not done.found
    assert done.failures == 1


# ------------------------------------------------------------------ floods in the simulator


def joined(
    size: int, seed: int, config: NodeConfig | None = None
) -> tuple[Simulator, list[Address]]:
    sim = Simulator(seed=seed, keep_trace=False)
    addrs = sim.spawn(size, config=config)
    for i, addr in enumerate(addrs[1:]):
        sim.at(sim.now + 0.05 * i, functools.partial(join_through, addr, addrs[0]))
    sim.run_for(0.05 * size + 20)
    return sim, addrs


def join_through(addr: Address, via: Address, sim: Simulator) -> None:
    sim.call(addr, lambda n, now: n.dht.bootstrap([via], now=now))


def inject(sim: Simulator, victim: Address, data: bytes, source: Address) -> None:
    sim.call(victim, lambda n, now: n.receive_datagram(data, source, now=now))


def garbage(rng: random.Random, now: float, good: bytes) -> list[bytes]:
    """10,000 datagrams no node may accept: random bytes (some oversized), truncated valid
    envelopes, envelopes of fresh identities with bad signatures, bit flips, replays."""
    out: list[bytes] = []
    stamp = int(now * 1000)
    for _ in range(2500):
        out.append(rng.randbytes(rng.choice([0, 1, 2, 40, 200, 1199, 1201, 1500])))
    for n in range(2500):
        fresh = Identity.from_seed(rng.randbytes(32))
        envelope = encode_envelope(
            fresh,
            type=rng.choice(list(MessageType)),
            request_id=n,
            timestamp_ms=stamp,
            body=FindNode(target=rng.randbytes(32)).to_body(),
        )
        if n % 2:
            out.append(envelope[: rng.randrange(1, len(envelope))])  # truncated
        else:
            at = rng.randrange(len(envelope) - 64, len(envelope))  # in the signature
            out.append(envelope[:at] + bytes([envelope[at] ^ 0x10]) + envelope[at + 1 :])
    for n in range(2500):
        fresh = Identity.from_seed(rng.randbytes(32))
        other = Identity.from_seed(rng.randbytes(32))
        # a correctly shaped envelope carrying fresh's key, signed by another key
        out.append(
            raw_envelope(
                fresh,
                type=MessageType.PING,
                request_id=n,
                timestamp_ms=stamp,
                signature=other.sign(b"railgun/v1/envelope\x00" + rng.randbytes(20)),
            )
        )
    for _ in range(1500):
        at = rng.randrange(len(good))
        out.append(good[:at] + bytes([good[at] ^ (1 << rng.randrange(8))]) + good[at + 1 :])
    out += [good] * 1000  # replays of a datagram the victim already accepted
    assert len(out) == 10_000
    return out


def test_a_garbage_flood_from_one_address_leaves_the_table_and_service_intact() -> None:
    """DHT-5.1/NODE-1.2: 10,000 garbage datagrams from one address: every one rejected and
    counted, none answered, the routing table unchanged, and the node still answers PING
    and FIND_NODE."""
    sim, addrs = joined(20, seed=5)
    victim, friend, asker = addrs[7], addrs[8], addrs[9]
    node = sim.nodes[victim]
    # One genuine datagram from a known contact, captured and delivered once: its replays
    # are part of the flood.
    sent = sim.call(friend, lambda n, now: (n.ping(victim, now=now), take_datagrams(n))[1])
    (good, _), *_ = sent
    inject(sim, victim, good, friend)
    sim.run_for(1.0)
    contacts, fill = contacts_of(node), node.dht.routing.bucket_fill()
    before = {label: node.counters.get_count(NodeCounter.REJECTED, label) for label in ErrorCode}
    sent_before = node.counters.get_count(NodeCounter.TX, Channel.DATAGRAM)
    attacker: Address = ("127.66.6.6", 6666)
    # (not the simulator's seed: its identities come from the same generator)
    for data in garbage(random.Random(1005), sim.now, good):
        inject(sim, victim, data, attacker)
    rejected = {
        label: node.counters.get_count(NodeCounter.REJECTED, label) - before[label]
        for label in ErrorCode
    }
    assert sum(rejected.values()) == 10_000
    for label in (ErrorCode.MALFORMED, ErrorCode.TOO_LARGE, ErrorCode.BAD_SIGNATURE):
        assert rejected[label] > 0, label
    assert rejected[ErrorCode.REPLAY] > 0
    # nothing answered
    assert node.counters.get_count(NodeCounter.TX, Channel.DATAGRAM) == sent_before
    assert contacts_of(node) == contacts
    assert node.dht.routing.bucket_fill() == fill
    # Still serving.
    events: list[tuple[Address, NodeEvent]] = []
    sim.subscribe(lambda addr, event, now: events.append((addr, event)))
    sim.ping(asker, victim)
    served = node.dht.counters.get_count(DhtCounter.SERVED_FIND_NODE)
    query_id = sim.call(asker, lambda n, now: n.dht.find_node(node.node_id, now=now))
    sim.run_for(10.0)
    assert any(a == asker and isinstance(e, PongReceived) for a, e in events)
    (found,) = [e for a, e in events if isinstance(e, LookupFinished) and e.query_id == query_id]
    assert found.closest[0] == (node.node_id, victim)
    assert node.dht.counters.get_count(DhtCounter.SERVED_FIND_NODE) > served


def test_a_datagram_replayed_from_another_address_does_not_move_or_evict_a_contact() -> None:
    """DHT-5.1: an envelope signed by a good contact and replayed from the attacker's address
    (the attacker once received it, as any peer can) neither redirects the contact to the
    attacker nor gets it evicted through failed requests."""
    sim = Simulator(seed=1, keep_trace=False)
    good, attacker, victim = sim.spawn(3)
    sim.ping(good, victim)
    sim.run_for(1.0)
    good_id = sim.nodes[good].node_id
    assert Contact(node_id=good_id, address=good) in contacts_of(sim.nodes[victim])
    # good pings the attacker; the attacker keeps the bytes and replays them to the victim.
    sent = sim.call(good, lambda n, now: (n.ping(attacker, now=now), take_datagrams(n))[1])
    inject(sim, victim, sent[0][0], attacker)
    assert Contact(node_id=good_id, address=good) in contacts_of(sim.nodes[victim])
    for _ in range(3):
        sim.call(victim, lambda n, now: n.dht.find_node(bytes(32), now=now))
        sim.run_for(10.0)
    assert Contact(node_id=good_id, address=good) in contacts_of(sim.nodes[victim])
    assert sim.nodes[victim].counters.get_count(NodeCounter.REQUEST_TIMEOUT) == 0


def far_half(local: NodeId, node_id: NodeId) -> bool:
    """True if `node_id` is in bucket 255 of `local` (the top bit differs)."""
    return (local[0] ^ node_id[0]) >> 7 == 1


def test_a_sybil_flood_does_not_evict_live_old_contacts() -> None:
    """DHT-5.2: a stream of new, validly signed identities into a full bucket only fills the
    replacement cache while the old contacts answer their checks; a contact that dies is then
    replaced by the freshest newcomer."""
    config = NodeConfig(dht=DhtConfig(k=4))
    sim = Simulator(seed=3, keep_trace=False)
    addrs = sim.spawn(20, config=config)
    victim, others = addrs[0], addrs[1:]
    victim_id = sim.nodes[victim].node_id
    old = [a for a in others if far_half(victim_id, sim.nodes[a].node_id)][:4]
    assert len(old) == 4
    for addr in old:
        sim.ping(addr, victim)
    sim.run_for(1.0)
    old_ids = {sim.nodes[a].node_id for a in old}
    assert {c.node_id for c in sim.nodes[victim].dht.routing.contacts()} == old_ids

    rng = random.Random(1003)  # not the simulator's seed, which made the nodes' identities
    sybils: list[Identity] = []
    while len(sybils) < 60:
        candidate = Identity.from_seed(rng.randbytes(32))
        if far_half(victim_id, candidate.node_id):
            sybils.append(candidate)
    attacker: Address = ("127.66.6.6", 6666)

    def sybil_ping(identity: Identity, n: int) -> Callable[[Simulator], None]:
        def act(s: Simulator) -> None:
            data = encode_envelope(
                identity,
                type=MessageType.PING,
                request_id=n,
                timestamp_ms=int(s.now * 1000),
                body={0: b""},
            )
            inject(s, victim, data, attacker)

        return act

    for n, sybil in enumerate(sybils[:40]):
        sim.at(sim.now + 0.3 * n, sybil_ping(sybil, n))
    sim.run_for(0.3 * 40 + 6)
    node = sim.nodes[victim]
    assert {c.node_id for c in node.dht.routing.contacts()} == old_ids
    assert node.dht.counters.get_count(DhtCounter.EVICTION_CHECKS) >= 10

    # One old contact dies; the next checks find it and promote the freshest newcomer.
    dead = old[0]
    sim.stop(dead)
    for n, sybil in enumerate(sybils[40:], start=40):
        sim.at(sim.now + 0.3 * (n - 40), sybil_ping(sybil, n))
    sim.run_for(0.3 * 20 + 12)
    held = {c.node_id for c in node.dht.routing.contacts()}
    assert sim.nodes[dead].node_id not in held
    assert held - old_ids <= {s.node_id for s in sybils}
    assert len(held & old_ids) == 3
    assert len(held) == 4
