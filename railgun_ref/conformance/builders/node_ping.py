"""node_ping.json: scripted behaviour of one node (NODE-1.x, MSG-x, RPC-1.x, ENV-2.3/2.4).

Each test is a script: a fresh node under test (fixed seed and RNG seed) is fed
inputs — datagrams and stream messages from fixed peers, its own `ping` calls,
timer calls — each at a fixed `now`, and everything it emits after each step
is recorded with `common.drain`. The inputs are made by well-behaved peer
nodes (so they are real traffic) or built by hand where the point is that they
are wrong. Assertions here restate what the spec says each script must show,
so a regression in the node stops the generator instead of silently changing
a vector.
"""

import random
from collections.abc import Callable
from typing import Any, Final

from railgun_ref.conformance.builders.base import T0, T0_MS, Vectors, flip, pseudo_random, seed_for
from railgun_ref.conformance.builders.base import payload_for_size as _payload_for_size
from railgun_ref.conformance.builders.envelope import seal, signed_fields
from railgun_ref.conformance.common import (
    JsonObject,
    address_json,
    base_counters,
    drain,
    take_outputs,
)
from railgun_ref.core.constants import MAX_DATAGRAM_SIZE
from railgun_ref.core.errors import ErrorCode
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.identity import ed25519_math as ed
from railgun_ref.identity.keys import Identity
from railgun_ref.node import ConnectionId, Node, NodeConfig
from railgun_ref.rpc.requests import Channel
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import decode_envelope, encode_envelope
from railgun_ref.wire.messages import ErrorReply, MessageType, Pong, decode_contact

NODE_ADDR: Final[Address] = ("127.0.0.1", 7000)
PEER_A: Final[Address] = ("127.0.0.1", 40001)
PEER_B: Final[Address] = ("127.0.0.1", 40002)
PEER_V6: Final[Address] = ("::1", 40003)
NODE_RNG_SEED: Final = 7000
NODE_CONFIG: Final = NodeConfig()

NOTES: Final = {
    "Answered": "A request the node must answer.",
    "NoReply": "An input the node must refuse without any reply (NODE-1.2).",
    "Boundary": "A time exactly at a limit.",
    "Stream": "Input arriving on a stream connection.",
    "IPv6": "A peer with an IPv6 address.",
    "Request": "The node under test sends a request and handles its outcome.",
}

HEADER: Final = [
    "Scripted behaviour of one node (NODE-1.x, MSG-x, RPC-1.x, ENV-2.3/2.4).",
    "Build the node from 'nodeSeed' at time 'createdAt' and feed each step's input",
    "at its 'now' (seconds since the Unix epoch). After each step the node must have",
    "emitted exactly the 'expect' datagrams and stream messages, in order, and hold",
    "'requestsInFlight' requests. Emitted messages are byte-exact except ERROR",
    "replies, whose reason text is informative (MSG-3.1): compare those by their",
    "summary (messageType, requestId, errorCode). 'result' is invalid when the",
    "script feeds input the node must refuse.",
    "Request ids: the reference draws them from Python's random.Random(rngSeed);",
    "a 'ping' step records the id drawn in expect.requestId, so another",
    "implementation injects that id instead. Events and 'counters' use the spec's",
    "names (OBS-1.1, OBS-1.2: e.g. pong_received, refused.<CODE>, requests.<TYPE>),",
    "event fields in lowerCamelCase; an implementation maps its own names onto them.",
]


def node_under_test() -> Node:
    return Node(
        Identity.from_seed(seed_for("node_ping/node")),
        rng=random.Random(NODE_RNG_SEED),
        config=NODE_CONFIG,
        now=T0,
    )


class Script:
    """The node under test fed scripted inputs, recording what it emits."""

    def __init__(self) -> None:
        self.node = node_under_test()
        self.steps: list[JsonObject] = []

    def _step(self, step: JsonObject) -> JsonObject:
        expect = drain(self.node)
        step["expect"] = expect
        self.steps.append(step)
        return expect

    def receive(self, data: bytes, source: Address, now: float, note: str) -> JsonObject:
        self.node.receive_datagram(data, source, now=now)
        return self._step({"op": "receive_datagram", "comment": note, "now": now,
                           "from": address_json(source), "data": data.hex()})  # fmt: skip

    def receive_stream(
        self, data: bytes, connection: int, source: Address, now: float, note: str
    ) -> JsonObject:
        self.node.receive_stream_message(data, ConnectionId(connection), source, now=now)
        return self._step({"op": "receive_stream", "comment": note, "now": now,
                           "connection": connection, "from": address_json(source),
                           "data": data.hex()})  # fmt: skip

    def ping(self, to: Address, now: float, note: str, *, expected_peer: bytes | None = None,
             payload: bytes = b"") -> bytes:  # fmt: skip
        """Make the node send a PING; returns the datagram it emitted."""
        peer = None if expected_peer is None else NodeId(expected_peer)
        request_id = self.node.ping(to, now=now, payload=payload, expected_peer=peer)
        expect = self._step({"op": "ping", "comment": note, "now": now, "to": address_json(to),
                             "payload": payload.hex(),
                             "expectedPeer": None if peer is None else peer.hex()})  # fmt: skip
        expect["requestId"] = str(request_id)
        (datagram,) = expect["datagrams"]
        return bytes.fromhex(datagram["data"])

    def timer(self, now: float, note: str) -> JsonObject:
        self.node.on_timer(now=now)
        return self._step({"op": "timer", "comment": note, "now": now})

    def finish(self) -> JsonObject:
        return {"steps": self.steps, "counters": base_counters(self.node.counters)}


class Peer:
    """A well-behaved peer whose traffic is the scripted input."""

    def __init__(self, label: str, rng_seed: int) -> None:
        self.identity = Identity.from_seed(seed_for(label))
        self.node = Node(self.identity, rng=random.Random(rng_seed), now=T0)

    def ping(self, now: float, payload: bytes = b"", channel: Channel = Channel.DATAGRAM) -> bytes:
        self.node.ping(NODE_ADDR, now=now, payload=payload, channel=channel)
        out = take_outputs(self.node)
        ((data, _),) = out.streams if channel is Channel.STREAM else out.datagrams
        return data

    def answer(self, request: bytes, now: float) -> bytes:
        self.node.receive_datagram(request, NODE_ADDR, now=now)
        ((data, _),) = take_outputs(self.node).datagrams
        return data

    def envelope(self, msg_type: int, body: dict[int, Any], now: float, request_id: int) -> bytes:
        return encode_envelope(self.identity, type=msg_type, request_id=request_id,
                               timestamp_ms=round(now * 1000), body=body)  # fmt: skip


def _peers() -> tuple[Peer, Peer]:
    return Peer("node_ping/peer-a", 1), Peer("node_ping/peer-b", 2)


def _types(out: JsonObject, key: str = "datagrams") -> list[str]:
    return [message["messageType"] for message in out[key]]


def _events(out: JsonObject) -> list[str]:
    return [event["event"] for event in out["events"]]


def _rejected(out: JsonObject) -> list[str]:
    return [e["data"]["code"] for e in out["events"] if e["event"] == "message_refused"]


def _silent_refusal(out: JsonObject, code: str) -> bool:
    return _rejected(out) == [code] and not out["datagrams"] and not out["streamMessages"]


# ------------------------------------------------------------------ answered PINGs


def _pong_to_source() -> Script:
    s, (a, _) = Script(), _peers()
    out = s.receive(a.ping(T0, b"hi"), PEER_A, T0, "PING from peer A")
    assert _types(out) == ["PONG"] and out["datagrams"][0]["to"] == address_json(PEER_A)
    return s


def _pong_to_ipv6() -> Script:
    s = Script()
    out = s.receive(Peer("node_ping/peer-v6", 3).ping(T0), PEER_V6, T0, "PING from ::1")
    assert _types(out) == ["PONG"] and out["datagrams"][0]["to"] == address_json(PEER_V6)
    return s


def _pong_timestamp() -> Script:
    s, (a, _) = Script(), _peers()
    out = s.receive(a.ping(T0), PEER_A, T0 + 0.2506, "PING from A, received at T0 + 0.2506 s")
    assert out["datagrams"][0]["timestampMs"] == T0_MS + 251
    return s


def _pong_half_millisecond() -> Script:
    """ENV-1.5 Decision: an exact half millisecond rounds to the even neighbour."""
    s, (a, _) = Script(), _peers()
    # 1/16 s and 3/16 s are binary fractions, so these clock readings are exact.
    out = s.receive(a.ping(T0), PEER_A, T0 + 0.0625, "PING received at T0 + 0.0625 s")
    assert out["datagrams"][0]["timestampMs"] == T0_MS + 62  # 62.5 ms -> 62 (even)
    out = s.receive(a.ping(T0), PEER_A, T0 + 0.1875, "another received at T0 + 0.1875 s")
    assert out["datagrams"][0]["timestampMs"] == T0_MS + 188  # 187.5 ms -> 188 (even)
    return s


def _request_ids_drawn() -> Script:
    """RPC-1.1 Decision: ids are getrandbits(64) of random.Random(rngSeed), in order."""
    s = Script()
    draws = random.Random(NODE_RNG_SEED)
    for n, to in enumerate((PEER_A, PEER_B, PEER_A)):
        request = s.ping(to, T0 + n, f"request {n + 1}: the node pings {to[0]}:{to[1]}")
        assert _request_id(request) == draws.getrandbits(64)
    return s


def _ping_completed() -> Script:
    s, (a, _) = Script(), _peers()
    request = s.ping(PEER_A, T0, "the node pings peer A", payload=b"probe")
    out = s.receive(a.answer(request, T0 + 0.25), PEER_A, T0 + 0.25, "A's PONG")
    assert _events(out) == ["pong_received"] and out["requestsInFlight"] == 0
    return s


# ------------------------------------------------------------------ freshness


def _replayed() -> Script:
    s, (a, _) = Script(), _peers()
    ping = a.ping(T0)
    s.receive(ping, PEER_A, T0, "PING from A")
    assert _silent_refusal(s.receive(ping, PEER_A, T0 + 1, "the same PING again"), "REPLAY")
    out = s.receive(ping, PEER_B, T0 + 2, "the same PING from another address")
    assert _silent_refusal(out, "REPLAY")
    assert _types(s.receive(a.ping(T0 + 3), PEER_A, T0 + 3, "a new PING from A")) == ["PONG"]
    return s


def _replay_then_stale() -> Script:
    s, (a, _) = Script(), _peers()
    ping = a.ping(T0)
    s.receive(ping, PEER_A, T0, "PING from A")
    out = s.receive(ping, PEER_A, T0 + 300, "the same PING 300 s later: fresh and remembered")
    assert _silent_refusal(out, "REPLAY")
    out = s.receive(ping, PEER_A, T0 + 300.5, "the same PING 300.5 s later")
    assert _silent_refusal(out, "STALE")
    return s


def _stale() -> Script:
    s, (a, _) = Script(), _peers()
    out = s.receive(a.ping(T0 - 300.001), PEER_A, T0, "PING stamped 300.001 s ago")
    assert _silent_refusal(out, "STALE")
    out = s.receive(a.ping(T0 + 300.001), PEER_A, T0, "PING stamped 300.001 s ahead")
    assert _silent_refusal(out, "STALE")
    return s


def _fresh_at_the_limit() -> Script:
    s, (a, _) = Script(), _peers()
    assert _types(s.receive(a.ping(T0 - 300), PEER_A, T0, "PING stamped 300 s ago")) == ["PONG"]
    assert _types(s.receive(a.ping(T0 + 300), PEER_A, T0, "PING stamped 300 s ahead")) == ["PONG"]
    return s


# ------------------------------------------------------------------ unknown and malformed


def _unknown_type() -> Script:
    s, (a, _) = Script(), _peers()
    out = s.receive(a.envelope(99, {}, T0, 77), PEER_A, T0, "an envelope of type 99")
    assert _types(out) == ["ERROR"] and _rejected(out) == ["UNKNOWN_TYPE"]
    return s


def _unknown_type_on_stream() -> Script:
    s, (a, _) = Script(), _peers()
    out = s.receive_stream(a.envelope(99, {}, T0, 77), 3, PEER_A, T0, "type 99 on connection 3")
    assert _types(out, "streamMessages") == ["ERROR"] and not out["datagrams"]
    assert out["streamMessages"][0]["to"] == {"connection": 3}
    return s


def _malformed_bodies() -> Script:
    s, (a, _) = Script(), _peers()
    out = s.receive(a.envelope(MessageType.PING, {0: b"", 1: 0}, T0, 77), PEER_A, T0,
                    "PING body with an extra key 1")  # fmt: skip
    assert _types(out) == ["ERROR"] and _rejected(out) == ["MALFORMED"]
    out = s.receive(a.envelope(MessageType.PING, {0: "text"}, T0, 78), PEER_A, T0,
                    "PING payload as text")  # fmt: skip
    assert _types(out) == ["ERROR"] and _rejected(out) == ["MALFORMED"]
    request = s.ping(PEER_A, T0, "the node pings A")
    pong = a.envelope(MessageType.PONG, {0: ["127.0.0.1", 7000]}, T0 + 1, _request_id(request))
    out = s.receive(pong, PEER_A, T0 + 1, "a PONG body without its payload key")
    assert _silent_refusal(out, "MALFORMED") and out["requestsInFlight"] == 1
    return s


# ------------------------------------------------------------------ unauthenticated input


def _garbage_cases(a: Peer, good: bytes) -> list[tuple[bytes, str, str]]:
    """(datagram, note, the code it is refused with) of input that fails authentication."""
    signed, signature = cbor.decode(good)
    version2 = signed_fields(a.identity.public_key, k0=2, k4=T0_MS)
    return [
        (pseudo_random("node_ping/garbage", 100), "100 random bytes", "MALFORMED"),
        (good[:-10], "an envelope cut short", "MALFORMED"),
        (cbor.encode([signed, flip(signature, 300)]), "a bad signature", "BAD_SIGNATURE"),
        (pseudo_random("node_ping/oversize", 1300), "1300 bytes", "TOO_LARGE"),
        (seal(a.identity, cbor.encode(version2)), "a signed envelope of version 2",
         "UNSUPPORTED_VERSION"),
        (seal(a.identity, cbor.encode(signed_fields(ed.encode(ed.IDENTITY)))),
         "sender key = the identity point", "BAD_KEY"),
    ]  # fmt: skip


def _garbage() -> Script:
    s, (a, _) = Script(), _peers()
    good = a.ping(T0)
    for data, note, code in _garbage_cases(a, good):
        assert _silent_refusal(s.receive(data, PEER_B, T0, note), code), note
    assert _types(s.receive(good, PEER_A, T0 + 1, "then a good PING")) == ["PONG"]
    return s


def _stream_per_envelope() -> Script:
    s, (a, _) = Script(), _peers()
    good = a.ping(T0)
    signed, signature = cbor.decode(good)
    out = s.receive_stream(cbor.encode([signed, flip(signature, 300)]), 4, PEER_A, T0,
                           "a bad signature on stream connection 4")  # fmt: skip
    assert _silent_refusal(out, "BAD_SIGNATURE")
    out = s.receive_stream(good, 4, PEER_A, T0, "the good PING on the same connection")
    assert _types(out, "streamMessages") == ["PONG"]
    big = a.ping(T0 + 1, payload=bytes(1200), channel=Channel.STREAM)
    out = s.receive_stream(big, 4, PEER_A, T0 + 1, "a PING of over 1200 bytes on the stream")
    assert len(big) > MAX_DATAGRAM_SIZE and _types(out, "streamMessages") == ["PONG"]
    return s


def _forged_pong() -> Script:
    s, (a, _) = Script(), _peers()
    request = s.ping(PEER_A, T0, "the node pings A")
    pong = a.answer(request, T0 + 0.5)
    signed, signature = cbor.decode(pong)
    forged = cbor.encode([signed, flip(signature, 300)])
    out = s.receive(forged, PEER_A, T0 + 0.5, "A's PONG with one signature bit flipped")
    assert _silent_refusal(out, "BAD_SIGNATURE") and out["requestsInFlight"] == 1
    out = s.receive(pong, PEER_A, T0 + 0.6, "A's genuine PONG")
    assert _events(out) == ["pong_received"] and out["requestsInFlight"] == 0
    return s


def _junk_while_waiting() -> Script:
    s, (a, _) = Script(), _peers()
    request = s.ping(PEER_A, T0, "the node pings A")
    for index in range(3):
        junk = pseudo_random(f"node_ping/junk-{index}", 50 + index)
        out = s.receive(junk, PEER_B, T0 + 0.1, f"junk datagram {index}")
        assert _rejected(out) == ["MALFORMED"]
    out = s.receive(a.answer(request, T0 + 0.2), PEER_A, T0 + 0.2, "A's PONG")
    assert _events(out) == ["pong_received"]
    out = s.receive(a.ping(T0 + 0.3), PEER_A, T0 + 0.3, "a PING from A")
    assert _types(out) == ["PONG"]
    return s


def _too_large_reply() -> Script:
    s, (a, _) = Script(), _peers()
    payload = _payload_for_size(
        lambda n: a.envelope(MessageType.PING, {0: bytes(n)}, T0, 77), MAX_DATAGRAM_SIZE
    )
    ping = a.envelope(MessageType.PING, {0: payload}, T0, 77)
    out = s.receive(ping, PEER_A, T0, "a PING of exactly 1200 bytes")
    assert len(ping) == MAX_DATAGRAM_SIZE and _types(out) == ["ERROR"]
    return s


# ------------------------------------------------------------------ responses


def _request_id(request: bytes) -> int:
    """The request id of an envelope the node emitted."""
    request_id: int = cbor.decode(cbor.decode(request)[0])[2]
    return request_id


def _unsolicited() -> Script:
    s, (a, _) = Script(), _peers()
    pong = a.envelope(MessageType.PONG, Pong(observed=NODE_ADDR).to_body(), T0, 77)
    out = s.receive(pong, PEER_A, T0, "a PONG for request 77, which the node never sent")
    assert _silent_refusal(out, "UNEXPECTED_RESPONSE")
    error = a.envelope(MessageType.ERROR, ErrorReply(code=5, reason="x").to_body(), T0, 78)
    out = s.receive(error, PEER_A, T0, "an ERROR for request 78, which the node never sent")
    assert _silent_refusal(out, "UNEXPECTED_RESPONSE")
    return s


def _timeout() -> Script:
    s, (a, _) = Script(), _peers()
    request = s.ping(PEER_A, T0, "the node pings A")
    out = s.timer(T0 + 4.999, "just before the deadline")
    assert not out["events"] and out["requestsInFlight"] == 1
    assert _events(s.timer(T0 + 5.0, "exactly at the deadline")) == ["request_timed_out"]
    assert not s.timer(T0 + 6.0, "later: nothing more")["events"]
    out = s.receive(a.answer(request, T0 + 5.5), PEER_A, T0 + 5.5, "A's late PONG")
    assert _silent_refusal(out, "UNEXPECTED_RESPONSE")
    return s


def _wrong_signer() -> Script:
    s, (a, b) = Script(), _peers()
    request = s.ping(PEER_A, T0, "the node pings A, expecting A's node id",
                     expected_peer=a.identity.node_id)  # fmt: skip
    out = s.receive(b.answer(request, T0 + 0.5), PEER_A, T0 + 0.5,
                    "B answers the request id, from A's address")  # fmt: skip
    assert _silent_refusal(out, "WRONG_SENDER") and out["requestsInFlight"] == 1
    out = s.receive(a.answer(request, T0 + 1), PEER_A, T0 + 1, "then A answers")
    assert _events(out) == ["pong_received"]
    return s


def _wrong_signer_remembered() -> Script:
    """RPC-1.3 Decision: a WRONG_SENDER response passed ENV-2.4 and DHT-5.1 before it was
    refused, so its triple is remembered and its signer is filed at the address it came from."""
    s, (a, b) = Script(), _peers()
    request = s.ping(PEER_A, T0, "the node pings A, expecting A's node id",
                     expected_peer=a.identity.node_id)  # fmt: skip
    wrong = b.answer(request, T0 + 0.5)
    out = s.receive(wrong, PEER_A, T0 + 0.5, "B answers the request id, from A's address")
    assert _silent_refusal(out, "WRONG_SENDER") and out["requestsInFlight"] == 1
    out = s.receive(wrong, PEER_A, T0 + 0.6, "the same bytes again: remembered, a replay")
    assert _silent_refusal(out, "REPLAY") and out["requestsInFlight"] == 1
    find = a.envelope(MessageType.FIND_NODE, {0: b.identity.node_id}, T0 + 0.7, 77)
    out = s.receive(find, PEER_A, T0 + 0.7, "A asks for B's id: B is filed at A's address")
    assert _types(out) == ["NODES"]
    (nodes,) = out["datagrams"]
    contacts = decode_envelope(bytes.fromhex(nodes["data"])).body[0]
    assert [decode_contact(c) for c in contacts] == [(b.identity.node_id, PEER_A)]
    out = s.receive(a.answer(request, T0 + 1), PEER_A, T0 + 1, "then A answers the PING")
    assert _events(out) == ["pong_received"]
    return s


def _any_signer() -> Script:
    s, (_, b) = Script(), _peers()
    request = s.ping(PEER_A, T0, "the node pings A's address with no expected peer")
    out = s.receive(b.answer(request, T0 + 0.5), PEER_B, T0 + 0.5, "B answers from B's address")
    assert _events(out) == ["pong_received"]
    return s


def _error_response() -> Script:
    s, (a, _) = Script(), _peers()
    request = s.ping(PEER_A, T0, "the node pings A")
    error = a.envelope(MessageType.ERROR, {0: int(ErrorCode.TOO_LARGE), 1: "r" * 200}, T0 + 1,
                       _request_id(request))  # fmt: skip
    out = s.receive(error, PEER_A, T0 + 1, "A answers with ERROR TOO_LARGE")
    assert _events(out) == ["error_received"] and out["requestsInFlight"] == 0
    return s


def _wrong_response_type() -> Script:
    s, (a, _) = Script(), _peers()
    request = s.ping(PEER_A, T0, "the node pings A")
    nodes = a.envelope(MessageType.NODES, {0: []}, T0 + 1, _request_id(request))
    out = s.receive(nodes, PEER_A, T0 + 1, "A answers the PING with a NODES response")
    assert _silent_refusal(out, "UNEXPECTED_RESPONSE") and out["requestsInFlight"] == 1
    out = s.receive(a.answer(request, T0 + 2), PEER_A, T0 + 2, "then with the PONG")
    assert _events(out) == ["pong_received"] and out["requestsInFlight"] == 0
    return s


#: (script, comment, clause, result, flags) of every test, in file order.
SCENARIOS: Final[tuple[tuple[Callable[[], Script], str, str, str, tuple[str, ...]], ...]] = (
    (_pong_to_source, "PING gets a PONG to its source address, echoing the payload", "MSG-2.2",
     "valid", ("Answered",)),
    (_pong_to_ipv6, "PONG to an IPv6 peer carries its IPv6 address", "MSG-2.3", "valid",
     ("Answered", "IPv6")),
    (_pong_timestamp, "the PONG is stamped with the node's clock, rounded to the millisecond",
     "ENV-1.5", "valid", ("Answered",)),
    (_pong_half_millisecond, "stamps of exact half milliseconds round to the even neighbour",
     "ENV-1.5", "valid", ("Answered", "Boundary")),
    (_request_ids_drawn, "request ids are getrandbits(64) of random.Random(rngSeed), in order",
     "RPC-1.1", "valid", ("Request",)),
    (_ping_completed, "a PING request completed by its PONG (rtt 0.25 s)", "RPC-1.1", "valid",
     ("Request",)),
    (_replayed, "a replayed PING is refused with no reply, from any address", "ENV-2.4",
     "invalid", ("NoReply",)),
    (_replay_then_stale, "a PING replayed at 300 s is a replay; after that it is stale",
     "ENV-2.4", "invalid", ("NoReply", "Boundary")),
    (_stale, "PINGs more than 300 s off the receiver's clock are stale", "ENV-2.3", "invalid",
     ("NoReply",)),
    (_fresh_at_the_limit, "PINGs exactly 300 s off are fresh", "ENV-2.3", "valid",
     ("Answered", "Boundary")),
    (_unknown_type, "an authenticated envelope of unknown type 99 gets ERROR UNKNOWN_TYPE",
     "MSG-1.3", "invalid", ("Answered",)),
    (_unknown_type_on_stream, "ERROR UNKNOWN_TYPE goes back on the stream connection it came on",
     "NODE-1.3", "invalid", ("Answered", "Stream")),
    (_malformed_bodies, "a malformed request body gets ERROR MALFORMED; a malformed response"
     " nothing", "MSG-1.2", "invalid", ("Answered", "NoReply")),
    (_forged_pong, "a forged PONG changes nothing: the request stays in flight for the real one",
     "ENV-2.2", "invalid", ("Request", "NoReply")),
    (_junk_while_waiting, "refused input is counted and leaves the node's state and service"
     " intact", "NODE-1.1", "invalid", ("Request", "NoReply")),
    (_garbage, "unauthenticated input is counted, never answered, and the node keeps serving",
     "NODE-1.2", "invalid", ("NoReply",)),
    (_stream_per_envelope, "stream peers are authenticated per envelope; replies go back on the"
     " connection", "STR-1.4", "invalid", ("Stream", "NoReply")),
    (_too_large_reply, "a PONG that would exceed 1200 bytes is replaced by ERROR TOO_LARGE",
     "NODE-1.4", "valid", ("Answered", "Boundary")),
    (_unsolicited, "responses to no request in flight are refused without reply", "RPC-1.3",
     "invalid", ("NoReply",)),
    (_timeout, "a request times out exactly at its deadline; a late PONG is unexpected",
     "RPC-1.2", "invalid", ("Request", "Boundary")),
    (_wrong_signer, "a PONG signed by another node than the expected one is refused and the"
     " request stays in flight", "RPC-1.3", "invalid", ("Request",)),
    (_wrong_signer_remembered, "a WRONG_SENDER response is remembered (a replay after) and its"
     " signer filed at the address it came from", "RPC-1.3", "invalid", ("Request", "NoReply")),
    (_any_signer, "with no expected peer, any signer's PONG with the request id completes it",
     "RPC-1.3", "valid", ("Request",)),
    (_error_response, "an ERROR response completes the request it names", "MSG-3.1", "valid",
     ("Request",)),
    (_wrong_response_type, "a response of the wrong type is refused and the request stays in"
     " flight", "RPC-1.4", "invalid", ("Request", "NoReply")),
)  # fmt: skip


def node_config_json() -> JsonObject:
    """The node configuration every NodeScriptTest group states."""
    return {
        "requestTimeout": NODE_CONFIG.request_timeout,
        "maxClockSkew": NODE_CONFIG.max_clock_skew,
        "replayCapacity": NODE_CONFIG.replay_capacity,
    }


def build() -> JsonObject:
    v = Vectors("node_ping", "railgun-node-ping-v1", HEADER, NOTES)
    node = node_under_test()
    tests = v.group("NodeScriptTest", nodeSeed=node.identity.seed.hex(),
                    nodeId=node.node_id.hex(), rngSeed=NODE_RNG_SEED, createdAt=T0,
                    config=node_config_json())  # fmt: skip
    for make, comment, clause, result, flags in SCENARIOS:
        v.test(tests, comment=comment, result=result, clause=clause, flags=flags,
               **make().finish())  # fmt: skip
    return v.document()
