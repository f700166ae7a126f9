"""dht_node.json: one node serving the DHT over the wire (DHT-4.x, DHT-5.x, DHT-7.x).

The same `NodeScriptTest` format as node_ping.json, with a node of its own
seed: peers send it PINGs (so it learns them, DHT-5.1), FIND_NODE, FIND_VALUE
and STORE requests, good and bad, and every reply, event and request the node
makes is recorded byte for byte. Assertions restate what the spec says each
script must show, so a regression stops the generator.
"""

import dataclasses
import random
from collections.abc import Callable
from functools import partial
from typing import Any, Final

from railgun_ref.conformance.builders.base import T0, T0_MS, Vectors, flip, seed_for
from railgun_ref.conformance.builders.node_ping import (
    NODE_ADDR,
    NODE_CONFIG,
    Peer,
    Script,
    node_config_json,
)
from railgun_ref.conformance.common import JsonObject, address_json
from railgun_ref.core.constants import MAX_STREAM_MESSAGE_SIZE
from railgun_ref.core.ids import Address
from railgun_ref.dht.geometry import bucket_index, distance
from railgun_ref.dht.keys import KeyType, derive_key
from railgun_ref.dht.records import MAX_TTL, RECORD_DOMAIN, Record, sign_record
from railgun_ref.dht.service import DhtConfig
from railgun_ref.identity.keys import Identity
from railgun_ref.node import Node, NodeConfig
from railgun_ref.rooms.announce import room_announcement
from railgun_ref.rooms.ids import dht_ident_of
from railgun_ref.rpc.requests import Channel
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import encode_envelope
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
    "Requester": "The node under test runs a get and peers answer it.",
}

HEADER: Final = [
    "Scripted DHT behaviour of one node (DHT-4.x, DHT-5.x, DHT-7.x), in the format of",
    "node_ping.json: build the node from 'nodeSeed' at 'createdAt' with the default",
    "DHT parameters (DHT-9.1), feed each step's input at its 'now', and compare what",
    "it emits. Replies are byte-exact except ERROR replies (compare their summary).",
    "Requests the node sends on its own (the eviction check PING of DHT-5.2) carry",
    "request ids drawn from the reference's random.Random(rngSeed): compare those by",
    "summary (messageType, destination); the answer in the next step names that id.",
    "record_stored / record_dropped events name what a holder must persist or forget",
    "(DHT-4.5). Events and counters use the spec's names (OBS-1.1, OBS-1.2).",
    "A 'get' step starts the operation get(key) with 'quorum' (DHT-8.3) on the node under",
    "test; the FIND_VALUEs it sends are answered in later steps under their request ids.",
    "A group whose config has 'roomProofs': true runs a holder that checks the proof of",
    "room records on STORE (ROOM-6.5); without it, room records are plain sets (DHT-3.4).",
]


#: ROOM-6.5: the node of the room-proof group holds room records only with a valid proof.
ROOM_PROOFS_CONFIG: Final = dataclasses.replace(NODE_CONFIG, dht=DhtConfig(room_proofs=True))
#: The room secret the room-proof group's members know (never on the wire).
ROOM_SECRET: Final = seed_for("dht_node/room-secret")


def node_under_test(config: NodeConfig = NODE_CONFIG) -> Node:
    return Node(
        Identity.from_seed(seed_for(NODE_SEED_LABEL)),
        rng=random.Random(NODE_RNG_SEED),
        config=config,
        now=T0,
    )


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


class DhtScript(Script):
    """A `Script` whose node under test is this file's node, with DHT requests from peers."""

    def __init__(self, config: NodeConfig = NODE_CONFIG) -> None:
        self.node = node_under_test(config)
        self.steps = []

    def ask(
        self, peer: DhtPeer, msg_type: int, body: dict[int, Any], now: float, note: str
    ) -> JsonObject:
        """`peer` sends a request of `msg_type` by datagram at `now`."""
        return self.receive(peer.request(msg_type, body, now), peer.address, now, note)

    def find_node(self, peer: DhtPeer, target: bytes, now: float, note: str) -> JsonObject:
        return self.ask(peer, MessageType.FIND_NODE, FindNode(target=target).to_body(), now, note)

    def find_value(self, peer: DhtPeer, key: bytes, now: float, note: str) -> JsonObject:
        return self.ask(peer, MessageType.FIND_VALUE, FindValue(key=key).to_body(), now, note)

    def get(self, key: bytes, quorum: int, now: float, note: str) -> JsonObject:
        """The node under test starts a get of `key` (DHT-8.3)."""
        self.node.dht.get(key, now=now, quorum=quorum)
        return self._step({"op": "get", "comment": note, "now": now, "key": key.hex(),
                           "quorum": quorum})  # fmt: skip

    def store(self, peer: DhtPeer, record: object, now: float, note: str) -> JsonObject:
        """`peer` sends a STORE of `record` (a Record or any map) at `now`."""
        value = record.to_cbor_value() if isinstance(record, Record) else record
        return self.receive(peer.store(value, now), peer.address, now, note)


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


def _room_key(ident: bytes) -> bytes:
    return derive_key(KeyType.ROOM, ident)


# ------------------------------------------------------------------ FIND_NODE and contacts


def _find_node() -> Script:
    s = DhtScript()
    peers = [DhtPeer(f"peer-{n}", 41000 + n) for n in range(5)]
    for n, p in enumerate(peers):
        out = s.receive(p.ping(T0 + n / 8), p.address, T0 + n / 8, f"PING from peer {n}")
        assert _types(out) == ["PONG"]
    target = seed_for("dht_node/target")
    asker = peers[0]
    out = s.find_node(asker, target, T0 + 1, "peer 0 asks FIND_NODE for a target")
    ids = _contact_ids(out)
    assert _types(out) == ["NODES"] and asker.node_id not in ids and len(ids) == 4
    assert ids == sorted(ids, key=lambda i: distance(i, target))
    asker = peers[1]
    out = s.find_node(asker, peers[3].node_id, T0 + 2, "peer 1 asks FIND_NODE for peer 3's id")
    ids = _contact_ids(out)
    assert ids[0] == peers[3].node_id and asker.node_id not in ids
    out = s.find_node(asker, s.node.node_id, T0 + 3, "peer 1 asks FIND_NODE for the node's own id")
    assert s.node.node_id not in _contact_ids(out)
    return s


def _only_authenticated_contacts() -> Script:
    s = DhtScript()
    a, b, c, d = (DhtPeer(f"peer-{n}", 41000 + n) for n in range(4))
    s.receive(a.ping(T0), a.address, T0, "PING from peer a (datagram)")
    out = s.receive_stream(b.ping(T0, channel=Channel.STREAM), 5, b.address, T0,
                           "PING from peer b on stream connection 5")  # fmt: skip
    assert _types(out, "streamMessages") == ["PONG"]
    signed, signature = cbor.decode(c.ping(T0))
    out = s.receive(cbor.encode([signed, flip(signature, 300)]), c.address, T0,
                    "PING from peer c with a bad signature")  # fmt: skip
    assert not out["datagrams"]
    stranger = d.node.node_id
    named = Store(record=d.record(KeyType.PEER).to_cbor_value())
    out = s.ask(a, MessageType.STORE, named.to_body(), T0 + 1,
                "peer a stores peer d's presence record (d never talked to the node)")  # fmt: skip
    assert _types(out) == ["STORED"]
    out = s.find_node(a, stranger, T0 + 2, "peer a asks FIND_NODE for peer d's id")
    assert _contact_ids(out) == []
    out = s.find_node(d, stranger, T0 + 3, "peer d asks FIND_NODE for its own id")
    assert _contact_ids(out) == [a.node_id]
    return s


# ------------------------------------------------------------------ STORE and FIND_VALUE


def _store_outcomes() -> Script:
    s = DhtScript()
    a, _, c = (DhtPeer(f"peer-{n}", 41000 + n) for n in range(3))
    r1 = a.record(KeyType.ROOM, b"room-1", seq=1)
    out = s.store(a, r1, T0, "a stores its room-1 record")
    assert _types(out) == ["STORED"] and _body(out) == {0: 0}
    assert _events(out) == ["record_stored"]
    out = s.store(a, r1, T0 + 1, "a stores the same record again")
    assert _body(out) == {0: 2} and _events(out) == []
    r2 = a.record(KeyType.ROOM, b"room-1", seq=2, value=b"w")
    out = s.store(a, r2, T0 + 2, "a stores seq 2")
    assert _body(out) == {0: 1} and _events(out) == ["record_stored"]
    out = s.store(a, r1, T0 + 3, "a stores seq 1 again")
    assert _codes(out) == ["STALE_SEQUENCE"]
    body = _body(s.find_value(c, _room_key(b"room-1"), T0 + 4, "c asks FIND_VALUE for room-1"))
    assert body[0] == [r2.to_cbor_value()] and body[2] is False
    assert [contact[0] for contact in body[1]] == [a.node_id]
    out = s.find_value(c, _room_key(b"room-9"), T0 + 5, "c asks FIND_VALUE for room-9")
    assert _body(out)[0] == [] and _body(out)[2] is False
    return s


def _set_of_publishers() -> Script:
    s = DhtScript()
    a, b = DhtPeer("peer-0", 41000), DhtPeer("peer-1", 41001)
    out = s.store(b, a.record(KeyType.PEER), T0, "b stores a's peer record (replication)")
    assert _types(out) == ["STORED"] and _events(out) == ["record_stored"]
    others = [DhtPeer(f"member-{n}", 41100 + n) for n in range(3)]
    for n, member in enumerate(others):
        rec = member.record(KeyType.ROOM, b"room-1", value=bytes([n]))
        s.store(member, rec, T0 + 1 + n, f"member {n} stores its room-1 record")
    out = s.find_value(b, _room_key(b"room-1"), T0 + 5, "b asks FIND_VALUE for room-1")
    publishers = [Record.from_cbor_value(r).publisher_id for r in _body(out)[0]]
    assert len(publishers) == 3 and publishers == sorted(publishers)
    return s


# ------------------------------------------------------------------ refusals


def _refused_records(a: DhtPeer, b: DhtPeer) -> list[tuple[object, str, str]]:
    """(record map, note, the ERROR code a STORE of it gets)."""
    good = a.record(KeyType.ROOM, b"room-1").to_cbor_value()
    big = {**{i: good[i] for i in range(6)}, 5: bytes(257)}
    big[6] = a.identity.sign(RECORD_DOMAIN + cbor.encode(big))
    too_late = T0_MS + round(MAX_TTL * 1000) + 1
    return [
        ({**good, 6: flip(good[6], 3)}, "a record with one signature bit flipped", "BAD_SIGNATURE"),
        (a.record(KeyType.PEER, b.node_id).to_cbor_value(), "a peer record naming peer b",
         "FORBIDDEN"),
        (a.record(KeyType.CAPABILITY, b.node_id).to_cbor_value(),
         "a capability record naming peer b", "FORBIDDEN"),
        (a.record(KeyType.ROOM, b"room-1", expires_ms=T0_MS).to_cbor_value(),
         "a record expiring exactly now", "EXPIRED"),
        (a.record(KeyType.ROOM, b"room-1", expires_ms=too_late).to_cbor_value(),
         "a record expiring 1 ms past the maximum TTL", "TTL_TOO_LONG"),
        (big, "a validly signed record with a 257-byte value", "TOO_LARGE"),
        ({}, "an empty record map", "MALFORMED"),
        ({**good, 7: 0}, "a record with an extra key 7", "MALFORMED"),
    ]  # fmt: skip


def _malformed_requests(good: object) -> list[tuple[int, dict[int, Any], str]]:
    """(message type, body, note) of DHT requests refused as MALFORMED."""
    return [
        (MessageType.STORE, {0: cbor.encode(good)}, "STORE of the record as a byte string"),
        (MessageType.STORE, {}, "STORE with an empty body"),
        (MessageType.FIND_NODE, {0: bytes(31)}, "FIND_NODE of a 31-byte target"),
        (MessageType.FIND_NODE, {0: bytes(32), 1: b""}, "FIND_NODE with an extra key"),
        (MessageType.FIND_VALUE, {0: "key"}, "FIND_VALUE of a text key"),
    ]


def _refusals() -> Script:
    s = DhtScript()
    a, b = DhtPeer("peer-0", 41000), DhtPeer("peer-1", 41001)
    for n, (record, note, code) in enumerate(_refused_records(a, b)):
        out = s.store(a, record, T0, f"STORE {n} of {note}")
        assert _types(out) == ["ERROR"] and _codes(out) == [code], (note, out)
    at = T0 + 2
    good = a.record(KeyType.ROOM, b"room-1").to_cbor_value()
    for msg_type, body, note in _malformed_requests(good):
        out = s.ask(a, msg_type, body, at, note)
        assert _codes(out) == ["MALFORMED"], (note, out)
    assert _types(s.receive(a.ping(at), a.address, at, "then a PING")) == ["PONG"]
    out = s.find_value(b, _room_key(b"room-1"), at,
                       "b asks FIND_VALUE for room-1: nothing was stored")  # fmt: skip
    assert _body(out)[0] == []
    return s


def _unsolicited_responses() -> Script:
    s = DhtScript()
    a = DhtPeer("peer-0", 41000)
    out = s.ask(a, MessageType.NODES, {0: []}, T0, "an unsolicited NODES response")
    assert not out["datagrams"]
    out = s.ask(a, MessageType.VALUE, {0: [], 1: [], 2: False}, T0,
                "an unsolicited VALUE response")  # fmt: skip
    assert not out["datagrams"]
    out = s.ask(a, MessageType.STORED, {0: 9}, T0, "a malformed STORED response")
    assert not out["datagrams"]
    return s


# ------------------------------------------------------------------ truncation and expiry


def _truncation() -> Script:
    s = DhtScript()
    asker = DhtPeer("asker", 41000)
    members = [DhtPeer(f"member-{n}", 41100 + n) for n in range(4)]
    for n, member in enumerate(members):
        rec = member.record(KeyType.ROOM, b"room-big", value=bytes([n]) * 256)
        out = s.store(member, rec, T0 + n / 8, f"member {n} stores a record with a 256-byte value")
        assert _types(out) == ["STORED"]
    key = _room_key(b"room-big")
    out = s.find_value(asker, key, T0 + 1, "FIND_VALUE by datagram")
    body = _body(out)
    assert len(body[0]) == 2 and body[2] is True
    assert len(bytes.fromhex(out["datagrams"][0]["data"])) <= 1200
    request = asker.request(MessageType.FIND_VALUE, FindValue(key=key).to_body(), T0 + 2)
    out = s.receive_stream(request, 9, asker.address, T0 + 2,
                           "the same FIND_VALUE on stream connection 9")  # fmt: skip
    body = _body(out, "streamMessages")
    assert len(body[0]) == 4 and body[2] is False
    return s


def _request_of(out: JsonObject, key: str) -> tuple[int, dict[int, Any]]:
    """The request id and body of the one FIND_VALUE the node sent on `key`'s channel."""
    (message,) = out[key]
    assert message["messageType"] == "FIND_VALUE"
    return int(message["requestId"]), _body(out, key)


def _stream_fetch(*, answered: bool) -> Script:
    """A get meets a truncated VALUE: the node asks the holder again on a stream (DHT-7.8)."""
    s = DhtScript()
    holder = DhtPeer("holder", 41000)
    members = [DhtPeer(f"member-{n}", 41100 + n) for n in range(5)]
    records = sorted((m.record(KeyType.ROOM, b"room-big", value=bytes([n]) * 200)
                      for n, m in enumerate(members)), key=lambda r: r.publisher_id)  # fmt: skip
    maps = [r.to_cbor_value() for r in records]
    s.receive(holder.ping(T0), holder.address, T0, "PING from the holder (the node learns it)")
    key = _room_key(b"room-big")
    out = s.get(key, 1, T0 + 1, "the node starts get(room-big) with quorum 1")
    request_id, body = _request_of(out, "datagrams")
    assert body == {0: key} and out["datagrams"][0]["to"] == address_json(holder.address)
    value = holder.envelope(MessageType.VALUE, {0: maps[:2], 1: [], 2: True}, T0 + 1.1, request_id)
    out = s.receive(value, holder.address, T0 + 1.1,
                    "the holder answers with 2 of 5 records, truncated")  # fmt: skip
    request_id, body = _request_of(out, "streamMessages")
    assert body == {0: key} and not out["datagrams"] and _events(out) == []
    assert out["streamMessages"][0]["to"] == {"address": address_json(holder.address)}
    if answered:
        value = encode_envelope(holder.identity, type=MessageType.VALUE, request_id=request_id,
                                timestamp_ms=round((T0 + 1.2) * 1000),
                                body={0: maps, 1: [], 2: False},
                                max_size=MAX_STREAM_MESSAGE_SIZE)  # fmt: skip
        out = s.receive_stream(value, 4, holder.address, T0 + 1.2,
                               "the holder answers the stream FIND_VALUE with all 5")  # fmt: skip
        want = 5
    else:
        out = s.timer(T0 + 1.1 + NODE_CONFIG.request_timeout,
                      "the stream FIND_VALUE times out")  # fmt: skip
        want = 2
    assert _events(out)[-1] == "get_finished"
    assert len(out["events"][-1]["data"]["records"]) == want
    return s


def _expiry() -> Script:
    s = DhtScript()
    a = DhtPeer("peer-0", 41000)
    rec = a.record(KeyType.RENDEZVOUS, b"pickup-1", expires_ms=T0_MS + 10_000)
    out = s.store(a, rec, T0, "a stores a rendezvous record expiring at T0 + 10 s")
    assert _events(out) == ["record_stored"]
    assert not s.timer(T0 + 9.999, "timer just before the expiry")["events"]
    out = s.timer(T0 + 10, "timer at the expiry")
    assert _events(out) == ["record_dropped"]
    out = s.find_value(a, derive_key(KeyType.RENDEZVOUS, b"pickup-1"), T0 + 10,
                       "FIND_VALUE for the key")  # fmt: skip
    assert _body(out)[0] == []
    return s


# ------------------------------------------------------------------ eviction


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


def _eviction(*, alive: bool) -> Script:
    """A 21st peer of a full bucket; the oldest answers the check PING (`alive`) or not."""
    s = DhtScript()
    peers = _bucket_peers(21)
    for n, p in enumerate(peers[:20]):
        s.receive(p.ping(T0 + n / 16), p.address, T0 + n / 16, f"PING from bucket peer {n}")
    newcomer, oldest, asker = peers[20], peers[0], peers[1]
    out = s.receive(newcomer.ping(T0 + 2), newcomer.address, T0 + 2,
                    "PING from a 21st peer of the same bucket")  # fmt: skip
    # DHT-5.1 runs before the PING is served, so the check goes out first.
    assert _types(out) == ["PING", "PONG"]
    check = out["datagrams"][0]
    assert check["to"] == {"host": oldest.address[0], "port": oldest.address[1]}
    if alive:
        out = s.receive(oldest.answer(bytes.fromhex(check["data"]), T0 + 2.5), oldest.address,
                        T0 + 2.5, "the oldest peer answers the check")  # fmt: skip
        assert _events(out) == ["pong_received"]
    else:
        assert _events(s.timer(T0 + 7, "the check PING times out")) == ["request_timed_out"]
    ids = _contact_ids(s.find_node(asker, newcomer.node_id, T0 + 8,
                                   "FIND_NODE for the newcomer's id"))  # fmt: skip
    assert len(ids) == 19 and asker.node_id not in ids
    if alive:
        assert newcomer.node_id not in ids and oldest.node_id in ids
    else:
        assert ids[0] == newcomer.node_id and oldest.node_id not in ids
    return s


#: (script, comment, clause, result, flags) of every test, in file order.
SCENARIOS: Final[tuple[tuple[Callable[[], Script], str, str, str, tuple[str, ...]], ...]] = (
    (_find_node, "FIND_NODE is answered with the known contacts nearest the target first,"
     " without the asker or the node itself", "DHT-7.2", "valid", ("Answered", "Contacts")),
    (_only_authenticated_contacts, "only authenticated datagram senders become contacts: not"
     " stream senders, not forged PINGs, not nodes named in records", "DHT-5.1", "valid",
     ("Answered", "Contacts", "NotAuthenticated", "Stream")),
    (_store_outcomes, "STORE answers STORED / UNCHANGED / REPLACED or STALE_SEQUENCE; FIND_VALUE"
     " serves the newest record and closer contacts", "DHT-7.6", "invalid",
     ("Answered", "Records")),
    (_set_of_publishers, "a STORE is judged by the record, not by who sends it; a key holds one"
     " record per publisher, served in publisher-id order", "DHT-4.2", "valid",
     ("Answered", "Records")),
    (_refusals, "refused records and malformed DHT requests get an ERROR naming why; the node"
     " keeps serving and holds nothing it refused", "DHT-7.7", "invalid", ("Refused", "Records")),
    (_unsolicited_responses, "DHT responses that match no request get no reply", "DHT-7.7",
     "invalid", ("Refused",)),
    (_truncation, "VALUE carries the records that fit the channel and says it left some out",
     "DHT-7.4", "valid", ("Answered", "Records", "Truncated", "Stream")),
    (_expiry, "a record is dropped at its expiry and no longer served", "DHT-4.3", "valid",
     ("Expiry", "Records")),
    (partial(_eviction, alive=True), "a full bucket pings its least-recently seen contact; it"
     " answers and stays, the newcomer waits in the replacement cache", "DHT-5.2", "valid",
     ("Eviction", "Contacts")),
    (partial(_eviction, alive=False), "a full bucket pings its least-recently seen contact; it"
     " does not answer and is replaced by the newcomer", "DHT-5.2", "valid",
     ("Eviction", "Contacts")),
    (partial(_stream_fetch, answered=True), "a get that meets a truncated VALUE asks the same"
     " holder again on a stream and reports the records of both answers", "DHT-7.8", "valid",
     ("Requester", "Truncated", "Stream", "Records")),
    (partial(_stream_fetch, answered=False), "a get whose stream FIND_VALUE times out reports"
     " what the datagram answer carried, after the timeout", "DHT-7.8", "valid",
     ("Requester", "Truncated", "Stream")),
)  # fmt: skip


def _room_proof_records(member: DhtPeer, forger: DhtPeer) -> list[tuple[Record, str, str]]:
    """(record, note, the ERROR code a checking holder answers) for ROOM-6.5."""
    room = dht_ident_of(ROOM_SECRET)
    host, port = forger.address
    guessed = room_announcement(bytes(32), publisher=forger.identity.public_key, host=host,
                                port=port)  # fmt: skip
    replayed = _member_announcement(member)
    return [
        (forger.record(KeyType.ROOM, room, value=cbor.encode({0: 1, 1: host, 2: port})),
         "an address with no proof of the room secret", "MALFORMED"),
        (forger.record(KeyType.ROOM, room, value=guessed),
         "a proof made from a guessed secret (its announce key gives another DHT ident)",
         "WRONG_KEY"),
        (forger.record(KeyType.ROOM, room, value=replayed),
         "a member's announcement copied by another publisher", "FORBIDDEN"),
    ]  # fmt: skip


def _member_announcement(member: DhtPeer) -> bytes:
    host, port = member.address
    return room_announcement(ROOM_SECRET, publisher=member.identity.public_key, host=host,
                             port=port)  # fmt: skip


def _room_proofs() -> Script:
    """ROOM-6.5: a checking holder keeps the member's record and refuses the forgeries."""
    s = DhtScript(ROOM_PROOFS_CONFIG)
    member, forger = DhtPeer("room-member", 41200), DhtPeer("room-forger", 41201)
    room = dht_ident_of(ROOM_SECRET)
    good = member.record(KeyType.ROOM, room, value=_member_announcement(member))
    out = s.store(member, good, T0, "STORE of a member's announcement with its proof")
    assert _types(out) == ["STORED"], out
    for n, (record, note, code) in enumerate(_room_proof_records(member, forger)):
        out = s.store(forger, record, T0 + 1 + n, f"STORE of {note}")
        assert _types(out) == ["ERROR"] and _codes(out) == [code], (note, out)
    out = s.find_value(member, _room_key(room), T0 + 5, "FIND_VALUE: only the member's record")
    assert _types(out) == ["VALUE"] and len(_body(out)[0]) == 1, out
    return s


def build() -> JsonObject:
    v = Vectors("dht_node", "railgun-dht-node-v1", HEADER, NOTES)
    node = node_under_test()
    assert NODE_ADDR == ("127.0.0.1", 7000)
    tests = v.group(
        "NodeScriptTest",
        nodeSeed=node.identity.seed.hex(),
        nodeId=node.node_id.hex(),
        rngSeed=NODE_RNG_SEED,
        createdAt=T0,
        config=node_config_json(),
    )
    for make, comment, clause, result, flags in SCENARIOS:
        v.test(tests, comment=comment, result=result, clause=clause, flags=flags, **make().finish())
    proofs = v.group(
        "NodeScriptTest",
        nodeSeed=node.identity.seed.hex(),
        nodeId=node.node_id.hex(),
        rngSeed=NODE_RNG_SEED,
        createdAt=T0,
        config={**node_config_json(), "roomProofs": True},
    )
    v.test(proofs, comment="a holder checking room proofs stores a member's announcement and"
           " refuses forged room records by their code", result="invalid", clause="ROOM-6.5",
           flags=("Refused", "Records"), **_room_proofs().finish())  # fmt: skip
    return v.document()
