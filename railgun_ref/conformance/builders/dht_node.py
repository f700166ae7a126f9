"""dht_node.json: one node serving the DHT over the wire (DHT-4.x, DHT-5.x, DHT-7.x).

The same `NodeScriptTest` format as node_ping.json, with a node of its own
seed: peers send it PINGs (so it learns them, DHT-5.1), FIND_NODE, FIND_VALUE
and STORE requests, good and bad, and every reply, event and request the node
makes is recorded byte for byte. Assertions restate what the spec says each
script must show, so a regression stops the generator.
"""

import random
from typing import Any, Final

from railgun_ref.conformance.builders.base import T0, T0_MS, Vectors, flip, seed_for
from railgun_ref.conformance.builders.node_ping import NODE_ADDR, NODE_CONFIG, Peer, Script
from railgun_ref.conformance.common import JsonObject
from railgun_ref.core.ids import Address
from railgun_ref.dht.geometry import bucket_index, distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import MAX_TTL, RECORD_DOMAIN, Record, sign_record
from railgun_ref.identity.keys import Identity
from railgun_ref.node import Node
from railgun_ref.rpc.requests import Channel
from railgun_ref.wire import cbor
from railgun_ref.wire.messages import FindNode, FindValue, MessageType, Store

NODE_RNG_SEED: Final = 7100
NODE_SEED_LABEL: Final = "dht_node/node"

NOTES: Final = {
    "Answered": "A request the node must answer.",
    "Refused": "A DHT request the node must refuse with an ERROR naming why.",
    "Contacts": "The node's answer lists contacts it learned.",
    "Records": "The node stores or serves records.",
    "Truncated": "More records than fit the channel.",
    "Stream": "Input arriving on a stream connection.",
    "Expiry": "A held record reaches its expiry.",
    "Eviction": "A full bucket: the node pings its least-recently seen contact.",
    "NotAuthenticated": "Input that must not teach the node a contact.",
}

HEADER: Final = [
    "Scripted DHT behaviour of one node (DHT-4.x, DHT-5.x, DHT-7.x), in the format of",
    "node_ping.json: build the node from 'nodeSeed' at 'createdAt' with the default",
    "DHT parameters (DHT-9.1), feed each step's input at its 'now', and compare what",
    "it emits. Replies are byte-exact except ERROR replies (compare their summary).",
    "Requests the node sends on its own (the eviction check PING of DHT-5.2) carry",
    "request ids drawn from the reference's random.Random(rngSeed): compare those by",
    "summary (messageType, destination); the answer in the next step names that id.",
    "RecordStored / RecordDropped events name what a holder must persist or forget",
    "(DHT-4.5); other implementations map them to what they have.",
]


def node_under_test() -> Node:
    return Node(
        Identity.from_seed(seed_for(NODE_SEED_LABEL)),
        rng=random.Random(NODE_RNG_SEED),
        config=NODE_CONFIG,
        now=T0,
    )


class DhtScript(Script):
    """A `Script` whose node under test is this file's node."""

    def __init__(self) -> None:
        self.node = node_under_test()
        self.steps = []


class DhtPeer(Peer):
    """A peer with its own address and a request-id counter."""

    def __init__(self, label: str, port: int) -> None:
        super().__init__(f"dht_node/{label}", port)
        self.address: Address = ("127.0.0.1", port)
        self.node_id = self.identity.node_id
        self._next_id = port * 1000

    def request(self, msg_type: int, body: dict[int, Any], now: float) -> bytes:
        self._next_id += 1
        return self.envelope(msg_type, body, now, self._next_id)

    def store(self, record: dict[int, Any] | object, now: float) -> bytes:
        return self.request(MessageType.STORE, {0: record}, now)

    def record(
        self,
        key_type: KeyType,
        ident: bytes | None = None,
        *,
        seq: int = 1,
        expires_ms: int = T0_MS + 3_600_000,
        value: bytes = b"v",
    ) -> Record:
        if ident is None:
            ident = self.node_id
        return sign_record(
            self.identity,
            key_type=key_type,
            ident=ident,
            seq=seq,
            expires_ms=expires_ms,
            value=value,
        )


def _types(out: JsonObject, key: str = "datagrams") -> list[str]:
    return [message["messageType"] for message in out[key]]


def _codes(out: JsonObject) -> list[str]:
    return [m.get("errorCode", "") for m in out["datagrams"]]


def _events(out: JsonObject) -> list[str]:
    return [event["event"] for event in out["events"]]


def _body(out: JsonObject, key: str = "datagrams") -> dict[int, Any]:
    (message,) = out[key]
    body: dict[int, Any] = cbor.decode(cbor.decode(bytes.fromhex(message["data"]))[0])[5]
    return body


def _contact_ids(out: JsonObject, key: str = "datagrams", field: int = 0) -> list[bytes]:
    return [contact[0] for contact in _body(out, key)[field]]


_Scenario = tuple[Script, str, str, str, tuple[str, ...]]


def _find_node() -> list[_Scenario]:
    s = DhtScript()
    peers = [DhtPeer(f"peer-{n}", 41000 + n) for n in range(5)]
    for n, p in enumerate(peers):
        out = s.receive(p.ping(T0 + n / 8), p.address, T0 + n / 8, f"PING from peer {n}")
        assert _types(out) == ["PONG"]
    target = seed_for("dht_node/target")
    asker = peers[0]
    out = s.receive(
        asker.request(MessageType.FIND_NODE, FindNode(target=target).to_body(), T0 + 1),
        asker.address,
        T0 + 1,
        "peer 0 asks FIND_NODE for a target",
    )
    ids = _contact_ids(out)
    assert _types(out) == ["NODES"] and asker.node_id not in ids and len(ids) == 4
    assert ids == sorted(ids, key=lambda i: distance(i, target))
    asker = peers[1]
    out = s.receive(
        asker.request(MessageType.FIND_NODE, FindNode(target=peers[3].node_id).to_body(), T0 + 2),
        asker.address,
        T0 + 2,
        "peer 1 asks FIND_NODE for peer 3's id",
    )
    ids = _contact_ids(out)
    assert ids[0] == peers[3].node_id and asker.node_id not in ids
    out = s.receive(
        asker.request(MessageType.FIND_NODE, FindNode(target=s.node.node_id).to_body(), T0 + 3),
        asker.address,
        T0 + 3,
        "peer 1 asks FIND_NODE for the node's own id",
    )
    assert s.node.node_id not in _contact_ids(out)

    s2 = DhtScript()
    a, b, c, d = (DhtPeer(f"peer-{n}", 41000 + n) for n in range(4))
    s2.receive(a.ping(T0), a.address, T0, "PING from peer a (datagram)")
    out = s2.receive_stream(
        b.ping(T0, channel=Channel.STREAM),
        5,
        b.address,
        T0,
        "PING from peer b on stream connection 5",
    )
    assert _types(out, "streamMessages") == ["PONG"]
    signed, signature = cbor.decode(c.ping(T0))
    out = s2.receive(
        cbor.encode([signed, flip(signature, 300)]),
        c.address,
        T0,
        "PING from peer c with a bad signature",
    )
    assert not out["datagrams"]
    stranger = d.node.node_id
    named = Store(record=d.record(KeyType.PEER).to_cbor_value())
    out = s2.receive(
        a.request(MessageType.STORE, named.to_body(), T0 + 1),
        a.address,
        T0 + 1,
        "peer a stores peer d's presence record (d never talked to the node)",
    )
    assert _types(out) == ["STORED"]
    out = s2.receive(
        a.request(MessageType.FIND_NODE, FindNode(target=stranger).to_body(), T0 + 2),
        a.address,
        T0 + 2,
        "peer a asks FIND_NODE for peer d's id",
    )
    assert _contact_ids(out) == []
    out = s2.receive(
        d.request(MessageType.FIND_NODE, FindNode(target=stranger).to_body(), T0 + 3),
        d.address,
        T0 + 3,
        "peer d asks FIND_NODE for its own id",
    )
    assert _contact_ids(out) == [a.node_id]
    return [
        (
            s,
            "FIND_NODE is answered with the known contacts nearest the target first, without"
            " the asker or the node itself",
            "DHT-7.2",
            "valid",
            ("Answered", "Contacts"),
        ),
        (
            s2,
            "only authenticated datagram senders become contacts: not stream senders, not"
            " forged PINGs, not nodes named in records",
            "DHT-5.1",
            "valid",
            ("Answered", "Contacts", "NotAuthenticated", "Stream"),
        ),
    ]


def _store_and_find_value() -> list[_Scenario]:
    s = DhtScript()
    a, b, c = (DhtPeer(f"peer-{n}", 41000 + n) for n in range(3))
    r1 = a.record(KeyType.ROOM, b"room-1", seq=1)
    out = s.receive(a.store(r1.to_cbor_value(), T0), a.address, T0, "a stores its room-1 record")
    assert _types(out) == ["STORED"] and _body(out) == {0: 0}
    assert _events(out) == ["RecordStored"]
    out = s.receive(
        a.store(r1.to_cbor_value(), T0 + 1), a.address, T0 + 1, "a stores the same record again"
    )
    assert _body(out) == {0: 2} and _events(out) == []
    r2 = a.record(KeyType.ROOM, b"room-1", seq=2, value=b"w")
    out = s.receive(a.store(r2.to_cbor_value(), T0 + 2), a.address, T0 + 2, "a stores seq 2")
    assert _body(out) == {0: 1} and _events(out) == ["RecordStored"]
    out = s.receive(a.store(r1.to_cbor_value(), T0 + 3), a.address, T0 + 3, "a stores seq 1 again")
    assert _codes(out) == ["STALE_SEQUENCE"]
    key = derive_key(KeyType.ROOM, b"room-1")
    out = s.receive(
        c.request(MessageType.FIND_VALUE, FindValue(key=key).to_body(), T0 + 4),
        c.address,
        T0 + 4,
        "c asks FIND_VALUE for room-1",
    )
    body = _body(out)
    assert body[0] == [r2.to_cbor_value()] and body[2] is False
    assert [contact[0] for contact in body[1]] == [a.node_id]
    out = s.receive(
        c.request(
            MessageType.FIND_VALUE,
            FindValue(key=derive_key(KeyType.ROOM, b"room-9")).to_body(),
            T0 + 5,
        ),
        c.address,
        T0 + 5,
        "c asks FIND_VALUE for room-9",
    )
    assert _body(out)[0] == [] and _body(out)[2] is False

    s2 = DhtScript()
    a, b = DhtPeer("peer-0", 41000), DhtPeer("peer-1", 41001)
    ra = a.record(KeyType.PEER)
    out = s2.receive(
        b.store(ra.to_cbor_value(), T0), b.address, T0, "b stores a's peer record (replication)"
    )
    assert _types(out) == ["STORED"] and _events(out) == ["RecordStored"]
    others = [DhtPeer(f"member-{n}", 41100 + n) for n in range(3)]
    for n, member in enumerate(others):
        rec = member.record(KeyType.ROOM, b"room-1", value=bytes([n]))
        s2.receive(
            member.store(rec.to_cbor_value(), T0 + 1 + n),
            member.address,
            T0 + 1 + n,
            f"member {n} stores its room-1 record",
        )
    key = derive_key(KeyType.ROOM, b"room-1")
    out = s2.receive(
        b.request(MessageType.FIND_VALUE, FindValue(key=key).to_body(), T0 + 5),
        b.address,
        T0 + 5,
        "b asks FIND_VALUE for room-1",
    )
    publishers = [Record.from_cbor_value(r).publisher_id for r in _body(out)[0]]
    assert len(publishers) == 3 and publishers == sorted(publishers)
    return [
        (
            s,
            "STORE answers STORED / UNCHANGED / REPLACED or STALE_SEQUENCE; FIND_VALUE serves"
            " the newest record and closer contacts",
            "DHT-7.6",
            "invalid",
            ("Answered", "Records"),
        ),
        (
            s2,
            "a STORE is judged by the record, not by who sends it; a key holds one record per"
            " publisher, served in publisher-id order",
            "DHT-4.2",
            "valid",
            ("Answered", "Records"),
        ),
    ]


def _refusals() -> list[_Scenario]:
    s = DhtScript()
    a, b = DhtPeer("peer-0", 41000), DhtPeer("peer-1", 41001)
    good = a.record(KeyType.ROOM, b"room-1").to_cbor_value()
    fields = {i: good[i] for i in range(6)}
    big = {**fields, 5: bytes(257)}
    big[6] = a.identity.sign(RECORD_DOMAIN + cbor.encode(big))
    cases: list[tuple[object, str, str]] = [
        ({**good, 6: flip(good[6], 3)}, "a record with one signature bit flipped", "BAD_SIGNATURE"),
        (
            a.record(KeyType.PEER, b.node_id).to_cbor_value(),
            "a peer record naming peer b",
            "FORBIDDEN",
        ),
        (
            a.record(KeyType.CAPABILITY, b.node_id).to_cbor_value(),
            "a capability record naming peer b",
            "FORBIDDEN",
        ),
        (
            a.record(KeyType.ROOM, b"room-1", expires_ms=T0_MS).to_cbor_value(),
            "a record expiring exactly now",
            "EXPIRED",
        ),
        (
            a.record(
                KeyType.ROOM, b"room-1", expires_ms=T0_MS + round(MAX_TTL * 1000) + 1
            ).to_cbor_value(),
            "a record expiring 1 ms past the maximum TTL",
            "TTL_TOO_LONG",
        ),
        (big, "a validly signed record with a 257-byte value", "TOO_LARGE"),
        ({}, "an empty record map", "MALFORMED"),
        ({**good, 7: 0}, "a record with an extra key 7", "MALFORMED"),
    ]
    for n, (record, note, code) in enumerate(cases):
        out = s.receive(a.store(record, T0), a.address, T0, f"STORE {n} of {note}")
        assert _types(out) == ["ERROR"] and _codes(out) == [code], (note, out)
    at = T0 + 2
    bodies: list[tuple[int, dict[int, Any], str]] = [
        (MessageType.STORE, {0: cbor.encode(good)}, "STORE of the record as a byte string"),
        (MessageType.STORE, {}, "STORE with an empty body"),
        (MessageType.FIND_NODE, {0: bytes(31)}, "FIND_NODE of a 31-byte target"),
        (MessageType.FIND_NODE, {0: bytes(32), 1: b""}, "FIND_NODE with an extra key"),
        (MessageType.FIND_VALUE, {0: "key"}, "FIND_VALUE of a text key"),
    ]
    for msg_type, body, note in bodies:
        out = s.receive(a.request(msg_type, body, at), a.address, at, note)
        assert _codes(out) == ["MALFORMED"], (note, out)
    out = s.receive(a.ping(at), a.address, at, "then a PING")
    assert _types(out) == ["PONG"]
    out = s.receive(
        b.request(
            MessageType.FIND_VALUE, FindValue(key=derive_key(KeyType.ROOM, b"room-1")).to_body(), at
        ),
        b.address,
        at,
        "b asks FIND_VALUE for room-1: nothing was stored",
    )
    assert _body(out)[0] == []

    s2 = DhtScript()
    a = DhtPeer("peer-0", 41000)
    nodes = a.request(MessageType.NODES, {0: []}, T0)
    out = s2.receive(nodes, a.address, T0, "an unsolicited NODES response")
    assert not out["datagrams"]
    value = a.request(MessageType.VALUE, {0: [], 1: [], 2: False}, T0)
    out = s2.receive(value, a.address, T0, "an unsolicited VALUE response")
    assert not out["datagrams"]
    stored = a.request(MessageType.STORED, {0: 9}, T0)
    out = s2.receive(stored, a.address, T0, "a malformed STORED response")
    assert not out["datagrams"]
    return [
        (
            s,
            "refused records and malformed DHT requests get an ERROR naming why; the node"
            " keeps serving and holds nothing it refused",
            "DHT-7.7",
            "invalid",
            ("Refused", "Records"),
        ),
        (
            s2,
            "DHT responses that match no request get no reply",
            "DHT-7.7",
            "invalid",
            ("Refused",),
        ),
    ]


def _truncation() -> list[_Scenario]:
    s = DhtScript()
    asker = DhtPeer("asker", 41000)
    members = [DhtPeer(f"member-{n}", 41100 + n) for n in range(4)]
    for n, member in enumerate(members):
        rec = member.record(KeyType.ROOM, b"room-big", value=bytes([n]) * 256)
        out = s.receive(
            member.store(rec.to_cbor_value(), T0 + n / 8),
            member.address,
            T0 + n / 8,
            f"member {n} stores a record with a 256-byte value",
        )
        assert _types(out) == ["STORED"]
    key = derive_key(KeyType.ROOM, b"room-big")
    out = s.receive(
        asker.request(MessageType.FIND_VALUE, FindValue(key=key).to_body(), T0 + 1),
        asker.address,
        T0 + 1,
        "FIND_VALUE by datagram",
    )
    body = _body(out)
    assert len(body[0]) == 2 and body[2] is True
    assert len(bytes.fromhex(out["datagrams"][0]["data"])) <= 1200
    out = s.receive_stream(
        asker.request(MessageType.FIND_VALUE, FindValue(key=key).to_body(), T0 + 2),
        9,
        asker.address,
        T0 + 2,
        "the same FIND_VALUE on stream connection 9",
    )
    body = _body(out, "streamMessages")
    assert len(body[0]) == 4 and body[2] is False
    return [
        (
            s,
            "VALUE carries the records that fit the channel and says it left some out",
            "DHT-7.4",
            "valid",
            ("Answered", "Records", "Truncated", "Stream"),
        ),
    ]


def _expiry() -> list[_Scenario]:
    s = DhtScript()
    a = DhtPeer("peer-0", 41000)
    rec = a.record(KeyType.RENDEZVOUS, b"pickup-1", expires_ms=T0_MS + 10_000)
    out = s.receive(
        a.store(rec.to_cbor_value(), T0),
        a.address,
        T0,
        "a stores a rendezvous record expiring at T0 + 10 s",
    )
    assert _events(out) == ["RecordStored"]
    assert not s.timer(T0 + 9.999, "timer just before the expiry")["events"]
    out = s.timer(T0 + 10, "timer at the expiry")
    assert _events(out) == ["RecordDropped"]
    key = derive_key(KeyType.RENDEZVOUS, b"pickup-1")
    out = s.receive(
        a.request(MessageType.FIND_VALUE, FindValue(key=key).to_body(), T0 + 10),
        a.address,
        T0 + 10,
        "FIND_VALUE for the key",
    )
    assert _body(out)[0] == []
    return [
        (
            s,
            "a record is dropped at its expiry and no longer served",
            "DHT-4.3",
            "valid",
            ("Expiry", "Records"),
        ),
    ]


def _bucket_peers(count: int) -> list[DhtPeer]:
    """`count` peers that all fall into bucket 255 of the node under test."""
    node_id = node_under_test().node_id
    out: list[DhtPeer] = []
    n = 0
    while len(out) < count:
        candidate = Identity.from_seed(seed_for(f"dht_node/bucket-{n}"))
        if bucket_index(node_id, candidate.node_id) == 255:
            out.append(DhtPeer(f"bucket-{n}", 42000 + n))
        n += 1
    return out


def _eviction() -> list[_Scenario]:
    scenarios: list[_Scenario] = []
    for alive in (True, False):
        s = DhtScript()
        peers = _bucket_peers(21)
        for n, p in enumerate(peers[:20]):
            s.receive(p.ping(T0 + n / 16), p.address, T0 + n / 16, f"PING from bucket peer {n}")
        newcomer, oldest, asker = peers[20], peers[0], peers[1]
        out = s.receive(
            newcomer.ping(T0 + 2),
            newcomer.address,
            T0 + 2,
            "PING from a 21st peer of the same bucket",
        )
        # DHT-5.1 runs before the PING is served, so the check goes out first.
        assert _types(out) == ["PING", "PONG"]
        check = out["datagrams"][0]
        assert check["to"] == {"host": oldest.address[0], "port": oldest.address[1]}
        if alive:
            out = s.receive(
                oldest.answer(bytes.fromhex(check["data"]), T0 + 2.5),
                oldest.address,
                T0 + 2.5,
                "the oldest peer answers the check",
            )
            assert _events(out) == ["PongReceived"]
        else:
            out = s.timer(T0 + 7, "the check PING times out")
            assert _events(out) == ["RequestTimedOut"]
        find = FindNode(target=newcomer.node_id).to_body()
        out = s.receive(
            asker.request(MessageType.FIND_NODE, find, T0 + 8),
            asker.address,
            T0 + 8,
            "FIND_NODE for the newcomer's id",
        )
        ids = _contact_ids(out)
        assert len(ids) == 19 and asker.node_id not in ids
        if alive:
            assert newcomer.node_id not in ids and oldest.node_id in ids
            comment = (
                "a full bucket pings its least-recently seen contact; it answers and"
                " stays, the newcomer waits in the replacement cache"
            )
        else:
            assert ids[0] == newcomer.node_id and oldest.node_id not in ids
            comment = (
                "a full bucket pings its least-recently seen contact; it does not answer"
                " and is replaced by the newcomer"
            )
        scenarios.append((s, comment, "DHT-5.2", "valid", ("Eviction", "Contacts")))
    return scenarios


def build() -> JsonObject:
    v = Vectors("dht_node", "railgun-dht-node-v1", HEADER, NOTES)
    node = node_under_test()
    assert NODE_ADDR == ("127.0.0.1", 7000)
    config = {
        "requestTimeout": NODE_CONFIG.request_timeout,
        "maxClockSkew": NODE_CONFIG.max_clock_skew,
        "replayCapacity": NODE_CONFIG.replay_capacity,
    }
    tests = v.group(
        "NodeScriptTest",
        nodeSeed=node.identity.seed.hex(),
        nodeId=node.node_id.hex(),
        rngSeed=NODE_RNG_SEED,
        createdAt=T0,
        config=config,
    )
    for scenarios in (
        _find_node,
        _store_and_find_value,
        _refusals,
        _truncation,
        _expiry,
        _eviction,
    ):
        for script, comment, clause, result, flags in scenarios():
            v.test(
                tests, comment=comment, result=result, clause=clause, flags=flags, **script.finish()
            )
    return v.document()
